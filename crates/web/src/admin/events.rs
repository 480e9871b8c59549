//! `/admin/events`: drops. Create one with items, open and close it, and
//! audit its stock against its orders.

use api::AppState;
use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, NaiveDateTime, Utc};
use domain::events::{EventInput, EventStatus, ItemInput};
use services::catalog::BrowseRequest;
use services::events::{DropInput, EventQuery};
use uuid::Uuid;

use crate::extract::{Admin, PagePath};
use crate::forms::FieldErrors;
use crate::render::{self, Layout, When, html, money, parse_price};
use crate::session::Session;
use crate::shop::home::DropCard;

/// One row of the item inputs, as typed.
#[derive(Clone, Default)]
pub struct ItemFields {
    /// The id of an existing item (kept by an edit); empty for a new one.
    pub id: String,
    pub product_id: String,
    pub price: String,
    pub stock: String,
    pub per_user_limit: String,
}

/// The drop form, as typed.
#[derive(Clone, Default)]
pub struct DropFields {
    pub title: String,
    pub description: String,
    pub location: String,
    pub start_time: String,
    pub end_time: String,
    pub tags: String,
    pub reservation_ttl_seconds: String,
    pub items: Vec<ItemFields>,
}

pub struct ProductOption {
    pub id: String,
    pub label: String,
}

#[derive(Template)]
#[template(path = "admin/events.html")]
struct EventsPage {
    layout: Layout,
    drops: Vec<DropCard>,
    form: DropFields,
    products: Vec<ProductOption>,
    errors: FieldErrors,
    /// Where the form posts: a new drop, or the edit of one.
    action: String,
    heading: String,
    notice: Option<String>,
}

/// How many item rows the form offers.
const ITEM_ROWS: usize = 3;

fn blank_form() -> DropFields {
    let start = Utc::now() + chrono::Duration::minutes(5);
    let end = start + chrono::Duration::hours(1);
    DropFields {
        start_time: start.format("%Y-%m-%dT%H:%M").to_string(),
        end_time: end.format("%Y-%m-%dT%H:%M").to_string(),
        location: "Online".to_owned(),
        reservation_ttl_seconds: "600".to_owned(),
        items: vec![ItemFields::default(); ITEM_ROWS],
        ..DropFields::default()
    }
}

#[allow(clippy::too_many_arguments)]
async fn page(
    state: &AppState,
    session: &Session,
    uri: &Uri,
    status: StatusCode,
    editing: Option<Uuid>,
    form: DropFields,
    errors: FieldErrors,
    notice: Option<String>,
) -> Response {
    let lists = tokio::try_join!(
        state.events.list(EventQuery {
            limit: Some(100),
            ..EventQuery::default()
        }),
        state.catalog.browse(BrowseRequest {
            limit: Some(100),
            sort_by: Some("name".to_owned()),
            ..BrowseRequest::default()
        }),
    );
    let (events, products) = match lists {
        Ok(lists) => lists,
        Err(err) => return render::service_error(session, uri, err),
    };
    let mut drops: Vec<DropCard> = events.data.iter().map(DropCard::new).collect();
    drops.sort_by(|a, b| b.starts.iso.cmp(&a.starts.iso));
    html(
        status,
        &EventsPage {
            layout: Layout::with_bell(session, state, "Admin: drops").await,
            drops,
            form,
            products: products
                .data
                .iter()
                .map(|p| ProductOption {
                    id: p.id.to_string(),
                    label: format!("{} ({})", p.name, money(p.price_cents, &p.currency)),
                })
                .collect(),
            errors,
            action: editing.map_or_else(
                || "/admin/events".to_owned(),
                |id| format!("/admin/events/{id}/edit"),
            ),
            heading: if editing.is_some() {
                "Edit drop"
            } else {
                "New drop"
            }
            .to_owned(),
            notice,
        },
    )
}

pub async fn list(State(state): State<AppState>, Admin { session, .. }: Admin, uri: Uri) -> Response {
    page(
        &state,
        &session,
        &uri,
        StatusCode::OK,
        None,
        blank_form(),
        FieldErrors::default(),
        None,
    )
    .await
}

/// A time typed in a `datetime-local` input (read as UTC) or as RFC 3339.
pub fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    let text = text.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"] {
        if let Ok(at) = NaiveDateTime::parse_from_str(text, format) {
            return Ok(at.and_utc());
        }
    }
    Err("enter a date and time (UTC) such as 2026-12-24T18:00".to_owned())
}

/// Reads the form; repeated item fields pair up by position.
fn read_form(pairs: &[(String, String)]) -> DropFields {
    let one = |name: &str| {
        pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let many = |name: &str| -> Vec<String> {
        pairs
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .collect()
    };
    let item_ids = many("item_id");
    let (ids, prices, stocks, limits) = (
        many("product_id"),
        many("price"),
        many("stock"),
        many("per_user_limit"),
    );
    let rows = ids.len().max(prices.len()).max(stocks.len()).min(50);
    let at = |list: &Vec<String>, i: usize| list.get(i).cloned().unwrap_or_default();
    DropFields {
        title: one("title"),
        description: one("description"),
        location: one("location"),
        start_time: one("start_time"),
        end_time: one("end_time"),
        tags: one("tags"),
        reservation_ttl_seconds: one("reservation_ttl_seconds"),
        items: (0..rows)
            .map(|i| ItemFields {
                id: at(&item_ids, i),
                product_id: at(&ids, i),
                price: at(&prices, i),
                stock: at(&stocks, i),
                per_user_limit: at(&limits, i),
            })
            .collect(),
    }
}

/// The service's input from the typed form, or the messages by field.
fn to_input(form: &DropFields) -> Result<(EventInput, DropInput), FieldErrors> {
    let mut errors = FieldErrors::default();
    let start = parse_time(&form.start_time)
        .map_err(|m| errors.add("start_time", &m))
        .ok();
    let end = parse_time(&form.end_time)
        .map_err(|m| errors.add("end_time", &m))
        .ok();
    let ttl = match form.reservation_ttl_seconds.trim() {
        "" => None,
        text => match text.parse::<i64>() {
            Ok(n) => Some(n),
            Err(_) => {
                errors.add("reservation_ttl_seconds", "enter a whole number of seconds");
                None
            }
        },
    };
    let mut items = Vec::new();
    for (i, row) in form.items.iter().enumerate() {
        if row.product_id.trim().is_empty() && row.price.trim().is_empty() && row.stock.trim().is_empty() {
            continue;
        }
        let field = |name: &str| format!("items[{i}].{name}");
        let product_id = row
            .product_id
            .trim()
            .parse::<Uuid>()
            .map_err(|_| errors.add(&field("product_id"), "choose a product"))
            .ok();
        let price = parse_price(&row.price)
            .map_err(|m| errors.add(&field("price"), &m))
            .ok();
        let stock = row
            .stock
            .trim()
            .parse::<i64>()
            .map_err(|_| errors.add(&field("stock"), "enter a whole number"))
            .ok();
        let limit = match row.per_user_limit.trim() {
            "" => Some(None),
            text => text
                .parse::<i64>()
                .map(Some)
                .map_err(|_| errors.add(&field("per_user_limit"), "enter a whole number or leave empty"))
                .ok(),
        };
        let id = row.id.trim().parse::<Uuid>().ok();
        if let (Some(product_id), Some(price_cents), Some(stock), Some(per_user_limit)) =
            (product_id, price, stock, limit)
        {
            items.push(ItemInput {
                id,
                product_id,
                price_cents,
                stock,
                per_user_limit,
            });
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let input = EventInput {
        title: form.title.clone(),
        description: form.description.clone(),
        location: form.location.clone(),
        start_time: start,
        end_time: end,
        tags: form
            .tags
            .split(',')
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .collect(),
        max_attendees: None,
        coordinates: None,
        attachment_url: None,
    };
    Ok((
        input,
        DropInput {
            items,
            reservation_ttl_seconds: ttl,
        },
    ))
}

/// Names the service uses for item fields (`items[0].price_cents`) as
/// this form names them (`items[0].price`).
fn form_errors(errors: domain::ValidationErrors) -> FieldErrors {
    let mut shown = FieldErrors::default();
    for f in errors.fields() {
        let field = f.field.replace("price_cents", "price");
        shown.add(&field, &f.message);
    }
    shown
}

pub async fn create(
    State(state): State<AppState>,
    Admin { session, principal }: Admin,
    uri: Uri,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    let mut form = read_form(&pairs);
    let (input, drop) = match to_input(&form) {
        Ok(parsed) => parsed,
        Err(errors) => {
            form.items
                .resize(form.items.len().max(ITEM_ROWS), ItemFields::default());
            return page(
                &state,
                &session,
                &uri,
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                form,
                errors,
                None,
            )
            .await;
        }
    };
    match state.events.create(&principal, input, Some(drop)).await {
        Ok(details) => Redirect::to(&format!("/admin/events/{}", details.event.id)).into_response(),
        Err(services::Error::Validation(errors)) => {
            form.items
                .resize(form.items.len().max(ITEM_ROWS), ItemFields::default());
            page(
                &state,
                &session,
                &uri,
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                form,
                form_errors(errors),
                None,
            )
            .await
        }
        Err(err) => render::service_error(&session, &uri, err),
    }
}

pub struct AuditRow {
    pub name: String,
    pub price: String,
    pub stock_total: i64,
    pub stock_remaining: i64,
    pub reserved: i64,
    pub confirmed: i64,
    pub balanced: bool,
}

#[derive(Template)]
#[template(path = "admin/event.html")]
struct EventPage {
    layout: Layout,
    id: String,
    title: String,
    status: String,
    starts: When,
    ends: When,
    audit: Vec<AuditRow>,
    notice: Option<String>,
}

impl EventPage {
    fn can_open(&self) -> bool {
        self.status == "scheduled" || self.status == "closed"
    }

    fn can_close(&self) -> bool {
        self.status == "live" || self.status == "sold_out" || self.status == "scheduled"
    }
}

async fn event_page(
    state: &AppState,
    session: &Session,
    uri: &Uri,
    id: Uuid,
    status: StatusCode,
    notice: Option<String>,
) -> Response {
    let loaded = tokio::try_join!(state.events.get(id), state.sales.ledger(id));
    let (details, ledger) = match loaded {
        Ok(both) => both,
        Err(err) => return render::service_error(session, uri, err),
    };
    let audit = ledger
        .iter()
        .map(|line| {
            let item = details.items.iter().find(|i| i.id == line.event_item_id);
            AuditRow {
                name: item.map_or_else(|| line.event_item_id.to_string(), |i| i.name.clone()),
                price: item.map_or_else(String::new, |i| money(i.price_cents, &i.currency)),
                stock_total: line.stock_total,
                stock_remaining: line.stock_remaining,
                reserved: line.reserved,
                confirmed: line.confirmed,
                balanced: line.stock_remaining + line.reserved + line.confirmed == line.stock_total,
            }
        })
        .collect();
    let event = &details.event;
    html(
        status,
        &EventPage {
            layout: Layout::with_bell(session, state, format!("Admin: {}", event.title)).await,
            id: event.id.to_string(),
            title: event.title.clone(),
            status: event.status.as_str().to_owned(),
            starts: When::new(event.start_time),
            ends: When::new(event.end_time),
            audit,
            notice,
        },
    )
}

pub async fn show(
    State(state): State<AppState>,
    Admin { session, .. }: Admin,
    uri: Uri,
    PagePath(id): PagePath<Uuid>,
) -> Response {
    event_page(&state, &session, &uri, id, StatusCode::OK, None).await
}

/// `POST /admin/events/{id}/open` and `/close`.
pub async fn act(
    State(state): State<AppState>,
    Admin { session, principal }: Admin,
    uri: Uri,
    PagePath((id, action)): PagePath<(Uuid, String)>,
) -> Response {
    let status = match action.as_str() {
        "open" => EventStatus::Live,
        "close" => EventStatus::Closed,
        _ => return render::not_found(&session),
    };
    match state.events.force(&principal, id, status).await {
        Ok(_) => Redirect::to(&format!("/admin/events/{id}")).into_response(),
        Err(services::Error::Conflict { detail, .. }) => {
            event_page(&state, &session, &uri, id, StatusCode::CONFLICT, Some(detail)).await
        }
        Err(err) => render::service_error(&session, &uri, err),
    }
}

/// `GET /admin/events/{id}/edit`: the drop's form, filled in.
pub async fn edit_page(
    State(state): State<AppState>,
    Admin { session, .. }: Admin,
    uri: Uri,
    PagePath(id): PagePath<Uuid>,
) -> Response {
    let details = match state.events.get(id).await {
        Ok(details) => details,
        Err(err) => return render::service_error(&session, &uri, err),
    };
    let event = &details.event;
    let cents = |c: i64| format!("{}.{:02}", c / 100, c % 100);
    let mut items: Vec<ItemFields> = details
        .items
        .iter()
        .map(|i| ItemFields {
            id: i.id.to_string(),
            product_id: i.product_id.to_string(),
            price: cents(i.price_cents),
            stock: i.stock_total.to_string(),
            per_user_limit: i.per_user_limit.map(|l| l.to_string()).unwrap_or_default(),
        })
        .collect();
    items.push(ItemFields::default());
    let form = DropFields {
        title: event.title.clone(),
        description: event.description.clone(),
        location: event.location.clone(),
        start_time: event.start_time.format("%Y-%m-%dT%H:%M").to_string(),
        end_time: event.end_time.format("%Y-%m-%dT%H:%M").to_string(),
        tags: event.tags.join(", "),
        reservation_ttl_seconds: event
            .reservation_ttl_seconds
            .map(|t| t.to_string())
            .unwrap_or_default(),
        items,
    };
    let notice = (event.status != EventStatus::Scheduled)
        .then(|| "This drop has started: only a scheduled drop can be edited.".to_owned());
    page(
        &state,
        &session,
        &uri,
        StatusCode::OK,
        Some(id),
        form,
        FieldErrors::default(),
        notice,
    )
    .await
}

/// `POST /admin/events/{id}/edit`: replaces the drop's fields and items
/// (items keep their ids), while it is scheduled.
pub async fn update(
    State(state): State<AppState>,
    Admin { session, principal }: Admin,
    uri: Uri,
    PagePath(id): PagePath<Uuid>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    let mut form = read_form(&pairs);
    form.items.push(ItemFields::default());
    let status = StatusCode::UNPROCESSABLE_ENTITY;
    let (input, drop) = match to_input(&form) {
        Ok(parsed) => parsed,
        Err(errors) => return page(&state, &session, &uri, status, Some(id), form, errors, None).await,
    };
    let edit = services::events::EventEdit::Replace {
        input,
        drop: Some(drop),
    };
    match state.events.update(&principal, id, edit).await {
        Ok(_) => Redirect::to(&format!("/admin/events/{id}")).into_response(),
        Err(services::Error::Validation(errors)) => {
            page(
                &state,
                &session,
                &uri,
                status,
                Some(id),
                form,
                form_errors(errors),
                None,
            )
            .await
        }
        Err(services::Error::Conflict { detail, .. }) => {
            let conflict = StatusCode::CONFLICT;
            page(
                &state,
                &session,
                &uri,
                conflict,
                Some(id),
                form,
                FieldErrors::default(),
                Some(detail),
            )
            .await
        }
        Err(err) => render::service_error(&session, &uri, err),
    }
}
