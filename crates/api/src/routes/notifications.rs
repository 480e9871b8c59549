//! Notification history: the stored side of notifications (the live side
//! is the socket, in `socket.rs`).

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::error::{ApiResult, Problem};
use crate::extract::{Auth, Path, Query};
use crate::state::AppState;
use crate::views::{NotificationView, PageView};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_notifications))
        .routes(routes!(mark_read))
        .routes(routes!(mark_all_read))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NotificationQuery {
    /// Only unread notifications.
    unread: Option<bool>,
    limit: Option<i64>,
    cursor: Option<String>,
}

/// The caller's notifications, newest first.
#[utoipa::path(get, path = "/api/v1/notifications", tag = "notifications", params(NotificationQuery),
    responses((status = 200, body = PageView<NotificationView>), (status = 401, body = Problem)), security(("bearer" = [])))]
async fn list_notifications(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Query(query): Query<NotificationQuery>,
) -> ApiResult<axum::Json<PageView<NotificationView>>> {
    let page = state
        .notifications
        .list(
            &principal,
            query.unread.unwrap_or(false),
            query.limit,
            query.cursor.as_deref(),
        )
        .await?;
    Ok(axum::Json(PageView::from_page(page, NotificationView::from)))
}

/// Marks one notification read.
#[utoipa::path(post, path = "/api/v1/notifications/{id}/read", tag = "notifications", params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = Problem)), security(("bearer" = [])))]
async fn mark_read(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    state.notifications.mark_read(&principal, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Marks every notification read.
#[utoipa::path(post, path = "/api/v1/notifications/read-all", tag = "notifications",
    responses((status = 204)), security(("bearer" = [])))]
async fn mark_all_read(State(state): State<AppState>, Auth(principal): Auth) -> ApiResult<StatusCode> {
    state.notifications.mark_all_read(&principal).await?;
    Ok(StatusCode::NO_CONTENT)
}
