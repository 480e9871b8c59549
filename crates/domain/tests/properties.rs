//! Property tests of the rules money depends on: how a purchase batch is
//! split, how bids are scored, accepted and settled.

use std::collections::HashMap;

use chrono::{DateTime, Duration, TimeZone, Utc};
use domain::auctions::{self, Auction, AuctionStatus, Bid, BidOutcome, BidRequest, Bidder};
use domain::events::EventStatus;
use domain::sales::{self, Reservation, ReserveOutcome, SaleTerms};
use proptest::prelude::*;
use uuid::Uuid;

fn at(minute: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 1, 1, 10, 0, 0).unwrap() + Duration::minutes(minute)
}

fn terms(stock: i64, limit: Option<i64>) -> SaleTerms {
    SaleTerms {
        item_id: Uuid::from_u128(1),
        event_id: Uuid::from_u128(2),
        product_id: Uuid::from_u128(3),
        stock_remaining: stock,
        per_user_limit: limit,
        price_cents: 500,
        currency: "EUR".into(),
        status: EventStatus::Live,
        start_time: at(0),
        end_time: at(60),
        hold: Duration::minutes(10),
    }
}

/// A batch: (user 0..8, quantity 1..5, key 0..3 or none).
fn batch() -> impl Strategy<Value = Vec<(u8, i64, Option<u8>)>> {
    prop::collection::vec((0u8..8, 1i64..5, prop::option::of(0u8..3)), 0..60)
}

fn requests(raw: &[(u8, i64, Option<u8>)]) -> Vec<Reservation> {
    raw.iter()
        .enumerate()
        .map(|(i, (user, quantity, key))| Reservation {
            order_id: Uuid::from_u128(1000 + i as u128),
            user_id: Uuid::from_u128(u128::from(*user) + 10),
            quantity: *quantity,
            idempotency_key: key.map(|k| format!("k{k}")),
        })
        .collect()
}

proptest! {
    #[test]
    fn a_batch_never_oversells_nor_passes_a_limit(
        raw in batch(),
        stock in 0i64..40,
        limit in prop::option::of(1i64..8),
        held_by_first in 0i64..4,
    ) {
        let requests = requests(&raw);
        let held: HashMap<Uuid, i64> = HashMap::from([(Uuid::from_u128(10), held_by_first)]);
        let allocation = sales::allocate(&terms(stock, limit), &requests, &held, &HashMap::new(), at(30));
        prop_assert_eq!(allocation.outcomes.len(), requests.len());
        let new: i64 = allocation.new_orders.iter().map(|(o, _)| o.quantity).sum();
        prop_assert!(allocation.remaining >= 0);
        prop_assert_eq!(allocation.remaining, stock - new);
        // Each buyer ends within the limit.
        if let Some(limit) = limit {
            let mut per_user: HashMap<Uuid, i64> = held.clone();
            for (order, _) in &allocation.new_orders {
                *per_user.entry(order.user_id).or_default() += order.quantity;
            }
            for (user, total) in per_user {
                let before = held.get(&user).copied().unwrap_or(0);
                prop_assert!(total <= limit.max(before), "{user}: {total} > {limit}");
            }
        }
        // One order per (user, key): a repeated key replays, never buys twice.
        let mut keyed = HashMap::new();
        for (order, key) in &allocation.new_orders {
            if let Some(key) = key {
                prop_assert!(keyed.insert((order.user_id, key.clone()), order.id).is_none());
            }
        }
        for (request, outcome) in requests.iter().zip(&allocation.outcomes) {
            if let ReserveOutcome::Replayed(order) = outcome {
                prop_assert_eq!(Some(&order.id), keyed.get(&(request.user_id, request.idempotency_key.clone().unwrap())));
            }
        }
    }

    #[test]
    fn nothing_sells_outside_the_window(raw in batch(), minute in prop_oneof![-100i64..0, 60i64..200]) {
        let requests = requests(&raw);
        let allocation = sales::allocate(&terms(50, None), &requests, &HashMap::new(), &HashMap::new(), at(minute));
        prop_assert!(allocation.new_orders.is_empty());
        prop_assert!(allocation.outcomes.iter().all(|o| *o == ReserveOutcome::NotLive));
    }

    #[test]
    fn scores_rise_with_the_price_and_fall_with_the_weight(
        alpha in 0.001f64..1000.0,
        beta in 0.001f64..1000.0,
        gamma in 0.001f64..1000.0,
        cents in 1i64..10_000_000,
        more in 1i64..10_000,
        weight in 0.0f64..100.0,
        heavier in 0.001f64..100.0,
    ) {
        let base = auctions::score(alpha, beta, gamma, cents, weight);
        prop_assert!(base.is_finite());
        prop_assert!(auctions::score(alpha, beta, gamma, cents + more, weight) > base);
        prop_assert!(auctions::score(alpha, beta, gamma, cents, weight + heavier) < base);
    }
}

fn auction(extend: Option<i64>) -> Auction {
    Auction {
        id: Uuid::from_u128(1),
        product_id: Uuid::from_u128(2),
        event_id: None,
        upset_price_cents: 1000,
        currency: "EUR".into(),
        inventory: 3,
        alpha: 1.0,
        beta: 10.0,
        gamma: 1.0,
        start_time: at(0),
        end_time: at(60),
        extend_seconds: extend,
        status: AuctionStatus::Live,
        final_price_cents: None,
        created_at: at(0),
        updated_at: at(0),
    }
}

proptest! {
    #[test]
    fn a_bid_batch_keeps_one_bid_per_user_the_last_accepted(
        raw in prop::collection::vec((0u8..6, 500i64..5000), 0..40),
        minute in 0i64..60,
    ) {
        let bidders: HashMap<Uuid, Bidder> = (0..6u128)
            .map(|u| (Uuid::from_u128(u + 10), Bidder { username: format!("u{u}"), weight: u as f64, is_active: true }))
            .collect();
        let requests: Vec<BidRequest> = raw
            .iter()
            .map(|(u, cents)| BidRequest { user_id: Uuid::from_u128(u128::from(*u) + 10), amount_cents: *cents })
            .collect();
        let batch = auctions::accept_bids(&auction(Some(30)), &requests, &bidders, at(minute));
        let mut last: HashMap<Uuid, i64> = HashMap::new();
        for (request, outcome) in requests.iter().zip(&batch.outcomes) {
            match outcome {
                BidOutcome::Accepted(bid) => {
                    prop_assert!(request.amount_cents >= 1000);
                    prop_assert_eq!(bid.score, auction(None).score(bid.bid_cents, bid.weight));
                    last.insert(request.user_id, request.amount_cents);
                }
                BidOutcome::TooLow => prop_assert!(request.amount_cents < 1000),
                other => prop_assert!(false, "unexpected {other:?}"),
            }
        }
        prop_assert_eq!(batch.stored.len(), last.len());
        for bid in &batch.stored {
            prop_assert_eq!(Some(&bid.bid_cents), last.get(&bid.user_id));
        }
        // Only an accepted bid in the last 30 s moves the end (never at minute < 59).
        prop_assert!(batch.extended_to.is_none() || (!batch.stored.is_empty() && minute >= 59));
    }

    #[test]
    fn settlement_gives_the_inventory_to_the_best_and_prices_at_the_lowest_winner(
        raw in prop::collection::vec((1000i64..5000, 0u8..5, 0i64..60), 0..50),
        inventory in 1i64..10,
    ) {
        let bids: Vec<Bid> = raw
            .iter()
            .enumerate()
            .map(|(i, (cents, weight, minute))| {
                let weight = f64::from(*weight);
                Bid {
                    auction_id: Uuid::from_u128(1),
                    user_id: Uuid::from_u128(i as u128 + 10),
                    username: format!("u{i}"),
                    bid_cents: *cents,
                    weight,
                    score: auction(None).score(*cents, weight),
                    placed_at: at(*minute),
                }
            })
            .collect();
        let settlement = auctions::settle(bids.clone(), inventory);
        let winners: Vec<_> = settlement.placings.iter().filter(|p| p.won).collect();
        prop_assert_eq!(winners.len(), bids.len().min(inventory as usize));
        for (i, placing) in settlement.placings.iter().enumerate() {
            prop_assert_eq!(placing.rank, i as i64 + 1);
        }
        for pair in settlement.placings.windows(2) {
            prop_assert_ne!(auctions::ranking(&pair[0].bid, &pair[1].bid), std::cmp::Ordering::Greater);
        }
        prop_assert_eq!(settlement.final_price_cents, winners.iter().map(|p| p.bid.bid_cents).min());
    }
}
