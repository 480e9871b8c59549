//! Events: community fields, drop items, attendance, subscriptions,
//! threaded comments, and the scheduler's status transitions.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::events::{
    Comment, Event, EventFields, EventInput, EventItem, EventPatch, EventStatus, ItemInput, Near,
};
use domain::notify::EventAction;
use domain::page::PageRequest;
use domain::{Refusal, Rejection};
use sqlx::types::Json;
use uuid::Uuid;

use crate::db::{BeginWrite, contains_pattern};
use crate::tx::{Outgoing, Tagged, TransactionSteps};
use crate::{Backend, Result, SqlStore, Store, StoreError};

const EVENT_SELECT: &str = "SELECT e.id, e.title, e.description, e.location, e.start_time, e.end_time, e.tags, \
     e.max_attendees, e.attendee_count, e.status, e.attachment_url, e.latitude, e.longitude, \
     e.reservation_ttl_seconds, e.created_by, u.username AS created_by_username, e.created_at, e.updated_at \
     FROM events e JOIN users u ON u.id = e.created_by";

const ITEM_SELECT: &str = "SELECT i.id, i.event_id, i.product_id, p.name, i.price_cents, i.currency, \
     i.stock_total, i.stock_remaining, i.stock_version, i.per_user_limit \
     FROM event_items i JOIN products p ON p.id = i.product_id";

/// The drop part of an event write: the items the event should have.
pub struct DropItems<'a> {
    pub items: &'a [ItemInput],
    pub reservation_ttl_seconds: Option<i64>,
}

/// An edit of an event, applied to the row as the transaction reads it.
pub enum EventChange<'a> {
    /// Every field anew (PUT); with `drop`, the items too.
    Replace {
        input: EventInput,
        drop: Option<DropItems<'a>>,
    },
    /// Only the fields given (PATCH), maybe canceling the event.
    Patch(EventPatch),
}

#[derive(Debug, Default, Clone)]
pub struct EventFilter {
    pub status: Option<EventStatus>,
    pub tag: Option<String>,
    pub q: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub near: Option<Near>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attendance {
    Joined,
    AlreadyAttending,
}

/// Where a user stands with an event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Involvement {
    pub attending: bool,
    pub subscribed: bool,
}

const COMMENT_COLUMNS: &str = "c.id, c.event_id, c.parent_id, c.user_id, u.username, c.body, c.created_at";

/// A status the scheduler moved an event to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub event_id: Uuid,
    pub status: EventStatus,
}

#[async_trait]
pub trait EventStore {
    async fn create_event(
        &self,
        fields: &EventFields,
        created_by: Uuid,
        drop: Option<DropItems<'_>>,
    ) -> Result<Event>;
    /// Applies `change` in one transaction: the event row is read (locked),
    /// the edit validated against it (`domain::events::validate_update`,
    /// `check_edit`), written and announced.
    async fn update_event(&self, id: Uuid, actor: Uuid, change: EventChange<'_>) -> Result<Event>;
    /// Soft-deletes the event and cancels its open reservations (their
    /// stock returns, keeping every item's count whole).
    async fn delete_event(&self, id: Uuid, actor: Uuid) -> Result<()>;
    async fn event(&self, id: Uuid) -> Result<Event>;
    async fn event_items(&self, event_id: Uuid) -> Result<Vec<EventItem>>;
    /// The items of several events at once (a list page), by position.
    async fn items_of_events(&self, event_ids: &[Uuid]) -> Result<Vec<EventItem>>;
    async fn list_events(
        &self,
        filter: &EventFilter,
        page: &PageRequest<DateTime<Utc>>,
    ) -> Result<Vec<Event>>;
    /// Forces a status now: `live` moves the start to now if it was later,
    /// `closed` moves the end, `canceled` just cancels. Final events refuse.
    async fn force_status(&self, id: Uuid, status: EventStatus) -> Result<Event>;

    async fn attend(&self, event_id: Uuid, user_id: Uuid) -> Result<Attendance>;
    async fn leave(&self, event_id: Uuid, user_id: Uuid) -> Result<()>;
    async fn subscribe(&self, event_id: Uuid, user_id: Uuid) -> Result<()>;
    async fn unsubscribe(&self, event_id: Uuid, user_id: Uuid) -> Result<()>;
    /// Whether the user attends the event and follows its updates.
    async fn involvement(&self, event_id: Uuid, user_id: Uuid) -> Result<Involvement>;

    async fn add_comment(
        &self,
        event_id: Uuid,
        parent_id: Option<Uuid>,
        user_id: Uuid,
        body: &str,
    ) -> Result<Comment>;
    async fn comment(&self, id: Uuid) -> Result<Comment>;
    /// A page of top-level comments, oldest first.
    async fn root_comments(&self, event_id: Uuid, page: &PageRequest<DateTime<Utc>>) -> Result<Vec<Comment>>;
    /// Every reply, at any depth, under the given comments.
    async fn replies_under(&self, roots: &[Uuid]) -> Result<Vec<Comment>>;

    /// Applies every transition due at `now` (start, end); returns them.
    async fn advance_statuses(&self, now: DateTime<Utc>) -> Result<Vec<Transition>>;
    /// When the next start or end is due, if any.
    async fn next_transition_at(&self) -> Result<Option<DateTime<Utc>>>;
}

/// Binds the community fields of an event, in column order, after the
/// query's earlier parameters (insert and update share the order).
fn bind_fields<'q, DB>(
    query: sqlx::query::Query<'q, DB, DB::Arguments>,
    fields: &'q EventFields,
) -> sqlx::query::Query<'q, DB, DB::Arguments>
where
    DB: sqlx::Database,
    String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    DateTime<Utc>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Json<&'q Vec<String>>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<i64>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<String>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<f64>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    query
        .bind(fields.title.clone())
        .bind(fields.description.clone())
        .bind(fields.location.clone())
        .bind(fields.start_time)
        .bind(fields.end_time)
        .bind(Json(&fields.tags))
        .bind(fields.max_attendees)
        .bind(fields.attachment_url.clone())
        .bind(fields.coordinates.map(|c| c.latitude))
        .bind(fields.coordinates.map(|c| c.longitude))
}

/// Binds a list of values separated by commas.
macro_rules! push_list {
    ($query:expr, $values:expr) => {{
        let mut separated = $query.separated(", ");
        for value in $values {
            separated.push_bind(*value);
        }
    }};
}
pub(crate) use push_list;

#[async_trait]
impl EventStore for SqlStore {
    async fn create_event(
        &self,
        fields: &EventFields,
        created_by: Uuid,
        drop: Option<DropItems<'_>>,
    ) -> Result<Event> {
        let id = Uuid::now_v7();
        let now = self.clock.now();
        let announcement = self.message_id();
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let insert = sqlx::query(
                "INSERT INTO events (id, title, description, location, start_time, end_time, tags, max_attendees, \
                 attachment_url, latitude, longitude, reservation_ttl_seconds, created_by, status, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 'scheduled', $14, $14)",
            );
            bind_fields(insert.bind(id), fields)
                .bind(drop.as_ref().and_then(|d| d.reservation_ttl_seconds))
                .bind(created_by)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            tx.replace_tags(Tagged::Event, id, &fields.tags).await?;
            if let Some(drop) = &drop {
                tx.store_items(id, drop.items, now).await?;
            }
            tx.announce(announcement, EventAction::Created, id, created_by, now).await?;
            let event: Event = sqlx::query_as(sqlx::AssertSqlSafe(format!("{EVENT_SELECT} WHERE e.id = $1")))
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(event)
        })
    }

    async fn update_event(&self, id: Uuid, actor: Uuid, change: EventChange<'_>) -> Result<Event> {
        let now = self.clock.now();
        let ids = [self.message_id(), self.message_id()];
        // PostgreSQL locks the row for the read-decide-write; SQLite's
        // BEGIN IMMEDIATE already holds the write lock.
        let lock = if self.backend() == Backend::Postgres {
            " FOR UPDATE OF e"
        } else {
            ""
        };
        let select = format!("{EVENT_SELECT} WHERE e.id = $1 AND e.deleted_at IS NULL{lock}");
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let current: Event = sqlx::query_as(sqlx::AssertSqlSafe(select))
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
            let (input, drop, cancel) = match change {
                EventChange::Replace { input, drop } => (input, drop, false),
                EventChange::Patch(patch) => {
                    let cancel = patch.cancel;
                    (patch.apply(current.input()), None, cancel)
                }
            };
            let fields = domain::events::validate_update(&current, input, now).map_err(Rejection::Invalid)?;
            domain::events::check_edit(&current, &fields, drop.is_some(), now)?;
            if cancel && current.status.is_final() {
                return Err(StoreError::refused(Refusal::EventNotEditable));
            }
            let update = sqlx::query(
                "UPDATE events SET title = $2, description = $3, location = $4, start_time = $5, end_time = $6, \
                 tags = $7, max_attendees = $8, attachment_url = $9, latitude = $10, longitude = $11, updated_at = $12 \
                 WHERE id = $1",
            );
            bind_fields(update.bind(id), &fields).bind(now).execute(&mut *tx).await?;
            tx.replace_tags(Tagged::Event, id, &fields.tags).await?;
            if let Some(drop) = &drop {
                sqlx::query("UPDATE events SET reservation_ttl_seconds = $2 WHERE id = $1")
                    .bind(id)
                    .bind(drop.reservation_ttl_seconds)
                    .execute(&mut *tx)
                    .await?;
                tx.store_items(id, drop.items, now).await?;
            }
            if cancel {
                sqlx::query("UPDATE events SET status = 'canceled' WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                let status = domain::notify::status_message(id, EventStatus::Canceled.as_str());
                tx.write_outbox(Outgoing { id: ids[1], topic: "event.status", payload: status }, now).await?;
            }
            tx.announce(ids[0], EventAction::Updated, id, actor, now).await?;
            let event: Event = sqlx::query_as(sqlx::AssertSqlSafe(format!("{EVENT_SELECT} WHERE e.id = $1")))
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(event)
        })
    }

    async fn delete_event(&self, id: Uuid, actor: Uuid) -> Result<()> {
        let now = self.clock.now();
        let announcement = self.message_id();
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let done = sqlx::query(
                "UPDATE events SET deleted_at = $2, updated_at = $2, \
                 status = CASE WHEN status = 'closed' THEN status ELSE 'canceled' END \
                 WHERE id = $1 AND deleted_at IS NULL",
            )
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound);
            }
            let released: Vec<(Uuid, i64)> = sqlx::query_as(
                "UPDATE orders SET status = 'canceled', updated_at = $2 \
                 WHERE event_id = $1 AND status = 'reserved' AND event_item_id IS NOT NULL \
                 RETURNING event_item_id, quantity",
            )
            .bind(id)
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;
            for (item, quantity) in released {
                tx.return_stock([self.message_id(), self.message_id()], item, id, quantity, now).await?;
            }
            tx.announce(announcement, EventAction::Deleted, id, actor, now).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    async fn event(&self, id: Uuid) -> Result<Event> {
        let sql = format!("{EVENT_SELECT} WHERE e.id = $1 AND e.deleted_at IS NULL");
        on_pool!(self, pool => Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_one(pool).await?))
    }

    async fn event_items(&self, event_id: Uuid) -> Result<Vec<EventItem>> {
        let sql = format!("{ITEM_SELECT} WHERE i.event_id = $1 ORDER BY i.position");
        on_pool!(self, pool => Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(event_id).fetch_all(pool).await?))
    }

    async fn items_of_events(&self, event_ids: &[Uuid]) -> Result<Vec<EventItem>> {
        if event_ids.is_empty() {
            return Ok(Vec::new());
        }
        on_pool!(self, pool => {
            let mut query = sqlx::QueryBuilder::new(format!("{ITEM_SELECT} WHERE i.event_id IN ("));
            push_list!(query, event_ids);
            query.push(") ORDER BY i.event_id, i.position");
            Ok(query.build_query_as().fetch_all(pool).await?)
        })
    }

    async fn list_events(
        &self,
        filter: &EventFilter,
        page: &PageRequest<DateTime<Utc>>,
    ) -> Result<Vec<Event>> {
        on_pool!(self, pool => {
            let mut query = sqlx::QueryBuilder::new(format!("{EVENT_SELECT} WHERE e.deleted_at IS NULL"));
            if let Some(status) = filter.status {
                query.push(" AND e.status = ").push_bind(status.as_str());
            }
            if let Some(tag) = &filter.tag {
                query
                    .push(" AND EXISTS (SELECT 1 FROM event_tags t WHERE t.event_id = e.id AND t.tag = ")
                    .push_bind(tag.clone())
                    .push(")");
            }
            if let Some(q) = &filter.q {
                let pattern = contains_pattern(q);
                query
                    .push(" AND (lower(e.title) LIKE ")
                    .push_bind(pattern.clone())
                    .push(" ESCAPE '\\' OR lower(e.description) LIKE ")
                    .push_bind(pattern.clone())
                    .push(" ESCAPE '\\' OR lower(e.location) LIKE ")
                    .push_bind(pattern)
                    .push(" ESCAPE '\\')");
            }
            // The window keeps events that overlap [from, to].
            if let Some(from) = filter.from {
                query.push(" AND e.end_time >= ").push_bind(from);
            }
            if let Some(to) = filter.to {
                query.push(" AND e.start_time <= ").push_bind(to);
            }
            if let Some(near) = &filter.near {
                let (min_lat, max_lat, min_lng, max_lng) = near.bounding_box();
                query
                    .push(" AND e.latitude BETWEEN ")
                    .push_bind(min_lat)
                    .push(" AND ")
                    .push_bind(max_lat)
                    .push(" AND e.longitude BETWEEN ")
                    .push_bind(min_lng)
                    .push(" AND ")
                    .push_bind(max_lng)
                    .push(" AND (e.latitude - ")
                    .push_bind(near.center.latitude)
                    .push(") * (e.latitude - ")
                    .push_bind(near.center.latitude)
                    .push(") + (e.longitude - ")
                    .push_bind(near.center.longitude)
                    .push(") * (e.longitude - ")
                    .push_bind(near.center.longitude)
                    .push(") * ")
                    .push_bind(near.longitude_scale() * near.longitude_scale())
                    .push(" <= ")
                    .push_bind(near.radius_degrees_squared());
            }
            if let Some(after) = &page.after {
                query
                    .push(" AND (e.start_time, e.id) > (")
                    .push_bind(after.key)
                    .push(", ")
                    .push_bind(after.id)
                    .push(")");
            }
            query.push(" ORDER BY e.start_time, e.id LIMIT ").push_bind(page.fetch_limit());
            Ok(query.build_query_as().fetch_all(pool).await?)
        })
    }

    async fn force_status(&self, id: Uuid, status: EventStatus) -> Result<Event> {
        let now = self.clock.now();
        let message = self.message_id();
        let update = match status {
            EventStatus::Live => {
                "UPDATE events SET status = CASE WHEN EXISTS (SELECT 1 FROM event_items i WHERE i.event_id = events.id) \
                 AND NOT EXISTS (SELECT 1 FROM event_items i WHERE i.event_id = events.id AND i.stock_remaining > 0) \
                 THEN 'sold_out' ELSE 'live' END, \
                 start_time = CASE WHEN start_time > $2 THEN $2 ELSE start_time END, \
                 end_time = CASE WHEN end_time <= $2 THEN $3 ELSE end_time END, updated_at = $2 \
                 WHERE id = $1 AND deleted_at IS NULL AND status NOT IN ('closed', 'canceled')"
            }
            EventStatus::Closed => {
                "UPDATE events SET status = 'closed', end_time = CASE WHEN end_time > $2 THEN $2 ELSE end_time END, \
                 start_time = CASE WHEN start_time > $2 THEN $2 ELSE start_time END, updated_at = $2 \
                 WHERE id = $1 AND deleted_at IS NULL AND status NOT IN ('closed', 'canceled')"
            }
            _ => {
                "UPDATE events SET status = 'canceled', updated_at = $2 \
                 WHERE id = $1 AND deleted_at IS NULL AND status NOT IN ('closed', 'canceled')"
            }
        };
        // Opening an event whose end has passed gives it an hour.
        let reopened_end = now + chrono::Duration::hours(1);
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let query = sqlx::query(update).bind(id).bind(now);
            let query = if status == EventStatus::Live { query.bind(reopened_end) } else { query };
            let done = query.execute(&mut *tx).await?;
            if done.rows_affected() == 0 {
                let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM events WHERE id = $1 AND deleted_at IS NULL)")
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await?;
                return Err(if exists { StoreError::refused(Refusal::EventNotEditable) } else { StoreError::NotFound });
            }
            let event: Event = sqlx::query_as(sqlx::AssertSqlSafe(format!("{EVENT_SELECT} WHERE e.id = $1")))
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
            let status = domain::notify::status_message(id, event.status.as_str());
            tx.write_outbox(Outgoing { id: message, topic: "event.status", payload: status }, now).await?;
            tx.commit().await?;
            Ok(event)
        })
    }

    async fn attend(&self, event_id: Uuid, user_id: Uuid) -> Result<Attendance> {
        let now = self.clock.now();
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM events WHERE id = $1 AND deleted_at IS NULL)")
                .bind(event_id)
                .fetch_one(&mut *tx)
                .await?;
            if !exists {
                return Err(StoreError::NotFound);
            }
            let inserted = sqlx::query(
                "INSERT INTO event_attendees (event_id, user_id, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (event_id, user_id) DO NOTHING",
            )
            .bind(event_id)
            .bind(user_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if inserted.rows_affected() == 0 {
                return Ok(Attendance::AlreadyAttending);
            }
            // The guarded increment is the capacity check: it cannot pass
            // max_attendees however many requests race.
            let counted = sqlx::query(
                "UPDATE events SET attendee_count = attendee_count + 1 \
                 WHERE id = $1 AND (max_attendees IS NULL OR attendee_count < max_attendees)",
            )
            .bind(event_id)
            .execute(&mut *tx)
            .await?;
            if counted.rows_affected() == 0 {
                return Err(StoreError::refused(Refusal::EventFull));
            }
            tx.commit().await?;
            Ok(Attendance::Joined)
        })
    }

    async fn leave(&self, event_id: Uuid, user_id: Uuid) -> Result<()> {
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let removed = sqlx::query("DELETE FROM event_attendees WHERE event_id = $1 AND user_id = $2")
                .bind(event_id)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            if removed.rows_affected() > 0 {
                sqlx::query("UPDATE events SET attendee_count = attendee_count - 1 WHERE id = $1")
                    .bind(event_id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    async fn subscribe(&self, event_id: Uuid, user_id: Uuid) -> Result<()> {
        on_pool!(self, pool => {
            let done = sqlx::query(
                "INSERT INTO event_subscriptions (event_id, user_id, created_at) \
                 SELECT id, $2, $3 FROM events WHERE id = $1 AND deleted_at IS NULL \
                 ON CONFLICT (event_id, user_id) DO NOTHING",
            )
            .bind(event_id)
            .bind(user_id)
            .bind(self.clock.now())
            .execute(pool)
            .await?;
            if done.rows_affected() == 0 {
                let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM events WHERE id = $1 AND deleted_at IS NULL)")
                    .bind(event_id)
                    .fetch_one(pool)
                    .await?;
                if !exists {
                    return Err(StoreError::NotFound);
                }
            }
            Ok(())
        })
    }

    async fn involvement(&self, event_id: Uuid, user_id: Uuid) -> Result<Involvement> {
        on_pool!(self, pool => {
            let (attending, subscribed): (bool, bool) = sqlx::query_as(
                "SELECT EXISTS (SELECT 1 FROM event_attendees WHERE event_id = $1 AND user_id = $2), \
                        EXISTS (SELECT 1 FROM event_subscriptions WHERE event_id = $1 AND user_id = $2)",
            )
            .bind(event_id)
            .bind(user_id)
            .fetch_one(pool)
            .await?;
            Ok(Involvement { attending, subscribed })
        })
    }

    async fn unsubscribe(&self, event_id: Uuid, user_id: Uuid) -> Result<()> {
        on_pool!(self, pool => {
            sqlx::query("DELETE FROM event_subscriptions WHERE event_id = $1 AND user_id = $2")
                .bind(event_id)
                .bind(user_id)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    async fn add_comment(
        &self,
        event_id: Uuid,
        parent_id: Option<Uuid>,
        user_id: Uuid,
        body: &str,
    ) -> Result<Comment> {
        let id = Uuid::now_v7();
        let sql = format!(
            "SELECT {COMMENT_COLUMNS} FROM comments c JOIN users u ON u.id = c.user_id WHERE c.id = $1"
        );
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM events WHERE id = $1 AND deleted_at IS NULL)")
                .bind(event_id)
                .fetch_one(&mut *tx)
                .await?;
            if !exists {
                return Err(StoreError::NotFound);
            }
            sqlx::query("INSERT INTO comments (id, event_id, parent_id, user_id, body, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
                .bind(id)
                .bind(event_id)
                .bind(parent_id)
                .bind(user_id)
                .bind(body)
                .bind(self.clock.now())
                .execute(&mut *tx)
                .await?;
            let comment: Comment = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_one(&mut *tx).await?;
            tx.commit().await?;
            Ok(comment)
        })
    }

    async fn comment(&self, id: Uuid) -> Result<Comment> {
        let sql = format!(
            "SELECT {COMMENT_COLUMNS} FROM comments c JOIN users u ON u.id = c.user_id WHERE c.id = $1"
        );
        on_pool!(self, pool => Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_one(pool).await?))
    }

    async fn root_comments(&self, event_id: Uuid, page: &PageRequest<DateTime<Utc>>) -> Result<Vec<Comment>> {
        on_pool!(self, pool => {
            let mut query = sqlx::QueryBuilder::new(format!(
                "SELECT {COMMENT_COLUMNS} FROM comments c JOIN users u ON u.id = c.user_id \
                 WHERE c.parent_id IS NULL AND c.event_id = "
            ));
            query.push_bind(event_id);
            if let Some(after) = &page.after {
                query.push(" AND (c.created_at, c.id) > (").push_bind(after.key).push(", ").push_bind(after.id).push(")");
            }
            query.push(" ORDER BY c.created_at, c.id LIMIT ").push_bind(page.fetch_limit());
            Ok(query.build_query_as().fetch_all(pool).await?)
        })
    }

    async fn replies_under(&self, roots: &[Uuid]) -> Result<Vec<Comment>> {
        if roots.is_empty() {
            return Ok(Vec::new());
        }
        on_pool!(self, pool => {
            let mut query = sqlx::QueryBuilder::new(
                "WITH RECURSIVE thread (id) AS (SELECT id FROM comments WHERE parent_id IN (",
            );
            push_list!(query, roots);
            query.push(format!(
                ") UNION ALL SELECT c.id FROM comments c JOIN thread t ON c.parent_id = t.id) \
                 SELECT {COMMENT_COLUMNS} FROM comments c JOIN users u ON u.id = c.user_id \
                 WHERE c.id IN (SELECT id FROM thread) ORDER BY c.created_at, c.id"
            ));
            Ok(query.build_query_as().fetch_all(pool).await?)
        })
    }

    async fn advance_statuses(&self, now: DateTime<Utc>) -> Result<Vec<Transition>> {
        let clock = &self.clock;
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let closed: Vec<Uuid> = sqlx::query_scalar(
                "UPDATE events SET status = 'closed', updated_at = $1 \
                 WHERE deleted_at IS NULL AND status IN ('scheduled', 'live', 'sold_out') AND end_time <= $1 \
                 RETURNING id",
            )
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;
            let opened: Vec<(Uuid, String)> = sqlx::query_as(
                "UPDATE events SET updated_at = $1, status = CASE \
                   WHEN EXISTS (SELECT 1 FROM event_items i WHERE i.event_id = events.id) \
                    AND NOT EXISTS (SELECT 1 FROM event_items i WHERE i.event_id = events.id AND i.stock_remaining > 0) \
                   THEN 'sold_out' ELSE 'live' END \
                 WHERE deleted_at IS NULL AND status = 'scheduled' AND start_time <= $1 AND end_time > $1 \
                 RETURNING id, status",
            )
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;
            let moved = closed.iter().map(|id| (*id, "closed")).chain(opened.iter().map(|(id, s)| (*id, s.as_str())));
            for (event_id, status) in moved {
                let payload = domain::notify::status_message(event_id, status);
                tx.write_outbox(Outgoing { id: clock.new_id(), topic: "event.status", payload }, now).await?;
            }
            tx.commit().await?;
            let mut transitions: Vec<Transition> = closed
                .into_iter()
                .map(|event_id| Transition { event_id, status: EventStatus::Closed })
                .collect();
            for (event_id, status) in opened {
                let status = EventStatus::try_from(status).map_err(StoreError::Corrupt)?;
                transitions.push(Transition { event_id, status });
            }
            Ok(transitions)
        })
    }

    async fn next_transition_at(&self) -> Result<Option<DateTime<Utc>>> {
        on_pool!(self, pool => {
            let start: Option<DateTime<Utc>> = sqlx::query_scalar(
                "SELECT start_time FROM events WHERE status = 'scheduled' AND deleted_at IS NULL ORDER BY start_time LIMIT 1",
            )
            .fetch_optional(pool)
            .await?;
            let end: Option<DateTime<Utc>> = sqlx::query_scalar(
                "SELECT end_time FROM events WHERE status IN ('scheduled', 'live', 'sold_out') AND deleted_at IS NULL \
                 ORDER BY end_time LIMIT 1",
            )
            .fetch_optional(pool)
            .await?;
            Ok([start, end].into_iter().flatten().min())
        })
    }
}
