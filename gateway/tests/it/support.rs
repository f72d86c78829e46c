//! Starting the real stack for tests, and small HTTP helpers.

use std::net::SocketAddr;
use std::path::Path;

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use roster_gateway::app::{self, Config, Running};
use roster_proto::v1 as pb;
use roster_proto::v1::admin_client::AdminClient;
use serde_json::Value;
use tempfile::TempDir;
use tonic::transport::Channel;

fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A running roster on a temporary data directory.
pub struct Stack {
    pub running: Running,
    pub dir: TempDir,
    pub client: reqwest::Client,
}

impl Stack {
    pub async fn start() -> Stack {
        Self::start_in(tempfile::tempdir().unwrap()).await
    }

    pub async fn start_in(dir: TempDir) -> Stack {
        let running = app::start(Config::new(dir.path().join("data"), any_port(), any_port()))
            .await
            .expect("roster starts");
        Stack {
            running,
            dir,
            client: reqwest::Client::new(),
        }
    }

    /// Stops roster cleanly and starts it again on the same data directory.
    pub async fn restart(self) -> Stack {
        let Stack { running, dir, .. } = self;
        running.shutdown().await;
        Self::start_in(dir).await
    }

    pub fn data_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("data")
    }

    pub fn http_url(&self) -> String {
        format!("http://{}", self.running.http_addr)
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
        let response = self
            .admin()
            .await
            .create_tenant(self.with_admin_token(pb::CreateTenantRequest {
                name: name.into(),
                token_name: "test".into(),
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

    /// The users a filter finds.
    pub async fn find(&self, filter: &str) -> Vec<Value> {
        let path = format!("/Users?filter={}", urlencode(filter));
        let list = self.get(&path).await.expect(200);
        list["Resources"].as_array().unwrap().clone()
    }
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
pub fn dump_tree(data_dir: &Path, tree: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    let db = roster_engine::open_database(&data_dir.join("db"), 16 << 20).unwrap();
    let tree = db.open_tree(tree).unwrap();
    tree.iter()
        .map(|entry| {
            let (key, value) = entry.unwrap();
            (key.to_vec(), value.to_vec())
        })
        .collect()
}
