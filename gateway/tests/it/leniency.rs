//! The leniencies real clients need (reference/scim-interop.md §2.4, §2.5, §3, §4, §6, with the
//! RFC points of §5.1, §5.5 and §5.6 they rely on) that `interop`, `users` and `groups` do not
//! already pin down: one test per behaviour, each replaying the request as the client sends it
//! and checking what the response and a later GET show.

use serde_json::json;

use crate::support::{Stack, Tenant, patch_op, urlencode};

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// A stack with tenant "acme" and one user per name; the stack must outlive the tenant's use.
async fn acme_with_users(names: &[&str]) -> (Stack, Tenant, Vec<String>) {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let mut ids = Vec::new();
    for name in names {
        ids.push(acme.create_user(name).await);
    }
    (stack, acme, ids)
}

// ---- Entra (§2.4) ----------------------------------------------------------------------------

#[tokio::test]
async fn entra_boolean_strings_in_a_pathless_replace_deactivate_the_user() {
    let (_stack, acme, ids) = acme_with_users(&["alice"]).await;
    let path = format!("/Users/{}", ids[0]);
    let off = acme
        .patch(
            &path,
            &patch_op(json!([{"op": "Replace", "value": {"active": "False"}}])),
        )
        .await
        .expect(200);
    assert_eq!(off["active"], false, "a boolean, not the string: {off}");
    assert_eq!(acme.get(&path).await.expect(200)["active"], false);
    assert_eq!(acme.find("active eq false").await.len(), 1);
    let on = acme
        .patch(
            &path,
            &patch_op(json!([{"op": "Replace", "value": {"active": "True"}}])),
        )
        .await
        .expect(200);
    assert_eq!(on["active"], true);
    assert_eq!(acme.get(&path).await.expect(200)["active"], true);
}

#[tokio::test]
async fn entra_add_through_a_filtered_path_that_matches_nothing_creates_the_element() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let created = acme
        .post(
            "/Users",
            &json!({"userName": "alice", "emails": [{"value": "alice@home.io", "type": "home"}]}),
        )
        .await
        .expect(201);
    let path = format!("/Users/{}", created["id"].as_str().unwrap());
    let patched = acme
        .patch(
            &path,
            &patch_op(json!([{"op": "add", "path": "emails[type eq \"work\"].value", "value": "alice@work.io"}])),
        )
        .await
        .expect(200);
    assert_eq!(
        patched["emails"],
        json!([{"value": "alice@home.io", "type": "home"}, {"type": "work", "value": "alice@work.io"}])
    );
    // Once it exists, the same add targets it: no second "work" element.
    acme.patch(
        &path,
        &patch_op(json!([{"op": "add", "path": "emails[type eq \"work\"].value", "value": "alice@corp.io"}])),
    )
    .await
    .expect(200);
    let fetched = acme.get(&path).await.expect(200);
    assert_eq!(
        fetched["emails"],
        json!([{"value": "alice@home.io", "type": "home"}, {"type": "work", "value": "alice@corp.io"}])
    );
    assert_eq!(
        acme.find(r#"emails[type eq "work"].value eq "alice@corp.io""#)
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn entra_phone_number_paths_by_type_create_one_element_per_type() {
    let (_stack, acme, ids) = acme_with_users(&["alice"]).await;
    let path = format!("/Users/{}", ids[0]);
    acme.patch(
        &path,
        &patch_op(json!([
            {"op": "Add", "path": "phoneNumbers[type eq \"work\"].value", "value": "+1 555 0100"},
            {"op": "Add", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "+1 555 0101"},
            {"op": "Add", "path": "phoneNumbers[type eq \"fax\"].value", "value": "+1 555 0102"}
        ])),
    )
    .await
    .expect(200);
    acme.patch(
        &path,
        &patch_op(json!([
            {"op": "Replace", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "+1 555 0199"}
        ])),
    )
    .await
    .expect(200);
    let fetched = acme.get(&path).await.expect(200);
    assert_eq!(
        fetched["phoneNumbers"],
        json!([
            {"type": "work", "value": "+1 555 0100"},
            {"type": "mobile", "value": "+1 555 0199"},
            {"type": "fax", "value": "+1 555 0102"}
        ])
    );
}

#[tokio::test]
async fn entra_address_paths_with_a_capitalised_sub_attribute_are_stored_canonically() {
    let (_stack, acme, ids) = acme_with_users(&["alice"]).await;
    let path = format!("/Users/{}", ids[0]);
    acme.patch(
        &path,
        &patch_op(json!([
            {"op": "Add", "path": "addresses[type eq \"work\"].streetAddress", "value": "1 Main St"},
            {"op": "Add", "path": "addresses[type eq \"work\"].postalCode", "value": "75001"},
            {"op": "Add", "path": "addresses[type eq \"other\"].Formatted", "value": "2 Side St, Paris"}
        ])),
    )
    .await
    .expect(200);
    // A later replace spelled canonically reaches the same sub-attribute.
    acme.patch(
        &path,
        &patch_op(json!([
            {"op": "Replace", "path": "addresses[type eq \"other\"].formatted", "value": "3 Side St, Paris"}
        ])),
    )
    .await
    .expect(200);
    let fetched = acme.get(&path).await.expect(200);
    assert_eq!(
        fetched["addresses"],
        json!([
            {"type": "work", "streetAddress": "1 Main St", "postalCode": "75001"},
            {"type": "other", "formatted": "3 Side St, Paris"}
        ])
    );
}

#[tokio::test]
async fn entra_manager_as_an_array_of_reference_objects_is_stored_complex() {
    let (_stack, acme, ids) = acme_with_users(&["boss", "alice"]).await;
    let (manager, path) = (&ids[0], format!("/Users/{}", ids[1]));
    let reference = acme.url(&format!("/Users/{manager}"));
    let patched = acme
        .patch(
            &path,
            &patch_op(json!([{"op": "Add",
                "path": format!("{ENTERPRISE}:manager"),
                "value": [{"$ref": reference, "value": manager}]}])),
        )
        .await
        .expect(200);
    let fetched = acme.get(&path).await.expect(200);
    for user in [&patched, &fetched] {
        assert_eq!(
            user[ENTERPRISE]["manager"],
            json!({"$ref": reference, "value": manager}),
            "one complex value, not an array: {user}"
        );
        assert!(
            user["schemas"]
                .as_array()
                .unwrap()
                .contains(&json!(ENTERPRISE))
        );
    }
}

#[tokio::test]
async fn entra_docs_manager_add_with_the_unqualified_path_manager_sets_the_enterprise_manager() {
    let (_stack, acme, ids) = acme_with_users(&["boss", "alice"]).await;
    let (manager, path) = (&ids[0], format!("/Users/{}", ids[1]));
    // [MS-DEV Example 5], verbatim: path "manager", not URN-qualified.
    let patched = acme
        .patch(
            &path,
            &patch_op(json!([{"op": "Add", "path": "manager",
                "value": [{"$ref": acme.url(&format!("/Users/{manager}")), "value": manager}]}])),
        )
        .await
        .expect(200);
    let fetched = acme.get(&path).await.expect(200);
    for user in [&patched, &fetched] {
        assert_eq!(
            user[ENTERPRISE]["manager"]["value"],
            manager.as_str(),
            "{user}"
        );
        assert!(
            user.get("manager").is_none(),
            "not a top-level attribute: {user}"
        );
    }
}

#[tokio::test]
async fn entra_manager_as_a_single_object_is_stored_complex() {
    let (_stack, acme, ids) = acme_with_users(&["boss", "alice"]).await;
    let (manager, path) = (&ids[0], format!("/Users/{}", ids[1]));
    acme.patch(
        &path,
        &patch_op(json!([{"op": "replace",
            "path": format!("{ENTERPRISE}:manager"),
            "value": {"value": manager}}])),
    )
    .await
    .expect(200);
    let fetched = acme.get(&path).await.expect(200);
    assert_eq!(fetched[ENTERPRISE]["manager"], json!({"value": manager}));
}

#[tokio::test]
async fn entra_app_role_paths_filtered_on_primary_eq_the_string_true_update_the_primary_role() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let created = acme
        .post(
            "/Users",
            &json!({"userName": "alice",
                    "roles": [{"primary": true, "type": "WindowsAzureActiveDirectoryRole", "value": "Admin"}]}),
        )
        .await
        .expect(201);
    assert_eq!(
        created["roles"],
        json!([{"primary": true, "type": "WindowsAzureActiveDirectoryRole", "value": "Admin"}])
    );
    let path = format!("/Users/{}", created["id"].as_str().unwrap());
    acme.patch(
        &path,
        &patch_op(json!([
            {"op": "Replace", "path": "roles[primary eq \"True\"].value", "value": "Reader"},
            {"op": "Replace", "path": "roles[primary eq \"True\"].display", "value": "Reader role"},
            {"op": "Replace", "path": "roles[primary eq \"True\"].type", "value": "WindowsAzureActiveDirectoryRole"}
        ])),
    )
    .await
    .expect(200);
    let fetched = acme.get(&path).await.expect(200);
    assert_eq!(
        fetched["roles"],
        json!([{"primary": true, "type": "WindowsAzureActiveDirectoryRole",
                "value": "Reader", "display": "Reader role"}])
    );
}

#[tokio::test]
async fn entra_app_role_added_as_json_inside_a_string_is_kept_as_sent() {
    let (_stack, acme, ids) = acme_with_users(&["alice"]).await;
    let path = format!("/Users/{}", ids[0]);
    let role =
        r#"{"id":"7f4bc1a3-1b3a-4c2e-9f0e-3d2a1b0c9d8e","value":"25","displayName":"Role1234"}"#;
    acme.patch(
        &path,
        &patch_op(json!([{"op": "Add", "path": "roles", "value": [{"value": role}]}])),
    )
    .await
    .expect(200);
    let fetched = acme.get(&path).await.expect(200);
    assert_eq!(fetched["roles"], json!([{"value": role}]));
}

const CUSTOM_ATTRIBUTE: &str =
    "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User:CustomAttribute";

#[tokio::test]
async fn entra_custom_extension_attribute_in_post_without_its_schema_urn_is_kept() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    // "The custom extension schema header is omitted": `schemas` lists only the core schema.
    let created = acme
        .post(
            "/Users",
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "userName": "alice", CUSTOM_ATTRIBUTE: "blue"}),
        )
        .await
        .expect(201);
    let fetched = acme
        .get(&format!("/Users/{}", created["id"].as_str().unwrap()))
        .await
        .expect(200);
    assert_eq!(fetched[CUSTOM_ATTRIBUTE], "blue", "{fetched}");
}

#[tokio::test]
async fn entra_custom_extension_attribute_patched_by_its_urn_path_is_accepted() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let created = acme
        .post(
            "/Users",
            &json!({"userName": "alice", CUSTOM_ATTRIBUTE: "blue"}),
        )
        .await
        .expect(201);
    let path = format!("/Users/{}", created["id"].as_str().unwrap());
    acme.patch(
        &path,
        &patch_op(json!([{"op": "Replace", "path": CUSTOM_ATTRIBUTE, "value": "green"}])),
    )
    .await
    .expect(200);
    let fetched = acme.get(&path).await.expect(200);
    assert_eq!(fetched[CUSTOM_ATTRIBUTE], "green", "{fetched}");
}

#[tokio::test]
async fn unquoted_filter_value_from_entra_docs() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let created = acme
        .post(
            "/Users",
            &json!({"userName": "jyoung", "externalId": "jyoung"}),
        )
        .await
        .expect(201);
    // [MS-DEV Example 1]: GET /Users?filter=externalId eq jyoung
    let found = acme.find("externalId eq jyoung").await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["id"], created["id"]);
    assert_eq!(acme.find("userName eq JYOUNG").await.len(), 1);
    let list = acme
        .get(&format!(
            "/Users?filter={}",
            urlencode("externalId eq nobody")
        ))
        .await
        .expect(200);
    assert_eq!(list["totalResults"], 0);
    assert_eq!(list["Resources"], json!([]));
}

// ---- Microsoft's validator and reference tests (§2.5) -----------------------------------------

#[tokio::test]
async fn microsoft_test_collection_empty_user_and_group_lists_are_200() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    for path in ["/Users", "/Groups"] {
        let list = acme.get(path).await.expect(200);
        assert_eq!(
            list["schemas"],
            json!(["urn:ietf:params:scim:api:messages:2.0:ListResponse"]),
            "{path}"
        );
        assert_eq!(list["totalResults"], 0, "{path}");
        assert_eq!(list["Resources"], json!([]), "{path}");
    }
}

#[tokio::test]
async fn microsoft_test_collection_misspelled_attribute_in_put_is_ignored() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let id = acme.create_user("OMalley").await;
    // The collection's put_omalley_typo.json: "adreses" instead of "addresses", plus the whole
    // user read back (id, meta) with nulls inside.
    let body = json!({
        "id": id, "userName": "OMalley", "active": false,
        "adreses": [
            {"country": "Germany", "formatted": "1923 Jennifer Way Suite 040\nSouth Nancy, MI 55645",
             "locality": "East Mercedes", "postalCode": "99265", "region": "Montana",
             "streetAddress": "4939 Hess Fork", "type": "work", "primary": false},
            {"country": "bahams", "formatted": "18522 Lisa Unions\nEast Gregory, CT 52311",
             "locality": null, "postalCode": null, "region": null, "streetAddress": null,
             "type": "other", "primary": false}
        ],
        "displayName": "Kimberly Baker",
        "emails": [{"type": "work", "primary": true, "value": "anna33@example.com"},
                   {"type": "other", "primary": false, "value": "anna33@gmail.com"}],
        "meta": {"created": "2019-09-18T18:15:26.5788954+00:00",
                 "lastModified": "2019-09-18T18:15:26.5788976+00:00", "resourceType": "User"},
        "name": {"formatted": "Daniel Mcgee", "familyName": "OMalley", "givenName": "Darl",
                 "honorificPrefix": null, "honorificSuffix": null},
        "phoneNumbers": [{"type": "fax", "primary": false, "value": "312-320-0500"},
                         {"type": "mobile", "primary": false, "value": "312-320-1707"},
                         {"type": "work", "primary": true, "value": "312-320-0932"}],
        "preferredLanguage": "xh", "roles": [], "title": "Site engineer",
        "externalId": "22fbc523-6032-4c5f-939d-5d4850cf3e52",
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"]
    });
    let replaced = acme.put(&format!("/Users/{id}"), &body).await.expect(200);
    let fetched = acme.get(&format!("/Users/{id}")).await.expect(200);
    for user in [&replaced, &fetched] {
        assert_eq!(user["id"], id.as_str());
        assert!(
            user.get("addresses").is_none(),
            "the typo is not read as addresses: {user}"
        );
        assert_eq!(user["active"], false);
        assert_eq!(user["displayName"], "Kimberly Baker");
        assert_eq!(user["title"], "Site engineer");
        assert_eq!(
            user["name"],
            json!({"formatted": "Daniel Mcgee", "familyName": "OMalley", "givenName": "Darl"})
        );
        assert_eq!(user["phoneNumbers"].as_array().unwrap().len(), 3);
        assert_eq!(user["externalId"], "22fbc523-6032-4c5f-939d-5d4850cf3e52");
        assert_eq!(user["meta"]["resourceType"], "User");
        assert_ne!(
            user["meta"]["created"], "2019-09-18T18:15:26.5788954+00:00",
            "meta is the server's"
        );
    }
}

#[tokio::test]
async fn microsoft_test_collection_filter_on_capitalised_display_name() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let created = acme
        .post(
            "/Users",
            &json!({"userName": "UserName123", "displayName": "BobIsAmazing"}),
        )
        .await
        .expect(201);
    acme.create_user("someone-else").await;
    // The query string exactly as the collection sends it.
    let list = acme
        .get("/Users?filter=DisplayName+eq+%22BobIsAmazing%22")
        .await
        .expect(200);
    assert_eq!(list["totalResults"], 1);
    assert_eq!(list["Resources"][0]["id"], created["id"]);
}

#[tokio::test]
async fn microsoft_test_collection_enterprise_user_with_capitalised_sub_attributes_is_canonical() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    // The collection's "Post EnterpriseUser" body (its manager is not a user id).
    let created = acme
        .post(
            "/Users",
            &json!({
                "userName": "UserName222", "active": true, "displayName": "lennay",
                "schemas": [ENTERPRISE, "urn:ietf:params:scim:schemas:core:2.0:User"],
                "externalId": "0d3ff1d4-2b53-4c43-8d3e-3b5c5b6f0b8a",
                "name": {"formatted": "Adrew Ryan", "familyName": "Ryan", "givenName": "Andrew"},
                "emails": [{"Primary": true, "type": "work", "value": "testing@bob2.com"},
                           {"Primary": false, "type": "home", "value": "testinghome@bob3.com"}],
                ENTERPRISE: {"Department": "bob", "Manager": {"Value": "SuzzyQ"}}
            }),
        )
        .await
        .expect(201);
    let fetched = acme
        .get(&format!("/Users/{}", created["id"].as_str().unwrap()))
        .await
        .expect(200);
    assert_eq!(
        fetched["emails"],
        json!([{"primary": true, "type": "work", "value": "testing@bob2.com"},
               {"primary": false, "type": "home", "value": "testinghome@bob3.com"}])
    );
    assert_eq!(
        fetched[ENTERPRISE],
        json!({"department": "bob", "manager": {"value": "SuzzyQ"}})
    );
    assert_eq!(
        acme.find(r#"emails[type eq "work"].value eq "testing@bob2.com""#)
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn microsoft_validator_patch_removing_the_required_user_name_is_refused_and_changes_nothing()
{
    let (_stack, acme, ids) = acme_with_users(&["alice"]).await;
    let path = format!("/Users/{}", ids[0]);
    let before = acme.get(&path).await.expect(200);
    acme.patch(
        &path,
        &patch_op(json!([{"op": "Remove", "path": "userName"}])),
    )
    .await
    // RFC 7644 §3.5.2: an operation incompatible with the attribute's schema
    // (a required attribute) is refused; scim2-tester expects `mutability`.
    .expect_error(400, Some("mutability"));
    let after = acme.get(&path).await.expect(200);
    assert_eq!(after["userName"], "alice");
    assert_eq!(after["meta"]["version"], before["meta"]["version"]);
}

#[tokio::test]
async fn microsoft_test_collection_lowercase_users_endpoint() {
    let (_stack, acme, _ids) = acme_with_users(&["alice"]).await;
    // The collection's "Get empty Users" request: {{Api}}/users.
    let list = acme.get("/users").await.expect(200);
    assert_eq!(list["totalResults"], 1);
}

#[tokio::test]
async fn microsoft_test_collection_trailing_slash_before_the_query() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    acme.post(
        "/Users",
        &json!({"userName": "UserName123", "displayName": "BobIsAmazing"}),
    )
    .await
    .expect(201);
    // The collection's "Get User Filters" request: {{Api}}/Users/?filter=….
    let list = acme
        .get("/Users/?filter=DisplayName+eq+%22BobIsAmazing%22")
        .await
        .expect(200);
    assert_eq!(list["totalResults"], 1);
}

// ---- Okta (§3) --------------------------------------------------------------------------------

#[tokio::test]
async fn okta_user_name_filter_encoded_with_percent_20_and_paging_finds_the_user() {
    let (_stack, acme, ids) = acme_with_users(&["test-user", "other-user"]).await;
    // Exactly as Okta encodes it: %20 for spaces, %22 for quotes, with its paging parameters.
    let list = acme
        .get("/Users?filter=userName%20eq%20%22test-user%22&startIndex=1&count=100")
        .await
        .expect(200);
    assert_eq!(list["totalResults"], 1);
    assert_eq!(list["startIndex"], 1);
    assert_eq!(list["itemsPerPage"], 1);
    assert_eq!(list["Resources"][0]["id"], ids[0].as_str());
}

#[tokio::test]
async fn okta_spec_test_first_page_of_one_user_carries_the_profile_fields() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    for (name, given) in [("first-user", "First"), ("second-user", "Second")] {
        acme.post(
            "/Users",
            &json!({"userName": name, "name": {"givenName": given, "familyName": "User"},
                    "emails": [{"primary": true, "value": format!("{name}@okta.local"), "type": "work"}]}),
        )
        .await
        .expect(201);
    }
    let page = acme.get("/Users?count=1&startIndex=1").await.expect(200);
    assert_eq!(page["totalResults"], json!(2));
    assert_eq!(page["itemsPerPage"], json!(1));
    assert_eq!(page["startIndex"], json!(1));
    assert_eq!(page["Resources"].as_array().unwrap().len(), 1);
    let user = &page["Resources"][0];
    assert!(user["id"].is_string());
    assert_eq!(user["userName"], "first-user");
    assert_eq!(user["name"]["givenName"], "First");
    assert_eq!(user["name"]["familyName"], "User");
    assert_eq!(user["active"], true);
    assert_eq!(user["emails"][0]["value"], "first-user@okta.local");
    let id = user["id"].as_str().unwrap();
    acme.get(&format!("/Users/{id}")).await.expect(200);
}

#[tokio::test]
async fn okta_reactivates_with_a_pathless_replace() {
    let (_stack, acme, ids) = acme_with_users(&["test-user"]).await;
    let path = format!("/Users/{}", ids[0]);
    acme.patch(
        &path,
        &patch_op(json!([{"op": "replace", "value": {"active": false}}])),
    )
    .await
    .expect(200);
    let on = acme
        .patch(
            &path,
            &patch_op(json!([{"op": "replace", "value": {"active": true}}])),
        )
        .await
        .expect(200);
    assert_eq!(on["active"], true);
    assert_eq!(acme.get(&path).await.expect(200)["active"], true);
}

#[tokio::test]
async fn okta_password_sync_through_a_pathless_replace_is_accepted_and_never_returned() {
    let (_stack, acme, ids) = acme_with_users(&["test-user"]).await;
    let path = format!("/Users/{}", ids[0]);
    let patched = acme
        .patch(
            &path,
            &patch_op(json!([{"op": "replace", "value": {"password": "t1meMa$9"}}])),
        )
        .await
        .expect(200);
    assert!(patched.get("password").is_none(), "{patched}");
    let patched = acme
        .patch(
            &path,
            &patch_op(
                json!([{"op": "replace", "value": {"active": true, "password": "t1meMa$10"}}]),
            ),
        )
        .await
        .expect(200);
    assert!(patched.get("password").is_none(), "{patched}");
    let fetched = acme.get(&path).await.expect(200);
    assert!(!fetched.to_string().contains("t1meMa$"), "{fetched}");
    assert_eq!(fetched["active"], true);
}

#[tokio::test]
async fn okta_custom_apps_reactivate_with_put() {
    let (_stack, acme, ids) = acme_with_users(&["test-user"]).await;
    let path = format!("/Users/{}", ids[0]);
    acme.put(&path, &json!({"userName": "test-user", "active": false}))
        .await
        .expect(200);
    let on = acme
        .put(&path, &json!({"userName": "test-user", "active": true}))
        .await
        .expect(200);
    assert_eq!(on["active"], true);
    assert_eq!(acme.get(&path).await.expect(200)["active"], true);
}

#[tokio::test]
async fn okta_profile_update_puts_back_the_fetched_user_with_its_groups_and_keeps_memberships() {
    let (_stack, acme, ids) = acme_with_users(&["test-user"]).await;
    let group = acme.create_group("Engineering", &[&ids[0]]).await;
    let path = format!("/Users/{}", ids[0]);
    let mut fetched = acme.get(&path).await.expect(200);
    assert_eq!(fetched["groups"][0]["value"], group.as_str());
    fetched["title"] = json!("Engineer");
    let replaced = acme.put(&path, &fetched).await.expect(200);
    assert_eq!(replaced["title"], "Engineer");
    assert_eq!(replaced["id"], ids[0].as_str());
    assert_eq!(acme.group_members(&group).await, vec![ids[0].clone()]);
    let again = acme.get(&path).await.expect(200);
    assert_eq!(again["groups"][0]["value"], group.as_str());
    assert_eq!(again["groups"].as_array().unwrap().len(), 1);
}

// ---- OneLogin (§4) ----------------------------------------------------------------------------

#[tokio::test]
async fn onelogin_active_as_string_in_post() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    // `"active": "{$user.active}"` in the SCIM JSON template arrives as a string.
    for (name, sent, expected) in [("on-user", "true", true), ("off-user", "false", false)] {
        let created = acme
            .post("/Users", &json!({"userName": name, "active": sent}))
            .await
            .expect(201);
        assert_eq!(created["active"], expected, "{name}");
        let fetched = acme
            .get(&format!("/Users/{}", created["id"].as_str().unwrap()))
            .await
            .expect(200);
        assert_eq!(fetched["active"], expected, "{name}");
    }
}

#[tokio::test]
async fn onelogin_template_with_a_null_id_and_meta_creates_the_user() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let created = acme
        .post(
            "/Users",
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "id": null, "meta": {"resourceType": "User"},
                    "userName": "jdoe", "active": "true"}),
        )
        .await
        .expect(201);
    let id = created["id"].as_str().expect("the server assigns an id");
    assert!(!id.is_empty());
    assert_eq!(created["meta"]["resourceType"], "User");
    assert!(created["meta"]["created"].is_string());
    assert_eq!(
        acme.get(&format!("/Users/{id}")).await.expect(200)["userName"],
        "jdoe"
    );
}

#[tokio::test]
async fn onelogin_v2_enterprise_template_creates_the_user_with_department_and_manager() {
    let (_stack, acme, ids) = acme_with_users(&["boss"]).await;
    let manager = &ids[0];
    let created = acme
        .post(
            "/Users",
            &json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
                "userName": "jdoe",
                "name": {"familyName": "Doe", "givenName": "Jane"},
                "emails": [{"value": "jane.doe@example.com", "type": "work", "primary": true}],
                ENTERPRISE: {"department": "Research", "manager": {"value": manager, "displayName": "Boss"}}
            }),
        )
        .await
        .expect(201);
    let fetched = acme
        .get(&format!("/Users/{}", created["id"].as_str().unwrap()))
        .await
        .expect(200);
    assert_eq!(
        fetched["name"],
        json!({"familyName": "Doe", "givenName": "Jane"})
    );
    assert_eq!(
        fetched["emails"],
        json!([{"value": "jane.doe@example.com", "type": "work", "primary": true}])
    );
    assert_eq!(fetched[ENTERPRISE]["department"], "Research");
    assert_eq!(fetched[ENTERPRISE]["manager"]["value"], manager.as_str());
    assert_eq!(fetched["active"], true, "omitted active defaults to true");
}

// ---- The checklist (§6) and the RFC points it relies on (§5.1, §5.5, §5.6) --------------------

#[tokio::test]
async fn checklist_unmodelled_user_attributes_are_stored_and_echoed_but_not_password_or_groups() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let sent = json!({
        "userName": "alice", "displayName": "Alice A", "locale": "en-US", "title": "Engineer",
        "phoneNumbers": [{"type": "work", "value": "+1 555 0100"}],
        "addresses": [{"type": "work", "streetAddress": "1 Main St"}],
        "roles": [{"value": "Admin"}],
        ENTERPRISE: {"employeeNumber": "42"},
        "groups": [{"value": "2b7c1f7e-5c71-4d4c-9a55-6e8f2b1c0d3e"}],
        "password": "hunter22"
    });
    let created = acme.post("/Users", &sent).await.expect(201);
    let fetched = acme
        .get(&format!("/Users/{}", created["id"].as_str().unwrap()))
        .await
        .expect(200);
    for user in [&created, &fetched] {
        for key in [
            "displayName",
            "locale",
            "title",
            "phoneNumbers",
            "addresses",
            "roles",
            ENTERPRISE,
        ] {
            assert_eq!(user[key], sent[key], "{key}: {user}");
        }
        assert!(user.get("password").is_none());
        assert!(!user.to_string().contains("hunter22"));
    }
    assert_eq!(fetched["groups"], json!([]), "groups are the server's");
}

#[tokio::test]
async fn checklist_members_removed_with_a_single_object_or_a_bare_id() {
    let (_stack, acme, ids) = acme_with_users(&["u-a", "u-b", "u-c"]).await;
    let group = acme.create_group("G", &[&ids[0], &ids[1], &ids[2]]).await;
    let removed = acme
        .patch(
            &format!("/Groups/{group}"),
            &patch_op(json!([{"op": "Remove", "path": "members", "value": {"value": ids[0]}}])),
        )
        .await;
    assert_eq!(removed.status, 204, "{}", removed.body);
    let removed = acme
        .patch(
            &format!("/Groups/{group}"),
            &patch_op(json!([{"op": "remove", "path": "members", "value": ids[1]}])),
        )
        .await;
    assert_eq!(removed.status, 204, "{}", removed.body);
    assert_eq!(acme.group_members(&group).await, vec![ids[2].clone()]);
}

#[tokio::test]
async fn patch_paths_with_case_varied_attribute_names_update_the_canonical_attributes() {
    let (_stack, acme, ids) = acme_with_users(&["alice"]).await;
    let path = format!("/Users/{}", ids[0]);
    acme.patch(
        &path,
        &patch_op(json!([
            {"op": "Add", "path": "DisplayName", "value": "Alice A"},
            {"op": "Add", "path": "Name.GivenName", "value": "Alice"},
            {"op": "Add", "path": "EMAILS[TYPE eq \"work\"].VALUE", "value": "alice@work.io"},
            {"op": "Replace", "path": "USERNAME", "value": "alice-b"}
        ])),
    )
    .await
    .expect(200);
    let fetched = acme.get(&path).await.expect(200);
    assert_eq!(fetched["displayName"], "Alice A");
    assert_eq!(fetched["name"], json!({"givenName": "Alice"}));
    assert_eq!(
        fetched["emails"],
        json!([{"type": "work", "value": "alice@work.io"}])
    );
    assert_eq!(fetched["userName"], "alice-b");
    for key in ["DisplayName", "Name", "EMAILS", "USERNAME"] {
        assert!(fetched.get(key).is_none(), "{key}: {fetched}");
    }
    assert_eq!(acme.find(r#"userName eq "alice-b""#).await.len(), 1);
}

#[tokio::test]
async fn post_body_attribute_names_are_case_insensitive() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let created = acme
        .post(
            "/Users",
            &json!({"UserName": "alice", "ExternalId": "ext-1", "Active": "False",
                    "Name": {"GivenName": "Alice", "FamilyName": "A"},
                    "Emails": [{"Value": "alice@work.io", "Type": "work", "Primary": "True"}]}),
        )
        .await
        .expect(201);
    let fetched = acme
        .get(&format!("/Users/{}", created["id"].as_str().unwrap()))
        .await
        .expect(200);
    assert_eq!(fetched["userName"], "alice");
    assert_eq!(fetched["externalId"], "ext-1");
    assert_eq!(fetched["active"], false);
    assert_eq!(
        fetched["name"],
        json!({"givenName": "Alice", "familyName": "A"})
    );
    assert_eq!(
        fetched["emails"],
        json!([{"value": "alice@work.io", "type": "work", "primary": true}])
    );
    assert_eq!(acme.find(r#"externalId eq "ext-1""#).await.len(), 1);
    assert_eq!(
        acme.find(r#"emails.value eq "alice@work.io""#).await.len(),
        1
    );
}

#[tokio::test]
async fn patch_is_all_or_nothing_when_a_later_operation_fails() {
    let (_stack, acme, ids) = acme_with_users(&["alice", "u-a", "u-b"]).await;
    let path = format!("/Users/{}", ids[0]);
    let before = acme.get(&path).await.expect(200);
    acme.patch(
        &path,
        &patch_op(json!([
            {"op": "replace", "path": "title", "value": "CTO"},
            {"op": "replace", "path": "active", "value": false},
            {"op": "replace", "path": "userName", "value": "a--b"}
        ])),
    )
    .await
    .expect_error(400, Some("invalidValue"));
    let after = acme.get(&path).await.expect(200);
    assert!(after.get("title").is_none(), "{after}");
    assert_eq!(after["active"], true);
    assert_eq!(after["meta"]["version"], before["meta"]["version"]);
    // The same for a group: a valid member add followed by an invalid one adds nobody.
    let group = acme.create_group("G", &[] as &[&str]).await;
    acme.patch(
        &format!("/Groups/{group}"),
        &patch_op(json!([
            {"op": "replace", "path": "displayName", "value": "Renamed"},
            {"op": "add", "path": "members", "value": [{"value": ids[1]}]},
            // Well-formed, but nobody's id: only found out when applying.
            {"op": "add", "path": "members", "value": [{"value": "2b7c1f7e-5c71-4d4c-9a55-6e8f2b1c0d3e"}]}
        ])),
    )
    .await
    .expect_error(400, Some("invalidValue"));
    let fetched = acme.get(&format!("/Groups/{group}")).await.expect(200);
    assert_eq!(fetched["displayName"], "G");
    assert_eq!(fetched["members"], json!([]));
}

#[tokio::test]
async fn put_to_an_unknown_id_does_not_create_the_resource() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let unknown = "0190c2a4-7c1e-7a3b-9d4e-5f6a7b8c9d0e";
    acme.put(&format!("/Users/{unknown}"), &json!({"userName": "ghost"}))
        .await
        .expect_error(404, None);
    acme.put(
        &format!("/Groups/{unknown}"),
        &json!({"displayName": "Ghosts"}),
    )
    .await
    .expect_error(404, None);
    assert_eq!(acme.get("/Users").await.expect(200)["totalResults"], 0);
    assert_eq!(acme.get("/Groups").await.expect(200)["totalResults"], 0);
    acme.get(&format!("/Users/{unknown}"))
        .await
        .expect_error(404, None);
}
