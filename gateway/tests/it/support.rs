//! Starting the real stack for tests, and small HTTP helpers.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use roster_engine::log::JetStreamConfig;
use roster_gateway::app::{self, Config, Running};
use roster_proto::v1 as pb;
use roster_proto::v1::admin_client::AdminClient;
use roster_proto::v1::directory_client::DirectoryClient;
use serde_json::Value;
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tonic::transport::Channel;

fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A running roster (in this process) on a temporary data directory.
pub struct Stack {
    pub running: Running,
    pub dir: TempDir,
    pub client: reqwest::Client,
    /// The NATS URL when roster runs on JetStream.
    pub nats: Option<String>,
}

impl Stack {
    /// A gRPC Directory client of this stack (no token: requests carry their own).
    pub async fn directory(&self) -> DirectoryClient<Channel> {
        DirectoryClient::connect(format!("http://{}", self.running.grpc_addr))
            .await
            .unwrap()
    }

    /// roster on the embedded log.
    pub async fn start() -> Stack {
        Self::start_in(tempfile::tempdir().unwrap(), None).await
    }

    /// roster on JetStream at `url`.
    pub async fn start_nats(url: &str) -> Stack {
        Self::start_in(tempfile::tempdir().unwrap(), Some(url.to_owned())).await
    }

    pub async fn start_in(dir: TempDir, nats: Option<String>) -> Stack {
        Self::start_configured(dir, nats, |_| {}).await
    }

    /// roster on the embedded log with `configure` applied to its configuration.
    pub async fn start_with(configure: impl FnOnce(&mut Config)) -> Stack {
        Self::start_configured(tempfile::tempdir().unwrap(), None, configure).await
    }

    /// roster on JetStream at `url` with `configure` applied to its configuration.
    pub async fn start_nats_with(url: &str, configure: impl FnOnce(&mut Config)) -> Stack {
        Self::start_configured(
            tempfile::tempdir().unwrap(),
            Some(url.to_owned()),
            configure,
        )
        .await
    }

    async fn start_configured(
        dir: TempDir,
        nats: Option<String>,
        configure: impl FnOnce(&mut Config),
    ) -> Stack {
        let mut config = Config::new(dir.path().join("data"), any_port(), any_port());
        config.nats = nats.clone().map(|url| JetStreamConfig { url, replicas: 1 });
        configure(&mut config);
        let running = app::start(config).await.expect("roster starts");
        Stack {
            running,
            dir,
            client: reqwest::Client::new(),
            nats,
        }
    }

    /// Stops roster cleanly and starts it again on the same data directory.
    pub async fn restart(self) -> Stack {
        self.restart_with(|_| {}).await
    }

    /// Like [`Self::restart`], with `configure` applied to the new configuration.
    pub async fn restart_with(self, configure: impl FnOnce(&mut Config)) -> Stack {
        let Stack {
            running, dir, nats, ..
        } = self;
        running.shutdown().await;
        Self::start_configured(dir, nats, configure).await
    }

    pub fn data_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("data")
    }

    pub fn http_url(&self) -> String {
        format!("http://{}", self.running.http_addr)
    }

    /// `/metrics` as the admin token reads it on the SCIM port.
    pub async fn metrics(&self) -> String {
        self.client
            .get(format!("{}/metrics", self.http_url()))
            .bearer_auth(self.admin_token())
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub fn admin_token(&self) -> String {
        std::fs::read_to_string(&self.running.admin_token_file)
            .unwrap()
            .trim()
            .to_owned()
    }

    pub async fn admin(&self) -> AdminClient<Channel> {
        AdminClient::connect(format!("http://{}", self.running.grpc_addr))
            .await
            .unwrap()
    }

    pub fn with_admin_token<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.metadata_mut().insert(
            "authorization",
            format!("Bearer {}", self.admin_token()).parse().unwrap(),
        );
        request
    }

    /// Creates a tenant through the admin gRPC service.
    pub async fn tenant(&self, name: &str) -> Tenant {
        self.tenant_with_usernames(name, "").await
    }

    /// Creates a tenant with a username policy (`strict`, `derive`; empty: the default).
    pub async fn tenant_with_usernames(&self, name: &str, usernames: &str) -> Tenant {
        let response = self
            .admin()
            .await
            .create_tenant(self.with_admin_token(pb::CreateTenantRequest {
                name: name.into(),
                token_name: "test".into(),
                usernames: usernames.into(),
            }))
            .await
            .unwrap()
            .into_inner();
        Tenant {
            base: format!("{}/scim/v2/{name}", self.http_url()),
            token: response.secret,
            client: self.client.clone(),
        }
    }

    /// `tenant`'s SCIM endpoint on this roster.
    pub fn tenant_at(&self, tenant: &Tenant) -> Tenant {
        Tenant {
            base: format!("{}/scim/v2/{}", self.http_url(), tenant.name()),
            token: tenant.token.clone(),
            client: self.client.clone(),
        }
    }
}

/// A `roster serve` child process (the real binary), for tests that kill it.
pub struct Process {
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

impl Process {
    /// Starts `roster serve` on `data_dir` (on JetStream at `nats`, if given) with ephemeral
    /// ports and waits until it listens.
    pub async fn spawn(data_dir: &Path, nats: Option<&str>) -> Process {
        match nats {
            Some(url) => Self::spawn_with(data_dir, &["--nats", url]).await,
            None => Self::spawn_with(data_dir, &[]).await,
        }
    }

    /// Starts `roster serve` with extra arguments.
    pub async fn spawn_with(data_dir: &Path, arguments: &[&str]) -> Process {
        let mut command = Command::new(env!("CARGO_BIN_EXE_roster"));
        command
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0"])
            .args(["--admin-http", "127.0.0.1:0"])
            .env("RUST_LOG", "info")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .kill_on_drop(true);
        command.args(arguments);
        let mut child = command.spawn().expect("roster binary starts");
        let stderr = child.stderr.take().expect("stderr is piped");
        let mut lines = BufReader::new(stderr).lines();
        let (mut http, mut grpc) = (None, None);
        let mut log = Vec::new();
        let started = tokio::time::timeout(Duration::from_secs(60), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.contains("SCIM HTTP listening") {
                    http = address_in(&line);
                } else if line.contains("gRPC listening") {
                    grpc = address_in(&line);
                }
                log.push(line);
                if http.is_some() && grpc.is_some() {
                    break;
                }
            }
        })
        .await;
        assert!(
            started.is_ok() && http.is_some() && grpc.is_some(),
            "roster did not start listening:\n{}",
            log.join("\n")
        );
        // Keep draining stderr so the child never blocks on a full pipe; keep it beside the data
        // directory (`data.log`) for a failing test to show.
        let log_path = data_dir.with_extension("log");
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let mut file = tokio::fs::File::create(&log_path).await.ok();
            if let Some(file) = file.as_mut() {
                let _ = file.write_all(log.join("\n").as_bytes()).await;
            }
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(file) = file.as_mut() {
                    let _ = file.write_all(format!("\n{line}").as_bytes()).await;
                }
            }
        });
        Process {
            child,
            http: http.expect("HTTP address logged"),
            grpc: grpc.expect("gRPC address logged"),
        }
    }

    /// SIGTERM, and the exit status once the process is gone (within 30 s).
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().unwrap().to_string();
        let status = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .unwrap();
        assert!(status.success());
        tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("roster exits within 30 s of SIGTERM")
            .unwrap()
    }

    /// SIGKILL, and wait until the process is gone.
    pub async fn kill(&mut self) {
        self.child.start_kill().unwrap();
        self.child.wait().await.unwrap();
    }

    /// `roster tenant create NAME` against this process; returns the tenant and its token (the
    /// last line of stdout).
    pub async fn create_tenant(&self, data_dir: &Path, name: &str) -> Tenant {
        let output = Command::new(env!("CARGO_BIN_EXE_roster"))
            .args(["tenant", "create", name, "--grpc", &self.grpc.to_string()])
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
        let token = String::from_utf8(output.stdout)
            .unwrap()
            .lines()
            .last()
            .unwrap()
            .to_owned();
        self.tenant(name, &token)
    }

    /// A tenant's SCIM endpoint on this process.
    pub fn tenant(&self, name: &str, token: &str) -> Tenant {
        Tenant {
            base: format!("http://{}/scim/v2/{name}", self.http),
            token: token.to_owned(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .build()
                .unwrap(),
        }
    }
}

/// Asserts `body` is exactly a SCIM 400 `invalidValue` error (one schema, status as a string),
/// as a response or inside a Bulk result.
#[track_caller]
pub fn assert_invalid_value(body: &Value) {
    assert_eq!(
        body["schemas"],
        serde_json::json!(["urn:ietf:params:scim:api:messages:2.0:Error"]),
        "{body}"
    );
    assert_eq!(body["status"], "400", "{body}");
    assert_eq!(body["scimType"], "invalidValue", "{body}");
}

/// One tenant's SCIM endpoint and token.
#[derive(Clone)]
pub struct Tenant {
    pub base: String,
    pub token: String,
    pub client: reqwest::Client,
}

/// A response: status, headers and JSON body (`Null` when empty).
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    #[track_caller]
    pub fn expect(self, status: u16) -> Value {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        self.body
    }

    /// Asserts a SCIM error with `status` and `scim_type`.
    #[track_caller]
    pub fn expect_error(self, status: u16, scim_type: Option<&str>) -> Value {
        let body = self.expect(status);
        assert_eq!(
            body["schemas"][0],
            "urn:ietf:params:scim:api:messages:2.0:Error"
        );
        assert_eq!(
            body["status"],
            Value::String(status.to_string()),
            "status is a string"
        );
        assert_eq!(
            body.get("scimType").and_then(Value::as_str),
            scim_type,
            "{body}"
        );
        body
    }
}

pub async fn reply(response: reqwest::Response) -> Reply {
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
    };
    if !body.is_null() {
        assert_eq!(
            headers.get("content-type").and_then(|v| v.to_str().ok()),
            Some("application/scim+json"),
            "SCIM responses are application/scim+json"
        );
    }
    Reply {
        status,
        headers,
        body,
    }
}

impl Tenant {
    /// The tenant's name, from its base URL.
    pub fn name(&self) -> &str {
        self.base.rsplit('/').next().unwrap_or_default()
    }

    /// The same tenant and token through another roster's HTTP address.
    pub fn via(&self, http: SocketAddr) -> Tenant {
        Tenant {
            base: format!("http://{http}/scim/v2/{}", self.name()),
            token: self.token.clone(),
            client: self.client.clone(),
        }
    }

    /// Every user, following pages: userName → ids seen.
    pub async fn all_users(&self) -> HashMap<String, Vec<String>> {
        let mut users: HashMap<String, Vec<String>> = HashMap::new();
        let mut start = 1;
        loop {
            let page = self
                .get(&format!("/Users?startIndex={start}&count=1000"))
                .await
                .expect(200);
            let resources = page["Resources"].as_array().unwrap();
            for user in resources {
                users
                    .entry(user["userName"].as_str().unwrap().to_owned())
                    .or_default()
                    .push(user["id"].as_str().unwrap().to_owned());
            }
            start += resources.len();
            if resources.is_empty() || start > page["totalResults"].as_u64().unwrap() as usize {
                return users;
            }
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(&self.token)
    }

    pub async fn send(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> Reply {
        let mut request = self.request(method, path);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/scim+json")
                .body(body.to_string());
        }
        reply(request.send().await.unwrap()).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Reply {
        self.send(reqwest::Method::PUT, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> Reply {
        self.send(reqwest::Method::PATCH, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.send(reqwest::Method::DELETE, path, None).await
    }

    /// Creates a user named `user_name` and returns its id.
    pub async fn create_user(&self, user_name: &str) -> String {
        let body = serde_json::json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": user_name,
        });
        let created = self.post("/Users", &body).await.expect(201);
        created["id"].as_str().unwrap().to_owned()
    }

    /// Creates a group with these member ids and returns its id.
    pub async fn create_group<S: AsRef<str>>(&self, name: &str, members: &[S]) -> String {
        let members: Vec<Value> = members
            .iter()
            .map(|id| serde_json::json!({"value": id.as_ref()}))
            .collect();
        let created = self
            .post(
                "/Groups",
                &serde_json::json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                        "displayName": name, "members": members}),
            )
            .await
            .expect(201);
        created["id"].as_str().unwrap().to_owned()
    }

    /// The member ids of a group, sorted.
    pub async fn group_members(&self, group: &str) -> Vec<String> {
        let fetched = self.get(&format!("/Groups/{group}")).await.expect(200);
        let mut ids: Vec<String> = fetched["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|member| member["value"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        ids
    }

    /// The users a filter finds.
    pub async fn find(&self, filter: &str) -> Vec<Value> {
        let path = format!("/Users?filter={}", urlencode(filter));
        let list = self.get(&path).await.expect(200);
        list["Resources"].as_array().unwrap().clone()
    }
}

/// `message` as a gRPC request with `authorization: Bearer <token>`.
pub fn authorized<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

pub fn urlencode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

pub fn patch_op(operations: Value) -> Value {
    serde_json::json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": operations,
    })
}

/// Every key and value of a sled tree, for comparing rebuilt state byte for byte.
/// Opens a stopped roster's database. The previous process's handles are released a moment
/// after shutdown returns (sled's own threads exit last), so a lock still held is waited out.
pub fn open_stopped_database(data_dir: &Path) -> roster_engine::sled::Db {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        match roster_engine::open_database(&data_dir.join("db"), 16 << 20) {
            Ok(db) => return db,
            Err(error) if std::time::Instant::now() < deadline => {
                eprintln!("database not released yet ({error}); retrying");
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(error) => panic!("the database was not released: {error}"),
        }
    }
}

pub fn dump_tree(data_dir: &Path, tree: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    let db = open_stopped_database(data_dir);
    let tree = db.open_tree(tree).unwrap();
    // A view held in memory persists packed blocks: its entries are what they hold.
    if let Some(entries) = roster_engine::resident::persisted_entries(&tree).unwrap() {
        return entries
            .into_iter()
            .map(|(key, value)| (key.to_vec(), value.to_vec()))
            .collect();
    }
    tree.iter()
        .map(|entry| {
            let (key, value) = entry.unwrap();
            (key.to_vec(), value.to_vec())
        })
        .collect()
}
