//! `sortBy` / `sortOrder` (RFC 7644 §3.4.2.3) and the collection of one page of results.
//!
//! A sort key is the attribute's value (a multi-valued attribute sorts by its primary value,
//! else its first); strings compare case-insensitively unless the attribute is case-exact;
//! resources without a value sort last in ascending order and first in descending order; ties
//! keep creation order. A [`Pager`] keeps only what the requested page needs: the page itself in
//! creation order, or the best `startIndex + count - 1` keys when sorting, never every match.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use serde_json::Value;

use crate::error::ScimError;
use crate::filter::{AttrPath, get_ci, parse_attr_path, resolve};
use crate::schema::{Attribute, Kind, ResourceSchema};

/// A validated `sortBy`, with its direction.
#[derive(Clone, Debug)]
pub struct SortSpec {
    path: AttrPath,
    /// The attribute the path names (before descending into `value` of a multi-valued one).
    attribute: &'static Attribute,
    /// The sub-attribute compared, when the path names a complex attribute.
    leaf: &'static Attribute,
    pub descending: bool,
}

/// A resource's place in a sorted result: values order before a missing value.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SortKey {
    Value(SortValue),
    Missing,
}

/// A comparable attribute value.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SortValue {
    Boolean(bool),
    Number(Number),
    /// The folded text first (the comparison), then the text as given (a deterministic tie-break).
    Text(String, String),
}

/// A JSON number with a total order.
#[derive(Clone, Copy, Debug)]
pub struct Number(f64);

impl PartialEq for Number {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Number {}

impl PartialOrd for Number {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Number {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

impl SortSpec {
    /// Reads `sortBy` and `sortOrder` (default ascending) against `schema`.
    pub fn parse(
        sort_by: &str,
        sort_order: Option<&str>,
        schema: &ResourceSchema,
    ) -> Result<Self, ScimError> {
        let descending = match sort_order.map(str::trim) {
            None | Some("") => false,
            Some(order) if order.eq_ignore_ascii_case("ascending") => false,
            Some(order) if order.eq_ignore_ascii_case("descending") => true,
            Some(order) => {
                return Err(ScimError::invalid_value(format!(
                    "sortOrder must be \"ascending\" or \"descending\", not {order:?}"
                )));
            }
        };
        let path = parse_attr_path(sort_by.trim()).map_err(|reason| {
            ScimError::invalid_value(format!(
                "sortBy {sort_by:?} is not an attribute path: {reason}"
            ))
        })?;
        let unknown =
            || ScimError::invalid_value(format!("cannot sort by unknown attribute {path}"));
        let attribute = schema
            .attribute(path.urn.as_deref(), &path.name)
            .ok_or_else(unknown)?;
        let leaf = match &path.sub {
            Some(_) => resolve(&path, schema, None).map_err(|_| unknown())?,
            None if attribute.kind == Kind::Complex => attribute.sub("value").ok_or_else(|| {
                ScimError::invalid_value(format!(
                    "sortBy {path} names a complex attribute: name one of its sub-attributes"
                ))
            })?,
            None => attribute,
        };
        if leaf.kind == Kind::Complex || leaf.kind == Kind::Binary {
            return Err(ScimError::invalid_value(format!(
                "cannot sort by {path}: its values have no order"
            )));
        }
        Ok(Self {
            path,
            attribute,
            leaf,
            descending,
        })
    }

    /// Whether the sort is by attribute `name` (lowercase, top level).
    pub fn names(&self, name: &str) -> bool {
        self.path.name.eq_ignore_ascii_case(name)
    }

    /// The key `resource` (a rendered SCIM resource) sorts by.
    pub fn key(&self, resource: &Value, schema: &ResourceSchema) -> SortKey {
        let container = match &self.path.urn {
            Some(urn) if !schema.core.id.eq_ignore_ascii_case(urn) => get_ci(resource, urn),
            _ => Some(resource),
        };
        let Some(mut value) = container.and_then(|container| get_ci(container, &self.path.name))
        else {
            return SortKey::Missing;
        };
        if self.attribute.multi_valued {
            if !value.is_array() {
                return SortKey::Missing;
            }
            let Some(element) = crate::resource::primary_element(value) else {
                return SortKey::Missing;
            };
            value = element;
        }
        if self.attribute.kind == Kind::Complex {
            let sub = self.path.sub.as_deref().unwrap_or("value");
            match get_ci(value, sub) {
                Some(inner) => value = inner,
                None => return SortKey::Missing,
            }
        }
        match value {
            Value::Bool(flag) => SortKey::Value(SortValue::Boolean(*flag)),
            Value::Number(number) => number.as_f64().map_or(SortKey::Missing, |number| {
                SortKey::Value(SortValue::Number(Number(number)))
            }),
            Value::String(text) => {
                let folded = if self.leaf.case_exact {
                    text.clone()
                } else {
                    text.to_lowercase()
                };
                SortKey::Value(SortValue::Text(folded, text.clone()))
            }
            _ => SortKey::Missing,
        }
    }
}

/// One sorted candidate.
struct Ranked<T> {
    key: SortKey,
    descending: bool,
    /// Creation order: breaks ties.
    arrival: usize,
    item: T,
}

impl<T> Ranked<T> {
    fn order(&self, other: &Self) -> Ordering {
        let by_key = if self.descending {
            other.key.cmp(&self.key)
        } else {
            self.key.cmp(&other.key)
        };
        by_key.then(self.arrival.cmp(&other.arrival))
    }
}

impl<T> PartialEq for Ranked<T> {
    fn eq(&self, other: &Self) -> bool {
        self.order(other) == Ordering::Equal
    }
}

impl<T> Eq for Ranked<T> {}

impl<T> PartialOrd for Ranked<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<T> Ord for Ranked<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.order(other)
    }
}

/// What a search found: every match counted, and the page's resources in order, with their sort
/// keys when sorting.
pub type Found<T = Value> = (usize, Vec<(Option<SortKey>, T)>);

/// Collects the matches of one page, counting all of them.
pub struct Pager<T> {
    /// Zero-based positions of the page among all matches.
    window: std::ops::Range<usize>,
    descending: Option<bool>,
    total: usize,
    in_order: Vec<T>,
    /// Sorting: the best `window.end` matches so far; the worst on top.
    best: BinaryHeap<Ranked<T>>,
}

impl<T> Pager<T> {
    /// A pager for `window`, sorting when `sort` is given.
    pub fn new(window: std::ops::Range<usize>, sort: Option<&SortSpec>) -> Self {
        Self {
            window,
            descending: sort.map(|sort| sort.descending),
            total: 0,
            in_order: Vec::new(),
            best: BinaryHeap::new(),
        }
    }

    pub fn is_sorting(&self) -> bool {
        self.descending.is_some()
    }

    /// Whether a match offered now could be on the page (without sorting: whether it falls in
    /// the window), so callers can skip rendering what will be dropped.
    pub fn wants_next(&self) -> bool {
        self.is_sorting() || self.window.contains(&self.total)
    }

    /// Counts a match without keeping it (it falls outside the page).
    pub fn skip(&mut self) {
        self.total += 1;
    }

    /// Offers a match; `key` is its sort key when sorting.
    pub fn offer(&mut self, item: T, key: Option<SortKey>) {
        let arrival = self.total;
        self.total += 1;
        match (self.descending, key) {
            (Some(descending), Some(key)) => {
                if self.window.end == 0 {
                    return;
                }
                self.best.push(Ranked {
                    key,
                    descending,
                    arrival,
                    item,
                });
                if self.best.len() > self.window.end {
                    self.best.pop();
                }
            }
            _ => {
                if self.window.contains(&arrival) {
                    self.in_order.push(item);
                }
            }
        }
    }

    /// Every match counted, and the page's items in order (with their sort keys when sorting).
    pub fn finish(self) -> Found<T> {
        if self.descending.is_some() {
            let page = self
                .best
                .into_sorted_vec()
                .into_iter()
                .skip(self.window.start)
                .map(|ranked| (Some(ranked.key), ranked.item))
                .collect();
            (self.total, page)
        } else {
            (
                self.total,
                self.in_order.into_iter().map(|item| (None, item)).collect(),
            )
        }
    }
}

/// Orders two sort keys as `sort` asks (for merging sorted pages of several resource types).
pub fn compare_keys(left: &SortKey, right: &SortKey, descending: bool) -> Ordering {
    if descending {
        right.cmp(left)
    } else {
        left.cmp(right)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::schema::{GROUP_RESOURCE, USER_RESOURCE};

    fn sorted(sort: &SortSpec, resources: &[Value], window: std::ops::Range<usize>) -> Vec<String> {
        let mut pager = Pager::new(window, Some(sort));
        for resource in resources {
            pager.offer(
                resource["userName"].as_str().unwrap_or("?").to_owned(),
                Some(sort.key(resource, &USER_RESOURCE)),
            );
        }
        pager.finish().1.into_iter().map(|(_, name)| name).collect()
    }

    fn users() -> Vec<Value> {
        vec![
            json!({"userName": "bob", "name": {"familyName": "Zed"}, "emails": [{"value": "b@x", "primary": false}, {"value": "a@x", "primary": true}]}),
            json!({"userName": "Alice", "emails": [{"value": "z@x"}]}),
            json!({"userName": "carol", "name": {"familyName": "adams"}}),
        ]
    }

    #[test]
    fn strings_sort_case_insensitively_and_missing_values_sort_last_ascending() {
        let by_name = SortSpec::parse("userName", None, &USER_RESOURCE).unwrap();
        assert_eq!(sorted(&by_name, &users(), 0..10), ["Alice", "bob", "carol"]);
        let by_family =
            SortSpec::parse("name.familyName", Some("ascending"), &USER_RESOURCE).unwrap();
        assert_eq!(
            sorted(&by_family, &users(), 0..10),
            ["carol", "bob", "Alice"]
        );
        let descending =
            SortSpec::parse("NAME.FAMILYNAME", Some("Descending"), &USER_RESOURCE).unwrap();
        assert_eq!(
            sorted(&descending, &users(), 0..10),
            ["Alice", "bob", "carol"]
        );
    }

    #[test]
    fn multi_valued_attributes_sort_by_their_primary_value_else_the_first() {
        let by_email = SortSpec::parse("emails", None, &USER_RESOURCE).unwrap();
        assert_eq!(
            sorted(&by_email, &users(), 0..10),
            ["bob", "Alice", "carol"]
        );
        let by_email_value = SortSpec::parse("emails.value", None, &USER_RESOURCE).unwrap();
        assert_eq!(
            sorted(&by_email_value, &users(), 0..10),
            ["bob", "Alice", "carol"]
        );
    }

    #[test]
    fn a_page_of_sorted_results_keeps_only_what_it_needs() {
        let by_name = SortSpec::parse("userName", None, &USER_RESOURCE).unwrap();
        assert_eq!(sorted(&by_name, &users(), 1..2), ["bob"]);
        assert_eq!(sorted(&by_name, &users(), 2..10), ["carol"]);
        assert!(sorted(&by_name, &users(), 0..0).is_empty());
        let mut pager = Pager::new(0..1, Some(&by_name));
        for (n, resource) in users().iter().enumerate() {
            pager.offer(n, Some(by_name.key(resource, &USER_RESOURCE)));
        }
        assert_eq!(
            pager.best.len(),
            1,
            "only startIndex + count - 1 entries are kept"
        );
        assert_eq!(pager.finish().0, 3, "every match is counted");
    }

    #[test]
    fn ties_keep_creation_order() {
        let by_active = SortSpec::parse("active", None, &USER_RESOURCE).unwrap();
        let resources = vec![
            json!({"userName": "a", "active": true}),
            json!({"userName": "b", "active": false}),
            json!({"userName": "c", "active": true}),
        ];
        assert_eq!(sorted(&by_active, &resources, 0..10), ["b", "a", "c"]);
    }

    #[test]
    fn unknown_or_unordered_sort_attributes_and_bad_orders_are_invalid_values() {
        for (sort_by, order) in [
            ("nosuch", None),
            ("name", None),
            ("userName", Some("upwards")),
            ("emails[type eq \"work\"]", None),
        ] {
            let error = SortSpec::parse(sort_by, order, &USER_RESOURCE).unwrap_err();
            assert_eq!(error.status.as_u16(), 400, "{sort_by}");
            assert_eq!(error.scim_type, Some("invalidValue"), "{sort_by}");
        }
        assert!(SortSpec::parse("meta.lastModified", None, &GROUP_RESOURCE).is_ok());
        assert!(SortSpec::parse("displayName", None, &GROUP_RESOURCE).is_ok());
    }
}
