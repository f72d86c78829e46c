//! `roster tenant …`: create, list and set tenants, and their staging: stage, diff, promote,
//! discard (the diff is rendered by `render::print_staging_diff`).

use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Subcommand;
use roster_proto::v1 as pb;

use super::render::print_staging_diff;
use super::{Common, connect, rpc_error};

/// `roster tenant diff --exit-code`: promotion would change something.
const DIFF_EXIT_CHANGES: u8 = 2;

#[derive(Subcommand, Debug)]
pub enum TenantCommand {
    /// Create a tenant; prints its first SCIM bearer token as the last line of stdout.
    Create {
        name: String,
        /// Name of the first token.
        #[arg(long, default_value = "default")]
        token_name: String,
        /// How platform handles follow from SCIM userNames: `strict` (userName must already be a
        /// valid handle: 2-42 letters, digits and '-') or `derive` (any userName, such as an
        /// email or a UPN; the handle is derived from it).
        #[arg(long, value_enum, default_value_t = Usernames::Strict)]
        usernames: Usernames,
    },
    /// List tenants.
    List,
    /// Change a tenant's policy; a setting not given is left as it is.
    Set {
        tenant: String,
        #[command(flatten)]
        sso: SsoEnforced,
        /// How platform handles follow from userNames (see `tenant create --help`). Going to
        /// `derive` keeps every handle; back to `strict` is refused while a handle differs from
        /// its userName.
        #[arg(long, value_enum)]
        usernames: Option<Usernames>,
    },
    /// Put a tenant in staging: its SCIM reads and writes (same URL and token) go to a copy of its
    /// directory until `promote` or `discard`; live access is untouched meanwhile.
    Stage { tenant: String },
    /// Show what promoting the staging would change, per user. Exit code 0; with --exit-code,
    /// 2 when promotion would change something (errors are always 1).
    Diff {
        tenant: String,
        #[arg(long, value_enum, default_value_t = DiffFormat::Text)]
        format: DiffFormat,
        /// Exit with 2 when promotion would change something, 0 when not.
        #[arg(long)]
        exit_code: bool,
    },
    /// Apply the staged changes to the live tenant in one step and leave staging.
    Promote {
        tenant: String,
        #[arg(long, value_enum, default_value_t = DiffFormat::Text)]
        format: DiffFormat,
    },
    /// Leave staging and drop the staged changes; the live tenant is untouched.
    Discard { tenant: String },
}

/// A tenant's username policy.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Usernames {
    Strict,
    Derive,
}

impl Usernames {
    fn as_str(self) -> &'static str {
        match self {
            Usernames::Strict => "strict",
            Usernames::Derive => "derive",
        }
    }
}

/// `tenant set`'s SSO switch: `--sso-enforced` turns enforcement on, `--no-sso-enforced` off,
/// neither leaves it as it is.
#[derive(clap::Args, Debug, Default, PartialEq, Eq)]
pub struct SsoEnforced {
    /// Enforce SSO: members must come through the tenant's IdP (CheckAccess denies their other
    /// sessions).
    #[arg(long, conflicts_with = "no_sso_enforced")]
    sso_enforced: bool,
    /// Stop enforcing SSO: members' sessions from anywhere are accepted again.
    #[arg(long)]
    no_sso_enforced: bool,
}

impl SsoEnforced {
    /// The setting to send: `None` when neither switch was given.
    pub fn value(&self) -> Option<bool> {
        match (self.sso_enforced, self.no_sso_enforced) {
            (true, _) => Some(true),
            (false, true) => Some(false),
            (false, false) => None,
        }
    }
}

/// How `diff` and `promote` print a staging diff.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiffFormat {
    Text,
    Json,
}

pub async fn run(common: &Common, command: TenantCommand) -> Result<ExitCode> {
    let mut client = connect::admin(common).await?;
    match command {
        TenantCommand::Create {
            name,
            token_name,
            usernames,
        } => {
            let response = client
                .create_tenant(pb::CreateTenantRequest {
                    name,
                    token_name,
                    usernames: usernames.as_str().to_owned(),
                })
                .await
                .map_err(rpc_error)?
                .into_inner();
            let Some(token) = response.token else {
                bail!("roster returned no token");
            };
            println!("tenant {} created", response.tenant);
            println!("SCIM base URL path: /scim/v2/{}", response.tenant);
            println!(
                "token id {} ({}); the token below is shown only once:",
                token.id, token.name
            );
            println!("{}", response.secret);
        }
        TenantCommand::List => {
            let response = client
                .list_tenants(pb::ListTenantsRequest {})
                .await
                .map_err(rpc_error)?
                .into_inner();
            for tenant in response.tenants {
                println!(
                    "{}\tusers={}\tgroups={}\tsso_enforced={}\tusernames={}\tstaged={}",
                    tenant.name,
                    tenant.users,
                    tenant.groups,
                    tenant.sso_enforced,
                    tenant.usernames,
                    tenant.staged
                );
            }
        }
        TenantCommand::Set {
            tenant,
            sso,
            usernames,
        } => {
            let info = client
                .set_tenant_settings(pb::SetTenantSettingsRequest {
                    tenant,
                    sso_enforced: sso.value(),
                    usernames: usernames.map(|policy| policy.as_str().to_owned()),
                })
                .await
                .map_err(rpc_error)?
                .into_inner();
            println!(
                "{}\tsso_enforced={}\tusernames={}\tderived_handles={}",
                info.name, info.sso_enforced, info.usernames, info.derived_handles
            );
        }
        TenantCommand::Stage { tenant } => {
            let response = client
                .stage_tenant(pb::StageTenantRequest { tenant })
                .await
                .map_err(rpc_error)?
                .into_inner();
            let name = response.tenant.map(|info| info.name).unwrap_or_default();
            println!(
                "tenant {name} {} (staging {}): {} users and {} groups copied; SCIM now reads and \
                 writes the staged copy",
                if response.resumed {
                    "staging finished"
                } else {
                    "staged"
                },
                response.generation,
                response.users_copied,
                response.groups_copied
            );
        }
        TenantCommand::Diff {
            tenant,
            format,
            exit_code,
        } => {
            let diff = client
                .get_staging_diff(pb::GetStagingDiffRequest { tenant })
                .await
                .map_err(rpc_error)?
                .into_inner();
            print_staging_diff(&diff, format, false);
            // Any event beyond `StagingPromoted` is a change, a user's or not (a group deleted
            // with its role mapping and resource-group links changes no member's access).
            if exit_code && (!diff.users.is_empty() || !diff.groups.is_empty() || diff.events > 1) {
                return Ok(ExitCode::from(DIFF_EXIT_CHANGES));
            }
        }
        TenantCommand::Promote { tenant, format } => {
            let response = client
                .promote_tenant(pb::PromoteTenantRequest { tenant })
                .await
                .map_err(rpc_error)?
                .into_inner();
            if let Some(promoted) = &response.promoted {
                print_staging_diff(promoted, format, true);
            }
        }
        TenantCommand::Discard { tenant } => {
            let response = client
                .discard_staging(pb::DiscardStagingRequest { tenant })
                .await
                .map_err(rpc_error)?
                .into_inner();
            let name = response.tenant.map(|info| info.name).unwrap_or_default();
            println!(
                "tenant {name}: staging {} discarded; SCIM reads and writes the live tenant again",
                response.generation
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
