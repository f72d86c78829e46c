//! The `Admin` gRPC service: tenants, their SCIM tokens, org role mappings and resource groups.
//! Every call needs the admin token. Groups, resource groups and users are named by id or name.

use roster_engine::codec::{role_from_proto, role_to_proto, timestamp_to_proto};
use roster_engine::domain::{
    Command, Grant, GroupId, Lifecycle, Rejection, ResourceGroupId, ResourceGroupRecord, Role,
    RoleGrant, SYSTEM_TENANT, Source, TenantName, TokenId, TokenRecord, TokenScope, UserId,
    UsernamePolicy, fold,
};
use roster_engine::engine::{CommandContext, ExecuteError};
use roster_engine::staging::StagingReport;
use roster_engine::store::StateStore;
use roster_proto::v1 as pb;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::auth;
use crate::state::AppState;

mod ssf;
mod webhooks;

pub struct AdminService {
    state: AppState,
}

impl AdminService {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }

    async fn context<T>(&self, request: &Request<T>) -> Result<CommandContext, Status> {
        let actor = super::authorize_admin(&self.state, request.metadata()).await?;
        let request_id = Uuid::now_v7().to_string();
        Ok(CommandContext {
            now: self.state.clock.now(),
            actor,
            source: Source {
                ip: request
                    .remote_addr()
                    .map(|address| address.ip().to_string())
                    .unwrap_or_default(),
                user_agent: request
                    .metadata()
                    .get("user-agent")
                    .and_then(|value| value.to_str().ok())
                    .unwrap_or_default()
                    .to_owned(),
                request_id: request_id.clone(),
            },
            causation_id: request_id,
        })
    }

    fn store(&self) -> &StateStore {
        self.state.engine.aggregate()
    }

    /// Runs a command for `tenant`.
    async fn execute(
        &self,
        tenant: &TenantName,
        command: Command,
        context: CommandContext,
    ) -> Result<(), Status> {
        self.state
            .engine
            .execute(tenant, command, context)
            .await
            .map(|_| ())
            .map_err(status)
    }

    fn resource_group_response(
        &self,
        tenant: &TenantName,
        id: ResourceGroupId,
    ) -> Result<Response<pb::ResourceGroupInfo>, Status> {
        let record = stored(self.store().resource_group(tenant, &id))?
            .ok_or_else(|| Status::not_found(format!("resource group {id} not found")))?;
        Ok(Response::new(resource_group_info(
            self.store(),
            tenant,
            &record,
        )?))
    }

    fn tenant_info(&self, tenant: &TenantName) -> Result<pb::TenantInfo, Status> {
        let record = stored(self.store().tenant(tenant))?
            .ok_or_else(|| Status::not_found(format!("tenant {tenant} not found")))?;
        Ok(tenant_info(tenant, &record))
    }

    /// The tenant whose tokens a token operation addresses: an existing tenant, or `_system` for
    /// the admin tokens (so a leaked admin token can be listed, rotated and revoked like any).
    async fn token_holder(&self, name: &str) -> Result<TenantName, Status> {
        if name == SYSTEM_TENANT {
            return Ok(TenantName::system());
        }
        self.existing_tenant(name).await
    }

    async fn existing_tenant(&self, name: &str) -> Result<TenantName, Status> {
        let tenant = tenant_name(name)?;
        match self.state.tenant_exists_fresh(&tenant).await {
            Ok(true) => Ok(tenant),
            Ok(false) => Err(Status::not_found(format!("tenant {name:?} does not exist"))),
            Err(error) => Err(Status::unavailable(error.to_string())),
        }
    }

    /// One edit of a tenant's roles or resource groups: the caller's context, the tenant (which
    /// must exist), the command `build` makes of the request (naming groups, users and resource
    /// groups by id or name), executed. Returns the tenant and what `build` kept for the answer.
    async fn edit<T: NamesTenant, Kept>(
        &self,
        request: Request<T>,
        build: impl FnOnce(&StateStore, &TenantName, T) -> Result<(Command, Kept), Status>,
    ) -> Result<(TenantName, Kept), Status> {
        let context = self.context(&request).await?;
        let request = request.into_inner();
        let tenant = self.existing_tenant(request.tenant()).await?;
        let (command, kept) = build(self.store(), &tenant, request)?;
        self.execute(&tenant, command, context).await?;
        Ok((tenant, kept))
    }

    /// The tenant's role mappings after an edit.
    fn role_mappings_response(
        &self,
        tenant: &TenantName,
    ) -> Result<Response<pb::RoleMappings>, Status> {
        Ok(Response::new(role_mappings(self.store(), tenant)?))
    }
}

/// A request that names the tenant it edits.
trait NamesTenant {
    fn tenant(&self) -> &str;
}

macro_rules! names_tenant {
    ($($message:ty),* $(,)?) => {
        $(impl NamesTenant for $message {
            fn tenant(&self) -> &str {
                &self.tenant
            }
        })*
    };
}

names_tenant!(
    pb::SetDefaultRoleRequest,
    pb::SetRoleMappingRequest,
    pb::RemoveRoleMappingRequest,
    pb::CreateResourceGroupRequest,
    pb::DeleteResourceGroupRequest,
    pb::LinkResourceGroupRequest,
    pb::UnlinkResourceGroupRequest,
    pb::SetResourceGroupMemberRequest,
    pb::RemoveResourceGroupMemberRequest,
    pb::SetClaimRoleMappingRequest,
    pb::RemoveClaimRoleMappingRequest,
);

fn stored<T>(result: Result<T, roster_engine::store::StoreError>) -> Result<T, Status> {
    result.map_err(|error| {
        tracing::warn!(%error, "admin read failed");
        Status::unavailable("the directory is temporarily unavailable; retry later")
    })
}

fn requested_role(role: i32) -> Result<Role, Status> {
    role_from_proto(role).ok_or_else(|| {
        Status::invalid_argument("a role is required: read, contributor, write or admin")
    })
}

/// A group named by id or displayName.
fn resolve_group(store: &StateStore, tenant: &TenantName, name: &str) -> Result<GroupId, Status> {
    if let Ok(id) = name.parse::<GroupId>()
        && stored(store.group(tenant, &id))?.is_some()
    {
        return Ok(id);
    }
    stored(store.group_id_by_name(tenant, &fold(name)))?
        .ok_or_else(|| Status::not_found(format!("no group {name:?} in tenant {tenant}")))
}

/// A resource group named by id or name.
fn resolve_resource_group(
    store: &StateStore,
    tenant: &TenantName,
    name: &str,
) -> Result<ResourceGroupId, Status> {
    if let Ok(id) = name.parse::<ResourceGroupId>()
        && stored(store.resource_group(tenant, &id))?.is_some()
    {
        return Ok(id);
    }
    stored(store.resource_group_id_by_name(tenant, &fold(name)))?
        .ok_or_else(|| Status::not_found(format!("no resource group {name:?} in tenant {tenant}")))
}

/// A user named by id or userName.
fn resolve_user(store: &StateStore, tenant: &TenantName, name: &str) -> Result<UserId, Status> {
    if let Ok(id) = name.parse::<UserId>()
        && stored(store.user(tenant, &id))?.is_some()
    {
        return Ok(id);
    }
    stored(store.user_id_by_name(tenant, &fold(name)))?
        .ok_or_else(|| Status::not_found(format!("no user {name:?} in tenant {tenant}")))
}

fn role_mappings(store: &StateStore, tenant: &TenantName) -> Result<pb::RoleMappings, Status> {
    let record = stored(store.tenant(tenant))?
        .ok_or_else(|| Status::not_found(format!("tenant {tenant:?} does not exist")))?;
    let mut mappings = Vec::new();
    for (group_id, role) in stored(store.role_mappings(tenant))? {
        let display = stored(store.group(tenant, &group_id))?
            .map(|group| group.profile.display_name)
            .unwrap_or_default();
        mappings.push(pb::RoleMapping {
            group_id: group_id.to_string(),
            group_display_name: display,
            role: role_to_proto(role).into(),
        });
    }
    let claim_mappings = record
        .claim_role_mappings
        .iter()
        .map(|mapping| pb::ClaimRoleMapping {
            claim: mapping.claim.clone(),
            value: mapping.value.clone(),
            role: role_to_proto(mapping.role).into(),
        })
        .collect();
    Ok(pb::RoleMappings {
        default_role: role_to_proto(record.default_role).into(),
        mappings,
        claim_mappings,
    })
}

fn resource_group_info(
    store: &StateStore,
    tenant: &TenantName,
    record: &ResourceGroupRecord,
) -> Result<pb::ResourceGroupInfo, Status> {
    let mut links = Vec::new();
    for (group_id, role) in &record.links {
        let display = stored(store.group(tenant, group_id))?
            .map(|group| group.profile.display_name)
            .unwrap_or_default();
        links.push(pb::ResourceGroupLink {
            group_id: group_id.to_string(),
            group_display_name: display,
            role: role_to_proto(*role).into(),
        });
    }
    let mut members = Vec::new();
    for (user_id, role) in stored(store.members_of_resource_group(tenant, &record.id))? {
        let user_name = stored(store.user(tenant, &user_id))?
            .map(|user| user.profile.user_name)
            .unwrap_or_default();
        members.push(pb::ResourceGroupMember {
            user_id: user_id.to_string(),
            user_name,
            role: role_to_proto(role).into(),
        });
    }
    Ok(pb::ResourceGroupInfo {
        id: record.id.to_string(),
        name: record.name.clone(),
        scim_managed: record.is_scim_managed(),
        links,
        members,
        created_at: Some(timestamp_to_proto(record.created_at)),
    })
}

pub fn tenant_name(name: &str) -> Result<TenantName, Status> {
    TenantName::parse(name)
        .ok()
        .filter(|name| !name.is_system())
        .ok_or_else(|| {
            Status::invalid_argument(format!(
                "invalid tenant name {name:?}: use 1 to 63 lowercase letters, digits and '-', not starting or ending with '-'"
            ))
        })
}

/// The gRPC status for an engine error.
pub fn status(error: ExecuteError) -> Status {
    match error {
        ExecuteError::Rejected(rejection) => rejection_status(&rejection),
        unavailable => {
            let reason = unavailable.chain();
            tracing::warn!(%reason, "command not executed: infrastructure unavailable");
            Status::unavailable("the directory is temporarily unavailable; retry later")
        }
    }
}

pub fn rejection_status(rejection: &Rejection) -> Status {
    Status::new(
        crate::rejections::answer(rejection.kind()).grpc,
        rejection.to_string(),
    )
}

/// A requested token scope: `scim` (or empty) or `ssf`.
fn token_scope(text: &str) -> Result<TokenScope, Status> {
    TokenScope::parse(text.trim()).ok_or_else(|| {
        Status::invalid_argument(format!(
            "unknown token scope {text:?}: use scim (SCIM and gRPC, the default) or ssf (Shared Signals)"
        ))
    })
}

fn token_info(record: &TokenRecord) -> pb::TokenInfo {
    pb::TokenInfo {
        id: record.id.0.clone(),
        name: record.name.clone(),
        scope: record.scope.as_str().to_owned(),
        created_at: Some(timestamp_to_proto(record.created_at)),
        expires_at: record.expires_at.map(timestamp_to_proto),
        revoked_at: record.revoked_at.map(timestamp_to_proto),
        last_used_at: record.last_used_at.map(timestamp_to_proto),
    }
}

/// Longest token lifetime or overlap accepted: ten years.
const MAX_DURATION_MICROS: i64 = 10 * 366 * 24 * 3_600_000_000;
/// How long a rotated token stays valid when no overlap is given: a day.
const DEFAULT_OVERLAP_MICROS: i64 = 24 * 3_600_000_000;

/// A positive protobuf duration in microseconds.
fn duration_micros(duration: &prost_types::Duration, what: &str) -> Result<i64, Status> {
    let micros = duration
        .seconds
        .checked_mul(1_000_000)
        .and_then(|micros| micros.checked_add(i64::from(duration.nanos) / 1_000))
        .filter(|micros| *micros > 0 && *micros <= MAX_DURATION_MICROS)
        .ok_or_else(|| {
            Status::invalid_argument(format!("{what} must be positive and at most ten years"))
        })?;
    Ok(micros)
}

fn tenant_info(name: &TenantName, record: &roster_engine::domain::TenantRecord) -> pb::TenantInfo {
    pb::TenantInfo {
        name: name.to_string(),
        created_at: Some(timestamp_to_proto(record.created_at)),
        users: record.user_count,
        groups: record.group_count,
        sso_enforced: record.sso_enforced,
        staged: record.staging.is_some(),
        staged_since: record
            .staging
            .as_ref()
            .map(|staging| timestamp_to_proto(staging.since)),
        usernames: record.usernames.to_string(),
        derived_handles: record.derived_handles,
    }
}

/// A username policy named in a request; empty means the default, `strict`.
fn username_policy(text: &str) -> Result<UsernamePolicy, Status> {
    UsernamePolicy::from_message(text).map_err(Status::invalid_argument)
}

/// The diff message of a staging report: per user, what changes, with group and resource-group
/// names (a group's name after promotion when it has one, else before).
pub fn staging_diff_message(tenant: &TenantName, report: &StagingReport) -> pb::StagingDiff {
    use pb::role_source::Kind;
    let promoted = &report.diff.promoted;
    let group_ref = |id: GroupId| pb::GroupRef {
        id: id.to_string(),
        display_name: promoted
            .group(&id)
            .or_else(|| report.live.group(&id))
            .map(|group| group.profile.display_name.clone())
            .unwrap_or_default(),
    };
    let staged_role = |grant: &RoleGrant| pb::StagedRole {
        role: role_to_proto(grant.role).into(),
        source: Some(pb::RoleSource {
            kind: Some(match &grant.grant {
                Grant::Default => Kind::DefaultRole(true),
                Grant::Group(group) => Kind::Group(group_ref(*group)),
                Grant::Manual => Kind::Manual(true),
                Grant::Claim { claim, value } => Kind::Claim(pb::ClaimSource {
                    claim: claim.clone(),
                    value: value.clone(),
                }),
            }),
        }),
    };
    let users = report
        .diff
        .users
        .iter()
        .map(|change| {
            let org_before = change
                .before
                .as_ref()
                .and_then(|access| access.org_role.as_ref());
            let org_after = change
                .after
                .as_ref()
                .and_then(|access| access.org_role.as_ref());
            let no_groups = Default::default();
            let groups_before = change
                .before
                .as_ref()
                .map_or(&no_groups, |access| &access.resource_groups);
            let groups_after = change
                .after
                .as_ref()
                .map_or(&no_groups, |access| &access.resource_groups);
            let mut resource_groups: Vec<ResourceGroupId> = groups_before
                .keys()
                .chain(groups_after.keys())
                .copied()
                .filter(|id| groups_before.get(id) != groups_after.get(id))
                .collect();
            resource_groups.dedup();
            resource_groups.sort();
            resource_groups.dedup();
            pb::UserStagingChange {
                user_id: change.user_id.to_string(),
                user_name: change.user_name.clone(),
                previous_user_name: change.previous_user_name.clone().unwrap_or_default(),
                handle: change.handle.clone(),
                previous_handle: change.previous_handle.clone().unwrap_or_default(),
                change: match change.lifecycle {
                    Lifecycle::Created => pb::user_staging_change::Change::Created,
                    Lifecycle::Deleted => pb::user_staging_change::Change::Deleted,
                    Lifecycle::Deactivated => pb::user_staging_change::Change::Deactivated,
                    Lifecycle::Reactivated => pb::user_staging_change::Change::Reactivated,
                    Lifecycle::Updated => pb::user_staging_change::Change::Updated,
                    Lifecycle::Unchanged => pb::user_staging_change::Change::None,
                }
                .into(),
                org_role: (org_before != org_after).then(|| pb::RoleChange {
                    before: org_before.map(staged_role),
                    after: org_after.map(staged_role),
                }),
                resource_groups: resource_groups
                    .into_iter()
                    .map(|id| pb::ResourceGroupRoleChange {
                        resource_group_id: id.to_string(),
                        resource_group_name: report
                            .live
                            .resource_group(&id)
                            .map(|record| record.name.clone())
                            .unwrap_or_default(),
                        before: groups_before.get(&id).map(staged_role),
                        after: groups_after.get(&id).map(staged_role),
                    })
                    .collect(),
                groups_joined: change
                    .groups_joined
                    .iter()
                    .copied()
                    .map(group_ref)
                    .collect(),
                groups_left: change.groups_left.iter().copied().map(group_ref).collect(),
            }
        })
        .collect();
    let groups = report
        .diff
        .groups
        .iter()
        .map(|change| pb::GroupStagingChange {
            group_id: change.group_id.to_string(),
            display_name: change.display_name.clone(),
            previous_display_name: change.previous_display_name.clone().unwrap_or_default(),
            change: match change.lifecycle {
                Lifecycle::Created => pb::group_staging_change::Change::Created,
                Lifecycle::Deleted => pb::group_staging_change::Change::Deleted,
                _ => pb::group_staging_change::Change::Updated,
            }
            .into(),
            role_mapping_removed: change
                .role_mapping_removed
                .map_or(pb::Role::Unspecified, role_to_proto)
                .into(),
            unlinked_resource_groups: change
                .unlinked_resource_groups
                .iter()
                .map(|id| {
                    report
                        .live
                        .resource_group(id)
                        .map_or_else(|| id.to_string(), |group| group.name.clone())
                })
                .collect(),
        })
        .collect();
    pb::StagingDiff {
        tenant: tenant.to_string(),
        generation: report.generation,
        users,
        events: report.diff.events as u64,
        groups,
    }
}

fn token_name(name: &str) -> Result<String, Status> {
    let name = if name.trim().is_empty() {
        "default"
    } else {
        name.trim()
    };
    if name.chars().count() > 100 {
        return Err(Status::invalid_argument(
            "token names are at most 100 characters",
        ));
    }
    Ok(name.to_owned())
}

#[tonic::async_trait]
impl pb::admin_server::Admin for AdminService {
    async fn add_webhook(
        &self,
        request: Request<pb::AddWebhookRequest>,
    ) -> Result<Response<pb::WebhookSecret>, Status> {
        self.add_webhook_call(request).await
    }

    async fn list_webhooks(
        &self,
        request: Request<pb::ListWebhooksRequest>,
    ) -> Result<Response<pb::ListWebhooksResponse>, Status> {
        self.list_webhooks_call(request).await
    }

    async fn get_webhook(
        &self,
        request: Request<pb::WebhookRequest>,
    ) -> Result<Response<pb::WebhookInfo>, Status> {
        self.get_webhook_call(request).await
    }

    async fn remove_webhook(
        &self,
        request: Request<pb::WebhookRequest>,
    ) -> Result<Response<pb::RemoveWebhookResponse>, Status> {
        self.remove_webhook_call(request).await
    }

    async fn pause_webhook(
        &self,
        request: Request<pb::WebhookRequest>,
    ) -> Result<Response<pb::WebhookInfo>, Status> {
        self.set_webhook_status_call(request, roster_engine::domain::WebhookStatus::Paused)
            .await
    }

    async fn resume_webhook(
        &self,
        request: Request<pb::WebhookRequest>,
    ) -> Result<Response<pb::WebhookInfo>, Status> {
        self.set_webhook_status_call(request, roster_engine::domain::WebhookStatus::Active)
            .await
    }

    async fn rotate_webhook_secret(
        &self,
        request: Request<pb::RotateWebhookSecretRequest>,
    ) -> Result<Response<pb::WebhookSecret>, Status> {
        self.rotate_webhook_secret_call(request).await
    }

    async fn list_ssf_streams(
        &self,
        request: Request<pb::ListSsfStreamsRequest>,
    ) -> Result<Response<pb::ListSsfStreamsResponse>, Status> {
        self.list_ssf_streams_call(request).await
    }

    async fn set_ssf_stream_status(
        &self,
        request: Request<pb::SetSsfStreamStatusRequest>,
    ) -> Result<Response<pb::SsfStreamInfo>, Status> {
        self.set_ssf_stream_status_call(request).await
    }

    async fn delete_ssf_stream(
        &self,
        request: Request<pb::SsfStreamRequest>,
    ) -> Result<Response<pb::DeleteSsfStreamResponse>, Status> {
        self.delete_ssf_stream_call(request).await
    }

    async fn rotate_ssf_signing_key(
        &self,
        request: Request<pb::RotateSsfSigningKeyRequest>,
    ) -> Result<Response<pb::RotateSsfSigningKeyResponse>, Status> {
        self.rotate_ssf_signing_key_call(request).await
    }

    async fn create_tenant(
        &self,
        request: Request<pb::CreateTenantRequest>,
    ) -> Result<Response<pb::CreateTenantResponse>, Status> {
        let context = self.context(&request).await?;
        let request = request.into_inner();
        let tenant = tenant_name(&request.name)?;
        let usernames = username_policy(&request.usernames)?;
        let issued = auth::issue(&token_name(&request.token_name)?, TokenScope::Scim, None);
        let token_id = issued.token.id.clone();
        let executed = self
            .state
            .engine
            .execute(
                &tenant,
                Command::CreateTenant {
                    default_role: Role::Read,
                    first_token: Some(issued.token),
                    usernames,
                },
                context,
            )
            .await
            .map_err(status)?;
        let token = executed
            .state
            .token(&token_id)
            .map(token_info)
            .ok_or_else(|| Status::internal("the new token could not be read back"))?;
        tracing::info!(%tenant, token = %token_id, "tenant created");
        Ok(Response::new(pb::CreateTenantResponse {
            tenant: tenant.to_string(),
            token: Some(token),
            secret: issued.bearer,
        }))
    }

    async fn list_tenants(
        &self,
        request: Request<pb::ListTenantsRequest>,
    ) -> Result<Response<pb::ListTenantsResponse>, Status> {
        self.context(&request).await?;
        let tenants = self
            .state
            .engine
            .aggregate()
            .tenants()
            .map_err(|error| Status::unavailable(error.to_string()))?
            .into_iter()
            .filter(|(name, _)| !name.is_system())
            .map(|(name, record)| tenant_info(&name, &record))
            .collect();
        Ok(Response::new(pb::ListTenantsResponse { tenants }))
    }

    async fn issue_token(
        &self,
        request: Request<pb::IssueTokenRequest>,
    ) -> Result<Response<pb::IssueTokenResponse>, Status> {
        let context = self.context(&request).await?;
        let request = request.into_inner();
        let tenant = self.token_holder(&request.tenant).await?;
        let expires_at = match &request.expires_in {
            Some(lifetime) => Some(
                context
                    .now
                    .plus_micros(duration_micros(lifetime, "expires_in")?),
            ),
            None => None,
        };
        let issued = auth::issue(
            &token_name(&request.name)?,
            token_scope(&request.scope)?,
            expires_at,
        );
        let token_id = issued.token.id.clone();
        let executed = self
            .state
            .engine
            .execute(&tenant, Command::IssueToken(issued.token), context)
            .await
            .map_err(status)?;
        let token = executed
            .state
            .token(&token_id)
            .map(token_info)
            .ok_or_else(|| Status::internal("the new token could not be read back"))?;
        tracing::info!(%tenant, token = %token_id, "token issued");
        Ok(Response::new(pb::IssueTokenResponse {
            token: Some(token),
            secret: issued.bearer,
        }))
    }

    async fn list_tokens(
        &self,
        request: Request<pb::ListTokensRequest>,
    ) -> Result<Response<pb::ListTokensResponse>, Status> {
        self.context(&request).await?;
        let tenant = self.token_holder(&request.get_ref().tenant).await?;
        let tokens = self
            .state
            .engine
            .aggregate()
            .tokens(&tenant)
            .map_err(|error| Status::unavailable(error.to_string()))?
            .iter()
            .map(token_info)
            .collect();
        Ok(Response::new(pb::ListTokensResponse { tokens }))
    }

    async fn revoke_token(
        &self,
        request: Request<pb::RevokeTokenRequest>,
    ) -> Result<Response<pb::RevokeTokenResponse>, Status> {
        let context = self.context(&request).await?;
        let request = request.into_inner();
        let tenant = self.token_holder(&request.tenant).await?;
        let token_id = TokenId(request.token_id);
        // The last valid admin token is kept by the domain (`Rejection::LastAdminToken`),
        // decided in the tenant's order so that racing revocations cannot both pass.
        let at = context.now;
        let executed = self
            .state
            .engine
            .execute(
                &tenant,
                Command::RevokeToken {
                    token_id: token_id.clone(),
                    at,
                },
                context,
            )
            .await
            .map_err(status)?;
        let token = executed.state.token(&token_id).map(token_info);
        tracing::info!(%tenant, token = %token_id, "token revoked");
        Ok(Response::new(pb::RevokeTokenResponse { token }))
    }

    async fn rotate_token(
        &self,
        request: Request<pb::RotateTokenRequest>,
    ) -> Result<Response<pb::RotateTokenResponse>, Status> {
        let context = self.context(&request).await?;
        let request = request.into_inner();
        let tenant = self.token_holder(&request.tenant).await?;
        let old = TokenId(request.token_id);
        let current = self
            .state
            .engine
            .aggregate()
            .token(&tenant, &old)
            .map_err(|error| Status::unavailable(error.to_string()))?
            .ok_or_else(|| Status::not_found(format!("token {old} not found")))?;
        let overlap = match &request.overlap {
            Some(overlap) => duration_micros(overlap, "overlap")?,
            None => DEFAULT_OVERLAP_MICROS,
        };
        let expires_at = match &request.expires_in {
            Some(lifetime) => Some(
                context
                    .now
                    .plus_micros(duration_micros(lifetime, "expires_in")?),
            ),
            None => None,
        };
        let name = if request.name.trim().is_empty() {
            current.name.clone()
        } else {
            token_name(&request.name)?
        };
        let issued = auth::issue(&name, TokenScope::Scim, expires_at);
        let new_id = issued.token.id.clone();
        let executed = self
            .state
            .engine
            .execute(
                &tenant,
                Command::RotateToken {
                    old: old.clone(),
                    new: issued.token,
                    old_expires_at: context.now.plus_micros(overlap),
                    at: context.now,
                },
                context,
            )
            .await
            .map_err(status)?;
        let token = executed.state.token(&new_id).map(token_info);
        let previous = executed.state.token(&old).map(token_info);
        tracing::info!(%tenant, old = %old, new = %new_id, "token rotated");
        Ok(Response::new(pb::RotateTokenResponse {
            token,
            secret: issued.bearer,
            previous,
        }))
    }

    async fn set_tenant_settings(
        &self,
        request: Request<pb::SetTenantSettingsRequest>,
    ) -> Result<Response<pb::TenantInfo>, Status> {
        let context = self.context(&request).await?;
        let request = request.into_inner();
        let tenant = self.existing_tenant(&request.tenant).await?;
        let usernames = request
            .usernames
            .as_deref()
            .map(username_policy)
            .transpose()?;
        if let Some(enforced) = request.sso_enforced {
            self.state
                .engine
                .execute(
                    &tenant,
                    Command::SetSsoEnforced { enforced },
                    context.clone(),
                )
                .await
                .map_err(status)?;
            tracing::info!(%tenant, sso_enforced = enforced, "tenant settings changed");
        }
        if let Some(policy) = usernames {
            self.state
                .engine
                .execute(&tenant, Command::SetUsernamePolicy { policy }, context)
                .await
                .map_err(status)?;
            tracing::info!(%tenant, usernames = %policy, "tenant settings changed");
        }
        let record = self
            .state
            .engine
            .aggregate()
            .tenant(&tenant)
            .map_err(|error| Status::unavailable(error.to_string()))?
            .ok_or_else(|| Status::not_found(format!("tenant {tenant} not found")))?;
        Ok(Response::new(tenant_info(&tenant, &record)))
    }

    async fn stage_tenant(
        &self,
        request: Request<pb::StageTenantRequest>,
    ) -> Result<Response<pb::StageTenantResponse>, Status> {
        let context = self.context(&request).await?;
        let tenant = self.existing_tenant(&request.get_ref().tenant).await?;
        let staged = self
            .state
            .engine
            .stage_tenant(&tenant, context)
            .await
            .map_err(status)?;
        tracing::info!(%tenant, generation = staged.generation, resumed = staged.resumed, users = staged.users_copied, "tenant staged");
        Ok(Response::new(pb::StageTenantResponse {
            tenant: Some(self.tenant_info(&tenant)?),
            generation: staged.generation,
            resumed: staged.resumed,
            users_copied: staged.users_copied as u64,
            groups_copied: staged.groups_copied as u64,
        }))
    }

    async fn get_staging_diff(
        &self,
        request: Request<pb::GetStagingDiffRequest>,
    ) -> Result<Response<pb::StagingDiff>, Status> {
        self.context(&request).await?;
        let tenant = self.existing_tenant(&request.get_ref().tenant).await?;
        let report = self
            .state
            .engine
            .staging_diff(&tenant)
            .await
            .map_err(status)?;
        Ok(Response::new(staging_diff_message(&tenant, &report)))
    }

    async fn promote_tenant(
        &self,
        request: Request<pb::PromoteTenantRequest>,
    ) -> Result<Response<pb::PromoteTenantResponse>, Status> {
        let context = self.context(&request).await?;
        let tenant = self.existing_tenant(&request.get_ref().tenant).await?;
        let report = self
            .state
            .engine
            .promote_staging(&tenant, context)
            .await
            .map_err(status)?;
        tracing::info!(%tenant, generation = report.generation, users = report.diff.users.len(), events = report.diff.events, "staging promoted");
        Ok(Response::new(pb::PromoteTenantResponse {
            promoted: Some(staging_diff_message(&tenant, &report)),
            tenant: Some(self.tenant_info(&tenant)?),
        }))
    }

    async fn discard_staging(
        &self,
        request: Request<pb::DiscardStagingRequest>,
    ) -> Result<Response<pb::DiscardStagingResponse>, Status> {
        let context = self.context(&request).await?;
        let tenant = self.existing_tenant(&request.get_ref().tenant).await?;
        let generation = self
            .state
            .engine
            .discard_staging(&tenant, context)
            .await
            .map_err(status)?;
        tracing::info!(%tenant, generation, "staging discarded");
        Ok(Response::new(pb::DiscardStagingResponse {
            tenant: Some(self.tenant_info(&tenant)?),
            generation,
        }))
    }

    async fn list_role_mappings(
        &self,
        request: Request<pb::ListRoleMappingsRequest>,
    ) -> Result<Response<pb::RoleMappings>, Status> {
        self.context(&request).await?;
        let tenant = self.existing_tenant(&request.get_ref().tenant).await?;
        self.role_mappings_response(&tenant)
    }

    async fn set_default_role(
        &self,
        request: Request<pb::SetDefaultRoleRequest>,
    ) -> Result<Response<pb::RoleMappings>, Status> {
        let (tenant, ()) = self
            .edit(request, |_, _, request| {
                let role = requested_role(request.role)?;
                Ok((Command::SetDefaultRole { role }, ()))
            })
            .await?;
        self.role_mappings_response(&tenant)
    }

    async fn set_role_mapping(
        &self,
        request: Request<pb::SetRoleMappingRequest>,
    ) -> Result<Response<pb::RoleMappings>, Status> {
        let (tenant, ()) = self
            .edit(request, |store, tenant, request| {
                let role = Some(requested_role(request.role)?);
                let group_id = resolve_group(store, tenant, &request.group)?;
                Ok((Command::SetRoleMapping { group_id, role }, ()))
            })
            .await?;
        self.role_mappings_response(&tenant)
    }

    async fn remove_role_mapping(
        &self,
        request: Request<pb::RemoveRoleMappingRequest>,
    ) -> Result<Response<pb::RoleMappings>, Status> {
        let (tenant, ()) = self
            .edit(request, |store, tenant, request| {
                let group_id = resolve_group(store, tenant, &request.group)?;
                Ok((
                    Command::SetRoleMapping {
                        group_id,
                        role: None,
                    },
                    (),
                ))
            })
            .await?;
        self.role_mappings_response(&tenant)
    }

    async fn list_resource_groups(
        &self,
        request: Request<pb::ListResourceGroupsRequest>,
    ) -> Result<Response<pb::ListResourceGroupsResponse>, Status> {
        self.context(&request).await?;
        let tenant = self.existing_tenant(&request.get_ref().tenant).await?;
        let mut resource_groups = Vec::new();
        for record in stored(self.store().resource_groups(&tenant))? {
            resource_groups.push(resource_group_info(self.store(), &tenant, &record)?);
        }
        Ok(Response::new(pb::ListResourceGroupsResponse {
            resource_groups,
        }))
    }

    async fn create_resource_group(
        &self,
        request: Request<pb::CreateResourceGroupRequest>,
    ) -> Result<Response<pb::ResourceGroupInfo>, Status> {
        let (tenant, resource_group_id) = self
            .edit(request, |_, _, request| {
                let resource_group_id = ResourceGroupId(Uuid::now_v7());
                let name = request.name;
                let command = Command::CreateResourceGroup {
                    resource_group_id,
                    name,
                };
                Ok((command, resource_group_id))
            })
            .await?;
        self.resource_group_response(&tenant, resource_group_id)
    }

    async fn delete_resource_group(
        &self,
        request: Request<pb::DeleteResourceGroupRequest>,
    ) -> Result<Response<pb::DeleteResourceGroupResponse>, Status> {
        self.edit(request, |store, tenant, request| {
            let resource_group_id = resolve_resource_group(store, tenant, &request.resource_group)?;
            Ok((Command::DeleteResourceGroup { resource_group_id }, ()))
        })
        .await?;
        Ok(Response::new(pb::DeleteResourceGroupResponse {}))
    }

    async fn link_resource_group(
        &self,
        request: Request<pb::LinkResourceGroupRequest>,
    ) -> Result<Response<pb::ResourceGroupInfo>, Status> {
        let (tenant, resource_group_id) = self
            .edit(request, |store, tenant, request| {
                let role = requested_role(request.role)?;
                let resource_group_id =
                    resolve_resource_group(store, tenant, &request.resource_group)?;
                let group_id = resolve_group(store, tenant, &request.group)?;
                let command = Command::LinkResourceGroup {
                    resource_group_id,
                    group_id,
                    role,
                };
                Ok((command, resource_group_id))
            })
            .await?;
        self.resource_group_response(&tenant, resource_group_id)
    }

    async fn unlink_resource_group(
        &self,
        request: Request<pb::UnlinkResourceGroupRequest>,
    ) -> Result<Response<pb::ResourceGroupInfo>, Status> {
        let (tenant, resource_group_id) = self
            .edit(request, |store, tenant, request| {
                let resource_group_id =
                    resolve_resource_group(store, tenant, &request.resource_group)?;
                let group_id = resolve_group(store, tenant, &request.group)?;
                let command = Command::UnlinkResourceGroup {
                    resource_group_id,
                    group_id,
                };
                Ok((command, resource_group_id))
            })
            .await?;
        self.resource_group_response(&tenant, resource_group_id)
    }

    async fn set_resource_group_member(
        &self,
        request: Request<pb::SetResourceGroupMemberRequest>,
    ) -> Result<Response<pb::ResourceGroupInfo>, Status> {
        let (tenant, resource_group_id) = self
            .edit(request, |store, tenant, request| {
                let role = requested_role(request.role)?;
                let resource_group_id =
                    resolve_resource_group(store, tenant, &request.resource_group)?;
                let user_id = resolve_user(store, tenant, &request.user)?;
                let command = Command::SetResourceGroupMember {
                    resource_group_id,
                    user_id,
                    role,
                };
                Ok((command, resource_group_id))
            })
            .await?;
        self.resource_group_response(&tenant, resource_group_id)
    }

    async fn remove_resource_group_member(
        &self,
        request: Request<pb::RemoveResourceGroupMemberRequest>,
    ) -> Result<Response<pb::ResourceGroupInfo>, Status> {
        let (tenant, resource_group_id) = self
            .edit(request, |store, tenant, request| {
                let resource_group_id =
                    resolve_resource_group(store, tenant, &request.resource_group)?;
                let user_id = resolve_user(store, tenant, &request.user)?;
                let command = Command::RemoveResourceGroupMember {
                    resource_group_id,
                    user_id,
                };
                Ok((command, resource_group_id))
            })
            .await?;
        self.resource_group_response(&tenant, resource_group_id)
    }

    async fn set_claim_role_mapping(
        &self,
        request: Request<pb::SetClaimRoleMappingRequest>,
    ) -> Result<Response<pb::RoleMappings>, Status> {
        let (tenant, ()) = self
            .edit(request, |_, _, request| {
                let role = Some(requested_role(request.role)?);
                let (claim, value) = (request.claim, request.value);
                Ok((Command::SetClaimRoleMapping { claim, value, role }, ()))
            })
            .await?;
        self.role_mappings_response(&tenant)
    }

    async fn remove_claim_role_mapping(
        &self,
        request: Request<pb::RemoveClaimRoleMappingRequest>,
    ) -> Result<Response<pb::RoleMappings>, Status> {
        let (tenant, ()) = self
            .edit(request, |_, _, request| {
                let (claim, value) = (request.claim, request.value);
                let command = Command::SetClaimRoleMapping {
                    claim,
                    value,
                    role: None,
                };
                Ok((command, ()))
            })
            .await?;
        self.role_mappings_response(&tenant)
    }
}
