//! The state `decide` reads and `apply` evolves: one tenant's directory.
//!
//! The same type serves two purposes. Tests fold events into a complete `State`. The engine loads
//! only the *slice* a command needs (its [`Footprint`]) from the aggregate store, so memory does
//! not grow with the directory. Every map therefore distinguishes "known absent" (`None`, `false`)
//! from a key that is simply not in the slice; the loader guarantees that every key in the
//! footprint is present, and that an enumeration the footprint asks for (all members of a group,
//! all groups of a user, …) is complete. `apply` records what it touched in a [`Journal`] so the
//! store writes back exactly those entries: adding one member to a group of any size touches a
//! constant number of entries.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::handle::UsernamePolicy;
use super::ids::SsfStreamId;
use super::ids::WebhookId;
use super::ids::{GroupId, ResourceGroupId, Role, TenantName, Timestamp, TokenId, UserId};
use super::ssf::SsfStreamRecord;
use super::user::{Attributes, UserProfile};
use super::webhook::WebhookRecord;

/// A tenant's own record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TenantRecord {
    pub created_at: Timestamp,
    pub default_role: Role,
    #[serde(default)]
    pub sso_enforced: bool,
    /// How handles follow from userNames.
    #[serde(default)]
    pub usernames: UsernamePolicy,
    /// Users whose handle differs from their userName (the policy may go back to strict only
    /// when there are none).
    #[serde(default)]
    pub derived_handles: u64,
    /// Users currently in the directory (deleted ones excluded).
    pub user_count: u64,
    #[serde(default)]
    pub group_count: u64,
    /// Set while the tenant is staged: its SCIM traffic goes to this staging branch.
    #[serde(default)]
    pub staging: Option<Staging>,
    /// How many times the tenant was staged (the last branch's generation).
    #[serde(default)]
    pub stagings: u64,
    /// Set on a staging branch's own record (never on a tenant's).
    #[serde(default)]
    pub branch: Option<BranchState>,
    /// Claim → org role mappings for just-in-time provisioning, sorted by claim and folded value.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub claim_role_mappings: Vec<ClaimRoleMapping>,
    /// Webhook subscriptions, in the order they were added (a handful: at most
    /// `WEBHOOKS_PER_TENANT_MAX`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub webhooks: Vec<WebhookRecord>,
    /// Shared Signals streams, in the order they were created (at most
    /// `SSF_STREAMS_PER_TENANT_MAX`, one per receiver).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ssf_streams: Vec<SsfStreamRecord>,
}

impl TenantRecord {
    pub fn webhook(&self, id: &WebhookId) -> Option<&WebhookRecord> {
        self.webhooks.iter().find(|webhook| webhook.id == *id)
    }

    pub fn ssf_stream(&self, id: &SsfStreamId) -> Option<&SsfStreamRecord> {
        self.ssf_streams.iter().find(|stream| stream.id == *id)
    }
}

/// A tenant's current staging.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Staging {
    /// Which branch (see `TenantName::staging_branch`).
    pub generation: u64,
    pub since: Timestamp,
}

/// Where a staging branch is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BranchState {
    /// The live directory is being copied in; SCIM waits.
    Copying,
    /// SCIM reads and writes go here.
    Open,
    /// A promotion is reading it: no more writes.
    Frozen,
}

/// An SSO claim value that grants an org role at just-in-time provisioning: the claim at the
/// dotted path `claim` (e.g. `groups`, `custom.department`) equals `value` (case-insensitively),
/// or holds it as an element of an array.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimRoleMapping {
    pub claim: String,
    pub value: String,
    pub role: Role,
}

/// The org role a user's SSO claims granted at their last just-in-time provisioning, with the
/// mapping that granted it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ClaimRole {
    pub role: Role,
    pub claim: String,
    pub value: String,
}

/// A user's link to an SSO identity (set by just-in-time provisioning).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SsoLink {
    /// The IdP's subject (`sub`) for the user; unique per tenant.
    pub subject: String,
    /// The IdP's issuer (the login's `iss` claim), when the login carried one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_role: Option<ClaimRole>,
}

/// What a token may call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenScope {
    /// SCIM and the tenant's gRPC services (every token issued before scopes existed).
    #[default]
    Scim,
    /// The Shared Signals (SSF) endpoints only: a receiver's OAuth client credentials.
    Ssf,
}

impl TokenScope {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenScope::Scim => "scim",
            TokenScope::Ssf => "ssf",
        }
    }

    /// Reads a scope as requests and events carry it; empty is `scim`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "" | "scim" => Some(TokenScope::Scim),
            "ssf" => Some(TokenScope::Ssf),
            _ => None,
        }
    }
}

/// A bearer token. Only the SHA-256 of its secret is kept.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub id: TokenId,
    pub name: String,
    #[serde(default)]
    pub scope: TokenScope,
    pub secret_sha256: [u8; 32],
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
    /// When it last authenticated a request, to the hour.
    #[serde(default)]
    pub last_used_at: Option<Timestamp>,
}

impl TokenRecord {
    /// Whether the token authenticates at `now`.
    pub fn is_valid_at(&self, now: Timestamp) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|expiry| now < expiry)
    }
}

/// A managed user as the directory holds it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserRecord {
    pub id: UserId,
    pub profile: UserProfile,
    /// Incremented by every event that changes the user; the SCIM ETag.
    pub version: u64,
    pub created_at: Timestamp,
    pub modified_at: Timestamp,
    /// Set once the user signed in through SSO and was provisioned just in time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sso: Option<SsoLink>,
    /// The platform handle when it differs from the userName; absent, the handle is the userName
    /// (always so under the `strict` policy, and for users stored before handles existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handle: Option<String>,
}

impl UserRecord {
    /// The user's SSO identity, when linked by a login that named its issuer.
    pub fn sso_identity(&self) -> Option<super::event::SsoIdentity> {
        let link = self.sso.as_ref()?;
        Some(super::event::SsoIdentity {
            issuer: link.issuer.clone()?,
            subject: link.subject.clone(),
        })
    }

    /// The user's platform handle.
    pub fn handle(&self) -> &str {
        self.handle.as_deref().unwrap_or(&self.profile.user_name)
    }
}

/// What an IdP says about a group, members aside (they are edges).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupProfile {
    pub display_name: String,
    pub external_id: Option<String>,
    pub attributes: Attributes,
}

/// A SCIM group. Its members are not in the record: each membership is its own entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupRecord {
    pub id: GroupId,
    pub profile: GroupProfile,
    pub member_count: u64,
    /// Incremented by every event that changes the group or its members; the SCIM ETag.
    pub version: u64,
    pub created_at: Timestamp,
    pub modified_at: Timestamp,
}

/// A named set of resources (repositories, datasets, spaces) that users reach with a role.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResourceGroupRecord {
    pub id: ResourceGroupId,
    pub name: String,
    /// SCIM groups linked to this resource group, with the role each grants. Non-empty: the
    /// resource group is SCIM-managed and refuses manual member changes.
    pub links: BTreeMap<GroupId, Role>,
    /// Members added by hand (only while not SCIM-managed).
    pub manual_member_count: u64,
    pub created_at: Timestamp,
}

impl ResourceGroupRecord {
    pub fn is_scim_managed(&self) -> bool {
        !self.links.is_empty()
    }
}

/// What a command or an event needs loaded before `decide` or `apply` can run on a slice.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Footprint {
    pub tokens: Vec<TokenId>,
    /// Every token of the tenant (a handful: revocations check that another stays valid).
    pub all_tokens: bool,
    pub users: Vec<UserId>,
    /// Folded userNames to resolve.
    pub user_names: Vec<String>,
    /// externalIds whose every holder must be loaded (proportional to how many share one).
    pub user_external_ids: Vec<String>,
    /// SSO subjects to resolve.
    pub user_subjects: Vec<String>,
    /// Folded handles to resolve (handles that differ from their userName).
    pub user_handles: Vec<String>,
    pub groups: Vec<GroupId>,
    /// Folded displayNames to resolve.
    pub group_names: Vec<String>,
    /// Single membership edges to know.
    pub memberships: Vec<(GroupId, UserId)>,
    /// Users whose every group membership must be loaded.
    pub groups_of_users: Vec<UserId>,
    /// Groups whose every member must be loaded (proportional to the group's size).
    pub members_of_groups: Vec<GroupId>,
    pub role_mappings: Vec<GroupId>,
    pub resource_groups: Vec<ResourceGroupId>,
    /// Folded resource group names to resolve.
    pub resource_group_names: Vec<String>,
    /// Groups whose every resource-group link must be loaded, with the linked resource groups.
    pub links_of_groups: Vec<GroupId>,
    /// Single manual resource-group memberships to know.
    pub resource_group_members: Vec<(ResourceGroupId, UserId)>,
    /// Users whose every manual resource-group membership must be loaded, with those groups.
    pub resource_groups_of_users: Vec<UserId>,
    /// Resource groups whose every manual member must be loaded.
    pub members_of_resource_groups: Vec<ResourceGroupId>,
    /// Everything the tenant holds (promotion compares whole directories).
    pub whole_tenant: bool,
}

impl Footprint {
    /// Adds everything `other` needs.
    pub fn extend(&mut self, other: Footprint) {
        let Footprint {
            tokens,
            all_tokens,
            users,
            user_names,
            user_external_ids,
            user_subjects,
            user_handles,
            groups,
            group_names,
            memberships,
            groups_of_users,
            members_of_groups,
            role_mappings,
            resource_groups,
            resource_group_names,
            links_of_groups,
            resource_group_members,
            resource_groups_of_users,
            members_of_resource_groups,
            whole_tenant,
        } = other;
        self.tokens.extend(tokens);
        self.all_tokens |= all_tokens;
        self.users.extend(users);
        self.user_names.extend(user_names);
        self.user_external_ids.extend(user_external_ids);
        self.user_subjects.extend(user_subjects);
        self.user_handles.extend(user_handles);
        self.groups.extend(groups);
        self.group_names.extend(group_names);
        self.memberships.extend(memberships);
        self.groups_of_users.extend(groups_of_users);
        self.members_of_groups.extend(members_of_groups);
        self.role_mappings.extend(role_mappings);
        self.resource_groups.extend(resource_groups);
        self.resource_group_names.extend(resource_group_names);
        self.links_of_groups.extend(links_of_groups);
        self.resource_group_members.extend(resource_group_members);
        self.resource_groups_of_users
            .extend(resource_groups_of_users);
        self.members_of_resource_groups
            .extend(members_of_resource_groups);
        self.whole_tenant |= whole_tenant;
    }
}

/// Which entries `apply` changed, in the order it changed them.
#[derive(Clone, Debug, Default)]
pub struct Journal(Vec<Touched>);

/// One entry of the state that `apply` changed.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Touched {
    /// Every entry of the tenant is gone (a dropped staging branch). Sorts first, so a store
    /// clears the tenant before writing anything else the journal holds.
    Everything,
    Tenant,
    Token(TokenId),
    User(UserId),
    UserName(String),
    /// Whether a user holds an externalId (an edge of the one-to-many index).
    UserExternalId(String, UserId),
    UserSubject(String),
    UserHandle(String),
    Group(GroupId),
    GroupName(String),
    Membership(GroupId, UserId),
    RoleMapping(GroupId),
    ResourceGroup(ResourceGroupId),
    ResourceGroupName(String),
    GroupLink(GroupId, ResourceGroupId),
    ResourceGroupMember(ResourceGroupId, UserId),
}

impl Journal {
    /// The touched entries, each once.
    pub fn drain(&mut self) -> BTreeSet<Touched> {
        std::mem::take(&mut self.0).into_iter().collect()
    }

    /// How many entries were touched (with repeats).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn touch(&mut self, touched: Touched) {
        self.0.push(touched);
    }
}

/// The journal is bookkeeping for the store, not part of the state's meaning.
impl PartialEq for Journal {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

/// One tenant's directory, complete (tests) or as a loaded slice (engine).
#[derive(Clone, Debug, PartialEq)]
pub struct State {
    pub name: TenantName,
    pub tenant: Option<TenantRecord>,
    pub tokens: BTreeMap<TokenId, Option<TokenRecord>>,
    pub users: BTreeMap<UserId, Option<UserRecord>>,
    /// Folded userName → owner.
    pub user_names: BTreeMap<String, Option<UserId>>,
    /// externalId edges: `true` the user holds the externalId, `false` known not to. The client
    /// controls externalIds (RFC 7643 §3.1): several users may share one. Change them through
    /// [`State::set_user_external_id`] or [`State::know_user_external_id`].
    pub user_external_ids: BTreeMap<(String, UserId), bool>,
    /// SSO subject → linked user.
    pub user_subjects: BTreeMap<String, Option<UserId>>,
    /// Folded handle → user, for the users whose handle differs from their userName (the others'
    /// handles are their userNames, in `user_names`).
    pub user_handles: BTreeMap<String, Option<UserId>>,
    pub groups: BTreeMap<GroupId, Option<GroupRecord>>,
    /// Folded displayName → group.
    pub group_names: BTreeMap<String, Option<GroupId>>,
    /// Membership edges: `true` member, `false` known not to be. Change them through
    /// [`State::set_membership`] or [`State::know_membership`], which keep `member_of` in step.
    pub memberships: BTreeMap<(GroupId, UserId), bool>,
    /// The members edges of `memberships` turned around, to find a user's groups.
    member_of: BTreeSet<(UserId, GroupId)>,
    /// Group → the org role members get from it.
    pub role_mappings: BTreeMap<GroupId, Option<Role>>,
    pub resource_groups: BTreeMap<ResourceGroupId, Option<ResourceGroupRecord>>,
    /// Folded name → resource group.
    pub resource_group_names: BTreeMap<String, Option<ResourceGroupId>>,
    /// The reverse of each resource group's `links`: group → linked resource groups.
    pub group_links: BTreeMap<(GroupId, ResourceGroupId), Option<Role>>,
    /// Manual resource-group memberships with their role. Change them through
    /// [`State::set_resource_group_member`] or [`State::know_resource_group_member`].
    pub resource_group_members: BTreeMap<(ResourceGroupId, UserId), Option<Role>>,
    /// The memberships of `resource_group_members` turned around.
    resource_group_member_of: BTreeSet<(UserId, ResourceGroupId)>,
    /// Which complete enumerations the slice holds (see [`Footprint`]).
    pub loaded: Loaded,
    pub journal: Journal,
}

/// Enumerations a slice holds completely.
#[derive(Clone, Debug, Default)]
pub struct Loaded {
    pub all_tokens: bool,
    /// externalIds whose every holder is loaded.
    pub user_external_ids: BTreeSet<String>,
    pub groups_of_users: BTreeSet<UserId>,
    pub members_of_groups: BTreeSet<GroupId>,
    pub links_of_groups: BTreeSet<GroupId>,
    pub resource_groups_of_users: BTreeSet<UserId>,
    pub members_of_resource_groups: BTreeSet<ResourceGroupId>,
    /// The slice holds the whole tenant.
    pub whole_tenant: bool,
    /// The tenant was dropped in this slice: the store has nothing newer to load.
    pub dropped: bool,
}

/// Which enumerations are loaded is bookkeeping for the loader, not the state's meaning.
impl PartialEq for Loaded {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

fn range_of<K: Copy + Ord, V: Ord + Copy>(
    first: K,
    min: V,
    max: V,
) -> std::ops::RangeInclusive<(K, V)> {
    (first, min)..=(first, max)
}

const MIN_USER: UserId = UserId(uuid::Uuid::nil());
const MAX_USER: UserId = UserId(uuid::Uuid::max());
const MIN_GROUP: GroupId = GroupId(uuid::Uuid::nil());
const MAX_GROUP: GroupId = GroupId(uuid::Uuid::max());
const MIN_RESOURCE_GROUP: ResourceGroupId = ResourceGroupId(uuid::Uuid::nil());
const MAX_RESOURCE_GROUP: ResourceGroupId = ResourceGroupId(uuid::Uuid::max());

impl State {
    /// An empty directory for `name` (a tenant that does not exist yet).
    pub fn new(name: TenantName) -> Self {
        Self {
            name,
            tenant: None,
            tokens: BTreeMap::new(),
            users: BTreeMap::new(),
            user_names: BTreeMap::new(),
            user_external_ids: BTreeMap::new(),
            user_subjects: BTreeMap::new(),
            user_handles: BTreeMap::new(),
            groups: BTreeMap::new(),
            group_names: BTreeMap::new(),
            memberships: BTreeMap::new(),
            member_of: BTreeSet::new(),
            role_mappings: BTreeMap::new(),
            resource_groups: BTreeMap::new(),
            resource_group_names: BTreeMap::new(),
            group_links: BTreeMap::new(),
            resource_group_members: BTreeMap::new(),
            resource_group_member_of: BTreeSet::new(),
            loaded: Loaded::default(),
            journal: Journal::default(),
        }
    }

    /// Forgets everything the tenant held (a dropped staging branch) and journals that.
    pub(crate) fn drop_everything(&mut self) {
        let mut journal = std::mem::take(&mut self.journal);
        *self = State::new(self.name.clone());
        journal.touch(Touched::Everything);
        self.journal = journal;
        self.loaded.dropped = true;
    }

    /// Every user the slice holds (all of them when the whole tenant was loaded).
    pub fn all_users(&self) -> impl Iterator<Item = &UserRecord> + '_ {
        self.users.values().filter_map(Option::as_ref)
    }

    /// Every group the slice holds (all of them when the whole tenant was loaded).
    pub fn all_groups(&self) -> impl Iterator<Item = &GroupRecord> + '_ {
        self.groups.values().filter_map(Option::as_ref)
    }

    /// A copy of the tenant record and of the entries `footprint` names, as they are now: what
    /// one command's caller needs to see of a slice that later commands keep changing.
    pub fn extract(&self, footprint: &Footprint) -> State {
        fn copy<K: Ord + Clone, V: Clone>(
            from: &BTreeMap<K, V>,
            to: &mut BTreeMap<K, V>,
            keys: &[K],
        ) {
            for key in keys {
                if let Some(value) = from.get(key) {
                    to.insert(key.clone(), value.clone());
                }
            }
        }
        let mut extract = State::new(self.name.clone());
        extract.tenant = self.tenant.clone();
        copy(&self.tokens, &mut extract.tokens, &footprint.tokens);
        copy(&self.users, &mut extract.users, &footprint.users);
        copy(
            &self.user_names,
            &mut extract.user_names,
            &footprint.user_names,
        );
        for external_id in &footprint.user_external_ids {
            for user in self.user_ids_by_external_id(external_id) {
                extract.set_user_external_id(external_id, user, true);
            }
        }
        copy(
            &self.user_subjects,
            &mut extract.user_subjects,
            &footprint.user_subjects,
        );
        copy(
            &self.user_handles,
            &mut extract.user_handles,
            &footprint.user_handles,
        );
        copy(&self.groups, &mut extract.groups, &footprint.groups);
        copy(
            &self.group_names,
            &mut extract.group_names,
            &footprint.group_names,
        );
        copy(
            &self.role_mappings,
            &mut extract.role_mappings,
            &footprint.role_mappings,
        );
        copy(
            &self.resource_groups,
            &mut extract.resource_groups,
            &footprint.resource_groups,
        );
        copy(
            &self.resource_group_names,
            &mut extract.resource_group_names,
            &footprint.resource_group_names,
        );
        extract
    }

    pub fn user(&self, id: &UserId) -> Option<&UserRecord> {
        self.users.get(id).and_then(Option::as_ref)
    }

    pub fn token(&self, id: &TokenId) -> Option<&TokenRecord> {
        self.tokens.get(id).and_then(Option::as_ref)
    }

    /// The user holding a folded userName.
    pub fn user_id_by_name(&self, folded: &str) -> Option<UserId> {
        self.user_names.get(folded).copied().flatten()
    }

    /// The users holding `external_id`, in id order (all of them when it was loaded).
    pub fn user_ids_by_external_id(&self, external_id: &str) -> Vec<UserId> {
        let range = (external_id.to_owned(), MIN_USER)..=(external_id.to_owned(), MAX_USER);
        self.user_external_ids
            .range(range)
            .filter(|(_, holds)| **holds)
            .map(|((_, user), _)| *user)
            .collect()
    }

    /// Records that `user` holds (or does not hold) `external_id`.
    pub fn set_user_external_id(&mut self, external_id: &str, user: UserId, holds: bool) {
        self.user_external_ids
            .insert((external_id.to_owned(), user), holds);
    }

    /// Records an externalId edge read from storage, unless the slice already knows a newer
    /// value.
    pub fn know_user_external_id(&mut self, external_id: &str, user: UserId, holds: bool) {
        self.user_external_ids
            .entry((external_id.to_owned(), user))
            .or_insert(holds);
    }

    /// The user linked to an SSO subject.
    pub fn user_id_by_subject(&self, subject: &str) -> Option<UserId> {
        self.user_subjects.get(subject).copied().flatten()
    }

    /// The user whose handle, differing from their userName, is the folded `handle`.
    pub fn user_id_by_derived_handle(&self, folded: &str) -> Option<UserId> {
        self.user_handles.get(folded).copied().flatten()
    }

    pub fn group(&self, id: &GroupId) -> Option<&GroupRecord> {
        self.groups.get(id).and_then(Option::as_ref)
    }

    /// The group holding a folded displayName.
    pub fn group_id_by_name(&self, folded: &str) -> Option<GroupId> {
        self.group_names.get(folded).copied().flatten()
    }

    pub fn is_member(&self, group: GroupId, user: UserId) -> bool {
        self.memberships
            .get(&(group, user))
            .copied()
            .unwrap_or(false)
    }

    /// Members of `group` held by the slice (all of them when `members_of_groups` was loaded).
    pub fn members_of(&self, group: GroupId) -> impl Iterator<Item = UserId> + '_ {
        self.memberships
            .range(range_of(group, MIN_USER, MAX_USER))
            .filter(|(_, member)| **member)
            .map(|((_, user), _)| *user)
    }

    /// Groups of `user` held by the slice (all of them when `groups_of_users` was loaded).
    pub fn groups_of(&self, user: UserId) -> impl Iterator<Item = GroupId> + '_ {
        self.member_of
            .range(range_of(user, MIN_GROUP, MAX_GROUP))
            .map(|(_, group)| *group)
    }

    /// Records that `user` is (or is not) a member of `group`.
    pub fn set_membership(&mut self, group: GroupId, user: UserId, member: bool) {
        self.memberships.insert((group, user), member);
        if member {
            self.member_of.insert((user, group));
        } else {
            self.member_of.remove(&(user, group));
        }
    }

    /// Records a membership read from storage, unless the slice already knows a newer value.
    pub fn know_membership(&mut self, group: GroupId, user: UserId, member: bool) {
        if !self.memberships.contains_key(&(group, user)) {
            self.set_membership(group, user, member);
        }
    }

    /// Records `user`'s manual role in `resource_group` (`None`: not a member).
    pub fn set_resource_group_member(
        &mut self,
        resource_group: ResourceGroupId,
        user: UserId,
        role: Option<Role>,
    ) {
        self.resource_group_members
            .insert((resource_group, user), role);
        if role.is_some() {
            self.resource_group_member_of.insert((user, resource_group));
        } else {
            self.resource_group_member_of
                .remove(&(user, resource_group));
        }
    }

    /// Records a manual membership read from storage, unless the slice knows a newer value.
    pub fn know_resource_group_member(
        &mut self,
        resource_group: ResourceGroupId,
        user: UserId,
        role: Option<Role>,
    ) {
        if !self
            .resource_group_members
            .contains_key(&(resource_group, user))
        {
            self.set_resource_group_member(resource_group, user, role);
        }
    }

    pub fn role_mapping(&self, group: &GroupId) -> Option<Role> {
        self.role_mappings.get(group).copied().flatten()
    }

    pub fn resource_group(&self, id: &ResourceGroupId) -> Option<&ResourceGroupRecord> {
        self.resource_groups.get(id).and_then(Option::as_ref)
    }

    pub fn resource_group_id_by_name(&self, folded: &str) -> Option<ResourceGroupId> {
        self.resource_group_names.get(folded).copied().flatten()
    }

    /// Resource groups linked to `group`, with the role of each link.
    pub fn links_of(&self, group: GroupId) -> impl Iterator<Item = (ResourceGroupId, Role)> + '_ {
        self.group_links
            .range(range_of(group, MIN_RESOURCE_GROUP, MAX_RESOURCE_GROUP))
            .filter_map(|((_, resource_group), role)| role.map(|role| (*resource_group, role)))
    }

    pub fn resource_group_member(
        &self,
        resource_group: ResourceGroupId,
        user: UserId,
    ) -> Option<Role> {
        self.resource_group_members
            .get(&(resource_group, user))
            .copied()
            .flatten()
    }

    /// Manual members of `resource_group` held by the slice.
    pub fn members_of_resource_group(
        &self,
        resource_group: ResourceGroupId,
    ) -> impl Iterator<Item = (UserId, Role)> + '_ {
        self.resource_group_members
            .range(range_of(resource_group, MIN_USER, MAX_USER))
            .filter_map(|((_, user), role)| role.map(|role| (*user, role)))
    }

    /// Manual resource-group memberships of `user` held by the slice.
    pub fn resource_groups_of(
        &self,
        user: UserId,
    ) -> impl Iterator<Item = (ResourceGroupId, Role)> + '_ {
        self.resource_group_members
            .iter()
            .filter(move |((_, member), _)| *member == user)
            .filter_map(|((resource_group, _), role)| role.map(|role| (*resource_group, role)))
    }
}
