//! The state store: tenants' directory state materialized in one sled tree, with checkpoints.
//!
//! The engine keeps its aggregate in one (tree `aggregate`); projectors may keep a copy for reads.
//! Both are caches of the log: a store's checkpoint says which log sequence it reflects, and
//! the checkpoint is written in the same atomic sled batch as the changes it covers.
//!
//! Key layout (one tree; `tenant` never contains a NUL byte; ids are 16 raw bytes):
//! `T tenant` → tenant record · `K tenant \0 token-id` → token · `U tenant \0 user` → user ·
//! `N tenant \0 folded-userName` → user · `E tenant \0 externalId \0 user` → nothing (users may
//! share an externalId: RFC 7643 §3.1; the id is exactly the 16 bytes after the prefix, so a scan
//! for `ab` never returns a holder of `ab\0…` or `abc`) ·
//! `G tenant \0 group` → group record · `D tenant \0 folded-displayName` → group ·
//! `M tenant \0 group user` and `R tenant \0 user group` → membership edge (both directions) ·
//! `P tenant \0 group` → mapped org role · `Q tenant \0 resource-group` → resource group record ·
//! `W tenant \0 folded-name` → resource group · `L tenant \0 group resource-group` → link role ·
//! `V tenant \0 resource-group user` and `Z tenant \0 user resource-group` → manual member role ·
//! `S tenant \0 sso-subject` → user · `H tenant \0 folded-handle` → user (only handles that
//! differ from the userName) ·
//! `I token-id` → owning tenant ·
//! `C tenant` → the tenant's last applied sequence · `#checkpoint` → last applied sequence.
//!
//! Earlier rosters kept externalIds unique, one-to-one: `X tenant \0 externalId` → user. Opening
//! a store that still holds `X` keys migrates it in one atomic batch ([`migrate_external_ids`]):
//! the `E` keys are built from the user records and the `X` keys removed. The records are what
//! the checkpoint covers, so the migrated store is still "the log up to its checkpoint".

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use sled::IVec;
use thiserror::Error;

use crate::changes::{Changes, Sink, prefix_end};
use crate::domain::{
    Command, Event, Footprint, GroupId, GroupRecord, ResourceGroupId, ResourceGroupRecord, Role,
    State, TenantName, TenantRecord, TokenId, TokenRecord, Touched, UserId, UserRecord, apply,
};
use crate::resident::{PersistPolicy, Resident, ResidentError};

const TENANT: u8 = b'T';
const TOKEN: u8 = b'K';
const USER: u8 = b'U';
const USER_NAME: u8 = b'N';
/// externalId → its holders, one key per (externalId, user).
const USER_EXTERNAL_ID: u8 = b'E';
/// The one-to-one externalId index of earlier rosters, migrated at open.
const OLD_USER_EXTERNAL_ID: u8 = b'X';
const USER_SUBJECT: u8 = b'S';
const USER_HANDLE: u8 = b'H';
const GROUP: u8 = b'G';
const GROUP_NAME: u8 = b'D';
const MEMBER: u8 = b'M';
const MEMBER_OF: u8 = b'R';
const ROLE_MAPPING: u8 = b'P';
const RESOURCE_GROUP: u8 = b'Q';
const RESOURCE_GROUP_NAME: u8 = b'W';
const LINK: u8 = b'L';
const RESOURCE_GROUP_MEMBER: u8 = b'V';
const RESOURCE_GROUP_MEMBER_OF: u8 = b'Z';
/// Token id → owning tenant (not tenant-scoped: tells edges whose token a bearer is).
const TOKEN_OWNER: u8 = b'I';
const TENANT_CHECKPOINT: u8 = b'C';
const CHECKPOINT: &[u8] = b"#checkpoint";

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("storage error: {0}")]
    Sled(#[from] sled::Error),
    #[error("{0}")]
    Unsupported(String),
    #[error("corrupt record under key {key:?}: {reason}")]
    Corrupt { key: String, reason: String },
    #[error(transparent)]
    Resident(#[from] ResidentError),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// The records an event is about, as they were before it.
#[derive(Debug, Default)]
pub struct Before {
    pub user: Option<UserRecord>,
    pub group: Option<GroupRecord>,
}

/// Loads into `map` every key of `keys` it does not hold yet. Held entries are newer than the
/// store (changed by `apply` and not yet written back) and are kept.
fn load_missing<K: Ord + Clone, V>(
    map: &mut BTreeMap<K, V>,
    keys: &[K],
    mut load: impl FnMut(&K) -> StoreResult<V>,
) -> StoreResult<()> {
    for key in keys {
        if let std::collections::btree_map::Entry::Vacant(entry) = map.entry(key.clone()) {
            let value = load(entry.key())?;
            entry.insert(value);
        }
    }
    Ok(())
}

/// A tenant's directory state in one sled tree, written key by key ([`StateStore::open`]) or held
/// in memory as packed blocks ([`StateStore::open_resident`]).
#[derive(Clone, Debug)]
pub struct StateStore {
    tree: sled::Tree,
    backend: Backend,
}

/// Where a store's entries are read and written.
#[derive(Clone, Debug)]
enum Backend {
    /// The sled tree itself.
    Direct,
    /// Every entry in memory, persisted to the tree in packed blocks now and then.
    Resident(Arc<Resident>),
}

/// Entries of a scan, from the tree or a resident tree's blocks.
pub type Entries = Box<dyn DoubleEndedIterator<Item = Result<(IVec, IVec), sled::Error>> + Send>;

fn tenant_key(kind: u8, tenant: &TenantName) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + tenant.as_str().len());
    key.push(kind);
    key.extend_from_slice(tenant.as_str().as_bytes());
    key
}

fn key(kind: u8, tenant: &TenantName, rest: &[u8]) -> Vec<u8> {
    let mut key = tenant_key(kind, tenant);
    key.push(0);
    key.extend_from_slice(rest);
    key
}

/// `E tenant \0 externalId \0`: the prefix of every holder of `external_id`.
fn external_id_prefix(tenant: &[u8], external_id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(3 + tenant.len() + external_id.len() + 16);
    key.push(USER_EXTERNAL_ID);
    key.extend_from_slice(tenant);
    key.push(0);
    key.extend_from_slice(external_id.as_bytes());
    key.push(0);
    key
}

/// `E tenant \0 externalId \0 user`.
fn external_id_key(tenant: &[u8], external_id: &str, user: &UserId) -> Vec<u8> {
    let mut key = external_id_prefix(tenant, external_id);
    key.extend_from_slice(user.as_bytes());
    key
}

/// Rewrites the one-to-one externalId index of earlier rosters (`X tenant \0 externalId` →
/// user) as the one-to-many index (`E`), from the user records, in one atomic batch. Does
/// nothing when no `X` key is left. Runs before anything else reads or writes the tree.
fn migrate_external_ids(tree: &sled::Tree) -> StoreResult<()> {
    if tree.scan_prefix([OLD_USER_EXTERNAL_ID]).next().is_none() {
        return Ok(());
    }
    let mut batch = sled::Batch::default();
    let mut old = 0usize;
    for entry in tree.scan_prefix([OLD_USER_EXTERNAL_ID]) {
        let (key, _) = entry?;
        batch.remove(key);
        old += 1;
    }
    let mut migrated = 0usize;
    for entry in tree.scan_prefix([USER]) {
        let (key, value) = entry?;
        // `U tenant \0 user`: the tenant is everything up to the NUL (never inside a name).
        let Some(end) = key.iter().position(|byte| *byte == 0) else {
            continue;
        };
        let record: UserRecord = decode(&key, &value)?;
        if let Some(external_id) = &record.profile.external_id {
            batch.insert(external_id_key(&key[1..end], external_id, &record.id), &[]);
            migrated += 1;
        }
    }
    tree.apply_batch(batch)?;
    tracing::info!(
        tree = %String::from_utf8_lossy(&tree.name()),
        old,
        migrated,
        "externalId index migrated to the one-to-many layout (externalIds need not be unique)"
    );
    Ok(())
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing plain records with string keys to JSON cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

fn decode<T: DeserializeOwned>(key: &[u8], bytes: &[u8]) -> StoreResult<T> {
    serde_json::from_slice(bytes).map_err(|error| StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason: error.to_string(),
    })
}

fn decode_id(key: &[u8], bytes: &[u8]) -> StoreResult<UserId> {
    UserId::from_slice(bytes).ok_or_else(|| StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason: "not a 16-byte id".to_owned(),
    })
}

fn pair(first: &[u8; 16], second: &[u8; 16]) -> [u8; 32] {
    let mut bytes = [0; 32];
    bytes[..16].copy_from_slice(first);
    bytes[16..].copy_from_slice(second);
    bytes
}

/// An index entry's value: the id it points to.
fn id_value(id: impl AsRef<[u8]>) -> Vec<u8> {
    id.as_ref().to_vec()
}

fn role_bytes(role: Role) -> &'static [u8] {
    role.as_str().as_bytes()
}

fn decode_role(key: &[u8], bytes: &[u8]) -> StoreResult<Role> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| StoreError::Corrupt {
            key: String::from_utf8_lossy(key).into_owned(),
            reason: "not a role".to_owned(),
        })
}

/// The 16-byte id that ends `key`.
fn trailing_id(key: &[u8]) -> Option<[u8; 16]> {
    key.len()
        .checked_sub(16)
        .and_then(|start| key[start..].try_into().ok())
}

/// Two 16-byte ids, one after the other.
fn id_pair(bytes: &[u8]) -> Option<(uuid::Uuid, uuid::Uuid)> {
    let first: [u8; 16] = bytes.get(..16)?.try_into().ok()?;
    let second: [u8; 16] = bytes.get(16..32)?.try_into().ok()?;
    Some((
        uuid::Uuid::from_bytes(first),
        uuid::Uuid::from_bytes(second),
    ))
}

fn decode_u64(bytes: &[u8]) -> u64 {
    bytes.try_into().map(u64::from_be_bytes).unwrap_or(0)
}

impl StateStore {
    /// Opens the store in `tree`, migrating an index of an earlier layout first (see the module
    /// documentation).
    pub fn open(db: &sled::Db, tree: &str) -> StoreResult<Self> {
        let tree = db.open_tree(tree)?;
        migrate_external_ids(&tree)?;
        Ok(Self {
            tree,
            backend: Backend::Direct,
        })
    }

    /// Opens the store held whole in memory ([`Resident`]): reads and writes never touch sled;
    /// [`Self::persist_if_due`] and [`Self::stop`] write what changed, in packed blocks. A tree
    /// in the per-key layout is cleared (it is a cache of the log: its owner rebuilds it).
    pub fn open_resident(db: &sled::Db, tree: &str, policy: PersistPolicy) -> StoreResult<Self> {
        let tree = db.open_tree(tree)?;
        let resident = Resident::open(tree.clone(), policy)?;
        Ok(Self {
            tree,
            backend: Backend::Resident(resident),
        })
    }

    fn raw_get(&self, key: &[u8]) -> Result<Option<IVec>, sled::Error> {
        match &self.backend {
            Backend::Direct => self.tree.get(key),
            Backend::Resident(resident) => Ok(resident.get(key)?),
        }
    }

    fn raw_range_from(&self, start: &[u8]) -> Entries {
        self.entries(start, None)
    }

    /// Entries from `start` (inclusive) to `end` (exclusive; `None`: to the end), in key order
    /// from either end: the raw key space, for views that keep their own keys beside the state.
    pub fn entries(&self, start: &[u8], end: Option<&[u8]>) -> Entries {
        match &self.backend {
            Backend::Direct => match end {
                Some(end) => Box::new(self.tree.range(IVec::from(start)..IVec::from(end))),
                None => Box::new(self.tree.range(IVec::from(start)..)),
            },
            Backend::Resident(resident) => Box::new(resident.range(start, end)),
        }
    }

    /// Entries whose keys start with `prefix`, in key order from either end.
    pub fn scan_prefix(&self, prefix: impl AsRef<[u8]>) -> Entries {
        let prefix = prefix.as_ref();
        let end = prefix_end(prefix);
        self.entries(prefix, end.as_deref())
    }

    /// Persists a resident store's changes when they are due (see [`PersistPolicy`]); a no-op
    /// for the other backends.
    pub fn persist_if_due(&self) -> StoreResult<()> {
        match &self.backend {
            Backend::Resident(resident) => Ok(resident.persist_if_due()?),
            _ => Ok(()),
        }
    }

    fn get<T: DeserializeOwned>(&self, key: &[u8]) -> StoreResult<Option<T>> {
        self.raw_get(key)?
            .map(|bytes| decode(key, &bytes))
            .transpose()
    }

    fn get_id(&self, key: &[u8]) -> StoreResult<Option<UserId>> {
        self.raw_get(key)?
            .map(|bytes| decode_id(key, &bytes))
            .transpose()
    }

    // ---- slices for decide/apply ----------------------------------------------------------

    /// A slice of `tenant` holding its tenant record; load more with [`Self::load_into`].
    pub fn slice(&self, tenant: &TenantName) -> StoreResult<State> {
        let mut state = State::new(tenant.clone());
        state.tenant = self.tenant(tenant)?;
        Ok(state)
    }

    /// Loads every entry of `footprint` that `state` does not hold yet. Entries already present
    /// are newer than the store (changed by `apply` and not written back) and are kept.
    pub fn load_into(&self, state: &mut State, footprint: &Footprint) -> StoreResult<()> {
        if state.loaded.dropped {
            // Everything the store holds for the tenant is gone in this slice.
            return Ok(());
        }
        if footprint.whole_tenant && !state.loaded.whole_tenant {
            self.load_whole(state)?;
        }
        let tenant = state.name.clone();
        let tenant = &tenant;
        if footprint.all_tokens && !state.loaded.all_tokens {
            state.loaded.all_tokens = true;
            for token in self.tokens(tenant)? {
                state.tokens.entry(token.id.clone()).or_insert(Some(token));
            }
        }
        load_missing(&mut state.tokens, &footprint.tokens, |id| {
            self.token(tenant, id)
        })?;
        load_missing(&mut state.users, &footprint.users, |id| {
            self.user(tenant, id)
        })?;
        load_missing(&mut state.user_names, &footprint.user_names, |name| {
            self.user_id_by_name(tenant, name)
        })?;
        for external_id in &footprint.user_external_ids {
            if !state.loaded.whole_tenant
                && state.loaded.user_external_ids.insert(external_id.clone())
            {
                for user in self.user_ids_by_external_id(tenant, external_id)? {
                    state.know_user_external_id(external_id, user, true);
                }
            }
        }
        load_missing(
            &mut state.user_subjects,
            &footprint.user_subjects,
            |subject| self.user_id_by_subject(tenant, subject),
        )?;
        load_missing(&mut state.user_handles, &footprint.user_handles, |handle| {
            self.user_id_by_derived_handle(tenant, handle)
        })?;
        load_missing(&mut state.groups, &footprint.groups, |id| {
            self.group(tenant, id)
        })?;
        load_missing(&mut state.group_names, &footprint.group_names, |name| {
            self.group_id_by_name(tenant, name)
        })?;
        load_missing(
            &mut state.memberships,
            &footprint.memberships,
            |(group, user)| self.is_member(tenant, group, user),
        )?;
        for user in &footprint.groups_of_users {
            if state.loaded.groups_of_users.insert(*user) {
                for group in self.groups_of_user(tenant, user)? {
                    state.know_membership(group, *user, true);
                }
            }
        }
        for group in &footprint.members_of_groups {
            if state.loaded.members_of_groups.insert(*group) {
                for user in self.members_of_group(tenant, group, None, usize::MAX)? {
                    state.know_membership(*group, user, true);
                }
            }
        }
        load_missing(
            &mut state.role_mappings,
            &footprint.role_mappings,
            |group| self.role_mapping(tenant, group),
        )?;
        load_missing(
            &mut state.resource_groups,
            &footprint.resource_groups,
            |id| self.resource_group(tenant, id),
        )?;
        load_missing(
            &mut state.resource_group_names,
            &footprint.resource_group_names,
            |name| self.resource_group_id_by_name(tenant, name),
        )?;
        for group in &footprint.links_of_groups {
            if state.loaded.links_of_groups.insert(*group) {
                for (resource_group, role) in self.links_of_group(tenant, group)? {
                    state
                        .group_links
                        .entry((*group, resource_group))
                        .or_insert(Some(role));
                    self.load_resource_group(state, tenant, &resource_group)?;
                }
            }
        }
        for (resource_group, user) in &footprint.resource_group_members {
            if !state
                .resource_group_members
                .contains_key(&(*resource_group, *user))
            {
                let role = self.resource_group_member(tenant, resource_group, user)?;
                state.know_resource_group_member(*resource_group, *user, role);
            }
        }
        for user in &footprint.resource_groups_of_users {
            if state.loaded.resource_groups_of_users.insert(*user) {
                for (resource_group, role) in self.resource_groups_of_user(tenant, user)? {
                    state.know_resource_group_member(resource_group, *user, Some(role));
                    self.load_resource_group(state, tenant, &resource_group)?;
                }
            }
        }
        for resource_group in &footprint.members_of_resource_groups {
            if state
                .loaded
                .members_of_resource_groups
                .insert(*resource_group)
            {
                for (user, role) in self.members_of_resource_group(tenant, resource_group)? {
                    state.know_resource_group_member(*resource_group, user, Some(role));
                }
            }
        }
        Ok(())
    }

    /// Loads everything the store holds for the slice's tenant (tokens aside), keeping entries
    /// the slice already holds: proportional to the tenant's size, for promotions and diffs.
    fn load_whole(&self, state: &mut State) -> StoreResult<()> {
        let tenant = state.name.clone();
        let tenant = &tenant;
        state.loaded.whole_tenant = true;
        for user in self.users_after(tenant, None) {
            let user = user?;
            state.users.entry(user.id).or_insert(Some(user));
        }
        for (kind, names) in [
            (USER_NAME, &mut state.user_names),
            (USER_HANDLE, &mut state.user_handles),
        ] {
            let prefix = key(kind, tenant, &[]);
            for entry in self.scan_prefix(&prefix) {
                let (key, value) = entry?;
                let name = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
                let id = decode_id(&key, &value)?;
                names.entry(name).or_insert(Some(id));
            }
        }
        let prefix = key(USER_EXTERNAL_ID, tenant, &[]);
        for entry in self.scan_prefix(&prefix) {
            let (key, _) = entry?;
            // `externalId \0 user`: the id is the last 16 bytes, the NUL just before them.
            let rest = &key[prefix.len()..];
            let (Some(id), Some(cut)) = (trailing_id(rest), rest.len().checked_sub(17)) else {
                continue;
            };
            let external_id = String::from_utf8_lossy(&rest[..cut]).into_owned();
            state.know_user_external_id(&external_id, UserId(uuid::Uuid::from_bytes(id)), true);
        }
        for group in self.groups_after(tenant, None) {
            let group = group?;
            state.groups.entry(group.id).or_insert(Some(group));
        }
        let prefix = key(GROUP_NAME, tenant, &[]);
        for entry in self.scan_prefix(&prefix) {
            let (key, value) = entry?;
            let name = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
            let id = GroupId(decode_id(&key, &value)?.0);
            state.group_names.entry(name).or_insert(Some(id));
        }
        let prefix = key(MEMBER, tenant, &[]);
        for entry in self.scan_prefix(&prefix) {
            let (key, _) = entry?;
            if let Some((group, user)) = id_pair(&key[prefix.len()..]) {
                state.know_membership(GroupId(group), UserId(user), true);
            }
        }
        for (group, role) in self.role_mappings(tenant)? {
            state.role_mappings.entry(group).or_insert(Some(role));
        }
        for resource_group in self.resource_groups(tenant)? {
            let folded = crate::domain::fold(&resource_group.name);
            state
                .resource_group_names
                .entry(folded)
                .or_insert(Some(resource_group.id));
            state
                .resource_groups
                .entry(resource_group.id)
                .or_insert(Some(resource_group));
        }
        let prefix = key(LINK, tenant, &[]);
        for entry in self.scan_prefix(&prefix) {
            let (key, value) = entry?;
            if let Some((group, resource_group)) = id_pair(&key[prefix.len()..]) {
                let role = decode_role(&key, &value)?;
                state
                    .group_links
                    .entry((GroupId(group), ResourceGroupId(resource_group)))
                    .or_insert(Some(role));
            }
        }
        let prefix = key(RESOURCE_GROUP_MEMBER, tenant, &[]);
        for entry in self.scan_prefix(&prefix) {
            let (key, value) = entry?;
            if let Some((resource_group, user)) = id_pair(&key[prefix.len()..]) {
                let role = decode_role(&key, &value)?;
                state.know_resource_group_member(
                    ResourceGroupId(resource_group),
                    UserId(user),
                    Some(role),
                );
            }
        }
        let users: Vec<UserId> = state.users.keys().copied().collect();
        let groups: Vec<GroupId> = state.groups.keys().copied().collect();
        let resource_groups: Vec<ResourceGroupId> = state.resource_groups.keys().copied().collect();
        state.loaded.groups_of_users.extend(users.iter().copied());
        state.loaded.resource_groups_of_users.extend(users);
        state
            .loaded
            .members_of_groups
            .extend(groups.iter().copied());
        state.loaded.links_of_groups.extend(groups);
        state
            .loaded
            .members_of_resource_groups
            .extend(resource_groups);
        Ok(())
    }

    /// Adds to `batch` the removal of every key of `tenant`: every `kind tenant` and
    /// `kind tenant \0 …` key, whatever the kind, so views that share the layout are cleared too.
    pub fn stage_clear_tenant(
        &self,
        tenant: &TenantName,
        batch: &mut impl Sink,
    ) -> StoreResult<()> {
        for kind in 0x21u8..=0x7e {
            batch.delete(tenant_key(kind, tenant));
            for entry in self.scan_prefix(key(kind, tenant, &[])) {
                let (key, _) = entry?;
                batch.delete(key);
            }
        }
        Ok(())
    }

    /// Loads what `decide` needs for `command`: its footprint, then what the entries loaded point
    /// at ([`Command::dependent_footprint`]). Returns everything loaded.
    pub fn load_command(&self, state: &mut State, command: &Command) -> StoreResult<Footprint> {
        let mut footprint = command.footprint();
        self.load_into(state, &footprint)?;
        let dependent = command.dependent_footprint(state);
        if dependent != Footprint::default() {
            self.load_into(state, &dependent)?;
            footprint.extend(dependent);
        }
        Ok(footprint)
    }

    fn load_resource_group(
        &self,
        state: &mut State,
        tenant: &TenantName,
        id: &ResourceGroupId,
    ) -> StoreResult<()> {
        load_missing(&mut state.resource_groups, &[*id], |id| {
            self.resource_group(tenant, id)
        })
    }

    /// Loads what the access rules need for `user`: the user, all their groups, those groups'
    /// role mappings and resource-group links, and their manual resource-group memberships.
    pub fn load_access(&self, state: &mut State, user: UserId) -> StoreResult<()> {
        self.load_into(
            state,
            &Footprint {
                users: vec![user],
                groups_of_users: vec![user],
                resource_groups_of_users: vec![user],
                ..Footprint::default()
            },
        )?;
        let groups: Vec<GroupId> = state.groups_of(user).collect();
        self.load_into(
            state,
            &Footprint {
                groups: groups.clone(),
                role_mappings: groups.clone(),
                links_of_groups: groups,
                ..Footprint::default()
            },
        )
    }

    /// Moves what `apply` journaled in `state` into `batch`.
    pub fn stage(&self, state: &mut State, batch: &mut impl Sink) -> StoreResult<()> {
        let tenant = state.name.clone();
        for touched in state.journal.drain() {
            match touched {
                Touched::Everything => self.stage_clear_tenant(&tenant, batch)?,
                Touched::Tenant => match &state.tenant {
                    Some(record) => batch.put(tenant_key(TENANT, &tenant), encode(record)),
                    None => batch.delete(tenant_key(TENANT, &tenant)),
                },
                Touched::Token(id) => {
                    let key = key(TOKEN, &tenant, id.0.as_bytes());
                    let mut owner = vec![TOKEN_OWNER];
                    owner.extend_from_slice(id.0.as_bytes());
                    match state.token(&id) {
                        Some(record) => {
                            batch.put(key, encode(record));
                            batch.put(owner, tenant.as_str().as_bytes());
                        }
                        None => {
                            batch.delete(key);
                            batch.delete(owner);
                        }
                    }
                }
                Touched::User(id) => batch.put_or_delete(
                    key(USER, &tenant, id.as_bytes()),
                    state.user(&id).map(encode),
                ),
                Touched::UserName(name) => batch.put_or_delete(
                    key(USER_NAME, &tenant, name.as_bytes()),
                    state.user_id_by_name(&name).map(id_value),
                ),
                Touched::UserExternalId(external_id, user) => {
                    let key = external_id_key(tenant.as_str().as_bytes(), &external_id, &user);
                    let holds = state.user_external_ids.get(&(external_id, user)) == Some(&true);
                    batch.put_or_delete(key, holds.then_some(&[][..]));
                }
                Touched::UserSubject(subject) => batch.put_or_delete(
                    key(USER_SUBJECT, &tenant, subject.as_bytes()),
                    state.user_id_by_subject(&subject).map(id_value),
                ),
                Touched::UserHandle(handle) => batch.put_or_delete(
                    key(USER_HANDLE, &tenant, handle.as_bytes()),
                    state.user_id_by_derived_handle(&handle).map(id_value),
                ),
                Touched::Group(id) => batch.put_or_delete(
                    key(GROUP, &tenant, id.as_bytes()),
                    state.group(&id).map(encode),
                ),
                Touched::GroupName(name) => batch.put_or_delete(
                    key(GROUP_NAME, &tenant, name.as_bytes()),
                    state.group_id_by_name(&name).map(id_value),
                ),
                Touched::Membership(group, user) => {
                    let forward = key(MEMBER, &tenant, &pair(group.as_bytes(), user.as_bytes()));
                    let reverse = key(MEMBER_OF, &tenant, &pair(user.as_bytes(), group.as_bytes()));
                    if state.is_member(group, user) {
                        batch.put(forward, &[]);
                        batch.put(reverse, &[]);
                    } else {
                        batch.delete(forward);
                        batch.delete(reverse);
                    }
                }
                Touched::RoleMapping(group) => batch.put_or_delete(
                    key(ROLE_MAPPING, &tenant, group.as_bytes()),
                    state.role_mapping(&group).map(role_bytes),
                ),
                Touched::ResourceGroup(id) => batch.put_or_delete(
                    key(RESOURCE_GROUP, &tenant, id.as_bytes()),
                    state.resource_group(&id).map(encode),
                ),
                Touched::ResourceGroupName(name) => batch.put_or_delete(
                    key(RESOURCE_GROUP_NAME, &tenant, name.as_bytes()),
                    state.resource_group_id_by_name(&name).map(id_value),
                ),
                Touched::GroupLink(group, resource_group) => {
                    let key = key(
                        LINK,
                        &tenant,
                        &pair(group.as_bytes(), resource_group.as_bytes()),
                    );
                    match state
                        .group_links
                        .get(&(group, resource_group))
                        .copied()
                        .flatten()
                    {
                        Some(role) => batch.put(key, role_bytes(role)),
                        None => batch.delete(key),
                    }
                }
                Touched::ResourceGroupMember(resource_group, user) => {
                    let forward = key(
                        RESOURCE_GROUP_MEMBER,
                        &tenant,
                        &pair(resource_group.as_bytes(), user.as_bytes()),
                    );
                    let reverse = key(
                        RESOURCE_GROUP_MEMBER_OF,
                        &tenant,
                        &pair(user.as_bytes(), resource_group.as_bytes()),
                    );
                    match state.resource_group_member(resource_group, user) {
                        Some(role) => {
                            batch.put(forward, role_bytes(role));
                            batch.put(reverse, role_bytes(role));
                        }
                        None => {
                            batch.delete(forward);
                            batch.delete(reverse);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Records in `batch` that the store reflects the log up to `sequence`, for `tenant` and
    /// overall.
    pub fn stage_checkpoint(&self, batch: &mut impl Sink, tenant: &TenantName, sequence: u64) {
        self.stage_tenant_checkpoint(batch, tenant, sequence);
        self.stage_global_checkpoint(batch, sequence);
    }

    /// Records in `batch` that the store reflects `tenant`'s events up to `sequence`.
    pub fn stage_tenant_checkpoint(
        &self,
        batch: &mut impl Sink,
        tenant: &TenantName,
        sequence: u64,
    ) {
        batch.put(
            tenant_key(TENANT_CHECKPOINT, tenant),
            sequence.to_be_bytes().as_slice(),
        );
    }

    /// Records in `batch` that the store reflects the log up to `sequence`.
    pub fn stage_global_checkpoint(&self, batch: &mut impl Sink, sequence: u64) {
        batch.put(CHECKPOINT, sequence.to_be_bytes().as_slice());
    }

    /// Writes `batch` to the tree at once. Not for a resident store, whose tree holds blocks:
    /// its writes go through [`Self::apply_changes`].
    pub fn apply_batch(&self, batch: sled::Batch) -> StoreResult<()> {
        if !matches!(self.backend, Backend::Direct) {
            return Err(StoreError::Unsupported(
                "a store held in memory takes changes, not sled batches".into(),
            ));
        }
        Ok(self.tree.apply_batch(batch)?)
    }

    /// Applies `changes` atomically: visible at once; on a resident store, written to sled later
    /// with the changes around them (a persist is started here when one is due).
    pub fn apply_changes(&self, changes: Changes) -> StoreResult<()> {
        match &self.backend {
            Backend::Direct => Ok(self.tree.apply_batch(changes.to_batch())?),
            Backend::Resident(resident) => {
                resident.apply(changes.into_entries())?;
                // The changes are applied whether or not a persist can start; a persist that
                // fails gives its changes back to the next one.
                if let Err(error) = resident.persist_if_due() {
                    tracing::warn!(%error, "persisting a resident store failed; retried at the next change");
                }
                Ok(())
            }
        }
    }

    /// Waits until every change applied so far is in the sled tree (a no-op for a store written
    /// key by key).
    pub fn drain(&self) -> StoreResult<()> {
        match &self.backend {
            Backend::Direct => Ok(()),
            Backend::Resident(resident) => Ok(resident.persist()?),
        }
    }

    /// Writes what is pending and stops a resident store's persist thread (a no-op for a store
    /// written key by key).
    pub fn stop(&self) -> StoreResult<()> {
        match &self.backend {
            Backend::Direct => Ok(()),
            Backend::Resident(resident) => Ok(resident.stop()?),
        }
    }

    /// Folds `events` (in log order, each above the checkpoint) into the store in one atomic
    /// batch, with the checkpoints. The generic path: recovery, rebuilds and projections.
    pub fn apply_events(&self, events: &[Event]) -> StoreResult<()> {
        let mut changes = Changes::default();
        self.apply_events_into(events, &mut changes, |_, _, _| {})?;
        self.apply_changes(changes)
    }

    /// Like [`Self::apply_events`], but leaves the batch to the caller, who may add its own
    /// writes; `observe` sees each event with the user and group it concerns as they were before
    /// the event, and the tenant slice after it.
    pub fn apply_events_into(
        &self,
        events: &[Event],
        batch: &mut impl Sink,
        mut observe: impl FnMut(&Event, &Before, &State),
    ) -> StoreResult<()> {
        let mut slices: BTreeMap<TenantName, (State, u64)> = BTreeMap::new();
        for event in events {
            if !slices.contains_key(&event.tenant) {
                let slice = self.slice(&event.tenant)?;
                slices.insert(event.tenant.clone(), (slice, 0));
            }
            let Some((state, last)) = slices.get_mut(&event.tenant) else {
                continue;
            };
            self.load_into(state, &event.payload.footprint())?;
            let before = Before {
                user: event
                    .payload
                    .user_id()
                    .and_then(|id| state.user(&id).cloned()),
                group: event
                    .payload
                    .group_id()
                    .and_then(|id| state.group(&id).cloned()),
            };
            apply(state, event);
            observe(event, &before, state);
            *last = event.sequence;
        }
        for (tenant, (mut state, last)) in slices {
            self.stage(&mut state, batch)?;
            batch.put(
                tenant_key(TENANT_CHECKPOINT, &tenant),
                last.to_be_bytes().as_slice(),
            );
        }
        if let Some(last) = events.last() {
            batch.put(CHECKPOINT, last.sequence.to_be_bytes().as_slice());
        }
        Ok(())
    }

    /// The last log sequence the store reflects.
    pub fn checkpoint(&self) -> StoreResult<u64> {
        Ok(self
            .raw_get(CHECKPOINT)?
            .map(|bytes| decode_u64(&bytes))
            .unwrap_or(0))
    }

    /// The checkpoint stored in `tree`, whether the store keeps it per key or in a resident
    /// tree's blocks and deltas; changes nothing (for `roster check`).
    pub fn stored_checkpoint(tree: &sled::Tree) -> StoreResult<u64> {
        let bytes = match crate::resident::persisted_get(tree, CHECKPOINT)? {
            Some(value) => value,
            None => tree.get(CHECKPOINT)?,
        };
        Ok(bytes.map(|bytes| decode_u64(&bytes)).unwrap_or(0))
    }

    /// The last sequence of `tenant`'s events the store reflects.
    pub fn tenant_checkpoint(&self, tenant: &TenantName) -> StoreResult<u64> {
        Ok(self
            .raw_get(tenant_key(TENANT_CHECKPOINT, tenant).as_slice())?
            .map(|bytes| decode_u64(&bytes))
            .unwrap_or(0))
    }

    /// Empties the store (before a rebuild).
    pub fn clear(&self) -> StoreResult<()> {
        match &self.backend {
            Backend::Direct => Ok(self.tree.clear()?),
            Backend::Resident(resident) => Ok(resident.clear()?),
        }
    }

    /// The sled tree itself; a resident store's holds packed blocks and deltas.
    pub fn tree(&self) -> &sled::Tree {
        &self.tree
    }

    // ---- reads ------------------------------------------------------------------------------

    pub fn tenant(&self, tenant: &TenantName) -> StoreResult<Option<TenantRecord>> {
        self.get(&tenant_key(TENANT, tenant))
    }

    /// Every tenant, by name.
    pub fn tenants(&self) -> StoreResult<Vec<(TenantName, TenantRecord)>> {
        let mut tenants = Vec::new();
        for entry in self.scan_prefix([TENANT]) {
            let (key, value) = entry?;
            let name = String::from_utf8_lossy(&key[1..]).into_owned();
            if let Ok(name) = TenantName::parse(&name) {
                tenants.push((name, decode(&key, &value)?));
            }
        }
        Ok(tenants)
    }

    pub fn token(&self, tenant: &TenantName, id: &TokenId) -> StoreResult<Option<TokenRecord>> {
        self.get(&key(TOKEN, tenant, id.0.as_bytes()))
    }

    /// The tenant a token id belongs to.
    pub fn token_owner(&self, id: &TokenId) -> StoreResult<Option<TenantName>> {
        let mut key = vec![TOKEN_OWNER];
        key.extend_from_slice(id.0.as_bytes());
        Ok(self
            .raw_get(&key)?
            .and_then(|bytes| TenantName::parse(&String::from_utf8_lossy(&bytes)).ok()))
    }

    pub fn tokens(&self, tenant: &TenantName) -> StoreResult<Vec<TokenRecord>> {
        self.scan_prefix(key(TOKEN, tenant, &[]))
            .map(|entry| {
                let (key, value) = entry?;
                decode(&key, &value)
            })
            .collect()
    }

    pub fn user(&self, tenant: &TenantName, id: &UserId) -> StoreResult<Option<UserRecord>> {
        self.get(&key(USER, tenant, id.as_bytes()))
    }

    pub fn user_id_by_name(
        &self,
        tenant: &TenantName,
        folded: &str,
    ) -> StoreResult<Option<UserId>> {
        self.get_id(&key(USER_NAME, tenant, folded.as_bytes()))
    }

    /// Every user whose externalId is exactly `external_id`, in id order (externalIds need not
    /// be unique).
    pub fn user_ids_by_external_id(
        &self,
        tenant: &TenantName,
        external_id: &str,
    ) -> StoreResult<Vec<UserId>> {
        let prefix = external_id_prefix(tenant.as_str().as_bytes(), external_id);
        let mut users = Vec::new();
        for entry in self.scan_prefix(&prefix) {
            let (key, _) = entry?;
            // Exactly an id after the prefix: a longer rest belongs to another externalId that
            // starts with `external_id` and a NUL.
            if let Some(id) = UserId::from_slice(&key[prefix.len()..]) {
                users.push(id);
            }
        }
        Ok(users)
    }

    /// The user linked to an SSO subject.
    pub fn user_id_by_subject(
        &self,
        tenant: &TenantName,
        subject: &str,
    ) -> StoreResult<Option<UserId>> {
        self.get_id(&key(USER_SUBJECT, tenant, subject.as_bytes()))
    }

    /// The user whose handle, differing from their userName, folds to `folded`.
    pub fn user_id_by_derived_handle(
        &self,
        tenant: &TenantName,
        folded: &str,
    ) -> StoreResult<Option<UserId>> {
        self.get_id(&key(USER_HANDLE, tenant, folded.as_bytes()))
    }

    /// The user whose platform handle is `handle` (case-insensitively): a derived handle, else a
    /// userName that is its user's handle.
    pub fn user_id_by_handle(
        &self,
        tenant: &TenantName,
        handle: &str,
    ) -> StoreResult<Option<UserId>> {
        let folded = crate::domain::fold(handle);
        if let Some(id) = self.user_id_by_derived_handle(tenant, &folded)? {
            return Ok(Some(id));
        }
        let Some(id) = self.user_id_by_name(tenant, &folded)? else {
            return Ok(None);
        };
        let holds = self
            .user(tenant, &id)?
            .is_some_and(|user| crate::domain::fold(user.handle()) == folded);
        Ok(holds.then_some(id))
    }

    pub fn group(&self, tenant: &TenantName, id: &GroupId) -> StoreResult<Option<GroupRecord>> {
        self.get(&key(GROUP, tenant, id.as_bytes()))
    }

    pub fn group_id_by_name(
        &self,
        tenant: &TenantName,
        folded: &str,
    ) -> StoreResult<Option<GroupId>> {
        Ok(self
            .get_id(&key(GROUP_NAME, tenant, folded.as_bytes()))?
            .map(|id| GroupId(id.0)))
    }

    pub fn is_member(
        &self,
        tenant: &TenantName,
        group: &GroupId,
        user: &UserId,
    ) -> StoreResult<bool> {
        Ok(self
            .raw_get(&key(
                MEMBER,
                tenant,
                &pair(group.as_bytes(), user.as_bytes()),
            ))?
            .is_some())
    }

    /// Members of `group` in id order, after `after`, at most `limit`: one page of a group of any
    /// size, read without touching the others.
    pub fn members_of_group(
        &self,
        tenant: &TenantName,
        group: &GroupId,
        after: Option<UserId>,
        limit: usize,
    ) -> StoreResult<Vec<UserId>> {
        let prefix = key(MEMBER, tenant, group.as_bytes());
        let mut start = prefix.clone();
        if let Some(after) = after {
            start.extend_from_slice(after.as_bytes());
            start.push(0);
        }
        let mut members = Vec::new();
        for entry in self.raw_range_from(&start) {
            let (key, _) = entry?;
            if !key.starts_with(&prefix) || members.len() >= limit {
                break;
            }
            if let Some(id) = trailing_id(&key) {
                members.push(UserId(uuid::Uuid::from_bytes(id)));
            }
        }
        Ok(members)
    }

    /// Every group `user` belongs to.
    pub fn groups_of_user(&self, tenant: &TenantName, user: &UserId) -> StoreResult<Vec<GroupId>> {
        let mut groups = Vec::new();
        for entry in self.scan_prefix(key(MEMBER_OF, tenant, user.as_bytes())) {
            let (key, _) = entry?;
            if let Some(id) = trailing_id(&key) {
                groups.push(GroupId(uuid::Uuid::from_bytes(id)));
            }
        }
        Ok(groups)
    }

    /// A tenant's groups in id order (creation order), starting after `after`.
    pub fn groups_after(
        &self,
        tenant: &TenantName,
        after: Option<GroupId>,
    ) -> impl Iterator<Item = StoreResult<GroupRecord>> + use<> {
        self.records_after(key(GROUP, tenant, &[]), after.map(|id| *id.as_bytes()))
    }

    pub fn role_mapping(&self, tenant: &TenantName, group: &GroupId) -> StoreResult<Option<Role>> {
        let key = key(ROLE_MAPPING, tenant, group.as_bytes());
        self.raw_get(&key)?
            .map(|bytes| decode_role(&key, &bytes))
            .transpose()
    }

    /// Every group → org role mapping of a tenant.
    pub fn role_mappings(&self, tenant: &TenantName) -> StoreResult<Vec<(GroupId, Role)>> {
        let mut mappings = Vec::new();
        for entry in self.scan_prefix(key(ROLE_MAPPING, tenant, &[])) {
            let (key, value) = entry?;
            if let Some(id) = trailing_id(&key) {
                mappings.push((
                    GroupId(uuid::Uuid::from_bytes(id)),
                    decode_role(&key, &value)?,
                ));
            }
        }
        Ok(mappings)
    }

    pub fn resource_group(
        &self,
        tenant: &TenantName,
        id: &ResourceGroupId,
    ) -> StoreResult<Option<ResourceGroupRecord>> {
        self.get(&key(RESOURCE_GROUP, tenant, id.as_bytes()))
    }

    pub fn resource_group_id_by_name(
        &self,
        tenant: &TenantName,
        folded: &str,
    ) -> StoreResult<Option<ResourceGroupId>> {
        Ok(self
            .get_id(&key(RESOURCE_GROUP_NAME, tenant, folded.as_bytes()))?
            .map(|id| ResourceGroupId(id.0)))
    }

    /// Every resource group of a tenant.
    pub fn resource_groups(&self, tenant: &TenantName) -> StoreResult<Vec<ResourceGroupRecord>> {
        self.records_after(key(RESOURCE_GROUP, tenant, &[]), None)
            .collect()
    }

    /// Resource groups linked to `group`, with each link's role.
    pub fn links_of_group(
        &self,
        tenant: &TenantName,
        group: &GroupId,
    ) -> StoreResult<Vec<(ResourceGroupId, Role)>> {
        let mut links = Vec::new();
        for entry in self.scan_prefix(key(LINK, tenant, group.as_bytes())) {
            let (key, value) = entry?;
            if let Some(id) = trailing_id(&key) {
                links.push((
                    ResourceGroupId(uuid::Uuid::from_bytes(id)),
                    decode_role(&key, &value)?,
                ));
            }
        }
        Ok(links)
    }

    pub fn resource_group_member(
        &self,
        tenant: &TenantName,
        resource_group: &ResourceGroupId,
        user: &UserId,
    ) -> StoreResult<Option<Role>> {
        let key = key(
            RESOURCE_GROUP_MEMBER,
            tenant,
            &pair(resource_group.as_bytes(), user.as_bytes()),
        );
        self.raw_get(&key)?
            .map(|bytes| decode_role(&key, &bytes))
            .transpose()
    }

    /// Manual members of a resource group, with their role.
    pub fn members_of_resource_group(
        &self,
        tenant: &TenantName,
        resource_group: &ResourceGroupId,
    ) -> StoreResult<Vec<(UserId, Role)>> {
        let mut members = Vec::new();
        for entry in self.scan_prefix(key(
            RESOURCE_GROUP_MEMBER,
            tenant,
            resource_group.as_bytes(),
        )) {
            let (key, value) = entry?;
            if let Some(id) = trailing_id(&key) {
                members.push((
                    UserId(uuid::Uuid::from_bytes(id)),
                    decode_role(&key, &value)?,
                ));
            }
        }
        Ok(members)
    }

    /// Manual resource-group memberships of a user, with their role.
    pub fn resource_groups_of_user(
        &self,
        tenant: &TenantName,
        user: &UserId,
    ) -> StoreResult<Vec<(ResourceGroupId, Role)>> {
        let mut memberships = Vec::new();
        for entry in self.scan_prefix(key(RESOURCE_GROUP_MEMBER_OF, tenant, user.as_bytes())) {
            let (key, value) = entry?;
            if let Some(id) = trailing_id(&key) {
                memberships.push((
                    ResourceGroupId(uuid::Uuid::from_bytes(id)),
                    decode_role(&key, &value)?,
                ));
            }
        }
        Ok(memberships)
    }

    /// Records under `prefix` in key order, starting after the id `after`.
    fn records_after<T: DeserializeOwned>(
        &self,
        prefix: Vec<u8>,
        after: Option<[u8; 16]>,
    ) -> impl Iterator<Item = StoreResult<T>> + use<T> {
        let mut start = prefix.clone();
        if let Some(after) = after {
            start.extend_from_slice(&after);
            start.push(0);
        }
        self.raw_range_from(&start)
            .take_while(move |entry| match entry {
                Ok((key, _)) => key.starts_with(&prefix),
                Err(_) => true,
            })
            .map(|entry| {
                let (key, value) = entry?;
                decode(&key, &value)
            })
    }

    /// A tenant's users in id order (creation order for UUIDv7 ids), starting after `after`.
    pub fn users_after(
        &self,
        tenant: &TenantName,
        after: Option<UserId>,
    ) -> impl Iterator<Item = StoreResult<UserRecord>> + use<> {
        self.records_after(key(USER, tenant, &[]), after.map(|id| *id.as_bytes()))
    }

    /// A tenant's users in id order from the `skip`-th on (see [`Self::records_skipping`]).
    pub fn users_skipping(
        &self,
        tenant: &TenantName,
        skip: usize,
    ) -> impl Iterator<Item = StoreResult<UserRecord>> + use<> {
        self.records_skipping(key(USER, tenant, &[]), skip)
    }

    /// A tenant's groups in id order from the `skip`-th on (see [`Self::records_skipping`]).
    pub fn groups_skipping(
        &self,
        tenant: &TenantName,
        skip: usize,
    ) -> impl Iterator<Item = StoreResult<GroupRecord>> + use<> {
        self.records_skipping(key(GROUP, tenant, &[]), skip)
    }

    /// Records under `prefix` in key order from the `skip`-th on: the skipped entries are
    /// stepped over without being decoded, so a deep page costs a key walk, not a read of every
    /// earlier record.
    fn records_skipping<T: DeserializeOwned>(
        &self,
        prefix: Vec<u8>,
        skip: usize,
    ) -> impl Iterator<Item = StoreResult<T>> + use<T> {
        self.records_skipping_from(prefix, None, skip)
    }

    /// A tenant's users in id order, from the first whose id is at least `from` (the first of
    /// all when `None`), skipping `skip` of them. With a known id near the wanted position (a
    /// position index), a deep page costs a seek and a short walk.
    pub fn users_skipping_from(
        &self,
        tenant: &TenantName,
        from: Option<UserId>,
        skip: usize,
    ) -> impl Iterator<Item = StoreResult<UserRecord>> + use<> {
        self.records_skipping_from(key(USER, tenant, &[]), from.map(|id| *id.as_bytes()), skip)
    }

    /// A tenant's groups in id order, from the first whose id is at least `from`, skipping
    /// `skip` of them (see [`Self::users_skipping_from`]).
    pub fn groups_skipping_from(
        &self,
        tenant: &TenantName,
        from: Option<GroupId>,
        skip: usize,
    ) -> impl Iterator<Item = StoreResult<GroupRecord>> + use<> {
        self.records_skipping_from(key(GROUP, tenant, &[]), from.map(|id| *id.as_bytes()), skip)
    }

    /// The ids of a tenant's users in id order, from the first at least `from`, without reading
    /// the records (what a position index is built from).
    pub fn user_ids_from(
        &self,
        tenant: &TenantName,
        from: Option<UserId>,
    ) -> impl Iterator<Item = StoreResult<[u8; 16]>> + use<> {
        self.ids_from(key(USER, tenant, &[]), from.map(|id| *id.as_bytes()))
    }

    /// The ids of a tenant's groups in id order, from the first at least `from`.
    pub fn group_ids_from(
        &self,
        tenant: &TenantName,
        from: Option<GroupId>,
    ) -> impl Iterator<Item = StoreResult<[u8; 16]>> + use<> {
        self.ids_from(key(GROUP, tenant, &[]), from.map(|id| *id.as_bytes()))
    }

    /// Entries under `prefix` from the key `prefix + from` on (the whole prefix when `None`).
    fn scan_from(
        &self,
        prefix: Vec<u8>,
        from: Option<[u8; 16]>,
    ) -> impl Iterator<Item = sled::Result<(IVec, IVec)>> + use<> {
        let mut start = prefix.clone();
        if let Some(from) = from {
            start.extend_from_slice(&from);
        }
        self.raw_range_from(&start)
            .take_while(move |entry| match entry {
                Ok((key, _)) => key.starts_with(&prefix),
                Err(_) => true,
            })
    }

    /// Records under `prefix` from the id `from` on, skipping `skip` without decoding them.
    fn records_skipping_from<T: DeserializeOwned>(
        &self,
        prefix: Vec<u8>,
        from: Option<[u8; 16]>,
        skip: usize,
    ) -> impl Iterator<Item = StoreResult<T>> + use<T> {
        self.scan_from(prefix, from).skip(skip).map(|entry| {
            let (key, value) = entry?;
            decode(&key, &value)
        })
    }

    /// The trailing 16-byte ids of the keys under `prefix` from the id `from` on.
    fn ids_from(
        &self,
        prefix: Vec<u8>,
        from: Option<[u8; 16]>,
    ) -> impl Iterator<Item = StoreResult<[u8; 16]>> + use<> {
        self.scan_from(prefix, from).map(|entry| {
            let (key, _) = entry?;
            trailing_id(&key).ok_or_else(|| StoreError::Corrupt {
                key: String::from_utf8_lossy(&key).into_owned(),
                reason: "not a 16-byte id".to_owned(),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::domain::{Actor, EventPayload, Role, Source, Timestamp, UserProfile, decide};
    use crate::domain::{Attributes, Command};

    fn event(sequence: u64, tenant: &TenantName, payload: EventPayload) -> Event {
        Event {
            id: Uuid::now_v7(),
            tenant: tenant.clone(),
            sequence,
            occurred_at: Timestamp::from_micros(sequence as i64),
            recorded_at: Timestamp::from_micros(sequence as i64),
            actor: Actor::system(),
            source: Source::default(),
            causation_id: String::new(),
            payload,
        }
    }

    fn profile(name: &str) -> UserProfile {
        UserProfile {
            user_name: name.into(),
            external_id: Some(format!("ext-{name}")),
            active: true,
            attributes: Attributes::new(),
        }
    }

    #[test]
    fn a_slice_loaded_from_the_store_decides_like_the_full_state() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let store = StateStore::open(&db, "aggregate").unwrap();
        let acme = TenantName::parse("acme").unwrap();
        let alice = UserId(Uuid::now_v7());
        let mut full = State::new(acme.clone());
        let events = vec![
            event(
                1,
                &acme,
                EventPayload::TenantCreated {
                    default_role: Role::Read,
                    usernames: crate::domain::UsernamePolicy::Strict,
                },
            ),
            event(
                2,
                &acme,
                EventPayload::UserProvisioned {
                    user_id: alice,
                    profile: profile("Alice"),
                    handle: None,
                },
            ),
        ];
        for e in &events {
            apply(&mut full, e);
        }
        store.apply_events(&events).unwrap();
        assert_eq!(store.checkpoint().unwrap(), 2);
        assert_eq!(store.tenant_checkpoint(&acme).unwrap(), 2);
        assert_eq!(store.user_id_by_name(&acme, "alice").unwrap(), Some(alice));
        assert_eq!(
            store.user_ids_by_external_id(&acme, "ext-Alice").unwrap(),
            [alice]
        );
        assert_eq!(store.tenant(&acme).unwrap().unwrap().user_count, 1);

        let bob = Command::ProvisionUser {
            user_id: UserId(Uuid::now_v7()),
            profile: profile("ALICE"),
        };
        let mut slice = store.slice(&acme).unwrap();
        store.load_into(&mut slice, &bob.footprint()).unwrap();
        assert_eq!(decide(&slice, bob.clone()), decide(&full, bob));

        let users: Vec<_> = store
            .users_after(&acme, None)
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(users.len(), 1);
        assert!(store.users_after(&acme, Some(alice)).next().is_none());
        let skipped: Vec<_> = store.users_skipping(&acme, 0).map(Result::unwrap).collect();
        assert_eq!(skipped, users);
        assert!(store.users_skipping(&acme, 1).next().is_none());
        assert!(
            store
                .users_after(&TenantName::parse("other").unwrap(), None)
                .next()
                .is_none()
        );
    }

    /// Users `alice`, `bob` (both `ext-shared`) and `carol` (`ext-shared2`, which starts like
    /// the other) of `acme`, and `dave` (`ext-shared`) of `other`.
    fn sharing_users(store: &StateStore) -> (TenantName, TenantName, [UserId; 4]) {
        let acme = TenantName::parse("acme").unwrap();
        let other = TenantName::parse("other").unwrap();
        let ids = [(); 4].map(|_| UserId(Uuid::now_v7()));
        let shared = |name: &str, external_id: &str| UserProfile {
            external_id: Some(external_id.to_owned()),
            ..profile(name)
        };
        let mut events = Vec::new();
        for (tenant, users) in [
            (
                &acme,
                vec![
                    (ids[0], shared("alice", "ext-shared")),
                    (ids[1], shared("bob", "ext-shared")),
                    (ids[2], shared("carol", "ext-shared2")),
                ],
            ),
            (&other, vec![(ids[3], shared("dave", "ext-shared"))]),
        ] {
            events.push(event(
                events.len() as u64 + 1,
                tenant,
                EventPayload::TenantCreated {
                    default_role: Role::Read,
                    usernames: crate::domain::UsernamePolicy::Strict,
                },
            ));
            for (user_id, profile) in users {
                events.push(event(
                    events.len() as u64 + 1,
                    tenant,
                    EventPayload::UserProvisioned {
                        user_id,
                        profile,
                        handle: None,
                    },
                ));
            }
        }
        store.apply_events(&events).unwrap();
        (acme, other, ids)
    }

    #[test]
    fn users_sharing_an_external_id_are_all_found_and_only_they() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let store = StateStore::open(&db, "aggregate").unwrap();
        let (acme, other, [alice, bob, carol, dave]) = sharing_users(&store);
        let mut both = vec![alice, bob];
        both.sort();
        assert_eq!(
            store.user_ids_by_external_id(&acme, "ext-shared").unwrap(),
            both
        );
        assert_eq!(
            store.user_ids_by_external_id(&acme, "ext-shared2").unwrap(),
            [carol]
        );
        assert_eq!(
            store.user_ids_by_external_id(&other, "ext-shared").unwrap(),
            [dave]
        );
        assert!(
            store
                .user_ids_by_external_id(&acme, "ext-share")
                .unwrap()
                .is_empty()
        );
        // A slice loads every holder; the whole tenant too.
        let mut slice = store.slice(&acme).unwrap();
        let footprint = Footprint {
            user_external_ids: vec!["ext-shared".into()],
            ..Footprint::default()
        };
        store.load_into(&mut slice, &footprint).unwrap();
        assert_eq!(slice.user_ids_by_external_id("ext-shared"), both);
        let mut whole = store.slice(&acme).unwrap();
        store
            .load_into(
                &mut whole,
                &Footprint {
                    whole_tenant: true,
                    ..Footprint::default()
                },
            )
            .unwrap();
        assert_eq!(whole.user_ids_by_external_id("ext-shared"), both);
        assert_eq!(whole.user_ids_by_external_id("ext-shared2"), [carol]);
    }

    #[test]
    fn a_store_of_the_one_to_one_external_id_layout_is_migrated_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let store = StateStore::open(&db, "aggregate").unwrap();
        let (acme, other, [alice, bob, carol, dave]) = sharing_users(&store);
        // Rewrite the index as an earlier roster kept it: `X tenant \0 externalId` → one user.
        let tree = store.tree().clone();
        let new_keys: Vec<IVec> = tree
            .scan_prefix([USER_EXTERNAL_ID])
            .map(|entry| entry.unwrap().0)
            .collect();
        assert_eq!(new_keys.len(), 4);
        for key in new_keys {
            tree.remove(key).unwrap();
        }
        for (tenant, external_id, user) in [
            (&acme, "ext-shared", alice),
            (&acme, "ext-shared2", carol),
            (&other, "ext-shared", dave),
        ] {
            tree.insert(
                key(OLD_USER_EXTERNAL_ID, tenant, external_id.as_bytes()),
                id_value(user),
            )
            .unwrap();
        }
        let checkpoint = store.checkpoint().unwrap();
        drop(store);

        let store = StateStore::open(&db, "aggregate").unwrap();
        assert!(
            store
                .tree()
                .scan_prefix([OLD_USER_EXTERNAL_ID])
                .next()
                .is_none()
        );
        let mut both = vec![alice, bob];
        both.sort();
        assert_eq!(
            store.user_ids_by_external_id(&acme, "ext-shared").unwrap(),
            both
        );
        assert_eq!(
            store.user_ids_by_external_id(&acme, "ext-shared2").unwrap(),
            [carol]
        );
        assert_eq!(
            store.user_ids_by_external_id(&other, "ext-shared").unwrap(),
            [dave]
        );
        assert_eq!(store.checkpoint().unwrap(), checkpoint);
        store.stop().unwrap();
    }

    #[test]
    fn events_in_one_batch_see_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let store = StateStore::open(&db, "aggregate").unwrap();
        let acme = TenantName::parse("acme").unwrap();
        let first = UserId(Uuid::now_v7());
        let second = UserId(Uuid::now_v7());
        store
            .apply_events(&[
                event(
                    1,
                    &acme,
                    EventPayload::TenantCreated {
                        default_role: Role::Read,
                        usernames: crate::domain::UsernamePolicy::Strict,
                    },
                ),
                event(
                    2,
                    &acme,
                    EventPayload::UserProvisioned {
                        user_id: first,
                        profile: profile("alice"),
                        handle: None,
                    },
                ),
                event(
                    3,
                    &acme,
                    EventPayload::UserDeleted {
                        user_id: first,
                        user_name: "alice".into(),
                        external_id: None,
                        email: Default::default(),
                        sso: Default::default(),
                    },
                ),
                event(
                    4,
                    &acme,
                    EventPayload::UserProvisioned {
                        user_id: second,
                        profile: profile("alice"),
                        handle: None,
                    },
                ),
            ])
            .unwrap();
        assert_eq!(store.user_id_by_name(&acme, "alice").unwrap(), Some(second));
        assert!(store.user(&acme, &first).unwrap().is_none());
        assert_eq!(store.tenant(&acme).unwrap().unwrap().user_count, 1);
        assert_eq!(store.checkpoint().unwrap(), 4);
    }
}
