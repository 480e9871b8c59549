use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use gates::RateLimiter;
use metrics_exporter_prometheus::PrometheusHandle;
use services::accounts::AccountService;
use services::admin::AdminService;
use services::auctions::AuctionService;
use services::catalog::CatalogService;
use services::events::EventService;
use services::health::Health;
use services::notifications::NotificationService;
use services::sales::SalesService;
use services::uploads::UploadService;

/// Everything a handler can reach: shared services, no globals.
#[derive(Clone)]
pub struct AppState {
    pub accounts: Arc<AccountService>,
    pub catalog: Arc<CatalogService>,
    pub uploads: Arc<UploadService>,
    pub events: Arc<EventService>,
    pub sales: Arc<SalesService>,
    pub auctions: Arc<AuctionService>,
    pub notifications: Arc<NotificationService>,
    pub admin: Arc<AdminService>,
    pub health: Arc<Health>,
    pub limits: Arc<Limits>,
    pub trusted_proxies: Arc<[IpAddr]>,
    /// Origins besides our own whose pages may open `/ws` with a cookie.
    pub cors_origins: Arc<[String]>,
    pub metrics: Option<PrometheusHandle>,
}

/// The per-client-address limits the API enforces.
pub struct Limits {
    /// Login and token attempts.
    pub login: Arc<dyn RateLimiter>,
    /// Every `/api` request.
    pub api: Arc<dyn RateLimiter>,
    /// Purchase attempts.
    pub purchase: Arc<dyn RateLimiter>,
    /// Bids.
    pub bid: Arc<dyn RateLimiter>,
}

/// HTTP behaviour that is configured rather than coded.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub body_limit: usize,
    pub request_timeout: Duration,
    /// Origins allowed by CORS; empty means same-origin only, `*` any.
    pub cors_origins: Vec<String>,
}
