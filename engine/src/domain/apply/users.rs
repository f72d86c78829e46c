//! Folding user events: records, their name and externalId indexes, (de)activation, deletion
//! (with the user's memberships) and the tenant's user count.

use super::*;

pub(super) fn apply(state: &mut State, event: &Event) {
    let at = event.occurred_at;
    match &event.payload {
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
        // Routed to another area by `apply`.
        _ => {}
    }
}
