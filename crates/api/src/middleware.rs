//! Cross-cutting layers: rate limits, metrics, limits on request heads and
//! bodies, security headers, and turning any bare error response from a
//! layer or the router into a problem document.

use std::any::Any;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::{Frame, SizeHint};
use tower_http::request_id::{MakeRequestId, RequestId};

use crate::error::{ApiError, PROBLEM_JSON};
use crate::extract::ClientIp;
use crate::state::AppState;

/// Request ids are UUIDv7, so they sort by arrival in the logs.
#[derive(Clone, Copy, Default)]
pub struct MakeRequestUuidV7;

impl MakeRequestId for MakeRequestUuidV7 {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        let id = uuid::Uuid::now_v7().to_string();
        id.parse().ok().map(RequestId::new)
    }
}

/// The general per-address limit on the API.
pub async fn api_rate_limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let ip = ClientIp::resolve(&parts, &state.trusted_proxies);
    if let Err(wait) = state.limits.api.check(ip).await {
        metrics::counter!("swiftdrop_rate_limited_total", "limit" => "api").increment(1);
        return ApiError::rate_limited(wait.seconds()).into_response();
    }
    next.run(Request::from_parts(parts, body)).await
}

/// Request count and latency per route, method and status.
pub async fn record_metrics(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let response = next.run(request).await;
    let labels = [
        ("method", method),
        ("route", route),
        ("status", response.status().as_u16().to_string()),
    ];
    metrics::histogram!("swiftdrop_http_request_duration_seconds", &labels)
        .record(started.elapsed().as_secs_f64());
    response
}

/// Layers and the router answer some errors with a bare status (timeouts,
/// unknown routes, 405s, oversized bodies): give them a problem body too.
/// The web UI's error pages (HTML) are answers already and pass as they are.
pub async fn problem_for_bare_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_document = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.starts_with(PROBLEM_JSON) || v.starts_with("application/json") || v.starts_with("text/html")
        });
    if is_document {
        return response;
    }
    let (parts, _) = response.into_parts();
    let mut problem = ApiError::from_status(status).into_response();
    // Keep headers such as Allow and Retry-After from the original answer.
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            problem.headers_mut().insert(name.clone(), value.clone());
        }
    }
    problem
}

/// A panic in a handler becomes a 500 problem, never a dropped connection.
pub fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response<Body> {
    tracing::error!("a request handler panicked");
    ApiError::internal().into_response()
}

/// The largest request head served: the request target and every header
/// line, counted as sent. 16 KiB holds any real browser or API client
/// (cookies included) many times over; more is a client probing for
/// memory. The connection's read buffer stops a much larger head before
/// it is even parsed (see the server module), with a bare 431.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Answers 431 with a problem document when the request head is larger
/// than [`MAX_HEADER_BYTES`].
pub async fn limit_header_size(request: Request, next: Next) -> Response {
    let target = request.uri().path_and_query().map_or(1, |p| p.as_str().len());
    let headers: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if target + headers > MAX_HEADER_BYTES {
        let mut response = ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            format!("the request line and headers exceed {MAX_HEADER_BYTES} bytes"),
        )
        .into_response();
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return response;
    }
    next.run(request).await
}

/// A connection's place in the server's per-address count, carried in
/// each of its requests so that a WebSocket, which outlives the HTTP
/// exchange that opened it, keeps the place for as long as it is open.
#[derive(Clone)]
pub struct ConnectionSlot(pub Arc<dyn Any + Send + Sync>);

/// How a request body must keep arriving, set per connection by the
/// server: after `grace`, at least `min_bytes_per_second` on average.
/// A body dribbled a byte at a time ties up a connection and a task for
/// as long as the client likes; this cuts it off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyPace {
    pub grace: Duration,
    pub min_bytes_per_second: u64,
}

impl BodyPace {
    /// When a body that started at `started` and has delivered `received`
    /// bytes must have delivered more.
    pub fn deadline(&self, started: Instant, received: u64) -> Instant {
        let rate = self.min_bytes_per_second.max(1) as f64;
        started + self.grace + Duration::from_secs_f64(received as f64 / rate)
    }
}

/// Enforces the [`BodyPace`] the server put on the request: a body that
/// falls behind fails the read, and the answer becomes a 408 problem that
/// closes the connection.
pub async fn cut_slow_bodies(request: Request, next: Next) -> Response {
    let pace = request.extensions().get::<BodyPace>().copied();
    let Some(pace) = pace.filter(|_| !request.body().is_end_stream()) else {
        return next.run(request).await;
    };
    let cut = Arc::new(AtomicBool::new(false));
    let request = request.map(|body| Body::new(PacedBody::new(body, pace, cut.clone())));
    let response = next.run(request).await;
    if !cut.load(Ordering::Acquire) {
        return response;
    }
    let mut response = ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        "body_too_slow",
        "the request body arrived too slowly",
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// A request body that fails once it falls behind its pace.
struct PacedBody {
    inner: Body,
    pace: BodyPace,
    started: Instant,
    received: u64,
    deadline: Pin<Box<tokio::time::Sleep>>,
    cut: Arc<AtomicBool>,
}

impl PacedBody {
    fn new(inner: Body, pace: BodyPace, cut: Arc<AtomicBool>) -> Self {
        let started = Instant::now();
        let deadline = tokio::time::sleep_until(pace.deadline(started, 0).into());
        PacedBody {
            inner,
            pace,
            started,
            received: 0,
            deadline: Box::pin(deadline),
            cut,
        }
    }
}

impl HttpBody for PacedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.received += data.len() as u64;
                    let deadline = this.pace.deadline(this.started, this.received);
                    this.deadline.as_mut().reset(deadline.into());
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => {
                if this.deadline.as_mut().poll(cx).is_ready() {
                    this.cut.store(true, Ordering::Release);
                    return Poll::Ready(Some(Err(axum::Error::new("the request body arrived too slowly"))));
                }
                Poll::Pending
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The Content-Security-Policy of the API and the pages: everything from
/// this origin only, no inline script, never framed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// The policy of `/api/docs` (Swagger UI 5.32.6, vendored): the same,
/// plus the hash of the one inline `<style>` it applies (the top bar's
/// logo). Checked in headless Chromium: under the strict policy that is
/// the only violation (the logo loses its colours, everything else works);
/// with the hash there is none. Its scripts are separate files, its other
/// styles are set through the CSSOM, which a policy does not restrict. A
/// newer Swagger UI with another logo style just shows a grey logo.
pub const DOCS_CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self' 'sha256-RL3ie0nH+Lzz2YNqQN83mnU0J1ot4QL7b99vMdIX99w='; img-src 'self' data:; \
     connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// Gives the Swagger UI pages ([`DOCS_CONTENT_SECURITY_POLICY`]) their
/// policy; everything else keeps the strict one.
pub async fn docs_content_security_policy(request: Request, next: Next) -> Response {
    let is_docs = request.uri().path().starts_with("/api/docs");
    let mut response = next.run(request).await;
    if is_docs {
        response.headers_mut().insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(DOCS_CONTENT_SECURITY_POLICY),
        );
    }
    response
}

/// `Strict-Transport-Security` when the request reached us over TLS, which
/// only a trusted proxy can tell (`X-Forwarded-Proto: https`): sent over
/// plain HTTP the header means nothing, and believed from anyone else it
/// could be forged to pin a host that has no TLS.
pub async fn strict_transport_security(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let over_tls = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .is_some_and(|ConnectInfo(peer)| state.trusted_proxies.contains(&peer.ip()))
        && request
            .headers()
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"));
    let mut response = next.run(request).await;
    if over_tls {
        response.headers_mut().insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
    response
}
