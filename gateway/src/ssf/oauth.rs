//! OAuth 2.0 client credentials (RFC 6749 §4.4) for SSF receivers. The client id is an `ssf`
//! token's id (the part between `rst_` and the next `_`), the client secret the whole token, sent
//! with HTTP Basic (§2.3.1) or as form fields. The answer is a short-lived bearer token (a JWT
//! MACed with a key derived from the deployment's webhook key, so every process accepts it)
//! with the scopes `ssf.manage` and `ssf.read`, or those asked for. Each use checks again that
//! the client's token is valid: revoking it ends its access tokens at once.

use std::collections::BTreeSet;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use roster_engine::domain::{TenantName, TokenId, TokenRecord, TokenScope};
use serde::{Deserialize, Serialize};

use crate::auth;
use crate::state::AppState;

/// How long an access token lasts.
pub const ACCESS_TOKEN_SECONDS: i64 = 900;
/// Longest form accepted at the token endpoint.
const FORM_MAX: usize = 8 * 1024;
pub const SCOPE_MANAGE: &str = "ssf.manage";
pub const SCOPE_READ: &str = "ssf.read";

/// What an access token says.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The client: the `ssf` token's id.
    pub sub: String,
    pub tenant: String,
    /// Space-separated scopes.
    pub scope: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
}

impl AccessClaims {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scope.split(' ').any(|granted| granted == scope)
    }
}

/// An RFC 6749 §5.2 error.
fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let mut response = (
        status,
        axum::Json(serde_json::json!({"error": error, "error_description": description})),
    )
        .into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if status == StatusCode::UNAUTHORIZED {
        headers.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"roster\""),
        );
    }
    response
}

fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Mints an access token for `client` of `tenant` with `scopes`.
pub fn mint(ssf: &super::Ssf, tenant: &TenantName, client: &TokenId, scopes: &str) -> String {
    let now = unix_now();
    let claims = AccessClaims {
        sub: client.0.clone(),
        tenant: tenant.to_string(),
        scope: scopes.to_owned(),
        iat: now,
        exp: now + ACCESS_TOKEN_SECONDS,
        jti: uuid::Uuid::now_v7().to_string(),
    };
    // HS256 over a serializable struct with a 32-byte key cannot fail.
    let Ok(key) = EncodingKey::from_secret(&ssf.access_token_key) else {
        return String::new();
    };
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key).unwrap_or_default()
}

/// The claims of a valid, unexpired access token.
pub fn verify(ssf: &super::Ssf, token: &str) -> Option<AccessClaims> {
    let key = DecodingKey::from_secret(&ssf.access_token_key).ok()?;
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = 0;
    validation.set_required_spec_claims(&["exp", "sub"]);
    jsonwebtoken::decode::<AccessClaims>(token, &key, &validation)
        .ok()
        .map(|data| data.claims)
}

/// The client's credentials: HTTP Basic (each part form-urlencoded) or form fields.
fn credentials(headers: &HeaderMap, form: &[(String, String)]) -> Option<(String, String)> {
    if let Some(basic) = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            let (scheme, rest) = value.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("basic").then_some(rest.trim())
        })
    {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(basic)
            .ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (id, secret) = decoded.split_once(':')?;
        let unescape = |part: &str| {
            form_urlencoded::parse(format!("x={part}").as_bytes())
                .next()
                .map(|(_, value)| value.into_owned())
        };
        return Some((unescape(id)?, unescape(secret)?));
    }
    let field = |name: &str| {
        form.iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    };
    Some((field("client_id")?, field("client_secret")?))
}

/// The token record `secret` proves, if it is a valid `ssf` token named `client_id`, in `tenant`
/// or (no tenant given) in whichever tenant holds it.
async fn client(
    state: &AppState,
    tenant: Option<&TenantName>,
    client_id: &str,
    secret: &str,
) -> Result<Option<(TenantName, TokenRecord)>, Response> {
    let Some(presented) = auth::parse_token(secret) else {
        return Ok(None);
    };
    if presented.id.0 != client_id {
        return Ok(None);
    }
    let now = state.clock.now();
    let unavailable = |error: roster_engine::engine::ExecuteError| {
        tracing::warn!(%error, "SSF token endpoint: reading tokens failed");
        oauth_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "the directory is temporarily unavailable; retry later",
        )
    };
    let tenants: Vec<TenantName> = match tenant {
        Some(tenant) => vec![tenant.clone()],
        None => state
            .engine
            .aggregate()
            .tenants()
            .map_err(|error| unavailable(roster_engine::engine::ExecuteError::Store(error)))?
            .into_iter()
            .map(|(name, _)| name)
            .collect(),
    };
    for tenant in tenants {
        if tenant.is_system() || tenant.is_branch() {
            continue;
        }
        if let Some(record) = state
            .authenticate_fresh(&tenant, &presented, now)
            .await
            .map_err(unavailable)?
        {
            return Ok(Some((tenant, record)));
        }
    }
    Ok(None)
}

/// `POST /oauth/token`: the tenant is the one holding the client's token.
pub async fn token(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    issue(state, None, headers, body).await
}

/// `POST /ssf/{tenant}/oauth/token`: the same, for one tenant.
pub async fn tenant_token(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(tenant) = TenantName::parse(&tenant) else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "unknown client or wrong secret",
        );
    };
    issue(state, Some(tenant), headers, body).await
}

async fn issue(
    state: AppState,
    tenant: Option<TenantName>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if body.len() > FORM_MAX {
        return oauth_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request",
            "the form is too large",
        );
    }
    let form: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let field = |name: &str| {
        form.iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };
    match field("grant_type") {
        Some("client_credentials") => {}
        Some(_) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "only grant_type=client_credentials is supported",
            );
        }
        None => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "grant_type is required (client_credentials)",
            );
        }
    }
    let Some((client_id, secret)) = credentials(&headers, &form) else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client credentials are required: HTTP Basic, or client_id and client_secret",
        );
    };
    let found = match client(&state, tenant.as_ref(), &client_id, &secret).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let Some((tenant, record)) = found else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "unknown client or wrong secret",
        );
    };
    if record.scope != TokenScope::Ssf {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            "this token has the scim scope; a Shared Signals receiver needs an ssf token \
             (roster token issue TENANT --scope ssf)",
        );
    }
    let granted: BTreeSet<&str> = match field("scope").map(str::trim) {
        None | Some("") => [SCOPE_MANAGE, SCOPE_READ].into(),
        Some(asked) => {
            let mut granted = BTreeSet::new();
            for scope in asked.split(' ').filter(|scope| !scope.is_empty()) {
                match scope {
                    SCOPE_MANAGE => granted.insert(SCOPE_MANAGE),
                    SCOPE_READ => granted.insert(SCOPE_READ),
                    _ => {
                        return oauth_error(
                            StatusCode::BAD_REQUEST,
                            "invalid_scope",
                            "the scopes are ssf.manage and ssf.read",
                        );
                    }
                };
            }
            granted
        }
    };
    let scope = granted.into_iter().collect::<Vec<_>>().join(" ");
    state
        .note_token_use(&tenant, &record, state.clock.now())
        .await;
    let access_token = mint(&state.ssf, &tenant, &record.id, &scope);
    let mut response = axum::Json(serde_json::json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": ACCESS_TOKEN_SECONDS,
        "scope": scope,
    }))
    .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_tokens_verify_only_with_the_deployment_key() {
        let dir = tempfile::tempdir().unwrap();
        let keys = crate::webhooks::WebhookKeys::from_bytes([5; 32]);
        let ssf = super::super::Ssf::new(super::super::SigningKeys::local(dir.path()), &keys);
        let tenant = TenantName::parse("acme").unwrap();
        let token = mint(&ssf, &tenant, &TokenId("abc".into()), "ssf.read");
        let claims = verify(&ssf, &token).unwrap();
        assert_eq!(claims.sub, "abc");
        assert_eq!(claims.tenant, "acme");
        assert!(claims.has_scope(SCOPE_READ));
        assert!(!claims.has_scope(SCOPE_MANAGE));
        let other = super::super::Ssf::new(
            super::super::SigningKeys::local(dir.path()),
            &crate::webhooks::WebhookKeys::from_bytes([6; 32]),
        );
        assert!(verify(&other, &token).is_none());
        assert!(verify(&ssf, "not a token").is_none());
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let mut headers = HeaderMap::new();
        let basic = base64::engine::general_purpose::STANDARD.encode("abc:rst_abc_s%2Fx");
        headers.insert(
            header::AUTHORIZATION,
            format!("Basic {basic}").parse().unwrap(),
        );
        assert_eq!(
            credentials(&headers, &[]),
            Some(("abc".to_owned(), "rst_abc_s/x".to_owned()))
        );
        let form = vec![
            ("client_id".to_owned(), "abc".to_owned()),
            ("client_secret".to_owned(), "rst_abc_s".to_owned()),
        ];
        assert_eq!(
            credentials(&HeaderMap::new(), &form),
            Some(("abc".to_owned(), "rst_abc_s".to_owned()))
        );
    }
}
