//! Handles and the username policy: a `derive` tenant takes any userName and derives a unique
//! handle from it; a `strict` tenant keeps Hugging Face's rules on userName itself; handles change
//! only with userName; the policy goes back to strict only when no handle differs.

use super::*;

fn a_deriving_tenant() -> Vec<EventPayload> {
    vec![EventPayload::TenantCreated {
        default_role: Role::Read,
        usernames: UsernamePolicy::Derive,
    }]
}

/// The handle of user `n` after the scenario.
fn handle_of(scenario: &Scenario, n: u128) -> String {
    scenario.state.user(&uid(n)).unwrap().handle().to_owned()
}

fn rename(n: u128, user_name: &str) -> Command {
    Command::ReplaceUser {
        user_id: uid(n),
        profile: profile(user_name),
        expected_version: None,
    }
}

#[test]
fn a_deriving_tenant_takes_what_idps_send_and_derives_valid_handles() {
    let names = [
        "alice.smith@acme.com",
        "alice@contoso.com",
        "Test_User_0f6c4a2e-1b7d-4c8e-9f00-123456789abc",
        "Zoë Ørsted",
        "张伟",
    ];
    let mut scenario = given(a_deriving_tenant());
    for (n, name) in names.iter().enumerate() {
        scenario = scenario.after(provision(n as u128 + 1, name));
    }
    let handles: Vec<String> = (1..=5).map(|n| handle_of(&scenario, n)).collect();
    assert_eq!(
        handles,
        [
            "alice-smith",
            "alice",
            "Test-User-0f6c4a2e-1b7d-4c8e-9f00-12345678",
            "Zoe-Orsted",
            "user"
        ]
    );
    for (n, name) in names.iter().enumerate() {
        let user = scenario.state.user(&uid(n as u128 + 1)).unwrap();
        assert_eq!(user.profile.user_name, *name, "userName kept as sent");
        assert_eq!(check_handle(user.handle()), Ok(()));
    }
}

#[test]
fn colliding_handles_get_numbers_and_never_take_a_held_one() {
    let scenario = given(a_deriving_tenant())
        .after(provision(1, "alice@contoso.com"))
        .after(provision(2, "alice@fabrikam.com"))
        .after(provision(3, "ALICE@northwind.com"))
        // A userName that is itself a valid handle, held already by user 1.
        .after(provision(4, "Alice"));
    assert_eq!(handle_of(&scenario, 1), "alice");
    assert_eq!(handle_of(&scenario, 2), "alice-2");
    assert_eq!(handle_of(&scenario, 3), "ALICE-3");
    assert_eq!(handle_of(&scenario, 4), "Alice-4");
    // A new userName equal to another user's derived handle does not get that handle.
    let events = scenario.when(provision(5, "alice-2")).unwrap();
    let EventPayload::UserProvisioned { handle, .. } = &events[0] else {
        panic!("{events:?}");
    };
    assert_eq!(handle.as_deref(), Some("alice-2-2"));
}

#[test]
fn the_event_carries_the_handle_only_when_it_differs_from_the_user_name() {
    let scenario = given(a_deriving_tenant());
    let events = scenario.when(provision(1, "bob")).unwrap();
    assert_eq!(
        events,
        vec![EventPayload::UserProvisioned {
            user_id: uid(1),
            profile: profile("bob"),
            handle: None
        }]
    );
    let events = scenario.when(provision(1, "bob@x.io")).unwrap();
    assert_eq!(
        events,
        vec![EventPayload::UserProvisioned {
            user_id: uid(1),
            profile: profile("bob@x.io"),
            handle: Some("bob".into())
        }]
    );
}

#[test]
fn a_handle_changes_with_the_user_name_and_never_otherwise() {
    let scenario = given(a_deriving_tenant())
        .after(provision(1, "alice@contoso.com"))
        .after(provision(2, "alice@fabrikam.com"));
    assert_eq!(handle_of(&scenario, 2), "alice-2");
    // Deactivating, or a replace keeping the userName, keeps the handle even though "alice" is
    // free again once user 1 is gone.
    let scenario = scenario.after(Command::DeleteUser {
        user_id: uid(1),
        expected_version: None,
    });
    let scenario = scenario.after(Command::SetUserActive {
        user_id: uid(2),
        active: false,
        expected_version: None,
    });
    assert_eq!(handle_of(&scenario, 2), "alice-2");
    // A new userName derives again.
    let scenario = scenario.after(rename(2, "alice.jones@fabrikam.com"));
    assert_eq!(handle_of(&scenario, 2), "alice-jones");
    // The old handle is free again.
    let scenario = scenario.after(provision(3, "alice-2@x.io"));
    assert_eq!(handle_of(&scenario, 3), "alice-2");
}

#[test]
fn a_strict_tenant_keeps_the_handle_rules_on_user_name_and_says_how_to_derive() {
    let rejection = given(a_tenant())
        .when(provision(1, "alice.smith@acme.com"))
        .unwrap_err();
    assert_eq!(rejection.kind(), RejectionKind::Invalid);
    let message = rejection.to_string();
    assert!(
        message.contains("only letters, digits and '-'"),
        "{message}"
    );
    assert!(message.contains("--usernames derive"), "{message}");
    let scenario = given(a_tenant()).after(provision(1, "alice"));
    assert_eq!(handle_of(&scenario, 1), "alice");
}

#[test]
fn every_policy_refuses_empty_long_or_control_user_names_and_trims() {
    let scenario = given(a_deriving_tenant());
    for name in ["   ", "a\u{7}b"] {
        assert!(
            matches!(
                scenario.when(provision(1, name)),
                Err(Rejection::BadUserName { .. })
            ),
            "{name:?}"
        );
    }
    let events = scenario.when(provision(1, "  bob@x.io ")).unwrap();
    let EventPayload::UserProvisioned { profile, .. } = &events[0] else {
        panic!("{events:?}");
    };
    assert_eq!(profile.user_name, "bob@x.io");
}

#[test]
fn the_policy_goes_back_to_strict_only_when_no_handle_differs() {
    let scenario =
        given(a_tenant())
            .after(provision(1, "alice"))
            .after(Command::SetUsernamePolicy {
                policy: UsernamePolicy::Derive,
            });
    // Switching keeps every handle.
    assert_eq!(handle_of(&scenario, 1), "alice");
    let scenario = scenario.after(provision(2, "bob@x.io"));
    let rejection = scenario
        .when(Command::SetUsernamePolicy {
            policy: UsernamePolicy::Strict,
        })
        .unwrap_err();
    assert_eq!(rejection, Rejection::DerivedHandlesRemain { count: 1 });
    assert!(rejection.to_string().contains("1 user(s)"));
    // Once the userName is the handle, strict is allowed again.
    let scenario = scenario.after(rename(2, "bob"));
    assert_eq!(scenario.state.tenant.as_ref().unwrap().derived_handles, 0);
    let scenario = scenario.after(Command::SetUsernamePolicy {
        policy: UsernamePolicy::Strict,
    });
    assert_eq!(
        scenario.state.tenant.as_ref().unwrap().usernames,
        UsernamePolicy::Strict
    );
}
