//! SCIM 2.0 (RFC 7643/7644) over HTTP: the routes, the handlers and the conversions between
//! SCIM resources and the engine's commands and views. The protocol itself (schemas, filters,
//! PATCH, sorting, list responses, cursors, the error body) is the `roster-scim` crate.

pub mod bulk;
pub mod discovery;
pub mod dry_run;
pub mod error;
pub mod group;
pub mod groups;
pub mod http;
pub mod search;
pub mod server;
pub mod stored;
pub mod streamed;
pub mod user;
pub mod users;
