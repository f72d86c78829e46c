//! SCIM 2.0 (RFC 7643/7644) over HTTP.

pub mod bulk;
pub mod cursor;
pub mod discovery;
pub mod dry_run;
pub mod error;
pub mod filter;
pub mod group;
pub mod groups;
pub mod http;
pub mod list;
pub mod patch;
pub mod resource;
pub mod schema;
pub mod search;
pub mod server;
pub mod sort;
pub mod streamed;
pub mod user;
pub mod users;

/// The media type of every SCIM response.
pub const SCIM_CONTENT_TYPE: &str = "application/scim+json";
