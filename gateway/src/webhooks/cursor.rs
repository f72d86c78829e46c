//! Where each webhook's delivery stands, in the `webhooks.delivery` tree of roster's database:
//! the log sequence through which the tenant's events were delivered (or skipped by the filter),
//! counters, and the last failure. Written after every acknowledged delivery (the log's flush
//! makes it durable), so a restart resends at most the events after the last durable cursor:
//! at least once, never skipped.

use roster_engine::domain::{TenantName, WebhookId};
use serde::{Deserialize, Serialize};

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
    #[error("webhook delivery state of {0} is unreadable: {1}")]
    Corrupt(WebhookId, String),
}

/// The delivery states of every webhook this database delivers.
#[derive(Clone)]
pub struct Cursors {
    tree: roster_engine::sled::Tree,
}

fn key(tenant: &TenantName, webhook: &WebhookId) -> Vec<u8> {
    let mut key = tenant.as_str().as_bytes().to_vec();
    key.push(0);
    key.extend_from_slice(webhook.as_bytes());
    key
}

impl Cursors {
    pub fn open(db: &roster_engine::sled::Db) -> Result<Self, CursorError> {
        Ok(Self {
            tree: db.open_tree("webhooks.delivery")?,
        })
    }

    pub fn get(
        &self,
        tenant: &TenantName,
        webhook: &WebhookId,
    ) -> Result<Option<Delivery>, CursorError> {
        self.tree
            .get(key(tenant, webhook))?
            .map(|bytes| {
                serde_json::from_slice(&bytes)
                    .map_err(|error| CursorError::Corrupt(*webhook, error.to_string()))
            })
            .transpose()
    }

    pub fn put(
        &self,
        tenant: &TenantName,
        webhook: &WebhookId,
        delivery: &Delivery,
    ) -> Result<(), CursorError> {
        let bytes = serde_json::to_vec(delivery)
            .map_err(|error| CursorError::Corrupt(*webhook, error.to_string()))?;
        self.tree.insert(key(tenant, webhook), bytes)?;
        Ok(())
    }

    /// Starts a new webhook's delivery after `sequence` (the event that added it), unless it has
    /// started already.
    pub fn start_after(
        &self,
        tenant: &TenantName,
        webhook: &WebhookId,
        sequence: u64,
    ) -> Result<(), CursorError> {
        let bytes = serde_json::to_vec(&Delivery {
            delivered_through: sequence,
            ..Delivery::default()
        })
        .map_err(|error| CursorError::Corrupt(*webhook, error.to_string()))?;
        let _ =
            self.tree
                .compare_and_swap(key(tenant, webhook), None as Option<&[u8]>, Some(bytes))?;
        Ok(())
    }

    pub fn remove(&self, tenant: &TenantName, webhook: &WebhookId) -> Result<(), CursorError> {
        self.tree.remove(key(tenant, webhook))?;
        Ok(())
    }
}
