//! The audit trail: contents of a record, the hash chain, and tampering being caught.

use roster_engine::domain::TenantName;
use roster_engine::domain::{EventPayload, Role, TokenId};
use roster_projector::audit::{BLOCK_RECORDS, block_key, decode_block, encode_block};
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
                usernames: roster_engine::domain::UsernamePolicy::Strict,
            },
        )
        .at(
            day(0),
            EventPayload::TokenIssued {
                token_id: TokenId("t1".into()),
                name: "entra".into(),
                secret_sha256: [42; 32],
                expires_at: None,
                scope: Default::default(),
            },
        )
        .at(day(1), user(1, "alice"))
        .at(
            day(2),
            EventPayload::UserDeactivated {
                user_id: uid(1),
                user_name: "alice".into(),
                external_id: None,
                email: Default::default(),
                sso: Default::default(),
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

/// Rewrites the records of acme's only block (the four records fit in one).
fn tamper(trail: &AuditTrail, change: impl FnOnce(&mut Vec<Vec<u8>>)) {
    let key = block_key(&acme(), 1);
    let block = trail
        .tree()
        .get(&key)
        .unwrap()
        .expect("one block from sequence 1");
    let mut records: Vec<Vec<u8>> = decode_block(&block)
        .unwrap()
        .into_iter()
        .map(<[u8]>::to_vec)
        .collect();
    assert_eq!(records.len(), 4);
    change(&mut records);
    trail
        .tree()
        .insert(key, encode_block(records.iter().map(Vec::as_slice)))
        .unwrap();
}

#[test]
fn an_altered_record_is_named() {
    let (_dir, trail, _) = trail();
    let mut record = records(&trail)[2].clone();
    record.changes.insert("userName".into(), "mallory".into());
    tamper(&trail, |records| {
        records[2] = serde_json::to_vec(&record).unwrap();
    });
    let broken = trail.verify(&acme()).unwrap().first_break.unwrap();
    assert_eq!(broken.sequence, 3);
    assert!(broken.reason.contains("altered"), "{}", broken.reason);
}

#[test]
fn a_removed_record_is_named() {
    let (_dir, trail, _) = trail();
    tamper(&trail, |records| {
        records.remove(1);
    });
    let broken = trail.verify(&acme()).unwrap().first_break.unwrap();
    assert_eq!(
        broken.sequence, 3,
        "the record after the gap no longer chains"
    );
}

#[test]
fn swapped_records_are_named() {
    let (_dir, trail, _) = trail();
    tamper(&trail, |records| records.swap(1, 2));
    let broken = trail.verify(&acme()).unwrap().first_break.unwrap();
    // Record 3 now sits where record 2 was: it is the first that does not chain.
    assert_eq!(broken.sequence, 3, "{}", broken.reason);
    assert!(broken.reason.contains("reordered"), "{}", broken.reason);
}

#[test]
fn a_truncated_tail_is_named() {
    let (_dir, trail, _) = trail();
    tamper(&trail, |records| {
        records.pop();
    });
    let broken = trail.verify(&acme()).unwrap().first_break.unwrap();
    assert_eq!(broken.sequence, 4);
    assert!(
        broken.reason.contains("removed from the end"),
        "{}",
        broken.reason
    );
}

#[test]
fn an_unreadable_block_is_named() {
    let (_dir, trail, _) = trail();
    let key = block_key(&acme(), 1);
    let mut block = trail.tree().get(&key).unwrap().unwrap().to_vec();
    block.truncate(block.len() - 3);
    trail.tree().insert(key, block).unwrap();
    let broken = trail.verify(&acme()).unwrap().first_break.unwrap();
    assert_eq!(broken.sequence, 1);
    assert!(broken.reason.contains("not readable"), "{}", broken.reason);
    assert!(
        trail
            .records(&acme(), 0, u64::MAX)
            .any(|record| record.is_err()),
        "reading the block fails rather than skipping it"
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

/// 300 events over two tenants and a staging branch: several blocks per chain.
fn long_history() -> Vec<roster_engine::domain::Event> {
    let mut history = History::default();
    for n in 0..300u128 {
        history.at(day(n as i64 / 50), user(n, &format!("user-{n}")));
    }
    let mut events = history.events;
    for event in &mut events {
        event.tenant = match event.sequence % 3 {
            0 => acme(),
            1 => TenantName::parse("globex").unwrap(),
            _ => acme().staging_branch(1),
        };
    }
    events
}

fn dump(trail: &AuditTrail) -> Vec<(Vec<u8>, Vec<u8>)> {
    trail
        .tree()
        .iter()
        .map(|entry| {
            let (key, value) = entry.unwrap();
            (key.to_vec(), value.to_vec())
        })
        .collect()
}

#[test]
fn blocks_are_the_same_whatever_the_chunks_and_every_record_reads_back() {
    let events = long_history();
    let (_dir, db) = open_db();
    let trail = AuditTrail::open(&db).unwrap();
    trail.apply(&events).unwrap();
    let at_once = dump(&trail);
    let blocks = at_once.iter().filter(|(key, _)| key[0] == b'B').count();
    // acme holds 200 records (its own and its branch's), globex 100: 4 + 2 blocks of 64.
    assert_eq!(blocks, 6, "{BLOCK_RECORDS} records to a block");

    for chunk in [1, 7, 63, 64, 65, 128] {
        trail.reset().unwrap();
        for events in events.chunks(chunk) {
            trail.apply(events).unwrap();
        }
        assert!(
            dump(&trail) == at_once,
            "chunks of {chunk} wrote other blocks"
        );
    }

    for tenant in [acme(), TenantName::parse("globex").unwrap()] {
        let verification = trail.verify(&tenant).unwrap();
        assert_eq!(verification.first_break, None);
        let all: Vec<_> = trail
            .records(&tenant, 0, u64::MAX)
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(all.len() as u64, verification.records);
        assert_eq!(all.last().unwrap().hash, verification.head);
        // A range that starts and ends inside blocks: exactly the records in it.
        let some: Vec<u64> = trail
            .records(&tenant, 101, 250)
            .map(|record| record.unwrap().sequence)
            .collect();
        let expected: Vec<u64> = all
            .iter()
            .map(|record| record.sequence)
            .filter(|sequence| (101..=250).contains(sequence))
            .collect();
        assert_eq!(some, expected);
        assert!(!some.is_empty());
    }
    assert_eq!(
        trail.verify(&acme()).unwrap().records,
        200,
        "the branch's records join the tenant's chain"
    );
}

#[test]
fn a_trail_of_the_previous_layout_is_cleared_to_be_rebuilt() {
    let (_dir, db) = open_db();
    let tree = db.open_tree(roster_projector::AUDIT_TREE).unwrap();
    // One key per record, as roster wrote it before blocks.
    tree.insert(b"Racme\0\0\0\0\0\0\0\0\x01", b"{}".as_slice())
        .unwrap();
    tree.insert(b"#checkpoint", 1u64.to_be_bytes().as_slice())
        .unwrap();
    let trail = AuditTrail::open(&db).unwrap();
    assert_eq!(trail.checkpoint().unwrap(), 0, "rebuilt from the log");
    assert_eq!(trail.records(&acme(), 0, u64::MAX).count(), 0);
    let events = long_history();
    trail.apply(&events).unwrap();
    assert_eq!(trail.verify(&acme()).unwrap().first_break, None);
    // Opened again, the new layout is kept.
    drop(trail);
    let trail = AuditTrail::open(&db).unwrap();
    assert_eq!(trail.checkpoint().unwrap(), 300);
}
