//! Users, login sessions and refresh tokens.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::page::PageRequest;
use domain::user::{
    AdminUpdate, AuthState, Credentials, NewUser, ProfileUpdate, Role, User, UserCounts, UserFilter,
};
use uuid::Uuid;

use crate::db::{BeginWrite, contains_pattern};
use crate::tx::{NewRefreshToken, TransactionSteps};
use crate::{Result, SqlStore, StoreError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// The token was current: it is now spent and its successor stored.
    Rotated { user_id: Uuid, session_id: Uuid },
    /// The token had already been spent: someone replayed it, so its whole
    /// session is revoked.
    Reused { user_id: Uuid, session_id: Uuid },
    /// Unknown, expired, or from a revoked session.
    Invalid,
}

#[async_trait]
pub trait AccountStore {
    async fn create_user(&self, user: NewUser) -> Result<User>;
    async fn user_by_id(&self, id: Uuid) -> Result<User>;
    /// Finds a user and their password hash by email (when `login` holds an
    /// `@`) or by username, case-insensitively.
    async fn user_by_login(&self, login: &str) -> Result<Credentials>;
    /// The password hash of a user, to check their current password.
    async fn password_hash(&self, id: Uuid) -> Result<String>;
    async fn update_profile(&self, id: Uuid, update: ProfileUpdate) -> Result<User>;
    async fn update_by_admin(&self, id: Uuid, update: AdminUpdate) -> Result<User>;
    /// Sets a new password hash, moves the user to a new token epoch and
    /// revokes every session.
    async fn change_password(&self, id: Uuid, password_hash: &str) -> Result<User>;
    /// Deactivation also moves the user to a new token epoch.
    async fn set_active(&self, id: Uuid, active: bool) -> Result<User>;
    async fn list_users(&self, filter: &UserFilter, page: &PageRequest<DateTime<Utc>>) -> Result<Vec<User>>;
    async fn auth_state(&self, user_id: Uuid, revoked_since: DateTime<Utc>) -> Result<AuthState>;
    /// Users by kind, counted by the database.
    async fn user_counts(&self) -> Result<UserCounts>;

    async fn create_session(&self, user_id: Uuid, session_id: Uuid, refresh: NewRefreshToken) -> Result<()>;
    async fn rotate_refresh_token(&self, token_hash: &str, next: NewRefreshToken) -> Result<RefreshOutcome>;
    async fn revoke_session(&self, user_id: Uuid, session_id: Uuid) -> Result<()>;
    /// The session a refresh token belongs to, if it belongs to `user_id`.
    async fn session_of_refresh_token(&self, user_id: Uuid, token_hash: &str) -> Result<Option<Uuid>>;
}

const USER_COLUMNS: &str = "id, email, username, full_name, display_name, role, \
     is_active, is_verified, weight, token_epoch, created_at, updated_at";

#[async_trait]
impl AccountStore for SqlStore {
    async fn create_user(&self, user: NewUser) -> Result<User> {
        let now = self.clock.now();
        let sql = format!(
            "INSERT INTO users (id, email, username, full_name, password_hash, role, is_verified, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING {USER_COLUMNS}"
        );
        on_pool!(self, pool => Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(Uuid::now_v7())
            .bind(&user.email)
            .bind(&user.username)
            .bind(&user.full_name)
            .bind(&user.password_hash)
            .bind(user.role.as_str())
            .bind(user.is_verified)
            .bind(now)
            .fetch_one(pool)
            .await?))
    }

    async fn user_by_id(&self, id: Uuid) -> Result<User> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
        on_pool!(self, pool => Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_one(pool)
            .await?))
    }

    async fn user_by_login(&self, login: &str) -> Result<Credentials> {
        let sql = if login.contains('@') {
            format!("SELECT {USER_COLUMNS}, password_hash FROM users WHERE email = lower($1)")
        } else {
            format!("SELECT {USER_COLUMNS}, password_hash FROM users WHERE lower(username) = lower($1)")
        };
        on_pool!(self, pool => Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(login.trim())
            .fetch_one(pool)
            .await?))
    }

    async fn password_hash(&self, id: Uuid) -> Result<String> {
        on_pool!(self, pool => Ok(sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1")
            .bind(id)
            .fetch_one(pool)
            .await?))
    }

    async fn update_profile(&self, id: Uuid, update: ProfileUpdate) -> Result<User> {
        let sql = format!(
            "UPDATE users SET \
               display_name = CASE WHEN $2 THEN $3 ELSE display_name END, \
               full_name = CASE WHEN $4 THEN $5 ELSE full_name END, \
               updated_at = $6 \
             WHERE id = $1 RETURNING {USER_COLUMNS}"
        );
        let (set_display, display) = split_update(update.display_name);
        let (set_full, full) = split_update(update.full_name);
        on_pool!(self, pool => Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .bind(set_display)
            .bind(display)
            .bind(set_full)
            .bind(full)
            .bind(self.clock.now())
            .fetch_one(pool)
            .await?))
    }

    async fn update_by_admin(&self, id: Uuid, update: AdminUpdate) -> Result<User> {
        let sql = format!(
            "UPDATE users SET role = COALESCE($2, role), weight = COALESCE($3, weight), updated_at = $4 \
             WHERE id = $1 RETURNING {USER_COLUMNS}"
        );
        on_pool!(self, pool => Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .bind(update.role.map(Role::as_str))
            .bind(update.weight)
            .bind(self.clock.now())
            .fetch_one(pool)
            .await?))
    }

    async fn change_password(&self, id: Uuid, password_hash: &str) -> Result<User> {
        let now = self.clock.now();
        let sql = format!(
            "UPDATE users SET password_hash = $2, token_epoch = token_epoch + 1, updated_at = $3 \
             WHERE id = $1 RETURNING {USER_COLUMNS}"
        );
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let user: User = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(id)
                .bind(password_hash)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
            sqlx::query("UPDATE sessions SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL")
                .bind(id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(user)
        })
    }

    async fn set_active(&self, id: Uuid, active: bool) -> Result<User> {
        let now = self.clock.now();
        let sql = format!(
            "UPDATE users SET is_active = $2, \
               token_epoch = CASE WHEN $2 THEN token_epoch ELSE token_epoch + 1 END, updated_at = $3 \
             WHERE id = $1 RETURNING {USER_COLUMNS}"
        );
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let user: User = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(id)
                .bind(active)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
            if !active {
                sqlx::query("UPDATE sessions SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL")
                    .bind(id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(user)
        })
    }

    async fn list_users(&self, filter: &UserFilter, page: &PageRequest<DateTime<Utc>>) -> Result<Vec<User>> {
        on_pool!(self, pool => {
            let mut query = sqlx::QueryBuilder::new(format!("SELECT {USER_COLUMNS} FROM users WHERE 1 = 1"));
            if let Some(search) = filter.search.as_deref().filter(|s| !s.trim().is_empty()) {
                let pattern = contains_pattern(search.trim());
                query
                    .push(" AND (lower(username) LIKE ")
                    .push_bind(pattern.clone())
                    .push(" ESCAPE '\\' OR email LIKE ")
                    .push_bind(pattern.clone())
                    .push(" ESCAPE '\\' OR lower(COALESCE(full_name, '')) LIKE ")
                    .push_bind(pattern)
                    .push(" ESCAPE '\\')");
            }
            if let Some(role) = filter.role {
                query.push(" AND role = ").push_bind(role.as_str());
            }
            if let Some(active) = filter.is_active {
                query.push(" AND is_active = ").push_bind(active);
            }
            if let Some(after) = &page.after {
                query
                    .push(" AND (created_at, id) < (")
                    .push_bind(after.key)
                    .push(", ")
                    .push_bind(after.id)
                    .push(")");
            }
            query
                .push(" ORDER BY created_at DESC, id DESC LIMIT ")
                .push_bind(page.fetch_limit());
            Ok(query.build_query_as().fetch_all(pool).await?)
        })
    }

    async fn auth_state(&self, user_id: Uuid, revoked_since: DateTime<Utc>) -> Result<AuthState> {
        on_pool!(self, pool => {
            let (role, is_active, token_epoch): (String, bool, i64) =
                sqlx::query_as("SELECT role, is_active, token_epoch FROM users WHERE id = $1")
                    .bind(user_id)
                    .fetch_one(pool)
                    .await?;
            let revoked_sessions: Vec<Uuid> =
                sqlx::query_scalar("SELECT id FROM sessions WHERE user_id = $1 AND revoked_at > $2")
                    .bind(user_id)
                    .bind(revoked_since)
                    .fetch_all(pool)
                    .await?;
            let role = Role::try_from(role).map_err(StoreError::Corrupt)?;
            Ok(AuthState { role, is_active, token_epoch, revoked_sessions })
        })
    }

    async fn user_counts(&self) -> Result<UserCounts> {
        on_pool!(self, pool => Ok(sqlx::query_as(
            "SELECT COUNT(*) AS total, \
               CAST(COALESCE(SUM(CASE WHEN is_active THEN 1 ELSE 0 END), 0) AS BIGINT) AS active, \
               CAST(COALESCE(SUM(CASE WHEN role = 'admin' THEN 1 ELSE 0 END), 0) AS BIGINT) AS admins \
             FROM users",
        )
        .fetch_one(pool)
        .await?))
    }

    async fn create_session(&self, user_id: Uuid, session_id: Uuid, refresh: NewRefreshToken) -> Result<()> {
        let now = self.clock.now();
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            sqlx::query("INSERT INTO sessions (id, user_id, created_at) VALUES ($1, $2, $3)")
                .bind(session_id)
                .bind(user_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            tx.insert_refresh_token(user_id, session_id, &refresh, now).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    async fn rotate_refresh_token(&self, token_hash: &str, next: NewRefreshToken) -> Result<RefreshOutcome> {
        let now = self.clock.now();
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            // Spending the token is the first write, so two racing refreshes
            // with one token cannot both succeed: the loser sees it spent.
            let spent: Option<(Uuid, Uuid)> = sqlx::query_as(
                "UPDATE refresh_tokens SET used_at = $2 \
                 WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 \
                   AND session_id IN (SELECT id FROM sessions WHERE revoked_at IS NULL) \
                 RETURNING user_id, session_id",
            )
            .bind(token_hash)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
            let outcome = match spent {
                Some((user_id, session_id)) => {
                    tx.insert_refresh_token(user_id, session_id, &next, now).await?;
                    RefreshOutcome::Rotated { user_id, session_id }
                }
                None => {
                    let replayed: Option<(Uuid, Uuid)> = sqlx::query_as(
                        "SELECT user_id, session_id FROM refresh_tokens \
                         WHERE token_hash = $1 AND used_at IS NOT NULL",
                    )
                    .bind(token_hash)
                    .fetch_optional(&mut *tx)
                    .await?;
                    match replayed {
                        Some((user_id, session_id)) => {
                            sqlx::query("UPDATE sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
                                .bind(session_id)
                                .bind(now)
                                .execute(&mut *tx)
                                .await?;
                            RefreshOutcome::Reused { user_id, session_id }
                        }
                        None => RefreshOutcome::Invalid,
                    }
                }
            };
            tx.commit().await?;
            Ok(outcome)
        })
    }

    async fn revoke_session(&self, user_id: Uuid, session_id: Uuid) -> Result<()> {
        on_pool!(self, pool => {
            sqlx::query("UPDATE sessions SET revoked_at = $3 WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL")
                .bind(session_id)
                .bind(user_id)
                .bind(self.clock.now())
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    async fn session_of_refresh_token(&self, user_id: Uuid, token_hash: &str) -> Result<Option<Uuid>> {
        on_pool!(self, pool => Ok(sqlx::query_scalar(
            "SELECT session_id FROM refresh_tokens WHERE token_hash = $1 AND user_id = $2",
        )
        .bind(token_hash)
        .bind(user_id)
        .fetch_optional(pool)
        .await?))
    }
}

/// `Some(value)` sets the column (a blank string clears it); `None` leaves it.
fn split_update(update: Option<Option<String>>) -> (bool, Option<String>) {
    match update {
        None => (false, None),
        Some(value) => (true, value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())),
    }
}
