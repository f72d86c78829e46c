//! Size limits inside a resource (issue 13, finding 3; `engine::domain::limits`): every string
//! value, every multi-valued attribute, the whole user or group and the attributes outside the
//! schemas, on POST, PUT, PATCH (every shape of operation, and a PATCH whose result exceeds a
//! limit), Bulk and just-in-time provisioning; group members are edges and are not limited so.

use roster_proto::v1 as pb;
use roster_proto::v1::directory_client::DirectoryClient;
use serde_json::{Value, json};
use tonic::Code;

use crate::support::{Stack, Tenant, assert_invalid_value, patch_op};

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// Asserts a 400 `invalidValue` SCIM error whose detail starts with `detail`; returns the body.
#[track_caller]
fn assert_refused(body: Value, detail: &str) -> Value {
    assert_invalid_value(&body);
    let text = body["detail"].as_str().unwrap_or_default();
    assert!(
        text.starts_with(detail),
        "detail {text:?} should start with {detail:?}"
    );
    body
}

async fn user_count(tenant: &Tenant) -> u64 {
    tenant.get("/Users?count=0").await.expect(200)["totalResults"]
        .as_u64()
        .unwrap()
}

/// Creates `count` users `{prefix}-{n}` through one Bulk request; returns their ids.
async fn bulk_users(tenant: &Tenant, prefix: &str, count: usize) -> Vec<String> {
    let operations: Vec<Value> = (0..count)
        .map(|n| {
            json!({"method": "POST", "path": "/Users", "bulkId": format!("u{n}"),
                   "data": {"userName": format!("{prefix}-{n}")}})
        })
        .collect();
    let response = tenant
        .post(
            "/Bulk",
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
                    "Operations": operations}),
        )
        .await
        .expect(200);
    response["Operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|result| {
            assert_eq!(result["status"], "201", "{result}");
            let location = result["location"].as_str().unwrap();
            location.rsplit('/').next().unwrap().to_owned()
        })
        .collect()
}

#[tokio::test]
async fn a_million_character_display_name_is_refused_naming_the_attribute_and_the_limit() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let body = json!({"userName": "alice", "displayName": "x".repeat(1_000_000)});
    let refused = acme
        .post("/Users", &body)
        .await
        .expect_error(400, Some("invalidValue"));
    assert_refused(
        refused,
        "displayName is 1000000 bytes long; a string value may have at most 4096 bytes",
    );
    assert_eq!(user_count(&acme).await, 0, "nothing was created");
    // Exactly at the limit is accepted.
    let body = json!({"userName": "alice", "displayName": "x".repeat(4096)});
    acme.post("/Users", &body).await.expect(201);
}

#[tokio::test]
async fn a_user_with_100000_emails_is_refused_naming_the_attribute_and_the_limit() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    // Bare addresses (a leniency) keep the body under the 1 MiB request limit.
    let emails: Vec<String> = (0..100_000).map(|n| format!("e{n}")).collect();
    let body = json!({"userName": "alice", "emails": emails});
    let refused = acme.post("/Users", &body).await.expect(400);
    assert_refused(
        refused,
        "emails has 100000 values; a multi-valued attribute may have at most 100 values",
    );
    assert_eq!(user_count(&acme).await, 0);
    let emails: Vec<Value> = (0..100)
        .map(|n| json!({"value": format!("alice{n}@x.io")}))
        .collect();
    acme.post("/Users", &json!({"userName": "alice", "emails": emails}))
        .await
        .expect(201);
}

#[tokio::test]
async fn put_and_every_shape_of_patch_are_held_to_the_limits() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let emails: Vec<Value> = (0..100)
        .map(|n| json!({"value": format!("alice{n}@x.io"), "type": if n == 0 { "work" } else { "other" }}))
        .collect();
    let created = acme
        .post(
            "/Users",
            &json!({"userName": "alice", "title": "Engineer", "emails": emails}),
        )
        .await
        .expect(201);
    let path = format!("/Users/{}", created["id"].as_str().unwrap());
    let long = "x".repeat(5000);

    let put = json!({"userName": "alice", "title": long});
    assert_refused(
        acme.put(&path, &put).await.expect(400),
        "title is 5000 bytes long",
    );

    let cases = [
        (
            json!([{"op": "replace", "path": "displayName", "value": long}]),
            "displayName is 5000 bytes long",
        ),
        (
            json!([{"op": "Replace", "path": "emails[type eq \"work\"].value", "value": long}]),
            "emails.value is 5000 bytes long",
        ),
        (
            json!([{"op": "replace", "value": {"name.givenName": long}}]),
            "name.givenName is 5000 bytes long",
        ),
        (
            json!([{"op": "add", "path": format!("{ENTERPRISE}:employeeNumber"), "value": long}]),
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber is 5000 bytes long",
        ),
        (
            json!([{"op": "add", "path": "manager", "value": long}]),
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value is 5000 bytes long",
        ),
        // The result exceeds the limit: 100 emails are stored, one more is added.
        (
            json!([{"op": "add", "path": "emails", "value": [{"value": "one-more@x.io"}]}]),
            "emails has 101 values; a multi-valued attribute may have at most 100 values",
        ),
        (
            json!([{"op": "add", "path": "emails[type eq \"home\"].value", "value": "home@x.io"}]),
            "emails has 101 values",
        ),
        // Each value fits, the user does not.
        (
            json!([{"op": "replace", "value": {
                "nickName": "n".repeat(4000), "userType": "u".repeat(4000),
                "locale": "l".repeat(4000), "timezone": "t".repeat(4000)}}]),
            "the user is ",
        ),
    ];
    for (operations, detail) in cases {
        let refused = acme.patch(&path, &patch_op(operations.clone())).await;
        let body = refused.expect_error(400, Some("invalidValue"));
        assert_refused(body, detail);
    }
    let unchanged = acme.get(&path).await.expect(200);
    assert_eq!(unchanged["title"], "Engineer");
    assert_eq!(unchanged["emails"].as_array().unwrap().len(), 100);
    assert!(unchanged.get("displayName").is_none());
    // A PATCH that keeps the user within its limits is accepted.
    acme.patch(
        &path,
        &patch_op(
            json!([{"op": "remove", "path": "emails[value eq \"alice99@x.io\"]"},
                          {"op": "add", "path": "emails", "value": [{"value": "new@x.io"}]},
                          {"op": "replace", "path": "active", "value": "False"}]),
        ),
    )
    .await
    .expect(200);
}

#[tokio::test]
async fn bulk_operations_are_held_to_the_same_limits() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let bob = acme.create_user("bob").await;
    let too_many: Vec<Value> = (0..101)
        .map(|n| json!({"value": format!("bob{n}@x.io")}))
        .collect();
    let response = acme
        .post(
            "/Bulk",
            &json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
                "Operations": [
                    {"method": "POST", "path": "/Users", "bulkId": "a",
                     "data": {"userName": "alice", "displayName": "x".repeat(100_000)}},
                    {"method": "PATCH", "path": format!("/Users/{bob}"),
                     "data": {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                              "Operations": [{"op": "add", "path": "emails", "value": too_many}]}},
                    {"method": "PUT", "path": format!("/Users/{bob}"),
                     "data": {"userName": "bob", "title": "t".repeat(4097)}},
                    {"method": "POST", "path": "/Groups", "bulkId": "g",
                     "data": {"displayName": "g".repeat(1025)}},
                    {"method": "POST", "path": "/Users", "bulkId": "c",
                     "data": {"userName": "carol", "displayName": "Carol"}}
                ]
            }),
        )
        .await
        .expect(200);
    let results = response["Operations"].as_array().unwrap();
    let details = [
        "displayName is 100000 bytes long",
        "emails has 101 values",
        "title is 4097 bytes long",
        "displayName is 1025 bytes long; a group's displayName may have at most 1024 bytes",
    ];
    for (result, detail) in results.iter().zip(details) {
        assert_eq!(result["status"], "400", "{result}");
        assert_refused(result["response"].clone(), detail);
    }
    assert_eq!(results[4]["status"], "201", "{}", results[4]);
    assert_eq!(user_count(&acme).await, 2);
}

#[tokio::test]
async fn group_attributes_are_limited_but_members_are_not_limited_like_values() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let users = bulk_users(&acme, "member", 230).await;
    let refused = acme
        .post("/Groups", &json!({"displayName": "g".repeat(2000)}))
        .await
        .expect(400);
    assert_refused(
        refused,
        "displayName is 2000 bytes long; a group's displayName may have at most 1024 bytes",
    );
    let refused = acme
        .post(
            "/Groups",
            &json!({"displayName": "Eng", "description": "d".repeat(5000)}),
        )
        .await
        .expect(400);
    assert_refused(refused, "description is 5000 bytes long");

    // 150 members at creation, 80 more by PATCH, 230 by PUT: members are edges.
    let members =
        |ids: &[String]| -> Vec<Value> { ids.iter().map(|id| json!({"value": id})).collect() };
    let created = acme
        .post(
            "/Groups",
            &json!({"displayName": "Everyone", "members": members(&users[..150])}),
        )
        .await
        .expect(201);
    let path = format!("/Groups/{}", created["id"].as_str().unwrap());
    acme.patch(
        &path,
        &patch_op(json!([{"op": "add", "path": "members", "value": members(&users[150..])}])),
    )
    .await
    .expect(204);
    let fetched = acme.get(&path).await.expect(200);
    assert_eq!(fetched["members"].as_array().unwrap().len(), 230);
    acme.put(
        &path,
        &json!({"displayName": "Everyone", "members": members(&users[..])}),
    )
    .await
    .expect(200);

    // The group's own attributes stay limited, whatever the members.
    let refused = acme
        .patch(
            &path,
            &patch_op(json!([{"op": "replace", "path": "displayName", "value": "e".repeat(1025)}])),
        )
        .await
        .expect(400);
    assert_refused(refused, "displayName is 1025 bytes long");
    let tags: Vec<String> = (0..101).map(|n| format!("t{n}")).collect();
    let refused = acme
        .patch(
            &path,
            &patch_op(json!([{"op": "add", "value": {"tags": tags}},
                             {"op": "add", "path": "members", "value": members(&users[..1])}])),
        )
        .await
        .expect(400);
    assert_refused(refused, "tags has 101 values");
    assert_eq!(acme.get(&path).await.expect(200)["displayName"], "Everyone");
}

#[tokio::test]
async fn attributes_outside_the_schemas_are_limited_in_number_and_size() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let mut body = json!({"userName": "alice"});
    for n in 0..51 {
        body[format!("urn:ietf:params:scim:schemas:extension:Custom:2.0:User:attribute{n}")] =
            json!("value");
    }
    let refused = acme.post("/Users", &body).await.expect(400);
    assert_refused(refused, "the user has 51 attributes outside its schemas (");
    body.as_object_mut()
        .unwrap()
        .remove("urn:ietf:params:scim:schemas:extension:Custom:2.0:User:attribute50");
    let created = acme.post("/Users", &body).await.expect(201);
    let path = format!("/Users/{}", created["id"].as_str().unwrap());
    // One more by PATCH: the result exceeds the limit.
    let refused = acme
        .patch(
            &path,
            &patch_op(json!([{"op": "add", "path": "adreses", "value": "kept as sent"}])),
        )
        .await
        .expect(400);
    assert_refused(refused, "the user has 51 attributes outside its schemas");
    // Their size together.
    let refused = acme
        .post(
            "/Users",
            &json!({"userName": "bob", "note1": "n".repeat(4000), "note2": "n".repeat(4000),
                    "note3": "n".repeat(1000)}),
        )
        .await
        .expect(400);
    assert_refused(
        refused,
        "the user's attributes outside its schemas (note1, note2, note3) are 9",
    );
}

#[tokio::test]
async fn a_just_in_time_login_is_held_to_the_limits() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    // A SCIM user just under the size limit whose externalId is the login's subject.
    let roles: Vec<Value> = (0..4)
        .map(|n| json!({"value": format!("{n}{}", "r".repeat(3950))}))
        .collect();
    acme.post(
        "/Users",
        &json!({"userName": "alice", "externalId": "00u-alice", "roles": roles}),
    )
    .await
    .expect(201);
    let mut directory = DirectoryClient::connect(format!("http://{}", stack.running.grpc_addr))
        .await
        .unwrap();
    let login = |given: &str| {
        let mut request = tonic::Request::new(pb::JitProvisionRequest {
            tenant: "acme".into(),
            subject: "00u-alice".into(),
            email: "alice@acme.example".into(),
            given_name: given.into(),
            family_name: "F".repeat(256),
            claims_json: "{}".into(),
        });
        request.metadata_mut().insert(
            "authorization",
            format!("Bearer {}", acme.token).parse().unwrap(),
        );
        request
    };
    let refused = directory
        .jit_provision(login(&"G".repeat(256)))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert!(
        refused.message().starts_with("the user is ")
            && refused
                .message()
                .contains("a user may hold at most 16384 bytes"),
        "{}",
        refused.message()
    );
    let alice = acme.find("userName eq \"alice\"").await;
    assert!(alice[0].get("name").is_none(), "nothing was written");
    // A login that fits is provisioned as usual.
    let mut fits = login("Alice");
    fits.get_mut().family_name = "Smith".into();
    let answered = directory.jit_provision(fits).await.unwrap().into_inner();
    assert!(!answered.created);
}

#[tokio::test]
async fn schemas_advertise_the_limits() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let user = acme
        .get("/Schemas/urn:ietf:params:scim:schemas:core:2.0:User")
        .await
        .expect(200);
    let attribute = |name: &str| -> String {
        user["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|attribute| attribute["name"] == name)
            .unwrap()["description"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert!(attribute("displayName").contains("At most 4096 bytes"));
    assert!(attribute("emails").contains("At most 100 values"));
    assert!(
        user["description"]
            .as_str()
            .unwrap()
            .contains("at most 16384 bytes of JSON")
    );
    let group = acme
        .get("/Schemas/urn:ietf:params:scim:schemas:core:2.0:Group")
        .await
        .expect(200);
    assert!(
        group
            .to_string()
            .contains("members are stored one by one as edges")
    );
}
