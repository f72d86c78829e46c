//! The load generator behind `roster bench`: plays SCIM traffic against a running roster over
//! HTTP and reports throughput, latency percentiles and errors by status.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

pub mod history;
pub mod idp;
pub mod ssf;
pub mod webhooks;

/// Latencies and outcomes of one scenario.
#[derive(Debug, Default)]
pub struct Report {
    pub name: String,
    pub elapsed: Duration,
    pub latencies: Vec<Duration>,
    pub errors: BTreeMap<String, usize>,
}

impl Report {
    pub fn requests(&self) -> usize {
        self.latencies.len() + self.errors.values().sum::<usize>()
    }

    pub fn per_second(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    /// The latency below which `fraction` of successful requests fall.
    pub fn percentile(&self, fraction: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let mut sorted = self.latencies.clone();
        sorted.sort_unstable();
        let index = ((sorted.len() as f64 * fraction).ceil() as usize).clamp(1, sorted.len()) - 1;
        sorted[index]
    }

    pub fn summary(&self) -> String {
        let millis = |duration: Duration| duration.as_secs_f64() * 1000.0;
        format!(
            "{}: {} ok in {:.2}s = {:.0}/s; p50 {:.2} ms, p99 {:.2} ms, p999 {:.2} ms; errors {:?}",
            self.name,
            self.latencies.len(),
            self.elapsed.as_secs_f64(),
            self.per_second(),
            millis(self.percentile(0.50)),
            millis(self.percentile(0.99)),
            millis(self.percentile(0.999)),
            self.errors
        )
    }
}

/// Where to send the traffic.
#[derive(Clone, Debug)]
pub struct Target {
    /// `http://host:port/scim/v2/<tenant>`.
    pub base_url: String,
    pub token: String,
}

/// Creates `users` users through `clients` concurrent clients, each sending one request at a
/// time (the way an IdP's provisioning workers do). Client `i` sends to `targets[i % len]`:
/// several tenants, or several roster processes, share the load.
pub async fn creates(targets: &[Target], clients: usize, users: usize, prefix: &str) -> Report {
    paced_creates(targets, clients, users, prefix, None).await
}

/// [`creates`], started at most `rate` per second in all (`None`: as fast as the clients go).
pub async fn paced_creates(
    targets: &[Target],
    clients: usize,
    users: usize,
    prefix: &str,
    rate: Option<f64>,
) -> Report {
    paced_creates_observed(targets, clients, users, prefix, rate, Arc::new(|_, _| {})).await
}

/// Called with a created user's externalId and when its 201 arrived.
pub type CreateObserver = Arc<dyn Fn(&str, Instant) + Send + Sync>;

/// [`paced_creates`], telling `created` of each user created.
pub async fn paced_creates_observed(
    targets: &[Target],
    clients: usize,
    users: usize,
    prefix: &str,
    rate: Option<f64>,
    created: CreateObserver,
) -> Report {
    let interval = rate
        .filter(|rate| *rate > 0.0)
        .map(|rate| Duration::from_secs_f64(1.0 / rate));
    let next_slot = Arc::new(std::sync::Mutex::new(tokio::time::Instant::now()));
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()
        .unwrap_or_default();
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for (client, target) in targets.iter().cycle().take(clients.max(1)).enumerate() {
        let http = http.clone();
        let next = next.clone();
        let next_slot = next_slot.clone();
        let target = target.clone();
        let prefix = format!("{prefix}{client}");
        let created = Arc::clone(&created);
        workers.push(tokio::spawn(async move {
            let mut report = Report::default();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= users {
                    break;
                }
                if let Some(interval) = interval {
                    // Take the next start slot of the shared schedule and wait for it.
                    let slot = {
                        let Ok(mut slot) = next_slot.lock() else { break };
                        let now = tokio::time::Instant::now();
                        let start = (*slot).max(now);
                        *slot = start + interval;
                        start
                    };
                    tokio::time::sleep_until(slot).await;
                }
                let body = json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "userName": format!("{prefix}-{n}"),
                    "externalId": format!("{prefix}-ext-{n}"),
                    "name": {"givenName": "Bench", "familyName": format!("User {n}")},
                    "emails": [{"value": format!("{prefix}-{n}@bench.example"), "type": "work", "primary": true}],
                    "active": true
                });
                let sent = Instant::now();
                let response = http
                    .post(format!("{}/Users", target.base_url))
                    .bearer_auth(&target.token)
                    .header("content-type", "application/scim+json")
                    .body(body.to_string())
                    .send()
                    .await;
                match response {
                    Ok(response) if response.status().as_u16() == 201 => {
                        let _ = response.bytes().await;
                        created(&format!("{prefix}-ext-{n}"), Instant::now());
                        report.latencies.push(sent.elapsed());
                    }
                    Ok(response) => {
                        *report.errors.entry(response.status().as_u16().to_string()).or_default() += 1;
                    }
                    Err(error) => {
                        let kind = if error.is_connect() { "connect" } else { "transport" };
                        *report.errors.entry(kind.to_owned()).or_default() += 1;
                    }
                }
            }
            report
        }));
    }
    let mut total = Report {
        name: format!("creates ({clients} clients, {} targets)", targets.len()),
        ..Report::default()
    };
    for worker in workers {
        if let Ok(report) = worker.await {
            total.latencies.extend(report.latencies);
            for (status, count) in report.errors {
                *total.errors.entry(status).or_default() += count;
            }
        }
    }
    total.elapsed = started.elapsed();
    total
}

/// Creates users `{prefix}-{from}`…`{prefix}-{to - 1}` with `clients` concurrent clients and
/// returns their ids in order.
async fn create_users(
    http: &reqwest::Client,
    target: &Target,
    clients: usize,
    prefix: &str,
    range: std::ops::Range<usize>,
) -> Result<Vec<String>, String> {
    let next = Arc::new(AtomicUsize::new(range.start));
    let ids = Arc::new(std::sync::Mutex::new(vec![String::new(); range.len()]));
    let mut workers = Vec::new();
    for _ in 0..clients.max(1) {
        let (http, next, ids, target, prefix) = (
            http.clone(),
            next.clone(),
            ids.clone(),
            target.clone(),
            prefix.to_owned(),
        );
        let range = range.clone();
        workers.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= range.end {
                    return Ok::<(), String>(());
                }
                let response = http
                    .post(format!("{}/Users", target.base_url))
                    .bearer_auth(&target.token)
                    .body(json!({"userName": format!("{prefix}-{n}")}).to_string())
                    .send()
                    .await
                    .map_err(|error| error.to_string())?;
                if response.status().as_u16() != 201 {
                    return Err(format!("creating a user answered {}", response.status()));
                }
                let body: serde_json::Value =
                    response.json().await.map_err(|error| error.to_string())?;
                let id = body["id"].as_str().unwrap_or_default().to_owned();
                if let Ok(mut ids) = ids.lock() {
                    ids[n - range.start] = id;
                }
            }
        }));
    }
    for worker in workers {
        worker.await.map_err(|error| error.to_string())??;
    }
    let ids = ids.lock().map_err(|_| "lock poisoned".to_owned())?.clone();
    Ok(ids)
}

async fn send(
    http: &reqwest::Client,
    request: reqwest::RequestBuilder,
    expected: u16,
) -> Result<Duration, String> {
    let started = Instant::now();
    let response = http
        .execute(request.build().map_err(|error| error.to_string())?)
        .await
        .map_err(|error| error.to_string())?;
    let status = response.status().as_u16();
    let _ = response.bytes().await;
    if status != expected {
        return Err(format!("expected {expected}, got {status}"));
    }
    Ok(started.elapsed())
}

/// Latencies of single-member changes and member-less reads on one group.
#[derive(Debug)]
pub struct GroupScale {
    pub members: usize,
    pub add: Report,
    pub remove: Report,
    pub read_without_members: Report,
}

/// For each size, builds a group with that many members (PATCHes of 1,000), then times
/// `rounds` single-member adds and removes and `GET ?excludedAttributes=members`.
pub async fn group_scale(
    target: &Target,
    sizes: &[usize],
    rounds: usize,
) -> Result<Vec<GroupScale>, String> {
    let http = reqwest::Client::new();
    let largest = sizes.iter().copied().max().unwrap_or(0);
    let run = uuid::Uuid::now_v7().simple().to_string();
    let prefix = format!("m{}", &run[run.len() - 8..]);
    eprintln!("creating {largest} users");
    let users = create_users(&http, target, 64, &prefix, 0..largest + 1).await?;
    let spare = users[largest].clone();
    let mut results = Vec::new();
    for &size in sizes {
        let created = http
            .post(format!("{}/Groups", target.base_url))
            .bearer_auth(&target.token)
            .body(json!({"displayName": format!("{prefix}-group-{size}")}).to_string())
            .send()
            .await
            .map_err(|error| error.to_string())?;
        let body: serde_json::Value = created.json().await.map_err(|error| error.to_string())?;
        let group = body["id"].as_str().unwrap_or_default().to_owned();
        let url = format!("{}/Groups/{group}", target.base_url);
        eprintln!("filling group {group} with {size} members");
        for chunk in users[..size].chunks(1000) {
            let members: Vec<serde_json::Value> =
                chunk.iter().map(|id| json!({"value": id})).collect();
            let patch = json!({"schemas": [roster_scim::schema::PATCH_OP_SCHEMA],
                "Operations": [{"op": "add", "path": "members", "value": members}]});
            send(
                &http,
                http.patch(&url)
                    .bearer_auth(&target.token)
                    .body(patch.to_string()),
                204,
            )
            .await?;
        }
        let add = json!({"schemas": [roster_scim::schema::PATCH_OP_SCHEMA],
            "Operations": [{"op": "add", "path": "members", "value": [{"value": spare}]}]});
        let remove = json!({"schemas": [roster_scim::schema::PATCH_OP_SCHEMA],
            "Operations": [{"op": "remove", "path": format!("members[value eq \"{spare}\"]")}]});
        let mut scale = GroupScale {
            members: size,
            add: Report {
                name: format!("add 1 member to a {size}-member group"),
                ..Report::default()
            },
            remove: Report {
                name: format!("remove 1 member from a {size}-member group"),
                ..Report::default()
            },
            read_without_members: Report {
                name: format!("GET excludedAttributes=members, {size} members"),
                ..Report::default()
            },
        };
        let started = Instant::now();
        for _ in 0..rounds {
            scale.add.latencies.push(
                send(
                    &http,
                    http.patch(&url)
                        .bearer_auth(&target.token)
                        .body(add.to_string()),
                    204,
                )
                .await?,
            );
            scale.remove.latencies.push(
                send(
                    &http,
                    http.patch(&url)
                        .bearer_auth(&target.token)
                        .body(remove.to_string()),
                    204,
                )
                .await?,
            );
            scale.read_without_members.latencies.push(
                send(
                    &http,
                    http.get(format!("{url}?excludedAttributes=members"))
                        .bearer_auth(&target.token),
                    200,
                )
                .await?,
            );
        }
        let elapsed = started.elapsed() / 3;
        scale.add.elapsed = elapsed;
        scale.remove.elapsed = elapsed;
        scale.read_without_members.elapsed = elapsed;
        results.push(scale);
    }
    Ok(results)
}

/// Throughput and latency of `GetUserAccess` and `CheckAccess` with `streams` concurrent
/// calls over a few connections, each RPC for `duration`. Sets up `users` users in groups mapped
/// to roles and linked to a resource group first.
pub async fn grpc_access(
    http_target: &Target,
    grpc: &str,
    tenant: &str,
    users: usize,
    streams: usize,
    duration: Duration,
) -> Result<Vec<Report>, String> {
    use roster_proto::v1 as pb;
    let http = reqwest::Client::new();
    let run = uuid::Uuid::now_v7().simple().to_string();
    let prefix = format!("a{}", &run[run.len() - 8..]);
    eprintln!("creating {users} users");
    let ids = create_users(&http, http_target, 32, &prefix, 0..users).await?;
    for (n, chunk) in ids.chunks((users / 10).max(1)).enumerate() {
        let members: Vec<serde_json::Value> = chunk.iter().map(|id| json!({"value": id})).collect();
        send(
            &http,
            http.post(format!("{}/Groups", http_target.base_url))
                .bearer_auth(&http_target.token)
                .body(
                    json!({"displayName": format!("{prefix}-team-{n}"), "members": members})
                        .to_string(),
                ),
            201,
        )
        .await?;
    }
    let endpoint = if grpc.contains("://") {
        grpc.to_owned()
    } else {
        format!("http://{grpc}")
    };
    let mut channels = Vec::new();
    for _ in 0..4 {
        channels.push(
            tonic::transport::Channel::from_shared(endpoint.clone())
                .map_err(|error| error.to_string())?
                .connect()
                .await
                .map_err(|error| error.to_string())?,
        );
    }
    let header: tonic::metadata::MetadataValue<tonic::metadata::Ascii> =
        format!("Bearer {}", http_target.token)
            .parse()
            .map_err(|_| "bad token".to_owned())?;
    let ids = Arc::new(ids);
    let mut reports = Vec::new();
    for check in [false, true] {
        let deadline = Instant::now() + duration;
        let mut workers = Vec::new();
        for worker in 0..streams {
            let mut client = pb::directory_client::DirectoryClient::new(
                channels[worker % channels.len()].clone(),
            );
            let (ids, header, tenant) = (ids.clone(), header.clone(), tenant.to_owned());
            workers.push(tokio::spawn(async move {
                let mut report = Report::default();
                let mut n = worker;
                while Instant::now() < deadline {
                    n = (n + 7919) % ids.len();
                    let user = Some(pb::UserRef {
                        by: Some(pb::user_ref::By::Id(ids[n].clone())),
                    });
                    let started = Instant::now();
                    let outcome = if check {
                        let mut request = tonic::Request::new(pb::CheckAccessRequest {
                            tenant: tenant.clone(),
                            user,
                            action: pb::Action::Read.into(),
                            resource: Some(pb::Resource {
                                namespace: tenant.clone(),
                                resource_group: String::new(),
                            }),
                            ..Default::default()
                        });
                        request
                            .metadata_mut()
                            .insert("authorization", header.clone());
                        client.check_access(request).await.map(|_| ())
                    } else {
                        let mut request = tonic::Request::new(pb::GetUserAccessRequest {
                            tenant: tenant.clone(),
                            user,
                            as_of: None,
                        });
                        request
                            .metadata_mut()
                            .insert("authorization", header.clone());
                        client.get_user_access(request).await.map(|_| ())
                    };
                    match outcome {
                        Ok(()) => report.latencies.push(started.elapsed()),
                        Err(status) => {
                            *report
                                .errors
                                .entry(format!("{:?}", status.code()))
                                .or_default() += 1
                        }
                    }
                }
                report
            }));
        }
        let mut total = Report {
            name: format!(
                "{} ({streams} concurrent streams)",
                if check {
                    "CheckAccess"
                } else {
                    "GetUserAccess"
                }
            ),
            elapsed: duration,
            ..Report::default()
        };
        for worker in workers {
            if let Ok(report) = worker.await {
                total.latencies.extend(report.latencies);
                for (status, count) in report.errors {
                    *total.errors.entry(status).or_default() += count;
                }
            }
        }
        reports.push(total);
    }
    Ok(reports)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_the_nearest_rank() {
        let report = Report {
            latencies: (1..=100).map(Duration::from_millis).collect(),
            elapsed: Duration::from_secs(1),
            ..Report::default()
        };
        assert_eq!(report.percentile(0.5), Duration::from_millis(50));
        assert_eq!(report.percentile(0.99), Duration::from_millis(99));
        assert_eq!(report.percentile(1.0), Duration::from_millis(100));
        assert_eq!(report.per_second(), 100.0);
    }
}
