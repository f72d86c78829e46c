//! `roster ssf …`: a tenant's Shared Signals streams (made by their receivers): list them with
//! where delivery stands, enable, pause or disable one (the receiver is told), delete one; and
//! rotate the SET signing key.

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use roster_proto::v1 as pb;

use super::render::time;
use super::token::parse_duration;
use super::{Common, connect, rpc_error};

#[derive(Subcommand, Debug)]
pub enum SsfCommand {
    /// List a tenant's streams: receiver, delivery, status, where delivery stands.
    List { tenant: String },
    /// Deliver a stream's events again (held ones too).
    Enable {
        tenant: String,
        stream_id: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Hold a stream's events until it is enabled again (nothing is dropped).
    Pause {
        tenant: String,
        stream_id: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Stop a stream: events until it is enabled again are never delivered.
    Disable {
        tenant: String,
        stream_id: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Delete a stream (its receiver may create another).
    Delete { tenant: String, stream_id: String },
    /// Make a new key sign SETs; the earlier ones stay in the JWKS for the overlap (default
    /// 24h, at most 30d; 0s after a leak).
    RotateKey {
        #[arg(long, value_parser = parse_duration)]
        overlap: Option<prost_types::Duration>,
    },
}

fn show(stream: &pb::SsfStreamInfo) -> String {
    let status = roster_engine::codec::ssf_status_from_proto(stream.status)
        .map_or("unknown", |status| status.as_str());
    let mut text = format!(
        "{}  {}  {} {}  receiver={} ({})",
        stream.stream_id,
        status,
        stream.delivery_method,
        stream.endpoint_url,
        stream.receiver,
        stream.receiver_name
    );
    if !stream.description.is_empty() {
        text.push_str(&format!("  ({})", stream.description));
    }
    if !stream.status_reason.is_empty() {
        text.push_str(&format!("\n  status: {}", stream.status_reason));
    }
    text.push_str(&format!(
        "\n  events delivered: {}",
        if stream.events_delivered.is_empty() {
            "none (the receiver requested none roster transmits)".to_owned()
        } else {
            stream.events_delivered.join(" ")
        }
    ));
    if stream.removed_subjects > 0 {
        text.push_str(&format!("\n  {} subjects removed", stream.removed_subjects));
    }
    if let Some(delivery) = &stream.delivery {
        text.push_str(&format!(
            "\n  delivered through sequence {} of {} ({} SETs acknowledged, {} failed attempts, {} awaiting acknowledgement)",
            delivery.delivered_through,
            delivery.tenant_head,
            delivery.delivered_total,
            delivery.failed_attempts_total,
            stream.pending
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
    }
    text
}

pub async fn run(common: &Common, command: SsfCommand) -> Result<ExitCode> {
    let mut client = connect::admin(common).await?;
    let status =
        |tenant: String, stream_id: String, status: pb::SsfStreamStatus, reason: String| {
            pb::SetSsfStreamStatusRequest {
                tenant,
                stream_id,
                status: status.into(),
                reason,
            }
        };
    let request = match command {
        SsfCommand::List { tenant } => {
            let response = client
                .list_ssf_streams(pb::ListSsfStreamsRequest { tenant })
                .await
                .map_err(rpc_error)?
                .into_inner();
            for stream in &response.streams {
                println!("{}", show(stream));
            }
            return Ok(ExitCode::SUCCESS);
        }
        SsfCommand::Delete { tenant, stream_id } => {
            client
                .delete_ssf_stream(pb::SsfStreamRequest {
                    tenant,
                    stream_id: stream_id.clone(),
                })
                .await
                .map_err(rpc_error)?;
            println!("stream {stream_id} deleted");
            return Ok(ExitCode::SUCCESS);
        }
        SsfCommand::RotateKey { overlap } => {
            let response = client
                .rotate_ssf_signing_key(pb::RotateSsfSigningKeyRequest { overlap })
                .await
                .map_err(rpc_error)?
                .into_inner();
            println!("SETs are signed with key {} from now on", response.key_id);
            return Ok(ExitCode::SUCCESS);
        }
        SsfCommand::Enable {
            tenant,
            stream_id,
            reason,
        } => status(tenant, stream_id, pb::SsfStreamStatus::Enabled, reason),
        SsfCommand::Pause {
            tenant,
            stream_id,
            reason,
        } => status(tenant, stream_id, pb::SsfStreamStatus::Paused, reason),
        SsfCommand::Disable {
            tenant,
            stream_id,
            reason,
        } => status(tenant, stream_id, pb::SsfStreamStatus::Disabled, reason),
    };
    let stream = client
        .set_ssf_stream_status(request)
        .await
        .map_err(rpc_error)?
        .into_inner();
    println!("{}", show(&stream));
    Ok(ExitCode::SUCCESS)
}
