//! The `roster` command: `serve` runs the stack; the other subcommands are admin clients that
//! talk to a running roster over gRPC with the admin token.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use roster_gateway::app::{self, ADMIN_TOKEN_FILE, Config};
use roster_gateway::connections::ConnectionLimits;
use roster_proto::v1 as pb;
use roster_proto::v1::admin_client::AdminClient;
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::transport::Channel;
use tracing_subscriber::EnvFilter;

/// sled allocates on every node update; mimalloc handles that churn far better than glibc's
/// allocator (measured: about a fifth of the CPU went to glibc malloc under create load).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "roster",
    version,
    about = "Event-sourced identity lifecycle engine with a SCIM 2.0 gateway"
)]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Debug)]
struct Common {
    /// Data directory (the embedded log, views, and admin.token).
    #[arg(
        long,
        global = true,
        env = "ROSTER_DATA_DIR",
        default_value = "./roster-data"
    )]
    data_dir: PathBuf,
    /// gRPC address: where `serve` listens, and where the admin commands connect.
    #[arg(
        long,
        global = true,
        env = "ROSTER_GRPC",
        default_value = "127.0.0.1:50051"
    )]
    grpc: String,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run roster: SCIM over HTTP and gRPC, on the embedded event log or on NATS JetStream.
    Serve {
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
    },
    /// Manage tenants (organizations).
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Manage a tenant's SCIM bearer tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Org roles: a tenant's default role and the SCIM groups mapped to roles.
    #[command(subcommand)]
    Role(RoleCommand),
    /// Resource groups: link SCIM groups with a role, or manage members by hand.
    #[command(subcommand, name = "rg")]
    ResourceGroup(ResourceGroupCommand),
    /// The tamper-evident audit trail: export and verify.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Rebuild every projection from the log (roster must be stopped).
    Rebuild {
        /// Rebuild the engine's aggregate from the log too.
        #[arg(long)]
        aggregate: bool,
    },
    /// Check a stopped roster's data directory: reads the whole event log, holds it against the
    /// watermark of what was acknowledged, and reports how far the aggregate and views reached.
    /// Exits 0 when the log is whole, 1 when it lost or damaged events.
    Check {
        /// Accept the log as it is on disk, events lost included, so that roster starts on it
        /// again (its aggregate and views are then rebuilt). Only once a backup is ruled out.
        #[arg(long)]
        accept_loss: bool,
        /// Rebuild the log's tenant index from the events (it is derived data: no event is
        /// touched), when the check reports it wrong.
        #[arg(long)]
        reindex: bool,
    },
    /// Play SCIM load against a running roster and report throughput and latency.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Compare a tenant with an IdP export; exits 0 without drift, 1 with drift, 2 on error.
    Drift(DriftArgs),
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum ExportFormat {
    Jsonl,
    Csv,
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

/// Where `serve` sits in the network: the proxies it trusts and its public URL.
struct NetworkOptions {
    trusted_proxies: Vec<ipnet::IpNet>,
    public_url: Option<String>,
    connections: ConnectionLimits,
    admin_http: Option<SocketAddr>,
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

/// A point in time on the command line: RFC 3339, or a date (midnight UTC).
fn parse_time(text: &str) -> Result<roster_engine::domain::Timestamp, String> {
    use roster_engine::domain::Timestamp;
    Timestamp::parse_rfc3339(text)
        .or_else(|| Timestamp::parse_rfc3339(&format!("{text}T00:00:00Z")))
        .ok_or_else(|| format!("{text:?} is not an RFC 3339 time or a YYYY-MM-DD date"))
}

#[derive(Subcommand, Debug)]
enum AuditCommand {
    /// Stream a tenant's audit records to stdout.
    Export {
        tenant: String,
        /// Only records at or after this time (RFC 3339 or YYYY-MM-DD).
        #[arg(long, value_parser = parse_time)]
        since: Option<roster_engine::domain::Timestamp>,
        /// Only records before this time.
        #[arg(long, value_parser = parse_time)]
        until: Option<roster_engine::domain::Timestamp>,
        #[arg(long, value_enum, default_value = "jsonl")]
        format: ExportFormat,
        /// Only these event types (repeatable), e.g. user.deactivated.
        #[arg(long = "type")]
        event_types: Vec<String>,
        /// Only records about this resource id.
        #[arg(long)]
        target: Option<String>,
    },
    /// Recompute a tenant's hash chain; exits non-zero and names the first bad record.
    Verify { tenant: String },
}

/// A role name on the command line.
fn parse_role(text: &str) -> Result<pb::Role, String> {
    let role: roster_engine::domain::Role = text.parse()?;
    Ok(roster_engine::codec::role_to_proto(role))
}

fn role_name(role: i32) -> &'static str {
    roster_engine::codec::role_from_proto(role).map_or("none", |role| role.as_str())
}

#[derive(Subcommand, Debug)]
enum RoleCommand {
    /// Show the default role and every group → role mapping.
    List { tenant: String },
    /// Set the role of users whose groups map to none (read, contributor, write, admin).
    Default {
        tenant: String,
        #[arg(value_parser = parse_role)]
        role: pb::Role,
    },
    /// Map a SCIM group (id or displayName) to an org role.
    Map {
        tenant: String,
        group: String,
        #[arg(value_parser = parse_role)]
        role: pb::Role,
    },
    /// Remove a group's mapping.
    Unmap { tenant: String, group: String },
    /// SSO claim → org role mappings for just-in-time provisioning.
    #[command(subcommand)]
    Claim(ClaimCommand),
}

// ---- just-in-time provisioning: `roster role claim …` ---------------------------------------

#[derive(Subcommand, Debug)]
enum ClaimCommand {
    /// Grant an org role to SSO logins whose claim holds a value (again: change the role).
    Set {
        tenant: String,
        /// Dotted attribute path into the claims: groups, roles, custom.department, …
        #[arg(long)]
        claim: String,
        /// The value to match (case-insensitive; a string, or any element of an array).
        #[arg(long)]
        value: String,
        #[arg(long, value_parser = parse_role)]
        role: pb::Role,
    },
    /// Remove a claim mapping.
    Remove {
        tenant: String,
        #[arg(long)]
        claim: String,
        #[arg(long)]
        value: String,
    },
}

async fn claim_mapping(
    client: &mut AdminClient<tonic::service::interceptor::InterceptedService<Channel, AdminToken>>,
    command: ClaimCommand,
) -> Result<tonic::Response<pb::RoleMappings>, tonic::Status> {
    match command {
        ClaimCommand::Set {
            tenant,
            claim,
            value,
            role,
        } => {
            client
                .set_claim_role_mapping(pb::SetClaimRoleMappingRequest {
                    tenant,
                    claim,
                    value,
                    role: role.into(),
                })
                .await
        }
        ClaimCommand::Remove {
            tenant,
            claim,
            value,
        } => {
            client
                .remove_claim_role_mapping(pb::RemoveClaimRoleMappingRequest {
                    tenant,
                    claim,
                    value,
                })
                .await
        }
    }
}

// ---- end of just-in-time provisioning ----------------------------------------------------------

#[derive(Subcommand, Debug)]
enum ResourceGroupCommand {
    /// List resource groups with their links and members.
    List {
        tenant: String,
    },
    Create {
        tenant: String,
        name: String,
    },
    Delete {
        tenant: String,
        resource_group: String,
    },
    /// Link a SCIM group with a role (or change the role of an existing link).
    Link {
        tenant: String,
        resource_group: String,
        group: String,
        #[arg(value_parser = parse_role)]
        role: pb::Role,
    },
    Unlink {
        tenant: String,
        resource_group: String,
        group: String,
    },
    /// Add a user (id or userName) by hand, or change their role; refused when SCIM-managed.
    AddMember {
        tenant: String,
        resource_group: String,
        user: String,
        #[arg(value_parser = parse_role)]
        role: pb::Role,
    },
    /// Remove a user added by hand; refused when SCIM-managed.
    RemoveMember {
        tenant: String,
        resource_group: String,
        user: String,
    },
}

#[derive(Subcommand, Debug)]
enum BenchCommand {
    /// Create users as fast as `--clients` concurrent clients can, one request at a time each.
    Creates {
        /// The running roster's SCIM HTTP address; several, comma-separated, spread the clients
        /// over several roster processes (NATS mode).
        #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:8080")]
        http: Vec<String>,
        #[arg(long, default_value_t = 32)]
        clients: usize,
        #[arg(long, default_value_t = 20_000)]
        users: usize,
        /// Fresh `bench-…` tenants to spread the clients over.
        #[arg(long, default_value_t = 1, conflicts_with = "tenant")]
        tenants: usize,
        /// Tenant to load; default: fresh `bench-…` tenants created with the admin token.
        #[arg(long, requires = "token")]
        tenant: Option<String>,
        /// SCIM token of `--tenant`.
        #[arg(long)]
        token: Option<String>,
    },
    /// Offline (roster stopped): append a realistic history of about `--events` events to the
    /// data directory through the engine. Then `roster rebuild` times the projections.
    Seed {
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        #[arg(long, default_value_t = 1)]
        tenants: usize,
    },
    /// Offline (roster stopped, views built): time point-in-time queries.
    History {
        #[arg(long, default_value_t = 2000)]
        rounds: usize,
    },
    /// GetUserAccess and CheckAccess throughput and latency over gRPC.
    Grpc {
        #[arg(long, default_value = "127.0.0.1:8080")]
        http: String,
        #[arg(long, default_value_t = 2000)]
        users: usize,
        #[arg(long, default_value_t = 64)]
        streams: usize,
        /// Seconds per RPC.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// Realistic IdP traffic (initial sync, churn, lookups, read mix), each phase also played
    /// against a bare echo server (the ceiling); reports figures and roster's peak RSS.
    Idp {
        #[arg(long, default_value = "127.0.0.1:8080")]
        http: String,
        #[arg(long, default_value_t = 10_000)]
        users: usize,
        #[arg(long, default_value_t = 100)]
        groups: usize,
        /// Members added per group PATCH in the initial sync.
        #[arg(long, default_value_t = 100)]
        members_per_patch: usize,
        #[arg(long, default_value_t = 32)]
        clients: usize,
        /// Seconds of each timed phase (churn, lookups, read mix).
        #[arg(long, default_value_t = 15)]
        seconds: u64,
    },
    /// Time single-member adds/removes and member-less reads on groups of several sizes.
    Groups {
        #[arg(long, default_value = "127.0.0.1:8080")]
        http: String,
        /// Group sizes to measure.
        #[arg(long, value_delimiter = ',', default_value = "10,10000,100000")]
        sizes: Vec<usize>,
        /// Measured operations of each kind per size.
        #[arg(long, default_value_t = 200)]
        rounds: usize,
    },
}

#[derive(Subcommand, Debug)]
enum TenantCommand {
    /// Create a tenant; prints its first SCIM bearer token as the last line of stdout.
    Create {
        name: String,
        /// Name of the first token.
        #[arg(long, default_value = "default")]
        token_name: String,
    },
    /// List tenants.
    List,
    /// Change a tenant's policy.
    Set {
        tenant: String,
        /// Members must come through the tenant's IdP: CheckAccess denies other sessions.
        #[arg(long)]
        sso_enforced: Option<bool>,
    },
    /// Put a tenant in staging: its SCIM reads and writes (same URL and token) go to a copy of its
    /// directory until `promote` or `discard`; live access is untouched meanwhile.
    Stage { tenant: String },
    /// Show what promoting the staging would change, per user. Exit code 0; with --exit-code,
    /// 2 when promotion would change something (errors are always 1).
    Diff {
        tenant: String,
        #[arg(long, value_enum, default_value_t = DiffFormat::Text)]
        format: DiffFormat,
        /// Exit with 2 when promotion would change something, 0 when not.
        #[arg(long)]
        exit_code: bool,
    },
    /// Apply the staged changes to the live tenant in one step and leave staging.
    Promote {
        tenant: String,
        #[arg(long, value_enum, default_value_t = DiffFormat::Text)]
        format: DiffFormat,
    },
    /// Leave staging and drop the staged changes; the live tenant is untouched.
    Discard { tenant: String },
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum DiffFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum TokenCommand {
    /// Issue a new SCIM bearer token; prints it as the last line of stdout.
    Issue {
        tenant: String,
        #[arg(long, default_value = "default")]
        name: String,
        /// Lifetime, e.g. 90d, 12h (default: never expires).
        #[arg(long, value_parser = parse_duration)]
        expires: Option<prost_types::Duration>,
    },
    /// List a tenant's tokens (never their secrets): state, expiry, last use.
    List { tenant: String },
    /// Revoke a token at once.
    Revoke { tenant: String, token_id: String },
    /// Issue a new token and keep the old one valid for the overlap only; prints the new token
    /// as the last line of stdout.
    Rotate {
        tenant: String,
        token_id: String,
        /// How long the old token keeps working, e.g. 24h (default 24h).
        #[arg(long, value_parser = parse_duration)]
        overlap: Option<prost_types::Duration>,
        /// Lifetime of the new token (default: never expires).
        #[arg(long, value_parser = parse_duration)]
        expires: Option<prost_types::Duration>,
        /// Name of the new token (default: the old one's).
        #[arg(long, default_value = "")]
        name: String,
    },
}

/// `90d`, `12h`, `30m`, `45s` or `2w`.
fn parse_duration(text: &str) -> Result<prost_types::Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{text:?} needs a unit: s, m, h, d or w (e.g. 90d)"))?;
    let (number, unit) = text.split_at(split);
    let number: i64 = number
        .parse()
        .map_err(|_| format!("{text:?} does not start with a number"))?;
    let unit_seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => {
            return Err(format!(
                "unknown unit {unit:?} in {text:?}: use s, m, h, d or w"
            ));
        }
    };
    let seconds = number
        .checked_mul(unit_seconds)
        .filter(|seconds| *seconds > 0)
        .ok_or_else(|| format!("{text:?} is not a positive duration"))?;
    Ok(prost_types::Duration { seconds, nanos: 0 })
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve {
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
        } => {
            let nats = nats.map(|url| roster_engine::log::JetStreamConfig {
                url,
                replicas: nats_replicas,
            });
            let rate_limit = rate_limit
                .map(|rate| roster_gateway::ratelimit::RateLimit::new(rate, rate_limit_burst))
                .transpose()
                .map_err(|reason| anyhow::anyhow!("--rate-limit: {reason}"))?;
            let network = NetworkOptions {
                trusted_proxies,
                public_url,
                connections: connections.limits(),
                admin_http: admin_http.0,
            };
            serve(&cli.common, http, nats, rate_limit, network, streams).await
        }
        Command::Tenant(command) => tenant(&cli.common, command).await,
        Command::Token(command) => token(&cli.common, command).await,
        Command::Role(command) => role(&cli.common, command).await,
        Command::ResourceGroup(command) => resource_group(&cli.common, command).await,
        Command::Audit(command) => audit(&cli.common, command).await,
        Command::Rebuild { aggregate } => rebuild(&cli.common, aggregate).await,
        Command::Check {
            accept_loss,
            reindex,
        } => check(&cli.common, accept_loss, reindex).await,
        Command::Bench(command) => bench(&cli.common, command).await,
        Command::Drift(arguments) => drift(&cli.common, arguments).await,
    }
}

async fn serve(
    common: &Common,
    http: SocketAddr,
    nats: Option<roster_engine::log::JetStreamConfig>,
    rate_limit: Option<roster_gateway::ratelimit::RateLimit>,
    network: NetworkOptions,
    streams: roster_gateway::grpc::StreamLimits,
) -> Result<()> {
    let grpc: SocketAddr = common
        .grpc
        .parse()
        .with_context(|| format!("--grpc {:?} is not a socket address", common.grpc))?;
    let mut config = Config::new(&common.data_dir, http, grpc);
    config.nats = nats;
    config.rate_limit = rate_limit;
    config.trusted_proxies = network.trusted_proxies;
    config.public_url = network.public_url;
    config.connections = network.connections;
    config.admin_http = network.admin_http;
    config.streams = streams;
    if let Some(limit) = rate_limit {
        tracing::info!(
            per_second = limit.per_second,
            burst = limit.burst,
            "SCIM rate limit per token"
        );
    }
    let running = app::start(config).await?;
    tracing::info!(path = %running.admin_token_file.display(), "admin token file");
    shutdown_signal().await;
    tracing::info!("shutting down: finishing in-flight requests");
    running.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = match signal(SignalKind::terminate()) {
            Ok(terminate) => terminate,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = terminate.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Attaches the admin token to every call.
#[derive(Clone)]
struct AdminToken(MetadataValue<tonic::metadata::Ascii>);

impl Interceptor for AdminToken {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

fn admin_token(data_dir: &Path) -> Result<String> {
    if let Ok(token) = std::env::var("ROSTER_ADMIN_TOKEN")
        && !token.trim().is_empty()
    {
        return Ok(token.trim().to_owned());
    }
    let path = data_dir.join(ADMIN_TOKEN_FILE);
    let token = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "reading the admin token from {} (set ROSTER_ADMIN_TOKEN or --data-dir)",
            path.display()
        )
    })?;
    Ok(token.trim().to_owned())
}

async fn admin_client(
    common: &Common,
) -> Result<AdminClient<tonic::service::interceptor::InterceptedService<Channel, AdminToken>>> {
    let token = admin_token(&common.data_dir)?;
    let header: MetadataValue<_> = format!("Bearer {token}")
        .parse()
        .context("the admin token contains characters not allowed in a header")?;
    let endpoint = if common.grpc.contains("://") {
        common.grpc.clone()
    } else {
        format!("http://{}", common.grpc)
    };
    let channel = Channel::from_shared(endpoint.clone())
        .with_context(|| format!("invalid gRPC address {endpoint:?}"))?
        .connect()
        .await
        .with_context(|| {
            format!("connecting to roster at {endpoint} (is `roster serve` running?)")
        })?;
    Ok(AdminClient::with_interceptor(channel, AdminToken(header)))
}

fn rpc_error(status: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{:?}: {}", status.code(), status.message())
}

fn show_token(token: &pb::TokenInfo) -> String {
    let time = |at: &Option<prost_types::Timestamp>| {
        at.as_ref()
            .map(roster_engine::codec::timestamp_from_proto)
            .map(|at| at.to_rfc3339())
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs() as i64);
    let state = if token.revoked_at.is_some() {
        "revoked"
    } else if token
        .expires_at
        .as_ref()
        .is_some_and(|at| at.seconds <= now)
    {
        "expired"
    } else {
        "active"
    };
    format!(
        "{}\t{}\t{}\texpires={}\tlast_used={}",
        token.id,
        token.name,
        state,
        time(&token.expires_at).unwrap_or_else(|| "never".into()),
        time(&token.last_used_at).unwrap_or_else(|| "never".into()),
    )
}

async fn tenant(common: &Common, command: TenantCommand) -> Result<()> {
    let mut client = admin_client(common).await?;
    match command {
        TenantCommand::Create { name, token_name } => {
            let response = client
                .create_tenant(pb::CreateTenantRequest { name, token_name })
                .await
                .map_err(rpc_error)?
                .into_inner();
            let Some(token) = response.token else {
                bail!("roster returned no token");
            };
            println!("tenant {} created", response.tenant);
            println!("SCIM base URL path: /scim/v2/{}", response.tenant);
            println!(
                "token id {} ({}); the token below is shown only once:",
                token.id, token.name
            );
            println!("{}", response.secret);
        }
        TenantCommand::List => {
            let response = client
                .list_tenants(pb::ListTenantsRequest {})
                .await
                .map_err(rpc_error)?
                .into_inner();
            for tenant in response.tenants {
                println!(
                    "{}\tusers={}\tgroups={}\tsso_enforced={}\tstaged={}",
                    tenant.name, tenant.users, tenant.groups, tenant.sso_enforced, tenant.staged
                );
            }
        }
        TenantCommand::Set {
            tenant,
            sso_enforced,
        } => {
            let info = client
                .set_tenant_settings(pb::SetTenantSettingsRequest {
                    tenant,
                    sso_enforced,
                })
                .await
                .map_err(rpc_error)?
                .into_inner();
            println!("{}\tsso_enforced={}", info.name, info.sso_enforced);
        }
        TenantCommand::Stage { tenant } => {
            let response = client
                .stage_tenant(pb::StageTenantRequest { tenant })
                .await
                .map_err(rpc_error)?
                .into_inner();
            let name = response.tenant.map(|info| info.name).unwrap_or_default();
            println!(
                "tenant {name} {} (staging {}): {} users and {} groups copied; SCIM now reads and \
                 writes the staged copy",
                if response.resumed {
                    "staging finished"
                } else {
                    "staged"
                },
                response.generation,
                response.users_copied,
                response.groups_copied
            );
        }
        TenantCommand::Diff {
            tenant,
            format,
            exit_code,
        } => {
            let diff = client
                .get_staging_diff(pb::GetStagingDiffRequest { tenant })
                .await
                .map_err(rpc_error)?
                .into_inner();
            print_staging_diff(&diff, format, false);
            // Any event beyond `StagingPromoted` is a change, a user's or not (a group deleted
            // with its role mapping and resource-group links changes no member's access).
            if exit_code && (!diff.users.is_empty() || !diff.groups.is_empty() || diff.events > 1) {
                std::process::exit(2);
            }
        }
        TenantCommand::Promote { tenant, format } => {
            let response = client
                .promote_tenant(pb::PromoteTenantRequest { tenant })
                .await
                .map_err(rpc_error)?
                .into_inner();
            if let Some(promoted) = &response.promoted {
                print_staging_diff(promoted, format, true);
            }
        }
        TenantCommand::Discard { tenant } => {
            let response = client
                .discard_staging(pb::DiscardStagingRequest { tenant })
                .await
                .map_err(rpc_error)?
                .into_inner();
            let name = response.tenant.map(|info| info.name).unwrap_or_default();
            println!(
                "tenant {name}: staging {} discarded; SCIM reads and writes the live tenant again",
                response.generation
            );
        }
    }
    Ok(())
}

fn staged_role_text(role: Option<&pb::StagedRole>) -> String {
    use pb::role_source::Kind;
    let Some(role) = role else {
        return "(none)".to_owned();
    };
    let name = roster_engine::codec::role_from_proto(role.role).map_or("?", |role| role.as_str());
    match role.source.as_ref().and_then(|source| source.kind.as_ref()) {
        Some(Kind::Group(group)) => format!("{name} (group {})", group.display_name),
        Some(Kind::DefaultRole(_)) => format!("{name} (default)"),
        Some(Kind::Manual(_)) => format!("{name} (set by hand)"),
        Some(Kind::Claim(claim)) => format!("{name} (SSO claim {}={})", claim.claim, claim.value),
        None => name.to_owned(),
    }
}

fn staged_role_json(role: Option<&pb::StagedRole>) -> serde_json::Value {
    use pb::role_source::Kind;
    let Some(role) = role else {
        return serde_json::Value::Null;
    };
    let name = roster_engine::codec::role_from_proto(role.role).map(|role| role.as_str());
    let source = match role.source.as_ref().and_then(|source| source.kind.as_ref()) {
        Some(Kind::Group(group)) => {
            serde_json::json!({"group": {"id": group.id, "displayName": group.display_name}})
        }
        Some(Kind::DefaultRole(_)) => serde_json::json!("default"),
        Some(Kind::Manual(_)) => serde_json::json!("manual"),
        Some(Kind::Claim(claim)) => {
            serde_json::json!({"claim": {"claim": claim.claim, "value": claim.value}})
        }
        None => serde_json::Value::Null,
    };
    serde_json::json!({"role": name, "source": source})
}

fn change_name(change: i32) -> &'static str {
    use pb::user_staging_change::Change;
    match Change::try_from(change).unwrap_or(Change::Unspecified) {
        Change::Created => "created",
        Change::Deleted => "deleted",
        Change::Deactivated => "deactivated",
        Change::Reactivated => "reactivated",
        Change::Updated => "updated",
        Change::None | Change::Unspecified => "unchanged",
    }
}

/// Prints a staging diff (`done`: what a promotion changed) as text or JSON.
fn print_staging_diff(diff: &pb::StagingDiff, format: DiffFormat, done: bool) {
    if format == DiffFormat::Json {
        let groups = |groups: &[pb::GroupRef]| {
            groups
                .iter()
                .map(|group| serde_json::json!({"id": group.id, "displayName": group.display_name}))
                .collect::<Vec<_>>()
        };
        let users: Vec<serde_json::Value> = diff
            .users
            .iter()
            .map(|user| {
                serde_json::json!({
                    "userId": user.user_id,
                    "userName": user.user_name,
                    "previousUserName": (!user.previous_user_name.is_empty())
                        .then_some(&user.previous_user_name),
                    "change": change_name(user.change),
                    "orgRole": user.org_role.as_ref().map(|change| serde_json::json!({
                        "before": staged_role_json(change.before.as_ref()),
                        "after": staged_role_json(change.after.as_ref()),
                    })),
                    "resourceGroups": user.resource_groups.iter().map(|change| serde_json::json!({
                        "id": change.resource_group_id,
                        "name": change.resource_group_name,
                        "before": staged_role_json(change.before.as_ref()),
                        "after": staged_role_json(change.after.as_ref()),
                    })).collect::<Vec<_>>(),
                    "groupsJoined": groups(&user.groups_joined),
                    "groupsLeft": groups(&user.groups_left),
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "tenant": diff.tenant,
                "staging": diff.generation,
                "promoted": done,
                "events": diff.events,
                "users": users,
                "groups": diff.groups.iter().map(group_change_json).collect::<Vec<_>>(),
            })
        );
        return;
    }
    let verb = if done {
        "promoted"
    } else {
        "promotion would change"
    };
    println!(
        "tenant {}, staging {}: {verb} {} user(s) and {} group(s) ({} events)",
        diff.tenant,
        diff.generation,
        diff.users.len(),
        diff.groups.len(),
        diff.events
    );
    for user in &diff.users {
        let change = change_name(user.change);
        let mark = match change {
            "created" | "reactivated" => '+',
            "deleted" | "deactivated" => '-',
            _ => '~',
        };
        let renamed = if user.previous_user_name.is_empty() {
            String::new()
        } else {
            format!(" (was {})", user.previous_user_name)
        };
        let lifecycle = if change == "unchanged" {
            String::new()
        } else {
            format!("  {change}")
        };
        println!("{mark} {}{renamed}{lifecycle}", user.user_name);
        if let Some(role) = &user.org_role {
            println!(
                "    org role: {} -> {}",
                staged_role_text(role.before.as_ref()),
                staged_role_text(role.after.as_ref())
            );
        }
        for change in &user.resource_groups {
            println!(
                "    resource group {}: {} -> {}",
                change.resource_group_name,
                staged_role_text(change.before.as_ref()),
                staged_role_text(change.after.as_ref())
            );
        }
        let names = |groups: &[pb::GroupRef]| {
            groups
                .iter()
                .map(|group| group.display_name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        if !user.groups_joined.is_empty() {
            println!("    joins: {}", names(&user.groups_joined));
        }
        if !user.groups_left.is_empty() {
            println!("    leaves: {}", names(&user.groups_left));
        }
    }
    for group in &diff.groups {
        let change = group_change_name(group);
        let mark = match change {
            "created" => '+',
            "deleted" => '-',
            _ => '~',
        };
        let renamed = if group.previous_display_name.is_empty() {
            String::new()
        } else {
            format!(" (was {})", group.previous_display_name)
        };
        println!("{mark} group {}{renamed}  {change}", group.display_name);
        if roster_engine::codec::role_from_proto(group.role_mapping_removed).is_some() {
            println!(
                "    role mapping removed: {}",
                role_name(group.role_mapping_removed)
            );
        }
        for resource_group in &group.unlinked_resource_groups {
            println!("    unlinked from resource group {resource_group}");
        }
    }
}

fn group_change_name(group: &pb::GroupStagingChange) -> &'static str {
    use pb::group_staging_change::Change;
    match group.change() {
        Change::Created => "created",
        Change::Deleted => "deleted",
        Change::Updated | Change::Unspecified => "updated",
    }
}

fn group_change_json(group: &pb::GroupStagingChange) -> serde_json::Value {
    let change = group_change_name(group);
    serde_json::json!({
        "groupId": group.group_id,
        "displayName": group.display_name,
        "previousDisplayName": (!group.previous_display_name.is_empty())
            .then_some(&group.previous_display_name),
        "change": change,
        "roleMappingRemoved": roster_engine::codec::role_from_proto(group.role_mapping_removed)
            .map(|role| role.as_str()),
        "unlinkedResourceGroups": group.unlinked_resource_groups,
    })
}

async fn token(common: &Common, command: TokenCommand) -> Result<()> {
    let mut client = admin_client(common).await?;
    match command {
        TokenCommand::Rotate {
            tenant,
            token_id,
            overlap,
            expires,
            name,
        } => {
            let response = client
                .rotate_token(pb::RotateTokenRequest {
                    tenant,
                    token_id,
                    name,
                    overlap,
                    expires_in: expires,
                })
                .await
                .map_err(rpc_error)?
                .into_inner();
            if let Some(previous) = &response.previous {
                println!("old: {}", show_token(previous));
            }
            if let Some(token) = &response.token {
                println!(
                    "new: {}; the token below is shown only once:",
                    show_token(token)
                );
            }
            println!("{}", response.secret);
        }
        TokenCommand::Issue {
            tenant,
            name,
            expires,
        } => {
            let response = client
                .issue_token(pb::IssueTokenRequest {
                    tenant,
                    name,
                    expires_in: expires,
                })
                .await
                .map_err(rpc_error)?
                .into_inner();
            let Some(token) = response.token else {
                bail!("roster returned no token");
            };
            println!(
                "token id {} ({}); the token below is shown only once:",
                token.id, token.name
            );
            println!("{}", response.secret);
        }
        TokenCommand::List { tenant } => {
            let response = client
                .list_tokens(pb::ListTokensRequest { tenant })
                .await
                .map_err(rpc_error)?
                .into_inner();
            for token in &response.tokens {
                println!("{}", show_token(token));
            }
        }
        TokenCommand::Revoke { tenant, token_id } => {
            let response = client
                .revoke_token(pb::RevokeTokenRequest { tenant, token_id })
                .await
                .map_err(rpc_error)?
                .into_inner();
            if let Some(token) = response.token {
                println!("{}", show_token(&token));
            }
        }
    }
    Ok(())
}

async fn bench_tenant(common: &Common) -> Result<(String, String)> {
    let name = format!("bench-{}", uuid::Uuid::now_v7().simple());
    let name = name[..name.len().min(40)].to_owned();
    let response = admin_client(common)
        .await?
        .create_tenant(pb::CreateTenantRequest {
            name,
            token_name: "bench".into(),
        })
        .await
        .map_err(rpc_error)?
        .into_inner();
    Ok((response.tenant, response.secret))
}

fn bench_target(http: &str, tenant: &str, token: String) -> roster_gateway::bench::Target {
    let origin = if http.contains("://") {
        http.to_owned()
    } else {
        format!("http://{http}")
    };
    roster_gateway::bench::Target {
        base_url: format!("{origin}/scim/v2/{tenant}"),
        token,
    }
}

async fn bench(common: &Common, command: BenchCommand) -> Result<()> {
    match command {
        BenchCommand::Creates {
            http,
            clients,
            users,
            tenants,
            tenant,
            token,
        } => {
            let tenants = match (tenant, token) {
                (Some(tenant), Some(token)) => vec![(tenant, token)],
                _ => {
                    let mut created = Vec::new();
                    for _ in 0..tenants.max(1) {
                        created.push(bench_tenant(common).await?);
                    }
                    created
                }
            };
            let targets: Vec<_> = tenants
                .iter()
                .flat_map(|(tenant, token)| {
                    http.iter()
                        .map(|http| bench_target(http, tenant, token.clone()))
                })
                .collect();
            eprintln!(
                "creating {users} users in {} tenant(s) through {} address(es) with {clients} clients",
                tenants.len(),
                http.len()
            );
            let report = roster_gateway::bench::creates(&targets, clients, users, "user").await;
            println!("{}", report.summary());
            if report.latencies.is_empty() {
                bail!("no request succeeded");
            }
        }
        BenchCommand::Idp {
            http,
            users,
            groups,
            members_per_patch,
            clients,
            seconds,
        } => {
            let (tenant, token) = bench_tenant(common).await?;
            let target = bench_target(&http, &tenant, token);
            let plan = roster_gateway::bench::idp::IdpPlan {
                users,
                groups,
                members_per_patch,
                clients,
                phase: std::time::Duration::from_secs(seconds),
            };
            eprintln!(
                "IdP traffic into tenant {tenant}: {users} users, {groups} groups, {clients} clients"
            );
            let phases = roster_gateway::bench::idp::run(&target, &plan)
                .await
                .map_err(|error| anyhow::anyhow!(error))?;
            for phase in &phases {
                println!("{}", phase.summary());
            }
            let origin = target
                .base_url
                .split("/scim/v2/")
                .next()
                .unwrap_or_default()
                .to_owned();
            // `/metrics` on the SCIM port answers the admin token only.
            let admin = admin_token(&common.data_dir)?;
            match roster_gateway::bench::idp::peak_rss(&origin, &admin).await {
                Some(bytes) => println!("roster peak RSS: {:.0} MiB", bytes as f64 / 1048576.0),
                None => println!("roster peak RSS: not available from {origin}/metrics"),
            }
        }
        BenchCommand::Grpc {
            http,
            users,
            streams,
            seconds,
        } => {
            let (tenant, token) = bench_tenant(common).await?;
            let target = bench_target(&http, &tenant, token);
            let reports = roster_gateway::bench::grpc_access(
                &target,
                &common.grpc,
                &tenant,
                users,
                streams,
                std::time::Duration::from_secs(seconds),
            )
            .await
            .map_err(|error| anyhow::anyhow!(error))?;
            for report in reports {
                println!("{}", report.summary());
            }
        }
        BenchCommand::Seed { events, tenants } => {
            eprintln!(
                "seeding about {events} events over {tenants} tenant(s) into {}",
                common.data_dir.display()
            );
            let seeded = roster_gateway::bench::history::seed(&common.data_dir, events, tenants)
                .await
                .map_err(|error| anyhow::anyhow!(error))?;
            println!(
                "seeded {} events ({} commands) in {:.1}s: {:.0} events/s",
                seeded.events,
                seeded.commands,
                seeded.elapsed.as_secs_f64(),
                seeded.events as f64 / seeded.elapsed.as_secs_f64().max(f64::EPSILON)
            );
        }
        BenchCommand::History { rounds } => {
            let data_dir = common.data_dir.clone();
            let measured = tokio::task::spawn_blocking(move || {
                roster_gateway::bench::history::point_in_time(&data_dir, rounds)
            })
            .await?
            .map_err(|error| anyhow::anyhow!(error))?;
            println!("history of {} events", measured.events);
            for report in [&measured.members_at, &measured.access_at] {
                let millis = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
                println!(
                    "{}: p50 {:.3} ms, p99 {:.3} ms, p999 {:.3} ms",
                    report.name,
                    millis(report.percentile(0.5)),
                    millis(report.percentile(0.99)),
                    millis(report.percentile(0.999))
                );
            }
        }
        BenchCommand::Groups {
            http,
            sizes,
            rounds,
        } => {
            let (tenant, token) = bench_tenant(common).await?;
            let target = bench_target(&http, &tenant, token);
            let results = roster_gateway::bench::group_scale(&target, &sizes, rounds)
                .await
                .map_err(|error| anyhow::anyhow!(error))?;
            for scale in results {
                for report in [&scale.add, &scale.remove, &scale.read_without_members] {
                    let millis = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
                    println!(
                        "{}: p50 {:.2} ms, p99 {:.2} ms",
                        report.name,
                        millis(report.percentile(0.5)),
                        millis(report.percentile(0.99))
                    );
                }
            }
        }
    }
    Ok(())
}
fn show_role_mappings(mappings: &pb::RoleMappings) {
    println!("default\t{}", role_name(mappings.default_role));
    for mapping in &mappings.mappings {
        println!(
            "{}\t{}\t{}",
            mapping.group_id,
            mapping.group_display_name,
            role_name(mapping.role)
        );
    }
    for mapping in &mappings.claim_mappings {
        println!(
            "claim\t{}={}\t{}",
            mapping.claim,
            mapping.value,
            role_name(mapping.role)
        );
    }
}

async fn role(common: &Common, command: RoleCommand) -> Result<()> {
    let mut client = admin_client(common).await?;
    let mappings = match command {
        RoleCommand::List { tenant } => {
            client
                .list_role_mappings(pb::ListRoleMappingsRequest { tenant })
                .await
        }
        RoleCommand::Default { tenant, role } => {
            client
                .set_default_role(pb::SetDefaultRoleRequest {
                    tenant,
                    role: role.into(),
                })
                .await
        }
        RoleCommand::Map {
            tenant,
            group,
            role,
        } => {
            client
                .set_role_mapping(pb::SetRoleMappingRequest {
                    tenant,
                    group,
                    role: role.into(),
                })
                .await
        }
        RoleCommand::Unmap { tenant, group } => {
            client
                .remove_role_mapping(pb::RemoveRoleMappingRequest { tenant, group })
                .await
        }
        RoleCommand::Claim(command) => claim_mapping(&mut client, command).await,
    }
    .map_err(rpc_error)?
    .into_inner();
    show_role_mappings(&mappings);
    Ok(())
}

fn show_resource_group(resource_group: &pb::ResourceGroupInfo) {
    let managed = if resource_group.scim_managed {
        "scim-managed"
    } else {
        "manual"
    };
    println!(
        "{}\t{}\t{}",
        resource_group.id, resource_group.name, managed
    );
    for link in &resource_group.links {
        println!(
            "  link\t{}\t{}\t{}",
            link.group_id,
            link.group_display_name,
            role_name(link.role)
        );
    }
    for member in &resource_group.members {
        println!(
            "  member\t{}\t{}\t{}",
            member.user_id,
            member.user_name,
            role_name(member.role)
        );
    }
}

async fn resource_group(common: &Common, command: ResourceGroupCommand) -> Result<()> {
    let mut client = admin_client(common).await?;
    let shown = match command {
        ResourceGroupCommand::List { tenant } => {
            let listed = client
                .list_resource_groups(pb::ListResourceGroupsRequest { tenant })
                .await
                .map_err(rpc_error)?
                .into_inner();
            for resource_group in &listed.resource_groups {
                show_resource_group(resource_group);
            }
            return Ok(());
        }
        ResourceGroupCommand::Delete {
            tenant,
            resource_group,
        } => {
            client
                .delete_resource_group(pb::DeleteResourceGroupRequest {
                    tenant,
                    resource_group: resource_group.clone(),
                })
                .await
                .map_err(rpc_error)?;
            println!("resource group {resource_group} deleted");
            return Ok(());
        }
        ResourceGroupCommand::Create { tenant, name } => {
            client
                .create_resource_group(pb::CreateResourceGroupRequest { tenant, name })
                .await
        }
        ResourceGroupCommand::Link {
            tenant,
            resource_group,
            group,
            role,
        } => {
            client
                .link_resource_group(pb::LinkResourceGroupRequest {
                    tenant,
                    resource_group,
                    group,
                    role: role.into(),
                })
                .await
        }
        ResourceGroupCommand::Unlink {
            tenant,
            resource_group,
            group,
        } => {
            client
                .unlink_resource_group(pb::UnlinkResourceGroupRequest {
                    tenant,
                    resource_group,
                    group,
                })
                .await
        }
        ResourceGroupCommand::AddMember {
            tenant,
            resource_group,
            user,
            role,
        } => {
            client
                .set_resource_group_member(pb::SetResourceGroupMemberRequest {
                    tenant,
                    resource_group,
                    user,
                    role: role.into(),
                })
                .await
        }
        ResourceGroupCommand::RemoveMember {
            tenant,
            resource_group,
            user,
        } => {
            client
                .remove_resource_group_member(pb::RemoveResourceGroupMemberRequest {
                    tenant,
                    resource_group,
                    user,
                })
                .await
        }
    }
    .map_err(rpc_error)?
    .into_inner();
    show_resource_group(&shown);
    Ok(())
}

async fn audit_client(
    common: &Common,
) -> Result<
    roster_proto::v1::audit_client::AuditClient<
        tonic::service::interceptor::InterceptedService<Channel, AdminToken>,
    >,
> {
    let token = admin_token(&common.data_dir)?;
    let header: MetadataValue<_> = format!("Bearer {token}")
        .parse()
        .context("the admin token contains characters not allowed in a header")?;
    let endpoint = if common.grpc.contains("://") {
        common.grpc.clone()
    } else {
        format!("http://{}", common.grpc)
    };
    let channel = Channel::from_shared(endpoint.clone())
        .with_context(|| format!("invalid gRPC address {endpoint:?}"))?
        .connect()
        .await
        .with_context(|| {
            format!("connecting to roster at {endpoint} (is `roster serve` running?)")
        })?;
    Ok(roster_proto::v1::audit_client::AuditClient::with_interceptor(channel, AdminToken(header)))
}

/// Where a stream dropped by the server resumes (its `roster-resume-from` trailer), if it can.
fn resume_point(status: &tonic::Status) -> Option<u64> {
    if !matches!(
        status.code(),
        tonic::Code::Aborted | tonic::Code::ResourceExhausted
    ) {
        return None;
    }
    status
        .metadata()
        .get(roster_gateway::grpc::RESUME_FROM_TRAILER)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Where `roster audit export` writes.
enum AuditOutput<W: std::io::Write> {
    Jsonl(W),
    Csv(Box<csv::Writer<W>>),
}

impl<W: std::io::Write> AuditOutput<W> {
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            AuditOutput::Jsonl(out) => out.flush(),
            AuditOutput::Csv(writer) => writer.flush(),
        }
    }
}

/// Columns of `roster audit export --format csv`, in order.
const AUDIT_CSV_HEADER: [&str; 15] = [
    "sequence",
    "recorded_at",
    "occurred_at",
    "event_type",
    "target",
    "actor_kind",
    "actor_id",
    "actor_display",
    "source_ip",
    "user_agent",
    "request_id",
    "outcome",
    "changes",
    "prev_hash",
    "hash",
];

async fn audit(common: &Common, command: AuditCommand) -> Result<()> {
    use std::io::Write;
    let mut client = audit_client(common).await?;
    match command {
        AuditCommand::Export {
            tenant,
            since,
            until,
            format,
            event_types,
            target,
        } => {
            let request = pb::ReplayRequest {
                tenant,
                from_time: since.map(roster_engine::codec::timestamp_to_proto),
                to_time: until.map(roster_engine::codec::timestamp_to_proto),
                from_sequence: 0,
                to_sequence: 0,
                target: target.unwrap_or_default(),
                actor: String::new(),
                event_types,
            };
            let mut stream = client
                .replay(request.clone())
                .await
                .map_err(rpc_error)?
                .into_inner();
            let stdout = std::io::stdout();
            let out = std::io::BufWriter::new(stdout.lock());
            // JSON lines as the server sent them, or CSV rows quoted by the csv crate (RFC 4180).
            let mut out = match format {
                ExportFormat::Jsonl => AuditOutput::Jsonl(out),
                ExportFormat::Csv => {
                    let mut writer = csv::Writer::from_writer(out);
                    writer.write_record(AUDIT_CSV_HEADER)?;
                    AuditOutput::Csv(Box::new(writer))
                }
            };
            loop {
                let record = match stream.message().await {
                    Ok(Some(record)) => record,
                    Ok(None) => break,
                    // Dropped for reading too slowly (stdout was blocked): resume where it stopped.
                    Err(status) => match resume_point(&status) {
                        Some(from_sequence) => {
                            out.flush()?;
                            stream = client
                                .replay(pb::ReplayRequest {
                                    from_sequence,
                                    ..request.clone()
                                })
                                .await
                                .map_err(rpc_error)?
                                .into_inner();
                            continue;
                        }
                        None => return Err(rpc_error(status)),
                    },
                };
                match &mut out {
                    AuditOutput::Jsonl(out) => writeln!(out, "{}", record.json)?,
                    AuditOutput::Csv(writer) => {
                        let parsed: roster_projector::AuditRecord =
                            serde_json::from_str(&record.json)?;
                        let fields = [
                            parsed.sequence.to_string(),
                            parsed.recorded_at,
                            parsed.occurred_at,
                            parsed.event_type,
                            parsed.target,
                            parsed.actor.kind,
                            parsed.actor.id,
                            parsed.actor.display,
                            parsed.source.ip,
                            parsed.source.user_agent,
                            parsed.source.request_id,
                            parsed.outcome,
                            serde_json::Value::Object(parsed.changes).to_string(),
                            parsed.prev_hash,
                            parsed.hash,
                        ];
                        writer.write_record(&fields)?;
                    }
                }
            }
            out.flush()?;
        }
        AuditCommand::Verify { tenant } => {
            let verified = client
                .verify(pb::VerifyRequest {
                    tenant: tenant.clone(),
                })
                .await
                .map_err(rpc_error)?
                .into_inner();
            if verified.valid {
                println!(
                    "audit trail of {tenant} verified: {} records, head {}",
                    verified.records, verified.head_hash
                );
            } else {
                println!(
                    "audit trail of {tenant} is broken at sequence {}: {} ({} records verified before it)",
                    verified.first_bad_sequence, verified.reason, verified.records
                );
                std::process::exit(1);
            }
        }
    }
    Ok(())
}

async fn rebuild(common: &Common, aggregate: bool) -> Result<()> {
    let data_dir = common.data_dir.clone();
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} rebuilding [{bar:40}] {pos}/{len} events ({per_sec}, eta {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let progress = bar.clone();
    let report = tokio::task::spawn_blocking(move || {
        app::rebuild(&data_dir, aggregate, move |done, total| {
            progress.set_length(total);
            progress.set_position(done);
        })
    })
    .await?
    .context("rebuilding (is `roster serve` running on this data directory? stop it first)")?;
    bar.finish_and_clear();
    if aggregate {
        println!(
            "aggregate rebuilt from {} events in {:.2}s",
            report.aggregate_events,
            report.aggregate_elapsed.as_secs_f64()
        );
    }
    println!(
        "projections rebuilt from {} events in {:.2}s: {:.0} events/s",
        report.events,
        report.elapsed.as_secs_f64(),
        report.events_per_second()
    );
    Ok(())
}

async fn check(common: &Common, accept_loss: bool, reindex: bool) -> Result<()> {
    use roster_engine::log::Verdict;
    let data_dir = common.data_dir.clone();
    let (report, before) =
        tokio::task::spawn_blocking(move || app::check(&data_dir, accept_loss, reindex))
            .await?
            .context(
                "checking (is `roster serve` running on this data directory? stop it first)",
            )?;
    let log = &report.log;
    println!("log: {} events, last sequence {}", log.events, log.head);
    let mut problems = Vec::new();
    if let Some(gap) = log.first_gap {
        problems.push(format!("sequence {gap} is missing from the log"));
    }
    if let Some(reason) = &log.damaged {
        problems.push(format!(
            "the log cannot be read past sequence {}: {reason}",
            log.head
        ));
    }
    if let Some((sequence, reason)) = &log.undecodable {
        problems.push(format!(
            "the event at sequence {sequence} does not decode: {reason}"
        ));
    }
    match &log.verdict {
        Verdict::Unmarked => println!("watermark: none yet (it is written by the next start)"),
        Verdict::Intact { marked } => {
            println!("watermark: sequence {marked}, matching the event on disk")
        }
        Verdict::Truncated { marked, recovered } => problems.push(format!(
            "the log ends at sequence {recovered}, but events up to sequence {marked} were \
             acknowledged as durable: {} acknowledged events are lost",
            marked - recovered
        )),
        Verdict::Diverged { sequence } => problems.push(format!(
            "the log holds another event at sequence {sequence} than the one acknowledged there"
        )),
    }
    match &report.aggregate {
        Ok(checkpoint) => println!("aggregate: at sequence {checkpoint}"),
        Err(reason) => problems.push(format!("the aggregate cannot be read: {reason}")),
    }
    for (name, checkpoint) in &report.projections {
        match checkpoint {
            Ok(checkpoint) => println!("view {name}: at sequence {checkpoint}"),
            Err(reason) => problems.push(format!("view {name} cannot be read: {reason}")),
        }
    }
    if let Some(mark) = before {
        println!(
            "accepted the log as it is: the watermark moved from sequence {} to {}; the aggregate \
             and views are rebuilt from the log at the next start",
            mark.sequence, log.head
        );
    }
    if let Some(batches) = report.reindexed {
        println!("tenant index: rebuilt from the events ({batches} batches)");
    }
    if problems.is_empty() && report.is_sound() {
        println!("ok: the log is whole");
        if let Some(problem) = &log.tenant_index {
            eprintln!("INDEX: {problem}");
            eprintln!(
                "no event is lost: the tenant index is derived from the log; `roster check \
                 --reindex` rebuilds it"
            );
            std::process::exit(1);
        }
        println!("tenant index: matches the log");
        return Ok(());
    }
    for problem in &problems {
        eprintln!("DAMAGED: {problem}");
    }
    eprintln!(
        "restore the data directory from a backup; or, if there is none, `roster check \
         --accept-loss` accepts the log as it is (the events past it are gone for good)"
    );
    std::process::exit(1);
}

// ---- `roster drift`: a tenant against an IdP export (comparison in `roster_gateway::drift`) ----

#[derive(Args, Debug)]
struct DriftArgs {
    tenant: String,
    /// The IdP export: SCIM JSON (ListResponse, pages, array of resources, or
    /// {"Users": …, "Groups": …}) or CSV (userName, externalId, active, groups separated by ;).
    #[arg(long)]
    from: PathBuf,
    /// How the export is written (default: detected from its content).
    #[arg(long, value_enum)]
    input_format: Option<DriftInput>,
    /// Report format: text for people, json (stable, `version` 1) for machines.
    #[arg(long, value_enum, default_value = "text")]
    format: DriftOutput,
    /// Users, groups or members per Directory request (at most 1000).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1000))]
    page_size: u32,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum DriftInput {
    Json,
    Csv,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum DriftOutput {
    Text,
    Json,
}

type DirectoryClient = roster_proto::v1::directory_client::DirectoryClient<
    tonic::service::interceptor::InterceptedService<Channel, AdminToken>,
>;

async fn directory_client(common: &Common) -> Result<DirectoryClient> {
    let token = admin_token(&common.data_dir)?;
    let header: MetadataValue<_> = format!("Bearer {token}")
        .parse()
        .context("the admin token contains characters not allowed in a header")?;
    let endpoint = if common.grpc.contains("://") {
        common.grpc.clone()
    } else {
        format!("http://{}", common.grpc)
    };
    let channel = Channel::from_shared(endpoint.clone())
        .with_context(|| format!("invalid gRPC address {endpoint:?}"))?
        .connect()
        .await
        .with_context(|| {
            format!("connecting to roster at {endpoint} (is `roster serve` running?)")
        })?;
    Ok(
        roster_proto::v1::directory_client::DirectoryClient::with_interceptor(
            channel,
            AdminToken(header),
        )
        .max_decoding_message_size(64 << 20),
    )
}

/// roster's side of the comparison, read a page at a time: users, groups, and the members of
/// the groups the comparison needs.
async fn roster_directory(
    client: &mut DirectoryClient,
    tenant: &str,
    export: &roster_gateway::drift::Export,
    page_size: u32,
) -> Result<roster_gateway::drift::RosterDirectory> {
    let mut directory = roster_gateway::drift::RosterDirectory::default();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_users(pb::ListUsersRequest {
                tenant: tenant.to_owned(),
                page_size,
                page_token,
            })
            .await
            .map_err(rpc_error)?
            .into_inner();
        for user in &page.users {
            directory.add_user(user);
        }
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    if export.carried.groups {
        let mut page_token = String::new();
        loop {
            let page = client
                .list_groups(pb::ListGroupsRequest {
                    tenant: tenant.to_owned(),
                    page_size,
                    page_token,
                })
                .await
                .map_err(rpc_error)?
                .into_inner();
            for group in &page.groups {
                directory.add_group(group);
            }
            if page.next_page_token.is_empty() {
                break;
            }
            page_token = page.next_page_token;
        }
    }
    for group in roster_gateway::drift::groups_needing_members(&directory, export) {
        let mut page_token = String::new();
        loop {
            let page = client
                .list_group_members(pb::ListGroupMembersRequest {
                    tenant: tenant.to_owned(),
                    group: group.clone(),
                    page_size,
                    page_token,
                    as_of: None,
                })
                .await
                .map_err(rpc_error)?
                .into_inner();
            for member in &page.members {
                directory.add_member(&group, member);
            }
            if page.next_page_token.is_empty() {
                break;
            }
            page_token = page.next_page_token;
        }
    }
    Ok(directory)
}

async fn drift_report(
    common: &Common,
    arguments: &DriftArgs,
) -> Result<roster_gateway::drift::Report> {
    use roster_gateway::drift::{Export, InputFormat};
    let text = std::fs::read_to_string(&arguments.from)
        .with_context(|| format!("reading the export {}", arguments.from.display()))?;
    let format = arguments.input_format.map(|format| match format {
        DriftInput::Json => InputFormat::Json,
        DriftInput::Csv => InputFormat::Csv,
    });
    let export = Export::parse(&text, format)
        .with_context(|| format!("reading the export {}", arguments.from.display()))?;
    let mut client = directory_client(common).await?;
    let roster =
        roster_directory(&mut client, &arguments.tenant, &export, arguments.page_size).await?;
    Ok(roster_gateway::drift::compare(
        &arguments.tenant,
        &arguments.from.display().to_string(),
        &roster,
        &export,
    ))
}

/// Prints the report; exits 1 on drift and 2 on any error (`Ok` only without drift).
async fn drift(common: &Common, arguments: DriftArgs) -> Result<()> {
    use std::io::Write;
    let report = match drift_report(common, &arguments).await {
        Ok(report) => report,
        Err(error) => {
            eprintln!("Error: {error:#}");
            std::process::exit(2);
        }
    };
    let rendered = match arguments.format {
        DriftOutput::Text => report.render_text(),
        DriftOutput::Json => match serde_json::to_string_pretty(&report) {
            Ok(json) => format!("{json}\n"),
            Err(error) => {
                eprintln!("Error: rendering the report as JSON: {error}");
                std::process::exit(2);
            }
        },
    };
    let mut stdout = std::io::stdout().lock();
    let written = stdout
        .write_all(rendered.as_bytes())
        .and_then(|()| stdout.flush());
    if let Err(error) = written {
        eprintln!("Error: writing the report: {error}");
        std::process::exit(2);
    }
    if report.drift {
        std::process::exit(1);
    }
    Ok(())
}
