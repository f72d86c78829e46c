//! Folds webhook subscription events into the tenant record.

use super::*;
use crate::domain::webhook::{WebhookRecord, WebhookStatus};

pub(super) fn apply(state: &mut State, event: &Event) {
    let Some(tenant) = state.tenant.as_mut() else {
        return;
    };
    match &event.payload {
        EventPayload::WebhookAdded {
            webhook_id,
            url,
            event_types,
            description,
        } => {
            tenant.webhooks.retain(|webhook| webhook.id != *webhook_id);
            tenant.webhooks.push(WebhookRecord {
                id: *webhook_id,
                url: url.clone(),
                event_types: event_types.clone(),
                description: description.clone(),
                status: WebhookStatus::Active,
                status_reason: String::new(),
                secret_generation: 1,
                previous_secret_expires_at: None,
                created_at: event.occurred_at,
            });
        }
        EventPayload::WebhookStatusChanged {
            webhook_id,
            status,
            reason,
        } => {
            let Some(webhook) = tenant.webhooks.iter_mut().find(|w| w.id == *webhook_id) else {
                return;
            };
            webhook.status = *status;
            webhook.status_reason.clone_from(reason);
        }
        EventPayload::WebhookSecretRotated {
            webhook_id,
            generation,
            previous_expires_at,
        } => {
            let Some(webhook) = tenant.webhooks.iter_mut().find(|w| w.id == *webhook_id) else {
                return;
            };
            webhook.secret_generation = *generation;
            webhook.previous_secret_expires_at = Some(*previous_expires_at);
        }
        EventPayload::WebhookRemoved { webhook_id, .. } => {
            tenant.webhooks.retain(|webhook| webhook.id != *webhook_id);
        }
        _ => return,
    }
    state.journal.touch(Touched::Tenant);
}
