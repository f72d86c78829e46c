//! What real IdPs send (reference/scim-interop.md §2.3, §2.4, §3), replayed request by request.
//! Each test is named after the client behaviour it covers.

use serde_json::json;

use crate::support::{Stack, Tenant, patch_op, urlencode};

/// Okta's create: a `userName eq` lookup with its constant paging that finds nobody, then the
/// POST of its whole user (password included). Returns the body sent and the created user.
async fn okta_lookup_then_create(
    tenant: &Tenant,
    user_name: &str,
    (given, family): (&str, &str),
    email: &str,
) -> (serde_json::Value, serde_json::Value) {
    let filter = urlencode(&format!(r#"userName eq "{user_name}""#));
    let list = tenant
        .get(&format!("/Users?filter={filter}&startIndex=1&count=100"))
        .await
        .expect(200);
    assert_eq!(list["totalResults"], 0);
    let body = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": user_name,
        "name": {"givenName": given, "familyName": family},
        "emails": [{"primary": true, "value": email, "type": "work"}],
        "displayName": format!("{given} {family}"), "locale": "en-US",
        "externalId": "00ujl29u0le5T6Aj10h7",
        "groups": [], "password": "1mz050nq", "active": true
    });
    let created = tenant.post("/Users", &body).await.expect(201);
    (body, created)
}

#[tokio::test]
async fn entra_test_connection_with_a_random_external_id_gets_an_empty_list() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let filter = urlencode(r#"externalId eq "5a7bd1c6-5fbe-4a43-8d1d-4e2f5c3b3c11""#);
    let list = acme
        .get(&format!("/Users?filter={filter}"))
        .await
        .expect(200);
    assert_eq!(
        list["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:ListResponse"
    );
    assert_eq!(list["totalResults"], 0);
    assert_eq!(list["Resources"], json!([]));
    assert_eq!(list["startIndex"], 1);
    assert!(list["itemsPerPage"].is_u64());
}

#[tokio::test]
async fn entra_provisioning_cycle_lookup_create_patch_disable_delete() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let object_id = "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef";
    assert!(
        acme.find(&format!(r#"externalId eq "{object_id}""#))
            .await
            .is_empty()
    );
    let created = acme
        .post(
            "/Users",
            &json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
                            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
                "externalId": object_id,
                "userName": "TestUser1",
                "active": true,
                "emails": [{"primary": true, "type": "work", "value": "Test_User_1@testuser.com"}],
                "meta": {"resourceType": "User"},
                "name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
                "roles": []
            }),
        )
        .await
        .expect(201);
    let id = created["id"].as_str().unwrap().to_owned();
    let found = acme.find(&format!(r#"externalId eq "{object_id}""#)).await;
    assert_eq!(found[0]["id"], id.as_str());
    let found = acme.find(r#"userName eq "TestUser1""#).await;
    assert_eq!(found.len(), 1);
    let path = format!("/Users/{id}");
    acme.get(&path).await.expect(200);
    let updated = acme
        .patch(
            &path,
            &patch_op(json!([
                {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "updatedEmail@microsoft.com"},
                {"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"}
            ])),
        )
        .await
        .expect(200);
    assert_eq!(updated["emails"][0]["value"], "updatedEmail@microsoft.com");
    assert_eq!(updated["name"]["familyName"], "updatedFamilyName");
    let renamed = acme
        .patch(
            &path,
            &patch_op(json!([{"op": "Replace", "path": "userName", "value": "TestUser1b"}])),
        )
        .await
        .expect(200);
    assert_eq!(renamed["userName"], "TestUser1b");
    let disabled = acme
        .patch(
            &path,
            &patch_op(json!([{"op": "Replace", "path": "active", "value": false}])),
        )
        .await
        .expect(200);
    assert_eq!(disabled["active"], false);
    assert_eq!(acme.delete(&path).await.status, 204);
    acme.get(&path).await.expect_error(404, None);
}

#[tokio::test]
async fn entra_default_mode_disables_with_the_string_false() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let id = acme.create_user("alice").await;
    let disabled = acme
        .patch(
            &format!("/Users/{id}"),
            &patch_op(json!([{"op": "Replace", "path": "active", "value": "False"}])),
        )
        .await
        .expect(200);
    assert_eq!(disabled["active"], false);
    let enabled = acme
        .patch(
            &format!("/Users/{id}"),
            &patch_op(json!([{"op": "Replace", "path": "active", "value": "True"}])),
        )
        .await
        .expect(200);
    assert_eq!(enabled["active"], true);
}

#[tokio::test]
async fn entra_post_with_active_as_the_string_true_creates_an_active_user() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let created = acme
        .post("/Users", &json!({"userName": "alice", "active": "True"}))
        .await
        .expect(201);
    assert_eq!(created["active"], true);
}

#[tokio::test]
async fn entra_flag_mode_replaces_many_attributes_in_one_pathless_op_with_dotted_keys() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let id = acme.create_user("alice").await;
    let updated = acme
        .patch(
            &format!("/Users/{id}"),
            &patch_op(json!([{"op": "replace", "value": {
                "displayName": "Bjfe",
                "name.givenName": "Kkom",
                "name.familyName": "Unua",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "Aklq"
            }}])),
        )
        .await
        .expect(200);
    assert_eq!(updated["displayName"], "Bjfe");
    assert_eq!(
        updated["name"],
        json!({"givenName": "Kkom", "familyName": "Unua"})
    );
    assert_eq!(
        updated["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["employeeNumber"],
        "Aklq"
    );
}

#[tokio::test]
async fn entra_default_mode_sends_one_replace_per_path_including_urn_paths() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let id = acme.create_user("alice").await;
    let updated = acme
        .patch(
            &format!("/Users/{id}"),
            &patch_op(json!([
                {"op": "Replace", "path": "displayName", "value": "Alice A"},
                {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "alice@work.io"},
                {"op": "Replace", "path": "name.givenName", "value": "Alice"},
                {"op": "Replace", "path": "externalId", "value": "ext-9"},
                {"op": "Replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber", "value": "42"},
                {"op": "Add", "path": "nickName", "value": "Babs"},
                {"op": "Add", "path": "emails[type eq \"other\"].Value", "value": "alice@other.io"},
                {"op": "Replace", "path": "addresses[type eq \"work\"].postalCode", "value": "75001"}
            ])),
        )
        .await
        .expect(200);
    assert_eq!(updated["externalId"], "ext-9");
    assert_eq!(
        updated["emails"][0],
        json!({"type": "work", "value": "alice@work.io"})
    );
    assert_eq!(
        updated["emails"][1],
        json!({"type": "other", "value": "alice@other.io"})
    );
    assert_eq!(
        updated["addresses"][0],
        json!({"type": "work", "postalCode": "75001"})
    );
    assert_eq!(updated["nickName"], "Babs");
    assert_eq!(acme.find(r#"externalId eq "ext-9""#).await.len(), 1);
}

#[tokio::test]
async fn entra_manager_is_accepted_as_a_plain_string_and_returned_complex() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let manager = acme.create_user("boss").await;
    let id = acme.create_user("alice").await;
    let updated = acme
        .patch(
            &format!("/Users/{id}"),
            &patch_op(json!([{"op": "add",
                "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
                "value": manager}])),
        )
        .await
        .expect(200);
    assert_eq!(
        updated["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["manager"],
        json!({"value": manager})
    );
    let created = acme
        .post(
            "/Users",
            &json!({"userName": "carol",
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"manager": manager}}),
        )
        .await
        .expect(201);
    assert_eq!(
        created["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["manager"],
        json!({"value": manager})
    );
}

#[tokio::test]
async fn entra_nulls_and_malformed_schema_uris_are_tolerated() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let created = acme
        .post(
            "/Users",
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
                                "urn:ietf:params:scim:schemas:extension:enterprise:2.0User"],
                    "userName": "alice", "addresses": null, "manager": null}),
        )
        .await
        .expect(201);
    assert!(created.get("addresses").is_none());
}

#[tokio::test]
async fn okta_connection_test_lists_with_constant_paging() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    acme.create_user("first").await;
    acme.create_user("second").await;
    acme.create_user("third").await;
    let list = acme.get("/Users?startIndex=1&count=2").await.expect(200);
    assert_eq!(list["itemsPerPage"], 2);
    assert_eq!(list["totalResults"], 3);
    assert_eq!(list["startIndex"], 1);
    assert!(list["Resources"][0]["id"].is_string());
}

#[tokio::test]
async fn okta_create_lookup_by_user_name_then_post_with_password() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let (body, created) =
        okta_lookup_then_create(&acme, "test-user", ("Test", "User"), "test.user@okta.local").await;
    assert!(created.get("password").is_none());
    assert_eq!(created["name"]["familyName"], "User");
    let duplicate = acme
        .post("/Users", &body)
        .await
        .expect_error(409, Some("uniqueness"));
    assert!(duplicate["detail"].is_string());
    // Okta's spec test looks the user up with the name upper-cased.
    let upper = acme.find(r#"userName eq "TEST-USER""#).await;
    assert_eq!(upper.len(), 1);
}

#[tokio::test]
async fn okta_profile_update_puts_the_whole_object_back() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let created = acme
        .post(
            "/Users",
            &json!({"userName": "test-user", "name": {"givenName": "Test", "familyName": "User"}}),
        )
        .await
        .expect(201);
    let id = created["id"].as_str().unwrap();
    let mut fetched = acme.get(&format!("/Users/{id}")).await.expect(200);
    fetched["name"]["givenName"] = json!("Tess");
    fetched["groups"] = json!([]);
    let replaced = acme
        .put(&format!("/Users/{id}"), &fetched)
        .await
        .expect(200);
    assert_eq!(replaced["name"]["givenName"], "Tess");
    assert_eq!(replaced["id"], id);
}

#[tokio::test]
async fn okta_deactivates_with_a_pathless_lowercase_replace() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let id = acme.create_user("test-user").await;
    let deactivated = acme
        .patch(
            &format!("/Users/{id}"),
            &patch_op(json!([{"op": "replace", "value": {"active": false}}])),
        )
        .await
        .expect(200);
    assert_eq!(deactivated["active"], false);
}

#[tokio::test]
async fn okta_custom_apps_deactivate_with_put() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let id = acme.create_user("test-user").await;
    let deactivated = acme
        .put(
            &format!("/Users/{id}"),
            &json!({"userName": "test-user", "active": false}),
        )
        .await
        .expect(200);
    assert_eq!(deactivated["active"], false);
}

#[tokio::test]
async fn okta_spec_test_unknown_id_and_bad_credentials_get_error_bodies() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let missing = acme
        .get("/Users/010101010101010101010101010101")
        .await
        .expect_error(404, None);
    assert!(missing["detail"].is_string());
    let mut wrong = acme.clone();
    wrong.token = "rst_0000000000000000_00".into();
    wrong.get("/Users").await.expect_error(401, None);
}

#[tokio::test]
async fn microsoft_reference_tests_misspelled_attribute_is_kept_not_rejected() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let id = acme.create_user("alice").await;
    let replaced = acme
        .put(
            &format!("/Users/{id}"),
            &json!({"userName": "alice", "adreses": [{"x": 1}]}),
        )
        .await
        .expect(200);
    assert_eq!(replaced["adreses"], json!([{"x": 1}]));
}

#[tokio::test]
async fn microsoft_reference_tests_filter_with_case_varied_attribute_names() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    acme.post(
        "/Users",
        &json!({"userName": "ohara", "name": {"familyName": "OHara"},
                "emails": [{"value": "o@contoso.com", "type": "work"}]}),
    )
    .await
    .expect(201);
    let found = acme
        .find(r#"name.FamilyName eq "ohara" and (emails.Value co "contoso" or emails.Value co "fabrikam")"#)
        .await;
    assert_eq!(found.len(), 1);
    assert_eq!(acme.find(r#"userName sw "O""#).await.len(), 1);
    assert_eq!(
        acme.find(r#"meta.Created gt "2020-01-01T00:00:00Z""#)
            .await
            .len(),
        1
    );
}

const ROSTER_USER: &str = "urn:ietf:params:scim:schemas:extension:roster:2.0:User";

#[tokio::test]
async fn okta_default_mapping_sends_the_email_as_user_name_to_a_deriving_tenant() {
    let stack = Stack::start().await;
    let acme = stack.tenant_with_usernames("acme", "derive").await;
    // Okta's default username format is the user's email (its login).
    let (body, created) = okta_lookup_then_create(
        &acme,
        "alice.smith@acme.com",
        ("Alice", "Smith"),
        "alice.smith@acme.com",
    )
    .await;
    assert_eq!(created["userName"], "alice.smith@acme.com");
    assert_eq!(created[ROSTER_USER]["handle"], "alice-smith");
    // Okta looks the user up again with the name as it knows it, in any case.
    let found = acme.find(r#"userName eq "Alice.Smith@ACME.com""#).await;
    assert_eq!(found.len(), 1);
    // Profile push: the whole object back with PUT; the handle stays.
    let id = created["id"].as_str().unwrap();
    let mut pushed = body.clone();
    pushed["name"]["familyName"] = json!("Smith-Jones");
    let replaced = acme.put(&format!("/Users/{id}"), &pushed).await.expect(200);
    assert_eq!(replaced[ROSTER_USER]["handle"], "alice-smith");
    // Deactivation: Okta's path-less lowercase replace.
    let deactivated = acme
        .patch(
            &format!("/Users/{id}"),
            &patch_op(json!([{"op": "replace", "value": {"active": false}}])),
        )
        .await
        .expect(200);
    assert_eq!(deactivated["active"], false);
    assert_eq!(deactivated[ROSTER_USER]["handle"], "alice-smith");
}

#[tokio::test]
async fn entra_default_mapping_sends_the_upn_as_user_name_to_a_deriving_tenant() {
    let stack = Stack::start().await;
    let acme = stack.tenant_with_usernames("acme", "derive").await;
    let object_id = "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef";
    assert!(
        acme.find(&format!(r#"externalId eq "{object_id}""#))
            .await
            .is_empty()
    );
    // Entra maps userPrincipalName to userName by default.
    let created = acme
        .post(
            "/Users",
            &json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
                            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
                "externalId": object_id,
                "userName": "alice@contoso.com",
                "active": "True",
                "emails": [{"primary": true, "type": "work", "value": "alice@contoso.com"}],
                "meta": {"resourceType": "User"},
                "name": {"formatted": "Alice Doe", "familyName": "Doe", "givenName": "Alice"},
                "roles": []
            }),
        )
        .await
        .expect(201);
    assert_eq!(created["userName"], "alice@contoso.com");
    assert_eq!(created[ROSTER_USER]["handle"], "alice");
    let id = created["id"].as_str().unwrap().to_owned();
    let path = format!("/Users/{id}");
    // A second person from another domain with the same local part.
    let other = acme
        .post(
            "/Users",
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "userName": "alice@fabrikam.com", "active": true}),
        )
        .await
        .expect(201);
    assert_eq!(other[ROSTER_USER]["handle"], "alice-2");
    // Entra's default mode: one Replace per path, URN paths included; a UPN change renames.
    let updated = acme
        .patch(
            &path,
            &patch_op(json!([
                {"op": "Replace", "path": "userName", "value": "alice.doe@contoso.com"},
                {"op": "Replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": "Research"},
                {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "alice.doe@contoso.com"}
            ])),
        )
        .await
        .expect(200);
    assert_eq!(updated["userName"], "alice.doe@contoso.com");
    assert_eq!(updated[ROSTER_USER]["handle"], "alice-doe");
    // Entra's flag mode: a path-less replace with dotted keys, and "False" as a string.
    let disabled = acme
        .patch(
            &path,
            &patch_op(json!([{"op": "Replace", "value": {
                "active": "False",
                "name.givenName": "Alicia"
            }}])),
        )
        .await
        .expect(200);
    assert_eq!(disabled["active"], false);
    assert_eq!(disabled["name"]["givenName"], "Alicia");
    assert_eq!(disabled[ROSTER_USER]["handle"], "alice-doe");
    let by_handle = acme
        .find(&format!(r#"{ROSTER_USER}:handle eq "alice-doe""#))
        .await;
    assert_eq!(by_handle.len(), 1);
    assert_eq!(acme.delete(&path).await.status, 204);
}
