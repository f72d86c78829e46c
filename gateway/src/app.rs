//! Starting and stopping the whole stack: the sled database, the engine, the projections, the
//! admin token, the SCIM HTTP listener and the gRPC listener. `roster serve` and the tests start
//! roster through [`start`], so they run exactly the same wiring.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use roster_engine::domain::{Actor, Command, TenantName};
use roster_engine::engine::{CommandContext, Engine, OpenError};
use roster_engine::log::WATERMARK_FILE;
use roster_projector::{AuditTrail, DirectoryView, Projection, ProjectionError, Projector};
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::auth;
use crate::state::AppState;
use roster_engine::clock::SharedClock;
use roster_engine::resident::PersistPolicy;

/// Where roster keeps its data and listens.
#[derive(Clone, Debug)]
pub struct Config {
    pub data_dir: PathBuf,
    pub http: SocketAddr,
    pub grpc: SocketAddr,
    /// sled page cache size in bytes.
    pub cache_bytes: u64,
    /// Run on NATS JetStream instead of the embedded log.
    pub nats: Option<roster_engine::log::JetStreamConfig>,
    /// Per-token SCIM request rate limit; `None` (the default): unlimited.
    pub rate_limit: Option<crate::ratelimit::RateLimit>,
    /// Peers whose `X-Forwarded-For`/`-Proto`/`-Host` headers are believed (reverse proxies);
    /// from anyone else they are ignored.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The public base URL of the SCIM endpoint (`https://scim.example.com`), for `Location` and
    /// `meta.location`; `None`: the request's `Host` (or a trusted proxy's `X-Forwarded-Host`).
    pub public_url: Option<String>,
    /// Connection limits and timeouts of both listeners.
    pub connections: crate::connections::ConnectionLimits,
    /// Where `/metrics`, `/healthz` and `/readyz` answer without a token; `None`: nowhere (the
    /// SCIM port still serves health, and metrics to the admin token).
    pub admin_http: Option<SocketAddr>,
    /// Limits on server-streaming gRPC calls (Watch, audit Replay).
    pub streams: crate::grpc::StreamLimits,
    /// What "now" is: the system clock, or a test's manual clock.
    pub clock: SharedClock,
    /// How webhooks are delivered.
    pub webhooks: crate::webhooks::WebhookSettings,
    /// How often the directory view, held in memory, writes its changes to disk: after a crash
    /// the next start replays at most this much of the log into it.
    pub view_persist_interval: std::time::Duration,
    /// Memory for the directory view's blocks: above it, blocks already on disk leave memory
    /// and are read back when needed.
    pub view_memory_bytes: usize,
    /// Likewise for the engine's aggregate.
    pub aggregate_memory_bytes: usize,
}

/// The default of [`Config::view_memory_bytes`] and of [`Config::aggregate_memory_bytes`].
pub const RESIDENT_MEMORY_DEFAULT_MIB: usize = 256;

impl Config {
    pub fn new(data_dir: impl Into<PathBuf>, http: SocketAddr, grpc: SocketAddr) -> Self {
        Self {
            data_dir: data_dir.into(),
            http,
            grpc,
            cache_bytes: 256 * 1024 * 1024,
            nats: None,
            rate_limit: None,
            trusted_proxies: Vec::new(),
            public_url: None,
            connections: crate::connections::ConnectionLimits::default(),
            admin_http: None,
            streams: crate::grpc::StreamLimits::default(),
            clock: roster_engine::clock::system(),
            webhooks: crate::webhooks::WebhookSettings::default(),
            view_persist_interval: PersistPolicy::default().interval,
            view_memory_bytes: RESIDENT_MEMORY_DEFAULT_MIB << 20,
            aggregate_memory_bytes: RESIDENT_MEMORY_DEFAULT_MIB << 20,
        }
    }

    /// How the engine's aggregate is held and persisted.
    pub fn aggregate_policy(&self) -> PersistPolicy {
        PersistPolicy {
            held_bytes: self.aggregate_memory_bytes,
            ..PersistPolicy::default()
        }
    }
}

/// The name of the file holding the admin token, inside the data directory.
pub const ADMIN_TOKEN_FILE: &str = "admin.token";

#[derive(Debug, Error)]
pub enum StartError {
    #[error("cannot use data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "cannot open the database in {path} (is another roster using this data directory?): {source}"
    )]
    Database {
        path: PathBuf,
        source: roster_engine::sled::Error,
    },
    #[error(transparent)]
    Engine(#[from] OpenError),
    #[error(transparent)]
    Projection(#[from] ProjectionError),
    /// A start-up task panicked or was cancelled (a bug or a shutdown, not storage trouble).
    #[error("a start-up task did not finish: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot create the admin token: {0}")]
    AdminToken(String),
    #[error("cannot start the gRPC server: {0}")]
    Grpc(String),
    #[error("cannot set up metrics: {0}")]
    Metrics(String),
    #[error(transparent)]
    WebhookKey(#[from] crate::webhooks::keys::KeyError),
    #[error("cannot set up webhook delivery: {0}")]
    Webhooks(String),
}

/// A running roster.
pub struct Running {
    pub http_addr: SocketAddr,
    pub grpc_addr: SocketAddr,
    /// Where `--admin-http` listens, if it does.
    pub admin_http_addr: Option<SocketAddr>,
    pub admin_token_file: PathBuf,
    pub state: AppState,
    shutdown: watch::Sender<bool>,
    servers: Vec<JoinHandle<()>>,
    projector: JoinHandle<()>,
    /// Tasks that only observe (metrics): aborted at shutdown.
    background: Vec<JoinHandle<()>>,
}

impl Running {
    /// Stops accepting requests, lets in-flight ones finish, flushes, and stops.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for server in self.servers {
            let _ = server.await;
        }
        // Wait for the background tasks to be gone: each holds handles on the database, which
        // is released only once every handle is dropped.
        for task in self.background {
            task.abort();
            let _ = task.await;
        }
        self.state.webhooks.stop().await;
        self.state.ssf_delivery.stop().await;
        self.projector.abort();
        let _ = self.projector.await;
        // Leave the views current with everything acknowledged.
        let projector = self.state.projector.clone();
        match tokio::task::spawn_blocking(move || {
            let progress = projector.step()?;
            projector.persist().map(|()| progress)
        })
        .await
        {
            Ok(Ok(progress)) => info!(
                progress,
                "projections caught up and persisted before stopping"
            ),
            Ok(Err(error)) => warn!(%error, "projections could not catch up before stopping"),
            Err(error) => warn!(%error, "projection task failed while stopping"),
        }
        let released = self.state.engine.log().released();
        self.state.engine.close();
        drop(self.state);
        if tokio::time::timeout(std::time::Duration::from_secs(10), released)
            .await
            .is_err()
        {
            warn!("the database was not released within 10 s of shutdown");
        }
        info!("roster stopped");
    }
}

/// Warns when this process may not open enough files for `limits.max_connections` connections
/// besides its database files.
fn warn_if_open_files_are_short(limits: &crate::connections::ConnectionLimits) {
    /// Files roster keeps open besides connections: the database, logs, listeners.
    const OWN_FILES: u64 = 64;
    if let Some(open_files) = crate::connections::open_files_limit() {
        let needed = u64::try_from(limits.max_connections)
            .unwrap_or(u64::MAX)
            .saturating_add(OWN_FILES);
        if open_files < needed {
            warn!(
                open_files,
                max_connections = limits.max_connections,
                "the open-files limit (ulimit -n) is below --max-connections plus {OWN_FILES}: raise it (LimitNOFILE=) or lower --max-connections"
            );
        }
    }
}

/// Opens the data directory and starts serving.
pub async fn start(config: Config) -> Result<Running, StartError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|source| StartError::DataDir {
        path: config.data_dir.clone(),
        source,
    })?;
    let db_path = config.data_dir.join("db");
    let db = open_database(&db_path, config.cache_bytes).await?;
    make_private(&config.data_dir).map_err(|source| StartError::DataDir {
        path: config.data_dir.clone(),
        source,
    })?;
    let engine = match &config.nats {
        Some(nats) => {
            Engine::open_jetstream(&db, nats, config.clock.clone(), config.aggregate_policy())
                .await?
        }
        None => Engine::open(
            &db,
            Some(&config.data_dir.join(WATERMARK_FILE)),
            config.clock.clone(),
            config.aggregate_policy(),
        )?,
    };
    let directory = DirectoryView::open_with(
        &db,
        PersistPolicy {
            interval: config.view_persist_interval,
            held_bytes: config.view_memory_bytes,
            ..PersistPolicy::default()
        },
    )?;
    let audit = AuditTrail::open(&db)?;
    let projections: Vec<Arc<dyn Projection>> =
        vec![Arc::new(directory.clone()), Arc::new(audit.clone())];
    let projector = Projector::new(engine.log().clone(), projections)?;
    let progress = {
        let projector = projector.clone();
        tokio::task::spawn_blocking(move || projector.step()).await??
    };
    info!(progress, "projections caught up with the log");
    let projector_task = tokio::spawn(projector.clone().run());
    let metrics = Arc::new(
        crate::metrics::Metrics::new().map_err(|error| StartError::Metrics(error.to_string()))?,
    );
    let mut background = Vec::new();
    // Webhook cursors and the webhook key: in the database on the embedded log; shared by every
    // process on JetStream (its key-value bucket), where each webhook is delivered by one process.
    let webhook_error =
        |error: crate::webhooks::CursorError| StartError::Webhooks(error.to_string());
    let (cursors, keys) = match &config.nats {
        None => (
            crate::webhooks::Cursors::open_local(&db).map_err(webhook_error)?,
            crate::webhooks::WebhookKeys::open(&config.data_dir)?,
        ),
        Some(nats) => {
            let cursors = crate::webhooks::Cursors::open_shared(&nats.url, nats.replicas)
                .await
                .map_err(webhook_error)?;
            let key = cursors
                .shared_key()
                .await
                .map_err(webhook_error)?
                .ok_or_else(|| StartError::Webhooks("no shared webhook key".to_owned()))?;
            (cursors, crate::webhooks::WebhookKeys::from_bytes(key))
        }
    };
    let signing = match cursors.shared_store() {
        Some(store) => crate::ssf::SigningKeys::shared(store.clone()),
        None => crate::ssf::SigningKeys::local(&config.data_dir),
    };
    let ssf = Arc::new(crate::ssf::Ssf::new(signing, &keys));
    let (ssf_delivery, ssf_supervisor) = crate::ssf::delivery::Transmitter::start(
        engine.clone(),
        directory.clone(),
        projector.clone(),
        Arc::clone(&ssf),
        cursors.clone(),
        config.webhooks.clone(),
        {
            let observed = Arc::clone(&metrics);
            Box::new(move |seconds| observed.observe_ssf_delivery(seconds))
        },
    )
    .map_err(|error| StartError::Webhooks(error.to_string()))?;
    background.push(ssf_supervisor);
    let observed = Arc::clone(&metrics);
    let (webhooks, supervisor) = crate::webhooks::Webhooks::start(
        engine.clone(),
        config.clock.clone(),
        keys,
        cursors,
        config.webhooks.clone(),
        Box::new(move |seconds| observed.observe_webhook_delivery(seconds)),
    )
    .map_err(|error| StartError::Webhooks(error.to_string()))?;
    background.push(supervisor);
    let state = AppState {
        engine,
        directory,
        audit,
        projector,
        metrics,
        rate_limiter: Arc::new(crate::ratelimit::RateLimiter::new(config.rate_limit)),
        trusted_proxies: Arc::new(config.trusted_proxies.clone()),
        public_url: config
            .public_url
            .as_deref()
            .map(|url| Arc::from(url.trim_end_matches('/'))),
        token_uses: Arc::default(),
        streams: Arc::new(crate::streams::Streams::new(config.streams.clone())),
        clock: config.clock.clone(),
        webhooks,
        ssf,
        ssf_delivery,
    };

    let event_counter = tokio::spawn(crate::instrument::count_events(
        state.clone(),
        state.engine.log().durable_head(),
    ));
    let expiry_warnings = {
        let state = state.clone();
        tokio::spawn(async move {
            let mut every_hour = tokio::time::interval(std::time::Duration::from_secs(3600));
            loop {
                every_hour.tick().await;
                state.warn_about_expiring_tokens(state.clock.now());
            }
        })
    };
    let admin_token_file = config.data_dir.join(ADMIN_TOKEN_FILE);
    ensure_admin_token(&state, &admin_token_file).await?;

    let (shutdown, _) = watch::channel(false);
    let http_listener =
        TcpListener::bind(config.http)
            .await
            .map_err(|source| StartError::Bind {
                address: config.http,
                source,
            })?;
    let grpc_listener =
        TcpListener::bind(config.grpc)
            .await
            .map_err(|source| StartError::Bind {
                address: config.grpc,
                source,
            })?;
    let http_addr = http_listener
        .local_addr()
        .map_err(|source| StartError::Bind {
            address: config.http,
            source,
        })?;
    let grpc_addr = grpc_listener
        .local_addr()
        .map_err(|source| StartError::Bind {
            address: config.grpc,
            source,
        })?;

    // SETs name their issuer by the public base URL, or else the address SCIM listens on.
    if state.public_url.is_none() && config.nats.is_some() {
        warn!(
            "no --public-url: each process names its own address as the Shared Signals issuer; \
             processes sharing a stream should share one public URL"
        );
    }
    state.ssf.set_base(
        state
            .public_url
            .as_deref()
            .map_or_else(|| format!("http://{http_addr}"), str::to_owned)
            .as_str(),
    );
    let gate = crate::connections::Gate::new(
        config.connections.clone(),
        Arc::clone(&state.trusted_proxies),
    );
    warn_if_open_files_are_short(&config.connections);
    let http_server = {
        let router = crate::scim::http::router(state.clone());
        // Paths are normalized before routing (IdPs send `/users`, `/Users/`).
        let service = tower::Layer::layer(
            &tower::util::MapRequestLayer::new(crate::scim::http::normalize_request),
            router,
        );
        tokio::spawn(crate::scim::server::serve(
            http_listener,
            service,
            Arc::clone(&gate),
            shutdown.subscribe(),
        ))
    };
    let mut admin_http_addr = None;
    let mut servers = Vec::new();
    if let Some(address) = config.admin_http {
        let listener = TcpListener::bind(address)
            .await
            .map_err(|source| StartError::Bind { address, source })?;
        let bound = listener
            .local_addr()
            .map_err(|source| StartError::Bind { address, source })?;
        servers.push(tokio::spawn(crate::scim::server::serve(
            listener,
            crate::scim::http::admin_router(state.clone()),
            Arc::clone(&gate),
            shutdown.subscribe(),
        )));
        info!(address = %bound, "admin HTTP (metrics, health) listening");
        admin_http_addr = Some(bound);
    }
    let grpc_server = crate::grpc::serve(state.clone(), grpc_listener, gate, shutdown.subscribe())
        .await
        .map_err(StartError::Grpc)?;
    servers.push(http_server);
    servers.push(grpc_server);
    info!(address = %http_addr, "SCIM HTTP listening");
    info!(address = %grpc_addr, "gRPC listening");
    Ok(Running {
        http_addr,
        grpc_addr,
        admin_token_file,
        state,
        shutdown,
        admin_http_addr,
        servers,
        projector: projector_task,
        background: {
            background.push(event_counter);
            background.push(expiry_warnings);
            background
        },
    })
}

/// What a rebuild did.
#[derive(Clone, Debug)]
pub struct RebuildReport {
    /// Events replayed into the aggregate (when it was rebuilt too).
    pub aggregate_events: u64,
    pub aggregate_elapsed: std::time::Duration,
    /// Events replayed into every projection.
    pub events: u64,
    pub elapsed: std::time::Duration,
}

impl RebuildReport {
    pub fn events_per_second(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }
}

/// Rebuilds every projection (and, with `aggregate`, the engine's aggregate) from sequence 0,
/// with roster stopped. `progress` sees `(done, total)` sequences.
pub fn rebuild(
    data_dir: &Path,
    aggregate: bool,
    progress: impl FnMut(u64, u64),
) -> Result<RebuildReport, StartError> {
    let db_path = data_dir.join("db");
    let db = roster_engine::open_database(&db_path, 256 << 20).map_err(|source| {
        StartError::Database {
            path: db_path.clone(),
            source,
        }
    })?;
    // Dropping a tree is far faster than clearing it key by key.
    let drop_tree = |name: &str| {
        db.drop_tree(name).map_err(|source| StartError::Database {
            path: db_path.clone(),
            source,
        })
    };
    let started = std::time::Instant::now();
    if aggregate {
        drop_tree(roster_engine::engine::AGGREGATE_TREE)?;
    }
    drop_tree(roster_projector::DIRECTORY_TREE)?;
    drop_tree(roster_projector::AUDIT_TREE)?;
    let engine = Engine::open(
        &db,
        Some(&data_dir.join(WATERMARK_FILE)),
        roster_engine::clock::system(),
        PersistPolicy::default(),
    )?;
    let aggregate_elapsed = started.elapsed();
    let aggregate_events = if aggregate {
        engine.log().durable_head()
    } else {
        0
    };
    let projections: Vec<Arc<dyn Projection>> = vec![
        Arc::new(DirectoryView::open(&db)?),
        Arc::new(AuditTrail::open(&db)?),
    ];
    let projector = Projector::new(engine.log().clone(), projections)?;
    let started = std::time::Instant::now();
    let events = projector.rebuild(progress)?;
    let elapsed = started.elapsed();
    engine.close();
    db.flush().map_err(|source| StartError::Database {
        path: db_path,
        source,
    })?;
    Ok(RebuildReport {
        aggregate_events,
        aggregate_elapsed,
        events,
        elapsed,
    })
}

/// What `roster check` found in a stopped roster's data directory.
#[derive(Debug)]
pub struct CheckReport {
    pub log: roster_engine::log::LogInspection,
    /// The sequence the engine's aggregate reflects, or why it cannot be read.
    pub aggregate: Result<u64, String>,
    /// Each projection's checkpoint, or why it cannot be read.
    pub projections: Vec<(&'static str, Result<u64, String>)>,
    /// Batches indexed again, when the check rebuilt the log's tenant index.
    pub reindexed: Option<u64>,
}

impl CheckReport {
    /// Whether roster would start and serve this data directory as it is.
    pub fn is_sound(&self) -> bool {
        self.log.is_sound()
            && self.aggregate.is_ok()
            && self
                .projections
                .iter()
                .all(|(_, checkpoint)| checkpoint.is_ok())
    }
}

/// Reads the whole log of a stopped roster's data directory and holds it against its watermark,
/// checks the log's tenant index, and reports how far the aggregate and views reached; with
/// `accept_loss`, first accepts the log as it is on disk (see
/// [`roster_engine::log::EmbeddedLog::accept_as_is`]) and returns the mark it had before; with
/// `reindex`, first rebuilds the tenant index from the events.
pub fn check(
    data_dir: &Path,
    accept_loss: bool,
    reindex: bool,
) -> Result<(CheckReport, Option<roster_engine::log::Mark>), StartError> {
    use roster_engine::log::EmbeddedLog;
    let db_path = data_dir.join("db");
    if !db_path.exists() {
        return Err(StartError::DataDir {
            path: db_path,
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no database here"),
        });
    }
    let db = roster_engine::open_database(&db_path, 64 << 20).map_err(|source| {
        StartError::Database {
            path: db_path.clone(),
            source,
        }
    })?;
    let watermark = data_dir.join(WATERMARK_FILE);
    let log_error = |error: roster_engine::log::LogError| StartError::Engine(OpenError::Log(error));
    let before = if accept_loss {
        let before = EmbeddedLog::inspect(&db, &watermark).map_err(log_error)?;
        EmbeddedLog::accept_as_is(&db, &watermark).map_err(log_error)?;
        before.mark
    } else {
        None
    };
    let reindexed = if reindex {
        Some(EmbeddedLog::reindex(&db).map_err(log_error)?)
    } else {
        None
    };
    let log = EmbeddedLog::inspect(&db, &watermark).map_err(log_error)?;
    let aggregate = db
        .open_tree(roster_engine::engine::AGGREGATE_TREE)
        .map_err(roster_engine::store::StoreError::from)
        .and_then(|tree| roster_engine::store::StateStore::stored_checkpoint(&tree))
        .map_err(|error| error.to_string());
    let directory = DirectoryView::stored_checkpoint(&db).map_err(|error| error.to_string());
    let audit = AuditTrail::open(&db)
        .and_then(|trail| trail.checkpoint())
        .map_err(|error| error.to_string());
    let projections = vec![("directory", directory), ("audit", audit)];
    Ok((
        CheckReport {
            log,
            aggregate,
            projections,
            reindexed,
        },
        before,
    ))
}

/// Opens the database, waiting a little for a previous roster in this process to release it.
async fn open_database(
    path: &Path,
    cache_bytes: u64,
) -> Result<roster_engine::sled::Db, StartError> {
    let mut attempts = 0;
    loop {
        match roster_engine::open_database(path, cache_bytes) {
            Ok(db) => return Ok(db),
            // sled reports a held lock as an `Other` I/O error with this text.
            Err(roster_engine::sled::Error::Io(error))
                if error.to_string().contains("could not acquire lock") && attempts < 50 =>
            {
                attempts += 1;
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(source) => {
                return Err(StartError::Database {
                    path: path.to_owned(),
                    source,
                });
            }
        }
    }
}

/// Makes sure `path` holds a valid admin token: on first start (or when the file is missing or
/// no longer valid) issues one, stores only its hash (as an event), and writes the token to
/// `path` with mode 0600.
async fn ensure_admin_token(state: &AppState, path: &Path) -> Result<(), StartError> {
    if let Ok(existing) = std::fs::read_to_string(path) {
        if let Some(presented) = auth::parse_token(existing.trim())
            && matches!(
                state
                    .authenticate_fresh(&TenantName::system(), &presented, state.clock.now())
                    .await,
                Ok(Some(_))
            )
        {
            info!(path = %path.display(), "admin token file found");
            return Ok(());
        }
        warn!(path = %path.display(), "admin token file does not hold a valid token; issuing a new one");
    }
    let issued = auth::issue("admin", roster_engine::domain::TokenScope::Scim, None);
    let context = CommandContext {
        now: state.clock.now(),
        actor: Actor::system(),
        source: Default::default(),
        causation_id: "first-start".into(),
    };
    state
        .engine
        .execute(
            &TenantName::system(),
            Command::IssueToken(issued.token),
            context,
        )
        .await
        .map_err(|error| StartError::AdminToken(error.to_string()))?;
    write_secret_file(path, &issued.bearer)
        .map_err(|error| StartError::AdminToken(error.to_string()))?;
    info!(path = %path.display(), "admin token created; it is shown only in this file");
    Ok(())
}

/// Makes the data directory private to roster's user, whatever the umask: it holds every user's
/// personal data. The directory and the folders in it become 0700, the files 0600 (what sled
/// creates later sits inside them); a directory others could read is warned about first.
fn make_private(data_dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(data_dir)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        warn!(
            path = %data_dir.display(),
            mode = format!("{mode:o}"),
            "the data directory was open to other users; making it private (0700)"
        );
    }
    fn restrict(path: &Path) -> std::io::Result<()> {
        let metadata = std::fs::symlink_metadata(path)?;
        if metadata.is_dir() {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))?;
            for entry in std::fs::read_dir(path)? {
                restrict(&entry?.path())?;
            }
        } else if metadata.is_file() {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        }
        Ok(())
    }
    restrict(data_dir)
}

/// Writes `secret` to `path` readable by the owner only, replacing it atomically.
fn write_secret_file(path: &Path, secret: &str) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let temporary = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(&temporary)?;
    file.write_all(secret.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)
}
