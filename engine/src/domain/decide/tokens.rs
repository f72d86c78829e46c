//! Tenants and tokens: creating a tenant, issuing, revoking, rotating and using tokens (the
//! system tenant keeps a valid admin token), and the tenant's SSO and username policies.

use super::*;
use crate::domain::{Role, TokenScope};

pub(super) fn create_tenant(
    state: &State,
    default_role: Role,
    usernames: UsernamePolicy,
    first_token: Option<NewToken>,
) -> Result<Vec<EventPayload>, Rejection> {
    if state.name.is_system() || state.tenant.is_some() {
        return Err(Rejection::TenantAlreadyExists);
    }
    let mut events = vec![EventPayload::TenantCreated {
        default_role,
        usernames,
    }];
    if let Some(token) = first_token {
        events.push(token_issued(token));
    }
    Ok(events)
}

pub(super) fn issue_token(state: &State, token: NewToken) -> Result<Vec<EventPayload>, Rejection> {
    require_tenant_or_system(state)?;
    if state.name.is_system() && token.scope != TokenScope::Scim {
        return Err(Rejection::InvalidValue(
            "admin tokens have the scim scope; an ssf token belongs to a tenant".to_owned(),
        ));
    }
    if state.tokens.get(&token.id).is_some_and(Option::is_some) {
        return Err(Rejection::TokenAlreadyExists(token.id));
    }
    Ok(vec![token_issued(token)])
}

pub(super) fn revoke_token(
    state: &State,
    token_id: TokenId,
    at: Timestamp,
) -> Result<Vec<EventPayload>, Rejection> {
    require_tenant_or_system(state)?;
    let token = state
        .token(&token_id)
        .ok_or_else(|| Rejection::TokenNotFound(token_id.clone()))?;
    if token.revoked_at.is_some() {
        return Ok(Vec::new());
    }
    keeps_an_admin_token(state, &token_id, at)?;
    Ok(vec![EventPayload::TokenRevoked { token_id }])
}

pub(super) fn rotate_token(
    state: &State,
    old: TokenId,
    mut new: NewToken,
    old_expires_at: Timestamp,
    at: Timestamp,
) -> Result<Vec<EventPayload>, Rejection> {
    require_tenant_or_system(state)?;
    let current = state
        .token(&old)
        .ok_or_else(|| Rejection::TokenNotFound(old.clone()))?;
    // A successor does what the token it replaces did.
    new.scope = current.scope;
    if current.revoked_at.is_some() {
        return Err(Rejection::TokenNotFound(old));
    }
    if state.tokens.get(&new.id).is_some_and(Option::is_some) {
        return Err(Rejection::TokenAlreadyExists(new.id));
    }
    if new.expires_at.is_some_and(|expiry| expiry <= at) {
        // The new token would not be valid: the old one is the one that stays.
        keeps_an_admin_token(state, &old, at)?;
    }
    let expires_at = current
        .expires_at
        .map_or(old_expires_at, |expiry| expiry.min(old_expires_at));
    let successor = new.id.clone();
    let mut events = vec![token_issued(new)];
    // A Shared Signals receiver keeps its stream under its new client id.
    let streams = state.tenant.iter().flat_map(|tenant| &tenant.ssf_streams);
    for stream in streams.filter(|stream| stream.receiver == old) {
        events.push(EventPayload::SsfStreamUpdated {
            stream_id: stream.id,
            config: stream.config.clone(),
            receiver: Some(successor.clone()),
        });
    }
    if current.expires_at != Some(expires_at) {
        events.push(EventPayload::TokenExpiryChanged {
            token_id: old,
            expires_at: Some(expires_at),
        });
    }
    Ok(events)
}

pub(super) fn record_token_use(
    state: &State,
    token_id: TokenId,
    at: Timestamp,
) -> Result<Vec<EventPayload>, Rejection> {
    let Some(token) = state.token(&token_id) else {
        return Ok(Vec::new());
    };
    if token
        .last_used_at
        .is_some_and(|last| token_use_covered(last, at))
    {
        return Ok(Vec::new());
    }
    Ok(vec![EventPayload::TokenUsed { token_id }])
}

pub(super) fn set_sso_enforced(
    state: &State,
    enforced: bool,
) -> Result<Vec<EventPayload>, Rejection> {
    require_tenant(state)?;
    if state
        .tenant
        .as_ref()
        .is_some_and(|tenant| tenant.sso_enforced == enforced)
    {
        return Ok(Vec::new());
    }
    Ok(vec![EventPayload::TenantSettingsChanged {
        sso_enforced: Some(enforced),
        usernames: None,
    }])
}

/// Sets how handles follow from userNames. Going to `derive` keeps every handle; going back to
/// `strict` is refused while any user's handle differs from their userName.
pub(super) fn set_username_policy(
    state: &State,
    policy: UsernamePolicy,
) -> Result<Vec<EventPayload>, Rejection> {
    require_tenant(state)?;
    let Some(tenant) = state.tenant.as_ref() else {
        return Err(Rejection::TenantNotFound);
    };
    if tenant.usernames == policy {
        return Ok(Vec::new());
    }
    if policy == UsernamePolicy::Strict && tenant.derived_handles > 0 {
        return Err(Rejection::DerivedHandlesRemain {
            count: tenant.derived_handles,
        });
    }
    Ok(vec![EventPayload::TenantSettingsChanged {
        sso_enforced: None,
        usernames: Some(policy),
    }])
}
