//! The state every request handler shares (`AppState`): the engine, the views, the projector,
//! metrics, limits and the clock, with what handlers do with them: authenticate tokens, record
//! their use, and wait for the views (the read barrier). A leaf of the gateway: the SCIM and gRPC
//! modules import it, and it imports neither of them (only the streams registry's types).

use std::sync::Arc;

use roster_engine::clock::SharedClock;
use roster_engine::domain::{
    Actor, Command, TenantName, TenantRecord, Timestamp, TokenId, TokenRecord,
};
use roster_engine::engine::{CommandContext, Engine, ExecuteError};
use roster_projector::{AuditTrail, DirectoryView, Projector};
use tracing::warn;

use crate::auth::{self, PresentedToken};

/// Most the views may lag behind the log (in seconds) for roster to report ready.
const READY_LAG_SECONDS: f64 = 5.0;

/// Longest a read waits for the views to reach the last acknowledged write.
const READ_BARRIER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Everything a request handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
    pub directory: DirectoryView,
    pub audit: AuditTrail,
    pub projector: Projector,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The per-token SCIM rate limit (passes everything unless configured).
    pub rate_limiter: Arc<crate::ratelimit::RateLimiter>,
    /// Peers whose forwarding headers are believed.
    pub trusted_proxies: Arc<Vec<ipnet::IpNet>>,
    /// The configured public base URL, if any.
    pub public_url: Option<Arc<str>>,
    /// When this process last asked to record each token's use (so that a burst of requests
    /// asks once).
    pub(crate) token_uses: Arc<std::sync::Mutex<std::collections::HashMap<TokenId, Timestamp>>>,
    /// The server-streaming gRPC calls open and the bytes they hold.
    pub streams: Arc<crate::streams::Streams>,
    /// What "now" is for every request (token expiry and use, commands' times).
    pub clock: SharedClock,
    /// Webhook delivery.
    pub webhooks: crate::webhooks::Webhooks,
    /// The Shared Signals transmitter: keys, issuer, and its streams' delivery.
    pub ssf: Arc<crate::ssf::Ssf>,
    pub ssf_delivery: crate::ssf::delivery::Transmitter,
}

/// Longest a request waits for its token's use to be recorded.
const TOKEN_USE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);
/// Tokens expiring within this many microseconds are warned about.
const EXPIRY_WARNING_MICROS: i64 = 7 * 24 * 3_600_000_000;

impl AppState {
    /// Records that `token` of `tenant` authenticated a request now, unless that was recorded
    /// within the hour, before the request goes on (so the audit trail shows the use ahead of what
    /// the request changed). A failure to record does not fail the request.
    pub async fn note_token_use(&self, tenant: &TenantName, token: &TokenRecord, now: Timestamp) {
        let recent = |at: Timestamp| roster_engine::domain::token_use_covered(at, now);
        if token.last_used_at.is_some_and(recent) {
            return;
        }
        {
            let Ok(mut asked) = self.token_uses.lock() else {
                return;
            };
            if asked.get(&token.id).is_some_and(|at| recent(*at)) {
                return;
            }
            asked.insert(token.id.clone(), now);
        }
        let context = CommandContext {
            now,
            actor: Actor::system(),
            source: Default::default(),
            causation_id: format!("token-use-{}", token.id),
        };
        let command = Command::RecordTokenUse {
            token_id: token.id.clone(),
            at: now,
        };
        let recorded = tokio::time::timeout(
            TOKEN_USE_TIMEOUT,
            self.engine.execute(tenant, command, context),
        )
        .await;
        if !matches!(recorded, Ok(Ok(_))) {
            tracing::debug!(%tenant, token = %token.id, "recording a token's use failed");
            if let Ok(mut asked) = self.token_uses.lock() {
                asked.remove(&token.id);
            }
        }
    }

    /// Logs a warning for every valid token that expires within a week.
    pub fn warn_about_expiring_tokens(&self, now: Timestamp) {
        let store = self.engine.aggregate();
        let Ok(tenants) = store.tenants() else {
            return;
        };
        let names = tenants
            .into_iter()
            .map(|(name, _)| name)
            .chain(std::iter::once(TenantName::system()));
        for tenant in names {
            for token in store.tokens(&tenant).unwrap_or_default() {
                let Some(expires_at) = token.expires_at else {
                    continue;
                };
                let left = expires_at.as_micros() - now.as_micros();
                if token.is_valid_at(now) && left < EXPIRY_WARNING_MICROS {
                    warn!(
                        %tenant,
                        token = %token.id,
                        name = %token.name,
                        expires_at = %expires_at.to_rfc3339(),
                        hours_left = left / 3_600_000_000,
                        "a token expires soon: rotate it (roster token rotate)"
                    );
                }
            }
        }
    }

    /// `tenant`'s record (as of every accepted command); `None` for no such tenant and for
    /// system tenants, which no client addresses.
    pub fn tenant_record(&self, tenant: &TenantName) -> Result<Option<TenantRecord>, ExecuteError> {
        if tenant.is_system() {
            return Ok(None);
        }
        self.engine
            .aggregate()
            .tenant(tenant)
            .map_err(ExecuteError::Store)
    }

    /// Like [`Self::tenant_record`], but on JetStream a miss first catches up with the stream:
    /// the tenant may have been created through another process a moment ago.
    pub async fn tenant_record_fresh(
        &self,
        tenant: &TenantName,
    ) -> Result<Option<TenantRecord>, ExecuteError> {
        let found = self.tenant_record(tenant)?;
        if found.is_some() || !self.engine.is_jetstream() {
            return Ok(found);
        }
        self.engine.aggregate_caught_up().await?;
        self.tenant_record(tenant)
    }

    /// Whether `tenant` exists (as of every accepted command).
    pub fn tenant_exists(&self, tenant: &TenantName) -> Result<bool, ExecuteError> {
        Ok(self.tenant_record(tenant)?.is_some())
    }

    /// Like [`Self::tenant_exists`], with [`Self::tenant_record_fresh`]'s catching up.
    pub async fn tenant_exists_fresh(&self, tenant: &TenantName) -> Result<bool, ExecuteError> {
        Ok(self.tenant_record_fresh(tenant).await?.is_some())
    }

    /// Like [`Self::authenticate`], but on JetStream a miss first catches up with the stream: the
    /// token may have been issued through another process a moment ago.
    pub async fn authenticate_fresh(
        &self,
        tenant: &TenantName,
        presented: &PresentedToken<'_>,
        now: Timestamp,
    ) -> Result<Option<TokenRecord>, ExecuteError> {
        let found = self.authenticate(tenant, presented, now)?;
        if found.is_some() || !self.engine.is_jetstream() {
            return Ok(found);
        }
        self.engine.aggregate_caught_up().await?;
        self.authenticate(tenant, presented, now)
    }

    /// Waits until the views reach log sequence `head`, for [`READ_BARRIER_TIMEOUT`] at most.
    async fn views_at(&self, head: u64) -> Result<(), ExecuteError> {
        match tokio::time::timeout(READ_BARRIER_TIMEOUT, self.projector.wait_for(head)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(ExecuteError::Unavailable(error.to_string())),
            Err(_) => Err(ExecuteError::Unavailable(
                "the views are catching up with the log".into(),
            )),
        }
    }

    /// Waits until the views reflect every write acknowledged before the call, by this process or
    /// any other (read-your-writes).
    pub async fn read_barrier(&self) -> Result<(), ExecuteError> {
        let head = self.engine.head_for_reads().await?;
        self.views_at(head).await
    }

    /// Waits until the views reflect every event appended for `tenant` so far. A write that lost
    /// a version race calls it before reading again: the read barrier alone waits only for what
    /// is durable, and the write that won may not be yet, so the retry would read the same stale
    /// version and lose again.
    pub async fn wait_for_tenant(&self, tenant: &TenantName) -> Result<(), ExecuteError> {
        let head = self
            .engine
            .aggregate()
            .tenant_checkpoint(tenant)
            .map_err(ExecuteError::Store)?;
        self.views_at(head).await
    }

    /// Whether roster can serve: the log takes writes and the views are caught up (lag under
    /// [`READY_LAG_SECONDS`]). The reason when not.
    pub async fn readiness(&self) -> Result<(), String> {
        self.engine
            .writable()
            .await
            .map_err(|error| error.to_string())?;
        let lag = self.projector.lag().map_err(|error| error.to_string())?;
        if lag.seconds > READY_LAG_SECONDS {
            return Err(format!(
                "the views are {} events ({:.1} s) behind the log",
                lag.events, lag.seconds
            ));
        }
        Ok(())
    }

    /// The token record `presented` proves possession of in `tenant`, if valid now.
    pub fn authenticate(
        &self,
        tenant: &TenantName,
        presented: &PresentedToken<'_>,
        now: Timestamp,
    ) -> Result<Option<TokenRecord>, ExecuteError> {
        let record = self
            .engine
            .aggregate()
            .token(tenant, &presented.id)
            .map_err(ExecuteError::Store)?;
        Ok(record.filter(|record| auth::verify(record, presented, now)))
    }
}
