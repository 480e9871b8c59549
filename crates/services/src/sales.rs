//! The purchase path: clock check, admission gate, group-committed
//! reservations; and orders after it: confirm, cancel, expiry.
//!
//! A purchase that passes the gate joins the batch of its item. One task
//! per hot item takes every request queued while the previous transaction
//! ran and reserves them in a single transaction (group commit), so the
//! database sees one commit per batch instead of one per buyer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use domain::clock::Clock;
use domain::cursor::CursorCodec;
use domain::events::is_on_sale;
use domain::page::{Page, Position, page_from_rows, page_request};
use domain::sales::{self, LedgerLine, Order, OrderStatus, Reservation, ReserveOutcome, SalesStats};
use domain::user::Role;
use gates::{Admission, Observed, StockGate};
use store::Store;
use store::sales::{ConfirmOutcome, Returned, SaleItem};
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::accounts::Principal;
use crate::batch::{BatchWork, GroupCommit};
use crate::events::EventService;
use crate::{Error, Result};

/// Requests one transaction reserves at most, by default.
pub const DEFAULT_MAX_BATCH: usize = 256;
/// How old the gate's view may be before a sold-out answer re-reads stock
/// (another process may have returned units).
const GATE_REFRESH: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct Purchase {
    pub order: Order,
    /// The order came from an earlier request with the same Idempotency-Key.
    pub replayed: bool,
}

struct Job {
    reservation: Reservation,
    /// Units the gate let through for this job (0 when it went to the
    /// database without the gate's leave, to resolve an idempotent retry).
    admitted: i64,
    reply: oneshot::Sender<Result<ReserveOutcome>>,
}

pub struct SalesService {
    store: Arc<dyn Store>,
    gate: Arc<dyn StockGate>,
    events: Arc<EventService>,
    cursors: CursorCodec,
    clock: Clock,
    /// One group-commit task per item being bought (see `crate::batch`).
    reservations: GroupCommit<Reserve>,
}

/// What the database said of an item's stock, for the gate.
fn observed(item: &SaleItem) -> Observed {
    Observed {
        stock: item.stock_remaining,
        version: item.stock_version,
    }
}

fn sold_out() -> Error {
    Error::conflict("sold_out", "this item is sold out")
}

fn not_live() -> Error {
    Error::conflict("event_not_live", "this event is not on sale now")
}

impl SalesService {
    pub fn new(
        store: Arc<dyn Store>,
        gate: Arc<dyn StockGate>,
        events: Arc<EventService>,
        cursors: CursorCodec,
        clock: Clock,
        default_ttl_seconds: i64,
        max_batch: usize,
    ) -> Self {
        let reserve = Reserve {
            store: store.clone(),
            gate: gate.clone(),
            events: events.clone(),
            default_ttl_seconds,
        };
        SalesService {
            store,
            gate,
            events,
            cursors,
            clock,
            reservations: GroupCommit::new(reserve, max_batch),
        }
    }

    pub async fn purchase(
        &self,
        principal: &Principal,
        item_id: Uuid,
        quantity: i64,
        idempotency_key: Option<String>,
    ) -> Result<Purchase> {
        sales::check_quantity(quantity)?;
        if let Some(key) = &idempotency_key {
            sales::check_idempotency_key(key)?;
        }
        let item = self.events.sale_item(item_id).await?;
        // The purchase path reads the clock itself: a late scheduler cannot
        // make it sell before the start or after the end.
        if !is_on_sale(item.status, item.start_time, item.end_time, self.clock.now()) {
            return Err(not_live());
        }
        if let Some(key) = &idempotency_key
            && let Some(order) = self.store.order_by_key(principal.user_id, key).await?
        {
            return Ok(Purchase {
                order,
                replayed: true,
            });
        }
        if item.per_user_limit.is_some_and(|limit| quantity > limit) {
            return Err(Error::conflict(
                "limit_reached",
                "more than the per-user limit of this item",
            ));
        }
        // A keyed retry the gate would turn away may be a replay of an order
        // still being written: let the database answer it.
        let admitted = match self.admit(item_id, quantity).await {
            Ok(()) => quantity,
            Err(_) if idempotency_key.is_some() => 0,
            Err(err) => {
                metrics::counter!("swiftdrop_purchases_total", "outcome" => "sold_out").increment(1);
                return Err(err);
            }
        };
        let reservation = Reservation {
            order_id: Uuid::now_v7(),
            user_id: principal.user_id,
            quantity,
            idempotency_key,
        };
        let outcome = match self.submit(item_id, reservation, admitted).await {
            Ok(outcome) => outcome,
            Err(err) => {
                self.gate.release(item_id, admitted).await;
                return Err(err);
            }
        };
        let kind = match &outcome {
            ReserveOutcome::Reserved(_) => "reserved",
            ReserveOutcome::Replayed(_) => "replayed",
            ReserveOutcome::SoldOut => "sold_out",
            ReserveOutcome::LimitReached => "limit_reached",
            ReserveOutcome::NotLive => "not_live",
        };
        metrics::counter!("swiftdrop_purchases_total", "outcome" => kind).increment(1);
        match outcome {
            ReserveOutcome::Reserved(order) => Ok(Purchase {
                order,
                replayed: false,
            }),
            ReserveOutcome::Replayed(order) => Ok(Purchase {
                order,
                replayed: true,
            }),
            ReserveOutcome::SoldOut => Err(sold_out()),
            ReserveOutcome::LimitReached => Err(Error::conflict(
                "limit_reached",
                "you already hold this item's per-user limit",
            )),
            ReserveOutcome::NotLive => {
                // The cached view said on sale; the database disagreed.
                self.events.changed(item.event_id).await;
                Err(not_live())
            }
        }
    }

    /// Asks the gate; loads the item's stock the first time, and re-reads it
    /// when a sold-out answer rests on an old view.
    async fn admit(&self, item_id: Uuid, quantity: i64) -> Result<()> {
        for _ in 0..2 {
            match self.gate.admit(item_id, quantity).await {
                Admission::Admitted => {
                    metrics::counter!("swiftdrop_gate_decisions_total", "decision" => "admitted")
                        .increment(1);
                    return Ok(());
                }
                Admission::Unknown => {
                    let item = self.store.sale_item(item_id).await?;
                    self.gate.observe(item_id, observed(&item)).await;
                }
                Admission::SoldOut => {
                    if self.gate.claim_refresh(item_id, GATE_REFRESH).await {
                        let item = self.store.sale_item(item_id).await?;
                        self.gate.observe(item_id, observed(&item)).await;
                        continue;
                    }
                    break;
                }
            }
        }
        metrics::counter!("swiftdrop_gate_decisions_total", "decision" => "sold_out").increment(1);
        Err(sold_out())
    }

    async fn submit(&self, item_id: Uuid, reservation: Reservation, admitted: i64) -> Result<ReserveOutcome> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            reservation,
            admitted,
            reply,
        };
        self.reservations.submit(item_id, job).await?;
        answer
            .await
            .map_err(|_| Error::internal("reservation batch was dropped"))?
    }

    pub async fn order(&self, principal: &Principal, id: Uuid) -> Result<Order> {
        let order = self.store.order(id).await?;
        // Someone else's order is a 404: its existence is not revealed.
        if order.user_id != principal.user_id && principal.role != Role::Admin {
            return Err(Error::NotFound);
        }
        Ok(order)
    }

    pub async fn confirm(&self, principal: &Principal, id: Uuid) -> Result<Order> {
        let order = self.store.order(id).await?;
        if order.user_id != principal.user_id {
            return Err(Error::NotFound);
        }
        match self.store.confirm_order(id).await? {
            ConfirmOutcome::Confirmed(order) => Ok(order),
            ConfirmOutcome::Expired(returned) => {
                if let Some(returned) = returned {
                    self.stock_returned(&returned).await;
                }
                Err(Error::conflict(
                    "reservation_expired",
                    "the reservation expired before it was confirmed",
                ))
            }
            ConfirmOutcome::Canceled => Err(Error::conflict("order_canceled", "the order was canceled")),
        }
    }

    /// Cancels the caller's order; its stock is buyable again at once.
    pub async fn cancel(&self, principal: &Principal, id: Uuid) -> Result<Order> {
        let order = self.store.order(id).await?;
        if order.user_id != principal.user_id && principal.role != Role::Admin {
            return Err(Error::NotFound);
        }
        match self.store.cancel_order(id).await? {
            Some(returned) => self.stock_returned(&returned).await,
            None if order.status == OrderStatus::Expired => {
                return Err(Error::conflict(
                    "reservation_expired",
                    "the reservation had already expired",
                ));
            }
            None => {}
        }
        Ok(self.store.order(id).await?)
    }

    /// Expires every reservation due at `now`; returns how many.
    pub async fn expire_due(&self, now: DateTime<Utc>) -> Result<usize> {
        const CHUNK: i64 = 500;
        let mut total = 0;
        loop {
            let returned = self.store.expire_due(now, CHUNK).await?;
            for r in &returned {
                self.stock_returned(r).await;
            }
            total += returned.len();
            if (returned.len() as i64) < CHUNK {
                return Ok(total);
            }
        }
    }

    pub async fn next_expiry_at(&self) -> Result<Option<DateTime<Utc>>> {
        Ok(self.store.next_expiry_at().await?)
    }

    async fn stock_returned(&self, returned: &Returned) {
        let observed = Observed {
            stock: returned.stock_remaining,
            version: returned.stock_version,
        };
        self.gate.observe(returned.event_item_id, observed).await;
        self.events.stock_moved(returned.event_id).await;
    }

    pub async fn my_orders(
        &self,
        principal: &Principal,
        limit: Option<i64>,
        cursor: Option<&str>,
    ) -> Result<Page<Order>> {
        const SCOPE: &str = "orders";
        let page = page_request::<DateTime<Utc>>(&self.cursors, SCOPE, limit, cursor)?;
        let rows = self.store.user_orders(principal.user_id, &page).await?;
        Ok(page_from_rows(&self.cursors, SCOPE, page.limit, rows, |o| {
            Position {
                key: o.created_at,
                id: o.id,
            }
        }))
    }

    pub async fn ledger(&self, event_id: Uuid) -> Result<Vec<LedgerLine>> {
        self.store.event(event_id).await?;
        Ok(self.store.stock_ledger(event_id).await?)
    }

    /// Confirmed revenue per day (UTC) of the last `days` days, oldest
    /// first, days without sales included as zero.
    pub async fn daily_revenue(&self, days: u32) -> Result<Vec<domain::sales::DailyRevenue>> {
        let today = self.clock.now().date_naive();
        let first = today - chrono::Days::new(u64::from(days.max(1) - 1));
        let since = first.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
        let rows = self.store.confirmed_amounts_since(since).await?;
        let mut totals = std::collections::BTreeMap::new();
        for (at, cents) in rows {
            *totals.entry(at.date_naive()).or_insert(0i64) += cents;
        }
        Ok(first
            .iter_days()
            .take_while(|day| *day <= today)
            .map(|day| domain::sales::DailyRevenue {
                day,
                revenue_cents: totals.get(&day).copied().unwrap_or(0),
            })
            .collect())
    }

    pub async fn stats(&self) -> Result<SalesStats> {
        Ok(self.store.sales_stats().await?)
    }
}

/// The batch of one item: one locked, guarded transaction for every
/// purchase that queued.
struct Reserve {
    store: Arc<dyn Store>,
    gate: Arc<dyn StockGate>,
    events: Arc<EventService>,
    default_ttl_seconds: i64,
}

#[async_trait::async_trait]
impl BatchWork for Reserve {
    type Job = Job;

    async fn run(&self, item_id: Uuid, jobs: Vec<Job>) {
        self.reserve(item_id, jobs).await;
    }
}

impl Reserve {
    async fn reserve(&self, item_id: Uuid, jobs: Vec<Job>) {
        let admitted: i64 = jobs.iter().map(|j| j.admitted).sum();
        let reservations: Vec<Reservation> = jobs.iter().map(|j| j.reservation.clone()).collect();
        let started = Instant::now();
        let result = self
            .store
            .reserve_batch(item_id, &reservations, self.default_ttl_seconds)
            .await;
        metrics::histogram!("swiftdrop_reserve_batch_seconds").record(started.elapsed().as_secs_f64());
        metrics::histogram!("swiftdrop_reserve_batch_size").record(jobs.len() as f64);
        match result {
            Ok(batch) => {
                let observed = Observed {
                    stock: batch.stock_remaining,
                    version: batch.stock_version,
                };
                self.gate.settle(item_id, admitted, observed).await;
                if batch
                    .outcomes
                    .iter()
                    .any(|o| matches!(o, ReserveOutcome::Reserved(_)))
                {
                    self.events.stock_moved(batch.event_id).await;
                }
                for (job, outcome) in jobs.into_iter().zip(batch.outcomes) {
                    let _ = job.reply.send(Ok(outcome));
                }
            }
            Err(err) => {
                // Each caller releases its own admitted units on an error.
                // (an unreachable database stays a 503 for every one).
                let shared = std::sync::Arc::new(Error::from(err));
                let cause = crate::error::error_chain(shared.as_ref());
                tracing::warn!(item = %item_id, error = %cause, "reservation batch failed");
                for job in jobs {
                    let _ = job.reply.send(Err(Error::shared(shared.clone())));
                }
            }
        }
    }
}
