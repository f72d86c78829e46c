//! The admin gRPC service and the `roster` CLI over it.

use roster_engine::clock::ManualClock;
use tokio::process::Command;

use roster_proto::v1 as pb;
use tonic::Code;

use crate::support::Stack;

#[tokio::test]
async fn admin_calls_need_the_admin_token() {
    let stack = Stack::start().await;
    let mut admin = stack.admin().await;
    let missing = admin
        .list_tenants(pb::ListTenantsRequest {})
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::Unauthenticated);
    let acme = stack.tenant("acme").await;
    let mut request = tonic::Request::new(pb::ListTenantsRequest {});
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", acme.token).parse().unwrap(),
    );
    let tenant_token = admin.list_tenants(request).await.unwrap_err();
    assert_eq!(tenant_token.code(), Code::PermissionDenied);
    let tenants = admin
        .list_tenants(stack.with_admin_token(pb::ListTenantsRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(tenants.tenants.len(), 1);
    assert_eq!(tenants.tenants[0].name, "acme");
}

#[tokio::test]
async fn tenants_are_created_once_with_valid_names() {
    let stack = Stack::start().await;
    let mut admin = stack.admin().await;
    stack.tenant("acme").await;
    let again = admin
        .create_tenant(stack.with_admin_token(pb::CreateTenantRequest {
            name: "acme".into(),
            token_name: String::new(),
            usernames: String::new(),
        }))
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::AlreadyExists);
    for bad in ["Acme", "a b", "_system", "", "-x"] {
        let invalid = admin
            .create_tenant(stack.with_admin_token(pb::CreateTenantRequest {
                name: bad.into(),
                token_name: String::new(),
                usernames: String::new(),
            }))
            .await
            .unwrap_err();
        assert_eq!(invalid.code(), Code::InvalidArgument, "{bad:?}");
    }
}

#[tokio::test]
async fn tokens_are_issued_listed_without_secrets_and_revoked_at_once() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let mut admin = stack.admin().await;
    let issued = admin
        .issue_token(stack.with_admin_token(pb::IssueTokenRequest {
            tenant: "acme".into(),
            name: "okta".into(),
            expires_in: None,
            scope: Default::default(),
        }))
        .await
        .unwrap()
        .into_inner();
    let mut okta = acme.clone();
    okta.token = issued.secret.clone();
    okta.get("/Users").await.expect(200);
    let listed = admin
        .list_tokens(stack.with_admin_token(pb::ListTokensRequest {
            tenant: "acme".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.tokens.len(), 2);
    let printed = format!("{listed:?}");
    assert!(
        !printed.contains(issued.secret.rsplit('_').next().unwrap()),
        "no secrets listed"
    );
    let token_id = issued.token.unwrap().id;
    let revoked = admin
        .revoke_token(stack.with_admin_token(pb::RevokeTokenRequest {
            tenant: "acme".into(),
            token_id: token_id.clone(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(revoked.token.unwrap().revoked_at.is_some());
    okta.get("/Users").await.expect_error(401, None);
    acme.get("/Users").await.expect(200);
    let unknown = admin
        .revoke_token(stack.with_admin_token(pb::RevokeTokenRequest {
            tenant: "acme".into(),
            token_id: "nope".into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    let no_tenant = admin
        .issue_token(stack.with_admin_token(pb::IssueTokenRequest {
            tenant: "ghost".into(),
            name: String::new(),
            expires_in: None,
            scope: Default::default(),
        }))
        .await
        .unwrap_err();
    assert_eq!(no_tenant.code(), Code::NotFound);
}

#[tokio::test]
async fn the_admin_token_file_is_private_and_survives_restarts() {
    let stack = Stack::start().await;
    let token = stack.admin_token();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&stack.running.admin_token_file)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let stack = stack.restart().await;
    assert_eq!(
        stack.admin_token(),
        token,
        "the token is not replaced on restart"
    );
    stack.tenant("acme").await;
}

async fn roster(stack: &Stack, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_roster"))
        .args(args)
        .arg("--grpc")
        .arg(stack.running.grpc_addr.to_string())
        .arg("--data-dir")
        .arg(stack.data_dir())
        .env_remove("ROSTER_ADMIN_TOKEN")
        .output()
        .await
        .unwrap()
}

#[tokio::test]
async fn cli_creates_tenants_and_manages_tokens() {
    let stack = Stack::start().await;
    let output = roster(&stack, &["tenant", "create", "acme"]).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    let token = stdout.lines().last().unwrap().to_owned();
    let mut acme = stack.tenant("probe").await;
    acme.base = acme.base.replace("/probe", "/acme");
    acme.token = token;
    acme.get("/Users").await.expect(200);

    let output = roster(&stack, &["token", "issue", "acme", "--name", "entra"]).await;
    assert!(output.status.success());
    let listed = roster(&stack, &["token", "list", "acme"]).await;
    let listed = String::from_utf8(listed.stdout).unwrap();
    assert_eq!(listed.lines().count(), 2);
    let entra_id = listed
        .lines()
        .find(|line| line.contains("entra"))
        .unwrap()
        .split('\t')
        .next()
        .unwrap()
        .to_owned();
    let revoked = roster(&stack, &["token", "revoke", "acme", &entra_id]).await;
    assert!(
        String::from_utf8(revoked.stdout)
            .unwrap()
            .contains("revoked")
    );
    let failed = roster(&stack, &["tenant", "create", "acme"]).await;
    assert!(!failed.status.success());
    assert!(String::from_utf8_lossy(&failed.stderr).contains("already exists"));
}

#[tokio::test]
async fn rotation_keeps_the_old_token_for_the_overlap_only() {
    let clock = ManualClock::starting_now();
    let stack = Stack::start_with({
        let clock = clock.clone();
        move |config| config.clock = clock
    })
    .await;
    let acme = stack.tenant("acme").await;
    let mut admin = stack.admin().await;
    let old_id = acme.token.split('_').nth(1).unwrap().to_owned();
    let rotated = admin
        .rotate_token(stack.with_admin_token(pb::RotateTokenRequest {
            tenant: "acme".into(),
            token_id: old_id.clone(),
            name: String::new(),
            overlap: Some(prost_types::Duration {
                seconds: 1,
                nanos: 0,
            }),
            expires_in: Some(prost_types::Duration {
                seconds: 90 * 86_400,
                nanos: 0,
            }),
        }))
        .await
        .unwrap()
        .into_inner();
    let previous = rotated.previous.unwrap();
    assert!(previous.expires_at.is_some(), "the old token now expires");
    assert!(rotated.token.unwrap().expires_at.is_some());
    let mut new = acme.clone();
    new.token = rotated.secret.clone();
    // During the overlap both work; after it, the old one gets 401 at once.
    acme.get("/Users").await.expect(200);
    new.get("/Users").await.expect(200);
    clock.advance(1_100_000);
    acme.get("/Users").await.expect_error(401, None);
    new.get("/Users").await.expect(200);

    let unknown = admin
        .rotate_token(stack.with_admin_token(pb::RotateTokenRequest {
            tenant: "acme".into(),
            token_id: "nope".into(),
            name: String::new(),
            overlap: None,
            expires_in: None,
        }))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
}

#[tokio::test]
async fn tokens_expire_and_their_last_use_is_recorded() {
    let clock = ManualClock::starting_now();
    let stack = Stack::start_with({
        let clock = clock.clone();
        move |config| config.clock = clock
    })
    .await;
    let acme = stack.tenant("acme").await;
    let mut admin = stack.admin().await;
    let issued = admin
        .issue_token(stack.with_admin_token(pb::IssueTokenRequest {
            tenant: "acme".into(),
            name: "short".into(),
            expires_in: Some(prost_types::Duration {
                seconds: 1,
                nanos: 0,
            }),
            scope: Default::default(),
        }))
        .await
        .unwrap()
        .into_inner();
    let mut short = acme.clone();
    short.token = issued.secret.clone();
    short.get("/Users").await.expect(200);
    // One second later by roster's clock, without waiting for it.
    clock.advance(1_100_000);
    short.get("/Users").await.expect_error(401, None);

    let short_id = issued.token.unwrap().id;
    let mut last_used = None;
    for _ in 0..50 {
        let tokens = admin
            .list_tokens(stack.with_admin_token(pb::ListTokensRequest {
                tenant: "acme".into(),
            }))
            .await
            .unwrap()
            .into_inner()
            .tokens;
        last_used = tokens
            .iter()
            .find(|token| token.id == short_id)
            .and_then(|token| token.last_used_at);
        if last_used.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(last_used.is_some(), "the token's use was recorded");
    let zero = admin
        .issue_token(stack.with_admin_token(pb::IssueTokenRequest {
            tenant: "acme".into(),
            name: "bad".into(),
            expires_in: Some(prost_types::Duration {
                seconds: 0,
                nanos: 0,
            }),
            scope: Default::default(),
        }))
        .await
        .unwrap_err();
    assert_eq!(zero.code(), Code::InvalidArgument);
}

/// Admin tokens are tokens of `_system`: listed, issued, rotated and revoked like a tenant's, so a
/// leaked one can be revoked; the last valid one cannot be, so nobody is locked out by mistake.
#[tokio::test]
async fn a_leaked_admin_token_can_be_revoked() {
    let stack = Stack::start().await;
    let leaked = stack.admin_token();
    let mut admin = stack.admin().await;
    let listed = roster(&stack, &["token", "list", "_system"]).await;
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let first = admin
        .list_tokens(stack.with_admin_token(pb::ListTokensRequest {
            tenant: "_system".into(),
        }))
        .await
        .unwrap()
        .into_inner()
        .tokens;
    assert_eq!(first.len(), 1);
    let refused = admin
        .revoke_token(stack.with_admin_token(pb::RevokeTokenRequest {
            tenant: "_system".into(),
            token_id: first[0].id.clone(),
        }))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");

    let replacement = admin
        .issue_token(stack.with_admin_token(pb::IssueTokenRequest {
            tenant: "_system".into(),
            name: "ops".into(),
            expires_in: None,
            scope: Default::default(),
        }))
        .await
        .unwrap()
        .into_inner()
        .secret;
    fn with<T>(token: &str, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        request
    }
    admin
        .revoke_token(with(
            &replacement,
            pb::RevokeTokenRequest {
                tenant: "_system".into(),
                token_id: first[0].id.clone(),
            },
        ))
        .await
        .unwrap();
    let denied = admin
        .list_tenants(with(&leaked, pb::ListTenantsRequest {}))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    admin
        .list_tenants(with(&replacement, pb::ListTenantsRequest {}))
        .await
        .unwrap();
}

/// Two revocations racing for the last two admin tokens, each admin revoking their own: they are
/// decided one after the other in the system tenant's order, so exactly one passes and one valid
/// admin token is always left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_revocations_never_leave_roster_without_an_admin_token() {
    let stack = Stack::start().await;
    let admin = stack.admin().await;
    let id_of = |bearer: &str| bearer.split('_').nth(1).unwrap().to_owned();
    for round in 0..5 {
        // Two valid admin tokens: the one the stack uses and a second one.
        let second = admin
            .clone()
            .issue_token(stack.with_admin_token(pb::IssueTokenRequest {
                tenant: "_system".into(),
                name: format!("second-{round}"),
                expires_in: None,
                scope: Default::default(),
            }))
            .await
            .unwrap()
            .into_inner()
            .secret;
        let holders = [stack.admin_token().trim().to_owned(), second];
        let revoke_own = |bearer: String| {
            let mut client = admin.clone();
            let mut request = tonic::Request::new(pb::RevokeTokenRequest {
                tenant: "_system".into(),
                token_id: id_of(&bearer),
            });
            request
                .metadata_mut()
                .insert("authorization", format!("Bearer {bearer}").parse().unwrap());
            async move { client.revoke_token(request).await }
        };
        let (first, other) = tokio::join!(
            revoke_own(holders[0].clone()),
            revoke_own(holders[1].clone())
        );
        let outcomes = [first, other];
        let passed = outcomes.iter().filter(|outcome| outcome.is_ok()).count();
        assert_eq!(passed, 1, "round {round}: {outcomes:?}");
        let refused = outcomes
            .iter()
            .find_map(|outcome| outcome.as_ref().err())
            .unwrap();
        assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
        assert!(
            refused.message().contains("last valid admin token"),
            "{refused:?}"
        );

        // The token left is the one whose revocation was refused; the stack goes on with it.
        let left = if outcomes[0].is_ok() {
            &holders[1]
        } else {
            &holders[0]
        };
        std::fs::write(&stack.running.admin_token_file, left).unwrap();
        let after = admin
            .clone()
            .list_tokens(stack.with_admin_token(pb::ListTokensRequest {
                tenant: "_system".into(),
            }))
            .await
            .unwrap()
            .into_inner()
            .tokens;
        let still_valid: Vec<String> = after
            .iter()
            .filter(|token| token.revoked_at.is_none())
            .map(|token| token.id.clone())
            .collect();
        assert_eq!(still_valid, vec![id_of(left)], "round {round}");
    }
}

#[tokio::test]
async fn an_ssf_token_cannot_call_scim_or_grpc_and_its_successor_keeps_its_scope() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let mut admin = stack.admin().await;
    let issue = |tenant: &str, scope: &str| {
        stack.with_admin_token(pb::IssueTokenRequest {
            tenant: tenant.into(),
            name: "receiver".into(),
            expires_in: None,
            scope: scope.into(),
        })
    };
    let issued = admin
        .issue_token(issue("acme", "ssf"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(issued.token.as_ref().unwrap().scope, "ssf");
    let mut receiver = acme.clone();
    receiver.token = issued.secret.clone();
    let refused = receiver.get("/Users").await.expect_error(403, None);
    assert!(
        refused["detail"].as_str().unwrap().contains("ssf scope"),
        "{refused}"
    );
    let mut request = tonic::Request::new(pb::ListUsersRequest {
        tenant: "acme".into(),
        ..Default::default()
    });
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", issued.secret).parse().unwrap(),
    );
    let status = stack
        .directory()
        .await
        .list_users(request)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    // Unknown scopes and ssf admin tokens are refused.
    let status = admin.issue_token(issue("acme", "root")).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let status = admin
        .issue_token(issue("_system", "ssf"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    // A rotation's successor does what its predecessor did.
    let rotated = admin
        .rotate_token(stack.with_admin_token(pb::RotateTokenRequest {
            tenant: "acme".into(),
            token_id: issued.token.unwrap().id,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rotated.token.unwrap().scope, "ssf");
    // The SCIM token still works.
    acme.get("/Users").await.expect(200);
}
