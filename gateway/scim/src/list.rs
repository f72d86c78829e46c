//! Query parameters of SCIM reads (RFC 7644 §3.4.2, §3.9): `filter`, `startIndex`, `count`,
//! `attributes`, `excludedAttributes`, and `cursor` (RFC 9865, see `cursor`); the ListResponse;
//! and attribute selection applied to any resource returned.

use serde_json::{Map, Value, json};

use crate::error::ScimError;
use crate::filter::{Filter, get_ci, parse_attr_path};
use crate::schema::{LIST_RESPONSE_SCHEMA, ResourceSchema};
use crate::sort::SortSpec;

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
    pub sort_by: Option<String>,
    pub sort_order: Option<String>,
    /// RFC 9865 cursor paging: `Some("")` asks for the first page.
    pub cursor: Option<String>,
}

/// A list or search request validated against one resource type.
#[derive(Clone, Debug)]
pub struct Search {
    pub filter: Option<Filter>,
    /// The filter as sent (to see which attributes it needs rendered).
    pub filter_text: Option<String>,
    pub sort: Option<SortSpec>,
    /// 1-based.
    pub start_index: usize,
    pub count: usize,
    pub selection: Selection,
    /// Cursor paging (as sent; decoded by the resource type's search): at least one per page,
    /// never with a sort.
    pub cursor: Option<String>,
}

impl Search {
    /// The zero-based range of matches this page covers.
    pub fn window(&self) -> std::ops::Range<usize> {
        let start = self.start_index - 1;
        start..start.saturating_add(self.count)
    }

    /// Whether the filter or the sort mentions attribute `name` (so it must be rendered).
    pub fn mentions(&self, name: &str) -> bool {
        let name = name.to_ascii_lowercase();
        self.filter_text
            .as_deref()
            .is_some_and(|text| text.to_ascii_lowercase().contains(&name))
            || self.sort.as_ref().is_some_and(|sort| sort.names(&name))
    }
}

fn split_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Checks one item of `attributes` or `excludedAttributes`: an attribute path (RFC 7644 §3.10:
/// `name`, `name.sub`, either behind a schema URN, or a schema URN alone), never a value filter
/// (`emails[type eq "work"]`), which only PATCH paths and filters may hold. 400 `invalidPath`.
fn check_selection_path(parameter: &str, path: &str) -> Result<(), ScimError> {
    if path.contains(['[', ']']) {
        return Err(ScimError::invalid_path(format!(
            "{parameter} lists attribute names; {path:?} holds a value filter, which only \
             filters and PATCH paths may: select the whole attribute (or a sub-attribute) instead"
        )));
    }
    parse_attr_path(path)
        .map(drop)
        .map_err(|message| ScimError::invalid_path(format!("in {parameter}: {message}")))
}

impl Selection {
    /// Reads `attributes` and `excludedAttributes` from query pairs (names case-insensitive).
    /// An item that is not an attribute path (a value filter, `name.sub.more`, `a b`) is 400
    /// `invalidPath`, never ignored.
    pub fn from_query(pairs: &[(String, String)]) -> Result<Self, ScimError> {
        let mut selection = Self::default();
        for (name, value) in pairs {
            let (parameter, list) = if name.eq_ignore_ascii_case("attributes") {
                ("attributes", &mut selection.attributes)
            } else if name.eq_ignore_ascii_case("excludedAttributes") {
                ("excludedAttributes", &mut selection.excluded)
            } else {
                continue;
            };
            for path in split_list(value) {
                check_selection_path(parameter, &path)?;
                list.push(path);
            }
        }
        Ok(selection)
    }

    pub fn is_empty(&self) -> bool {
        self.attributes.is_empty() && self.excluded.is_empty()
    }

    /// Whether the attribute `name` (top level, core schema) will be in the output.
    pub fn includes(&self, name: &str) -> bool {
        let names = |list: &[String]| {
            list.iter().any(|item| {
                let head = item.split(['.', '[']).next().unwrap_or_default();
                let (_, attribute) = crate::filter::split_urn(head);
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

    /// Whether `path` (e.g. `members.display`) is named in `attributes`: what attributes
    /// returned only on request need.
    pub fn requests(&self, path: &str) -> bool {
        self.attributes
            .iter()
            .any(|item| item.eq_ignore_ascii_case(path))
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
            drop_empty_elements(&mut selected);
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
        // Positions are kept (an element without the sub-attribute becomes `{}`), so that
        // several sub-attributes of one multi-valued attribute merge element by element; the
        // empty elements are dropped at the end of `Selection::apply`.
        Value::Array(elements) => Some(Value::Array(
            elements
                .iter()
                .map(|element| only_sub(element, sub).unwrap_or_else(|| Value::Object(Map::new())))
                .collect(),
        )),
        _ => None,
    }
}

/// Removes the `{}` elements sub-attribute selection leaves in multi-valued attributes (of the
/// resource and of its extension objects).
fn drop_empty_elements(resource: &mut Map<String, Value>) {
    for value in resource.values_mut() {
        match value {
            Value::Array(elements) => elements
                .retain(|element| !matches!(element, Value::Object(object) if object.is_empty())),
            Value::Object(extension) => {
                for inner in extension.values_mut() {
                    if let Value::Array(elements) = inner {
                        elements.retain(|element| {
                            !matches!(element, Value::Object(object) if object.is_empty())
                        });
                    }
                }
            }
            _ => {}
        }
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
                    (Some(Value::Array(existing)), Value::Array(more))
                        if existing.len() == more.len() =>
                    {
                        for (into, from) in existing.iter_mut().zip(more) {
                            if let (Value::Object(into), Value::Object(from)) = (into, from) {
                                into.extend(from);
                            }
                        }
                    }
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
            selection: Selection::from_query(pairs)?,
            sort_by: None,
            sort_order: None,
            cursor: None,
        };
        let mut start_index_sent = false;
        for (name, value) in pairs {
            let value = value.trim();
            if name.eq_ignore_ascii_case("filter") {
                if !value.is_empty() {
                    query.filter = Some(value.to_owned());
                }
            } else if name.eq_ignore_ascii_case("startIndex") {
                query.start_index = parse_integer(value, "startIndex")?.max(1) as usize;
                start_index_sent = true;
            } else if name.eq_ignore_ascii_case("count") {
                query.count = parse_integer(value, "count")?.clamp(0, MAX_RESULTS as i64) as usize;
            } else if name.eq_ignore_ascii_case("sortBy") {
                if !value.is_empty() {
                    query.sort_by = Some(value.to_owned());
                }
            } else if name.eq_ignore_ascii_case("sortOrder") && !value.is_empty() {
                query.sort_order = Some(value.to_owned());
            } else if name.eq_ignore_ascii_case("cursor") {
                query.cursor = Some(value.to_owned());
            }
        }
        if start_index_sent && query.cursor.is_some() {
            return Err(ScimError::invalid_value(
                "startIndex and cursor ask for different paging methods (RFC 9865): send one",
            ));
        }
        Ok(query)
    }

    /// Reads the body of a `POST .search` (RFC 7644 §3.4.3): the same parameters as a GET list,
    /// as JSON (`attributes` and `excludedAttributes` as arrays or comma-separated strings).
    pub fn from_search_request(body: &Value) -> Result<Self, ScimError> {
        let Value::Object(request) = body else {
            return Err(ScimError::invalid_syntax(
                "a SearchRequest must be a JSON object",
            ));
        };
        let mut pairs = Vec::new();
        for (name, value) in request {
            let text = match value {
                Value::Null => continue,
                Value::String(text) => text.clone(),
                Value::Number(number) => number.to_string(),
                Value::Array(items) if !name.eq_ignore_ascii_case("schemas") => items
                    .iter()
                    .map(|item| {
                        item.as_str().map(str::to_owned).ok_or_else(|| {
                            ScimError::invalid_value(format!("{name} must list attribute names"))
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?
                    .join(","),
                _ if name.eq_ignore_ascii_case("schemas") => continue,
                _ => {
                    return Err(ScimError::invalid_value(format!(
                        "{name} has the wrong type in a SearchRequest"
                    )));
                }
            };
            pairs.push((name.clone(), text));
        }
        Self::from_query(&pairs)
    }

    /// Validates the query against `schema`.
    pub fn search(&self, schema: &ResourceSchema) -> Result<Search, ScimError> {
        if self.cursor.is_some() {
            if self.sort_by.is_some() {
                return Err(ScimError::invalid_value(
                    "cursor paging returns resources in creation order and cannot be combined \
                     with sortBy; page a sorted search with startIndex",
                ));
            }
            if self.count == 0 {
                return Err(ScimError::invalid_count(format!(
                    "a cursor page needs a count between 1 and {MAX_RESULTS}"
                )));
            }
        }
        let filter = match &self.filter {
            Some(text) => {
                let parsed = crate::filter::parse(text)?;
                crate::filter::validate(&parsed, schema)?;
                Some(parsed)
            }
            None => None,
        };
        let sort = match &self.sort_by {
            Some(sort_by) => Some(SortSpec::parse(
                sort_by,
                self.sort_order.as_deref(),
                schema,
            )?),
            None => None,
        };
        Ok(Search {
            filter,
            filter_text: self.filter.clone(),
            sort,
            start_index: self.start_index,
            count: self.count,
            selection: self.selection.clone(),
            cursor: self.cursor.clone(),
        })
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
    use crate::schema::USER_RESOURCE;

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
    fn a_cursor_is_read_and_refused_with_start_index_sort_or_no_count() {
        let query = ListQuery::from_query(&pairs(&[("cursor", ""), ("count", "5")])).unwrap();
        assert_eq!(query.cursor.as_deref(), Some(""));
        assert!(query.search(&USER_RESOURCE).is_ok());
        let both = ListQuery::from_query(&pairs(&[("cursor", ""), ("startIndex", "1")]));
        assert_eq!(both.unwrap_err().scim_type, Some("invalidValue"));
        let sorted = ListQuery::from_query(&pairs(&[("cursor", ""), ("sortBy", "userName")]))
            .unwrap()
            .search(&USER_RESOURCE);
        assert_eq!(sorted.unwrap_err().scim_type, Some("invalidValue"));
        let empty = ListQuery::from_query(&pairs(&[("cursor", "x"), ("count", "0")]))
            .unwrap()
            .search(&USER_RESOURCE);
        assert_eq!(empty.unwrap_err().scim_type, Some("invalidCount"));
        let body = json!({"schemas": [], "cursor": "", "count": 2});
        let query = ListQuery::from_search_request(&body).unwrap();
        assert_eq!((query.cursor.as_deref(), query.count), (Some(""), 2));
        assert_eq!(
            ListQuery::from_query(&pairs(&[("startIndex", "2")]))
                .unwrap()
                .cursor,
            None
        );
    }

    #[test]
    fn several_sub_attributes_of_a_multi_valued_attribute_merge_element_by_element() {
        let selection =
            Selection::from_query(&pairs(&[("attributes", "emails.value,emails.type")])).unwrap();
        let user = json!({
            "schemas": ["s"], "id": "1", "userName": "x",
            "emails": [{"value": "a@x", "type": "work", "primary": true}, {"value": "b@x"}],
        });
        let selected = selection.apply(user, &crate::schema::USER_RESOURCE);
        assert_eq!(
            selected["emails"],
            json!([{"value": "a@x", "type": "work"}, {"value": "b@x"}])
        );
        let only_type = Selection::from_query(&pairs(&[("attributes", "emails.type")])).unwrap();
        let selected = only_type.apply(
            json!({"id": "1", "emails": [{"value": "a@x", "type": "work"}, {"value": "b@x"}]}),
            &crate::schema::USER_RESOURCE,
        );
        assert_eq!(selected["emails"], json!([{"type": "work"}]));
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
        )]))
        .unwrap();
        assert_eq!(
            selection.apply(user.clone(), &USER_RESOURCE),
            json!({"schemas": ["s"], "id": "1", "userName": "a", "name": {"givenName": "A"},
                   "emails": [{"value": "a@x"}],
                   "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "D"}})
        );
        let selection = Selection::from_query(&pairs(&[(
            "excludedAttributes",
            "emails,name.familyName,id,meta",
        )]))
        .unwrap();
        let trimmed = selection.apply(user, &USER_RESOURCE);
        assert!(trimmed.get("emails").is_none());
        assert!(trimmed.get("meta").is_none());
        assert_eq!(trimmed["name"], json!({"givenName": "A"}));
        assert_eq!(trimmed["id"], json!("1"));
    }

    #[test]
    fn a_value_filter_or_a_malformed_path_in_a_selection_is_invalid_path() {
        for parameter in ["attributes", "excludedAttributes", "ATTRIBUTES"] {
            for bad in [
                r#"emails[type eq "work"]"#,
                r#"userName,emails[type eq "work"].value"#,
                "emails]",
                "name.givenName.more",
                "user name",
            ] {
                let error = Selection::from_query(&pairs(&[(parameter, bad)])).unwrap_err();
                assert_eq!(error.scim_type, Some("invalidPath"), "{parameter}={bad}");
                assert_eq!(error.status, http::StatusCode::BAD_REQUEST);
                let error = ListQuery::from_query(&pairs(&[(parameter, bad)])).unwrap_err();
                assert_eq!(error.scim_type, Some("invalidPath"), "{parameter}={bad}");
            }
        }
        let body = json!({"attributes": ["userName", "emails[type eq \"work\"]"]});
        let error = ListQuery::from_search_request(&body).unwrap_err();
        assert_eq!(error.scim_type, Some("invalidPath"));
        // What attribute paths may be: a name, a sub-attribute, behind a URN, a URN alone, $ref.
        let fine = Selection::from_query(&pairs(&[
            (
                "attributes",
                "userName, name.givenName,members.$ref,\
                 urn:ietf:params:scim:schemas:extension:enterprise:2.0:User,\
                 urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
            ),
            ("excludedAttributes", ""),
        ]))
        .unwrap();
        assert_eq!(fine.attributes.len(), 5);
        assert!(fine.excluded.is_empty());
    }
}
