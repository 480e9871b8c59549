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

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn position() -> impl Strategy<Value = Position> {
            (any::<i64>(), ".{0,24}").prop_map(|(key, id)| Position { key, id })
        }

        proptest! {
            #[test]
            fn every_position_round_trips(position in position(), scope in ".{0,16}") {
                let codec = CursorCodec::new(b"secret");
                let cursor = codec.encode(&scope, &position);
                prop_assert_eq!(codec.decode::<Position>(&scope, &cursor), Ok(position));
            }

            #[test]
            fn another_scope_is_refused(position in position(), scope in ".{0,16}", other in ".{0,16}") {
                prop_assume!(scope != other);
                let codec = CursorCodec::new(b"secret");
                let cursor = codec.encode(&scope, &position);
                prop_assert_eq!(codec.decode::<Position>(&other, &cursor), Err(InvalidCursor));
            }

            #[test]
            fn any_edit_is_refused(
                position in position(),
                at in any::<prop::sample::Index>(),
                replacement in any::<char>(),
            ) {
                let codec = CursorCodec::new(b"secret");
                let cursor = codec.encode("users", &position);
                let mut chars: Vec<char> = cursor.chars().collect();
                let at = at.index(chars.len());
                prop_assume!(chars[at] != replacement);
                chars[at] = replacement;
                let edited: String = chars.into_iter().collect();
                // Base64 without padding can spell the same bytes two ways in
                // a final character's unused bits; a refusal or the very same
                // position are both fine, anything else is not.
                match codec.decode::<Position>("users", &edited) {
                    Err(InvalidCursor) => {}
                    Ok(decoded) => prop_assert_eq!(decoded, position),
                }
            }

            #[test]
            fn arbitrary_text_never_panics(text in ".{0,200}", scope in ".{0,16}") {
                let codec = CursorCodec::new(b"secret");
                let _ = codec.decode::<Position>(&scope, &text);
                let _ = codec.decode::<serde_json::Value>(&scope, &text);
            }
        }
    }
}
