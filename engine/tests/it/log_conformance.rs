//! The event-log contract, run against both backends: the embedded sled log and JetStream (a real
//! nats-server, read back through the local mirror exactly as roster reads it).
//!
//! - an append to a tenant lands only if the tenant's head is still the expected one, and a
//!   refused append names the actual head and writes nothing;
//! - several events land together or not at all;
//! - tenants do not conflict with each other;
//! - sequences are dense and reads return events in sequence order;
//! - sending the same append again never stores it twice;
//! - a tenant read returns that tenant's events only, in order, resumable where it stopped.

use std::time::Duration;

use roster_engine::domain::{Event, EventPayload, TenantName, UserId};
use roster_engine::log::{AppendError, AppendRequest, EmbeddedLog, JetStreamConfig, JetStreamLog};
use roster_engine::testkit::{envelope, nats::NatsServer};
use tokio::sync::watch;
use uuid::Uuid;

/// A log under test, read back as roster reads it.
#[allow(clippy::large_enum_variant)] // one per test
enum LogUnderTest {
    Embedded {
        log: EmbeddedLog,
        _dir: tempfile::TempDir,
    },
    JetStream {
        log: JetStreamLog,
        mirror: EmbeddedLog,
        stop: watch::Sender<bool>,
        _server: NatsServer,
        _dir: tempfile::TempDir,
    },
}

impl LogUnderTest {
    async fn embedded() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = roster_engine::open_database(&dir.path().join("db"), 16 << 20).unwrap();
        Self::Embedded {
            log: EmbeddedLog::open(&db, Some(&dir.path().join("log.watermark"))).unwrap(),
            _dir: dir,
        }
    }

    async fn jetstream() -> Self {
        let server = NatsServer::start();
        let dir = tempfile::tempdir().unwrap();
        let db = roster_engine::open_database(&dir.path().join("db"), 16 << 20).unwrap();
        let log = JetStreamLog::connect(&JetStreamConfig {
            url: server.url(),
            replicas: 1,
        })
        .await
        .unwrap();
        let mirror = EmbeddedLog::mirror(&db).unwrap();
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(log.clone().mirror(mirror.clone(), stopped));
        Self::JetStream {
            log,
            mirror,
            stop,
            _server: server,
            _dir: dir,
        }
    }

    async fn append(
        &self,
        tenant: &TenantName,
        expected_head: u64,
        events: &[Event],
    ) -> Result<Vec<u64>, AppendError> {
        match self {
            Self::Embedded { log, .. } => {
                let appended = log
                    .append(AppendRequest {
                        tenant: tenant.clone(),
                        expected_head,
                        events: events.to_vec(),
                        after_append: None,
                    })
                    .await?;
                let last = appended.last().map_or(0, |event| event.sequence);
                log.wait_durable(last).await.unwrap();
                Ok(appended.iter().map(|event| event.sequence).collect())
            }
            Self::JetStream { log, .. } => log.append(tenant, expected_head, events).await,
        }
    }

    /// Every event in the log, in the order reads return them.
    async fn read_all(&self) -> Vec<Event> {
        let local = self.caught_up().await;
        let mut events = Vec::new();
        loop {
            let next = events.last().map_or(1, |event: &Event| event.sequence + 1);
            let chunk = local.read(next, 100).unwrap();
            if chunk.is_empty() {
                return events;
            }
            events.extend(chunk);
        }
    }

    /// Every event of `tenant`, through tenant reads of at most `limit` events.
    async fn read_tenant_all(&self, tenant: &TenantName, limit: usize) -> Vec<Event> {
        let local = self.caught_up().await;
        let mut events = Vec::new();
        let mut next = 1;
        loop {
            let read = local.read_tenant(tenant, next, limit, 1 << 20).unwrap();
            next = read.next;
            if read.events.is_empty() {
                return events;
            }
            events.extend(read.events);
        }
    }

    /// The local log, once it holds everything appended.
    async fn caught_up(&self) -> &EmbeddedLog {
        match self {
            Self::Embedded { log, .. } => log,
            Self::JetStream { log, mirror, .. } => {
                let head = log.head().await.unwrap();
                let mut durable = mirror.subscribe();
                tokio::time::timeout(
                    Duration::from_secs(10),
                    durable.wait_for(|reached| *reached >= head),
                )
                .await
                .expect("the mirror caught up with the stream")
                .unwrap();
                mirror
            }
        }
    }
}

impl Drop for LogUnderTest {
    fn drop(&mut self) {
        if let Self::JetStream { stop, .. } = self {
            let _ = stop.send(true);
        }
    }
}

fn tenant(name: &str) -> TenantName {
    TenantName::parse(name).unwrap()
}

/// `count` fresh events of `tenant`, each with its own id.
fn events(tenant: &TenantName, count: usize) -> Vec<Event> {
    (0..count)
        .map(|n| {
            let mut event = envelope(
                tenant,
                0,
                EventPayload::UserDeactivated {
                    user_id: UserId(Uuid::now_v7()),
                    user_name: format!("user-{n}"),
                    external_id: None,
                    email: Default::default(),
                    sso: Default::default(),
                },
            );
            event.id = Uuid::now_v7();
            event
        })
        .collect()
}

fn ids(events: &[Event]) -> Vec<Uuid> {
    events.iter().map(|event| event.id).collect()
}

/// Runs each contract test on both backends.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::LogUnderTest::embedded().await).await;
                }
            )*
        }
        mod jetstream {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::LogUnderTest::jetstream().await).await;
                }
            )*
        }
    };
}

conformance!(
    appends_get_dense_sequences_and_read_back_in_order,
    a_stale_head_is_refused_with_the_actual_head_and_writes_nothing,
    tenants_do_not_conflict,
    of_concurrent_appends_on_one_head_exactly_one_lands,
    sending_the_same_append_again_stores_it_once,
    a_thousand_events_land_together,
    a_tenant_read_returns_only_that_tenants_events,
);

async fn appends_get_dense_sequences_and_read_back_in_order(log: LogUnderTest) {
    let acme = tenant("acme");
    let first = events(&acme, 1);
    let rest = events(&acme, 3);
    assert_eq!(log.append(&acme, 0, &first).await.unwrap(), vec![1]);
    assert_eq!(log.append(&acme, 1, &rest).await.unwrap(), vec![2, 3, 4]);

    let read = log.read_all().await;
    let expected: Vec<Uuid> = ids(&first).into_iter().chain(ids(&rest)).collect();
    assert_eq!(ids(&read), expected);
    assert_eq!(
        read.iter().map(|event| event.sequence).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    for (read, sent) in read.iter().zip(first.iter().chain(&rest)) {
        assert_eq!(read.payload, sent.payload);
        assert_eq!(read.tenant, acme);
        assert!(
            read.recorded_at.as_micros() > 0,
            "the log stamps recorded_at"
        );
    }
    assert!(
        read.windows(2)
            .all(|pair| pair[0].recorded_at <= pair[1].recorded_at),
        "recorded_at never goes back"
    );
}

async fn a_stale_head_is_refused_with_the_actual_head_and_writes_nothing(log: LogUnderTest) {
    let acme = tenant("acme");
    log.append(&acme, 0, &events(&acme, 2)).await.unwrap();

    let stale_single = log.append(&acme, 0, &events(&acme, 1)).await;
    assert_eq!(stale_single, Err(AppendError::Conflict { actual_head: 2 }));
    let stale_batch = log.append(&acme, 1, &events(&acme, 5)).await;
    assert_eq!(stale_batch, Err(AppendError::Conflict { actual_head: 2 }));
    let ahead = log.append(&acme, 7, &events(&acme, 1)).await;
    assert_eq!(ahead, Err(AppendError::Conflict { actual_head: 2 }));

    assert_eq!(
        log.read_all().await.len(),
        2,
        "refused appends wrote nothing"
    );
    assert_eq!(
        log.append(&acme, 2, &events(&acme, 1)).await.unwrap(),
        vec![3]
    );
}

async fn tenants_do_not_conflict(log: LogUnderTest) {
    let (acme, globex) = (tenant("acme"), tenant("globex"));
    assert_eq!(
        log.append(&acme, 0, &events(&acme, 1)).await.unwrap(),
        vec![1]
    );
    // globex has no events yet: its head is 0 whatever acme did.
    assert_eq!(
        log.append(&globex, 0, &events(&globex, 2)).await.unwrap(),
        vec![2, 3]
    );
    // acme's head is still 1, although the log moved on.
    assert_eq!(
        log.append(&acme, 1, &events(&acme, 1)).await.unwrap(),
        vec![4]
    );
    assert_eq!(
        log.append(&globex, 3, &events(&globex, 1)).await.unwrap(),
        vec![5]
    );
    assert_eq!(
        log.append(&acme, 1, &events(&acme, 1)).await,
        Err(AppendError::Conflict { actual_head: 4 })
    );
    // A tenant whose name prefixes another's is still its own tenant.
    let acme2 = tenant("acme2");
    assert_eq!(
        log.append(&acme2, 0, &events(&acme2, 1)).await.unwrap(),
        vec![6]
    );

    let read = log.read_all().await;
    let tenants: Vec<&str> = read.iter().map(|event| event.tenant.as_str()).collect();
    assert_eq!(
        tenants,
        vec!["acme", "globex", "globex", "acme", "globex", "acme2"]
    );
}

async fn of_concurrent_appends_on_one_head_exactly_one_lands(log: LogUnderTest) {
    let log = std::sync::Arc::new(log);
    let acme = tenant("acme");
    log.append(&acme, 0, &events(&acme, 1)).await.unwrap();
    let racers: Vec<_> = (0..8)
        .map(|_| {
            let (log, acme) = (log.clone(), acme.clone());
            tokio::spawn(async move { log.append(&acme, 1, &events(&acme, 2)).await })
        })
        .collect();
    let mut landed = 0;
    for racer in racers {
        match racer.await.unwrap() {
            Ok(sequences) => {
                assert_eq!(sequences, vec![2, 3]);
                landed += 1;
            }
            Err(AppendError::Conflict { actual_head }) => assert_eq!(actual_head, 3),
            Err(other) => panic!("unexpected append error: {other}"),
        }
    }
    assert_eq!(landed, 1);
    assert_eq!(log.read_all().await.len(), 3);
}

async fn sending_the_same_append_again_stores_it_once(log: LogUnderTest) {
    let acme = tenant("acme");
    let single = events(&acme, 1);
    let batch = events(&acme, 3);
    assert_eq!(log.append(&acme, 0, &single).await.unwrap(), vec![1]);
    assert_eq!(log.append(&acme, 1, &batch).await.unwrap(), vec![2, 3, 4]);

    // A retry after a lost acknowledgement carries the same events and the same expectation.
    assert_eq!(
        log.append(&acme, 0, &single).await,
        Err(AppendError::Conflict { actual_head: 4 })
    );
    assert_eq!(
        log.append(&acme, 1, &batch).await,
        Err(AppendError::Conflict { actual_head: 4 })
    );
    let read = log.read_all().await;
    assert_eq!(ids(&read), [ids(&single), ids(&batch)].concat());
}

async fn a_thousand_events_land_together(log: LogUnderTest) {
    let acme = tenant("acme");
    let batch = events(&acme, 1000);
    let sequences = log.append(&acme, 0, &batch).await.unwrap();
    assert_eq!(sequences, (1..=1000).collect::<Vec<u64>>());
    let refused = log.append(&acme, 0, &events(&acme, 1000)).await;
    assert_eq!(refused, Err(AppendError::Conflict { actual_head: 1000 }));
    assert_eq!(ids(&log.read_all().await), ids(&batch));
}

async fn a_tenant_read_returns_only_that_tenants_events(log: LogUnderTest) {
    let (acme, acme2, globex) = (tenant("acme"), tenant("acme2"), tenant("globex"));
    let mut heads = std::collections::HashMap::new();
    let mut sent: Vec<(TenantName, Uuid)> = Vec::new();
    for round in 0..30 {
        let who = [&acme, &acme2, &globex, &globex][round % 4];
        let batch = events(who, 1 + round % 5);
        let head = heads.get(who).copied().unwrap_or(0);
        let sequences = log.append(who, head, &batch).await.unwrap();
        heads.insert(who.clone(), *sequences.last().unwrap());
        sent.extend(batch.iter().map(|event| (who.clone(), event.id)));
    }
    for who in [&acme, &acme2, &globex] {
        let expected: Vec<Uuid> = sent
            .iter()
            .filter(|(tenant, _)| tenant == who)
            .map(|(_, id)| *id)
            .collect();
        for limit in [1, 4, 100] {
            let read = log.read_tenant_all(who, limit).await;
            assert!(read.iter().all(|event| event.tenant == *who));
            assert!(
                read.windows(2)
                    .all(|pair| pair[0].sequence < pair[1].sequence)
            );
            assert_eq!(ids(&read), expected, "{who} in reads of {limit}");
        }
    }
}

/// A stream created by a roster from before staging holds `roster.evt.>` only: connecting adds
/// the staging branches' subjects, keeping what was there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_stream_gets_the_staging_subjects_added() {
    use async_nats::jetstream::{self, stream};

    let server = NatsServer::start();
    let context = jetstream::new(async_nats::connect(server.url()).await.unwrap());
    context
        .create_stream(stream::Config {
            name: "ROSTER_EVENTS".to_owned(),
            subjects: vec!["roster.evt.>".to_owned()],
            allow_atomic_publish: true,
            deny_delete: true,
            deny_purge: true,
            ..stream::Config::default()
        })
        .await
        .unwrap();
    JetStreamLog::connect(&JetStreamConfig {
        url: server.url(),
        replicas: 1,
    })
    .await
    .unwrap();
    let subjects = context
        .get_stream("ROSTER_EVENTS")
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .config
        .subjects
        .clone();
    assert_eq!(subjects, vec!["roster.evt.>", "roster.stg.>"]);
}
