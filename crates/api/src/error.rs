//! Every error the API answers with is an RFC 9457 problem document, built
//! here and nowhere else.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::ValidationErrors;
use serde::Serialize;

/// An error on its way to the client.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
    pub errors: Option<ValidationErrors>,
    pub retry_after: Option<u64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    pub code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub errors: Option<ValidationErrors>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            detail: detail.into(),
            errors: None,
            retry_after: None,
        }
    }

    pub fn validation(errors: ValidationErrors) -> Self {
        ApiError {
            errors: Some(errors),
            ..Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
                "the request has invalid fields",
            )
        }
    }

    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::validation(ValidationErrors::single(field, message))
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }

    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "no such resource")
    }

    pub fn rate_limited(retry_after: u64) -> Self {
        ApiError {
            retry_after: Some(retry_after),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many requests; retry later",
            )
        }
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "the server failed to answer this request",
        )
    }

    /// The problem document for a bare status (from a layer or the router).
    pub fn from_status(status: StatusCode) -> Self {
        let code = match status {
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
            StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
            StatusCode::REQUEST_TIMEOUT => "request_timeout",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
            StatusCode::BAD_REQUEST => "bad_request",
            StatusCode::UNAUTHORIZED => "unauthorized",
            StatusCode::FORBIDDEN => "forbidden",
            StatusCode::TOO_MANY_REQUESTS => "rate_limited",
            s if s.is_server_error() => "internal_error",
            _ => "error",
        };
        let detail = status.canonical_reason().unwrap_or("error").to_lowercase();
        Self::new(status, code, detail)
    }

    pub fn problem(&self) -> Problem {
        Problem {
            kind: format!("urn:swiftdrop:problem:{}", self.code),
            title: self.status.canonical_reason().unwrap_or("Error").to_owned(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            code: self.code.to_owned(),
            errors: self.errors.clone(),
        }
    }
}

pub const PROBLEM_JSON: &str = "application/problem+json";

/// The wait suggested when the database cannot be reached: long enough for
/// a restart or failover to finish, short enough to feel live.
const DEPENDENCY_RETRY_SECONDS: u64 = 2;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.problem())).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<services::Error> for ApiError {
    fn from(err: services::Error) -> Self {
        use services::Error as E;
        match err {
            E::Validation(errors) => ApiError::validation(errors),
            E::NotFound => ApiError::not_found(),
            E::Conflict { code, detail } => ApiError::new(StatusCode::CONFLICT, code, detail),
            E::Unauthorized(detail) => ApiError::unauthorized(detail),
            E::TooLarge(detail) => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", detail),
            E::Forbidden(detail) => ApiError::new(StatusCode::FORBIDDEN, "forbidden", detail),
            E::Overloaded { retry_after_seconds } => ApiError {
                retry_after: Some(retry_after_seconds),
                ..ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "overloaded",
                    "the server is busy; retry shortly",
                )
            },
            unavailable @ E::Unavailable(_) => {
                tracing::warn!(error = %services::error_chain(&unavailable), "dependency unavailable");
                ApiError {
                    retry_after: Some(DEPENDENCY_RETRY_SECONDS),
                    ..ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "service_unavailable",
                        "a service this request needs is unavailable; retry shortly",
                    )
                }
            }
            internal @ E::Internal(_) => {
                // The whole chain of causes goes to the log (with the
                // request's span), never to the client.
                tracing::error!(error = %services::error_chain(&internal), "internal error");
                ApiError::internal()
            }
        }
    }
}

impl From<ValidationErrors> for ApiError {
    fn from(errors: ValidationErrors) -> Self {
        ApiError::validation(errors)
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
