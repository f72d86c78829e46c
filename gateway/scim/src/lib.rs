//! SCIM 2.0 as a language, with no server state: the schemas roster serves (RFC 7643), the filter
//! grammar, PATCH operations, sorting, attribute selection and list responses (RFC 7644), cursors
//! (RFC 9865), resource value canonicalisation and the SCIM error. The gateway's HTTP handlers
//! (`roster-gateway`'s `scim` module) put these together with the engine; fuzz targets and
//! benches build against this crate alone.

pub mod cursor;
pub mod error;
pub mod filter;
pub mod list;
pub mod patch;
pub mod resource;
pub mod schema;
pub mod sort;

/// The media type of every SCIM response.
pub const SCIM_CONTENT_TYPE: &str = "application/scim+json";
