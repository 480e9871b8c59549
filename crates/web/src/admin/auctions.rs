//! `/admin/auctions`: create, and edit while scheduled.

use api::AppState;
use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use domain::auctions::{Auction, AuctionInput};
use serde::Deserialize;
use services::accounts::Principal;
use services::auctions::AuctionQuery;
use services::catalog::BrowseRequest;
use uuid::Uuid;

use crate::admin::events::{ProductOption, parse_time};
use crate::extract::{Admin, PagePath};
use crate::forms::FieldErrors;
use crate::render::{self, Layout, When, html, money, parse_price};
use crate::session::Session;

#[derive(Clone, Default, Deserialize)]
#[serde(default)]
pub struct AuctionFields {
    pub product_id: String,
    pub event_id: String,
    pub price: String,
    pub inventory: String,
    pub alpha: String,
    pub beta: String,
    pub gamma: String,
    pub start_time: String,
    pub end_time: String,
    pub extend_seconds: String,
}

fn local(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M").to_string()
}

impl AuctionFields {
    fn blank() -> AuctionFields {
        let start = Utc::now() + chrono::Duration::minutes(5);
        AuctionFields {
            price: "10.00".to_owned(),
            inventory: "1".to_owned(),
            alpha: "1".to_owned(),
            beta: "0".to_owned(),
            gamma: "1".to_owned(),
            start_time: local(start),
            end_time: local(start + chrono::Duration::hours(1)),
            ..AuctionFields::default()
        }
    }

    fn of(a: &Auction) -> AuctionFields {
        AuctionFields {
            product_id: a.product_id.to_string(),
            event_id: a.event_id.map(|id| id.to_string()).unwrap_or_default(),
            price: format!("{}.{:02}", a.upset_price_cents / 100, a.upset_price_cents % 100),
            inventory: a.inventory.to_string(),
            alpha: a.alpha.to_string(),
            beta: a.beta.to_string(),
            gamma: a.gamma.to_string(),
            start_time: local(a.start_time),
            end_time: local(a.end_time),
            extend_seconds: a.extend_seconds.map(|s| s.to_string()).unwrap_or_default(),
        }
    }

    fn input(&self) -> Result<AuctionInput, FieldErrors> {
        let mut errors = FieldErrors::default();
        let mut number = |field: &str, text: &str| -> f64 {
            text.trim().parse::<f64>().unwrap_or_else(|_| {
                errors.add(field, "enter a number");
                0.0
            })
        };
        let alpha = number("alpha", &self.alpha);
        let beta = number("beta", &self.beta);
        let gamma = number("gamma", &self.gamma);
        let product_id = self
            .product_id
            .trim()
            .parse::<Uuid>()
            .map_err(|_| errors.add("product_id", "choose a product"))
            .ok();
        let event_id = match self.event_id.trim() {
            "" => None,
            text => text
                .parse::<Uuid>()
                .map_err(|_| errors.add("event_id", "enter an event id or leave empty"))
                .ok(),
        };
        let upset = parse_price(&self.price).map_err(|m| errors.add("price", &m)).ok();
        let inventory = self
            .inventory
            .trim()
            .parse::<i64>()
            .map_err(|_| errors.add("inventory", "enter a whole number"))
            .ok();
        let start = parse_time(&self.start_time)
            .map_err(|m| errors.add("start_time", &m))
            .ok();
        let end = parse_time(&self.end_time)
            .map_err(|m| errors.add("end_time", &m))
            .ok();
        let extend = match self.extend_seconds.trim() {
            "" => Some(None),
            text => text
                .parse::<i64>()
                .map(Some)
                .map_err(|_| errors.add("extend_seconds", "enter a whole number or leave empty"))
                .ok(),
        };
        match (product_id, upset, inventory, start, end, extend) {
            (Some(product_id), Some(upset), Some(inventory), Some(start), Some(end), Some(extend))
                if errors.is_empty() =>
            {
                Ok(AuctionInput {
                    product_id,
                    event_id,
                    upset_price_cents: upset,
                    inventory,
                    alpha,
                    beta,
                    gamma,
                    start_time: start,
                    end_time: end,
                    extend_seconds: extend,
                })
            }
            _ => Err(errors),
        }
    }
}

fn shown(errors: domain::ValidationErrors) -> FieldErrors {
    let mut out = FieldErrors::default();
    for f in errors.fields() {
        out.add(&f.field.replace("upset_price_cents", "price"), &f.message);
    }
    out
}

pub struct AuctionRow {
    pub id: String,
    pub status: String,
    pub upset: String,
    pub starts: When,
    pub ends: When,
}

#[derive(Template)]
#[template(path = "admin/auctions.html")]
struct AuctionsPage {
    layout: Layout,
    auctions: Vec<AuctionRow>,
    products: Vec<ProductOption>,
    /// The auction being edited, if any.
    editing: Option<String>,
    form: AuctionFields,
    errors: FieldErrors,
    notice: Option<String>,
}

impl AuctionsPage {
    /// The text inputs: name, label, typed value.
    fn fields(&self) -> Vec<(&'static str, &'static str, String)> {
        let f = &self.form;
        vec![
            ("event_id", "Drop (event id, optional)", f.event_id.clone()),
            ("price", "Upset price", f.price.clone()),
            ("inventory", "Winners (inventory)", f.inventory.clone()),
            ("alpha", "Alpha (weight of the bid)", f.alpha.clone()),
            ("beta", "Beta", f.beta.clone()),
            ("gamma", "Gamma", f.gamma.clone()),
            ("start_time", "Start (UTC)", f.start_time.clone()),
            ("end_time", "End (UTC)", f.end_time.clone()),
            (
                "extend_seconds",
                "Extend by (seconds, optional)",
                f.extend_seconds.clone(),
            ),
        ]
    }
}

#[allow(clippy::too_many_arguments)]
async fn auctions_page(
    state: &AppState,
    session: &Session,
    uri: &Uri,
    status: StatusCode,
    editing: Option<Uuid>,
    form: AuctionFields,
    errors: FieldErrors,
    notice: Option<String>,
) -> Response {
    let loaded = tokio::try_join!(
        state.auctions.list(AuctionQuery {
            limit: Some(100),
            ..AuctionQuery::default()
        }),
        state.catalog.browse(BrowseRequest {
            limit: Some(100),
            sort_by: Some("name".to_owned()),
            ..BrowseRequest::default()
        }),
    );
    let (auctions, products) = match loaded {
        Ok(both) => both,
        Err(err) => return render::service_error(session, uri, err),
    };
    html(
        status,
        &AuctionsPage {
            layout: Layout::with_bell(session, state, "Admin: auctions").await,
            auctions: auctions
                .data
                .iter()
                .map(|a| AuctionRow {
                    id: a.id.to_string(),
                    status: a.status.as_str().to_owned(),
                    upset: money(a.upset_price_cents, &a.currency),
                    starts: When::new(a.start_time),
                    ends: When::new(a.end_time),
                })
                .collect(),
            products: products
                .data
                .iter()
                .map(|p| ProductOption {
                    id: p.id.to_string(),
                    label: p.name.clone(),
                })
                .collect(),
            editing: editing.map(|id| id.to_string()),
            form,
            errors,
            notice,
        },
    )
}

pub async fn list(State(state): State<AppState>, Admin { session, .. }: Admin, uri: Uri) -> Response {
    let form = AuctionFields::blank();
    auctions_page(
        &state,
        &session,
        &uri,
        StatusCode::OK,
        None,
        form,
        FieldErrors::default(),
        None,
    )
    .await
}

pub async fn edit(
    State(state): State<AppState>,
    Admin { session, .. }: Admin,
    uri: Uri,
    PagePath(id): PagePath<Uuid>,
) -> Response {
    match state.auctions.get(id).await {
        Ok(auction) => {
            let form = AuctionFields::of(&auction);
            let errors = FieldErrors::default();
            auctions_page(
                &state,
                &session,
                &uri,
                StatusCode::OK,
                Some(id),
                form,
                errors,
                None,
            )
            .await
        }
        Err(err) => render::service_error(&session, &uri, err),
    }
}

/// `POST /admin/auctions`: create.
pub async fn create(
    State(state): State<AppState>,
    Admin { session, principal }: Admin,
    uri: Uri,
    Form(form): Form<AuctionFields>,
) -> Response {
    save(state, session, principal, uri, None, form).await
}

/// `POST /admin/auctions/{id}`: edit (while scheduled).
pub async fn update(
    State(state): State<AppState>,
    Admin { session, principal }: Admin,
    uri: Uri,
    PagePath(id): PagePath<Uuid>,
    Form(form): Form<AuctionFields>,
) -> Response {
    save(state, session, principal, uri, Some(id), form).await
}

async fn save(
    state: AppState,
    session: Session,
    principal: Principal,
    uri: Uri,
    editing: Option<Uuid>,
    form: AuctionFields,
) -> Response {
    let again = async |status: StatusCode, errors: FieldErrors, notice: Option<String>| {
        auctions_page(
            &state,
            &session,
            &uri,
            status,
            editing,
            form.clone(),
            errors,
            notice,
        )
        .await
    };
    let input = match form.input() {
        Ok(input) => input,
        Err(errors) => return again(StatusCode::UNPROCESSABLE_ENTITY, errors, None).await,
    };
    let saved = match editing {
        None => state.auctions.create(&principal, input).await,
        Some(id) => state.auctions.update(&principal, id, input).await,
    };
    match saved {
        Ok(auction) => Redirect::to(&format!("/auctions/{}", auction.id)).into_response(),
        Err(services::Error::Validation(invalid)) => {
            again(StatusCode::UNPROCESSABLE_ENTITY, shown(invalid), None).await
        }
        Err(services::Error::Conflict { detail, .. }) => {
            again(StatusCode::CONFLICT, FieldErrors::default(), Some(detail)).await
        }
        Err(err) => render::service_error(&session, &uri, err),
    }
}
