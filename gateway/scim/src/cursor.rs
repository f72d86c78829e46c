//! Cursor paging (RFC 9865): the `cursor` parameter, `nextCursor`, and the opaque cursors.
//!
//! A cursor is the id of the last resource of the page before, so the next page resumes after
//! it in id order (creation order for UUIDv7 ids): `r1` (a version tag), `u` or `g` (the resource
//! type it was issued for), then the 16 bytes of the id in lowercase hex, all RFC 3986
//! unreserved characters. A cursor keeps working whatever happens in between: a deleted last
//! resource still marks a position, so cursors never expire (no `cursorTimeout` is advertised).
//! Each resource is returned at most once by a walk, and every resource that exists for the
//! whole walk is returned. Paging through everything costs one pass over the listing.

use serde_json::{Value, json};

use crate::error::ScimError;
use crate::schema::LIST_RESPONSE_SCHEMA;

const VERSION: &str = "r1";

/// The resource type a cursor pages through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CursorKind {
    Users,
    Groups,
}

impl CursorKind {
    fn tag(self) -> char {
        match self {
            CursorKind::Users => 'u',
            CursorKind::Groups => 'g',
        }
    }
}

/// The cursor of the page after the resource `last`.
pub fn encode(kind: CursorKind, last: &[u8; 16]) -> String {
    format!("{VERSION}{}{}", kind.tag(), hex::encode(last))
}

/// Reads a `cursor` parameter: `None` for the empty cursor of the first page, else the id to
/// resume after. Anything this server did not issue for `kind` is `invalidCursor`.
pub fn decode(kind: CursorKind, text: &str) -> Result<Option<[u8; 16]>, ScimError> {
    if text.is_empty() {
        return Ok(None);
    }
    let invalid = || {
        ScimError::invalid_cursor(
            "the cursor was not issued by this endpoint; send an empty cursor for the first page \
             and then each response's nextCursor",
        )
    };
    let rest = text.strip_prefix(VERSION).ok_or_else(invalid)?;
    let rest = rest.strip_prefix(kind.tag()).ok_or_else(invalid)?;
    if rest.len() != 32 || rest.bytes().any(|byte| byte.is_ascii_uppercase()) {
        return Err(invalid());
    }
    let mut id = [0u8; 16];
    hex::decode_to_slice(rest, &mut id).map_err(|_| invalid())?;
    Ok(Some(id))
}

/// Takes the first `count` records that `keep` accepts, and says whether another follows.
pub fn collect<T>(
    records: impl Iterator<Item = Result<T, ScimError>>,
    count: usize,
    mut keep: impl FnMut(&T) -> Result<bool, ScimError>,
) -> Result<(Vec<T>, bool), ScimError> {
    let mut page = Vec::new();
    for record in records {
        let record = record?;
        if !keep(&record)? {
            continue;
        }
        if page.len() == count {
            return Ok((page, true));
        }
        page.push(record);
    }
    Ok((page, false))
}

/// A cursor page drawn from candidates (the ids an index found for a filter): every candidate
/// that `load` still finds and `keep` accepts counts towards the total, and the page holds the
/// first `count` of them after the cursor's id `after`, in id order. Returns the total, the page,
/// and whether another match follows it.
pub fn collect_candidates<Id: Ord + Copy, T>(
    mut ids: Vec<Id>,
    after: Option<Id>,
    count: usize,
    mut load: impl FnMut(&Id) -> Result<Option<T>, ScimError>,
    mut keep: impl FnMut(&T) -> Result<bool, ScimError>,
) -> Result<(usize, Vec<T>, bool), ScimError> {
    ids.sort();
    ids.dedup();
    let mut total = 0;
    let mut page = Vec::new();
    let mut more = false;
    for id in ids {
        let Some(record) = load(&id)? else {
            continue;
        };
        if !keep(&record)? {
            continue;
        }
        total += 1;
        if after.is_some_and(|after| id <= after) {
            continue;
        }
        if page.len() < count {
            page.push(record);
        } else {
            more = true;
        }
    }
    Ok((total, page, more))
}

/// One page of a cursor search.
#[derive(Debug)]
pub struct CursorPage {
    /// Every match, when known without reading the whole listing (RFC 9865 lets a provider that
    /// cannot tell leave `totalResults` out).
    pub total: Option<usize>,
    pub resources: Vec<Value>,
    /// The cursor of the next page; `None` on the last page.
    pub next: Option<String>,
}

/// The ListResponse of a cursor page: `nextCursor` unless it is the last page, no `startIndex`.
pub fn cursor_response(page: CursorPage) -> Value {
    let mut response = json!({
        "schemas": [LIST_RESPONSE_SCHEMA],
        "itemsPerPage": page.resources.len(),
    });
    if let Some(total) = page.total {
        response["totalResults"] = json!(total);
    }
    if let Some(next) = page.next {
        response["nextCursor"] = json!(next);
    }
    response["Resources"] = Value::Array(page.resources);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_only_for_its_resource_type() {
        let id = [0xab; 16];
        let cursor = encode(CursorKind::Users, &id);
        assert!(
            cursor
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || b"-._~".contains(&byte))
        );
        assert_eq!(decode(CursorKind::Users, &cursor).unwrap(), Some(id));
        assert_eq!(decode(CursorKind::Users, "").unwrap(), None);
        for bad in [
            encode(CursorKind::Groups, &id),
            cursor.to_uppercase(),
            cursor[..cursor.len() - 1].to_owned(),
            format!("{cursor}0"),
            "r1u".to_owned() + &"zz".repeat(16),
            "garbage".to_owned(),
            "r2u".to_owned() + &"00".repeat(16),
        ] {
            let error = decode(CursorKind::Users, &bad).unwrap_err();
            assert_eq!(error.scim_type, Some("invalidCursor"), "{bad}");
            assert_eq!(error.status, 400);
        }
    }

    #[test]
    fn a_page_knows_whether_more_matches_follow() {
        let records = || (1..=10).map(Ok::<_, ScimError>);
        let even = |n: &i32| Ok(n % 2 == 0);
        assert_eq!(collect(records(), 2, even).unwrap(), (vec![2, 4], true));
        assert_eq!(
            collect(records(), 5, even).unwrap(),
            (vec![2, 4, 6, 8, 10], false)
        );
        assert_eq!(
            collect(records(), 4, even).unwrap(),
            (vec![2, 4, 6, 8], true)
        );
        let response = cursor_response(CursorPage {
            total: None,
            resources: vec![json!({"id": "1"})],
            next: None,
        });
        assert!(response.get("totalResults").is_none());
        assert!(response.get("nextCursor").is_none());
        assert!(response.get("startIndex").is_none());
        assert_eq!(response["itemsPerPage"], 1);
    }

    #[test]
    fn candidates_count_every_match_and_page_after_the_cursor_in_id_order() {
        // 9 is gone; odd ids do not match; 4 is named twice.
        let ids = vec![8, 4, 2, 9, 6, 4, 3, 10];
        let load = |id: &u32| Ok((*id != 9).then_some(*id));
        let keep = |id: &u32| Ok(id.is_multiple_of(2));
        let first = collect_candidates(ids.clone(), None, 2, load, keep).unwrap();
        assert_eq!(first, (5, vec![2, 4], true));
        let next = collect_candidates(ids.clone(), Some(4), 2, load, keep).unwrap();
        assert_eq!(next, (5, vec![6, 8], true));
        let last = collect_candidates(ids, Some(8), 2, load, keep).unwrap();
        assert_eq!(last, (5, vec![10], false));
    }
}
