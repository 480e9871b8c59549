//! The generic cell rate algorithm (GCRA), once, as pure arithmetic.
//!
//! A key's whole state is one number, its theoretical arrival time (TAT):
//! the instant at which its budget would be full again. A request at `now`
//! passes when `now >= TAT - tolerance`; passing moves the TAT one emission
//! interval later. The local store keeps the TAT in memory, the Redis
//! script (`rate_limit/gcra.lua`) keeps it in a key and performs this same
//! arithmetic; a test runs both over the same instants.
//!
//! Times are integer microseconds: exact in a Lua (double) number up to
//! 2^53 µs, i.e. for the next 285 years of Unix time.

use std::time::Duration;

/// The parameters of one quota in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gcra {
    /// Time one request "costs": `period / count`, rounded up so rounding
    /// never grants more than the quota.
    pub interval_us: u64,
    /// How far ahead of `now` the TAT may run: `(burst - 1) * interval`.
    pub tolerance_us: u64,
}

/// What the algorithm decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The request passes; store `tat` if it is counted.
    Allow { tat: u64 },
    /// The request is refused; it would pass after this many microseconds.
    Deny { retry_after_us: u64 },
}

impl Gcra {
    /// `count` requests per `period`, `burst` of them at once (a burst of 0
    /// means 1). `None` when `count` is 0: the limit is disabled.
    pub fn new(count: u32, period: Duration, burst: u32) -> Option<Self> {
        if count == 0 {
            return None;
        }
        let period_us = u64::try_from(period.as_micros()).unwrap_or(u64::MAX);
        let interval_us = period_us.div_ceil(u64::from(count));
        let tolerance_us = interval_us.saturating_mul(u64::from(burst.max(1) - 1));
        Some(Gcra {
            interval_us,
            tolerance_us,
        })
    }

    /// Decides a request at `now` for a key whose stored TAT is `tat`
    /// (`None`: never seen or expired).
    pub fn decide(&self, tat: Option<u64>, now: u64) -> Verdict {
        let tat = tat.map_or(now, |tat| tat.max(now));
        let allow_at = tat.saturating_sub(self.tolerance_us);
        if now < allow_at {
            Verdict::Deny {
                retry_after_us: allow_at - now,
            }
        } else {
            Verdict::Allow {
                tat: tat.saturating_add(self.interval_us),
            }
        }
    }

    /// How long a stored TAT matters after its last update: once idle this
    /// long it equals a fresh key (`TAT <= now`), so it may be forgotten.
    pub fn idle_expiry(&self) -> Duration {
        Duration::from_micros(self.tolerance_us.saturating_add(self.interval_us).max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000;

    fn per_second(count: u32, burst: u32) -> Gcra {
        Gcra::new(count, Duration::from_secs(1), burst).expect("enabled")
    }

    /// Runs requests at the given instants, counting the allowed ones.
    fn run(gcra: &Gcra, tat: &mut Option<u64>, now: u64) -> Verdict {
        let verdict = gcra.decide(*tat, now);
        if let Verdict::Allow { tat: next } = verdict {
            *tat = Some(next);
        }
        verdict
    }

    #[test]
    fn parameters() {
        let g = per_second(5, 10);
        assert_eq!(g.interval_us, 200_000);
        assert_eq!(g.tolerance_us, 9 * 200_000);
        // 5 per minute, burst 5: 12 s per request.
        let g = Gcra::new(5, Duration::from_secs(60), 5).unwrap();
        assert_eq!(g.interval_us, 12 * SEC);
        assert_eq!(g.tolerance_us, 48 * SEC);
        // Rounded up: 3 per second never lets a 4th through in a second.
        assert_eq!(per_second(3, 1).interval_us, 333_334);
        // Burst 0 behaves as burst 1.
        assert_eq!(per_second(5, 0).tolerance_us, 0);
        assert_eq!(Gcra::new(0, Duration::from_secs(1), 10), None);
    }

    #[test]
    fn the_whole_burst_passes_at_once_then_one_per_interval() {
        for burst in [1u32, 2, 5, 10, 37] {
            let g = per_second(5, burst);
            let now = 1_700_000_000 * SEC;
            let mut tat = None;
            for i in 0..burst {
                assert!(
                    matches!(run(&g, &mut tat, now), Verdict::Allow { .. }),
                    "burst {burst}, request {i}"
                );
            }
            // The next one waits exactly one interval.
            assert_eq!(
                run(&g, &mut tat, now),
                Verdict::Deny {
                    retry_after_us: g.interval_us
                }
            );
            // A refusal is not counted: the wait does not grow.
            assert_eq!(
                run(&g, &mut tat, now + 1),
                Verdict::Deny {
                    retry_after_us: g.interval_us - 1
                }
            );
            // One microsecond early: refused; on time: allowed, once.
            assert!(matches!(
                run(&g, &mut tat, now + g.interval_us - 1),
                Verdict::Deny { retry_after_us: 1 }
            ));
            assert!(matches!(
                run(&g, &mut tat, now + g.interval_us),
                Verdict::Allow { .. }
            ));
            assert!(matches!(
                run(&g, &mut tat, now + g.interval_us),
                Verdict::Deny { .. }
            ));
        }
    }

    #[test]
    fn refills_one_per_interval_up_to_the_burst() {
        let g = per_second(5, 10);
        let start = 10 * SEC;
        let mut tat = None;
        for _ in 0..10 {
            assert!(matches!(run(&g, &mut tat, start), Verdict::Allow { .. }));
        }
        // After 3 intervals exactly 3 more pass.
        let later = start + 3 * g.interval_us;
        for _ in 0..3 {
            assert!(matches!(run(&g, &mut tat, later), Verdict::Allow { .. }));
        }
        assert!(matches!(run(&g, &mut tat, later), Verdict::Deny { .. }));
        // After a long idle the budget is full again, never more than the burst.
        let idle = later + 3600 * SEC;
        for _ in 0..10 {
            assert!(matches!(run(&g, &mut tat, idle), Verdict::Allow { .. }));
        }
        assert!(matches!(run(&g, &mut tat, idle), Verdict::Deny { .. }));
    }

    #[test]
    fn a_steady_rate_at_the_quota_is_never_refused() {
        let g = per_second(5, 1);
        let mut tat = None;
        for i in 0..1000 {
            assert!(
                matches!(run(&g, &mut tat, i * g.interval_us), Verdict::Allow { .. }),
                "{i}"
            );
        }
        // Twice the rate: every other request is refused.
        let mut tat = None;
        let allowed = (0..1000)
            .filter(|i| matches!(run(&g, &mut tat, i * g.interval_us / 2), Verdict::Allow { .. }))
            .count();
        assert_eq!(allowed, 500);
    }

    #[test]
    fn over_any_window_at_most_burst_plus_rate_pass() {
        // Exhaustive over small quotas and request patterns: in any window
        // of length w, allowed <= burst + floor(w / interval).
        for count in 1..=4u32 {
            for burst in 1..=4u32 {
                let g = Gcra::new(count, Duration::from_millis(100), burst).unwrap();
                let step = g.interval_us / 3 + 1;
                let mut tat = None;
                let mut allowed_at = Vec::new();
                for i in 0..300u64 {
                    // Bursty arrivals: some instants see several requests.
                    let now = (i / (1 + i % 3)) * step + i * step / 2;
                    let now = now.max(allowed_at.last().copied().unwrap_or(0));
                    if let Verdict::Allow { .. } = run(&g, &mut tat, now) {
                        allowed_at.push(now);
                    }
                }
                for (a, &first) in allowed_at.iter().enumerate() {
                    for (b, &last) in allowed_at.iter().enumerate().skip(a) {
                        let n = (b - a + 1) as u64;
                        assert!(
                            n <= u64::from(burst) + (last - first) / g.interval_us,
                            "count {count} burst {burst}: {n} in {}µs",
                            last - first
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn a_clock_behind_the_stored_tat_is_safe() {
        // Time passed in can be older than the TAT (another process's
        // clock): no underflow, just a longer wait.
        let g = per_second(1, 1);
        assert_eq!(
            g.decide(Some(5 * SEC), SEC),
            Verdict::Deny {
                retry_after_us: 4 * SEC
            }
        );
        assert_eq!(g.decide(Some(5 * SEC), 5 * SEC), Verdict::Allow { tat: 6 * SEC });
        assert_eq!(g.decide(Some(0), 0), Verdict::Allow { tat: SEC });
        assert_eq!(g.decide(None, u64::MAX), Verdict::Allow { tat: u64::MAX });
    }

    #[test]
    fn idle_expiry_covers_the_whole_budget() {
        let g = per_second(5, 10);
        assert_eq!(g.idle_expiry(), Duration::from_secs(2));
        // A TAT written at t is at most t + idle_expiry: after that the key
        // is as good as new.
        let mut tat = None;
        for _ in 0..10 {
            run(&g, &mut tat, 0);
        }
        assert!(tat.unwrap() <= g.idle_expiry().as_micros() as u64);
    }
}
