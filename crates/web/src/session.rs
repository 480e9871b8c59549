//! The session of a page request: who is signed in (from the
//! `swiftdrop_session` cookie, refreshed transparently when the access
//! token has expired), the CSRF token of its forms, and the cookies the
//! answer must set.
//!
//! CSRF: every visitor carries a random `swiftdrop_csrf` cookie
//! (HttpOnly, SameSite=Lax). A form's token is the HMAC-SHA256, keyed by
//! that cookie, of the session id (or of "visitor" when signed out), so a
//! token is bound both to the browser and to the session it was rendered
//! for, and needs no server-side secret: any process of the deployment
//! checks it, across restarts. Every POST is checked here, before its
//! handler runs; a POST without a valid token gets a 403 page and changes
//! nothing.

use std::net::SocketAddr;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use api::AppState;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use domain::user::{Role, User};
use hmac::{Hmac, Mac};
use moka::future::Cache;
use rand::RngCore;
use services::accounts::session::{SESSION_COOKIE, SessionTokens};
use services::accounts::{Principal, TokenPair};
use sha2::Sha256;

use crate::render;

/// The visitor cookie that keys CSRF tokens.
pub const CSRF_COOKIE: &str = "swiftdrop_csrf";
/// The hidden field of every POST form.
pub const CSRF_FIELD: &str = "csrf_token";
/// The largest form body the CSRF check reads (uploads are multipart and
/// checked by their handler).
const FORM_LIMIT: usize = 1024 * 1024;

/// Refreshes done in the last minute, by the refresh token spent: a page
/// and its neighbours (two tabs, a reload) that present the same expired
/// session at once all get the one new pair, instead of the second
/// spending a rotated token, which would revoke the whole session.
static REFRESHED: LazyLock<Cache<String, TokenPair>> = LazyLock::new(|| {
    Cache::builder()
        .max_capacity(100_000)
        .time_to_live(Duration::from_secs(60))
        .build()
});

/// Who asks, as the pages see it. Put in the request's extensions by
/// [`layer`].
#[derive(Clone)]
pub struct Session {
    pub principal: Option<Principal>,
    pub user: Option<Arc<User>>,
    pub tokens: Option<SessionTokens>,
    csrf_key: String,
    /// The request reached us over TLS (through a trusted proxy).
    pub secure: bool,
}

type HmacSha256 = Hmac<Sha256>;

fn csrf_mac(key: &str, session: Option<uuid::Uuid>) -> HmacSha256 {
    // HMAC takes keys of any length.
    let mut mac = HmacSha256::new_from_slice(key.as_bytes()).unwrap_or_else(|_| unreachable!());
    match session {
        Some(id) => mac.update(format!("csrf:session:{id}").as_bytes()),
        None => mac.update(b"csrf:visitor"),
    }
    mac
}

impl Session {
    /// The token every form of this page carries.
    pub fn csrf_token(&self) -> String {
        let mac = csrf_mac(&self.csrf_key, self.principal.map(|p| p.session_id));
        hex::encode(mac.finalize().into_bytes())
    }

    /// Whether `given` is this session's token (compared in constant time).
    pub fn check_csrf(&self, given: &str) -> bool {
        let Ok(bytes) = hex::decode(given.trim()) else {
            return false;
        };
        csrf_mac(&self.csrf_key, self.principal.map(|p| p.session_id))
            .verify_slice(&bytes)
            .is_ok()
    }

    pub fn is_admin(&self) -> bool {
        self.principal.is_some_and(|p| p.role == Role::Admin)
    }

    pub fn username(&self) -> Option<&str> {
        self.user.as_deref().map(|u| u.username.as_str())
    }

    /// The `Set-Cookie` value that stores `tokens`.
    pub fn session_cookie(&self, tokens: &SessionTokens) -> HeaderValue {
        cookie(SESSION_COOKIE, &tokens.cookie_value(), self.secure, None)
    }

    /// The `Set-Cookie` value that removes the session.
    pub fn clear_session_cookie(&self) -> HeaderValue {
        cookie(SESSION_COOKIE, "", self.secure, Some(0))
    }
}

fn cookie(name: &str, value: &str, secure: bool, max_age: Option<u64>) -> HeaderValue {
    let mut text = format!("{name}={value}; HttpOnly; SameSite=Lax; Path=/");
    if let Some(age) = max_age {
        text.push_str(&format!("; Max-Age={age}"));
    }
    if secure {
        text.push_str("; Secure");
    }
    // Names and values are token characters and hex: always valid.
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("invalid=1"))
}

/// The value of cookie `name` in the request, if any.
fn cookie_value<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim_matches('"'))
}

fn session_tokens(parts: &Parts) -> Option<SessionTokens> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(SessionTokens::from_cookie_header)
}

/// Over TLS when a trusted proxy says so (the same rule as HSTS).
fn over_tls(parts: &Parts, state: &AppState) -> bool {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .is_some_and(|ConnectInfo(peer)| state.trusted_proxies.contains(&peer.ip()))
        && parts
            .headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"))
}

/// What the cookie's tokens stand for: the principal, and the tokens now
/// valid (new ones after a refresh). `cookie` gets the cookie to set.
async fn resolve(
    state: &AppState,
    tokens: SessionTokens,
) -> (Option<(Principal, SessionTokens)>, CookieChange) {
    match state.accounts.authenticate(&tokens.access_token).await {
        Ok(principal) => (Some((principal, tokens)), CookieChange::Keep),
        Err(services::Error::Unauthorized(_)) => {
            let accounts = state.accounts.clone();
            let spent = tokens.refresh_token.clone();
            let refreshed = REFRESHED
                .try_get_with(spent.clone(), async move { accounts.refresh(&spent).await })
                .await;
            let Ok(pair) = refreshed else {
                return (None, CookieChange::Clear);
            };
            let fresh = SessionTokens::from(pair);
            match state.accounts.authenticate(&fresh.access_token).await {
                Ok(principal) => (Some((principal, fresh.clone())), CookieChange::Set(fresh)),
                Err(_) => (None, CookieChange::Clear),
            }
        }
        Err(err) => {
            // The store is unreachable, say: keep the cookie for later.
            tracing::warn!(error = %services::error_chain(&err), "session not checked");
            (None, CookieChange::Keep)
        }
    }
}

enum CookieChange {
    Keep,
    Set(SessionTokens),
    Clear,
}

/// The session of a request, and the cookies its answer must set.
pub async fn establish(state: &AppState, parts: &Parts) -> (Session, Vec<HeaderValue>) {
    let secure = over_tls(parts, state);
    let mut set_cookies = Vec::new();
    let csrf_key = match cookie_value(parts, CSRF_COOKIE).filter(|v| is_key(v)) {
        Some(key) => key.to_owned(),
        None => {
            let mut bytes = [0u8; 32];
            rand::rng().fill_bytes(&mut bytes);
            let key = hex::encode(bytes);
            set_cookies.push(cookie(CSRF_COOKIE, &key, secure, None));
            key
        }
    };
    let mut session = Session {
        principal: None,
        user: None,
        tokens: None,
        csrf_key,
        secure,
    };
    if let Some(tokens) = session_tokens(parts) {
        let (resolved, change) = resolve(state, tokens).await;
        match change {
            CookieChange::Keep => {}
            CookieChange::Set(tokens) => set_cookies.push(session.session_cookie(&tokens)),
            CookieChange::Clear => set_cookies.push(session.clear_session_cookie()),
        }
        if let Some((principal, tokens)) = resolved {
            session.user = state.accounts.user(principal.user_id).await.ok().map(Arc::new);
            session.principal = Some(principal);
            session.tokens = Some(tokens);
        }
    }
    (session, set_cookies)
}

/// Establishes the [`Session`] of every page request, checks the CSRF
/// token of every POST, and sets the cookies the session needs.
pub async fn layer(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    let (session, set_cookies) = establish(&state, &parts).await;
    let body = if parts.method == Method::POST {
        match check_post(&session, &parts, body).await {
            Ok(body) => body,
            Err(refused) => return with_cookies(refused, set_cookies),
        }
    } else {
        body
    };
    parts.extensions.insert(session);
    let response = next.run(Request::from_parts(parts, body)).await;
    with_cookies(response, set_cookies)
}

fn is_key(value: &str) -> bool {
    value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Adds `cookies`, except a session cookie when the handler set its own
/// (sign-in, sign-out).
pub fn with_cookies(mut response: Response, cookies: Vec<HeaderValue>) -> Response {
    let prefix = format!("{SESSION_COOKIE}=");
    let handler_set_session = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .any(|v| v.as_bytes().starts_with(prefix.as_bytes()));
    for value in cookies {
        if handler_set_session && value.as_bytes().starts_with(prefix.as_bytes()) {
            continue;
        }
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// A form POST must carry this session's token. Multipart forms (uploads)
/// are passed on: their handler checks the token among the parts.
async fn check_post(session: &Session, parts: &Parts, body: Body) -> Result<Body, Response> {
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    if content_type == "multipart/form-data" {
        return Ok(body);
    }
    if content_type != "application/x-www-form-urlencoded" {
        return Err(render::forbidden(
            session,
            "This form is missing its security token.",
        ));
    }
    let bytes = match axum::body::to_bytes(body, FORM_LIMIT).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return Err(render::message(
                session,
                StatusCode::PAYLOAD_TOO_LARGE,
                "Too large",
                "The form is larger than the server accepts.",
            ));
        }
    };
    let given = form_urlencoded::parse(&bytes)
        .find(|(name, _)| name == CSRF_FIELD)
        .map(|(_, value)| value.into_owned());
    match given {
        Some(token) if session.check_csrf(&token) => Ok(Body::from(bytes)),
        _ => Err(render::forbidden(
            session,
            "This form expired or did not come from this site. Go back, reload the page and try again.",
        )),
    }
}

/// Only a same-site path (`/...`, not `//host` nor `/\host`) may be a
/// redirect target; anything else goes home.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && !path.starts_with("/\\")
                && !path.chars().any(|c| c.is_control() || c == '\\') =>
        {
            path.to_owned()
        }
        _ => "/".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_same_site_paths_are_redirect_targets() {
        assert_eq!(safe_next(Some("/orders/1?x=2")), "/orders/1?x=2");
        for bad in [
            "//evil.example",
            "/\\evil.example",
            "https://evil.example",
            "evil",
            "/a\nb",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn csrf_tokens_are_bound_to_the_browser_and_the_session() {
        let visitor = Session {
            principal: None,
            user: None,
            tokens: None,
            csrf_key: "a".repeat(64),
            secure: false,
        };
        let token = visitor.csrf_token();
        assert!(visitor.check_csrf(&token));
        assert!(!visitor.check_csrf(""));
        assert!(!visitor.check_csrf("zz"));
        let other_browser = Session {
            csrf_key: "b".repeat(64),
            ..visitor.clone()
        };
        assert!(!other_browser.check_csrf(&token));
        let signed_in = Session {
            principal: Some(Principal {
                user_id: uuid::Uuid::now_v7(),
                role: Role::Customer,
                session_id: uuid::Uuid::now_v7(),
            }),
            ..visitor.clone()
        };
        assert!(!signed_in.check_csrf(&token));
        assert!(signed_in.check_csrf(&signed_in.csrf_token()));
    }
}
