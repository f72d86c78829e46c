//! Webhook subscriptions: added with checked URL and filter, at most a tenant's share, paused
//! and resumed, given up on only while active, rotated with an overlap, removed.

use super::*;

fn whid(n: u128) -> WebhookId {
    WebhookId(Uuid::from_u128(0x3000 + n))
}

fn add(n: u128, url: &str, event_types: &[&str]) -> Command {
    Command::AddWebhook(NewWebhook {
        id: whid(n),
        url: url.to_owned(),
        event_types: event_types.iter().map(|t| (*t).to_owned()).collect(),
        description: "offboarding".to_owned(),
    })
}

fn status(n: u128, status: WebhookStatus) -> Command {
    Command::SetWebhookStatus {
        webhook_id: whid(n),
        status,
        reason: "test".to_owned(),
    }
}

fn webhook(scenario: &Scenario, n: u128) -> Option<WebhookRecord> {
    scenario.state.tenant.as_ref()?.webhook(&whid(n)).cloned()
}

#[test]
fn a_webhook_is_added_with_its_filter_normalized() {
    let scenario = given(a_tenant()).after(add(
        1,
        " https://hooks.example.com/roster ",
        &["User.Deactivated", "user.deleted"],
    ));
    let added = webhook(&scenario, 1).unwrap();
    assert_eq!(added.url, "https://hooks.example.com/roster");
    assert_eq!(added.event_types, vec!["user.deactivated", "user.deleted"]);
    assert_eq!(added.status, WebhookStatus::Active);
    assert_eq!(added.secret_generation, 1);
    assert!(added.selects("user.deleted"));
    assert!(!added.selects("user.provisioned"));
    assert!(matches!(
        scenario.when(add(1, "https://other.example.com", &[])),
        Err(Rejection::WebhookAlreadyExists(_))
    ));
}

#[test]
fn bad_urls_and_filters_and_missing_tenants_are_refused() {
    let scenario = given(a_tenant());
    for url in [
        "ftp://x.example.com",
        "https://u:p@x.example.com",
        "not a url",
    ] {
        assert!(matches!(
            scenario.when(add(1, url, &[])),
            Err(Rejection::InvalidValue(_))
        ));
    }
    assert!(matches!(
        scenario.when(add(1, "https://x.example.com", &["user.fired"])),
        Err(Rejection::InvalidValue(_))
    ));
    assert!(matches!(
        given([]).when(add(1, "https://x.example.com", &[])),
        Err(Rejection::TenantNotFound)
    ));
}

#[test]
fn a_tenant_holds_a_bounded_number_of_webhooks() {
    let mut scenario = given(a_tenant());
    for n in 0..WEBHOOKS_PER_TENANT_MAX as u128 {
        scenario = scenario.after(add(n, "https://x.example.com", &[]));
    }
    assert!(matches!(
        scenario.when(add(999, "https://x.example.com", &[])),
        Err(Rejection::TooManyWebhooks { .. })
    ));
    let scenario = scenario.after(Command::RemoveWebhook {
        webhook_id: whid(0),
        reason: "admin".into(),
    });
    assert!(
        scenario
            .when(add(999, "https://x.example.com", &[]))
            .is_ok()
    );
}

#[test]
fn failing_applies_only_to_an_active_webhook_and_resume_clears_it() {
    let scenario = given(a_tenant()).after(add(1, "https://x.example.com", &[]));
    let paused = scenario.after(status(1, WebhookStatus::Paused));
    assert_eq!(
        paused.when(status(1, WebhookStatus::Failing)).unwrap(),
        vec![]
    );
    let failing = given(a_tenant())
        .after(add(1, "https://x.example.com", &[]))
        .after(status(1, WebhookStatus::Failing));
    assert_eq!(webhook(&failing, 1).unwrap().status, WebhookStatus::Failing);
    let resumed = failing.after(status(1, WebhookStatus::Active));
    assert_eq!(webhook(&resumed, 1).unwrap().status, WebhookStatus::Active);
    assert_eq!(
        resumed.when(status(1, WebhookStatus::Active)).unwrap(),
        vec![]
    );
    assert!(matches!(
        resumed.when(status(2, WebhookStatus::Paused)),
        Err(Rejection::WebhookNotFound(_))
    ));
}

#[test]
fn a_rotation_keeps_the_previous_secret_signing_until_the_overlap_ends() {
    let until = T0.plus_micros(3_600_000_000);
    let scenario = given(a_tenant())
        .after(add(1, "https://x.example.com", &[]))
        .after(Command::RotateWebhookSecret {
            webhook_id: whid(1),
            previous_expires_at: until,
        });
    let rotated = webhook(&scenario, 1).unwrap();
    assert_eq!(rotated.secret_generation, 2);
    assert_eq!(rotated.signing_generations(T0), vec![2, 1]);
    assert_eq!(rotated.signing_generations(until), vec![2]);
    // A second rotation within the overlap keeps the first one's promise.
    let later = until.plus_micros(3_600_000_000);
    let scenario = scenario.after(Command::RotateWebhookSecret {
        webhook_id: whid(1),
        previous_expires_at: later,
    });
    let twice = webhook(&scenario, 1).unwrap();
    assert_eq!(twice.signing_generations(T0), vec![3, 2, 1]);
    assert_eq!(twice.signing_generations(until), vec![3, 2]);
    assert_eq!(twice.signing_generations(later), vec![3]);
}

#[test]
fn removal_forgets_the_webhook() {
    let scenario = given(a_tenant())
        .after(add(1, "https://x.example.com", &[]))
        .after(Command::RemoveWebhook {
            webhook_id: whid(1),
            reason: "410 Gone".into(),
        });
    assert!(webhook(&scenario, 1).is_none());
    assert!(matches!(
        scenario.when(Command::RemoveWebhook {
            webhook_id: whid(1),
            reason: "again".into(),
        }),
        Err(Rejection::WebhookNotFound(_))
    ));
}
