//! Bounds on server-streaming RPCs (`Events.Watch`, `Audit.Replay`): how many may be open at
//! once (per token, per tenant, in all), and how many bytes of messages each may hold and all may
//! hold together, waiting for their clients.
//!
//! A stream is opened with [`Streams::open`], which admits it against the count limits (beyond
//! one: `RESOURCE_EXHAUSTED`, naming the limit and its value) and returns the two ends of a
//! byte-bounded queue. The producer [`StreamSender::reserve`]s room before it reads (at most the
//! free part of its stream's buffer, taken from the budget shared by every stream), reads that
//! many bytes, and [`StreamSender::push`]es the messages; tonic drains the [`StreamReceiver`]. A
//! client that stops reading lets its buffer fill: once the buffer has stayed without room for
//! [`StreamLimits::stall_timeout`], the stream is dropped: its queued messages are discarded
//! and it ends with `ABORTED` and the sequence to resume from (in the message, and in the
//! `roster-resume-from` trailer), which is the first sequence the client has not been handed.
//! A stream that cannot get room from the shared budget for as long ends the same way with
//! `RESOURCE_EXHAUSTED`.
//!
//! Outside these budgets each stream also holds up to ~400 KiB in the HTTP/2 layer (hyper's send
//! buffer), which the count limits bound.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use roster_engine::domain::{Actor, ActorKind, TenantName};
use tokio::sync::Notify;
use tokio_stream::Stream;
use tonic::Status;
use tonic::metadata::MetadataMap;

/// The trailer naming the sequence a dropped stream resumes from.
pub const RESUME_FROM_TRAILER: &str = "roster-resume-from";

/// Bytes of messages a stream reads per step, at most (and no more than its buffer has room
/// for): what a read holds in memory twice over, decoded and converted, is bounded by it.
pub const READ_BYTES: usize = 256 * 1024;

/// The tenant holding the token `actor` presented for a call about `tenant`: the system tenant
/// for the admin token, else `tenant` itself.
pub fn token_owner(actor: &Actor, tenant: &TenantName) -> TenantName {
    match actor.kind {
        ActorKind::Admin => TenantName::system(),
        _ => tenant.clone(),
    }
}

/// Bytes a gRPC message takes on the wire beyond its protobuf encoding.
const FRAME_HEADER_BYTES: usize = 5;

/// The most a stream waits for when the shared budget is short: it reads into what is left once
/// that is a quarter of the room it wants, or this many bytes.
const MIN_GRANT_BYTES: usize = 64 * 1024;

const DEFAULT_MAX_PER_TOKEN: usize = 8;
const DEFAULT_MAX_PER_TENANT: usize = 32;
const DEFAULT_MAX_TOTAL: usize = 512;
const DEFAULT_BUFFER_BYTES: usize = 512 * 1024;
const DEFAULT_TOTAL_BUFFER_BYTES: usize = 64 * 1024 * 1024;
const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The limits on server-streaming RPCs (flags of `roster serve`).
#[derive(Clone, Debug, PartialEq, Eq, clap::Args)]
pub struct StreamLimits {
    /// Streams (Watch, audit Replay) one token may hold open at once; beyond it a call gets
    /// RESOURCE_EXHAUSTED.
    #[arg(long = "max-streams-per-token", value_name = "N", env = "ROSTER_MAX_STREAMS_PER_TOKEN", default_value_t = DEFAULT_MAX_PER_TOKEN)]
    pub max_per_token: usize,
    /// Streams the tokens of one tenant may hold open at once, all together (the admin token's
    /// count as the system tenant's).
    #[arg(long = "max-streams-per-tenant", value_name = "N", env = "ROSTER_MAX_STREAMS_PER_TENANT", default_value_t = DEFAULT_MAX_PER_TENANT)]
    pub max_per_tenant: usize,
    /// Streams open at once on this server, all tenants together.
    #[arg(long = "max-streams", value_name = "N", env = "ROSTER_MAX_STREAMS", default_value_t = DEFAULT_MAX_TOTAL)]
    pub max_total: usize,
    /// Bytes of messages one stream may hold waiting for its client (e.g. 1MiB, 512KiB).
    #[arg(long = "stream-buffer-bytes", value_name = "BYTES", env = "ROSTER_STREAM_BUFFER_BYTES", default_value = "512KiB", value_parser = parse_bytes)]
    pub buffer_bytes: usize,
    /// Bytes of messages all streams together may hold waiting for their clients.
    #[arg(long = "stream-buffer-total-bytes", value_name = "BYTES", env = "ROSTER_STREAM_BUFFER_TOTAL_BYTES", default_value = "64MiB", value_parser = parse_bytes)]
    pub total_buffer_bytes: usize,
    /// How long a stream's buffer may stay full while its client reads nothing before the stream
    /// is dropped (ABORTED, with the sequence to resume from), e.g. 30s, 2m, 500ms.
    #[arg(long = "stream-stall-timeout", value_name = "DURATION", env = "ROSTER_STREAM_STALL_TIMEOUT", default_value = "30s", value_parser = parse_timeout)]
    pub stall_timeout: Duration,
}

impl Default for StreamLimits {
    fn default() -> Self {
        Self {
            max_per_token: DEFAULT_MAX_PER_TOKEN,
            max_per_tenant: DEFAULT_MAX_PER_TENANT,
            max_total: DEFAULT_MAX_TOTAL,
            buffer_bytes: DEFAULT_BUFFER_BYTES,
            total_buffer_bytes: DEFAULT_TOTAL_BUFFER_BYTES,
            stall_timeout: DEFAULT_STALL_TIMEOUT,
        }
    }
}

/// A size in bytes: a number, optionally with `B`, `KiB`, `MiB` or `GiB` (`KB`, `MB`, `GB` and
/// `K`, `M`, `G` mean the same powers of 1024).
pub fn parse_bytes(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: usize = number
        .parse()
        .map_err(|_| format!("{text:?} does not start with a number"))?;
    let scale: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(format!("unknown unit in {text:?}: use B, KiB, MiB or GiB")),
    };
    number
        .checked_mul(scale)
        .filter(|bytes| *bytes > 0)
        .ok_or_else(|| format!("{text:?} is not a positive size"))
}

/// A duration: a number with `ms`, `s` or `m`.
pub fn parse_timeout(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{text:?} needs a unit: ms, s, m or h (e.g. 30s)"))?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} does not start with a number"))?;
    let duration = match unit {
        "ms" => Duration::from_millis(number),
        "s" => Duration::from_secs(number),
        "m" => Duration::from_secs(number.saturating_mul(60)),
        "h" => Duration::from_secs(number.saturating_mul(3600)),
        _ => {
            return Err(format!(
                "unknown unit {unit:?} in {text:?}: use ms, s, m or h"
            ));
        }
    };
    if duration.is_zero() {
        return Err(format!("{text:?} is not a positive duration"));
    }
    Ok(duration)
}

/// A message a stream carries: its position in the log (or audit trail) orders and resumes it.
pub trait Sequenced: roster_proto::prost::Message {
    fn sequence(&self) -> u64;
}

impl Sequenced for roster_proto::v1::Event {
    fn sequence(&self) -> u64 {
        self.sequence
    }
}

impl Sequenced for roster_proto::v1::AuditRecord {
    fn sequence(&self) -> u64 {
        self.sequence
    }
}

/// Locks `mutex`, whether or not a holder panicked: every critical section here leaves the
/// counters consistent before anything that could panic.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The streams open on this server and the bytes they hold.
pub struct Streams {
    limits: StreamLimits,
    open: Mutex<OpenStreams>,
    budget: Budget,
    /// Streams refused by a count limit, and streams dropped (a client too slow, or the shared
    /// budget full), since start.
    refused: std::sync::atomic::AtomicU64,
    dropped: std::sync::atomic::AtomicU64,
}

#[derive(Default)]
struct OpenStreams {
    total: usize,
    per_tenant: HashMap<TenantName, usize>,
    per_token: HashMap<(TenantName, String), usize>,
}

/// The bytes every stream's queued messages and pending reads hold together.
struct Budget {
    limit: usize,
    used: Mutex<usize>,
    freed: Notify,
}

impl Budget {
    /// Takes `wanted` bytes, or what is left if that is at least `least`.
    fn take_up_to(&self, wanted: usize, least: usize) -> Option<usize> {
        let mut used = lock(&self.used);
        let left = self.limit.saturating_sub(*used);
        let taken = wanted.min(left);
        if taken == 0 || taken < least {
            return None;
        }
        *used += taken;
        Some(taken)
    }

    /// Takes `bytes` whatever is left: a message larger than the room reserved for it.
    fn take_over(&self, bytes: usize) {
        *lock(&self.used) += bytes;
    }

    fn give_back(&self, bytes: usize) {
        if bytes == 0 {
            return;
        }
        {
            let mut used = lock(&self.used);
            *used = used.saturating_sub(bytes);
        }
        self.freed.notify_waiters();
    }

    fn used(&self) -> usize {
        *lock(&self.used)
    }
}

impl Streams {
    pub fn new(limits: StreamLimits) -> Self {
        let budget = Budget {
            limit: limits.total_buffer_bytes,
            used: Mutex::new(0),
            freed: Notify::new(),
        };
        Self {
            limits,
            open: Mutex::new(OpenStreams::default()),
            budget,
            refused: std::sync::atomic::AtomicU64::new(0),
            dropped: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Streams refused by a count limit since start.
    pub fn refused_count(&self) -> u64 {
        self.refused.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Streams dropped since start: their client read too slowly, or the shared budget stayed
    /// full.
    pub fn dropped_count(&self) -> u64 {
        self.dropped.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn limits(&self) -> &StreamLimits {
        &self.limits
    }

    /// Streams open now.
    pub fn open_count(&self) -> usize {
        lock(&self.open).total
    }

    /// Bytes held by every stream's queue and pending reads now.
    pub fn buffered_bytes(&self) -> usize {
        self.budget.used()
    }

    /// Admits a stream opened by `actor` about `tenant`, resuming at `resume_from` if dropped
    /// before sending anything, or says which limit refuses it.
    pub fn open<T: Sequenced>(
        self: &Arc<Self>,
        actor: &Actor,
        tenant: &TenantName,
        resume_from: u64,
    ) -> Result<(StreamSender<T>, StreamReceiver<T>), Status> {
        let owner = token_owner(actor, tenant);
        let token = (owner.clone(), actor.id.clone());
        let refused = |status: Status| {
            self.refused
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            status
        };
        {
            let mut open = lock(&self.open);
            let limits = &self.limits;
            if open.total >= limits.max_total {
                return Err(refused(Status::resource_exhausted(format!(
                    "too many concurrent streams on this server: the limit is {} \
                     (--max-streams); try again later",
                    limits.max_total
                ))));
            }
            if open.per_tenant.get(&owner).copied().unwrap_or(0) >= limits.max_per_tenant {
                return Err(refused(Status::resource_exhausted(format!(
                    "too many concurrent streams for tenant {owner}: the limit is {} \
                     (--max-streams-per-tenant); close one of its streams first",
                    limits.max_per_tenant
                ))));
            }
            if open.per_token.get(&token).copied().unwrap_or(0) >= limits.max_per_token {
                return Err(refused(Status::resource_exhausted(format!(
                    "too many concurrent streams for this token: the limit is {} \
                     (--max-streams-per-token); close one of its streams first",
                    limits.max_per_token
                ))));
            }
            open.total += 1;
            *open.per_tenant.entry(owner.clone()).or_default() += 1;
            *open.per_token.entry(token.clone()).or_default() += 1;
        }
        let admission = Admission {
            streams: self.clone(),
            owner,
            token,
        };
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                messages: VecDeque::new(),
                bytes: 0,
                resume_from,
                read_until: resume_from,
                end: None,
                producer_done: false,
                consumer_gone: false,
                waker: None,
            }),
            consumer_moved: Notify::new(),
            streams: self.clone(),
            owner: admission.owner.clone(),
            token_id: actor.id.clone(),
        });
        Ok((
            StreamSender {
                shared: shared.clone(),
            },
            StreamReceiver {
                shared,
                finished: false,
                _admission: admission,
            },
        ))
    }
}

/// A stream's place in the count limits, given back when the stream is dropped.
struct Admission {
    streams: Arc<Streams>,
    owner: TenantName,
    token: (TenantName, String),
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut open = lock(&self.streams.open);
        open.total = open.total.saturating_sub(1);
        if let Some(count) = open.per_tenant.get_mut(&self.owner) {
            *count -= 1;
            if *count == 0 {
                open.per_tenant.remove(&self.owner);
            }
        }
        if let Some(count) = open.per_token.get_mut(&self.token) {
            *count -= 1;
            if *count == 0 {
                open.per_token.remove(&self.token);
            }
        }
    }
}

struct Shared<T> {
    queue: Mutex<Queue<T>>,
    /// The client took a message, or went away.
    consumer_moved: Notify,
    streams: Arc<Streams>,
    /// Whose stream it is, for the log.
    owner: TenantName,
    token_id: String,
}

struct Queue<T> {
    /// Messages and the bytes each holds in the budget.
    messages: VecDeque<(T, usize)>,
    bytes: usize,
    /// The first sequence the client has not been handed (or skipped by the stream's filter).
    resume_from: u64,
    /// Every sequence below this was queued or filtered out by the producer.
    read_until: u64,
    /// How the stream ends once the queue is drained (`None`: it just ends).
    end: Option<Status>,
    producer_done: bool,
    consumer_gone: bool,
    waker: Option<Waker>,
}

impl<T> Queue<T> {
    /// Discards the queued messages; returns the bytes they held.
    fn clear(&mut self) -> usize {
        self.messages.clear();
        std::mem::take(&mut self.bytes)
    }

    fn wake(&mut self) {
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }
}

/// The stream was dropped, or its client went away: the producer stops.
#[derive(Debug)]
pub struct Ended;

/// Room reserved in a stream's buffer and the shared budget, for one read; what is not used is
/// given back when it is dropped.
pub struct Grant {
    bytes: usize,
    streams: Arc<Streams>,
}

impl Grant {
    /// Bytes of messages the read may return.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for Grant {
    fn drop(&mut self) {
        self.streams.budget.give_back(self.bytes);
    }
}

/// The producer's end of a stream.
pub struct StreamSender<T> {
    shared: Arc<Shared<T>>,
}

impl<T: Sequenced> StreamSender<T> {
    fn queue(&self) -> MutexGuard<'_, Queue<T>> {
        lock(&self.shared.queue)
    }

    fn limits(&self) -> &StreamLimits {
        &self.shared.streams.limits
    }

    /// Waits until the stream's buffer has room for a read of `at_most` bytes (or for half the
    /// buffer, if that is less), and the shared budget has room too, and reserves it: at most
    /// `at_most` bytes. A client that takes nothing for the stall timeout meanwhile, or a budget
    /// that stays full as long, ends the stream.
    pub async fn reserve(&self, at_most: usize) -> Result<Grant, Ended> {
        let buffer = self.limits().buffer_bytes;
        let stall = self.limits().stall_timeout;
        let at_most = at_most.max(1);
        let worth_reading = at_most.min(buffer / 2).max(1);
        let has_room = |queue: &Queue<T>| {
            queue.messages.is_empty() || buffer.saturating_sub(queue.bytes) >= worth_reading
        };
        let room = loop {
            let moved = self.shared.consumer_moved.notified();
            {
                let queue = self.queue();
                if queue.consumer_gone || queue.end.is_some() {
                    return Err(Ended);
                }
                if has_room(&queue) {
                    break buffer.saturating_sub(queue.bytes).clamp(1, at_most);
                }
            }
            if tokio::time::timeout(stall, moved).await.is_err() {
                let (stalled, held, resume_from) = {
                    let queue = self.queue();
                    (!has_room(&queue), queue.bytes, queue.resume_from)
                };
                if stalled {
                    self.abort(Status::aborted(format!(
                        "client too slow: {held} bytes of messages waited unread for {} \
                         (stream buffer {buffer} bytes, --stream-buffer-bytes, \
                         --stream-stall-timeout); reconnect with from_sequence = {resume_from}",
                        seconds(stall)
                    )));
                    return Err(Ended);
                }
            }
        };
        let budget = &self.shared.streams.budget;
        let deadline = tokio::time::Instant::now() + stall;
        loop {
            let freed = budget.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            let least = (room / 4).clamp(1, MIN_GRANT_BYTES);
            if let Some(bytes) = budget.take_up_to(room, least) {
                return Ok(Grant {
                    bytes,
                    streams: self.shared.streams.clone(),
                });
            }
            if self.queue().consumer_gone {
                return Err(Ended);
            }
            if tokio::time::timeout_at(deadline, freed).await.is_err() {
                let resume_from = self.queue().resume_from;
                self.abort(Status::resource_exhausted(format!(
                    "the server's stream buffers are full ({} bytes for every stream together, \
                     --stream-buffer-total-bytes) and none freed up for {}; reconnect with \
                     from_sequence = {resume_from}",
                    budget.limit,
                    seconds(stall)
                )));
                return Err(Ended);
            }
        }
    }

    /// Queues `message` on the room of `grant` (a message larger than what is left of it takes
    /// the difference from the shared budget).
    pub fn push(&self, grant: &mut Grant, message: T) -> Result<(), Ended> {
        let size = message.encoded_len() + FRAME_HEADER_BYTES;
        if size > grant.bytes {
            self.shared.streams.budget.take_over(size - grant.bytes);
            grant.bytes = 0;
        } else {
            grant.bytes -= size;
        }
        let mut queue = self.queue();
        if queue.consumer_gone || queue.end.is_some() {
            drop(queue);
            self.shared.streams.budget.give_back(size);
            return Err(Ended);
        }
        queue.read_until = queue.read_until.max(message.sequence().saturating_add(1));
        queue.messages.push_back((message, size));
        queue.bytes += size;
        queue.wake();
        Ok(())
    }

    /// Notes that every sequence below `next` was queued or filtered out: a client that has
    /// taken every queued message resumes at `next`.
    pub fn read_until(&self, next: u64) {
        let mut queue = self.queue();
        queue.read_until = queue.read_until.max(next);
        if queue.messages.is_empty() {
            queue.resume_from = queue.resume_from.max(queue.read_until);
        }
    }

    /// The first sequence the client has not been handed.
    pub fn resume_from(&self) -> u64 {
        self.queue().resume_from
    }

    /// Ends the stream after the queued messages, with `status` if given.
    pub fn finish(self, status: Option<Status>) {
        let mut queue = self.queue();
        if queue.end.is_none() {
            queue.end = status;
        }
        queue.producer_done = true;
        queue.wake();
    }

    /// Ends the stream now with `status`: the queued messages are discarded (the client never
    /// sees them; `status` should say where to resume).
    pub fn abort(&self, status: Status) {
        if matches!(
            status.code(),
            tonic::Code::Aborted | tonic::Code::ResourceExhausted
        ) {
            tracing::warn!(
                tenant = %self.shared.owner,
                token = %self.shared.token_id,
                "dropping a stream: {}",
                status.message()
            );
            self.shared
                .streams
                .dropped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let released = {
            let mut queue = self.queue();
            let released = queue.clear();
            let resume_from = queue.resume_from;
            queue.end = Some(with_resume_trailer(status, resume_from));
            queue.producer_done = true;
            queue.wake();
            released
        };
        self.shared.streams.budget.give_back(released);
    }

    /// Resolves once the client has gone away.
    pub async fn closed(&self) {
        loop {
            let moved = self.shared.consumer_moved.notified();
            if self.queue().consumer_gone {
                return;
            }
            moved.await;
        }
    }
}

impl<T> Drop for StreamSender<T> {
    fn drop(&mut self) {
        let mut queue = lock(&self.shared.queue);
        queue.producer_done = true;
        queue.wake();
    }
}

fn with_resume_trailer(status: Status, resume_from: u64) -> Status {
    let mut metadata = MetadataMap::new();
    if let Ok(value) = resume_from.to_string().parse() {
        metadata.insert(RESUME_FROM_TRAILER, value);
    }
    Status::with_metadata(status.code(), status.message(), metadata)
}

fn seconds(duration: Duration) -> String {
    format!("{} s", duration.as_secs_f64())
}

/// The client's end of a stream: what tonic sends. Holds the stream's place in the count limits
/// until tonic drops it.
pub struct StreamReceiver<T> {
    shared: Arc<Shared<T>>,
    finished: bool,
    _admission: Admission,
}

impl<T: Sequenced> Stream for StreamReceiver<T> {
    type Item = Result<T, Status>;

    fn poll_next(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.finished {
            return Poll::Ready(None);
        }
        let shared = self.shared.clone();
        let mut queue = lock(&shared.queue);
        if let Some((message, size)) = queue.messages.pop_front() {
            queue.bytes -= size;
            queue.resume_from = message.sequence().saturating_add(1);
            if queue.messages.is_empty() {
                queue.resume_from = queue.resume_from.max(queue.read_until);
            }
            drop(queue);
            shared.streams.budget.give_back(size);
            shared.consumer_moved.notify_one();
            return Poll::Ready(Some(Ok(message)));
        }
        if queue.producer_done {
            let end = queue.end.take();
            drop(queue);
            self.finished = true;
            return Poll::Ready(end.map(Err));
        }
        queue.waker = Some(context.waker().clone());
        Poll::Pending
    }
}

impl<T> Drop for StreamReceiver<T> {
    fn drop(&mut self) {
        let released = {
            let mut queue = lock(&self.shared.queue);
            queue.consumer_gone = true;
            queue.clear()
        };
        self.shared.streams.budget.give_back(released);
        self.shared.consumer_moved.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use roster_proto::v1 as pb;
    use tokio_stream::StreamExt;

    use super::*;

    fn limits() -> StreamLimits {
        StreamLimits {
            max_per_token: 2,
            max_per_tenant: 3,
            max_total: 4,
            buffer_bytes: 4096,
            total_buffer_bytes: 6000,
            stall_timeout: Duration::from_millis(200),
        }
    }

    fn actor(kind: ActorKind, id: &str) -> Actor {
        Actor {
            kind,
            id: id.to_owned(),
            display: String::new(),
        }
    }

    fn tenant(name: &str) -> TenantName {
        TenantName::parse(name).unwrap()
    }

    fn event(sequence: u64, bytes: usize) -> pb::Event {
        pb::Event {
            sequence,
            causation_id: "x".repeat(bytes),
            ..Default::default()
        }
    }

    type Ends = (StreamSender<pb::Event>, StreamReceiver<pb::Event>);

    #[test]
    fn count_limits_name_the_limit_and_free_up_when_streams_end() {
        let streams = Arc::new(Streams::new(limits()));
        let acme = tenant("acme");
        let first = actor(ActorKind::ScimToken, "t1");
        let second = actor(ActorKind::ScimToken, "t2");
        let a: Ends = streams.open(&first, &acme, 1).unwrap();
        let _b: Ends = streams.open(&first, &acme, 1).unwrap();
        let refused = streams.open::<pb::Event>(&first, &acme, 1).err().unwrap();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert!(
            refused
                .message()
                .contains("this token: the limit is 2 (--max-streams-per-token)"),
            "{}",
            refused.message()
        );
        let _c: Ends = streams.open(&second, &acme, 1).unwrap();
        let refused = streams.open::<pb::Event>(&second, &acme, 1).err().unwrap();
        assert!(
            refused
                .message()
                .contains("tenant acme: the limit is 3 (--max-streams-per-tenant)"),
            "{}",
            refused.message()
        );
        // The admin token counts as the system tenant's, not as the tenant it watches.
        let admin = actor(ActorKind::Admin, "admin");
        let _d: Ends = streams.open(&admin, &acme, 1).unwrap();
        let refused = streams
            .open::<pb::Event>(&admin, &tenant("globex"), 1)
            .err()
            .unwrap();
        assert!(
            refused
                .message()
                .contains("on this server: the limit is 4 (--max-streams)"),
            "{}",
            refused.message()
        );
        assert_eq!(streams.open_count(), 4);
        // A stream is counted until tonic drops its receiving end.
        drop(a.0);
        assert_eq!(streams.open_count(), 4);
        drop(a.1);
        assert_eq!(streams.open_count(), 3);
        let _e: Ends = streams.open(&first, &acme, 1).unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_stops_reading_is_dropped_with_where_to_resume() {
        let streams = Arc::new(Streams::new(limits()));
        let (sender, mut receiver): Ends = streams
            .open(&actor(ActorKind::ScimToken, "t"), &tenant("acme"), 7)
            .unwrap();
        let mut grant = sender.reserve(usize::MAX).await.unwrap();
        assert_eq!(grant.bytes(), 4096);
        for sequence in 7..10 {
            sender.push(&mut grant, event(sequence, 1200)).unwrap();
        }
        drop(grant);
        let buffered = streams.buffered_bytes();
        assert!(buffered > 3600 && buffered < 3700, "{buffered}");
        assert_eq!(receiver.next().await.unwrap().unwrap().sequence, 7);
        // Two messages wait, more than half the buffer: no room until the client reads.
        let dropped = sender.reserve(usize::MAX).await;
        assert!(dropped.is_err());
        assert_eq!(
            streams.buffered_bytes(),
            0,
            "the queued messages are discarded"
        );
        let ended = receiver.next().await.unwrap().unwrap_err();
        assert_eq!(ended.code(), tonic::Code::Aborted);
        assert!(
            ended.message().contains("client too slow")
                && ended.message().contains("reconnect with from_sequence = 8"),
            "{}",
            ended.message()
        );
        assert_eq!(ended.metadata().get(RESUME_FROM_TRAILER).unwrap(), "8");
        assert!(receiver.next().await.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_reads_slowly_but_steadily_is_never_dropped() {
        let streams = Arc::new(Streams::new(limits()));
        let (sender, mut receiver): Ends = streams
            .open(&actor(ActorKind::ScimToken, "t"), &tenant("acme"), 1)
            .unwrap();
        let producer = tokio::spawn(async move {
            for sequence in 1..=100u64 {
                let mut grant = sender.reserve(usize::MAX).await.unwrap();
                sender.push(&mut grant, event(sequence, 900)).unwrap();
            }
            sender.finish(None);
        });
        let mut seen = 0;
        while let Some(message) = receiver.next().await {
            seen += 1;
            assert_eq!(message.unwrap().sequence, seen);
            // Slower than the producer, but well within the stall timeout between reads.
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        assert_eq!(seen, 100);
        producer.await.unwrap();
        assert_eq!(streams.buffered_bytes(), 0);
    }

    #[tokio::test]
    async fn the_resume_point_is_the_first_sequence_not_handed_to_the_client() {
        let streams = Arc::new(Streams::new(limits()));
        let (sender, mut receiver): Ends = streams
            .open(&actor(ActorKind::ScimToken, "t"), &tenant("acme"), 1)
            .unwrap();
        assert_eq!(sender.resume_from(), 1);
        let mut grant = sender.reserve(usize::MAX).await.unwrap();
        sender.push(&mut grant, event(2, 10)).unwrap();
        // 3 was filtered out.
        sender.read_until(4);
        assert_eq!(sender.resume_from(), 1, "2 is still queued");
        assert_eq!(receiver.next().await.unwrap().unwrap().sequence, 2);
        assert_eq!(sender.resume_from(), 4, "handed 2, and 3 was skipped");
        sender.read_until(10);
        assert_eq!(sender.resume_from(), 10, "nothing queued: skipped up to 10");
        sender.push(&mut grant, event(12, 10)).unwrap();
        sender.read_until(14);
        assert_eq!(sender.resume_from(), 10, "12 is queued, not handed");
        sender.abort(Status::aborted("dropped"));
        let ended = receiver.next().await.unwrap().unwrap_err();
        assert_eq!(ended.metadata().get(RESUME_FROM_TRAILER).unwrap(), "10");
        assert!(receiver.next().await.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn the_shared_budget_bounds_every_stream_together() {
        let streams = Arc::new(Streams::new(limits()));
        let acme = tenant("acme");
        let (first, _first_receiver): Ends = streams
            .open(&actor(ActorKind::ScimToken, "t1"), &acme, 1)
            .unwrap();
        let (second, mut second_receiver): Ends = streams
            .open(&actor(ActorKind::ScimToken, "t2"), &acme, 1)
            .unwrap();
        let held = first.reserve(usize::MAX).await.unwrap();
        assert_eq!(held.bytes(), 4096);
        // 6000 - 4096 left: more than the least worth reading, less than a buffer.
        let partial = second.reserve(usize::MAX).await.unwrap();
        assert_eq!(partial.bytes(), 6000 - 4096);
        drop(partial);
        let mut partial = second.reserve(usize::MAX).await.unwrap();
        second.push(&mut partial, event(1, 1800)).unwrap();
        drop(partial);
        // Nothing left and nothing freed for the stall timeout: the stream ends, resumable.
        assert!(second.reserve(usize::MAX).await.is_err());
        let ended = second_receiver.next().await.unwrap().unwrap_err();
        assert_eq!(ended.code(), tonic::Code::ResourceExhausted);
        assert!(
            ended.message().contains("--stream-buffer-total-bytes")
                && ended.message().contains("from_sequence = 1"),
            "{}",
            ended.message()
        );
        drop(held);
        assert_eq!(streams.buffered_bytes(), 0);
    }

    #[test]
    fn the_flags_default_to_the_default_limits() {
        #[derive(clap::Parser)]
        struct Flags {
            #[command(flatten)]
            limits: StreamLimits,
        }
        let parsed = <Flags as clap::Parser>::try_parse_from(["roster"]).unwrap();
        assert_eq!(parsed.limits, StreamLimits::default());
    }

    #[test]
    fn sizes_and_timeouts_parse_with_units() {
        assert_eq!(parse_bytes("1MiB"), Ok(1 << 20));
        assert_eq!(parse_bytes("512KiB"), Ok(512 << 10));
        assert_eq!(parse_bytes("64 MB"), Ok(64 << 20));
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert!(parse_bytes("0").is_err());
        assert!(parse_bytes("1TB").is_err());
        assert_eq!(parse_timeout("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_timeout("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_timeout("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_timeout("30").is_err());
        assert!(parse_timeout("0s").is_err());
    }
}
