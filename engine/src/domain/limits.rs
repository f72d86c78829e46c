//! How much a user or a group may hold: the size limits on each value and on the whole resource,
//! declared here once and enforced by `decide` on every write that sets a profile (SCIM create,
//! replace and patch, Bulk, just-in-time provisioning). The edges only translate a refusal
//! (`Rejection::LimitExceeded`: SCIM 400 `invalidValue`, gRPC `INVALID_ARGUMENT`) and advertise
//! the limits (`/Schemas`).
//!
//! - Every string value, at any depth: [`STRING_MAX_BYTES`]; `userName`, `externalId` and a
//!   group's `displayName` have their own ([`USER_NAME_MAX_BYTES`], [`EXTERNAL_ID_MAX_BYTES`],
//!   [`GROUP_NAME_MAX_BYTES`]).
//! - Every array (a multi-valued attribute, or an array inside an attribute the schemas do not
//!   know): [`VALUES_MAX`] values. A group's members are not an attribute but edges, and are not
//!   limited this way.
//! - Every attribute name, at any depth: [`ATTRIBUTE_NAME_MAX_BYTES`].
//! - The whole resource (its attributes as JSON, with its names and ids): [`RESOURCE_MAX_BYTES`].
//! - Attributes outside the resource's schemas, which roster stores and echoes as sent: at most
//!   [`EXTRA_ATTRIBUTES_MAX`] of them, [`EXTRA_ATTRIBUTES_MAX_BYTES`] together. Which attributes
//!   these are is schema knowledge, so the SCIM edge counts them ([`ExtraAttributes`]) and
//!   [`check_extra_attributes`] decides.
//!
//! A value already stored is never refused again when a write carries it over unchanged (a value
//! equal to the one at the same path before, or a resource or a set of extra attributes that does
//! not grow): data written before a limit existed stays writable, so an IdP can always deactivate
//! or rename such a user, and only what a write adds or changes must fit.

use serde::Serialize;
use serde_json::{Map, Value};
use thiserror::Error;

use super::state::GroupProfile;
use super::user::UserProfile;

/// Longest string value, in bytes of UTF-8, wherever it sits in a resource.
pub const STRING_MAX_BYTES: usize = 4 * 1024;
/// Longest `userName`, in bytes (Hugging Face's username rules then allow 2 to 42 characters).
pub const USER_NAME_MAX_BYTES: usize = 256;
/// Longest `externalId`, in bytes (room for a directory DN; IdPs send GUIDs or short ids).
pub const EXTERNAL_ID_MAX_BYTES: usize = 1024;
/// Longest group `displayName`, in bytes (256 characters of any script).
pub const GROUP_NAME_MAX_BYTES: usize = 1024;
/// Longest attribute name, in bytes, at any depth (a URN-qualified custom attribute fits).
pub const ATTRIBUTE_NAME_MAX_BYTES: usize = 256;
/// Most values in one array: a multi-valued attribute (`emails`, `phoneNumbers`, …) or an array
/// inside an attribute roster does not know. Not a group's members.
pub const VALUES_MAX: usize = 100;
/// Most bytes a resource may hold: its attributes as JSON plus its `userName` or `displayName`
/// and `externalId` (a group's members are not counted: they are edges).
pub const RESOURCE_MAX_BYTES: usize = 16 * 1024;
/// Most attributes outside a resource's schemas (top-level, or inside a known extension).
pub const EXTRA_ATTRIBUTES_MAX: usize = 50;
/// Most bytes of JSON the attributes outside a resource's schemas may hold together.
pub const EXTRA_ATTRIBUTES_MAX_BYTES: usize = 8 * 1024;

/// Longest path shown in a refusal (the names in it are the client's own).
const PATH_SHOWN_MAX: usize = 300;

/// The kind of resource a limit applies to, as refusals name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource {
    User,
    Group,
}

impl Resource {
    fn noun(self) -> &'static str {
        match self {
            Resource::User => "user",
            Resource::Group => "group",
        }
    }
}

/// A limit a write would break: the attribute path (or the resource) and the limit, safe to show.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum LimitExceeded {
    #[error("{path} is {bytes} bytes long; {what} may have at most {max} bytes")]
    Text {
        path: String,
        bytes: usize,
        max: usize,
        what: &'static str,
    },
    #[error("{path} has {count} values; a multi-valued attribute may have at most {max} values")]
    Values {
        path: String,
        count: usize,
        max: usize,
    },
    #[error(
        "{path} is an attribute name of {bytes} bytes; attribute names may have at most {max} bytes"
    )]
    Name {
        path: String,
        bytes: usize,
        max: usize,
    },
    #[error(
        "the {} is {bytes} bytes of JSON; a {} may hold at most {max} bytes", .resource.noun(), .resource.noun()
    )]
    Resource {
        resource: Resource,
        bytes: usize,
        max: usize,
    },
    #[error(
        "the {} has {count} attributes outside its schemas ({names}); at most {max} are allowed", .resource.noun()
    )]
    ExtraAttributes {
        resource: Resource,
        count: usize,
        max: usize,
        names: String,
    },
    #[error(
        "the {}'s attributes outside its schemas ({names}) are {bytes} bytes of JSON; at most {max} bytes are allowed", .resource.noun()
    )]
    ExtraAttributeBytes {
        resource: Resource,
        bytes: usize,
        max: usize,
        names: String,
    },
}

/// The attributes of a resource that lie outside its schemas, as the SCIM edge counts them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExtraAttributes {
    pub count: usize,
    /// Their names and values as JSON, together.
    pub bytes: usize,
    /// The first few names, for the refusal's detail.
    pub names: Vec<String>,
}

impl ExtraAttributes {
    /// Names kept for the detail.
    const NAMES_SHOWN: usize = 3;

    /// Counts one more extra attribute.
    pub fn add(&mut self, name: &str, value: &Value) {
        self.count += 1;
        self.bytes += name.len() + json_size(value);
        if self.names.len() < Self::NAMES_SHOWN {
            self.names.push(shown(name.to_owned()));
        }
    }

    fn listed(&self) -> String {
        let mut names = self.names.join(", ");
        if self.count > self.names.len() {
            names.push_str(", …");
        }
        names
    }
}

/// Checks the attributes outside a resource's schemas against their limits. `before`: those of
/// the resource as stored, when it exists; a write that does not add to them is accepted.
pub fn check_extra_attributes(
    resource: Resource,
    extra: &ExtraAttributes,
    before: Option<&ExtraAttributes>,
) -> Result<(), LimitExceeded> {
    if extra.count > EXTRA_ATTRIBUTES_MAX && before.is_none_or(|before| extra.count > before.count)
    {
        return Err(LimitExceeded::ExtraAttributes {
            resource,
            count: extra.count,
            max: EXTRA_ATTRIBUTES_MAX,
            names: extra.listed(),
        });
    }
    if extra.bytes > EXTRA_ATTRIBUTES_MAX_BYTES
        && before.is_none_or(|before| extra.bytes > before.bytes)
    {
        return Err(LimitExceeded::ExtraAttributeBytes {
            resource,
            bytes: extra.bytes,
            max: EXTRA_ATTRIBUTES_MAX_BYTES,
            names: extra.listed(),
        });
    }
    Ok(())
}

/// Checks a user's profile; `before` is the user as stored, on a replace.
pub fn check_user(
    profile: &UserProfile,
    before: Option<&UserProfile>,
) -> Result<(), LimitExceeded> {
    check_text(
        "userName",
        &profile.user_name,
        USER_NAME_MAX_BYTES,
        "a userName",
        None,
    )?;
    check_external_id(
        profile.external_id.as_deref(),
        before.and_then(|before| before.external_id.as_deref()),
    )?;
    check_attributes(&profile.attributes, before.map(|before| &before.attributes))?;
    check_size(Resource::User, user_size(profile), before.map(user_size))
}

/// Checks a group's profile (its members are edges, not part of it); `before` is the group as
/// stored, on an update.
pub fn check_group(
    profile: &GroupProfile,
    before: Option<&GroupProfile>,
) -> Result<(), LimitExceeded> {
    check_text(
        "displayName",
        &profile.display_name,
        GROUP_NAME_MAX_BYTES,
        "a group's displayName",
        before.map(|before| before.display_name.as_str()),
    )?;
    check_external_id(
        profile.external_id.as_deref(),
        before.and_then(|before| before.external_id.as_deref()),
    )?;
    check_attributes(&profile.attributes, before.map(|before| &before.attributes))?;
    check_size(Resource::Group, group_size(profile), before.map(group_size))
}

/// The bytes of `value` as compact JSON.
pub fn json_size(value: &impl Serialize) -> usize {
    let mut counter = ByteCounter(0);
    // Writing into a counter cannot fail, and a JSON value or map always serializes.
    match serde_json::to_writer(&mut counter, value) {
        Ok(()) | Err(_) => counter.0,
    }
}

/// A writer that only counts what it is given.
struct ByteCounter(usize);

impl std::io::Write for ByteCounter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0 += bytes.len();
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn user_size(profile: &UserProfile) -> usize {
    json_size(&profile.attributes)
        + profile.user_name.len()
        + profile.external_id.as_ref().map_or(0, String::len)
}

fn group_size(profile: &GroupProfile) -> usize {
    json_size(&profile.attributes)
        + profile.display_name.len()
        + profile.external_id.as_ref().map_or(0, String::len)
}

fn check_size(
    resource: Resource,
    bytes: usize,
    before: Option<usize>,
) -> Result<(), LimitExceeded> {
    if bytes > RESOURCE_MAX_BYTES && before.is_none_or(|before| bytes > before) {
        return Err(LimitExceeded::Resource {
            resource,
            bytes,
            max: RESOURCE_MAX_BYTES,
        });
    }
    Ok(())
}

fn check_external_id(external_id: Option<&str>, before: Option<&str>) -> Result<(), LimitExceeded> {
    match external_id {
        Some(external_id) => check_text(
            "externalId",
            external_id,
            EXTERNAL_ID_MAX_BYTES,
            "an externalId",
            before,
        ),
        None => Ok(()),
    }
}

fn check_text(
    path: &str,
    text: &str,
    max: usize,
    what: &'static str,
    before: Option<&str>,
) -> Result<(), LimitExceeded> {
    if text.len() > max && before != Some(text) {
        return Err(LimitExceeded::Text {
            path: shown(path.to_owned()),
            bytes: text.len(),
            max,
            what,
        });
    }
    Ok(())
}

/// `path` cut to a length fit for a message, on a character boundary.
fn shown(mut path: String) -> String {
    if path.len() > PATH_SHOWN_MAX {
        let mut end = PATH_SHOWN_MAX;
        while !path.is_char_boundary(end) {
            end -= 1;
        }
        path.truncate(end);
        path.push('…');
    }
    path
}

/// Where a value sits: the path of the attribute holding it, and whether that attribute is a
/// top-level one (whose object, when its name is a URN, is an extension's).
#[derive(Clone, Copy)]
struct Parent<'a> {
    path: &'a str,
    top_level: bool,
}

/// The path of `key` inside `parent`: `name.givenName`, and for an extension's attributes the
/// URN-qualified form `urn:…:User:employeeNumber`.
fn child_path(parent: Option<Parent<'_>>, key: &str) -> String {
    match parent {
        None => key.to_owned(),
        Some(parent) if parent.top_level && parent.path.starts_with("urn:") => {
            format!("{}:{key}", parent.path)
        }
        Some(parent) => format!("{}.{key}", parent.path),
    }
}

fn check_attributes(
    attributes: &Map<String, Value>,
    before: Option<&Map<String, Value>>,
) -> Result<(), LimitExceeded> {
    check_object(None, attributes, before)
}

fn check_object(
    parent: Option<Parent<'_>>,
    object: &Map<String, Value>,
    before: Option<&Map<String, Value>>,
) -> Result<(), LimitExceeded> {
    for (key, value) in object {
        let previous = before.and_then(|before| before.get(key));
        let path = child_path(parent, key);
        if key.len() > ATTRIBUTE_NAME_MAX_BYTES && previous.is_none() {
            return Err(LimitExceeded::Name {
                path: shown(path),
                bytes: key.len(),
                max: ATTRIBUTE_NAME_MAX_BYTES,
            });
        }
        let at = Parent {
            path: &path,
            top_level: parent.is_none(),
        };
        check_value(at, value, previous)?;
    }
    Ok(())
}

/// Checks the value at `at`; `before` is the value stored at the same path (array elements by
/// position), which is accepted again as it is.
fn check_value(at: Parent<'_>, value: &Value, before: Option<&Value>) -> Result<(), LimitExceeded> {
    let path = at.path;
    match value {
        Value::String(text) => check_text(
            path,
            text,
            STRING_MAX_BYTES,
            "a string value",
            before.and_then(Value::as_str),
        ),
        Value::Array(items) => {
            if items.len() > VALUES_MAX && before != Some(value) {
                return Err(LimitExceeded::Values {
                    path: shown(path.to_owned()),
                    count: items.len(),
                    max: VALUES_MAX,
                });
            }
            let before = before.and_then(Value::as_array);
            for (index, item) in items.iter().enumerate() {
                check_value(at, item, before.and_then(|before| before.get(index)))?;
            }
            Ok(())
        }
        Value::Object(object) => check_object(Some(at), object, before.and_then(Value::as_object)),
        Value::Null | Value::Bool(_) | Value::Number(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn user(attributes: Value) -> UserProfile {
        let Value::Object(attributes) = attributes else {
            unreachable!("test attributes are an object")
        };
        UserProfile {
            user_name: "alice".into(),
            external_id: None,
            active: true,
            attributes,
        }
    }

    const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

    #[test]
    fn a_string_over_the_limit_is_refused_with_its_path() {
        let long = "x".repeat(STRING_MAX_BYTES + 1);
        let cases = [
            (json!({"displayName": long}), "displayName"),
            (json!({"name": {"givenName": long}}), "name.givenName"),
            (
                json!({"emails": [{"value": "a@x.io"}, {"value": long}]}),
                "emails.value",
            ),
            (
                json!({ENTERPRISE: {"manager": {"value": long}}}),
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
            ),
            (json!({"custom": {"deep": [[long]]}}), "custom.deep"),
        ];
        for (attributes, path) in cases {
            let error = check_user(&user(attributes), None).unwrap_err();
            assert_eq!(
                error,
                LimitExceeded::Text {
                    path: path.to_owned(),
                    bytes: STRING_MAX_BYTES + 1,
                    max: STRING_MAX_BYTES,
                    what: "a string value",
                }
            );
            assert!(
                error
                    .to_string()
                    .starts_with(&format!("{path} is 4097 bytes long"))
            );
        }
        let multibyte = "é".repeat(STRING_MAX_BYTES / 2);
        assert_eq!(check_user(&user(json!({"title": multibyte})), None), Ok(()));
        let error = check_user(&user(json!({"title": format!("{multibyte}é")})), None);
        assert!(matches!(
            error,
            Err(LimitExceeded::Text { bytes: 4098, .. })
        ));
    }

    #[test]
    fn identifiers_have_their_own_limits() {
        let mut profile = user(json!({}));
        profile.user_name = "a".repeat(USER_NAME_MAX_BYTES + 1);
        let error = check_user(&profile, None).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("userName is 257 bytes long; a userName may have at most 256 bytes")
        );
        let mut profile = user(json!({}));
        profile.external_id = Some("e".repeat(EXTERNAL_ID_MAX_BYTES + 1));
        assert!(matches!(
            check_user(&profile, None),
            Err(LimitExceeded::Text {
                max: EXTERNAL_ID_MAX_BYTES,
                ..
            })
        ));
        profile.external_id = Some("e".repeat(EXTERNAL_ID_MAX_BYTES));
        assert_eq!(check_user(&profile, None), Ok(()));
        let group = GroupProfile {
            display_name: "g".repeat(GROUP_NAME_MAX_BYTES + 1),
            external_id: None,
            attributes: Map::new(),
        };
        let error = check_group(&group, None).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("displayName is 1025 bytes long; a group's displayName")
        );
    }

    #[test]
    fn arrays_hold_at_most_the_values_limit() {
        let emails: Vec<Value> = (0..=VALUES_MAX)
            .map(|n| json!({"value": format!("{n}@x.io")}))
            .collect();
        let error = check_user(&user(json!({"emails": emails})), None).unwrap_err();
        assert_eq!(
            error.to_string(),
            "emails has 101 values; a multi-valued attribute may have at most 100 values"
        );
        let emails: Vec<Value> = emails[..VALUES_MAX].to_vec();
        assert_eq!(check_user(&user(json!({"emails": emails})), None), Ok(()));
        let nested: Vec<u32> = (0..=VALUES_MAX as u32).collect();
        assert!(matches!(
            check_user(&user(json!({"custom": {"list": nested}})), None),
            Err(LimitExceeded::Values { path, .. }) if path == "custom.list"
        ));
    }

    #[test]
    fn the_whole_resource_is_limited() {
        let values: Vec<String> = (0..5)
            .map(|n| format!("{n}{}", "v".repeat(STRING_MAX_BYTES - 10)))
            .collect();
        let error = check_user(&user(json!({"roles": values})), None).unwrap_err();
        assert!(matches!(
            error,
            LimitExceeded::Resource {
                resource: Resource::User,
                ..
            }
        ));
        assert!(error.to_string().starts_with("the user is "), "{error}");
        let group = GroupProfile {
            display_name: "g".into(),
            external_id: None,
            attributes: user(json!({"custom": values})).attributes,
        };
        assert!(
            check_group(&group, None)
                .unwrap_err()
                .to_string()
                .starts_with("the group is ")
        );
    }

    #[test]
    fn long_attribute_names_are_refused_and_shown_cut() {
        let name = "n".repeat(1000);
        let error = check_user(&user(json!({ name.clone(): 1 })), None).unwrap_err();
        let LimitExceeded::Name { path, bytes, .. } = &error else {
            panic!("{error:?}")
        };
        assert_eq!(*bytes, 1000);
        assert!(path.len() <= PATH_SHOWN_MAX + '…'.len_utf8());
    }

    #[test]
    fn values_stored_before_are_accepted_again_unchanged_but_not_grown() {
        let long = "x".repeat(STRING_MAX_BYTES * 2);
        let many: Vec<Value> = (0..150)
            .map(|n| json!({"value": format!("{n}@x.io")}))
            .collect();
        let stored = user(json!({"displayName": long, "emails": many, "title": "CEO",
                                 ENTERPRISE: {"employeeNumber": long, "department": "R&D"}}));
        // A write that changes something else (and does not grow the user) carries the old
        // values over.
        let mut changed = stored.clone();
        changed.active = false;
        changed.attributes.insert("title".into(), json!("CTO"));
        changed.attributes[ENTERPRISE]["department"] = json!("Ops");
        assert_eq!(check_user(&changed, Some(&stored)), Ok(()));
        // Changing an oversized value is checked; so is a new one.
        let mut longer = stored.clone();
        longer
            .attributes
            .insert("displayName".into(), json!(format!("{long}y")));
        assert!(matches!(
            check_user(&longer, Some(&stored)),
            Err(LimitExceeded::Text { path, .. }) if path == "displayName"
        ));
        let mut more = stored.clone();
        more.attributes["emails"]
            .as_array_mut()
            .unwrap()
            .push(json!({"value": "new@x.io"}));
        assert!(matches!(
            check_user(&more, Some(&stored)),
            Err(LimitExceeded::Values { count: 151, .. })
        ));
        // The resource as a whole may stay as large as it was, not grow.
        let values: Vec<String> = (0..5)
            .map(|n| format!("{n}{}", "v".repeat(STRING_MAX_BYTES - 10)))
            .collect();
        let big = user(json!({"roles": values}));
        let mut same = big.clone();
        same.active = false;
        assert_eq!(check_user(&same, Some(&big)), Ok(()));
        let mut grown = big.clone();
        grown.attributes.insert("title".into(), json!("t"));
        assert!(matches!(
            check_user(&grown, Some(&big)),
            Err(LimitExceeded::Resource { .. })
        ));
    }

    #[test]
    fn extra_attributes_are_limited_in_number_and_size() {
        let mut extra = ExtraAttributes::default();
        for n in 0..EXTRA_ATTRIBUTES_MAX {
            extra.add(&format!("x{n}"), &json!("v"));
        }
        assert_eq!(check_extra_attributes(Resource::User, &extra, None), Ok(()));
        let before = extra.clone();
        extra.add("one-more", &json!("v"));
        let error = check_extra_attributes(Resource::User, &extra, None).unwrap_err();
        assert_eq!(
            error.to_string(),
            "the user has 51 attributes outside its schemas (x0, x1, x2, …); at most 50 are allowed"
        );
        assert!(check_extra_attributes(Resource::User, &extra, Some(&before)).is_err());
        assert_eq!(
            check_extra_attributes(Resource::User, &extra, Some(&extra.clone())),
            Ok(())
        );
        let mut big = ExtraAttributes::default();
        big.add("blob", &json!("b".repeat(EXTRA_ATTRIBUTES_MAX_BYTES)));
        let error = check_extra_attributes(Resource::Group, &big, None).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("the group's attributes outside its schemas (blob) are 8")
        );
    }
}
