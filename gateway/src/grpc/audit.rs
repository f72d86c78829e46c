//! The `Audit` gRPC service: streaming replay of a tenant's audit records, and chain
//! verification. The admin token reaches every tenant; a tenant token its own.
//!
//! A replay reads a buffer's worth of records at a time: it is bounded in bytes and dropped when
//! its client stops reading, with the sequence to resume from ([`super::streams`]).

use std::pin::Pin;

use roster_engine::codec::{actor_kind_to_proto, timestamp_to_proto};
use roster_engine::domain::{ActorKind, TenantName, Timestamp};
use roster_projector::{AuditRecord, AuditTrail};
use roster_proto::prost::Message;
use roster_proto::v1 as pb;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::admin::tenant_name;
use crate::state::AppState;
use crate::streams::{READ_BYTES, StreamSender};

/// Records read from the trail per step, at most (kept or not by the filter).
const READ_RECORDS: usize = 4096;

pub struct AuditService {
    state: AppState,
}

impl AuditService {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

fn actor_kind(kind: &str) -> ActorKind {
    match kind {
        "scim_token" => ActorKind::ScimToken,
        "admin" => ActorKind::Admin,
        "jit" => ActorKind::Jit,
        _ => ActorKind::System,
    }
}

fn to_proto(record: &AuditRecord) -> pb::AuditRecord {
    let time = |text: &str| Timestamp::parse_rfc3339(text).map(timestamp_to_proto);
    pb::AuditRecord {
        sequence: record.sequence,
        event_id: record.event_id.clone(),
        tenant: record.tenant.clone(),
        event_type: record.event_type.clone(),
        target: record.target.clone(),
        actor: Some(pb::Actor {
            kind: actor_kind_to_proto(actor_kind(&record.actor.kind)).into(),
            id: record.actor.id.clone(),
            display: record.actor.display.clone(),
        }),
        occurred_at: time(&record.occurred_at),
        recorded_at: time(&record.recorded_at),
        source: Some(pb::Source {
            ip: record.source.ip.clone(),
            user_agent: record.source.user_agent.clone(),
            request_id: record.source.request_id.clone(),
        }),
        outcome: record.outcome.clone(),
        changes_json: serde_json::Value::Object(record.changes.clone()).to_string(),
        prev_hash: record.prev_hash.clone(),
        hash: record.hash.clone(),
        json: serde_json::to_string(record).unwrap_or_default(),
    }
}

/// Which records a replay returns.
struct ReplayFilter {
    from_time: Option<Timestamp>,
    to_time: Option<Timestamp>,
    target: String,
    actor: String,
    event_types: Vec<String>,
}

impl ReplayFilter {
    fn keeps(&self, record: &AuditRecord) -> bool {
        let recorded = Timestamp::parse_rfc3339(&record.recorded_at);
        if let (Some(from), Some(recorded)) = (self.from_time, recorded)
            && recorded < from
        {
            return false;
        }
        if let (Some(to), Some(recorded)) = (self.to_time, recorded)
            && recorded >= to
        {
            return false;
        }
        (self.target.is_empty() || record.target == self.target)
            && (self.actor.is_empty()
                || record.actor.id == self.actor
                || record.actor.kind == self.actor)
            && (self.event_types.is_empty()
                || self
                    .event_types
                    .iter()
                    .any(|kind| kind.eq_ignore_ascii_case(&record.event_type)))
    }
}

/// What one step of a replay read.
struct ReplayStep {
    /// The records the filter keeps, in order.
    records: Vec<pb::AuditRecord>,
    /// Where the next step starts; `None`: the replay is complete.
    next: Option<u64>,
}

/// Reads the records of `tenant` from `from` to `to`, at most [`READ_RECORDS`] of them and, past
/// the first kept, at most `limit_bytes` of kept records.
fn replay_step(
    audit: &AuditTrail,
    tenant: &TenantName,
    filter: &ReplayFilter,
    from: u64,
    to: u64,
    limit_bytes: usize,
) -> Result<ReplayStep, Status> {
    let mut step = ReplayStep {
        records: Vec::new(),
        next: None,
    };
    let mut bytes = 0;
    for (read, record) in audit.records(tenant, from, to).enumerate() {
        let record = record.map_err(|error| Status::data_loss(error.to_string()))?;
        if read == READ_RECORDS || (!step.records.is_empty() && bytes >= limit_bytes) {
            step.next = Some(record.sequence);
            break;
        }
        if filter.keeps(&record) {
            let message = to_proto(&record);
            bytes += message.encoded_len();
            step.records.push(message);
        }
    }
    Ok(step)
}

/// Streams the replay's records to `sender`, a buffer's worth at a time.
async fn replay(
    audit: AuditTrail,
    tenant: TenantName,
    filter: ReplayFilter,
    mut from: u64,
    to: u64,
    sender: StreamSender<pb::AuditRecord>,
) {
    let filter = std::sync::Arc::new(filter);
    loop {
        let Ok(mut grant) = sender.reserve(READ_BYTES).await else {
            return;
        };
        let (reader, of, keeps, limit_bytes) =
            (audit.clone(), tenant.clone(), filter.clone(), grant.bytes());
        let step = tokio::task::spawn_blocking(move || {
            replay_step(&reader, &of, &keeps, from, to, limit_bytes)
        })
        .await;
        let step = match step {
            Ok(Ok(step)) => step,
            Ok(Err(status)) => {
                sender.finish(Some(status));
                return;
            }
            Err(_) => return,
        };
        for record in step.records {
            if sender.push(&mut grant, record).is_err() {
                return;
            }
        }
        match step.next {
            Some(next) => {
                sender.read_until(next);
                from = next;
            }
            None => {
                sender.finish(None);
                return;
            }
        }
    }
}

type RecordStream = Pin<Box<dyn Stream<Item = Result<pb::AuditRecord, Status>> + Send>>;

#[tonic::async_trait]
impl pb::audit_server::Audit for AuditService {
    type ReplayStream = RecordStream;

    async fn replay(
        &self,
        request: Request<pb::ReplayRequest>,
    ) -> Result<Response<Self::ReplayStream>, Status> {
        let tenant = tenant_name(&request.get_ref().tenant)?;
        let actor = super::authorize_tenant(&self.state, request.metadata(), &tenant).await?;
        let request = request.into_inner();
        let filter = ReplayFilter {
            from_time: request
                .from_time
                .as_ref()
                .map(roster_engine::codec::timestamp_from_proto),
            to_time: request
                .to_time
                .as_ref()
                .map(roster_engine::codec::timestamp_from_proto),
            target: request.target,
            actor: request.actor,
            event_types: request.event_types,
        };
        let from = request.from_sequence;
        let to = if request.to_sequence == 0 {
            u64::MAX
        } else {
            request.to_sequence
        };
        // Everything acknowledged before the call is in the trail.
        self.state
            .read_barrier()
            .await
            .map_err(|error| Status::unavailable(error.to_string()))?;
        let (sender, receiver) = self.state.streams.open(&actor, &tenant, from.max(1))?;
        tokio::spawn(replay(
            self.state.audit.clone(),
            tenant,
            filter,
            from,
            to,
            sender,
        ));
        Ok(Response::new(Box::pin(receiver)))
    }

    async fn verify(
        &self,
        request: Request<pb::VerifyRequest>,
    ) -> Result<Response<pb::VerifyResponse>, Status> {
        let tenant = tenant_name(&request.get_ref().tenant)?;
        super::authorize_tenant(&self.state, request.metadata(), &tenant).await?;
        self.state
            .read_barrier()
            .await
            .map_err(|error| Status::unavailable(error.to_string()))?;
        let audit = self.state.audit.clone();
        let verification = tokio::task::spawn_blocking(move || audit.verify(&tenant))
            .await
            .map_err(|error| Status::internal(error.to_string()))?
            .map_err(|error| Status::unavailable(error.to_string()))?;
        Ok(Response::new(match verification.first_break {
            None => pb::VerifyResponse {
                valid: true,
                records: verification.records,
                head_hash: verification.head,
                first_bad_sequence: 0,
                reason: String::new(),
            },
            Some(broken) => pb::VerifyResponse {
                valid: false,
                records: verification.records,
                head_hash: verification.head,
                first_bad_sequence: broken.sequence,
                reason: broken.reason,
            },
        }))
    }
}
