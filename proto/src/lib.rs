//! roster's wire contract: the lifecycle event envelope and payloads (`roster.v1.Event`) and the
//! gRPC services, generated at build time from `roster/v1/*.proto`, and the JSON form of an event
//! (the proto3 JSON mapping with the proto's field names). No logic lives here.

#[allow(clippy::all, clippy::pedantic, missing_docs, unreachable_pub)]
pub mod v1 {
    tonic::include_proto!("roster.v1");

    /// Encoded `FileDescriptorSet` of every roster proto, for gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("roster_descriptor");
}

pub mod json;

pub use prost;
pub use prost_types;
