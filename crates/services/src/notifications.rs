//! Notifications: the outbox relay, stored history, live push, and the
//! history API's reads.
//!
//! The relay turns each outbox message into its stored notifications (once:
//! ids are derived, so a retry stores nothing new), publishes it on the bus
//! and marks it published. Every notifier process follows the bus and
//! pushes each message to its own connected sockets.

use std::sync::Arc;

use std::time::Duration;

use domain::clock::Clock;
use domain::cursor::CursorCodec;
use domain::notify::{Notification, notification_id};
use domain::page::{Page, PageRequest, Position, page_from_rows, page_request};
use realtime::{Bus, Hub, Message};
use serde_json::Value;
use store::Store;
use store::notifications::NewNotification;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::accounts::Principal;
use crate::{Error, Result};

/// Outbox messages the relay handles per step.
const RELAY_BATCH: i64 = 500;
/// How often the relay looks for messages written by other processes.
const RELAY_POLL: Duration = Duration::from_millis(100);
/// Most bus messages the push loop takes at once.
const PUSH_BATCH: usize = 1024;
/// Most notifications one resume replays.
pub const RESUME_LIMIT: i64 = 1000;

pub struct NotificationService {
    store: Arc<dyn Store>,
    bus: Arc<dyn Bus>,
    hub: Arc<Hub>,
    cursors: CursorCodec,
    clock: Clock,
    /// The last stock version pushed per item: an older one arriving late
    /// (another transaction's message overtaken on the way) is not pushed,
    /// so stock shown never goes back.
    pushed_stock: moka::sync::Cache<Uuid, i64>,
    /// Poked after a write that put a message in the outbox.
    outbox_written: Arc<Notify>,
    /// With the in-process bus the relay stores history itself; with a
    /// broker, the consumers of the shared history queue do.
    inline_history: bool,
}

/// The recipients of a message: `None` for a broadcast.
fn recipients(payload: &Value) -> Option<Vec<Uuid>> {
    payload
        .get("recipients")
        .and_then(|r| serde_json::from_value(r.clone()).ok())
}

/// When a message was written to the outbox: its id is a UUIDv7, which
/// carries its birth time (to the millisecond).
fn written_at(message_id: Uuid) -> Option<chrono::DateTime<chrono::Utc>> {
    let (secs, nanos) = message_id.get_timestamp()?.to_unix();
    chrono::DateTime::from_timestamp(secs as i64, nanos)
}

/// Drops live data that a later message in the same batch supersedes: a
/// page needs the current stock of an item and the current status of an
/// event, not every step on the way. During a sale, stock changes far
/// faster than a push to thousands of open pages can be written; without
/// this, pages would show stock from ever further in the past. Everything
/// else (notifications, a buyer's own orders) is kept, in order.
fn latest_live_data(batch: Vec<Message>) -> Vec<Message> {
    let key = |message: &Message| -> Option<(String, String, String)> {
        let field = |name: &str| {
            message
                .payload
                .get(name)
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        match message.payload.get("type").and_then(Value::as_str)? {
            "stock" => Some(("stock".into(), field("event_id")?, field("item_id")?)),
            "event.status" => Some(("event.status".into(), field("event_id")?, String::new())),
            _ => None,
        }
    };
    // Per key, the message to keep: the highest stock version (messages
    // of different transactions may arrive out of order), else the last.
    let mut chosen: std::collections::HashMap<(String, String, String), (usize, i64)> =
        std::collections::HashMap::new();
    for (index, message) in batch.iter().enumerate() {
        if let Some(k) = key(message) {
            let version = stock_version(message).unwrap_or(i64::MIN);
            let entry = chosen.entry(k).or_insert((index, version));
            if version >= entry.1 {
                *entry = (index, version);
            }
        }
    }
    batch
        .into_iter()
        .enumerate()
        .filter(|(index, message)| key(message).is_none_or(|k| chosen.get(&k).is_some_and(|c| c.0 == *index)))
        .map(|(_, message)| message)
        .collect()
}

/// The stock version a `stock` message carries.
fn stock_version(message: &Message) -> Option<i64> {
    message.payload.get("version").and_then(Value::as_i64)
}

/// Items whose last pushed stock version this process remembers.
const PUSHED_STOCK_CAPACITY: u64 = 100_000;

/// The payload one recipient is pushed and stores: the message with its
/// own notification id, without the recipient list.
fn personal_payload(message_id: Uuid, payload: &Value, recipient: Option<Uuid>) -> Value {
    let mut personal = payload.clone();
    if let Some(object) = personal.as_object_mut() {
        object.remove("recipients");
        object.insert(
            "id".into(),
            Value::String(notification_id(message_id, recipient).to_string()),
        );
    }
    personal
}

impl NotificationService {
    pub fn new(
        store: Arc<dyn Store>,
        bus: Arc<dyn Bus>,
        hub: Arc<Hub>,
        cursors: CursorCodec,
        clock: Clock,
        outbox_written: Arc<Notify>,
        inline_history: bool,
    ) -> Self {
        NotificationService {
            store,
            bus,
            hub,
            cursors,
            clock,
            pushed_stock: moka::sync::Cache::builder()
                .max_capacity(PUSHED_STOCK_CAPACITY)
                .time_to_idle(Duration::from_secs(3600))
                .build(),
            outbox_written,
            inline_history,
        }
    }

    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// The notifications to store for one message. Their time is the
    /// message id's (a UUIDv7 of the writer's clock), so every process
    /// stores the same rows.
    fn history_of(&self, message_id: Uuid, payload: &Value) -> Vec<NewNotification> {
        let created_at = written_at(message_id).unwrap_or_else(|| self.clock.now());
        let Some(kind) = payload.get("notification_type").and_then(Value::as_str) else {
            return Vec::new();
        };
        let targets: Vec<Option<Uuid>> = match recipients(payload) {
            None => vec![None],
            Some(users) => users.into_iter().map(Some).collect(),
        };
        targets
            .into_iter()
            .map(|recipient| NewNotification {
                id: notification_id(message_id, recipient),
                message_id,
                recipient_id: recipient,
                notification_type: kind.to_owned(),
                payload: personal_payload(message_id, payload, recipient),
                created_at,
            })
            .collect()
    }

    /// Relays one batch of the outbox; returns how many messages it moved.
    pub async fn relay_step(&self) -> Result<usize> {
        let pending = self.store.pending_outbox(RELAY_BATCH).await?;
        if pending.is_empty() {
            return Ok(0);
        }
        if self.inline_history {
            let history: Vec<NewNotification> = pending
                .iter()
                .flat_map(|m| self.history_of(m.id, &m.payload.0))
                .collect();
            self.store.store_notifications(&history).await?;
        }
        for message in &pending {
            let message = Message {
                id: message.id,
                topic: message.topic.clone(),
                payload: message.payload.0.clone(),
            };
            self.bus
                .publish(message)
                .await
                .map_err(|e| Error::Internal(e.into()))?;
        }
        let ids: Vec<Uuid> = pending.iter().map(|m| m.id).collect();
        self.store.mark_published(&ids).await?;
        let lag = self.clock.now() - pending[0].created_at;
        metrics::histogram!("swiftdrop_outbox_lag_seconds")
            .record(lag.num_microseconds().unwrap_or(0) as f64 / 1e6);
        Ok(pending.len())
    }

    /// Relays until `stop`; a step in progress always finishes.
    pub async fn run_relay(self: Arc<Self>, stop: CancellationToken) {
        while !stop.is_cancelled() {
            let moved = match self.relay_step().await {
                Ok(moved) => moved,
                Err(err) => {
                    tracing::warn!(%err, "outbox relay step failed; retrying");
                    0
                }
            };
            if moved as i64 == RELAY_BATCH {
                continue;
            }
            tokio::select! {
                () = tokio::time::sleep(RELAY_POLL) => {}
                () = self.outbox_written.notified() => {}
                () = stop.cancelled() => {}
            }
        }
        // Flush what is left before the process goes.
        while let Ok(moved) = self.relay_step().await {
            if moved == 0 {
                break;
            }
        }
    }

    /// Pushes bus messages to this process's sockets until the bus closes.
    pub async fn run_push(self: Arc<Self>) {
        use tokio::sync::broadcast::error::{RecvError, TryRecvError};
        let mut messages = self.bus.subscribe();
        loop {
            let first = match messages.recv().await {
                Ok(message) => message,
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "push lagged behind the bus; clients resume from history");
                    continue;
                }
                Err(RecvError::Closed) => return,
            };
            // Whatever else arrived while the last push was being written.
            let mut batch = vec![first];
            while batch.len() < PUSH_BATCH {
                match messages.try_recv() {
                    Ok(message) => batch.push(message),
                    Err(TryRecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "push lagged behind the bus; clients resume from history");
                    }
                    Err(TryRecvError::Empty | TryRecvError::Closed) => break,
                }
            }
            if batch.iter().any(Message::is_resync) {
                self.resync().await;
            }
            for message in latest_live_data(batch) {
                self.push(&message).await;
            }
        }
    }

    /// After a break in this process's feed: every event page it serves
    /// gets the database's stock and status (what it missed is gone).
    /// Auction pages are refreshed by the auction follower.
    async fn resync(&self) {
        for topic in self.hub.followed_topics() {
            let Ok(messages) = crate::events::live_data(self.store.as_ref(), topic).await else {
                continue; // an auction, or gone
            };
            for payload in messages {
                self.push(&Message::new("resync", payload)).await;
            }
        }
    }

    /// Sends one message to the sockets it is for: notifications to their
    /// recipients, an order change to its buyer, stock and status to the
    /// sockets following the event.
    pub async fn push(&self, message: &Message) {
        let kind = match message.payload.get("type").and_then(Value::as_str) {
            Some("notification") => "notification",
            Some("order") => "order",
            Some("stock") => "stock",
            Some("event.status") => "event.status",
            _ => return,
        };
        if kind == "stock" && !self.newer_stock(message) {
            return;
        }
        self.route(message).await;
        // From the outbox write to the last of this process's sockets.
        if let Some(written) = written_at(message.id) {
            let age = (self.clock.now() - written).num_microseconds().unwrap_or(0);
            metrics::histogram!("swiftdrop_push_seconds", "type" => kind).record(age.max(0) as f64 / 1e6);
        }
    }

    /// Whether a stock message is newer than the last one pushed for its
    /// item (and remembers it if so).
    fn newer_stock(&self, message: &Message) -> bool {
        let item = message
            .payload
            .get("item_id")
            .and_then(Value::as_str)
            .and_then(|v| Uuid::parse_str(v).ok());
        let (Some(item), Some(version)) = (item, stock_version(message)) else {
            return true;
        };
        let entry =
            self.pushed_stock
                .entry(item)
                .and_compute_with(|held| match held.map(|e| e.into_value()) {
                    Some(last) if last >= version => moka::ops::compute::Op::Nop,
                    _ => moka::ops::compute::Op::Put(version),
                });
        !matches!(entry, moka::ops::compute::CompResult::Unchanged(_))
    }

    async fn route(&self, message: &Message) {
        let uuid_at = |key: &str| {
            message
                .payload
                .get(key)
                .and_then(Value::as_str)
                .and_then(|v| Uuid::parse_str(v).ok())
        };
        match message.payload.get("type").and_then(Value::as_str) {
            Some("notification") => {}
            Some("order") => {
                if let Some(user) = uuid_at("user_id") {
                    self.hub.send_to(user, message.payload.to_string().as_bytes());
                }
                return;
            }
            Some("stock" | "event.status") => {
                if let Some(event) = uuid_at("event_id") {
                    self.hub
                        .send_topic(event, message.payload.to_string().as_bytes())
                        .await;
                }
                return;
            }
            _ => return,
        }
        match recipients(&message.payload) {
            None => {
                let text = personal_payload(message.id, &message.payload, None).to_string();
                self.hub.broadcast(text.as_bytes()).await;
            }
            Some(users) => {
                for user in users {
                    let text = personal_payload(message.id, &message.payload, Some(user)).to_string();
                    self.hub.send_to(user, text.as_bytes());
                }
            }
        }
    }

    /// Stores the history of one message taken from the broker (each is
    /// handled by one process; a redelivery stores nothing new).
    pub async fn store_history(&self, message: &Message) -> Result<()> {
        let history = self.history_of(message.id, &message.payload);
        Ok(self.store.store_notifications(&history).await?)
    }

    pub fn outbox_written(&self) {
        self.outbox_written.notify_one();
    }

    pub async fn list(
        &self,
        principal: &Principal,
        unread_only: bool,
        limit: Option<i64>,
        cursor: Option<&str>,
    ) -> Result<Page<Notification>> {
        let scope = if unread_only {
            "notifications:unread"
        } else {
            "notifications"
        };
        let page: PageRequest<Uuid> = page_request(&self.cursors, scope, limit, cursor)?;
        let rows = self
            .store
            .list_notifications(principal.user_id, unread_only, &page)
            .await?;
        Ok(page_from_rows(&self.cursors, scope, page.limit, rows, |n| {
            Position { key: n.id, id: n.id }
        }))
    }

    /// What the user missed after `after` (oldest first).
    pub async fn resume(&self, user_id: Uuid, after: Option<Uuid>) -> Result<Vec<Notification>> {
        Ok(self
            .store
            .notifications_after(user_id, after, RESUME_LIMIT)
            .await?)
    }

    pub async fn mark_read(&self, principal: &Principal, id: Uuid) -> Result<()> {
        Ok(self.store.mark_read(principal.user_id, id).await?)
    }

    pub async fn mark_all_read(&self, principal: &Principal) -> Result<()> {
        Ok(self.store.mark_all_read(principal.user_id).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn message(payload: Value) -> Message {
        Message {
            id: Uuid::now_v7(),
            topic: "t".into(),
            payload,
        }
    }

    #[test]
    fn of_stock_overtaken_on_the_way_the_newest_version_is_kept() {
        let (event, item) = (Uuid::now_v7(), Uuid::now_v7());
        let stock = |left: i64, version: i64| {
            message(
                json!({"type": "stock", "event_id": event, "item_id": item, "stock_remaining": left,
                           "version": version}),
            )
        };
        // Version 6 (3 left) was written after version 5 (4 left) but
        // arrived first: the page must end at 3.
        let kept = latest_live_data(vec![stock(3, 6), stock(4, 5)]);
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].payload["stock_remaining"], 3);
    }

    #[test]
    fn only_the_latest_stock_and_status_of_a_batch_are_pushed() {
        let (event, item, other_item) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let stock = |item: Uuid, left: i64| {
            message(json!({"type": "stock", "event_id": event, "item_id": item, "stock_remaining": left}))
        };
        let batch = vec![
            stock(item, 9),
            message(json!({"type": "notification", "notification_type": "event.created"})),
            stock(other_item, 5),
            message(json!({"type": "event.status", "event_id": event, "status": "live"})),
            stock(item, 8),
            message(json!({"type": "order", "user_id": Uuid::now_v7(), "status": "confirmed"})),
            stock(item, 7),
            message(json!({"type": "event.status", "event_id": event, "status": "sold_out"})),
        ];
        let kept: Vec<String> = latest_live_data(batch)
            .iter()
            .map(|m| {
                let p = &m.payload;
                format!(
                    "{} {}",
                    p["type"].as_str().unwrap(),
                    p.get("stock_remaining").or(p.get("status")).unwrap_or(&json!(""))
                )
            })
            .collect();
        assert_eq!(
            kept,
            [
                "notification \"\"",
                "stock 5",
                "order \"confirmed\"",
                "stock 7",
                "event.status \"sold_out\""
            ]
        );
    }
}
