//! The directory view: tenants, users, groups and their indexes as SCIM and gRPC read them, plus
//! the access views derived from them (see `access`). It holds the same state as the engine's
//! aggregate, built by the same `apply`, but only ever reflects durable events, and it adds:
//!
//! - `e tenant \0 folded-email \0 user` → the email's `type` (UTF-8, empty when none);
//! - `y tenant \0 externalId \0 group` → nothing (group externalIds need not be unique);
//! - access history (whose last entry is the current access), resource-group members,
//!   membership intervals and the default-role history (keys in `access`).
//!
//! Staging branches (`acme~s3`) get the directory and its indexes, so SCIM reads them, but no
//! access views; `BranchDropped` removes every key of the branch.
//!
//! Everything a chunk of events changes, checkpoint included, is written in one atomic batch.
//! A chunk that creates or deletes users or groups is written under the lock of the view's
//! position index (`positions`), which is updated before the lock is released, so deep list
//! pages seek instead of walking every earlier key.
//! Access is recomputed with the domain's own rules (`domain::access`) after every event that can
//! change it, so the history has one snapshot per change, in log order.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use roster_engine::changes::{Changes, Sink};
use roster_engine::domain::{
    self, Event, EventPayload, GroupId, GroupRecord, ResourceGroupId, Role, State, TenantName,
    Timestamp, UserId, UserRecord,
};
use roster_engine::resident::PersistPolicy;
use roster_engine::store::{StateStore, StoreError, StoreResult};

use crate::access::{
    self, AccessRecord, Grant, ResourceGroupMember, default_role_key, history_key, history_prefix,
    interval_key, interval_prefix, resource_group_member_key, tenant_prefix,
};
use crate::positions::{BLOCK, Blocks, Change, Listing, Positions, Seek};
use crate::runner::{Projection, ProjectionError};

const EMAIL: u8 = b'e';
const GROUP_EXTERNAL_ID: u8 = b'y';
/// An interval still open: the membership has not ended.
const OPEN: u64 = u64::MAX;

/// The sled tree of the directory view.
pub const DIRECTORY_TREE: &str = "view.directory";

/// Users, groups, their indexes and access, for reads. Clones share the position index, so the
/// projection and the readers must use clones of one view.
#[derive(Clone)]
pub struct DirectoryView {
    store: StateStore,
    positions: Arc<Positions>,
}

/// Records of a listing page, in id order.
pub type Records<T> = Box<dyn Iterator<Item = StoreResult<T>>>;

fn email_prefix(tenant: &TenantName, folded_email: &str) -> Vec<u8> {
    let mut key = tenant_prefix(EMAIL, tenant);
    key.extend_from_slice(folded_email.as_bytes());
    key.push(0);
    key
}

fn group_external_id_prefix(tenant: &TenantName, external_id: &str) -> Vec<u8> {
    let mut key = tenant_prefix(GROUP_EXTERNAL_ID, tenant);
    key.extend_from_slice(external_id.as_bytes());
    key.push(0);
    key
}

/// A user's emails as (folded address, type) pairs.
fn emails_of(user: Option<&UserRecord>) -> BTreeSet<(String, String)> {
    user.map(|user| {
        user.profile
            .emails()
            .into_iter()
            .map(|(value, kind)| (value.to_lowercase(), kind.unwrap_or_default()))
            .collect()
    })
    .unwrap_or_default()
}

fn group_external_id(group: Option<&GroupRecord>) -> Option<&str> {
    group.and_then(|group| group.profile.external_id.as_deref())
}

fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    // Plain records with string keys always serialize.
    serde_json::to_vec(value).unwrap_or_default()
}

fn decode<T: serde::de::DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T, ProjectionError> {
    serde_json::from_slice(bytes).map_err(|error| {
        ProjectionError::Store(StoreError::Corrupt {
            key: String::from_utf8_lossy(key).into_owned(),
            reason: error.to_string(),
        })
    })
}

fn trailing<const N: usize>(key: &[u8]) -> Option<[u8; N]> {
    key.len()
        .checked_sub(N)
        .and_then(|start| key[start..].try_into().ok())
}

impl DirectoryView {
    /// Loads the view into memory, persisted every 5 s (see [`Self::open_with`]).
    pub fn open(db: &sled::Db) -> Result<Self, ProjectionError> {
        Self::open_with(db, PersistPolicy::default())
    }

    /// Loads the view into memory; `policy` says how often its changes are written to sled
    /// (what a crash makes the next start replay from the log).
    pub fn open_with(db: &sled::Db, policy: PersistPolicy) -> Result<Self, ProjectionError> {
        Ok(Self {
            store: StateStore::open_resident(db, DIRECTORY_TREE, policy)?,
            positions: Arc::new(Positions::default()),
        })
    }

    /// The checkpoint the view's tree holds, read without loading or changing it (`roster
    /// check`).
    pub fn stored_checkpoint(db: &sled::Db) -> Result<u64, ProjectionError> {
        let tree = db.open_tree(DIRECTORY_TREE).map_err(StoreError::from)?;
        Ok(StateStore::stored_checkpoint(&tree)?)
    }

    /// The position index (tests and diagnostics).
    pub fn positions(&self) -> &Positions {
        &self.positions
    }

    /// A tenant's users in id order from the `skip`-th on, like
    /// [`StateStore::users_skipping`], but a deep page seeks through the position index and
    /// walks at most about two blocks of keys.
    pub fn users_skipping(
        &self,
        tenant: &TenantName,
        skip: usize,
    ) -> Result<Records<UserRecord>, ProjectionError> {
        Ok(match self.seek(tenant, Listing::Users, skip)? {
            Some(seek) => Box::new(self.store.users_skipping_from(
                tenant,
                seek.from.map(|id| UserId(uuid::Uuid::from_bytes(id))),
                seek.skip,
            )),
            None => Box::new(std::iter::empty()),
        })
    }

    /// A tenant's groups in id order from the `skip`-th on (see [`Self::users_skipping`]).
    pub fn groups_skipping(
        &self,
        tenant: &TenantName,
        skip: usize,
    ) -> Result<Records<GroupRecord>, ProjectionError> {
        Ok(match self.seek(tenant, Listing::Groups, skip)? {
            Some(seek) => Box::new(self.store.groups_skipping_from(
                tenant,
                seek.from.map(|id| GroupId(uuid::Uuid::from_bytes(id))),
                seek.skip,
            )),
            None => Box::new(std::iter::empty()),
        })
    }

    /// Where the key at `position` of a listing is (`None`: past the end). Shallow positions
    /// are walked to; the first deep one builds the listing's blocks.
    fn seek(
        &self,
        tenant: &TenantName,
        listing: Listing,
        position: usize,
    ) -> Result<Option<Seek>, ProjectionError> {
        let walk = Seek {
            from: None,
            skip: position,
        };
        if position < BLOCK {
            return Ok(Some(walk));
        }
        let build = match self.positions.seek(tenant, listing, position) {
            Ok(seek) => return Ok(seek),
            Err(build) => build,
        };
        let mut failed = None;
        let blocks = Blocks::build(
            self.ids_from(tenant, listing, None)
                .map_while(|id| match id {
                    Ok(id) => Some(id),
                    Err(error) => {
                        failed = Some(error);
                        None
                    }
                }),
        );
        if let Some(error) = failed {
            return Err(error.into());
        }
        let seek = blocks.seek(position);
        if self.positions.install(build, blocks) {
            Ok(seek)
        } else {
            // The listing changed during the walk: these blocks may not describe it.
            Ok(Some(walk))
        }
    }

    fn ids_from(
        &self,
        tenant: &TenantName,
        listing: Listing,
        from: Option<[u8; 16]>,
    ) -> Box<dyn Iterator<Item = StoreResult<[u8; 16]>>> {
        match listing {
            Listing::Users => Box::new(
                self.store
                    .user_ids_from(tenant, from.map(|id| UserId(uuid::Uuid::from_bytes(id)))),
            ),
            Listing::Groups => Box::new(
                self.store
                    .group_ids_from(tenant, from.map(|id| GroupId(uuid::Uuid::from_bytes(id)))),
            ),
        }
    }

    /// The ids of a listing from `from` (inclusive) to `until` (exclusive).
    fn ids_between(
        &self,
        tenant: &TenantName,
        listing: Listing,
        from: Option<[u8; 16]>,
        until: Option<[u8; 16]>,
    ) -> StoreResult<Vec<[u8; 16]>> {
        let mut ids = Vec::new();
        for id in self.ids_from(tenant, listing, from) {
            let id = id?;
            if until.is_some_and(|until| id >= until) {
                break;
            }
            ids.push(id);
        }
        Ok(ids)
    }

    /// Tenants, users, groups, memberships, mappings and resource groups.
    pub fn store(&self) -> &StateStore {
        &self.store
    }

    /// The view's own keys (beside the state) from `start` to `end`, both inclusive.
    fn entries_through(&self, start: Vec<u8>, end: Vec<u8>) -> roster_engine::store::Entries {
        // The smallest key above `end` is `end` followed by a zero byte.
        let mut after_end = end;
        after_end.push(0);
        self.store.entries(&start, Some(&after_end))
    }

    /// Users with an email address (compared case-insensitively), with that email's `type`.
    pub fn users_by_email(
        &self,
        tenant: &TenantName,
        email: &str,
    ) -> Result<Vec<(UserId, String)>, ProjectionError> {
        let prefix = email_prefix(tenant, &email.to_lowercase());
        let mut users = Vec::new();
        for entry in self.store.scan_prefix(&prefix) {
            let (key, kind) = entry?;
            if let Some(id) = UserId::from_slice(&key[prefix.len()..]) {
                users.push((id, String::from_utf8_lossy(&kind).into_owned()));
            }
        }
        Ok(users)
    }

    /// Groups whose externalId is exactly `external_id`.
    pub fn groups_by_external_id(
        &self,
        tenant: &TenantName,
        external_id: &str,
    ) -> Result<Vec<GroupId>, ProjectionError> {
        let prefix = group_external_id_prefix(tenant, external_id);
        let mut groups = Vec::new();
        for entry in self.store.scan_prefix(&prefix) {
            let (key, _) = entry?;
            if let Some(id) = GroupId::from_slice(&key[prefix.len()..]) {
                groups.push(id);
            }
        }
        Ok(groups)
    }

    /// The default org role in effect at `at` (the current one when `at` is `None`).
    fn default_role_at(
        &self,
        tenant: &TenantName,
        at: Option<Timestamp>,
    ) -> Result<Option<Role>, ProjectionError> {
        let prefix = tenant_prefix(access::DEFAULT_ROLE, tenant);
        let mut end = prefix.clone();
        match at {
            Some(at) => {
                end.extend_from_slice(&access::time_bytes(at));
                end.extend_from_slice(&u64::MAX.to_be_bytes());
            }
            None => end.extend_from_slice(&[0xff; 16]),
        }
        match self.entries_through(prefix, end).next_back() {
            Some(entry) => {
                let (key, value) = entry?;
                Ok(Some(decode(&key, &value)?))
            }
            None => Ok(None),
        }
    }

    /// The last access snapshot of a user, as stored (default role unresolved).
    fn last_snapshot(
        &self,
        tenant: &TenantName,
        user: &UserId,
    ) -> Result<Option<AccessRecord>, ProjectionError> {
        match self
            .store
            .scan_prefix(history_prefix(tenant, user))
            .next_back()
        {
            Some(entry) => {
                let (key, value) = entry?;
                decode(&key, &value)
            }
            None => Ok(None),
        }
    }

    /// A user's effective access now; `None` when the user does not exist.
    pub fn access(
        &self,
        tenant: &TenantName,
        user: &UserId,
    ) -> Result<Option<AccessRecord>, ProjectionError> {
        let Some(record) = self.last_snapshot(tenant, user)? else {
            return Ok(None);
        };
        let default_role = self.default_role_at(tenant, None)?.unwrap_or(Role::Read);
        Ok(Some(record.resolve_default(default_role)))
    }

    /// A user's effective access as it was at `at` (by the log's recorded time); `None` when the
    /// user did not exist then.
    pub fn access_at(
        &self,
        tenant: &TenantName,
        user: &UserId,
        at: Timestamp,
    ) -> Result<Option<AccessRecord>, ProjectionError> {
        self.access_at_event(tenant, user, at, u64::MAX)
    }

    /// A user's effective access right after the event at log `sequence`, recorded at `at` (the
    /// events recorded at the same moment before it included, those after it not).
    pub fn access_at_event(
        &self,
        tenant: &TenantName,
        user: &UserId,
        at: Timestamp,
        sequence: u64,
    ) -> Result<Option<AccessRecord>, ProjectionError> {
        let prefix = history_prefix(tenant, user);
        let end = history_key(tenant, user, at, sequence);
        let Some(entry) = self.entries_through(prefix, end).next_back() else {
            return Ok(None);
        };
        let (key, value) = entry?;
        let snapshot: Option<AccessRecord> = decode(&key, &value)?;
        let Some(snapshot) = snapshot else {
            return Ok(None);
        };
        let default_role = self
            .default_role_at(tenant, Some(at))?
            .unwrap_or(Role::Read);
        Ok(Some(snapshot.resolve_default(default_role)))
    }

    /// Members of `group` at `at`, in id order, after `after`, at most `limit`. Answered from the
    /// membership intervals, not by replaying the log.
    pub fn members_at(
        &self,
        tenant: &TenantName,
        group: &GroupId,
        at: Timestamp,
        after: Option<UserId>,
        limit: usize,
    ) -> Result<Vec<UserId>, ProjectionError> {
        let prefix = interval_prefix(tenant, group);
        let mut start = prefix.clone();
        if let Some(after) = after {
            start.extend_from_slice(after.as_bytes());
            start.extend_from_slice(&[0xff; 8]);
        }
        let moment = at.as_micros().max(0) as u64;
        let mut members: Vec<UserId> = Vec::new();
        for entry in self.store.entries(&start, None) {
            let (key, value) = entry?;
            if !key.starts_with(&prefix) {
                break;
            }
            let rest = &key[prefix.len()..];
            let (Some(user), Some(from)) = (
                rest.get(..16).and_then(UserId::from_slice),
                trailing::<8>(rest).map(u64::from_be_bytes),
            ) else {
                continue;
            };
            let until = <[u8; 8]>::try_from(value.as_ref())
                .map(u64::from_be_bytes)
                .unwrap_or(OPEN);
            if from <= moment && moment < until && members.last() != Some(&user) {
                if members.len() >= limit {
                    break;
                }
                members.push(user);
            }
        }
        Ok(members)
    }

    /// Members of a resource group with the role each holds there, in id order, after `after`.
    pub fn resource_group_members(
        &self,
        tenant: &TenantName,
        resource_group: &ResourceGroupId,
        after: Option<UserId>,
        limit: usize,
    ) -> Result<Vec<ResourceGroupMember>, ProjectionError> {
        let mut prefix = tenant_prefix(access::RESOURCE_GROUP_MEMBER, tenant);
        prefix.extend_from_slice(resource_group.as_bytes());
        let mut start = prefix.clone();
        if let Some(after) = after {
            start.extend_from_slice(after.as_bytes());
            start.push(0);
        }
        let mut members = Vec::new();
        for entry in self.store.entries(&start, None) {
            let (key, value) = entry?;
            if !key.starts_with(&prefix) || members.len() >= limit {
                break;
            }
            if let Some(user) = trailing::<16>(&key).map(|id| UserId(uuid::Uuid::from_bytes(id))) {
                members.push(ResourceGroupMember {
                    user,
                    grant: decode(&key, &value)?,
                });
            }
        }
        Ok(members)
    }
}

/// The users whose access an event may change.
fn affected_users(
    store: &StateStore,
    state: &mut State,
    payload: &EventPayload,
) -> Result<Vec<UserId>, StoreError> {
    Ok(match payload {
        EventPayload::UserProvisioned { user_id, .. }
        | EventPayload::UserDeactivated { user_id, .. }
        | EventPayload::UserReactivated { user_id, .. }
        | EventPayload::UserDeleted { user_id, .. }
        | EventPayload::ResourceGroupMemberSet { user_id, .. }
        | EventPayload::ResourceGroupMemberRemoved { user_id, .. }
        | EventPayload::UserClaimRoleChanged { user_id, .. } => vec![*user_id],
        EventPayload::GroupMembersAdded { group_id, user_ids }
        | EventPayload::GroupMembersRemoved { group_id, user_ids } => {
            store.load_into(
                state,
                &domain::Footprint {
                    role_mappings: vec![*group_id],
                    links_of_groups: vec![*group_id],
                    ..domain::Footprint::default()
                },
            )?;
            if domain::membership_grants_access(state, *group_id) {
                user_ids.clone()
            } else {
                Vec::new()
            }
        }
        EventPayload::RoleMappingSet { group_id, .. }
        | EventPayload::RoleMappingRemoved { group_id }
        | EventPayload::ResourceGroupLinked { group_id, .. }
        | EventPayload::ResourceGroupLinkRoleChanged { group_id, .. }
        | EventPayload::ResourceGroupUnlinked { group_id, .. } => {
            store.load_into(
                state,
                &domain::Footprint {
                    members_of_groups: vec![*group_id],
                    ..domain::Footprint::default()
                },
            )?;
            state.members_of(*group_id).collect()
        }
        _ => Vec::new(),
    })
}

/// What one chunk of events changes, gathered before one atomic write.
struct Chunk<'a> {
    view: &'a DirectoryView,
    slices: BTreeMap<TenantName, (State, u64)>,
    /// View writes in event order; for one key the last wins.
    writes: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    /// Current access of users touched in this chunk (`None`: no such user).
    current: HashMap<(TenantName, UserId), Option<AccessRecord>>,
    /// Start of the open membership interval of edges touched in this chunk.
    open: HashMap<(TenantName, GroupId, UserId), Option<Timestamp>>,
    /// Users and groups created and deleted, in event order (for the position index).
    changes: Vec<Change>,
    last: u64,
}

impl<'a> Chunk<'a> {
    fn new(view: &'a DirectoryView) -> Self {
        Self {
            view,
            slices: BTreeMap::new(),
            writes: Vec::new(),
            current: HashMap::new(),
            open: HashMap::new(),
            changes: Vec::new(),
            last: 0,
        }
    }

    fn write(&mut self, key: Vec<u8>, value: Option<Vec<u8>>) {
        self.writes.push((key, value));
    }

    fn current_access(
        &mut self,
        tenant: &TenantName,
        user: UserId,
    ) -> Result<Option<AccessRecord>, ProjectionError> {
        if let Some(record) = self.current.get(&(tenant.clone(), user)) {
            return Ok(record.clone());
        }
        let record = self.view.last_snapshot(tenant, &user)?;
        self.current.insert((tenant.clone(), user), record.clone());
        Ok(record)
    }

    fn open_interval(
        &mut self,
        tenant: &TenantName,
        group: GroupId,
        user: UserId,
    ) -> Result<Option<Timestamp>, ProjectionError> {
        if let Some(open) = self.open.get(&(tenant.clone(), group, user)) {
            return Ok(*open);
        }
        let mut prefix = interval_prefix(tenant, &group);
        prefix.extend_from_slice(user.as_bytes());
        let open = match self.view.store.scan_prefix(&prefix).next_back() {
            Some(entry) => {
                let (key, value) = entry?;
                let until = <[u8; 8]>::try_from(value.as_ref())
                    .map(u64::from_be_bytes)
                    .unwrap_or(0);
                (until == OPEN)
                    .then(|| {
                        trailing::<8>(&key)
                            .map(|from| Timestamp::from_micros(u64::from_be_bytes(from) as i64))
                    })
                    .flatten()
            }
            None => None,
        };
        self.open.insert((tenant.clone(), group, user), open);
        Ok(open)
    }

    fn apply(&mut self, event: &Event) -> Result<(), ProjectionError> {
        let store = &self.view.store;
        let tenant = event.tenant.clone();
        if !self.slices.contains_key(&tenant) {
            let slice = store.slice(&tenant)?;
            self.slices.insert(tenant.clone(), (slice, 0));
        }
        let Some((mut state, _)) = self.slices.remove(&tenant) else {
            return Ok(());
        };
        store.load_into(&mut state, &event.payload.footprint())?;
        let user_before = event
            .payload
            .user_id()
            .and_then(|id| state.user(&id).cloned());
        let group_before = event
            .payload
            .group_id()
            .and_then(|id| state.group(&id).cloned());
        // Users an addition makes members: an edge that did not exist has no open interval (the
        // view opens one with every edge and closes it when the edge goes).
        let joining: Vec<UserId> = match &event.payload {
            EventPayload::GroupMembersAdded { group_id, user_ids } => user_ids
                .iter()
                .filter(|user| !state.is_member(*group_id, **user))
                .copied()
                .collect(),
            _ => Vec::new(),
        };
        domain::apply(&mut state, event);
        self.record_changes(event, &state, user_before.is_some(), group_before.is_some());
        let result = self.derive(
            event,
            &mut state,
            user_before.as_ref(),
            group_before.as_ref(),
            &joining,
        );
        self.slices.insert(tenant, (state, event.sequence));
        self.last = event.sequence;
        result
    }

    /// Records the users and groups `event` created or deleted, for the position index.
    fn record_changes(
        &mut self,
        event: &Event,
        state: &State,
        user_existed: bool,
        group_existed: bool,
    ) {
        let tenant = &event.tenant;
        if let Some(user) = event.payload.user_id() {
            match (user_existed, state.user(&user).is_some()) {
                (false, true) => self.changes.push(Change::Created(
                    tenant.clone(),
                    Listing::Users,
                    *user.as_bytes(),
                )),
                (true, false) => self.changes.push(Change::Deleted(
                    tenant.clone(),
                    Listing::Users,
                    *user.as_bytes(),
                )),
                _ => {}
            }
        }
        if let Some(group) = event.payload.group_id() {
            match (group_existed, state.group(&group).is_some()) {
                (false, true) => self.changes.push(Change::Created(
                    tenant.clone(),
                    Listing::Groups,
                    *group.as_bytes(),
                )),
                (true, false) => self.changes.push(Change::Deleted(
                    tenant.clone(),
                    Listing::Groups,
                    *group.as_bytes(),
                )),
                _ => {}
            }
        }
        if matches!(event.payload, EventPayload::BranchDropped) {
            self.changes.push(Change::Dropped(tenant.clone()));
        }
    }

    /// Updates the indexes and access views after `event` was applied to `state`.
    fn derive(
        &mut self,
        event: &Event,
        state: &mut State,
        user_before: Option<&UserRecord>,
        group_before: Option<&GroupRecord>,
        joining: &[UserId],
    ) -> Result<(), ProjectionError> {
        let tenant = &event.tenant;
        let at = event.recorded_at;
        if let Some(user) = event.payload.user_id() {
            let old = emails_of(user_before);
            let new = emails_of(state.user(&user));
            for (email, _) in old.difference(&new) {
                let mut key = email_prefix(tenant, email);
                key.extend_from_slice(user.as_bytes());
                self.write(key, None);
            }
            for (email, kind) in new.difference(&old) {
                let mut key = email_prefix(tenant, email);
                key.extend_from_slice(user.as_bytes());
                self.write(key, Some(kind.as_bytes().to_vec()));
            }
        }
        if let Some(group) = event.payload.group_id() {
            let old = group_external_id(group_before).map(str::to_owned);
            let new = group_external_id(state.group(&group)).map(str::to_owned);
            if old != new {
                if let Some(old) = old {
                    let mut key = group_external_id_prefix(tenant, &old);
                    key.extend_from_slice(group.as_bytes());
                    self.write(key, None);
                }
                if let Some(new) = new {
                    let mut key = group_external_id_prefix(tenant, &new);
                    key.extend_from_slice(group.as_bytes());
                    self.write(key, Some(Vec::new()));
                }
            }
        }
        if tenant.is_branch() {
            // A staging branch is read through SCIM only: no access views, which would otherwise
            // look like live access. A dropped branch leaves nothing behind.
            if matches!(event.payload, EventPayload::BranchDropped) {
                let mut owned = tenant.as_str().as_bytes().to_vec();
                owned.push(0);
                self.writes
                    .retain(|(key, _)| !key.get(1..).is_some_and(|rest| rest.starts_with(&owned)));
                self.current.retain(|(owner, _), _| owner != tenant);
                self.open.retain(|(owner, _, _), _| owner != tenant);
            }
            return Ok(());
        }
        match &event.payload {
            // A new user has no access history to look up.
            EventPayload::UserProvisioned { user_id, .. } => {
                self.current.insert((tenant.clone(), *user_id), None);
            }
            EventPayload::TenantCreated { default_role, .. }
            | EventPayload::DefaultRoleSet { role: default_role } => {
                self.write(
                    default_role_key(tenant, at, event.sequence),
                    Some(encode(default_role)),
                );
            }
            EventPayload::GroupMembersAdded { group_id, .. } => {
                for user in joining {
                    if state.is_member(*group_id, *user) {
                        self.write(
                            interval_key(tenant, group_id, user, at),
                            Some(OPEN.to_be_bytes().to_vec()),
                        );
                        self.open
                            .insert((tenant.clone(), *group_id, *user), Some(at));
                    }
                }
            }
            EventPayload::GroupMembersRemoved { group_id, user_ids } => {
                for user in user_ids {
                    if !state.is_member(*group_id, *user)
                        && let Some(from) = self.open_interval(tenant, *group_id, *user)?
                    {
                        let until = at.as_micros().max(0) as u64;
                        self.write(
                            interval_key(tenant, group_id, user, from),
                            Some(until.to_be_bytes().to_vec()),
                        );
                        self.open.insert((tenant.clone(), *group_id, *user), None);
                    }
                }
            }
            _ => {}
        }
        for user in affected_users(&self.view.store, state, &event.payload)? {
            self.view.store.load_access(state, user)?;
            let new = domain::access(state, user).map(|access| AccessRecord::from(&access));
            let old = self.current_access(tenant, user)?;
            if new == old {
                continue;
            }
            let no_groups = BTreeMap::new();
            let old_groups = old
                .as_ref()
                .map_or(&no_groups, |record| &record.resource_groups);
            let new_groups = new
                .as_ref()
                .map_or(&no_groups, |record| &record.resource_groups);
            let mut changes: Vec<(ResourceGroupId, Option<Grant>)> = Vec::new();
            for resource_group in old_groups.keys() {
                if !new_groups.contains_key(resource_group) {
                    changes.push((*resource_group, None));
                }
            }
            for (resource_group, grant) in new_groups {
                if old_groups.get(resource_group) != Some(grant) {
                    changes.push((*resource_group, Some(grant.clone())));
                }
            }
            for (resource_group, grant) in changes {
                self.write(
                    resource_group_member_key(tenant, &resource_group, &user),
                    grant.map(|grant| encode(&grant)),
                );
            }
            self.write(
                history_key(tenant, &user, at, event.sequence),
                Some(encode(&new)),
            );
            self.current.insert((tenant.clone(), user), new);
        }
        Ok(())
    }

    fn finish(self) -> Result<Changes, ProjectionError> {
        let mut batch = Changes::default();
        for (tenant, (mut state, last)) in self.slices {
            self.view.store.stage(&mut state, &mut batch)?;
            if last > 0 {
                self.view
                    .store
                    .stage_tenant_checkpoint(&mut batch, &tenant, last);
            }
        }
        for (key, value) in self.writes {
            batch.put_or_delete(key, value);
        }
        if self.last > 0 {
            self.view
                .store
                .stage_global_checkpoint(&mut batch, self.last);
        }
        Ok(batch)
    }
}

impl Projection for DirectoryView {
    fn name(&self) -> &'static str {
        "directory"
    }

    fn checkpoint(&self) -> Result<u64, ProjectionError> {
        Ok(self.store.checkpoint()?)
    }

    fn apply(&self, events: &[Event]) -> Result<(), ProjectionError> {
        let mut chunk = Chunk::new(self);
        for event in events {
            chunk.apply(event)?;
        }
        let changes = std::mem::take(&mut chunk.changes);
        let batch = chunk.finish()?;
        self.positions.write(
            &changes,
            || self.store.apply_changes(batch),
            |tenant, listing, from, until| self.ids_between(tenant, listing, from, until).ok(),
        )?;
        Ok(self.store.persist_if_due()?)
    }

    fn persist(&self) -> Result<(), ProjectionError> {
        Ok(self.store.drain()?)
    }

    fn reset(&self) -> Result<(), ProjectionError> {
        let cleared = self.store.clear();
        self.positions.reset();
        Ok(cleared?)
    }
}
