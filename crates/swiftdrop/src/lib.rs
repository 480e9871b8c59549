//! Startup of SwiftDrop: configuration, the wiring of services, the roles
//! a process plays, and serving them. `main.rs` only parses the command
//! line; tests call [`launch`] (or [`build_with`] and [`serve`]) too.

pub mod config;
mod roles;
mod secrets;
pub mod seed;
pub mod server;
mod telemetry;
mod wiring;

use std::future::Future;
use std::time::Duration;

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
    let hub = app.state.notifications.hub().clone();
    let pages = web::pages(&app.state);
    let router = api::router(app.state, &app.settings, pages);
    let addr = listener.local_addr()?;
    tracing::info!(%addr, backend = store.backend().as_str(), "SwiftDrop listening");
    server::run(
        listener,
        router,
        &app.connections,
        move || hub.close_all(),
        shutdown,
    )
    .await;
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
