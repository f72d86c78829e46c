//! The rest of SCIM 2.0 beyond resources: discovery (`/ServiceProviderConfig`, `/ResourceTypes`,
//! `/Schemas`), `sortBy`/`sortOrder`, `POST .search` and `POST /Bulk`.

use serde_json::{Value, json};

use crate::support::{Stack, Tenant, patch_op, reply};

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

fn names(list: &Value, attribute: &str) -> Vec<String> {
    list["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|resource| resource[attribute].as_str().unwrap_or("-").to_owned())
        .collect()
}

// ---- discovery ------------------------------------------------------------------------------

#[tokio::test]
async fn the_service_provider_config_advertises_exactly_what_works() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let config = acme.get("/ServiceProviderConfig").await.expect(200);
    assert_eq!(
        config["schemas"][0],
        "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
    );
    assert_eq!(config["patch"]["supported"], true);
    assert_eq!(config["bulk"]["supported"], true);
    assert_eq!(config["bulk"]["maxOperations"], 1000);
    assert_eq!(config["bulk"]["maxPayloadSize"], 1024 * 1024);
    assert_eq!(config["filter"]["supported"], true);
    assert_eq!(config["filter"]["maxResults"], 1000);
    assert_eq!(config["sort"]["supported"], true);
    assert_eq!(config["etag"]["supported"], true);
    assert_eq!(config["changePassword"]["supported"], false);
    assert_eq!(
        config["authenticationSchemes"][0]["type"],
        "oauthbearertoken"
    );
    assert!(
        config["meta"]["location"]
            .as_str()
            .unwrap()
            .ends_with("/scim/v2/acme/ServiceProviderConfig")
    );
}

#[tokio::test]
async fn discovery_is_read_only_refuses_filters_and_needs_the_token() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    for path in ["/ServiceProviderConfig", "/ResourceTypes", "/Schemas"] {
        acme.post(path, &json!({})).await.expect_error(405, None);
        acme.get(&format!(
            "{path}?filter={}",
            crate::support::urlencode("id eq \"x\"")
        ))
        .await
        .expect_error(403, None);
        let anonymous = reqwest::get(acme.url(path)).await.unwrap();
        reply(anonymous).await.expect_error(401, None);
    }
    acme.delete("/Schemas/urn:ietf:params:scim:schemas:core:2.0:User")
        .await
        .expect_error(405, None);
}

#[tokio::test]
async fn resource_types_list_users_and_groups_with_their_schemas() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let list = acme.get("/ResourceTypes").await.expect(200);
    assert_eq!(list["totalResults"], 2);
    assert_eq!(names(&list, "name"), ["User", "Group"]);
    let user = acme.get("/ResourceTypes/User").await.expect(200);
    assert_eq!(user["endpoint"], "/Users");
    assert_eq!(user["schema"], "urn:ietf:params:scim:schemas:core:2.0:User");
    assert_eq!(user["schemaExtensions"][0]["schema"], ENTERPRISE);
    assert_eq!(user["schemaExtensions"][0]["required"], false);
    let group = acme.get("/ResourceTypes/Group").await.expect(200);
    assert_eq!(group["endpoint"], "/Groups");
    acme.get("/ResourceTypes/Device")
        .await
        .expect_error(404, None);
}

#[tokio::test]
async fn schemas_describe_users_the_enterprise_extension_and_groups() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let list = acme.get("/Schemas").await.expect(200);
    assert_eq!(list["totalResults"], 4);
    let ids: Vec<&str> = list["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|schema| schema["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "urn:ietf:params:scim:schemas:core:2.0:User",
            ENTERPRISE,
            "urn:ietf:params:scim:schemas:extension:roster:2.0:User",
            "urn:ietf:params:scim:schemas:core:2.0:Group"
        ]
    );
    let roster = acme
        .get("/Schemas/urn:ietf:params:scim:schemas:extension:roster:2.0:User")
        .await
        .expect(200);
    assert_eq!(roster["attributes"][0]["name"], "handle");
    assert_eq!(roster["attributes"][0]["mutability"], "readOnly");
    let user_type = acme.get("/ResourceTypes/User").await.expect(200);
    assert!(
        user_type["schemaExtensions"]
            .to_string()
            .contains("urn:ietf:params:scim:schemas:extension:roster:2.0:User")
    );
    assert!(!list.to_string().contains("null"), "no nulls (Entra)");
    let user = acme
        .get("/Schemas/urn:ietf:params:scim:schemas:core:2.0:User")
        .await
        .expect(200);
    let user_name = user["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|attribute| attribute["name"] == "userName")
        .unwrap();
    assert_eq!(user_name["type"], "string");
    assert_eq!(user_name["uniqueness"], "server");
    assert_eq!(user_name["caseExact"], false);
    let enterprise = acme
        .get(&format!("/Schemas/{ENTERPRISE}"))
        .await
        .expect(200);
    let manager = enterprise["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|attribute| attribute["name"] == "manager")
        .unwrap();
    assert_eq!(manager["type"], "complex");
    acme.get("/Schemas/urn:example:nope")
        .await
        .expect_error(404, None);
}

// ---- sorting ---------------------------------------------------------------------------------

async fn people(acme: &Tenant) {
    for (user_name, family) in [
        ("bob", Some("Young")),
        ("Alice", None),
        ("carol", Some("adams")),
        ("dave", Some("Baker")),
    ] {
        let mut body = json!({"userName": user_name, "emails": [{"value": format!("{user_name}@acme.example"), "primary": true}]});
        if let Some(family) = family {
            body["name"] = json!({"familyName": family});
        }
        acme.post("/Users", &body).await.expect(201);
    }
}

#[tokio::test]
async fn users_sort_by_any_attribute_in_either_order_and_page() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    people(&acme).await;
    let ascending = acme.get("/Users?sortBy=userName").await.expect(200);
    assert_eq!(
        names(&ascending, "userName"),
        ["Alice", "bob", "carol", "dave"]
    );
    let descending = acme
        .get("/Users?sortBy=USERNAME&sortOrder=descending")
        .await
        .expect(200);
    assert_eq!(
        names(&descending, "userName"),
        ["dave", "carol", "bob", "Alice"]
    );
    // Missing values sort last ascending, first descending.
    let by_family = acme.get("/Users?sortBy=name.familyName").await.expect(200);
    assert_eq!(
        names(&by_family, "userName"),
        ["carol", "dave", "bob", "Alice"]
    );
    let by_family_down = acme
        .get("/Users?sortBy=name.familyName&sortOrder=descending")
        .await
        .expect(200);
    assert_eq!(
        names(&by_family_down, "userName"),
        ["Alice", "bob", "dave", "carol"]
    );
    let page = acme
        .get("/Users?sortBy=userName&startIndex=2&count=2")
        .await
        .expect(200);
    assert_eq!(page["totalResults"], 4);
    assert_eq!(page["startIndex"], 2);
    assert_eq!(names(&page, "userName"), ["bob", "carol"]);
    let filtered = acme
        .get(&format!(
            "/Users?filter={}&sortBy=emails&sortOrder=descending&attributes=userName",
            crate::support::urlencode("userName ne \"bob\"")
        ))
        .await
        .expect(200);
    assert_eq!(names(&filtered, "userName"), ["dave", "carol", "Alice"]);
    assert!(filtered["Resources"][0].get("emails").is_none());
}

#[tokio::test]
async fn groups_sort_by_display_name() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    for name in ["Sales", "engineering", "Admins"] {
        acme.post("/Groups", &json!({"displayName": name}))
            .await
            .expect(201);
    }
    let sorted = acme
        .get("/Groups?sortBy=displayName&excludedAttributes=members")
        .await
        .expect(200);
    assert_eq!(
        names(&sorted, "displayName"),
        ["Admins", "engineering", "Sales"]
    );
}

#[tokio::test]
async fn sorting_by_something_unsortable_is_an_invalid_value() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    for query in [
        "sortBy=nosuch",
        "sortBy=name",
        "sortBy=userName&sortOrder=sideways",
    ] {
        acme.get(&format!("/Users?{query}"))
            .await
            .expect_error(400, Some("invalidValue"));
    }
}

// ---- .search ---------------------------------------------------------------------------------

#[tokio::test]
async fn post_search_on_users_answers_like_the_list_query() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    people(&acme).await;
    let request = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
        "attributes": ["userName", "name.familyName"],
        "filter": "name.familyName pr",
        "sortBy": "userName",
        "sortOrder": "descending",
        "startIndex": 1,
        "count": 2,
    });
    let found = acme.post("/Users/.search", &request).await.expect(200);
    assert_eq!(found["totalResults"], 3);
    assert_eq!(names(&found, "userName"), ["dave", "carol"]);
    assert!(found["Resources"][0].get("emails").is_none());
    let listed = acme
        .get(&format!(
            "/Users?attributes=userName,name.familyName&filter={}&sortBy=userName&sortOrder=descending&count=2",
            crate::support::urlencode("name.familyName pr")
        ))
        .await
        .expect(200);
    assert_eq!(found, listed);
    acme.post("/Users/.search", &json!({"filter": "nosuch eq 1"}))
        .await
        .expect_error(400, Some("invalidFilter"));
    acme.post("/Users/.search", &json!({"count": "many"}))
        .await
        .expect_error(400, Some("invalidValue"));
}

#[tokio::test]
async fn post_search_on_groups_and_at_the_root() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let alice = acme
        .post(
            "/Users",
            &json!({"userName": "alice", "displayName": "Team Alice"}),
        )
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    acme.post(
        "/Groups",
        &json!({"displayName": "Team Blue", "members": [{"value": alice}]}),
    )
    .await
    .expect(201);
    acme.post("/Groups", &json!({"displayName": "Other"}))
        .await
        .expect(201);

    let groups = acme
        .post(
            "/Groups/.search",
            &json!({"filter": "displayName sw \"team\"", "excludedAttributes": "members"}),
        )
        .await
        .expect(200);
    assert_eq!(groups["totalResults"], 1);
    assert!(groups["Resources"][0].get("members").is_none());

    // displayName exists on both types: users come first, then groups, unless sorted.
    let both = acme
        .post("/.search", &json!({"filter": "displayName sw \"Team\""}))
        .await
        .expect(200);
    assert_eq!(both["totalResults"], 2);
    assert_eq!(names(&both, "displayName"), ["Team Alice", "Team Blue"]);
    let sorted = acme
        .post(
            "/.search",
            &json!({"filter": "displayName pr", "sortBy": "displayName", "sortOrder": "descending", "count": 2}),
        )
        .await
        .expect(200);
    assert_eq!(sorted["totalResults"], 3);
    assert_eq!(names(&sorted, "displayName"), ["Team Blue", "Team Alice"]);
    // userName is a User attribute only: groups are left out rather than refused.
    let users_only = acme
        .post("/.search", &json!({"filter": "userName eq \"alice\""}))
        .await
        .expect(200);
    assert_eq!(users_only["totalResults"], 1);
    acme.post("/.search", &json!({"filter": "nosuch pr"}))
        .await
        .expect_error(400, Some("invalidFilter"));
}

// ---- bulk ------------------------------------------------------------------------------------

fn bulk_request(operations: Value) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "Operations": operations,
    })
}

#[tokio::test]
async fn bulk_creates_users_and_a_group_whose_members_reference_them_by_bulk_id() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    // The group comes first and refers to users created later in the request.
    let response = acme
        .post(
            "/Bulk",
            &bulk_request(json!([
                {"method": "POST", "path": "/Groups", "bulkId": "team",
                 "data": {"displayName": "Team", "members": [{"value": "bulkId:alice"}, {"value": "bulkId:bob"}]}},
                {"method": "POST", "path": "/Users", "bulkId": "alice", "data": {"userName": "alice"}},
                {"method": "POST", "path": "/Users", "bulkId": "bob", "data": {"userName": "bob"}},
                {"method": "PATCH", "path": "/Users/bulkId:bob",
                 "data": {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                          "Operations": [{"op": "replace", "path": "active", "value": false}]}},
            ])),
        )
        .await
        .expect(200);
    assert_eq!(
        response["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:BulkResponse"
    );
    let results = response["Operations"].as_array().unwrap();
    assert_eq!(results.len(), 4);
    for result in results {
        assert!(
            result["status"] == "201" || result["status"] == "200",
            "{result}"
        );
    }
    let team = results
        .iter()
        .find(|result| result["bulkId"] == "team")
        .unwrap();
    assert!(team["location"].as_str().unwrap().contains("/Groups/"));
    assert!(team["version"].as_str().unwrap().starts_with("W/"));
    let group = reqwest::Client::new()
        .get(format!(
            "{}?attributes=members.display",
            team["location"].as_str().unwrap()
        ))
        .bearer_auth(&acme.token)
        .send()
        .await
        .unwrap();
    let group = reply(group).await.expect(200);
    let mut members: Vec<&str> = group["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|member| member["display"].as_str().unwrap())
        .collect();
    members.sort();
    assert_eq!(members, ["alice", "bob"]);
    let bob = acme.find("userName eq \"bob\"").await;
    assert_eq!(bob[0]["active"], false);
}

#[tokio::test]
async fn bulk_results_report_each_failure_and_fail_on_errors_stops_early() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let carol = acme.create_user("carol").await;
    let response = acme
        .post(
            "/Bulk",
            &bulk_request(json!([
                {"method": "POST", "path": "/Users", "bulkId": "dup", "data": {"userName": "carol"}},
                {"method": "PUT", "path": format!("/Users/{carol}"), "version": "W/\"99\"",
                 "data": {"userName": "carol"}},
                {"method": "DELETE", "path": "/Users/00000000-0000-7000-8000-000000000000"},
                {"method": "POST", "path": "/Users", "bulkId": "dave", "data": {"userName": "dave"}},
            ])),
        )
        .await
        .expect(200);
    let statuses: Vec<&str> = response["Operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|result| result["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["409", "412", "404", "201"]);
    assert_eq!(
        response["Operations"][0]["response"]["scimType"],
        "uniqueness"
    );

    let stopped = acme
        .post(
            "/Bulk",
            &json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
                "failOnErrors": 1,
                "Operations": [
                    {"method": "POST", "path": "/Users", "bulkId": "again", "data": {"userName": "carol"}},
                    {"method": "POST", "path": "/Users", "bulkId": "erin", "data": {"userName": "erin"}},
                ],
            }),
        )
        .await
        .expect(200);
    assert_eq!(stopped["Operations"].as_array().unwrap().len(), 1);
    assert!(acme.find("userName eq \"erin\"").await.is_empty());
}

#[tokio::test]
async fn bulk_references_that_cannot_resolve_fail_with_409() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let response = acme
        .post(
            "/Bulk",
            &bulk_request(json!([
                {"method": "POST", "path": "/Groups", "bulkId": "a",
                 "data": {"displayName": "A", "members": [{"value": "bulkId:b"}]}},
                {"method": "POST", "path": "/Groups", "bulkId": "b",
                 "data": {"displayName": "B", "members": [{"value": "bulkId:a"}]}},
                {"method": "PATCH", "path": "/Groups/bulkId:nowhere",
                 "data": patch_op(json!([{"op": "replace", "path": "displayName", "value": "X"}]))},
                {"method": "POST", "path": "/Users", "bulkId": "bad", "data": {"userName": "-bad-"}},
                {"method": "POST", "path": "/Groups", "bulkId": "c",
                 "data": {"displayName": "C", "members": [{"value": "bulkId:bad"}]}},
            ])),
        )
        .await
        .expect(200);
    let statuses: Vec<&str> = response["Operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|result| result["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["409", "409", "409", "400", "409"]);
    assert_eq!(acme.get("/Groups").await.expect(200)["totalResults"], 0);
}

#[tokio::test]
async fn bulk_limits_are_enforced_with_413() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let too_many: Vec<Value> = (0..1001)
        .map(|n| json!({"method": "POST", "path": "/Users", "bulkId": format!("u{n}"), "data": {"userName": format!("u{n}")}}))
        .collect();
    acme.post("/Bulk", &bulk_request(Value::Array(too_many)))
        .await
        .expect_error(413, None);
    let huge = "x".repeat(1024 * 1024);
    acme.post(
        "/Bulk",
        &bulk_request(json!([{"method": "POST", "path": "/Users", "bulkId": "big", "data": {"userName": "big", "title": huge}}])),
    )
    .await
    .expect_error(413, None);
    acme.post(
        "/Bulk",
        &bulk_request(
            json!([{"method": "POST", "path": "/Users", "data": {"userName": "nobulkid"}}]),
        ),
    )
    .await
    .expect_error(400, Some("invalidValue"));
    assert!(acme.find("userName eq \"nobulkid\"").await.is_empty());
}

// ---- required attributes -----------------------------------------------------------------------

#[tokio::test]
async fn removing_a_required_attribute_is_refused_and_changes_nothing() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let alice = acme.create_user("alice").await;
    for path in ["active", "userName", "USERNAME"] {
        acme.patch(
            &format!("/Users/{alice}"),
            &patch_op(json!([{"op": "remove", "path": path}])),
        )
        .await
        .expect_error(400, Some("mutability"));
    }
    let user = acme.get(&format!("/Users/{alice}")).await.expect(200);
    assert_eq!(user["active"], true);
    assert_eq!(user["meta"]["version"], "W/\"1\"");
    let group = acme
        .post("/Groups", &json!({"displayName": "Team"}))
        .await
        .expect(201);
    acme.patch(
        &format!("/Groups/{}", group["id"].as_str().unwrap()),
        &patch_op(json!([{"op": "remove", "path": "displayName"}])),
    )
    .await
    .expect_error(400, Some("mutability"));
}
