//! Admission gates that sit in front of the database: rate limits, stock
//! admission and auction leaderboards.
//!
//! Each gate is a trait with an in-process implementation (the zero-setup
//! default) and a Redis one that every process of a deployment shares.
//! The Redis ones go through one [`RedisGates`] handle and fall back to
//! their in-process twin while Redis is unreachable, returning to Redis on
//! their own when it answers again. See `README.md` beside this crate for
//! the keys, the bounds and the behaviour during an outage.

mod error;
pub mod gcra;
pub mod leaderboard;
pub mod rate_limit;
mod shared;
pub mod stock;
#[cfg(test)]
mod testing;

pub use error::GateError;
pub use leaderboard::{Leaderboard, LocalLeaderboard, RedisLeaderboard, Standing};
pub use rate_limit::{LocalRateLimiter, Quota, RateLimiter, RedisRateLimiter, RetryAfter};
pub use shared::{RedisGates, RedisOptions};
pub use stock::{Admission, LocalStockGate, Observed, RedisStockGate, StockGate};
