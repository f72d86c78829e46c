//! Durability under SIGKILL: the real `roster` binary is killed while clients create users, then
//! restarted on the same data directory. Every acknowledged create must be there exactly once.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::support::{Tenant, reply};

/// A `roster serve` child process.
pub struct Server {
    pub child: Child,
    pub http: SocketAddr,
    pub grpc: SocketAddr,
}

fn address_in(line: &str) -> Option<SocketAddr> {
    line.split("address=")
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Starts `roster serve` on `data_dir` with ephemeral ports and waits until it listens.
pub async fn spawn_server(data_dir: &Path) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_roster"))
        .arg("serve")
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("roster binary starts");
    let stderr = child.stderr.take().expect("stderr is piped");
    let mut lines = BufReader::new(stderr).lines();
    let (mut http, mut grpc) = (None, None);
    let started = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("SCIM HTTP listening") {
                http = address_in(&line);
            } else if line.contains("gRPC listening") {
                grpc = address_in(&line);
            }
            if http.is_some() && grpc.is_some() {
                break;
            }
        }
    })
    .await;
    assert!(started.is_ok(), "roster did not start listening in time");
    // Keep draining stderr so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Server {
        child,
        http: http.expect("HTTP address logged"),
        grpc: grpc.expect("gRPC address logged"),
    }
}

/// `roster tenant create NAME` against a server; returns the token (last line of stdout).
pub async fn create_tenant(server: &Server, data_dir: &Path, name: &str) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_roster"))
        .args(["tenant", "create", name, "--grpc", &server.grpc.to_string()])
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .to_owned()
}

fn tenant_at(server: &Server, name: &str, token: &str) -> Tenant {
    Tenant {
        base: format!("http://{}/scim/v2/{name}", server.http),
        token: token.to_owned(),
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_create_survives_sigkill_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let mut server = spawn_server(&data_dir).await;
    let token = create_tenant(&server, &data_dir, "crash").await;
    let tenant = tenant_at(&server, "crash", &token);

    let acknowledged: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let mut clients = Vec::new();
    for client in 0..20 {
        let tenant = tenant.clone();
        let acknowledged = acknowledged.clone();
        clients.push(tokio::spawn(async move {
            for n in 0.. {
                let name = format!("c{client}-{n}");
                let sent = tenant
                    .request(reqwest::Method::POST, "/Users")
                    .body(json!({"userName": name}).to_string())
                    .send()
                    .await;
                let Ok(response) = sent else { break };
                if response.status() != 201 {
                    break;
                }
                let Ok(body) = response.json::<serde_json::Value>().await else {
                    break;
                };
                let id = body["id"].as_str().unwrap().to_owned();
                acknowledged.lock().unwrap().insert(name, id);
            }
        }));
    }
    // Let the load build up, then kill -9 in the middle of it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before_kill = acknowledged.lock().unwrap().len();
    server.child.start_kill().unwrap();
    server.child.wait().await.unwrap();
    for client in clients {
        client.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        before_kill > 20,
        "the load ran before the kill ({before_kill} creates)"
    );

    let server = spawn_server(&data_dir).await;
    let tenant = tenant_at(&server, "crash", &token);
    let mut listed: HashMap<String, usize> = HashMap::new();
    let mut start = 1;
    loop {
        let page = tenant
            .get(&format!("/Users?startIndex={start}&count=1000"))
            .await
            .expect(200);
        let resources = page["Resources"].as_array().unwrap();
        for user in resources {
            *listed
                .entry(user["userName"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
        start += resources.len();
        if resources.is_empty() || start > page["totalResults"].as_u64().unwrap() as usize {
            break;
        }
    }
    for (name, id) in &acknowledged {
        assert_eq!(
            listed.get(name),
            Some(&1),
            "acknowledged user {name} is there exactly once"
        );
        let user = tenant.get(&format!("/Users/{id}")).await.expect(200);
        assert_eq!(user["userName"], name.as_str());
    }
    assert!(
        listed.values().all(|count| *count == 1),
        "no user is there twice"
    );
    // Creates go on after the restart.
    let created = tenant
        .post("/Users", &json!({"userName": "after-restart"}))
        .await;
    assert_eq!(created.status, 201);
    let response = tenant
        .request(reqwest::Method::POST, "/Users")
        .body(json!({"userName": acknowledged.keys().next().unwrap()}).to_string())
        .send()
        .await
        .unwrap();
    reply(response).await.expect_error(409, Some("uniqueness"));
    eprintln!(
        "crash test: {} creates acknowledged, {} users after restart",
        acknowledged.len(),
        listed.len()
    );
}
