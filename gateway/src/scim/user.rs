//! Users as SCIM JSON: turning what an IdP sends (POST, PUT, or a PATCHed document) into the
//! domain's profile, and rendering a user record back.
//!
//! Server-owned attributes (`id`, `meta`, `schemas`, `groups`) are ignored on input; `password`
//! is accepted and dropped; attributes roster does not model are stored and echoed as sent.

use roster_engine::domain::limits::Resource;
use roster_engine::domain::{Attributes, UserProfile, UserRecord};
use serde_json::{Map, Value, json};

use super::error::ScimError;
use super::stored::check_extra_attributes;
use roster_scim::resource::{
    KeyTarget, canonical_extension, canonical_value, classify_key, etag, lenient_bool,
};
use roster_scim::schema::{ROSTER_USER_SCHEMA, USER_RESOURCE, USER_SCHEMA};

/// One group a user belongs to, for the read-only `groups` attribute.
#[derive(Clone, Debug)]
pub struct UserGroup {
    pub id: String,
    pub display: String,
}

/// Reads a user body, every attribute typed as `/Schemas` says (with the leniencies of
/// `resource`). `active` defaults to `default_active` when the body omits it (true on create; the
/// current value on replace, so a PUT without `active` never suspends anyone). `before` is the
/// user as stored, on a replace or patch: values it holds are accepted again unchanged (see
/// `resource::canonical_value`), and the attributes outside the schemas may stay as they were.
pub fn profile_from_json(
    body: &Value,
    default_active: bool,
    before: Option<&UserProfile>,
) -> Result<UserProfile, ScimError> {
    let Value::Object(fields) = body else {
        return Err(ScimError::invalid_syntax("a User must be a JSON object"));
    };
    let stored = before.map(|before| &before.attributes);
    let mut user_name = None;
    let mut external_id = None;
    let mut active = None;
    let mut attributes = Attributes::new();
    for (key, value) in fields {
        if value.is_null() {
            continue;
        }
        match classify_key(&USER_RESOURCE, key) {
            KeyTarget::Core(attribute) => match attribute.name {
                "userName" => match value {
                    Value::String(text) => user_name = Some(text.clone()),
                    other => {
                        return Err(ScimError::invalid_value(format!(
                            "userName must be a string, not {}",
                            roster_scim::resource::json_kind(other)
                        )));
                    }
                },
                "externalId" => match value {
                    Value::String(text) => external_id = Some(text.clone()),
                    other => {
                        return Err(ScimError::invalid_value(format!(
                            "externalId must be a string, not {}",
                            roster_scim::resource::json_kind(other)
                        )));
                    }
                },
                "active" => {
                    active = Some(lenient_bool(value).ok_or_else(|| {
                        ScimError::invalid_value(format!(
                            "active must be a boolean (true or false, or the strings \"True\" \
                             and \"False\"), not {}",
                            roster_scim::resource::json_kind(value)
                        ))
                    })?);
                }
                "id" | "meta" | "schemas" | "groups" | "password" => {}
                name => {
                    let before = stored.and_then(|stored| stored.get(name));
                    let value = canonical_value(attribute, value.clone(), name, before)?;
                    if !is_empty(&value) {
                        attributes.insert(name.to_owned(), value);
                    }
                }
            },
            // Server-assigned (the handle): ignored on input, as RFC 7643 §2.2 says of readOnly.
            KeyTarget::Extension(extension) | KeyTarget::ExtensionAttribute(extension, _)
                if extension.id == ROSTER_USER_SCHEMA => {}
            KeyTarget::Extension(extension) => {
                let before = stored.and_then(|stored| stored.get(extension.id));
                let extension_fields = canonical_extension(extension, value.clone(), before)?;
                merge_extension(&mut attributes, extension.id, extension_fields);
            }
            KeyTarget::ExtensionAttribute(extension, attribute) => {
                let path = format!("{}:{}", extension.id, attribute.name);
                let before = stored
                    .and_then(|stored| stored.get(extension.id))
                    .and_then(|object| object.get(attribute.name));
                let value = canonical_value(attribute, value.clone(), &path, before)?;
                let mut single = Map::new();
                if !is_empty(&value) {
                    single.insert(attribute.name.to_owned(), value);
                }
                merge_extension(&mut attributes, extension.id, single);
            }
            KeyTarget::Unknown if key.eq_ignore_ascii_case("schemas") => {}
            KeyTarget::Unknown => {
                attributes.insert(key.clone(), value.clone());
            }
        }
    }
    let user_name = user_name.ok_or_else(|| ScimError::invalid_value("userName is required"))?;
    check_extra_attributes(Resource::User, &USER_RESOURCE, &attributes, stored)?;
    Ok(UserProfile {
        user_name,
        external_id,
        active: active.unwrap_or(default_active),
        attributes,
    })
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Object(fields) => fields.is_empty(),
        _ => false,
    }
}

fn merge_extension(attributes: &mut Attributes, urn: &str, fields: Map<String, Value>) {
    if fields.is_empty() {
        return;
    }
    let entry = attributes
        .entry(urn.to_owned())
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(existing) = entry {
        existing.extend(fields);
    }
}

/// The SCIM representation of a user. `groups` is `None` when the caller did not load them.
pub fn render_user(record: &UserRecord, groups: Option<&[UserGroup]>, base_url: &str) -> Value {
    let profile = &record.profile;
    let mut schemas = vec![Value::String(USER_SCHEMA.to_owned())];
    for extension in USER_RESOURCE.extensions {
        if profile.attributes.contains_key(extension.id) {
            schemas.push(Value::String(extension.id.to_owned()));
        }
    }
    schemas.push(Value::String(ROSTER_USER_SCHEMA.to_owned()));
    let location = format!("{base_url}/Users/{}", record.id);
    let mut user = Map::new();
    user.insert("schemas".into(), Value::Array(schemas));
    user.insert("id".into(), Value::String(record.id.to_string()));
    if let Some(external_id) = &profile.external_id {
        user.insert("externalId".into(), Value::String(external_id.clone()));
    }
    user.insert("userName".into(), Value::String(profile.user_name.clone()));
    user.insert("active".into(), Value::Bool(profile.active));
    for (name, value) in &profile.attributes {
        user.insert(name.clone(), value.clone());
    }
    user.insert(
        ROSTER_USER_SCHEMA.into(),
        json!({ "handle": record.handle() }),
    );
    if let Some(groups) = groups {
        let groups: Vec<Value> = groups
            .iter()
            .map(|group| {
                json!({
                    "value": group.id,
                    "display": group.display,
                    "$ref": format!("{base_url}/Groups/{}", group.id),
                    "type": "direct",
                })
            })
            .collect();
        user.insert("groups".into(), Value::Array(groups));
    }
    user.insert(
        "meta".into(),
        json!({
            "resourceType": "User",
            "created": record.created_at.to_rfc3339(),
            "lastModified": record.modified_at.to_rfc3339(),
            "location": location,
            "version": etag(record.version),
        }),
    );
    Value::Object(user)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use roster_scim::schema::ENTERPRISE_USER_SCHEMA;

    #[test]
    fn entra_create_body_is_read_leniently() {
        // reference/scim-interop.md §2.3, with §2.4's string boolean and a string manager.
        let body = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
                        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
            "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
            "userName": "Test-User-1",
            "active": "True",
            "emails": [{"primary": true, "type": "work", "value": "Test_User@testuser.com"}],
            "meta": {"resourceType": "User"},
            "name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
            "roles": [],
            "addresses": null,
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"manager": "mgr-1", "Department": "R&D"}
        });
        let profile = profile_from_json(&body, true, None).unwrap();
        assert_eq!(profile.user_name, "Test-User-1");
        assert!(profile.active);
        assert_eq!(
            profile.external_id.as_deref(),
            Some("0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef")
        );
        assert!(!profile.attributes.contains_key("meta"));
        assert!(!profile.attributes.contains_key("addresses"));
        assert_eq!(
            profile.attributes[ENTERPRISE_USER_SCHEMA],
            json!({"manager": {"value": "mgr-1"}, "department": "R&D"})
        );
        assert_eq!(profile.attributes["roles"], json!([]));
    }

    #[test]
    fn okta_create_body_drops_the_password() {
        let body = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "test-user", "name": {"givenName": "Test", "familyName": "User"},
            "emails": [{"primary": true, "value": "test.user@okta.local", "type": "work"}],
            "displayName": "Test User", "locale": "en-US", "externalId": "00ujl29u0le5T6Aj10h7",
            "groups": [], "password": "1mz050nq", "active": true
        });
        let profile = profile_from_json(&body, true, None).unwrap();
        assert!(
            !profile
                .attributes
                .keys()
                .any(|key| key.eq_ignore_ascii_case("password"))
        );
        assert!(!profile.attributes.contains_key("groups"));
        assert_eq!(profile.attributes["displayName"], json!("Test User"));
    }

    #[test]
    fn attribute_names_are_canonicalized_and_unknown_ones_kept() {
        let body = json!({"UserName": "ab", "DISPLAYNAME": "A B", "adreses": "kept as sent",
                          "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "7"});
        let profile = profile_from_json(&body, true, None).unwrap();
        assert_eq!(profile.user_name, "ab");
        assert_eq!(profile.attributes["displayName"], json!("A B"));
        assert_eq!(profile.attributes["adreses"], json!("kept as sent"));
        assert_eq!(
            profile.attributes[ENTERPRISE_USER_SCHEMA],
            json!({"employeeNumber": "7"})
        );
    }

    #[test]
    fn missing_user_name_and_bad_types_are_invalid_values() {
        assert_eq!(
            profile_from_json(&json!({}), true, None)
                .unwrap_err()
                .scim_type,
            Some("invalidValue")
        );
        assert_eq!(
            profile_from_json(&json!({"userName": 5}), true, None)
                .unwrap_err()
                .scim_type,
            Some("invalidValue")
        );
        assert_eq!(
            profile_from_json(&json!({"userName": "ab", "active": "maybe"}), true, None)
                .unwrap_err()
                .scim_type,
            Some("invalidValue")
        );
        assert_eq!(
            profile_from_json(&json!([1]), true, None)
                .unwrap_err()
                .scim_type,
            Some("invalidSyntax")
        );
    }

    #[test]
    fn omitted_active_takes_the_default() {
        assert!(
            !profile_from_json(&json!({"userName": "ab"}), false, None)
                .unwrap()
                .active
        );
        assert!(
            profile_from_json(&json!({"userName": "ab"}), true, None)
                .unwrap()
                .active
        );
    }
    /// The attributes of issue 13's finding 6, as a body setting `value` at each, with the path a
    /// refusal must name.
    fn typed_attribute_bodies(value: Value) -> Vec<(Value, &'static str)> {
        vec![
            (json!({"displayName": value}), "displayName"),
            (json!({"nickName": value}), "nickName"),
            (json!({"title": value}), "title"),
            (json!({"userType": value}), "userType"),
            (json!({"locale": value}), "locale"),
            (json!({"timezone": value}), "timezone"),
            (json!({"profileUrl": value}), "profileUrl"),
            (json!({"name": {"givenName": value}}), "name.givenName"),
            (json!({"emails": [{"value": value}]}), "emails.value"),
            (
                json!({"phoneNumbers": [{"value": value}]}),
                "phoneNumbers.value",
            ),
            (
                json!({"addresses": [{"streetAddress": value}]}),
                "addresses.streetAddress",
            ),
            (
                json!({ENTERPRISE_USER_SCHEMA: {"employeeNumber": value}}),
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
            ),
            (
                json!({ENTERPRISE_USER_SCHEMA: {"manager": {"value": value}}}),
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
            ),
            (
                json!({"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": value}),
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
            ),
        ]
    }

    fn with_user_name(mut body: Value) -> Value {
        body["userName"] = json!("alice");
        body
    }

    #[test]
    fn string_attributes_refuse_numbers_and_booleans_naming_the_path() {
        for wrong in [json!(42), json!(1.5), json!(true), json!(false)] {
            for (body, path) in typed_attribute_bodies(wrong.clone()) {
                let error = profile_from_json(&with_user_name(body.clone()), true, None)
                    .expect_err(&format!("{body} is refused"));
                assert_eq!(error.scim_type, Some("invalidValue"), "{body}");
                assert!(
                    error
                        .detail
                        .starts_with(&format!("{path} must be a string, not ")),
                    "{body}: {}",
                    error.detail
                );
            }
        }
        let error = profile_from_json(
            &json!({"userName": "a", "emails": [{"primary": 3}]}),
            true,
            None,
        )
        .unwrap_err();
        assert!(
            error.detail.starts_with("emails.primary must be a boolean"),
            "{}",
            error.detail
        );
        let error =
            profile_from_json(&json!({"userName": "a", "name": "Alice"}), true, None).unwrap_err();
        assert_eq!(error.detail, "name must be an object, not a string");
    }

    #[test]
    fn strings_are_accepted_everywhere_finding_six_lists() {
        for (body, _) in typed_attribute_bodies(json!("text")) {
            assert!(
                profile_from_json(&with_user_name(body.clone()), true, None).is_ok(),
                "{body}"
            );
        }
    }

    #[test]
    fn values_stored_before_types_were_enforced_are_carried_over_unchanged() {
        let stored = profile_from_json(&json!({"userName": "alice"}), true, None).unwrap();
        let mut legacy = stored.clone();
        legacy.attributes.insert("displayName".into(), json!(5));
        legacy
            .attributes
            .insert("emails".into(), json!([{"value": 7, "type": "work"}]));
        legacy.attributes.insert(
            ENTERPRISE_USER_SCHEMA.into(),
            json!({"employeeNumber": 12345, "department": "R&D"}),
        );
        // Okta PUTs back what it read, with one change (and Entra PATCHes one attribute).
        let body = json!({"userName": "alice", "displayName": 5, "title": "CTO",
                          "emails": [{"value": 7, "type": "work"}],
                          ENTERPRISE_USER_SCHEMA: {"employeeNumber": 12345, "department": "Ops"}});
        let profile = profile_from_json(&body, true, Some(&legacy)).unwrap();
        assert_eq!(profile.attributes["displayName"], json!(5));
        assert_eq!(
            profile.attributes[ENTERPRISE_USER_SCHEMA]["department"],
            json!("Ops")
        );
        // A changed value is checked.
        let body = json!({"userName": "alice", "displayName": 6});
        let error = profile_from_json(&body, true, Some(&legacy)).unwrap_err();
        assert_eq!(error.detail, "displayName must be a string, not a number");
        assert!(
            profile_from_json(
                &json!({"userName": "alice", "displayName": 5}),
                true,
                Some(&stored)
            )
            .is_err()
        );
    }

    #[test]
    fn attributes_outside_the_schemas_are_limited_in_number_and_size() {
        let mut body = json!({"userName": "alice"});
        for n in 0..50 {
            body[format!("custom{n}")] = json!("v");
        }
        let within = profile_from_json(&body, true, None).unwrap();
        body["urn:ietf:params:scim:schemas:extension:Custom:2.0:User:costCode"] = json!("c");
        let error = profile_from_json(&body, true, None).unwrap_err();
        assert_eq!(error.scim_type, Some("invalidValue"));
        assert!(
            error
                .detail
                .starts_with("the user has 51 attributes outside its schemas ("),
            "{}",
            error.detail
        );
        // A user that already had them keeps them; one more is refused.
        let mut stored = within.clone();
        stored.attributes.insert("custom50".into(), json!("v"));
        let mut same = body.clone();
        same.as_object_mut()
            .unwrap()
            .remove("urn:ietf:params:scim:schemas:extension:Custom:2.0:User:costCode");
        same["custom50"] = json!("v");
        assert!(profile_from_json(&same, true, Some(&stored)).is_ok());
        // Unknown attributes inside the enterprise extension count too; its own do not.
        let extension = json!({"userName": "alice", ENTERPRISE_USER_SCHEMA:
            {"department": "d", "blob": "b".repeat(9000)}});
        let error = profile_from_json(&extension, true, None).unwrap_err();
        assert!(
            error.detail.starts_with(
                "the user's attributes outside its schemas \
                 (urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:blob) are 9"
            ),
            "{}",
            error.detail
        );
    }
}
