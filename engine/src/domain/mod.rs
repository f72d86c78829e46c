//! The pure domain: a tenant's directory state, the commands it accepts, the events that record
//! its changes, and the two functions that relate them, [`decide`] and [`apply`].
//!
//! **Architecture invariant:** nothing in this module does I/O. No sled, no NATS, no clock, no
//! randomness: times and new ids arrive inside commands and events.

mod access;
mod apply;
mod command;
mod decide;
mod event;
mod handle;
mod ids;
mod jit;
pub mod limits;
mod profile;
mod rejection;
mod rules;
pub mod ssf;
mod staging;
mod state;
mod user;
mod webhook;

#[cfg(test)]
mod tests;

pub use access::{
    Access, AccessDecision, AccessQuestion, AccessSubject, Grant, RoleGrant, SessionAuth, access,
    check_access, membership_grants_access,
};
pub use apply::apply;
pub use command::{BranchCopy, BranchDirectory, Command, MemberChange, NewToken};
pub use decide::{decide, token_use_covered};
pub use event::{Actor, ActorKind, Event, EventPayload, Source, SsoIdentity};
pub use handle::{
    HANDLE_MAX, HANDLE_MIN, HandleRule, UsernamePolicy, base_handle, check_handle, check_user_name,
    handle_candidates,
};
pub use ids::{
    BRANCH_SEPARATOR, GroupId, ResourceGroupId, Role, SYSTEM_TENANT, SsfStreamId, TenantName,
    Timestamp, TokenId, UserId, WebhookId,
};
pub use jit::{
    CLAIM_ROLE_MAPPINGS_MAX, JIT_EMAIL_MATCHES_MAX, JitLogin, claim_values, role_from_claims,
    user_name_candidates,
};
pub use rejection::{Rejection, RejectionKind};
pub use rules::MEMBERS_PER_EVENT;
pub use ssf::{
    NewSsfStream, SSF_EVENTS_SUPPORTED, SsfDelivery, SsfStreamConfig, SsfStreamRecord,
    SsfStreamStatus,
};
pub use staging::{GroupChange, Lifecycle, PromotionDiff, UserChange, promotion_diff};
pub use state::{
    BranchState, ClaimRole, ClaimRoleMapping, Footprint, GroupProfile, GroupRecord, Journal,
    Loaded, ResourceGroupRecord, SsoLink, Staging, State, TenantRecord, TokenRecord, TokenScope,
    Touched, UserRecord,
};
pub use user::{Attributes, UserProfile, fold};
pub use webhook::{NewWebhook, WEBHOOKS_PER_TENANT_MAX, WebhookRecord, WebhookStatus};
