//! `GET /ws`: the notification socket.
//!
//! The handshake is answered here rather than by axum's WebSocket extractor
//! because the hub needs the connection's TCP socket itself: pushes are
//! written to it directly from the broadcasting side (see
//! `realtime::outlet`), while tungstenite reads the client's frames and
//! writes the socket's own replies through the same outlet.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use realtime::{Outlet, SocketIo, Stop, Subscription, VISITOR};
use serde::Deserialize;
use services::accounts::Principal;
use services::accounts::session::SessionTokens;
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
    /// Follow an open page's live data: an event's (stock, status) or an
    /// auction's (leaderboard).
    Subscribe(Topic),
    Unsubscribe(Topic),
    Ping,
}

/// What a page follows: exactly one of the two.
#[derive(Deserialize)]
struct Topic {
    event_id: Option<Uuid>,
    auction_id: Option<Uuid>,
}

impl Topic {
    fn id(&self) -> Option<Uuid> {
        match (self.event_id, self.auction_id) {
            (Some(id), None) | (None, Some(id)) => Some(id),
            _ => None,
        }
    }
}

/// Where the socket's token came from.
enum Credential {
    /// `?token=` or the web UI's session cookie.
    Given(String),
    /// None at the handshake: a visitor, who may still send `auth`.
    None,
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

/// Whether the page that opens the socket is on this origin. A browser
/// sends the session cookie with a socket opened from any site, so a
/// cookie is only believed from our own pages (or a configured origin).
fn same_origin(headers: &HeaderMap, allowed: &[String]) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        // Not a browser: no ambient cookie to abuse.
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let authority = origin.split_once("://").map_or(origin, |(_, rest)| rest);
    (!host.is_empty() && authority.eq_ignore_ascii_case(host))
        || allowed.iter().any(|o| o == origin || o == "*")
}

/// The token of the socket: the query's, else the session cookie's.
fn credential(headers: &HeaderMap, query: SocketQuery) -> Credential {
    if let Some(token) = query.token {
        return Credential::Given(token);
    }
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(SessionTokens::from_cookie_header);
    match cookie {
        Some(session) => Credential::Given(session.access_token),
        None => Credential::None,
    }
}

/// `GET /ws`: checks the RFC 6455 handshake, answers 101 and serves the
/// socket once the connection is handed over.
pub async fn socket(
    State(state): State<AppState>,
    axum::extract::Query(query): axum::extract::Query<SocketQuery>,
    mut request: Request,
) -> Response {
    let headers = request.headers();
    if !same_origin(headers, &state.cors_origins) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "cross_origin_socket",
            "a socket may only be opened from this site's pages",
        )
        .into_response();
    }
    let credential = credential(headers, query);
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
        serve_socket(state, socket, outlet, credential).await;
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

/// A registered socket: who it is (none for a visitor) and what it follows.
struct Session {
    principal: Option<Principal>,
    registration: Subscription,
    topics: HashSet<Uuid>,
}

impl Session {
    /// Registers the socket under `principal`'s user (or as a visitor) and
    /// greets it; a socket that signs in later registers again, keeping
    /// what it follows.
    fn register(
        state: &AppState,
        outlet: &Arc<Outlet>,
        principal: Option<Principal>,
        topics: HashSet<Uuid>,
    ) -> Session {
        let user = principal.map(|p| p.user_id);
        let ready = serde_json::json!({"type": "ready", "user_id": user}).to_string();
        let registration =
            state
                .notifications
                .hub()
                .connect(user.unwrap_or(VISITOR), outlet.clone(), ready.as_bytes());
        for topic in &topics {
            registration.follow(*topic);
        }
        Session {
            principal,
            registration,
            topics,
        }
    }
}

async fn serve_socket(state: AppState, mut socket: Socket, outlet: Arc<Outlet>, credential: Credential) {
    let principal = match credential {
        Credential::Given(token) => match state.accounts.authenticate(&token).await {
            Ok(principal) => Some(principal),
            Err(_) => return close(socket, &outlet, CLOSE_UNAUTHORIZED, "unauthorized").await,
        },
        Credential::None => None,
    };
    let mut session = Session::register(&state, &outlet, principal, HashSet::new());
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
                let text = match frame {
                    Some(Ok(Frame::Text(text))) => text,
                    Some(Ok(Frame::Binary(_))) => return close(socket, &outlet, 1007, "text frames only").await,
                    Some(Ok(Frame::Ping(_) | Frame::Pong(_) | Frame::Frame(_))) => continue,
                    Some(Ok(Frame::Close(_))) => {
                        // Send the library's close reply, and nothing after it.
                        outlet.stop(Stop::Closing);
                        let _ = tokio::time::timeout(CLOSE_TIMEOUT, socket.flush()).await;
                        return;
                    }
                    None => return,
                    Some(Err(WsError::Capacity(_))) => return close(socket, &outlet, 1009, "frame too large").await,
                    Some(Err(_)) => return close(socket, &outlet, 1007, "invalid frame").await,
                };
                let Ok(message) = serde_json::from_str::<ClientMessage>(&text) else {
                    return close(socket, &outlet, 1007, "malformed message").await;
                };
                let sent = match message {
                    ClientMessage::Auth { token } if session.principal.is_none() => {
                        match state.accounts.authenticate(&token).await {
                            Ok(principal) => {
                                let topics = std::mem::take(&mut session.topics);
                                drop(session);
                                session = Session::register(&state, &outlet, Some(principal), topics);
                                Ok(())
                            }
                            Err(_) => return close(socket, &outlet, CLOSE_UNAUTHORIZED, "unauthorized").await,
                        }
                    }
                    ClientMessage::Auth { .. } => Ok(()),
                    ClientMessage::Resume { after } => match session.principal {
                        Some(principal) => replay(&state, &mut socket, principal.user_id, after).await,
                        None => send_json(&mut socket, serde_json::json!({
                            "type": "error", "code": "sign_in_required",
                            "detail": "resume replays a signed-in user's notifications",
                        })).await,
                    },
                    ClientMessage::Ping => socket.send(Frame::text(r#"{"type":"pong"}"#)).await.map_err(drop),
                    ClientMessage::Subscribe(topic) => match topic.id() {
                        Some(id) => {
                            session.registration.follow(id);
                            session.topics.insert(id);
                            snapshot(&state, &mut socket, &topic).await
                        }
                        None => return close(socket, &outlet, 1007, "subscribe names one event_id or auction_id").await,
                    },
                    ClientMessage::Unsubscribe(topic) => {
                        if let Some(id) = topic.id() {
                            session.registration.unfollow(id);
                            session.topics.remove(&id);
                        }
                        Ok(())
                    }
                };
                if sent.is_err() {
                    return;
                }
            }
        }
    }
}

async fn send_json(socket: &mut Socket, message: serde_json::Value) -> Result<(), ()> {
    socket.send(Frame::text(message.to_string())).await.map_err(drop)
}

/// Right after a subscribe: the current value of what the page follows,
/// so it never misses a change made between its render and now. A topic
/// that does not exist gets nothing (its page would be a 404).
async fn snapshot(state: &AppState, socket: &mut Socket, topic: &Topic) -> Result<(), ()> {
    let messages = match (topic.event_id, topic.auction_id) {
        (Some(event), _) => state.events.live_data(event).await.unwrap_or_default(),
        (_, Some(auction)) => state.auctions.live_data(auction).await.unwrap_or_default(),
        (None, None) => Vec::new(),
    };
    for message in messages {
        socket
            .feed(Frame::text(message.to_string()))
            .await
            .map_err(drop)?;
    }
    socket.flush().await.map_err(drop)
}

/// Sends what the user missed after `after`, oldest first.
async fn replay(state: &AppState, socket: &mut Socket, user_id: Uuid, after: Option<Uuid>) -> Result<(), ()> {
    let missed = state.notifications.resume(user_id, after).await.map_err(|_| ())?;
    for notification in missed {
        let text = notification.payload.to_string();
        socket.feed(Frame::text(text)).await.map_err(|_| ())?;
    }
    socket.flush().await.map_err(|_| ())
}
