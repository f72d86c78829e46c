//! `roster role …`: a tenant's default org role, its group → role mappings, and the SSO claim →
//! role mappings of just-in-time provisioning (`roster role claim …`); and the role names the
//! command line takes.

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use roster_proto::v1 as pb;

use super::render::show_role_mappings;
use super::{Common, connect, rpc_error};

/// A role name on the command line.
pub fn parse_role(text: &str) -> Result<pb::Role, String> {
    let role: roster_engine::domain::Role = text.parse()?;
    Ok(roster_engine::codec::role_to_proto(role))
}

#[derive(Subcommand, Debug)]
pub enum RoleCommand {
    /// Show the default role and every group → role mapping.
    List { tenant: String },
    /// Set the role of users whose groups map to none (read, contributor, write, admin).
    Default {
        tenant: String,
        #[arg(value_parser = parse_role)]
        role: pb::Role,
    },
    /// Map a SCIM group (id or displayName) to an org role.
    Map {
        tenant: String,
        group: String,
        #[arg(value_parser = parse_role)]
        role: pb::Role,
    },
    /// Remove a group's mapping.
    Unmap { tenant: String, group: String },
    /// SSO claim → org role mappings for just-in-time provisioning.
    #[command(subcommand)]
    Claim(ClaimCommand),
}

// ---- just-in-time provisioning: `roster role claim …` ---------------------------------------

#[derive(Subcommand, Debug)]
pub enum ClaimCommand {
    /// Grant an org role to SSO logins whose claim holds a value (again: change the role).
    Set {
        tenant: String,
        /// Dotted attribute path into the claims: groups, roles, custom.department, …
        #[arg(long)]
        claim: String,
        /// The value to match (case-insensitive; a string, or any element of an array).
        #[arg(long)]
        value: String,
        #[arg(long, value_parser = parse_role)]
        role: pb::Role,
    },
    /// Remove a claim mapping.
    Remove {
        tenant: String,
        #[arg(long)]
        claim: String,
        #[arg(long)]
        value: String,
    },
}

async fn claim_mapping(
    client: &mut connect::Admin,
    command: ClaimCommand,
) -> Result<tonic::Response<pb::RoleMappings>, tonic::Status> {
    match command {
        ClaimCommand::Set {
            tenant,
            claim,
            value,
            role,
        } => {
            client
                .set_claim_role_mapping(pb::SetClaimRoleMappingRequest {
                    tenant,
                    claim,
                    value,
                    role: role.into(),
                })
                .await
        }
        ClaimCommand::Remove {
            tenant,
            claim,
            value,
        } => {
            client
                .remove_claim_role_mapping(pb::RemoveClaimRoleMappingRequest {
                    tenant,
                    claim,
                    value,
                })
                .await
        }
    }
}

// ---- end of just-in-time provisioning ----------------------------------------------------------

/// Runs the command and prints the tenant's mappings as they are after it.
pub async fn run(common: &Common, command: RoleCommand) -> Result<ExitCode> {
    let mut client = connect::admin(common).await?;
    let mappings = match command {
        RoleCommand::List { tenant } => {
            client
                .list_role_mappings(pb::ListRoleMappingsRequest { tenant })
                .await
        }
        RoleCommand::Default { tenant, role } => {
            client
                .set_default_role(pb::SetDefaultRoleRequest {
                    tenant,
                    role: role.into(),
                })
                .await
        }
        RoleCommand::Map {
            tenant,
            group,
            role,
        } => {
            client
                .set_role_mapping(pb::SetRoleMappingRequest {
                    tenant,
                    group,
                    role: role.into(),
                })
                .await
        }
        RoleCommand::Unmap { tenant, group } => {
            client
                .remove_role_mapping(pb::RemoveRoleMappingRequest { tenant, group })
                .await
        }
        RoleCommand::Claim(command) => claim_mapping(&mut client, command).await,
    }
    .map_err(rpc_error)?
    .into_inner();
    show_role_mappings(&mappings);
    Ok(ExitCode::SUCCESS)
}
