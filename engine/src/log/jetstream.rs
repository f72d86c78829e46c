//! The JetStream event log: stream `ROSTER_EVENTS` on `roster.evt.>` is the source of truth;
//! every process keeps a local mirror of it (see `embedded`).
//!
//! - Subjects: `roster.evt.<tenant>.<resource>.<verb>`, one event per message, `Nats-Msg-Id` =
//!   event id (a retried append is deduplicated). A staging branch's events go to
//!   `roster.stg.<tenant>~s<generation>.<resource>.<verb>` instead (the stream holds both), so
//!   subscribers of the public `roster.evt.>` subjects never see staged, unpromoted changes.
//! - Per-tenant serializability: the first message of an append carries
//!   `Nats-Expected-Last-Subject-Sequence: <tenant head>` with
//!   `Nats-Expected-Last-Subject-Sequence-Subject: roster.evt.<tenant>.>`; a stale head is refused
//!   with `WrongLastSequence` ([`AppendError::Conflict`]).
//! - Several events go in one atomic batch (ADR-50, nats-server 2.12+): all land or none.
//! - Durability: an append is acknowledged by JetStream; run the server with
//!   `sync_interval: always` or three replicas (see `deploy/`).

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use async_nats::{HeaderMap, HeaderValue};
use futures::{FutureExt, StreamExt};
use tokio::sync::watch;
use tracing::{info, warn};

use super::{AppendError, EmbeddedLog, LogError};
use crate::codec;
use crate::domain::{Event, TenantName, Timestamp};

/// The stream's name.
pub const STREAM: &str = "ROSTER_EVENTS";
/// Every subject of a tenant's events starts with this (the public contract).
pub const SUBJECT_PREFIX: &str = "roster.evt";
/// Every subject of a staging branch's events starts with this.
pub const BRANCH_SUBJECT_PREFIX: &str = "roster.stg";
/// Oldest server with everything the log relies on (atomic batch publish).
const MINIMUM_SERVER: (u64, u64) = (2, 12);
/// Messages in one atomic batch, at most (ADR-50).
pub const MAX_BATCH: usize = 1000;
/// How long one append or head query may take before NATS counts as unavailable.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// Messages the mirror writes per sled batch, at most.
const MIRROR_BATCH: usize = 1024;

/// Where and how to reach JetStream.
#[derive(Clone, Debug)]
pub struct JetStreamConfig {
    /// One server URL, or several separated by commas (`nats://a:4222,nats://b:4222`).
    pub url: String,
    /// Stream replicas when roster creates the stream (1, or 3 in a cluster).
    pub replicas: usize,
}

impl JetStreamConfig {
    /// The server URLs in `url`.
    fn servers(&self) -> Vec<&str> {
        self.url
            .split(',')
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .collect()
    }
}

/// The subject an event is published on.
pub fn subject(event: &Event) -> String {
    format!(
        "{}.{}.{}",
        prefix(&event.tenant),
        event.tenant,
        event.payload.event_type()
    )
}

/// The subjects of every event of `tenant`.
pub fn tenant_subjects(tenant: &TenantName) -> String {
    format!("{}.{tenant}.>", prefix(tenant))
}

fn prefix(tenant: &TenantName) -> &'static str {
    if tenant.is_branch() {
        BRANCH_SUBJECT_PREFIX
    } else {
        SUBJECT_PREFIX
    }
}

/// The subjects the stream must hold.
fn stream_subjects() -> Vec<String> {
    vec![
        format!("{SUBJECT_PREFIX}.>"),
        format!("{BRANCH_SUBJECT_PREFIX}.>"),
    ]
}

fn unavailable(error: impl std::fmt::Display) -> LogError {
    LogError::Unavailable(format!("NATS: {error}"))
}

fn append_unavailable(error: impl std::fmt::Display) -> AppendError {
    AppendError::Unavailable(format!("NATS: {error}"))
}

/// Parses `major.minor` out of a server version string like `2.15.1`.
fn version(text: &str) -> Option<(u64, u64)> {
    let mut parts = text.trim_start_matches('v').split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// A publish acknowledgement or error, as JetStream replies to a raw request.
#[derive(serde::Deserialize)]
struct RawAck {
    #[serde(default)]
    seq: Option<u64>,
    #[serde(default)]
    count: Option<u64>,
    #[serde(default)]
    error: Option<RawAckError>,
}

#[derive(serde::Deserialize)]
struct RawAckError {
    #[serde(default)]
    err_code: u64,
    #[serde(default)]
    description: String,
}

/// Error code of `wrong last sequence`.
const WRONG_LAST_SEQUENCE: u64 = 10071;
/// Error code of `atomic publish batch contains duplicate message id`: the stream has seen an
/// event id of the batch within the duplicate window.
const DUPLICATE_ID_IN_BATCH: u64 = 10201;

fn ack_error(error: RawAckError) -> AppendError {
    AppendError::Unavailable(format!("NATS: {} ({})", error.description, error.err_code))
}

/// How long `connect` waits for JetStream to be ready to create or find the stream.
const STARTUP_WAIT: Duration = Duration::from_secs(30);
/// How long an append waits for a stream without a leader to get one.
const LEADER_WAIT: Duration = Duration::from_secs(5);

/// How one try at an append failed.
#[derive(Debug)]
enum Attempt {
    /// Nobody received the messages: nothing was stored, the append may be sent again.
    NoResponders(String),
    Failed(AppendError),
}

impl From<AppendError> for Attempt {
    fn from(error: AppendError) -> Self {
        Attempt::Failed(error)
    }
}

/// The client's connection, as its events report it.
#[derive(Clone, Copy, Debug, Default)]
struct Link {
    /// Connections made so far (reconnects included).
    connections: u64,
    up: bool,
}

/// The JetStream log of one process.
#[derive(Clone)]
pub struct JetStreamLog {
    client: async_nats::Client,
    stream: stream::Stream,
    /// The connection as the client reports it: the mirror starts over after a reconnect instead
    /// of waiting for its consumer to time out (a restarted server has forgotten it), and appends
    /// in flight stop waiting for a reply that cannot come.
    link: watch::Receiver<Link>,
    /// The highest sequence the stream is known to hold (from acknowledgements, conflicts and
    /// head queries): a mirror that stays behind it is stuck and starts over.
    known_head: std::sync::Arc<watch::Sender<u64>>,
}

impl JetStreamLog {
    /// Connects, checks the server's version and makes sure the stream exists as roster needs it.
    pub async fn connect(config: &JetStreamConfig) -> Result<Self, LogError> {
        let (link_sender, link) = watch::channel(Link::default());
        let link_sender = std::sync::Arc::new(link_sender);
        let client = async_nats::ConnectOptions::new()
            .name("roster")
            .event_callback(move |event| {
                let link = link_sender.clone();
                async move {
                    match event {
                        async_nats::Event::Connected => link.send_modify(|link| {
                            link.connections += 1;
                            link.up = true;
                        }),
                        async_nats::Event::Disconnected => {
                            warn!("disconnected from NATS");
                            link.send_modify(|link| link.up = false);
                        }
                        _ => {}
                    }
                }
            })
            .connection_timeout(Duration::from_secs(5))
            .request_timeout(Some(REQUEST_TIMEOUT))
            .retry_on_initial_connect()
            .connect(config.servers());
        let client = tokio::time::timeout(Duration::from_secs(10), client)
            .await
            .map_err(|_| unavailable(format!("could not connect to {} within 10 s", config.url)))?
            .map_err(|error| unavailable(format!("connecting to {}: {error}", config.url)))?;
        // With `retry_on_initial_connect` the client returns before it is connected; a flush
        // round trip waits for the connection and its INFO.
        tokio::time::timeout(Duration::from_secs(10), client.flush())
            .await
            .map_err(|_| unavailable(format!("could not reach {} within 10 s", config.url)))?
            .map_err(|error| unavailable(format!("connecting to {}: {error}", config.url)))?;
        let mut connected = link.clone();
        tokio::time::timeout(Duration::from_secs(10), connected.wait_for(|link| link.up))
            .await
            .map_err(|_| unavailable("the NATS client did not report its connection"))?
            .map_err(|_| unavailable("the NATS client closed"))?;
        let server = client.server_info().version;
        match version(&server) {
            Some(found) if found >= MINIMUM_SERVER => {}
            _ => {
                return Err(LogError::Unavailable(format!(
                    "nats-server {server} is too old: roster needs {}.{} or newer (per-tenant \
                     concurrency uses Nats-Expected-Last-Subject-Sequence-Subject, from 2.11, and \
                     multi-event commands use atomic batch publish, from 2.12)",
                    MINIMUM_SERVER.0, MINIMUM_SERVER.1
                )));
            }
        }
        let context = jetstream::new(client.clone());
        let wanted = stream::Config {
            name: STREAM.to_owned(),
            subjects: stream_subjects(),
            storage: stream::StorageType::File,
            num_replicas: config.replicas.max(1),
            duplicate_window: Duration::from_secs(300),
            deny_delete: true,
            deny_purge: true,
            allow_direct: true,
            allow_atomic_publish: true,
            max_messages: -1,
            max_bytes: -1,
            max_messages_per_subject: -1,
            ..stream::Config::default()
        };
        // A cluster that has just started may not have elected its JetStream leader yet.
        let deadline = tokio::time::Instant::now() + STARTUP_WAIT;
        let mut stream = loop {
            match context.get_or_create_stream(wanted.clone()).await {
                Ok(stream) => break stream,
                Err(error) if tokio::time::Instant::now() < deadline => {
                    warn!(%error, "JetStream is not ready; trying again");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(error) => {
                    return Err(unavailable(format!("creating stream {STREAM}: {error}")));
                }
            }
        };
        let existing = stream
            .info()
            .await
            .map_err(|error| unavailable(format!("reading stream {STREAM}: {error}")))?
            .config
            .clone();
        let missing_subjects: Vec<String> = stream_subjects()
            .into_iter()
            .filter(|subject| !existing.subjects.contains(subject))
            .collect();
        if !existing.allow_atomic_publish
            || !existing.deny_delete
            || !existing.deny_purge
            || !missing_subjects.is_empty()
        {
            // A stream created by an older roster lacks the staging subjects: add them.
            let mut updated = existing.clone();
            updated.allow_atomic_publish = true;
            updated.deny_delete = true;
            updated.deny_purge = true;
            updated.subjects.extend(missing_subjects);
            context
                .update_stream(updated)
                .await
                .map_err(|error| unavailable(format!("updating stream {STREAM}: {error}")))?;
        }
        if existing.num_replicas != wanted.num_replicas {
            warn!(
                existing = existing.num_replicas,
                wanted = wanted.num_replicas,
                "stream {STREAM} exists with another replica count; keeping it"
            );
        }
        info!(url = %config.url, server = %server, "connected to JetStream");
        Ok(Self {
            client,
            stream,
            link,
            known_head: std::sync::Arc::new(watch::channel(0).0),
        })
    }

    /// The last sequence in the stream: what reads wait for (read-your-writes across processes).
    /// Records that the stream holds at least `sequence`.
    fn saw_head(&self, sequence: u64) -> u64 {
        self.known_head.send_if_modified(|known| {
            let newer = sequence > *known;
            if newer {
                *known = sequence;
            }
            newer
        });
        sequence
    }

    /// Fails fast while disconnected: the client would otherwise queue the request and send it
    /// whenever the connection is back.
    fn ensure_connected(&self) -> Result<(), LogError> {
        match self.client.connection_state() {
            async_nats::connection::State::Connected => Ok(()),
            _ => Err(unavailable("not connected")),
        }
    }

    pub async fn head(&self) -> Result<u64, LogError> {
        self.ensure_connected()?;
        let info = tokio::time::timeout(REQUEST_TIMEOUT, self.stream.get_info())
            .await
            .map_err(|_| unavailable("timed out reading the stream"))?
            .map_err(unavailable)?;
        Ok(self.saw_head(info.state.last_sequence))
    }

    /// The id of the event at `sequence`, if the stream holds one there.
    pub async fn event_id_at(&self, sequence: u64) -> Result<Option<uuid::Uuid>, LogError> {
        self.ensure_connected()?;
        let message = tokio::time::timeout(REQUEST_TIMEOUT, self.stream.get_raw_message(sequence))
            .await
            .map_err(|_| unavailable("timed out reading the stream"))?;
        match message {
            Ok(message) => codec::decode(&message.payload)
                .map(|event| Some(event.id))
                .map_err(|error| LogError::Corrupt {
                    sequence,
                    reason: error.to_string(),
                }),
            Err(error) if error.kind() == stream::RawMessageErrorKind::NoMessageFound => Ok(None),
            Err(error) => Err(unavailable(error)),
        }
    }

    /// The sequence of `tenant`'s last event in the stream (0: none yet).
    pub async fn tenant_head(&self, tenant: &TenantName) -> Result<u64, LogError> {
        let last = tokio::time::timeout(
            REQUEST_TIMEOUT,
            self.stream
                .get_last_raw_message_by_subject(&tenant_subjects(tenant)),
        )
        .await
        .map_err(|_| unavailable("timed out reading the stream"))?;
        match last {
            Ok(message) => Ok(self.saw_head(message.sequence)),
            Err(error) if error.kind() == stream::LastRawMessageErrorKind::NoMessageFound => Ok(0),
            Err(error) => Err(unavailable(error)),
        }
    }

    /// Appends one tenant's events if its head is still `expected_head`; returns their
    /// sequences. Up to [`MAX_BATCH`] events, all landing or none.
    ///
    /// While the stream has no leader (a cluster electing a new one), nobody receives the
    /// messages and nothing is stored: the append is sent again for up to [`LEADER_WAIT`].
    pub async fn append(
        &self,
        tenant: &TenantName,
        expected_head: u64,
        events: &[Event],
    ) -> Result<Vec<u64>, AppendError> {
        let deadline = tokio::time::Instant::now() + LEADER_WAIT;
        let mut pause = Duration::from_millis(50);
        loop {
            let outcome = self.append_once(tenant, expected_head, events).await;
            match &outcome {
                Ok(sequences) => {
                    if let Some(last) = sequences.last() {
                        self.saw_head(*last);
                    }
                }
                Err(Attempt::Failed(AppendError::Conflict { actual_head })) => {
                    self.saw_head(*actual_head);
                }
                Err(_) => {}
            }
            match outcome {
                Err(Attempt::NoResponders(reason)) => {
                    if tokio::time::Instant::now() + pause >= deadline {
                        return Err(AppendError::Unavailable(reason));
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(500));
                }
                Err(Attempt::Failed(error)) => return Err(error),
                Ok(sequences) => return Ok(sequences),
            }
        }
    }

    async fn append_once(
        &self,
        tenant: &TenantName,
        expected_head: u64,
        events: &[Event],
    ) -> Result<Vec<u64>, Attempt> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        self.ensure_connected()
            .map_err(|error| AppendError::Unavailable(error.to_string()))?;
        if events.len() > MAX_BATCH {
            return Err(AppendError::Unavailable(format!(
                "an append holds at most {MAX_BATCH} events"
            ))
            .into());
        }
        let batch = uuid::Uuid::now_v7().simple().to_string();
        let last_index = events.len() - 1;
        let mut final_ack = None;
        for (index, event) in events.iter().enumerate() {
            let mut headers = HeaderMap::new();
            headers.insert(
                async_nats::header::NATS_MESSAGE_ID,
                event.id.to_string().as_str(),
            );
            if index == 0 {
                headers.insert(
                    async_nats::header::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE,
                    HeaderValue::from(expected_head.to_string().as_str()),
                );
                headers.insert(
                    "Nats-Expected-Last-Subject-Sequence-Subject",
                    tenant_subjects(tenant).as_str(),
                );
            }
            if events.len() > 1 {
                headers.insert("Nats-Batch-Id", batch.as_str());
                headers.insert("Nats-Batch-Sequence", (index + 1).to_string().as_str());
                if index == last_index {
                    headers.insert("Nats-Batch-Commit", "1");
                }
            }
            let payload = codec::encode(event).into();
            let subject = subject(event);
            // The first message and the last are requests: the first to learn early that the
            // batch was refused, the last for the acknowledgement. The rest are sent as they go.
            if index == 0 || index == last_index {
                let request = self.client.request_with_headers(subject, headers, payload);
                let mut link = self.link.clone();
                let reply = tokio::select! {
                    reply = tokio::time::timeout(REQUEST_TIMEOUT, request) => reply,
                    _ = link.wait_for(|link| !link.up) => {
                        return Err(AppendError::Unknown("disconnected from NATS while appending".into()).into());
                    }
                };
                let reply = reply
                    .map_err(|_| AppendError::Unknown("timed out waiting for JetStream".into()))?
                    .map_err(|error| match error.kind() {
                        async_nats::RequestErrorKind::TimedOut => {
                            Attempt::Failed(AppendError::Unknown(format!("NATS: {error}")))
                        }
                        async_nats::RequestErrorKind::NoResponders => Attempt::NoResponders(
                            format!("NATS: the stream has no leader: {error}"),
                        ),
                        _ => Attempt::Failed(append_unavailable(error)),
                    })?;
                if reply.payload.is_empty() {
                    continue;
                }
                let ack: RawAck = serde_json::from_slice(&reply.payload).map_err(|error| {
                    append_unavailable(format!("unreadable acknowledgement: {error}"))
                })?;
                if let Some(error) = ack.error {
                    if error.err_code == WRONG_LAST_SEQUENCE
                        || error.err_code == DUPLICATE_ID_IN_BATCH
                    {
                        // The tenant's head moved (or, for a duplicate, a batch sent again after
                        // it landed: the stale head it is, like a single event sent again). The
                        // head to retry on is read from the stream, not out of the error's text.
                        let actual_head = self
                            .tenant_head(tenant)
                            .await
                            .map_err(|error| AppendError::Unknown(error.to_string()))?;
                        return Err(AppendError::Conflict { actual_head }.into());
                    }
                    return Err(ack_error(error).into());
                }
                if index == last_index {
                    final_ack = Some(ack);
                }
            } else {
                self.client
                    .publish_with_headers(subject, headers, payload)
                    .await
                    .map_err(append_unavailable)?;
            }
        }
        let ack =
            final_ack.ok_or_else(|| append_unavailable("no acknowledgement for the append"))?;
        let last = ack
            .seq
            .ok_or_else(|| append_unavailable("acknowledgement without a sequence"))?;
        let count = ack.count.unwrap_or(events.len() as u64);
        if count != events.len() as u64 {
            return Err(append_unavailable(format!(
                "JetStream stored {count} of {} events",
                events.len()
            ))
            .into());
        }
        let first = last + 1 - count;
        Ok((first..=last).collect())
    }

    /// Copies the stream into the local mirror, from its head on, until `stop` turns true.
    /// Reconnects after errors.
    pub async fn mirror(self, local: EmbeddedLog, mut stop: watch::Receiver<bool>) {
        let mut link = self.link.clone();
        let mut known_head = self.known_head.subscribe();
        loop {
            if *stop.borrow() {
                return;
            }
            let connections = link.borrow_and_update().connections;
            let from = local.durable_head() + 1;
            let outcome = tokio::select! {
                outcome = self.mirror_from(&local, from) => outcome,
                () = stalled(&local, &mut known_head) => {
                    // A consumer on a stream leader that died is gone; its client notices only
                    // after missed heartbeats.
                    warn!(from, "the mirror is stuck behind the stream; mirroring again");
                    continue;
                }
                reconnected = link.wait_for(|link| link.connections > connections) => {
                    if reconnected.is_ok() {
                        info!(from, "reconnected to NATS; mirroring the event stream again");
                        continue;
                    }
                    Err(unavailable("the NATS client closed"))
                }
                _ = stop.wait_for(|stop| *stop) => return,
            };
            if let Err(error) = outcome {
                warn!(%error, from, "mirroring the event stream stopped; retrying");
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = stop.wait_for(|stop| *stop) => return,
            }
        }
    }

    async fn mirror_from(&self, local: &EmbeddedLog, from: u64) -> Result<(), LogError> {
        let consumer = self
            .stream
            .create_consumer(jetstream::consumer::pull::OrderedConfig {
                deliver_policy: jetstream::consumer::DeliverPolicy::ByStartSequence {
                    start_sequence: from,
                },
                ..Default::default()
            })
            .await
            .map_err(unavailable)?;
        let mut messages = consumer.messages().await.map_err(unavailable)?;
        let mut batch: Vec<Event> = Vec::new();
        while let Some(message) = messages.next().await {
            batch.push(mirrored(message.map_err(unavailable)?)?);
            while batch.len() < MIRROR_BATCH {
                match messages.next().now_or_never() {
                    Some(Some(message)) => batch.push(mirrored(message.map_err(unavailable)?)?),
                    _ => break,
                }
            }
            let events = std::mem::take(&mut batch);
            let writer = local.clone();
            tokio::task::spawn_blocking(move || writer.record_mirrored(&events))
                .await
                .map_err(unavailable)??;
        }
        Err(unavailable("the stream's consumer ended"))
    }
}

/// How long the mirror may stay behind a sequence the stream is known to hold, without moving,
/// before it starts over.
const STALL_AFTER: Duration = Duration::from_secs(1);

/// Resolves when the stream is known to hold events past the local head and the local head has
/// not moved for [`STALL_AFTER`].
async fn stalled(local: &EmbeddedLog, known_head: &mut watch::Receiver<u64>) {
    loop {
        let wanted = *known_head.borrow_and_update();
        let head = local.durable_head();
        if wanted > head {
            tokio::time::sleep(STALL_AFTER).await;
            if local.durable_head() == head {
                return;
            }
            continue;
        }
        if known_head.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// The event a stream message holds, with the stream's sequence and time.
fn mirrored(message: jetstream::Message) -> Result<Event, LogError> {
    let info = message.info().map_err(unavailable)?;
    let sequence = info.stream_sequence;
    let published = info.published.unix_timestamp_nanos() / 1_000;
    let mut event = codec::decode(&message.payload).map_err(|error| LogError::Corrupt {
        sequence,
        reason: error.to_string(),
    })?;
    event.sequence = sequence;
    event.recorded_at = Timestamp::from_micros(i64::try_from(published).unwrap_or(i64::MAX));
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_versions_are_compared_by_major_and_minor() {
        assert_eq!(version("2.15.1"), Some((2, 15)));
        assert_eq!(version("v2.9.10"), Some((2, 9)));
        assert!(version("2.9.10").unwrap() < MINIMUM_SERVER);
        assert!(version("2.12.0").unwrap() >= MINIMUM_SERVER);
        assert_eq!(version("garbage"), None);
    }

    #[test]
    fn staging_branches_publish_outside_the_public_subjects() {
        let acme = TenantName::parse("acme").unwrap();
        let event = |tenant: TenantName| Event {
            id: uuid::Uuid::nil(),
            tenant,
            sequence: 0,
            occurred_at: Timestamp::default(),
            recorded_at: Timestamp::default(),
            actor: crate::domain::Actor::system(),
            source: crate::domain::Source::default(),
            causation_id: String::new(),
            payload: crate::domain::EventPayload::UserDeleted {
                user_id: crate::domain::UserId(uuid::Uuid::nil()),
                user_name: "alice".into(),
                external_id: None,
                email: Default::default(),
                sso: Default::default(),
            },
        };
        assert_eq!(
            subject(&event(acme.clone())),
            "roster.evt.acme.user.deleted"
        );
        assert_eq!(tenant_subjects(&acme), "roster.evt.acme.>");
        let branch = acme.staging_branch(2);
        assert_eq!(
            subject(&event(branch.clone())),
            "roster.stg.acme~s2.user.deleted"
        );
        assert_eq!(tenant_subjects(&branch), "roster.stg.acme~s2.>");
        assert!(stream_subjects().contains(&"roster.stg.>".to_owned()));
    }
}
