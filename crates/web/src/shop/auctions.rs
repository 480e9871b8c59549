//! `/auctions/{id}`: the bid form, the caller's score and rank, the live
//! leaderboard.

use api::AppState;
use api::extract::ClientIp;
use askama::Template;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use serde::Deserialize;
use services::auctions::Standings;
use uuid::Uuid;

use crate::extract::PagePath;
use crate::forms::FieldErrors;
use crate::render::{self, Layout, When, html, money, parse_price};
use crate::session::Session;

pub struct EntryRow {
    pub rank: u64,
    pub username: String,
    pub bid: String,
    pub score: String,
    pub mine: bool,
}

#[derive(Template)]
#[template(path = "shop/auction.html")]
struct AuctionPage {
    layout: Layout,
    id: String,
    product: String,
    product_id: String,
    event_id: Option<String>,
    status: String,
    upset: String,
    currency: String,
    inventory: i64,
    formula: String,
    starts: When,
    ends: When,
    final_price: Option<String>,
    bidders: u64,
    entries: Vec<EntryRow>,
    my_rank: Option<u64>,
    my_score: Option<String>,
    my_bid: Option<String>,
    price: String,
    errors: FieldErrors,
    notice: Option<String>,
}

impl AuctionPage {
    fn is_live(&self) -> bool {
        self.status == "live"
    }
}

async fn render_page(
    state: &AppState,
    session: &Session,
    standings: Standings,
    status: StatusCode,
    price: String,
    errors: FieldErrors,
    notice: Option<String>,
) -> Response {
    let auction = &standings.auction;
    let me = session.principal.map(|p| p.user_id);
    let product = state
        .catalog
        .product(auction.product_id)
        .await
        .map(|p| p.name)
        .unwrap_or_else(|_| "Auction".to_owned());
    let entries: Vec<EntryRow> = standings
        .entries
        .iter()
        .map(|(rank, s)| EntryRow {
            rank: *rank,
            username: s.username.clone(),
            bid: money(s.bid_cents, &auction.currency),
            score: format!("{:.4}", s.score),
            mine: Some(s.user_id) == me,
        })
        .collect();
    let mine = entries.iter().find(|e| e.mine);
    let page = AuctionPage {
        layout: Layout::with_bell(session, state, format!("Auction: {product}")).await,
        id: auction.id.to_string(),
        product_id: auction.product_id.to_string(),
        event_id: auction.event_id.map(|id| id.to_string()),
        status: auction.status.as_str().to_owned(),
        upset: money(auction.upset_price_cents, &auction.currency),
        currency: auction.currency.clone(),
        inventory: auction.inventory,
        formula: format!(
            "score = {} × bid + {} ÷ ({} + your weight)",
            auction.alpha, auction.beta, auction.gamma
        ),
        starts: When::new(auction.start_time),
        ends: When::new(auction.end_time),
        final_price: auction.final_price_cents.map(|c| money(c, &auction.currency)),
        bidders: standings.bidders,
        my_rank: mine.map(|e| e.rank),
        my_score: mine.map(|e| e.score.clone()),
        my_bid: mine.map(|e| e.bid.clone()),
        entries,
        product,
        price,
        errors,
        notice,
    };
    html(status, &page)
}

pub async fn show(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    uri: Uri,
    PagePath(id): PagePath<Uuid>,
) -> Response {
    match state.auctions.standings(id, None).await {
        Ok(standings) => {
            render_page(
                &state,
                &session,
                standings,
                StatusCode::OK,
                String::new(),
                FieldErrors::default(),
                None,
            )
            .await
        }
        Err(err) => render::service_error(&session, &uri, err),
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct BidForm {
    price: String,
}

pub async fn bid(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    ClientIp(ip): ClientIp,
    uri: Uri,
    PagePath(id): PagePath<Uuid>,
    Form(form): Form<BidForm>,
) -> Response {
    let Some(principal) = session.principal else {
        return render::to_login_at(&format!("/auctions/{id}"));
    };
    let again = async |status: StatusCode, errors: FieldErrors, notice: Option<String>| -> Response {
        match state.auctions.standings(id, None).await {
            Ok(standings) => {
                render_page(
                    &state,
                    &session,
                    standings,
                    status,
                    form.price.clone(),
                    errors,
                    notice,
                )
                .await
            }
            Err(err) => render::service_error(&session, &uri, err),
        }
    };
    let cents = match parse_price(&form.price) {
        Ok(cents) => cents,
        Err(message) => {
            let mut errors = FieldErrors::default();
            errors.add("price", &message);
            return again(StatusCode::UNPROCESSABLE_ENTITY, errors, None).await;
        }
    };
    if let Err(wait) = state.limits.bid.check(ip).await {
        let mut response = again(
            StatusCode::TOO_MANY_REQUESTS,
            FieldErrors::default(),
            Some(format!(
                "Too many bids from your address: wait {} seconds.",
                wait.seconds()
            )),
        )
        .await;
        response.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from(wait.seconds()),
        );
        return response;
    }
    match state.auctions.bid(&principal, id, cents).await {
        Ok(_) => Redirect::to(&format!("/auctions/{id}")).into_response(),
        Err(services::Error::Validation(invalid)) => {
            // The API names the amount in cents; this form calls it price.
            let mut errors = FieldErrors::default();
            for field in invalid.fields() {
                let name = if field.field == "amount_cents" {
                    "price"
                } else {
                    &field.field
                };
                if field.message.contains("upset price") {
                    errors.add(name, "must be at least the starting (upset) price shown above");
                } else {
                    errors.add(name, &field.message);
                }
            }
            again(StatusCode::UNPROCESSABLE_ENTITY, errors, None).await
        }
        Err(services::Error::Conflict { detail, code }) => {
            let text = if code == "auction_not_live" {
                "This auction is not taking bids now.".to_owned()
            } else {
                detail
            };
            again(StatusCode::CONFLICT, FieldErrors::default(), Some(text)).await
        }
        Err(err) => render::service_error(&session, &uri, err),
    }
}
