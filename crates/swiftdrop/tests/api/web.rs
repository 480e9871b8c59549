//! The web UI over HTTP: sessions, CSRF, forms that re-render with their
//! messages, access to the admin pages, headers, and the shop's flows
//! (buy, confirm, bid) through the pages alone.

use std::collections::HashMap;

use chrono::Duration;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

use crate::events::event_body;
use crate::harness::{PASSWORD, TestApp, expect_json};

/// A browser without JavaScript: keeps cookies, never follows redirects.
struct Browser {
    base: String,
    client: Client,
    cookies: HashMap<String, String>,
}

struct Page {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Page {
    fn location(&self) -> &str {
        self.headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// The CSRF token of the page's first form.
    fn csrf(&self) -> String {
        let marker = "name=\"csrf_token\" value=\"";
        let start = self.body.find(marker).expect("a form with a csrf_token") + marker.len();
        let end = self.body[start..].find('"').expect("end of the token");
        self.body[start..start + end].to_owned()
    }

    fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_owned)
            .collect()
    }
}

impl Browser {
    fn new(app: &TestApp) -> Browser {
        Browser {
            base: app.url(""),
            client: Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            cookies: HashMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn keep(&mut self, response: reqwest::Response) -> Page {
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.text().await.expect("body");
        for value in headers.get_all(SET_COOKIE).iter().filter_map(|v| v.to_str().ok()) {
            let pair = value.split(';').next().unwrap_or_default();
            if let Some((name, value)) = pair.split_once('=') {
                if value.is_empty() || value.contains("Max-Age=0") || pair.is_empty() {
                    self.cookies.remove(name);
                } else {
                    self.cookies.insert(name.to_owned(), value.to_owned());
                }
            }
        }
        Page {
            status,
            headers,
            body,
        }
    }

    async fn get(&mut self, path: &str) -> Page {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .header("accept", "text/html")
            .header("cookie", self.cookie_header())
            .send()
            .await
            .expect("request");
        self.keep(response).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .header("accept", "text/html")
            .header("cookie", self.cookie_header())
            .form(form)
            .send()
            .await
            .expect("request");
        self.keep(response).await
    }

    /// Signs up through the page; `username` is signed in afterwards.
    async fn sign_up(&mut self, username: &str) -> Page {
        let csrf = self.get("/register").await.csrf();
        let email = format!("{username}@example.com");
        let page = self
            .post(
                "/register",
                &[
                    ("csrf_token", &csrf),
                    ("email", &email),
                    ("username", username),
                    ("password", PASSWORD),
                    ("full_name", ""),
                    ("next", "/"),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
        page
    }

    async fn sign_in(&mut self, username: &str) -> Page {
        let csrf = self.get("/login").await.csrf();
        self.post(
            "/login",
            &[
                ("csrf_token", &csrf),
                ("username", username),
                ("password", PASSWORD),
            ],
        )
        .await
    }

    fn access_token(&self) -> String {
        let value = self.cookies.get("swiftdrop_session").expect("a session cookie");
        value.split('~').next().unwrap_or_default().to_owned()
    }
}

async fn shop_app() -> TestApp {
    TestApp::start_with(|c| {
        c.purchase_requests_per_second = 100_000;
        c.purchase_burst = 100_000;
        c.bid_requests_per_second = 100_000;
        c.bid_burst = 100_000;
    })
    .await
}

/// A live drop with one item of `stock` units; returns (event id, item id).
async fn live_drop(app: &TestApp, admin: &str, stock: i64) -> (String, String) {
    let product = expect_json(
        app.post(
            "/api/v1/admin/products",
            Some(admin),
            json!({"name": "Web sneaker", "category": "shoes", "price_cents": 1999, "currency": "EUR"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let mut body = event_body("Web drop", Duration::hours(1), Duration::hours(2));
    body["items"] = json!([{"product_id": product["id"], "price_cents": 1999, "stock": stock}]);
    let event = expect_json(
        app.post("/api/v1/admin/events", Some(admin), body).await,
        StatusCode::CREATED,
    )
    .await;
    let id = event["id"].as_str().expect("id").to_owned();
    let opened: Value = expect_json(
        app.post(&format!("/api/v1/admin/events/{id}/open"), Some(admin), json!({}))
            .await,
        StatusCode::OK,
    )
    .await;
    let item = opened["items"][0]["id"].as_str().expect("item").to_owned();
    (id, item)
}

#[tokio::test]
async fn pages_carry_the_security_headers_and_the_phone_basics() {
    let app = TestApp::start().await;
    let mut browser = Browser::new(&app);
    for path in ["/", "/login", "/register", "/events"] {
        let page = browser.get(path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        let header = |name: &str| {
            page.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        assert!(header("content-type").starts_with("text/html"), "{path}");
        let csp = header("content-security-policy");
        assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert_eq!(header("x-content-type-options"), "nosniff");
        assert_eq!(header("referrer-policy"), "same-origin");
        assert!(page.body.contains("<html lang=\"en\">"), "{path}");
        assert!(page.body.contains("<title>"), "{path}");
        assert!(
            page.body
                .contains("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"),
            "{path}"
        );
        assert!(!page.body.contains("<script>"), "{path}: no inline script");
        assert!(!page.body.contains(" onclick="), "{path}: no inline handler");
    }
    // The assets are served from the binary, cached for long.
    let home = browser.get("/").await.body;
    let start = home.find("/static/").expect("an asset link");
    let end = start + home[start..].find('"').expect("end of the link");
    let css = browser.get(&home[start..end]).await;
    assert_eq!(css.status, StatusCode::OK);
    assert!(
        css.headers["cache-control"]
            .to_str()
            .unwrap_or_default()
            .contains("max-age=31536000")
    );
}

#[tokio::test]
async fn unknown_pages_are_html_404s_and_unknown_api_paths_stay_problems() {
    let app = TestApp::start().await;
    let mut browser = Browser::new(&app);
    let page = browser.get("/no/such/page").await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(page.body.contains("Not found"), "{}", page.body);
    let api = app.get("/api/v1/no-such-thing", None).await;
    assert_eq!(api.status(), StatusCode::NOT_FOUND);
    assert!(
        api.headers()["content-type"]
            .to_str()
            .unwrap_or_default()
            .starts_with("application/problem+json")
    );
    let event = browser.get(&format!("/events/{}", uuid::Uuid::now_v7())).await;
    assert_eq!(event.status, StatusCode::NOT_FOUND);
    assert!(event.body.contains("<html"));
}

#[tokio::test]
async fn a_post_without_its_csrf_token_is_refused_and_changes_nothing() {
    let app = TestApp::start().await;
    let mut browser = Browser::new(&app);
    browser.get("/register").await;
    let form = [
        ("email", "mallory@example.com"),
        ("username", "mallory"),
        ("password", PASSWORD),
    ];
    let page = browser.post("/register", &form).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(page.body.contains("<html"), "a 403 page, not a problem document");
    let forged = [
        ("csrf_token", "00ff"),
        ("username", "mallory"),
        ("password", PASSWORD),
    ];
    assert_eq!(
        browser.post("/login", &forged).await.status,
        StatusCode::FORBIDDEN
    );
    // Nothing was created: the name is still free.
    let csrf = browser.get("/register").await.csrf();
    let mut with_token = form.to_vec();
    with_token.push(("csrf_token", &csrf));
    assert_eq!(
        browser.post("/register", &with_token).await.status,
        StatusCode::SEE_OTHER
    );

    // A token from another browser does not pass either.
    let mut other = Browser::new(&app);
    other.get("/login").await;
    let stolen = [
        ("csrf_token", csrf.as_str()),
        ("username", "mallory"),
        ("password", PASSWORD),
    ];
    assert_eq!(other.post("/login", &stolen).await.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn sign_up_shows_the_messages_beside_the_fields_and_keeps_what_was_typed() {
    let app = TestApp::start().await;
    let mut browser = Browser::new(&app);
    let csrf = browser.get("/register").await.csrf();
    let page = browser
        .post(
            "/register",
            &[
                ("csrf_token", &csrf),
                ("email", "not-an-email"),
                ("username", "typed_name"),
                ("password", "short"),
                ("full_name", "Typed Full Name"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.body.contains("value=\"not-an-email\""), "{}", page.body);
    assert!(page.body.contains("value=\"typed_name\""));
    assert!(page.body.contains("value=\"Typed Full Name\""));
    assert!(
        !page.body.contains("value=\"short\""),
        "passwords are never echoed"
    );
    assert!(page.body.contains("id=\"password-error\""), "{}", page.body);
    assert!(page.body.contains("id=\"email-error\""), "{}", page.body);
    assert!(
        !browser.cookies.contains_key("swiftdrop_session"),
        "no session after a failed sign-up"
    );
}

#[tokio::test]
async fn sign_up_signs_in_with_a_safe_cookie_and_sign_in_refuses_wrong_credentials() {
    let app = TestApp::start().await;
    let mut browser = Browser::new(&app);
    let page = browser.sign_up("webuser").await;
    assert_eq!(page.location(), "/");
    let cookie = page
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("swiftdrop_session="))
        .expect("the session cookie");
    for flag in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(flag), "{cookie} lacks {flag}");
    }
    assert!(
        !cookie.contains("Secure"),
        "plain HTTP from a client that is no proxy"
    );
    let home = browser.get("/").await;
    assert!(home.body.contains("webuser"));
    assert!(home.body.contains(">Sign out</button>"));

    let mut stranger = Browser::new(&app);
    let csrf = stranger.get("/login").await.csrf();
    let page = stranger
        .post(
            "/login",
            &[
                ("csrf_token", &csrf),
                ("username", "webuser"),
                ("password", "Wrong#12345"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    assert!(page.body.contains("value=\"webuser\""), "the login is kept");
    assert!(!stranger.cookies.contains_key("swiftdrop_session"));

    // `next` is followed only to a path of this site.
    let csrf = stranger.get("/login?next=/orders").await.csrf();
    let page = stranger
        .post(
            "/login",
            &[
                ("csrf_token", &csrf),
                ("username", "webuser@example.com"),
                ("password", PASSWORD),
                ("next", "//evil.example/phish"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location(), "/");
}

#[tokio::test]
async fn sign_out_revokes_the_session_on_the_server() {
    let app = TestApp::start().await;
    let mut browser = Browser::new(&app);
    browser.sign_up("leaver").await;
    let token = browser.access_token();
    assert_eq!(
        app.get("/api/v1/auth/me", Some(&token)).await.status(),
        StatusCode::OK
    );
    // GET /logout changes nothing.
    let page = browser.get("/logout").await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(
        app.get("/api/v1/auth/me", Some(&token)).await.status(),
        StatusCode::OK
    );
    let csrf = page.csrf();
    let page = browser.post("/logout", &[("csrf_token", &csrf)]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location(), "/");
    assert!(
        page.set_cookies()
            .iter()
            .any(|c| c.starts_with("swiftdrop_session=;") && c.contains("Max-Age=0"))
    );
    assert_eq!(
        app.get("/api/v1/auth/me", Some(&token)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert!(!browser.get("/").await.body.contains("leaver"));
}

#[tokio::test]
async fn an_expired_access_token_is_refreshed_without_the_user_noticing() {
    let app = TestApp::start().await;
    let mut browser = Browser::new(&app);
    browser.sign_up("patient").await;
    let before = browser.access_token();
    app.advance(Duration::minutes(31));
    assert_eq!(
        app.get("/api/v1/auth/me", Some(&before)).await.status(),
        StatusCode::UNAUTHORIZED,
        "the access token expired"
    );
    let page = browser.get("/orders").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("patient"));
    let after = browser.access_token();
    assert_ne!(before, after, "a new pair was set");
    assert_eq!(
        app.get("/api/v1/auth/me", Some(&after)).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn admin_pages_send_visitors_to_sign_in_and_refuse_customers() {
    let app = TestApp::start().await;
    let mut visitor = Browser::new(&app);
    for path in ["/admin", "/admin/events"] {
        let page = visitor.get(path).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{path}");
        let encoded = path.replace('/', "%2F");
        assert_eq!(page.location(), format!("/login?next={encoded}"));
    }
    let mut customer = Browser::new(&app);
    customer.sign_up("shopper").await;
    for path in ["/admin", "/admin/events"] {
        let page = customer.get(path).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{path}");
        assert!(page.body.contains("<html"));
    }
    app.admin("boss").await;
    let mut admin = Browser::new(&app);
    assert_eq!(admin.sign_in("boss").await.status, StatusCode::SEE_OTHER);
    for path in ["/admin", "/admin/events"] {
        let page = admin.get(path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.body);
    }
    assert!(
        admin.get("/admin").await.body.contains("<svg"),
        "the revenue chart"
    );
}

#[tokio::test]
async fn every_fixed_page_answers_for_the_right_user() {
    let app = TestApp::start().await;
    let mut visitor = Browser::new(&app);
    for path in ["/", "/login", "/register", "/events"] {
        assert_eq!(visitor.get(path).await.status, StatusCode::OK, "{path}");
    }
    for path in ["/orders"] {
        let page = visitor.get(path).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{path}");
        assert!(page.location().starts_with("/login?next="));
    }
    let mut customer = Browser::new(&app);
    customer.sign_up("regular").await;
    for path in ["/", "/events", "/orders", "/logout"] {
        assert_eq!(customer.get(path).await.status, StatusCode::OK, "{path}");
    }
}

#[tokio::test]
async fn a_buyer_past_the_purchase_limit_gets_a_429_page_with_retry_after() {
    let app = TestApp::start_with(|c| {
        c.purchase_requests_per_second = 1;
        c.purchase_burst = 1;
    })
    .await;
    let (_, admin_token) = app.admin("seller").await;
    let (event, item) = live_drop(&app, &admin_token, 5).await;
    let mut buyer = Browser::new(&app);
    buyer.sign_up("hasty").await;
    let csrf = buyer.get(&format!("/events/{event}")).await.csrf();
    let path = format!("/events/{event}/items/{item}/buy");
    let form = |key| {
        [
            ("csrf_token", csrf.as_str()),
            ("quantity", "1"),
            ("idempotency_key", key),
        ]
    };
    let first = buyer.post(&path, &form("first")).await;
    assert_eq!(first.status, StatusCode::SEE_OTHER, "{}", first.body);
    let refused = buyer.post(&path, &form("second")).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = refused.headers[reqwest::header::RETRY_AFTER]
        .to_str()
        .ok()
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert!((1..=2).contains(&wait), "an honest wait: {wait}");
    assert!(refused.body.contains("Too many requests"), "{}", refused.body);
    assert!(
        refused.body.contains(&format!("data-item-id=\"{item}\"")),
        "the drop is still shown"
    );
}

#[tokio::test]
async fn a_customer_buys_confirms_and_the_admin_sees_the_revenue() {
    let app = shop_app().await;
    let (_, admin_token) = app.admin("seller").await;
    let (event, item) = live_drop(&app, &admin_token, 3).await;

    // A visitor sees the stock, and is asked to sign in to buy.
    let mut visitor = Browser::new(&app);
    let page = visitor.get(&format!("/events/{event}")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains(&format!("data-item-id=\"{item}\"")));
    assert!(page.body.contains("value=\"3\""), "the stock bar shows 3 left");
    assert!(page.body.contains("€19.99"));
    assert!(page.body.contains("Sign in to buy"));

    let mut buyer = Browser::new(&app);
    buyer.sign_up("buyer").await;
    let page = buyer.get(&format!("/events/{event}")).await;
    assert!(page.body.contains(">Buy "), "{}", page.body);
    let csrf = page.csrf();
    let page = buyer
        .post(
            &format!("/events/{event}/items/{item}/buy"),
            &[
                ("csrf_token", &csrf),
                ("quantity", "1"),
                ("idempotency_key", "k-1"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let order_path = page.location().to_owned();
    assert!(order_path.starts_with("/orders/"));
    // The same form sent twice is the same order.
    let again = buyer
        .post(
            &format!("/events/{event}/items/{item}/buy"),
            &[
                ("csrf_token", &csrf),
                ("quantity", "1"),
                ("idempotency_key", "k-1"),
            ],
        )
        .await;
    assert_eq!(again.location(), order_path);

    let order = buyer.get(&order_path).await;
    assert_eq!(order.status, StatusCode::OK);
    assert!(order.body.contains("<time datetime="), "the hold's countdown");
    assert!(order.body.contains(">Confirm"));
    assert!(order.body.contains(">Cancel"));
    let stock = visitor.get(&format!("/events/{event}")).await;
    assert!(stock.body.contains("value=\"2\""), "one unit is held");

    // Someone else's order is not found.
    let mut other = Browser::new(&app);
    other.sign_up("nosy").await;
    assert_eq!(other.get(&order_path).await.status, StatusCode::NOT_FOUND);

    let csrf = order.csrf();
    let page = buyer
        .post(&format!("{order_path}/confirm"), &[("csrf_token", &csrf)])
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let order = buyer.get(&order_path).await;
    assert!(order.body.contains("confirmed"));
    assert!(!order.body.contains(">Confirm order"));
    let list = buyer.get("/orders").await;
    assert!(list.body.contains(&order_path));
    assert!(
        list.body.contains("<td>Web sneaker</td>"),
        "the list names what was bought"
    );

    let mut admin = Browser::new(&app);
    admin.sign_in("seller").await;
    let dashboard = admin.get("/admin").await;
    assert!(
        dashboard.body.contains("€19.99"),
        "confirmed revenue on the dashboard"
    );
    let audit = admin.get(&format!("/admin/events/{event}")).await;
    assert!(audit.body.contains("Stock audit"));
    assert!(!audit.body.contains(">NO<"), "the ledger balances");
}

#[tokio::test]
async fn an_admin_creates_a_drop_through_the_form_and_opens_it() {
    let app = shop_app().await;
    let (_, token) = app.admin("maker").await;
    let product = expect_json(
        app.post(
            "/api/v1/admin/products",
            Some(&token),
            json!({"name": "Form hoodie", "category": "wear", "price_cents": 4500, "currency": "EUR"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let product_id = product["id"].as_str().expect("id").to_owned();
    let mut admin = Browser::new(&app);
    admin.sign_in("maker").await;
    let page = admin.get("/admin/events").await;
    assert!(page.body.contains("Form hoodie"), "products to choose from");
    let csrf = page.csrf();
    let start = (chrono::Utc::now() + Duration::hours(1))
        .format("%Y-%m-%dT%H:%M")
        .to_string();
    let end = (chrono::Utc::now() + Duration::hours(2))
        .format("%Y-%m-%dT%H:%M")
        .to_string();
    // An end before the start is named beside its field, the rest kept.
    let invalid = admin
        .post(
            "/admin/events",
            &[
                ("csrf_token", &csrf),
                ("title", "Hoodie drop"),
                ("location", "Online"),
                ("start_time", &end),
                ("end_time", &start),
                ("product_id", &product_id),
                ("price", "45.00"),
                ("stock", "5"),
                ("per_user_limit", ""),
            ],
        )
        .await;
    assert_eq!(
        invalid.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        invalid.body
    );
    assert!(invalid.body.contains("id=\"end_time-error\""), "{}", invalid.body);
    assert!(invalid.body.contains("value=\"Hoodie drop\""));
    let created = admin
        .post(
            "/admin/events",
            &[
                ("csrf_token", &csrf),
                ("title", "Hoodie drop"),
                ("location", "Online"),
                ("start_time", &start),
                ("end_time", &end),
                ("product_id", &product_id),
                ("price", "45.00"),
                ("stock", "5"),
                ("per_user_limit", "2"),
            ],
        )
        .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.body);
    let path = created.location().to_owned();
    let event_id = path.trim_start_matches("/admin/events/").to_owned();
    let before: Value = expect_json(
        app.get(&format!("/api/v1/events/{event_id}"), None).await,
        StatusCode::OK,
    )
    .await;
    let item_id = before["items"][0]["id"].as_str().expect("item").to_owned();
    // While scheduled the drop can be edited; its item keeps its id.
    let edit = admin.get(&format!("{path}/edit")).await;
    assert_eq!(edit.status, StatusCode::OK);
    assert!(
        edit.body.contains(&format!("value=\"{item_id}\"")),
        "the item's id rides along"
    );
    let csrf = edit.csrf();
    let edit_form = |stock: &str| -> Vec<(&'static str, String)> {
        vec![
            ("csrf_token", csrf.clone()),
            ("title", "Hoodie drop".to_owned()),
            ("location", "Online".to_owned()),
            ("start_time", start.clone()),
            ("end_time", end.clone()),
            ("item_id", item_id.clone()),
            ("product_id", product_id.clone()),
            ("price", "45.00".to_owned()),
            ("stock", stock.to_owned()),
            ("per_user_limit", "2".to_owned()),
        ]
    };
    let form = edit_form("7");
    let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let saved = admin.post(&format!("{path}/edit"), &pairs).await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    let after: Value = expect_json(
        app.get(&format!("/api/v1/events/{event_id}"), None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(after["items"][0]["id"], item_id.as_str());
    assert_eq!(after["items"][0]["stock_total"], 7);

    let page = admin.get(&path).await;
    assert!(page.body.contains("scheduled"));
    let csrf = page.csrf();
    let opened = admin
        .post(&format!("{path}/open"), &[("csrf_token", &csrf)])
        .await;
    assert_eq!(opened.status, StatusCode::SEE_OTHER, "{}", opened.body);
    let event: Value = expect_json(
        app.get(&format!("/api/v1/events/{event_id}"), None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(event["status"], "live");
    // Once live, an edit is refused with the reason on the page.
    let form = edit_form("9");
    let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let refused = admin.post(&format!("{path}/edit"), &pairs).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);
    assert_eq!(event["items"][0]["price_cents"], 4500);
    assert_eq!(event["items"][0]["per_user_limit"], 2);
    let home = admin.get("/").await;
    assert!(
        home.body.contains("Hoodie drop"),
        "the live drop is on the home page"
    );
    let dashboard = admin.get("/admin").await;
    assert!(
        dashboard.body.contains("Hoodie drop"),
        "and in the dashboard's sell-through"
    );
}

#[tokio::test]
async fn a_bid_through_the_page_shows_the_rank_and_a_low_bid_keeps_its_value() {
    let app = shop_app().await;
    let (_, admin_token) = app.admin("auctioneer").await;
    let product = expect_json(
        app.post(
            "/api/v1/admin/products",
            Some(&admin_token),
            json!({"name": "Rare vinyl", "category": "music", "price_cents": 5000, "currency": "EUR"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let now = chrono::Utc::now();
    let auction = expect_json(
        app.post(
            "/api/v1/admin/auctions",
            Some(&admin_token),
            json!({
                "product_id": product["id"], "upset_price_cents": 1000, "inventory": 1,
                "alpha": 1.0, "beta": 10.0, "gamma": 1.0,
                "start_time": (now - Duration::seconds(1) + Duration::milliseconds(1500)).to_rfc3339(),
                "end_time": (now + Duration::hours(1)).to_rfc3339(),
            }),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let id = auction["id"].as_str().expect("id").to_owned();
    app.advance(Duration::seconds(2));

    let mut bidder = Browser::new(&app);
    bidder.sign_up("bidder").await;
    let page = bidder.get(&format!("/auctions/{id}")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains(">Place bid</button>"), "{}", page.body);
    let csrf = page.csrf();
    let low = bidder
        .post(
            &format!("/auctions/{id}/bids"),
            &[("csrf_token", &csrf), ("price", "5.50")],
        )
        .await;
    assert_eq!(low.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", low.body);
    assert!(low.body.contains("value=\"5.50\""));
    assert!(low.body.contains("id=\"price-error\""));
    let placed = bidder
        .post(
            &format!("/auctions/{id}/bids"),
            &[("csrf_token", &csrf), ("price", "12.50")],
        )
        .await;
    assert_eq!(placed.status, StatusCode::SEE_OTHER, "{}", placed.body);
    let page = bidder.get(&format!("/auctions/{id}")).await;
    assert!(page.body.contains("data-my-rank>1<"), "{}", page.body);
    assert!(page.body.contains("€12.50"));
    let board: Value = expect_json(
        app.get(&format!("/api/v1/auctions/{id}/leaderboard"), None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(board["entries"][0]["bid_cents"], 1250);
}

#[tokio::test]
async fn community_events_are_created_edited_attended_and_discussed_in_threads() {
    let app = TestApp::start().await;
    let mut host = Browser::new(&app);
    host.sign_up("host").await;
    let page = host.get("/events/new").await;
    assert_eq!(page.status, StatusCode::OK);
    let csrf = page.csrf();
    let start = (chrono::Utc::now() + Duration::days(2))
        .format("%Y-%m-%dT%H:%M")
        .to_string();
    let end = (chrono::Utc::now() + Duration::days(2) + Duration::hours(3))
        .format("%Y-%m-%dT%H:%M")
        .to_string();
    let mut form = vec![
        ("csrf_token", csrf.as_str()),
        ("title", "Picnic"),
        ("description", "Bring food"),
        ("location", "Tiergarten"),
        ("start_time", end.as_str()),
        ("end_time", start.as_str()),
        ("tags", "outdoor, food"),
        ("max_attendees", "2"),
        ("latitude", "52.5145"),
        ("longitude", "13.3501"),
    ];
    let invalid = host.post("/events/new", &form).await;
    assert_eq!(invalid.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(invalid.body.contains("id=\"end_time-error\""), "{}", invalid.body);
    assert!(invalid.body.contains("value=\"Tiergarten\""));
    form[4].1 = start.as_str();
    form[5].1 = end.as_str();
    let created = host.post("/events/new", &form).await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.body);
    let path = created.location().to_owned();
    let page = host.get(&path).await;
    assert!(page.body.contains("Picnic"));
    assert!(
        page.body.contains("openstreetmap.org") && page.body.contains("mlat=52.5145&#38;mlon=13.3501"),
        "the map link: {}",
        page.body
    );
    assert!(page.body.contains("Edit event"));

    let csrf = page.csrf();
    let edited = host
        .post(
            &format!("{path}/edit"),
            &[
                ("csrf_token", &csrf),
                ("title", "Picnic in the park"),
                ("location", "Tiergarten"),
                ("start_time", &start),
                ("end_time", &end),
                ("max_attendees", "2"),
            ],
        )
        .await;
    assert_eq!(edited.status, StatusCode::SEE_OTHER, "{}", edited.body);

    // The creator hears of the change: the bell lists it (the relay
    // delivers it on its own, so poll, bounded).
    let mut heard = false;
    for _ in 0..200 {
        let home = host.get("/").await;
        if home.body.contains("Picnic in the park was updated") {
            heard = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let history: Value = expect_json(
        app.get("/api/v1/notifications", Some(&host.access_token())).await,
        StatusCode::OK,
    )
    .await;
    assert!(heard, "the bell lists the update: {history}");

    let mut guest = Browser::new(&app);
    guest.sign_up("guest").await;
    let page = guest.get(&path).await;
    assert!(page.body.contains("Picnic in the park"));
    assert!(!page.body.contains("Edit event"), "only the owner edits");
    let (attend_form, leave_form) = (
        format!("action=\"{path}/attend\""),
        format!("action=\"{path}/leave\""),
    );
    assert!(page.body.contains(&attend_form) && !page.body.contains(&leave_form));
    assert_eq!(
        guest.get(&format!("{path}/edit")).await.status,
        StatusCode::FORBIDDEN
    );
    let csrf = page.csrf();
    let attend = guest
        .post(&format!("{path}/attend"), &[("csrf_token", &csrf)])
        .await;
    assert_eq!(attend.status, StatusCode::SEE_OTHER);
    let posted = guest
        .post(
            &format!("{path}/comments"),
            &[("csrf_token", &csrf), ("body", "Count me in")],
        )
        .await;
    assert_eq!(posted.status, StatusCode::SEE_OTHER, "{}", posted.body);
    let id = path.trim_start_matches("/events/");
    let threads: Value = expect_json(
        app.get(&format!("/api/v1/events/{id}/comments"), None).await,
        StatusCode::OK,
    )
    .await;
    let parent = threads["data"][0]["id"].as_str().expect("a comment").to_owned();
    let csrf = host.get(&path).await.csrf();
    let reply = host
        .post(
            &format!("{path}/comments"),
            &[
                ("csrf_token", &csrf),
                ("body", "See you there"),
                ("parent_id", &parent),
            ],
        )
        .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    let page = guest.get(&path).await;
    assert!(page.body.contains("1 attending of 2"), "{}", page.body);
    assert!(page.body.contains("You are attending."));
    assert!(page.body.contains(&leave_form) && !page.body.contains(&attend_form));
    let subscribe = guest
        .post(&format!("{path}/subscribe"), &[("csrf_token", &page.csrf())])
        .await;
    assert_eq!(subscribe.status, StatusCode::SEE_OTHER);
    let page = guest.get(&path).await;
    assert!(page.body.contains(">Unsubscribe from updates<"));
    assert!(!page.body.contains(">Subscribe to updates<"));
    assert!(page.body.contains("Count me in"));
    assert!(page.body.contains("class=\"depth-1\""), "the reply is nested");
    assert!(page.body.contains("See you there"));
}

#[tokio::test]
async fn catalog_profile_wishlist_and_notifications_pages_work() {
    let app = TestApp::start().await;
    let (_, admin) = app.admin("curator").await;
    let product = expect_json(
        app.post(
            "/api/v1/admin/products",
            Some(&admin),
            json!({"name": "Lamp", "category": "home", "price_cents": 2500, "currency": "EUR"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let id = product["id"].as_str().expect("id").to_owned();
    let mut user = Browser::new(&app);
    user.sign_up("reader").await;
    let list = user
        .get("/products?search=lamp&sort_by=price&sort_order=asc")
        .await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(list.body.contains("Lamp") && list.body.contains("€25.00"));
    let bad = user.get("/products?min_price=abc").await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body.contains("id=\"min_price-error\""));
    let page = user.get(&format!("/products/{id}")).await;
    let csrf = page.csrf();
    let invalid = user
        .post(
            &format!("/products/{id}/reviews"),
            &[("csrf_token", &csrf), ("rating", "9"), ("comment", "wow")],
        )
        .await;
    assert_eq!(invalid.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(invalid.body.contains(">wow</textarea>"), "the comment is kept");
    let ok = user
        .post(
            &format!("/products/{id}/reviews"),
            &[("csrf_token", &csrf), ("rating", "4"), ("comment", "Bright")],
        )
        .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER);
    let page = user.get(&format!("/products/{id}")).await;
    assert!(page.body.contains("★★★★☆"));
    assert!(page.body.contains("Bright"));
    let wished = user
        .post(&format!("/products/{id}/wishlist"), &[("csrf_token", &csrf)])
        .await;
    assert_eq!(wished.location(), "/wishlist");
    assert!(user.get("/wishlist").await.body.contains("Lamp"));
    for path in ["/notifications", "/profile"] {
        assert_eq!(user.get(path).await.status, StatusCode::OK, "{path}");
    }
    let csrf = user.get("/profile").await.csrf();
    let wrong = user
        .post(
            "/profile/password",
            &[
                ("csrf_token", &csrf),
                ("current_password", "Nope#1234"),
                ("new_password", "Another#123"),
            ],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(wrong.body.contains("id=\"current_password-error\""));
    let old_token = user.access_token();
    let changed = user
        .post(
            "/profile/password",
            &[
                ("csrf_token", &csrf),
                ("current_password", PASSWORD),
                ("new_password", "Another#123"),
            ],
        )
        .await;
    assert_eq!(changed.status, StatusCode::SEE_OTHER, "{}", changed.body);
    assert_eq!(
        app.get("/api/v1/auth/me", Some(&old_token)).await.status(),
        StatusCode::UNAUTHORIZED,
        "earlier tokens stop working"
    );
    assert!(
        user.get("/profile").await.body.contains("reader"),
        "this browser stays signed in"
    );
    let mut admin_browser = Browser::new(&app);
    admin_browser.sign_in("curator").await;
    for path in [
        "/admin/products",
        "/admin/auctions",
        "/admin/users",
        &format!("/admin/products/{id}"),
    ] {
        assert_eq!(admin_browser.get(path).await.status, StatusCode::OK, "{path}");
    }
}
