//! `roster drift`: a tenant against an IdP export. Reads the export, reads roster's side a page
//! at a time over the Directory service, and prints the report; the comparison itself is
//! `roster_gateway::drift`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use roster_gateway::drift::{Export, InputFormat, Report, RosterDirectory};
use roster_proto::v1 as pb;

use super::{Common, connect, pager};

/// The exit code with drift.
const EXIT_DRIFT: u8 = 1;
/// The exit code on any error: reading the export, reaching roster, writing the report.
const EXIT_ERROR: u8 = 2;

// The options of `roster drift` (its help text is the doc comment of `Command::Drift`).
#[derive(Args, Debug)]
pub struct DriftArgs {
    tenant: String,
    /// The IdP export: SCIM JSON (ListResponse, pages, array of resources, or
    /// {"Users": …, "Groups": …}) or CSV (userName, externalId, active, groups separated by ;).
    #[arg(long)]
    from: PathBuf,
    /// How the export is written (default: detected from its content).
    #[arg(long, value_enum)]
    input_format: Option<DriftInput>,
    /// Report format: text for people, json (stable, `version` 1) for machines.
    #[arg(long, value_enum, default_value = "text")]
    format: DriftOutput,
    /// Users, groups or members per Directory request (at most 1000).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1000))]
    page_size: u32,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum DriftInput {
    Json,
    Csv,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum DriftOutput {
    Text,
    Json,
}

/// roster's side of the comparison, read a page at a time: users, groups, and the members of
/// the groups the comparison needs.
async fn roster_directory(
    client: &connect::Directory,
    tenant: &str,
    export: &Export,
    page_size: u32,
) -> Result<RosterDirectory> {
    let mut directory = RosterDirectory::default();
    pager::for_each_item(
        |page_token| {
            let mut client = client.clone();
            let request = pb::ListUsersRequest {
                tenant: tenant.to_owned(),
                page_size,
                page_token,
            };
            async move { client.list_users(request).await }
        },
        |user| directory.add_user(&user),
    )
    .await?;
    if export.carried.groups {
        pager::for_each_item(
            |page_token| {
                let mut client = client.clone();
                let request = pb::ListGroupsRequest {
                    tenant: tenant.to_owned(),
                    page_size,
                    page_token,
                };
                async move { client.list_groups(request).await }
            },
            |group| directory.add_group(&group),
        )
        .await?;
    }
    for group in roster_gateway::drift::groups_needing_members(&directory, export) {
        pager::for_each_item(
            |page_token| {
                let mut client = client.clone();
                let request = pb::ListGroupMembersRequest {
                    tenant: tenant.to_owned(),
                    group: group.clone(),
                    page_size,
                    page_token,
                    as_of: None,
                };
                async move { client.list_group_members(request).await }
            },
            |member| directory.add_member(&group, &member),
        )
        .await?;
    }
    Ok(directory)
}

async fn drift_report(common: &Common, arguments: &DriftArgs) -> Result<Report> {
    let text = std::fs::read_to_string(&arguments.from)
        .with_context(|| format!("reading the export {}", arguments.from.display()))?;
    let format = arguments.input_format.map(|format| match format {
        DriftInput::Json => InputFormat::Json,
        DriftInput::Csv => InputFormat::Csv,
    });
    let export = Export::parse(&text, format)
        .with_context(|| format!("reading the export {}", arguments.from.display()))?;
    let client = connect::directory(common).await?;
    let roster = roster_directory(&client, &arguments.tenant, &export, arguments.page_size).await?;
    Ok(roster_gateway::drift::compare(
        &arguments.tenant,
        &arguments.from.display().to_string(),
        &roster,
        &export,
    ))
}

/// Prints the report; exits 0 without drift, 1 with drift and 2 on any error (which it prints
/// itself, so that an error never exits 1).
pub async fn run(common: &Common, arguments: DriftArgs) -> Result<ExitCode> {
    let report = match drift_report(common, &arguments).await {
        Ok(report) => report,
        Err(error) => {
            eprintln!("Error: {error:#}");
            return Ok(ExitCode::from(EXIT_ERROR));
        }
    };
    let rendered = match arguments.format {
        DriftOutput::Text => report.render_text(),
        DriftOutput::Json => match serde_json::to_string_pretty(&report) {
            Ok(json) => format!("{json}\n"),
            Err(error) => {
                eprintln!("Error: rendering the report as JSON: {error}");
                return Ok(ExitCode::from(EXIT_ERROR));
            }
        },
    };
    let mut stdout = std::io::stdout().lock();
    let written = stdout
        .write_all(rendered.as_bytes())
        .and_then(|()| stdout.flush());
    if let Err(error) = written {
        eprintln!("Error: writing the report: {error}");
        return Ok(ExitCode::from(EXIT_ERROR));
    }
    if report.drift {
        return Ok(ExitCode::from(EXIT_DRIFT));
    }
    Ok(ExitCode::SUCCESS)
}
