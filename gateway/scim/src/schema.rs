//! SCIM schema knowledge (RFC 7643 §4, §8.7): which attributes exist, their canonical spelling,
//! type, plurality and case sensitivity. It lets the gateway treat attribute names
//! case-insensitively, canonicalize what IdPs send, type filter comparisons and describe itself.

pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const ENTERPRISE_USER_SCHEMA: &str =
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
/// roster's own User extension: what roster adds to a user (the platform handle).
pub const ROSTER_USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:extension:roster:2.0:User";
pub const LIST_RESPONSE_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub const PATCH_OP_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
pub const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    String,
    Boolean,
    Decimal,
    Integer,
    DateTime,
    Binary,
    Reference,
    Complex,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::String => "string",
            Kind::Boolean => "boolean",
            Kind::Decimal => "decimal",
            Kind::Integer => "integer",
            Kind::DateTime => "dateTime",
            Kind::Binary => "binary",
            Kind::Reference => "reference",
            Kind::Complex => "complex",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mutability {
    ReadOnly,
    ReadWrite,
    Immutable,
    WriteOnly,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Returned {
    Always,
    Never,
    Default,
    Request,
}

/// One attribute of a schema.
#[derive(Debug)]
pub struct Attribute {
    pub name: &'static str,
    pub kind: Kind,
    pub multi_valued: bool,
    pub case_exact: bool,
    pub required: bool,
    pub mutability: Mutability,
    pub returned: Returned,
    pub unique: bool,
    pub description: &'static str,
    pub sub_attributes: &'static [Attribute],
}

impl Attribute {
    /// Finds a sub-attribute by case-insensitive name.
    pub fn sub(&self, name: &str) -> Option<&'static Attribute> {
        self.sub_attributes
            .iter()
            .find(|attribute| attribute.name.eq_ignore_ascii_case(name))
    }
}

/// A schema: its URN and attributes.
#[derive(Debug)]
pub struct Schema {
    pub id: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    pub attributes: &'static [Attribute],
}

impl Schema {
    pub fn attribute(&self, name: &str) -> Option<&'static Attribute> {
        self.attributes
            .iter()
            .find(|attribute| attribute.name.eq_ignore_ascii_case(name))
    }
}

/// A resource type: its core schema and extensions.
#[derive(Debug)]
pub struct ResourceSchema {
    pub core: &'static Schema,
    pub extensions: &'static [&'static Schema],
}

impl ResourceSchema {
    /// The schema a URN names, compared case-insensitively.
    pub fn schema(&self, urn: &str) -> Option<&'static Schema> {
        std::iter::once(self.core)
            .chain(self.extensions.iter().copied())
            .find(|schema| schema.id.eq_ignore_ascii_case(urn))
    }

    /// Resolves an attribute of the core schema, of common attributes, or of the schema `urn`.
    pub fn attribute(&self, urn: Option<&str>, name: &str) -> Option<&'static Attribute> {
        match urn {
            Some(urn) => self.schema(urn)?.attribute(name).or_else(|| {
                (self.core.id.eq_ignore_ascii_case(urn))
                    .then(|| common_attribute(name))
                    .flatten()
            }),
            None => self.core.attribute(name).or_else(|| common_attribute(name)),
        }
    }
}

fn common_attribute(name: &str) -> Option<&'static Attribute> {
    COMMON
        .iter()
        .find(|attribute| attribute.name.eq_ignore_ascii_case(name))
}

macro_rules! flag {
    ($want:ident;) => { false };
    (multi; multi $($rest:ident)*) => { true };
    (exact; exact $($rest:ident)*) => { true };
    (required; required $($rest:ident)*) => { true };
    (unique; unique $($rest:ident)*) => { true };
    ($want:ident; $other:ident $($rest:ident)*) => { flag!($want; $($rest)*) };
}

macro_rules! mutability {
    () => { Mutability::ReadWrite };
    (read_only $($rest:ident)*) => { Mutability::ReadOnly };
    (immutable $($rest:ident)*) => { Mutability::Immutable };
    (write_only $($rest:ident)*) => { Mutability::WriteOnly };
    ($other:ident $($rest:ident)*) => { mutability!($($rest)*) };
}

macro_rules! returned {
    () => { Returned::Default };
    (always $($rest:ident)*) => { Returned::Always };
    (never $($rest:ident)*) => { Returned::Never };
    (request $($rest:ident)*) => { Returned::Request };
    ($other:ident $($rest:ident)*) => { returned!($($rest)*) };
}

/// `attr!(name, Kind, flags… ; description [; [sub-attributes] | ; subs = &STATIC])`, where
/// flags are `multi`, `exact`, `required`, `unique`, a mutability (`read_only`, `immutable`,
/// `write_only`) and a returned mode (`always`, `never`, `request`).
macro_rules! attr {
    ($name:literal, $kind:ident $(, $flag:ident)* ; $description:literal) => {
        attr!($name, $kind $(, $flag)* ; $description ; subs = &[])
    };
    ($name:literal, $kind:ident $(, $flag:ident)* ; $description:literal ; [$($sub:expr),* $(,)?]) => {
        attr!($name, $kind $(, $flag)* ; $description ; subs = &[$($sub),*])
    };
    ($name:literal, $kind:ident $(, $flag:ident)* ; $description:literal ; subs = $subs:expr) => {
        Attribute {
            name: $name,
            kind: Kind::$kind,
            multi_valued: flag!(multi; $($flag)*),
            case_exact: flag!(exact; $($flag)*),
            required: flag!(required; $($flag)*),
            mutability: mutability!($($flag)*),
            returned: returned!($($flag)*),
            unique: flag!(unique; $($flag)*),
            description: $description,
            sub_attributes: $subs,
        }
    };
}

macro_rules! multi_complex_subs {
    ($value_kind:ident) => {
        [
            attr!("value", $value_kind; "The attribute's significant value."),
            attr!("display", String; "A human-readable name, primarily used for display purposes."),
            attr!("type", String; "A label indicating the attribute's function."),
            attr!("primary", Boolean; "Indicates the 'primary' or preferred attribute value."),
        ]
    };
}

static STRING_VALUES: [Attribute; 4] = multi_complex_subs!(String);
static REFERENCE_VALUES: [Attribute; 4] = multi_complex_subs!(Reference);
static BINARY_VALUES: [Attribute; 4] = multi_complex_subs!(Binary);

/// Attributes every resource has (RFC 7643 §3.1).
pub static COMMON: [Attribute; 3] = [
    attr!("id", String, exact, read_only, always, unique; "Unique identifier for the SCIM resource, issued by the service provider."),
    attr!("externalId", String, exact; "Identifier of the resource as defined by the provisioning client."),
    attr!("meta", Complex, read_only; "Resource metadata."; [
        attr!("resourceType", String, exact, read_only; "The name of the resource type."),
        attr!("created", DateTime, read_only; "When the resource was added."),
        attr!("lastModified", DateTime, read_only; "When the resource was last modified."),
        attr!("location", Reference, exact, read_only; "The URI of the resource."),
        attr!("version", String, exact, read_only; "The version (ETag) of the resource."),
    ]),
];

pub static USER: Schema = Schema {
    id: USER_SCHEMA,
    name: "User",
    description: "User Account",
    attributes: &[
        attr!("userName", String, required, unique; "Unique identifier for the User; Hugging Face username rules apply."),
        attr!("name", Complex; "The components of the user's real name."; [
            attr!("formatted", String; "The full name."),
            attr!("familyName", String; "The family name."),
            attr!("givenName", String; "The given name."),
            attr!("middleName", String; "The middle name(s)."),
            attr!("honorificPrefix", String; "The honorific prefix(es)."),
            attr!("honorificSuffix", String; "The honorific suffix(es)."),
        ]),
        attr!("displayName", String; "The name of the User, suitable for display."),
        attr!("nickName", String; "The casual way to address the user."),
        attr!("profileUrl", Reference; "A fully qualified URL pointing to the user's profile."),
        attr!("title", String; "The user's title."),
        attr!("userType", String; "The relationship between the organization and the user."),
        attr!("preferredLanguage", String; "The user's preferred written or spoken language."),
        attr!("locale", String; "The user's default location."),
        attr!("timezone", String; "The user's time zone."),
        attr!("active", Boolean, required; "The user's administrative status; false revokes all access. Always set: true when a create omits it, unchanged when a replace omits it."),
        attr!("password", String, write_only, never; "Accepted and discarded: roster never stores passwords."),
        attr!("emails", Complex, multi; "Email addresses for the user."; subs = &STRING_VALUES),
        attr!("phoneNumbers", Complex, multi; "Phone numbers for the User."; subs = &STRING_VALUES),
        attr!("ims", Complex, multi; "Instant messaging addresses for the User."; subs = &STRING_VALUES),
        attr!("photos", Complex, multi; "URLs of photos of the User."; subs = &REFERENCE_VALUES),
        attr!("addresses", Complex, multi; "A physical mailing address for this User."; [
            attr!("formatted", String; "The full mailing address."),
            attr!("streetAddress", String; "The full street address component."),
            attr!("locality", String; "The city or locality component."),
            attr!("region", String; "The state or region component."),
            attr!("postalCode", String; "The zip code or postal code component."),
            attr!("country", String; "The country name component."),
            attr!("type", String; "A label indicating the attribute's function."),
            attr!("primary", Boolean; "Indicates the 'primary' or preferred address."),
        ]),
        attr!("groups", Complex, multi, read_only; "The groups the user belongs to."; [
            attr!("value", String, read_only; "The identifier of the User's group."),
            attr!("$ref", Reference, read_only; "The URI of the Group resource."),
            attr!("display", String, read_only; "The group's displayName."),
            attr!("type", String, read_only; "'direct' or 'indirect'."),
        ]),
        attr!("entitlements", Complex, multi; "A list of entitlements for the User."; subs = &STRING_VALUES),
        attr!("roles", Complex, multi; "A list of roles for the User."; subs = &STRING_VALUES),
        attr!("x509Certificates", Complex, multi; "A list of certificates issued to the User."; subs = &BINARY_VALUES),
    ],
};

pub static ENTERPRISE_USER: Schema = Schema {
    id: ENTERPRISE_USER_SCHEMA,
    name: "EnterpriseUser",
    description: "Enterprise User",
    attributes: &[
        attr!("employeeNumber", String; "Numeric or alphanumeric identifier assigned to a person."),
        attr!("costCenter", String; "Identifies the name of a cost center."),
        attr!("organization", String; "Identifies the name of an organization."),
        attr!("division", String; "Identifies the name of a division."),
        attr!("department", String; "Identifies the name of a department."),
        attr!("manager", Complex; "The User's manager."; [
            attr!("value", String; "The id of the SCIM resource representing the User's manager."),
            attr!("$ref", Reference; "The URI of the SCIM resource representing the User's manager."),
            attr!("displayName", String, read_only; "The displayName of the User's manager."),
        ]),
    ],
};

pub static ROSTER_USER: Schema = Schema {
    id: ROSTER_USER_SCHEMA,
    name: "RosterUser",
    description: "What roster adds to a User",
    attributes: &[
        attr!("handle", String, read_only; "The platform username (2-42 letters, digits and '-'; unique per tenant, case-insensitively): the userName itself under the tenant's strict username policy, derived from it under derive. Changes only when userName does."),
    ],
};

pub static GROUP: Schema = Schema {
    id: GROUP_SCHEMA,
    name: "Group",
    description: "Group",
    attributes: &[
        attr!("displayName", String, required, unique; "A human-readable name for the Group; unique per tenant."),
        attr!("members", Complex, multi; "A list of members of the Group."; [
            attr!("value", String, immutable; "Identifier of the member of this Group."),
            attr!("$ref", Reference, immutable; "The URI of the member resource."),
            attr!("display", String, read_only, request; "The member's userName (returned when asked for: attributes=members.display)."),
            attr!("type", String, immutable; "'User'."),
        ]),
    ],
};

pub static USER_RESOURCE: ResourceSchema = ResourceSchema {
    core: &USER,
    extensions: &[&ENTERPRISE_USER, &ROSTER_USER],
};

pub static GROUP_RESOURCE: ResourceSchema = ResourceSchema {
    core: &GROUP,
    extensions: &[],
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_resolve_case_insensitively_with_or_without_urn() {
        assert_eq!(
            USER_RESOURCE.attribute(None, "USERNAME").unwrap().name,
            "userName"
        );
        assert_eq!(
            USER_RESOURCE.attribute(None, "externalid").unwrap().name,
            "externalId"
        );
        // externalId is the client's identifier: uniqueness none (RFC 7643 §3.1).
        assert!(!USER_RESOURCE.attribute(None, "externalId").unwrap().unique);
        assert!(!GROUP_RESOURCE.attribute(None, "externalId").unwrap().unique);
        assert_eq!(
            USER_RESOURCE
                .attribute(Some("urn:ietf:params:scim:schemas:core:2.0:user"), "id")
                .unwrap()
                .name,
            "id"
        );
        let manager = USER_RESOURCE
            .attribute(Some(ENTERPRISE_USER_SCHEMA), "MANAGER")
            .unwrap();
        assert_eq!(manager.sub("VALUE").unwrap().name, "value");
        assert!(USER_RESOURCE.attribute(None, "nosuch").is_none());
        assert!(USER_RESOURCE.attribute(None, "employeeNumber").is_none());
    }
}
