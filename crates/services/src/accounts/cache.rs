//! Per-process cache of each user's token state, so checking that a token
//! was not revoked costs no database round trip on the hot path.
//!
//! An entry is dropped whenever the user's state changes (here, and in every
//! other process through the bus) and is re-read on the next request. A
//! generation counter keeps a load that raced with a change from caching
//! what it read before the change.
//!
//! Bounded: at most [`CAPACITY`] users (the least recently used go first),
//! each kept at most [`MAX_AGE`]; simultaneous misses on one user load once.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use domain::clock::Clock;
use domain::user::AuthState;
use moka::future::Cache;
use realtime::{Bus, Message};
use store::Store;
use uuid::Uuid;

use crate::{Error, Result};

/// The bus topic that tells every process to forget a user's cached state.
pub const INVALIDATE_TOPIC: &str = "auth.invalidate";

/// Users whose token state one process keeps at once.
pub const CAPACITY: u64 = 100_000;
/// A safety net for a missed invalidation from another process.
pub const MAX_AGE: Duration = Duration::from_secs(60);

/// Why a load was not cached.
#[derive(Debug)]
enum Miss {
    /// The user's state changed while it was being read.
    Raced,
    Failed(Error),
}

pub struct AuthCache {
    store: Arc<dyn Store>,
    entries: Cache<Uuid, AuthState>,
    generation: AtomicU64,
    /// How long a session stays on the revoked list: as long as an access
    /// token issued before the revocation could still be unexpired.
    revocation_window: Duration,
    clock: Clock,
}

impl AuthCache {
    pub fn new(store: Arc<dyn Store>, access_ttl: Duration, clock: Clock) -> Self {
        AuthCache {
            store,
            entries: Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_live(MAX_AGE)
                .build(),
            generation: AtomicU64::new(0),
            revocation_window: access_ttl + Duration::from_secs(5),
            clock,
        }
    }

    async fn load(&self, user_id: Uuid) -> Result<AuthState> {
        let since = self.clock.now()
            - chrono::Duration::from_std(self.revocation_window).unwrap_or(chrono::Duration::zero());
        Ok(self.store.auth_state(user_id, since).await?)
    }

    pub async fn get(&self, user_id: Uuid) -> Result<AuthState> {
        let generation = self.generation.load(Ordering::Acquire);
        let cached = self
            .entries
            .try_get_with(user_id, async {
                let state = self.load(user_id).await.map_err(Miss::Failed)?;
                if self.generation.load(Ordering::Acquire) == generation {
                    Ok(state)
                } else {
                    Err(Miss::Raced)
                }
            })
            .await;
        match cached {
            Ok(state) => Ok(state),
            Err(miss) => match Arc::try_unwrap(miss) {
                Ok(Miss::Failed(err)) => Err(err),
                Ok(Miss::Raced) => self.load(user_id).await,
                Err(shared) => match &*shared {
                    // Another caller's load failed or raced: read for ourselves.
                    Miss::Raced | Miss::Failed(_) => self.load(user_id).await,
                },
            },
        }
    }

    /// Forgets this process's copy of the user's state.
    pub async fn forget(&self, user_id: Uuid) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.entries.invalidate(&user_id).await;
    }

    /// Forgets the user here and tells every other process to do the same.
    pub async fn invalidate(&self, bus: &dyn Bus, user_id: Uuid) {
        self.forget(user_id).await;
        let message = Message::new(INVALIDATE_TOPIC, serde_json::json!({ "user_id": user_id }));
        if let Err(err) = bus.publish(message).await {
            tracing::warn!(%err, "could not broadcast a token invalidation; other processes catch up within a minute");
        }
    }

    /// Follows invalidations from other processes until the bus closes.
    pub async fn follow(self: Arc<Self>, bus: Arc<dyn Bus>) {
        let mut messages = bus.subscribe();
        loop {
            match messages.recv().await {
                Ok(message) if message.topic == INVALIDATE_TOPIC => {
                    let user_id = message.payload.get("user_id").and_then(|v| v.as_str());
                    if let Some(user_id) = user_id.and_then(|v| Uuid::parse_str(v).ok()) {
                        self.forget(user_id).await;
                    }
                }
                Ok(_) => {}
                // Missed messages: forget everything rather than trust stale state.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    self.generation.fetch_add(1, Ordering::AcqRel);
                    self.entries.invalidate_all();
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            }
        }
    }
}
