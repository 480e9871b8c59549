use domain::{Refusal, Rejection, ValidationErrors};
use store::StoreError;

/// What a service call can answer besides success. The api layer maps each
/// variant to one HTTP status and problem document.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Validation(ValidationErrors),
    #[error("not found")]
    NotFound,
    /// A rule refused the request in the current state; `code` is the stable
    /// word clients branch on.
    #[error("{detail}")]
    Conflict { code: &'static str, detail: String },
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("{0}")]
    Forbidden(&'static str),
    /// The request carries more than this endpoint accepts.
    #[error("{0}")]
    TooLarge(&'static str),
    /// Too much work queued (e.g. password hashing): retry later.
    #[error("server busy")]
    Overloaded { retry_after_seconds: u64 },
    /// A dependency (the database) cannot be reached: answered at once
    /// rather than left hanging; retry shortly.
    #[error("service unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A fault of the server or its dependencies. The cause is kept as the
    /// error's source, for the log line of the 500; clients never see it.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl Error {
    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        Error::Conflict {
            code,
            detail: detail.into(),
        }
    }

    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Error::Validation(ValidationErrors::single(field, message))
    }

    /// An internal fault described in words (no underlying error value).
    pub fn internal(message: impl Into<String>) -> Self {
        Error::Internal(message.into().into())
    }

    /// The error of a load that several callers shared (a cache miss
    /// loaded once): each caller gets its own copy.
    pub fn shared(err: std::sync::Arc<Error>) -> Error {
        std::sync::Arc::try_unwrap(err).unwrap_or_else(|shared| match &*shared {
            Error::Validation(errors) => Error::Validation(errors.clone()),
            Error::NotFound => Error::NotFound,
            Error::Conflict { code, detail } => Error::conflict(code, detail.clone()),
            Error::Unauthorized(detail) => Error::Unauthorized(detail),
            Error::Forbidden(detail) => Error::Forbidden(detail),
            Error::TooLarge(detail) => Error::TooLarge(detail),
            Error::Overloaded { retry_after_seconds } => Error::Overloaded {
                retry_after_seconds: *retry_after_seconds,
            },
            Error::Internal(_) => Error::internal(error_chain(&*shared)),
            Error::Unavailable(_) => Error::Unavailable(error_chain(&*shared).into()),
        })
    }
}

/// An error and each of its sources, `: `-separated, for a log line.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl From<ValidationErrors> for Error {
    fn from(errors: ValidationErrors) -> Self {
        Error::Validation(errors)
    }
}

impl From<Refusal> for Error {
    fn from(refusal: Refusal) -> Self {
        Error::conflict(refusal.code(), refusal.to_string())
    }
}

impl From<Rejection> for Error {
    fn from(rejection: Rejection) -> Self {
        match rejection {
            Rejection::Invalid(errors) => Error::Validation(errors),
            Rejection::Refused(refusal) => refusal.into(),
        }
    }
}

/// Total: every store answer a client could cause has its 4xx here, so no
/// call site can turn one into a 500 by forgetting to map it.
impl From<StoreError> for Error {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound => Error::NotFound,
            StoreError::Conflict(field) => Error::conflict("conflict", format!("{field} is already taken")),
            StoreError::Rejected(rejection) => rejection.into(),
            StoreError::Unavailable(_) => Error::Unavailable(Box::new(err)),
            StoreError::Corrupt(_) | StoreError::Database(_) | StoreError::Migrate(_) => {
                Error::Internal(Box::new(err))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_rejections_become_client_errors() {
        let refused = Error::from(StoreError::refused(Refusal::EventFull));
        assert!(matches!(
            refused,
            Error::Conflict {
                code: "event_full",
                ..
            }
        ));
        let invalid = Error::from(StoreError::invalid("items[0].product_id", "no such product"));
        match invalid {
            Error::Validation(errors) => assert_eq!(errors.fields()[0].field, "items[0].product_id"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(Error::from(StoreError::NotFound), Error::NotFound));
    }

    #[test]
    fn the_chain_names_every_cause() {
        let err = Error::from(StoreError::Corrupt("bad status".into()));
        assert_eq!(
            error_chain(&err),
            "internal error: stored data is invalid: bad status"
        );
    }
}
