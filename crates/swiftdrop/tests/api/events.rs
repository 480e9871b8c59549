use chrono::{Duration, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{TestApp, error_fields, expect_json, expect_problem};

pub fn event_body(title: &str, starts_in: Duration, lasts: Duration) -> Value {
    event_body_at(Utc::now(), title, starts_in, lasts)
}

/// An event starting `starts_in` after `now` (the server's clock, in
/// tests that move it).
pub fn event_body_at(now: chrono::DateTime<Utc>, title: &str, starts_in: Duration, lasts: Duration) -> Value {
    let start = now + starts_in;
    json!({
        "title": title,
        "description": "A gathering",
        "location": "Berlin",
        "start_time": start.to_rfc3339(),
        "end_time": (start + lasts).to_rfc3339(),
        "tags": ["Music"],
    })
}

async fn create(app: &TestApp, token: &str, body: Value) -> Value {
    expect_json(
        app.post("/api/v1/events", Some(token), body).await,
        StatusCode::CREATED,
    )
    .await
}

#[tokio::test]
async fn anyone_signed_in_creates_and_owns_community_events() {
    let app = TestApp::start().await;
    let (user, token, _) = app.customer("host").await;
    let (_, other, _) = app.customer("guest").await;
    let mut body = event_body(" Rooftop jam ", Duration::hours(1), Duration::hours(2));
    body["coordinates"] = json!({"type": "Point", "coordinates": [13.405, 52.52]});
    body["max_attendees"] = json!(50);
    body["attachment_url"] = json!("https://example.com/flyer.pdf");
    let event = create(&app, &token, body).await;
    assert_eq!(event["title"], "Rooftop jam");
    assert_eq!(event["status"], "scheduled");
    assert_eq!(event["tags"], json!(["music"]));
    assert_eq!(event["created_by"], user["id"]);
    assert_eq!(event["created_by_username"], "host");
    assert_eq!(
        event["coordinates"],
        json!({"type": "Point", "coordinates": [13.405, 52.52]})
    );
    assert_eq!(event["attendee_count"], 0);
    assert_eq!(event["items"], json!([]));
    assert_eq!(event["auctions"], json!([]));
    let id = event["id"].as_str().unwrap();
    let path = format!("/api/v1/events/{id}");

    let fetched = expect_json(app.get(&path, None).await, StatusCode::OK).await;
    assert_eq!(fetched["id"], event["id"]);

    // Only the owner (or an admin) edits.
    let foreign = app
        .request(Method::PATCH, &path, Some(&other))
        .json(&json!({"title": "Mine now"}))
        .send()
        .await
        .unwrap();
    expect_problem(foreign, StatusCode::FORBIDDEN, "forbidden").await;
    let patched = app
        .request(Method::PATCH, &path, Some(&token))
        .json(&json!({"title": "Rooftop jam II"}))
        .send()
        .await
        .unwrap();
    let patched = expect_json(patched, StatusCode::OK).await;
    assert_eq!(patched["title"], "Rooftop jam II");
    assert_eq!(patched["location"], "Berlin");
    let mut replacement = event_body("Basement jam", Duration::hours(3), Duration::hours(1));
    replacement["location"] = json!("Hamburg");
    let replaced = expect_json(app.put(&path, Some(&token), replacement).await, StatusCode::OK).await;
    assert_eq!(replaced["location"], "Hamburg");
    assert_eq!(replaced["coordinates"], Value::Null);

    // A patch is one change: an invalid field leaves the event as it was,
    // cancel included; a valid one renames and cancels together.
    let patch = |body: Value| app.request(Method::PATCH, &path, Some(&token)).json(&body).send();
    let refused = patch(json!({"status": "canceled", "location": "  "}))
        .await
        .unwrap();
    let problem = expect_problem(refused, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(error_fields(&problem), ["location"]);
    assert_eq!(
        expect_json(app.get(&path, None).await, StatusCode::OK).await["status"],
        "scheduled"
    );
    let canceled = patch(json!({"status": "canceled", "title": "Called off"}))
        .await
        .unwrap();
    let canceled = expect_json(canceled, StatusCode::OK).await;
    assert_eq!(
        (canceled["status"].as_str(), canceled["title"].as_str()),
        (Some("canceled"), Some("Called off"))
    );
    let again = patch(json!({"status": "canceled"})).await.unwrap();
    expect_problem(again, StatusCode::CONFLICT, "event_not_editable").await;

    // Drops are for admins.
    let mut with_items = event_body("Sneaky drop", Duration::hours(1), Duration::hours(1));
    with_items["items"] = json!([]);
    expect_problem(
        app.post("/api/v1/events", Some(&token), with_items).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;

    let deleted = app
        .request(Method::DELETE, &path, Some(&other))
        .send()
        .await
        .unwrap();
    expect_problem(deleted, StatusCode::FORBIDDEN, "forbidden").await;
    let deleted = app
        .request(Method::DELETE, &path, Some(&token))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    expect_problem(app.get(&path, None).await, StatusCode::NOT_FOUND, "not_found").await;
    expect_problem(
        app.post(
            "/api/v1/events",
            None,
            event_body("x", Duration::hours(1), Duration::hours(1)),
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
}

#[tokio::test]
async fn each_event_rule_answers_422_naming_its_field() {
    let app = TestApp::start().await;
    let (_, token, _) = app.customer("planner").await;
    let base = event_body("Valid", Duration::hours(1), Duration::hours(1));
    let with = |field: &str, value: Value| {
        let mut body = base.clone();
        body[field] = value;
        body
    };
    let past = (Utc::now() - Duration::hours(1)).to_rfc3339();
    let before_start = (Utc::now() + Duration::minutes(30)).to_rfc3339();
    let cases = [
        (with("title", json!("")), "title"),
        (with("title", json!("   ")), "title"),
        (with("title", json!("x".repeat(101))), "title"),
        (with("location", json!(" ")), "location"),
        (with("end_time", json!(before_start)), "end_time"),
        (with("start_time", json!(past)), "start_time"),
        (with("start_time", json!("tomorrow")), "start_time"),
        (with("max_attendees", json!(0)), "max_attendees"),
        (
            with(
                "coordinates",
                json!({"type": "Point", "coordinates": [200.0, 10.0]}),
            ),
            "coordinates",
        ),
        (
            with(
                "coordinates",
                json!({"type": "Polygon", "coordinates": [1.0, 1.0]}),
            ),
            "coordinates",
        ),
        (with("attachment_url", json!("ftp://x")), "attachment_url"),
        (with("tags", json!(["x".repeat(31)])), "tags"),
    ];
    for (body, field) in cases {
        let response = app.post("/api/v1/events", Some(&token), body.clone()).await;
        let problem = expect_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
        assert!(
            error_fields(&problem).contains(&field.to_owned()),
            "{field}: {problem}"
        );
    }
    let mut missing = base.clone();
    missing.as_object_mut().unwrap().remove("end_time");
    let problem = expect_problem(
        app.post("/api/v1/events", Some(&token), missing).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(error_fields(&problem), ["end_time"]);
}

#[tokio::test]
async fn attendance_never_exceeds_capacity_under_concurrency() {
    let app = TestApp::start().await;
    let (_, host, _) = app.customer("organiser").await;
    let mut body = event_body("Small room", Duration::hours(1), Duration::hours(1));
    body["max_attendees"] = json!(7);
    let id = create(&app, &host, body).await["id"].as_str().unwrap().to_owned();
    let mut tokens = Vec::new();
    for i in 0..30 {
        tokens.push(app.customer(&format!("fan{i}")).await.1);
    }
    let path = format!("/api/v1/events/{id}/attendance");
    let attempts = tokens
        .iter()
        .map(|t| app.request(Method::POST, &path, Some(t)).send());
    let responses = futures::future::join_all(attempts).await;
    let mut joined = 0;
    for response in responses {
        let response = response.unwrap();
        match response.status() {
            StatusCode::CREATED => joined += 1,
            StatusCode::CONFLICT => {
                expect_problem(response, StatusCode::CONFLICT, "event_full").await;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(joined, 7);
    let event = expect_json(
        app.get(&format!("/api/v1/events/{id}"), None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(event["attendee_count"], 7);

    // Attending again is idempotent (200), and leaving frees a seat.
    let leaver = {
        let mut found = None;
        for token in &tokens {
            if app
                .request(Method::POST, &path, Some(token))
                .send()
                .await
                .unwrap()
                .status()
                == StatusCode::OK
            {
                found = Some(token.clone());
                break;
            }
        }
        found.expect("someone is attending")
    };
    assert_eq!(
        app.request(Method::DELETE, &path, Some(&leaver))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NO_CONTENT
    );
    let event = expect_json(
        app.get(&format!("/api/v1/events/{id}"), None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(event["attendee_count"], 6);
}

#[tokio::test]
async fn events_filter_by_status_tag_text_window_and_distance() {
    let app = TestApp::start().await;
    let (_, token, _) = app.customer("curator").await;
    let near_berlin = json!({"type": "Point", "coordinates": [13.41, 52.52]});
    let mut a = event_body("Berlin techno night", Duration::hours(1), Duration::hours(2));
    a["coordinates"] = near_berlin;
    a["tags"] = json!(["music", "night"]);
    let mut b = event_body("Potsdam garden walk", Duration::hours(30), Duration::hours(2));
    b["coordinates"] = json!({"type": "Point", "coordinates": [13.06, 52.39]});
    b["tags"] = json!(["outdoor"]);
    let mut c = event_body("Munich beer tasting", Duration::hours(60), Duration::hours(2));
    c["coordinates"] = json!({"type": "Point", "coordinates": [11.58, 48.14]});
    c["location"] = json!("Munich");
    for body in [a, b, c] {
        create(&app, &token, body).await;
    }
    let titles = async |query: &str| -> Vec<String> {
        let page = expect_json(
            app.get(&format!("/api/v1/events?{query}"), None).await,
            StatusCode::OK,
        )
        .await;
        page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["title"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        titles("").await,
        [
            "Berlin techno night",
            "Potsdam garden walk",
            "Munich beer tasting"
        ]
    );
    assert_eq!(titles("tag=NIGHT").await, ["Berlin techno night"]);
    assert_eq!(titles("q=munich").await, ["Munich beer tasting"]);
    assert_eq!(titles("near=52.52,13.40,10").await, ["Berlin techno night"]);
    assert_eq!(
        titles("near=52.52,13.40,40").await,
        ["Berlin techno night", "Potsdam garden walk"]
    );
    let from = (Utc::now() + Duration::hours(20))
        .to_rfc3339()
        .replace('+', "%2B");
    let to = (Utc::now() + Duration::hours(40))
        .to_rfc3339()
        .replace('+', "%2B");
    assert_eq!(
        titles(&format!("from={from}&to={to}")).await,
        ["Potsdam garden walk"]
    );
    assert_eq!(titles("status=scheduled&limit=2").await.len(), 2);
    assert!(titles("status=live").await.is_empty());
    let first = expect_json(app.get("/api/v1/events?limit=2", None).await, StatusCode::OK).await;
    let rest = expect_json(
        app.get(
            &format!(
                "/api/v1/events?limit=2&cursor={}",
                first["next_cursor"].as_str().unwrap()
            ),
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(rest["data"][0]["title"], "Munich beer tasting");
    for (query, field) in [
        ("status=soon", "status"),
        ("near=1,2", "near"),
        ("near=a,b,c", "near"),
        ("from=yesterday", "from"),
        ("limit=0", "limit"),
    ] {
        let problem = expect_problem(
            app.get(&format!("/api/v1/events?{query}"), None).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert_eq!(error_fields(&problem), [field], "{query}");
    }
}

#[tokio::test]
async fn comments_nest_replies_to_any_depth() {
    let app = TestApp::start().await;
    let (_, token, _) = app.customer("talker").await;
    let (_, other, _) = app.customer("replier").await;
    let id = create(
        &app,
        &token,
        event_body("Panel", Duration::hours(1), Duration::hours(1)),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/api/v1/events/{id}/comments");
    let root = expect_json(
        app.post(&path, Some(&token), json!({"body": "First!"})).await,
        StatusCode::CREATED,
    )
    .await;
    let second_root = expect_json(
        app.post(&path, Some(&other), json!({"body": "Second"})).await,
        StatusCode::CREATED,
    )
    .await;
    let mut parent = root["id"].as_str().unwrap().to_owned();
    for depth in 1..=4 {
        let reply = app
            .post(
                &format!("/api/v1/comments/{parent}/replies"),
                Some(&other),
                json!({"body": format!("depth {depth}")}),
            )
            .await;
        let reply = expect_json(reply, StatusCode::CREATED).await;
        assert_eq!(reply["parent_id"], parent.as_str());
        parent = reply["id"].as_str().unwrap().to_owned();
    }
    let sibling = app
        .post(
            &format!("/api/v1/comments/{}/replies", root["id"].as_str().unwrap()),
            Some(&token),
            json!({"body": "sibling"}),
        )
        .await;
    expect_json(sibling, StatusCode::CREATED).await;

    let page = expect_json(app.get(&path, None).await, StatusCode::OK).await;
    let roots = page["data"].as_array().unwrap();
    assert_eq!(roots.len(), 2);
    assert_eq!(roots[1]["id"], second_root["id"]);
    let first = &roots[0];
    assert_eq!(first["username"], "talker");
    let replies = first["replies"].as_array().unwrap();
    assert_eq!(replies.len(), 2);
    assert_eq!(replies[1]["body"], "sibling");
    let mut node = &replies[0];
    for depth in 1..=4 {
        assert_eq!(node["body"], format!("depth {depth}"));
        if depth < 4 {
            node = &node["replies"][0];
        }
    }
    assert_eq!(node["replies"], json!([]));
    for body in [
        json!({"body": "  "}),
        json!({"body": "x".repeat(5001)}),
        json!({}),
    ] {
        let problem = expect_problem(
            app.post(&path, Some(&token), body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert_eq!(error_fields(&problem), ["body"]);
    }
    let orphan = app
        .post(
            &format!("/api/v1/comments/{}/replies", uuid::Uuid::now_v7()),
            Some(&token),
            json!({"body": "hi"}),
        )
        .await;
    expect_problem(orphan, StatusCode::NOT_FOUND, "not_found").await;
}

#[tokio::test]
async fn subscriptions_are_idempotent() {
    let app = TestApp::start().await;
    let (_, token, _) = app.customer("follower").await;
    let id = create(
        &app,
        &token,
        event_body("Talk", Duration::hours(1), Duration::hours(1)),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/api/v1/events/{id}/subscription");
    for method in [Method::PUT, Method::PUT, Method::DELETE, Method::DELETE] {
        assert_eq!(
            app.request(method, &path, Some(&token))
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::NO_CONTENT
        );
    }
    let missing = format!("/api/v1/events/{}/subscription", uuid::Uuid::now_v7());
    assert_eq!(
        app.request(Method::PUT, &missing, Some(&token))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );
}
