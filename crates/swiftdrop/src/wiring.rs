//! Wiring: the configuration turned into the services of one process.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::Context;
use api::{AppState, HttpSettings, Limits};
use domain::clock::Clock;
use gates::{
    Leaderboard, LocalLeaderboard, LocalRateLimiter, LocalStockGate, Quota, RateLimiter, RedisGates,
    RedisLeaderboard, RedisOptions, RedisRateLimiter, RedisStockGate, StockGate,
};
use realtime::{AmqpBus, Bus, LocalBus};
use services::accounts::{AccountService, AccountSettings};
use services::admin::AdminService;
use services::auctions::{AuctionService, AuctionSettings};
use services::catalog::CatalogService;
use services::events::EventService;
use services::health::Health;
use services::notifications::NotificationService;
use services::sales::SalesService;
use services::uploads::UploadService;
use store::{ConnectOptions, SqlStore, Store};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::roles::Roles;
use crate::secrets::{Keys, load_secret};
use crate::{Config, telemetry};

/// The services of one process, before it starts serving.
pub struct App {
    pub state: AppState,
    pub bus: Arc<dyn Bus>,
    pub store: Arc<dyn Store>,
    /// The process's one clock (a movable one in tests).
    pub clock: Clock,
    pub roles: Roles,
    pub(crate) settings: HttpSettings,
    pub(crate) connections: crate::server::ConnectionSettings,
    pub(crate) schedule_changed: Arc<Notify>,
    /// Cancelled at shutdown: background work stops between steps.
    pub(crate) stop: CancellationToken,
    /// The broker's URL and the prefix of its exchange and queues.
    pub(crate) broker: Option<(String, String)>,
    /// Whether this process holds the worker lock.
    pub(crate) leader: Arc<AtomicBool>,
}

/// Opens the database (running migrations) and builds every service of a
/// process with all roles, on the system clock.
pub async fn build(config: &Config) -> anyhow::Result<App> {
    build_with(config, Roles::ALL, Clock::system()).await
}

/// Builds the services of a process with these roles and this clock.
pub async fn build_with(config: &Config, roles: Roles, clock: Clock) -> anyhow::Result<App> {
    let store: Arc<dyn Store> = Arc::new(open_store(config, clock.clone()).await?);
    let keys = Keys::derive(&load_secret(config)?);
    let stop = CancellationToken::new();
    let broker = config
        .amqp_url
        .as_ref()
        .map(|url| (url.clone(), config.amqp_prefix.clone()));
    let bus: Arc<dyn Bus> = match &broker {
        Some((url, prefix)) => AmqpBus::start(url, prefix, stop.clone()),
        None => Arc::new(LocalBus::default()),
    };
    let redis = match &config.redis_url {
        Some(url) => {
            let ca_pem = match &config.redis_ca_file {
                Some(path) => Some(
                    std::fs::read(path)
                        .with_context(|| format!("cannot read SWIFTDROP_REDIS_CA_FILE {}", path.display()))?,
                ),
                None => None,
            };
            let options = RedisOptions {
                prefix: config.redis_prefix.clone(),
                ca_pem,
                ..RedisOptions::default()
            };
            // Fails only on a malformed URL; Redis being down is survived.
            Some(
                RedisGates::connect(url, options)
                    .await
                    .context("invalid REDIS_URL")?,
            )
        }
        None => None,
    };

    let accounts = Arc::new(AccountService::new(
        store.clone(),
        bus.clone(),
        &keys.tokens,
        keys.cursors.clone(),
        &AccountSettings {
            access_ttl: config.access_ttl(),
            refresh_ttl: Duration::from_secs(config.refresh_ttl_seconds),
            bcrypt_cost: config.bcrypt_cost,
            hash_concurrency: config.hash_concurrency,
            hash_max_wait: Duration::from_secs(config.hash_max_wait_seconds),
        },
        clock.clone(),
    )?);
    let catalog = Arc::new(CatalogService::new(store.clone(), keys.cursors.clone()));
    let uploads = Arc::new(UploadService::new(store.clone(), object_store(config)?));
    let gate: Arc<dyn StockGate> = match &redis {
        Some(redis) => Arc::new(RedisStockGate::new(redis.clone())),
        None => Arc::new(LocalStockGate::new()),
    };
    let schedule_changed = Arc::new(Notify::new());
    let outbox_written = Arc::new(Notify::new());
    let events = Arc::new(EventService::new(
        store.clone(),
        gate.clone(),
        keys.cursors.clone(),
        clock.clone(),
        schedule_changed.clone(),
        outbox_written.clone(),
    ));
    let notifications = Arc::new(NotificationService::new(
        store.clone(),
        bus.clone(),
        realtime::Hub::new(),
        keys.cursors.clone(),
        clock.clone(),
        outbox_written.clone(),
        broker.is_none(),
    ));
    let sales = Arc::new(SalesService::new(
        store.clone(),
        gate,
        events.clone(),
        keys.cursors.clone(),
        clock.clone(),
        config.reservation_ttl_seconds as i64,
        config.reserve_batch_max,
    ));
    let auctions = Arc::new(AuctionService::new(
        store.clone(),
        match &redis {
            Some(redis) => Arc::new(RedisLeaderboard::new(redis.clone())) as Arc<dyn Leaderboard>,
            None => Arc::new(LocalLeaderboard::new()),
        },
        events.clone(),
        keys.cursors.clone(),
        clock.clone(),
        AuctionSettings {
            hold: chrono::Duration::seconds(config.reservation_ttl_seconds as i64),
            max_batch: config.reserve_batch_max,
            shared_boards: redis.is_some(),
        },
        schedule_changed.clone(),
        outbox_written.clone(),
    ));
    let admin = Arc::new(AdminService::new(
        catalog.clone(),
        accounts.clone(),
        sales.clone(),
    ));
    let leader = Arc::new(AtomicBool::new(false));
    let health = Arc::new(Health::new(
        store.clone(),
        broker.is_some().then(|| bus.clone()),
        redis.clone(),
        roles.name(),
        roles.worker.then(|| leader.clone()),
    ));
    // Shared by every process when Redis is configured (per address across
    // the deployment), else this process's own.
    let limit = |name: &str, quota: Quota| -> Arc<dyn RateLimiter> {
        match &redis {
            Some(redis) => Arc::new(RedisRateLimiter::new(redis.clone(), name, quota)),
            None => Arc::new(LocalRateLimiter::new(quota)),
        }
    };
    let limits = Arc::new(Limits {
        login: limit("login", Quota::per_minute(config.login_attempts_per_minute)),
        api: limit(
            "api",
            Quota::per_second(config.api_requests_per_second, config.api_burst),
        ),
        purchase: limit(
            "purchase",
            Quota::per_second(config.purchase_requests_per_second, config.purchase_burst),
        ),
        bid: limit(
            "bid",
            Quota::per_second(config.bid_requests_per_second, config.bid_burst),
        ),
    });
    // A moved test clock must not leave the scheduler asleep.
    let wake = schedule_changed.clone();
    clock.on_advance(move || wake.notify_one());
    let state = AppState {
        accounts,
        catalog,
        uploads,
        events,
        sales,
        auctions,
        notifications,
        admin,
        health,
        limits,
        trusted_proxies: config.trusted_proxy_ips()?.into(),
        cors_origins: config.cors_origins.clone().into(),
        metrics: telemetry::metrics_handle(),
    };
    let settings = HttpSettings {
        body_limit: config.body_limit_bytes,
        request_timeout: Duration::from_secs(config.request_timeout_seconds),
        cors_origins: config.cors_origins.clone(),
    };
    Ok(App {
        state,
        bus,
        store,
        clock,
        roles,
        settings,
        connections: crate::server::ConnectionSettings::from_config(config)?,
        schedule_changed,
        stop,
        broker,
        leader,
    })
}

/// Creates the data folder if needed, opens the database and migrates it.
pub async fn open_store(config: &Config, clock: Clock) -> anyhow::Result<SqlStore> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create the data folder {}", config.data_dir.display()))?;
    let options = ConnectOptions {
        url: config.database_url(),
        max_connections: config.db_max_connections,
        acquire_timeout: Duration::from_secs(config.db_acquire_timeout_seconds),
    };
    SqlStore::connect(&options, clock)
        .await
        .context("cannot open the database (check DATABASE_URL)")
}

/// Where uploads are kept: an S3-compatible bucket when configured, else
/// `uploads/` in the data folder.
fn object_store(config: &Config) -> anyhow::Result<Arc<dyn object_store::ObjectStore>> {
    if let Some(bucket) = &config.s3_bucket {
        // Credentials: SWIFTDROP_S3_* when set, else the usual AWS_* variables.
        let mut builder = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(bucket);
        if let Some(endpoint) = &config.s3_endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"))
                .with_virtual_hosted_style_request(false);
        }
        if let Some(region) = &config.s3_region {
            builder = builder.with_region(region);
        }
        if let (Some(key), Some(secret)) = (&config.s3_access_key_id, &config.s3_secret_access_key) {
            builder = builder.with_access_key_id(key).with_secret_access_key(secret);
        }
        let store = builder
            .build()
            .context("invalid S3 settings (SWIFTDROP_S3_*, AWS_*)")?;
        return Ok(Arc::new(store));
    }
    let folder = config.data_dir.join("uploads");
    std::fs::create_dir_all(&folder).with_context(|| format!("cannot create {}", folder.display()))?;
    let store = object_store::local::LocalFileSystem::new_with_prefix(&folder)
        .with_context(|| format!("cannot use {} for uploads", folder.display()))?;
    Ok(Arc::new(store))
}
