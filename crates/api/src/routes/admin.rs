//! Administration: users (the catalog and sales parts join as they land).

use axum::extract::State;
use axum::http::StatusCode;
use domain::user::Role;
use serde::{Deserialize, Serialize};
use store::accounts::{AdminUpdate, UserFilter};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{Admin, Json, Path, Query};
use crate::state::AppState;
use crate::views::{PageView, ProductView, UserView};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_users))
        .routes(routes!(update_user))
        .routes(routes!(deactivate_user))
        .routes(routes!(activate_user))
        .routes(routes!(dashboard))
        .routes(routes!(stock_ledger))
}

#[derive(Serialize, ToSchema)]
pub struct LedgerLineView {
    event_item_id: Uuid,
    stock_total: i64,
    stock_remaining: i64,
    /// Units held by reserved orders.
    reserved: i64,
    /// Units held by confirmed orders.
    confirmed: i64,
    /// `stock_remaining + reserved + confirmed == stock_total`.
    balanced: bool,
}

/// Audits a drop: per item, stock against the units its orders hold.
#[utoipa::path(get, path = "/api/v1/admin/events/{id}/stock", tag = "admin", params(("id" = Uuid, Path)),
    responses((status = 200, body = Vec<LedgerLineView>), (status = 404, body = Problem)), security(("bearer" = [])))]
async fn stock_ledger(
    State(state): State<AppState>,
    Admin(_admin): Admin,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<Vec<LedgerLineView>>> {
    let lines = state.sales.ledger(id).await?;
    Ok(axum::Json(
        lines
            .into_iter()
            .map(|l| LedgerLineView {
                balanced: l.stock_remaining + l.reserved + l.confirmed == l.stock_total,
                event_item_id: l.event_item_id,
                stock_total: l.stock_total,
                stock_remaining: l.stock_remaining,
                reserved: l.reserved,
                confirmed: l.confirmed,
            })
            .collect(),
    ))
}

#[derive(Serialize, ToSchema)]
pub struct ProductSummaryView {
    total: i64,
    /// Mean of every review of every listed product; null when none.
    average_rating: Option<f64>,
    highest_priced: Option<ProductView>,
    /// The five most recently added.
    recent: Vec<ProductView>,
}

#[derive(Serialize, ToSchema)]
pub struct UserSummaryView {
    total: i64,
    active: i64,
    admins: i64,
}

#[derive(Serialize, ToSchema)]
pub struct EventCountsView {
    scheduled: i64,
    live: i64,
    sold_out: i64,
    closed: i64,
    canceled: i64,
}

#[derive(Serialize, ToSchema)]
pub struct OrderCountsView {
    reserved: i64,
    confirmed: i64,
    canceled: i64,
    expired: i64,
}

#[derive(Serialize, ToSchema)]
pub struct SellThroughView {
    event_id: Uuid,
    title: String,
    sold: i64,
    stock_total: i64,
}

#[derive(Serialize, ToSchema)]
pub struct TopProductView {
    product_id: Uuid,
    name: String,
    units_sold: i64,
    revenue_cents: i64,
}

#[derive(Serialize, ToSchema)]
pub struct DashboardView {
    products: ProductSummaryView,
    events: EventCountsView,
    orders: OrderCountsView,
    /// Confirmed orders' value, in cents.
    revenue_cents: i64,
    /// Units sold of units offered, per drop (newest 20).
    sell_through: Vec<SellThroughView>,
    /// Best sellers by confirmed units (top 5).
    top_products: Vec<TopProductView>,
    users: UserSummaryView,
}

/// Catalog, sales and user figures, computed by aggregate queries.
#[utoipa::path(get, path = "/api/v1/admin/dashboard", tag = "admin",
    responses((status = 200, body = DashboardView), (status = 403, body = Problem)), security(("bearer" = [])))]
async fn dashboard(
    State(state): State<AppState>,
    Admin(_admin): Admin,
) -> ApiResult<axum::Json<DashboardView>> {
    let products = state.catalog.dashboard().await?;
    let (total, active, admins) = state.accounts.user_counts().await?;
    let sales = state.sales.stats().await?;
    let event = |status: &str| sales.events_by_status.get(status).copied().unwrap_or(0);
    let order = |status: &str| sales.orders_by_status.get(status).copied().unwrap_or(0);
    Ok(axum::Json(DashboardView {
        events: EventCountsView {
            scheduled: event("scheduled"),
            live: event("live"),
            sold_out: event("sold_out"),
            closed: event("closed"),
            canceled: event("canceled"),
        },
        orders: OrderCountsView {
            reserved: order("reserved"),
            confirmed: order("confirmed"),
            canceled: order("canceled"),
            expired: order("expired"),
        },
        revenue_cents: sales.revenue_cents,
        sell_through: sales
            .sell_through
            .iter()
            .map(|(event_id, title, sold, stock_total)| SellThroughView {
                event_id: *event_id,
                title: title.clone(),
                sold: *sold,
                stock_total: *stock_total,
            })
            .collect(),
        top_products: sales
            .top_products
            .iter()
            .map(|(product_id, name, units_sold, revenue_cents)| TopProductView {
                product_id: *product_id,
                name: name.clone(),
                units_sold: *units_sold,
                revenue_cents: *revenue_cents,
            })
            .collect(),
        products: ProductSummaryView {
            total: products.total,
            average_rating: products.average_rating,
            highest_priced: products.highest_priced.map(ProductView::from),
            recent: products.recent.into_iter().map(ProductView::from).collect(),
        },
        users: UserSummaryView {
            total,
            active,
            admins,
        },
    }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserListQuery {
    /// Part of a username, email or full name (case-insensitive).
    search: Option<String>,
    /// `customer` or `admin`.
    role: Option<String>,
    is_active: Option<bool>,
    /// 1-100, default 20.
    limit: Option<i64>,
    cursor: Option<String>,
}

fn parse_role(value: &str) -> Result<Role, ApiError> {
    Role::parse(value).ok_or_else(|| ApiError::invalid("role", "must be customer or admin"))
}

/// Users, newest first.
#[utoipa::path(get, path = "/api/v1/admin/users", tag = "admin", params(UserListQuery),
    responses((status = 200, body = PageView<UserView>), (status = 403, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn list_users(
    State(state): State<AppState>,
    Admin(_admin): Admin,
    Query(query): Query<UserListQuery>,
) -> ApiResult<axum::Json<PageView<UserView>>> {
    let filter = UserFilter {
        search: query.search,
        role: query.role.as_deref().map(parse_role).transpose()?,
        is_active: query.is_active,
    };
    let page = state
        .accounts
        .list_users(&filter, query.limit, query.cursor.as_deref())
        .await?;
    Ok(axum::Json(PageView::from_page(page, UserView::from)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserUpdateRequest {
    /// Auction weight (0 or more).
    weight: Option<f64>,
    /// `customer` or `admin`.
    role: Option<String>,
}

/// Sets a user's role and auction weight.
#[utoipa::path(put, path = "/api/v1/admin/users/{id}", tag = "admin", request_body = UserUpdateRequest,
    params(("id" = Uuid, Path)),
    responses((status = 200, body = UserView), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
async fn update_user(
    State(state): State<AppState>,
    Admin(_admin): Admin,
    Path(id): Path<Uuid>,
    Json(body): Json<UserUpdateRequest>,
) -> ApiResult<axum::Json<UserView>> {
    let update = AdminUpdate {
        role: body.role.as_deref().map(parse_role).transpose()?,
        weight: body.weight,
    };
    Ok(axum::Json(
        state.accounts.update_by_admin(id, update).await?.into(),
    ))
}

/// Deactivates a user; their tokens stop working at once.
#[utoipa::path(post, path = "/api/v1/admin/users/{id}/deactivate", tag = "admin", params(("id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
async fn deactivate_user(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    state.accounts.set_active(&admin, id, false).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Reactivates a user.
#[utoipa::path(post, path = "/api/v1/admin/users/{id}/activate", tag = "admin", params(("id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
async fn activate_user(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    state.accounts.set_active(&admin, id, true).await?;
    Ok(StatusCode::NO_CONTENT)
}
