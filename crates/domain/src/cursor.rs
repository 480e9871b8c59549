//! Opaque, signed cursors for keyset pagination.
//!
//! A cursor is `base64url(json position) . base64url(hmac)`. The MAC covers a
//! *scope* as well (the list and its sort order), so a cursor cannot be edited
//! nor replayed against another list or ordering: either is rejected.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cursor is malformed or was not issued for this list")]
pub struct InvalidCursor;

/// Signs and checks cursors with a server-side key. Cursors signed with
/// the previous key (before a key change) are still accepted.
#[derive(Clone)]
pub struct CursorCodec {
    key: Vec<u8>,
    previous: Option<Vec<u8>>,
}

impl std::fmt::Debug for CursorCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorCodec(..)")
    }
}

impl CursorCodec {
    pub fn new(key: &[u8]) -> Self {
        Self {
            key: key.to_vec(),
            previous: None,
        }
    }

    /// Also accepts cursors signed with `previous`.
    pub fn with_previous(mut self, previous: &[u8]) -> Self {
        self.previous = Some(previous.to_vec());
        self
    }

    fn mac(key: &[u8], scope: &str, payload: &[u8]) -> HmacSha256 {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac = HmacSha256::new_from_slice(key).expect("hmac takes any key length");
        mac.update(scope.as_bytes());
        mac.update(&[0]);
        mac.update(payload);
        mac
    }

    pub fn encode<T: Serialize>(&self, scope: &str, position: &T) -> String {
        // Serializing plain data (numbers, strings, ids) cannot fail.
        let payload = serde_json::to_vec(position).expect("cursor position serializes");
        let tag = Self::mac(&self.key, scope, &payload).finalize().into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&payload),
            URL_SAFE_NO_PAD.encode(tag)
        )
    }

    pub fn decode<T: DeserializeOwned>(&self, scope: &str, cursor: &str) -> Result<T, InvalidCursor> {
        let (payload, tag) = cursor.split_once('.').ok_or(InvalidCursor)?;
        let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| InvalidCursor)?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| InvalidCursor)?;
        let signed_by = |key: &[u8]| Self::mac(key, scope, &payload).verify_slice(&tag).is_ok();
        if !(signed_by(&self.key) || self.previous.as_deref().is_some_and(signed_by)) {
            return Err(InvalidCursor);
        }
        serde_json::from_slice(&payload).map_err(|_| InvalidCursor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Position {
        key: i64,
        id: String,
    }

    fn sample() -> Position {
        Position {
            key: 42,
            id: "abc".into(),
        }
    }

    #[test]
    fn round_trips() {
        let codec = CursorCodec::new(b"secret");
        let cursor = codec.encode("products:price:asc", &sample());
        assert_eq!(
            codec.decode::<Position>("products:price:asc", &cursor),
            Ok(sample())
        );
        assert!(
            cursor
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        );
    }

    #[test]
    fn cursors_of_the_previous_key_still_read() {
        let old = CursorCodec::new(b"old").encode("users", &sample());
        let codec = CursorCodec::new(b"new").with_previous(b"old");
        assert_eq!(codec.decode::<Position>("users", &old), Ok(sample()));
        assert_eq!(
            CursorCodec::new(b"new").decode::<Position>("users", &old),
            Err(InvalidCursor)
        );
    }

    #[test]
    fn rejects_tampering_other_scopes_and_keys() {
        let codec = CursorCodec::new(b"secret");
        let cursor = codec.encode("users", &sample());
        let forged = CursorCodec::new(b"other").encode("users", &sample());
        assert_eq!(codec.decode::<Position>("users", &forged), Err(InvalidCursor));
        assert_eq!(codec.decode::<Position>("products", &cursor), Err(InvalidCursor));
        let (payload, tag) = cursor.split_once('.').unwrap();
        let edited = URL_SAFE_NO_PAD.encode(br#"{"key":1,"id":"abc"}"#);
        assert_eq!(
            codec.decode::<Position>("users", &format!("{edited}.{tag}")),
            Err(InvalidCursor)
        );
        for junk in ["", ".", "abc", &format!("{payload}."), "!!.!!"] {
            assert_eq!(
                codec.decode::<Position>("users", junk),
                Err(InvalidCursor),
                "{junk}"
            );
        }
    }
}
