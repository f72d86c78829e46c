//! The slice design's safety net: for random command sequences, deciding against slices loaded
//! from the store (what the engine does) gives exactly the decisions, records and access that
//! deciding against the complete state gives. A footprint that forgets something shows up here.

use std::collections::BTreeSet;

use proptest::prelude::*;
use roster_engine::domain::{
    Command, EventPayload, GroupId, Role, State, TenantName, UserId, access, apply, decide,
};
use roster_engine::store::StateStore;
use roster_engine::testkit::{
    GROUPS, RESOURCE_GROUPS, SUBJECTS, USERS, command, envelope, gid, rgid, uid,
};

/// Decides and applies `command` the way the engine does: against a slice loaded by footprint,
/// loading each event's footprint before applying it, then writing back what was journaled.
fn through_store(
    store: &StateStore,
    tenant: &TenantName,
    sequence: &mut u64,
    command: Command,
) -> Result<Vec<EventPayload>, roster_engine::domain::Rejection> {
    let mut slice = store.slice(tenant).unwrap();
    store.load_command(&mut slice, &command).unwrap();
    let payloads = decide(&slice, command)?;
    for payload in &payloads {
        store.load_into(&mut slice, &payload.footprint()).unwrap();
        *sequence += 1;
        apply(&mut slice, &envelope(tenant, *sequence, payload.clone()));
    }
    let mut batch = roster_engine::sled::Batch::default();
    store.stage(&mut slice, &mut batch).unwrap();
    store.stage_checkpoint(&mut batch, tenant, *sequence);
    store.apply_batch(batch).unwrap();
    Ok(payloads)
}

fn members(state: &State, group: GroupId) -> BTreeSet<UserId> {
    state.members_of(group).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn slices_decide_exactly_like_the_full_state(commands in proptest::collection::vec(command(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let db = roster_engine::open_database(&dir.path().join("db"), 8 << 20).unwrap();
        let store = StateStore::open(&db, "aggregate").unwrap();
        let tenant = TenantName::parse("acme").unwrap();
        let mut full = State::new(tenant.clone());
        let mut sequence = 0;
        // Both paths number events the same way, so timestamps agree.
        let mut full_sequence = 0;
        let created = Command::CreateTenant { default_role: Role::Read, first_token: None, usernames: roster_engine::domain::UsernamePolicy::Strict };
        for payload in decide(&full, created.clone()).unwrap() {
            full_sequence += 1;
            apply(&mut full, &envelope(&tenant, full_sequence, payload));
        }
        through_store(&store, &tenant, &mut sequence, created).unwrap();

        for command in commands {
            let expected = decide(&full, command.clone());
            if let Ok(payloads) = &expected {
                for payload in payloads {
                    full_sequence += 1;
                    apply(&mut full, &envelope(&tenant, full_sequence, payload.clone()));
                }
            }
            let actual = through_store(&store, &tenant, &mut sequence, command.clone());
            prop_assert_eq!(&actual, &expected, "decision for {:?}", command);
        }

        prop_assert_eq!(store.tenant(&tenant).unwrap(), full.tenant.clone());
        for subject in SUBJECTS {
            prop_assert_eq!(store.user_id_by_subject(&tenant, subject).unwrap(), full.user_id_by_subject(subject));
            // Users may share an externalId: the store's index lists every holder.
            prop_assert_eq!(store.user_ids_by_external_id(&tenant, subject).unwrap(), full.user_ids_by_external_id(subject));
        }
        for n in 0..USERS {
            let stored = store.user(&tenant, &uid(n)).unwrap();
            prop_assert_eq!(stored.as_ref().map(|u| (&u.profile, u.version, &u.sso)), full.user(&uid(n)).map(|u| (&u.profile, u.version, &u.sso)));
            let mut slice = store.slice(&tenant).unwrap();
            store.load_access(&mut slice, uid(n)).unwrap();
            prop_assert_eq!(access(&slice, uid(n)), access(&full, uid(n)), "access of user {}", n);
        }
        for n in 0..GROUPS {
            let stored = store.group(&tenant, &gid(n)).unwrap();
            prop_assert_eq!(stored.as_ref().map(|g| (&g.profile, g.member_count, g.version)),
                full.group(&gid(n)).map(|g| (&g.profile, g.member_count, g.version)));
            let stored_members: BTreeSet<UserId> =
                store.members_of_group(&tenant, &gid(n), None, usize::MAX).unwrap().into_iter().collect();
            prop_assert_eq!(stored_members, members(&full, gid(n)));
            prop_assert_eq!(store.role_mapping(&tenant, &gid(n)).unwrap(), full.role_mapping(&gid(n)));
        }
        for n in 0..RESOURCE_GROUPS {
            let stored = store.resource_group(&tenant, &rgid(n)).unwrap();
            prop_assert_eq!(stored.as_ref(), full.resource_group(&rgid(n)));
        }
    }
}
