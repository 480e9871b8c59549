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
