use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use async_trait::async_trait;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, RateLimiter as Governor};

/// How many requests a key may make: `burst` at once, refilled at `count`
/// per `period` (a GCRA token bucket).
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

    fn to_governor(self) -> Option<governor::Quota> {
        let burst = NonZeroU32::new(self.burst.max(1))?;
        let interval = self.period.checked_div(self.count.max(1))?;
        Some(governor::Quota::with_period(interval)?.allow_burst(burst))
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
    /// Counts one request from `ip`; refuses it when over the quota.
    async fn check(&self, ip: IpAddr) -> Result<(), RetryAfter>;

    /// Forgets idle clients so the state does not grow without bound.
    fn sweep(&self) {}
}

/// Rate limiting inside this process (governor's keyed GCRA).
pub struct LocalRateLimiter {
    limiter: Option<DefaultKeyedRateLimiter<IpAddr>>,
}

impl LocalRateLimiter {
    /// A quota of zero requests disables the limit.
    pub fn new(quota: Quota) -> Self {
        let limiter = if quota.count == 0 {
            None
        } else {
            quota.to_governor().map(Governor::keyed)
        };
        Self { limiter }
    }
}

#[async_trait]
impl RateLimiter for LocalRateLimiter {
    async fn check(&self, ip: IpAddr) -> Result<(), RetryAfter> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        limiter
            .check_key(&ip)
            .map_err(|not_until| RetryAfter(not_until.wait_time_from(DefaultClock::default().now())))
    }

    fn sweep(&self) {
        if let Some(limiter) = &self.limiter {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn allows_the_burst_then_refuses_with_a_wait() {
        let limiter = LocalRateLimiter::new(Quota::per_minute(5));
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..5 {
            assert!(limiter.check(ip).await.is_ok());
        }
        let wait = limiter.check(ip).await.unwrap_err();
        assert!((1..=12).contains(&wait.seconds()), "{wait:?}");
        // Another address has its own budget.
        assert!(limiter.check("10.0.0.2".parse().unwrap()).await.is_ok());
    }

    #[tokio::test]
    async fn zero_disables() {
        let limiter = LocalRateLimiter::new(Quota::per_second(0, 0));
        for _ in 0..1000 {
            assert!(limiter.check(IpAddr::from([127, 0, 0, 1])).await.is_ok());
        }
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(RetryAfter(Duration::from_millis(10)).seconds(), 1);
        assert_eq!(RetryAfter(Duration::from_millis(2500)).seconds(), 3);
        assert_eq!(RetryAfter(Duration::ZERO).seconds(), 1);
    }
}
