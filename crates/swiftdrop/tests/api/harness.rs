//! Starts the real server on 127.0.0.1:0 with a fresh database per test:
//! a temporary SQLite file, or a fresh PostgreSQL schema when
//! `SWIFTDROP_TEST_DATABASE_URL` is set.

use std::net::SocketAddr;
use std::sync::Once;

use domain::clock::Clock;
use reqwest::{Client, Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use swiftdrop::Config;
use tempfile::TempDir;
use tokio::sync::oneshot;

pub const PASSWORD: &str = "Secret#123";

pub struct TestApp {
    pub addr: SocketAddr,
    pub client: Client,
    pub config: Config,
    /// The server's clock: tests move it instead of sleeping. Siblings
    /// (other processes of the deployment) share it, as synchronized
    /// machines would.
    pub clock: Clock,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    /// Held for its drop: the schema goes with the app.
    _pg_schema: Option<PgSchema>,
    /// The original owns the database, data folder and broker objects; a
    /// sibling (another process of the same deployment) only borrows them.
    owner: bool,
    _data: Option<TempDir>,
}

/// The broker to test against, if any.
pub fn amqp_url() -> Option<String> {
    std::env::var("SWIFTDROP_TEST_AMQP_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

/// The Redis to test the shared gates against, if any.
pub fn redis_url() -> Option<String> {
    std::env::var("SWIFTDROP_TEST_REDIS_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

/// Which database this run tests against.
pub fn postgres_url() -> Option<String> {
    std::env::var("SWIFTDROP_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

fn announce_backend() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let database = match postgres_url() {
            Some(_) => "postgres (SWIFTDROP_TEST_DATABASE_URL)",
            None => "sqlite (set SWIFTDROP_TEST_DATABASE_URL for PostgreSQL)",
        };
        let broker = match amqp_url() {
            Some(_) => "rabbitmq (SWIFTDROP_TEST_AMQP_URL)",
            None => "in-process (set SWIFTDROP_TEST_AMQP_URL for RabbitMQ)",
        };
        let gates = match redis_url() {
            Some(_) => "redis (SWIFTDROP_TEST_REDIS_URL)",
            None => "in-process (set SWIFTDROP_TEST_REDIS_URL for Redis)",
        };
        eprintln!("integration tests: database = {database}; bus = {broker}; gates = {gates}");
    });
}

impl TestApp {
    pub async fn start() -> TestApp {
        Self::start_with(|_| {}).await
    }

    /// Starts with the test defaults, adjusted by `adjust`.
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
        announce_backend();
        let data = tempfile::tempdir().expect("temp dir");
        let mut config = Config {
            data_dir: data.path().to_owned(),
            bcrypt_cost: 4,
            // Generous by default; the tests of the limits tighten them.
            login_attempts_per_minute: 10_000,
            api_requests_per_second: 100_000,
            api_burst: 100_000,
            db_max_connections: 8,
            ..Config::default()
        };
        let mut pg_schema = None;
        if let Some(url) = postgres_url() {
            let schema = PgSchema::create(&url).await;
            config.database_url = Some(schema.url.clone());
            pg_schema = Some(schema);
        }
        if let Some(url) = amqp_url() {
            // Each test gets its own exchange and queues on the shared broker.
            config.amqp_url = Some(url);
            config.amqp_prefix = format!("t_{}", uuid::Uuid::now_v7().simple());
        }
        if let Some(url) = redis_url() {
            // ... and its own keys on the shared Redis (they expire).
            config.redis_url = Some(url);
            config.redis_prefix = format!("t_{}:", uuid::Uuid::now_v7().simple());
        }
        adjust(&mut config);
        Self::launch(config, data, pg_schema).await
    }

    async fn launch(config: Config, data: TempDir, pg_schema: Option<PgSchema>) -> TestApp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let clock = Clock::movable();
        let (shutdown, server) = Self::serve(&config, listener, swiftdrop::Roles::ALL, &clock).await;
        let client = Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .expect("client");
        TestApp {
            addr,
            client,
            config,
            clock,
            shutdown: Some(shutdown),
            server: Some(server),
            _pg_schema: pg_schema,
            owner: true,
            _data: Some(data),
        }
    }

    /// Another process of the same deployment: same database, secret and
    /// broker, its own port and roles.
    pub async fn sibling(&self, roles: swiftdrop::Roles) -> TestApp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let config = self.config.clone();
        let (shutdown, server) = Self::serve(&config, listener, roles, &self.clock).await;
        TestApp {
            addr,
            client: self.client.clone(),
            config,
            clock: self.clock.clone(),
            shutdown: Some(shutdown),
            server: Some(server),
            _pg_schema: None,
            owner: false,
            _data: None,
        }
    }

    async fn serve(
        config: &Config,
        listener: tokio::net::TcpListener,
        roles: swiftdrop::Roles,
        clock: &Clock,
    ) -> (oneshot::Sender<()>, tokio::task::JoinHandle<anyhow::Result<()>>) {
        let app = swiftdrop::build_with(config, roles, clock.clone())
            .await
            .expect("app builds");
        let (shutdown, stop) = oneshot::channel::<()>();
        let server = tokio::spawn(swiftdrop::serve(app, listener, async {
            let _ = stop.await;
        }));
        (shutdown, server)
    }

    /// Stops the server but keeps its database (and data folder).
    pub async fn halt(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("server task").expect("server stops cleanly");
        }
    }

    /// Stops the server, keeps its database, lets `downtime` pass on its
    /// clock, and starts it again on the same address, as after a crash or
    /// a deploy.
    pub async fn restart(&mut self, downtime: chrono::Duration) {
        self.halt().await;
        self.clock.advance(downtime).expect("a test clock moves");
        let listener = tokio::net::TcpListener::bind(self.addr).await.expect("rebind");
        let (shutdown, server) =
            Self::serve(&self.config, listener, swiftdrop::Roles::ALL, &self.clock).await;
        self.shutdown = Some(shutdown);
        self.server = Some(server);
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn request(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let request = self.client.request(method, self.url(path));
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        self.request(Method::GET, path, token)
            .send()
            .await
            .expect("request")
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Response {
        self.request(Method::POST, path, token)
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    pub async fn put(&self, path: &str, token: Option<&str>, body: Value) -> Response {
        self.request(Method::PUT, path, token)
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    /// Registers `username` with the shared test password.
    pub async fn register(&self, username: &str) -> Value {
        let response = self
            .post(
                "/api/v1/auth/register",
                None,
                json!({"email": format!("{username}@example.com"), "username": username, "password": PASSWORD}),
            )
            .await;
        expect_json(response, StatusCode::CREATED).await
    }

    /// Logs in and returns the token pair.
    pub async fn login(&self, login: &str, password: &str) -> Value {
        let response = self
            .post(
                "/api/v1/auth/login",
                None,
                json!({"username": login, "password": password}),
            )
            .await;
        expect_json(response, StatusCode::OK).await
    }

    /// Registers and logs in a customer; returns (user, access token, refresh token).
    pub async fn customer(&self, username: &str) -> (Value, String, String) {
        let user = self.register(username).await;
        let tokens = self.login(username, PASSWORD).await;
        (
            user,
            token_of(&tokens, "access_token"),
            token_of(&tokens, "refresh_token"),
        )
    }

    /// Creates an admin the way an operator does, and logs in.
    pub async fn admin(&self, username: &str) -> (Value, String) {
        let app = swiftdrop::build(&self.config).await.expect("app builds");
        swiftdrop::seed::create_admin(&app, &format!("{username}@example.com"), username, PASSWORD)
            .await
            .expect("admin created");
        let tokens = self.login(username, PASSWORD).await;
        let token = token_of(&tokens, "access_token");
        let me = expect_json(self.get("/api/v1/auth/me", Some(&token)).await, StatusCode::OK).await;
        (me, token)
    }

    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        match self.server.take() {
            Some(server) => server.await.expect("server task"),
            None => Ok(()),
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        let broker = self
            .config
            .amqp_url
            .clone()
            .filter(|_| self.owner)
            .map(|url| (url, self.config.amqp_prefix.clone()));
        if let Some((url, prefix)) = broker {
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
                if let Ok(runtime) = runtime {
                    runtime.block_on(delete_broker_objects(&url, &prefix));
                }
            })
            .join();
        }
    }
}

/// A fresh PostgreSQL schema for one test, dropped with it.
pub struct PgSchema {
    /// The database URL with the schema as its search path.
    pub url: String,
    base: String,
    name: String,
}

impl PgSchema {
    pub async fn create(base: &str) -> PgSchema {
        let name = format!("t_{}", uuid::Uuid::now_v7().simple());
        create_schema(base, &name).await;
        let separator = if base.contains('?') { '&' } else { '?' };
        PgSchema {
            url: format!("{base}{separator}options=-c%20search_path%3D{name}"),
            base: base.to_owned(),
            name,
        }
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let (url, schema) = (self.base.clone(), self.name.clone());
        // Drop runs inside the test's runtime; clean up on a thread of our own.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
            if let Ok(runtime) = runtime {
                runtime.block_on(drop_schema(&url, &schema));
            }
        })
        .join();
    }
}

async fn delete_broker_objects(url: &str, prefix: &str) {
    use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
    let connect = lapin::Connection::connect(url, lapin::ConnectionProperties::default());
    let Ok(Ok(connection)) = tokio::time::timeout(std::time::Duration::from_secs(5), connect).await else {
        return;
    };
    if let Ok(channel) = connection.create_channel().await {
        let _ = channel
            .queue_delete(
                format!("{prefix}.history").as_str().into(),
                QueueDeleteOptions::default(),
            )
            .await;
        let _ = channel
            .exchange_delete(
                format!("{prefix}.events").as_str().into(),
                ExchangeDeleteOptions::default(),
            )
            .await;
    }
    let _ = connection.close(200, "test done".into()).await;
}

async fn create_schema(url: &str, schema: &str) {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .expect("SWIFTDROP_TEST_DATABASE_URL connects");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&mut conn)
        .await
        .expect("create schema");
}

async fn drop_schema(url: &str, schema: &str) {
    use sqlx::Connection;
    if let Ok(mut conn) = sqlx::PgConnection::connect(url).await {
        // Never hang a test run on cleanup: leave the schema if it is busy.
        let _ = sqlx::query("SET lock_timeout = '5s'").execute(&mut conn).await;
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE"
        )))
        .execute(&mut conn)
        .await;
    }
}

/// Moves the server's clock forward (the scheduler wakes at once).
impl TestApp {
    pub fn advance(&self, by: chrono::Duration) {
        self.clock.advance(by).expect("a test clock moves");
    }
}

/// Polls until `check` passes: for what another task does on its own (the
/// scheduler, a push, another process). Bounded: fails after ten seconds.
pub async fn eventually<F: AsyncFn() -> bool>(what: &str, check: F) {
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{what} did not happen within 10 s");
}

pub fn token_of(tokens: &Value, field: &str) -> String {
    tokens[field]
        .as_str()
        .unwrap_or_else(|| panic!("no {field} in {tokens}"))
        .to_owned()
}

/// Asserts the status and returns the JSON body.
pub async fn expect_json(response: Response, status: StatusCode) -> Value {
    let actual = response.status();
    let text = response.text().await.expect("body");
    assert_eq!(actual, status, "unexpected status; body: {text}");
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
}

/// Asserts a problem document with this status and code; returns it.
pub async fn expect_problem(response: Response, status: StatusCode, code: &str) -> Value {
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let problem = expect_json(response, status).await;
    assert_eq!(content_type, "application/problem+json", "{problem}");
    assert_eq!(problem["code"], code, "{problem}");
    assert_eq!(problem["status"], status.as_u16(), "{problem}");
    for field in ["type", "title", "detail"] {
        assert!(problem[field].is_string(), "problem lacks {field}: {problem}");
    }
    problem
}

/// The fields named by a 422 problem.
pub fn error_fields(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .filter_map(|e| e["field"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}
