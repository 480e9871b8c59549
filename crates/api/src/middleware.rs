//! Cross-cutting layers: rate limits, metrics, and turning any bare error
//! response from a layer or the router into a problem document.

use std::time::Instant;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
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
        .is_some_and(|v| v.starts_with(PROBLEM_JSON) || v.starts_with("application/json"));
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
