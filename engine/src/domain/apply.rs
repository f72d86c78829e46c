//! `apply`: folds one event into a state or slice and journals what it touched. Events were
//! decided against the same state, so `apply` never refuses; an event whose target is missing from
//! the slice changes nothing.

use super::event::{Event, EventPayload};
use super::ids::{GroupId, Timestamp, UserId};
use super::state::{
    BranchState, ClaimRoleMapping, GroupRecord, ResourceGroupRecord, SsoLink, Staging, State,
    TenantRecord, TokenRecord, Touched, UserRecord,
};
use super::user::fold;

pub fn apply(state: &mut State, event: &Event) {
    let at = event.occurred_at;
    match &event.payload {
        EventPayload::TenantCreated { default_role } => {
            state.tenant = Some(TenantRecord {
                created_at: at,
                default_role: *default_role,
                sso_enforced: false,
                user_count: 0,
                group_count: 0,
                staging: None,
                stagings: 0,
                branch: None,
                claim_role_mappings: Vec::new(),
            });
            state.journal.touch(Touched::Tenant);
        }
        EventPayload::TokenIssued {
            token_id,
            name,
            secret_sha256,
            expires_at,
        } => {
            state.tokens.insert(
                token_id.clone(),
                Some(TokenRecord {
                    id: token_id.clone(),
                    name: name.clone(),
                    secret_sha256: *secret_sha256,
                    created_at: at,
                    expires_at: *expires_at,
                    revoked_at: None,
                    last_used_at: None,
                }),
            );
            state.journal.touch(Touched::Token(token_id.clone()));
        }
        EventPayload::TokenRevoked { token_id } => {
            if let Some(Some(token)) = state.tokens.get_mut(token_id) {
                token.revoked_at = Some(at);
                state.journal.touch(Touched::Token(token_id.clone()));
            }
        }
        EventPayload::TokenExpiryChanged {
            token_id,
            expires_at,
        } => {
            if let Some(Some(token)) = state.tokens.get_mut(token_id) {
                token.expires_at = *expires_at;
                state.journal.touch(Touched::Token(token_id.clone()));
            }
        }
        EventPayload::TokenUsed { token_id } => {
            if let Some(Some(token)) = state.tokens.get_mut(token_id) {
                token.last_used_at = Some(at);
                state.journal.touch(Touched::Token(token_id.clone()));
            }
        }
        EventPayload::TenantSettingsChanged { sso_enforced } => {
            if let (Some(tenant), Some(enforced)) = (state.tenant.as_mut(), sso_enforced) {
                tenant.sso_enforced = *enforced;
                state.journal.touch(Touched::Tenant);
            }
        }
        EventPayload::UserProvisioned { user_id, profile } => {
            set_user_name(state, *user_id, None, Some(&profile.user_name));
            set_external_id(state, *user_id, None, profile.external_id.as_deref());
            state.users.insert(
                *user_id,
                Some(UserRecord {
                    id: *user_id,
                    profile: profile.clone(),
                    version: 1,
                    created_at: at,
                    modified_at: at,
                    sso: None,
                }),
            );
            state.journal.touch(Touched::User(*user_id));
            // A new user has no memberships anywhere yet: nothing to enumerate from storage.
            state.loaded.groups_of_users.insert(*user_id);
            state.loaded.resource_groups_of_users.insert(*user_id);
            adjust_user_count(state, 1);
        }
        EventPayload::UserUpdated {
            user_id,
            user_name,
            external_id,
            changed_attributes,
        } => {
            let Some(Some(mut user)) = state.users.get(user_id).cloned() else {
                return;
            };
            if let Some(new_name) = user_name {
                set_user_name(
                    state,
                    *user_id,
                    Some(&user.profile.user_name),
                    Some(new_name),
                );
                user.profile.user_name.clone_from(new_name);
            }
            if let Some(new_external_id) = external_id {
                set_external_id(
                    state,
                    *user_id,
                    user.profile.external_id.as_deref(),
                    new_external_id.as_deref(),
                );
                user.profile.external_id.clone_from(new_external_id);
            }
            for (name, value) in changed_attributes {
                if value.is_null() {
                    user.profile.attributes.remove(name);
                } else {
                    user.profile.attributes.insert(name.clone(), value.clone());
                }
            }
            bump(state, user, at);
        }
        EventPayload::UserDeactivated { user_id, .. }
        | EventPayload::UserReactivated { user_id, .. } => {
            let active = matches!(event.payload, EventPayload::UserReactivated { .. });
            let Some(Some(mut user)) = state.users.get(user_id).cloned() else {
                return;
            };
            user.profile.active = active;
            bump(state, user, at);
        }
        EventPayload::UserDeleted { user_id, .. } => {
            let Some(Some(user)) = state.users.get(user_id).cloned() else {
                return;
            };
            set_user_name(state, *user_id, Some(&user.profile.user_name), None);
            set_external_id(state, *user_id, user.profile.external_id.as_deref(), None);
            if let Some(link) = &user.sso {
                set_subject(state, *user_id, Some(&link.subject), None);
            }
            state.users.insert(*user_id, None);
            state.journal.touch(Touched::User(*user_id));
            adjust_user_count(state, -1);
        }
        EventPayload::GroupCreated { group_id, profile } => {
            let name = fold(&profile.display_name);
            state.group_names.insert(name.clone(), Some(*group_id));
            state.journal.touch(Touched::GroupName(name));
            state.groups.insert(
                *group_id,
                Some(GroupRecord {
                    id: *group_id,
                    profile: profile.clone(),
                    member_count: 0,
                    version: 1,
                    created_at: at,
                    modified_at: at,
                }),
            );
            state.journal.touch(Touched::Group(*group_id));
            // A new group has no members and no links yet.
            state.loaded.members_of_groups.insert(*group_id);
            state.loaded.links_of_groups.insert(*group_id);
            if let Some(tenant) = state.tenant.as_mut() {
                tenant.group_count += 1;
                state.journal.touch(Touched::Tenant);
            }
        }
        EventPayload::GroupRenamed {
            group_id,
            display_name,
        } => {
            let Some(mut group) = state.group(group_id).cloned() else {
                return;
            };
            let old = fold(&group.profile.display_name);
            if state.group_id_by_name(&old) == Some(*group_id)
                || !state.group_names.contains_key(&old)
            {
                state.group_names.insert(old.clone(), None);
                state.journal.touch(Touched::GroupName(old));
            }
            let new = fold(display_name);
            state.group_names.insert(new.clone(), Some(*group_id));
            state.journal.touch(Touched::GroupName(new));
            group.profile.display_name.clone_from(display_name);
            bump_group(state, group, at);
        }
        EventPayload::GroupUpdated {
            group_id,
            external_id,
            changed_attributes,
        } => {
            let Some(mut group) = state.group(group_id).cloned() else {
                return;
            };
            if let Some(external_id) = external_id {
                group.profile.external_id.clone_from(external_id);
            }
            for (name, value) in changed_attributes {
                if value.is_null() {
                    group.profile.attributes.remove(name);
                } else {
                    group.profile.attributes.insert(name.clone(), value.clone());
                }
            }
            bump_group(state, group, at);
        }
        EventPayload::GroupMembersAdded { group_id, user_ids } => {
            set_members(state, *group_id, user_ids, true, at);
        }
        EventPayload::GroupMembersRemoved { group_id, user_ids } => {
            set_members(state, *group_id, user_ids, false, at);
        }
        EventPayload::GroupDeleted { group_id, .. } => {
            let Some(group) = state.group(group_id).cloned() else {
                return;
            };
            let name = fold(&group.profile.display_name);
            if state.group_id_by_name(&name) == Some(*group_id)
                || !state.group_names.contains_key(&name)
            {
                state.group_names.insert(name.clone(), None);
                state.journal.touch(Touched::GroupName(name));
            }
            state.groups.insert(*group_id, None);
            state.journal.touch(Touched::Group(*group_id));
            if let Some(tenant) = state.tenant.as_mut() {
                tenant.group_count = tenant.group_count.saturating_sub(1);
                state.journal.touch(Touched::Tenant);
            }
        }
        EventPayload::DefaultRoleSet { role } => {
            if let Some(tenant) = state.tenant.as_mut() {
                tenant.default_role = *role;
                state.journal.touch(Touched::Tenant);
            }
        }
        EventPayload::RoleMappingSet { group_id, role } => {
            state.role_mappings.insert(*group_id, Some(*role));
            state.journal.touch(Touched::RoleMapping(*group_id));
        }
        EventPayload::RoleMappingRemoved { group_id } => {
            state.role_mappings.insert(*group_id, None);
            state.journal.touch(Touched::RoleMapping(*group_id));
        }
        EventPayload::ResourceGroupCreated {
            resource_group_id,
            name,
        } => {
            let folded = fold(name);
            state
                .resource_group_names
                .insert(folded.clone(), Some(*resource_group_id));
            state.journal.touch(Touched::ResourceGroupName(folded));
            state.resource_groups.insert(
                *resource_group_id,
                Some(ResourceGroupRecord {
                    id: *resource_group_id,
                    name: name.clone(),
                    links: Default::default(),
                    manual_member_count: 0,
                    created_at: at,
                }),
            );
            state
                .journal
                .touch(Touched::ResourceGroup(*resource_group_id));
        }
        EventPayload::ResourceGroupDeleted { resource_group_id } => {
            let Some(resource_group) = state.resource_group(resource_group_id).cloned() else {
                return;
            };
            let folded = fold(&resource_group.name);
            state.resource_group_names.insert(folded.clone(), None);
            state.journal.touch(Touched::ResourceGroupName(folded));
            state.resource_groups.insert(*resource_group_id, None);
            state
                .journal
                .touch(Touched::ResourceGroup(*resource_group_id));
        }
        EventPayload::ResourceGroupLinked {
            resource_group_id,
            group_id,
            role,
        }
        | EventPayload::ResourceGroupLinkRoleChanged {
            resource_group_id,
            group_id,
            role,
        } => {
            let Some(Some(resource_group)) = state.resource_groups.get_mut(resource_group_id)
            else {
                return;
            };
            resource_group.links.insert(*group_id, *role);
            state
                .journal
                .touch(Touched::ResourceGroup(*resource_group_id));
            state
                .group_links
                .insert((*group_id, *resource_group_id), Some(*role));
            state
                .journal
                .touch(Touched::GroupLink(*group_id, *resource_group_id));
        }
        EventPayload::ResourceGroupUnlinked {
            resource_group_id,
            group_id,
        } => {
            if let Some(Some(resource_group)) = state.resource_groups.get_mut(resource_group_id) {
                resource_group.links.remove(group_id);
                state
                    .journal
                    .touch(Touched::ResourceGroup(*resource_group_id));
            }
            state
                .group_links
                .insert((*group_id, *resource_group_id), None);
            state
                .journal
                .touch(Touched::GroupLink(*group_id, *resource_group_id));
        }
        EventPayload::ResourceGroupMemberSet {
            resource_group_id,
            user_id,
            role,
        } => {
            let was_member = state
                .resource_group_member(*resource_group_id, *user_id)
                .is_some();
            if !was_member
                && let Some(Some(resource_group)) = state.resource_groups.get_mut(resource_group_id)
            {
                resource_group.manual_member_count += 1;
                state
                    .journal
                    .touch(Touched::ResourceGroup(*resource_group_id));
            }
            state.set_resource_group_member(*resource_group_id, *user_id, Some(*role));
            state
                .journal
                .touch(Touched::ResourceGroupMember(*resource_group_id, *user_id));
        }
        EventPayload::ResourceGroupMemberRemoved {
            resource_group_id,
            user_id,
        } => {
            let was_member = state
                .resource_group_member(*resource_group_id, *user_id)
                .is_some();
            if was_member
                && let Some(Some(resource_group)) = state.resource_groups.get_mut(resource_group_id)
            {
                resource_group.manual_member_count =
                    resource_group.manual_member_count.saturating_sub(1);
                state
                    .journal
                    .touch(Touched::ResourceGroup(*resource_group_id));
            }
            state.set_resource_group_member(*resource_group_id, *user_id, None);
            state
                .journal
                .touch(Touched::ResourceGroupMember(*resource_group_id, *user_id));
        }
        EventPayload::TenantStaged { generation } => {
            if let Some(tenant) = state.tenant.as_mut() {
                tenant.staging = Some(Staging {
                    generation: *generation,
                    since: at,
                });
                tenant.stagings = tenant.stagings.max(*generation);
                state.journal.touch(Touched::Tenant);
            }
        }
        EventPayload::StagingPromoted { .. } | EventPayload::StagingDiscarded { .. } => {
            if let Some(tenant) = state.tenant.as_mut() {
                tenant.staging = None;
                state.journal.touch(Touched::Tenant);
            }
        }
        EventPayload::BranchOpened => {
            state.tenant = Some(TenantRecord {
                created_at: at,
                default_role: super::ids::Role::Read,
                sso_enforced: false,
                user_count: 0,
                group_count: 0,
                staging: None,
                stagings: 0,
                branch: Some(BranchState::Copying),
                claim_role_mappings: Vec::new(),
            });
            state.journal.touch(Touched::Tenant);
        }
        EventPayload::BranchReady | EventPayload::BranchFrozen => {
            if let Some(tenant) = state.tenant.as_mut() {
                tenant.branch = Some(if matches!(event.payload, EventPayload::BranchReady) {
                    BranchState::Open
                } else {
                    BranchState::Frozen
                });
                state.journal.touch(Touched::Tenant);
            }
        }
        EventPayload::BranchDropped => state.drop_everything(),
        EventPayload::ClaimRoleMappingSet { .. }
        | EventPayload::ClaimRoleMappingRemoved { .. }
        | EventPayload::UserSsoLinked { .. }
        | EventPayload::UserClaimRoleChanged { .. } => apply_jit(state, &event.payload),
    }
}

/// Folds the just-in-time provisioning events: claim mappings live in the tenant record, a
/// user's SSO link and claim-derived role in the user record (neither changes the SCIM
/// representation, so the user's version stays).
fn apply_jit(state: &mut State, payload: &EventPayload) {
    match payload {
        EventPayload::ClaimRoleMappingSet { claim, value, role } => {
            if let Some(tenant) = state.tenant.as_mut() {
                let folded = fold(value);
                tenant
                    .claim_role_mappings
                    .retain(|mapping| !(mapping.claim == *claim && fold(&mapping.value) == folded));
                tenant.claim_role_mappings.push(ClaimRoleMapping {
                    claim: claim.clone(),
                    value: value.clone(),
                    role: *role,
                });
                tenant
                    .claim_role_mappings
                    .sort_by(|a, b| (&a.claim, fold(&a.value)).cmp(&(&b.claim, fold(&b.value))));
                state.journal.touch(Touched::Tenant);
            }
        }
        EventPayload::ClaimRoleMappingRemoved { claim, value } => {
            if let Some(tenant) = state.tenant.as_mut() {
                let folded = fold(value);
                tenant
                    .claim_role_mappings
                    .retain(|mapping| !(mapping.claim == *claim && fold(&mapping.value) == folded));
                state.journal.touch(Touched::Tenant);
            }
        }
        EventPayload::UserSsoLinked { user_id, subject } => {
            let Some(mut user) = state.user(user_id).cloned() else {
                return;
            };
            let old = user.sso.as_ref().map(|link| link.subject.clone());
            set_subject(state, *user_id, old.as_deref(), Some(subject));
            let claim_role = user.sso.take().and_then(|link| link.claim_role);
            user.sso = Some(SsoLink {
                subject: subject.clone(),
                claim_role,
            });
            state.users.insert(*user_id, Some(user));
            state.journal.touch(Touched::User(*user_id));
        }
        EventPayload::UserClaimRoleChanged {
            user_id,
            claim_role,
        } => {
            let Some(mut user) = state.user(user_id).cloned() else {
                return;
            };
            let Some(link) = user.sso.as_mut() else {
                return;
            };
            link.claim_role.clone_from(claim_role);
            state.users.insert(*user_id, Some(user));
            state.journal.touch(Touched::User(*user_id));
        }
        _ => {}
    }
}

/// Moves the SSO subject index entry of `user_id` from `old` to `new`.
fn set_subject(state: &mut State, user_id: UserId, old: Option<&str>, new: Option<&str>) {
    if let Some(old) = old
        && (state.user_id_by_subject(old) == Some(user_id)
            || !state.user_subjects.contains_key(old))
    {
        state.user_subjects.insert(old.to_owned(), None);
        state.journal.touch(Touched::UserSubject(old.to_owned()));
    }
    if let Some(new) = new {
        state.user_subjects.insert(new.to_owned(), Some(user_id));
        state.journal.touch(Touched::UserSubject(new.to_owned()));
    }
}

/// Adds or removes membership edges; only real changes count.
fn set_members(
    state: &mut State,
    group_id: GroupId,
    users: &[UserId],
    member: bool,
    at: Timestamp,
) {
    let Some(mut group) = state.group(&group_id).cloned() else {
        return;
    };
    for user in users {
        if state.is_member(group_id, *user) == member {
            continue;
        }
        state.set_membership(group_id, *user, member);
        state.journal.touch(Touched::Membership(group_id, *user));
        if member {
            group.member_count += 1;
        } else {
            group.member_count = group.member_count.saturating_sub(1);
        }
    }
    bump_group(state, group, at);
}

fn bump_group(state: &mut State, mut group: GroupRecord, at: Timestamp) {
    group.version += 1;
    group.modified_at = at;
    let id = group.id;
    state.groups.insert(id, Some(group));
    state.journal.touch(Touched::Group(id));
}

fn bump(state: &mut State, mut user: UserRecord, at: Timestamp) {
    user.version += 1;
    user.modified_at = at;
    let id = user.id;
    state.users.insert(id, Some(user));
    state.journal.touch(Touched::User(id));
}

fn adjust_user_count(state: &mut State, delta: i64) {
    if let Some(tenant) = state.tenant.as_mut() {
        tenant.user_count = tenant.user_count.saturating_add_signed(delta);
        state.journal.touch(Touched::Tenant);
    }
}

/// Moves the userName index entry of `user_id` from `old` to `new`.
fn set_user_name(state: &mut State, user_id: UserId, old: Option<&str>, new: Option<&str>) {
    if let Some(old) = old.map(fold)
        && (state.user_id_by_name(&old) == Some(user_id) || !state.user_names.contains_key(&old))
    {
        state.user_names.insert(old.clone(), None);
        state.journal.touch(Touched::UserName(old));
    }
    if let Some(new) = new.map(fold) {
        state.user_names.insert(new.clone(), Some(user_id));
        state.journal.touch(Touched::UserName(new));
    }
}

/// Moves the externalId index entry of `user_id` from `old` to `new`.
fn set_external_id(state: &mut State, user_id: UserId, old: Option<&str>, new: Option<&str>) {
    if let Some(old) = old
        && (state.user_id_by_external_id(old) == Some(user_id)
            || !state.user_external_ids.contains_key(old))
    {
        state.user_external_ids.insert(old.to_owned(), None);
        state.journal.touch(Touched::UserExternalId(old.to_owned()));
    }
    if let Some(new) = new {
        state
            .user_external_ids
            .insert(new.to_owned(), Some(user_id));
        state.journal.touch(Touched::UserExternalId(new.to_owned()));
    }
}
