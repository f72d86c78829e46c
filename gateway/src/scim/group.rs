//! Groups as SCIM JSON: reading a group body into a domain profile and member list, reading
//! member values in every shape IdPs send them, and rendering a group record back.

use roster_engine::domain::limits::Resource;
use roster_engine::domain::{Attributes, GroupProfile, GroupRecord, UserId};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::error::ScimError;
use super::stored::check_extra_attributes;
use roster_scim::resource::{
    KeyTarget, canonical_extension, canonical_value, classify_key, etag, json_kind,
};
use roster_scim::schema::{GROUP_RESOURCE, GROUP_SCHEMA};

/// A group body: its profile, and its members when the body has a `members` attribute.
#[derive(Debug, PartialEq)]
pub struct GroupInput {
    pub profile: GroupProfile,
    pub members: Option<Vec<UserId>>,
}

/// One member as rendered: id and the user's userName.
#[derive(Clone, Debug)]
pub struct Member {
    pub id: UserId,
    /// The member's userName, when it was asked for (`members.display` is returned on request).
    pub display: Option<String>,
}

/// Reads a member reference: `{"value": "<id>", …}` or a bare `"<id>"` (Entra, Microsoft's
/// reference tests). The id must be a user id; anything else is named in the error.
pub fn member_id(value: &Value) -> Result<UserId, ScimError> {
    let text = match value {
        Value::String(text) => text.as_str(),
        Value::Object(_) => match roster_scim::filter::get_ci(value, "value") {
            Some(Value::String(text)) => text.as_str(),
            Some(other) => {
                return Err(ScimError::invalid_value(format!(
                    "a member's value must be a string, not {}",
                    json_kind(other)
                )));
            }
            None => return Err(ScimError::invalid_value("each member needs a \"value\"")),
        },
        other => {
            return Err(ScimError::invalid_value(format!(
                "a member must be an object or an id, not {}",
                json_kind(other)
            )));
        }
    };
    Uuid::parse_str(text).map(UserId).map_err(|_| {
        ScimError::invalid_value(format!("member {text} is not a user of this tenant"))
    })
}

/// Reads a list of members: an array, a single object, or a bare id.
pub fn member_ids(value: &Value) -> Result<Vec<UserId>, ScimError> {
    match value {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items
            .iter()
            .filter(|item| !item.is_null())
            .map(member_id)
            .collect(),
        single => Ok(vec![member_id(single)?]),
    }
}

/// Reads a group body (POST, PUT, or a PATCHed document), every attribute typed as `/Schemas`
/// says. `before` is the group as stored, on a replace or patch (see `user::profile_from_json`).
pub fn group_from_json(
    body: &Value,
    before: Option<&GroupProfile>,
) -> Result<GroupInput, ScimError> {
    let Value::Object(fields) = body else {
        return Err(ScimError::invalid_syntax("a Group must be a JSON object"));
    };
    let stored = before.map(|before| &before.attributes);
    let mut display_name = None;
    let mut external_id = None;
    let mut members = None;
    let mut attributes = Attributes::new();
    for (key, value) in fields {
        match classify_key(&GROUP_RESOURCE, key) {
            KeyTarget::Core(attribute) => match attribute.name {
                "displayName" => match value {
                    Value::String(text) => display_name = Some(text.clone()),
                    Value::Null => {}
                    other => {
                        return Err(ScimError::invalid_value(format!(
                            "displayName must be a string, not {}",
                            json_kind(other)
                        )));
                    }
                },
                "externalId" => match value {
                    Value::String(text) => external_id = Some(text.clone()),
                    Value::Null => {}
                    other => {
                        return Err(ScimError::invalid_value(format!(
                            "externalId must be a string, not {}",
                            json_kind(other)
                        )));
                    }
                },
                "members" => members = Some(member_ids(value)?),
                "id" | "meta" | "schemas" => {}
                name => {
                    if !value.is_null() {
                        let before = stored.and_then(|stored| stored.get(name));
                        let value = canonical_value(attribute, value.clone(), name, before)?;
                        attributes.insert(name.to_owned(), value);
                    }
                }
            },
            KeyTarget::Extension(extension) => {
                let before = stored.and_then(|stored| stored.get(extension.id));
                let fields = canonical_extension(extension, value.clone(), before)?;
                if !fields.is_empty() {
                    attributes.insert(extension.id.to_owned(), Value::Object(fields));
                }
            }
            KeyTarget::ExtensionAttribute(..) | KeyTarget::Unknown => {
                if !value.is_null() && !key.eq_ignore_ascii_case("schemas") {
                    attributes.insert(key.clone(), value.clone());
                }
            }
        }
    }
    let display_name =
        display_name.ok_or_else(|| ScimError::invalid_value("displayName is required"))?;
    check_extra_attributes(Resource::Group, &GROUP_RESOURCE, &attributes, stored)?;
    Ok(GroupInput {
        profile: GroupProfile {
            display_name,
            external_id,
            attributes,
        },
        members,
    })
}

/// The SCIM representation of a group; `members` is `None` when they were not loaded.
pub fn render_group(record: &GroupRecord, members: Option<&[Member]>, base_url: &str) -> Value {
    let profile = &record.profile;
    let mut group = Map::new();
    group.insert("schemas".into(), json!([GROUP_SCHEMA]));
    group.insert("id".into(), Value::String(record.id.to_string()));
    if let Some(external_id) = &profile.external_id {
        group.insert("externalId".into(), Value::String(external_id.clone()));
    }
    group.insert(
        "displayName".into(),
        Value::String(profile.display_name.clone()),
    );
    for (name, value) in &profile.attributes {
        group.insert(name.clone(), value.clone());
    }
    if let Some(members) = members {
        let members: Vec<Value> = members
            .iter()
            .map(|member| {
                let mut rendered = json!({
                    "value": member.id.to_string(),
                    "$ref": format!("{base_url}/Users/{}", member.id),
                    "type": "User",
                });
                if let Some(display) = &member.display {
                    rendered["display"] = Value::String(display.clone());
                }
                rendered
            })
            .collect();
        group.insert("members".into(), Value::Array(members));
    }
    group.insert(
        "meta".into(),
        json!({
            "resourceType": "Group",
            "created": record.created_at.to_rfc3339(),
            "lastModified": record.modified_at.to_rfc3339(),
            "location": format!("{base_url}/Groups/{}", record.id),
            "version": etag(record.version),
        }),
    );
    Value::Object(group)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entra_group_create_with_microsoft_schema_uri_is_read() {
        let body = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group",
                        "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
            "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
            "displayName": "displayName",
            "meta": {"resourceType": "Group"}
        });
        let input = group_from_json(&body, None).unwrap();
        assert_eq!(input.profile.display_name, "displayName");
        assert_eq!(
            input.profile.external_id.as_deref(),
            Some("8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159")
        );
        assert!(input.profile.attributes.is_empty());
        assert_eq!(input.members, None);
    }

    #[test]
    fn members_are_read_from_objects_single_objects_and_bare_ids() {
        let id = Uuid::now_v7();
        for members in [
            json!([{"value": id.to_string(), "display": "x"}]),
            json!({"value": id.to_string()}),
            json!(id.to_string()),
            json!([{"$ref": null, "value": id.to_string()}]),
        ] {
            assert_eq!(member_ids(&members).unwrap(), vec![UserId(id)], "{members}");
        }
        let error = member_ids(&json!([{"value": "not-a-user"}])).unwrap_err();
        assert_eq!(error.scim_type, Some("invalidValue"));
        assert!(error.detail.contains("not-a-user"));
    }

    #[test]
    fn display_name_is_required() {
        let error = group_from_json(&json!({"members": []}), None).unwrap_err();
        assert_eq!(error.scim_type, Some("invalidValue"));
    }
}
