//! Request extractors that turn every kind of bad input into the right
//! problem document: malformed JSON 400, invalid values 422 naming the
//! field, oversized bodies 413, missing or bad tokens 401.

use std::net::{IpAddr, SocketAddr};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use domain::user::Permission;
use serde::de::{DeserializeOwned, IgnoredAny};
use services::accounts::Principal;

use crate::error::ApiError;
use crate::state::AppState;

/// A JSON body, strictly parsed.
pub struct Json<T>(pub T);

/// A JSON body that may be absent (an empty body reads as `T::default()`).
pub struct OptionalJson<T>(pub T);

/// An `application/x-www-form-urlencoded` body.
pub struct Form<T>(pub T);

/// Query parameters; a bad value is a 422 naming the parameter.
pub struct Query<T>(pub T);

/// Path parameters; a malformed id is a 422 naming it.
pub struct Path<T>(pub T);

async fn read_body(req: Request, state: &AppState) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state)
        .await
        .map_err(|rejection| match rejection {
            BytesRejection::FailedToBufferBody(_) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    "the request body is too large",
                )
            }
            other => ApiError::new(other.status(), "bad_request", other.body_text()),
        })
}

fn has_content_type(req: &Request, expected: &str) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| {
            let essence = essence.trim();
            essence.eq_ignore_ascii_case(expected)
                || (expected == "application/json" && essence.ends_with("+json"))
        })
}

/// Parses a JSON object, telling a syntax error (400) from a wrong value
/// (422). Every request body is an object: serde would also read a struct
/// from an array of its fields, which no client means to send.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let opens_an_object = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    if !opens_an_object && serde_json::from_slice::<IgnoredAny>(bytes).is_ok() {
        return Err(ApiError::invalid("body", "must be a JSON object"));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        match inner.classify() {
            // A wrong shape is a 422 only when the text is JSON at all: a
            // body cut short can trip over its shape before its end.
            serde_json::error::Category::Data => match serde_json::from_slice::<IgnoredAny>(bytes) {
                Ok(_) => {
                    let message = data_message(&inner);
                    ApiError::invalid(&field_name(&path, &message), message)
                }
                Err(syntax) => malformed(&syntax),
            },
            _ => malformed(&inner),
        }
    })?;
    deserializer.end().map_err(|err| malformed(&err))?;
    Ok(value)
}

fn malformed(err: &serde_json::Error) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "malformed_json",
        format!("malformed JSON: {err}"),
    )
}

/// The field a serde error points at. Missing and unknown fields are named
/// only inside the message ("missing field `x`"), not in the path.
fn field_name(path: &str, message: &str) -> String {
    if !path.is_empty() && path != "." {
        return path.to_owned();
    }
    message.split('`').nth(1).unwrap_or("body").to_owned()
}

fn data_message(err: &serde_json::Error) -> String {
    // serde_json appends " at line L column C"; clients need the first part.
    let text = err.to_string();
    text.split(" at line ").next().unwrap_or(&text).to_owned()
}

/// Parses `a=1&b=2` (a query string or a form body) into `T`.
pub fn parse_urlencoded<T: DeserializeOwned>(input: &str) -> Result<T, ApiError> {
    let deserializer = serde_urlencoded::Deserializer::new(form_urlencoded::parse(input.as_bytes()));
    serde_path_to_error::deserialize(deserializer).map_err(|err| {
        let path = err.path().to_string();
        let message = err.into_inner().to_string();
        ApiError::invalid(&field_name(&path, &message), message)
    })
}

impl<T: DeserializeOwned> FromRequest<AppState> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        if !has_content_type(&req, "application/json") {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as application/json",
            ));
        }
        let bytes = read_body(req, state).await?;
        parse_json(&bytes).map(Json)
    }
}

impl<T: DeserializeOwned + Default> FromRequest<AppState> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let is_json = has_content_type(&req, "application/json");
        let bytes = read_body(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(T::default()));
        }
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as application/json",
            ));
        }
        parse_json(&bytes).map(OptionalJson)
    }
}

impl<T: DeserializeOwned> FromRequest<AppState> for Form<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        if !has_content_type(&req, "application/x-www-form-urlencoded") {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as application/x-www-form-urlencoded",
            ));
        }
        let bytes = read_body(req, state).await?;
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "bad_request", "the form is not UTF-8"))?;
        parse_urlencoded(text).map(Form)
    }
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parse_urlencoded(parts.uri.query().unwrap_or_default()).map(Query)
    }
}

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(rejection) => {
                use axum::extract::rejection::PathRejection;
                let field = match &rejection {
                    PathRejection::FailedToDeserializePathParams(err) => match err.kind() {
                        axum::extract::path::ErrorKind::ParseErrorAtKey { key, .. }
                        | axum::extract::path::ErrorKind::InvalidUtf8InPathParam { key } => key.clone(),
                        _ => "path".to_owned(),
                    },
                    _ => "path".to_owned(),
                };
                Err(ApiError::invalid(&field, "is not a valid identifier"))
            }
        }
    }
}

/// The caller's address: the socket's peer, or the client named in
/// `X-Forwarded-For` when the peer is a trusted proxy.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

impl ClientIp {
    pub fn resolve(parts: &Parts, trusted_proxies: &[IpAddr]) -> IpAddr {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip())
            .unwrap_or(IpAddr::from([127, 0, 0, 1]));
        if !trusted_proxies.contains(&peer) {
            return peer;
        }
        // Walk the chain from the nearest hop; the first address that is
        // not one of our proxies is the client.
        let forwarded = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|hop| hop.trim().parse::<IpAddr>().ok())
            .collect::<Vec<_>>();
        forwarded
            .into_iter()
            .rev()
            .find(|ip| !trusted_proxies.contains(ip))
            .unwrap_or(peer)
    }
}

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Ok(ClientIp(Self::resolve(parts, &state.trusted_proxies)))
    }
}

/// A signed-in caller.
pub struct Auth(pub Principal);

/// A signed-in caller whose role may administer.
pub struct Admin(pub Principal);

/// The bearer token of the request, if any.
pub fn bearer_token(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer_token(parts)
            .ok_or_else(|| ApiError::unauthorized("sign in: a bearer token is required"))?;
        let principal = state.accounts.authenticate(token).await?;
        Ok(Auth(principal))
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Auth(principal) = Auth::from_request_parts(parts, state).await?;
        principal.require(Permission::Administer)?;
        Ok(Admin(principal))
    }
}
