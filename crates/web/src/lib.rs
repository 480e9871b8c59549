//! The web UI, served by the same binary. Its assets are compiled in, so
//! the UI works with no files beside the binary and no internet access.

use axum::Router;
use axum::response::Html;
use axum::routing::get;

const HOME: &str = include_str!("../assets/index.html");

/// The page routes, mergeable into any router state.
pub fn pages<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/", get(|| async { Html(HOME) }))
}
