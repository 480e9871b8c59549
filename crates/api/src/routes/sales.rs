//! The purchase path and orders.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{Auth, ClientIp, OptionalJson, Path, Query};
use crate::routes::catalog::PageQuery;
use crate::state::AppState;
use crate::views::{OrderView, PageView};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(purchase))
        .routes(routes!(confirm))
        .routes(routes!(cancel))
        .routes(routes!(get_order))
        .routes(routes!(my_orders))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PurchaseRequest {
    /// Units to reserve (default 1).
    #[serde(default = "one")]
    quantity: i64,
}

impl Default for PurchaseRequest {
    fn default() -> Self {
        PurchaseRequest { quantity: one() }
    }
}

fn one() -> i64 {
    1
}

/// Reserves units of an event item: 201 a `reserved` order with
/// `expires_at`; 200 the earlier order for a repeated Idempotency-Key.
#[utoipa::path(post, path = "/api/v1/purchase/{id}", tag = "sales",
    params(("id" = Uuid, Path, description = "the event item"),
        ("Idempotency-Key" = Option<String>, Header, description = "repeat-safe key: the same key gives the same order")),
    request_body(content = Option<PurchaseRequest>),
    responses((status = 201, body = OrderView), (status = 200, body = OrderView),
        (status = 409, body = Problem, description = "sold_out, limit_reached or event_not_live"),
        (status = 429, body = Problem)),
    security(("bearer" = [])))]
async fn purchase(
    State(state): State<AppState>,
    ip: ClientIp,
    Auth(principal): Auth,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
    OptionalJson(body): OptionalJson<PurchaseRequest>,
) -> ApiResult<(StatusCode, axum::Json<OrderView>)> {
    if let Err(wait) = state.limits.purchase.check(ip.0).await {
        metrics::counter!("swiftdrop_rate_limited_total", "limit" => "purchase").increment(1);
        return Err(ApiError::rate_limited(wait.seconds()));
    }
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .map_err(|_| ApiError::invalid("Idempotency-Key", "must be printable ASCII"))?
                .to_owned(),
        ),
    };
    let purchase = state.sales.purchase(&principal, id, body.quantity, key).await?;
    let status = if purchase.replayed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, axum::Json(purchase.order.into())))
}

/// Confirms (pays) a reservation: 409 `reservation_expired` after its hold.
#[utoipa::path(post, path = "/api/v1/purchase/{id}/confirm", tag = "sales", params(("id" = Uuid, Path, description = "the order")),
    responses((status = 200, body = OrderView), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
async fn confirm(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<OrderView>> {
    Ok(axum::Json(state.sales.confirm(&principal, id).await?.into()))
}

/// Cancels an order; its stock is buyable again at once.
#[utoipa::path(post, path = "/api/v1/purchase/{id}/cancel", tag = "sales", params(("id" = Uuid, Path, description = "the order")),
    responses((status = 200, body = OrderView), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
async fn cancel(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<OrderView>> {
    Ok(axum::Json(state.sales.cancel(&principal, id).await?.into()))
}

/// One order: its owner or an admin (404 for anyone else).
#[utoipa::path(get, path = "/api/v1/orders/{id}", tag = "sales", params(("id" = Uuid, Path)),
    responses((status = 200, body = OrderView), (status = 404, body = Problem)), security(("bearer" = [])))]
async fn get_order(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<OrderView>> {
    Ok(axum::Json(state.sales.order(&principal, id).await?.into()))
}

/// The caller's orders, newest first.
#[utoipa::path(get, path = "/api/v1/profile/orders", tag = "profile", params(PageQuery),
    responses((status = 200, body = PageView<OrderView>), (status = 401, body = Problem)), security(("bearer" = [])))]
async fn my_orders(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Query(query): Query<PageQuery>,
) -> ApiResult<axum::Json<PageView<OrderView>>> {
    let page = state
        .sales
        .my_orders(&principal, query.limit, query.cursor.as_deref())
        .await?;
    Ok(axum::Json(PageView::from_page(page, OrderView::from)))
}
