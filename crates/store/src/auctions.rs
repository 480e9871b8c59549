//! Auctions: setup, batched bids under the auction's row lock, the
//! scheduler's transitions and the settlement into orders.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::Rejection;
use domain::auctions::{Auction, AuctionInput, AuctionStatus, Bid, BidBatch, BidRequest, Bidder, Settlement};
use domain::page::PageRequest;
use domain::sales::{Order, OrderStatus};
use serde_json::json;
use uuid::Uuid;

use crate::db::BeginWrite;
use crate::events::push_list;
use crate::sales::ORDER_COLUMNS;
use crate::tx::{Outgoing, TransactionSteps};
use crate::{Backend, Result, SqlStore, Store, StoreError};

const AUCTION_COLUMNS: &str = "id, product_id, event_id, upset_price_cents, currency, inventory, alpha, beta, gamma, \
     start_time, end_time, extend_seconds, status, final_price_cents, created_at, updated_at";

const BID_SELECT: &str = "SELECT b.auction_id, b.user_id, u.username, b.bid_cents, b.weight, b.score, b.placed_at \
     FROM bids b JOIN users u ON u.id = b.user_id";

/// Rows one statement writes at most (bind parameters stay well inside
/// both databases' limits).
const CHUNK: usize = 500;

#[derive(Debug, Default, Clone)]
pub struct AuctionFilter {
    pub status: Option<AuctionStatus>,
    pub event_id: Option<Uuid>,
}

/// A batch of bids as it landed, and the auction after it.
#[derive(Debug, Clone)]
pub struct PlacedBids {
    pub batch: BidBatch,
    pub auction: Auction,
}

/// An auction that settled, and how.
#[derive(Debug, Clone)]
pub struct Settled {
    pub auction: Auction,
    pub settlement: Settlement,
    /// The winners' orders, by user.
    pub orders: HashMap<Uuid, Order>,
}

#[async_trait]
pub trait AuctionStore {
    async fn create_auction(&self, input: &AuctionInput, created_by: Uuid) -> Result<Auction>;
    /// Replaces an auction's setup, in one transaction with the check that
    /// it is still editable (`domain::auctions::check_edit`).
    async fn update_auction(&self, id: Uuid, input: &AuctionInput) -> Result<Auction>;
    async fn auction(&self, id: Uuid) -> Result<Auction>;
    /// Auctions by start time, soonest first.
    async fn list_auctions(
        &self,
        filter: &AuctionFilter,
        page: &PageRequest<DateTime<Utc>>,
    ) -> Result<Vec<Auction>>;
    /// The auctions of several events (their pages).
    async fn auctions_of_events(&self, event_ids: &[Uuid]) -> Result<Vec<Auction>>;
    /// Places bids in one transaction: the auction row is locked, the
    /// bidders' weights read, `domain::auctions::accept_bids` decides, the
    /// accepted bids replace each user's earlier one, and a bid in the last
    /// `extend_seconds` moves the end.
    async fn place_bids(&self, auction_id: Uuid, requests: &[BidRequest]) -> Result<PlacedBids>;
    /// Every standing bid of an auction (to load its leaderboard).
    async fn bids(&self, auction_id: Uuid) -> Result<Vec<Bid>>;
    /// Scheduled auctions whose start has come go live; returns them.
    async fn open_due_auctions(&self, now: DateTime<Utc>) -> Result<Vec<Auction>>;
    /// Settles every auction whose end has come, each exactly once: only
    /// the transaction that moves it to `settled` ranks the bids
    /// (`domain::auctions::settle`) and writes the winners' orders (held
    /// for `hold`) and everyone's notification.
    async fn settle_due_auctions(&self, now: DateTime<Utc>, hold: chrono::Duration) -> Result<Vec<Settled>>;
    /// When the next auction opens or ends, if any.
    async fn next_auction_moment(&self) -> Result<Option<DateTime<Utc>>>;
}

/// Binds an auction's setup after the query's earlier parameters.
fn bind_setup<'q, DB>(
    query: sqlx::query::Query<'q, DB, DB::Arguments>,
    input: &'q AuctionInput,
) -> sqlx::query::Query<'q, DB, DB::Arguments>
where
    DB: sqlx::Database,
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    f64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    DateTime<Utc>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<i64>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    query
        .bind(input.upset_price_cents)
        .bind(input.inventory)
        .bind(input.alpha)
        .bind(input.beta)
        .bind(input.gamma)
        .bind(input.start_time)
        .bind(input.end_time)
        .bind(input.extend_seconds)
}

/// The live message that tells every process an auction changed (status,
/// end, setup): their views and boards follow it.
fn status_message(auction: &Auction) -> serde_json::Value {
    json!({
        "type": "auction.status",
        "auction_id": auction.id,
        "status": auction.status.as_str(),
        "end_time": auction.end_time,
        "final_price_cents": auction.final_price_cents,
    })
}

#[async_trait]
impl AuctionStore for SqlStore {
    async fn create_auction(&self, input: &AuctionInput, created_by: Uuid) -> Result<Auction> {
        let id = Uuid::now_v7();
        let now = self.clock.now();
        let message = self.message_id();
        let select = format!("SELECT {AUCTION_COLUMNS} FROM auctions WHERE id = $1");
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let currency: Option<String> =
                sqlx::query_scalar("SELECT currency FROM products WHERE id = $1 AND deleted_at IS NULL")
                    .bind(input.product_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            let currency = currency.ok_or_else(|| StoreError::invalid("product_id", "no such product"))?;
            if let Some(event) = input.event_id {
                let exists: bool =
                    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM events WHERE id = $1 AND deleted_at IS NULL)")
                        .bind(event)
                        .fetch_one(&mut *tx)
                        .await?;
                if !exists {
                    return Err(StoreError::invalid("event_id", "no such event"));
                }
            }
            let insert = sqlx::query(
                "INSERT INTO auctions (id, product_id, event_id, currency, created_by, created_at, updated_at, \
                 upset_price_cents, inventory, alpha, beta, gamma, start_time, end_time, extend_seconds) \
                 VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
            )
            .bind(id)
            .bind(input.product_id)
            .bind(input.event_id)
            .bind(currency)
            .bind(created_by)
            .bind(now);
            bind_setup(insert, input).execute(&mut *tx).await?;
            let auction: Auction = sqlx::query_as(sqlx::AssertSqlSafe(select)).bind(id).fetch_one(&mut *tx).await?;
            tx.write_outbox(Outgoing { id: message, topic: "auction.status", payload: status_message(&auction) }, now)
                .await?;
            tx.commit().await?;
            Ok(auction)
        })
    }

    async fn update_auction(&self, id: Uuid, input: &AuctionInput) -> Result<Auction> {
        let now = self.clock.now();
        let message = self.message_id();
        let lock = if self.backend() == Backend::Postgres {
            " FOR UPDATE"
        } else {
            ""
        };
        let current_sql = format!("SELECT {AUCTION_COLUMNS} FROM auctions WHERE id = $1{lock}");
        let select = format!("SELECT {AUCTION_COLUMNS} FROM auctions WHERE id = $1");
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let current: Auction =
                sqlx::query_as(sqlx::AssertSqlSafe(current_sql)).bind(id).fetch_one(&mut *tx).await?;
            domain::auctions::check_edit(&current, now).map_err(StoreError::refused)?;
            let moved = input.start_time != current.start_time;
            domain::auctions::validate_auction(input, moved.then_some(now)).map_err(Rejection::Invalid)?;
            let currency: Option<String> =
                sqlx::query_scalar("SELECT currency FROM products WHERE id = $1 AND deleted_at IS NULL")
                    .bind(input.product_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            let currency = currency.ok_or_else(|| StoreError::invalid("product_id", "no such product"))?;
            let update = sqlx::query(
                "UPDATE auctions SET product_id = $2, event_id = $3, currency = $4, updated_at = $5, \
                 upset_price_cents = $6, inventory = $7, alpha = $8, beta = $9, gamma = $10, start_time = $11, \
                 end_time = $12, extend_seconds = $13 WHERE id = $1",
            )
            .bind(id)
            .bind(input.product_id)
            .bind(input.event_id)
            .bind(currency)
            .bind(now);
            bind_setup(update, input).execute(&mut *tx).await?;
            let auction: Auction = sqlx::query_as(sqlx::AssertSqlSafe(select)).bind(id).fetch_one(&mut *tx).await?;
            tx.write_outbox(Outgoing { id: message, topic: "auction.status", payload: status_message(&auction) }, now)
                .await?;
            tx.commit().await?;
            Ok(auction)
        })
    }

    async fn auction(&self, id: Uuid) -> Result<Auction> {
        let sql = format!("SELECT {AUCTION_COLUMNS} FROM auctions WHERE id = $1");
        on_pool!(self, pool => Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_one(pool).await?))
    }

    async fn list_auctions(
        &self,
        filter: &AuctionFilter,
        page: &PageRequest<DateTime<Utc>>,
    ) -> Result<Vec<Auction>> {
        on_pool!(self, pool => {
            let mut query = sqlx::QueryBuilder::new(format!("SELECT {AUCTION_COLUMNS} FROM auctions WHERE 1 = 1"));
            if let Some(status) = filter.status {
                query.push(" AND status = ").push_bind(status.as_str());
            }
            if let Some(event) = filter.event_id {
                query.push(" AND event_id = ").push_bind(event);
            }
            if let Some(after) = &page.after {
                query.push(" AND (start_time, id) > (").push_bind(after.key).push(", ").push_bind(after.id).push(")");
            }
            query.push(" ORDER BY start_time, id LIMIT ").push_bind(page.fetch_limit());
            Ok(query.build_query_as().fetch_all(pool).await?)
        })
    }

    async fn auctions_of_events(&self, event_ids: &[Uuid]) -> Result<Vec<Auction>> {
        if event_ids.is_empty() {
            return Ok(Vec::new());
        }
        on_pool!(self, pool => {
            let mut query =
                sqlx::QueryBuilder::new(format!("SELECT {AUCTION_COLUMNS} FROM auctions WHERE event_id IN ("));
            push_list!(query, event_ids);
            query.push(") ORDER BY start_time, id");
            Ok(query.build_query_as().fetch_all(pool).await?)
        })
    }

    async fn place_bids(&self, auction_id: Uuid, requests: &[BidRequest]) -> Result<PlacedBids> {
        let now = self.clock.now();
        let messages = [self.message_id(), self.message_id()];
        let lock = if self.backend() == Backend::Postgres {
            " FOR UPDATE"
        } else {
            ""
        };
        let current_sql = format!("SELECT {AUCTION_COLUMNS} FROM auctions WHERE id = $1{lock}");
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let mut auction: Auction =
                sqlx::query_as(sqlx::AssertSqlSafe(current_sql)).bind(auction_id).fetch_one(&mut *tx).await?;
            let mut bidders: HashMap<Uuid, Bidder> = HashMap::new();
            if auction.is_taking_bids(now) {
                let users: Vec<Uuid> = requests.iter().map(|r| r.user_id).collect();
                let mut query = sqlx::QueryBuilder::new("SELECT id, username, weight, is_active FROM users WHERE id IN (");
                push_list!(query, &users);
                query.push(")");
                let rows: Vec<(Uuid, String, f64, bool)> = query.build_query_as().fetch_all(&mut *tx).await?;
                bidders.extend(rows.into_iter().map(|(id, username, weight, is_active)| {
                    (id, Bidder { username, weight, is_active })
                }));
            }
            let batch = domain::auctions::accept_bids(&auction, requests, &bidders, now);
            for chunk in batch.stored.chunks(CHUNK) {
                let mut upsert = sqlx::QueryBuilder::new(
                    "INSERT INTO bids (auction_id, user_id, bid_cents, weight, score, placed_at) ",
                );
                upsert.push_values(chunk, |mut row, bid| {
                    row.push_bind(bid.auction_id)
                        .push_bind(bid.user_id)
                        .push_bind(bid.bid_cents)
                        .push_bind(bid.weight)
                        .push_bind(bid.score)
                        .push_bind(bid.placed_at);
                });
                upsert.push(
                    " ON CONFLICT (auction_id, user_id) DO UPDATE SET bid_cents = excluded.bid_cents, \
                     weight = excluded.weight, score = excluded.score, placed_at = excluded.placed_at",
                );
                upsert.build().execute(&mut *tx).await?;
            }
            if let Some(end) = batch.extended_to {
                sqlx::query("UPDATE auctions SET end_time = $2, updated_at = $3 WHERE id = $1")
                    .bind(auction_id)
                    .bind(end)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                auction.end_time = end;
                auction.updated_at = now;
            }
            if !batch.stored.is_empty() {
                // Every process's leaderboard and open pages follow this.
                let bids: Vec<serde_json::Value> = batch
                    .stored
                    .iter()
                    .map(|b| json!({"user_id": b.user_id, "username": b.username, "bid_cents": b.bid_cents,
                                    "score": b.score, "placed_at": b.placed_at}))
                    .collect();
                let payload = json!({"type": "auction.bids", "auction_id": auction_id, "bids": bids});
                tx.write_outbox(Outgoing { id: messages[0], topic: "auction.bids", payload }, now).await?;
            }
            if batch.extended_to.is_some() {
                let payload = status_message(&auction);
                tx.write_outbox(Outgoing { id: messages[1], topic: "auction.status", payload }, now).await?;
            }
            tx.commit().await?;
            Ok(PlacedBids { batch, auction })
        })
    }

    async fn bids(&self, auction_id: Uuid) -> Result<Vec<Bid>> {
        let sql = format!("{BID_SELECT} WHERE b.auction_id = $1");
        on_pool!(self, pool => Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(auction_id).fetch_all(pool).await?))
    }

    async fn open_due_auctions(&self, now: DateTime<Utc>) -> Result<Vec<Auction>> {
        let clock = &self.clock;
        let sql = format!(
            "UPDATE auctions SET status = 'live', updated_at = $1 \
             WHERE status = 'scheduled' AND start_time <= $1 AND end_time > $1 RETURNING {AUCTION_COLUMNS}"
        );
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let opened: Vec<Auction> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(now).fetch_all(&mut *tx).await?;
            for auction in &opened {
                let payload = status_message(auction);
                tx.write_outbox(Outgoing { id: clock.new_id(), topic: "auction.status", payload }, now).await?;
            }
            tx.commit().await?;
            Ok(opened)
        })
    }

    async fn settle_due_auctions(&self, now: DateTime<Utc>, hold: chrono::Duration) -> Result<Vec<Settled>> {
        let due: Vec<Uuid> = on_pool!(self, pool => sqlx::query_scalar(
            "SELECT id FROM auctions WHERE status IN ('scheduled', 'live') AND end_time <= $1 ORDER BY end_time",
        )
        .bind(now)
        .fetch_all(pool)
        .await?);
        let mut settled = Vec::with_capacity(due.len());
        for id in due {
            if let Some(done) = self.settle_auction(id, now, hold).await? {
                settled.push(done);
            }
        }
        Ok(settled)
    }

    async fn next_auction_moment(&self) -> Result<Option<DateTime<Utc>>> {
        on_pool!(self, pool => {
            let start: Option<DateTime<Utc>> = sqlx::query_scalar(
                "SELECT start_time FROM auctions WHERE status = 'scheduled' ORDER BY start_time LIMIT 1",
            )
            .fetch_optional(pool)
            .await?;
            let end: Option<DateTime<Utc>> = sqlx::query_scalar(
                "SELECT end_time FROM auctions WHERE status IN ('scheduled', 'live') ORDER BY end_time LIMIT 1",
            )
            .fetch_optional(pool)
            .await?;
            Ok([start, end].into_iter().flatten().min())
        })
    }
}

impl SqlStore {
    /// Settles one auction if no one did yet: the conditional move to
    /// `settled` is the claim, so two workers (or a worker that restarted
    /// mid-way) never settle it twice; the ranking, the orders, the
    /// notifications and the claim commit together or not at all.
    async fn settle_auction(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
        hold: chrono::Duration,
    ) -> Result<Option<Settled>> {
        let clock = &self.clock;
        let claim = format!(
            "UPDATE auctions SET status = 'settled', updated_at = $2 \
             WHERE id = $1 AND status IN ('scheduled', 'live') AND end_time <= $2 RETURNING {AUCTION_COLUMNS}"
        );
        let bids_sql = format!("{BID_SELECT} WHERE b.auction_id = $1");
        let order_insert = format!("INSERT INTO orders ({ORDER_COLUMNS}) ");
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let claimed: Option<Auction> =
                sqlx::query_as(sqlx::AssertSqlSafe(claim)).bind(id).bind(now).fetch_optional(&mut *tx).await?;
            let Some(mut auction) = claimed else {
                return Ok(None);
            };
            let bids: Vec<Bid> = sqlx::query_as(sqlx::AssertSqlSafe(bids_sql)).bind(id).fetch_all(&mut *tx).await?;
            let settlement = domain::auctions::settle(bids, auction.inventory);
            let orders: HashMap<Uuid, Order> = settlement
                .placings
                .iter()
                .filter(|p| p.won)
                .map(|p| {
                    let order = Order {
                        id: Uuid::now_v7(),
                        user_id: p.bid.user_id,
                        event_id: auction.event_id,
                        event_item_id: None,
                        auction_id: Some(auction.id),
                        product_id: auction.product_id,
                        quantity: 1,
                        unit_price_cents: p.bid.bid_cents,
                        currency: auction.currency.clone(),
                        status: OrderStatus::Reserved,
                        expires_at: now + hold,
                        created_at: now,
                        updated_at: now,
                    };
                    (p.bid.user_id, order)
                })
                .collect();
            let winners: Vec<&Order> = settlement
                .placings
                .iter()
                .filter_map(|p| orders.get(&p.bid.user_id))
                .collect();
            for chunk in winners.chunks(CHUNK) {
                let mut insert = sqlx::QueryBuilder::new(order_insert.as_str());
                insert.push_values(chunk, |mut row, order| {
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
                        .push_bind(order.updated_at);
                });
                insert.build().execute(&mut *tx).await?;
            }
            for chunk in settlement.placings.chunks(CHUNK) {
                let mut update = sqlx::QueryBuilder::new("UPDATE bids SET final_rank = v.column2, won = v.column3, \
                     order_id = v.column4 FROM (");
                update.push_values(chunk, |mut row, placing| {
                    row.push_bind(placing.bid.user_id)
                        .push_bind(placing.rank)
                        .push_bind(placing.won)
                        .push_bind(orders.get(&placing.bid.user_id).map(|o| o.id));
                });
                update.push(") AS v WHERE bids.user_id = v.column1 AND bids.auction_id = ").push_bind(id);
                // `push_values` writes `VALUES (...)`, which both databases
                // accept as a derived table named by column1, column2, ...
                update.build().execute(&mut *tx).await?;
            }
            sqlx::query("UPDATE auctions SET final_price_cents = $2 WHERE id = $1")
                .bind(id)
                .bind(settlement.final_price_cents)
                .execute(&mut *tx)
                .await?;
            auction.final_price_cents = settlement.final_price_cents;
            for placing in &settlement.placings {
                let order = orders.get(&placing.bid.user_id);
                let payload = domain::notify::auction_result_message(&auction, placing, order.map(|o| o.id));
                tx.write_outbox(Outgoing { id: clock.new_id(), topic: "notification", payload }, now).await?;
                if let Some(order) = order {
                    let payload = domain::notify::order_message(domain::notify::OrderChange {
                        order_id: order.id,
                        user_id: order.user_id,
                        event_id: order.event_id,
                        event_item_id: None,
                        auction_id: order.auction_id,
                        quantity: order.quantity,
                        status: OrderStatus::Reserved.as_str(),
                    });
                    tx.write_outbox(Outgoing { id: clock.new_id(), topic: "order", payload }, now).await?;
                }
            }
            tx.write_outbox(Outgoing { id: clock.new_id(), topic: "auction.status", payload: status_message(&auction) }, now)
                .await?;
            tx.commit().await?;
            Ok(Some(Settled { auction, settlement, orders }))
        })
    }
}
