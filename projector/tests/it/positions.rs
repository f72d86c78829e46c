//! The position index against the plain walk: after creates and deletes anywhere in id order,
//! in chunks of any size, a deep page through the index is the page the walk finds.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use roster_engine::domain::{EventPayload, GroupId, Role, UserId};
use roster_projector::positions::{BLOCK, Listing};
use roster_projector::{DirectoryView, Projection};
use uuid::Uuid;

use crate::support::*;

fn user_ids(view: &DirectoryView, skip: usize, take: usize) -> Vec<UserId> {
    view.users_skipping(&acme(), skip)
        .unwrap()
        .take(take)
        .map(|record| record.unwrap().id)
        .collect()
}

fn walked_user_ids(view: &DirectoryView, skip: usize, take: usize) -> Vec<UserId> {
    view.store()
        .users_skipping(&acme(), skip)
        .take(take)
        .map(|record| record.unwrap().id)
        .collect()
}

fn group_ids(view: &DirectoryView, skip: usize, take: usize) -> Vec<GroupId> {
    view.groups_skipping(&acme(), skip)
        .unwrap()
        .take(take)
        .map(|record| record.unwrap().id)
        .collect()
}

fn walked_group_ids(view: &DirectoryView, skip: usize, take: usize) -> Vec<GroupId> {
    view.store()
        .groups_skipping(&acme(), skip)
        .take(take)
        .map(|record| record.unwrap().id)
        .collect()
}

fn check(view: &DirectoryView, users: usize, groups: usize) {
    for skip in (0..users + 3)
        .step_by(97)
        .chain([BLOCK, 2 * BLOCK + 1, users])
    {
        assert_eq!(
            user_ids(view, skip, 5),
            walked_user_ids(view, skip, 5),
            "users from {skip}"
        );
    }
    for skip in (0..groups + 3).step_by(31).chain([BLOCK, groups]) {
        assert_eq!(
            group_ids(view, skip, 3),
            walked_group_ids(view, skip, 3),
            "groups from {skip}"
        );
    }
}

#[test]
fn deep_pages_through_the_index_equal_the_walk_under_creates_and_deletes() {
    let (_dir, db) = open_db();
    let view = DirectoryView::open(&db).unwrap();
    let mut rng = StdRng::seed_from_u64(12);
    let mut history = History::default();
    history.at(
        day(0),
        EventPayload::TenantCreated {
            default_role: Role::Read,
            usernames: roster_engine::domain::UsernamePolicy::Strict,
        },
    );
    let mut users: Vec<u128> = Vec::new();
    let mut groups: Vec<u128> = Vec::new();
    let mut next = 1u128 << 64;
    for _ in 0..1500 {
        next += 1 << 20;
        users.push(next);
        history.at(day(0), user_at(next));
    }
    for n in 0..400 {
        groups.push(n);
        history.at(day(0), group(n, &format!("g{n}")));
    }
    view.apply(&history.events).unwrap();
    let mut applied = history.events.len();
    check(&view, users.len(), groups.len());
    assert!(view.positions().blocks(&acme(), Listing::Users).is_some());
    assert!(view.positions().blocks(&acme(), Listing::Groups).is_some());

    for round in 0..40 {
        for _ in 0..rng.random_range(1..120) {
            match rng.random_range(0..10) {
                // Appended, as UUIDv7 ids are.
                0..4 => {
                    next += 1 << 20;
                    users.push(next);
                    history.at(day(1), user_at(next));
                }
                // Anywhere in the middle.
                4..6 => {
                    let id = rng.random_range(1..next);
                    if !users.contains(&id) {
                        users.push(id);
                        history.at(day(1), user_at(id));
                    }
                }
                6..9 if !users.is_empty() => {
                    let id = users.swap_remove(rng.random_range(0..users.len()));
                    history.at(
                        day(1),
                        EventPayload::UserDeleted {
                            user_id: UserId(Uuid::from_u128(id)),
                            user_name: format!("u{id}"),
                            external_id: None,
                            email: Default::default(),
                            sso: Default::default(),
                        },
                    );
                }
                _ if !groups.is_empty() => {
                    let n = groups.swap_remove(rng.random_range(0..groups.len()));
                    history.at(
                        day(1),
                        EventPayload::GroupDeleted {
                            group_id: gid(n),
                            display_name: format!("g{n}"),
                        },
                    );
                }
                _ => {}
            }
        }
        // Chunks of any size, like the projector's steps.
        let pending = &history.events[applied..];
        for events in pending.chunks(rng.random_range(1..64)) {
            view.apply(events).unwrap();
        }
        applied = history.events.len();
        check(&view, users.len(), groups.len());
        if round == 20 {
            // A rebuild empties the view and the index with it.
            view.reset().unwrap();
            assert!(view.positions().blocks(&acme(), Listing::Users).is_none());
            view.apply(&history.events).unwrap();
            check(&view, users.len(), groups.len());
        }
    }
    let blocks = view.positions().blocks(&acme(), Listing::Users).unwrap();
    assert_eq!(blocks.total(), users.len());
    assert!(blocks.len() <= 2 * users.len() / BLOCK + 2);
}

fn user_at(id: u128) -> EventPayload {
    let mut payload = user(0, &format!("u{id}"));
    if let EventPayload::UserProvisioned { user_id, .. } = &mut payload {
        *user_id = UserId(Uuid::from_u128(id));
    }
    payload
}
