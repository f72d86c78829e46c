//! The embedded event log: a sled tree keyed by global sequence, written by one writer thread
//! and made durable by one flusher thread (group commit).
//!
//! An append is visible to the writer's caller at once (so a tenant's next command can be decided
//! against it) but acknowledged to clients only after the flush that holds it: callers await
//! [`EmbeddedLog::wait_durable`]. Readers only ever see durable events.
//!
//! Tree `log` layout ([`super::packed`]): the events of one writer iteration (every append
//! taken at once, many tenants' commands) packed under one key, `B first-seq`, `H tenant` → the
//! tenant's last sequence, and the tenant index (`T tenant first-seq` → where the tenant's events
//! sit in that batch; `I` → the last sequence indexed), all in one atomic sled batch. A log of the
//! first layout (a key per event) is packed in place when opened, and a log written without the
//! tenant index is indexed then. [`EmbeddedLog::read_tenant`] reads one tenant through the index.
//!
//! Durability is watched from outside sled too: the flusher records the last durable sequence
//! and its event's digest in the watermark file ([`super::watermark`]) after every flush, and
//! [`EmbeddedLog::open`] refuses a recovered log that fell behind it.
//!
//! In NATS mode the same tree is a local *mirror* of the JetStream stream ([`EmbeddedLog::mirror`]):
//! there is no writer; events arrive with the stream's sequences through
//! [`EmbeddedLog::record_mirrored`], already durable in JetStream, and everything that reads the
//! log (aggregate, projections, `Watch`) reads the mirror the same way.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::sync::{Arc, Condvar, Mutex};

use tokio::sync::{oneshot, watch};
use tracing::{error, info, warn};

use super::packed::{self, HEAD, Packer};
use super::watermark::{Mark, Verdict, Watermark};
use super::{AppendError, AppendRequest, LogError};
use crate::clock::{self, SharedClock};
use crate::codec;
use crate::domain::{Event, TenantName};

/// Appends taken per writer iteration, at most.
const WRITE_BATCH: usize = 512;

fn head_key(tenant: &TenantName) -> Vec<u8> {
    let mut key = vec![HEAD];
    key.extend_from_slice(tenant.as_str().as_bytes());
    key
}

/// What [`EmbeddedLog::read_tenant`] read.
#[derive(Clone, Debug, PartialEq)]
pub struct TenantRead {
    /// The tenant's events, in sequence order.
    pub events: Vec<Event>,
    /// Their encoded size in the log, in bytes.
    pub bytes: usize,
    /// Where the next read continues: the first event left out by a limit, or past the durable
    /// head the read reached.
    pub next: u64,
}

/// What [`EmbeddedLog::inspect`] found.
#[derive(Clone, Debug, PartialEq)]
pub struct LogInspection {
    /// The last sequence on disk.
    pub head: u64,
    /// Events on disk.
    pub events: u64,
    /// The first sequence missing below the head.
    pub first_gap: Option<u64>,
    /// The first event that does not decode, and why.
    pub undecodable: Option<(u64, String)>,
    /// Why the log could not be read past `head` (sled found damaged data).
    pub damaged: Option<String>,
    /// The watermark's mark.
    pub mark: Option<Mark>,
    pub verdict: Verdict,
    /// What is wrong with the tenant index, if anything (checked only on a log read whole).
    pub tenant_index: Option<String>,
}

impl Default for LogInspection {
    fn default() -> Self {
        Self {
            head: 0,
            events: 0,
            first_gap: None,
            undecodable: None,
            damaged: None,
            mark: None,
            verdict: Verdict::Unmarked,
            tenant_index: None,
        }
    }
}

impl LogInspection {
    /// Whether the log is whole: no gap, every event decodes, nothing acknowledged is missing.
    pub fn is_sound(&self) -> bool {
        self.first_gap.is_none()
            && self.undecodable.is_none()
            && self.damaged.is_none()
            && matches!(self.verdict, Verdict::Unmarked | Verdict::Intact { .. })
    }
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
    /// The mark of the last event written (set before `written` moves).
    last_written: Mutex<Mark>,
    /// Where the flusher records what each flush made durable (`None` for a mirror).
    watermark: Option<Mutex<Watermark>>,
    /// What `recorded_at` reads, and what the projections' lag is measured against.
    clock: SharedClock,
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
    fn shared(
        db: &sled::Db,
        watermark: Option<&Path>,
        clock: SharedClock,
    ) -> Result<Arc<Shared>, LogError> {
        let tree = db.open_tree("log").map_err(packed::storage)?;
        if packed::needs_migration(&tree)? {
            info!("packing the event log (one key per write instead of one per event)");
            let moved = packed::migrate(&tree)?;
            db.flush().map_err(packed::storage)?;
            info!(events = moved, "event log packed");
        }
        if packed::indexed_through(&tree)? < packed::last(&tree)?.0 {
            info!("indexing the event log by tenant");
            let indexed = packed::build_tenant_index(&tree)?;
            db.flush().map_err(packed::storage)?;
            info!(batches = indexed, "event log indexed by tenant");
        }
        let (head, last_bytes) = packed::last(&tree)?;
        let last_written = if head == 0 {
            Mark::default()
        } else {
            Mark::of(head, &last_bytes)
        };
        let watermark = match watermark {
            Some(path) => Some(Mutex::new(check_watermark(
                &tree,
                path,
                head,
                last_written,
            )?)),
            None => None,
        };
        let (durable, _) = watch::channel(head);
        Ok(Arc::new(Shared {
            db: db.clone(),
            tree,
            written: AtomicU64::new(head),
            failed: AtomicBool::new(false),
            flush_wanted: (Mutex::new(false), Condvar::new()),
            durable,
            last_written: Mutex::new(last_written),
            watermark,
            clock,
        }))
    }

    /// Reads a stopped roster's whole log and holds it against its watermark, changing nothing
    /// (`roster check`): every sequence from 1 to the head must be present and decode.
    pub fn inspect(db: &sled::Db, watermark: &Path) -> Result<LogInspection, LogError> {
        let tree = db.open_tree("log").map_err(packed::storage)?;
        if packed::needs_migration(&tree)? {
            return Err(LogError::Unavailable(
                "the log is in the first layout (a key per event); start roster once to pack it"
                    .into(),
            ));
        }
        let mut inspection = LogInspection::default();
        for batch in packed::batches(&tree, 1, u64::MAX) {
            let (first, value) = match batch {
                Ok(batch) => batch,
                Err(LogError::Damaged(reason)) => {
                    inspection.damaged = Some(reason);
                    break;
                }
                Err(error) => return Err(error),
            };
            if inspection.first_gap.is_none() && first != inspection.head + 1 {
                inspection.first_gap = Some(inspection.head + 1);
            }
            let events = match packed::unpack(first, &value) {
                Ok(events) => events,
                Err(error) => {
                    inspection
                        .undecodable
                        .get_or_insert((first, error.to_string()));
                    continue;
                }
            };
            for (offset, bytes) in events.iter().enumerate() {
                let sequence = first + offset as u64;
                if inspection.undecodable.is_none()
                    && let Err(error) = codec::decode(bytes)
                {
                    inspection.undecodable = Some((sequence, error.to_string()));
                }
                inspection.head = sequence;
                inspection.events += 1;
            }
        }
        let watermark = Watermark::open(watermark).map_err(|error| {
            LogError::Unavailable(format!("cannot read {}: {error}", watermark.display()))
        })?;
        inspection.mark = watermark.mark();
        // Past damage in the middle, judge the tail by the last batch sled still holds.
        let last = match &inspection.damaged {
            Some(_) => packed::last(&tree).map_or(inspection.head, |(last, _)| last),
            None => inspection.head,
        };
        inspection.verdict = watermark.verdict(last, |sequence| {
            packed::stored(&tree, sequence).ok().flatten()
        });
        if inspection.damaged.is_none()
            && inspection.undecodable.is_none()
            && inspection.first_gap.is_none()
        {
            inspection.tenant_index = packed::verify_tenant_index(&tree)?;
        }
        Ok(inspection)
    }

    /// Drops the log's tenant index and builds it again from the events (`roster check
    /// --reindex`, roster stopped). Returns the batches indexed.
    pub fn reindex(db: &sled::Db) -> Result<u64, LogError> {
        let tree = db.open_tree("log").map_err(packed::storage)?;
        if packed::needs_migration(&tree)? {
            return Err(LogError::Unavailable(
                "the log is in the first layout (a key per event); start roster once to pack it"
                    .into(),
            ));
        }
        let indexed = packed::rebuild_tenant_index(&tree)?;
        tree.flush().map_err(packed::storage)?;
        Ok(indexed)
    }

    /// Accepts the log as it is on disk: the watermark is set to its last event, so roster
    /// starts on it again (the aggregate and views ahead of it are then rebuilt). Returns the new
    /// mark. For an operator who knows the events past it are gone for good.
    pub fn accept_as_is(db: &sled::Db, watermark: &Path) -> Result<Mark, LogError> {
        let tree = db.open_tree("log").map_err(packed::storage)?;
        let mark = match packed::last(&tree)? {
            (0, _) => Mark::default(),
            (head, bytes) => Mark::of(head, &bytes),
        };
        let written = Watermark::open(watermark).and_then(|mut file| file.record(mark));
        written.map_err(|error| {
            LogError::Unavailable(format!("cannot write {}: {error}", watermark.display()))
        })?;
        Ok(mark)
    }

    /// Opens the log in `db` as a local mirror of a JetStream stream: no writer threads. The
    /// stream is the source of truth, so a mirror that lost events fetches them again: no
    /// watermark.
    pub fn mirror(db: &sled::Db) -> Result<Self, LogError> {
        Self::mirror_with_clock(db, clock::system())
    }

    /// [`EmbeddedLog::mirror`], measuring lag against `clock`.
    pub fn mirror_with_clock(db: &sled::Db, clock: SharedClock) -> Result<Self, LogError> {
        let shared = Self::shared(db, None, clock)?;
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
        let mut pack = Packer::default();
        for event in events {
            pack.push(
                &mut batch,
                event.sequence,
                event.tenant.as_str(),
                &codec::encode(event),
            );
            heads.insert(&event.tenant, event.sequence);
        }
        pack.finish(&mut batch);
        for (tenant, sequence) in heads {
            batch.insert(head_key(tenant), sequence.to_be_bytes().as_slice());
        }
        packed::mark_indexed(&mut batch, last.sequence);
        self.shared
            .tree
            .apply_batch(batch)
            .map_err(packed::storage)?;
        self.shared.written.store(last.sequence, Ordering::Release);
        self.shared.durable.send_replace(last.sequence);
        Ok(())
    }

    /// Opens the log in `db` and starts its writer and flusher threads. With a `watermark` path
    /// (roster's data directory always has one), a log that lost acknowledged events is refused
    /// ([`LogError::Truncated`], [`LogError::Diverged`]), and every flush is recorded there.
    pub fn open(db: &sled::Db, watermark: Option<&Path>) -> Result<Self, LogError> {
        Self::open_with_clock(db, watermark, clock::system())
    }

    /// [`EmbeddedLog::open`], with `recorded_at` read from `clock`.
    pub fn open_with_clock(
        db: &sled::Db,
        watermark: Option<&Path>,
        clock: SharedClock,
    ) -> Result<Self, LogError> {
        let shared = Self::shared(db, watermark, clock)?;
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

    /// The clock `recorded_at` is read from.
    pub fn clock(&self) -> &SharedClock {
        &self.shared.clock
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
            .map_err(packed::storage)?
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
        let from = from.max(1);
        'batches: for batch in packed::batches(&self.shared.tree, from, durable) {
            let (first, value) = batch?;
            for (offset, bytes) in packed::unpack(first, &value)?.into_iter().enumerate() {
                let sequence = first + offset as u64;
                if sequence < from {
                    continue;
                }
                if sequence > durable || events.len() >= limit {
                    break 'batches;
                }
                let mut event = codec::decode(bytes).map_err(|error| LogError::Corrupt {
                    sequence,
                    reason: error.to_string(),
                })?;
                event.sequence = sequence;
                events.push(event);
            }
        }
        Ok(events)
    }

    /// `tenant`'s durable events with `sequence >= from`, in order, through the tenant index: no
    /// other tenant's event is read. At most `limit_events` events and, past the first, at most
    /// `limit_bytes` of encoded events. [`TenantRead::next`] is where the next read continues.
    pub fn read_tenant(
        &self,
        tenant: &TenantName,
        from: u64,
        limit_events: usize,
        limit_bytes: usize,
    ) -> Result<TenantRead, LogError> {
        let durable = self.durable_head();
        let from = from.max(1);
        let mut read = TenantRead {
            events: Vec::new(),
            bytes: 0,
            next: from,
        };
        if from > durable {
            return Ok(read);
        }
        for entry in packed::tenant_batches(&self.shared.tree, tenant.as_str(), from, durable) {
            let (first, runs) = entry?;
            let value = self
                .shared
                .tree
                .get(packed::batch_key(first))
                .map_err(packed::storage)?
                .ok_or_else(|| LogError::Corrupt {
                    sequence: first,
                    reason: "the tenant index names a batch the log does not hold".to_owned(),
                })?;
            for run in runs {
                let start = first + u64::from(run.index);
                for (offset, bytes) in packed::unpack_run(first, &value, run)?
                    .into_iter()
                    .enumerate()
                {
                    let sequence = start + offset as u64;
                    if sequence < from {
                        continue;
                    }
                    if sequence > durable {
                        read.next = durable + 1;
                        return Ok(read);
                    }
                    let full =
                        read.events.len() >= limit_events || read.bytes + bytes.len() > limit_bytes;
                    if !read.events.is_empty() && full {
                        read.next = sequence;
                        return Ok(read);
                    }
                    let mut event = codec::decode(bytes).map_err(|error| LogError::Corrupt {
                        sequence,
                        reason: error.to_string(),
                    })?;
                    if event.tenant != *tenant {
                        return Err(LogError::Corrupt {
                            sequence,
                            reason: format!(
                                "the tenant index lists an event of {} under {tenant}",
                                event.tenant
                            ),
                        });
                    }
                    event.sequence = sequence;
                    read.bytes += bytes.len();
                    read.events.push(event);
                }
            }
        }
        read.next = durable + 1;
        Ok(read)
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

/// Holds the recovered log (last sequence `head`, whose event's mark is `last`) against the
/// watermark at `path`; refuses a log that lost acknowledged events, and marks a log that reached
/// further than the watermark says (written after the last mark) or was never marked.
fn check_watermark(
    tree: &sled::Tree,
    path: &Path,
    head: u64,
    last: Mark,
) -> Result<Watermark, LogError> {
    let mut watermark = Watermark::open(path).map_err(|error| {
        LogError::Unavailable(format!("cannot read {}: {error}", path.display()))
    })?;
    let verdict = watermark.verdict(head, |sequence| {
        packed::stored(tree, sequence).ok().flatten()
    });
    match verdict {
        Verdict::Truncated { marked, recovered } => {
            return Err(LogError::Truncated { marked, recovered });
        }
        Verdict::Diverged { sequence } => return Err(LogError::Diverged { sequence }),
        Verdict::Unmarked | Verdict::Intact { .. } => {}
    }
    if watermark.mark() != Some(last) {
        watermark.record(last).map_err(|error| {
            LogError::Unavailable(format!("cannot write {}: {error}", path.display()))
        })?;
    }
    Ok(watermark)
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
        write_jobs(shared, &mut heads, &mut next, jobs);
        let (lock, wake) = &shared.flush_wanted;
        if let Ok(mut wanted) = lock.lock() {
            *wanted = true;
            wake.notify_one();
        }
    }
}

/// An append whose events are in this iteration's write.
struct Staged {
    reply: oneshot::Sender<Result<Vec<Event>, AppendError>>,
    events: Vec<Event>,
    after_append: Option<super::AfterAppend>,
}

/// Writes every accepted append of one writer iteration in one atomic sled batch (their events
/// packed under one key), then runs their post-append steps in log order and answers them.
fn write_jobs(
    shared: &Shared,
    heads: &mut HashMap<TenantName, u64>,
    next: &mut u64,
    jobs: Vec<Job>,
) {
    if shared.failed.load(Ordering::Acquire) {
        for job in jobs {
            let _ = job.reply.send(Err(AppendError::Unavailable(
                "an earlier write failed".into(),
            )));
        }
        return;
    }
    let recorded_at = shared.clock.now();
    let first_sequence = *next;
    let mut batch = sled::Batch::default();
    let mut pack = Packer::default();
    let mut last_mark = Mark::default();
    let mut moved: HashMap<TenantName, u64> = HashMap::new();
    let mut staged = Vec::with_capacity(jobs.len());
    for Job { request, reply } in jobs {
        let AppendRequest {
            tenant,
            expected_head,
            mut events,
            after_append,
        } = request;
        let head = match heads.get(&tenant) {
            Some(head) => *head,
            None => match stored_head(&shared.tree, &tenant) {
                Ok(stored) => {
                    heads.insert(tenant.clone(), stored);
                    stored
                }
                Err(error) => {
                    let _ = reply.send(Err(AppendError::Unavailable(error.to_string())));
                    continue;
                }
            },
        };
        if head != expected_head {
            let _ = reply.send(Err(AppendError::Conflict { actual_head: head }));
            continue;
        }
        if events.is_empty() {
            let _ = reply.send(Ok(events));
            continue;
        }
        for event in &mut events {
            event.sequence = *next;
            event.recorded_at = recorded_at;
            let bytes = codec::encode(event);
            last_mark = Mark::of(*next, &bytes);
            pack.push(&mut batch, *next, tenant.as_str(), &bytes);
            *next += 1;
        }
        heads.insert(tenant.clone(), *next - 1);
        moved.insert(tenant, *next - 1);
        staged.push(Staged {
            reply,
            events,
            after_append,
        });
    }
    if staged.is_empty() {
        return;
    }
    pack.finish(&mut batch);
    for (tenant, last) in &moved {
        batch.insert(head_key(tenant), last.to_be_bytes().as_slice());
    }
    packed::mark_indexed(&mut batch, *next - 1);
    if let Err(error) = shared.tree.apply_batch(batch) {
        shared.failed.store(true, Ordering::Release);
        error!(%error, "writing to the event log failed; refusing further appends");
        for tenant in moved.keys() {
            heads.remove(tenant);
        }
        *next = first_sequence;
        for job in staged {
            let _ = job
                .reply
                .send(Err(AppendError::Unavailable(error.to_string())));
        }
        return;
    }
    if let Ok(mut marked) = shared.last_written.lock() {
        *marked = last_mark;
    }
    shared.written.store(*next - 1, Ordering::Release);
    for Staged {
        reply,
        events,
        after_append,
    } in staged
    {
        // After a failed post-append step, what depends on later events must not be written
        // either (it would claim to cover the failed one's): refuse them, a restart recovers.
        if shared.failed.load(Ordering::Acquire) {
            let _ = reply.send(Err(AppendError::Unavailable(
                "an earlier post-append step failed".into(),
            )));
            continue;
        }
        if let Some(after_append) = after_append
            && let Err(error) = after_append(&events)
        {
            // The events are in the log but what depends on them is not: refuse everything until
            // a restart recovers from the log.
            shared.failed.store(true, Ordering::Release);
            error!(%error, "post-append step failed; refusing further appends until restart");
            let _ = reply.send(Err(AppendError::Unavailable(error)));
            continue;
        }
        let _ = reply.send(Ok(events));
    }
}

fn stored_head(tree: &sled::Tree, tenant: &TenantName) -> Result<u64, sled::Error> {
    Ok(tree
        .get(head_key(tenant))?
        .and_then(|bytes| <[u8; 8]>::try_from(bytes.as_ref()).ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0))
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
        // Taken before the flush, so the flush covers it; at least `target`, since the writer
        // sets it before `written`.
        let Ok(mark) = shared.last_written.lock().map(|mark| *mark) else {
            return;
        };
        let target = target.max(mark.sequence);
        let flushed = shared.db.flush().and_then(|_| match &shared.watermark {
            Some(watermark) => match watermark.lock() {
                Ok(mut watermark) => watermark.record(mark).map_err(sled::Error::Io),
                Err(_) => Err(sled::Error::ReportableBug(
                    "the watermark lock is poisoned".into(),
                )),
            },
            None => Ok(()),
        });
        match flushed {
            Ok(()) => {
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

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::domain::{EventPayload, UserId};
    use crate::testkit::envelope;

    fn tenant(name: &str) -> TenantName {
        TenantName::parse(name).unwrap()
    }

    fn event(tenant: &TenantName, sequence: u64, note: &str) -> Event {
        let mut event = envelope(
            tenant,
            sequence,
            EventPayload::UserDeactivated {
                user_id: UserId(Uuid::now_v7()),
                user_name: note.to_owned(),
                external_id: None,
                email: Default::default(),
                sso: Default::default(),
            },
        );
        event.id = Uuid::now_v7();
        event
    }

    /// 3,000 events: `acme`, `acme2` and `globex` take turns in runs of 1 to 7 events, and
    /// `globex` also writes long stretches alone.
    fn history() -> Vec<Event> {
        let names = [tenant("acme"), tenant("acme2"), tenant("globex")];
        let mut events = Vec::new();
        let mut turn = 0usize;
        while events.len() < 3000 {
            let who = &names[turn % 3];
            let run = if turn % 10 == 9 { 200 } else { 1 + turn % 7 };
            let who = if run == 200 { &names[2] } else { who };
            for _ in 0..run {
                let sequence = events.len() as u64 + 1;
                events.push(event(who, sequence, &format!("{who}-{sequence}")));
            }
            turn += 1;
        }
        events.truncate(3000);
        events
    }

    fn temporary() -> sled::Db {
        sled::Config::new().temporary(true).open().unwrap()
    }

    /// Every event of `tenant` through the tenant index, in reads of at most `limit` events.
    fn read_all_of(log: &EmbeddedLog, tenant: &TenantName, limit: usize) -> Vec<Event> {
        let mut events = Vec::new();
        let mut next = 1;
        loop {
            let read = log.read_tenant(tenant, next, limit, usize::MAX).unwrap();
            assert!(read.events.len() <= limit);
            assert!(read.next > next || read.events.is_empty());
            next = read.next;
            if read.events.is_empty() {
                assert_eq!(next, log.durable_head() + 1);
                return events;
            }
            events.extend(read.events);
        }
    }

    fn only(events: &[Event], tenant: &TenantName) -> Vec<(u64, Uuid)> {
        events
            .iter()
            .filter(|event| event.tenant == *tenant)
            .map(|event| (event.sequence, event.id))
            .collect()
    }

    fn keys_with_prefix(tree: &sled::Tree, prefix: u8) -> usize {
        tree.scan_prefix([prefix]).count()
    }

    #[test]
    fn a_tenant_read_returns_its_own_events_in_order_across_batches_and_limits() {
        let db = temporary();
        let log = EmbeddedLog::mirror(&db).unwrap();
        let history = history();
        // Mirrored in chunks, as the JetStream mirror does: tenants share packed values.
        for chunk in history.chunks(97) {
            log.record_mirrored(chunk).unwrap();
        }
        for name in ["acme", "acme2", "globex"] {
            let name = tenant(name);
            for limit in [1, 5, 1000] {
                let read = read_all_of(&log, &name, limit);
                assert_eq!(
                    only(&read, &name),
                    only(&history, &name),
                    "{name} in reads of {limit}"
                );
            }
        }
        assert!(
            read_all_of(&log, &tenant("initech"), 10).is_empty(),
            "a tenant without events"
        );
        // From the middle of a batch and of a run.
        let acme = tenant("acme");
        let from = only(&history, &acme)[10].0;
        let read = log.read_tenant(&acme, from, 3, usize::MAX).unwrap();
        let sequences: Vec<u64> = read.events.iter().map(|event| event.sequence).collect();
        let expected: Vec<u64> = only(&history, &acme)[10..13]
            .iter()
            .map(|(sequence, _)| *sequence)
            .collect();
        assert_eq!(sequences, expected);
        assert_eq!(read.next, only(&history, &acme)[13].0);
        // A byte limit: at least one event, then no more than the limit.
        let one = log.read_tenant(&acme, 1, 1000, 1).unwrap();
        assert_eq!(one.events.len(), 1);
        let some = log.read_tenant(&acme, 1, 1000, 600).unwrap();
        assert!(some.events.len() > 1 && some.bytes <= 600, "{}", some.bytes);
        assert_eq!(
            some.next,
            only(&history, &acme)[some.events.len()].0,
            "the next read starts at the first event left out"
        );
        // Past the head: nothing, and the next read waits there.
        let past = log.read_tenant(&acme, 3001, 10, usize::MAX).unwrap();
        assert!(past.events.is_empty());
        assert_eq!(past.next, 3001);
    }

    /// The proof that a tenant read touches no other tenant's events: every other tenant's event
    /// is overwritten with bytes that do not decode (lengths kept), and the tenant still reads
    /// all of its own, while a read of the whole log fails on the first damaged one.
    #[test]
    fn a_tenant_read_never_decodes_another_tenants_events() {
        let db = temporary();
        let log = EmbeddedLog::mirror(&db).unwrap();
        let history = history();
        for chunk in history.chunks(97) {
            log.record_mirrored(chunk).unwrap();
        }
        let acme = tenant("acme");
        let tree = db.open_tree("log").unwrap();
        let mut damaged = sled::Batch::default();
        for entry in tree.scan_prefix([b'B']) {
            let (key, value) = entry.unwrap();
            let first = u64::from_be_bytes(key[1..9].try_into().unwrap());
            let mut rewritten = Vec::new();
            for (offset, bytes) in packed::unpack(first, &value).unwrap().iter().enumerate() {
                let sequence = first + offset as u64;
                if history[sequence as usize - 1].tenant == acme {
                    packed::push(&mut rewritten, bytes);
                } else {
                    packed::push(&mut rewritten, &vec![0xff; bytes.len()]);
                }
            }
            damaged.insert(key, rewritten);
        }
        tree.apply_batch(damaged).unwrap();
        assert!(matches!(log.read(1, 3000), Err(LogError::Corrupt { .. })));
        assert_eq!(
            only(&read_all_of(&log, &acme, 50), &acme),
            only(&history, &acme)
        );
    }

    /// `roster check` holds the tenant index against the events: a changed, a missing and an
    /// invented entry are each reported, and `reindex` makes it right again.
    #[test]
    fn a_wrong_tenant_index_is_reported_and_rebuilt() {
        let db = temporary();
        let log = EmbeddedLog::mirror(&db).unwrap();
        for chunk in history().chunks(97) {
            log.record_mirrored(chunk).unwrap();
        }
        let tree = db.open_tree("log").unwrap();
        assert_eq!(packed::verify_tenant_index(&tree).unwrap(), None);
        let entries: Vec<_> = tree
            .scan_prefix([b'T'])
            .map(|entry| entry.unwrap())
            .collect();
        assert!(entries.len() > 2, "several index entries");
        let (changed, value) = entries[0].clone();
        let (missing, _) = entries[1].clone();
        let mut wrong = value.to_vec();
        wrong[8] ^= 1; // the first run's count
        type Damage = Box<dyn Fn(&sled::Tree)>;
        let damages: [(&str, Damage); 3] = [
            (
                "does not match",
                Box::new(move |tree| {
                    tree.insert(changed.clone(), wrong.clone()).unwrap();
                }),
            ),
            (
                "lacks the entry",
                Box::new(move |tree| {
                    tree.remove(missing.clone()).unwrap();
                }),
            ),
            (
                "that no event gives",
                Box::new(|tree| {
                    let mut invented = b"Tnobody\0".to_vec();
                    invented.extend_from_slice(&1u64.to_be_bytes());
                    tree.insert(invented, vec![0u8; 12]).unwrap();
                }),
            ),
        ];
        for (expected, damage) in damages {
            damage(&tree);
            let problem = packed::verify_tenant_index(&tree).unwrap();
            assert!(
                problem
                    .as_deref()
                    .is_some_and(|text| text.contains(expected)),
                "{expected}: {problem:?}"
            );
            assert!(EmbeddedLog::reindex(&db).unwrap() > 0);
            assert_eq!(packed::verify_tenant_index(&tree).unwrap(), None);
        }
    }

    /// A log written before the tenant index (packed events and heads only) is indexed when it
    /// is opened; one whose indexing was cut short is finished at the next open.
    #[test]
    fn a_log_without_the_tenant_index_is_indexed_at_open() {
        let db = temporary();
        let history = history();
        {
            let log = EmbeddedLog::mirror(&db).unwrap();
            for chunk in history.chunks(200) {
                log.record_mirrored(chunk).unwrap();
            }
        }
        let tree = db.open_tree("log").unwrap();
        let indexed: Vec<_> = tree.scan_prefix([b'T']).map(Result::unwrap).collect();
        assert!(!indexed.is_empty());
        let strip = |keep_below: Option<u64>| {
            let mut batch = sled::Batch::default();
            for (key, _) in &indexed {
                let first = u64::from_be_bytes(key[key.len() - 8..].try_into().unwrap());
                if keep_below.is_none_or(|below| first >= below) {
                    batch.remove(key.clone());
                }
            }
            match keep_below {
                None => batch.remove(&[b'I'][..]),
                Some(below) => packed::mark_indexed(&mut batch, below - 1),
            }
            tree.apply_batch(batch).unwrap();
        };

        // As an older roster left it: no index at all.
        strip(None);
        assert_eq!(keys_with_prefix(&tree, b'T'), 0);
        assert_eq!(packed::indexed_through(&tree).unwrap(), 0);
        let log = EmbeddedLog::mirror(&db).unwrap();
        let rebuilt: Vec<_> = tree.scan_prefix([b'T']).map(Result::unwrap).collect();
        assert_eq!(
            rebuilt, indexed,
            "the index built at open is the one written with the events"
        );
        assert_eq!(packed::indexed_through(&tree).unwrap(), 3000);
        for name in ["acme", "acme2", "globex"] {
            let name = tenant(name);
            assert_eq!(
                only(&read_all_of(&log, &name, 64), &name),
                only(&history, &name)
            );
        }
        drop(log);

        // Cut short after the batches below the one starting at 1,401 (200 per mirrored chunk).
        strip(Some(1401));
        assert_eq!(packed::indexed_through(&tree).unwrap(), 1400);
        let log = EmbeddedLog::mirror(&db).unwrap();
        let finished: Vec<_> = tree.scan_prefix([b'T']).map(Result::unwrap).collect();
        assert_eq!(finished, indexed);
        let globex = tenant("globex");
        assert_eq!(
            only(&read_all_of(&log, &globex, 64), &globex),
            only(&history, &globex)
        );

        // New events go on being indexed as they are written.
        let more = vec![event(&globex, 3001, "late")];
        log.record_mirrored(&more).unwrap();
        let read = log.read_tenant(&globex, 3001, 10, usize::MAX).unwrap();
        assert_eq!(only(&read.events, &globex), only(&more, &globex));
    }

    /// The writer of the embedded log writes the index with the events, in one batch.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_writer_indexes_what_it_appends() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::open_database(&dir.path().join("db"), 16 << 20).unwrap();
        let log = EmbeddedLog::open(&db, Some(&dir.path().join("log.watermark"))).unwrap();
        let (acme, globex) = (tenant("acme"), tenant("globex"));
        let mut heads = HashMap::new();
        let mut appended = Vec::new();
        for round in 0..50u64 {
            let who = if round % 3 == 0 { &acme } else { &globex };
            let head = heads.get(who).copied().unwrap_or(0);
            let events = (0..=round % 4)
                .map(|n| event(who, 0, &format!("{round}-{n}")))
                .collect();
            let written = log
                .append(AppendRequest {
                    tenant: who.clone(),
                    expected_head: head,
                    events,
                    after_append: None,
                })
                .await
                .unwrap();
            heads.insert(who.clone(), written.last().unwrap().sequence);
            appended.extend(written);
        }
        log.wait_durable(appended.len() as u64).await.unwrap();
        for name in [&acme, &globex] {
            assert_eq!(
                only(&read_all_of(&log, name, 7), name),
                only(&appended, name)
            );
        }
        assert_eq!(
            packed::indexed_through(&db.open_tree("log").unwrap()).unwrap(),
            appended.len() as u64
        );
        log.close();
    }
}
