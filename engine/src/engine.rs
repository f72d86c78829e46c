//! The command pipeline: one actor per tenant decides commands in order against the aggregate
//! store, appends the events, and answers once they are durable.
//!
//! Tenants never wait for each other's decisions: each has its own actor. They meet only at the
//! log writer, where many tenants' appends share one flush (group commit). A tenant's next
//! command is decided as soon as the previous one's events are written, before they are durable,
//! so a busy tenant also benefits from group commit; every reply still waits for durability.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use thiserror::Error;
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};
use uuid::Uuid;

use crate::domain::{
    Actor, Command, Event, Rejection, Source, State, TenantName, Timestamp, apply, decide,
};
use crate::log::{AppendError, AppendRequest, EmbeddedLog, LogError};
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
}

impl From<StoreError> for ExecuteError {
    fn from(error: StoreError) -> Self {
        ExecuteError::Unavailable(error.to_string())
    }
}

impl From<AppendError> for ExecuteError {
    fn from(error: AppendError) -> Self {
        ExecuteError::Unavailable(error.to_string())
    }
}

impl From<LogError> for ExecuteError {
    fn from(error: LogError) -> Self {
        ExecuteError::Unavailable(error.to_string())
    }
}

#[derive(Debug, Error)]
pub enum OpenError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Log(#[from] LogError),
}

struct Job {
    command: Command,
    context: CommandContext,
    reply: oneshot::Sender<Result<Executed, ExecuteError>>,
}

struct Inner {
    log: EmbeddedLog,
    aggregate: StateStore,
    actors: RwLock<HashMap<TenantName, mpsc::Sender<Job>>>,
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

impl Engine {
    /// Opens the embedded log and the aggregate in `db`, bringing the aggregate up to the log.
    pub fn open(db: &sled::Db) -> Result<Self, OpenError> {
        let log = EmbeddedLog::open(db)?;
        let aggregate = StateStore::open(db, AGGREGATE_TREE)?;
        catch_up(&log, &aggregate)?;
        Ok(Self {
            inner: Arc::new(Inner {
                log,
                aggregate,
                actors: RwLock::new(HashMap::new()),
            }),
        })
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
        if let Some(last) = executed.last_sequence() {
            self.inner.log.wait_durable(last).await?;
        }
        Ok(executed)
    }

    /// The aggregate store, for reads that must see every accepted command (authentication).
    pub fn aggregate(&self) -> &StateStore {
        &self.inner.aggregate
    }

    pub fn log(&self) -> &EmbeddedLog {
        &self.inner.log
    }

    /// Stops the tenant actors, then flushes and stops the log.
    pub fn close(&self) {
        match self.inner.actors.write() {
            Ok(mut actors) => actors.clear(),
            Err(poisoned) => poisoned.into_inner().clear(),
        }
        self.inner.log.close();
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
                };
                tokio::spawn(run_tenant(pipeline, tenant.clone(), jobs));
                sender
            })
            .clone()
    }
}

/// What a tenant actor decides and appends with.
struct Pipeline {
    log: EmbeddedLog,
    aggregate: StateStore,
}

/// Commands a tenant actor decides together, at most: they share one append and one flush.
const DECIDE_BATCH: usize = 128;

async fn run_tenant(pipeline: Pipeline, tenant: TenantName, mut jobs: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(DECIDE_BATCH);
    while jobs.recv_many(&mut batch, DECIDE_BATCH).await > 0 {
        handle(&pipeline, &tenant, std::mem::take(&mut batch)).await;
    }
}

/// One job's place in a batch: its decision, and where its events sit in the batch's append.
struct Decided {
    reply: oneshot::Sender<Result<Executed, ExecuteError>>,
    outcome: Result<(std::ops::Range<usize>, State), Rejection>,
}

/// Decides a batch of commands in order against one slice that grows with each command's
/// footprint and events, then appends all their events at once. Replies wait for the append, so
/// a rejection that depends on an earlier command of the batch is only sent if that command's
/// events were written.
async fn handle(pipeline: &Pipeline, tenant: &TenantName, jobs: Vec<Job>) {
    let aggregate = &pipeline.aggregate;
    let prepared = (|| {
        Ok::<_, StoreError>((
            aggregate.slice(tenant)?,
            aggregate.tenant_checkpoint(tenant)?,
        ))
    })();
    let (mut state, expected_head) = match prepared {
        Ok(prepared) => prepared,
        Err(error) => {
            for job in jobs {
                let _ = job
                    .reply
                    .send(Err(ExecuteError::Unavailable(error.to_string())));
            }
            return;
        }
    };
    let mut events: Vec<Event> = Vec::new();
    let mut decided = Vec::with_capacity(jobs.len());
    for Job {
        command,
        context,
        reply,
    } in jobs
    {
        let footprint = command.footprint();
        if let Err(error) = aggregate.load_into(&mut state, &footprint) {
            let _ = reply.send(Err(ExecuteError::Unavailable(error.to_string())));
            continue;
        }
        let payloads = match decide(&state, command) {
            Ok(payloads) => payloads,
            Err(rejection) => {
                decided.push(Decided {
                    reply,
                    outcome: Err(rejection),
                });
                continue;
            }
        };
        let first = events.len();
        let mut loaded = Ok(());
        for payload in payloads {
            // An event may touch entries the command did not need (a deleted user's groups).
            loaded = aggregate.load_into(&mut state, &payload.footprint());
            if loaded.is_err() {
                break;
            }
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
        if let Err(error) = loaded {
            // The slice is half-applied and cannot be written back: fail the whole batch.
            let _ = reply.send(Err(ExecuteError::Unavailable(error.to_string())));
            for Decided { reply, .. } in decided {
                let _ = reply.send(Err(ExecuteError::Unavailable(error.to_string())));
            }
            return;
        }
        decided.push(Decided {
            reply,
            outcome: Ok((first..events.len(), state.extract(&footprint))),
        });
    }
    let appended = if events.is_empty() {
        Ok(Vec::new())
    } else {
        let mut batch = sled::Batch::default();
        aggregate.stage(&mut state, &mut batch);
        let store = aggregate.clone();
        let owner = tenant.clone();
        let after_append = Box::new(move |appended: &[Event]| {
            if let Some(last) = appended.last() {
                store.stage_checkpoint(&mut batch, &owner, last.sequence);
            }
            store.apply_batch(batch).map_err(|error| error.to_string())
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
        Ok(appended) => {
            for Decided { reply, outcome } in decided {
                let result = outcome
                    .map(|(range, state)| Executed {
                        events: appended[range].to_vec(),
                        state,
                    })
                    .map_err(ExecuteError::Rejected);
                let _ = reply.send(result);
            }
        }
        Err(error) => {
            for Decided { reply, .. } in decided {
                let _ = reply.send(Err(ExecuteError::from(error.clone())));
            }
        }
    }
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
