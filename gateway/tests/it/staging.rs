//! Staging: an IdP syncs into a staged tenant through its usual SCIM URL and token; SCIM reads
//! show the staged directory while live access stays as it was; the diff says what promotion
//! changes; promotion applies it in one step; discard leaves the live tenant untouched.

use roster_proto::v1 as pb;
use serde_json::json;
use tonic::Code;

use crate::support::{Stack, Tenant, authorized, patch_op};

/// Live access of `user` in acme, or the gRPC code when there is none.
async fn live_access(stack: &Stack, acme: &Tenant, user: &str) -> Result<pb::UserAccess, Code> {
    stack
        .directory()
        .await
        .get_user_access(authorized(
            &acme.token,
            pb::GetUserAccessRequest {
                tenant: "acme".into(),
                user: Some(pb::UserRef {
                    by: Some(pb::user_ref::By::UserName(user.into())),
                }),
                as_of: None,
            },
        ))
        .await
        .map(tonic::Response::into_inner)
        .map_err(|status| status.code())
}

async fn may_administer(stack: &Stack, acme: &Tenant, user: &str) -> bool {
    stack
        .directory()
        .await
        .check_access(authorized(
            &acme.token,
            pb::CheckAccessRequest {
                tenant: "acme".into(),
                user: Some(pb::UserRef {
                    by: Some(pb::user_ref::By::UserName(user.into())),
                }),
                action: pb::Action::Administer.into(),
                resource: Some(pb::Resource {
                    namespace: "acme".into(),
                    resource_group: String::new(),
                }),
                ..Default::default()
            },
        ))
        .await
        .map(|response| response.into_inner().allowed)
        .unwrap_or(false)
}

async fn group(tenant: &Tenant, name: &str, members: &[&str]) -> String {
    let members: Vec<serde_json::Value> = members.iter().map(|id| json!({"value": id})).collect();
    tenant
        .post("/Groups", &json!({"displayName": name, "members": members}))
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// acme: alice in Engineering (mapped to write; linked to resource group "models" as admin),
/// bob in no group (default read), an empty Admins group mapped to admin.
async fn live_world(stack: &Stack) -> (Tenant, String, String, String, String) {
    let acme = stack.tenant("acme").await;
    let alice = acme.create_user("alice").await;
    let bob = acme.create_user("bob").await;
    let engineering = group(&acme, "Engineering", &[&alice]).await;
    let admins = group(&acme, "Admins", &[]).await;
    let mut admin = stack.admin().await;
    for (group, role) in [
        ("Engineering", pb::Role::Write),
        ("Admins", pb::Role::Admin),
    ] {
        admin
            .set_role_mapping(stack.with_admin_token(pb::SetRoleMappingRequest {
                tenant: "acme".into(),
                group: group.into(),
                role: role.into(),
            }))
            .await
            .unwrap();
    }
    admin
        .create_resource_group(stack.with_admin_token(pb::CreateResourceGroupRequest {
            tenant: "acme".into(),
            name: "models".into(),
        }))
        .await
        .unwrap();
    admin
        .link_resource_group(stack.with_admin_token(pb::LinkResourceGroupRequest {
            tenant: "acme".into(),
            resource_group: "models".into(),
            group: "Engineering".into(),
            role: pb::Role::Admin.into(),
        }))
        .await
        .unwrap();
    (acme, alice, bob, engineering, admins)
}

async fn stage(stack: &Stack) -> pb::StageTenantResponse {
    stack
        .admin()
        .await
        .stage_tenant(stack.with_admin_token(pb::StageTenantRequest {
            tenant: "acme".into(),
        }))
        .await
        .unwrap()
        .into_inner()
}

fn cli(stack: &Stack, args: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_roster"));
    command
        .args(args)
        .arg("--grpc")
        .arg(stack.running.grpc_addr.to_string())
        .arg("--data-dir")
        .arg(stack.data_dir());
    command
}

fn role_of(staged: &Option<pb::StagedRole>) -> Option<(pb::Role, String)> {
    staged.as_ref().map(|staged| {
        let source = match staged
            .source
            .as_ref()
            .and_then(|source| source.kind.as_ref())
        {
            Some(pb::role_source::Kind::Group(group)) => group.display_name.clone(),
            Some(pb::role_source::Kind::DefaultRole(_)) => "default".to_owned(),
            Some(pb::role_source::Kind::Manual(_)) => "manual".to_owned(),
            Some(pb::role_source::Kind::Claim(claim)) => format!("claim {}", claim.claim),
            None => String::new(),
        };
        (pb::Role::try_from(staged.role).unwrap(), source)
    })
}

#[tokio::test]
async fn an_idp_sync_into_a_staged_tenant_is_seen_by_scim_only_until_promoted() {
    let stack = Stack::start().await;
    let (acme, alice, bob, engineering, admins) = live_world(&stack).await;

    let staged = stage(&stack).await;
    assert_eq!(staged.generation, 1);
    assert_eq!((staged.users_copied, staged.groups_copied), (2, 2));
    assert!(staged.tenant.unwrap().staged);
    let twice = stack
        .admin()
        .await
        .stage_tenant(stack.with_admin_token(pb::StageTenantRequest {
            tenant: "acme".into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(twice.code(), Code::FailedPrecondition);

    // The IdP syncs as usual: same URL, same token.
    let carol = acme.create_user("carol").await;
    let dave = acme.create_user("dave").await;
    let platform = group(&acme, "Platform", &[&dave]).await;
    acme.patch(
        &format!("/Groups/{admins}"),
        &patch_op(json!([{"op": "add", "path": "members", "value": [{"value": carol}]}])),
    )
    .await
    .expect(204);
    acme.patch(
        &format!("/Groups/{engineering}"),
        &patch_op(json!([{"op": "remove", "path": format!("members[value eq \"{alice}\"]")}])),
    )
    .await
    .expect(204);
    acme.patch(
        &format!("/Users/{bob}"),
        &patch_op(json!([{"op": "replace", "path": "active", "value": false}])),
    )
    .await
    .expect(200);

    // SCIM reads see the staged directory.
    assert_eq!(acme.find("userName eq \"carol\"").await.len(), 1);
    assert_eq!(acme.get("/Users").await.expect(200)["totalResults"], 4);
    let admins_group = acme.get(&format!("/Groups/{admins}")).await.expect(200);
    assert_eq!(admins_group["members"][0]["value"], carol.as_str());
    assert_eq!(
        acme.get(&format!("/Users/{bob}")).await.expect(200)["active"],
        false
    );
    acme.get(&format!("/Groups/{platform}")).await.expect(200);

    // Live access, CheckAccess and the admin view of the tenant are untouched.
    let live_alice = live_access(&stack, &acme, "alice").await.unwrap();
    assert_eq!(live_alice.org_role, i32::from(pb::Role::Write));
    assert_eq!(live_alice.resource_groups.len(), 1);
    assert!(live_access(&stack, &acme, "bob").await.unwrap().active);
    assert_eq!(
        live_access(&stack, &acme, "carol").await.unwrap_err(),
        Code::NotFound
    );
    assert!(!may_administer(&stack, &acme, "carol").await);
    let tenants = stack
        .admin()
        .await
        .list_tenants(stack.with_admin_token(pb::ListTenantsRequest {}))
        .await
        .unwrap()
        .into_inner()
        .tenants;
    assert_eq!(tenants.len(), 1, "the branch is not a tenant");
    assert!(tenants[0].staged);
    assert_eq!(tenants[0].users, 2);

    // The diff, per user, with the group behind each change.
    let diff = stack
        .admin()
        .await
        .get_staging_diff(stack.with_admin_token(pb::GetStagingDiffRequest {
            tenant: "acme".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    let user = |name: &str| {
        diff.users
            .iter()
            .find(|user| user.user_name == name)
            .unwrap_or_else(|| panic!("{name} is in the diff"))
            .clone()
    };
    use pb::user_staging_change::Change;
    assert_eq!(diff.users.len(), 4);
    let carol_change = user("carol");
    assert_eq!(carol_change.change, i32::from(Change::Created));
    let org = carol_change.org_role.unwrap();
    assert_eq!(role_of(&org.before), None);
    assert_eq!(
        role_of(&org.after),
        Some((pb::Role::Admin, "Admins".into()))
    );
    assert_eq!(carol_change.groups_joined[0].display_name, "Admins");
    assert_eq!(user("dave").change, i32::from(Change::Created));
    let alice_change = user("alice");
    assert_eq!(alice_change.change, i32::from(Change::None));
    let org = alice_change.org_role.unwrap();
    assert_eq!(
        role_of(&org.before),
        Some((pb::Role::Write, "Engineering".into()))
    );
    assert_eq!(
        role_of(&org.after),
        Some((pb::Role::Read, "default".into()))
    );
    assert_eq!(
        alice_change.resource_groups[0].resource_group_name,
        "models"
    );
    assert_eq!(
        role_of(&alice_change.resource_groups[0].before),
        Some((pb::Role::Admin, "Engineering".into()))
    );
    assert_eq!(role_of(&alice_change.resource_groups[0].after), None);
    assert_eq!(alice_change.groups_left[0].display_name, "Engineering");
    let bob_change = user("bob");
    assert_eq!(bob_change.change, i32::from(Change::Deactivated));
    assert_eq!(role_of(&bob_change.org_role.unwrap().after), None);

    // The same through the CLI: text, JSON, and the exit code.
    let output = cli(&stack, &["tenant", "diff", "acme"])
        .output()
        .await
        .unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(text.contains("+ carol  created"), "{text}");
    assert!(
        text.contains("org role: (none) -> admin (group Admins)"),
        "{text}"
    );
    assert!(
        text.contains("org role: write (group Engineering) -> read (default)"),
        "{text}"
    );
    assert!(
        text.contains("resource group models: admin (group Engineering) -> (none)"),
        "{text}"
    );
    assert!(text.contains("- bob  deactivated"), "{text}");
    let output = cli(
        &stack,
        &["tenant", "diff", "acme", "--format", "json", "--exit-code"],
    )
    .output()
    .await
    .unwrap();
    assert_eq!(output.status.code(), Some(2), "changes pending");
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["users"].as_array().unwrap().len(), 4);
    let carol_json = json["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|user| user["userName"] == "carol")
        .unwrap();
    assert_eq!(carol_json["change"], "created");
    assert_eq!(carol_json["orgRole"]["after"]["role"], "admin");
    assert_eq!(
        carol_json["orgRole"]["after"]["source"]["group"]["displayName"],
        "Admins"
    );

    // Promotion: live access follows the IdP now.
    let output = cli(&stack, &["tenant", "promote", "acme"])
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let carol_live = live_access(&stack, &acme, "carol").await.unwrap();
    assert_eq!(carol_live.org_role, i32::from(pb::Role::Admin));
    assert!(may_administer(&stack, &acme, "carol").await);
    let alice_live = live_access(&stack, &acme, "alice").await.unwrap();
    assert_eq!(alice_live.org_role, i32::from(pb::Role::Read));
    assert!(alice_live.resource_groups.is_empty());
    assert!(!live_access(&stack, &acme, "bob").await.unwrap().active);
    assert!(live_access(&stack, &acme, "dave").await.is_ok());
    // The ids the IdP got from the branch are the live ids.
    assert_eq!(
        acme.get(&format!("/Users/{carol}")).await.expect(200)["userName"],
        "carol"
    );
    acme.get(&format!("/Groups/{platform}")).await.expect(200);

    // Out of staging: SCIM writes are live at once; promoting again is refused.
    acme.create_user("erin").await;
    assert!(live_access(&stack, &acme, "erin").await.is_ok());
    let again = stack
        .admin()
        .await
        .promote_tenant(stack.with_admin_token(pb::PromoteTenantRequest {
            tenant: "acme".into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition);
    let output = cli(&stack, &["tenant", "diff", "acme"])
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "not staged is an error");
}

#[tokio::test]
async fn discard_leaves_the_live_tenant_untouched() {
    let stack = Stack::start().await;
    let (acme, alice, _bob, _engineering, _admins) = live_world(&stack).await;
    stage(&stack).await;
    let zed = acme.create_user("zed").await;
    acme.patch(
        &format!("/Users/{alice}"),
        &patch_op(json!([{"op": "replace", "path": "active", "value": false}])),
    )
    .await
    .expect(200);
    assert_eq!(acme.find("userName eq \"zed\"").await.len(), 1);

    let output = cli(&stack, &["tenant", "discard", "acme"])
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // SCIM reads show the live tenant again; nothing staged reached it.
    assert!(acme.find("userName eq \"zed\"").await.is_empty());
    acme.get(&format!("/Users/{zed}"))
        .await
        .expect_error(404, None);
    assert_eq!(
        acme.get(&format!("/Users/{alice}")).await.expect(200)["active"],
        true
    );
    assert_eq!(acme.get("/Users").await.expect(200)["totalResults"], 2);
    assert_eq!(
        live_access(&stack, &acme, "zed").await.unwrap_err(),
        Code::NotFound
    );
    assert_eq!(
        live_access(&stack, &acme, "alice").await.unwrap().org_role,
        i32::from(pb::Role::Write)
    );
    let discard_again = stack
        .admin()
        .await
        .discard_staging(stack.with_admin_token(pb::DiscardStagingRequest {
            tenant: "acme".into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(discard_again.code(), Code::FailedPrecondition);
    // The CSV export tells the branch's rows from the live tenant's by its `tenant` column.
    let output = cli(
        &stack,
        &[
            "audit",
            "export",
            "acme",
            "--format",
            "csv",
            "--type",
            "user.provisioned",
        ],
    )
    .output()
    .await
    .unwrap();
    assert!(output.status.success());
    let mut reader = csv::Reader::from_reader(output.stdout.as_slice());
    let tenant_column = reader
        .headers()
        .unwrap()
        .iter()
        .position(|name| name == "tenant")
        .unwrap();
    let rows: Vec<(String, String)> = reader
        .records()
        .map(|row| {
            let row = row.unwrap();
            (row[4].to_owned(), row[tenant_column].to_owned())
        })
        .collect();
    let tenants_of = |target: &str| {
        rows.iter()
            .filter(|(row_target, _)| row_target == target)
            .map(|(_, tenant)| tenant.as_str())
            .collect::<Vec<_>>()
    };
    // alice: provisioned live, then copied into the branch; zed: provisioned while staged.
    assert_eq!(tenants_of(&alice), ["acme", "acme~s1"], "{rows:?}");
    assert_eq!(tenants_of(&zed), ["acme~s1"], "{rows:?}");
    // A new staging starts from the live directory, not the discarded one.
    let staged = stage(&stack).await;
    assert_eq!(staged.generation, 2);
    assert!(acme.find("userName eq \"zed\"").await.is_empty());
    assert_eq!(
        acme.get(&format!("/Users/{alice}")).await.expect(200)["active"],
        true
    );
}

#[tokio::test]
async fn a_staged_tenant_survives_a_restart() {
    let stack = Stack::start().await;
    let (acme, _alice, _bob, _engineering, admins) = live_world(&stack).await;
    stage(&stack).await;
    let carol = acme.create_user("carol").await;
    acme.patch(
        &format!("/Groups/{admins}"),
        &patch_op(json!([{"op": "add", "path": "members", "value": [{"value": carol}]}])),
    )
    .await
    .expect(204);

    let stack = stack.restart().await;
    let acme = stack.tenant_at(&acme);
    assert_eq!(acme.find("userName eq \"carol\"").await.len(), 1);
    assert_eq!(
        live_access(&stack, &acme, "carol").await.unwrap_err(),
        Code::NotFound
    );
    let promoted = stack
        .admin()
        .await
        .promote_tenant(stack.with_admin_token(pb::PromoteTenantRequest {
            tenant: "acme".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(promoted.promoted.unwrap().users.len(), 1);
    assert!(!promoted.tenant.unwrap().staged);
    assert_eq!(
        live_access(&stack, &acme, "carol").await.unwrap().org_role,
        i32::from(pb::Role::Admin)
    );
}

/// The freeze is a promotion's lock. A branch found frozen (a promotion running, or one
/// interrupted after its freeze, as here) refuses a second promotion, whose failure could give
/// the branch back to the IdP under the first. `stage` gives an interrupted one's branch back.
#[tokio::test]
async fn a_promotion_never_runs_on_a_branch_another_promotion_froze() {
    use roster_engine::domain::{Actor, BranchState, Command, TenantName};
    use roster_engine::engine::CommandContext;

    let stack = Stack::start().await;
    let (acme, _alice, _bob, _engineering, _admins) = live_world(&stack).await;
    stage(&stack).await;
    acme.create_user("zed").await;
    let branch = TenantName::parse("acme").unwrap().staging_branch(1);
    let context = CommandContext {
        now: roster_engine::domain::Timestamp::from_micros(1),
        actor: Actor::system(),
        source: Default::default(),
        causation_id: "test-interrupted-promotion".into(),
    };
    stack
        .running
        .state
        .engine
        .execute(
            &branch,
            Command::SetBranchState(BranchState::Frozen),
            context,
        )
        .await
        .unwrap();
    let promote = || async {
        stack
            .admin()
            .await
            .promote_tenant(stack.with_admin_token(pb::PromoteTenantRequest {
                tenant: "acme".into(),
            }))
            .await
    };
    let refused = promote().await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(refused.message().contains("under way"), "{refused:?}");
    // The branch stays frozen: SCIM writes are refused, never acknowledged and lost.
    acme.post(
        "/Users",
        &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "late"}),
    )
    .await
    .expect_error(503, None);

    let resumed = stage(&stack).await;
    assert!(resumed.resumed, "{resumed:?}");
    acme.create_user("late").await;
    promote().await.unwrap();
    assert!(live_access(&stack, &acme, "zed").await.unwrap().active);
    assert!(live_access(&stack, &acme, "late").await.unwrap().active);
}

/// `diff --exit-code` gates on every change promotion would make, not only users' access.
#[tokio::test]
async fn diff_exit_code_counts_changes_that_move_no_users_access() {
    let stack = Stack::start().await;
    let (acme, _alice, _bob, _engineering, admins) = live_world(&stack).await;
    stage(&stack).await;
    let exit_code = || async {
        cli(&stack, &["tenant", "diff", "acme", "--exit-code"])
            .output()
            .await
            .unwrap()
            .status
            .code()
    };
    assert_eq!(exit_code().await, Some(0), "nothing staged yet");
    // Admins has no members: deleting it (with its Admin mapping) changes no user's access.
    acme.delete(&format!("/Groups/{admins}")).await.expect(204);
    let output = cli(&stack, &["tenant", "diff", "acme", "--format", "json"])
        .output()
        .await
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["users"], json!([]), "{json:#}");
    assert_eq!(
        json["groups"],
        json!([{"groupId": admins, "displayName": "Admins", "previousDisplayName": null,
                "change": "deleted", "roleMappingRemoved": "admin", "unlinkedResourceGroups": []}]),
        "{json:#}"
    );
    let text = cli(&stack, &["tenant", "diff", "acme"])
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("0 user(s) and 1 group(s)"), "{text}");
    assert!(
        text.contains("- group Admins  deleted\n    role mapping removed: admin"),
        "{text}"
    );
    assert_eq!(exit_code().await, Some(2));
}
