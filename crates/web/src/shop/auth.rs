//! Sign in, sign up, sign out.

use api::AppState;
use api::extract::ClientIp;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use serde::Deserialize;
use services::accounts::Registration;
use services::accounts::session::SessionTokens;

use crate::forms::FieldErrors;
use crate::render::{self, Layout, html};
use crate::session::{Session, safe_next};

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct NextQuery {
    next: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct LoginForm {
    username: String,
    password: String,
    next: String,
}

#[derive(Template)]
#[template(path = "shop/login.html")]
struct LoginPage {
    layout: Layout,
    username: String,
    next: String,
    error: Option<String>,
    errors: FieldErrors,
    retry_after: Option<u64>,
}

pub async fn login_page(Extension(session): Extension<Session>, Query(query): Query<NextQuery>) -> Response {
    html(
        StatusCode::OK,
        &LoginPage {
            layout: Layout::new(&session, "Sign in"),
            username: String::new(),
            next: safe_next(query.next.as_deref()),
            error: None,
            errors: FieldErrors::default(),
            retry_after: None,
        },
    )
}

/// Signed in: the cookie, and on to `next`.
fn signed_in(session: &Session, tokens: SessionTokens, next: &str) -> Response {
    let mut response = Redirect::to(&safe_next(Some(next))).into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, session.session_cookie(&tokens));
    response
}

fn with_retry_after(mut response: Response, seconds: Option<u64>) -> Response {
    if let Some(seconds) = seconds {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

pub async fn login(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    ClientIp(ip): ClientIp,
    Form(form): Form<LoginForm>,
) -> Response {
    let page = |status: StatusCode, error: Option<String>, errors: FieldErrors, retry: Option<u64>| {
        with_retry_after(
            html(
                status,
                &LoginPage {
                    layout: Layout::new(&session, "Sign in"),
                    username: form.username.clone(),
                    next: safe_next(Some(&form.next)),
                    error,
                    errors,
                    retry_after: retry,
                },
            ),
            retry,
        )
    };
    let mut errors = FieldErrors::default();
    if form.username.trim().is_empty() {
        errors.add("username", "enter your username or email");
    }
    if form.password.is_empty() {
        errors.add("password", "enter your password");
    }
    if !errors.is_empty() {
        return page(StatusCode::UNPROCESSABLE_ENTITY, None, errors, None);
    }
    // The API's rule: failed attempts per address are limited.
    if let Err(wait) = state.limits.login.peek(ip).await {
        let seconds = wait.seconds();
        let text = format!("Too many attempts. Try again in {seconds} seconds.");
        return page(StatusCode::TOO_MANY_REQUESTS, Some(text), errors, Some(seconds));
    }
    match state.accounts.login(form.username.trim(), &form.password).await {
        Ok(pair) => signed_in(&session, pair.into(), &form.next),
        Err(services::Error::Unauthorized(detail)) => {
            let _ = state.limits.login.check(ip).await;
            page(StatusCode::UNAUTHORIZED, Some(capitalized(detail)), errors, None)
        }
        Err(services::Error::Overloaded { retry_after_seconds }) => page(
            StatusCode::SERVICE_UNAVAILABLE,
            Some("The server is busy. Your sign-in will be retried shortly.".to_owned()),
            errors,
            Some(retry_after_seconds),
        ),
        Err(err) => render::service_error(&session, &"/login".parse().unwrap_or_default(), err),
    }
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect::<String>() + ".",
        None => String::new(),
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct RegisterForm {
    email: String,
    username: String,
    password: String,
    full_name: String,
    next: String,
}

#[derive(Template)]
#[template(path = "shop/register.html")]
struct RegisterPage {
    layout: Layout,
    email: String,
    username: String,
    full_name: String,
    next: String,
    error: Option<String>,
    errors: FieldErrors,
    retry_after: Option<u64>,
}

pub async fn register_page(
    Extension(session): Extension<Session>,
    Query(query): Query<NextQuery>,
) -> Response {
    html(
        StatusCode::OK,
        &RegisterPage {
            layout: Layout::new(&session, "Sign up"),
            email: String::new(),
            username: String::new(),
            full_name: String::new(),
            next: safe_next(query.next.as_deref()),
            error: None,
            errors: FieldErrors::default(),
            retry_after: None,
        },
    )
}

pub async fn register(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Form(form): Form<RegisterForm>,
) -> Response {
    let page = |status: StatusCode, error: Option<String>, errors: FieldErrors, retry: Option<u64>| {
        with_retry_after(
            html(
                status,
                &RegisterPage {
                    layout: Layout::new(&session, "Sign up"),
                    email: form.email.clone(),
                    username: form.username.clone(),
                    full_name: form.full_name.clone(),
                    next: safe_next(Some(&form.next)),
                    error,
                    errors,
                    retry_after: retry,
                },
            ),
            retry,
        )
    };
    let full_name = Some(form.full_name.trim().to_owned()).filter(|n| !n.is_empty());
    let registered = state
        .accounts
        .register(Registration {
            email: form.email.trim().to_owned(),
            username: form.username.trim().to_owned(),
            password: form.password.clone(),
            full_name,
        })
        .await;
    let failed = match registered {
        Ok(_) => match state.accounts.login(form.username.trim(), &form.password).await {
            // Sign-up signs in.
            Ok(pair) => return signed_in(&session, pair.into(), &form.next),
            Err(err) => err,
        },
        Err(err) => err,
    };
    match failed {
        services::Error::Validation(errors) => {
            page(StatusCode::UNPROCESSABLE_ENTITY, None, errors.into(), None)
        }
        services::Error::Conflict { code, detail } => {
            let mut errors = FieldErrors::default();
            let field = if code == "email_taken" {
                "email"
            } else {
                "username"
            };
            errors.add(field, &detail);
            page(StatusCode::CONFLICT, None, errors, None)
        }
        services::Error::Overloaded { retry_after_seconds } => page(
            StatusCode::SERVICE_UNAVAILABLE,
            Some(
                "The server is busy signing up many people. Your sign-up will be retried shortly.".to_owned(),
            ),
            FieldErrors::default(),
            Some(retry_after_seconds),
        ),
        err => render::service_error(&session, &"/register".parse().unwrap_or_default(), err),
    }
}

/// `POST /logout`: the session is revoked on the server, the cookie
/// cleared. Without a session it just clears the cookie.
pub async fn logout(State(state): State<AppState>, Extension(session): Extension<Session>) -> Response {
    if let (Some(principal), Some(tokens)) = (&session.principal, &session.tokens)
        && let Err(err) = state
            .accounts
            .logout(principal, Some(&tokens.refresh_token))
            .await
    {
        return render::service_error(&session, &"/".parse().unwrap_or_default(), err);
    }
    let mut response = Redirect::to("/").into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, session.clear_session_cookie());
    response
}

/// `GET /logout` changes nothing: it offers the button.
pub async fn logout_page(Extension(session): Extension<Session>) -> Response {
    if session.principal.is_none() {
        return Redirect::to("/").into_response();
    }
    render::html(
        StatusCode::OK,
        &LogoutPage {
            layout: Layout::new(&session, "Sign out"),
        },
    )
}

#[derive(Template)]
#[template(path = "shop/logout.html")]
struct LogoutPage {
    layout: Layout,
}
