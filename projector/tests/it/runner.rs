//! The runner: steps that overlap (one left running by an aborted task, the last one at
//! shutdown) apply each event once.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use roster_engine::domain::Event;
use roster_engine::log::{AppendRequest, EmbeddedLog};
use roster_projector::{Projection, ProjectionError, Projector};

use crate::support::*;

/// A projection that takes its time and remembers every sequence it was given.
#[derive(Default)]
struct Slow {
    checkpoint: Mutex<u64>,
    applied: Mutex<Vec<u64>>,
}

impl Projection for Slow {
    fn name(&self) -> &'static str {
        "slow"
    }

    fn checkpoint(&self) -> Result<u64, ProjectionError> {
        Ok(*self.checkpoint.lock().unwrap())
    }

    fn apply(&self, events: &[Event]) -> Result<(), ProjectionError> {
        std::thread::sleep(Duration::from_millis(100));
        let mut applied = self.applied.lock().unwrap();
        applied.extend(events.iter().map(|event| event.sequence));
        *self.checkpoint.lock().unwrap() = events.last().map_or(0, |event| event.sequence);
        Ok(())
    }

    fn reset(&self) -> Result<(), ProjectionError> {
        *self.checkpoint.lock().unwrap() = 0;
        self.applied.lock().unwrap().clear();
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_steps_apply_each_event_once() {
    let (_dir, db) = open_db();
    let log = EmbeddedLog::open(&db, None).unwrap();
    let mut history = History::default();
    for n in 0..10 {
        history.at(day(0), user(n, &format!("user-{n}")));
    }
    let events = history
        .events
        .into_iter()
        .map(|mut event| {
            event.sequence = 0;
            event
        })
        .collect();
    log.append(AppendRequest {
        tenant: acme(),
        expected_head: 0,
        events,
        after_append: None,
    })
    .await
    .unwrap();
    log.wait_durable(10).await.unwrap();

    let slow = Arc::new(Slow::default());
    let projector = Projector::new(log, vec![slow.clone()]).unwrap();
    std::thread::scope(|scope| {
        let first = scope.spawn(|| projector.step());
        let second = scope.spawn(|| projector.step());
        assert_eq!(first.join().unwrap().unwrap(), 10);
        assert_eq!(second.join().unwrap().unwrap(), 10);
    });
    assert_eq!(
        *slow.applied.lock().unwrap(),
        (1..=10).collect::<Vec<u64>>()
    );
}
