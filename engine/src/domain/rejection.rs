//! Why `decide` refused a command. Each rejection has a kind the edges map to one SCIM error and
//! one gRPC status; the message is safe to show to the client.

use thiserror::Error;

use super::ids::{TokenId, UserId};
use super::user::UserNameRule;

#[derive(Clone, Debug, PartialEq, Error)]
pub enum Rejection {
    #[error("tenant does not exist")]
    TenantNotFound,
    #[error("tenant already exists")]
    TenantAlreadyExists,
    #[error("userName {user_name:?} is invalid: {rule}")]
    InvalidUserName {
        user_name: String,
        rule: UserNameRule,
    },
    #[error("userName {user_name:?} is already taken in this tenant")]
    UserNameTaken { user_name: String },
    #[error("externalId {external_id:?} is already used by another user in this tenant")]
    ExternalIdTaken { external_id: String },
    #[error("{0}")]
    InvalidValue(String),
    #[error("user {0} not found")]
    UserNotFound(UserId),
    #[error("user {0} already exists")]
    UserAlreadyExists(UserId),
    #[error("version mismatch: expected {expected}, current {actual}")]
    VersionMismatch { expected: u64, actual: u64 },
    #[error("token {0} not found")]
    TokenNotFound(TokenId),
    #[error("token {0} already exists")]
    TokenAlreadyExists(TokenId),
}

/// The family of a rejection, which decides its status on every edge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RejectionKind {
    /// The request is malformed or breaks a rule (400 / INVALID_ARGUMENT).
    Invalid,
    /// The target does not exist (404 / NOT_FOUND).
    NotFound,
    /// A uniqueness rule would break (409 / ALREADY_EXISTS).
    Conflict,
    /// The resource changed since the version the caller expected (412 / FAILED_PRECONDITION).
    PreconditionFailed,
    /// Not allowed in the resource's current state (403 / PERMISSION_DENIED).
    Forbidden,
}

impl Rejection {
    pub fn kind(&self) -> RejectionKind {
        match self {
            Rejection::InvalidUserName { .. } | Rejection::InvalidValue(_) => {
                RejectionKind::Invalid
            }
            Rejection::TenantNotFound
            | Rejection::UserNotFound(_)
            | Rejection::TokenNotFound(_) => RejectionKind::NotFound,
            Rejection::TenantAlreadyExists
            | Rejection::UserNameTaken { .. }
            | Rejection::ExternalIdTaken { .. }
            | Rejection::UserAlreadyExists(_)
            | Rejection::TokenAlreadyExists(_) => RejectionKind::Conflict,
            Rejection::VersionMismatch { .. } => RejectionKind::PreconditionFailed,
        }
    }
}
