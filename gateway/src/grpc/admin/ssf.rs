//! The Admin service's Shared Signals calls: listing a tenant's streams with where their
//! delivery stands, changing a stream's status (the receiver is told), deleting one, and
//! rotating the SET signing key.

use roster_engine::codec::{ssf_status_from_proto, ssf_status_to_proto, timestamp_to_proto};
use roster_engine::domain::{Command, SsfDelivery, SsfStreamId, SsfStreamRecord, TenantName};
use roster_proto::v1 as pb;
use tonic::{Request, Response, Status};

use super::{AdminService, duration_micros, status, stored};

/// How long earlier signing keys stay published when the request does not say.
const DEFAULT_KEY_OVERLAP_SECONDS: u64 = 24 * 3600;
/// Longest overlap: 30 days.
const MAX_KEY_OVERLAP_MICROS: i64 = 30 * 24 * 3_600_000_000;

fn stream_id(text: &str) -> Result<SsfStreamId, Status> {
    text.parse()
        .map_err(|_| Status::invalid_argument(format!("{text:?} is not a stream id")))
}

impl AdminService {
    async fn stream_info(
        &self,
        tenant: &TenantName,
        stream: &SsfStreamRecord,
    ) -> pb::SsfStreamInfo {
        let delivery = self
            .state
            .ssf_delivery
            .delivery(tenant, &stream.id)
            .await
            .unwrap_or_default();
        let receiver_name = stored(self.store().token(tenant, &stream.receiver))
            .ok()
            .flatten()
            .map(|token| token.name)
            .unwrap_or_default();
        let (method, endpoint_url) = match &stream.config.delivery {
            SsfDelivery::Push { endpoint_url, .. } => ("push", endpoint_url.clone()),
            SsfDelivery::Poll => (
                "poll",
                format!("{}/poll/{}", self.state.ssf.issuer(tenant), stream.id),
            ),
        };
        pb::SsfStreamInfo {
            tenant: tenant.to_string(),
            stream_id: stream.id.to_string(),
            receiver: stream.receiver.0.clone(),
            receiver_name,
            delivery_method: method.to_owned(),
            endpoint_url,
            events_requested: stream.config.events_requested.clone(),
            events_delivered: stream
                .events_delivered()
                .into_iter()
                .map(str::to_owned)
                .collect(),
            description: stream.config.description.clone(),
            status: ssf_status_to_proto(stream.status).into(),
            status_reason: stream.status_reason.clone(),
            removed_subjects: u32::try_from(stream.removed_subjects.len()).unwrap_or(u32::MAX),
            created_at: Some(timestamp_to_proto(stream.created_at)),
            pending: u32::try_from(delivery.pending.len()).unwrap_or(u32::MAX),
            delivery: Some(self.delivery_proto(tenant, &delivery)),
        }
    }

    pub(super) async fn list_ssf_streams_call(
        &self,
        request: Request<pb::ListSsfStreamsRequest>,
    ) -> Result<Response<pb::ListSsfStreamsResponse>, Status> {
        self.context(&request).await?;
        let tenant = self.existing_tenant(&request.get_ref().tenant).await?;
        let records = stored(self.store().tenant(&tenant))?
            .map(|record| record.ssf_streams)
            .unwrap_or_default();
        let mut streams = Vec::with_capacity(records.len());
        for record in &records {
            streams.push(self.stream_info(&tenant, record).await);
        }
        Ok(Response::new(pb::ListSsfStreamsResponse { streams }))
    }

    pub(super) async fn set_ssf_stream_status_call(
        &self,
        request: Request<pb::SetSsfStreamStatusRequest>,
    ) -> Result<Response<pb::SsfStreamInfo>, Status> {
        let context = self.context(&request).await?;
        let request = request.into_inner();
        let tenant = self.existing_tenant(&request.tenant).await?;
        let id = stream_id(&request.stream_id)?;
        let wanted = ssf_status_from_proto(request.status).ok_or_else(|| {
            Status::invalid_argument("status must be enabled, paused or disabled")
        })?;
        let reason = if request.reason.trim().is_empty() {
            format!("{} by {}", wanted.as_str(), context.actor.display)
        } else {
            request.reason
        };
        let executed = self
            .state
            .engine
            .execute(
                &tenant,
                Command::SetSsfStreamStatus {
                    stream_id: id,
                    receiver: None,
                    status: wanted,
                    reason,
                },
                context,
            )
            .await
            .map_err(status)?;
        self.state.ssf_delivery.changed(&tenant);
        let record = executed
            .state
            .tenant
            .as_ref()
            .and_then(|record| record.ssf_stream(&id))
            .cloned()
            .ok_or_else(|| Status::not_found(format!("no stream {id} in tenant {tenant}")))?;
        tracing::info!(%tenant, stream = %id, status = wanted.as_str(), "SSF stream status set by an admin");
        Ok(Response::new(self.stream_info(&tenant, &record).await))
    }

    pub(super) async fn delete_ssf_stream_call(
        &self,
        request: Request<pb::SsfStreamRequest>,
    ) -> Result<Response<pb::DeleteSsfStreamResponse>, Status> {
        let context = self.context(&request).await?;
        let request = request.into_inner();
        let tenant = self.existing_tenant(&request.tenant).await?;
        let id = stream_id(&request.stream_id)?;
        let reason = format!("deleted by {}", context.actor.display);
        self.state
            .engine
            .execute(
                &tenant,
                Command::DeleteSsfStream {
                    stream_id: id,
                    receiver: None,
                    reason,
                },
                context,
            )
            .await
            .map_err(status)?;
        self.state.ssf_delivery.changed(&tenant);
        tracing::info!(%tenant, stream = %id, "SSF stream deleted by an admin");
        Ok(Response::new(pb::DeleteSsfStreamResponse {}))
    }

    pub(super) async fn rotate_ssf_signing_key_call(
        &self,
        request: Request<pb::RotateSsfSigningKeyRequest>,
    ) -> Result<Response<pb::RotateSsfSigningKeyResponse>, Status> {
        self.context(&request).await?;
        let overlap = match &request.get_ref().overlap {
            Some(overlap) => {
                let micros = duration_micros(overlap, "overlap")?;
                if micros > MAX_KEY_OVERLAP_MICROS {
                    return Err(Status::invalid_argument("overlap must be at most 30 days"));
                }
                std::time::Duration::from_micros(u64::try_from(micros).unwrap_or(0))
            }
            None => std::time::Duration::from_secs(DEFAULT_KEY_OVERLAP_SECONDS),
        };
        let key_id = self
            .state
            .ssf
            .signing
            .rotate(overlap)
            .await
            .map_err(|error| {
                tracing::warn!(%error, "rotating the SSF signing key failed");
                Status::unavailable(format!("rotating the signing key failed: {error}"))
            })?;
        tracing::info!(%key_id, "SSF signing key rotated");
        Ok(Response::new(pb::RotateSsfSigningKeyResponse { key_id }))
    }
}
