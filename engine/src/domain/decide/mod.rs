//! `decide`: the directory's rules. Given a tenant's state (or the slice of it a command needs)
//! and a command, it returns the events that record the change, or why the command is refused.
//! No I/O, no clock, no randomness.

mod groups;
mod roles;
mod ssf;
mod tokens;
mod users;
mod webhooks;

use std::collections::{BTreeMap, BTreeSet};

use super::command::{Command, MemberChange, NewToken};
use super::event::EventPayload;
use super::handle::UsernamePolicy;
use super::ids::{GroupId, ResourceGroupId, Timestamp, TokenId, UserId};
use super::jit;
use super::limits;
use super::profile;
use super::rejection::Rejection;
use super::rules::{
    MEMBERS_PER_EVENT, assign_handle, normalize, replace, require_tenant, update_group,
    username_policy,
};
use super::staging::{self, require_directory_writable};
use super::state::{GroupProfile, GroupRecord, ResourceGroupRecord, State, UserRecord};
use super::user::{UserProfile, fold};

/// Longest resource group name.
const RESOURCE_GROUP_NAME_MAX: usize = 100;
/// A token's use is recorded at most once per this many microseconds (an hour).
const TOKEN_USE_RESOLUTION_MICROS: i64 = 3_600_000_000;

/// Whether a use of a token at `now` is already covered by the use recorded at `last`: uses are
/// recorded at most once an hour. Edges ask it before sending `RecordTokenUse` at all.
pub fn token_use_covered(last: Timestamp, now: Timestamp) -> bool {
    now.as_micros() - last.as_micros() < TOKEN_USE_RESOLUTION_MICROS
}

pub fn decide(state: &State, command: Command) -> Result<Vec<EventPayload>, Rejection> {
    match command {
        Command::CreateTenant {
            default_role,
            usernames,
            first_token,
        } => tokens::create_tenant(state, default_role, usernames, first_token),
        Command::IssueToken(token) => tokens::issue_token(state, token),
        Command::RevokeToken { token_id, at } => tokens::revoke_token(state, token_id, at),
        Command::RotateToken {
            old,
            new,
            old_expires_at,
            at,
        } => tokens::rotate_token(state, old, new, old_expires_at, at),
        Command::RecordTokenUse { token_id, at } => tokens::record_token_use(state, token_id, at),
        Command::SetSsoEnforced { enforced } => tokens::set_sso_enforced(state, enforced),
        Command::SetUsernamePolicy { policy } => tokens::set_username_policy(state, policy),
        Command::ProvisionUser { user_id, profile } => {
            users::provision_user(state, user_id, profile)
        }
        Command::ReplaceUser {
            user_id,
            profile,
            expected_version,
        } => users::replace_user(state, user_id, profile, expected_version),
        Command::SetUserActive {
            user_id,
            active,
            expected_version,
        } => users::set_user_active(state, user_id, active, expected_version),
        Command::DeleteUser {
            user_id,
            expected_version,
        } => users::delete_user(state, user_id, expected_version),
        Command::CreateGroup {
            group_id,
            profile,
            members,
        } => groups::create_group(state, group_id, profile, members),
        Command::UpdateGroup {
            group_id,
            profile,
            member_changes,
            expected_version,
        } => groups::change_group(state, group_id, profile, member_changes, expected_version),
        Command::DeleteGroup {
            group_id,
            expected_version,
        } => groups::delete_group(state, group_id, expected_version),
        Command::SetDefaultRole { role } => roles::set_default_role(state, role),
        Command::SetRoleMapping { group_id, role } => {
            roles::set_role_mapping(state, group_id, role)
        }
        Command::CreateResourceGroup {
            resource_group_id,
            name,
        } => roles::create_resource_group(state, resource_group_id, name),
        Command::DeleteResourceGroup { resource_group_id } => {
            roles::delete_resource_group(state, resource_group_id)
        }
        Command::LinkResourceGroup {
            resource_group_id,
            group_id,
            role,
        } => roles::link_resource_group(state, resource_group_id, group_id, role),
        Command::UnlinkResourceGroup {
            resource_group_id,
            group_id,
        } => roles::unlink_resource_group(state, resource_group_id, group_id),
        Command::SetResourceGroupMember {
            resource_group_id,
            user_id,
            role,
        } => roles::set_resource_group_member(state, resource_group_id, user_id, role),
        Command::SetClaimRoleMapping { claim, value, role } => {
            jit::decide_claim_role_mapping(state, claim, value, role)
        }
        Command::JitProvision(login) => jit::decide_jit(state, login),
        Command::AddWebhook(webhook) => webhooks::add_webhook(state, webhook),
        Command::SetWebhookStatus {
            webhook_id,
            status,
            reason,
        } => webhooks::set_webhook_status(state, webhook_id, status, reason),
        Command::RotateWebhookSecret {
            webhook_id,
            previous_expires_at,
        } => webhooks::rotate_webhook_secret(state, webhook_id, previous_expires_at),
        Command::RemoveWebhook { webhook_id, reason } => {
            webhooks::remove_webhook(state, webhook_id, reason)
        }
        Command::CreateSsfStream(stream) => ssf::create_stream(state, stream),
        Command::UpdateSsfStream {
            stream_id,
            receiver,
            config,
        } => ssf::update_stream(state, stream_id, receiver, config),
        Command::SetSsfStreamStatus {
            stream_id,
            receiver,
            status,
            reason,
        } => ssf::set_status(state, stream_id, receiver, status, reason),
        Command::ChangeSsfSubject {
            stream_id,
            receiver,
            subject,
            removed,
        } => ssf::change_subject(state, stream_id, receiver, subject, removed),
        Command::RequestSsfVerification {
            stream_id,
            receiver,
            state: echoed,
            at,
        } => ssf::request_verification(state, stream_id, receiver, echoed, at),
        Command::DeleteSsfStream {
            stream_id,
            receiver,
            reason,
        } => ssf::delete_stream(state, stream_id, receiver, reason),
        Command::RemoveResourceGroupMember {
            resource_group_id,
            user_id,
        } => roles::remove_resource_group_member(state, resource_group_id, user_id),
        Command::StageTenant => staging::stage(state),
        Command::OpenBranch => staging::open_branch(state),
        Command::CopyToBranch(copy) => staging::copy_to_branch(state, copy),
        Command::SetBranchState(wanted) => staging::set_branch_state(state, wanted),
        Command::DropBranch => staging::drop_branch(state),
        Command::PromoteStaging { generation, branch } => {
            staging::promote(state, generation, &branch)
        }
        Command::DiscardStaging => staging::discard(state),
    }
}

fn existing_group(
    state: &State,
    group_id: GroupId,
    expected_version: Option<u64>,
) -> Result<&GroupRecord, Rejection> {
    let current = state
        .group(&group_id)
        .ok_or(Rejection::GroupNotFound(group_id))?;
    match expected_version {
        Some(expected) if expected != current.version => Err(Rejection::VersionMismatch {
            expected,
            actual: current.version,
        }),
        _ => Ok(current),
    }
}

fn existing_resource_group(
    state: &State,
    resource_group_id: ResourceGroupId,
) -> Result<&ResourceGroupRecord, Rejection> {
    state
        .resource_group(&resource_group_id)
        .ok_or(Rejection::ResourceGroupNotFound(resource_group_id))
}

/// A resource group whose members may be changed by hand: one no SCIM group is linked to.
fn manually_managed(
    state: &State,
    resource_group_id: ResourceGroupId,
) -> Result<&ResourceGroupRecord, Rejection> {
    let resource_group = existing_resource_group(state, resource_group_id)?;
    if resource_group.is_scim_managed() {
        return Err(Rejection::ResourceGroupScimManaged(resource_group_id));
    }
    Ok(resource_group)
}

/// Applies the group profile rules and drops what is never part of it; `before` is the group as
/// stored, on an update (see `limits` for what it changes).
fn normalize_group(
    profile: GroupProfile,
    before: Option<&GroupProfile>,
) -> Result<GroupProfile, Rejection> {
    let mut profile = profile;
    if profile.display_name.trim().is_empty() {
        return Err(Rejection::EmptyGroupName);
    }
    profile.external_id = profile.external_id.filter(|id| !id.is_empty());
    profile::retain_stored_group_attributes(&mut profile.attributes);
    limits::check_group(&profile, before)?;
    Ok(profile)
}

fn check_group_name(state: &State, group_id: GroupId, display_name: &str) -> Result<(), Rejection> {
    match state.group_id_by_name(&fold(display_name)) {
        Some(owner) if owner != group_id => Err(Rejection::GroupNameTaken {
            display_name: display_name.to_owned(),
        }),
        _ => Ok(()),
    }
}

/// The events that turn a group's profile into `profile`.
/// Membership changes of one group, applied in order on top of the slice, recorded as edge
/// events in order.
struct MemberChanges<'a> {
    state: &'a State,
    group_id: GroupId,
    /// Memberships already changed by earlier changes of the same command.
    changed: BTreeMap<UserId, bool>,
    events: Vec<EventPayload>,
}

impl<'a> MemberChanges<'a> {
    fn new(state: &'a State, group_id: GroupId) -> Self {
        Self {
            state,
            group_id,
            changed: BTreeMap::new(),
            events: Vec::new(),
        }
    }

    fn is_member(&self, user: UserId) -> bool {
        self.changed
            .get(&user)
            .copied()
            .unwrap_or_else(|| self.state.is_member(self.group_id, user))
    }

    fn current_members(&self) -> BTreeSet<UserId> {
        let mut members: BTreeSet<UserId> = self.state.members_of(self.group_id).collect();
        for (user, member) in &self.changed {
            if *member {
                members.insert(*user);
            } else {
                members.remove(user);
            }
        }
        members
    }

    fn check_users(&self, users: &[UserId]) -> Result<(), Rejection> {
        match users.iter().find(|user| self.state.user(user).is_none()) {
            Some(missing) => Err(Rejection::MemberNotFound(*missing)),
            None => Ok(()),
        }
    }

    fn record(&mut self, users: Vec<UserId>, member: bool) {
        for user in &users {
            self.changed.insert(*user, member);
        }
        for chunk in users.chunks(MEMBERS_PER_EVENT) {
            let group_id = self.group_id;
            let user_ids = chunk.to_vec();
            self.events.push(if member {
                EventPayload::GroupMembersAdded { group_id, user_ids }
            } else {
                EventPayload::GroupMembersRemoved { group_id, user_ids }
            });
        }
    }

    fn add(&mut self, users: &[UserId]) -> Result<(), Rejection> {
        self.check_users(users)?;
        let mut seen = BTreeSet::new();
        let added: Vec<UserId> = users
            .iter()
            .copied()
            .filter(|user| seen.insert(*user) && !self.is_member(*user))
            .collect();
        self.record(added, true);
        Ok(())
    }

    fn remove(&mut self, users: &[UserId]) {
        let mut seen = BTreeSet::new();
        let removed: Vec<UserId> = users
            .iter()
            .copied()
            .filter(|user| seen.insert(*user) && self.is_member(*user))
            .collect();
        self.record(removed, false);
    }

    fn remove_all(&mut self) {
        let removed: Vec<UserId> = self.current_members().into_iter().collect();
        self.record(removed, false);
    }

    fn replace(&mut self, users: &[UserId]) -> Result<(), Rejection> {
        self.check_users(users)?;
        let target: BTreeSet<UserId> = users.iter().copied().collect();
        let current = self.current_members();
        let removed: Vec<UserId> = current.difference(&target).copied().collect();
        let added: Vec<UserId> = target.difference(&current).copied().collect();
        self.record(removed, false);
        self.record(added, true);
        Ok(())
    }

    fn into_events(self) -> Vec<EventPayload> {
        self.events
    }
}

fn token_issued(token: NewToken) -> EventPayload {
    EventPayload::TokenIssued {
        token_id: token.id,
        name: token.name,
        scope: token.scope,
        secret_sha256: token.secret_sha256,
        expires_at: token.expires_at,
    }
}

/// Tokens also live in the `_system` tenant (admin tokens), which exists implicitly.
/// The system tenant's tokens are roster's admin tokens: taking `leaving` away at `at` must
/// leave another token valid, or nobody could administer roster any more. Decided in the
/// tenant's order, so two revocations racing for the last two tokens cannot both pass.
fn keeps_an_admin_token(state: &State, leaving: &TokenId, at: Timestamp) -> Result<(), Rejection> {
    if !state.name.is_system() {
        return Ok(());
    }
    let another_valid = state
        .tokens
        .values()
        .flatten()
        .any(|token| token.id != *leaving && token.is_valid_at(at));
    if another_valid {
        Ok(())
    } else {
        Err(Rejection::LastAdminToken(leaving.clone()))
    }
}

fn require_tenant_or_system(state: &State) -> Result<(), Rejection> {
    if state.name.is_system() {
        Ok(())
    } else {
        require_tenant(state)
    }
}

fn existing_user(
    state: &State,
    user_id: UserId,
    expected_version: Option<u64>,
) -> Result<&UserRecord, Rejection> {
    let current = state
        .user(&user_id)
        .ok_or(Rejection::UserNotFound(user_id))?;
    match expected_version {
        Some(expected) if expected != current.version => Err(Rejection::VersionMismatch {
            expected,
            actual: current.version,
        }),
        _ => Ok(current),
    }
}

fn check_unique(state: &State, user_id: UserId, profile: &UserProfile) -> Result<(), Rejection> {
    if state
        .user_id_by_name(&fold(&profile.user_name))
        .is_some_and(|owner| owner != user_id)
    {
        return Err(Rejection::UserNameTaken {
            user_name: profile.user_name.clone(),
        });
    }
    // externalId is the client's identifier, not a uniqueness constraint (RFC 7643 §3.1): several
    // users may share one.
    Ok(())
}
