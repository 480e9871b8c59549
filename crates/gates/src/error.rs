//! Errors of the shared (Redis) gates. The gates themselves never return
//! them to a request: a failing Redis makes a gate fall back to its
//! in-process twin. They surface only where a caller asks about Redis
//! itself (start-up, `/ready`).

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum GateError {
    /// The URL could not be parsed or names an unsupported scheme.
    #[error("invalid Redis URL: {0}")]
    InvalidUrl(String),
    /// Redis answered with an error or the connection failed.
    #[error("Redis error: {0}")]
    Redis(#[from] redis::RedisError),
    /// Redis did not answer within the bound.
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    /// The gates are running on their in-process twins until Redis answers
    /// again (a background probe brings them back).
    #[error("Redis is unavailable; the gates run in-process until it returns")]
    Unavailable,
}
