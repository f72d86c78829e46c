//! The `Directory` gRPC service: users, memberships and access, now or as of a moment, and
//! access checks with the managed-account rules. Every call waits for the views to reach every
//! write acknowledged before it (read-your-writes).

use roster_engine::codec::{role_to_proto, timestamp_from_proto, timestamp_to_proto};
use roster_engine::domain::{
    self, GroupId, ResourceGroupId, Role, TenantName, Timestamp, UserId, UserRecord, fold,
};
use roster_projector::{AccessRecord, Via};
use roster_proto::v1 as pb;
use tonic::{Request, Response, Status};

use super::admin::tenant_name;
use crate::state::AppState;

const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;

pub struct DirectoryService {
    state: AppState,
}

pub(super) fn unavailable(error: impl std::fmt::Display) -> Status {
    tracing::warn!(%error, "directory read failed");
    Status::unavailable("the directory is temporarily unavailable; retry later")
}

fn page_size(requested: u32) -> usize {
    match requested as usize {
        0 => DEFAULT_PAGE,
        size => size.min(MAX_PAGE),
    }
}

fn page_token(token: &str) -> Result<Option<UserId>, Status> {
    if token.is_empty() {
        return Ok(None);
    }
    token
        .parse::<UserId>()
        .map(Some)
        .map_err(|_| Status::invalid_argument("page_token is not one this service issued"))
}

fn group_page_token(token: &str) -> Result<Option<GroupId>, Status> {
    if token.is_empty() {
        return Ok(None);
    }
    token
        .parse::<GroupId>()
        .map(Some)
        .map_err(|_| Status::invalid_argument("page_token is not one this service issued"))
}

/// The role an action needs.
fn required_role(action: pb::Action) -> Option<Role> {
    match action {
        pb::Action::Unspecified => None,
        pb::Action::Read => Some(Role::Read),
        pb::Action::Contribute => Some(Role::Contributor),
        pb::Action::Write => Some(Role::Write),
        pb::Action::Administer => Some(Role::Admin),
    }
}

impl DirectoryService {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }

    /// Authorizes a call about `tenant`, checks the tenant exists, and waits for the views.
    async fn tenant<T>(&self, request: &Request<T>, tenant: &str) -> Result<TenantName, Status> {
        let tenant = tenant_name(tenant)?;
        super::authorize_tenant(&self.state, request.metadata(), &tenant).await?;
        if !self
            .state
            .tenant_exists_fresh(&tenant)
            .await
            .map_err(unavailable)?
        {
            return Err(Status::not_found(format!("tenant {tenant} does not exist")));
        }
        self.state.read_barrier().await.map_err(unavailable)?;
        Ok(tenant)
    }

    pub(super) fn app(&self) -> &AppState {
        &self.state
    }

    pub(super) fn store(&self) -> &roster_engine::store::StateStore {
        self.state.directory.store()
    }

    fn resolve_user(
        &self,
        tenant: &TenantName,
        user: Option<&pb::UserRef>,
    ) -> Result<UserId, Status> {
        use pb::user_ref::By;
        let missing = || Status::not_found(format!("no such user in tenant {tenant}"));
        match user.and_then(|user| user.by.as_ref()) {
            Some(By::Id(id)) => {
                let id: UserId = id.parse().map_err(|_| missing())?;
                // A user deleted since is still known to the history by id.
                Ok(id)
            }
            // A userName, else a handle: a platform may ask with the name it shows.
            Some(By::UserName(name)) => match self
                .store()
                .user_id_by_name(tenant, &fold(name))
                .map_err(unavailable)?
            {
                Some(id) => Ok(id),
                None => self
                    .store()
                    .user_id_by_handle(tenant, name)
                    .map_err(unavailable)?
                    .ok_or_else(missing),
            },
            Some(By::Handle(handle)) => self
                .store()
                .user_id_by_handle(tenant, handle)
                .map_err(unavailable)?
                .ok_or_else(missing),
            Some(By::ExternalId(external_id)) => {
                let holders = self
                    .store()
                    .user_ids_by_external_id(tenant, external_id)
                    .map_err(unavailable)?;
                match holders.as_slice() {
                    [] => Err(missing()),
                    [id] => Ok(*id),
                    // externalIds need not be unique (RFC 7643 §3.1): never guess one.
                    _ => Err(Status::failed_precondition(format!(
                        "{} users of tenant {tenant} have the externalId {external_id:?}: \
                         name the user by id or user_name",
                        holders.len()
                    ))),
                }
            }
            None => Err(Status::invalid_argument(
                "user: give an id, user_name, external_id or handle",
            )),
        }
    }

    /// The tenant's (users, groups) counts.
    fn tenant_counts(&self, tenant: &TenantName) -> Result<(u64, u64), Status> {
        let record = self.store().tenant(tenant).map_err(unavailable)?;
        Ok(record.map_or((0, 0), |record| (record.user_count, record.group_count)))
    }

    fn existing_user(&self, tenant: &TenantName, id: UserId) -> Result<UserRecord, Status> {
        self.store()
            .user(tenant, &id)
            .map_err(unavailable)?
            .ok_or_else(|| Status::not_found(format!("no such user in tenant {tenant}")))
    }

    fn group_ref(&self, tenant: &TenantName, id: GroupId) -> Result<pb::GroupRef, Status> {
        let display_name = self
            .store()
            .group(tenant, &id)
            .map_err(unavailable)?
            .map(|group| group.profile.display_name)
            .unwrap_or_default();
        Ok(pb::GroupRef {
            id: id.to_string(),
            display_name,
        })
    }

    fn user_groups(&self, tenant: &TenantName, id: UserId) -> Result<Vec<pb::GroupRef>, Status> {
        self.store()
            .groups_of_user(tenant, &id)
            .map_err(unavailable)?
            .into_iter()
            .map(|group| self.group_ref(tenant, group))
            .collect()
    }

    pub(super) fn user_message(
        &self,
        tenant: &TenantName,
        record: &UserRecord,
        groups: bool,
    ) -> Result<pb::User, Status> {
        Ok(pb::User {
            id: record.id.to_string(),
            user_name: record.profile.user_name.clone(),
            handle: record.handle().to_owned(),
            external_id: record.profile.external_id.clone().unwrap_or_default(),
            active: record.profile.active,
            attributes_json: serde_json::Value::Object(record.profile.attributes.clone())
                .to_string(),
            groups: if groups {
                self.user_groups(tenant, record.id)?
            } else {
                Vec::new()
            },
            version: record.version,
            created_at: Some(timestamp_to_proto(record.created_at)),
            modified_at: Some(timestamp_to_proto(record.modified_at)),
        })
    }

    fn resolve_group(&self, tenant: &TenantName, name: &str) -> Result<GroupId, Status> {
        if let Ok(id) = name.parse::<GroupId>() {
            return Ok(id);
        }
        self.store()
            .group_id_by_name(tenant, &fold(name))
            .map_err(unavailable)?
            .ok_or_else(|| Status::not_found(format!("no group {name:?} in tenant {tenant}")))
    }

    fn resolve_resource_group(
        &self,
        tenant: &TenantName,
        name: &str,
    ) -> Result<ResourceGroupId, Status> {
        if let Ok(id) = name.parse::<ResourceGroupId>()
            && self
                .store()
                .resource_group(tenant, &id)
                .map_err(unavailable)?
                .is_some()
        {
            return Ok(id);
        }
        self.store()
            .resource_group_id_by_name(tenant, &fold(name))
            .map_err(unavailable)?
            .ok_or_else(|| {
                Status::not_found(format!("no resource group {name:?} in tenant {tenant}"))
            })
    }

    fn source(&self, tenant: &TenantName, via: &Via) -> Result<pb::RoleSource, Status> {
        use pb::role_source::Kind;
        Ok(pb::RoleSource {
            kind: Some(match via {
                Via::Default => Kind::DefaultRole(true),
                Via::Group(group) => Kind::Group(self.group_ref(tenant, *group)?),
                Via::Manual => Kind::Manual(true),
                Via::Claim { claim, value } => Kind::Claim(pb::ClaimSource {
                    claim: claim.clone(),
                    value: value.clone(),
                }),
            }),
        })
    }

    pub(super) fn access_message(
        &self,
        tenant: &TenantName,
        user: UserId,
        access: &AccessRecord,
    ) -> Result<pb::UserAccess, Status> {
        let (org_role, org_role_source) = match &access.org_role {
            Some(grant) => (
                role_to_proto(grant.role),
                Some(self.source(tenant, &grant.via)?),
            ),
            None => (pb::Role::Unspecified, None),
        };
        let mut resource_groups = Vec::new();
        for (id, grant) in &access.resource_groups {
            let name = self
                .store()
                .resource_group(tenant, id)
                .map_err(unavailable)?
                .map(|record| record.name)
                .unwrap_or_default();
            resource_groups.push(pb::ResourceGroupAccess {
                resource_group_id: id.to_string(),
                resource_group_name: name,
                role: role_to_proto(grant.role).into(),
                source: Some(self.source(tenant, &grant.via)?),
            });
        }
        Ok(pb::UserAccess {
            user_id: user.to_string(),
            active: access.active,
            org_role: org_role.into(),
            org_role_source,
            resource_groups,
        })
    }

    pub(super) fn access(
        &self,
        tenant: &TenantName,
        user: UserId,
        as_of: Option<Timestamp>,
    ) -> Result<Option<AccessRecord>, Status> {
        match as_of {
            Some(at) => self.state.directory.access_at(tenant, &user, at),
            None => self.state.directory.access(tenant, &user),
        }
        .map_err(unavailable)
    }
}

#[tonic::async_trait]
impl pb::directory_server::Directory for DirectoryService {
    async fn get_user(
        &self,
        request: Request<pb::GetUserRequest>,
    ) -> Result<Response<pb::User>, Status> {
        let tenant = self.tenant(&request, &request.get_ref().tenant).await?;
        let id = self.resolve_user(&tenant, request.get_ref().user.as_ref())?;
        let record = self.existing_user(&tenant, id)?;
        Ok(Response::new(self.user_message(&tenant, &record, true)?))
    }

    async fn list_users(
        &self,
        request: Request<pb::ListUsersRequest>,
    ) -> Result<Response<pb::ListUsersResponse>, Status> {
        let tenant = self.tenant(&request, &request.get_ref().tenant).await?;
        let size = page_size(request.get_ref().page_size);
        let after = page_token(&request.get_ref().page_token)?;
        let (users, next_page_token) = page(
            self.store().users_after(&tenant, after),
            size,
            |record| self.user_message(&tenant, &record, false),
            |user| &user.id,
        )?;
        let total = self.tenant_counts(&tenant)?.0;
        Ok(Response::new(pb::ListUsersResponse {
            users,
            next_page_token,
            total,
        }))
    }

    async fn list_group_members(
        &self,
        request: Request<pb::ListGroupMembersRequest>,
    ) -> Result<Response<pb::ListGroupMembersResponse>, Status> {
        let tenant = self.tenant(&request, &request.get_ref().tenant).await?;
        let request = request.into_inner();
        let group = self.resolve_group(&tenant, &request.group)?;
        let size = page_size(request.page_size);
        let after = page_token(&request.page_token)?;
        let ids = match request.as_of.as_ref().map(timestamp_from_proto) {
            Some(at) => self
                .state
                .directory
                .members_at(&tenant, &group, at, after, size + 1)
                .map_err(unavailable)?,
            None => {
                if self
                    .store()
                    .group(&tenant, &group)
                    .map_err(unavailable)?
                    .is_none()
                {
                    return Err(Status::not_found(format!("group {group} not found")));
                }
                self.store()
                    .members_of_group(&tenant, &group, after, size + 1)
                    .map_err(unavailable)?
            }
        };
        let more = ids.len() > size;
        let mut members = Vec::with_capacity(size);
        for id in ids.into_iter().take(size) {
            let user_name = self
                .store()
                .user(&tenant, &id)
                .map_err(unavailable)?
                .map(|user| user.profile.user_name)
                .unwrap_or_default();
            members.push(pb::Member {
                user_id: id.to_string(),
                user_name,
            });
        }
        let next_page_token = match (more, members.last()) {
            (true, Some(last)) => last.user_id.clone(),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListGroupMembersResponse {
            members,
            next_page_token,
        }))
    }

    async fn list_user_groups(
        &self,
        request: Request<pb::ListUserGroupsRequest>,
    ) -> Result<Response<pb::ListUserGroupsResponse>, Status> {
        let tenant = self.tenant(&request, &request.get_ref().tenant).await?;
        let id = self.resolve_user(&tenant, request.get_ref().user.as_ref())?;
        self.existing_user(&tenant, id)?;
        Ok(Response::new(pb::ListUserGroupsResponse {
            groups: self.user_groups(&tenant, id)?,
        }))
    }

    async fn get_user_access(
        &self,
        request: Request<pb::GetUserAccessRequest>,
    ) -> Result<Response<pb::UserAccess>, Status> {
        let tenant = self.tenant(&request, &request.get_ref().tenant).await?;
        let id = self.resolve_user(&tenant, request.get_ref().user.as_ref())?;
        let as_of = request.get_ref().as_of.as_ref().map(timestamp_from_proto);
        let access = self
            .access(&tenant, id, as_of)?
            .ok_or_else(|| match as_of {
                Some(_) => {
                    Status::not_found(format!("user {id} did not exist in tenant {tenant} then"))
                }
                None => Status::not_found(format!("no such user in tenant {tenant}")),
            })?;
        Ok(Response::new(self.access_message(&tenant, id, &access)?))
    }

    async fn check_access(
        &self,
        request: Request<pb::CheckAccessRequest>,
    ) -> Result<Response<pb::CheckAccessResponse>, Status> {
        let tenant = self.tenant(&request, &request.get_ref().tenant).await?;
        let request = request.into_inner();
        let action = pb::Action::try_from(request.action).unwrap_or(pb::Action::Unspecified);
        let session_auth =
            pb::SessionAuth::try_from(request.session_auth).unwrap_or(pb::SessionAuth::Unspecified);
        let required = required_role(action).ok_or_else(|| {
            Status::invalid_argument("action: read, contribute, write or administer")
        })?;
        let resource = request
            .resource
            .ok_or_else(|| Status::invalid_argument("resource: a namespace is required"))?;
        if resource.namespace.is_empty() {
            return Err(Status::invalid_argument(
                "resource: a namespace is required",
            ));
        }
        let sso_enforced = self
            .store()
            .tenant(&tenant)
            .map_err(unavailable)?
            .is_some_and(|record| record.sso_enforced);
        let question = domain::AccessQuestion {
            tenant: &tenant,
            sso_enforced,
            session: match session_auth {
                pb::SessionAuth::Sso => domain::SessionAuth::Sso,
                pb::SessionAuth::Password => domain::SessionAuth::Password,
                pb::SessionAuth::Social => domain::SessionAuth::Social,
                pb::SessionAuth::Unspecified => domain::SessionAuth::Unspecified,
            },
            sso_tenant: &request.sso_tenant,
            required,
            namespace: &resource.namespace,
        };
        // What the views hold about the user; the rules themselves are the domain's.
        let user = match self.resolve_user(&tenant, request.user.as_ref()) {
            Err(status) if status.code() == tonic::Code::NotFound => None,
            Err(status) => return Err(status),
            Ok(user) => self
                .access(&tenant, user, None)?
                .map(|access| (user, access)),
        };
        let user_name = match &user {
            Some((id, access)) if access.active => {
                Some(self.existing_user(&tenant, *id)?.profile.user_name)
            }
            _ => None,
        };
        let subject = user.as_ref().map(|(_, access)| domain::AccessSubject {
            user_name: user_name.as_deref().unwrap_or_default(),
            active: access.active,
            org_role: access.org_role.as_ref().map(|grant| grant.role),
        });
        let outcome = domain::check_access(&question, subject, || {
            if resource.resource_group.is_empty() {
                return Ok(None);
            }
            let resource_group = self.resolve_resource_group(&tenant, &resource.resource_group)?;
            Ok::<_, Status>(user.as_ref().and_then(|(_, access)| {
                access
                    .resource_groups
                    .get(&resource_group)
                    .map(|grant| grant.role)
            }))
        })?;
        Ok(Response::new(pb::CheckAccessResponse {
            allowed: outcome.allowed,
            reason: outcome.reason,
            effective_role: outcome
                .effective_role
                .map_or(pb::Role::Unspecified, role_to_proto)
                .into(),
            sso_required: outcome.sso_required,
        }))
    }

    async fn list_groups(
        &self,
        request: Request<pb::ListGroupsRequest>,
    ) -> Result<Response<pb::ListGroupsResponse>, Status> {
        let tenant = self.tenant(&request, &request.get_ref().tenant).await?;
        let size = page_size(request.get_ref().page_size);
        let after = group_page_token(&request.get_ref().page_token)?;
        let (groups, next_page_token) = page(
            self.store().groups_after(&tenant, after),
            size,
            |record| {
                Ok(pb::Group {
                    id: record.id.to_string(),
                    display_name: record.profile.display_name,
                    external_id: record.profile.external_id.unwrap_or_default(),
                    member_count: record.member_count,
                    attributes_json: serde_json::Value::Object(record.profile.attributes)
                        .to_string(),
                    version: record.version,
                    created_at: Some(timestamp_to_proto(record.created_at)),
                    modified_at: Some(timestamp_to_proto(record.modified_at)),
                })
            },
            |group| &group.id,
        )?;
        let total = self.tenant_counts(&tenant)?.1;
        Ok(Response::new(pb::ListGroupsResponse {
            groups,
            next_page_token,
            total,
        }))
    }

    async fn jit_provision(
        &self,
        request: Request<pb::JitProvisionRequest>,
    ) -> Result<Response<pb::JitProvisionResponse>, Status> {
        super::jit::provision(self, request)
            .await
            .map(Response::new)
    }
}

/// One page of a listing in id order: the first `size` records as messages, and the page token
/// of the next page (the last message's id) when another record follows; empty on the last page.
fn page<R, M>(
    records: impl Iterator<Item = Result<R, roster_engine::store::StoreError>>,
    size: usize,
    mut message: impl FnMut(R) -> Result<M, Status>,
    id: impl Fn(&M) -> &String,
) -> Result<(Vec<M>, String), Status> {
    let mut messages = Vec::with_capacity(size);
    for record in records {
        let record = record.map_err(unavailable)?;
        if messages.len() == size {
            let next_page_token = messages.last().map(|last| id(last).clone());
            return Ok((messages, next_page_token.unwrap_or_default()));
        }
        messages.push(message(record)?);
    }
    Ok((messages, String::new()))
}
