//! `POST /Bulk` (RFC 7644 §3.7): many operations on `/Users` and `/Groups` in one request.
//!
//! Each operation runs through the same handler as the single request would, one after another,
//! and gets its own result; a bulk request is not a transaction. `bulkId` references
//! (`"bulkId:<id>"` in a path or anywhere in `data`, group members included) resolve to the
//! resource the referenced POST created: operations run in request order, except that an
//! operation waits for the POSTs it references. A reference that cannot be resolved (unknown,
//! failed, or circular) fails that operation with 409. `failOnErrors` stops processing after
//! that many errors. Over `maxOperations` or `maxPayloadSize` the whole request gets 413.

use std::collections::{HashMap, HashSet};

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::error::ScimError;
use super::http::{MAX_BODY_BYTES, ScimBody, ScimClient, scim_response};
use super::{groups, users};
use crate::state::AppState;

pub const BULK_REQUEST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
pub const BULK_RESPONSE_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:BulkResponse";
/// Operations accepted in one bulk request.
pub const MAX_OPERATIONS: usize = 1000;
/// Bytes accepted in one bulk request (every request body shares this limit).
pub const MAX_PAYLOAD_BYTES: usize = MAX_BODY_BYTES;
/// Longest accepted `bulkId`.
const MAX_BULK_ID_LENGTH: usize = 256;

/// One operation as sent.
#[derive(Debug)]
struct Operation {
    method: String,
    path: String,
    bulk_id: Option<String>,
    version: Option<String>,
    data: Option<Value>,
}

impl Operation {
    fn read(value: &Value, index: usize) -> Result<Self, ScimError> {
        let invalid =
            |what: &str| ScimError::invalid_syntax(format!("Operations[{index}]: {what}"));
        let Value::Object(fields) = value else {
            return Err(invalid("an operation must be an object"));
        };
        let text = |name: &str| -> Result<Option<String>, ScimError> {
            match fields
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(name))
                .map(|(_, value)| value)
            {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(text)) => Ok(Some(text.clone())),
                Some(_) => Err(invalid(&format!("{name} must be a string"))),
            }
        };
        let method = text("method")?.ok_or_else(|| invalid("method is required"))?;
        let path = text("path")?.ok_or_else(|| invalid("path is required"))?;
        let bulk_id = text("bulkId")?;
        if bulk_id
            .as_deref()
            .is_some_and(|id| id.is_empty() || id.len() > MAX_BULK_ID_LENGTH)
        {
            return Err(invalid("bulkId must be 1 to 256 characters"));
        }
        Ok(Self {
            method: method.to_ascii_uppercase(),
            path,
            bulk_id,
            version: text("version")?,
            data: fields
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case("data"))
                .map(|(_, value)| value.clone()),
        })
    }
}

/// The `bulkId`s an operation refers to, in its path and data.
fn references(operation: &Operation) -> HashSet<String> {
    fn collect(value: &Value, found: &mut HashSet<String>) {
        match value {
            Value::String(text) => {
                if let Some(id) = text.strip_prefix("bulkId:") {
                    found.insert(id.to_owned());
                }
            }
            Value::Array(items) => items.iter().for_each(|item| collect(item, found)),
            Value::Object(fields) => fields.values().for_each(|item| collect(item, found)),
            _ => {}
        }
    }
    let mut found = HashSet::new();
    for segment in operation.path.split('/') {
        if let Some(id) = segment.strip_prefix("bulkId:") {
            found.insert(id.to_owned());
        }
    }
    if let Some(data) = &operation.data {
        collect(data, &mut found);
    }
    found
}

/// Replaces every `bulkId:<id>` with the created resource's id.
fn resolve(value: &mut Value, created: &HashMap<String, String>) {
    match value {
        Value::String(text) => {
            if let Some(id) = text.strip_prefix("bulkId:")
                && let Some(resource) = created.get(id)
            {
                *text = resource.clone();
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| resolve(item, created)),
        Value::Object(fields) => fields.values_mut().for_each(|item| resolve(item, created)),
        _ => {}
    }
}

fn resolve_path(path: &str, created: &HashMap<String, String>) -> String {
    path.split('/')
        .map(|segment| {
            segment
                .strip_prefix("bulkId:")
                .and_then(|id| created.get(id))
                .map_or_else(|| segment.to_owned(), Clone::clone)
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The order to run operations in: request order, except that an operation runs after the
/// POSTs it references. Operations on a reference cycle are left out (they fail with 409).
fn schedule(operations: &[Operation]) -> (Vec<usize>, HashSet<usize>) {
    let definer: HashMap<&str, usize> = operations
        .iter()
        .enumerate()
        .filter(|(_, operation)| operation.method == "POST")
        .filter_map(|(index, operation)| operation.bulk_id.as_deref().map(|id| (id, index)))
        .collect();
    let dependencies: Vec<Vec<usize>> = operations
        .iter()
        .enumerate()
        .map(|(index, operation)| {
            references(operation)
                .iter()
                .filter_map(|id| definer.get(id.as_str()).copied())
                .filter(|definer| *definer != index)
                .collect()
        })
        .collect();
    // Depth-first, visiting in request order; a node met again while on the stack is a cycle.
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    let mut marks = vec![Mark::New; operations.len()];
    let mut order = Vec::with_capacity(operations.len());
    let mut cyclic = HashSet::new();
    for root in 0..operations.len() {
        if marks[root] != Mark::New {
            continue;
        }
        // (node, index of the next dependency to visit)
        let mut stack = vec![(root, 0)];
        marks[root] = Mark::Active;
        while let Some((node, next)) = stack.last_mut() {
            let node = *node;
            if let Some(&dependency) = dependencies[node].get(*next) {
                *next += 1;
                match marks[dependency] {
                    Mark::New => {
                        marks[dependency] = Mark::Active;
                        stack.push((dependency, 0));
                    }
                    Mark::Active => {
                        // Everything on the stack from the dependency up is on the cycle.
                        let from = stack
                            .iter()
                            .position(|(member, _)| *member == dependency)
                            .unwrap_or(0);
                        cyclic.extend(stack[from..].iter().map(|(member, _)| *member));
                    }
                    Mark::Done => {}
                }
            } else {
                marks[node] = Mark::Done;
                order.push(node);
                stack.pop();
            }
        }
    }
    (order, cyclic)
}

/// A client like the bulk request's, for one operation.
fn client_for(client: &ScimClient) -> ScimClient {
    ScimClient {
        tenant: client.tenant.clone(),
        context: client.context.clone(),
        base_url: client.base_url.clone(),
        dry_run: client.dry_run.clone(),
    }
}

/// Runs one operation through the handler a single request would reach.
async fn run(
    app: &AppState,
    client: &ScimClient,
    method: &str,
    path: &str,
    version: Option<&str>,
    data: Option<Value>,
) -> Response {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let mut headers = HeaderMap::new();
    if let Some(version) = version
        && let Ok(value) = HeaderValue::from_str(version)
    {
        headers.insert(header::IF_MATCH, value);
    }
    let tenant = client.tenant.to_string();
    let body = || {
        data.clone()
            .map(ScimBody)
            .ok_or_else(|| ScimError::invalid_syntax(format!("{method} {path} needs data")))
    };
    let state = || State(app.clone());
    let result: Result<Response, ScimError> = match (method, segments.as_slice()) {
        ("POST", [resource]) if resource.eq_ignore_ascii_case("Users") => match body() {
            Ok(body) => users::create(state(), client_for(client), RawQuery(None), body).await,
            Err(error) => Err(error),
        },
        ("POST", [resource]) if resource.eq_ignore_ascii_case("Groups") => match body() {
            Ok(body) => groups::create(state(), client_for(client), RawQuery(None), body).await,
            Err(error) => Err(error),
        },
        (method @ ("PUT" | "PATCH" | "DELETE"), [resource, id])
            if resource.eq_ignore_ascii_case("Users")
                || resource.eq_ignore_ascii_case("Groups") =>
        {
            let is_users = resource.eq_ignore_ascii_case("Users");
            let target = Path((tenant, (*id).to_owned()));
            match (method, is_users) {
                ("DELETE", true) => users::delete(state(), client_for(client), target, headers)
                    .await
                    .map(IntoResponse::into_response),
                ("DELETE", false) => groups::delete(state(), client_for(client), target, headers)
                    .await
                    .map(IntoResponse::into_response),
                (_, _) => match body() {
                    Err(error) => Err(error),
                    Ok(body) => match (method, is_users) {
                        ("PUT", true) => {
                            users::replace(
                                state(),
                                client_for(client),
                                target,
                                RawQuery(None),
                                headers,
                                body,
                            )
                            .await
                        }
                        ("PUT", false) => {
                            groups::replace(
                                state(),
                                client_for(client),
                                target,
                                RawQuery(None),
                                headers,
                                body,
                            )
                            .await
                        }
                        (_, true) => {
                            users::patch(
                                state(),
                                client_for(client),
                                target,
                                RawQuery(None),
                                headers,
                                body,
                            )
                            .await
                        }
                        (_, false) => {
                            groups::patch(
                                state(),
                                client_for(client),
                                target,
                                RawQuery(None),
                                headers,
                                body,
                            )
                            .await
                        }
                    },
                },
            }
        }
        ("POST" | "PUT" | "PATCH" | "DELETE", _) => Err(ScimError::invalid_path(format!(
            "{method} {path}: bulk operations address /Users, /Groups, /Users/{{id}} or /Groups/{{id}}"
        ))),
        _ => Err(ScimError::invalid_syntax(format!(
            "{method} is not a bulk method (POST, PUT, PATCH, DELETE)"
        ))),
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

/// The result of one operation, from the handler's response.
async fn result_of(
    response: Response,
    operation: &Operation,
    created: &mut HashMap<String, String>,
) -> (Value, bool) {
    let status = response.status();
    let location = response
        .headers()
        .get(header::LOCATION)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let version = response
        .headers()
        .get(header::ETAG)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok());
    let mut result = Map::new();
    result.insert("method".into(), json!(operation.method));
    if let Some(bulk_id) = &operation.bulk_id {
        result.insert("bulkId".into(), json!(bulk_id));
    }
    result.insert("status".into(), json!(status.as_u16().to_string()));
    let failed = status.is_client_error() || status.is_server_error();
    if failed {
        if let Some(body) = body {
            result.insert("response".into(), body);
        }
    } else {
        if operation.method == "POST"
            && let (Some(bulk_id), Some(id)) = (
                &operation.bulk_id,
                body.as_ref().and_then(|body| body["id"].as_str()),
            )
        {
            created.insert(bulk_id.clone(), id.to_owned());
        }
        if let Some(location) = location {
            result.insert("location".into(), json!(location));
        }
        if let Some(version) = version {
            result.insert("version".into(), json!(version));
        }
    }
    (Value::Object(result), failed)
}

fn failure(operation: &Operation, error: &ScimError) -> Value {
    let mut result = Map::new();
    result.insert("method".into(), json!(operation.method));
    if let Some(bulk_id) = &operation.bulk_id {
        result.insert("bulkId".into(), json!(bulk_id));
    }
    result.insert("status".into(), json!(error.status.as_u16().to_string()));
    result.insert("response".into(), error.body());
    Value::Object(result)
}

pub async fn bulk(
    State(app): State<AppState>,
    client: ScimClient,
    ScimBody(body): ScimBody,
) -> Result<Response, ScimError> {
    let Value::Object(request) = &body else {
        return Err(ScimError::invalid_syntax(
            "a BulkRequest must be a JSON object",
        ));
    };
    let field = |name: &str| {
        request
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value)
    };
    let Some(Value::Array(sent)) = field("Operations") else {
        return Err(ScimError::invalid_syntax(
            "a BulkRequest needs an Operations array",
        ));
    };
    if sent.len() > MAX_OPERATIONS {
        return Err(ScimError::payload_too_large(format!(
            "a bulk request holds at most {MAX_OPERATIONS} operations (maxOperations); this one has {}",
            sent.len()
        )));
    }
    let fail_on_errors = match field("failOnErrors") {
        None | Some(Value::Null) => None,
        Some(value) => match value.as_u64() {
            Some(limit) if limit > 0 => Some(limit as usize),
            _ => {
                return Err(ScimError::invalid_value(
                    "failOnErrors must be a positive integer",
                ));
            }
        },
    };
    let operations = sent
        .iter()
        .enumerate()
        .map(|(index, operation)| Operation::read(operation, index))
        .collect::<Result<Vec<_>, _>>()?;
    let mut seen = HashSet::new();
    for operation in &operations {
        if operation.method == "POST" && operation.bulk_id.is_none() {
            return Err(ScimError::invalid_value(format!(
                "POST {} needs a bulkId",
                operation.path
            )));
        }
        if let Some(bulk_id) = &operation.bulk_id
            && operation.method == "POST"
            && !seen.insert(bulk_id.clone())
        {
            return Err(ScimError::invalid_value(format!(
                "bulkId {bulk_id} is used by two operations"
            )));
        }
    }
    let (order, cyclic) = schedule(&operations);
    let mut results: Vec<Option<Value>> = vec![None; operations.len()];
    let mut created: HashMap<String, String> = HashMap::new();
    let mut errors = 0;
    for index in order {
        if fail_on_errors.is_some_and(|limit| errors >= limit) {
            break;
        }
        let operation = &operations[index];
        let unresolved: Vec<String> = references(operation)
            .into_iter()
            .filter(|id| !created.contains_key(id))
            .collect();
        if cyclic.contains(&index) || !unresolved.is_empty() {
            let detail = if cyclic.contains(&index) {
                "the operation is on a circular chain of bulkId references".to_owned()
            } else {
                format!(
                    "bulkId:{} refers to no resource created by this request",
                    unresolved.join(", bulkId:")
                )
            };
            let error = ScimError::new(StatusCode::CONFLICT, None, detail);
            results[index] = Some(failure(operation, &error));
            errors += 1;
            continue;
        }
        let path = resolve_path(&operation.path, &created);
        let mut data = operation.data.clone();
        if let Some(data) = &mut data {
            resolve(data, &created);
        }
        let response = run(
            &app,
            &client,
            &operation.method,
            &path,
            operation.version.as_deref(),
            data,
        )
        .await;
        let (result, failed) = result_of(response, operation, &mut created).await;
        errors += usize::from(failed);
        results[index] = Some(result);
    }
    let results: Vec<Value> = results.into_iter().flatten().collect();
    Ok(scim_response(
        StatusCode::OK,
        &json!({
            "schemas": [BULK_RESPONSE_SCHEMA],
            "Operations": results,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn operation(method: &str, path: &str, bulk_id: Option<&str>, data: Value) -> Operation {
        Operation {
            method: method.into(),
            path: path.into(),
            bulk_id: bulk_id.map(str::to_owned),
            version: None,
            data: Some(data),
        }
    }

    #[test]
    fn operations_run_after_the_posts_they_reference() {
        let operations = vec![
            operation(
                "POST",
                "/Groups",
                Some("g"),
                json!({"members": [{"value": "bulkId:u"}]}),
            ),
            operation("POST", "/Users", Some("u"), json!({"userName": "alice"})),
            operation("PATCH", "/Groups/bulkId:g", None, json!({})),
        ];
        let (order, cyclic) = schedule(&operations);
        assert_eq!(order, vec![1, 0, 2]);
        assert!(cyclic.is_empty());
    }

    #[test]
    fn circular_references_are_found() {
        let operations = vec![
            operation(
                "POST",
                "/Groups",
                Some("a"),
                json!({"members": [{"value": "bulkId:b"}]}),
            ),
            operation(
                "POST",
                "/Groups",
                Some("b"),
                json!({"members": [{"value": "bulkId:a"}]}),
            ),
            operation("POST", "/Users", Some("c"), json!({"userName": "carol"})),
        ];
        let (order, cyclic) = schedule(&operations);
        assert_eq!(order.len(), 3);
        assert_eq!(cyclic, HashSet::from([0, 1]));
    }

    #[test]
    fn references_are_replaced_everywhere_in_data_and_path() {
        let created = HashMap::from([("u".to_owned(), "id-1".to_owned())]);
        let mut data = json!({"members": [{"value": "bulkId:u"}], "note": "bulkId:unknown"});
        resolve(&mut data, &created);
        assert_eq!(data["members"][0]["value"], "id-1");
        assert_eq!(data["note"], "bulkId:unknown");
        assert_eq!(resolve_path("/Users/bulkId:u", &created), "/Users/id-1");
    }
}
