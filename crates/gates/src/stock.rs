//! The stock admission gate: an in-memory count per event item that turns
//! away sold-out traffic before it reaches the database.
//!
//! The gate is a shortcut, never the authority. It tracks the database's
//! last reported stock and the units it has let through but not yet seen
//! settled ("in flight"); a buyer is admitted while `stock - in_flight`
//! covers the request. Every database answer carries the item's stock and
//! corrects the gate, so a unit returned by cancel or expiry is buyable
//! again at once, and a gate that admitted too many is told the truth by
//! the guarded decrement.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Admitted,
    SoldOut,
    /// The gate has not seen this item yet: load its stock, `observe` it,
    /// and ask again.
    Unknown,
}

#[derive(Debug)]
struct ItemCount {
    stock: i64,
    in_flight: i64,
    observed_at: Instant,
}

/// The in-process gate (one `serve` or one api process).
#[derive(Default)]
pub struct StockGate {
    items: DashMap<Uuid, Arc<Mutex<ItemCount>>>,
}

impl StockGate {
    pub fn new() -> Self {
        Self::default()
    }

    fn entry(&self, item: Uuid) -> Option<Arc<Mutex<ItemCount>>> {
        self.items.get(&item).map(|e| e.value().clone())
    }

    /// Lets `quantity` units through if the known stock covers them.
    pub fn admit(&self, item: Uuid, quantity: i64) -> Admission {
        let Some(entry) = self.entry(item) else {
            return Admission::Unknown;
        };
        let mut count = entry.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if count.stock - count.in_flight >= quantity {
            count.in_flight += quantity;
            Admission::Admitted
        } else {
            Admission::SoldOut
        }
    }

    /// Admitted units have been answered by the database, which reported
    /// `stock` remaining after (or without) selling them.
    pub fn settle(&self, item: Uuid, admitted: i64, stock: i64) {
        if let Some(entry) = self.entry(item) {
            let mut count = entry.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            count.in_flight = (count.in_flight - admitted).max(0);
            count.stock = stock;
            count.observed_at = Instant::now();
        }
    }

    /// The database reported this stock outside a purchase (first load,
    /// cancel, expiry, periodic refresh).
    pub fn observe(&self, item: Uuid, stock: i64) {
        let entry = self
            .items
            .entry(item)
            .or_insert_with(|| {
                Arc::new(Mutex::new(ItemCount {
                    stock,
                    in_flight: 0,
                    observed_at: Instant::now(),
                }))
            })
            .value()
            .clone();
        let mut count = entry.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        count.stock = stock;
        count.observed_at = Instant::now();
    }

    /// Admitted units that never reached the database (the request failed
    /// before it): give them back.
    pub fn release(&self, item: Uuid, quantity: i64) {
        if let Some(entry) = self.entry(item) {
            let mut count = entry.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            count.in_flight = (count.in_flight - quantity).max(0);
        }
    }

    /// Whether the gate's view is older than `max_age` (another process may
    /// have changed the stock since): time to re-read the database.
    pub fn is_stale(&self, item: Uuid, max_age: Duration) -> bool {
        self.entry(item).is_none_or(|entry| {
            let count = entry.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            count.observed_at.elapsed() > max_age
        })
    }

    /// Claims the right to re-read an item whose view is older than
    /// `max_age`: true for one caller per period, so a crowd of sold-out
    /// answers triggers one database read, not one each.
    pub fn claim_refresh(&self, item: Uuid, max_age: Duration) -> bool {
        let Some(entry) = self.entry(item) else {
            return true;
        };
        let mut count = entry.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if count.observed_at.elapsed() > max_age {
            count.observed_at = Instant::now();
            true
        } else {
            false
        }
    }

    /// The stock the gate believes the database holds.
    pub fn known_stock(&self, item: Uuid) -> Option<i64> {
        self.entry(item).map(|entry| {
            entry
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .stock
        })
    }

    /// Forgets an item (its event was edited or deleted).
    pub fn forget(&self, item: Uuid) {
        self.items.remove(&item);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_up_to_the_stock_and_learns_from_the_database() {
        let gate = StockGate::new();
        let item = Uuid::now_v7();
        assert_eq!(gate.admit(item, 1), Admission::Unknown);
        gate.observe(item, 3);
        assert_eq!(gate.admit(item, 2), Admission::Admitted);
        assert_eq!(gate.admit(item, 2), Admission::SoldOut);
        assert_eq!(gate.admit(item, 1), Admission::Admitted);
        assert_eq!(gate.admit(item, 1), Admission::SoldOut);
        // The database sold the 2 but refused the 1 (someone elsewhere bought it).
        gate.settle(item, 3, 0);
        assert_eq!(gate.admit(item, 1), Admission::SoldOut);
        // A cancel returns a unit: buyable again at once.
        gate.observe(item, 1);
        assert_eq!(gate.admit(item, 1), Admission::Admitted);
        gate.release(item, 1);
        assert_eq!(gate.admit(item, 1), Admission::Admitted);
    }

    #[test]
    fn staleness() {
        let gate = StockGate::new();
        let item = Uuid::now_v7();
        assert!(gate.is_stale(item, Duration::from_secs(1)));
        gate.observe(item, 5);
        assert!(!gate.is_stale(item, Duration::from_secs(1)));
        assert_eq!(gate.known_stock(item), Some(5));
    }
}
