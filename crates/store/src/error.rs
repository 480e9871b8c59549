/// What can go wrong in storage, with the cases callers branch on named.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A unique constraint refused the write; the field names what clashed.
    #[error("{0} is already taken")]
    Conflict(&'static str),
    /// A rule of `domain`, applied to the rows as the transaction read
    /// them, turned the change down (or a capacity guard did).
    #[error(transparent)]
    Rejected(#[from] domain::Rejection),
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    /// The database cannot be reached now (connection refused or lost, no
    /// connection free in time): worth retrying shortly.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    /// The input names something that is not there (e.g. a product id).
    pub fn invalid(field: &str, message: impl Into<String>) -> StoreError {
        StoreError::Rejected(domain::Rejection::invalid(field, message))
    }

    pub fn refused(refusal: domain::Refusal) -> StoreError {
        StoreError::Rejected(domain::Rejection::Refused(refusal))
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        match err {
            sqlx::Error::RowNotFound => StoreError::NotFound,
            sqlx::Error::ColumnDecode { source, .. } => StoreError::Corrupt(source.to_string()),
            sqlx::Error::Database(ref db) if db.is_unique_violation() => {
                StoreError::Conflict(conflicting_field(db.constraint(), db.message()))
            }
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(err),
            other => StoreError::Database(other),
        }
    }
}

/// Names the field behind a unique violation. PostgreSQL reports the index
/// name; SQLite reports the column or index in its message. Unique indexes
/// are named `<table>_<field>_key` in both schemas so one rule reads both.
fn conflicting_field(constraint: Option<&str>, message: &str) -> &'static str {
    const FIELDS: [&str; 3] = ["email", "username", "idempotency_key"];
    let source = constraint.unwrap_or(message);
    FIELDS
        .into_iter()
        .find(|field| source.contains(field))
        .unwrap_or("value")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fields_from_either_backend() {
        assert_eq!(conflicting_field(Some("users_email_key"), ""), "email");
        assert_eq!(
            conflicting_field(None, "UNIQUE constraint failed: index 'users_username_key'"),
            "username"
        );
        assert_eq!(
            conflicting_field(None, "UNIQUE constraint failed: users.email"),
            "email"
        );
        assert_eq!(conflicting_field(Some("other"), ""), "value");
    }
}
