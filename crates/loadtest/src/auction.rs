//! A crowd bidding on one auction while pages read its leaderboard; then
//! the board read back and checked against the bids the server accepted.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Args;

use serde_json::Value;
use tokio::sync::Mutex;

use crate::crowd::Crowd;
use crate::flash_sale::server_addr;
use crate::memory::{Footprint, histogram_counts, histogram_gain};
use crate::setup;
use crate::stats::Latencies;
use crate::wire::{AddressPool, Connection};

#[derive(Debug, Args)]
pub struct AuctionOptions {
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub base_url: String,
    /// Bidders (registered and signed in before the auction).
    #[arg(long, default_value_t = 2000)]
    pub users: usize,
    /// Concurrent connections placing bids.
    #[arg(long, default_value_t = 256)]
    pub connections: usize,
    /// Concurrent connections reading the leaderboard meanwhile.
    #[arg(long, default_value_t = 16)]
    pub readers: usize,
    /// Seconds of bidding.
    #[arg(long, default_value_t = 20)]
    pub seconds: u64,
    /// Winners of the auction.
    #[arg(long, default_value_t = 100)]
    pub inventory: i64,
    /// Loopback source addresses the crowd comes from.
    #[arg(long, default_value_t = 30_000)]
    pub addresses: usize,
    /// Requests per connection before it moves to the next address (stay
    /// within the bid limit's burst of 10).
    #[arg(long, default_value_t = 8)]
    pub requests_per_address: usize,
    #[arg(long, default_value = "admin@swiftdrop.local")]
    pub admin: String,
    /// The admin's password (default: the demo's, from ./data).
    #[arg(long, env = "SWIFTDROP_LOADTEST_ADMIN_PASSWORD")]
    pub admin_password: Option<String>,
}

/// A bid the server accepted, as its 201 answer said.
#[derive(Clone)]
struct Accepted {
    bid_cents: i64,
    score: f64,
    placed_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Default)]
struct Tally {
    attempts: u64,
    accepted: u64,
    limited: u64,
    other_4xx: u64,
    server_errors: u64,
    transport_errors: u64,
    latencies: Latencies,
    /// Each user's latest accepted bid.
    last: HashMap<String, Accepted>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.attempts += other.attempts;
        self.accepted += other.accepted;
        self.limited += other.limited;
        self.other_4xx += other.other_4xx;
        self.server_errors += other.server_errors;
        self.transport_errors += other.transport_errors;
        self.latencies.merge(&other.latencies);
        for (user, bid) in other.last {
            keep_latest(&mut self.last, user, bid);
        }
    }
}

fn keep_latest(last: &mut HashMap<String, Accepted>, user: String, bid: Accepted) {
    let newer = last.get(&user).is_none_or(|held| held.placed_at <= bid.placed_at);
    if newer {
        last.insert(user, bid);
    }
}

pub async fn run(options: AuctionOptions) -> anyhow::Result<()> {
    let base = options.base_url.trim_end_matches('/').to_owned();
    let server = server_addr(&base)?;
    println!(
        "auction against {base}: {} bidders, {} connections, {} leaderboard readers, {} s",
        options.users, options.connections, options.readers, options.seconds
    );
    let setup::Cast { crowd, admin, tokens } = setup::cast(
        &base,
        options.users,
        &options.admin,
        options.admin_password.clone(),
        "au",
    )
    .await?;
    let auction = setup::live_auction(&crowd, &base, &admin, options.inventory, options.seconds).await?;

    let pool = AddressPool::new(options.addresses);
    let deadline = Instant::now() + Duration::from_secs(options.seconds);
    let bid_path = format!("/api/v1/auctions/{auction}/bids");
    let board_path = format!("/api/v1/auctions/{auction}/leaderboard?limit=100");
    let tally = Arc::new(Mutex::new(Tally::default()));
    let bidding_started = Instant::now();
    let bidders = (0..options.connections).map(|worker| {
        let (pool, tally, tokens, path) = (pool.clone(), tally.clone(), tokens.clone(), bid_path.clone());
        let (per_address, connections) = (options.requests_per_address, options.connections);
        tokio::spawn(async move {
            let mut connection = Connection::new(server, pool, per_address);
            let mut local = Tally::default();
            let mut n = worker;
            while Instant::now() < deadline {
                let user = n % tokens.len();
                // Bids rise over time, with a spread so ranks keep moving.
                let cents = 100 + (n as i64 * 7919) % 50_000 + (n / tokens.len()) as i64 * 10;
                n += connections;
                local.attempts += 1;
                let body = Bytes::from(format!("{{\"amount_cents\":{cents}}}"));
                match connection
                    .send("POST", &path, Some(&tokens[user]), Some(body))
                    .await
                {
                    Ok(answer) => {
                        local.latencies.record(answer.latency);
                        match answer.status {
                            201 => {
                                local.accepted += 1;
                                if let Ok(bid) = serde_json::from_slice::<Value>(&answer.body) {
                                    let accepted = Accepted {
                                        bid_cents: bid["bid_cents"].as_i64().unwrap_or(0),
                                        score: bid["score"].as_f64().unwrap_or(0.0),
                                        placed_at: bid["placed_at"]
                                            .as_str()
                                            .and_then(|t| t.parse().ok())
                                            .unwrap_or_default(),
                                    };
                                    let user = bid["user_id"].as_str().unwrap_or_default().to_owned();
                                    keep_latest(&mut local.last, user, accepted);
                                }
                            }
                            429 => local.limited += 1,
                            400..=499 => local.other_4xx += 1,
                            _ => local.server_errors += 1,
                        }
                    }
                    Err(_) => local.transport_errors += 1,
                }
            }
            tally.lock().await.merge(local);
        })
    });
    let footprint = Footprint::start(&base).await;
    let served_before = histogram_counts(&base, BOARD_SERIES, &BOARD_BOUNDS).await;
    // Pages reading the board are other clients than the bidders: they run
    // on their own thread, so a read is not timed while it waits behind
    // the load generator's own handling of thousands of bid answers.
    let readers = read_boards(server, pool.clone(), board_path, options.readers, deadline);
    let bidders = futures::future::join_all(bidders).await;
    let elapsed = bidding_started.elapsed().as_secs_f64();
    for result in bidders {
        result?;
    }
    let (reads, read_errors) = readers
        .await
        .map_err(|_| anyhow::anyhow!("the board readers' thread failed"))??;
    let tally = tally.lock().await;
    println!(
        "attempts        {:>9}  {:>9.0}/s",
        tally.attempts,
        tally.attempts as f64 / elapsed
    );
    println!(
        "bids accepted   {:>9}  {:>9.0}/s",
        tally.accepted,
        tally.accepted as f64 / elapsed
    );
    println!(
        "429 {}  other 4xx {}  5xx {}  transport errors {}",
        tally.limited, tally.other_4xx, tally.server_errors, tally.transport_errors
    );
    println!("bid latency     {}", tally.latencies.summary());
    println!(
        "board reads     {:>9}  {:>9.0}/s  errors {read_errors}",
        reads.count(),
        reads.count() as f64 / elapsed
    );
    println!("board latency   {}", reads.summary());
    let served_after = histogram_counts(&base, BOARD_SERIES, &BOARD_BOUNDS).await;
    let served = histogram_gain(&BOARD_BOUNDS, &served_before, &served_after);
    if let Some((_, all)) = served.last().filter(|(_, all)| *all > 0.0) {
        let within: Vec<String> = served
            .iter()
            .map(|(bound, count)| format!("{bound} s: {:.2} %", count * 100.0 / all))
            .collect();
        println!(
            "server side     board reads answered within {}",
            within.join(", ")
        );
    }
    footprint
        .report(&format!(
            "{} bids accepted, {} bidders",
            tally.accepted,
            tally.last.len()
        ))
        .await;
    check_board(&crowd, &base, &auction, &tally.last).await
}

/// The server's own timing of board reads (`/metrics`), from its arrival
/// to its answer, without the wait for a CPU before and after.
const BOARD_SERIES: &str = "swiftdrop_http_request_duration_seconds_bucket{method=\"GET\",\
                            route=\"/api/v1/auctions/{id}/leaderboard\",status=\"200\"";
const BOARD_BOUNDS: [&str; 4] = ["0.0005", "0.001", "0.005", "+Inf"];

/// `readers` pages reading the board in a loop until `deadline`, on a
/// thread of their own; answers their latencies and failed reads.
fn read_boards(
    server: std::net::SocketAddr,
    pool: Arc<AddressPool>,
    path: String,
    readers: usize,
    deadline: Instant,
) -> tokio::sync::oneshot::Receiver<anyhow::Result<(Latencies, u64)>> {
    let (done, result) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let read = async move {
            let readers = (0..readers).map(|_| {
                let (pool, path) = (pool.clone(), path.clone());
                tokio::spawn(async move {
                    let mut connection = Connection::new(server, pool, 50);
                    let mut latencies = Latencies::new();
                    let mut errors = 0u64;
                    while Instant::now() < deadline {
                        match connection.send("GET", &path, None, None).await {
                            Ok(answer) if answer.status == 200 => latencies.record(answer.latency),
                            _ => errors += 1,
                        }
                    }
                    (latencies, errors)
                })
            });
            let mut reads = Latencies::new();
            let mut errors = 0;
            for result in futures::future::join_all(readers).await {
                let (latencies, failed) = result?;
                reads.merge(&latencies);
                errors += failed;
            }
            Ok((reads, errors))
        };
        let outcome = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|runtime| runtime.block_on(read));
        let _ = done.send(outcome);
    });
    result
}

/// Reads the board back and compares it with the bids the server accepted:
/// the number of bidders, and the top 1000 in order.
async fn check_board(
    crowd: &Crowd,
    base: &str,
    auction: &str,
    accepted: &HashMap<String, Accepted>,
) -> anyhow::Result<()> {
    // Other processes learn of the last batches through the broker.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let board: Value = crowd
        .client(0)
        .get(format!("{base}/api/v1/auctions/{auction}/leaderboard?limit=1000"))
        .send()
        .await?
        .json()
        .await?;
    let mut expected: Vec<(&String, &Accepted)> = accepted.iter().collect();
    expected.sort_by(|(ua, a), (ub, b)| {
        b.score
            .total_cmp(&a.score)
            .then(a.placed_at.cmp(&b.placed_at))
            .then(ua.cmp(ub))
    });
    let expected: Vec<(String, i64)> = expected
        .into_iter()
        .take(1000)
        .map(|(user, bid)| (user.clone(), bid.bid_cents))
        .collect();
    let shown: Vec<(String, i64)> = board["entries"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .map(|e| {
                    (
                        e["user_id"].as_str().unwrap_or_default().to_owned(),
                        e["bid_cents"].as_i64().unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let bidders = board["bidders"].as_u64().unwrap_or(0);
    let same = shown == expected && bidders == accepted.len() as u64;
    println!(
        "board check     {} bidders on the board, {} accepted; top {} {}",
        bidders,
        accepted.len(),
        shown.len(),
        if same {
            "equal to the accepted bids"
        } else {
            "DIFFERENT from the accepted bids"
        }
    );
    anyhow::ensure!(same, "the leaderboard differs from the accepted bids");
    Ok(())
}
