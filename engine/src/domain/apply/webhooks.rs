//! Folds webhook subscription events into the tenant record.

use super::*;
use crate::domain::webhook::{PREVIOUS_SECRETS_MAX, PreviousSecret, WebhookRecord, WebhookStatus};

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
                previous_secrets: Vec::new(),
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
            webhook.previous_secrets.push(PreviousSecret {
                generation: webhook.secret_generation,
                expires_at: *previous_expires_at,
            });
            // Secrets whose overlap ended sign no more; at most a few keep signing.
            webhook
                .previous_secrets
                .retain(|previous| previous.expires_at > event.occurred_at);
            let excess = webhook
                .previous_secrets
                .len()
                .saturating_sub(PREVIOUS_SECRETS_MAX);
            webhook.previous_secrets.drain(..excess);
            webhook.secret_generation = *generation;
        }
        EventPayload::WebhookRemoved { webhook_id, .. } => {
            tenant.webhooks.retain(|webhook| webhook.id != *webhook_id);
        }
        _ => return,
    }
    state.journal.touch(Touched::Tenant);
}
