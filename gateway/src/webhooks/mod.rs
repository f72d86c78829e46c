//! Webhook delivery (Standard Webhooks 1.0): one worker per subscription follows its tenant's
//! durable events from the subscription's cursor ([`cursor`]) and POSTs each selected event, one
//! per request, signed with the subscription's secrets ([`keys`]), in log order. A 2xx moves the
//! cursor; anything else is retried on the schedule, with jitter, honouring `Retry-After`; `410
//! Gone` removes the subscription; a schedule exhausted makes it `failing` (an event, so the
//! audit trail and every admin see it) with its cursor kept, and resuming delivers everything
//! since. Which subscriptions exist and their status are the tenant record's (decided by the
//! engine); this module only delivers.

pub mod cursor;
mod http;
pub mod keys;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use roster_engine::clock::SharedClock;
use roster_engine::domain::{
    Actor, Command, Event, TenantName, WebhookId, WebhookRecord, WebhookStatus,
};
use roster_engine::engine::{CommandContext, Engine};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};

pub use cursor::{CursorError, Cursors, Delivery, Failure, LEASE_RENEW};
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
    /// Microseconds from an event's `recorded_at` to its acknowledgement, summed, and how many.
    pub latency_micros_sum: AtomicU64,
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
    /// Delivery latencies in seconds, observed as they happen.
    on_delivered: Box<dyn Fn(f64) + Send + Sync>,
}

struct Worker {
    tenant: TenantName,
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
        for (webhook, worker) in workers {
            worker.task.abort();
            let _ = worker.task.await;
            self.inner.cursors.release(&worker.tenant, &webhook).await;
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
        // Workers of this tenant learn of a removal, a pause or a rotation when woken.
        for worker in workers.values().filter(|worker| worker.tenant == *tenant) {
            let _ = worker.wake.send(());
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
                    wake,
                    task,
                },
            );
        }
    }
}

/// How one event's delivery ended.
enum Outcome {
    Delivered,
    /// The subscription is no longer active (paused, failing, removed): look at it again.
    Held,
    /// The receiver answered 410 Gone.
    Gone,
    /// The schedule is used up.
    GaveUp(String),
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

    /// Delivers `webhook`'s events until it is removed.
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
        loop {
            let Ok(record) = self.record(&tenant, &webhook) else {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            };
            let Some(record) = record else {
                let _ = self.cursors.remove(&tenant, &webhook).await;
                info!(%tenant, %webhook, "webhook removed: delivery stopped");
                return;
            };
            if record.status == WebhookStatus::Active {
                match self.deliver_some(&tenant, &record, &mut woken).await {
                    Ok(true) => continue,
                    Ok(false) => {}
                    // Another process delivers it; look again when its lease may have lapsed.
                    Err(CursorError::Lost(_)) => {}
                    Err(error) => {
                        warn!(%tenant, %webhook, %error, "webhook delivery paused by an error; retrying in a second");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                }
            }
            tokio::select! {
                changed = durable.changed() => if changed.is_err() { return },
                changed = woken.changed() => if changed.is_err() { return },
                () = tokio::time::sleep(idle) => {}
            }
        }
    }

    /// Where `record`'s delivery stands, with this process's claim on it (see
    /// [`Cursors::claim`]); a subscription not started yet (its adder stopped before recording
    /// it) starts after the event that added it, found in the tenant's log.
    async fn delivery(
        &self,
        tenant: &TenantName,
        record: &WebhookRecord,
    ) -> Result<Delivery, CursorError> {
        if let Some(delivery) = self.cursors.claim(tenant, &record.id).await? {
            return Ok(delivery);
        }
        let mut from = 1;
        let added = loop {
            let read = self.read(tenant, from).await?;
            if let Some(event) = read.events.iter().find(|event| {
                matches!(&event.payload, roster_engine::domain::EventPayload::WebhookAdded { webhook_id, .. } if *webhook_id == record.id)
            }) {
                break event.sequence;
            }
            if read.events.is_empty() {
                return Err(CursorError::Shared(format!(
                    "the event that added webhook {} is not in the log yet",
                    record.id
                )));
            }
            from = read.next;
        };
        self.cursors.start_after(tenant, &record.id, added).await?;
        self.cursors
            .claim(tenant, &record.id)
            .await?
            .ok_or(CursorError::Lost(record.id))
    }

    async fn read(
        &self,
        tenant: &TenantName,
        from: u64,
    ) -> Result<roster_engine::log::TenantRead, CursorError> {
        let log = self.engine.log().clone();
        let tenant = tenant.clone();
        tokio::task::spawn_blocking(move || log.read_tenant(&tenant, from, READ_EVENTS, READ_BYTES))
            .await
            .map_err(|error| CursorError::Shared(error.to_string()))?
            .map_err(|error| CursorError::Shared(error.to_string()))
    }

    /// Delivers the next events after the cursor. `Ok(true)`: there may be more now.
    async fn deliver_some(
        &self,
        tenant: &TenantName,
        record: &WebhookRecord,
        woken: &mut watch::Receiver<()>,
    ) -> Result<bool, CursorError> {
        let mut delivery = self.delivery(tenant, record).await?;
        let from = delivery.delivered_through + 1;
        if from > self.engine.log().durable_head() {
            return Ok(false);
        }
        let read = self.read(tenant, from).await?;
        for event in &read.events {
            if !record.selects(event.payload.event_type()) {
                delivery.delivered_through = event.sequence;
                continue;
            }
            match self
                .deliver(tenant, record, event, &mut delivery, woken)
                .await
            {
                Outcome::Delivered => {
                    delivery.delivered_through = event.sequence;
                    delivery.delivered_total += 1;
                    delivery.attempts = 0;
                    delivery.next_attempt_at = None;
                    self.save(tenant, record, &delivery).await?;
                }
                Outcome::Held => {
                    self.save(tenant, record, &delivery).await?;
                    return Ok(true);
                }
                Outcome::Gone => {
                    self.save(tenant, record, &delivery).await?;
                    self.decide(
                        tenant,
                        Command::RemoveWebhook {
                            webhook_id: record.id,
                            reason: "the receiver answered 410 Gone".to_owned(),
                        },
                    )
                    .await?;
                    return Ok(true);
                }
                Outcome::GaveUp(reason) => {
                    self.save(tenant, record, &delivery).await?;
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
                    return Ok(true);
                }
            }
        }
        delivery.delivered_through = delivery.delivered_through.max(read.next.saturating_sub(1));
        self.save(tenant, record, &delivery).await?;
        Ok(true)
    }

    async fn save(
        &self,
        tenant: &TenantName,
        record: &WebhookRecord,
        delivery: &Delivery,
    ) -> Result<(), CursorError> {
        self.cursors.put(tenant, &record.id, delivery).await
    }

    async fn decide(&self, tenant: &TenantName, command: Command) -> Result<(), CursorError> {
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
            .map_err(|error| CursorError::Shared(error.to_string()))
    }

    /// Delivers one event, retrying on the schedule while the subscription stays active.
    async fn deliver(
        &self,
        tenant: &TenantName,
        record: &WebhookRecord,
        event: &Event,
        delivery: &mut Delivery,
        woken: &mut watch::Receiver<()>,
    ) -> Outcome {
        let body = match http::body(event) {
            Ok(body) => body,
            Err(error) => return Outcome::GaveUp(format!("cannot render the event: {error}")),
        };
        let message_id = event.id.to_string();
        let mut attempts: usize = 0;
        loop {
            // Each attempt signs with the secrets valid now (a rotation may have happened).
            let current = match self.record(tenant, &record.id) {
                Ok(Some(current)) if current.status == WebhookStatus::Active => current,
                Ok(_) => return Outcome::Held,
                Err(()) => record.clone(),
            };
            let signing_at = self.clock.now();
            let secrets: Vec<[u8; 32]> = current
                .signing_generations(signing_at)
                .into_iter()
                .map(|generation| self.keys.secret(&current.id, generation))
                .collect();
            let answer = {
                let Ok(_permit) = self.in_flight.acquire().await else {
                    return Outcome::Held;
                };
                http::post(
                    &self.client,
                    &current.url,
                    &message_id,
                    &secrets,
                    body.clone(),
                    self.settings.timeout,
                )
                .await
            };
            let failure = match answer {
                Ok(answer) if answer.status.is_success() => {
                    self.counts.delivered.fetch_add(1, Ordering::Relaxed);
                    let micros = self.clock.now().as_micros() - event.recorded_at.as_micros();
                    let micros = u64::try_from(micros).unwrap_or(0);
                    self.counts
                        .latency_micros_sum
                        .fetch_add(micros, Ordering::Relaxed);
                    (self.on_delivered)(micros as f64 / 1e6);
                    return Outcome::Delivered;
                }
                Ok(answer) if answer.status.as_u16() == 410 => return Outcome::Gone,
                Ok(answer) => answer.failure(),
                Err(error) => http::Failed {
                    status: 0,
                    error,
                    retry_after: None,
                },
            };
            self.counts.failed_attempts.fetch_add(1, Ordering::Relaxed);
            attempts += 1;
            delivery.attempts = u32::try_from(attempts).unwrap_or(u32::MAX);
            delivery.failed_attempts_total += 1;
            delivery.last_failure = Some(Failure {
                status: failure.status,
                error: failure.error.clone(),
                at: self.clock.now().as_micros(),
            });
            let Some(wait) = self.settings.retry_schedule.get(attempts - 1).copied() else {
                delivery.next_attempt_at = None;
                return Outcome::GaveUp(format!(
                    "{} attempts at event {} failed; the last: {}",
                    attempts,
                    event.sequence,
                    failure.describe()
                ));
            };
            let wait = jittered(wait).max(failure.retry_after.unwrap_or_default().min(wait * 4));
            delivery.next_attempt_at = Some(
                self.clock
                    .now()
                    .as_micros()
                    .saturating_add(i64::try_from(wait.as_micros()).unwrap_or(i64::MAX)),
            );
            if let Err(CursorError::Lost(_)) = self.cursors.put(tenant, &record.id, delivery).await
            {
                return Outcome::Held;
            }
            warn!(%tenant, webhook = %record.id, sequence = event.sequence, attempts, failure = %failure.describe(), retry_in = ?wait, "webhook delivery failed; retrying");
            // Wait, renewing the lease on JetStream, until the retry is due or something changes.
            let due = tokio::time::Instant::now() + wait;
            loop {
                let step = due.saturating_duration_since(tokio::time::Instant::now());
                if step.is_zero() {
                    break;
                }
                tokio::select! {
                    () = tokio::time::sleep(step.min(LEASE_RENEW)) => {}
                    changed = woken.changed() => {
                        if changed.is_err() { return Outcome::Held }
                        break;
                    }
                }
                if self.cursors.is_shared()
                    && let Err(CursorError::Lost(_)) =
                        self.cursors.put(tenant, &record.id, delivery).await
                {
                    return Outcome::Held;
                }
            }
        }
    }
}

/// `wait` give or take 20 %, so that receivers coming back are not hit by every retry at once.
fn jittered(wait: Duration) -> Duration {
    wait.mul_f64(rand::random_range(0.8..1.2))
}

/// The JSON body of one event's delivery: `{"type", "timestamp", "data"}`, `data` the event's
/// JSON form.
pub fn body(event: &Event) -> Result<bytes::Bytes, String> {
    http::body(event)
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
