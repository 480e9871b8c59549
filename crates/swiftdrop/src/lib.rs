//! Startup of SwiftDrop: configuration, the wiring of services, the roles
//! a process plays, and serving them. `main.rs` only parses the command
//! line; tests call [`launch`] (or [`build_with`] and [`serve`]) too.

pub mod config;
mod roles;
mod secrets;
pub mod seed;
mod telemetry;
mod wiring;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use axum::serve::ListenerExt;
use tokio::net::TcpListener;

pub use config::Config;
pub use roles::Roles;
pub use telemetry::init_tracing;
pub use wiring::{App, build, build_with, open_store};

/// Serves until `shutdown` resolves, then stops accepting, lets in-flight
/// requests finish and closes the database.
pub async fn launch(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let app = build(&config).await?;
    serve(app, listener, shutdown).await
}

/// Serves `app` on `listener` until `shutdown` resolves.
pub async fn serve(
    app: App,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let stop = app.stop.clone();
    let (tasks, stoppable) = roles::spawn_background(&app, &stop);
    let store = app.store.clone();
    let router = api::router(app.state, &app.settings, web::pages());
    let addr = listener.local_addr()?;
    tracing::info!(%addr, backend = store.backend().as_str(), "SwiftDrop listening");
    // No Nagle delay: a pushed frame or a response leaves at once.
    let listener = listener.tap_io(|tcp| {
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(%err, "cannot set TCP_NODELAY");
        }
    });
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
    .context("server failed")?;
    // Stop background work between steps (never inside a transaction).
    stop.cancel();
    for task in stoppable {
        if tokio::time::timeout(Duration::from_secs(10), task).await.is_err() {
            tracing::warn!("a background task did not stop within 10 s");
        }
    }
    for task in tasks {
        task.abort();
    }
    store.close().await;
    tracing::info!("SwiftDrop stopped");
    Ok(())
}
