//! SCIM PATCH (RFC 7644 §3.5.2): parsing a PatchOp request and applying its operations, in
//! order and all or nothing, to a resource's JSON document.
//!
//! Besides the RFC, it accepts what real clients send (reference/scim-interop.md §2.4, §3):
//! `op` in any case; dotted, URN-qualified and value-filtered paths; path-less `add`/`replace`
//! whose value has dotted or URN-qualified keys (Entra's `aadOptscim062020` shape) or includes the
//! resource's own `id` (Okta); an `add`/`replace` through a value filter that matches nothing
//! creates the element (Entra); `remove` of a multi-valued attribute with a `value` removes just
//! those values (Entra's legacy member removal); removing something absent is not an error (IdPs
//! retry). Read-only attributes other than `id` are ignored.

use std::collections::HashSet;

use serde_json::{Map, Value};

use crate::error::ScimError;
use crate::filter::{self, Filter, Literal};
use crate::resource::json_kind;
use crate::schema::{Attribute, Kind, Mutability, ResourceSchema};

/// Operations accepted in one PATCH request, at most.
pub const MAX_OPERATIONS: usize = 1_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Add,
    Replace,
    Remove,
}

/// `[urn:]name[[filter]][.sub]`; `name` is empty when the path names a whole extension.
#[derive(Clone, Debug, PartialEq)]
pub struct PatchPath {
    /// Canonical URN of an extension schema; `None` for the core schema.
    pub urn: Option<String>,
    pub name: String,
    pub filter: Option<Filter>,
    pub sub: Option<String>,
}

impl PatchPath {
    pub fn is(&self, name: &str) -> bool {
        self.urn.is_none() && self.name.eq_ignore_ascii_case(name)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Operation {
    pub op: Op,
    pub path: Option<PatchPath>,
    pub value: Option<Value>,
}

/// Reads a PatchOp body.
pub fn parse_request(body: &Value, schema: &ResourceSchema) -> Result<Vec<Operation>, ScimError> {
    let operations = filter::get_ci(body, "Operations")
        .ok_or_else(|| ScimError::invalid_syntax("a PatchOp needs an \"Operations\" array"))?;
    let Value::Array(operations) = operations else {
        return Err(ScimError::invalid_syntax("\"Operations\" must be an array"));
    };
    if operations.len() > MAX_OPERATIONS {
        return Err(ScimError::invalid_value(format!(
            "a PATCH may carry at most {MAX_OPERATIONS} operations"
        )));
    }
    operations
        .iter()
        .map(|operation| parse_operation(operation, schema))
        .collect()
}

fn parse_operation(operation: &Value, schema: &ResourceSchema) -> Result<Operation, ScimError> {
    if !operation.is_object() {
        return Err(ScimError::invalid_syntax(
            "each operation must be an object",
        ));
    }
    let op = match filter::get_ci(operation, "op").and_then(Value::as_str) {
        Some(op) if op.eq_ignore_ascii_case("add") => Op::Add,
        Some(op) if op.eq_ignore_ascii_case("replace") => Op::Replace,
        Some(op) if op.eq_ignore_ascii_case("remove") => Op::Remove,
        Some(op) => {
            return Err(ScimError::invalid_syntax(format!(
                "unknown PATCH op {op:?}: expected add, replace or remove"
            )));
        }
        None => return Err(ScimError::invalid_syntax("each operation needs an \"op\"")),
    };
    let path = match filter::get_ci(operation, "path") {
        None | Some(Value::Null) => None,
        Some(Value::String(path)) if path.trim().is_empty() => None,
        Some(Value::String(path)) => Some(parse_path(path, schema)?),
        Some(_) => return Err(ScimError::invalid_path("\"path\" must be a string")),
    };
    let value = filter::get_ci(operation, "value").cloned();
    if op != Op::Remove && value.is_none() {
        return Err(ScimError::invalid_value(format!(
            "{} needs a \"value\"",
            if op == Op::Add { "add" } else { "replace" }
        )));
    }
    if op == Op::Remove && path.is_none() {
        return Err(ScimError::no_target("remove needs a \"path\""));
    }
    Ok(Operation { op, path, value })
}

/// Parses a PATCH path against `schema`.
pub fn parse_path(text: &str, schema: &ResourceSchema) -> Result<PatchPath, ScimError> {
    let text = text.trim();
    if let Some(extension) = schema
        .extensions
        .iter()
        .find(|extension| extension.id.eq_ignore_ascii_case(text))
    {
        return Ok(PatchPath {
            urn: Some(extension.id.to_owned()),
            name: String::new(),
            filter: None,
            sub: None,
        });
    }
    let (head, filter_text, tail) = match text.find('[') {
        Some(open) => {
            let close = closing_bracket(text, open).ok_or_else(|| {
                ScimError::invalid_path(format!("unbalanced '[' in path {text:?}"))
            })?;
            (
                &text[..open],
                Some(&text[open + 1..close]),
                &text[close + 1..],
            )
        }
        None => (text, None, ""),
    };
    let mut head = filter::parse_attr_path(head).map_err(ScimError::invalid_path)?;
    let urn = match &head.urn {
        // Entra sends extension attributes unqualified (`"path": "manager"`,
        // [MS-DEV Example 5]): a name the core schema lacks is looked up in
        // the extensions.
        None if schema.attribute(None, &head.name).is_none() => schema
            .extensions
            .iter()
            .find(|extension| extension.attribute(&head.name).is_some())
            .map(|extension| extension.id.to_owned()),
        None => None,
        Some(urn) if schema.core.id.eq_ignore_ascii_case(urn) => None,
        Some(urn) => match schema.schema(urn) {
            Some(extension) => Some(extension.id.to_owned()),
            // An extension roster has no schema for (Entra's custom extension
            // attributes, [MS-ATTR]) is kept as sent: one top-level member
            // named by the full URN, as a POST stores it.
            None => {
                head.name = format!("{urn}:{}", head.name);
                None
            }
        },
    };
    let sub = match (filter_text, head.sub, tail) {
        (None, sub, _) => sub,
        (Some(_), Some(_), _) => {
            return Err(ScimError::invalid_path(format!(
                "a value filter applies to an attribute in {text:?}"
            )));
        }
        (Some(_), None, "") => None,
        (Some(_), None, tail) => match tail.strip_prefix('.') {
            Some(sub)
                if filter::parse_attr_path(sub)
                    .is_ok_and(|p| p.sub.is_none() && p.urn.is_none()) =>
            {
                Some(sub.to_owned())
            }
            _ => {
                return Err(ScimError::invalid_path(format!(
                    "unexpected {tail:?} in path {text:?}"
                )));
            }
        },
    };
    let filter = match filter_text {
        Some(filter_text) => {
            let parsed = filter::parse(filter_text).map_err(|error| {
                ScimError::invalid_path(format!("in path {text:?}: {}", error.detail))
            })?;
            if let Some(attribute) = schema.attribute(urn.as_deref(), &head.name) {
                if attribute.kind != Kind::Complex || !attribute.multi_valued {
                    return Err(ScimError::invalid_path(format!(
                        "{} is not multi-valued and takes no value filter",
                        attribute.name
                    )));
                }
                validate_element_filter(&parsed, attribute)?;
            }
            Some(parsed)
        }
        None => None,
    };
    Ok(PatchPath {
        urn,
        name: head.name,
        filter,
        sub,
    })
}

fn validate_element_filter(filter: &Filter, parent: &'static Attribute) -> Result<(), ScimError> {
    match filter {
        Filter::Compare { path, .. } | Filter::Present(path) => {
            if parent.sub(&path.name).is_none() || path.sub.is_some() || path.urn.is_some() {
                return Err(ScimError::invalid_path(format!(
                    "{} has no sub-attribute {path}",
                    parent.name
                )));
            }
            Ok(())
        }
        Filter::And(left, right) | Filter::Or(left, right) => {
            validate_element_filter(left, parent)?;
            validate_element_filter(right, parent)
        }
        Filter::Not(inner) => validate_element_filter(inner, parent),
        Filter::ValuePath { .. } => Err(ScimError::invalid_path("value filters cannot be nested")),
    }
}

/// The index of the `]` closing the `[` at `open`, skipping quoted strings.
fn closing_bracket(text: &str, open: usize) -> Option<usize> {
    let mut in_string = false;
    let mut escaped = false;
    for (index, c) in text.char_indices().skip_while(|(index, _)| *index <= open) {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_string => escaped = true,
            '"' => in_string = !in_string,
            ']' if !in_string => return Some(index),
            _ => {}
        }
    }
    None
}

/// Applies `operations` in order to `document`. On error the document may be half-changed:
/// callers apply to a copy and discard it.
pub fn apply(
    document: &mut Map<String, Value>,
    operations: &[Operation],
    schema: &'static ResourceSchema,
) -> Result<(), ScimError> {
    for operation in operations {
        match (&operation.path, operation.op) {
            (Some(path), op) => apply_path(document, op, path, operation.value.as_ref(), schema)?,
            (None, Op::Remove) => return Err(ScimError::no_target("remove needs a \"path\"")),
            (None, op) => {
                let Some(Value::Object(fields)) = &operation.value else {
                    return Err(ScimError::invalid_value(
                        "an add or replace without a path needs an object value",
                    ));
                };
                for (key, value) in fields {
                    apply_key(document, op, key, value, schema)?;
                }
            }
        }
    }
    Ok(())
}

/// A path-less operation's key: an attribute, a dotted or URN-qualified path, or a whole
/// extension object.
fn apply_key(
    document: &mut Map<String, Value>,
    op: Op,
    key: &str,
    value: &Value,
    schema: &'static ResourceSchema,
) -> Result<(), ScimError> {
    if let Some(extension) = schema
        .extensions
        .iter()
        .find(|extension| extension.id.eq_ignore_ascii_case(key))
    {
        let Value::Object(fields) = value else {
            return Err(ScimError::invalid_value(format!(
                "{} must be an object",
                extension.id
            )));
        };
        for (name, value) in fields {
            let path = PatchPath {
                urn: Some(extension.id.to_owned()),
                name: name.clone(),
                filter: None,
                sub: None,
            };
            apply_path(document, op, &path, Some(value), schema)?;
        }
        return Ok(());
    }
    match parse_path(key, schema) {
        Ok(path) => apply_path(document, op, &path, Some(value), schema),
        // Not a path (an unknown key with unusual characters): store it as sent.
        Err(_) => {
            document.insert(key.to_owned(), value.clone());
            Ok(())
        }
    }
}

fn find_key(object: &Map<String, Value>, name: &str) -> Option<String> {
    if object.contains_key(name) {
        return Some(name.to_owned());
    }
    object
        .keys()
        .find(|key| key.eq_ignore_ascii_case(name))
        .cloned()
}

fn apply_path(
    document: &mut Map<String, Value>,
    op: Op,
    path: &PatchPath,
    value: Option<&Value>,
    schema: &'static ResourceSchema,
) -> Result<(), ScimError> {
    let attribute = if path.name.is_empty() {
        None
    } else {
        schema.attribute(path.urn.as_deref(), &path.name)
    };
    if let Some(attribute) = attribute
        && attribute.mutability == Mutability::ReadOnly
    {
        if attribute.name == "id" && path.urn.is_none() {
            let current = document.get("id");
            if op == Op::Remove || value != current {
                return Err(ScimError::mutability(
                    "id is assigned by the server and cannot change",
                ));
            }
        }
        return Ok(());
    }
    // The object that holds the attribute: the document, or an extension's object.
    let container = match &path.urn {
        None => document,
        Some(urn) => {
            let key = find_key(document, urn).unwrap_or_else(|| urn.clone());
            if path.name.is_empty() {
                return apply_whole_extension(document, op, &key, path, value, schema);
            }
            if op == Op::Remove && !document.contains_key(&key) {
                return Ok(());
            }
            let entry = document
                .entry(key)
                .or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            match entry {
                Value::Object(object) => object,
                _ => return Ok(()),
            }
        }
    };
    let key = find_key(container, &path.name)
        .unwrap_or_else(|| attribute.map_or_else(|| path.name.clone(), |a| a.name.to_owned()));
    let multi_valued = attribute.map_or_else(
        || container.get(&key).is_some_and(Value::is_array),
        |attribute| attribute.multi_valued,
    );
    match (&path.filter, &path.sub) {
        (Some(filter), sub) => apply_filtered(
            container,
            op,
            &key,
            filter,
            sub.as_deref(),
            value,
            attribute,
            schema,
        ),
        (None, Some(sub)) => {
            apply_sub(container, op, &key, sub, value, attribute);
            Ok(())
        }
        (None, None) => apply_whole(container, op, &key, value, attribute, multi_valued),
    }
}

fn apply_whole_extension(
    document: &mut Map<String, Value>,
    op: Op,
    key: &str,
    path: &PatchPath,
    value: Option<&Value>,
    schema: &'static ResourceSchema,
) -> Result<(), ScimError> {
    match op {
        Op::Remove => {
            document.remove(key);
            Ok(())
        }
        Op::Add | Op::Replace => {
            let Some(Value::Object(fields)) = value else {
                return Err(ScimError::invalid_value(format!(
                    "{} must be an object",
                    path.urn.as_deref().unwrap_or_default()
                )));
            };
            for (name, value) in fields {
                let path = PatchPath {
                    urn: path.urn.clone(),
                    name: name.clone(),
                    filter: None,
                    sub: None,
                };
                apply_path(document, op, &path, Some(value), schema)?;
            }
            Ok(())
        }
    }
}

fn sub_key(element: &Map<String, Value>, sub: &str, attribute: Option<&Attribute>) -> String {
    find_key(element, sub).unwrap_or_else(|| {
        attribute
            .and_then(|attribute| attribute.sub(sub))
            .map_or_else(|| sub.to_owned(), |sub| sub.name.to_owned())
    })
}

fn items(value: &Value) -> Vec<Value> {
    match value {
        Value::Array(items) => items
            .iter()
            .filter(|item| !item.is_null())
            .cloned()
            .collect(),
        Value::Null => Vec::new(),
        single => vec![single.clone()],
    }
}

/// The identity of a multi-valued element: its `value` when it has one.
/// What makes two elements of a multi-valued attribute the same one: their `value`
/// sub-attribute when they have one, else the whole element (as serialized). Computed once per
/// element so that adding or removing n values against m is O(n + m), not O(n·m).
fn element_identity(element: &Value) -> String {
    match element {
        Value::Object(_) => filter::get_ci(element, "value")
            .unwrap_or(element)
            .to_string(),
        other => other.to_string(),
    }
}

fn merge_into(
    target: &mut Map<String, Value>,
    fields: &Map<String, Value>,
    attribute: Option<&Attribute>,
) {
    for (name, value) in fields {
        let key = sub_key(target, name, attribute);
        if value.is_null() {
            target.remove(&key);
        } else {
            target.insert(key, value.clone());
        }
    }
}

fn apply_whole(
    container: &mut Map<String, Value>,
    op: Op,
    key: &str,
    value: Option<&Value>,
    attribute: Option<&Attribute>,
    multi_valued: bool,
) -> Result<(), ScimError> {
    let complex = attribute.is_some_and(|attribute| attribute.kind == Kind::Complex);
    match op {
        Op::Remove => {
            match (multi_valued, value, container.get_mut(key)) {
                // Remove only the given values (Entra's legacy member removal).
                (true, Some(value), Some(Value::Array(existing))) if !value.is_null() => {
                    let doomed: HashSet<String> =
                        items(value).iter().map(element_identity).collect();
                    existing.retain(|element| !doomed.contains(&element_identity(element)));
                    if existing.is_empty() {
                        container.remove(key);
                    }
                }
                _ => {
                    container.remove(key);
                }
            }
            Ok(())
        }
        Op::Add if multi_valued => {
            let Some(value) = value else { return Ok(()) };
            let mut existing = match container.remove(key) {
                Some(Value::Array(existing)) => existing,
                Some(Value::Null) | None => Vec::new(),
                Some(other) => vec![other],
            };
            let mut present: HashSet<String> = existing.iter().map(element_identity).collect();
            for item in items(value) {
                if present.insert(element_identity(&item)) {
                    existing.push(item);
                }
            }
            container.insert(key.to_owned(), Value::Array(existing));
            Ok(())
        }
        Op::Replace if multi_valued => {
            let Some(value) = value else { return Ok(()) };
            let replacement = items(value);
            if replacement.is_empty() {
                container.remove(key);
            } else {
                container.insert(key.to_owned(), Value::Array(replacement));
            }
            Ok(())
        }
        Op::Add | Op::Replace => {
            let Some(value) = value else { return Ok(()) };
            match (container.get_mut(key), value) {
                // Sub-attributes given replace or add; those not given are left unchanged.
                (Some(Value::Object(existing)), Value::Object(fields))
                    if complex || attribute.is_none() =>
                {
                    merge_into(existing, fields, attribute);
                }
                (_, Value::Null) => {
                    container.remove(key);
                }
                (_, Value::Object(fields)) if complex => {
                    let mut fresh = Map::new();
                    merge_into(&mut fresh, fields, attribute);
                    container.insert(key.to_owned(), Value::Object(fresh));
                }
                (_, value) => {
                    container.insert(key.to_owned(), value.clone());
                }
            }
            Ok(())
        }
    }
}

fn apply_sub(
    container: &mut Map<String, Value>,
    op: Op,
    key: &str,
    sub: &str,
    value: Option<&Value>,
    attribute: Option<&Attribute>,
) {
    match (op, container.get_mut(key)) {
        (Op::Remove, Some(Value::Object(object))) => {
            let sub = sub_key(object, sub, attribute);
            object.remove(&sub);
        }
        (Op::Remove, Some(Value::Array(elements))) => {
            for element in elements.iter_mut() {
                if let Value::Object(object) = element {
                    let sub = sub_key(object, sub, attribute);
                    object.remove(&sub);
                }
            }
        }
        (Op::Remove, _) => {}
        (_, Some(Value::Array(elements))) => {
            for element in elements.iter_mut() {
                if let Value::Object(object) = element {
                    let sub = sub_key(object, sub, attribute);
                    object.insert(sub, value.cloned().unwrap_or(Value::Null));
                }
            }
        }
        (_, existing) => {
            let mut object = match existing {
                Some(Value::Object(object)) => std::mem::take(object),
                _ => Map::new(),
            };
            let sub = sub_key(&object, sub, attribute);
            match value {
                Some(Value::Null) | None => {
                    object.remove(&sub);
                }
                Some(value) => {
                    object.insert(sub, value.clone());
                }
            }
            container.insert(key.to_owned(), Value::Object(object));
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn apply_filtered(
    container: &mut Map<String, Value>,
    op: Op,
    key: &str,
    filter: &Filter,
    sub: Option<&str>,
    value: Option<&Value>,
    attribute: Option<&'static Attribute>,
    schema: &ResourceSchema,
) -> Result<(), ScimError> {
    let mut elements = match container.remove(key) {
        Some(Value::Array(elements)) => elements,
        Some(Value::Null) | None => Vec::new(),
        Some(other) => vec![other],
    };
    let matching: Vec<usize> = elements
        .iter()
        .enumerate()
        .filter(|(_, element)| filter::matches_element(filter, element, schema, attribute))
        .map(|(index, _)| index)
        .collect();
    match op {
        Op::Remove => match sub {
            Some(sub) => {
                for index in &matching {
                    if let Some(Value::Object(object)) = elements.get_mut(*index) {
                        let sub = sub_key(object, sub, attribute);
                        object.remove(&sub);
                    }
                }
            }
            None => {
                let mut index = 0;
                elements.retain(|_| {
                    let keep = !matching.contains(&index);
                    index += 1;
                    keep
                });
            }
        },
        Op::Add | Op::Replace => {
            let value = value.cloned().unwrap_or(Value::Null);
            if matching.is_empty() {
                // Entra: a filtered add or replace that matches nothing creates the element.
                let mut element = Map::new();
                equality_fields(filter, attribute, &mut element);
                match (sub, &value) {
                    (Some(sub), value) => {
                        let sub = sub_key(&element, sub, attribute);
                        element.insert(sub, value.clone());
                    }
                    (None, Value::Object(fields)) => merge_into(&mut element, fields, attribute),
                    (None, other) => {
                        return Err(ScimError::invalid_value(format!(
                            "a value for {key}[…] must be an object, not {}",
                            json_kind(other)
                        )));
                    }
                }
                elements.push(Value::Object(element));
            }
            for index in matching {
                let Some(Value::Object(object)) = elements.get_mut(index) else {
                    continue;
                };
                match (sub, &value) {
                    (Some(sub), value) => {
                        let sub = sub_key(object, sub, attribute);
                        object.insert(sub, value.clone());
                    }
                    (None, Value::Object(fields)) if op == Op::Add => {
                        merge_into(object, fields, attribute)
                    }
                    (None, Value::Object(fields)) => {
                        let mut fresh = Map::new();
                        merge_into(&mut fresh, fields, attribute);
                        *object = fresh;
                    }
                    (None, other) => {
                        return Err(ScimError::invalid_value(format!(
                            "a value for {key}[…] must be an object, not {}",
                            json_kind(other)
                        )));
                    }
                }
            }
        }
    }
    if !elements.is_empty() {
        container.insert(key.to_owned(), Value::Array(elements));
    }
    Ok(())
}

/// The `attr eq value` terms of a filter's top-level conjunction, as element fields.
fn equality_fields(
    filter: &Filter,
    attribute: Option<&Attribute>,
    element: &mut Map<String, Value>,
) {
    match filter {
        Filter::Compare {
            path,
            op: filter::CompareOp::Eq,
            value,
        } if path.sub.is_none() => {
            let name = attribute
                .and_then(|attribute| attribute.sub(&path.name))
                .map_or_else(|| path.name.clone(), |sub| sub.name.to_owned());
            let value = match value {
                Literal::Null => return,
                Literal::Bool(flag) => Value::Bool(*flag),
                Literal::Number(number) => {
                    serde_json::Number::from_f64(*number).map_or(Value::Null, Value::Number)
                }
                Literal::String(text) => Value::String(text.clone()),
            };
            element.insert(name, value);
        }
        Filter::And(left, right) => {
            equality_fields(left, attribute, element);
            equality_fields(right, attribute, element);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::schema::USER_RESOURCE;

    fn patched(document: Value, body: Value) -> Result<Value, ScimError> {
        let Value::Object(mut document) = document else {
            panic!("object")
        };
        let operations = parse_request(&body, &USER_RESOURCE)?;
        apply(&mut document, &operations, &USER_RESOURCE)?;
        Ok(Value::Object(document))
    }

    fn user() -> Value {
        json!({
            "id": "u1",
            "userName": "bjensen",
            "active": true,
            "name": {"givenName": "Barbara", "familyName": "Jensen"},
            "emails": [{"value": "b@work.io", "type": "work", "primary": true}]
        })
    }

    fn ops(operations: Value) -> Value {
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": operations})
    }

    #[test]
    fn entra_default_mode_replace_ops_with_capitalized_op_and_filtered_paths() {
        let result = patched(
            user(),
            ops(json!([
                {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "new@work.io"},
                {"op": "Replace", "path": "name.familyName", "value": "Smith"},
                {"op": "Replace", "path": "active", "value": "False"}
            ])),
        )
        .unwrap();
        assert_eq!(result["emails"][0]["value"], json!("new@work.io"));
        assert_eq!(result["emails"][0]["primary"], json!(true));
        assert_eq!(
            result["name"],
            json!({"givenName": "Barbara", "familyName": "Smith"})
        );
        assert_eq!(result["active"], json!("False"));
    }

    #[test]
    fn entra_flag_mode_pathless_replace_with_dotted_and_urn_keys() {
        let result = patched(
            user(),
            ops(json!([{"op": "replace", "value": {
                "displayName": "Bjfe",
                "name.givenName": "Kkom",
                "name.familyName": "Unua",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "Aklq"
            }}])),
        )
        .unwrap();
        assert_eq!(result["displayName"], json!("Bjfe"));
        assert_eq!(
            result["name"],
            json!({"givenName": "Kkom", "familyName": "Unua"})
        );
        assert_eq!(
            result["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
            json!({"employeeNumber": "Aklq"})
        );
    }

    #[test]
    fn add_through_a_filter_that_matches_nothing_creates_the_element() {
        let result = patched(
            user(),
            ops(json!([{"op": "add", "path": "emails[type eq \"home\"].value", "value": "b@home.io"}])),
        )
        .unwrap();
        assert_eq!(
            result["emails"][1],
            json!({"type": "home", "value": "b@home.io"})
        );
        let result = patched(
            json!({"userName": "x"}),
            ops(json!([{"op": "Add", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "+1"}])),
        )
        .unwrap();
        assert_eq!(
            result["phoneNumbers"],
            json!([{"type": "mobile", "value": "+1"}])
        );
    }

    #[test]
    fn okta_pathless_replace_with_the_resources_own_id_is_accepted() {
        let result = patched(
            user(),
            ops(json!([{"op": "replace", "value": {"id": "u1", "active": false}}])),
        )
        .unwrap();
        assert_eq!(result["active"], json!(false));
        let error = patched(
            user(),
            ops(json!([{"op": "replace", "value": {"id": "other"}}])),
        )
        .unwrap_err();
        assert_eq!(error.scim_type, Some("mutability"));
    }

    #[test]
    fn urn_qualified_manager_accepts_a_bare_string() {
        let result = patched(
            user(),
            ops(json!([{"op": "add",
                "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
                "value": "2c2f6fb8"}])),
        )
        .unwrap();
        assert_eq!(
            result["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["manager"],
            json!("2c2f6fb8")
        );
    }

    #[test]
    fn remove_by_filter_by_value_list_and_whole() {
        let document = json!({"userName": "x", "emails": [
            {"value": "a@x.io", "type": "work"}, {"value": "b@x.io", "type": "home"}, {"value": "c@x.io", "type": "other"}
        ]});
        let result = patched(
            document.clone(),
            ops(json!([{"op": "remove", "path": "emails[type eq \"home\"]"}])),
        )
        .unwrap();
        assert_eq!(result["emails"].as_array().unwrap().len(), 2);
        let result = patched(
            document.clone(),
            ops(json!([{"op": "Remove", "path": "emails", "value": [{"value": "a@x.io"}]}])),
        )
        .unwrap();
        assert_eq!(result["emails"].as_array().unwrap().len(), 2);
        let result = patched(document, ops(json!([{"op": "remove", "path": "emails"}]))).unwrap();
        assert!(result.get("emails").is_none());
        // Removing what is not there is not an error.
        assert!(patched(user(), ops(json!([{"op": "remove", "path": "title"}]))).is_ok());
        assert!(
            patched(
                user(),
                ops(json!([{"op": "remove", "path": "emails[type eq \"none\"]"}]))
            )
            .is_ok()
        );
    }

    #[test]
    fn add_to_multi_valued_appends_without_duplicates() {
        let result = patched(
            user(),
            ops(json!([{"op": "add", "path": "emails", "value": [
                {"value": "b@work.io", "type": "work"}, {"value": "c@x.io", "type": "other"}
            ]}])),
        )
        .unwrap();
        assert_eq!(result["emails"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn paths_are_case_insensitive() {
        let result = patched(
            user(),
            ops(json!([{"op": "replace", "path": "NAME.GIVENNAME", "value": "B"},
                       {"op": "replace", "path": "Emails[Type eq \"WORK\"].Value", "value": "w@x.io"}])),
        )
        .unwrap();
        assert_eq!(result["name"]["givenName"], json!("B"));
        assert_eq!(result["emails"][0]["value"], json!("w@x.io"));
    }

    #[test]
    fn malformed_requests_get_the_right_scim_type() {
        let cases = [
            (json!({}), "invalidSyntax"),
            (json!({"Operations": {}}), "invalidSyntax"),
            (
                ops(json!([{"op": "frobnicate", "path": "title", "value": 1}])),
                "invalidSyntax",
            ),
            (ops(json!([{"op": "remove"}])), "noTarget"),
            (
                ops(json!([{"op": "add", "path": "emails[type eq \"work\"", "value": 1}])),
                "invalidPath",
            ),
            (
                ops(json!([{"op": "add", "path": "emails[nosuch eq 1].value", "value": 1}])),
                "invalidPath",
            ),
            (ops(json!([{"op": "add", "path": "title"}])), "invalidValue"),
            (
                ops(json!([{"op": "add", "value": "not an object"}])),
                "invalidValue",
            ),
        ];
        for (body, scim_type) in cases {
            let error = patched(user(), body.clone()).unwrap_err();
            assert_eq!(error.scim_type, Some(scim_type), "{body}");
        }
    }

    #[test]
    fn unknown_extension_paths_are_kept_flat_and_unqualified_names_find_their_extension() {
        let custom = "urn:ietf:params:scim:schemas:extension:Custom:2.0:User:colour";
        let result = patched(
            user(),
            ops(json!([
                {"op": "replace", "path": custom, "value": "green"},
                {"op": "add", "path": "department", "value": "R&D"},
            ])),
        )
        .unwrap();
        assert_eq!(result[custom], "green");
        assert_eq!(
            result["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["department"],
            "R&D"
        );
        assert!(result.get("department").is_none());
    }

    #[test]
    fn read_only_attributes_are_ignored() {
        let result = patched(
            user(),
            ops(
                json!([{"op": "replace", "path": "meta", "value": {"version": "x"}},
                       {"op": "add", "path": "groups", "value": [{"value": "g"}]}]),
            ),
        )
        .unwrap();
        assert_eq!(result, user());
    }

    #[test]
    fn whole_extension_objects_merge() {
        let result = patched(
            user(),
            ops(json!([{"op": "add", "value": {
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "R&D"}
            }}, {"op": "add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
                 "value": {"costCenter": "42"}}])),
        )
        .unwrap();
        assert_eq!(
            result["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
            json!({"department": "R&D", "costCenter": "42"})
        );
    }
}
