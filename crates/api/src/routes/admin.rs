//! Administration: users (the catalog and sales parts join as they land).

use axum::extract::State;
use axum::http::StatusCode;
use domain::user::{AdminUpdate, Role, UserFilter};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{Admin, Json, Path, Query};
use crate::state::AppState;
use crate::views::{DashboardView, LedgerLineView, PageView, UserView};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_users))
        .routes(routes!(update_user))
        .routes(routes!(deactivate_user))
        .routes(routes!(activate_user))
        .routes(routes!(dashboard))
        .routes(routes!(stock_ledger))
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
    Ok(axum::Json(lines.into_iter().map(LedgerLineView::from).collect()))
}

/// Catalog, sales and user figures, computed by aggregate queries.
#[utoipa::path(get, path = "/api/v1/admin/dashboard", tag = "admin",
    responses((status = 200, body = DashboardView), (status = 403, body = Problem)), security(("bearer" = [])))]
async fn dashboard(
    State(state): State<AppState>,
    Admin(_admin): Admin,
) -> ApiResult<axum::Json<DashboardView>> {
    Ok(axum::Json(state.admin.dashboard().await?.into()))
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
    responses((status = 200, body = UserView), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "cannot_demote_self: an admin cannot take their own role")),
    security(("bearer" = [])))]
async fn update_user(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<Uuid>,
    Json(body): Json<UserUpdateRequest>,
) -> ApiResult<axum::Json<UserView>> {
    let update = AdminUpdate {
        role: body.role.as_deref().map(parse_role).transpose()?,
        weight: body.weight,
    };
    Ok(axum::Json(
        state.accounts.update_by_admin(&admin, id, update).await?.into(),
    ))
}

/// Deactivates a user; their tokens stop working at once.
#[utoipa::path(post, path = "/api/v1/admin/users/{id}/deactivate", tag = "admin", params(("id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "cannot_deactivate_self")),
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
