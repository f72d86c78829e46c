//! The projector's integration tests: one binary, one module per area.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod audit;
mod history;
mod positions;
mod properties;
mod runner;
mod support;
