//! Folding tenant and token events: the tenant record, tokens, their expiry, use and
//! revocation, and the tenant's settings.

use super::*;

pub(super) fn apply(state: &mut State, event: &Event) {
    let at = event.occurred_at;
    match &event.payload {
        EventPayload::TenantCreated {
            default_role,
            usernames,
        } => {
            state.tenant = Some(TenantRecord {
                created_at: at,
                default_role: *default_role,
                sso_enforced: false,
                usernames: *usernames,
                derived_handles: 0,
                user_count: 0,
                group_count: 0,
                staging: None,
                stagings: 0,
                branch: None,
                claim_role_mappings: Vec::new(),
                webhooks: Vec::new(),
                ssf_streams: Default::default(),
            });
            state.journal.touch(Touched::Tenant);
        }
        EventPayload::TokenIssued {
            token_id,
            name,
            scope,
            secret_sha256,
            expires_at,
        } => {
            state.tokens.insert(
                token_id.clone(),
                Some(TokenRecord {
                    id: token_id.clone(),
                    name: name.clone(),
                    scope: *scope,
                    secret_sha256: *secret_sha256,
                    created_at: at,
                    expires_at: *expires_at,
                    revoked_at: None,
                    last_used_at: None,
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
        EventPayload::TokenExpiryChanged {
            token_id,
            expires_at,
        } => {
            if let Some(Some(token)) = state.tokens.get_mut(token_id) {
                token.expires_at = *expires_at;
                state.journal.touch(Touched::Token(token_id.clone()));
            }
        }
        EventPayload::TokenUsed { token_id } => {
            if let Some(Some(token)) = state.tokens.get_mut(token_id) {
                token.last_used_at = Some(at);
                state.journal.touch(Touched::Token(token_id.clone()));
            }
        }
        EventPayload::TenantSettingsChanged {
            sso_enforced,
            usernames,
        } => {
            if let Some(tenant) = state.tenant.as_mut() {
                if let Some(enforced) = sso_enforced {
                    tenant.sso_enforced = *enforced;
                }
                if let Some(policy) = usernames {
                    tenant.usernames = *policy;
                }
                state.journal.touch(Touched::Tenant);
            }
        }
        // Routed to another area by `apply`.
        _ => {}
    }
}
