//! Staging: a tenant's SCIM traffic goes to a *staging branch* (an internal tenant named
//! `<tenant>~s<generation>`) while the live directory stays frozen; promotion then makes the live
//! directory the branch's in one command, discarding drops the branch.
//!
//! This module holds the pure parts: the decisions of the staging commands and the promotion
//! diff, which is computed by deciding the promotion and applying it to a copy of the live state,
//! so what `diff` shows is by construction what `promote` does.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use super::access::{Access, access};
use super::apply::apply;
use super::command::{BranchCopy, BranchDirectory};
use super::event::{Actor, Event, EventPayload, Source};
use super::ids::{GroupId, ResourceGroupId, Role, Timestamp, UserId};
use super::rejection::Rejection;
use super::rules::{MEMBERS_PER_EVENT, replace, update_group};
use super::state::{BranchState, State};
use super::user::fold;

/// `StageTenant` on a live tenant.
pub(super) fn stage(state: &State) -> Result<Vec<EventPayload>, Rejection> {
    if state.name.is_branch() {
        return Err(Rejection::NotABranch("a staging branch cannot be staged"));
    }
    let tenant = live_tenant(state)?;
    if tenant.staging.is_some() {
        return Err(Rejection::AlreadyStaged);
    }
    Ok(vec![EventPayload::TenantStaged {
        generation: tenant.stagings + 1,
    }])
}

/// `DiscardStaging` on a live tenant.
pub(super) fn discard(state: &State) -> Result<Vec<EventPayload>, Rejection> {
    let generation = staged_generation(state)?;
    Ok(vec![EventPayload::StagingDiscarded { generation }])
}

/// `OpenBranch` on a branch.
pub(super) fn open_branch(state: &State) -> Result<Vec<EventPayload>, Rejection> {
    require_branch_name(state)?;
    if state.tenant.is_some() {
        return Err(Rejection::BranchNotOpen(
            "already open",
            "it is not created twice",
        ));
    }
    Ok(vec![EventPayload::BranchOpened])
}

/// `CopyToBranch` on a branch still `Copying`: what it does not hold yet.
pub(super) fn copy_to_branch(
    state: &State,
    copy: BranchCopy,
) -> Result<Vec<EventPayload>, Rejection> {
    require_branch_name(state)?;
    match branch_state(state)? {
        BranchState::Copying => {}
        _ => {
            return Err(Rejection::BranchNotOpen(
                "past its copy",
                "the live directory is copied only into a new branch",
            ));
        }
    }
    let mut events = Vec::new();
    if let Some(policy) = copy.usernames
        && super::rules::username_policy(state) != policy
    {
        events.push(EventPayload::TenantSettingsChanged {
            sso_enforced: None,
            usernames: Some(policy),
        });
    }
    let mut handles = copy.handles;
    for (user_id, profile) in copy.users {
        if state.users.get(&user_id).is_none_or(Option::is_none) {
            let handle = handles.remove(&user_id);
            events.push(EventPayload::UserProvisioned {
                user_id,
                profile,
                handle,
            });
        }
    }
    for (group_id, profile, members) in copy.groups {
        if state.groups.get(&group_id).is_some_and(Option::is_some) {
            continue;
        }
        events.push(EventPayload::GroupCreated { group_id, profile });
        events.extend(members.chunks(MEMBERS_PER_EVENT).map(|chunk| {
            EventPayload::GroupMembersAdded {
                group_id,
                user_ids: chunk.to_vec(),
            }
        }));
    }
    Ok(events)
}

/// `SetBranchState` on a branch: `Copying → Open`, `Open ⇄ Frozen`.
pub(super) fn set_branch_state(
    state: &State,
    wanted: BranchState,
) -> Result<Vec<EventPayload>, Rejection> {
    require_branch_name(state)?;
    let current = branch_state(state)?;
    Ok(match (current, wanted) {
        (current, wanted) if current == wanted => Vec::new(),
        (BranchState::Copying | BranchState::Frozen, BranchState::Open) => {
            vec![EventPayload::BranchReady]
        }
        (BranchState::Open, BranchState::Frozen) => vec![EventPayload::BranchFrozen],
        _ => {
            return Err(Rejection::BranchNotOpen(
                "still copying the live directory",
                "run `roster tenant stage` again to finish it",
            ));
        }
    })
}

/// `DropBranch` on a branch: nothing when it is already gone.
pub(super) fn drop_branch(state: &State) -> Result<Vec<EventPayload>, Rejection> {
    require_branch_name(state)?;
    Ok(match state.tenant {
        Some(_) => vec![EventPayload::BranchDropped],
        None => Vec::new(),
    })
}

/// Whether the SCIM directory commands may change this tenant or branch now: a staged tenant's
/// directory is frozen, and a branch takes changes only while `Open`.
pub(super) fn require_directory_writable(state: &State) -> Result<(), Rejection> {
    let tenant = state
        .tenant
        .as_ref()
        .filter(|_| !state.name.is_system())
        .ok_or(if state.name.is_branch() {
            // Only a request routed here just before a promotion or discard finished addresses
            // a branch that is gone: its retry goes to the live tenant. A 404 would tell the IdP
            // that the resource is gone, and it might create it again.
            Rejection::BranchNotWritable(
                "gone: the staging was promoted or discarded",
                "retry the request",
            )
        } else {
            Rejection::TenantNotFound
        })?;
    if state.name.is_branch() {
        return match tenant.branch {
            Some(BranchState::Open) => Ok(()),
            Some(BranchState::Frozen) => Err(Rejection::BranchNotWritable(
                "frozen",
                "a promotion is under way; retry the request",
            )),
            _ => Err(Rejection::BranchNotWritable(
                "still copying the live directory",
                "retry the request",
            )),
        };
    }
    if tenant.staging.is_some() {
        return Err(Rejection::TenantStaged);
    }
    Ok(())
}

/// `PromoteStaging` on a live tenant loaded whole: the events that make its directory `branch`,
/// then `StagingPromoted`.
///
/// Order: deleted groups (members, mapping and links first, as `DeleteGroup` does), memberships
/// that end, deleted users (manual resource-group memberships first), updated users, updated
/// groups, new users, new groups, memberships that begin. Updates are ordered so that every
/// userName and displayName is released before it is claimed, which keeps every index right
/// whichever slice later folds the events (externalIds need no order: users may share one).
pub(super) fn promote(
    state: &State,
    generation: u64,
    branch: &BranchDirectory,
) -> Result<Vec<EventPayload>, Rejection> {
    let staged = staged_generation(state)?;
    if staged != generation {
        return Err(Rejection::StagingChanged {
            expected: generation,
            actual: Some(staged),
        });
    }
    let mut events = Vec::new();
    let live_groups: BTreeMap<GroupId, _> = state.all_groups().map(|g| (g.id, g)).collect();
    let live_users: BTreeMap<UserId, _> = state.all_users().map(|u| (u.id, u)).collect();

    // Deleted groups.
    for (group_id, group) in &live_groups {
        if branch.groups.contains_key(group_id) {
            continue;
        }
        let members: Vec<UserId> = state.members_of(*group_id).collect();
        push_members(&mut events, *group_id, &members, false);
        if state.role_mapping(group_id).is_some() {
            events.push(EventPayload::RoleMappingRemoved {
                group_id: *group_id,
            });
        }
        events.extend(state.links_of(*group_id).map(|(resource_group_id, _)| {
            EventPayload::ResourceGroupUnlinked {
                resource_group_id,
                group_id: *group_id,
            }
        }));
        events.push(EventPayload::GroupDeleted {
            group_id: *group_id,
            display_name: group.profile.display_name.clone(),
        });
    }
    // Memberships that end, in groups that stay.
    let no_members = BTreeSet::new();
    for group_id in live_groups.keys() {
        let Some(target) = branch
            .groups
            .contains_key(group_id)
            .then(|| branch.members.get(group_id).unwrap_or(&no_members))
        else {
            continue;
        };
        let leaving: Vec<UserId> = state
            .members_of(*group_id)
            .filter(|user| !target.contains(user))
            .collect();
        push_members(&mut events, *group_id, &leaving, false);
    }
    // Deleted users.
    for (user_id, user) in &live_users {
        if branch.users.contains_key(user_id) {
            continue;
        }
        events.extend(
            state
                .resource_groups_of(*user_id)
                .map(
                    |(resource_group_id, _)| EventPayload::ResourceGroupMemberRemoved {
                        resource_group_id,
                        user_id: *user_id,
                    },
                ),
        );
        events.push(EventPayload::UserDeleted {
            user_id: *user_id,
            user_name: user.profile.user_name.clone(),
            external_id: user.profile.external_id.clone(),
            email: user.profile.primary_email(),
            sso: user.sso_identity(),
        });
    }
    // Updated users, each once the userName it takes is free.
    let mut names: BTreeMap<String, UserId> = BTreeMap::new();
    for (user_id, user) in &live_users {
        if branch.users.contains_key(user_id) {
            names.insert(fold(&user.profile.user_name), *user_id);
        }
    }
    let mut pending: Vec<UserId> = live_users
        .iter()
        .filter(|(user_id, user)| {
            branch
                .users
                .get(user_id)
                .is_some_and(|profile| *profile != user.profile)
        })
        .map(|(user_id, _)| *user_id)
        .collect();
    while !pending.is_empty() {
        let before = pending.len();
        let mut waiting = Vec::new();
        for user_id in pending {
            let (Some(current), Some(profile)) =
                (live_users.get(&user_id), branch.users.get(&user_id))
            else {
                continue;
            };
            let name = fold(&profile.user_name);
            let free = |index: &BTreeMap<String, UserId>, key: &str| {
                index.get(key).is_none_or(|holder| *holder == user_id)
            };
            if !free(&names, &name) {
                waiting.push(user_id);
                continue;
            }
            names.remove(&fold(&current.profile.user_name));
            names.insert(name, user_id);
            events.extend(replace(
                current,
                profile.clone(),
                branch.handles.get(&user_id).cloned(),
            ));
        }
        if waiting.len() == before {
            let names: Vec<String> = waiting
                .iter()
                .filter_map(|id| live_users.get(id))
                .map(|user| user.profile.user_name.clone())
                .collect();
            return Err(Rejection::PromotionNameCycle(names.join(", ")));
        }
        pending = waiting;
    }
    // Updated groups, each once the displayName it takes is free.
    let mut group_names: BTreeMap<String, GroupId> = live_groups
        .iter()
        .filter(|(group_id, _)| branch.groups.contains_key(group_id))
        .map(|(group_id, group)| (fold(&group.profile.display_name), *group_id))
        .collect();
    let mut pending: Vec<GroupId> = live_groups
        .iter()
        .filter(|(group_id, group)| {
            branch
                .groups
                .get(group_id)
                .is_some_and(|profile| *profile != group.profile)
        })
        .map(|(group_id, _)| *group_id)
        .collect();
    while !pending.is_empty() {
        let before = pending.len();
        let mut waiting = Vec::new();
        for group_id in pending {
            let (Some(current), Some(profile)) =
                (live_groups.get(&group_id), branch.groups.get(&group_id))
            else {
                continue;
            };
            let name = fold(&profile.display_name);
            if group_names
                .get(&name)
                .is_some_and(|holder| *holder != group_id)
            {
                waiting.push(group_id);
                continue;
            }
            group_names.remove(&fold(&current.profile.display_name));
            group_names.insert(name, group_id);
            events.extend(update_group(current, profile.clone()));
        }
        if waiting.len() == before {
            let names: Vec<String> = waiting
                .iter()
                .filter_map(|id| live_groups.get(id))
                .map(|group| group.profile.display_name.clone())
                .collect();
            return Err(Rejection::PromotionNameCycle(names.join(", ")));
        }
        pending = waiting;
    }
    // New users, new groups, then memberships that begin.
    for (user_id, profile) in &branch.users {
        if !live_users.contains_key(user_id) {
            events.push(EventPayload::UserProvisioned {
                user_id: *user_id,
                profile: profile.clone(),
                handle: branch.handles.get(user_id).cloned(),
            });
        }
    }
    for (group_id, profile) in &branch.groups {
        if !live_groups.contains_key(group_id) {
            events.push(EventPayload::GroupCreated {
                group_id: *group_id,
                profile: profile.clone(),
            });
        }
    }
    for (group_id, members) in &branch.members {
        if !branch.groups.contains_key(group_id) {
            continue;
        }
        let joining: Vec<UserId> = members
            .iter()
            .copied()
            .filter(|user| {
                !live_groups.contains_key(group_id) || !state.is_member(*group_id, *user)
            })
            .collect();
        push_members(&mut events, *group_id, &joining, true);
    }
    events.push(EventPayload::StagingPromoted { generation });
    Ok(events)
}

fn push_members(events: &mut Vec<EventPayload>, group_id: GroupId, users: &[UserId], add: bool) {
    for chunk in users.chunks(MEMBERS_PER_EVENT) {
        let user_ids = chunk.to_vec();
        events.push(if add {
            EventPayload::GroupMembersAdded { group_id, user_ids }
        } else {
            EventPayload::GroupMembersRemoved { group_id, user_ids }
        });
    }
}

/// What promotion would do to one user.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Lifecycle {
    Created,
    Deleted,
    Deactivated,
    Reactivated,
    /// Profile attributes change; the user stays as active as they are.
    Updated,
    /// Only the user's groups or access change.
    Unchanged,
}

/// One user's change under promotion: before is the live tenant now, after is the tenant once
/// promoted (with the live tenant's role mappings, resource-group links and default role).
#[derive(Clone, Debug, PartialEq)]
pub struct UserChange {
    pub user_id: UserId,
    /// The userName after promotion (before, for a deleted user).
    pub user_name: String,
    /// The userName before, when it changes.
    pub previous_user_name: Option<String>,
    /// The platform handle after promotion (before, for a deleted user).
    pub handle: String,
    /// The handle before, when it changes.
    pub previous_handle: Option<String>,
    pub lifecycle: Lifecycle,
    /// `None`: the user does not exist on that side.
    pub before: Option<Access>,
    pub after: Option<Access>,
    pub groups_joined: Vec<GroupId>,
    pub groups_left: Vec<GroupId>,
}

impl UserChange {
    /// Whether the user's org role or any resource-group role changes.
    pub fn access_changes(&self) -> bool {
        self.before != self.after
    }
}

/// One group's change under promotion. A deleted group takes its role mapping and its
/// resource-group links with it, which changes no member's access when it has no members, so
/// only this says so.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupChange {
    pub group_id: GroupId,
    /// After promotion (before, for a deleted group).
    pub display_name: String,
    /// Set when the displayName changes.
    pub previous_display_name: Option<String>,
    /// `Created`, `Deleted` or `Updated` (displayName, externalId or other attributes).
    pub lifecycle: Lifecycle,
    /// The org role a deleted group was mapped to.
    pub role_mapping_removed: Option<Role>,
    /// The resource groups a deleted group was linked to.
    pub unlinked_resource_groups: Vec<ResourceGroupId>,
}

/// What promoting `branch` into `live` (loaded whole) would change, per user and per group, and
/// the promoted state (for names of groups that exist only after).
#[derive(Clone, Debug)]
pub struct PromotionDiff {
    pub users: Vec<UserChange>,
    pub groups: Vec<GroupChange>,
    /// The events promotion appends (`StagingPromoted` included).
    pub events: usize,
    pub promoted: State,
}

/// Decides the promotion and applies it to a copy of `live`, then compares every user's access.
pub fn promotion_diff(
    live: &State,
    generation: u64,
    branch: &BranchDirectory,
) -> Result<PromotionDiff, Rejection> {
    let events = promote(live, generation, branch)?;
    let mut promoted = live.clone();
    for (index, payload) in events.iter().enumerate() {
        let at = Timestamp::from_micros(index as i64);
        apply(
            &mut promoted,
            &Event {
                id: Uuid::nil(),
                tenant: live.name.clone(),
                sequence: 0,
                occurred_at: at,
                recorded_at: at,
                actor: Actor::system(),
                source: Source::default(),
                causation_id: String::new(),
                payload: payload.clone(),
            },
        );
    }
    promoted.journal.drain();
    let ids: BTreeSet<UserId> = live
        .all_users()
        .chain(promoted.all_users())
        .map(|user| user.id)
        .collect();
    let mut users = Vec::new();
    for user_id in ids {
        let (old, new) = (live.user(&user_id), promoted.user(&user_id));
        let lifecycle = match (old, new) {
            (None, Some(_)) => Lifecycle::Created,
            (Some(_), None) => Lifecycle::Deleted,
            (Some(old), Some(new)) if old.profile.active && !new.profile.active => {
                Lifecycle::Deactivated
            }
            (Some(old), Some(new)) if !old.profile.active && new.profile.active => {
                Lifecycle::Reactivated
            }
            (Some(old), Some(new)) if old.profile != new.profile => Lifecycle::Updated,
            _ => Lifecycle::Unchanged,
        };
        let groups_before: BTreeSet<GroupId> = live.groups_of(user_id).collect();
        let groups_after: BTreeSet<GroupId> = promoted.groups_of(user_id).collect();
        let change = UserChange {
            user_id,
            user_name: new
                .or(old)
                .map(|user| user.profile.user_name.clone())
                .unwrap_or_default(),
            previous_user_name: match (old, new) {
                (Some(old), Some(new)) if old.profile.user_name != new.profile.user_name => {
                    Some(old.profile.user_name.clone())
                }
                _ => None,
            },
            handle: new
                .or(old)
                .map(|user| user.handle().to_owned())
                .unwrap_or_default(),
            previous_handle: match (old, new) {
                (Some(old), Some(new)) if old.handle() != new.handle() => {
                    Some(old.handle().to_owned())
                }
                _ => None,
            },
            lifecycle,
            before: access(live, user_id),
            after: access(&promoted, user_id),
            groups_joined: groups_after.difference(&groups_before).copied().collect(),
            groups_left: groups_before.difference(&groups_after).copied().collect(),
        };
        if change.lifecycle != Lifecycle::Unchanged
            || change.access_changes()
            || !change.groups_joined.is_empty()
            || !change.groups_left.is_empty()
        {
            users.push(change);
        }
    }
    users.sort_by(|a, b| {
        fold(&a.user_name)
            .cmp(&fold(&b.user_name))
            .then(a.user_id.cmp(&b.user_id))
    });
    let groups = group_changes(live, &promoted);
    Ok(PromotionDiff {
        users,
        groups,
        events: events.len(),
        promoted,
    })
}

/// Groups created, deleted (with what goes with them) and updated, by displayName.
fn group_changes(live: &State, promoted: &State) -> Vec<GroupChange> {
    let ids: BTreeSet<GroupId> = live
        .all_groups()
        .chain(promoted.all_groups())
        .map(|group| group.id)
        .collect();
    let mut changes = Vec::new();
    for group_id in ids {
        let (old, new) = (live.group(&group_id), promoted.group(&group_id));
        let change = match (old, new) {
            (None, Some(new)) => GroupChange {
                group_id,
                display_name: new.profile.display_name.clone(),
                previous_display_name: None,
                lifecycle: Lifecycle::Created,
                role_mapping_removed: None,
                unlinked_resource_groups: Vec::new(),
            },
            (Some(old), None) => GroupChange {
                group_id,
                display_name: old.profile.display_name.clone(),
                previous_display_name: None,
                lifecycle: Lifecycle::Deleted,
                role_mapping_removed: live.role_mapping(&group_id),
                unlinked_resource_groups: live
                    .links_of(group_id)
                    .map(|(resource_group, _)| resource_group)
                    .collect(),
            },
            (Some(old), Some(new)) if old.profile != new.profile => GroupChange {
                group_id,
                display_name: new.profile.display_name.clone(),
                previous_display_name: (old.profile.display_name != new.profile.display_name)
                    .then(|| old.profile.display_name.clone()),
                lifecycle: Lifecycle::Updated,
                role_mapping_removed: None,
                unlinked_resource_groups: Vec::new(),
            },
            _ => continue,
        };
        changes.push(change);
    }
    changes.sort_by(|a, b| {
        fold(&a.display_name)
            .cmp(&fold(&b.display_name))
            .then(a.group_id.cmp(&b.group_id))
    });
    changes
}

fn live_tenant(state: &State) -> Result<&super::state::TenantRecord, Rejection> {
    state
        .tenant
        .as_ref()
        .filter(|_| !state.name.is_system() && !state.name.is_branch())
        .ok_or(Rejection::TenantNotFound)
}

fn staged_generation(state: &State) -> Result<u64, Rejection> {
    live_tenant(state)?
        .staging
        .as_ref()
        .map(|staging| staging.generation)
        .ok_or(Rejection::NotStaged)
}

fn require_branch_name(state: &State) -> Result<(), Rejection> {
    if state.name.is_branch() {
        Ok(())
    } else {
        Err(Rejection::NotABranch(
            "this command is for staging branches only",
        ))
    }
}

fn branch_state(state: &State) -> Result<BranchState, Rejection> {
    state
        .tenant
        .as_ref()
        .map(|tenant| tenant.branch.unwrap_or(BranchState::Copying))
        .ok_or(Rejection::TenantNotFound)
}
