//! The command pipeline: one actor per tenant decides commands in order against the aggregate
//! store, appends the events, and answers once they are durable.
//!
//! Tenants never wait for each other's decisions: each has its own actor, which decides every
//! command queued for its tenant against one slice and appends their events together.
//!
//! - **Embedded**: appends meet at the log writer, where many tenants' appends share one flush
//!   (group commit); the writer writes the aggregate right after the events, in log order.
//! - **JetStream**: an append is published with the tenant's head as its expectation. The
//!   aggregate is written only by the follower, in stream order, from the local mirror; the actor
//!   waits for it to pass its events before answering. When another process appended first
//!   (`WrongLastSequence`), the actor catches up, checks whether its own events landed after all
//!   (a lost acknowledgement), and otherwise decides again against the new state.

use crate::clock::SharedClock;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use thiserror::Error;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};
use uuid::Uuid;

use crate::changes::Changes;
use crate::domain::{
    Actor, Command, Event, Rejection, Source, State, TenantName, Timestamp, apply, decide,
};
use crate::log::jetstream::MAX_BATCH;
use crate::log::{
    AppendError, AppendRequest, EmbeddedLog, JetStreamConfig, JetStreamLog, LogError,
};
use crate::resident::PersistPolicy;
use crate::store::{StateStore, StoreError};

/// Who, when and where, for the envelope of the events a command produces.
#[derive(Clone, Debug)]
pub struct CommandContext {
    pub now: Timestamp,
    pub actor: Actor,
    pub source: Source,
    /// Request id shared by the events of this command.
    pub causation_id: String,
}

/// A command's outcome: its durable events and the tenant slice after them.
#[derive(Debug)]
pub struct Executed {
    pub events: Vec<Event>,
    pub state: State,
}

impl Executed {
    /// The sequence of the last event, or `None` when the command changed nothing.
    pub fn last_sequence(&self) -> Option<u64> {
        self.events.last().map(|event| event.sequence)
    }
}

#[derive(Debug, Error)]
pub enum ExecuteError {
    /// The directory's rules refuse the command.
    #[error(transparent)]
    Rejected(#[from] Rejection),
    /// Infrastructure trouble; nothing was acknowledged. Retry later.
    #[error("engine unavailable: {0}")]
    Unavailable(String),
    /// The aggregate could not be read or written; nothing was acknowledged.
    #[error("engine unavailable: the aggregate failed")]
    Store(#[from] StoreError),
    /// The log refused or lost the append; nothing was acknowledged.
    #[error("engine unavailable: the append failed")]
    Append(#[from] AppendError),
    /// The log could not be read; nothing was acknowledged.
    #[error("engine unavailable: the event log failed")]
    Log(#[from] LogError),
}

impl ExecuteError {
    /// Whether the error is infrastructure trouble (retry later) rather than a rejection.
    pub fn is_unavailable(&self) -> bool {
        !matches!(self, ExecuteError::Rejected(_))
    }

    /// The error with its causes, for logs: `engine unavailable: the append failed: event log
    /// unavailable: …`.
    pub fn chain(&self) -> String {
        let mut text = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(error) = cause {
            text.push_str(": ");
            text.push_str(&error.to_string());
            cause = error.source();
        }
        text
    }
}

#[derive(Debug, Error)]
pub enum OpenError {
    #[error(
        "the data directory holds a copy of another event stream (its event {local_head} is not \
         the stream's); move the data directory away and start again to rebuild it from the stream"
    )]
    ForeignMirror { local_head: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Log(#[from] LogError),
}

/// Where a job's answer goes.
type Reply = oneshot::Sender<Result<Executed, ExecuteError>>;

struct Job {
    command: Command,
    context: CommandContext,
    reply: Reply,
}

/// Where events go.
#[derive(Clone)]
enum Backend {
    Embedded,
    JetStream {
        log: Box<JetStreamLog>,
        /// The last sequence the aggregate reflects (written by the follower).
        applied: watch::Receiver<u64>,
    },
}

struct Inner {
    /// The embedded log, or the local mirror of the stream.
    log: EmbeddedLog,
    aggregate: StateStore,
    backend: Backend,
    actors: RwLock<HashMap<TenantName, mpsc::Sender<Job>>>,
    /// Mirror and follower tasks (JetStream), stopped on close.
    tasks: std::sync::Mutex<Vec<JoinHandle<()>>>,
    stop: watch::Sender<bool>,
    /// Tenants this process is promoting now (see `staging`): a frozen branch of one of them is
    /// a promotion's lock, not a leftover of an interrupted one.
    promoting: std::sync::Mutex<std::collections::HashSet<TenantName>>,
}

/// A running promotion of one tenant in this process; ends when dropped.
pub(crate) struct PromotionGuard {
    engine: Engine,
    tenant: TenantName,
}

impl Drop for PromotionGuard {
    fn drop(&mut self) {
        if let Ok(mut promoting) = self.engine.inner.promoting.lock() {
            promoting.remove(&self.tenant);
        }
    }
}

/// The engine; clones share it.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

/// The sled tree holding the engine's aggregate.
pub const AGGREGATE_TREE: &str = "aggregate";

/// Events replayed per batch when the aggregate catches up with the log.
const REPLAY_CHUNK: usize = 1024;
/// How long a batch may keep losing to other processes' appends before its commands fail.
const CONFLICT_BUDGET: Duration = Duration::from_secs(5);
/// How long an actor waits for the follower to apply what it needs.
const APPLY_TIMEOUT: Duration = Duration::from_secs(10);

impl Engine {
    /// Opens the embedded log and the aggregate in `db`, bringing the aggregate up to the log.
    /// `watermark` is the log's watermark file (see [`crate::log::watermark`]); roster's data
    /// directories always pass one, and a log that lost acknowledged events is refused. Events
    /// are recorded at `clock`'s time.
    pub fn open(
        db: &sled::Db,
        watermark: Option<&std::path::Path>,
        clock: SharedClock,
        aggregate_policy: PersistPolicy,
    ) -> Result<Self, OpenError> {
        let log = EmbeddedLog::open_with_clock(db, watermark, clock)?;
        let aggregate = StateStore::open_resident(db, AGGREGATE_TREE, aggregate_policy)?;
        catch_up(&log, &aggregate)?;
        Ok(Self::assemble(
            log,
            aggregate,
            Backend::Embedded,
            Vec::new(),
            watch::channel(false).0,
        ))
    }

    /// Opens roster on JetStream: `db` holds the local mirror of the stream and the aggregate,
    /// both caches. Returns once the aggregate has caught up with the stream as it was at start.
    pub async fn open_jetstream(
        db: &sled::Db,
        config: &JetStreamConfig,
        clock: SharedClock,
        aggregate_policy: PersistPolicy,
    ) -> Result<Self, OpenError> {
        let log = EmbeddedLog::mirror_with_clock(db, clock)?;
        let aggregate = StateStore::open_resident(db, AGGREGATE_TREE, aggregate_policy)?;
        catch_up(&log, &aggregate)?;
        let jetstream = JetStreamLog::connect(config).await?;
        check_mirror(&log, &jetstream).await?;
        let (stop, stopped) = watch::channel(false);
        let mirror = tokio::spawn(jetstream.clone().mirror(log.clone(), stopped.clone()));
        let (applied_sender, applied) = watch::channel(aggregate.checkpoint()?);
        let follower = tokio::spawn(follow(
            log.clone(),
            aggregate.clone(),
            applied_sender,
            stopped,
        ));
        let head = jetstream.head().await?;
        if head > *applied.borrow() {
            info!(head, "catching up with the event stream");
        }
        wait_applied(&applied, head, None)
            .await
            .map_err(|error| OpenError::Log(LogError::Unavailable(error.to_string())))?;
        Ok(Self::assemble(
            log,
            aggregate,
            Backend::JetStream {
                log: Box::new(jetstream),
                applied,
            },
            vec![mirror, follower],
            stop,
        ))
    }

    fn assemble(
        log: EmbeddedLog,
        aggregate: StateStore,
        backend: Backend,
        tasks: Vec<JoinHandle<()>>,
        stop: watch::Sender<bool>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                log,
                aggregate,
                backend,
                actors: RwLock::new(HashMap::new()),
                tasks: std::sync::Mutex::new(tasks),
                stop,
                promoting: std::sync::Mutex::new(std::collections::HashSet::new()),
            }),
        }
    }

    /// Decides `command` for `tenant`; on success its events are durable.
    pub async fn execute(
        &self,
        tenant: &TenantName,
        command: Command,
        context: CommandContext,
    ) -> Result<Executed, ExecuteError> {
        let (reply, answer) = oneshot::channel();
        self.actor(tenant)
            .send(Job {
                command,
                context,
                reply,
            })
            .await
            .map_err(|_| ExecuteError::Unavailable("tenant pipeline stopped".into()))?;
        let executed = answer
            .await
            .map_err(|_| ExecuteError::Unavailable("tenant pipeline stopped".into()))??;
        if let (Backend::Embedded, Some(last)) = (&self.inner.backend, executed.last_sequence()) {
            self.inner.log.wait_durable(last).await?;
        }
        Ok(executed)
    }

    /// Decides `command` for `tenant` as [`Engine::execute`] would, and appends nothing: the
    /// events it would produce (sequence 0, not durable) and the slice after them, or its
    /// rejection. Decided against the aggregate as it is now (on JetStream, once it has caught
    /// up with the stream), outside the tenant's actor: a dry run never delays real commands.
    pub async fn dry_run(
        &self,
        tenant: &TenantName,
        command: Command,
        context: CommandContext,
    ) -> Result<Executed, ExecuteError> {
        if self.is_jetstream() {
            self.aggregate_caught_up().await?;
        }
        let Decided {
            events, outcomes, ..
        } = decide_batch(&self.inner.aggregate, tenant, &[(command, context)])?;
        match outcomes.into_iter().next() {
            Some(Ok((range, state))) => Ok(Executed {
                events: events[range].to_vec(),
                state,
            }),
            Some(Err(rejection)) => Err(ExecuteError::Rejected(rejection)),
            None => Err(ExecuteError::Unavailable(
                "the dry run decided nothing".into(),
            )),
        }
    }

    /// The aggregate store, for reads that must see every accepted command (authentication).
    pub fn aggregate(&self) -> &StateStore {
        &self.inner.aggregate
    }

    /// The local log: the embedded log, or the mirror of the stream. Projections read it.
    pub fn log(&self) -> &EmbeddedLog {
        &self.inner.log
    }

    /// Whether events go to JetStream.
    pub fn is_jetstream(&self) -> bool {
        matches!(self.inner.backend, Backend::JetStream { .. })
    }

    /// The sequence a read must wait for to see every write acknowledged before it, by this
    /// process or any other: the local durable head, or the stream's head.
    pub async fn head_for_reads(&self) -> Result<u64, ExecuteError> {
        match &self.inner.backend {
            Backend::Embedded => Ok(self.inner.log.durable_head()),
            Backend::JetStream { log, .. } => Ok(log.head().await?),
        }
    }

    /// Whether the log takes writes now: the embedded writer has not failed, or JetStream
    /// answers.
    pub async fn writable(&self) -> Result<(), ExecuteError> {
        match &self.inner.backend {
            Backend::Embedded => Ok(self.inner.log.writable()?),
            Backend::JetStream { log, .. } => log.head().await.map(|_| ()).map_err(Into::into),
        }
    }

    /// Waits until the aggregate reflects every event acknowledged anywhere before the call
    /// (JetStream); at once on the embedded log, whose aggregate is always current.
    pub async fn aggregate_caught_up(&self) -> Result<(), ExecuteError> {
        if let Backend::JetStream { log, applied } = &self.inner.backend {
            let head = log.head().await?;
            wait_applied(applied, head, Some(APPLY_TIMEOUT)).await?;
        }
        Ok(())
    }

    /// Stops the tenant actors and background tasks, then flushes and stops the log.
    pub fn close(&self) {
        match self.inner.actors.write() {
            Ok(mut actors) => actors.clear(),
            Err(poisoned) => poisoned.into_inner().clear(),
        }
        let _ = self.inner.stop.send(true);
        if let Ok(mut tasks) = self.inner.tasks.lock() {
            for task in tasks.drain(..) {
                task.abort();
            }
        }
        // The aggregate is persisted behind the log: write what changed before the last flush
        // (what does not make it is replayed from the log at the next start).
        if let Err(error) = self.inner.aggregate.stop() {
            warn!(%error, "writing the aggregate before stopping failed");
        }
        self.inner.log.close();
    }

    /// Marks `tenant` as being promoted by this process until the guard drops; `None` when a
    /// promotion of it is already running here.
    pub(crate) fn promotion_guard(&self, tenant: &TenantName) -> Option<PromotionGuard> {
        let mut promoting = self.inner.promoting.lock().ok()?;
        promoting.insert(tenant.clone()).then(|| PromotionGuard {
            engine: self.clone(),
            tenant: tenant.clone(),
        })
    }

    /// Whether this process is promoting `tenant` now.
    pub(crate) fn is_promoting(&self, tenant: &TenantName) -> bool {
        // A poisoned lock (a panic while holding it) answers "yes": never reopen on a guess.
        self.inner
            .promoting
            .lock()
            .map_or(true, |promoting| promoting.contains(tenant))
    }

    fn actor(&self, tenant: &TenantName) -> mpsc::Sender<Job> {
        if let Ok(actors) = self.inner.actors.read()
            && let Some(sender) = actors.get(tenant)
        {
            return sender.clone();
        }
        let mut actors = match self.inner.actors.write() {
            Ok(actors) => actors,
            Err(poisoned) => poisoned.into_inner(),
        };
        actors
            .entry(tenant.clone())
            .or_insert_with(|| {
                let (sender, jobs) = mpsc::channel(1024);
                // The actor holds the log and the store, not the engine: it ends when the engine
                // drops its sender.
                let pipeline = Pipeline {
                    log: self.inner.log.clone(),
                    aggregate: self.inner.aggregate.clone(),
                    backend: self.inner.backend.clone(),
                };
                tokio::spawn(run_tenant(pipeline, tenant.clone(), jobs));
                sender
            })
            .clone()
    }
}

/// Waits until `applied` reaches `sequence`, for `timeout` at most.
async fn wait_applied(
    applied: &watch::Receiver<u64>,
    sequence: u64,
    timeout: Option<Duration>,
) -> Result<(), ExecuteError> {
    let mut applied = applied.clone();
    let reached = applied.wait_for(|applied| *applied >= sequence);
    let outcome = match timeout {
        Some(timeout) => tokio::time::timeout(timeout, reached).await.map_err(|_| {
            ExecuteError::Unavailable("the aggregate is behind the event stream".into())
        })?,
        None => reached.await,
    };
    outcome
        .map(|_| ())
        .map_err(|_| ExecuteError::Unavailable("the aggregate follower stopped".into()))
}

/// Applies mirrored events to the aggregate, in stream order (JetStream mode).
async fn follow(
    log: EmbeddedLog,
    aggregate: StateStore,
    applied: watch::Sender<u64>,
    mut stop: watch::Receiver<bool>,
) {
    let mut durable = log.subscribe();
    loop {
        let checkpoint = match aggregate.checkpoint() {
            Ok(checkpoint) => checkpoint,
            Err(error) => {
                warn!(%error, "reading the aggregate checkpoint failed");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        applied.send_replace(checkpoint);
        if checkpoint < *durable.borrow_and_update() {
            let (reader, store) = (log.clone(), aggregate.clone());
            let step = tokio::task::spawn_blocking(move || -> Result<(), ExecuteError> {
                let events = reader.read(checkpoint + 1, REPLAY_CHUNK)?;
                store.apply_events(&events)?;
                Ok(())
            })
            .await;
            match step {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    warn!(%error, "applying events to the aggregate failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(_) => return,
            }
            continue;
        }
        tokio::select! {
            changed = durable.changed() => if changed.is_err() { return },
            _ = stop.wait_for(|stop| *stop) => return,
        }
    }
}

/// What a tenant actor decides and appends with.
struct Pipeline {
    log: EmbeddedLog,
    aggregate: StateStore,
    backend: Backend,
}

/// Commands a tenant actor decides together, at most: they share one append and one flush.
const DECIDE_BATCH: usize = 128;

async fn run_tenant(pipeline: Pipeline, tenant: TenantName, mut jobs: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(DECIDE_BATCH);
    while jobs.recv_many(&mut batch, DECIDE_BATCH).await > 0 {
        let jobs = std::mem::take(&mut batch);
        match &pipeline.backend {
            Backend::Embedded => handle_embedded(&pipeline, &tenant, jobs).await,
            Backend::JetStream { log, applied } => {
                handle_jetstream(&pipeline, log, applied, &tenant, jobs).await
            }
        }
    }
}

/// One job's place in a batch: its decision, and where its events sit in the batch's append.
type Outcome = Result<(std::ops::Range<usize>, State), Rejection>;

/// A batch of commands decided in order against one slice.
struct Decided {
    /// The tenant's head the decisions were made against.
    expected_head: u64,
    state: State,
    events: Vec<Event>,
    outcomes: Vec<Outcome>,
}

/// Decides `commands` in order against one slice that grows with each command's footprint and
/// events. The tenant's head is read before the slice, so any change after it makes the append
/// conflict rather than pass on stale state.
fn decide_batch(
    aggregate: &StateStore,
    tenant: &TenantName,
    commands: &[(Command, CommandContext)],
) -> Result<Decided, StoreError> {
    let expected_head = aggregate.tenant_checkpoint(tenant)?;
    let mut state = aggregate.slice(tenant)?;
    let mut events: Vec<Event> = Vec::new();
    let mut outcomes = Vec::with_capacity(commands.len());
    for (command, context) in commands {
        let footprint = aggregate.load_command(&mut state, command)?;
        let payloads = match decide(&state, command.clone()) {
            Ok(payloads) => payloads,
            Err(rejection) => {
                outcomes.push(Err(rejection));
                continue;
            }
        };
        let first = events.len();
        for payload in payloads {
            // An event may touch entries the command did not need (a deleted user's groups).
            aggregate.load_into(&mut state, &payload.footprint())?;
            let event = Event {
                id: Uuid::now_v7(),
                tenant: tenant.clone(),
                sequence: 0,
                occurred_at: context.now,
                recorded_at: context.now,
                actor: context.actor.clone(),
                source: context.source.clone(),
                causation_id: context.causation_id.clone(),
                payload,
            };
            apply(&mut state, &event);
            events.push(event);
        }
        let reply = command.reply_footprint(footprint);
        outcomes.push(Ok((first..events.len(), state.extract(&reply))));
    }
    Ok(Decided {
        expected_head,
        state,
        events,
        outcomes,
    })
}

/// Answers every job: with its own events (now sequenced) and slice, or its rejection.
fn answer(replies: Vec<Reply>, outcomes: Vec<Outcome>, events: &[Event]) {
    for (reply, outcome) in replies.into_iter().zip(outcomes) {
        let result = outcome
            .map(|(range, state)| Executed {
                events: events[range].to_vec(),
                state,
            })
            .map_err(ExecuteError::Rejected);
        let _ = reply.send(result);
    }
}

fn fail_all(replies: Vec<Reply>, reason: &str) {
    for reply in replies {
        let _ = reply.send(Err(ExecuteError::Unavailable(reason.to_owned())));
    }
}

fn split(jobs: Vec<Job>) -> (Vec<(Command, CommandContext)>, Vec<Reply>) {
    jobs.into_iter()
        .map(|job| ((job.command, job.context), job.reply))
        .unzip()
}

/// Embedded: one append through the log writer, which writes the aggregate after the events.
/// Replies wait for the append, so a rejection that depends on an earlier command of the batch
/// is only sent if that command's events were written.
async fn handle_embedded(pipeline: &Pipeline, tenant: &TenantName, jobs: Vec<Job>) {
    let (commands, replies) = split(jobs);
    let aggregate = &pipeline.aggregate;
    let Decided {
        expected_head,
        mut state,
        events,
        outcomes,
    } = match decide_batch(aggregate, tenant, &commands) {
        Ok(decided) => decided,
        Err(error) => return fail_all(replies, &error.to_string()),
    };
    let appended = if events.is_empty() {
        Ok(Vec::new())
    } else {
        let mut changes = Changes::default();
        if let Err(error) = aggregate.stage(&mut state, &mut changes) {
            return fail_all(replies, &error.to_string());
        }
        let store = aggregate.clone();
        let owner = tenant.clone();
        let after_append = Box::new(move |appended: &[Event]| {
            if let Some(last) = appended.last() {
                store.stage_checkpoint(&mut changes, &owner, last.sequence);
            }
            store
                .apply_changes(changes)
                .map_err(|error| error.to_string())
        });
        pipeline
            .log
            .append(AppendRequest {
                tenant: tenant.clone(),
                expected_head,
                events,
                after_append: Some(after_append),
            })
            .await
    };
    match appended {
        Ok(appended) => answer(replies, outcomes, &appended),
        Err(error) => fail_all(replies, &error.to_string()),
    }
}

/// Events a decided batch may hold and still be appended a command at a time; above it, they go
/// in one atomic batch. A JetStream atomic batch costs a few milliseconds whatever its size (and
/// batches of one stream commit one after another), a single message a fraction of one.
const SEQUENTIAL_APPEND_MAX: usize = 8;

/// JetStream: appends each command's events with the tenant's head as expectation, the next
/// command's with the head the previous one left. When another process appended first, the
/// commands not yet in the stream are decided again on the new state, unless their events turn
/// out to have landed after all.
///
/// A rejection or a no-op is answered only once a later append (or the stream's tenant head)
/// confirms the state it was decided on: nothing checks it otherwise.
async fn handle_jetstream(
    pipeline: &Pipeline,
    jetstream: &JetStreamLog,
    applied: &watch::Receiver<u64>,
    tenant: &TenantName,
    jobs: Vec<Job>,
) {
    let (mut commands, mut replies) = split(jobs);
    let deadline = tokio::time::Instant::now() + CONFLICT_BUDGET;
    let mut lost_rounds = 0u32;
    while !commands.is_empty() {
        if lost_rounds > 0 {
            // Another process won the last round: back off a random while, growing with each
            // round lost, so that two busy processes on one tenant do not keep colliding.
            let ceiling = 1u64 << lost_rounds.min(7);
            let pause = Duration::from_micros(rand::random_range(0..=ceiling * 1000));
            if tokio::time::Instant::now() + pause >= deadline {
                break;
            }
            tokio::time::sleep(pause).await;
        } else if tokio::time::Instant::now() >= deadline {
            break;
        }
        let decided = match decide_batch(&pipeline.aggregate, tenant, &commands) {
            Ok(decided) => decided,
            Err(error) => return fail_all(replies, &error.to_string()),
        };
        // A batch too large for one atomic append is handled a command at a time.
        if decided.events.len() > MAX_BATCH && commands.len() > 1 {
            for (command, reply) in commands.into_iter().zip(replies) {
                let job = Job {
                    command: command.0,
                    context: command.1,
                    reply,
                };
                Box::pin(handle_jetstream(
                    pipeline,
                    jetstream,
                    applied,
                    tenant,
                    vec![job],
                ))
                .await;
            }
            return;
        }
        if decided.events.is_empty() {
            // Only rejections and no-ops: make sure they were decided against the tenant as the
            // stream has it, not a mirror that lags behind.
            let head = match jetstream.tenant_head(tenant).await {
                Ok(head) => head,
                Err(error) => return fail_all(replies, &error.to_string()),
            };
            if head <= decided.expected_head {
                return answer(replies, decided.outcomes, &[]);
            }
            if let Err(error) = wait_applied(applied, head, Some(APPLY_TIMEOUT)).await {
                return fail_all(replies, &error.to_string());
            }
            continue;
        }
        let round = append_round(pipeline, jetstream, applied, tenant, decided).await;
        // Every command up to the last one the stream confirmed is settled.
        let settled = round.settled.len();
        if settled > 0 {
            // Answer once the aggregate reflects the events, so the tenant's next decision starts
            // from them; should the mirror lag (NATS went away right after the acknowledgement),
            // answer anyway: the events are durable, and a decision on the stale aggregate
            // conflicts and is made again.
            if let Err(error) = wait_applied(applied, round.head, Some(APPLY_TIMEOUT)).await {
                warn!(%tenant, %error, head = round.head, "answering before the aggregate caught up");
            }
            commands.drain(..settled);
            let answered: Vec<Reply> = replies.drain(..settled).collect();
            for (reply, result) in answered.into_iter().zip(round.settled) {
                let _ = reply.send(result);
            }
        }
        match round.stopped {
            None => {}
            Some(RoundStop::Conflict) => lost_rounds += u32::from(settled == 0),
            Some(RoundStop::Failed(reason)) => return fail_all(replies, &reason),
        }
    }
    fail_all(replies, "too many concurrent changes to this tenant; retry")
}

/// Why a round of appends stopped before its last command.
enum RoundStop {
    /// Another process appended to the tenant: decide the rest again.
    Conflict,
    Failed(String),
}

/// What a round of appends settled: the answers of its first commands, in order.
struct Round {
    settled: Vec<Result<Executed, ExecuteError>>,
    /// The tenant's head after the last append that landed.
    head: u64,
    stopped: Option<RoundStop>,
}

/// Appends the decided events, a command at a time (or all at once when there are many), and
/// settles every command whose decision the stream confirmed.
async fn append_round(
    pipeline: &Pipeline,
    jetstream: &JetStreamLog,
    applied: &watch::Receiver<u64>,
    tenant: &TenantName,
    decided: Decided,
) -> Round {
    let Decided {
        expected_head,
        events,
        outcomes,
        ..
    } = decided;
    let mut events = events;
    // (index of the last command the append covers, the events it appends)
    let units: Vec<(usize, std::ops::Range<usize>)> = if events.len() > SEQUENTIAL_APPEND_MAX {
        let last = outcomes
            .iter()
            .rposition(|outcome| matches!(outcome, Ok((range, _)) if !range.is_empty()))
            .unwrap_or(0);
        vec![(last, 0..events.len())]
    } else {
        outcomes
            .iter()
            .enumerate()
            .filter_map(|(index, outcome)| match outcome {
                Ok((range, _)) if !range.is_empty() => Some((index, range.clone())),
                _ => None,
            })
            .collect()
    };
    let mut head = expected_head;
    let mut confirmed = 0; // commands [0, confirmed) were decided on a state the stream confirmed
    let mut stopped = None;
    for (last_command, range) in units {
        let unit = &events[range.clone()];
        let mut appended = jetstream.append(tenant, head, unit).await;
        if let Err(AppendError::Unknown(reason)) = &appended {
            // The events may have landed: send the very same append again. Either it lands now,
            // or the stream refuses the stale head and the check below finds them.
            warn!(%tenant, %reason, "append outcome unknown; sending it again");
            appended = jetstream.append(tenant, head, unit).await;
        }
        let sequences = match appended {
            Ok(sequences) => sequences,
            Err(AppendError::Conflict { actual_head }) => {
                if let Err(error) = wait_applied(applied, actual_head, Some(APPLY_TIMEOUT)).await {
                    stopped = Some(RoundStop::Failed(error.to_string()));
                    break;
                }
                match landed(&pipeline.log, tenant, head, actual_head, unit) {
                    Ok(Some(sequences)) => sequences,
                    Ok(None) => {
                        tracing::debug!(%tenant, actual_head, "another process appended first");
                        stopped = Some(RoundStop::Conflict);
                        break;
                    }
                    Err(error) => {
                        stopped = Some(RoundStop::Failed(error.to_string()));
                        break;
                    }
                }
            }
            Err(AppendError::Unavailable(reason) | AppendError::Unknown(reason)) => {
                stopped = Some(RoundStop::Failed(reason));
                break;
            }
        };
        for (event, sequence) in events[range].iter_mut().zip(&sequences) {
            event.sequence = *sequence;
        }
        head = sequences.last().copied().unwrap_or(head);
        confirmed = last_command + 1;
    }
    // Rejections and no-ops after the last landed append were decided on the state it left,
    // which the stream held at that moment: they are settled too, unless nothing landed.
    if stopped.is_none() || confirmed > 0 {
        if stopped.is_none() {
            confirmed = outcomes.len();
        } else {
            confirmed = outcomes[confirmed..]
                .iter()
                .position(|outcome| matches!(outcome, Ok((range, _)) if !range.is_empty()))
                .map_or(outcomes.len(), |offset| confirmed + offset);
        }
    }
    let settled = outcomes
        .into_iter()
        .take(confirmed)
        .map(|outcome| {
            outcome
                .map(|(range, state)| Executed {
                    events: events[range].to_vec(),
                    state,
                })
                .map_err(ExecuteError::Rejected)
        })
        .collect();
    Round {
        settled,
        head,
        stopped,
    }
}

/// Whether `events` (ours) are in the log between `after` and `until`: a previous attempt's
/// append succeeded although its acknowledgement was lost. Returns their sequences.
fn landed(
    log: &EmbeddedLog,
    tenant: &TenantName,
    after: u64,
    until: u64,
    events: &[Event],
) -> Result<Option<Vec<u64>>, LogError> {
    let Some(first) = events.first() else {
        return Ok(None);
    };
    let mut next = after + 1;
    while next <= until {
        let chunk = log.read_tenant(tenant, next, REPLAY_CHUNK, usize::MAX)?;
        if let Some(found) = chunk.events.iter().find(|event| event.id == first.id) {
            let start = found.sequence;
            return Ok(Some((start..start + events.len() as u64).collect()));
        }
        if chunk.events.is_empty() {
            break;
        }
        next = chunk.next;
    }
    Ok(None)
}

/// Makes sure the local mirror is a copy of this stream: its last event must be the stream's
/// event at that sequence. A data directory from another stream (or a stream created anew) would
/// otherwise mix two histories.
async fn check_mirror(log: &EmbeddedLog, jetstream: &JetStreamLog) -> Result<(), OpenError> {
    let local_head = log.durable_head();
    if local_head == 0 {
        return Ok(());
    }
    let local = log.read(local_head, 1)?;
    let local_id = local.first().map(|event| event.id);
    let remote_id = jetstream.event_id_at(local_head).await?;
    if local_id.is_some() && local_id == remote_id {
        return Ok(());
    }
    Err(OpenError::ForeignMirror { local_head })
}

/// Brings the aggregate up to the log: replays what it misses, or rebuilds it when it claims to
/// be ahead of the log (it cannot be trusted then).
fn catch_up(log: &EmbeddedLog, aggregate: &StateStore) -> Result<(), OpenError> {
    let head = log.durable_head();
    let mut checkpoint = aggregate.checkpoint()?;
    if checkpoint > head {
        warn!(
            checkpoint,
            head, "aggregate is ahead of the log; rebuilding it from the log"
        );
        aggregate.clear()?;
        checkpoint = 0;
    }
    if checkpoint == head {
        return Ok(());
    }
    info!(
        from = checkpoint + 1,
        to = head,
        "replaying the log into the aggregate"
    );
    let mut next = checkpoint + 1;
    while next <= head {
        let events = log.read(next, REPLAY_CHUNK)?;
        let Some(last) = events.last() else { break };
        next = last.sequence + 1;
        aggregate.apply_events(&events)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Role, UserId, UserProfile};

    fn context() -> CommandContext {
        CommandContext {
            now: Timestamp::from_micros(1_700_000_000_000_000),
            actor: Actor::system(),
            source: Default::default(),
            causation_id: "test".to_owned(),
        }
    }

    fn alice() -> Command {
        Command::ProvisionUser {
            user_id: UserId(Uuid::from_u128(1)),
            profile: UserProfile {
                user_name: "alice".to_owned(),
                external_id: None,
                active: true,
                attributes: Default::default(),
            },
        }
    }

    #[test]
    fn infrastructure_errors_keep_their_cause() {
        let error = ExecuteError::from(AppendError::Unavailable("disk full".into()));
        assert!(error.is_unavailable());
        assert!(std::error::Error::source(&error).is_some());
        assert_eq!(
            error.chain(),
            "engine unavailable: the append failed: event log unavailable: disk full"
        );
        let rejected = ExecuteError::from(Rejection::TenantNotFound);
        assert!(!rejected.is_unavailable());
    }

    #[tokio::test]
    async fn a_dry_run_decides_like_execute_and_appends_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let engine =
            Engine::open(&db, None, crate::clock::system(), PersistPolicy::default()).unwrap();
        let tenant = TenantName::parse("acme").unwrap();
        let create = Command::CreateTenant {
            default_role: Role::Read,
            first_token: None,
            usernames: crate::domain::UsernamePolicy::Strict,
        };
        engine.execute(&tenant, create, context()).await.unwrap();
        let head = engine.log().durable_head();

        let dry = engine.dry_run(&tenant, alice(), context()).await.unwrap();
        assert_eq!(dry.events.len(), 1);
        assert_eq!(dry.events[0].payload.event_type(), "user.provisioned");
        assert_eq!(dry.events[0].sequence, 0);
        assert!(dry.state.user(&UserId(Uuid::from_u128(1))).is_some());
        assert_eq!(engine.log().durable_head(), head, "nothing appended");
        let stored = engine
            .aggregate()
            .user(&tenant, &UserId(Uuid::from_u128(1)));
        assert!(stored.unwrap().is_none(), "the aggregate is untouched");

        // The real command still succeeds, after which the same dry run is refused.
        engine.execute(&tenant, alice(), context()).await.unwrap();
        let again = engine.dry_run(&tenant, alice(), context()).await;
        assert!(matches!(again, Err(ExecuteError::Rejected(_))), "{again:?}");
        engine.close();
    }
}
