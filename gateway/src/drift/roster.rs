//! roster's side of a drift report: a tenant's directory as the `Directory` gRPC service lists
//! it, gathered page by page into a [`RosterDirectory`] (users, groups, and the members of the
//! groups the comparison needs). Users' attributes are read as an export's are.

use std::collections::HashMap;

use roster_proto::v1 as pb;
use serde_json::Value;

use super::export::user_details;
use super::{GroupEntry, UserEntry, fold};

/// A tenant's directory as roster lists it, built page by page from the gRPC messages.
#[derive(Clone, Debug, Default)]
pub struct RosterDirectory {
    pub users: Vec<UserEntry>,
    pub groups: Vec<GroupEntry>,
    pub(super) users_by_id: HashMap<String, usize>,
    pub(super) users_by_name: HashMap<String, usize>,
    /// Members by group id: user id and userName.
    pub(super) members: HashMap<String, Vec<(String, String)>>,
}

impl RosterDirectory {
    pub fn add_user(&mut self, user: &pb::User) {
        let mut entry = UserEntry {
            id: Some(user.id.clone()),
            user_name: user.user_name.clone(),
            external_id: Some(user.external_id.clone()).filter(|id| !id.is_empty()),
            active: Some(user.active),
            handle: Some(user.handle.clone()).filter(|handle| !handle.is_empty()),
            ..UserEntry::default()
        };
        // roster wrote this JSON itself; should it ever not parse, the user simply has no
        // further attributes to compare.
        if let Ok(Value::Object(attributes)) = serde_json::from_str(&user.attributes_json) {
            user_details(&attributes, &mut entry);
        }
        self.users_by_id.insert(user.id.clone(), self.users.len());
        self.users_by_name
            .insert(fold(&user.user_name), self.users.len());
        self.users.push(entry);
    }

    pub fn add_group(&mut self, group: &pb::Group) {
        self.groups.push(GroupEntry {
            id: Some(group.id.clone()),
            display_name: group.display_name.clone(),
            external_id: Some(group.external_id.clone()).filter(|id| !id.is_empty()),
            member_count: group.member_count,
        });
    }

    pub fn add_member(&mut self, group_id: &str, member: &pb::Member) {
        self.members
            .entry(group_id.to_owned())
            .or_default()
            .push((member.user_id.clone(), member.user_name.clone()));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::drift::fixtures::{roster, roster_user};

    #[test]
    fn roster_users_read_their_attributes_as_an_export_does() {
        let roster = roster();
        let alice = &roster.users[0];
        assert_eq!(alice.id.as_deref(), Some("u1"));
        assert_eq!(alice.external_id.as_deref(), Some("e-alice"));
        assert_eq!(alice.active, Some(true));
        assert_eq!(alice.display_name.as_deref(), Some("Alice A"));
        assert_eq!(
            (alice.given_name.as_deref(), alice.family_name.as_deref()),
            (Some("Alice"), Some("A"))
        );
        assert_eq!(alice.email.as_deref(), Some("a@x.io"));
        // An empty externalId is none, on users and groups alike.
        assert_eq!(roster.users[2].external_id, None);
        assert_eq!(roster.groups[1].external_id, None);
        assert_eq!(roster.users_by_name.get("carol"), Some(&2));
        assert_eq!(
            roster.members["g1"],
            [
                ("u1".to_owned(), "alice".to_owned()),
                ("u2".to_owned(), "bob".to_owned())
            ]
        );

        // The primary email is the SCIM primary element (`"True"` marks it), and attributes that
        // do not parse leave only the core ones.
        let mut directory = RosterDirectory::default();
        directory.add_user(&roster_user(
            "u9",
            "Dave",
            "",
            false,
            json!({"emails": [{"value": "first@x.io"}, {"value": "dave@x.io", "primary": "True"}]}),
        ));
        directory.add_user(&pb::User {
            id: "u10".into(),
            user_name: "erin".into(),
            attributes_json: "{".into(),
            ..pb::User::default()
        });
        assert_eq!(directory.users[0].email.as_deref(), Some("dave@x.io"));
        assert_eq!(directory.users[0].active, Some(false));
        assert_eq!(directory.users_by_name.get("dave"), Some(&0));
        assert_eq!(
            directory.users[1],
            UserEntry {
                id: Some("u10".into()),
                user_name: "erin".into(),
                active: Some(false),
                ..UserEntry::default()
            }
        );
    }
}
