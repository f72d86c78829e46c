//! Commands: what a caller asks the directory to do. New ids, times and token hashes are made by
//! the caller and carried in the command, so `decide` stays a pure function.

use std::collections::{BTreeMap, BTreeSet};

use super::handle::UsernamePolicy;
use super::ids::SsfStreamId;
use super::ids::{GroupId, ResourceGroupId, Role, Timestamp, TokenId, UserId, WebhookId};
use super::jit::{self, JitLogin};
use super::rules;
use super::ssf::{NewSsfStream, SsfStreamConfig, SsfStreamStatus};
use super::state::{BranchState, Footprint, GroupProfile, State, TokenScope};
use super::user::{UserProfile, fold};
use super::webhook::{NewWebhook, WebhookStatus};

/// A staging branch's directory (users, groups, memberships): what promotion makes the live
/// directory. Role mappings, resource groups and the default role are not part of it: those stay
/// the live tenant's, and apply to the promoted directory.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BranchDirectory {
    pub users: BTreeMap<UserId, UserProfile>,
    /// The handles that differ from their user's userName.
    pub handles: BTreeMap<UserId, String>,
    pub groups: BTreeMap<GroupId, GroupProfile>,
    pub members: BTreeMap<GroupId, BTreeSet<UserId>>,
}

impl BranchDirectory {
    /// The directory a state holds (the whole branch, loaded with `Footprint::whole_tenant`).
    pub fn of(state: &State) -> Self {
        let mut directory = Self::default();
        for user in state.all_users() {
            directory.users.insert(user.id, user.profile.clone());
            if let Some(handle) = &user.handle {
                directory.handles.insert(user.id, handle.clone());
            }
        }
        for group in state.all_groups() {
            directory.groups.insert(group.id, group.profile.clone());
            directory
                .members
                .insert(group.id, state.members_of(group.id).collect());
        }
        directory
    }
}

/// Part of the live directory copied into a staging branch by one command.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BranchCopy {
    pub users: Vec<(UserId, UserProfile)>,
    /// The handles of `users` that differ from their userName.
    pub handles: BTreeMap<UserId, String>,
    /// The live tenant's username policy, which the branch follows (sent with the first copy).
    pub usernames: Option<UsernamePolicy>,
    /// Groups with all their members (users of this copy or of an earlier one).
    pub groups: Vec<(GroupId, GroupProfile, Vec<UserId>)>,
}

/// A token to issue; the caller generated its id and secret and passes only the secret's hash.
#[derive(Clone, Debug, PartialEq)]
pub struct NewToken {
    pub id: TokenId,
    pub name: String,
    pub scope: TokenScope,
    pub secret_sha256: [u8; 32],
    pub expires_at: Option<Timestamp>,
}

/// One change to a group's members, in the forms SCIM PATCH and PUT express.
#[derive(Clone, Debug, PartialEq)]
pub enum MemberChange {
    /// Add these users; those already members are left alone.
    Add(Vec<UserId>),
    /// Remove these users; those not members are ignored.
    Remove(Vec<UserId>),
    RemoveAll,
    /// Make the members exactly these users.
    Replace(Vec<UserId>),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    CreateTenant {
        default_role: Role,
        usernames: UsernamePolicy,
        first_token: Option<NewToken>,
    },
    IssueToken(NewToken),
    /// Revokes a token at `at`. In the system tenant, never the last token valid at `at`.
    RevokeToken {
        token_id: TokenId,
        at: Timestamp,
    },
    /// Issues `new` and makes the valid token `old` expire at `old_expires_at` (or at its own
    /// expiry, if sooner): a rotation with an overlap, at `at`. In the system tenant, `new` must
    /// be valid at `at` unless another token is.
    RotateToken {
        old: TokenId,
        new: NewToken,
        old_expires_at: Timestamp,
        at: Timestamp,
    },
    /// Records that a token authenticated a request at `at`; nothing when it was recorded less
    /// than an hour before.
    RecordTokenUse {
        token_id: TokenId,
        at: Timestamp,
    },
    /// Turns the tenant's SSO-enforcement policy on or off.
    SetSsoEnforced {
        enforced: bool,
    },
    /// Sets how the tenant's handles follow from userNames.
    SetUsernamePolicy {
        policy: UsernamePolicy,
    },
    ProvisionUser {
        user_id: UserId,
        profile: UserProfile,
    },
    /// Full replacement of a user's profile (SCIM PUT, and PATCH once applied to the current
    /// profile). `expected_version` guards against lost updates.
    ReplaceUser {
        user_id: UserId,
        profile: UserProfile,
        expected_version: Option<u64>,
    },
    SetUserActive {
        user_id: UserId,
        active: bool,
        expected_version: Option<u64>,
    },
    DeleteUser {
        user_id: UserId,
        expected_version: Option<u64>,
    },
    CreateGroup {
        group_id: GroupId,
        profile: GroupProfile,
        members: Vec<UserId>,
    },
    /// Changes a group's profile (when given) and members, in order, atomically.
    UpdateGroup {
        group_id: GroupId,
        profile: Option<GroupProfile>,
        member_changes: Vec<MemberChange>,
        expected_version: Option<u64>,
    },
    DeleteGroup {
        group_id: GroupId,
        expected_version: Option<u64>,
    },
    SetDefaultRole {
        role: Role,
    },
    /// Maps a group to an org role (`None`: removes the mapping).
    SetRoleMapping {
        group_id: GroupId,
        role: Option<Role>,
    },
    CreateResourceGroup {
        resource_group_id: ResourceGroupId,
        name: String,
    },
    DeleteResourceGroup {
        resource_group_id: ResourceGroupId,
    },
    /// Links a SCIM group to a resource group with a role, or changes the link's role.
    LinkResourceGroup {
        resource_group_id: ResourceGroupId,
        group_id: GroupId,
        role: Role,
    },
    UnlinkResourceGroup {
        resource_group_id: ResourceGroupId,
        group_id: GroupId,
    },
    /// Adds a user to a resource group by hand, or changes their role there.
    SetResourceGroupMember {
        resource_group_id: ResourceGroupId,
        user_id: UserId,
        role: Role,
    },
    RemoveResourceGroupMember {
        resource_group_id: ResourceGroupId,
        user_id: UserId,
    },
    /// Puts the tenant in staging: its directory freezes and SCIM goes to a new staging branch.
    StageTenant,
    /// Creates the staging branch this command is addressed to, empty and `Copying`.
    OpenBranch,
    /// Copies part of the live directory into the branch; what it already holds is skipped, so
    /// an interrupted copy resumes.
    CopyToBranch(BranchCopy),
    /// Moves the branch to `Open` (copy done, or a promotion given up) or `Frozen` (promotion).
    SetBranchState(BranchState),
    /// Forgets everything the branch holds.
    DropBranch,
    /// Makes the live directory the staging branch's, in one step, and leaves staging.
    PromoteStaging {
        generation: u64,
        branch: Box<BranchDirectory>,
    },
    /// Leaves staging; the live directory stays as it is.
    DiscardStaging,
    /// Maps an SSO claim value to an org role for just-in-time provisioning (`None`: removes
    /// the mapping).
    SetClaimRoleMapping {
        claim: String,
        value: String,
        role: Option<Role>,
    },
    /// Creates or updates the user behind an SSO login (just-in-time provisioning).
    JitProvision(JitLogin),
    /// Subscribes a URL to the tenant's events (signed webhooks).
    AddWebhook(NewWebhook),
    /// Pauses (`Paused`), resumes (`Active`) or gives up on (`Failing`) a subscription. A
    /// subscription paused by an admin stays paused when delivery fails.
    SetWebhookStatus {
        webhook_id: WebhookId,
        status: WebhookStatus,
        reason: String,
    },
    /// Makes a new secret sign the subscription; the previous one signs too until
    /// `previous_expires_at`.
    RotateWebhookSecret {
        webhook_id: WebhookId,
        previous_expires_at: Timestamp,
    },
    RemoveWebhook {
        webhook_id: WebhookId,
        reason: String,
    },
    /// A receiver creates its Shared Signals stream (one per receiver).
    CreateSsfStream(NewSsfStream),
    /// In every SSF command, `receiver` is the receiver acting (a stream of another receiver is
    /// not found), or `None` for an admin or roster itself.
    UpdateSsfStream {
        stream_id: SsfStreamId,
        receiver: Option<TokenId>,
        config: SsfStreamConfig,
    },
    SetSsfStreamStatus {
        stream_id: SsfStreamId,
        receiver: Option<TokenId>,
        status: SsfStreamStatus,
        reason: String,
    },
    /// Removes `subject` from the stream (`removed`), or adds it back.
    ChangeSsfSubject {
        stream_id: SsfStreamId,
        receiver: TokenId,
        subject: serde_json::Value,
        removed: bool,
    },
    RequestSsfVerification {
        stream_id: SsfStreamId,
        receiver: TokenId,
        state: String,
        at: Timestamp,
    },
    DeleteSsfStream {
        stream_id: SsfStreamId,
        receiver: Option<TokenId>,
        reason: String,
    },
}

impl Command {
    /// What the caller reads back of the state after this command, out of what `decide` needed
    /// (`footprint`): all of it, except that a group update's reply holds the group alone. Its
    /// members were loaded to check they exist; the caller renders the group from the views.
    pub fn reply_footprint(&self, footprint: Footprint) -> Footprint {
        match self {
            Command::UpdateGroup { .. } => Footprint {
                groups: footprint.groups,
                group_names: footprint.group_names,
                ..Footprint::default()
            },
            _ => footprint,
        }
    }

    /// What `decide` needs loaded.
    pub fn footprint(&self) -> Footprint {
        let mut footprint = Footprint::default();
        match self {
            Command::CreateTenant { first_token, .. } => {
                if let Some(token) = first_token {
                    footprint.tokens.push(token.id.clone());
                }
            }
            Command::IssueToken(token) => footprint.tokens.push(token.id.clone()),
            Command::RevokeToken { token_id, .. } => {
                footprint.tokens.push(token_id.clone());
                // Whether another token stays valid (the system tenant's last-token rule).
                footprint.all_tokens = true;
            }
            Command::RecordTokenUse { token_id, .. } => footprint.tokens.push(token_id.clone()),
            Command::RotateToken { old, new, .. } => {
                footprint.tokens.push(old.clone());
                footprint.tokens.push(new.id.clone());
                footprint.all_tokens = true;
            }
            Command::SetSsoEnforced { .. } | Command::SetUsernamePolicy { .. } => {}
            Command::ProvisionUser { user_id, profile }
            | Command::ReplaceUser {
                user_id, profile, ..
            } => {
                footprint.users.push(*user_id);
                footprint.user_names.push(fold(&profile.user_name));
            }
            Command::SetUserActive { user_id, .. } => footprint.users.push(*user_id),
            Command::DeleteUser { user_id, .. } => {
                footprint.users.push(*user_id);
                footprint.groups_of_users.push(*user_id);
                footprint.resource_groups_of_users.push(*user_id);
            }
            Command::CreateGroup {
                group_id,
                profile,
                members,
            } => {
                footprint.groups.push(*group_id);
                footprint.group_names.push(fold(&profile.display_name));
                footprint.users.extend(members.iter().copied());
            }
            Command::UpdateGroup {
                group_id,
                profile,
                member_changes,
                ..
            } => {
                footprint.groups.push(*group_id);
                if let Some(profile) = profile {
                    footprint.group_names.push(fold(&profile.display_name));
                }
                for change in member_changes {
                    match change {
                        MemberChange::Add(users) => {
                            // Added users must exist; removing an edge needs only the edge.
                            footprint.users.extend(users.iter().copied());
                            footprint
                                .memberships
                                .extend(users.iter().map(|user| (*group_id, *user)));
                        }
                        MemberChange::Remove(users) => {
                            footprint
                                .memberships
                                .extend(users.iter().map(|user| (*group_id, *user)));
                        }
                        MemberChange::RemoveAll => footprint.members_of_groups.push(*group_id),
                        MemberChange::Replace(users) => {
                            footprint.users.extend(users.iter().copied());
                            footprint.members_of_groups.push(*group_id);
                        }
                    }
                }
            }
            Command::DeleteGroup { group_id, .. } => {
                footprint.groups.push(*group_id);
                footprint.members_of_groups.push(*group_id);
                footprint.role_mappings.push(*group_id);
                footprint.links_of_groups.push(*group_id);
            }
            Command::SetDefaultRole { .. } => {}
            Command::SetRoleMapping { group_id, .. } => {
                footprint.groups.push(*group_id);
                footprint.role_mappings.push(*group_id);
            }
            Command::CreateResourceGroup {
                resource_group_id,
                name,
            } => {
                footprint.resource_groups.push(*resource_group_id);
                footprint.resource_group_names.push(fold(name));
            }
            Command::DeleteResourceGroup { resource_group_id } => {
                footprint.resource_groups.push(*resource_group_id);
                footprint
                    .members_of_resource_groups
                    .push(*resource_group_id);
            }
            Command::LinkResourceGroup {
                resource_group_id,
                group_id,
                ..
            } => {
                footprint.resource_groups.push(*resource_group_id);
                footprint.groups.push(*group_id);
            }
            Command::UnlinkResourceGroup {
                resource_group_id, ..
            } => footprint.resource_groups.push(*resource_group_id),
            Command::SetResourceGroupMember {
                resource_group_id,
                user_id,
                ..
            } => {
                footprint.resource_groups.push(*resource_group_id);
                footprint.users.push(*user_id);
                footprint
                    .resource_group_members
                    .push((*resource_group_id, *user_id));
            }
            Command::RemoveResourceGroupMember {
                resource_group_id,
                user_id,
            } => {
                footprint.resource_groups.push(*resource_group_id);
                footprint
                    .resource_group_members
                    .push((*resource_group_id, *user_id));
            }
            Command::StageTenant
            | Command::OpenBranch
            | Command::SetBranchState(_)
            | Command::DropBranch
            | Command::DiscardStaging => {}
            Command::CopyToBranch(copy) => {
                footprint
                    .users
                    .extend(copy.users.iter().map(|(user_id, _)| *user_id));
                footprint
                    .groups
                    .extend(copy.groups.iter().map(|(group_id, _, _)| *group_id));
            }
            Command::PromoteStaging { .. } => footprint.whole_tenant = true,
            Command::SetClaimRoleMapping { .. } => {}
            Command::JitProvision(login) => footprint = jit::footprint(login),
            // Subscriptions live in the tenant record, which every slice holds.
            Command::AddWebhook(_)
            | Command::SetWebhookStatus { .. }
            | Command::RotateWebhookSecret { .. }
            | Command::RemoveWebhook { .. }
            | Command::CreateSsfStream(_)
            | Command::UpdateSsfStream { .. }
            | Command::SetSsfStreamStatus { .. }
            | Command::ChangeSsfSubject { .. }
            | Command::RequestSsfVerification { .. }
            | Command::DeleteSsfStream { .. } => {}
        }
        footprint
    }

    /// What `decide` needs loaded beyond [`Self::footprint`], found through the entries that
    /// footprint loaded (the users an SSO subject, externalId or userName index points at).
    /// Empty for most commands.
    pub fn dependent_footprint(&self, state: &State) -> Footprint {
        match self {
            Command::JitProvision(login) => jit::dependent_footprint(login, state),
            // Under `derive`, a new userName needs its handle candidates' index entries.
            Command::ProvisionUser { user_id, profile }
            | Command::ReplaceUser {
                user_id, profile, ..
            } if rules::username_policy(state) == UsernamePolicy::Derive
                && state
                    .user(user_id)
                    .is_none_or(|user| user.profile.user_name != profile.user_name.trim()) =>
            {
                let handles = rules::handle_footprint(*user_id, &profile.user_name);
                Footprint {
                    user_names: handles.clone(),
                    user_handles: handles,
                    ..Footprint::default()
                }
            }
            _ => Footprint::default(),
        }
    }
}
