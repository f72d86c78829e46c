//! Folding user events: records, their name, externalId and derived-handle indexes,
//! (de)activation, deletion (with the user's memberships) and the tenant's user and
//! derived-handle counts.

use super::*;

pub(super) fn apply(state: &mut State, event: &Event) {
    let at = event.occurred_at;
    match &event.payload {
        EventPayload::UserProvisioned {
            user_id,
            profile,
            handle,
        } => {
            set_user_name(state, *user_id, None, Some(&profile.user_name));
            set_external_id(state, *user_id, None, profile.external_id.as_deref());
            let handle = derived_handle(handle.as_deref(), &profile.user_name);
            set_handle(state, *user_id, None, handle.as_deref());
            state.users.insert(
                *user_id,
                Some(UserRecord {
                    id: *user_id,
                    profile: profile.clone(),
                    version: 1,
                    created_at: at,
                    modified_at: at,
                    sso: None,
                    handle,
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
            handle,
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
                let handle = derived_handle(handle.as_deref(), new_name);
                set_handle(state, *user_id, user.handle.as_deref(), handle.as_deref());
                user.handle = handle;
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
            set_handle(state, *user_id, user.handle.as_deref(), None);
            if let Some(link) = &user.sso {
                set_subject(state, *user_id, Some(&link.subject), None);
            }
            state.users.insert(*user_id, None);
            state.journal.touch(Touched::User(*user_id));
            adjust_user_count(state, -1);
        }
        // Routed to another area by `apply`.
        _ => {}
    }
}

/// The handle a user record keeps: the event's handle unless it is the userName itself.
fn derived_handle(handle: Option<&str>, user_name: &str) -> Option<String> {
    handle
        .filter(|handle| *handle != user_name)
        .map(str::to_owned)
}

/// Moves the derived-handle index entry of `user_id` from `old` to `new` (each a handle that
/// differs from its userName) and keeps the tenant's count of such users.
fn set_handle(state: &mut State, user_id: UserId, old: Option<&str>, new: Option<&str>) {
    if old == new {
        return;
    }
    if let Some(old) = old.map(fold)
        && (state.user_id_by_derived_handle(&old) == Some(user_id)
            || !state.user_handles.contains_key(&old))
    {
        state.user_handles.insert(old.clone(), None);
        state.journal.touch(Touched::UserHandle(old));
    }
    if let Some(new) = new.map(fold) {
        state.user_handles.insert(new.clone(), Some(user_id));
        state.journal.touch(Touched::UserHandle(new));
    }
    let delta = i64::from(new.is_some()) - i64::from(old.is_some());
    if delta != 0
        && let Some(tenant) = state.tenant.as_mut()
    {
        tenant.derived_handles = tenant.derived_handles.saturating_add_signed(delta);
        state.journal.touch(Touched::Tenant);
    }
}
