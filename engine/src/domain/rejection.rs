//! Why `decide` refused a command. Each rejection has a kind the edges map to one SCIM error and
//! one gRPC status; the message is safe to show to the client.

use thiserror::Error;

use super::handle::HandleRule;
use super::ids::{GroupId, ResourceGroupId, SsfStreamId, TokenId, UserId, WebhookId};
use super::limits::LimitExceeded;

#[derive(Clone, Debug, PartialEq, Error)]
pub enum Rejection {
    #[error("tenant does not exist")]
    TenantNotFound,
    #[error("tenant already exists")]
    TenantAlreadyExists,
    #[error(
        "userName {user_name:?} is not a valid handle: {rule}. This tenant's username policy is \
         strict (userName must already be the platform username); switch it to derive with \
         `roster tenant set TENANT --usernames derive` to accept any userName and derive the \
         handle from it, or map userName in the IdP to a value that follows the rules (Okta: \
         a custom username expression such as String.substringBefore(user.login, \"@\"); \
         Entra ID: mailNickname)"
    )]
    InvalidUserName { user_name: String, rule: HandleRule },
    /// A userName outside the rules every policy keeps (empty, too long, control characters).
    #[error("userName {user_name:?} is invalid: {problem}")]
    BadUserName {
        user_name: String,
        problem: &'static str,
    },
    #[error("handle {handle:?} is already taken in this tenant")]
    HandleTaken { handle: String },
    #[error(
        "the username policy cannot go back to strict while {count} user(s) have a handle that \
         differs from their userName; change those userNames to their handles first"
    )]
    DerivedHandlesRemain { count: u64 },
    #[error("userName {user_name:?} is already taken in this tenant")]
    UserNameTaken { user_name: String },
    #[error("{0}")]
    InvalidValue(String),
    /// A value or the resource is larger than `limits` allows.
    #[error(transparent)]
    LimitExceeded(#[from] LimitExceeded),
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
    #[error(
        "token {0} is the last valid admin token: issue another first (roster token issue _system), then revoke this one"
    )]
    LastAdminToken(TokenId),
    #[error("displayName must not be empty")]
    EmptyGroupName,
    #[error("displayName {display_name:?} is already used by another group in this tenant")]
    GroupNameTaken { display_name: String },
    #[error("group {0} not found")]
    GroupNotFound(GroupId),
    #[error("group {0} already exists")]
    GroupAlreadyExists(GroupId),
    #[error("member {0} is not a user of this tenant")]
    MemberNotFound(UserId),
    #[error("resource group names must be 1 to 100 characters")]
    InvalidResourceGroupName,
    #[error("resource group name {name:?} is already used in this tenant")]
    ResourceGroupNameTaken { name: String },
    #[error("resource group {0} not found")]
    ResourceGroupNotFound(ResourceGroupId),
    #[error("resource group {0} already exists")]
    ResourceGroupAlreadyExists(ResourceGroupId),
    #[error(
        "resource group {0} is SCIM-managed (linked to SCIM groups): change its members in the identity provider"
    )]
    ResourceGroupScimManaged(ResourceGroupId),
    #[error(
        "resource group {0} has members added by hand: remove them before linking a SCIM group"
    )]
    ResourceGroupHasMembers(ResourceGroupId),
    #[error("resource group {resource_group} is not linked to group {group}")]
    NotLinked {
        resource_group: ResourceGroupId,
        group: GroupId,
    },
    #[error(
        "tenant is staged: its directory changes go to the staging branch (retry the request, or promote or discard the staging first)"
    )]
    TenantStaged,
    #[error(
        "tenant is staged: just-in-time provisioning cannot create, link or update users until \
         the staging is promoted or discarded (logins that change nothing are answered)"
    )]
    JitWhileStaged,
    #[error("tenant is already staged: promote or discard it first")]
    AlreadyStaged,
    #[error(
        "a promotion of this staging is under way; if none is (one was interrupted by a crash), \
         run `roster tenant stage` to give the branch back to the IdP, then promote again; with \
         several roster processes, first make sure none of them is promoting"
    )]
    PromotionUnderWay,
    #[error("tenant is not staged")]
    NotStaged,
    #[error("the tenant's staging changed (staging {actual:?}, not {expected}); look again")]
    StagingChanged { expected: u64, actual: Option<u64> },
    /// A staging command found the branch in the wrong state.
    #[error("the staging branch is {0}: {1}")]
    BranchNotOpen(&'static str, &'static str),
    /// A directory change addressed a branch that takes none now (still copying, frozen for a
    /// promotion, or gone): the same request, retried, goes where it should.
    #[error("the staging branch is {0}: {1}")]
    BranchNotWritable(&'static str, &'static str),
    #[error("{0}")]
    NotABranch(&'static str),
    #[error(
        "promotion would swap names between {0} and others in one step, which cannot be ordered: rename one of them in the identity provider first, or promote in two steps"
    )]
    PromotionNameCycle(String),
    #[error(
        "promotion needs {events} events, more than the {max} one atomic append holds on JetStream: promote smaller batches of changes (discard, stage again and sync in parts)"
    )]
    PromotionTooLarge { events: usize, max: usize },
    #[error("no claim mapping for claim {claim:?} with value {value:?}")]
    ClaimRoleMappingNotFound { claim: String, value: String },
    #[error(
        "user {user_name:?} is deactivated: an SSO login does not reactivate a user; reactivate them through the identity provider (SCIM)"
    )]
    JitUserDeactivated { user_name: String },
    #[error(
        "several users have the email {email:?} and none is linked to this SSO subject: link one by giving it the subject as externalId"
    )]
    JitAmbiguousEmail { email: String },
    #[error(
        "{count} users have the externalId {external_id:?}, which is this login's SSO subject: \
         roster cannot tell which one to link; give the subject as externalId to one user only"
    )]
    JitAmbiguousExternalId { external_id: String, count: usize },
    #[error(
        "a user not linked to SSO yet holds the email {email:?}, but the login does not vouch for \
         it (claims.email_verified is not true): roster links by email only when it is verified; \
         otherwise set the user's externalId to the login's subject"
    )]
    JitEmailUnverified { email: String },
    #[error("webhook {0} not found")]
    WebhookNotFound(WebhookId),
    #[error("webhook {0} already exists")]
    WebhookAlreadyExists(WebhookId),
    #[error("the tenant has {max} webhooks, the most it may hold: remove one first")]
    TooManyWebhooks { max: usize },
    #[error("stream {0} not found")]
    SsfStreamNotFound(SsfStreamId),
    #[error("this receiver already has stream {0}: SSF allows one stream per receiver")]
    SsfStreamExists(SsfStreamId),
    #[error("the tenant has {max} streams, the most it may hold: delete one first")]
    TooManySsfStreams { max: usize },
    #[error("the stream has {max} subjects removed, the most it may hold")]
    TooManySsfSubjects { max: usize },
    #[error("a verification was requested less than {wait_seconds} s ago; ask again later")]
    SsfVerificationTooSoon { wait_seconds: i64 },
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
    /// Refused for a moment (staging began, a promotion is under way): the same request succeeds
    /// when retried (503 with `Retry-After` / UNAVAILABLE).
    Retry,
}

impl Rejection {
    pub fn kind(&self) -> RejectionKind {
        match self {
            Rejection::InvalidUserName { .. }
            | Rejection::BadUserName { .. }
            | Rejection::InvalidValue(_)
            | Rejection::LimitExceeded(_)
            | Rejection::EmptyGroupName
            | Rejection::MemberNotFound(_)
            | Rejection::InvalidResourceGroupName => RejectionKind::Invalid,
            Rejection::TenantNotFound
            | Rejection::UserNotFound(_)
            | Rejection::TokenNotFound(_)
            | Rejection::GroupNotFound(_)
            | Rejection::ResourceGroupNotFound(_)
            | Rejection::NotLinked { .. }
            | Rejection::ClaimRoleMappingNotFound { .. }
            | Rejection::WebhookNotFound(_)
            | Rejection::SsfStreamNotFound(_) => RejectionKind::NotFound,
            Rejection::TenantAlreadyExists
            | Rejection::UserNameTaken { .. }
            | Rejection::HandleTaken { .. }
            | Rejection::UserAlreadyExists(_)
            | Rejection::TokenAlreadyExists(_)
            | Rejection::GroupNameTaken { .. }
            | Rejection::GroupAlreadyExists(_)
            | Rejection::ResourceGroupNameTaken { .. }
            | Rejection::ResourceGroupAlreadyExists(_)
            | Rejection::JitAmbiguousEmail { .. }
            | Rejection::WebhookAlreadyExists(_)
            | Rejection::SsfStreamExists(_) => RejectionKind::Conflict,
            Rejection::BranchNotOpen(..) => RejectionKind::Conflict,
            Rejection::TenantStaged
            | Rejection::BranchNotWritable(..)
            | Rejection::SsfVerificationTooSoon { .. } => RejectionKind::Retry,
            Rejection::VersionMismatch { .. }
            | Rejection::DerivedHandlesRemain { .. }
            | Rejection::ResourceGroupHasMembers(_)
            | Rejection::AlreadyStaged
            | Rejection::JitWhileStaged
            | Rejection::PromotionUnderWay
            | Rejection::JitEmailUnverified { .. }
            | Rejection::JitAmbiguousExternalId { .. }
            | Rejection::NotStaged
            | Rejection::StagingChanged { .. }
            | Rejection::NotABranch(_)
            | Rejection::PromotionNameCycle(_)
            | Rejection::PromotionTooLarge { .. }
            | Rejection::LastAdminToken(_)
            | Rejection::TooManyWebhooks { .. }
            | Rejection::TooManySsfStreams { .. }
            | Rejection::TooManySsfSubjects { .. } => RejectionKind::PreconditionFailed,
            Rejection::ResourceGroupScimManaged(_) | Rejection::JitUserDeactivated { .. } => {
                RejectionKind::Forbidden
            }
        }
    }
}
