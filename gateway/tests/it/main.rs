//! The gateway's integration tests: one binary, one module per area, all against the real stack
//! started on port 0 with a temporary data directory (`support`).

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin;
mod audit;
mod connections;
mod crash;
mod damage;
mod drift;
mod dry_run;
mod groups;
mod grpc;
mod handles;
mod interop;
mod jit;
mod leniency;
mod limits;
mod nats;
mod operations;
mod paging;
mod protocol;
mod rebuild;
mod robustness;
mod roles;
mod ssf;
mod staging;
mod streams;
mod support;
mod tidy;
mod types;
mod users;
mod webhooks;
