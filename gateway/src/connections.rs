//! Connection limits of roster's two listeners (SCIM over HTTP and gRPC): how many connections
//! may be open in all and from one client address, how long a client may take to send a
//! request's head, and how long a connection may stay open with nothing to do.
//!
//! Both listeners admit every accepted socket through one shared [`Gate`] and wrap it in a
//! [`GuardedStream`], which ends the connection when its client is too slow or has gone quiet.
//! Requests mark themselves in flight ([`Activity::begin`]) for as long as they run (a gRPC
//! stream for as long as its response body lives), so a slow request or a long-lived `Watch`
//! stream is never cut for being idle.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use tonic::codegen::http;

/// The limits both listeners apply to their connections.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections open at once, SCIM and gRPC together (each holds a file descriptor).
    pub max_connections: usize,
    /// Connections open at once from one client address; trusted proxies are exempt (every
    /// client behind them shares their address).
    pub max_connections_per_address: usize,
    /// Longest a client may take, once connected, to send its first request, and on HTTP/1,
    /// once it starts sending a request's head, to finish it.
    pub header_timeout: Duration,
    /// Longest a connection stays open with no request in flight (keep-alive), and on HTTP/1
    /// longest a request in flight may go without a byte read or written.
    pub idle_timeout: Duration,
    /// HTTP/2 streams a connection may have open at once.
    pub max_concurrent_streams: u32,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: 1000,
            max_connections_per_address: 256,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_concurrent_streams: 100,
        }
    }
}

/// Why the gate turned a connection away.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("roster has {limit} connections open, its limit (--max-connections)")]
    Full { limit: usize },
    #[error(
        "this address has {limit} connections open, the limit per address (--max-connections-per-address)"
    )]
    AddressFull { limit: usize },
}

#[derive(Default)]
struct OpenConnections {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

/// Counts open connections, in all and per client address, and admits new ones within the
/// limits. Shared by both listeners.
pub struct Gate {
    limits: ConnectionLimits,
    /// Peers exempt from the per-address limit (trusted reverse proxies).
    exempt: Arc<Vec<ipnet::IpNet>>,
    open: Mutex<OpenConnections>,
}

impl Gate {
    pub fn new(limits: ConnectionLimits, exempt: Arc<Vec<ipnet::IpNet>>) -> Arc<Self> {
        Arc::new(Self {
            limits,
            exempt,
            open: Mutex::new(OpenConnections::default()),
        })
    }

    pub fn limits(&self) -> &ConnectionLimits {
        &self.limits
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .total
    }

    /// Admits a connection from `peer`, or says which limit it would break. The connection
    /// counts until the returned [`Admission`] is dropped.
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Admission, Refusal> {
        let exempt = self.exempt.iter().any(|network| network.contains(&peer));
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if open.total >= self.limits.max_connections {
            return Err(Refusal::Full {
                limit: self.limits.max_connections,
            });
        }
        if !exempt {
            let from_peer = open.by_address.entry(peer).or_default();
            if *from_peer >= self.limits.max_connections_per_address {
                return Err(Refusal::AddressFull {
                    limit: self.limits.max_connections_per_address,
                });
            }
            *from_peer += 1;
        }
        open.total += 1;
        Ok(Admission {
            gate: Arc::clone(self),
            counted_address: (!exempt).then_some(peer),
        })
    }
}

/// One admitted connection; dropping it frees its place.
pub struct Admission {
    gate: Arc<Gate>,
    counted_address: Option<IpAddr>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut open = self
            .gate
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        open.total = open.total.saturating_sub(1);
        if let Some(address) = self.counted_address
            && let Some(count) = open.by_address.get_mut(&address)
        {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.by_address.remove(&address);
            }
        }
    }
}

/// What a connection's requests are doing, shared by the connection's stream (which enforces
/// the timeouts) and its requests (which say when they begin and end).
pub struct Activity {
    opened: Instant,
    in_flight: AtomicUsize,
    requests: AtomicU64,
    /// Milliseconds after `opened` when the last request ended.
    quiet_since_millis: AtomicU64,
    /// Bumped whenever a request begins or ends.
    changes: AtomicU64,
}

impl Activity {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            opened: Instant::now(),
            in_flight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            quiet_since_millis: AtomicU64::new(0),
            changes: AtomicU64::new(0),
        })
    }

    /// Marks a request in flight until the returned guard is dropped.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.requests.fetch_add(1, Ordering::SeqCst);
        self.changes.fetch_add(1, Ordering::SeqCst);
        InFlight(Arc::clone(self))
    }

    fn quiet_since(&self) -> Instant {
        self.opened + Duration::from_millis(self.quiet_since_millis.load(Ordering::SeqCst))
    }
}

/// A request in flight on a connection.
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let activity = &self.0;
        let elapsed = u64::try_from(activity.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        activity.quiet_since_millis.store(elapsed, Ordering::SeqCst);
        activity.in_flight.fetch_sub(1, Ordering::SeqCst);
        activity.changes.fetch_add(1, Ordering::SeqCst);
    }
}

/// The protocol a connection speaks, told by its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Protocol {
    Unknown,
    Http1,
    Http2,
}

/// The HTTP/2 connection preface's first bytes.
const HTTP2_PREFACE: &[u8] = b"PRI * HTTP/2.0";

/// An admitted TCP connection that ends itself (reads end of stream) when its client breaks
/// the timeouts: no request within the header timeout of connecting; on HTTP/1 a request head
/// not finished within the header timeout of its first byte; no request in flight for the idle
/// timeout; on HTTP/1 a request in flight with no byte read or written for the idle timeout.
pub struct GuardedStream {
    stream: TcpStream,
    activity: Arc<Activity>,
    header_timeout: Duration,
    idle_timeout: Duration,
    protocol: Protocol,
    /// When the client began sending the current HTTP/1 request head.
    head_started: Option<Instant>,
    /// `activity.changes` when this stream last looked.
    seen_changes: u64,
    last_io: Instant,
    timer: Pin<Box<Sleep>>,
    remote: SocketAddr,
    local: Option<SocketAddr>,
    _admission: Admission,
}

impl GuardedStream {
    pub fn new(
        stream: TcpStream,
        remote: SocketAddr,
        admission: Admission,
        activity: Arc<Activity>,
        limits: &ConnectionLimits,
    ) -> Self {
        let now = Instant::now();
        Self {
            local: stream.local_addr().ok(),
            stream,
            activity,
            header_timeout: limits.header_timeout,
            idle_timeout: limits.idle_timeout,
            protocol: Protocol::Unknown,
            head_started: None,
            seen_changes: 0,
            last_io: now,
            timer: Box::pin(tokio::time::sleep_until(now + limits.header_timeout)),
            remote,
            _admission: admission,
        }
    }

    /// When this connection must end if nothing changes.
    fn deadline(&mut self, now: Instant) -> Instant {
        let changes = self.activity.changes.load(Ordering::SeqCst);
        if changes != self.seen_changes {
            self.seen_changes = changes;
            self.head_started = None;
        }
        let in_flight = self.activity.in_flight.load(Ordering::SeqCst) > 0;
        let first_request_pending = self.activity.requests.load(Ordering::SeqCst) == 0;
        match (self.protocol, self.head_started) {
            (Protocol::Http1, _) if in_flight => self.last_io + self.idle_timeout,
            // A stream in flight (a gRPC Watch) may wait for events for as long as it likes;
            // HTTP/2 keep-alive pings find dead peers. Look again later.
            (Protocol::Http2, _) if in_flight => now + self.idle_timeout,
            (Protocol::Http1, Some(started)) => started + self.header_timeout,
            // No request yet (a connection that has sent no byte has sent none).
            _ if first_request_pending || self.protocol == Protocol::Unknown => {
                self.activity.opened + self.header_timeout
            }
            _ => self.activity.quiet_since() + self.idle_timeout,
        }
    }

    /// Notes bytes read; `like_http2`: they begin as the HTTP/2 preface does (looked at only
    /// for a connection's first bytes).
    fn note_read(&mut self, like_http2: bool) {
        let now = Instant::now();
        self.last_io = now;
        if self.protocol == Protocol::Unknown {
            self.protocol = if like_http2 {
                Protocol::Http2
            } else {
                Protocol::Http1
            };
        }
        if self.protocol == Protocol::Http1
            && self.head_started.is_none()
            && self.activity.in_flight.load(Ordering::SeqCst) == 0
        {
            self.seen_changes = self.activity.changes.load(Ordering::SeqCst);
            self.head_started = Some(now);
        }
    }
}

impl AsyncRead for GuardedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let read = &buf.filled()[before..];
                if !read.is_empty() {
                    let compared = read.len().min(HTTP2_PREFACE.len());
                    this.note_read(read[..compared] == HTTP2_PREFACE[..compared]);
                }
                return Poll::Ready(Ok(()));
            }
            Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
            Poll::Pending => {}
        }
        loop {
            let now = Instant::now();
            let deadline = this.deadline(now);
            if now >= deadline {
                tracing::debug!(peer = %this.remote, protocol = ?this.protocol, "closing a connection that broke a timeout");
                // End of stream: the HTTP stack closes the connection.
                return Poll::Ready(Ok(()));
            }
            this.timer.as_mut().reset(deadline);
            if this.timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
    }
}

impl AsyncWrite for GuardedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.stream).poll_write(cx, buf);
        if matches!(written, Poll::Ready(Ok(count)) if count > 0) {
            this.last_io = Instant::now();
        }
        written
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        if matches!(written, Poll::Ready(Ok(count)) if count > 0) {
            this.last_io = Instant::now();
        }
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// What a gRPC request learns of its connection: the addresses, and the connection's
/// [`Activity`] to mark the request in flight.
#[derive(Clone)]
pub struct GuardedConnectInfo {
    pub tcp: tonic::transport::server::TcpConnectInfo,
    pub activity: Arc<Activity>,
}

impl tonic::transport::server::Connected for GuardedStream {
    type ConnectInfo = GuardedConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        GuardedConnectInfo {
            tcp: tonic::transport::server::TcpConnectInfo {
                local_addr: self.local,
                remote_addr: Some(self.remote),
            },
            activity: Arc::clone(&self.activity),
        }
    }
}

/// Tower layer of the gRPC server: marks each request in flight on its connection until its
/// response body ends (a `Watch` stream: until it is closed), and gives the request the
/// connection's [`TcpConnectInfo`](tonic::transport::server::TcpConnectInfo) as tonic's own
/// listener would.
#[derive(Clone, Copy, Debug, Default)]
pub struct InFlightLayer;

impl<S> tower::Layer<S> for InFlightLayer {
    type Service = InFlightService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        InFlightService { inner }
    }
}

/// The service [`InFlightLayer`] makes.
#[derive(Clone, Debug)]
pub struct InFlightService<S> {
    inner: S,
}

type GrpcResponse = http::Response<tonic::body::Body>;

impl<S, B> tower::Service<http::Request<B>> for InFlightService<S>
where
    S: tower::Service<http::Request<B>, Response = GrpcResponse>,
    S::Future: Send + 'static,
{
    type Response = GrpcResponse;
    type Error = S::Error;
    type Future = Pin<Box<dyn std::future::Future<Output = Result<GrpcResponse, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let connection = request.extensions().get::<GuardedConnectInfo>().cloned();
        let in_flight = connection.map(|connection| {
            request.extensions_mut().insert(connection.tcp);
            connection.activity.begin()
        });
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            Ok(match in_flight {
                Some(in_flight) => response.map(|body| {
                    tonic::body::Body::new(InFlightBody {
                        body,
                        _in_flight: in_flight,
                    })
                }),
                None => response,
            })
        })
    }
}

/// A response body that keeps its request in flight until it ends or is dropped.
struct InFlightBody {
    body: tonic::body::Body,
    _in_flight: InFlight,
}

impl http_body::Body for InFlightBody {
    type Data = tonic::codegen::Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// The most open files this process may have (its soft `RLIMIT_NOFILE`), from
/// `/proc/self/limits` (Linux); `None` elsewhere or unlimited.
pub fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(total: usize, per_address: usize, exempt: Vec<ipnet::IpNet>) -> Arc<Gate> {
        Gate::new(
            ConnectionLimits {
                max_connections: total,
                max_connections_per_address: per_address,
                ..ConnectionLimits::default()
            },
            Arc::new(exempt),
        )
    }

    #[test]
    fn the_gate_counts_per_address_and_in_all_and_frees_places_on_drop() {
        let gate = gate(3, 2, Vec::new());
        let one: IpAddr = "192.0.2.1".parse().unwrap();
        let two: IpAddr = "192.0.2.2".parse().unwrap();
        let first = gate.admit(one).unwrap();
        let _second = gate.admit(one).unwrap();
        assert_eq!(
            gate.admit(one).err(),
            Some(Refusal::AddressFull { limit: 2 })
        );
        let _third = gate.admit(two).unwrap();
        assert_eq!(gate.admit(two).err(), Some(Refusal::Full { limit: 3 }));
        assert_eq!(gate.open(), 3);
        drop(first);
        assert_eq!(gate.open(), 2);
        assert!(gate.admit(one).is_ok());
    }

    #[test]
    fn trusted_proxies_are_exempt_from_the_per_address_limit_but_not_the_total() {
        let gate = gate(3, 1, vec!["10.0.0.0/8".parse().unwrap()]);
        let proxy: IpAddr = "10.1.2.3".parse().unwrap();
        let _a = gate.admit(proxy).unwrap();
        let _b = gate.admit(proxy).unwrap();
        let _c = gate.admit(proxy).unwrap();
        assert_eq!(gate.admit(proxy).err(), Some(Refusal::Full { limit: 3 }));
    }

    #[test]
    fn the_open_files_limit_is_read_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(open_files_limit().is_some_and(|limit| limit > 0));
        }
    }
}
