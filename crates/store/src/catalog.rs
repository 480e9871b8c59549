//! Products, tags, reviews, wishlists and upload records.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::catalog::{Product, ProductInput, Review, WishlistEntry, name_key};
use domain::page::PageRequest;
use serde::Serialize;
use sqlx::types::Json;
use uuid::Uuid;

use crate::db::{BeginWrite, contains_pattern};
use crate::events::push_list;
use crate::tx::{Tagged, TransactionSteps};
use crate::{Backend, Result, SqlStore, Store, StoreError};

const PRODUCT_COLUMNS: &str = "id, name, name_key, description, category, tags, price_cents, currency, image_url, \
     average_rating, review_count, created_at, updated_at";

/// The orders products can be listed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProductSort {
    CreatedAt,
    Price,
    Rating,
    Name,
}

impl ProductSort {
    pub fn parse(value: &str) -> Option<ProductSort> {
        match value {
            "created_at" => Some(ProductSort::CreatedAt),
            "price" => Some(ProductSort::Price),
            "rating" => Some(ProductSort::Rating),
            "name" => Some(ProductSort::Name),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ProductSort::CreatedAt => "created_at",
            ProductSort::Price => "price",
            ProductSort::Rating => "rating",
            ProductSort::Name => "name",
        }
    }

    /// The SQL expression sorted on; each has a matching index.
    fn expression(self) -> &'static str {
        match self {
            ProductSort::CreatedAt => "created_at",
            ProductSort::Price => "price_cents",
            ProductSort::Rating => "average_rating",
            ProductSort::Name => "name_key",
        }
    }

    /// The sort key of a product, as the keyset compares it.
    pub fn key_of(self, product: &Product) -> SortKey {
        match self {
            ProductSort::CreatedAt => SortKey::Time(product.created_at),
            ProductSort::Price => SortKey::Int(product.price_cents),
            ProductSort::Rating => SortKey::Float(product.average_rating),
            ProductSort::Name => SortKey::Text(product.name_key.clone()),
        }
    }

    /// Reads a key from a cursor, with the type this order sorts on.
    pub fn key_from_json(self, value: serde_json::Value) -> Option<SortKey> {
        match self {
            ProductSort::CreatedAt => serde_json::from_value(value).ok().map(SortKey::Time),
            ProductSort::Price => value.as_i64().map(SortKey::Int),
            ProductSort::Rating => value.as_f64().map(SortKey::Float),
            ProductSort::Name => value.as_str().map(|s| SortKey::Text(s.to_owned())),
        }
    }
}

/// A sort key value in a keyset position.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum SortKey {
    Int(i64),
    Float(f64),
    Time(DateTime<Utc>),
    Text(String),
}

#[derive(Debug, Default, Clone)]
pub struct ProductFilter {
    pub search: Option<String>,
    pub category: Option<String>,
    pub tag: Option<String>,
    pub min_price: Option<i64>,
    pub max_price: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct ProductListing {
    pub filter: ProductFilter,
    pub sort: ProductSort,
    pub descending: bool,
    pub page: PageRequest<SortKey>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upserted {
    Created,
    Updated,
}

#[derive(Debug, Clone)]
pub struct ReviewSummary {
    pub count: i64,
    pub rating_sum: i64,
    /// Reviews per rating, index 0 for rating 1.
    pub histogram: [i64; 5],
}

#[derive(Debug, Clone)]
pub struct ProductStats {
    pub total: i64,
    pub rating_sum: i64,
    pub review_count: i64,
    pub highest_priced: Option<Product>,
    pub recent: Vec<Product>,
}

pub struct NewUpload {
    pub key: String,
    pub content_type: String,
    pub size_bytes: i64,
    pub user_id: Uuid,
}

#[async_trait]
pub trait CatalogStore {
    async fn create_product(&self, product: ProductInput) -> Result<Product>;
    /// Inserts products in one transaction (seeding, imports); their ids.
    async fn create_products(&self, products: &[ProductInput]) -> Result<Vec<Uuid>>;
    async fn update_product(&self, id: Uuid, product: ProductInput) -> Result<Product>;
    async fn delete_product(&self, id: Uuid) -> Result<()>;
    /// A product that is not deleted.
    async fn product(&self, id: Uuid) -> Result<Product>;
    async fn list_products(&self, listing: &ProductListing) -> Result<Vec<Product>>;
    /// The names of these products, deleted ones included (an order keeps
    /// showing what was bought).
    async fn product_names(&self, ids: &[Uuid]) -> Result<Vec<(Uuid, String)>>;

    /// Creates or replaces the user's review and updates the product's
    /// rating in the same transaction.
    async fn upsert_review(
        &self,
        product_id: Uuid,
        user_id: Uuid,
        rating: i64,
        comment: Option<String>,
    ) -> Result<(Review, Upserted)>;
    async fn list_reviews(&self, product_id: Uuid, page: &PageRequest<DateTime<Utc>>) -> Result<Vec<Review>>;
    async fn review_summary(&self, product_id: Uuid) -> Result<ReviewSummary>;

    async fn add_to_wishlist(&self, user_id: Uuid, product_id: Uuid) -> Result<()>;
    async fn remove_from_wishlist(&self, user_id: Uuid, product_id: Uuid) -> Result<()>;
    async fn list_wishlist(
        &self,
        user_id: Uuid,
        page: &PageRequest<DateTime<Utc>>,
    ) -> Result<Vec<WishlistEntry>>;

    async fn product_stats(&self) -> Result<ProductStats>;
    async fn record_upload(&self, upload: NewUpload) -> Result<()>;
}

/// Binds a sort key with its own type, so comparisons run on numbers,
/// times and text as the column holds them.
macro_rules! push_key {
    ($query:expr, $key:expr) => {
        match $key {
            SortKey::Int(v) => $query.push_bind(*v),
            SortKey::Float(v) => $query.push_bind(*v),
            SortKey::Time(v) => $query.push_bind(*v),
            SortKey::Text(v) => $query.push_bind(v.clone()),
        }
    };
}

#[async_trait]
impl CatalogStore for SqlStore {
    async fn create_product(&self, product: ProductInput) -> Result<Product> {
        let ids = self.create_products(std::slice::from_ref(&product)).await?;
        let id = ids.first().copied().ok_or(StoreError::NotFound)?;
        self.product(id).await
    }

    async fn create_products(&self, products: &[ProductInput]) -> Result<Vec<Uuid>> {
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let mut ids = Vec::with_capacity(products.len());
            for product in products {
                let id = Uuid::now_v7();
                let now = self.clock.now();
                sqlx::query(
                    "INSERT INTO products (id, name, description, category, tags, price_cents, currency, \
                     image_url, created_at, updated_at, name_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10)",
                )
                .bind(id)
                .bind(&product.name)
                .bind(&product.description)
                .bind(&product.category)
                .bind(Json(&product.tags))
                .bind(product.price_cents)
                .bind(&product.currency)
                .bind(&product.image_url)
                .bind(now)
                .bind(name_key(&product.name))
                .execute(&mut *tx)
                .await?;
                tx.replace_tags(Tagged::Product, id, &product.tags).await?;
                ids.push(id);
            }
            tx.commit().await?;
            Ok(ids)
        })
    }

    async fn update_product(&self, id: Uuid, product: ProductInput) -> Result<Product> {
        let sql = format!(
            "UPDATE products SET name = $2, description = $3, category = $4, tags = $5, price_cents = $6, \
             currency = $7, image_url = $8, updated_at = $9, name_key = $10 WHERE id = $1 AND deleted_at IS NULL \
             RETURNING {PRODUCT_COLUMNS}"
        );
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let updated: Product = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(id)
                .bind(&product.name)
                .bind(&product.description)
                .bind(&product.category)
                .bind(Json(&product.tags))
                .bind(product.price_cents)
                .bind(&product.currency)
                .bind(&product.image_url)
                .bind(self.clock.now())
                .bind(name_key(&product.name))
                .fetch_one(&mut *tx)
                .await?;
            tx.replace_tags(Tagged::Product, id, &product.tags).await?;
            tx.commit().await?;
            Ok(updated)
        })
    }

    async fn delete_product(&self, id: Uuid) -> Result<()> {
        on_pool!(self, pool => {
            let done = sqlx::query("UPDATE products SET deleted_at = $2 WHERE id = $1 AND deleted_at IS NULL")
                .bind(id)
                .bind(self.clock.now())
                .execute(pool)
                .await?;
            if done.rows_affected() == 0 { Err(StoreError::NotFound) } else { Ok(()) }
        })
    }

    async fn product(&self, id: Uuid) -> Result<Product> {
        let sql = format!("SELECT {PRODUCT_COLUMNS} FROM products WHERE id = $1 AND deleted_at IS NULL");
        on_pool!(self, pool => Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_one(pool)
            .await?))
    }

    async fn product_names(&self, ids: &[Uuid]) -> Result<Vec<(Uuid, String)>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        on_pool!(self, pool => {
            let mut query = sqlx::QueryBuilder::new("SELECT id, name FROM products WHERE id IN (");
            push_list!(query, ids);
            query.push(")");
            Ok(query.build_query_as().fetch_all(pool).await?)
        })
    }

    async fn list_products(&self, listing: &ProductListing) -> Result<Vec<Product>> {
        let filter = &listing.filter;
        let key = listing.sort.expression();
        let (direction, comparison) = if listing.descending {
            ("DESC", "<")
        } else {
            ("ASC", ">")
        };
        let fts_search = self.backend() == Backend::Sqlite;
        on_pool!(self, pool => {
            let mut query = sqlx::QueryBuilder::new(format!(
                "SELECT {PRODUCT_COLUMNS} FROM products WHERE deleted_at IS NULL"
            ));
            if let Some(category) = &filter.category {
                query.push(" AND category = ").push_bind(category.clone());
            }
            if let Some(tag) = &filter.tag {
                // A correlated probe, so the page still walks the sort index in order.
                query
                    .push(" AND EXISTS (SELECT 1 FROM product_tags t WHERE t.product_id = products.id AND t.tag = ")
                    .push_bind(tag.clone())
                    .push(")");
            }
            if let Some(min) = filter.min_price {
                query.push(" AND price_cents >= ").push_bind(min);
            }
            if let Some(max) = filter.max_price {
                query.push(" AND price_cents <= ").push_bind(max);
            }
            if let Some(search) = filter.search.as_deref() {
                push_search(&mut query, fts_search, search);
            }
            if let Some(after) = &listing.page.after {
                query.push(format!(" AND ({key}, id) {comparison} ("));
                push_key!(query, &after.key);
                query.push(", ").push_bind(after.id).push(")");
            }
            query
                .push(format!(" ORDER BY {key} {direction}, id {direction} LIMIT "))
                .push_bind(listing.page.fetch_limit());
            Ok(query.build_query_as().fetch_all(pool).await?)
        })
    }

    async fn upsert_review(
        &self,
        product_id: Uuid,
        user_id: Uuid,
        rating: i64,
        comment: Option<String>,
    ) -> Result<(Review, Upserted)> {
        let now = self.clock.now();
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            // Writing the product row first locks it (a row lock on
            // PostgreSQL, the write lock on SQLite): concurrent reviews of
            // one product apply one at a time, so the sums stay exact.
            let locked = sqlx::query("UPDATE products SET review_count = review_count WHERE id = $1 AND deleted_at IS NULL")
                .bind(product_id)
                .execute(&mut *tx)
                .await?;
            if locked.rows_affected() == 0 {
                return Err(StoreError::NotFound);
            }
            let previous: Option<(Uuid, i64)> =
                sqlx::query_as("SELECT id, rating FROM reviews WHERE product_id = $1 AND user_id = $2")
                    .bind(product_id)
                    .bind(user_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            let (review_id, delta_sum, delta_count, outcome) = match previous {
                Some((id, old)) => {
                    sqlx::query("UPDATE reviews SET rating = $2, comment = $3, updated_at = $4 WHERE id = $1")
                        .bind(id)
                        .bind(rating)
                        .bind(&comment)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    (id, rating - old, 0_i64, Upserted::Updated)
                }
                None => {
                    let id = Uuid::now_v7();
                    sqlx::query(
                        "INSERT INTO reviews (id, product_id, user_id, rating, comment, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $6)",
                    )
                    .bind(id)
                    .bind(product_id)
                    .bind(user_id)
                    .bind(rating)
                    .bind(&comment)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    (id, rating, 1_i64, Upserted::Created)
                }
            };
            let (sum, count): (i64, i64) = sqlx::query_as(
                "SELECT rating_sum + $2, review_count + $3 FROM products WHERE id = $1",
            )
            .bind(product_id)
            .bind(delta_sum)
            .bind(delta_count)
            .fetch_one(&mut *tx)
            .await?;
            sqlx::query("UPDATE products SET rating_sum = $2, review_count = $3, average_rating = $4 WHERE id = $1")
                .bind(product_id)
                .bind(sum)
                .bind(count)
                .bind(domain::catalog::average_rating(sum, count))
                .execute(&mut *tx)
                .await?;
            let review: Review = sqlx::query_as(REVIEW_BY_ID)
                .bind(review_id)
                .fetch_one(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok((review, outcome))
        })
    }

    async fn list_reviews(&self, product_id: Uuid, page: &PageRequest<DateTime<Utc>>) -> Result<Vec<Review>> {
        on_pool!(self, pool => {
            let mut query = sqlx::QueryBuilder::new(format!("{REVIEW_SELECT} WHERE r.product_id = "));
            query.push_bind(product_id);
            if let Some(after) = &page.after {
                query
                    .push(" AND (r.created_at, r.id) < (")
                    .push_bind(after.key)
                    .push(", ")
                    .push_bind(after.id)
                    .push(")");
            }
            query
                .push(" ORDER BY r.created_at DESC, r.id DESC LIMIT ")
                .push_bind(page.fetch_limit());
            Ok(query.build_query_as().fetch_all(pool).await?)
        })
    }

    async fn review_summary(&self, product_id: Uuid) -> Result<ReviewSummary> {
        on_pool!(self, pool => {
            let counts: Vec<(i64, i64)> =
                sqlx::query_as("SELECT rating, COUNT(*) FROM reviews WHERE product_id = $1 GROUP BY rating")
                    .bind(product_id)
                    .fetch_all(pool)
                    .await?;
            let mut summary = ReviewSummary { count: 0, rating_sum: 0, histogram: [0; 5] };
            for (rating, count) in counts {
                if let Some(slot) = usize::try_from(rating - 1).ok().and_then(|i| summary.histogram.get_mut(i)) {
                    *slot = count;
                    summary.count += count;
                    summary.rating_sum += rating * count;
                }
            }
            Ok(summary)
        })
    }

    async fn add_to_wishlist(&self, user_id: Uuid, product_id: Uuid) -> Result<()> {
        on_pool!(self, pool => {
            let done = sqlx::query(
                "INSERT INTO wishlist_items (user_id, product_id, added_at) \
                 SELECT $1, id, $3 FROM products WHERE id = $2 AND deleted_at IS NULL \
                 ON CONFLICT (user_id, product_id) DO NOTHING",
            )
            .bind(user_id)
            .bind(product_id)
            .bind(self.clock.now())
            .execute(pool)
            .await?;
            if done.rows_affected() == 0 {
                // Either already there (fine) or no such product (404).
                let present: bool = sqlx::query_scalar(
                    "SELECT EXISTS (SELECT 1 FROM wishlist_items WHERE user_id = $1 AND product_id = $2)",
                )
                .bind(user_id)
                .bind(product_id)
                .fetch_one(pool)
                .await?;
                if !present {
                    return Err(StoreError::NotFound);
                }
            }
            Ok(())
        })
    }

    async fn remove_from_wishlist(&self, user_id: Uuid, product_id: Uuid) -> Result<()> {
        on_pool!(self, pool => {
            sqlx::query("DELETE FROM wishlist_items WHERE user_id = $1 AND product_id = $2")
                .bind(user_id)
                .bind(product_id)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    async fn list_wishlist(
        &self,
        user_id: Uuid,
        page: &PageRequest<DateTime<Utc>>,
    ) -> Result<Vec<WishlistEntry>> {
        let columns = PRODUCT_COLUMNS
            .split(", ")
            .map(|c| format!("p.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        on_pool!(self, pool => {
            let mut query = sqlx::QueryBuilder::new(format!(
                "SELECT {columns}, w.added_at FROM wishlist_items w JOIN products p ON p.id = w.product_id \
                 WHERE p.deleted_at IS NULL AND w.user_id = "
            ));
            query.push_bind(user_id);
            if let Some(after) = &page.after {
                query
                    .push(" AND (w.added_at, w.product_id) < (")
                    .push_bind(after.key)
                    .push(", ")
                    .push_bind(after.id)
                    .push(")");
            }
            query
                .push(" ORDER BY w.added_at DESC, w.product_id DESC LIMIT ")
                .push_bind(page.fetch_limit());
            Ok(query.build_query_as().fetch_all(pool).await?)
        })
    }

    async fn product_stats(&self) -> Result<ProductStats> {
        let top = format!(
            "SELECT {PRODUCT_COLUMNS} FROM products WHERE deleted_at IS NULL \
             ORDER BY price_cents DESC, id DESC LIMIT 1"
        );
        let recent = format!(
            "SELECT {PRODUCT_COLUMNS} FROM products WHERE deleted_at IS NULL \
             ORDER BY created_at DESC, id DESC LIMIT 5"
        );
        on_pool!(self, pool => {
            let (total, rating_sum, review_count): (i64, i64, i64) = sqlx::query_as(
                "SELECT COUNT(*), CAST(COALESCE(SUM(rating_sum), 0) AS BIGINT), \
                 CAST(COALESCE(SUM(review_count), 0) AS BIGINT) FROM products WHERE deleted_at IS NULL",
            )
            .fetch_one(pool)
            .await?;
            let highest_priced = sqlx::query_as(sqlx::AssertSqlSafe(top)).fetch_optional(pool).await?;
            let recent = sqlx::query_as(sqlx::AssertSqlSafe(recent)).fetch_all(pool).await?;
            Ok(ProductStats { total, rating_sum, review_count, highest_priced, recent })
        })
    }

    async fn record_upload(&self, upload: NewUpload) -> Result<()> {
        on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO uploads (key, content_type, size_bytes, user_id, created_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&upload.key)
            .bind(&upload.content_type)
            .bind(upload.size_bytes)
            .bind(upload.user_id)
            .bind(self.clock.now())
            .execute(pool)
            .await?;
            Ok(())
        })
    }
}

/// Case-insensitive substring search on name and description. On SQLite a
/// term of three or more characters goes through the FTS5 trigram index
/// (shorter ones cannot); on PostgreSQL the trigram GIN indexes serve the
/// `LIKE` directly.
fn push_search<DB: sqlx::Database>(query: &mut sqlx::QueryBuilder<DB>, fts: bool, term: &str)
where
    String: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    if fts && term.chars().count() >= 3 {
        let phrase = format!("{{name description}}: \"{}\"", term.replace('"', "\"\""));
        query
            .push(" AND rowid IN (SELECT rowid FROM products_search WHERE products_search MATCH ")
            .push_bind(phrase)
            .push(")");
    } else {
        let pattern = contains_pattern(term);
        query
            .push(" AND (lower(name) LIKE ")
            .push_bind(pattern.clone())
            .push(" ESCAPE '\\' OR lower(description) LIKE ")
            .push_bind(pattern)
            .push(" ESCAPE '\\')");
    }
}

const REVIEW_SELECT: &str = "SELECT r.id, r.product_id, r.user_id, u.username, r.rating, r.comment, \
     r.created_at, r.updated_at FROM reviews r JOIN users u ON u.id = r.user_id";
const REVIEW_BY_ID: &str = "SELECT r.id, r.product_id, r.user_id, u.username, r.rating, r.comment, \
     r.created_at, r.updated_at FROM reviews r JOIN users u ON u.id = r.user_id WHERE r.id = $1";
