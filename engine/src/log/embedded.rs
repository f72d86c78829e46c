//! The embedded event log: a sled tree keyed by global sequence, written by one writer thread
//! and made durable by one flusher thread (group commit).
//!
//! An append is visible to the writer's caller at once (so a tenant's next command can be decided
//! against it) but acknowledged to clients only after the flush that holds it: callers await
//! [`EmbeddedLog::wait_durable`]. Readers only ever see durable events.
//!
//! Tree `log` layout: `E seq(8 bytes BE)` → `roster.v1.Event` protobuf; `H tenant` → the tenant's
//! last sequence. Both are written in one atomic batch per append.
//!
//! In NATS mode the same tree is a local *mirror* of the JetStream stream ([`EmbeddedLog::mirror`]):
//! there is no writer; events arrive with the stream's sequences through
//! [`EmbeddedLog::record_mirrored`], already durable in JetStream, and everything that reads the
//! log (aggregate, projections, `Watch`) reads the mirror the same way.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::{oneshot, watch};
use tracing::{error, warn};

use super::{AppendError, AppendRequest, LogError};
use crate::codec;
use crate::domain::{Event, TenantName, Timestamp};

const EVENT: u8 = b'E';
const HEAD: u8 = b'H';
/// Appends taken per writer iteration, at most.
const WRITE_BATCH: usize = 512;

fn event_key(sequence: u64) -> [u8; 9] {
    let mut key = [EVENT; 9];
    key[1..].copy_from_slice(&sequence.to_be_bytes());
    key
}

fn head_key(tenant: &TenantName) -> Vec<u8> {
    let mut key = vec![HEAD];
    key.extend_from_slice(tenant.as_str().as_bytes());
    key
}

fn now() -> Timestamp {
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|since| since.as_micros() as i64)
        .unwrap_or(0);
    Timestamp::from_micros(micros)
}

struct Job {
    request: AppendRequest,
    reply: oneshot::Sender<Result<Vec<Event>, AppendError>>,
}

struct Shared {
    db: sled::Db,
    tree: sled::Tree,
    /// Highest sequence written to the tree (visible, maybe not durable).
    written: AtomicU64,
    /// Set once a write or flush failed: the log refuses everything after that.
    failed: AtomicBool,
    /// Wakes the flusher when `written` moves past what is durable.
    flush_wanted: (Mutex<bool>, Condvar),
    durable: watch::Sender<u64>,
}

/// Handle to the embedded log; clones share one writer.
#[derive(Clone)]
pub struct EmbeddedLog {
    shared: Arc<Shared>,
    /// `None` for a mirror, which is written only by [`EmbeddedLog::record_mirrored`].
    jobs: Option<Sender<Job>>,
    /// Counts the log's threads that have exited (and released the database).
    exited: watch::Receiver<u8>,
}

impl EmbeddedLog {
    fn shared(db: &sled::Db) -> Result<Arc<Shared>, LogError> {
        let tree = db.open_tree("log").map_err(unavailable)?;
        let head = match tree.scan_prefix([EVENT]).next_back() {
            Some(entry) => {
                let (key, _) = entry.map_err(unavailable)?;
                sequence_of(&key)
            }
            None => 0,
        };
        let (durable, _) = watch::channel(head);
        Ok(Arc::new(Shared {
            db: db.clone(),
            tree,
            written: AtomicU64::new(head),
            failed: AtomicBool::new(false),
            flush_wanted: (Mutex::new(false), Condvar::new()),
            durable,
        }))
    }

    /// Opens the log in `db` as a local mirror of a JetStream stream: no writer threads.
    pub fn mirror(db: &sled::Db) -> Result<Self, LogError> {
        let shared = Self::shared(db)?;
        let (_, exited) = watch::channel(2u8);
        Ok(Self {
            shared,
            jobs: None,
            exited,
        })
    }

    /// Stores events mirrored from JetStream, which continue the local log exactly (the first has
    /// sequence `head + 1`). They are durable in JetStream already, so they count as durable
    /// here at once; sled may lose them in a crash and the mirror then fetches them again.
    pub fn record_mirrored(&self, events: &[Event]) -> Result<(), LogError> {
        let Some(last) = events.last() else {
            return Ok(());
        };
        let head = self.durable_head();
        if events.first().map(|event| event.sequence) != Some(head + 1) {
            return Err(LogError::Unavailable(format!(
                "mirrored events must continue the local log at {}",
                head + 1
            )));
        }
        let mut batch = sled::Batch::default();
        let mut heads: HashMap<&TenantName, u64> = HashMap::new();
        for event in events {
            batch.insert(event_key(event.sequence).as_slice(), codec::encode(event));
            heads.insert(&event.tenant, event.sequence);
        }
        for (tenant, sequence) in heads {
            batch.insert(head_key(tenant), sequence.to_be_bytes().as_slice());
        }
        self.shared.tree.apply_batch(batch).map_err(unavailable)?;
        self.shared.written.store(last.sequence, Ordering::Release);
        self.shared.durable.send_replace(last.sequence);
        Ok(())
    }

    /// Opens the log in `db` and starts its writer and flusher threads.
    pub fn open(db: &sled::Db) -> Result<Self, LogError> {
        let shared = Self::shared(db)?;
        let (jobs, requests) = std::sync::mpsc::channel();
        let (exit, exited) = watch::channel(0u8);
        let exit = Arc::new(exit);
        {
            let shared = shared.clone();
            let exit = exit.clone();
            std::thread::Builder::new()
                .name("roster-log-writer".into())
                .spawn(move || {
                    write_loop(&shared, &requests);
                    drop(shared);
                    exit.send_modify(|count| *count += 1);
                })
                .map_err(unavailable)?;
        }
        {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("roster-log-flusher".into())
                .spawn(move || {
                    flush_loop(&shared);
                    drop(shared);
                    exit.send_modify(|count| *count += 1);
                })
                .map_err(unavailable)?;
        }
        Ok(Self {
            shared,
            jobs: Some(jobs),
            exited,
        })
    }

    /// Appends one tenant's events; returns them with their sequences once they are written
    /// (visible), which may be before they are durable.
    pub async fn append(&self, request: AppendRequest) -> Result<Vec<Event>, AppendError> {
        if self.shared.failed.load(Ordering::Acquire) {
            return Err(AppendError::Unavailable("an earlier write failed".into()));
        }
        let (reply, answer) = oneshot::channel();
        let Some(jobs) = &self.jobs else {
            return Err(AppendError::Unavailable(
                "the local log is a read-only mirror".into(),
            ));
        };
        jobs.send(Job { request, reply })
            .map_err(|_| AppendError::Unavailable("log writer stopped".into()))?;
        answer
            .await
            .map_err(|_| AppendError::Unavailable("log writer stopped".into()))?
    }

    /// Whether appends are accepted: a writer that has not failed (a mirror is written by its
    /// stream, not here).
    pub fn writable(&self) -> Result<(), LogError> {
        if self.shared.failed.load(Ordering::Acquire) {
            return Err(LogError::Unavailable(
                "an earlier write failed; restart roster to recover from disk".into(),
            ));
        }
        Ok(())
    }

    /// Resolves once every event up to `sequence` is on disk.
    pub async fn wait_durable(&self, sequence: u64) -> Result<(), LogError> {
        let mut durable = self.shared.durable.subscribe();
        loop {
            if *durable.borrow_and_update() >= sequence {
                return Ok(());
            }
            if self.shared.failed.load(Ordering::Acquire) {
                return Err(LogError::Unavailable("flushing the log failed".into()));
            }
            if durable.changed().await.is_err() {
                return Err(LogError::Unavailable("log flusher stopped".into()));
            }
        }
    }

    /// The highest sequence on disk.
    pub fn durable_head(&self) -> u64 {
        *self.shared.durable.borrow()
    }

    /// Watches the durable head.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.shared.durable.subscribe()
    }

    /// The last sequence of `tenant`'s events (written, maybe not yet durable).
    pub fn tenant_head(&self, tenant: &TenantName) -> Result<u64, LogError> {
        Ok(self
            .shared
            .tree
            .get(head_key(tenant))
            .map_err(unavailable)?
            .and_then(|bytes| <[u8; 8]>::try_from(bytes.as_ref()).ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0))
    }

    /// Durable events with `sequence >= from`, at most `limit` of them, in order.
    pub fn read(&self, from: u64, limit: usize) -> Result<Vec<Event>, LogError> {
        let durable = self.durable_head();
        let mut events = Vec::new();
        if from > durable {
            return Ok(events);
        }
        for entry in self
            .shared
            .tree
            .range(event_key(from.max(1))..=event_key(durable))
        {
            let (key, bytes) = entry.map_err(unavailable)?;
            let sequence = sequence_of(&key);
            let mut event = codec::decode(&bytes).map_err(|error| LogError::Corrupt {
                sequence,
                reason: error.to_string(),
            })?;
            event.sequence = sequence;
            events.push(event);
            if events.len() >= limit {
                break;
            }
        }
        Ok(events)
    }

    /// Flushes what is written and refuses further appends. The flusher thread stops now; the
    /// writer stops once every handle is dropped: see [`Self::released`].
    pub fn close(&self) {
        if let Err(error) = self.shared.db.flush() {
            error!(%error, "final flush of the event log failed");
        }
        self.shared.failed.store(true, Ordering::Release);
        let (lock, wake) = &self.shared.flush_wanted;
        if let Ok(mut wanted) = lock.lock() {
            *wanted = true;
            wake.notify_all();
        }
    }

    /// A future that resolves once the log's threads have exited, that is once every handle
    /// is dropped and the database is released. It holds no handle itself.
    pub fn released(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut exited = self.exited.clone();
        async move {
            let _ = exited.wait_for(|count| *count >= 2).await;
        }
    }
}

fn sequence_of(key: &[u8]) -> u64 {
    key.get(1..9)
        .and_then(|bytes| <[u8; 8]>::try_from(bytes).ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0)
}

fn unavailable(error: impl std::fmt::Display) -> LogError {
    LogError::Unavailable(error.to_string())
}

fn write_loop(shared: &Shared, requests: &Receiver<Job>) {
    let mut heads: HashMap<TenantName, u64> = HashMap::new();
    let mut next = shared.written.load(Ordering::Acquire) + 1;
    while let Ok(first) = requests.recv() {
        let mut jobs = vec![first];
        while jobs.len() < WRITE_BATCH {
            match requests.try_recv() {
                Ok(job) => jobs.push(job),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        for job in jobs {
            let Job { request, reply } = job;
            let result = write_one(shared, &mut heads, &mut next, request);
            let _ = reply.send(result);
        }
        let (lock, wake) = &shared.flush_wanted;
        if let Ok(mut wanted) = lock.lock() {
            *wanted = true;
            wake.notify_one();
        }
    }
}

fn write_one(
    shared: &Shared,
    heads: &mut HashMap<TenantName, u64>,
    next: &mut u64,
    request: AppendRequest,
) -> Result<Vec<Event>, AppendError> {
    if shared.failed.load(Ordering::Acquire) {
        return Err(AppendError::Unavailable("an earlier write failed".into()));
    }
    let AppendRequest {
        tenant,
        expected_head,
        mut events,
        after_append,
    } = request;
    let head = match heads.get(&tenant) {
        Some(head) => *head,
        None => {
            let stored = shared
                .tree
                .get(head_key(&tenant))
                .map_err(|error| AppendError::Unavailable(error.to_string()))?
                .and_then(|bytes| <[u8; 8]>::try_from(bytes.as_ref()).ok())
                .map(u64::from_be_bytes)
                .unwrap_or(0);
            heads.insert(tenant.clone(), stored);
            stored
        }
    };
    if head != expected_head {
        return Err(AppendError::Conflict { actual_head: head });
    }
    if events.is_empty() {
        return Ok(events);
    }
    let recorded_at = now();
    let mut batch = sled::Batch::default();
    for event in &mut events {
        event.sequence = *next;
        event.recorded_at = recorded_at;
        batch.insert(event_key(*next).as_slice(), codec::encode(event));
        *next += 1;
    }
    let last = *next - 1;
    batch.insert(head_key(&tenant), last.to_be_bytes().as_slice());
    if let Err(error) = shared.tree.apply_batch(batch) {
        shared.failed.store(true, Ordering::Release);
        error!(%error, "writing to the event log failed; refusing further appends");
        return Err(AppendError::Unavailable(error.to_string()));
    }
    heads.insert(tenant, last);
    shared.written.store(last, Ordering::Release);
    if let Some(after_append) = after_append
        && let Err(error) = after_append(&events)
    {
        // The events are in the log but what depends on them is not: refuse everything until a
        // restart recovers from the log.
        shared.failed.store(true, Ordering::Release);
        error!(%error, "post-append step failed; refusing further appends until restart");
        return Err(AppendError::Unavailable(error));
    }
    Ok(events)
}

fn flush_loop(shared: &Shared) {
    let (lock, wake) = &shared.flush_wanted;
    loop {
        {
            let Ok(mut wanted) = lock.lock() else { return };
            while !*wanted {
                wanted = match wake.wait(wanted) {
                    Ok(guard) => guard,
                    Err(_) => return,
                };
            }
            *wanted = false;
        }
        if shared.failed.load(Ordering::Acquire) {
            shared.durable.send_modify(|_| {});
            return;
        }
        let target = shared.written.load(Ordering::Acquire);
        if target <= *shared.durable.borrow() {
            continue;
        }
        match shared.db.flush() {
            Ok(_) => {
                shared.durable.send_if_modified(|durable| {
                    let moved = target > *durable;
                    *durable = (*durable).max(target);
                    moved
                });
            }
            Err(error) => {
                warn!(%error, "flushing the event log failed; refusing further appends");
                shared.failed.store(true, Ordering::Release);
                shared.durable.send_modify(|_| {});
                return;
            }
        }
    }
}
