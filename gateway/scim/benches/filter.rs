//! Micro-benchmarks of the SCIM request language, per call on one realistic (Entra-shaped) user:
//!
//! - `filter/{parse,validate,matches}`: `filter::parse`, `filter::validate` against
//!   `USER_RESOURCE` and `filter::matches` for three filters: `userName eq`, Entra's
//!   `emails[type eq "work"].value eq`, and an `and`/`or`/`not` composite;
//! - `patch/{parse_request,apply}`: `patch::parse_request` and `patch::apply` of Entra's two PATCH
//!   shapes (filtered paths, and the path-less `aadOptscim062020` form). `apply` works on a copy
//!   of the document made outside the timing;
//! - `patch/add_many_emails`: one `add` of 1,000 and 8,000 emails (deduplication stays linear).
//!
//! Run: `cargo bench -p roster-scim --bench filter` (add `-- patch` to run only the PATCH
//! cases).

// Benchmark code is test code: a failed unwrap is a broken benchmark, never a production path.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group, criterion_main};
use roster_scim::filter;
use roster_scim::patch;
use roster_scim::schema::USER_RESOURCE;
use serde_json::{Value, json};

const FILTERS: [(&str, &str); 3] = [
    ("user_name_eq", r#"userName eq "ada-lovelace""#),
    (
        "entra_emails_work_value_eq",
        r#"emails[type eq "work"].value eq "ada.lovelace@contoso.com""#,
    ),
    (
        "composite_and_or_not",
        r#"(name.familyName co "a" or emails.value ew ".com") and not (active eq false)"#,
    ),
];

/// A user as the gateway renders it, with what Entra typically provisions.
fn user() -> Value {
    json!({
        "schemas": [
            "urn:ietf:params:scim:schemas:core:2.0:User",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
        ],
        "id": "0190f3a2-7c1e-7b3d-9a4f-2b6c8d1e5f70",
        "externalId": "5d3f1c2a-8b7e-4f6d-9c1a-0e2b4d6f8a1c",
        "userName": "ada-lovelace",
        "displayName": "Ada Lovelace",
        "active": true,
        "title": "Principal Engineer",
        "preferredLanguage": "en-GB",
        "name": {
            "formatted": "Ada Lovelace",
            "familyName": "Lovelace",
            "givenName": "Ada"
        },
        "emails": [
            {"value": "ada@home.example.org", "type": "home"},
            {"value": "ada.lovelace@contoso.com", "type": "work", "primary": true}
        ],
        "phoneNumbers": [{"value": "+44 20 7946 0000", "type": "work"}],
        "addresses": [{"type": "work", "locality": "London", "country": "GB", "primary": true}],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
            "employeeNumber": "1815",
            "department": "Analytical Engines",
            "manager": {"value": "0190f3a2-7c1e-7b3d-9a4f-000000000001"}
        },
        "groups": [],
        "meta": {
            "resourceType": "User",
            "created": "2024-01-02T03:04:05Z",
            "lastModified": "2024-02-02T03:04:05.5Z",
            "version": "W/\"3\"",
            "location": "https://roster.example/scim/v2/contoso/Users/0190f3a2-7c1e-7b3d-9a4f-2b6c8d1e5f70"
        }
    })
}

fn patch_op(operations: Value) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": operations})
}

/// Entra's default PATCH (filtered and dotted paths) and its path-less flag mode.
fn patches() -> [(&'static str, Value); 2] {
    [
        (
            "entra_paths",
            patch_op(json!([
                {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "ada@contoso.com"},
                {"op": "Replace", "path": "name.familyName", "value": "King"},
                {"op": "Replace", "path": "title", "value": "Distinguished Engineer"},
                {"op": "Replace", "path": "active", "value": "False"}
            ])),
        ),
        (
            "entra_pathless",
            patch_op(json!([{"op": "replace", "value": {
                "displayName": "Ada King",
                "name.givenName": "Augusta Ada",
                "name.familyName": "King",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department": "Engines"
            }}])),
        ),
    ]
}

fn filters(c: &mut Criterion) {
    let user = user();
    let mut group = c.benchmark_group("filter/parse");
    for (name, text) in FILTERS {
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| filter::parse(black_box(text)).unwrap())
        });
    }
    group.finish();

    let parsed: Vec<(&str, filter::Filter)> = FILTERS
        .iter()
        .map(|(name, text)| (*name, filter::parse(text).unwrap()))
        .collect();
    let mut group = c.benchmark_group("filter/validate");
    for (name, parsed) in &parsed {
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| filter::validate(black_box(parsed), &USER_RESOURCE).unwrap())
        });
    }
    group.finish();

    let mut group = c.benchmark_group("filter/matches");
    for (name, parsed) in &parsed {
        filter::validate(parsed, &USER_RESOURCE).unwrap();
        assert!(filter::matches(parsed, &user, &USER_RESOURCE), "{name}");
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| filter::matches(black_box(parsed), black_box(&user), &USER_RESOURCE))
        });
    }
    group.finish();
}

fn patches_bench(c: &mut Criterion) {
    let Value::Object(document) = user() else {
        unreachable!()
    };
    let patches = patches();
    let mut group = c.benchmark_group("patch/parse_request");
    for (name, body) in &patches {
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| patch::parse_request(black_box(body), &USER_RESOURCE).unwrap())
        });
    }
    group.finish();

    let mut group = c.benchmark_group("patch/apply");
    for (name, body) in &patches {
        let operations = patch::parse_request(body, &USER_RESOURCE).unwrap();
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter_batched(
                || document.clone(),
                |mut document| {
                    patch::apply(&mut document, black_box(&operations), &USER_RESOURCE).unwrap();
                    document
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();

    // One `add` of n emails: linear in n (deduplication by identity hash, not pairwise).
    let mut group = c.benchmark_group("patch/add_many_emails");
    for count in [1_000usize, 8_000] {
        let emails: Vec<Value> = (0..count)
            .map(|i| json!({"value": format!("user{i}@contoso.com"), "type": "other"}))
            .collect();
        let body = patch_op(json!([{"op": "add", "path": "emails", "value": emails}]));
        let operations = patch::parse_request(&body, &USER_RESOURCE).unwrap();
        group.throughput(criterion::Throughput::Elements(count as u64));
        group.bench_function(BenchmarkId::from_parameter(count), |b| {
            b.iter_batched(
                || document.clone(),
                |mut document| {
                    patch::apply(&mut document, black_box(&operations), &USER_RESOURCE).unwrap();
                    document
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(1))
        .without_plots();
    targets = filters, patches_bench
}
criterion_main!(benches);
