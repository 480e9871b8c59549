//! The transactional outbox and the notification history.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::notify::Notification;
use domain::page::PageRequest;
use serde_json::Value;
use sqlx::FromRow;
use sqlx::types::Json;
use uuid::Uuid;

use crate::db::BeginWrite;
use crate::{Result, SqlStore, StoreError};

#[derive(Debug, Clone, FromRow)]
pub struct OutboxMessage {
    pub id: Uuid,
    pub topic: String,
    pub payload: Json<Value>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct NewNotification {
    pub id: Uuid,
    pub message_id: Uuid,
    pub recipient_id: Option<Uuid>,
    pub notification_type: String,
    pub payload: Value,
    pub created_at: DateTime<Utc>,
}

#[async_trait]
pub trait NotificationStore {
    /// The oldest unpublished outbox messages.
    async fn pending_outbox(&self, limit: i64) -> Result<Vec<OutboxMessage>>;
    async fn mark_published(&self, ids: &[Uuid]) -> Result<()>;
    /// Stores notifications; ones already stored (same id) are skipped.
    async fn store_notifications(&self, notifications: &[NewNotification]) -> Result<()>;
    /// The user's notifications, newest first.
    async fn list_notifications(
        &self,
        user_id: Uuid,
        unread_only: bool,
        page: &PageRequest<Uuid>,
    ) -> Result<Vec<Notification>>;
    /// The user's notifications after `after` (oldest first), for resume.
    async fn notifications_after(
        &self,
        user_id: Uuid,
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<Notification>>;
    async fn mark_read(&self, user_id: Uuid, id: Uuid) -> Result<()>;
    async fn mark_all_read(&self, user_id: Uuid) -> Result<()>;
}

/// The notifications a user may see: their own, and broadcasts made since
/// they registered. `read` honours both the per-notification marks and the
/// user's mark-all-read watermark.
const VISIBLE_HEAD: &str = "SELECT n.id, n.notification_type, n.payload, n.created_at, \
     (CASE WHEN (u.notifications_read_until IS NOT NULL AND n.id <= u.notifications_read_until) \
        OR EXISTS (SELECT 1 FROM notification_reads r WHERE r.user_id = u.id AND r.notification_id = n.id) \
      THEN TRUE ELSE FALSE END) AS read \
     FROM notifications n JOIN users u ON u.id = ";
const VISIBLE_TAIL: &str =
    " WHERE (n.recipient_id = u.id OR (n.recipient_id IS NULL AND n.created_at >= u.created_at))";

/// Starts a query over the notifications `$user` may see.
macro_rules! visible_to {
    ($query:ident, $user:expr) => {
        $query.push(VISIBLE_HEAD).push_bind($user).push(VISIBLE_TAIL)
    };
}

#[async_trait]
impl NotificationStore for SqlStore {
    async fn pending_outbox(&self, limit: i64) -> Result<Vec<OutboxMessage>> {
        on_pool!(self, pool => Ok(sqlx::query_as(
            "SELECT id, topic, payload, created_at FROM outbox WHERE published_at IS NULL ORDER BY created_at, id LIMIT $1",
        )
        .bind(limit)
        .fetch_all(pool)
        .await?))
    }

    async fn mark_published(&self, ids: &[Uuid]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        on_pool!(self, pool => {
            let mut query = sqlx::QueryBuilder::new("UPDATE outbox SET published_at = ");
            query.push_bind(self.clock.now()).push(" WHERE id IN (");
            crate::events::push_list!(query, ids);
            query.push(")");
            query.build().execute(pool).await?;
            Ok(())
        })
    }

    async fn store_notifications(&self, notifications: &[NewNotification]) -> Result<()> {
        if notifications.is_empty() {
            return Ok(());
        }
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            for chunk in notifications.chunks(500) {
                let mut insert = sqlx::QueryBuilder::new(
                    "INSERT INTO notifications (id, message_id, recipient_id, notification_type, payload, created_at) ",
                );
                insert.push_values(chunk, |mut row, n| {
                    row.push_bind(n.id)
                        .push_bind(n.message_id)
                        .push_bind(n.recipient_id)
                        .push_bind(n.notification_type.clone())
                        .push_bind(Json(n.payload.clone()))
                        .push_bind(n.created_at);
                });
                insert.push(" ON CONFLICT (id) DO NOTHING");
                insert.build().execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    async fn list_notifications(
        &self,
        user_id: Uuid,
        unread_only: bool,
        page: &PageRequest<Uuid>,
    ) -> Result<Vec<Notification>> {
        on_pool!(self, pool => {
            let mut query = sqlx::QueryBuilder::new("SELECT * FROM (");
            visible_to!(query, user_id);
            query.push(") visible WHERE 1 = 1");
            if unread_only {
                query.push(" AND NOT read");
            }
            if let Some(after) = &page.after {
                query.push(" AND id < ").push_bind(after.id);
            }
            query.push(" ORDER BY id DESC LIMIT ").push_bind(page.fetch_limit());
            Ok(query.build_query_as().fetch_all(pool).await?)
        })
    }

    async fn notifications_after(
        &self,
        user_id: Uuid,
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<Notification>> {
        on_pool!(self, pool => {
            let mut query = sqlx::QueryBuilder::new("");
            visible_to!(query, user_id);
            if let Some(after) = after {
                query.push(" AND n.id > ").push_bind(after);
            }
            query.push(" ORDER BY n.id LIMIT ").push_bind(limit);
            Ok(query.build_query_as().fetch_all(pool).await?)
        })
    }

    async fn mark_read(&self, user_id: Uuid, id: Uuid) -> Result<()> {
        on_pool!(self, pool => {
            let mut query = sqlx::QueryBuilder::new("");
            visible_to!(query, user_id).push(" AND n.id = ").push_bind(id);
            let visible: Option<Notification> = query.build_query_as().fetch_optional(pool).await?;
            if visible.is_none() {
                return Err(StoreError::NotFound);
            }
            sqlx::query("INSERT INTO notification_reads (user_id, notification_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(user_id)
                .bind(id)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    async fn mark_all_read(&self, user_id: Uuid) -> Result<()> {
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let mut query = sqlx::QueryBuilder::new("SELECT id FROM (");
            visible_to!(query, user_id).push(") visible ORDER BY id DESC LIMIT 1");
            let newest: Option<Uuid> = query.build_query_scalar().fetch_optional(&mut *tx).await?;
            if let Some(newest) = newest {
                sqlx::query("UPDATE users SET notifications_read_until = $2 WHERE id = $1")
                    .bind(user_id)
                    .bind(newest)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("DELETE FROM notification_reads WHERE user_id = $1 AND notification_id <= $2")
                    .bind(user_id)
                    .bind(newest)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }
}
