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
