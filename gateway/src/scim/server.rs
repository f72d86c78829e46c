//! The SCIM HTTP listener: accepts connections through the shared connection [`Gate`], serves
//! HTTP/1.1 and HTTP/2 with hyper under roster's connection limits and timeouts, answers a
//! connection over a limit with a SCIM 503 before closing it, refuses request lines and headers
//! over their limits with SCIM 414/431 bodies, and drains its connections at shutdown.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt;
use tracing::{debug, warn};

use super::error::ScimError;
use crate::connections::{Activity, Gate, GuardedStream, Refusal};

/// Longest request target (path and query) accepted; longer ones are answered 414.
pub const MAX_URI_BYTES: usize = 16 * 1024;
/// Most bytes of request headers accepted (names and values); more are answered 431.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;
/// hyper's own limit on a request head, above roster's: a head beyond it is refused by hyper
/// (431 without a body) before roster sees it.
const HEAD_BUFFER_BYTES: usize = 64 * 1024;
/// Interval of HTTP/2 keep-alive pings, and how long an answer may take.
pub const HTTP2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
pub const HTTP2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// Longest shutdown waits for requests in flight.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Refused connections answered at once; beyond this they are closed without an answer.
const REFUSALS_AT_ONCE: usize = 64;
/// Longest a refused connection is kept to be answered.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(1);

/// Axum middleware: a request target or headers over their limits are refused with a SCIM
/// error body (414, 431), before any handler runs.
pub async fn refuse_oversized_heads(request: Request, next: Next) -> Response {
    let target = request
        .uri()
        .path_and_query()
        .map_or(0, |target| target.as_str().len());
    if target > MAX_URI_BYTES {
        return ScimError::new(
            StatusCode::URI_TOO_LONG,
            None,
            format!(
                "the request target is {target} bytes; the limit is {MAX_URI_BYTES} (send a long filter with POST .search)"
            ),
        )
        .into_response();
    }
    let headers: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if headers > MAX_HEADER_BYTES {
        return ScimError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            None,
            format!("the request headers are {headers} bytes; the limit is {MAX_HEADER_BYTES}"),
        )
        .into_response();
    }
    next.run(request).await
}

/// Serves `service` (the SCIM router) on `listener` until `stop` turns true, then waits up to
/// [`DRAIN_TIMEOUT`] for requests in flight.
pub async fn serve<S>(
    listener: TcpListener,
    service: S,
    gate: Arc<Gate>,
    mut stop: watch::Receiver<bool>,
) where
    S: tower::Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let limits = gate.limits().clone();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // The guarded stream times request heads and idle connections itself: hyper's own
        // header timer would also cut idle keep-alive connections at the header timeout.
        .header_read_timeout(None)
        .max_buf_size(HEAD_BUFFER_BYTES);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_concurrent_streams)
        .max_header_list_size(u32::try_from(HEAD_BUFFER_BYTES).unwrap_or(u32::MAX))
        .keep_alive_interval(HTTP2_KEEPALIVE_INTERVAL)
        .keep_alive_timeout(HTTP2_KEEPALIVE_TIMEOUT);
    let graceful = GracefulShutdown::new();
    let refusals = Arc::new(Semaphore::new(REFUSALS_AT_ONCE));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|stop| *stop) => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors, most likely: let connections close before the next.
                warn!(%error, "SCIM HTTP listener could not accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let admission = match gate.admit(peer.ip()) {
            Ok(admission) => admission,
            Err(refusal) => {
                debug!(%peer, %refusal, "SCIM HTTP connection refused");
                if let Ok(permit) = Arc::clone(&refusals).try_acquire_owned() {
                    tokio::spawn(async move {
                        refuse(stream, refusal).await;
                        drop(permit);
                    });
                }
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let activity = Activity::new();
        let io = TokioIo::new(GuardedStream::new(
            stream,
            peer,
            admission,
            Arc::clone(&activity),
            &limits,
        ));
        let service = service.clone();
        let per_request = hyper::service::service_fn(move |request: hyper::Request<_>| {
            let in_flight = activity.begin();
            let mut request = request.map(axum::body::Body::new);
            request
                .extensions_mut()
                .insert(ConnectInfo::<SocketAddr>(peer));
            let response = service.clone().oneshot(request);
            async move {
                let response = response.await;
                drop(in_flight);
                response
            }
        });
        let connection = builder.serve_connection(io, per_request).into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                debug!(%peer, %error, "SCIM HTTP connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        warn!("SCIM HTTP requests still in flight {DRAIN_TIMEOUT:?} after shutdown began");
    }
}

/// Answers a connection over a limit with a SCIM 503 and closes it.
async fn refuse(mut stream: TcpStream, refusal: Refusal) {
    let body = ScimError::unavailable(format!("{refusal}; retry later"))
        .body()
        .to_string();
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: {}\r\nretry-after: {}\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        roster_scim::SCIM_CONTENT_TYPE,
        super::error::RETRY_AFTER_SECONDS,
        body.len(),
    );
    let answer = async {
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await?;
        // Read what the client sent, so that closing does not reset the connection before
        // the client has read the answer.
        let mut sink = [0u8; 4096];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<(), std::io::Error>(())
    };
    let _ = tokio::time::timeout(REFUSAL_TIMEOUT, answer).await;
}
