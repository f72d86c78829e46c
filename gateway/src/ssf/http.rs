//! The SSF HTTP surface of each tenant's issuer: transmitter metadata
//! (`/.well-known/ssf-configuration/ssf/{tenant}`), the JWKS, and the stream management API
//! (stream configuration, status, subjects, verification) as SSF 1.0 specifies it, for receivers
//! holding an access token from [`super::oauth`]. Errors are JSON `{"err", "description"}`.

// Helpers return the finished error response as their `Err` (it is what the handler answers);
// these are request paths that end there, not hot loops.
#![allow(clippy::result_large_err)]

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use roster_engine::domain::ssf::{
    SSF_AUTHORIZATION_MAX, SSF_EVENTS_SUPPORTED, SSF_MIN_VERIFICATION_INTERVAL_SECONDS, SSF_POLL,
    SSF_POLL_LEGACY, SSF_PUSH, SSF_PUSH_LEGACY,
};
use roster_engine::domain::{
    Actor, ActorKind, Command, NewSsfStream, RejectionKind, SsfDelivery, SsfStreamConfig,
    SsfStreamId, SsfStreamRecord, SsfStreamStatus, TenantName, TokenId, TokenScope,
};
use roster_engine::engine::{CommandContext, ExecuteError};
use serde_json::{Value, json};

use super::oauth::{self, AccessClaims, SCOPE_MANAGE, SCOPE_READ};
use crate::state::AppState;

/// Largest management request body.
const BODY_MAX: usize = 64 * 1024;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/oauth/token", post(oauth::token))
        .route("/ssf/{tenant}/oauth/token", post(oauth::tenant_token))
        .route("/.well-known/ssf-configuration/ssf/{tenant}", get(metadata))
        .route("/ssf/{tenant}/jwks", get(jwks))
        .route(
            "/ssf/{tenant}/stream",
            get(read_stream)
                .post(create_stream)
                .patch(update_stream)
                .put(replace_stream)
                .delete(delete_stream),
        )
        .route("/ssf/{tenant}/status", get(read_status).post(update_status))
        .route("/ssf/{tenant}/subjects:add", post(add_subject))
        .route("/ssf/{tenant}/subjects:remove", post(remove_subject))
        .route("/ssf/{tenant}/verify", post(verify))
        .route(
            "/ssf/{tenant}/poll/{stream_id}",
            post(super::delivery::poll),
        )
}

/// An SSF error answer: `{"err": …, "description": …}`.
pub fn ssf_error(status: StatusCode, err: &str, description: impl Into<String>) -> Response {
    let mut response = (
        status,
        axum::Json(json!({"err": err, "description": description.into()})),
    )
        .into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer error=\"invalid_token\""),
        );
    }
    response
}

fn unavailable(error: impl std::fmt::Display) -> Response {
    tracing::warn!(%error, "SSF request failed on the directory");
    let mut response = ssf_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "temporarily_unavailable",
        "the directory is temporarily unavailable; retry later",
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// A command's failure as SSF answers it.
fn execute_error(error: ExecuteError) -> Response {
    match error {
        ExecuteError::Rejected(rejection) => {
            let (status, err) = match rejection.kind() {
                RejectionKind::Invalid => (StatusCode::BAD_REQUEST, "invalid_request"),
                RejectionKind::NotFound => (StatusCode::NOT_FOUND, "not_found"),
                RejectionKind::Conflict => (StatusCode::CONFLICT, "conflict"),
                RejectionKind::PreconditionFailed | RejectionKind::Forbidden => {
                    (StatusCode::BAD_REQUEST, "invalid_request")
                }
                RejectionKind::Retry => {
                    if let roster_engine::domain::Rejection::SsfVerificationTooSoon {
                        wait_seconds,
                    } = rejection
                    {
                        let mut response = ssf_error(
                            StatusCode::TOO_MANY_REQUESTS,
                            "too_many_requests",
                            rejection.to_string(),
                        );
                        response
                            .headers_mut()
                            .insert(header::RETRY_AFTER, HeaderValue::from(wait_seconds));
                        return response;
                    }
                    return unavailable(rejection);
                }
            };
            ssf_error(status, err, rejection.to_string())
        }
        other => unavailable(other),
    }
}

/// An authenticated receiver: a valid access token for the tenant in the path, whose client
/// token is still valid and of the `ssf` scope.
pub struct Receiver {
    pub tenant: TenantName,
    pub client: TokenId,
    pub claims: AccessClaims,
    pub context: CommandContext,
}

impl Receiver {
    fn require(&self, scope: &str) -> Result<(), Response> {
        if self.claims.has_scope(scope) {
            Ok(())
        } else {
            Err(ssf_error(
                StatusCode::FORBIDDEN,
                "access_denied",
                format!("this needs the {scope} scope"),
            ))
        }
    }

    /// Reads need `ssf.read` or `ssf.manage`.
    pub fn require_read(&self) -> Result<(), Response> {
        if self.claims.has_scope(SCOPE_MANAGE) {
            return Ok(());
        }
        self.require(SCOPE_READ)
    }

    fn require_manage(&self) -> Result<(), Response> {
        self.require(SCOPE_MANAGE)
    }

    /// Runs `command` for this receiver's tenant.
    async fn execute(&self, state: &AppState, command: Command) -> Result<u64, Response> {
        state
            .engine
            .execute(&self.tenant, command, self.context.clone())
            .await
            .map(|executed| executed.events.last().map_or(0, |event| event.sequence))
            .map_err(execute_error)
    }

    /// This receiver's stream `id`, or 404.
    fn stream(&self, state: &AppState, id: &str) -> Result<SsfStreamRecord, Response> {
        let not_found = || ssf_error(StatusCode::NOT_FOUND, "not_found", "no such stream");
        let id: SsfStreamId = id.parse().map_err(|_| not_found())?;
        let record = state
            .tenant_record(&self.tenant)
            .map_err(unavailable)?
            .ok_or_else(not_found)?;
        record
            .ssf_stream(&id)
            .filter(|stream| stream.receiver == self.client)
            .cloned()
            .ok_or_else(not_found)
    }
}

impl FromRequestParts<AppState> for Receiver {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let refused = || {
            ssf_error(
                StatusCode::UNAUTHORIZED,
                "authentication_failed",
                "a valid access token for this issuer is required (POST /oauth/token with the \
                 client credentials)",
            )
        };
        let Path(params) =
            Path::<std::collections::HashMap<String, String>>::from_request_parts(parts, state)
                .await
                .map_err(|_| refused())?;
        let tenant = params
            .get("tenant")
            .and_then(|name| TenantName::parse(name).ok())
            .filter(|name| !name.is_system() && !name.is_branch())
            .ok_or_else(refused)?;
        let bearer = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| {
                let (scheme, token) = value.trim().split_once(' ')?;
                scheme
                    .eq_ignore_ascii_case("bearer")
                    .then(|| token.trim().to_owned())
            })
            .ok_or_else(refused)?;
        let claims = oauth::verify(&state.ssf, &bearer).ok_or_else(refused)?;
        if claims.tenant != tenant.as_str() {
            return Err(refused());
        }
        let client = TokenId(claims.sub.clone());
        // The client's token must still be valid: revoking it ends its access at once.
        let token = state
            .engine
            .aggregate()
            .token(&tenant, &client)
            .map_err(unavailable)?
            .filter(|token| token.scope == TokenScope::Ssf && token.is_valid_at(state.clock.now()))
            .ok_or_else(refused)?;
        let source = crate::scim::http::source(state, parts);
        Ok(Self {
            context: CommandContext {
                now: state.clock.now(),
                actor: Actor {
                    kind: ActorKind::SsfReceiver,
                    id: token.id.0.clone(),
                    display: token.name,
                },
                causation_id: source.request_id.clone(),
                source,
            },
            tenant,
            client,
            claims,
        })
    }
}

/// A JSON object body of at most [`BODY_MAX`] bytes.
fn json_body(body: &Bytes) -> Result<serde_json::Map<String, Value>, Response> {
    if body.len() > BODY_MAX {
        return Err(ssf_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request",
            format!("request bodies are limited to {BODY_MAX} bytes"),
        ));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(ssf_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the body must be a JSON object",
        )),
        Err(error) => Err(ssf_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("the body is not JSON: {error}"),
        )),
    }
}

fn invalid(description: impl Into<String>) -> Response {
    ssf_error(StatusCode::BAD_REQUEST, "invalid_request", description)
}

fn stream_id_of(body: &serde_json::Map<String, Value>) -> Result<String, Response> {
    body.get("stream_id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| invalid("stream_id is required"))
}

/// `GET /.well-known/ssf-configuration/ssf/{tenant}`: the issuer's metadata (public, as
/// discovery is; an unknown tenant is 404).
async fn metadata(State(state): State<AppState>, Path(tenant): Path<String>) -> Response {
    let not_found = || ssf_error(StatusCode::NOT_FOUND, "not_found", "no such issuer");
    let Ok(tenant) = TenantName::parse(&tenant) else {
        return not_found();
    };
    match state.tenant_record_fresh(&tenant).await {
        Ok(Some(_)) => {}
        Ok(None) => return not_found(),
        Err(error) => return unavailable(error),
    }
    let issuer = state.ssf.issuer(&tenant);
    axum::Json(json!({
        "spec_version": "1_0",
        "issuer": issuer,
        "jwks_uri": format!("{issuer}/jwks"),
        "delivery_methods_supported": [SSF_PUSH, SSF_POLL],
        "configuration_endpoint": format!("{issuer}/stream"),
        "status_endpoint": format!("{issuer}/status"),
        "add_subject_endpoint": format!("{issuer}/subjects:add"),
        "remove_subject_endpoint": format!("{issuer}/subjects:remove"),
        "verification_endpoint": format!("{issuer}/verify"),
        "authorization_schemes": [{"spec_urn": "urn:ietf:rfc:6749"}],
        "default_subjects": "ALL",
    }))
    .into_response()
}

/// `GET /ssf/{tenant}/jwks`: the keys that verify SETs.
async fn jwks(State(state): State<AppState>) -> Response {
    match state.ssf.signing.jwks().await {
        Ok(set) => {
            let mut response = axum::Json(set).into_response();
            response.headers_mut().insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            );
            response
        }
        Err(error) => unavailable(error),
    }
}

/// A stream's configuration as SSF shows it. A push receiver's authorization header is never
/// shown back.
pub fn stream_json(state: &AppState, tenant: &TenantName, stream: &SsfStreamRecord) -> Value {
    let issuer = state.ssf.issuer(tenant);
    let delivery = match &stream.config.delivery {
        SsfDelivery::Push { endpoint_url, .. } => {
            json!({"method": SSF_PUSH, "endpoint_url": endpoint_url})
        }
        SsfDelivery::Poll => json!({
            "method": SSF_POLL,
            "endpoint_url": format!("{issuer}/poll/{}", stream.id),
        }),
    };
    let mut config = json!({
        "stream_id": stream.id.to_string(),
        "iss": issuer,
        "aud": stream.receiver.0,
        "delivery": delivery,
        "events_supported": SSF_EVENTS_SUPPORTED,
        "events_requested": stream.config.events_requested,
        "events_delivered": stream.events_delivered(),
        "min_verification_interval": SSF_MIN_VERIFICATION_INTERVAL_SECONDS,
    });
    if !stream.config.description.is_empty() {
        config["description"] = json!(stream.config.description);
    }
    config
}

/// The delivery a request asks for: absent means poll (SSF: "MUST assume poll").
fn delivery_of(
    state: &AppState,
    body: &serde_json::Map<String, Value>,
) -> Result<Option<SsfDelivery>, Response> {
    let Some(delivery) = body.get("delivery") else {
        return Ok(None);
    };
    let method = delivery
        .get("method")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("delivery.method is required"))?;
    match method {
        SSF_PUSH | SSF_PUSH_LEGACY => {
            let endpoint_url = delivery
                .get("endpoint_url")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("push delivery needs delivery.endpoint_url"))?;
            let authorization_sealed = match delivery.get("authorization_header") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::String(header)) => {
                    if header.len() > SSF_AUTHORIZATION_MAX
                        || HeaderValue::from_str(header).is_err()
                    {
                        return Err(invalid(
                            "delivery.authorization_header must be a valid HTTP header value \
                             of at most 4 KiB",
                        ));
                    }
                    state.ssf.seal(header)
                }
                Some(_) => return Err(invalid("delivery.authorization_header must be a string")),
            };
            Ok(Some(SsfDelivery::Push {
                endpoint_url: endpoint_url.to_owned(),
                authorization_sealed,
            }))
        }
        SSF_POLL | SSF_POLL_LEGACY => Ok(Some(SsfDelivery::Poll)),
        other => Err(invalid(format!(
            "delivery.method {other:?} is not supported: use {SSF_PUSH} or {SSF_POLL}"
        ))),
    }
}

fn strings_of(
    body: &serde_json::Map<String, Value>,
    name: &str,
) -> Result<Option<Vec<String>>, Response> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| invalid(format!("{name} must be an array of strings")))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(invalid(format!("{name} must be an array of strings"))),
    }
}

fn text_of(body: &serde_json::Map<String, Value>, name: &str) -> Result<Option<String>, Response> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(_) => Err(invalid(format!("{name} must be a string"))),
    }
}

/// The stream's JSON after a change, read from the aggregate.
fn stream_answer(
    state: &AppState,
    receiver: &Receiver,
    id: &SsfStreamId,
    status: StatusCode,
) -> Response {
    match receiver.stream(state, &id.to_string()) {
        Ok(stream) => (
            status,
            axum::Json(stream_json(state, &receiver.tenant, &stream)),
        )
            .into_response(),
        Err(response) => response,
    }
}

/// `POST /stream`: creates the receiver's stream (201; 409 when it has one).
async fn create_stream(State(state): State<AppState>, receiver: Receiver, body: Bytes) -> Response {
    if let Err(response) = receiver.require_manage() {
        return response;
    }
    let result: Result<Response, Response> = async {
        let body = json_body(&body)?;
        let config = SsfStreamConfig {
            delivery: delivery_of(&state, &body)?.unwrap_or(SsfDelivery::Poll),
            events_requested: strings_of(&body, "events_requested")?.unwrap_or_default(),
            description: text_of(&body, "description")?.unwrap_or_default(),
        };
        let id = SsfStreamId(uuid::Uuid::now_v7());
        let sequence = receiver
            .execute(
                &state,
                Command::CreateSsfStream(NewSsfStream {
                    id,
                    receiver: receiver.client.clone(),
                    config,
                }),
            )
            .await?;
        state
            .ssf_delivery
            .start_after(&receiver.tenant, &id, sequence)
            .await;
        state.ssf_delivery.changed(&receiver.tenant);
        Ok(stream_answer(&state, &receiver, &id, StatusCode::CREATED))
    }
    .await;
    result.unwrap_or_else(|response| response)
}

#[derive(serde::Deserialize)]
struct StreamQuery {
    stream_id: Option<String>,
}

/// `GET /stream[?stream_id=]`: one stream, or (no id) the list of the receiver's streams.
async fn read_stream(
    State(state): State<AppState>,
    receiver: Receiver,
    Query(query): Query<StreamQuery>,
) -> Response {
    if let Err(response) = receiver.require_read() {
        return response;
    }
    match query.stream_id {
        Some(id) => match receiver.stream(&state, &id) {
            Ok(stream) => {
                axum::Json(stream_json(&state, &receiver.tenant, &stream)).into_response()
            }
            Err(response) => response,
        },
        None => {
            let record = match state.tenant_record(&receiver.tenant) {
                Ok(record) => record,
                Err(error) => return unavailable(error),
            };
            let streams: Vec<Value> = record
                .map(|record| record.ssf_streams)
                .unwrap_or_default()
                .iter()
                .filter(|stream| stream.receiver == receiver.client)
                .map(|stream| stream_json(&state, &receiver.tenant, stream))
                .collect();
            axum::Json(streams).into_response()
        }
    }
}

/// `PATCH /stream` (only the given properties change) and `PUT /stream` (the given set is the
/// whole configuration).
async fn change_stream(
    state: AppState,
    receiver: Receiver,
    body: Bytes,
    replace: bool,
) -> Result<Response, Response> {
    receiver.require_manage()?;
    let body = json_body(&body)?;
    let id = stream_id_of(&body)?;
    let current = receiver.stream(&state, &id)?;
    let delivery = delivery_of(&state, &body)?;
    let events = strings_of(&body, "events_requested")?;
    let description = text_of(&body, "description")?;
    let config = if replace {
        SsfStreamConfig {
            delivery: delivery.unwrap_or(SsfDelivery::Poll),
            events_requested: events.unwrap_or_default(),
            description: description.unwrap_or_default(),
        }
    } else {
        SsfStreamConfig {
            delivery: delivery.unwrap_or(current.config.delivery.clone()),
            events_requested: events.unwrap_or(current.config.events_requested.clone()),
            description: description.unwrap_or(current.config.description.clone()),
        }
    };
    receiver
        .execute(
            &state,
            Command::UpdateSsfStream {
                stream_id: current.id,
                receiver: Some(receiver.client.clone()),
                config,
            },
        )
        .await?;
    state.ssf_delivery.changed(&receiver.tenant);
    Ok(stream_answer(
        &state,
        &receiver,
        &current.id,
        StatusCode::OK,
    ))
}

async fn update_stream(State(state): State<AppState>, receiver: Receiver, body: Bytes) -> Response {
    change_stream(state, receiver, body, false)
        .await
        .unwrap_or_else(|response| response)
}

async fn replace_stream(
    State(state): State<AppState>,
    receiver: Receiver,
    body: Bytes,
) -> Response {
    change_stream(state, receiver, body, true)
        .await
        .unwrap_or_else(|response| response)
}

/// `DELETE /stream?stream_id=`: 204.
async fn delete_stream(
    State(state): State<AppState>,
    receiver: Receiver,
    Query(query): Query<StreamQuery>,
) -> Response {
    let result: Result<Response, Response> = async {
        receiver.require_manage()?;
        let id = query
            .stream_id
            .ok_or_else(|| invalid("stream_id is required"))?;
        let stream = receiver.stream(&state, &id)?;
        receiver
            .execute(
                &state,
                Command::DeleteSsfStream {
                    stream_id: stream.id,
                    receiver: Some(receiver.client.clone()),
                    reason: "deleted by its receiver".to_owned(),
                },
            )
            .await?;
        state.ssf_delivery.changed(&receiver.tenant);
        Ok(StatusCode::NO_CONTENT.into_response())
    }
    .await;
    result.unwrap_or_else(|response| response)
}

fn status_json(stream: &SsfStreamRecord) -> Value {
    let mut status = json!({
        "stream_id": stream.id.to_string(),
        "status": stream.status.as_str(),
    });
    if !stream.status_reason.is_empty() {
        status["reason"] = json!(stream.status_reason);
    }
    status
}

/// `GET /status?stream_id=`.
async fn read_status(
    State(state): State<AppState>,
    receiver: Receiver,
    Query(query): Query<StreamQuery>,
) -> Response {
    let result: Result<Response, Response> = async {
        receiver.require_read()?;
        let id = query
            .stream_id
            .ok_or_else(|| invalid("stream_id is required"))?;
        let stream = receiver.stream(&state, &id)?;
        Ok(axum::Json(status_json(&stream)).into_response())
    }
    .await;
    result.unwrap_or_else(|response| response)
}

/// `POST /status {stream_id, status, reason?}`: 200 with the new status.
async fn update_status(State(state): State<AppState>, receiver: Receiver, body: Bytes) -> Response {
    let result: Result<Response, Response> = async {
        receiver.require_manage()?;
        let body = json_body(&body)?;
        let stream = receiver.stream(&state, &stream_id_of(&body)?)?;
        let status = body
            .get("status")
            .and_then(Value::as_str)
            .and_then(SsfStreamStatus::parse)
            .ok_or_else(|| invalid("status must be enabled, paused or disabled"))?;
        let reason = text_of(&body, "reason")?.unwrap_or_default();
        receiver
            .execute(
                &state,
                Command::SetSsfStreamStatus {
                    stream_id: stream.id,
                    receiver: Some(receiver.client.clone()),
                    status,
                    reason,
                },
            )
            .await?;
        state.ssf_delivery.changed(&receiver.tenant);
        let stream = receiver.stream(&state, &stream.id.to_string())?;
        Ok(axum::Json(status_json(&stream)).into_response())
    }
    .await;
    result.unwrap_or_else(|response| response)
}

async fn change_subject(
    state: AppState,
    receiver: Receiver,
    body: Bytes,
    removed: bool,
) -> Result<Response, Response> {
    receiver.require_manage()?;
    let body = json_body(&body)?;
    let stream = receiver.stream(&state, &stream_id_of(&body)?)?;
    let subject = body
        .get("subject")
        .cloned()
        .ok_or_else(|| invalid("subject is required"))?;
    receiver
        .execute(
            &state,
            Command::ChangeSsfSubject {
                stream_id: stream.id,
                receiver: receiver.client.clone(),
                subject,
                removed,
            },
        )
        .await?;
    Ok(if removed {
        StatusCode::NO_CONTENT.into_response()
    } else {
        StatusCode::OK.into_response()
    })
}

/// `POST /subjects:add {stream_id, subject}`: 200. Every subject is in a stream unless removed
/// (`default_subjects` `ALL`); adding one back undoes its removal. Unknown subjects are accepted
/// alike (answering otherwise would let a receiver probe who exists).
async fn add_subject(State(state): State<AppState>, receiver: Receiver, body: Bytes) -> Response {
    change_subject(state, receiver, body, false)
        .await
        .unwrap_or_else(|response| response)
}

/// `POST /subjects:remove {stream_id, subject}`: 204; no SET about that subject goes out on the
/// stream until it is added back.
async fn remove_subject(
    State(state): State<AppState>,
    receiver: Receiver,
    body: Bytes,
) -> Response {
    change_subject(state, receiver, body, true)
        .await
        .unwrap_or_else(|response| response)
}

/// `POST /verify {stream_id, state?}`: 204; the verification SET follows on the stream, in
/// order with the others. 429 with `Retry-After` within `min_verification_interval`.
async fn verify(State(state): State<AppState>, receiver: Receiver, body: Bytes) -> Response {
    let result: Result<Response, Response> = async {
        receiver.require_manage()?;
        let body = json_body(&body)?;
        let stream = receiver.stream(&state, &stream_id_of(&body)?)?;
        let echoed = text_of(&body, "state")?.unwrap_or_default();
        receiver
            .execute(
                &state,
                Command::RequestSsfVerification {
                    stream_id: stream.id,
                    receiver: receiver.client.clone(),
                    state: echoed,
                    at: state.clock.now(),
                },
            )
            .await?;
        state.ssf_delivery.changed(&receiver.tenant);
        Ok(StatusCode::NO_CONTENT.into_response())
    }
    .await;
    result.unwrap_or_else(|response| response)
}
