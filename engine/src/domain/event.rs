//! Lifecycle events as the domain sees them: the envelope and the payloads. The log stores them as
//! `roster.v1.Event` protobuf (see `crate::codec`); the domain never touches the wire types.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::handle::UsernamePolicy;
use super::ids::{
    GroupId, ResourceGroupId, Role, SsfStreamId, TenantName, Timestamp, TokenId, UserId, WebhookId,
};
use super::ssf::{SsfStreamConfig, SsfStreamStatus};
use super::state::{ClaimRole, Footprint, GroupProfile, TokenScope};
use super::user::{Attributes, UserProfile};
use super::webhook::WebhookStatus;

/// Who asked for a change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    ScimToken,
    Admin,
    Jit,
    System,
    /// A Shared Signals receiver (its `ssf` token); `Actor.id` is the token id.
    SsfReceiver,
}

impl ActorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::ScimToken => "scim_token",
            ActorKind::Admin => "admin",
            ActorKind::Jit => "jit",
            ActorKind::System => "system",
            ActorKind::SsfReceiver => "ssf_receiver",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub kind: ActorKind,
    pub id: String,
    pub display: String,
}

impl Actor {
    pub fn system() -> Self {
        Self {
            kind: ActorKind::System,
            id: String::new(),
            display: "roster".to_owned(),
        }
    }
}

/// Where a request came from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    pub ip: String,
    pub user_agent: String,
    pub request_id: String,
}

/// A lifecycle event with its envelope.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub id: Uuid,
    pub tenant: TenantName,
    /// Assigned by the log; 0 until appended.
    pub sequence: u64,
    pub occurred_at: Timestamp,
    /// Assigned by the log.
    pub recorded_at: Timestamp,
    pub actor: Actor,
    pub source: Source,
    pub causation_id: String,
    pub payload: EventPayload,
}

/// An SSO identity as Shared Signals name it (`iss_sub`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SsoIdentity {
    pub issuer: String,
    pub subject: String,
}

/// What happened.
#[derive(Clone, Debug, PartialEq)]
pub enum EventPayload {
    TenantCreated {
        default_role: Role,
        usernames: UsernamePolicy,
    },
    TokenIssued {
        token_id: TokenId,
        name: String,
        scope: TokenScope,
        secret_sha256: [u8; 32],
        expires_at: Option<Timestamp>,
    },
    TokenRevoked {
        token_id: TokenId,
    },
    TokenExpiryChanged {
        token_id: TokenId,
        /// `None`: the token no longer expires.
        expires_at: Option<Timestamp>,
    },
    /// The token authenticated a request (recorded at most once an hour per token).
    TokenUsed {
        token_id: TokenId,
    },
    TenantSettingsChanged {
        /// `Some` when the SSO-enforcement policy changed.
        sso_enforced: Option<bool>,
        /// `Some` when the username policy changed.
        usernames: Option<UsernamePolicy>,
    },
    UserProvisioned {
        user_id: UserId,
        profile: UserProfile,
        /// The handle when it differs from the userName; `None`: the handle is the userName.
        handle: Option<String>,
    },
    UserUpdated {
        user_id: UserId,
        user_name: Option<String>,
        /// With `user_name`: the new handle when it differs from the new userName (`None`: the
        /// handle is the new userName). Ignored without `user_name`: handles change only then.
        handle: Option<String>,
        /// `Some(None)`: externalId removed.
        external_id: Option<Option<String>>,
        /// Attribute → new value; `Null` means removed.
        changed_attributes: Attributes,
    },
    UserDeactivated {
        user_id: UserId,
        user_name: String,
        external_id: Option<String>,
        /// The user's primary email then (what Shared Signals name them by); `None` for none,
        /// and in events written before it was recorded.
        email: Option<String>,
        /// The user's SSO identity then (issuer and subject), when linked with a known issuer.
        sso: Option<SsoIdentity>,
    },
    UserReactivated {
        user_id: UserId,
        user_name: String,
        external_id: Option<String>,
        /// The user's primary email then (what Shared Signals name them by); `None` for none,
        /// and in events written before it was recorded.
        email: Option<String>,
        /// The user's SSO identity then (issuer and subject), when linked with a known issuer.
        sso: Option<SsoIdentity>,
    },
    UserDeleted {
        user_id: UserId,
        user_name: String,
        external_id: Option<String>,
        /// The user's primary email then (what Shared Signals name them by); `None` for none,
        /// and in events written before it was recorded.
        email: Option<String>,
        /// The user's SSO identity then (issuer and subject), when linked with a known issuer.
        sso: Option<SsoIdentity>,
    },
    GroupCreated {
        group_id: GroupId,
        profile: GroupProfile,
    },
    GroupRenamed {
        group_id: GroupId,
        display_name: String,
    },
    GroupUpdated {
        group_id: GroupId,
        /// `Some(None)`: externalId removed.
        external_id: Option<Option<String>>,
        changed_attributes: Attributes,
    },
    GroupMembersAdded {
        group_id: GroupId,
        user_ids: Vec<UserId>,
    },
    GroupMembersRemoved {
        group_id: GroupId,
        user_ids: Vec<UserId>,
    },
    GroupDeleted {
        group_id: GroupId,
        display_name: String,
    },
    DefaultRoleSet {
        role: Role,
    },
    RoleMappingSet {
        group_id: GroupId,
        role: Role,
    },
    RoleMappingRemoved {
        group_id: GroupId,
    },
    ResourceGroupCreated {
        resource_group_id: ResourceGroupId,
        name: String,
    },
    ResourceGroupDeleted {
        resource_group_id: ResourceGroupId,
    },
    ResourceGroupLinked {
        resource_group_id: ResourceGroupId,
        group_id: GroupId,
        role: Role,
    },
    ResourceGroupLinkRoleChanged {
        resource_group_id: ResourceGroupId,
        group_id: GroupId,
        role: Role,
    },
    ResourceGroupUnlinked {
        resource_group_id: ResourceGroupId,
        group_id: GroupId,
    },
    ResourceGroupMemberSet {
        resource_group_id: ResourceGroupId,
        user_id: UserId,
        role: Role,
    },
    ResourceGroupMemberRemoved {
        resource_group_id: ResourceGroupId,
        user_id: UserId,
    },
    /// The tenant entered staging; its SCIM traffic goes to branch `generation`.
    TenantStaged {
        generation: u64,
    },
    /// (On a branch.) The branch was created, empty; the live directory is copied in next.
    BranchOpened,
    /// (On a branch.) The branch takes SCIM reads and writes.
    BranchReady,
    /// (On a branch.) A promotion is reading the branch: it takes no more writes.
    BranchFrozen,
    /// (On a branch.) Everything the branch held is gone.
    BranchDropped,
    /// The live directory became the branch's (the events before this one, of the same command)
    /// and the tenant left staging.
    StagingPromoted {
        generation: u64,
    },
    /// The tenant left staging without changing its directory.
    StagingDiscarded {
        generation: u64,
    },
    /// SSO claim `claim` holding `value` grants `role` at just-in-time provisioning.
    ClaimRoleMappingSet {
        claim: String,
        value: String,
        role: Role,
    },
    ClaimRoleMappingRemoved {
        claim: String,
        value: String,
    },
    /// The user is the SSO identity `subject` (just-in-time provisioning linked or created them).
    UserSsoLinked {
        user_id: UserId,
        subject: String,
        /// The IdP's issuer (the login's `iss`), when it carried one.
        issuer: Option<String>,
    },
    /// The org role the user's SSO claims grant changed (`None`: they grant none).
    UserClaimRoleChanged {
        user_id: UserId,
        claim_role: Option<ClaimRole>,
    },
    /// A URL was subscribed to the tenant's events. Its secret is not here: it is derived from
    /// the deployment's webhook key (generation 1).
    WebhookAdded {
        webhook_id: WebhookId,
        url: String,
        event_types: Vec<String>,
        description: String,
    },
    WebhookStatusChanged {
        webhook_id: WebhookId,
        status: WebhookStatus,
        reason: String,
    },
    /// Secret `generation` signs from now on; the one before it until `previous_expires_at`.
    WebhookSecretRotated {
        webhook_id: WebhookId,
        generation: u32,
        previous_expires_at: Timestamp,
    },
    WebhookRemoved {
        webhook_id: WebhookId,
        reason: String,
    },
    /// A receiver created a Shared Signals stream. A push receiver's authorization header is
    /// only here sealed.
    SsfStreamCreated {
        stream_id: SsfStreamId,
        receiver: TokenId,
        config: SsfStreamConfig,
    },
    /// The stream's configuration is now `config` (updated or replaced); `receiver`, when set,
    /// is its receiver's new client (the receiver's `ssf` token was rotated).
    SsfStreamUpdated {
        stream_id: SsfStreamId,
        config: SsfStreamConfig,
        receiver: Option<TokenId>,
    },
    /// `by_receiver`: the receiver asked; otherwise an admin or roster did, and the receiver is
    /// told with a `stream-updated` event.
    SsfStreamStatusChanged {
        stream_id: SsfStreamId,
        status: SsfStreamStatus,
        reason: String,
        by_receiver: bool,
    },
    /// `subject` (canonical JSON) was removed from the stream, or added back.
    SsfSubjectChanged {
        stream_id: SsfStreamId,
        subject: String,
        removed: bool,
    },
    /// The receiver asked for a verification event echoing `state`.
    SsfVerificationRequested {
        stream_id: SsfStreamId,
        state: String,
    },
    SsfStreamDeleted {
        stream_id: SsfStreamId,
        reason: String,
    },
}

impl EventPayload {
    /// Every `event_type()`, in declaration order: the public list of event types (README's
    /// "Event subjects" names each; a test holds it to the variants).
    pub const TYPES: &'static [&'static str] = &[
        "tenant.created",
        "token.issued",
        "token.revoked",
        "token.expiry_changed",
        "token.used",
        "tenant.settings_changed",
        "user.provisioned",
        "user.updated",
        "user.deactivated",
        "user.reactivated",
        "user.deleted",
        "group.created",
        "group.renamed",
        "group.updated",
        "group.members_added",
        "group.members_removed",
        "group.deleted",
        "role.default_set",
        "role.mapping_set",
        "role.mapping_removed",
        "resource_group.created",
        "resource_group.deleted",
        "resource_group.linked",
        "resource_group.link_role_changed",
        "resource_group.unlinked",
        "resource_group.member_set",
        "resource_group.member_removed",
        "tenant.staged",
        "staging.branch_opened",
        "staging.branch_ready",
        "staging.branch_frozen",
        "staging.branch_dropped",
        "tenant.staging_promoted",
        "tenant.staging_discarded",
        "role.claim_mapping_set",
        "role.claim_mapping_removed",
        "user.sso_linked",
        "user.claim_role_changed",
        "webhook.added",
        "webhook.status_changed",
        "webhook.secret_rotated",
        "webhook.removed",
        "ssf_stream.created",
        "ssf_stream.updated",
        "ssf_stream.status_changed",
        "ssf_stream.subject_changed",
        "ssf_stream.verification_requested",
        "ssf_stream.deleted",
    ];

    /// Stable dotted name, `<resource>.<verb>`; also the tail of the NATS subject.
    pub fn event_type(&self) -> &'static str {
        match self {
            EventPayload::TenantCreated { .. } => "tenant.created",
            EventPayload::TokenIssued { .. } => "token.issued",
            EventPayload::TokenRevoked { .. } => "token.revoked",
            EventPayload::TokenExpiryChanged { .. } => "token.expiry_changed",
            EventPayload::TokenUsed { .. } => "token.used",
            EventPayload::TenantSettingsChanged { .. } => "tenant.settings_changed",
            EventPayload::UserProvisioned { .. } => "user.provisioned",
            EventPayload::UserUpdated { .. } => "user.updated",
            EventPayload::UserDeactivated { .. } => "user.deactivated",
            EventPayload::UserReactivated { .. } => "user.reactivated",
            EventPayload::UserDeleted { .. } => "user.deleted",
            EventPayload::GroupCreated { .. } => "group.created",
            EventPayload::GroupRenamed { .. } => "group.renamed",
            EventPayload::GroupUpdated { .. } => "group.updated",
            EventPayload::GroupMembersAdded { .. } => "group.members_added",
            EventPayload::GroupMembersRemoved { .. } => "group.members_removed",
            EventPayload::GroupDeleted { .. } => "group.deleted",
            EventPayload::DefaultRoleSet { .. } => "role.default_set",
            EventPayload::RoleMappingSet { .. } => "role.mapping_set",
            EventPayload::RoleMappingRemoved { .. } => "role.mapping_removed",
            EventPayload::ResourceGroupCreated { .. } => "resource_group.created",
            EventPayload::ResourceGroupDeleted { .. } => "resource_group.deleted",
            EventPayload::ResourceGroupLinked { .. } => "resource_group.linked",
            EventPayload::ResourceGroupLinkRoleChanged { .. } => "resource_group.link_role_changed",
            EventPayload::ResourceGroupUnlinked { .. } => "resource_group.unlinked",
            EventPayload::ResourceGroupMemberSet { .. } => "resource_group.member_set",
            EventPayload::ResourceGroupMemberRemoved { .. } => "resource_group.member_removed",
            EventPayload::TenantStaged { .. } => "tenant.staged",
            EventPayload::BranchOpened => "staging.branch_opened",
            EventPayload::BranchReady => "staging.branch_ready",
            EventPayload::BranchFrozen => "staging.branch_frozen",
            EventPayload::BranchDropped => "staging.branch_dropped",
            EventPayload::StagingPromoted { .. } => "tenant.staging_promoted",
            EventPayload::StagingDiscarded { .. } => "tenant.staging_discarded",
            EventPayload::ClaimRoleMappingSet { .. } => "role.claim_mapping_set",
            EventPayload::ClaimRoleMappingRemoved { .. } => "role.claim_mapping_removed",
            EventPayload::UserSsoLinked { .. } => "user.sso_linked",
            EventPayload::UserClaimRoleChanged { .. } => "user.claim_role_changed",
            EventPayload::WebhookAdded { .. } => "webhook.added",
            EventPayload::WebhookStatusChanged { .. } => "webhook.status_changed",
            EventPayload::WebhookSecretRotated { .. } => "webhook.secret_rotated",
            EventPayload::WebhookRemoved { .. } => "webhook.removed",
            EventPayload::SsfStreamCreated { .. } => "ssf_stream.created",
            EventPayload::SsfStreamUpdated { .. } => "ssf_stream.updated",
            EventPayload::SsfStreamStatusChanged { .. } => "ssf_stream.status_changed",
            EventPayload::SsfSubjectChanged { .. } => "ssf_stream.subject_changed",
            EventPayload::SsfVerificationRequested { .. } => "ssf_stream.verification_requested",
            EventPayload::SsfStreamDeleted { .. } => "ssf_stream.deleted",
        }
    }

    /// What `apply` needs loaded to fold this event into a slice.
    pub fn footprint(&self) -> Footprint {
        let mut footprint = Footprint::default();
        match self {
            EventPayload::TenantCreated { .. }
            | EventPayload::TenantSettingsChanged { .. }
            | EventPayload::UserProvisioned { .. }
            | EventPayload::TenantStaged { .. }
            | EventPayload::BranchOpened
            | EventPayload::BranchReady
            | EventPayload::BranchFrozen
            | EventPayload::BranchDropped
            | EventPayload::StagingPromoted { .. }
            | EventPayload::StagingDiscarded { .. } => {}
            EventPayload::TokenIssued { token_id, .. }
            | EventPayload::TokenExpiryChanged { token_id, .. }
            | EventPayload::TokenUsed { token_id }
            | EventPayload::TokenRevoked { token_id } => {
                footprint.tokens.push(token_id.clone());
            }
            EventPayload::UserUpdated { user_id, .. }
            | EventPayload::UserDeactivated { user_id, .. }
            | EventPayload::UserReactivated { user_id, .. }
            | EventPayload::UserDeleted { user_id, .. } => footprint.users.push(*user_id),
            EventPayload::GroupCreated { .. }
            | EventPayload::DefaultRoleSet { .. }
            | EventPayload::ResourceGroupCreated { .. } => {}
            EventPayload::GroupRenamed { group_id, .. }
            | EventPayload::GroupUpdated { group_id, .. }
            | EventPayload::GroupDeleted { group_id, .. } => footprint.groups.push(*group_id),
            EventPayload::GroupMembersAdded { group_id, user_ids }
            | EventPayload::GroupMembersRemoved { group_id, user_ids } => {
                footprint.groups.push(*group_id);
                footprint
                    .memberships
                    .extend(user_ids.iter().map(|user| (*group_id, *user)));
            }
            EventPayload::RoleMappingSet { group_id, .. }
            | EventPayload::RoleMappingRemoved { group_id } => {
                footprint.role_mappings.push(*group_id)
            }
            EventPayload::ResourceGroupDeleted { resource_group_id }
            | EventPayload::ResourceGroupLinked {
                resource_group_id, ..
            }
            | EventPayload::ResourceGroupLinkRoleChanged {
                resource_group_id, ..
            }
            | EventPayload::ResourceGroupUnlinked {
                resource_group_id, ..
            } => footprint.resource_groups.push(*resource_group_id),
            EventPayload::ResourceGroupMemberSet {
                resource_group_id,
                user_id,
                ..
            }
            | EventPayload::ResourceGroupMemberRemoved {
                resource_group_id,
                user_id,
            } => {
                footprint.resource_groups.push(*resource_group_id);
                footprint
                    .resource_group_members
                    .push((*resource_group_id, *user_id));
            }
            EventPayload::ClaimRoleMappingSet { .. }
            | EventPayload::ClaimRoleMappingRemoved { .. } => {}
            EventPayload::UserSsoLinked {
                user_id, subject, ..
            } => {
                footprint.users.push(*user_id);
                footprint.user_subjects.push(subject.clone());
            }
            EventPayload::UserClaimRoleChanged { user_id, .. } => footprint.users.push(*user_id),
            EventPayload::WebhookAdded { .. }
            | EventPayload::WebhookStatusChanged { .. }
            | EventPayload::WebhookSecretRotated { .. }
            | EventPayload::WebhookRemoved { .. }
            | EventPayload::SsfStreamCreated { .. }
            | EventPayload::SsfStreamUpdated { .. }
            | EventPayload::SsfStreamStatusChanged { .. }
            | EventPayload::SsfSubjectChanged { .. }
            | EventPayload::SsfVerificationRequested { .. }
            | EventPayload::SsfStreamDeleted { .. } => {}
        }
        footprint
    }

    /// The user the event is about, if it is about one.
    pub fn user_id(&self) -> Option<UserId> {
        match self {
            EventPayload::UserProvisioned { user_id, .. }
            | EventPayload::UserUpdated { user_id, .. }
            | EventPayload::UserDeactivated { user_id, .. }
            | EventPayload::UserReactivated { user_id, .. }
            | EventPayload::UserDeleted { user_id, .. }
            | EventPayload::UserSsoLinked { user_id, .. }
            | EventPayload::UserClaimRoleChanged { user_id, .. } => Some(*user_id),
            _ => None,
        }
    }

    /// The group the event is about, if it is about one.
    pub fn group_id(&self) -> Option<GroupId> {
        match self {
            EventPayload::GroupCreated { group_id, .. }
            | EventPayload::GroupRenamed { group_id, .. }
            | EventPayload::GroupUpdated { group_id, .. }
            | EventPayload::GroupMembersAdded { group_id, .. }
            | EventPayload::GroupMembersRemoved { group_id, .. }
            | EventPayload::GroupDeleted { group_id, .. } => Some(*group_id),
            _ => None,
        }
    }

    /// The id of the resource the event is about, for audit and filtering.
    pub fn target(&self) -> String {
        match self {
            EventPayload::TenantCreated { .. }
            | EventPayload::TenantSettingsChanged { .. }
            | EventPayload::TenantStaged { .. }
            | EventPayload::BranchOpened
            | EventPayload::BranchReady
            | EventPayload::BranchFrozen
            | EventPayload::BranchDropped
            | EventPayload::StagingPromoted { .. }
            | EventPayload::StagingDiscarded { .. } => String::new(),
            EventPayload::TokenIssued { token_id, .. }
            | EventPayload::TokenExpiryChanged { token_id, .. }
            | EventPayload::TokenUsed { token_id }
            | EventPayload::TokenRevoked { token_id } => token_id.0.clone(),
            EventPayload::UserProvisioned { user_id, .. }
            | EventPayload::UserUpdated { user_id, .. }
            | EventPayload::UserDeactivated { user_id, .. }
            | EventPayload::UserReactivated { user_id, .. }
            | EventPayload::UserDeleted { user_id, .. }
            | EventPayload::UserSsoLinked { user_id, .. }
            | EventPayload::UserClaimRoleChanged { user_id, .. } => user_id.to_string(),
            EventPayload::ClaimRoleMappingSet { claim, value, .. }
            | EventPayload::ClaimRoleMappingRemoved { claim, value } => format!("{claim}={value}"),
            EventPayload::GroupCreated { group_id, .. }
            | EventPayload::GroupRenamed { group_id, .. }
            | EventPayload::GroupUpdated { group_id, .. }
            | EventPayload::GroupMembersAdded { group_id, .. }
            | EventPayload::GroupMembersRemoved { group_id, .. }
            | EventPayload::GroupDeleted { group_id, .. }
            | EventPayload::RoleMappingSet { group_id, .. }
            | EventPayload::RoleMappingRemoved { group_id } => group_id.to_string(),
            EventPayload::DefaultRoleSet { .. } => String::new(),
            EventPayload::ResourceGroupCreated {
                resource_group_id, ..
            }
            | EventPayload::ResourceGroupDeleted { resource_group_id }
            | EventPayload::ResourceGroupLinked {
                resource_group_id, ..
            }
            | EventPayload::ResourceGroupLinkRoleChanged {
                resource_group_id, ..
            }
            | EventPayload::ResourceGroupUnlinked {
                resource_group_id, ..
            }
            | EventPayload::ResourceGroupMemberSet {
                resource_group_id, ..
            }
            | EventPayload::ResourceGroupMemberRemoved {
                resource_group_id, ..
            } => resource_group_id.to_string(),
            EventPayload::WebhookAdded { webhook_id, .. }
            | EventPayload::WebhookStatusChanged { webhook_id, .. }
            | EventPayload::WebhookSecretRotated { webhook_id, .. }
            | EventPayload::WebhookRemoved { webhook_id, .. } => webhook_id.to_string(),
            EventPayload::SsfStreamCreated { stream_id, .. }
            | EventPayload::SsfStreamUpdated { stream_id, .. }
            | EventPayload::SsfStreamStatusChanged { stream_id, .. }
            | EventPayload::SsfSubjectChanged { stream_id, .. }
            | EventPayload::SsfVerificationRequested { stream_id, .. }
            | EventPayload::SsfStreamDeleted { stream_id, .. } => stream_id.to_string(),
        }
    }
}

#[cfg(test)]
mod types_tests {
    use super::EventPayload;

    /// Fails to compile when a variant is added: add its type to `EventPayload::TYPES` (the
    /// codec's `every_payload_survives_the_wire` then checks the name against `event_type`).
    #[allow(dead_code)]
    fn listed_in_types(payload: &EventPayload) {
        match payload {
            EventPayload::TenantCreated { .. }
            | EventPayload::TokenIssued { .. }
            | EventPayload::TokenRevoked { .. }
            | EventPayload::TokenExpiryChanged { .. }
            | EventPayload::TokenUsed { .. }
            | EventPayload::TenantSettingsChanged { .. }
            | EventPayload::UserProvisioned { .. }
            | EventPayload::UserUpdated { .. }
            | EventPayload::UserDeactivated { .. }
            | EventPayload::UserReactivated { .. }
            | EventPayload::UserDeleted { .. }
            | EventPayload::GroupCreated { .. }
            | EventPayload::GroupRenamed { .. }
            | EventPayload::GroupUpdated { .. }
            | EventPayload::GroupMembersAdded { .. }
            | EventPayload::GroupMembersRemoved { .. }
            | EventPayload::GroupDeleted { .. }
            | EventPayload::DefaultRoleSet { .. }
            | EventPayload::RoleMappingSet { .. }
            | EventPayload::RoleMappingRemoved { .. }
            | EventPayload::ResourceGroupCreated { .. }
            | EventPayload::ResourceGroupDeleted { .. }
            | EventPayload::ResourceGroupLinked { .. }
            | EventPayload::ResourceGroupLinkRoleChanged { .. }
            | EventPayload::ResourceGroupUnlinked { .. }
            | EventPayload::ResourceGroupMemberSet { .. }
            | EventPayload::ResourceGroupMemberRemoved { .. }
            | EventPayload::TenantStaged { .. }
            | EventPayload::BranchOpened
            | EventPayload::BranchReady
            | EventPayload::BranchFrozen
            | EventPayload::BranchDropped
            | EventPayload::StagingPromoted { .. }
            | EventPayload::StagingDiscarded { .. }
            | EventPayload::ClaimRoleMappingSet { .. }
            | EventPayload::ClaimRoleMappingRemoved { .. }
            | EventPayload::UserSsoLinked { .. }
            | EventPayload::UserClaimRoleChanged { .. }
            | EventPayload::WebhookAdded { .. }
            | EventPayload::WebhookStatusChanged { .. }
            | EventPayload::WebhookSecretRotated { .. }
            | EventPayload::WebhookRemoved { .. }
            | EventPayload::SsfStreamCreated { .. }
            | EventPayload::SsfStreamUpdated { .. }
            | EventPayload::SsfStreamStatusChanged { .. }
            | EventPayload::SsfSubjectChanged { .. }
            | EventPayload::SsfVerificationRequested { .. }
            | EventPayload::SsfStreamDeleted { .. } => {}
        }
    }

    #[test]
    fn types_are_distinct_dotted_names() {
        let mut seen = std::collections::BTreeSet::new();
        for name in EventPayload::TYPES {
            assert!(seen.insert(name), "{name} twice");
            let (resource, verb) = name.split_once('.').unwrap();
            assert!(!resource.is_empty() && !verb.is_empty() && !verb.contains('.'));
        }
    }
}
