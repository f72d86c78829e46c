//! `/Groups`: create, read, list with filters, replace, patch and delete.
//!
//! Members are edges, never a list rewritten in place: every membership request becomes
//! `MemberChange`s the engine turns into `GroupMembersAdded`/`GroupMembersRemoved` events, so
//! adding one member to a group of 100,000 costs what it costs in a group of ten. Members are
//! loaded only when the response includes them (`excludedAttributes=members` loads none).

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use roster_engine::domain::{
    Command, GroupId, GroupProfile, GroupRecord, MemberChange, Rejection, TenantName, UserId, fold,
};
use roster_engine::engine::{ExecuteError, Executed};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::error::{IntoScimError, ScimError, ScimResult};
use super::group::{Member, group_from_json, member_ids, render_group};
use super::http::{
    ScimBody, ScimClient, header_value, not_found_on, not_modified, query_pairs, read_barrier,
    scim_response, store_unavailable, with_resource_headers,
};
use super::streamed;
use super::users::WRITE_ATTEMPTS;
use crate::state::AppState;
use roster_scim::cursor::{self, CursorKind, CursorPage, cursor_response};
use roster_scim::filter::{self, CompareOp, Filter, Literal};
use roster_scim::list::{ListQuery, Search, Selection, list_response};
use roster_scim::patch::{self, Op, Operation};
use roster_scim::resource::{etag, etag_matches};
use roster_scim::schema::GROUP_RESOURCE;
use roster_scim::sort::{Found, Pager};

fn parse_id(id: &str) -> Result<GroupId, ScimError> {
    Uuid::parse_str(id)
        .map(GroupId)
        .map_err(|_| ScimError::not_found(format!("group {id} not found")))
}

fn current_group(
    app: &AppState,
    tenant: &TenantName,
    id: GroupId,
) -> Result<GroupRecord, ScimError> {
    app.directory
        .store()
        .group(tenant, &id)
        .map_err(store_unavailable)?
        .ok_or_else(|| not_found_on(app, tenant, format!("group {id} not found")))
}

/// A group's members (`only` restricts to those users), with their userName as `display` when
/// `with_display` (it costs a user read per member).
fn load_members(
    app: &AppState,
    tenant: &TenantName,
    group: GroupId,
    only: Option<&[UserId]>,
    with_display: bool,
) -> Result<Vec<Member>, ScimError> {
    let store = app.directory.store();
    let ids = match only {
        Some(ids) => {
            let mut members = Vec::new();
            for id in ids {
                if store
                    .is_member(tenant, &group, id)
                    .map_err(store_unavailable)?
                {
                    members.push(*id);
                }
            }
            members
        }
        None => store
            .members_of_group(tenant, &group, None, usize::MAX)
            .map_err(store_unavailable)?,
    };
    if !with_display {
        return Ok(ids
            .into_iter()
            .map(|id| Member { id, display: None })
            .collect());
    }
    let mut members = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(user) = store.user(tenant, &id).map_err(store_unavailable)? {
            members.push(Member {
                id,
                display: Some(user.profile.user_name),
            });
        }
    }
    Ok(members)
}

/// A group as the response shows it: members loaded only when the selection includes them.
fn present(
    app: &AppState,
    client: &ScimClient,
    record: &GroupRecord,
    selection: &Selection,
) -> Result<Value, ScimError> {
    present_for(app, &client.tenant, &client.base_url, record, selection)
}

fn present_for(
    app: &AppState,
    tenant: &TenantName,
    base_url: &str,
    record: &GroupRecord,
    selection: &Selection,
) -> Result<Value, ScimError> {
    let members = if selection.includes("members") {
        let with_display = selection.requests("members.display");
        Some(load_members(app, tenant, record.id, None, with_display)?)
    } else {
        None
    };
    Ok(selection.apply(
        render_group(record, members.as_deref(), base_url),
        &GROUP_RESOURCE,
    ))
}

/// Renders each group of a page with the search's selection, when the page is sent.
fn page_renderer(
    app: &AppState,
    client: &ScimClient,
    search: &Search,
) -> impl Fn(GroupRecord) -> Result<Value, ScimError> + Send + 'static {
    let app = app.clone();
    let tenant = client.tenant.clone();
    let base_url = client.base_url.clone();
    let selection = search.selection.clone();
    move |record| present_for(&app, &tenant, &base_url, &record, &selection)
}

fn respond(
    status: StatusCode,
    record: &GroupRecord,
    body: &Value,
    location: Option<&str>,
) -> Response {
    with_resource_headers(scim_response(status, body), &etag(record.version), location)
}

pub async fn create(
    State(app): State<AppState>,
    client: ScimClient,
    RawQuery(query): RawQuery,
    ScimBody(body): ScimBody,
) -> Result<Response, ScimError> {
    let selection = Selection::from_query(&query_pairs(query.as_deref()))?;
    let input = group_from_json(&body, None)?;
    let group_id = GroupId(Uuid::now_v7());
    let mut members = input.members.unwrap_or_default();
    let executed = client
        .execute(
            &app,
            Command::CreateGroup {
                group_id,
                profile: input.profile,
                members: members.clone(),
            },
        )
        .await
        .scim()?;
    let record = executed
        .state
        .group(&group_id)
        .ok_or_else(|| ScimError::unavailable("the created group could not be read back"))?;
    members.sort();
    members.dedup();
    let with_display = selection.requests("members.display");
    let members: Vec<Member> = members
        .iter()
        .filter_map(|id| {
            executed.state.user(id).map(|user| Member {
                id: *id,
                display: with_display.then(|| user.profile.user_name.clone()),
            })
        })
        .collect();
    let rendered = selection.apply(
        render_group(record, Some(&members), &client.base_url),
        &GROUP_RESOURCE,
    );
    let location = format!("{}/Groups/{group_id}", client.base_url);
    Ok(respond(
        StatusCode::CREATED,
        record,
        &rendered,
        Some(&location),
    ))
}

pub async fn get(
    State(app): State<AppState>,
    client: ScimClient,
    Path((_, id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ScimError> {
    let selection = Selection::from_query(&query_pairs(query.as_deref()))?;
    let id = parse_id(&id)?;
    read_barrier(&app).await?;
    let record = current_group(&app, &client.tenant, id)?;
    if let Some(tags) = header_value(&headers, "if-none-match")
        && etag_matches(tags, record.version)
    {
        return Ok(not_modified(&etag(record.version)));
    }
    let body = present(&app, &client, &record, &selection)?;
    Ok(respond(StatusCode::OK, &record, &body, None))
}

/// A group PATCH split into attribute operations (applied to the group's document) and member
/// changes (edges).
#[derive(Default)]
struct GroupPatch {
    attributes: Vec<Operation>,
    members: Vec<MemberStep>,
}

impl GroupPatch {
    /// The member changes, when the PATCH changes nothing but edges named by id.
    fn edges_only(&self) -> Option<Vec<MemberChange>> {
        if !self.attributes.is_empty() || self.members.is_empty() {
            return None;
        }
        self.members
            .iter()
            .map(|step| match step {
                MemberStep::Change(change) => Some(change.clone()),
                MemberStep::RemoveMatching(_) => None,
            })
            .collect()
    }
}

enum MemberStep {
    Change(MemberChange),
    /// Remove the members a value filter selects, when the filter is not just ids.
    RemoveMatching(Filter),
}

/// The user ids a member value filter names, when it only names ids
/// (`value eq "a"`, `value eq "a" or value eq "b"`).
fn ids_named(filter: &Filter) -> Option<Vec<UserId>> {
    match filter {
        Filter::Compare {
            path,
            op: CompareOp::Eq,
            value: Literal::String(value),
        } if path.is("value") && path.sub.is_none() => Uuid::parse_str(value)
            .ok()
            .map(|id| vec![UserId(id)])
            .or(Some(Vec::new())),
        Filter::Or(left, right) => {
            let mut ids = ids_named(left)?;
            ids.extend(ids_named(right)?);
            Some(ids)
        }
        _ => None,
    }
}

fn split_patch(operations: Vec<Operation>) -> Result<GroupPatch, ScimError> {
    let mut split = GroupPatch::default();
    for operation in operations {
        match &operation.path {
            Some(path) if path.is("members") => {
                if path.sub.is_some() {
                    return Err(ScimError::invalid_path(
                        "members is changed as a whole or through members[value eq \"…\"]",
                    ));
                }
                let value = operation.value.as_ref();
                match (operation.op, &path.filter) {
                    (Op::Add, None) => {
                        split
                            .members
                            .push(MemberStep::Change(MemberChange::Add(member_ids(
                                value.unwrap_or(&Value::Null),
                            )?)))
                    }
                    (Op::Replace, None) => {
                        split
                            .members
                            .push(MemberStep::Change(MemberChange::Replace(member_ids(
                                value.unwrap_or(&Value::Null),
                            )?)))
                    }
                    // Entra's legacy form: remove with a list removes only those.
                    (Op::Remove, None) => match value {
                        Some(value) if !value.is_null() => split
                            .members
                            .push(MemberStep::Change(MemberChange::Remove(member_ids(value)?))),
                        _ => split
                            .members
                            .push(MemberStep::Change(MemberChange::RemoveAll)),
                    },
                    (op, Some(filter)) => {
                        match ids_named(filter) {
                            Some(ids) => split
                                .members
                                .push(MemberStep::Change(MemberChange::Remove(ids))),
                            None => split
                                .members
                                .push(MemberStep::RemoveMatching(filter.clone())),
                        }
                        if op != Op::Remove
                            && let Some(value) = value
                        {
                            split
                                .members
                                .push(MemberStep::Change(MemberChange::Add(member_ids(value)?)));
                        }
                    }
                }
            }
            None if operation.op != Op::Remove => {
                // A path-less value may carry members next to other attributes.
                let Some(Value::Object(fields)) = &operation.value else {
                    split.attributes.push(operation);
                    continue;
                };
                let mut rest = Map::new();
                for (key, value) in fields {
                    if key.eq_ignore_ascii_case("members") {
                        let ids = member_ids(value)?;
                        split
                            .members
                            .push(MemberStep::Change(if operation.op == Op::Add {
                                MemberChange::Add(ids)
                            } else {
                                MemberChange::Replace(ids)
                            }));
                    } else {
                        rest.insert(key.clone(), value.clone());
                    }
                }
                if !rest.is_empty() {
                    split.attributes.push(Operation {
                        op: operation.op,
                        path: None,
                        value: Some(Value::Object(rest)),
                    });
                }
            }
            _ => split.attributes.push(operation),
        }
    }
    Ok(split)
}

/// Turns the member steps into engine changes, evaluating filters against the current members.
fn member_changes(
    app: &AppState,
    client: &ScimClient,
    group: GroupId,
    steps: &[MemberStep],
) -> Result<Vec<MemberChange>, ScimError> {
    let mut changes = Vec::with_capacity(steps.len());
    for step in steps {
        match step {
            MemberStep::Change(change) => changes.push(change.clone()),
            MemberStep::RemoveMatching(filter) => {
                let attribute = GROUP_RESOURCE.attribute(None, "members");
                let members = load_members(app, &client.tenant, group, None, true)?;
                let doomed = members
                    .into_iter()
                    .filter(|member| {
                        let element = serde_json::json!({
                            "value": member.id.to_string(),
                            "display": member.display.as_deref().unwrap_or_default(),
                            "type": "User",
                        });
                        filter::matches_element(filter, &element, &GROUP_RESOURCE, attribute)
                    })
                    .map(|member| member.id)
                    .collect();
                changes.push(MemberChange::Remove(doomed));
            }
        }
    }
    Ok(changes)
}

/// The group's profile after attribute operations, applied to its document without members;
/// `before` is the group as stored.
fn patched_profile(
    document: Value,
    operations: &[Operation],
    before: Option<&GroupProfile>,
) -> Result<GroupProfile, ScimError> {
    let Value::Object(mut document) = document else {
        return Err(ScimError::unavailable("group could not be rendered"));
    };
    patch::apply(&mut document, operations, &GROUP_RESOURCE)?;
    Ok(group_from_json(&Value::Object(document), before)?.profile)
}

/// A PATCH body applied to a group's rendered `document` (without members) by the handler's own
/// steps, short of the engine and the member store: the profile that would be written (`None`
/// when only members change), or the error the client would get. Member value filters are
/// parsed but not evaluated. For the robustness tests and fuzz targets.
pub fn dry_run_patch(body: &Value, document: Value) -> Result<Option<GroupProfile>, ScimError> {
    let operations = patch::parse_request(body, &GROUP_RESOURCE)?;
    super::users::refuse_removing_required(&operations, &GROUP_RESOURCE)?;
    let split = split_patch(operations)?;
    if split.attributes.is_empty() {
        return Ok(None);
    }
    patched_profile(document, &split.attributes, None).map(Some)
}

/// Runs an update of group `id` built from its current record, retrying when another write
/// lands in between (unless the client pinned a version with `If-Match`).
async fn update(
    app: &AppState,
    client: &ScimClient,
    id: GroupId,
    headers: &HeaderMap,
    build: impl Fn(&GroupRecord) -> Result<Command, ScimError>,
) -> Result<Executed, ScimError> {
    let if_match = header_value(headers, "if-match");
    for _ in 0..WRITE_ATTEMPTS {
        read_barrier(app).await?;
        let current = current_group(app, &client.tenant, id)?;
        if let Some(tags) = if_match
            && !etag_matches(tags, current.version)
        {
            return Err(ScimError::precondition_failed(format!(
                "group {id} is at version {}",
                etag(current.version)
            )));
        }
        let command = build(&current)?;
        match client.execute(app, command).await {
            Ok(executed) => return Ok(executed),
            Err(ExecuteError::Rejected(Rejection::VersionMismatch { .. }))
                if if_match.is_none() =>
            {
                // Read again once the write that won is in the views (see `wait_for_tenant`).
                app.wait_for_tenant(&client.tenant).await.scim()?;
            }
            Err(error) => return Err(error.into_scim_error()),
        }
    }
    Err(ScimError::unavailable(format!(
        "group {id} is changing too often to update; retry later"
    )))
}

/// The group as it is now, after a write (waits for the views). In a dry run, the group as the
/// write would leave it, without its members (the events show the membership changes).
async fn reread(
    app: &AppState,
    client: &ScimClient,
    id: GroupId,
    selection: &Selection,
    executed: &Executed,
) -> Result<Response, ScimError> {
    if client.dry_run.is_some() {
        let record = executed
            .state
            .group(&id)
            .ok_or_else(|| ScimError::not_found(format!("group {id} not found")))?;
        let body = selection.apply(
            render_group(record, None, &client.base_url),
            &GROUP_RESOURCE,
        );
        return Ok(respond(StatusCode::OK, record, &body, None));
    }
    read_barrier(app).await?;
    let record = current_group(app, &client.tenant, id)?;
    let body = present(app, client, &record, selection)?;
    Ok(respond(StatusCode::OK, &record, &body, None))
}

pub async fn replace(
    State(app): State<AppState>,
    client: ScimClient,
    Path((_, id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    ScimBody(body): ScimBody,
) -> Result<Response, ScimError> {
    let selection = Selection::from_query(&query_pairs(query.as_deref()))?;
    let id = parse_id(&id)?;
    let executed = update(&app, &client, id, &headers, |current| {
        let input = group_from_json(&body, Some(&current.profile))?;
        // A PUT without `members` leaves the members alone: an IdP renaming a group by PUT must
        // not wipe its membership. `"members": []` empties it.
        let member_changes: Vec<MemberChange> = input
            .members
            .map(MemberChange::Replace)
            .into_iter()
            .collect();
        Ok(Command::UpdateGroup {
            group_id: id,
            profile: Some(input.profile),
            member_changes,
            expected_version: Some(current.version),
        })
    })
    .await?;
    reread(&app, &client, id, &selection, &executed).await
}

pub async fn patch(
    State(app): State<AppState>,
    client: ScimClient,
    Path((_, id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    ScimBody(body): ScimBody,
) -> Result<Response, ScimError> {
    let pairs = query_pairs(query.as_deref());
    let selection = Selection::from_query(&pairs)?;
    let id = parse_id(&id)?;
    let operations = patch::parse_request(&body, &GROUP_RESOURCE)?;
    super::users::refuse_removing_required(&operations, &GROUP_RESOURCE)?;
    let split = split_patch(operations)?;
    let pinned = header_value(&headers, "if-match").is_some();
    let executed = if !pinned && let Some(member_changes) = split.edges_only() {
        // Edges commute with every other write and name their users by id: the engine decides
        // them against its aggregate (group and users must exist), so nothing is read from the
        // views first and the request never waits for the projections to catch up.
        client
            .execute(
                &app,
                Command::UpdateGroup {
                    group_id: id,
                    profile: None,
                    member_changes,
                    expected_version: None,
                },
            )
            .await
            .scim()?
    } else {
        update(&app, &client, id, &headers, |current| {
            let profile = if split.attributes.is_empty() {
                None
            } else {
                Some(patched_profile(
                    render_group(current, None, &client.base_url),
                    &split.attributes,
                    Some(&current.profile),
                )?)
            };
            // Member edges commute with concurrent writes; a version check is only needed when
            // the profile is rewritten from what was read, or when the client asked for one.
            let expected_version = (profile.is_some() || pinned).then_some(current.version);
            Ok(Command::UpdateGroup {
                group_id: id,
                profile,
                member_changes: member_changes(&app, &client, id, &split.members)?,
                expected_version,
            })
        })
        .await?
    };
    // Entra expects 204 and no member list; a body is sent only when attributes are asked for.
    if selection.is_empty() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    reread(&app, &client, id, &selection, &executed).await
}

pub async fn delete(
    State(app): State<AppState>,
    client: ScimClient,
    Path((_, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ScimError> {
    let id = parse_id(&id)?;
    let expected_version = match header_value(&headers, "if-match") {
        Some(tags) => {
            read_barrier(&app).await?;
            let current = current_group(&app, &client.tenant, id)?;
            if !etag_matches(tags, current.version) {
                return Err(ScimError::precondition_failed(format!(
                    "group {id} is at version {}",
                    etag(current.version)
                )));
            }
            Some(current.version)
        }
        None => None,
    };
    client
        .execute(
            &app,
            Command::DeleteGroup {
                group_id: id,
                expected_version,
            },
        )
        .await
        .scim()?;
    Ok(StatusCode::NO_CONTENT)
}

/// What a filter needs to know about members to be evaluated on a group.
enum MembersNeeded {
    None,
    /// Only whether these users are members.
    These(Vec<UserId>),
    All,
}

fn mentions_members(filter: &Filter) -> bool {
    match filter {
        Filter::Compare { path, .. } | Filter::Present(path) => path.is("members"),
        Filter::ValuePath { path, .. } => path.is("members"),
        Filter::And(left, right) | Filter::Or(left, right) => {
            mentions_members(left) || mentions_members(right)
        }
        Filter::Not(inner) => mentions_members(inner),
    }
}

/// Collects the ids a filter compares members with; `None` when it asks anything else of them.
fn member_ids_compared(filter: &Filter, ids: &mut Vec<UserId>) -> Option<()> {
    match filter {
        Filter::Compare {
            path,
            op: CompareOp::Eq,
            value: Literal::String(value),
        } if path.is("members") && (path.sub.is_none() || path.is_sub("members", "value")) => {
            if let Ok(id) = Uuid::parse_str(value) {
                ids.push(UserId(id));
            }
            Some(())
        }
        Filter::ValuePath { path, filter } if path.is("members") => {
            ids.extend(ids_named(filter)?);
            Some(())
        }
        Filter::Compare { path, .. } | Filter::Present(path) | Filter::ValuePath { path, .. } => {
            (!path.is("members")).then_some(())
        }
        Filter::And(left, right) | Filter::Or(left, right) => {
            member_ids_compared(left, ids)?;
            member_ids_compared(right, ids)
        }
        Filter::Not(inner) => member_ids_compared(inner, ids),
    }
}

fn members_needed(filter: &Filter) -> MembersNeeded {
    if !mentions_members(filter) {
        return MembersNeeded::None;
    }
    let mut ids = Vec::new();
    match member_ids_compared(filter, &mut ids) {
        Some(()) => MembersNeeded::These(ids),
        None => MembersNeeded::All,
    }
}

/// Groups a filter can match, found by index: `id`, `displayName` and `externalId` equality,
/// and membership of a given user (`members[value eq "…"]`, `members eq "…"`).
fn candidates(
    filter: &Filter,
    app: &AppState,
    tenant: &TenantName,
) -> Result<Option<Vec<GroupId>>, ScimError> {
    let store = app.directory.store();
    match filter {
        Filter::Compare {
            path,
            op: CompareOp::Eq,
            value: Literal::String(value),
        } if path.urn.is_none()
            || path
                .urn
                .as_deref()
                .is_some_and(|urn| urn.eq_ignore_ascii_case(GROUP_RESOURCE.core.id)) =>
        {
            if path.is("id") && path.sub.is_none() {
                return Ok(Some(
                    Uuid::parse_str(value).map(GroupId).into_iter().collect(),
                ));
            }
            if path.is("displayName") && path.sub.is_none() {
                return Ok(Some(
                    store
                        .group_id_by_name(tenant, &fold(value))
                        .map_err(store_unavailable)?
                        .into_iter()
                        .collect(),
                ));
            }
            if path.is("externalId") && path.sub.is_none() {
                return Ok(Some(
                    app.directory
                        .groups_by_external_id(tenant, value)
                        .map_err(store_unavailable)?,
                ));
            }
            if path.is("members") && (path.sub.is_none() || path.is_sub("members", "value")) {
                return groups_of(app, tenant, value).map(Some);
            }
            Ok(None)
        }
        Filter::ValuePath { path, filter } if path.is("members") => match ids_named(filter) {
            Some(ids) if ids.len() == 1 => groups_of(app, tenant, &ids[0].to_string()).map(Some),
            _ => Ok(None),
        },
        Filter::And(left, right) => match candidates(left, app, tenant)? {
            Some(found) => Ok(Some(found)),
            None => candidates(right, app, tenant),
        },
        _ => Ok(None),
    }
}

fn groups_of(app: &AppState, tenant: &TenantName, user: &str) -> Result<Vec<GroupId>, ScimError> {
    let Ok(user) = Uuid::parse_str(user) else {
        return Ok(Vec::new());
    };
    app.directory
        .store()
        .groups_of_user(tenant, &UserId(user))
        .map_err(store_unavailable)
}

pub async fn list(
    State(app): State<AppState>,
    client: ScimClient,
    RawQuery(query): RawQuery,
) -> Result<Response, ScimError> {
    let search = ListQuery::from_query(&query_pairs(query.as_deref()))?.search(&GROUP_RESOURCE)?;
    read_barrier(&app).await?;
    groups_list_response(&app, &client, &search)
}

/// The ListResponse of a groups list or search (after the read barrier): index or cursor paged.
/// A ListResponse's head for a page of `items` resources sent after it.
fn without_resources(mut head: Value, items: usize) -> Value {
    head["itemsPerPage"] = items.into();
    if let Some(fields) = head.as_object_mut() {
        fields.remove("Resources");
    }
    head
}

/// The groups are rendered (with their members) one at a time as the response is sent, so a
/// page of large groups never sits in memory whole.
pub fn groups_list_response(
    app: &AppState,
    client: &ScimClient,
    search: &Search,
) -> Result<Response, ScimError> {
    let render = page_renderer(app, client, search);
    if let Some(cursor) = &search.cursor {
        let (page, records) = cursor_groups(app, client, search, cursor)?;
        let head = without_resources(cursor_response(page), records.len());
        return Ok(streamed::list_response(head, records, render));
    }
    let (total, page) = search_group_records(app, client, search)?;
    let records: Vec<GroupRecord> = page.into_iter().map(|(_, record)| record).collect();
    let head = without_resources(
        list_response(total, search.start_index, Vec::new()),
        records.len(),
    );
    Ok(streamed::list_response(head, records, render))
}

/// Whether a group matches the search's filter, with members loaded as far as it needs them.
fn group_matches(
    app: &AppState,
    client: &ScimClient,
    search: &Search,
    members_needed: &MembersNeeded,
    record: &GroupRecord,
) -> Result<bool, ScimError> {
    let Some(filter) = &search.filter else {
        return Ok(true);
    };
    let tenant = &client.tenant;
    let members = match members_needed {
        MembersNeeded::None => None,
        MembersNeeded::These(ids) => Some(load_members(app, tenant, record.id, Some(ids), true)?),
        MembersNeeded::All => Some(load_members(app, tenant, record.id, None, true)?),
    };
    let document = render_group(record, members.as_deref(), &client.base_url);
    Ok(filter::matches(filter, &document, &GROUP_RESOURCE))
}

/// One cursor page (RFC 9865) of a search over the tenant's groups, in id order after the
/// cursor's group (see `users::cursor_users`).
/// One cursor page of groups: its ListResponse without `Resources` (`itemsPerPage` counted), and
/// its groups, to render as they are sent.
fn cursor_groups(
    app: &AppState,
    client: &ScimClient,
    search: &Search,
    cursor: &str,
) -> Result<(CursorPage, Vec<GroupRecord>), ScimError> {
    let after = cursor::decode(CursorKind::Groups, cursor)?.map(|id| GroupId(Uuid::from_bytes(id)));
    let store = app.directory.store();
    let tenant = &client.tenant;
    let members_needed = match &search.filter {
        Some(filter) => members_needed(filter),
        None => MembersNeeded::None,
    };
    let matches =
        |record: &GroupRecord| group_matches(app, client, search, &members_needed, record);
    let found = match &search.filter {
        Some(filter) => candidates(filter, app, tenant)?,
        None => None,
    };
    let (total, records, more) = match found {
        Some(ids) => {
            let load = |id: &_| store.group(tenant, id).map_err(store_unavailable);
            let (total, records, more) =
                cursor::collect_candidates(ids, after, search.count, load, matches)?;
            (Some(total), records, more)
        }
        None => {
            let total = match search.filter {
                None => Some(
                    store
                        .tenant(tenant)
                        .map_err(store_unavailable)?
                        .map_or(0, |tenant| tenant.group_count as usize),
                ),
                Some(_) => None,
            };
            let records = store
                .groups_after(tenant, after)
                .map(|record| record.map_err(store_unavailable));
            let (records, more) = cursor::collect(records, search.count, matches)?;
            (total, records, more)
        }
    };
    let next = match records.last() {
        Some(last) if more => Some(cursor::encode(CursorKind::Groups, last.id.as_bytes())),
        _ => None,
    };
    let page = CursorPage {
        total,
        resources: Vec::new(),
        next,
    };
    Ok((page, records))
}

/// Runs a validated search over the tenant's groups (after the read barrier): every match
/// counted, the page rendered with the selection, with sort keys when sorting.
pub fn search_groups(
    app: &AppState,
    client: &ScimClient,
    search: &Search,
) -> Result<Found, ScimError> {
    let (total, records) = search_group_records(app, client, search)?;
    let page = records
        .into_iter()
        .map(|(key, record)| Ok((key, present(app, client, &record, &search.selection)?)))
        .collect::<Result<_, ScimError>>()?;
    Ok((total, page))
}

/// The matches of a search over the tenant's groups, counted, and the page's records (with sort
/// keys when sorting), not rendered yet.
fn search_group_records(
    app: &AppState,
    client: &ScimClient,
    search: &Search,
) -> Result<Found<GroupRecord>, ScimError> {
    let store = app.directory.store();
    let tenant = &client.tenant;
    let found = match &search.filter {
        Some(filter) => candidates(filter, app, tenant)?,
        None => None,
    };
    if search.filter.is_none() && search.sort.is_none() {
        // Every group, in creation order: the page is read straight from the store.
        let total = store
            .tenant(tenant)
            .map_err(store_unavailable)?
            .map_or(0, |tenant| tenant.group_count as usize);
        let mut page = Vec::new();
        if search.count > 0 {
            for record in app
                .directory
                .groups_skipping(tenant, search.start_index - 1)
                .map_err(store_unavailable)?
                .take(search.count)
            {
                page.push((None, record.map_err(store_unavailable)?));
            }
        }
        return Ok((total, page));
    }
    // Members are read only as far as the filter or the sort needs them.
    let members_needed = match &search.filter {
        _ if search
            .sort
            .as_ref()
            .is_some_and(|sort| sort.names("members")) =>
        {
            MembersNeeded::All
        }
        Some(filter) => members_needed(filter),
        None => MembersNeeded::None,
    };
    let mut pager = Pager::new(search.window(), search.sort.as_ref());
    let mut consider = |record: GroupRecord| -> Result<(), ScimError> {
        let members = match &members_needed {
            MembersNeeded::None => None,
            MembersNeeded::These(ids) => {
                Some(load_members(app, tenant, record.id, Some(ids), true)?)
            }
            MembersNeeded::All => Some(load_members(app, tenant, record.id, None, true)?),
        };
        let document = render_group(&record, members.as_deref(), &client.base_url);
        if let Some(filter) = &search.filter
            && !filter::matches(filter, &document, &GROUP_RESOURCE)
        {
            return Ok(());
        }
        if pager.wants_next() {
            let key = search
                .sort
                .as_ref()
                .map(|sort| sort.key(&document, &GROUP_RESOURCE));
            pager.offer(record, key);
        } else {
            pager.skip();
        }
        Ok(())
    };
    match found {
        Some(mut ids) => {
            ids.sort();
            ids.dedup();
            for id in ids {
                if let Some(record) = store.group(tenant, &id).map_err(store_unavailable)? {
                    consider(record)?;
                }
            }
        }
        None => {
            for record in store.groups_after(tenant, None) {
                consider(record.map_err(store_unavailable)?)?;
            }
        }
    }
    Ok(pager.finish())
}
