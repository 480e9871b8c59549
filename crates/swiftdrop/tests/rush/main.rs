//! A rush of sign-ups is served, not shed: password hashes are admitted by
//! the wait they will have, not by a count.
//!
//! A test binary of its own: admission depends on how long a hash takes,
//! and the hundred tests of `api` running beside it would make every hash
//! slower than the machine is when a real rush comes.

#[allow(dead_code)]
#[path = "../api/harness.rs"]
mod harness;

use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{PASSWORD, TestApp, expect_json, expect_problem};

/// The two rushes take turns: each is measured on the whole machine.
static ONE_RUSH_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn register_many(app: &TestApp, prefix: &str, count: usize) -> Vec<reqwest::Response> {
    let requests = (0..count).map(|i| {
        let username = format!("{prefix}_{i}");
        app.post(
            "/api/v1/auth/register",
            None,
            json!({"email": format!("{username}@example.com"), "username": username, "password": PASSWORD}),
        )
    });
    join_all(requests).await
}

#[tokio::test]
async fn sixteen_sign_ups_at_once_at_cost_12_are_all_served() {
    let _turn = ONE_RUSH_AT_A_TIME.lock().await;
    // The production cost, and the default bound (10 s of expected wait).
    let app = TestApp::start_with(|c| c.bcrypt_cost = 12).await;
    let answers = register_many(&app, "rush", 16).await;
    for answer in answers {
        expect_json(answer, StatusCode::CREATED).await;
    }
}

#[tokio::test]
async fn past_the_bound_a_sign_up_is_told_how_long_to_wait() {
    let _turn = ONE_RUSH_AT_A_TIME.lock().await;
    // A one-second bound at cost 12 (hundreds of milliseconds a hash on
    // one thread): of 16 at once only the first few fit.
    let app = TestApp::start_with(|c| {
        c.bcrypt_cost = 12;
        c.hash_concurrency = 1;
        c.hash_max_wait_seconds = 1;
    })
    .await;
    let answers = register_many(&app, "bound", 16).await;
    let (mut created, mut shed) = (0, 0);
    for answer in answers {
        if answer.status() == StatusCode::CREATED {
            created += 1;
            continue;
        }
        let retry_after: u64 = answer
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .expect("a 503 carries Retry-After in seconds");
        assert!(retry_after >= 1, "{retry_after}");
        expect_problem(answer, StatusCode::SERVICE_UNAVAILABLE, "overloaded").await;
        shed += 1;
    }
    assert!(created >= 1, "the first sign-up never waits");
    assert!(
        shed >= 1,
        "16 hashes cannot all start within a second on one thread"
    );
}
