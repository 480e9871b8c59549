//! Logins at a fixed rate beside a steady stream of cheap authenticated
//! reads. bcrypt is CPU-bound by design; the server must keep it off the
//! async workers so the reads stay fast.
//!
//! With `--burst 16,64,256`, sign-up rushes instead: each burst fires N
//! registrations at once, each from its own source address, and waits for
//! every answer, while the readers keep calling `GET /me`.

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
    /// Sign-up bursts instead of the login rate: comma-separated sizes,
    /// each fired all at once (e.g. `16,64,256`).
    #[arg(long, value_delimiter = ',')]
    pub burst: Vec<usize>,
}

const PASSWORD: &str = "Load#Test2026";

pub async fn run(options: AuthOptions) -> anyhow::Result<()> {
    if !options.burst.is_empty() {
        return run_bursts(options).await;
    }
    let base = options.base_url.trim_end_matches('/').to_owned();
    // Enough addresses that 5 logins a minute per address covers the rate.
    let per_address_per_minute = 4;
    let addresses =
        (options.logins_per_second as usize * 60).div_ceil(per_address_per_minute) + options.readers;
    let crowd = Arc::new(Crowd::new(addresses)?);
    let (username, token) = signed_in_user(&crowd, &base).await?;

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

/// Registers a fresh user and logs it in; returns its name and access token.
async fn signed_in_user(crowd: &Crowd, base: &str) -> anyhow::Result<(String, String)> {
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
    Ok((username, token))
}

/// What one burst of sign-ups came back with.
#[derive(Default)]
struct BurstOutcome {
    created: u64,
    shed: u64,
    retry_after: Vec<u64>,
    limited: u64,
    other: u64,
    /// Latency of the sign-ups that were created.
    latencies: Latencies,
    /// From the burst's start to its last answer.
    last_answer: Duration,
}

impl BurstOutcome {
    /// `1 s x3, 2 s x10`: how many 503s asked for each wait.
    fn retry_after_counts(&self) -> String {
        let mut counts = std::collections::BTreeMap::new();
        for seconds in &self.retry_after {
            *counts.entry(*seconds).or_insert(0u32) += 1;
        }
        let parts: Vec<String> = counts.iter().map(|(s, n)| format!("{s} s x{n}")).collect();
        if parts.is_empty() {
            "-".to_owned()
        } else {
            parts.join(", ")
        }
    }
}

async fn run_bursts(options: AuthOptions) -> anyhow::Result<()> {
    let base = options.base_url.trim_end_matches('/').to_owned();
    // Every sign-up of every burst from its own address, the readers on theirs.
    let total: usize = options.burst.iter().sum();
    let crowd = Arc::new(Crowd::new(total + options.readers + 2)?);
    let (_, token) = signed_in_user(&crowd, &base).await?;
    println!(
        "sign-up bursts against {base}: {:?}, beside {} readers x {}/s of GET /me",
        options.burst, options.readers, options.reader_rate
    );
    let mut next_address = 2;
    for (round, &size) in options.burst.iter().enumerate() {
        let stop = stop_signal();
        let readers = spawn_readers(&crowd, &base, &token, &options, stop.1.clone());
        let outcome = burst(&crowd, &base, round, size, next_address).await;
        next_address += size;
        let _ = stop.0.send(true);
        let mut me = Latencies::new();
        for reader in futures::future::join_all(readers).await.into_iter().flatten() {
            me.merge(&reader);
        }
        println!(
            "burst {size:>4}: created {:>4}, 503 {:>4} (Retry-After {}), 429 {}, other {}, last answer after {:.2} s",
            outcome.created,
            outcome.shed,
            outcome.retry_after_counts(),
            outcome.limited,
            outcome.other,
            outcome.last_answer.as_secs_f64(),
        );
        println!("            sign-up latency  {}", outcome.latencies.summary());
        println!("            GET /me meanwhile {}", me.summary());
        // Let the server settle before the next burst.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    Ok(())
}

/// A stop signal for the readers.
fn stop_signal() -> (
    tokio::sync::watch::Sender<bool>,
    tokio::sync::watch::Receiver<bool>,
) {
    tokio::sync::watch::channel(false)
}

/// Readers of `GET /me` at their rate until `stop`; each returns its latencies.
fn spawn_readers(
    crowd: &Arc<Crowd>,
    base: &str,
    token: &str,
    options: &AuthOptions,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<Latencies>> {
    (0..options.readers)
        .map(|reader| {
            let client = crowd.client(crowd.len() - 1 - reader).clone();
            let url = format!("{base}/api/v1/auth/me");
            let token = token.to_owned();
            let period = Duration::from_secs_f64(1.0 / f64::from(options.reader_rate.max(1)));
            let mut stop = stop.clone();
            tokio::spawn(async move {
                let mut latencies = Latencies::new();
                let mut ticker = tokio::time::interval(period);
                ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                while !*stop.borrow() {
                    tokio::select! {
                        _ = ticker.tick() => {}
                        _ = stop.changed() => break,
                    }
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
        })
        .collect()
}

/// Fires `size` sign-ups at once, each from its own address, and waits for
/// every answer.
async fn burst(
    crowd: &Arc<Crowd>,
    base: &str,
    round: usize,
    size: usize,
    first_address: usize,
) -> BurstOutcome {
    let tag = &uuid::Uuid::now_v7().simple().to_string()[20..];
    let started = Instant::now();
    let requests = (0..size).map(|i| {
        let client = crowd.client(first_address + i).clone();
        let url = format!("{base}/api/v1/auth/register");
        let username = format!("b{round}_{tag}_{i}");
        let body =
            json!({"email": format!("{username}@example.com"), "username": username, "password": PASSWORD});
        tokio::spawn(async move {
            let sent = Instant::now();
            let answer = client.post(&url).json(&body).send().await;
            let latency = sent.elapsed();
            let answer = answer.map(|response| {
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok());
                (response.status(), retry_after)
            });
            (answer, latency, Instant::now())
        })
    });
    let answers = futures::future::join_all(requests).await;
    let mut outcome = BurstOutcome::default();
    for (answer, latency, at) in answers.into_iter().flatten() {
        outcome.last_answer = outcome.last_answer.max(at - started);
        match answer {
            Ok((StatusCode::CREATED, _)) => {
                outcome.created += 1;
                outcome.latencies.record(latency);
            }
            Ok((StatusCode::SERVICE_UNAVAILABLE, retry_after)) => {
                outcome.shed += 1;
                outcome.retry_after.extend(retry_after);
            }
            Ok((StatusCode::TOO_MANY_REQUESTS, _)) => outcome.limited += 1,
            _ => outcome.other += 1,
        }
    }
    outcome
}
