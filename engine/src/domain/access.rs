//! The access rules: a user's effective org role and resource-group roles, derived from their
//! groups, the tenant's role mappings and resource-group links. Pure, like `decide`: the caller
//! loads the user's access slice (see `StateStore::load_access`).
//!
//! - Org role: the highest of the roles mapped to any of the user's groups and the role their SSO
//!   claims granted at their last just-in-time provisioning, else the tenant's default.
//! - Resource-group role: the highest link role over the user's groups linked to it; for a
//!   resource group managed by hand, the role it was given.
//! - A deactivated user has no access at all.
//!
//! `check_access` answers a platform's question "may this user act here now?" with the
//! managed-account rules (SSO enforcement, deactivation, personal and foreign namespaces) on top
//! of those roles.

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

/// How the session asking to act was authenticated, as the platform reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionAuth {
    /// Through SSO, with the organization whose identity provider it went through.
    Sso,
    Password,
    Social,
    /// Not said: treated as the weakest (fail closed).
    Unspecified,
}

/// A question to `check_access`: may the tenant's user act on `namespace` with `required`?
#[derive(Clone, Copy, Debug)]
pub struct AccessQuestion<'a> {
    pub tenant: &'a super::ids::TenantName,
    /// Whether the tenant enforces SSO for its members.
    pub sso_enforced: bool,
    pub session: SessionAuth,
    /// For an SSO session: the organization whose SSO it went through.
    pub sso_tenant: &'a str,
    pub required: Role,
    /// The namespace acted on: the organization's own, a user's personal one, or another.
    pub namespace: &'a str,
}

/// What the access views hold about the user asked about.
#[derive(Clone, Copy, Debug)]
pub struct AccessSubject<'a> {
    pub user_name: &'a str,
    pub active: bool,
    pub org_role: Option<Role>,
}

/// The answer of `check_access`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessDecision {
    pub allowed: bool,
    /// Why, in words a platform can show.
    pub reason: String,
    /// The role that decided, when the user holds one here.
    pub effective_role: Option<Role>,
    /// Refused only because the session did not come through the tenant's SSO.
    pub sso_required: bool,
}

fn deny(reason: impl Into<String>) -> AccessDecision {
    AccessDecision {
        allowed: false,
        reason: reason.into(),
        effective_role: None,
        sso_required: false,
    }
}

/// Why a session may not act for a member of `tenant`, which enforces SSO; `None` when it came
/// through the tenant's IdP. Anything but an SSO session naming this tenant is refused, an
/// unspecified one included (fail closed).
fn sso_refusal(question: &AccessQuestion<'_>) -> Option<String> {
    let tenant = question.tenant;
    let sso_tenant = question.sso_tenant.trim();
    let how = match question.session {
        SessionAuth::Sso if sso_tenant.eq_ignore_ascii_case(tenant.as_str()) => return None,
        SessionAuth::Sso if sso_tenant.is_empty() => {
            "through SSO without naming the organization (sso_tenant)".to_owned()
        }
        SessionAuth::Sso => format!("through the SSO of {sso_tenant:?}"),
        SessionAuth::Password => "with a password".to_owned(),
        SessionAuth::Social => "with a social login".to_owned(),
        SessionAuth::Unspecified => "in an unspecified way (session_auth unset)".to_owned(),
    };
    Some(format!(
        "{tenant} enforces SSO: the session authenticated {how}, not through {tenant}'s identity provider"
    ))
}

/// The managed-account rules of an access check, in order: a user who does not exist or is
/// deactivated may do nothing; a tenant enforcing SSO refuses sessions that did not come through
/// its identity provider; in the organization's own namespace the higher of the org role and
/// the role on the named resource group (`resource_group_role`, asked only then) must reach
/// `required`; a managed user may not act in a personal namespace or another organization.
pub fn check_access<E>(
    question: &AccessQuestion<'_>,
    subject: Option<AccessSubject<'_>>,
    resource_group_role: impl FnOnce() -> Result<Option<Role>, E>,
) -> Result<AccessDecision, E> {
    let Some(subject) = subject else {
        return Ok(deny("the user does not exist in this organization"));
    };
    if !subject.active {
        return Ok(deny(
            "the user is deactivated: a deactivated user may do nothing",
        ));
    }
    if question.sso_enforced
        && let Some(reason) = sso_refusal(question)
    {
        return Ok(AccessDecision {
            allowed: false,
            reason,
            effective_role: None,
            sso_required: true,
        });
    }
    let tenant = question.tenant;
    let required = question.required;
    if question.namespace.eq_ignore_ascii_case(tenant.as_str()) {
        let effective = subject.org_role.max(resource_group_role()?);
        return Ok(match effective {
            Some(role) if role >= required => AccessDecision {
                allowed: true,
                reason: format!("role {role} allows {}", required.as_str()),
                effective_role: Some(role),
                sso_required: false,
            },
            Some(role) => AccessDecision {
                allowed: false,
                reason: format!("role {role} is below {required}, which this action needs"),
                effective_role: Some(role),
                sso_required: false,
            },
            None => deny("the user holds no role here"),
        });
    }
    Ok(
        if question.namespace.eq_ignore_ascii_case(subject.user_name) {
            deny("managed users cannot have content in a personal namespace")
        } else {
            deny(format!(
                "managed users of {tenant} cannot act in another organization or namespace ({})",
                question.namespace
            ))
        },
    )
}
