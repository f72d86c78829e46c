//! Micro-benchmarks of the pure domain, `decide` and `apply`, against a tenant that already holds
//! 10,000 users (so the userName and externalId indexes are realistically deep) and a group of
//! 5,000 members:
//!
//! - `decide/provision_user`: a new user, through the uniqueness checks; `…_name_taken` is the
//!   same command refused because another user holds the userName (case-insensitively);
//! - `decide/replace_user`: a PATCH-like full replacement that changes one attribute (`title`);
//! - `decide/add_1000_members`: 1,000 users added to an empty group (one `GroupMembersAdded`);
//! - `apply/*`: applying each event those commands produce. Every iteration starts from the
//!   same state: what an iteration changed is undone (and the journal drained) outside the timing.
//!
//! Run: `cargo bench -p roster-engine --bench domain` (add `-- apply` to run only the cases whose
//! name contains `apply`). Figures are per command or event: time/op, members/s for the 1,000.

// Benchmark code is test code: a failed unwrap is a broken benchmark, never a production path.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use roster_engine::domain::{
    Attributes, Command, Event, EventPayload, GroupId, GroupProfile, MemberChange, Role, State,
    TenantName, UserId, UserProfile, apply, decide, fold,
};
use roster_engine::testkit::envelope;
use serde_json::json;
use uuid::Uuid;

/// Users already in the tenant.
const USERS: u128 = 10_000;
/// Members of the group that is already populated.
const STAFF: u128 = 5_000;
/// Users added to the empty group in one command.
const ADDED: u128 = 1_000;

fn uid(n: u128) -> UserId {
    UserId(Uuid::from_u128((1 << 64) + n))
}

fn gid(n: u128) -> GroupId {
    GroupId(Uuid::from_u128((2 << 64) + n))
}

/// An Entra-like user: name, work email, title, department.
fn profile(n: u128, title: &str) -> UserProfile {
    let mut attributes = Attributes::new();
    attributes.insert(
        "name".into(),
        json!({"givenName": "Bench", "familyName": format!("User {n}"), "formatted": format!("Bench User {n}")}),
    );
    attributes.insert("displayName".into(), json!(format!("Bench User {n}")));
    attributes.insert(
        "emails".into(),
        json!([{"value": format!("user.{n}@example.com"), "type": "work", "primary": true}]),
    );
    attributes.insert("title".into(), json!(title));
    attributes.insert(
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User".into(),
        json!({"department": format!("Dept {}", n % 40), "employeeNumber": format!("{n:06}")}),
    );
    UserProfile {
        user_name: format!("bench-user-{n}"),
        external_id: Some(format!("00000000-0000-0000-0000-{n:012}")),
        active: true,
        attributes,
    }
}

/// Decides `command` and applies its events; the events, enveloped.
fn execute(state: &mut State, sequence: &mut u64, command: Command) -> Vec<Event> {
    let events: Vec<Event> = decide(state, command)
        .unwrap()
        .into_iter()
        .map(|payload| {
            *sequence += 1;
            envelope(&state.name, *sequence, payload)
        })
        .collect();
    for event in &events {
        apply(state, event);
    }
    drop(std::mem::take(&mut state.journal));
    events
}

/// The tenant: 10k users, a group `all-staff` with 5k members, an empty group `new-hires`.
fn tenant() -> (State, u64) {
    let mut state = State::new(TenantName::parse("bench").unwrap());
    let mut sequence = 0;
    let commands = [Command::CreateTenant {
        default_role: Role::Read,
        first_token: None,
        usernames: roster_engine::domain::UsernamePolicy::Strict,
    }]
    .into_iter()
    .chain((0..USERS).map(|n| Command::ProvisionUser {
        user_id: uid(n),
        profile: profile(n, "Engineer"),
    }))
    .chain((0..2).map(|n| Command::CreateGroup {
        group_id: gid(n),
        profile: GroupProfile {
            display_name: ["all-staff", "new-hires"][n as usize].into(),
            external_id: Some(format!("g-{n}")),
            attributes: Attributes::new(),
        },
        members: Vec::new(),
    }))
    .chain([Command::UpdateGroup {
        group_id: gid(0),
        profile: None,
        member_changes: vec![MemberChange::Add((0..STAFF).map(uid).collect())],
        expected_version: None,
    }]);
    for command in commands {
        execute(&mut state, &mut sequence, command);
    }
    (state, sequence)
}

/// Times `run` over `iters` iterations, undoing each one (and draining the journal) untimed.
fn timed(
    state: &mut State,
    iters: u64,
    mut run: impl FnMut(&mut State),
    mut undo: impl FnMut(&mut State),
) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let started = Instant::now();
        run(state);
        total += started.elapsed();
        undo(state);
        drop(black_box(std::mem::take(&mut state.journal)));
    }
    total
}

fn only(events: Vec<EventPayload>) -> EventPayload {
    assert_eq!(events.len(), 1, "expected one event: {events:?}");
    events.into_iter().next().unwrap()
}

fn domain(c: &mut Criterion) {
    let (mut state, sequence) = tenant();

    // Commands and the events they decide.
    let provision = Command::ProvisionUser {
        user_id: uid(USERS),
        profile: profile(USERS, "Engineer"),
    };
    let mut taken = profile(USERS, "Engineer");
    taken.user_name = "BENCH-USER-4242".into();
    let provision_taken = Command::ProvisionUser {
        user_id: uid(USERS),
        profile: taken,
    };
    let replace = Command::ReplaceUser {
        user_id: uid(4242),
        profile: profile(4242, "Staff Engineer"),
        expected_version: Some(1),
    };
    let add = Command::UpdateGroup {
        group_id: gid(1),
        profile: None,
        member_changes: vec![MemberChange::Add((STAFF..STAFF + ADDED).map(uid).collect())],
        expected_version: None,
    };
    assert!(decide(&state, provision_taken.clone()).is_err());
    let provisioned = envelope(
        &state.name,
        sequence + 1,
        only(decide(&state, provision.clone()).unwrap()),
    );
    let updated = envelope(
        &state.name,
        sequence + 1,
        only(decide(&state, replace.clone()).unwrap()),
    );
    let added = envelope(
        &state.name,
        sequence + 1,
        only(decide(&state, add.clone()).unwrap()),
    );
    assert!(
        matches!(added.payload, EventPayload::GroupMembersAdded { ref user_ids, .. } if user_ids.len() == ADDED as usize)
    );

    let mut group = c.benchmark_group("decide");
    group.throughput(Throughput::Elements(1));
    for (name, command) in [
        ("provision_user", &provision),
        ("provision_user_name_taken", &provision_taken),
        ("replace_user", &replace),
    ] {
        group.bench_function(name, |b| {
            b.iter_batched(
                || command.clone(),
                |command| decide(black_box(&state), command),
                BatchSize::SmallInput,
            )
        });
    }
    group.throughput(Throughput::Elements(ADDED as u64));
    group.bench_function("add_1000_members", |b| {
        b.iter_batched(
            || add.clone(),
            |command| decide(black_box(&state), command),
            BatchSize::SmallInput,
        )
    });
    group.finish();

    let mut group = c.benchmark_group("apply");
    group.throughput(Throughput::Elements(1));
    group.bench_function("user_provisioned", |b| {
        let EventPayload::UserProvisioned {
            user_id, profile, ..
        } = &provisioned.payload
        else {
            unreachable!()
        };
        b.iter_custom(|iters| {
            timed(
                &mut state,
                iters,
                |state| apply(state, black_box(&provisioned)),
                |state| {
                    state.users.remove(user_id);
                    state.user_names.remove(&fold(&profile.user_name));
                    if let Some(external_id) = &profile.external_id {
                        state
                            .user_external_ids
                            .remove(&(external_id.clone(), *user_id));
                    }
                    state.loaded.groups_of_users.remove(user_id);
                    state.loaded.resource_groups_of_users.remove(user_id);
                    if let Some(tenant) = state.tenant.as_mut() {
                        tenant.user_count -= 1;
                    }
                },
            )
        })
    });
    // Re-applying the same update only bumps the version again: the same work every time.
    group.bench_function("user_updated", |b| {
        b.iter_custom(|iters| {
            timed(
                &mut state,
                iters,
                |state| apply(state, black_box(&updated)),
                |_| {},
            )
        })
    });
    group.throughput(Throughput::Elements(ADDED as u64));
    group.bench_function("group_members_added_1000", |b| {
        b.iter_custom(|iters| {
            timed(
                &mut state,
                iters,
                |state| apply(state, black_box(&added)),
                |state| {
                    // Forget the edges altogether (removal would leave `false` edges behind), so
                    // every iteration inserts 1,000 new ones.
                    for n in STAFF..STAFF + ADDED {
                        state.set_membership(gid(1), uid(n), false);
                        state.memberships.remove(&(gid(1), uid(n)));
                    }
                    if let Some(Some(group)) = state.groups.get_mut(&gid(1)) {
                        group.member_count = 0;
                    }
                },
            )
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .without_plots();
    targets = domain
}
criterion_main!(benches);
