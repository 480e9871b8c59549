//! The stock gate shared by every api process: one Redis hash per item,
//! one atomic script per operation.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use redis::{AsyncCommands, Script};
use uuid::Uuid;

use super::in_flight::{Buckets, LIVE_BUCKETS};
use super::{Admission, DEFAULT_LEASE, LocalStockGate, Observed, StockGate};
use crate::shared::RedisGates;

/// An item hash nobody wrote to for this long vanishes (reloaded on use).
pub const ITEM_TTL: Duration = Duration::from_secs(3600);

macro_rules! stock_script {
    ($file:literal) => {
        Script::new(concat!(include_str!("lua/prelude.lua"), include_str!($file)))
    };
}

/// The shared stock gate.
///
/// Keys: `{prefix}stock:{item}`, a hash of `stock`, `version`, `at` (last
/// observation or refresh claim, ms) and `b:{index}` (units in flight per
/// time bucket), expiring after [`ITEM_TTL`] without writes. A missing
/// hash (expired, Redis restarted or flushed) answers `Unknown` and the
/// caller reloads the item from the database.
///
/// While Redis is away the gate answers from a local twin
/// ([`LocalStockGate`], emptied at the start of each outage so it reloads
/// from the database); the items it touched meanwhile are deleted from
/// Redis at recovery, so every process reloads them.
pub struct RedisStockGate {
    gates: RedisGates,
    buckets: Buckets,
    admit: Script,
    settle: Script,
    observe: Script,
    claim: Script,
    local: LocalStockGate,
    /// The outage the local twin belongs to.
    local_outage: AtomicU64,
}

impl RedisStockGate {
    pub fn new(gates: RedisGates) -> Self {
        Self::with_lease(gates, DEFAULT_LEASE)
    }

    /// `lease`: how long an admitted unit counts at least when nobody
    /// settles or releases it (see the module docs).
    pub fn with_lease(gates: RedisGates, lease: Duration) -> Self {
        let local_outage = AtomicU64::new(gates.outage());
        RedisStockGate {
            gates,
            buckets: Buckets::for_lease(lease),
            admit: stock_script!("lua/admit.lua"),
            settle: stock_script!("lua/settle.lua"),
            observe: stock_script!("lua/observe.lua"),
            claim: stock_script!("lua/claim.lua"),
            local: LocalStockGate::with_lease(lease),
            local_outage,
        }
    }

    fn key(&self, item: Uuid) -> String {
        self.gates.key(format_args!("stock:{item}"))
    }

    /// The local twin, emptied when a new outage began since it was used:
    /// what it knew from an earlier outage is stale.
    fn local(&self) -> &LocalStockGate {
        let outage = self.gates.outage();
        if self.local_outage.swap(outage, Ordering::AcqRel) != outage {
            self.local.clear();
        }
        &self.local
    }

    fn ttl_ms(&self) -> u64 {
        u64::try_from(ITEM_TTL.as_millis()).unwrap_or(u64::MAX)
    }

    async fn take_out(&self, item: Uuid, units: i64, observed: Option<Observed>) -> bool {
        let key = self.key(item);
        let key = key.as_str();
        let ran = self
            .gates
            .run(&[key], |mut conn| async move {
                let mut call = self.settle.key(key);
                call.arg(units)
                    .arg(self.buckets.width_ms)
                    .arg(LIVE_BUCKETS)
                    .arg(self.ttl_ms());
                if let Some(observed) = observed {
                    call.arg(observed.stock).arg(observed.version);
                }
                call.invoke_async::<i64>(&mut conn).await
            })
            .await;
        ran.is_some()
    }
}

#[async_trait]
impl StockGate for RedisStockGate {
    async fn admit(&self, item: Uuid, quantity: i64) -> Admission {
        let key = self.key(item);
        let key = key.as_str();
        let answer = self
            .gates
            .run(&[key], |mut conn| async move {
                self.admit
                    .key(key)
                    .arg(quantity)
                    .arg(self.buckets.width_ms)
                    .arg(LIVE_BUCKETS)
                    .arg(self.ttl_ms())
                    .invoke_async::<(i64, i64)>(&mut conn)
                    .await
            })
            .await;
        match answer {
            Some((1, _)) => Admission::Admitted,
            Some((0, _)) => Admission::SoldOut,
            Some(_) => Admission::Unknown,
            None => self.local().admit(item, quantity).await,
        }
    }

    async fn settle(&self, item: Uuid, admitted: i64, observed: Observed) {
        if !self.take_out(item, admitted, Some(observed)).await {
            self.local().settle(item, admitted, observed).await;
        }
    }

    async fn observe(&self, item: Uuid, observed: Observed) {
        let key = self.key(item);
        let key = key.as_str();
        let ran = self
            .gates
            .run(&[key], |mut conn| async move {
                self.observe
                    .key(key)
                    .arg(observed.stock)
                    .arg(observed.version)
                    .arg(self.ttl_ms())
                    .invoke_async::<i64>(&mut conn)
                    .await
            })
            .await;
        if ran.is_none() {
            self.local().observe(item, observed).await;
        }
    }

    async fn release(&self, item: Uuid, quantity: i64) {
        if !self.take_out(item, quantity, None).await {
            self.local().release(item, quantity).await;
        }
    }

    async fn claim_refresh(&self, item: Uuid, max_age: Duration) -> bool {
        let key = self.key(item);
        let key = key.as_str();
        let max_age_ms = u64::try_from(max_age.as_millis()).unwrap_or(u64::MAX);
        let claimed = self
            .gates
            .run(&[], |mut conn| async move {
                self.claim
                    .key(key)
                    .arg(max_age_ms)
                    .invoke_async::<i64>(&mut conn)
                    .await
            })
            .await;
        match claimed {
            Some(claimed) => claimed == 1,
            None => self.local().claim_refresh(item, max_age).await,
        }
    }

    async fn known_stock(&self, item: Uuid) -> Option<i64> {
        let key = self.key(item);
        let key = key.as_str();
        let stock = self
            .gates
            .run(&[], |mut conn| async move {
                conn.hget::<_, _, Option<i64>>(key, "stock").await
            })
            .await;
        match stock {
            Some(stock) => stock,
            None => self.local().known_stock(item).await,
        }
    }

    async fn forget(&self, item: Uuid) {
        let key = self.key(item);
        let key = key.as_str();
        let ran = self
            .gates
            .run(&[key], |mut conn| async move { conn.del::<_, i64>(key).await })
            .await;
        if ran.is_none() {
            self.local().forget(item).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::testing;

    /// A lease no test outlives: units expire only where a test wants it.
    const HOUR: Duration = Duration::from_secs(3600);

    fn obs(stock: i64, version: i64) -> Observed {
        Observed { stock, version }
    }

    #[tokio::test]
    async fn two_processes_never_admit_past_the_stock() {
        let Some(url) = testing::redis_url("two_processes_never_admit_past_the_stock") else {
            return;
        };
        let options = testing::options();
        let prefix = options.prefix.clone();
        let a = Arc::new(RedisStockGate::with_lease(
            testing::connect(&url, options.clone()).await,
            HOUR,
        ));
        let b = Arc::new(RedisStockGate::with_lease(
            testing::connect(&url, options).await,
            HOUR,
        ));
        let item = Uuid::now_v7();
        assert_eq!(a.admit(item, 1).await, Admission::Unknown);
        a.observe(item, obs(50, 1)).await;
        assert_eq!(b.known_stock(item).await, Some(50));
        let tasks: Vec<_> = (0..200)
            .map(|i| {
                let gate = if i % 2 == 0 { a.clone() } else { b.clone() };
                tokio::spawn(async move { gate.admit(item, 1).await })
            })
            .collect();
        let mut admitted = 0;
        for task in tasks {
            match task.await.unwrap() {
                Admission::Admitted => admitted += 1,
                Admission::SoldOut => {}
                Admission::Unknown => panic!("the item is known"),
            }
        }
        assert_eq!(admitted, 50);
        // A sells 30 of its units (version 2), B's 20 fail before the database.
        a.settle(item, 30, obs(20, 2)).await;
        assert_eq!(
            b.admit(item, 1).await,
            Admission::SoldOut,
            "B's 20 are still in flight"
        );
        b.release(item, 20).await;
        assert_eq!(a.known_stock(item).await, Some(20));
        for _ in 0..20 {
            assert_eq!(b.admit(item, 1).await, Admission::Admitted);
        }
        assert_eq!(a.admit(item, 1).await, Admission::SoldOut);
        testing::flush(&url, &prefix).await;
    }

    #[tokio::test]
    async fn stale_observations_are_ignored_and_settle_frees_units_anyway() {
        let Some(url) = testing::redis_url("stale_observations_are_ignored") else {
            return;
        };
        let options = testing::options();
        let prefix = options.prefix.clone();
        let gate = RedisStockGate::with_lease(testing::connect(&url, options).await, HOUR);
        let item = Uuid::now_v7();
        gate.observe(item, obs(10, 5)).await;
        gate.observe(item, obs(12, 4)).await;
        assert_eq!(gate.known_stock(item).await, Some(10));
        for _ in 0..10 {
            assert_eq!(gate.admit(item, 1).await, Admission::Admitted);
        }
        assert_eq!(gate.admit(item, 1).await, Admission::SoldOut);
        gate.settle(item, 4, obs(6, 9)).await;
        gate.settle(item, 2, obs(8, 7)).await; // late: its units go, its stock does not
        assert_eq!(gate.known_stock(item).await, Some(6));
        assert_eq!(gate.admit(item, 2).await, Admission::Admitted);
        assert_eq!(gate.admit(item, 1).await, Admission::SoldOut);
        testing::flush(&url, &prefix).await;
    }

    #[tokio::test]
    async fn a_dead_process_units_stop_counting() {
        let Some(url) = testing::redis_url("a_dead_process_units_stop_counting") else {
            return;
        };
        let options = testing::options();
        let prefix = options.prefix.clone();
        // Long enough that the first refusal below is not a race with it.
        let lease = Duration::from_secs(4);
        let item = Uuid::now_v7();
        {
            let doomed = RedisStockGate::with_lease(testing::connect(&url, options.clone()).await, lease);
            doomed.observe(item, obs(3, 1)).await;
            for _ in 0..3 {
                assert_eq!(doomed.admit(item, 1).await, Admission::Admitted);
            }
            // Dropped here without settling: the process died mid-purchase.
        }
        let survivor = RedisStockGate::with_lease(testing::connect(&url, options).await, lease);
        assert_eq!(survivor.admit(item, 1).await, Admission::SoldOut);
        let freed = testing::eventually(Duration::from_secs(15), || async {
            survivor.admit(item, 3).await == Admission::Admitted
        })
        .await;
        assert!(freed, "the dead process's units never stopped counting");
        testing::flush(&url, &prefix).await;
    }

    #[tokio::test]
    async fn a_flush_reads_as_unknown_until_reloaded() {
        let Some(url) = testing::redis_url("a_flush_reads_as_unknown_until_reloaded") else {
            return;
        };
        let options = testing::options();
        let prefix = options.prefix.clone();
        let gate = RedisStockGate::new(testing::connect(&url, options).await);
        let item = Uuid::now_v7();
        gate.observe(item, obs(5, 3)).await;
        assert_eq!(gate.admit(item, 2).await, Admission::Admitted);
        assert!(!testing::keys(&url, &prefix).await.is_empty());
        testing::flush(&url, &prefix).await; // what FLUSHALL or a restart does to our keys
        assert_eq!(gate.admit(item, 1).await, Admission::Unknown);
        assert_eq!(gate.known_stock(item).await, None);
        assert!(gate.claim_refresh(item, Duration::from_secs(1)).await);
        // A settle or release of an unknown item does not bring it back half-made.
        gate.settle(item, 2, obs(3, 4)).await;
        gate.release(item, 1).await;
        assert_eq!(gate.admit(item, 1).await, Admission::Unknown);
        // The caller reloads from the database.
        gate.observe(item, obs(3, 4)).await;
        assert_eq!(gate.admit(item, 3).await, Admission::Admitted);
        assert!(gate.gates.is_available(), "a missing key is not an outage");
        gate.forget(item).await;
        assert_eq!(gate.known_stock(item).await, None);
        testing::flush(&url, &prefix).await;
    }

    #[tokio::test]
    async fn one_refresh_claim_per_period_across_processes() {
        let Some(url) = testing::redis_url("one_refresh_claim_per_period_across_processes") else {
            return;
        };
        let options = testing::options();
        let prefix = options.prefix.clone();
        let a = Arc::new(RedisStockGate::new(testing::connect(&url, options.clone()).await));
        let b = Arc::new(RedisStockGate::new(testing::connect(&url, options).await));
        let item = Uuid::now_v7();
        a.observe(item, obs(0, 1)).await;
        // A period far longer than the test: only the aged view is claimable.
        let hour = Duration::from_secs(3600);
        assert!(!a.claim_refresh(item, hour).await, "just observed");
        // Age the view by hand (white box: `at` is the last observation).
        let _: i64 = testing::command(&url, redis::cmd("HSET").arg(a.key(item)).arg("at").arg(0)).await;
        let tasks: Vec<_> = (0..40)
            .map(|i| {
                let gate = if i % 2 == 0 { a.clone() } else { b.clone() };
                tokio::spawn(async move { gate.claim_refresh(item, hour).await })
            })
            .collect();
        let mut claimed = 0;
        for task in tasks {
            claimed += usize::from(task.await.unwrap());
        }
        assert_eq!(claimed, 1, "one re-read per period across processes");
        testing::flush(&url, &prefix).await;
    }

    #[tokio::test]
    async fn redis_and_local_gates_agree() {
        let Some(url) = testing::redis_url("redis_and_local_gates_agree") else {
            return;
        };
        let options = testing::options();
        let prefix = options.prefix.clone();
        let lease = HOUR;
        let shared = RedisStockGate::with_lease(testing::connect(&url, options).await, lease);
        let local = LocalStockGate::with_lease(lease);
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        let items: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
        let mut version = 0;
        for step in 0..600 {
            let item = items[rng.random_range(0..items.len())];
            let n = rng.random_range(0..4);
            // Versions mostly rise, sometimes arrive late.
            version += 1;
            let seen = version - rng.random_range(0..3) * i64::from(rng.random_bool(0.3));
            let observed = obs(rng.random_range(0..12), seen);
            match rng.random_range(0..6) {
                0 | 1 => assert_eq!(
                    shared.admit(item, n).await,
                    local.admit(item, n).await,
                    "step {step}"
                ),
                2 => {
                    shared.settle(item, n, observed).await;
                    local.settle(item, n, observed).await;
                }
                3 => {
                    shared.observe(item, observed).await;
                    local.observe(item, observed).await;
                }
                4 => {
                    shared.release(item, n).await;
                    local.release(item, n).await;
                }
                _ => assert_eq!(
                    shared.known_stock(item).await,
                    local.known_stock(item).await,
                    "step {step}"
                ),
            }
        }
        assert!(shared.gates.is_available());
        testing::flush(&url, &prefix).await;
    }
}
