//! bcrypt hashing, kept off the async workers and admitted by the wait it
//! will have.
//!
//! bcrypt is deliberately slow (hundreds of milliseconds at cost 12). Run on
//! the async threads it would stall every other request; run unbounded on
//! the blocking pool it would take every core. So at most `concurrency`
//! hashes run at once and the rest queue. A queue bounded by a *count*
//! sheds a burst of sign-ups that the server could serve within seconds;
//! what a person cares about is the wait. So a hash is admitted while the
//! wait it is expected to have (the work ahead of it, spread over the
//! hashing threads, at the measured time of one hash) stays under
//! `max_wait`; past that it is refused at once with that wait as the
//! honest `Retry-After`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::{Error, Result};

/// Weight of the newest measurement in the running estimate of one hash's
/// duration: recent enough to follow a machine getting busier, smooth
/// enough that one descheduled hash does not swing admissions.
const EWMA_WEIGHT: f64 = 0.2;

/// Whether a hash may queue, given the hashes already admitted (`pending`:
/// queued plus running), the threads that run them, the current estimate
/// of one hash and the bound. The expected wait is the work ahead of the
/// newcomer spread over the threads; past the bound the refusal carries
/// that wait in whole seconds (rounded up, at least 1) for `Retry-After`.
pub fn admit(
    pending: usize,
    concurrency: usize,
    per_hash: Duration,
    max_wait: Duration,
) -> std::result::Result<(), u64> {
    let wait = per_hash.mul_f64(pending as f64 / concurrency.max(1) as f64);
    if wait < max_wait {
        return Ok(());
    }
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    Err(seconds.max(1))
}

/// The running estimate after one more measurement.
pub fn next_estimate(estimate: Duration, measured: Duration) -> Duration {
    estimate.mul_f64(1.0 - EWMA_WEIGHT) + measured.mul_f64(EWMA_WEIGHT)
}

pub struct PasswordHasher {
    cost: u32,
    concurrency: usize,
    max_wait: Duration,
    running: Arc<Semaphore>,
    /// Hashes admitted and not finished: queued plus running.
    pending: Arc<AtomicUsize>,
    /// The running estimate of one hash at this cost, in nanoseconds.
    per_hash_nanos: Arc<AtomicU64>,
    /// A hash of a random password, verified against when the user does not
    /// exist, so a login takes as long whether or not the account does.
    decoy_hash: String,
}

/// One admitted hash: counted as pending until dropped, wherever that
/// happens (finished, or its request went away while it queued).
struct Admitted(Arc<AtomicUsize>);

impl Drop for Admitted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl PasswordHasher {
    /// Hashes the decoy once, which also gives the first estimate of one
    /// hash's duration at `cost` on this machine.
    pub fn new(cost: u32, concurrency: usize, max_wait: Duration) -> Result<Self> {
        let concurrency = concurrency.max(1);
        let decoy: [u8; 16] = rand::random();
        let started = Instant::now();
        let decoy_hash = bcrypt::hash(decoy, cost).map_err(|e| Error::Internal(e.into()))?;
        let first_estimate = started.elapsed();
        tracing::info!(
            cost,
            concurrency,
            per_hash_ms = first_estimate.as_millis() as u64,
            max_wait_s = max_wait.as_secs_f64(),
            "password hashing measured"
        );
        Ok(PasswordHasher {
            cost,
            concurrency,
            max_wait,
            running: Arc::new(Semaphore::new(concurrency)),
            pending: Arc::new(AtomicUsize::new(0)),
            per_hash_nanos: Arc::new(AtomicU64::new(nanos(first_estimate))),
            decoy_hash,
        })
    }

    pub async fn hash(&self, password: &str) -> Result<String> {
        let cost = self.cost;
        let password = password.to_owned();
        self.run(move || bcrypt::hash(password, cost).map_err(|e| Error::Internal(e.into())))
            .await
    }

    /// Checks `password` against `hash`, or against the decoy when there is
    /// no account, so both cases cost the same.
    pub async fn verify(&self, password: &str, hash: Option<&str>) -> Result<bool> {
        let is_real = hash.is_some();
        let hash = hash.unwrap_or(&self.decoy_hash).to_owned();
        let password = password.to_owned();
        let matched = self
            .run(move || Ok(bcrypt::verify(password, &hash).unwrap_or(false)))
            .await?;
        Ok(matched && is_real)
    }

    /// The current estimate of one hash's duration.
    pub fn per_hash(&self) -> Duration {
        Duration::from_nanos(self.per_hash_nanos.load(Ordering::Relaxed))
    }

    /// Counts the hash in if the wait it would have is under the bound.
    fn admit(&self) -> Result<Admitted> {
        // Count first, then judge by the count seen: racing arrivals each
        // see the others, so a burst cannot slip past the bound together.
        let ahead = self.pending.fetch_add(1, Ordering::AcqRel);
        let admitted = Admitted(self.pending.clone());
        admit(ahead, self.concurrency, self.per_hash(), self.max_wait)
            .map_err(|retry_after_seconds| Error::Overloaded { retry_after_seconds })?;
        Ok(admitted)
    }

    async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
        let admitted = self.admit()?;
        let running = self
            .running
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::internal("password hasher closed"))?;
        let estimate = self.per_hash_nanos.clone();
        tokio::task::spawn_blocking(move || {
            // Held until the work is done, even if the request goes away.
            let (_admitted, _running) = (admitted, running);
            let started = Instant::now();
            let outcome = work();
            let measured = started.elapsed();
            let _ = estimate.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                Some(nanos(next_estimate(Duration::from_nanos(old), measured)))
            });
            outcome
        })
        .await
        .map_err(|e| Error::Internal(e.into()))?
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn admits_while_the_expected_wait_is_under_the_bound() {
        let max = Duration::from_secs(10);
        // 16 sign-ups at once, cost 12 (~250 ms), one thread: the last
        // waits 15 x 250 ms = 3.75 s.
        for ahead in 0..16 {
            assert_eq!(admit(ahead, 1, 250 * MS, max), Ok(()), "{ahead}");
        }
        // 39 ahead: 9.75 s, still in; 40 ahead: exactly 10 s, out.
        assert_eq!(admit(39, 1, 250 * MS, max), Ok(()));
        assert_eq!(admit(40, 1, 250 * MS, max), Err(10));
        // Two threads halve the wait.
        assert_eq!(admit(79, 2, 250 * MS, max), Ok(()));
        assert_eq!(admit(80, 2, 250 * MS, max), Err(10));
    }

    #[test]
    fn retry_after_is_the_expected_wait_rounded_up() {
        let max = Duration::from_secs(10);
        assert_eq!(admit(41, 1, 250 * MS, max), Err(11)); // 10.25 s
        assert_eq!(admit(100, 1, 250 * MS, max), Err(25));
        assert_eq!(admit(3, 1, 400 * MS, Duration::from_secs(1)), Err(2)); // 1.2 s
        // A tiny bound still asks for at least a second.
        assert_eq!(admit(1, 1, MS, Duration::ZERO), Err(1));
        // Nothing ahead is no wait: always admitted under any positive bound.
        assert_eq!(
            admit(0, 1, Duration::from_secs(60), Duration::from_secs(1)),
            Ok(())
        );
        // A zero concurrency (never configured, but) is read as one thread.
        assert_eq!(
            admit(4, 0, Duration::from_secs(1), Duration::from_secs(10)),
            Ok(())
        );
    }

    #[test]
    fn the_estimate_follows_measurements() {
        let mut estimate = 100 * MS;
        estimate = next_estimate(estimate, 200 * MS);
        assert_eq!(estimate, 120 * MS);
        for _ in 0..50 {
            estimate = next_estimate(estimate, 300 * MS);
        }
        assert!(estimate > 299 * MS && estimate <= 300 * MS, "{estimate:?}");
    }

    #[tokio::test]
    async fn hashes_and_verifies() {
        let hasher = PasswordHasher::new(4, 1, Duration::from_secs(10)).unwrap();
        let hash = hasher.hash("Secret#123").await.unwrap();
        assert!(hasher.verify("Secret#123", Some(&hash)).await.unwrap());
        assert!(!hasher.verify("Secret#124", Some(&hash)).await.unwrap());
        assert!(!hasher.verify("anything", None).await.unwrap());
        assert_eq!(hasher.pending.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn sheds_past_the_bound_with_the_wait_as_retry_after() {
        let hasher = PasswordHasher::new(4, 1, Duration::from_secs(10)).unwrap();
        hasher
            .per_hash_nanos
            .store(nanos(Duration::from_secs(1)), Ordering::Relaxed);
        // Ten admitted: the last expects to wait 9 s.
        let held: Vec<_> = (0..10).map(|_| hasher.admit().unwrap()).collect();
        match hasher.hash("Secret#123").await {
            Err(Error::Overloaded { retry_after_seconds }) => assert_eq!(retry_after_seconds, 10),
            other => panic!("expected a refusal, got {other:?}"),
        }
        // The refused one is not counted; the queue drains and admits again.
        assert_eq!(hasher.pending.load(Ordering::Relaxed), 10);
        drop(held);
        assert_eq!(hasher.pending.load(Ordering::Relaxed), 0);
        assert!(hasher.hash("Secret#123").await.is_ok());
    }
}
