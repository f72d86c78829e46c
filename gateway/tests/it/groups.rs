//! `/Groups` over HTTP: each membership PATCH shape IdPs send, filters, attribute selection,
//! and what deleting users and groups does to memberships.

use serde_json::{Value, json};

use crate::support::{Stack, Tenant, patch_op, reply, urlencode};

fn sorted(ids: &[&String]) -> Vec<String> {
    let mut ids: Vec<String> = ids.iter().map(|id| (*id).clone()).collect();
    ids.sort();
    ids
}

async fn users(tenant: &Tenant, names: &[&str]) -> Vec<String> {
    let mut ids = Vec::new();
    for name in names {
        ids.push(tenant.create_user(name).await);
    }
    ids
}

async fn patch_members(tenant: &Tenant, group: &str, operations: Value) {
    let response = tenant
        .patch(&format!("/Groups/{group}"), &patch_op(operations))
        .await;
    assert_eq!(response.status, 204, "{}", response.body);
    assert!(
        response.body.is_null(),
        "group PATCH answers 204 without a body"
    );
}

#[tokio::test]
async fn create_returns_the_group_with_members_location_and_etag() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let ids = users(&acme, &["alice", "bob"]).await;
    let created = acme
        .post(
            "/Groups",
            &json!({"displayName": "Engineering", "externalId": "ext-g",
                    "members": [{"value": ids[0]}, {"value": ids[1]}]}),
        )
        .await;
    assert_eq!(created.status, 201);
    let id = created.body["id"].as_str().unwrap();
    assert_eq!(
        created.header("location"),
        Some(acme.url(&format!("/Groups/{id}")).as_str())
    );
    assert_eq!(created.header("etag"), Some("W/\"2\""));
    assert_eq!(created.body["members"].as_array().unwrap().len(), 2);
    assert!(
        created.body["members"][0].get("display").is_none(),
        "members.display is returned on request only"
    );
    assert_eq!(created.body["meta"]["resourceType"], "Group");
    let with_display = acme
        .get(&format!(
            "/Groups/{id}?attributes=members.display,members.value"
        ))
        .await
        .expect(200);
    assert_eq!(with_display["members"][0]["display"], "alice");
    assert_eq!(with_display["members"][0]["value"], ids[0].as_str());
}

#[tokio::test]
async fn add_members_with_an_array_a_single_object_or_a_bare_id() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let ids = users(&acme, &["u-a", "u-b", "u-c", "u-d"]).await;
    let group = acme.create_group("G", &[] as &[&str]).await;
    patch_members(
        &acme,
        &group,
        json!([{"op": "add", "path": "members", "value": [{"value": ids[0]}, {"value": ids[1]}]}]),
    )
    .await;
    patch_members(
        &acme,
        &group,
        json!([{"op": "Add", "path": "members", "value": {"value": ids[2]}}]),
    )
    .await;
    patch_members(
        &acme,
        &group,
        json!([{"op": "add", "path": "members", "value": ids[3]}]),
    )
    .await;
    assert_eq!(
        acme.group_members(&group).await,
        sorted(&ids.iter().collect::<Vec<_>>())
    );
}

#[tokio::test]
async fn remove_one_member_by_value_filter_path() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let ids = users(&acme, &["u-a", "u-b"]).await;
    let group = acme.create_group("G", &[&ids[0], &ids[1]]).await;
    patch_members(
        &acme,
        &group,
        json!([{"op": "remove", "path": format!("members[value eq \"{}\"]", ids[0])}]),
    )
    .await;
    assert_eq!(acme.group_members(&group).await, vec![ids[1].clone()]);
}

#[tokio::test]
async fn remove_with_path_members_and_a_value_list_removes_only_those() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let ids = users(&acme, &["u-a", "u-b", "u-c"]).await;
    let group = acme.create_group("G", &[&ids[0], &ids[1], &ids[2]]).await;
    patch_members(
        &acme,
        &group,
        json!([{"op": "Remove", "path": "members", "value": [{"$ref": null, "value": ids[0]}, {"value": ids[2]}]}]),
    )
    .await;
    assert_eq!(acme.group_members(&group).await, vec![ids[1].clone()]);
}

#[tokio::test]
async fn remove_with_path_members_and_no_value_removes_all() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let ids = users(&acme, &["u-a", "u-b"]).await;
    let group = acme.create_group("G", &[&ids[0], &ids[1]]).await;
    patch_members(&acme, &group, json!([{"op": "remove", "path": "members"}])).await;
    assert!(acme.group_members(&group).await.is_empty());
}

#[tokio::test]
async fn replace_members_sets_exactly_the_given_list() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let ids = users(&acme, &["u-a", "u-b", "u-c"]).await;
    let group = acme.create_group("G", &[&ids[0], &ids[1]]).await;
    patch_members(
        &acme,
        &group,
        json!([{"op": "replace", "path": "members", "value": [{"value": ids[1], "display": "u-b"}, {"value": ids[2]}]}]),
    )
    .await;
    assert_eq!(
        acme.group_members(&group).await,
        sorted(&[&ids[1], &ids[2]])
    );
}

#[tokio::test]
async fn re_adding_a_member_or_removing_a_non_member_is_not_an_error() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let ids = users(&acme, &["u-a", "u-b"]).await;
    let group = acme.create_group("G", &[&ids[0]]).await;
    let before = acme.get(&format!("/Groups/{group}")).await.expect(200);
    patch_members(
        &acme,
        &group,
        json!([{"op": "add", "path": "members", "value": [{"value": ids[0]}]}]),
    )
    .await;
    patch_members(
        &acme,
        &group,
        json!([{"op": "remove", "path": format!("members[value eq \"{}\"]", ids[1])}]),
    )
    .await;
    let after = acme.get(&format!("/Groups/{group}")).await.expect(200);
    assert_eq!(
        before["meta"]["version"], after["meta"]["version"],
        "nothing changed"
    );
}

#[tokio::test]
async fn members_must_be_users_of_the_same_tenant() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let other = stack.tenant("other").await;
    let stranger = other.create_user("stranger").await;
    let group = acme.create_group("G", &[] as &[&str]).await;
    let error = acme
        .patch(
            &format!("/Groups/{group}"),
            &patch_op(json!([{"op": "add", "path": "members", "value": [{"value": stranger}]}])),
        )
        .await
        .expect_error(400, Some("invalidValue"));
    assert!(
        error["detail"].as_str().unwrap().contains(&stranger),
        "{error}"
    );
    let error = acme
        .post(
            "/Groups",
            &json!({"displayName": "H", "members": [{"value": "not-an-id"}]}),
        )
        .await
        .expect_error(400, Some("invalidValue"));
    assert!(error["detail"].as_str().unwrap().contains("not-an-id"));
}

#[tokio::test]
async fn member_patches_of_a_missing_or_deleted_group_are_404_and_change_nothing() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let ids = users(&acme, &["u-a", "u-b"]).await;
    let add =
        |id: &str| patch_op(json!([{"op": "add", "path": "members", "value": [{"value": id}]}]));
    let missing = "01a23b6d-0000-7000-8000-000000000000";
    for operations in [
        add(&ids[0]),
        patch_op(json!([{"op": "remove", "path": format!("members[value eq \"{}\"]", ids[0])}])),
        patch_op(json!([{"op": "replace", "path": "members", "value": []}])),
    ] {
        let error = acme
            .patch(&format!("/Groups/{missing}"), &operations)
            .await
            .expect_error(404, None);
        assert!(
            error["detail"].as_str().unwrap().contains(missing),
            "{error}"
        );
    }
    let group = acme.create_group("G", &[] as &[&str]).await;
    // Each member change is read back at once by the next request (read-your-writes), with no
    // read of the group before the write.
    patch_members(
        &acme,
        &group,
        json!([{"op": "add", "path": "members", "value": [{"value": ids[0]}]}]),
    )
    .await;
    assert_eq!(acme.group_members(&group).await, sorted(&[&ids[0]]));
    assert_eq!(acme.delete(&format!("/Groups/{group}")).await.status, 204);
    acme.patch(&format!("/Groups/{group}"), &add(&ids[1]))
        .await
        .expect_error(404, None);
    let user = acme.get(&format!("/Users/{}", ids[1])).await.expect(200);
    assert_eq!(user["groups"], json!([]));
}

#[tokio::test]
async fn display_names_are_unique_case_insensitively() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    acme.create_group("Engineering", &[] as &[&str]).await;
    acme.post("/Groups", &json!({"displayName": "ENGINEERING"}))
        .await
        .expect_error(409, Some("uniqueness"));
    acme.post("/Groups", &json!({"members": []}))
        .await
        .expect_error(400, Some("invalidValue"));
}

#[tokio::test]
async fn groups_sharing_an_external_id_are_all_found() {
    // RFC 7643 §3.1: externalId is the client's to keep unique, for groups as for users.
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let mut ids = Vec::new();
    for name in ["Engineering", "Sales", "Support"] {
        let created = acme
            .post("/Groups", &json!({"displayName": name, "externalId": "G1"}))
            .await
            .expect(201);
        ids.push(created["id"].as_str().unwrap().to_owned());
    }
    acme.post(
        "/Groups",
        &json!({"displayName": "Other", "externalId": "G10"}),
    )
    .await
    .expect(201);
    ids.sort();
    let list = acme
        .get(&format!(
            "/Groups?filter={}",
            urlencode(r#"externalId eq "G1""#)
        ))
        .await
        .expect(200);
    assert_eq!(list["totalResults"], 3);
    let mut found: Vec<String> = list["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|group| group["id"].as_str().unwrap().to_owned())
        .collect();
    found.sort();
    assert_eq!(found, ids);
}

#[tokio::test]
async fn filters_find_groups_by_name_external_id_id_and_membership() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let ids = users(&acme, &["u-a", "u-b"]).await;
    let created = acme
        .post("/Groups", &json!({"displayName": "Engineering", "externalId": "EXT-1", "members": [{"value": ids[0]}]}))
        .await
        .expect(201);
    let group = created["id"].as_str().unwrap().to_owned();
    acme.create_group("Sales", &[&ids[1]]).await;
    for filter in [
        r#"displayName eq "engineering""#.to_owned(),
        r#"externalId eq "EXT-1""#.to_owned(),
        format!(r#"id eq "{group}""#),
        format!(r#"members[value eq "{}"]"#, ids[0]),
        format!(r#"members eq "{}""#, ids[0]),
        format!(r#"id eq "{group}" and members eq "{}""#, ids[0]),
        format!(r#"displayName sw "Eng" and members.value eq "{}""#, ids[0]),
    ] {
        let list = acme
            .get(&format!(
                "/Groups?filter={}&excludedAttributes=members",
                urlencode(&filter)
            ))
            .await
            .expect(200);
        assert_eq!(list["totalResults"], 1, "{filter}");
        assert_eq!(list["Resources"][0]["id"], group.as_str(), "{filter}");
        assert!(list["Resources"][0].get("members").is_none());
    }
    // The membership check Entra makes for a user who is not a member: empty, not an error.
    let list = acme
        .get(&format!(
            "/Groups?filter={}&attributes=id",
            urlencode(&format!(r#"id eq "{group}" and members eq "{}""#, ids[1]))
        ))
        .await
        .expect(200);
    assert_eq!(list["totalResults"], 0);
    acme.get(&format!("/Groups?filter={}", urlencode(r#"nosuch eq "x""#)))
        .await
        .expect_error(400, Some("invalidFilter"));
}

#[tokio::test]
async fn excluded_members_are_not_returned_and_attributes_select() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let ids = users(&acme, &["u-a"]).await;
    let group = acme.create_group("G", &[&ids[0]]).await;
    let fetched = acme
        .get(&format!("/Groups/{group}?excludedAttributes=members"))
        .await
        .expect(200);
    assert!(fetched.get("members").is_none());
    assert_eq!(fetched["displayName"], "G");
    let fetched = acme
        .get(&format!("/Groups/{group}?attributes=displayName"))
        .await
        .expect(200);
    assert_eq!(
        fetched.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["schemas", "id", "displayName"]
    );
    let list = acme.get("/Groups?startIndex=1&count=100").await.expect(200);
    assert_eq!(list["totalResults"], 1);
    assert_eq!(list["Resources"][0]["members"][0]["value"], ids[0].as_str());
}

#[tokio::test]
async fn users_carry_their_groups_read_only() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let ids = users(&acme, &["u-a"]).await;
    let group = acme.create_group("Engineering", &[&ids[0]]).await;
    let user = acme.get(&format!("/Users/{}", ids[0])).await.expect(200);
    assert_eq!(user["groups"][0]["value"], group.as_str());
    assert_eq!(user["groups"][0]["display"], "Engineering");
    assert_eq!(
        user["groups"][0]["$ref"],
        acme.url(&format!("/Groups/{group}"))
    );
    // PUT with groups is ignored: groups are read-only on users.
    acme.put(
        &format!("/Users/{}", ids[0]),
        &json!({"userName": "u-a", "groups": []}),
    )
    .await
    .expect(200);
    assert_eq!(acme.group_members(&group).await, vec![ids[0].clone()]);
    let found = acme.find(&format!(r#"groups.value eq "{group}""#)).await;
    assert_eq!(found.len(), 1);
}

#[tokio::test]
async fn deleting_a_user_removes_its_memberships() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let ids = users(&acme, &["u-a", "u-b"]).await;
    let first = acme.create_group("First", &[&ids[0], &ids[1]]).await;
    let second = acme.create_group("Second", &[&ids[0]]).await;
    assert_eq!(acme.delete(&format!("/Users/{}", ids[0])).await.status, 204);
    assert_eq!(acme.group_members(&first).await, vec![ids[1].clone()]);
    assert!(acme.group_members(&second).await.is_empty());
}

#[tokio::test]
async fn deleting_a_group_removes_its_edges() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let ids = users(&acme, &["u-a"]).await;
    let group = acme.create_group("G", &[&ids[0]]).await;
    assert_eq!(acme.delete(&format!("/Groups/{group}")).await.status, 204);
    acme.get(&format!("/Groups/{group}"))
        .await
        .expect_error(404, None);
    let user = acme.get(&format!("/Users/{}", ids[0])).await.expect(200);
    assert_eq!(user["groups"], json!([]));
    acme.create_group("G", &[] as &[&str]).await;
}

#[tokio::test]
async fn put_replaces_attributes_and_members_only_when_members_are_given() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let ids = users(&acme, &["u-a", "u-b"]).await;
    let group = acme.create_group("G", &[&ids[0]]).await;
    let renamed = acme
        .put(&format!("/Groups/{group}"), &json!({"displayName": "G2"}))
        .await
        .expect(200);
    assert_eq!(renamed["displayName"], "G2");
    assert_eq!(
        acme.group_members(&group).await,
        vec![ids[0].clone()],
        "members kept"
    );
    let replaced = acme
        .put(
            &format!("/Groups/{group}"),
            &json!({"displayName": "G2", "members": [{"value": ids[1]}]}),
        )
        .await
        .expect(200);
    assert_eq!(replaced["members"].as_array().unwrap().len(), 1);
    assert_eq!(acme.group_members(&group).await, vec![ids[1].clone()]);
    acme.put(
        &format!("/Groups/{group}"),
        &json!({"displayName": "G2", "members": []}),
    )
    .await
    .expect(200);
    assert!(acme.group_members(&group).await.is_empty());
}

#[tokio::test]
async fn patch_with_attributes_asked_answers_200_with_the_group() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let group = acme.create_group("G", &[] as &[&str]).await;
    let patched = acme
        .patch(
            &format!("/Groups/{group}?attributes=displayName"),
            &patch_op(json!([{"op": "replace", "path": "displayName", "value": "Renamed"}])),
        )
        .await
        .expect(200);
    assert_eq!(patched["displayName"], "Renamed");
}

#[tokio::test]
async fn entra_group_lifecycle_with_the_microsoft_schema_and_legacy_member_removal() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let ids = users(&acme, &["u-a", "u-b"]).await;
    let created = acme
        .post(
            "/Groups",
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group",
                                "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
                    "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
                    "displayName": "displayName", "meta": {"resourceType": "Group"}}),
        )
        .await
        .expect(201);
    assert_eq!(created["members"], json!([]));
    let id = created["id"].as_str().unwrap().to_owned();
    let fetched = acme
        .get(&format!("/Groups/{id}?excludedAttributes=members"))
        .await
        .expect(200);
    assert!(fetched.get("members").is_none());
    let listed = acme
        .get(&format!(
            "/Groups?excludedAttributes=members&filter={}",
            urlencode(r#"displayName eq "displayName""#)
        ))
        .await
        .expect(200);
    assert_eq!(listed["totalResults"], 1);
    patch_members(&acme, &id, json!([{"op": "Replace", "path": "displayName", "value": "1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName"}])).await;
    patch_members(&acme, &id, json!([{"op": "Add", "path": "members", "value": [{"$ref": null, "value": ids[0]}, {"$ref": null, "value": ids[1]}]}])).await;
    patch_members(
        &acme,
        &id,
        json!([{"op": "Remove", "path": "members", "value": [{"$ref": null, "value": ids[0]}]}]),
    )
    .await;
    assert_eq!(acme.group_members(&id).await, vec![ids[1].clone()]);
    // aadOptscim062020 flag mode: remove through a filtered path.
    patch_members(
        &acme,
        &id,
        json!([{"op": "remove", "path": format!("members[value eq \"{}\"]", ids[1])}]),
    )
    .await;
    assert!(acme.group_members(&id).await.is_empty());
    assert_eq!(acme.delete(&format!("/Groups/{id}")).await.status, 204);
}

#[tokio::test]
async fn entra_updates_many_memberships_in_one_patch() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let ids = users(&acme, &["u-a", "u-b", "u-c"]).await;
    let id = acme.create_group("G", &[&ids[0]]).await;
    patch_members(
        &acme,
        &id,
        json!([
            {"op": "Add", "path": "members", "value": [{"value": ids[1]}]},
            {"op": "Add", "path": "members", "value": [{"value": ids[2]}]},
            {"op": "Remove", "path": "members", "value": [{"value": ids[0]}]}
        ]),
    )
    .await;
    assert_eq!(acme.group_members(&id).await, sorted(&[&ids[1], &ids[2]]));
}

#[tokio::test]
async fn okta_push_groups_create_rename_and_membership_patch() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let ids = users(&acme, &["u-a", "u-b"]).await;
    let created = acme
        .post("/Groups", &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Test SCIMv2", "members": []}))
        .await
        .expect(201);
    let id = created["id"].as_str().unwrap().to_owned();
    // Okta repeats the group's id in a path-less replace on every membership update.
    patch_members(
        &acme,
        &id,
        json!([{"op": "replace", "value": {"id": id, "displayName": "Test SCIMv2 renamed"}}]),
    )
    .await;
    patch_members(
        &acme,
        &id,
        json!([{"op": "add", "path": "members", "value": [{"value": ids[0], "display": "u-a"}]}]),
    )
    .await;
    patch_members(
        &acme,
        &id,
        json!([
            {"op": "remove", "path": format!("members[value eq \"{}\"]", ids[0])},
            {"op": "add", "path": "members", "value": [{"value": ids[1], "display": "u-b"}]}
        ]),
    )
    .await;
    assert_eq!(acme.group_members(&id).await, vec![ids[1].clone()]);
    patch_members(
        &acme,
        &id,
        json!([{"op": "replace", "path": "members", "value": [{"value": ids[0], "display": "u-a"}, {"value": ids[1], "display": "u-b"}]}]),
    )
    .await;
    assert_eq!(acme.group_members(&id).await, sorted(&[&ids[0], &ids[1]]));
    let fetched = acme.get(&format!("/Groups/{id}")).await.expect(200);
    assert_eq!(fetched["displayName"], "Test SCIMv2 renamed");
    let error = acme
        .patch(
            &format!("/Groups/{id}"),
            &patch_op(json!([{"op": "replace", "value": {"id": "another-id"}}])),
        )
        .await
        .expect_error(400, Some("mutability"));
    assert!(error["detail"].is_string());
}

#[tokio::test]
async fn okta_custom_apps_update_groups_with_put_and_the_full_member_list() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let ids = users(&acme, &["u-a", "u-b"]).await;
    let id = acme.create_group("G", &[&ids[0]]).await;
    let mut fetched = acme.get(&format!("/Groups/{id}")).await.expect(200);
    fetched["members"] = json!([{"value": ids[0]}, {"value": ids[1]}]);
    acme.put(&format!("/Groups/{id}"), &fetched)
        .await
        .expect(200);
    assert_eq!(acme.group_members(&id).await, sorted(&[&ids[0], &ids[1]]));
}

#[tokio::test]
async fn microsoft_reference_tests_add_a_member_as_a_bare_string() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let ids = users(&acme, &["u-a"]).await;
    let id = acme.create_group("G", &[] as &[&str]).await;
    patch_members(
        &acme,
        &id,
        json!([{"op": "add", "path": "members", "value": ids[0]}]),
    )
    .await;
    assert_eq!(acme.group_members(&id).await, vec![ids[0].clone()]);
}

#[tokio::test]
async fn stale_if_match_on_a_group_is_412() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let id = acme.create_group("G", &[] as &[&str]).await;
    let response = acme
        .request(reqwest::Method::PATCH, &format!("/Groups/{id}"))
        .header("if-match", "W/\"9\"")
        .body(patch_op(json!([{"op": "replace", "path": "displayName", "value": "x"}])).to_string())
        .send()
        .await
        .unwrap();
    reply(response).await.expect_error(412, None);
}

/// A page of groups is sent as it is rendered (chunked, one group at a time), not built whole in
/// memory first; it reads back as the same ListResponse, by index and by cursor.
#[tokio::test]
async fn group_pages_are_streamed_and_read_back_whole() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let ids = users(&acme, &["ann", "ben", "cat"]).await;
    for name in ["one", "two", "three"] {
        let members: Vec<Value> = ids.iter().map(|id| json!({"value": id})).collect();
        acme.post("/Groups", &json!({"displayName": name, "members": members}))
            .await
            .expect(201);
    }
    let response = acme
        .request(reqwest::Method::GET, "/Groups?startIndex=2&count=2")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/scim+json");
    assert!(
        response.headers().get("content-length").is_none(),
        "sent as it is rendered: {:?}",
        response.headers()
    );
    let page: Value = response.json().await.unwrap();
    assert_eq!(page["totalResults"], 3);
    assert_eq!(page["startIndex"], 2);
    assert_eq!(page["itemsPerPage"], 2);
    let resources = page["Resources"].as_array().unwrap();
    assert_eq!(resources.len(), 2);
    assert_eq!(resources[0]["displayName"], "two");
    assert_eq!(resources[0]["members"].as_array().unwrap().len(), 3);

    let first = acme.get("/Groups?cursor=&count=2").await.expect(200);
    assert_eq!(first["itemsPerPage"], 2);
    assert_eq!(first["Resources"].as_array().unwrap().len(), 2);
    let next = first["nextCursor"].as_str().unwrap();
    let last = acme
        .get(&format!("/Groups?cursor={next}&count=2"))
        .await
        .expect(200);
    assert_eq!(last["Resources"][0]["displayName"], "three");
    assert!(last.get("nextCursor").is_none());
}
