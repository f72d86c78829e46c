//! Effective access: org roles from group mappings, resource-group roles from links.

use super::*;

fn org_role(scenario: &Scenario, user: u128) -> Option<Role> {
    access(&scenario.state, uid(user))
        .unwrap()
        .org_role
        .map(|grant| grant.role)
}

fn resource_group_role(scenario: &Scenario, user: u128, resource_group: u128) -> Option<RoleGrant> {
    access(&scenario.state, uid(user))
        .unwrap()
        .resource_groups
        .get(&rgid(resource_group))
        .cloned()
}

fn with_mappings() -> Scenario {
    tenant_with_users(3)
        .after(create_group(1, "Readers", &[1, 2]))
        .after(create_group(2, "Admins", &[2]))
        .after(create_group(3, "Writers", &[2]))
        .after(Command::SetRoleMapping {
            group_id: gid(1),
            role: Some(Role::Read),
        })
        .after(Command::SetRoleMapping {
            group_id: gid(2),
            role: Some(Role::Admin),
        })
        .after(Command::SetRoleMapping {
            group_id: gid(3),
            role: Some(Role::Write),
        })
}

#[test]
fn without_a_mapped_group_the_org_role_is_the_default() {
    let scenario = with_mappings().after(Command::SetDefaultRole {
        role: Role::Contributor,
    });
    let access = access(&scenario.state, uid(3)).unwrap();
    assert_eq!(
        access.org_role,
        Some(RoleGrant {
            role: Role::Contributor,
            grant: Grant::Default
        })
    );
}

#[test]
fn the_highest_mapped_role_over_the_users_groups_wins() {
    let scenario = with_mappings();
    assert_eq!(org_role(&scenario, 1), Some(Role::Read));
    let access = access(&scenario.state, uid(2)).unwrap();
    assert_eq!(
        access.org_role,
        Some(RoleGrant {
            role: Role::Admin,
            grant: Grant::Group(gid(2))
        })
    );
}

#[test]
fn leaving_the_granting_group_lowers_the_role() {
    let scenario =
        with_mappings().after(change_members(2, vec![MemberChange::Remove(users(&[2]))]));
    assert_eq!(org_role(&scenario, 2), Some(Role::Write));
}

#[test]
fn a_deactivated_user_has_no_access_and_gets_it_back_on_reactivation() {
    let scenario = with_mappings().after(Command::SetUserActive {
        user_id: uid(2),
        active: false,
        expected_version: None,
    });
    let access_now = access(&scenario.state, uid(2)).unwrap();
    assert!(!access_now.active);
    assert_eq!(access_now.org_role, None);
    assert!(access_now.resource_groups.is_empty());
    let scenario = scenario.after(Command::SetUserActive {
        user_id: uid(2),
        active: true,
        expected_version: None,
    });
    assert_eq!(org_role(&scenario, 2), Some(Role::Admin));
}

#[test]
fn resource_group_role_is_the_highest_over_linked_groups() {
    let scenario = with_mappings()
        .after(Command::CreateResourceGroup {
            resource_group_id: rgid(1),
            name: "models".into(),
        })
        .after(Command::LinkResourceGroup {
            resource_group_id: rgid(1),
            group_id: gid(1),
            role: Role::Read,
        })
        .after(Command::LinkResourceGroup {
            resource_group_id: rgid(1),
            group_id: gid(3),
            role: Role::Write,
        });
    assert_eq!(
        resource_group_role(&scenario, 1, 1),
        Some(RoleGrant {
            role: Role::Read,
            grant: Grant::Group(gid(1))
        })
    );
    assert_eq!(
        resource_group_role(&scenario, 2, 1),
        Some(RoleGrant {
            role: Role::Write,
            grant: Grant::Group(gid(3))
        })
    );
    assert_eq!(resource_group_role(&scenario, 3, 1), None);
    // Changing a link's role applies to every member at once.
    let scenario = scenario.after(Command::LinkResourceGroup {
        resource_group_id: rgid(1),
        group_id: gid(1),
        role: Role::Admin,
    });
    assert_eq!(
        resource_group_role(&scenario, 1, 1).unwrap().role,
        Role::Admin
    );
    assert_eq!(
        resource_group_role(&scenario, 2, 1).unwrap().role,
        Role::Admin
    );
    // Unlinking keeps the role the other linked groups give.
    let scenario = scenario.after(Command::UnlinkResourceGroup {
        resource_group_id: rgid(1),
        group_id: gid(1),
    });
    assert_eq!(resource_group_role(&scenario, 1, 1), None);
    assert_eq!(
        resource_group_role(&scenario, 2, 1).unwrap().role,
        Role::Write
    );
}

#[test]
fn manual_members_of_unlinked_resource_groups_have_their_role() {
    let scenario = tenant_with_users(1)
        .after(Command::CreateResourceGroup {
            resource_group_id: rgid(1),
            name: "datasets".into(),
        })
        .after(Command::SetResourceGroupMember {
            resource_group_id: rgid(1),
            user_id: uid(1),
            role: Role::Contributor,
        });
    assert_eq!(
        resource_group_role(&scenario, 1, 1),
        Some(RoleGrant {
            role: Role::Contributor,
            grant: Grant::Manual
        })
    );
}

#[test]
fn unknown_users_have_no_access_record() {
    assert!(access(&tenant_with_users(0).state, uid(1)).is_none());
}

#[test]
fn only_a_group_that_maps_a_role_or_links_a_resource_group_grants_access_by_membership() {
    let scenario = with_mappings()
        .after(create_group(4, "Plain", &[]))
        .after(create_group(5, "Linked", &[]))
        .after(Command::CreateResourceGroup {
            resource_group_id: rgid(1),
            name: "models".into(),
        })
        .after(Command::LinkResourceGroup {
            resource_group_id: rgid(1),
            group_id: gid(5),
            role: Role::Read,
        });
    assert!(membership_grants_access(&scenario.state, gid(1)));
    assert!(membership_grants_access(&scenario.state, gid(5)));
    assert!(!membership_grants_access(&scenario.state, gid(4)));
    // Joining the plain group leaves access as it was; joining the linked one does not.
    let before = access(&scenario.state, uid(3));
    let scenario = scenario.after(change_members(4, vec![MemberChange::Add(users(&[3]))]));
    assert_eq!(access(&scenario.state, uid(3)), before);
    let scenario = scenario.after(change_members(5, vec![MemberChange::Add(users(&[3]))]));
    assert_ne!(access(&scenario.state, uid(3)), before);
}
