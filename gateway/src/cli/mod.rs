//! The `roster` command's commands, one module per family, and what they share: the global
//! options (`Common`), the gRPC connection (`connect`), the pager over gRPC listings (`pager`)
//! and the terminal rendering (`render`). Every command returns its exit code to `main`.
//! `bench` and `drift` (and the pager, which only `drift` uses) are client tools, built with
//! the `tools` feature.

pub mod audit;
#[cfg(feature = "tools")]
pub mod bench;
pub mod connect;
#[cfg(feature = "tools")]
pub mod drift;
pub mod offline;
#[cfg(feature = "tools")]
pub mod pager;
#[cfg(test)]
mod readme_commands;
pub mod render;
pub mod resource_group;
pub mod role;
pub mod serve;
pub mod ssf;
pub mod tenant;
pub mod token;
pub mod webhook;

use std::path::PathBuf;

use clap::Args;

/// Options every command takes: where the data lives and where roster's gRPC port is.
#[derive(Args, Debug)]
pub struct Common {
    /// Data directory (the embedded log, views, and admin.token).
    #[arg(
        long,
        global = true,
        env = "ROSTER_DATA_DIR",
        default_value = "./roster-data"
    )]
    pub data_dir: PathBuf,
    /// gRPC address: where `serve` listens, and where the admin commands connect.
    #[arg(
        long,
        global = true,
        env = "ROSTER_GRPC",
        default_value = "127.0.0.1:50051"
    )]
    pub grpc: String,
}

/// A failed RPC as the error a command reports: the status code and its message.
pub fn rpc_error(status: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{:?}: {}", status.code(), status.message())
}
