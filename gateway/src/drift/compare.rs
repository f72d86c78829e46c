//! Comparing roster's side with an export into a [`Report`]. [`compare`] matches users by
//! `externalId` (when both sides have one), else by `userName` case-insensitively, and groups by
//! `externalId`, else `displayName`; it reports resources on one side only, attribute
//! differences and membership differences.
//!
//! externalIds need not be unique (RFC 7643 §3.1): one that several users (or groups) share, on
//! either side, matches nothing by itself. It is reported as ambiguous, and the resources holding
//! it are matched by name like resources without an externalId, never guessed.
//!
//! Only what the export carries is compared: an attribute is compared when the export has it on
//! at least one resource (or has its CSV column); there, a resource without it has no value.
//! `active` is compared where the export states it. A CSV names groups only through members, so
//! roster groups without members are not reported missing from a CSV export; groups an export
//! knows only through users' `groups` are likewise compared by their members only.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::Value;

use super::export::{Export, InputFormat, UserAttribute};
use super::report::{
    Ambiguous, Changed, Compared, Difference, GroupSummary, MatchedBy, MembershipDifference,
    Report, Summary, UserSummary, sort_report,
};
use super::roster::RosterDirectory;
use super::{GroupEntry, UserEntry, fold};

/// The externalIds held by more than one entry of `export` or of `roster`: ambiguous, so
/// matched by none.
fn shared_external_ids<'a>(
    export: &[(Option<&'a str>, String)],
    roster: &[(Option<&'a str>, String)],
) -> HashSet<&'a str> {
    let mut shared = HashSet::new();
    for side in [export, roster] {
        let mut seen = HashSet::new();
        for external_id in side.iter().filter_map(|(external_id, _)| *external_id) {
            if !seen.insert(external_id) {
                shared.insert(external_id);
            }
        }
    }
    shared
}

/// Every shared externalId with the names (userName or displayName) of its holders on each side.
fn ambiguous_entries<'a>(
    export: &[(Option<&'a str>, &'a str)],
    roster: &[(Option<&'a str>, &'a str)],
    shared: &HashSet<&str>,
) -> Vec<Ambiguous> {
    let mut found: BTreeMap<&str, Ambiguous> = BTreeMap::new();
    for (in_roster, side) in [(false, export), (true, roster)] {
        for (external_id, name) in side {
            let Some(external_id) = external_id.filter(|id| shared.contains(id)) else {
                continue;
            };
            let entry = found.entry(external_id).or_insert_with(|| Ambiguous {
                external_id: external_id.to_owned(),
                roster: Vec::new(),
                idp: Vec::new(),
            });
            if in_roster {
                entry.roster.push((*name).to_owned());
            } else {
                entry.idp.push((*name).to_owned());
            }
        }
    }
    found.into_values().collect()
}

/// Matches export entries to roster entries: by externalId where both have one and it is not
/// shared (see [`shared_external_ids`]), then by folded name among those left. Returns, per
/// export entry, its roster entry.
fn match_entries(
    export: &[(Option<&str>, String)],
    roster: &[(Option<&str>, String)],
    by_name: MatchedBy,
) -> Vec<Option<(usize, MatchedBy)>> {
    let mut matched = vec![None; export.len()];
    let mut taken = vec![false; roster.len()];
    let shared = shared_external_ids(export, roster);
    let by_external_id: HashMap<&str, usize> = roster
        .iter()
        .enumerate()
        .filter_map(|(index, (external_id, _))| external_id.map(|id| (id, index)))
        .filter(|(id, _)| !shared.contains(id))
        .collect();
    for (index, (external_id, _)) in export.iter().enumerate() {
        if let Some(&found) = external_id.and_then(|id| by_external_id.get(id))
            && !taken[found]
        {
            taken[found] = true;
            matched[index] = Some((found, MatchedBy::ExternalId));
        }
    }
    let by_folded_name: HashMap<&str, usize> = roster
        .iter()
        .enumerate()
        .filter(|(index, _)| !taken[*index])
        .map(|(index, (_, name))| (name.as_str(), index))
        .collect();
    for (index, (_, name)) in export.iter().enumerate() {
        if matched[index].is_some() {
            continue;
        }
        if let Some(&found) = by_folded_name.get(name.as_str())
            && !taken[found]
        {
            taken[found] = true;
            matched[index] = Some((found, by_name));
        }
    }
    matched
}

fn user_keys(users: &[UserEntry]) -> Vec<(Option<&str>, String)> {
    users
        .iter()
        .map(|user| (user.external_id.as_deref(), fold(&user.user_name)))
        .collect()
}

fn group_keys(groups: &[GroupEntry]) -> Vec<(Option<&str>, String)> {
    groups
        .iter()
        .map(|group| (group.external_id.as_deref(), fold(&group.display_name)))
        .collect()
}

/// Users' (externalId, userName), as the report names them.
fn user_names(users: &[UserEntry]) -> Vec<(Option<&str>, &str)> {
    users
        .iter()
        .map(|user| (user.external_id.as_deref(), user.user_name.as_str()))
        .collect()
}

/// Groups' (externalId, displayName), as the report names them.
fn group_names(groups: &[GroupEntry]) -> Vec<(Option<&str>, &str)> {
    groups
        .iter()
        .map(|group| (group.external_id.as_deref(), group.display_name.as_str()))
        .collect()
}

fn match_groups(roster: &RosterDirectory, export: &Export) -> Vec<Option<(usize, MatchedBy)>> {
    match_entries(
        &group_keys(&export.groups),
        &group_keys(&roster.groups),
        MatchedBy::DisplayName,
    )
}

/// The roster groups whose members the comparison needs (matched groups with members, when the
/// export carries memberships): list only these.
pub fn groups_needing_members(roster: &RosterDirectory, export: &Export) -> Vec<String> {
    if !export.carried.memberships {
        return Vec::new();
    }
    match_groups(roster, export)
        .into_iter()
        .flatten()
        .map(|(index, _)| &roster.groups[index])
        .filter(|group| group.member_count > 0)
        .filter_map(|group| group.id.clone())
        .collect()
}

fn text_value(value: Option<&str>) -> Value {
    value.map_or(Value::Null, |text| Value::String(text.to_owned()))
}

fn user_summary(user: &UserEntry, roster_side: bool) -> UserSummary {
    UserSummary {
        id: if roster_side { user.id.clone() } else { None },
        user_name: user.user_name.clone(),
        handle: if roster_side {
            user.handle.clone()
        } else {
            None
        },
        external_id: user.external_id.clone(),
        active: user.active,
    }
}

fn group_summary(group: &GroupEntry, roster_side: bool) -> GroupSummary {
    GroupSummary {
        id: if roster_side { group.id.clone() } else { None },
        display_name: group.display_name.clone(),
        external_id: group.external_id.clone(),
        members: group.member_count,
    }
}

/// Who a member is, for comparing member sets.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum MemberKey {
    Roster(usize),
    Export(usize),
    Named(String),
}

/// Compares roster's view of `tenant` with an export.
pub fn compare(tenant: &str, source: &str, roster: &RosterDirectory, export: &Export) -> Report {
    let carried = &export.carried;
    let mut report = Report {
        version: 1,
        tenant: tenant.to_owned(),
        source: source.to_owned(),
        source_format: export.format.map_or("json", InputFormat::as_str),
        ..Report::default()
    };
    report.compared = Compared {
        users: carried.users,
        groups: carried.groups,
        memberships: carried.memberships,
        user_attributes: if carried.users {
            let mut attributes = vec!["userName", "active"];
            attributes.extend(
                UserAttribute::ALL
                    .iter()
                    .filter(|attribute| carried.user_attributes.contains(attribute))
                    .map(|attribute| attribute.as_str()),
            );
            attributes
        } else {
            Vec::new()
        },
        group_attributes: match (carried.groups, carried.group_external_id) {
            (false, _) => Vec::new(),
            (true, false) => vec!["displayName"],
            (true, true) => vec!["displayName", "externalId"],
        },
    };

    let user_matches = match_entries(
        &user_keys(&export.users),
        &user_keys(&roster.users),
        MatchedBy::UserName,
    );
    if carried.users {
        report.users.ambiguous = ambiguous_entries(
            &user_names(&export.users),
            &user_names(&roster.users),
            &shared_external_ids(&user_keys(&export.users), &user_keys(&roster.users)),
        );
        let mut matched_roster = vec![false; roster.users.len()];
        for (index, found) in user_matches.iter().enumerate() {
            let idp = &export.users[index];
            let Some((roster_index, matched_by)) = *found else {
                report.users.only_in_idp.push(user_summary(idp, false));
                continue;
            };
            matched_roster[roster_index] = true;
            let ours = &roster.users[roster_index];
            let mut differences = Vec::new();
            if fold(&ours.user_name) != fold(&idp.user_name) {
                differences.push(Difference {
                    attribute: "userName",
                    roster: Value::String(ours.user_name.clone()),
                    idp: Value::String(idp.user_name.clone()),
                });
            }
            if let (Some(theirs), Some(mine)) = (idp.active, ours.active)
                && theirs != mine
            {
                differences.push(Difference {
                    attribute: "active",
                    roster: Value::Bool(mine),
                    idp: Value::Bool(theirs),
                });
            }
            for attribute in UserAttribute::ALL {
                if carried.user_attributes.contains(&attribute)
                    && attribute.of(ours) != attribute.of(idp)
                {
                    differences.push(Difference {
                        attribute: attribute.as_str(),
                        roster: text_value(attribute.of(ours)),
                        idp: text_value(attribute.of(idp)),
                    });
                }
            }
            if !differences.is_empty() {
                report.users.different.push(Changed {
                    id: ours.id.clone(),
                    name: ours.user_name.clone(),
                    matched_by,
                    differences,
                });
            }
        }
        for (index, user) in roster.users.iter().enumerate() {
            if !matched_roster[index] {
                report.users.only_in_roster.push(user_summary(user, true));
            }
        }
    }

    if carried.groups {
        report.groups.ambiguous = ambiguous_entries(
            &group_names(&export.groups),
            &group_names(&roster.groups),
            &shared_external_ids(&group_keys(&export.groups), &group_keys(&roster.groups)),
        );
        let group_matches = match_groups(roster, export);
        let mut matched_roster = vec![false; roster.groups.len()];
        for (index, found) in group_matches.iter().enumerate() {
            let idp = &export.groups[index];
            let Some((roster_index, matched_by)) = *found else {
                report.groups.only_in_idp.push(group_summary(idp, false));
                continue;
            };
            matched_roster[roster_index] = true;
            let ours = &roster.groups[roster_index];
            let mut differences = Vec::new();
            if fold(&ours.display_name) != fold(&idp.display_name) {
                differences.push(Difference {
                    attribute: "displayName",
                    roster: Value::String(ours.display_name.clone()),
                    idp: Value::String(idp.display_name.clone()),
                });
            }
            if carried.group_external_id && ours.external_id != idp.external_id {
                differences.push(Difference {
                    attribute: "externalId",
                    roster: text_value(ours.external_id.as_deref()),
                    idp: text_value(idp.external_id.as_deref()),
                });
            }
            if !differences.is_empty() {
                report.groups.different.push(Changed {
                    id: ours.id.clone(),
                    name: ours.display_name.clone(),
                    matched_by,
                    differences,
                });
            }
            if carried.memberships {
                let difference =
                    membership_difference(roster, export, &user_matches, index, roster_index);
                if !difference.only_in_idp.is_empty() || !difference.only_in_roster.is_empty() {
                    report.memberships.push(difference);
                }
            }
        }
        for (index, group) in roster.groups.iter().enumerate() {
            let named_by_members_only = carried.groups_by_members_only && group.member_count == 0;
            if !matched_roster[index] && !named_by_members_only {
                report
                    .groups
                    .only_in_roster
                    .push(group_summary(group, true));
            }
        }
    }

    sort_report(&mut report);
    report.summary = Summary {
        users_only_in_idp: report.users.only_in_idp.len(),
        users_only_in_roster: report.users.only_in_roster.len(),
        users_with_differences: report.users.different.len(),
        groups_only_in_idp: report.groups.only_in_idp.len(),
        groups_only_in_roster: report.groups.only_in_roster.len(),
        groups_with_differences: report.groups.different.len(),
        groups_with_membership_differences: report.memberships.len(),
        users_ambiguous: report.users.ambiguous.len(),
        groups_ambiguous: report.groups.ambiguous.len(),
        members_only_in_idp: report.memberships.iter().map(|m| m.only_in_idp.len()).sum(),
        members_only_in_roster: report
            .memberships
            .iter()
            .map(|m| m.only_in_roster.len())
            .sum(),
    };
    let summary = &report.summary;
    report.drift = summary.users_only_in_idp
        + summary.users_only_in_roster
        + summary.users_with_differences
        + summary.groups_only_in_idp
        + summary.groups_only_in_roster
        + summary.groups_with_differences
        + summary.groups_with_membership_differences
        > 0;
    report
}

fn membership_difference(
    roster: &RosterDirectory,
    export: &Export,
    user_matches: &[Option<(usize, MatchedBy)>],
    export_group: usize,
    roster_group: usize,
) -> MembershipDifference {
    let group = &roster.groups[roster_group];
    let resolve_by_name = |name: &str| roster.users_by_name.get(&fold(name)).copied();
    let theirs: HashSet<MemberKey> = export.members[export_group]
        .iter()
        .map(|member| {
            if let Some(user) = member.user {
                return match user_matches[user] {
                    Some((found, _)) => MemberKey::Roster(found),
                    None => MemberKey::Export(user),
                };
            }
            if let Some(&found) = member
                .value
                .as_ref()
                .and_then(|id| roster.users_by_id.get(id))
            {
                return MemberKey::Roster(found);
            }
            if !export.carried.users
                && let Some(found) = member.display.as_deref().and_then(resolve_by_name)
            {
                return MemberKey::Roster(found);
            }
            MemberKey::Named(
                member
                    .display
                    .clone()
                    .or_else(|| member.value.clone())
                    .unwrap_or_default(),
            )
        })
        .collect();
    let ours: HashSet<MemberKey> = group
        .id
        .as_ref()
        .and_then(|id| roster.members.get(id))
        .into_iter()
        .flatten()
        .map(
            |(user_id, user_name)| match roster.users_by_id.get(user_id) {
                Some(&found) => MemberKey::Roster(found),
                None => MemberKey::Named(user_name.clone()),
            },
        )
        .collect();
    let name = |key: &MemberKey| match key {
        MemberKey::Roster(index) => roster.users[*index].user_name.clone(),
        MemberKey::Export(index) => export.users[*index].user_name.clone(),
        MemberKey::Named(name) => name.clone(),
    };
    MembershipDifference {
        group_id: group.id.clone(),
        display_name: group.display_name.clone(),
        only_in_idp: theirs.difference(&ours).map(name).collect(),
        only_in_roster: ours.difference(&theirs).map(name).collect(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use roster_proto::v1 as pb;
    use serde_json::json;

    use super::*;
    use crate::drift::export::{GROUP_SCHEMA, USER_SCHEMA};
    use crate::drift::fixtures::{matching_json, report_for, roster};

    #[test]
    fn an_export_matching_roster_has_no_drift() {
        let report = report_for(&matching_json());
        assert!(!report.drift, "{}", report.render_text());
        assert_eq!(report.summary, Summary::default());
        // Carol is carol: userName compares case-insensitively.
        assert!(report.users.different.is_empty());
    }

    #[test]
    fn every_kind_of_difference_is_reported() {
        let export = json!([
            {"Resources": [
                // alice: deactivated, renamed, new email; matched by externalId.
                {"schemas": [USER_SCHEMA], "id": "i1", "userName": "alice.new", "externalId": "e-alice",
                 "active": "False", "displayName": "Alice A",
                 "name": {"givenName": "Alice", "familyName": "B"},
                 "emails": [{"value": "new@x.io", "primary": true}]},
                // bob: externalId changed; matched by userName.
                {"schemas": [USER_SCHEMA], "id": "i2", "userName": "BOB", "externalId": "e-bob-2", "active": true},
                // dave: only in the IdP.
                {"schemas": [USER_SCHEMA], "id": "i4", "userName": "dave", "externalId": "e-dave"}
            ]},
            {"Resources": [
                // Engineering renamed, bob left, dave joined.
                {"schemas": [GROUP_SCHEMA], "displayName": "Platform", "externalId": "g-eng",
                 "members": [{"value": "i1"}, {"value": "i4"}]},
                {"schemas": [GROUP_SCHEMA], "displayName": "Support", "members": []},
                {"schemas": [GROUP_SCHEMA], "displayName": "empty", "externalId": "g-empty",
                 "members": [{"value": "i2", "display": "Bob"}]}
            ]}
        ]);
        let report = report_for(&export);
        assert!(report.drift);
        let names = |users: &[UserSummary]| -> Vec<String> {
            users.iter().map(|u| u.user_name.clone()).collect()
        };
        assert_eq!(names(&report.users.only_in_idp), ["dave"]);
        assert_eq!(names(&report.users.only_in_roster), ["carol"]);
        assert_eq!(report.users.only_in_roster[0].id.as_deref(), Some("u3"));
        let alice = &report.users.different[0];
        assert_eq!(
            (alice.name.as_str(), alice.matched_by),
            ("alice", MatchedBy::ExternalId)
        );
        let attributes: Vec<(&str, Value, Value)> = alice
            .differences
            .iter()
            .map(|d| (d.attribute, d.roster.clone(), d.idp.clone()))
            .collect();
        assert_eq!(
            attributes,
            [
                ("userName", json!("alice"), json!("alice.new")),
                ("active", json!(true), json!(false)),
                ("name.familyName", json!("A"), json!("B")),
                ("primaryEmail", json!("a@x.io"), json!("new@x.io")),
            ]
        );
        let bob = &report.users.different[1];
        assert_eq!(bob.matched_by, MatchedBy::UserName);
        // BOB is bob (userName is case-insensitive); the externalId changed.
        assert_eq!(
            bob.differences,
            [Difference {
                attribute: "externalId",
                roster: json!("e-bob"),
                idp: json!("e-bob-2"),
            }]
        );
        let groups = |groups: &[GroupSummary]| -> Vec<String> {
            groups.iter().map(|g| g.display_name.clone()).collect()
        };
        assert_eq!(groups(&report.groups.only_in_idp), ["Support"]);
        assert_eq!(groups(&report.groups.only_in_roster), ["Sales"]);
        let renamed: Vec<(&str, &str, MatchedBy, usize)> = report
            .groups
            .different
            .iter()
            .map(|g| {
                (
                    g.name.as_str(),
                    g.differences[0].attribute,
                    g.matched_by,
                    g.differences.len(),
                )
            })
            .collect();
        assert_eq!(
            renamed,
            [
                ("Empty", "externalId", MatchedBy::DisplayName, 1),
                ("Engineering", "displayName", MatchedBy::ExternalId, 1),
            ]
        );
        assert_eq!(
            report.memberships,
            [
                MembershipDifference {
                    group_id: Some("g3".into()),
                    display_name: "Empty".into(),
                    only_in_idp: vec!["bob".into()],
                    only_in_roster: vec![],
                },
                MembershipDifference {
                    group_id: Some("g1".into()),
                    display_name: "Engineering".into(),
                    only_in_idp: vec!["dave".into()],
                    only_in_roster: vec!["bob".into()],
                },
            ]
        );
        assert_eq!(report.summary.members_only_in_idp, 2);
        assert_eq!(report.summary.members_only_in_roster, 1);
        let text = report.render_text();
        assert!(text.contains("    active: true → false"), "{text}");
        assert!(text.contains("    + dave"), "{text}");
        assert!(text.contains("    - bob"), "{text}");
        assert!(
            text.lines()
                .last()
                .unwrap()
                .starts_with("drift: users: 1 only in IdP"),
            "{text}"
        );
    }

    #[test]
    fn only_attributes_the_export_carries_are_compared() {
        // No displayName, name, emails or active anywhere: alice's attributes are not drift.
        let export = json!({"Users": [
            {"userName": "alice", "externalId": "e-alice"},
            {"userName": "bob", "externalId": "e-bob"},
            {"userName": "carol"}
        ]});
        let report = report_for(&export);
        assert!(!report.drift, "{}", report.render_text());
        assert_eq!(
            report.compared.user_attributes,
            ["userName", "active", "externalId"]
        );
        assert!(!report.compared.groups);
        // Once one user carries displayName, a user without one has none.
        let export = json!({"Users": [
            {"userName": "alice", "externalId": "e-alice"},
            {"userName": "bob", "externalId": "e-bob", "displayName": "Bob"},
            {"userName": "carol"}
        ]});
        let report = report_for(&export);
        let differences: Vec<(&str, &str, Value)> = report
            .users
            .different
            .iter()
            .flat_map(|c| {
                c.differences
                    .iter()
                    .map(|d| (c.name.as_str(), d.attribute, d.idp.clone()))
            })
            .collect();
        assert_eq!(
            differences,
            [
                ("alice", "displayName", Value::Null),
                ("bob", "displayName", json!("Bob"))
            ]
        );
    }

    #[test]
    fn csv_exports_name_groups_through_members() {
        let csv = "GROUPS,userName,Active,externalId\n\
                   \"Engineering; Sales\",alice,true,e-alice\n\
                   Engineering,bob,yes,e-bob\n\
                   ,carol,,\n";
        let export = Export::parse(csv, None).unwrap();
        assert_eq!(export.format, Some(InputFormat::Csv));
        let report = compare("acme", "x.csv", &roster(), &export);
        // carol left Sales, alice joined it; Empty has no members and is not reported.
        assert!(
            report.users.different.is_empty(),
            "{}",
            report.render_text()
        );
        assert!(
            report.groups.only_in_roster.is_empty(),
            "{}",
            report.render_text()
        );
        assert_eq!(
            report.memberships,
            [MembershipDifference {
                group_id: Some("g2".into()),
                display_name: "Sales".into(),
                only_in_idp: vec!["alice".into()],
                only_in_roster: vec!["carol".into()],
            }]
        );
        assert_eq!(report.source_format, "csv");
    }

    #[test]
    fn a_groups_only_export_resolves_members_by_roster_id_or_user_name() {
        let export = json!({"Groups": {"Resources": [
            {"displayName": "Engineering", "externalId": "g-eng",
             "members": [{"value": "u1"}, {"value": "x", "display": "bob"}, {"value": "y", "display": "zed"}]},
            {"displayName": "Sales", "members": [{"value": "u3"}]},
            {"displayName": "Empty"}
        ]}});
        let report = report_for(&export);
        assert!(!report.compared.users);
        assert_eq!(report.memberships.len(), 1, "{}", report.render_text());
        assert_eq!(report.memberships[0].only_in_idp, ["zed"]);
        assert!(report.memberships[0].only_in_roster.is_empty());
    }

    #[test]
    fn users_own_groups_attribute_states_memberships_like_a_csv() {
        // A Users-only export (GET /Users): groups are known through users' `groups` only.
        let export = json!({"Users": {"Resources": [
            {"id": "i1", "userName": "alice",
             "groups": [{"value": "x-eng", "display": "Engineering"},
                        {"value": "x-sales", "display": "Sales"},
                        {"value": "x-all", "display": "Everyone", "type": "indirect"}]},
            {"id": "i2", "userName": "bob", "groups": [{"value": "x-eng", "display": "Engineering"}]},
            {"id": "i3", "userName": "carol", "groups": []}
        ]}});
        let report = report_for(&export);
        assert!(report.compared.memberships);
        // carol left Sales, alice joined it; Empty has no members in roster and is not reported
        // missing, and the indirect Everyone is no group of the export.
        assert!(
            report.groups.only_in_roster.is_empty() && report.groups.only_in_idp.is_empty(),
            "{}",
            report.render_text()
        );
        assert_eq!(
            report.memberships,
            [MembershipDifference {
                group_id: Some("g2".into()),
                display_name: "Sales".into(),
                only_in_idp: vec!["alice".into()],
                only_in_roster: vec!["carol".into()],
            }]
        );
    }

    #[test]
    fn members_needed_are_those_of_matched_groups_with_members() {
        let export = Export::parse(&matching_json().to_string(), None).unwrap();
        assert_eq!(groups_needing_members(&roster(), &export), ["g1", "g2"]);
    }

    fn names(users: &[UserSummary]) -> Vec<&str> {
        users.iter().map(|u| u.user_name.as_str()).collect()
    }

    #[test]
    fn an_external_id_several_roster_users_share_is_ambiguous_not_guessed() {
        let mut roster = roster();
        roster.add_user(&crate::drift::fixtures::roster_user(
            "u4",
            "dave",
            "e-alice",
            true,
            json!({}),
        ));
        let export = json!({"Users": [
            {"schemas": [USER_SCHEMA], "userName": "alice.new", "externalId": "e-alice"},
            {"schemas": [USER_SCHEMA], "userName": "bob", "externalId": "e-bob"},
            {"schemas": [USER_SCHEMA], "userName": "carol"}
        ]});
        let export = Export::parse(&export.to_string(), None).unwrap();
        let report = compare("acme", "export.json", &roster, &export);
        // Neither alice nor dave is picked for alice.new: matched by userName, it matches none.
        assert_eq!(names(&report.users.only_in_idp), ["alice.new"]);
        assert_eq!(names(&report.users.only_in_roster), ["alice", "dave"]);
        assert_eq!(
            report.users.ambiguous,
            [Ambiguous {
                external_id: "e-alice".into(),
                roster: vec!["alice".into(), "dave".into()],
                idp: vec!["alice.new".into()],
            }]
        );
        assert_eq!(report.summary.users_ambiguous, 1);
        assert!(
            report.users.different.is_empty(),
            "bob matched by externalId"
        );
        let text = report.render_text();
        assert!(
            text.contains("Ambiguous user externalIds, shared by several users (1)"),
            "{text}"
        );
        assert!(
            text.contains("externalId=e-alice  roster: alice, dave  IdP: alice.new"),
            "{text}"
        );
        assert!(report.summary_line().contains("ambiguous: 1 externalId"));
        let value = serde_json::to_value(&report).unwrap();
        assert_eq!(
            value["users"]["ambiguous"],
            json!([{"externalId": "e-alice", "roster": ["alice", "dave"], "idp": ["alice.new"]}])
        );
        assert_eq!(value["summary"]["usersAmbiguous"], 1);
        assert_eq!(value["version"], 1);
    }

    #[test]
    fn an_external_id_several_idp_users_share_is_ambiguous_and_its_holders_match_by_name() {
        let export = json!({"Users": [
            {"schemas": [USER_SCHEMA], "userName": "alice", "externalId": "e-alice"},
            {"schemas": [USER_SCHEMA], "userName": "BOB", "externalId": "e-bob"},
            {"schemas": [USER_SCHEMA], "userName": "bobby", "externalId": "e-bob"},
            {"schemas": [USER_SCHEMA], "userName": "carol"}
        ]});
        let report = report_for(&export);
        assert_eq!(names(&report.users.only_in_idp), ["bobby"]);
        assert!(report.users.only_in_roster.is_empty());
        assert_eq!(report.users.ambiguous.len(), 1);
        assert_eq!(report.users.ambiguous[0].roster, ["bob"]);
        assert_eq!(report.users.ambiguous[0].idp, ["BOB", "bobby"]);
        // Ambiguity alone is no drift; here bobby is.
        assert!(report.drift);
        let without_bobby = json!({"Users": [
            {"schemas": [USER_SCHEMA], "userName": "alice", "externalId": "e-alice"},
            {"schemas": [USER_SCHEMA], "userName": "bob", "externalId": "e-bob"},
            {"schemas": [USER_SCHEMA], "userName": "carol", "externalId": "e-bob"}
        ]});
        let report = report_for(&without_bobby);
        // carol's externalId differs from roster's (none): that is drift, matched by userName.
        assert_eq!(report.users.different.len(), 1);
        assert_eq!(report.users.different[0].name, "carol");
        assert_eq!(report.users.different[0].matched_by, MatchedBy::UserName);
        assert_eq!(report.summary.users_ambiguous, 1);
    }

    #[test]
    fn a_group_external_id_shared_on_either_side_is_ambiguous() {
        let export = json!({"Users": [
            {"schemas": [USER_SCHEMA], "id": "i1", "userName": "alice", "externalId": "e-alice"},
            {"schemas": [USER_SCHEMA], "id": "i2", "userName": "bob", "externalId": "e-bob"},
            {"schemas": [USER_SCHEMA], "id": "i3", "userName": "carol"}
        ], "Groups": [
            {"schemas": [GROUP_SCHEMA], "displayName": "Engineering", "externalId": "g-eng",
             "members": [{"value": "i1"}, {"value": "i2"}]},
            {"schemas": [GROUP_SCHEMA], "displayName": "Platform", "externalId": "g-eng",
             "members": []},
            {"schemas": [GROUP_SCHEMA], "displayName": "Sales", "members": [{"value": "i3"}]},
            {"schemas": [GROUP_SCHEMA], "displayName": "Empty", "members": []}
        ]});
        let report = report_for(&export);
        assert_eq!(
            report.groups.ambiguous,
            [Ambiguous {
                external_id: "g-eng".into(),
                roster: vec!["Engineering".into()],
                idp: vec!["Engineering".into(), "Platform".into()],
            }]
        );
        assert_eq!(report.summary.groups_ambiguous, 1);
        assert!(report.groups.different.is_empty());
        let only: Vec<&str> = report
            .groups
            .only_in_idp
            .iter()
            .map(|g| g.display_name.as_str())
            .collect();
        assert_eq!(only, ["Platform"]);
        assert!(report.memberships.is_empty(), "{}", report.render_text());
    }

    #[test]
    fn a_roster_user_missing_from_the_export_shows_its_handle() {
        let mut roster = roster();
        roster.add_user(&pb::User {
            id: "u9".into(),
            user_name: "dave@acme.com".into(),
            handle: "dave".into(),
            active: true,
            attributes_json: "{}".into(),
            ..pb::User::default()
        });
        let export = Export::parse(&matching_json().to_string(), None).unwrap();
        let report = compare("acme", "export.json", &roster, &export);
        let only = &report.users.only_in_roster;
        assert_eq!(only.len(), 1);
        assert_eq!(only[0].user_name, "dave@acme.com");
        assert_eq!(only[0].handle.as_deref(), Some("dave"));
        assert!(report.render_text().contains("dave@acme.com  handle=dave"));
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["users"]["onlyInRoster"][0]["handle"], "dave");
    }
}
