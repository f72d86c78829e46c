//! Folding staging events: the live tenant's staging state and a branch's lifecycle.

use super::*;

pub(super) fn apply(state: &mut State, event: &Event) {
    let at = event.occurred_at;
    match &event.payload {
        EventPayload::TenantStaged { generation } => {
            if let Some(tenant) = state.tenant.as_mut() {
                tenant.staging = Some(Staging {
                    generation: *generation,
                    since: at,
                });
                tenant.stagings = tenant.stagings.max(*generation);
                state.journal.touch(Touched::Tenant);
            }
        }
        EventPayload::StagingPromoted { .. } | EventPayload::StagingDiscarded { .. } => {
            if let Some(tenant) = state.tenant.as_mut() {
                tenant.staging = None;
                state.journal.touch(Touched::Tenant);
            }
        }
        EventPayload::BranchOpened => {
            state.tenant = Some(TenantRecord {
                created_at: at,
                default_role: crate::domain::Role::Read,
                sso_enforced: false,
                usernames: crate::domain::UsernamePolicy::Strict,
                derived_handles: 0,
                user_count: 0,
                group_count: 0,
                staging: None,
                stagings: 0,
                branch: Some(BranchState::Copying),
                claim_role_mappings: Vec::new(),
                webhooks: Vec::new(),
                ssf_streams: Default::default(),
            });
            state.journal.touch(Touched::Tenant);
        }
        EventPayload::BranchReady | EventPayload::BranchFrozen => {
            if let Some(tenant) = state.tenant.as_mut() {
                tenant.branch = Some(if matches!(event.payload, EventPayload::BranchReady) {
                    BranchState::Open
                } else {
                    BranchState::Frozen
                });
                state.journal.touch(Touched::Tenant);
            }
        }
        EventPayload::BranchDropped => state.drop_everything(),
        // Routed to another area by `apply`.
        _ => {}
    }
}
