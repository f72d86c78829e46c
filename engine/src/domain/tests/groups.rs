//! Groups and their members, role mappings and resource groups.

use super::*;

#[test]
fn a_group_is_created_with_its_members_as_edge_events() {
    let events = tenant_with_users(2)
        .when(create_group(1, "Engineering", &[1, 2, 2]))
        .unwrap();
    assert_eq!(
        events,
        vec![
            EventPayload::GroupCreated {
                group_id: gid(1),
                profile: group_profile("Engineering"),
            },
            EventPayload::GroupMembersAdded {
                group_id: gid(1),
                user_ids: users(&[1, 2]),
            },
        ]
    );
}

#[test]
fn display_names_are_unique_case_insensitively() {
    let scenario = tenant_with_users(0).after(create_group(1, "Engineering", &[]));
    assert_eq!(
        scenario.when(create_group(2, "ENGINEERING", &[])),
        Err(Rejection::GroupNameTaken {
            display_name: "ENGINEERING".into()
        })
    );
    let rename = Command::UpdateGroup {
        group_id: gid(1),
        profile: Some(group_profile("engineering")),
        member_changes: vec![],
        expected_version: None,
    };
    assert_eq!(
        scenario.when(rename).unwrap(),
        vec![EventPayload::GroupRenamed {
            group_id: gid(1),
            display_name: "engineering".into()
        }]
    );
}

#[test]
fn empty_display_names_are_refused() {
    assert_eq!(
        tenant_with_users(0).when(create_group(1, "  ", &[])),
        Err(Rejection::EmptyGroupName)
    );
}

#[test]
fn members_must_be_users_of_the_tenant_and_the_rejection_names_the_id() {
    let scenario = tenant_with_users(1).after(create_group(1, "Eng", &[]));
    let rejection = scenario
        .when(change_members(1, vec![MemberChange::Add(users(&[1, 9]))]))
        .unwrap_err();
    assert_eq!(rejection, Rejection::MemberNotFound(uid(9)));
    assert_eq!(rejection.kind(), RejectionKind::Invalid);
    assert!(rejection.to_string().contains(&uid(9).to_string()));
    assert_eq!(
        tenant_with_users(1).when(create_group(1, "Eng", &[7])),
        Err(Rejection::MemberNotFound(uid(7)))
    );
}

#[test]
fn re_adding_a_member_or_removing_a_non_member_changes_nothing() {
    let scenario = tenant_with_users(3).after(create_group(1, "Eng", &[1]));
    assert_eq!(
        scenario.when(change_members(1, vec![MemberChange::Add(users(&[1]))])),
        Ok(vec![])
    );
    assert_eq!(
        scenario.when(change_members(
            1,
            vec![MemberChange::Remove(users(&[2, 3]))]
        )),
        Ok(vec![])
    );
    assert_eq!(
        scenario.when(change_members(1, vec![MemberChange::Add(users(&[1, 2]))])),
        Ok(vec![EventPayload::GroupMembersAdded {
            group_id: gid(1),
            user_ids: users(&[2])
        }])
    );
}

#[test]
fn remove_all_then_add_applies_in_order() {
    let scenario = tenant_with_users(3).after(create_group(1, "Eng", &[1, 2]));
    let events = scenario
        .when(change_members(
            1,
            vec![MemberChange::RemoveAll, MemberChange::Add(users(&[2, 3]))],
        ))
        .unwrap();
    assert_eq!(
        events,
        vec![
            EventPayload::GroupMembersRemoved {
                group_id: gid(1),
                user_ids: users(&[1, 2])
            },
            EventPayload::GroupMembersAdded {
                group_id: gid(1),
                user_ids: users(&[2, 3])
            },
        ]
    );
    let scenario = scenario.after(change_members(
        1,
        vec![MemberChange::RemoveAll, MemberChange::Add(users(&[2, 3]))],
    ));
    assert_eq!(scenario.members(1), users(&[2, 3]));
}

#[test]
fn replace_members_records_only_the_difference() {
    let scenario = tenant_with_users(4).after(create_group(1, "Eng", &[1, 2, 3]));
    let events = scenario
        .when(change_members(
            1,
            vec![MemberChange::Replace(users(&[2, 3, 4]))],
        ))
        .unwrap();
    assert_eq!(
        events,
        vec![
            EventPayload::GroupMembersRemoved {
                group_id: gid(1),
                user_ids: users(&[1])
            },
            EventPayload::GroupMembersAdded {
                group_id: gid(1),
                user_ids: users(&[4])
            },
        ]
    );
}

#[test]
fn large_membership_changes_are_split_into_bounded_events() {
    let mut scenario = given(a_tenant());
    let many: Vec<u128> = (1..=2500).collect();
    for id in &many {
        scenario = scenario.after(provision(*id, &format!("u-{id}")));
    }
    let events = scenario.when(create_group(1, "Everyone", &many)).unwrap();
    let sizes: Vec<usize> = events
        .iter()
        .filter_map(|event| match event {
            EventPayload::GroupMembersAdded { user_ids, .. } => Some(user_ids.len()),
            _ => None,
        })
        .collect();
    assert_eq!(sizes, vec![MEMBERS_PER_EVENT, MEMBERS_PER_EVENT, 500]);
}

#[test]
fn member_count_and_version_follow_the_edges() {
    let scenario = tenant_with_users(3)
        .after(create_group(1, "Eng", &[1, 2]))
        .after(change_members(1, vec![MemberChange::Remove(users(&[1]))]));
    let group = scenario.state.group(&gid(1)).unwrap();
    assert_eq!(group.member_count, 1);
    assert_eq!(group.version, 3);
}

#[test]
fn adding_one_member_touches_a_constant_number_of_entries() {
    // The slice holds only what the command needs: not the group's other members.
    let mut scenario = tenant_with_users(2).after(create_group(1, "Big", &[1]));
    let command = change_members(1, vec![MemberChange::Add(users(&[2]))]);
    assert!(command.footprint().members_of_groups.is_empty());
    scenario.state.journal.drain();
    let scenario = scenario.after(command);
    let touched = scenario.state.clone().journal.drain();
    assert_eq!(
        touched.into_iter().collect::<Vec<_>>(),
        vec![Touched::Group(gid(1)), Touched::Membership(gid(1), uid(2))]
    );
}

#[test]
fn a_stale_group_version_is_refused() {
    let scenario = tenant_with_users(0).after(create_group(1, "Eng", &[]));
    assert_eq!(
        scenario.when(Command::DeleteGroup {
            group_id: gid(1),
            expected_version: Some(5)
        }),
        Err(Rejection::VersionMismatch {
            expected: 5,
            actual: 1
        })
    );
}

#[test]
fn deleting_a_group_removes_its_edges_mapping_and_links_as_events() {
    let scenario = tenant_with_users(2)
        .after(create_group(1, "Eng", &[1, 2]))
        .after(Command::SetRoleMapping {
            group_id: gid(1),
            role: Some(Role::Write),
        })
        .after(Command::CreateResourceGroup {
            resource_group_id: rgid(1),
            name: "models".into(),
        })
        .after(Command::LinkResourceGroup {
            resource_group_id: rgid(1),
            group_id: gid(1),
            role: Role::Read,
        });
    let events = scenario
        .when(Command::DeleteGroup {
            group_id: gid(1),
            expected_version: None,
        })
        .unwrap();
    assert_eq!(
        events,
        vec![
            EventPayload::GroupMembersRemoved {
                group_id: gid(1),
                user_ids: users(&[1, 2])
            },
            EventPayload::RoleMappingRemoved { group_id: gid(1) },
            EventPayload::ResourceGroupUnlinked {
                resource_group_id: rgid(1),
                group_id: gid(1)
            },
            EventPayload::GroupDeleted {
                group_id: gid(1),
                display_name: "Eng".into()
            },
        ]
    );
    let scenario = scenario.after(Command::DeleteGroup {
        group_id: gid(1),
        expected_version: None,
    });
    assert!(scenario.state.group(&gid(1)).is_none());
    assert!(scenario.members(1).is_empty());
    assert!(
        !scenario
            .state
            .resource_group(&rgid(1))
            .unwrap()
            .is_scim_managed()
    );
    assert_eq!(scenario.state.tenant.as_ref().unwrap().group_count, 0);
    assert!(
        scenario.when(create_group(2, "Eng", &[])).is_ok(),
        "the name is free again"
    );
}

#[test]
fn deleting_a_user_removes_its_memberships_as_events() {
    let scenario = tenant_with_users(2)
        .after(create_group(1, "Eng", &[1, 2]))
        .after(create_group(2, "Ops", &[1]))
        .after(Command::CreateResourceGroup {
            resource_group_id: rgid(1),
            name: "datasets".into(),
        })
        .after(Command::SetResourceGroupMember {
            resource_group_id: rgid(1),
            user_id: uid(1),
            role: Role::Write,
        });
    let events = scenario
        .when(Command::DeleteUser {
            user_id: uid(1),
            expected_version: None,
        })
        .unwrap();
    assert_eq!(
        events,
        vec![
            EventPayload::GroupMembersRemoved {
                group_id: gid(1),
                user_ids: users(&[1])
            },
            EventPayload::GroupMembersRemoved {
                group_id: gid(2),
                user_ids: users(&[1])
            },
            EventPayload::ResourceGroupMemberRemoved {
                resource_group_id: rgid(1),
                user_id: uid(1)
            },
            EventPayload::UserDeleted {
                user_id: uid(1),
                user_name: "user-1".into(),
                external_id: None,
                email: Default::default(),
                sso: Default::default()
            },
        ]
    );
    let scenario = scenario.after(Command::DeleteUser {
        user_id: uid(1),
        expected_version: None,
    });
    assert_eq!(scenario.members(1), users(&[2]));
    assert!(scenario.members(2).is_empty());
    assert_eq!(
        scenario
            .state
            .resource_group(&rgid(1))
            .unwrap()
            .manual_member_count,
        0
    );
}

#[test]
fn role_mappings_need_an_existing_group_and_are_idempotent() {
    let scenario = tenant_with_users(0).after(create_group(1, "Admins", &[]));
    assert_eq!(
        scenario.when(Command::SetRoleMapping {
            group_id: gid(9),
            role: Some(Role::Admin)
        }),
        Err(Rejection::GroupNotFound(gid(9)))
    );
    let scenario = scenario.after(Command::SetRoleMapping {
        group_id: gid(1),
        role: Some(Role::Admin),
    });
    assert_eq!(
        scenario.when(Command::SetRoleMapping {
            group_id: gid(1),
            role: Some(Role::Admin)
        }),
        Ok(vec![])
    );
    assert_eq!(
        scenario.when(Command::SetRoleMapping {
            group_id: gid(1),
            role: None
        }),
        Ok(vec![EventPayload::RoleMappingRemoved { group_id: gid(1) }])
    );
    assert_eq!(
        scenario.when(Command::SetDefaultRole { role: Role::Read }),
        Ok(vec![])
    );
    assert_eq!(
        scenario.when(Command::SetDefaultRole {
            role: Role::Contributor
        }),
        Ok(vec![EventPayload::DefaultRoleSet {
            role: Role::Contributor
        }])
    );
}

#[test]
fn resource_group_names_are_unique_and_valid() {
    let scenario = tenant_with_users(0).after(Command::CreateResourceGroup {
        resource_group_id: rgid(1),
        name: "Models".into(),
    });
    assert_eq!(
        scenario.when(Command::CreateResourceGroup {
            resource_group_id: rgid(2),
            name: "models".into()
        }),
        Err(Rejection::ResourceGroupNameTaken {
            name: "models".into()
        })
    );
    assert_eq!(
        scenario.when(Command::CreateResourceGroup {
            resource_group_id: rgid(2),
            name: " ".into()
        }),
        Err(Rejection::InvalidResourceGroupName)
    );
}

#[test]
fn a_linked_resource_group_is_scim_managed_and_refuses_manual_changes() {
    let scenario = tenant_with_users(1)
        .after(create_group(1, "Eng", &[]))
        .after(Command::CreateResourceGroup {
            resource_group_id: rgid(1),
            name: "models".into(),
        })
        .after(Command::LinkResourceGroup {
            resource_group_id: rgid(1),
            group_id: gid(1),
            role: Role::Read,
        });
    let rejection = scenario
        .when(Command::SetResourceGroupMember {
            resource_group_id: rgid(1),
            user_id: uid(1),
            role: Role::Admin,
        })
        .unwrap_err();
    assert_eq!(rejection, Rejection::ResourceGroupScimManaged(rgid(1)));
    assert_eq!(rejection.kind(), RejectionKind::Forbidden);
    assert_eq!(
        scenario.when(Command::RemoveResourceGroupMember {
            resource_group_id: rgid(1),
            user_id: uid(1)
        }),
        Err(Rejection::ResourceGroupScimManaged(rgid(1)))
    );
}

#[test]
fn linking_needs_a_resource_group_without_manual_members() {
    let scenario = tenant_with_users(1)
        .after(create_group(1, "Eng", &[]))
        .after(Command::CreateResourceGroup {
            resource_group_id: rgid(1),
            name: "models".into(),
        })
        .after(Command::SetResourceGroupMember {
            resource_group_id: rgid(1),
            user_id: uid(1),
            role: Role::Write,
        });
    let link = Command::LinkResourceGroup {
        resource_group_id: rgid(1),
        group_id: gid(1),
        role: Role::Read,
    };
    assert_eq!(
        scenario.when(link.clone()),
        Err(Rejection::ResourceGroupHasMembers(rgid(1)))
    );
    let scenario = scenario.after(Command::RemoveResourceGroupMember {
        resource_group_id: rgid(1),
        user_id: uid(1),
    });
    assert!(scenario.when(link).is_ok());
}

#[test]
fn link_roles_change_in_place_and_unlinking_an_unlinked_group_is_not_found() {
    let scenario = tenant_with_users(0)
        .after(create_group(1, "Eng", &[]))
        .after(Command::CreateResourceGroup {
            resource_group_id: rgid(1),
            name: "models".into(),
        })
        .after(Command::LinkResourceGroup {
            resource_group_id: rgid(1),
            group_id: gid(1),
            role: Role::Read,
        });
    assert_eq!(
        scenario.when(Command::LinkResourceGroup {
            resource_group_id: rgid(1),
            group_id: gid(1),
            role: Role::Write
        }),
        Ok(vec![EventPayload::ResourceGroupLinkRoleChanged {
            resource_group_id: rgid(1),
            group_id: gid(1),
            role: Role::Write
        }])
    );
    let scenario = scenario.after(Command::UnlinkResourceGroup {
        resource_group_id: rgid(1),
        group_id: gid(1),
    });
    assert_eq!(
        scenario.when(Command::UnlinkResourceGroup {
            resource_group_id: rgid(1),
            group_id: gid(1)
        }),
        Err(Rejection::NotLinked {
            resource_group: rgid(1),
            group: gid(1)
        })
    );
}

#[test]
fn deleting_a_resource_group_unlinks_and_removes_members_first() {
    let scenario = tenant_with_users(1)
        .after(create_group(1, "Eng", &[]))
        .after(Command::CreateResourceGroup {
            resource_group_id: rgid(1),
            name: "linked".into(),
        })
        .after(Command::LinkResourceGroup {
            resource_group_id: rgid(1),
            group_id: gid(1),
            role: Role::Read,
        })
        .after(Command::CreateResourceGroup {
            resource_group_id: rgid(2),
            name: "manual".into(),
        })
        .after(Command::SetResourceGroupMember {
            resource_group_id: rgid(2),
            user_id: uid(1),
            role: Role::Write,
        });
    assert_eq!(
        scenario.when(Command::DeleteResourceGroup {
            resource_group_id: rgid(1)
        }),
        Ok(vec![
            EventPayload::ResourceGroupUnlinked {
                resource_group_id: rgid(1),
                group_id: gid(1)
            },
            EventPayload::ResourceGroupDeleted {
                resource_group_id: rgid(1)
            },
        ])
    );
    assert_eq!(
        scenario.when(Command::DeleteResourceGroup {
            resource_group_id: rgid(2)
        }),
        Ok(vec![
            EventPayload::ResourceGroupMemberRemoved {
                resource_group_id: rgid(2),
                user_id: uid(1)
            },
            EventPayload::ResourceGroupDeleted {
                resource_group_id: rgid(2)
            },
        ])
    );
}

#[test]
fn group_profiles_are_limited_but_members_are_edges_and_are_not() {
    let scenario = tenant_with_users(150);
    let mut long_name = group_profile(&"g".repeat(2000));
    let rejection = scenario
        .when(Command::CreateGroup {
            group_id: gid(1),
            profile: long_name.clone(),
            members: Vec::new(),
        })
        .unwrap_err();
    assert_eq!(rejection.kind(), RejectionKind::Invalid);
    assert!(
        rejection.to_string().starts_with(
            "displayName is 2000 bytes long; a group's displayName may have at most 1024 bytes"
        ),
        "{rejection}"
    );
    long_name.display_name = "Eng".into();
    long_name
        .attributes
        .insert("description".into(), serde_json::json!("d".repeat(5000)));
    assert!(matches!(
        scenario.when(Command::CreateGroup {
            group_id: gid(1),
            profile: long_name,
            members: Vec::new(),
        }),
        Err(Rejection::LimitExceeded(_))
    ));
    // 150 members, more than any multi-valued attribute may hold: accepted.
    let all: Vec<u128> = (1..=150).collect();
    let scenario = scenario.after(create_group(1, "Everyone", &all));
    assert_eq!(scenario.members(1).len(), 150);
    let mut renamed = group_profile(&"r".repeat(1025));
    renamed.display_name.pop();
    assert!(
        scenario
            .when(Command::UpdateGroup {
                group_id: gid(1),
                profile: Some(renamed),
                member_changes: vec![MemberChange::Replace(users(&all[..120]))],
                expected_version: None,
            })
            .is_ok()
    );
}
