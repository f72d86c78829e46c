//! Access views kept inside the directory projection: each user's current effective access, its
//! history (one snapshot per change, for "access of U at T"), resource groups' members with
//! their role, membership intervals per edge (for "members of G at T"), and the tenant's
//! default-role history.
//!
//! Keys (tree `view.directory`, next to the `StateStore` layout; times are `recorded_at`
//! microseconds, big-endian):
//! `h tenant \0 user time seq` → the user's [`AccessRecord`] from that moment, `null` once
//! deleted; the last entry is the current access · `r tenant \0 resource-group user` → [`Grant`] ·
//! `i tenant \0 group user from` → until (`u64::MAX` while open) ·
//! `d tenant \0 time seq` → default org role from that moment.

use std::collections::BTreeMap;

use roster_engine::domain::{self, GroupId, ResourceGroupId, Role, TenantName, Timestamp, UserId};
use serde::{Deserialize, Serialize};

pub(crate) const HISTORY: u8 = b'h';
pub(crate) const RESOURCE_GROUP_MEMBER: u8 = b'r';
pub(crate) const INTERVAL: u8 = b'i';
pub(crate) const DEFAULT_ROLE: u8 = b'd';

/// Where a role comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    /// The tenant's default org role (resolved when read, so a default change needs no rewrite).
    Default,
    Group(GroupId),
    Manual,
    /// The user's SSO claims at their last just-in-time provisioning: `claim` held `value`.
    Claim {
        claim: String,
        value: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub role: Role,
    pub via: Via,
}

/// A user's effective access as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRecord {
    pub active: bool,
    pub org_role: Option<Grant>,
    pub resource_groups: BTreeMap<ResourceGroupId, Grant>,
}

impl AccessRecord {
    /// What a user without access (deactivated, or deleted) holds.
    pub fn none() -> Self {
        Self {
            active: false,
            org_role: None,
            resource_groups: BTreeMap::new(),
        }
    }

    /// The default role takes the value in effect at the moment asked about.
    pub fn resolve_default(mut self, default_role: Role) -> Self {
        if let Some(grant) = &mut self.org_role
            && grant.via == Via::Default
        {
            grant.role = default_role;
        }
        self
    }
}

fn grant(grant: &domain::RoleGrant) -> Grant {
    Grant {
        role: grant.role,
        via: match &grant.grant {
            domain::Grant::Default => Via::Default,
            domain::Grant::Group(group) => Via::Group(*group),
            domain::Grant::Manual => Via::Manual,
            domain::Grant::Claim { claim, value } => Via::Claim {
                claim: claim.clone(),
                value: value.clone(),
            },
        },
    }
}

impl From<&domain::Access> for AccessRecord {
    fn from(access: &domain::Access) -> Self {
        Self {
            active: access.active,
            org_role: access.org_role.as_ref().map(grant),
            resource_groups: access
                .resource_groups
                .iter()
                .map(|(resource_group, role)| (*resource_group, grant(role)))
                .collect(),
        }
    }
}

/// `recorded_at` as an order-preserving key part.
pub(crate) fn time_bytes(at: Timestamp) -> [u8; 8] {
    (at.as_micros().max(0) as u64).to_be_bytes()
}

pub(crate) fn tenant_prefix(kind: u8, tenant: &TenantName) -> Vec<u8> {
    let mut key = vec![kind];
    key.extend_from_slice(tenant.as_str().as_bytes());
    key.push(0);
    key
}

pub(crate) fn history_prefix(tenant: &TenantName, user: &UserId) -> Vec<u8> {
    let mut key = tenant_prefix(HISTORY, tenant);
    key.extend_from_slice(user.as_bytes());
    key
}

pub(crate) fn history_key(
    tenant: &TenantName,
    user: &UserId,
    at: Timestamp,
    sequence: u64,
) -> Vec<u8> {
    let mut key = history_prefix(tenant, user);
    key.extend_from_slice(&time_bytes(at));
    key.extend_from_slice(&sequence.to_be_bytes());
    key
}

pub(crate) fn resource_group_member_key(
    tenant: &TenantName,
    resource_group: &ResourceGroupId,
    user: &UserId,
) -> Vec<u8> {
    let mut key = tenant_prefix(RESOURCE_GROUP_MEMBER, tenant);
    key.extend_from_slice(resource_group.as_bytes());
    key.extend_from_slice(user.as_bytes());
    key
}

pub(crate) fn interval_prefix(tenant: &TenantName, group: &GroupId) -> Vec<u8> {
    let mut key = tenant_prefix(INTERVAL, tenant);
    key.extend_from_slice(group.as_bytes());
    key
}

pub(crate) fn interval_key(
    tenant: &TenantName,
    group: &GroupId,
    user: &UserId,
    from: Timestamp,
) -> Vec<u8> {
    let mut key = interval_prefix(tenant, group);
    key.extend_from_slice(user.as_bytes());
    key.extend_from_slice(&time_bytes(from));
    key
}

pub(crate) fn default_role_key(tenant: &TenantName, at: Timestamp, sequence: u64) -> Vec<u8> {
    let mut key = tenant_prefix(DEFAULT_ROLE, tenant);
    key.extend_from_slice(&time_bytes(at));
    key.extend_from_slice(&sequence.to_be_bytes());
    key
}

/// A user's access as the views answer it: `org_role` resolved against the default role in
/// effect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserAccess {
    pub user: UserId,
    pub access: AccessRecord,
}

/// A member of a resource group with the role they hold there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceGroupMember {
    pub user: UserId,
    pub grant: Grant,
}
