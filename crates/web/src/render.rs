//! Rendering: the layout every page shares, error pages, and the formats
//! of money and time.

use askama::Template;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};

use crate::assets;
use crate::session::Session;

/// What the layout (`base.html`) shows around every page.
pub struct Layout {
    pub title: String,
    pub username: Option<String>,
    pub is_admin: bool,
    pub csrf: String,
    pub version: &'static str,
    /// Unread notifications (the bell), "20+" past a page.
    pub unread: String,
    /// The newest unread notifications, for the bell's dropdown.
    pub recent: Vec<BellItem>,
}

/// A notification as the bell's dropdown shows it.
pub struct BellItem {
    pub summary: String,
    pub link: Option<String>,
}

/// What a notification says, and the page it is about.
pub fn summarize(payload: &serde_json::Value) -> (String, Option<String>) {
    if let Some(event) = payload.get("event") {
        let title = event.get("title").and_then(|t| t.as_str()).unwrap_or("an event");
        let action = event.get("action").and_then(|t| t.as_str()).unwrap_or("changed");
        let link = event
            .get("id")
            .and_then(|id| id.as_str())
            .map(|id| format!("/events/{id}"));
        return (format!("{title} was {action}"), link);
    }
    if let Some(auction) = payload.get("auction") {
        let link = auction
            .get("id")
            .and_then(|id| id.as_str())
            .map(|id| format!("/auctions/{id}"));
        let rank = payload.get("rank").and_then(|r| r.as_u64());
        let text = match (payload.get("order_id").and_then(|o| o.as_str()), rank) {
            (Some(_), _) => "You won an auction: confirm your order".to_owned(),
            (None, Some(rank)) => format!("An auction ended: you ranked {rank}"),
            (None, None) => "An auction ended".to_owned(),
        };
        return (text, link);
    }
    ("A notification".to_owned(), None)
}

impl Layout {
    pub fn new(session: &Session, title: impl Into<String>) -> Layout {
        Layout {
            title: title.into(),
            username: session.username().map(str::to_owned),
            is_admin: session.is_admin(),
            csrf: session.csrf_token(),
            version: assets::version(),
            unread: String::new(),
            recent: Vec::new(),
        }
    }

    /// The layout with the bell's count and newest unread notifications
    /// filled in (one query).
    pub async fn with_bell(session: &Session, state: &api::AppState, title: impl Into<String>) -> Layout {
        let mut layout = Layout::new(session, title);
        if let Some(principal) = &session.principal
            && let Ok(page) = state.notifications.list(principal, true, Some(20), None).await
        {
            let n = page.data.len();
            layout.unread = if page.has_more {
                format!("{n}+")
            } else {
                n.to_string()
            };
            layout.recent = page
                .data
                .iter()
                .take(5)
                .map(|n| {
                    let (summary, link) = summarize(&n.payload);
                    BellItem { summary, link }
                })
                .collect();
        }
        layout
    }

    pub fn signed_in(&self) -> bool {
        self.username.is_some()
    }
}

/// Renders `page` with `status`.
pub fn html<T: Template>(status: StatusCode, page: &T) -> Response {
    match page.render() {
        Ok(body) => (status, Html(body)).into_response(),
        Err(err) => {
            tracing::error!(error = %err, "a page failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Html("<!doctype html><html lang=\"en\"><head><title>Error</title></head><body><p>Something went wrong.</p></body></html>"),
            )
                .into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "message.html")]
pub struct MessagePage {
    pub layout: Layout,
    pub heading: String,
    pub message: String,
    pub retry_after: Option<u64>,
}

/// A page that only says something: errors, refusals.
pub fn message(session: &Session, status: StatusCode, heading: &str, text: &str) -> Response {
    html(
        status,
        &MessagePage {
            layout: Layout::new(session, heading),
            heading: heading.to_owned(),
            message: text.to_owned(),
            retry_after: None,
        },
    )
}

pub fn forbidden(session: &Session, text: &str) -> Response {
    message(session, StatusCode::FORBIDDEN, "Forbidden", text)
}

pub fn not_found(session: &Session) -> Response {
    message(
        session,
        StatusCode::NOT_FOUND,
        "Not found",
        "There is no page here. It may have been removed.",
    )
}

/// A busy server (503) or a rate limit (429): the page says so and, with
/// JavaScript, retries after `Retry-After`.
pub fn busy(session: &Session, status: StatusCode, retry_after: u64) -> Response {
    let text = if status == StatusCode::TOO_MANY_REQUESTS {
        "Too many requests from your address. Please wait a moment."
    } else {
        "The server is busy right now. Please wait a moment."
    };
    let mut response = html(
        status,
        &MessagePage {
            layout: Layout::new(session, "Please wait"),
            heading: "Please wait".to_owned(),
            message: text.to_owned(),
            retry_after: Some(retry_after),
        },
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    response
}

/// Sends a visitor to sign in, coming back to `uri` afterwards.
pub fn to_login(uri: &Uri) -> Response {
    to_login_at(uri.path_and_query().map_or("/", |p| p.as_str()))
}

/// To the sign-in page, then back to `page` (a form's page rather than the
/// address it posts to).
pub fn to_login_at(page: &str) -> Response {
    let encoded: String = form_urlencoded::byte_serialize(page.as_bytes()).collect();
    Redirect::to(&format!("/login?next={encoded}")).into_response()
}

/// The page for a service error that the handler does not show in its
/// own form.
pub fn service_error(session: &Session, uri: &Uri, err: services::Error) -> Response {
    use services::Error as E;
    match err {
        E::NotFound => not_found(session),
        E::Unauthorized(_) => to_login(uri),
        E::Forbidden(detail) => forbidden(session, detail),
        E::Overloaded { retry_after_seconds } => {
            busy(session, StatusCode::SERVICE_UNAVAILABLE, retry_after_seconds)
        }
        unavailable @ E::Unavailable(_) => {
            tracing::warn!(error = %services::error_chain(&unavailable), "dependency unavailable on a page");
            // As the API answers: a restart or failover is a few seconds.
            busy(session, StatusCode::SERVICE_UNAVAILABLE, 2)
        }
        E::Conflict { detail, .. } => message(session, StatusCode::CONFLICT, "Not possible now", &detail),
        E::Validation(errors) => {
            let text = errors
                .fields()
                .iter()
                .map(|f| format!("{}: {}", f.field, f.message))
                .collect::<Vec<_>>()
                .join("; ");
            message(session, StatusCode::UNPROCESSABLE_ENTITY, "Invalid input", &text)
        }
        E::TooLarge(detail) => message(session, StatusCode::PAYLOAD_TOO_LARGE, "Too large", detail),
        internal @ E::Internal(_) => {
            tracing::error!(error = %services::error_chain(&internal), "internal error on a page");
            message(
                session,
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "The server could not answer this page. Please try again.",
            )
        }
    }
}

/// Money in currency units with two decimals: `€19.99`, `19.99 SEK`.
pub fn money(cents: i64, currency: &str) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    let amount = format!("{}.{:02}", abs / 100, abs % 100);
    match currency.to_ascii_uppercase().as_str() {
        "EUR" => format!("{sign}€{amount}"),
        "USD" => format!("{sign}${amount}"),
        "GBP" => format!("{sign}£{amount}"),
        other => format!("{sign}{amount} {other}"),
    }
}

/// Parses a price typed in currency units (`19.99`, `19,99`, `20`) into
/// cents.
pub fn parse_price(text: &str) -> Result<i64, String> {
    let text = text.trim().replace(',', ".");
    let text = text.trim_start_matches(['€', '$', '£']).trim();
    let invalid = || "enter an amount such as 19.99".to_owned();
    let (units, fraction) = text.split_once('.').unwrap_or((text, ""));
    if units.is_empty() && fraction.is_empty() {
        return Err(invalid());
    }
    if !units.bytes().all(|b| b.is_ascii_digit()) || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    if fraction.len() > 2 {
        return Err("use at most two decimals".to_owned());
    }
    let units: i64 = if units.is_empty() {
        0
    } else {
        units.parse().map_err(|_| "is too large".to_owned())?
    };
    let fraction: i64 = format!("{fraction:0<2}").parse().map_err(|_| invalid())?;
    units
        .checked_mul(100)
        .and_then(|c| c.checked_add(fraction))
        .ok_or_else(|| "is too large".to_owned())
}

/// A moment as the page shows it, and as `<time datetime>` carries it.
#[derive(Clone)]
pub struct When {
    pub iso: String,
    pub text: String,
}

impl When {
    pub fn new(at: DateTime<Utc>) -> When {
        When {
            iso: at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            text: at.format("%a %d %b %Y, %H:%M UTC").to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_has_two_decimals() {
        assert_eq!(money(1999, "EUR"), "€19.99");
        assert_eq!(money(5, "eur"), "€0.05");
        assert_eq!(money(120000, "SEK"), "1200.00 SEK");
        assert_eq!(money(-250, "USD"), "-$2.50");
    }

    #[test]
    fn prices_parse_from_currency_units() {
        assert_eq!(parse_price("19.99"), Ok(1999));
        assert_eq!(parse_price(" 20 "), Ok(2000));
        assert_eq!(parse_price("0,5"), Ok(50));
        assert_eq!(parse_price("€3.10"), Ok(310));
        for bad in ["", "abc", "1.999", "-1", "1e3", "."] {
            assert!(parse_price(bad).is_err(), "{bad}");
        }
    }
}
