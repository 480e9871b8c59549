//! Access tokens (HS256 JWTs) and opaque refresh tokens.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use domain::clock::Clock;
use domain::user::Role;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{Error, Result};

/// The claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The user id.
    pub sub: Uuid,
    pub role: Role,
    /// The login session; logout revokes it.
    pub sid: Uuid,
    /// The user's token epoch at issue; a password change or deactivation
    /// moves the user to a later one.
    pub epoch: i64,
    pub iat: i64,
    pub exp: i64,
}

/// The keys access tokens are signed with: the current one, named in each
/// token's `kid` header, and the one before it, still accepted for tokens
/// issued before a key change (they carry no `kid`).
#[derive(Clone)]
pub struct SigningKeys {
    pub kid: &'static str,
    pub current: Vec<u8>,
    pub previous: Option<Vec<u8>>,
}

pub struct TokenKeys {
    kid: &'static str,
    encoding: EncodingKey,
    decoding: DecodingKey,
    previous: Option<DecodingKey>,
    validation: Validation,
    clock: Clock,
    pub access_ttl: Duration,
}

impl TokenKeys {
    pub fn new(keys: &SigningKeys, access_ttl: Duration, clock: Clock) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        // Expiry is checked against the process's clock (below), not the
        // library's, so a test clock moves token lifetimes too.
        validation.validate_exp = false;
        validation.set_required_spec_claims(&["exp", "sub"]);
        TokenKeys {
            kid: keys.kid,
            encoding: EncodingKey::from_secret(&keys.current),
            decoding: DecodingKey::from_secret(&keys.current),
            previous: keys.previous.as_deref().map(DecodingKey::from_secret),
            validation,
            clock,
            access_ttl,
        }
    }

    pub fn issue(&self, user_id: Uuid, role: Role, session_id: Uuid, epoch: i64) -> Result<String> {
        let now = self.clock.now().timestamp();
        let claims = AccessClaims {
            sub: user_id,
            role,
            sid: session_id,
            epoch,
            iat: now,
            exp: now + self.access_ttl.as_secs() as i64,
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.kid.to_owned());
        jsonwebtoken::encode(&header, &claims, &self.encoding).map_err(|e| Error::Internal(Box::new(e)))
    }

    /// Checks the signature, algorithm and expiry (no leeway: a token is
    /// refused from the second after its `exp`). Whether the token was
    /// revoked is the auth cache's question.
    pub fn verify(&self, token: &str) -> Result<AccessClaims> {
        let invalid = Error::Unauthorized("invalid token");
        let header = jsonwebtoken::decode_header(token).map_err(|_| Error::Unauthorized("invalid token"))?;
        let key = match header.kid.as_deref() {
            Some(kid) if kid == self.kid => &self.decoding,
            None => self.previous.as_ref().ok_or(invalid)?,
            Some(_) => return Err(Error::Unauthorized("invalid token")),
        };
        let claims = jsonwebtoken::decode::<AccessClaims>(token, key, &self.validation)
            .map(|data| data.claims)
            .map_err(|_| Error::Unauthorized("invalid token"))?;
        if claims.exp < self.clock.now().timestamp() {
            return Err(Error::Unauthorized("token expired"));
        }
        Ok(claims)
    }
}

/// A fresh refresh token: 256 random bits, URL-safe.
pub fn new_refresh_token() -> String {
    let bytes: [u8; 32] = rand::random();
    URL_SAFE_NO_PAD.encode(bytes)
}

/// What the database keeps of a refresh token.
pub fn hash_refresh_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(secret: &[u8], ttl: Duration, clock: &Clock) -> TokenKeys {
        let keys = SigningKeys {
            kid: "2",
            current: secret.to_vec(),
            previous: Some(b"old".to_vec()),
        };
        TokenKeys::new(&keys, ttl, clock.clone())
    }

    #[test]
    fn issues_and_verifies() {
        let keys = keys(b"k1", Duration::from_secs(60), &Clock::system());
        let (user, session) = (Uuid::now_v7(), Uuid::now_v7());
        let token = keys.issue(user, Role::Admin, session, 3).unwrap();
        let claims = keys.verify(&token).unwrap();
        assert_eq!(
            (claims.sub, claims.role, claims.sid, claims.epoch),
            (user, Role::Admin, session, 3)
        );
    }

    #[test]
    fn refuses_other_keys_none_and_expired() {
        let clock = Clock::movable();
        let keys = keys(b"k1", Duration::from_secs(60), &clock);
        let other = super::tests::keys(b"k2", Duration::from_secs(60), &clock);
        let token = other
            .issue(Uuid::now_v7(), Role::Admin, Uuid::now_v7(), 0)
            .unwrap();
        assert!(keys.verify(&token).is_err());

        let payload = token.split('.').nth(1).unwrap();
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        assert!(keys.verify(&format!("{header}.{payload}.")).is_err());

        let expiring = keys
            .issue(Uuid::now_v7(), Role::Customer, Uuid::now_v7(), 0)
            .unwrap();
        clock.advance(chrono::Duration::seconds(59)).unwrap();
        assert!(keys.verify(&expiring).is_ok());
        clock.advance(chrono::Duration::seconds(2)).unwrap();
        assert!(matches!(
            keys.verify(&expiring),
            Err(Error::Unauthorized("token expired"))
        ));
    }

    #[test]
    fn tokens_of_the_previous_key_still_work() {
        let clock = Clock::system();
        let keys = keys(b"k1", Duration::from_secs(60), &clock);
        // A token from before key ids: signed with the previous key, no kid.
        let claims = AccessClaims {
            sub: Uuid::now_v7(),
            role: Role::Customer,
            sid: Uuid::now_v7(),
            epoch: 0,
            iat: clock.now().timestamp(),
            exp: clock.now().timestamp() + 60,
        };
        let legacy = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(b"old"),
        )
        .unwrap();
        assert_eq!(keys.verify(&legacy).unwrap().sub, claims.sub);
        // The previous key is not accepted under the current key's id.
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("2".into());
        let forged = jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(b"old")).unwrap();
        assert!(keys.verify(&forged).is_err());
    }

    #[test]
    fn refresh_tokens_are_random_and_hashed() {
        let (a, b) = (new_refresh_token(), new_refresh_token());
        assert_ne!(a, b);
        assert_eq!(hash_refresh_token(&a).len(), 64);
        assert_ne!(hash_refresh_token(&a), a);
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            /// Whatever a client puts in the header, it is refused, never a panic.
            #[test]
            fn any_text_is_refused(text in ".{0,300}") {
                let keys = keys(b"k1", Duration::from_secs(60), &Clock::system());
                prop_assert!(keys.verify(&text).is_err());
            }

            /// A genuine token with any one character changed is refused
            /// (or, where base64 padding bits absorb the change, reads the same claims).
            #[test]
            fn an_edited_token_is_refused(at in any::<prop::sample::Index>(), with in "[A-Za-z0-9_.=-]") {
                let keys = keys(b"k1", Duration::from_secs(60), &Clock::system());
                let user = Uuid::now_v7();
                let token = keys.issue(user, Role::Customer, Uuid::now_v7(), 0).unwrap();
                let mut bytes = token.clone().into_bytes();
                let i = at.index(bytes.len());
                bytes[i] = with.as_bytes()[0];
                let edited = String::from_utf8(bytes).unwrap();
                prop_assume!(edited != token);
                if let Ok(claims) = keys.verify(&edited) {
                    prop_assert_eq!(claims.sub, user);
                    prop_assert_eq!(claims.role, Role::Customer);
                }
            }
        }
    }
}
