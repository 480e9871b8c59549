//! The in-process store of the GCRA state.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use moka::ops::compute::Op;
use moka::sync::Cache;

use super::{Quota, RateLimiter, RetryAfter};
use crate::gcra::{Gcra, Verdict};

/// Addresses one local limiter remembers at most.
pub const LOCAL_MAX_ADDRESSES: u64 = 100_000;

/// Rate limiting inside this process.
///
/// Bound: at most [`LOCAL_MAX_ADDRESSES`] addresses per limiter (about
/// 100 bytes each); an address idle for longer than the quota needs to
/// refill (`burst * period / count`) is dropped, as its state then equals a
/// fresh one. Under a flood of more distinct addresses than the bound the
/// least recently used are evicted, which can only make the limit milder
/// for them, never stricter.
pub struct LocalRateLimiter {
    gcra: Option<Gcra>,
    /// TATs in microseconds since `epoch`.
    tats: Cache<IpAddr, u64>,
    epoch: Instant,
}

impl LocalRateLimiter {
    /// A quota of zero requests disables the limit.
    pub fn new(quota: Quota) -> Self {
        let gcra = quota.gcra();
        let idle = gcra.map_or(Duration::from_secs(1), |g| g.idle_expiry());
        LocalRateLimiter {
            gcra,
            tats: Cache::builder()
                .max_capacity(LOCAL_MAX_ADDRESSES)
                .time_to_idle(idle)
                .build(),
            epoch: Instant::now(),
        }
    }

    fn now_us(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    fn decide(&self, ip: IpAddr, count: bool) -> Result<(), RetryAfter> {
        let Some(gcra) = self.gcra else {
            return Ok(());
        };
        let now = self.now_us();
        let mut verdict = Verdict::Deny { retry_after_us: 0 };
        if count {
            // One key-level lock: concurrent checks of one address serialize.
            self.tats.entry(ip).and_compute_with(|entry| {
                verdict = gcra.decide(entry.map(|e| e.into_value()), now);
                match verdict {
                    Verdict::Allow { tat } => Op::Put(tat),
                    Verdict::Deny { .. } => Op::Nop,
                }
            });
        } else {
            verdict = gcra.decide(self.tats.get(&ip), now);
        }
        match verdict {
            Verdict::Allow { .. } => Ok(()),
            Verdict::Deny { retry_after_us } => Err(RetryAfter(Duration::from_micros(retry_after_us))),
        }
    }
}

#[async_trait]
impl RateLimiter for LocalRateLimiter {
    async fn check(&self, ip: IpAddr) -> Result<(), RetryAfter> {
        self.decide(ip, true)
    }

    async fn peek(&self, ip: IpAddr) -> Result<(), RetryAfter> {
        self.decide(ip, false)
    }

    fn sweep(&self) {
        self.tats.run_pending_tasks();
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
    async fn peek_counts_nothing() {
        let limiter = LocalRateLimiter::new(Quota {
            count: 2,
            period: Duration::from_secs(3600),
            burst: 2,
        });
        let ip: IpAddr = "::1".parse().unwrap();
        for _ in 0..100 {
            assert!(limiter.peek(ip).await.is_ok());
        }
        assert!(limiter.check(ip).await.is_ok());
        assert!(limiter.peek(ip).await.is_ok());
        assert!(limiter.check(ip).await.is_ok());
        // The budget is spent: peek says so, and still counts nothing.
        let wait = limiter.peek(ip).await.unwrap_err();
        assert!(wait.seconds() >= 1);
        assert!(limiter.check(ip).await.is_err());
    }

    #[tokio::test]
    async fn zero_disables() {
        let limiter = LocalRateLimiter::new(Quota::per_second(0, 0));
        for _ in 0..1000 {
            assert!(limiter.check(IpAddr::from([127, 0, 0, 1])).await.is_ok());
            assert!(limiter.peek(IpAddr::from([127, 0, 0, 1])).await.is_ok());
        }
    }

    #[tokio::test]
    async fn concurrent_checks_never_exceed_the_burst() {
        let limiter = std::sync::Arc::new(LocalRateLimiter::new(Quota {
            count: 7,
            period: Duration::from_secs(3600),
            burst: 7,
        }));
        let ip = IpAddr::from([10, 1, 2, 3]);
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let limiter = limiter.clone();
                tokio::spawn(async move { limiter.check(ip).await.is_ok() })
            })
            .collect();
        let mut passed = 0;
        for task in tasks {
            passed += usize::from(task.await.unwrap());
        }
        assert_eq!(passed, 7);
    }
}
