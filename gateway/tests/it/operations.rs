//! Running roster: health and readiness endpoints, Prometheus metrics (requests by route, status
//! and tenant; rejections by scimType; authentication failures; events by type), SIGTERM.

use std::time::Duration;

use serde_json::json;

use crate::support::{Process, Stack, reply};

async fn metrics(stack: &Stack) -> String {
    stack.metrics().await
}

#[tokio::test]
async fn health_and_readiness_answer_without_a_token() {
    let stack = Stack::start().await;
    for path in ["/healthz", "/readyz"] {
        let response = reqwest::get(format!("{}{path}", stack.http_url()))
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
}

#[tokio::test]
async fn metrics_count_requests_rejections_auth_failures_and_events() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    acme.create_user("alice").await;
    acme.post("/Users", &json!({"userName": "ALICE"}))
        .await
        .expect_error(409, Some("uniqueness"));
    acme.post("/Users", &json!({"userName": "-x-"}))
        .await
        .expect_error(400, Some("invalidValue"));
    let anonymous = reqwest::Client::new()
        .get(acme.url("/Users"))
        .send()
        .await
        .unwrap();
    reply(anonymous).await.expect_error(401, None);

    let mut text = metrics(&stack).await;
    for _ in 0..50 {
        if text.contains("roster_events_appended_total{type=\"user.provisioned\"} 1") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        text = metrics(&stack).await;
    }
    for expected in [
        "roster_http_requests_total{method=\"POST\",route=\"/scim/v2/{tenant}/Users\",status=\"201\",tenant=\"acme\"} 1",
        "roster_scim_rejections_total{scim_type=\"uniqueness\",status=\"409\",tenant=\"acme\"} 1",
        "roster_scim_rejections_total{scim_type=\"invalidValue\",status=\"400\",tenant=\"acme\"} 1",
        "roster_auth_failures_total{surface=\"scim\"} 1",
        "roster_events_appended_total{type=\"user.provisioned\"} 1",
        "roster_http_request_duration_seconds_bucket{method=\"POST\",route=\"/scim/v2/{tenant}/Users\"",
        "roster_process_peak_resident_memory_bytes",
    ] {
        assert!(text.contains(expected), "missing {expected} in\n{text}");
    }
    // Unknown tenants do not become label values.
    let _ = reqwest::get(format!("{}/scim/v2/nosuch/Users", stack.http_url())).await;
    assert!(!metrics(&stack).await.contains("tenant=\"nosuch\""));
}

#[tokio::test]
async fn metrics_need_the_admin_token_on_the_scim_port_and_answer_freely_on_admin_http() {
    let stack = Stack::start_with(|config| {
        config.admin_http = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let acme = stack.tenant("acme").await;
    acme.create_user("alice").await;
    let scim_metrics = format!("{}/metrics", stack.http_url());
    for token in [None, Some(acme.token.as_str()), Some("not-a-token")] {
        let mut request = stack.client.get(&scim_metrics);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401, "token {token:?}");
        let body = response.text().await.unwrap();
        assert!(!body.contains("acme"), "{body}");
    }
    assert!(stack.metrics().await.contains("tenant=\"acme\""));

    let admin_http = stack.running.admin_http_addr.expect("admin HTTP listens");
    let text = reqwest::get(format!("http://{admin_http}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("tenant=\"acme\""), "{text}");
    for path in ["/healthz", "/readyz"] {
        let response = reqwest::get(format!("http://{admin_http}{path}"))
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
    // The admin address serves operations only, never SCIM.
    let response = reqwest::get(format!("http://{admin_http}/scim/v2/acme/Users"))
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_requests_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let mut server = Process::spawn(&data_dir, None).await;
    let tenant = server.create_tenant(&data_dir, "term").await;
    tenant.create_user("before").await;
    let exit = server.terminate().await;
    assert_eq!(exit.code(), Some(0));
    let server = Process::spawn(&data_dir, None).await;
    let tenant = server.tenant("term", &tenant.token);
    assert_eq!(tenant.find("userName eq \"before\"").await.len(), 1);
}

#[tokio::test]
async fn the_data_directory_is_private_to_roster_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    // Made open to everyone, as a permissive umask or a careless operator would leave it.
    std::fs::create_dir_all(&data_dir).unwrap();
    std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let stack = Stack::start_in(dir, None).await;
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data_dir), 0o700);
    assert_eq!(mode(&data_dir.join("db")), 0o700);
    assert_eq!(mode(&data_dir.join("db").join("db")), 0o600);
    assert_eq!(mode(&data_dir.join("log.watermark")), 0o600);
    assert_eq!(mode(&data_dir.join("admin.token")), 0o600);
    drop(stack);
}
