use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{PASSWORD, TestApp, error_fields, expect_json, expect_problem, token_of};

async fn page(app: &TestApp, token: &str, query: &str) -> Value {
    expect_json(
        app.get(&format!("/api/v1/admin/users?{query}"), Some(token))
            .await,
        StatusCode::OK,
    )
    .await
}

#[tokio::test]
async fn customers_get_403_and_anonymous_401_on_admin_routes() {
    let app = TestApp::start().await;
    let (user, token, _) = app.customer("nina").await;
    let id = user["id"].as_str().unwrap();
    let routes = [
        (reqwest::Method::GET, "/api/v1/admin/users".to_owned()),
        (
            reqwest::Method::POST,
            format!("/api/v1/admin/users/{id}/deactivate"),
        ),
        (
            reqwest::Method::POST,
            format!("/api/v1/admin/users/{id}/activate"),
        ),
        (reqwest::Method::PUT, format!("/api/v1/admin/users/{id}")),
    ];
    for (method, path) in routes {
        let customer = app
            .request(method.clone(), &path, Some(&token))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        expect_problem(customer, StatusCode::FORBIDDEN, "forbidden").await;
        let anonymous = app
            .request(method, &path, None)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        expect_problem(anonymous, StatusCode::UNAUTHORIZED, "unauthorized").await;
    }
}

#[tokio::test]
async fn users_page_through_every_match_once() {
    let app = TestApp::start().await;
    let (_, admin) = app.admin("root").await;
    for i in 0..7 {
        app.register(&format!("shopper{i}")).await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let query = match &cursor {
            Some(c) => format!("limit=3&cursor={c}"),
            None => "limit=3".to_owned(),
        };
        let page = page(&app, &admin, &query).await;
        let data = page["data"].as_array().unwrap();
        assert!(data.len() <= 3);
        seen.extend(data.iter().map(|u| u["username"].as_str().unwrap().to_owned()));
        assert_eq!(page["has_more"], page["next_cursor"].is_string());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
        // A user registering mid-way lands before the cursor and is not repeated.
        if seen.len() == 3 {
            app.register("latecomer").await;
        }
    }
    let mut expected: Vec<String> = (0..7).rev().map(|i| format!("shopper{i}")).collect();
    expected.push("root".to_owned());
    assert_eq!(seen, expected, "newest first, each exactly once");
}

#[tokio::test]
async fn users_filter_by_search_role_and_activity() {
    let app = TestApp::start().await;
    let (_, admin) = app.admin("boss").await;
    app.register("apple_fan").await;
    let banana = app.register("banana_fan").await;
    app.register("cherry").await;
    let search = page(&app, &admin, "search=FAN").await;
    let names: Vec<&str> = search["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["banana_fan", "apple_fan"]);
    // `_` is a literal in search, not a wildcard.
    let literal = page(&app, &admin, "search=e_f").await;
    assert_eq!(literal["data"].as_array().unwrap().len(), 1);
    let admins = page(&app, &admin, "role=admin").await;
    assert_eq!(admins["data"].as_array().unwrap().len(), 1);
    assert_eq!(admins["data"][0]["username"], "boss");

    let id = banana["id"].as_str().unwrap();
    let response = app
        .post(
            &format!("/api/v1/admin/users/{id}/deactivate"),
            Some(&admin),
            json!({}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let inactive = page(&app, &admin, "is_active=false").await;
    assert_eq!(inactive["data"].as_array().unwrap().len(), 1);
    assert_eq!(inactive["data"][0]["username"], "banana_fan");
}

#[tokio::test]
async fn bad_list_parameters_are_422() {
    let app = TestApp::start().await;
    let (_, admin) = app.admin("chief").await;
    for _ in 0..3 {
        app.register(&format!("u{}", uuid::Uuid::now_v7().simple())).await;
    }
    let first = page(&app, &admin, "limit=1").await;
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let mut tampered = cursor.clone().into_bytes();
    tampered[2] = if tampered[2] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let cases = [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=abc", "limit"),
        ("role=root", "role"),
        ("is_active=maybe", "is_active"),
        (&format!("cursor={tampered}") as &str, "cursor"),
        ("cursor=garbage", "cursor"),
    ];
    for (query, field) in cases {
        let response = app
            .get(&format!("/api/v1/admin/users?{query}"), Some(&admin))
            .await;
        let problem = expect_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
        assert_eq!(error_fields(&problem), [field], "{query}");
    }
    let ok = page(&app, &admin, &format!("limit=1&cursor={cursor}")).await;
    assert_eq!(ok["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn deactivation_takes_effect_at_once_and_activation_restores() {
    let app = TestApp::start().await;
    let (_, admin) = app.admin("warden").await;
    let (user, token, refresh) = app.customer("oscar").await;
    let id = user["id"].as_str().unwrap();
    expect_json(app.get("/api/v1/auth/me", Some(&token)).await, StatusCode::OK).await;

    let response = app
        .post(
            &format!("/api/v1/admin/users/{id}/deactivate"),
            Some(&admin),
            json!({}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    expect_problem(
        app.get("/api/v1/auth/me", Some(&token)).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    let refreshed = app
        .post("/api/v1/auth/refresh", None, json!({"refresh_token": refresh}))
        .await;
    expect_problem(refreshed, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let login = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"username": "oscar", "password": PASSWORD}),
        )
        .await;
    expect_problem(login, StatusCode::UNAUTHORIZED, "unauthorized").await;

    let response = app
        .post(
            &format!("/api/v1/admin/users/{id}/activate"),
            Some(&admin),
            json!({}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let tokens = app.login("oscar", PASSWORD).await;
    expect_json(
        app.get("/api/v1/auth/me", Some(&token_of(&tokens, "access_token")))
            .await,
        StatusCode::OK,
    )
    .await;
    // Tokens from before the deactivation stay dead.
    expect_problem(
        app.get("/api/v1/auth/me", Some(&token)).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;

    let unknown = uuid::Uuid::now_v7();
    let missing = app
        .post(
            &format!("/api/v1/admin/users/{unknown}/deactivate"),
            Some(&admin),
            json!({}),
        )
        .await;
    expect_problem(missing, StatusCode::NOT_FOUND, "not_found").await;
    let malformed = app
        .post(
            "/api/v1/admin/users/not-a-uuid/deactivate",
            Some(&admin),
            json!({}),
        )
        .await;
    expect_problem(malformed, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
}

#[tokio::test]
async fn admins_set_role_and_weight_and_roles_apply_at_once() {
    let app = TestApp::start().await;
    let (admin_user, admin) = app.admin("master").await;
    let (user, token, _) = app.customer("pete").await;
    let id = user["id"].as_str().unwrap();
    let path = format!("/api/v1/admin/users/{id}");

    // No admin takes their own role away (the console would lock them out).
    let own = format!("/api/v1/admin/users/{}", admin_user["id"].as_str().unwrap());
    let refused = app.put(&own, Some(&admin), json!({"role": "customer"})).await;
    expect_problem(refused, StatusCode::CONFLICT, "cannot_demote_self").await;

    let updated = expect_json(
        app.put(&path, Some(&admin), json!({"weight": 2.5})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(updated["weight"], 2.5);
    assert_eq!(updated["role"], "customer");
    for (body, field) in [
        (json!({"weight": -1.0}), "weight"),
        (json!({"role": "overlord"}), "role"),
        (json!({"weight": "heavy"}), "weight"),
        (json!({"is_active": false}), "is_active"),
    ] {
        let response = app.put(&path, Some(&admin), body).await;
        let problem = expect_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
        assert_eq!(error_fields(&problem), [field]);
    }
    expect_problem(
        app.get("/api/v1/admin/users", Some(&token)).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    let promoted = expect_json(
        app.put(&path, Some(&admin), json!({"role": "admin"})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(promoted["role"], "admin");
    // The same token now carries the new role: roles are read fresh, not from the token.
    expect_json(app.get("/api/v1/admin/users", Some(&token)).await, StatusCode::OK).await;

    // An admin cannot lock themselves out.
    let own = admin_user["id"].as_str().unwrap();
    let response = app
        .post(
            &format!("/api/v1/admin/users/{own}/deactivate"),
            Some(&admin),
            json!({}),
        )
        .await;
    expect_problem(response, StatusCode::CONFLICT, "cannot_deactivate_self").await;
}
