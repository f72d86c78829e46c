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
//! Tree `view.audit`, records packed in blocks so that a chunk of events costs a key per tenant,
//! not a key per record: `B tenant \0 first-sequence` → a block of up to [`BLOCK_RECORDS`] of the
//! tenant's consecutive records, each a big-endian `u32` length and the record's JSON · `H tenant`
//! → the chain's head (last sequence and hash, the block it sits in and how many records that
//! block holds) · `#checkpoint` → last event applied · `#layout` → [`LAYOUT`].
//!
//! A tenant's records fill its blocks in order, [`BLOCK_RECORDS`] to a block, a block's key being
//! its first record's sequence, so the blocks are the same whatever the chunks the events came
//! in (the property test holds the trail applied in chunks against the trail rebuilt at once). A
//! chunk rewrites the tenant's last block once. A tree of the previous layout (one `R` key per
//! record) is cleared when opened, and the runner rebuilds it from the log.

use std::collections::HashMap;

use roster_engine::domain::{Event, EventPayload, TenantName, UsernamePolicy};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use sled::IVec;

use crate::runner::{Projection, ProjectionError};

/// The sled tree of the audit trail.
pub const AUDIT_TREE: &str = "view.audit";

const BLOCK: u8 = b'B';
const HEAD: u8 = b'H';
const CHECKPOINT: &[u8] = b"#checkpoint";
const LAYOUT_KEY: &[u8] = b"#layout";
const GENESIS: [u8; 32] = [0; 32];

/// The layout this module writes: 2 = records packed in blocks (1 was a key per record).
pub const LAYOUT: u8 = 2;

/// How many records a block holds at most. Larger blocks mean fewer keys but a longer rewrite
/// of the last block per chunk (a record is ~0.5–1 KiB).
pub const BLOCK_RECORDS: usize = 64;

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
        EventPayload::TenantCreated {
            default_role,
            usernames,
        } => {
            set("defaultRole", json!(default_role));
            // Only when not the default: records of tenants created before policies stay as
            // they were (the chain hashes them).
            if *usernames != UsernamePolicy::Strict {
                set("usernames", json!(usernames));
            }
        }
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
        EventPayload::TenantSettingsChanged {
            sso_enforced,
            usernames,
        } => {
            if let Some(enforced) = sso_enforced {
                set("ssoEnforced", json!(enforced));
            }
            if let Some(policy) = usernames {
                set("usernames", json!(policy));
            }
        }
        EventPayload::UserProvisioned {
            profile, handle, ..
        } => {
            set("userName", json!(profile.user_name));
            // A handle differing from the userName (absent: the handle is the userName).
            if let Some(handle) = handle {
                set("handle", json!(handle));
            }
            set("externalId", json!(profile.external_id));
            set("active", json!(profile.active));
            for (name, value) in &profile.attributes {
                set(name, value.clone());
            }
        }
        EventPayload::UserUpdated {
            user_name,
            handle,
            external_id,
            changed_attributes,
            ..
        } => {
            if let Some(user_name) = user_name {
                set("userName", json!(user_name));
                if let Some(handle) = handle {
                    set("handle", json!(handle));
                }
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
        EventPayload::WebhookAdded {
            url,
            event_types,
            description,
            ..
        } => {
            set("url", json!(url));
            set("eventTypes", json!(event_types));
            if !description.is_empty() {
                set("description", json!(description));
            }
        }
        EventPayload::WebhookStatusChanged { status, reason, .. } => {
            set("status", json!(status.as_str()));
            set("reason", json!(reason));
        }
        EventPayload::WebhookSecretRotated {
            generation,
            previous_expires_at,
            ..
        } => {
            set("signingKeyGeneration", json!(generation));
            set(
                "previousKeyExpiresAt",
                json!(previous_expires_at.to_rfc3339()),
            );
        }
        EventPayload::WebhookRemoved { reason, .. } => set("reason", json!(reason)),
        EventPayload::SsfStreamCreated {
            receiver, config, ..
        } => {
            set("receiver", json!(receiver.0));
            ssf_config_changes(config, &mut set);
        }
        EventPayload::SsfStreamUpdated {
            config, receiver, ..
        } => {
            ssf_config_changes(config, &mut set);
            if let Some(receiver) = receiver {
                set("receiver", json!(receiver.0));
            }
        }
        EventPayload::SsfStreamStatusChanged {
            status,
            reason,
            by_receiver,
            ..
        } => {
            set("status", json!(status.as_str()));
            set("reason", json!(reason));
            set("byReceiver", json!(by_receiver));
        }
        EventPayload::SsfSubjectChanged {
            subject, removed, ..
        } => {
            set(
                "subject",
                serde_json::from_str(subject).unwrap_or_else(|_| json!(subject)),
            );
            set("removed", json!(removed));
        }
        EventPayload::SsfVerificationRequested { state, .. } => set("state", json!(state)),
        EventPayload::SsfStreamDeleted { reason, .. } => set("reason", json!(reason)),
    }
    match without_secrets(Value::Object(changes)) {
        Value::Object(changes) => changes,
        _ => Map::new(),
    }
}

/// A stream's configuration as the audit trail shows it: the push endpoint and whether an
/// authorization header was given (never the header, sealed or not).
fn ssf_config_changes(
    config: &roster_engine::domain::SsfStreamConfig,
    set: &mut impl FnMut(&str, Value),
) {
    match &config.delivery {
        roster_engine::domain::SsfDelivery::Push {
            endpoint_url,
            authorization_sealed,
        } => {
            set("delivery", json!("push"));
            set("endpointUrl", json!(endpoint_url));
            set(
                "authorizationHeader",
                json!(!authorization_sealed.is_empty()),
            );
        }
        roster_engine::domain::SsfDelivery::Poll => set("delivery", json!("poll")),
    }
    set("eventsRequested", json!(config.events_requested));
    if !config.description.is_empty() {
        set("description", json!(config.description));
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
    /// The first sequence of the block holding the last record.
    block: u64,
    /// How many records that block holds.
    records_in_block: usize,
}

/// The key of the block of `tenant`'s records that starts at `first_sequence`.
pub fn block_key(tenant: &TenantName, first_sequence: u64) -> Vec<u8> {
    let mut key = tenant_prefix(BLOCK, tenant);
    key.extend_from_slice(&first_sequence.to_be_bytes());
    key
}

/// Records' JSON as one block's bytes.
pub fn encode_block<'a>(records: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut block = Vec::new();
    for record in records {
        append_to_block(&mut block, record);
    }
    block
}

fn append_to_block(block: &mut Vec<u8>, record: &[u8]) {
    // A record is far below 4 GiB: the attribute limits bound an event's size.
    let length = u32::try_from(record.len()).unwrap_or(u32::MAX);
    block.extend_from_slice(&length.to_be_bytes());
    block.extend_from_slice(record);
}

/// The records' JSON in a block, in order; `None` when the block is not well formed.
pub fn decode_block(mut block: &[u8]) -> Option<Vec<&[u8]>> {
    let mut records = Vec::new();
    while !block.is_empty() {
        let (length, rest) = block.split_first_chunk::<4>()?;
        let length = usize::try_from(u32::from_be_bytes(*length)).ok()?;
        if rest.len() < length {
            return None;
        }
        let (record, rest) = rest.split_at(length);
        records.push(record);
        block = rest;
    }
    Some(records)
}

/// The sequence a block key starts at.
fn block_sequence(prefix_len: usize, key: &[u8]) -> u64 {
    key.get(prefix_len..)
        .and_then(|bytes| <[u8; 8]>::try_from(bytes).ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0)
}

/// A tenant's chain as a chunk extends it: its head and the bytes of its last block.
struct OpenChain {
    prev: [u8; 32],
    sequence: u64,
    block: u64,
    records_in_block: usize,
    bytes: Vec<u8>,
    /// Blocks this chunk filled and left, to write with the last one.
    full: Vec<(u64, Vec<u8>)>,
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
    /// Opens the trail; a trail of the previous layout is cleared, to be rebuilt from the log.
    pub fn open(db: &sled::Db) -> Result<Self, ProjectionError> {
        let tree = db.open_tree(AUDIT_TREE)?;
        match tree.get(LAYOUT_KEY)? {
            Some(layout) if layout.as_ref() == [LAYOUT] => {}
            Some(layout) => {
                return Err(corrupt(
                    LAYOUT_KEY,
                    format!(
                        "layout {layout:?} is not one this roster reads (it writes {LAYOUT}): was it written by a newer roster?"
                    ),
                ));
            }
            None => {
                if !tree.is_empty() {
                    tracing::warn!(
                        "the audit trail has the previous layout (a key per record): clearing it to rebuild it from the log"
                    );
                    tree.clear()?;
                }
                tree.insert(LAYOUT_KEY, &[LAYOUT])?;
            }
        }
        Ok(Self { tree })
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

    /// The key of the block that holds `tenant`'s record `sequence` if it exists: the last block
    /// starting at or before it (or the first block, when none does).
    fn block_from(&self, tenant: &TenantName, sequence: u64) -> Result<Vec<u8>, ProjectionError> {
        let first = block_key(tenant, 0);
        let holding = self
            .tree
            .range(IVec::from(first.clone())..=IVec::from(block_key(tenant, sequence)))
            .next_back()
            .transpose()?;
        Ok(holding.map_or(first, |(key, _)| key.to_vec()))
    }

    /// A tenant's records with `from <= sequence <= to`, in order, read lazily a block at a time.
    pub fn records(
        &self,
        tenant: &TenantName,
        from: u64,
        to: u64,
    ) -> impl Iterator<Item = Result<AuditRecord, ProjectionError>> + use<> {
        let start = match self.block_from(tenant, from) {
            Ok(start) => start,
            Err(error) => return Either::Failed(Some(error)),
        };
        let blocks = self
            .tree
            .range(IVec::from(start)..=IVec::from(block_key(tenant, to)));
        Either::Blocks(blocks.flat_map(move |entry| {
            let records: Vec<Result<AuditRecord, ProjectionError>> = match entry {
                Err(error) => vec![Err(error.into())],
                Ok((key, block)) => match decode_block(&block) {
                    None => vec![Err(corrupt(&key, "the block is not well formed"))],
                    Some(records) => records
                        .into_iter()
                        .map(|bytes| {
                            serde_json::from_slice::<AuditRecord>(bytes)
                                .map_err(|error| corrupt(&key, error))
                        })
                        .filter(|record| {
                            record
                                .as_ref()
                                .map_or(true, |record| (from..=to).contains(&record.sequence))
                        })
                        .collect(),
                },
            };
            records
        }))
    }

    /// Recomputes a tenant's chain from its first record; stops at the first break.
    pub fn verify(&self, tenant: &TenantName) -> Result<Verification, ProjectionError> {
        let mut prev = GENESIS;
        let mut records = 0;
        let mut last_sequence = 0;
        let prefix = tenant_prefix(BLOCK, tenant);
        for entry in self.tree.scan_prefix(&prefix) {
            let (key, block) = entry?;
            let block_start = block_sequence(prefix.len(), &key);
            let broken =
                |sequence: u64, prev: &[u8; 32], records: u64, reason: &str| Verification {
                    records,
                    head: hex::encode(prev),
                    first_break: Some(ChainBreak {
                        sequence,
                        reason: reason.to_owned(),
                    }),
                };
            let Some(in_block) = decode_block(&block) else {
                return Ok(broken(
                    block_start,
                    &prev,
                    records,
                    "the record is not readable",
                ));
            };
            for (position, bytes) in in_block.into_iter().enumerate() {
                let Ok(record) = serde_json::from_slice::<AuditRecord>(bytes) else {
                    let sequence = if position == 0 {
                        block_start
                    } else {
                        last_sequence + 1
                    };
                    return Ok(broken(
                        sequence,
                        &prev,
                        records,
                        "the record is not readable",
                    ));
                };
                let sequence = record.sequence;
                let in_place = if position == 0 {
                    sequence == block_start
                } else {
                    sequence > last_sequence
                };
                if !in_place {
                    return Ok(broken(
                        if position == 0 { block_start } else { sequence },
                        &prev,
                        records,
                        "the record was moved from another position",
                    ));
                }
                if record.prev_hash != hex::encode(prev) {
                    return Ok(broken(
                        sequence,
                        &prev,
                        records,
                        "prev_hash does not match the previous record: a record before it was removed, altered or reordered",
                    ));
                }
                let computed = record.compute_hash(&prev);
                if hex::encode(computed) != record.hash {
                    return Ok(broken(
                        sequence,
                        &prev,
                        records,
                        "the record's content does not match its hash: it was altered",
                    ));
                }
                prev = computed;
                records += 1;
                last_sequence = sequence;
            }
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

    /// The chain of `tenant` as a chunk starts extending it.
    fn open_chain(&self, tenant: &TenantName) -> Result<OpenChain, ProjectionError> {
        let Some(head) = self.head(tenant)? else {
            return Ok(OpenChain {
                prev: GENESIS,
                sequence: 0,
                block: 0,
                records_in_block: 0,
                bytes: Vec::new(),
                full: Vec::new(),
            });
        };
        let head_key = tenant_prefix(HEAD, tenant);
        let prev = hash_bytes(&head.hash).ok_or_else(|| corrupt(&head_key, "bad hash"))?;
        let bytes = if head.records_in_block < BLOCK_RECORDS {
            let key = block_key(tenant, head.block);
            self.tree
                .get(&key)?
                .ok_or_else(|| corrupt(&key, "the head's block is missing"))?
                .to_vec()
        } else {
            Vec::new()
        };
        Ok(OpenChain {
            prev,
            sequence: head.sequence,
            block: head.block,
            records_in_block: head.records_in_block,
            bytes,
            full: Vec::new(),
        })
    }
}

/// One of two iterators, so `records` can return either its blocks or a failure to find them.
enum Either<B> {
    Blocks(B),
    Failed(Option<ProjectionError>),
}

impl<B: Iterator<Item = Result<AuditRecord, ProjectionError>>> Iterator for Either<B> {
    type Item = Result<AuditRecord, ProjectionError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Either::Blocks(blocks) => blocks.next(),
            Either::Failed(error) => error.take().map(Err),
        }
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
        let mut chains: HashMap<TenantName, OpenChain> = HashMap::new();
        for event in events {
            // A staging branch's events join its tenant's chain; their `tenant` names the branch.
            let chain_name = event.tenant.live();
            let chain = match chains.entry(chain_name) {
                std::collections::hash_map::Entry::Occupied(open) => open.into_mut(),
                std::collections::hash_map::Entry::Vacant(vacant) => {
                    let open = self.open_chain(vacant.key())?;
                    vacant.insert(open)
                }
            };
            let record = record_of(event, &chain.prev);
            if chain.records_in_block == BLOCK_RECORDS || chain.sequence == 0 {
                let full = std::mem::take(&mut chain.bytes);
                // A block that was already full before this chunk was not read: nothing to write.
                if !full.is_empty() {
                    chain.full.push((chain.block, full));
                }
                chain.block = event.sequence;
                chain.records_in_block = 0;
            }
            append_to_block(
                &mut chain.bytes,
                &serde_json::to_vec(&record).unwrap_or_default(),
            );
            chain.records_in_block += 1;
            chain.sequence = event.sequence;
            chain.prev = hash_bytes(&record.hash).unwrap_or(GENESIS);
        }
        let mut batch = sled::Batch::default();
        for (tenant, chain) in chains {
            for (block, bytes) in chain.full {
                batch.insert(block_key(&tenant, block), bytes);
            }
            batch.insert(block_key(&tenant, chain.block), chain.bytes);
            batch.insert(
                tenant_prefix(HEAD, &tenant),
                serde_json::to_vec(&Head {
                    sequence: chain.sequence,
                    hash: hex::encode(chain.prev),
                    block: chain.block,
                    records_in_block: chain.records_in_block,
                })
                .unwrap_or_default(),
            );
        }
        if let Some(last) = events.last() {
            batch.insert(CHECKPOINT, last.sequence.to_be_bytes().as_slice());
        }
        self.tree.apply_batch(batch)?;
        Ok(())
    }

    fn reset(&self) -> Result<(), ProjectionError> {
        self.tree.clear()?;
        self.tree.insert(LAYOUT_KEY, &[LAYOUT])?;
        Ok(())
    }
}
