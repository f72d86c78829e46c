//! What the fuzz targets share: sample documents shaped as the gateway renders them, and the
//! check that a rejection is a client error the SCIM handlers may return.

#![allow(dead_code)]

use std::sync::LazyLock;

use roster_scim::error::ScimError;
use serde_json::{Value, json};

/// The `scimType`s a rejected filter, path or PatchOp may carry: all 400s.
pub const CLIENT_ERRORS: [&str; 6] = [
    "invalidFilter",
    "invalidPath",
    "invalidValue",
    "invalidSyntax",
    "noTarget",
    "mutability",
];

/// Panics (a fuzz crash) unless `error` is a 400 whose `scimType` is one of `allowed`.
pub fn assert_client_error(error: &ScimError, allowed: &[&str]) {
    assert_eq!(error.status.as_u16(), 400, "{error:?}");
    assert!(
        error
            .scim_type
            .is_some_and(|scim_type| allowed.contains(&scim_type)),
        "{error:?}"
    );
}

/// A user as `render_user` shows it, with multi-valued, complex and extension attributes.
pub static USER: LazyLock<Value> = LazyLock::new(|| {
    json!({
        "schemas": [
            "urn:ietf:params:scim:schemas:core:2.0:User",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
        ],
        "id": "2819c223-7f76-453a-919d-413861904646",
        "externalId": "Ext-1",
        "userName": "bjensen@example.com",
        "active": true,
        "name": {"familyName": "Jensen", "givenName": "Barbara", "formatted": "Ms. Barbara J Jensen"},
        "displayName": "Babs Jensen",
        "title": "Tour Guide",
        "emails": [
            {"value": "bjensen@example.com", "type": "work", "primary": true},
            {"value": "babs@jensen.org", "type": "home"}
        ],
        "phoneNumbers": [{"value": "+1 555 555 5555", "type": "mobile"}],
        "addresses": [{"type": "work", "streetAddress": "100 Universal City Plaza", "country": "USA"}],
        "roles": [{"value": "admin"}],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
            "employeeNumber": "701984",
            "department": "Tour Operations",
            "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d", "displayName": "John Smith"}
        },
        "meta": {
            "resourceType": "User",
            "created": "2024-01-02T03:04:05Z",
            "lastModified": "2024-02-02T03:04:05.5Z",
            "location": "https://example.com/scim/v2/Users/2819c223-7f76-453a-919d-413861904646",
            "version": "W/\"3\""
        }
    })
});

/// A group as `render_group` shows it to the PATCH handler (without members).
pub static GROUP: LazyLock<Value> = LazyLock::new(|| {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "id": "e9e30dba-f08f-4109-8486-d5c6a331660a",
        "externalId": "grp-1",
        "displayName": "Tour Guides",
        "meta": {
            "resourceType": "Group",
            "created": "2024-01-02T03:04:05Z",
            "lastModified": "2024-02-02T03:04:05Z",
            "location": "https://example.com/scim/v2/Groups/e9e30dba-f08f-4109-8486-d5c6a331660a",
            "version": "W/\"7\""
        }
    })
});

/// A group with members, for filter evaluation (`members[value eq "…"]`).
pub static GROUP_WITH_MEMBERS: LazyLock<Value> = LazyLock::new(|| {
    let mut group = GROUP.clone();
    group["members"] = json!([
        {"value": "2819c223-7f76-453a-919d-413861904646", "display": "bjensen@example.com", "type": "User"},
        {"value": "902c246b-6245-4190-8e05-00816be7344a", "display": "mandy", "type": "User"}
    ]);
    group
});
