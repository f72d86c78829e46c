//! roster's engine: the pure directory domain, the event log (embedded sled, JetStream), the
//! aggregate store the engine decides against, and the per-tenant command pipeline.

pub mod codec;
pub mod domain;
pub mod engine;
pub mod log;
pub mod staging;
pub mod store;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod workload;
pub mod write_behind;

pub use sled;

/// Opens (or creates) roster's sled database at `path` with a page cache of `cache_bytes`.
/// sled flushes on its own every second; durability of acknowledged events never relies on that
/// (the log flushes before every acknowledgement).
pub fn open_database(path: &std::path::Path, cache_bytes: u64) -> Result<sled::Db, sled::Error> {
    sled::Config::new()
        .path(path)
        .cache_capacity(cache_bytes)
        .flush_every_ms(Some(1000))
        .open()
}
