//! How a domain rejection answers on each edge: one table from `RejectionKind` to the HTTP
//! status with its SCIM `scimType`, and to the gRPC code, so SCIM and gRPC never disagree about
//! what a rejection means.

use axum::http::StatusCode;
use roster_engine::domain::RejectionKind;
use tonic::Code;

/// What a rejection of one kind answers: over SCIM (status and `scimType`) and over gRPC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answer {
    pub http: StatusCode,
    pub scim_type: Option<&'static str>,
    pub grpc: Code,
}

/// The table. A 503 carries `Retry-After` (added with every SCIM 503).
pub const fn answer(kind: RejectionKind) -> Answer {
    let (http, scim_type, grpc) = match kind {
        RejectionKind::Invalid => (
            StatusCode::BAD_REQUEST,
            Some("invalidValue"),
            Code::InvalidArgument,
        ),
        RejectionKind::NotFound => (StatusCode::NOT_FOUND, None, Code::NotFound),
        RejectionKind::Conflict => (
            StatusCode::CONFLICT,
            Some("uniqueness"),
            Code::AlreadyExists,
        ),
        RejectionKind::PreconditionFailed => (
            StatusCode::PRECONDITION_FAILED,
            None,
            Code::FailedPrecondition,
        ),
        RejectionKind::Forbidden => (StatusCode::FORBIDDEN, None, Code::PermissionDenied),
        RejectionKind::Retry => (StatusCode::SERVICE_UNAVAILABLE, None, Code::Unavailable),
    };
    Answer {
        http,
        scim_type,
        grpc,
    }
}

#[cfg(test)]
mod tests {
    use roster_engine::domain::{Rejection, TokenId};

    use super::*;

    #[test]
    fn every_kind_answers_alike_on_both_edges() {
        // The HTTP status and the gRPC code of each kind say the same thing.
        let pairs = [
            (RejectionKind::Invalid, 400, Code::InvalidArgument),
            (RejectionKind::NotFound, 404, Code::NotFound),
            (RejectionKind::Conflict, 409, Code::AlreadyExists),
            (
                RejectionKind::PreconditionFailed,
                412,
                Code::FailedPrecondition,
            ),
            (RejectionKind::Forbidden, 403, Code::PermissionDenied),
            (RejectionKind::Retry, 503, Code::Unavailable),
        ];
        for (kind, http, grpc) in pairs {
            let answer = answer(kind);
            assert_eq!(answer.http.as_u16(), http, "{kind:?}");
            assert_eq!(answer.grpc, grpc, "{kind:?}");
        }
    }

    #[test]
    fn staging_that_began_a_moment_ago_is_retried_on_both_edges() {
        for rejection in [
            Rejection::TenantStaged,
            Rejection::BranchNotWritable("frozen", "a promotion is under way; retry the request"),
        ] {
            let answer = answer(rejection.kind());
            assert_eq!(answer.http, StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(answer.grpc, Code::Unavailable);
        }
        let last = answer(Rejection::LastAdminToken(TokenId("t".into())).kind());
        assert_eq!(last.grpc, Code::FailedPrecondition);
    }

    #[test]
    fn a_login_whose_subject_several_users_hold_as_external_id_fails_its_precondition() {
        let rejection = Rejection::JitAmbiguousExternalId {
            external_id: "00u1".into(),
            count: 5,
        };
        let answer = answer(rejection.kind());
        assert_eq!(answer.grpc, Code::FailedPrecondition);
        assert_eq!(answer.http, StatusCode::PRECONDITION_FAILED);
        assert!(
            rejection
                .to_string()
                .starts_with("5 users have the externalId \"00u1\"")
        );
    }
}
