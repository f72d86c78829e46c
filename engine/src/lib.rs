//! roster's engine: the pure directory domain, the event log (embedded sled, JetStream), the
//! aggregate store the engine decides against, and the per-tenant command pipeline.

pub mod codec;
pub mod domain;
pub mod engine;
pub mod log;
pub mod store;
