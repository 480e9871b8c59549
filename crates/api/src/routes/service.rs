//! Liveness, readiness and metrics.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use crate::state::AppState;

/// The process is up.
pub async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Every dependency answers: 200, else 503, with each one's status.
pub async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    let database = match state.store.ping().await {
        Ok(()) => json!({ "status": "ok", "backend": state.store.backend().as_str() }),
        Err(err) => {
            tracing::warn!(%err, "readiness: database does not answer");
            json!({ "status": "unavailable", "backend": state.store.backend().as_str() })
        }
    };
    let all_ok = database["status"] == "ok";
    let status = if all_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if all_ok { "ok" } else { "unavailable" },
        "checks": { "database": database },
    });
    (status, Json(body))
}

/// Prometheus text exposition.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let text = state.metrics.as_ref().map(|h| h.render()).unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}
