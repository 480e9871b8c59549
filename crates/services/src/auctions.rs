//! Auctions: setup, bids (group-committed per auction), the live
//! leaderboard, and the scheduler's part (opening, settling).
//!
//! The leaderboard is answered from a ranked structure in memory (or in
//! Redis, shared by every process), never by a query per read. It is kept in
//! step with the database: the process that stores a batch of bids records
//! it at once; every other process records it when the batch's outbox
//! message reaches it over the bus. A board not held yet is loaded from the
//! stored bids; loading and recording merge per user by bid time, so no bid
//! is lost to a load that raced with it.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::auctions::{self, Auction, AuctionInput, AuctionStatus, Bid, BidOutcome, BidRequest};
use domain::clock::Clock;
use domain::cursor::CursorCodec;
use domain::page::{Page, Position, page_from_rows, page_request};
use domain::user::Permission;
use gates::{Leaderboard, Standing};
use moka::future::Cache;
use realtime::{Bus, Hub, Message};
use serde_json::{Value, json};
use store::Store;
use store::auctions::AuctionFilter;
use tokio::sync::{Notify, oneshot};
use uuid::Uuid;

use crate::accounts::Principal;
use crate::batch::{BatchWork, GroupCommit};
use crate::events::EventService;
use crate::{Error, Result};

/// Entries a live leaderboard message carries (API.md: the top 100).
pub const LIVE_ENTRIES: usize = 100;
/// Most entries one leaderboard read may ask for.
pub const MAX_ENTRIES: usize = 1000;
/// How long the bid path trusts its view of an auction (the window, the
/// upset price); every change drops it at once, in every process.
const VIEW_TTL: Duration = Duration::from_secs(1);
const VIEW_CAPACITY: u64 = 10_000;

/// An auction's leaderboard: how many bid, and the best `entries`.
#[derive(Debug, Clone)]
pub struct Standings {
    pub auction: Auction,
    pub bidders: u64,
    pub entries: Vec<(u64, Standing)>,
}

/// A bid as it stands after it was placed.
#[derive(Debug, Clone)]
pub struct PlacedBid {
    pub bid: Bid,
    /// The bidder's 1-based rank right after the bid.
    pub rank: u64,
}

#[derive(Debug, Default, Clone)]
pub struct AuctionQuery {
    pub status: Option<String>,
    pub event_id: Option<Uuid>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

struct BidJob {
    request: BidRequest,
    reply: oneshot::Sender<Result<BidOutcome>>,
}

pub struct AuctionService {
    store: Arc<dyn Store>,
    boards: Arc<Boards>,
    clock: Clock,
    cursors: CursorCodec,
    events: Arc<EventService>,
    views: Cache<Uuid, Auction>,
    bids: GroupCommit<PlaceBids>,
    /// How long a winner's order is held for confirmation.
    hold: chrono::Duration,
    /// Wakes the scheduler when an end or a start moved.
    schedule_changed: Arc<Notify>,
    outbox_written: Arc<Notify>,
}

/// The leaderboards and the store they are loaded from.
struct Boards {
    store: Arc<dyn Store>,
    board: Arc<dyn Leaderboard>,
    /// Every process reads and writes the same boards (Redis): a batch is
    /// recorded once, by the process that stored it.
    shared: bool,
}

impl Boards {
    /// Makes sure the board holds every stored bid.
    async fn ensure_loaded(&self, auction: Uuid) -> Result<()> {
        if !self.board.is_loaded(auction).await {
            let bids = self.store.bids(auction).await?;
            self.board
                .load(auction, bids.iter().map(standing).collect())
                .await;
        }
        Ok(())
    }

    async fn record(&self, auction: Uuid, bids: &[Bid]) -> Result<()> {
        if self.board.is_loaded(auction).await {
            let standings: Vec<Standing> = bids.iter().map(standing).collect();
            self.board.record_many(auction, &standings).await;
            Ok(())
        } else {
            // The stored bids include this batch.
            self.ensure_loaded(auction).await
        }
    }
}

fn standing(bid: &Bid) -> Standing {
    Standing {
        user_id: bid.user_id,
        username: bid.username.clone(),
        bid_cents: bid.bid_cents,
        score: bid.score,
        placed_at_micros: bid.placed_at.timestamp_micros(),
    }
}

/// The batch of one auction: one transaction under the auction's lock.
struct PlaceBids {
    store: Arc<dyn Store>,
    boards: Arc<Boards>,
    /// The service's views of auctions (a handle on the same cache).
    views: Cache<Uuid, Auction>,
    schedule_changed: Arc<Notify>,
}

#[async_trait]
impl BatchWork for PlaceBids {
    type Job = BidJob;

    async fn run(&self, auction: Uuid, jobs: Vec<BidJob>) {
        let requests: Vec<BidRequest> = jobs.iter().map(|j| j.request.clone()).collect();
        let started = std::time::Instant::now();
        let placed = self.store.place_bids(auction, &requests).await;
        metrics::histogram!("swiftdrop_bid_batch_seconds").record(started.elapsed().as_secs_f64());
        metrics::histogram!("swiftdrop_bid_batch_size").record(jobs.len() as f64);
        match placed {
            Ok(placed) => {
                // The board learns the batch before anyone hears back, so a
                // bidder's answer and their next read agree.
                if let Err(err) = self.boards.record(auction, &placed.batch.stored).await {
                    tracing::warn!(%auction, error = %crate::error_chain(&err), "leaderboard not updated; reloads on next read");
                    self.boards.board.forget(auction).await;
                }
                if placed.batch.extended_to.is_some() {
                    // A bid in the last seconds moved the end: the bid path
                    // and the scheduler must see the new one at once.
                    self.views.insert(auction, placed.auction.clone()).await;
                    self.schedule_changed.notify_one();
                }
                for (job, outcome) in jobs.into_iter().zip(placed.batch.outcomes) {
                    let _ = job.reply.send(Ok(outcome));
                }
            }
            Err(err) => {
                let cause = crate::error_chain(&err);
                tracing::error!(%auction, error = %cause, "bid batch failed");
                for job in jobs {
                    let _ = job
                        .reply
                        .send(Err(Error::internal(format!("bid failed: {cause}"))));
                }
            }
        }
    }
}

/// Settings of the auction service.
pub struct AuctionSettings {
    pub hold: chrono::Duration,
    pub max_batch: usize,
    /// The boards are shared by every process (Redis).
    pub shared_boards: bool,
}

impl AuctionService {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Arc<dyn Store>,
        board: Arc<dyn Leaderboard>,
        events: Arc<EventService>,
        cursors: CursorCodec,
        clock: Clock,
        settings: AuctionSettings,
        schedule_changed: Arc<Notify>,
        outbox_written: Arc<Notify>,
    ) -> Self {
        let boards = Arc::new(Boards {
            store: store.clone(),
            board,
            shared: settings.shared_boards,
        });
        let views = Cache::builder()
            .max_capacity(VIEW_CAPACITY)
            .time_to_live(VIEW_TTL)
            .build();
        let place = PlaceBids {
            store: store.clone(),
            boards: boards.clone(),
            views: views.clone(),
            schedule_changed: schedule_changed.clone(),
        };
        AuctionService {
            store,
            boards,
            clock,
            cursors,
            events,
            views,
            bids: GroupCommit::new(place, settings.max_batch),
            hold: settings.hold,
            schedule_changed,
            outbox_written,
        }
    }

    /// The one place an auction change is made known to this process.
    async fn changed(&self, auction: &Auction) {
        self.views.invalidate(&auction.id).await;
        if let Some(event) = auction.event_id {
            // The event's page lists its auctions.
            self.events.stock_moved(event).await;
        }
        self.schedule_changed.notify_one();
        self.outbox_written.notify_one();
    }

    pub async fn create(&self, principal: &Principal, input: AuctionInput) -> Result<Auction> {
        principal.require(Permission::Administer)?;
        auctions::validate_auction(&input, Some(self.clock.now()))?;
        let auction = self.store.create_auction(&input, principal.user_id).await?;
        self.changed(&auction).await;
        Ok(auction)
    }

    /// Replaces the setup while the auction is scheduled (409
    /// `auction_not_editable` afterwards).
    pub async fn update(&self, principal: &Principal, id: Uuid, input: AuctionInput) -> Result<Auction> {
        principal.require(Permission::Administer)?;
        auctions::validate_auction(&input, None)?;
        let auction = self.store.update_auction(id, &input).await?;
        self.changed(&auction).await;
        Ok(auction)
    }

    /// An auction, with its status as the clock says (`live` from the
    /// start even before the scheduler writes it).
    pub async fn get(&self, id: Uuid) -> Result<Auction> {
        let mut auction = self.cached(id).await?;
        auction.status = auction.status_at(self.clock.now());
        Ok(auction)
    }

    /// The stored auction, briefly cached (every change drops it).
    async fn cached(&self, id: Uuid) -> Result<Auction> {
        let store = self.store.clone();
        self.views
            .try_get_with(id, async move { store.auction(id).await.map_err(Error::from) })
            .await
            .map_err(Error::shared)
    }

    pub async fn list(&self, query: AuctionQuery) -> Result<Page<Auction>> {
        let status = match query.status.as_deref() {
            None => None,
            Some(s) => Some(
                AuctionStatus::parse(s)
                    .ok_or_else(|| Error::invalid("status", "must be scheduled, live or settled"))?,
            ),
        };
        const SCOPE: &str = "auctions";
        let page = page_request::<DateTime<Utc>>(&self.cursors, SCOPE, query.limit, query.cursor.as_deref())?;
        let filter = AuctionFilter {
            status,
            event_id: query.event_id,
        };
        let rows = self.store.list_auctions(&filter, &page).await?;
        let now = self.clock.now();
        let page = page_from_rows(&self.cursors, SCOPE, page.limit, rows, |a| Position {
            key: a.start_time,
            id: a.id,
        });
        Ok(page.map(|mut a| {
            a.status = a.status_at(now);
            a
        }))
    }

    /// The auctions of these events, for their pages.
    pub async fn of_events(&self, event_ids: &[Uuid]) -> Result<Vec<Auction>> {
        Ok(self.store.auctions_of_events(event_ids).await?)
    }

    /// The leaderboard: the best `limit` (1..=1000, default 100).
    pub async fn standings(&self, id: Uuid, limit: Option<i64>) -> Result<Standings> {
        let limit = match limit {
            None => LIVE_ENTRIES,
            Some(n) if (1..=MAX_ENTRIES as i64).contains(&n) => n as usize,
            Some(_) => {
                return Err(Error::invalid(
                    "limit",
                    format!("must be between 1 and {MAX_ENTRIES}"),
                ));
            }
        };
        let auction = self.get(id).await?;
        self.boards.ensure_loaded(id).await?;
        let board = &self.boards.board;
        let (bidders, entries) = tokio::join!(board.len(id), board.top(id, limit));
        Ok(Standings {
            auction,
            bidders,
            entries,
        })
    }

    /// Places the caller's bid (replacing their earlier one); answers its
    /// score and the caller's rank right after it.
    pub async fn bid(&self, principal: &Principal, id: Uuid, amount_cents: i64) -> Result<PlacedBid> {
        let auction = self.cached(id).await?;
        // The clock is read here too: a late scheduler cannot take bids
        // outside the window. The locked row decides again in the batch.
        auctions::check_bid(&auction, amount_cents, self.clock.now())?;
        let (reply, answer) = oneshot::channel();
        let request = BidRequest {
            user_id: principal.user_id,
            amount_cents,
        };
        self.bids.submit(id, BidJob { request, reply }).await?;
        let outcome = answer
            .await
            .map_err(|_| Error::internal("bid batch was dropped"))??;
        let kind = match &outcome {
            BidOutcome::Accepted(_) => "accepted",
            BidOutcome::TooLow => "too_low",
            BidOutcome::NotLive => "not_live",
            BidOutcome::UnknownBidder => "unknown_bidder",
        };
        metrics::counter!("swiftdrop_bids_total", "outcome" => kind).increment(1);
        match outcome {
            BidOutcome::Accepted(bid) => {
                let rank = self.boards.board.rank_of(id, bid.user_id).await.unwrap_or(0);
                Ok(PlacedBid { bid, rank })
            }
            BidOutcome::TooLow => Err(Error::invalid(
                "amount_cents",
                format!(
                    "must be at least the upset price of {} cents",
                    auction.upset_price_cents
                ),
            )),
            BidOutcome::NotLive => {
                self.views.invalidate(&id).await;
                Err(domain::Refusal::AuctionNotLive.into())
            }
            BidOutcome::UnknownBidder => Err(Error::Unauthorized("account is deactivated")),
        }
    }

    /// The `leaderboard` live message of an auction (its top 100).
    pub async fn live_data(&self, id: Uuid) -> Result<Vec<Value>> {
        let standings = self.standings(id, None).await?;
        Ok(vec![leaderboard_message(&standings)])
    }

    /// Opens scheduled auctions whose start has come; the scheduler calls
    /// this, and it catches up whatever a restart missed.
    pub async fn open_due(&self, now: DateTime<Utc>) -> Result<usize> {
        let opened = self.store.open_due_auctions(now).await?;
        for auction in &opened {
            tracing::info!(auction = %auction.id, "auction live");
            self.changed(auction).await;
        }
        Ok(opened.len())
    }

    /// Settles every auction whose end has come, each exactly once.
    pub async fn settle_due(&self, now: DateTime<Utc>) -> Result<usize> {
        let settled = self.store.settle_due_auctions(now, self.hold).await?;
        for done in &settled {
            tracing::info!(
                auction = %done.auction.id,
                bidders = done.settlement.placings.len(),
                winners = done.orders.len(),
                "auction settled"
            );
            self.changed(&done.auction).await;
        }
        Ok(settled.len())
    }

    pub async fn next_moment(&self) -> Result<Option<DateTime<Utc>>> {
        Ok(self.store.next_auction_moment().await?)
    }

    /// Follows auction changes made by any process (bids, status, ends) for
    /// as long as the bus runs: keeps this process's views and boards in
    /// step and pushes the latest leaderboard to the sockets following an
    /// auction. Messages that queued while a push was written are taken
    /// together and each auction's board is pushed once (conflation).
    pub async fn follow(self: Arc<Self>, bus: Arc<dyn Bus>, hub: Arc<Hub>) {
        use tokio::sync::broadcast::error::{RecvError, TryRecvError};
        let mut messages = bus.subscribe();
        loop {
            let first = match messages.recv().await {
                Ok(message) => message,
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "auction follower lagged; boards reload");
                    self.boards.board_reset().await;
                    continue;
                }
                Err(RecvError::Closed) => return,
            };
            let mut batch = vec![first];
            loop {
                match messages.try_recv() {
                    Ok(message) => batch.push(message),
                    Err(TryRecvError::Lagged(_)) => self.boards.board_reset().await,
                    Err(TryRecvError::Empty | TryRecvError::Closed) => break,
                }
            }
            let mut touched = HashSet::new();
            if batch.iter().any(Message::is_resync) {
                // Bids of other processes went by unseen: reload every
                // board, and refresh every page that follows one.
                self.boards.board_reset().await;
                self.views.invalidate_all();
                touched.extend(hub.followed_topics());
            }
            for message in &batch {
                if let Some(auction) = self.apply(message).await {
                    touched.insert(auction);
                }
            }
            for auction in touched {
                if hub.has_followers(auction)
                    && let Ok(standings) = self.standings(auction, None).await
                {
                    let frame = leaderboard_message(&standings).to_string();
                    hub.send_topic(auction, frame.as_bytes()).await;
                }
            }
        }
    }

    /// Applies one bus message to this process's view of auctions; returns
    /// the auction it touched.
    async fn apply(&self, message: &Message) -> Option<Uuid> {
        let kind = message.payload.get("type").and_then(Value::as_str)?;
        let auction = message
            .payload
            .get("auction_id")
            .and_then(Value::as_str)
            .and_then(|v| Uuid::parse_str(v).ok())?;
        match kind {
            "auction.bids" => {
                if !self.boards.shared && self.boards.board.is_loaded(auction).await {
                    let bids: Vec<Standing> = message
                        .payload
                        .get("bids")
                        .and_then(Value::as_array)
                        .map(|bids| bids.iter().filter_map(remote_standing).collect())
                        .unwrap_or_default();
                    self.boards.board.record_many(auction, &bids).await;
                }
            }
            "auction.status" => {
                self.views.invalidate(&auction).await;
                self.schedule_changed.notify_one();
            }
            _ => return None,
        }
        Some(auction)
    }
}

impl Boards {
    /// Forgets every board this process holds in memory (after missed
    /// messages): they reload from the database on their next read.
    async fn board_reset(&self) {
        self.board.forget_all().await;
    }
}

/// A bid as another process's outbox message carries it.
fn remote_standing(bid: &Value) -> Option<Standing> {
    let placed_at: DateTime<Utc> = serde_json::from_value(bid.get("placed_at")?.clone()).ok()?;
    Some(Standing {
        user_id: Uuid::parse_str(bid.get("user_id")?.as_str()?).ok()?,
        username: bid.get("username")?.as_str()?.to_owned(),
        bid_cents: bid.get("bid_cents")?.as_i64()?,
        score: bid.get("score")?.as_f64()?,
        placed_at_micros: placed_at.timestamp_micros(),
    })
}

/// The `leaderboard` live message (the leaderboard's JSON shape).
pub fn leaderboard_message(standings: &Standings) -> Value {
    let mut message = leaderboard_json(standings);
    message["type"] = json!("leaderboard");
    message
}

/// The leaderboard's JSON shape (API.md): the same for the HTTP read and
/// the live message.
pub fn leaderboard_json(standings: &Standings) -> Value {
    let entries: Vec<Value> = standings
        .entries
        .iter()
        .map(|(rank, s)| {
            json!({"rank": rank, "user_id": s.user_id, "username": s.username, "bid_cents": s.bid_cents,
                   "score": s.score})
        })
        .collect();
    json!({
        "auction_id": standings.auction.id,
        "status": standings.auction.status.as_str(),
        "end_time": standings.auction.end_time,
        "bidders": standings.bidders,
        "entries": entries,
    })
}
