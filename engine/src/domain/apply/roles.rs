//! Folding role events: the default role, group role mappings, resource groups, their links
//! and hand-managed members.

use super::*;

pub(super) fn apply(state: &mut State, event: &Event) {
    let at = event.occurred_at;
    match &event.payload {
        EventPayload::DefaultRoleSet { role } => {
            if let Some(tenant) = state.tenant.as_mut() {
                tenant.default_role = *role;
                state.journal.touch(Touched::Tenant);
            }
        }
        EventPayload::RoleMappingSet { group_id, role } => {
            state.role_mappings.insert(*group_id, Some(*role));
            state.journal.touch(Touched::RoleMapping(*group_id));
        }
        EventPayload::RoleMappingRemoved { group_id } => {
            state.role_mappings.insert(*group_id, None);
            state.journal.touch(Touched::RoleMapping(*group_id));
        }
        EventPayload::ResourceGroupCreated {
            resource_group_id,
            name,
        } => {
            let folded = fold(name);
            state
                .resource_group_names
                .insert(folded.clone(), Some(*resource_group_id));
            state.journal.touch(Touched::ResourceGroupName(folded));
            state.resource_groups.insert(
                *resource_group_id,
                Some(ResourceGroupRecord {
                    id: *resource_group_id,
                    name: name.clone(),
                    links: Default::default(),
                    manual_member_count: 0,
                    created_at: at,
                }),
            );
            state
                .journal
                .touch(Touched::ResourceGroup(*resource_group_id));
        }
        EventPayload::ResourceGroupDeleted { resource_group_id } => {
            let Some(resource_group) = state.resource_group(resource_group_id).cloned() else {
                return;
            };
            let folded = fold(&resource_group.name);
            state.resource_group_names.insert(folded.clone(), None);
            state.journal.touch(Touched::ResourceGroupName(folded));
            state.resource_groups.insert(*resource_group_id, None);
            state
                .journal
                .touch(Touched::ResourceGroup(*resource_group_id));
        }
        EventPayload::ResourceGroupLinked {
            resource_group_id,
            group_id,
            role,
        }
        | EventPayload::ResourceGroupLinkRoleChanged {
            resource_group_id,
            group_id,
            role,
        } => {
            let Some(Some(resource_group)) = state.resource_groups.get_mut(resource_group_id)
            else {
                return;
            };
            resource_group.links.insert(*group_id, *role);
            state
                .journal
                .touch(Touched::ResourceGroup(*resource_group_id));
            state
                .group_links
                .insert((*group_id, *resource_group_id), Some(*role));
            state
                .journal
                .touch(Touched::GroupLink(*group_id, *resource_group_id));
        }
        EventPayload::ResourceGroupUnlinked {
            resource_group_id,
            group_id,
        } => {
            if let Some(Some(resource_group)) = state.resource_groups.get_mut(resource_group_id) {
                resource_group.links.remove(group_id);
                state
                    .journal
                    .touch(Touched::ResourceGroup(*resource_group_id));
            }
            state
                .group_links
                .insert((*group_id, *resource_group_id), None);
            state
                .journal
                .touch(Touched::GroupLink(*group_id, *resource_group_id));
        }
        EventPayload::ResourceGroupMemberSet {
            resource_group_id,
            user_id,
            role,
        } => {
            let was_member = state
                .resource_group_member(*resource_group_id, *user_id)
                .is_some();
            if !was_member
                && let Some(Some(resource_group)) = state.resource_groups.get_mut(resource_group_id)
            {
                resource_group.manual_member_count += 1;
                state
                    .journal
                    .touch(Touched::ResourceGroup(*resource_group_id));
            }
            state.set_resource_group_member(*resource_group_id, *user_id, Some(*role));
            state
                .journal
                .touch(Touched::ResourceGroupMember(*resource_group_id, *user_id));
        }
        EventPayload::ResourceGroupMemberRemoved {
            resource_group_id,
            user_id,
        } => {
            let was_member = state
                .resource_group_member(*resource_group_id, *user_id)
                .is_some();
            if was_member
                && let Some(Some(resource_group)) = state.resource_groups.get_mut(resource_group_id)
            {
                resource_group.manual_member_count =
                    resource_group.manual_member_count.saturating_sub(1);
                state
                    .journal
                    .touch(Touched::ResourceGroup(*resource_group_id));
            }
            state.set_resource_group_member(*resource_group_id, *user_id, None);
            state
                .journal
                .touch(Touched::ResourceGroupMember(*resource_group_id, *user_id));
        }
        // Routed to another area by `apply`.
        _ => {}
    }
}
