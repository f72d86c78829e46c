//! List responses sent as they are rendered. A page of groups, each with every member, can be
//! far larger than the page's records: here the records are rendered and written one at a time
//! on a blocking thread, through a channel of a few chunks, so memory holds one resource at a
//! time however large the page, and a client that stops reading stops the rendering. The status
//! and headers go first; a failure while rendering ends the body early (the client sees a broken
//! response, never a short but well-formed one).

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::Value;
use tokio_stream::wrappers::ReceiverStream;

use super::error::ScimError;
use roster_scim::SCIM_CONTENT_TYPE;

/// Rendered resources waiting to be sent, at most.
const CHUNKS_IN_FLIGHT: usize = 4;

/// A `200` ListResponse: the members of `head` (an object: `schemas`, `totalResults`, …), then
/// `Resources`, each item rendered by `render` only when the previous one has been taken.
pub fn list_response<T: Send + 'static>(
    head: Value,
    items: Vec<T>,
    render: impl Fn(T) -> Result<Value, ScimError> + Send + 'static,
) -> Response {
    let (sender, receiver) = tokio::sync::mpsc::channel(CHUNKS_IN_FLIGHT);
    tokio::task::spawn_blocking(move || {
        // `{"schemas":…,"itemsPerPage":2}` becomes `{"schemas":…,"itemsPerPage":2,"Resources":[`.
        let mut prefix = serde_json::to_vec(&head).unwrap_or_else(|_| b"{}".to_vec());
        prefix.pop();
        if prefix.len() > 1 {
            prefix.push(b',');
        }
        prefix.extend_from_slice(br#""Resources":["#);
        if sender.blocking_send(Ok(prefix)).is_err() {
            return;
        }
        for (index, item) in items.into_iter().enumerate() {
            let mut chunk = if index == 0 { Vec::new() } else { vec![b','] };
            let written = render(item).and_then(|resource| {
                serde_json::to_writer(&mut chunk, &resource)
                    .map_err(|error| ScimError::unavailable(error.to_string()))
            });
            if let Err(error) = written {
                tracing::warn!(detail = %error.detail, "a list page failed while it was sent");
                let _ = sender.blocking_send(Err(std::io::Error::other(error.detail)));
                return;
            }
            if sender.blocking_send(Ok(chunk)).is_err() {
                return; // the client went away
            }
        }
        let _ = sender.blocking_send(Ok(b"]}".to_vec()));
    });
    let mut response = Response::new(Body::from_stream(ReceiverStream::new(receiver)));
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(SCIM_CONTENT_TYPE),
    );
    response
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    async fn body_of(response: Response) -> Result<Value, String> {
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .map_err(|error| error.to_string())?;
        serde_json::from_slice(&bytes).map_err(|error| error.to_string())
    }

    #[tokio::test]
    async fn the_page_reads_back_as_one_list_response() {
        let head = json!({"schemas": ["list"], "totalResults": 3, "itemsPerPage": 3});
        let response = list_response(head, vec![1, 2, 3], |n| Ok(json!({"id": n})));
        assert_eq!(
            body_of(response).await.unwrap(),
            json!({"schemas": ["list"], "totalResults": 3, "itemsPerPage": 3,
                   "Resources": [{"id": 1}, {"id": 2}, {"id": 3}]})
        );
        let empty = list_response(json!({}), Vec::<u8>::new(), |_| Ok(json!({})));
        assert_eq!(body_of(empty).await.unwrap(), json!({"Resources": []}));
    }

    #[tokio::test]
    async fn a_failure_while_rendering_breaks_the_body_instead_of_shortening_it() {
        let response = list_response(json!({"itemsPerPage": 2}), vec![1, 2], |n| {
            if n == 2 {
                Err(ScimError::unavailable("the store failed"))
            } else {
                Ok(json!({"id": n}))
            }
        });
        assert!(body_of(response).await.is_err());
    }
}
