use domain::ValidationErrors;
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
    #[error("internal error: {0}")]
    Internal(String),
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
}

impl From<ValidationErrors> for Error {
    fn from(errors: ValidationErrors) -> Self {
        Error::Validation(errors)
    }
}

impl From<StoreError> for Error {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound => Error::NotFound,
            StoreError::Conflict(field) => Error::conflict("conflict", format!("{field} is already taken")),
            other => Error::Internal(other.to_string()),
        }
    }
}
