//! The in-process stock gate (one `serve`, or an api process's fallback).

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use moka::sync::Cache;
use uuid::Uuid;

use super::in_flight::{Buckets, InFlight};
use super::{Admission, DEFAULT_LEASE, Observed, StockGate};

/// Items one local gate remembers at most.
pub const LOCAL_MAX_ITEMS: u64 = 100_000;
/// An item nobody asked about for this long is forgotten (reloaded on use).
pub const LOCAL_ITEM_IDLE: Duration = Duration::from_secs(3600);

/// Milliseconds on a monotonic clock; settable in tests.
pub(crate) type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

#[derive(Debug)]
struct ItemCount {
    stock: i64,
    version: i64,
    in_flight: InFlight,
    /// When the stock was last observed or a refresh claimed (clock ms).
    observed_at: i64,
}

impl ItemCount {
    /// Applies an observation unless it is older than the one held.
    fn observe(&mut self, observed: Observed, now: i64) {
        if observed.version >= self.version {
            self.stock = observed.stock;
            self.version = observed.version;
            self.observed_at = now;
        }
    }
}

/// The stock gate inside this process.
///
/// Bound: at most [`LOCAL_MAX_ITEMS`] items (about 150 bytes each), each
/// dropped after [`LOCAL_ITEM_IDLE`] without use; a dropped item answers
/// `Unknown` and is reloaded from the database.
pub struct LocalStockGate {
    items: Cache<Uuid, Arc<Mutex<ItemCount>>>,
    buckets: Buckets,
    clock: Clock,
}

fn lock(entry: &Mutex<ItemCount>) -> MutexGuard<'_, ItemCount> {
    entry.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Default for LocalStockGate {
    fn default() -> Self {
        Self::new()
    }
}

impl LocalStockGate {
    pub fn new() -> Self {
        Self::with_lease(DEFAULT_LEASE)
    }

    /// `lease`: how long an admitted unit counts at least when nobody
    /// settles or releases it (see the module docs).
    pub fn with_lease(lease: Duration) -> Self {
        let epoch = Instant::now();
        Self::with_clock(
            lease,
            Arc::new(move || i64::try_from(epoch.elapsed().as_millis()).unwrap_or(i64::MAX)),
        )
    }

    pub(crate) fn with_clock(lease: Duration, clock: Clock) -> Self {
        LocalStockGate {
            items: Cache::builder()
                .max_capacity(LOCAL_MAX_ITEMS)
                .time_to_idle(LOCAL_ITEM_IDLE)
                .build(),
            buckets: Buckets::for_lease(lease),
            clock,
        }
    }

    fn entry(&self, item: Uuid) -> Option<Arc<Mutex<ItemCount>>> {
        self.items.get(&item)
    }

    /// Forgets every item (a Redis gate resets its twin at each outage).
    pub(crate) fn clear(&self) {
        self.items.invalidate_all();
    }

    fn remove_in_flight(&self, count: &mut ItemCount, units: i64) {
        let now = (self.clock)();
        count.in_flight.remove(self.buckets.index(now), units);
    }
}

#[async_trait]
impl StockGate for LocalStockGate {
    async fn admit(&self, item: Uuid, quantity: i64) -> Admission {
        let Some(entry) = self.entry(item) else {
            return Admission::Unknown;
        };
        let now = self.buckets.index((self.clock)());
        let mut count = lock(&entry);
        if count.stock - count.in_flight.total(now) >= quantity {
            count.in_flight.add(now, quantity);
            Admission::Admitted
        } else {
            Admission::SoldOut
        }
    }

    async fn settle(&self, item: Uuid, admitted: i64, observed: Observed) {
        if let Some(entry) = self.entry(item) {
            let mut count = lock(&entry);
            self.remove_in_flight(&mut count, admitted);
            count.observe(observed, (self.clock)());
        }
    }

    async fn observe(&self, item: Uuid, observed: Observed) {
        let now = (self.clock)();
        let entry = self.items.get_with(item, || {
            Arc::new(Mutex::new(ItemCount {
                stock: observed.stock,
                version: observed.version,
                in_flight: InFlight::default(),
                observed_at: now,
            }))
        });
        lock(&entry).observe(observed, now);
    }

    async fn release(&self, item: Uuid, quantity: i64) {
        if let Some(entry) = self.entry(item) {
            self.remove_in_flight(&mut lock(&entry), quantity);
        }
    }

    async fn claim_refresh(&self, item: Uuid, max_age: Duration) -> bool {
        let Some(entry) = self.entry(item) else {
            return true;
        };
        let now = (self.clock)();
        let max_age = i64::try_from(max_age.as_millis()).unwrap_or(i64::MAX);
        let mut count = lock(&entry);
        if now.saturating_sub(count.observed_at) > max_age {
            count.observed_at = now;
            true
        } else {
            false
        }
    }

    async fn known_stock(&self, item: Uuid) -> Option<i64> {
        self.entry(item).map(|entry| lock(&entry).stock)
    }

    async fn forget(&self, item: Uuid) {
        self.items.invalidate(&item);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicI64, Ordering};

    use super::*;

    fn obs(stock: i64, version: i64) -> Observed {
        Observed { stock, version }
    }

    /// A gate on a clock the test moves.
    fn gate(lease: Duration) -> (LocalStockGate, Arc<AtomicI64>) {
        let now = Arc::new(AtomicI64::new(1_000_000));
        let clock = now.clone();
        (
            LocalStockGate::with_clock(lease, Arc::new(move || clock.load(Ordering::SeqCst))),
            now,
        )
    }

    #[tokio::test]
    async fn admits_up_to_the_stock_and_learns_from_the_database() {
        let gate = LocalStockGate::new();
        let item = Uuid::now_v7();
        assert_eq!(gate.admit(item, 1).await, Admission::Unknown);
        gate.observe(item, obs(3, 1)).await;
        assert_eq!(gate.admit(item, 2).await, Admission::Admitted);
        assert_eq!(gate.admit(item, 2).await, Admission::SoldOut);
        assert_eq!(gate.admit(item, 1).await, Admission::Admitted);
        assert_eq!(gate.admit(item, 1).await, Admission::SoldOut);
        // The database sold the 2 but refused the 1 (someone elsewhere bought it).
        gate.settle(item, 3, obs(0, 3)).await;
        assert_eq!(gate.admit(item, 1).await, Admission::SoldOut);
        // A cancel returns a unit: buyable again at once.
        gate.observe(item, obs(1, 4)).await;
        assert_eq!(gate.admit(item, 1).await, Admission::Admitted);
        gate.release(item, 1).await;
        assert_eq!(gate.admit(item, 1).await, Admission::Admitted);
        assert_eq!(gate.known_stock(item).await, Some(1));
        gate.forget(item).await;
        assert_eq!(gate.admit(item, 1).await, Admission::Unknown);
        assert_eq!(gate.known_stock(item).await, None);
    }

    #[tokio::test]
    async fn stale_observations_are_ignored_but_settle_still_frees_its_units() {
        let gate = LocalStockGate::new();
        let item = Uuid::now_v7();
        gate.observe(item, obs(10, 5)).await;
        gate.observe(item, obs(12, 4)).await;
        assert_eq!(gate.known_stock(item).await, Some(10));
        for _ in 0..10 {
            assert_eq!(gate.admit(item, 1).await, Admission::Admitted);
        }
        assert_eq!(gate.admit(item, 1).await, Admission::SoldOut);
        // A newer answer sold 4 (version 9); a late one (version 7) says 8.
        gate.settle(item, 4, obs(6, 9)).await;
        gate.settle(item, 2, obs(8, 7)).await;
        assert_eq!(gate.known_stock(item).await, Some(6));
        // 6 in stock, 4 still in flight: 2 admissible.
        assert_eq!(gate.admit(item, 2).await, Admission::Admitted);
        assert_eq!(gate.admit(item, 1).await, Admission::SoldOut);
        // The same version again is applied (it is the same state).
        gate.observe(item, obs(7, 9)).await;
        assert_eq!(gate.known_stock(item).await, Some(7));
    }

    #[tokio::test]
    async fn lost_admissions_stop_counting_after_the_lease() {
        let (gate, now) = gate(Duration::from_secs(4));
        let item = Uuid::now_v7();
        gate.observe(item, obs(2, 1)).await;
        assert_eq!(gate.admit(item, 2).await, Admission::Admitted);
        // Never settled (the process holding them died).
        now.fetch_add(3_999, Ordering::SeqCst);
        assert_eq!(gate.admit(item, 1).await, Admission::SoldOut);
        now.fetch_add(1_001, Ordering::SeqCst);
        assert_eq!(gate.admit(item, 1).await, Admission::Admitted);
        // A late settle of the expired units: the count stops at zero.
        gate.settle(item, 2, obs(2, 1)).await;
        assert_eq!(gate.admit(item, 2).await, Admission::Admitted);
        assert_eq!(gate.admit(item, 1).await, Admission::SoldOut);
    }

    #[tokio::test]
    async fn claim_refresh_once_per_period() {
        let (gate, now) = gate(DEFAULT_LEASE);
        let item = Uuid::now_v7();
        let second = Duration::from_secs(1);
        assert!(gate.claim_refresh(item, second).await, "unknown: load it");
        gate.observe(item, obs(5, 1)).await;
        assert!(!gate.claim_refresh(item, second).await);
        now.fetch_add(1_001, Ordering::SeqCst);
        assert!(gate.claim_refresh(item, second).await);
        assert!(!gate.claim_refresh(item, second).await, "one caller per period");
        now.fetch_add(1_001, Ordering::SeqCst);
        // A stale observation does not count as fresh.
        gate.observe(item, obs(9, 0)).await;
        assert!(gate.claim_refresh(item, second).await);
    }
}
