//! Offline benchmarks on a data directory (roster stopped): seeding a realistic history of about
//! N events straight through the engine, and timing point-in-time queries on the views.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use roster_engine::domain::{Actor, Command, GroupId, Source, TenantName, Timestamp, UserId};
use roster_engine::engine::{CommandContext, Engine};
use roster_projector::DirectoryView;
use tokio::sync::Semaphore;
use uuid::Uuid;

use super::Report;

/// What seeding produced.
#[derive(Debug)]
pub struct Seeded {
    pub events: u64,
    pub commands: u64,
    pub elapsed: Duration,
}

fn context() -> CommandContext {
    CommandContext {
        now: roster_engine::clock::Clock::now(&roster_engine::clock::SystemClock),
        actor: Actor::system(),
        source: Source {
            ip: "127.0.0.1".into(),
            user_agent: "roster bench seed".into(),
            request_id: String::new(),
        },
        causation_id: String::new(),
    }
}

/// Runs `commands` for `tenant` with `concurrency` in flight; returns events appended.
async fn run_all(
    engine: &Engine,
    tenant: &TenantName,
    commands: Vec<Command>,
    concurrency: usize,
) -> u64 {
    let permits = Arc::new(Semaphore::new(concurrency));
    let mut tasks = tokio::task::JoinSet::new();
    let mut events = 0;
    for command in commands {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let (engine, tenant) = (engine.clone(), tenant.clone());
        tasks.spawn(async move {
            let appended = engine
                .execute(&tenant, command, context())
                .await
                .map(|executed| executed.events.len() as u64)
                .unwrap_or(0);
            drop(permit);
            appended
        });
        while let Some(done) = tasks.try_join_next() {
            events += done.unwrap_or(0);
        }
    }
    while let Some(done) = tasks.join_next().await {
        events += done.unwrap_or(0);
    }
    events
}

/// Appends a history of about `target` events over `tenants` tenants: users with profiles,
/// groups, memberships added and removed, profile updates, deactivations and reactivations,
/// role mappings and resource-group links. Returns once every event is durable.
pub async fn seed(data_dir: &Path, target: u64, tenants: usize) -> Result<Seeded, String> {
    let db = roster_engine::open_database(&data_dir.join("db"), 256 << 20).map_err(|error| {
        format!(
            "opening {} (is roster running?): {error}",
            data_dir.display()
        )
    })?;
    let engine = Engine::open(
        &db,
        Some(&data_dir.join(roster_engine::log::WATERMARK_FILE)),
        roster_engine::clock::system(),
        roster_engine::resident::PersistPolicy::default(),
    )
    .map_err(|error| error.to_string())?;
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(7);
    let per_tenant = target / tenants.max(1) as u64;
    let mut events = 0;
    let mut commands = 0;
    for t in 0..tenants.max(1) {
        let tenant = TenantName::parse(&format!(
            "seed-{t}-{}",
            &Uuid::now_v7().simple().to_string()[24..]
        ))
        .map_err(|error| error.to_string())?;
        let phases =
            roster_engine::workload::tenant_history(per_tenant, &mut rng, |_, _| Uuid::now_v7());
        for phase in phases {
            commands += phase.len() as u64;
            events += run_all(&engine, &tenant, phase, 256).await;
        }
    }
    let elapsed = started.elapsed();
    engine.close();
    drop(engine);
    db.flush().map_err(|error| error.to_string())?;
    Ok(Seeded {
        events,
        commands,
        elapsed,
    })
}

/// Latency of point-in-time queries on a data directory whose views are built.
pub struct PointInTime {
    pub events: u64,
    pub members_at: Report,
    pub access_at: Report,
}

/// Times `rounds` "members of G at T" (first page of 100) and "access of U at T" queries on
/// random groups, users and moments of the history.
pub fn point_in_time(data_dir: &Path, rounds: usize) -> Result<PointInTime, String> {
    let db = roster_engine::open_database(&data_dir.join("db"), 256 << 20).map_err(|error| {
        format!(
            "opening {} (is roster running?): {error}",
            data_dir.display()
        )
    })?;
    let directory = DirectoryView::open(&db).map_err(|error| error.to_string())?;
    let store = directory.store();
    let log = roster_engine::log::EmbeddedLog::open(
        &db,
        Some(&data_dir.join(roster_engine::log::WATERMARK_FILE)),
    )
    .map_err(|error| error.to_string())?;
    let events = log.durable_head();
    let first = log.read(1, 1).map_err(|error| error.to_string())?;
    let last = log.read(events, 1).map_err(|error| error.to_string())?;
    let (Some(first), Some(last)) = (first.first(), last.first()) else {
        return Err("the log is empty: seed it first".into());
    };
    let (from, to) = (
        first.recorded_at.as_micros(),
        last.recorded_at
            .as_micros()
            .max(first.recorded_at.as_micros() + 1),
    );
    let tenants: Vec<TenantName> = store
        .tenants()
        .map_err(|error| error.to_string())?
        .into_iter()
        .map(|(name, _)| name)
        .filter(|name| !name.is_system())
        .collect();
    let mut rng = StdRng::seed_from_u64(11);
    let mut samples: Vec<(TenantName, Vec<GroupId>, Vec<UserId>)> = Vec::new();
    for tenant in tenants {
        let groups: Vec<GroupId> = store
            .groups_after(&tenant, None)
            .take(500)
            .filter_map(Result::ok)
            .map(|group| group.id)
            .collect();
        let users: Vec<UserId> = store
            .users_after(&tenant, None)
            .step_by(97)
            .take(2000)
            .filter_map(Result::ok)
            .map(|user| user.id)
            .collect();
        if !groups.is_empty() && !users.is_empty() {
            samples.push((tenant, groups, users));
        }
    }
    if samples.is_empty() {
        return Err("no tenant with groups and users: seed first".into());
    }
    let mut members_at = Report {
        name: "members of a group at T (first 100)".into(),
        ..Report::default()
    };
    let mut access_at = Report {
        name: "access of a user at T".into(),
        ..Report::default()
    };
    let started = Instant::now();
    for _ in 0..rounds {
        let (tenant, groups, users) = &samples[rng.random_range(0..samples.len())];
        let at = Timestamp::from_micros(rng.random_range(from..=to));
        let group = groups[rng.random_range(0..groups.len())];
        let timer = Instant::now();
        directory
            .members_at(tenant, &group, at, None, 100)
            .map_err(|error| error.to_string())?;
        members_at.latencies.push(timer.elapsed());
        let user = users[rng.random_range(0..users.len())];
        let timer = Instant::now();
        directory
            .access_at(tenant, &user, at)
            .map_err(|error| error.to_string())?;
        access_at.latencies.push(timer.elapsed());
    }
    members_at.elapsed = started.elapsed() / 2;
    access_at.elapsed = started.elapsed() / 2;
    log.close();
    Ok(PointInTime {
        events,
        members_at,
        access_at,
    })
}
