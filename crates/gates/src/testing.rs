//! Helpers for the tests that need a Redis server.

use std::time::Duration;

use redis::AsyncCommands;
use uuid::Uuid;

use crate::shared::{RedisGates, RedisOptions};

/// The test Redis, or `None` after printing why the test is skipped.
pub(crate) fn redis_url(test: &str) -> Option<String> {
    match std::env::var("SWIFTDROP_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            // Straight to stderr: the test harness would swallow `println!`.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "{test}: skipped: set SWIFTDROP_TEST_REDIS_URL (e.g. redis://127.0.0.1:6379)"
            );
            None
        }
    }
}

/// Options with a prefix no other test uses.
pub(crate) fn options() -> RedisOptions {
    RedisOptions {
        prefix: format!("swiftdrop-test:{}:", Uuid::now_v7().simple()),
        ..RedisOptions::default()
    }
}

/// A handle that must find Redis up.
pub(crate) async fn connect(url: &str, options: RedisOptions) -> RedisGates {
    let gates = RedisGates::connect(url, options).await.expect("valid URL");
    assert!(gates.is_available(), "the test Redis at {url} does not answer");
    gates
}

/// Runs one command on the test Redis directly (bounded in time).
pub(crate) async fn command<T: redis::FromRedisValue>(url: &str, cmd: &redis::Cmd) -> T {
    let client = redis::Client::open(url).expect("valid URL");
    let work = async {
        let mut conn = client.get_multiplexed_async_connection().await?;
        cmd.query_async::<T>(&mut conn).await
    };
    tokio::time::timeout(Duration::from_secs(10), work)
        .await
        .expect("Redis answers in time")
        .expect("command")
}

/// Every key under `prefix` (bounded in time).
pub(crate) async fn keys(url: &str, prefix: &str) -> Vec<String> {
    let client = redis::Client::open(url).expect("valid URL");
    let work = async {
        let mut conn = client.get_multiplexed_async_connection().await?;
        let mut found = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{prefix}*"))
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await?;
            found.extend(batch);
            if next == 0 {
                return Ok::<_, redis::RedisError>(found);
            }
            cursor = next;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), work)
        .await
        .expect("Redis answers the scan in time")
        .expect("scan")
}

/// Deletes every key under `prefix`: the test's own "FLUSHALL" (a real
/// one would wipe the keys of tests running beside it), and its cleanup.
pub(crate) async fn flush(url: &str, prefix: &str) {
    let found = keys(url, prefix).await;
    if found.is_empty() {
        return;
    }
    let client = redis::Client::open(url).expect("valid URL");
    let work = async {
        let mut conn = client.get_multiplexed_async_connection().await?;
        conn.del::<_, i64>(found).await
    };
    tokio::time::timeout(Duration::from_secs(10), work)
        .await
        .expect("Redis answers the delete in time")
        .expect("delete");
}

/// Polls `condition` until it holds, at most `limit` (never asserts a
/// duration: the bound only keeps a broken test from hanging).
pub(crate) async fn eventually<F, Fut>(limit: Duration, mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if condition().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A TCP proxy in front of the test Redis that a test can cut and
/// restore: an outage seen by one "process" only, without touching the
/// server that other tests share.
pub(crate) struct Proxy {
    /// The test Redis URL, pointed at the proxy.
    pub url: String,
    open: std::sync::Arc<std::sync::atomic::AtomicBool>,
    live: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub(crate) async fn start(url: &str) -> Proxy {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::{Arc, Mutex};

        let (scheme, rest) = url.split_once("://").expect("scheme://host");
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (userinfo, upstream) = match authority.rsplit_once('@') {
            Some((userinfo, host)) => (format!("{userinfo}@"), host.to_owned()),
            None => (String::new(), authority.to_owned()),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let open = Arc::new(AtomicBool::new(true));
        let live: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let accept = {
            let (open, live) = (open.clone(), live.clone());
            tokio::spawn(async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    if !open.load(Ordering::SeqCst) {
                        continue; // dropped: the client sees the door shut
                    }
                    let upstream = upstream.clone();
                    let task = tokio::spawn(async move {
                        if let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    });
                    live.lock().expect("lock").push(task.abort_handle());
                }
            })
        };
        Proxy {
            url: format!("{scheme}://{userinfo}{addr}/{path}"),
            open,
            live,
            accept,
        }
    }

    /// Drops every connection and refuses new ones.
    pub(crate) fn cut(&self) {
        self.open.store(false, std::sync::atomic::Ordering::SeqCst);
        for task in self.live.lock().expect("lock").drain(..) {
            task.abort();
        }
    }

    pub(crate) fn restore(&self) {
        self.open.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}
