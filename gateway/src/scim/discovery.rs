//! Discovery (RFC 7644 §4, RFC 7643 §5–7): `/ServiceProviderConfig`, `/ResourceTypes` and
//! `/Schemas`, generated from the same schema definitions the gateway validates against, so they
//! describe exactly what roster does. Read-only: other methods get 405; a `filter` gets 403.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use roster_engine::domain::limits::{
    EXTRA_ATTRIBUTES_MAX, EXTRA_ATTRIBUTES_MAX_BYTES, GROUP_NAME_MAX_BYTES, RESOURCE_MAX_BYTES,
    STRING_MAX_BYTES, USER_NAME_MAX_BYTES, VALUES_MAX,
};
use roster_engine::domain::ssf;
use serde_json::{Value, json};

use super::bulk::{MAX_OPERATIONS, MAX_PAYLOAD_BYTES};
use super::error::ScimError;
use super::http::{ScimClient, query_pairs, scim_response};
use crate::state::AppState;
use roster_scim::list::{DEFAULT_COUNT, MAX_RESULTS, list_response};
use roster_scim::schema::{
    Attribute, ENTERPRISE_USER, GROUP, GROUP_RESOURCE, Kind, Mutability, ROSTER_USER, Returned,
    Schema, USER, USER_RESOURCE,
};

pub const SERVICE_PROVIDER_CONFIG_SCHEMA: &str =
    "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
pub const RESOURCE_TYPE_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
pub const SCHEMA_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";

/// Every schema roster serves: the resources' core schemas and their extensions.
const SCHEMAS: [&Schema; 4] = [&USER, &ENTERPRISE_USER, &ROSTER_USER, &GROUP];

/// RFC 7644 §4: query parameters are ignored on discovery endpoints, but a filter is refused.
fn refuse_filter(query: Option<&str>) -> Result<(), ScimError> {
    if query_pairs(query)
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("filter"))
    {
        return Err(ScimError::forbidden(
            "discovery endpoints do not support filtering",
        ));
    }
    Ok(())
}

pub async fn service_provider_config(
    State(app): State<AppState>,
    client: ScimClient,
    RawQuery(query): RawQuery,
) -> Result<Response, ScimError> {
    refuse_filter(query.as_deref())?;
    // `securityEvents` (RFC 9967 §4) only while a stream of the tenant receives SCIM events:
    // strict clients (scim2-models) refuse attributes RFC 7643 did not define.
    let scim_events = app
        .tenant_record(&client.tenant.live())
        .ok()
        .flatten()
        .is_some_and(|record| {
            record.ssf_streams.iter().any(|stream| {
                stream
                    .events_delivered()
                    .iter()
                    .any(|uri| uri.starts_with("urn:ietf:params:scim:event:"))
            })
        });
    Ok(scim_response(
        StatusCode::OK,
        &service_provider_config_json(&client.base_url, scim_events),
    ))
}

/// What roster supports, and nothing it does not.
pub fn service_provider_config_json(base_url: &str, scim_events: bool) -> Value {
    let mut config = json!({
        "schemas": [SERVICE_PROVIDER_CONFIG_SCHEMA],
        "documentationUri": "https://datatracker.ietf.org/doc/html/rfc7644",
        "patch": {"supported": true},
        "bulk": {
            "supported": true,
            "maxOperations": MAX_OPERATIONS,
            "maxPayloadSize": MAX_PAYLOAD_BYTES,
        },
        "filter": {"supported": true, "maxResults": MAX_RESULTS},
        "changePassword": {"supported": false},
        "sort": {"supported": true},
        "etag": {"supported": true},
        // RFC 9865 §4. Cursors never expire, so no `cursorTimeout`.
        "pagination": {
            "cursor": true,
            "index": true,
            "defaultPaginationMethod": "index",
            "defaultPageSize": DEFAULT_COUNT,
            "maxPageSize": MAX_RESULTS,
        },
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "OAuth Bearer Token",
            "description": "A SCIM bearer token of the tenant, issued by `roster token issue`.",
            "specUri": "https://datatracker.ietf.org/doc/html/rfc6750",
            "primary": true,
        }],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": format!("{base_url}/ServiceProviderConfig"),
        },
    });
    if scim_events {
        // RFC 9967 §4: roster transmits SCIM events as Security Event Tokens on Shared Signals
        // streams (set up through SSF, not SCIM); it completes every request synchronously.
        config["securityEvents"] = json!({
            "asyncRequest": "none",
            "eventUris": [
                ssf::SCIM_PROV_CREATE_NOTICE,
                ssf::SCIM_PROV_PATCH_NOTICE,
                ssf::SCIM_PROV_ACTIVATE,
                ssf::SCIM_PROV_DEACTIVATE,
                ssf::SCIM_PROV_DELETE,
            ],
        });
    }
    config
}

fn resource_type_json(name: &str, base_url: &str) -> Option<Value> {
    let (endpoint, description, schema, extensions): (_, _, _, &[&Schema]) =
        match name.to_ascii_lowercase().as_str() {
            "user" => ("/Users", "User Account", USER.id, USER_RESOURCE.extensions),
            "group" => ("/Groups", "Group", GROUP.id, GROUP_RESOURCE.extensions),
            _ => return None,
        };
    let canonical = if endpoint == "/Users" {
        "User"
    } else {
        "Group"
    };
    Some(json!({
        "schemas": [RESOURCE_TYPE_SCHEMA],
        "id": canonical,
        "name": canonical,
        "endpoint": endpoint,
        "description": description,
        "schema": schema,
        "schemaExtensions": extensions
            .iter()
            .map(|extension| json!({"schema": extension.id, "required": false}))
            .collect::<Vec<_>>(),
        "meta": {
            "resourceType": "ResourceType",
            "location": format!("{base_url}/ResourceTypes/{canonical}"),
        },
    }))
}

pub async fn resource_types(
    State(_app): State<AppState>,
    client: ScimClient,
    RawQuery(query): RawQuery,
) -> Result<Response, ScimError> {
    refuse_filter(query.as_deref())?;
    let resources: Vec<Value> = ["User", "Group"]
        .iter()
        .filter_map(|name| resource_type_json(name, &client.base_url))
        .collect();
    Ok(scim_response(
        StatusCode::OK,
        &list_response(resources.len(), 1, resources),
    ))
}

pub async fn resource_type(
    State(_app): State<AppState>,
    client: ScimClient,
    Path((_tenant, name)): Path<(String, String)>,
) -> Result<Response, ScimError> {
    let resource = resource_type_json(&name, &client.base_url)
        .ok_or_else(|| ScimError::not_found(format!("no resource type {name}")))?;
    Ok(scim_response(StatusCode::OK, &resource))
}

fn mutability(value: Mutability) -> &'static str {
    match value {
        Mutability::ReadOnly => "readOnly",
        Mutability::ReadWrite => "readWrite",
        Mutability::Immutable => "immutable",
        Mutability::WriteOnly => "writeOnly",
    }
}

fn returned(value: Returned) -> &'static str {
    match value {
        Returned::Always => "always",
        Returned::Never => "never",
        Returned::Default => "default",
        Returned::Request => "request",
    }
}

/// What a reference attribute may point to.
fn reference_types(attribute: &Attribute) -> Vec<&'static str> {
    match attribute.name {
        "$ref" => vec!["User", "Group"],
        "location" => vec!["uri"],
        _ => vec!["external"],
    }
}

/// The values a `type` sub-attribute takes, by its parent attribute.
fn canonical_types(parent: Option<&str>) -> &'static [&'static str] {
    match parent {
        Some("members") => &["User"],
        Some("groups") => &["direct"],
        Some("emails" | "addresses") => &["work", "home", "other"],
        Some("phoneNumbers") => &["work", "home", "mobile", "fax", "pager", "other"],
        Some("ims") => &["aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo"],
        Some("photos") => &["photo", "thumbnail"],
        _ => &[],
    }
}

/// The limits of `engine::domain::limits` on an attribute's values, as sentences for its
/// description (RFC 7643 §7 has no characteristic for sizes; a description is free text).
fn limit_note(schema: &Schema, parent: Option<&str>, attribute: &Attribute) -> Option<String> {
    if matches!(
        attribute.mutability,
        Mutability::ReadOnly | Mutability::WriteOnly
    ) {
        return None;
    }
    if schema.id == GROUP.id && parent.is_none() && attribute.name == "members" {
        return Some(format!(
            "Not limited to {VALUES_MAX} values like other multi-valued attributes: members are \
             stored one by one as edges, not in the group."
        ));
    }
    let mut notes = Vec::new();
    if attribute.multi_valued {
        notes.push(format!("At most {VALUES_MAX} values."));
    }
    if matches!(
        attribute.kind,
        Kind::String | Kind::Reference | Kind::Binary | Kind::DateTime
    ) {
        let max = match (schema.id, parent, attribute.name) {
            (id, None, "userName") if id == USER.id => USER_NAME_MAX_BYTES,
            (id, None, "displayName") if id == GROUP.id => GROUP_NAME_MAX_BYTES,
            _ => STRING_MAX_BYTES,
        };
        notes.push(format!("At most {max} bytes (UTF-8)."));
    }
    (!notes.is_empty()).then(|| notes.join(" "))
}

/// A resource schema's description with the limits on the whole resource.
fn schema_description(schema: &Schema) -> String {
    let resource = match schema.id {
        id if id == USER.id => "user",
        id if id == GROUP.id => "group (its members aside)",
        _ => return schema.description.to_owned(),
    };
    format!(
        "{}. A {resource} holds at most {RESOURCE_MAX_BYTES} bytes of JSON, including at most \
         {EXTRA_ATTRIBUTES_MAX} attributes outside its schemas ({EXTRA_ATTRIBUTES_MAX_BYTES} bytes \
         together), which are stored and returned as sent.",
        schema.description
    )
}

fn attribute_json(schema: &Schema, attribute: &Attribute, parent: Option<&str>) -> Value {
    let text = match limit_note(schema, parent, attribute) {
        Some(note) => format!("{} {note}", attribute.description),
        None => attribute.description.to_owned(),
    };
    let mut description = json!({
        "name": attribute.name,
        "type": attribute.kind.as_str(),
        "multiValued": attribute.multi_valued,
        "description": text,
        "required": attribute.required,
        "mutability": mutability(attribute.mutability),
        "returned": returned(attribute.returned),
        "uniqueness": if attribute.unique { "server" } else { "none" },
    });
    if matches!(
        attribute.kind,
        Kind::String | Kind::Reference | Kind::Binary
    ) {
        description["caseExact"] = Value::Bool(attribute.case_exact);
    }
    if attribute.kind == Kind::Reference {
        description["referenceTypes"] = json!(reference_types(attribute));
    }
    if attribute.name == "type" && !canonical_types(parent).is_empty() {
        description["canonicalValues"] = json!(canonical_types(parent));
    }
    if !attribute.sub_attributes.is_empty() {
        description["subAttributes"] = attribute
            .sub_attributes
            .iter()
            .map(|sub| attribute_json(schema, sub, Some(attribute.name)))
            .collect();
    }
    description
}

fn schema_json(schema: &Schema, base_url: &str) -> Value {
    json!({
        "schemas": [SCHEMA_SCHEMA],
        "id": schema.id,
        "name": schema.name,
        "description": schema_description(schema),
        "attributes": schema
            .attributes
            .iter()
            .map(|attribute| attribute_json(schema, attribute, None))
            .collect::<Vec<_>>(),
        "meta": {
            "resourceType": "Schema",
            "location": format!("{base_url}/Schemas/{}", schema.id),
        },
    })
}

pub async fn schemas(
    State(_app): State<AppState>,
    client: ScimClient,
    RawQuery(query): RawQuery,
) -> Result<Response, ScimError> {
    refuse_filter(query.as_deref())?;
    let resources: Vec<Value> = SCHEMAS
        .iter()
        .map(|schema| schema_json(schema, &client.base_url))
        .collect();
    Ok(scim_response(
        StatusCode::OK,
        &list_response(resources.len(), 1, resources),
    ))
}

pub async fn schema(
    State(_app): State<AppState>,
    client: ScimClient,
    Path((_tenant, id)): Path<(String, String)>,
) -> Result<Response, ScimError> {
    let schema = SCHEMAS
        .iter()
        .find(|schema| schema.id.eq_ignore_ascii_case(&id))
        .ok_or_else(|| ScimError::not_found(format!("no schema {id}")))?;
    Ok(scim_response(
        StatusCode::OK,
        &schema_json(schema, &client.base_url),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemas_describe_every_attribute_with_its_characteristics() {
        let user = schema_json(&USER, "http://x/scim/v2/acme");
        let attributes = user["attributes"].as_array().unwrap();
        let user_name = attributes.iter().find(|a| a["name"] == "userName").unwrap();
        assert_eq!(user_name["uniqueness"], "server");
        assert_eq!(user_name["required"], true);
        assert_eq!(user_name["caseExact"], false);
        let password = attributes.iter().find(|a| a["name"] == "password").unwrap();
        assert_eq!(password["returned"], "never");
        assert_eq!(password["mutability"], "writeOnly");
        let groups = attributes.iter().find(|a| a["name"] == "groups").unwrap();
        assert_eq!(groups["mutability"], "readOnly");
        assert!(groups["subAttributes"].as_array().unwrap().len() >= 3);
        assert!(
            !user.to_string().contains("null"),
            "Entra rejects nulls in /Schemas"
        );
    }

    #[test]
    fn schemas_advertise_the_limits_in_descriptions() {
        let description = |schema: &Value, path: &[&str]| -> String {
            let mut attributes = &schema["attributes"];
            let mut found = &Value::Null;
            for name in path {
                found = attributes
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|a| a["name"] == *name)
                    .unwrap();
                attributes = &found["subAttributes"];
            }
            found["description"].as_str().unwrap().to_owned()
        };
        let user = schema_json(&USER, "http://x/scim/v2/acme");
        assert!(description(&user, &["displayName"]).ends_with("At most 4096 bytes (UTF-8)."));
        assert!(description(&user, &["userName"]).ends_with("At most 256 bytes (UTF-8)."));
        assert!(description(&user, &["emails"]).ends_with("At most 100 values."));
        assert!(description(&user, &["emails", "value"]).ends_with("At most 4096 bytes (UTF-8)."));
        assert!(!description(&user, &["active"]).contains("At most"));
        assert!(!description(&user, &["groups"]).contains("At most"));
        assert!(
            user["description"]
                .as_str()
                .unwrap()
                .contains("at most 16384 bytes")
        );
        let group = schema_json(&GROUP, "http://x/scim/v2/acme");
        assert!(description(&group, &["displayName"]).ends_with("At most 1024 bytes (UTF-8)."));
        assert!(description(&group, &["members"]).contains("Not limited to 100 values"));
        let enterprise = schema_json(&ENTERPRISE_USER, "http://x/scim/v2/acme");
        assert!(
            description(&enterprise, &["manager", "value"])
                .ends_with("At most 4096 bytes (UTF-8).")
        );
    }

    #[test]
    fn the_service_provider_config_advertises_what_is_implemented() {
        assert!(
            service_provider_config_json("http://x/scim/v2/acme", false)
                .get("securityEvents")
                .is_none()
        );
        let config = service_provider_config_json("http://x/scim/v2/acme", true);
        assert_eq!(config["patch"]["supported"], true);
        assert_eq!(config["bulk"]["maxOperations"], MAX_OPERATIONS);
        assert_eq!(config["filter"]["maxResults"], MAX_RESULTS);
        assert_eq!(config["changePassword"]["supported"], false);
        assert_eq!(
            config["pagination"],
            json!({"cursor": true, "index": true, "defaultPaginationMethod": "index",
                   "defaultPageSize": DEFAULT_COUNT, "maxPageSize": MAX_RESULTS})
        );
        assert_eq!(
            config["authenticationSchemes"][0]["type"],
            "oauthbearertoken"
        );
        assert_eq!(config["securityEvents"]["asyncRequest"], "none");
        assert_eq!(
            config["securityEvents"]["eventUris"][4],
            "urn:ietf:params:scim:event:prov:delete"
        );
    }

    #[test]
    fn every_schema_of_every_resource_is_served() {
        for resource in [&USER_RESOURCE, &GROUP_RESOURCE] {
            for schema in std::iter::once(resource.core).chain(resource.extensions.iter().copied())
            {
                assert!(
                    SCHEMAS.iter().any(|served| served.id == schema.id),
                    "{} is not in /Schemas",
                    schema.id
                );
            }
        }
    }
}
