//! The access rules: a user's effective org role and resource-group roles, derived from their
//! groups, the tenant's role mappings and resource-group links. Pure, like `decide`: the caller
//! loads the user's access slice (see `StateStore::load_access`).
//!
//! - Org role: the highest of the roles mapped to any of the user's groups and the role their SSO
//!   claims granted at their last just-in-time provisioning, else the tenant's default.
//! - Resource-group role: the highest link role over the user's groups linked to it; for a
//!   resource group managed by hand, the role it was given.
//! - A deactivated user has no access at all.

use std::collections::BTreeMap;

use super::ids::{GroupId, ResourceGroupId, Role, UserId};
use super::state::State;

/// Where a role comes from.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Grant {
    /// The tenant's default org role.
    Default,
    /// A SCIM group the user is a member of (the group granting the highest role).
    Group(GroupId),
    /// Set by hand on a resource group not managed by SCIM.
    Manual,
    /// The user's SSO claims: claim `claim` held `value` at their last just-in-time provisioning.
    Claim { claim: String, value: String },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleGrant {
    pub role: Role,
    pub grant: Grant,
}

/// What a user may do right now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Access {
    pub active: bool,
    /// `None` when the user is deactivated.
    pub org_role: Option<RoleGrant>,
    pub resource_groups: BTreeMap<ResourceGroupId, RoleGrant>,
}

/// Keeps the higher role; on a tie, the grant that sorts first (stable across rebuilds).
fn keep_highest(current: &mut Option<RoleGrant>, candidate: RoleGrant) {
    let better = match current {
        None => true,
        Some(existing) => {
            candidate.role > existing.role
                || (candidate.role == existing.role && candidate.grant < existing.grant)
        }
    };
    if better {
        *current = Some(candidate);
    }
}

/// Whether being a member of `group` can give anyone access: it maps an org role or links a
/// resource group. Joining or leaving a group that does neither changes nobody's access. The
/// caller loads the group's role mapping and links (`Footprint::role_mappings`,
/// `Footprint::links_of_groups`).
pub fn membership_grants_access(state: &State, group: GroupId) -> bool {
    state.role_mapping(&group).is_some() || state.links_of(group).next().is_some()
}

/// The access of `user`, or `None` when the user does not exist.
pub fn access(state: &State, user: UserId) -> Option<Access> {
    let record = state.user(&user)?;
    if !record.profile.active {
        return Some(Access {
            active: false,
            org_role: None,
            resource_groups: BTreeMap::new(),
        });
    }
    let groups: Vec<GroupId> = state.groups_of(user).collect();
    let mut org_role = None;
    for group in &groups {
        if let Some(role) = state.role_mapping(group) {
            keep_highest(
                &mut org_role,
                RoleGrant {
                    role,
                    grant: Grant::Group(*group),
                },
            );
        }
    }
    if let Some(claim_role) = record
        .sso
        .as_ref()
        .and_then(|link| link.claim_role.as_ref())
    {
        keep_highest(
            &mut org_role,
            RoleGrant {
                role: claim_role.role,
                grant: Grant::Claim {
                    claim: claim_role.claim.clone(),
                    value: claim_role.value.clone(),
                },
            },
        );
    }
    if org_role.is_none() {
        org_role = state.tenant.as_ref().map(|tenant| RoleGrant {
            role: tenant.default_role,
            grant: Grant::Default,
        });
    }
    let mut resource_groups: BTreeMap<ResourceGroupId, Option<RoleGrant>> = BTreeMap::new();
    for group in &groups {
        for (resource_group, role) in state.links_of(*group) {
            keep_highest(
                resource_groups.entry(resource_group).or_default(),
                RoleGrant {
                    role,
                    grant: Grant::Group(*group),
                },
            );
        }
    }
    for (resource_group, role) in state.resource_groups_of(user) {
        let managed = state
            .resource_group(&resource_group)
            .is_some_and(|record| record.is_scim_managed());
        if !managed {
            keep_highest(
                resource_groups.entry(resource_group).or_default(),
                RoleGrant {
                    role,
                    grant: Grant::Manual,
                },
            );
        }
    }
    Some(Access {
        active: true,
        org_role,
        resource_groups: resource_groups
            .into_iter()
            .filter_map(|(resource_group, grant)| grant.map(|grant| (resource_group, grant)))
            .collect(),
    })
}
