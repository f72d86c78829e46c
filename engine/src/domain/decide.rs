//! `decide`: the directory's rules. Given a tenant's state (or the slice of it a command needs)
//! and a command, it returns the events that record the change, or why the command is refused.
//! No I/O, no clock, no randomness.

use super::command::{Command, NewToken};
use super::event::EventPayload;
use super::ids::UserId;
use super::rejection::Rejection;
use super::state::{State, UserRecord};
use super::user::{Attributes, UserProfile, check_user_name, fold};

/// Attribute names that are never part of a profile's free-form attributes: they are modelled
/// separately (`userName`, `externalId`, `active`), owned by the server (`id`, `meta`, `schemas`,
/// `groups`) or never stored (`password`).
const RESERVED_ATTRIBUTES: [&str; 8] = [
    "username",
    "externalid",
    "active",
    "id",
    "meta",
    "schemas",
    "groups",
    "password",
];

pub fn decide(state: &State, command: Command) -> Result<Vec<EventPayload>, Rejection> {
    match command {
        Command::CreateTenant {
            default_role,
            first_token,
        } => {
            if state.name.is_system() || state.tenant.is_some() {
                return Err(Rejection::TenantAlreadyExists);
            }
            let mut events = vec![EventPayload::TenantCreated { default_role }];
            if let Some(token) = first_token {
                events.push(token_issued(token));
            }
            Ok(events)
        }
        Command::IssueToken(token) => {
            require_tenant_or_system(state)?;
            if state.tokens.get(&token.id).is_some_and(Option::is_some) {
                return Err(Rejection::TokenAlreadyExists(token.id));
            }
            Ok(vec![token_issued(token)])
        }
        Command::RevokeToken { token_id } => {
            require_tenant_or_system(state)?;
            let token = state
                .token(&token_id)
                .ok_or_else(|| Rejection::TokenNotFound(token_id.clone()))?;
            if token.revoked_at.is_some() {
                return Ok(Vec::new());
            }
            Ok(vec![EventPayload::TokenRevoked { token_id }])
        }
        Command::ProvisionUser { user_id, profile } => {
            require_tenant(state)?;
            let profile = normalize(profile)?;
            if state.user(&user_id).is_some() {
                return Err(Rejection::UserAlreadyExists(user_id));
            }
            check_unique(state, user_id, &profile)?;
            Ok(vec![EventPayload::UserProvisioned { user_id, profile }])
        }
        Command::ReplaceUser {
            user_id,
            profile,
            expected_version,
        } => {
            require_tenant(state)?;
            let current = existing_user(state, user_id, expected_version)?;
            let profile = normalize(profile)?;
            check_unique(state, user_id, &profile)?;
            Ok(replace(current, profile))
        }
        Command::SetUserActive {
            user_id,
            active,
            expected_version,
        } => {
            require_tenant(state)?;
            let current = existing_user(state, user_id, expected_version)?;
            let profile = UserProfile {
                active,
                ..current.profile.clone()
            };
            Ok(replace(current, profile))
        }
        Command::DeleteUser {
            user_id,
            expected_version,
        } => {
            require_tenant(state)?;
            let current = existing_user(state, user_id, expected_version)?;
            Ok(vec![EventPayload::UserDeleted {
                user_id,
                user_name: current.profile.user_name.clone(),
                external_id: current.profile.external_id.clone(),
            }])
        }
    }
}

fn token_issued(token: NewToken) -> EventPayload {
    EventPayload::TokenIssued {
        token_id: token.id,
        name: token.name,
        secret_sha256: token.secret_sha256,
        expires_at: token.expires_at,
    }
}

fn require_tenant(state: &State) -> Result<(), Rejection> {
    match state.tenant {
        Some(_) if !state.name.is_system() => Ok(()),
        _ => Err(Rejection::TenantNotFound),
    }
}

/// Tokens also live in the `_system` tenant (admin tokens), which exists implicitly.
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

/// Applies the profile rules and drops what is never stored.
fn normalize(profile: UserProfile) -> Result<UserProfile, Rejection> {
    let mut profile = profile.without_secrets();
    profile
        .attributes
        .retain(|name, value| !value.is_null() && !is_reserved(name));
    profile.external_id = profile.external_id.filter(|id| !id.is_empty());
    check_user_name(&profile.user_name).map_err(|rule| Rejection::InvalidUserName {
        user_name: profile.user_name.clone(),
        rule,
    })?;
    Ok(profile)
}

fn is_reserved(name: &str) -> bool {
    RESERVED_ATTRIBUTES
        .iter()
        .any(|reserved| name.eq_ignore_ascii_case(reserved))
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
    if let Some(external_id) = &profile.external_id
        && state
            .user_id_by_external_id(external_id)
            .is_some_and(|owner| owner != user_id)
    {
        return Err(Rejection::ExternalIdTaken {
            external_id: external_id.clone(),
        });
    }
    Ok(())
}

/// The events that turn `current` into `profile`: an update with what changed, then the
/// lifecycle change of `active`. Nothing changed: no events.
fn replace(current: &UserRecord, profile: UserProfile) -> Vec<EventPayload> {
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
