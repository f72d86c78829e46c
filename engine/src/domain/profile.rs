//! The profile bag: a user's or a group's attributes as SCIM names them (`name`, `emails`,
//! `displayName`, extension schema URNs …), stored as the identity provider sent them and echoed
//! back. This is the one module of the domain that reads or writes attributes by their SCIM
//! names; the rest of the domain calls its functions. The bag stays SCIM-shaped on purpose:
//! roster keeps every attribute an IdP sends, modelled or not, and gives it back unchanged.

use serde_json::{Map, Value, json};

/// Attributes other than `userName`, `externalId` and `active`, keyed by their canonical SCIM
/// names (for example `name`, `emails`, `displayName`, or an extension schema URN).
pub type Attributes = Map<String, Value>;

/// A user's attribute names that are never part of the bag: they are modelled separately
/// (`userName`, `externalId`, `active`), owned by the server (`id`, `meta`, `schemas`, `groups`)
/// or never stored (`password`).
const RESERVED_USER_ATTRIBUTES: [&str; 8] = [
    "username",
    "externalid",
    "active",
    "id",
    "meta",
    "schemas",
    "groups",
    "password",
];

/// A group's: modelled separately (`displayName`, `externalId`), owned by the server, or edges
/// (`members`).
const RESERVED_GROUP_ATTRIBUTES: [&str; 6] = [
    "displayname",
    "externalid",
    "id",
    "meta",
    "schemas",
    "members",
];

fn is_one_of(name: &str, reserved: &[&str]) -> bool {
    reserved
        .iter()
        .any(|reserved| name.eq_ignore_ascii_case(reserved))
}

/// Drops from a user's bag what is not stored in it: nulls and reserved names.
pub(super) fn retain_stored_user_attributes(attributes: &mut Attributes) {
    attributes
        .retain(|name, value| !value.is_null() && !is_one_of(name, &RESERVED_USER_ATTRIBUTES));
}

/// Drops from a group's bag what is not stored in it: nulls and reserved names.
pub(super) fn retain_stored_group_attributes(attributes: &mut Attributes) {
    attributes
        .retain(|name, value| !value.is_null() && !is_one_of(name, &RESERVED_GROUP_ATTRIBUTES));
}

/// The addresses in `emails`, with their `type` when given.
pub(super) fn emails(attributes: &Attributes) -> Vec<(String, Option<String>)> {
    let Some(Value::Array(emails)) = attributes.get("emails") else {
        return Vec::new();
    };
    emails
        .iter()
        .filter_map(|email| {
            let value = email.get("value")?.as_str()?;
            let kind = email
                .get("type")
                .and_then(|t| t.as_str())
                .map(str::to_owned);
            Some((value.to_owned(), kind))
        })
        .collect()
}

/// Whether an attribute name names a password: `password`, or `<schema URN>:password`.
fn is_password(name: &str) -> bool {
    name.rsplit(':')
        .next()
        .is_some_and(|last| last.eq_ignore_ascii_case("password"))
}

/// Removes every `password` from the bag, at any depth, URN-qualified or not (an extension may
/// carry one too).
pub(super) fn strip_passwords(attributes: &mut Attributes) {
    attributes.retain(|name, _| !is_password(name));
    for value in attributes.values_mut() {
        strip_passwords_in(value);
    }
}

fn strip_passwords_in(value: &mut Value) {
    match value {
        Value::Object(object) => strip_passwords(object),
        Value::Array(items) => items.iter_mut().for_each(strip_passwords_in),
        _ => {}
    }
}

fn formatted(given: Option<&str>, family: Option<&str>) -> Option<String> {
    let parts: Vec<&str> = [given, family]
        .into_iter()
        .flatten()
        .filter(|part| !part.is_empty())
        .collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

/// The bag with an SSO login's names: `name.givenName`, `name.familyName`, and `name.formatted`
/// and `displayName` where they were the names joined (or absent).
pub(super) fn set_login_names(
    attributes: &mut Attributes,
    given_name: Option<&str>,
    family_name: Option<&str>,
) {
    let before = attributes
        .get("name")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut name = before.clone();
    for (key, value) in [("givenName", given_name), ("familyName", family_name)] {
        if let Some(value) = value {
            name.insert(key.to_owned(), json!(value));
        }
    }
    if name == before {
        return;
    }
    let text = |map: &Map<String, Value>, key: &str| {
        map.get(key).and_then(Value::as_str).map(str::to_owned)
    };
    let old = formatted(
        text(&before, "givenName").as_deref(),
        text(&before, "familyName").as_deref(),
    );
    let new = formatted(
        text(&name, "givenName").as_deref(),
        text(&name, "familyName").as_deref(),
    );
    if let Some(new) = &new {
        if text(&before, "formatted").is_none() || text(&before, "formatted") == old {
            name.insert("formatted".to_owned(), json!(new));
        }
        let display = attributes.get("displayName").and_then(Value::as_str);
        if display.is_none() || display.map(str::to_owned) == old {
            attributes.insert("displayName".to_owned(), json!(new));
        }
    }
    attributes.insert("name".to_owned(), Value::Object(name));
}

/// The bag with an SSO login's email among `emails`: unchanged when present already (any case),
/// else it replaces the primary (or first) address, or becomes the only one.
pub(super) fn set_login_email(attributes: &mut Attributes, email: &str) {
    let mut emails = attributes
        .get("emails")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let present = emails.iter().any(|entry| {
        entry
            .get("value")
            .and_then(Value::as_str)
            .is_some_and(|value| value.eq_ignore_ascii_case(email))
    });
    if present {
        return;
    }
    let primary = emails
        .iter()
        .position(|entry| entry.get("primary") == Some(&Value::Bool(true)))
        .or(if emails.is_empty() { None } else { Some(0) });
    match primary.and_then(|index| emails.get_mut(index)?.as_object_mut()) {
        Some(entry) => {
            entry.insert("value".to_owned(), json!(email));
        }
        None => emails.push(json!({"value": email, "type": "work", "primary": true})),
    }
    attributes.insert("emails".to_owned(), Value::Array(emails));
}
