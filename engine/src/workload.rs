//! A realistic provisioning history for one tenant, as the commands that make it: the workload
//! behind `roster bench seed` and the projector's rebuild benchmark. Users with profiles, groups,
//! role mappings and resource-group links, memberships added and removed, profile updates,
//! deactivations and reactivations, in the proportions an IdP's sync produces. No I/O: ids come
//! from the caller, randomness from the caller's generator.

use rand::Rng;
use serde_json::json;
use uuid::Uuid;

use crate::domain::{
    Attributes, Command, GroupId, GroupProfile, MemberChange, ResourceGroupId, Role, UserId,
    UserProfile,
};

/// What a new id is for, so callers can make deterministic ids per kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdKind {
    Group,
    User,
    ResourceGroup,
}

/// The profile of seeded user `n`.
pub fn profile(n: usize, title: &str, active: bool) -> UserProfile {
    let mut attributes = Attributes::new();
    attributes.insert(
        "name".into(),
        json!({"givenName": "Seed", "familyName": format!("User {n}")}),
    );
    attributes.insert("displayName".into(), json!(format!("Seed User {n}")));
    attributes.insert(
        "emails".into(),
        json!([{"value": format!("user-{n}@seed.example"), "type": "work", "primary": true}]),
    );
    attributes.insert("title".into(), json!(title));
    UserProfile {
        user_name: format!("user-{n}"),
        external_id: Some(format!("ext-{n}")),
        active,
        attributes,
    }
}

/// About `events` events' worth of commands for one new tenant, in phases: each phase's commands
/// are independent of each other and depend only on earlier phases (so a phase may run
/// concurrently). `new_id(kind, n)` gives the id of the `n`-th entity of a kind.
pub fn tenant_history(
    events: u64,
    rng: &mut impl Rng,
    mut new_id: impl FnMut(IdKind, usize) -> Uuid,
) -> Vec<Vec<Command>> {
    let users = (events * 35 / 100).max(10) as usize;
    let groups = (users / 200).max(5);
    let group_ids: Vec<GroupId> = (0..groups)
        .map(|n| GroupId(new_id(IdKind::Group, n)))
        .collect();
    let user_ids: Vec<UserId> = (0..users)
        .map(|n| UserId(new_id(IdKind::User, n)))
        .collect();
    let mut phases: Vec<Vec<Command>> = vec![vec![Command::CreateTenant {
        default_role: Role::Read,
        usernames: crate::domain::UsernamePolicy::Strict,
        first_token: None,
    }]];
    phases.push(
        group_ids
            .iter()
            .enumerate()
            .map(|(n, group_id)| Command::CreateGroup {
                group_id: *group_id,
                profile: GroupProfile {
                    display_name: format!("group-{n}"),
                    external_id: Some(format!("g-{n}")),
                    attributes: Attributes::new(),
                },
                members: Vec::new(),
            })
            .collect(),
    );
    phases.push(
        user_ids
            .iter()
            .enumerate()
            .map(|(n, user_id)| Command::ProvisionUser {
                user_id: *user_id,
                profile: profile(n, "Engineer", true),
            })
            .collect(),
    );
    let mut setup = Vec::new();
    for (n, group_id) in group_ids.iter().take(20).enumerate() {
        setup.push(Command::SetRoleMapping {
            group_id: *group_id,
            role: Some(Role::ALL[n % Role::ALL.len()]),
        });
    }
    for (n, group_id) in group_ids.iter().take(10).enumerate() {
        let resource_group_id = ResourceGroupId(new_id(IdKind::ResourceGroup, n));
        phases.push(vec![Command::CreateResourceGroup {
            resource_group_id,
            name: format!("rg-{n}"),
        }]);
        setup.push(Command::LinkResourceGroup {
            resource_group_id,
            group_id: *group_id,
            role: Role::ALL[n % Role::ALL.len()],
        });
    }
    phases.push(setup);
    let member_change = |rng: &mut dyn rand::RngCore, add: bool| {
        let picked: Vec<UserId> = (0..3)
            .map(|_| user_ids[rng.random_range(0..users)])
            .collect();
        Command::UpdateGroup {
            group_id: group_ids[rng.random_range(0..groups)],
            profile: None,
            member_changes: vec![if add {
                MemberChange::Add(picked)
            } else {
                MemberChange::Remove(picked)
            }],
            expected_version: None,
        }
    };
    let adds = (events * 30 / 100) as usize;
    phases.push((0..adds).map(|_| member_change(rng, true)).collect());
    let updates = (events * 15 / 100) as usize;
    phases.push(
        (0..updates)
            .map(|round| {
                let n = rng.random_range(0..users);
                Command::ReplaceUser {
                    user_id: user_ids[n],
                    profile: profile(n, &format!("Title {round}"), true),
                    expected_version: None,
                }
            })
            .collect(),
    );
    let toggles = (events * 10 / 100) as usize;
    phases.push(
        (0..toggles)
            .map(|round| Command::SetUserActive {
                user_id: user_ids[rng.random_range(0..users)],
                active: round % 3 == 2,
                expected_version: None,
            })
            .collect(),
    );
    let removals = (events * 8 / 100) as usize;
    phases.push((0..removals).map(|_| member_change(rng, false)).collect());
    phases
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;
    use crate::domain::{State, TenantName, decide};

    #[test]
    fn a_history_is_mostly_accepted_by_the_domain() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut next = 0u128;
        let phases = tenant_history(2_000, &mut rng, |_, _| {
            next += 1;
            Uuid::from_u128(next)
        });
        assert_eq!(phases[0].len(), 1, "the tenant first");
        let mut state = State::new(TenantName::parse("acme").unwrap());
        let (mut accepted, mut commands) = (0, 0);
        for command in phases.into_iter().flatten() {
            commands += 1;
            if let Ok(payloads) = decide(&state, command) {
                accepted += 1;
                for payload in payloads {
                    let event = crate::testkit::envelope(&state.name.clone(), 0, payload);
                    crate::domain::apply(&mut state, &event);
                }
            }
        }
        assert!(commands > 1_500, "{commands} commands");
        assert!(accepted * 10 > commands * 9, "{accepted} of {commands}");
    }
}
