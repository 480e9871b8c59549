//! Auctions end to end: setup, scored bids, the live leaderboard,
//! anti-sniping, and settlement into orders, exactly once.

use std::collections::HashMap;
use std::time::Duration as StdDuration;

use chrono::Duration;
use futures::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message as Frame;

use crate::harness::{TestApp, error_fields, eventually, expect_json, expect_problem};

/// A test app whose bid limit does not get in the way (the limit has its
/// own test) and whose tokens outlive the clock moves of these tests.
async fn auction_app() -> TestApp {
    TestApp::start_with(|c| {
        c.bid_requests_per_second = 100_000;
        c.bid_burst = 100_000;
        c.access_ttl_seconds = 24 * 3600;
    })
    .await
}

async fn product(app: &TestApp, admin: &str) -> String {
    let body =
        json!({"name": "Signed guitar", "category": "music", "price_cents": 50_000, "currency": "EUR"});
    let product = expect_json(
        app.post("/api/v1/admin/products", Some(admin), body).await,
        StatusCode::CREATED,
    )
    .await;
    product["id"].as_str().unwrap().to_owned()
}

/// An auction body starting `starts_in` from the server's clock.
fn auction_body(
    product: &str,
    now: chrono::DateTime<chrono::Utc>,
    starts_in: Duration,
    lasts: Duration,
) -> Value {
    json!({
        "product_id": product,
        "upset_price_cents": 1000,
        "inventory": 2,
        "alpha": 1.0,
        "beta": 10.0,
        "gamma": 1.0,
        "start_time": (now + starts_in).to_rfc3339(),
        "end_time": (now + starts_in + lasts).to_rfc3339(),
    })
}

async fn create(app: &TestApp, admin: &str, body: Value) -> Value {
    expect_json(
        app.post("/api/v1/admin/auctions", Some(admin), body).await,
        StatusCode::CREATED,
    )
    .await
}

async fn bid(app: &TestApp, token: &str, auction: &str, cents: i64) -> reqwest::Response {
    app.post(
        &format!("/api/v1/auctions/{auction}/bids"),
        Some(token),
        json!({"amount_cents": cents}),
    )
    .await
}

async fn board(app: &TestApp, auction: &str, limit: usize) -> Value {
    expect_json(
        app.get(
            &format!("/api/v1/auctions/{auction}/leaderboard?limit={limit}"),
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await
}

async fn auction(app: &TestApp, id: &str) -> Value {
    expect_json(
        app.get(&format!("/api/v1/auctions/{id}"), None).await,
        StatusCode::OK,
    )
    .await
}

#[tokio::test]
async fn admins_set_up_auctions_and_edit_them_only_while_scheduled() {
    let app = auction_app().await;
    let (_, admin) = app.admin("auctioneer").await;
    let (_, customer, _) = app.customer("onlooker").await;
    let product = product(&app, &admin).await;
    let body = auction_body(
        &product,
        app.clock.now(),
        Duration::minutes(10),
        Duration::minutes(30),
    );
    expect_problem(
        app.post("/api/v1/admin/auctions", Some(&customer), body.clone())
            .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;

    let mut bad = body.clone();
    bad["gamma"] = json!(0);
    bad["alpha"] = json!(-1);
    bad["inventory"] = json!(0);
    bad["end_time"] = bad["start_time"].clone();
    let problem = expect_problem(
        app.post("/api/v1/admin/auctions", Some(&admin), bad).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(
        error_fields(&problem),
        ["inventory", "alpha", "gamma", "end_time"]
    );
    let mut unknown = body.clone();
    unknown["product_id"] = json!(uuid::Uuid::now_v7());
    let problem = expect_problem(
        app.post("/api/v1/admin/auctions", Some(&admin), unknown).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(error_fields(&problem), ["product_id"]);

    let created = create(&app, &admin, body.clone()).await;
    assert_eq!(created["status"], "scheduled");
    assert_eq!(created["currency"], "EUR");
    assert_eq!(created["final_price_cents"], Value::Null);
    let id = created["id"].as_str().unwrap().to_owned();
    // Readable without a token, alone and in the list.
    assert_eq!(auction(&app, &id).await["inventory"], 2);
    let list = expect_json(app.get("/api/v1/auctions", None).await, StatusCode::OK).await;
    assert_eq!(list["data"][0]["id"], id.as_str());

    let mut edit = body.clone();
    edit["inventory"] = json!(3);
    let edited = expect_json(
        app.put(
            &format!("/api/v1/admin/auctions/{id}"),
            Some(&admin),
            edit.clone(),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(edited["inventory"], 3);
    app.advance(Duration::minutes(10));
    expect_problem(
        app.put(&format!("/api/v1/admin/auctions/{id}"), Some(&admin), edit)
            .await,
        StatusCode::CONFLICT,
        "auction_not_editable",
    )
    .await;
    eventually("the auction goes live by itself", async || {
        auction(&app, &id).await["status"] == "live"
    })
    .await;
}

#[tokio::test]
async fn bids_are_scored_replaced_and_refused_outside_the_window() {
    let app = auction_app().await;
    let (_, admin) = app.admin("scorer").await;
    let product = product(&app, &admin).await;
    let created = create(
        &app,
        &admin,
        auction_body(
            &product,
            app.clock.now(),
            Duration::minutes(5),
            Duration::minutes(30),
        ),
    )
    .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let (ann_user, ann, _) = app.customer("ann").await;
    let (_, ben, _) = app.customer("ben").await;
    expect_problem(
        bid(&app, &ann, &id, 5000).await,
        StatusCode::CONFLICT,
        "auction_not_live",
    )
    .await;

    app.advance(Duration::minutes(5));
    // Weight 4: 10 / (1 + 4) = 2 points of bonus instead of 10.
    let ann_id = ann_user["id"].as_str().unwrap();
    let weighted = expect_json(
        app.put(
            &format!("/api/v1/admin/users/{ann_id}"),
            Some(&admin),
            json!({"weight": 4.0}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(weighted["weight"], 4.0);
    let first = expect_json(bid(&app, &ann, &id, 2500).await, StatusCode::CREATED).await;
    assert_eq!(first["score"], 25.0 + 2.0);
    assert_eq!(first["rank"], 1);
    let second = expect_json(bid(&app, &ben, &id, 2000).await, StatusCode::CREATED).await;
    assert_eq!(second["score"], 20.0 + 10.0);
    assert_eq!(second["rank"], 1, "ben's bonus puts him ahead");
    let problem = expect_problem(
        bid(&app, &ben, &id, 999).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(error_fields(&problem), ["amount_cents"]);

    // A new bid replaces the earlier one, lower too; a weight change
    // applies to later bids only.
    expect_json(
        app.put(
            &format!("/api/v1/admin/users/{ann_id}"),
            Some(&admin),
            json!({"weight": 0.0}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let lower = expect_json(bid(&app, &ann, &id, 1500).await, StatusCode::CREATED).await;
    assert_eq!(lower["score"], 15.0 + 10.0);
    let standings = board(&app, &id, 100).await;
    assert_eq!(standings["bidders"], 2);
    assert_eq!(standings["status"], "live");
    let entries: Vec<(String, i64, f64)> = standings["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["username"].as_str().unwrap().to_owned(),
                e["bid_cents"].as_i64().unwrap(),
                e["score"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(entries, [("ben".into(), 2000, 30.0), ("ann".into(), 1500, 25.0)]);
    assert_eq!(standings["entries"][0]["rank"], 1);

    expect_problem(
        app.get(&format!("/api/v1/auctions/{id}/leaderboard?limit=0"), None)
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    app.advance(Duration::minutes(31));
    expect_problem(
        bid(&app, &ann, &id, 9000).await,
        StatusCode::CONFLICT,
        "auction_not_live",
    )
    .await;
}

#[tokio::test]
async fn a_crowd_bids_at_once_and_the_board_equals_the_stored_bids() {
    let app = auction_app().await;
    let (_, admin) = app.admin("crowd_admin").await;
    let product = product(&app, &admin).await;
    let created = create(
        &app,
        &admin,
        auction_body(
            &product,
            app.clock.now(),
            Duration::seconds(1),
            Duration::hours(1),
        ),
    )
    .await;
    let id = created["id"].as_str().unwrap().to_owned();
    app.advance(Duration::seconds(2));
    let mut tokens = Vec::new();
    for i in 0..60 {
        tokens.push(app.customer(&format!("bidder{i}")).await.1);
    }
    // Everyone bids three times at once; each user's last accepted bid is
    // the one that counts.
    let attempts = tokens.iter().enumerate().flat_map(|(i, token)| {
        let (app, id) = (&app, &id);
        (0..3).map(move |round| async move {
            let cents = 1000 + (i as i64 * 37 + round * 101) % 900;
            let answer = expect_json(bid(app, token, id, cents).await, StatusCode::CREATED).await;
            (answer["user_id"].as_str().unwrap().to_owned(), answer)
        })
    });
    let answers = futures::future::join_all(attempts).await;
    let placed = |answer: &Value| {
        answer["placed_at"]
            .as_str()
            .unwrap()
            .parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap()
    };
    let mut last: HashMap<String, Value> = HashMap::new();
    for (user, answer) in answers {
        let newer = last.get(&user).is_none_or(|held| placed(held) <= placed(&answer));
        if newer {
            last.insert(user, answer);
        }
    }
    let standings = board(&app, &id, 1000).await;
    assert_eq!(standings["bidders"], 60);
    let shown: Vec<(String, i64)> = standings["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["user_id"].as_str().unwrap().to_owned(),
                e["bid_cents"].as_i64().unwrap(),
            )
        })
        .collect();
    let mut expected: Vec<&Value> = last.values().collect();
    expected.sort_by(|a, b| {
        b["score"]
            .as_f64()
            .unwrap()
            .total_cmp(&a["score"].as_f64().unwrap())
            .then(placed(a).cmp(&placed(b)))
            .then(a["user_id"].as_str().cmp(&b["user_id"].as_str()))
    });
    let expected: Vec<(String, i64)> = expected
        .iter()
        .map(|a| {
            (
                a["user_id"].as_str().unwrap().to_owned(),
                a["bid_cents"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(shown, expected);
    // A fresh process (another api) loads the same board from the database.
    let other = app.sibling(swiftdrop::Roles::API).await;
    let reloaded = board(&other, &id, 1000).await;
    assert_eq!(reloaded["entries"], standings["entries"]);
}

#[tokio::test]
async fn the_auction_settles_once_with_the_right_winners_orders_and_notifications() {
    let mut app = auction_app().await;
    let (_, admin) = app.admin("settler").await;
    let product = product(&app, &admin).await;
    let created = create(
        &app,
        &admin,
        auction_body(
            &product,
            app.clock.now(),
            Duration::seconds(1),
            Duration::minutes(30),
        ),
    )
    .await;
    let id = created["id"].as_str().unwrap().to_owned();
    app.advance(Duration::seconds(2));
    let mut people = Vec::new();
    for (name, cents) in [("winner_one", 4000), ("winner_two", 3000), ("runner_up", 2000)] {
        let (user, token, _) = app.customer(name).await;
        expect_json(bid(&app, &token, &id, cents).await, StatusCode::CREATED).await;
        people.push((user["id"].as_str().unwrap().to_owned(), token, cents));
    }
    // A second worker races the first for every settlement.
    let racer = app.sibling(swiftdrop::Roles::WORKER).await;
    app.advance(Duration::minutes(30));
    eventually("the auction settles by itself", async || {
        auction(&app, &id).await["status"] == "settled"
    })
    .await;
    let settled = auction(&app, &id).await;
    assert_eq!(settled["final_price_cents"], 3000, "the lowest winning bid");

    for (i, (user_id, token, cents)) in people.iter().enumerate() {
        let orders = expect_json(
            app.get("/api/v1/profile/orders", Some(token)).await,
            StatusCode::OK,
        )
        .await;
        let orders = orders["data"].as_array().unwrap();
        let kind = if i < 2 { "auction.won" } else { "auction.lost" };
        let history = async || {
            expect_json(
                app.get("/api/v1/notifications", Some(token)).await,
                StatusCode::OK,
            )
            .await
        };
        eventually("the result is in the bidder's history", async || {
            history().await["data"]
                .as_array()
                .unwrap()
                .iter()
                .any(|n| n["notification_type"] == kind)
        })
        .await;
        let notes = history().await;
        let note = notes["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["notification_type"] == kind)
            .unwrap();
        assert_eq!(note["payload"]["auction"]["id"], id.as_str());
        assert_eq!(note["payload"]["auction"]["final_price_cents"], 3000);
        assert_eq!(note["payload"]["bid_cents"], *cents);
        assert_eq!(note["payload"]["rank"], i as i64 + 1);
        if i < 2 {
            assert_eq!(orders.len(), 1, "one order per winner, however many workers");
            let order = &orders[0];
            assert_eq!(order["status"], "reserved");
            assert_eq!(
                order["unit_price_cents"], *cents,
                "each winner pays their own bid"
            );
            assert_eq!(order["auction_id"], id.as_str());
            assert_eq!(order["user_id"], user_id.as_str());
            assert_eq!(order["event_item_id"], Value::Null);
            assert_eq!(note["payload"]["order_id"], order["id"]);
        } else {
            assert!(orders.is_empty());
            assert!(note["payload"].get("order_id").is_none());
        }
    }
    // The rankings stay readable, and a restart settles nothing again.
    let final_board = board(&app, &id, 10).await;
    assert_eq!(final_board["status"], "settled");
    assert_eq!(final_board["entries"].as_array().unwrap().len(), 3);
    drop(racer);
    app.restart(Duration::seconds(5)).await;
    let orders = expect_json(
        app.get("/api/v1/profile/orders", Some(&people[0].1)).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(orders["data"].as_array().unwrap().len(), 1);

    // A winner confirms like any reservation; one who lets the hold run
    // out is not replaced by the runner-up.
    let first = &orders["data"][0];
    let confirmed = expect_json(
        app.post(
            &format!("/api/v1/purchase/{}/confirm", first["id"].as_str().unwrap()),
            Some(&people[0].1),
            json!({}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(confirmed["status"], "confirmed");
    app.advance(Duration::minutes(11));
    let second = expect_json(
        app.get("/api/v1/profile/orders", Some(&people[1].1)).await,
        StatusCode::OK,
    )
    .await;
    let second_id = second["data"][0]["id"].as_str().unwrap().to_owned();
    eventually("the unconfirmed win expires", async || {
        let order = expect_json(
            app.get(&format!("/api/v1/orders/{second_id}"), Some(&people[1].1))
                .await,
            StatusCode::OK,
        )
        .await;
        order["status"] == "expired"
    })
    .await;
    let runner_up = expect_json(
        app.get("/api/v1/profile/orders", Some(&people[2].1)).await,
        StatusCode::OK,
    )
    .await;
    assert!(runner_up["data"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn fewer_bidders_than_inventory_all_win_and_no_bids_settles_empty() {
    let app = auction_app().await;
    let (_, admin) = app.admin("sparse").await;
    let product = product(&app, &admin).await;
    let mut body = auction_body(
        &product,
        app.clock.now(),
        Duration::seconds(1),
        Duration::minutes(10),
    );
    body["inventory"] = json!(5);
    let lonely = create(&app, &admin, body.clone()).await;
    let empty = create(&app, &admin, body).await;
    app.advance(Duration::seconds(2));
    let (_, token, _) = app.customer("only_bidder").await;
    let lonely_id = lonely["id"].as_str().unwrap().to_owned();
    expect_json(bid(&app, &token, &lonely_id, 1200).await, StatusCode::CREATED).await;
    app.advance(Duration::minutes(10));
    let empty_id = empty["id"].as_str().unwrap().to_owned();
    eventually("both settle", async || {
        auction(&app, &lonely_id).await["status"] == "settled"
            && auction(&app, &empty_id).await["status"] == "settled"
    })
    .await;
    assert_eq!(auction(&app, &lonely_id).await["final_price_cents"], 1200);
    assert_eq!(auction(&app, &empty_id).await["final_price_cents"], Value::Null);
    let orders = expect_json(
        app.get("/api/v1/profile/orders", Some(&token)).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(orders["data"][0]["unit_price_cents"], 1200);
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The first leaderboard message that `wanted` accepts (boards may be
/// pushed for other changes meanwhile: the opening, a status).
async fn board_where(socket: &mut Socket, wanted: impl Fn(&Value) -> bool) -> Value {
    loop {
        let board = next_of(socket, "leaderboard").await;
        if wanted(&board) {
            return board;
        }
    }
}

/// The next message of a given type, within 5 s.
async fn next_of(socket: &mut Socket, kind: &str) -> Value {
    loop {
        let frame = tokio::time::timeout(StdDuration::from_secs(5), socket.next())
            .await
            .expect("a message within 5 s")
            .expect("socket open")
            .expect("valid frame");
        if let Frame::Text(text) = frame {
            let message: Value = serde_json::from_str(&text).unwrap();
            if message["type"] == kind {
                return message;
            }
        }
    }
}

#[tokio::test]
async fn open_pages_follow_the_board_and_a_late_bid_extends_the_end() {
    let app = auction_app().await;
    let (_, admin) = app.admin("sniper_admin").await;
    let product = product(&app, &admin).await;
    let mut body = auction_body(
        &product,
        app.clock.now(),
        Duration::seconds(1),
        Duration::minutes(10),
    );
    body["extend_seconds"] = json!(60);
    let created = create(&app, &admin, body).await;
    let id = created["id"].as_str().unwrap().to_owned();
    let end: chrono::DateTime<chrono::Utc> = created["end_time"].as_str().unwrap().parse().unwrap();
    app.advance(Duration::seconds(2));

    // A visitor (no token) follows the auction's page.
    let (mut page, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", app.addr))
        .await
        .unwrap();
    assert_eq!(next_of(&mut page, "ready").await["user_id"], Value::Null);
    page.send(Frame::text(
        json!({"type": "subscribe", "auction_id": id}).to_string(),
    ))
    .await
    .unwrap();
    let snapshot = next_of(&mut page, "leaderboard").await;
    assert_eq!(snapshot["bidders"], 0);
    assert_eq!(snapshot["status"], "live");

    let (_, sniper, _) = app.customer("sniper").await;
    expect_json(bid(&app, &sniper, &id, 1500).await, StatusCode::CREATED).await;
    let live = board_where(&mut page, |b| b["bidders"] == 1).await;
    assert_eq!(live["entries"][0]["username"], "sniper");
    assert_eq!(live["entries"][0]["bid_cents"], 1500);

    // Thirty seconds before the end: the end moves out by sixty, and open
    // pages hear of it.
    app.advance(Duration::minutes(10) - Duration::seconds(32));
    expect_json(bid(&app, &sniper, &id, 1600).await, StatusCode::CREATED).await;
    let extended_end = end + Duration::seconds(60);
    let ends_at = |b: &Value| {
        b["end_time"]
            .as_str()
            .and_then(|t| t.parse::<chrono::DateTime<chrono::Utc>>().ok())
    };
    board_where(&mut page, |b| ends_at(b) == Some(extended_end)).await;
    let shown: chrono::DateTime<chrono::Utc> = auction(&app, &id).await["end_time"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(shown, extended_end);
    // Past the original end, inside the extension: still taking bids (and
    // that bid is in the last minute too: the end moves again).
    app.advance(Duration::seconds(40));
    expect_json(bid(&app, &sniper, &id, 1700).await, StatusCode::CREATED).await;
    let shown: chrono::DateTime<chrono::Utc> = auction(&app, &id).await["end_time"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(shown, end + Duration::seconds(120));
    app.advance(Duration::seconds(150));
    let settled = board_where(&mut page, |b| b["status"] == "settled").await;
    assert_eq!(settled["entries"][0]["bid_cents"], 1700);
}

#[tokio::test]
async fn bids_are_rate_limited_per_address() {
    let app = TestApp::start_with(|c| c.access_ttl_seconds = 24 * 3600).await;
    let (_, admin) = app.admin("limiter").await;
    let product = product(&app, &admin).await;
    let created = create(
        &app,
        &admin,
        auction_body(
            &product,
            app.clock.now(),
            Duration::seconds(1),
            Duration::minutes(10),
        ),
    )
    .await;
    let id = created["id"].as_str().unwrap().to_owned();
    app.advance(Duration::seconds(2));
    let (_, token, _) = app.customer("eager").await;
    let mut statuses = Vec::new();
    for _ in 0..14 {
        statuses.push(bid(&app, &token, &id, 2000).await.status());
    }
    assert!(statuses.contains(&StatusCode::CREATED));
    let limited = bid(&app, &token, &id, 2000).await;
    assert!(limited.headers().contains_key("retry-after"));
    expect_problem(limited, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
}

/// The auction benchmark runs end to end against a real server and its
/// own check (the board equals the accepted bids) passes.
#[tokio::test]
async fn the_auction_benchmark_runs_and_its_board_check_holds() {
    let app = TestApp::start().await;
    app.admin("bench_admin").await;
    let options = loadtest::auction::AuctionOptions {
        base_url: format!("http://{}", app.addr),
        users: 30,
        connections: 8,
        readers: 2,
        seconds: 2,
        inventory: 5,
        addresses: 2_000,
        requests_per_address: 8,
        admin: "bench_admin".into(),
        admin_password: Some(crate::harness::PASSWORD.into()),
    };
    loadtest::auction::run(options)
        .await
        .expect("the benchmark runs and the board checks out");
}
