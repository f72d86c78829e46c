//! `roster rg …`: resource groups: create, delete and list them, link SCIM groups with a role,
//! and manage members by hand.

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use roster_proto::v1 as pb;

use super::render::show_resource_group;
use super::role::parse_role;
use super::{Common, connect, rpc_error};

#[derive(Subcommand, Debug)]
pub enum ResourceGroupCommand {
    /// List resource groups with their links and members.
    List {
        tenant: String,
    },
    Create {
        tenant: String,
        name: String,
    },
    Delete {
        tenant: String,
        resource_group: String,
    },
    /// Link a SCIM group with a role (or change the role of an existing link).
    Link {
        tenant: String,
        resource_group: String,
        group: String,
        #[arg(value_parser = parse_role)]
        role: pb::Role,
    },
    Unlink {
        tenant: String,
        resource_group: String,
        group: String,
    },
    /// Add a user (id or userName) by hand, or change their role; refused when SCIM-managed.
    AddMember {
        tenant: String,
        resource_group: String,
        user: String,
        #[arg(value_parser = parse_role)]
        role: pb::Role,
    },
    /// Remove a user added by hand; refused when SCIM-managed.
    RemoveMember {
        tenant: String,
        resource_group: String,
        user: String,
    },
}

/// Runs the command; a change prints the resource group as it is after it.
pub async fn run(common: &Common, command: ResourceGroupCommand) -> Result<ExitCode> {
    let mut client = connect::admin(common).await?;
    let shown = match command {
        ResourceGroupCommand::List { tenant } => {
            let listed = client
                .list_resource_groups(pb::ListResourceGroupsRequest { tenant })
                .await
                .map_err(rpc_error)?
                .into_inner();
            for resource_group in &listed.resource_groups {
                show_resource_group(resource_group);
            }
            return Ok(ExitCode::SUCCESS);
        }
        ResourceGroupCommand::Delete {
            tenant,
            resource_group,
        } => {
            client
                .delete_resource_group(pb::DeleteResourceGroupRequest {
                    tenant,
                    resource_group: resource_group.clone(),
                })
                .await
                .map_err(rpc_error)?;
            println!("resource group {resource_group} deleted");
            return Ok(ExitCode::SUCCESS);
        }
        ResourceGroupCommand::Create { tenant, name } => {
            client
                .create_resource_group(pb::CreateResourceGroupRequest { tenant, name })
                .await
        }
        ResourceGroupCommand::Link {
            tenant,
            resource_group,
            group,
            role,
        } => {
            client
                .link_resource_group(pb::LinkResourceGroupRequest {
                    tenant,
                    resource_group,
                    group,
                    role: role.into(),
                })
                .await
        }
        ResourceGroupCommand::Unlink {
            tenant,
            resource_group,
            group,
        } => {
            client
                .unlink_resource_group(pb::UnlinkResourceGroupRequest {
                    tenant,
                    resource_group,
                    group,
                })
                .await
        }
        ResourceGroupCommand::AddMember {
            tenant,
            resource_group,
            user,
            role,
        } => {
            client
                .set_resource_group_member(pb::SetResourceGroupMemberRequest {
                    tenant,
                    resource_group,
                    user,
                    role: role.into(),
                })
                .await
        }
        ResourceGroupCommand::RemoveMember {
            tenant,
            resource_group,
            user,
        } => {
            client
                .remove_resource_group_member(pb::RemoveResourceGroupMemberRequest {
                    tenant,
                    resource_group,
                    user,
                })
                .await
        }
    }
    .map_err(rpc_error)?
    .into_inner();
    show_resource_group(&shown);
    Ok(ExitCode::SUCCESS)
}
