//! Notifications over the real WebSocket: who hears what, resume, history.

use std::time::Duration as StdDuration;

use chrono::Duration;
use futures::{SinkExt, StreamExt};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::events::event_body;
use crate::harness::{TestApp, eventually, expect_json, expect_problem};

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(app: &TestApp, token: &str) -> Socket {
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws?token={token}", app.addr))
        .await
        .expect("websocket connects");
    let ready = next_json(&mut socket).await;
    assert_eq!(ready["type"], "ready", "{ready}");
    socket
}

/// The next text message, within 5 s.
async fn next_json(socket: &mut Socket) -> Value {
    loop {
        let frame = tokio::time::timeout(StdDuration::from_secs(5), socket.next())
            .await
            .expect("a message within 5 s")
            .expect("socket open")
            .expect("valid frame");
        match frame {
            Frame::Text(text) => return serde_json::from_str(&text).expect("JSON message"),
            Frame::Ping(_) | Frame::Pong(_) => continue,
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

/// Asserts nothing arrives for a moment.
async fn silent(socket: &mut Socket) {
    let waited = tokio::time::timeout(StdDuration::from_millis(700), async {
        loop {
            match socket.next().await {
                Some(Ok(Frame::Ping(_) | Frame::Pong(_))) => continue,
                other => return other,
            }
        }
    })
    .await;
    assert!(waited.is_err(), "unexpected message: {waited:?}");
}

async fn close_code(socket: &mut Socket) -> CloseCode {
    loop {
        let frame = tokio::time::timeout(StdDuration::from_secs(5), socket.next())
            .await
            .expect("closes within 5 s");
        match frame {
            Some(Ok(Frame::Close(Some(close)))) => return close.code,
            Some(Ok(Frame::Close(None))) | None => panic!("closed without a code"),
            Some(Ok(_)) => continue,
            Some(Err(err)) => panic!("socket error instead of a close: {err}"),
        }
    }
}

#[tokio::test]
async fn a_plain_request_to_the_socket_gets_a_problem_not_an_upgrade() {
    let app = TestApp::start().await;
    let plain = app.get("/ws", None).await;
    expect_problem(plain, StatusCode::BAD_REQUEST, "bad_websocket_handshake").await;
    let old_version = app
        .request(Method::GET, "/ws", None)
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .header("sec-websocket-version", "8")
        .send()
        .await
        .unwrap();
    assert_eq!(old_version.headers()["sec-websocket-version"], "13");
    expect_problem(old_version, StatusCode::BAD_REQUEST, "bad_websocket_handshake").await;
}

/// Pings from the client are answered, and the client's own pings in JSON too.
#[tokio::test]
async fn pings_are_answered_between_pushes() {
    let app = TestApp::start().await;
    let (_, token, _) = app.customer("pinger").await;
    let mut socket = connect(&app, &token).await;
    socket
        .send(Frame::Ping(b"are you there".to_vec().into()))
        .await
        .unwrap();
    let pong = tokio::time::timeout(StdDuration::from_secs(5), socket.next())
        .await
        .unwrap();
    assert!(
        matches!(pong, Some(Ok(Frame::Pong(ref data))) if &data[..] == b"are you there"),
        "{pong:?}"
    );
    socket.send(Frame::text(r#"{"type":"ping"}"#)).await.unwrap();
    assert_eq!(next_json(&mut socket).await["type"], "pong");
}

#[tokio::test]
async fn a_bad_token_closes_with_4401() {
    let app = TestApp::start().await;
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws?token=forged", app.addr))
        .await
        .unwrap();
    assert_eq!(close_code(&mut socket).await, CloseCode::Library(4401));
    // Authenticating with a first message works the same way.
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", app.addr))
        .await
        .unwrap();
    socket
        .send(Frame::text(r#"{"type":"auth","token":"forged"}"#))
        .await
        .unwrap();
    assert_eq!(close_code(&mut socket).await, CloseCode::Library(4401));
    let (_, token, _) = app.customer("valid").await;
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", app.addr))
        .await
        .unwrap();
    socket
        .send(Frame::text(json!({"type": "auth", "token": token}).to_string()))
        .await
        .unwrap();
    assert_eq!(next_json(&mut socket).await["type"], "ready");
}

#[tokio::test]
async fn created_goes_to_everyone_updates_to_subscribers_and_the_creator() {
    let app = TestApp::start().await;
    let (_, host, _) = app.customer("host").await;
    let (fan_user, fan, _) = app.customer("fan").await;
    let (_, stranger, _) = app.customer("stranger").await;
    let mut host_socket = connect(&app, &host).await;
    let mut fan_socket = connect(&app, &fan).await;
    let mut stranger_socket = connect(&app, &stranger).await;

    let event = expect_json(
        app.post(
            "/api/v1/events",
            Some(&host),
            event_body("Launch party", Duration::hours(1), Duration::hours(1)),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let id = event["id"].as_str().unwrap();
    for socket in [&mut host_socket, &mut fan_socket, &mut stranger_socket] {
        let message = next_json(socket).await;
        assert_eq!(message["type"], "notification");
        assert_eq!(message["notification_type"], "event.created");
        assert_eq!(message["event"]["id"], id);
        assert_eq!(message["event"]["title"], "Launch party");
        assert_eq!(message["event"]["action"], "created");
        assert!(message["event"]["timestamp"].is_string());
        assert_eq!(message["user"], "host");
        assert!(message["id"].is_string());
        assert!(
            message.get("recipients").is_none(),
            "recipient lists stay private"
        );
    }

    let subscribe = app
        .request(
            Method::PUT,
            &format!("/api/v1/events/{id}/subscription"),
            Some(&fan),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(subscribe.status(), StatusCode::NO_CONTENT);
    let patch = app
        .request(Method::PATCH, &format!("/api/v1/events/{id}"), Some(&host))
        .json(&json!({"title": "Launch party!"}))
        .send()
        .await
        .unwrap();
    assert_eq!(patch.status(), StatusCode::OK);
    for socket in [&mut host_socket, &mut fan_socket] {
        let message = next_json(socket).await;
        assert_eq!(message["notification_type"], "event.updated");
        assert_eq!(message["event"]["title"], "Launch party!");
    }
    silent(&mut stranger_socket).await;

    let deleted = app
        .request(Method::DELETE, &format!("/api/v1/events/{id}"), Some(&host))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        next_json(&mut fan_socket).await["notification_type"],
        "event.deleted"
    );
    assert_eq!(
        next_json(&mut host_socket).await["notification_type"],
        "event.deleted"
    );
    silent(&mut stranger_socket).await;

    // The same messages are in each one's history, newest first.
    let history = expect_json(app.get("/api/v1/notifications", Some(&fan)).await, StatusCode::OK).await;
    let kinds: Vec<&str> = history["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["notification_type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["event.deleted", "event.updated", "event.created"]);
    assert_eq!(history["data"][0]["read"], false);
    assert_eq!(history["data"][0]["payload"]["event"]["id"], id);
    let theirs = expect_json(
        app.get("/api/v1/notifications", Some(&stranger)).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        theirs["data"].as_array().unwrap().len(),
        1,
        "strangers only get the broadcast"
    );
    let _ = fan_user;
}

#[tokio::test]
async fn resume_replays_what_a_disconnected_user_missed() {
    let app = TestApp::start().await;
    let (_, host, _) = app.customer("organizer").await;
    let (_, fan, _) = app.customer("returning").await;
    let mut socket = connect(&app, &fan).await;
    expect_json(
        app.post(
            "/api/v1/events",
            Some(&host),
            event_body("One", Duration::hours(1), Duration::hours(1)),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let seen = next_json(&mut socket).await;
    let last_id = seen["id"].as_str().unwrap().to_owned();
    drop(socket);

    for title in ["Two", "Three"] {
        expect_json(
            app.post(
                "/api/v1/events",
                Some(&host),
                event_body(title, Duration::hours(1), Duration::hours(1)),
            )
            .await,
            StatusCode::CREATED,
        )
        .await;
    }
    eventually("the relay stores them", async || {
        let history = expect_json(app.get("/api/v1/notifications", Some(&fan)).await, StatusCode::OK).await;
        history["data"].as_array().is_some_and(|d| d.len() >= 3)
    })
    .await;
    let mut socket = connect(&app, &fan).await;
    socket
        .send(Frame::text(
            json!({"type": "resume", "after": last_id}).to_string(),
        ))
        .await
        .unwrap();
    let first = next_json(&mut socket).await;
    let second = next_json(&mut socket).await;
    assert_eq!(first["event"]["title"], "Two");
    assert_eq!(second["event"]["title"], "Three");
    silent(&mut socket).await;
}

#[tokio::test]
async fn history_reads_and_marks() {
    let app = TestApp::start().await;
    let (_, host, _) = app.customer("writer").await;
    let (_, reader, _) = app.customer("reader").await;
    for i in 0..3 {
        expect_json(
            app.post(
                "/api/v1/events",
                Some(&host),
                event_body(&format!("Event {i}"), Duration::hours(1), Duration::hours(1)),
            )
            .await,
            StatusCode::CREATED,
        )
        .await;
    }
    let history = || async {
        expect_json(
            app.get("/api/v1/notifications", Some(&reader)).await,
            StatusCode::OK,
        )
        .await
    };
    eventually("the three are stored", async || {
        history().await["data"].as_array().unwrap().len() == 3
    })
    .await;
    let history = history().await;
    let newest = history["data"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(history["data"][0]["payload"]["event"]["title"], "Event 2");
    let read = app
        .post(
            &format!("/api/v1/notifications/{newest}/read"),
            Some(&reader),
            json!({}),
        )
        .await;
    assert_eq!(read.status(), StatusCode::NO_CONTENT);
    let unread = expect_json(
        app.get("/api/v1/notifications?unread=true", Some(&reader)).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(unread["data"].as_array().unwrap().len(), 2);
    let page = expect_json(
        app.get("/api/v1/notifications?limit=2", Some(&reader)).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(page["has_more"], true);
    let rest = expect_json(
        app.get(
            &format!(
                "/api/v1/notifications?limit=2&cursor={}",
                page["next_cursor"].as_str().unwrap()
            ),
            Some(&reader),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(rest["data"].as_array().unwrap().len(), 1);
    let all = app
        .post("/api/v1/notifications/read-all", Some(&reader), json!({}))
        .await;
    assert_eq!(all.status(), StatusCode::NO_CONTENT);
    let unread = expect_json(
        app.get("/api/v1/notifications?unread=true", Some(&reader)).await,
        StatusCode::OK,
    )
    .await;
    assert!(unread["data"].as_array().unwrap().is_empty());
    let missing = app
        .post(
            &format!("/api/v1/notifications/{}/read", uuid::Uuid::now_v7()),
            Some(&reader),
            json!({}),
        )
        .await;
    expect_problem(missing, StatusCode::NOT_FOUND, "not_found").await;
    expect_problem(
        app.get("/api/v1/notifications", None).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
}

#[tokio::test]
async fn a_malformed_or_oversized_frame_closes_only_that_socket() {
    let app = TestApp::start().await;
    let (_, host, _) = app.customer("poster").await;
    let (_, good, _) = app.customer("good").await;
    let (_, bad, _) = app.customer("bad").await;
    let mut good_socket = connect(&app, &good).await;
    let mut bad_socket = connect(&app, &bad).await;
    bad_socket.send(Frame::text("{not json")).await.unwrap();
    assert_eq!(close_code(&mut bad_socket).await, CloseCode::Invalid);
    let mut big_socket = connect(&app, &bad).await;
    big_socket.send(Frame::text("x".repeat(64 * 1024))).await.unwrap();
    assert_eq!(close_code(&mut big_socket).await, CloseCode::Size);

    good_socket.send(Frame::text(r#"{"type":"ping"}"#)).await.unwrap();
    assert_eq!(next_json(&mut good_socket).await["type"], "pong");
    expect_json(
        app.post(
            "/api/v1/events",
            Some(&host),
            event_body("Still here", Duration::hours(1), Duration::hours(1)),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(next_json(&mut good_socket).await["event"]["title"], "Still here");
}

#[tokio::test]
async fn open_pages_follow_stock_and_status_and_buyers_their_orders() {
    let app = TestApp::start_with(|c| {
        c.purchase_requests_per_second = 1000;
        c.purchase_burst = 1000;
    })
    .await;
    let (_, admin) = app.admin("live_admin").await;
    let (_, viewer, _) = app.customer("viewer").await;
    let (_, buyer, _) = app.customer("live_buyer").await;
    let product = expect_json(
        app.post(
            "/api/v1/admin/products",
            Some(&admin),
            json!({"name": "Tee", "category": "x", "price_cents": 100, "currency": "EUR"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let mut body = event_body("Live page", Duration::hours(1), Duration::hours(1));
    body["items"] = json!([{"product_id": product["id"], "price_cents": 100, "stock": 2}]);
    let drop = expect_json(
        app.post("/api/v1/admin/events", Some(&admin), body).await,
        StatusCode::CREATED,
    )
    .await;
    let event_id = drop["id"].as_str().unwrap().to_owned();
    let item = drop["items"][0]["id"].as_str().unwrap().to_owned();

    let mut page = connect(&app, &viewer).await;
    let mut buyer_socket = connect(&app, &buyer).await;
    page.send(Frame::text(
        json!({"type": "subscribe", "event_id": event_id}).to_string(),
    ))
    .await
    .unwrap();
    // Right after the subscribe: the current value of everything followed.
    let mut snapshot = Vec::new();
    while snapshot.len() < 2 {
        let message = next_json(&mut page).await;
        if message["type"] != "notification" {
            snapshot.push(message);
        }
    }
    assert_eq!(
        snapshot,
        [
            json!({"type": "stock", "event_id": event_id, "item_id": item, "stock_remaining": 2, "version": 0}),
            json!({"type": "event.status", "event_id": event_id, "status": "scheduled"}),
        ]
    );
    expect_json(
        app.post(
            &format!("/api/v1/admin/events/{event_id}/open"),
            Some(&admin),
            json!({}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let mut seen = Vec::new();
    while !seen.iter().any(|m: &Value| m["type"] == "event.status") {
        seen.push(next_json(&mut page).await);
    }
    assert_eq!(seen.last().unwrap()["status"], "live");

    let order = expect_json(
        app.post(
            &format!("/api/v1/purchase/{item}"),
            Some(&buyer),
            json!({"quantity": 2}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let stock = next_json(&mut page).await;
    assert_eq!(
        stock,
        json!({"type": "stock", "event_id": event_id, "item_id": item, "stock_remaining": 0, "version": 1})
    );
    let status = next_json(&mut page).await;
    assert_eq!(status["status"], "sold_out");

    let order_id = order["id"].as_str().unwrap();
    expect_json(
        app.post(
            &format!("/api/v1/purchase/{order_id}/cancel"),
            Some(&buyer),
            json!({}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let mut mine = next_json(&mut buyer_socket).await;
    while mine["type"] != "order" {
        mine = next_json(&mut buyer_socket).await;
    }
    assert_eq!(mine["order"]["id"], order_id);
    assert_eq!(mine["order"]["status"], "canceled");
    let restocked = next_json(&mut page).await;
    assert_eq!(restocked["stock_remaining"], 2);
    assert_eq!(next_json(&mut page).await["status"], "live");
}

#[tokio::test]
async fn every_notifier_process_delivers_and_history_is_stored_once() {
    if crate::harness::amqp_url().is_none() {
        eprintln!(
            "SKIPPED every_notifier_process_delivers: set SWIFTDROP_TEST_AMQP_URL to run it against RabbitMQ"
        );
        return;
    }
    // One api+worker process and two notifier processes of one deployment.
    let api = TestApp::start().await;
    let notifier_a = api.sibling(swiftdrop::Roles::NOTIFIER).await;
    let notifier_b = api.sibling(swiftdrop::Roles::NOTIFIER).await;
    let (_, host, _) = api.customer("api_host").await;
    let (_, ann, _) = api.customer("ann_on_a").await;
    let (_, ben, _) = api.customer("ben_on_b").await;
    let mut on_a = connect(&notifier_a, &ann).await;
    let mut on_b = connect(&notifier_b, &ben).await;
    // Give the notifiers' consumers a moment to bind their queues.
    tokio::time::sleep(StdDuration::from_millis(500)).await;

    let event = expect_json(
        api.post(
            "/api/v1/events",
            Some(&host),
            event_body("Split deployment", Duration::hours(1), Duration::hours(1)),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    for socket in [&mut on_a, &mut on_b] {
        let message = next_json(socket).await;
        assert_eq!(message["event"]["id"], event["id"]);
    }
    let stored = async || {
        let history = expect_json(api.get("/api/v1/notifications", Some(&ann)).await, StatusCode::OK).await;
        history["data"].as_array().unwrap().len()
    };
    eventually("the history is stored", async || stored().await >= 1).await;
    let history = expect_json(api.get("/api/v1/notifications", Some(&ann)).await, StatusCode::OK).await;
    assert_eq!(
        history["data"].as_array().unwrap().len(),
        1,
        "stored once, though two notifiers consume"
    );
}

#[tokio::test]
async fn a_broker_outage_loses_nothing_and_stores_nothing_twice() {
    let Some(url) = crate::harness::amqp_url() else {
        eprintln!(
            "SKIPPED a_broker_outage_loses_nothing: set SWIFTDROP_TEST_AMQP_URL to run it against RabbitMQ"
        );
        return;
    };
    let broker: std::net::SocketAddr = "127.0.0.1:5672".parse().unwrap();
    let mut proxy = crate::proxy::Proxy::start(broker).await;
    let through_proxy = url.replace("127.0.0.1:5672", &proxy.addr.to_string());
    let app = TestApp::start_with(|c| c.amqp_url = Some(through_proxy)).await;
    let (_, host, _) = app.customer("outage_host").await;
    let (_, fan, _) = app.customer("outage_fan").await;
    let mut socket = connect(&app, &fan).await;
    tokio::time::sleep(StdDuration::from_millis(500)).await;
    expect_json(
        app.post(
            "/api/v1/events",
            Some(&host),
            event_body("Before", Duration::hours(1), Duration::hours(1)),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let before = next_json(&mut socket).await;
    assert_eq!(before["event"]["title"], "Before");

    proxy.cut();
    for title in ["During 1", "During 2", "During 3"] {
        // The API keeps working while the broker is away: the outbox holds the messages.
        expect_json(
            app.post(
                "/api/v1/events",
                Some(&host),
                event_body(title, Duration::hours(1), Duration::hours(1)),
            )
            .await,
            StatusCode::CREATED,
        )
        .await;
    }
    tokio::time::sleep(StdDuration::from_millis(1500)).await;
    proxy.restore().await;

    // Everything arrives in history exactly once once the broker is back.
    let stored_titles = async || -> Vec<String> {
        let history = expect_json(
            app.get("/api/v1/notifications?limit=100", Some(&fan)).await,
            StatusCode::OK,
        )
        .await;
        history["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["payload"]["event"]["title"].as_str().unwrap().to_owned())
            .collect()
    };
    eventually("the held messages arrive", async || {
        stored_titles().await.len() >= 4
    })
    .await;
    let mut titles = stored_titles().await;
    titles.sort();
    assert_eq!(titles, ["Before", "During 1", "During 2", "During 3"]);
    // The socket gets them live or, reconnecting, by resume: none is lost.
    let mut socket = connect(&app, &fan).await;
    socket
        .send(Frame::text(
            json!({"type": "resume", "after": before["id"]}).to_string(),
        ))
        .await
        .unwrap();
    let mut replayed = Vec::new();
    for _ in 0..3 {
        replayed.push(
            next_json(&mut socket).await["event"]["title"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(replayed, ["During 1", "During 2", "During 3"]);
}

/// The fan-out benchmark runs end to end against a real server: every
/// socket it opens gets every change it makes.
#[tokio::test]
async fn the_fanout_benchmark_delivers_every_change_to_every_socket() {
    let app = TestApp::start().await;
    app.admin("fanout_admin").await;
    let options = loadtest::fanout::FanoutOptions {
        base_url: format!("http://{}", app.addr),
        connections: 60,
        changes: 3,
        interval_ms: 50,
        users: 3,
        admin: "fanout_admin@example.com".into(),
        admin_password: Some(crate::harness::PASSWORD.into()),
    };
    let report = loadtest::fanout::run(options).await.expect("the benchmark runs");
    assert_eq!(report.sockets, 60);
    assert_eq!(report.expected, 180);
    assert_eq!(report.delivered, report.expected);
}

/// On PostgreSQL a worker in another process hears of outbox writes at once
/// (LISTEN/NOTIFY), and only of its own schema's; SQLite has one process.
#[tokio::test]
async fn another_process_hears_of_outbox_writes_on_postgres() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use store::Store;

    if crate::harness::postgres_url().is_none() {
        return;
    }
    let app = TestApp::start().await;
    let (_, admin) = app.admin("listener_admin").await;
    let store = swiftdrop::open_store(&app.config, app.clock.clone())
        .await
        .expect("store opens");
    let woken = Arc::new(AtomicUsize::new(0));
    let follower = {
        let woken = woken.clone();
        tokio::spawn(async move {
            store
                .follow_outbox(&|| {
                    woken.fetch_add(1, Ordering::SeqCst);
                })
                .await;
        })
    };
    let wait_for = |count: usize| {
        let woken = woken.clone();
        async move {
            tokio::time::timeout(StdDuration::from_secs(5), async {
                while woken.load(Ordering::SeqCst) < count {
                    tokio::time::sleep(StdDuration::from_millis(10)).await;
                }
            })
            .await
            .is_ok()
        }
    };
    // Listening (it wakes once on start, for what it may have missed).
    assert!(wait_for(1).await, "the follower never started");
    // Another deployment's schema on the same database: not ours to hear.
    let other = TestApp::start().await;
    let (_, other_admin) = other.admin("other_admin").await;
    expect_json(
        other
            .post(
                "/api/v1/events",
                Some(&other_admin),
                event_body("Elsewhere", Duration::hours(2), Duration::hours(1)),
            )
            .await,
        StatusCode::CREATED,
    )
    .await;
    silent_follower(&woken, 1).await;
    expect_json(
        app.post(
            "/api/v1/events",
            Some(&admin),
            event_body("Heard", Duration::hours(2), Duration::hours(1)),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert!(wait_for(2).await, "the outbox write was not announced");
    follower.abort();
}

/// Asserts the counter stays at `count` for a moment.
async fn silent_follower(woken: &std::sync::atomic::AtomicUsize, count: usize) {
    tokio::time::sleep(StdDuration::from_millis(300)).await;
    assert_eq!(woken.load(std::sync::atomic::Ordering::SeqCst), count);
}
