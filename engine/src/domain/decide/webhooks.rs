//! Webhook subscriptions: adding one (its URL, filter and description checked, at most
//! `WEBHOOKS_PER_TENANT_MAX` per tenant), pausing, resuming, giving up on, rotating the secret of
//! and removing one.

use super::*;
use crate::domain::WebhookId;
use crate::domain::webhook::{
    NewWebhook, WEBHOOKS_PER_TENANT_MAX, WebhookRecord, WebhookStatus, check_description,
    check_event_types, check_url,
};

fn webhook(state: &State, id: WebhookId) -> Result<&WebhookRecord, Rejection> {
    state
        .tenant
        .as_ref()
        .and_then(|tenant| tenant.webhook(&id))
        .ok_or(Rejection::WebhookNotFound(id))
}

pub(super) fn add_webhook(
    state: &State,
    webhook: NewWebhook,
) -> Result<Vec<EventPayload>, Rejection> {
    require_tenant(state)?;
    let Some(tenant) = state.tenant.as_ref() else {
        return Err(Rejection::TenantNotFound);
    };
    if tenant.webhook(&webhook.id).is_some() {
        return Err(Rejection::WebhookAlreadyExists(webhook.id));
    }
    if tenant.webhooks.len() >= WEBHOOKS_PER_TENANT_MAX {
        return Err(Rejection::TooManyWebhooks {
            max: WEBHOOKS_PER_TENANT_MAX,
        });
    }
    let url = webhook.url.trim().to_owned();
    check_url(&url).map_err(Rejection::InvalidValue)?;
    let event_types = check_event_types(&webhook.event_types).map_err(Rejection::InvalidValue)?;
    let description = webhook.description.trim().to_owned();
    check_description(&description).map_err(Rejection::InvalidValue)?;
    Ok(vec![EventPayload::WebhookAdded {
        webhook_id: webhook.id,
        url,
        event_types,
        description,
    }])
}

pub(super) fn set_webhook_status(
    state: &State,
    webhook_id: WebhookId,
    status: WebhookStatus,
    reason: String,
) -> Result<Vec<EventPayload>, Rejection> {
    let current = webhook(state, webhook_id)?;
    let unchanged = current.status == status
        // Delivery gives up only on an active subscription: one paused meanwhile stays paused.
        || (status == WebhookStatus::Failing && current.status != WebhookStatus::Active);
    if unchanged {
        return Ok(Vec::new());
    }
    Ok(vec![EventPayload::WebhookStatusChanged {
        webhook_id,
        status,
        reason: reason.chars().take(512).collect(),
    }])
}

pub(super) fn rotate_webhook_secret(
    state: &State,
    webhook_id: WebhookId,
    previous_expires_at: Timestamp,
) -> Result<Vec<EventPayload>, Rejection> {
    let current = webhook(state, webhook_id)?;
    Ok(vec![EventPayload::WebhookSecretRotated {
        webhook_id,
        generation: current.secret_generation.saturating_add(1),
        previous_expires_at,
    }])
}

pub(super) fn remove_webhook(
    state: &State,
    webhook_id: WebhookId,
    reason: String,
) -> Result<Vec<EventPayload>, Rejection> {
    webhook(state, webhook_id)?;
    Ok(vec![EventPayload::WebhookRemoved {
        webhook_id,
        reason: reason.chars().take(512).collect(),
    }])
}
