//! Staging: the live directory freezes, a branch takes the IdP's changes, promotion makes the
//! live directory the branch's (and the diff shows exactly that), discard leaves it alone.

use super::*;

fn staged() -> Scenario {
    tenant_with_users(2)
        .after(create_group(1, "Readers", &[1, 2]))
        .after(create_group(2, "Admins", &[]))
        .after(Command::SetRoleMapping {
            group_id: gid(2),
            role: Some(Role::Admin),
        })
        .after(Command::SetRoleMapping {
            group_id: gid(1),
            role: Some(Role::Contributor),
        })
        .after(Command::StageTenant)
}

/// A branch of `acme` holding a copy of `live`'s directory, open for SCIM.
fn branch_of(live: &Scenario) -> Scenario {
    let mut branch = Scenario {
        state: State::new(live.state.name.staging_branch(1)),
        clock: 100,
    };
    let directory = BranchDirectory::of(&live.state);
    branch = branch.after(Command::OpenBranch);
    branch = branch.after(Command::CopyToBranch(BranchCopy {
        users: directory.users.clone().into_iter().collect(),
        groups: directory
            .groups
            .iter()
            .map(|(id, profile)| {
                let members = directory.members[id].iter().copied().collect();
                (*id, profile.clone(), members)
            })
            .collect(),
        handles: Default::default(),
        usernames: None,
    }));
    branch.after(Command::SetBranchState(BranchState::Open))
}

#[test]
fn staging_freezes_the_live_directory_but_not_its_administration() {
    let live = staged();
    assert!(matches!(
        live.state.tenant.as_ref().unwrap().staging,
        Some(Staging { generation: 1, .. })
    ));
    assert_eq!(
        live.when(Command::StageTenant),
        Err(Rejection::AlreadyStaged)
    );
    assert_eq!(
        live.when(provision(9, "late")),
        Err(Rejection::TenantStaged)
    );
    assert_eq!(
        live.when(change_members(1, vec![MemberChange::Add(users(&[1]))])),
        Err(Rejection::TenantStaged)
    );
    assert!(
        live.when(Command::SetRoleMapping {
            group_id: gid(1),
            role: Some(Role::Write),
        })
        .is_ok()
    );
    let discarded = live.after(Command::DiscardStaging);
    assert_eq!(discarded.state.tenant.as_ref().unwrap().staging, None);
    assert_eq!(
        discarded.when(Command::DiscardStaging),
        Err(Rejection::NotStaged)
    );
    assert!(discarded.when(provision(9, "late")).is_ok());
    assert_eq!(
        discarded.when(Command::StageTenant),
        Ok(vec![EventPayload::TenantStaged { generation: 2 }])
    );
}

#[test]
fn a_branch_takes_writes_only_once_its_copy_is_done_and_until_it_freezes() {
    let live = staged();
    let branch = Scenario {
        state: State::new(live.state.name.staging_branch(1)),
        clock: 0,
    }
    .after(Command::OpenBranch);
    assert!(matches!(
        branch.when(provision(9, "early")),
        Err(Rejection::BranchNotWritable(..))
    ));
    let copy = BranchCopy {
        users: vec![(uid(1), profile("user-1"))],
        groups: Vec::new(),
        handles: Default::default(),
        usernames: None,
    };
    let branch = branch.after(Command::CopyToBranch(copy.clone()));
    // Resuming an interrupted copy skips what is there.
    assert_eq!(branch.when(Command::CopyToBranch(copy)), Ok(Vec::new()));
    let branch = branch.after(Command::SetBranchState(BranchState::Open));
    assert!(branch.when(provision(9, "new")).is_ok());
    let frozen = branch.after(Command::SetBranchState(BranchState::Frozen));
    assert!(matches!(
        frozen.when(provision(9, "late")),
        Err(Rejection::BranchNotWritable(..))
    ));
    let dropped = frozen.after(Command::DropBranch);
    assert_eq!(dropped.state.tenant, None);
    assert!(dropped.state.users.is_empty());
    assert_eq!(dropped.when(Command::DropBranch), Ok(Vec::new()));
    // A write routed here just before the drop is retried (503), not told "not found" (404),
    // which could make the IdP create the resource again.
    assert!(matches!(
        dropped.when(provision(9, "racing")),
        Err(Rejection::BranchNotWritable(..))
    ));
    // Staging commands stay where they belong.
    assert!(matches!(
        live.when(Command::OpenBranch),
        Err(Rejection::NotABranch(_))
    ));
    assert!(matches!(
        dropped.when(Command::StageTenant),
        Err(Rejection::NotABranch(_))
    ));
}

#[test]
fn promotion_makes_the_live_directory_the_branchs_and_the_diff_says_so() {
    let live = staged();
    let branch = branch_of(&live)
        .after(provision(3, "carol"))
        .after(change_members(2, vec![MemberChange::Add(users(&[1, 3]))]))
        .after(change_members(1, vec![MemberChange::Remove(users(&[1]))]))
        .after(Command::SetUserActive {
            user_id: uid(2),
            active: false,
            expected_version: None,
        });
    let directory = BranchDirectory::of(&branch.state);
    let diff = promotion_diff(&live.state, 1, &directory).unwrap();
    let change = |user: u128| {
        diff.users
            .iter()
            .find(|change| change.user_id == uid(user))
            .cloned()
            .unwrap()
    };
    let carol = change(3);
    assert_eq!(carol.lifecycle, Lifecycle::Created);
    assert_eq!(carol.before, None);
    assert_eq!(
        carol.after.unwrap().org_role,
        Some(RoleGrant {
            role: Role::Admin,
            grant: Grant::Group(gid(2)),
        })
    );
    let first = change(1);
    assert_eq!(first.lifecycle, Lifecycle::Unchanged);
    assert_eq!(first.groups_joined, vec![gid(2)]);
    assert_eq!(first.groups_left, vec![gid(1)]);
    assert_eq!(
        first.before.unwrap().org_role.unwrap().role,
        Role::Contributor
    );
    assert_eq!(first.after.unwrap().org_role.unwrap().role, Role::Admin);
    let second = change(2);
    assert_eq!(second.lifecycle, Lifecycle::Deactivated);
    assert_eq!(second.after.unwrap().org_role, None);
    assert_eq!(diff.users.len(), 3);

    let events = live
        .when(Command::PromoteStaging {
            generation: 1,
            branch: Box::new(directory.clone()),
        })
        .unwrap();
    assert_eq!(events.len(), diff.events);
    assert_eq!(
        events.last(),
        Some(&EventPayload::StagingPromoted { generation: 1 })
    );
    let mut promoted = live;
    promoted.record(events);
    assert_eq!(BranchDirectory::of(&promoted.state), directory);
    assert_eq!(promoted.state.tenant.as_ref().unwrap().staging, None);
    assert_eq!(promoted.state.role_mapping(&gid(2)), Some(Role::Admin));
    assert!(promoted.when(provision(9, "after")).is_ok());
}

#[test]
fn promotion_deletes_what_the_branch_deleted_with_its_mappings() {
    let live = staged();
    let branch = branch_of(&live)
        .after(Command::DeleteGroup {
            group_id: gid(1),
            expected_version: None,
        })
        .after(Command::DeleteUser {
            user_id: uid(2),
            expected_version: None,
        });
    let directory = BranchDirectory::of(&branch.state);
    let diff = promotion_diff(&live.state, 1, &directory).unwrap();
    let deleted = diff
        .users
        .iter()
        .find(|change| change.user_id == uid(2))
        .unwrap();
    assert_eq!(deleted.lifecycle, Lifecycle::Deleted);
    assert_eq!(deleted.after, None);
    // The group goes with its role mapping; the diff says so even for groups without members.
    assert_eq!(
        diff.groups,
        vec![GroupChange {
            group_id: gid(1),
            display_name: "Readers".into(),
            previous_display_name: None,
            lifecycle: Lifecycle::Deleted,
            role_mapping_removed: Some(Role::Contributor),
            unlinked_resource_groups: Vec::new(),
        }]
    );
    let mut promoted = live;
    let events = promoted
        .when(Command::PromoteStaging {
            generation: 1,
            branch: Box::new(directory.clone()),
        })
        .unwrap();
    assert!(events.contains(&EventPayload::RoleMappingRemoved { group_id: gid(1) }));
    promoted.record(events);
    assert_eq!(BranchDirectory::of(&promoted.state), directory);
    assert_eq!(promoted.state.role_mapping(&gid(1)), None);
    assert_eq!(promoted.state.tenant.as_ref().unwrap().user_count, 1);
}

#[test]
fn renames_are_ordered_so_each_name_is_free_when_taken_and_swaps_are_refused() {
    let live = staged();
    let rename = |user: u128, name: &str| Command::ReplaceUser {
        user_id: uid(user),
        profile: profile(name),
        expected_version: None,
    };
    // user-1 takes user-2's name after user-2 moved on: fine in either order of ids.
    let branch = branch_of(&live)
        .after(rename(2, "user-3"))
        .after(rename(1, "user-2"));
    let directory = BranchDirectory::of(&branch.state);
    let mut promoted = staged();
    let events = promoted
        .when(Command::PromoteStaging {
            generation: 1,
            branch: Box::new(directory.clone()),
        })
        .unwrap();
    promoted.record(events);
    assert_eq!(promoted.state.user_id_by_name("user-2"), Some(uid(1)));
    assert_eq!(promoted.state.user_id_by_name("user-3"), Some(uid(2)));
    assert_eq!(promoted.state.user_id_by_name("user-1"), None);

    // A swap through a temporary name in the branch cannot be replayed in one step.
    let swapped = branch_of(&live)
        .after(rename(1, "temp"))
        .after(rename(2, "user-1"))
        .after(rename(1, "user-2"));
    let directory = BranchDirectory::of(&swapped.state);
    assert!(matches!(
        live.when(Command::PromoteStaging {
            generation: 1,
            branch: Box::new(directory),
        }),
        Err(Rejection::PromotionNameCycle(_))
    ));
}

#[test]
fn promotion_checks_the_staging_it_was_computed_for() {
    let live = staged();
    let directory = BranchDirectory::of(&live.state);
    assert_eq!(
        live.when(Command::PromoteStaging {
            generation: 2,
            branch: Box::new(directory.clone()),
        }),
        Err(Rejection::StagingChanged {
            expected: 2,
            actual: Some(1)
        })
    );
    let unstaged = live.after(Command::DiscardStaging);
    assert_eq!(
        unstaged.when(Command::PromoteStaging {
            generation: 1,
            branch: Box::new(directory),
        }),
        Err(Rejection::NotStaged)
    );
}
