//! The SCIM HTTP surface: routes, the extractors that authenticate a tenant's client and read
//! JSON bodies, and the response helpers. Handlers live in `users`, `groups`, `search`, `bulk`
//! and `discovery`.

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use roster_engine::domain::{
    Actor, ActorKind, BranchState, Command, Source, Staging, TenantName, TokenScope,
};
use roster_engine::engine::{CommandContext, ExecuteError, Executed};
use serde_json::Value;
use uuid::Uuid;

use super::dry_run::{self, DryRun};
use super::error::{IntoScimError, ScimError, ScimResult};
use super::{bulk, discovery, groups, search, users};
use crate::auth;
use crate::state::AppState;
use roster_scim::SCIM_CONTENT_TYPE;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route(
            "/scim/v2/{tenant}/Users",
            get(users::list).post(users::create),
        )
        .route(
            "/scim/v2/{tenant}/Users/{id}",
            get(users::get)
                .put(users::replace)
                .patch(users::patch)
                .delete(users::delete),
        )
        .route(
            "/scim/v2/{tenant}/Groups",
            get(groups::list).post(groups::create),
        )
        .route(
            "/scim/v2/{tenant}/Groups/{id}",
            get(groups::get)
                .put(groups::replace)
                .patch(groups::patch)
                .delete(groups::delete),
        )
        .route("/scim/v2/{tenant}/Users/.search", post(search::users))
        .route("/scim/v2/{tenant}/Groups/.search", post(search::groups))
        .route("/scim/v2/{tenant}/.search", post(search::root))
        .route("/scim/v2/{tenant}/Bulk", post(bulk::bulk))
        .route(
            "/scim/v2/{tenant}/ServiceProviderConfig",
            get(discovery::service_provider_config),
        )
        .route(
            "/scim/v2/{tenant}/ResourceTypes",
            get(discovery::resource_types),
        )
        .route(
            "/scim/v2/{tenant}/ResourceTypes/{name}",
            get(discovery::resource_type),
        )
        .route("/scim/v2/{tenant}/Schemas", get(discovery::schemas))
        .route("/scim/v2/{tenant}/Schemas/{id}", get(discovery::schema))
        .merge(crate::ssf::http::routes())
        .route("/metrics", get(metrics_with_admin_token))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(dry_run::layer))
        .layer(axum::middleware::from_fn(
            super::server::refuse_oversized_heads,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::instrument::track,
        ))
        .with_state(state)
}

/// The SCIM endpoints under a tenant, as routed.
const ENDPOINTS: [&str; 7] = [
    "Users",
    "Groups",
    "Bulk",
    "ServiceProviderConfig",
    "ResourceTypes",
    "Schemas",
    ".search",
];

/// A SCIM path as routed: the endpoint name in its canonical case (`/users` → `/Users`, Microsoft's
/// reference tests send it lowercase) and without a trailing slash (`/Users/?filter=…`).
/// `None` when the path needs no change.
pub fn normalize_path(path: &str) -> Option<String> {
    let rest = path.strip_prefix("/scim/v2/")?;
    let mut segments: Vec<&str> = rest.split('/').collect();
    let mut changed = false;
    while segments.len() > 1 && segments.last() == Some(&"") {
        segments.pop();
        changed = true;
    }
    let mut owned: Vec<String> = segments
        .iter()
        .map(|segment| (*segment).to_owned())
        .collect();
    for index in [1, 2] {
        let Some(segment) = owned.get(index) else {
            break;
        };
        // Only the endpoint itself and `.search` after it; ids and schema URNs keep their case.
        if index == 2 && !segment.eq_ignore_ascii_case(".search") {
            break;
        }
        if let Some(canonical) = ENDPOINTS
            .iter()
            .find(|endpoint| endpoint.eq_ignore_ascii_case(segment) && **endpoint != segment)
        {
            owned[index] = (*canonical).to_owned();
            changed = true;
        }
    }
    changed.then(|| format!("/scim/v2/{}", owned.join("/")))
}

/// Applies [`normalize_path`] to a request before routing.
pub fn normalize_request(mut request: Request) -> Request {
    if let Some(path) = normalize_path(request.uri().path()) {
        let uri = match request.uri().query() {
            Some(query) => format!("{path}?{query}"),
            None => path,
        };
        if let Ok(uri) = uri.parse() {
            *request.uri_mut() = uri;
        }
    }
    request
}

/// Alive: the process answers.
async fn healthz() -> Response {
    (StatusCode::OK, "ok\n").into_response()
}

/// Ready: the log takes writes and the views are caught up with it (503 otherwise, with why).
async fn readyz(axum::extract::State(state): axum::extract::State<AppState>) -> Response {
    match state.readiness().await {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(reason) => {
            let mut response = (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {reason}\n"),
            )
                .into_response();
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(super::error::RETRY_AFTER_SECONDS),
            );
            response
        }
    }
}

/// The operations router of `--admin-http`: `/metrics`, `/healthz` and `/readyz` without a
/// token, for an address only operators reach (loopback by default).
pub fn admin_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

/// `/metrics` on the SCIM port: it names every tenant, so only the admin token reads it there
/// (Prometheus: `authorization: {type: Bearer, credentials_file: …}`); `--admin-http` serves it
/// without a token.
async fn metrics_with_admin_token(
    axum::extract::State(state): axum::extract::State<AppState>,
    headers: HeaderMap,
) -> Response {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(auth::parse_authorization);
    let admitted = match presented {
        Some(presented) => {
            match state.authenticate(&TenantName::system(), &presented, state.clock.now()) {
                Ok(record) => record.is_some(),
                Err(error) => return error.into_scim_error().into_response(),
            }
        }
        None => false,
    };
    if !admitted {
        return ScimError::unauthorized(
            "/metrics on this port needs the admin token (or read it from --admin-http)",
        )
        .into_response();
    }
    metrics(axum::extract::State(state)).await
}

async fn metrics(axum::extract::State(state): axum::extract::State<AppState>) -> Response {
    let mut response = crate::instrument::render(&state).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    response
}

async fn not_found() -> ScimError {
    ScimError::not_found("no such endpoint")
}

async fn method_not_allowed() -> ScimError {
    ScimError::method_not_allowed("method not allowed on this endpoint")
}

/// An authenticated SCIM client of one tenant, with what its commands need.
pub struct ScimClient {
    pub tenant: TenantName,
    pub context: CommandContext,
    /// `http://host/scim/v2/<tenant>`, for `Location` and `$ref`.
    pub base_url: String,
    /// Set for a dry run: commands are decided, not appended (see `dry_run`).
    pub dry_run: Option<DryRun>,
}

impl ScimClient {
    /// Runs `command` for this client's tenant: executes it, or in a dry run decides it and
    /// records the events it would append.
    pub async fn execute(
        &self,
        app: &AppState,
        command: Command,
    ) -> Result<Executed, ExecuteError> {
        match &self.dry_run {
            None => {
                app.engine
                    .execute(&self.tenant, command, self.context.clone())
                    .await
            }
            Some(dry_run) => {
                let executed = app
                    .engine
                    .dry_run(&self.tenant, command, self.context.clone())
                    .await?;
                dry_run.record(&executed.events);
                Ok(executed)
            }
        }
    }
}

impl FromRequestParts<AppState> for ScimClient {
    type Rejection = ScimError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|_| ScimError::not_found("no such endpoint"))?;
        // An unknown tenant answers exactly as a known one without a valid token (the same 401,
        // after the same token lookup), so tenant names cannot be enumerated.
        let refused =
            || ScimError::unauthorized("a valid bearer token for this tenant is required");
        let tenant = params
            .get("tenant")
            .and_then(|name| TenantName::parse(name).ok())
            .filter(|name| !name.is_system())
            .ok_or_else(refused)?;
        let record = state.tenant_record_fresh(&tenant).await.scim()?;
        let now = state.clock.now();
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(auth::parse_authorization)
            .ok_or_else(refused)?;
        let token = state
            .authenticate_fresh(&tenant, &presented, now)
            .await
            .scim()?
            .ok_or_else(refused)?;
        if token.scope != TokenScope::Scim {
            return Err(ScimError::forbidden(format!(
                "this token has the {} scope: it reaches the Shared Signals endpoints only; SCIM \
                 needs a scim token (roster token issue {tenant})",
                token.scope.as_str()
            )));
        }
        let record = record.ok_or_else(refused)?;
        if let Err(wait) = state
            .rate_limiter
            .check(&token.id, std::time::Instant::now())
        {
            state.metrics.rate_limited(&tenant);
            return Err(ScimError::too_many_requests(
                crate::ratelimit::retry_after_seconds(wait),
            ));
        }
        state.note_token_use(&tenant, &token, now).await;
        let base_url = format!("{}/scim/v2/{tenant}", origin(state, parts));
        let tenant = staging_route(state, tenant, record.staging.as_ref(), &parts.method)?;
        let source = source(state, parts);
        Ok(Self {
            context: CommandContext {
                now,
                actor: Actor {
                    kind: ActorKind::ScimToken,
                    id: token.id.0,
                    display: token.name,
                },
                causation_id: source.request_id.clone(),
                source,
            },
            tenant,
            base_url,
            dry_run: parts.extensions.get::<DryRun>().cloned(),
        })
    }
}

/// Where a tenant's SCIM requests go: the tenant itself, or, while it is staged, its staging
/// branch (reads and writes alike, with the tenant's own URL and token). Everything after this
/// point works on the branch as on any tenant; nothing else ever addresses a branch.
fn staging_route(
    state: &AppState,
    tenant: TenantName,
    staging: Option<&Staging>,
    method: &Method,
) -> Result<TenantName, ScimError> {
    let Some(staging) = staging else {
        return Ok(tenant);
    };
    let store = state.engine.aggregate();
    let unavailable = |error: roster_engine::store::StoreError| {
        tracing::warn!(%error, "reading the tenant's staging failed");
        ScimError::unavailable("the directory is temporarily unavailable; retry later")
    };
    let branch = tenant.staging_branch(staging.generation);
    let branch_state = store
        .tenant(&branch)
        .map_err(unavailable)?
        .and_then(|record| record.branch);
    match branch_state {
        Some(BranchState::Open) => Ok(branch),
        Some(BranchState::Frozen) if *method == Method::GET || *method == Method::HEAD => {
            Ok(branch)
        }
        Some(BranchState::Frozen) => Err(ScimError::unavailable(
            "the tenant's staged changes are being promoted; retry shortly",
        )),
        _ => Err(ScimError::unavailable(
            "the tenant is being staged (its directory is being copied); retry shortly",
        )),
    }
}

/// The error for a resource missing from `tenant`: 404, unless `tenant` is a staging branch that
/// is gone (promoted or discarded since the request was routed to it). Then it is 503: the retry
/// reaches the live tenant, where a 404 could make the IdP create the resource again.
pub fn not_found_on(app: &AppState, tenant: &TenantName, detail: String) -> ScimError {
    if tenant.is_branch() && matches!(app.tenant_record(tenant), Ok(None)) {
        return ScimError::unavailable(
            "the tenant's staging was just promoted or discarded; retry the request",
        );
    }
    ScimError::not_found(detail)
}

fn header_text(headers: &HeaderMap, name: impl header::AsHeaderName) -> Option<&str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// The address of the peer that sent the request (the socket's other end).
fn peer(parts: &Parts) -> Option<std::net::IpAddr> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(address)| address.ip())
}

/// Whether `address` is one of the configured trusted proxies.
fn is_trusted(state: &AppState, address: std::net::IpAddr) -> bool {
    state
        .trusted_proxies
        .iter()
        .any(|network| network.contains(&address))
}

/// The client's address: the peer's, unless the peer is a trusted proxy; then the last address
/// in `X-Forwarded-For` that is not itself a trusted proxy (proxies append what they saw, so
/// only the hops added by trusted ones can be believed).
fn client_ip(state: &AppState, parts: &Parts) -> String {
    let Some(peer) = peer(parts) else {
        return String::new();
    };
    if !is_trusted(state, peer) {
        return peer.to_string();
    }
    let forwarded: Vec<&str> = parts
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .collect();
    let mut client = peer;
    for hop in forwarded.iter().rev() {
        let Ok(address) = hop.trim().parse::<std::net::IpAddr>() else {
            break;
        };
        client = address;
        if !is_trusted(state, address) {
            break;
        }
    }
    client.to_string()
}

pub(crate) fn source(state: &AppState, parts: &Parts) -> Source {
    let ip = client_ip(state, parts);
    let user_agent = header_text(&parts.headers, header::USER_AGENT)
        .unwrap_or_default()
        .chars()
        .take(512)
        .collect();
    let request_id = header_text(&parts.headers, "x-request-id")
        .filter(|id| !id.is_empty() && id.len() <= 128)
        .map_or_else(|| Uuid::now_v7().to_string(), str::to_owned);
    Source {
        ip,
        user_agent,
        request_id,
    }
}

/// Where the SCIM endpoint is, for `Location` and `meta.location`: the configured public URL;
/// else the request's `Host`, or a trusted proxy's `X-Forwarded-Proto`/`-Host`. Forwarding
/// headers from anyone else are ignored.
fn origin(state: &AppState, parts: &Parts) -> String {
    if let Some(public_url) = &state.public_url {
        return public_url.to_string();
    }
    let headers = &parts.headers;
    let forwarded = peer(parts).is_some_and(|peer| is_trusted(state, peer));
    let scheme = header_text(headers, "x-forwarded-proto")
        .filter(|scheme| forwarded && (*scheme == "https" || *scheme == "http"))
        .unwrap_or("http");
    let host = header_text(headers, "x-forwarded-host")
        .filter(|_| forwarded)
        .or_else(|| header_text(headers, header::HOST))
        .filter(|host| {
            host.chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
        })
        .unwrap_or("localhost");
    format!("{scheme}://{host}")
}

/// A JSON request body: at most [`MAX_BODY_BYTES`], `application/json` or
/// `application/scim+json` (the media type is not enforced: IdPs vary).
pub struct ScimBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for ScimBody {
    type Rejection = ScimError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let too_large = || {
            ScimError::payload_too_large(format!(
                "request bodies are limited to {MAX_BODY_BYTES} bytes"
            ))
        };
        if let Some(length) = header_text(request.headers(), header::CONTENT_LENGTH)
            .and_then(|length| length.parse::<usize>().ok())
            && length > MAX_BODY_BYTES
        {
            return Err(too_large());
        }
        let bytes = axum::body::to_bytes(request.into_body(), MAX_BODY_BYTES)
            .await
            .map_err(|_| too_large())?;
        parse_json_body(&bytes).map(ScimBody)
    }
}

/// Reads a request body's bytes as JSON: a blank body or invalid JSON is `invalidSyntax`.
pub fn parse_json_body(bytes: &[u8]) -> Result<Value, ScimError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ScimError::invalid_syntax("the request body is empty"));
    }
    serde_json::from_slice(bytes).map_err(|error| {
        ScimError::invalid_syntax(format!("the request body is not valid JSON: {error}"))
    })
}

/// A SCIM JSON response.
pub fn scim_response(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(SCIM_CONTENT_TYPE),
    );
    response
}

/// Adds `ETag` (and `Location` when given) to a response.
pub fn with_resource_headers(
    mut response: Response,
    etag: &str,
    location: Option<&str>,
) -> Response {
    if let Ok(value) = HeaderValue::from_str(etag) {
        response.headers_mut().insert(header::ETAG, value);
    }
    if let Some(location) = location
        && let Ok(value) = HeaderValue::from_str(location)
    {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// `304 Not Modified` with the current ETag.
pub fn not_modified(etag: &str) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::NOT_MODIFIED;
    with_resource_headers(response, etag, None)
}

/// The raw text of a request header.
pub fn header_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    header_text(headers, name)
}

/// The query string as name/value pairs.
pub fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    query
        .map(|query| {
            form_urlencoded::parse(query.as_bytes())
                .map(|(name, value)| (name.into_owned(), value.into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until the views reflect every write acknowledged before the call (read-your-writes).
pub async fn read_barrier(app: &AppState) -> Result<(), ScimError> {
    app.read_barrier().await.map_err(|error| {
        tracing::warn!(%error, "read barrier failed");
        ScimError::unavailable("the directory is temporarily unavailable; retry later")
    })
}

/// Storage trouble while reading a view: 503.
pub fn store_unavailable(error: impl std::fmt::Display) -> ScimError {
    tracing::warn!(%error, "view read failed");
    ScimError::unavailable("the directory is temporarily unavailable; retry later")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_names_are_routed_case_insensitively_and_trailing_slashes_dropped() {
        assert_eq!(
            normalize_path("/scim/v2/acme/users").as_deref(),
            Some("/scim/v2/acme/Users")
        );
        assert_eq!(
            normalize_path("/scim/v2/acme/Users/").as_deref(),
            Some("/scim/v2/acme/Users")
        );
        assert_eq!(
            normalize_path("/scim/v2/acme/groups/.SEARCH").as_deref(),
            Some("/scim/v2/acme/Groups/.search")
        );
        assert_eq!(
            normalize_path("/scim/v2/acme/serviceproviderconfig").as_deref(),
            Some("/scim/v2/acme/ServiceProviderConfig")
        );
        assert_eq!(
            normalize_path("/scim/v2/acme/Users/ABC-def"),
            None,
            "ids keep their case"
        );
        assert_eq!(normalize_path("/scim/v2/acme/Users"), None);
        assert_eq!(normalize_path("/metrics"), None);
    }
}
