//! What the gateway checks of a SCIM resource before it is stored that the protocol alone does
//! not say: its attributes outside the schemas stay within the engine's limits.

use roster_engine::domain::limits::{self, ExtraAttributes};
use roster_scim::resource::for_each_extra_attribute;
use roster_scim::schema::ResourceSchema;
use serde_json::{Map, Value};

use super::error::{ScimError, ScimResult};

/// The attributes of a stored resource (or one about to be) outside its schemas, as the engine
/// keeps them.
pub fn extra_attributes(
    attributes: &Map<String, Value>,
    schema: &ResourceSchema,
) -> ExtraAttributes {
    let mut extra = ExtraAttributes::default();
    for_each_extra_attribute(attributes, schema, |name, value| extra.add(name, value));
    extra
}

/// Checks the attributes outside `schema` of a resource's new `attributes` against their limits
/// (`limits::EXTRA_ATTRIBUTES_MAX`, `limits::EXTRA_ATTRIBUTES_MAX_BYTES`); `before`: the
/// attributes as stored, on a replace or patch.
pub fn check_extra_attributes(
    resource: limits::Resource,
    schema: &ResourceSchema,
    attributes: &Map<String, Value>,
    before: Option<&Map<String, Value>>,
) -> Result<(), ScimError> {
    let extra = extra_attributes(attributes, schema);
    let before = before.map(|before| extra_attributes(before, schema));
    limits::check_extra_attributes(resource, &extra, before.as_ref()).scim()
}
