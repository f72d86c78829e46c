//! Where each webhook's delivery stands: the log sequence through which the tenant's events were
//! delivered (or skipped by the filter), counters, and the last failure. Written after every
//! acknowledged delivery, so a restart resends at most the events after the last durable cursor:
//! at least once, never skipped.
//!
//! On the embedded log the states are in the `webhooks.delivery` tree of roster's database (the
//! log's flush makes them durable), and this process delivers every webhook. On NATS JetStream
//! they are in the key-value bucket `ROSTER_WEBHOOKS`, shared by every process, each with a
//! *lease*: the process holding it delivers, renews it with every write and every
//! [`LEASE_RENEW`] while waiting, and writes only while its revision is current; a process that
//! stops releases it, and one that dies loses it after [`LEASE`], when another takes over from the
//! cursor. The same bucket holds the deployment's webhook key (`key`), so every process derives
//! the same secrets.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_nats::jetstream::kv;
use bytes::Bytes;
use roster_engine::domain::{TenantName, WebhookId};
use serde::{Deserialize, Serialize};

/// How long a lease lasts without renewal.
pub const LEASE: Duration = Duration::from_secs(30);
/// How often a waiting owner renews its lease.
pub const LEASE_RENEW: Duration = Duration::from_secs(10);
/// The shared bucket on JetStream.
pub const BUCKET: &str = "ROSTER_WEBHOOKS";
/// The webhook key's entry in the bucket.
const KEY_ENTRY: &str = "key";

/// One webhook's delivery state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// Every event of the tenant up to this sequence was delivered or is not selected.
    pub delivered_through: u64,
    #[serde(default)]
    pub delivered_total: u64,
    #[serde(default)]
    pub failed_attempts_total: u64,
    /// Failed attempts at the event now being delivered.
    #[serde(default)]
    pub attempts: u32,
    /// Unix microseconds of the next attempt, while waiting to retry.
    #[serde(default)]
    pub next_attempt_at: Option<i64>,
    #[serde(default)]
    pub last_failure: Option<Failure>,
    /// On JetStream: the process delivering, and until when (Unix microseconds, wall clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default)]
    pub lease_until: i64,
    /// SSF streams: whether the stream was disabled at `delivered_through` (events until it is
    /// enabled again are dropped, not held).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stream_disabled: bool,
    /// SSF streams: the subjects removed from the stream at `delivered_through` (SETs about them
    /// then are not sent, whatever the stream says later).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed_subjects: Vec<String>,
    /// SSF poll streams: the SETs handed out and not acknowledged yet, in order, signed (each
    /// poll sends them again, unchanged, until acknowledged).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<PendingSet>,
}

/// A SET handed to a polling receiver and not acknowledged yet.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PendingSet {
    pub jti: String,
    pub set: String,
}

/// A failed attempt.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    /// The receiver's HTTP status; 0 when it did not answer.
    pub status: u16,
    pub error: String,
    /// Unix microseconds.
    pub at: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum CursorError {
    #[error("webhook delivery state: {0}")]
    Storage(#[from] roster_engine::sled::Error),
    #[error("webhook delivery state on JetStream: {0}")]
    Shared(String),
    #[error("webhook delivery state of {0} is unreadable: {1}")]
    Corrupt(WebhookId, String),
    /// Another process took the webhook over (this one's lease lapsed).
    #[error("webhook {0} is delivered by another process now")]
    Lost(WebhookId),
}

fn now_micros() -> i64 {
    i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000).unwrap_or(0)
}

fn lease_micros() -> i64 {
    i64::try_from(LEASE.as_micros()).unwrap_or(i64::MAX)
}

fn decode(webhook: &WebhookId, bytes: &[u8]) -> Result<Delivery, CursorError> {
    serde_json::from_slice(bytes).map_err(|error| CursorError::Corrupt(*webhook, error.to_string()))
}

fn encode(webhook: &WebhookId, delivery: &Delivery) -> Result<Vec<u8>, CursorError> {
    serde_json::to_vec(delivery).map_err(|error| CursorError::Corrupt(*webhook, error.to_string()))
}

/// The delivery states, local or shared.
#[derive(Clone)]
pub enum Cursors {
    /// The embedded log's database: this process delivers every webhook.
    Local(roster_engine::sled::Tree),
    /// JetStream's key-value bucket, with leases.
    Shared(std::sync::Arc<Shared>),
}

/// The JetStream side: the bucket, who this process is, and the revision of each entry it owns.
pub struct Shared {
    store: kv::Store,
    process: String,
    /// The revision of each entry this process last wrote, and when.
    revisions: Mutex<HashMap<String, (u64, std::time::Instant)>>,
}

fn local_key(tenant: &TenantName, webhook: &WebhookId) -> Vec<u8> {
    let mut key = tenant.as_str().as_bytes().to_vec();
    key.push(0);
    key.extend_from_slice(webhook.as_bytes());
    key
}

fn shared_key(tenant: &TenantName, webhook: &WebhookId) -> String {
    format!("{tenant}.{webhook}")
}

fn nats_error(error: impl std::fmt::Display) -> CursorError {
    CursorError::Shared(error.to_string())
}

impl Cursors {
    pub fn open_local(db: &roster_engine::sled::Db) -> Result<Self, CursorError> {
        Ok(Cursors::Local(db.open_tree("webhooks.delivery")?))
    }

    /// Connects to the bucket on the NATS servers at `url` (comma-separated), creating it
    /// (with `replicas`) when missing.
    pub async fn open_shared(url: &str, replicas: usize) -> Result<Self, CursorError> {
        let servers: Vec<&str> = url
            .split(',')
            .map(str::trim)
            .filter(|server| !server.is_empty())
            .collect();
        let client = async_nats::ConnectOptions::new()
            .name("roster-webhooks")
            .connect(servers)
            .await
            .map_err(nats_error)?;
        let jetstream = async_nats::jetstream::new(client);
        let store = jetstream
            .create_or_update_key_value(kv::Config {
                bucket: BUCKET.to_owned(),
                description: "roster: webhook delivery cursors and leases, and the webhook key"
                    .to_owned(),
                history: 1,
                num_replicas: replicas.max(1),
                ..Default::default()
            })
            .await
            .map_err(nats_error)?;
        Ok(Cursors::Shared(std::sync::Arc::new(Shared {
            store,
            process: uuid::Uuid::now_v7().to_string(),
            revisions: Mutex::default(),
        })))
    }

    /// On JetStream: the deployment's webhook key, made by the first process that needs it.
    /// `None` on the embedded log (the key is a file in the data directory).
    pub async fn shared_key(&self) -> Result<Option<[u8; 32]>, CursorError> {
        let Cursors::Shared(shared) = self else {
            return Ok(None);
        };
        let mut fresh = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut fresh);
        // Only the first create wins; everyone reads what it wrote.
        let _ = shared
            .store
            .create(KEY_ENTRY, Bytes::copy_from_slice(&fresh))
            .await;
        let stored = shared
            .store
            .get(KEY_ENTRY)
            .await
            .map_err(nats_error)?
            .ok_or_else(|| CursorError::Shared("the webhook key is missing".to_owned()))?;
        let key = <[u8; 32]>::try_from(stored.as_ref())
            .map_err(|_| CursorError::Shared("the webhook key is not 32 bytes".to_owned()))?;
        Ok(Some(key))
    }

    pub async fn get(
        &self,
        tenant: &TenantName,
        webhook: &WebhookId,
    ) -> Result<Option<Delivery>, CursorError> {
        match self {
            Cursors::Local(tree) => tree
                .get(local_key(tenant, webhook))?
                .map(|bytes| decode(webhook, &bytes))
                .transpose(),
            Cursors::Shared(shared) => Ok(shared
                .entry(tenant, webhook)
                .await?
                .map(|(delivery, _)| delivery)),
        }
    }

    /// Records `delivery`; on JetStream only while this process holds the lease (renewed).
    pub async fn put(
        &self,
        tenant: &TenantName,
        webhook: &WebhookId,
        delivery: &Delivery,
    ) -> Result<(), CursorError> {
        match self {
            Cursors::Local(tree) => {
                tree.insert(local_key(tenant, webhook), encode(webhook, delivery)?)?;
                Ok(())
            }
            Cursors::Shared(shared) => shared.write_owned(tenant, webhook, delivery.clone()).await,
        }
    }

    /// Starts a new webhook's delivery after `sequence` (the event that added it), unless it has
    /// started already.
    pub async fn start_after(
        &self,
        tenant: &TenantName,
        webhook: &WebhookId,
        sequence: u64,
    ) -> Result<(), CursorError> {
        let start = encode(
            webhook,
            &Delivery {
                delivered_through: sequence,
                ..Delivery::default()
            },
        )?;
        match self {
            Cursors::Local(tree) => {
                let _ = tree.compare_and_swap(
                    local_key(tenant, webhook),
                    None as Option<&[u8]>,
                    Some(start),
                )?;
            }
            Cursors::Shared(shared) => {
                // Already there: someone started it.
                let _ = shared
                    .store
                    .create(shared_key(tenant, webhook), Bytes::from(start))
                    .await;
            }
        }
        Ok(())
    }

    pub async fn remove(
        &self,
        tenant: &TenantName,
        webhook: &WebhookId,
    ) -> Result<(), CursorError> {
        match self {
            Cursors::Local(tree) => {
                tree.remove(local_key(tenant, webhook))?;
            }
            Cursors::Shared(shared) => {
                let key = shared_key(tenant, webhook);
                shared.store.purge(&key).await.map_err(nats_error)?;
                if let Ok(mut revisions) = shared.revisions.lock() {
                    revisions.remove(&key);
                }
            }
        }
        Ok(())
    }

    /// Whether this process delivers `webhook` now: always on the embedded log; on JetStream
    /// when it holds the lease or takes a free or lapsed one (renewing it either way). `None`
    /// when the webhook has no delivery state yet.
    pub async fn claim(
        &self,
        tenant: &TenantName,
        webhook: &WebhookId,
    ) -> Result<Option<Delivery>, CursorError> {
        match self {
            Cursors::Local(_) => self.get(tenant, webhook).await,
            Cursors::Shared(shared) => shared.claim(tenant, webhook).await,
        }
    }

    /// Gives up the lease (at shutdown), so another process takes over at once.
    pub async fn release(&self, tenant: &TenantName, webhook: &WebhookId) {
        if let Cursors::Shared(shared) = self
            && let Ok(Some((mut delivery, _))) = shared.entry(tenant, webhook).await
            && delivery.owner.as_deref() == Some(shared.process.as_str())
        {
            delivery.lease_until = 0;
            delivery.owner = None;
            let _ = shared.write_owned(tenant, webhook, delivery).await;
        }
    }

    /// On JetStream, renews the lease unless this process wrote the entry within `fresh`;
    /// nothing on the embedded log.
    pub async fn renew_unless_fresh(
        &self,
        tenant: &TenantName,
        webhook: &WebhookId,
        delivery: &Delivery,
        fresh: Duration,
    ) -> Result<(), CursorError> {
        let Cursors::Shared(shared) = self else {
            return Ok(());
        };
        let written_at = shared.revisions.lock().ok().and_then(|revisions| {
            revisions
                .get(&shared_key(tenant, webhook))
                .map(|(_, at)| *at)
        });
        if written_at.is_some_and(|at| at.elapsed() < fresh) {
            return Ok(());
        }
        shared.write_owned(tenant, webhook, delivery.clone()).await
    }

    /// The state and its revision, read without claiming a lease (polled streams: any process
    /// answers a poll). The revision is 0 on the embedded log.
    pub async fn get_versioned(
        &self,
        tenant: &TenantName,
        id: &WebhookId,
    ) -> Result<Option<(Delivery, u64)>, CursorError> {
        match self {
            Cursors::Local(_) => Ok(self.get(tenant, id).await?.map(|delivery| (delivery, 0))),
            Cursors::Shared(shared) => shared.entry(tenant, id).await,
        }
    }

    /// Writes `delivery` if the state is still at `revision` (on JetStream; the embedded log's
    /// caller serializes its writers). False when another process wrote it meanwhile.
    pub async fn put_versioned(
        &self,
        tenant: &TenantName,
        id: &WebhookId,
        delivery: &Delivery,
        revision: u64,
    ) -> Result<bool, CursorError> {
        match self {
            Cursors::Local(tree) => {
                tree.insert(local_key(tenant, id), encode(id, delivery)?)?;
                Ok(true)
            }
            Cursors::Shared(shared) => {
                let bytes = Bytes::from(encode(id, delivery)?);
                let key = shared_key(tenant, id);
                let written = if revision == 0 {
                    shared.store.create(&key, bytes).await.map_err(|error| {
                        (
                            error.kind() == kv::CreateErrorKind::AlreadyExists,
                            error.to_string(),
                        )
                    })
                } else {
                    shared
                        .store
                        .update(&key, bytes, revision)
                        .await
                        .map_err(|error| {
                            (
                                error.kind() == kv::UpdateErrorKind::WrongLastRevision,
                                error.to_string(),
                            )
                        })
                };
                match written {
                    Ok(_) => Ok(true),
                    Err((true, _)) => Ok(false),
                    Err((false, error)) => Err(CursorError::Shared(error)),
                }
            }
        }
    }

    /// On JetStream, the bucket (other deployment-wide entries live beside the cursors: the SSF
    /// signing keys).
    pub fn shared_store(&self) -> Option<&kv::Store> {
        match self {
            Cursors::Local(_) => None,
            Cursors::Shared(shared) => Some(&shared.store),
        }
    }

    /// Whether this process shares delivery with others (JetStream).
    pub fn is_shared(&self) -> bool {
        matches!(self, Cursors::Shared(_))
    }
}

/// A refused compare-and-set means another process wrote the entry: the lease is lost. Anything
/// else (NATS unreachable, a timeout) is trouble to retry with the lease still held.
fn lost_or_shared(webhook: WebhookId, error: &kv::UpdateError) -> CursorError {
    match error.kind() {
        kv::UpdateErrorKind::WrongLastRevision => CursorError::Lost(webhook),
        _ => nats_error(error),
    }
}

impl Shared {
    async fn entry(
        &self,
        tenant: &TenantName,
        webhook: &WebhookId,
    ) -> Result<Option<(Delivery, u64)>, CursorError> {
        let entry = self
            .store
            .entry(shared_key(tenant, webhook))
            .await
            .map_err(nats_error)?;
        match entry {
            Some(entry) if entry.operation == kv::Operation::Put => {
                Ok(Some((decode(webhook, &entry.value)?, entry.revision)))
            }
            _ => Ok(None),
        }
    }

    async fn claim(
        &self,
        tenant: &TenantName,
        webhook: &WebhookId,
    ) -> Result<Option<Delivery>, CursorError> {
        let Some((mut delivery, revision)) = self.entry(tenant, webhook).await? else {
            return Ok(None);
        };
        let mine = delivery.owner.as_deref() == Some(self.process.as_str());
        if !mine && delivery.lease_until > now_micros() {
            return Err(CursorError::Lost(*webhook));
        }
        delivery.owner = Some(self.process.clone());
        delivery.lease_until = now_micros().saturating_add(lease_micros());
        let key = shared_key(tenant, webhook);
        let written = self
            .store
            .update(&key, Bytes::from(encode(webhook, &delivery)?), revision)
            .await
            .map_err(|error| lost_or_shared(*webhook, &error))?;
        if let Ok(mut revisions) = self.revisions.lock() {
            revisions.insert(key, (written, std::time::Instant::now()));
        }
        Ok(Some(delivery))
    }

    /// Writes `delivery` over the revision this process last wrote, renewing its lease.
    async fn write_owned(
        &self,
        tenant: &TenantName,
        webhook: &WebhookId,
        mut delivery: Delivery,
    ) -> Result<(), CursorError> {
        let key = shared_key(tenant, webhook);
        let revision = self
            .revisions
            .lock()
            .ok()
            .and_then(|revisions| revisions.get(&key).map(|(revision, _)| *revision))
            .ok_or(CursorError::Lost(*webhook))?;
        if delivery.owner.is_some() || delivery.lease_until != 0 {
            delivery.owner = Some(self.process.clone());
            delivery.lease_until = now_micros().saturating_add(lease_micros());
        }
        let written = self
            .store
            .update(&key, Bytes::from(encode(webhook, &delivery)?), revision)
            .await;
        let mut revisions = self
            .revisions
            .lock()
            .map_err(|_| CursorError::Lost(*webhook))?;
        match written {
            Ok(written) => {
                revisions.insert(key, (written, std::time::Instant::now()));
                Ok(())
            }
            Err(error) => {
                let error = lost_or_shared(*webhook, &error);
                if matches!(error, CursorError::Lost(_)) {
                    revisions.remove(&key);
                }
                Err(error)
            }
        }
    }
}
