//! The master secret and the keys derived from it, one per purpose.
//!
//! Keys are derived with HKDF-SHA256 (`info` names the version and the
//! purpose), so a cursor key can never sign a token. Version 1 derived them
//! as SHA-256(purpose, 0, secret); its keys are kept as "previous" keys so
//! tokens and cursors issued before the change keep working: access tokens
//! until they expire (they carry no key id), cursors for as long as
//! someone holds one. Drop version 1 in a later release.

use std::path::Path;

use anyhow::Context;
use domain::cursor::CursorCodec;
use hkdf::Hkdf;
use services::accounts::SigningKeys;
use sha2::{Digest, Sha256};

use crate::Config;

/// The key id current access tokens carry.
const TOKEN_KEY_ID: &str = "2";
const SALT: &[u8] = b"swiftdrop";

/// Every key a process signs or checks with.
pub struct Keys {
    pub tokens: SigningKeys,
    pub cursors: CursorCodec,
}

impl Keys {
    pub fn derive(secret: &[u8]) -> Keys {
        Keys {
            tokens: SigningKeys {
                kid: TOKEN_KEY_ID,
                current: derive(secret, "jwt"),
                previous: Some(derive_v1(secret, "jwt")),
            },
            cursors: CursorCodec::new(&derive(secret, "cursor")).with_previous(&derive_v1(secret, "cursor")),
        }
    }
}

/// The version 2 key for `purpose`.
fn derive(secret: &[u8], purpose: &str) -> Vec<u8> {
    let mut key = vec![0u8; 32];
    // 32 bytes is far below HKDF-SHA256's limit (255 × 32), so this cannot fail.
    let expanded = Hkdf::<Sha256>::new(Some(SALT), secret)
        .expand(format!("swiftdrop/v2/{purpose}").as_bytes(), &mut key);
    debug_assert!(expanded.is_ok());
    key
}

/// The version 1 key for `purpose`, still accepted for what it signed.
fn derive_v1(secret: &[u8], purpose: &str) -> Vec<u8> {
    let mut hasher = Sha256::new();
    hasher.update(purpose.as_bytes());
    hasher.update([0]);
    hasher.update(secret);
    hasher.finalize().to_vec()
}

/// The signing secret: `SWIFTDROP_SECRET`, or one generated on first start
/// and kept (owner-only) in the data folder.
pub fn load_secret(config: &Config) -> anyhow::Result<Vec<u8>> {
    if let Some(secret) = &config.secret {
        return Ok(secret.as_bytes().to_vec());
    }
    let path = config.data_dir.join("secret.key");
    if path.exists() {
        let text =
            std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let secret = text.trim();
        anyhow::ensure!(
            secret.len() >= 32,
            "{} is too short; delete it to generate a new one",
            path.display()
        );
        return Ok(secret.as_bytes().to_vec());
    }
    let secret = hex_secret();
    write_private(&path, &secret)?;
    tracing::info!(path = %path.display(), "generated a signing secret");
    Ok(secret.into_bytes())
}

fn hex_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes a file only its owner can read.
pub(crate) fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(contents.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_differ_by_purpose_and_version() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let jwt = derive(secret, "jwt");
        assert_eq!(jwt, derive(secret, "jwt"));
        assert_ne!(jwt, derive(secret, "cursor"));
        assert_ne!(jwt, derive_v1(secret, "jwt"));
        assert_ne!(jwt, derive(b"another secret, also 32 chars lo", "jwt"));
        assert_eq!(jwt.len(), 32);
    }

    #[test]
    fn a_cursor_of_version_one_still_reads() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let old = CursorCodec::new(&derive_v1(secret, "cursor")).encode("events", &7);
        assert_eq!(Keys::derive(secret).cursors.decode::<i32>("events", &old), Ok(7));
    }
}
