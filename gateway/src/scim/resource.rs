//! Reading what clients send into canonical SCIM JSON: attribute names spelled as the schema
//! spells them, booleans sent as `"True"`/`"False"` turned into booleans, a single object or bare
//! string accepted where an array or complex value is expected (Entra's `manager` and `members`),
//! and `null` read as "not set".

use serde_json::{Map, Value};

use roster_engine::domain::Timestamp;

use super::error::ScimError;
use super::schema::{Attribute, Kind, ResourceSchema, Schema};

/// Parses `true`/`false` sent as JSON booleans or as strings in any case.
pub fn lenient_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(flag) => Some(*flag),
        Value::String(text) if text.eq_ignore_ascii_case("true") => Some(true),
        Value::String(text) if text.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// The canonical form of `value` for attribute `attribute`.
pub fn canonical_value(attribute: &Attribute, value: Value) -> Result<Value, ScimError> {
    if attribute.multi_valued {
        let items = match value {
            Value::Array(items) => items,
            Value::Null => return Ok(Value::Null),
            single => vec![single],
        };
        let items = items
            .into_iter()
            .filter(|item| !item.is_null())
            .map(|item| canonical_single(attribute, item))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(Value::Array(items));
    }
    match value {
        // A complex single value sent as a one-element array (Entra's `manager`).
        Value::Array(mut items) if attribute.kind == Kind::Complex && items.len() <= 1 => {
            match items.pop() {
                Some(item) => canonical_single(attribute, item),
                None => Ok(Value::Null),
            }
        }
        other => canonical_single(attribute, other),
    }
}

fn canonical_single(attribute: &Attribute, value: Value) -> Result<Value, ScimError> {
    match attribute.kind {
        Kind::Boolean => lenient_bool(&value).map(Value::Bool).ok_or_else(|| {
            ScimError::invalid_value(format!("{} must be a boolean", attribute.name))
        }),
        Kind::Complex => match value {
            Value::Object(fields) => {
                let mut canonical = Map::new();
                for (name, value) in fields {
                    if value.is_null() {
                        continue;
                    }
                    match attribute.sub(&name) {
                        Some(sub) => {
                            canonical.insert(sub.name.to_owned(), canonical_value(sub, value)?);
                        }
                        None => {
                            canonical.insert(name, value);
                        }
                    }
                }
                Ok(Value::Object(canonical))
            }
            // A bare id where a reference object is expected (`manager`, `members`).
            Value::String(text) if attribute.sub("value").is_some() => {
                let mut canonical = Map::new();
                canonical.insert("value".to_owned(), Value::String(text));
                Ok(Value::Object(canonical))
            }
            other => Err(ScimError::invalid_value(format!(
                "{} must be an object, not {}",
                attribute.name,
                json_kind(&other)
            ))),
        },
        Kind::Integer | Kind::Decimal => match value {
            Value::Number(_) => Ok(value),
            Value::String(ref text) => text
                .parse::<serde_json::Number>()
                .map(Value::Number)
                .map_err(|_| {
                    ScimError::invalid_value(format!("{} must be a number", attribute.name))
                }),
            other => Err(ScimError::invalid_value(format!(
                "{} must be a number, not {}",
                attribute.name,
                json_kind(&other)
            ))),
        },
        _ => match value {
            Value::Object(_) | Value::Array(_) => Err(ScimError::invalid_value(format!(
                "{} must be a single {} value",
                attribute.name,
                attribute.kind.as_str()
            ))),
            other => Ok(other),
        },
    }
}

pub fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Where a top-level key of a resource body belongs.
pub enum KeyTarget {
    /// A core or common attribute (canonical definition).
    Core(&'static Attribute),
    /// A whole extension object (`"urn:…:enterprise:2.0:User": {…}`).
    Extension(&'static Schema),
    /// One attribute of an extension, URN-qualified (`"urn:…:User:department"`).
    ExtensionAttribute(&'static Schema, &'static Attribute),
    /// Anything else: kept under the key as sent.
    Unknown,
}

/// Classifies a top-level key of a body or of a path-less PATCH value.
pub fn classify_key(schema: &ResourceSchema, key: &str) -> KeyTarget {
    if let Some(extension) = schema
        .extensions
        .iter()
        .find(|ext| ext.id.eq_ignore_ascii_case(key))
    {
        return KeyTarget::Extension(extension);
    }
    let (urn, name) = super::filter::split_urn(key);
    match urn {
        Some(urn) if schema.core.id.eq_ignore_ascii_case(urn) => schema
            .attribute(None, name)
            .map_or(KeyTarget::Unknown, KeyTarget::Core),
        Some(urn) => match schema.schema(urn) {
            Some(extension) => extension
                .attribute(name)
                .map_or(KeyTarget::Unknown, |attribute| {
                    KeyTarget::ExtensionAttribute(extension, attribute)
                }),
            None => KeyTarget::Unknown,
        },
        None => schema
            .attribute(None, key)
            .map_or(KeyTarget::Unknown, KeyTarget::Core),
    }
}

/// The canonical form of an extension's object: its known attributes canonicalized, others kept.
pub fn canonical_extension(
    extension: &Schema,
    value: Value,
) -> Result<Map<String, Value>, ScimError> {
    let Value::Object(fields) = value else {
        return Err(ScimError::invalid_value(format!(
            "{} must be an object",
            extension.id
        )));
    };
    let mut canonical = Map::new();
    for (name, value) in fields {
        if value.is_null() {
            continue;
        }
        match extension.attribute(&name) {
            Some(attribute) => {
                let value = canonical_value(attribute, value)?;
                if !value.is_null() {
                    canonical.insert(attribute.name.to_owned(), value);
                }
            }
            None => {
                canonical.insert(name, value);
            }
        }
    }
    Ok(canonical)
}

/// RFC 3339 UTC text of a timestamp, as `meta.created` and `meta.lastModified` show it.
pub fn rfc3339(at: Timestamp) -> String {
    at.to_rfc3339()
}

/// The weak ETag of a resource version; also its `meta.version`.
pub fn etag(version: u64) -> String {
    format!("W/\"{version}\"")
}

/// Reads an `If-Match`/`If-None-Match` list: `*`, or the versions named (weak or strong tags).
pub fn etag_matches(header: &str, version: u64) -> bool {
    header.split(',').map(str::trim).any(|tag| {
        tag == "*"
            || tag
                .trim_start_matches("W/")
                .trim_matches('"')
                .parse::<u64>()
                .is_ok_and(|tagged| tagged == version)
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::scim::schema::{ENTERPRISE_USER, USER_RESOURCE};

    #[test]
    fn booleans_sent_as_strings_become_booleans() {
        let active = USER_RESOURCE.attribute(None, "active").unwrap();
        assert_eq!(canonical_value(active, json!("True")).unwrap(), json!(true));
        assert_eq!(
            canonical_value(active, json!("false")).unwrap(),
            json!(false)
        );
        assert!(canonical_value(active, json!("yes")).is_err());
        let emails = USER_RESOURCE.attribute(None, "emails").unwrap();
        assert_eq!(
            canonical_value(emails, json!({"Value": "a@x.io", "Primary": "True"})).unwrap(),
            json!([{"value": "a@x.io", "primary": true}])
        );
    }

    #[test]
    fn manager_is_accepted_as_string_object_or_array_and_kept_complex() {
        let manager = ENTERPRISE_USER.attribute("manager").unwrap();
        for sent in [
            json!("m1"),
            json!({"value": "m1"}),
            json!([{"value": "m1"}]),
        ] {
            assert_eq!(
                canonical_value(manager, sent).unwrap(),
                json!({"value": "m1"})
            );
        }
    }

    #[test]
    fn etags_compare_weak_and_strong_forms() {
        assert!(etag_matches("W/\"3\"", 3));
        assert!(etag_matches("\"3\"", 3));
        assert!(etag_matches("W/\"1\", W/\"3\"", 3));
        assert!(etag_matches("*", 9));
        assert!(!etag_matches("W/\"2\"", 3));
        assert_eq!(etag(4), "W/\"4\"");
    }

    #[test]
    fn timestamps_render_as_rfc3339_utc() {
        assert_eq!(rfc3339(Timestamp::from_micros(0)), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(Timestamp::from_micros(1_700_000_000_250_000)),
            "2023-11-14T22:13:20.25Z"
        );
    }
}
