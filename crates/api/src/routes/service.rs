//! Liveness, readiness and metrics.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde_json::{Value, json};
use services::health::Status;

use crate::state::AppState;

/// The process is up.
pub async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Each configured dependency's answer: 200 `ok` or `degraded` (only
/// Redis down: still selling through the database), 503 `down`.
pub async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    let readiness = state.health.readiness().await;
    let checks: serde_json::Map<String, Value> = readiness
        .checks
        .iter()
        .map(|check| {
            let status = if check.up { "ok" } else { "down" };
            (
                check.name.to_owned(),
                json!({ "status": status, "backend": check.kind }),
            )
        })
        .collect();
    let mut body = json!({
        "status": readiness.status.as_str(),
        "role": readiness.role,
        "checks": checks,
    });
    if let Some(leader) = readiness.leader {
        body["leader"] = json!(leader);
    }
    let code = if readiness.status == Status::Down {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (code, Json(body))
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
    if let Ok(files) = std::fs::read_dir("/proc/self/fd") {
        metrics::gauge!("swiftdrop_process_open_fds").set(files.count() as f64);
    }
    metrics::gauge!("swiftdrop_websocket_sockets").set(state.notifications.hub().connections() as f64);
    let text = state.metrics.as_ref().map(|h| h.render()).unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}
