//! Folding group events: records, names, member edges and deletion.

use super::*;

pub(super) fn apply(state: &mut State, event: &Event) {
    let at = event.occurred_at;
    match &event.payload {
        EventPayload::GroupCreated { group_id, profile } => {
            let name = fold(&profile.display_name);
            state.group_names.insert(name.clone(), Some(*group_id));
            state.journal.touch(Touched::GroupName(name));
            state.groups.insert(
                *group_id,
                Some(GroupRecord {
                    id: *group_id,
                    profile: profile.clone(),
                    member_count: 0,
                    version: 1,
                    created_at: at,
                    modified_at: at,
                }),
            );
            state.journal.touch(Touched::Group(*group_id));
            // A new group has no members and no links yet.
            state.loaded.members_of_groups.insert(*group_id);
            state.loaded.links_of_groups.insert(*group_id);
            if let Some(tenant) = state.tenant.as_mut() {
                tenant.group_count += 1;
                state.journal.touch(Touched::Tenant);
            }
        }
        EventPayload::GroupRenamed {
            group_id,
            display_name,
        } => {
            let Some(mut group) = state.group(group_id).cloned() else {
                return;
            };
            let old = fold(&group.profile.display_name);
            if state.group_id_by_name(&old) == Some(*group_id)
                || !state.group_names.contains_key(&old)
            {
                state.group_names.insert(old.clone(), None);
                state.journal.touch(Touched::GroupName(old));
            }
            let new = fold(display_name);
            state.group_names.insert(new.clone(), Some(*group_id));
            state.journal.touch(Touched::GroupName(new));
            group.profile.display_name.clone_from(display_name);
            bump_group(state, group, at);
        }
        EventPayload::GroupUpdated {
            group_id,
            external_id,
            changed_attributes,
        } => {
            let Some(mut group) = state.group(group_id).cloned() else {
                return;
            };
            if let Some(external_id) = external_id {
                group.profile.external_id.clone_from(external_id);
            }
            for (name, value) in changed_attributes {
                if value.is_null() {
                    group.profile.attributes.remove(name);
                } else {
                    group.profile.attributes.insert(name.clone(), value.clone());
                }
            }
            bump_group(state, group, at);
        }
        EventPayload::GroupMembersAdded { group_id, user_ids } => {
            set_members(state, *group_id, user_ids, true, at);
        }
        EventPayload::GroupMembersRemoved { group_id, user_ids } => {
            set_members(state, *group_id, user_ids, false, at);
        }
        EventPayload::GroupDeleted { group_id, .. } => {
            let Some(group) = state.group(group_id).cloned() else {
                return;
            };
            let name = fold(&group.profile.display_name);
            if state.group_id_by_name(&name) == Some(*group_id)
                || !state.group_names.contains_key(&name)
            {
                state.group_names.insert(name.clone(), None);
                state.journal.touch(Touched::GroupName(name));
            }
            state.groups.insert(*group_id, None);
            state.journal.touch(Touched::Group(*group_id));
            if let Some(tenant) = state.tenant.as_mut() {
                tenant.group_count = tenant.group_count.saturating_sub(1);
                state.journal.touch(Touched::Tenant);
            }
        }
        // Routed to another area by `apply`.
        _ => {}
    }
}
