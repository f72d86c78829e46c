//! Test fixtures shared by the drift stages' tests: a roster directory (users, groups, members)
//! and a SCIM JSON export that matches it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use roster_proto::v1 as pb;
use serde_json::{Value, json};

use super::export::{GROUP_SCHEMA, USER_SCHEMA};
use super::{Export, Report, RosterDirectory, compare};

pub(super) fn roster_user(
    id: &str,
    name: &str,
    external_id: &str,
    active: bool,
    attributes: Value,
) -> pb::User {
    pb::User {
        id: id.into(),
        user_name: name.into(),
        external_id: external_id.into(),
        active,
        attributes_json: attributes.to_string(),
        ..pb::User::default()
    }
}

pub(super) fn roster_group(id: &str, name: &str, external_id: &str, members: u64) -> pb::Group {
    pb::Group {
        id: id.into(),
        display_name: name.into(),
        external_id: external_id.into(),
        member_count: members,
        ..pb::Group::default()
    }
}

pub(super) fn member(id: &str, name: &str) -> pb::Member {
    pb::Member {
        user_id: id.into(),
        user_name: name.into(),
    }
}

/// alice (e-alice), bob (e-bob), carol; Engineering (g-eng: alice, bob), Sales (g-sales:
/// carol), Empty (no members).
pub(super) fn roster() -> RosterDirectory {
    let mut roster = RosterDirectory::default();
    roster.add_user(&roster_user(
        "u1",
        "alice",
        "e-alice",
        true,
        json!({"displayName": "Alice A", "name": {"givenName": "Alice", "familyName": "A"},
               "emails": [{"value": "a@x.io", "primary": true}]}),
    ));
    roster.add_user(&roster_user("u2", "bob", "e-bob", true, json!({})));
    roster.add_user(&roster_user("u3", "carol", "", true, json!({})));
    roster.add_group(&roster_group("g1", "Engineering", "g-eng", 2));
    roster.add_group(&roster_group("g2", "Sales", "", 1));
    roster.add_group(&roster_group("g3", "Empty", "", 0));
    roster.add_member("g1", &member("u1", "alice"));
    roster.add_member("g1", &member("u2", "bob"));
    roster.add_member("g2", &member("u3", "carol"));
    roster
}

pub(super) fn matching_json() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": 6,
        "Resources": [
            {"schemas": [USER_SCHEMA], "id": "i1", "userName": "alice", "externalId": "e-alice",
             "active": true, "displayName": "Alice A",
             "name": {"givenName": "Alice", "familyName": "A"},
             "emails": [{"value": "other@x.io"}, {"value": "a@x.io", "primary": true}]},
            {"schemas": [USER_SCHEMA], "id": "i2", "userName": "bob", "externalId": "e-bob", "active": true},
            {"schemas": [USER_SCHEMA], "id": "i3", "userName": "Carol", "active": true},
            {"schemas": [GROUP_SCHEMA], "displayName": "Engineering", "externalId": "g-eng",
             "members": [{"value": "i1"}, {"value": "i2"}]},
            {"schemas": [GROUP_SCHEMA], "displayName": "Sales", "members": [{"value": "i3"}]},
            {"meta": {"resourceType": "Group"}, "displayName": "Empty", "members": []}
        ]
    })
}

pub(super) fn report_for(export: &Value) -> Report {
    let export = Export::parse(&export.to_string(), None).unwrap();
    compare("acme", "export.json", &roster(), &export)
}
