//! Shared Signals streams: one per receiver, a bounded number per tenant, configuration checked,
//! a receiver reaching only its own stream, status changes telling who made them, subjects
//! removed and added back, verification at most every few seconds, deletion.

use super::*;
use crate::domain::ssf::*;

fn sid(n: u128) -> SsfStreamId {
    SsfStreamId(Uuid::from_u128(0x5000 + n))
}

fn receiver(n: u128) -> TokenId {
    TokenId(format!("r{n:015}"))
}

fn poll_config() -> SsfStreamConfig {
    SsfStreamConfig {
        delivery: SsfDelivery::Poll,
        events_requested: vec![CAEP_SESSION_REVOKED.into(), RISC_ACCOUNT_DISABLED.into()],
        description: "rp".into(),
    }
}

fn create(n: u128) -> Command {
    Command::CreateSsfStream(NewSsfStream {
        id: sid(n),
        receiver: receiver(n),
        config: poll_config(),
    })
}

fn stream(scenario: &Scenario, n: u128) -> Option<SsfStreamRecord> {
    scenario.state.tenant.as_ref()?.ssf_stream(&sid(n)).cloned()
}

#[test]
fn a_receiver_creates_one_stream_and_sees_only_its_own() {
    let scenario = given(a_tenant()).after(create(1));
    let created = stream(&scenario, 1).unwrap();
    assert_eq!(created.status, SsfStreamStatus::Enabled);
    assert_eq!(
        created.events_delivered(),
        vec![RISC_ACCOUNT_DISABLED, CAEP_SESSION_REVOKED]
    );
    assert!(created.delivers(CAEP_SESSION_REVOKED));
    assert!(!created.delivers(RISC_ACCOUNT_PURGED));
    assert!(created.delivers(SSF_VERIFICATION));
    // One stream per receiver: the second create names the first.
    let again = Command::CreateSsfStream(NewSsfStream {
        id: sid(2),
        receiver: receiver(1),
        config: poll_config(),
    });
    assert_eq!(
        scenario.when(again),
        Err(Rejection::SsfStreamExists(sid(1)))
    );
    // Another receiver does not find it; an admin (no receiver) does.
    let delete_as = |who: Option<TokenId>| Command::DeleteSsfStream {
        stream_id: sid(1),
        receiver: who,
        reason: "test".into(),
    };
    assert_eq!(
        scenario.when(delete_as(Some(receiver(2)))),
        Err(Rejection::SsfStreamNotFound(sid(1)))
    );
    assert!(scenario.when(delete_as(None)).is_ok());
    let deleted = scenario.after(delete_as(Some(receiver(1))));
    assert!(stream(&deleted, 1).is_none());
    assert!(deleted.when(create(1)).is_ok());
}

#[test]
fn bad_configurations_and_missing_tenants_are_refused() {
    let push = |url: &str| {
        Command::CreateSsfStream(NewSsfStream {
            id: sid(1),
            receiver: receiver(1),
            config: SsfStreamConfig {
                delivery: SsfDelivery::Push {
                    endpoint_url: url.into(),
                    authorization_sealed: Vec::new(),
                },
                events_requested: Vec::new(),
                description: String::new(),
            },
        })
    };
    assert!(matches!(
        given(a_tenant()).when(push("ftp://rp.example.com")),
        Err(Rejection::InvalidValue(_))
    ));
    assert!(
        given(a_tenant())
            .when(push("https://rp.example.com/e"))
            .is_ok()
    );
    assert_eq!(given([]).when(create(1)), Err(Rejection::TenantNotFound));
}

#[test]
fn a_tenant_holds_a_bounded_number_of_streams() {
    let mut scenario = given(a_tenant());
    for n in 0..SSF_STREAMS_PER_TENANT_MAX as u128 {
        scenario = scenario.after(create(n));
    }
    assert!(matches!(
        scenario.when(create(999)),
        Err(Rejection::TooManySsfStreams { .. })
    ));
}

#[test]
fn status_changes_say_who_made_them_and_repeat_nothing() {
    let scenario = given(a_tenant()).after(create(1));
    let by_receiver = scenario
        .when(Command::SetSsfStreamStatus {
            stream_id: sid(1),
            receiver: Some(receiver(1)),
            status: SsfStreamStatus::Paused,
            reason: "maintenance".into(),
        })
        .unwrap();
    assert!(matches!(
        by_receiver.as_slice(),
        [EventPayload::SsfStreamStatusChanged {
            by_receiver: true,
            status: SsfStreamStatus::Paused,
            ..
        }]
    ));
    let disable = Command::SetSsfStreamStatus {
        stream_id: sid(1),
        receiver: None,
        status: SsfStreamStatus::Disabled,
        reason: "admin".into(),
    };
    let disabled = scenario.after(disable.clone());
    assert_eq!(
        stream(&disabled, 1).unwrap().status,
        SsfStreamStatus::Disabled
    );
    assert_eq!(disabled.when(disable).unwrap(), vec![]);
}

#[test]
fn subjects_are_removed_and_added_back_within_a_bound() {
    let subject =
        |n: usize| serde_json::json!({"format": "email", "email": format!("u{n}@example.com")});
    let change = |n: usize, removed: bool| Command::ChangeSsfSubject {
        stream_id: sid(1),
        receiver: receiver(1),
        subject: subject(n),
        removed,
    };
    let mut scenario = given(a_tenant()).after(create(1)).after(change(0, true));
    let record = stream(&scenario, 1).unwrap();
    assert!(!record.includes_subject(&subject(0)));
    assert!(record.includes_subject(&subject(1)));
    assert_eq!(scenario.when(change(0, true)).unwrap(), vec![]);
    scenario = scenario.after(change(0, false));
    assert!(stream(&scenario, 1).unwrap().includes_subject(&subject(0)));
    for n in 0..SSF_REMOVED_SUBJECTS_MAX {
        scenario = scenario.after(change(n, true));
    }
    assert!(matches!(
        scenario.when(change(100_000, true)),
        Err(Rejection::TooManySsfSubjects { .. })
    ));
    assert!(matches!(
        scenario.when(Command::ChangeSsfSubject {
            stream_id: sid(1),
            receiver: receiver(1),
            subject: serde_json::json!({"email": "x"}),
            removed: true,
        }),
        Err(Rejection::InvalidValue(_))
    ));
}

#[test]
fn verification_is_asked_at_most_every_few_seconds() {
    let verify = |at: Timestamp| Command::RequestSsfVerification {
        stream_id: sid(1),
        receiver: receiver(1),
        state: "s1".into(),
        at,
    };
    let scenario = given(a_tenant()).after(create(1));
    let asked_at = T0.plus_micros(scenario.clock + 1);
    let scenario = scenario.after(verify(asked_at));
    assert!(stream(&scenario, 1).unwrap().last_verification_at.is_some());
    let last = stream(&scenario, 1).unwrap().last_verification_at.unwrap();
    assert!(matches!(
        scenario.when(verify(last.plus_micros(1_000_000))),
        Err(Rejection::SsfVerificationTooSoon { wait_seconds: 4 })
    ));
    let later = last.plus_micros(SSF_MIN_VERIFICATION_INTERVAL_SECONDS * 1_000_000);
    assert!(scenario.when(verify(later)).is_ok());
}

#[test]
fn a_rotated_receiver_token_keeps_its_stream() {
    let scenario = given([
        EventPayload::TenantCreated {
            default_role: Role::Read,
            usernames: crate::domain::UsernamePolicy::Strict,
        },
        EventPayload::TokenIssued {
            token_id: receiver(1),
            name: "rp".into(),
            scope: TokenScope::Ssf,
            secret_sha256: [1; 32],
            expires_at: None,
        },
    ])
    .after(create(1))
    .after(Command::RotateToken {
        old: receiver(1),
        new: NewToken {
            id: receiver(2),
            name: "rp".into(),
            secret_sha256: [2; 32],
            expires_at: None,
            scope: TokenScope::Scim,
        },
        old_expires_at: T0.plus_micros(1_000_000_000),
        at: T0,
    });
    let stream = stream(&scenario, 1).unwrap();
    assert_eq!(stream.receiver, receiver(2));
    assert_eq!(stream.config, poll_config());
}
