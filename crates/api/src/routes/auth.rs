//! Registration, login, token refresh and logout, password change.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use services::accounts::Registration;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{Auth, ClientIp, Form, Json, OptionalJson};
use crate::state::AppState;
use crate::views::{TokensView, UserView};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(token))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(change_password))
        .routes(routes!(me))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    email: String,
    /// 3-50 letters, digits or underscores.
    username: String,
    /// At least 8 characters with an uppercase letter, a digit and a special character.
    password: String,
    full_name: Option<String>,
}

/// Creates a customer account.
#[utoipa::path(post, path = "/api/v1/auth/register", tag = "auth", request_body = RegisterRequest,
    responses((status = 201, body = UserView), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn register(
    State(state): State<AppState>,
    Json(body): Json<RegisterRequest>,
) -> ApiResult<(StatusCode, axum::Json<UserView>)> {
    let user = state
        .accounts
        .register(Registration {
            email: body.email,
            username: body.username,
            password: body.password,
            full_name: body.full_name,
        })
        .await?;
    Ok((StatusCode::CREATED, axum::Json(user.into())))
}

#[derive(Deserialize, ToSchema)]
pub struct LoginRequest {
    /// A username or an email address.
    username: String,
    password: String,
}

/// The login limit counts failed attempts per address: an address that
/// failed too often waits (whatever it sends next), a success costs
/// nothing, and an attempt the server shed (503) was never tried.
async fn sign_in(state: &AppState, ip: ClientIp, body: LoginRequest) -> ApiResult<axum::Json<TokensView>> {
    if let Err(wait) = state.limits.login.peek(ip.0).await {
        metrics::counter!("swiftdrop_rate_limited_total", "limit" => "login").increment(1);
        return Err(ApiError::rate_limited(wait.seconds()));
    }
    let outcome = state.accounts.login(&body.username, &body.password).await;
    let label = match &outcome {
        Ok(_) => "success",
        Err(services::Error::Unauthorized(_)) => {
            let _ = state.limits.login.check(ip.0).await;
            "failure"
        }
        Err(_) => "error",
    };
    metrics::counter!("swiftdrop_logins_total", "outcome" => label).increment(1);
    Ok(axum::Json(outcome?.into()))
}

/// Signs in with a username or email and a password (5 attempts a minute per address).
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = TokensView), (status = 401, body = Problem), (status = 429, body = Problem)))]
async fn login(
    State(state): State<AppState>,
    ip: ClientIp,
    Json(body): Json<LoginRequest>,
) -> ApiResult<axum::Json<TokensView>> {
    sign_in(&state, ip, body).await
}

/// The OAuth2 password grant, as a form (for OAuth2 clients and Swagger UI).
#[utoipa::path(post, path = "/api/v1/auth/token", tag = "auth",
    request_body(content = LoginRequest, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, body = TokensView), (status = 401, body = Problem), (status = 429, body = Problem)))]
async fn token(
    State(state): State<AppState>,
    ip: ClientIp,
    Form(body): Form<LoginRequest>,
) -> ApiResult<axum::Json<TokensView>> {
    sign_in(&state, ip, body).await
}

#[derive(Deserialize, ToSchema)]
pub struct RefreshRequest {
    refresh_token: String,
}

/// Trades a refresh token for a new pair; the old one stops working, and
/// replaying it revokes the session.
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = TokensView), (status = 401, body = Problem)))]
async fn refresh(
    State(state): State<AppState>,
    Json(body): Json<RefreshRequest>,
) -> ApiResult<axum::Json<TokensView>> {
    Ok(axum::Json(
        state.accounts.refresh(&body.refresh_token).await?.into(),
    ))
}

#[derive(Deserialize, Default, ToSchema)]
pub struct LogoutRequest {
    refresh_token: Option<String>,
}

/// Ends this session: the access token used and the refresh token stop working at once.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", request_body(content = Option<LogoutRequest>),
    responses((status = 204), (status = 401, body = Problem)), security(("bearer" = [])))]
async fn logout(
    State(state): State<AppState>,
    Auth(principal): Auth,
    OptionalJson(body): OptionalJson<LogoutRequest>,
) -> ApiResult<StatusCode> {
    state
        .accounts
        .logout(&principal, body.refresh_token.as_deref())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
pub struct PasswordChange {
    current_password: String,
    new_password: String,
}

/// Changes the password; every token issued before stops working.
#[utoipa::path(put, path = "/api/v1/auth/password", tag = "auth", request_body = PasswordChange,
    responses((status = 200, body = TokensView), (status = 401, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn change_password(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Json(body): Json<PasswordChange>,
) -> ApiResult<axum::Json<TokensView>> {
    let pair = state
        .accounts
        .change_password(&principal, &body.current_password, &body.new_password)
        .await?;
    Ok(axum::Json(pair.into()))
}

/// The signed-in user.
#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth",
    responses((status = 200, body = UserView), (status = 401, body = Problem)), security(("bearer" = [])))]
async fn me(State(state): State<AppState>, Auth(principal): Auth) -> ApiResult<axum::Json<UserView>> {
    Ok(axum::Json(state.accounts.user(principal.user_id).await?.into()))
}
