//! Admission gates that sit in front of the database: rate limits now,
//! stock admission and leaderboards as those domains land.
//!
//! Each gate is a trait with an in-process implementation (the zero-setup
//! default); a Redis implementation takes over when several processes must
//! share the counters.

pub mod rate_limit;
pub mod stock;

pub use rate_limit::{LocalRateLimiter, Quota, RateLimiter, RetryAfter};
pub use stock::{Admission, StockGate};
