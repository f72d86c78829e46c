//! Dry runs of SCIM writes (`Roster-Dry-Run: true` or `?dryRun=true`): decided like the real
//! request, answered with the would-be response and events, and nothing is committed.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Reply, Stack, Tenant, patch_op, reply};

async fn dry(acme: &Tenant, method: Method, path: &str, body: Option<&Value>) -> Reply {
    let mut request = acme.request(method, path).header("Roster-Dry-Run", "true");
    if let Some(body) = body {
        request = request
            .header("content-type", "application/scim+json")
            .body(body.to_string());
    }
    reply(request.send().await.unwrap()).await
}

fn event_types(document: &Value) -> Vec<&str> {
    document["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["type"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn a_dry_run_create_answers_what_would_happen_and_creates_nothing() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let body = json!({"userName": "alice", "password": "hunter2!", "displayName": "Alice"});
    let answer = dry(&acme, Method::POST, "/Users", Some(&body)).await;
    assert_eq!(answer.header("roster-dry-run"), Some("true"));
    let document = answer.expect(200);
    assert_eq!(
        document["schemas"],
        json!(["urn:roster:api:messages:1.0:DryRun"])
    );
    assert_eq!(document["status"], 201);
    assert_eq!(document["response"]["userName"], "alice");
    assert!(document["location"].as_str().unwrap().contains("/Users/"));
    assert_eq!(document["etag"], "W/\"1\"");
    assert_eq!(event_types(&document), ["user.provisioned"]);
    let event = &document["events"][0];
    assert_eq!(event["actor"]["kind"], "scim_token");
    assert_eq!(event["changes"]["userName"], "alice");
    assert!(
        !document.to_string().contains("hunter2"),
        "no password anywhere: {document}"
    );

    // Nothing was committed: the user does not exist, and the name is still free.
    let list = acme.get("/Users").await.expect(200);
    assert_eq!(list["totalResults"], 0);
    acme.post("/Users", &body).await.expect(201);
}

#[tokio::test]
async fn a_dry_run_is_refused_exactly_like_the_real_request() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    acme.create_user("alice").await;
    let answer = dry(
        &acme,
        Method::POST,
        "/Users",
        Some(&json!({"userName": "ALICE"})),
    )
    .await;
    assert_eq!(answer.header("roster-dry-run"), Some("true"));
    answer.expect_error(409, Some("uniqueness"));
    let answer = dry(
        &acme,
        Method::POST,
        "/Users",
        Some(&json!({"userName": "-x"})),
    )
    .await;
    answer.expect_error(400, Some("invalidValue"));
    // Authentication still applies.
    let stranger = reqwest::Client::new()
        .post(acme.url("/Users"))
        .header("Roster-Dry-Run", "true")
        .bearer_auth("rst_nope_nope")
        .body(json!({"userName": "bob"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(stranger.status().as_u16(), 401);
}

#[tokio::test]
async fn dry_run_patch_put_and_delete_leave_the_user_as_it_was() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let id = acme.create_user("alice").await;
    let path = format!("/Users/{id}");
    let before = acme.get(&path).await.expect(200);

    let deactivate = patch_op(json!([{"op": "replace", "path": "active", "value": false}]));
    let document = acme
        .patch(&format!("{path}?dryRun=true"), &deactivate)
        .await
        .expect(200);
    assert_eq!(document["status"], 200);
    assert_eq!(document["response"]["active"], false);
    assert_eq!(event_types(&document), ["user.deactivated"]);

    let renamed = json!({"userName": "alice-2", "title": "Engineer"});
    let document = dry(&acme, Method::PUT, &path, Some(&renamed))
        .await
        .expect(200);
    assert_eq!(document["response"]["userName"], "alice-2");
    assert_eq!(event_types(&document), ["user.updated"]);

    let document = dry(&acme, Method::DELETE, &path, None).await.expect(200);
    assert_eq!(document["status"], 204);
    assert_eq!(document["response"], Value::Null);
    assert_eq!(event_types(&document), ["user.deleted"]);

    let after = acme.get(&path).await.expect(200);
    assert_eq!(after, before, "nothing changed");
    // The real request still behaves normally afterwards.
    acme.patch(&path, &deactivate).await.expect(200);
    assert_eq!(acme.get(&path).await.expect(200)["active"], false);
}

#[tokio::test]
async fn dry_run_group_writes_show_membership_events_without_applying_them() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let alice = acme.create_user("alice").await;
    let group = json!({"displayName": "Engineering", "members": [{"value": alice}]});
    let document = dry(&acme, Method::POST, "/Groups", Some(&group))
        .await
        .expect(200);
    assert_eq!(document["status"], 201);
    assert_eq!(document["response"]["displayName"], "Engineering");
    assert!(event_types(&document).contains(&"group.created"));
    assert_eq!(acme.get("/Groups").await.expect(200)["totalResults"], 0);

    let created = acme
        .post("/Groups", &json!({"displayName": "Engineering"}))
        .await
        .expect(201);
    let path = format!("/Groups/{}", created["id"].as_str().unwrap());
    let add = patch_op(json!([{"op": "add", "path": "members", "value": [{"value": alice}]}]));
    let document = dry(&acme, Method::PATCH, &path, Some(&add))
        .await
        .expect(200);
    assert_eq!(document["status"], 204);
    assert_eq!(event_types(&document), ["group.members_added"]);
    let rename = patch_op(json!([{"op": "replace", "path": "displayName", "value": "Eng"}]));
    let document = dry(
        &acme,
        Method::PATCH,
        &format!("{path}?attributes=displayName"),
        Some(&rename),
    )
    .await
    .expect(200);
    assert_eq!(document["response"]["displayName"], "Eng");

    let current = acme.get(&path).await.expect(200);
    assert_eq!(current["displayName"], "Engineering");
    assert!(
        current
            .get("members")
            .is_none_or(|members| members == &json!([])),
        "{current}"
    );
}

#[tokio::test]
async fn a_dry_run_bulk_collects_every_operation_s_events() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let bulk = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "Operations": [
            {"method": "POST", "path": "/Users", "bulkId": "a", "data": {"userName": "alice"}},
            {"method": "POST", "path": "/Users", "bulkId": "b", "data": {"userName": "bob"}}
        ]
    });
    let document = dry(&acme, Method::POST, "/Bulk", Some(&bulk))
        .await
        .expect(200);
    assert_eq!(document["status"], 200);
    assert_eq!(
        event_types(&document),
        ["user.provisioned", "user.provisioned"]
    );
    assert_eq!(acme.get("/Users").await.expect(200)["totalResults"], 0);
}
