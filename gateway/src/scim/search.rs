//! `POST .search` (RFC 7644 §3.4.3): the list query as a JSON `SearchRequest`, on `/Users`,
//! `/Groups`, and at the tenant root, where it searches both and returns users then groups (or
//! both merged in `sortBy` order). Cursor paging (RFC 9865) is offered on `/Users` and `/Groups`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;

use super::error::ScimError;
use super::groups::{groups_list_response, search_groups};
use super::http::{ScimBody, ScimClient, read_barrier, scim_response};
use super::users::{search_users, users_list_response};
use crate::state::AppState;
use roster_scim::list::{ListQuery, list_response};
use roster_scim::schema::{GROUP_RESOURCE, USER_RESOURCE};
use roster_scim::sort::{SortKey, compare_keys};

pub async fn users(
    State(app): State<AppState>,
    client: ScimClient,
    ScimBody(body): ScimBody,
) -> Result<Response, ScimError> {
    let search = ListQuery::from_search_request(&body)?.search(&USER_RESOURCE)?;
    read_barrier(&app).await?;
    Ok(scim_response(
        StatusCode::OK,
        &users_list_response(&app, &client, &search)?,
    ))
}

pub async fn groups(
    State(app): State<AppState>,
    client: ScimClient,
    ScimBody(body): ScimBody,
) -> Result<Response, ScimError> {
    let search = ListQuery::from_search_request(&body)?.search(&GROUP_RESOURCE)?;
    read_barrier(&app).await?;
    groups_list_response(&app, &client, &search)
}

/// Both resource types. A filter (or `sortBy`) that only one of them understands searches that
/// one; one that neither understands is refused with the users' error.
pub async fn root(
    State(app): State<AppState>,
    client: ScimClient,
    ScimBody(body): ScimBody,
) -> Result<Response, ScimError> {
    let query = ListQuery::from_search_request(&body)?;
    if query.cursor.is_some() {
        return Err(ScimError::invalid_value(
            "cursor paging is offered on /Users/.search and /Groups/.search; page a search of \
             both resource types with startIndex",
        ));
    }
    let on_users = query.search(&USER_RESOURCE);
    let on_groups = query.search(&GROUP_RESOURCE);
    let (on_users, on_groups) = match (on_users, on_groups) {
        (Err(error), Err(_)) => return Err(error),
        (users, groups) => (users.ok(), groups.ok()),
    };
    read_barrier(&app).await?;
    let start = query.start_index - 1;
    let end = start.saturating_add(query.count);
    let sorting = on_users
        .as_ref()
        .or(on_groups.as_ref())
        .and_then(|search| search.sort.as_ref())
        .map(|sort| sort.descending);
    // Each type's first `end` matches are enough to cut the combined page.
    let mut entries: Vec<(Option<SortKey>, Value)> = Vec::new();
    let mut total = 0;
    if let Some(mut search) = on_users {
        search.start_index = 1;
        search.count = end;
        let (found, page) = search_users(&app, &client, &search)?;
        total += found;
        entries.extend(page);
    }
    if let Some(mut search) = on_groups {
        search.start_index = 1;
        search.count = end;
        let (found, page) = search_groups(&app, &client, &search)?;
        total += found;
        entries.extend(page);
    }
    if let Some(descending) = sorting {
        // Stable: equal keys keep users before groups, each in creation order.
        entries.sort_by(|(left, _), (right, _)| match (left, right) {
            (Some(left), Some(right)) => compare_keys(left, right, descending),
            _ => std::cmp::Ordering::Equal,
        });
    }
    let resources = entries
        .into_iter()
        .skip(start)
        .take(query.count)
        .map(|(_, resource)| resource)
        .collect();
    Ok(scim_response(
        StatusCode::OK,
        &list_response(total, query.start_index, resources),
    ))
}
