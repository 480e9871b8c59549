//! Community events and drops: create, edit, delete, browse, attend,
//! subscribe, comment, and the admin's lifecycle overrides.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use dashmap::DashMap;
use domain::ValidationErrors;
use domain::cursor::CursorCodec;
use domain::events::{self, EventInput, EventStatus, ItemInput, Near};
use domain::page::{Page, Position, page_from_rows, page_request};
use domain::user::{Permission, Role};
use gates::StockGate;
use store::events::{Attendance, Comment, DropItems, Event, EventFilter, EventItem};
use store::{Store, StoreError};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::accounts::Principal;
use crate::{Error, Result};

/// An event with its items, as the event page shows it.
#[derive(Debug, Clone)]
pub struct EventDetails {
    pub event: Event,
    pub items: Vec<EventItem>,
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

pub struct EventService {
    store: Arc<dyn Store>,
    gate: Arc<StockGate>,
    cursors: CursorCodec,
    pages: DashMap<Uuid, (Arc<EventDetails>, Instant)>,
    /// Wakes the scheduler when a start or end time may have moved.
    schedule_changed: Arc<Notify>,
    /// Wakes the outbox relay after a write that announced something.
    outbox_written: Arc<Notify>,
}

fn map_store(err: StoreError) -> Error {
    match err {
        StoreError::NotEditable => Error::conflict(
            "event_not_editable",
            "the event can no longer be changed this way",
        ),
        StoreError::Full => Error::conflict("event_full", "the event has reached max_attendees"),
        StoreError::Invalid { field, message } => Error::invalid(&field, message),
        other => other.into(),
    }
}

impl EventService {
    pub fn new(
        store: Arc<dyn Store>,
        gate: Arc<StockGate>,
        cursors: CursorCodec,
        schedule_changed: Arc<Notify>,
        outbox_written: Arc<Notify>,
    ) -> Self {
        EventService {
            store,
            gate,
            cursors,
            pages: DashMap::new(),
            schedule_changed,
            outbox_written,
        }
    }

    fn changed(&self, id: Uuid) {
        self.pages.remove(&id);
        self.schedule_changed.notify_one();
        self.outbox_written.notify_one();
    }

    /// Forgets the cached page of an event (its status or stock moved).
    pub fn invalidate(&self, id: Uuid) {
        self.pages.remove(&id);
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
        let fields = events::validate_event(input, Some(domain::clock::now()))?;
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
            .await
            .map_err(map_store)?;
        self.changed(event.id);
        self.details(event).await
    }

    async fn details(&self, event: Event) -> Result<EventDetails> {
        let items = self.store.event_items(event.id).await?;
        for item in &items {
            self.gate.observe(item.id, item.stock_remaining);
        }
        Ok(EventDetails { event, items })
    }

    fn authorize_owner(principal: &Principal, event: &Event) -> Result<()> {
        if event.created_by == principal.user_id || principal.role == Role::Admin {
            Ok(())
        } else {
            Err(Error::Forbidden(
                "only the event's creator or an admin may change it",
            ))
        }
    }

    /// Replaces the event's fields. `drop` (admins only) also replaces its
    /// items, which is refused once the event has left `scheduled`.
    pub async fn update(
        &self,
        principal: &Principal,
        id: Uuid,
        input: EventInput,
        drop: Option<DropInput>,
    ) -> Result<EventDetails> {
        let current = self.store.event(id).await?;
        Self::authorize_owner(principal, &current)?;
        if drop.is_some() {
            principal.require(Permission::Administer)?;
        }
        // The start may only be set in the past when it is not being moved.
        let moved = input.start_time.is_some_and(|start| start != current.start_time);
        let now = moved.then(domain::clock::now);
        let fields = events::validate_event(input, now)?;
        if let Some(drop) = &drop {
            events::validate_items(&drop.items, drop.reservation_ttl_seconds)?;
        }
        let old_items = self.store.event_items(id).await?;
        let drop_items = drop.as_ref().map(|d| DropItems {
            items: &d.items,
            reservation_ttl_seconds: d.reservation_ttl_seconds,
        });
        let event = self
            .store
            .update_event(id, principal.user_id, &fields, drop_items)
            .await
            .map_err(map_store)?;
        if drop.is_some() {
            for item in old_items {
                self.gate.forget(item.id);
            }
        }
        self.changed(id);
        self.details(event).await
    }

    /// The current fields of an event as input, for a partial update.
    pub async fn current_input(&self, id: Uuid) -> Result<EventInput> {
        let event = self.store.event(id).await?;
        Ok(EventInput {
            title: event.title,
            description: event.description,
            location: event.location,
            start_time: Some(event.start_time),
            end_time: Some(event.end_time),
            tags: event.tags.0,
            max_attendees: event.max_attendees,
            coordinates: match (event.latitude, event.longitude) {
                (Some(latitude), Some(longitude)) => Some(events::GeoPoint { latitude, longitude }),
                _ => None,
            },
            attachment_url: event.attachment_url,
        })
    }

    pub async fn delete(&self, principal: &Principal, id: Uuid) -> Result<()> {
        let event = self.store.event(id).await?;
        Self::authorize_owner(principal, &event)?;
        let items = self.store.event_items(id).await?;
        self.store.delete_event(id, principal.user_id).await?;
        for item in items {
            self.gate.forget(item.id);
        }
        self.changed(id);
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
        let event = self.store.force_status(id, status).await.map_err(map_store)?;
        self.changed(id);
        self.details(event).await
    }

    /// The event page: served from a short-lived cache, with each item's
    /// stock taken from the admission gate, which every sale updates.
    pub async fn get(&self, id: Uuid) -> Result<Arc<EventDetails>> {
        if let Some(entry) = self.pages.get(&id)
            && entry.1.elapsed() < PAGE_TTL
        {
            return Ok(self.with_live_stock(entry.0.clone()));
        }
        let event = self.store.event(id).await?;
        let details = Arc::new(EventDetails {
            items: self.store.event_items(id).await?,
            event,
        });
        for item in &details.items {
            if self.gate.known_stock(item.id).is_none() {
                self.gate.observe(item.id, item.stock_remaining);
            }
        }
        self.pages.insert(id, (details.clone(), Instant::now()));
        Ok(self.with_live_stock(details))
    }

    fn with_live_stock(&self, details: Arc<EventDetails>) -> Arc<EventDetails> {
        let stale = details.items.iter().any(|item| {
            self.gate
                .known_stock(item.id)
                .is_some_and(|stock| stock != item.stock_remaining)
        });
        if !stale {
            return details;
        }
        let mut fresh = (*details).clone();
        for item in &mut fresh.items {
            if let Some(stock) = self.gate.known_stock(item.id) {
                item.stock_remaining = stock;
            }
        }
        let now = domain::clock::now();
        let any_left = fresh.items.iter().any(|i| i.stock_remaining > 0);
        fresh.event.status = events::status_at(
            fresh.event.status,
            fresh.event.start_time,
            fresh.event.end_time,
            !fresh.items.is_empty(),
            any_left,
            now,
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
        Ok(page.map(|event| EventDetails {
            items: items.remove(&event.id).unwrap_or_default(),
            event,
        }))
    }

    pub async fn attend(&self, principal: &Principal, id: Uuid) -> Result<bool> {
        let outcome = self
            .store
            .attend(id, principal.user_id)
            .await
            .map_err(map_store)?;
        self.pages.remove(&id);
        Ok(outcome == Attendance::Joined)
    }

    pub async fn leave(&self, principal: &Principal, id: Uuid) -> Result<()> {
        self.store.leave(id, principal.user_id).await?;
        self.pages.remove(&id);
        Ok(())
    }

    pub async fn subscribe(&self, principal: &Principal, id: Uuid) -> Result<()> {
        Ok(self.store.subscribe(id, principal.user_id).await?)
    }

    pub async fn unsubscribe(&self, principal: &Principal, id: Uuid) -> Result<()> {
        Ok(self.store.unsubscribe(id, principal.user_id).await?)
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
