//! `roster webhook …`: a tenant's webhook subscriptions: add (the signing secret printed once),
//! list, show, pause, resume, rotate-secret and remove.

use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Subcommand;
use roster_proto::v1 as pb;

use super::render::time;
use super::token::parse_duration;
use super::{Common, connect, rpc_error};

#[derive(Subcommand, Debug)]
pub enum WebhookCommand {
    /// Subscribe a URL to a tenant's events; prints the webhook and, as the last line of stdout,
    /// its signing secret (`whsec_…`, shown only once).
    Add {
        tenant: String,
        /// http:// or https:// URL that receives one POST per event.
        url: String,
        /// Event types or globs, comma-separated (e.g. user.deactivated,user.deleted or user.*);
        /// default: every event type.
        #[arg(long, value_delimiter = ',')]
        events: Vec<String>,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List a tenant's webhooks with their status and delivery (never their secrets).
    List { tenant: String },
    /// Show one webhook: status, delivery position, last failure.
    Show { tenant: String, webhook_id: String },
    /// Hold deliveries; events wait until resumed (nothing is skipped).
    Pause { tenant: String, webhook_id: String },
    /// Deliver again, from the last acknowledged event (after a pause or once failing).
    Resume { tenant: String, webhook_id: String },
    /// Make a new secret sign; the old one keeps signing alongside for the overlap. Prints the
    /// new secret as the last line of stdout (shown only once).
    RotateSecret {
        tenant: String,
        webhook_id: String,
        /// How long the old secret keeps signing, e.g. 24h (default 24h, at most 30d).
        #[arg(long, value_parser = parse_duration)]
        overlap: Option<prost_types::Duration>,
    },
    /// Remove a webhook: deliveries stop at once.
    Remove { tenant: String, webhook_id: String },
}

fn status_name(status: i32) -> &'static str {
    match roster_engine::codec::webhook_status_from_proto(status) {
        Some(status) => status.as_str(),
        None => "unknown",
    }
}

/// One webhook on one line, then its delivery and last failure when there is one.
fn show(webhook: &pb::WebhookInfo) -> String {
    let events = if webhook.event_types.is_empty() {
        "*".to_owned()
    } else {
        webhook.event_types.join(",")
    };
    let mut text = format!(
        "{}  {}  {}  events={}",
        webhook.webhook_id,
        status_name(webhook.status),
        webhook.url,
        events
    );
    if !webhook.description.is_empty() {
        text.push_str(&format!("  ({})", webhook.description));
    }
    if !webhook.status_reason.is_empty() {
        text.push_str(&format!("\n  status: {}", webhook.status_reason));
    }
    if let Some(until) = time(&webhook.previous_secret_expires_at) {
        text.push_str(&format!(
            "\n  secret generation {}; the previous one signs too until {until}",
            webhook.secret_generation
        ));
    }
    if let Some(delivery) = &webhook.delivery {
        text.push_str(&format!(
            "\n  delivered through sequence {} of {} ({} delivered, {} failed attempts)",
            delivery.delivered_through,
            delivery.tenant_head,
            delivery.delivered_total,
            delivery.failed_attempts_total
        ));
        if !delivery.last_failure.is_empty() {
            text.push_str(&format!(
                "\n  last failure{}: {}",
                time(&delivery.last_failure_at)
                    .map(|at| format!(" at {at}"))
                    .unwrap_or_default(),
                delivery.last_failure
            ));
        }
        if let Some(next) = time(&delivery.next_attempt_at) {
            text.push_str(&format!(
                "\n  attempt {} failed; next attempt at {next}",
                delivery.attempts
            ));
        }
    }
    text
}

pub async fn run(common: &Common, command: WebhookCommand) -> Result<ExitCode> {
    let mut client = connect::admin(common).await?;
    match command {
        WebhookCommand::Add {
            tenant,
            url,
            events,
            description,
        } => {
            let response = client
                .add_webhook(pb::AddWebhookRequest {
                    tenant,
                    url,
                    event_types: events,
                    description,
                })
                .await
                .map_err(rpc_error)?
                .into_inner();
            let Some(webhook) = response.webhook else {
                bail!("roster returned no webhook");
            };
            println!("{}", show(&webhook));
            println!(
                "webhook id {}; its signing secret below is shown only once:",
                webhook.webhook_id
            );
            println!("{}", response.secret);
        }
        WebhookCommand::List { tenant } => {
            let response = client
                .list_webhooks(pb::ListWebhooksRequest { tenant })
                .await
                .map_err(rpc_error)?
                .into_inner();
            for webhook in &response.webhooks {
                println!("{}", show(webhook));
            }
        }
        WebhookCommand::Show { tenant, webhook_id } => {
            let webhook = client
                .get_webhook(pb::WebhookRequest { tenant, webhook_id })
                .await
                .map_err(rpc_error)?
                .into_inner();
            println!("{}", show(&webhook));
        }
        WebhookCommand::Pause { tenant, webhook_id } => {
            let webhook = client
                .pause_webhook(pb::WebhookRequest { tenant, webhook_id })
                .await
                .map_err(rpc_error)?
                .into_inner();
            println!("{}", show(&webhook));
        }
        WebhookCommand::Resume { tenant, webhook_id } => {
            let webhook = client
                .resume_webhook(pb::WebhookRequest { tenant, webhook_id })
                .await
                .map_err(rpc_error)?
                .into_inner();
            println!("{}", show(&webhook));
        }
        WebhookCommand::RotateSecret {
            tenant,
            webhook_id,
            overlap,
        } => {
            let response = client
                .rotate_webhook_secret(pb::RotateWebhookSecretRequest {
                    tenant,
                    webhook_id,
                    overlap,
                })
                .await
                .map_err(rpc_error)?
                .into_inner();
            if let Some(webhook) = &response.webhook {
                println!("{}", show(webhook));
            }
            println!("the new signing secret below is shown only once:");
            println!("{}", response.secret);
        }
        WebhookCommand::Remove { tenant, webhook_id } => {
            client
                .remove_webhook(pb::WebhookRequest {
                    tenant,
                    webhook_id: webhook_id.clone(),
                })
                .await
                .map_err(rpc_error)?;
            println!("webhook {webhook_id} removed");
        }
    }
    Ok(ExitCode::SUCCESS)
}
