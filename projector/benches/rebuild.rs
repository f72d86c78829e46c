//! Projection rebuild throughput, in events/s, over a realistic history of about 20,000 events in
//! two tenants (the shape of `roster bench seed`: users provisioned with profiles, groups, role
//! mappings and resource-group links, memberships added and removed, profile updates,
//! deactivations and reactivations), decided and applied by the pure domain, not the engine:
//!
//! - `rebuild/directory` and `rebuild/audit`: the whole history applied in chunks of 8,192 events
//!   (the runner's rebuild batch) to a fresh `DirectoryView` or `AuditTrail` in a new sled
//!   database; opening the database is not timed;
//! - `rebuild/projector`: `Projector::rebuild` of both from the embedded log (log reads, and the
//!   two projections on their own threads), as `roster rebuild` runs it.
//!
//! Run: `cargo bench -p roster-projector --bench rebuild`. Each iteration takes seconds: the
//! benchmarks take one iteration per sample, ten samples.

// Benchmark code is test code: a failed unwrap is a broken benchmark, never a production path.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use rand::SeedableRng;
use rand::rngs::StdRng;
use roster_engine::domain::{
    Actor, ActorKind, Command, Event, Source, State, TenantName, Timestamp, apply, decide,
};
use roster_engine::log::EmbeddedLog;
use roster_engine::workload::{IdKind, tenant_history};
use roster_projector::{AuditTrail, DirectoryView, Projection, Projector};
use uuid::Uuid;

/// Events to generate, about.
const EVENTS: u64 = 20_000;
const TENANTS: u64 = 2;
/// The runner's rebuild batch (`REBUILD_CHUNK`).
const CHUNK: usize = 8192;
/// The server's default sled cache.
const CACHE_BYTES: u64 = 256 << 20;
/// 2026-01-01T00:00:00Z.
const T0: i64 = 1_767_225_600_000_000;

/// Decides commands against in-memory tenants and records the accepted events, enveloped as
/// the gateway would (an IdP's token, its address and user agent, a request id).
struct History {
    events: Vec<Event>,
}

impl History {
    fn run(&mut self, state: &mut State, commands: Vec<Command>) {
        for command in commands {
            let Ok(payloads) = decide(state, command) else {
                continue;
            };
            for payload in payloads {
                let sequence = self.events.len() as u64 + 1;
                let at = Timestamp::from_micros(T0 + sequence as i64 * 1_000);
                let event = Event {
                    id: Uuid::from_u128(u128::from(sequence)),
                    tenant: state.name.clone(),
                    sequence,
                    occurred_at: at,
                    recorded_at: at,
                    actor: Actor {
                        kind: ActorKind::ScimToken,
                        id: "tok-entra".into(),
                        display: "entra provisioning".into(),
                    },
                    source: Source {
                        ip: "203.0.113.7".into(),
                        user_agent: "Azure-Provisioning/1.0".into(),
                        request_id: format!("req-{sequence}"),
                    },
                    causation_id: format!("req-{sequence}"),
                    payload,
                };
                apply(state, &event);
                self.events.push(event);
            }
            drop(std::mem::take(&mut state.journal));
        }
    }
}

/// About `EVENTS` events in `TENANTS` tenants, in the proportions of `roster bench seed`
/// (gateway/src/bench/history.rs), deterministic.
fn generate() -> Vec<Event> {
    let mut rng = StdRng::seed_from_u64(7);
    let mut history = History { events: Vec::new() };
    let per_tenant = EVENTS / TENANTS;
    let id = |kind: u128, tenant: u64, n: usize| {
        Uuid::from_u128((kind << 96) | (u128::from(tenant) << 64) | n as u128)
    };
    for t in 0..TENANTS {
        let mut state = State::new(TenantName::parse(&format!("seed-{t}")).unwrap());
        let phases = tenant_history(per_tenant, &mut rng, |kind, n| {
            let tag = match kind {
                IdKind::Group => 1,
                IdKind::User => 2,
                IdKind::ResourceGroup => 3,
            };
            id(tag, t, n)
        });
        for phase in phases {
            history.run(&mut state, phase);
        }
    }
    history.events
}

/// A new, empty database in a temporary directory (removed on drop).
fn database() -> (tempfile::TempDir, sled::Db) {
    let dir = tempfile::tempdir().unwrap();
    let db = roster_engine::open_database(&dir.path().join("db"), CACHE_BYTES).unwrap();
    (dir, db)
}

/// Times applying every event, in chunks, to a projection opened fresh for each iteration.
fn fresh<P: Projection>(events: &[Event], iters: u64, open: impl Fn(&sled::Db) -> P) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let (dir, db) = database();
        let projection = open(&db);
        let started = Instant::now();
        for chunk in events.chunks(CHUNK) {
            projection.apply(chunk).unwrap();
        }
        total += started.elapsed();
        assert_eq!(
            projection.checkpoint().unwrap(),
            events.len() as u64,
            "{}",
            projection.name()
        );
        drop((projection, db, dir));
    }
    total
}

fn rebuild(c: &mut Criterion) {
    let events = generate();
    let count = events.len() as u64;
    let mut group = c.benchmark_group("rebuild");
    group
        .sampling_mode(SamplingMode::Flat)
        .throughput(Throughput::Elements(count));
    group.bench_function("directory", |b| {
        b.iter_custom(|iters| fresh(&events, iters, |db| DirectoryView::open(db).unwrap()))
    });
    group.bench_function("audit", |b| {
        b.iter_custom(|iters| fresh(&events, iters, |db| AuditTrail::open(db).unwrap()))
    });

    // The log holds the history once; every rebuild empties both views and replays it.
    let (_dir, db) = database();
    let log = EmbeddedLog::mirror(&db).unwrap();
    for chunk in events.chunks(CHUNK) {
        log.record_mirrored(chunk).unwrap();
    }
    let projections: Vec<Arc<dyn Projection>> = vec![
        Arc::new(DirectoryView::open(&db).unwrap()),
        Arc::new(AuditTrail::open(&db).unwrap()),
    ];
    let projector = Projector::new(log, projections).unwrap();
    group.bench_function("projector", |b| {
        b.iter(|| assert_eq!(projector.rebuild(|_, _| {}).unwrap(), count))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .without_plots();
    targets = rebuild
}
criterion_main!(benches);
