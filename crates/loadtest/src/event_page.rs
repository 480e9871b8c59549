//! Readers of one live event page (the event with its items and stock).

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use tokio::sync::Mutex;

use crate::crowd::Crowd;
use crate::flash_sale::server_addr;
use crate::memory::Footprint;
use crate::setup;
use crate::setup::admin_password;
use crate::stats::Latencies;
use crate::wire::{AddressPool, Connection};

#[derive(Debug, Args)]
pub struct EventPageOptions {
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub base_url: String,
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    #[arg(long, default_value_t = 20)]
    pub seconds: u64,
    #[arg(long, default_value_t = 30_000)]
    pub addresses: usize,
    /// Requests per connection before it moves to the next address (within
    /// the general limit's burst of 200).
    #[arg(long, default_value_t = 150)]
    pub requests_per_address: usize,
    #[arg(long, default_value = "admin@swiftdrop.local")]
    pub admin: String,
    #[arg(long, env = "SWIFTDROP_LOADTEST_ADMIN_PASSWORD")]
    pub admin_password: Option<String>,
}

pub async fn run(options: EventPageOptions) -> anyhow::Result<()> {
    let base = options.base_url.trim_end_matches('/').to_owned();
    let server = server_addr(&base)?;
    let crowd = Crowd::new(1)?;
    let admin = setup::login(
        &crowd,
        0,
        &base,
        &options.admin,
        &admin_password(options.admin_password.clone())?,
    )
    .await?;
    let (event_id, _) = setup::live_drop(&crowd, &base, &admin, 1000).await?;
    println!(
        "event page against {base}: {} connections, {} s",
        options.connections, options.seconds
    );
    let path = format!("/api/v1/events/{event_id}");
    let pool = AddressPool::new(options.addresses);
    let deadline = Instant::now() + Duration::from_secs(options.seconds);
    let results = Arc::new(Mutex::new((0u64, 0u64, Latencies::new())));
    let footprint = Footprint::start(&base).await;
    let started = Instant::now();
    let workers = (0..options.connections).map(|_| {
        let (pool, path, results) = (pool.clone(), path.clone(), results.clone());
        let per_address = options.requests_per_address;
        tokio::spawn(async move {
            let mut connection = Connection::new(server, pool, per_address);
            let (mut ok, mut failed, mut latencies) = (0u64, 0u64, Latencies::new());
            while Instant::now() < deadline {
                match connection.send("GET", &path, None, None).await {
                    Ok(answer) if answer.status == 200 => {
                        ok += 1;
                        latencies.record(answer.latency);
                    }
                    _ => failed += 1,
                }
            }
            let mut total = results.lock().await;
            total.0 += ok;
            total.1 += failed;
            total.2.merge(&latencies);
        })
    });
    futures::future::join_all(workers).await;
    let elapsed = started.elapsed().as_secs_f64();
    let (ok, failed, latencies) = &*results.lock().await;
    println!(
        "requests        {ok:>9}  {:>9.0}/s   (not 200: {failed})",
        *ok as f64 / elapsed
    );
    println!("latency         {}", latencies.summary());
    footprint.report(&format!("{ok} page reads")).await;
    Ok(())
}
