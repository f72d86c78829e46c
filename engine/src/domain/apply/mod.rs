//! `apply`: folds one event into a state or slice and journals what it touched. Events were
//! decided against the same state, so `apply` never refuses; an event whose target is missing from
//! the slice changes nothing.

mod branches;
mod groups;
mod roles;
mod ssf;
mod tokens;
mod users;
mod webhooks;

use super::event::{Event, EventPayload};
use super::ids::{GroupId, Timestamp, UserId};
use super::state::{
    BranchState, ClaimRoleMapping, GroupRecord, ResourceGroupRecord, SsoLink, Staging, State,
    TenantRecord, TokenRecord, Touched, UserRecord,
};
use super::user::fold;

pub fn apply(state: &mut State, event: &Event) {
    match &event.payload {
        EventPayload::TenantCreated { .. }
        | EventPayload::TokenIssued { .. }
        | EventPayload::TokenRevoked { .. }
        | EventPayload::TokenExpiryChanged { .. }
        | EventPayload::TokenUsed { .. }
        | EventPayload::TenantSettingsChanged { .. } => tokens::apply(state, event),
        EventPayload::UserProvisioned { .. }
        | EventPayload::UserUpdated { .. }
        | EventPayload::UserDeactivated { .. }
        | EventPayload::UserReactivated { .. }
        | EventPayload::UserDeleted { .. } => users::apply(state, event),
        EventPayload::GroupCreated { .. }
        | EventPayload::GroupRenamed { .. }
        | EventPayload::GroupUpdated { .. }
        | EventPayload::GroupMembersAdded { .. }
        | EventPayload::GroupMembersRemoved { .. }
        | EventPayload::GroupDeleted { .. } => groups::apply(state, event),
        EventPayload::DefaultRoleSet { .. }
        | EventPayload::RoleMappingSet { .. }
        | EventPayload::RoleMappingRemoved { .. }
        | EventPayload::ResourceGroupCreated { .. }
        | EventPayload::ResourceGroupDeleted { .. }
        | EventPayload::ResourceGroupLinked { .. }
        | EventPayload::ResourceGroupLinkRoleChanged { .. }
        | EventPayload::ResourceGroupUnlinked { .. }
        | EventPayload::ResourceGroupMemberSet { .. }
        | EventPayload::ResourceGroupMemberRemoved { .. } => roles::apply(state, event),
        EventPayload::TenantStaged { .. }
        | EventPayload::StagingPromoted { .. }
        | EventPayload::StagingDiscarded { .. }
        | EventPayload::BranchOpened
        | EventPayload::BranchReady
        | EventPayload::BranchFrozen
        | EventPayload::BranchDropped => branches::apply(state, event),
        EventPayload::ClaimRoleMappingSet { .. }
        | EventPayload::ClaimRoleMappingRemoved { .. }
        | EventPayload::UserSsoLinked { .. }
        | EventPayload::UserClaimRoleChanged { .. } => apply_jit(state, &event.payload),
        EventPayload::WebhookAdded { .. }
        | EventPayload::WebhookStatusChanged { .. }
        | EventPayload::WebhookSecretRotated { .. }
        | EventPayload::WebhookRemoved { .. } => webhooks::apply(state, event),
        EventPayload::SsfStreamCreated { .. }
        | EventPayload::SsfStreamUpdated { .. }
        | EventPayload::SsfStreamStatusChanged { .. }
        | EventPayload::SsfSubjectChanged { .. }
        | EventPayload::SsfVerificationRequested { .. }
        | EventPayload::SsfStreamDeleted { .. } => ssf::apply(state, event),
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
        EventPayload::UserSsoLinked {
            user_id,
            subject,
            issuer,
        } => {
            let Some(mut user) = state.user(user_id).cloned() else {
                return;
            };
            let old = user.sso.as_ref().map(|link| link.subject.clone());
            set_subject(state, *user_id, old.as_deref(), Some(subject));
            let claim_role = user.sso.take().and_then(|link| link.claim_role);
            user.sso = Some(SsoLink {
                subject: subject.clone(),
                issuer: issuer.clone(),
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

/// Moves `user_id`'s externalId index edge from `old` to `new`. Edges are per user, so the
/// other holders of either value need not be loaded.
fn set_external_id(state: &mut State, user_id: UserId, old: Option<&str>, new: Option<&str>) {
    if let Some(old) = old {
        state.set_user_external_id(old, user_id, false);
        state
            .journal
            .touch(Touched::UserExternalId(old.to_owned(), user_id));
    }
    if let Some(new) = new {
        state.set_user_external_id(new, user_id, true);
        state
            .journal
            .touch(Touched::UserExternalId(new.to_owned(), user_id));
    }
}
