use chrono::Duration;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::events::{event_body, event_body_at};
use crate::harness::{TestApp, error_fields, eventually, expect_json, expect_problem};

/// A test app whose purchase limit does not get in the way (the limit has
/// its own test).
async fn sale_app() -> TestApp {
    TestApp::start_with(|c| {
        c.purchase_requests_per_second = 100_000;
        c.purchase_burst = 100_000;
    })
    .await
}

async fn product(app: &TestApp, admin: &str, name: &str) -> String {
    let body = json!({"name": name, "category": "drops", "price_cents": 9900, "currency": "EUR"});
    let product = expect_json(
        app.post("/api/v1/admin/products", Some(admin), body).await,
        StatusCode::CREATED,
    )
    .await;
    product["id"].as_str().unwrap().to_owned()
}

/// Creates a drop with one item per `(stock, per_user_limit)`, live now.
pub(crate) async fn live_drop(
    app: &TestApp,
    admin: &str,
    items: &[(i64, Option<i64>)],
    ttl: Option<i64>,
) -> Value {
    let mut body = event_body("Sneaker drop", Duration::hours(1), Duration::hours(2));
    let mut list = Vec::new();
    for (i, (stock, limit)) in items.iter().enumerate() {
        let product_id = product(app, admin, &format!("Sneaker {i}")).await;
        list.push(json!({"product_id": product_id, "price_cents": 12000 + i as i64, "stock": stock, "per_user_limit": limit}));
    }
    body["items"] = json!(list);
    if let Some(ttl) = ttl {
        body["reservation_ttl_seconds"] = json!(ttl);
    }
    let event = expect_json(
        app.post("/api/v1/admin/events", Some(admin), body).await,
        StatusCode::CREATED,
    )
    .await;
    let id = event["id"].as_str().unwrap();
    expect_json(
        app.post(&format!("/api/v1/admin/events/{id}/open"), Some(admin), json!({}))
            .await,
        StatusCode::OK,
    )
    .await
}

pub(crate) async fn buy(
    app: &TestApp,
    token: &str,
    item: &str,
    body: Option<Value>,
    key: Option<&str>,
) -> reqwest::Response {
    let mut request = app.request(Method::POST, &format!("/api/v1/purchase/{item}"), Some(token));
    if let Some(body) = body {
        request = request.json(&body);
    }
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    request.send().await.unwrap()
}

async fn ledger(app: &TestApp, admin: &str, event_id: &str) -> Vec<Value> {
    let lines = expect_json(
        app.get(&format!("/api/v1/admin/events/{event_id}/stock"), Some(admin))
            .await,
        StatusCode::OK,
    )
    .await;
    lines.as_array().unwrap().clone()
}

async fn event(app: &TestApp, id: &str) -> Value {
    expect_json(
        app.get(&format!("/api/v1/events/{id}"), None).await,
        StatusCode::OK,
    )
    .await
}

#[tokio::test]
async fn a_crowd_buys_out_the_stock_exactly() {
    let app = sale_app().await;
    let (_, admin) = app.admin("dropper").await;
    let drop = live_drop(&app, &admin, &[(25, None)], None).await;
    let event_id = drop["id"].as_str().unwrap().to_owned();
    let item = drop["items"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(drop["status"], "live");

    let mut tokens = Vec::new();
    for i in 0..150 {
        tokens.push(app.customer(&format!("buyer{i}")).await.1);
    }
    // Every buyer presses buy twice, all at once, from many tasks.
    let attempts = tokens.iter().flat_map(|token| {
        let (app, item) = (&app, &item);
        [0, 1].map(move |_| async move { buy(app, token, item, None, None).await })
    });
    let responses = futures::future::join_all(attempts).await;
    let mut reserved = 0;
    for response in responses {
        match response.status() {
            StatusCode::CREATED => {
                let order = response.json::<Value>().await.unwrap();
                assert_eq!(order["status"], "reserved");
                assert_eq!(order["unit_price_cents"], 12000);
                reserved += order["quantity"].as_i64().unwrap();
            }
            StatusCode::CONFLICT => {
                expect_problem(response, StatusCode::CONFLICT, "sold_out").await;
            }
            other => panic!("unexpected status {other}: {}", response.text().await.unwrap()),
        }
    }
    assert_eq!(reserved, 25, "exactly the stock is sold");
    let lines = ledger(&app, &admin, &event_id).await;
    assert_eq!(lines[0]["stock_remaining"], 0);
    assert_eq!(lines[0]["reserved"], 25);
    assert_eq!(lines[0]["balanced"], true);
    let page = event(&app, &event_id).await;
    assert_eq!(page["items"][0]["stock_remaining"], 0);
    eventually("the event turns sold_out", async || {
        event(&app, &event_id).await["status"] == "sold_out"
    })
    .await;
    let late = buy(&app, &tokens[0], &item, None, None).await;
    expect_problem(late, StatusCode::CONFLICT, "sold_out").await;
}

#[tokio::test]
async fn racing_idempotent_retries_make_one_order() {
    let app = sale_app().await;
    let (_, admin) = app.admin("keymaster").await;
    let drop = live_drop(&app, &admin, &[(10, None)], None).await;
    let item = drop["items"][0]["id"].as_str().unwrap().to_owned();
    let (_, token, _) = app.customer("retrier").await;
    let attempts = (0..12).map(|_| {
        buy(
            &app,
            &token,
            &item,
            Some(json!({"quantity": 2})),
            Some("checkout-77"),
        )
    });
    let responses = futures::future::join_all(attempts).await;
    let mut ids = std::collections::HashSet::new();
    let mut created = 0;
    for response in responses {
        let status = response.status();
        assert!(
            status == StatusCode::CREATED || status == StatusCode::OK,
            "{status}"
        );
        created += usize::from(status == StatusCode::CREATED);
        ids.insert(
            response.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(ids.len(), 1, "one order for one key");
    assert_eq!(created, 1);
    let lines = ledger(&app, &admin, drop["id"].as_str().unwrap()).await;
    assert_eq!(lines[0]["reserved"], 2);
    assert_eq!(lines[0]["stock_remaining"], 8);
    // Another key is another order; the same key later still answers the first.
    assert_eq!(
        buy(&app, &token, &item, None, Some("checkout-78")).await.status(),
        StatusCode::CREATED
    );
    let again = buy(&app, &token, &item, None, Some("checkout-77")).await;
    assert_eq!(again.status(), StatusCode::OK);
    assert!(ids.contains(again.json::<Value>().await.unwrap()["id"].as_str().unwrap()));
}

#[tokio::test]
async fn per_user_limits_hold_across_requests() {
    let app = sale_app().await;
    let (_, admin) = app.admin("limiter").await;
    let drop = live_drop(&app, &admin, &[(100, Some(2))], None).await;
    let item = drop["items"][0]["id"].as_str().unwrap().to_owned();
    let (_, token, _) = app.customer("greedy").await;
    assert_eq!(
        buy(&app, &token, &item, None, None).await.status(),
        StatusCode::CREATED
    );
    assert_eq!(
        buy(&app, &token, &item, None, None).await.status(),
        StatusCode::CREATED
    );
    expect_problem(
        buy(&app, &token, &item, None, None).await,
        StatusCode::CONFLICT,
        "limit_reached",
    )
    .await;
    let (_, other, _) = app.customer("modest").await;
    expect_problem(
        buy(&app, &other, &item, Some(json!({"quantity": 3})), None).await,
        StatusCode::CONFLICT,
        "limit_reached",
    )
    .await;
    // Racing requests of one user cannot pass the limit together either.
    let (_, racer, _) = app.customer("racer").await;
    let attempts = (0..10).map(|_| buy(&app, &racer, &item, None, None));
    let ok = futures::future::join_all(attempts)
        .await
        .iter()
        .filter(|r| r.status() == StatusCode::CREATED)
        .count();
    assert_eq!(ok, 2);
}

#[tokio::test]
async fn cancel_and_expiry_return_stock() {
    let app = sale_app().await;
    let (_, admin) = app.admin("returns").await;
    let drop = live_drop(&app, &admin, &[(2, None)], Some(1)).await;
    let event_id = drop["id"].as_str().unwrap().to_owned();
    let item = drop["items"][0]["id"].as_str().unwrap().to_owned();
    let (_, ann, _) = app.customer("ann").await;
    let (_, ben, _) = app.customer("ben").await;

    let first = expect_json(buy(&app, &ann, &item, None, None).await, StatusCode::CREATED).await;
    let second = expect_json(buy(&app, &ben, &item, None, None).await, StatusCode::CREATED).await;
    expect_problem(
        buy(&app, &ben, &item, None, None).await,
        StatusCode::CONFLICT,
        "sold_out",
    )
    .await;

    // Cancel: the unit is buyable again at once.
    let canceled = expect_json(
        app.post(
            &format!("/api/v1/purchase/{}/cancel", first["id"].as_str().unwrap()),
            Some(&ann),
            json!({}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(canceled["status"], "canceled");
    let rebought = expect_json(buy(&app, &ben, &item, None, None).await, StatusCode::CREATED).await;

    // Expiry: unconfirmed reservations expire on their own after the hold.
    app.advance(Duration::seconds(2));
    let order_path = format!("/api/v1/orders/{}", second["id"].as_str().unwrap());
    eventually("the reservation expires", async || {
        expect_json(app.get(&order_path, Some(&ben)).await, StatusCode::OK).await["status"] == "expired"
    })
    .await;
    eventually("the stock comes back", async || {
        let lines = ledger(&app, &admin, &event_id).await;
        lines[0]["stock_remaining"] == 2 && lines[0]["balanced"] == true
    })
    .await;
    let late = app
        .post(
            &format!("/api/v1/purchase/{}/confirm", rebought["id"].as_str().unwrap()),
            Some(&ben),
            json!({}),
        )
        .await;
    expect_problem(late, StatusCode::CONFLICT, "reservation_expired").await;
    assert_eq!(event(&app, &event_id).await["items"][0]["stock_remaining"], 2);
}

#[tokio::test]
async fn confirmed_orders_keep_their_stock_and_orders_are_private() {
    let app = sale_app().await;
    let (_, admin) = app.admin("cashier").await;
    let drop = live_drop(&app, &admin, &[(5, None)], None).await;
    let item = drop["items"][0]["id"].as_str().unwrap().to_owned();
    let (_, owner, _) = app.customer("owner").await;
    let (_, thief, _) = app.customer("thief").await;
    let order = expect_json(
        buy(&app, &owner, &item, Some(json!({"quantity": 2})), None).await,
        StatusCode::CREATED,
    )
    .await;
    assert!(order["expires_at"].is_string());
    let id = order["id"].as_str().unwrap();

    for (method, path) in [
        (Method::GET, format!("/api/v1/orders/{id}")),
        (Method::POST, format!("/api/v1/purchase/{id}/confirm")),
        (Method::POST, format!("/api/v1/purchase/{id}/cancel")),
    ] {
        let response = app.request(method, &path, Some(&thief)).send().await.unwrap();
        expect_problem(response, StatusCode::NOT_FOUND, "not_found").await;
    }
    let confirmed = expect_json(
        app.post(&format!("/api/v1/purchase/{id}/confirm"), Some(&owner), json!({}))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(confirmed["status"], "confirmed");
    let again = expect_json(
        app.post(&format!("/api/v1/purchase/{id}/confirm"), Some(&owner), json!({}))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(again["status"], "confirmed");
    expect_json(
        app.get(&format!("/api/v1/orders/{id}"), Some(&admin)).await,
        StatusCode::OK,
    )
    .await;

    let mine = expect_json(
        app.get("/api/v1/profile/orders", Some(&owner)).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(mine["data"].as_array().unwrap().len(), 1);
    let theirs = expect_json(
        app.get("/api/v1/profile/orders", Some(&thief)).await,
        StatusCode::OK,
    )
    .await;
    assert!(theirs["data"].as_array().unwrap().is_empty());

    let dashboard = expect_json(
        app.get("/api/v1/admin/dashboard", Some(&admin)).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(dashboard["orders"]["confirmed"], 1);
    assert_eq!(dashboard["revenue_cents"], 24000);
    assert_eq!(dashboard["events"]["live"], 1);
    assert_eq!(dashboard["sell_through"][0]["sold"], 2);
    assert_eq!(dashboard["sell_through"][0]["stock_total"], 5);
    assert_eq!(dashboard["top_products"][0]["units_sold"], 2);
}

#[tokio::test]
async fn purchases_outside_the_window_are_refused() {
    let app = sale_app().await;
    let (_, admin) = app.admin("timer").await;
    let product_id = product(&app, &admin, "Watch").await;
    let mut body = event_body("Later drop", Duration::hours(1), Duration::hours(1));
    body["items"] = json!([{"product_id": product_id, "price_cents": 500, "stock": 3}]);
    let drop = expect_json(
        app.post("/api/v1/admin/events", Some(&admin), body).await,
        StatusCode::CREATED,
    )
    .await;
    let id = drop["id"].as_str().unwrap().to_owned();
    let item = drop["items"][0]["id"].as_str().unwrap().to_owned();
    let (_, token, _) = app.customer("early").await;
    expect_problem(
        buy(&app, &token, &item, None, None).await,
        StatusCode::CONFLICT,
        "event_not_live",
    )
    .await;

    // Scheduled drops are editable; live ones are not. An item named by
    // its id keeps it (links and open pages still point at it); an item
    // without one is new; an id from elsewhere is refused.
    let second_product = product(&app, &admin, "Strap").await;
    let mut edit = event_body("Later drop v2", Duration::hours(1), Duration::hours(1));
    edit["items"] = json!([
        {"id": item, "product_id": product_id, "price_cents": 450, "stock": 4},
        {"product_id": second_product, "price_cents": 100, "stock": 9},
    ]);
    let edited = expect_json(
        app.put(&format!("/api/v1/admin/events/{id}"), Some(&admin), edit.clone())
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(edited["items"][0]["id"], item.as_str());
    assert_eq!(edited["items"][0]["stock_total"], 4);
    assert_eq!(edited["items"][0]["price_cents"], 450);
    assert_eq!(edited["items"][1]["stock_total"], 9);
    let mut foreign = edit.clone();
    foreign["items"][1]["id"] = json!(uuid::Uuid::now_v7());
    let problem = expect_problem(
        app.put(&format!("/api/v1/admin/events/{id}"), Some(&admin), foreign)
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(error_fields(&problem), ["items[1].id"]);
    // Dropping the second item removes it; the first stays.
    edit["items"] = json!([{"id": item, "product_id": product_id, "price_cents": 450, "stock": 4}]);
    let edited = expect_json(
        app.put(&format!("/api/v1/admin/events/{id}"), Some(&admin), edit.clone())
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(edited["items"].as_array().unwrap().len(), 1);
    assert_eq!(edited["items"][0]["id"], item.as_str());
    expect_json(
        app.post(
            &format!("/api/v1/admin/events/{id}/open"),
            Some(&admin),
            json!({}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    expect_problem(
        app.put(&format!("/api/v1/admin/events/{id}"), Some(&admin), edit)
            .await,
        StatusCode::CONFLICT,
        "event_not_editable",
    )
    .await;
    assert_eq!(
        buy(&app, &token, &item, None, None).await.status(),
        StatusCode::CREATED
    );
    let closed = expect_json(
        app.post(
            &format!("/api/v1/admin/events/{id}/close"),
            Some(&admin),
            json!({}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(closed["status"], "closed");
    expect_problem(
        buy(&app, &token, &item, None, None).await,
        StatusCode::CONFLICT,
        "event_not_live",
    )
    .await;
    expect_problem(
        app.post(
            &format!("/api/v1/admin/events/{id}/open"),
            Some(&admin),
            json!({}),
        )
        .await,
        StatusCode::CONFLICT,
        "event_not_editable",
    )
    .await;
}

#[tokio::test]
async fn events_go_live_and_close_on_time_and_catch_up_after_a_restart() {
    // Tokens outlive the hour this test moves its clock through.
    let mut app = TestApp::start_with(|c| c.access_ttl_seconds = 24 * 3600).await;
    let (_, admin) = app.admin("clock").await;
    let product_id = product(&app, &admin, "Cap").await;
    let timed = |title: &str, starts_in: Duration, lasts: Duration, stock: i64| {
        let mut body = event_body_at(app.clock.now(), title, starts_in, lasts);
        body["items"] = json!([{"product_id": product_id, "price_cents": 500, "stock": stock}]);
        body
    };
    let body = timed("Timed drop", Duration::minutes(10), Duration::minutes(30), 3);
    let drop = expect_json(
        app.post("/api/v1/admin/events", Some(&admin), body).await,
        StatusCode::CREATED,
    )
    .await;
    let id = drop["id"].as_str().unwrap().to_owned();
    assert_eq!(drop["status"], "scheduled");
    app.advance(Duration::minutes(10));
    eventually("the drop goes live by itself", async || {
        event(&app, &id).await["status"] == "live"
    })
    .await;
    app.advance(Duration::minutes(30));
    eventually("the drop closes by itself", async || {
        event(&app, &id).await["status"] == "closed"
    })
    .await;

    // While the server is down, a drop's start and end both pass and a
    // reservation's hold runs out: after the restart all of it is applied.
    let mut body = timed("Missed drop", Duration::minutes(1), Duration::hours(2), 3);
    body["reservation_ttl_seconds"] = json!(60);
    let missed = expect_json(
        app.post("/api/v1/admin/events", Some(&admin), body).await,
        StatusCode::CREATED,
    )
    .await;
    let missed_id = missed["id"].as_str().unwrap().to_owned();
    let body = timed("Short drop", Duration::minutes(2), Duration::minutes(5), 1);
    let short = expect_json(
        app.post("/api/v1/admin/events", Some(&admin), body).await,
        StatusCode::CREATED,
    )
    .await;
    let short_id = short["id"].as_str().unwrap().to_owned();
    let item = missed["items"][0]["id"].as_str().unwrap().to_owned();
    let (_, token, _) = app.customer("sleeper").await;
    app.advance(Duration::minutes(1));
    eventually("the missed drop opens", async || {
        event(&app, &missed_id).await["status"] == "live"
    })
    .await;
    let order = expect_json(buy(&app, &token, &item, None, None).await, StatusCode::CREATED).await;

    // Down for ten minutes: the short drop's whole window and the hold pass.
    app.restart(Duration::minutes(10)).await;
    eventually("the short drop is closed after the restart", async || {
        event(&app, &short_id).await["status"] == "closed"
    })
    .await;
    let order_path = format!("/api/v1/orders/{}", order["id"].as_str().unwrap());
    eventually("the missed hold expires after the restart", async || {
        expect_json(app.get(&order_path, Some(&token)).await, StatusCode::OK).await["status"] == "expired"
    })
    .await;
    assert_eq!(event(&app, &missed_id).await["items"][0]["stock_remaining"], 3);
}

#[tokio::test]
async fn bad_purchase_input_is_422_and_the_rate_limit_429() {
    // A slow refill, so the burst is what the crowd below runs into.
    let app = TestApp::start_with(|c| c.purchase_requests_per_second = 1).await;
    let (_, admin) = app.admin("guard").await;
    let drop = live_drop(&app, &admin, &[(1000, None)], None).await;
    let item = drop["items"][0]["id"].as_str().unwrap().to_owned();
    let (_, token, _) = app.customer("tester").await;
    let cases = [
        (Some(json!({"quantity": 0})), None, "quantity"),
        (Some(json!({"quantity": 101})), None, "quantity"),
        (Some(json!({"quantity": "two"})), None, "quantity"),
        (None, Some("has space"), "Idempotency-Key"),
    ];
    for (body, key, field) in cases {
        let problem = expect_problem(
            buy(&app, &token, &item, body, key).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert_eq!(error_fields(&problem), [field]);
    }
    let unknown = buy(&app, &token, &uuid::Uuid::now_v7().to_string(), None, None).await;
    expect_problem(unknown, StatusCode::NOT_FOUND, "not_found").await;
    expect_problem(
        buy(&app, "nope", &item, None, None).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    // A burst of 10 per address: 30 at once cannot all pass.
    let crowd = (0..30).map(|_| buy(&app, &token, &item, None, None));
    let statuses: Vec<StatusCode> = futures::future::join_all(crowd)
        .await
        .iter()
        .map(|r| r.status())
        .collect();
    assert!(statuses.contains(&StatusCode::TOO_MANY_REQUESTS), "{statuses:?}");
    let limited = buy(&app, &token, &item, None, None).await;
    assert!(limited.headers().contains_key("retry-after"));
    expect_problem(limited, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
}

#[tokio::test]
async fn a_standby_worker_takes_over_when_the_active_one_stops() {
    if crate::harness::postgres_url().is_none() {
        eprintln!(
            "SKIPPED a_standby_worker_takes_over: the worker lock is PostgreSQL's (set SWIFTDROP_TEST_DATABASE_URL)"
        );
        return;
    }
    let mut active = sale_app().await;
    let standby = active.sibling(swiftdrop::Roles::ALL).await;
    let (_, admin) = active.admin("failover").await;
    let product_id = product(&active, &admin, "Badge").await;
    let mut body = event_body_at(
        active.clock.now(),
        "Failover drop",
        Duration::minutes(5),
        Duration::hours(1),
    );
    body["items"] = json!([{"product_id": product_id, "price_cents": 500, "stock": 3}]);
    let drop = expect_json(
        active.post("/api/v1/admin/events", Some(&admin), body).await,
        StatusCode::CREATED,
    )
    .await;
    let id = drop["id"].as_str().unwrap().to_owned();
    // The process holding the lock goes away before the start time.
    active.halt().await;
    active.advance(Duration::minutes(5));
    eventually("the standby opens the drop", async || {
        event(&standby, &id).await["status"] == "live"
    })
    .await;
}
