//! Access tokens (HS256 JWTs) and opaque refresh tokens.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
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

pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    pub access_ttl: Duration,
}

impl TokenKeys {
    pub fn new(secret: &[u8], access_ttl: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        // An expired token is refused at once.
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        TokenKeys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            access_ttl,
        }
    }

    pub fn issue(&self, user_id: Uuid, role: Role, session_id: Uuid, epoch: i64) -> Result<String> {
        let now = chrono::Utc::now().timestamp();
        let claims = AccessClaims {
            sub: user_id,
            role,
            sid: session_id,
            epoch,
            iat: now,
            exp: now + self.access_ttl.as_secs() as i64,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| Error::Internal(e.to_string()))
    }

    /// Checks the signature, algorithm and expiry. Whether the token was
    /// revoked is the auth cache's question.
    pub fn verify(&self, token: &str) -> Result<AccessClaims> {
        jsonwebtoken::decode::<AccessClaims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|err| match err.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => Error::Unauthorized("token expired"),
                _ => Error::Unauthorized("invalid token"),
            })
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

    #[test]
    fn issues_and_verifies() {
        let keys = TokenKeys::new(b"k1", Duration::from_secs(60));
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
        let keys = TokenKeys::new(b"k1", Duration::from_secs(60));
        let other = TokenKeys::new(b"k2", Duration::from_secs(60));
        let token = other
            .issue(Uuid::now_v7(), Role::Admin, Uuid::now_v7(), 0)
            .unwrap();
        assert!(keys.verify(&token).is_err());

        let payload = token.split('.').nth(1).unwrap();
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        assert!(keys.verify(&format!("{header}.{payload}.")).is_err());

        let expired = TokenKeys::new(b"k1", Duration::ZERO)
            .issue(Uuid::now_v7(), Role::Customer, Uuid::now_v7(), 0)
            .unwrap();
        std::thread::sleep(Duration::from_millis(1100));
        assert!(matches!(
            keys.verify(&expired),
            Err(Error::Unauthorized("token expired"))
        ));
    }

    #[test]
    fn refresh_tokens_are_random_and_hashed() {
        let (a, b) = (new_refresh_token(), new_refresh_token());
        assert_ne!(a, b);
        assert_eq!(hash_refresh_token(&a).len(), 64);
        assert_ne!(hash_refresh_token(&a), a);
    }
}
