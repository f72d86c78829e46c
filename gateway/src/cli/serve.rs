//! `roster serve`: its options (listeners, NATS, rate limit, proxies, connection limits) and
//! the run of the whole stack until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use roster_gateway::app::{self, Config};
use roster_gateway::connections::ConnectionLimits;

use super::Common;

/// The target of `serve`'s own log lines: the binary's, as when they were written in main.rs
/// (log filters and readers of the log see the same `roster` target).
const LOG_TARGET: &str = "roster";

// The options of `roster serve` (its help text is the doc comment of `Command::Serve`).
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// SCIM HTTP listen address.
    #[arg(long, env = "ROSTER_HTTP", default_value = "127.0.0.1:8080")]
    http: SocketAddr,
    /// Keep the event log in NATS JetStream (nats-server 2.12+) instead of the embedded log;
    /// several roster processes may then share it. One URL, or a cluster's URLs separated by
    /// commas.
    #[arg(long, env = "ROSTER_NATS_URL")]
    nats: Option<String>,
    /// Replicas of the event stream when roster creates it (3 on a NATS cluster).
    #[arg(
        long,
        env = "ROSTER_NATS_REPLICAS",
        default_value_t = 1,
        requires = "nats"
    )]
    nats_replicas: usize,
    /// Per-token SCIM rate limit in requests per second (429 with Retry-After beyond it).
    /// Off by default: Entra ID quarantines provisioning jobs that see 429s.
    #[arg(long, env = "ROSTER_RATE_LIMIT")]
    rate_limit: Option<f64>,
    /// Requests a token may make at once before the rate applies (default: the rate, rounded
    /// up).
    #[arg(long, env = "ROSTER_RATE_LIMIT_BURST", requires = "rate_limit")]
    rate_limit_burst: Option<u32>,
    /// A reverse proxy (address or CIDR) whose X-Forwarded-For, -Proto and -Host headers are
    /// believed; repeat for several. From other peers these headers are ignored: the audit
    /// trail records the socket's address.
    #[arg(long = "trusted-proxy", env = "ROSTER_TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_network)]
    trusted_proxies: Vec<ipnet::IpNet>,
    /// The SCIM endpoint's public base URL (e.g. https://scim.example.com), used in Location
    /// and meta.location; default: the request's Host.
    #[arg(long, env = "ROSTER_PUBLIC_URL", value_parser = parse_public_url)]
    public_url: Option<String>,
    /// Address serving /metrics, /healthz and /readyz without a token: keep it private
    /// (loopback, or a port only Prometheus reaches). `off`: none (the SCIM port still
    /// serves health, and /metrics to the admin token).
    #[arg(long, env = "ROSTER_ADMIN_HTTP", default_value = "127.0.0.1:9464", value_parser = parse_admin_http)]
    admin_http: AdminHttp,
    #[command(flatten)]
    connections: ConnectionArgs,
    /// Limits on server-streaming gRPC calls (Watch, audit Replay).
    #[command(flatten)]
    streams: roster_gateway::grpc::StreamLimits,
    #[command(flatten)]
    webhooks: WebhookArgs,
    /// How often the directory view, held in memory, writes its changes to disk (100ms to 1h):
    /// after a crash the next start replays at most this much of the log into it.
    #[arg(long, env = "ROSTER_VIEW_PERSIST_INTERVAL", default_value = "5s", value_parser = parse_view_persist_interval)]
    view_persist_interval: std::time::Duration,
    /// The page cache of roster's sled database, in MiB (16 to 65536). Lower it to trade read
    /// speed of the log, the aggregate and the audit trail for memory.
    #[arg(long, env = "ROSTER_DB_CACHE_MIB", default_value_t = 256, value_parser = clap::value_parser!(u64).range(16..=65536))]
    db_cache_mib: u64,
    /// Memory for the directory view's blocks, in MiB (16 to 1048576): above it, blocks already
    /// written to disk leave memory and are read back when needed.
    #[arg(long, env = "ROSTER_VIEW_MEMORY_MIB", default_value_t = roster_gateway::app::RESIDENT_MEMORY_DEFAULT_MIB as u64, value_parser = clap::value_parser!(u64).range(16..=1 << 20))]
    view_memory_mib: u64,
    /// Memory for the engine's aggregate, in MiB (16 to 1048576), likewise.
    #[arg(long, env = "ROSTER_AGGREGATE_MEMORY_MIB", default_value_t = roster_gateway::app::RESIDENT_MEMORY_DEFAULT_MIB as u64, value_parser = clap::value_parser!(u64).range(16..=1 << 20))]
    aggregate_memory_mib: u64,
}

/// How webhooks are delivered.
#[derive(Clone, Debug, clap::Args)]
struct WebhookArgs {
    /// Waits before each retry of a failed webhook delivery, comma-separated; once used up the
    /// webhook is `failing` until resumed.
    #[arg(long, env = "ROSTER_WEBHOOK_RETRY_SCHEDULE", value_delimiter = ',', default_value = "5s,5m,30m,2h,5h,10h,14h,20h,24h", value_parser = parse_retry_wait)]
    webhook_retry_schedule: Vec<std::time::Duration>,
    /// Longest wait for a webhook receiver's answer (at most 20s: on NATS a delivery must end
    /// well within its process's 30 s lease).
    #[arg(long, env = "ROSTER_WEBHOOK_TIMEOUT", default_value = "15s", value_parser = parse_webhook_timeout)]
    webhook_timeout: std::time::Duration,
    /// Webhook requests in flight at once, all webhooks together.
    #[arg(long, env = "ROSTER_WEBHOOK_MAX_IN_FLIGHT", default_value_t = 64, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=4096))]
    webhook_max_in_flight: usize,
}

/// Connection limits and timeouts of `serve`'s SCIM and gRPC listeners.
#[derive(Clone, Debug, clap::Args)]
struct ConnectionArgs {
    /// Connections open at once, SCIM and gRPC together; more are answered 503 and closed.
    #[arg(long, env = "ROSTER_MAX_CONNECTIONS", default_value_t = ConnectionLimits::default().max_connections, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    max_connections: usize,
    /// Connections open at once from one client address (trusted proxies are exempt).
    #[arg(long, env = "ROSTER_MAX_CONNECTIONS_PER_ADDRESS", default_value_t = ConnectionLimits::default().max_connections_per_address, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    max_connections_per_address: usize,
    /// Longest a client may take to send a request's head once connected or once it starts
    /// one, e.g. 10s.
    #[arg(long, env = "ROSTER_HEADER_TIMEOUT", default_value = "10s", value_parser = roster_gateway::grpc::parse_timeout)]
    header_timeout: std::time::Duration,
    /// Longest a connection stays open with no request in flight, e.g. 60s.
    #[arg(long, env = "ROSTER_IDLE_TIMEOUT", default_value = "60s", value_parser = roster_gateway::grpc::parse_timeout)]
    idle_timeout: std::time::Duration,
    /// HTTP/2 streams one connection may have open at once (SCIM and gRPC).
    #[arg(long, env = "ROSTER_MAX_CONCURRENT_STREAMS", default_value_t = ConnectionLimits::default().max_concurrent_streams, value_parser = clap::value_parser!(u32).range(1..))]
    max_concurrent_streams: u32,
}

impl ConnectionArgs {
    fn limits(&self) -> ConnectionLimits {
        ConnectionLimits {
            max_connections: self.max_connections,
            max_connections_per_address: self.max_connections_per_address,
            header_timeout: self.header_timeout,
            idle_timeout: self.idle_timeout,
            max_concurrent_streams: self.max_concurrent_streams,
        }
    }
}

/// One wait of `--webhook-retry-schedule`: a duration of at most a week.
fn parse_retry_wait(text: &str) -> Result<std::time::Duration, String> {
    let wait = roster_gateway::grpc::parse_timeout(text)?;
    if wait > roster_gateway::webhooks::RETRY_WAIT_MAX {
        return Err(format!("{text:?} is longer than a week"));
    }
    Ok(wait)
}

impl ServeArgs {
    /// `--db-cache-mib`.
    #[cfg(test)]
    pub fn db_cache_mib(&self) -> u64 {
        self.db_cache_mib
    }
}

/// `--view-persist-interval`: from 100 ms to an hour.
fn parse_view_persist_interval(text: &str) -> Result<std::time::Duration, String> {
    let interval = roster_gateway::grpc::parse_timeout(text)?;
    if interval < std::time::Duration::from_millis(100)
        || interval > std::time::Duration::from_secs(3600)
    {
        return Err(format!("{text:?} is not between 100ms and 1h"));
    }
    Ok(interval)
}

/// `--webhook-timeout`: a duration of at most 20 s.
fn parse_webhook_timeout(text: &str) -> Result<std::time::Duration, String> {
    let timeout = roster_gateway::grpc::parse_timeout(text)?;
    if timeout > roster_gateway::webhooks::TIMEOUT_MAX {
        return Err(format!("{text:?} is longer than 20s"));
    }
    Ok(timeout)
}

/// `--admin-http`: an address, or `off`.
#[derive(Clone, Copy, Debug)]
struct AdminHttp(Option<SocketAddr>);

fn parse_admin_http(text: &str) -> Result<AdminHttp, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("off") {
        return Ok(AdminHttp(None));
    }
    text.parse()
        .map(|address| AdminHttp(Some(address)))
        .map_err(|_| format!("{text:?} is neither a socket address (127.0.0.1:9464) nor off"))
}

/// A trusted proxy: a CIDR (`10.0.0.0/8`) or a single address.
fn parse_network(text: &str) -> Result<ipnet::IpNet, String> {
    let text = text.trim();
    text.parse::<ipnet::IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("{text:?} is neither an address nor a CIDR network"))
}

/// A public base URL: http(s), a host, no query or fragment.
fn parse_public_url(text: &str) -> Result<String, String> {
    let rest = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"))
        .ok_or_else(|| format!("{text:?} must start with https:// or http://"))?;
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() || text.contains(['?', '#', ' ']) {
        return Err(format!(
            "{text:?} is not a base URL (scheme://host[:port][/path])"
        ));
    }
    Ok(text.trim_end_matches('/').to_owned())
}

/// Starts roster on the data directory and serves until SIGINT or SIGTERM, then finishes the
/// requests in flight.
pub async fn run(common: &Common, arguments: ServeArgs) -> Result<ExitCode> {
    let ServeArgs {
        http,
        nats,
        nats_replicas,
        rate_limit,
        rate_limit_burst,
        trusted_proxies,
        public_url,
        admin_http,
        connections,
        streams,
        webhooks,
        view_persist_interval,
        db_cache_mib,
        view_memory_mib,
        aggregate_memory_mib,
    } = arguments;
    let nats = nats.map(|url| roster_engine::log::JetStreamConfig {
        url,
        replicas: nats_replicas,
    });
    let rate_limit = rate_limit
        .map(|rate| roster_gateway::ratelimit::RateLimit::new(rate, rate_limit_burst))
        .transpose()
        .map_err(|reason| anyhow::anyhow!("--rate-limit: {reason}"))?;
    let grpc: SocketAddr = common
        .grpc
        .parse()
        .with_context(|| format!("--grpc {:?} is not a socket address", common.grpc))?;
    let mut config = Config::new(&common.data_dir, http, grpc);
    config.nats = nats;
    config.rate_limit = rate_limit;
    config.trusted_proxies = trusted_proxies;
    config.public_url = public_url;
    config.connections = connections.limits();
    config.admin_http = admin_http.0;
    config.streams = streams;
    config.view_persist_interval = view_persist_interval;
    config.cache_bytes = db_cache_mib << 20;
    // At most 2^40 bytes (the range above): fits a usize on the 64-bit targets roster builds for.
    config.view_memory_bytes = usize::try_from(view_memory_mib << 20).unwrap_or(usize::MAX);
    config.aggregate_memory_bytes =
        usize::try_from(aggregate_memory_mib << 20).unwrap_or(usize::MAX);
    config.webhooks = roster_gateway::webhooks::WebhookSettings {
        retry_schedule: webhooks.webhook_retry_schedule,
        timeout: webhooks.webhook_timeout,
        max_in_flight: webhooks.webhook_max_in_flight,
    };
    if let Some(limit) = rate_limit {
        tracing::info!(
            target: LOG_TARGET,
            per_second = limit.per_second,
            burst = limit.burst,
            "SCIM rate limit per token"
        );
    }
    // Listened for before the start, so that a signal during it is not lost (nor kills the
    // process halfway): roster finishes starting, then stops cleanly.
    let shutdown = ShutdownSignal::listen();
    let running = app::start(config).await?;
    let token_file = running.admin_token_file.display();
    tracing::info!(target: LOG_TARGET, path = %token_file, "admin token file");
    shutdown.received().await;
    tracing::info!(target: LOG_TARGET, "shutting down: finishing in-flight requests");
    running.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// SIGINT or SIGTERM (Ctrl-C elsewhere), registered when created.
struct ShutdownSignal {
    #[cfg(unix)]
    signals: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl ShutdownSignal {
    fn listen() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let signals = signal(SignalKind::terminate())
                .and_then(|terminate| Ok((terminate, signal(SignalKind::interrupt())?)))
                .ok();
            Self { signals }
        }
        #[cfg(not(unix))]
        {
            Self {}
        }
    }

    async fn received(self) {
        #[cfg(unix)]
        if let Some((mut terminate, mut interrupt)) = self.signals {
            tokio::select! {
                _ = terminate.recv() => {},
                _ = interrupt.recv() => {},
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_view_persist_interval_outside_100ms_to_1h_is_refused_by_name() {
        assert_eq!(
            parse_view_persist_interval("200ms").unwrap(),
            std::time::Duration::from_millis(200)
        );
        assert_eq!(
            parse_view_persist_interval("1h").unwrap(),
            std::time::Duration::from_secs(3600)
        );
        let refused = parse_view_persist_interval("50ms").unwrap_err();
        assert!(refused.contains("between 100ms and 1h"), "{refused}");
        assert!(parse_view_persist_interval("2h").is_err());
        assert!(parse_view_persist_interval("5").is_err());
    }
}
