//! Webhooks end to end: a real HTTP receiver started by the test checks every delivery with the
//! `standardwebhooks` crate (a library roster did not write); deliveries arrive in order and
//! signed, a receiver down for a while gets everything, an exhausted schedule makes the webhook
//! failing until resumed, 410 removes it, pause holds, rotation signs with both secrets, and a
//! SIGKILLed roster delivers everything after its restart.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use roster_proto::v1 as pb;
use serde_json::{Value, json};
use tonic::Code;

use crate::support::{Process, Stack, Tenant};

/// One verified delivery.
#[derive(Clone, Debug)]
struct Received {
    id: String,
    body: Value,
    /// Which of the receiver's secrets verified it.
    verified_by: Vec<usize>,
}

impl Received {
    fn event_type(&self) -> &str {
        self.body["type"].as_str().unwrap()
    }

    fn sequence(&self) -> u64 {
        self.body["data"]["sequence"].as_u64().unwrap()
    }

    /// The userName of a `user.provisioned` delivery.
    fn provisioned(&self) -> String {
        self.body["data"]["user_provisioned"]["user_name"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

/// The userNames of `user.provisioned` deliveries, in arrival order.
fn provisioned(received: &[Received]) -> Vec<String> {
    received.iter().map(Received::provisioned).collect()
}

/// An HTTP receiver that verifies every request with the `standardwebhooks` crate against the
/// secrets it knows, answers `status` (200 by default), and keeps what it accepted.
#[derive(Clone)]
struct Receiver {
    address: SocketAddr,
    status: Arc<AtomicU16>,
    secrets: Arc<Mutex<Vec<String>>>,
    received: Arc<Mutex<Vec<Received>>>,
    /// Requests that reached it, accepted or not.
    requests: Arc<AtomicU16>,
    /// How long it takes to answer, in milliseconds.
    delay_ms: Arc<std::sync::atomic::AtomicU64>,
}

impl Receiver {
    async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener)
    }

    fn serve(listener: tokio::net::TcpListener) -> Receiver {
        let receiver = Receiver {
            address: listener.local_addr().unwrap(),
            status: Arc::new(AtomicU16::new(200)),
            secrets: Arc::default(),
            received: Arc::default(),
            requests: Arc::default(),
            delay_ms: Arc::default(),
        };
        let state = receiver.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let state = state.clone();
                async move {
                    let status = state.accept(&headers, &body);
                    let delay = state.delay_ms.load(Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                    status
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        receiver
    }

    fn accept(&self, headers: &HeaderMap, body: &[u8]) -> StatusCode {
        self.requests.fetch_add(1, Ordering::SeqCst);
        let status = StatusCode::from_u16(self.status.load(Ordering::SeqCst)).unwrap();
        if !status.is_success() {
            return status;
        }
        let verified_by: Vec<usize> = self
            .secrets
            .lock()
            .unwrap()
            .iter()
            .enumerate()
            .filter(|(_, secret)| {
                standardwebhooks::Webhook::new(secret)
                    .unwrap()
                    .verify(body, headers)
                    .is_ok()
            })
            .map(|(index, _)| index)
            .collect();
        if verified_by.is_empty() {
            return StatusCode::UNAUTHORIZED;
        }
        self.received.lock().unwrap().push(Received {
            id: headers["webhook-id"].to_str().unwrap().to_owned(),
            body: serde_json::from_slice(body).unwrap(),
            verified_by,
        });
        StatusCode::NO_CONTENT
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.address)
    }

    fn trust(&self, secret: &str) {
        self.secrets.lock().unwrap().push(secret.to_owned());
    }

    fn answer(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until at least `count` deliveries were accepted.
    async fn wait_for(&self, count: usize) -> Vec<Received> {
        for _ in 0..600 {
            let received = self.received();
            if received.len() >= count {
                return received;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "waited for {count} deliveries, got {:?}",
            self.received()
                .iter()
                .map(|r| (r.sequence(), r.event_type().to_owned()))
                .collect::<Vec<_>>()
        );
    }
}

/// roster with a fast retry schedule.
async fn stack(schedule: &[u64]) -> Stack {
    let schedule: Vec<Duration> = schedule
        .iter()
        .map(|ms| Duration::from_millis(*ms))
        .collect();
    Stack::start_with(move |config| {
        config.webhooks.retry_schedule = schedule;
        config.webhooks.timeout = Duration::from_secs(5);
    })
    .await
}

async fn add(stack: &Stack, tenant: &str, url: &str, events: &[&str]) -> pb::WebhookSecret {
    stack
        .admin()
        .await
        .add_webhook(stack.with_admin_token(pb::AddWebhookRequest {
            tenant: tenant.into(),
            url: url.into(),
            event_types: events.iter().map(|e| (*e).to_owned()).collect(),
            description: "test".into(),
        }))
        .await
        .unwrap()
        .into_inner()
}

async fn webhook(stack: &Stack, tenant: &str, id: &str) -> Result<pb::WebhookInfo, tonic::Status> {
    stack
        .admin()
        .await
        .get_webhook(stack.with_admin_token(pb::WebhookRequest {
            tenant: tenant.into(),
            webhook_id: id.into(),
        }))
        .await
        .map(tonic::Response::into_inner)
}

async fn create_user(tenant: &Tenant, name: &str) -> String {
    tenant
        .post("/Users", &json!({"userName": name}))
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn id_of(added: &pb::WebhookSecret) -> String {
    added.webhook.as_ref().unwrap().webhook_id.clone()
}

#[tokio::test]
async fn deactivations_and_deletions_arrive_signed_in_order_and_nothing_else() {
    let stack = stack(&[50]).await;
    let tenant = stack.tenant("acme").await;
    let receiver = Receiver::start().await;
    let added = add(
        &stack,
        "acme",
        &receiver.url(),
        &["user.deactivated", "user.deleted"],
    )
    .await;
    assert!(added.secret.starts_with("whsec_"));
    receiver.trust(&added.secret);

    let alice = create_user(&tenant, "alice").await;
    tenant
        .patch(
            &format!("/Users/{alice}"),
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                    "Operations": [{"op": "replace", "value": {"active": false}}]}),
        )
        .await
        .expect(200);
    tenant
        .send(reqwest::Method::DELETE, &format!("/Users/{alice}"), None)
        .await
        .expect(204);

    let received = receiver.wait_for(2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let received_now = receiver.received();
    assert_eq!(
        received_now.len(),
        2,
        "only the selected types: {received_now:?}"
    );
    assert_eq!(received[0].event_type(), "user.deactivated");
    assert_eq!(received[1].event_type(), "user.deleted");
    assert!(received[0].sequence() < received[1].sequence());
    let data = &received[0].body["data"];
    assert_eq!(data["tenant"], "acme");
    assert_eq!(data["user_deactivated"]["user_id"], alice.as_str());
    assert_eq!(data["user_deactivated"]["user_name"], "alice");
    assert_eq!(data["actor"]["kind"], "ACTOR_KIND_SCIM_TOKEN");
    // The webhook id is the event id: the same on every retry, and the receiver's dedup key.
    assert_eq!(received[0].id, data["event_id"].as_str().unwrap());
    assert!(
        received[0].body["timestamp"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );

    let info = webhook(&stack, "acme", &id_of(&added)).await.unwrap();
    let delivery = info.delivery.unwrap();
    assert_eq!(delivery.delivered_total, 2);
    assert_eq!(delivery.delivered_through, delivery.tenant_head);
    let metrics = stack.metrics().await;
    assert!(
        metrics.contains("roster_webhook_deliveries_total 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("roster_webhooks{status=\"active\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_receiver_down_for_a_while_gets_every_event_in_order() {
    let stack = stack(&[50, 100, 200, 400, 800, 1600]).await;
    let tenant = stack.tenant("acme").await;
    // Nothing listens yet on the receiver's port: connections are refused.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let added = add(
        &stack,
        "acme",
        &format!("http://{address}/hook"),
        &["user.provisioned"],
    )
    .await;
    for n in 0..10 {
        create_user(&tenant, &format!("user{n}")).await;
    }
    let id = id_of(&added);
    for _ in 0..100 {
        let info = webhook(&stack, "acme", &id).await.unwrap();
        if info.delivery.as_ref().unwrap().failed_attempts_total >= 2 {
            let delivery = info.delivery.unwrap();
            assert_eq!(delivery.last_failure_status, 0);
            assert!(delivery.last_failure.contains("no answer"), "{delivery:?}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The receiver comes up on that port.
    let receiver = Receiver::serve(tokio::net::TcpListener::bind(address).await.unwrap());
    receiver.trust(&added.secret);
    let received = receiver.wait_for(10).await;
    let names = provisioned(&received);
    let expected: Vec<String> = (0..10).map(|n| format!("user{n}")).collect();
    assert_eq!(names, expected);
    let info = webhook(&stack, "acme", &id).await.unwrap();
    assert_eq!(info.status, pb::WebhookStatus::Active as i32);
}

#[tokio::test]
async fn an_exhausted_schedule_makes_the_webhook_failing_and_resume_delivers_everything_since() {
    let stack = stack(&[20, 20]).await;
    let tenant = stack.tenant("acme").await;
    let receiver = Receiver::start().await;
    receiver.answer(503);
    let added = add(&stack, "acme", &receiver.url(), &["user.*"]).await;
    receiver.trust(&added.secret);
    let id = id_of(&added);
    create_user(&tenant, "first").await;
    let mut failing = None;
    for _ in 0..200 {
        let info = webhook(&stack, "acme", &id).await.unwrap();
        if info.status == pb::WebhookStatus::Failing as i32 {
            failing = Some(info);
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let failing = failing.expect("the webhook becomes failing");
    assert!(failing.status_reason.contains("HTTP 503"), "{failing:?}");
    assert_eq!(receiver.requests.load(Ordering::SeqCst), 3);
    assert_eq!(failing.delivery.unwrap().last_failure_status, 503);
    // Events keep coming while it fails; none is delivered, none is lost.
    create_user(&tenant, "second").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(receiver.requests.load(Ordering::SeqCst), 3);
    let metrics = stack.metrics().await;
    assert!(
        metrics.contains("roster_webhooks{status=\"failing\"} 1"),
        "{metrics}"
    );

    receiver.answer(200);
    let resumed = stack
        .admin()
        .await
        .resume_webhook(stack.with_admin_token(pb::WebhookRequest {
            tenant: "acme".into(),
            webhook_id: id.clone(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resumed.status, pb::WebhookStatus::Active as i32);
    let received = receiver.wait_for(2).await;
    let names = provisioned(&received);
    assert_eq!(names, ["first", "second"]);
}

#[tokio::test]
async fn a_receiver_answering_gone_removes_the_webhook() {
    let stack = stack(&[20]).await;
    let tenant = stack.tenant("acme").await;
    let receiver = Receiver::start().await;
    receiver.answer(410);
    let added = add(&stack, "acme", &receiver.url(), &[]).await;
    create_user(&tenant, "alice").await;
    for _ in 0..200 {
        if let Err(status) = webhook(&stack, "acme", &id_of(&added)).await {
            assert_eq!(status.code(), Code::NotFound);
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the webhook was not removed after 410 Gone");
}

#[tokio::test]
async fn pause_holds_deliveries_and_resume_sends_them() {
    let stack = stack(&[20]).await;
    let tenant = stack.tenant("acme").await;
    let receiver = Receiver::start().await;
    let added = add(&stack, "acme", &receiver.url(), &["user.provisioned"]).await;
    receiver.trust(&added.secret);
    let request = || {
        stack.with_admin_token(pb::WebhookRequest {
            tenant: "acme".into(),
            webhook_id: id_of(&added),
        })
    };
    let paused = stack
        .admin()
        .await
        .pause_webhook(request())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(paused.status, pb::WebhookStatus::Paused as i32);
    create_user(&tenant, "held").await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(receiver.received().is_empty());
    stack.admin().await.resume_webhook(request()).await.unwrap();
    let received = receiver.wait_for(1).await;
    assert_eq!(received[0].provisioned(), "held");
}

#[tokio::test]
async fn a_rotated_secret_signs_alongside_the_old_one_during_the_overlap() {
    let stack = stack(&[20]).await;
    let tenant = stack.tenant("acme").await;
    let receiver = Receiver::start().await;
    let added = add(&stack, "acme", &receiver.url(), &["user.provisioned"]).await;
    receiver.trust(&added.secret);
    let rotated = stack
        .admin()
        .await
        .rotate_webhook_secret(stack.with_admin_token(pb::RotateWebhookSecretRequest {
            tenant: "acme".into(),
            webhook_id: id_of(&added),
            overlap: Some(prost_types::Duration {
                seconds: 3600,
                nanos: 0,
            }),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_ne!(rotated.secret, added.secret);
    assert_eq!(rotated.webhook.as_ref().unwrap().secret_generation, 2);
    receiver.trust(&rotated.secret);
    create_user(&tenant, "alice").await;
    let received = receiver.wait_for(1).await;
    assert_eq!(received[0].verified_by, vec![0, 1]);
    // Listing never shows a secret.
    let listed = stack
        .admin()
        .await
        .list_webhooks(stack.with_admin_token(pb::ListWebhooksRequest {
            tenant: "acme".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    let text = format!("{listed:?}");
    assert!(!text.contains(&added.secret) && !text.contains(&rotated.secret));
}

#[tokio::test]
async fn bad_requests_are_refused_with_a_reason_and_tenant_tokens_cannot_manage_webhooks() {
    let stack = stack(&[20]).await;
    let tenant = stack.tenant("acme").await;
    let mut admin = stack.admin().await;
    for (url, events) in [
        ("ftp://example.com/hook", vec![]),
        ("https://user:pw@example.com/hook", vec![]),
        ("https://example.com/hook", vec!["user.fired".to_owned()]),
    ] {
        let status = admin
            .add_webhook(stack.with_admin_token(pb::AddWebhookRequest {
                tenant: "acme".into(),
                url: url.into(),
                event_types: events,
                description: String::new(),
            }))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{url}: {status:?}");
    }
    let status = webhook(&stack, "acme", "not-an-id").await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let status = webhook(&stack, "acme", &uuid::Uuid::now_v7().to_string())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let status = webhook(&stack, "nobody", &uuid::Uuid::now_v7().to_string())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    // A tenant's own token cannot reach the Admin service.
    let mut request = tonic::Request::new(pb::ListWebhooksRequest {
        tenant: "acme".into(),
    });
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", tenant.token).parse().unwrap(),
    );
    let status = admin.list_webhooks(request).await.unwrap_err();
    assert!(
        matches!(
            status.code(),
            Code::PermissionDenied | Code::Unauthenticated
        ),
        "{status:?}"
    );
}

#[tokio::test]
async fn webhook_changes_are_in_the_audit_trail_without_secrets() {
    let stack = stack(&[20]).await;
    stack.tenant("acme").await;
    let receiver = Receiver::start().await;
    let added = add(&stack, "acme", &receiver.url(), &["user.*"]).await;
    let mut audit = roster_proto::v1::audit_client::AuditClient::connect(format!(
        "http://{}",
        stack.running.grpc_addr
    ))
    .await
    .unwrap();
    let mut replay = audit
        .replay(stack.with_admin_token(pb::ReplayRequest {
            tenant: "acme".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    let mut records = Vec::new();
    while let Some(record) = replay.message().await.unwrap() {
        records.push(record);
    }
    let added_record = records
        .iter()
        .find(|record| record.event_type == "webhook.added")
        .expect("webhook.added is audited");
    let text = format!("{added_record:?}");
    assert!(text.contains(&receiver.url()), "{text}");
    assert!(!text.contains(&added.secret));
}

/// Starts `roster serve` with a fast retry schedule.
async fn spawn(data_dir: &std::path::Path) -> Process {
    Process::spawn_with(
        data_dir,
        &[
            "--webhook-retry-schedule",
            "50ms,100ms,200ms,400ms,800ms,1s,1s,1s,1s,1s",
        ],
    )
    .await
}

#[tokio::test]
async fn a_roster_killed_mid_delivery_delivers_every_event_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let mut process = spawn(&data_dir).await;
    let tenant = process.create_tenant(&data_dir, "acme").await;
    let receiver = Receiver::start().await;
    let admin_token = std::fs::read_to_string(data_dir.join("admin.token")).unwrap();
    let mut admin =
        roster_proto::v1::admin_client::AdminClient::connect(format!("http://{}", process.grpc))
            .await
            .unwrap();
    let mut request = tonic::Request::new(pb::AddWebhookRequest {
        tenant: "acme".into(),
        url: receiver.url(),
        event_types: vec!["user.provisioned".into()],
        description: String::new(),
    });
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", admin_token.trim()).parse().unwrap(),
    );
    let added = admin.add_webhook(request).await.unwrap().into_inner();
    receiver.trust(&added.secret);
    // The receiver is slow and fails half the time, so deliveries are in flight or mid-retry
    // when roster dies.
    receiver.delay_ms.store(40, Ordering::SeqCst);
    receiver.answer(503);
    let flip = {
        let status = Arc::clone(&receiver.status);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(120)).await;
                let next = if status.load(Ordering::SeqCst) == 200 {
                    503
                } else {
                    200
                };
                status.store(next, Ordering::SeqCst);
            }
        })
    };
    let mut names = Vec::new();
    for n in 0..40 {
        let name = format!("user{n}");
        create_user(&tenant, &name).await;
        names.push(name);
    }
    // Some are delivered, not all: kill it now.
    receiver.wait_for(3).await;
    process.kill().await;
    let before = receiver.received().len();
    assert!(
        before < 40,
        "roster delivered everything before it was killed"
    );

    let process = spawn(&data_dir).await;
    let _tenant = process.tenant("acme", &tenant.token);
    flip.abort();
    receiver.answer(200);
    receiver.delay_ms.store(0, Ordering::SeqCst);
    let mut delivered: Vec<String> = Vec::new();
    for _ in 0..600 {
        delivered = provisioned(&receiver.received());
        let mut distinct = delivered.clone();
        distinct.dedup();
        if distinct.len() >= 40 && names.iter().all(|name| delivered.contains(name)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for name in &names {
        assert!(
            delivered.contains(name),
            "{name} never delivered: {delivered:?}"
        );
    }
    // In order: a name first arrives after every name before it first arrived (repeats after a
    // restart are allowed, with the same webhook id).
    let mut first_seen: Vec<&String> = Vec::new();
    for name in &delivered {
        if !first_seen.contains(&name) {
            first_seen.push(name);
        }
    }
    let expected: Vec<&String> = names.iter().collect();
    assert_eq!(first_seen, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_nats_one_process_delivers_each_webhook_and_another_takes_over_when_it_stops() {
    let nats = roster_engine::testkit::nats::NatsServer::start();
    let fast = |config: &mut roster_gateway::app::Config| {
        config.webhooks.retry_schedule = vec![Duration::from_millis(50); 5];
    };
    let a = Stack::start_nats_with(&nats.url(), fast).await;
    let b = Stack::start_nats_with(&nats.url(), fast).await;
    let on_a = a.tenant("acme").await;
    let on_b = b.tenant_at(&on_a);
    let receiver = Receiver::start().await;
    let added = add(&a, "acme", &receiver.url(), &["user.provisioned"]).await;
    receiver.trust(&added.secret);
    let mut names = Vec::new();
    for n in 0..10 {
        let (tenant, name) = if n % 2 == 0 {
            (&on_a, format!("a{n}"))
        } else {
            (&on_b, format!("b{n}"))
        };
        create_user(tenant, &name).await;
        names.push(name);
    }
    receiver.wait_for(10).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let received = receiver.received();
    let ids: std::collections::BTreeSet<&str> = received.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(
        ids.len(),
        received.len(),
        "one process delivers: no event twice"
    );
    assert_eq!(received.len(), 10);

    // A stops; B takes the webhook over (A gave its lease up) and signs with the same secret.
    let Stack { running, .. } = a;
    running.shutdown().await;
    for n in 10..15 {
        let name = format!("b{n}");
        create_user(&on_b, &name).await;
        names.push(name);
    }
    let received = receiver.wait_for(15).await;
    let delivered = provisioned(&received);
    assert_eq!(delivered, names);
}
