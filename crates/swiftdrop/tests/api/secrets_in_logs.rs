//! No token, cookie or password in any log line, at any level: the real
//! binary at `RUST_LOG=trace`, every way a token travels, then a search of
//! everything it printed.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::process::{Process, free_port};

const PASSWORD: &str = "Hidden#Pass4321";

async fn json_of(response: reqwest::Response, status: StatusCode) -> Value {
    assert_eq!(response.status(), status);
    response.json().await.unwrap()
}

#[tokio::test]
async fn no_token_or_password_reaches_the_log_at_trace() {
    let data = tempfile::tempdir().unwrap();
    let env = [
        (
            "SWIFTDROP_DATA_DIR",
            data.path().join("data").display().to_string(),
        ),
        ("SWIFTDROP_BCRYPT_COST", "4".to_owned()),
        ("RUST_LOG", "trace".to_owned()),
    ];
    let mut server = Process::start(&["serve"], &env, free_port(), &data.path().join("server.log"));
    server.wait_healthy().await;
    let client = Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();

    let register = json!({"email": "quiet@example.com", "username": "quiet", "password": PASSWORD});
    let response = client
        .post(server.url("/api/v1/auth/register"))
        .json(&register)
        .send()
        .await;
    json_of(response.unwrap(), StatusCode::CREATED).await;
    let login = json!({"username": "quiet", "password": PASSWORD});
    let response = client
        .post(server.url("/api/v1/auth/login"))
        .json(&login)
        .send()
        .await;
    let tokens = json_of(response.unwrap(), StatusCode::OK).await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();

    // The Authorization header.
    let me = client
        .get(server.url("/api/v1/auth/me"))
        .bearer_auth(&access)
        .send()
        .await;
    json_of(me.unwrap(), StatusCode::OK).await;
    // A Cookie header carrying it (as a browser would send a session).
    let _ = client
        .get(server.url("/api/v1/auth/me"))
        .header("cookie", format!("swiftdrop_session={access}; other={refresh}"))
        .send()
        .await
        .unwrap();
    // `?token=` on /ws.
    let (mut socket, _) = tokio_tungstenite::connect_async(
        server
            .url(&format!("/ws?token={access}"))
            .replacen("http", "ws", 1),
    )
    .await
    .unwrap();
    assert!(matches!(socket.next().await, Some(Ok(Message::Text(_)))));
    socket.close(None).await.unwrap();
    // The first message `{"type":"auth"}`.
    let (mut socket, _) = tokio_tungstenite::connect_async(server.url("/ws").replacen("http", "ws", 1))
        .await
        .unwrap();
    socket
        .send(Message::text(
            json!({"type": "auth", "token": access}).to_string(),
        ))
        .await
        .unwrap();
    assert!(matches!(socket.next().await, Some(Ok(Message::Text(_)))));
    socket.close(None).await.unwrap();
    // The OAuth2 form, with the password in a form body.
    let form = client
        .post(server.url("/api/v1/auth/token"))
        .form(&[("username", "quiet"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), StatusCode::OK);
    // The refresh token, spent (and the pair it gives).
    let response = client
        .post(server.url("/api/v1/auth/refresh"))
        .json(&json!({"refresh_token": refresh}))
        .send()
        .await;
    let renewed = json_of(response.unwrap(), StatusCode::OK).await;
    let renewed_access = renewed["access_token"].as_str().unwrap().to_owned();
    let renewed_refresh = renewed["refresh_token"].as_str().unwrap().to_owned();

    server.terminate();
    let log = server.output();
    // Our own crates log little below info; the request spans show that
    // `RUST_LOG` opened the levels up (the capped libraries stay at info).
    assert!(log.contains("DEBUG"), "the server did not log below info:\n{log}");
    let signature = |token: &str| token.rsplit('.').next().unwrap_or_default().to_owned();
    for (what, secret) in [
        ("access token", access.clone()),
        ("access token signature", signature(&access)),
        ("refresh token", refresh),
        ("renewed access token", renewed_access),
        ("renewed refresh token", renewed_refresh),
        ("password", PASSWORD.to_owned()),
        ("password, form-encoded", PASSWORD.replace('#', "%23")),
    ] {
        if let Some(line) = log.lines().find(|line| line.contains(&secret)) {
            panic!("the {what} is in the log: {line}");
        }
    }
}
