//! The audit trail: one record per lifecycle event, hash-chained per tenant so that altering,
//! removing or reordering a record is detected.
//!
//! A record says who (actor kind, token id or admin, display name), what (event type, target, and
//! the attributes that changed with their new values: never secrets or passwords), when
//! (`occurred_at`, `recorded_at`), where (source ip, user agent, request id) and the outcome.
//! `hash = SHA-256(prev_hash ‖ canonical record bytes)`, where the canonical bytes are the
//! record's JSON with `prev_hash` and `hash` empty, and the first record of a tenant chains from
//! 32 zero bytes.
//!
//! A staging branch's events (`acme~s3`) are recorded in their tenant's chain with the branch's
//! name as `tenant`, so the trail is one per tenant and staged changes stand out.
//!
//! Tree `view.audit`: `R tenant \0 sequence` → record JSON · `H tenant` → the chain's head
//! (sequence and hash) · `#checkpoint` → last event applied.

use std::collections::HashMap;

use roster_engine::domain::{Event, EventPayload, TenantName};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use sled::IVec;

use crate::runner::{Projection, ProjectionError};

/// The sled tree of the audit trail.
pub const AUDIT_TREE: &str = "view.audit";

const RECORD: u8 = b'R';
const HEAD: u8 = b'H';
const CHECKPOINT: &[u8] = b"#checkpoint";
const GENESIS: [u8; 32] = [0; 32];

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditActor {
    pub kind: String,
    pub id: String,
    pub display: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditSource {
    pub ip: String,
    pub user_agent: String,
    pub request_id: String,
}

/// One audit record. Field order is part of the canonical form: never reorder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub sequence: u64,
    pub event_id: String,
    pub tenant: String,
    pub event_type: String,
    pub target: String,
    pub actor: AuditActor,
    pub occurred_at: String,
    pub recorded_at: String,
    pub source: AuditSource,
    pub outcome: String,
    /// Attributes that changed, with their new values.
    pub changes: Map<String, Value>,
    pub prev_hash: String,
    pub hash: String,
}

impl AuditRecord {
    /// The bytes the hash covers.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut unhashed = self.clone();
        unhashed.prev_hash.clear();
        unhashed.hash.clear();
        // A record of strings, numbers and JSON values always serializes.
        serde_json::to_vec(&unhashed).unwrap_or_default()
    }

    /// `SHA-256(prev ‖ canonical bytes)`.
    pub fn compute_hash(&self, prev: &[u8; 32]) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(prev);
        hasher.update(self.canonical_bytes());
        hasher.finalize().into()
    }
}

/// Keys whose values are never recorded, at any depth.
fn is_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    key.contains("password") || key.contains("secret") || key.contains("sha256")
}

fn without_secrets(value: Value) -> Value {
    match value {
        Value::Object(fields) => Value::Object(
            fields
                .into_iter()
                .filter(|(key, _)| !is_secret(key))
                .map(|(key, value)| (key, without_secrets(value)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(without_secrets).collect()),
        other => other,
    }
}

/// The attributes an event changed, with their new values.
fn changes(payload: &EventPayload) -> Map<String, Value> {
    let mut changes = Map::new();
    let mut set = |key: &str, value: Value| {
        changes.insert(key.to_owned(), value);
    };
    match payload {
        EventPayload::TenantCreated { default_role } => set("defaultRole", json!(default_role)),
        EventPayload::TokenIssued {
            token_id,
            name,
            expires_at,
            ..
        } => {
            set("tokenId", json!(token_id.0));
            set("name", json!(name));
            set("expiresAt", json!(expires_at.map(|at| at.to_rfc3339())));
        }
        EventPayload::TokenRevoked { token_id } | EventPayload::TokenUsed { token_id } => {
            set("tokenId", json!(token_id.0));
        }
        EventPayload::TokenExpiryChanged {
            token_id,
            expires_at,
        } => {
            set("tokenId", json!(token_id.0));
            set("expiresAt", json!(expires_at.map(|at| at.to_rfc3339())));
        }
        EventPayload::TenantSettingsChanged { sso_enforced } => {
            if let Some(enforced) = sso_enforced {
                set("ssoEnforced", json!(enforced));
            }
        }
        EventPayload::UserProvisioned { profile, .. } => {
            set("userName", json!(profile.user_name));
            set("externalId", json!(profile.external_id));
            set("active", json!(profile.active));
            for (name, value) in &profile.attributes {
                set(name, value.clone());
            }
        }
        EventPayload::UserUpdated {
            user_name,
            external_id,
            changed_attributes,
            ..
        } => {
            if let Some(user_name) = user_name {
                set("userName", json!(user_name));
            }
            if let Some(external_id) = external_id {
                set("externalId", json!(external_id));
            }
            for (name, value) in changed_attributes {
                set(name, value.clone());
            }
        }
        EventPayload::UserDeactivated { user_name, .. } => {
            set("userName", json!(user_name));
            set("active", json!(false));
        }
        EventPayload::UserReactivated { user_name, .. } => {
            set("userName", json!(user_name));
            set("active", json!(true));
        }
        EventPayload::UserDeleted { user_name, .. } => set("userName", json!(user_name)),
        EventPayload::GroupCreated { profile, .. } => {
            set("displayName", json!(profile.display_name));
            set("externalId", json!(profile.external_id));
            for (name, value) in &profile.attributes {
                set(name, value.clone());
            }
        }
        EventPayload::GroupRenamed { display_name, .. } => set("displayName", json!(display_name)),
        EventPayload::GroupUpdated {
            external_id,
            changed_attributes,
            ..
        } => {
            if let Some(external_id) = external_id {
                set("externalId", json!(external_id));
            }
            for (name, value) in changed_attributes {
                set(name, value.clone());
            }
        }
        EventPayload::GroupMembersAdded { user_ids, .. } => {
            set(
                "membersAdded",
                json!(user_ids.iter().map(ToString::to_string).collect::<Vec<_>>()),
            );
        }
        EventPayload::GroupMembersRemoved { user_ids, .. } => {
            set(
                "membersRemoved",
                json!(user_ids.iter().map(ToString::to_string).collect::<Vec<_>>()),
            );
        }
        EventPayload::GroupDeleted { display_name, .. } => set("displayName", json!(display_name)),
        EventPayload::DefaultRoleSet { role } => set("defaultRole", json!(role)),
        EventPayload::RoleMappingSet { role, .. } => set("role", json!(role)),
        EventPayload::RoleMappingRemoved { .. } => set("role", Value::Null),
        EventPayload::ResourceGroupCreated { name, .. } => set("name", json!(name)),
        EventPayload::ResourceGroupDeleted { .. } => {}
        EventPayload::ResourceGroupLinked { group_id, role, .. }
        | EventPayload::ResourceGroupLinkRoleChanged { group_id, role, .. } => {
            set("group", json!(group_id.to_string()));
            set("role", json!(role));
        }
        EventPayload::ResourceGroupUnlinked { group_id, .. } => {
            set("group", json!(group_id.to_string()));
        }
        EventPayload::ResourceGroupMemberSet { user_id, role, .. } => {
            set("user", json!(user_id.to_string()));
            set("role", json!(role));
        }
        EventPayload::ResourceGroupMemberRemoved { user_id, .. } => {
            set("user", json!(user_id.to_string()));
        }
        EventPayload::TenantStaged { generation }
        | EventPayload::StagingPromoted { generation }
        | EventPayload::StagingDiscarded { generation } => {
            set("staging", json!(generation));
        }
        EventPayload::BranchOpened
        | EventPayload::BranchReady
        | EventPayload::BranchFrozen
        | EventPayload::BranchDropped => {}
        EventPayload::ClaimRoleMappingSet { claim, value, role } => {
            set("claim", json!(claim));
            set("value", json!(value));
            set("role", json!(role));
        }
        EventPayload::ClaimRoleMappingRemoved { claim, value } => {
            set("claim", json!(claim));
            set("value", json!(value));
            set("role", Value::Null);
        }
        EventPayload::UserSsoLinked { subject, .. } => set("ssoSubject", json!(subject)),
        EventPayload::UserClaimRoleChanged { claim_role, .. } => set(
            "claimRole",
            claim_role.as_ref().map_or(Value::Null, |granted| {
                json!({"role": granted.role, "claim": granted.claim, "value": granted.value})
            }),
        ),
    }
    match without_secrets(Value::Object(changes)) {
        Value::Object(changes) => changes,
        _ => Map::new(),
    }
}

/// The audit record of `event`, chained from `prev`.
pub fn record_of(event: &Event, prev: &[u8; 32]) -> AuditRecord {
    let mut record = AuditRecord {
        sequence: event.sequence,
        event_id: event.id.to_string(),
        tenant: event.tenant.to_string(),
        event_type: event.payload.event_type().to_owned(),
        target: event.payload.target(),
        actor: AuditActor {
            kind: event.actor.kind.as_str().to_owned(),
            id: event.actor.id.clone(),
            display: event.actor.display.clone(),
        },
        occurred_at: event.occurred_at.to_rfc3339(),
        recorded_at: event.recorded_at.to_rfc3339(),
        source: AuditSource {
            ip: event.source.ip.clone(),
            user_agent: event.source.user_agent.clone(),
            request_id: event.source.request_id.clone(),
        },
        outcome: "success".to_owned(),
        changes: changes(&event.payload),
        prev_hash: hex::encode(prev),
        hash: String::new(),
    };
    record.hash = hex::encode(record.compute_hash(prev));
    record
}

/// Why a chain does not verify, at which record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainBreak {
    /// The log sequence of the first record that does not verify (for a missing tail: the
    /// sequence the head names).
    pub sequence: u64,
    pub reason: String,
}

/// The outcome of recomputing a tenant's chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verification {
    pub records: u64,
    /// Hash of the last record (hex), the value to compare with a copy kept elsewhere.
    pub head: String,
    pub first_break: Option<ChainBreak>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Head {
    sequence: u64,
    hash: String,
}

/// The hash-chained audit trail.
#[derive(Clone)]
pub struct AuditTrail {
    tree: sled::Tree,
}

fn tenant_prefix(kind: u8, tenant: &TenantName) -> Vec<u8> {
    let mut key = vec![kind];
    key.extend_from_slice(tenant.as_str().as_bytes());
    key.push(0);
    key
}

fn record_key(tenant: &TenantName, sequence: u64) -> Vec<u8> {
    let mut key = tenant_prefix(RECORD, tenant);
    key.extend_from_slice(&sequence.to_be_bytes());
    key
}

fn hash_bytes(hex_hash: &str) -> Option<[u8; 32]> {
    hex::decode(hex_hash).ok()?.try_into().ok()
}

fn corrupt(key: &[u8], reason: impl ToString) -> ProjectionError {
    ProjectionError::Store(roster_engine::store::StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason: reason.to_string(),
    })
}

impl AuditTrail {
    pub fn open(db: &sled::Db) -> Result<Self, ProjectionError> {
        Ok(Self {
            tree: db.open_tree(AUDIT_TREE)?,
        })
    }

    /// The underlying tree (tests alter it to prove tampering is caught).
    pub fn tree(&self) -> &sled::Tree {
        &self.tree
    }

    fn head(&self, tenant: &TenantName) -> Result<Option<Head>, ProjectionError> {
        let key = tenant_prefix(HEAD, tenant);
        match self.tree.get(&key)? {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|error| corrupt(&key, error)),
            None => Ok(None),
        }
    }

    /// A tenant's records with `from <= sequence <= to`, in order, read lazily.
    pub fn records(
        &self,
        tenant: &TenantName,
        from: u64,
        to: u64,
    ) -> impl Iterator<Item = Result<AuditRecord, ProjectionError>> + use<> {
        self.tree
            .range(IVec::from(record_key(tenant, from))..=IVec::from(record_key(tenant, to)))
            .map(|entry| {
                let (key, value) = entry?;
                serde_json::from_slice(&value).map_err(|error| corrupt(&key, error))
            })
    }

    /// Recomputes a tenant's chain from its first record; stops at the first break.
    pub fn verify(&self, tenant: &TenantName) -> Result<Verification, ProjectionError> {
        let mut prev = GENESIS;
        let mut records = 0;
        let mut last_sequence = 0;
        let prefix = tenant_prefix(RECORD, tenant);
        for entry in self.tree.scan_prefix(&prefix) {
            let (key, value) = entry?;
            let sequence = key
                .get(prefix.len()..)
                .and_then(|bytes| <[u8; 8]>::try_from(bytes).ok())
                .map(u64::from_be_bytes)
                .unwrap_or(0);
            let broken = |reason: &str| Verification {
                records,
                head: hex::encode(prev),
                first_break: Some(ChainBreak {
                    sequence,
                    reason: reason.to_owned(),
                }),
            };
            let Ok(record) = serde_json::from_slice::<AuditRecord>(&value) else {
                return Ok(broken("the record is not readable"));
            };
            if record.sequence != sequence {
                return Ok(broken("the record was moved from another position"));
            }
            if record.prev_hash != hex::encode(prev) {
                return Ok(broken(
                    "prev_hash does not match the previous record: a record before it was removed, altered or reordered",
                ));
            }
            let computed = record.compute_hash(&prev);
            if hex::encode(computed) != record.hash {
                return Ok(broken(
                    "the record's content does not match its hash: it was altered",
                ));
            }
            prev = computed;
            records += 1;
            last_sequence = sequence;
        }
        if let Some(head) = self.head(tenant)?
            && (head.sequence != last_sequence || head.hash != hex::encode(prev))
        {
            return Ok(Verification {
                records,
                head: hex::encode(prev),
                first_break: Some(ChainBreak {
                    sequence: head.sequence,
                    reason: format!(
                        "the chain's head names record {} but the last record is {last_sequence}: records were removed from the end",
                        head.sequence
                    ),
                }),
            });
        }
        Ok(Verification {
            records,
            head: hex::encode(prev),
            first_break: None,
        })
    }
}

impl Projection for AuditTrail {
    fn name(&self) -> &'static str {
        "audit"
    }

    fn checkpoint(&self) -> Result<u64, ProjectionError> {
        Ok(self
            .tree
            .get(CHECKPOINT)?
            .and_then(|bytes| <[u8; 8]>::try_from(bytes.as_ref()).ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0))
    }

    fn apply(&self, events: &[Event]) -> Result<(), ProjectionError> {
        let mut heads: HashMap<TenantName, [u8; 32]> = HashMap::new();
        let mut batch = sled::Batch::default();
        for event in events {
            // A staging branch's events join its tenant's chain; their `tenant` names the branch.
            let chain = event.tenant.live();
            let prev = match heads.get(&chain) {
                Some(prev) => *prev,
                None => match self.head(&chain)? {
                    Some(head) => hash_bytes(&head.hash)
                        .ok_or_else(|| corrupt(&tenant_prefix(HEAD, &chain), "bad hash"))?,
                    None => GENESIS,
                },
            };
            let record = record_of(event, &prev);
            let hash = hash_bytes(&record.hash).unwrap_or(GENESIS);
            batch.insert(
                record_key(&chain, event.sequence),
                serde_json::to_vec(&record).unwrap_or_default(),
            );
            batch.insert(
                tenant_prefix(HEAD, &chain),
                serde_json::to_vec(&Head {
                    sequence: event.sequence,
                    hash: record.hash.clone(),
                })
                .unwrap_or_default(),
            );
            heads.insert(chain, hash);
        }
        if let Some(last) = events.last() {
            batch.insert(CHECKPOINT, last.sequence.to_be_bytes().as_slice());
        }
        self.tree.apply_batch(batch)?;
        Ok(())
    }

    fn reset(&self) -> Result<(), ProjectionError> {
        Ok(self.tree.clear()?)
    }
}
