//! Query parameters of SCIM reads (RFC 7644 §3.4.2, §3.9): `filter`, `startIndex`, `count`,
//! `attributes`, `excludedAttributes`; the ListResponse; and attribute selection applied to any
//! resource returned.

use serde_json::{Map, Value, json};

use super::error::ScimError;
use super::filter::{get_ci, parse_attr_path};
use super::schema::{LIST_RESPONSE_SCHEMA, ResourceSchema};

/// Page size when the client gives no `count`.
pub const DEFAULT_COUNT: usize = 100;
/// Largest page served, advertised as `filter.maxResults`.
pub const MAX_RESULTS: usize = 1000;

/// Which attributes to return.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Selection {
    pub attributes: Vec<String>,
    pub excluded: Vec<String>,
}

/// The query of a list or search request.
#[derive(Clone, Debug, PartialEq)]
pub struct ListQuery {
    pub filter: Option<String>,
    /// 1-based.
    pub start_index: usize,
    pub count: usize,
    pub selection: Selection,
}

fn split_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

impl Selection {
    /// Reads `attributes` and `excludedAttributes` from query pairs (names case-insensitive).
    pub fn from_query(pairs: &[(String, String)]) -> Self {
        let mut selection = Self::default();
        for (name, value) in pairs {
            if name.eq_ignore_ascii_case("attributes") {
                selection.attributes.extend(split_list(value));
            } else if name.eq_ignore_ascii_case("excludedAttributes") {
                selection.excluded.extend(split_list(value));
            }
        }
        selection
    }

    pub fn is_empty(&self) -> bool {
        self.attributes.is_empty() && self.excluded.is_empty()
    }

    /// Whether the attribute `name` (top level, core schema) will be in the output.
    pub fn includes(&self, name: &str) -> bool {
        let names = |list: &[String]| {
            list.iter().any(|item| {
                let head = item.split(['.', '[']).next().unwrap_or_default();
                let (_, attribute) = super::filter::split_urn(head);
                attribute.eq_ignore_ascii_case(name)
            })
        };
        if !self.attributes.is_empty() {
            return names(&self.attributes);
        }
        !self
            .excluded
            .iter()
            .any(|item| item.eq_ignore_ascii_case(name))
    }

    /// Applies the selection to a rendered resource. `id` and `schemas` are always returned.
    pub fn apply(&self, resource: Value, schema: &ResourceSchema) -> Value {
        let Value::Object(source) = resource else {
            return resource;
        };
        let mut output = if self.attributes.is_empty() {
            source
        } else {
            let mut selected = Map::new();
            for always in ["schemas", "id"] {
                if let Some(value) = source.get(always) {
                    selected.insert(always.to_owned(), value.clone());
                }
            }
            for path in &self.attributes {
                copy_path(&source, &mut selected, path, schema);
            }
            selected
        };
        for path in &self.excluded {
            remove_path(&mut output, path, schema);
        }
        Value::Object(output)
    }
}

/// Where a selection path points: (container key for an extension, attribute, sub-attribute).
fn locate(path: &str, schema: &ResourceSchema) -> Option<(Option<String>, String, Option<String>)> {
    if let Some(extension) = schema
        .extensions
        .iter()
        .find(|ext| ext.id.eq_ignore_ascii_case(path))
    {
        return Some((None, extension.id.to_owned(), None));
    }
    let parsed = parse_attr_path(path).ok()?;
    let container = match parsed.urn {
        Some(urn) if !schema.core.id.eq_ignore_ascii_case(&urn) => Some(
            schema
                .schema(&urn)
                .map_or(urn, |extension| extension.id.to_owned()),
        ),
        _ => None,
    };
    Some((container, parsed.name, parsed.sub))
}

fn find_key(object: &Map<String, Value>, name: &str) -> Option<String> {
    object
        .keys()
        .find(|key| key.eq_ignore_ascii_case(name))
        .cloned()
}

fn only_sub(value: &Value, sub: &str) -> Option<Value> {
    match value {
        Value::Object(_) => get_ci(value, sub).map(|inner| {
            let mut kept = Map::new();
            if let Some(key) = value.as_object().and_then(|object| find_key(object, sub)) {
                kept.insert(key, inner.clone());
            }
            Value::Object(kept)
        }),
        Value::Array(elements) => Some(Value::Array(
            elements
                .iter()
                .filter_map(|element| only_sub(element, sub))
                .collect(),
        )),
        _ => None,
    }
}

fn copy_path(
    source: &Map<String, Value>,
    output: &mut Map<String, Value>,
    path: &str,
    schema: &ResourceSchema,
) {
    let Some((container, name, sub)) = locate(path, schema) else {
        return;
    };
    let (from, to) = match &container {
        Some(container) => {
            let Some(key) = find_key(source, container) else {
                return;
            };
            let Some(Value::Object(from)) = source.get(&key) else {
                return;
            };
            let to = output
                .entry(key)
                .or_insert_with(|| Value::Object(Map::new()));
            let Value::Object(to) = to else { return };
            (from, to)
        }
        None => (source, &mut *output),
    };
    let Some(key) = find_key(from, &name) else {
        return;
    };
    let Some(value) = from.get(&key) else { return };
    match sub {
        None => {
            to.insert(key, value.clone());
        }
        Some(sub) => {
            if let Some(selected) = only_sub(value, &sub) {
                match (to.get_mut(&key), selected) {
                    (Some(Value::Object(existing)), Value::Object(more)) => existing.extend(more),
                    (_, selected) => {
                        to.insert(key, selected);
                    }
                }
            }
        }
    }
}

fn remove_path(output: &mut Map<String, Value>, path: &str, schema: &ResourceSchema) {
    let Some((container, name, sub)) = locate(path, schema) else {
        return;
    };
    if container.is_none()
        && (name.eq_ignore_ascii_case("id") || name.eq_ignore_ascii_case("schemas"))
    {
        return;
    }
    let target = match &container {
        Some(container) => match find_key(output, container).and_then(|key| output.get_mut(&key)) {
            Some(Value::Object(target)) => target,
            _ => return,
        },
        None => output,
    };
    let Some(key) = find_key(target, &name) else {
        return;
    };
    match sub {
        None => {
            target.remove(&key);
        }
        Some(sub) => match target.get_mut(&key) {
            Some(Value::Object(object)) => {
                if let Some(sub_key) = find_key(object, &sub) {
                    object.remove(&sub_key);
                }
            }
            Some(Value::Array(elements)) => {
                for element in elements {
                    if let Value::Object(object) = element
                        && let Some(sub_key) = find_key(object, &sub)
                    {
                        object.remove(&sub_key);
                    }
                }
            }
            _ => {}
        },
    }
}

impl ListQuery {
    /// Reads the query pairs of a GET list request. Unknown parameters are ignored; a
    /// `startIndex` below 1 reads as 1 and a negative `count` as 0 (RFC 7644 §3.4.2.4).
    pub fn from_query(pairs: &[(String, String)]) -> Result<Self, ScimError> {
        let mut query = ListQuery {
            filter: None,
            start_index: 1,
            count: DEFAULT_COUNT,
            selection: Selection::from_query(pairs),
        };
        for (name, value) in pairs {
            if name.eq_ignore_ascii_case("filter") {
                let value = value.trim();
                if !value.is_empty() {
                    query.filter = Some(value.to_owned());
                }
            } else if name.eq_ignore_ascii_case("startIndex") {
                query.start_index = parse_integer(value, "startIndex")?.max(1) as usize;
            } else if name.eq_ignore_ascii_case("count") {
                query.count = parse_integer(value, "count")?.clamp(0, MAX_RESULTS as i64) as usize;
            }
        }
        Ok(query)
    }

    /// The zero-based range of matches this page covers.
    pub fn window(&self) -> std::ops::Range<usize> {
        let start = self.start_index - 1;
        start..start.saturating_add(self.count)
    }
}

fn parse_integer(value: &str, name: &str) -> Result<i64, ScimError> {
    value
        .trim()
        .parse::<i64>()
        .map_err(|_| ScimError::invalid_value(format!("{name} must be an integer")))
}

/// A ListResponse of one page.
pub fn list_response(total: usize, start_index: usize, resources: Vec<Value>) -> Value {
    json!({
        "schemas": [LIST_RESPONSE_SCHEMA],
        "totalResults": total,
        "startIndex": start_index,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::schema::USER_RESOURCE;

    fn pairs(query: &[(&str, &str)]) -> Vec<(String, String)> {
        query
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn paging_parameters_are_clamped_not_rejected() {
        let query = ListQuery::from_query(&pairs(&[("startIndex", "0"), ("count", "-5")])).unwrap();
        assert_eq!((query.start_index, query.count), (1, 0));
        let query = ListQuery::from_query(&pairs(&[("count", "100000")])).unwrap();
        assert_eq!(query.count, MAX_RESULTS);
        assert!(ListQuery::from_query(&pairs(&[("count", "many")])).is_err());
        let query = ListQuery::from_query(&pairs(&[
            ("startIndex", "3"),
            ("count", "2"),
            ("unknown", "x"),
        ]))
        .unwrap();
        assert_eq!(query.window(), 2..4);
    }

    #[test]
    fn attributes_keep_only_what_is_asked_plus_id_and_schemas() {
        let user = json!({"schemas": ["s"], "id": "1", "userName": "a", "active": true,
            "name": {"givenName": "A", "familyName": "B"},
            "emails": [{"value": "a@x", "type": "work"}],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "D", "costCenter": "C"},
            "meta": {"version": "W/\"1\""}});
        let selection = Selection::from_query(&pairs(&[(
            "attributes",
            "userName,name.givenName,emails.value,urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
        )]));
        assert_eq!(
            selection.apply(user.clone(), &USER_RESOURCE),
            json!({"schemas": ["s"], "id": "1", "userName": "a", "name": {"givenName": "A"},
                   "emails": [{"value": "a@x"}],
                   "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "D"}})
        );
        let selection = Selection::from_query(&pairs(&[(
            "excludedAttributes",
            "emails,name.familyName,id,meta",
        )]));
        let trimmed = selection.apply(user, &USER_RESOURCE);
        assert!(trimmed.get("emails").is_none());
        assert!(trimmed.get("meta").is_none());
        assert_eq!(trimmed["name"], json!({"givenName": "A"}));
        assert_eq!(trimmed["id"], json!("1"));
    }
}
