//! Rules that several deciders share (`decide`, just-in-time provisioning, staging's promotion):
//! a tenant must exist, a user profile is normalized the same way everywhere, and a change of a
//! user or a group is expressed by the same events. It imports none of them, so they import it
//! and not each other.

use super::event::EventPayload;
use super::handle::{
    UsernamePolicy, base_handle, check_handle, check_user_name, handle_candidates,
};
use super::ids::UserId;
use super::limits;
use super::profile;
use super::rejection::Rejection;
use super::state::{GroupProfile, GroupRecord, State, UserRecord};
use super::user::{Attributes, UserProfile, fold};

/// User ids per membership event, at most: one event stays well under a NATS message's size.
pub const MEMBERS_PER_EVENT: usize = 1000;

pub(super) fn update_group(current: &GroupRecord, profile: GroupProfile) -> Vec<EventPayload> {
    let before = &current.profile;
    let mut events = Vec::new();
    if profile.display_name != before.display_name {
        events.push(EventPayload::GroupRenamed {
            group_id: current.id,
            display_name: profile.display_name.clone(),
        });
    }
    let external_id =
        (profile.external_id != before.external_id).then(|| profile.external_id.clone());
    let changed_attributes = changed_attributes(&before.attributes, &profile.attributes);
    if external_id.is_some() || !changed_attributes.is_empty() {
        events.push(EventPayload::GroupUpdated {
            group_id: current.id,
            external_id,
            changed_attributes,
        });
    }
    events
}

pub(super) fn require_tenant(state: &State) -> Result<(), Rejection> {
    match state.tenant {
        Some(_) if !state.name.is_system() => Ok(()),
        _ => Err(Rejection::TenantNotFound),
    }
}

/// The tenant's username policy (`strict` where there is no tenant record).
pub(super) fn username_policy(state: &State) -> UsernamePolicy {
    state
        .tenant
        .as_ref()
        .map(|tenant| tenant.usernames)
        .unwrap_or_default()
}

/// Applies the profile rules and drops what is never stored; `before` is the user as stored, on a
/// replace (see `limits` for what it changes). The userName is trimmed and must follow the
/// userName rules, and under the `strict` policy the handle rules too.
pub(super) fn normalize(
    profile: UserProfile,
    before: Option<&UserProfile>,
    policy: UsernamePolicy,
) -> Result<UserProfile, Rejection> {
    let mut profile = profile.without_secrets();
    profile::retain_stored_user_attributes(&mut profile.attributes);
    profile.external_id = profile.external_id.filter(|id| !id.is_empty());
    let trimmed = profile.user_name.trim();
    if trimmed.len() != profile.user_name.len() {
        profile.user_name = trimmed.to_owned();
    }
    // Before the username rules, whose refusal quotes the name.
    limits::check_user(&profile, before)?;
    check_user_name(&profile.user_name).map_err(|problem| Rejection::BadUserName {
        user_name: profile.user_name.clone(),
        problem,
    })?;
    if policy == UsernamePolicy::Strict {
        check_handle(&profile.user_name).map_err(|rule| Rejection::InvalidUserName {
            user_name: profile.user_name.clone(),
            rule,
        })?;
    }
    Ok(profile)
}

/// The handles `user_id` may get for `user_name` under the `derive` policy, in order, folded:
/// what a decision needs loaded (the derived-handle and userName index entries of each).
pub(super) fn handle_footprint(user_id: UserId, user_name: &str) -> Vec<String> {
    handle_candidates(&base_handle(user_name.trim()), user_id)
        .iter()
        .map(|handle| fold(handle))
        .collect()
}

/// The handle `user_id` gets with the userName `user_name` (given it, or given it anew), as the
/// event carries it: `None` when the handle is the userName (always under `strict`). Under
/// `derive`, the first candidate no other user holds as a handle or as a userName (a userName is
/// taken to be its user's handle: at worst a free handle is skipped, never a held one given).
pub(super) fn assign_handle(
    state: &State,
    user_id: UserId,
    user_name: &str,
) -> Result<Option<String>, Rejection> {
    if username_policy(state) == UsernamePolicy::Strict {
        return Ok(None);
    }
    let base = base_handle(user_name);
    for candidate in handle_candidates(&base, user_id) {
        let folded = fold(&candidate);
        let taken = [
            state.user_id_by_derived_handle(&folded),
            state.user_id_by_name(&folded),
        ]
        .into_iter()
        .flatten()
        .any(|holder| holder != user_id);
        if !taken {
            return Ok((candidate != user_name).then_some(candidate));
        }
    }
    Err(Rejection::HandleTaken { handle: base })
}

/// The events that turn `current` into `profile`: an update with what changed, then the
/// lifecycle change of `active`. Nothing changed: no events. `handle`: the handle that goes with
/// a changed userName, as [`assign_handle`] gives it (unused when userName stays).
pub(super) fn replace(
    current: &UserRecord,
    profile: UserProfile,
    handle: Option<String>,
) -> Vec<EventPayload> {
    let before = &current.profile;
    let mut events = Vec::new();
    let user_name = (profile.user_name != before.user_name).then(|| profile.user_name.clone());
    let external_id =
        (profile.external_id != before.external_id).then(|| profile.external_id.clone());
    let changed_attributes = changed_attributes(&before.attributes, &profile.attributes);
    if user_name.is_some() || external_id.is_some() || !changed_attributes.is_empty() {
        events.push(EventPayload::UserUpdated {
            user_id: current.id,
            handle: user_name.as_ref().and(handle),
            user_name,
            external_id,
            changed_attributes,
        });
    }
    if profile.active != before.active {
        let user_id = current.id;
        let user_name = profile.user_name.clone();
        let external_id = profile.external_id.clone();
        let email = profile.primary_email();
        let sso = current.sso_identity();
        events.push(if profile.active {
            EventPayload::UserReactivated {
                user_id,
                user_name,
                external_id,
                email,
                sso,
            }
        } else {
            EventPayload::UserDeactivated {
                user_id,
                user_name,
                external_id,
                email,
                sso,
            }
        });
    }
    events
}

/// Attribute → new value for every attribute that differs; removed ones map to `null`.
fn changed_attributes(before: &Attributes, after: &Attributes) -> Attributes {
    let mut changed = Attributes::new();
    for (name, value) in after {
        if before.get(name) != Some(value) {
            changed.insert(name.clone(), value.clone());
        }
    }
    for name in before.keys() {
        if !after.contains_key(name) {
            changed.insert(name.clone(), serde_json::Value::Null);
        }
    }
    changed
}
