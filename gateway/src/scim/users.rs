//! `/Users`: create, read, list with filters, replace, patch and delete.
//!
//! Reads come from the directory view after the read-your-writes barrier. Replace and patch are
//! read-modify-write guarded by the user's version: when another write lands in between, the
//! handler reads again and retries, unless the client pinned a version with `If-Match`, which then
//! fails with 412.

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use roster_engine::domain::{
    Command, Rejection, TenantName, UserId, UserProfile, UserRecord, fold,
};
use roster_engine::engine::ExecuteError;
use serde_json::Value;
use uuid::Uuid;

use super::error::{IntoScimError, ScimError, ScimResult};
use super::http::{
    ScimBody, ScimClient, header_value, not_found_on, not_modified, query_pairs, read_barrier,
    scim_response, store_unavailable, with_resource_headers,
};
use super::user::{UserGroup, profile_from_json, render_user};
use crate::state::AppState;
use roster_scim::cursor::{self, CursorKind, CursorPage, cursor_response};
use roster_scim::filter::{self, CompareOp, Filter, Literal};
use roster_scim::list::{ListQuery, Search, Selection, list_response};
use roster_scim::patch;
use roster_scim::resource::{etag, etag_matches};
use roster_scim::schema::{ROSTER_USER_SCHEMA, ResourceSchema, USER_RESOURCE};
use roster_scim::sort::{Found, Pager};

/// Attempts of a read-modify-write before giving up under contention.
pub(crate) const WRITE_ATTEMPTS: usize = 8;

fn parse_id(id: &str) -> Result<UserId, ScimError> {
    Uuid::parse_str(id)
        .map(UserId)
        .map_err(|_| ScimError::not_found(format!("user {id} not found")))
}

fn current_user(app: &AppState, client: &ScimClient, id: UserId) -> Result<UserRecord, ScimError> {
    app.directory
        .store()
        .user(&client.tenant, &id)
        .map_err(store_unavailable)?
        .ok_or_else(|| not_found_on(app, &client.tenant, format!("user {id} not found")))
}

/// The groups a user belongs to, with their displayName, for the read-only `groups` attribute.
fn user_groups(
    app: &AppState,
    tenant: &TenantName,
    user: UserId,
) -> Result<Vec<UserGroup>, ScimError> {
    let store = app.directory.store();
    let mut groups = Vec::new();
    for group in store
        .groups_of_user(tenant, &user)
        .map_err(store_unavailable)?
    {
        if let Some(record) = store.group(tenant, &group).map_err(store_unavailable)? {
            groups.push(UserGroup {
                id: group.to_string(),
                display: record.profile.display_name,
            });
        }
    }
    Ok(groups)
}

/// A user rendered for a response: `groups` loaded only when the selection returns them.
fn present(
    app: &AppState,
    client: &ScimClient,
    record: &UserRecord,
    selection: &Selection,
) -> Result<Value, ScimError> {
    let groups = if selection.includes("groups") {
        Some(user_groups(app, &client.tenant, record.id)?)
    } else {
        None
    };
    Ok(selection.apply(
        render_user(record, groups.as_deref(), &client.base_url),
        &USER_RESOURCE,
    ))
}

fn respond_user(
    status: StatusCode,
    record: &UserRecord,
    rendered: Value,
    client: &ScimClient,
    location: bool,
) -> Response {
    let location_url = format!("{}/Users/{}", client.base_url, record.id);
    with_resource_headers(
        scim_response(status, &rendered),
        &etag(record.version),
        location.then_some(location_url.as_str()),
    )
}

pub async fn create(
    State(app): State<AppState>,
    client: ScimClient,
    RawQuery(query): RawQuery,
    ScimBody(body): ScimBody,
) -> Result<Response, ScimError> {
    let selection = Selection::from_query(&query_pairs(query.as_deref()))?;
    let profile = profile_from_json(&body, true, None)?;
    let user_id = UserId(Uuid::now_v7());
    let executed = client
        .execute(&app, Command::ProvisionUser { user_id, profile })
        .await
        .scim()?;
    let record = executed
        .state
        .user(&user_id)
        .ok_or_else(|| ScimError::unavailable("the created user could not be read back"))?;
    let rendered = selection.apply(
        render_user(record, Some(&[]), &client.base_url),
        &USER_RESOURCE,
    );
    Ok(respond_user(
        StatusCode::CREATED,
        record,
        rendered,
        &client,
        true,
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
    let record = current_user(&app, &client, id)?;
    if let Some(tags) = header_value(&headers, "if-none-match")
        && etag_matches(tags, record.version)
    {
        return Ok(not_modified(&etag(record.version)));
    }
    let rendered = present(&app, &client, &record, &selection)?;
    Ok(respond_user(
        StatusCode::OK,
        &record,
        rendered,
        &client,
        false,
    ))
}

/// Runs a read-modify-write of user `id`: `modify` turns the current record into a command.
async fn read_modify_write(
    app: &AppState,
    client: &ScimClient,
    id: UserId,
    headers: &HeaderMap,
    modify: impl Fn(&UserRecord) -> Result<Command, ScimError>,
) -> Result<UserRecord, ScimError> {
    let if_match = header_value(headers, "if-match");
    for _ in 0..WRITE_ATTEMPTS {
        read_barrier(app).await?;
        let current = current_user(app, client, id)?;
        if let Some(tags) = if_match
            && !etag_matches(tags, current.version)
        {
            return Err(ScimError::precondition_failed(format!(
                "user {id} is at version {}",
                etag(current.version)
            )));
        }
        let command = modify(&current)?;
        match client.execute(app, command).await {
            Ok(executed) => {
                return executed
                    .state
                    .user(&id)
                    .cloned()
                    .ok_or_else(|| ScimError::not_found(format!("user {id} not found")));
            }
            Err(ExecuteError::Rejected(Rejection::VersionMismatch { actual, .. }))
                if if_match.is_none() =>
            {
                tracing::debug!(%id, actual, "user changed during the update; retrying");
                app.wait_for_tenant(&client.tenant).await.scim()?;
            }
            Err(error) => return Err(error.into_scim_error()),
        }
    }
    Err(ScimError::unavailable(format!(
        "user {id} is changing too often to update; retry later"
    )))
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
    let record = read_modify_write(&app, &client, id, &headers, |current| {
        Ok(Command::ReplaceUser {
            user_id: id,
            profile: profile_from_json(&body, current.profile.active, Some(&current.profile))?,
            expected_version: Some(current.version),
        })
    })
    .await?;
    let rendered = present(&app, &client, &record, &selection)?;
    Ok(respond_user(
        StatusCode::OK,
        &record,
        rendered,
        &client,
        false,
    ))
}

pub async fn patch(
    State(app): State<AppState>,
    client: ScimClient,
    Path((_, id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    ScimBody(body): ScimBody,
) -> Result<Response, ScimError> {
    let selection = Selection::from_query(&query_pairs(query.as_deref()))?;
    let id = parse_id(&id)?;
    let operations = patch::parse_request(&body, &USER_RESOURCE)?;
    refuse_removing_required(&operations, &USER_RESOURCE)?;
    let record = read_modify_write(&app, &client, id, &headers, |current| {
        let document = render_user(current, None, &client.base_url);
        Ok(Command::ReplaceUser {
            user_id: id,
            profile: patched_profile(
                document,
                &operations,
                current.profile.active,
                Some(&current.profile),
            )?,
            expected_version: Some(current.version),
        })
    })
    .await?;
    let rendered = present(&app, &client, &record, &selection)?;
    Ok(respond_user(
        StatusCode::OK,
        &record,
        rendered,
        &client,
        false,
    ))
}

/// A required attribute (`userName` and `active` of a user, a group's `displayName`) always has
/// a value: removing it is refused with `mutability` (RFC 7644 §3.5.2.2).
pub(crate) fn refuse_removing_required(
    operations: &[patch::Operation],
    schema: &ResourceSchema,
) -> Result<(), ScimError> {
    for operation in operations {
        if operation.op != patch::Op::Remove {
            continue;
        }
        let Some(path) = &operation.path else {
            continue;
        };
        if path.urn.is_some() || path.filter.is_some() || path.sub.is_some() {
            continue;
        }
        if let Some(attribute) = schema.core.attribute(&path.name)
            && attribute.required
        {
            return Err(ScimError::mutability(format!(
                "{} is required and cannot be removed; replace it instead",
                attribute.name
            )));
        }
    }
    Ok(())
}

/// The profile of a user after a PATCH: `document` (the user as rendered) with `operations`
/// applied, read back as a body against `before`, the user as stored; `active` stays
/// `default_active` unless set.
fn patched_profile(
    document: Value,
    operations: &[patch::Operation],
    default_active: bool,
    before: Option<&UserProfile>,
) -> Result<UserProfile, ScimError> {
    let Value::Object(mut document) = document else {
        return Err(ScimError::unavailable("user could not be rendered"));
    };
    patch::apply(&mut document, operations, &USER_RESOURCE)?;
    profile_from_json(&Value::Object(document), default_active, before)
}

/// A PATCH body applied to a user's rendered `document` by the handler's own steps, short of the
/// engine: the profile that would be written, or the error the client would get. For the
/// robustness tests and fuzz targets.
pub fn dry_run_patch(
    body: &Value,
    document: Value,
    default_active: bool,
) -> Result<UserProfile, ScimError> {
    let operations = patch::parse_request(body, &USER_RESOURCE)?;
    refuse_removing_required(&operations, &USER_RESOURCE)?;
    patched_profile(document, &operations, default_active, None)
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
            let current = current_user(&app, &client, id)?;
            if !etag_matches(tags, current.version) {
                return Err(ScimError::precondition_failed(format!(
                    "user {id} is at version {}",
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
            Command::DeleteUser {
                user_id: id,
                expected_version,
            },
        )
        .await
        .scim()?;
    Ok(StatusCode::NO_CONTENT)
}

/// How a filter's candidates are found.
#[derive(Debug, PartialEq)]
enum Plan {
    /// Walk every user of the tenant, in id order.
    Scan,
    /// Only these users can match.
    Candidates(Vec<UserId>),
}

/// Picks an index for a user filter: an `eq` on `id`, `userName`, `externalId` or an email
/// value, alone or as one term of an `and`.
fn plan(filter: &Filter, app: &AppState, client: &ScimClient) -> Result<Plan, ScimError> {
    let store = app.directory.store();
    let unavailable = store_unavailable;
    match filter {
        Filter::Compare {
            path,
            op: CompareOp::Eq,
            value: Literal::String(value),
        } if path.urn.is_none()
            || path
                .urn
                .as_deref()
                .is_some_and(|urn| urn.eq_ignore_ascii_case(USER_RESOURCE.core.id)) =>
        {
            if path.is("id") && path.sub.is_none() {
                return Ok(Plan::Candidates(
                    Uuid::parse_str(value).map(UserId).into_iter().collect(),
                ));
            }
            if path.is("userName") && path.sub.is_none() {
                let owner = store
                    .user_id_by_name(&client.tenant, &fold(value))
                    .map_err(unavailable)?;
                return Ok(Plan::Candidates(owner.into_iter().collect()));
            }
            if path.is("externalId") && path.sub.is_none() {
                // Every holder: externalIds need not be unique (RFC 7643 §3.1).
                let holders = store
                    .user_ids_by_external_id(&client.tenant, value)
                    .map_err(unavailable)?;
                return Ok(Plan::Candidates(holders));
            }
            if path.is_sub("emails", "value") {
                return email_candidates(app, client, value);
            }
            Ok(Plan::Scan)
        }
        // The handle: one candidate from the handle index.
        Filter::Compare {
            path,
            op: CompareOp::Eq,
            value: Literal::String(value),
        } if path
            .urn
            .as_deref()
            .is_some_and(|urn| urn.eq_ignore_ascii_case(ROSTER_USER_SCHEMA))
            && path.is("handle")
            && path.sub.is_none() =>
        {
            let owner = store
                .user_id_by_handle(&client.tenant, value)
                .map_err(unavailable)?;
            Ok(Plan::Candidates(owner.into_iter().collect()))
        }
        Filter::ValuePath { path, filter } if path.is("emails") => match email_in(filter) {
            Some(value) => email_candidates(app, client, value),
            None => Ok(Plan::Scan),
        },
        Filter::And(left, right) => match plan(left, app, client)? {
            Plan::Scan => plan(right, app, client),
            candidates => Ok(candidates),
        },
        _ => Ok(Plan::Scan),
    }
}

/// The `value eq "x"` term inside an `emails[...]` filter, if any.
fn email_in(filter: &Filter) -> Option<&str> {
    match filter {
        Filter::Compare {
            path,
            op: CompareOp::Eq,
            value: Literal::String(value),
        } if path.is("value") && path.sub.is_none() => Some(value),
        Filter::And(left, right) => email_in(left).or_else(|| email_in(right)),
        _ => None,
    }
}

fn email_candidates(app: &AppState, client: &ScimClient, email: &str) -> Result<Plan, ScimError> {
    let mut users: Vec<UserId> = app
        .directory
        .users_by_email(&client.tenant, email)
        .map_err(store_unavailable)?
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    users.dedup();
    Ok(Plan::Candidates(users))
}

pub async fn list(
    State(app): State<AppState>,
    client: ScimClient,
    RawQuery(query): RawQuery,
) -> Result<Response, ScimError> {
    let search = ListQuery::from_query(&query_pairs(query.as_deref()))?.search(&USER_RESOURCE)?;
    read_barrier(&app).await?;
    Ok(scim_response(
        StatusCode::OK,
        &users_list_response(&app, &client, &search)?,
    ))
}

/// The ListResponse of a users list or search (after the read barrier): index or cursor paged.
pub fn users_list_response(
    app: &AppState,
    client: &ScimClient,
    search: &Search,
) -> Result<Value, ScimError> {
    if let Some(cursor) = &search.cursor {
        return Ok(cursor_response(cursor_users(app, client, search, cursor)?));
    }
    let (total, page) = search_users(app, client, search)?;
    let resources = page.into_iter().map(|(_, user)| user).collect();
    Ok(list_response(total, search.start_index, resources))
}

/// One cursor page (RFC 9865) of a search over the tenant's users: the matches in id order after
/// the cursor's user. `totalResults` is given unless the filter needs a scan of every user.
fn cursor_users(
    app: &AppState,
    client: &ScimClient,
    search: &Search,
    cursor: &str,
) -> Result<CursorPage, ScimError> {
    let after = cursor::decode(CursorKind::Users, cursor)?.map(|id| UserId(Uuid::from_bytes(id)));
    let store = app.directory.store();
    let tenant = &client.tenant;
    let needs_groups = search.mentions("groups");
    let matches = |record: &UserRecord| -> Result<bool, ScimError> {
        let Some(filter) = &search.filter else {
            return Ok(true);
        };
        let groups = if needs_groups {
            Some(user_groups(app, tenant, record.id)?)
        } else {
            None
        };
        let document = render_user(record, groups.as_deref(), &client.base_url);
        Ok(filter::matches(filter, &document, &USER_RESOURCE))
    };
    let plan = match &search.filter {
        Some(filter) => plan(filter, app, client)?,
        None => Plan::Scan,
    };
    let (total, records, more) = match plan {
        Plan::Candidates(ids) => {
            let load = |id: &_| store.user(tenant, id).map_err(store_unavailable);
            let (total, records, more) =
                cursor::collect_candidates(ids, after, search.count, load, matches)?;
            (Some(total), records, more)
        }
        Plan::Scan => {
            let total = match search.filter {
                None => Some(
                    store
                        .tenant(tenant)
                        .map_err(store_unavailable)?
                        .map_or(0, |tenant| tenant.user_count as usize),
                ),
                Some(_) => None,
            };
            let records = store
                .users_after(tenant, after)
                .map(|record| record.map_err(store_unavailable));
            let (records, more) = cursor::collect(records, search.count, matches)?;
            (total, records, more)
        }
    };
    let next = match records.last() {
        Some(last) if more => Some(cursor::encode(CursorKind::Users, last.id.as_bytes())),
        _ => None,
    };
    let resources = records
        .iter()
        .map(|record| present(app, client, record, &search.selection))
        .collect::<Result<_, _>>()?;
    Ok(CursorPage {
        total,
        resources,
        next,
    })
}

/// Runs a validated search over the tenant's users (after the read barrier): every match
/// counted, the page rendered with the selection, with sort keys when sorting.
pub fn search_users(
    app: &AppState,
    client: &ScimClient,
    search: &Search,
) -> Result<Found, ScimError> {
    let store = app.directory.store();
    let tenant = &client.tenant;
    if search.filter.is_none() && search.sort.is_none() {
        // Every user, in creation order: the page is read straight from the store.
        let total = store
            .tenant(tenant)
            .map_err(store_unavailable)?
            .map_or(0, |tenant| tenant.user_count as usize);
        let mut page = Vec::new();
        if search.count > 0 {
            for record in app
                .directory
                .users_skipping(tenant, search.start_index - 1)
                .map_err(store_unavailable)?
                .take(search.count)
            {
                let record = record.map_err(store_unavailable)?;
                page.push((None, present(app, client, &record, &search.selection)?));
            }
        }
        return Ok((total, page));
    }
    // A filter or sort on `groups` needs them in the document it is evaluated on.
    let needs_groups = search.mentions("groups");
    let mut pager = Pager::new(search.window(), search.sort.as_ref());
    let mut consider = |record: UserRecord| -> Result<(), ScimError> {
        let groups = if needs_groups {
            Some(user_groups(app, tenant, record.id)?)
        } else {
            None
        };
        let document = render_user(&record, groups.as_deref(), &client.base_url);
        if let Some(filter) = &search.filter
            && !filter::matches(filter, &document, &USER_RESOURCE)
        {
            return Ok(());
        }
        if pager.wants_next() {
            let key = search
                .sort
                .as_ref()
                .map(|sort| sort.key(&document, &USER_RESOURCE));
            pager.offer(record, key);
        } else {
            pager.skip();
        }
        Ok(())
    };
    let plan = match &search.filter {
        Some(filter) => plan(filter, app, client)?,
        None => Plan::Scan,
    };
    match plan {
        Plan::Candidates(mut ids) => {
            ids.sort();
            ids.dedup();
            for id in ids {
                if let Some(record) = store.user(tenant, &id).map_err(store_unavailable)? {
                    consider(record)?;
                }
            }
        }
        Plan::Scan => {
            for record in store.users_after(tenant, None) {
                consider(record.map_err(store_unavailable)?)?;
            }
        }
    }
    let (total, records) = pager.finish();
    let page = records
        .into_iter()
        .map(|(key, record)| Ok((key, present(app, client, &record, &search.selection)?)))
        .collect::<Result<_, ScimError>>()?;
    Ok((total, page))
}
