//! `roster audit …`: export a tenant's audit trail (JSON lines or CSV, resuming a replay the
//! server dropped) and verify its hash chain.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use roster_proto::v1 as pb;

use super::{Common, connect, rpc_error};

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Stream a tenant's audit records to stdout.
    Export {
        tenant: String,
        /// Only records at or after this time (RFC 3339 or YYYY-MM-DD).
        #[arg(long, value_parser = parse_time)]
        since: Option<roster_engine::domain::Timestamp>,
        /// Only records before this time.
        #[arg(long, value_parser = parse_time)]
        until: Option<roster_engine::domain::Timestamp>,
        #[arg(long, value_enum, default_value = "jsonl")]
        format: ExportFormat,
        /// Only these event types (repeatable), e.g. user.deactivated.
        #[arg(long = "type")]
        event_types: Vec<String>,
        /// Only records about this resource id.
        #[arg(long)]
        target: Option<String>,
    },
    /// Recompute a tenant's hash chain; exits non-zero and names the first bad record.
    Verify { tenant: String },
}

/// How `roster audit export` writes records.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum ExportFormat {
    Jsonl,
    Csv,
}

/// A point in time on the command line: RFC 3339, or a date (midnight UTC).
fn parse_time(text: &str) -> Result<roster_engine::domain::Timestamp, String> {
    use roster_engine::domain::Timestamp;
    Timestamp::parse_rfc3339(text)
        .or_else(|| Timestamp::parse_rfc3339(&format!("{text}T00:00:00Z")))
        .ok_or_else(|| format!("{text:?} is not an RFC 3339 time or a YYYY-MM-DD date"))
}

/// Where a stream dropped by the server resumes (its `roster-resume-from` trailer), if it can.
fn resume_point(status: &tonic::Status) -> Option<u64> {
    if !matches!(
        status.code(),
        tonic::Code::Aborted | tonic::Code::ResourceExhausted
    ) {
        return None;
    }
    status
        .metadata()
        .get(roster_gateway::grpc::RESUME_FROM_TRAILER)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Where `roster audit export` writes.
enum AuditOutput<W: std::io::Write> {
    Jsonl(W),
    Csv(Box<csv::Writer<W>>),
}

impl<W: std::io::Write> AuditOutput<W> {
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            AuditOutput::Jsonl(out) => out.flush(),
            AuditOutput::Csv(writer) => writer.flush(),
        }
    }
}

/// Columns of `roster audit export --format csv`, in order. `tenant` is the tenant the event
/// happened in: the exported tenant, or its staging branch (`acme~s1`) for staged activity; it
/// came last, so that readers of the earlier columns by position read them as before.
const AUDIT_CSV_HEADER: [&str; 16] = [
    "sequence",
    "recorded_at",
    "occurred_at",
    "event_type",
    "target",
    "actor_kind",
    "actor_id",
    "actor_display",
    "source_ip",
    "user_agent",
    "request_id",
    "outcome",
    "changes",
    "prev_hash",
    "hash",
    "tenant",
];

/// Runs the command; `verify` exits 1 when the chain is broken.
pub async fn run(common: &Common, command: AuditCommand) -> Result<ExitCode> {
    let mut client = connect::audit(common).await?;
    match command {
        AuditCommand::Export {
            tenant,
            since,
            until,
            format,
            event_types,
            target,
        } => {
            let request = pb::ReplayRequest {
                tenant,
                from_time: since.map(roster_engine::codec::timestamp_to_proto),
                to_time: until.map(roster_engine::codec::timestamp_to_proto),
                from_sequence: 0,
                to_sequence: 0,
                target: target.unwrap_or_default(),
                actor: String::new(),
                event_types,
            };
            let mut stream = client
                .replay(request.clone())
                .await
                .map_err(rpc_error)?
                .into_inner();
            let stdout = std::io::stdout();
            let out = std::io::BufWriter::new(stdout.lock());
            // JSON lines as the server sent them, or CSV rows quoted by the csv crate (RFC 4180).
            let mut out = match format {
                ExportFormat::Jsonl => AuditOutput::Jsonl(out),
                ExportFormat::Csv => {
                    let mut writer = csv::Writer::from_writer(out);
                    writer.write_record(AUDIT_CSV_HEADER)?;
                    AuditOutput::Csv(Box::new(writer))
                }
            };
            loop {
                let record = match stream.message().await {
                    Ok(Some(record)) => record,
                    Ok(None) => break,
                    // Dropped for reading too slowly (stdout was blocked): resume where it stopped.
                    Err(status) => match resume_point(&status) {
                        Some(from_sequence) => {
                            out.flush()?;
                            stream = client
                                .replay(pb::ReplayRequest {
                                    from_sequence,
                                    ..request.clone()
                                })
                                .await
                                .map_err(rpc_error)?
                                .into_inner();
                            continue;
                        }
                        None => return Err(rpc_error(status)),
                    },
                };
                match &mut out {
                    AuditOutput::Jsonl(out) => writeln!(out, "{}", record.json)?,
                    AuditOutput::Csv(writer) => {
                        let parsed: roster_projector::AuditRecord =
                            serde_json::from_str(&record.json)?;
                        let fields = [
                            parsed.sequence.to_string(),
                            parsed.recorded_at,
                            parsed.occurred_at,
                            parsed.event_type,
                            parsed.target,
                            parsed.actor.kind,
                            parsed.actor.id,
                            parsed.actor.display,
                            parsed.source.ip,
                            parsed.source.user_agent,
                            parsed.source.request_id,
                            parsed.outcome,
                            serde_json::Value::Object(parsed.changes).to_string(),
                            parsed.prev_hash,
                            parsed.hash,
                            parsed.tenant,
                        ];
                        writer.write_record(&fields)?;
                    }
                }
            }
            out.flush()?;
        }
        AuditCommand::Verify { tenant } => {
            let verified = client
                .verify(pb::VerifyRequest {
                    tenant: tenant.clone(),
                })
                .await
                .map_err(rpc_error)?
                .into_inner();
            if verified.valid {
                println!(
                    "audit trail of {tenant} verified: {} records, head {}",
                    verified.records, verified.head_hash
                );
            } else {
                println!(
                    "audit trail of {tenant} is broken at sequence {}: {} ({} records verified before it)",
                    verified.first_bad_sequence, verified.reason, verified.records
                );
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
