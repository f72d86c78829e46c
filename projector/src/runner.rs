//! The projector runner: tails the log's durable events into every projection, in order, and
//! publishes how far the projections got so readers can wait for their own writes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use roster_engine::domain::Event;
use roster_engine::log::{EmbeddedLog, LogError};
use roster_engine::store::StoreError;
use thiserror::Error;
use tokio::sync::watch;
use tracing::{debug, error, info, warn};

/// Events read from the log per projection step.
const CHUNK: usize = 1024;
/// Events per batch during a rebuild: larger batches write repeated keys (tenant records,
/// checkpoints) once for many events.
const REBUILD_CHUNK: usize = 8192;

#[derive(Debug, Error)]
pub enum ProjectionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("storage error: {0}")]
    Sled(#[from] sled::Error),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("projections are not running")]
    Stopped,
}

/// A view built from the log. `apply` must write the view's changes and its checkpoint (the last
/// event's sequence) atomically; events at or below the checkpoint are never passed to it.
pub trait Projection: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    fn checkpoint(&self) -> Result<u64, ProjectionError>;
    fn apply(&self, events: &[Event]) -> Result<(), ProjectionError>;
    /// Empties the view and its checkpoint, for a rebuild.
    fn reset(&self) -> Result<(), ProjectionError>;
    /// Writes to storage whatever the view holds only in memory (at shutdown and after a
    /// rebuild); views written at every `apply` have nothing to do.
    fn persist(&self) -> Result<(), ProjectionError> {
        Ok(())
    }
}

/// How far the projections are behind the log.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Lag {
    /// Durable events not yet projected.
    pub events: u64,
    /// Age of the oldest of them, in seconds (0 when caught up).
    pub seconds: f64,
}

/// Lag worth a log line.
const LAG_WORTH_LOGGING: Lag = Lag {
    events: 10_000,
    seconds: 5.0,
};

/// Runs projections over the log.
#[derive(Clone)]
pub struct Projector {
    log: EmbeddedLog,
    projections: Arc<Vec<Arc<dyn Projection>>>,
    progress: watch::Sender<u64>,
    /// Held for a whole step: two steps at once (a step left running by an aborted task and the
    /// last step at shutdown) would both read the same checkpoint and apply its events twice.
    stepping: Arc<std::sync::Mutex<()>>,
}

impl Projector {
    pub fn new(
        log: EmbeddedLog,
        projections: Vec<Arc<dyn Projection>>,
    ) -> Result<Self, ProjectionError> {
        let mut lowest = u64::MAX;
        let head = log.durable_head();
        for projection in &projections {
            let mut checkpoint = projection.checkpoint()?;
            if checkpoint > head {
                // Ahead of the log: the log lost events since (an operator accepted a damaged
                // log with `roster check --accept-loss`). The view cannot be trusted: rebuild.
                warn!(
                    projection = projection.name(),
                    checkpoint, head, "projection is ahead of the log; rebuilding it"
                );
                projection.reset()?;
                checkpoint = projection.checkpoint()?;
            }
            lowest = lowest.min(checkpoint);
        }
        let (progress, _) = watch::channel(if projections.is_empty() { 0 } else { lowest });
        Ok(Self {
            log,
            projections: Arc::new(projections),
            progress,
            stepping: Arc::default(),
        })
    }

    /// The sequence every projection has reached.
    pub fn progress(&self) -> u64 {
        *self.progress.borrow()
    }

    /// How far the projections are behind the durable log now.
    pub fn lag(&self) -> Result<Lag, ProjectionError> {
        let progress = self.progress();
        let head = self.log.durable_head();
        if progress >= head {
            return Ok(Lag::default());
        }
        let oldest = self.log.read(progress + 1, 1)?;
        let now = self.log.clock().now().as_micros();
        let seconds = oldest
            .first()
            .map(|event| (now - event.recorded_at.as_micros()).max(0) as f64 / 1e6)
            .unwrap_or(0.0);
        Ok(Lag {
            events: head - progress,
            seconds,
        })
    }

    /// The checkpoint of each projection.
    pub fn checkpoints(&self) -> Result<Vec<(&'static str, u64)>, ProjectionError> {
        self.projections
            .iter()
            .map(|projection| Ok((projection.name(), projection.checkpoint()?)))
            .collect()
    }

    /// Applies every durable event not yet projected; returns the new progress.
    pub fn step(&self) -> Result<u64, ProjectionError> {
        // A step that panicked left nothing half-applied (each apply is one atomic batch).
        let _stepping = self
            .stepping
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let head = self.log.durable_head();
        loop {
            let progress = self.progress();
            if progress >= head {
                return Ok(progress);
            }
            let events = self.log.read(progress + 1, CHUNK)?;
            let Some(last) = events.last().map(|event| event.sequence) else {
                return Ok(progress);
            };
            for projection in self.projections.iter() {
                let checkpoint = projection.checkpoint()?;
                let start = events.partition_point(|event| event.sequence <= checkpoint);
                if start < events.len() {
                    projection.apply(&events[start..])?;
                }
            }
            self.progress.send_replace(last);
        }
    }

    /// Writes what every projection holds only in memory (see [`Projection::persist`]).
    pub fn persist(&self) -> Result<(), ProjectionError> {
        let _stepping = self
            .stepping
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for projection in self.projections.iter() {
            projection.persist()?;
        }
        Ok(())
    }

    /// Keeps the projections up with the log until the log stops.
    pub async fn run(self) {
        let mut durable = self.log.subscribe();
        let mut last_report: Option<Instant> = None;
        let mut behind = false;
        loop {
            // Say so when the projections fall behind, at most every ten seconds.
            if let Ok(lag) = self.lag() {
                let worth = lag.events >= LAG_WORTH_LOGGING.events
                    || lag.seconds >= LAG_WORTH_LOGGING.seconds;
                if worth && last_report.is_none_or(|at| at.elapsed() >= Duration::from_secs(10)) {
                    info!(
                        events = lag.events,
                        seconds = lag.seconds,
                        "projections are behind the log"
                    );
                    last_report = Some(Instant::now());
                    behind = true;
                } else if behind && lag.events == 0 {
                    info!("projections caught up with the log");
                    behind = false;
                }
            }
            let projector = self.clone();
            match tokio::task::spawn_blocking(move || projector.step()).await {
                Ok(Ok(progress)) => debug!(progress, "projections caught up"),
                Ok(Err(error)) => {
                    error!(%error, "projection failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
                Err(error) => {
                    error!(%error, "projection task failed");
                    return;
                }
            }
            if *durable.borrow_and_update() > self.progress() {
                continue;
            }
            if durable.changed().await.is_err() {
                info!("log closed; projector stopping");
                return;
            }
        }
    }

    /// Waits until every projection reflects the log up to `sequence`.
    pub async fn wait_for(&self, sequence: u64) -> Result<(), ProjectionError> {
        let mut progress = self.progress.subscribe();
        progress
            .wait_for(|reached| *reached >= sequence)
            .await
            .map(|_| ())
            .map_err(|_| ProjectionError::Stopped)
    }

    /// Empties every projection and replays the whole log into them, reporting progress as
    /// `(done, total)`. Each projection applies on its own thread while the log is read ahead.
    pub fn rebuild(&self, mut report: impl FnMut(u64, u64)) -> Result<u64, ProjectionError> {
        for projection in self.projections.iter() {
            projection.reset()?;
        }
        self.progress.send_replace(0);
        let head = self.log.durable_head();
        let applied = std::thread::scope(|scope| -> Result<u64, ProjectionError> {
            let mut senders = Vec::new();
            let mut workers = Vec::new();
            for projection in self.projections.iter() {
                let (sender, receiver) = std::sync::mpsc::sync_channel::<Arc<Vec<Event>>>(2);
                senders.push(sender);
                workers.push(scope.spawn(move || -> Result<(), ProjectionError> {
                    for chunk in receiver {
                        projection.apply(&chunk)?;
                    }
                    Ok(())
                }));
            }
            let mut applied = 0;
            let mut next = 1;
            'read: while next <= head {
                let events = self.log.read(next, REBUILD_CHUNK)?;
                let Some(last) = events.last().map(|event| event.sequence) else {
                    break;
                };
                applied += events.len() as u64;
                next = last + 1;
                let chunk = Arc::new(events);
                for sender in &senders {
                    // A worker that stopped has an error to report below.
                    if sender.send(chunk.clone()).is_err() {
                        break 'read;
                    }
                }
                report(last, head);
            }
            drop(senders);
            for worker in workers {
                worker.join().map_err(|_| ProjectionError::Stopped)??;
            }
            Ok(applied)
        })?;
        self.persist()?;
        self.progress.send_replace(head);
        Ok(applied)
    }
}
