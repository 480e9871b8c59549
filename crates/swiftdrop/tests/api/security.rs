//! The OWASP API Security Top 10, tried against the real server: objects
//! owned by one user out of another's reach (BOLA), privileged fields a
//! client may not write (mass assignment), and data a response must not
//! expose. Broken authentication is tried in `auth.rs`, rate limits in
//! `http.rs`, `sales.rs` and `auctions.rs`, headers in `security_headers.rs`,
//! uploads that lie about their type in `catalog.rs`, tokens in logs in
//! `secrets_in_logs.rs`.

use chrono::Duration;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::events::event_body;
use crate::harness::{TestApp, error_fields, eventually, expect_json, expect_problem};
use crate::sales::{buy, live_drop};

/// The answer's status, and the body for the assertion message.
async fn status_of(response: reqwest::Response) -> (StatusCode, String) {
    let status = response.status();
    (status, response.text().await.unwrap_or_default())
}

/// Someone else's object: hidden (404) or refused (403), never served.
async fn assert_out_of_reach(what: &str, response: reqwest::Response) {
    let (status, body) = status_of(response).await;
    assert!(
        status == StatusCode::NOT_FOUND || status == StatusCode::FORBIDDEN,
        "{what}: expected 403 or 404, got {status}: {body}"
    );
}

#[tokio::test]
async fn orders_notifications_and_wishlists_stay_with_their_owner() {
    let app = TestApp::start().await;
    let (_, admin) = app.admin("bola_admin").await;
    let (_, alice, _) = app.customer("bola_alice").await;
    let (_, mallory, _) = app.customer("bola_mallory").await;

    // Orders: another user can neither read, confirm nor cancel one.
    let drop = live_drop(&app, &admin, &[(5, None)], None).await;
    let item = drop["items"][0]["id"].as_str().unwrap();
    let order = expect_json(buy(&app, &alice, item, None, None).await, StatusCode::CREATED).await;
    let order_path = format!("/api/v1/orders/{}", order["id"].as_str().unwrap());
    assert_out_of_reach("read another's order", app.get(&order_path, Some(&mallory)).await).await;
    for action in ["confirm", "cancel"] {
        let path = format!("/api/v1/purchase/{}/{action}", order["id"].as_str().unwrap());
        assert_out_of_reach(action, app.post(&path, Some(&mallory), json!({})).await).await;
    }
    let untouched = expect_json(app.get(&order_path, Some(&alice)).await, StatusCode::OK).await;
    assert_eq!(untouched["status"], "reserved");
    let theirs = expect_json(
        app.get("/api/v1/profile/orders", Some(&mallory)).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        theirs["data"],
        json!([]),
        "mallory's order list shows only mallory's orders"
    );

    // Notifications: mallory follows alice's event; the update notifies
    // mallory alone (a row of mallory's), which alice cannot mark read.
    let event = expect_json(
        app.post(
            "/api/v1/events",
            Some(&alice),
            event_body("Alice's party", Duration::hours(1), Duration::hours(1)),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let event_path = format!("/api/v1/events/{}", event["id"].as_str().unwrap());
    let follow = app.request(Method::PUT, &format!("{event_path}/subscription"), Some(&mallory));
    assert!(follow.send().await.unwrap().status().is_success());
    let patch = app
        .request(Method::PATCH, &event_path, Some(&alice))
        .json(&json!({"title": "Moved"}));
    assert_eq!(patch.send().await.unwrap().status(), StatusCode::OK);
    let updates = async |token: &str| -> Vec<String> {
        let history = expect_json(
            app.get("/api/v1/notifications?unread=true", Some(token)).await,
            StatusCode::OK,
        )
        .await;
        history["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["payload"]["event"]["title"] == "Moved")
            .map(|n| n["id"].as_str().unwrap().to_owned())
            .collect()
    };
    eventually("mallory is told of the update", async || {
        !updates(&mallory).await.is_empty()
    })
    .await;
    let mallorys = updates(&mallory).await[0].clone();
    assert!(
        !updates(&alice).await.contains(&mallorys),
        "the row is mallory's alone"
    );
    let path = format!("/api/v1/notifications/{mallorys}/read");
    assert_out_of_reach(
        "mark another's notification",
        app.post(&path, Some(&alice), json!({})).await,
    )
    .await;
    assert!(
        updates(&mallory).await.contains(&mallorys),
        "still unread for mallory"
    );

    // Wishlists: private, and one user's delete leaves the other's alone.
    let product = drop["items"][0]["product_id"].as_str().unwrap();
    let wish = format!("/api/v1/wishlist/{product}");
    let added = app
        .request(Method::PUT, &wish, Some(&alice))
        .send()
        .await
        .unwrap();
    assert!(added.status().is_success(), "{}", added.status());
    let removed = app
        .request(Method::DELETE, &wish, Some(&mallory))
        .send()
        .await
        .unwrap();
    assert!(removed.status().is_success() || removed.status() == StatusCode::NOT_FOUND);
    let list = expect_json(app.get("/api/v1/wishlist", Some(&alice)).await, StatusCode::OK).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    let list = expect_json(app.get("/api/v1/wishlist", Some(&mallory)).await, StatusCode::OK).await;
    assert_eq!(list["data"], json!([]));
}

#[tokio::test]
async fn community_events_reviews_and_uploads_stay_with_their_owner() {
    let app = TestApp::start().await;
    let (_, admin) = app.admin("own_admin").await;
    let (_, alice, _) = app.customer("own_alice").await;
    let (_, mallory, _) = app.customer("own_mallory").await;

    // Community events: only the owner (or an admin) edits or deletes.
    let event = expect_json(
        app.post(
            "/api/v1/events",
            Some(&alice),
            event_body("Alice's meetup", Duration::hours(2), Duration::hours(1)),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let path = format!("/api/v1/events/{}", event["id"].as_str().unwrap());
    let mut replaced = event_body("Mallory's now", Duration::hours(2), Duration::hours(1));
    replaced["max_attendees"] = json!(1);
    assert_out_of_reach("replace", app.put(&path, Some(&mallory), replaced).await).await;
    let patch = app
        .request(Method::PATCH, &path, Some(&mallory))
        .json(&json!({"title": "Mine"}));
    assert_out_of_reach("patch", patch.send().await.unwrap()).await;
    assert_out_of_reach(
        "delete",
        app.request(Method::DELETE, &path, Some(&mallory))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let kept = expect_json(app.get(&path, None).await, StatusCode::OK).await;
    assert_eq!(kept["title"], "Alice's meetup");

    // Reviews: one per user and product; another's review is never touched.
    let product = expect_json(
        app.post(
            "/api/v1/admin/products",
            Some(&admin),
            json!({"name": "Lamp", "category": "home", "price_cents": 4200, "currency": "EUR"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let reviews = format!("/api/v1/products/{}/reviews", product["id"].as_str().unwrap());
    let review = json!({"rating": 5, "comment": "Lovely"});
    expect_json(
        app.post(&reviews, Some(&alice), review).await,
        StatusCode::CREATED,
    )
    .await;
    let spoiler = json!({"rating": 1, "comment": "Awful"});
    let (status, _) = status_of(app.post(&reviews, Some(&mallory), spoiler).await).await;
    assert!(status.is_success());
    let list = expect_json(app.get(&reviews, None).await, StatusCode::OK).await;
    let rows = list["data"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "two reviews, one each: {list}");
    assert!(rows.iter().any(|r| r["rating"] == 5 && r["comment"] == "Lovely"));

    // Uploads: only a signed-in user stores one, and a key names a stored
    // file or nothing (no path of the store beyond it).
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n".to_vec()).file_name("a.pdf"),
    );
    let anonymous = app
        .request(Method::POST, "/api/v1/uploads", None)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    for key in [
        "..%2Fsecret.key",
        "..%2F..%2Fetc%2Fpasswd",
        "secret.key",
        "0191.png%00.pdf",
    ] {
        let response = app.get(&format!("/uploads/{key}"), None).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{key}");
    }
}

#[tokio::test]
async fn privileged_fields_cannot_be_written_by_a_client() {
    let app = TestApp::start().await;
    let (_, token, _) = app.customer("mass_user").await;
    let event = expect_json(
        app.post(
            "/api/v1/events",
            Some(&token),
            event_body("Mine", Duration::hours(2), Duration::hours(1)),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let event_path = format!("/api/v1/events/{}", event["id"].as_str().unwrap());
    let anything = uuid::Uuid::now_v7();
    let with = |base: Value, field: &str, value: Value| {
        let mut body = base;
        body[field] = value;
        body
    };
    let event_fields = event_body("Mine", Duration::hours(2), Duration::hours(1));
    // Each write with a field the server owns: refused, naming the field.
    let attempts: Vec<(Method, String, Value, &str)> = vec![
        (
            Method::POST,
            "/api/v1/auth/register".into(),
            json!({"email": "m@example.com", "username": "mass_two", "password": "Secret-pass1", "is_verified": true}),
            "is_verified",
        ),
        (
            Method::PUT,
            "/api/v1/profile".into(),
            json!({"display_name": "M", "role": "admin"}),
            "role",
        ),
        (
            Method::PUT,
            "/api/v1/profile".into(),
            json!({"display_name": "M", "weight": 0.0}),
            "weight",
        ),
        (
            Method::PUT,
            "/api/v1/profile".into(),
            json!({"email": "other@example.com"}),
            "email",
        ),
        (
            Method::POST,
            "/api/v1/events".into(),
            with(event_fields.clone(), "owner_id", json!(anything)),
            "owner_id",
        ),
        (
            Method::POST,
            "/api/v1/events".into(),
            with(event_fields.clone(), "status", json!("live")),
            "status",
        ),
        (
            Method::PUT,
            event_path.clone(),
            with(event_fields.clone(), "attendee_count", json!(0)),
            "attendee_count",
        ),
        (
            Method::PATCH,
            event_path.clone(),
            json!({"owner_id": anything}),
            "owner_id",
        ),
        (
            Method::POST,
            format!("{event_path}/comments"),
            json!({"body": "hi", "user_id": anything}),
            "user_id",
        ),
        (
            Method::POST,
            format!("/api/v1/products/{anything}/reviews"),
            json!({"rating": 5, "user_id": anything}),
            "user_id",
        ),
        (
            Method::POST,
            format!("/api/v1/purchase/{anything}"),
            json!({"quantity": 1, "price_cents": 1}),
            "price_cents",
        ),
        (
            Method::POST,
            format!("/api/v1/auctions/{anything}/bids"),
            json!({"amount_cents": 100, "score": 1e9}),
            "score",
        ),
        (
            Method::POST,
            format!("/api/v1/auctions/{anything}/bids"),
            json!({"amount_cents": 100, "user_id": anything}),
            "user_id",
        ),
    ];
    for (method, path, body, field) in attempts {
        let response = app
            .request(method.clone(), &path, Some(&token))
            .json(&body)
            .send()
            .await
            .unwrap();
        let problem = expect_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
        assert!(
            error_fields(&problem).iter().any(|f| f == field),
            "{method} {path} with {field}: {problem}"
        );
    }
    let me = expect_json(app.get("/api/v1/auth/me", Some(&token)).await, StatusCode::OK).await;
    assert_eq!(me["role"], "customer");
    assert_eq!(me["email"], "mass_user@example.com");
    let kept = expect_json(app.get(&event_path, None).await, StatusCode::OK).await;
    assert_eq!(kept["status"], event["status"]);
}

#[tokio::test]
async fn public_answers_expose_no_email_hash_or_internal_field() {
    let app = TestApp::start().await;
    let (_, admin) = app.admin("expo_admin").await;
    let (alice, token, _) = app.customer("expo_alice").await;
    let email = alice["email"].as_str().unwrap().to_owned();
    let event = expect_json(
        app.post(
            "/api/v1/events",
            Some(&token),
            event_body("Open house", Duration::hours(2), Duration::hours(1)),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let event_path = format!("/api/v1/events/{}", event["id"].as_str().unwrap());
    expect_json(
        app.post(
            &format!("{event_path}/comments"),
            Some(&token),
            json!({"body": "See you"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let drop = live_drop(&app, &admin, &[(3, None)], None).await;
    let product = drop["items"][0]["product_id"].as_str().unwrap();
    let reviews = format!("/api/v1/products/{product}/reviews");
    expect_json(
        app.post(&reviews, Some(&token), json!({"rating": 4})).await,
        StatusCode::CREATED,
    )
    .await;

    // What anyone (signed in or not) can read about alice's activity.
    let public = [
        "/api/v1/events".to_owned(),
        event_path.clone(),
        format!("{event_path}/comments"),
        format!("/api/v1/events/{}", drop["id"].as_str().unwrap()),
        reviews,
        format!("/api/v1/products/{product}"),
        "/api/v1/products".to_owned(),
        "/api/v1/auctions".to_owned(),
    ];
    let (_, other, _) = app.customer("expo_other").await;
    for path in &public {
        for viewer in [None, Some(other.as_str())] {
            let response = app.get(path, viewer).await;
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            let body = response.text().await.unwrap();
            for secret in [
                email.as_str(),
                "password",
                "$2b$",
                "$2y$",
                "hash",
                "refresh_token",
                "weight",
            ] {
                assert!(!body.contains(secret), "{path} exposes {secret:?}: {body}");
            }
        }
    }
    // The user's own record has no secret either.
    let me = app
        .get("/api/v1/auth/me", Some(&token))
        .await
        .text()
        .await
        .unwrap();
    for secret in ["password", "$2b$", "hash"] {
        assert!(!me.contains(secret), "/me exposes {secret:?}: {me}");
    }
}
