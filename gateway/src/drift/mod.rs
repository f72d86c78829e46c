//! Drift reports: how a tenant's directory in roster differs from an IdP's export of it
//! (`roster drift`), one submodule per stage:
//!
//! - `export`: reads the export ([`Export::parse`]), SCIM JSON or CSV, with the SCIM readers of
//!   `scim::resource`, and notes what it carries.
//! - `roster`: roster's side, built page by page from the `Directory` gRPC messages
//!   ([`RosterDirectory`]).
//! - `compare`: matches users and groups across the sides and lists what differs
//!   ([`compare()`]).
//! - `report`: the [`Report`], sorted, rendered as text or as JSON (`version` 1, the stable
//!   machine output).
//!
//! `userName` and group `displayName` compare case-insensitively (SCIM's `caseExact: false`, and
//! how roster itself tells them apart); every other value compares exactly.

mod compare;
mod export;
#[cfg(test)]
mod fixtures;
mod report;
mod roster;

pub use compare::{compare, groups_needing_members};
pub use export::{Carried, Export, ExportError, InputFormat, UserAttribute};
pub use report::{
    Ambiguous, Changed, Compared, Difference, GroupSummary, MatchedBy, MembershipDifference,
    Report, Section, Summary, UserSummary,
};
pub use roster::RosterDirectory;

/// Folds a userName or displayName for case-insensitive matching (as roster does).
fn fold(name: &str) -> String {
    roster_engine::domain::fold(name)
}

/// One user as one side knows it. `None`: no value (for `active`: not stated).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UserEntry {
    /// roster's id; in an export, the IdP's id when it has one.
    pub id: Option<String>,
    pub user_name: String,
    pub external_id: Option<String>,
    pub active: Option<bool>,
    pub display_name: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    /// The primary email (the one marked primary, else the first).
    pub email: Option<String>,
    /// roster's platform handle (roster's side only; shown, never compared).
    pub handle: Option<String>,
}

/// One group as one side knows it (members apart).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GroupEntry {
    pub id: Option<String>,
    pub display_name: String,
    pub external_id: Option<String>,
    pub member_count: u64,
}
