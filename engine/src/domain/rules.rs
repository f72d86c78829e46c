//! Rules that several deciders share (`decide`, just-in-time provisioning, staging's promotion):
//! a tenant must exist, a user profile is normalized the same way everywhere, and a change of a
//! user or a group is expressed by the same events. It imports none of them, so they import it
//! and not each other.

use super::event::EventPayload;
use super::limits;
use super::profile;
use super::rejection::Rejection;
use super::state::{GroupProfile, GroupRecord, State, UserRecord};
use super::user::{Attributes, UserProfile, check_user_name};

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

/// Applies the profile rules and drops what is never stored; `before` is the user as stored, on a
/// replace (see `limits` for what it changes).
pub(super) fn normalize(
    profile: UserProfile,
    before: Option<&UserProfile>,
) -> Result<UserProfile, Rejection> {
    let mut profile = profile.without_secrets();
    profile::retain_stored_user_attributes(&mut profile.attributes);
    profile.external_id = profile.external_id.filter(|id| !id.is_empty());
    // Before the username rules, whose refusal quotes the name.
    limits::check_user(&profile, before)?;
    check_user_name(&profile.user_name).map_err(|rule| Rejection::InvalidUserName {
        user_name: profile.user_name.clone(),
        rule,
    })?;
    Ok(profile)
}

/// The events that turn `current` into `profile`: an update with what changed, then the
/// lifecycle change of `active`. Nothing changed: no events.
pub(super) fn replace(current: &UserRecord, profile: UserProfile) -> Vec<EventPayload> {
    let before = &current.profile;
    let mut events = Vec::new();
    let user_name = (profile.user_name != before.user_name).then(|| profile.user_name.clone());
    let external_id =
        (profile.external_id != before.external_id).then(|| profile.external_id.clone());
    let changed_attributes = changed_attributes(&before.attributes, &profile.attributes);
    if user_name.is_some() || external_id.is_some() || !changed_attributes.is_empty() {
        events.push(EventPayload::UserUpdated {
            user_id: current.id,
            user_name,
            external_id,
            changed_attributes,
        });
    }
    if profile.active != before.active {
        let user_id = current.id;
        let user_name = profile.user_name.clone();
        let external_id = profile.external_id.clone();
        events.push(if profile.active {
            EventPayload::UserReactivated {
                user_id,
                user_name,
                external_id,
            }
        } else {
            EventPayload::UserDeactivated {
                user_id,
                user_name,
                external_id,
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
