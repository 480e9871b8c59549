use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{PASSWORD, TestApp, error_fields, expect_json, expect_problem, token_of};

#[tokio::test]
async fn register_returns_the_user_without_secrets() {
    let app = TestApp::start().await;
    let response = app
        .post(
            "/api/v1/auth/register",
            None,
            json!({"email": "Ann@Example.com", "username": "ann", "password": PASSWORD, "full_name": "Ann Lee"}),
        )
        .await;
    let user = expect_json(response, StatusCode::CREATED).await;
    assert_eq!(user["email"], "ann@example.com");
    assert_eq!(user["username"], "ann");
    assert_eq!(user["full_name"], "Ann Lee");
    assert_eq!(user["role"], "customer");
    assert_eq!(user["is_active"], true);
    assert_eq!(user["is_verified"], false);
    assert_eq!(user["weight"], 0.0);
    for field in ["id", "display_name", "created_at"] {
        assert!(user.get(field).is_some(), "missing {field}");
    }
    let text = user.to_string();
    assert!(!text.contains("password") && !text.contains("$2b$"), "{text}");
}

#[tokio::test]
async fn duplicate_email_and_username_conflict() {
    let app = TestApp::start().await;
    app.register("bob").await;
    let same_email = app
        .post(
            "/api/v1/auth/register",
            None,
            json!({"email": "BOB@example.com", "username": "bobby", "password": PASSWORD}),
        )
        .await;
    expect_problem(same_email, StatusCode::CONFLICT, "email_taken").await;
    let same_username = app
        .post(
            "/api/v1/auth/register",
            None,
            json!({"email": "other@example.com", "username": "BOB", "password": PASSWORD}),
        )
        .await;
    expect_problem(same_username, StatusCode::CONFLICT, "username_taken").await;
}

#[tokio::test]
async fn each_password_rule_is_enforced() {
    let app = TestApp::start().await;
    let cases = [
        ("S#1abcd", "at least 8"),
        ("secret#123", "uppercase"),
        ("Secret#abc", "digit"),
        ("Secret1234", "special"),
    ];
    for (i, (password, hint)) in cases.into_iter().enumerate() {
        let response = app
            .post(
                "/api/v1/auth/register",
                None,
                json!({"email": format!("p{i}@example.com"), "username": format!("pw{i}"), "password": password}),
            )
            .await;
        let problem = expect_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
        assert_eq!(error_fields(&problem), ["password"], "{password}");
        assert!(
            problem["errors"][0]["message"].as_str().unwrap().contains(hint),
            "{problem}"
        );
    }
}

#[tokio::test]
async fn invalid_registration_fields_are_named() {
    let app = TestApp::start().await;
    let cases = [
        (
            json!({"email": "nope", "username": "okname", "password": PASSWORD}),
            "email",
        ),
        (
            json!({"email": "a@example.com", "username": "no", "password": PASSWORD}),
            "username",
        ),
        (
            json!({"email": "a@example.com", "username": "bad name!", "password": PASSWORD}),
            "username",
        ),
        (
            json!({"email": "a@example.com", "username": "x".repeat(51), "password": PASSWORD}),
            "username",
        ),
        (
            json!({"email": "a@example.com", "password": PASSWORD}),
            "username",
        ),
        (
            json!({"email": "a@example.com", "username": 42, "password": PASSWORD}),
            "username",
        ),
    ];
    for (body, field) in cases {
        let response = app.post("/api/v1/auth/register", None, body.clone()).await;
        let problem = expect_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
        assert!(
            error_fields(&problem).contains(&field.to_owned()),
            "{body} -> {problem}"
        );
    }
}

#[tokio::test]
async fn a_client_cannot_grant_itself_a_role() {
    let app = TestApp::start().await;
    for field in ["role", "is_active", "is_verified", "weight"] {
        let mut body = json!({"email": "eve@example.com", "username": "eve", "password": PASSWORD});
        body[field] = if field == "role" {
            json!("admin")
        } else {
            json!(true)
        };
        let response = app.post("/api/v1/auth/register", None, body).await;
        let problem = expect_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
        assert_eq!(error_fields(&problem), [field], "{problem}");
    }
    let (_, token, _) = app.customer("eve").await;
    let response = app
        .put("/api/v1/profile", Some(&token), json!({"role": "admin"}))
        .await;
    expect_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    let me = expect_json(app.get("/api/v1/auth/me", Some(&token)).await, StatusCode::OK).await;
    assert_eq!(me["role"], "customer");
    let admin_only = app.get("/api/v1/admin/users", Some(&token)).await;
    expect_problem(admin_only, StatusCode::FORBIDDEN, "forbidden").await;
}

#[tokio::test]
async fn login_by_username_or_email_and_the_token_shape() {
    let app = TestApp::start().await;
    app.register("carol").await;
    for login in ["carol", "CAROL", "carol@example.com", "Carol@Example.com"] {
        let tokens = app.login(login, PASSWORD).await;
        assert_eq!(tokens["token_type"], "bearer");
        assert_eq!(tokens["expires_in"], 1800);
        assert!(tokens["refresh_token"].as_str().unwrap().len() >= 32);
        let me = app
            .get("/api/v1/auth/me", Some(&token_of(&tokens, "access_token")))
            .await;
        assert_eq!(expect_json(me, StatusCode::OK).await["username"], "carol");
    }
}

#[tokio::test]
async fn wrong_credentials_are_401() {
    let app = TestApp::start().await;
    app.register("dave").await;
    for (login, password) in [
        ("dave", "Secret#124"),
        ("nobody", PASSWORD),
        ("nobody@example.com", PASSWORD),
    ] {
        let response = app
            .post(
                "/api/v1/auth/login",
                None,
                json!({"username": login, "password": password}),
            )
            .await;
        let problem = expect_problem(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
        assert!(!problem.to_string().contains("$2b$"));
    }
}

#[tokio::test]
async fn oauth2_password_form_issues_tokens() {
    let app = TestApp::start().await;
    app.register("frank").await;
    let response = app
        .client
        .post(app.url("/api/v1/auth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "grant_type=password&username=frank&password={}",
            "Secret%23123"
        ))
        .send()
        .await
        .unwrap();
    let tokens = expect_json(response, StatusCode::OK).await;
    assert_eq!(tokens["token_type"], "bearer");
    let missing = app
        .client
        .post(app.url("/api/v1/auth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("username=frank")
        .send()
        .await
        .unwrap();
    let problem = expect_problem(missing, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(error_fields(&problem), ["password"]);
}

#[tokio::test]
async fn forged_and_malformed_tokens_are_refused() {
    let app = TestApp::start().await;
    let (_, token, _) = app.customer("gina").await;
    let payload = token.split('.').nth(1).unwrap().to_owned();

    // Signed with another key: a second server has its own generated secret.
    let other = TestApp::start().await;
    let (_, foreign, _) = other.customer("gina").await;
    // alg: none with the genuine payload.
    let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let alg_none = format!("{none_header}.{payload}.");
    // A payload edited to claim admin, keeping the old signature.
    let mut claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&payload).unwrap()).unwrap();
    claims["role"] = json!("admin");
    let parts: Vec<&str> = token.split('.').collect();
    let edited = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        parts[2]
    );

    for bad in [foreign.as_str(), &alg_none, &edited, "not-a-token", ""] {
        let response = app.get("/api/v1/auth/me", Some(bad)).await;
        expect_problem(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
    }
    let no_header = app.get("/api/v1/auth/me", None).await;
    assert_eq!(no_header.headers()["www-authenticate"], "Bearer");
    expect_problem(no_header, StatusCode::UNAUTHORIZED, "unauthorized").await;
    // The genuine token still works.
    expect_json(app.get("/api/v1/auth/me", Some(&token)).await, StatusCode::OK).await;
}

#[tokio::test]
async fn an_expired_token_is_refused_at_once() {
    let app = TestApp::start_with(|c| {
        c.access_ttl_seconds = 60;
    })
    .await;
    let (_, token, _) = app.customer("hank").await;
    app.advance(chrono::Duration::seconds(59));
    expect_json(app.get("/api/v1/auth/me", Some(&token)).await, StatusCode::OK).await;
    app.advance(chrono::Duration::seconds(2));
    let problem = expect_problem(
        app.get("/api/v1/auth/me", Some(&token)).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    assert!(
        problem["detail"].as_str().unwrap().contains("expired"),
        "{problem}"
    );
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_session() {
    let app = TestApp::start().await;
    let (_, access, refresh) = app.customer("ivy").await;

    let rotated = app
        .post("/api/v1/auth/refresh", None, json!({"refresh_token": refresh}))
        .await;
    let rotated = expect_json(rotated, StatusCode::OK).await;
    let new_refresh = token_of(&rotated, "refresh_token");
    let new_access = token_of(&rotated, "access_token");
    assert_ne!(new_refresh, refresh);
    expect_json(
        app.get("/api/v1/auth/me", Some(&new_access)).await,
        StatusCode::OK,
    )
    .await;

    // Replaying the spent token is refused and burns the whole session.
    let replay = app
        .post("/api/v1/auth/refresh", None, json!({"refresh_token": refresh}))
        .await;
    expect_problem(replay, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let successor = app
        .post(
            "/api/v1/auth/refresh",
            None,
            json!({"refresh_token": new_refresh}),
        )
        .await;
    expect_problem(successor, StatusCode::UNAUTHORIZED, "unauthorized").await;
    for token in [&access, &new_access] {
        expect_problem(
            app.get("/api/v1/auth/me", Some(token)).await,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        )
        .await;
    }
    // Other sessions of the user are untouched.
    let fresh = app.login("ivy", PASSWORD).await;
    expect_json(
        app.get("/api/v1/auth/me", Some(&token_of(&fresh, "access_token")))
            .await,
        StatusCode::OK,
    )
    .await;
    let unknown = app
        .post("/api/v1/auth/refresh", None, json!({"refresh_token": "made-up"}))
        .await;
    expect_problem(unknown, StatusCode::UNAUTHORIZED, "unauthorized").await;
}

#[tokio::test]
async fn racing_refreshes_with_one_token_yield_one_pair() {
    let app = TestApp::start().await;
    let (_, _, refresh) = app.customer("jack").await;
    let attempts = (0..8).map(|_| app.post("/api/v1/auth/refresh", None, json!({"refresh_token": refresh})));
    let statuses: Vec<StatusCode> = futures::future::join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.status())
        .collect();
    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    assert!(ok <= 1, "{statuses:?}");
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::OK || *s == StatusCode::UNAUTHORIZED),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn logout_revokes_the_access_and_refresh_token_at_once() {
    let app = TestApp::start().await;
    let (_, access, refresh) = app.customer("kate").await;
    let other_session = app.login("kate", PASSWORD).await;

    let response = app
        .post(
            "/api/v1/auth/logout",
            Some(&access),
            json!({"refresh_token": refresh}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    expect_problem(
        app.get("/api/v1/auth/me", Some(&access)).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    let reuse = app
        .post("/api/v1/auth/refresh", None, json!({"refresh_token": refresh}))
        .await;
    expect_problem(reuse, StatusCode::UNAUTHORIZED, "unauthorized").await;
    // Logging out one session leaves the others signed in.
    let other = token_of(&other_session, "access_token");
    expect_json(app.get("/api/v1/auth/me", Some(&other)).await, StatusCode::OK).await;
    // A logout with no body works too.
    let bare = app
        .request(reqwest::Method::POST, "/api/v1/auth/logout", Some(&other))
        .send()
        .await
        .unwrap();
    assert_eq!(bare.status(), StatusCode::NO_CONTENT);
    expect_problem(
        app.get("/api/v1/auth/me", Some(&other)).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
}

#[tokio::test]
async fn password_change_revokes_every_earlier_token() {
    let app = TestApp::start().await;
    let (_, access, refresh) = app.customer("liam").await;
    let second = app.login("liam", PASSWORD).await;

    let weak = app
        .put(
            "/api/v1/auth/password",
            Some(&access),
            json!({"current_password": PASSWORD, "new_password": "weak"}),
        )
        .await;
    let problem = expect_problem(weak, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(error_fields(&problem), ["new_password"]);
    let wrong = app
        .put(
            "/api/v1/auth/password",
            Some(&access),
            json!({"current_password": "Wrong#123", "new_password": "Better#456"}),
        )
        .await;
    let problem = expect_problem(wrong, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(error_fields(&problem), ["current_password"]);

    let changed = app
        .put(
            "/api/v1/auth/password",
            Some(&access),
            json!({"current_password": PASSWORD, "new_password": "Better#456"}),
        )
        .await;
    let fresh = expect_json(changed, StatusCode::OK).await;
    for old in [access.clone(), token_of(&second, "access_token")] {
        expect_problem(
            app.get("/api/v1/auth/me", Some(&old)).await,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        )
        .await;
    }
    for old in [refresh, token_of(&second, "refresh_token")] {
        let response = app
            .post("/api/v1/auth/refresh", None, json!({"refresh_token": old}))
            .await;
        expect_problem(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
    }
    expect_json(
        app.get("/api/v1/auth/me", Some(&token_of(&fresh, "access_token")))
            .await,
        StatusCode::OK,
    )
    .await;
    let old_password = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"username": "liam", "password": PASSWORD}),
        )
        .await;
    expect_problem(old_password, StatusCode::UNAUTHORIZED, "unauthorized").await;
    app.login("liam", "Better#456").await;
}

#[tokio::test]
async fn profile_reads_and_updates_only_the_callers_fields() {
    let app = TestApp::start().await;
    let (user, token, _) = app.customer("mia").await;
    let profile = expect_json(app.get("/api/v1/profile", Some(&token)).await, StatusCode::OK).await;
    assert_eq!(profile["id"], user["id"]);
    let updated = app
        .put(
            "/api/v1/profile",
            Some(&token),
            json!({"display_name": "Mimi", "full_name": "Mia Wong"}),
        )
        .await;
    let updated = expect_json(updated, StatusCode::OK).await;
    assert_eq!(updated["display_name"], "Mimi");
    assert_eq!(updated["full_name"], "Mia Wong");
    // Fields not sent stay; a blank one clears.
    let cleared = app
        .put("/api/v1/profile", Some(&token), json!({"display_name": ""}))
        .await;
    let cleared = expect_json(cleared, StatusCode::OK).await;
    assert_eq!(cleared["display_name"], serde_json::Value::Null);
    assert_eq!(cleared["full_name"], "Mia Wong");
    let too_long = app
        .put(
            "/api/v1/profile",
            Some(&token),
            json!({"full_name": "x".repeat(101)}),
        )
        .await;
    let problem = expect_problem(too_long, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(error_fields(&problem), ["full_name"]);
    expect_problem(
        app.get("/api/v1/profile", None).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
}
