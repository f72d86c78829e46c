//! The slice design's safety net: for random command sequences, deciding against slices loaded
//! from the store (what the engine does) gives exactly the decisions, records and access that
//! deciding against the complete state gives. A footprint that forgets something shows up here.

use std::collections::BTreeSet;

use proptest::prelude::*;
use roster_engine::domain::{
    Actor, Attributes, Command, Event, EventPayload, GroupId, GroupProfile, MemberChange,
    ResourceGroupId, Role, Source, State, TenantName, Timestamp, UserId, UserProfile, access,
    apply, decide,
};
use roster_engine::store::StateStore;
use uuid::Uuid;

const USERS: u128 = 5;
const GROUPS: u128 = 3;
const RESOURCE_GROUPS: u128 = 2;

fn uid(n: u128) -> UserId {
    UserId(Uuid::from_u128(0x100 + n))
}

fn gid(n: u128) -> GroupId {
    GroupId(Uuid::from_u128(0x200 + n))
}

fn rgid(n: u128) -> ResourceGroupId {
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

fn command() -> impl Strategy<Value = Command> {
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

fn envelope(tenant: &TenantName, sequence: u64, payload: EventPayload) -> Event {
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

/// Decides and applies `command` the way the engine does: against a slice loaded by footprint,
/// loading each event's footprint before applying it, then writing back what was journaled.
fn through_store(
    store: &StateStore,
    tenant: &TenantName,
    sequence: &mut u64,
    command: Command,
) -> Result<Vec<EventPayload>, roster_engine::domain::Rejection> {
    let mut slice = store.slice(tenant).unwrap();
    store.load_into(&mut slice, &command.footprint()).unwrap();
    let payloads = decide(&slice, command)?;
    for payload in &payloads {
        store.load_into(&mut slice, &payload.footprint()).unwrap();
        *sequence += 1;
        apply(&mut slice, &envelope(tenant, *sequence, payload.clone()));
    }
    let mut batch = roster_engine::sled::Batch::default();
    store.stage(&mut slice, &mut batch);
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
        let created = Command::CreateTenant { default_role: Role::Read, first_token: None };
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

        prop_assert_eq!(store.tenant(&tenant).unwrap().map(|t| (t.user_count, t.group_count, t.default_role)),
            full.tenant.as_ref().map(|t| (t.user_count, t.group_count, t.default_role)));
        for n in 0..USERS {
            let stored = store.user(&tenant, &uid(n)).unwrap();
            prop_assert_eq!(stored.as_ref().map(|u| (&u.profile, u.version)), full.user(&uid(n)).map(|u| (&u.profile, u.version)));
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
