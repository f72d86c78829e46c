//! roster's read side: projections of the event log into views that SCIM and gRPC read, with
//! checkpoints stored atomically with each view change, and the runner that keeps them current.
//!
//! **Architecture invariant:** nothing here writes events. Projections read the log and write
//! only their own sled trees, all of which can be deleted and rebuilt from the log.

pub mod access;
pub mod audit;
pub mod directory;
pub mod positions;
pub mod runner;

pub use access::{AccessRecord, Grant, ResourceGroupMember, Via};
pub use audit::{AUDIT_TREE, AuditRecord, AuditTrail, ChainBreak, Verification};
pub use directory::{DIRECTORY_TREE, DirectoryView};
pub use runner::{Lag, Projection, ProjectionError, Projector};
