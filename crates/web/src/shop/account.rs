//! The signed-in user's pages: `/notifications`, `/profile` and the
//! password change.

use api::AppState;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use domain::user::ProfileUpdate;
use serde::Deserialize;
use services::accounts::session::SessionTokens;

use crate::forms::FieldErrors;
use crate::render::{self, Layout, When, html, summarize};
use crate::session::Session;

pub struct NotificationRow {
    pub kind: String,
    pub summary: String,
    pub link: Option<String>,
    pub read: bool,
    pub when: When,
}

#[derive(Template)]
#[template(path = "shop/notifications.html")]
struct NotificationsPage {
    layout: Layout,
    notifications: Vec<NotificationRow>,
    next_cursor: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct CursorQuery {
    cursor: String,
}

pub async fn notifications(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    uri: Uri,
    Query(query): Query<CursorQuery>,
) -> Response {
    let Some(principal) = session.principal else {
        return render::to_login(&uri);
    };
    let cursor = Some(query.cursor).filter(|c| !c.is_empty());
    match state
        .notifications
        .list(&principal, false, Some(30), cursor.as_deref())
        .await
    {
        Ok(page) => html(
            StatusCode::OK,
            &NotificationsPage {
                layout: Layout::with_bell(&session, &state, "Notifications").await,
                notifications: page
                    .data
                    .iter()
                    .map(|n| {
                        let (summary, link) = summarize(&n.payload);
                        NotificationRow {
                            kind: n.notification_type.clone(),
                            summary,
                            link,
                            read: n.read,
                            when: When::new(n.created_at),
                        }
                    })
                    .collect(),
                next_cursor: page.next_cursor,
            },
        ),
        Err(err) => render::service_error(&session, &uri, err),
    }
}

pub async fn read_all(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    uri: Uri,
) -> Response {
    let Some(principal) = session.principal else {
        return render::to_login_at("/notifications");
    };
    match state.notifications.mark_all_read(&principal).await {
        Ok(()) => Redirect::to("/notifications").into_response(),
        Err(err) => render::service_error(&session, &uri, err),
    }
}

#[derive(Template)]
#[template(path = "shop/profile.html")]
struct ProfilePage {
    layout: Layout,
    email: String,
    username: String,
    role: String,
    display_name: String,
    full_name: String,
    errors: FieldErrors,
    notice: Option<String>,
}

async fn profile_page(
    state: &AppState,
    session: &Session,
    status: StatusCode,
    typed: Option<(String, String)>,
    errors: FieldErrors,
    notice: Option<String>,
) -> Response {
    let Some(user) = session.user.as_deref() else {
        return render::to_login_at("/profile");
    };
    let (display_name, full_name) = typed.unwrap_or_else(|| {
        (
            user.display_name.clone().unwrap_or_default(),
            user.full_name.clone().unwrap_or_default(),
        )
    });
    html(
        status,
        &ProfilePage {
            layout: Layout::with_bell(session, state, "Profile").await,
            email: user.email.clone(),
            username: user.username.clone(),
            role: user.role.as_str().to_owned(),
            display_name,
            full_name,
            errors,
            notice,
        },
    )
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct NoticeQuery {
    saved: String,
}

pub async fn profile(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Query(query): Query<NoticeQuery>,
) -> Response {
    let notice = match query.saved.as_str() {
        "profile" => Some("Your profile was saved.".to_owned()),
        "password" => Some("Your password was changed. Other sessions were signed out.".to_owned()),
        _ => None,
    };
    profile_page(
        &state,
        &session,
        StatusCode::OK,
        None,
        FieldErrors::default(),
        notice,
    )
    .await
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct ProfileForm {
    display_name: String,
    full_name: String,
}

pub async fn update_profile(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    uri: Uri,
    Form(form): Form<ProfileForm>,
) -> Response {
    let Some(principal) = session.principal else {
        return render::to_login_at("/profile");
    };
    let value = |v: &str| Some(Some(v.trim().to_owned()).filter(|v| !v.is_empty()));
    let update = ProfileUpdate {
        display_name: value(&form.display_name),
        full_name: value(&form.full_name),
    };
    match state.accounts.update_profile(&principal, update).await {
        Ok(_) => Redirect::to("/profile?saved=profile").into_response(),
        Err(services::Error::Validation(invalid)) => {
            profile_page(
                &state,
                &session,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some((form.display_name, form.full_name)),
                invalid.into(),
                None,
            )
            .await
        }
        Err(err) => render::service_error(&session, &uri, err),
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct PasswordForm {
    current_password: String,
    new_password: String,
}

/// The password change: every earlier token stops working; this browser
/// gets the fresh pair.
pub async fn change_password(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    uri: Uri,
    Form(form): Form<PasswordForm>,
) -> Response {
    let Some(principal) = session.principal else {
        return render::to_login_at("/profile");
    };
    match state
        .accounts
        .change_password(&principal, &form.current_password, &form.new_password)
        .await
    {
        Ok(pair) => {
            let mut response = Redirect::to("/profile?saved=password").into_response();
            let tokens = SessionTokens::from(pair);
            response
                .headers_mut()
                .append(header::SET_COOKIE, session.session_cookie(&tokens));
            response
        }
        Err(services::Error::Validation(invalid)) => {
            profile_page(
                &state,
                &session,
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                invalid.into(),
                None,
            )
            .await
        }
        Err(err) => render::service_error(&session, &uri, err),
    }
}
