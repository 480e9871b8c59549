//! Flash-sale purchases: batched reservations under a stock guard, orders,
//! confirmation, cancellation and expiry.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::events::EventStatus;
use domain::page::PageRequest;
use domain::sales::{
    LedgerLine, Order, OrderStatus, Reservation, ReserveOutcome, SaleTerms, SalesStats, SellThrough,
    TopProduct,
};
use sqlx::FromRow;
use uuid::Uuid;

use crate::db::BeginWrite;
use crate::events::push_list;
use crate::tx::{Outgoing, TransactionSteps};
use crate::{Backend, Result, SqlStore, Store, StoreError};

pub(crate) const ORDER_COLUMNS: &str = "id, user_id, event_id, event_item_id, auction_id, product_id, quantity, \
     unit_price_cents, currency, status, expires_at, created_at, updated_at";

#[derive(FromRow)]
struct KeyedOrder {
    #[sqlx(flatten)]
    order: Order,
    idempotency_key: String,
}

/// What the purchase path needs to know about an item, cached per process.
#[derive(Debug, Clone, FromRow)]
pub struct SaleItem {
    pub item_id: Uuid,
    pub event_id: Uuid,
    pub stock_remaining: i64,
    /// The item's stock sequence (see migration 0006).
    pub stock_version: i64,
    pub per_user_limit: Option<i64>,
    #[sqlx(try_from = "String")]
    pub status: EventStatus,
    pub start_time: DateTime<Utc>,
    pub end_time: DateTime<Utc>,
}

/// The outcome of a batch and the item's stock after it.
#[derive(Debug, Clone)]
pub struct BatchResult {
    pub outcomes: Vec<ReserveOutcome>,
    pub stock_remaining: i64,
    pub stock_version: i64,
    pub event_id: Uuid,
    /// The batch sold the event's last unit.
    pub sold_out: bool,
}

/// Stock that came back to an item (cancel, expiry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Returned {
    pub order_id: Uuid,
    pub user_id: Uuid,
    pub event_id: Uuid,
    pub event_item_id: Uuid,
    pub quantity: i64,
    pub stock_remaining: i64,
    pub stock_version: i64,
}

#[derive(Debug, Clone)]
pub enum ConfirmOutcome {
    Confirmed(Order),
    /// The hold ran out: the order is (now) expired and its stock returned.
    Expired(Option<Returned>),
    /// Canceled before it could be confirmed.
    Canceled,
}

#[async_trait]
pub trait SalesStore {
    async fn sale_item(&self, item_id: Uuid) -> Result<SaleItem>;
    /// Reserves for every request it can, in one transaction: the item row
    /// is locked, `domain::sales::allocate` splits the batch, stock is
    /// decremented with a guard and the orders inserted. The invariant
    /// holds at every commit.
    async fn reserve_batch(
        &self,
        item_id: Uuid,
        requests: &[Reservation],
        default_ttl_seconds: i64,
    ) -> Result<BatchResult>;
    async fn order(&self, id: Uuid) -> Result<Order>;
    async fn order_by_key(&self, user_id: Uuid, key: &str) -> Result<Option<Order>>;
    async fn user_orders(&self, user_id: Uuid, page: &PageRequest<DateTime<Utc>>) -> Result<Vec<Order>>;
    async fn confirm_order(&self, id: Uuid) -> Result<ConfirmOutcome>;
    /// Cancels a reserved or confirmed order and returns its stock; `None`
    /// when it was already canceled or expired.
    async fn cancel_order(&self, id: Uuid) -> Result<Option<Returned>>;
    /// Expires up to `limit` reservations due at `now`, returning stock.
    async fn expire_due(&self, now: DateTime<Utc>, limit: i64) -> Result<Vec<Returned>>;
    async fn next_expiry_at(&self) -> Result<Option<DateTime<Utc>>>;
    async fn sales_stats(&self) -> Result<SalesStats>;
    /// Confirmed orders changed since `since`: when (their `updated_at`,
    /// the moment of confirmation) and their amount in cents, for the
    /// dashboard's revenue chart.
    async fn confirmed_amounts_since(&self, since: DateTime<Utc>) -> Result<Vec<(DateTime<Utc>, i64)>>;
    /// Per item of an event: stock and the units its orders hold, counted
    /// from the orders themselves (to audit the no-oversell invariant).
    async fn stock_ledger(&self, event_id: Uuid) -> Result<Vec<LedgerLine>>;
}

#[async_trait]
impl SalesStore for SqlStore {
    async fn sale_item(&self, item_id: Uuid) -> Result<SaleItem> {
        on_pool!(self, pool => Ok(sqlx::query_as(
            "SELECT i.id AS item_id, i.event_id, i.stock_remaining, i.stock_version, i.per_user_limit, e.status, \
             e.start_time, e.end_time \
             FROM event_items i JOIN events e ON e.id = i.event_id WHERE i.id = $1 AND e.deleted_at IS NULL",
        )
        .bind(item_id)
        .fetch_one(pool)
        .await?))
    }

    async fn reserve_batch(
        &self,
        item_id: Uuid,
        requests: &[Reservation],
        default_ttl_seconds: i64,
    ) -> Result<BatchResult> {
        let now = self.clock.now();
        let messages = [self.message_id(), self.message_id()];
        // SQLite's BEGIN IMMEDIATE already serializes writers; PostgreSQL
        // needs the item row locked for the read-decide-write below.
        let lock = if self.backend() == Backend::Postgres {
            " FOR UPDATE OF i"
        } else {
            ""
        };
        let select = format!(
            "SELECT i.stock_remaining, i.stock_version, i.per_user_limit, i.price_cents, i.currency, i.product_id, \
             i.event_id, e.status, e.start_time, e.end_time, e.reservation_ttl_seconds \
             FROM event_items i JOIN events e ON e.id = i.event_id WHERE i.id = $1 AND e.deleted_at IS NULL{lock}"
        );
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            #[allow(clippy::type_complexity)]
            let row: Option<(i64, i64, Option<i64>, i64, String, Uuid, Uuid, String, DateTime<Utc>, DateTime<Utc>, Option<i64>)> =
                sqlx::query_as(sqlx::AssertSqlSafe(select)).bind(item_id).fetch_optional(&mut *tx).await?;
            let Some((stock, version, limit, price, currency, product_id, event_id, status, start, end, ttl)) = row else {
                return Err(StoreError::NotFound);
            };
            let terms = SaleTerms {
                item_id,
                event_id,
                product_id,
                stock_remaining: stock,
                per_user_limit: limit,
                price_cents: price,
                currency,
                status: EventStatus::try_from(status).map_err(StoreError::Corrupt)?,
                start_time: start,
                end_time: end,
                hold: chrono::Duration::seconds(ttl.unwrap_or(default_ttl_seconds)),
            };
            let on_sale = domain::events::is_on_sale(terms.status, start, end, now);
            let users: Vec<Uuid> = requests.iter().map(|r| r.user_id).collect();
            let mut held: HashMap<Uuid, i64> = HashMap::new();
            if on_sale && limit.is_some() {
                let mut query = sqlx::QueryBuilder::new(
                    "SELECT user_id, CAST(SUM(quantity) AS BIGINT) FROM orders WHERE status IN ('reserved', 'confirmed') \
                     AND event_item_id = ",
                );
                query.push_bind(item_id).push(" AND user_id IN (");
                push_list!(query, &users);
                query.push(") GROUP BY user_id");
                let rows: Vec<(Uuid, i64)> = query.build_query_as().fetch_all(&mut *tx).await?;
                held.extend(rows);
            }
            let mut earlier: HashMap<(Uuid, String), Order> = HashMap::new();
            let keys: Vec<&str> = requests.iter().filter_map(|r| r.idempotency_key.as_deref()).collect();
            if on_sale && !keys.is_empty() {
                let mut query = sqlx::QueryBuilder::new(format!(
                    "SELECT {ORDER_COLUMNS}, idempotency_key FROM orders WHERE user_id IN ("
                ));
                push_list!(query, &users);
                query.push(") AND idempotency_key IN (");
                push_list!(query, &keys);
                query.push(")");
                let rows: Vec<KeyedOrder> = query.build_query_as().fetch_all(&mut *tx).await?;
                for row in rows {
                    earlier.insert((row.order.user_id, row.idempotency_key), row.order);
                }
            }

            let allocation = domain::sales::allocate(&terms, requests, &held, &earlier, now);
            let sold = allocation.sold(stock);
            let mut version = version;
            let mut sold_out = false;
            if sold > 0 {
                // The guard: the database refuses to go below zero whatever
                // the lock above promised.
                let guarded: Option<i64> = sqlx::query_scalar(
                    "UPDATE event_items SET stock_remaining = stock_remaining - $2, stock_version = stock_version + 1 \
                     WHERE id = $1 AND stock_remaining >= $2 RETURNING stock_version",
                )
                .bind(item_id)
                .bind(sold)
                .fetch_optional(&mut *tx)
                .await?;
                version = guarded.ok_or(StoreError::Conflict("stock"))?;
                let mut insert = sqlx::QueryBuilder::new(format!(
                    "INSERT INTO orders ({ORDER_COLUMNS}, idempotency_key) "
                ));
                insert.push_values(&allocation.new_orders, |mut row, (order, key)| {
                    row.push_bind(order.id)
                        .push_bind(order.user_id)
                        .push_bind(order.event_id)
                        .push_bind(order.event_item_id)
                        .push_bind(order.auction_id)
                        .push_bind(order.product_id)
                        .push_bind(order.quantity)
                        .push_bind(order.unit_price_cents)
                        .push_bind(order.currency.clone())
                        .push_bind(order.status.as_str())
                        .push_bind(order.expires_at)
                        .push_bind(order.created_at)
                        .push_bind(order.updated_at)
                        .push_bind(key.clone());
                });
                insert.build().execute(&mut *tx).await?;
                let stock = domain::notify::stock_message(event_id, item_id, allocation.remaining, version);
                tx.write_outbox(Outgoing { id: messages[0], topic: "stock", payload: stock }, now).await?;
                if allocation.remaining == 0 {
                    let marked = sqlx::query(
                        "UPDATE events SET status = 'sold_out', updated_at = $2 WHERE id = $1 AND status IN ('scheduled', 'live') \
                         AND NOT EXISTS (SELECT 1 FROM event_items i WHERE i.event_id = $1 AND i.stock_remaining > 0)",
                    )
                    .bind(event_id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    sold_out = marked.rows_affected() > 0;
                    if sold_out {
                        let status = domain::notify::status_message(event_id, "sold_out");
                        tx.write_outbox(Outgoing { id: messages[1], topic: "event.status", payload: status }, now)
                            .await?;
                    }
                }
            }
            tx.commit().await?;
            Ok(BatchResult {
                outcomes: allocation.outcomes,
                stock_remaining: allocation.remaining,
                stock_version: version,
                event_id,
                sold_out,
            })
        })
    }

    async fn order(&self, id: Uuid) -> Result<Order> {
        let sql = format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1");
        on_pool!(self, pool => Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_one(pool).await?))
    }

    async fn order_by_key(&self, user_id: Uuid, key: &str) -> Result<Option<Order>> {
        let sql = format!("SELECT {ORDER_COLUMNS} FROM orders WHERE user_id = $1 AND idempotency_key = $2");
        on_pool!(self, pool => Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(user_id)
            .bind(key)
            .fetch_optional(pool)
            .await?))
    }

    async fn user_orders(&self, user_id: Uuid, page: &PageRequest<DateTime<Utc>>) -> Result<Vec<Order>> {
        on_pool!(self, pool => {
            let mut query = sqlx::QueryBuilder::new(format!("SELECT {ORDER_COLUMNS} FROM orders WHERE user_id = "));
            query.push_bind(user_id);
            if let Some(after) = &page.after {
                query.push(" AND (created_at, id) < (").push_bind(after.key).push(", ").push_bind(after.id).push(")");
            }
            query.push(" ORDER BY created_at DESC, id DESC LIMIT ").push_bind(page.fetch_limit());
            Ok(query.build_query_as().fetch_all(pool).await?)
        })
    }

    async fn confirm_order(&self, id: Uuid) -> Result<ConfirmOutcome> {
        let now = self.clock.now();
        let message_id = self.message_id();
        let confirm = format!(
            "UPDATE orders SET status = 'confirmed', updated_at = $2 \
             WHERE id = $1 AND status = 'reserved' AND expires_at > $2 RETURNING {ORDER_COLUMNS}"
        );
        let select = format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1");
        let confirmed: Option<Order> = on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let order: Option<Order> = sqlx::query_as(sqlx::AssertSqlSafe(confirm))
                .bind(id)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(o) = &order {
                let payload = domain::notify::order_message(change_of(o, OrderStatus::Confirmed));
                tx.write_outbox(Outgoing { id: message_id, topic: "order", payload }, now).await?;
            }
            tx.commit().await?;
            order
        });
        if let Some(order) = confirmed {
            return Ok(ConfirmOutcome::Confirmed(order));
        }
        let order: Order = on_pool!(self, pool => sqlx::query_as(sqlx::AssertSqlSafe(select)).bind(id).fetch_one(pool).await?);
        Ok(match order.status {
            OrderStatus::Confirmed => ConfirmOutcome::Confirmed(order),
            OrderStatus::Canceled => ConfirmOutcome::Canceled,
            OrderStatus::Expired => ConfirmOutcome::Expired(None),
            // Reserved but past its hold: expire it now rather than wait for the sweep.
            OrderStatus::Reserved => {
                ConfirmOutcome::Expired(self.finish_hold(id, OrderStatus::Expired).await?)
            }
        })
    }

    async fn cancel_order(&self, id: Uuid) -> Result<Option<Returned>> {
        self.finish_hold(id, OrderStatus::Canceled).await
    }

    async fn expire_due(&self, now: DateTime<Utc>, limit: i64) -> Result<Vec<Returned>> {
        let clock = &self.clock;
        let sql = format!(
            "UPDATE orders SET status = 'expired', updated_at = $1 WHERE id IN \
             (SELECT id FROM orders WHERE status = 'reserved' AND expires_at <= $1 ORDER BY expires_at LIMIT $2) \
             AND status = 'reserved' RETURNING {ORDER_COLUMNS}"
        );
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let expired: Vec<Order> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(now)
                .bind(limit)
                .fetch_all(&mut *tx)
                .await?;
            let mut returned = Vec::with_capacity(expired.len());
            for order in expired {
                let payload = domain::notify::order_message(change_of(&order, OrderStatus::Expired));
                tx.write_outbox(Outgoing { id: clock.new_id(), topic: "order", payload }, now).await?;
                if let Some(back) = tx.release_units(&order, [clock.new_id(), clock.new_id()], now).await? {
                    returned.push(back);
                }
            }
            tx.commit().await?;
            Ok(returned)
        })
    }

    async fn next_expiry_at(&self) -> Result<Option<DateTime<Utc>>> {
        on_pool!(self, pool => Ok(sqlx::query_scalar(
            "SELECT expires_at FROM orders WHERE status = 'reserved' ORDER BY expires_at LIMIT 1",
        )
        .fetch_optional(pool)
        .await?))
    }

    async fn stock_ledger(&self, event_id: Uuid) -> Result<Vec<LedgerLine>> {
        on_pool!(self, pool => Ok(sqlx::query_as(
            "SELECT i.id AS event_item_id, i.stock_total, i.stock_remaining, \
               CAST(COALESCE(SUM(CASE WHEN o.status = 'reserved' THEN o.quantity ELSE 0 END), 0) AS BIGINT) AS reserved, \
               CAST(COALESCE(SUM(CASE WHEN o.status = 'confirmed' THEN o.quantity ELSE 0 END), 0) AS BIGINT) AS confirmed \
             FROM event_items i LEFT JOIN orders o ON o.event_item_id = i.id \
             WHERE i.event_id = $1 GROUP BY i.id, i.stock_total, i.stock_remaining, i.position ORDER BY i.position",
        )
        .bind(event_id)
        .fetch_all(pool)
        .await?))
    }

    async fn confirmed_amounts_since(&self, since: DateTime<Utc>) -> Result<Vec<(DateTime<Utc>, i64)>> {
        on_pool!(self, pool => Ok(sqlx::query_as(
            "SELECT updated_at, CAST(quantity * unit_price_cents AS BIGINT) FROM orders \
             WHERE status = 'confirmed' AND updated_at >= $1",
        )
        .bind(since)
        .fetch_all(pool)
        .await?))
    }

    async fn sales_stats(&self) -> Result<SalesStats> {
        on_pool!(self, pool => {
            let events: Vec<(String, i64)> = sqlx::query_as(
                "SELECT status, COUNT(*) FROM events WHERE deleted_at IS NULL GROUP BY status",
            )
            .fetch_all(pool)
            .await?;
            let orders: Vec<(String, i64)> = sqlx::query_as("SELECT status, COUNT(*) FROM orders GROUP BY status")
                .fetch_all(pool)
                .await?;
            let revenue: i64 = sqlx::query_scalar(
                "SELECT CAST(COALESCE(SUM(quantity * unit_price_cents), 0) AS BIGINT) FROM orders WHERE status = 'confirmed'",
            )
            .fetch_one(pool)
            .await?;
            let sell_through: Vec<SellThrough> = sqlx::query_as(
                "SELECT e.id AS event_id, e.title, CAST(SUM(i.stock_total - i.stock_remaining) AS BIGINT) AS sold, \
                 CAST(SUM(i.stock_total) AS BIGINT) AS stock_total \
                 FROM events e JOIN event_items i ON i.event_id = e.id WHERE e.deleted_at IS NULL \
                 GROUP BY e.id, e.title ORDER BY e.id DESC LIMIT 20",
            )
            .fetch_all(pool)
            .await?;
            let top_products: Vec<TopProduct> = sqlx::query_as(
                "SELECT o.product_id, p.name, CAST(SUM(o.quantity) AS BIGINT) AS units_sold, \
                 CAST(SUM(o.quantity * o.unit_price_cents) AS BIGINT) AS revenue_cents \
                 FROM orders o JOIN products p ON p.id = o.product_id WHERE o.status = 'confirmed' \
                 GROUP BY o.product_id, p.name ORDER BY 3 DESC, 4 DESC LIMIT 5",
            )
            .fetch_all(pool)
            .await?;
            let events_by_status = events
                .into_iter()
                .map(|(status, n)| EventStatus::try_from(status).map(|s| (s, n)))
                .collect::<Result<_, _>>()
                .map_err(StoreError::Corrupt)?;
            let orders_by_status = orders
                .into_iter()
                .map(|(status, n)| OrderStatus::try_from(status).map(|s| (s, n)))
                .collect::<Result<_, _>>()
                .map_err(StoreError::Corrupt)?;
            Ok(SalesStats { events_by_status, orders_by_status, revenue_cents: revenue, sell_through, top_products })
        })
    }
}

/// What an order message says of `order` moving to `status`.
fn change_of(order: &Order, status: OrderStatus) -> domain::notify::OrderChange<'static> {
    domain::notify::OrderChange {
        order_id: order.id,
        user_id: order.user_id,
        event_id: order.event_id,
        event_item_id: order.event_item_id,
        auction_id: order.auction_id,
        quantity: order.quantity,
        status: status.as_str(),
    }
}

impl SqlStore {
    /// Ends a hold (canceled or expired) and returns its stock in one
    /// transaction; `None` when the order no longer held stock (or held
    /// none: an auction's order).
    async fn finish_hold(&self, id: Uuid, status: OrderStatus) -> Result<Option<Returned>> {
        let now = self.clock.now();
        let ids = [self.message_id(), self.message_id(), self.message_id()];
        // A confirmed order can still be canceled (its stock returns); only
        // a reservation can expire.
        let holding = if status == OrderStatus::Expired {
            "('reserved')"
        } else {
            "('reserved', 'confirmed')"
        };
        let sql = format!(
            "UPDATE orders SET status = $2, updated_at = $3 WHERE id = $1 AND status IN {holding} \
             RETURNING {ORDER_COLUMNS}"
        );
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let ended: Option<Order> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(id)
                .bind(status.as_str())
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(order) = ended else {
                return Ok(None);
            };
            let payload = domain::notify::order_message(change_of(&order, status));
            tx.write_outbox(Outgoing { id: ids[2], topic: "order", payload }, now).await?;
            let returned = tx.release_units(&order, [ids[0], ids[1]], now).await?;
            tx.commit().await?;
            Ok(returned)
        })
    }
}
