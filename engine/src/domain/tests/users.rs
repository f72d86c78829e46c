//! Users: provisioning, username rules, uniqueness, replace, lifecycle, tokens and tenants.

use serde_json::json;

use super::*;

#[test]
fn provisioning_a_user_records_its_profile() {
    let events = given(a_tenant()).when(provision(1, "alice")).unwrap();
    assert_eq!(
        events,
        vec![EventPayload::UserProvisioned {
            user_id: uid(1),
            profile: profile("alice"),
            handle: None
        }]
    );
}

#[test]
fn provisioning_needs_an_existing_tenant() {
    assert_eq!(
        given([]).when(provision(1, "alice")),
        Err(Rejection::TenantNotFound)
    );
}

#[test]
fn user_names_must_follow_the_rules_and_the_rejection_names_the_rule() {
    let rejection = given(a_tenant()).when(provision(1, "a--b")).unwrap_err();
    assert_eq!(
        rejection,
        Rejection::InvalidUserName {
            user_name: "a--b".into(),
            rule: HandleRule::DoubleDash
        }
    );
    assert_eq!(rejection.kind(), RejectionKind::Invalid);
    assert!(rejection.to_string().contains("double dash"));
}

#[test]
fn user_names_are_unique_case_insensitively() {
    let scenario = given(a_tenant()).after(provision(1, "Alice"));
    let rejection = scenario.when(provision(2, "aLICE")).unwrap_err();
    assert_eq!(
        rejection,
        Rejection::UserNameTaken {
            user_name: "aLICE".into()
        }
    );
    assert_eq!(rejection.kind(), RejectionKind::Conflict);
}

#[test]
fn users_may_share_an_external_id() {
    // RFC 7643 §3.1: the client controls externalId's uniqueness, the server does not enforce it.
    let scenario = given(a_tenant()).after(Command::ProvisionUser {
        user_id: uid(1),
        profile: with_external_id(profile("alice"), "ext-1"),
    });
    let second = Command::ProvisionUser {
        user_id: uid(2),
        profile: with_external_id(profile("bob"), "ext-1"),
    };
    assert_eq!(
        scenario.when(second.clone()).unwrap(),
        vec![EventPayload::UserProvisioned {
            user_id: uid(2),
            profile: with_external_id(profile("bob"), "ext-1"),
            handle: None
        }]
    );
    let scenario = scenario.after(second).after(Command::ProvisionUser {
        user_id: uid(3),
        profile: with_external_id(profile("carol"), "ext-2"),
    });
    assert_eq!(
        scenario.state.user_ids_by_external_id("ext-1"),
        [uid(1), uid(2)]
    );
    // Taking one that others hold by replacing is fine too; the index follows every holder.
    let scenario = scenario.after(Command::ReplaceUser {
        user_id: uid(3),
        expected_version: None,
        profile: with_external_id(profile("carol"), "ext-1"),
    });
    assert_eq!(
        scenario.state.user_ids_by_external_id("ext-1"),
        [uid(1), uid(2), uid(3)]
    );
    assert!(scenario.state.user_ids_by_external_id("ext-2").is_empty());
    // Deleting one holder leaves the others.
    let scenario = scenario.after(Command::DeleteUser {
        user_id: uid(1),
        expected_version: None,
    });
    assert_eq!(
        scenario.state.user_ids_by_external_id("ext-1"),
        [uid(2), uid(3)]
    );
    // An externalId is matched exactly, never as a prefix.
    assert!(scenario.state.user_ids_by_external_id("ext-").is_empty());
}

#[test]
fn a_deleted_user_frees_its_user_name() {
    let scenario = given(a_tenant())
        .after(Command::ProvisionUser {
            user_id: uid(1),
            profile: with_external_id(profile("alice"), "ext-1"),
        })
        .after(Command::DeleteUser {
            user_id: uid(1),
            expected_version: None,
        });
    assert!(scenario.state.user(&uid(1)).is_none());
    assert_eq!(scenario.state.tenant.as_ref().unwrap().user_count, 0);
    assert!(
        scenario
            .when(Command::ProvisionUser {
                user_id: uid(2),
                profile: with_external_id(profile("ALICE"), "ext-1"),
            })
            .is_ok()
    );
}

#[test]
fn replacing_records_only_the_attributes_that_changed() {
    let mut first = profile("alice");
    first
        .attributes
        .insert("displayName".into(), json!("Alice"));
    first.attributes.insert("title".into(), json!("Engineer"));
    let scenario = given(a_tenant()).after(Command::ProvisionUser {
        user_id: uid(1),
        profile: first.clone(),
    });
    let mut second = first.clone();
    second
        .attributes
        .insert("displayName".into(), json!("Alice A."));
    second.attributes.remove("title");
    let events = scenario
        .when(Command::ReplaceUser {
            user_id: uid(1),
            profile: second,
            expected_version: Some(1),
        })
        .unwrap();
    let mut changed = Attributes::new();
    changed.insert("displayName".into(), json!("Alice A."));
    changed.insert("title".into(), serde_json::Value::Null);
    assert_eq!(
        events,
        vec![EventPayload::UserUpdated {
            user_id: uid(1),
            user_name: None,
            external_id: None,
            changed_attributes: changed,
            handle: None
        }]
    );
}

#[test]
fn replacing_with_the_same_profile_changes_nothing() {
    let scenario = given(a_tenant()).after(provision(1, "alice"));
    let events = scenario
        .when(Command::ReplaceUser {
            user_id: uid(1),
            profile: profile("alice"),
            expected_version: None,
        })
        .unwrap();
    assert!(events.is_empty());
}

#[test]
fn renaming_moves_the_user_name_index() {
    let scenario = given(a_tenant())
        .after(provision(1, "alice"))
        .after(Command::ReplaceUser {
            user_id: uid(1),
            profile: profile("alicia"),
            expected_version: None,
        });
    assert_eq!(scenario.state.user_id_by_name("alicia"), Some(uid(1)));
    assert_eq!(scenario.state.user_id_by_name("alice"), None);
    assert!(scenario.when(provision(2, "alice")).is_ok());
    assert_eq!(scenario.state.user(&uid(1)).unwrap().version, 2);
}

#[test]
fn a_user_may_change_the_case_of_its_own_user_name() {
    let scenario = given(a_tenant())
        .after(provision(1, "alice"))
        .after(Command::ReplaceUser {
            user_id: uid(1),
            profile: profile("Alice"),
            expected_version: None,
        });
    assert_eq!(scenario.state.user_id_by_name("alice"), Some(uid(1)));
    assert_eq!(
        scenario.state.user(&uid(1)).unwrap().profile.user_name,
        "Alice"
    );
}

#[test]
fn a_stale_version_is_refused() {
    let scenario = given(a_tenant()).after(provision(1, "alice"));
    let rejection = scenario
        .when(Command::DeleteUser {
            user_id: uid(1),
            expected_version: Some(7),
        })
        .unwrap_err();
    assert_eq!(
        rejection,
        Rejection::VersionMismatch {
            expected: 7,
            actual: 1
        }
    );
    assert_eq!(rejection.kind(), RejectionKind::PreconditionFailed);
}

#[test]
fn deactivation_is_a_lifecycle_event_and_reversible() {
    let scenario = given(a_tenant()).after(provision(1, "alice"));
    let events = scenario
        .when(Command::SetUserActive {
            user_id: uid(1),
            active: false,
            expected_version: None,
        })
        .unwrap();
    assert_eq!(
        events,
        vec![EventPayload::UserDeactivated {
            user_id: uid(1),
            user_name: "alice".into(),
            external_id: None,
            email: Default::default(),
            sso: Default::default()
        }]
    );
    let scenario = scenario.after(Command::SetUserActive {
        user_id: uid(1),
        active: false,
        expected_version: None,
    });
    assert!(!scenario.state.user(&uid(1)).unwrap().profile.active);
    let events = scenario
        .when(Command::SetUserActive {
            user_id: uid(1),
            active: true,
            expected_version: None,
        })
        .unwrap();
    assert!(matches!(events[..], [EventPayload::UserReactivated { .. }]));
}

#[test]
fn deactivating_an_inactive_user_changes_nothing() {
    let scenario = given(a_tenant())
        .after(provision(1, "alice"))
        .after(Command::SetUserActive {
            user_id: uid(1),
            active: false,
            expected_version: None,
        });
    let events = scenario
        .when(Command::SetUserActive {
            user_id: uid(1),
            active: false,
            expected_version: None,
        })
        .unwrap();
    assert!(events.is_empty());
}

#[test]
fn a_replace_that_also_deactivates_emits_the_update_then_the_deactivation() {
    let scenario = given(a_tenant()).after(provision(1, "alice"));
    let mut next = profile("alice");
    next.active = false;
    next.attributes.insert("title".into(), json!("Former"));
    let events = scenario
        .when(Command::ReplaceUser {
            user_id: uid(1),
            profile: next,
            expected_version: None,
        })
        .unwrap();
    assert!(matches!(
        events[..],
        [
            EventPayload::UserUpdated { .. },
            EventPayload::UserDeactivated { .. }
        ]
    ));
}

#[test]
fn passwords_and_server_owned_attributes_are_never_stored() {
    let mut sent = profile("alice");
    sent.attributes.insert("password".into(), json!("hunter2"));
    sent.attributes.insert("Password".into(), json!("hunter2"));
    sent.attributes
        .insert("meta".into(), json!({"resourceType": "User"}));
    sent.attributes.insert("id".into(), json!("client-chosen"));
    sent.attributes.insert("nickName".into(), json!("Al"));
    let events = given(a_tenant())
        .when(Command::ProvisionUser {
            user_id: uid(1),
            profile: sent,
        })
        .unwrap();
    let EventPayload::UserProvisioned { profile, .. } = &events[0] else {
        panic!("expected a provisioned event");
    };
    assert_eq!(profile.attributes.keys().collect::<Vec<_>>(), ["nickName"]);
}

#[test]
fn operations_on_unknown_users_are_not_found() {
    let scenario = given(a_tenant());
    for command in [
        Command::ReplaceUser {
            user_id: uid(9),
            profile: profile("ghost"),
            expected_version: None,
        },
        Command::SetUserActive {
            user_id: uid(9),
            active: false,
            expected_version: None,
        },
        Command::DeleteUser {
            user_id: uid(9),
            expected_version: None,
        },
    ] {
        assert_eq!(scenario.when(command), Err(Rejection::UserNotFound(uid(9))));
    }
}

#[test]
fn tenants_are_created_once_with_their_first_token() {
    let token = NewToken {
        id: TokenId("t1".into()),
        name: "default".into(),
        secret_sha256: [7; 32],
        expires_at: None,
        scope: Default::default(),
    };
    let events = given([])
        .when(Command::CreateTenant {
            default_role: Role::Read,
            first_token: Some(token.clone()),
            usernames: crate::domain::UsernamePolicy::Strict,
        })
        .unwrap();
    assert!(matches!(
        events[..],
        [
            EventPayload::TenantCreated { .. },
            EventPayload::TokenIssued { .. }
        ]
    ));
    assert_eq!(
        given(a_tenant()).when(Command::CreateTenant {
            default_role: Role::Read,
            first_token: None,
            usernames: crate::domain::UsernamePolicy::Strict
        }),
        Err(Rejection::TenantAlreadyExists)
    );
}

#[test]
fn revoked_tokens_stop_authenticating_and_revoking_twice_is_a_no_op() {
    let token = NewToken {
        id: TokenId("t1".into()),
        name: "default".into(),
        secret_sha256: [7; 32],
        expires_at: Some(T0.plus_micros(1_000_000)),
        scope: Default::default(),
    };
    let scenario = given(a_tenant()).after(Command::IssueToken(token));
    assert!(
        scenario
            .state
            .token(&TokenId("t1".into()))
            .unwrap()
            .is_valid_at(T0)
    );
    assert!(
        !scenario
            .state
            .token(&TokenId("t1".into()))
            .unwrap()
            .is_valid_at(T0.plus_micros(1_000_000))
    );
    let scenario = scenario.after(Command::RevokeToken {
        token_id: TokenId("t1".into()),
        at: T0,
    });
    assert!(
        !scenario
            .state
            .token(&TokenId("t1".into()))
            .unwrap()
            .is_valid_at(T0)
    );
    assert_eq!(
        scenario.when(Command::RevokeToken {
            token_id: TokenId("t1".into()),
            at: T0,
        }),
        Ok(vec![])
    );
    assert_eq!(
        scenario.when(Command::RevokeToken {
            token_id: TokenId("nope".into()),
            at: T0,
        }),
        Err(Rejection::TokenNotFound(TokenId("nope".into())))
    );
}

#[test]
fn the_system_tenant_holds_tokens_but_no_users() {
    let system = Scenario {
        state: State::new(TenantName::system()),
        clock: 0,
    };
    assert!(
        system
            .when(Command::IssueToken(NewToken {
                id: TokenId("admin".into()),
                name: "admin".into(),
                secret_sha256: [1; 32],
                expires_at: None,
                scope: Default::default()
            }))
            .is_ok()
    );
    assert_eq!(
        system.when(provision(1, "alice")),
        Err(Rejection::TenantNotFound)
    );
}

#[test]
fn oversized_values_are_refused_on_provision_and_replace_naming_the_attribute() {
    let mut huge = profile("alice");
    huge.attributes
        .insert("displayName".into(), json!("x".repeat(1_000_000)));
    let rejection = given(a_tenant())
        .when(Command::ProvisionUser {
            user_id: uid(1),
            profile: huge.clone(),
        })
        .unwrap_err();
    assert_eq!(rejection.kind(), RejectionKind::Invalid);
    assert_eq!(
        rejection.to_string(),
        "displayName is 1000000 bytes long; a string value may have at most 4096 bytes"
    );
    let emails: Vec<serde_json::Value> = (0..100_000)
        .map(|n| json!({"value": format!("{n}@x.io")}))
        .collect();
    let mut many = profile("alice");
    many.attributes.insert("emails".into(), json!(emails));
    let scenario = given(a_tenant()).after(provision(1, "alice"));
    let rejection = scenario
        .when(Command::ReplaceUser {
            user_id: uid(1),
            profile: many,
            expected_version: None,
        })
        .unwrap_err();
    assert!(matches!(
        rejection,
        Rejection::LimitExceeded(limits::LimitExceeded::Values { ref path, count: 100_000, max: 100 })
            if path == "emails"
    ));
}

#[test]
fn a_huge_user_name_is_refused_by_its_limit_without_being_quoted() {
    let rejection = given(a_tenant())
        .when(provision(1, &"a".repeat(1_000_000)))
        .unwrap_err();
    assert_eq!(
        rejection.to_string(),
        "userName is 1000000 bytes long; a userName may have at most 256 bytes"
    );
}

#[test]
fn values_stored_before_the_limits_stay_writable_unchanged() {
    // A user stored before the limits existed (the event is history, never decided again).
    let mut legacy = profile("alice");
    legacy
        .attributes
        .insert("displayName".into(), json!("x".repeat(10_000)));
    let scenario = given(a_tenant()).after(provision(9, "bob"));
    let mut scenario = scenario;
    scenario.record([EventPayload::UserProvisioned {
        user_id: uid(1),
        profile: legacy.clone(),
        handle: None,
    }]);
    // An IdP deactivates it and changes another attribute: accepted.
    let mut deactivated = legacy.clone();
    deactivated.active = false;
    deactivated.attributes.insert("title".into(), json!("Gone"));
    deactivated
        .attributes
        .insert("displayName".into(), json!("x".repeat(10_000)));
    assert!(
        scenario
            .when(Command::ReplaceUser {
                user_id: uid(1),
                profile: deactivated,
                expected_version: None,
            })
            .is_ok()
    );
    // Changing the oversized value itself must fit.
    let mut renamed = legacy;
    renamed
        .attributes
        .insert("displayName".into(), json!("y".repeat(10_000)));
    assert!(matches!(
        scenario.when(Command::ReplaceUser {
            user_id: uid(1),
            profile: renamed,
            expected_version: None,
        }),
        Err(Rejection::LimitExceeded(_))
    ));
}
