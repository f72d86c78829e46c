//! Org roles and resource groups through the admin gRPC service and the CLI.

use roster_proto::v1 as pb;
use tonic::Code;

use crate::support::{Stack, Tenant};

async fn group(tenant: &Tenant, name: &str, members: &[&str]) -> String {
    let members: Vec<serde_json::Value> = members
        .iter()
        .map(|id| serde_json::json!({"value": id}))
        .collect();
    let created = tenant
        .post(
            "/Groups",
            &serde_json::json!({"displayName": name, "members": members}),
        )
        .await
        .expect(201);
    created["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn default_role_and_group_mappings_are_set_listed_and_removed() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let admins = group(&acme, "Admins", &[]).await;
    let mut admin = stack.admin().await;
    let mappings = admin
        .set_role_mapping(stack.with_admin_token(pb::SetRoleMappingRequest {
            tenant: "acme".into(),
            group: "admins".into(),
            role: pb::Role::Admin.into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(mappings.default_role, i32::from(pb::Role::Read));
    assert_eq!(mappings.mappings.len(), 1);
    assert_eq!(mappings.mappings[0].group_id, admins);
    assert_eq!(mappings.mappings[0].group_display_name, "Admins");
    let mappings = admin
        .set_default_role(stack.with_admin_token(pb::SetDefaultRoleRequest {
            tenant: "acme".into(),
            role: pb::Role::Contributor.into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(mappings.default_role, i32::from(pb::Role::Contributor));
    let mappings = admin
        .remove_role_mapping(stack.with_admin_token(pb::RemoveRoleMappingRequest {
            tenant: "acme".into(),
            group: admins.clone(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(mappings.mappings.is_empty());
    let missing = admin
        .set_role_mapping(stack.with_admin_token(pb::SetRoleMappingRequest {
            tenant: "acme".into(),
            group: "nobody".into(),
            role: pb::Role::Admin.into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let no_role = admin
        .set_default_role(stack.with_admin_token(pb::SetDefaultRoleRequest {
            tenant: "acme".into(),
            role: pb::Role::Unspecified.into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(no_role.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn linked_resource_groups_are_scim_managed_and_refuse_manual_changes() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let alice = acme.create_user("alice").await;
    group(&acme, "Engineering", &[&alice]).await;
    let mut admin = stack.admin().await;
    let created = admin
        .create_resource_group(stack.with_admin_token(pb::CreateResourceGroupRequest {
            tenant: "acme".into(),
            name: "models".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(!created.scim_managed);
    let linked = admin
        .link_resource_group(stack.with_admin_token(pb::LinkResourceGroupRequest {
            tenant: "acme".into(),
            resource_group: "models".into(),
            group: "Engineering".into(),
            role: pb::Role::Write.into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(linked.scim_managed);
    assert_eq!(linked.links[0].group_display_name, "Engineering");
    assert_eq!(linked.links[0].role, i32::from(pb::Role::Write));
    let refused = admin
        .set_resource_group_member(stack.with_admin_token(pb::SetResourceGroupMemberRequest {
            tenant: "acme".into(),
            resource_group: created.id.clone(),
            user: "alice".into(),
            role: pb::Role::Admin.into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert!(refused.message().contains("SCIM-managed"));
    let changed = admin
        .link_resource_group(stack.with_admin_token(pb::LinkResourceGroupRequest {
            tenant: "acme".into(),
            resource_group: "models".into(),
            group: "Engineering".into(),
            role: pb::Role::Read.into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(changed.links[0].role, i32::from(pb::Role::Read));
    let unlinked = admin
        .unlink_resource_group(stack.with_admin_token(pb::UnlinkResourceGroupRequest {
            tenant: "acme".into(),
            resource_group: "models".into(),
            group: "Engineering".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(!unlinked.scim_managed);
}

#[tokio::test]
async fn manual_members_block_linking_until_removed() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    acme.create_user("alice").await;
    group(&acme, "Engineering", &[]).await;
    let mut admin = stack.admin().await;
    admin
        .create_resource_group(stack.with_admin_token(pb::CreateResourceGroupRequest {
            tenant: "acme".into(),
            name: "datasets".into(),
        }))
        .await
        .unwrap();
    let with_member = admin
        .set_resource_group_member(stack.with_admin_token(pb::SetResourceGroupMemberRequest {
            tenant: "acme".into(),
            resource_group: "datasets".into(),
            user: "alice".into(),
            role: pb::Role::Contributor.into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(with_member.members[0].user_name, "alice");
    let blocked = admin
        .link_resource_group(stack.with_admin_token(pb::LinkResourceGroupRequest {
            tenant: "acme".into(),
            resource_group: "datasets".into(),
            group: "Engineering".into(),
            role: pb::Role::Read.into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(blocked.code(), Code::FailedPrecondition);
    admin
        .remove_resource_group_member(stack.with_admin_token(
            pb::RemoveResourceGroupMemberRequest {
                tenant: "acme".into(),
                resource_group: "datasets".into(),
                user: "alice".into(),
            },
        ))
        .await
        .unwrap();
    admin
        .link_resource_group(stack.with_admin_token(pb::LinkResourceGroupRequest {
            tenant: "acme".into(),
            resource_group: "datasets".into(),
            group: "Engineering".into(),
            role: pb::Role::Read.into(),
        }))
        .await
        .unwrap();
    let listed = admin
        .list_resource_groups(stack.with_admin_token(pb::ListResourceGroupsRequest {
            tenant: "acme".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.resource_groups.len(), 1);
    admin
        .delete_resource_group(stack.with_admin_token(pb::DeleteResourceGroupRequest {
            tenant: "acme".into(),
            resource_group: "datasets".into(),
        }))
        .await
        .unwrap();
    let listed = admin
        .list_resource_groups(stack.with_admin_token(pb::ListResourceGroupsRequest {
            tenant: "acme".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(listed.resource_groups.is_empty());
}

#[tokio::test]
async fn cli_manages_roles_and_resource_groups() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    group(&acme, "Admins", &[]).await;
    let run = |args: &[&str]| {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_roster"));
        command
            .args(args)
            .arg("--grpc")
            .arg(stack.running.grpc_addr.to_string())
            .arg("--data-dir")
            .arg(stack.data_dir());
        command
    };
    let output = run(&["role", "map", "acme", "Admins", "admin"])
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
    assert!(listed.contains("default\tread"), "{listed}");
    assert!(listed.contains("Admins\tadmin"), "{listed}");
    let output = run(&["rg", "create", "acme", "models"])
        .output()
        .await
        .unwrap();
    assert!(output.status.success());
    let output = run(&["rg", "link", "acme", "models", "Admins", "write"])
        .output()
        .await
        .unwrap();
    let shown = String::from_utf8(output.stdout).unwrap();
    assert!(
        shown.contains("scim-managed") && shown.contains("write"),
        "{shown}"
    );
    let output = run(&["role", "map", "acme", "Admins", "owner"])
        .output()
        .await
        .unwrap();
    assert!(!output.status.success(), "unknown roles are refused");
}
