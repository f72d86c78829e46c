//! What the admin commands print for people: tokens, role mappings, resource groups and
//! staging diffs (text, or JSON for `--format json`), and the role names they use.

use roster_proto::v1 as pb;

use super::tenant::DiffFormat;

/// A role as the commands print it: its name, or `none`.
fn role_name(role: i32) -> &'static str {
    roster_engine::codec::role_from_proto(role).map_or("none", |role| role.as_str())
}

/// One line for a token: id, name, state (active, expired, revoked), expiry and last use.
/// A wire timestamp in RFC 3339, if set.
pub fn time(at: &Option<prost_types::Timestamp>) -> Option<String> {
    at.as_ref()
        .map(roster_engine::codec::timestamp_from_proto)
        .map(|at| at.to_rfc3339())
}

pub fn show_token(token: &pb::TokenInfo) -> String {
    // A client tool: the system clock is the one it has.
    let now = roster_engine::clock::Clock::now(&roster_engine::clock::SystemClock).as_micros()
        / 1_000_000;
    let state = if token.revoked_at.is_some() {
        "revoked"
    } else if token
        .expires_at
        .as_ref()
        .is_some_and(|at| at.seconds <= now)
    {
        "expired"
    } else {
        "active"
    };
    format!(
        "{}\t{}\t{}\tscope={}\texpires={}\tlast_used={}",
        token.id,
        token.name,
        state,
        if token.scope.is_empty() {
            "scim"
        } else {
            &token.scope
        },
        time(&token.expires_at).unwrap_or_else(|| "never".into()),
        time(&token.last_used_at).unwrap_or_else(|| "never".into()),
    )
}

/// Prints a tenant's default role, group → role mappings and claim → role mappings.
pub fn show_role_mappings(mappings: &pb::RoleMappings) {
    println!("default\t{}", role_name(mappings.default_role));
    for mapping in &mappings.mappings {
        println!(
            "{}\t{}\t{}",
            mapping.group_id,
            mapping.group_display_name,
            role_name(mapping.role)
        );
    }
    for mapping in &mappings.claim_mappings {
        println!(
            "claim\t{}={}\t{}",
            mapping.claim,
            mapping.value,
            role_name(mapping.role)
        );
    }
}

/// Prints a resource group with its links and members.
pub fn show_resource_group(resource_group: &pb::ResourceGroupInfo) {
    let managed = if resource_group.scim_managed {
        "scim-managed"
    } else {
        "manual"
    };
    println!(
        "{}\t{}\t{}",
        resource_group.id, resource_group.name, managed
    );
    for link in &resource_group.links {
        println!(
            "  link\t{}\t{}\t{}",
            link.group_id,
            link.group_display_name,
            role_name(link.role)
        );
    }
    for member in &resource_group.members {
        println!(
            "  member\t{}\t{}\t{}",
            member.user_id,
            member.user_name,
            role_name(member.role)
        );
    }
}

fn staged_role_text(role: Option<&pb::StagedRole>) -> String {
    use pb::role_source::Kind;
    let Some(role) = role else {
        return "(none)".to_owned();
    };
    let name = roster_engine::codec::role_from_proto(role.role).map_or("?", |role| role.as_str());
    match role.source.as_ref().and_then(|source| source.kind.as_ref()) {
        Some(Kind::Group(group)) => format!("{name} (group {})", group.display_name),
        Some(Kind::DefaultRole(_)) => format!("{name} (default)"),
        Some(Kind::Manual(_)) => format!("{name} (set by hand)"),
        Some(Kind::Claim(claim)) => format!("{name} (SSO claim {}={})", claim.claim, claim.value),
        None => name.to_owned(),
    }
}

fn staged_role_json(role: Option<&pb::StagedRole>) -> serde_json::Value {
    use pb::role_source::Kind;
    let Some(role) = role else {
        return serde_json::Value::Null;
    };
    let name = roster_engine::codec::role_from_proto(role.role).map(|role| role.as_str());
    let source = match role.source.as_ref().and_then(|source| source.kind.as_ref()) {
        Some(Kind::Group(group)) => {
            serde_json::json!({"group": {"id": group.id, "displayName": group.display_name}})
        }
        Some(Kind::DefaultRole(_)) => serde_json::json!("default"),
        Some(Kind::Manual(_)) => serde_json::json!("manual"),
        Some(Kind::Claim(claim)) => {
            serde_json::json!({"claim": {"claim": claim.claim, "value": claim.value}})
        }
        None => serde_json::Value::Null,
    };
    serde_json::json!({"role": name, "source": source})
}

fn change_name(change: i32) -> &'static str {
    use pb::user_staging_change::Change;
    match Change::try_from(change).unwrap_or(Change::Unspecified) {
        Change::Created => "created",
        Change::Deleted => "deleted",
        Change::Deactivated => "deactivated",
        Change::Reactivated => "reactivated",
        Change::Updated => "updated",
        Change::None | Change::Unspecified => "unchanged",
    }
}

/// Prints a staging diff (`done`: what a promotion changed) as text or JSON.
pub fn print_staging_diff(diff: &pb::StagingDiff, format: DiffFormat, done: bool) {
    if format == DiffFormat::Json {
        let groups = |groups: &[pb::GroupRef]| {
            groups
                .iter()
                .map(|group| serde_json::json!({"id": group.id, "displayName": group.display_name}))
                .collect::<Vec<_>>()
        };
        let users: Vec<serde_json::Value> = diff
            .users
            .iter()
            .map(|user| {
                serde_json::json!({
                    "userId": user.user_id,
                    "userName": user.user_name,
                    "previousUserName": (!user.previous_user_name.is_empty())
                        .then_some(&user.previous_user_name),
                    "handle": user.handle,
                    "previousHandle": (!user.previous_handle.is_empty())
                        .then_some(&user.previous_handle),
                    "change": change_name(user.change),
                    "orgRole": user.org_role.as_ref().map(|change| serde_json::json!({
                        "before": staged_role_json(change.before.as_ref()),
                        "after": staged_role_json(change.after.as_ref()),
                    })),
                    "resourceGroups": user.resource_groups.iter().map(|change| serde_json::json!({
                        "id": change.resource_group_id,
                        "name": change.resource_group_name,
                        "before": staged_role_json(change.before.as_ref()),
                        "after": staged_role_json(change.after.as_ref()),
                    })).collect::<Vec<_>>(),
                    "groupsJoined": groups(&user.groups_joined),
                    "groupsLeft": groups(&user.groups_left),
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "tenant": diff.tenant,
                "staging": diff.generation,
                "promoted": done,
                "events": diff.events,
                "users": users,
                "groups": diff.groups.iter().map(group_change_json).collect::<Vec<_>>(),
            })
        );
        return;
    }
    let verb = if done {
        "promoted"
    } else {
        "promotion would change"
    };
    println!(
        "tenant {}, staging {}: {verb} {} user(s) and {} group(s) ({} events)",
        diff.tenant,
        diff.generation,
        diff.users.len(),
        diff.groups.len(),
        diff.events
    );
    for user in &diff.users {
        let change = change_name(user.change);
        let mark = match change {
            "created" | "reactivated" => '+',
            "deleted" | "deactivated" => '-',
            _ => '~',
        };
        let mut renamed = if user.previous_user_name.is_empty() {
            String::new()
        } else {
            format!(" (was {})", user.previous_user_name)
        };
        // The handle, when it is not the userName itself.
        if !user.handle.is_empty() && user.handle != user.user_name {
            renamed.push_str(&format!("  handle {}", user.handle));
            if !user.previous_handle.is_empty() {
                renamed.push_str(&format!(" (was {})", user.previous_handle));
            }
        }
        let lifecycle = if change == "unchanged" {
            String::new()
        } else {
            format!("  {change}")
        };
        println!("{mark} {}{renamed}{lifecycle}", user.user_name);
        if let Some(role) = &user.org_role {
            println!(
                "    org role: {} -> {}",
                staged_role_text(role.before.as_ref()),
                staged_role_text(role.after.as_ref())
            );
        }
        for change in &user.resource_groups {
            println!(
                "    resource group {}: {} -> {}",
                change.resource_group_name,
                staged_role_text(change.before.as_ref()),
                staged_role_text(change.after.as_ref())
            );
        }
        let names = |groups: &[pb::GroupRef]| {
            groups
                .iter()
                .map(|group| group.display_name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        if !user.groups_joined.is_empty() {
            println!("    joins: {}", names(&user.groups_joined));
        }
        if !user.groups_left.is_empty() {
            println!("    leaves: {}", names(&user.groups_left));
        }
    }
    for group in &diff.groups {
        let change = group_change_name(group);
        let mark = match change {
            "created" => '+',
            "deleted" => '-',
            _ => '~',
        };
        let renamed = if group.previous_display_name.is_empty() {
            String::new()
        } else {
            format!(" (was {})", group.previous_display_name)
        };
        println!("{mark} group {}{renamed}  {change}", group.display_name);
        if roster_engine::codec::role_from_proto(group.role_mapping_removed).is_some() {
            println!(
                "    role mapping removed: {}",
                role_name(group.role_mapping_removed)
            );
        }
        for resource_group in &group.unlinked_resource_groups {
            println!("    unlinked from resource group {resource_group}");
        }
    }
}

fn group_change_name(group: &pb::GroupStagingChange) -> &'static str {
    use pb::group_staging_change::Change;
    match group.change() {
        Change::Created => "created",
        Change::Deleted => "deleted",
        Change::Updated | Change::Unspecified => "updated",
    }
}

fn group_change_json(group: &pb::GroupStagingChange) -> serde_json::Value {
    let change = group_change_name(group);
    serde_json::json!({
        "groupId": group.group_id,
        "displayName": group.display_name,
        "previousDisplayName": (!group.previous_display_name.is_empty())
            .then_some(&group.previous_display_name),
        "change": change,
        "roleMappingRemoved": roster_engine::codec::role_from_proto(group.role_mapping_removed)
            .map(|role| role.as_str()),
        "unlinkedResourceGroups": group.unlinked_resource_groups,
    })
}
