//! The `Admin` gRPC service: tenants and their SCIM tokens. Every call needs the admin token.

use roster_engine::codec::timestamp_to_proto;
use roster_engine::domain::{
    Command, Rejection, RejectionKind, Role, Source, TenantName, TokenId, TokenRecord,
};
use roster_engine::engine::{CommandContext, ExecuteError};
use roster_proto::v1 as pb;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::app::AppState;
use crate::auth;
use crate::clock;

pub struct AdminService {
    state: AppState,
}

impl AdminService {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }

    fn context<T>(&self, request: &Request<T>) -> Result<CommandContext, Status> {
        let actor = super::authorize_admin(&self.state, request.metadata())?;
        let request_id = Uuid::now_v7().to_string();
        Ok(CommandContext {
            now: clock::now(),
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

    fn existing_tenant(&self, name: &str) -> Result<TenantName, Status> {
        let tenant = tenant_name(name)?;
        match self.state.tenant_exists(&tenant) {
            Ok(true) => Ok(tenant),
            Ok(false) => Err(Status::not_found(format!("tenant {name:?} does not exist"))),
            Err(error) => Err(Status::unavailable(error.to_string())),
        }
    }
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
        ExecuteError::Unavailable(reason) => {
            tracing::warn!(%reason, "command not executed: infrastructure unavailable");
            Status::unavailable("the directory is temporarily unavailable; retry later")
        }
    }
}

pub fn rejection_status(rejection: &Rejection) -> Status {
    let message = rejection.to_string();
    match rejection.kind() {
        RejectionKind::Invalid => Status::invalid_argument(message),
        RejectionKind::NotFound => Status::not_found(message),
        RejectionKind::Conflict => Status::already_exists(message),
        RejectionKind::PreconditionFailed => Status::failed_precondition(message),
        RejectionKind::Forbidden => Status::permission_denied(message),
    }
}

fn token_info(record: &TokenRecord) -> pb::TokenInfo {
    pb::TokenInfo {
        id: record.id.0.clone(),
        name: record.name.clone(),
        created_at: Some(timestamp_to_proto(record.created_at)),
        expires_at: record.expires_at.map(timestamp_to_proto),
        revoked_at: record.revoked_at.map(timestamp_to_proto),
        last_used_at: None,
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
    async fn create_tenant(
        &self,
        request: Request<pb::CreateTenantRequest>,
    ) -> Result<Response<pb::CreateTenantResponse>, Status> {
        let context = self.context(&request)?;
        let request = request.into_inner();
        let tenant = tenant_name(&request.name)?;
        let issued = auth::issue(&token_name(&request.token_name)?, None);
        let token_id = issued.token.id.clone();
        let executed = self
            .state
            .engine
            .execute(
                &tenant,
                Command::CreateTenant {
                    default_role: Role::Read,
                    first_token: Some(issued.token),
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
        self.context(&request)?;
        let tenants = self
            .state
            .engine
            .aggregate()
            .tenants()
            .map_err(|error| Status::unavailable(error.to_string()))?
            .into_iter()
            .filter(|(name, _)| !name.is_system())
            .map(|(name, record)| pb::TenantInfo {
                name: name.to_string(),
                created_at: Some(timestamp_to_proto(record.created_at)),
                users: record.user_count,
                groups: record.group_count,
            })
            .collect();
        Ok(Response::new(pb::ListTenantsResponse { tenants }))
    }

    async fn issue_token(
        &self,
        request: Request<pb::IssueTokenRequest>,
    ) -> Result<Response<pb::IssueTokenResponse>, Status> {
        let context = self.context(&request)?;
        let request = request.into_inner();
        let tenant = self.existing_tenant(&request.tenant)?;
        let issued = auth::issue(&token_name(&request.name)?, None);
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
        self.context(&request)?;
        let tenant = self.existing_tenant(&request.get_ref().tenant)?;
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
        let context = self.context(&request)?;
        let request = request.into_inner();
        let tenant = self.existing_tenant(&request.tenant)?;
        let token_id = TokenId(request.token_id);
        let executed = self
            .state
            .engine
            .execute(
                &tenant,
                Command::RevokeToken {
                    token_id: token_id.clone(),
                },
                context,
            )
            .await
            .map_err(status)?;
        let token = executed.state.token(&token_id).map(token_info);
        tracing::info!(%tenant, token = %token_id, "token revoked");
        Ok(Response::new(pb::RevokeTokenResponse { token }))
    }
}
