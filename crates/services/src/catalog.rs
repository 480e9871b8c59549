//! The catalog: products, browsing, reviews, wishlists and the product
//! side of the admin dashboard.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use domain::ValidationErrors;
use domain::catalog::{self, Product, ProductInput, Review, WishlistEntry};
use domain::cursor::CursorCodec;
use domain::page::{Page, PageRequest, Position, page_from_rows, page_request};
use serde::Serialize;
use store::Store;
use store::catalog::{ProductFilter, ProductListing, ProductSort, ReviewSummary, Upserted};
use uuid::Uuid;

use crate::{Error, Result};

/// A product list request as the client phrased it.
#[derive(Debug, Default, Clone)]
pub struct BrowseRequest {
    pub search: Option<String>,
    pub category: Option<String>,
    pub tag: Option<String>,
    pub min_price: Option<i64>,
    pub max_price: Option<i64>,
    pub sort_by: Option<String>,
    pub sort_order: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// Review counts for the summary endpoint.
#[derive(Debug, Clone, Serialize)]
pub struct RatingSummary {
    pub product_id: Uuid,
    /// Mean rating, 0 when unrated.
    pub average_rating: f64,
    pub count: i64,
    pub histogram: [i64; 5],
}

/// The product part of the admin dashboard.
#[derive(Debug, Clone)]
pub struct ProductDashboard {
    pub total: i64,
    /// Mean over every review of every listed product; none when unrated.
    pub average_rating: Option<f64>,
    pub highest_priced: Option<Product>,
    pub recent: Vec<Product>,
}

pub struct CatalogService {
    store: Arc<dyn Store>,
    cursors: CursorCodec,
}

impl CatalogService {
    pub fn new(store: Arc<dyn Store>, cursors: CursorCodec) -> Self {
        CatalogService { store, cursors }
    }

    pub async fn create_product(&self, input: ProductInput) -> Result<Product> {
        let product = catalog::validate_product(input)?;
        Ok(self.store.create_product(product).await?)
    }

    /// Validates and inserts many products at once.
    pub async fn import_products(&self, inputs: Vec<ProductInput>) -> Result<u64> {
        let products = inputs
            .into_iter()
            .map(catalog::validate_product)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(self.store.create_products(&products).await?.len() as u64)
    }

    /// How many products are listed (for seeding once).
    pub async fn product_count(&self) -> Result<i64> {
        Ok(self.store.product_stats().await?.total)
    }

    pub async fn update_product(&self, id: Uuid, input: ProductInput) -> Result<Product> {
        let product = catalog::validate_product(input)?;
        Ok(self.store.update_product(id, product).await?)
    }

    /// Soft delete: the product leaves lists and lookups; orders and
    /// reviews that point at it stay whole.
    pub async fn delete_product(&self, id: Uuid) -> Result<()> {
        Ok(self.store.delete_product(id).await?)
    }

    pub async fn product(&self, id: Uuid) -> Result<Product> {
        Ok(self.store.product(id).await?)
    }

    /// The names of these products, deleted ones included.
    pub async fn product_names(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, String>> {
        Ok(self.store.product_names(ids).await?.into_iter().collect())
    }

    pub async fn browse(&self, request: BrowseRequest) -> Result<Page<Product>> {
        let mut errors = ValidationErrors::new();
        let sort = match request.sort_by.as_deref() {
            None => ProductSort::CreatedAt,
            Some(value) => ProductSort::parse(value).unwrap_or_else(|| {
                errors.add("sort_by", "must be one of created_at, price, rating, name");
                ProductSort::CreatedAt
            }),
        };
        let descending = match request.sort_order.as_deref() {
            None => sort == ProductSort::CreatedAt,
            Some("asc") => false,
            Some("desc") => true,
            Some(_) => {
                errors.add("sort_order", "must be asc or desc");
                false
            }
        };
        for (field, value) in [("min_price", request.min_price), ("max_price", request.max_price)] {
            if let Some(price) = value {
                errors.check(field, catalog::check_price(price));
            }
        }
        if let (Some(min), Some(max)) = (request.min_price, request.max_price)
            && min > max
        {
            errors.add("max_price", "must not be below min_price");
        }
        errors.into_result()?;

        let scope = format!(
            "products:{}:{}",
            sort.as_str(),
            if descending { "desc" } else { "asc" }
        );
        let raw: PageRequest<serde_json::Value> =
            page_request(&self.cursors, &scope, request.limit, request.cursor.as_deref())?;
        let after = match raw.after {
            None => None,
            Some(position) => Some(Position {
                key: sort.key_from_json(position.key).ok_or_else(|| {
                    Error::invalid("cursor", "cursor is malformed or was not issued for this list")
                })?,
                id: position.id,
            }),
        };
        let clean = |value: Option<String>| value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let listing = ProductListing {
            filter: ProductFilter {
                search: clean(request.search),
                category: clean(request.category).map(|c| c.to_lowercase()),
                tag: clean(request.tag).map(|t| t.to_lowercase()),
                min_price: request.min_price,
                max_price: request.max_price,
            },
            sort,
            descending,
            page: PageRequest {
                limit: raw.limit,
                after,
            },
        };
        let rows = self.store.list_products(&listing).await?;
        Ok(page_from_rows(&self.cursors, &scope, raw.limit, rows, |p| {
            Position {
                key: sort.key_of(p),
                id: p.id,
            }
        }))
    }

    /// Creates the caller's review, or replaces it on a second call.
    pub async fn review(
        &self,
        product_id: Uuid,
        user_id: Uuid,
        rating: i64,
        comment: Option<String>,
    ) -> Result<(Review, bool)> {
        let comment = comment.map(|c| c.trim().to_owned()).filter(|c| !c.is_empty());
        catalog::validate_review(rating, comment.as_deref())?;
        let (review, outcome) = self
            .store
            .upsert_review(product_id, user_id, rating, comment)
            .await?;
        Ok((review, outcome == Upserted::Created))
    }

    pub async fn reviews(
        &self,
        product_id: Uuid,
        limit: Option<i64>,
        cursor: Option<&str>,
    ) -> Result<Page<Review>> {
        self.store.product(product_id).await?;
        let scope = format!("reviews:{product_id}");
        let page = page_request::<DateTime<Utc>>(&self.cursors, &scope, limit, cursor)?;
        let rows = self.store.list_reviews(product_id, &page).await?;
        Ok(page_from_rows(&self.cursors, &scope, page.limit, rows, |r| {
            Position {
                key: r.created_at,
                id: r.id,
            }
        }))
    }

    pub async fn rating_summary(&self, product_id: Uuid) -> Result<RatingSummary> {
        self.store.product(product_id).await?;
        let ReviewSummary {
            count,
            rating_sum,
            histogram,
        } = self.store.review_summary(product_id).await?;
        Ok(RatingSummary {
            product_id,
            average_rating: catalog::average_rating(rating_sum, count),
            count,
            histogram,
        })
    }

    pub async fn add_to_wishlist(&self, user_id: Uuid, product_id: Uuid) -> Result<()> {
        Ok(self.store.add_to_wishlist(user_id, product_id).await?)
    }

    pub async fn remove_from_wishlist(&self, user_id: Uuid, product_id: Uuid) -> Result<()> {
        Ok(self.store.remove_from_wishlist(user_id, product_id).await?)
    }

    pub async fn wishlist(
        &self,
        user_id: Uuid,
        limit: Option<i64>,
        cursor: Option<&str>,
    ) -> Result<Page<WishlistEntry>> {
        const SCOPE: &str = "wishlist";
        let page = page_request::<DateTime<Utc>>(&self.cursors, SCOPE, limit, cursor)?;
        let rows = self.store.list_wishlist(user_id, &page).await?;
        Ok(page_from_rows(&self.cursors, SCOPE, page.limit, rows, |w| {
            Position {
                key: w.added_at,
                id: w.product.id,
            }
        }))
    }

    pub async fn dashboard(&self) -> Result<ProductDashboard> {
        let stats = self.store.product_stats().await?;
        Ok(ProductDashboard {
            total: stats.total,
            average_rating: (stats.review_count > 0)
                .then(|| catalog::average_rating(stats.rating_sum, stats.review_count)),
            highest_priced: stats.highest_priced,
            recent: stats.recent,
        })
    }
}
