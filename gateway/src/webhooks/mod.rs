//! Webhook delivery (Standard Webhooks 1.0): one worker per subscription follows its tenant's
//! durable events from the subscription's cursor ([`cursor`]) and POSTs each selected event, one
//! per request, signed with the subscription's secrets ([`keys`]), in log order. A 2xx moves the
//! cursor; anything else is retried on the schedule, with jitter, honouring `Retry-After`; `410
//! Gone` removes the subscription; a schedule exhausted makes it `failing` (an event, so the
//! audit trail and every admin see it) with its cursor kept, and resuming delivers everything
//! since. Which subscriptions exist and their status are the tenant record's (decided by the
//! engine); this module only delivers.

pub mod cursor;
pub(crate) mod http;
pub mod keys;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use roster_engine::clock::SharedClock;
use roster_engine::domain::{
    Actor, Command, Event, EventPayload, TenantName, WebhookId, WebhookRecord, WebhookStatus,
};
use roster_engine::engine::{CommandContext, Engine};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};

pub use cursor::{CursorError, Cursors, Delivery, Failure, LEASE_RENEW, PendingSet};

/// Why a worker could not go on for now (it tries again a moment later).
#[derive(Debug, thiserror::Error)]
enum DeliveryError {
    #[error(transparent)]
    Cursor(#[from] CursorError),
    #[error("reading the tenant's events: {0}")]
    Log(String),
    #[error("recording a webhook's change: {0}")]
    Engine(String),
    /// The webhook's first cursor is not known yet: the event that added it is not readable.
    #[error("the event that added webhook {0} is not in the log yet")]
    NotStarted(WebhookId),
}
pub use keys::{WEBHOOK_KEY_FILE, WebhookKeys};

/// Most events read from the log at once per worker.
const READ_EVENTS: usize = 256;
/// Most bytes of events read from the log at once per worker.
const READ_BYTES: usize = 4 * 1024 * 1024;
/// How often every tenant's subscriptions are looked at again (changes made through this process
/// are seen at once).
const RECONCILE_EVERY: Duration = Duration::from_secs(10);
/// How long a worker waits for news before looking at its subscription again.
const IDLE_RECHECK: Duration = Duration::from_secs(30);
/// How often a worker delivering a batch reads its webhook again (changes made through this
/// process wake it at once).
const RECORD_RECHECK: Duration = Duration::from_secs(1);
/// How often a flowing batch writes its cursor.
const CURSOR_EVERY: Duration = Duration::from_millis(100);
/// A lease written this recently is not renewed before a request.
const LEASE_FRESH: Duration = Duration::from_secs(5);
/// Longest shutdown waits to give webhook leases up.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait between two retries, and longest timeout: larger settings are cut to these.
pub const RETRY_WAIT_MAX: Duration = Duration::from_secs(7 * 24 * 3600);
pub const TIMEOUT_MAX: Duration = Duration::from_secs(20);

/// How deliveries behave.
#[derive(Clone, Debug)]
pub struct WebhookSettings {
    /// The waits before each retry; once they are used up the subscription is `failing`.
    pub retry_schedule: Vec<Duration>,
    /// Longest wait for a receiver's answer.
    pub timeout: Duration,
    /// Most requests in flight across all subscriptions.
    pub max_in_flight: usize,
}

impl Default for WebhookSettings {
    /// Standard Webhooks' example schedule: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h
    /// after the first attempt (ten attempts over about three days); 15 s timeout; 64 in flight.
    fn default() -> Self {
        let minutes = |m: u64| Duration::from_secs(m * 60);
        let hours = |h: u64| Duration::from_secs(h * 3600);
        Self {
            retry_schedule: vec![
                Duration::from_secs(5),
                minutes(5),
                minutes(30),
                hours(2),
                hours(5),
                hours(10),
                hours(14),
                hours(20),
                hours(24),
            ],
            timeout: Duration::from_secs(15),
            max_in_flight: 64,
        }
    }
}

/// Counts since the start, for `/metrics`.
#[derive(Debug, Default)]
pub struct WebhookCounts {
    pub delivered: AtomicU64,
    pub failed_attempts: AtomicU64,
}

/// The delivery service; cheap to clone.
#[derive(Clone)]
pub struct Webhooks {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    clock: SharedClock,
    keys: WebhookKeys,
    cursors: Cursors,
    client: http::Client,
    settings: WebhookSettings,
    in_flight: Semaphore,
    workers: std::sync::Mutex<HashMap<WebhookId, Worker>>,
    counts: WebhookCounts,
    /// Bodies rendered lately: the webhooks of a tenant send the same events.
    bodies: BodyCache,
    /// Delivery latencies in seconds, observed as they happen.
    on_delivered: Box<dyn Fn(f64) + Send + Sync>,
}

struct Worker {
    tenant: TenantName,
    /// The record as the worker was last woken about: only a change wakes it again.
    seen: WebhookRecord,
    wake: watch::Sender<()>,
    task: JoinHandle<()>,
}

impl Webhooks {
    /// Starts delivering every subscription the aggregate holds, and looks again every
    /// [`RECONCILE_EVERY`] (and whenever [`Self::changed`] is called).
    pub fn start(
        engine: Engine,
        clock: SharedClock,
        keys: WebhookKeys,
        cursors: Cursors,
        settings: WebhookSettings,
        on_delivered: Box<dyn Fn(f64) + Send + Sync>,
    ) -> Result<(Self, JoinHandle<()>), rustls::Error> {
        let webhooks = Self {
            inner: Arc::new(Inner {
                engine,
                clock,
                keys,
                cursors,
                client: http::client()?,
                in_flight: Semaphore::new(settings.max_in_flight.max(1)),
                settings,
                workers: std::sync::Mutex::default(),
                counts: WebhookCounts::default(),
                bodies: BodyCache::default(),
                on_delivered,
            }),
        };
        let supervisor = {
            let webhooks = webhooks.clone();
            tokio::spawn(async move {
                let mut every = tokio::time::interval(RECONCILE_EVERY);
                loop {
                    every.tick().await;
                    webhooks.reconcile_all();
                }
            })
        };
        Ok((webhooks, supervisor))
    }

    pub fn keys(&self) -> &WebhookKeys {
        &self.inner.keys
    }

    pub fn counts(&self) -> &WebhookCounts {
        &self.inner.counts
    }

    /// Where `webhook`'s delivery stands.
    pub async fn delivery(&self, tenant: &TenantName, webhook: &WebhookId) -> Option<Delivery> {
        self.inner.cursors.get(tenant, webhook).await.ok().flatten()
    }

    /// A new subscription delivers the events after `sequence` (the event that added it).
    pub async fn start_after(&self, tenant: &TenantName, webhook: &WebhookId, sequence: u64) {
        if let Err(error) = self
            .inner
            .cursors
            .start_after(tenant, webhook, sequence)
            .await
        {
            warn!(%tenant, %webhook, %error, "could not record where a new webhook starts; it will find it in the log");
        }
    }

    /// `tenant`'s subscriptions changed: start, wake or stop its workers now.
    pub fn changed(&self, tenant: &TenantName) {
        let record = match self.inner.engine.aggregate().tenant(tenant) {
            Ok(record) => record,
            Err(error) => {
                warn!(%tenant, %error, "cannot read the tenant's webhooks");
                return;
            }
        };
        let webhooks = record.map(|record| record.webhooks).unwrap_or_default();
        self.reconcile(tenant, &webhooks);
    }

    /// Stops every worker (at shutdown) and waits until they are gone; on JetStream, gives their
    /// leases up so that another process takes over at once.
    pub async fn stop(&self) {
        let workers: Vec<(WebhookId, Worker)> = match self.inner.workers.lock() {
            Ok(mut workers) => workers.drain().collect(),
            Err(_) => Vec::new(),
        };
        let mut stopped = Vec::with_capacity(workers.len());
        for (webhook, worker) in workers {
            worker.task.abort();
            let _ = worker.task.await;
            stopped.push((worker.tenant, webhook));
        }
        let releases = stopped
            .iter()
            .map(|(tenant, webhook)| self.inner.cursors.release(tenant, webhook));
        if tokio::time::timeout(RELEASE_TIMEOUT, futures::future::join_all(releases))
            .await
            .is_err()
        {
            warn!(
                "webhook leases not all released within {RELEASE_TIMEOUT:?}; other processes take over when they lapse"
            );
        }
    }

    fn reconcile_all(&self) {
        let tenants = match self.inner.engine.aggregate().tenants() {
            Ok(tenants) => tenants,
            Err(error) => {
                warn!(%error, "cannot list tenants for webhook delivery");
                return;
            }
        };
        for (tenant, record) in tenants {
            self.reconcile(&tenant, &record.webhooks);
        }
    }

    fn reconcile(&self, tenant: &TenantName, webhooks: &[WebhookRecord]) {
        let Ok(mut workers) = self.inner.workers.lock() else {
            return;
        };
        workers.retain(|_, worker| !worker.task.is_finished());
        // A worker learns of its webhook's removal, pause, resumption or rotation when woken;
        // workers whose webhook did not change are left alone (a wake ends a retry's wait).
        for (id, worker) in workers.iter_mut() {
            if worker.tenant != *tenant {
                continue;
            }
            match webhooks.iter().find(|webhook| webhook.id == *id) {
                Some(current) if *current == worker.seen => {}
                Some(current) => {
                    worker.seen = current.clone();
                    let _ = worker.wake.send(());
                }
                None => {
                    let _ = worker.wake.send(());
                }
            }
        }
        for webhook in webhooks {
            if workers.contains_key(&webhook.id) {
                continue;
            }
            let (wake, woken) = watch::channel(());
            let task = tokio::spawn(Arc::clone(&self.inner).deliver_all(
                tenant.clone(),
                webhook.id,
                woken,
            ));
            workers.insert(
                webhook.id,
                Worker {
                    tenant: tenant.clone(),
                    seen: webhook.clone(),
                    wake,
                    task,
                },
            );
        }
    }
}

/// How one attempt at an event ended.
enum Outcome {
    Delivered,
    /// The subscription is no longer active, or another process delivers it now.
    Held,
    /// The receiver answered 410 Gone.
    Gone,
    /// It failed; the next attempt is due later (recorded in the delivery state).
    Retry,
    /// The schedule is used up.
    GaveUp(String),
}

/// Unix microseconds now, by the wall clock (retry times and leases are between processes and
/// receivers, not the directory's time).
fn wall_micros() -> i64 {
    i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000).unwrap_or(0)
}

impl Inner {
    fn record(
        &self,
        tenant: &TenantName,
        webhook: &WebhookId,
    ) -> Result<Option<WebhookRecord>, ()> {
        match self.engine.aggregate().tenant(tenant) {
            Ok(record) => Ok(record.and_then(|record| record.webhook(webhook).cloned())),
            Err(error) => {
                warn!(%tenant, %webhook, %error, "cannot read a webhook");
                Err(())
            }
        }
    }

    /// Delivers `webhook`'s events until it is removed. The retry schedule is kept in the
    /// delivery state (`attempts`, `next_attempt_at`), so a restart or a handover goes on with it
    /// and no batch of events is held while waiting.
    async fn deliver_all(
        self: Arc<Self>,
        tenant: TenantName,
        webhook: WebhookId,
        mut woken: watch::Receiver<()>,
    ) {
        let mut durable = self.engine.log().subscribe();
        let idle = if self.cursors.is_shared() {
            LEASE_RENEW
        } else {
            IDLE_RECHECK
        };
        // What this worker last saw: the cursor, when it last wrote (renewing a lease), whether
        // a retry is pending. Checked before touching the cursor store.
        let mut known_through = 0u64;
        let mut last_claim: Option<tokio::time::Instant> = None;
        let mut retry_at: Option<i64> = None;
        // While another process holds the lease (JetStream), this one only looks again now and
        // then, not at every event.
        let mut standby_until: Option<tokio::time::Instant> = None;
        loop {
            let Ok(record) = self.record(&tenant, &webhook) else {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            };
            let Some(record) = record else {
                // Only the process delivering it forgets its cursor (on the embedded log, this
                // one); one whose view lags must not.
                if !self.cursors.is_shared()
                    || matches!(self.cursors.claim(&tenant, &webhook).await, Ok(Some(_)))
                {
                    let _ = self.cursors.remove(&tenant, &webhook).await;
                }
                info!(%tenant, %webhook, "webhook removed: delivery stopped");
                return;
            };
            let active = record.status == WebhookStatus::Active;
            let standing_by =
                standby_until.is_some_and(|until| tokio::time::Instant::now() < until);
            if active && !standing_by {
                let renew_due = last_claim.is_none_or(|at| at.elapsed() >= LEASE_RENEW);
                let head = self.engine.log().tenant_head(&tenant).unwrap_or(u64::MAX);
                let retry_wait = retry_at
                    .map(|at| Duration::from_micros(u64::try_from(at - wall_micros()).unwrap_or(0)))
                    .filter(|wait| !wait.is_zero());
                let work = match retry_wait {
                    Some(_) => renew_due,
                    None => renew_due || head > known_through,
                };
                if work {
                    last_claim = Some(tokio::time::Instant::now());
                    match self.deliver_some(&tenant, &record, &woken).await {
                        Ok(progress) => {
                            standby_until = None;
                            known_through = progress.delivered_through;
                            retry_at = progress.retry_at;
                            if progress.more {
                                continue;
                            }
                        }
                        // Another process delivers it; look again when its lease may lapse.
                        Err(DeliveryError::Cursor(CursorError::Lost(_))) => {
                            retry_at = None;
                            standby_until = Some(tokio::time::Instant::now() + LEASE_RENEW);
                        }
                        Err(error) => {
                            warn!(%tenant, %webhook, %error, "webhook delivery paused by an error; retrying in a second");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            continue;
                        }
                    }
                }
            }
            let retry_wait = retry_at
                .map(|at| Duration::from_micros(u64::try_from(at - wall_micros()).unwrap_or(0)));
            let wait = retry_wait.map_or(idle, |wait| wait.min(idle));
            let wait = standby_until.map_or(wait, |until| {
                wait.min(until.saturating_duration_since(tokio::time::Instant::now()))
            });
            let follows_events = active && retry_at.is_none() && standby_until.is_none();
            tokio::select! {
                // New events matter only to an active webhook delivered here with no retry due.
                changed = durable.changed(), if follows_events => if changed.is_err() { return },
                changed = woken.changed() => {
                    if changed.is_err() { return }
                    // A resumed webhook starts its schedule again.
                    retry_at = None;
                    last_claim = None;
                    standby_until = None;
                }
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Where `record`'s delivery stands, with this process's claim on it (see
    /// [`Cursors::claim`]); a subscription not started yet (its adder stopped before recording
    /// it) starts after the event that added it, found in the tenant's log, unless the log
    /// says it was removed since.
    async fn delivery(
        &self,
        tenant: &TenantName,
        record: &WebhookRecord,
    ) -> Result<Delivery, DeliveryError> {
        if let Some(delivery) = self.cursors.claim(tenant, &record.id).await? {
            return Ok(delivery);
        }
        let mut from = 1;
        let mut added = None;
        loop {
            let read = self.read(tenant, from).await?;
            for event in &read.events {
                match &event.payload {
                    EventPayload::WebhookAdded { webhook_id, .. } if *webhook_id == record.id => {
                        added = Some(event.sequence);
                    }
                    EventPayload::WebhookRemoved { webhook_id, .. } if *webhook_id == record.id => {
                        // As if another process delivered it: look again later, by when this
                        // process's view shows the removal too.
                        return Err(CursorError::Lost(record.id).into());
                    }
                    _ => {}
                }
            }
            if read.events.is_empty() {
                break;
            }
            from = read.next;
        }
        let added = added.ok_or(DeliveryError::NotStarted(record.id))?;
        self.cursors.start_after(tenant, &record.id, added).await?;
        Ok(self
            .cursors
            .claim(tenant, &record.id)
            .await?
            .ok_or(CursorError::Lost(record.id))?)
    }

    async fn read(
        &self,
        tenant: &TenantName,
        from: u64,
    ) -> Result<roster_engine::log::TenantRead, DeliveryError> {
        let log = self.engine.log().clone();
        let tenant = tenant.clone();
        tokio::task::spawn_blocking(move || log.read_tenant(&tenant, from, READ_EVENTS, READ_BYTES))
            .await
            .map_err(|error| DeliveryError::Log(error.to_string()))?
            .map_err(|error| DeliveryError::Log(error.to_string()))
    }

    /// Looks at the events after the cursor (renewing this process's claim): delivers them in
    /// order until one fails or the batch ends.
    async fn deliver_some(
        &self,
        tenant: &TenantName,
        record: &WebhookRecord,
        woken: &watch::Receiver<()>,
    ) -> Result<Progress, DeliveryError> {
        let mut delivery = self.delivery(tenant, record).await?;
        // A schedule used up belongs to a webhook that was failing: resumed, it starts again.
        if usize::try_from(delivery.attempts).unwrap_or(usize::MAX)
            > self.settings.retry_schedule.len()
        {
            delivery.attempts = 0;
            delivery.next_attempt_at = None;
        }
        let progress = |delivery: &Delivery, more: bool| Progress {
            delivered_through: delivery.delivered_through,
            retry_at: delivery.next_attempt_at,
            more,
        };
        if delivery
            .next_attempt_at
            .is_some_and(|at| at > wall_micros())
        {
            return Ok(progress(&delivery, false));
        }
        let from = delivery.delivered_through + 1;
        if from > self.engine.log().durable_head() {
            return Ok(progress(&delivery, false));
        }
        let read = self.read(tenant, from).await?;
        let mut current = record.clone();
        let mut current_read = tokio::time::Instant::now();
        let mut cursor_written = tokio::time::Instant::now();
        for event in &read.events {
            if !record.selects(event.payload.event_type()) {
                delivery.delivered_through = event.sequence;
                continue;
            }
            // The record as it is now: read again when it changed (this process wakes the worker
            // at once) and at least every second (a change made through another process).
            if woken.has_changed().unwrap_or(true) || current_read.elapsed() >= RECORD_RECHECK {
                current = match self.record(tenant, &record.id) {
                    Ok(Some(current)) => current,
                    Ok(None) => return Ok(progress(&delivery, true)),
                    Err(()) => current,
                };
                current_read = tokio::time::Instant::now();
            }
            match self.attempt(tenant, &current, event, &mut delivery).await? {
                Outcome::Delivered => {
                    delivery.delivered_through = event.sequence;
                    delivery.delivered_total += 1;
                    delivery.attempts = 0;
                    delivery.next_attempt_at = None;
                    // Written at most every CURSOR_EVERY while a batch flows (and at its end):
                    // a crash resends at most that much, with the same ids.
                    if cursor_written.elapsed() >= CURSOR_EVERY {
                        self.cursors.put(tenant, &record.id, &delivery).await?;
                        cursor_written = tokio::time::Instant::now();
                    }
                }
                Outcome::Held => {
                    self.cursors.put(tenant, &record.id, &delivery).await?;
                    return Ok(progress(&delivery, false));
                }
                Outcome::Retry => {
                    self.cursors.put(tenant, &record.id, &delivery).await?;
                    return Ok(progress(&delivery, false));
                }
                Outcome::Gone => {
                    self.cursors.put(tenant, &record.id, &delivery).await?;
                    self.decide(
                        tenant,
                        Command::RemoveWebhook {
                            webhook_id: record.id,
                            reason: "the receiver answered 410 Gone".to_owned(),
                        },
                    )
                    .await?;
                    return Ok(progress(&delivery, true));
                }
                Outcome::GaveUp(reason) => {
                    self.cursors.put(tenant, &record.id, &delivery).await?;
                    warn!(%tenant, webhook = %record.id, url = %record.url, %reason, "webhook failing: deliveries wait until it is resumed (roster webhook resume)");
                    self.decide(
                        tenant,
                        Command::SetWebhookStatus {
                            webhook_id: record.id,
                            status: WebhookStatus::Failing,
                            reason,
                        },
                    )
                    .await?;
                    return Ok(progress(&delivery, true));
                }
            }
        }
        delivery.delivered_through = delivery.delivered_through.max(read.next.saturating_sub(1));
        self.cursors.put(tenant, &record.id, &delivery).await?;
        Ok(progress(&delivery, !read.events.is_empty()))
    }

    async fn decide(&self, tenant: &TenantName, command: Command) -> Result<(), DeliveryError> {
        let context = CommandContext {
            now: self.clock.now(),
            actor: Actor::system(),
            source: Default::default(),
            causation_id: format!("webhook-delivery-{}", uuid::Uuid::now_v7()),
        };
        self.engine
            .execute(tenant, command, context)
            .await
            .map(|_| ())
            .map_err(|error| DeliveryError::Engine(error.chain()))
    }

    /// One attempt at `event`; a failure records when the next one is due.
    async fn attempt(
        &self,
        tenant: &TenantName,
        current: &WebhookRecord,
        event: &Event,
        delivery: &mut Delivery,
    ) -> Result<Outcome, DeliveryError> {
        let body = match self.bodies.body(event) {
            Ok(body) => body,
            Err(error) => return Ok(Outcome::GaveUp(format!("cannot render the event: {error}"))),
        };
        let Ok(_permit) = self.in_flight.acquire().await else {
            return Ok(Outcome::Held);
        };
        // Send only while still active and (on JetStream) still holding the lease, renewed now
        // unless written moments ago: the wait for a permit may have been long.
        if current.status != WebhookStatus::Active {
            return Ok(Outcome::Held);
        }
        match self
            .cursors
            .renew_unless_fresh(tenant, &current.id, delivery, LEASE_FRESH)
            .await
        {
            Ok(()) => {}
            Err(CursorError::Lost(_)) => return Ok(Outcome::Held),
            Err(error) => return Err(error.into()),
        }
        let secrets: Vec<[u8; 32]> = current
            .signing_generations(self.clock.now())
            .into_iter()
            .map(|generation| self.keys.secret(&current.id, generation))
            .collect();
        let answer = http::post(
            &self.client,
            &current.url,
            &event.id.to_string(),
            &secrets,
            body,
            self.settings.timeout.min(TIMEOUT_MAX),
        )
        .await;
        let failure = match answer {
            Ok(answer) if answer.status.is_success() => {
                self.counts.delivered.fetch_add(1, Ordering::Relaxed);
                let micros = self.clock.now().as_micros() - event.recorded_at.as_micros();
                let micros = u64::try_from(micros).unwrap_or(0);
                (self.on_delivered)(micros as f64 / 1e6);
                return Ok(Outcome::Delivered);
            }
            Ok(answer) if answer.status.as_u16() == 410 => return Ok(Outcome::Gone),
            Ok(answer) => answer.failure(),
            Err(error) => http::Failed {
                status: 0,
                error,
                retry_after: None,
            },
        };
        self.counts.failed_attempts.fetch_add(1, Ordering::Relaxed);
        delivery.attempts = delivery.attempts.saturating_add(1);
        delivery.failed_attempts_total += 1;
        delivery.last_failure = Some(Failure {
            status: failure.status,
            error: failure.error.clone(),
            at: self.clock.now().as_micros(),
        });
        let attempts = usize::try_from(delivery.attempts).unwrap_or(usize::MAX);
        let Some(wait) = self.settings.retry_schedule.get(attempts - 1).copied() else {
            delivery.next_attempt_at = None;
            return Ok(Outcome::GaveUp(format!(
                "{} attempts at event {} failed; the last: {}",
                attempts,
                event.sequence,
                failure.describe()
            )));
        };
        let wait = wait.min(RETRY_WAIT_MAX);
        let wait = jittered(wait).max(
            failure
                .retry_after
                .unwrap_or_default()
                .min(wait.saturating_mul(4)),
        );
        delivery.next_attempt_at =
            Some(wall_micros().saturating_add(i64::try_from(wait.as_micros()).unwrap_or(i64::MAX)));
        warn!(%tenant, webhook = %current.id, sequence = event.sequence, attempts, failure = %failure.describe(), retry_in = ?wait, "webhook delivery failed; retrying");
        Ok(Outcome::Retry)
    }
}

/// Most bytes of rendered bodies kept for other webhooks of the same tenant.
const BODY_CACHE_BYTES: usize = 8 * 1024 * 1024;

/// Request bodies by event id, the most recent first out of [`BODY_CACHE_BYTES`].
#[derive(Default)]
struct BodyCache {
    inner: std::sync::Mutex<BodyCacheInner>,
}

#[derive(Default)]
struct BodyCacheInner {
    bodies: HashMap<uuid::Uuid, bytes::Bytes>,
    order: std::collections::VecDeque<uuid::Uuid>,
    bytes: usize,
}

impl BodyCache {
    fn body(&self, event: &Event) -> Result<bytes::Bytes, String> {
        if let Ok(cache) = self.inner.lock()
            && let Some(body) = cache.bodies.get(&event.id)
        {
            return Ok(body.clone());
        }
        let body = http::body(event)?;
        if let Ok(mut cache) = self.inner.lock()
            && !cache.bodies.contains_key(&event.id)
        {
            cache.bytes += body.len();
            cache.bodies.insert(event.id, body.clone());
            cache.order.push_back(event.id);
            while cache.bytes > BODY_CACHE_BYTES {
                let Some(oldest) = cache.order.pop_front() else {
                    break;
                };
                if let Some(dropped) = cache.bodies.remove(&oldest) {
                    cache.bytes -= dropped.len();
                }
            }
        }
        Ok(body)
    }
}

/// What a look at a webhook's events left.
struct Progress {
    delivered_through: u64,
    /// When the next attempt is due (wall clock, Unix microseconds), while retrying.
    retry_at: Option<i64>,
    /// Whether to look again at once.
    more: bool,
}

/// `wait` give or take 20 %, so that receivers coming back are not hit by every retry at once.
fn jittered(wait: Duration) -> Duration {
    wait.mul_f64(rand::random_range(0.8..1.2))
}

/// A failed attempt as the Admin service shows it.
pub fn describe_failure(failure: &Failure) -> String {
    http::Failed {
        status: failure.status,
        error: failure.error.clone(),
        retry_after: None,
    }
    .describe()
}
