//! roster's engine: the pure directory domain, the event log (embedded sled, JetStream), the
//! aggregate store the engine decides against, and the per-tenant command pipeline.

pub mod changes;
pub mod clock;
pub mod codec;
pub mod domain;
pub mod engine;
pub mod log;
pub mod resident;
pub mod staging;
pub mod store;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod workload;

pub use sled;

/// Opens (or creates) roster's sled database at `path` with a page cache of `cache_bytes`.
/// sled flushes on its own every second; durability of acknowledged events never relies on that
/// (the log flushes before every acknowledgement).
///
/// sled 0.34 panics instead of answering an error on some damaged files (while writing the
/// snapshot of what it recovered); that panic is caught here and returned as an `InvalidData`
/// I/O error saying the database is damaged.
pub fn open_database(path: &std::path::Path, cache_bytes: u64) -> Result<sled::Db, sled::Error> {
    let config = sled::Config::new()
        .path(path)
        .cache_capacity(cache_bytes)
        .flush_every_ms(Some(1000));
    // Silence the panic hook for the open alone: the panic becomes the error below. (A panic on
    // another thread meanwhile goes unprinted; roster opens its database before anything runs.)
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| config.open()));
    std::panic::set_hook(hook);
    let opened = opened.map(|result| {
        result.map_err(|error| match error {
            sled::Error::Corruption { .. } => sled::Error::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "the database in {} is damaged: sled could not recover it ({error}); \
                     restore the data directory from a backup",
                    path.display()
                ),
            )),
            other => other,
        })
    });
    opened.unwrap_or_else(|panic| {
        let reason = panic
            .downcast_ref::<&str>()
            .map(|text| (*text).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown failure".to_owned());
        Err(sled::Error::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "the database in {} is damaged: sled could not recover it ({reason}); restore \
                 the data directory from a backup",
                path.display()
            ),
        )))
    })
}
