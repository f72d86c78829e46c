//! The audit trail: contents of a record, the hash chain, and tampering being caught.

use roster_engine::domain::{EventPayload, Role, TokenId};
use roster_projector::{AuditRecord, AuditTrail, Projection};

use crate::support::*;

fn trail() -> (tempfile::TempDir, AuditTrail, History) {
    let (dir, db) = open_db();
    let trail = AuditTrail::open(&db).unwrap();
    let mut history = History::default();
    history
        .at(
            day(0),
            EventPayload::TenantCreated {
                default_role: Role::Read,
            },
        )
        .at(
            day(0),
            EventPayload::TokenIssued {
                token_id: TokenId("t1".into()),
                name: "entra".into(),
                secret_sha256: [42; 32],
                expires_at: None,
            },
        )
        .at(day(1), user(1, "alice"))
        .at(
            day(2),
            EventPayload::UserDeactivated {
                user_id: uid(1),
                user_name: "alice".into(),
                external_id: None,
            },
        );
    for events in history.events.chunks(2) {
        trail.apply(events).unwrap();
    }
    (dir, trail, history)
}

fn records(trail: &AuditTrail) -> Vec<AuditRecord> {
    trail
        .records(&acme(), 0, u64::MAX)
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn each_event_has_one_record_with_who_what_when_where() {
    let (_dir, trail, _) = trail();
    let records = records(&trail);
    assert_eq!(records.len(), 4);
    let deactivation = &records[3];
    assert_eq!(deactivation.event_type, "user.deactivated");
    assert_eq!(deactivation.target, uid(1).to_string());
    assert_eq!(deactivation.actor.kind, "scim_token");
    assert_eq!(deactivation.actor.id, "tok-1");
    assert_eq!(deactivation.source.ip, "10.0.0.7");
    assert_eq!(deactivation.source.request_id, "req-4");
    assert_eq!(deactivation.outcome, "success");
    assert_eq!(deactivation.occurred_at, day(2).to_rfc3339());
    assert_eq!(deactivation.changes["active"], false);
    assert_eq!(deactivation.prev_hash, records[2].hash);
}

#[test]
fn token_secrets_never_reach_the_trail() {
    let (_dir, trail, _) = trail();
    let issued = &records(&trail)[1];
    assert_eq!(issued.changes["tokenId"], "t1");
    let text = serde_json::to_string(issued).unwrap();
    assert!(!text.contains("secret"), "{text}");
    assert!(!text.contains(&hex::encode([42u8; 32])), "{text}");
}

#[test]
fn an_untouched_chain_verifies() {
    let (_dir, trail, _) = trail();
    let verification = trail.verify(&acme()).unwrap();
    assert_eq!(verification.first_break, None);
    assert_eq!(verification.records, 4);
    assert_eq!(verification.head, records(&trail)[3].hash);
}

fn key_of(sequence: u64) -> Vec<u8> {
    let mut key = vec![b'R'];
    key.extend_from_slice(b"acme\0");
    key.extend_from_slice(&sequence.to_be_bytes());
    key
}

#[test]
fn an_altered_record_is_named() {
    let (_dir, trail, _) = trail();
    let mut record = records(&trail)[2].clone();
    record.changes.insert("userName".into(), "mallory".into());
    trail
        .tree()
        .insert(key_of(3), serde_json::to_vec(&record).unwrap())
        .unwrap();
    let broken = trail.verify(&acme()).unwrap().first_break.unwrap();
    assert_eq!(broken.sequence, 3);
    assert!(broken.reason.contains("altered"), "{}", broken.reason);
}

#[test]
fn a_removed_record_is_named() {
    let (_dir, trail, _) = trail();
    trail.tree().remove(key_of(2)).unwrap();
    let broken = trail.verify(&acme()).unwrap().first_break.unwrap();
    assert_eq!(
        broken.sequence, 3,
        "the record after the gap no longer chains"
    );
}

#[test]
fn swapped_records_are_named() {
    let (_dir, trail, _) = trail();
    let all = records(&trail);
    trail
        .tree()
        .insert(key_of(2), serde_json::to_vec(&all[2]).unwrap())
        .unwrap();
    trail
        .tree()
        .insert(key_of(3), serde_json::to_vec(&all[1]).unwrap())
        .unwrap();
    let broken = trail.verify(&acme()).unwrap().first_break.unwrap();
    assert_eq!(broken.sequence, 2);
}

#[test]
fn a_truncated_tail_is_named() {
    let (_dir, trail, _) = trail();
    trail.tree().remove(key_of(4)).unwrap();
    let broken = trail.verify(&acme()).unwrap().first_break.unwrap();
    assert_eq!(broken.sequence, 4);
    assert!(
        broken.reason.contains("removed from the end"),
        "{}",
        broken.reason
    );
}

#[test]
fn rebuilding_the_trail_gives_the_same_hashes() {
    let (_dir, trail, history) = trail();
    let before = records(&trail);
    trail.reset().unwrap();
    trail.apply(&history.events).unwrap();
    assert_eq!(records(&trail), before);
}
