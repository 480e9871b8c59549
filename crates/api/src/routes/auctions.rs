//! Auctions: readable by anyone, bids for signed-in users (rate limited
//! per address like purchases), setup for admins.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use domain::auctions::AuctionInput;
use serde::Deserialize;
use services::auctions::AuctionQuery;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{Admin, Auth, ClientIp, Json, Path, Query};
use crate::state::AppState;
use crate::views::{AuctionView, BidView, LeaderboardView, PageView};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_auctions))
        .routes(routes!(get_auction))
        .routes(routes!(leaderboard))
        .routes(routes!(place_bid))
        .routes(routes!(create_auction))
        .routes(routes!(update_auction))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuctionListQuery {
    /// scheduled, live or settled.
    status: Option<String>,
    /// Only the auctions of this event.
    event_id: Option<Uuid>,
    limit: Option<i64>,
    cursor: Option<String>,
}

/// Auctions by start time, soonest first.
#[utoipa::path(get, path = "/api/v1/auctions", tag = "auctions", params(AuctionListQuery),
    responses((status = 200, body = PageView<AuctionView>), (status = 422, body = Problem)))]
async fn list_auctions(
    State(state): State<AppState>,
    Query(q): Query<AuctionListQuery>,
) -> ApiResult<axum::Json<PageView<AuctionView>>> {
    let page = state
        .auctions
        .list(AuctionQuery {
            status: q.status,
            event_id: q.event_id,
            limit: q.limit,
            cursor: q.cursor,
        })
        .await?;
    Ok(axum::Json(PageView::from_page(page, AuctionView::from)))
}

/// One auction.
#[utoipa::path(get, path = "/api/v1/auctions/{id}", tag = "auctions", params(("id" = Uuid, Path)),
    responses((status = 200, body = AuctionView), (status = 404, body = Problem)))]
async fn get_auction(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<AuctionView>> {
    Ok(axum::Json(state.auctions.get(id).await?.into()))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LeaderboardQuery {
    /// How many of the best to list: 1 to 1000, default 100.
    limit: Option<i64>,
}

/// The live leaderboard: the best bids by score, ties to the earlier bid.
#[utoipa::path(get, path = "/api/v1/auctions/{id}/leaderboard", tag = "auctions",
    params(("id" = Uuid, Path), LeaderboardQuery),
    responses((status = 200, body = LeaderboardView), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn leaderboard(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Query(q): Query<LeaderboardQuery>,
) -> ApiResult<axum::Json<LeaderboardView>> {
    Ok(axum::Json(state.auctions.standings(id, q.limit).await?.into()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BidRequestBody {
    /// The bid, in cents; at least the upset price.
    amount_cents: i64,
}

/// Bids on a live auction; a new bid replaces the caller's earlier one.
#[utoipa::path(post, path = "/api/v1/auctions/{id}/bids", tag = "auctions", params(("id" = Uuid, Path)),
    request_body = BidRequestBody,
    responses((status = 201, body = BidView), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "auction_not_live"),
        (status = 422, body = Problem, description = "below the upset price"), (status = 429, body = Problem)),
    security(("bearer" = [])))]
async fn place_bid(
    State(state): State<AppState>,
    ip: ClientIp,
    Auth(principal): Auth,
    Path(id): Path<Uuid>,
    Json(body): Json<BidRequestBody>,
) -> ApiResult<(StatusCode, axum::Json<BidView>)> {
    if let Err(wait) = state.limits.bid.check(ip.0).await {
        metrics::counter!("swiftdrop_rate_limited_total", "limit" => "bid").increment(1);
        return Err(ApiError::rate_limited(wait.seconds()));
    }
    let placed = state.auctions.bid(&principal, id, body.amount_cents).await?;
    Ok((StatusCode::CREATED, axum::Json(placed.into())))
}

/// An auction's setup, as an admin sends it.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuctionRequest {
    product_id: Uuid,
    /// The event (drop) it belongs to, if any.
    event_id: Option<Uuid>,
    /// The lowest bid taken, in cents.
    upset_price_cents: i64,
    /// How many bidders win (1 or more).
    inventory: i64,
    /// Weight of the price in the score (0 or more).
    alpha: f64,
    beta: f64,
    /// Above 0, so `gamma + weight` stays positive.
    gamma: f64,
    start_time: DateTime<Utc>,
    /// After start_time.
    end_time: DateTime<Utc>,
    /// A bid in the last `extend_seconds` moves the end out by as much.
    extend_seconds: Option<i64>,
}

impl From<AuctionRequest> for AuctionInput {
    fn from(r: AuctionRequest) -> Self {
        AuctionInput {
            product_id: r.product_id,
            event_id: r.event_id,
            upset_price_cents: r.upset_price_cents,
            inventory: r.inventory,
            alpha: r.alpha,
            beta: r.beta,
            gamma: r.gamma,
            start_time: r.start_time,
            end_time: r.end_time,
            extend_seconds: r.extend_seconds,
        }
    }
}

/// Creates an auction.
#[utoipa::path(post, path = "/api/v1/admin/auctions", tag = "auctions", request_body = AuctionRequest,
    responses((status = 201, body = AuctionView), (status = 403, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn create_auction(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Json(body): Json<AuctionRequest>,
) -> ApiResult<(StatusCode, axum::Json<AuctionView>)> {
    let auction = state.auctions.create(&admin, body.into()).await?;
    Ok((StatusCode::CREATED, axum::Json(auction.into())))
}

/// Replaces an auction's setup while it is scheduled (409 `auction_not_editable` after).
#[utoipa::path(put, path = "/api/v1/admin/auctions/{id}", tag = "auctions", params(("id" = Uuid, Path)),
    request_body = AuctionRequest,
    responses((status = 200, body = AuctionView), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn update_auction(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<Uuid>,
    Json(body): Json<AuctionRequest>,
) -> ApiResult<axum::Json<AuctionView>> {
    Ok(axum::Json(
        state.auctions.update(&admin, id, body.into()).await?.into(),
    ))
}
