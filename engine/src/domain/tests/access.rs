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

mod checks {
    //! `check_access`: the managed-account rules a platform asks about before acting.

    use super::*;

    fn acme() -> TenantName {
        TenantName::parse("acme").unwrap()
    }

    fn question<'a>(tenant: &'a TenantName, namespace: &'a str) -> AccessQuestion<'a> {
        AccessQuestion {
            tenant,
            sso_enforced: false,
            session: SessionAuth::Password,
            sso_tenant: "",
            required: Role::Write,
            namespace,
        }
    }

    fn alice(org_role: Option<Role>) -> Option<AccessSubject<'static>> {
        Some(AccessSubject {
            user_name: "alice",
            active: true,
            org_role,
        })
    }

    fn no_resource_group() -> Result<Option<Role>, ()> {
        Ok(None)
    }

    fn check(question: &AccessQuestion<'_>, subject: Option<AccessSubject<'_>>) -> AccessDecision {
        check_access(question, subject, no_resource_group).unwrap()
    }

    #[test]
    fn given_an_org_role_when_it_reaches_the_action_then_allowed() {
        let tenant = acme();
        let allowed = check(&question(&tenant, "ACME"), alice(Some(Role::Admin)));
        assert!(allowed.allowed, "{allowed:?}");
        assert_eq!(allowed.effective_role, Some(Role::Admin));
        let below = check(&question(&tenant, "acme"), alice(Some(Role::Read)));
        assert!(!below.allowed);
        assert_eq!(below.effective_role, Some(Role::Read));
        assert!(below.reason.contains("below"), "{}", below.reason);
        let none = check(&question(&tenant, "acme"), alice(None));
        assert!(!none.allowed);
        assert_eq!(none.reason, "the user holds no role here");
    }

    #[test]
    fn given_a_resource_group_role_then_the_higher_of_it_and_the_org_role_decides() {
        let tenant = acme();
        let decision = check_access(&question(&tenant, "acme"), alice(Some(Role::Read)), || {
            Ok::<_, ()>(Some(Role::Write))
        })
        .unwrap();
        assert!(decision.allowed);
        assert_eq!(decision.effective_role, Some(Role::Write));
        // The lookup's failure (an unknown resource group) is the caller's error, not a denial.
        assert_eq!(
            check_access(&question(&tenant, "acme"), alice(Some(Role::Read)), || Err(
                "no such resource group"
            )),
            Err("no such resource group")
        );
    }

    #[test]
    fn given_a_missing_or_deactivated_user_then_nothing_is_allowed_and_no_lookup_happens() {
        let tenant = acme();
        let missing = check_access(&question(&tenant, "acme"), None, || -> Result<_, ()> {
            panic!("no lookup for a missing user")
        })
        .unwrap();
        assert_eq!(
            missing.reason,
            "the user does not exist in this organization"
        );
        let deactivated = check(
            &question(&tenant, "acme"),
            Some(AccessSubject {
                user_name: "alice",
                active: false,
                org_role: Some(Role::Admin),
            }),
        );
        assert!(!deactivated.allowed);
        assert!(deactivated.reason.contains("deactivated"));
        assert_eq!(deactivated.effective_role, None);
    }

    #[test]
    fn given_sso_enforced_then_only_a_session_through_the_tenants_sso_may_act() {
        let tenant = acme();
        let enforced = |session, sso_tenant| AccessQuestion {
            sso_enforced: true,
            session,
            sso_tenant,
            ..question(&tenant, "acme")
        };
        for (session, sso_tenant, how) in [
            (SessionAuth::Password, "", "with a password"),
            (SessionAuth::Social, "", "with a social login"),
            (SessionAuth::Unspecified, "", "unspecified"),
            (SessionAuth::Sso, "", "without naming the organization"),
            (SessionAuth::Sso, "globex", "the SSO of \"globex\""),
        ] {
            let refused = check(&enforced(session, sso_tenant), alice(Some(Role::Admin)));
            assert!(!refused.allowed, "{session:?}");
            assert!(refused.sso_required, "{session:?}");
            assert!(refused.reason.contains(how), "{}", refused.reason);
        }
        let through_acme = check(
            &enforced(SessionAuth::Sso, " Acme "),
            alice(Some(Role::Admin)),
        );
        assert!(through_acme.allowed, "{through_acme:?}");
        // Without enforcement a password session is fine.
        assert!(check(&question(&tenant, "acme"), alice(Some(Role::Admin))).allowed);
    }

    #[test]
    fn given_a_managed_user_then_personal_and_foreign_namespaces_are_refused() {
        let tenant = acme();
        let personal = check(&question(&tenant, "Alice"), alice(Some(Role::Admin)));
        assert!(!personal.allowed);
        assert!(personal.reason.contains("personal namespace"));
        let foreign = check(&question(&tenant, "globex"), alice(Some(Role::Admin)));
        assert!(!foreign.allowed);
        assert!(
            foreign.reason.contains("another organization"),
            "{}",
            foreign.reason
        );
    }
}
