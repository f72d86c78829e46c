//! The Shared Signals transmitter end to end: a receiver with an `ssf` token gets an access
//! token by client credentials, reads the issuer's metadata, creates a stream and receives SETs
//! that `jsonwebtoken` verifies against the served JWKS (a library roster did not write for
//! this): push with the receiver's authorization header, poll with acknowledgements and long
//! polls, verification echoing `state`, pause holding and enabling delivering, scopes enforced,
//! one stream per receiver, another receiver's stream invisible, and a role lowered announced
//! with `token-claims-change`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use roster_proto::v1 as pb;
use serde_json::{Value, json};

use crate::support::{Stack, Tenant, patch_op};

const PUSH: &str = "urn:ietf:rfc:8935";
const POLL: &str = "urn:ietf:rfc:8936";
const DISABLED: &str = "https://schemas.openid.net/secevent/risc/event-type/account-disabled";
const PURGED: &str = "https://schemas.openid.net/secevent/risc/event-type/account-purged";
const ENABLED: &str = "https://schemas.openid.net/secevent/risc/event-type/account-enabled";
const REVOKED: &str = "https://schemas.openid.net/secevent/caep/event-type/session-revoked";
const CLAIMS: &str = "https://schemas.openid.net/secevent/caep/event-type/token-claims-change";
const VERIFICATION: &str = "https://schemas.openid.net/secevent/ssf/event-type/verification";

/// A receiver's view of the transmitter: its client credentials and the issuer's metadata.
struct Client {
    http: reqwest::Client,
    base: String,
    tenant: String,
    client_id: String,
    secret: String,
    /// The public URL roster was given (`--public-url`), when not the address it is reached at.
    public_url: Option<String>,
}

impl Client {
    async fn new(stack: &Stack, tenant: &str, name: &str) -> Client {
        let issued = stack
            .admin()
            .await
            .issue_token(stack.with_admin_token(pb::IssueTokenRequest {
                tenant: tenant.into(),
                name: name.into(),
                expires_in: None,
                scope: "ssf".into(),
            }))
            .await
            .unwrap()
            .into_inner();
        Client::from_token(&stack.http_url(), tenant, &issued.secret)
    }

    /// A receiver holding `secret`, an `ssf` token of `tenant`, at roster's `base` URL.
    fn from_token(base: &str, tenant: &str, secret: &str) -> Client {
        Client {
            http: reqwest::Client::new(),
            base: base.to_owned(),
            tenant: tenant.into(),
            client_id: secret.split('_').nth(1).unwrap().to_owned(),
            secret: secret.to_owned(),
            public_url: None,
        }
    }

    /// Creates a push stream to `url` for `events`; returns its id.
    async fn push_stream(&self, token: &str, url: &str, events: &[&str]) -> String {
        let (status, stream) = self
            .call(
                token,
                reqwest::Method::POST,
                "/stream",
                Some(json!({
                    "delivery": {"method": PUSH, "endpoint_url": url,
                                 "authorization_header": "Bearer rp-secret"},
                    "events_requested": events,
                })),
            )
            .await;
        assert_eq!(status, 201, "{stream}");
        stream["stream_id"].as_str().unwrap().to_owned()
    }

    /// An access token by client credentials (HTTP Basic).
    async fn access_token(&self, scope: Option<&str>) -> String {
        let mut form = vec![("grant_type", "client_credentials")];
        if let Some(scope) = scope {
            form.push(("scope", scope));
        }
        let response = self
            .http
            .post(format!("{}/oauth/token", self.base))
            .basic_auth(&self.client_id, Some(&self.secret))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["token_type"], "Bearer");
        assert!(body["expires_in"].as_i64().unwrap() > 0);
        body["access_token"].as_str().unwrap().to_owned()
    }

    fn issuer(&self) -> String {
        let base = self.public_url.as_deref().unwrap_or(&self.base);
        format!("{base}/ssf/{}", self.tenant)
    }

    async fn call(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}/ssf/{}{path}", self.base, self.tenant))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

/// Verifies a SET as a receiver must: signature by the served JWKS, `typ`, `iss`, `aud`, no
/// `sub` or `exp`, exactly one event, a `sub_id`. Returns its claims.
fn verify(set: &str, jwks: &JwkSet, issuer: &str, audience: &str) -> Value {
    let header = jsonwebtoken::decode_header(set).unwrap();
    assert_eq!(header.typ.as_deref(), Some("secevent+jwt"));
    assert_eq!(header.alg, Algorithm::RS256);
    let jwk = jwks
        .find(header.kid.as_deref().unwrap())
        .expect("kid in JWKS");
    let key = DecodingKey::from_jwk(jwk).unwrap();
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_required_spec_claims(&["iss", "aud", "iat", "jti"]);
    validation.validate_exp = false;
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[audience]);
    let claims = jsonwebtoken::decode::<Value>(set, &key, &validation)
        .unwrap()
        .claims;
    assert!(
        claims.get("sub").is_none() && claims.get("exp").is_none(),
        "{claims}"
    );
    assert_eq!(claims["events"].as_object().unwrap().len(), 1, "{claims}");
    assert!(claims["sub_id"]["format"].is_string(), "{claims}");
    assert!(claims["txn"].is_string(), "{claims}");
    claims
}

fn event_type(claims: &Value) -> String {
    claims["events"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone()
}

/// A push receiver: checks the authorization header, keeps the SETs it got, answers 202.
#[derive(Clone)]
struct PushReceiver {
    address: SocketAddr,
    sets: Arc<Mutex<Vec<String>>>,
    status: Arc<std::sync::atomic::AtomicU16>,
    /// When set, every other request is answered 503 (each SET gets through on a retry).
    fail_every_other: Arc<std::sync::atomic::AtomicBool>,
    /// SETs accepted at most; past it, 503.
    accept_at_most: Arc<std::sync::atomic::AtomicUsize>,
    requests: Arc<std::sync::atomic::AtomicUsize>,
}

impl PushReceiver {
    async fn start(authorization: &'static str) -> PushReceiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let receiver = PushReceiver {
            address: listener.local_addr().unwrap(),
            sets: Arc::default(),
            status: Arc::new(std::sync::atomic::AtomicU16::new(202)),
            fail_every_other: Arc::default(),
            accept_at_most: Arc::new(std::sync::atomic::AtomicUsize::new(usize::MAX)),
            requests: Arc::default(),
        };
        let state = receiver.clone();
        let app = axum::Router::new().route(
            "/events",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let state = state.clone();
                async move {
                    let status = state.status.load(std::sync::atomic::Ordering::SeqCst);
                    if status != 202 {
                        return StatusCode::from_u16(status).unwrap();
                    }
                    if headers.get("authorization").and_then(|v| v.to_str().ok())
                        != Some(authorization)
                    {
                        return StatusCode::UNAUTHORIZED;
                    }
                    assert_eq!(headers["content-type"], "application/secevent+jwt");
                    let request = state
                        .requests
                        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    if state
                        .fail_every_other
                        .load(std::sync::atomic::Ordering::SeqCst)
                        && request.is_multiple_of(2)
                    {
                        return StatusCode::SERVICE_UNAVAILABLE;
                    }
                    let mut sets = state.sets.lock().unwrap();
                    if sets.len()
                        >= state
                            .accept_at_most
                            .load(std::sync::atomic::Ordering::SeqCst)
                    {
                        return StatusCode::SERVICE_UNAVAILABLE;
                    }
                    sets.push(String::from_utf8(body.to_vec()).unwrap());
                    StatusCode::ACCEPTED
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        receiver
    }

    fn url(&self) -> String {
        format!("http://{}/events", self.address)
    }

    async fn wait_for(&self, count: usize) -> Vec<String> {
        for _ in 0..400 {
            let sets = self.sets.lock().unwrap().clone();
            if sets.len() >= count {
                return sets;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "waited for {count} SETs, got {}",
            self.sets.lock().unwrap().len()
        );
    }
}

async fn jwks(client: &Client) -> JwkSet {
    let metadata: Value = client
        .http
        .get(format!(
            "{}/.well-known/ssf-configuration/ssf/{}",
            client.base, client.tenant
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(metadata["jwks_uri"], format!("{}/jwks", client.issuer()));
    client
        .http
        .get(format!("{}/ssf/{}/jwks", client.base, client.tenant))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn deactivate(tenant: &Tenant, user: &str) {
    tenant
        .patch(
            &format!("/Users/{user}"),
            &patch_op(json!([{"op": "replace", "value": {"active": false}}])),
        )
        .await
        .expect(200);
}

async fn stack() -> Stack {
    Stack::start_with(|config| {
        config.webhooks.retry_schedule = vec![Duration::from_millis(100); 3];
        config.webhooks.timeout = Duration::from_secs(5);
    })
    .await
}

#[tokio::test]
async fn metadata_and_client_credentials_follow_ssf_and_oauth() {
    let stack = stack().await;
    let acme = stack.tenant("acme").await;
    let client = Client::new(&stack, "acme", "receiver").await;
    let metadata: Value = client
        .http
        .get(format!(
            "{}/.well-known/ssf-configuration/ssf/acme",
            client.base
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(metadata["spec_version"], "1_0");
    assert_eq!(metadata["issuer"], client.issuer());
    assert_eq!(metadata["default_subjects"], "ALL");
    assert_eq!(metadata["delivery_methods_supported"], json!([PUSH, POLL]));
    assert_eq!(
        metadata["authorization_schemes"],
        json!([{"spec_urn": "urn:ietf:rfc:6749"}])
    );
    assert_eq!(
        metadata["configuration_endpoint"],
        format!("{}/stream", client.issuer())
    );
    let unknown = client
        .http
        .get(format!(
            "{}/.well-known/ssf-configuration/ssf/nobody",
            client.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);

    // Form credentials work as Basic does; a wrong secret, a SCIM token, a bad grant do not.
    let form = |id: &str, secret: &str| {
        vec![
            ("grant_type".to_owned(), "client_credentials".to_owned()),
            ("client_id".to_owned(), id.to_owned()),
            ("client_secret".to_owned(), secret.to_owned()),
        ]
    };
    let post = |form: Vec<(String, String)>| {
        client
            .http
            .post(format!("{}/oauth/token", client.base))
            .form(&form)
            .send()
    };
    assert_eq!(
        post(form(&client.client_id, &client.secret))
            .await
            .unwrap()
            .status(),
        200
    );
    let wrong = post(form(&client.client_id, &format!("{}x", client.secret)))
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert_eq!(
        wrong.json::<Value>().await.unwrap()["error"],
        "invalid_client"
    );
    let scim_id = acme.token.split('_').nth(1).unwrap().to_owned();
    let scim = post(form(&scim_id, &acme.token)).await.unwrap();
    assert_eq!(scim.status(), 400);
    assert_eq!(
        scim.json::<Value>().await.unwrap()["error"],
        "unauthorized_client"
    );
    let mut bad_grant = form(&client.client_id, &client.secret);
    bad_grant[0].1 = "password".into();
    let bad_grant = post(bad_grant).await.unwrap();
    assert_eq!(
        bad_grant.json::<Value>().await.unwrap()["error"],
        "unsupported_grant_type"
    );

    // Scopes: a read-only token reads but does not manage; no token, or another tenant's, is 401.
    let read_only = client.access_token(Some("ssf.read")).await;
    let (status, streams) = client
        .call(&read_only, reqwest::Method::GET, "/stream", None)
        .await;
    assert_eq!((status, streams), (200, json!([])));
    let (status, error) = client
        .call(
            &read_only,
            reqwest::Method::POST,
            "/stream",
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 403, "{error}");
    let (status, _) = client
        .call("nonsense", reqwest::Method::GET, "/stream", None)
        .await;
    assert_eq!(status, 401);
    stack.tenant("globex").await;
    let manage = client.access_token(None).await;
    let (status, _) = client
        .http
        .get(format!("{}/ssf/globex/stream", client.base))
        .bearer_auth(&manage)
        .send()
        .await
        .map(|response| (response.status().as_u16(), ()))
        .unwrap();
    assert_eq!(status, 401);
    // The SCIM token cannot reach stream management either.
    let (status, _) = client
        .call(&acme.token, reqwest::Method::GET, "/stream", None)
        .await;
    assert_eq!(status, 401);

    // `securityEvents` (RFC 9967) is in /ServiceProviderConfig once a stream receives SCIM
    // events, not before (strict SCIM clients refuse attributes RFC 7643 did not define).
    let config = acme.get("/ServiceProviderConfig").await.expect(200);
    assert!(config.get("securityEvents").is_none(), "{config}");
    let (status, _) = client
        .call(
            &manage,
            reqwest::Method::POST,
            "/stream",
            Some(json!({"events_requested": ["urn:ietf:params:scim:event:prov:delete"]})),
        )
        .await;
    assert_eq!(status, 201);
    let config = acme.get("/ServiceProviderConfig").await.expect(200);
    assert_eq!(config["securityEvents"]["asyncRequest"], "none", "{config}");
}

#[tokio::test]
async fn a_push_stream_delivers_verified_sets_for_deactivation_and_deletion() {
    let stack = stack().await;
    let acme = stack.tenant("acme").await;
    let client = Client::new(&stack, "acme", "rp").await;
    let token = client.access_token(None).await;
    let receiver = PushReceiver::start("Bearer rp-secret").await;
    let (status, stream) = client
        .call(
            &token,
            reqwest::Method::POST,
            "/stream",
            Some(json!({
                "delivery": {"method": PUSH, "endpoint_url": receiver.url(),
                             "authorization_header": "Bearer rp-secret"},
                "events_requested": [DISABLED, PURGED, REVOKED, ENABLED, "urn:example:unknown"],
                "description": "relying party",
            })),
        )
        .await;
    assert_eq!(status, 201, "{stream}");
    let stream_id = stream["stream_id"].as_str().unwrap().to_owned();
    assert_eq!(stream["iss"], client.issuer());
    assert_eq!(stream["aud"], client.client_id);
    assert_eq!(
        stream["events_delivered"],
        json!([DISABLED, ENABLED, PURGED, REVOKED])
    );
    assert!(stream["delivery"].get("authorization_header").is_none());
    // One stream per receiver.
    let (status, _) = client
        .call(&token, reqwest::Method::POST, "/stream", Some(json!({})))
        .await;
    assert_eq!(status, 409);
    // Another receiver of the tenant does not see it.
    let other = Client::new(&stack, "acme", "other").await;
    let other_token = other.access_token(None).await;
    let (status, _) = other
        .call(
            &other_token,
            reqwest::Method::GET,
            &format!("/stream?stream_id={stream_id}"),
            None,
        )
        .await;
    assert_eq!(status, 404);

    // Verification echoes the state; a second one at once is 429.
    let (status, _) = client
        .call(
            &token,
            reqwest::Method::POST,
            "/verify",
            Some(json!({"stream_id": stream_id, "state": "s-1"})),
        )
        .await;
    assert_eq!(status, 204);
    let (status, _) = client
        .call(
            &token,
            reqwest::Method::POST,
            "/verify",
            Some(json!({"stream_id": stream_id})),
        )
        .await;
    assert_eq!(status, 429);

    let alice = acme
        .post(
            "/Users",
            &json!({"userName": "alice", "emails": [
                {"value": "alice@home.example", "type": "home"},
                {"value": "alice@example.com", "primary": true}]}),
        )
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    deactivate(&acme, &alice).await;
    acme.delete(&format!("/Users/{alice}")).await.expect(204);

    let jwks = jwks(&client).await;
    receiver.wait_for(5).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sets = receiver.sets.lock().unwrap().clone();
    let claims: Vec<Value> = sets
        .iter()
        .map(|set| verify(set, &jwks, &client.issuer(), &client.client_id))
        .collect();
    let types: Vec<String> = claims.iter().map(event_type).collect();
    assert_eq!(
        types,
        vec![VERIFICATION, DISABLED, REVOKED, PURGED, REVOKED],
        "{claims:?}"
    );
    assert_eq!(claims[0]["events"][VERIFICATION]["state"], "s-1");
    assert_eq!(
        claims[0]["sub_id"],
        json!({"format": "opaque", "id": stream_id})
    );
    for claim in &claims[1..] {
        assert_eq!(
            claim["sub_id"],
            json!({"format": "email", "email": "alice@example.com"})
        );
    }
    // The SETs about one event share its txn; every jti differs.
    assert_eq!(claims[1]["txn"], claims[2]["txn"]);
    assert_ne!(claims[2]["txn"], claims[3]["txn"]);
    let revoked = &claims[2]["events"][REVOKED];
    assert_eq!(revoked["initiating_entity"], "admin");
    assert!(!revoked["reason_admin"]["en"].as_str().unwrap().is_empty());

    // Paused: held; enabled again: delivered, nothing lost.
    let (status, paused) = client
        .call(
            &token,
            reqwest::Method::POST,
            "/status",
            Some(json!({"stream_id": stream_id, "status": "paused"})),
        )
        .await;
    assert_eq!((status, paused["status"].clone()), (200, json!("paused")));
    let bob = acme.create_user("bob").await;
    deactivate(&acme, &bob).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.sets.lock().unwrap().len(), 5);
    let (status, _) = client
        .call(
            &token,
            reqwest::Method::POST,
            "/status",
            Some(json!({"stream_id": stream_id, "status": "enabled"})),
        )
        .await;
    assert_eq!(status, 200);
    let sets = receiver.wait_for(7).await;
    let bob_claims = verify(&sets[5], &jwks, &client.issuer(), &client.client_id);
    assert_eq!(event_type(&bob_claims), DISABLED);
    // bob has no email: the subject is his id.
    assert_eq!(bob_claims["sub_id"], json!({"format": "opaque", "id": bob}));

    // Disabled: nothing held; events while disabled never arrive.
    client
        .call(
            &token,
            reqwest::Method::POST,
            "/status",
            Some(json!({"stream_id": stream_id, "status": "disabled"})),
        )
        .await;
    let carol = acme.create_user("carol").await;
    deactivate(&acme, &carol).await;
    client
        .call(
            &token,
            reqwest::Method::POST,
            "/status",
            Some(json!({"stream_id": stream_id, "status": "enabled"})),
        )
        .await;
    let dave = acme.create_user("dave").await;
    deactivate(&acme, &dave).await;
    let sets = receiver.wait_for(9).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let later: Vec<Value> = receiver.sets.lock().unwrap()[7..]
        .iter()
        .map(|set| verify(set, &jwks, &client.issuer(), &client.client_id))
        .collect();
    assert_eq!(later.len(), 2, "{later:?}");
    assert!(
        later
            .iter()
            .all(|claims| claims["sub_id"]["id"] == dave.as_str()),
        "{sets:?}"
    );

    // Deleted: 204, then 404.
    let (status, _) = client
        .call(
            &token,
            reqwest::Method::DELETE,
            &format!("/stream?stream_id={stream_id}"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, _) = client
        .call(
            &token,
            reqwest::Method::GET,
            &format!("/status?stream_id={stream_id}"),
            None,
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_poll_stream_resends_until_acknowledged_and_long_polls() {
    let stack = stack().await;
    let acme = stack.tenant("acme").await;
    let client = Client::new(&stack, "acme", "poller").await;
    let token = client.access_token(None).await;
    // No delivery: poll, as SSF says.
    let (status, stream) = client
        .call(
            &token,
            reqwest::Method::POST,
            "/stream",
            Some(json!({"events_requested": [DISABLED]})),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(stream["delivery"]["method"], POLL);
    let endpoint = stream["delivery"]["endpoint_url"]
        .as_str()
        .unwrap()
        .to_owned();
    let poll = |body: Value| {
        let request = client.http.post(&endpoint).bearer_auth(&token).json(&body);
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200);
            response.json::<Value>().await.unwrap()
        }
    };
    let empty = poll(json!({"returnImmediately": true})).await;
    assert_eq!(empty, json!({"sets": {}, "moreAvailable": false}));

    let alice = acme.create_user("alice").await;
    deactivate(&acme, &alice).await;
    let bob = acme.create_user("bob").await;
    deactivate(&acme, &bob).await;
    let first = poll(json!({"returnImmediately": true, "maxEvents": 1})).await;
    let sets = first["sets"].as_object().unwrap();
    assert_eq!(sets.len(), 1, "{first}");
    assert_eq!(first["moreAvailable"], true);
    let jwks = jwks(&client).await;
    let (first_jti, first_set) = sets.iter().next().unwrap();
    let claims = verify(
        first_set.as_str().unwrap(),
        &jwks,
        &client.issuer(),
        &client.client_id,
    );
    assert_eq!(claims["sub_id"]["id"], alice.as_str());
    assert_eq!(&claims["jti"], first_jti);
    // Not acknowledged: it comes back, the same.
    let again = poll(json!({"returnImmediately": true})).await;
    assert_eq!(again["sets"][first_jti], *first_set);
    assert_eq!(again["sets"].as_object().unwrap().len(), 2);
    // Acknowledged: gone; the other stays until acknowledged too.
    let after_ack = poll(json!({"returnImmediately": true, "ack": [first_jti]})).await;
    let left = after_ack["sets"].as_object().unwrap();
    assert_eq!(left.len(), 1);
    assert!(!left.contains_key(first_jti));
    let second_jti = left.keys().next().unwrap().clone();
    let acked = poll(json!({"returnImmediately": true, "ack": [second_jti], "maxEvents": 0})).await;
    assert_eq!(acked["sets"], json!({}));
    let none = poll(json!({"returnImmediately": true})).await;
    assert_eq!(none["sets"], json!({}));

    // A long poll waits for the next event.
    let waiting = tokio::spawn(poll(json!({})));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiting.is_finished());
    let carol = acme.create_user("carol").await;
    deactivate(&acme, &carol).await;
    let answered = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .unwrap()
        .unwrap();
    let sets = answered["sets"].as_object().unwrap();
    assert_eq!(sets.len(), 1, "{answered}");
    let claims = verify(
        sets.values().next().unwrap().as_str().unwrap(),
        &jwks,
        &client.issuer(),
        &client.client_id,
    );
    assert_eq!(claims["sub_id"]["id"], carol.as_str());

    // Malformed requests are 400 with the SSF error form.
    let bad = client
        .http
        .post(&endpoint)
        .bearer_auth(&token)
        .json(&json!({"maxEvents": "ten"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert_eq!(bad.json::<Value>().await.unwrap()["err"], "invalid_request");
}

#[tokio::test]
async fn a_lowered_role_is_announced_with_the_new_claims() {
    let stack = stack().await;
    let acme = stack.tenant("acme").await;
    let alice = acme.create_user("alice").await;
    let admins = acme.create_group("Admins", &[alice.as_str()]).await;
    stack
        .admin()
        .await
        .set_role_mapping(stack.with_admin_token(pb::SetRoleMappingRequest {
            tenant: "acme".into(),
            group: "admins".into(),
            role: pb::Role::Admin.into(),
        }))
        .await
        .unwrap();
    let client = Client::new(&stack, "acme", "poller").await;
    let token = client.access_token(None).await;
    let (status, stream) = client
        .call(
            &token,
            reqwest::Method::POST,
            "/stream",
            Some(json!({"events_requested": [CLAIMS]})),
        )
        .await;
    assert_eq!(status, 201);
    let endpoint = stream["delivery"]["endpoint_url"]
        .as_str()
        .unwrap()
        .to_owned();
    acme.patch(
        &format!("/Groups/{admins}"),
        &patch_op(json!([{"op": "remove", "path": format!("members[value eq \"{alice}\"]")}])),
    )
    .await
    .expect(204);
    let mut sets = serde_json::Map::new();
    for _ in 0..50 {
        let answer: Value = client
            .http
            .post(&endpoint)
            .bearer_auth(&token)
            .json(&json!({"returnImmediately": true}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        sets = answer["sets"].as_object().unwrap().clone();
        if !sets.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(sets.len(), 1, "{sets:?}");
    let jwks = jwks(&client).await;
    let claims = verify(
        sets.values().next().unwrap().as_str().unwrap(),
        &jwks,
        &client.issuer(),
        &client.client_id,
    );
    let change = &claims["events"][CLAIMS];
    assert_eq!(change["claims"]["org_role"], "read", "{claims}");
    assert_eq!(claims["sub_id"]["id"], alice.as_str());
}

const STREAM_UPDATED: &str = "https://schemas.openid.net/secevent/ssf/event-type/stream-updated";

#[tokio::test]
async fn admins_see_streams_change_their_status_rotate_the_key_and_delete_them() {
    let stack = stack().await;
    stack.tenant("acme").await;
    let client = Client::new(&stack, "acme", "poller").await;
    let token = client.access_token(None).await;
    let (_, stream) = client
        .call(
            &token,
            reqwest::Method::POST,
            "/stream",
            Some(json!({"events_requested": [DISABLED]})),
        )
        .await;
    let stream_id = stream["stream_id"].as_str().unwrap().to_owned();
    let endpoint = stream["delivery"]["endpoint_url"]
        .as_str()
        .unwrap()
        .to_owned();
    let poll = |ack: Vec<String>| {
        let request = client
            .http
            .post(&endpoint)
            .bearer_auth(&token)
            .json(&json!({"returnImmediately": true, "ack": ack}));
        async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let mut admin = stack.admin().await;
    let listed = admin
        .list_ssf_streams(stack.with_admin_token(pb::ListSsfStreamsRequest {
            tenant: "acme".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.streams.len(), 1);
    let info = &listed.streams[0];
    assert_eq!(info.stream_id, stream_id);
    assert_eq!(info.receiver, client.client_id);
    assert_eq!(info.receiver_name, "poller");
    assert_eq!(info.delivery_method, "poll");
    assert_eq!(info.endpoint_url, endpoint);
    assert_eq!(info.events_delivered, vec![DISABLED.to_owned()]);

    // An admin's change is announced to the receiver with stream-updated.
    let disabled = admin
        .set_ssf_stream_status(stack.with_admin_token(pb::SetSsfStreamStatusRequest {
            tenant: "acme".into(),
            stream_id: stream_id.clone(),
            status: pb::SsfStreamStatus::Disabled.into(),
            reason: "security review".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(disabled.status, i32::from(pb::SsfStreamStatus::Disabled));
    let jwks_before = jwks(&client).await;
    let answer = poll(Vec::new()).await;
    let sets = answer["sets"].as_object().unwrap().clone();
    assert_eq!(sets.len(), 1, "{answer}");
    let claims = verify(
        sets.values().next().unwrap().as_str().unwrap(),
        &jwks_before,
        &client.issuer(),
        &client.client_id,
    );
    assert_eq!(claims["events"][STREAM_UPDATED]["status"], "disabled");
    assert_eq!(
        claims["events"][STREAM_UPDATED]["reason"],
        "security review"
    );
    assert_eq!(
        claims["sub_id"],
        json!({"format": "opaque", "id": stream_id})
    );
    poll(sets.keys().cloned().collect()).await;

    // A rotated key signs from now on; both are published for the overlap.
    let old_kid = jwks_before.keys[0].common.key_id.clone().unwrap();
    let rotated = admin
        .rotate_ssf_signing_key(
            stack.with_admin_token(pb::RotateSsfSigningKeyRequest { overlap: None }),
        )
        .await
        .unwrap()
        .into_inner();
    assert_ne!(rotated.key_id, old_kid);
    let jwks_after = jwks(&client).await;
    assert_eq!(jwks_after.keys.len(), 2);
    admin
        .set_ssf_stream_status(stack.with_admin_token(pb::SetSsfStreamStatusRequest {
            tenant: "acme".into(),
            stream_id: stream_id.clone(),
            status: pb::SsfStreamStatus::Enabled.into(),
            reason: String::new(),
        }))
        .await
        .unwrap();
    let answer = poll(Vec::new()).await;
    let set = answer["sets"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        jsonwebtoken::decode_header(&set).unwrap().kid,
        Some(rotated.key_id.clone())
    );
    let claims = verify(&set, &jwks_after, &client.issuer(), &client.client_id);
    assert_eq!(claims["events"][STREAM_UPDATED]["status"], "enabled");

    // Deleted by an admin: gone for its receiver.
    admin
        .delete_ssf_stream(stack.with_admin_token(pb::SsfStreamRequest {
            tenant: "acme".into(),
            stream_id: stream_id.clone(),
        }))
        .await
        .unwrap();
    let (status, _) = client
        .call(
            &token,
            reqwest::Method::GET,
            &format!("/stream?stream_id={stream_id}"),
            None,
        )
        .await;
    assert_eq!(status, 404);
    let missing = admin
        .delete_ssf_stream(stack.with_admin_token(pb::SsfStreamRequest {
            tenant: "acme".into(),
            stream_id,
        }))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
}

/// The user each SET names (`sub_id.id`, the users here have no email), in arrival order.
fn subjects(sets: &[String], jwks: &JwkSet, client: &Client) -> Vec<String> {
    sets.iter()
        .map(|set| {
            let claims = verify(set, jwks, &client.issuer(), &client.client_id);
            claims["sub_id"]["id"].as_str().unwrap().to_owned()
        })
        .collect()
}

#[tokio::test]
async fn a_receiver_down_for_a_while_gets_every_set_in_order() {
    // A schedule longer than the outage (a used-up one pauses the stream).
    let stack = Stack::start_with(|config| {
        config.webhooks.retry_schedule = vec![Duration::from_millis(100); 30];
    })
    .await;
    let acme = stack.tenant("acme").await;
    let client = Client::new(&stack, "acme", "rp").await;
    let token = client.access_token(None).await;
    let receiver = PushReceiver::start("Bearer rp-secret").await;
    receiver
        .status
        .store(503, std::sync::atomic::Ordering::SeqCst);
    client
        .push_stream(&token, &receiver.url(), &[DISABLED])
        .await;
    let mut users = Vec::new();
    for n in 0..5 {
        let user = acme.create_user(&format!("user{n}")).await;
        deactivate(&acme, &user).await;
        users.push(user);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    receiver
        .status
        .store(202, std::sync::atomic::Ordering::SeqCst);
    let sets = receiver.wait_for(5).await;
    assert_eq!(subjects(&sets, &jwks(&client).await, &client), users);
    let metrics = stack.metrics().await;
    let value = |name: &str| {
        metrics
            .lines()
            .find(|line| line.starts_with(name))
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|value| value.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    assert!(value("roster_ssf_sets_delivered_total") >= 5.0, "{metrics}");
    assert!(value("roster_ssf_failed_pushes_total") >= 1.0, "{metrics}");
    assert_eq!(value("roster_ssf_streams{status=\"enabled\"}"), 1.0);
    assert!(value("roster_ssf_delivery_seconds_count") >= 5.0);
}

#[tokio::test]
async fn a_roster_killed_mid_delivery_pushes_every_set_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let arguments = [
        "--webhook-retry-schedule",
        "50ms,100ms,200ms,400ms,800ms,1s,1s,1s",
    ];
    let mut process = crate::support::Process::spawn_with(&data_dir, &arguments).await;
    let acme = process.create_tenant(&data_dir, "acme").await;
    let issued = tokio::process::Command::new(env!("CARGO_BIN_EXE_roster"))
        .args([
            "token",
            "issue",
            "acme",
            "--scope",
            "ssf",
            "--grpc",
            &process.grpc.to_string(),
        ])
        .arg("--data-dir")
        .arg(&data_dir)
        .output()
        .await
        .unwrap();
    assert!(issued.status.success());
    let secret = String::from_utf8(issued.stdout)
        .unwrap()
        .trim()
        .lines()
        .last()
        .unwrap()
        .to_owned();
    let base = format!("http://{}", process.http);
    let client = Client::from_token(&base, "acme", &secret);
    let token = client.access_token(None).await;
    let receiver = PushReceiver::start("Bearer rp-secret").await;
    client
        .push_stream(&token, &receiver.url(), &[DISABLED])
        .await;
    // The receiver fails every other request and takes at most 5 SETs, so pushes are
    // mid-retry when roster dies, however fast it delivers.
    receiver
        .fail_every_other
        .store(true, std::sync::atomic::Ordering::SeqCst);
    receiver
        .accept_at_most
        .store(5, std::sync::atomic::Ordering::SeqCst);
    let mut users = Vec::new();
    for n in 0..30 {
        let user = acme.create_user(&format!("user{n}")).await;
        deactivate(&acme, &user).await;
        users.push(user);
    }
    receiver.wait_for(2).await;
    process.kill().await;
    assert!(
        receiver.sets.lock().unwrap().len() < 30,
        "everything went out before the kill"
    );

    let process = crate::support::Process::spawn_with(&data_dir, &arguments).await;
    receiver
        .fail_every_other
        .store(false, std::sync::atomic::Ordering::SeqCst);
    receiver
        .accept_at_most
        .store(usize::MAX, std::sync::atomic::Ordering::SeqCst);
    let client = Client::from_token(&format!("http://{}", process.http), "acme", &secret);
    let jwks = jwks(&client).await;
    let mut first_seen: Vec<String> = Vec::new();
    for _ in 0..400 {
        let sets = receiver.sets.lock().unwrap().clone();
        // The issuer is the address roster listened on then: each SET names its own.
        first_seen = Vec::new();
        for set in &sets {
            let claims = jsonwebtoken::decode::<Value>(
                set,
                &DecodingKey::from_jwk(
                    jwks.find(&jsonwebtoken::decode_header(set).unwrap().kid.unwrap())
                        .unwrap(),
                )
                .unwrap(),
                &{
                    let mut validation = Validation::new(Algorithm::RS256);
                    validation.validate_exp = false;
                    validation.validate_aud = false;
                    validation.set_required_spec_claims(&["jti"]);
                    validation
                },
            )
            .unwrap()
            .claims;
            let user = claims["sub_id"]["id"].as_str().unwrap().to_owned();
            if !first_seen.contains(&user) {
                first_seen.push(user);
            }
        }
        if first_seen.len() >= users.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Every SET arrived, first in order (repeats after the restart carry the same jti).
    assert_eq!(first_seen, users);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_nats_one_process_pushes_each_stream_polls_are_answered_by_any_and_a_stop_hands_over() {
    let nats = roster_engine::testkit::nats::NatsServer::start();
    // Processes sharing a stream share one public URL: the issuer SETs name.
    let fast = |config: &mut roster_gateway::app::Config| {
        config.webhooks.retry_schedule = vec![Duration::from_millis(50); 5];
        config.public_url = Some("https://roster.example.com".into());
    };
    let a = Stack::start_nats_with(&nats.url(), fast).await;
    let b = Stack::start_nats_with(&nats.url(), fast).await;
    let on_a = a.tenant("acme").await;
    let on_b = b.tenant_at(&on_a);
    let mut pusher = Client::new(&a, "acme", "pusher").await;
    pusher.public_url = Some("https://roster.example.com".into());
    let token = pusher.access_token(None).await;
    let receiver = PushReceiver::start("Bearer rp-secret").await;
    pusher
        .push_stream(&token, &receiver.url(), &[DISABLED])
        .await;
    // A poller whose access token from A works on B (the same derived key).
    let mut poller = Client::new(&a, "acme", "poller").await;
    poller.public_url = Some("https://roster.example.com".into());
    let poll_token = poller.access_token(None).await;
    let (_, stream) = poller
        .call(
            &poll_token,
            reqwest::Method::POST,
            "/stream",
            Some(json!({"events_requested": [DISABLED]})),
        )
        .await;
    let poll_path = format!("/poll/{}", stream["stream_id"].as_str().unwrap());
    let mut poller_on_b = Client::from_token(&b.http_url(), "acme", &poller.secret);
    poller_on_b.public_url = Some("https://roster.example.com".into());

    let mut users = Vec::new();
    for n in 0..8 {
        let tenant = if n % 2 == 0 { &on_a } else { &on_b };
        let user = tenant.create_user(&format!("user{n}")).await;
        deactivate(tenant, &user).await;
        users.push(user);
    }
    receiver.wait_for(8).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sets = receiver.sets.lock().unwrap().clone();
    // Both processes sign with the same key, published by both.
    let jwks_b = jwks(&poller_on_b).await;
    assert_eq!(
        jwks(&pusher).await.keys[0].common.key_id,
        jwks_b.keys[0].common.key_id
    );
    let jtis: std::collections::BTreeSet<String> = sets
        .iter()
        .map(|set| {
            verify(set, &jwks_b, &pusher.issuer(), &pusher.client_id)["jti"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(jtis.len(), 8, "one process pushes: no SET twice");

    // Polled on A, acknowledged on B: not answered again anywhere.
    let mut polled = serde_json::Map::new();
    for _ in 0..50 {
        let (_, answer) = poller
            .call(
                &poll_token,
                reqwest::Method::POST,
                &poll_path,
                Some(json!({"returnImmediately": true})),
            )
            .await;
        polled = answer["sets"].as_object().unwrap().clone();
        if polled.len() >= 8 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(polled.len(), 8);
    let (status, answer) = poller_on_b
        .call(
            &poll_token,
            reqwest::Method::POST,
            &poll_path,
            Some(json!({"returnImmediately": true, "ack": polled.keys().collect::<Vec<_>>()})),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["sets"], json!({}));
    let (_, answer) = poller
        .call(
            &poll_token,
            reqwest::Method::POST,
            &poll_path,
            Some(json!({"returnImmediately": true})),
        )
        .await;
    assert_eq!(answer["sets"], json!({}));

    // A stops; B takes the push stream over.
    let Stack { running, .. } = a;
    running.shutdown().await;
    for n in 8..11 {
        let user = on_b.create_user(&format!("user{n}")).await;
        deactivate(&on_b, &user).await;
        users.push(user);
    }
    let sets = receiver.wait_for(11).await;
    let mut first_seen: Vec<String> = Vec::new();
    for user in subjects(&sets, &jwks_b, &pusher) {
        if !first_seen.contains(&user) {
            first_seen.push(user);
        }
    }
    assert_eq!(first_seen, users);
}

#[tokio::test]
async fn a_user_linked_by_sso_is_named_by_issuer_and_subject() {
    let stack = stack().await;
    let acme = stack.tenant("acme").await;
    let linked = stack
        .directory()
        .await
        .jit_provision(crate::support::authorized(
            &acme.token,
            pb::JitProvisionRequest {
                tenant: "acme".into(),
                subject: "00u1ada".into(),
                email: "ada@example.com".into(),
                given_name: "Ada".into(),
                family_name: "Lovelace".into(),
                claims_json: json!({"iss": "https://acme.okta.com", "sub": "00u1ada"}).to_string(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let ada = linked.user.unwrap().id;
    let client = Client::new(&stack, "acme", "poller").await;
    let token = client.access_token(None).await;
    let (_, stream) = client
        .call(
            &token,
            reqwest::Method::POST,
            "/stream",
            Some(json!({"events_requested": [DISABLED]})),
        )
        .await;
    let endpoint = stream["delivery"]["endpoint_url"]
        .as_str()
        .unwrap()
        .to_owned();
    deactivate(&acme, &ada).await;
    // Deleted right away: the SET still names the identity the event recorded.
    acme.delete(&format!("/Users/{ada}")).await.expect(204);
    let mut sets = serde_json::Map::new();
    for _ in 0..50 {
        let answer: Value = client
            .http
            .post(&endpoint)
            .bearer_auth(&token)
            .json(&json!({"returnImmediately": true}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        sets = answer["sets"].as_object().unwrap().clone();
        if !sets.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let claims = verify(
        sets.values().next().unwrap().as_str().unwrap(),
        &jwks(&client).await,
        &client.issuer(),
        &client.client_id,
    );
    assert_eq!(
        claims["sub_id"],
        json!({"format": "iss_sub", "iss": "https://acme.okta.com", "sub": "00u1ada"})
    );
}

#[tokio::test]
async fn streams_are_updated_replaced_and_filtered_by_subject() {
    let stack = stack().await;
    let acme = stack.tenant("acme").await;
    let client = Client::new(&stack, "acme", "poller").await;
    let token = client.access_token(None).await;
    let (_, stream) = client
        .call(
            &token,
            reqwest::Method::POST,
            "/stream",
            Some(json!({"events_requested": [DISABLED, REVOKED], "description": "first"})),
        )
        .await;
    let stream_id = stream["stream_id"].as_str().unwrap().to_owned();
    let endpoint = stream["delivery"]["endpoint_url"]
        .as_str()
        .unwrap()
        .to_owned();

    // PATCH changes what it names only; PUT makes the body the whole configuration.
    let (status, patched) = client
        .call(
            &token,
            reqwest::Method::PATCH,
            "/stream",
            Some(json!({"stream_id": stream_id, "description": "second"})),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["description"], "second");
    assert_eq!(patched["events_requested"], json!([DISABLED, REVOKED]));
    let (status, replaced) = client
        .call(
            &token,
            reqwest::Method::PUT,
            "/stream",
            Some(json!({"stream_id": stream_id, "events_requested": [DISABLED]})),
        )
        .await;
    assert_eq!(status, 200, "{replaced}");
    assert!(replaced.get("description").is_none(), "{replaced}");
    assert_eq!(replaced["events_delivered"], json!([DISABLED]));
    assert_eq!(replaced["delivery"]["method"], POLL);
    // Bad requests: no stream_id, an unknown one, a bad delivery method, not JSON.
    for (body, expected) in [
        (json!({"description": "x"}), 400),
        (
            json!({"stream_id": "0197a3c4-5b6d-7e8f-9a0b-1c2d3e4f5a6b"}),
            404,
        ),
        (
            json!({"stream_id": stream_id, "delivery": {"method": "urn:example:carrier-pigeon"}}),
            400,
        ),
        (
            json!({"stream_id": stream_id, "delivery": {"method": PUSH, "endpoint_url": "ftp://x"}}),
            400,
        ),
    ] {
        let (status, error) = client
            .call(&token, reqwest::Method::PATCH, "/stream", Some(body))
            .await;
        assert_eq!(status, expected, "{error}");
        assert!(
            error["err"].is_string() && error["description"].is_string(),
            "{error}"
        );
    }
    let not_json = client
        .http
        .post(format!("{}/stream", client.issuer()))
        .bearer_auth(&token)
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 400);

    // A removed subject gets no SETs until added back.
    let alice = acme.create_user("alice").await;
    let bob = acme.create_user("bob").await;
    let subject = json!({"format": "opaque", "id": alice});
    let (status, _) = client
        .call(
            &token,
            reqwest::Method::POST,
            "/subjects:remove",
            Some(json!({"stream_id": stream_id, "subject": subject})),
        )
        .await;
    assert_eq!(status, 204);
    deactivate(&acme, &alice).await;
    deactivate(&acme, &bob).await;
    let (status, _) = client
        .call(
            &token,
            reqwest::Method::POST,
            "/subjects:add",
            Some(json!({"stream_id": stream_id, "subject": subject})),
        )
        .await;
    assert_eq!(status, 200);
    acme.patch(
        &format!("/Users/{alice}"),
        &patch_op(json!([{"op": "replace", "value": {"active": true}}])),
    )
    .await
    .expect(200);
    deactivate(&acme, &alice).await;
    let jwks = jwks(&client).await;
    let mut named = Vec::new();
    for _ in 0..50 {
        let answer: Value = client
            .http
            .post(&endpoint)
            .bearer_auth(&token)
            .json(&json!({"returnImmediately": true}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let sets = answer["sets"].as_object().unwrap();
        named = sets
            .values()
            .map(|set| {
                verify(
                    set.as_str().unwrap(),
                    &jwks,
                    &client.issuer(),
                    &client.client_id,
                )["sub_id"]["id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        if named.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    named.sort();
    let mut expected = vec![alice.clone(), bob.clone()];
    expected.sort();
    // bob's deactivation, and alice's second one (after she was added back): not her first.
    assert_eq!(named, expected);
}
