//! Groups: creating, updating (profile and member edges) and deleting.

use super::*;

pub(super) fn create_group(
    state: &State,
    group_id: GroupId,
    profile: GroupProfile,
    members: Vec<UserId>,
) -> Result<Vec<EventPayload>, Rejection> {
    require_directory_writable(state)?;
    if state.group(&group_id).is_some() {
        return Err(Rejection::GroupAlreadyExists(group_id));
    }
    let profile = normalize_group(profile, None)?;
    check_group_name(state, group_id, &profile.display_name)?;
    let mut events = vec![EventPayload::GroupCreated { group_id, profile }];
    let mut changes = MemberChanges::new(state, group_id);
    changes.add(&members)?;
    events.extend(changes.into_events());
    Ok(events)
}

pub(super) fn change_group(
    state: &State,
    group_id: GroupId,
    profile: Option<GroupProfile>,
    member_changes: Vec<MemberChange>,
    expected_version: Option<u64>,
) -> Result<Vec<EventPayload>, Rejection> {
    require_directory_writable(state)?;
    let current = existing_group(state, group_id, expected_version)?;
    let mut events = match profile {
        Some(profile) => {
            let profile = normalize_group(profile, Some(&current.profile))?;
            check_group_name(state, group_id, &profile.display_name)?;
            update_group(current, profile)
        }
        None => Vec::new(),
    };
    let mut changes = MemberChanges::new(state, group_id);
    for change in &member_changes {
        match change {
            MemberChange::Add(users) => changes.add(users)?,
            MemberChange::Remove(users) => changes.remove(users),
            MemberChange::RemoveAll => changes.remove_all(),
            MemberChange::Replace(users) => changes.replace(users)?,
        }
    }
    events.extend(changes.into_events());
    Ok(events)
}

pub(super) fn delete_group(
    state: &State,
    group_id: GroupId,
    expected_version: Option<u64>,
) -> Result<Vec<EventPayload>, Rejection> {
    require_directory_writable(state)?;
    let current = existing_group(state, group_id, expected_version)?;
    let mut changes = MemberChanges::new(state, group_id);
    changes.remove_all();
    let mut events = changes.into_events();
    if state.role_mapping(&group_id).is_some() {
        events.push(EventPayload::RoleMappingRemoved { group_id });
    }
    events.extend(state.links_of(group_id).map(|(resource_group_id, _)| {
        EventPayload::ResourceGroupUnlinked {
            resource_group_id,
            group_id,
        }
    }));
    events.push(EventPayload::GroupDeleted {
        group_id,
        display_name: current.profile.display_name.clone(),
    });
    Ok(events)
}
