//! Cursor pages: the one shape every list in the API returns.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ValidationErrors;
use crate::cursor::{CursorCodec, InvalidCursor};

pub const DEFAULT_LIMIT: u32 = 20;
pub const MAX_LIMIT: u32 = 100;

/// A page of results and where the next one starts.
#[derive(Debug, Clone, Serialize)]
pub struct Page<T> {
    pub data: Vec<T>,
    pub next_cursor: Option<String>,
    pub has_more: bool,
}

impl<T> Page<T> {
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            data: self.data.into_iter().map(f).collect(),
            next_cursor: self.next_cursor,
            has_more: self.has_more,
        }
    }
}

/// The keyset position of a row: its sort key and its id (the tie-breaker).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Position<K> {
    pub key: K,
    pub id: Uuid,
}

/// A validated page request: how many rows, and after which position.
#[derive(Debug, Clone)]
pub struct PageRequest<K> {
    pub limit: u32,
    pub after: Option<Position<K>>,
}

impl<K> PageRequest<K> {
    /// Rows to fetch: one more than the limit tells whether another page exists.
    pub fn fetch_limit(&self) -> i64 {
        i64::from(self.limit) + 1
    }
}

/// Checks `limit` (1..=100, default 20).
pub fn check_limit(limit: Option<i64>) -> Result<u32, ValidationErrors> {
    match limit {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=i64::from(MAX_LIMIT)).contains(&n) => Ok(n as u32),
        Some(_) => Err(ValidationErrors::single(
            "limit",
            format!("must be between 1 and {MAX_LIMIT}"),
        )),
    }
}

/// Turns raw `limit` and `cursor` parameters into a page request for `scope`.
pub fn page_request<K: serde::de::DeserializeOwned>(
    codec: &CursorCodec,
    scope: &str,
    limit: Option<i64>,
    cursor: Option<&str>,
) -> Result<PageRequest<K>, ValidationErrors> {
    let limit = check_limit(limit)?;
    let after = match cursor {
        None | Some("") => None,
        Some(cursor) => Some(
            codec
                .decode(scope, cursor)
                .map_err(|InvalidCursor| ValidationErrors::single("cursor", InvalidCursor.to_string()))?,
        ),
    };
    Ok(PageRequest { limit, after })
}

/// Builds a page from up to `limit + 1` rows fetched in order.
pub fn page_from_rows<T, K: Serialize>(
    codec: &CursorCodec,
    scope: &str,
    limit: u32,
    mut rows: Vec<T>,
    position_of: impl Fn(&T) -> Position<K>,
) -> Page<T> {
    let has_more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_cursor = if has_more {
        rows.last().map(|last| codec.encode(scope, &position_of(last)))
    } else {
        None
    };
    Page {
        data: rows,
        next_cursor,
        has_more,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
        assert_eq!(check_limit(None), Ok(20));
        assert_eq!(check_limit(Some(1)), Ok(1));
        assert_eq!(check_limit(Some(100)), Ok(100));
        assert!(check_limit(Some(0)).is_err());
        assert!(check_limit(Some(101)).is_err());
        assert!(check_limit(Some(-5)).is_err());
    }

    #[test]
    fn pages_chain_through_cursors() {
        let codec = CursorCodec::new(b"k");
        let ids: Vec<Uuid> = (0..5).map(|_| Uuid::now_v7()).collect();
        let rows: Vec<(i64, Uuid)> = ids.iter().enumerate().map(|(i, id)| (i as i64, *id)).collect();
        let position = |row: &(i64, Uuid)| Position {
            key: row.0,
            id: row.1,
        };

        let page = page_from_rows(&codec, "s", 2, rows[..3].to_vec(), position);
        assert_eq!(page.data.len(), 2);
        assert!(page.has_more);
        let next: PageRequest<i64> = page_request(&codec, "s", Some(2), page.next_cursor.as_deref()).unwrap();
        assert_eq!(next.after, Some(Position { key: 1, id: ids[1] }));

        let last = page_from_rows(&codec, "s", 2, rows[4..].to_vec(), position);
        assert!(!last.has_more);
        assert_eq!(last.next_cursor, None);
    }

    #[test]
    fn a_bad_cursor_names_the_field() {
        let codec = CursorCodec::new(b"k");
        let err = page_request::<i64>(&codec, "s", None, Some("garbage")).unwrap_err();
        assert_eq!(err.fields()[0].field, "cursor");
    }
}
