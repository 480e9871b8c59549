//! Accounts: registration, login, token rotation, logout, password change,
//! profiles and the admin's user management.

mod cache;
pub mod passwords;
pub mod session;
pub mod tokens;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::ValidationErrors;
use domain::clock::Clock;
use domain::cursor::CursorCodec;
use domain::page::{Page, Position, page_from_rows, page_request};
use domain::user::{
    self, AdminUpdate, NewUser, Permission, ProfileUpdate, Role, User, UserCounts, UserFilter,
};
use realtime::Bus;
use serde::Serialize;
use store::accounts::RefreshOutcome;
use store::{NewRefreshToken, Store, StoreError};
use uuid::Uuid;

pub use cache::{AuthCache, INVALIDATE_TOPIC};
use passwords::PasswordHasher;
pub use tokens::SigningKeys;
use tokens::{TokenKeys, hash_refresh_token, new_refresh_token};

use crate::{Error, Result};

/// Tunables of the account service.
#[derive(Debug, Clone)]
pub struct AccountSettings {
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    pub bcrypt_cost: u32,
    /// Password hashes allowed to run at once.
    pub hash_concurrency: usize,
    /// The longest a password hash may expect to wait for a thread; past
    /// that sign-ups and logins get 503 with the wait as `Retry-After`.
    pub hash_max_wait: Duration,
}

/// Who is calling, as established from a verified, unrevoked access token.
#[derive(Debug, Clone, Copy)]
pub struct Principal {
    pub user_id: Uuid,
    /// The user's current role (from the store, not the token, so a role
    /// change applies at once).
    pub role: Role,
    pub session_id: Uuid,
}

impl Principal {
    pub fn require(&self, permission: Permission) -> Result<()> {
        if self.role.allows(permission) {
            Ok(())
        } else {
            Err(Error::Forbidden("your role does not allow this"))
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
}

pub struct Registration {
    pub email: String,
    pub username: String,
    pub password: String,
    pub full_name: Option<String>,
}

pub struct AccountService {
    store: Arc<dyn Store>,
    bus: Arc<dyn Bus>,
    hasher: PasswordHasher,
    keys: TokenKeys,
    cache: Arc<AuthCache>,
    cursors: CursorCodec,
    clock: Clock,
    refresh_ttl: Duration,
}

impl AccountService {
    pub fn new(
        store: Arc<dyn Store>,
        bus: Arc<dyn Bus>,
        keys: &SigningKeys,
        cursors: CursorCodec,
        settings: &AccountSettings,
        clock: Clock,
    ) -> Result<Self> {
        Ok(AccountService {
            hasher: PasswordHasher::new(
                settings.bcrypt_cost,
                settings.hash_concurrency,
                settings.hash_max_wait,
            )?,
            keys: TokenKeys::new(keys, settings.access_ttl, clock.clone()),
            cache: Arc::new(AuthCache::new(store.clone(), settings.access_ttl, clock.clone())),
            store,
            bus,
            cursors,
            clock,
            refresh_ttl: settings.refresh_ttl,
        })
    }

    /// The cache, for the task that follows invalidations on the bus.
    pub fn auth_cache(&self) -> Arc<AuthCache> {
        self.cache.clone()
    }

    pub async fn register(&self, registration: Registration) -> Result<User> {
        self.create_user(registration, Role::Customer).await
    }

    /// Creates an account with any role: `register` for customers, the
    /// `admin create` command and the demo seed for admins.
    pub async fn create_user(&self, registration: Registration, role: Role) -> Result<User> {
        let full_name = registration
            .full_name
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty());
        let email = user::normalize_email(&registration.email);
        let username = registration.username.trim().to_owned();
        user::validate_registration(&email, &username, &registration.password, full_name.as_deref())?;
        let password_hash = self.hasher.hash(&registration.password).await?;
        let new_user = NewUser {
            email,
            username,
            full_name,
            password_hash,
            role,
            is_verified: false,
        };
        self.store.create_user(new_user).await.map_err(|err| match err {
            StoreError::Conflict("email") => Error::conflict("email_taken", "email is already registered"),
            StoreError::Conflict("username") => {
                Error::conflict("username_taken", "username is already taken")
            }
            other => other.into(),
        })
    }

    /// Logs in by username or email.
    pub async fn login(&self, login: &str, password: &str) -> Result<TokenPair> {
        let wrong = Error::Unauthorized("wrong username or password");
        let credentials = match self.store.user_by_login(login).await {
            Ok(credentials) => Some(credentials),
            Err(StoreError::NotFound) => None,
            Err(err) => return Err(err.into()),
        };
        let hash = credentials.as_ref().map(|c| c.password_hash.as_str());
        if !self.hasher.verify(password, hash).await? {
            return Err(wrong);
        }
        let Some(user) = credentials.map(|c| c.user) else {
            return Err(wrong);
        };
        if !user.is_active {
            return Err(Error::Unauthorized("account is deactivated"));
        }
        self.start_session(&user).await
    }

    async fn start_session(&self, user: &User) -> Result<TokenPair> {
        let session_id = Uuid::now_v7();
        let (refresh_token, refresh) = self.new_refresh();
        self.store.create_session(user.id, session_id, refresh).await?;
        self.token_pair(user.id, user.role, session_id, user.token_epoch, refresh_token)
    }

    fn new_refresh(&self) -> (String, NewRefreshToken) {
        let token = new_refresh_token();
        let stored = NewRefreshToken {
            id: Uuid::now_v7(),
            token_hash: hash_refresh_token(&token),
            expires_at: self.clock.now()
                + chrono::Duration::from_std(self.refresh_ttl).unwrap_or(chrono::Duration::days(30)),
        };
        (token, stored)
    }

    fn token_pair(
        &self,
        user_id: Uuid,
        role: Role,
        session_id: Uuid,
        epoch: i64,
        refresh_token: String,
    ) -> Result<TokenPair> {
        Ok(TokenPair {
            access_token: self.keys.issue(user_id, role, session_id, epoch)?,
            refresh_token,
            token_type: "bearer",
            expires_in: self.keys.access_ttl.as_secs(),
        })
    }

    /// Spends a refresh token for a new pair. Presenting a spent token again
    /// revokes its session: a thief and the owner cannot both keep it.
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenPair> {
        let invalid = Error::Unauthorized("invalid refresh token");
        let (next_token, next) = self.new_refresh();
        match self
            .store
            .rotate_refresh_token(&hash_refresh_token(refresh_token), next)
            .await?
        {
            RefreshOutcome::Rotated { user_id, session_id } => {
                let user = self.store.user_by_id(user_id).await?;
                if !user.is_active {
                    return Err(invalid);
                }
                self.token_pair(user.id, user.role, session_id, user.token_epoch, next_token)
            }
            RefreshOutcome::Reused { user_id, session_id } => {
                tracing::warn!(%user_id, %session_id, "refresh token reused: session revoked");
                self.cache.invalidate(self.bus.as_ref(), user_id).await;
                Err(invalid)
            }
            RefreshOutcome::Invalid => Err(invalid),
        }
    }

    /// Ends the caller's session, and the session of `refresh_token` when
    /// it is another of the caller's.
    pub async fn logout(&self, principal: &Principal, refresh_token: Option<&str>) -> Result<()> {
        self.store
            .revoke_session(principal.user_id, principal.session_id)
            .await?;
        if let Some(token) = refresh_token {
            let hash = hash_refresh_token(token);
            if let Some(session) = self
                .store
                .session_of_refresh_token(principal.user_id, &hash)
                .await?
            {
                self.store.revoke_session(principal.user_id, session).await?;
            }
        }
        self.cache.invalidate(self.bus.as_ref(), principal.user_id).await;
        Ok(())
    }

    /// Changes the password; every earlier token stops working and a fresh
    /// pair is returned.
    pub async fn change_password(
        &self,
        principal: &Principal,
        current: &str,
        new: &str,
    ) -> Result<TokenPair> {
        let current_hash = self.store.password_hash(principal.user_id).await?;
        let mut errors = ValidationErrors::new();
        errors.check("new_password", user::check_password(new));
        if new == current {
            errors.add("new_password", "must differ from the current password");
        }
        errors.into_result()?;
        if !self.hasher.verify(current, Some(&current_hash)).await? {
            return Err(Error::invalid("current_password", "is not your current password"));
        }
        let hash = self.hasher.hash(new).await?;
        let user = self.store.change_password(principal.user_id, &hash).await?;
        self.cache.invalidate(self.bus.as_ref(), user.id).await;
        self.start_session(&user).await
    }

    /// Resolves a bearer token to its caller: signature and expiry from the
    /// token, revocation from the cached state.
    pub async fn authenticate(&self, token: &str) -> Result<Principal> {
        let claims = self.keys.verify(token)?;
        let state = match self.cache.get(claims.sub).await {
            Ok(state) => state,
            Err(Error::NotFound) => return Err(Error::Unauthorized("invalid token")),
            Err(err) => return Err(err),
        };
        if !state.is_active {
            return Err(Error::Unauthorized("account is deactivated"));
        }
        if claims.epoch != state.token_epoch || state.revoked_sessions.contains(&claims.sid) {
            return Err(Error::Unauthorized("token revoked"));
        }
        Ok(Principal {
            user_id: claims.sub,
            role: state.role,
            session_id: claims.sid,
        })
    }

    pub async fn user(&self, id: Uuid) -> Result<User> {
        Ok(self.store.user_by_id(id).await?)
    }

    pub async fn update_profile(&self, principal: &Principal, update: ProfileUpdate) -> Result<User> {
        let mut errors = ValidationErrors::new();
        for (field, value) in [
            ("display_name", &update.display_name),
            ("full_name", &update.full_name),
        ] {
            if let Some(Some(value)) = value {
                errors.check(field, user::check_name(value.trim()));
            }
        }
        errors.into_result()?;
        Ok(self.store.update_profile(principal.user_id, update).await?)
    }

    pub async fn list_users(
        &self,
        filter: &UserFilter,
        limit: Option<i64>,
        cursor: Option<&str>,
    ) -> Result<Page<User>> {
        const SCOPE: &str = "users";
        let page = page_request::<DateTime<Utc>>(&self.cursors, SCOPE, limit, cursor)?;
        let rows = self.store.list_users(filter, &page).await?;
        Ok(page_from_rows(&self.cursors, SCOPE, page.limit, rows, |u| {
            Position {
                key: u.created_at,
                id: u.id,
            }
        }))
    }

    /// Users by kind, for the admin dashboard.
    pub async fn user_counts(&self) -> Result<UserCounts> {
        Ok(self.store.user_counts().await?)
    }

    pub async fn update_by_admin(
        &self,
        principal: &Principal,
        id: Uuid,
        update: AdminUpdate,
    ) -> Result<User> {
        // The last admin could otherwise lock everyone out of the console.
        if id == principal.user_id && update.role.is_some_and(|role| role != Role::Admin) {
            return Err(Error::conflict(
                "cannot_demote_self",
                "an admin cannot take away their own admin role",
            ));
        }
        if let Some(weight) = update.weight {
            user::check_weight(weight).map_err(|m| Error::invalid("weight", m))?;
        }
        let user = self.store.update_by_admin(id, update).await?;
        self.cache.invalidate(self.bus.as_ref(), id).await;
        Ok(user)
    }

    pub async fn set_active(&self, principal: &Principal, id: Uuid, active: bool) -> Result<User> {
        if !active && id == principal.user_id {
            return Err(Error::conflict(
                "cannot_deactivate_self",
                "an admin cannot deactivate their own account",
            ));
        }
        let user = self.store.set_active(id, active).await?;
        self.cache.invalidate(self.bus.as_ref(), id).await;
        Ok(user)
    }
}
