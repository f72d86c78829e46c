//! roster's edges: the SCIM 2.0 gateway over HTTP, the gRPC services, authentication, and the
//! wiring that starts the whole stack (`app`). The `roster` binary is a thin CLI over this.
//! With the `tools` feature (on by default), also the client tools: the load generator
//! (`bench`) and the comparison with an IdP export (`drift`).
//!
//! **Architecture invariant:** no directory rule lives here. The gateway translates SCIM JSON and
//! gRPC messages into engine commands and renders views; the engine decides.

pub mod app;
pub mod auth;
#[cfg(feature = "tools")]
pub mod bench;
pub mod connections;
#[cfg(feature = "tools")]
pub mod drift;
pub mod grpc;
pub mod instrument;
pub mod metrics;
pub mod ratelimit;
pub mod rejections;
pub mod scim;
pub mod ssf;
pub mod state;
pub mod streams;
pub mod webhooks;
