//! Events: community events for every signed-in user, drops for admins,
//! attendance, subscriptions and threaded comments.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use domain::events::{EventInput, EventPatch, EventStatus, GeoPoint, ItemInput};
use serde::Deserialize;
use services::events::{DropInput, EventEdit, EventQuery};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{Admin, Auth, Json, Path, Query};
use crate::routes::catalog::PageQuery;
use crate::state::AppState;
use crate::views::{CommentView, EventView, GeoJsonPoint, PageView};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_events, create_event))
        .routes(routes!(get_event, replace_event, patch_event, delete_event))
        .routes(routes!(subscribe, unsubscribe))
        .routes(routes!(attend, leave))
        .routes(routes!(list_comments, post_comment))
        .routes(routes!(post_reply))
        .routes(routes!(create_drop))
        .routes(routes!(replace_drop))
        .routes(routes!(open_event))
        .routes(routes!(close_event))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemRequest {
    /// An item of this event to keep (its id stays); omit for a new item.
    id: Option<Uuid>,
    product_id: Uuid,
    /// Price in this drop, in cents.
    price_cents: i64,
    /// Units for sale.
    stock: i64,
    /// Most units one buyer may hold.
    per_user_limit: Option<i64>,
}

/// An event: the community fields, and for drops (admins) the items.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventRequest {
    /// 1-100 characters, not blank.
    title: String,
    #[serde(default)]
    description: String,
    /// Not blank.
    location: String,
    start_time: DateTime<Utc>,
    /// After start_time.
    end_time: DateTime<Utc>,
    #[serde(default)]
    tags: Vec<String>,
    max_attendees: Option<i64>,
    coordinates: Option<GeoJsonPoint>,
    attachment_url: Option<String>,
    /// Drop items (admins; only while the event is scheduled).
    items: Option<Vec<ItemRequest>>,
    /// How long a reservation is held before it expires.
    reservation_ttl_seconds: Option<i64>,
}

/// A partial update: only the fields sent change.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventPatchRequest {
    title: Option<String>,
    description: Option<String>,
    location: Option<String>,
    start_time: Option<DateTime<Utc>>,
    end_time: Option<DateTime<Utc>>,
    tags: Option<Vec<String>>,
    max_attendees: Option<i64>,
    coordinates: Option<GeoJsonPoint>,
    attachment_url: Option<String>,
    /// `canceled` cancels the event (owner or admin).
    status: Option<String>,
}

fn point(coordinates: Option<GeoJsonPoint>) -> Result<Option<GeoPoint>, ApiError> {
    match coordinates {
        None => Ok(None),
        Some(GeoJsonPoint {
            kind,
            coordinates: [longitude, latitude],
        }) if kind == "Point" => Ok(Some(GeoPoint { longitude, latitude })),
        Some(_) => Err(ApiError::invalid("coordinates", "must be a GeoJSON Point")),
    }
}

fn drop_input(items: Option<Vec<ItemRequest>>, ttl: Option<i64>) -> Option<DropInput> {
    items.map(|items| DropInput {
        items: items
            .into_iter()
            .map(|i| ItemInput {
                id: i.id,
                product_id: i.product_id,
                price_cents: i.price_cents,
                stock: i.stock,
                per_user_limit: i.per_user_limit,
            })
            .collect(),
        reservation_ttl_seconds: ttl,
    })
}

impl EventRequest {
    fn split(self) -> Result<(EventInput, Option<DropInput>), ApiError> {
        let input = EventInput {
            title: self.title,
            description: self.description,
            location: self.location,
            start_time: Some(self.start_time),
            end_time: Some(self.end_time),
            tags: self.tags,
            max_attendees: self.max_attendees,
            coordinates: point(self.coordinates)?,
            attachment_url: self.attachment_url,
        };
        let drop = match (self.items, self.reservation_ttl_seconds) {
            (None, Some(ttl)) => drop_input(Some(Vec::new()), Some(ttl)),
            (items, ttl) => drop_input(items, ttl),
        };
        Ok((input, drop))
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventListQuery {
    /// scheduled, live, sold_out, closed or canceled.
    status: Option<String>,
    tag: Option<String>,
    /// Text in the title, description or location.
    q: Option<String>,
    /// Events still running at or after this time.
    from: Option<DateTime<Utc>>,
    /// Events starting at or before this time.
    to: Option<DateTime<Utc>>,
    /// `lat,lng,km`: events within km of the point.
    near: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

/// Events by start time, soonest first.
#[utoipa::path(get, path = "/api/v1/events", tag = "events", params(EventListQuery),
    responses((status = 200, body = PageView<EventView>), (status = 422, body = Problem)))]
async fn list_events(
    State(state): State<AppState>,
    Query(q): Query<EventListQuery>,
) -> ApiResult<axum::Json<PageView<EventView>>> {
    let page = state
        .events
        .list(EventQuery {
            status: q.status,
            tag: q.tag,
            q: q.q,
            from: q.from,
            to: q.to,
            near: q.near,
            limit: q.limit,
            cursor: q.cursor,
        })
        .await?;
    Ok(axum::Json(PageView::from_page(page, |d| EventView::from(&d))))
}

/// Creates a community event owned by the caller.
#[utoipa::path(post, path = "/api/v1/events", tag = "events", request_body = EventRequest,
    responses((status = 201, body = EventView), (status = 401, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn create_event(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Json(body): Json<EventRequest>,
) -> ApiResult<(StatusCode, axum::Json<EventView>)> {
    let (input, drop) = body.split()?;
    let details = state.events.create(&principal, input, drop).await?;
    Ok((StatusCode::CREATED, axum::Json(EventView::from(&details))))
}

/// An event with its items (live stock) and auctions.
#[utoipa::path(get, path = "/api/v1/events/{id}", tag = "events", params(("id" = Uuid, Path)),
    responses((status = 200, body = EventView), (status = 404, body = Problem)))]
async fn get_event(State(state): State<AppState>, Path(id): Path<Uuid>) -> ApiResult<axum::Json<EventView>> {
    let details = state.events.get(id).await?;
    Ok(axum::Json(EventView::from(details.as_ref())))
}

/// Replaces an event (owner or admin); items only while scheduled.
#[utoipa::path(put, path = "/api/v1/events/{id}", tag = "events", params(("id" = Uuid, Path)), request_body = EventRequest,
    responses((status = 200, body = EventView), (status = 403, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn replace_event(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<Uuid>,
    Json(body): Json<EventRequest>,
) -> ApiResult<axum::Json<EventView>> {
    let (input, drop) = body.split()?;
    let details = state
        .events
        .update(&principal, id, EventEdit::Replace { input, drop })
        .await?;
    Ok(axum::Json(EventView::from(&details)))
}

/// Changes the fields sent (owner or admin); `status: canceled` cancels.
#[utoipa::path(patch, path = "/api/v1/events/{id}", tag = "events", params(("id" = Uuid, Path)), request_body = EventPatchRequest,
    responses((status = 200, body = EventView), (status = 403, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn patch_event(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<Uuid>,
    Json(patch): Json<EventPatchRequest>,
) -> ApiResult<axum::Json<EventView>> {
    let cancel = match patch.status.as_deref() {
        None => false,
        Some("canceled") => true,
        Some(_) => {
            return Err(ApiError::invalid(
                "status",
                "only canceled can be set; other statuses follow the clock",
            ));
        }
    };
    let patch = EventPatch {
        title: patch.title,
        description: patch.description,
        location: patch.location,
        start_time: patch.start_time,
        end_time: patch.end_time,
        tags: patch.tags,
        max_attendees: patch.max_attendees,
        coordinates: point(patch.coordinates)?,
        attachment_url: patch.attachment_url,
        cancel,
    };
    let details = state
        .events
        .update(&principal, id, EventEdit::Patch(patch))
        .await?;
    Ok(axum::Json(EventView::from(&details)))
}

/// Deletes an event (owner or admin); open reservations are canceled.
#[utoipa::path(delete, path = "/api/v1/events/{id}", tag = "events", params(("id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)), security(("bearer" = [])))]
async fn delete_event(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    state.events.delete(&principal, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Subscribes the caller to the event's updates.
#[utoipa::path(put, path = "/api/v1/events/{id}/subscription", tag = "events", params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = Problem)), security(("bearer" = [])))]
async fn subscribe(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    state.events.subscribe(&principal, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Unsubscribes the caller.
#[utoipa::path(delete, path = "/api/v1/events/{id}/subscription", tag = "events", params(("id" = Uuid, Path)),
    responses((status = 204)), security(("bearer" = [])))]
async fn unsubscribe(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    state.events.unsubscribe(&principal, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Attends an event: 201 the first time, 200 when already attending, 409
/// `event_full` at max_attendees.
#[utoipa::path(post, path = "/api/v1/events/{id}/attendance", tag = "events", params(("id" = Uuid, Path)),
    responses((status = 201), (status = 200), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
async fn attend(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    let joined = state.events.attend(&principal, id).await?;
    Ok(if joined {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    })
}

/// Stops attending.
#[utoipa::path(delete, path = "/api/v1/events/{id}/attendance", tag = "events", params(("id" = Uuid, Path)),
    responses((status = 204)), security(("bearer" = [])))]
async fn leave(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    state.events.leave(&principal, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Top-level comments, oldest first, each with its replies nested.
#[utoipa::path(get, path = "/api/v1/events/{id}/comments", tag = "events", params(("id" = Uuid, Path), PageQuery),
    responses((status = 200, body = PageView<CommentView>), (status = 404, body = Problem)))]
async fn list_comments(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Query(query): Query<PageQuery>,
) -> ApiResult<axum::Json<PageView<CommentView>>> {
    let page = state
        .events
        .threads(id, query.limit, query.cursor.as_deref())
        .await?;
    Ok(axum::Json(PageView::from_page(page, CommentView::from)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommentRequest {
    body: String,
}

/// Comments on an event.
#[utoipa::path(post, path = "/api/v1/events/{id}/comments", tag = "events", params(("id" = Uuid, Path)),
    request_body = CommentRequest,
    responses((status = 201, body = CommentView), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn post_comment(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<Uuid>,
    Json(body): Json<CommentRequest>,
) -> ApiResult<(StatusCode, axum::Json<CommentView>)> {
    let comment = state.events.comment(&principal, id, &body.body).await?;
    Ok((StatusCode::CREATED, axum::Json(comment.into())))
}

/// Replies to a comment (at any depth).
#[utoipa::path(post, path = "/api/v1/comments/{id}/replies", tag = "events", params(("id" = Uuid, Path)),
    request_body = CommentRequest,
    responses((status = 201, body = CommentView), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn post_reply(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<Uuid>,
    Json(body): Json<CommentRequest>,
) -> ApiResult<(StatusCode, axum::Json<CommentView>)> {
    let comment = state.events.reply(&principal, id, &body.body).await?;
    Ok((StatusCode::CREATED, axum::Json(comment.into())))
}

/// Creates a drop: an event with items for sale.
#[utoipa::path(post, path = "/api/v1/admin/events", tag = "events", request_body = EventRequest,
    responses((status = 201, body = EventView), (status = 403, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn create_drop(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Json(body): Json<EventRequest>,
) -> ApiResult<(StatusCode, axum::Json<EventView>)> {
    let (input, drop) = body.split()?;
    let drop = Some(drop.unwrap_or_default());
    let details = state.events.create(&admin, input, drop).await?;
    Ok((StatusCode::CREATED, axum::Json(EventView::from(&details))))
}

/// Replaces a drop and its items; only while scheduled (409 `event_not_editable`).
#[utoipa::path(put, path = "/api/v1/admin/events/{id}", tag = "events", params(("id" = Uuid, Path)),
    request_body = EventRequest,
    responses((status = 200, body = EventView), (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn replace_drop(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<Uuid>,
    Json(body): Json<EventRequest>,
) -> ApiResult<axum::Json<EventView>> {
    let (input, drop) = body.split()?;
    let drop = Some(drop.unwrap_or_default());
    let details = state
        .events
        .update(&admin, id, EventEdit::Replace { input, drop })
        .await?;
    Ok(axum::Json(EventView::from(&details)))
}

/// Puts an event live now.
#[utoipa::path(post, path = "/api/v1/admin/events/{id}/open", tag = "events", params(("id" = Uuid, Path)),
    responses((status = 200, body = EventView), (status = 409, body = Problem)), security(("bearer" = [])))]
async fn open_event(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<EventView>> {
    let details = state.events.force(&admin, id, EventStatus::Live).await?;
    Ok(axum::Json(EventView::from(&details)))
}

/// Closes an event now.
#[utoipa::path(post, path = "/api/v1/admin/events/{id}/close", tag = "events", params(("id" = Uuid, Path)),
    responses((status = 200, body = EventView), (status = 409, body = Problem)), security(("bearer" = [])))]
async fn close_event(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<EventView>> {
    let details = state.events.force(&admin, id, EventStatus::Closed).await?;
    Ok(axum::Json(EventView::from(&details)))
}
