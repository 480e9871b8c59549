//! Logins at a fixed rate beside a steady stream of cheap authenticated
//! reads. bcrypt is CPU-bound by design; the server must keep it off the
//! async workers so the reads stay fast.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::crowd::Crowd;
use crate::stats::Latencies;

#[derive(Debug, Args)]
pub struct AuthOptions {
    /// The server to test.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub base_url: String,
    /// Login attempts per second (open loop: sent on schedule, not after the previous answer).
    #[arg(long, default_value_t = 50)]
    pub logins_per_second: u32,
    /// Concurrent readers of `GET /api/v1/auth/me`.
    #[arg(long, default_value_t = 8)]
    pub readers: usize,
    /// Requests per second per reader.
    #[arg(long, default_value_t = 50)]
    pub reader_rate: u32,
    /// Seconds of the measured phase (a baseline of the same length runs first).
    #[arg(long, default_value_t = 20)]
    pub seconds: u64,
}

const PASSWORD: &str = "Load#Test2026";

pub async fn run(options: AuthOptions) -> anyhow::Result<()> {
    let base = options.base_url.trim_end_matches('/').to_owned();
    // Enough addresses that 5 logins a minute per address covers the rate.
    let per_address_per_minute = 4;
    let addresses =
        (options.logins_per_second as usize * 60).div_ceil(per_address_per_minute) + options.readers;
    let crowd = Arc::new(Crowd::new(addresses)?);
    let username = format!("load_{}", &uuid::Uuid::now_v7().simple().to_string()[20..]);
    let register = crowd
        .client(0)
        .post(format!("{base}/api/v1/auth/register"))
        .json(
            &json!({"email": format!("{username}@example.com"), "username": username, "password": PASSWORD}),
        )
        .send()
        .await
        .with_context(|| format!("cannot reach {base}: is `swiftdrop serve` running?"))?;
    anyhow::ensure!(
        register.status() == StatusCode::CREATED,
        "register failed: {}",
        register.status()
    );
    let tokens: Value = crowd
        .client(1)
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"username": username, "password": PASSWORD}))
        .send()
        .await?
        .json()
        .await?;
    let token = tokens["access_token"]
        .as_str()
        .context("login returned no token")?
        .to_owned();

    let seconds = Duration::from_secs(options.seconds);
    println!(
        "auth load test against {base}: {} readers x {}/s of GET /me",
        options.readers, options.reader_rate
    );

    let baseline = read_me(&crowd, &base, &token, &options, seconds).await;
    println!(
        "baseline (no logins)   GET /me  {:>7} reqs  {}",
        baseline.count(),
        baseline.summary()
    );

    let logins = Arc::new(Mutex::new(LoginOutcomes::default()));
    let login_task = tokio::spawn(drive_logins(
        crowd.clone(),
        base.clone(),
        username,
        options.logins_per_second,
        seconds,
        logins.clone(),
        options.readers,
    ));
    let loaded = read_me(&crowd, &base, &token, &options, seconds).await;
    login_task.await?;
    let logins = logins.lock().await;
    println!(
        "with logins            GET /me  {:>7} reqs  {}",
        loaded.count(),
        loaded.summary()
    );
    let secs = options.seconds as f64;
    println!(
        "logins: {:.1}/s sent, {:.1}/s succeeded, {:.1}/s shed (503), {:.1}/s limited (429), {} other; latency {}",
        logins.sent as f64 / secs,
        logins.ok as f64 / secs,
        logins.shed as f64 / secs,
        logins.limited as f64 / secs,
        logins.other,
        logins.latencies.summary()
    );
    Ok(())
}

async fn read_me(
    crowd: &Arc<Crowd>,
    base: &str,
    token: &str,
    options: &AuthOptions,
    duration: Duration,
) -> Latencies {
    let readers = (0..options.readers).map(|reader| {
        let client = crowd.client(crowd.len() - 1 - reader).clone();
        let url = format!("{base}/api/v1/auth/me");
        let token = token.to_owned();
        let period = Duration::from_secs_f64(1.0 / f64::from(options.reader_rate.max(1)));
        tokio::spawn(async move {
            let mut latencies = Latencies::new();
            let mut ticker = tokio::time::interval(period);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let end = Instant::now() + duration;
            while Instant::now() < end {
                ticker.tick().await;
                let started = Instant::now();
                if let Ok(response) = client.get(&url).bearer_auth(&token).send().await
                    && response.status() == StatusCode::OK
                    && response.bytes().await.is_ok()
                {
                    latencies.record(started.elapsed());
                }
            }
            latencies
        })
    });
    let mut all = Latencies::new();
    for reader in futures::future::join_all(readers).await.into_iter().flatten() {
        all.merge(&reader);
    }
    all
}

#[derive(Default)]
struct LoginOutcomes {
    sent: u64,
    ok: u64,
    shed: u64,
    limited: u64,
    other: u64,
    latencies: Latencies,
}

async fn drive_logins(
    crowd: Arc<Crowd>,
    base: String,
    username: String,
    per_second: u32,
    duration: Duration,
    outcomes: Arc<Mutex<LoginOutcomes>>,
    reserved: usize,
) {
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(per_second.max(1))));
    let end = Instant::now() + duration;
    let mut in_flight = Vec::new();
    let mut n = 0usize;
    while Instant::now() < end {
        ticker.tick().await;
        // Skip the readers' addresses so logins never eat their budget.
        let client = crowd.client(n % (crowd.len() - reserved).max(1)).clone();
        n += 1;
        let url = format!("{base}/api/v1/auth/login");
        let body = json!({"username": username, "password": PASSWORD});
        let outcomes = outcomes.clone();
        in_flight.push(tokio::spawn(async move {
            let started = Instant::now();
            let status = client.post(&url).json(&body).send().await.map(|r| r.status());
            let mut outcomes = outcomes.lock().await;
            outcomes.sent += 1;
            match status {
                Ok(StatusCode::OK) => {
                    outcomes.ok += 1;
                    outcomes.latencies.record(started.elapsed());
                }
                Ok(StatusCode::SERVICE_UNAVAILABLE) => outcomes.shed += 1,
                Ok(StatusCode::TOO_MANY_REQUESTS) => outcomes.limited += 1,
                _ => outcomes.other += 1,
            }
        }));
    }
    futures::future::join_all(in_flight).await;
}
