//! Products (browsing for everyone, editing for admins), reviews and the
//! caller's wishlist.

use axum::extract::State;
use axum::http::StatusCode;
use domain::catalog::ProductInput;
use serde::Deserialize;
use services::catalog::BrowseRequest;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::error::{ApiResult, Problem};
use crate::extract::{Admin, Auth, Json, Path, Query};
use crate::state::AppState;
use crate::views::{PageView, ProductView, ReviewSummaryView, ReviewView, WishlistItemView};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_products))
        .routes(routes!(get_product))
        .routes(routes!(create_product))
        .routes(routes!(update_product, delete_product))
        .routes(routes!(list_reviews, post_review))
        .routes(routes!(review_summary))
        .routes(routes!(wishlist))
        .routes(routes!(add_to_wishlist, remove_from_wishlist))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProductQuery {
    /// Case-insensitive text in the name or description.
    search: Option<String>,
    category: Option<String>,
    tag: Option<String>,
    /// Minimum price in cents, inclusive.
    min_price: Option<i64>,
    /// Maximum price in cents, inclusive.
    max_price: Option<i64>,
    /// `created_at` (default), `price`, `rating` or `name`.
    sort_by: Option<String>,
    /// `asc` or `desc` (default: desc for created_at, asc otherwise).
    sort_order: Option<String>,
    /// 1-100, default 20.
    limit: Option<i64>,
    cursor: Option<String>,
}

/// Products, filtered and sorted, as a cursor page stable under inserts.
#[utoipa::path(get, path = "/api/v1/products", tag = "catalog", params(ProductQuery),
    responses((status = 200, body = PageView<ProductView>), (status = 422, body = Problem)))]
async fn list_products(
    State(state): State<AppState>,
    Query(query): Query<ProductQuery>,
) -> ApiResult<axum::Json<PageView<ProductView>>> {
    let page = state
        .catalog
        .browse(BrowseRequest {
            search: query.search,
            category: query.category,
            tag: query.tag,
            min_price: query.min_price,
            max_price: query.max_price,
            sort_by: query.sort_by,
            sort_order: query.sort_order,
            limit: query.limit,
            cursor: query.cursor,
        })
        .await?;
    Ok(axum::Json(PageView::from_page(page, ProductView::from)))
}

/// One product; 404 when missing or deleted.
#[utoipa::path(get, path = "/api/v1/products/{id}", tag = "catalog", params(("id" = Uuid, Path)),
    responses((status = 200, body = ProductView), (status = 404, body = Problem)))]
async fn get_product(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<ProductView>> {
    Ok(axum::Json(state.catalog.product(id).await?.into()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductRequest {
    name: String,
    #[serde(default)]
    description: String,
    category: String,
    #[serde(default)]
    tags: Vec<String>,
    /// Price in minor units (cents).
    price_cents: i64,
    /// Three-letter currency code.
    currency: String,
    image_url: Option<String>,
}

impl From<ProductRequest> for ProductInput {
    fn from(body: ProductRequest) -> Self {
        ProductInput {
            name: body.name,
            description: body.description,
            category: body.category,
            tags: body.tags,
            price_cents: body.price_cents,
            currency: body.currency,
            image_url: body.image_url,
        }
    }
}

/// Creates a product.
#[utoipa::path(post, path = "/api/v1/admin/products", tag = "catalog", request_body = ProductRequest,
    responses((status = 201, body = ProductView), (status = 403, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn create_product(
    State(state): State<AppState>,
    Admin(_admin): Admin,
    Json(body): Json<ProductRequest>,
) -> ApiResult<(StatusCode, axum::Json<ProductView>)> {
    let product = state.catalog.create_product(body.into()).await?;
    Ok((StatusCode::CREATED, axum::Json(product.into())))
}

/// Replaces a product's fields.
#[utoipa::path(put, path = "/api/v1/admin/products/{id}", tag = "catalog", request_body = ProductRequest,
    params(("id" = Uuid, Path)),
    responses((status = 200, body = ProductView), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn update_product(
    State(state): State<AppState>,
    Admin(_admin): Admin,
    Path(id): Path<Uuid>,
    Json(body): Json<ProductRequest>,
) -> ApiResult<axum::Json<ProductView>> {
    Ok(axum::Json(
        state.catalog.update_product(id, body.into()).await?.into(),
    ))
}

/// Soft-deletes a product: it leaves lists, its orders and reviews stay.
#[utoipa::path(delete, path = "/api/v1/admin/products/{id}", tag = "catalog", params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = Problem)), security(("bearer" = [])))]
async fn delete_product(
    State(state): State<AppState>,
    Admin(_admin): Admin,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    state.catalog.delete_product(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// 1-100, default 20.
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// A product's reviews, newest first.
#[utoipa::path(get, path = "/api/v1/products/{id}/reviews", tag = "catalog",
    params(("id" = Uuid, Path), PageQuery),
    responses((status = 200, body = PageView<ReviewView>), (status = 404, body = Problem)))]
async fn list_reviews(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Query(query): Query<PageQuery>,
) -> ApiResult<axum::Json<PageView<ReviewView>>> {
    let page = state
        .catalog
        .reviews(id, query.limit, query.cursor.as_deref())
        .await?;
    Ok(axum::Json(PageView::from_page(page, ReviewView::from)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewRequest {
    /// 1 to 5.
    rating: i64,
    comment: Option<String>,
}

/// Reviews a product: 201 the first time, 200 when it replaces the caller's review.
#[utoipa::path(post, path = "/api/v1/products/{id}/reviews", tag = "catalog", request_body = ReviewRequest,
    params(("id" = Uuid, Path)),
    responses((status = 201, body = ReviewView), (status = 200, body = ReviewView), (status = 404, body = Problem),
        (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn post_review(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<Uuid>,
    Json(body): Json<ReviewRequest>,
) -> ApiResult<(StatusCode, axum::Json<ReviewView>)> {
    let (review, created) = state
        .catalog
        .review(id, principal.user_id, body.rating, body.comment)
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(review.into())))
}

/// Average, count and the 1-5 histogram of a product's reviews.
#[utoipa::path(get, path = "/api/v1/products/{id}/reviews/summary", tag = "catalog", params(("id" = Uuid, Path)),
    responses((status = 200, body = ReviewSummaryView), (status = 404, body = Problem)))]
async fn review_summary(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<ReviewSummaryView>> {
    Ok(axum::Json(state.catalog.rating_summary(id).await?.into()))
}

/// The caller's wishlist, most recently added first.
#[utoipa::path(get, path = "/api/v1/wishlist", tag = "catalog", params(PageQuery),
    responses((status = 200, body = PageView<WishlistItemView>), (status = 401, body = Problem)),
    security(("bearer" = [])))]
async fn wishlist(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Query(query): Query<PageQuery>,
) -> ApiResult<axum::Json<PageView<WishlistItemView>>> {
    let page = state
        .catalog
        .wishlist(principal.user_id, query.limit, query.cursor.as_deref())
        .await?;
    Ok(axum::Json(PageView::from_page(page, WishlistItemView::from)))
}

/// Adds a product to the caller's wishlist (idempotent).
#[utoipa::path(put, path = "/api/v1/wishlist/{product_id}", tag = "catalog", params(("product_id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = Problem)), security(("bearer" = [])))]
async fn add_to_wishlist(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(product_id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    state
        .catalog
        .add_to_wishlist(principal.user_id, product_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes a product from the caller's wishlist (idempotent).
#[utoipa::path(delete, path = "/api/v1/wishlist/{product_id}", tag = "catalog", params(("product_id" = Uuid, Path)),
    responses((status = 204)), security(("bearer" = [])))]
async fn remove_from_wishlist(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(product_id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    state
        .catalog
        .remove_from_wishlist(principal.user_id, product_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
