//! The JSON shapes of the API (field names fixed by API.md).

use chrono::{DateTime, Utc};
use domain::page::Page;
use serde::Serialize;
use services::accounts::TokenPair;
use store::accounts::User;
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    pub id: Uuid,
    pub email: String,
    pub username: String,
    pub full_name: Option<String>,
    pub display_name: Option<String>,
    #[schema(example = "customer")]
    pub role: &'static str,
    pub is_active: bool,
    pub is_verified: bool,
    pub weight: f64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<User> for UserView {
    fn from(user: User) -> Self {
        UserView {
            id: user.id,
            email: user.email,
            username: user.username,
            full_name: user.full_name,
            display_name: user.display_name,
            role: user.role.as_str(),
            is_active: user.is_active,
            is_verified: user.is_verified,
            weight: user.weight,
            created_at: user.created_at,
            updated_at: user.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokensView {
    pub access_token: String,
    pub refresh_token: String,
    #[schema(example = "bearer")]
    pub token_type: &'static str,
    #[schema(example = 1800)]
    pub expires_in: u64,
}

impl From<TokenPair> for TokensView {
    fn from(pair: TokenPair) -> Self {
        TokensView {
            access_token: pair.access_token,
            refresh_token: pair.refresh_token,
            token_type: pair.token_type,
            expires_in: pair.expires_in,
        }
    }
}

/// A cursor page of `T`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PageView<T> {
    pub data: Vec<T>,
    pub next_cursor: Option<String>,
    pub has_more: bool,
}

impl<T> PageView<T> {
    pub fn from_page<U>(page: Page<U>, f: impl FnMut(U) -> T) -> Self {
        let page = page.map(f);
        PageView {
            data: page.data,
            next_cursor: page.next_cursor,
            has_more: page.has_more,
        }
    }
}
