use chrono::{DateTime, SubsecRound, Utc};

/// The current time, truncated to microseconds.
///
/// Both databases keep microseconds; truncating here means a timestamp read
/// back compares equal to the one written, on SQLite and PostgreSQL alike.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}
