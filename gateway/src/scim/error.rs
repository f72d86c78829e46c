//! SCIM errors from the engine's answers: a rejection or a limit becomes the status and
//! `scimType` of the one rejection table (`crate::rejections`), infrastructure trouble a 503.
//! The error type and its body are `roster_scim::error`.

use roster_engine::domain::Rejection;
use roster_engine::domain::limits::LimitExceeded;
use roster_engine::engine::ExecuteError;
pub use roster_scim::error::{RETRY_AFTER_SECONDS, ScimError, ScimType};

/// An engine answer that reads as a SCIM error.
pub trait IntoScimError {
    fn into_scim_error(self) -> ScimError;
}

impl IntoScimError for Rejection {
    fn into_scim_error(self) -> ScimError {
        let answer = crate::rejections::answer(self.kind());
        ScimError::new(answer.http, answer.scim_type, self.to_string())
    }
}

/// A limit checked at the edge (attributes outside the schemas) reads like one `decide` checked.
impl IntoScimError for LimitExceeded {
    fn into_scim_error(self) -> ScimError {
        Rejection::from(self).into_scim_error()
    }
}

impl IntoScimError for ExecuteError {
    fn into_scim_error(self) -> ScimError {
        match self {
            ExecuteError::Rejected(rejection) => rejection.into_scim_error(),
            unavailable => {
                let reason = unavailable.chain();
                tracing::warn!(%reason, "command not executed: infrastructure unavailable");
                ScimError::unavailable("the directory is temporarily unavailable; retry later")
            }
        }
    }
}

/// `result.scim()?`: an engine result whose error leaves as a SCIM error.
pub trait ScimResult<T> {
    fn scim(self) -> Result<T, ScimError>;
}

impl<T, E: IntoScimError> ScimResult<T> for Result<T, E> {
    fn scim(self) -> Result<T, ScimError> {
        self.map_err(IntoScimError::into_scim_error)
    }
}
