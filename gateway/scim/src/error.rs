//! SCIM errors (RFC 7644 §3.12): the status, the `scimType`, a detail safe to show. Every error
//! leaves as a SCIM error body with `status` as a string; with the `axum` feature, as an axum
//! response with the headers its status calls for.

use http::StatusCode;
use serde_json::json;

use crate::schema::ERROR_SCHEMA;

/// Seconds a client should wait before retrying after a 503.
pub const RETRY_AFTER_SECONDS: u64 = 5;

#[derive(Debug, Clone, PartialEq)]
pub struct ScimError {
    pub status: StatusCode,
    pub scim_type: Option<&'static str>,
    pub detail: String,
    /// `Retry-After` seconds for a 429.
    pub retry_after: Option<u64>,
}

/// The `scimType` of an error response, left in the response's extensions for whoever counts
/// rejections by type (the gateway's metrics).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScimType(pub &'static str);

impl ScimError {
    pub fn new(
        status: StatusCode,
        scim_type: Option<&'static str>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            status,
            scim_type,
            detail: detail.into(),
            retry_after: None,
        }
    }

    /// 429: the token's rate limit is exhausted; retry after `seconds`.
    pub fn too_many_requests(seconds: u64) -> Self {
        Self {
            retry_after: Some(seconds),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                None,
                format!("too many requests for this token: retry after {seconds} s"),
            )
        }
    }

    pub fn invalid_syntax(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some("invalidSyntax"), detail)
    }

    pub fn invalid_value(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some("invalidValue"), detail)
    }

    /// RFC 9865 §2.1: a cursor this server did not issue.
    pub fn invalid_cursor(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some("invalidCursor"), detail)
    }

    /// RFC 9865 §2.1: a cursor page's `count` outside 1..=maxPageSize.
    pub fn invalid_count(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some("invalidCount"), detail)
    }

    pub fn invalid_filter(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some("invalidFilter"), detail)
    }

    pub fn invalid_path(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some("invalidPath"), detail)
    }

    pub fn no_target(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some("noTarget"), detail)
    }

    pub fn mutability(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some("mutability"), detail)
    }

    pub fn too_many(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some("tooMany"), detail)
    }

    pub fn uniqueness(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, Some("uniqueness"), detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, None, detail)
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, None, detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, None, detail)
    }

    pub fn precondition_failed(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::PRECONDITION_FAILED, None, detail)
    }

    pub fn payload_too_large(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, None, detail)
    }

    pub fn method_not_allowed(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, None, detail)
    }

    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, None, detail)
    }

    /// The SCIM error body (RFC 7644 §3.12), `status` as a string.
    pub fn body(&self) -> serde_json::Value {
        let mut body = json!({
            "schemas": [ERROR_SCHEMA],
            "status": self.status.as_u16().to_string(),
            "detail": self.detail,
        });
        if let Some(scim_type) = self.scim_type {
            body["scimType"] = json!(scim_type);
        }
        body
    }
}

#[cfg(feature = "axum")]
impl axum::response::IntoResponse for ScimError {
    fn into_response(self) -> axum::response::Response {
        use http::{HeaderValue, header};

        let body = self.body();
        let mut response = (self.status, body.to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(crate::SCIM_CONTENT_TYPE),
        );
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
        }
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(scim_type) = self.scim_type {
            response.extensions_mut().insert(ScimType(scim_type));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_carries_status_as_text_and_scim_type_when_there_is_one() {
        let body = ScimError::uniqueness("userName taken").body();
        assert_eq!(body["status"], json!("409"));
        assert_eq!(body["scimType"], json!("uniqueness"));
        assert_eq!(body["detail"], json!("userName taken"));
        assert_eq!(body["schemas"], json!([ERROR_SCHEMA]));
        let body = ScimError::not_found("no such user").body();
        assert_eq!(body["status"], json!("404"));
        assert!(body.get("scimType").is_none());
    }
}
