//! Given/when/then tests of the directory's rules: given past events, when a command is decided,
//! then these events (or this rejection). One module per area; the scenario helpers live here.

mod access;
mod groups;
mod handles;
mod jit;
mod ssf;
mod staging;
mod tokens;
mod users;
mod webhooks;

use uuid::Uuid;

use super::*;

pub(super) const T0: Timestamp = Timestamp::from_micros(1_700_000_000_000_000);

pub(super) struct Scenario {
    pub(super) state: State,
    pub(super) clock: i64,
}

pub(super) fn given(payloads: impl IntoIterator<Item = EventPayload>) -> Scenario {
    let mut scenario = Scenario {
        state: State::new(TenantName::parse("acme").unwrap()),
        clock: 0,
    };
    scenario.record(payloads);
    scenario
}

pub(super) fn a_tenant() -> Vec<EventPayload> {
    vec![EventPayload::TenantCreated {
        default_role: Role::Read,
        usernames: crate::domain::UsernamePolicy::Strict,
    }]
}

impl Scenario {
    pub(super) fn record(&mut self, payloads: impl IntoIterator<Item = EventPayload>) {
        for payload in payloads {
            self.clock += 1;
            let event = Event {
                id: Uuid::nil(),
                tenant: self.state.name.clone(),
                sequence: self.clock as u64,
                occurred_at: T0.plus_micros(self.clock),
                recorded_at: T0.plus_micros(self.clock),
                actor: Actor::system(),
                source: Source::default(),
                causation_id: String::new(),
                payload,
            };
            apply(&mut self.state, &event);
        }
    }

    pub(super) fn when(&self, command: Command) -> Result<Vec<EventPayload>, Rejection> {
        decide(&self.state, command)
    }

    /// Decides and applies, for multi-step scenarios.
    pub(super) fn after(mut self, command: Command) -> Self {
        let events = self.when(command).expect("command accepted");
        self.record(events);
        self
    }
}

pub(super) fn uid(n: u128) -> UserId {
    UserId(Uuid::from_u128(n))
}

pub(super) fn profile(user_name: &str) -> UserProfile {
    UserProfile {
        user_name: user_name.to_owned(),
        external_id: None,
        active: true,
        attributes: Attributes::new(),
    }
}

pub(super) fn with_external_id(mut profile: UserProfile, external_id: &str) -> UserProfile {
    profile.external_id = Some(external_id.to_owned());
    profile
}

pub(super) fn provision(n: u128, user_name: &str) -> Command {
    Command::ProvisionUser {
        user_id: uid(n),
        profile: profile(user_name),
    }
}

pub(super) fn gid(n: u128) -> GroupId {
    GroupId(Uuid::from_u128(0x1000 + n))
}

pub(super) fn rgid(n: u128) -> ResourceGroupId {
    ResourceGroupId(Uuid::from_u128(0x2000 + n))
}

pub(super) fn group_profile(display_name: &str) -> GroupProfile {
    GroupProfile {
        display_name: display_name.to_owned(),
        external_id: None,
        attributes: Attributes::new(),
    }
}

pub(super) fn create_group(n: u128, display_name: &str, members: &[u128]) -> Command {
    Command::CreateGroup {
        group_id: gid(n),
        profile: group_profile(display_name),
        members: members.iter().map(|member| uid(*member)).collect(),
    }
}

pub(super) fn change_members(n: u128, changes: Vec<MemberChange>) -> Command {
    Command::UpdateGroup {
        group_id: gid(n),
        profile: None,
        member_changes: changes,
        expected_version: None,
    }
}

pub(super) fn users(ids: &[u128]) -> Vec<UserId> {
    ids.iter().map(|id| uid(*id)).collect()
}

/// A tenant with users 1..=n (named `user-1`…).
pub(super) fn tenant_with_users(n: u128) -> Scenario {
    let mut scenario = given(a_tenant());
    for id in 1..=n {
        scenario = scenario.after(provision(id, &format!("user-{id}")));
    }
    scenario
}

impl Scenario {
    pub(super) fn members(&self, group: u128) -> Vec<UserId> {
        self.state.members_of(gid(group)).collect()
    }
}
