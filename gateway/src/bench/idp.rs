//! `roster bench idp`: realistic identity-provider traffic against a running roster, each phase
//! replayed against a bare echo server in the same run (the ceiling: an axum handler that parses
//! and echoes the same JSON bodies and stores nothing), so every figure is also a fraction of
//! what the machine and the HTTP stack allow.
//!
//! Phases, as Entra ID and Okta drive a SCIM app:
//! 1. initial sync of users: `externalId eq` lookup (no match), then create;
//! 2. initial sync of groups: create empty, then add members by PATCH in batches;
//! 3. steady churn for a while: profile updates (one `Replace` per attribute, Entra-style),
//!    deactivations and reactivations, membership moves (remove from one group, add to another);
//! 4. `userName eq` lookups;
//! 5. a read mix: filters, GETs by id, group GETs without members, list pages.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use super::{Report, Target};

/// The shape of an IdP run.
#[derive(Clone, Debug)]
pub struct IdpPlan {
    pub users: usize,
    pub groups: usize,
    /// Members added per group PATCH during the initial sync.
    pub members_per_patch: usize,
    pub clients: usize,
    /// Duration of each timed phase (churn, lookups, read mix).
    pub phase: Duration,
}

/// One phase against roster and against the echo ceiling.
#[derive(Debug)]
pub struct PhaseReport {
    pub roster: Report,
    pub ceiling: Report,
}

impl PhaseReport {
    /// roster's throughput as a fraction of the ceiling's.
    pub fn fraction(&self) -> f64 {
        self.roster.per_second() / self.ceiling.per_second().max(f64::EPSILON)
    }

    pub fn summary(&self) -> String {
        format!(
            "{}\n    ceiling {:.0}/s (p99 {:.2} ms): roster reaches {:.0}% of it",
            self.roster.summary(),
            self.ceiling.per_second(),
            self.ceiling.percentile(0.99).as_secs_f64() * 1000.0,
            self.fraction() * 100.0
        )
    }
}

/// Where requests go: roster, or the echo server standing in for it.
#[derive(Clone)]
struct Endpoint {
    base_url: String,
    token: String,
    /// The echo server returns no ids: requests that need one use ids made up here.
    echo: bool,
}

/// One request of the mix.
struct Call {
    method: Method,
    path: String,
    body: Option<Value>,
}

impl Call {
    fn get(path: String) -> Self {
        Self {
            method: Method::GET,
            path,
            body: None,
        }
    }

    fn with_body(method: Method, path: String, body: Value) -> Self {
        Self {
            method,
            path,
            body: Some(body),
        }
    }
}

/// Latencies and outcomes gathered by one client.
#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    errors: BTreeMap<String, usize>,
}

impl Tally {
    fn merge(reports: Vec<Tally>, name: String, elapsed: Duration) -> Report {
        let mut report = Report {
            name,
            elapsed,
            ..Report::default()
        };
        for tally in reports {
            report.latencies.extend(tally.latencies);
            for (status, count) in tally.errors {
                *report.errors.entry(status).or_default() += count;
            }
        }
        report
    }
}

/// Sends one call; records its latency, or its status as an error. Returns the JSON body of a
/// success.
async fn call(
    http: &reqwest::Client,
    endpoint: &Endpoint,
    call: Call,
    tally: &mut Tally,
) -> Option<Value> {
    let mut request = http
        .request(call.method, format!("{}{}", endpoint.base_url, call.path))
        .bearer_auth(&endpoint.token);
    if let Some(body) = &call.body {
        request = request
            .header(header::CONTENT_TYPE, "application/scim+json")
            .body(body.to_string());
    }
    let started = Instant::now();
    match request.send().await {
        Ok(response) => {
            let status = response.status();
            let bytes = response.bytes().await.unwrap_or_default();
            if status.is_success() {
                tally.latencies.push(started.elapsed());
                serde_json::from_slice(&bytes).ok()
            } else {
                // The SCIM error's detail says why (a 503's reason, a 409's conflict).
                let detail = serde_json::from_slice::<Value>(&bytes)
                    .ok()
                    .and_then(|body| body["detail"].as_str().map(str::to_owned))
                    .unwrap_or_default();
                let key = format!(
                    "{} {}",
                    status.as_u16(),
                    detail.chars().take(80).collect::<String>()
                );
                *tally.errors.entry(key.trim_end().to_owned()).or_default() += 1;
                None
            }
        }
        Err(error) => {
            let kind = if error.is_connect() {
                "connect"
            } else {
                "transport"
            };
            *tally.errors.entry(kind.to_owned()).or_default() += 1;
            None
        }
    }
}

fn user_body(prefix: &str, n: usize) -> Value {
    json!({
        "schemas": [
            "urn:ietf:params:scim:schemas:core:2.0:User",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
        ],
        "externalId": format!("{prefix}-ext-{n}"),
        "userName": format!("{prefix}-{n}"),
        "active": true,
        "displayName": format!("Bench User {n}"),
        "emails": [{"primary": true, "type": "work", "value": format!("{prefix}-{n}@bench.example")}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": format!("Bench User {n}"), "familyName": format!("User {n}"), "givenName": "Bench"},
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": format!("D{}", n % 20)},
        "roles": []
    })
}

fn patch(operations: Value) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": operations,
    })
}

fn filter_path(resource: &str, filter: &str) -> String {
    let encoded: String = form_urlencoded::byte_serialize(filter.as_bytes()).collect();
    format!("/{resource}?filter={encoded}")
}

/// The directory a run builds, as the load generator knows it.
#[derive(Clone, Default)]
struct Directory {
    prefix: String,
    user_ids: Vec<String>,
    group_ids: Vec<String>,
}

/// Runs `work` on `clients` concurrent clients (client `i` gets `i`) and merges their tallies.
async fn phase<F, Fut>(name: String, clients: usize, work: F) -> Report
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Tally> + Send + 'static,
{
    let started = Instant::now();
    let handles: Vec<_> = (0..clients.max(1))
        .map(|client| tokio::spawn(work(client)))
        .collect();
    let mut tallies = Vec::new();
    for handle in handles {
        if let Ok(tally) = handle.await {
            tallies.push(tally);
        }
    }
    Tally::merge(tallies, name, started.elapsed())
}

/// Phase 1: lookup then create, `users` of them shared by the clients.
async fn sync_users(
    http: &reqwest::Client,
    endpoint: &Endpoint,
    plan: &IdpPlan,
    prefix: &str,
) -> (Report, Vec<String>) {
    let next = Arc::new(AtomicUsize::new(0));
    let ids = Arc::new(std::sync::Mutex::new(vec![String::new(); plan.users]));
    let users = plan.users;
    let report = phase(
        format!("initial sync: {users} users, externalId lookup + create"),
        plan.clients,
        |_| {
            let (http, endpoint, next, ids) =
                (http.clone(), endpoint.clone(), next.clone(), ids.clone());
            let prefix = prefix.to_owned();
            async move {
                let mut tally = Tally::default();
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= users {
                        return tally;
                    }
                    let lookup =
                        filter_path("Users", &format!("externalId eq \"{prefix}-ext-{n}\""));
                    call(&http, &endpoint, Call::get(lookup), &mut tally).await;
                    let created = call(
                        &http,
                        &endpoint,
                        Call::with_body(Method::POST, "/Users".into(), user_body(&prefix, n)),
                        &mut tally,
                    )
                    .await;
                    let id = if endpoint.echo {
                        format!("00000000-0000-7000-8000-{n:012}")
                    } else {
                        created
                            .and_then(|body| body["id"].as_str().map(str::to_owned))
                            .unwrap_or_default()
                    };
                    if let Ok(mut ids) = ids.lock() {
                        ids[n] = id;
                    }
                }
            }
        },
    )
    .await;
    let ids = ids.lock().map(|ids| ids.clone()).unwrap_or_default();
    (report, ids)
}

/// Phase 2: groups created empty, then members added in batches; user `n` joins groups
/// `n % groups` and, for every third user, `(n / 3) % groups` too.
async fn sync_groups(
    http: &reqwest::Client,
    endpoint: &Endpoint,
    plan: &IdpPlan,
    directory: &Directory,
) -> (Report, Vec<String>) {
    let groups = plan.groups.max(1);
    let mut members: Vec<Vec<String>> = vec![Vec::new(); groups];
    for (n, id) in directory.user_ids.iter().enumerate() {
        members[n % groups].push(id.clone());
        if n % 3 == 0 && (n / 3) % groups != n % groups {
            members[(n / 3) % groups].push(id.clone());
        }
    }
    let members = Arc::new(members);
    let next = Arc::new(AtomicUsize::new(0));
    let ids = Arc::new(std::sync::Mutex::new(vec![String::new(); groups]));
    let batch = plan.members_per_patch.max(1);
    let prefix = directory.prefix.clone();
    let report = phase(
        format!("initial sync: {groups} groups, created empty, members added {batch} per PATCH"),
        plan.clients,
        |_| {
            let (http, endpoint, next, ids, members) = (
                http.clone(),
                endpoint.clone(),
                next.clone(),
                ids.clone(),
                members.clone(),
            );
            let prefix = prefix.clone();
            async move {
                let mut tally = Tally::default();
                loop {
                    let g = next.fetch_add(1, Ordering::Relaxed);
                    if g >= groups {
                        return tally;
                    }
                    let body = json!({
                        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                        "externalId": format!("{prefix}-group-ext-{g}"),
                        "displayName": format!("{prefix} group {g}"),
                        "meta": {"resourceType": "Group"},
                    });
                    let created = call(
                        &http,
                        &endpoint,
                        Call::with_body(Method::POST, "/Groups".into(), body),
                        &mut tally,
                    )
                    .await;
                    let id = if endpoint.echo {
                        format!("00000000-0000-7000-9000-{g:012}")
                    } else {
                        match created.and_then(|body| body["id"].as_str().map(str::to_owned)) {
                            Some(id) => id,
                            None => continue,
                        }
                    };
                    for chunk in members[g].chunks(batch) {
                        let values: Vec<Value> =
                            chunk.iter().map(|id| json!({"value": id})).collect();
                        let operations = json!([{"op": "Add", "path": "members", "value": values}]);
                        call(
                            &http,
                            &endpoint,
                            Call::with_body(
                                Method::PATCH,
                                format!("/Groups/{id}"),
                                patch(operations),
                            ),
                            &mut tally,
                        )
                        .await;
                    }
                    if let Ok(mut ids) = ids.lock() {
                        ids[g] = id;
                    }
                }
            }
        },
    )
    .await;
    let ids = ids.lock().map(|ids| ids.clone()).unwrap_or_default();
    (report, ids)
}

/// The calls one step of a timed phase sends.
type Mix = fn(&mut StdRng, &Directory) -> Vec<Call>;

/// A timed phase: every client sends calls from `mix` until the phase's time is up.
async fn timed(
    name: String,
    http: &reqwest::Client,
    endpoint: &Endpoint,
    plan: &IdpPlan,
    directory: &Directory,
    mix: Mix,
) -> Report {
    let directory = Arc::new(directory.clone());
    let deadline = Instant::now() + plan.phase;
    phase(name, plan.clients, |client| {
        let (http, endpoint, directory) = (http.clone(), endpoint.clone(), directory.clone());
        async move {
            let mut tally = Tally::default();
            let mut rng = StdRng::seed_from_u64(client as u64);
            while Instant::now() < deadline {
                for next in mix(&mut rng, &directory) {
                    call(&http, &endpoint, next, &mut tally).await;
                }
            }
            tally
        }
    })
    .await
}

fn pick<'a>(rng: &mut StdRng, ids: &'a [String]) -> &'a str {
    if ids.is_empty() {
        return "";
    }
    &ids[rng.random_range(0..ids.len())]
}

/// Steady churn: profile updates, deactivations and reactivations, membership moves.
fn churn(rng: &mut StdRng, directory: &Directory) -> Vec<Call> {
    let user = pick(rng, &directory.user_ids).to_owned();
    let roll = rng.random_range(0..100);
    if roll < 50 {
        let n = rng.random_range(0..1_000_000);
        let operations = json!([
            {"op": "Replace", "path": "displayName", "value": format!("Renamed {n}")},
            {"op": "Replace", "path": "title", "value": format!("Title {}", n % 50)},
            {"op": "Replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": format!("D{}", n % 20)},
        ]);
        vec![Call::with_body(
            Method::PATCH,
            format!("/Users/{user}"),
            patch(operations),
        )]
    } else if roll < 80 {
        let active = if roll < 65 { "False" } else { "True" };
        let operations = json!([{"op": "Replace", "path": "active", "value": active}]);
        vec![Call::with_body(
            Method::PATCH,
            format!("/Users/{user}"),
            patch(operations),
        )]
    } else {
        let from = pick(rng, &directory.group_ids).to_owned();
        let to = pick(rng, &directory.group_ids).to_owned();
        vec![
            Call::with_body(
                Method::PATCH,
                format!("/Groups/{from}"),
                patch(json!([{"op": "remove", "path": format!("members[value eq \"{user}\"]")}])),
            ),
            Call::with_body(
                Method::PATCH,
                format!("/Groups/{to}"),
                patch(json!([{"op": "add", "path": "members", "value": [{"value": user}]}])),
            ),
        ]
    }
}

/// `userName eq` lookups of existing users.
fn user_name_lookups(rng: &mut StdRng, directory: &Directory) -> Vec<Call> {
    let n = rng.random_range(0..directory.user_ids.len().max(1));
    vec![Call::get(filter_path(
        "Users",
        &format!("userName eq \"{}-{n}\"", directory.prefix),
    ))]
}

/// Reads as provisioning clients and admin tools make them.
fn read_mix(rng: &mut StdRng, directory: &Directory) -> Vec<Call> {
    let roll = rng.random_range(0..100);
    let users = directory.user_ids.len().max(1);
    if roll < 30 {
        let n = rng.random_range(0..users);
        vec![Call::get(filter_path(
            "Users",
            &format!("externalId eq \"{}-ext-{n}\"", directory.prefix),
        ))]
    } else if roll < 60 {
        vec![Call::get(format!(
            "/Users/{}",
            pick(rng, &directory.user_ids)
        ))]
    } else if roll < 75 {
        vec![Call::get(format!(
            "/Groups/{}?excludedAttributes=members",
            pick(rng, &directory.group_ids)
        ))]
    } else if roll < 90 {
        let n = rng.random_range(0..users);
        vec![Call::get(filter_path(
            "Users",
            &format!(
                "emails[type eq \"work\"].value eq \"{}-{n}@bench.example\"",
                directory.prefix
            ),
        ))]
    } else {
        let start = rng.random_range(0..users) + 1;
        vec![Call::get(format!("/Users?startIndex={start}&count=100"))]
    }
}

/// The ceiling: parses any JSON body and echoes it back (201 for POST, 200 otherwise); GETs get
/// a small ListResponse. Nothing is stored.
async fn echo(method: Method, body: Bytes) -> Response {
    let status = if method == Method::POST {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let reply = if body.is_empty() {
        json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
            "totalResults": 0, "startIndex": 1, "itemsPerPage": 0, "Resources": [],
        })
    } else {
        match serde_json::from_slice::<Value>(&body) {
            Ok(value) => value,
            Err(_) => return StatusCode::BAD_REQUEST.into_response(),
        }
    };
    let mut response = (status, reply.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/scim+json"),
    );
    response
}

/// Starts the echo server on a free local port.
async fn start_echo() -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let router = Router::new().fallback(echo);
    let server = tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, router).await {
            tracing::warn!(%error, "echo server stopped");
        }
    });
    Ok((address, server))
}

/// Plays every phase against roster, then against the echo ceiling.
pub async fn run(target: &Target, plan: &IdpPlan) -> Result<Vec<PhaseReport>, String> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(plan.clients)
        .build()
        .map_err(|error| error.to_string())?;
    let (echo_address, echo_server) = start_echo().await.map_err(|error| error.to_string())?;
    let roster = Endpoint {
        base_url: target.base_url.clone(),
        token: target.token.clone(),
        echo: false,
    };
    let ceiling = Endpoint {
        base_url: format!("http://{echo_address}/scim/v2/echo"),
        token: "echo".into(),
        echo: true,
    };
    let prefix = format!("idp{}", &uuid::Uuid::now_v7().simple().to_string()[20..]);
    let mut phases = Vec::new();

    let (users_report, user_ids) = sync_users(&http, &roster, plan, &prefix).await;
    let (users_ceiling, echo_user_ids) = sync_users(&http, &ceiling, plan, &prefix).await;
    phases.push(PhaseReport {
        roster: users_report,
        ceiling: users_ceiling,
    });
    let mut on_roster = Directory {
        prefix: prefix.clone(),
        user_ids: user_ids.into_iter().filter(|id| !id.is_empty()).collect(),
        group_ids: Vec::new(),
    };
    let mut on_echo = Directory {
        prefix: prefix.clone(),
        user_ids: echo_user_ids,
        group_ids: Vec::new(),
    };
    let (groups_report, group_ids) = sync_groups(&http, &roster, plan, &on_roster).await;
    let (groups_ceiling, echo_group_ids) = sync_groups(&http, &ceiling, plan, &on_echo).await;
    phases.push(PhaseReport {
        roster: groups_report,
        ceiling: groups_ceiling,
    });
    on_roster.group_ids = group_ids.into_iter().filter(|id| !id.is_empty()).collect();
    on_echo.group_ids = echo_group_ids;

    let seconds = plan.phase.as_secs_f64();
    let timed_phases: [(String, Mix); 3] = [
        (
            format!(
                "steady churn for {seconds:.0}s: profile updates, (de)activations, membership moves"
            ),
            churn,
        ),
        (
            format!("userName eq lookups for {seconds:.0}s"),
            user_name_lookups,
        ),
        (
            format!("read mix for {seconds:.0}s: filters, GETs, member-less groups, pages"),
            read_mix,
        ),
    ];
    for (name, mix) in timed_phases {
        let roster_report = timed(name.clone(), &http, &roster, plan, &on_roster, mix).await;
        let ceiling_report = timed(name, &http, &ceiling, plan, &on_echo, mix).await;
        phases.push(PhaseReport {
            roster: roster_report,
            ceiling: ceiling_report,
        });
    }
    echo_server.abort();
    Ok(phases)
}

/// roster's peak resident memory in bytes, from its `/metrics` (read with the admin token).
pub async fn peak_rss(http_origin: &str, admin_token: &str) -> Option<u64> {
    let text = reqwest::Client::new()
        .get(format!("{http_origin}/metrics"))
        .bearer_auth(admin_token)
        .send()
        .await
        .ok()?
        .error_for_status()
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find(|line| line.starts_with("roster_process_peak_resident_memory_bytes "))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|value| value.parse::<f64>().ok())
        .map(|value| value as u64)
}
