//! Starts the real `swiftdrop` binary as the processes of one deployment,
//! each on its own 127.0.0.1 port, with a fresh PostgreSQL schema, Redis
//! key prefix and broker prefix per run; kills and cleans up on drop.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use tempfile::TempDir;

pub const PASSWORD: &str = "Cluster#2026";

/// The services the deployment needs, from the test environment.
struct Services {
    database: String,
    amqp: String,
    redis: String,
}

fn services() -> Option<Services> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let (database, amqp, redis) = (
        var("SWIFTDROP_TEST_DATABASE_URL"),
        var("SWIFTDROP_TEST_AMQP_URL"),
        var("SWIFTDROP_TEST_REDIS_URL"),
    );
    match (database, amqp, redis) {
        (Some(database), Some(amqp), Some(redis)) => Some(Services {
            database,
            amqp,
            redis,
        }),
        (database, amqp, redis) => {
            let missing: Vec<&str> = [
                (database.is_none(), "SWIFTDROP_TEST_DATABASE_URL (PostgreSQL)"),
                (amqp.is_none(), "SWIFTDROP_TEST_AMQP_URL (RabbitMQ)"),
                (redis.is_none(), "SWIFTDROP_TEST_REDIS_URL (Redis)"),
            ]
            .into_iter()
            .filter_map(|(absent, name)| absent.then_some(name))
            .collect();
            eprintln!(
                "SKIPPED the cluster test: it needs PostgreSQL, Redis and RabbitMQ; not set: {}",
                missing.join(", ")
            );
            None
        }
    }
}

/// One process of the deployment.
#[derive(Clone, Debug)]
pub struct Node {
    pub name: String,
    pub addr: SocketAddr,
}

impl Node {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

struct Process {
    node: Node,
    child: Child,
    log: PathBuf,
}

pub struct Deployment {
    pub client: Client,
    env: BTreeMap<String, String>,
    processes: Vec<Process>,
    database: String,
    schema: String,
    amqp: (String, String),
    dir: TempDir,
}

fn free_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address")
}

/// The real binary, with nothing of the test's environment but `env`.
fn binary(env: &BTreeMap<String, String>) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_swiftdrop"));
    command.env_clear().envs(env);
    command
}

impl Deployment {
    /// Starts 2 api, 2 notifier and 2 worker processes; `None` (after
    /// saying so) when a service is absent.
    pub async fn start(settings: &[(&str, String)]) -> Option<Deployment> {
        let services = services()?;
        let run = uuid::Uuid::now_v7().simple().to_string();
        let schema = format!("c_{run}");
        create_schema(&services.database, &schema).await;
        let separator = if services.database.contains('?') { '&' } else { '?' };
        let mut env: BTreeMap<String, String> = [
            (
                "DATABASE_URL",
                format!(
                    "{}{separator}options=-c%20search_path%3D{schema}",
                    services.database
                ),
            ),
            ("REDIS_URL", services.redis.clone()),
            ("AMQP_URL", services.amqp.clone()),
            ("SWIFTDROP_REDIS_PREFIX", format!("c_{run}:")),
            ("SWIFTDROP_AMQP_PREFIX", format!("c_{run}")),
            ("SWIFTDROP_SECRET", format!("cluster-test-secret-{run}")),
            ("SWIFTDROP_BCRYPT_COST", "4".to_owned()),
            // The test stands in for the load balancer: it names the client.
            ("SWIFTDROP_TRUSTED_PROXIES", "127.0.0.1".to_owned()),
            ("SWIFTDROP_DB_MAX_CONNECTIONS", "8".to_owned()),
            ("SWIFTDROP_LOG", "json".to_owned()),
            ("RUST_LOG", "info".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        for (key, value) in settings {
            env.insert((*key).to_owned(), value.clone());
        }
        let mut deployment = Deployment {
            client: Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .expect("client"),
            amqp: (services.amqp, format!("c_{run}")),
            database: services.database,
            schema,
            env,
            processes: Vec::new(),
            dir: tempfile::tempdir().expect("temp dir"),
        };
        // Migrations once, before the processes race to start.
        let migrate = deployment.command("migrate").output().expect("run migrate");
        assert!(
            migrate.status.success(),
            "swiftdrop migrate failed: {}",
            String::from_utf8_lossy(&migrate.stderr)
        );
        for (name, role) in [
            ("api-1", "api"),
            ("api-2", "api"),
            ("notifier-1", "notifier"),
            ("notifier-2", "notifier"),
            ("worker-1", "worker"),
            ("worker-2", "worker"),
        ] {
            deployment.spawn(name, role);
        }
        for process in &deployment.processes {
            let node = process.node.clone();
            let ready = async || {
                let response = deployment.client.get(node.url("/ready")).send().await;
                matches!(response, Ok(r) if r.status() == StatusCode::OK)
            };
            let mut tries = 0;
            while !ready().await {
                tries += 1;
                if tries > 300 {
                    panic!(
                        "{} is not ready after 30 s:\n{}",
                        node.name,
                        deployment.log_tail(&node.name)
                    );
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        eprintln!(
            "cluster: {} processes ready ({})",
            deployment.processes.len(),
            deployment
                .processes
                .iter()
                .map(|p| format!("{} on {}", p.node.name, p.node.addr))
                .collect::<Vec<_>>()
                .join(", ")
        );
        Some(deployment)
    }

    fn command(&self, args: &str) -> Command {
        let mut command = binary(&self.env);
        command
            .args(args.split_whitespace())
            .env("SWIFTDROP_DATA_DIR", self.dir.path().join("cli"));
        command
    }

    fn spawn(&mut self, name: &str, role: &str) {
        let addr = free_addr();
        let log = self.dir.path().join(format!("{name}.log"));
        let file = std::fs::File::create(&log).expect("log file");
        let child = binary(&self.env)
            .arg(role)
            .env("SWIFTDROP_ADDR", addr.to_string())
            .env("SWIFTDROP_DATA_DIR", self.dir.path().join(name))
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .stdin(Stdio::null())
            .spawn()
            .expect("start swiftdrop");
        self.processes.push(Process {
            node: Node {
                name: name.to_owned(),
                addr,
            },
            child,
            log,
        });
    }

    pub fn node(&self, name: &str) -> Node {
        self.processes
            .iter()
            .find(|p| p.node.name == name)
            .map(|p| p.node.clone())
            .unwrap_or_else(|| panic!("no process {name}"))
    }

    /// The end of a process's log, to explain a failure.
    pub fn log_tail(&self, name: &str) -> String {
        let Some(process) = self.processes.iter().find(|p| p.node.name == name) else {
            return String::new();
        };
        let text = std::fs::read_to_string(&process.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// SIGKILL: no shutdown, no flush, as a crash or an OOM kill. (The
    /// process is reaped when the deployment stops.)
    pub fn kill(&self, name: &str) {
        let process = self
            .processes
            .iter()
            .find(|p| p.node.name == name)
            .unwrap_or_else(|| panic!("no process {name}"));
        signal(&process.child, "-KILL");
        eprintln!("cluster: killed {name} (SIGKILL)");
    }

    pub async fn ready(&self, node: &Node) -> Value {
        match self.client.get(node.url("/ready")).send().await {
            Ok(response) => response.json().await.unwrap_or(Value::Null),
            Err(_) => Value::Null,
        }
    }

    pub async fn get_json(&self, node: &Node, path: &str, token: &str) -> Value {
        let response = self
            .client
            .get(node.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path} on {}: {e}", node.name));
        expect(response, StatusCode::OK).await
    }

    async fn post_json(
        &self,
        node: &Node,
        path: &str,
        token: Option<&str>,
        address: &str,
        body: Value,
        status: StatusCode,
    ) -> Value {
        let mut request = self
            .client
            .post(node.url(path))
            .header("x-forwarded-for", address)
            .json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path} on {}: {e}", node.name));
        expect(response, status).await
    }

    /// An admin created the operator's way (the CLI on the shared
    /// database), signed in through `api`.
    pub async fn admin_token(&self, api: &Node) -> String {
        use std::io::Write;
        let mut child = self
            .command("admin create --email ops@cluster.test --username ops --password-stdin")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("admin create");
        let mut stdin = child.stdin.take().expect("stdin");
        writeln!(stdin, "{PASSWORD}").expect("password");
        drop(stdin);
        let output = child.wait_with_output().expect("admin create");
        assert!(
            output.status.success(),
            "admin create: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        self.login(api, "ops", "10.0.0.1").await
    }

    async fn login(&self, api: &Node, username: &str, address: &str) -> String {
        let tokens = self
            .post_json(
                api,
                "/api/v1/auth/login",
                None,
                address,
                json!({"username": username, "password": PASSWORD}),
                StatusCode::OK,
            )
            .await;
        tokens["access_token"].as_str().expect("access token").to_owned()
    }

    /// Registers and signs in a customer through `api`; its access token.
    pub async fn customer(&self, api: &Node, username: &str, address: &str) -> String {
        self.post_json(
            api,
            "/api/v1/auth/register",
            None,
            address,
            json!({"email": format!("{username}@cluster.test"), "username": username, "password": PASSWORD}),
            StatusCode::CREATED,
        )
        .await;
        self.login(api, username, address).await
    }

    /// A drop with one item, opened now; its id and the item's id.
    pub async fn live_drop(
        &self,
        api: &Node,
        admin: &str,
        title: &str,
        stock: i64,
        per_user_limit: Option<i64>,
        hold_seconds: Option<i64>,
    ) -> (String, String) {
        let address = "10.0.0.1";
        let product = self
            .post_json(
                api,
                "/api/v1/admin/products",
                Some(admin),
                address,
                json!({"name": format!("{title} item"), "category": "drops", "price_cents": 9900, "currency": "EUR"}),
                StatusCode::CREATED,
            )
            .await;
        let start = chrono::Utc::now() + chrono::Duration::hours(1);
        let mut body = json!({
            "title": title,
            "description": "A drop of the cluster test",
            "location": "Berlin",
            "start_time": start.to_rfc3339(),
            "end_time": (start + chrono::Duration::hours(2)).to_rfc3339(),
            "tags": ["Drops"],
            "items": [{"product_id": product["id"], "price_cents": 12000, "stock": stock, "per_user_limit": per_user_limit}],
        });
        if let Some(hold) = hold_seconds {
            body["reservation_ttl_seconds"] = json!(hold);
        }
        let event = self
            .post_json(
                api,
                "/api/v1/admin/events",
                Some(admin),
                address,
                body,
                StatusCode::CREATED,
            )
            .await;
        let id = event["id"].as_str().expect("event id").to_owned();
        let opened = self
            .post_json(
                api,
                &format!("/api/v1/admin/events/{id}/open"),
                Some(admin),
                address,
                json!({}),
                StatusCode::OK,
            )
            .await;
        assert_eq!(opened["status"], "live", "{opened}");
        let item = opened["items"][0]["id"].as_str().expect("item id").to_owned();
        (id, item)
    }

    /// Stops the survivors with SIGTERM, as a deploy would, and checks
    /// they exit cleanly.
    pub async fn stop(mut self) {
        for process in &mut self.processes {
            if process.child.try_wait().ok().flatten().is_some() {
                continue;
            }
            signal(&process.child, "-TERM");
        }
        for process in &mut self.processes {
            let mut waited = 0;
            while process.child.try_wait().ok().flatten().is_none() && waited < 200 {
                tokio::time::sleep(Duration::from_millis(50)).await;
                waited += 1;
            }
        }
        let names: Vec<String> = self.processes.iter().map(|p| p.node.name.clone()).collect();
        for name in names {
            let process = self.processes.iter_mut().find(|p| p.node.name == name).unwrap();
            let status = process.child.try_wait().ok().flatten();
            // SIGKILLed ones report the signal; the rest must have exited 0.
            if let Some(status) = status
                && status.code().is_some()
            {
                assert!(
                    status.success(),
                    "{name} exited with {status}:\n{}",
                    self.log_tail(&name)
                );
            }
        }
    }
}

/// Sends a signal to one child of ours, by its id.
fn signal(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {signal} {}", child.id());
}

async fn expect(response: reqwest::Response, status: StatusCode) -> Value {
    let actual = response.status();
    let text = response.text().await.unwrap_or_default();
    assert_eq!(actual, status, "unexpected status; body: {text}");
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
}

impl Drop for Deployment {
    fn drop(&mut self) {
        for process in &mut self.processes {
            let _ = process.child.kill();
            let _ = process.child.wait();
        }
        let (database, schema) = (self.database.clone(), self.schema.clone());
        let (amqp, prefix) = self.amqp.clone();
        // Drop runs inside the test's runtime; clean up on a thread of our own.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
            if let Ok(runtime) = runtime {
                runtime.block_on(async {
                    drop_schema(&database, &schema).await;
                    delete_broker_objects(&amqp, &prefix).await;
                });
            }
        })
        .join();
    }
}

/// Polls `check` every 100 ms; fails after `seconds`.
pub async fn eventually<F: AsyncFn() -> bool>(what: &str, seconds: u64, check: F) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
    while !check().await {
        if tokio::time::Instant::now() > deadline {
            panic!("{what} did not happen within {seconds} s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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
        let _ = sqlx::query("SET lock_timeout = '5s'").execute(&mut conn).await;
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE"
        )))
        .execute(&mut conn)
        .await;
    }
}

async fn delete_broker_objects(url: &str, prefix: &str) {
    use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
    let connect = lapin::Connection::connect(url, lapin::ConnectionProperties::default());
    let Ok(Ok(connection)) = tokio::time::timeout(Duration::from_secs(5), connect).await else {
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
