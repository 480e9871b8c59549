//! `GET /ws`: the notification socket.
//!
//! The handshake is answered here rather than by axum's WebSocket extractor
//! because the hub needs the connection's TCP socket itself: pushes are
//! written to it directly from the broadcasting side (see
//! `realtime::outlet`), while tungstenite reads the client's frames and
//! writes the socket's own replies through the same outlet.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use realtime::{Outlet, SocketIo, Stop};
use serde::Deserialize;
use services::accounts::Principal;
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message as Frame, handshake::derive_accept_key};
use uuid::Uuid;

use crate::error::ApiError;
use crate::middleware::ConnectionSlot;
use crate::state::AppState;

/// Close codes of the notification socket.
const CLOSE_UNAUTHORIZED: u16 = 4401;
const GOING_AWAY: u16 = 1001;
/// Frames larger than this close the socket (clients only send small
/// control messages).
const MAX_FRAME: usize = 16 * 1024;
/// Bytes read per attempt: clients send small control messages, and each
/// attempt clears this much buffer (a larger frame still arrives whole).
const READ_BUFFER: usize = 512;
const AUTH_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a closing socket may take to send its close frame.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the hub pings each socket.
pub const HEARTBEAT: Duration = Duration::from_secs(20);
/// A socket whose client said nothing (not even a pong) for this long is gone.
pub const IDLE_LIMIT: Duration = Duration::from_secs(60);

type Socket = WebSocketStream<SocketIo>;

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

fn bad_handshake(detail: &'static str) -> Response {
    ApiError::new(StatusCode::BAD_REQUEST, "bad_websocket_handshake", detail).into_response()
}

fn header_has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|value| {
        value
            .to_str()
            .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}

/// `GET /ws`: checks the RFC 6455 handshake, answers 101 and serves the
/// socket once the connection is handed over.
pub async fn socket(
    State(state): State<AppState>,
    axum::extract::Query(query): axum::extract::Query<SocketQuery>,
    mut request: Request,
) -> Response {
    let headers = request.headers();
    if !header_has_token(headers, header::CONNECTION, "upgrade")
        || !header_has_token(headers, header::UPGRADE, "websocket")
    {
        return bad_handshake("a WebSocket upgrade request is expected here");
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(HeaderValue::as_bytes)
        != Some(b"13")
    {
        let mut response = bad_handshake("only WebSocket version 13 is supported");
        response
            .headers_mut()
            .insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        return response;
    }
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY) else {
        return bad_handshake("the Sec-WebSocket-Key header is missing");
    };
    let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) else {
        return bad_handshake("the Sec-WebSocket-Key header is invalid");
    };
    let Some(upgrade) = request.extensions_mut().remove::<hyper::upgrade::OnUpgrade>() else {
        return ApiError::new(
            StatusCode::UPGRADE_REQUIRED,
            "not_upgradable",
            "this connection cannot be upgraded to a WebSocket",
        )
        .into_response();
    };
    // Held while the socket is open: it counts against its address's
    // connections, and the server waits for it at shutdown.
    let slot = request.extensions_mut().remove::<ConnectionSlot>();
    tokio::spawn(async move {
        let _slot = slot;
        let upgraded = match upgrade.await {
            Ok(upgraded) => upgraded,
            Err(err) => return tracing::debug!(%err, "WebSocket upgrade failed"),
        };
        let Ok(parts) = hyper_util::server::conn::auto::upgrade::downcast::<TokioIo<TcpStream>>(upgraded)
        else {
            return tracing::error!("WebSocket upgrade: the connection is not a TCP stream");
        };
        // Copied out so that hyper's whole read buffer, which the leftover
        // bytes point into, is freed now rather than held for the
        // connection's lifetime.
        let leftover = parts.read_buf.to_vec();
        drop(parts.read_buf);
        let stream = Arc::new(parts.io.into_inner());
        let outlet = Outlet::new(stream.clone());
        let config = WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER)
            .write_buffer_size(0)
            .max_message_size(Some(MAX_FRAME))
            .max_frame_size(Some(MAX_FRAME));
        let socket = WebSocketStream::from_partially_read(
            SocketIo::new(stream, outlet.clone()),
            leftover,
            Role::Server,
            Some(config),
        )
        .await;
        serve_socket(state, socket, outlet, query.token).await;
    });
    (
        StatusCode::SWITCHING_PROTOCOLS,
        [
            (header::CONNECTION, HeaderValue::from_static("upgrade")),
            (header::UPGRADE, HeaderValue::from_static("websocket")),
            (header::SEC_WEBSOCKET_ACCEPT, accept),
        ],
    )
        .into_response()
}

/// Stops pushes, then says goodbye: nothing may follow a close frame.
async fn close(mut socket: Socket, outlet: &Outlet, code: u16, reason: &'static str) {
    outlet.stop(Stop::Closing);
    let frame = CloseFrame {
        code: CloseCode::from(code),
        reason: reason.into(),
    };
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, socket.close(Some(frame))).await;
}

/// Reads the first message when the token did not come in the query.
async fn first_message_token(socket: &mut Socket) -> Option<String> {
    let frame = tokio::time::timeout(AUTH_TIMEOUT, socket.next())
        .await
        .ok()??
        .ok()?;
    let Frame::Text(text) = frame else { return None };
    match serde_json::from_str::<ClientMessage>(&text).ok()? {
        ClientMessage::Auth { token } => Some(token),
        _ => None,
    }
}

async fn serve_socket(state: AppState, mut socket: Socket, outlet: Arc<Outlet>, token: Option<String>) {
    let token = match token {
        Some(token) => Some(token),
        None => tokio::select! {
            token = first_message_token(&mut socket) => token,
            () = state.notifications.hub().going_away() => {
                return close(socket, &outlet, GOING_AWAY, "server shutting down").await;
            }
        },
    };
    let principal: Principal = match token {
        Some(token) => match state.accounts.authenticate(&token).await {
            Ok(principal) => principal,
            Err(_) => return close(socket, &outlet, CLOSE_UNAUTHORIZED, "unauthorized").await,
        },
        None => return close(socket, &outlet, CLOSE_UNAUTHORIZED, "unauthorized").await,
    };
    let ready = serde_json::json!({"type": "ready", "user_id": principal.user_id}).to_string();
    let subscription = state
        .notifications
        .hub()
        .connect(principal.user_id, outlet.clone(), ready.as_bytes());
    loop {
        tokio::select! {
            stop = outlet.stopped() => match stop {
                Stop::Slow => {
                    return close(socket, &outlet, 1013, "too slow; reconnect and resume").await;
                }
                Stop::Idle => return close(socket, &outlet, GOING_AWAY, "idle").await,
                Stop::GoingAway => return close(socket, &outlet, GOING_AWAY, "server shutting down").await,
                Stop::Closing | Stop::Broken => return,
            },
            frame = socket.next() => {
                outlet.heard();
                match frame {
                    Some(Ok(Frame::Text(text))) => match serde_json::from_str::<ClientMessage>(&text) {
                        Ok(ClientMessage::Resume { after }) => {
                            if replay(&state, &mut socket, principal.user_id, after).await.is_err() {
                                return;
                            }
                        }
                        Ok(ClientMessage::Ping) => {
                            if socket.send(Frame::text(r#"{"type":"pong"}"#)).await.is_err() {
                                return;
                            }
                        }
                        Ok(ClientMessage::Subscribe { event_id }) => subscription.follow(event_id),
                        Ok(ClientMessage::Unsubscribe { event_id }) => subscription.unfollow(event_id),
                        Ok(ClientMessage::Auth { .. }) => {}
                        Err(_) => return close(socket, &outlet, 1007, "malformed message").await,
                    },
                    Some(Ok(Frame::Binary(_))) => return close(socket, &outlet, 1007, "text frames only").await,
                    Some(Ok(Frame::Ping(_) | Frame::Pong(_) | Frame::Frame(_))) => {}
                    Some(Ok(Frame::Close(_))) => {
                        // Send the library's close reply, and nothing after it.
                        outlet.stop(Stop::Closing);
                        let _ = tokio::time::timeout(CLOSE_TIMEOUT, socket.flush()).await;
                        return;
                    }
                    None => return,
                    Some(Err(WsError::Capacity(_))) => return close(socket, &outlet, 1009, "frame too large").await,
                    Some(Err(_)) => return close(socket, &outlet, 1007, "invalid frame").await,
                }
            }
        }
    }
}

/// Sends what the user missed after `after`, oldest first.
async fn replay(state: &AppState, socket: &mut Socket, user_id: Uuid, after: Option<Uuid>) -> Result<(), ()> {
    let missed = state.notifications.resume(user_id, after).await.map_err(|_| ())?;
    for notification in missed {
        let text = notification.payload.0.to_string();
        socket.feed(Frame::text(text)).await.map_err(|_| ())?;
    }
    socket.flush().await.map_err(|_| ())
}
