//! Slow and greedy clients are cut off without hurting the others, and a
//! shutdown drains HTTP and says goodbye to every WebSocket.
//!
//! Every wait here is bounded; none asserts how fast the server is.

use std::net::SocketAddr;
use std::time::Duration;

use futures::StreamExt;
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::harness::{TestApp, expect_problem};

/// The longest any test here waits for the server to act.
const PATIENCE: Duration = Duration::from_secs(30);

async fn connect_from(source: [u8; 4], server: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::from((source, 0)))
        .expect("bind a loopback source address");
    socket.connect(server).await.expect("connect")
}

/// Reads until the server closes the connection (or `PATIENCE` runs out);
/// returns what it sent.
async fn read_to_close(stream: &mut TcpStream) -> Option<String> {
    let mut received = Vec::new();
    let read = tokio::time::timeout(PATIENCE, async {
        let mut buffer = [0u8; 4096];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await;
    read.ok()
        .map(|()| String::from_utf8_lossy(&received).into_owned())
}

async fn health(app: &TestApp) -> StatusCode {
    app.get("/health", None).await.status()
}

#[tokio::test]
async fn a_request_head_dribbled_a_byte_at_a_time_is_closed() {
    let app = TestApp::start_with(|c| c.header_timeout_seconds = 1).await;
    let mut slow = TcpStream::connect(app.addr).await.unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let (mut reader, mut writer) = slow.split();
    let dribble = async {
        for _ in 0..150 {
            if writer.write_all(b"x").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let closed = async {
        let mut byte = [0u8; 512];
        loop {
            match reader.read(&mut byte).await {
                Ok(0) | Err(_) => return true,
                Ok(_) => {}
            }
        }
    };
    let served_meanwhile = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        health(&app).await
    };
    let (closed, status) = tokio::join!(
        async {
            tokio::select! {
                closed = closed => closed,
                () = dribble => false,
            }
        },
        served_meanwhile
    );
    assert!(closed, "the dribbling connection is still open after 30 s");
    assert_eq!(status, StatusCode::OK, "a normal request meanwhile is served");
}

#[tokio::test]
async fn a_request_body_dribbled_a_byte_at_a_time_is_cut_off_with_408() {
    let app = TestApp::start_with(|c| c.header_timeout_seconds = 1).await;
    let mut slow = TcpStream::connect(app.addr).await.unwrap();
    slow.write_all(
        b"POST /api/v1/auth/register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n{",
    )
    .await
    .unwrap();
    let (mut reader, mut writer) = slow.split();
    let dribble = async {
        for _ in 0..150 {
            if writer.write_all(b" ").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        std::future::pending::<()>().await;
    };
    let answer = async {
        let mut received = Vec::new();
        let mut buffer = [0u8; 4096];
        loop {
            match reader.read(&mut buffer).await {
                Ok(0) | Err(_) => return String::from_utf8_lossy(&received).into_owned(),
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    };
    let answer = tokio::time::timeout(PATIENCE, async {
        tokio::select! {
            answer = answer => answer,
            () = dribble => unreachable!(),
        }
    })
    .await
    .expect("the dribbled body was not cut off within 30 s");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    assert!(answer.contains("body_too_slow"), "{answer}");
    assert_eq!(health(&app).await, StatusCode::OK);
}

#[tokio::test]
async fn oversized_request_heads_get_431() {
    let app = TestApp::start().await;
    // Over the API's bound: a problem document.
    let response = app
        .request(reqwest::Method::GET, "/health", None)
        .header("x-padding", "a".repeat(20 * 1024))
        .send()
        .await
        .unwrap();
    expect_problem(
        response,
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "headers_too_large",
    )
    .await;
    // Far over it: refused before it is parsed.
    let response = app
        .request(reqwest::Method::GET, "/health", None)
        .header("x-padding", "a".repeat(64 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    // Under it: served.
    let response = app
        .request(reqwest::Method::GET, "/health", None)
        .header("x-padding", "a".repeat(12 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn one_address_past_its_connections_is_refused_and_others_are_not() {
    let app = TestApp::start_with(|c| c.max_connections_per_address = 4).await;
    let greedy = [127, 0, 0, 2];
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut stream = connect_from(greedy, app.addr).await;
        stream
            .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut answer = [0u8; 12];
        stream.read_exact(&mut answer).await.unwrap();
        assert_eq!(&answer, b"HTTP/1.1 200");
        held.push(stream);
    }
    // The fifth from the same address is closed at once, unanswered.
    let mut fifth = connect_from(greedy, app.addr).await;
    let _ = fifth.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let answer = read_to_close(&mut fifth).await.expect("closed within 30 s");
    assert!(answer.is_empty(), "the fifth connection was answered: {answer}");

    // Another address is served meanwhile.
    let mut other = connect_from([127, 0, 0, 3], app.addr).await;
    other
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = read_to_close(&mut other).await.expect("answered within 30 s");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // Once the greedy address lets one go, it may connect again.
    drop(held.pop());
    let served_again = tokio::time::timeout(PATIENCE, async {
        loop {
            let mut again = connect_from(greedy, app.addr).await;
            let _ = again
                .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .await;
            if read_to_close(&mut again)
                .await
                .is_some_and(|a| a.starts_with("HTTP/1.1 200"))
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(served_again.is_ok(), "the freed place was never given back");
}

#[tokio::test]
async fn shutdown_closes_sockets_with_1001_and_finishes_requests_in_flight() {
    let mut app = TestApp::start().await;
    let (_, token, _) = app.customer("leaving").await;
    let addr = app.addr;
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws?token={token}"))
        .await
        .expect("socket opens");
    match socket.next().await {
        Some(Ok(Message::Text(text))) => assert!(text.contains("\"ready\""), "{text}"),
        other => panic!("no greeting: {other:?}"),
    }
    // A request in flight: its head is in, half its body is not.
    let body = br#"{"email":"late@example.com","username":"late_one","password":"Secret#123"}"#;
    let mut in_flight = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /api/v1/auth/register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    in_flight.write_all(head.as_bytes()).await.unwrap();
    in_flight.write_all(&body[..10]).await.unwrap();
    // Let the server take the head in before shutdown starts.
    let _ = app.get("/health", None).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let client_side = async {
        let close = tokio::time::timeout(PATIENCE, async {
            loop {
                match socket.next().await {
                    Some(Ok(Message::Close(frame))) => return frame,
                    Some(Ok(_)) => continue,
                    other => panic!("the socket ended without a close frame: {other:?}"),
                }
            }
        })
        .await
        .expect("a close frame within 30 s");
        assert_eq!(close.map(|f| f.code), Some(CloseCode::Away));
        // The request in flight is still answered.
        in_flight.write_all(&body[10..]).await.unwrap();
        let answer = read_to_close(&mut in_flight).await.expect("answered within 30 s");
        assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    };
    tokio::join!(app.halt(), client_side);
    // No longer accepting.
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "still accepting after shutdown"
    );
}
