//! Tokens: rotation with an overlap, use recorded at most hourly, the last admin token kept, and
//! the tenant's SSO policy.

use super::*;

fn token(id: &str, expires_at: Option<Timestamp>) -> NewToken {
    NewToken {
        id: TokenId(id.to_owned()),
        name: id.to_owned(),
        secret_sha256: [1; 32],
        expires_at,
        scope: Default::default(),
    }
}

fn issued(id: &str, expires_at: Option<Timestamp>) -> EventPayload {
    EventPayload::TokenIssued {
        token_id: TokenId(id.to_owned()),
        name: id.to_owned(),
        secret_sha256: [1; 32],
        expires_at,
        scope: Default::default(),
    }
}

const HOUR: i64 = 3_600_000_000;

#[test]
fn rotation_issues_the_new_token_and_makes_the_old_one_expire_after_the_overlap() {
    let scenario = given([a_tenant(), vec![issued("old", None)]].concat());
    let end_of_overlap = T0.plus_micros(24 * HOUR);
    let events = scenario
        .when(Command::RotateToken {
            old: TokenId("old".into()),
            new: token("new", None),
            old_expires_at: end_of_overlap,
            at: T0,
        })
        .unwrap();
    assert_eq!(
        events,
        vec![
            issued("new", None),
            EventPayload::TokenExpiryChanged {
                token_id: TokenId("old".into()),
                expires_at: Some(end_of_overlap),
            }
        ]
    );
}

#[test]
fn rotation_never_extends_the_old_token() {
    let soon = T0.plus_micros(HOUR);
    let scenario = given([a_tenant(), vec![issued("old", Some(soon))]].concat());
    let events = scenario
        .when(Command::RotateToken {
            old: TokenId("old".into()),
            new: token("new", None),
            old_expires_at: T0.plus_micros(48 * HOUR),
            at: T0,
        })
        .unwrap();
    assert_eq!(
        events,
        vec![issued("new", None)],
        "the old expiry was sooner"
    );
}

#[test]
fn a_revoked_or_unknown_token_cannot_be_rotated() {
    let scenario = given(
        [
            a_tenant(),
            vec![
                issued("old", None),
                EventPayload::TokenRevoked {
                    token_id: TokenId("old".into()),
                },
            ],
        ]
        .concat(),
    );
    for old in ["old", "nosuch"] {
        assert_eq!(
            scenario.when(Command::RotateToken {
                old: TokenId(old.into()),
                new: token("new", None),
                old_expires_at: T0,
                at: T0,
            }),
            Err(Rejection::TokenNotFound(TokenId(old.into())))
        );
    }
}

#[test]
fn token_use_is_recorded_at_most_once_an_hour() {
    let scenario = given([a_tenant(), vec![issued("t", None)]].concat());
    let use_at = |at: Timestamp| Command::RecordTokenUse {
        token_id: TokenId("t".into()),
        at,
    };
    assert_eq!(
        scenario.when(use_at(T0)).unwrap(),
        vec![EventPayload::TokenUsed {
            token_id: TokenId("t".into())
        }]
    );
    let scenario = scenario.after(use_at(T0));
    let recorded = scenario.state.token(&TokenId("t".into())).unwrap();
    assert!(recorded.last_used_at.is_some());
    assert_eq!(
        scenario.when(use_at(T0.plus_micros(HOUR / 2))).unwrap(),
        vec![]
    );
    assert_eq!(
        scenario
            .when(use_at(T0.plus_micros(2 * HOUR)))
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        scenario
            .when(Command::RecordTokenUse {
                token_id: TokenId("gone".into()),
                at: T0
            })
            .unwrap(),
        vec![],
        "an unknown token is not an error: the request was authenticated before"
    );
}

#[test]
fn expiry_changes_apply_to_the_token() {
    let mut scenario = given([a_tenant(), vec![issued("t", None)]].concat());
    scenario.record([EventPayload::TokenExpiryChanged {
        token_id: TokenId("t".into()),
        expires_at: Some(T0),
    }]);
    let token = scenario.state.token(&TokenId("t".into())).unwrap();
    assert_eq!(token.expires_at, Some(T0));
    assert!(!token.is_valid_at(T0.plus_micros(1)));
}

#[test]
fn the_sso_policy_changes_only_when_it_differs() {
    let scenario = given(a_tenant());
    assert_eq!(
        scenario
            .when(Command::SetSsoEnforced { enforced: true })
            .unwrap(),
        vec![EventPayload::TenantSettingsChanged {
            sso_enforced: Some(true),
            usernames: None
        }]
    );
    let scenario = scenario.after(Command::SetSsoEnforced { enforced: true });
    assert!(scenario.state.tenant.as_ref().unwrap().sso_enforced);
    assert_eq!(
        scenario
            .when(Command::SetSsoEnforced { enforced: true })
            .unwrap(),
        vec![]
    );
    assert_eq!(
        given(vec![]).when(Command::SetSsoEnforced { enforced: true }),
        Err(Rejection::TenantNotFound)
    );
}

/// The system tenant, holding admin tokens `valid` (no expiry) and `expired` (expired at T0).
fn admin_tokens(valid: &[&str]) -> Scenario {
    let mut system = Scenario {
        state: State::new(TenantName::system()),
        clock: 0,
    };
    let mut tokens: Vec<EventPayload> = valid.iter().map(|id| issued(id, None)).collect();
    tokens.push(issued("expired", Some(T0)));
    system.record(tokens);
    system
}

fn revoke(id: &str) -> Command {
    Command::RevokeToken {
        token_id: TokenId(id.into()),
        at: T0.plus_micros(HOUR),
    }
}

#[test]
fn the_last_valid_admin_token_cannot_be_revoked() {
    let system = admin_tokens(&["a", "b"]);
    assert_eq!(
        system.when(revoke("a")).unwrap(),
        vec![EventPayload::TokenRevoked {
            token_id: TokenId("a".into())
        }]
    );
    // Decided in order: once `a` is revoked, `b` is the last valid one (`expired` does not count).
    let system = system.after(revoke("a"));
    let rejection = system.when(revoke("b")).unwrap_err();
    assert_eq!(rejection, Rejection::LastAdminToken(TokenId("b".into())));
    assert_eq!(rejection.kind(), RejectionKind::PreconditionFailed);
    assert!(rejection.to_string().contains("issue another first"));
    // An expired token may still be revoked, and a tenant's own tokens have no such rule.
    assert!(system.when(revoke("expired")).is_ok());
    let tenant = given([a_tenant(), vec![issued("only", None)]].concat());
    assert!(tenant.when(revoke("only")).is_ok());
}

#[test]
fn rotating_the_last_admin_token_needs_a_new_token_that_is_valid() {
    let system = admin_tokens(&["a"]);
    let rotate = |expires_at: Option<Timestamp>| Command::RotateToken {
        old: TokenId("a".into()),
        new: token("new", expires_at),
        old_expires_at: T0,
        at: T0.plus_micros(HOUR),
    };
    assert!(system.when(rotate(None)).is_ok());
    assert!(system.when(rotate(Some(T0.plus_micros(2 * HOUR)))).is_ok());
    assert_eq!(
        system.when(rotate(Some(T0.plus_micros(HOUR)))),
        Err(Rejection::LastAdminToken(TokenId("a".into()))),
        "a new token already expired would leave no valid admin token"
    );
}
