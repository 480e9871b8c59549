//! bcrypt hashing, kept off the async workers and bounded in concurrency.
//!
//! bcrypt is deliberately slow (hundreds of milliseconds at cost 12). Run on
//! the async threads it would stall every other request; run unbounded on
//! the blocking pool it would take every core. So at most `concurrency`
//! hashes run at once, at most `queue` more wait, and the rest are told to
//! come back later.

use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::{Error, Result};

pub struct PasswordHasher {
    cost: u32,
    running: Arc<Semaphore>,
    admitted: Arc<Semaphore>,
    /// A hash of a random password, verified against when the user does not
    /// exist, so a login takes as long whether or not the account does.
    decoy_hash: String,
}

impl PasswordHasher {
    pub fn new(cost: u32, concurrency: usize, queue: usize) -> Result<Self> {
        let concurrency = concurrency.max(1);
        let decoy: [u8; 16] = rand::random();
        let decoy_hash = bcrypt::hash(decoy, cost).map_err(|e| Error::Internal(e.into()))?;
        Ok(PasswordHasher {
            cost,
            running: Arc::new(Semaphore::new(concurrency)),
            admitted: Arc::new(Semaphore::new(concurrency + queue)),
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

    async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
        let _admitted = self
            .admitted
            .clone()
            .try_acquire_owned()
            .map_err(|_| Error::Overloaded {
                retry_after_seconds: 1,
            })?;
        let running = self
            .running
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::internal("password hasher closed"))?;
        tokio::task::spawn_blocking(move || {
            let _running = running;
            work()
        })
        .await
        .map_err(|e| Error::Internal(e.into()))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_and_verifies() {
        let hasher = PasswordHasher::new(4, 1, 4).unwrap();
        let hash = hasher.hash("Secret#123").await.unwrap();
        assert!(hasher.verify("Secret#123", Some(&hash)).await.unwrap());
        assert!(!hasher.verify("Secret#124", Some(&hash)).await.unwrap());
        assert!(!hasher.verify("anything", None).await.unwrap());
    }

    #[tokio::test]
    async fn sheds_load_past_the_queue() {
        let hasher = Arc::new(PasswordHasher::new(10, 1, 1).unwrap());
        let tasks: Vec<_> = (0..6)
            .map(|_| {
                let hasher = hasher.clone();
                tokio::spawn(async move { hasher.hash("Secret#123").await })
            })
            .collect();
        let mut overloaded = 0;
        for task in tasks {
            if let Err(Error::Overloaded { .. }) = task.await.unwrap() {
                overloaded += 1;
            }
        }
        assert!(
            overloaded >= 1,
            "six hashes at once with room for two must shed some"
        );
    }
}
