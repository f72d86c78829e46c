//! Lifecycle events as the domain sees them: the envelope and the payloads. The log stores them as
//! `roster.v1.Event` protobuf (see `crate::codec`); the domain never touches the wire types.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::ids::{Role, TenantName, Timestamp, TokenId, UserId};
use super::state::Footprint;
use super::user::{Attributes, UserProfile};

/// Who asked for a change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    ScimToken,
    Admin,
    Jit,
    System,
}

impl ActorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::ScimToken => "scim_token",
            ActorKind::Admin => "admin",
            ActorKind::Jit => "jit",
            ActorKind::System => "system",
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

/// What happened.
#[derive(Clone, Debug, PartialEq)]
pub enum EventPayload {
    TenantCreated {
        default_role: Role,
    },
    TokenIssued {
        token_id: TokenId,
        name: String,
        secret_sha256: [u8; 32],
        expires_at: Option<Timestamp>,
    },
    TokenRevoked {
        token_id: TokenId,
    },
    UserProvisioned {
        user_id: UserId,
        profile: UserProfile,
    },
    UserUpdated {
        user_id: UserId,
        user_name: Option<String>,
        /// `Some(None)`: externalId removed.
        external_id: Option<Option<String>>,
        /// Attribute → new value; `Null` means removed.
        changed_attributes: Attributes,
    },
    UserDeactivated {
        user_id: UserId,
        user_name: String,
        external_id: Option<String>,
    },
    UserReactivated {
        user_id: UserId,
        user_name: String,
        external_id: Option<String>,
    },
    UserDeleted {
        user_id: UserId,
        user_name: String,
        external_id: Option<String>,
    },
}

impl EventPayload {
    /// Stable dotted name, `<resource>.<verb>`; also the tail of the NATS subject.
    pub fn event_type(&self) -> &'static str {
        match self {
            EventPayload::TenantCreated { .. } => "tenant.created",
            EventPayload::TokenIssued { .. } => "token.issued",
            EventPayload::TokenRevoked { .. } => "token.revoked",
            EventPayload::UserProvisioned { .. } => "user.provisioned",
            EventPayload::UserUpdated { .. } => "user.updated",
            EventPayload::UserDeactivated { .. } => "user.deactivated",
            EventPayload::UserReactivated { .. } => "user.reactivated",
            EventPayload::UserDeleted { .. } => "user.deleted",
        }
    }

    /// What `apply` needs loaded to fold this event into a slice.
    pub fn footprint(&self) -> Footprint {
        let mut footprint = Footprint::default();
        match self {
            EventPayload::TenantCreated { .. } | EventPayload::UserProvisioned { .. } => {}
            EventPayload::TokenIssued { token_id, .. }
            | EventPayload::TokenRevoked { token_id } => {
                footprint.tokens.push(token_id.clone());
            }
            EventPayload::UserUpdated { user_id, .. }
            | EventPayload::UserDeactivated { user_id, .. }
            | EventPayload::UserReactivated { user_id, .. }
            | EventPayload::UserDeleted { user_id, .. } => footprint.users.push(*user_id),
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
            | EventPayload::UserDeleted { user_id, .. } => Some(*user_id),
            _ => None,
        }
    }

    /// The id of the resource the event is about, for audit and filtering.
    pub fn target(&self) -> String {
        match self {
            EventPayload::TenantCreated { .. } => String::new(),
            EventPayload::TokenIssued { token_id, .. }
            | EventPayload::TokenRevoked { token_id } => token_id.0.clone(),
            EventPayload::UserProvisioned { user_id, .. }
            | EventPayload::UserUpdated { user_id, .. }
            | EventPayload::UserDeactivated { user_id, .. }
            | EventPayload::UserReactivated { user_id, .. }
            | EventPayload::UserDeleted { user_id, .. } => user_id.to_string(),
        }
    }
}
