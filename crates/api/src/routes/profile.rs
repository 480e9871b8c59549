//! The caller's own profile.

use axum::extract::State;
use domain::user::ProfileUpdate;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiResult, Problem};
use crate::extract::{Auth, Json};
use crate::state::AppState;
use crate::views::UserView;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_profile, update_profile))
}

/// Only these fields can be changed here; `role`, `is_active`,
/// `is_verified` and `weight` are refused (422), never applied.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileRequest {
    display_name: Option<String>,
    full_name: Option<String>,
}

/// The caller's profile.
#[utoipa::path(get, path = "/api/v1/profile", tag = "profile",
    responses((status = 200, body = UserView), (status = 401, body = Problem)), security(("bearer" = [])))]
async fn get_profile(
    State(state): State<AppState>,
    Auth(principal): Auth,
) -> ApiResult<axum::Json<UserView>> {
    Ok(axum::Json(state.accounts.user(principal.user_id).await?.into()))
}

/// Updates the fields sent; a blank string clears one.
#[utoipa::path(put, path = "/api/v1/profile", tag = "profile", request_body = ProfileRequest,
    responses((status = 200, body = UserView), (status = 401, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn update_profile(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Json(body): Json<ProfileRequest>,
) -> ApiResult<axum::Json<UserView>> {
    let update = ProfileUpdate {
        display_name: body.display_name.map(Some),
        full_name: body.full_name.map(Some),
    };
    Ok(axum::Json(
        state.accounts.update_profile(&principal, update).await?.into(),
    ))
}
