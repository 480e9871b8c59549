//! The HTTP API of SwiftDrop: routers per domain, extractors, problem
//! documents, cross-cutting layers and the OpenAPI document.

pub mod doc;
pub mod error;
pub mod extract;
pub mod middleware;
pub mod routes;
pub mod state;
pub mod views;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::routing::get;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

pub use error::{ApiError, ApiResult};
pub use state::{AppState, HttpSettings, Limits};

#[derive(OpenApi)]
#[openapi(
    info(title = "SwiftDrop API", description = "Live commerce drops: flash sales, auctions, community events."),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Accounts and tokens"),
        (name = "profile", description = "The caller's profile"),
        (name = "catalog", description = "Products, reviews and wishlists"),
        (name = "uploads", description = "Images and PDFs"),
        (name = "events", description = "Community events and drops"),
        (name = "sales", description = "Purchases and orders"),
        (name = "auctions", description = "Auctions: scored bids, leaderboards, settlement"),
        (name = "notifications", description = "Notification history (live push: GET /ws)"),
        (name = "admin", description = "Administration"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The `/api` routes and the OpenAPI document generated from them. JSON
/// routes take the configured body limit; uploads their own, larger one.
fn api_routes(body_limit: usize) -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (json, mut openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(routes::auth::routes())
        .merge(routes::profile::routes())
        .merge(routes::catalog::routes())
        .merge(routes::events::routes())
        .merge(routes::auctions::routes())
        .merge(routes::sales::routes())
        .merge(routes::notifications::routes())
        .merge(routes::admin::routes())
        .split_for_parts();
    let (uploads, uploads_doc) = routes::uploads::routes().split_for_parts();
    openapi.merge(uploads_doc);
    doc::document_problems(&mut openapi);
    let upload_limit = services::uploads::MAX_UPLOAD_BYTES + 64 * 1024;
    let router = json
        .layer(DefaultBodyLimit::max(body_limit))
        .merge(uploads.layer(DefaultBodyLimit::max(upload_limit)));
    (router, openapi)
}

/// The OpenAPI document of every `/api` route.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_routes(0).1
}

/// The whole HTTP surface: API, service endpoints and docs, with the
/// cross-cutting layers. `pages` (the web UI) is merged in by the caller;
/// its fallback, if it has one, answers the paths no route matches (the
/// web UI's 404 page); without one they get a 404 problem document.
pub fn router(state: AppState, settings: &HttpSettings, pages: Router<AppState>) -> Router {
    let (api, openapi) = api_routes(settings.body_limit);
    let api = api.layer(axum::middleware::from_fn_with_state(
        state.clone(),
        middleware::api_rate_limit,
    ));

    let service = Router::new()
        .route("/health", get(routes::service::health))
        .route("/ready", get(routes::service::ready))
        .route("/metrics", get(routes::service::metrics))
        .route("/uploads/{key}", get(routes::uploads::serve_upload))
        .route("/ws", get(routes::socket::socket));

    let request_id = HeaderName::from_static("x-request-id");
    let layers = ServiceBuilder::new()
        .layer(SetSensitiveRequestHeadersLayer::new([header::AUTHORIZATION, header::COOKIE]))
        .layer(SetRequestIdLayer::new(request_id.clone(), middleware::MakeRequestUuidV7))
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &axum::http::Request<_>| {
                let request_id = request
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id)
            }),
        )
        .layer(PropagateRequestIdLayer::new(request_id))
        // Security headers on every answer, pages and API alike; a route
        // that needs a looser policy (the API docs) sets its own.
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(middleware::CONTENT_SECURITY_POLICY),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::strict_transport_security,
        ))
        // Limits against slow and greedy clients (the connection-level ones
        // are in the server): a problem document, with the request id.
        .layer(axum::middleware::from_fn(middleware::limit_header_size))
        .layer(axum::middleware::from_fn(middleware::cut_slow_bodies))
        .layer(cors_layer(&settings.cors_origins))
        .layer(CompressionLayer::new())
        .layer(axum::middleware::from_fn(middleware::problem_for_bare_errors))
        .layer(CatchPanicLayer::custom(middleware::panic_response))
        .layer(TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, settings.request_timeout));

    Router::new()
        .merge(api)
        .merge(service)
        .merge(
            Router::new()
                .merge(SwaggerUi::new("/api/docs").url("/api/openapi.json", openapi))
                .layer(axum::middleware::from_fn(
                    middleware::docs_content_security_policy,
                )),
        )
        // A bare 404 from the default fallback becomes a problem document
        // in `problem_for_bare_errors`.
        .merge(pages)
        .route_layer(axum::middleware::from_fn(middleware::record_metrics))
        .layer(layers)
        .with_state(state)
}

fn cors_layer(origins: &[String]) -> CorsLayer {
    let layer = CorsLayer::new()
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("idempotency-key"),
        ])
        .expose_headers([HeaderName::from_static("x-request-id"), header::RETRY_AFTER]);
    if origins.iter().any(|o| o == "*") {
        layer.allow_origin(AllowOrigin::any())
    } else {
        let list: Vec<HeaderValue> = origins.iter().filter_map(|o| o.parse().ok()).collect();
        layer.allow_origin(AllowOrigin::list(list))
    }
}
