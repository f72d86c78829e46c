//! Drift reports: `roster drift` (the real binary) against crafted IdP exports, JSON and CSV,
//! with every kind of difference; the paged `ListGroups` it reads through; and rejected SCIM
//! requests counted per tenant and scimType.

use std::path::Path;

use roster_proto::v1 as pb;
use serde_json::{Value, json};

use crate::support::{Stack, Tenant};

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const LIST: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";

/// roster ids of the tenant `acme` the exports are compared with.
struct Acme {
    alice: String,
    bob: String,
    carol: String,
    engineering: String,
    sales: String,
    legacy: String,
}

/// alice (e-alice, full profile), bob (e-bob), carol (no externalId); Engineering (g-eng: alice,
/// bob), Sales (carol), Legacy (g-legacy: bob).
async fn acme(tenant: &Tenant) -> Acme {
    let mut ids = Vec::new();
    for user in [
        json!({"schemas": [USER], "userName": "alice", "externalId": "e-alice",
               "displayName": "Alice Liddell", "name": {"givenName": "Alice", "familyName": "Liddell"},
               "emails": [{"value": "alice@acme.io", "type": "work", "primary": true}]}),
        json!({"schemas": [USER], "userName": "bob", "externalId": "e-bob", "displayName": "Bob Builder"}),
        json!({"schemas": [USER], "userName": "carol", "displayName": "Carol"}),
    ] {
        let created = tenant.post("/Users", &user).await.expect(201);
        ids.push(created["id"].as_str().unwrap().to_owned());
    }
    let (alice, bob, carol) = (ids[0].clone(), ids[1].clone(), ids[2].clone());
    let mut groups = Vec::new();
    for group in [
        json!({"schemas": [GROUP], "displayName": "Engineering", "externalId": "g-eng",
               "members": [{"value": alice}, {"value": bob}]}),
        json!({"schemas": [GROUP], "displayName": "Sales", "members": [{"value": carol}]}),
        json!({"schemas": [GROUP], "displayName": "Legacy", "externalId": "g-legacy",
               "members": [{"value": bob}]}),
    ] {
        let created = tenant.post("/Groups", &group).await.expect(201);
        groups.push(created["id"].as_str().unwrap().to_owned());
    }
    Acme {
        alice,
        bob,
        carol,
        engineering: groups[0].clone(),
        sales: groups[1].clone(),
        legacy: groups[2].clone(),
    }
}

/// What the IdP would export for `acme` exactly (its own ids; userName case may differ).
fn matching_export() -> Value {
    json!({
        "Users": {"schemas": [LIST], "totalResults": 3, "Resources": [
            {"schemas": [USER], "id": "idp-1", "userName": "alice", "externalId": "e-alice", "active": true,
             "displayName": "Alice Liddell", "name": {"givenName": "Alice", "familyName": "Liddell"},
             "emails": [{"value": "alice@acme.io", "type": "work", "primary": true}],
             "meta": {"resourceType": "User"}},
            {"schemas": [USER], "id": "idp-2", "userName": "bob", "externalId": "e-bob", "active": true,
             "displayName": "Bob Builder"},
            {"schemas": [USER], "id": "idp-3", "userName": "Carol", "active": "True", "displayName": "Carol"}
        ]},
        "Groups": {"schemas": [LIST], "totalResults": 3, "Resources": [
            {"schemas": [GROUP], "id": "gg-1", "displayName": "Engineering", "externalId": "g-eng",
             "members": [{"value": "idp-1"}, {"value": "idp-2"}]},
            {"schemas": [GROUP], "id": "gg-2", "displayName": "sales", "members": [{"value": "idp-3"}]},
            {"schemas": [GROUP], "id": "gg-3", "displayName": "Legacy", "externalId": "g-legacy",
             "members": [{"value": "idp-2", "display": "Bob Builder"}]}
        ]}
    })
}

/// Every kind of difference, as two concatenated ListResponse pages (as Entra and Okta dumps
/// are): alice deactivated with a new family name and email; bob's externalId changed; dave
/// only in the IdP; carol only in roster; Engineering renamed Platform (bob left, dave joined);
/// Legacy lost bob and gained alice; Support only in the IdP; Sales only in roster.
fn drifted_export() -> Value {
    json!([
        {"schemas": [LIST], "totalResults": 6, "startIndex": 1, "itemsPerPage": 3, "Resources": [
            {"schemas": [USER], "id": "idp-1", "userName": "alice", "externalId": "e-alice", "active": false,
             "displayName": "Alice Liddell", "name": {"givenName": "Alice", "familyName": "Pleasance"},
             "emails": [{"value": "alice@wonder.land", "primary": true}]},
            {"schemas": [USER], "id": "idp-2", "userName": "bob", "externalId": "e-bob-2", "active": true,
             "displayName": "Bob Builder"},
            {"schemas": [USER], "id": "idp-4", "userName": "dave", "externalId": "e-dave", "active": true,
             "displayName": "Dave"}
        ]},
        {"schemas": [LIST], "totalResults": 6, "startIndex": 4, "itemsPerPage": 3, "Resources": [
            {"schemas": [GROUP], "id": "gg-1", "displayName": "Platform", "externalId": "g-eng",
             "members": [{"value": "idp-1"}, {"value": "idp-4"}]},
            {"schemas": [GROUP], "id": "gg-3", "displayName": "Legacy", "externalId": "g-legacy",
             "members": [{"value": "idp-1"}]},
            {"schemas": [GROUP], "id": "gg-9", "displayName": "Support", "members": [{"value": "idp-4"}]}
        ]}
    ])
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

async fn drift(stack: &Stack, tenant: &str, file: &Path, extra: &[&str]) -> Run {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_roster"))
        .args(["drift", tenant, "--from"])
        .arg(file)
        .args(extra)
        .arg("--grpc")
        .arg(stack.running.grpc_addr.to_string())
        .arg("--data-dir")
        .arg(stack.data_dir())
        .env_remove("ROSTER_ADMIN_TOKEN")
        .output()
        .await
        .unwrap();
    Run {
        code: output.status.code().unwrap(),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

/// Runs `roster drift --format json` (paging two rows at a time) and returns the report.
async fn json_report(stack: &Stack, file: &Path, code: i32) -> Value {
    let run = drift(
        stack,
        "acme",
        file,
        &["--format", "json", "--page-size", "2"],
    )
    .await;
    assert_eq!(
        run.code, code,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    serde_json::from_str(&run.stdout).unwrap()
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
#[cfg_attr(not(feature = "tools"), ignore = "`roster drift` is a client tool")]
async fn drift_reports_every_kind_of_difference_in_a_json_export() {
    let stack = Stack::start().await;
    let tenant = stack.tenant("acme").await;
    let acme = acme(&tenant).await;
    let dir = tempfile::tempdir().unwrap();

    let exact = write(dir.path(), "exact.json", &matching_export().to_string());
    let report = json_report(&stack, &exact, 0).await;
    assert_eq!(report["drift"], false, "{report:#}");
    assert_eq!(report["summary"]["usersOnlyInRoster"], 0);
    assert_eq!(
        report["compared"],
        json!({"users": true, "groups": true, "memberships": true,
               "userAttributes": ["userName", "active", "externalId", "displayName",
                                  "name.givenName", "name.familyName", "primaryEmail"],
               "groupAttributes": ["displayName", "externalId"]})
    );

    let drifted = write(dir.path(), "drifted.json", &drifted_export().to_string());
    let report = json_report(&stack, &drifted, 1).await;
    assert_eq!(report["version"], 1);
    assert_eq!(report["tenant"], "acme");
    assert_eq!(report["sourceFormat"], "json");
    assert_eq!(report["drift"], true);
    assert_eq!(
        report["users"],
        json!({
            "onlyInIdp": [{"id": null, "userName": "dave", "externalId": "e-dave", "active": true}],
            "onlyInRoster": [{"id": acme.carol, "userName": "carol", "handle": "carol", "externalId": null, "active": true}],
            "different": [
                {"id": acme.alice, "name": "alice", "matchedBy": "externalId", "differences": [
                    {"attribute": "active", "roster": true, "idp": false},
                    {"attribute": "name.familyName", "roster": "Liddell", "idp": "Pleasance"},
                    {"attribute": "primaryEmail", "roster": "alice@acme.io", "idp": "alice@wonder.land"}
                ]},
                {"id": acme.bob, "name": "bob", "matchedBy": "userName", "differences": [
                    {"attribute": "externalId", "roster": "e-bob", "idp": "e-bob-2"}
                ]}
            ],
            "ambiguous": []
        }),
        "{report:#}"
    );
    assert_eq!(
        report["groups"],
        json!({
            "onlyInIdp": [{"id": null, "displayName": "Support", "externalId": null, "members": 1}],
            "onlyInRoster": [{"id": acme.sales, "displayName": "Sales", "externalId": null, "members": 1}],
            "different": [
                {"id": acme.engineering, "name": "Engineering", "matchedBy": "externalId", "differences": [
                    {"attribute": "displayName", "roster": "Engineering", "idp": "Platform"}
                ]}
            ],
            "ambiguous": []
        }),
        "{report:#}"
    );
    assert_eq!(
        report["memberships"],
        json!([
            {"groupId": acme.engineering, "displayName": "Engineering",
             "onlyInIdp": ["dave"], "onlyInRoster": ["bob"]},
            {"groupId": acme.legacy, "displayName": "Legacy",
             "onlyInIdp": ["alice"], "onlyInRoster": ["bob"]}
        ]),
        "{report:#}"
    );
    assert_eq!(
        report["summary"],
        json!({"usersOnlyInIdp": 1, "usersOnlyInRoster": 1, "usersWithDifferences": 2,
               "groupsOnlyInIdp": 1, "groupsOnlyInRoster": 1, "groupsWithDifferences": 1,
               "groupsWithMembershipDifferences": 2, "membersOnlyInIdp": 2, "membersOnlyInRoster": 2,
               "usersAmbiguous": 0, "groupsAmbiguous": 0})
    );

    // The same for people: sections, `attr: roster → idp`, and the summary line.
    let run = drift(&stack, "acme", &drifted, &[]).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    for expected in [
        "Users only in the IdP (1):\n  dave  externalId=e-dave  active=true\n",
        "Users only in roster (1):\n  carol  active=true  id=",
        "Groups only in the IdP (1):\n  Support  members=1\n",
        "Groups only in roster (1):\n  Sales  members=1  id=",
        "  alice (matched by externalId)\n    active: true → false\n    name.familyName: \"Liddell\" → \"Pleasance\"\n",
        "    externalId: \"e-bob\" → \"e-bob-2\"\n",
        "  Engineering (matched by externalId)\n    displayName: \"Engineering\" → \"Platform\"\n",
        "Membership differences (2 groups): + in the IdP only, - in roster only\n  Engineering\n    + dave\n    - bob\n",
    ] {
        assert!(
            run.stdout.contains(expected),
            "missing {expected:?} in\n{}",
            run.stdout
        );
    }
    assert!(
        run.stdout.trim_end().lines().last().unwrap().ends_with(
            "drift: users: 1 only in IdP, 1 only in roster, 2 with differences; \
                 groups: 1 only in IdP, 1 only in roster, 1 with differences; \
                 memberships differ in 2 groups (2 members only in IdP, 2 only in roster)"
        ),
        "{}",
        run.stdout
    );
    let run = drift(&stack, "acme", &exact, &[]).await;
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert!(
        run.stdout.contains("no drift: tenant acme matches"),
        "{}",
        run.stdout
    );
}

/// A `GET /Users` dump (roster's own here, as any SCIM server's) carries each user's `groups`:
/// that alone states the memberships, and a user with `groups` is read as a user.
#[tokio::test]
#[cfg_attr(not(feature = "tools"), ignore = "`roster drift` is a client tool")]
async fn a_users_only_export_states_memberships_through_users_groups() {
    let stack = Stack::start().await;
    let tenant = stack.tenant("acme").await;
    let acme = acme(&tenant).await;
    let dir = tempfile::tempdir().unwrap();
    let users = tenant.get("/Users").await.expect(200);
    let resources = users["Resources"].as_array().unwrap();
    assert!(
        resources.iter().all(|user| user.get("groups").is_some()),
        "{users:#}"
    );
    let dump = write(dir.path(), "users.json", &users.to_string());
    let report = json_report(&stack, &dump, 0).await;
    assert_eq!(report["drift"], false, "{report:#}");
    assert_eq!(report["compared"]["memberships"], true, "{report:#}");

    // bob leaves Legacy in roster only; the dump still has him there.
    tenant
        .patch(
            &format!("/Groups/{}", acme.legacy),
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                    "Operations": [{"op": "remove", "path": format!("members[value eq \"{}\"]", acme.bob)}]}),
        )
        .await
        .expect(204);
    let report = json_report(&stack, &dump, 1).await;
    assert_eq!(
        report["memberships"],
        json!([{"groupId": acme.legacy, "displayName": "Legacy",
                "onlyInIdp": ["bob"], "onlyInRoster": []}]),
        "{report:#}"
    );
    // Groups are known only through members here: none is reported missing on either side.
    assert_eq!(report["summary"]["groupsOnlyInIdp"], 0, "{report:#}");
    assert_eq!(report["summary"]["groupsOnlyInRoster"], 0, "{report:#}");
}

#[tokio::test]
#[cfg_attr(not(feature = "tools"), ignore = "`roster drift` is a client tool")]
async fn an_external_id_several_users_share_is_reported_ambiguous_not_guessed() {
    let stack = Stack::start().await;
    let tenant = stack.tenant("acme").await;
    let acme = acme(&tenant).await;
    // erin shares alice's externalId: SCIM accepts it (RFC 7643 §3.1).
    let erin = tenant
        .post(
            "/Users",
            &json!({"schemas": [USER], "userName": "erin", "externalId": "e-alice"}),
        )
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut export = matching_export();
    let users = export["Users"]["Resources"].as_array_mut().unwrap();
    users.push(json!({"schemas": [USER], "id": "idp-5", "userName": "erin",
                      "externalId": "e-alice", "active": true}));
    export["Users"]["totalResults"] = json!(4);
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "shared.json", &export.to_string());

    // Both are matched by userName, neither guessed by externalId: no drift, one ambiguity.
    let report = json_report(&stack, &file, 0).await;
    assert_eq!(report["drift"], false, "{report:#}");
    assert_eq!(
        report["users"]["ambiguous"],
        json!([{"externalId": "e-alice", "roster": ["alice", "erin"], "idp": ["alice", "erin"]}]),
        "{report:#}"
    );
    assert_eq!(report["summary"]["usersAmbiguous"], 1);
    assert_eq!(report["users"]["different"], json!([]), "{report:#}");
    assert_eq!(report["users"]["onlyInRoster"], json!([]), "{report:#}");
    assert!(!acme.alice.is_empty() && !erin.is_empty());

    let run = drift(&stack, "acme", &file, &[]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains(
            "Ambiguous user externalIds, shared by several users (1): matched by name instead, never guessed\n  externalId=e-alice  roster: alice, erin  IdP: alice, erin\n"
        ),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("no drift"), "{}", run.stdout);
}

#[tokio::test]
#[cfg_attr(not(feature = "tools"), ignore = "`roster drift` is a client tool")]
async fn drift_reads_csv_exports() {
    let stack = Stack::start().await;
    let tenant = stack.tenant("acme").await;
    let acme = acme(&tenant).await;
    let dir = tempfile::tempdir().unwrap();

    // Header names in any case and order; quoted fields (RFC 4180); groups separated by `;`.
    let exact = write(
        dir.path(),
        "exact.csv",
        "Groups,USERNAME,externalId,active\n\
         Engineering,alice,e-alice,true\n\
         \"Engineering; Legacy\",\"bob\",e-bob,TRUE\n\
         Sales,Carol,,true\n",
    );
    let report = json_report(&stack, &exact, 0).await;
    assert_eq!(report["sourceFormat"], "csv");
    assert_eq!(report["drift"], false, "{report:#}");
    // A CSV carries no names or emails: alice's are not compared.
    assert_eq!(
        report["compared"]["userAttributes"],
        json!(["userName", "active", "externalId"])
    );

    let drifted = write(
        dir.path(),
        "drifted.csv",
        "userName,externalId,active,groups\n\
         alice,e-alice,false,\"Engineering;Legacy\"\n\
         bob,e-bob,true,Engineering\n\
         dave,e-dave,true,\"Engineering;Support\"\n",
    );
    let report = json_report(&stack, &drifted, 1).await;
    assert_eq!(
        report["users"]["onlyInIdp"],
        json!([{"id": null, "userName": "dave", "externalId": "e-dave", "active": true}])
    );
    assert_eq!(
        report["users"]["onlyInRoster"][0]["id"],
        acme.carol.as_str()
    );
    assert_eq!(
        report["users"]["different"],
        json!([{"id": acme.alice, "name": "alice", "matchedBy": "externalId", "differences": [
            {"attribute": "active", "roster": true, "idp": false}
        ]}])
    );
    assert_eq!(
        report["groups"]["onlyInIdp"],
        json!([{"id": null, "displayName": "Support", "externalId": null, "members": 1}])
    );
    assert_eq!(
        report["groups"]["onlyInRoster"][0]["id"],
        acme.sales.as_str()
    );
    assert_eq!(report["groups"]["different"], json!([]));
    assert_eq!(
        report["memberships"],
        json!([
            {"groupId": acme.engineering, "displayName": "Engineering",
             "onlyInIdp": ["dave"], "onlyInRoster": []},
            {"groupId": acme.legacy, "displayName": "Legacy",
             "onlyInIdp": ["alice"], "onlyInRoster": ["bob"]}
        ])
    );
    // Forcing the format: the JSON export read as CSV has no userName column.
    let json = write(dir.path(), "export.txt", &matching_export().to_string());
    let run = drift(&stack, "acme", &json, &["--input-format", "csv"]).await;
    assert_eq!(run.code, 2, "{}", run.stdout);
    assert!(run.stderr.contains("no userName column"), "{}", run.stderr);
    let run = drift(&stack, "acme", &json, &["--input-format", "json"]).await;
    assert_eq!(run.code, 0, "{}", run.stdout);
}

#[tokio::test]
#[cfg_attr(not(feature = "tools"), ignore = "`roster drift` is a client tool")]
async fn drift_exits_2_on_a_bad_file_or_an_unknown_tenant() {
    let stack = Stack::start().await;
    let tenant = stack.tenant("acme").await;
    acme(&tenant).await;
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("broken.json", "{\"Resources\": [", "not valid JSON"),
        (
            "error.json",
            "{\"schemas\": [\"urn:ietf:params:scim:api:messages:2.0:Error\"], \"status\": \"401\", \"detail\": \"bad token\"}",
            "SCIM error response, not resources: bad token",
        ),
        (
            "bad.csv",
            "userName,active\nalice,maybe\n",
            "line 2: active must be true or false",
        ),
        (
            "ragged.csv",
            "userName,active\nalice\n",
            "the CSV export is malformed",
        ),
        (
            "duplicate.csv",
            "userName\nalice\nALICE\n",
            "userName \"ALICE\" twice",
        ),
    ];
    for (name, text, expected) in cases {
        let file = write(dir.path(), name, text);
        let run = drift(&stack, "acme", &file, &[]).await;
        assert_eq!(run.code, 2, "{name}: {}", run.stdout);
        assert!(run.stdout.is_empty(), "{name}: {}", run.stdout);
        assert!(run.stderr.contains(expected), "{name}: {}", run.stderr);
        assert!(
            run.stderr.contains(name),
            "{name} names the file: {}",
            run.stderr
        );
    }
    let missing = dir.path().join("missing.json");
    let run = drift(&stack, "acme", &missing, &[]).await;
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("missing.json"), "{}", run.stderr);
    let file = write(dir.path(), "exact.json", &matching_export().to_string());
    let run = drift(&stack, "nosuch", &file, &[]).await;
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("tenant nosuch does not exist"),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn list_groups_pages_through_every_group_once() {
    let stack = Stack::start().await;
    let tenant = stack.tenant("acme").await;
    let acme = acme(&tenant).await;
    let mut client = pb::directory_client::DirectoryClient::connect(format!(
        "http://{}",
        stack.running.grpc_addr
    ))
    .await
    .unwrap();
    let mut seen = Vec::new();
    let mut page_token = String::new();
    loop {
        let mut request = tonic::Request::new(pb::ListGroupsRequest {
            tenant: "acme".into(),
            page_size: 2,
            page_token: page_token.clone(),
        });
        request.metadata_mut().insert(
            "authorization",
            format!("Bearer {}", tenant.token).parse().unwrap(),
        );
        let page = client.list_groups(request).await.unwrap().into_inner();
        assert_eq!(page.total, 3);
        assert!(page.groups.len() <= 2);
        seen.extend(page.groups);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    let listed: Vec<(&str, &str, &str, u64)> = seen
        .iter()
        .map(|group| {
            (
                group.id.as_str(),
                group.display_name.as_str(),
                group.external_id.as_str(),
                group.member_count,
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            (acme.engineering.as_str(), "Engineering", "g-eng", 2),
            (acme.sales.as_str(), "Sales", "", 1),
            (acme.legacy.as_str(), "Legacy", "g-legacy", 1),
        ]
    );
    let mut request = tonic::Request::new(pb::ListGroupsRequest {
        tenant: "acme".into(),
        page_size: 2,
        page_token: "not-a-token".into(),
    });
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", tenant.token).parse().unwrap(),
    );
    let status = client.list_groups(request).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    // Another tenant's token does not reach acme's groups.
    let other = stack.tenant("globex").await;
    let mut request = tonic::Request::new(pb::ListGroupsRequest {
        tenant: "acme".into(),
        page_size: 0,
        page_token: String::new(),
    });
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", other.token).parse().unwrap(),
    );
    let status = client.list_groups(request).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
}

/// A sync stuck retrying a refused request shows as a growing per-tenant, per-scimType count.
#[tokio::test]
async fn rejected_scim_requests_are_counted_per_tenant_and_scim_type() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let globex = stack.tenant("globex").await;
    acme.create_user("alice").await;
    for _ in 0..3 {
        acme.post("/Users", &json!({"userName": "alice"}))
            .await
            .expect_error(409, Some("uniqueness"));
    }
    globex
        .post("/Users", &json!({"userName": "-x-"}))
        .await
        .expect_error(400, Some("invalidValue"));
    let text = stack.metrics().await;
    for expected in [
        "roster_scim_rejections_total{scim_type=\"uniqueness\",status=\"409\",tenant=\"acme\"} 3",
        "roster_scim_rejections_total{scim_type=\"invalidValue\",status=\"400\",tenant=\"globex\"} 1",
    ] {
        assert!(text.contains(expected), "missing {expected} in\n{text}");
    }
    assert!(!text.contains("scim_type=\"uniqueness\",status=\"409\",tenant=\"globex\""));
    assert!(!text.contains("scim_type=\"invalidValue\",status=\"400\",tenant=\"acme\""));
}
