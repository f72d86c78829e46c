//! Identities as IdPs send them: a `derive` tenant takes Okta's email userNames, Entra's UPNs,
//! Microsoft's `Test_User_<guid>` and Unicode names as sent, and gives each user a valid, unique
//! platform handle (SCIM extension, filter, gRPC); a `strict` tenant behaves as before.

use roster_proto::v1 as pb;
use serde_json::{Value, json};
use tonic::Code;

use crate::support::{Stack, Tenant, authorized, patch_op};

const ROSTER_USER: &str = "urn:ietf:params:scim:schemas:extension:roster:2.0:User";

fn handle(user: &Value) -> &str {
    user[ROSTER_USER]["handle"].as_str().unwrap()
}

/// A valid Hugging Face username.
fn assert_valid_handle(handle: &str) {
    let length = handle.chars().count();
    assert!((2..=42).contains(&length), "{handle}");
    assert!(
        handle
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-'),
        "{handle}"
    );
    assert!(!handle.starts_with('-') && !handle.ends_with('-') && !handle.contains("--"));
    assert!(!handle.chars().all(|c| c.is_ascii_digit()), "{handle}");
}

async fn create(tenant: &Tenant, user_name: &str) -> Value {
    let body = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": user_name,
        "active": true,
    });
    tenant.post("/Users", &body).await.expect(201)
}

#[tokio::test]
async fn a_deriving_tenant_keeps_user_names_as_sent_and_derives_unique_handles() {
    let stack = Stack::start().await;
    let acme = stack.tenant_with_usernames("acme", "derive").await;
    let sent = [
        ("alice.smith@acme.com", "alice-smith"),
        ("alice@contoso.com", "alice"),
        (
            "Test_User_0f6c4a2e-1b7d-4c8e-9f00-123456789abc",
            "Test-User-0f6c4a2e-1b7d-4c8e-9f00-12345678",
        ),
        ("Zoë Ørsted", "Zoe-Orsted"),
        ("张伟", "user"),
        // Collisions: the next free number.
        ("alice@fabrikam.com", "alice-2"),
        ("Alice.Smith@fabrikam.com", "Alice-Smith-2"),
    ];
    let mut ids = Vec::new();
    for (user_name, expected) in sent {
        let created = create(&acme, user_name).await;
        assert_eq!(created["userName"], user_name, "userName returned as sent");
        assert_eq!(handle(&created), expected, "{user_name}");
        assert_valid_handle(handle(&created));
        assert!(
            created["schemas"]
                .as_array()
                .unwrap()
                .contains(&json!(ROSTER_USER))
        );
        ids.push(created["id"].as_str().unwrap().to_owned());
        // Read back, and found by userName and by handle.
        let read = acme
            .get(&format!("/Users/{}", ids.last().unwrap()))
            .await
            .expect(200);
        assert_eq!(read["userName"], user_name);
        assert_eq!(handle(&read), expected);
        let by_name = acme.find(&format!("userName eq \"{user_name}\"")).await;
        assert_eq!(by_name.len(), 1, "{user_name}");
        let by_handle = acme
            .find(&format!(
                "{ROSTER_USER}:handle eq \"{}\"",
                expected.to_uppercase()
            ))
            .await;
        assert_eq!(by_handle.len(), 1, "{expected}");
        assert_eq!(by_handle[0]["id"], json!(ids.last().unwrap()));
    }

    // A handle sent by the client is ignored (read-only).
    let body = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ROSTER_USER],
        "userName": "bob@acme.com",
        ROSTER_USER: {"handle": "admin"},
    });
    let bob = acme.post("/Users", &body).await.expect(201);
    assert_eq!(handle(&bob), "bob");
    let bob_id = bob["id"].as_str().unwrap().to_owned();

    // PUT with a new userName derives again; a PUT keeping it keeps the handle.
    let replaced = acme
        .put(
            &format!("/Users/{bob_id}"),
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "userName": "robert.jones@acme.com", "displayName": "Bob"}),
        )
        .await
        .expect(200);
    assert_eq!(replaced["userName"], "robert.jones@acme.com");
    assert_eq!(handle(&replaced), "robert-jones");
    let kept = acme
        .put(
            &format!("/Users/{bob_id}"),
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "userName": "robert.jones@acme.com", "displayName": "Robert"}),
        )
        .await
        .expect(200);
    assert_eq!(handle(&kept), "robert-jones");

    // PATCH of userName, as Entra sends it (path-less value and a path).
    let patched = acme
        .patch(
            &format!("/Users/{bob_id}"),
            &patch_op(
                json!([{"op": "Replace", "path": "userName", "value": "alice@northwind.com"}]),
            ),
        )
        .await
        .expect(200);
    assert_eq!(patched["userName"], "alice@northwind.com");
    assert_eq!(handle(&patched), "alice-3");

    // Bulk creates derive too.
    let bulk = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "Operations": [
            {"method": "POST", "path": "/Users", "bulkId": "a",
             "data": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "carol@acme.com"}},
            {"method": "POST", "path": "/Users", "bulkId": "b",
             "data": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "carol@contoso.com"}},
        ],
    });
    let answered = acme.post("/Bulk", &bulk).await.expect(200);
    let mut handles = Vec::new();
    for operation in answered["Operations"].as_array().unwrap() {
        assert_eq!(operation["status"], "201", "{operation}");
        let location = operation["location"].as_str().unwrap();
        let id = location.rsplit('/').next().unwrap();
        let user = acme.get(&format!("/Users/{id}")).await.expect(200);
        handles.push(handle(&user).to_owned());
    }
    handles.sort();
    assert_eq!(handles, ["carol", "carol-2"]);

    // gRPC: the handle on User, and a user found by handle (and by handle in user_name).
    let mut directory = stack.directory().await;
    let token = stack.admin_token();
    for by in [
        pb::user_ref::By::Handle("ALICE-3".into()),
        pb::user_ref::By::UserName("alice-3".into()),
        pb::user_ref::By::UserName("alice@northwind.com".into()),
    ] {
        let user = directory
            .get_user(authorized(
                &token,
                pb::GetUserRequest {
                    tenant: "acme".into(),
                    user: Some(pb::UserRef { by: Some(by) }),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(user.id, bob_id);
        assert_eq!(user.handle, "alice-3");
        assert_eq!(user.user_name, "alice@northwind.com");
    }
    // The old handle is free: nobody is found by it.
    let missing = directory
        .get_user(authorized(
            &token,
            pb::GetUserRequest {
                tenant: "acme".into(),
                user: Some(pb::UserRef {
                    by: Some(pb::user_ref::By::Handle("robert-jones".into())),
                }),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
}

#[tokio::test]
async fn a_strict_tenant_refuses_what_is_not_a_handle_and_says_how_to_derive() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let body = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "alice.smith@acme.com",
    });
    let error = acme
        .post("/Users", &body)
        .await
        .expect_error(400, Some("invalidValue"));
    let detail = error["detail"].as_str().unwrap();
    assert!(detail.contains("only letters, digits and '-'"), "{detail}");
    assert!(detail.contains("--usernames derive"), "{detail}");
    // A valid handle works as before, and is its own handle.
    let created = create(&acme, "alice-smith").await;
    assert_eq!(handle(&created), "alice-smith");
}

#[tokio::test]
async fn the_policy_switches_to_derive_keeping_handles_and_back_only_without_derived_ones() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    create(&acme, "alice").await;
    let mut admin = stack.admin().await;
    let set = |usernames: &str| {
        stack.with_admin_token(pb::SetTenantSettingsRequest {
            tenant: "acme".into(),
            sso_enforced: None,
            usernames: Some(usernames.into()),
        })
    };
    let info = admin
        .set_tenant_settings(set("derive"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.usernames, "derive");
    let alice = acme.find("userName eq \"alice\"").await;
    assert_eq!(handle(&alice[0]), "alice");
    let bob = create(&acme, "bob@acme.com").await;
    let refused = admin.set_tenant_settings(set("strict")).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(
        refused.message().contains("1 user(s)"),
        "{}",
        refused.message()
    );
    let unknown = admin.set_tenant_settings(set("loose")).await.unwrap_err();
    assert_eq!(unknown.code(), Code::InvalidArgument);
    // The userName becomes the handle: strict is allowed again.
    let id = bob["id"].as_str().unwrap();
    acme.patch(
        &format!("/Users/{id}"),
        &patch_op(json!([{"op": "replace", "path": "userName", "value": "bob"}])),
    )
    .await
    .expect(200);
    let info = admin
        .set_tenant_settings(set("strict"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (info.usernames.as_str(), info.derived_handles),
        ("strict", 0)
    );
}

#[tokio::test]
async fn jit_users_of_a_deriving_tenant_get_free_handles() {
    let stack = Stack::start().await;
    let acme = stack.tenant_with_usernames("acme", "derive").await;
    // A SCIM user holds the handle "alice" already.
    let scim = create(&acme, "alice@contoso.com").await;
    assert_eq!(handle(&scim), "alice");
    let response = stack
        .directory()
        .await
        .jit_provision(authorized(
            &stack.admin_token(),
            pb::JitProvisionRequest {
                tenant: "acme".into(),
                subject: "00u1sso".into(),
                email: "alice@fabrikam.com".into(),
                given_name: "Alice".into(),
                family_name: "Doe".into(),
                claims_json: "{}".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let user = response.user.unwrap();
    assert_eq!(user.handle, "alice-2");
    assert_valid_handle(&user.handle);
}

#[tokio::test]
async fn a_staged_deriving_tenant_derives_on_its_branch_and_the_diff_shows_handles() {
    let stack = Stack::start().await;
    let acme = stack.tenant_with_usernames("acme", "derive").await;
    let alice = create(&acme, "alice@contoso.com").await;
    let alice_id = alice["id"].as_str().unwrap().to_owned();
    let mut admin = stack.admin().await;
    admin
        .stage_tenant(stack.with_admin_token(pb::StageTenantRequest {
            tenant: "acme".into(),
        }))
        .await
        .unwrap();
    // The branch follows the tenant's policy: an email is taken, and handles are derived.
    let bob = create(&acme, "bob@contoso.com").await;
    assert_eq!(handle(&bob), "bob");
    acme.patch(
        &format!("/Users/{alice_id}"),
        &patch_op(json!([{"op": "replace", "path": "userName", "value": "alice.doe@contoso.com"}])),
    )
    .await
    .expect(200);
    let diff = admin
        .get_staging_diff(stack.with_admin_token(pb::GetStagingDiffRequest {
            tenant: "acme".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    let changed = diff
        .users
        .iter()
        .find(|user| user.user_id == alice_id)
        .unwrap();
    assert_eq!(changed.handle, "alice-doe");
    assert_eq!(changed.previous_handle, "alice");
    assert_eq!(changed.previous_user_name, "alice@contoso.com");
    let created = diff
        .users
        .iter()
        .find(|user| user.user_name == "bob@contoso.com")
        .unwrap();
    assert_eq!(created.handle, "bob");
    // Promoted, the live tenant holds the branch's handles.
    admin
        .promote_tenant(stack.with_admin_token(pb::PromoteTenantRequest {
            tenant: "acme".into(),
        }))
        .await
        .unwrap();
    let live = acme.get(&format!("/Users/{alice_id}")).await.expect(200);
    assert_eq!(handle(&live), "alice-doe");
    let found = acme.find(&format!("{ROSTER_USER}:handle eq \"bob\"")).await;
    assert_eq!(found.len(), 1);
}
