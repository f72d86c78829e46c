//! `roster token …`: issue, list, revoke and rotate a tenant's SCIM bearer tokens, and the
//! durations they take (`90d`, `12h`, …).

use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Subcommand;
use roster_proto::v1 as pb;

use super::render::show_token;
use super::{Common, connect, rpc_error};

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Issue a new bearer token; prints it as the last line of stdout.
    Issue {
        tenant: String,
        #[arg(long, default_value = "default")]
        name: String,
        /// What it may call: scim (SCIM and gRPC) or ssf (a Shared Signals receiver's OAuth
        /// client credentials).
        #[arg(long, default_value = "scim", value_parser = ["scim", "ssf"])]
        scope: String,
        /// Lifetime, e.g. 90d, 12h (default: never expires).
        #[arg(long, value_parser = parse_duration)]
        expires: Option<prost_types::Duration>,
    },
    /// List a tenant's tokens (never their secrets): state, expiry, last use.
    List { tenant: String },
    /// Revoke a token at once.
    Revoke { tenant: String, token_id: String },
    /// Issue a new token and keep the old one valid for the overlap only; prints the new token
    /// as the last line of stdout.
    Rotate {
        tenant: String,
        token_id: String,
        /// How long the old token keeps working, e.g. 24h (default 24h).
        #[arg(long, value_parser = parse_duration)]
        overlap: Option<prost_types::Duration>,
        /// Lifetime of the new token (default: never expires).
        #[arg(long, value_parser = parse_duration)]
        expires: Option<prost_types::Duration>,
        /// Name of the new token (default: the old one's).
        #[arg(long, default_value = "")]
        name: String,
    },
}

/// `90d`, `12h`, `30m`, `45s` or `2w`.
pub(super) fn parse_duration(text: &str) -> Result<prost_types::Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{text:?} needs a unit: s, m, h, d or w (e.g. 90d)"))?;
    let (number, unit) = text.split_at(split);
    let number: i64 = number
        .parse()
        .map_err(|_| format!("{text:?} does not start with a number"))?;
    let unit_seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => {
            return Err(format!(
                "unknown unit {unit:?} in {text:?}: use s, m, h, d or w"
            ));
        }
    };
    let seconds = number
        .checked_mul(unit_seconds)
        .filter(|seconds| *seconds > 0)
        .ok_or_else(|| format!("{text:?} is not a positive duration"))?;
    Ok(prost_types::Duration { seconds, nanos: 0 })
}

pub async fn run(common: &Common, command: TokenCommand) -> Result<ExitCode> {
    let mut client = connect::admin(common).await?;
    match command {
        TokenCommand::Rotate {
            tenant,
            token_id,
            overlap,
            expires,
            name,
        } => {
            let response = client
                .rotate_token(pb::RotateTokenRequest {
                    tenant,
                    token_id,
                    name,
                    overlap,
                    expires_in: expires,
                })
                .await
                .map_err(rpc_error)?
                .into_inner();
            if let Some(previous) = &response.previous {
                println!("old: {}", show_token(previous));
            }
            if let Some(token) = &response.token {
                println!(
                    "new: {}; the token below is shown only once:",
                    show_token(token)
                );
            }
            println!("{}", response.secret);
        }
        TokenCommand::Issue {
            tenant,
            name,
            scope,
            expires,
        } => {
            let response = client
                .issue_token(pb::IssueTokenRequest {
                    tenant,
                    name,
                    expires_in: expires,
                    scope,
                })
                .await
                .map_err(rpc_error)?
                .into_inner();
            let Some(token) = response.token else {
                bail!("roster returned no token");
            };
            println!(
                "token id {} ({}, scope {}); the token below is shown only once:",
                token.id, token.name, token.scope
            );
            println!("{}", response.secret);
        }
        TokenCommand::List { tenant } => {
            let response = client
                .list_tokens(pb::ListTokensRequest { tenant })
                .await
                .map_err(rpc_error)?
                .into_inner();
            for token in &response.tokens {
                println!("{}", show_token(token));
            }
        }
        TokenCommand::Revoke { tenant, token_id } => {
            let response = client
                .revoke_token(pb::RevokeTokenRequest { tenant, token_id })
                .await
                .map_err(rpc_error)?
                .into_inner();
            if let Some(token) = response.token {
                println!("{}", show_token(&token));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
