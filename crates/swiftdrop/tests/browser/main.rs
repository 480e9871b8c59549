//! The web UI in a real browser: Debian's Chromium, driven over CDP by
//! chromiumoxide, against the real server.
//!
//! One scenario, one Chromium, a browser context per person: sign up, buy
//! in a live drop while a visitor's page shows the stock falling without
//! a reload, confirm the order, bid while another page's leaderboard
//! moves, and the admin creates and opens a drop and sees it on the
//! dashboard. axe-core checks the main pages (serious and critical
//! violations fail), and the pages must fit a 375 px screen.
//!
//! Without Chromium the test prints SKIPPED and passes, unless
//! `SWIFTDROP_REQUIRE_BROWSER=1` (CI). `SWIFTDROP_CHROMIUM` names the
//! executable (default: `chromium` on the PATH); `SWIFTDROP_AXE_JS` the
//! `axe.min.js` of the npm package axe-core (default:
//! `~/.cache/swiftdrop/npm/node_modules/axe-core/axe.min.js`).
//! `SWIFTDROP_SCREENSHOTS=<dir>` saves screenshots of the main pages there
//! (`docs/screenshots` for the README).

#[path = "../api/harness.rs"]
#[allow(dead_code)]
mod harness;

use std::path::{Path, PathBuf};
use std::time::Duration;

use chromiumoxide::cdp::browser_protocol::emulation::SetDeviceMetricsOverrideParams;
use chromiumoxide::cdp::browser_protocol::page::CaptureScreenshotFormat;
use chromiumoxide::cdp::browser_protocol::target::{CreateBrowserContextParams, CreateTargetParams};
use chromiumoxide::cdp::js_protocol::runtime::EvaluateParams;
use chromiumoxide::page::ScreenshotParams;
use chromiumoxide::{Browser, BrowserConfig, Page};
use futures::StreamExt;
use harness::{PASSWORD, TestApp, expect_json};
use reqwest::StatusCode;
use serde_json::{Value, json};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn required() -> bool {
    std::env::var("SWIFTDROP_REQUIRE_BROWSER").is_ok_and(|v| v == "1")
}

fn find_chromium() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("SWIFTDROP_CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var("PATH").unwrap_or_default();
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    None
}

fn axe_script() -> Option<String> {
    let path = std::env::var("SWIFTDROP_AXE_JS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            let home = std::env::var("HOME").unwrap_or_default();
            Path::new(&home).join(".cache/swiftdrop/npm/node_modules/axe-core/axe.min.js")
        });
    std::fs::read_to_string(path).ok()
}

/// Evaluates `expression` (awaiting a promise) and returns its JSON value.
async fn eval(page: &Page, expression: &str) -> Result<Value> {
    let params = EvaluateParams::builder()
        .expression(expression)
        .await_promise(true)
        .return_by_value(true)
        .build()?;
    let result = page.evaluate_expression(params).await?;
    Ok(result.value().cloned().unwrap_or(Value::Null))
}

/// Polls `expression` until it is true; bounded (never a timing claim).
async fn until(page: &Page, what: &str, expression: &str) -> Result<()> {
    for _ in 0..200 {
        // While a page navigates its context goes away: try again.
        if eval(page, expression).await.ok() == Some(Value::Bool(true)) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!("{what}: not true within 10 s ({expression})").into())
}

async fn text(page: &Page, selector: &str) -> Result<String> {
    let expression = format!(
        "(document.querySelector({}) || {{}}).textContent || ''",
        serde_json::to_string(selector)?
    );
    Ok(eval(page, &expression)
        .await?
        .as_str()
        .unwrap_or_default()
        .trim()
        .to_owned())
}

async fn goto(page: &Page, url: &str) -> Result<()> {
    page.goto(url).await?;
    until(page, url, "document.readyState === 'complete'").await
}

async fn fill(page: &Page, selector: &str, value: &str) -> Result<()> {
    let element = page.find_element(selector).await?;
    element.click().await?;
    // Clear what is there first (a number input holds "1").
    eval(
        page,
        &format!(
            "document.querySelector({}).value = ''",
            serde_json::to_string(selector)?
        ),
    )
    .await?;
    element.type_str(value).await?;
    Ok(())
}

/// Clicks and waits for the page it leads to (a new document: the marker
/// set on the old one is gone).
async fn submit(page: &Page, selector: &str) -> Result<()> {
    eval(page, "window.beforeSubmit = true").await?;
    page.find_element(selector).await?.click().await?;
    until(
        page,
        &format!("the page after clicking {selector}"),
        "window.beforeSubmit === undefined && document.readyState === 'complete'",
    )
    .await
}

async fn path_of(page: &Page) -> Result<String> {
    let url = page.url().await?.unwrap_or_default();
    let after_host = url.splitn(4, '/').nth(3).unwrap_or_default();
    Ok(format!("/{after_host}"))
}

/// axe-core on the page: serious and critical violations fail.
async fn accessible(page: &Page, axe: Option<&str>, name: &str) -> Result<()> {
    let Some(axe) = axe else {
        return Ok(());
    };
    eval(page, axe).await?;
    let found = eval(
        page,
        "axe.run(document, {resultTypes: ['violations']}).then(r => r.violations \
           .filter(v => v.impact === 'serious' || v.impact === 'critical') \
           .map(v => v.id + ': ' + v.help + ' [' + v.nodes.map(n => n.target.join(' ')).join(', ') + ']'))",
    )
    .await?;
    let violations: Vec<String> = serde_json::from_value(found)?;
    if violations.is_empty() {
        eprintln!("axe-core: {name}: no serious or critical violation");
        Ok(())
    } else {
        Err(format!("{name}: accessibility violations: {violations:#?}").into())
    }
}

/// The page fits a 375 px wide phone: nothing scrolls sideways.
async fn fits_a_phone(page: &Page, name: &str) -> Result<()> {
    page.execute(SetDeviceMetricsOverrideParams::new(375, 740, 2.0, true))
        .await?;
    let wide = eval(page, "document.documentElement.scrollWidth").await?;
    page.execute(SetDeviceMetricsOverrideParams::new(1200, 900, 1.0, false))
        .await?;
    let width = wide.as_i64().unwrap_or(i64::MAX);
    if width > 375 {
        return Err(format!("{name} is {width} px wide on a 375 px phone").into());
    }
    Ok(())
}

async fn screenshot(page: &Page, name: &str) -> Result<()> {
    let Ok(dir) = std::env::var("SWIFTDROP_SCREENSHOTS") else {
        return Ok(());
    };
    std::fs::create_dir_all(&dir)?;
    let params = ScreenshotParams::builder()
        .format(CaptureScreenshotFormat::Png)
        .full_page(true)
        .build();
    page.save_screenshot(params, Path::new(&dir).join(format!("{name}.png")))
        .await?;
    Ok(())
}

async fn new_person(browser: &Browser) -> Result<Page> {
    let context = browser
        .create_browser_context(CreateBrowserContextParams::default())
        .await?;
    let target = CreateTargetParams::builder()
        .url("about:blank")
        .browser_context_id(context)
        .build()?;
    Ok(browser.new_page(target).await?)
}

async fn api_product(app: &TestApp, token: &str, name: &str, cents: i64) -> String {
    let product = expect_json(
        app.post(
            "/api/v1/admin/products",
            Some(token),
            json!({"name": name, "category": "demo", "price_cents": cents, "currency": "EUR",
                   "description": "A product of the browser test"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    product["id"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shop_and_the_console_work_in_a_real_browser() {
    let Some(chromium) = find_chromium() else {
        if required() {
            panic!("SWIFTDROP_REQUIRE_BROWSER=1 but no Chromium was found (set SWIFTDROP_CHROMIUM)");
        }
        eprintln!("\n!!!!! SKIPPED: browser tests: Chromium not found (apt-get install chromium) !!!!!\n");
        return;
    };
    let axe = axe_script();
    if axe.is_none() {
        if required() {
            panic!("SWIFTDROP_REQUIRE_BROWSER=1 but axe-core was not found (set SWIFTDROP_AXE_JS)");
        }
        eprintln!("\n!!!!! SKIPPED: accessibility checks: axe-core not found (npm install axe-core) !!!!!\n");
    }
    if let Err(err) = scenario(&chromium, axe.as_deref()).await {
        panic!("browser scenario failed: {err}");
    }
}

async fn scenario(chromium: &Path, axe: Option<&str>) -> Result<()> {
    let app = TestApp::start_with(|c| {
        c.purchase_requests_per_second = 100_000;
        c.purchase_burst = 100_000;
        c.bid_requests_per_second = 100_000;
        c.bid_burst = 100_000;
    })
    .await;
    let profile = tempfile::tempdir()?;
    let config = BrowserConfig::builder()
        .chrome_executable(chromium)
        .user_data_dir(profile.path())
        .no_sandbox()
        .window_size(1200, 900)
        .viewport(None)
        .request_timeout(Duration::from_secs(30))
        .args([
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-dev-shm-usage",
        ])
        .build()?;
    let (mut browser, mut handler) = Browser::launch(config).await?;
    let events = tokio::spawn(async move { while handler.next().await.is_some() {} });
    let outcome = steps(&app, &browser, axe).await;
    let _ = browser.close().await;
    let _ = browser.wait().await;
    events.abort();
    outcome
}

async fn steps(app: &TestApp, browser: &Browser, axe: Option<&str>) -> Result<()> {
    let base = app.url("");
    let (_, admin_token) = app.admin("admin").await;
    let hoodie = api_product(app, &admin_token, "Browser hoodie", 4500).await;
    let vinyl = api_product(app, &admin_token, "Browser vinyl", 3000).await;

    // The admin signs in, creates a drop with an item through the form,
    // opens it, and sees it on the dashboard.
    let admin = new_person(browser).await?;
    goto(&admin, &format!("{base}/admin")).await?;
    if !path_of(&admin).await?.starts_with("/login?next=") {
        return Err("a visitor asking for /admin is sent to sign in".into());
    }
    fill(&admin, "#username", "admin").await?;
    fill(&admin, "#password", PASSWORD).await?;
    submit(&admin, "form.stack button[type=submit]").await?;
    if path_of(&admin).await? != "/admin" {
        return Err(format!("after sign-in the admin is at {}", path_of(&admin).await?).into());
    }
    goto(&admin, &format!("{base}/admin/events")).await?;
    accessible(&admin, axe, "admin drops").await?;
    fill(&admin, "#title", "Browser drop").await?;
    eval(
        &admin,
        &format!("document.querySelector('#item-1-product').value = '{hoodie}'"),
    )
    .await?;
    fill(&admin, "#item-1-price", "45.00").await?;
    fill(&admin, "#item-1-stock", "5").await?;
    submit(&admin, "form.stack > button[type=submit]").await?;
    let admin_event = path_of(&admin).await?;
    let event_id = admin_event
        .strip_prefix("/admin/events/")
        .ok_or_else(|| format!("the new drop's page, not {admin_event}"))?
        .to_owned();
    submit(&admin, "form[action$='/open'] button").await?;
    goto(&admin, &format!("{base}/admin")).await?;
    let dashboard = admin.content().await?;
    if !dashboard.contains("Browser drop") || !dashboard.contains("<svg") {
        return Err("the dashboard shows the new drop and the revenue chart".into());
    }

    // A visitor watches the drop page; a customer signs up and buys.
    let visitor = new_person(browser).await?;
    goto(&visitor, &format!("{base}/events/{event_id}")).await?;
    until(
        &visitor,
        "the visitor's stock bar",
        "!!document.querySelector('[data-stock-bar]')",
    )
    .await?;
    eval(&visitor, "window.notReloaded = true").await?;
    if text(&visitor, "[data-stock-remaining]").await? != "5" {
        return Err("the visitor sees 5 left".into());
    }
    accessible(&visitor, axe, "drop page (visitor)").await?;

    let customer = new_person(browser).await?;
    goto(&customer, &format!("{base}/register")).await?;
    accessible(&customer, axe, "sign-up").await?;
    fill(&customer, "#email", "shopper@example.com").await?;
    fill(&customer, "#username", "shopper").await?;
    fill(&customer, "#password", PASSWORD).await?;
    submit(&customer, "form.stack button[type=submit]").await?;
    let home = customer.content().await?;
    if !home.contains("shopper") || !home.contains("Browser drop") {
        return Err("after sign-up the home page greets the user and lists the live drop".into());
    }
    accessible(&customer, axe, "home").await?;
    screenshot(&customer, "home").await?;
    fits_a_phone(&customer, "home").await?;

    goto(&customer, &format!("{base}/events/{event_id}")).await?;
    screenshot(&customer, "drop").await?;
    fits_a_phone(&customer, "drop page").await?;
    submit(&customer, "button[data-buy]").await?;
    let order_path = path_of(&customer).await?;
    if !order_path.starts_with("/orders/") {
        return Err(format!("Buy leads to the order, not {order_path}").into());
    }
    until(
        &visitor,
        "the visitor's page shows the stock fall without a reload",
        "document.querySelector('[data-stock-remaining]').textContent.trim() === '4' \
         && document.querySelector('[data-stock-bar]').value === 4 && window.notReloaded === true",
    )
    .await?;
    until(
        &customer,
        "the hold's countdown ticks",
        "/^in /.test(document.querySelector('time[data-countdown]').textContent)",
    )
    .await?;
    accessible(&customer, axe, "order").await?;
    screenshot(&customer, "order").await?;
    submit(&customer, "form[action$='/confirm'] button").await?;
    if text(&customer, "[data-order-status-label]").await? != "confirmed" {
        return Err("the order is confirmed".into());
    }

    // An auction, live now: the customer bids, the admin's open page moves.
    let now = app.clock.now();
    let auction = expect_json(
        app.post(
            "/api/v1/admin/auctions",
            Some(&admin_token),
            json!({"product_id": vinyl, "event_id": event_id, "upset_price_cents": 1000, "inventory": 1,
                   "alpha": 1.0, "beta": 10.0, "gamma": 1.0,
                   "start_time": (now + chrono::Duration::milliseconds(500)).to_rfc3339(),
                   "end_time": (now + chrono::Duration::hours(1)).to_rfc3339()}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let auction_id = auction["id"].as_str().unwrap_or_default().to_owned();
    app.advance(chrono::Duration::seconds(2));
    let auction_url = format!("{base}/auctions/{auction_id}");
    goto(&admin, &auction_url).await?;
    eval(&admin, "window.notReloaded = true").await?;
    goto(&customer, &auction_url).await?;
    until(&customer, "the bid form", "!!document.querySelector('#price')").await?;
    fill(&customer, "#price", "12.50").await?;
    submit(&customer, "form.bid button[type=submit]").await?;
    if text(&customer, "[data-my-rank]").await? != "1" {
        return Err(format!("the bidder ranks first: {}", customer.content().await?).into());
    }
    until(
        &admin,
        "the admin's leaderboard shows the bid without a reload",
        "Array.from(document.querySelectorAll('[data-leaderboard] tr')).some(r => r.textContent.includes('shopper') \
         && r.textContent.includes('12.50')) && window.notReloaded === true",
    )
    .await?;
    accessible(&customer, axe, "auction").await?;
    screenshot(&customer, "auction").await?;

    goto(&admin, &format!("{base}/admin")).await?;
    let dashboard = admin.content().await?;
    if !dashboard.contains("€45.00") {
        return Err("the confirmed sale shows in the dashboard's revenue".into());
    }
    accessible(&admin, axe, "admin dashboard").await?;
    screenshot(&admin, "admin-dashboard").await?;
    fits_a_phone(&admin, "admin dashboard").await?;
    Ok(())
}
