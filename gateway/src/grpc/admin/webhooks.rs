//! The Admin service's webhook calls: adding a subscription (its secret shown once), listing,
//! showing with where delivery stands, pausing, resuming, rotating the secret and removing.

use roster_engine::codec::{timestamp_to_proto, webhook_status_to_proto};
use roster_engine::domain::{
    Command, NewWebhook, TenantName, WebhookId, WebhookRecord, WebhookStatus,
};
use roster_proto::v1 as pb;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::{AdminService, duration_micros, status, stored};
use crate::webhooks::Webhooks;

/// How long a rotated-out secret keeps signing when the request does not say.
const DEFAULT_OVERLAP_MICROS: i64 = 24 * 3_600_000_000;
/// Longest overlap: 30 days.
const MAX_OVERLAP_MICROS: i64 = 30 * 24 * 3_600_000_000;

fn webhook_id(text: &str) -> Result<WebhookId, Status> {
    text.parse()
        .map_err(|_| Status::invalid_argument(format!("{text:?} is not a webhook id")))
}

impl AdminService {
    fn webhooks(&self) -> &Webhooks {
        &self.state.webhooks
    }

    async fn webhook_info(&self, tenant: &TenantName, record: &WebhookRecord) -> pb::WebhookInfo {
        let delivery = self
            .webhooks()
            .delivery(tenant, &record.id)
            .await
            .unwrap_or_default();
        pb::WebhookInfo {
            tenant: tenant.to_string(),
            webhook_id: record.id.to_string(),
            url: record.url.clone(),
            event_types: record.event_types.clone(),
            description: record.description.clone(),
            status: webhook_status_to_proto(record.status).into(),
            status_reason: record.status_reason.clone(),
            created_at: Some(timestamp_to_proto(record.created_at)),
            secret_generation: record.secret_generation,
            previous_secret_expires_at: record
                .previous_secret_expires_at(self.state.clock.now())
                .map(timestamp_to_proto),
            delivery: Some(self.delivery_proto(tenant, &delivery)),
        }
    }

    /// Where a webhook's or a stream's delivery stands, as the Admin service shows it.
    pub(super) fn delivery_proto(
        &self,
        tenant: &TenantName,
        delivery: &crate::webhooks::Delivery,
    ) -> pb::WebhookDelivery {
        let failure = delivery.last_failure.as_ref();
        let at =
            |micros: i64| timestamp_to_proto(roster_engine::domain::Timestamp::from_micros(micros));
        pb::WebhookDelivery {
            delivered_through: delivery.delivered_through,
            tenant_head: self.state.engine.log().tenant_head(tenant).unwrap_or(0),
            delivered_total: delivery.delivered_total,
            failed_attempts_total: delivery.failed_attempts_total,
            last_failure_status: failure.map_or(0, |failure| u32::from(failure.status)),
            last_failure: failure
                .map(crate::webhooks::describe_failure)
                .unwrap_or_default(),
            last_failure_at: failure.map(|failure| at(failure.at)),
            attempts: delivery.attempts,
            next_attempt_at: delivery.next_attempt_at.map(at),
        }
    }

    fn stored_webhook(&self, tenant: &TenantName, id: &WebhookId) -> Result<WebhookRecord, Status> {
        stored(self.store().tenant(tenant))?
            .and_then(|record| record.webhook(id).cloned())
            .ok_or_else(|| Status::not_found(format!("no webhook {id} in tenant {tenant}")))
    }

    /// Runs `command` on `tenant`'s webhook `id`, wakes delivery, and returns the webhook after
    /// it (`None`: removed).
    async fn run(
        &self,
        tenant: &TenantName,
        id: WebhookId,
        command: Command,
        context: roster_engine::engine::CommandContext,
    ) -> Result<(Option<WebhookRecord>, Option<u64>), Status> {
        let executed = self
            .state
            .engine
            .execute(tenant, command, context)
            .await
            .map_err(status)?;
        self.webhooks().changed(tenant);
        let record = executed
            .state
            .tenant
            .as_ref()
            .and_then(|record| record.webhook(&id))
            .cloned();
        Ok((record, executed.last_sequence()))
    }

    pub(super) async fn add_webhook_call(
        &self,
        request: Request<pb::AddWebhookRequest>,
    ) -> Result<Response<pb::WebhookSecret>, Status> {
        let context = self.context(&request).await?;
        let request = request.into_inner();
        let tenant = self.existing_tenant(&request.tenant).await?;
        let webhooks = self.webhooks();
        let id = WebhookId(Uuid::now_v7());
        let command = Command::AddWebhook(NewWebhook {
            id,
            url: request.url,
            event_types: request.event_types,
            description: request.description,
        });
        let (record, sequence) = self.run(&tenant, id, command, context).await?;
        if let Some(sequence) = sequence {
            webhooks.start_after(&tenant, &id, sequence).await;
            webhooks.changed(&tenant);
        }
        let record =
            record.ok_or_else(|| Status::internal("the new webhook could not be read back"))?;
        tracing::info!(%tenant, webhook = %id, url = %record.url, "webhook added");
        Ok(Response::new(pb::WebhookSecret {
            webhook: Some(self.webhook_info(&tenant, &record).await),
            secret: webhooks.keys().whsec(&id, record.secret_generation),
        }))
    }

    pub(super) async fn list_webhooks_call(
        &self,
        request: Request<pb::ListWebhooksRequest>,
    ) -> Result<Response<pb::ListWebhooksResponse>, Status> {
        self.context(&request).await?;
        let tenant = self.existing_tenant(&request.get_ref().tenant).await?;
        let records = stored(self.store().tenant(&tenant))?
            .map(|record| record.webhooks)
            .unwrap_or_default();
        let mut webhooks = Vec::with_capacity(records.len());
        for record in &records {
            webhooks.push(self.webhook_info(&tenant, record).await);
        }
        Ok(Response::new(pb::ListWebhooksResponse { webhooks }))
    }

    pub(super) async fn get_webhook_call(
        &self,
        request: Request<pb::WebhookRequest>,
    ) -> Result<Response<pb::WebhookInfo>, Status> {
        self.context(&request).await?;
        let request = request.into_inner();
        let tenant = self.existing_tenant(&request.tenant).await?;
        let record = self.stored_webhook(&tenant, &webhook_id(&request.webhook_id)?)?;
        Ok(Response::new(self.webhook_info(&tenant, &record).await))
    }

    /// Runs a command on one webhook and answers with the webhook after it.
    async fn webhook_command(
        &self,
        request: Request<pb::WebhookRequest>,
        command: impl FnOnce(WebhookId, &str) -> Command,
    ) -> Result<(TenantName, WebhookId, Option<WebhookRecord>), Status> {
        let context = self.context(&request).await?;
        let request = request.into_inner();
        let tenant = self.existing_tenant(&request.tenant).await?;
        let id = webhook_id(&request.webhook_id)?;
        let command = command(id, &context.actor.display);
        let (record, _) = self.run(&tenant, id, command, context).await?;
        Ok((tenant, id, record))
    }

    pub(super) async fn set_webhook_status_call(
        &self,
        request: Request<pb::WebhookRequest>,
        wanted: WebhookStatus,
    ) -> Result<Response<pb::WebhookInfo>, Status> {
        let verb = match wanted {
            WebhookStatus::Paused => "paused",
            _ => "resumed",
        };
        let (tenant, id, record) = self
            .webhook_command(request, |webhook_id, by| Command::SetWebhookStatus {
                webhook_id,
                status: wanted,
                reason: format!("{verb} by {by}"),
            })
            .await?;
        let record = record
            .ok_or_else(|| Status::not_found(format!("no webhook {id} in tenant {tenant}")))?;
        tracing::info!(%tenant, webhook = %id, "webhook {verb}");
        Ok(Response::new(self.webhook_info(&tenant, &record).await))
    }

    pub(super) async fn remove_webhook_call(
        &self,
        request: Request<pb::WebhookRequest>,
    ) -> Result<Response<pb::RemoveWebhookResponse>, Status> {
        let (tenant, id, _) = self
            .webhook_command(request, |webhook_id, by| Command::RemoveWebhook {
                webhook_id,
                reason: format!("removed by {by}"),
            })
            .await?;
        tracing::info!(%tenant, webhook = %id, "webhook removed");
        Ok(Response::new(pb::RemoveWebhookResponse {}))
    }

    pub(super) async fn rotate_webhook_secret_call(
        &self,
        request: Request<pb::RotateWebhookSecretRequest>,
    ) -> Result<Response<pb::WebhookSecret>, Status> {
        let context = self.context(&request).await?;
        let request = request.into_inner();
        let tenant = self.existing_tenant(&request.tenant).await?;
        let webhooks = self.webhooks();
        let id = webhook_id(&request.webhook_id)?;
        let overlap = match &request.overlap {
            Some(overlap) => duration_micros(overlap, "overlap")?,
            None => DEFAULT_OVERLAP_MICROS,
        };
        if overlap > MAX_OVERLAP_MICROS {
            return Err(Status::invalid_argument("overlap must be at most 30 days"));
        }
        let command = Command::RotateWebhookSecret {
            webhook_id: id,
            previous_expires_at: context.now.plus_micros(overlap),
        };
        let (record, _) = self.run(&tenant, id, command, context).await?;
        let record = record
            .ok_or_else(|| Status::not_found(format!("no webhook {id} in tenant {tenant}")))?;
        tracing::info!(%tenant, webhook = %id, generation = record.secret_generation, "webhook secret rotated");
        Ok(Response::new(pb::WebhookSecret {
            webhook: Some(self.webhook_info(&tenant, &record).await),
            secret: webhooks.keys().whsec(&id, record.secret_generation),
        }))
    }
}
