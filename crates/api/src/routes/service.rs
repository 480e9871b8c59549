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

/// The process's resident memory in bytes (Linux), for capacity planning.
fn resident_bytes() -> Option<f64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: f64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096.0)
}

/// Prometheus text exposition.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    if let Some(bytes) = resident_bytes() {
        metrics::gauge!("swiftdrop_process_resident_bytes").set(bytes);
    }
    metrics::gauge!("swiftdrop_websocket_sockets").set(state.notifications.hub().connections() as f64);
    let text = state.metrics.as_ref().map(|h| h.render()).unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}
