//! The deployment's SET signing keys: RSA 2048-bit, RS256, made when first needed and kept. The
//! newest key signs; a rotation keeps the earlier ones published in the JWKS until their overlap
//! ends, so receivers verify SETs signed just before it. On the embedded log the keys are in
//! `<data-dir>/ssf-signing-keys.json` (mode 0600); on NATS in the `ROSTER_WEBHOOKS` key-value
//! bucket (entry `ssf-signing-keys`, written by compare-and-set), so every process signs with
//! the same key and publishes the same set; each reads the entry again every
//! [`SHARED_RELOAD`].
//!
//! Keys are made with the `rsa` crate and published with `jsonwebtoken`'s JWK types; SETs are
//! signed with `ring`, whose RSA is about ten times faster here than pure-Rust RSA (measured:
//! BENCHMARKS.md, "Shared Signals"): the JWS is `base64url(header).base64url(claims)` and the
//! RS256 signature over it (RFC 7515 §7.1), checked by `jsonwebtoken` in the tests.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::kv;
use base64::Engine as _;
use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs1::EncodeRsaPrivateKey;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The file holding the keys, inside the data directory.
pub const SIGNING_KEYS_FILE: &str = "ssf-signing-keys.json";
/// The keys' entry in the shared bucket.
const SHARED_ENTRY: &str = "ssf-signing-keys";
/// How often a process on NATS reads the keys again (a rotation made through another process).
const SHARED_RELOAD: Duration = Duration::from_secs(60);
/// RSA modulus size: the CAEP interoperability profile asks for at least 2048 bits.
const KEY_BITS: usize = 2048;
/// The JOSE `typ` of a SET (SSF 1.0 §"Security Event Token Profile").
pub const SET_TYP: &str = "secevent+jwt";

#[derive(Debug, thiserror::Error)]
pub enum SigningKeyError {
    #[error("cannot read or write the SSF signing keys {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the SSF signing keys are unreadable: {0}")]
    Corrupt(String),
    #[error("the SSF signing keys on JetStream: {0}")]
    Shared(String),
    #[error("making an RSA key: {0}")]
    Generate(String),
    #[error("signing: {0}")]
    Sign(String),
}

/// One key as stored.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct StoredKey {
    kid: String,
    /// PKCS#1 DER of the private key, base64.
    der: String,
    /// Unix seconds.
    created_at: i64,
    /// Set once a newer key signs: published until then (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    published_until: Option<i64>,
}

/// The keys as loaded: the one that signs (with its JOSE header, encoded once) and the set that
/// is published.
struct KeyRing {
    signing: ring::rsa::KeyPair,
    header: String,
    jwks: JwkSet,
}

enum Store {
    Local(PathBuf),
    Shared(Box<kv::Store>),
}

/// The signing keys; cheap to share.
pub struct SigningKeys {
    store: Store,
    ring: tokio::sync::Mutex<Option<(Arc<KeyRing>, Instant)>>,
}

impl std::fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKeys(..)")
    }
}

fn now_seconds() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// `rand`'s thread generator (a CSPRNG seeded from the OS) as the `rsa` crate's RNG.
struct ThreadRng(rand::rngs::ThreadRng);

impl rsa::rand_core::TryRng for ThreadRng {
    type Error = std::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok(rand::RngCore::next_u32(&mut self.0))
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        Ok(rand::RngCore::next_u64(&mut self.0))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        rand::RngCore::fill_bytes(&mut self.0, dst);
        Ok(())
    }
}

impl rsa::rand_core::TryCryptoRng for ThreadRng {}

/// A new 2048-bit key (a second or so).
fn generate() -> Result<StoredKey, SigningKeyError> {
    let key = rsa::PrivateKey::new(&mut ThreadRng(rand::rng()), KEY_BITS)
        .map_err(|error| SigningKeyError::Generate(error.to_string()))?;
    let der = key
        .to_pkcs1_der()
        .map_err(|error| SigningKeyError::Generate(error.to_string()))?;
    let der = der.as_bytes();
    // The kid names the key by its bytes: a new key never takes an old one's name.
    let kid = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&Sha256::digest(der)[..12]);
    Ok(StoredKey {
        kid,
        der: base64::engine::general_purpose::STANDARD.encode(der),
        created_at: now_seconds(),
        published_until: None,
    })
}

fn decode(bytes: &[u8]) -> Result<Vec<StoredKey>, SigningKeyError> {
    serde_json::from_slice(bytes).map_err(|error| SigningKeyError::Corrupt(error.to_string()))
}

fn encode(keys: &[StoredKey]) -> Result<Vec<u8>, SigningKeyError> {
    serde_json::to_vec(keys).map_err(|error| SigningKeyError::Corrupt(error.to_string()))
}

fn ring(keys: &[StoredKey]) -> Result<KeyRing, SigningKeyError> {
    let now = now_seconds();
    let mut published = Vec::new();
    let mut signing = None;
    for key in keys {
        if key.published_until.is_some_and(|until| until <= now) {
            continue;
        }
        let der = base64::engine::general_purpose::STANDARD
            .decode(&key.der)
            .map_err(|error| SigningKeyError::Corrupt(error.to_string()))?;
        let encoding = EncodingKey::from_rsa_der(&der);
        let mut jwk = Jwk::from_encoding_key(&encoding, Algorithm::RS256)
            .map_err(|error| SigningKeyError::Corrupt(error.to_string()))?;
        jwk.common.key_id = Some(key.kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        jwk.common.key_algorithm = Some(KeyAlgorithm::RS256);
        published.push(jwk);
        if key.published_until.is_none() && signing.is_none() {
            signing = Some((key.kid.clone(), der));
        }
    }
    let (kid, der) = signing.ok_or_else(|| SigningKeyError::Corrupt("no key signs".to_owned()))?;
    let signing = ring::rsa::KeyPair::from_der(&der)
        .map_err(|error| SigningKeyError::Corrupt(error.to_string()))?;
    let mut header = Header::new(Algorithm::RS256);
    header.typ = Some(SET_TYP.to_owned());
    header.kid = Some(kid);
    let header =
        serde_json::to_vec(&header).map_err(|error| SigningKeyError::Corrupt(error.to_string()))?;
    Ok(KeyRing {
        signing,
        header: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(header),
        jwks: JwkSet { keys: published },
    })
}

impl SigningKeys {
    /// The keys in `data_dir` (the embedded log).
    pub fn local(data_dir: &Path) -> Self {
        Self {
            store: Store::Local(data_dir.join(SIGNING_KEYS_FILE)),
            ring: tokio::sync::Mutex::default(),
        }
    }

    /// The keys in the shared bucket (NATS).
    pub fn shared(store: kv::Store) -> Self {
        Self {
            store: Store::Shared(Box::new(store)),
            ring: tokio::sync::Mutex::default(),
        }
    }

    /// Signs `claims` as a SET (`typ` `secevent+jwt`, RS256, with the key's `kid`): the JWS
    /// compact serialization.
    pub async fn sign(&self, claims: &impl Serialize) -> Result<String, SigningKeyError> {
        let ring = self.ring().await?;
        let claims =
            serde_json::to_vec(claims).map_err(|error| SigningKeyError::Sign(error.to_string()))?;
        let base64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut jws = String::with_capacity(ring.header.len() + claims.len() * 4 / 3 + 400);
        jws.push_str(&ring.header);
        jws.push('.');
        base64.encode_string(&claims, &mut jws);
        let mut signature = vec![0u8; ring.signing.public().modulus_len()];
        ring.signing
            .sign(
                &ring::signature::RSA_PKCS1_SHA256,
                &ring::rand::SystemRandom::new(),
                jws.as_bytes(),
                &mut signature,
            )
            .map_err(|_| SigningKeyError::Sign("RSA signing failed".to_owned()))?;
        jws.push('.');
        base64.encode_string(&signature, &mut jws);
        Ok(jws)
    }

    /// The published keys (RFC 7517 JWK Set).
    pub async fn jwks(&self) -> Result<JwkSet, SigningKeyError> {
        Ok(self.ring().await?.jwks.clone())
    }

    /// Makes a new key sign from now on; the earlier ones stay published for `overlap`.
    /// Returns the new key's id.
    pub async fn rotate(&self, overlap: Duration) -> Result<String, SigningKeyError> {
        let fresh = tokio::task::spawn_blocking(generate)
            .await
            .map_err(|error| SigningKeyError::Generate(error.to_string()))??;
        let kid = fresh.kid.clone();
        let mut cached = self.ring.lock().await;
        for _ in 0..5 {
            let (mut keys, revision) = self.load().await?;
            let until = now_seconds().saturating_add(overlap.as_secs() as i64);
            // Every earlier key goes within the overlap (a rotation after a leak, with no
            // overlap, unpublishes them all at once).
            for key in &mut keys {
                key.published_until = Some(key.published_until.map_or(until, |at| at.min(until)));
            }
            let now = now_seconds();
            keys.retain(|key| key.published_until.is_none_or(|until| until > now));
            keys.insert(0, fresh.clone());
            if self.save(&keys, revision).await? {
                *cached = Some((Arc::new(ring(&keys)?), Instant::now()));
                return Ok(kid);
            }
        }
        Err(SigningKeyError::Shared(
            "another process kept changing the keys; try again".to_owned(),
        ))
    }

    /// The keys, loaded (and made, the first time) when not loaded lately.
    async fn ring(&self) -> Result<Arc<KeyRing>, SigningKeyError> {
        let mut cached = self.ring.lock().await;
        if let Some((ring, loaded_at)) = cached.as_ref() {
            let fresh = match self.store {
                Store::Local(_) => true,
                Store::Shared(_) => loaded_at.elapsed() < SHARED_RELOAD,
            };
            if fresh {
                return Ok(Arc::clone(ring));
            }
        }
        let (mut keys, revision) = self.load().await?;
        if keys.is_empty() {
            let first = tokio::task::spawn_blocking(generate)
                .await
                .map_err(|error| SigningKeyError::Generate(error.to_string()))??;
            keys = vec![first];
            if !self.save(&keys, revision).await? {
                // Another process made the first key meanwhile: use it.
                keys = self.load().await?.0;
            }
        }
        let ring = Arc::new(ring(&keys)?);
        *cached = Some((Arc::clone(&ring), Instant::now()));
        Ok(ring)
    }

    /// The stored keys and, on NATS, the entry's revision (0: none).
    async fn load(&self) -> Result<(Vec<StoredKey>, u64), SigningKeyError> {
        match &self.store {
            Store::Local(path) => match std::fs::read(path) {
                Ok(bytes) => Ok((decode(&bytes)?, 0)),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok((Vec::new(), 0)),
                Err(source) => Err(SigningKeyError::Io {
                    path: path.clone(),
                    source,
                }),
            },
            Store::Shared(store) => match store
                .entry(SHARED_ENTRY)
                .await
                .map_err(|error| SigningKeyError::Shared(error.to_string()))?
            {
                Some(entry) if entry.operation == kv::Operation::Put => {
                    Ok((decode(&entry.value)?, entry.revision))
                }
                Some(entry) => Ok((Vec::new(), entry.revision)),
                None => Ok((Vec::new(), 0)),
            },
        }
    }

    /// Writes `keys`; on NATS only if the entry is still at `revision` (false otherwise).
    async fn save(&self, keys: &[StoredKey], revision: u64) -> Result<bool, SigningKeyError> {
        let bytes = encode(keys)?;
        match &self.store {
            Store::Local(path) => {
                let io = |source| SigningKeyError::Io {
                    path: path.clone(),
                    source,
                };
                let partial = path.with_extension("json.partial");
                crate::webhooks::keys::write_private(&partial, &bytes).map_err(io)?;
                std::fs::rename(&partial, path).map_err(io)?;
                Ok(true)
            }
            Store::Shared(store) => {
                let written = if revision == 0 {
                    store
                        .create(SHARED_ENTRY, bytes.into())
                        .await
                        .map(|_| ())
                        .map_err(|error| error.to_string())
                } else {
                    store
                        .update(SHARED_ENTRY, bytes.into(), revision)
                        .await
                        .map(|_| ())
                        .map_err(|error| error.to_string())
                };
                Ok(written.is_ok())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_key_is_made_once_kept_private_and_rotated_with_an_overlap() {
        let dir = tempfile::tempdir().unwrap();
        let keys = SigningKeys::local(dir.path());
        let set = keys.sign(&serde_json::json!({"iss": "x"})).await.unwrap();
        let first = keys.jwks().await.unwrap();
        assert_eq!(first.keys.len(), 1);
        let header = jsonwebtoken::decode_header(&set).unwrap();
        assert_eq!(header.typ.as_deref(), Some(SET_TYP));
        assert_eq!(header.alg, Algorithm::RS256);
        let kid = header.kid.unwrap();
        // The published key verifies what was signed.
        let key = jsonwebtoken::DecodingKey::from_jwk(first.find(&kid).unwrap()).unwrap();
        let mut validation = jsonwebtoken::Validation::new(Algorithm::RS256);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        jsonwebtoken::decode::<serde_json::Value>(&set, &key, &validation).unwrap();
        // Read again by another instance: the same key.
        let again = SigningKeys::local(dir.path());
        assert_eq!(
            again.jwks().await.unwrap().keys[0].common.key_id,
            Some(kid.clone())
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(SIGNING_KEYS_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let new_kid = keys.rotate(Duration::from_secs(3600)).await.unwrap();
        assert_ne!(new_kid, kid);
        let published = keys.jwks().await.unwrap();
        assert_eq!(published.keys.len(), 2);
        let signed = keys.sign(&serde_json::json!({})).await.unwrap();
        assert_eq!(
            jsonwebtoken::decode_header(&signed).unwrap().kid,
            Some(new_kid.clone())
        );
        // No overlap: the old key is gone at once.
        keys.rotate(Duration::ZERO).await.unwrap();
        assert_eq!(keys.jwks().await.unwrap().keys.len(), 1);
    }
}
