//! The deployment's webhook key and the signing secrets derived from it. No secret is stored in
//! the log or in any event: a subscription's secret of generation `g` is
//! HMAC-SHA256(webhook key, "roster webhook secret" ‖ id ‖ g), so every process holding the key
//! signs alike and a rotation only moves the generation. The key is 32 random bytes in
//! `<data-dir>/webhook.key` (mode 0600), made at first start.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::RngCore;
use roster_engine::domain::WebhookId;
use sha2::Sha256;

/// The file holding the key, inside the data directory.
pub const WEBHOOK_KEY_FILE: &str = "webhook.key";

type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read or write the webhook key {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the webhook key {path} is not 32 bytes: restore it from a backup (a new key changes every webhook's secret)"
    )]
    Malformed { path: PathBuf },
}

/// The deployment's webhook key.
pub struct WebhookKeys {
    key: [u8; 32],
}

impl std::fmt::Debug for WebhookKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookKeys(..)")
    }
}

impl WebhookKeys {
    /// Reads the key in `data_dir`, making it first if there is none.
    pub fn open(data_dir: &Path) -> Result<Self, KeyError> {
        let path = data_dir.join(WEBHOOK_KEY_FILE);
        let io = |source| KeyError::Io {
            path: path.clone(),
            source,
        };
        match std::fs::read(&path) {
            Ok(bytes) => {
                let key = <[u8; 32]>::try_from(bytes.as_slice())
                    .map_err(|_| KeyError::Malformed { path: path.clone() })?;
                Ok(Self { key })
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                rand::rng().fill_bytes(&mut key);
                let partial = data_dir.join(format!("{WEBHOOK_KEY_FILE}.partial"));
                write_private(&partial, &key).map_err(io)?;
                std::fs::rename(&partial, &path).map_err(io)?;
                Ok(Self { key })
            }
            Err(error) => Err(io(error)),
        }
    }

    /// A key for tests and benchmarks, not read from disk.
    pub fn from_bytes(key: [u8; 32]) -> Self {
        Self { key }
    }

    /// The secret of `webhook`'s generation `generation`.
    pub fn secret(&self, webhook: &WebhookId, generation: u32) -> [u8; 32] {
        // An HMAC accepts a key of any length: `new_from_slice` cannot fail here.
        let Ok(mut mac) = HmacSha256::new_from_slice(&self.key) else {
            return [0; 32];
        };
        mac.update(b"roster webhook secret");
        mac.update(webhook.as_bytes());
        mac.update(&generation.to_be_bytes());
        mac.finalize().into_bytes().into()
    }

    /// A 32-byte key for `purpose`, derived from the webhook key (the SSF access tokens' MAC
    /// key, the key sealing receivers' authorization headers): every process holding the key
    /// derives the same.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        let Ok(mut mac) = HmacSha256::new_from_slice(&self.key) else {
            return [0; 32];
        };
        mac.update(b"roster derived key\0");
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// The secret as Standard Webhooks writes it: `whsec_` and its base64.
    pub fn whsec(&self, webhook: &WebhookId, generation: u32) -> String {
        format!(
            "whsec_{}",
            base64::engine::general_purpose::STANDARD.encode(self.secret(webhook, generation))
        )
    }
}

/// Writes `bytes` to a new file readable by roster's user only, on disk when this returns.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// The Standard Webhooks signature of one delivery: `v1,` and the base64 HMAC-SHA256 of
/// `msg_id.timestamp.body` under `secret`.
pub fn sign(secret: &[u8; 32], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    let Ok(mut mac) = HmacSha256::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_made_once_and_secrets_follow_it() {
        let dir = tempfile::tempdir().unwrap();
        let first = WebhookKeys::open(dir.path()).unwrap();
        let again = WebhookKeys::open(dir.path()).unwrap();
        let id = WebhookId(uuid::Uuid::now_v7());
        assert_eq!(first.whsec(&id, 1), again.whsec(&id, 1));
        assert_ne!(first.whsec(&id, 1), first.whsec(&id, 2));
        assert!(first.whsec(&id, 1).starts_with("whsec_"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(WEBHOOK_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn a_signature_verifies_with_the_standard_webhooks_library() {
        let keys = WebhookKeys::from_bytes([7; 32]);
        let id = WebhookId(uuid::Uuid::now_v7());
        let body = br#"{"type":"user.deactivated"}"#;
        let timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
        let signature = sign(&keys.secret(&id, 1), "msg_1", timestamp, body);
        let verifier = standardwebhooks::Webhook::new(&keys.whsec(&id, 1)).unwrap();
        let mut headers = axum::http::HeaderMap::new();
        headers.insert("webhook-id", "msg_1".parse().unwrap());
        headers.insert("webhook-timestamp", timestamp.to_string().parse().unwrap());
        headers.insert("webhook-signature", signature.parse().unwrap());
        verifier.verify(body, &headers).unwrap();
        headers.insert("webhook-id", "msg_2".parse().unwrap());
        assert!(verifier.verify(body, &headers).is_err());
    }
}
