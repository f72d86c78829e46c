//! Property: for random command sequences, views built incrementally (in chunks of any size)
//! are byte for byte the views rebuilt from sequence 0, and they agree with the domain's rules
//! applied to the complete state.

use std::collections::BTreeSet;

use proptest::prelude::*;
use roster_engine::domain::{Command, Role, State, TenantName, UserId, access, apply, decide};
use roster_engine::testkit::{GROUPS, USERS, command, envelope, gid, uid};
use roster_projector::{AccessRecord, AuditTrail, DirectoryView, Projection};

use crate::support::open_db;

type Dump = Vec<(Vec<u8>, Vec<u8>)>;

fn dump(tree: &sled::Tree) -> Dump {
    tree.iter()
        .map(|entry| {
            let (key, value) = entry.unwrap();
            (key.to_vec(), value.to_vec())
        })
        .collect()
}

/// The directory view's entries as it holds them, and its sled tree once persisted (packed
/// blocks, which depend only on the entries).
fn dump_directory(directory: &DirectoryView) -> (Dump, Dump) {
    let held = directory
        .store()
        .entries(&[], None)
        .map(|entry| {
            let (key, value) = entry.unwrap();
            (key.to_vec(), value.to_vec())
        })
        .collect();
    directory.persist().unwrap();
    (held, dump(directory.store().tree()))
}

/// The events the commands produce, decided against the complete state, and that state.
fn history(commands: Vec<Command>) -> (Vec<roster_engine::domain::Event>, State) {
    let tenant = TenantName::parse("acme").unwrap();
    let mut full = State::new(tenant.clone());
    let mut events = Vec::new();
    let create = Command::CreateTenant {
        default_role: Role::Read,
        first_token: None,
        usernames: roster_engine::domain::UsernamePolicy::Strict,
    };
    for command in std::iter::once(create).chain(commands) {
        if let Ok(payloads) = decide(&full, command) {
            for payload in payloads {
                let event = envelope(&tenant, events.len() as u64 + 1, payload);
                apply(&mut full, &event);
                events.push(event);
            }
        }
    }
    (events, full)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn incremental_views_equal_rebuilt_views_and_follow_the_rules(
        commands in proptest::collection::vec(command(), 1..50),
        cuts in proptest::collection::vec(1..7usize, 1..12),
    ) {
        let (events, full) = history(commands);
        let tenant = TenantName::parse("acme").unwrap();
        let (_dir, db) = open_db();
        let directory = DirectoryView::open(&db).unwrap();
        let audit = AuditTrail::open(&db).unwrap();

        // Incrementally, in chunks of varying size.
        let mut start = 0;
        let mut cut = cuts.iter().cycle();
        while start < events.len() {
            let end = (start + cut.next().copied().unwrap_or(1)).min(events.len());
            directory.apply(&events[start..end]).unwrap();
            audit.apply(&events[start..end]).unwrap();
            start = end;
        }
        let incremental = (dump_directory(&directory), dump(audit.tree()));
        prop_assert!(!incremental.0.0.is_empty() && incremental.0.1.len() > 1, "the view holds and persists entries");

        // The views agree with the rules applied to the complete state.
        for n in 0..USERS {
            let expected = access(&full, uid(n)).map(|access| AccessRecord::from(&access));
            prop_assert_eq!(directory.access(&tenant, &uid(n)).unwrap(), expected, "access of user {}", n);
        }
        let now = events.last().map(|event| event.recorded_at).unwrap();
        for n in 0..GROUPS {
            let expected: Vec<UserId> = full.members_of(gid(n)).collect::<BTreeSet<_>>().into_iter().collect();
            let stored = directory.store().members_of_group(&tenant, &gid(n), None, usize::MAX).unwrap();
            prop_assert_eq!(&stored, &expected);
            let at_now = directory.members_at(&tenant, &gid(n), now, None, usize::MAX).unwrap();
            prop_assert_eq!(&at_now, &expected, "members of group {} at the last event", n);
            let count = directory.store().group(&tenant, &gid(n)).unwrap().map_or(0, |group| group.member_count);
            prop_assert_eq!(count as usize, expected.len());
        }
        prop_assert_eq!(audit.verify(&tenant).unwrap().first_break, None);
        prop_assert_eq!(audit.verify(&tenant).unwrap().records as usize, events.len());

        // Rebuilt from sequence 0 in one pass.
        directory.reset().unwrap();
        audit.reset().unwrap();
        directory.apply(&events).unwrap();
        audit.apply(&events).unwrap();
        let rebuilt = (dump_directory(&directory), dump(audit.tree()));
        prop_assert!(incremental == rebuilt, "incremental and rebuilt views differ");
    }
}
