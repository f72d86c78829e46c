//! Just-in-time provisioning (`Directory.JitProvision`), claim role mappings (admin gRPC and
//! CLI), SSO enforcement in `CheckAccess`, and the optional per-token SCIM rate limit.

use roster_gateway::ratelimit::RateLimit;
use roster_proto::v1 as pb;
use roster_proto::v1::audit_client::AuditClient;
use serde_json::{Value, json};
use tokio_stream::StreamExt;
use tonic::Code;

use crate::support::{Stack, authorized, patch_op, reply};

fn login(
    subject: &str,
    email: &str,
    given: &str,
    family: &str,
    claims: Value,
) -> pb::JitProvisionRequest {
    pb::JitProvisionRequest {
        tenant: "acme".into(),
        subject: subject.into(),
        email: email.into(),
        given_name: given.into(),
        family_name: family.into(),
        claims_json: claims.to_string(),
    }
}

async fn jit(
    stack: &Stack,
    token: &str,
    request: pb::JitProvisionRequest,
) -> Result<pb::JitProvisionResponse, tonic::Status> {
    stack
        .directory()
        .await
        .jit_provision(authorized(token, request))
        .await
        .map(tonic::Response::into_inner)
}

async fn map_claim(stack: &Stack, claim: &str, value: &str, role: pb::Role) -> pb::RoleMappings {
    stack
        .admin()
        .await
        .set_claim_role_mapping(stack.with_admin_token(pb::SetClaimRoleMappingRequest {
            tenant: "acme".into(),
            claim: claim.into(),
            value: value.into(),
            role: role.into(),
        }))
        .await
        .unwrap()
        .into_inner()
}

fn claim_source(access: &pb::UserAccess) -> Option<(String, String)> {
    match access
        .org_role_source
        .as_ref()
        .and_then(|source| source.kind.as_ref())
    {
        Some(pb::role_source::Kind::Claim(claim)) => {
            Some((claim.claim.clone(), claim.value.clone()))
        }
        _ => None,
    }
}

#[tokio::test]
async fn a_login_creates_the_user_and_a_later_one_updates_it_from_changed_claims() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    map_claim(&stack, "groups", "engineering", pb::Role::Write).await;
    map_claim(&stack, "groups", "admins", pb::Role::Admin).await;
    let mappings = map_claim(
        &stack,
        "custom.department",
        "research",
        pb::Role::Contributor,
    )
    .await;
    assert_eq!(mappings.claim_mappings.len(), 3);

    let created = jit(
        &stack,
        &acme.token,
        login(
            "00u-alice",
            "alice.smith@acme.example",
            "Alice",
            "Smith",
            json!({"groups": ["engineering", "sales"], "custom": {"department": "Research"}}),
        ),
    )
    .await
    .unwrap();
    assert!(created.created);
    let user = created.user.unwrap();
    assert_eq!(user.user_name, "alice-smith");
    assert!(user.active);
    let access = created.access.unwrap();
    assert_eq!(
        access.org_role,
        i32::from(pb::Role::Write),
        "most privileged match wins"
    );
    assert_eq!(
        claim_source(&access),
        Some(("groups".to_owned(), "engineering".to_owned()))
    );
    // SCIM sees the user JIT created.
    let scim = acme.get(&format!("/Users/{}", user.id)).await.expect(200);
    assert_eq!(scim["name"]["givenName"], "Alice");
    assert_eq!(scim["emails"][0]["value"], "alice.smith@acme.example");

    // The same login again changes nothing.
    let again = jit(
        &stack,
        &acme.token,
        login(
            "00u-alice",
            "alice.smith@acme.example",
            "Alice",
            "Smith",
            json!({"groups": ["engineering", "sales"], "custom": {"department": "Research"}}),
        ),
    )
    .await
    .unwrap();
    assert!(!again.created);
    assert_eq!(again.user.as_ref().unwrap().version, user.version);

    // Changed claims: new family name, email and groups.
    let updated = jit(
        &stack,
        &acme.token,
        login(
            "00u-alice",
            "alice.jones@acme.example",
            "Alice",
            "Jones",
            json!({"groups": ["admins"]}),
        ),
    )
    .await
    .unwrap();
    assert!(!updated.created);
    let updated_user = updated.user.unwrap();
    assert_eq!(updated_user.id, user.id, "the same user, not a new one");
    assert_eq!(updated_user.user_name, "alice-smith");
    let attributes: Value = serde_json::from_str(&updated_user.attributes_json).unwrap();
    assert_eq!(attributes["name"]["familyName"], "Jones");
    assert_eq!(attributes["displayName"], "Alice Jones");
    assert_eq!(attributes["emails"][0]["value"], "alice.jones@acme.example");
    let access = updated.access.unwrap();
    assert_eq!(access.org_role, i32::from(pb::Role::Admin));
    assert_eq!(
        claim_source(&access),
        Some(("groups".to_owned(), "admins".to_owned()))
    );
    // GetUserAccess agrees.
    let read = stack
        .directory()
        .await
        .get_user_access(authorized(
            &acme.token,
            pb::GetUserAccessRequest {
                tenant: "acme".into(),
                user: Some(pb::UserRef {
                    by: Some(pb::user_ref::By::Id(user.id.clone())),
                }),
                as_of: None,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(read.org_role, i32::from(pb::Role::Admin));

    // Every event about the user was made by the actor kind jit, and says what it was.
    let mut audit = AuditClient::connect(format!("http://{}", stack.running.grpc_addr))
        .await
        .unwrap();
    let mut records = audit
        .replay(authorized(
            &acme.token,
            pb::ReplayRequest {
                tenant: "acme".into(),
                target: user.id.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let mut types = Vec::new();
    while let Some(record) = records.next().await {
        let record = record.unwrap();
        assert_eq!(
            record.actor.as_ref().unwrap().kind,
            i32::from(pb::ActorKind::Jit),
            "{record:?}"
        );
        types.push(record.event_type);
    }
    assert_eq!(
        types,
        vec![
            "user.provisioned",
            "user.sso_linked",
            "user.claim_role_changed",
            "user.updated",
            "user.claim_role_changed",
        ]
    );
}

#[tokio::test]
async fn scim_users_are_linked_usernames_deduplicated_and_deactivated_users_refused() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let bob = acme
        .post(
            "/Users",
            &json!({"userName": "bob", "externalId": "00u-bob",
                    "emails": [{"value": "bob@acme.example", "type": "work", "primary": true}]}),
        )
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let carol = acme
        .post(
            "/Users",
            &json!({"userName": "carol",
                    "emails": [{"value": "carol@acme.example", "type": "work"}]}),
        )
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // By externalId = subject.
    let linked = jit(
        &stack,
        &acme.token,
        login("00u-bob", "bob@acme.example", "Bob", "B", json!({})),
    )
    .await
    .unwrap();
    assert!(!linked.created);
    assert_eq!(linked.user.unwrap().id, bob);
    // By email, with a subject the IdP never sent over SCIM: only a verified email links.
    let refused = jit(
        &stack,
        &acme.token,
        login("oidc|carol", "CAROL@acme.example", "Carol", "C", json!({})),
    )
    .await
    .unwrap_err();
    assert_eq!(
        refused.code(),
        tonic::Code::FailedPrecondition,
        "{refused:?}"
    );
    assert!(refused.message().contains("email_verified"), "{refused:?}");
    let linked = jit(
        &stack,
        &acme.token,
        login(
            "oidc|carol",
            "CAROL@acme.example",
            "Carol",
            "C",
            json!({"email_verified": true}),
        ),
    )
    .await
    .unwrap();
    assert!(!linked.created);
    assert_eq!(linked.user.unwrap().id, carol);
    assert_eq!(acme.all_users().await.len(), 2, "nobody duplicated");
    // Someone else whose email starts with carol gets a free username.
    let other = jit(
        &stack,
        &acme.token,
        login(
            "oidc|carol2",
            "carol@other.example",
            "Carol",
            "D",
            json!({}),
        ),
    )
    .await
    .unwrap();
    assert!(other.created);
    assert_eq!(other.user.unwrap().user_name, "carol-2");

    // Deactivated through SCIM: the login is refused and the user stays deactivated.
    acme.patch(
        &format!("/Users/{bob}"),
        &patch_op(json!([{"op": "replace", "path": "active", "value": false}])),
    )
    .await
    .expect(200);
    let refused = jit(
        &stack,
        &acme.token,
        login("00u-bob", "bob@acme.example", "Bob", "B", json!({})),
    )
    .await
    .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert!(
        refused.message().contains("deactivated"),
        "{}",
        refused.message()
    );
    let bob_now = acme.get(&format!("/Users/{bob}")).await.expect(200);
    assert_eq!(bob_now["active"], json!(false));
}

#[tokio::test]
async fn a_subject_several_users_hold_as_external_id_is_refused_naming_the_count() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    for name in ["alice", "bob"] {
        acme.post(
            "/Users",
            &json!({"userName": name, "externalId": "00u-shared"}),
        )
        .await
        .expect(201);
    }
    let refused = jit(
        &stack,
        &acme.token,
        login(
            "00u-shared",
            "alice@acme.example",
            "Alice",
            "A",
            json!({"email_verified": true}),
        ),
    )
    .await
    .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(refused.message().contains("2 users"), "{refused:?}");
    assert!(refused.message().contains("00u-shared"), "{refused:?}");
    assert_eq!(acme.all_users().await.len(), 2, "nobody created or linked");
}

#[tokio::test]
async fn jit_is_scoped_to_the_tenant_and_checks_its_input() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let globex = stack.tenant("globex").await;
    let cross = jit(
        &stack,
        &globex.token,
        login("s", "a@acme.example", "", "", json!({})),
    )
    .await
    .unwrap_err();
    assert_eq!(cross.code(), Code::PermissionDenied);
    let mut anonymous = stack.directory().await;
    let missing = anonymous
        .jit_provision(tonic::Request::new(login("s", "", "", "", json!({}))))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::Unauthenticated);
    // The admin token may provision too.
    let by_admin = jit(
        &stack,
        &stack.admin_token(),
        login("s-admin", "dana@acme.example", "", "", json!({})),
    )
    .await
    .unwrap();
    assert_eq!(by_admin.user.unwrap().user_name, "dana");
    for (request, what) in [
        (
            login(" ", "a@acme.example", "", "", json!({})),
            "empty subject",
        ),
        (login("s", "not-an-email", "", "", json!({})), "bad email"),
        (
            login("s", "a@acme.example", "", "", json!(["x"])),
            "claims not an object",
        ),
    ] {
        let refused = jit(&stack, &acme.token, request).await.unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{what}: {refused:?}");
    }
    let mut broken = login("s", "a@acme.example", "", "", json!({}));
    broken.claims_json = "{not json".into();
    let refused = jit(&stack, &acme.token, broken).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    let mut unknown = login("s", "a@acme.example", "", "", json!({}));
    unknown.tenant = "nowhere".into();
    let refused = jit(&stack, &stack.admin_token(), unknown)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::NotFound);
}

#[tokio::test]
async fn claim_mappings_through_the_cli() {
    let stack = Stack::start().await;
    stack.tenant("acme").await;
    let run = |args: &[&str]| {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_roster"));
        command
            .args(args)
            .arg("--grpc")
            .arg(stack.running.grpc_addr.to_string())
            .arg("--data-dir")
            .arg(stack.data_dir())
            .env_remove("ROSTER_ADMIN_TOKEN");
        command
    };
    let output = run(&[
        "role",
        "claim",
        "set",
        "acme",
        "--claim",
        "groups",
        "--value",
        "engineering",
        "--role",
        "write",
    ])
    .output()
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let output = run(&["role", "list", "acme"]).output().await.unwrap();
    let listed = String::from_utf8(output.stdout).unwrap();
    assert!(
        listed.contains("claim\tgroups=engineering\twrite"),
        "{listed}"
    );
    let output = run(&[
        "role",
        "claim",
        "remove",
        "acme",
        "--claim",
        "groups",
        "--value",
        "engineering",
    ])
    .output()
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        !String::from_utf8(output.stdout)
            .unwrap()
            .contains("claim\t")
    );
    let output = run(&[
        "role",
        "claim",
        "remove",
        "acme",
        "--claim",
        "groups",
        "--value",
        "engineering",
    ])
    .output()
    .await
    .unwrap();
    assert!(!output.status.success(), "removing a missing mapping fails");
    let output = run(&[
        "role", "claim", "set", "acme", "--claim", "a..b", "--value", "x", "--role", "read",
    ])
    .output()
    .await
    .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("empty segment"));
}

async fn check(
    stack: &Stack,
    token: &str,
    session_auth: pb::SessionAuth,
    sso_tenant: &str,
) -> pb::CheckAccessResponse {
    stack
        .directory()
        .await
        .check_access(authorized(
            token,
            pb::CheckAccessRequest {
                tenant: "acme".into(),
                user: Some(pb::UserRef {
                    by: Some(pb::user_ref::By::UserName("alice".into())),
                }),
                action: pb::Action::Read.into(),
                resource: Some(pb::Resource {
                    namespace: "acme".into(),
                    resource_group: String::new(),
                }),
                session_auth: session_auth.into(),
                sso_tenant: sso_tenant.into(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn sso_enforcement_denies_sessions_that_did_not_come_through_the_tenants_idp() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    stack.tenant("globex").await;
    acme.create_user("alice").await;
    let token = acme.token.clone();
    // Not enforced: every session is fine, as before.
    for session in [
        pb::SessionAuth::Unspecified,
        pb::SessionAuth::Password,
        pb::SessionAuth::Social,
    ] {
        let answer = check(&stack, &token, session, "").await;
        assert!(answer.allowed, "{session:?}: {}", answer.reason);
        assert!(!answer.sso_required);
    }
    stack
        .admin()
        .await
        .set_tenant_settings(stack.with_admin_token(pb::SetTenantSettingsRequest {
            tenant: "acme".into(),
            sso_enforced: Some(true),
            usernames: None,
        }))
        .await
        .unwrap();
    let allowed = check(&stack, &token, pb::SessionAuth::Sso, "acme").await;
    assert!(allowed.allowed, "{}", allowed.reason);
    assert_eq!(allowed.effective_role, i32::from(pb::Role::Read));
    for (session, sso_tenant) in [
        (pb::SessionAuth::Password, ""),
        (pb::SessionAuth::Social, ""),
        (pb::SessionAuth::Unspecified, ""),
        (pb::SessionAuth::Sso, "globex"),
        (pb::SessionAuth::Sso, ""),
    ] {
        let denied = check(&stack, &token, session, sso_tenant).await;
        assert!(!denied.allowed, "{session:?} {sso_tenant:?}");
        assert!(denied.sso_required);
        assert!(denied.reason.contains("enforces SSO"), "{}", denied.reason);
    }
    // Turned off again: back to the old behaviour.
    stack
        .admin()
        .await
        .set_tenant_settings(stack.with_admin_token(pb::SetTenantSettingsRequest {
            tenant: "acme".into(),
            sso_enforced: Some(false),
            usernames: None,
        }))
        .await
        .unwrap();
    assert!(
        check(&stack, &token, pb::SessionAuth::Password, "")
            .await
            .allowed
    );
}

#[tokio::test]
async fn the_rate_limit_answers_429_with_retry_after_when_enabled() {
    let stack = Stack::start_with(|config| {
        // One request per 100 s after a burst of 3: no refill during the test, however slow.
        config.rate_limit = Some(RateLimit::new(0.01, Some(3)).unwrap());
    })
    .await;
    let acme = stack.tenant("acme").await;
    let globex = stack.tenant("globex").await;
    for _ in 0..3 {
        acme.get("/Users").await.expect(200);
    }
    let limited = acme.get("/Users").await;
    let retry_after: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((90..=100).contains(&retry_after), "{retry_after}");
    let body = limited.expect_error(429, None);
    assert!(
        body["detail"].as_str().unwrap().contains("retry after"),
        "{body}"
    );
    // Other tokens have their own budget.
    globex.get("/Users").await.expect(200);
    let metrics = reply_text(&stack).await;
    assert!(
        metrics.contains("roster_scim_rate_limited_total{tenant=\"acme\"} 1"),
        "{metrics}"
    );
}

async fn reply_text(stack: &Stack) -> String {
    stack.metrics().await
}

#[tokio::test]
async fn without_the_rate_limit_a_burst_never_sees_429() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let requests = (0..200).map(|_| {
        let request = acme.request(reqwest::Method::GET, "/Users?count=1");
        async move { reply(request.send().await.unwrap()).await.status.as_u16() }
    });
    let statuses = futures::future::join_all(requests).await;
    assert!(statuses.iter().all(|status| *status == 200), "{statuses:?}");
}
