//! Hours of a mixed crowd: pages read, orders placed then confirmed or
//! canceled, bids, sockets opened and dropped. Every interval it prints the
//! throughput, the errors and the server's resident memory and open files,
//! so a leak shows as a line that keeps climbing.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Args;
use serde_json::Value;

use crate::flash_sale::server_addr;
use crate::memory;
use crate::setup;
use crate::wire::{AddressPool, Connection};

#[derive(Debug, Args)]
pub struct SoakOptions {
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub base_url: String,
    /// Signed-in users the crowd takes turns as.
    #[arg(long, default_value_t = 200)]
    pub users: usize,
    /// Concurrent connections.
    #[arg(long, default_value_t = 32)]
    pub connections: usize,
    /// How long the soak runs.
    #[arg(long, default_value_t = 3600)]
    pub seconds: u64,
    /// Seconds between report lines.
    #[arg(long, default_value_t = 30)]
    pub report_every: u64,
    /// Loopback source addresses the crowd comes from.
    #[arg(long, default_value_t = 2000)]
    pub addresses: usize,
    /// Requests per connection before it moves to the next address.
    #[arg(long, default_value_t = 4)]
    pub requests_per_address: usize,
    #[arg(long, default_value = "admin")]
    pub admin: String,
    /// The admin's password (default: the demo's, from ./data).
    #[arg(long)]
    pub admin_password: Option<String>,
}

/// What the crowd did, counted as it goes.
#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    orders: AtomicU64,
    bids: AtomicU64,
    sockets: AtomicU64,
    server_errors: AtomicU64,
    transport_errors: AtomicU64,
}

/// The places the crowd visits.
struct Targets {
    event_path: String,
    purchase_path: String,
    bid_path: String,
    board_path: String,
    subscribe: String,
}

pub async fn run(options: SoakOptions) -> anyhow::Result<()> {
    let base = options.base_url.trim_end_matches('/').to_owned();
    let server = server_addr(&base)?;
    let setup::Cast { crowd, admin, tokens } = setup::cast(
        &base,
        options.users,
        &options.admin,
        options.admin_password.clone(),
        "sk",
    )
    .await?;
    // Stock enough to last: the soak is about time, not selling out.
    let (event_id, item_id) = setup::live_drop(&crowd, &base, &admin, 10_000_000).await?;
    let auction = setup::live_auction(&crowd, &base, &admin, 10, options.seconds).await?;
    let targets = Arc::new(Targets {
        event_path: format!("/api/v1/events/{event_id}"),
        purchase_path: format!("/api/v1/purchase/{item_id}"),
        bid_path: format!("/api/v1/auctions/{auction}/bids"),
        board_path: format!("/api/v1/auctions/{auction}/leaderboard?limit=20"),
        subscribe: serde_json::json!({"type": "subscribe", "event_id": event_id}).to_string(),
    });
    println!(
        "soak against {base}: {} users, {} connections, {} s, a line every {} s",
        options.users, options.connections, options.seconds, options.report_every
    );
    println!(
        "{:>7}  {:>9}  {:>7}  {:>7}  {:>7}  {:>5}  {:>11}  {:>5}",
        "elapsed", "req/s", "orders", "bids", "sockets", "5xx", "server RSS", "files"
    );

    let counters = Arc::new(Counters::default());
    let pool = AddressPool::new(options.addresses);
    let deadline = Instant::now() + Duration::from_secs(options.seconds);
    let ws_base = base.replacen("http", "ws", 1);
    let workers: Vec<_> = (0..options.connections)
        .map(|worker| {
            let (pool, counters, tokens, targets, ws_base) = (
                pool.clone(),
                counters.clone(),
                tokens.clone(),
                targets.clone(),
                ws_base.clone(),
            );
            let per_address = options.requests_per_address;
            tokio::spawn(async move {
                let mut connection = Connection::new(server, pool, per_address);
                let mut n = worker;
                while Instant::now() < deadline {
                    let token = tokens[n % tokens.len()].as_str();
                    visit(&mut connection, &ws_base, token, n, &targets, &counters).await;
                    n += 1;
                }
            })
        })
        .collect();

    let started = Instant::now();
    let mut samples = Vec::new();
    let mut last_requests = 0;
    let mut every = tokio::time::interval(Duration::from_secs(options.report_every.max(1)));
    every.tick().await;
    while Instant::now() < deadline {
        every.tick().await;
        let requests = counters.requests.load(Ordering::Relaxed);
        let rss = memory::resident_mib(&base).await;
        let files = memory::open_files(&base).await;
        println!(
            "{:>6}s  {:>9.0}  {:>7}  {:>7}  {:>7}  {:>5}  {:>11}  {:>5}",
            started.elapsed().as_secs(),
            (requests - last_requests) as f64 / options.report_every.max(1) as f64,
            counters.orders.load(Ordering::Relaxed),
            counters.bids.load(Ordering::Relaxed),
            counters.sockets.load(Ordering::Relaxed),
            counters.server_errors.load(Ordering::Relaxed),
            memory::mib(rss),
            files.map_or_else(|| "n/a".to_owned(), |f| format!("{f:.0}")),
        );
        last_requests = requests;
        samples.push((rss, files));
    }
    futures::future::join_all(workers).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (idle_rss, idle_files) = (memory::resident_mib(&base).await, memory::open_files(&base).await);
    println!(
        "after 10 s idle: server RSS {}, open files {}",
        memory::mib(idle_rss),
        idle_files.map_or_else(|| "n/a".to_owned(), |f| format!("{f:.0}"))
    );
    // Flat: the last quarter of the run holds no more than the second
    // quarter plus a margin for caches that fill on their own schedule.
    if samples.len() >= 4 {
        let quarter = samples.len() / 4;
        let high = |range: &[(Option<f64>, Option<f64>)]| {
            range.iter().filter_map(|(rss, _)| *rss).fold(0.0_f64, f64::max)
        };
        let (early, late) = (
            high(&samples[quarter..2 * quarter]),
            high(&samples[3 * quarter..]),
        );
        println!(
            "memory trend: {early:.1} MiB (second quarter) -> {late:.1} MiB (last quarter): {}",
            if late <= early * 1.15 + 8.0 {
                "flat"
            } else {
                "GROWING"
            }
        );
    }
    let errors = counters.server_errors.load(Ordering::Relaxed);
    println!(
        "total: {} requests, {} orders, {} bids, {} sockets, {} 5xx, {} transport errors",
        counters.requests.load(Ordering::Relaxed),
        counters.orders.load(Ordering::Relaxed),
        counters.bids.load(Ordering::Relaxed),
        counters.sockets.load(Ordering::Relaxed),
        errors,
        counters.transport_errors.load(Ordering::Relaxed),
    );
    anyhow::ensure!(errors == 0, "the server answered {errors} requests with 5xx");
    Ok(())
}

/// One step of one member of the crowd: mostly reading, some buying (then
/// confirming or canceling), some bidding, now and then a socket.
async fn visit(
    connection: &mut Connection,
    ws_base: &str,
    token: &str,
    n: usize,
    targets: &Targets,
    counters: &Counters,
) {
    let mut send = async |method: &str, path: &str, body: Option<Bytes>| -> Option<(u16, Bytes)> {
        counters.requests.fetch_add(1, Ordering::Relaxed);
        match connection.send(method, path, Some(token), body).await {
            Ok(answer) => {
                if answer.status >= 500 {
                    counters.server_errors.fetch_add(1, Ordering::Relaxed);
                }
                Some((answer.status, answer.body))
            }
            Err(_) => {
                counters.transport_errors.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    };
    match n % 20 {
        0..=8 => {
            send("GET", &targets.event_path, None).await;
        }
        9..=10 => {
            send("GET", "/api/v1/products?limit=20", None).await;
        }
        11..=14 => {
            let Some((201, body)) = send("POST", &targets.purchase_path, None).await else {
                return;
            };
            counters.orders.fetch_add(1, Ordering::Relaxed);
            let order: Value = serde_json::from_slice(&body).unwrap_or_default();
            let Some(id) = order["id"].as_str() else { return };
            // Most confirm, some cancel, a few let the hold lapse.
            let action = match n % 7 {
                0 => return,
                1 | 2 => "cancel",
                _ => "confirm",
            };
            send("POST", &format!("/api/v1/purchase/{id}/{action}"), None).await;
        }
        15..=17 => {
            let cents = 100 + (n as i64 * 7919) % 100_000;
            let body = Bytes::from(format!("{{\"amount_cents\":{cents}}}"));
            if let Some((201, _)) = send("POST", &targets.bid_path, Some(body)).await {
                counters.bids.fetch_add(1, Ordering::Relaxed);
            }
        }
        18 => {
            send("GET", &targets.board_path, None).await;
        }
        _ => {
            // A page opens its socket, gets the snapshot, and goes away.
            let url = format!("{ws_base}/ws?token={token}");
            if let Ok(socket) = crate::frames::open(&url, Some(targets.subscribe.clone())).await {
                let read = crate::frames::read_texts(&socket, |_, _| ControlFlow::Break(()));
                let _ = tokio::time::timeout(Duration::from_secs(5), read).await;
                counters.sockets.fetch_add(1, Ordering::Relaxed);
            } else {
                counters.transport_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
