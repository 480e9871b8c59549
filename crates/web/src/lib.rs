//! The web UI, served by the same binary: server-rendered pages (askama
//! templates, checked at compile time) and two embedded static assets,
//! so the UI works with no files beside the binary and no internet access.
//!
//! Handlers are thin: they take the caller from the session cookie
//! ([`session`]), call the same service the JSON route calls, and render
//! a template. A service's refusal becomes a message on the page.

// Helpers answer `Result<T, Response>`: the error is the page to send
// (a redirect, a 403), taken once per request; boxing it buys nothing.
#![allow(clippy::result_large_err)]

pub mod admin;
pub mod assets;
pub mod extract;
pub mod forms;
pub mod render;
pub mod session;
pub mod shop;

use api::AppState;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

/// The page routes. Every page goes through the session layer (caller,
/// refresh, CSRF check of every POST); the static assets do not.
pub fn pages(state: &AppState) -> Router<AppState> {
    let pages = Router::new()
        .route("/", get(shop::home::home))
        .route("/login", get(shop::auth::login_page).post(shop::auth::login))
        .route(
            "/register",
            get(shop::auth::register_page).post(shop::auth::register),
        )
        .route("/logout", get(shop::auth::logout_page).post(shop::auth::logout))
        .route("/events", get(shop::events::list))
        .route(
            "/events/new",
            get(shop::community::new_page).post(shop::community::create),
        )
        .route("/events/{id}", get(shop::events::show))
        .route(
            "/events/{id}/edit",
            get(shop::community::edit_page).post(shop::community::update),
        )
        .route("/events/{id}/comments", post(shop::community::comment))
        .route(
            "/events/{id}/attachment",
            post(shop::community::attachment).layer(DefaultBodyLimit::max(
                services::uploads::MAX_UPLOAD_BYTES + 64 * 1024,
            )),
        )
        .route("/events/{id}/{action}", post(shop::community::act))
        .route("/events/{id}/items/{item}/buy", post(shop::events::buy))
        .route("/orders", get(shop::orders::list))
        .route("/orders/{id}", get(shop::orders::show))
        .route("/orders/{id}/{action}", post(shop::orders::act))
        .route("/auctions/{id}", get(shop::auctions::show))
        .route("/auctions/{id}/bids", post(shop::auctions::bid))
        .route("/products", get(shop::catalog::list))
        .route("/products/{id}", get(shop::catalog::show))
        .route("/products/{id}/reviews", post(shop::catalog::review))
        .route("/products/{id}/{action}", post(shop::catalog::wish))
        .route("/wishlist", get(shop::catalog::wishlist))
        .route("/notifications", get(shop::account::notifications))
        .route("/notifications/read-all", post(shop::account::read_all))
        .route(
            "/profile",
            get(shop::account::profile).post(shop::account::update_profile),
        )
        .route("/profile/password", post(shop::account::change_password))
        .merge(admin::routes())
        .layer(middleware::from_fn_with_state(state.clone(), session::layer));
    Router::new()
        .route("/static/{version}/{file}", get(assets::serve))
        .merge(pages)
        .fallback(not_found)
}

/// What no route answers: an HTML 404 page for a browser asking for a
/// page, a bare 404 (made a problem document by the API's layers) for
/// the API and any other client.
async fn not_found(State(state): State<AppState>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    let wants_page = !parts.uri.path().starts_with("/api/")
        && matches!(parts.method, Method::GET | Method::HEAD)
        && parts
            .headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/html"));
    if !wants_page {
        return StatusCode::NOT_FOUND.into_response();
    }
    let (session, cookies) = session::establish(&state, &parts).await;
    session::with_cookies(render::not_found(&session), cookies)
}
