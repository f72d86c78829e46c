//! Just-in-time provisioning: claim role mappings, finding or creating the user behind an SSO
//! login, updates from changed claims, and the claim role as a source of the org role.

use serde_json::json;

use super::*;

fn login(new_user: u128, subject: &str, email: &str, claims: serde_json::Value) -> JitLogin {
    JitLogin {
        new_user_id: uid(new_user),
        subject: subject.to_owned(),
        email: Some(email.to_owned()),
        given_name: Some("Alice".to_owned()),
        family_name: Some("Smith".to_owned()),
        claims,
        email_matches: Vec::new(),
    }
}

fn claim_mapping(claim: &str, value: &str, role: Role) -> Command {
    Command::SetClaimRoleMapping {
        claim: claim.to_owned(),
        value: value.to_owned(),
        role: Some(role),
    }
}

fn with_claim_mappings() -> Scenario {
    given(a_tenant())
        .after(claim_mapping("groups", "engineering", Role::Write))
        .after(claim_mapping("groups", "admins", Role::Admin))
        .after(claim_mapping(
            "custom.department",
            "Research",
            Role::Contributor,
        ))
}

fn claim_role(role: Role, claim: &str, value: &str) -> Option<ClaimRole> {
    Some(ClaimRole {
        role,
        claim: claim.to_owned(),
        value: value.to_owned(),
    })
}

#[test]
fn claim_mappings_are_set_changed_and_removed() {
    let scenario = with_claim_mappings();
    let mappings = &scenario.state.tenant.as_ref().unwrap().claim_role_mappings;
    let listed: Vec<(&str, &str, Role)> = mappings
        .iter()
        .map(|m| (m.claim.as_str(), m.value.as_str(), m.role))
        .collect();
    assert_eq!(
        listed,
        vec![
            ("custom.department", "Research", Role::Contributor),
            ("groups", "admins", Role::Admin),
            ("groups", "engineering", Role::Write),
        ]
    );
    // Same mapping again: nothing to record. Another case of the value is the same mapping.
    assert_eq!(
        scenario.when(claim_mapping("groups", "engineering", Role::Write)),
        Ok(vec![])
    );
    let scenario = scenario.after(claim_mapping("groups", "ENGINEERING", Role::Read));
    let mappings = &scenario.state.tenant.as_ref().unwrap().claim_role_mappings;
    assert_eq!(mappings.len(), 3);
    assert!(mappings.contains(&ClaimRoleMapping {
        claim: "groups".into(),
        value: "ENGINEERING".into(),
        role: Role::Read
    }));
    assert_eq!(
        scenario.when(Command::SetClaimRoleMapping {
            claim: "groups".into(),
            value: "engineering".into(),
            role: None,
        }),
        Ok(vec![EventPayload::ClaimRoleMappingRemoved {
            claim: "groups".into(),
            value: "ENGINEERING".into()
        }])
    );
    assert_eq!(
        scenario.when(Command::SetClaimRoleMapping {
            claim: "roles".into(),
            value: "x".into(),
            role: None,
        }),
        Err(Rejection::ClaimRoleMappingNotFound {
            claim: "roles".into(),
            value: "x".into()
        })
    );
}

#[test]
fn claim_mappings_need_a_path_and_a_value() {
    let scenario = given(a_tenant());
    for (claim, value) in [("", "x"), ("a..b", "x"), (".groups", "x"), ("groups", " ")] {
        let refused = scenario.when(claim_mapping(claim, value, Role::Read));
        assert!(
            matches!(refused, Err(Rejection::InvalidValue(_))),
            "{claim:?} {value:?}: {refused:?}"
        );
    }
    assert_eq!(
        given(vec![]).when(claim_mapping("groups", "x", Role::Read)),
        Err(Rejection::TenantNotFound)
    );
}

#[test]
fn claim_values_follow_dotted_paths_arrays_and_literal_keys() {
    let claims = json!({
        "groups": ["eng", "ops", 7],
        "custom": {"department": "Research"},
        "https://example.com/roles": ["owner"],
        "verified": true,
    });
    assert_eq!(claim_values(&claims, "groups"), vec!["eng", "ops", "7"]);
    assert_eq!(claim_values(&claims, "custom.department"), vec!["Research"]);
    assert_eq!(
        claim_values(&claims, "https://example.com/roles"),
        vec!["owner"]
    );
    assert_eq!(claim_values(&claims, "verified"), vec!["true"]);
    assert!(claim_values(&claims, "custom").is_empty());
    assert!(claim_values(&claims, "missing.path").is_empty());
}

#[test]
fn the_most_privileged_matching_claim_mapping_wins() {
    let scenario = with_claim_mappings();
    let mappings = &scenario.state.tenant.as_ref().unwrap().claim_role_mappings;
    let claims = json!({"groups": ["Engineering", "admins"], "custom": {"department": "research"}});
    assert_eq!(
        role_from_claims(mappings, &claims),
        claim_role(Role::Admin, "groups", "admins")
    );
    let claims = json!({"groups": "engineering", "custom": {"department": "research"}});
    assert_eq!(
        role_from_claims(mappings, &claims),
        claim_role(Role::Write, "groups", "engineering")
    );
    assert_eq!(
        role_from_claims(mappings, &json!({"groups": ["sales"]})),
        None
    );
}

#[test]
fn a_first_login_creates_a_linked_user_with_a_derived_username_and_the_claim_role() {
    let scenario = with_claim_mappings();
    let events = scenario
        .when(Command::JitProvision(login(
            1,
            "00u-alice",
            "alice.smith+sso@acme.example",
            json!({"groups": ["engineering"]}),
        )))
        .unwrap();
    assert_eq!(events.len(), 3, "{events:?}");
    let EventPayload::UserProvisioned {
        user_id, profile, ..
    } = &events[0]
    else {
        panic!("{events:?}");
    };
    assert_eq!(*user_id, uid(1));
    assert_eq!(profile.user_name, "alice-smith");
    assert!(profile.active);
    assert_eq!(profile.external_id, None);
    assert_eq!(
        profile.attributes["name"],
        json!({"givenName": "Alice", "familyName": "Smith", "formatted": "Alice Smith"})
    );
    assert_eq!(profile.attributes["displayName"], json!("Alice Smith"));
    assert_eq!(
        profile.attributes["emails"],
        json!([{"value": "alice.smith+sso@acme.example", "type": "work", "primary": true}])
    );
    assert_eq!(
        events[1],
        EventPayload::UserSsoLinked {
            user_id: uid(1),
            subject: "00u-alice".into(),
            issuer: Default::default()
        }
    );
    assert_eq!(
        events[2],
        EventPayload::UserClaimRoleChanged {
            user_id: uid(1),
            claim_role: claim_role(Role::Write, "groups", "engineering"),
        }
    );
    let mut scenario = scenario;
    scenario.record(events);
    assert_eq!(scenario.state.user_id_by_subject("00u-alice"), Some(uid(1)));
    let access = access(&scenario.state, uid(1)).unwrap();
    assert_eq!(
        access.org_role,
        Some(RoleGrant {
            role: Role::Write,
            grant: Grant::Claim {
                claim: "groups".into(),
                value: "engineering".into()
            }
        })
    );
}

#[test]
fn a_later_login_updates_names_email_and_role_from_changed_claims() {
    let scenario = with_claim_mappings().after(Command::JitProvision(login(
        1,
        "00u-alice",
        "alice@acme.example",
        json!({"groups": ["engineering"]}),
    )));
    // Nothing changed: nothing to record.
    assert_eq!(
        scenario.when(Command::JitProvision(login(
            2,
            "00u-alice",
            "ALICE@acme.example",
            json!({"groups": ["engineering"]}),
        ))),
        Ok(vec![])
    );
    let mut changed = login(
        2,
        "00u-alice",
        "alice.jones@acme.example",
        json!({"groups": ["admins"]}),
    );
    changed.family_name = Some("Jones".into());
    let events = scenario.when(Command::JitProvision(changed)).unwrap();
    assert_eq!(events.len(), 2, "{events:?}");
    let EventPayload::UserUpdated {
        user_id,
        user_name,
        changed_attributes,
        ..
    } = &events[0]
    else {
        panic!("{events:?}");
    };
    assert_eq!(*user_id, uid(1));
    assert_eq!(*user_name, None, "the username stays");
    assert_eq!(
        changed_attributes["name"],
        json!({"givenName": "Alice", "familyName": "Jones", "formatted": "Alice Jones"})
    );
    assert_eq!(changed_attributes["displayName"], json!("Alice Jones"));
    assert_eq!(
        changed_attributes["emails"],
        json!([{"value": "alice.jones@acme.example", "type": "work", "primary": true}])
    );
    assert_eq!(
        events[1],
        EventPayload::UserClaimRoleChanged {
            user_id: uid(1),
            claim_role: claim_role(Role::Admin, "groups", "admins"),
        }
    );
    // Claims that match no mapping any more take the claim role away.
    let scenario = scenario.after(Command::JitProvision(login(
        2,
        "00u-alice",
        "alice@acme.example",
        json!({}),
    )));
    let access = access(&scenario.state, uid(1)).unwrap();
    assert_eq!(
        access.org_role,
        Some(RoleGrant {
            role: Role::Read,
            grant: Grant::Default
        })
    );
}

#[test]
fn a_scim_user_is_linked_by_external_id_username_or_email_not_duplicated() {
    let scim = |n: u128, name: &str, external_id: Option<&str>, email: &str| {
        let mut profile = profile(name);
        profile.external_id = external_id.map(str::to_owned);
        profile
            .attributes
            .insert("emails".into(), json!([{"value": email, "type": "work"}]));
        Command::ProvisionUser {
            user_id: uid(n),
            profile,
        }
    };
    let scenario = given(a_tenant())
        .after(scim(1, "alice", Some("00u-alice"), "alice@acme.example"))
        .after(scim(2, "bob", None, "bob@acme.example"))
        .after(scim(3, "carol-sub", None, "carol@acme.example"));
    // By externalId.
    let events = scenario
        .when(Command::JitProvision(login(
            9,
            "00u-alice",
            "alice@acme.example",
            json!({}),
        )))
        .unwrap();
    assert_eq!(
        events[0],
        EventPayload::UserSsoLinked {
            user_id: uid(1),
            subject: "00u-alice".into(),
            issuer: Default::default()
        }
    );
    assert!(
        !events
            .iter()
            .any(|event| matches!(event, EventPayload::UserProvisioned { .. }))
    );
    // By email, among the users the caller found with it, only when the claims vouch for it:
    // else anyone able to set an email claim could take over a user not linked yet.
    let mut by_email = login(9, "oidc-bob", "Bob@acme.example", json!({}));
    by_email.email_matches = vec![uid(2)];
    for unverified in [
        json!({}),
        json!({"email_verified": false}),
        json!({"email_verified": "no"}),
    ] {
        let mut attempt = by_email.clone();
        attempt.claims = unverified;
        assert_eq!(
            scenario.when(Command::JitProvision(attempt)),
            Err(Rejection::JitEmailUnverified {
                email: "Bob@acme.example".into()
            })
        );
    }
    by_email.claims = json!({"email_verified": "True"});
    let events = scenario.when(Command::JitProvision(by_email)).unwrap();
    assert_eq!(
        events[0],
        EventPayload::UserSsoLinked {
            user_id: uid(2),
            subject: "oidc-bob".into(),
            issuer: Default::default()
        }
    );
    // By userName equal to the subject.
    let events = scenario
        .when(Command::JitProvision(login(
            9,
            "Carol-Sub",
            "c@elsewhere.example",
            json!({}),
        )))
        .unwrap();
    assert_eq!(
        events[0],
        EventPayload::UserSsoLinked {
            user_id: uid(3),
            subject: "Carol-Sub".into(),
            issuer: Default::default()
        }
    );
    // An email match the caller claims but the user does not hold is not trusted.
    let mut wrong = login(9, "oidc-x", "x@acme.example", json!({}));
    wrong.email_matches = vec![uid(2)];
    let events = scenario.when(Command::JitProvision(wrong)).unwrap();
    assert!(
        matches!(events[0], EventPayload::UserProvisioned { user_id, .. } if user_id == uid(9))
    );
}

#[test]
fn an_email_held_by_several_unlinked_users_is_ambiguous() {
    let with_email = |n: u128, name: &str| {
        let mut profile = profile(name);
        profile
            .attributes
            .insert("emails".into(), json!([{"value": "shared@acme.example"}]));
        Command::ProvisionUser {
            user_id: uid(n),
            profile,
        }
    };
    let scenario = given(a_tenant())
        .after(with_email(1, "one"))
        .after(with_email(2, "two"));
    let mut shared = login(9, "sub-x", "shared@acme.example", json!({}));
    shared.email_matches = vec![uid(1), uid(2)];
    assert_eq!(
        scenario.when(Command::JitProvision(shared)),
        Err(Rejection::JitAmbiguousEmail {
            email: "shared@acme.example".into()
        })
    );
}

#[test]
fn a_taken_username_gets_a_numeric_suffix() {
    let scenario = given(a_tenant())
        .after(provision(1, "alice"))
        .after(provision(2, "Alice-2"));
    let events = scenario
        .when(Command::JitProvision(login(
            9,
            "sub-9",
            "alice@other.example",
            json!({}),
        )))
        .unwrap();
    let EventPayload::UserProvisioned { profile, .. } = &events[0] else {
        panic!("{events:?}");
    };
    assert_eq!(profile.user_name, "alice-3");
}

#[test]
fn usernames_are_derived_within_the_rules() {
    let candidates = |email: Option<&str>, given: Option<&str>, subject: &str| {
        user_name_candidates(&JitLogin {
            new_user_id: uid(0xabcdef12),
            subject: subject.into(),
            email: email.map(str::to_owned),
            given_name: given.map(str::to_owned),
            family_name: None,
            claims: json!({}),
            email_matches: vec![],
        })
    };
    assert_eq!(
        candidates(Some("jörg.müller@x.de"), None, "s")[0],
        "jorg-muller"
    );
    assert_eq!(candidates(Some("__a__b__@x"), None, "s")[0], "a-b");
    assert_eq!(candidates(Some("12345@x"), None, "s")[0], "user-12345");
    // An unusable local part falls back to the name, then the subject, then "user".
    assert_eq!(candidates(Some("x@y"), Some("Zoë"), "s")[0], "Zoe");
    assert_eq!(candidates(None, None, "00u1abcd")[0], "00u1abcd");
    assert_eq!(candidates(None, None, "张")[0], "user");
    let long = candidates(Some(&format!("{}@x", "a".repeat(60))), None, "s");
    assert_eq!(long[0].len(), HANDLE_MAX);
    for name in &long {
        assert_eq!(check_handle(name), Ok(()), "{name}");
        assert!(name.len() <= HANDLE_MAX);
    }
    assert_eq!(long[1], format!("{}-2", "a".repeat(HANDLE_MAX - 2)));
    assert!(long.last().unwrap().ends_with("-abcdef12"), "{long:?}");
}

#[test]
fn a_deactivated_user_is_not_reactivated_by_a_login() {
    let scenario = with_claim_mappings()
        .after(Command::JitProvision(login(
            1,
            "sub-1",
            "a@acme.example",
            json!({}),
        )))
        .after(Command::SetUserActive {
            user_id: uid(1),
            active: false,
            expected_version: None,
        });
    let refused = scenario.when(Command::JitProvision(login(
        2,
        "sub-1",
        "a@acme.example",
        json!({"groups": ["admins"]}),
    )));
    assert_eq!(
        refused,
        Err(Rejection::JitUserDeactivated {
            user_name: "Alice-Smith".into()
        })
    );
    assert_eq!(refused.unwrap_err().kind(), RejectionKind::Forbidden);
}

#[test]
fn a_deleted_users_subject_provisions_a_new_user() {
    let scenario = given(a_tenant())
        .after(Command::JitProvision(login(
            1,
            "sub-1",
            "alice@acme.example",
            json!({}),
        )))
        .after(Command::DeleteUser {
            user_id: uid(1),
            expected_version: None,
        });
    assert_eq!(scenario.state.user_id_by_subject("sub-1"), None);
    let events = scenario
        .when(Command::JitProvision(login(
            2,
            "sub-1",
            "alice@acme.example",
            json!({}),
        )))
        .unwrap();
    assert!(
        matches!(events[0], EventPayload::UserProvisioned { user_id, .. } if user_id == uid(2))
    );
}

#[test]
fn the_claim_role_and_group_mappings_combine_highest_first() {
    let scenario = with_claim_mappings()
        .after(Command::JitProvision(login(
            1,
            "sub-1",
            "a@acme.example",
            json!({"custom": {"department": "research"}}),
        )))
        .after(create_group(1, "Writers", &[1]))
        .after(Command::SetRoleMapping {
            group_id: gid(1),
            role: Some(Role::Write),
        });
    assert_eq!(
        access(&scenario.state, uid(1)).unwrap().org_role,
        Some(RoleGrant {
            role: Role::Write,
            grant: Grant::Group(gid(1))
        })
    );
    let scenario = scenario.after(Command::JitProvision(login(
        2,
        "sub-1",
        "a@acme.example",
        json!({"groups": ["admins"]}),
    )));
    assert_eq!(
        access(&scenario.state, uid(1))
            .unwrap()
            .org_role
            .unwrap()
            .role,
        Role::Admin
    );
}

#[test]
fn logins_need_a_subject_and_valid_fields() {
    let scenario = given(a_tenant());
    for bad in [
        login(1, "  ", "a@x.io", json!({})),
        login(1, "s", "not-an-email", json!({})),
        login(1, "s", "a@x.io", json!(["not", "an", "object"])),
        login(1, &"s".repeat(300), "a@x.io", json!({})),
    ] {
        let refused = scenario.when(Command::JitProvision(bad.clone()));
        assert!(
            matches!(refused, Err(Rejection::InvalidValue(_))),
            "{bad:?}: {refused:?}"
        );
    }
}

#[test]
fn a_staged_tenant_answers_logins_but_never_changes_its_live_directory_through_them() {
    let linked = with_claim_mappings().after(Command::JitProvision(login(
        1,
        "00u-alice",
        "alice@acme.example",
        json!({"groups": ["engineering"]}),
    )));
    let staged = linked.after(Command::StageTenant);
    // A returning user whose login changes nothing is answered.
    assert_eq!(
        staged.when(Command::JitProvision(login(
            2,
            "00u-alice",
            "alice@acme.example",
            json!({"groups": ["engineering"]}),
        ))),
        Ok(vec![])
    );
    // Promotion would delete or revert what these wrote: a new user, a changed role.
    assert_eq!(
        staged.when(Command::JitProvision(login(
            3,
            "00u-bob",
            "bob@acme.example",
            json!({}),
        ))),
        Err(Rejection::JitWhileStaged)
    );
    assert_eq!(
        staged.when(Command::JitProvision(login(
            2,
            "00u-alice",
            "alice@acme.example",
            json!({"groups": ["admins"]}),
        ))),
        Err(Rejection::JitWhileStaged)
    );
    // Once the staging is discarded, logins write again.
    let discarded = staged.after(Command::DiscardStaging);
    assert!(
        discarded
            .when(Command::JitProvision(login(
                3,
                "00u-bob",
                "bob@acme.example",
                json!({}),
            )))
            .is_ok_and(|events| !events.is_empty())
    );
}

#[test]
fn more_holders_of_an_email_than_the_caller_passes_are_ambiguous() {
    let scenario = with_claim_mappings();
    let mut crowded = login(
        1,
        "oidc-x",
        "shared@acme.example",
        json!({"email_verified": true}),
    );
    crowded.email_matches = (100..=100 + JIT_EMAIL_MATCHES_MAX as u128)
        .map(uid)
        .collect();
    assert_eq!(
        scenario.when(Command::JitProvision(crowded)),
        Err(Rejection::JitAmbiguousEmail {
            email: "shared@acme.example".into()
        })
    );
}

#[test]
fn a_login_that_would_grow_a_user_beyond_the_limits_is_refused() {
    // A user provisioned by SCIM just under the size limit, linked to the login by externalId.
    let mut near_full = with_external_id(profile("alice"), "00u-alice");
    let filler: Vec<String> = (0..4).map(|n| format!("{n}{}", "r".repeat(4000))).collect();
    near_full.attributes.insert("roles".into(), json!(filler));
    let scenario = given(a_tenant()).after(Command::ProvisionUser {
        user_id: uid(1),
        profile: near_full,
    });
    let mut long_names = login(2, "00u-alice", "alice@x.io", json!({}));
    long_names.given_name = Some("G".repeat(256));
    long_names.family_name = Some("F".repeat(256));
    let refused = scenario
        .when(Command::JitProvision(long_names))
        .unwrap_err();
    assert_eq!(refused.kind(), RejectionKind::Invalid);
    assert!(
        matches!(
            refused,
            Rejection::LimitExceeded(limits::LimitExceeded::Resource { .. })
        ),
        "{refused:?}"
    );
    assert!(refused.to_string().starts_with("the user is "), "{refused}");
    // A login that fits is answered as usual.
    assert!(
        scenario
            .when(Command::JitProvision(login(
                2,
                "00u-alice",
                "alice@x.io",
                json!({})
            )))
            .is_ok()
    );
}

#[test]
fn several_users_holding_the_subject_as_external_id_are_ambiguous_not_guessed() {
    let scim = |n: u128, name: &str| Command::ProvisionUser {
        user_id: uid(n),
        profile: with_external_id(profile(name), "00u-shared"),
    };
    let scenario = given(a_tenant())
        .after(scim(1, "alice"))
        .after(scim(2, "bob"))
        .after(scim(3, "carol"));
    let rejection = scenario
        .when(Command::JitProvision(login(
            9,
            "00u-shared",
            "alice@acme.example",
            json!({"email_verified": true}),
        )))
        .unwrap_err();
    assert_eq!(
        rejection,
        Rejection::JitAmbiguousExternalId {
            external_id: "00u-shared".into(),
            count: 3
        }
    );
    assert_eq!(rejection.kind(), RejectionKind::PreconditionFailed);
    assert!(rejection.to_string().contains("3 users"), "{rejection}");
    // The dependent footprint loads no holder: several are refused without their records.
    let login = login(9, "00u-shared", "alice@acme.example", json!({}));
    assert!(
        !Command::JitProvision(login.clone())
            .dependent_footprint(&scenario.state)
            .users
            .iter()
            .any(|user| [uid(1), uid(2), uid(3)].contains(user))
    );
    // Once only one holds it, that one is linked.
    let scenario = scenario
        .after(Command::DeleteUser {
            user_id: uid(2),
            expected_version: None,
        })
        .after(Command::DeleteUser {
            user_id: uid(3),
            expected_version: None,
        });
    let events = scenario.when(Command::JitProvision(login)).unwrap();
    assert_eq!(
        events[0],
        EventPayload::UserSsoLinked {
            user_id: uid(1),
            subject: "00u-shared".into(),
            issuer: Default::default()
        }
    );
}
