//! The Redis store of the GCRA state: one key per (limit, address), one
//! atomic script per request, Redis's clock for every process.

use std::net::IpAddr;
use std::time::Duration;

use async_trait::async_trait;
use redis::Script;

use super::{LocalRateLimiter, Quota, RateLimiter, RetryAfter};
use crate::gcra::Gcra;
use crate::shared::RedisGates;

/// A rate limit shared by every process on one Redis.
///
/// Keys: `{prefix}rl:{name}:{address}` (a string: the TAT in µs), expiring
/// when the TAT passes, so Redis holds at most the addresses seen within
/// one refill period. While Redis is away the limit is enforced per process
/// by a local twin ([`LocalRateLimiter`], bounded as documented there).
pub struct RedisRateLimiter {
    gates: RedisGates,
    name: String,
    gcra: Option<Gcra>,
    script: Script,
    local: LocalRateLimiter,
}

impl RedisRateLimiter {
    /// `name` tells the limits apart (login, api, purchase, bid); a quota
    /// of zero requests disables the limit.
    pub fn new(gates: RedisGates, name: &str, quota: Quota) -> Self {
        RedisRateLimiter {
            gates,
            name: name.to_owned(),
            gcra: quota.gcra(),
            script: Script::new(include_str!("gcra.lua")),
            local: LocalRateLimiter::new(quota),
        }
    }

    fn key(&self, ip: IpAddr) -> String {
        self.gates.key(format_args!("rl:{}:{ip}", self.name))
    }

    /// Asks Redis; `None` when it cannot answer (then ask the twin).
    async fn decide(
        &self,
        gcra: Gcra,
        ip: IpAddr,
        count: bool,
        now_us: Option<u64>,
    ) -> Option<Result<(), RetryAfter>> {
        let key = self.key(ip);
        let key = key.as_str();
        let now = now_us.map(|n| n.to_string()).unwrap_or_default();
        let now = now.as_str();
        // Rate-limit keys are not remembered as dirty: a TAT that missed
        // some requests during an outage only errs on the lenient side.
        let (passed, retry_after_us): (i64, i64) = self
            .gates
            .run(&[], |mut conn| async move {
                self.script
                    .key(key)
                    .arg(gcra.interval_us)
                    .arg(gcra.tolerance_us)
                    .arg(if count { "1" } else { "0" })
                    .arg(now)
                    .invoke_async(&mut conn)
                    .await
            })
            .await?;
        Some(if passed == 1 {
            Ok(())
        } else {
            Err(RetryAfter(Duration::from_micros(
                retry_after_us.max(0).unsigned_abs(),
            )))
        })
    }

    async fn check_or_peek(&self, ip: IpAddr, count: bool) -> Result<(), RetryAfter> {
        let Some(gcra) = self.gcra else {
            return Ok(());
        };
        match self.decide(gcra, ip, count, None).await {
            Some(verdict) => verdict,
            None if count => self.local.check(ip).await,
            None => self.local.peek(ip).await,
        }
    }

    /// Runs the script at a given instant (µs): lets tests compare it with
    /// the pure arithmetic.
    #[cfg(test)]
    pub(crate) async fn decide_at(
        &self,
        ip: IpAddr,
        count: bool,
        now_us: u64,
    ) -> Option<Result<(), RetryAfter>> {
        self.decide(self.gcra?, ip, count, Some(now_us)).await
    }
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn check(&self, ip: IpAddr) -> Result<(), RetryAfter> {
        self.check_or_peek(ip, true).await
    }

    async fn peek(&self, ip: IpAddr) -> Result<(), RetryAfter> {
        self.check_or_peek(ip, false).await
    }

    fn sweep(&self) {
        self.local.sweep();
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::gcra::Verdict;
    use crate::testing;

    fn hourly(count: u32) -> Quota {
        // A long period: nothing refills while the test runs, however slow.
        Quota {
            count,
            period: Duration::from_secs(3600),
            burst: count,
        }
    }

    #[tokio::test]
    async fn two_processes_share_one_budget_and_peek_counts_nothing() {
        let Some(url) = testing::redis_url("two_processes_share_one_budget") else {
            return;
        };
        let options = testing::options();
        let prefix = options.prefix.clone();
        // Two handles: two api processes on one Redis.
        let a = RedisRateLimiter::new(testing::connect(&url, options.clone()).await, "login", hourly(5));
        let b = RedisRateLimiter::new(testing::connect(&url, options).await, "login", hourly(5));
        let ip: IpAddr = "203.0.113.7".parse().unwrap();
        for _ in 0..50 {
            assert!(a.peek(ip).await.is_ok());
            assert!(b.peek(ip).await.is_ok());
        }
        let mut passed = 0;
        for i in 0..20 {
            let limiter = if i % 2 == 0 { &a } else { &b };
            if limiter.check(ip).await.is_ok() {
                passed += 1;
            }
        }
        assert_eq!(passed, 5, "the limit holds across processes");
        let wait = b.peek(ip).await.unwrap_err();
        assert!(wait.seconds() > 60, "{wait:?}");
        // Another address, another limit name: their own budgets.
        assert!(a.check("203.0.113.8".parse().unwrap()).await.is_ok());
        let purchase = RedisRateLimiter::new(a.gates.clone(), "purchase", hourly(1));
        assert!(purchase.check(ip).await.is_ok());
        assert!(a.gates.is_available() && b.gates.is_available());
        testing::flush(&url, &prefix).await;
    }

    #[tokio::test]
    async fn concurrent_checks_from_two_processes_never_exceed_the_burst() {
        let Some(url) = testing::redis_url("concurrent_checks_from_two_processes") else {
            return;
        };
        let options = testing::options();
        let prefix = options.prefix.clone();
        let a = std::sync::Arc::new(RedisRateLimiter::new(
            testing::connect(&url, options.clone()).await,
            "purchase",
            hourly(13),
        ));
        let b = std::sync::Arc::new(RedisRateLimiter::new(
            testing::connect(&url, options).await,
            "purchase",
            hourly(13),
        ));
        let ip: IpAddr = "2001:db8::1".parse().unwrap();
        let tasks: Vec<_> = (0..60)
            .map(|i| {
                let limiter = if i % 2 == 0 { a.clone() } else { b.clone() };
                tokio::spawn(async move { limiter.check(ip).await.is_ok() })
            })
            .collect();
        let mut passed = 0;
        for task in tasks {
            passed += usize::from(task.await.unwrap());
        }
        assert_eq!(passed, 13);
        testing::flush(&url, &prefix).await;
    }

    #[tokio::test]
    async fn the_script_does_the_pure_arithmetic() {
        let Some(url) = testing::redis_url("the_script_does_the_pure_arithmetic") else {
            return;
        };
        let options = testing::options();
        let prefix = options.prefix.clone();
        let gates = testing::connect(&url, options).await;
        let mut rng = rand::rngs::StdRng::seed_from_u64(42);
        // Periods of an hour or more: each key's TTL (from the instants the
        // test passes in) then outlives any pause of the test on Redis's
        // real clock, so no key expires between two steps.
        let hour = Duration::from_secs(3600);
        let quotas = [
            Quota {
                count: 5,
                period: hour,
                burst: 10,
            },
            Quota {
                count: 60,
                period: hour,
                burst: 1,
            },
            Quota {
                count: 7,
                period: hour * 3 / 2,
                burst: 4,
            },
            Quota {
                count: 3,
                period: hour,
                burst: 3,
            },
        ];
        for (q, quota) in quotas.into_iter().enumerate() {
            let limiter = RedisRateLimiter::new(gates.clone(), &format!("q{q}"), quota);
            let gcra = quota.gcra().unwrap();
            let ip = IpAddr::from([192, 0, 2, q as u8]);
            let mut tat = None;
            // The key's TTL runs on Redis's clock: keep the test's instants
            // near it so a key never expires between steps.
            let mut now = 1_700_000_000_000_000u64;
            for step in 0..300 {
                now += rng.random_range(0..gcra.interval_us);
                let count = rng.random_bool(0.8);
                let expected = match gcra.decide(tat, now) {
                    Verdict::Allow { tat: next } => {
                        if count {
                            tat = Some(next);
                        }
                        Ok(())
                    }
                    Verdict::Deny { retry_after_us } => {
                        Err(RetryAfter(Duration::from_micros(retry_after_us)))
                    }
                };
                let got = limiter.decide_at(ip, count, now).await.expect("Redis answers");
                assert_eq!(got, expected, "quota {q}, step {step}");
            }
        }
        testing::flush(&url, &prefix).await;
    }

    #[tokio::test]
    async fn keys_expire_with_the_budget() {
        let Some(url) = testing::redis_url("keys_expire_with_the_budget") else {
            return;
        };
        let options = testing::options();
        let prefix = options.prefix.clone();
        let quota = Quota {
            count: 5,
            period: Duration::from_secs(3600),
            burst: 10,
        };
        let limiter = RedisRateLimiter::new(testing::connect(&url, options).await, "api", quota);
        let ip = IpAddr::from([198, 51, 100, 1]);
        assert!(limiter.check(ip).await.is_ok());
        let key = limiter.key(ip);
        let ttl: i64 = testing::command(&url, redis::cmd("PTTL").arg(&key)).await;
        // One request moves the TAT one interval (720 s) ahead: the key lives
        // that long, not forever.
        assert!((1..=720_000).contains(&ttl), "{ttl} ms");
        // A disabled quota never touches Redis.
        let off = RedisRateLimiter::new(limiter.gates.clone(), "off", Quota::per_second(0, 0));
        for _ in 0..100 {
            assert!(off.check(ip).await.is_ok());
        }
        assert!(testing::keys(&url, &format!("{prefix}rl:off")).await.is_empty());
        testing::flush(&url, &prefix).await;
    }
}
