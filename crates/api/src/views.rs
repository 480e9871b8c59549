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

#[derive(Debug, Serialize, ToSchema)]
pub struct ProductView {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    pub category: String,
    pub tags: Vec<String>,
    pub price_cents: i64,
    #[schema(example = "EUR")]
    pub currency: String,
    pub image_url: Option<String>,
    /// Mean rating (0 when unrated).
    pub average_rating: f64,
    pub review_count: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<store::catalog::Product> for ProductView {
    fn from(product: store::catalog::Product) -> Self {
        ProductView {
            id: product.id,
            name: product.name,
            description: product.description,
            category: product.category,
            tags: product.tags.0,
            price_cents: product.price_cents,
            currency: product.currency,
            image_url: product.image_url,
            average_rating: product.average_rating,
            review_count: product.review_count,
            created_at: product.created_at,
            updated_at: product.updated_at,
        }
    }
}

/// A wishlisted product and when it was added.
#[derive(Debug, Serialize, ToSchema)]
pub struct WishlistItemView {
    #[serde(flatten)]
    pub product: ProductView,
    pub added_at: DateTime<Utc>,
}

impl From<store::catalog::WishlistEntry> for WishlistItemView {
    fn from(entry: store::catalog::WishlistEntry) -> Self {
        WishlistItemView {
            product: entry.product.into(),
            added_at: entry.added_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReviewView {
    pub id: Uuid,
    pub product_id: Uuid,
    pub user_id: Uuid,
    pub username: String,
    pub rating: i64,
    pub comment: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<store::catalog::Review> for ReviewView {
    fn from(review: store::catalog::Review) -> Self {
        ReviewView {
            id: review.id,
            product_id: review.product_id,
            user_id: review.user_id,
            username: review.username,
            rating: review.rating,
            comment: review.comment,
            created_at: review.created_at,
            updated_at: review.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReviewSummaryView {
    pub product_id: Uuid,
    pub average_rating: f64,
    pub count: i64,
    /// Reviews per rating: `{"1": n, ..., "5": n}`.
    #[schema(value_type = Object)]
    pub histogram: std::collections::BTreeMap<String, i64>,
}

impl From<services::catalog::RatingSummary> for ReviewSummaryView {
    fn from(summary: services::catalog::RatingSummary) -> Self {
        ReviewSummaryView {
            product_id: summary.product_id,
            average_rating: summary.average_rating,
            count: summary.count,
            histogram: (1..=5)
                .zip(summary.histogram)
                .map(|(rating, n)| (rating.to_string(), n))
                .collect(),
        }
    }
}
