//! Preparing a test: the admin's token, a crowd of signed-in users, a drop.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::crowd::Crowd;

pub const PASSWORD: &str = "Load#Test2026";

/// Sends a request, retrying while the server sheds load (503) or limits
/// the address (429).
async fn send_patiently(request: impl Fn() -> reqwest::RequestBuilder) -> anyhow::Result<reqwest::Response> {
    for attempt in 0..60 {
        let response = request().send().await?;
        match response.status() {
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS => {
                tokio::time::sleep(Duration::from_millis(100 * (attempt + 1).min(10))).await;
            }
            _ => return Ok(response),
        }
    }
    bail!("the server kept refusing setup requests")
}

async fn json_of(response: reqwest::Response, expected: StatusCode, what: &str) -> anyhow::Result<Value> {
    let status = response.status();
    let body = response.text().await?;
    if status != expected {
        bail!("{what}: {status} {body}");
    }
    Ok(serde_json::from_str(&body)?)
}

pub async fn login(
    crowd: &Crowd,
    n: usize,
    base: &str,
    login: &str,
    password: &str,
) -> anyhow::Result<String> {
    let client = crowd.client(n);
    let response = send_patiently(|| {
        client
            .post(format!("{base}/api/v1/auth/login"))
            .json(&json!({"username": login, "password": password}))
    })
    .await
    .with_context(|| format!("cannot reach {base}: is the server running?"))?;
    let tokens = json_of(response, StatusCode::OK, "login").await?;
    tokens["access_token"]
        .as_str()
        .map(str::to_owned)
        .context("no access token")
}

/// The admin's password: the one given, or the demo's from `./data`.
pub fn admin_password(given: Option<String>) -> anyhow::Result<String> {
    match given {
        Some(password) => Ok(password),
        None => std::fs::read_to_string("data/demo-admin-password.txt")
            .map(|p| p.trim().to_owned())
            .context("pass --admin-password (or run the server with --demo from this folder)"),
    }
}

/// Who a load test runs as: one client address per user (and one for the
/// admin), the admin's token and the users' tokens.
pub struct Cast {
    pub crowd: Crowd,
    pub admin: String,
    pub tokens: Arc<Vec<String>>,
}

/// Signs the admin in (with `password`, or the demo's from `./data`), then
/// signs up and in `users` customers named `<tag><random>_<n>`, and says
/// how long that took.
pub async fn cast(
    base: &str,
    users: usize,
    admin: &str,
    password: Option<String>,
    tag: &str,
) -> anyhow::Result<Cast> {
    let crowd = Crowd::new(users.min(4000) + 1)?;
    let admin = login(&crowd, 0, base, admin, &admin_password(password)?).await?;
    let started = Instant::now();
    let prefix = format!("{tag}{}_", &uuid::Uuid::now_v7().simple().to_string()[24..]);
    let tokens = Arc::new(self::users(&crowd, base, users, &prefix).await?);
    println!(
        "setup: {} users signed in in {:.1} s",
        tokens.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(Cast { crowd, admin, tokens })
}

/// Registers and signs in `count` users (a few at a time: each costs the
/// server a bcrypt hash), returning their access tokens.
pub async fn users(crowd: &Crowd, base: &str, count: usize, prefix: &str) -> anyhow::Result<Vec<String>> {
    use futures::StreamExt;
    let results: Vec<anyhow::Result<String>> = futures::stream::iter(0..count)
        .map(|i| async move {
            let username = format!("{prefix}{i}");
            let client = crowd.client(i);
            let response = send_patiently(|| {
                client.post(format!("{base}/api/v1/auth/register")).json(&json!({
                    "email": format!("{username}@load.test"), "username": username, "password": PASSWORD
                }))
            })
            .await?;
            if response.status() != StatusCode::CREATED && response.status() != StatusCode::CONFLICT {
                bail!("register: {}", response.status());
            }
            login(crowd, i, base, &username, PASSWORD).await
        })
        .buffer_unordered(16)
        .collect()
        .await;
    results.into_iter().collect()
}

/// Creates a product and a drop with one item of `stock`, and opens it.
/// Returns (event id, item id).
pub async fn live_drop(
    crowd: &Crowd,
    base: &str,
    admin: &str,
    stock: i64,
) -> anyhow::Result<(String, String)> {
    let client = crowd.client(0);
    let product = json_of(
        client
            .post(format!("{base}/api/v1/admin/products"))
            .bearer_auth(admin)
            .json(&json!({"name": "Load test sneaker", "category": "loadtest", "price_cents": 12900, "currency": "EUR"}))
            .send()
            .await?,
        StatusCode::CREATED,
        "create product",
    )
    .await?;
    let start = (chrono::Utc::now() + chrono::Duration::minutes(1)).to_rfc3339();
    let end = (chrono::Utc::now() + chrono::Duration::hours(2)).to_rfc3339();
    let drop = json_of(
        client
            .post(format!("{base}/api/v1/admin/events"))
            .bearer_auth(admin)
            .json(&json!({
                "title": "Load test drop", "location": "Loopback", "start_time": start, "end_time": end,
                "items": [{"product_id": product["id"], "price_cents": 12900, "stock": stock}],
            }))
            .send()
            .await?,
        StatusCode::CREATED,
        "create drop",
    )
    .await?;
    let event_id = drop["id"].as_str().context("event id")?.to_owned();
    let item_id = drop["items"][0]["id"].as_str().context("item id")?.to_owned();
    json_of(
        client
            .post(format!("{base}/api/v1/admin/events/{event_id}/open"))
            .bearer_auth(admin)
            .send()
            .await?,
        StatusCode::OK,
        "open drop",
    )
    .await?;
    Ok((event_id, item_id))
}

/// Creates a product and an auction that is live a second later and runs
/// two minutes past `seconds`. Returns its id.
pub async fn live_auction(
    crowd: &Crowd,
    base: &str,
    admin: &str,
    inventory: i64,
    seconds: u64,
) -> anyhow::Result<String> {
    let client = crowd.client(0);
    let product = json_of(
        client
            .post(format!("{base}/api/v1/admin/products"))
            .bearer_auth(admin)
            .json(&json!({"name": "Load test guitar", "category": "loadtest", "price_cents": 90000, "currency": "EUR"}))
            .send()
            .await?,
        StatusCode::CREATED,
        "create product",
    )
    .await?;
    let start = chrono::Utc::now() + chrono::Duration::seconds(1);
    let end = start + chrono::Duration::seconds(seconds as i64 + 120);
    let auction = json_of(
        client
            .post(format!("{base}/api/v1/admin/auctions"))
            .bearer_auth(admin)
            .json(&json!({
                "product_id": product["id"], "upset_price_cents": 100, "inventory": inventory,
                "alpha": 1.0, "beta": 50.0, "gamma": 1.0,
                "start_time": start.to_rfc3339(), "end_time": end.to_rfc3339(),
            }))
            .send()
            .await?,
        StatusCode::CREATED,
        "create auction",
    )
    .await?;
    // Wait for the start.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    auction["id"].as_str().map(str::to_owned).context("auction id")
}

/// The admin's stock audit of a drop: (sold, stock total, balanced).
pub async fn audit(
    crowd: &Crowd,
    base: &str,
    admin: &str,
    event_id: &str,
) -> anyhow::Result<(i64, i64, bool)> {
    let lines = json_of(
        crowd
            .client(0)
            .get(format!("{base}/api/v1/admin/events/{event_id}/stock"))
            .bearer_auth(admin)
            .send()
            .await?,
        StatusCode::OK,
        "stock audit",
    )
    .await?;
    let line = &lines[0];
    let total = line["stock_total"].as_i64().unwrap_or(0);
    let sold = line["reserved"].as_i64().unwrap_or(0) + line["confirmed"].as_i64().unwrap_or(0);
    Ok((sold, total, line["balanced"].as_bool().unwrap_or(false)))
}
