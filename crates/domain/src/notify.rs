//! Notifications: who hears of a change, what they are pushed, and the id
//! each stored copy gets.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// What happened to an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventAction {
    Created,
    Updated,
    Deleted,
}

impl EventAction {
    pub fn as_str(self) -> &'static str {
        match self {
            EventAction::Created => "created",
            EventAction::Updated => "updated",
            EventAction::Deleted => "deleted",
        }
    }

    /// The notification type (and outbox topic) of this action.
    pub fn notification_type(self) -> &'static str {
        match self {
            EventAction::Created => "event.created",
            EventAction::Updated => "event.updated",
            EventAction::Deleted => "event.deleted",
        }
    }

    /// Created goes to everyone; updates and deletions to the event's
    /// subscribers and its creator.
    pub fn is_broadcast(self) -> bool {
        self == EventAction::Created
    }
}

/// Who hears of an event change: `None` means everyone (a broadcast,
/// stored once); otherwise the event's subscribers as of the change and
/// always its creator, each once.
pub fn recipients(action: EventAction, subscribers: Vec<Uuid>, creator: Uuid) -> Option<Vec<Uuid>> {
    if action.is_broadcast() {
        return None;
    }
    let mut recipients = subscribers;
    if !recipients.contains(&creator) {
        recipients.push(creator);
    }
    Some(recipients)
}

/// A stored notification, as one user sees it.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct Notification {
    pub id: Uuid,
    pub notification_type: String,
    /// The message as it was pushed.
    #[cfg_attr(feature = "sqlx", sqlx(json))]
    pub payload: Value,
    pub read: bool,
    pub created_at: DateTime<Utc>,
}

/// The message of an event change as the outbox keeps it: the pushed
/// payload (without the per-recipient notification id) and, unless it is
/// a broadcast, its recipients.
pub fn event_message(
    action: EventAction,
    event_id: Uuid,
    title: &str,
    actor_username: &str,
    at: DateTime<Utc>,
    recipients: Option<&[Uuid]>,
) -> Value {
    let mut message = json!({
        "type": "notification",
        "notification_type": action.notification_type(),
        "event": {
            "id": event_id,
            "title": title,
            "action": action.as_str(),
            "timestamp": at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        },
        "user": actor_username,
    });
    if let Some(recipients) = recipients {
        message["recipients"] = json!(recipients);
    }
    message
}

/// Live data for open event pages: an item's stock. `version` is the
/// item's stock sequence, so a late message never overwrites a newer one.
pub fn stock_message(event_id: Uuid, item_id: Uuid, stock_remaining: i64, version: i64) -> Value {
    json!({"type": "stock", "event_id": event_id, "item_id": item_id, "stock_remaining": stock_remaining,
           "version": version})
}

/// Live data for open event pages: the event's status.
pub fn status_message(event_id: Uuid, status: &str) -> Value {
    json!({"type": "event.status", "event_id": event_id, "status": status})
}

/// What an order message says of the order.
#[derive(Debug, Clone, Copy)]
pub struct OrderChange<'a> {
    pub order_id: Uuid,
    pub user_id: Uuid,
    pub event_id: Option<Uuid>,
    pub event_item_id: Option<Uuid>,
    pub auction_id: Option<Uuid>,
    pub quantity: i64,
    pub status: &'a str,
}

/// Live data for a buyer: their order changed status.
pub fn order_message(change: OrderChange<'_>) -> Value {
    json!({
        "type": "order",
        "user_id": change.user_id,
        "order_id": change.order_id,
        "status": change.status,
        "order": {"id": change.order_id, "user_id": change.user_id, "event_id": change.event_id,
                  "event_item_id": change.event_item_id, "auction_id": change.auction_id,
                  "quantity": change.quantity, "status": change.status},
    })
}

/// The notification of an auction's outcome to one bidder: `auction.won`
/// (with the order to confirm) or `auction.lost`.
pub fn auction_result_message(
    auction: &crate::auctions::Auction,
    placing: &crate::auctions::Placing,
    order_id: Option<Uuid>,
) -> Value {
    let kind = if placing.won {
        "auction.won"
    } else {
        "auction.lost"
    };
    let mut message = json!({
        "type": "notification",
        "notification_type": kind,
        "auction": {"id": auction.id, "product_id": auction.product_id, "final_price_cents": auction.final_price_cents},
        "bid_cents": placing.bid.bid_cents,
        "rank": placing.rank,
        "recipients": [placing.bid.user_id],
    });
    if let Some(order_id) = order_id {
        message["order_id"] = json!(order_id);
    }
    message
}

/// The id of one stored copy of a message: a broadcast keeps the message
/// id; a copy for one recipient keeps the message id's time prefix (so ids
/// still sort by time) and takes the rest from a hash of both. Every
/// notifier computes the same id, so redelivery stores nothing twice.
pub fn notification_id(message_id: Uuid, recipient: Option<Uuid>) -> Uuid {
    let Some(recipient) = recipient else {
        return message_id;
    };
    let digest = Sha256::new()
        .chain_update(message_id.as_bytes())
        .chain_update(recipient.as_bytes())
        .finalize();
    let mut bytes = *message_id.as_bytes();
    bytes[8..].copy_from_slice(&digest[..8]);
    // RFC 4122 variant bits, as in every UUIDv7.
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    Uuid::from_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_distinct_and_time_ordered() {
        let message = Uuid::now_v7();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        assert_eq!(notification_id(message, None), message);
        assert_eq!(
            notification_id(message, Some(a)),
            notification_id(message, Some(a))
        );
        assert_ne!(
            notification_id(message, Some(a)),
            notification_id(message, Some(b))
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
        let later = Uuid::now_v7();
        assert!(notification_id(message, Some(a)) < notification_id(later, Some(a)));
        assert_eq!(notification_id(message, Some(a)).get_version_num(), 7);
    }

    #[test]
    fn messages_carry_the_contract_fields() {
        let id = Uuid::now_v7();
        let created = event_message(EventAction::Created, id, "Launch", "ann", Utc::now(), None);
        assert_eq!(created["notification_type"], "event.created");
        assert_eq!(created["event"]["action"], "created");
        assert_eq!(created["user"], "ann");
        assert!(created.get("recipients").is_none());
        let sub = Uuid::now_v7();
        let updated = event_message(
            EventAction::Updated,
            id,
            "Launch",
            "ann",
            Utc::now(),
            Some(&[sub]),
        );
        assert_eq!(updated["recipients"][0], sub.to_string());
    }

    #[test]
    fn changes_reach_subscribers_and_the_creator_once() {
        let (creator, sub) = (Uuid::now_v7(), Uuid::now_v7());
        assert_eq!(recipients(EventAction::Created, vec![sub], creator), None);
        assert_eq!(
            recipients(EventAction::Updated, vec![sub], creator),
            Some(vec![sub, creator])
        );
        assert_eq!(
            recipients(EventAction::Deleted, vec![creator, sub], creator),
            Some(vec![creator, sub])
        );
        assert_eq!(
            recipients(EventAction::Updated, vec![], creator),
            Some(vec![creator])
        );
    }
}
