//! Units in flight per item, in time buckets that expire (see the module
//! docs of `stock` for why). The Redis scripts hold the same buckets as
//! hash fields `b:{index}` and follow the same rules.

use std::collections::VecDeque;
use std::time::Duration;

/// A unit counts while `now_index - its_index < LIVE_BUCKETS`.
pub(crate) const LIVE_BUCKETS: i64 = 5;

/// The bucket width for a lease: a quarter of it, so a unit counts at
/// least `lease` and at most `lease + width`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Buckets {
    pub width_ms: i64,
}

impl Buckets {
    pub fn for_lease(lease: Duration) -> Self {
        let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
        Buckets {
            width_ms: (lease_ms.saturating_add(LIVE_BUCKETS - 2) / (LIVE_BUCKETS - 1)).max(1),
        }
    }

    pub fn index(&self, now_ms: i64) -> i64 {
        now_ms.div_euclid(self.width_ms)
    }
}

#[derive(Debug, Clone, Default)]
pub(crate) struct InFlight {
    /// (bucket index, units), oldest first, units > 0.
    buckets: VecDeque<(i64, i64)>,
}

impl InFlight {
    fn expire(&mut self, now_index: i64) {
        while let Some(&(index, _)) = self.buckets.front() {
            if now_index - index < LIVE_BUCKETS {
                break;
            }
            self.buckets.pop_front();
        }
    }

    pub fn total(&mut self, now_index: i64) -> i64 {
        self.expire(now_index);
        self.buckets.iter().map(|&(_, units)| units).sum()
    }

    pub fn add(&mut self, now_index: i64, units: i64) {
        if units <= 0 {
            return;
        }
        match self.buckets.back_mut() {
            Some((index, held)) if *index == now_index => *held += units,
            _ => self.buckets.push_back((now_index, units)),
        }
    }

    /// Takes `units` away, newest first; what is not there is ignored.
    pub fn remove(&mut self, now_index: i64, units: i64) {
        self.expire(now_index);
        let mut left = units.max(0);
        while left > 0 {
            let Some((_, held)) = self.buckets.back_mut() else {
                return;
            };
            let take = left.min(*held);
            *held -= take;
            left -= take;
            if *held == 0 {
                self.buckets.pop_back();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths() {
        assert_eq!(Buckets::for_lease(Duration::from_secs(5)).width_ms, 1250);
        assert_eq!(Buckets::for_lease(Duration::from_millis(1001)).width_ms, 251);
        assert_eq!(Buckets::for_lease(Duration::ZERO).width_ms, 1);
    }

    #[test]
    fn a_unit_counts_between_one_and_one_and_a_quarter_leases() {
        let lease = Duration::from_millis(1000);
        let b = Buckets::for_lease(lease);
        for admitted_at in [0i64, 1, 249, 250, 999, 12_345] {
            let mut f = InFlight::default();
            f.add(b.index(admitted_at), 1);
            let mut last_counted = admitted_at;
            for now in admitted_at..admitted_at + 2000 {
                if f.total(b.index(now)) == 1 {
                    last_counted = now;
                }
            }
            let counted_for = last_counted - admitted_at + 1;
            assert!(
                (1000..=1250).contains(&counted_for),
                "admitted at {admitted_at}: {counted_for} ms"
            );
        }
    }

    #[test]
    fn removal_is_newest_first_and_clamped() {
        let mut f = InFlight::default();
        f.add(10, 3);
        f.add(11, 2);
        f.add(11, 1);
        assert_eq!(f.total(11), 6);
        f.remove(11, 4);
        // The oldest bucket keeps what is left: it expires first.
        assert_eq!(f.buckets, VecDeque::from([(10, 2)]));
        f.remove(11, 10);
        assert_eq!(f.total(11), 0);
        f.add(12, 0);
        f.add(12, -3);
        assert_eq!(f.total(12), 0);
    }

    #[test]
    fn a_leaked_unit_ages_out_under_steady_traffic() {
        let b = Buckets::for_lease(Duration::from_millis(1000));
        let mut f = InFlight::default();
        f.add(b.index(0), 1); // never settled
        // Steady traffic: one admission per ms, each settled 20 ms later.
        for now in 1..5000i64 {
            f.add(b.index(now), 1);
            if now > 20 {
                f.remove(b.index(now), 1);
            }
        }
        // Never more than the 20 truly in flight: the leak is gone (the
        // count may run low under sustained traffic, which only admits more).
        assert!(f.total(b.index(5000)) <= 20);
        // Once traffic stops, the count drains to zero on its own.
        assert_eq!(f.total(b.index(5000 + 1250)), 0);
    }
}
