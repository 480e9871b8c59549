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
            println!("{test}: skipped: set SWIFTDROP_TEST_REDIS_URL (e.g. redis://127.0.0.1:6379)");
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
