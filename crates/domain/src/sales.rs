//! Orders of a flash sale and the rules of a purchase request.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ValidationErrors;
use crate::events::{EventStatus, is_on_sale};

/// Most units one request may reserve.
pub const QUANTITY_MAX: i64 = 100;
pub const IDEMPOTENCY_KEY_MAX: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrderStatus {
    Reserved,
    Confirmed,
    Canceled,
    Expired,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 4] = [
        OrderStatus::Reserved,
        OrderStatus::Confirmed,
        OrderStatus::Canceled,
        OrderStatus::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Reserved => "reserved",
            OrderStatus::Confirmed => "confirmed",
            OrderStatus::Canceled => "canceled",
            OrderStatus::Expired => "expired",
        }
    }

    /// Reserved and confirmed orders hold stock.
    pub fn holds_stock(self) -> bool {
        matches!(self, OrderStatus::Reserved | OrderStatus::Confirmed)
    }
}

impl TryFrom<String> for OrderStatus {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        OrderStatus::ALL
            .into_iter()
            .find(|s| s.as_str() == value)
            .ok_or_else(|| format!("unknown order status {value:?}"))
    }
}

/// A reservation and what became of it.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct Order {
    pub id: Uuid,
    pub user_id: Uuid,
    /// The event of the item, or of the auction when it is part of one.
    pub event_id: Option<Uuid>,
    /// The item bought in a drop; none for an auction's winning bid.
    pub event_item_id: Option<Uuid>,
    /// The auction won; none for a purchase.
    pub auction_id: Option<Uuid>,
    pub product_id: Uuid,
    pub quantity: i64,
    pub unit_price_cents: i64,
    pub currency: String,
    #[cfg_attr(feature = "sqlx", sqlx(try_from = "String"))]
    pub status: OrderStatus,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One item's stock against the units its orders hold (the audit of the
/// no-oversell invariant).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct LedgerLine {
    pub event_item_id: Uuid,
    pub stock_total: i64,
    pub stock_remaining: i64,
    pub reserved: i64,
    pub confirmed: i64,
}

impl LedgerLine {
    /// `stock_remaining + reserved + confirmed == stock_total`.
    pub fn is_balanced(&self) -> bool {
        self.stock_remaining + self.reserved + self.confirmed == self.stock_total
    }
}

/// Units sold of units offered, for one drop.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct SellThrough {
    pub event_id: Uuid,
    pub title: String,
    pub sold: i64,
    pub stock_total: i64,
}

/// A best seller by confirmed units.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct TopProduct {
    pub product_id: Uuid,
    pub name: String,
    pub units_sold: i64,
    pub revenue_cents: i64,
}

/// Confirmed revenue of one day, for the dashboard's chart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DailyRevenue {
    pub day: chrono::NaiveDate,
    pub revenue_cents: i64,
}

/// The sales figures of the admin dashboard.
#[derive(Debug, Clone, Default)]
pub struct SalesStats {
    pub events_by_status: HashMap<EventStatus, i64>,
    pub orders_by_status: HashMap<OrderStatus, i64>,
    pub revenue_cents: i64,
    /// The newest drops.
    pub sell_through: Vec<SellThrough>,
    pub top_products: Vec<TopProduct>,
}

/// One buyer's request inside a batch.
#[derive(Debug, Clone)]
pub struct Reservation {
    pub order_id: Uuid,
    pub user_id: Uuid,
    pub quantity: i64,
    pub idempotency_key: Option<String>,
}

/// What a batch answered one request.
#[derive(Debug, Clone, PartialEq)]
pub enum ReserveOutcome {
    Reserved(Order),
    /// The same user sent this idempotency key before: here is that order.
    Replayed(Order),
    SoldOut,
    LimitReached,
    NotLive,
}

/// An item as its row reads inside the batch's transaction (locked).
#[derive(Debug, Clone)]
pub struct SaleTerms {
    pub item_id: Uuid,
    pub event_id: Uuid,
    pub product_id: Uuid,
    pub stock_remaining: i64,
    pub per_user_limit: Option<i64>,
    pub price_cents: i64,
    pub currency: String,
    pub status: EventStatus,
    pub start_time: DateTime<Utc>,
    pub end_time: DateTime<Utc>,
    /// How long a reservation is held.
    pub hold: chrono::Duration,
}

/// How a batch splits among its requests.
#[derive(Debug, Clone)]
pub struct Allocation {
    /// One per request, in order.
    pub outcomes: Vec<ReserveOutcome>,
    /// The orders to insert, with their idempotency keys.
    pub new_orders: Vec<(Order, Option<String>)>,
    /// Stock left after the batch.
    pub remaining: i64,
}

impl Allocation {
    pub fn sold(&self, before: i64) -> i64 {
        before - self.remaining
    }
}

/// Splits a batch of purchase requests among the item's stock, in arrival
/// order: a repeated idempotency key gets its earlier order, a buyer who
/// would pass the per-user limit is refused, and units go to each request
/// while they last. `held` is what each buyer already holds of this item;
/// `earlier` the orders already made under an idempotency key. Nothing is
/// sold outside the event's window, whatever the stored status says.
pub fn allocate(
    terms: &SaleTerms,
    requests: &[Reservation],
    held: &HashMap<Uuid, i64>,
    earlier: &HashMap<(Uuid, String), Order>,
    now: DateTime<Utc>,
) -> Allocation {
    if !is_on_sale(terms.status, terms.start_time, terms.end_time, now) {
        return Allocation {
            outcomes: vec![ReserveOutcome::NotLive; requests.len()],
            new_orders: Vec::new(),
            remaining: terms.stock_remaining,
        };
    }
    let expires_at = now + terms.hold;
    let mut held = held.clone();
    let mut keyed: HashMap<(Uuid, String), Order> = HashMap::new();
    let mut remaining = terms.stock_remaining;
    let mut outcomes = Vec::with_capacity(requests.len());
    let mut new_orders = Vec::new();
    for request in requests {
        if let Some(key) = &request.idempotency_key {
            let id = (request.user_id, key.clone());
            if let Some(order) = earlier.get(&id).or_else(|| keyed.get(&id)) {
                outcomes.push(ReserveOutcome::Replayed(order.clone()));
                continue;
            }
        }
        let holding = held.get(&request.user_id).copied().unwrap_or(0);
        if terms
            .per_user_limit
            .is_some_and(|limit| holding + request.quantity > limit)
        {
            outcomes.push(ReserveOutcome::LimitReached);
            continue;
        }
        if remaining < request.quantity {
            outcomes.push(ReserveOutcome::SoldOut);
            continue;
        }
        remaining -= request.quantity;
        held.insert(request.user_id, holding + request.quantity);
        let order = Order {
            id: request.order_id,
            user_id: request.user_id,
            event_id: Some(terms.event_id),
            event_item_id: Some(terms.item_id),
            auction_id: None,
            product_id: terms.product_id,
            quantity: request.quantity,
            unit_price_cents: terms.price_cents,
            currency: terms.currency.clone(),
            status: OrderStatus::Reserved,
            expires_at,
            created_at: now,
            updated_at: now,
        };
        if let Some(key) = &request.idempotency_key {
            keyed.insert((request.user_id, key.clone()), order.clone());
        }
        outcomes.push(ReserveOutcome::Reserved(order.clone()));
        new_orders.push((order, request.idempotency_key.clone()));
    }
    Allocation {
        outcomes,
        new_orders,
        remaining,
    }
}

pub fn check_quantity(quantity: i64) -> Result<(), ValidationErrors> {
    if (1..=QUANTITY_MAX).contains(&quantity) {
        Ok(())
    } else {
        Err(ValidationErrors::single(
            "quantity",
            format!("must be between 1 and {QUANTITY_MAX}"),
        ))
    }
}

/// Keys are opaque to us but must be printable and bounded.
pub fn check_idempotency_key(key: &str) -> Result<(), ValidationErrors> {
    let printable = key.bytes().all(|b| (0x21..=0x7e).contains(&b));
    if key.is_empty() || key.len() > IDEMPOTENCY_KEY_MAX || !printable {
        Err(ValidationErrors::single(
            "Idempotency-Key",
            format!("must be 1 to {IDEMPOTENCY_KEY_MAX} printable ASCII characters"),
        ))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2030, 1, 1, hour, 0, 0).unwrap()
    }

    fn terms(stock: i64, limit: Option<i64>) -> SaleTerms {
        SaleTerms {
            item_id: Uuid::now_v7(),
            event_id: Uuid::now_v7(),
            product_id: Uuid::now_v7(),
            stock_remaining: stock,
            per_user_limit: limit,
            price_cents: 1999,
            currency: "EUR".into(),
            status: EventStatus::Live,
            start_time: at(10),
            end_time: at(12),
            hold: chrono::Duration::minutes(10),
        }
    }

    fn request(user: Uuid, quantity: i64, key: Option<&str>) -> Reservation {
        Reservation {
            order_id: Uuid::now_v7(),
            user_id: user,
            quantity,
            idempotency_key: key.map(str::to_owned),
        }
    }

    fn kinds(allocation: &Allocation) -> Vec<&'static str> {
        allocation
            .outcomes
            .iter()
            .map(|o| match o {
                ReserveOutcome::Reserved(_) => "reserved",
                ReserveOutcome::Replayed(_) => "replayed",
                ReserveOutcome::SoldOut => "sold_out",
                ReserveOutcome::LimitReached => "limit",
                ReserveOutcome::NotLive => "not_live",
            })
            .collect()
    }

    #[test]
    fn units_go_in_arrival_order_until_they_run_out() {
        let (a, b, c) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let batch = [request(a, 2, None), request(b, 2, None), request(c, 1, None)];
        let allocation = allocate(&terms(3, None), &batch, &HashMap::new(), &HashMap::new(), at(11));
        assert_eq!(kinds(&allocation), ["reserved", "sold_out", "reserved"]);
        assert_eq!(allocation.remaining, 0);
        assert_eq!(allocation.sold(3), 3);
        assert_eq!(allocation.new_orders.len(), 2);
        let order = &allocation.new_orders[0].0;
        assert_eq!(order.expires_at, at(11) + chrono::Duration::minutes(10));
        assert_eq!(
            (order.unit_price_cents, order.status),
            (1999, OrderStatus::Reserved)
        );
    }

    #[test]
    fn the_per_user_limit_counts_what_is_held_and_what_the_batch_gives() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let held = HashMap::from([(a, 1)]);
        let batch = [request(a, 1, None), request(a, 1, None), request(b, 3, None)];
        let allocation = allocate(&terms(10, Some(2)), &batch, &held, &HashMap::new(), at(11));
        assert_eq!(kinds(&allocation), ["reserved", "limit", "limit"]);
        assert_eq!(allocation.remaining, 9);
    }

    #[test]
    fn a_repeated_key_replays_its_order_within_and_across_batches() {
        let a = Uuid::now_v7();
        let first = allocate(
            &terms(5, None),
            &[request(a, 1, Some("k"))],
            &HashMap::new(),
            &HashMap::new(),
            at(11),
        );
        let order = first.new_orders[0].0.clone();
        let earlier = HashMap::from([((a, "k".to_owned()), order.clone())]);
        let again = allocate(
            &terms(4, None),
            &[request(a, 1, Some("k"))],
            &HashMap::new(),
            &earlier,
            at(11),
        );
        assert_eq!(again.outcomes, [ReserveOutcome::Replayed(order)]);
        assert_eq!(again.remaining, 4);
        // Two racing retries in one batch: one order.
        let racing = [request(a, 1, Some("r")), request(a, 1, Some("r"))];
        let both = allocate(&terms(5, None), &racing, &HashMap::new(), &HashMap::new(), at(11));
        assert_eq!(kinds(&both), ["reserved", "replayed"]);
        assert_eq!(both.new_orders.len(), 1);
        // Another user's key of the same name is theirs alone.
        let other = allocate(
            &terms(5, None),
            &[request(Uuid::now_v7(), 1, Some("k"))],
            &HashMap::new(),
            &earlier,
            at(11),
        );
        assert_eq!(kinds(&other), ["reserved"]);
    }

    #[test]
    fn nothing_is_sold_outside_the_window() {
        let batch = [request(Uuid::now_v7(), 1, None)];
        for now in [at(9), at(12), at(13)] {
            let allocation = allocate(&terms(5, None), &batch, &HashMap::new(), &HashMap::new(), now);
            assert_eq!(kinds(&allocation), ["not_live"]);
            assert_eq!(allocation.remaining, 5);
        }
        let mut canceled = terms(5, None);
        canceled.status = EventStatus::Canceled;
        let allocation = allocate(&canceled, &batch, &HashMap::new(), &HashMap::new(), at(11));
        assert_eq!(kinds(&allocation), ["not_live"]);
    }

    #[test]
    fn ledger_lines_balance() {
        let line = LedgerLine {
            event_item_id: Uuid::now_v7(),
            stock_total: 10,
            stock_remaining: 4,
            reserved: 3,
            confirmed: 3,
        };
        assert!(line.is_balanced());
        assert!(!LedgerLine { confirmed: 4, ..line }.is_balanced());
    }

    #[test]
    fn quantities_and_keys() {
        assert!(check_quantity(1).is_ok());
        assert!(check_quantity(0).is_err());
        assert!(check_quantity(101).is_err());
        assert!(check_idempotency_key("order-42").is_ok());
        assert!(check_idempotency_key("").is_err());
        assert!(check_idempotency_key("has space").is_err());
        assert!(check_idempotency_key(&"k".repeat(201)).is_err());
        assert_eq!(
            OrderStatus::try_from("expired".to_owned()),
            Ok(OrderStatus::Expired)
        );
        assert!(OrderStatus::Confirmed.holds_stock() && !OrderStatus::Canceled.holds_stock());
    }
}
