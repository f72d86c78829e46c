//! The projector runner: tails the log's durable events into every projection, in order, and
//! publishes how far the projections got so readers can wait for their own writes.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use roster_engine::domain::Event;
use roster_engine::log::{EmbeddedLog, LogError};
use roster_engine::store::StoreError;
use thiserror::Error;
use tokio::sync::watch;
use tracing::{debug, error, info};

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
}

impl Projector {
    pub fn new(
        log: EmbeddedLog,
        projections: Vec<Arc<dyn Projection>>,
    ) -> Result<Self, ProjectionError> {
        let mut lowest = u64::MAX;
        for projection in &projections {
            lowest = lowest.min(projection.checkpoint()?);
        }
        let (progress, _) = watch::channel(if projections.is_empty() { 0 } else { lowest });
        Ok(Self {
            log,
            projections: Arc::new(projections),
            progress,
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
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|since| since.as_micros() as i64)
            .unwrap_or(0);
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
        let head = self.log.durable_head();
        loop {
            let progress = self.progress();
            if progress >= head {
                return Ok(progress);
            }
            let mut events = self.log.read(progress + 1, CHUNK)?;
            if events.len() == CHUNK {
                self.finish_command(&mut events)?;
            }
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

    /// Extends `events` to the end of the command its last event belongs to: a reader between
    /// two steps would otherwise see half of one command (half a staging promotion, whose
    /// thousands of events are one atomic append). A command's events follow one another in the
    /// log with one tenant and one causation id.
    fn finish_command(&self, events: &mut Vec<Event>) -> Result<(), ProjectionError> {
        loop {
            let Some(last) = events.last() else {
                return Ok(());
            };
            let (tenant, causation, next) = (
                last.tenant.clone(),
                last.causation_id.clone(),
                last.sequence + 1,
            );
            if causation.is_empty() {
                return Ok(());
            }
            let more = self.log.read(next, CHUNK)?;
            let read = more.len();
            let same: Vec<Event> = more
                .into_iter()
                .take_while(|event| event.tenant == tenant && event.causation_id == causation)
                .collect();
            let whole = same.len() < read || read < CHUNK;
            events.extend(same);
            if whole {
                return Ok(());
            }
        }
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
        self.progress.send_replace(head);
        Ok(applied)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::Mutex;

    use roster_engine::domain::{Actor, EventPayload, Role, Source, TenantName, Timestamp};
    use roster_engine::log::AppendRequest;
    use uuid::Uuid;

    use super::*;

    /// Records the sequences each `apply` call covered.
    #[derive(Default)]
    struct Recorder {
        batches: Mutex<Vec<(u64, u64)>>,
    }

    impl Projection for Recorder {
        fn name(&self) -> &'static str {
            "recorder"
        }
        fn checkpoint(&self) -> Result<u64, ProjectionError> {
            Ok(self
                .batches
                .lock()
                .unwrap()
                .last()
                .map_or(0, |batch| batch.1))
        }
        fn apply(&self, events: &[Event]) -> Result<(), ProjectionError> {
            let first = events.first().unwrap().sequence;
            let last = events.last().unwrap().sequence;
            self.batches.lock().unwrap().push((first, last));
            Ok(())
        }
        fn reset(&self) -> Result<(), ProjectionError> {
            self.batches.lock().unwrap().clear();
            Ok(())
        }
    }

    fn event(tenant: &TenantName, causation: &str) -> Event {
        Event {
            id: Uuid::now_v7(),
            tenant: tenant.clone(),
            sequence: 0,
            occurred_at: Timestamp::from_micros(1),
            recorded_at: Timestamp::from_micros(1),
            actor: Actor::system(),
            source: Source::default(),
            causation_id: causation.to_owned(),
            payload: EventPayload::DefaultRoleSet { role: Role::Read },
        }
    }

    #[tokio::test]
    async fn a_step_never_ends_inside_one_command() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let log = EmbeddedLog::open(&db).unwrap();
        let acme = TenantName::parse("acme").unwrap();
        let mut head = 0;
        let mut append = async |events: Vec<Event>| {
            let appended = log
                .append(AppendRequest {
                    tenant: acme.clone(),
                    expected_head: head,
                    events,
                    after_append: None,
                })
                .await
                .unwrap();
            head = appended.last().unwrap().sequence;
            head
        };
        for n in 0..1000 {
            append(vec![event(&acme, &format!("req-{n}"))]).await;
        }
        // One command of 1,500 events (a promotion), spanning the 1,024-event step boundary.
        let big = append((0..1500).map(|_| event(&acme, "promote")).collect()).await;
        for n in 0..10 {
            append(vec![event(&acme, &format!("after-{n}"))]).await;
        }
        log.wait_durable(head).await.unwrap();
        let recorder = Arc::new(Recorder::default());
        let projector = Projector::new(log.clone(), vec![recorder.clone()]).unwrap();
        assert_eq!(projector.step().unwrap(), 2510);
        let batches = recorder.batches.lock().unwrap().clone();
        // No batch may start after the command's first event or end before its last.
        for (first, last) in &batches {
            let starts_inside = (1002..=big).contains(first);
            let ends_inside = (1001..big).contains(last);
            assert!(
                !starts_inside && !ends_inside,
                "a step boundary inside the command: {batches:?}"
            );
        }
        assert_eq!(batches.last().unwrap().1, 2510);
    }
}
