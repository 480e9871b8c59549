//! `/admin/users`: search, activate, deactivate, role and weight.

use api::AppState;
use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use domain::user::{AdminUpdate, Role, UserFilter};
use serde::Deserialize;
use uuid::Uuid;

use crate::extract::{Admin, PagePath};
use crate::render::{self, Layout, html};
use crate::session::Session;

pub struct UserRow {
    pub id: String,
    pub username: String,
    pub email: String,
    pub role: String,
    pub active: bool,
    pub weight: String,
    pub is_admin: bool,
}

#[derive(Template)]
#[template(path = "admin/users.html")]
struct UsersPage {
    layout: Layout,
    search: String,
    users: Vec<UserRow>,
    next_link: Option<String>,
    notice: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct UsersQuery {
    search: String,
    cursor: String,
}

async fn users_page(
    state: &AppState,
    session: &Session,
    uri: &Uri,
    query: UsersQuery,
    status: StatusCode,
    notice: Option<String>,
) -> Response {
    let filter = UserFilter {
        search: Some(query.search.trim().to_owned()).filter(|s| !s.is_empty()),
        ..UserFilter::default()
    };
    let cursor = Some(query.cursor.clone()).filter(|c| !c.is_empty());
    let page = match state
        .accounts
        .list_users(&filter, Some(50), cursor.as_deref())
        .await
    {
        Ok(page) => page,
        Err(err) => return render::service_error(session, uri, err),
    };
    let next_link = page.next_cursor.map(|cursor| {
        let mut params = form_urlencoded::Serializer::new(String::new());
        params.append_pair("search", &query.search);
        params.append_pair("cursor", &cursor);
        format!("/admin/users?{}", params.finish())
    });
    html(
        status,
        &UsersPage {
            layout: Layout::with_bell(session, state, "Admin: users").await,
            search: query.search,
            users: page
                .data
                .iter()
                .map(|u| UserRow {
                    id: u.id.to_string(),
                    username: u.username.clone(),
                    email: u.email.clone(),
                    role: u.role.as_str().to_owned(),
                    active: u.is_active,
                    weight: u.weight.to_string(),
                    is_admin: u.role == Role::Admin,
                })
                .collect(),
            next_link,
            notice,
        },
    )
}

pub async fn list(
    State(state): State<AppState>,
    Admin { session, .. }: Admin,
    uri: Uri,
    Query(query): Query<UsersQuery>,
) -> Response {
    users_page(&state, &session, &uri, query, StatusCode::OK, None).await
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct UserForm {
    role: String,
    weight: String,
}

/// `POST /admin/users/{id}/activate`, `/deactivate` and `/update` (role
/// and weight).
pub async fn act(
    State(state): State<AppState>,
    Admin { session, principal }: Admin,
    uri: Uri,
    PagePath((id, action)): PagePath<(Uuid, String)>,
    Form(form): Form<UserForm>,
) -> Response {
    let outcome = match action.as_str() {
        "activate" => state.accounts.set_active(&principal, id, true).await.map(|_| ()),
        "deactivate" => state.accounts.set_active(&principal, id, false).await.map(|_| ()),
        "update" => {
            let role = match form.role.as_str() {
                "" => None,
                "admin" => Some(Role::Admin),
                "customer" => Some(Role::Customer),
                _ => {
                    let text = "Role: choose customer or admin.".to_owned();
                    return users_page(
                        &state,
                        &session,
                        &uri,
                        UsersQuery::default(),
                        StatusCode::UNPROCESSABLE_ENTITY,
                        Some(text),
                    )
                    .await;
                }
            };
            let weight = match form.weight.trim() {
                "" => None,
                text => match text.parse::<f64>() {
                    Ok(w) => Some(w),
                    Err(_) => {
                        let text = "Weight: enter a decimal number such as 1.5.".to_owned();
                        return users_page(
                            &state,
                            &session,
                            &uri,
                            UsersQuery::default(),
                            StatusCode::UNPROCESSABLE_ENTITY,
                            Some(text),
                        )
                        .await;
                    }
                },
            };
            state
                .accounts
                .update_by_admin(&principal, id, AdminUpdate { role, weight })
                .await
                .map(|_| ())
        }
        _ => return render::not_found(&session),
    };
    match outcome {
        Ok(()) => Redirect::to("/admin/users").into_response(),
        Err(services::Error::Validation(invalid)) => {
            let text = invalid
                .fields()
                .iter()
                .map(|f| format!("{}: {}", f.field, f.message))
                .collect::<Vec<_>>()
                .join("; ");
            users_page(
                &state,
                &session,
                &uri,
                UsersQuery::default(),
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(text),
            )
            .await
        }
        Err(services::Error::Conflict { detail, .. }) => {
            users_page(
                &state,
                &session,
                &uri,
                UsersQuery::default(),
                StatusCode::CONFLICT,
                Some(detail),
            )
            .await
        }
        Err(err) => render::service_error(&session, &uri, err),
    }
}
