//! Roles: the tenant's default role, group role mappings, and resource groups (their links to
//! groups and their hand-managed members).

use super::*;
use crate::domain::Role;

pub(super) fn set_default_role(state: &State, role: Role) -> Result<Vec<EventPayload>, Rejection> {
    let tenant = state
        .tenant
        .as_ref()
        .filter(|_| !state.name.is_system())
        .ok_or(Rejection::TenantNotFound)?;
    if tenant.default_role == role {
        return Ok(Vec::new());
    }
    Ok(vec![EventPayload::DefaultRoleSet { role }])
}

pub(super) fn set_role_mapping(
    state: &State,
    group_id: GroupId,
    role: Option<Role>,
) -> Result<Vec<EventPayload>, Rejection> {
    require_tenant(state)?;
    if state.group(&group_id).is_none() {
        return Err(Rejection::GroupNotFound(group_id));
    }
    Ok(match (state.role_mapping(&group_id), role) {
        (current, Some(role)) if current == Some(role) => Vec::new(),
        (_, Some(role)) => vec![EventPayload::RoleMappingSet { group_id, role }],
        (Some(_), None) => vec![EventPayload::RoleMappingRemoved { group_id }],
        (None, None) => Vec::new(),
    })
}

pub(super) fn create_resource_group(
    state: &State,
    resource_group_id: ResourceGroupId,
    name: String,
) -> Result<Vec<EventPayload>, Rejection> {
    require_tenant(state)?;
    let name = name.trim().to_owned();
    if name.is_empty() || name.chars().count() > RESOURCE_GROUP_NAME_MAX {
        return Err(Rejection::InvalidResourceGroupName);
    }
    if state.resource_group(&resource_group_id).is_some() {
        return Err(Rejection::ResourceGroupAlreadyExists(resource_group_id));
    }
    if state.resource_group_id_by_name(&fold(&name)).is_some() {
        return Err(Rejection::ResourceGroupNameTaken { name });
    }
    Ok(vec![EventPayload::ResourceGroupCreated {
        resource_group_id,
        name,
    }])
}

pub(super) fn delete_resource_group(
    state: &State,
    resource_group_id: ResourceGroupId,
) -> Result<Vec<EventPayload>, Rejection> {
    require_tenant(state)?;
    let resource_group = existing_resource_group(state, resource_group_id)?;
    let mut events: Vec<EventPayload> = resource_group
        .links
        .keys()
        .map(|group_id| EventPayload::ResourceGroupUnlinked {
            resource_group_id,
            group_id: *group_id,
        })
        .collect();
    events.extend(
        state
            .members_of_resource_group(resource_group_id)
            .map(|(user_id, _)| EventPayload::ResourceGroupMemberRemoved {
                resource_group_id,
                user_id,
            }),
    );
    events.push(EventPayload::ResourceGroupDeleted { resource_group_id });
    Ok(events)
}

pub(super) fn link_resource_group(
    state: &State,
    resource_group_id: ResourceGroupId,
    group_id: GroupId,
    role: Role,
) -> Result<Vec<EventPayload>, Rejection> {
    require_tenant(state)?;
    let resource_group = existing_resource_group(state, resource_group_id)?;
    if state.group(&group_id).is_none() {
        return Err(Rejection::GroupNotFound(group_id));
    }
    Ok(match resource_group.links.get(&group_id) {
        Some(current) if *current == role => Vec::new(),
        Some(_) => vec![EventPayload::ResourceGroupLinkRoleChanged {
            resource_group_id,
            group_id,
            role,
        }],
        None if resource_group.manual_member_count > 0 => {
            return Err(Rejection::ResourceGroupHasMembers(resource_group_id));
        }
        None => vec![EventPayload::ResourceGroupLinked {
            resource_group_id,
            group_id,
            role,
        }],
    })
}

pub(super) fn unlink_resource_group(
    state: &State,
    resource_group_id: ResourceGroupId,
    group_id: GroupId,
) -> Result<Vec<EventPayload>, Rejection> {
    require_tenant(state)?;
    let resource_group = existing_resource_group(state, resource_group_id)?;
    if !resource_group.links.contains_key(&group_id) {
        return Err(Rejection::NotLinked {
            resource_group: resource_group_id,
            group: group_id,
        });
    }
    Ok(vec![EventPayload::ResourceGroupUnlinked {
        resource_group_id,
        group_id,
    }])
}

pub(super) fn set_resource_group_member(
    state: &State,
    resource_group_id: ResourceGroupId,
    user_id: UserId,
    role: Role,
) -> Result<Vec<EventPayload>, Rejection> {
    require_tenant(state)?;
    let resource_group = manually_managed(state, resource_group_id)?;
    if state.user(&user_id).is_none() {
        return Err(Rejection::UserNotFound(user_id));
    }
    if state.resource_group_member(resource_group.id, user_id) == Some(role) {
        return Ok(Vec::new());
    }
    Ok(vec![EventPayload::ResourceGroupMemberSet {
        resource_group_id,
        user_id,
        role,
    }])
}

pub(super) fn remove_resource_group_member(
    state: &State,
    resource_group_id: ResourceGroupId,
    user_id: UserId,
) -> Result<Vec<EventPayload>, Rejection> {
    require_tenant(state)?;
    manually_managed(state, resource_group_id)?;
    if state
        .resource_group_member(resource_group_id, user_id)
        .is_none()
    {
        return Ok(Vec::new());
    }
    Ok(vec![EventPayload::ResourceGroupMemberRemoved {
        resource_group_id,
        user_id,
    }])
}
