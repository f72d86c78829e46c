//! The audit trail end to end: export (JSON lines, CSV, time windows), verification, tampering
//! caught after a restart, and `roster rebuild`.

use roster_engine::domain::Timestamp;
use roster_projector::audit::{decode_block, encode_block};
use serde_json::{Value, json};
use tokio::process::Command;

use crate::support::{Stack, patch_op};

async fn roster(stack: &Stack, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_roster"))
        .args(args)
        .arg("--grpc")
        .arg(stack.running.grpc_addr.to_string())
        .arg("--data-dir")
        .arg(stack.data_dir())
        .output()
        .await
        .unwrap()
}

async fn some_history(stack: &Stack) -> String {
    let acme = stack.tenant("acme").await;
    let id = acme
        .post(
            "/Users",
            &json!({"userName": "alice", "password": "hunter2", "name": {"givenName": "Alice"}}),
        )
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    acme.patch(
        &format!("/Users/{id}"),
        &patch_op(json!([{"op": "replace", "path": "active", "value": false}])),
    )
    .await
    .expect(200);
    id
}

#[tokio::test]
async fn export_streams_every_record_as_json_lines_and_csv() {
    let stack = Stack::start().await;
    let id = some_history(&stack).await;
    let output = roster(&stack, &["audit", "export", "acme"]).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    let records: Vec<Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let types: Vec<&str> = records
        .iter()
        .map(|record| record["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "tenant.created",
            "token.issued",
            "token.used",
            "user.provisioned",
            "user.deactivated"
        ],
        "the token's first use of the hour is recorded before what the request changed"
    );
    assert_eq!(records[2]["target"], records[1]["target"]);
    let provisioned = &records[3];
    assert_eq!(provisioned["target"], id.as_str());
    assert_eq!(provisioned["actor"]["kind"], "scim_token");
    assert_eq!(provisioned["source"]["ip"], "127.0.0.1");
    assert_eq!(provisioned["changes"]["userName"], "alice");
    assert!(
        !stdout.contains("hunter2"),
        "passwords never reach the trail"
    );
    assert_eq!(records[4]["prev_hash"], records[3]["hash"]);

    let csv = roster(
        &stack,
        &[
            "audit",
            "export",
            "acme",
            "--format",
            "csv",
            "--type",
            "user.deactivated",
        ],
    )
    .await;
    let csv = String::from_utf8(csv.stdout).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 2, "{csv}");
    assert!(lines[0].starts_with("sequence,recorded_at"));
    assert!(lines[1].contains("user.deactivated"));
    // A standard CSV reader gets every field back, the JSON of the changes (quotes, commas)
    // included.
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let headers = reader.headers().unwrap().clone();
    assert_eq!(
        headers.iter().collect::<Vec<_>>(),
        [
            "sequence",
            "recorded_at",
            "occurred_at",
            "event_type",
            "target",
            "actor_kind",
            "actor_id",
            "actor_display",
            "source_ip",
            "user_agent",
            "request_id",
            "outcome",
            "changes",
            "prev_hash",
            "hash",
            "tenant",
        ]
    );
    let row = reader.records().next().unwrap().unwrap();
    assert_eq!(&row[3], "user.deactivated");
    let changes: serde_json::Value = serde_json::from_str(&row[12]).unwrap();
    assert!(changes.is_object(), "{changes}");
    assert_eq!(row[14].len(), 64, "the hash is 64 hex digits: {row:?}");
    assert_eq!(&row[15], "acme");

    let future = Timestamp::from_micros(4_102_444_800_000_000).to_rfc3339();
    let none = roster(&stack, &["audit", "export", "acme", "--since", &future]).await;
    assert!(String::from_utf8(none.stdout).unwrap().is_empty());
    let before = roster(
        &stack,
        &["audit", "export", "acme", "--until", "2000-01-01"],
    )
    .await;
    assert!(String::from_utf8(before.stdout).unwrap().is_empty());
}

#[tokio::test]
async fn a_tampered_record_fails_verification_by_name_after_a_restart() {
    let stack = Stack::start().await;
    some_history(&stack).await;
    let verified = roster(&stack, &["audit", "verify", "acme"]).await;
    assert!(verified.status.success());
    assert!(String::from_utf8_lossy(&verified.stdout).contains("5 records"));

    // Stop roster, alter the user.provisioned record on disk, start again.
    let data_dir = stack.data_dir();
    let Stack { running, dir, .. } = stack;
    running.shutdown().await;
    let tampered_sequence = {
        let db = crate::support::open_stopped_database(&data_dir);
        let trail = roster_projector::AuditTrail::open(&db).unwrap();
        let tenant = roster_engine::domain::TenantName::parse("acme").unwrap();
        let mut record = trail
            .records(&tenant, 0, u64::MAX)
            .map(Result::unwrap)
            .find(|record| record.event_type == "user.provisioned")
            .unwrap();
        record.changes.insert("userName".into(), json!("mallory"));
        // Records sit in blocks; rewrite the block that holds this one.
        let (key, block) = trail
            .tree()
            .scan_prefix(b"Bacme\0")
            .map(Result::unwrap)
            .find(|(_, block)| {
                decode_block(block).unwrap().iter().any(|bytes| {
                    serde_json::from_slice::<roster_projector::AuditRecord>(bytes)
                        .unwrap()
                        .sequence
                        == record.sequence
                })
            })
            .unwrap();
        let altered = serde_json::to_vec(&record).unwrap();
        let records: Vec<&[u8]> = decode_block(&block)
            .unwrap()
            .into_iter()
            .map(|bytes| {
                let sequence = serde_json::from_slice::<roster_projector::AuditRecord>(bytes)
                    .unwrap()
                    .sequence;
                if sequence == record.sequence {
                    altered.as_slice()
                } else {
                    bytes
                }
            })
            .collect();
        trail.tree().insert(key, encode_block(records)).unwrap();
        db.flush().unwrap();
        record.sequence
    };
    let stack = Stack::start_in(dir, None).await;
    let verified = roster(&stack, &["audit", "verify", "acme"]).await;
    assert!(!verified.status.success(), "verification must fail");
    let stdout = String::from_utf8_lossy(&verified.stdout);
    assert!(
        stdout.contains(&format!("broken at sequence {tampered_sequence}")),
        "{stdout}"
    );
}

#[tokio::test]
async fn audit_calls_are_tenant_scoped() {
    let stack = Stack::start().await;
    some_history(&stack).await;
    let other = stack.tenant("other").await;
    let mut client = roster_proto::v1::audit_client::AuditClient::connect(format!(
        "http://{}",
        stack.running.grpc_addr
    ))
    .await
    .unwrap();
    let request = |tenant: &str, token: &str| {
        let mut request = tonic::Request::new(roster_proto::v1::VerifyRequest {
            tenant: tenant.into(),
        });
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        request
    };
    let own = client
        .verify(request("other", &other.token))
        .await
        .unwrap()
        .into_inner();
    assert!(own.valid);
    let denied = client
        .verify(request("acme", &other.token))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);
    let unknown = client
        .verify(request("acme", "rst_0000_0000"))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::Unauthenticated);
}

#[tokio::test]
async fn rebuild_replays_the_log_into_identical_views_and_reports_its_speed() {
    let stack = Stack::start().await;
    some_history(&stack).await;
    let data_dir = stack.data_dir();
    let Stack { running, dir, .. } = stack;
    running.shutdown().await;
    let before = (
        crate::support::dump_tree(&data_dir, "view.directory"),
        crate::support::dump_tree(&data_dir, "view.audit"),
        crate::support::dump_tree(&data_dir, "aggregate"),
    );
    let output = Command::new(env!("CARGO_BIN_EXE_roster"))
        .args(["rebuild", "--aggregate", "--data-dir"])
        .arg(&data_dir)
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("events/s"), "{stdout}");
    assert!(
        // The admin token issued and used; acme created with its token, the token used, the user
        // provisioned and deactivated.
        stdout.contains("projections rebuilt from 7 events"),
        "{stdout}"
    );
    let after = (
        crate::support::dump_tree(&data_dir, "view.directory"),
        crate::support::dump_tree(&data_dir, "view.audit"),
        crate::support::dump_tree(&data_dir, "aggregate"),
    );
    assert!(before == after, "rebuilt views are identical");
    drop(dir);
}

#[tokio::test]
async fn metrics_show_projection_lag_and_checkpoints() {
    let stack = Stack::start().await;
    some_history(&stack).await;
    let text = stack.metrics().await;
    assert!(text.contains("roster_projection_lag_events"), "{text}");
    assert!(text.contains("roster_projection_lag_seconds"));
    assert!(text.contains("roster_projection_checkpoint{projection=\"audit\"}"));
    assert!(text.contains("roster_log_durable_sequence"));
}

/// Creates a user through `stack` with forwarding headers a client could forge; returns the
/// `Location` answered and the source address the audit trail recorded.
async fn create_behind_headers(stack: &Stack, user_name: &str) -> (String, String) {
    let acme = stack.tenant("acme").await;
    let response = acme
        .request(reqwest::Method::POST, "/Users")
        .header("content-type", "application/scim+json")
        .header("x-forwarded-for", "198.51.100.9, 203.0.113.77")
        .header("x-forwarded-host", "evil.example")
        .header("x-forwarded-proto", "https")
        .body(json!({"userName": user_name}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let output = roster(
        stack,
        &["audit", "export", "acme", "--type", "user.provisioned"],
    )
    .await;
    let stdout = String::from_utf8(output.stdout).unwrap();
    let record: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    (
        location,
        record["source"]["ip"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn forwarding_headers_are_believed_only_from_trusted_proxies() {
    // Anyone's forwarding headers: ignored; the socket's address and the request's Host stand.
    let stack = Stack::start().await;
    let (location, ip) = create_behind_headers(&stack, "direct").await;
    assert_eq!(ip, "127.0.0.1");
    assert!(
        location.starts_with(&format!("http://{}/", stack.running.http_addr)),
        "{location}"
    );

    // Behind a trusted proxy: the last hop it did not add itself is the client.
    let stack = Stack::start_with(|config| {
        config.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await;
    let (location, ip) = create_behind_headers(&stack, "proxied").await;
    assert_eq!(ip, "203.0.113.77");
    assert!(location.starts_with("https://evil.example/"), "{location}");

    // A configured public URL wins over every header.
    let stack = Stack::start_with(|config| {
        config.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
        config.public_url = Some("https://scim.example.com/".to_owned());
    })
    .await;
    let (location, _) = create_behind_headers(&stack, "public").await;
    assert!(
        location.starts_with("https://scim.example.com/scim/v2/acme/Users/"),
        "{location}"
    );
}
