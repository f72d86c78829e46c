//! Attribute types as `/Schemas` states them (issue 13, finding 6): a number or a boolean where a
//! string is declared is refused with 400 `invalidValue` naming the attribute's path, on POST,
//! PUT, every shape of PATCH and Bulk; the leniencies real IdPs need (README, "Leniencies") are
//! still accepted.

use serde_json::{Value, json};

use crate::support::{Stack, Tenant, assert_invalid_value, patch_op};

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// Each attribute of finding 6 as a POST body carrying `value` there, with the path a refusal
/// names.
fn bodies_with(value: &Value) -> Vec<(Value, String)> {
    let enterprise = |name: &str| format!("{ENTERPRISE}:{name}");
    vec![
        (json!({"displayName": value}), "displayName".into()),
        (json!({"nickName": value}), "nickName".into()),
        (json!({"title": value}), "title".into()),
        (json!({"userType": value}), "userType".into()),
        (json!({"locale": value}), "locale".into()),
        (json!({"timezone": value}), "timezone".into()),
        (json!({"profileUrl": value}), "profileUrl".into()),
        (
            json!({"name": {"givenName": value}}),
            "name.givenName".into(),
        ),
        (
            json!({"emails": [{"value": value, "type": "work"}]}),
            "emails.value".into(),
        ),
        (
            json!({"phoneNumbers": [{"value": value, "type": "work"}]}),
            "phoneNumbers.value".into(),
        ),
        (
            json!({"addresses": [{"streetAddress": value, "type": "work"}]}),
            "addresses.streetAddress".into(),
        ),
        (
            json!({ENTERPRISE: {"employeeNumber": value}}),
            enterprise("employeeNumber"),
        ),
        (
            json!({ENTERPRISE: {"manager": {"value": value}}}),
            format!("{}.value", enterprise("manager")),
        ),
    ]
}

/// Asserts a 400 `invalidValue` SCIM error whose detail says `path` must be a string.
#[track_caller]
fn assert_wrong_type(body: &Value, path: &str, sent: &Value) {
    assert_invalid_value(body);
    let kind = if sent.is_boolean() {
        "a boolean"
    } else {
        "a number"
    };
    assert_eq!(
        body["detail"],
        format!("{path} must be a string, not {kind}"),
        "{body}"
    );
}

async fn alice(tenant: &Tenant) -> String {
    let created = tenant
        .post(
            "/Users",
            &json!({"userName": "alice", "emails": [{"value": "alice@x.io", "type": "work"}]}),
        )
        .await
        .expect(201);
    format!("/Users/{}", created["id"].as_str().unwrap())
}

#[tokio::test]
async fn each_string_attribute_refuses_a_number_and_a_boolean_on_post_naming_its_path() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    for sent in [json!(12345), json!(true)] {
        for (mut body, path) in bodies_with(&sent) {
            body["userName"] = json!("alice");
            let refused = acme.post("/Users", &body).await.expect(400);
            assert_wrong_type(&refused, &path, &sent);
        }
    }
    assert_eq!(
        acme.get("/Users").await.expect(200)["totalResults"],
        0,
        "nothing was stored as sent"
    );
    // The same bodies with strings are accepted.
    for (n, (mut body, _)) in bodies_with(&json!("text")).into_iter().enumerate() {
        body["userName"] = json!(format!("user-{n}"));
        acme.post("/Users", &body).await.expect(201);
    }
}

#[tokio::test]
async fn put_refuses_wrong_types_naming_the_path() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let path = alice(&acme).await;
    for sent in [json!(7), json!(false)] {
        for (mut body, attribute) in bodies_with(&sent) {
            body["userName"] = json!("alice");
            let refused = acme.put(&path, &body).await.expect(400);
            assert_wrong_type(&refused, &attribute, &sent);
        }
    }
}

#[tokio::test]
async fn every_shape_of_patch_refuses_wrong_types_naming_the_path() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let path = alice(&acme).await;
    let manager = format!("{ENTERPRISE}:manager.value");
    let employee_number = format!("{ENTERPRISE}:employeeNumber");
    for sent in [json!(42), json!(true)] {
        let cases = [
            (
                json!([{"op": "replace", "path": "displayName", "value": sent}]),
                "displayName",
            ),
            (
                json!([{"op": "Add", "path": "nickName", "value": sent}]),
                "nickName",
            ),
            (
                json!([{"op": "replace", "path": "name.givenName", "value": sent}]),
                "name.givenName",
            ),
            (
                json!([{"op": "Replace", "path": "emails[type eq \"work\"].value", "value": sent}]),
                "emails.value",
            ),
            (
                json!([{"op": "Add", "path": "phoneNumbers[type eq \"mobile\"].value", "value": sent}]),
                "phoneNumbers.value",
            ),
            (
                json!([{"op": "Add", "path": "addresses[type eq \"work\"].streetAddress", "value": sent}]),
                "addresses.streetAddress",
            ),
            (
                json!([{"op": "Replace", "path": format!("{ENTERPRISE}:employeeNumber"), "value": sent}]),
                employee_number.as_str(),
            ),
            (
                json!([{"op": "replace", "value": {"title": "CTO", "userType": sent}}]),
                "userType",
            ),
            (
                json!([{"op": "replace", "value": {format!("{ENTERPRISE}:employeeNumber"): sent}}]),
                employee_number.as_str(),
            ),
            (
                json!([{"op": "add", "path": "manager", "value": {"value": sent}}]),
                manager.as_str(),
            ),
            (
                json!([{"op": "add", "value": {"locale": sent, "timezone": "Europe/Paris"}}]),
                "locale",
            ),
            (
                json!([{"op": "add", "path": "emails", "value": [{"value": sent}]}]),
                "emails.value",
            ),
        ];
        for (operations, attribute) in cases {
            let refused = acme.patch(&path, &patch_op(operations)).await.expect(400);
            assert_wrong_type(&refused, attribute, &sent);
        }
    }
    let unchanged = acme.get(&path).await.expect(200);
    assert_eq!(
        unchanged["emails"],
        json!([{"value": "alice@x.io", "type": "work"}])
    );
    assert!(unchanged.get("title").is_none());
}

#[tokio::test]
async fn bulk_operations_refuse_wrong_types_naming_the_path() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let path = alice(&acme).await;
    let response = acme
        .post(
            "/Bulk",
            &json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
                "Operations": [
                    {"method": "POST", "path": "/Users", "bulkId": "b",
                     "data": {"userName": "bob", "title": 3}},
                    {"method": "PATCH", "path": path,
                     "data": {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                              "Operations": [{"op": "replace", "path": "timezone", "value": false}]}},
                    {"method": "PUT", "path": path,
                     "data": {"userName": "alice", "profileUrl": 1}},
                    {"method": "POST", "path": "/Users", "bulkId": "c",
                     "data": {"userName": "carol", "title": "CTO"}}
                ]
            }),
        )
        .await
        .expect(200);
    let results = response["Operations"].as_array().unwrap();
    for (result, (attribute, sent)) in results.iter().zip([
        ("title", json!(3)),
        ("timezone", json!(false)),
        ("profileUrl", json!(1)),
    ]) {
        assert_eq!(result["status"], "400", "{result}");
        assert_wrong_type(&result["response"], attribute, &sent);
    }
    assert_eq!(results[3]["status"], "201", "{}", results[3]);
}

#[tokio::test]
async fn group_attributes_are_typed_too() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    for (body, detail) in [
        (
            json!({"displayName": 5}),
            "displayName must be a string, not a number",
        ),
        (
            json!({"displayName": true}),
            "displayName must be a string, not a boolean",
        ),
        (
            json!({"displayName": "Eng", "externalId": 9}),
            "externalId must be a string, not a number",
        ),
    ] {
        let refused = acme
            .post("/Groups", &body)
            .await
            .expect_error(400, Some("invalidValue"));
        assert_eq!(refused["detail"], detail);
    }
    let created = acme
        .post("/Groups", &json!({"displayName": "Eng"}))
        .await
        .expect(201);
    let path = format!("/Groups/{}", created["id"].as_str().unwrap());
    let refused = acme
        .patch(
            &path,
            &patch_op(json!([{"op": "replace", "path": "displayName", "value": 12}])),
        )
        .await
        .expect_error(400, Some("invalidValue"));
    assert_eq!(
        refused["detail"],
        "displayName must be a string, not a number"
    );
}

/// The leniencies README lists, each still accepted and stored in its canonical form.
#[tokio::test]
async fn the_documented_leniencies_are_still_accepted() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    // Entra and OneLogin: booleans as "True"/"False" strings; a bare email address; manager as a
    // bare id (POST), and Microsoft's null attributes.
    let created = acme
        .post(
            "/Users",
            &json!({"userName": "alice", "active": "True", "emails": "alice@x.io",
                    "phoneNumbers": [{"value": "+1 555 0100", "primary": "False"}],
                    "addresses": null,
                    ENTERPRISE: {"manager": "m-1", "employeeNumber": "0042"}}),
        )
        .await
        .expect(201);
    assert_eq!(created["active"], true);
    assert_eq!(created["emails"], json!([{"value": "alice@x.io"}]));
    assert_eq!(created["phoneNumbers"][0]["primary"], false);
    assert_eq!(created[ENTERPRISE]["manager"], json!({"value": "m-1"}));
    assert_eq!(created[ENTERPRISE]["employeeNumber"], "0042");
    let path = format!("/Users/{}", created["id"].as_str().unwrap());
    // Entra's manager as a one-element array of references, then as a single object.
    for manager in [
        json!([{"$ref": null, "value": "m-2"}]),
        json!({"value": "m-3"}),
    ] {
        let expected = if manager.is_array() { "m-2" } else { "m-3" };
        let patched = acme
            .patch(
                &path,
                &patch_op(json!([{"op": "Add", "path": format!("{ENTERPRISE}:manager"), "value": manager}])),
            )
            .await
            .expect(200);
        assert_eq!(patched[ENTERPRISE]["manager"], json!({"value": expected}));
    }
    // Entra's default mode: active as the string "False", op capitalised.
    let off = acme
        .patch(
            &path,
            &patch_op(json!([{"op": "Replace", "path": "active", "value": "False"}])),
        )
        .await
        .expect(200);
    assert_eq!(off["active"], false);
    // Okta's custom apps PUT the whole user back, with "active" as a string.
    let mut whole = acme.get(&path).await.expect(200);
    whole["active"] = json!("true");
    whole["title"] = json!("CTO");
    let put = acme.put(&path, &whole).await.expect(200);
    assert_eq!(put["active"], true);
    assert_eq!(put["title"], "CTO");
    // Attributes outside the schemas are stored and echoed as sent, whatever their type.
    let custom = acme
        .patch(
            &path,
            &patch_op(json!([{"op": "add", "value": {"adreses": [{"x": 1}], "flag": true}}])),
        )
        .await
        .expect(200);
    assert_eq!(custom["adreses"], json!([{"x": 1}]));
    assert_eq!(custom["flag"], true);
}
