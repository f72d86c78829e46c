//! Reading what clients send into canonical SCIM JSON: attribute names spelled as the schema
//! spells them, booleans sent as `"True"`/`"False"` turned into booleans, a single object or bare
//! string accepted where an array or complex value is expected (Entra's `manager` and `members`),
//! and `null` read as "not set".

use serde_json::{Map, Value};

use crate::error::ScimError;
use crate::schema::{Attribute, Kind, ResourceSchema, Schema};

/// Parses `true`/`false` sent as JSON booleans or as strings in any case.
pub fn lenient_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(flag) => Some(*flag),
        Value::String(text) if text.eq_ignore_ascii_case("true") => Some(true),
        Value::String(text) if text.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// The element that stands for a multi-valued attribute (RFC 7643 §2.4: the one marked
/// `primary`, read as roster reads booleans, else the first); a value given alone, as Entra sends
/// some, stands for itself.
pub fn primary_element(values: &Value) -> Option<&Value> {
    match values {
        Value::Array(elements) => elements
            .iter()
            .find(|element| {
                element
                    .as_object()
                    .and_then(|object| {
                        object
                            .iter()
                            .find(|(key, _)| key.eq_ignore_ascii_case("primary"))
                    })
                    .and_then(|(_, primary)| lenient_bool(primary))
                    == Some(true)
            })
            .or_else(|| elements.first()),
        Value::Null => None,
        single => Some(single),
    }
}

/// The canonical form of `value` for attribute `attribute`, typed as `/Schemas` says; `path`
/// names it in a refusal (`name.givenName`, `urn:…:User:manager.value`). `before` is the value
/// stored at the same place, on a replace or patch: a value equal to it is accepted again as it
/// is, so that data stored before types were enforced never blocks a write that carries it over.
pub fn canonical_value(
    attribute: &Attribute,
    value: Value,
    path: &str,
    before: Option<&Value>,
) -> Result<Value, ScimError> {
    if attribute.multi_valued {
        let items = match value {
            Value::Array(items) => items,
            Value::Null => return Ok(Value::Null),
            single => vec![single],
        };
        let before = before.and_then(Value::as_array);
        let items = items
            .into_iter()
            .filter(|item| !item.is_null())
            .enumerate()
            .map(|(index, item)| {
                canonical_single(
                    attribute,
                    item,
                    path,
                    before.and_then(|before| before.get(index)),
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(Value::Array(items));
    }
    match value {
        // A complex single value sent as a one-element array (Entra's `manager`).
        Value::Array(mut items) if attribute.kind == Kind::Complex && items.len() <= 1 => {
            match items.pop() {
                Some(item) => canonical_single(attribute, item, path, before),
                None => Ok(Value::Null),
            }
        }
        other => canonical_single(attribute, other, path, before),
    }
}

/// The refusal of a value of the wrong type, unless it is the value stored there before.
fn wrong_type(
    path: &str,
    expected: &str,
    value: Value,
    before: Option<&Value>,
) -> Result<Value, ScimError> {
    if before == Some(&value) {
        return Ok(value);
    }
    Err(ScimError::invalid_value(format!(
        "{path} must be {expected}, not {}",
        json_kind(&value)
    )))
}

fn canonical_single(
    attribute: &Attribute,
    value: Value,
    path: &str,
    before: Option<&Value>,
) -> Result<Value, ScimError> {
    match attribute.kind {
        Kind::Boolean => match lenient_bool(&value) {
            Some(flag) => Ok(Value::Bool(flag)),
            None => wrong_type(
                path,
                "a boolean (true or false, or the strings \"True\" and \"False\")",
                value,
                before,
            ),
        },
        Kind::Complex => match value {
            Value::Object(fields) => {
                let mut canonical = Map::new();
                for (name, value) in fields {
                    if value.is_null() {
                        continue;
                    }
                    match attribute.sub(&name) {
                        Some(sub) => {
                            let sub_path = format!("{path}.{}", sub.name);
                            let before = before.and_then(|before| before.get(sub.name));
                            canonical.insert(
                                sub.name.to_owned(),
                                canonical_value(sub, value, &sub_path, before)?,
                            );
                        }
                        None => {
                            canonical.insert(name, value);
                        }
                    }
                }
                Ok(Value::Object(canonical))
            }
            // A bare id where a reference object is expected (`manager`, `members`), a bare
            // address in `emails`.
            Value::String(text) if attribute.sub("value").is_some() => {
                let mut canonical = Map::new();
                canonical.insert("value".to_owned(), Value::String(text));
                Ok(Value::Object(canonical))
            }
            other => wrong_type(path, "an object", other, before),
        },
        Kind::Integer | Kind::Decimal => match value {
            Value::Number(_) => Ok(value),
            Value::String(ref text) => match text.parse::<serde_json::Number>() {
                Ok(number) => Ok(Value::Number(number)),
                Err(_) => wrong_type(path, "a number", value, before),
            },
            other => wrong_type(path, "a number", other, before),
        },
        Kind::String | Kind::Reference | Kind::Binary | Kind::DateTime => match value {
            Value::String(_) => Ok(value),
            other => wrong_type(path, "a string", other, before),
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
    let (urn, name) = crate::filter::split_urn(key);
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
/// `before` is the extension's object as stored (see [`canonical_value`]).
pub fn canonical_extension(
    extension: &Schema,
    value: Value,
    before: Option<&Value>,
) -> Result<Map<String, Value>, ScimError> {
    let Value::Object(fields) = value else {
        return Err(ScimError::invalid_value(format!(
            "{} must be an object, not {}",
            extension.id,
            json_kind(&value)
        )));
    };
    let mut canonical = Map::new();
    for (name, value) in fields {
        if value.is_null() {
            continue;
        }
        match extension.attribute(&name) {
            Some(attribute) => {
                let path = format!("{}:{}", extension.id, attribute.name);
                let before = before.and_then(|before| before.get(attribute.name));
                let value = canonical_value(attribute, value, &path, before)?;
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

/// Visits the attributes of a resource that lie outside its schemas, by the name they are stored
/// under: top-level attributes the schemas do not define (an IdP's custom extension attributes
/// among them) and unknown attributes inside a known extension's object (named `{urn}:{name}`).
/// The server stores and echoes them as sent, within its own limits.
pub fn for_each_extra_attribute(
    attributes: &Map<String, Value>,
    schema: &ResourceSchema,
    mut visit: impl FnMut(&str, &Value),
) {
    for (key, value) in attributes {
        match classify_key(schema, key) {
            KeyTarget::Unknown if key.eq_ignore_ascii_case("schemas") => {}
            KeyTarget::Unknown => visit(key, value),
            KeyTarget::Extension(extension) => {
                if let Value::Object(fields) = value {
                    for (name, value) in fields {
                        if extension.attribute(name).is_none() {
                            visit(&format!("{}:{name}", extension.id), value);
                        }
                    }
                }
            }
            KeyTarget::Core(_) | KeyTarget::ExtensionAttribute(..) => {}
        }
    }
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
    use crate::schema::{ENTERPRISE_USER, USER_RESOURCE};

    #[test]
    fn booleans_sent_as_strings_become_booleans() {
        let active = USER_RESOURCE.attribute(None, "active").unwrap();
        assert_eq!(
            canonical_value(active, json!("True"), "active", None).unwrap(),
            json!(true)
        );
        assert_eq!(
            canonical_value(active, json!("false"), "active", None).unwrap(),
            json!(false)
        );
        assert!(canonical_value(active, json!("yes"), "active", None).is_err());
        let emails = USER_RESOURCE.attribute(None, "emails").unwrap();
        assert_eq!(
            canonical_value(
                emails,
                json!({"Value": "a@x.io", "Primary": "True"}),
                "emails",
                None
            )
            .unwrap(),
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
                canonical_value(manager, sent, "manager", None).unwrap(),
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
    fn attributes_outside_the_schemas_are_visited_by_their_stored_name() {
        let user = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "ada",
            "costCenter": "R&D",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
                "department": "Research",
                "badge": 7
            }
        });
        let mut visited = Vec::new();
        for_each_extra_attribute(user.as_object().unwrap(), &USER_RESOURCE, |name, value| {
            visited.push((name.to_owned(), value.clone()));
        });
        assert_eq!(
            visited,
            vec![
                ("costCenter".to_owned(), json!("R&D")),
                (
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:badge".to_owned(),
                    json!(7)
                ),
            ]
        );
    }
}
