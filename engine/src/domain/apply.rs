//! `apply`: folds one event into a state or slice and journals what it touched. Events were
//! decided against the same state, so `apply` never refuses; an event whose target is missing from
//! the slice changes nothing.

use super::event::{Event, EventPayload};
use super::ids::UserId;
use super::state::{State, TenantRecord, TokenRecord, Touched, UserRecord};
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
                }),
            );
            state.journal.touch(Touched::User(*user_id));
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
            state.users.insert(*user_id, None);
            state.journal.touch(Touched::User(*user_id));
            adjust_user_count(state, -1);
        }
    }
}

fn bump(state: &mut State, mut user: UserRecord, at: super::ids::Timestamp) {
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
