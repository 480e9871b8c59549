//! Per-client-address rate limits: one algorithm ([`crate::gcra`]), two
//! stores. [`LocalRateLimiter`] keeps the state in this process;
//! [`RedisRateLimiter`] keeps it in Redis so every api process counts
//! against one budget, and falls back to a local twin while Redis is away.

mod local;
mod redis;

use std::net::IpAddr;
use std::time::Duration;

use async_trait::async_trait;

use crate::gcra::Gcra;

pub use local::LocalRateLimiter;
pub use redis::RedisRateLimiter;

/// How many requests a key may make: `burst` at once, refilled at `count`
/// per `period` (GCRA). A `count` of 0 disables the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub count: u32,
    pub period: Duration,
    pub burst: u32,
}

impl Quota {
    pub fn per_second(count: u32, burst: u32) -> Self {
        Quota {
            count,
            period: Duration::from_secs(1),
            burst,
        }
    }

    pub fn per_minute(count: u32) -> Self {
        Quota {
            count,
            period: Duration::from_secs(60),
            burst: count,
        }
    }

    /// The algorithm's parameters; `None` when the quota is disabled.
    pub fn gcra(self) -> Option<Gcra> {
        Gcra::new(self.count, self.period, self.burst)
    }
}

/// The wait a refused caller is told to observe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub Duration);

impl RetryAfter {
    /// Whole seconds for a `Retry-After` header: rounded up, at least 1.
    pub fn seconds(self) -> u64 {
        let secs = self.0.as_secs() + u64::from(self.0.subsec_nanos() > 0);
        secs.max(1)
    }
}

/// A per-client-address rate limit.
#[async_trait]
pub trait RateLimiter: Send + Sync {
    /// Counts one request from `ip`; refuses it when over the quota (a
    /// refused request is not counted).
    async fn check(&self, ip: IpAddr) -> Result<(), RetryAfter>;

    /// Whether one request from `ip` would pass now, counting nothing (login
    /// peeks before an attempt and counts only failures with `check`).
    async fn peek(&self, ip: IpAddr) -> Result<(), RetryAfter>;

    /// Drops expired local state now (it also goes on its own).
    fn sweep(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(RetryAfter(Duration::from_millis(10)).seconds(), 1);
        assert_eq!(RetryAfter(Duration::from_millis(2500)).seconds(), 3);
        assert_eq!(RetryAfter(Duration::from_micros(2_000_001)).seconds(), 3);
        assert_eq!(RetryAfter(Duration::from_secs(2)).seconds(), 2);
        assert_eq!(RetryAfter(Duration::ZERO).seconds(), 1);
    }

    #[test]
    fn quota_zero_disables() {
        assert!(Quota::per_second(0, 10).gcra().is_none());
        assert!(Quota::per_minute(5).gcra().is_some());
    }
}
