//! The stock admission gate: a count per event item that turns away
//! sold-out traffic before it reaches the database.
//!
//! The gate is a shortcut, never the authority. It holds the database's
//! latest reported stock of an item and the units it let through that the
//! database has not answered yet ("in flight"); a buyer is admitted while
//! `stock - in_flight` covers the request. Every database answer carries
//! the item's stock and corrects the gate, so a unit returned by cancel or
//! expiry is buyable again at once, and a gate that admitted too many is
//! told the truth by the guarded decrement.
//!
//! # Versions
//! Each observation carries the item's stock version, a sequence the
//! database increments on every stock change. An observation older than
//! the one held is ignored, so a late answer cannot overwrite a newer one
//! (stock shown to pages never goes backwards). Equal versions are applied
//! (the same database state, seen twice).
//!
//! # Why in-flight units expire on their own
//! Admitted units can be lost without being settled or released: a process
//! dies mid-purchase, or a request future is dropped between admission and
//! the database (a client that hangs up). Counting such units forever would
//! turn buyers away while the database still has stock, which the gate must
//! never do. So in-flight units live in time buckets (a quarter of the
//! lease wide) and each unit stops counting between `lease` and
//! `1.25 * lease` after its admission, whoever admitted it; no heartbeat or
//! process registry is needed and a dead process's units simply age out.
//! Settling takes units from the newest bucket first, so what stays in
//! flight is counted in the oldest buckets and ages out soonest: a leaked
//! unit stops counting within `1.25 * lease` even under steady traffic.
//! The price is on the safe side: a purchase whose database answer takes
//! longer than the lease, or traffic sustained for longer than the lease
//! (the backlog is then counted in old buckets), makes the in-flight count
//! run low and the gate admit more than the stock covers; the database
//! guard turns those into correct `sold_out` answers, and the gate never
//! counts more units in flight than were admitted within the last
//! `1.25 * lease`.

mod in_flight;
mod local;
mod redis;

use std::time::Duration;

use async_trait::async_trait;
use uuid::Uuid;

pub use local::LocalStockGate;
pub use redis::RedisStockGate;

/// How long an admitted unit counts at least, by default.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Admitted,
    SoldOut,
    /// The gate has not seen this item (or lost it: a Redis restart):
    /// load its stock, `observe` it, and ask again.
    Unknown,
}

/// What the database said about an item's stock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observed {
    pub stock: i64,
    /// The item's stock version: higher is newer.
    pub version: i64,
}

/// The admission gate of event items.
#[async_trait]
pub trait StockGate: Send + Sync {
    /// Lets `quantity` units through if the known stock covers them.
    async fn admit(&self, item: Uuid, quantity: i64) -> Admission;

    /// `admitted` units have been answered by the database, which reported
    /// `observed` after (or without) selling them. The units leave the
    /// in-flight count even when the observation is stale.
    async fn settle(&self, item: Uuid, admitted: i64, observed: Observed);

    /// The database reported this stock outside a purchase (first load,
    /// cancel, expiry, periodic refresh).
    async fn observe(&self, item: Uuid, observed: Observed);

    /// Admitted units that never reached the database (the request failed
    /// before it): give them back.
    async fn release(&self, item: Uuid, quantity: i64);

    /// Claims the right to re-read an item whose view is older than
    /// `max_age`: true for one caller per period (across processes for the
    /// shared gate), so a crowd of sold-out answers triggers one database
    /// read, not one each. True for an unknown item.
    async fn claim_refresh(&self, item: Uuid, max_age: Duration) -> bool;

    /// The stock the gate believes the database holds.
    async fn known_stock(&self, item: Uuid) -> Option<i64>;

    /// Forgets an item (its event was edited or deleted).
    async fn forget(&self, item: Uuid);
}
