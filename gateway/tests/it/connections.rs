//! Connection limits and timeouts of both listeners, tried with raw sockets as a slow or
//! greedy client would: silent connections, stalled request heads, idle keep-alive, too many
//! connections, oversized request targets and headers, and a long-lived gRPC stream that must
//! outlive the idle timeout.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use roster_gateway::connections::ConnectionLimits;
use roster_proto::v1 as pb;
use roster_proto::v1::events_client::EventsClient;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_stream::StreamExt;

use crate::support::{Stack, authorized};

const HEADER_TIMEOUT: Duration = Duration::from_secs(1);
const IDLE_TIMEOUT: Duration = Duration::from_secs(3);

async fn stack_with(limits: ConnectionLimits) -> Stack {
    Stack::start_with(|config| config.connections = limits).await
}

fn short_timeouts() -> ConnectionLimits {
    ConnectionLimits {
        header_timeout: HEADER_TIMEOUT,
        idle_timeout: IDLE_TIMEOUT,
        ..ConnectionLimits::default()
    }
}

/// Reads until the server closes the connection; `None` if it is still open after `wait`.
async fn read_until_closed(stream: &mut TcpStream, wait: Duration) -> Option<Vec<u8>> {
    let mut received = Vec::new();
    let reading = async {
        let mut buffer = [0u8; 8192];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(count) => received.extend_from_slice(&buffer[..count]),
            }
        }
    };
    tokio::time::timeout(wait, reading).await.ok()?;
    Some(received)
}

/// Reads one HTTP/1.1 response with a `content-length` (head and body).
async fn read_response(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let mut buffer = [0u8; 8192];
    loop {
        let text = String::from_utf8_lossy(&received).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let length: usize = text[..end]
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if received.len() >= end + 4 + length {
                return text;
            }
        }
        let count = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer))
            .await
            .expect("a response within 5 s")
            .unwrap();
        assert!(count > 0, "connection closed mid-response: {text:?}");
        received.extend_from_slice(&buffer[..count]);
    }
}

async fn connect(address: SocketAddr) -> TcpStream {
    TcpStream::connect(address).await.unwrap()
}

#[tokio::test]
async fn connections_that_send_nothing_are_closed_after_the_header_timeout_on_both_ports() {
    let stack = stack_with(short_timeouts()).await;
    for address in [stack.running.http_addr, stack.running.grpc_addr] {
        let started = Instant::now();
        let mut silent = connect(address).await;
        let received = read_until_closed(&mut silent, Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("{address}: a silent connection still open after 10 s"));
        if address == stack.running.http_addr {
            assert!(received.is_empty(), "{address}: {received:?}");
        }
        assert!(
            started.elapsed() >= HEADER_TIMEOUT - Duration::from_millis(100),
            "{address}: closed after {:?}, before the header timeout",
            started.elapsed()
        );
    }
    // An HTTP/2 client that sends its preface and never a request is closed too.
    let mut preface_only = connect(stack.running.grpc_addr).await;
    preface_only
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    assert!(
        read_until_closed(&mut preface_only, Duration::from_secs(10))
            .await
            .is_some(),
        "an HTTP/2 connection without a request still open after 10 s"
    );
}

#[tokio::test]
async fn a_request_head_stalled_midway_is_closed_after_the_header_timeout() {
    let stack = stack_with(short_timeouts()).await;
    let mut stalled = connect(stack.running.http_addr).await;
    stalled
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: roster\r\nX-Slow: ")
        .await
        .unwrap();
    // Trickling a byte now and then does not extend the head's deadline.
    let started = Instant::now();
    let trickle = async {
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if stalled.write_all(b"a").await.is_err() {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(10), trickle).await;
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "a trickled request head kept its connection for {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout_not_the_header_timeout() {
    let stack = stack_with(short_timeouts()).await;
    let mut idle = connect(stack.running.http_addr).await;
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: roster\r\n\r\n")
        .await
        .unwrap();
    let response = read_response(&mut idle).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let quiet = Instant::now();
    // Past the header timeout the connection is still there, and serves a second request.
    assert!(
        read_until_closed(&mut idle, HEADER_TIMEOUT + Duration::from_millis(500))
            .await
            .is_none(),
        "an idle keep-alive connection was closed at the header timeout"
    );
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: roster\r\n\r\n")
        .await
        .unwrap();
    let response = read_response(&mut idle).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let quiet_again = Instant::now();
    assert!(
        read_until_closed(&mut idle, Duration::from_secs(10))
            .await
            .is_some(),
        "an idle connection still open after 10 s"
    );
    assert!(
        quiet_again.elapsed() >= IDLE_TIMEOUT - Duration::from_millis(200),
        "closed {:?} after the last response, before the idle timeout",
        quiet_again.elapsed()
    );
    assert!(quiet.elapsed() < Duration::from_secs(15));
}

/// Holds `count` connections the server has accepted.
async fn hold(address: SocketAddr, count: usize) -> Vec<TcpStream> {
    let mut held = Vec::new();
    for _ in 0..count {
        held.push(connect(address).await);
    }
    // Let the listener accept them.
    tokio::time::sleep(Duration::from_millis(300)).await;
    held
}

/// A request on a connection over a limit: the SCIM 503 the server answered before closing.
async fn refused_answer(address: SocketAddr) -> (String, Value) {
    let mut over = connect(address).await;
    over.write_all(b"GET /healthz HTTP/1.1\r\nHost: roster\r\n\r\n")
        .await
        .unwrap();
    let answer = read_until_closed(&mut over, Duration::from_secs(5))
        .await
        .expect("a refused connection is closed");
    let answer = String::from_utf8(answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP response");
    (head.to_owned(), serde_json::from_str(body).unwrap())
}

#[tokio::test]
async fn connections_over_the_per_address_limit_are_answered_503_and_places_free_up() {
    let stack = stack_with(ConnectionLimits {
        max_connections_per_address: 3,
        ..short_timeouts()
    })
    .await;
    let mut held = hold(stack.running.http_addr, 3).await;
    let (head, body) = refused_answer(stack.running.http_addr).await;
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    assert!(head.to_ascii_lowercase().contains("retry-after:"), "{head}");
    assert_eq!(
        body["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:Error"
    );
    assert_eq!(body["status"], "503");
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains("--max-connections-per-address") && detail.contains('3'),
        "{detail}"
    );
    // The gRPC port shares the limit: its connection is closed at once.
    let mut grpc = connect(stack.running.grpc_addr).await;
    assert!(
        read_until_closed(&mut grpc, Duration::from_millis(500))
            .await
            .is_some(),
        "a gRPC connection over the per-address limit was kept"
    );
    // Closing one frees its place.
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let response = reqwest::get(format!("{}/healthz", stack.http_url()))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn connections_over_the_total_limit_are_answered_503() {
    let stack = stack_with(ConnectionLimits {
        max_connections: 4,
        ..short_timeouts()
    })
    .await;
    let _held = hold(stack.running.http_addr, 4).await;
    let (head, body) = refused_answer(stack.running.http_addr).await;
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains("--max-connections)"), "{detail}");
}

#[tokio::test]
async fn an_oversized_request_target_or_header_block_gets_a_scim_error_body() {
    let stack = Stack::start().await;
    let tenant = stack.tenant("acme").await;
    let long_filter = format!("userName eq \"{}\"", "a".repeat(20 * 1024));
    let reply = tenant
        .get(&format!(
            "/Users?filter={}",
            crate::support::urlencode(&long_filter)
        ))
        .await;
    let body = reply.expect_error(414, None);
    assert!(body["detail"].as_str().unwrap().contains("16384"), "{body}");

    let mut request = tenant.request(reqwest::Method::GET, "/Users");
    for index in 0..5 {
        request = request.header(format!("x-padding-{index}"), "b".repeat(8 * 1024));
    }
    let reply = crate::support::reply(request.send().await.unwrap()).await;
    let body = reply.expect_error(431, None);
    assert!(body["detail"].as_str().unwrap().contains("32768"), "{body}");
}

#[tokio::test]
async fn a_watch_stream_outlives_the_idle_timeout_and_still_receives_events() {
    let stack = stack_with(ConnectionLimits {
        header_timeout: Duration::from_millis(500),
        idle_timeout: Duration::from_secs(1),
        ..ConnectionLimits::default()
    })
    .await;
    let tenant = stack.tenant("acme").await;
    let mut client = EventsClient::connect(format!("http://{}", stack.running.grpc_addr))
        .await
        .unwrap();
    let request = authorized(
        &stack.admin_token(),
        pb::WatchRequest {
            tenant: "acme".into(),
            from_sequence: u64::MAX / 2,
            event_types: Vec::new(),
        },
    );
    let mut stream = client.watch(request).await.unwrap().into_inner();
    tokio::time::sleep(Duration::from_secs(3)).await;
    // The stream asked from far ahead, so nothing arrives; it must still be open.
    let next = tokio::time::timeout(Duration::from_millis(200), stream.next()).await;
    assert!(next.is_err(), "the stream ended: {next:?}");
    drop(stream);

    // A stream from the start sees a user created after three idle timeouts.
    let request = authorized(
        &stack.admin_token(),
        pb::WatchRequest {
            tenant: "acme".into(),
            from_sequence: 1,
            event_types: vec!["user.provisioned".into()],
        },
    );
    let mut stream = client.watch(request).await.unwrap().into_inner();
    tokio::time::sleep(Duration::from_secs(3)).await;
    tenant.create_user("late-arrival").await;
    let event = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("the event within 10 s")
        .expect("the stream is open")
        .expect("an event");
    assert_eq!(event.tenant, "acme");
}
