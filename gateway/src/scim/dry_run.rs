//! Dry runs of SCIM writes: a write sent with the header `Roster-Dry-Run: true` (or the query
//! parameter `dryRun=true`) is authenticated, validated and decided exactly like the real one, and
//! nothing is appended. The answer is the response the client would have got plus the events that
//! would have been appended:
//!
//! ```json
//! {"schemas": ["urn:roster:api:messages:1.0:DryRun"],
//!  "status": 201, "location": "…", "etag": "W/\"1\"",
//!  "response": { …the resource as it would be returned… },
//!  "events": [{"type": "user.provisioned", "target": "…", "actor": {…}, "changes": {…}}]}
//! ```
//!
//! with HTTP status 200 and `Roster-Dry-Run: true`. A write the real request would refuse is
//! refused the same way (same status and SCIM error body), with the same header. In a Bulk dry
//! run every operation is decided against the tenant as it is: an operation that needs an earlier
//! one of the same request (a `bulkId` reference) fails, since the earlier one was not applied.

use std::sync::{Arc, Mutex};

use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use roster_engine::domain::Event;
use serde_json::{Value, json};

use super::error::ScimError;
use super::http::{MAX_BODY_BYTES, scim_response};

/// The request header that asks for a dry run, and the response header that marks one.
pub const DRY_RUN_HEADER: &str = "roster-dry-run";
/// The query parameter that asks for a dry run.
pub const DRY_RUN_PARAMETER: &str = "dryRun";
/// The `schemas` value of a dry run's answer.
pub const DRY_RUN_SCHEMA: &str = "urn:roster:api:messages:1.0:DryRun";

/// The events a dry-run request's commands would have appended, collected as the handlers decide
/// them. Present in the request's extensions only for dry runs.
#[derive(Clone, Debug, Default)]
pub struct DryRun(Arc<Mutex<Vec<Event>>>);

impl DryRun {
    pub fn record(&self, events: &[Event]) {
        if let Ok(mut collected) = self.0.lock() {
            collected.extend_from_slice(events);
        }
    }

    fn take(&self) -> Vec<Event> {
        self.0
            .lock()
            .map(|mut collected| std::mem::take(&mut *collected))
            .unwrap_or_default()
    }
}

fn is_true(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "true" | "1" | "yes"
    )
}

/// Whether `request` asks for a dry run: a SCIM write with the header or the query parameter.
pub fn requested(request: &Request) -> bool {
    let write = matches!(
        *request.method(),
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    if !write || !request.uri().path().starts_with("/scim/v2/") {
        return false;
    }
    let by_header = request
        .headers()
        .get(DRY_RUN_HEADER)
        .and_then(|value| value.to_str().ok())
        .is_some_and(is_true);
    let by_parameter = request.uri().query().is_some_and(|query| {
        query.split('&').any(|pair| {
            pair.split_once('=').is_some_and(|(name, value)| {
                name.eq_ignore_ascii_case(DRY_RUN_PARAMETER) && is_true(value)
            })
        })
    });
    by_header || by_parameter
}

/// Middleware: marks dry-run requests for the handlers and turns their answers into the dry-run
/// document. Other requests pass untouched.
pub async fn layer(mut request: Request, next: Next) -> Response {
    if !requested(&request) {
        return next.run(request).await;
    }
    let collected = DryRun::default();
    request.extensions_mut().insert(collected.clone());
    let response = next.run(request).await;
    let mut response = if response.status().is_success() {
        document(response, collected.take()).await
    } else {
        response
    };
    response
        .headers_mut()
        .insert(DRY_RUN_HEADER, HeaderValue::from_static("true"));
    response
}

/// The dry-run document for the would-be `response` and `events`.
async fn document(response: Response, events: Vec<Event>) -> Response {
    let (parts, body) = response.into_parts();
    let header_text = |name: header::HeaderName| {
        parts
            .headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    // Responses are built by this gateway from JSON it rendered; a body it cannot read back is
    // an internal fault, answered as one.
    let Ok(bytes) = axum::body::to_bytes(body, 16 * MAX_BODY_BYTES).await else {
        return ScimError::unavailable("the dry run's response could not be read").into_response();
    };
    let rendered = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or(Value::Null)
    };
    let events: Vec<Value> = events.iter().map(event_json).collect();
    scim_response(
        StatusCode::OK,
        &json!({
            "schemas": [DRY_RUN_SCHEMA],
            "status": parts.status.as_u16(),
            "location": header_text(header::LOCATION),
            "etag": header_text(header::ETAG),
            "response": rendered,
            "events": events,
        }),
    )
}

/// An event as the dry run shows it: what the audit trail would record for it (secrets removed),
/// without the log's sequence and hashes, which only an append assigns.
pub fn event_json(event: &Event) -> Value {
    let record = roster_projector::audit::record_of(event, &[0; 32]);
    json!({
        "eventId": record.event_id,
        "type": record.event_type,
        "target": record.target,
        "actor": {"kind": record.actor.kind, "id": record.actor.id, "display": record.actor.display},
        "occurredAt": record.occurred_at,
        "changes": record.changes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    fn request(method: Method, uri: &str, header: Option<&str>) -> Request {
        let mut builder = Request::builder().method(method).uri(uri);
        if let Some(value) = header {
            builder = builder.header(DRY_RUN_HEADER, value);
        }
        builder.body(Body::empty()).unwrap()
    }

    #[test]
    fn dry_runs_are_writes_asked_for_by_header_or_parameter() {
        let users = "/scim/v2/acme/Users";
        assert!(requested(&request(Method::POST, users, Some("true"))));
        assert!(requested(&request(Method::PATCH, users, Some("1"))));
        assert!(requested(&request(
            Method::DELETE,
            "/scim/v2/acme/Users/x?dryRun=true",
            None
        )));
        assert!(requested(&request(
            Method::PUT,
            "/scim/v2/acme/Users/x?a=b&dryrun=TRUE",
            None
        )));
        assert!(!requested(&request(Method::POST, users, Some("false"))));
        assert!(!requested(&request(Method::POST, users, None)));
        assert!(!requested(&request(Method::GET, users, Some("true"))));
        assert!(!requested(&request(
            Method::POST,
            "/metrics?dryRun=true",
            None
        )));
    }
}
