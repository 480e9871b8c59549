//! Steps that several write transactions share: the outbox write, stock
//! returned to an item, an event's tags, items and announcement, a refresh
//! token.
//!
//! They are methods of the open transaction, so a caller uses them like any
//! function, in any order of declaration. Each body is written once and
//! compiled for both drivers by `transaction_steps!`: made generic over
//! `sqlx::Database` instead, every step would carry a dozen encode/decode
//! bounds (and sqlx has no driver-neutral `rows_affected`).

use chrono::{DateTime, Utc};
use domain::events::ItemInput;
use domain::notify::EventAction;
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use crate::{Result, StoreError};

/// An outbox message about to be written with the change it announces.
pub(crate) struct Outgoing<'a> {
    /// A UUIDv7 from the store's clock: its time prefix is the write's time.
    pub id: Uuid,
    pub topic: &'a str,
    pub payload: Value,
}

/// A refresh token about to be stored (only its hash is kept).
pub struct NewRefreshToken {
    pub id: Uuid,
    pub token_hash: String,
    pub expires_at: DateTime<Utc>,
}

/// Which tag table a set of tags belongs to.
#[derive(Clone, Copy)]
pub(crate) enum Tagged {
    Product,
    Event,
}

impl Tagged {
    fn insert_sql(self) -> &'static str {
        match self {
            Tagged::Product => "INSERT INTO product_tags (tag, product_id) VALUES ($1, $2)",
            Tagged::Event => "INSERT INTO event_tags (tag, event_id) VALUES ($1, $2)",
        }
    }

    fn delete_sql(self) -> &'static str {
        match self {
            Tagged::Product => "DELETE FROM product_tags WHERE product_id = $1",
            Tagged::Event => "DELETE FROM event_tags WHERE event_id = $1",
        }
    }
}

pub(crate) trait TransactionSteps {
    /// Writes an outbox message: it commits with the change, or not at all.
    async fn write_outbox(&mut self, message: Outgoing<'_>, now: DateTime<Utc>) -> Result<()>;

    /// Puts `quantity` units back on an item, revives a sold-out event that
    /// is still in its window, and announces both on the live channels.
    /// Returns the item's stock and its new version.
    async fn return_stock(
        &mut self,
        ids: [Uuid; 2],
        item: Uuid,
        event: Uuid,
        quantity: i64,
        now: DateTime<Utc>,
    ) -> Result<(i64, i64)>;

    /// Puts the units of an order that stopped holding stock back on its
    /// item (`return_stock`); an auction's order holds none: `None`.
    async fn release_units(
        &mut self,
        order: &domain::sales::Order,
        ids: [Uuid; 2],
        now: DateTime<Utc>,
    ) -> Result<Option<crate::sales::Returned>> {
        let (Some(item), Some(event)) = (order.event_item_id, order.event_id) else {
            return Ok(None);
        };
        let (stock_remaining, stock_version) =
            self.return_stock(ids, item, event, order.quantity, now).await?;
        Ok(Some(crate::sales::Returned {
            order_id: order.id,
            user_id: order.user_id,
            event_id: event,
            event_item_id: item,
            quantity: order.quantity,
            stock_remaining,
            stock_version,
        }))
    }

    /// Replaces the tags of a product or event.
    async fn replace_tags(&mut self, table: Tagged, owner: Uuid, tags: &[String]) -> Result<()>;

    /// Makes the drop's items what `items` says: an item that names one of
    /// the event's items keeps its id, others are new, the rest go. Each
    /// item takes its currency from its product, which must exist.
    async fn store_items(&mut self, event: Uuid, items: &[ItemInput], now: DateTime<Utc>) -> Result<()>;

    /// Writes the notification of an event change, addressed as of this
    /// change (`domain::notify::recipients`).
    async fn announce(
        &mut self,
        id: Uuid,
        action: EventAction,
        event: Uuid,
        actor: Uuid,
        now: DateTime<Utc>,
    ) -> Result<()>;

    async fn insert_refresh_token(
        &mut self,
        user: Uuid,
        session: Uuid,
        token: &NewRefreshToken,
        now: DateTime<Utc>,
    ) -> Result<()>;
}

macro_rules! transaction_steps {
    ($db:ty) => {
        impl TransactionSteps for sqlx::Transaction<'_, $db> {
            async fn write_outbox(&mut self, message: Outgoing<'_>, now: DateTime<Utc>) -> Result<()> {
                sqlx::query("INSERT INTO outbox (id, topic, payload, created_at) VALUES ($1, $2, $3, $4)")
                    .bind(message.id)
                    .bind(message.topic)
                    .bind(Json(&message.payload))
                    .bind(now)
                    .execute(&mut **self)
                    .await?;
                Ok(())
            }

            async fn return_stock(
                &mut self,
                ids: [Uuid; 2],
                item: Uuid,
                event: Uuid,
                quantity: i64,
                now: DateTime<Utc>,
            ) -> Result<(i64, i64)> {
                let (remaining, version): (i64, i64) = sqlx::query_as(
                    "UPDATE event_items SET stock_remaining = stock_remaining + $2, stock_version = stock_version + 1 \
                     WHERE id = $1 RETURNING stock_remaining, stock_version",
                )
                .bind(item)
                .bind(quantity)
                .fetch_one(&mut **self)
                .await?;
                let revived = sqlx::query(
                    "UPDATE events SET status = 'live', updated_at = $2 \
                     WHERE id = $1 AND status = 'sold_out' AND start_time <= $2 AND end_time > $2",
                )
                .bind(event)
                .bind(now)
                .execute(&mut **self)
                .await?;
                let stock = domain::notify::stock_message(event, item, remaining, version);
                self.write_outbox(Outgoing { id: ids[0], topic: "stock", payload: stock }, now).await?;
                if revived.rows_affected() > 0 {
                    let status = domain::notify::status_message(event, "live");
                    self.write_outbox(Outgoing { id: ids[1], topic: "event.status", payload: status }, now)
                        .await?;
                }
                Ok((remaining, version))
            }

            async fn replace_tags(&mut self, table: Tagged, owner: Uuid, tags: &[String]) -> Result<()> {
                sqlx::query(table.delete_sql()).bind(owner).execute(&mut **self).await?;
                for tag in tags {
                    sqlx::query(table.insert_sql()).bind(tag).bind(owner).execute(&mut **self).await?;
                }
                Ok(())
            }

            async fn store_items(&mut self, event: Uuid, items: &[ItemInput], now: DateTime<Utc>) -> Result<()> {
                let existing: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM event_items WHERE event_id = $1")
                    .bind(event)
                    .fetch_all(&mut **self)
                    .await?;
                let mut kept = Vec::with_capacity(items.len());
                for (position, item) in items.iter().enumerate() {
                    let currency: Option<String> =
                        sqlx::query_scalar("SELECT currency FROM products WHERE id = $1 AND deleted_at IS NULL")
                            .bind(item.product_id)
                            .fetch_optional(&mut **self)
                            .await?;
                    let currency = currency.ok_or_else(|| {
                        StoreError::invalid(&format!("items[{position}].product_id"), "no such product")
                    })?;
                    match item.id {
                        Some(id) if existing.contains(&id) => {
                            sqlx::query(
                                "UPDATE event_items SET product_id = $2, price_cents = $3, currency = $4, \
                                 stock_total = $5, stock_remaining = $5, per_user_limit = $6, position = $7, \
                                 stock_version = stock_version + 1 WHERE id = $1",
                            )
                            .bind(id)
                            .bind(item.product_id)
                            .bind(item.price_cents)
                            .bind(currency)
                            .bind(item.stock)
                            .bind(item.per_user_limit)
                            .bind(position as i64)
                            .execute(&mut **self)
                            .await?;
                            kept.push(id);
                        }
                        Some(_) => {
                            return Err(StoreError::invalid(
                                &format!("items[{position}].id"),
                                "is not an item of this event",
                            ));
                        }
                        None => {
                            let id = Uuid::now_v7();
                            sqlx::query(
                                "INSERT INTO event_items (id, event_id, product_id, price_cents, currency, stock_total, \
                                 stock_remaining, per_user_limit, position, created_at) \
                                 VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $8, $9)",
                            )
                            .bind(id)
                            .bind(event)
                            .bind(item.product_id)
                            .bind(item.price_cents)
                            .bind(currency)
                            .bind(item.stock)
                            .bind(item.per_user_limit)
                            .bind(position as i64)
                            .bind(now)
                            .execute(&mut **self)
                            .await?;
                            kept.push(id);
                        }
                    }
                }
                for gone in existing.iter().filter(|id| !kept.contains(id)) {
                    sqlx::query("DELETE FROM event_items WHERE id = $1")
                        .bind(gone)
                        .execute(&mut **self)
                        .await?;
                }
                Ok(())
            }

            async fn announce(
                &mut self,
                id: Uuid,
                action: EventAction,
                event: Uuid,
                actor: Uuid,
                now: DateTime<Utc>,
            ) -> Result<()> {
                let (title, creator): (String, Uuid) =
                    sqlx::query_as("SELECT title, created_by FROM events WHERE id = $1")
                        .bind(event)
                        .fetch_one(&mut **self)
                        .await?;
                let username: String = sqlx::query_scalar("SELECT username FROM users WHERE id = $1")
                    .bind(actor)
                    .fetch_one(&mut **self)
                    .await?;
                let subscribers: Vec<Uuid> = if action.is_broadcast() {
                    Vec::new()
                } else {
                    sqlx::query_scalar("SELECT user_id FROM event_subscriptions WHERE event_id = $1")
                        .bind(event)
                        .fetch_all(&mut **self)
                        .await?
                };
                let recipients = domain::notify::recipients(action, subscribers, creator);
                let payload =
                    domain::notify::event_message(action, event, &title, &username, now, recipients.as_deref());
                self.write_outbox(Outgoing { id, topic: action.notification_type(), payload }, now).await
            }

            async fn insert_refresh_token(
                &mut self,
                user: Uuid,
                session: Uuid,
                token: &NewRefreshToken,
                now: DateTime<Utc>,
            ) -> Result<()> {
                sqlx::query(
                    "INSERT INTO refresh_tokens (id, session_id, user_id, token_hash, expires_at, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(token.id)
                .bind(session)
                .bind(user)
                .bind(&token.token_hash)
                .bind(token.expires_at)
                .bind(now)
                .execute(&mut **self)
                .await?;
                Ok(())
            }
        }
    };
}

transaction_steps!(sqlx::Sqlite);
transaction_steps!(sqlx::Postgres);
