//! kill -9 in the middle of a sale, again and again, on SQLite and on
//! PostgreSQL: after every restart each 201 answered has its order, each
//! confirmation answered stays confirmed, the stock balances, holds that
//! lapsed while the server was down expire, a go-live missed while it was
//! down happens at once, and every message committed before the crash is
//! delivered (and stored once).
//!
//! CI runs `SWIFTDROP_CRASH_ROUNDS` rounds (default 10) per database; the
//! long campaign is the same test with more rounds (docs/operations.md).

use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use chrono::{Duration, Utc};
use rand::Rng;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

use crate::harness::{eventually, postgres_url};
use crate::process::{Process, free_port};

const PASSWORD: &str = "Crash#Test1234";
const BUYERS: usize = 24;
/// Holds lapse quickly, so some lapse while the server is down.
const HOLD_SECONDS: i64 = 2;

fn rounds() -> usize {
    std::env::var("SWIFTDROP_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
}

/// What the buyers were told before the crash.
#[derive(Default)]
struct Answered {
    /// (order id, buyer's token) for every 201.
    reserved: Vec<(String, String)>,
    /// Orders whose confirmation was answered 200.
    confirmed: Vec<String>,
    /// Orders whose cancellation was answered 200.
    cancelled: Vec<String>,
}

struct Site {
    server: Process,
    env: Vec<(&'static str, String)>,
    port: u16,
    log: std::path::PathBuf,
    client: Client,
    admin: String,
}

impl Site {
    fn restart(&mut self) {
        self.server = Process::start(&["serve"], &self.env, self.port, &self.log);
    }

    async fn get(&self, path: &str, token: &str) -> Value {
        let response = self
            .client
            .get(self.server.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");
        response.json().await.unwrap()
    }

    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> reqwest::Response {
        let mut request = self.client.post(self.server.url(path)).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }

    async fn login(&self, username: &str) -> String {
        let response = self
            .post(
                "/api/v1/auth/login",
                None,
                json!({"username": username, "password": PASSWORD}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK, "login {username}");
        let tokens: Value = response.json().await.unwrap();
        tokens["access_token"].as_str().unwrap().to_owned()
    }

    /// A drop with `items` of `stock` each, going live at `starts_at`.
    async fn drop_at(
        &self,
        title: &str,
        starts_at: chrono::DateTime<Utc>,
        items: usize,
        stock: i64,
    ) -> Value {
        let mut lines = Vec::new();
        for i in 0..items {
            let product = self
                .post(
                    "/api/v1/admin/products",
                    Some(&self.admin),
                    json!({"name": format!("{title} {i}"), "category": "drops", "price_cents": 5000, "currency": "EUR"}),
                )
                .await;
            assert_eq!(product.status(), StatusCode::CREATED);
            let product: Value = product.json().await.unwrap();
            lines.push(json!({"product_id": product["id"], "price_cents": 5000, "stock": stock}));
        }
        let body = json!({
            "title": title, "description": "Crash test", "location": "Online",
            "start_time": starts_at, "end_time": starts_at + Duration::hours(2),
            "tags": [], "items": lines, "reservation_ttl_seconds": HOLD_SECONDS,
        });
        let event = self.post("/api/v1/admin/events", Some(&self.admin), body).await;
        let status = event.status();
        let event: Value = event.json().await.unwrap();
        assert_eq!(status, StatusCode::CREATED, "{event}");
        event
    }
}

/// Buys, confirms and cancels as fast as it can until the server dies,
/// writing down every answer it got.
async fn buyer(
    client: Client,
    base: String,
    token: String,
    items: Vec<String>,
    answered: Arc<Mutex<Answered>>,
) {
    loop {
        let item = items[rand::rng().random_range(0..items.len())].clone();
        let Ok(response) = client
            .post(format!("{base}/api/v1/purchase/{item}"))
            .bearer_auth(&token)
            .json(&json!({"quantity": 1}))
            .send()
            .await
        else {
            return;
        };
        if response.status() != StatusCode::CREATED {
            continue;
        }
        let Ok(order) = response.json::<Value>().await else {
            return;
        };
        let id = order["id"].as_str().unwrap().to_owned();
        answered
            .lock()
            .unwrap()
            .reserved
            .push((id.clone(), token.clone()));
        // A third confirm, a third cancel, a third let the hold lapse.
        let action = match rand::rng().random_range(0..3) {
            0 => "confirm",
            1 => "cancel",
            _ => continue,
        };
        let Ok(response) = client
            .post(format!("{base}/api/v1/purchase/{id}/{action}"))
            .bearer_auth(&token)
            .send()
            .await
        else {
            return;
        };
        if response.status() == StatusCode::OK {
            let mut answered = answered.lock().unwrap();
            match action {
                "confirm" => answered.confirmed.push(id),
                _ => answered.cancelled.push(id),
            }
        }
    }
}

async fn crash_rounds(database_url: Option<String>) {
    let data = tempfile::tempdir().unwrap();
    let log = data.path().join("server.log");
    let mut env = vec![
        (
            "SWIFTDROP_DATA_DIR",
            data.path().join("data").display().to_string(),
        ),
        ("SWIFTDROP_BCRYPT_COST", "4".to_owned()),
        ("SWIFTDROP_API_REQUESTS_PER_SECOND", "0".to_owned()),
        ("SWIFTDROP_PURCHASE_REQUESTS_PER_SECOND", "1000000".to_owned()),
        ("SWIFTDROP_PURCHASE_BURST", "1000000".to_owned()),
        ("SWIFTDROP_LOGIN_ATTEMPTS_PER_MINUTE", "1000000".to_owned()),
        ("SWIFTDROP_MAX_CONNECTIONS_PER_ADDRESS", "100000".to_owned()),
        ("RUST_LOG", "warn".to_owned()),
    ];
    if let Some(url) = &database_url {
        env.push(("DATABASE_URL", url.clone()));
    }
    let admin = std::process::Command::new(env!("CARGO_BIN_EXE_swiftdrop"))
        .env_clear()
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .args([
            "admin",
            "create",
            "--email",
            "boss@example.com",
            "--username",
            "boss",
            "--password",
            PASSWORD,
        ])
        .output()
        .unwrap();
    assert!(
        admin.status.success(),
        "{}",
        String::from_utf8_lossy(&admin.stderr)
    );

    let port = free_port();
    let mut server = Process::start(&["serve"], &env, port, &log);
    server.wait_healthy().await;
    let client = Client::builder()
        .timeout(StdDuration::from_secs(30))
        .build()
        .unwrap();
    let mut site = Site {
        server,
        env,
        port,
        log,
        client: client.clone(),
        admin: String::new(),
    };
    site.admin = site.login("boss").await;
    let mut buyers = Vec::new();
    for i in 0..BUYERS {
        let username = format!("buyer_{i}");
        let body =
            json!({"email": format!("{username}@example.com"), "username": username, "password": PASSWORD});
        let response = site.post("/api/v1/auth/register", None, body).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        buyers.push(site.login(&username).await);
    }
    let sale = site
        .drop_at("Crash sale", Utc::now() + Duration::minutes(1), 3, 100_000)
        .await;
    let sale_id = sale["id"].as_str().unwrap().to_owned();
    let opened = site
        .post(
            &format!("/api/v1/admin/events/{sale_id}/open"),
            Some(&site.admin),
            json!({}),
        )
        .await;
    assert_eq!(opened.status(), StatusCode::OK);
    let items: Vec<String> = sale["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect();

    let answered = Arc::new(Mutex::new(Answered::default()));
    for round in 0..rounds() {
        let (run_for, down_for) = {
            let mut rng = rand::rng();
            (rng.random_range(100..1500), rng.random_range(1000..2500))
        };
        // A drop due to go live while the server is down.
        let due = Utc::now() + Duration::milliseconds(run_for + 300);
        let missed = site.drop_at(&format!("Missed {round}"), due, 1, 10).await;
        let crowd: Vec<_> = buyers
            .iter()
            .map(|token| {
                tokio::spawn(buyer(
                    client.clone(),
                    site.server.base.clone(),
                    token.clone(),
                    items.clone(),
                    answered.clone(),
                ))
            })
            .collect();
        tokio::time::sleep(StdDuration::from_millis(run_for as u64)).await;
        site.server.kill9();
        for buyer in crowd {
            let _ = buyer.await;
        }
        tokio::time::sleep(StdDuration::from_millis(down_for as u64)).await;
        site.restart();
        site.server.wait_healthy().await;
        check(&site, &sale_id, &missed, &answered, &buyers[0], round).await;
    }
    let answered = answered.lock().unwrap();
    eprintln!(
        "crash test: {} rounds, {} reservations, {} confirmations, {} cancellations answered, none lost",
        rounds(),
        answered.reserved.len(),
        answered.confirmed.len(),
        answered.cancelled.len()
    );
    assert!(
        !answered.reserved.is_empty(),
        "the crowd bought nothing: the test proved nothing"
    );
    site.server.terminate();
}

/// Every promise, checked after a restart.
async fn check(
    site: &Site,
    sale_id: &str,
    missed: &Value,
    answered: &Mutex<Answered>,
    reader: &str,
    round: usize,
) {
    let (reserved, confirmed, cancelled) = {
        let answered = answered.lock().unwrap();
        (
            answered.reserved.clone(),
            answered.confirmed.clone(),
            answered.cancelled.clone(),
        )
    };
    // Every 201 has its order; every answered confirmation holds.
    for (id, token) in &reserved {
        let order = site.get(&format!("/api/v1/orders/{id}"), token).await;
        let status = order["status"].as_str().unwrap();
        if confirmed.contains(id) {
            assert_eq!(
                status, "confirmed",
                "round {round}: confirmed order {id} is {status}"
            );
        } else if cancelled.contains(id) {
            assert_eq!(
                status, "canceled",
                "round {round}: cancelled order {id} is {status}"
            );
        }
    }
    // Holds that lapsed while the server was down expire, and the stock
    // balances on every item.
    let audit = format!("/api/v1/admin/events/{sale_id}/stock");
    eventually("every lapsed hold expires and the stock balances", async || {
        let lines = site.get(&audit, &site.admin).await;
        lines.as_array().unwrap().iter().all(|line| {
            let total = line["stock_total"].as_i64().unwrap();
            let sum = ["stock_remaining", "reserved", "confirmed"]
                .iter()
                .map(|k| line[k].as_i64().unwrap())
                .sum::<i64>();
            assert_eq!(sum, total, "round {round}: the stock does not balance: {line}");
            line["reserved"] == 0
        })
    })
    .await;
    // The go-live missed while down happens at once.
    let missed_path = format!("/api/v1/events/{}", missed["id"].as_str().unwrap());
    eventually("the missed go-live happens", async || {
        site.get(&missed_path, &site.admin).await["status"] == "live"
    })
    .await;
    // Everything committed was delivered: a buyer's history holds each
    // drop's announcement once.
    eventually(
        "the announcements committed before the crash arrive",
        async || {
            let history = site.get("/api/v1/notifications?limit=100", reader).await;
            let titles: Vec<String> = history["data"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|n| n["payload"]["event"]["title"].as_str().map(str::to_owned))
                .collect();
            let mut unique = titles.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(
                unique.len(),
                titles.len(),
                "round {round}: a notification was stored twice: {titles:?}"
            );
            (0..=round).all(|r| titles.contains(&format!("Missed {r}")))
        },
    )
    .await;
}

#[tokio::test]
async fn kill_9_mid_sale_loses_nothing_on_sqlite() {
    crash_rounds(None).await;
}

#[tokio::test]
async fn kill_9_mid_sale_loses_nothing_on_postgres() {
    let Some(url) = postgres_url() else {
        eprintln!(
            "SKIPPED kill_9_mid_sale_loses_nothing_on_postgres: set SWIFTDROP_TEST_DATABASE_URL to run it"
        );
        return;
    };
    let schema = crate::harness::PgSchema::create(&url).await;
    crash_rounds(Some(schema.url.clone())).await;
}
