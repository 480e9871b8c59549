//! Many WebSocket listeners, a few changes: how fast sockets connect, how
//! late each message arrives, how much memory an idle socket costs.

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use clap::Args;
use futures::StreamExt;

use crate::crowd::Crowd;
use crate::frames;
use crate::memory::{histogram_counts, histogram_gain, server_gauge};
use crate::setup;
use crate::setup::admin_password;
use crate::stats::Latencies;

#[derive(Debug, Clone, Args)]
pub struct FanoutOptions {
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub base_url: String,
    /// WebSocket connections to hold.
    #[arg(long, default_value_t = 10_000)]
    pub connections: usize,
    /// Changes to trigger (each an event created: a message to every socket).
    #[arg(long, default_value_t = 20)]
    pub changes: usize,
    /// Pause between changes, in milliseconds.
    #[arg(long, default_value_t = 500)]
    pub interval_ms: u64,
    /// Users the sockets belong to.
    #[arg(long, default_value_t = 20)]
    pub users: usize,
    #[arg(long, default_value = "admin@swiftdrop.local")]
    pub admin: String,
    #[arg(long, env = "SWIFTDROP_LOADTEST_ADMIN_PASSWORD")]
    pub admin_password: Option<String>,
}

/// The earliest and latest delivery of one change, in milliseconds.
#[derive(Clone, Copy)]
struct Wave {
    first: f64,
    last: f64,
}

impl Default for Wave {
    fn default() -> Self {
        Wave {
            first: f64::MAX,
            last: 0.0,
        }
    }
}

impl Wave {
    fn add(&mut self, ms: f64) {
        self.first = self.first.min(ms);
        self.last = self.last.max(ms);
    }
}

/// Raises this process's open-file limit to its hard limit.
fn raise_file_limit() -> u64 {
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
            return limit.rlim_cur;
        }
    }
    0
}

/// Histogram bounds of `swiftdrop_push_seconds` the report shows.
const PUSH_BOUNDS: [&str; 4] = ["0.025", "0.05", "0.1", "0.25"];

/// The series of `swiftdrop_push_seconds` the report reads.
const PUSH_SERIES: &str = "swiftdrop_push_seconds_bucket{type=\"notification\"";

/// Milliseconds since the epoch of an RFC 3339 time.
fn epoch_ms(timestamp: &str) -> Option<f64> {
    let parsed = chrono::DateTime::parse_from_rfc3339(timestamp).ok()?;
    Some(parsed.timestamp_micros() as f64 / 1000.0)
}

/// The event's timestamp in a pushed message, found without parsing it all.
fn timestamp_of(text: &str) -> Option<&str> {
    let start = text.find("\"timestamp\":\"")? + "\"timestamp\":\"".len();
    let end = start + text[start..].find('"')?;
    Some(&text[start..end])
}

/// What a run delivered (the rest of its findings are printed).
#[derive(Debug)]
pub struct FanoutReport {
    pub sockets: usize,
    pub expected: u64,
    pub delivered: u64,
}

pub async fn run(options: FanoutOptions) -> anyhow::Result<FanoutReport> {
    let base = options.base_url.trim_end_matches('/').to_owned();
    let files = raise_file_limit();
    let crowd = Crowd::new(options.users + 1)?;
    let admin = setup::login(
        &crowd,
        0,
        &base,
        &options.admin,
        &admin_password(options.admin_password.clone())?,
    )
    .await?;
    let prefix = format!("fo{}_", &uuid::Uuid::now_v7().simple().to_string()[24..]);
    let tokens = setup::users(&crowd, &base, options.users, &prefix).await?;
    println!(
        "fanout against {base}: {} sockets, {} changes (open-file limit {files})",
        options.connections, options.changes
    );

    let memory_before = server_gauge(&base, "swiftdrop_process_resident_bytes").await;
    let ws_base = base.replacen("http://", "ws://", 1);
    let connected_at = Instant::now();
    let mut sockets = Vec::with_capacity(options.connections);
    let mut failed = 0usize;
    let connects = futures::stream::iter(0..options.connections)
        .map(|i| {
            let url = format!("{ws_base}/ws?token={}", tokens[i % tokens.len()]);
            async move { frames::open(&url, None).await }
        })
        .buffer_unordered(256);
    futures::pin_mut!(connects);
    while let Some(result) = connects.next().await {
        match result {
            Ok(stream) => sockets.push(stream),
            Err(_) => failed += 1,
        }
    }
    let connect_secs = connected_at.elapsed().as_secs_f64();
    println!(
        "connected       {:>9}  {:>9.0}/s   (failed: {failed})",
        sockets.len(),
        sockets.len() as f64 / connect_secs
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let memory_after = server_gauge(&base, "swiftdrop_process_resident_bytes").await;
    let pushes_before = histogram_counts(&base, PUSH_SERIES, &PUSH_BOUNDS).await;
    let held = server_gauge(&base, "swiftdrop_websocket_sockets")
        .await
        .unwrap_or(0.0);

    let sockets_held = sockets.len();
    let expected = sockets_held as u64 * options.changes as u64;
    let deadline = Instant::now()
        + Duration::from_millis(options.interval_ms * options.changes as u64)
        + Duration::from_secs(10);
    let readers: Vec<_> = sockets
        .into_iter()
        .map(|socket| {
            let changes = options.changes;
            tokio::spawn(async move {
                // Milliseconds per change, in arrival order; merged at the end
                // so the readers share nothing while the waves run.
                let mut arrivals = Vec::with_capacity(changes);
                // One deadline for the whole run, not a timer per frame.
                let _ = tokio::time::timeout_at(
                    deadline.into(),
                    frames::read_texts(&socket, |text, arrived| {
                        // Cheap on purpose: the reader shares the machine with the server.
                        if text.contains("\"event.created\"")
                            && let Some(sent) = timestamp_of(text).and_then(epoch_ms)
                        {
                            arrivals.push((arrived - sent).max(0.0));
                        }
                        if arrivals.len() < changes {
                            ControlFlow::Continue(())
                        } else {
                            ControlFlow::Break(())
                        }
                    }),
                )
                .await;
                // Closed after every reader is done, so closing handshakes
                // do not compete with the last change's delivery.
                (arrivals, socket)
            })
        })
        .collect();

    for i in 0..options.changes {
        let start = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
        let end = (chrono::Utc::now() + chrono::Duration::hours(2)).to_rfc3339();
        let body = serde_json::json!({"title": format!("Fanout {i}"), "location": "Loopback", "start_time": start, "end_time": end});
        crowd
            .client(0)
            .post(format!("{base}/api/v1/events"))
            .bearer_auth(&admin)
            .json(&body)
            .send()
            .await?;
        tokio::time::sleep(Duration::from_millis(options.interval_ms)).await;
    }
    let mut latencies = Latencies::new();
    let mut waves = vec![Wave::default(); options.changes];
    let mut delivered = 0u64;
    let mut finished = Vec::with_capacity(readers.len());
    for (arrivals, socket) in futures::future::join_all(readers).await.into_iter().flatten() {
        finished.push(socket);
        for (wave, ms) in waves.iter_mut().zip(&arrivals) {
            wave.add(*ms);
            latencies.record(Duration::from_micros((ms * 1000.0) as u64));
        }
        delivered += arrivals.len() as u64;
    }
    drop(finished);
    println!(
        "delivered       {delivered:>9} of {expected} ({:.2}%)",
        delivered as f64 * 100.0 / expected.max(1) as f64
    );
    println!("latency         {}", latencies.summary());
    let pushes_after = histogram_counts(&base, PUSH_SERIES, &PUSH_BOUNDS).await;
    let within: Vec<String> = histogram_gain(&PUSH_BOUNDS, &pushes_before, &pushes_after)
        .into_iter()
        .map(|(bound, count)| format!("{bound} s: {count}"))
        .collect();
    if !within.is_empty() {
        println!(
            "server side     changes written to all its sockets within {} (swiftdrop_push_seconds)",
            within.join(", ")
        );
    }
    let (mut first, mut last) = (Latencies::new(), Latencies::new());
    for wave in &waves {
        first.record(Duration::from_micros((wave.first * 1000.0) as u64));
        last.record(Duration::from_micros((wave.last * 1000.0) as u64));
    }
    println!("first of a wave {}", first.summary());
    if std::env::var_os("FANOUT_WAVES").is_some() {
        for (i, wave) in waves.iter().enumerate() {
            println!("wave {i:>3}: {:.1} .. {:.1} ms", wave.first, wave.last);
        }
    }
    println!("last of a wave  {}", last.summary());
    match (memory_before, memory_after) {
        (Some(before), Some(after)) if held > 0.0 => println!(
            "server memory   {:.1} MiB before, {:.1} MiB with {held} sockets: {:.1} KiB per idle socket",
            before / 1048576.0,
            after / 1048576.0,
            (after - before) / held / 1024.0
        ),
        _ => println!("server memory   not reported (the server's /metrics gives it on Linux)"),
    }
    Ok(FanoutReport {
        sockets: sockets_held,
        expected,
        delivered,
    })
}
