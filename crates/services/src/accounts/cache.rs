//! Per-process cache of each user's token state, so checking that a token
//! was not revoked costs no database round trip on the hot path.
//!
//! An entry is dropped whenever the user's state changes (here, and in every
//! other process through the bus) and is re-read on the next request. A
//! generation counter keeps a load that raced with a change from caching
//! what it read before the change.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use realtime::{Bus, Message};
use store::Store;
use store::accounts::AuthState;
use uuid::Uuid;

use crate::Result;

/// The bus topic that tells every process to forget a user's cached state.
pub const INVALIDATE_TOPIC: &str = "auth.invalidate";

struct Entry {
    state: AuthState,
    loaded_at: Instant,
}

pub struct AuthCache {
    store: Arc<dyn Store>,
    entries: DashMap<Uuid, Entry>,
    generation: AtomicU64,
    /// How long a session stays on the revoked list: as long as an access
    /// token issued before the revocation could still be unexpired.
    revocation_window: Duration,
    /// A safety net for a missed invalidation from another process.
    max_age: Duration,
}

impl AuthCache {
    pub fn new(store: Arc<dyn Store>, access_ttl: Duration) -> Self {
        AuthCache {
            store,
            entries: DashMap::new(),
            generation: AtomicU64::new(0),
            revocation_window: access_ttl + Duration::from_secs(5),
            max_age: Duration::from_secs(60),
        }
    }

    pub async fn get(&self, user_id: Uuid) -> Result<AuthState> {
        if let Some(entry) = self.entries.get(&user_id)
            && entry.loaded_at.elapsed() < self.max_age
        {
            return Ok(entry.state.clone());
        }
        let generation = self.generation.load(Ordering::Acquire);
        let since = chrono::Utc::now()
            - chrono::Duration::from_std(self.revocation_window).unwrap_or(chrono::Duration::zero());
        let state = self.store.auth_state(user_id, since).await?;
        if self.generation.load(Ordering::Acquire) == generation {
            self.entries.insert(
                user_id,
                Entry {
                    state: state.clone(),
                    loaded_at: Instant::now(),
                },
            );
        }
        Ok(state)
    }

    /// Forgets this process's copy of the user's state.
    pub fn forget(&self, user_id: Uuid) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.entries.remove(&user_id);
    }

    /// Forgets the user here and tells every other process to do the same.
    pub async fn invalidate(&self, bus: &dyn Bus, user_id: Uuid) {
        self.forget(user_id);
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
                        self.forget(user_id);
                    }
                }
                Ok(_) => {}
                // Missed messages: forget everything rather than trust stale state.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    self.generation.fetch_add(1, Ordering::AcqRel);
                    self.entries.clear();
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            }
        }
    }
}
