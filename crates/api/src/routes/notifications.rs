//! Notification history and the WebSocket that pushes notifications live.

use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message as Frame, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use services::accounts::Principal;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::error::{ApiResult, Problem};
use crate::extract::{Auth, Path, Query};
use crate::state::AppState;
use crate::views::PageView;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_notifications))
        .routes(routes!(mark_read))
        .routes(routes!(mark_all_read))
}

#[derive(Serialize, ToSchema)]
pub struct NotificationView {
    id: Uuid,
    notification_type: String,
    /// The message as it was pushed.
    #[schema(value_type = Object)]
    payload: serde_json::Value,
    read: bool,
    created_at: DateTime<Utc>,
}

impl From<store::notifications::Notification> for NotificationView {
    fn from(n: store::notifications::Notification) -> Self {
        NotificationView {
            id: n.id,
            notification_type: n.notification_type,
            payload: n.payload.0,
            read: n.read,
            created_at: n.created_at,
        }
    }
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

/// Close codes of the notification socket.
const CLOSE_UNAUTHORIZED: u16 = 4401;
const CLOSE_INVALID: u16 = 1007;
const CLOSE_TOO_BIG: u16 = 1009;
const CLOSE_TOO_SLOW: u16 = 1013;
/// Frames larger than this close the socket (clients only send small
/// control messages).
const MAX_FRAME: usize = 16 * 1024;
const AUTH_TIMEOUT: Duration = Duration::from_secs(10);
const HEARTBEAT: Duration = Duration::from_secs(20);
/// A socket that has said nothing (not even a pong) for this long is gone.
const IDLE_LIMIT: Duration = Duration::from_secs(60);

#[derive(Deserialize)]
pub struct SocketQuery {
    token: Option<String>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ClientMessage {
    Auth {
        token: String,
    },
    Resume {
        after: Option<Uuid>,
    },
    /// Follow an open event page's live data (stock, status).
    Subscribe {
        event_id: Uuid,
    },
    Unsubscribe {
        event_id: Uuid,
    },
    Ping,
}

/// `GET /ws`: the notification socket.
pub async fn socket(
    State(state): State<AppState>,
    axum::extract::Query(query): axum::extract::Query<SocketQuery>,
    upgrade: WebSocketUpgrade,
) -> Response {
    // Small buffers: an idle socket should cost a few KiB, not the
    // library's default 128 KiB read buffer.
    upgrade
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_message_size(MAX_FRAME)
        .max_frame_size(MAX_FRAME)
        .on_upgrade(move |socket| serve_socket(state, socket, query.token))
}

async fn close(mut socket: WebSocket, code: u16, reason: &'static str) {
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    };
    let _ = socket.send(Frame::Close(Some(frame))).await;
}

/// Reads the first message when the token did not come in the query.
async fn first_message_token(socket: &mut WebSocket) -> Option<String> {
    let frame = tokio::time::timeout(AUTH_TIMEOUT, socket.recv())
        .await
        .ok()??
        .ok()?;
    let Frame::Text(text) = frame else { return None };
    match serde_json::from_str::<ClientMessage>(&text).ok()? {
        ClientMessage::Auth { token } => Some(token),
        _ => None,
    }
}

async fn serve_socket(state: AppState, mut socket: WebSocket, token: Option<String>) {
    let token = match token {
        Some(token) => Some(token),
        None => first_message_token(&mut socket).await,
    };
    let principal: Principal = match token {
        Some(token) => match state.accounts.authenticate(&token).await {
            Ok(principal) => principal,
            Err(_) => return close(socket, CLOSE_UNAUTHORIZED, "unauthorized").await,
        },
        None => return close(socket, CLOSE_UNAUTHORIZED, "unauthorized").await,
    };
    let mut subscription = state.notifications.hub().connect(principal.user_id);
    let ready = serde_json::json!({"type": "ready", "user_id": principal.user_id}).to_string();
    if socket.send(Frame::Text(ready.into())).await.is_err() {
        return;
    }
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.tick().await;
    let mut last_heard = tokio::time::Instant::now();
    loop {
        tokio::select! {
            pushed = subscription.receiver.recv() => match pushed {
                Some(bytes) => {
                    // Shared, not copied: every socket sends the same buffer.
                    let Ok(text) = Utf8Bytes::try_from(bytes) else { continue };
                    if socket.send(Frame::Text(text)).await.is_err() {
                        return;
                    }
                }
                // The hub let this socket go: it fell too far behind.
                None => return close(socket, CLOSE_TOO_SLOW, "too slow; reconnect and resume").await,
            },
            frame = socket.recv() => {
                last_heard = tokio::time::Instant::now();
                match frame {
                    Some(Ok(Frame::Text(text))) => match serde_json::from_str::<ClientMessage>(&text) {
                        Ok(ClientMessage::Resume { after }) => {
                            if replay(&state, &mut socket, principal.user_id, after).await.is_err() {
                                return;
                            }
                        }
                        Ok(ClientMessage::Ping) => {
                            let pong = r#"{"type":"pong"}"#;
                            if socket.send(Frame::Text(pong.into())).await.is_err() {
                                return;
                            }
                        }
                        Ok(ClientMessage::Subscribe { event_id }) => subscription.follow(event_id),
                        Ok(ClientMessage::Unsubscribe { event_id }) => subscription.unfollow(event_id),
                        Ok(ClientMessage::Auth { .. }) => {}
                        Err(_) => return close(socket, CLOSE_INVALID, "malformed message").await,
                    },
                    Some(Ok(Frame::Binary(_))) => return close(socket, CLOSE_INVALID, "text frames only").await,
                    Some(Ok(Frame::Ping(_) | Frame::Pong(_))) => {}
                    Some(Ok(Frame::Close(_))) | None => return,
                    Some(Err(err)) => {
                        let too_big = err.to_string().to_lowercase().contains("too long")
                            || err.to_string().to_lowercase().contains("too big");
                        let code = if too_big { CLOSE_TOO_BIG } else { CLOSE_INVALID };
                        return close(socket, code, "invalid frame").await;
                    }
                }
            }
            _ = heartbeat.tick() => {
                if last_heard.elapsed() > IDLE_LIMIT {
                    return close(socket, 1001, "idle").await;
                }
                if socket.send(Frame::Ping(Default::default())).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Sends what the user missed after `after`, oldest first.
async fn replay(
    state: &AppState,
    socket: &mut WebSocket,
    user_id: Uuid,
    after: Option<Uuid>,
) -> Result<(), ()> {
    let missed = state.notifications.resume(user_id, after).await.map_err(|_| ())?;
    for notification in missed {
        let text = notification.payload.0.to_string();
        socket.send(Frame::Text(text.into())).await.map_err(|_| ())?;
    }
    Ok(())
}
