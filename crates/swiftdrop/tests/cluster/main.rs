//! The real binary as a deployment of several processes: two `api`, two
//! `notifier`, an active and a standby `worker`, over one PostgreSQL, one
//! Redis and one RabbitMQ. Runs only when all three are given
//! (`SWIFTDROP_TEST_DATABASE_URL`, `SWIFTDROP_TEST_REDIS_URL`,
//! `SWIFTDROP_TEST_AMQP_URL`); skips loudly otherwise.
//!
//! Every bound here is on correctness (counts, states), never on speed:
//! waits are bounded only so that a broken deployment fails instead of
//! hanging.

mod deployment;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message as Frame;

use deployment::{Deployment, Node, eventually};

/// Units of the hot item.
const STOCK: i64 = 40;
/// Each buyer may hold at most this many units of it.
const PER_USER: i64 = 2;
/// The purchase limit per client address, the same on every process.
const PURCHASE_RATE: u32 = 1;
const PURCHASE_BURST: u32 = 10;
const BUYERS: usize = 70;

/// One answered purchase: where it was sent, what came back.
#[derive(Debug, Clone)]
struct Answer {
    status: StatusCode,
    body: Value,
    buyer: usize,
}

struct Buyers {
    tokens: Vec<String>,
}

impl Buyers {
    /// Each buyer has its own client address (the proxy's `X-Forwarded-For`).
    fn address(i: usize) -> String {
        format!("10.1.{}.{}", i / 200, i % 200 + 1)
    }
}

async fn purchase(
    deployment: &Deployment,
    api: &Node,
    token: &str,
    item: &str,
    address: &str,
    key: &str,
) -> Result<(StatusCode, Value), reqwest::Error> {
    let response = deployment
        .client
        .request(Method::POST, api.url(&format!("/api/v1/purchase/{item}")))
        .bearer_auth(token)
        .header("x-forwarded-for", address)
        .header("idempotency-key", key)
        .send()
        .await?;
    let status = response.status();
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    Ok((status, body))
}

fn code(body: &Value) -> &str {
    body["code"].as_str().unwrap_or_default()
}

/// A page following the drop over a notifier's WebSocket; resolves with
/// how many stock messages it saw once it has seen the sell-out (stock 0
/// and the `sold_out` status).
async fn follow(url: String, event_id: String) -> (usize, bool, bool) {
    let (mut socket, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("the notifier accepts a WebSocket");
    socket
        .send(Frame::text(
            json!({"type": "subscribe", "event_id": event_id}).to_string(),
        ))
        .await
        .expect("subscribe");
    let (mut stock_messages, mut zero, mut sold_out) = (0, false, false);
    let reading = async {
        while let Some(Ok(frame)) = socket.next().await {
            let Frame::Text(text) = frame else { continue };
            let message: Value = serde_json::from_str(&text).expect("JSON message");
            if message["event_id"] != event_id.as_str() {
                continue;
            }
            match message["type"].as_str() {
                Some("stock") => {
                    stock_messages += 1;
                    zero |= message["stock_remaining"] == 0;
                }
                Some("event.status") => sold_out |= message["status"] == "sold_out",
                _ => {}
            }
            if zero && sold_out {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(60), reading).await;
    (stock_messages, zero, sold_out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_drop_sold_through_two_apis_survives_a_killed_api_and_a_killed_worker() {
    let Some(deployment) = Deployment::start(&[
        (
            "SWIFTDROP_PURCHASE_REQUESTS_PER_SECOND",
            PURCHASE_RATE.to_string(),
        ),
        ("SWIFTDROP_PURCHASE_BURST", PURCHASE_BURST.to_string()),
    ])
    .await
    else {
        return;
    };
    let apis = [deployment.node("api-1"), deployment.node("api-2")];
    let notifiers = [deployment.node("notifier-1"), deployment.node("notifier-2")];

    // Exactly one worker leads.
    eventually("one worker leads", 30, async || {
        let mut leaders = 0;
        for worker in ["worker-1", "worker-2"] {
            leaders += usize::from(deployment.ready(&deployment.node(worker)).await["leader"] == true);
        }
        leaders == 1
    })
    .await;

    let admin = deployment.admin_token(&apis[0]).await;
    let (event_id, item) = deployment
        .live_drop(&apis[1], &admin, "Cluster drop", STOCK, Some(PER_USER), None)
        .await;

    // Buyers sign up and in through either api.
    let tokens: Vec<String> = futures::stream::iter(0..BUYERS)
        .map(|i| {
            let deployment = &deployment;
            let api = apis[i % 2].clone();
            async move {
                deployment
                    .customer(&api, &format!("buyer{i}"), &Buyers::address(i))
                    .await
            }
        })
        .buffered(8)
        .collect()
        .await;
    let buyers = Buyers { tokens };

    // Open pages on both notifiers follow the drop.
    let mut pages = Vec::new();
    for (i, notifier) in notifiers.iter().enumerate() {
        for j in 0..3 {
            let token = &buyers.tokens[i * 3 + j];
            let url = format!("ws://{}/ws?token={token}", notifier.addr);
            pages.push(tokio::spawn(follow(url, event_id.clone())));
        }
    }

    let mut answers: Vec<Answer> = Vec::new();

    // 1. One buyer racing on both apis at once gets exactly its limit.
    let racer = 0;
    let races = (0..6).map(|n| {
        let (deployment, api, token) = (&deployment, &apis[n % 2], &buyers.tokens[racer]);
        let address = Buyers::address(racer);
        let item = &item;
        async move {
            purchase(deployment, api, token, item, &address, &format!("race-{n}"))
                .await
                .expect("both apis answer")
        }
    });
    let raced = futures::future::join_all(races).await;
    let won = raced.iter().filter(|(s, _)| *s == StatusCode::CREATED).count();
    assert_eq!(
        won as i64, PER_USER,
        "the per-user limit across processes: {raced:?}"
    );
    for (status, body) in raced {
        if status != StatusCode::CREATED {
            assert_eq!((status, code(&body)), (StatusCode::CONFLICT, "limit_reached"));
        }
        answers.push(Answer {
            status,
            body,
            buyer: racer,
        });
    }

    // 2. One client address firing at both apis gets the burst of the
    // shared limit once, not once per process.
    let greedy = "10.9.9.9";
    let started = Instant::now();
    let fired = (0..30).map(|n| {
        let buyer = 1 + n / 2;
        let (deployment, api, token) = (&deployment, &apis[n % 2], &buyers.tokens[buyer]);
        let item = &item;
        async move {
            let (status, body) = purchase(deployment, api, token, item, greedy, &format!("greedy-{n}"))
                .await
                .expect("both apis answer");
            Answer { status, body, buyer }
        }
    });
    let fired = futures::future::join_all(fired).await;
    let elapsed = started.elapsed().as_secs_f64();
    let admitted = fired
        .iter()
        .filter(|a| a.status != StatusCode::TOO_MANY_REQUESTS)
        .count();
    // What one shared bucket can let through in that time (one per
    // process would let through twice the burst).
    let bound = PURCHASE_BURST as f64 + (elapsed.ceil() + 1.0) * PURCHASE_RATE as f64;
    eprintln!("greedy address: {admitted} of 30 admitted in {elapsed:.2} s (shared bound {bound})");
    assert!(admitted >= 1, "{fired:?}");
    assert!(
        (admitted as f64) <= bound,
        "{admitted} purchases from one address passed a limit of {PURCHASE_BURST} + {PURCHASE_RATE}/s"
    );
    answers.extend(fired);

    // 3. The crowd buys through both apis; one api is killed (-9) in the
    // middle of it. Requests in flight to it may go unanswered, nothing
    // else: the other api goes on, and every 201 that was answered has
    // its order.
    let crowd: Vec<usize> = (16..BUYERS).collect();
    let created = Arc::new(AtomicUsize::new(0));
    let killed = Arc::new(AtomicBool::new(false));
    let answered_after_kill = Arc::new(AtomicUsize::new(0));
    let requests = crowd.iter().enumerate().map(|(n, &buyer)| {
        let (deployment, buyers, apis, item) = (&deployment, &buyers, &apis, &item);
        let (created, killed, answered_after_kill) =
            (created.clone(), killed.clone(), answered_after_kill.clone());
        async move {
            tokio::time::sleep(Duration::from_millis(15 * n as u64)).await;
            let api = &apis[n % 2];
            let key = format!("crowd-{buyer}");
            let result = purchase(
                deployment,
                api,
                &buyers.tokens[buyer],
                item,
                &Buyers::address(buyer),
                &key,
            )
            .await;
            if result.is_ok() && killed.load(Ordering::SeqCst) && api.name == "api-2" {
                answered_after_kill.fetch_add(1, Ordering::SeqCst);
            }
            if let Ok((StatusCode::CREATED, _)) = &result {
                created.fetch_add(1, Ordering::SeqCst);
            }
            (buyer, key, result)
        }
    });
    let killer = async {
        eventually("the crowd's first reservations", 30, async || {
            created.load(Ordering::SeqCst) >= 8
        })
        .await;
        deployment.kill("api-1");
        killed.store(true, Ordering::SeqCst);
    };
    let (results, ()) = tokio::join!(futures::future::join_all(requests), killer);
    let mut lost = Vec::new();
    for (buyer, key, result) in results {
        match result {
            Ok((status, body)) => answers.push(Answer { status, body, buyer }),
            Err(_) => lost.push((buyer, key)),
        }
    }
    // How many of the crowd's requests api-2 answered after the kill
    // depends on timing, so it is only reported; that api-2 goes on is
    // asserted below, where every later request goes to it.
    eprintln!(
        "{} requests went unanswered when api-1 was killed; api-2 answered {} of the crowd's after it",
        lost.len(),
        answered_after_kill.load(Ordering::SeqCst)
    );
    // The buyers whose answer was lost retry on the survivor with the same
    // key: a reservation made before the kill comes back (200), never twice.
    for (buyer, key) in &lost {
        let (status, body) = purchase(
            &deployment,
            &apis[1],
            &buyers.tokens[*buyer],
            &item,
            &Buyers::address(*buyer),
            key,
        )
        .await
        .expect("api-2 answers");
        answers.push(Answer {
            status,
            body,
            buyer: *buyer,
        });
    }
    // Then everyone buys again on the survivor until the drop sells out.
    for &buyer in &crowd {
        let key = format!("again-{buyer}");
        let (status, body) = purchase(
            &deployment,
            &apis[1],
            &buyers.tokens[buyer],
            &item,
            &Buyers::address(buyer),
            &key,
        )
        .await
        .expect("api-2 answers");
        answers.push(Answer { status, body, buyer });
    }

    // Zero oversell, and every 201 answered has its order.
    let mut orders = HashSet::new();
    for answer in &answers {
        match (answer.status, code(&answer.body)) {
            (StatusCode::CREATED, _) => {
                assert_eq!(answer.body["status"], "reserved");
                assert!(
                    orders.insert(answer.body["id"].as_str().unwrap().to_owned()),
                    "one order answered twice as new"
                );
            }
            (StatusCode::OK, _) => {} // a replayed key
            (StatusCode::CONFLICT, "sold_out" | "limit_reached") => {}
            (StatusCode::TOO_MANY_REQUESTS, _) => {}
            (status, _) => panic!("unexpected answer {status}: {}", answer.body),
        }
    }
    eprintln!("{} reservations answered 201", orders.len());
    assert!(
        orders.len() as i64 <= STOCK,
        "{} reservations answered for a stock of {STOCK}",
        orders.len()
    );
    let ledger = deployment
        .get_json(
            &apis[1],
            &format!("/api/v1/admin/events/{event_id}/stock"),
            &admin,
        )
        .await;
    let line = &ledger[0];
    eprintln!("stock audit after the sale: {line}");
    assert_eq!(line["balanced"], true, "{line}");
    assert_eq!(
        line["stock_remaining"], 0,
        "the crowd wanted more than the stock: {line}"
    );
    assert_eq!(
        line["reserved"].as_i64().unwrap() + line["confirmed"].as_i64().unwrap(),
        STOCK,
        "{line}"
    );
    for answer in answers.iter().filter(|a| a.status == StatusCode::CREATED) {
        let id = answer.body["id"].as_str().unwrap();
        let order = deployment
            .get_json(
                &apis[1],
                &format!("/api/v1/orders/{id}"),
                &buyers.tokens[answer.buyer],
            )
            .await;
        assert_eq!(order["status"], "reserved", "{order}");
    }

    // Every page, on either notifier, saw the stock move and the sell-out.
    for page in pages {
        let (stock_messages, zero, sold_out) = page.await.expect("page task");
        assert!(
            stock_messages >= 1 && zero && sold_out,
            "a page saw {stock_messages} stock messages, zero {zero}, sold out {sold_out}"
        );
    }

    // 4. The leading worker is killed (-9): the standby takes over, and a
    // reservation made afterwards expires on time all the same.
    let mut leader = None;
    for worker in ["worker-1", "worker-2"] {
        if deployment.ready(&deployment.node(worker)).await["leader"] == true {
            leader = Some(worker);
        }
    }
    let leader = leader.expect("a worker leads");
    let standby = deployment.node(if leader == "worker-1" {
        "worker-2"
    } else {
        "worker-1"
    });
    let (short_event, short_item) = deployment
        .live_drop(&apis[1], &admin, "Short holds", 3, None, Some(2))
        .await;
    deployment.kill(leader);
    let killed_at = Instant::now();
    let (status, order) = purchase(
        &deployment,
        &apis[1],
        &buyers.tokens[20],
        &short_item,
        &Buyers::address(20),
        "short",
    )
    .await
    .expect("api-2 answers");
    assert_eq!(status, StatusCode::CREATED, "{order}");
    let order_path = format!("/api/v1/orders/{}", order["id"].as_str().unwrap());
    eventually("the standby leads", 30, async || {
        deployment.ready(&standby).await["leader"] == true
    })
    .await;
    eprintln!(
        "the standby leads {:.1} s after the leader was killed",
        killed_at.elapsed().as_secs_f64()
    );
    eventually("the reservation expires under the standby", 30, async || {
        deployment
            .get_json(&apis[1], &order_path, &buyers.tokens[20])
            .await["status"]
            == "expired"
    })
    .await;
    eventually("its unit is back in stock", 30, async || {
        let ledger = deployment
            .get_json(
                &apis[1],
                &format!("/api/v1/admin/events/{short_event}/stock"),
                &admin,
            )
            .await;
        ledger[0]["stock_remaining"] == 3 && ledger[0]["balanced"] == true
    })
    .await;
    eprintln!(
        "expiry done by the standby {:.1} s after the leader was killed",
        killed_at.elapsed().as_secs_f64()
    );
    deployment.stop().await;
}
