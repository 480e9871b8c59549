//! What the pages take from a request before their handler runs: who may
//! see an admin page, and the ids in a page's path. Each refuses with the
//! page a visitor should see, so handlers start from what they need.

use axum::extract::{FromRequestParts, Path};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use services::accounts::Principal;

use crate::render;
use crate::session::Session;

/// The caller as the session layer found them.
fn session(parts: &Parts) -> Result<Session, Response> {
    // Every page route is behind the session layer; its absence is a bug
    // in the routing, answered like axum answers a missing extension.
    parts
        .extensions
        .get::<Session>()
        .cloned()
        .ok_or_else(|| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// An administrator's request. A visitor is sent to sign in (and back
/// here after), a customer gets a 403 page.
pub struct Admin {
    pub session: Session,
    pub principal: Principal,
}

impl<S: Send + Sync> FromRequestParts<S> for Admin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Response> {
        let session = session(parts)?;
        match session.principal {
            None => Err(render::to_login(&parts.uri)),
            Some(principal) if session.is_admin() => Ok(Admin { session, principal }),
            Some(_) => Err(render::forbidden(&session, "This page is for administrators.")),
        }
    }
}

/// A page's path parameters (`Uuid`, `(Uuid, String)`, ...): a path that
/// does not parse names no page, so it gets the 404 page.
pub struct PagePath<T>(pub T);

impl<T, S> FromRequestParts<S> for PagePath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(PagePath(value)),
            Err(_) => Err(render::not_found(&session(parts)?)),
        }
    }
}
