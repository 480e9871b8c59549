//! A crowd buying one hot item: purchases from many connections for a
//! while, then the stock audit read back from the API.

use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use futures::StreamExt;
use tokio::sync::Mutex;

use crate::frames;
use crate::memory;
use crate::setup;
use crate::stats::Latencies;
use crate::wire::{AddressPool, Connection};

#[derive(Debug, Args)]
pub struct FlashSaleOptions {
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub base_url: String,
    /// Buyers (registered and signed in before the sale).
    #[arg(long, default_value_t = 2000)]
    pub users: usize,
    /// Units of the hot item.
    #[arg(long, default_value_t = 1000)]
    pub stock: i64,
    /// Concurrent connections firing purchases.
    #[arg(long, default_value_t = 256)]
    pub connections: usize,
    /// Seconds of buying.
    #[arg(long, default_value_t = 20)]
    pub seconds: u64,
    /// Loopback source addresses the crowd comes from.
    #[arg(long, default_value_t = 30_000)]
    pub addresses: usize,
    /// Requests per connection before it moves to the next address (stay
    /// within the purchase limit's burst of 10).
    #[arg(long, default_value_t = 8)]
    pub requests_per_address: usize,
    /// Open event pages following the item's live stock over WebSocket.
    #[arg(long, default_value_t = 0)]
    pub watchers: usize,
    #[arg(long, default_value = "admin@swiftdrop.local")]
    pub admin: String,
    /// The admin's password (default: the demo's, from ./data).
    #[arg(long, env = "SWIFTDROP_LOADTEST_ADMIN_PASSWORD")]
    pub admin_password: Option<String>,
}

#[derive(Default)]
struct Tally {
    attempts: u64,
    reserved: u64,
    sold_out: u64,
    other_409: u64,
    limited: u64,
    server_errors: u64,
    other: u64,
    transport_errors: u64,
    first_reservation: Option<Instant>,
    last_reservation: Option<Instant>,
    latencies: Latencies,
}

pub fn server_addr(base: &str) -> anyhow::Result<SocketAddr> {
    let authority = base.trim_start_matches("http://").trim_end_matches('/');
    authority
        .parse()
        .with_context(|| format!("{base}: give the base URL as http://IP:PORT"))
}

/// What one open page saw of the item's stock.
struct PageView {
    stock_messages: u64,
    /// When the page learnt the item was sold out.
    saw_zero: Option<Instant>,
}

/// Opens `count` event pages that follow the drop's live data, each reading
/// until the item shows sold out (or the sale is long over).
async fn watch(
    base: &str,
    tokens: &[String],
    count: usize,
    event_id: &str,
    item_id: &str,
    seconds: u64,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<PageView>>> {
    let ws_base = base.replacen("http://", "ws://", 1);
    let subscribe = serde_json::json!({"type": "subscribe", "event_id": event_id}).to_string();
    let opened: Vec<_> = futures::stream::iter(0..count)
        .map(|i| {
            let url = format!("{ws_base}/ws?token={}", tokens[i % tokens.len()]);
            let subscribe = subscribe.clone();
            async move { frames::open(&url, Some(subscribe)).await }
        })
        .buffer_unordered(256)
        .collect()
        .await;
    let deadline = Instant::now() + Duration::from_secs(seconds + 10);
    let item = item_id.to_owned();
    let mut pages = Vec::with_capacity(count);
    for socket in opened {
        let socket = socket?;
        let item = item.clone();
        pages.push(tokio::spawn(async move {
            let mut view = PageView {
                stock_messages: 0,
                saw_zero: None,
            };
            let _ = tokio::time::timeout_at(
                deadline.into(),
                frames::read_texts(&socket, |text, _| {
                    if text.contains("\"stock\"") && text.contains(&item) {
                        view.stock_messages += 1;
                        if text.contains("\"stock_remaining\":0") {
                            view.saw_zero = Some(Instant::now());
                            return ControlFlow::Break(());
                        }
                    }
                    ControlFlow::Continue(())
                }),
            )
            .await;
            view
        }));
    }
    println!("watchers: {count} open pages follow the item's stock");
    Ok(pages)
}

/// How late the open pages learnt of the sell-out, after the last sale.
fn report_watchers(pages: Vec<Result<PageView, tokio::task::JoinError>>, last_sale: Option<Instant>) {
    let pages: Vec<PageView> = pages.into_iter().flatten().collect();
    let mut lag = Latencies::new();
    for seen in pages.iter().filter_map(|p| p.saw_zero) {
        if let Some(last_sale) = last_sale {
            lag.record(seen.saturating_duration_since(last_sale));
        }
    }
    let messages: u64 = pages.iter().map(|p| p.stock_messages).sum();
    println!(
        "watchers        {} of {} pages saw the sell-out; {:.1} stock messages per page",
        lag.count(),
        pages.len(),
        messages as f64 / pages.len().max(1) as f64
    );
    println!("sell-out seen   {} after the last sale's answer", lag.summary());
}

pub async fn run(options: FlashSaleOptions) -> anyhow::Result<()> {
    let base = options.base_url.trim_end_matches('/').to_owned();
    let server = server_addr(&base)?;
    println!(
        "flash sale against {base}: {} users, stock {}, {} connections, {} s",
        options.users, options.stock, options.connections, options.seconds
    );
    let setup::Cast { crowd, admin, tokens } = setup::cast(
        &base,
        options.users,
        &options.admin,
        options.admin_password.clone(),
        "fs",
    )
    .await?;
    let (event_id, item_id) = setup::live_drop(&crowd, &base, &admin, options.stock).await?;

    let watchers = watch(
        &base,
        &tokens,
        options.watchers,
        &event_id,
        &item_id,
        options.seconds,
    )
    .await?;

    let footprint = memory::Footprint::start(&base).await;
    let pool = AddressPool::new(options.addresses);
    let tally = Arc::new(Mutex::new(Tally::default()));
    let path = format!("/api/v1/purchase/{item_id}");
    let deadline = Instant::now() + Duration::from_secs(options.seconds);
    let sale_started = Instant::now();
    let workers = (0..options.connections).map(|worker| {
        let (pool, tally, tokens, path) = (pool.clone(), tally.clone(), tokens.clone(), path.clone());
        let per_address = options.requests_per_address;
        let connections = options.connections;
        tokio::spawn(async move {
            let mut connection = Connection::new(server, pool, per_address);
            let mut local = Tally::default();
            let mut n = worker;
            while Instant::now() < deadline {
                let token = &tokens[n % tokens.len()];
                n += connections;
                local.attempts += 1;
                match connection.send("POST", &path, Some(token), None).await {
                    Ok(answer) => {
                        local.latencies.record(answer.latency);
                        match answer.status {
                            201 => {
                                local.reserved += 1;
                                let now = Instant::now();
                                local.first_reservation.get_or_insert(now);
                                local.last_reservation = Some(now);
                            }
                            409 if answer.body.windows(8).any(|w| w == b"sold_out") => local.sold_out += 1,
                            409 => local.other_409 += 1,
                            429 => local.limited += 1,
                            500..=599 => local.server_errors += 1,
                            _ => local.other += 1,
                        }
                    }
                    Err(_) => local.transport_errors += 1,
                }
            }
            let mut total = tally.lock().await;
            total.attempts += local.attempts;
            total.reserved += local.reserved;
            total.sold_out += local.sold_out;
            total.other_409 += local.other_409;
            total.limited += local.limited;
            total.server_errors += local.server_errors;
            total.other += local.other;
            total.transport_errors += local.transport_errors;
            total.first_reservation = match (total.first_reservation, local.first_reservation) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            total.last_reservation = total.last_reservation.max(local.last_reservation);
            total.latencies.merge(&local.latencies);
        })
    });
    futures::future::join_all(workers).await;
    let elapsed = sale_started.elapsed().as_secs_f64();
    let tally = tally.lock().await;
    let selling = match (tally.first_reservation, tally.last_reservation) {
        (Some(first), Some(last)) => (last - first).as_secs_f64().max(0.001),
        _ => 0.0,
    };
    let (sold, total, balanced) = setup::audit(&crowd, &base, &admin, &event_id).await?;
    println!(
        "attempts        {:>9}  {:>9.0}/s",
        tally.attempts,
        tally.attempts as f64 / elapsed
    );
    println!(
        "reservations    {:>9}  {:>9.0}/s while stock lasted ({:.3} s)",
        tally.reserved,
        if selling > 0.0 {
            tally.reserved as f64 / selling
        } else {
            0.0
        },
        selling
    );
    println!(
        "sold-out        {:>9}  {:>9.0}/s",
        tally.sold_out,
        tally.sold_out as f64 / elapsed
    );
    println!(
        "other 409 {}  429 {}  5xx {}  other {}  transport errors {}",
        tally.other_409, tally.limited, tally.server_errors, tally.other, tally.transport_errors
    );
    println!("latency         {}", tally.latencies.summary());
    if !watchers.is_empty() {
        report_watchers(futures::future::join_all(watchers).await, tally.last_reservation);
    }
    footprint.report(&format!("{sold} orders held")).await;
    println!(
        "invariant       sold {sold} of {total}; stock + held == total: {}; oversold: {}; reservations answered 201: {}",
        if balanced { "yes" } else { "NO" },
        if sold > total { "YES" } else { "no" },
        tally.reserved
    );
    anyhow::ensure!(balanced && sold <= total, "the stock invariant does not hold");
    anyhow::ensure!(
        sold as u64 == tally.reserved,
        "orders held ({sold}) differ from 201 answers ({})",
        tally.reserved
    );
    Ok(())
}
