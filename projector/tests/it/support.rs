//! A known history written by hand: events with chosen times, fed straight to projections.

use roster_engine::domain::{
    Actor, ActorKind, Attributes, Event, EventPayload, GroupId, GroupProfile, ResourceGroupId,
    Source, TenantName, Timestamp, UserId, UserProfile,
};
use uuid::Uuid;

pub fn acme() -> TenantName {
    TenantName::parse("acme").unwrap()
}

pub fn uid(n: u128) -> UserId {
    UserId(Uuid::from_u128(0x100 + n))
}

pub fn gid(n: u128) -> GroupId {
    GroupId(Uuid::from_u128(0x200 + n))
}

pub fn rgid(n: u128) -> ResourceGroupId {
    ResourceGroupId(Uuid::from_u128(0x300 + n))
}

/// Day `n` of a made-up calendar, in microseconds.
pub fn day(n: i64) -> Timestamp {
    Timestamp::from_micros(1_767_225_600_000_000 + n * 86_400_000_000)
}

/// Builds events with increasing sequences.
#[derive(Default)]
pub struct History {
    pub events: Vec<Event>,
}

impl History {
    pub fn at(&mut self, when: Timestamp, payload: EventPayload) -> &mut Self {
        let sequence = self.events.len() as u64 + 1;
        self.events.push(Event {
            id: Uuid::from_u128(sequence as u128),
            tenant: acme(),
            sequence,
            occurred_at: when,
            recorded_at: when,
            actor: Actor {
                kind: ActorKind::ScimToken,
                id: "tok-1".into(),
                display: "entra".into(),
            },
            source: Source {
                ip: "10.0.0.7".into(),
                user_agent: "Microsoft.Identity.Provisioning".into(),
                request_id: format!("req-{sequence}"),
            },
            causation_id: format!("req-{sequence}"),
            payload,
        });
        self
    }
}

pub fn user(n: u128, name: &str) -> EventPayload {
    EventPayload::UserProvisioned {
        user_id: uid(n),
        profile: UserProfile {
            user_name: name.into(),
            external_id: None,
            active: true,
            attributes: Attributes::new(),
        },
        handle: None,
    }
}

pub fn group(n: u128, name: &str) -> EventPayload {
    EventPayload::GroupCreated {
        group_id: gid(n),
        profile: GroupProfile {
            display_name: name.into(),
            external_id: None,
            attributes: Attributes::new(),
        },
    }
}

pub fn open_db() -> (tempfile::TempDir, sled::Db) {
    let dir = tempfile::tempdir().unwrap();
    let db = roster_engine::open_database(&dir.path().join("db"), 8 << 20).unwrap();
    (dir, db)
}
