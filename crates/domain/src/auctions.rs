//! Auctions (bidding flash sales): a limited inventory goes to the
//! best-scored bids. The score weighs a bid's price against the bidder's
//! weight: `alpha * price + beta / (gamma + weight)`.

use std::cmp::Ordering;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::catalog::PRICE_MAX_CENTS;
use crate::{Refusal, Rejection, ValidationErrors};

/// Most winners one auction may have.
pub const INVENTORY_MAX: i64 = 100_000;
/// Longest anti-sniping extension.
pub const EXTEND_MAX_SECONDS: i64 = 3600;
/// Largest |alpha|, |beta| or gamma: keeps every score finite.
pub const COEFFICIENT_MAX: f64 = 1e9;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuctionStatus {
    Scheduled,
    Live,
    Settled,
}

impl AuctionStatus {
    pub const ALL: [AuctionStatus; 3] = [
        AuctionStatus::Scheduled,
        AuctionStatus::Live,
        AuctionStatus::Settled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuctionStatus::Scheduled => "scheduled",
            AuctionStatus::Live => "live",
            AuctionStatus::Settled => "settled",
        }
    }

    pub fn parse(value: &str) -> Option<AuctionStatus> {
        AuctionStatus::ALL.into_iter().find(|s| s.as_str() == value)
    }
}

impl TryFrom<String> for AuctionStatus {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        AuctionStatus::parse(&value).ok_or_else(|| format!("unknown auction status {value:?}"))
    }
}

/// An auction of one product.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct Auction {
    pub id: Uuid,
    pub product_id: Uuid,
    /// The event (drop) it is part of, if any.
    pub event_id: Option<Uuid>,
    pub upset_price_cents: i64,
    pub currency: String,
    /// How many bidders win.
    pub inventory: i64,
    pub alpha: f64,
    pub beta: f64,
    pub gamma: f64,
    pub start_time: DateTime<Utc>,
    pub end_time: DateTime<Utc>,
    pub extend_seconds: Option<i64>,
    #[cfg_attr(feature = "sqlx", sqlx(try_from = "String"))]
    pub status: AuctionStatus,
    /// The lowest winning bid, once settled with at least one bid.
    pub final_price_cents: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Auction {
    /// The status at `now`: `live` from the start even before the
    /// scheduler writes it; `settled` only once settlement ran.
    pub fn status_at(&self, now: DateTime<Utc>) -> AuctionStatus {
        match self.status {
            AuctionStatus::Settled => AuctionStatus::Settled,
            _ if now >= self.start_time => AuctionStatus::Live,
            _ => AuctionStatus::Scheduled,
        }
    }

    /// Whether a bid placed at `now` may be taken: inside the window (as
    /// the clock says, not as the scheduler last wrote) and not settled.
    pub fn is_taking_bids(&self, now: DateTime<Utc>) -> bool {
        self.status != AuctionStatus::Settled && self.start_time <= now && now < self.end_time
    }

    /// The score of a bid of `bid_cents` by a bidder of `weight`.
    pub fn score(&self, bid_cents: i64, weight: f64) -> f64 {
        score(self.alpha, self.beta, self.gamma, bid_cents, weight)
    }
}

/// `alpha * bid_price + beta / (gamma + weight)`, the price in currency
/// units (cents / 100: every supported currency has two decimals).
/// `gamma > 0` and `weight >= 0` (checked where they are set) keep the
/// divisor positive.
pub fn score(alpha: f64, beta: f64, gamma: f64, bid_cents: i64, weight: f64) -> f64 {
    alpha * (bid_cents as f64 / 100.0) + beta / (gamma + weight)
}

/// An auction as an admin submits it.
#[derive(Debug, Clone, PartialEq)]
pub struct AuctionInput {
    pub product_id: Uuid,
    pub event_id: Option<Uuid>,
    pub upset_price_cents: i64,
    pub inventory: i64,
    pub alpha: f64,
    pub beta: f64,
    pub gamma: f64,
    pub start_time: DateTime<Utc>,
    pub end_time: DateTime<Utc>,
    pub extend_seconds: Option<i64>,
}

/// Checks an auction, naming every field at fault. `now` is given when the
/// start must not be in the past (at creation, or when an edit moves it).
pub fn validate_auction(input: &AuctionInput, now: Option<DateTime<Utc>>) -> Result<(), ValidationErrors> {
    let mut errors = ValidationErrors::new();
    if !(0..=PRICE_MAX_CENTS).contains(&input.upset_price_cents) {
        errors.add(
            "upset_price_cents",
            format!("must be between 0 and {PRICE_MAX_CENTS}"),
        );
    }
    if !(1..=INVENTORY_MAX).contains(&input.inventory) {
        errors.add("inventory", format!("must be between 1 and {INVENTORY_MAX}"));
    }
    if !(input.alpha.is_finite() && (0.0..=COEFFICIENT_MAX).contains(&input.alpha)) {
        errors.add("alpha", format!("must be a number from 0 to {COEFFICIENT_MAX}"));
    }
    if !(input.beta.is_finite() && input.beta.abs() <= COEFFICIENT_MAX) {
        errors.add(
            "beta",
            format!("must be a number from -{COEFFICIENT_MAX} to {COEFFICIENT_MAX}"),
        );
    }
    // Weights are 0 or more, so gamma > 0 keeps gamma + weight > 0 for
    // every bidder: no division by zero, no sign flip.
    if !(input.gamma.is_finite() && input.gamma > 0.0 && input.gamma <= COEFFICIENT_MAX) {
        errors.add(
            "gamma",
            "must be above 0 (gamma + every weight must stay positive)",
        );
    }
    if input.end_time <= input.start_time {
        errors.add("end_time", "must be after start_time");
    }
    if let Some(now) = now
        && input.start_time < now - Duration::seconds(5)
    {
        errors.add("start_time", "must not be in the past");
    }
    if let Some(extend) = input.extend_seconds
        && !(1..=EXTEND_MAX_SECONDS).contains(&extend)
    {
        errors.add(
            "extend_seconds",
            format!("must be between 1 and {EXTEND_MAX_SECONDS}"),
        );
    }
    errors.into_result()
}

/// Whether `current` may take an edit at `now`: only while scheduled and
/// not yet started (bids may exist from the start on).
pub fn check_edit(current: &Auction, now: DateTime<Utc>) -> Result<(), Refusal> {
    if current.status == AuctionStatus::Scheduled && now < current.start_time {
        Ok(())
    } else {
        Err(Refusal::AuctionNotEditable)
    }
}

/// A bid as a bidder sends it.
#[derive(Debug, Clone, PartialEq)]
pub struct BidRequest {
    pub user_id: Uuid,
    pub amount_cents: i64,
}

/// A stored bid: a user's one standing bid on an auction.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct Bid {
    pub auction_id: Uuid,
    pub user_id: Uuid,
    pub username: String,
    pub bid_cents: i64,
    /// The bidder's weight when the bid was placed.
    pub weight: f64,
    pub score: f64,
    pub placed_at: DateTime<Utc>,
}

/// The order of a leaderboard: score descending, ties to the earlier bid,
/// then to the lower user id (a total order, the same everywhere).
pub fn ranking(a: &Bid, b: &Bid) -> Ordering {
    b.score
        .total_cmp(&a.score)
        .then(a.placed_at.cmp(&b.placed_at))
        .then(a.user_id.cmp(&b.user_id))
}

/// What became of one bid request of a batch.
#[derive(Debug, Clone, PartialEq)]
pub enum BidOutcome {
    Accepted(Bid),
    /// Below the upset price.
    TooLow,
    NotLive,
    /// The bidder's account is gone or deactivated.
    UnknownBidder,
}

/// A bidder as the batch's transaction reads them.
#[derive(Debug, Clone, PartialEq)]
pub struct Bidder {
    pub username: String,
    pub weight: f64,
    pub is_active: bool,
}

/// How a batch of bids lands on an auction placed at `now`.
#[derive(Debug, Clone, PartialEq)]
pub struct BidBatch {
    /// One per request, in order.
    pub outcomes: Vec<BidOutcome>,
    /// The bids to store: the last accepted one of each user.
    pub stored: Vec<Bid>,
    /// The new end when a bid in the last `extend_seconds` moved it.
    pub extended_to: Option<DateTime<Utc>>,
}

/// Takes a batch of bids on `auction` at `now`: each is checked against the
/// window and the upset price, scored with its bidder's current weight
/// (`bidders`, looked up by the caller), and a user's later bid replaces
/// their earlier one. With `extend_seconds`, an accepted bid within the
/// last `extend_seconds` before the end moves the end out by that much
/// (once per batch). The bids of a batch are placed in their order of
/// arrival, a microsecond apart from `now`: "the earlier bid wins a tie"
/// and "a user's latest bid" then never depend on which of two bids of one
/// batch a reader happens to see first.
pub fn accept_bids(
    auction: &Auction,
    requests: &[BidRequest],
    bidders: &std::collections::HashMap<Uuid, Bidder>,
    now: DateTime<Utc>,
) -> BidBatch {
    let taking = auction.is_taking_bids(now);
    let mut outcomes = Vec::with_capacity(requests.len());
    let mut stored: Vec<Bid> = Vec::new();
    for (arrival, request) in requests.iter().enumerate() {
        let placed_at = now + Duration::microseconds(arrival as i64);
        let outcome = match bidders.get(&request.user_id) {
            _ if !taking => BidOutcome::NotLive,
            Some(bidder) if bidder.is_active => {
                if request.amount_cents < auction.upset_price_cents {
                    BidOutcome::TooLow
                } else {
                    BidOutcome::Accepted(Bid {
                        auction_id: auction.id,
                        user_id: request.user_id,
                        username: bidder.username.clone(),
                        bid_cents: request.amount_cents,
                        weight: bidder.weight,
                        score: auction.score(request.amount_cents, bidder.weight),
                        placed_at,
                    })
                }
            }
            _ => BidOutcome::UnknownBidder,
        };
        if let BidOutcome::Accepted(bid) = &outcome {
            stored.retain(|b| b.user_id != bid.user_id);
            stored.push(bid.clone());
        }
        outcomes.push(outcome);
    }
    let extended_to = auction.extend_seconds.and_then(|extend| {
        let window = Duration::seconds(extend);
        (!stored.is_empty() && now >= auction.end_time - window).then(|| auction.end_time + window)
    });
    BidBatch {
        outcomes,
        stored,
        extended_to,
    }
}

/// Checks a bid before it queues: the amount itself (the window and the
/// upset price are checked again against the locked row).
pub fn check_bid(auction: &Auction, amount_cents: i64, now: DateTime<Utc>) -> Result<(), Rejection> {
    if !(1..=PRICE_MAX_CENTS).contains(&amount_cents) {
        return Err(Rejection::invalid(
            "amount_cents",
            format!("must be between 1 and {PRICE_MAX_CENTS}"),
        ));
    }
    if !auction.is_taking_bids(now) {
        return Err(Refusal::AuctionNotLive.into());
    }
    if amount_cents < auction.upset_price_cents {
        return Err(Rejection::invalid(
            "amount_cents",
            format!(
                "must be at least the upset price of {} cents",
                auction.upset_price_cents
            ),
        ));
    }
    Ok(())
}

/// One bidder's place once the auction settled.
#[derive(Debug, Clone, PartialEq)]
pub struct Placing {
    pub rank: i64,
    pub bid: Bid,
    pub won: bool,
}

/// The outcome of an auction.
#[derive(Debug, Clone, PartialEq)]
pub struct Settlement {
    /// Every bid, best first.
    pub placings: Vec<Placing>,
    /// The lowest winning bid; none without bids.
    pub final_price_cents: Option<i64>,
}

/// Ranks the bids and gives the first `inventory` the win (all of them
/// when fewer bid). Each winner pays their own bid.
pub fn settle(mut bids: Vec<Bid>, inventory: i64) -> Settlement {
    bids.sort_by(ranking);
    let winners = usize::try_from(inventory.max(0)).unwrap_or(usize::MAX);
    let placings: Vec<Placing> = bids
        .into_iter()
        .enumerate()
        .map(|(i, bid)| Placing {
            rank: i as i64 + 1,
            won: i < winners,
            bid,
        })
        .collect();
    let final_price_cents = placings.iter().filter(|p| p.won).map(|p| p.bid.bid_cents).min();
    Settlement {
        placings,
        final_price_cents,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use chrono::TimeZone;

    use super::*;

    fn at(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2030, 1, 1, 10, minute, 0).unwrap()
    }

    fn auction() -> Auction {
        Auction {
            id: Uuid::now_v7(),
            product_id: Uuid::now_v7(),
            event_id: None,
            upset_price_cents: 1000,
            currency: "EUR".into(),
            inventory: 2,
            alpha: 1.0,
            beta: 10.0,
            gamma: 1.0,
            start_time: at(0),
            end_time: at(30),
            extend_seconds: None,
            status: AuctionStatus::Live,
            final_price_cents: None,
            created_at: at(0),
            updated_at: at(0),
        }
    }

    fn input() -> AuctionInput {
        AuctionInput {
            product_id: Uuid::now_v7(),
            event_id: None,
            upset_price_cents: 1000,
            inventory: 3,
            alpha: 1.0,
            beta: 2.0,
            gamma: 0.5,
            start_time: at(10),
            end_time: at(20),
            extend_seconds: Some(30),
        }
    }

    fn bidder(name: &str, weight: f64) -> Bidder {
        Bidder {
            username: name.into(),
            weight,
            is_active: true,
        }
    }

    #[test]
    fn the_score_weighs_price_against_weight() {
        // 25.00 units, weight 3: 1 * 25 + 10 / (1 + 3).
        assert_eq!(score(1.0, 10.0, 1.0, 2500, 3.0), 27.5);
        assert_eq!(score(0.0, 10.0, 1.0, 999_999, 0.0), 10.0);
        assert_eq!(score(2.0, 0.0, 1.0, 1, 0.0), 0.02);
        // A heavier weight lowers the bonus (beta > 0): the same price ranks lower.
        assert!(score(1.0, 10.0, 1.0, 2500, 0.0) > score(1.0, 10.0, 1.0, 2500, 4.0));
        // Large values stay finite and ordered.
        let big = score(COEFFICIENT_MAX, COEFFICIENT_MAX, 1e-9, PRICE_MAX_CENTS, 0.0);
        assert!(big.is_finite());
        assert!(score(1.0, 0.0, 1.0, PRICE_MAX_CENTS, 0.0) > score(1.0, 0.0, 1.0, PRICE_MAX_CENTS - 1, 0.0));
    }

    #[test]
    fn validation_names_each_field() {
        assert!(validate_auction(&input(), Some(at(9))).is_ok());
        let bad = AuctionInput {
            upset_price_cents: -1,
            inventory: 0,
            alpha: -0.5,
            beta: f64::NAN,
            gamma: 0.0,
            end_time: at(10),
            extend_seconds: Some(0),
            ..input()
        };
        let errors = validate_auction(&bad, Some(at(30))).unwrap_err();
        let fields: Vec<&str> = errors.fields().iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "upset_price_cents",
                "inventory",
                "alpha",
                "beta",
                "gamma",
                "end_time",
                "start_time",
                "extend_seconds"
            ]
        );
        let negative_gamma = AuctionInput {
            gamma: -1.0,
            ..input()
        };
        assert_eq!(
            validate_auction(&negative_gamma, None).unwrap_err().fields()[0].field,
            "gamma"
        );
    }

    #[test]
    fn edits_only_before_the_start() {
        let mut scheduled = auction();
        scheduled.status = AuctionStatus::Scheduled;
        scheduled.start_time = at(10);
        assert_eq!(check_edit(&scheduled, at(5)), Ok(()));
        assert_eq!(check_edit(&scheduled, at(10)), Err(Refusal::AuctionNotEditable));
        assert_eq!(check_edit(&auction(), at(5)), Err(Refusal::AuctionNotEditable));
    }

    #[test]
    fn bids_follow_the_clock_and_the_upset_price() {
        let auction = auction();
        assert_eq!(check_bid(&auction, 1000, at(1)), Ok(()));
        assert_eq!(
            check_bid(&auction, 1000, at(30)),
            Err(Rejection::Refused(Refusal::AuctionNotLive))
        );
        let mut early = auction.clone();
        early.status = AuctionStatus::Scheduled;
        early.start_time = at(5);
        assert_eq!(
            check_bid(&early, 1000, at(4)),
            Err(Rejection::Refused(Refusal::AuctionNotLive))
        );
        // Scheduled in the database, but the clock says it started.
        assert_eq!(check_bid(&early, 1000, at(5)), Ok(()));
        assert!(matches!(
            check_bid(&auction, 999, at(1)),
            Err(Rejection::Invalid(_))
        ));
        assert!(matches!(
            check_bid(&auction, 0, at(1)),
            Err(Rejection::Invalid(_))
        ));
        let mut settled = auction;
        settled.status = AuctionStatus::Settled;
        assert_eq!(
            check_bid(&settled, 1000, at(1)),
            Err(Rejection::Refused(Refusal::AuctionNotLive))
        );
    }

    #[test]
    fn a_batch_scores_with_current_weights_and_keeps_each_users_last_bid() {
        let auction = auction();
        let (ann, ben, gone) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let bidders = HashMap::from([
            (ann, bidder("ann", 0.0)),
            (ben, bidder("ben", 4.0)),
            (
                gone,
                Bidder {
                    is_active: false,
                    ..bidder("gone", 0.0)
                },
            ),
        ]);
        let requests = [
            BidRequest {
                user_id: ann,
                amount_cents: 1500,
            },
            BidRequest {
                user_id: ben,
                amount_cents: 900,
            },
            BidRequest {
                user_id: ann,
                amount_cents: 1200,
            },
            BidRequest {
                user_id: gone,
                amount_cents: 5000,
            },
            BidRequest {
                user_id: Uuid::now_v7(),
                amount_cents: 5000,
            },
        ];
        let batch = accept_bids(&auction, &requests, &bidders, at(1));
        let kinds: Vec<&str> = batch
            .outcomes
            .iter()
            .map(|o| match o {
                BidOutcome::Accepted(_) => "accepted",
                BidOutcome::TooLow => "too_low",
                BidOutcome::NotLive => "not_live",
                BidOutcome::UnknownBidder => "unknown",
            })
            .collect();
        assert_eq!(kinds, ["accepted", "too_low", "accepted", "unknown", "unknown"]);
        // A later bid replaces an earlier one, even a lower one.
        assert_eq!(batch.stored.len(), 1);
        assert_eq!(batch.stored[0].bid_cents, 1200);
        assert_eq!(batch.stored[0].score, 12.0 + 10.0);
        assert_eq!(batch.extended_to, None);
        let late = accept_bids(&auction, &requests[..1], &bidders, at(30));
        assert_eq!(late.outcomes, [BidOutcome::NotLive]);
        assert!(late.stored.is_empty());
    }

    #[test]
    fn a_bid_in_the_last_seconds_extends_the_end() {
        let mut auction = auction();
        auction.extend_seconds = Some(60);
        let ann = Uuid::now_v7();
        let bidders = HashMap::from([(ann, bidder("ann", 0.0))]);
        let bid = [BidRequest {
            user_id: ann,
            amount_cents: 2000,
        }];
        assert_eq!(accept_bids(&auction, &bid, &bidders, at(28)).extended_to, None);
        assert_eq!(
            accept_bids(&auction, &bid, &bidders, at(29)).extended_to,
            Some(at(31))
        );
        // A refused bid extends nothing.
        let low = [BidRequest {
            user_id: ann,
            amount_cents: 10,
        }];
        assert_eq!(accept_bids(&auction, &low, &bidders, at(29)).extended_to, None);
    }

    fn bid(user: u128, cents: i64, score: f64, minute: u32) -> Bid {
        Bid {
            auction_id: Uuid::nil(),
            user_id: Uuid::from_u128(user),
            username: format!("u{user}"),
            bid_cents: cents,
            weight: 0.0,
            score,
            placed_at: at(minute),
        }
    }

    #[test]
    fn settlement_ranks_ties_to_the_earlier_bid_and_prices_at_the_lowest_winner() {
        let bids = vec![
            bid(1, 3000, 30.0, 5),
            bid(2, 2000, 40.0, 6),
            bid(3, 2500, 30.0, 4),
            bid(4, 100, 1.0, 1),
        ];
        let settlement = settle(bids, 2);
        let order: Vec<(i64, u128, bool)> = settlement
            .placings
            .iter()
            .map(|p| (p.rank, p.bid.user_id.as_u128(), p.won))
            .collect();
        assert_eq!(order, [(1, 2, true), (2, 3, true), (3, 1, false), (4, 4, false)]);
        assert_eq!(settlement.final_price_cents, Some(2000));
        // Fewer bidders than inventory: all win.
        let few = settle(vec![bid(1, 3000, 30.0, 5)], 5);
        assert!(few.placings[0].won);
        assert_eq!(few.final_price_cents, Some(3000));
        assert_eq!(settle(Vec::new(), 3).final_price_cents, None);
    }
}
