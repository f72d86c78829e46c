//! Delivering a stream's SETs from the tenant's durable events, at least once and in order,
//! from the stream's cursor (kept beside the webhooks' in [`crate::webhooks::Cursors`]).
//!
//! - **Push** (RFC 8935): one worker per push stream POSTs each SET
//!   (`application/secevent+jwt`, the receiver's `authorization_header` every time) and moves
//!   the cursor on `202` (any 2xx). Failures are retried on the webhooks' schedule with jitter;
//!   when it is used up roster pauses the stream (the receiver sees why in its status, and a
//!   `stream-updated` SET once enabled again): nothing is dropped. On NATS one process delivers
//!   each stream, under the cursor's lease.
//! - **Poll** (RFC 8936): a poll acknowledges (`ack`, `setErrs`), then answers the SETs handed
//!   out and not acknowledged (the same bytes again) and new ones, at most `maxEvents`; with
//!   nothing to say and `returnImmediately` false it waits for events up to [`LONG_POLL`]. Any
//!   process answers: the state is written by compare-and-set.
//! - Status: `enabled` delivers; `paused` holds everything (the cursor stays); `disabled` drops
//!   what happens until the stream is enabled again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use roster_engine::domain::{
    Actor, Command, Event, EventPayload, SsfDelivery, SsfStreamId, SsfStreamRecord,
    SsfStreamStatus, TenantName, UserId, WebhookId,
};
use roster_engine::engine::{CommandContext, Engine};
use roster_projector::DirectoryView;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::Ssf;
use super::set::{ClaimsChange, Recorded, SetDraft, Subjects};
use crate::webhooks::{CursorError, Cursors, Failure, LEASE_RENEW, WebhookSettings};

/// Longest a poll waits for events.
pub const LONG_POLL: Duration = Duration::from_secs(30);
/// Most SETs in one poll answer (when `maxEvents` asks for more or is absent).
pub const POLL_MAX: usize = 100;
/// Most SETs handed out and not acknowledged: beyond, polls only send those again.
pub const PENDING_MAX: usize = 100;
/// Most users one event's role change is looked at for (`token-claims-change`).
const CLAIMS_USERS_MAX: usize = 10_000;
/// Most events read at once.
const READ_EVENTS: usize = 256;
const READ_BYTES: usize = 4 * 1024 * 1024;
/// How often every stream is looked at again.
const RECONCILE_EVERY: Duration = Duration::from_secs(10);
/// Longest poll request body.
const POLL_BODY_MAX: usize = 256 * 1024;

/// The cursor key of a stream (stream ids and webhook ids are both UUIDv7s: they never meet).
fn cursor_key(id: &SsfStreamId) -> WebhookId {
    WebhookId(id.0)
}

/// The delivery service; cheap to clone.
#[derive(Clone)]
pub struct Transmitter {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    directory: DirectoryView,
    projector: roster_projector::Projector,
    ssf: Arc<Ssf>,
    cursors: Cursors,
    client: crate::webhooks::http::Client,
    settings: WebhookSettings,
    workers: std::sync::Mutex<HashMap<SsfStreamId, Worker>>,
    counts: crate::webhooks::WebhookCounts,
    /// Push latencies in seconds, observed as they happen.
    on_delivered: Box<dyn Fn(f64) + Send + Sync>,
    /// Polls of one stream on this process answer one at a time.
    polls: std::sync::Mutex<HashMap<SsfStreamId, Arc<tokio::sync::Mutex<()>>>>,
}

struct Worker {
    tenant: TenantName,
    seen: SsfStreamRecord,
    wake: watch::Sender<()>,
    task: JoinHandle<()>,
}

/// The subjects of users, as the aggregate knows them now.
struct AggregateSubjects<'a> {
    engine: &'a Engine,
    tenant: &'a TenantName,
}

impl Subjects for AggregateSubjects<'_> {
    fn subject(&self, user: &UserId, user_name: &str, recorded: Option<Recorded<'_>>) -> Value {
        if let Some(recorded) = recorded {
            return super::set::subject_of(user, recorded.email, recorded.sso);
        }
        // Events written before lifecycle events recorded these, and claims changes: the user
        // as the aggregate holds them now.
        let record = self
            .engine
            .aggregate()
            .user(self.tenant, user)
            .ok()
            .flatten();
        let email = record
            .as_ref()
            .and_then(|record| record.profile.primary_email())
            // A deleted user is gone from the aggregate: their userName is their email when it
            // is one (Entra's UPN, Okta's login).
            .or_else(|| user_name.contains('@').then(|| user_name.to_owned()));
        let sso = record.as_ref().and_then(|record| record.sso_identity());
        super::set::subject_of(user, email.as_deref(), sso.as_ref())
    }
}

/// What a walk over a stream's events produced.
struct Walk {
    /// SETs in order, each with the sequence of its event.
    sets: Vec<(u64, SetDraft)>,
    /// Every event through this sequence was looked at.
    through: u64,
    /// Whether the stream was disabled at `through`.
    disabled: bool,
    /// The subjects removed from the stream at `through`.
    removed: Vec<String>,
    /// The stream's state after each of its own status or subject events on the way (sequence,
    /// disabled, removed subjects): where a push stops midway, its state there is known.
    changes: Vec<(u64, bool, Vec<String>)>,
}

impl Walk {
    /// Whether the stream was disabled, and its removed subjects, at `sequence` (at least the
    /// walk's start), given the state it started from.
    fn state_at(&self, sequence: u64, start: (bool, &[String])) -> (bool, Vec<String>) {
        match self.changes.iter().rev().find(|(at, _, _)| *at <= sequence) {
            Some((_, disabled, removed)) => (*disabled, removed.clone()),
            None => (start.0, start.1.to_vec()),
        }
    }
}

impl Transmitter {
    pub fn start(
        engine: Engine,
        directory: DirectoryView,
        projector: roster_projector::Projector,
        ssf: Arc<Ssf>,
        cursors: Cursors,
        settings: WebhookSettings,
        on_delivered: Box<dyn Fn(f64) + Send + Sync>,
    ) -> Result<(Self, JoinHandle<()>), rustls::Error> {
        let transmitter = Self {
            inner: Arc::new(Inner {
                engine,
                directory,
                projector,
                ssf,
                cursors,
                client: crate::webhooks::http::client()?,
                settings,
                workers: std::sync::Mutex::default(),
                counts: crate::webhooks::WebhookCounts::default(),
                on_delivered,
                polls: std::sync::Mutex::default(),
            }),
        };
        let supervisor = {
            let transmitter = transmitter.clone();
            tokio::spawn(async move {
                let mut every = tokio::time::interval(RECONCILE_EVERY);
                loop {
                    every.tick().await;
                    transmitter.reconcile_all();
                }
            })
        };
        Ok((transmitter, supervisor))
    }

    /// A new stream delivers the events after `sequence` (the event that created it).
    pub async fn start_after(&self, tenant: &TenantName, stream: &SsfStreamId, sequence: u64) {
        if let Err(error) = self
            .inner
            .cursors
            .start_after(tenant, &cursor_key(stream), sequence)
            .await
        {
            warn!(%tenant, %stream, %error, "could not record where a new stream starts");
        }
    }

    /// SETs acknowledged and pushes failed since the start, for `/metrics`.
    pub fn counts(&self) -> &crate::webhooks::WebhookCounts {
        &self.inner.counts
    }

    /// Where `stream`'s delivery stands.
    pub async fn delivery(
        &self,
        tenant: &TenantName,
        stream: &SsfStreamId,
    ) -> Option<crate::webhooks::Delivery> {
        self.inner
            .cursors
            .get(tenant, &cursor_key(stream))
            .await
            .ok()
            .flatten()
    }

    /// `tenant`'s streams changed: start, wake or stop its push workers now.
    pub fn changed(&self, tenant: &TenantName) {
        match self.inner.engine.aggregate().tenant(tenant) {
            Ok(record) => {
                let streams = record.map(|record| record.ssf_streams).unwrap_or_default();
                self.reconcile(tenant, &streams);
            }
            Err(error) => warn!(%tenant, %error, "cannot read the tenant's streams"),
        }
    }

    /// Stops every push worker and gives their leases up.
    pub async fn stop(&self) {
        let workers: Vec<(SsfStreamId, Worker)> = match self.inner.workers.lock() {
            Ok(mut workers) => workers.drain().collect(),
            Err(_) => Vec::new(),
        };
        for (stream, worker) in workers {
            worker.task.abort();
            let _ = worker.task.await;
            self.inner
                .cursors
                .release(&worker.tenant, &cursor_key(&stream))
                .await;
        }
    }

    fn reconcile_all(&self) {
        let Ok(tenants) = self.inner.engine.aggregate().tenants() else {
            return;
        };
        for (tenant, record) in tenants {
            self.reconcile(&tenant, &record.ssf_streams);
        }
    }

    fn reconcile(&self, tenant: &TenantName, streams: &[SsfStreamRecord]) {
        let Ok(mut workers) = self.inner.workers.lock() else {
            return;
        };
        workers.retain(|_, worker| !worker.task.is_finished());
        for (id, worker) in workers.iter_mut() {
            if worker.tenant != *tenant {
                continue;
            }
            match streams.iter().find(|stream| stream.id == *id) {
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
        for stream in streams {
            let push = matches!(stream.config.delivery, SsfDelivery::Push { .. });
            if !push || workers.contains_key(&stream.id) {
                continue;
            }
            let (wake, woken) = watch::channel(());
            let task =
                tokio::spawn(Arc::clone(&self.inner).push_all(tenant.clone(), stream.id, woken));
            workers.insert(
                stream.id,
                Worker {
                    tenant: tenant.clone(),
                    seen: stream.clone(),
                    wake,
                    task,
                },
            );
        }
    }
}

fn wall_micros() -> i64 {
    i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000).unwrap_or(0)
}

/// `wait` give or take 20 %.
fn jittered(wait: Duration) -> Duration {
    wait.mul_f64(rand::random_range(0.8..1.2))
}

impl Inner {
    fn stream(&self, tenant: &TenantName, id: &SsfStreamId) -> Result<Option<SsfStreamRecord>, ()> {
        match self.engine.aggregate().tenant(tenant) {
            Ok(record) => Ok(record.and_then(|record| record.ssf_stream(id).cloned())),
            Err(error) => {
                warn!(%tenant, stream = %id, %error, "cannot read a stream");
                Err(())
            }
        }
    }

    async fn read(
        &self,
        tenant: &TenantName,
        from: u64,
    ) -> Result<roster_engine::log::TenantRead, String> {
        let log = self.engine.log().clone();
        let tenant = tenant.clone();
        tokio::task::spawn_blocking(move || log.read_tenant(&tenant, from, READ_EVENTS, READ_BYTES))
            .await
            .map_err(|error| error.to_string())?
            .map_err(|error| error.to_string())
    }

    /// The users whose role `event` lowered or removed, with their access after it.
    async fn claims_changes(&self, event: &Event) -> Vec<ClaimsChange> {
        if !super::set::may_lower_roles(&event.payload) {
            return Vec::new();
        }
        // The access views must have folded the event in.
        if tokio::time::timeout(
            Duration::from_secs(10),
            self.projector.wait_for(event.sequence),
        )
        .await
        .is_err()
        {
            warn!(
                sequence = event.sequence,
                "access views lag: token-claims-change skipped for this event"
            );
            return Vec::new();
        }
        let tenant = &event.tenant;
        let before = roster_engine::domain::Timestamp::from_micros(event.recorded_at.as_micros());
        let members = |group: &roster_engine::domain::GroupId, at| {
            self.directory
                .members_at(tenant, group, at, None, CLAIMS_USERS_MAX)
                .unwrap_or_default()
        };
        let just_before = before.plus_micros(-1);
        let users: Vec<UserId> = match &event.payload {
            EventPayload::GroupMembersRemoved { user_ids, .. } => user_ids.clone(),
            EventPayload::GroupDeleted { group_id, .. } => members(group_id, just_before),
            EventPayload::RoleMappingSet { group_id, .. }
            | EventPayload::RoleMappingRemoved { group_id } => members(group_id, before),
            EventPayload::ResourceGroupLinkRoleChanged { group_id, .. }
            | EventPayload::ResourceGroupUnlinked { group_id, .. } => members(group_id, before),
            EventPayload::ResourceGroupMemberSet { user_id, .. }
            | EventPayload::ResourceGroupMemberRemoved { user_id, .. }
            | EventPayload::UserClaimRoleChanged { user_id, .. } => vec![*user_id],
            _ => Vec::new(),
        };
        let mut changes = Vec::new();
        for user in users.into_iter().take(CLAIMS_USERS_MAX) {
            let access = |sequence| {
                self.directory
                    .access_at_event(tenant, &user, event.recorded_at, sequence)
                    .ok()
                    .flatten()
            };
            let (Some(was), Some(now)) = (access(event.sequence - 1), access(event.sequence))
            else {
                continue;
            };
            let role = |grant: &Option<roster_projector::access::Grant>| {
                grant.as_ref().map(|grant| grant.role)
            };
            let org_lowered = role(&was.org_role) > role(&now.org_role);
            let resource_lowered = was.resource_groups.iter().any(|(group, grant)| {
                now.resource_groups
                    .get(group)
                    .is_none_or(|after| after.role < grant.role)
            });
            if !org_lowered && !resource_lowered {
                continue;
            }
            let resource_roles: serde_json::Map<String, Value> = now
                .resource_groups
                .iter()
                .map(|(group, grant)| (group.to_string(), json!(grant.role.as_str())))
                .collect();
            let user_name = self
                .engine
                .aggregate()
                .user(tenant, &user)
                .ok()
                .flatten()
                .map(|record| record.profile.user_name)
                .unwrap_or_default();
            changes.push(ClaimsChange {
                user,
                user_name,
                claims: json!({
                    "org_role": role(&now.org_role).map(|role| role.as_str()),
                    "resource_group_roles": resource_roles,
                }),
            });
        }
        changes
    }

    /// The SETs of the events after `from` (one read's worth), for `stream` as it is now, with
    /// the stream's disabled state and removed subjects as of each event. Stops before an event
    /// whose SETs would take the count past `max_sets` (unless it is the first with any), so the
    /// state returned is exactly that at `through`.
    async fn walk(
        &self,
        tenant: &TenantName,
        stream: &SsfStreamRecord,
        from: u64,
        mut disabled: bool,
        mut removed: Vec<String>,
        max_sets: usize,
    ) -> Result<Walk, String> {
        let read = self.read(tenant, from).await?;
        let issuer = self.ssf.issuer(tenant);
        let subjects = AggregateSubjects {
            engine: &self.engine,
            tenant,
        };
        let mut sets: Vec<(u64, SetDraft)> = Vec::new();
        let mut changes = Vec::new();
        let mut through = from.saturating_sub(1);
        let mut complete = true;
        for event in &read.events {
            let mine = |id: &SsfStreamId| *id == stream.id;
            let drafts = match &event.payload {
                // The announcement of a change by the transmitter goes out whatever it was.
                EventPayload::SsfStreamStatusChanged { stream_id, .. } if mine(stream_id) => {
                    super::set::drafts(stream, &issuer, event, &subjects, &[])
                }
                EventPayload::SsfSubjectChanged { stream_id, .. } if mine(stream_id) => Vec::new(),
                // Disabled (then, or now): dropped.
                _ if disabled || stream.status == SsfStreamStatus::Disabled => Vec::new(),
                _ => {
                    let claims = self.claims_changes(event).await;
                    super::set::drafts(stream, &issuer, event, &subjects, &claims)
                        .into_iter()
                        .filter(|draft| {
                            draft.event_type == roster_engine::domain::ssf::SSF_VERIFICATION
                                || draft.event_type
                                    == roster_engine::domain::ssf::SSF_STREAM_UPDATED
                                || roster_engine::domain::ssf::includes_subject(
                                    &removed,
                                    &draft.claims["sub_id"],
                                )
                        })
                        .collect()
                }
            };
            if !sets.is_empty() && sets.len() + drafts.len() > max_sets {
                complete = false;
                break;
            }
            match &event.payload {
                EventPayload::SsfStreamStatusChanged {
                    stream_id, status, ..
                } if mine(stream_id) => {
                    disabled = *status == SsfStreamStatus::Disabled;
                    changes.push((event.sequence, disabled, removed.clone()));
                }
                EventPayload::SsfSubjectChanged {
                    stream_id,
                    subject,
                    removed: removing,
                } if mine(stream_id) => {
                    removed.retain(|listed| listed != subject);
                    if *removing {
                        removed.push(subject.clone());
                    }
                    changes.push((event.sequence, disabled, removed.clone()));
                }
                _ => {}
            }
            through = event.sequence;
            sets.extend(drafts.into_iter().map(|draft| (event.sequence, draft)));
        }
        if complete {
            // Past events of other tenants the read stepped over.
            through = through.max(read.next.saturating_sub(1));
        }
        Ok(Walk {
            sets,
            through,
            disabled,
            removed,
            changes,
        })
    }

    async fn sign(&self, draft: &SetDraft) -> Result<String, String> {
        let mut claims = draft.claims.clone();
        claims["iat"] = json!(time::OffsetDateTime::now_utc().unix_timestamp());
        self.ssf
            .signing
            .sign(&claims)
            .await
            .map_err(|error| error.to_string())
    }

    async fn decide(&self, tenant: &TenantName, command: Command) {
        let context = CommandContext {
            now: roster_engine::domain::Timestamp::from_micros(wall_micros()),
            actor: Actor::system(),
            source: Default::default(),
            causation_id: format!("ssf-delivery-{}", uuid::Uuid::now_v7()),
        };
        if let Err(error) = self.engine.execute(tenant, command, context).await {
            warn!(%tenant, error = %error.chain(), "recording a stream's change failed");
        }
    }

    /// Pushes `stream`'s SETs until it is deleted.
    async fn push_all(
        self: Arc<Self>,
        tenant: TenantName,
        id: SsfStreamId,
        mut woken: watch::Receiver<()>,
    ) {
        let mut durable = self.engine.log().subscribe();
        loop {
            let Ok(stream) = self.stream(&tenant, &id) else {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            };
            let Some(stream) = stream else {
                if !self.cursors.is_shared()
                    || matches!(
                        self.cursors.claim(&tenant, &cursor_key(&id)).await,
                        Ok(Some(_))
                    )
                {
                    let _ = self.cursors.remove(&tenant, &cursor_key(&id)).await;
                }
                info!(%tenant, stream = %id, "stream deleted: delivery stopped");
                return;
            };
            let SsfDelivery::Push {
                endpoint_url,
                authorization_sealed,
            } = &stream.config.delivery
            else {
                // Now polled: this worker is done (the cursor stays for the polls).
                return;
            };
            let mut wait = if self.cursors.is_shared() {
                LEASE_RENEW
            } else {
                Duration::from_secs(30)
            };
            if stream.status != SsfStreamStatus::Paused {
                let authorization = if authorization_sealed.is_empty() {
                    None
                } else {
                    let opened = self.ssf.open(authorization_sealed);
                    if opened.is_none() {
                        warn!(%tenant, stream = %id, "the stream's authorization header does not open with this deployment's key: pushing without it");
                    }
                    opened
                };
                match self
                    .push_some(
                        &tenant,
                        &stream,
                        endpoint_url,
                        authorization.as_deref(),
                        &woken,
                    )
                    .await
                {
                    Ok(Some(next)) => wait = wait.min(next),
                    Ok(None) => {}
                    Err(error) => {
                        warn!(%tenant, stream = %id, %error, "SET delivery paused by an error; retrying in a second");
                        wait = Duration::from_secs(1);
                    }
                }
            }
            tokio::select! {
                changed = durable.changed() => if changed.is_err() { return },
                changed = woken.changed() => if changed.is_err() { return },
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Pushes the SETs after the cursor until one fails or none are left. Returns how soon to
    /// look again, when sooner than the usual.
    async fn push_some(
        &self,
        tenant: &TenantName,
        stream: &SsfStreamRecord,
        endpoint_url: &str,
        authorization: Option<&str>,
        woken: &watch::Receiver<()>,
    ) -> Result<Option<Duration>, String> {
        let key = cursor_key(&stream.id);
        let mut delivery = match self.cursors.claim(tenant, &key).await {
            Ok(Some(delivery)) => delivery,
            Ok(None) => {
                self.find_start(tenant, stream).await?;
                return Ok(Some(Duration::ZERO));
            }
            Err(CursorError::Lost(_)) => return Ok(None),
            Err(error) => return Err(error.to_string()),
        };
        if let Some(at) = delivery.next_attempt_at
            && at > wall_micros()
        {
            let wait = Duration::from_micros(u64::try_from(at - wall_micros()).unwrap_or(0));
            return Ok(Some(wait));
        }
        loop {
            if woken.has_changed().unwrap_or(true) {
                // The stream changed (paused, deleted, its endpoint): look at it again.
                self.cursors
                    .put(tenant, &key, &delivery)
                    .await
                    .map_err(|e| e.to_string())?;
                return Ok(Some(Duration::ZERO));
            }
            let from = delivery.delivered_through + 1;
            if from > self.engine.log().durable_head() {
                self.cursors
                    .put(tenant, &key, &delivery)
                    .await
                    .map_err(|e| e.to_string())?;
                return Ok(None);
            }
            let walk = self
                .walk(
                    tenant,
                    stream,
                    from,
                    delivery.stream_disabled,
                    delivery.removed_subjects.clone(),
                    usize::MAX,
                )
                .await?;
            let mut delivered_through = from - 1;
            for (sequence, draft) in &walk.sets {
                // Every SET of earlier events went out.
                delivered_through = delivered_through.max(sequence - 1);
                let set = self.sign(draft).await?;
                let answer = crate::webhooks::http::post_with(
                    &self.client,
                    endpoint_url,
                    &[
                        ("content-type", "application/secevent+jwt"),
                        ("accept", "application/json"),
                    ],
                    authorization,
                    Bytes::from(set),
                    self.settings.timeout.min(crate::webhooks::TIMEOUT_MAX),
                )
                .await;
                let failure = match answer {
                    Ok(answer) if answer.status.is_success() => {
                        delivery.delivered_total += 1;
                        self.counts
                            .delivered
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let micros = u64::try_from(wall_micros() - draft.recorded_at).unwrap_or(0);
                        (self.on_delivered)(micros as f64 / 1e6);
                        delivery.attempts = 0;
                        delivery.next_attempt_at = None;
                        continue;
                    }
                    Ok(answer) => answer.failure(),
                    Err(error) => crate::webhooks::http::Failed {
                        status: 0,
                        error,
                        retry_after: None,
                    },
                };
                // Stopped midway: the cursor, and the stream's state with it, at the event before.
                let (disabled, removed) = walk.state_at(
                    delivered_through,
                    (delivery.stream_disabled, &delivery.removed_subjects),
                );
                delivery.delivered_through = delivered_through;
                delivery.stream_disabled = disabled;
                delivery.removed_subjects = removed;
                self.counts
                    .failed_attempts
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                delivery.attempts = delivery.attempts.saturating_add(1);
                delivery.failed_attempts_total += 1;
                delivery.last_failure = Some(Failure {
                    status: failure.status,
                    error: failure.error.clone(),
                    at: wall_micros(),
                });
                let attempts = usize::try_from(delivery.attempts).unwrap_or(usize::MAX);
                match self.settings.retry_schedule.get(attempts - 1).copied() {
                    Some(wait) => {
                        let wait = jittered(wait.min(crate::webhooks::RETRY_WAIT_MAX)).max(
                            failure
                                .retry_after
                                .unwrap_or_default()
                                .min(wait.saturating_mul(4)),
                        );
                        delivery.next_attempt_at =
                            Some(wall_micros().saturating_add(
                                i64::try_from(wait.as_micros()).unwrap_or(i64::MAX),
                            ));
                        warn!(%tenant, stream = %stream.id, sequence, attempts, failure = %failure.describe(), retry_in = ?wait, "SET push failed; retrying");
                        self.cursors
                            .put(tenant, &key, &delivery)
                            .await
                            .map_err(|e| e.to_string())?;
                        return Ok(Some(wait));
                    }
                    None => {
                        delivery.attempts = 0;
                        delivery.next_attempt_at = None;
                        self.cursors
                            .put(tenant, &key, &delivery)
                            .await
                            .map_err(|e| e.to_string())?;
                        let reason = format!(
                            "roster paused the stream: {attempts} pushes of a SET failed; the last: {}",
                            failure.describe()
                        );
                        warn!(%tenant, stream = %stream.id, %reason, "SET push failing: stream paused until enabled again");
                        self.decide(
                            tenant,
                            Command::SetSsfStreamStatus {
                                stream_id: stream.id,
                                receiver: None,
                                status: SsfStreamStatus::Paused,
                                reason,
                            },
                        )
                        .await;
                        return Ok(None);
                    }
                }
            }
            delivery.delivered_through = walk.through;
            delivery.stream_disabled = walk.disabled;
            delivery.removed_subjects = walk.removed;
            self.cursors
                .put(tenant, &key, &delivery)
                .await
                .map_err(|e| e.to_string())?;
        }
    }

    /// A stream whose creator stopped before recording its start: it starts after the event
    /// that created it, found in the log.
    async fn find_start(
        &self,
        tenant: &TenantName,
        stream: &SsfStreamRecord,
    ) -> Result<(), String> {
        let mut from = 1;
        loop {
            let read = self.read(tenant, from).await?;
            for event in &read.events {
                if let EventPayload::SsfStreamCreated { stream_id, .. } = &event.payload
                    && *stream_id == stream.id
                {
                    return self
                        .cursors
                        .start_after(tenant, &cursor_key(&stream.id), event.sequence)
                        .await
                        .map_err(|error| error.to_string());
                }
            }
            if read.events.is_empty() {
                return Err(format!(
                    "the event that created stream {} is not in the log yet",
                    stream.id
                ));
            }
            from = read.next;
        }
    }

    fn poll_lock(&self, id: &SsfStreamId) -> Arc<tokio::sync::Mutex<()>> {
        match self.polls.lock() {
            Ok(mut polls) => Arc::clone(polls.entry(*id).or_default()),
            Err(_) => Arc::default(),
        }
    }

    /// One poll: acknowledges, then answers pending and new SETs (at most `max`). `None` when
    /// there was nothing to answer (the caller may wait and ask again).
    async fn poll_once(
        &self,
        tenant: &TenantName,
        stream: &SsfStreamRecord,
        acks: &[String],
        max: usize,
    ) -> Result<(Vec<(String, String)>, bool), String> {
        let key = cursor_key(&stream.id);
        let lock = self.poll_lock(&stream.id);
        let _serialized = lock.lock().await;
        for _ in 0..10 {
            let (mut delivery, revision) = match self
                .cursors
                .get_versioned(tenant, &key)
                .await
                .map_err(|e| e.to_string())?
            {
                Some(found) => found,
                None => {
                    self.find_start(tenant, stream).await?;
                    continue;
                }
            };
            let before = delivery.clone();
            delivery
                .pending
                .retain(|pending| !acks.contains(&pending.jti));
            let acknowledged = before.pending.len() - delivery.pending.len();
            delivery.delivered_total += acknowledged as u64;
            self.counts
                .delivered
                .fetch_add(acknowledged as u64, std::sync::atomic::Ordering::Relaxed);
            let mut answer: Vec<(String, String)> = delivery
                .pending
                .iter()
                .take(max)
                .map(|pending| (pending.jti.clone(), pending.set.clone()))
                .collect();
            let head = self.engine.log().durable_head();
            if stream.status != SsfStreamStatus::Paused {
                while answer.len() < max
                    && delivery.pending.len() < PENDING_MAX
                    && delivery.delivered_through < head
                {
                    let from = delivery.delivered_through + 1;
                    // Whole events only, so the cursor and the stream's state stay exact (one
                    // event with more SETs than the room is sent whole).
                    let room = (max - answer.len()).min(PENDING_MAX - delivery.pending.len());
                    let walk = self
                        .walk(
                            tenant,
                            stream,
                            from,
                            delivery.stream_disabled,
                            delivery.removed_subjects.clone(),
                            room,
                        )
                        .await?;
                    for (_, draft) in &walk.sets {
                        let set = self.sign(draft).await?;
                        answer.push((draft.jti.clone(), set.clone()));
                        delivery.pending.push(crate::webhooks::PendingSet {
                            jti: draft.jti.clone(),
                            set,
                        });
                    }
                    let stopped_early = walk.through < from;
                    delivery.delivered_through = walk.through.max(delivery.delivered_through);
                    delivery.stream_disabled = walk.disabled;
                    delivery.removed_subjects = walk.removed;
                    if stopped_early {
                        break;
                    }
                }
            }
            let more = delivery.pending.len() > answer.len() || delivery.delivered_through < head;
            if delivery == before
                || self
                    .cursors
                    .put_versioned(tenant, &key, &delivery, revision)
                    .await
                    .map_err(|e| e.to_string())?
            {
                return Ok((answer, more));
            }
        }
        Err("the stream's poll state kept changing under this poll".to_owned())
    }
}

/// `POST /ssf/{tenant}/poll/{stream_id}` (RFC 8936).
pub async fn poll(
    State(state): State<crate::state::AppState>,
    receiver: super::http::Receiver,
    Path((_, stream_id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    use super::http::ssf_error;
    if let Err(response) = receiver.require_read() {
        return response;
    }
    let not_found = || ssf_error(StatusCode::NOT_FOUND, "not_found", "no such stream");
    let Ok(id) = stream_id.parse::<SsfStreamId>() else {
        return not_found();
    };
    if body.len() > POLL_BODY_MAX {
        return ssf_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request",
            "the poll request is too large",
        );
    }
    let request: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(Value::Object(object)) => Value::Object(object),
            _ => {
                return ssf_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "the body must be a JSON object",
                );
            }
        }
    };
    let max = match request.get("maxEvents") {
        None | Some(Value::Null) => POLL_MAX,
        Some(value) => match value.as_u64() {
            Some(max) => usize::try_from(max).unwrap_or(POLL_MAX).min(POLL_MAX),
            None => {
                return ssf_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "maxEvents must be a non-negative integer",
                );
            }
        },
    };
    let return_immediately = match request.get("returnImmediately") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(flag)) => *flag,
        Some(_) => {
            return ssf_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "returnImmediately must be a boolean",
            );
        }
    };
    let mut acks: Vec<String> = match request.get("ack") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        Some(_) => {
            return ssf_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "ack must be an array of jti",
            );
        }
    };
    // A SET the receiver could not process is released like an acknowledged one, and logged.
    if let Some(Value::Object(errors)) = request.get("setErrs") {
        for (jti, error) in errors {
            warn!(tenant = %receiver.tenant, stream = %id, %jti, error = %error, "a polling receiver reported a SET error");
            acks.push(jti.clone());
        }
    }
    if acks.len() > crate::ssf::delivery::PENDING_MAX * 10 {
        return ssf_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "too many acknowledgements in one poll",
        );
    }
    let transmitter = &state.ssf_delivery;
    let inner = &transmitter.inner;
    let deadline = tokio::time::Instant::now() + LONG_POLL;
    let mut durable = inner.engine.log().subscribe();
    loop {
        let stream = match inner.stream(&receiver.tenant, &id) {
            Ok(Some(stream)) if stream.receiver == receiver.client => stream,
            Ok(_) => return not_found(),
            Err(()) => {
                return ssf_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "temporarily_unavailable",
                    "retry later",
                );
            }
        };
        if !matches!(stream.config.delivery, SsfDelivery::Poll) {
            return ssf_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "this stream is delivered by push",
            );
        }
        let (sets, more) = match inner.poll_once(&receiver.tenant, &stream, &acks, max).await {
            Ok(answer) => answer,
            Err(error) => {
                warn!(tenant = %receiver.tenant, stream = %id, %error, "a poll failed");
                return ssf_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "temporarily_unavailable",
                    "retry later",
                );
            }
        };
        acks.clear();
        let waiting = sets.is_empty() && max > 0 && !return_immediately;
        if !waiting || tokio::time::Instant::now() >= deadline {
            let sets: serde_json::Map<String, Value> = sets
                .into_iter()
                .map(|(jti, set)| (jti, Value::String(set)))
                .collect();
            return axum::Json(json!({"sets": sets, "moreAvailable": more})).into_response();
        }
        tokio::select! {
            _ = durable.changed() => {}
            () = tokio::time::sleep_until(deadline) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_walk_knows_the_streams_state_at_each_point() {
        let walk = Walk {
            sets: Vec::new(),
            through: 20,
            disabled: false,
            removed: vec!["b".into()],
            changes: vec![(12, true, vec!["a".into()]), (15, false, vec!["b".into()])],
        };
        let start: (bool, &[String]) = (false, &[]);
        assert_eq!(walk.state_at(10, start), (false, vec![]));
        assert_eq!(walk.state_at(12, start), (true, vec!["a".to_owned()]));
        assert_eq!(walk.state_at(14, start), (true, vec!["a".to_owned()]));
        assert_eq!(walk.state_at(19, start), (false, vec!["b".to_owned()]));
    }
}
