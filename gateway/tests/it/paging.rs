//! Deep `startIndex` pages (served through the directory view's position index) and RFC 9865
//! cursor paging on `/Users` and `/Groups`, checked against the plain order of ids.

use std::collections::HashSet;

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::*;

/// Creates `count` users named `{prefix}-{n}` through `/Bulk` and returns their ids.
async fn bulk_users(tenant: &Tenant, prefix: &str, count: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for chunk in (0..count).collect::<Vec<_>>().chunks(500) {
        let operations: Vec<Value> = chunk
            .iter()
            .map(|n| {
                json!({"method": "POST", "path": "/Users", "bulkId": format!("u{n}"),
                       "data": {"userName": format!("{prefix}-{n}"),
                                "active": n % 3 != 0}})
            })
            .collect();
        let response = tenant
            .post(
                "/Bulk",
                &json!({
                    "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
                    "Operations": operations,
                }),
            )
            .await
            .expect(200);
        for result in response["Operations"].as_array().unwrap() {
            assert_eq!(result["status"], "201", "{result}");
            let location = result["location"].as_str().unwrap();
            ids.push(location.rsplit('/').next().unwrap().to_owned());
        }
    }
    ids
}

fn ids_of(list: &Value) -> Vec<String> {
    list["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|resource| resource["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Every user id in listing order, one page of 1,000 at a time from the start.
async fn every_id(tenant: &Tenant, path: &str) -> Vec<String> {
    let mut all = Vec::new();
    loop {
        let page = tenant
            .get(&format!("{path}?startIndex={}&count=1000", all.len() + 1))
            .await
            .expect(200);
        let ids = ids_of(&page);
        if ids.is_empty() {
            return all;
        }
        all.extend(ids);
    }
}

/// Deep pages at many offsets equal the same slice of the full listing.
async fn check_pages(tenant: &Tenant, path: &str, expected: &[String]) {
    let starts = [
        1, 2, 255, 256, 257, 300, 511, 512, 513, 700, 1000, 1199, 1200,
    ]
    .into_iter()
    .chain([
        expected.len().saturating_sub(5),
        expected.len(),
        expected.len() + 1,
    ]);
    for start in starts.filter(|start| *start >= 1) {
        let page = tenant
            .get(&format!("{path}?startIndex={start}&count=7"))
            .await
            .expect(200);
        let want: Vec<String> = expected.iter().skip(start - 1).take(7).cloned().collect();
        assert_eq!(ids_of(&page), want, "{path} startIndex={start}");
        assert_eq!(page["totalResults"], expected.len(), "{path}");
        assert_eq!(page["startIndex"], start);
    }
}

/// Pages through a listing with cursors; returns the ids in order.
async fn walk_cursors(tenant: &Tenant, path: &str, query: &str, count: usize) -> Vec<String> {
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = tenant
            .get(&format!("{path}?{query}cursor={cursor}&count={count}"))
            .await
            .expect(200);
        assert!(page.get("startIndex").is_none());
        let ids = ids_of(&page);
        assert!(ids.len() <= count);
        assert_eq!(page["itemsPerPage"], ids.len());
        seen.extend(ids);
        match page.get("nextCursor") {
            Some(next) => cursor = next.as_str().unwrap().to_owned(),
            None => return seen,
        }
    }
}

#[tokio::test]
async fn deep_index_pages_match_the_plain_walk_after_creates_and_deletes() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    // The listing is in id order (creation order for UUIDv7 ids; hyphenated lowercase hex sorts
    // like the bytes).
    let mut ids = bulk_users(&acme, "deep", 1300).await;
    ids.sort();
    let listed = every_id(&acme, "/Users").await;
    assert_eq!(listed, ids);
    check_pages(&acme, "/Users", &ids).await;

    // Deletes before, inside and at the end of the blocks the first deep page built.
    for index in [1250, 900, 600, 400, 257, 256, 10, 0] {
        let id = ids.remove(index);
        acme.delete(&format!("/Users/{id}")).await.expect(204);
    }
    // More creates, appended, and a page read in between.
    ids.extend(bulk_users(&acme, "more", 600).await);
    ids.sort();
    check_pages(&acme, "/Users", &ids).await;
    assert_eq!(every_id(&acme, "/Users").await, ids);

    // After a restart the index is rebuilt from the view.
    let stack = stack.restart().await;
    let acme = stack.tenant_at(&acme);
    check_pages(&acme, "/Users", &ids).await;
}

#[tokio::test]
async fn cursors_return_every_user_once_and_groups_too() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let created = bulk_users(&acme, "walk", 620).await;
    let mut ids = created.clone();
    ids.sort();
    let walked = walk_cursors(&acme, "/Users", "", 100).await;
    assert_eq!(walked, ids);
    let first = acme.get("/Users?cursor&count=100").await.expect(200);
    assert_eq!(first["totalResults"], 620);
    assert_eq!(ids_of(&first), ids[..100]);
    // A page that ends exactly at the last user has no nextCursor.
    assert_eq!(walk_cursors(&acme, "/Users", "", 310).await, ids);
    let last = acme.get("/Users?cursor=&count=620").await.expect(200);
    assert!(last.get("nextCursor").is_none());

    // A filter applies to every page; totalResults is left out when it would need a full scan.
    let mut inactive: Vec<String> = created
        .iter()
        .enumerate()
        .filter(|(n, _)| n % 3 == 0)
        .map(|(_, id)| id.clone())
        .collect();
    inactive.sort();
    let filter = format!("filter={}&", urlencode("active eq false"));
    assert_eq!(walk_cursors(&acme, "/Users", &filter, 50).await, inactive);
    let page = acme
        .get(&format!("/Users?{filter}cursor=&count=5"))
        .await
        .expect(200);
    assert!(page.get("totalResults").is_none());
    // An indexed filter knows its total.
    let one = acme
        .get(&format!(
            "/Users?filter={}&cursor=&count=5",
            urlencode("userName eq \"walk-7\"")
        ))
        .await
        .expect(200);
    assert_eq!(one["totalResults"], 1);
    assert_eq!(ids_of(&one), [created[7].clone()]);
    assert!(one.get("nextCursor").is_none());

    // Writes between pages: a deleted cursor position still resumes, new users come last.
    let page = acme.get("/Users?cursor=&count=10").await.expect(200);
    let next = page["nextCursor"].as_str().unwrap().to_owned();
    acme.delete(&format!("/Users/{}", ids[9])).await.expect(204);
    let extra = acme.create_user("late").await;
    let rest = walk_cursors(&acme, "/Users", "", 1000).await;
    let mut after: Vec<String> = Vec::new();
    let mut cursor = next;
    loop {
        let page = acme
            .get(&format!("/Users?cursor={cursor}&count=200"))
            .await
            .expect(200);
        after.extend(ids_of(&page));
        match page.get("nextCursor") {
            Some(next) => cursor = next.as_str().unwrap().to_owned(),
            None => break,
        }
    }
    let expected: Vec<String> = rest.iter().filter(|id| **id > ids[9]).cloned().collect();
    assert_eq!(after, expected);
    assert!(after.contains(&extra));
    assert_eq!(after.first(), Some(&ids[10]));
    let unique: HashSet<_> = rest.iter().collect();
    assert_eq!(unique.len(), rest.len());

    // POST .search takes the cursor in the body.
    let searched = acme
        .post(
            "/Users/.search",
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                    "cursor": "", "count": 3, "attributes": ["userName"]}),
        )
        .await
        .expect(200);
    assert_eq!(ids_of(&searched), rest[..3]);
    assert!(searched["Resources"][0].get("active").is_none());
    let next = searched["nextCursor"].as_str().unwrap();
    let second = acme
        .post(
            "/Users/.search",
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                    "cursor": next, "count": 3}),
        )
        .await
        .expect(200);
    assert_eq!(ids_of(&second), rest[3..6]);

    // Groups page the same way, and a users cursor means nothing to them.
    let mut groups = Vec::new();
    for n in 0..7 {
        let created = acme
            .post("/Groups", &json!({"displayName": format!("team-{n}")}))
            .await
            .expect(201);
        groups.push(created["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(walk_cursors(&acme, "/Groups", "", 3).await, groups);
    let searched = acme
        .post(
            "/Groups/.search",
            &json!({"cursor": "", "count": 4, "excludedAttributes": ["members"]}),
        )
        .await
        .expect(200);
    assert_eq!(ids_of(&searched), groups[..4]);
    assert_eq!(searched["totalResults"], 7);
    acme.get(&format!("/Groups?cursor={next}&count=3"))
        .await
        .expect_error(400, Some("invalidCursor"));
}

#[tokio::test]
async fn bad_cursors_and_conflicting_paging_are_client_errors() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    acme.create_user("alice").await;
    for cursor in ["nope", "r1u0123", "r1u%20", &"r1u".repeat(12)] {
        let error = acme
            .get(&format!("/Users?cursor={cursor}&count=2"))
            .await
            .expect_error(400, Some("invalidCursor"));
        assert_eq!(error["status"], "400");
    }
    acme.get("/Users?cursor=&startIndex=1")
        .await
        .expect_error(400, Some("invalidValue"));
    acme.get("/Users?cursor=&sortBy=userName")
        .await
        .expect_error(400, Some("invalidValue"));
    acme.get("/Users?cursor=&count=0")
        .await
        .expect_error(400, Some("invalidCount"));
    acme.send(
        Method::POST,
        "/.search",
        Some(&json!({"cursor": "", "count": 2})),
    )
    .await
    .expect_error(400, Some("invalidValue"));
    // Index paging is unchanged and stays the default.
    let list = acme.get("/Users").await.expect(200);
    assert_eq!(list["startIndex"], 1);
    assert!(list.get("nextCursor").is_none());
}

#[tokio::test]
async fn the_service_provider_config_advertises_both_paging_methods() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let config = acme.get("/ServiceProviderConfig").await.expect(200);
    assert_eq!(config["pagination"]["cursor"], true);
    assert_eq!(config["pagination"]["index"], true);
    assert_eq!(config["pagination"]["defaultPaginationMethod"], "index");
    assert_eq!(config["pagination"]["maxPageSize"], 1000);
    assert_eq!(config["pagination"]["defaultPageSize"], 100);
}
