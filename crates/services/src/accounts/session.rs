//! The web UI's session cookie: it carries the same token pair the API
//! hands out, so pages, `/ws` and the API check a caller in one way
//! (`AccountService::authenticate`).

use crate::accounts::TokenPair;

/// The cookie's name (fixed by API.md).
pub const SESSION_COOKIE: &str = "swiftdrop_session";

/// The token pair a session cookie holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionTokens {
    pub access_token: String,
    pub refresh_token: String,
}

/// Separates the two tokens: neither a JWT nor a refresh token (both
/// base64url and dots) contains it, and it is a valid cookie character.
const SEPARATOR: char = '~';

impl SessionTokens {
    pub fn cookie_value(&self) -> String {
        format!("{}{SEPARATOR}{}", self.access_token, self.refresh_token)
    }

    pub fn from_cookie_value(value: &str) -> Option<SessionTokens> {
        let (access, refresh) = value.split_once(SEPARATOR)?;
        let token_chars = |t: &str| {
            !t.is_empty()
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        };
        (token_chars(access) && token_chars(refresh)).then(|| SessionTokens {
            access_token: access.to_owned(),
            refresh_token: refresh.to_owned(),
        })
    }

    /// The session in a `Cookie` request header, if any.
    pub fn from_cookie_header(header: &str) -> Option<SessionTokens> {
        header
            .split(';')
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == SESSION_COOKIE)
            .and_then(|(_, value)| SessionTokens::from_cookie_value(value.trim_matches('"')))
    }
}

impl From<TokenPair> for SessionTokens {
    fn from(pair: TokenPair) -> Self {
        SessionTokens {
            access_token: pair.access_token,
            refresh_token: pair.refresh_token,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_a_cookie_header() {
        let tokens = SessionTokens {
            access_token: "eyJh.eyJz.c2ln".into(),
            refresh_token: "abc-_DEF".into(),
        };
        let header = format!("theme=dark; {SESSION_COOKIE}={}; other=1", tokens.cookie_value());
        assert_eq!(SessionTokens::from_cookie_header(&header), Some(tokens));
        for bad in ["", "x", "~", "a~", "~b", "a b~c", "a~b~c"] {
            assert_eq!(SessionTokens::from_cookie_value(bad), None, "{bad}");
        }
        assert_eq!(SessionTokens::from_cookie_header("theme=dark"), None);
    }
}
