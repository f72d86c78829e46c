//! Users: provisioning, replacing, (de)activating and deleting, with the uniqueness of
//! `userName` (not of `externalId`, which the client controls: RFC 7643 §3.1) and the handle each
//! userName gives.

use super::*;

pub(super) fn provision_user(
    state: &State,
    user_id: UserId,
    profile: UserProfile,
) -> Result<Vec<EventPayload>, Rejection> {
    require_directory_writable(state)?;
    let profile = normalize(profile, None, username_policy(state))?;
    if state.user(&user_id).is_some() {
        return Err(Rejection::UserAlreadyExists(user_id));
    }
    check_unique(state, user_id, &profile)?;
    let handle = assign_handle(state, user_id, &profile.user_name)?;
    Ok(vec![EventPayload::UserProvisioned {
        user_id,
        profile,
        handle,
    }])
}

pub(super) fn replace_user(
    state: &State,
    user_id: UserId,
    profile: UserProfile,
    expected_version: Option<u64>,
) -> Result<Vec<EventPayload>, Rejection> {
    require_directory_writable(state)?;
    let current = existing_user(state, user_id, expected_version)?;
    let profile = normalize(profile, Some(&current.profile), username_policy(state))?;
    check_unique(state, user_id, &profile)?;
    let handle = if profile.user_name == current.profile.user_name {
        None
    } else {
        assign_handle(state, user_id, &profile.user_name)?
    };
    Ok(replace(current, profile, handle))
}

pub(super) fn set_user_active(
    state: &State,
    user_id: UserId,
    active: bool,
    expected_version: Option<u64>,
) -> Result<Vec<EventPayload>, Rejection> {
    require_directory_writable(state)?;
    let current = existing_user(state, user_id, expected_version)?;
    let profile = UserProfile {
        active,
        ..current.profile.clone()
    };
    Ok(replace(current, profile, None))
}

pub(super) fn delete_user(
    state: &State,
    user_id: UserId,
    expected_version: Option<u64>,
) -> Result<Vec<EventPayload>, Rejection> {
    require_directory_writable(state)?;
    let current = existing_user(state, user_id, expected_version)?;
    // The user leaves every group and resource group first, as events of their own.
    let mut events: Vec<EventPayload> = state
        .groups_of(user_id)
        .map(|group_id| EventPayload::GroupMembersRemoved {
            group_id,
            user_ids: vec![user_id],
        })
        .collect();
    events.extend(
        state
            .resource_groups_of(user_id)
            .map(
                |(resource_group_id, _)| EventPayload::ResourceGroupMemberRemoved {
                    resource_group_id,
                    user_id,
                },
            ),
    );
    events.push(EventPayload::UserDeleted {
        user_id,
        user_name: current.profile.user_name.clone(),
        external_id: current.profile.external_id.clone(),
        email: current.profile.primary_email(),
        sso: current.sso_identity(),
    });
    Ok(events)
}
