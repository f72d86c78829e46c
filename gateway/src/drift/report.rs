//! A drift report's types, and how a [`Report`] is sorted (so that it is stable) and rendered:
//! a summary line, text for people, and JSON (`version` 1, the stable machine output) through
//! `Serialize`. The version changes only when a field changes meaning or goes away; fields are
//! added within a version (`ambiguous` and its counts were).

use serde::Serialize;
use serde_json::Value;

use super::fold;

/// How two resources were matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum MatchedBy {
    ExternalId,
    UserName,
    DisplayName,
}

/// A user on one side only.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserSummary {
    /// roster's id (null for users only in the IdP).
    pub id: Option<String>,
    pub user_name: String,
    /// roster's platform handle (roster's side only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handle: Option<String>,
    pub external_id: Option<String>,
    pub active: Option<bool>,
}

/// A group on one side only.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupSummary {
    pub id: Option<String>,
    pub display_name: String,
    pub external_id: Option<String>,
    pub members: u64,
}

/// One attribute whose value differs: roster's value, then the IdP's (null: no value).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Difference {
    pub attribute: &'static str,
    pub roster: Value,
    pub idp: Value,
}

/// A resource present on both sides whose attributes differ.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Changed {
    /// roster's id and name of the resource (userName or displayName).
    pub id: Option<String>,
    pub name: String,
    pub matched_by: MatchedBy,
    pub differences: Vec<Difference>,
}

/// A group on both sides whose members differ, members named by userName.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MembershipDifference {
    pub group_id: Option<String>,
    pub display_name: String,
    /// Members in the IdP that roster's group lacks.
    pub only_in_idp: Vec<String>,
    /// Members of roster's group the IdP lacks.
    pub only_in_roster: Vec<String>,
}

/// An externalId several resources share on one side or both (externalIds need not be unique:
/// RFC 7643 §3.1). It matched nothing: its holders were matched by name, never guessed.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Ambiguous {
    pub external_id: String,
    /// roster's holders and the IdP's, by userName (users) or displayName (groups).
    pub roster: Vec<String>,
    pub idp: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Section<T> {
    pub only_in_idp: Vec<T>,
    pub only_in_roster: Vec<T>,
    pub different: Vec<Changed>,
    /// Shared externalIds, by externalId.
    pub ambiguous: Vec<Ambiguous>,
}

/// What was compared.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Compared {
    pub users: bool,
    pub groups: bool,
    pub memberships: bool,
    pub user_attributes: Vec<&'static str>,
    pub group_attributes: Vec<&'static str>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub users_only_in_idp: usize,
    pub users_only_in_roster: usize,
    pub users_with_differences: usize,
    pub groups_only_in_idp: usize,
    pub groups_only_in_roster: usize,
    pub groups_with_differences: usize,
    pub groups_with_membership_differences: usize,
    pub members_only_in_idp: usize,
    pub members_only_in_roster: usize,
    /// externalIds shared by several users (groups) on either side: not drift by themselves.
    pub users_ambiguous: usize,
    pub groups_ambiguous: usize,
}

/// A drift report; its JSON form is `roster drift --format json`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The report format's version.
    pub version: u32,
    pub tenant: String,
    /// The export file as given, and its format (`json` or `csv`).
    pub source: String,
    pub source_format: &'static str,
    pub drift: bool,
    pub compared: Compared,
    pub summary: Summary,
    pub users: Section<UserSummary>,
    pub groups: Section<GroupSummary>,
    pub memberships: Vec<MembershipDifference>,
}

/// Sorts every list by folded name (then exactly), so reports are stable.
pub(super) fn sort_report(report: &mut Report) {
    let by_name = |a: &str, b: &str| fold(a).cmp(&fold(b)).then_with(|| a.cmp(b));
    report
        .users
        .only_in_idp
        .sort_by(|a, b| by_name(&a.user_name, &b.user_name));
    report
        .users
        .only_in_roster
        .sort_by(|a, b| by_name(&a.user_name, &b.user_name));
    report
        .groups
        .only_in_idp
        .sort_by(|a, b| by_name(&a.display_name, &b.display_name));
    report
        .groups
        .only_in_roster
        .sort_by(|a, b| by_name(&a.display_name, &b.display_name));
    report
        .users
        .different
        .sort_by(|a, b| by_name(&a.name, &b.name));
    report
        .groups
        .different
        .sort_by(|a, b| by_name(&a.name, &b.name));
    report
        .memberships
        .sort_by(|a, b| by_name(&a.display_name, &b.display_name));
    for membership in &mut report.memberships {
        membership.only_in_idp.sort_by(|a, b| by_name(a, b));
        membership.only_in_roster.sort_by(|a, b| by_name(a, b));
    }
    for ambiguous in report
        .users
        .ambiguous
        .iter_mut()
        .chain(report.groups.ambiguous.iter_mut())
    {
        ambiguous.roster.sort_by(|a, b| by_name(a, b));
        ambiguous.idp.sort_by(|a, b| by_name(a, b));
    }
    report
        .users
        .ambiguous
        .sort_by(|a, b| a.external_id.cmp(&b.external_id));
    report
        .groups
        .ambiguous
        .sort_by(|a, b| a.external_id.cmp(&b.external_id));
}

fn show_value(value: &Value) -> String {
    match value {
        Value::Null => "(none)".to_owned(),
        other => other.to_string(),
    }
}

fn plural(count: usize, one: &str, many: &str) -> String {
    format!("{count} {}", if count == 1 { one } else { many })
}

impl Report {
    /// One line: the counts of what was compared, or that there is no drift; then the shared
    /// externalIds, if any.
    pub fn summary_line(&self) -> String {
        let s = &self.summary;
        let ambiguous = if s.users_ambiguous + s.groups_ambiguous > 0 {
            format!(
                "; ambiguous: {} shared by several users, {} by several groups (matched by name)",
                plural(s.users_ambiguous, "externalId", "externalIds"),
                s.groups_ambiguous
            )
        } else {
            String::new()
        };
        if !self.drift {
            return format!(
                "no drift: tenant {} matches {} (compared: {}){ambiguous}",
                self.tenant,
                self.source,
                self.compared_list()
            );
        }
        let mut parts = Vec::new();
        if self.compared.users {
            parts.push(format!(
                "users: {} only in IdP, {} only in roster, {} with differences",
                s.users_only_in_idp, s.users_only_in_roster, s.users_with_differences
            ));
        }
        if self.compared.groups {
            parts.push(format!(
                "groups: {} only in IdP, {} only in roster, {} with differences",
                s.groups_only_in_idp, s.groups_only_in_roster, s.groups_with_differences
            ));
        }
        if self.compared.memberships {
            parts.push(format!(
                "memberships differ in {} ({} members only in IdP, {} only in roster)",
                plural(s.groups_with_membership_differences, "group", "groups"),
                s.members_only_in_idp,
                s.members_only_in_roster
            ));
        }
        format!("drift: {}{ambiguous}", parts.join("; "))
    }

    fn compared_list(&self) -> String {
        let mut parts = Vec::new();
        if self.compared.users {
            parts.push("users");
        }
        if self.compared.groups {
            parts.push("groups");
        }
        if self.compared.memberships {
            parts.push("memberships");
        }
        parts.join(", ")
    }

    /// The human-readable report: a section per kind of difference, then the summary line.
    pub fn render_text(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "Drift of tenant {} against {} ({}; compared: {})",
            self.tenant,
            self.source,
            self.source_format,
            self.compared_list()
        );
        let user_line = |user: &UserSummary| {
            let mut line = format!("  {}", user.user_name);
            if let Some(handle) = user
                .handle
                .as_ref()
                .filter(|handle| **handle != user.user_name)
            {
                let _ = write!(line, "  handle={handle}");
            }
            if let Some(external_id) = &user.external_id {
                let _ = write!(line, "  externalId={external_id}");
            }
            if let Some(active) = user.active {
                let _ = write!(line, "  active={active}");
            }
            if let Some(id) = &user.id {
                let _ = write!(line, "  id={id}");
            }
            line
        };
        let group_line = |group: &GroupSummary| {
            let mut line = format!("  {}", group.display_name);
            if let Some(external_id) = &group.external_id {
                let _ = write!(line, "  externalId={external_id}");
            }
            let _ = write!(line, "  members={}", group.members);
            if let Some(id) = &group.id {
                let _ = write!(line, "  id={id}");
            }
            line
        };
        let changed = |out: &mut String, title: &str, changed: &[Changed]| {
            if changed.is_empty() {
                return;
            }
            let _ = writeln!(
                out,
                "\n{title} ({}): attribute: roster → IdP",
                changed.len()
            );
            for resource in changed {
                let by = match resource.matched_by {
                    MatchedBy::ExternalId => "externalId",
                    MatchedBy::UserName => "userName",
                    MatchedBy::DisplayName => "displayName",
                };
                let _ = writeln!(out, "  {} (matched by {by})", resource.name);
                for difference in &resource.differences {
                    let _ = writeln!(
                        out,
                        "    {}: {} → {}",
                        difference.attribute,
                        show_value(&difference.roster),
                        show_value(&difference.idp)
                    );
                }
            }
        };
        let mut section = |title: &str, lines: Vec<String>| {
            if lines.is_empty() {
                return;
            }
            let _ = writeln!(out, "\n{title} ({}):", lines.len());
            for line in lines {
                let _ = writeln!(out, "{line}");
            }
        };
        section(
            "Users only in the IdP",
            self.users.only_in_idp.iter().map(user_line).collect(),
        );
        section(
            "Users only in roster",
            self.users.only_in_roster.iter().map(user_line).collect(),
        );
        section(
            "Groups only in the IdP",
            self.groups.only_in_idp.iter().map(group_line).collect(),
        );
        section(
            "Groups only in roster",
            self.groups.only_in_roster.iter().map(group_line).collect(),
        );
        changed(
            &mut out,
            "User attribute differences",
            &self.users.different,
        );
        changed(
            &mut out,
            "Group attribute differences",
            &self.groups.different,
        );
        let ambiguous = |out: &mut String, title: &str, shared: &[Ambiguous]| {
            if shared.is_empty() {
                return;
            }
            let _ = writeln!(
                out,
                "\n{title} ({}): matched by name instead, never guessed",
                shared.len()
            );
            let names = |names: &[String]| {
                if names.is_empty() {
                    "(none)".to_owned()
                } else {
                    names.join(", ")
                }
            };
            for entry in shared {
                let _ = writeln!(
                    out,
                    "  externalId={}  roster: {}  IdP: {}",
                    entry.external_id,
                    names(&entry.roster),
                    names(&entry.idp)
                );
            }
        };
        ambiguous(
            &mut out,
            "Ambiguous user externalIds, shared by several users",
            &self.users.ambiguous,
        );
        ambiguous(
            &mut out,
            "Ambiguous group externalIds, shared by several groups",
            &self.groups.ambiguous,
        );
        if !self.memberships.is_empty() {
            let _ = writeln!(
                out,
                "\nMembership differences ({}): + in the IdP only, - in roster only",
                plural(self.memberships.len(), "group", "groups")
            );
            for membership in &self.memberships {
                let _ = writeln!(out, "  {}", membership.display_name);
                for name in &membership.only_in_idp {
                    let _ = writeln!(out, "    + {name}");
                }
                for name in &membership.only_in_roster {
                    let _ = writeln!(out, "    - {name}");
                }
            }
        }
        let _ = writeln!(out, "\n{}", self.summary_line());
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use serde_json::json;

    use crate::drift::fixtures::report_for;

    #[test]
    fn the_json_report_is_stable() {
        let report = report_for(&json!({"Users": [{"userName": "dave"}]}));
        let value = serde_json::to_value(&report).unwrap();
        assert_eq!(value["version"], 1);
        assert_eq!(value["drift"], true);
        assert_eq!(
            value["users"]["onlyInIdp"],
            json!([{"id": null, "userName": "dave", "externalId": null, "active": null}])
        );
        assert_eq!(value["summary"]["usersOnlyInRoster"], 3);
        assert_eq!(
            value["compared"]["userAttributes"],
            json!(["userName", "active"])
        );
        assert_eq!(value["memberships"], json!([]));
    }
}
