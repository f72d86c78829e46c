//! The one pager over the gRPC listings that answer a page at a time: a request carries a
//! `page_token` (empty for the first page), a reply its items and a `next_page_token` (empty
//! after the last page).

use std::future::Future;

use anyhow::Result;
use roster_proto::v1 as pb;

use super::rpc_error;

/// A reply holding one page of a listing.
pub trait Page {
    type Item;

    /// The page's items, and the token that asks for the next page (empty after the last).
    fn into_items(self) -> (Vec<Self::Item>, String);
}

impl Page for pb::ListUsersResponse {
    type Item = pb::User;

    fn into_items(self) -> (Vec<pb::User>, String) {
        (self.users, self.next_page_token)
    }
}

impl Page for pb::ListGroupsResponse {
    type Item = pb::Group;

    fn into_items(self) -> (Vec<pb::Group>, String) {
        (self.groups, self.next_page_token)
    }
}

impl Page for pb::ListGroupMembersResponse {
    type Item = pb::Member;

    fn into_items(self) -> (Vec<pb::Member>, String) {
        (self.members, self.next_page_token)
    }
}

/// Calls `fetch` with each page's token in turn, from the first page to the last, and hands
/// every item of every page to `each`. The first failed call ends it with that call's error.
pub async fn for_each_item<Reply, Fetched>(
    mut fetch: impl FnMut(String) -> Fetched,
    mut each: impl FnMut(Reply::Item),
) -> Result<()>
where
    Reply: Page,
    Fetched: Future<Output = Result<tonic::Response<Reply>, tonic::Status>>,
{
    let mut page_token = String::new();
    loop {
        let (items, next_page_token) = fetch(page_token)
            .await
            .map_err(rpc_error)?
            .into_inner()
            .into_items();
        items.into_iter().for_each(&mut each);
        if next_page_token.is_empty() {
            return Ok(());
        }
        page_token = next_page_token;
    }
}
