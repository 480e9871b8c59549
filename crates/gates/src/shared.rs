//! The Redis connection every shared gate goes through, and the rule they
//! all follow when Redis fails.
//!
//! - Start-up never waits on Redis longer than `connect_timeout`: when it
//!   is down the process starts with its gates in-process ("degraded").
//! - Each call is bounded by `call_timeout`. A call that errs or times out
//!   marks Redis unavailable; from then on every gate answers from its
//!   in-process twin at once, without touching the network.
//! - A background probe (one per handle, backing off from 100 ms to
//!   `max_probe_interval`) pings through a fresh connection. When Redis
//!   answers, it first deletes the keys this process changed only locally
//!   meanwhile ("dirty" keys: stock gates and leaderboards), so that no
//!   process reads a Redis value that missed those changes; the gates then
//!   answer `Unknown` / not loaded once and the callers reload them from the
//!   database. Only then does it switch the gates back to Redis.

use std::collections::HashSet;
use std::fmt::Display;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, RedisResult};

use crate::error::GateError;

/// Keys remembered for deletion at recovery, at most. Past this a warning
/// is logged and further keys rely on their TTL and on versioned
/// observations to heal.
const MAX_DIRTY_KEYS: usize = 100_000;
/// Keys deleted per command at recovery.
const DIRTY_CHUNK: usize = 500;

/// How the shared gates reach Redis.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// Prepended to every key (several deployments or tests may share one
    /// Redis).
    pub prefix: String,
    /// The bound on one gate call; past it the gate answers in-process.
    pub call_timeout: Duration,
    /// The bound on establishing a connection (start-up, probes).
    pub connect_timeout: Duration,
    /// The longest pause between two probes while Redis is away.
    pub max_probe_interval: Duration,
    /// Root certificates (PEM) to verify a `rediss://` server by, instead
    /// of the public roots: for a Redis whose certificate a private CA
    /// signed.
    pub ca_pem: Option<Vec<u8>>,
}

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions {
            prefix: "swiftdrop:".into(),
            call_timeout: Duration::from_millis(250),
            connect_timeout: Duration::from_secs(2),
            max_probe_interval: Duration::from_secs(5),
            ca_pem: None,
        }
    }
}

/// A handle on Redis for the shared gates: cheap to clone, one connection
/// (multiplexed) behind it.
#[derive(Clone)]
pub struct RedisGates {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RedisGates {
    // No URL: it may hold a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisGates")
            .field("prefix", &self.inner.options.prefix)
            .field("available", &self.is_available())
            .finish()
    }
}

struct Inner {
    client: Client,
    options: RedisOptions,
    /// Replaced by a fresh one when a probe finds Redis back.
    conn: Mutex<ConnectionManager>,
    /// Fast path; written only with `state` locked.
    available: AtomicBool,
    /// Incremented at the start of each outage: gates reset their
    /// in-process twins when it changes.
    outage: AtomicU64,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Keys changed in-process while Redis was away: deleted at recovery.
    dirty: HashSet<String>,
    /// A probe task is running (always true while unavailable).
    probing: bool,
    warned_dirty_full: bool,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Bulk calls (a leaderboard load) may take this many call timeouts.
const BULK_CALLS: u32 = 8;

fn manager(client: &Client, options: &RedisOptions) -> RedisResult<ConnectionManager> {
    // Few, quick reconnection attempts: the probe owns the long retries.
    // Each call is bounded by the gates; the connection's own bound only
    // catches what they do not (the longest, a bulk call).
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(options.connect_timeout))
        .set_response_timeout(Some(options.call_timeout * BULK_CALLS))
        .set_number_of_retries(1)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_millis(500));
    ConnectionManager::new_lazy_with_config(client.clone(), config)
}

async fn ping(mut conn: ConnectionManager, limit: Duration) -> Result<(), GateError> {
    match tokio::time::timeout(limit, redis::cmd("PING").query_async::<String>(&mut conn)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(err)) => Err(err.into()),
        Err(_) => Err(GateError::Timeout(limit)),
    }
}

impl RedisGates {
    /// Connects to `url` (`redis://` or `rediss://`). Fails only on an
    /// invalid URL: when Redis does not answer within `connect_timeout` the
    /// handle starts degraded and recovers on its own.
    pub async fn connect(url: &str, options: RedisOptions) -> Result<Self, GateError> {
        if url.starts_with("rediss:") {
            // `rediss://` needs a process-wide rustls provider; an error
            // means one is installed already, which is as good.
            let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        }
        // The URL may hold a password: keep it out of the error.
        let client = match &options.ca_pem {
            Some(pem) => Client::build_with_tls(
                url,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.clone()),
                },
            ),
            None => Client::open(url),
        }
        .map_err(|err| GateError::InvalidUrl(err.to_string()))?;
        let conn = manager(&client, &options).map_err(|err| GateError::InvalidUrl(err.to_string()))?;
        let gates = RedisGates {
            inner: Arc::new(Inner {
                client,
                conn: Mutex::new(conn.clone()),
                options,
                available: AtomicBool::new(true),
                outage: AtomicU64::new(0),
                state: Mutex::new(State::default()),
            }),
        };
        if let Err(err) = ping(conn, gates.inner.options.connect_timeout).await {
            gates.inner.fail(&[], &err);
        }
        Ok(gates)
    }

    /// Whether the gates currently use Redis (false: in-process, degraded).
    pub fn is_available(&self) -> bool {
        self.inner.available.load(Ordering::Acquire)
    }

    /// For `/ready`: `Ok` when Redis answers a PING within the call
    /// timeout; `Unavailable` while the gates run degraded (the probe, not
    /// this call, brings them back).
    pub async fn ping(&self) -> Result<(), GateError> {
        if !self.is_available() {
            return Err(GateError::Unavailable);
        }
        let result = ping(self.inner.conn(), self.inner.options.call_timeout).await;
        if let Err(err) = &result {
            self.inner.fail(&[], err);
        }
        result
    }

    pub fn options(&self) -> &RedisOptions {
        &self.inner.options
    }

    /// `prefix` + `rest`: every key the gates use.
    pub(crate) fn key(&self, rest: std::fmt::Arguments<'_>) -> String {
        format!("{}{}", self.inner.options.prefix, rest)
    }

    /// The current outage number (changes when an outage begins).
    pub(crate) fn outage(&self) -> u64 {
        self.inner.outage.load(Ordering::Acquire)
    }

    /// Runs `op` against Redis within the call timeout. `None` tells the
    /// caller to answer from its in-process twin: Redis is away or just
    /// failed. `dirty` names the keys `op` writes: if it does not run on
    /// Redis they are deleted from Redis at recovery.
    pub(crate) async fn run<T, F, Fut>(&self, dirty: &[&str], op: F) -> Option<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        self.run_within(self.inner.options.call_timeout, dirty, op).await
    }

    /// [`run`](Self::run) for bulk operations, with a longer bound.
    pub(crate) async fn run_bulk<T, F, Fut>(&self, dirty: &[&str], op: F) -> Option<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        self.run_within(self.inner.options.call_timeout * BULK_CALLS, dirty, op)
            .await
    }

    async fn run_within<T, F, Fut>(&self, limit: Duration, dirty: &[&str], op: F) -> Option<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        if !self.inner.route_to_redis(dirty) {
            return None;
        }
        match tokio::time::timeout(limit, op(self.inner.conn())).await {
            Ok(Ok(value)) => Some(value),
            Ok(Err(err)) => {
                self.inner.fail(dirty, &err);
                None
            }
            Err(_) => {
                self.inner.fail(dirty, &GateError::Timeout(limit));
                None
            }
        }
    }

    /// Simulates a Redis failure seen by this process (tests).
    #[cfg(test)]
    pub(crate) fn fail_for_test(&self) {
        self.inner.fail(&[], &"test");
    }
}

impl Inner {
    fn conn(&self) -> ConnectionManager {
        lock(&self.conn).clone()
    }

    /// True: go to Redis. False: Redis is away, `dirty` is remembered.
    fn route_to_redis(&self, dirty: &[&str]) -> bool {
        if self.available.load(Ordering::Acquire) {
            return true;
        }
        let mut state = lock(&self.state);
        // Re-checked under the lock the probe flips it under, so a key is
        // either written to Redis or remembered before recovery completes.
        if self.available.load(Ordering::Acquire) {
            return true;
        }
        state.remember(dirty);
        false
    }

    fn fail(self: &Arc<Self>, dirty: &[&str], why: &dyn Display) {
        let mut state = lock(&self.state);
        state.remember(dirty);
        if self.available.swap(false, Ordering::AcqRel) {
            self.outage.fetch_add(1, Ordering::AcqRel);
            tracing::warn!(error = %why, "Redis unavailable: shared gates run in-process until it answers");
        }
        if !state.probing {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    state.probing = true;
                    runtime.spawn(probe(Arc::downgrade(self)));
                }
                Err(_) => tracing::error!("no async runtime to probe Redis from"),
            }
        }
    }

    /// One probe: true when Redis is back and the gates use it again.
    async fn try_recover(&self) -> bool {
        let Ok(conn) = manager(&self.client, &self.options) else {
            return false;
        };
        let limit = self.options.connect_timeout;
        if ping(conn.clone(), limit).await.is_err() {
            return false;
        }
        loop {
            let batch: Vec<String> = {
                let mut state = lock(&self.state);
                if state.dirty.is_empty() {
                    *lock(&self.conn) = conn;
                    state.probing = false;
                    state.warned_dirty_full = false;
                    self.available.store(true, Ordering::Release);
                    tracing::info!("Redis answers again: shared gates use it");
                    return true;
                }
                state.dirty.iter().take(DIRTY_CHUNK).cloned().collect()
            };
            let mut c = conn.clone();
            let deleted =
                tokio::time::timeout(limit, redis::cmd("DEL").arg(&batch).query_async::<i64>(&mut c)).await;
            if !matches!(deleted, Ok(Ok(_))) {
                return false;
            }
            let mut state = lock(&self.state);
            for key in &batch {
                state.dirty.remove(key);
            }
        }
    }
}

impl State {
    fn remember(&mut self, keys: &[&str]) {
        for key in keys {
            if self.dirty.len() >= MAX_DIRTY_KEYS {
                if !self.warned_dirty_full {
                    self.warned_dirty_full = true;
                    tracing::warn!("too many keys changed while Redis was away; the rest heal by TTL");
                }
                return;
            }
            if !self.dirty.contains(*key) {
                self.dirty.insert((*key).to_owned());
            }
        }
    }
}

async fn probe(inner: Weak<Inner>) {
    let mut delay = Duration::from_millis(100);
    loop {
        tokio::time::sleep(delay).await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        if inner.try_recover().await {
            return;
        }
        delay = (delay * 2).min(inner.options.max_probe_interval);
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use uuid::Uuid;

    use super::*;
    use crate::testing;
    use crate::{
        Admission, Leaderboard, Observed, Quota, RateLimiter, RedisLeaderboard, RedisRateLimiter,
        RedisStockGate, Standing, StockGate,
    };

    /// Every test here is bounded: a hang fails it instead of the suite.
    const BOUND: Duration = Duration::from_secs(60);

    fn quick(prefix: String) -> RedisOptions {
        RedisOptions {
            prefix,
            connect_timeout: Duration::from_millis(500),
            max_probe_interval: Duration::from_millis(400),
            ..RedisOptions::default()
        }
    }

    fn hourly(count: u32) -> Quota {
        Quota {
            count,
            period: Duration::from_secs(3600),
            burst: count,
        }
    }

    fn bid(user: Uuid, score: f64) -> Standing {
        Standing {
            user_id: user,
            username: "bidder".into(),
            bid_cents: 100,
            score,
            placed_at_micros: 1,
        }
    }

    #[tokio::test]
    async fn invalid_urls_are_refused() {
        for url in ["http://127.0.0.1:6379", "not a url", "redis://"] {
            let result = RedisGates::connect(url, RedisOptions::default()).await;
            assert!(matches!(result, Err(GateError::InvalidUrl(_))), "{url}");
        }
    }

    #[tokio::test]
    async fn unreachable_redis_starts_degraded_and_every_gate_answers() {
        tokio::time::timeout(BOUND, async {
            // Port 1: nothing listens there.
            let gates = RedisGates::connect("redis://127.0.0.1:1", quick("t:".into()))
                .await
                .unwrap();
            assert!(!gates.is_available());
            assert!(matches!(gates.ping().await, Err(GateError::Unavailable)));

            let limiter = RedisRateLimiter::new(gates.clone(), "login", hourly(3));
            let ip = IpAddr::from([192, 0, 2, 1]);
            assert!(limiter.peek(ip).await.is_ok());
            for _ in 0..3 {
                assert!(limiter.check(ip).await.is_ok());
            }
            assert!(limiter.check(ip).await.is_err(), "per process while degraded");
            assert!(limiter.peek(ip).await.is_err());

            let stock = RedisStockGate::new(gates.clone());
            let item = Uuid::now_v7();
            assert_eq!(stock.admit(item, 1).await, Admission::Unknown);
            stock.observe(item, Observed { stock: 1, version: 1 }).await;
            assert_eq!(stock.admit(item, 1).await, Admission::Admitted);
            assert_eq!(stock.admit(item, 1).await, Admission::SoldOut);
            assert_eq!(stock.known_stock(item).await, Some(1));

            let board = RedisLeaderboard::new(gates.clone());
            let auction = Uuid::now_v7();
            assert!(!board.is_loaded(auction).await);
            board.load(auction, vec![bid(Uuid::now_v7(), 1.0)]).await;
            assert_eq!(board.record(auction, bid(Uuid::now_v7(), 2.0)).await, 1);
            assert_eq!(board.len(auction).await, 2);
            assert!(!gates.is_available());
        })
        .await
        .expect("bounded");
    }

    #[tokio::test]
    async fn tls_to_a_server_that_does_not_speak_it_degrades_without_panic() {
        tokio::time::timeout(BOUND, async {
            // A server that answers garbage: the TLS handshake fails.
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let server = tokio::spawn(async move {
                use tokio::io::AsyncWriteExt;
                while let Ok((mut socket, _)) = listener.accept().await {
                    let _ = socket.write_all(b"-ERR not tls\r\n").await;
                }
            });
            let gates = RedisGates::connect(&format!("rediss://{addr}/"), quick("t:".into()))
                .await
                .unwrap();
            assert!(!gates.is_available());
            let limiter = RedisRateLimiter::new(gates, "api", hourly(1));
            assert!(limiter.check(IpAddr::from([192, 0, 2, 2])).await.is_ok());
            server.abort();
        })
        .await
        .expect("bounded");
    }

    #[tokio::test]
    async fn falls_back_while_cut_off_and_recovers_on_its_own() {
        let Some(url) = testing::redis_url("falls_back_while_cut_off_and_recovers_on_its_own") else {
            return;
        };
        tokio::time::timeout(BOUND, async {
            let prefix = testing::options().prefix;
            let proxy = testing::Proxy::start(&url).await;
            let gates = testing::connect(&proxy.url, quick(prefix.clone())).await;
            // Another process that keeps its Redis throughout.
            let other = testing::connect(&url, quick(prefix.clone())).await;
            assert!(gates.ping().await.is_ok());

            let stock = RedisStockGate::new(gates.clone());
            let other_stock = RedisStockGate::new(other.clone());
            let board = RedisLeaderboard::new(gates.clone());
            let limiter = RedisRateLimiter::new(gates.clone(), "bid", hourly(2));
            let (item, untouched, auction) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
            let ip = IpAddr::from([192, 0, 2, 3]);
            stock
                .observe(
                    item,
                    Observed {
                        stock: 10,
                        version: 1,
                    },
                )
                .await;
            stock.observe(untouched, Observed { stock: 4, version: 1 }).await;
            board.load(auction, vec![bid(Uuid::now_v7(), 1.0)]).await;
            assert!(limiter.check(ip).await.is_ok());

            proxy.cut();
            // The first call that fails falls back within its bound ...
            assert_eq!(
                stock.admit(item, 1).await,
                Admission::Unknown,
                "a fresh local twin"
            );
            assert!(!gates.is_available());
            assert!(gates.ping().await.is_err());
            // ... and from then on the gates answer in-process.
            stock.observe(item, Observed { stock: 9, version: 2 }).await;
            assert_eq!(stock.admit(item, 1).await, Admission::Admitted);
            assert!(!board.is_loaded(auction).await);
            board.record(auction, bid(Uuid::now_v7(), 5.0)).await;
            assert!(limiter.check(ip).await.is_ok(), "a per-process budget");
            assert!(limiter.check(ip).await.is_ok());
            assert!(limiter.check(ip).await.is_err());

            proxy.restore();
            let back = testing::eventually(Duration::from_secs(30), || async { gates.is_available() }).await;
            assert!(back, "the gates never returned to Redis");
            assert!(gates.ping().await.is_ok());
            // What this process changed alone was dropped from Redis, so
            // every process reloads it from the database ...
            assert_eq!(other_stock.admit(item, 1).await, Admission::Unknown);
            assert!(!RedisLeaderboard::new(other.clone()).is_loaded(auction).await);
            // ... and what it did not touch is as it was.
            assert_eq!(other_stock.known_stock(untouched).await, Some(4));
            assert_eq!(stock.known_stock(untouched).await, Some(4));
            // Back on the shared budget (one left of the two).
            assert!(limiter.check(ip).await.is_ok());
            assert!(limiter.check(ip).await.is_err());
            testing::flush(&url, &prefix).await;
        })
        .await
        .expect("bounded");
    }

    #[tokio::test]
    async fn a_failure_seen_once_is_probed_back() {
        let Some(url) = testing::redis_url("a_failure_seen_once_is_probed_back") else {
            return;
        };
        tokio::time::timeout(BOUND, async {
            let gates = testing::connect(&url, quick(testing::options().prefix)).await;
            let outage = gates.outage();
            gates.fail_for_test();
            assert!(!gates.is_available());
            assert_eq!(gates.outage(), outage + 1);
            assert!(testing::eventually(Duration::from_secs(30), || async { gates.is_available() }).await);
        })
        .await
        .expect("bounded");
    }
}
