//! Server-streaming RPCs (`Events.Watch`, `Audit.Replay`) under pressure: many unread streams
//! keep the server's memory bounded in bytes, concurrent streams are limited per token and per
//! tenant, and a consumer that stops reading is dropped with a status that says where to resume.

use std::time::{Duration, Instant};

use roster_engine::testkit::nats::NatsServer;
use roster_gateway::grpc::{RESUME_FROM_TRAILER, StreamLimits};
use roster_proto::v1 as pb;
use roster_proto::v1::admin_client::AdminClient;
use roster_proto::v1::audit_client::AuditClient;
use roster_proto::v1::events_client::EventsClient;
use serde_json::{Value, json};
use tonic::Code;
use tonic::transport::Channel;

use crate::support::*;

/// The resident memory of process `pid`, in bytes (`VmRSS` of `/proc/<pid>/status`).
fn resident_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

const MIB: f64 = 1024.0 * 1024.0;

/// Creates `count` users with about `attribute_bytes` of attributes each, through `/Bulk`
/// (spread over several string attributes, each within the 4 KiB limit on a value).
async fn seed_users(tenant: &Tenant, count: usize, attribute_bytes: usize) {
    const ATTRIBUTES: [&str; 3] = ["title", "nickName", "userType"];
    let filler: String = (0..attribute_bytes.div_ceil(ATTRIBUTES.len()))
        .map(|n| char::from(b'a' + (n * 7 % 26) as u8))
        .collect();
    assert!(filler.len() < 4000, "each value stays within the limit");
    for chunk in (0..count).collect::<Vec<_>>().chunks(100) {
        let operations: Vec<Value> = chunk
            .iter()
            .map(|n| {
                let mut data = json!({"userName": format!("user-{n}")});
                for attribute in ATTRIBUTES {
                    data[attribute] = json!(format!("{n} {filler}"));
                }
                json!({"method": "POST", "path": "/Users", "bulkId": format!("u{n}"), "data": data})
            })
            .collect();
        let response = tenant
            .post(
                "/Bulk",
                &json!({
                    "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
                    "Operations": operations,
                }),
            )
            .await
            .expect(200);
        for result in response["Operations"].as_array().unwrap() {
            assert_eq!(result["status"], "201", "{result}");
        }
    }
}

/// Issues `count` more tokens for `tenant` with the admin token at `grpc`.
async fn issue_tokens(grpc: &str, admin_token: &str, tenant: &str, count: usize) -> Vec<String> {
    let mut admin = AdminClient::connect(grpc.to_owned()).await.unwrap();
    let mut secrets = Vec::new();
    for n in 0..count {
        let issued = admin
            .issue_token(authorized(
                admin_token,
                pb::IssueTokenRequest {
                    tenant: tenant.to_owned(),
                    name: format!("watcher-{n}"),
                    expires_in: None,
                    scope: Default::default(),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        secrets.push(issued.secret);
    }
    secrets
}

/// Opens a Watch stream from sequence 1 on its own connection, as a separate client would.
async fn open_watch(grpc: &str, token: &str, tenant: &str) -> tonic::Streaming<pb::Event> {
    let mut client = EventsClient::connect(grpc.to_owned()).await.unwrap();
    client
        .watch(authorized(
            token,
            pb::WatchRequest {
                tenant: tenant.to_owned(),
                from_sequence: 1,
                event_types: Vec::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
}

/// The issue's finding, scaled to a test: 50 `Watch` streams from sequence 1 that never read,
/// on a log of two tenants with 2,000 users of ~6 KiB each, used to take the server hundreds of
/// MiB above idle (~45 MiB per stream with larger events) and starve SCIM. With the default
/// limits the server stays within 150 MiB of idle and SCIM keeps answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_unread_watch_streams_keep_the_server_memory_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let roster = Process::spawn(&data, None).await;
    let pid = roster.child.id().unwrap();
    let grpc = format!("http://{}", roster.grpc);
    let acme = roster.create_tenant(&data, "acme").await;
    let globex = roster.create_tenant(&data, "globex").await;
    let seeded = Instant::now();
    tokio::join!(
        seed_users(&acme, 2000, 6 * 1024),
        seed_users(&globex, 2000, 6 * 1024)
    );
    eprintln!("seeded 4,000 users in {:?}", seeded.elapsed());
    let admin_token = std::fs::read_to_string(data.join("admin.token"))
        .unwrap()
        .trim()
        .to_owned();
    // Five tokens per tenant, five streams per token, 25 streams per tenant: within the default
    // limits, so every stream opens and the bound comes from the byte budgets.
    let mut tokens = Vec::new();
    for tenant in [&acme, &globex] {
        let mut secrets = issue_tokens(&grpc, &admin_token, tenant.name(), 4).await;
        secrets.push(tenant.token.clone());
        tokens.push((tenant.name().to_owned(), secrets));
    }
    // Settled: the views caught up (a read waits for them) and the allocator is warm.
    acme.get("/Users?count=1").await.expect(200);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = resident_bytes(pid);

    let mut streams = Vec::new();
    for (tenant, secrets) in &tokens {
        for secret in secrets {
            for _ in 0..5 {
                streams.push(open_watch(&grpc, secret, tenant).await);
            }
        }
    }
    assert_eq!(streams.len(), 50);
    let mut peak = idle;
    let mut slowest_scim = Duration::ZERO;
    let watching = Instant::now();
    while watching.elapsed() < Duration::from_secs(15) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        peak = peak.max(resident_bytes(pid));
        let asked = Instant::now();
        let answered =
            tokio::time::timeout(Duration::from_secs(10), globex.get("/Users?count=1")).await;
        assert!(answered.is_ok(), "SCIM answers while the streams are open");
        answered.unwrap().expect(200);
        slowest_scim = slowest_scim.max(asked.elapsed());
    }
    let above = peak.saturating_sub(idle);
    eprintln!(
        "50 unread Watch streams: idle {:.0} MiB, peak {:.0} MiB, {:.0} MiB above idle \
         ({:.1} MiB per stream); slowest SCIM read {slowest_scim:?}",
        idle as f64 / MIB,
        peak as f64 / MIB,
        above as f64 / MIB,
        above as f64 / MIB / 50.0
    );
    assert!(
        above < 150 * 1024 * 1024,
        "the server grew {:.0} MiB above idle with 50 unread streams",
        above as f64 / MIB
    );
    drop(streams);
}

/// roster on the embedded log with these stream limits.
async fn stack_with(limits: StreamLimits) -> Stack {
    Stack::start_with(move |config| config.streams = limits).await
}

fn watch_request(tenant: &str, from: u64) -> pb::WatchRequest {
    pb::WatchRequest {
        tenant: tenant.to_owned(),
        from_sequence: from,
        event_types: Vec::new(),
    }
}

async fn events_client(stack: &Stack) -> EventsClient<Channel> {
    EventsClient::connect(format!("http://{}", stack.running.grpc_addr))
        .await
        .unwrap()
}

fn replay_request(tenant: &str, from: u64) -> pb::ReplayRequest {
    pb::ReplayRequest {
        tenant: tenant.to_owned(),
        from_sequence: from,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_streams_are_limited_per_token_and_per_tenant() {
    let stack = stack_with(StreamLimits {
        max_per_token: 2,
        max_per_tenant: 3,
        ..StreamLimits::default()
    })
    .await;
    let acme = stack.tenant("acme").await;
    let grpc = format!("http://{}", stack.running.grpc_addr);
    let second_token = issue_tokens(&grpc, &stack.admin_token(), "acme", 1)
        .await
        .remove(0);
    let mut events = events_client(&stack).await;
    let mut audit = AuditClient::connect(grpc.clone()).await.unwrap();

    let first = events
        .watch(authorized(&acme.token, watch_request("acme", 1)))
        .await
        .unwrap();
    let second = events
        .watch(authorized(&acme.token, watch_request("acme", 1)))
        .await
        .unwrap();
    let refused = events
        .watch(authorized(&acme.token, watch_request("acme", 1)))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(
        refused.message().contains(
            "too many concurrent streams for this token: the limit is 2 (--max-streams-per-token)"
        ),
        "{}",
        refused.message()
    );
    // A Replay is a stream too: the same limits apply to it.
    let refused = audit
        .replay(authorized(&acme.token, replay_request("acme", 1)))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");

    // Another token of the tenant gets the tenant's third stream, not a fourth.
    let third = events
        .watch(authorized(&second_token, watch_request("acme", 1)))
        .await
        .unwrap();
    let refused = events
        .watch(authorized(&second_token, watch_request("acme", 1)))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(
        refused.message().contains(
            "too many concurrent streams for tenant acme: the limit is 3 (--max-streams-per-tenant)"
        ),
        "{}",
        refused.message()
    );
    // Refusals and open streams show on /metrics.
    let metrics = stack.metrics().await;
    assert!(
        metrics.contains("roster_grpc_streams_refused_total 3"),
        "{metrics}"
    );
    assert!(metrics.contains("roster_grpc_streams_open "), "{metrics}");
    // The admin token's streams are its own (the system tenant's), whatever tenant they watch.
    let _admin = events
        .watch(authorized(&stack.admin_token(), watch_request("acme", 1)))
        .await
        .unwrap();

    // A stream the client closes gives its place back.
    drop((first, second));
    let reopened = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match events
                .watch(authorized(&second_token, watch_request("acme", 1)))
                .await
            {
                Ok(stream) => return stream,
                Err(status) => {
                    assert_eq!(status.code(), Code::ResourceExhausted);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    })
    .await
    .expect("a closed stream frees its place");
    drop((third, reopened));
}

/// A client channel with small HTTP/2 windows (64 KiB), so that a client that stops reading is
/// felt by the server after a little data, as with most gRPC clients.
async fn small_window_channel(stack: &Stack) -> Channel {
    Channel::from_shared(format!("http://{}", stack.running.grpc_addr))
        .unwrap()
        .initial_stream_window_size(64 * 1024)
        .initial_connection_window_size(64 * 1024)
        .connect()
        .await
        .unwrap()
}

/// The sequence a dropped stream says to resume from: in its message and in its trailer.
fn resume_point(status: &tonic::Status) -> u64 {
    let trailer: u64 = status
        .metadata()
        .get(RESUME_FROM_TRAILER)
        .expect("a resume trailer")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        status
            .message()
            .contains(&format!("reconnect with from_sequence = {trailer}")),
        "{}",
        status.message()
    );
    trailer
}

/// Reads `stream` until it ends with a status; returns the messages' sequences and the status.
async fn drain<T>(
    stream: &mut tonic::Streaming<T>,
    sequence: impl Fn(&T) -> u64,
) -> (Vec<u64>, Option<tonic::Status>) {
    let mut seen = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), stream.message()).await {
            Ok(Ok(Some(message))) => seen.push(sequence(&message)),
            Ok(Ok(None)) => return (seen, None),
            Ok(Err(status)) => return (seen, Some(status)),
            Err(_) => return (seen, None),
        }
    }
}

fn slow_consumer_limits() -> StreamLimits {
    StreamLimits {
        buffer_bytes: 64 * 1024,
        stall_timeout: Duration::from_millis(500),
        ..StreamLimits::default()
    }
}

/// A Watch client that stops reading is dropped once its buffer has stayed full for the stall
/// timeout: the server lets go of what it buffered, and the client, when it reads again, gets what
/// was already sent and then `ABORTED` with the sequence to resume from; resuming there misses
/// nothing and repeats nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_watch_consumer_is_dropped_and_resumes_where_it_left_off() {
    let stack = stack_with(slow_consumer_limits()).await;
    let acme = stack.tenant("acme").await;
    let globex = stack.tenant("globex").await;
    tokio::join!(
        seed_users(&acme, 300, 4 * 1024),
        seed_users(&globex, 100, 4 * 1024)
    );
    // Everything acme has, read by a client that keeps up.
    let mut complete = events_client(&stack)
        .await
        .watch(authorized(&acme.token, watch_request("acme", 1)))
        .await
        .unwrap()
        .into_inner();
    let mut all = Vec::new();
    while all.len() < 303 {
        let event = complete.message().await.unwrap().unwrap();
        assert_eq!(event.tenant, "acme");
        all.push(event.sequence);
    }
    drop(complete);

    let mut slow = EventsClient::new(small_window_channel(&stack).await)
        .watch(authorized(&acme.token, watch_request("acme", 1)))
        .await
        .unwrap()
        .into_inner();
    let first = slow.message().await.unwrap().unwrap();
    assert_eq!(first.sequence, all[0]);
    // The client stops reading for well over the stall timeout.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        stack.running.state.streams.buffered_bytes(),
        0,
        "the dropped stream's buffer is released"
    );
    let (mut seen, ended) = drain(&mut slow, |event: &pb::Event| event.sequence).await;
    seen.insert(0, first.sequence);
    let ended = ended.expect("the stream ends with a status");
    assert_eq!(ended.code(), Code::Aborted, "{ended:?}");
    assert!(
        ended.message().contains("client too slow"),
        "{}",
        ended.message()
    );
    let metrics = stack.metrics().await;
    assert!(
        metrics.contains("roster_grpc_streams_dropped_total 1"),
        "{metrics}"
    );
    let resume = resume_point(&ended);
    let last = *seen.last().unwrap();
    assert!(
        resume > last
            && !all
                .iter()
                .any(|sequence| (last + 1..resume).contains(sequence)),
        "resume after the last event received ({last}), skipping only other tenants' ({resume})"
    );
    assert!(seen.len() < all.len(), "dropped before the end");

    let mut resumed = events_client(&stack)
        .await
        .watch(authorized(&acme.token, watch_request("acme", resume)))
        .await
        .unwrap()
        .into_inner();
    while seen.len() < all.len() {
        seen.push(resumed.message().await.unwrap().unwrap().sequence);
    }
    assert_eq!(seen, all, "no gap, no duplicate");
}

/// The same for an audit replay: dropped when its client stops reading, resumable by sequence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_audit_replay_is_dropped_and_resumes_where_it_left_off() {
    let stack = stack_with(slow_consumer_limits()).await;
    let acme = stack.tenant("acme").await;
    seed_users(&acme, 300, 4 * 1024).await;
    let channel = format!("http://{}", stack.running.grpc_addr);
    let (all, ended) = drain(
        &mut AuditClient::connect(channel.clone())
            .await
            .unwrap()
            .replay(authorized(&acme.token, replay_request("acme", 0)))
            .await
            .unwrap()
            .into_inner(),
        |record: &pb::AuditRecord| record.sequence,
    )
    .await;
    assert!(ended.is_none() && all.len() > 300, "a complete replay");

    let mut slow = AuditClient::new(small_window_channel(&stack).await)
        .replay(authorized(&acme.token, replay_request("acme", 0)))
        .await
        .unwrap()
        .into_inner();
    let first = slow.message().await.unwrap().unwrap().sequence;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (mut seen, ended) = drain(&mut slow, |record: &pb::AuditRecord| record.sequence).await;
    seen.insert(0, first);
    let ended = ended.expect("the replay ends with a status");
    assert_eq!(ended.code(), Code::Aborted, "{ended:?}");
    let resume = resume_point(&ended);
    assert_eq!(resume, seen.last().unwrap() + 1);
    let (rest, ended) = drain(
        &mut AuditClient::connect(channel)
            .await
            .unwrap()
            .replay(authorized(&acme.token, replay_request("acme", resume)))
            .await
            .unwrap()
            .into_inner(),
        |record: &pb::AuditRecord| record.sequence,
    )
    .await;
    assert!(ended.is_none());
    seen.extend(rest);
    assert_eq!(seen, all, "no gap, no duplicate");
}

/// On JetStream, Watch reads the local mirror through its tenant index: a tenant's stream
/// carries its own events, resumable, and new ones as they are mirrored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_on_jetstream_reads_the_tenants_events_from_the_mirror() {
    let nats = NatsServer::start();
    let stack = Stack::start_nats(&nats.url()).await;
    let acme = stack.tenant("acme").await;
    let globex = stack.tenant("globex").await;
    for n in 0..20 {
        acme.create_user(&format!("a{n}")).await;
        globex.create_user(&format!("g{n}")).await;
    }
    let mut stream = events_client(&stack)
        .await
        .watch(authorized(&acme.token, watch_request("acme", 1)))
        .await
        .unwrap()
        .into_inner();
    let mut provisioned = Vec::new();
    let mut last = 0;
    while provisioned.len() < 20 {
        let event = stream.message().await.unwrap().unwrap();
        assert_eq!(event.tenant, "acme");
        assert!(event.sequence > last);
        last = event.sequence;
        if let Some(pb::event::Payload::UserProvisioned(user)) = event.payload {
            provisioned.push(user.user_name);
        }
    }
    assert_eq!(
        provisioned,
        (0..20).map(|n| format!("a{n}")).collect::<Vec<_>>()
    );
    globex.create_user("g-late").await;
    acme.create_user("a-late").await;
    let event = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let Some(pb::event::Payload::UserProvisioned(user)) = event.payload else {
        panic!("the new user: {event:?}");
    };
    assert_eq!(user.user_name, "a-late");
}

/// `roster audit export` whose output stops being read (a paused pager) is dropped by the server
/// like any slow client, resumes where it stopped, and writes every record once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_export_resumes_a_replay_dropped_while_its_output_was_blocked() {
    use tokio::io::AsyncReadExt;

    let stack = stack_with(slow_consumer_limits()).await;
    let acme = stack.tenant("acme").await;
    // ~5 MB of records: more than the pipe, the client's HTTP/2 window and the server's buffers.
    seed_users(&acme, 600, 4 * 1024).await;
    let export = || {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_roster"));
        command
            .args(["audit", "export", "acme", "--grpc"])
            .arg(stack.running.grpc_addr.to_string())
            .arg("--data-dir")
            .arg(stack.data_dir())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        command
    };
    let complete = export().output().await.unwrap();
    assert!(complete.status.success());
    let records = complete
        .stdout
        .iter()
        .filter(|byte| **byte == b'\n')
        .count();
    assert!(records > 600, "{records} records");

    let mut blocked = export().spawn().unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut output = Vec::new();
    blocked
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut output)
        .await
        .unwrap();
    let finished = blocked.wait_with_output().await.unwrap();
    assert!(
        finished.status.success(),
        "{}",
        String::from_utf8_lossy(&finished.stderr)
    );
    assert!(output == complete.stdout, "every record once, in order");
}
