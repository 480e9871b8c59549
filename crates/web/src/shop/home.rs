//! `/`: the drops live now, upcoming and past.

use api::AppState;
use askama::Template;
use axum::Extension;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use services::events::{EventDetails, EventQuery};

use crate::render::{self, Layout, When, html, money};
use crate::session::Session;

/// A drop as its card shows it.
pub struct DropCard {
    pub id: String,
    pub title: String,
    pub location: String,
    pub status: String,
    pub starts: When,
    pub ends: When,
    pub items: usize,
    pub auctions: usize,
    pub from_price: Option<String>,
    pub stock_left: i64,
    pub stock_total: i64,
}

impl DropCard {
    pub fn new(details: &EventDetails) -> DropCard {
        let event = &details.event;
        let cheapest = details.items.iter().min_by_key(|i| i.price_cents);
        DropCard {
            id: event.id.to_string(),
            title: event.title.clone(),
            location: event.location.clone(),
            status: event.status.as_str().to_owned(),
            starts: When::new(event.start_time),
            ends: When::new(event.end_time),
            items: details.items.len(),
            auctions: details.auctions.len(),
            from_price: cheapest.map(|i| money(i.price_cents, &i.currency)),
            stock_left: details.items.iter().map(|i| i.stock_remaining).sum(),
            stock_total: details.items.iter().map(|i| i.stock_total).sum(),
        }
    }

    pub fn is_live(&self) -> bool {
        self.status == "live" || self.status == "sold_out"
    }

    pub fn is_upcoming(&self) -> bool {
        self.status == "scheduled"
    }
}

#[derive(Template)]
#[template(path = "shop/home.html")]
struct HomePage {
    layout: Layout,
    live: Vec<DropCard>,
    upcoming: Vec<DropCard>,
    past: Vec<DropCard>,
}

fn is_drop(details: &EventDetails) -> bool {
    !details.items.is_empty() || !details.auctions.is_empty()
}

async fn drops(state: &AppState, status: &str) -> services::Result<Vec<EventDetails>> {
    let page = state
        .events
        .list(EventQuery {
            status: Some(status.to_owned()),
            limit: Some(100),
            ..EventQuery::default()
        })
        .await?;
    Ok(page.data.into_iter().filter(is_drop).collect())
}

pub async fn home(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    uri: Uri,
) -> Response {
    let lists = tokio::try_join!(
        drops(&state, "live"),
        drops(&state, "sold_out"),
        drops(&state, "scheduled"),
        drops(&state, "closed"),
    );
    let (live, sold_out, upcoming, closed) = match lists {
        Ok(lists) => lists,
        Err(err) => return render::service_error(&session, &uri, err),
    };
    let mut live: Vec<DropCard> = live.iter().chain(&sold_out).map(DropCard::new).collect();
    live.sort_by(|a, b| a.ends.iso.cmp(&b.ends.iso));
    let mut past: Vec<DropCard> = closed.iter().map(DropCard::new).collect();
    past.sort_by(|a, b| b.ends.iso.cmp(&a.ends.iso));
    past.truncate(12);
    html(
        StatusCode::OK,
        &HomePage {
            layout: Layout::with_bell(&session, &state, "Live drops").await,
            live,
            upcoming: upcoming.iter().map(DropCard::new).collect(),
            past,
        },
    )
}
