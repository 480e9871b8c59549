//! Logs and metrics of the process.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::config::LogFormat;

/// Libraries whose debug and trace events carry what passes through them
/// (WebSocket frames, request and response heads, SQL with its values,
/// AMQP frames): capped at `info` whatever `RUST_LOG` asks, so a token,
/// cookie or password never reaches a log line.
const PAYLOAD_LOGGERS: &[&str] = &[
    "tungstenite",
    "tokio_tungstenite",
    "hyper",
    "hyper_util",
    "h2",
    "reqwest",
    "sqlx",
    "lapin",
    "amq_protocol",
    "amq_protocol_codegen",
    "amq_protocol_types",
    "object_store",
    "axum",
    "redis",
];

/// Sets up logging: human-readable or JSON lines, filtered by `RUST_LOG`,
/// with the [`PAYLOAD_LOGGERS`] capped.
pub fn init_tracing(format: LogFormat) {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::prelude::*;
    use tracing_subscriber::{EnvFilter, fmt};
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let caps = PAYLOAD_LOGGERS
        .iter()
        .fold(Targets::new().with_default(LevelFilter::TRACE), |caps, target| {
            caps.with_target(*target, LevelFilter::INFO)
        });
    let layer = match format {
        LogFormat::Json => fmt::layer().json().with_writer(std::io::stderr).boxed(),
        LogFormat::Human => fmt::layer().with_writer(std::io::stderr).boxed(),
    };
    let _ = tracing_subscriber::registry()
        .with(layer.with_filter(filter).with_filter(caps))
        .try_init();
}

/// How often recorded histogram samples are folded into their buckets.
const METRICS_UPKEEP: Duration = Duration::from_secs(5);

/// The metrics recorder is process-wide by the `metrics` crate's design;
/// install it once and share its handle with every app in the process.
pub(crate) fn metrics_handle() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let buckets = [
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ];
            let builder = PrometheusBuilder::new().set_buckets(&buckets).ok()?;
            let handle = builder.install_recorder().ok()?;
            // Histograms hold every sample until upkeep folds them into
            // their buckets; `install_recorder` leaves that to us, and
            // without it a server nobody scrapes grows with each request.
            let upkeep = handle.clone();
            std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(METRICS_UPKEEP);
                        upkeep.run_upkeep();
                    }
                })
                .ok()?;
            Some(handle)
        })
        .clone()
}
