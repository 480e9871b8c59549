//! The one clock of a process, handed to the services and the store.
//!
//! Production reads the system time. Tests use a clock they can move, so
//! expiry, go-live and settlement are tested by moving time rather than by
//! sleeping: a moved clock tells its listeners (the scheduler) to look again.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, SubsecRound, Utc};
use uuid::{ContextV7, Timestamp, Uuid};

type Listener = Arc<dyn Fn() + Send + Sync>;

/// A cheap handle (clones share the same time).
#[derive(Clone)]
pub struct Clock(Arc<State>);

struct State {
    /// How far this clock runs ahead of the system time, in microseconds.
    /// Always 0 for the system clock.
    offset_micros: AtomicI64,
    movable: bool,
    listeners: Mutex<Vec<Listener>>,
    /// Keeps ids made within one millisecond in order.
    ids: Mutex<ContextV7>,
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clock")
            .field("movable", &self.0.movable)
            .field("offset_micros", &self.0.offset_micros.load(Ordering::Relaxed))
            .finish()
    }
}

/// Only a test clock can be moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the system clock cannot be moved")]
pub struct FixedClock;

impl Clock {
    fn with(movable: bool) -> Clock {
        Clock(Arc::new(State {
            offset_micros: AtomicI64::new(0),
            movable,
            listeners: Mutex::new(Vec::new()),
            ids: Mutex::new(ContextV7::new()),
        }))
    }

    /// The system time: what production runs on.
    pub fn system() -> Clock {
        Clock::with(false)
    }

    /// A clock that follows the system time until a test moves it forward
    /// (or back) with [`Clock::advance`].
    pub fn movable() -> Clock {
        Clock::with(true)
    }

    /// The current time, truncated to microseconds: both databases keep
    /// microseconds, so a time read back compares equal to the one written.
    pub fn now(&self) -> DateTime<Utc> {
        let offset = self.0.offset_micros.load(Ordering::Acquire);
        (Utc::now() + Duration::microseconds(offset)).trunc_subsecs(6)
    }

    /// A UUIDv7 whose time prefix is this clock's now: ids that carry their
    /// birth time (outbox messages) agree with the times written beside them.
    pub fn new_id(&self) -> Uuid {
        let now = self.now();
        let seconds = u64::try_from(now.timestamp()).unwrap_or(0);
        Uuid::new_v7(Timestamp::from_unix(
            &self.0.ids,
            seconds,
            now.timestamp_subsec_nanos(),
        ))
    }

    /// Moves a test clock and wakes whoever waits on time.
    pub fn advance(&self, by: Duration) -> Result<(), FixedClock> {
        if !self.0.movable {
            return Err(FixedClock);
        }
        let micros = by.num_microseconds().unwrap_or(i64::MAX);
        self.0.offset_micros.fetch_add(micros, Ordering::AcqRel);
        let listeners: Vec<Listener> = self.listeners().clone();
        for listener in listeners {
            listener();
        }
        Ok(())
    }

    /// Calls `listener` whenever the clock is moved (never for the system
    /// clock, which only flows).
    pub fn on_advance(&self, listener: impl Fn() + Send + Sync + 'static) {
        self.listeners().push(Arc::new(listener));
    }

    fn listeners(&self) -> std::sync::MutexGuard<'_, Vec<Listener>> {
        self.0
            .listeners
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn a_movable_clock_moves_and_wakes_its_listeners() {
        let clock = Clock::movable();
        let woken = Arc::new(AtomicUsize::new(0));
        let counter = woken.clone();
        clock.on_advance(move || {
            counter.fetch_add(1, Ordering::Relaxed);
        });
        let before = clock.now();
        clock.advance(Duration::hours(2)).unwrap();
        let after = clock.now();
        assert!(after - before >= Duration::hours(2));
        assert!(after - before < Duration::hours(2) + Duration::seconds(5));
        assert_eq!(woken.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn the_system_clock_does_not_move() {
        assert_eq!(Clock::system().advance(Duration::seconds(1)), Err(FixedClock));
    }

    #[test]
    fn ids_carry_the_clock_time_in_order() {
        let clock = Clock::movable();
        clock.advance(Duration::days(1)).unwrap();
        let ids: Vec<Uuid> = (0..100).map(|_| clock.new_id()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        let (seconds, _) = ids[0].get_timestamp().unwrap().to_unix();
        let expected = clock.now().timestamp() as u64;
        assert!(expected.abs_diff(seconds) <= 1, "{seconds} vs {expected}");
    }

    #[test]
    fn times_are_microseconds() {
        assert_eq!(Clock::system().now().timestamp_subsec_nanos() % 1000, 0);
    }
}
