//! Community events and drops: create, edit, delete, browse, attend,
//! subscribe, comment, and the admin's lifecycle overrides.
//!
//! This service owns the views of events that the purchase path and the
//! event page read many times a second (see [`Views`]); every change of an
//! event goes through [`EventService::changed`], the one place those views
//! are dropped.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::ValidationErrors;
use domain::auctions::Auction;
use domain::clock::Clock;
use domain::cursor::CursorCodec;
use domain::events::{self, Comment, Event, EventInput, EventItem, EventPatch, EventStatus, ItemInput, Near};
use domain::page::{Page, Position, page_from_rows, page_request};
use domain::user::{Permission, Role};
use gates::{Observed, StockGate};
use moka::future::Cache;
use store::Store;
pub use store::events::Involvement;
use store::events::{Attendance, DropItems, EventChange, EventFilter, Transition};
use store::sales::SaleItem;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::accounts::Principal;
use crate::{Error, Result};

/// An event with its items and auctions, as the event page shows it.
#[derive(Debug, Clone)]
pub struct EventDetails {
    pub event: Event,
    pub items: Vec<EventItem>,
    pub auctions: Vec<Auction>,
}

/// A comment with its replies, to any depth.
#[derive(Debug, Clone)]
pub struct Thread {
    pub comment: Comment,
    pub replies: Vec<Thread>,
}

/// The drop part of a write: items and the reservation hold.
#[derive(Debug, Clone, Default)]
pub struct DropInput {
    pub items: Vec<ItemInput>,
    pub reservation_ttl_seconds: Option<i64>,
}

/// An edit as the client sent it.
#[derive(Debug, Clone)]
pub enum EventEdit {
    /// Every field (PUT); `drop` (admins) replaces the items too.
    Replace {
        input: EventInput,
        drop: Option<DropInput>,
    },
    /// The fields given (PATCH), maybe canceling the event.
    Patch(EventPatch),
}

#[derive(Debug, Default, Clone)]
pub struct EventQuery {
    pub status: Option<String>,
    pub tag: Option<String>,
    pub q: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub near: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// How long a cached event page may be served before it is re-read. Stock
/// is overlaid from the admission gate, which every purchase updates.
const PAGE_TTL: Duration = Duration::from_millis(500);
/// Event pages kept at once: far more than are hot during a drop.
const PAGE_CAPACITY: u64 = 10_000;
/// How long the purchase path trusts its view of an item's event (status,
/// window, per-user limit); edits and transitions drop it at once.
const SALE_ITEM_TTL: Duration = Duration::from_secs(1);
const SALE_ITEM_CAPACITY: u64 = 100_000;

/// The cached views of events. Each is bounded in size and age, and a
/// simultaneous miss on one key loads it once.
struct Views {
    pages: Cache<Uuid, Arc<EventDetails>>,
    sale_items: Cache<Uuid, SaleItem>,
}

impl Views {
    fn new() -> Views {
        Views {
            pages: Cache::builder()
                .max_capacity(PAGE_CAPACITY)
                .time_to_live(PAGE_TTL)
                .build(),
            sale_items: Cache::builder()
                .max_capacity(SALE_ITEM_CAPACITY)
                .time_to_live(SALE_ITEM_TTL)
                .support_invalidation_closures()
                .build(),
        }
    }
}

pub struct EventService {
    store: Arc<dyn Store>,
    gate: Arc<dyn StockGate>,
    cursors: CursorCodec,
    clock: Clock,
    views: Views,
    /// Wakes the scheduler when a start or end time may have moved.
    schedule_changed: Arc<Notify>,
    /// Wakes the outbox relay after a write that announced something.
    outbox_written: Arc<Notify>,
}

impl EventService {
    pub fn new(
        store: Arc<dyn Store>,
        gate: Arc<dyn StockGate>,
        cursors: CursorCodec,
        clock: Clock,
        schedule_changed: Arc<Notify>,
        outbox_written: Arc<Notify>,
    ) -> Self {
        EventService {
            store,
            gate,
            cursors,
            clock,
            views: Views::new(),
            schedule_changed,
            outbox_written,
        }
    }

    /// The one place an event change is made known: its page and the
    /// purchase path's views of its items are dropped, the scheduler looks
    /// at its times again and the relay at the outbox.
    pub async fn changed(&self, id: Uuid) {
        self.views.pages.invalidate(&id).await;
        // Only fails when closures are not enabled, which `Views::new` does.
        let _ = self
            .views
            .sale_items
            .invalidate_entries_if(move |_, item| item.event_id == id);
        self.schedule_changed.notify_one();
        self.outbox_written.notify_one();
    }

    /// The scheduler moved these events (start, end).
    pub async fn transitioned(&self, transitions: &[Transition]) {
        for transition in transitions {
            tracing::info!(event = %transition.event_id, status = transition.status.as_str(), "event status changed");
            self.changed(transition.event_id).await;
        }
    }

    /// Stock of the event moved (a sale, a cancel, an expiry): its cached
    /// page is re-read; the purchase path's views hold no stock.
    pub async fn stock_moved(&self, id: Uuid) {
        self.views.pages.invalidate(&id).await;
    }

    /// The live data of an event as the database holds it now, for a page
    /// that just subscribed: each item's `stock` (with its version, so a
    /// push already on its way cannot be taken for newer) and the event's
    /// `event.status`.
    pub async fn live_data(&self, id: Uuid) -> Result<Vec<serde_json::Value>> {
        live_data(self.store.as_ref(), id).await
    }

    /// Follows what every process writes, for as long as the bus runs, so
    /// this process's event pages and admission gate are never more than a
    /// message behind the database: a sale or a cancel on another api moves
    /// the stock here too (an older version is ignored), a status change or
    /// an edit drops the views of the event.
    pub async fn follow(self: Arc<Self>, bus: Arc<dyn realtime::Bus>) {
        use tokio::sync::broadcast::error::RecvError;
        let mut messages = bus.subscribe();
        loop {
            let message = match messages.recv().await {
                Ok(message) => message,
                // Missed some: every view ages out within its TTL anyway.
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return,
            };
            if message.is_resync() {
                // Changes went by unseen: nothing cached may be trusted.
                self.views.pages.invalidate_all();
                self.views.sale_items.invalidate_all();
                continue;
            }
            let payload = &message.payload;
            let uuid_at = |v: Option<&serde_json::Value>| {
                v.and_then(|v| v.as_str()).and_then(|v| Uuid::parse_str(v).ok())
            };
            match payload.get("type").and_then(|t| t.as_str()) {
                Some("stock") => {
                    let item = uuid_at(payload.get("item_id"));
                    let stock = payload.get("stock_remaining").and_then(|v| v.as_i64());
                    let version = payload.get("version").and_then(|v| v.as_i64());
                    if let (Some(item), Some(stock), Some(version)) = (item, stock, version) {
                        self.gate.observe(item, Observed { stock, version }).await;
                    }
                    if let Some(event) = uuid_at(payload.get("event_id")) {
                        self.stock_moved(event).await;
                    }
                }
                Some("event.status") => {
                    if let Some(event) = uuid_at(payload.get("event_id")) {
                        self.changed(event).await;
                    }
                }
                Some("notification") => {
                    // event.created / updated / deleted: an edit.
                    if let Some(event) = uuid_at(payload.get("event").and_then(|e| e.get("id"))) {
                        self.changed(event).await;
                    }
                }
                _ => {}
            }
        }
    }

    /// What the purchase path needs to know about an item, cached briefly.
    pub async fn sale_item(&self, item_id: Uuid) -> Result<SaleItem> {
        let store = self.store.clone();
        self.views
            .sale_items
            .try_get_with(item_id, async move {
                store.sale_item(item_id).await.map_err(Error::from)
            })
            .await
            .map_err(Error::shared)
    }

    pub async fn create(
        &self,
        principal: &Principal,
        input: EventInput,
        drop: Option<DropInput>,
    ) -> Result<EventDetails> {
        if drop.is_some() {
            principal.require(Permission::Administer)?;
        }
        let fields = events::validate_event(input, Some(self.clock.now()))?;
        if let Some(drop) = &drop {
            events::validate_items(&drop.items, drop.reservation_ttl_seconds)?;
        }
        let drop_items = drop.as_ref().map(|d| DropItems {
            items: &d.items,
            reservation_ttl_seconds: d.reservation_ttl_seconds,
        });
        let event = self
            .store
            .create_event(&fields, principal.user_id, drop_items)
            .await?;
        self.changed(event.id).await;
        self.details(event).await
    }

    async fn details(&self, event: Event) -> Result<EventDetails> {
        let items = self.store.event_items(event.id).await?;
        for item in &items {
            self.gate.observe(item.id, observed(item)).await;
        }
        let auctions = self.store.auctions_of_events(&[event.id]).await?;
        Ok(EventDetails {
            event,
            items,
            auctions,
        })
    }

    fn authorize_owner(principal: &Principal, event: &Event) -> Result<()> {
        if event.is_owned_by(principal.user_id) || principal.role == Role::Admin {
            Ok(())
        } else {
            Err(Error::Forbidden(
                "only the event's creator or an admin may change it",
            ))
        }
    }

    /// Edits an event (owner or admin). The merge of a partial edit, the
    /// checks against the event's current state and the write happen in
    /// one transaction; replacing items (admins) is refused once the event
    /// has started.
    pub async fn update(&self, principal: &Principal, id: Uuid, edit: EventEdit) -> Result<EventDetails> {
        let current = self.store.event(id).await?;
        Self::authorize_owner(principal, &current)?;
        let change = match &edit {
            EventEdit::Replace { input, drop } => {
                if let Some(drop) = drop {
                    principal.require(Permission::Administer)?;
                    events::validate_items(&drop.items, drop.reservation_ttl_seconds)?;
                }
                EventChange::Replace {
                    input: input.clone(),
                    drop: drop.as_ref().map(|d| DropItems {
                        items: &d.items,
                        reservation_ttl_seconds: d.reservation_ttl_seconds,
                    }),
                }
            }
            EventEdit::Patch(patch) => EventChange::Patch(patch.clone()),
        };
        let old_items = self.store.event_items(id).await?;
        let event = self.store.update_event(id, principal.user_id, change).await?;
        self.changed(id).await;
        let details = self.details(event).await?;
        for gone in old_items
            .iter()
            .filter(|old| !details.items.iter().any(|i| i.id == old.id))
        {
            self.gate.forget(gone.id).await;
        }
        Ok(details)
    }

    pub async fn delete(&self, principal: &Principal, id: Uuid) -> Result<()> {
        let event = self.store.event(id).await?;
        Self::authorize_owner(principal, &event)?;
        let items = self.store.event_items(id).await?;
        self.store.delete_event(id, principal.user_id).await?;
        for item in items {
            self.gate.forget(item.id).await;
        }
        self.changed(id).await;
        Ok(())
    }

    /// Opens, closes or cancels an event now.
    pub async fn force(&self, principal: &Principal, id: Uuid, status: EventStatus) -> Result<EventDetails> {
        let event = self.store.event(id).await?;
        if status == EventStatus::Canceled {
            Self::authorize_owner(principal, &event)?;
        } else {
            principal.require(Permission::Administer)?;
        }
        let event = self.store.force_status(id, status).await?;
        self.changed(id).await;
        self.details(event).await
    }

    /// The event page: served from a short-lived cache, with each item's
    /// stock taken from the admission gate, which every sale updates.
    pub async fn get(&self, id: Uuid) -> Result<Arc<EventDetails>> {
        let store = self.store.clone();
        let details = self
            .views
            .pages
            .try_get_with(id, async move {
                let event = store.event(id).await?;
                let items = store.event_items(id).await?;
                let auctions = store.auctions_of_events(&[id]).await?;
                Ok::<_, Error>(Arc::new(EventDetails {
                    event,
                    items,
                    auctions,
                }))
            })
            .await
            .map_err(Error::shared)?;
        let mut live = Vec::with_capacity(details.items.len());
        for item in &details.items {
            let known = self.gate.known_stock(item.id).await;
            if known.is_none() {
                self.gate.observe(item.id, observed(item)).await;
            }
            live.push(known.unwrap_or(item.stock_remaining));
        }
        Ok(self.with_live_stock(details, &live))
    }

    /// The page with each item's stock as the gate knows it (`live`, in
    /// item order), which every sale updates between page loads.
    fn with_live_stock(&self, details: Arc<EventDetails>, live: &[i64]) -> Arc<EventDetails> {
        let now = self.clock.now();
        let stale = details
            .items
            .iter()
            .zip(live)
            .any(|(item, stock)| *stock != item.stock_remaining)
            || details.auctions.iter().any(|a| a.status_at(now) != a.status);
        if !stale {
            return details;
        }
        let mut fresh = (*details).clone();
        for (item, stock) in fresh.items.iter_mut().zip(live) {
            item.stock_remaining = *stock;
        }
        for auction in &mut fresh.auctions {
            auction.status = auction.status_at(now);
        }
        let any_left = fresh.items.iter().any(|i| i.stock_remaining > 0);
        fresh.event.status = events::status_at(
            fresh.event.status,
            fresh.event.start_time,
            fresh.event.end_time,
            !fresh.items.is_empty(),
            any_left,
            self.clock.now(),
        );
        Arc::new(fresh)
    }

    /// A page of events, each with its items (one query for all items).
    pub async fn list(&self, query: EventQuery) -> Result<Page<EventDetails>> {
        let mut errors = ValidationErrors::new();
        let status = query.status.as_deref().and_then(|s| {
            let parsed = EventStatus::parse(s);
            if parsed.is_none() {
                errors.add("status", "must be scheduled, live, sold_out, closed or canceled");
            }
            parsed
        });
        let near = query.near.as_deref().and_then(|n| match Near::parse(n) {
            Ok(near) => Some(near),
            Err(message) => {
                errors.add("near", message);
                None
            }
        });
        if let (Some(from), Some(to)) = (query.from, query.to)
            && to < from
        {
            errors.add("to", "must not be before from");
        }
        errors.into_result()?;
        const SCOPE: &str = "events";
        let page = page_request::<DateTime<Utc>>(&self.cursors, SCOPE, query.limit, query.cursor.as_deref())?;
        let clean = |v: Option<String>| v.map(|v| v.trim().to_lowercase()).filter(|v| !v.is_empty());
        let filter = EventFilter {
            status,
            tag: clean(query.tag),
            q: clean(query.q),
            from: query.from,
            to: query.to,
            near,
        };
        let rows = self.store.list_events(&filter, &page).await?;
        let page = page_from_rows(&self.cursors, SCOPE, page.limit, rows, |e| Position {
            key: e.start_time,
            id: e.id,
        });
        let ids: Vec<Uuid> = page.data.iter().map(|e| e.id).collect();
        let mut items: HashMap<Uuid, Vec<EventItem>> = HashMap::new();
        for item in self.store.items_of_events(&ids).await? {
            items.entry(item.event_id).or_default().push(item);
        }
        let mut auctions: HashMap<Uuid, Vec<Auction>> = HashMap::new();
        for auction in self.store.auctions_of_events(&ids).await? {
            if let Some(event) = auction.event_id {
                auctions.entry(event).or_default().push(auction);
            }
        }
        Ok(page.map(|event| EventDetails {
            items: items.remove(&event.id).unwrap_or_default(),
            auctions: auctions.remove(&event.id).unwrap_or_default(),
            event,
        }))
    }

    pub async fn attend(&self, principal: &Principal, id: Uuid) -> Result<bool> {
        let outcome = self.store.attend(id, principal.user_id).await?;
        self.views.pages.invalidate(&id).await;
        Ok(outcome == Attendance::Joined)
    }

    pub async fn leave(&self, principal: &Principal, id: Uuid) -> Result<()> {
        self.store.leave(id, principal.user_id).await?;
        self.views.pages.invalidate(&id).await;
        Ok(())
    }

    pub async fn subscribe(&self, principal: &Principal, id: Uuid) -> Result<()> {
        Ok(self.store.subscribe(id, principal.user_id).await?)
    }

    pub async fn unsubscribe(&self, principal: &Principal, id: Uuid) -> Result<()> {
        Ok(self.store.unsubscribe(id, principal.user_id).await?)
    }

    /// Whether the caller attends the event and follows its updates.
    pub async fn involvement(&self, principal: &Principal, id: Uuid) -> Result<Involvement> {
        Ok(self.store.involvement(id, principal.user_id).await?)
    }

    pub async fn comment(&self, principal: &Principal, event_id: Uuid, body: &str) -> Result<Comment> {
        events::check_comment(body)?;
        Ok(self
            .store
            .add_comment(event_id, None, principal.user_id, body.trim())
            .await?)
    }

    pub async fn reply(&self, principal: &Principal, parent_id: Uuid, body: &str) -> Result<Comment> {
        events::check_comment(body)?;
        let parent = self.store.comment(parent_id).await?;
        Ok(self
            .store
            .add_comment(parent.event_id, Some(parent.id), principal.user_id, body.trim())
            .await?)
    }

    /// A page of top-level comments, oldest first, each with its replies.
    pub async fn threads(
        &self,
        event_id: Uuid,
        limit: Option<i64>,
        cursor: Option<&str>,
    ) -> Result<Page<Thread>> {
        self.store.event(event_id).await?;
        let scope = format!("comments:{event_id}");
        let page = page_request::<DateTime<Utc>>(&self.cursors, &scope, limit, cursor)?;
        let rows = self.store.root_comments(event_id, &page).await?;
        let page = page_from_rows(&self.cursors, &scope, page.limit, rows, |c| Position {
            key: c.created_at,
            id: c.id,
        });
        let roots: Vec<Uuid> = page.data.iter().map(|c| c.id).collect();
        let mut children: HashMap<Uuid, Vec<Comment>> = HashMap::new();
        for reply in self.store.replies_under(&roots).await? {
            if let Some(parent) = reply.parent_id {
                children.entry(parent).or_default().push(reply);
            }
        }
        Ok(page.map(|root| nest(root, &mut children)))
    }
}

/// What an item's row says of its stock, for the gate.
fn observed(item: &EventItem) -> Observed {
    Observed {
        stock: item.stock_remaining,
        version: item.stock_version,
    }
}

/// Builds the thread under `comment`, taking its replies (already in
/// creation order) out of `children`.
fn nest(comment: Comment, children: &mut HashMap<Uuid, Vec<Comment>>) -> Thread {
    let replies = children
        .remove(&comment.id)
        .unwrap_or_default()
        .into_iter()
        .map(|reply| nest(reply, children))
        .collect();
    Thread { comment, replies }
}

/// The live data of an event as the database holds it now: each item's
/// `stock` (with its version, so a push already on its way cannot be taken
/// for newer) and the event's `event.status`.
pub(crate) async fn live_data(store: &dyn Store, id: Uuid) -> Result<Vec<serde_json::Value>> {
    let (event, items) = tokio::try_join!(store.event(id), store.event_items(id))?;
    let mut messages: Vec<serde_json::Value> = items
        .iter()
        .map(|i| domain::notify::stock_message(id, i.id, i.stock_remaining, i.stock_version))
        .collect();
    messages.push(domain::notify::status_message(id, event.status.as_str()));
    Ok(messages)
}
