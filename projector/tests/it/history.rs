//! Point in time: members of a group and access of a user at a moment, over a known history of
//! joins, leaves, role changes and deactivation.

use roster_engine::domain::{EventPayload, Role};
use roster_projector::{DirectoryView, Grant, Projection, Via};

use crate::support::*;

/// Day 0: tenant, alice, bob, Engineering (→ write), Admins (→ admin), resource group "models"
/// linked to Engineering with read. Day 1: alice joins Engineering. Day 2: bob joins. Day 3: alice
/// joins Admins. Day 4: the link's role goes to write. Day 5: alice leaves Admins. Day 6: alice is
/// deactivated. Day 7: the default role becomes contributor. Day 8: bob leaves Engineering.
fn known_history() -> History {
    let mut history = History::default();
    history
        .at(
            day(0),
            EventPayload::TenantCreated {
                default_role: Role::Read,
                usernames: roster_engine::domain::UsernamePolicy::Strict,
            },
        )
        .at(day(0), user(1, "alice"))
        .at(day(0), user(2, "bob"))
        .at(day(0), group(1, "Engineering"))
        .at(day(0), group(2, "Admins"))
        .at(
            day(0),
            EventPayload::RoleMappingSet {
                group_id: gid(1),
                role: Role::Write,
            },
        )
        .at(
            day(0),
            EventPayload::RoleMappingSet {
                group_id: gid(2),
                role: Role::Admin,
            },
        )
        .at(
            day(0),
            EventPayload::ResourceGroupCreated {
                resource_group_id: rgid(1),
                name: "models".into(),
            },
        )
        .at(
            day(0),
            EventPayload::ResourceGroupLinked {
                resource_group_id: rgid(1),
                group_id: gid(1),
                role: Role::Read,
            },
        )
        .at(
            day(1),
            EventPayload::GroupMembersAdded {
                group_id: gid(1),
                user_ids: vec![uid(1)],
            },
        )
        .at(
            day(2),
            EventPayload::GroupMembersAdded {
                group_id: gid(1),
                user_ids: vec![uid(2)],
            },
        )
        .at(
            day(3),
            EventPayload::GroupMembersAdded {
                group_id: gid(2),
                user_ids: vec![uid(1)],
            },
        )
        .at(
            day(4),
            EventPayload::ResourceGroupLinkRoleChanged {
                resource_group_id: rgid(1),
                group_id: gid(1),
                role: Role::Write,
            },
        )
        .at(
            day(5),
            EventPayload::GroupMembersRemoved {
                group_id: gid(2),
                user_ids: vec![uid(1)],
            },
        )
        .at(
            day(6),
            EventPayload::UserDeactivated {
                user_id: uid(1),
                user_name: "alice".into(),
                external_id: None,
                email: Default::default(),
                sso: Default::default(),
            },
        )
        .at(
            day(7),
            EventPayload::DefaultRoleSet {
                role: Role::Contributor,
            },
        )
        .at(
            day(8),
            EventPayload::GroupMembersRemoved {
                group_id: gid(1),
                user_ids: vec![uid(2)],
            },
        );
    history
}

fn view_of(history: &History, chunk: usize) -> (tempfile::TempDir, DirectoryView) {
    let (dir, db) = open_db();
    let view = DirectoryView::open(&db).unwrap();
    for events in history.events.chunks(chunk) {
        view.apply(events).unwrap();
    }
    (dir, view)
}

fn org_role(view: &DirectoryView, user: u128, at: i64) -> Option<Role> {
    view.access_at(&acme(), &uid(user), day(at).plus_micros(1))
        .unwrap()
        .and_then(|access| access.org_role)
        .map(|grant| grant.role)
}

fn model_role(view: &DirectoryView, user: u128, at: i64) -> Option<Role> {
    view.access_at(&acme(), &uid(user), day(at).plus_micros(1))
        .unwrap()
        .and_then(|access| access.resource_groups.get(&rgid(1)).map(|grant| grant.role))
}

fn members(view: &DirectoryView, at: i64) -> Vec<roster_engine::domain::UserId> {
    view.members_at(&acme(), &gid(1), day(at).plus_micros(1), None, 100)
        .unwrap()
}

#[test]
fn members_of_a_group_at_each_moment() {
    for chunk in [1, 3, 100] {
        let (_dir, view) = view_of(&known_history(), chunk);
        assert!(members(&view, 0).is_empty());
        assert_eq!(members(&view, 1), vec![uid(1)]);
        assert_eq!(members(&view, 2), vec![uid(1), uid(2)]);
        assert_eq!(
            members(&view, 7),
            vec![uid(1), uid(2)],
            "deactivation keeps membership"
        );
        assert_eq!(members(&view, 8), vec![uid(1)]);
        // The exact instant of a change belongs to the new state.
        assert_eq!(
            view.members_at(&acme(), &gid(1), day(8), None, 100)
                .unwrap(),
            vec![uid(1)]
        );
        assert_eq!(
            view.members_at(&acme(), &gid(1), day(8).plus_micros(-1), None, 100)
                .unwrap(),
            vec![uid(1), uid(2)]
        );
        // Paging.
        assert_eq!(
            view.members_at(&acme(), &gid(1), day(2).plus_micros(1), Some(uid(1)), 100)
                .unwrap(),
            vec![uid(2)]
        );
        assert_eq!(
            view.members_at(&acme(), &gid(1), day(2).plus_micros(1), None, 1)
                .unwrap(),
            vec![uid(1)]
        );
    }
}

#[test]
fn access_of_a_user_at_each_moment() {
    for chunk in [1, 4, 100] {
        let (_dir, view) = view_of(&known_history(), chunk);
        assert_eq!(
            org_role(&view, 1, 0),
            Some(Role::Read),
            "default role before any group"
        );
        assert_eq!(org_role(&view, 1, 1), Some(Role::Write));
        assert_eq!(model_role(&view, 1, 1), Some(Role::Read));
        assert_eq!(org_role(&view, 1, 3), Some(Role::Admin));
        assert_eq!(
            model_role(&view, 1, 4),
            Some(Role::Write),
            "link role change applies at once"
        );
        assert_eq!(
            org_role(&view, 1, 5),
            Some(Role::Write),
            "leaving Admins lowers the role"
        );
        let deactivated = view
            .access_at(&acme(), &uid(1), day(6).plus_micros(1))
            .unwrap()
            .unwrap();
        assert!(!deactivated.active);
        assert_eq!(deactivated.org_role, None);
        assert!(deactivated.resource_groups.is_empty());
        // bob: default role follows the default role in effect at the moment asked about.
        assert_eq!(org_role(&view, 2, 1), Some(Role::Read));
        assert_eq!(org_role(&view, 2, 2), Some(Role::Write));
        assert_eq!(
            org_role(&view, 2, 8),
            Some(Role::Contributor),
            "back to the default, now contributor"
        );
        assert_eq!(model_role(&view, 2, 8), None);
        // Before the user existed: nothing.
        assert_eq!(view.access_at(&acme(), &uid(1), day(-1)).unwrap(), None);
    }
}

#[test]
fn current_access_and_resource_group_members_follow_the_last_event() {
    let (_dir, view) = view_of(&known_history(), 5);
    let bob = view.access(&acme(), &uid(2)).unwrap().unwrap();
    assert_eq!(
        bob.org_role,
        Some(Grant {
            role: Role::Contributor,
            via: Via::Default
        })
    );
    let alice = view.access(&acme(), &uid(1)).unwrap().unwrap();
    assert!(!alice.active);
    assert!(
        view.resource_group_members(&acme(), &rgid(1), None, 10)
            .unwrap()
            .is_empty()
    );
    let (_dir, earlier) = view_of(
        &History {
            events: known_history().events[..13].to_vec(),
        },
        2,
    );
    let members = earlier
        .resource_group_members(&acme(), &rgid(1), None, 10)
        .unwrap();
    assert_eq!(members.len(), 2);
    assert_eq!(
        members[0].grant,
        Grant {
            role: Role::Write,
            via: Via::Group(gid(1))
        }
    );
}

#[test]
fn a_deleted_user_has_no_access_from_its_deletion_on() {
    let mut history = known_history();
    history.at(
        day(9),
        EventPayload::UserDeleted {
            user_id: uid(2),
            user_name: "bob".into(),
            external_id: None,
            email: Default::default(),
            sso: Default::default(),
        },
    );
    let (_dir, view) = view_of(&history, 3);
    assert_eq!(view.access(&acme(), &uid(2)).unwrap(), None);
    assert_eq!(
        view.access_at(&acme(), &uid(2), day(9).plus_micros(1))
            .unwrap(),
        None
    );
    assert!(
        view.access_at(&acme(), &uid(2), day(8).plus_micros(1))
            .unwrap()
            .is_some()
    );
}
