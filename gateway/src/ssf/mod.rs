//! The OpenID Shared Signals (SSF 1.0) transmitter: per tenant an issuer
//! `{public base URL}/ssf/{tenant}` with its metadata, its JWKS and the stream management API
//! ([`http`]), receivers authenticated by OAuth 2.0 client credentials ([`oauth`]), SETs built
//! from the tenant's events ([`set`]) and signed RS256 ([`keys`]), delivered by push (RFC 8935)
//! or poll (RFC 8936) ([`delivery`]). Which streams exist is the tenant record's (decided by the
//! engine); this module speaks the protocol.

pub mod delivery;
pub mod http;
pub mod keys;
pub mod oauth;
pub mod set;

use std::sync::OnceLock;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use roster_engine::domain::TenantName;

pub use keys::{SIGNING_KEYS_FILE, SigningKeys};

/// Associated data sealing receivers' authorization headers (a sealed value cannot be moved to
/// another purpose).
const SEAL_CONTEXT: &[u8] = b"roster ssf authorization_header v1";

/// What the transmitter holds: its signing keys, the key of its access tokens, the key sealing
/// receivers' secrets, and where it is reached.
pub struct Ssf {
    pub signing: SigningKeys,
    access_token_key: [u8; 32],
    seal_key: [u8; 32],
    /// The public base URL (`--public-url`, else the SCIM listener's address), set once bound.
    base: OnceLock<String>,
}

impl std::fmt::Debug for Ssf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ssf(..)")
    }
}

impl Ssf {
    /// `webhook_keys` gives the derived keys (the same on every process of a deployment).
    pub fn new(signing: SigningKeys, webhook_keys: &crate::webhooks::WebhookKeys) -> Self {
        Self {
            signing,
            access_token_key: webhook_keys.derive("ssf access token"),
            seal_key: webhook_keys.derive("ssf authorization header"),
            base: OnceLock::new(),
        }
    }

    /// Sets the public base URL (once; later calls change nothing).
    pub fn set_base(&self, base: &str) {
        let _ = self.base.set(base.trim_end_matches('/').to_owned());
    }

    pub fn base(&self) -> &str {
        self.base.get().map_or("http://localhost", String::as_str)
    }

    /// The issuer of `tenant`'s SETs: `{base}/ssf/{tenant}`.
    pub fn issuer(&self, tenant: &TenantName) -> String {
        format!("{}/ssf/{tenant}", self.base())
    }

    /// Seals a receiver's authorization header for the log: nonce ‖ XChaCha20-Poly1305.
    pub fn seal(&self, secret: &str) -> Vec<u8> {
        let cipher = XChaCha20Poly1305::new(&self.seal_key.into());
        let mut nonce = [0u8; 24];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = cipher.encrypt(
            &XNonce::from(nonce),
            Payload {
                msg: secret.as_bytes(),
                aad: SEAL_CONTEXT,
            },
        );
        match sealed {
            Ok(sealed) => {
                let mut out = nonce.to_vec();
                out.extend_from_slice(&sealed);
                out
            }
            // Encryption of a bounded header cannot fail (only inputs over 256 GiB do).
            Err(_) => Vec::new(),
        }
    }

    /// Opens what [`Self::seal`] sealed; `None` when it does not open (another deployment's key).
    pub fn open(&self, sealed: &[u8]) -> Option<String> {
        if sealed.len() < 24 {
            return None;
        }
        let (nonce, body) = sealed.split_at(24);
        let nonce = XNonce::try_from(nonce).ok()?;
        let cipher = XChaCha20Poly1305::new(&self.seal_key.into());
        let opened = cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: body,
                    aad: SEAL_CONTEXT,
                },
            )
            .ok()?;
        String::from_utf8(opened).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_header_opens_only_with_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let ssf = Ssf::new(
            SigningKeys::local(dir.path()),
            &crate::webhooks::WebhookKeys::from_bytes([3; 32]),
        );
        let sealed = ssf.seal("Bearer receiver-secret");
        assert!(!String::from_utf8_lossy(&sealed).contains("receiver-secret"));
        assert_eq!(ssf.open(&sealed).as_deref(), Some("Bearer receiver-secret"));
        let other = Ssf::new(
            SigningKeys::local(dir.path()),
            &crate::webhooks::WebhookKeys::from_bytes([4; 32]),
        );
        assert_eq!(other.open(&sealed), None);
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(ssf.open(&tampered), None);
    }
}
