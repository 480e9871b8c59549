use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{PASSWORD, TestApp, expect_json, expect_problem};

#[tokio::test]
async fn service_endpoints_answer() {
    let app = TestApp::start().await;
    let health = expect_json(app.get("/health", None).await, StatusCode::OK).await;
    assert_eq!(health, json!({"status": "ok"}));
    let ready = expect_json(app.get("/ready", None).await, StatusCode::OK).await;
    assert_eq!(ready["checks"]["database"]["status"], "ok");
    let expected = if crate::harness::postgres_url().is_some() {
        "postgres"
    } else {
        "sqlite"
    };
    assert_eq!(ready["checks"]["database"]["backend"], expected);

    app.get("/api/v1/auth/me", None).await;
    let metrics = app.get("/metrics", None).await;
    assert_eq!(metrics.status(), StatusCode::OK);
    let text = metrics.text().await.unwrap();
    assert!(text.contains("swiftdrop_http_request_duration_seconds"), "{text}");
}

#[tokio::test]
async fn malformed_json_is_400_and_wrong_types_422() {
    let app = TestApp::start().await;
    let send = |body: &'static str, content_type: &'static str| {
        app.client
            .post(app.url("/api/v1/auth/register"))
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    expect_problem(
        send("{\"email\":", "application/json").await.unwrap(),
        StatusCode::BAD_REQUEST,
        "malformed_json",
    )
    .await;
    expect_problem(
        send("not json", "application/json").await.unwrap(),
        StatusCode::BAD_REQUEST,
        "malformed_json",
    )
    .await;
    let trailing = r#"{"email":"a@b.co","username":"abc","password":"Secret#123"} {}"#;
    expect_problem(
        send(trailing, "application/json").await.unwrap(),
        StatusCode::BAD_REQUEST,
        "malformed_json",
    )
    .await;
    expect_problem(
        send("[1,2]", "application/json").await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    // A struct of optional fields is never read from an array.
    let (_, token, _) = app.customer("shape_user").await;
    let array = app
        .client
        .put(app.url("/api/v1/profile"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("[null, null]")
        .send()
        .await
        .unwrap();
    expect_problem(array, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    expect_problem(
        send("{\"email\":\"a@b.co\"}", "text/plain").await.unwrap(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let app = TestApp::start_with(|c| c.body_limit_bytes = 4096).await;
    let big = json!({"email": "a@b.co", "username": "x", "password": "y".repeat(10_000)});
    let response = app.post("/api/v1/auth/register", None, big).await;
    expect_problem(response, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    // Within the limit the same route answers normally.
    let response = app
        .post(
            "/api/v1/auth/register",
            None,
            json!({"email": "a@b.co", "username": "okay", "password": PASSWORD}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let app = TestApp::start().await;
    let generated = app.get("/health", None).await;
    let id = generated.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(id.len(), 36, "{id}");
    let echoed = app
        .client
        .get(app.url("/api/v1/auth/me"))
        .header("x-request-id", "trace-me-123")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "trace-me-123");
}

#[tokio::test]
async fn unknown_routes_and_methods_get_problems() {
    let app = TestApp::start().await;
    expect_problem(
        app.get("/api/v1/nothing-here", None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let wrong_method = app
        .request(reqwest::Method::DELETE, "/api/v1/auth/login", None)
        .send()
        .await
        .unwrap();
    expect_problem(wrong_method, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
}

#[tokio::test]
async fn openapi_documents_every_route_and_docs_work_offline() {
    let app = TestApp::start().await;
    let doc = expect_json(app.get("/api/openapi.json", None).await, StatusCode::OK).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in [
        "/api/v1/auth/register",
        "/api/v1/auth/login",
        "/api/v1/auth/token",
        "/api/v1/auth/refresh",
        "/api/v1/auth/logout",
        "/api/v1/auth/password",
        "/api/v1/auth/me",
        "/api/v1/profile",
        "/api/v1/admin/users",
        "/api/v1/admin/users/{id}",
        "/api/v1/admin/users/{id}/deactivate",
        "/api/v1/admin/users/{id}/activate",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing from OpenAPI");
    }
    let page = app.get("/api/docs/", None).await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger"), "{html}");
    // Every script and stylesheet comes from this server, not a CDN.
    for line in html.lines().filter(|l| l.contains("src=") || l.contains("href=")) {
        assert!(
            !line.contains("http://") && !line.contains("https://"),
            "external asset: {line}"
        );
    }
    let script = app.get("/api/docs/swagger-ui-bundle.js", None).await;
    assert_eq!(script.status(), StatusCode::OK);
    assert!(script.bytes().await.unwrap().len() > 100_000);
}

#[tokio::test]
async fn responses_are_compressed_when_asked() {
    let app = TestApp::start().await;
    let response = app
        .client
        .get(app.url("/api/openapi.json"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-encoding"], "gzip");
}

#[tokio::test]
async fn cors_allows_only_configured_origins() {
    let app = TestApp::start_with(|c| c.cors_origins = vec!["https://shop.example".into()]).await;
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/api/v1/auth/login"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .send()
    };
    let allowed = preflight("https://shop.example").await.unwrap();
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://shop.example"
    );
    let refused = preflight("https://evil.example").await.unwrap();
    assert!(refused.headers().get("access-control-allow-origin").is_none());
}

async fn login_attempt(app: &TestApp, forwarded_for: Option<&str>) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"username": "quinn", "password": "Wrong#999"}));
    if let Some(ip) = forwarded_for {
        request = request.header("x-forwarded-for", ip);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn login_is_limited_to_five_attempts_a_minute_per_address() {
    let app = TestApp::start_with(|c| c.login_attempts_per_minute = 5).await;
    app.register("quinn").await;
    // Successful sign-ins cost nothing: the limit counts failures.
    for _ in 0..6 {
        app.login("quinn", PASSWORD).await;
    }
    for _ in 0..5 {
        assert_eq!(login_attempt(&app, None).await.status(), StatusCode::UNAUTHORIZED);
    }
    let limited = login_attempt(&app, None).await;
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    expect_problem(limited, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    // Once over, even the right password waits until the window frees.
    let right = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"username": "quinn", "password": PASSWORD}),
        )
        .await;
    assert_eq!(right.status(), StatusCode::TOO_MANY_REQUESTS);
    // X-Forwarded-For from an untrusted peer is ignored: no escape by header.
    assert_eq!(
        login_attempt(&app, Some("203.0.113.9")).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn a_trusted_proxy_forwards_the_client_address() {
    let app = TestApp::start_with(|c| {
        c.login_attempts_per_minute = 5;
        c.trusted_proxies = vec!["127.0.0.1".into()];
    })
    .await;
    app.register("quinn").await;
    for _ in 0..5 {
        assert_eq!(
            login_attempt(&app, Some("198.51.100.1")).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        login_attempt(&app, Some("198.51.100.1")).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    // Another client behind the same proxy has its own budget.
    assert_eq!(
        login_attempt(&app, Some("198.51.100.2")).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn the_general_api_limit_applies_per_address() {
    let app = TestApp::start_with(|c| {
        c.api_requests_per_second = 1;
        c.api_burst = 3;
    })
    .await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(app.get("/api/v1/auth/me", None).await.status());
    }
    assert_eq!(&statuses[..3], [StatusCode::UNAUTHORIZED; 3]);
    assert!(
        statuses[3..].contains(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    // Service endpoints are not throttled.
    assert_eq!(app.get("/health", None).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn graceful_shutdown_stops_cleanly() {
    let app = TestApp::start().await;
    let addr = app.addr;
    app.register("rita").await;
    app.stop().await.expect("server stops without error");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "still accepting after shutdown"
    );
}

#[tokio::test]
async fn a_short_soak_runs_without_a_server_error() {
    // CI's short version of the hour-long soak: the same mixed crowd for a
    // few seconds, which must see no 5xx (its memory report is read by eye).
    let app = TestApp::start().await;
    app.admin("soak_admin").await;
    let options = loadtest::soak::SoakOptions {
        base_url: format!("http://{}", app.addr),
        users: 20,
        connections: 8,
        seconds: 6,
        report_every: 2,
        addresses: 2_000,
        requests_per_address: 4,
        admin: "soak_admin".into(),
        admin_password: Some(crate::harness::PASSWORD.into()),
    };
    loadtest::soak::run(options)
        .await
        .expect("the soak runs without a 5xx");
}
