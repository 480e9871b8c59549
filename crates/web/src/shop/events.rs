//! `/events/{id}`: an event or drop with its items, live stock and the
//! buy buttons; buying reserves and goes on to the order.

use api::AppState;
use api::extract::ClientIp;
use askama::Template;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use serde::Deserialize;
use services::events::{EventDetails, EventQuery, Involvement};
use uuid::Uuid;

use crate::extract::PagePath;
use crate::render::{self, Layout, When, html, money};
use crate::session::Session;
use crate::shop::home::DropCard;

pub struct ItemRow {
    pub id: String,
    pub name: String,
    pub product_id: String,
    pub price: String,
    pub stock_remaining: i64,
    pub stock_total: i64,
    pub version: i64,
    pub per_user_limit: Option<i64>,
}

/// A comment in the flattened thread; `depth` (capped) indents it.
pub struct CommentRow {
    pub id: String,
    pub username: String,
    pub body: String,
    pub when: When,
    pub depth: usize,
}

fn flatten(threads: &[services::events::Thread], depth: usize, out: &mut Vec<CommentRow>) {
    for thread in threads {
        out.push(CommentRow {
            id: thread.comment.id.to_string(),
            username: thread.comment.username.clone(),
            body: thread.comment.body.clone(),
            when: When::new(thread.comment.created_at),
            depth: depth.min(5),
        });
        flatten(&thread.replies, depth + 1, out);
    }
}

pub struct AuctionRow {
    pub id: String,
    pub status: String,
    pub upset: String,
    pub ends: When,
}

#[derive(Template)]
#[template(path = "shop/event.html")]
struct EventPage {
    layout: Layout,
    id: String,
    title: String,
    description: String,
    location: String,
    status: String,
    starts: When,
    ends: When,
    creator: String,
    attendees: i64,
    max_attendees: Option<i64>,
    map_link: Option<String>,
    attachment_url: Option<String>,
    tags: Vec<String>,
    items: Vec<ItemRow>,
    auctions: Vec<AuctionRow>,
    notice: Option<String>,
    comments: Vec<CommentRow>,
    can_edit: bool,
    /// The caller's attendance and subscription, so each shows one button.
    involvement: Involvement,
    /// A fresh key per render: a form sent twice reserves once.
    idempotency_key: String,
}

impl EventPage {
    fn on_sale(&self) -> bool {
        self.status == "live"
    }

    fn upcoming(&self) -> bool {
        self.status == "scheduled"
    }
}

fn event_page(
    session: &Session,
    layout: Layout,
    details: &EventDetails,
    threads: &[services::events::Thread],
    involvement: Involvement,
    notice: Option<String>,
) -> EventPage {
    let event = &details.event;
    let mut comments = Vec::new();
    flatten(threads, 0, &mut comments);
    let can_edit = session
        .principal
        .is_some_and(|p| event.is_owned_by(p.user_id) || session.is_admin());
    EventPage {
        comments,
        can_edit,
        involvement,
        layout,
        id: event.id.to_string(),
        title: event.title.clone(),
        description: event.description.clone(),
        location: event.location.clone(),
        status: event.status.as_str().to_owned(),
        starts: When::new(event.start_time),
        ends: When::new(event.end_time),
        creator: event.created_by_username.clone(),
        attendees: event.attendee_count,
        max_attendees: event.max_attendees,
        map_link: event.coordinates().map(|p| {
            format!(
                "https://www.openstreetmap.org/?mlat={lat}&mlon={lng}#map=15/{lat}/{lng}",
                lat = p.latitude,
                lng = p.longitude
            )
        }),
        attachment_url: event.attachment_url.clone(),
        tags: event.tags.clone(),
        items: details
            .items
            .iter()
            .map(|i| ItemRow {
                id: i.id.to_string(),
                name: i.name.clone(),
                product_id: i.product_id.to_string(),
                price: money(i.price_cents, &i.currency),
                stock_remaining: i.stock_remaining,
                stock_total: i.stock_total,
                version: i.stock_version,
                per_user_limit: i.per_user_limit,
            })
            .collect(),
        auctions: details
            .auctions
            .iter()
            .map(|a| AuctionRow {
                id: a.id.to_string(),
                status: a.status.as_str().to_owned(),
                upset: money(a.upset_price_cents, &a.currency),
                ends: When::new(a.end_time),
            })
            .collect(),
        notice,
        idempotency_key: Uuid::now_v7().to_string(),
    }
}

/// The caller's involvement with the event; a visitor has none.
async fn involvement(state: &AppState, session: &Session, id: Uuid) -> services::Result<Involvement> {
    match &session.principal {
        Some(principal) => state.events.involvement(principal, id).await,
        None => Ok(Involvement::default()),
    }
}

pub async fn show(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    uri: Uri,
    PagePath(id): PagePath<Uuid>,
) -> Response {
    let loaded = tokio::try_join!(
        state.events.get(id),
        state.events.threads(id, Some(50), None),
        involvement(&state, &session, id),
    );
    match loaded {
        Ok((details, threads, involvement)) => {
            let layout = Layout::with_bell(&session, &state, details.event.title.clone()).await;
            let page = event_page(&session, layout, &details, &threads.data, involvement, None);
            html(StatusCode::OK, &page)
        }
        Err(err) => render::service_error(&session, &uri, err),
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct BuyForm {
    quantity: Option<String>,
    idempotency_key: Option<String>,
}

/// `POST /events/{id}/items/{item}/buy`: reserves, then shows the order.
pub async fn buy(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    ClientIp(ip): ClientIp,
    uri: Uri,
    PagePath((event_id, item_id)): PagePath<(Uuid, Uuid)>,
    Form(form): Form<BuyForm>,
) -> Response {
    let Some(principal) = session.principal else {
        return render::to_login_at(&format!("/events/{event_id}"));
    };
    let refuse = async |status: StatusCode, text: String| -> Response {
        let loaded = tokio::try_join!(
            state.events.get(event_id),
            involvement(&state, &session, event_id)
        );
        match loaded {
            Ok((details, involvement)) => {
                let layout = Layout::new(&session, details.event.title.clone());
                html(
                    status,
                    &event_page(&session, layout, &details, &[], involvement, Some(text)),
                )
            }
            Err(err) => render::service_error(&session, &uri, err),
        }
    };
    let quantity = match form.quantity.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        None => 1,
        Some(q) => match q.parse::<i64>() {
            Ok(q) => q,
            Err(_) => {
                return refuse(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Quantity: enter a whole number.".to_owned(),
                )
                .await;
            }
        },
    };
    if let Err(wait) = state.limits.purchase.check(ip).await {
        let seconds = wait.seconds();
        let text = format!("Too many requests from your address: try again in {seconds} seconds.");
        let mut response = refuse(StatusCode::TOO_MANY_REQUESTS, text).await;
        response.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from(seconds),
        );
        return response;
    }
    let key = form.idempotency_key.filter(|k| !k.trim().is_empty());
    match state.sales.purchase(&principal, item_id, quantity, key).await {
        Ok(purchase) => Redirect::to(&format!("/orders/{}", purchase.order.id)).into_response(),
        Err(services::Error::Conflict { detail, code }) => {
            let text = match code {
                "sold_out" => "Sold out: no unit is left.".to_owned(),
                "limit_reached" => "You reached the limit per customer for this item.".to_owned(),
                "event_not_live" => "This drop is not on sale right now.".to_owned(),
                _ => detail,
            };
            refuse(StatusCode::CONFLICT, text).await
        }
        Err(services::Error::Validation(errors)) => {
            let text = errors
                .fields()
                .iter()
                .map(|f| format!("{}: {}", f.field, f.message))
                .collect::<Vec<_>>()
                .join("; ");
            refuse(StatusCode::UNPROCESSABLE_ENTITY, text).await
        }
        Err(err) => render::service_error(&session, &uri, err),
    }
}

#[derive(Template)]
#[template(path = "shop/events.html")]
struct EventsPage {
    layout: Layout,
    events: Vec<DropCard>,
    q: String,
    status: String,
    tag: String,
    next_cursor: Option<String>,
}

impl EventsPage {
    fn statuses(&self) -> Vec<(&'static str, bool)> {
        ["scheduled", "live", "sold_out", "closed", "canceled"]
            .into_iter()
            .map(|s| (s, self.status == s))
            .collect()
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct EventsQuery {
    q: String,
    status: String,
    tag: String,
    cursor: Option<String>,
}

/// `/events`: every event, community events included, with filters.
pub async fn list(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    uri: Uri,
    axum::extract::Query(query): axum::extract::Query<EventsQuery>,
) -> Response {
    let some = |v: &str| Some(v.trim().to_owned()).filter(|v| !v.is_empty());
    let page = state
        .events
        .list(EventQuery {
            q: some(&query.q),
            status: some(&query.status),
            tag: some(&query.tag),
            cursor: query.cursor.clone().filter(|c| !c.is_empty()),
            limit: Some(24),
            ..EventQuery::default()
        })
        .await;
    let page = match page {
        Ok(page) => page,
        Err(err) => return render::service_error(&session, &uri, err),
    };
    html(
        StatusCode::OK,
        &EventsPage {
            layout: Layout::with_bell(&session, &state, "Events").await,
            events: page.data.iter().map(DropCard::new).collect(),
            q: query.q,
            status: query.status,
            tag: query.tag,
            next_cursor: page.next_cursor,
        },
    )
}
