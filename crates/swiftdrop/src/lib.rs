//! Startup of SwiftDrop: wiring configuration into services and serving
//! them. `main.rs` only parses the command line; tests call [`launch`] too.

pub mod config;
pub mod seed;
pub mod server;

use std::future::Future;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use api::{AppState, HttpSettings, Limits};
use domain::cursor::CursorCodec;
use gates::{LocalRateLimiter, Quota};
use hmac_key::derive_key;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use realtime::{AmqpBus, Bus, LocalBus};
use services::accounts::{AccountService, AccountSettings};
use services::catalog::CatalogService;
use services::events::EventService;
use services::notifications::NotificationService;
use services::sales::SalesService;
use services::scheduler::Scheduler;
use services::uploads::UploadService;
use store::{ConnectOptions, SqlStore, Store};
use tokio::net::TcpListener;

pub use config::Config;

mod hmac_key {
    use sha2::{Digest, Sha256};

    /// A key for one purpose derived from the master secret, so a cursor
    /// key can never be used to sign a token.
    pub fn derive_key(secret: &[u8], purpose: &str) -> Vec<u8> {
        let mut hasher = Sha256::new();
        hasher.update(purpose.as_bytes());
        hasher.update([0]);
        hasher.update(secret);
        hasher.finalize().to_vec()
    }
}

/// The services of one process, before it starts serving.
pub struct App {
    pub state: AppState,
    pub bus: Arc<dyn Bus>,
    settings: HttpSettings,
    connections: server::ConnectionSettings,
    schedule_changed: Arc<tokio::sync::Notify>,
    /// Cancelled at shutdown: background work stops between steps.
    stop: tokio_util::sync::CancellationToken,
    amqp_url: Option<String>,
    amqp_prefix: String,
    pub roles: Roles,
}

/// The background work a process does. Every role serves the same HTTP
/// app (stateless), so a load balancer may route API and WebSocket traffic
/// to any api or notifier process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    /// Scheduler and outbox relay (`worker`): one active at a time.
    pub worker: bool,
    /// Pushes to this process's sockets and stores history (`notifier`).
    pub notifier: bool,
}

impl Roles {
    pub const ALL: Roles = Roles {
        worker: true,
        notifier: true,
    };
    pub const API: Roles = Roles {
        worker: false,
        notifier: false,
    };
    pub const NOTIFIER: Roles = Roles {
        worker: false,
        notifier: true,
    };
    pub const WORKER: Roles = Roles {
        worker: true,
        notifier: false,
    };
}

/// Opens the database (running migrations) and builds every service.
pub async fn build(config: &Config) -> anyhow::Result<App> {
    let store: Arc<dyn Store> = Arc::new(open_store(config).await?);
    let secret = load_secret(config)?;
    let stop = tokio_util::sync::CancellationToken::new();
    let bus: Arc<dyn Bus> = match &config.amqp_url {
        Some(url) => AmqpBus::start(url, &config.amqp_prefix, stop.clone()),
        None => Arc::new(LocalBus::default()),
    };

    let accounts = Arc::new(AccountService::new(
        store.clone(),
        bus.clone(),
        &derive_key(&secret, "jwt"),
        CursorCodec::new(&derive_key(&secret, "cursor")),
        &AccountSettings {
            access_ttl: config.access_ttl(),
            refresh_ttl: Duration::from_secs(config.refresh_ttl_seconds),
            bcrypt_cost: config.bcrypt_cost,
            hash_concurrency: config.hash_concurrency,
            hash_max_wait: Duration::from_secs(config.hash_max_wait_seconds),
        },
    )?);
    let catalog = Arc::new(CatalogService::new(
        store.clone(),
        CursorCodec::new(&derive_key(&secret, "cursor")),
    ));
    let uploads = Arc::new(UploadService::new(store.clone(), object_store(config)?));
    let gate = Arc::new(gates::StockGate::new());
    let schedule_changed = Arc::new(tokio::sync::Notify::new());
    let outbox_written = Arc::new(tokio::sync::Notify::new());
    let events = Arc::new(EventService::new(
        store.clone(),
        gate.clone(),
        CursorCodec::new(&derive_key(&secret, "cursor")),
        schedule_changed.clone(),
        outbox_written.clone(),
    ));
    let notifications = Arc::new(NotificationService::new(
        store.clone(),
        bus.clone(),
        realtime::Hub::new(),
        CursorCodec::new(&derive_key(&secret, "cursor")),
        outbox_written,
        config.amqp_url.is_none(),
    ));
    let sales = Arc::new(SalesService::new(
        store.clone(),
        gate,
        events.clone(),
        CursorCodec::new(&derive_key(&secret, "cursor")),
        config.reservation_ttl_seconds as i64,
        config.reserve_batch_max,
    ));
    let limits = Arc::new(Limits {
        login: Arc::new(LocalRateLimiter::new(Quota::per_minute(
            config.login_attempts_per_minute,
        ))),
        api: Arc::new(LocalRateLimiter::new(Quota::per_second(
            config.api_requests_per_second,
            config.api_burst,
        ))),
        purchase: Arc::new(LocalRateLimiter::new(Quota::per_second(
            config.purchase_requests_per_second,
            config.purchase_burst,
        ))),
    });
    let state = AppState {
        accounts,
        catalog,
        uploads,
        events,
        sales,
        notifications,
        store,
        limits,
        trusted_proxies: config.trusted_proxy_ips()?.into(),
        metrics: metrics_handle(),
    };
    let settings = HttpSettings {
        body_limit: config.body_limit_bytes,
        request_timeout: Duration::from_secs(config.request_timeout_seconds),
        cors_origins: config.cors_origins.clone(),
    };
    Ok(App {
        state,
        bus,
        settings,
        connections: server::ConnectionSettings::from_config(config)?,
        schedule_changed,
        stop,
        amqp_url: config.amqp_url.clone(),
        amqp_prefix: config.amqp_prefix.clone(),
        roles: Roles::ALL,
    })
}

/// Creates the data folder if needed, opens the database and migrates it.
pub async fn open_store(config: &Config) -> anyhow::Result<SqlStore> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create the data folder {}", config.data_dir.display()))?;
    let options = ConnectOptions {
        url: config.database_url(),
        max_connections: config.db_max_connections,
        acquire_timeout: Duration::from_secs(10),
    };
    SqlStore::connect(&options)
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

pub async fn serve(
    app: App,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let stop = app.stop.clone();
    let (tasks, stoppable) = spawn_background(&app, &stop);
    let store = app.state.store.clone();
    let hub = app.state.notifications.hub().clone();
    let router = api::router(app.state, &app.settings, web::pages());
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

type Tasks = Vec<tokio::task::JoinHandle<()>>;

/// Starts the background work of a process: tasks that may simply be
/// dropped, and tasks that must be asked to stop (they write).
fn spawn_background(app: &App, stop: &tokio_util::sync::CancellationToken) -> (Tasks, Tasks) {
    let cache = app.state.accounts.auth_cache();
    let follow = tokio::spawn(cache.follow(app.bus.clone()));
    let limits = app.state.limits.clone();
    let sweep = tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(60));
        loop {
            every.tick().await;
            limits.login.sweep();
            limits.api.sweep();
            limits.purchase.sweep();
        }
    });
    let mut tasks = vec![follow, sweep];
    let mut stoppable = Vec::new();
    if app.roles.worker {
        // Writes of other processes (api) wake this process's relay at once.
        let (store, notifications) = (app.state.store.clone(), app.state.notifications.clone());
        tasks.push(tokio::spawn(async move {
            store.follow_outbox(&|| notifications.outbox_written()).await;
        }));
        let work = lead_and_work(app.state.clone(), app.schedule_changed.clone(), stop.clone());
        stoppable.push(tokio::spawn(work));
    }
    if app.roles.notifier {
        tasks.push(tokio::spawn(app.state.notifications.clone().run_push()));
        let hub = app.state.notifications.hub().clone();
        tasks.push(tokio::spawn(hub.run_heartbeat(
            api::routes::socket::HEARTBEAT,
            api::routes::socket::IDLE_LIMIT,
        )));
        if let Some(url) = &app.amqp_url {
            let notifications = app.state.notifications.clone();
            realtime::amqp::consume_shared(url, &app.amqp_prefix, "history", stop.clone(), move |message| {
                let notifications = notifications.clone();
                async move {
                    notifications
                        .store_history(&message)
                        .await
                        .map_err(|e| e.to_string())
                }
            });
        }
    }
    (tasks, stoppable)
}

/// The advisory-lock key of the worker role ("SWDR" in ASCII).
const WORKER_LOCK: i32 = 0x5357_4452;

/// Runs the scheduler and the outbox relay while this process holds the
/// worker lock: one worker is active at a time, and another takes over
/// when it goes.
async fn lead_and_work(
    state: AppState,
    wake: Arc<tokio::sync::Notify>,
    stop: tokio_util::sync::CancellationToken,
) {
    while !stop.is_cancelled() {
        let mut leadership = match state.store.try_lead(WORKER_LOCK).await {
            Ok(Some(leadership)) => leadership,
            Ok(None) => {
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(2)) => continue,
                    () = stop.cancelled() => return,
                }
            }
            Err(err) => {
                tracing::warn!(%err, "cannot ask for the worker lock; retrying");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(2)) => continue,
                    () = stop.cancelled() => return,
                }
            }
        };
        tracing::info!("this process is the active worker");
        let term = stop.child_token();
        let scheduler = Scheduler {
            store: state.store.clone(),
            events: state.events.clone(),
            sales: state.sales.clone(),
            wake: wake.clone(),
        };
        let tasks = [
            tokio::spawn(scheduler.run(term.clone())),
            tokio::spawn(state.notifications.clone().run_relay(term.clone())),
        ];
        loop {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(5)) => {}
                () = term.cancelled() => break,
            }
            if !leadership.holds().await {
                tracing::warn!("lost the worker lock; stepping down");
                term.cancel();
            }
        }
        for task in tasks {
            let _ = task.await;
        }
    }
}

/// The metrics recorder is process-wide by the `metrics` crate's design;
/// install it once and share its handle with every app in the process.
fn metrics_handle() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let buckets = [
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ];
            let builder = PrometheusBuilder::new().set_buckets(&buckets).ok()?;
            builder.install_recorder().ok()
        })
        .clone()
}

/// The signing secret: `SWIFTDROP_SECRET`, or one generated on first start
/// and kept (owner-only) in the data folder.
fn load_secret(config: &Config) -> anyhow::Result<Vec<u8>> {
    if let Some(secret) = &config.secret {
        return Ok(secret.as_bytes().to_vec());
    }
    let path = config.data_dir.join("secret.key");
    if path.exists() {
        let text =
            std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let secret = text.trim();
        anyhow::ensure!(
            secret.len() >= 32,
            "{} is too short; delete it to generate a new one",
            path.display()
        );
        return Ok(secret.as_bytes().to_vec());
    }
    let secret = hex_secret();
    write_private(&path, &secret)?;
    tracing::info!(path = %path.display(), "generated a signing secret");
    Ok(secret.into_bytes())
}

fn hex_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes a file only its owner can read.
pub(crate) fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(contents.as_bytes())?;
    Ok(())
}

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
];

/// Sets up logging: human-readable or JSON lines, filtered by `RUST_LOG`,
/// with the [`PAYLOAD_LOGGERS`] capped.
pub fn init_tracing(format: config::LogFormat) {
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
        config::LogFormat::Json => fmt::layer().json().with_writer(std::io::stderr).boxed(),
        config::LogFormat::Human => fmt::layer().with_writer(std::io::stderr).boxed(),
    };
    let _ = tracing_subscriber::registry()
        .with(layer.with_filter(filter).with_filter(caps))
        .try_init();
}
