//! Identifiers and time as the domain sees them: validated tenant names, typed resource ids and a
//! microsecond timestamp. The domain never reads a clock or generates ids; callers pass them in.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A tenant (organization) name: 1–63 characters of `a-z`, `0-9` and `-`, not starting or ending
/// with `-`. It appears in SCIM URLs and NATS subjects, so it is kept to that safe alphabet.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantName(String);

/// The reserved tenant that holds deployment-wide state, such as admin tokens.
pub const SYSTEM_TENANT: &str = "_system";

/// Joins a live tenant's name to the suffix of one of its staging branches (`acme~s3`). `~` is not
/// in the tenant-name alphabet, so no request can name, create or authenticate to a branch: only
/// the engine addresses branches, and only through [`TenantName::staging_branch`].
pub const BRANCH_SEPARATOR: char = '~';

impl TenantName {
    /// Parses a tenant name, explaining which rule it breaks.
    pub fn parse(name: &str) -> Result<Self, String> {
        if name == SYSTEM_TENANT {
            return Ok(Self(name.to_owned()));
        }
        if name.is_empty() || name.len() > 63 {
            return Err(format!(
                "tenant name {name:?} must be 1 to 63 characters long"
            ));
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(format!(
                "tenant name {name:?} may only contain lowercase letters, digits and '-'"
            ));
        }
        if name.starts_with('-') || name.ends_with('-') {
            return Err(format!(
                "tenant name {name:?} must not start or end with '-'"
            ));
        }
        Ok(Self(name.to_owned()))
    }

    /// Parses a name read back from the log or a store: a tenant name, or the name of one of a
    /// tenant's staging branches (`acme~s3`), which [`TenantName::parse`] refuses.
    pub fn parse_stored(name: &str) -> Result<Self, String> {
        let Some((live, suffix)) = name.split_once(BRANCH_SEPARATOR) else {
            return Self::parse(name);
        };
        let live = Self::parse(live)?;
        let generation = suffix
            .strip_prefix('s')
            .filter(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|digits| digits.parse::<u64>().ok())
            .ok_or_else(|| format!("{name:?} is not a staging branch name"))?;
        if live.is_system() {
            return Err("the system tenant has no staging branches".to_owned());
        }
        Ok(live.staging_branch(generation))
    }

    /// The name of the `generation`-th staging branch of this tenant.
    pub fn staging_branch(&self, generation: u64) -> Self {
        Self(format!("{}{BRANCH_SEPARATOR}s{generation}", self.0))
    }

    /// Whether this is a staging branch rather than a tenant.
    pub fn is_branch(&self) -> bool {
        self.0.contains(BRANCH_SEPARATOR)
    }

    /// The live tenant a staging branch belongs to; a tenant is its own live tenant.
    pub fn live(&self) -> Self {
        match self.0.split_once(BRANCH_SEPARATOR) {
            Some((live, _)) => Self(live.to_owned()),
            None => self.clone(),
        }
    }

    /// The reserved `_system` tenant.
    pub fn system() -> Self {
        Self(SYSTEM_TENANT.to_owned())
    }

    pub fn is_system(&self) -> bool {
        self.0 == SYSTEM_TENANT
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TenantName {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<TenantName> for String {
    fn from(value: TenantName) -> Self {
        value.0
    }
}

impl fmt::Display for TenantName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// The 16 big-endian bytes of the id; UUIDv7 ids sort by creation time.
            pub fn as_bytes(&self) -> &[u8; 16] {
                self.0.as_bytes()
            }

            pub fn from_slice(bytes: &[u8]) -> Option<Self> {
                Uuid::from_slice(bytes).ok().map(Self)
            }
        }

        impl AsRef<[u8]> for $name {
            fn as_ref(&self) -> &[u8] {
                self.0.as_bytes()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

uuid_id!(
    /// A user's SCIM `id`.
    UserId
);
uuid_id!(
    /// A SCIM group's `id`.
    GroupId
);
uuid_id!(
    /// A resource group's id.
    ResourceGroupId
);
uuid_id!(
    /// A webhook subscription's id.
    WebhookId
);
uuid_id!(
    /// A Shared Signals stream's id (`stream_id`).
    SsfStreamId
);

/// A bearer token's public id (the part of the token that is not secret).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TokenId(pub String);

impl fmt::Display for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Microseconds since the Unix epoch, UTC.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub const fn from_micros(micros: i64) -> Self {
        Self(micros)
    }

    pub const fn as_micros(self) -> i64 {
        self.0
    }

    /// `self + micros`, saturating.
    pub const fn plus_micros(self, micros: i64) -> Self {
        Self(self.0.saturating_add(micros))
    }

    /// RFC 3339 text in UTC, with as many fractional digits as needed.
    pub fn to_rfc3339(self) -> String {
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000)
            .ok()
            .and_then(|moment| {
                moment
                    .format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_default()
    }

    /// Reads RFC 3339 text (any offset).
    pub fn parse_rfc3339(text: &str) -> Option<Self> {
        let moment = time::OffsetDateTime::parse(
            text.trim(),
            &time::format_description::well_known::Rfc3339,
        )
        .ok()?;
        i64::try_from(moment.unix_timestamp_nanos() / 1_000)
            .ok()
            .map(Self)
    }
}

/// Organization and resource-group roles, in increasing privilege.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Read,
    Contributor,
    Write,
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Read, Role::Contributor, Role::Write, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Contributor => "contributor",
            Role::Write => "write",
            Role::Admin => "admin",
        }
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                format!("unknown role {s:?}: expected read, contributor, write or admin")
            })
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_names_follow_the_subject_safe_alphabet() {
        assert!(TenantName::parse("acme").is_ok());
        assert!(TenantName::parse("acme-2").is_ok());
        assert!(TenantName::parse(SYSTEM_TENANT).is_ok());
        for bad in ["", "Acme", "a.b", "-a", "a-", "a b", "a>b", &"x".repeat(64)] {
            assert!(
                TenantName::parse(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn staging_branches_are_named_apart_from_tenants() {
        let acme = TenantName::parse("acme").unwrap();
        let branch = acme.staging_branch(3);
        assert_eq!(branch.as_str(), "acme~s3");
        assert!(branch.is_branch() && !acme.is_branch());
        assert_eq!(branch.live(), acme);
        assert!(
            TenantName::parse("acme~s3").is_err(),
            "no request names a branch"
        );
        assert_eq!(TenantName::parse_stored("acme~s3"), Ok(branch));
        assert_eq!(TenantName::parse_stored("acme"), Ok(acme));
        for bad in [
            "acme~",
            "acme~s",
            "acme~x1",
            "~s1",
            "acme~s1~s2",
            "_system~s1",
        ] {
            assert!(TenantName::parse_stored(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn timestamps_read_and_write_rfc3339() {
        let at = Timestamp::from_micros(1_700_000_000_250_000);
        assert_eq!(at.to_rfc3339(), "2023-11-14T22:13:20.25Z");
        assert_eq!(
            Timestamp::parse_rfc3339("2023-11-14T22:13:20.25Z"),
            Some(at)
        );
        assert_eq!(
            Timestamp::parse_rfc3339("2023-11-15T00:13:20.25+02:00"),
            Some(at)
        );
        assert_eq!(Timestamp::parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn roles_are_ordered_by_privilege() {
        assert!(Role::Read < Role::Contributor);
        assert!(Role::Contributor < Role::Write);
        assert!(Role::Write < Role::Admin);
        assert_eq!("WRITE".parse::<Role>(), Ok(Role::Write));
        assert!("owner".parse::<Role>().is_err());
    }
}
