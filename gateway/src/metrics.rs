//! Prometheus metrics, served at `/metrics`: HTTP requests by route, method, status and tenant
//! with latency histograms; SCIM rejections by tenant and `scimType` (a sync stuck in a 409 or 400
//! loop shows there); authentication failures; requests refused by the rate limit; events appended by type; the log head; projection
//! checkpoints and lag; gRPC streams open, their buffered bytes, refusals and drops; process
//! memory. State gauges are read from the running stack when
//! scraped; counters are updated as things happen.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};
use roster_engine::domain::TenantName;

use crate::state::AppState;

/// roster's metric families.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    request_seconds: HistogramVec,
    rejections: IntCounterVec,
    auth_failures: IntCounterVec,
    rate_limited: IntCounterVec,
    events: IntCounterVec,
    log_head: IntGauge,
    projection_checkpoint: IntGaugeVec,
    projection_lag_events: IntGauge,
    projection_lag_seconds: Gauge,
    resident_memory: IntGauge,
    peak_resident_memory: IntGauge,
    grpc_streams_open: IntGauge,
    grpc_stream_buffered_bytes: IntGauge,
    grpc_streams_refused: IntCounter,
    grpc_streams_dropped: IntCounter,
    /// Tenants that have become label values, at most [`MAX_TENANT_LABELS`].
    labelled_tenants: std::sync::Mutex<std::collections::HashSet<String>>,
}

/// Most tenants named in label values; requests of further tenants count under `other`, so a
/// deployment with thousands of tenants does not make thousands of series per metric.
pub const MAX_TENANT_LABELS: usize = 200;

/// `VmRSS` and `VmHWM` (peak) of this process in bytes, from `/proc/self/status` (Linux).
fn memory() -> Option<(i64, i64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| -> Option<i64> {
        let line = status.lines().find(|line| line.starts_with(name))?;
        let kilobytes: i64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kilobytes * 1024)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some("roster".into()), None)?;
        let requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests by route, method, status and tenant",
            ),
            &["route", "method", "status", "tenant"],
        )?;
        let request_seconds = HistogramVec::new(
            HistogramOpts::new("http_request_duration_seconds", "HTTP request latency").buckets(
                vec![
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ],
            ),
            &["route", "method"],
        )?;
        let rejections = IntCounterVec::new(
            Opts::new(
                "scim_rejections_total",
                "SCIM requests refused with a client error, by tenant, status and scimType",
            ),
            &["tenant", "status", "scim_type"],
        )?;
        let auth_failures = IntCounterVec::new(
            Opts::new(
                "auth_failures_total",
                "Requests refused for a missing, unknown, revoked or expired token",
            ),
            &["surface"],
        )?;
        let rate_limited = IntCounterVec::new(
            Opts::new(
                "scim_rate_limited_total",
                "SCIM requests refused with 429 by the per-token rate limit, by tenant",
            ),
            &["tenant"],
        )?;
        let events = IntCounterVec::new(
            Opts::new(
                "events_appended_total",
                "Events appended to the log, by event type",
            ),
            &["type"],
        )?;
        let log_head = IntGauge::new(
            "log_durable_sequence",
            "Highest durable sequence of the event log",
        )?;
        let projection_checkpoint = IntGaugeVec::new(
            Opts::new(
                "projection_checkpoint",
                "Last log sequence each projection reflects",
            ),
            &["projection"],
        )?;
        let projection_lag_events = IntGauge::new(
            "projection_lag_events",
            "Durable events the projections have not applied yet",
        )?;
        let projection_lag_seconds = Gauge::new(
            "projection_lag_seconds",
            "Age of the oldest event the projections have not applied yet",
        )?;
        let resident_memory = IntGauge::new(
            "process_resident_memory_bytes",
            "Resident memory of the roster process",
        )?;
        let peak_resident_memory = IntGauge::new(
            "process_peak_resident_memory_bytes",
            "Peak resident memory of the roster process since it started",
        )?;
        let grpc_streams_open = IntGauge::new(
            "grpc_streams_open",
            "Server-streaming gRPC calls (Watch, audit Replay) open now",
        )?;
        let grpc_stream_buffered_bytes = IntGauge::new(
            "grpc_stream_buffered_bytes",
            "Bytes of messages the open gRPC streams hold for their clients",
        )?;
        let grpc_streams_refused = IntCounter::new(
            "grpc_streams_refused_total",
            "gRPC streams refused by a concurrency limit (per token, per tenant, in all)",
        )?;
        let grpc_streams_dropped = IntCounter::new(
            "grpc_streams_dropped_total",
            "gRPC streams dropped because their client read too slowly or the shared buffer stayed full",
        )?;
        registry.register(Box::new(grpc_streams_open.clone()))?;
        registry.register(Box::new(grpc_stream_buffered_bytes.clone()))?;
        registry.register(Box::new(grpc_streams_refused.clone()))?;
        registry.register(Box::new(grpc_streams_dropped.clone()))?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(request_seconds.clone()))?;
        registry.register(Box::new(rejections.clone()))?;
        registry.register(Box::new(auth_failures.clone()))?;
        registry.register(Box::new(rate_limited.clone()))?;
        registry.register(Box::new(events.clone()))?;
        registry.register(Box::new(log_head.clone()))?;
        registry.register(Box::new(projection_checkpoint.clone()))?;
        registry.register(Box::new(projection_lag_events.clone()))?;
        registry.register(Box::new(projection_lag_seconds.clone()))?;
        registry.register(Box::new(resident_memory.clone()))?;
        registry.register(Box::new(peak_resident_memory.clone()))?;
        Ok(Self {
            registry,
            requests,
            request_seconds,
            rejections,
            auth_failures,
            rate_limited,
            events,
            log_head,
            projection_checkpoint,
            projection_lag_events,
            projection_lag_seconds,
            resident_memory,
            peak_resident_memory,
            grpc_streams_open,
            grpc_stream_buffered_bytes,
            grpc_streams_refused,
            grpc_streams_dropped,
            labelled_tenants: std::sync::Mutex::default(),
        })
    }

    /// Counts a request refused for its token, on `surface` (`scim` or `grpc`).
    pub fn auth_failure(&self, surface: &str) {
        self.auth_failures.with_label_values(&[surface]).inc();
    }

    /// Counts a SCIM request refused by the rate limit.
    pub fn rate_limited(&self, tenant: &TenantName) {
        let label = self.tenant_label(tenant.as_str());
        self.rate_limited.with_label_values(&[&label]).inc();
    }

    /// `tenant` as a label value: itself while fewer than [`MAX_TENANT_LABELS`] tenants are
    /// labelled (or it already is), `other` beyond.
    pub fn tenant_label(&self, tenant: &str) -> String {
        let mut labelled = self
            .labelled_tenants
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if labelled.contains(tenant) {
            return tenant.to_owned();
        }
        if labelled.len() < MAX_TENANT_LABELS {
            labelled.insert(tenant.to_owned());
            return tenant.to_owned();
        }
        "other".to_owned()
    }

    /// Counts appended events of one type.
    pub fn events_appended(&self, event_type: &str, count: u64) {
        self.events.with_label_values(&[event_type]).inc_by(count);
    }

    /// The text exposition of every metric, with state gauges read now.
    pub fn render(&self, state: &AppState) -> String {
        self.log_head
            .set(i64::try_from(state.engine.log().durable_head()).unwrap_or(i64::MAX));
        if let Ok(checkpoints) = state.projector.checkpoints() {
            for (name, checkpoint) in checkpoints {
                self.projection_checkpoint
                    .with_label_values(&[name])
                    .set(i64::try_from(checkpoint).unwrap_or(i64::MAX));
            }
        }
        if let Ok(lag) = state.projector.lag() {
            self.projection_lag_events
                .set(i64::try_from(lag.events).unwrap_or(i64::MAX));
            self.projection_lag_seconds.set(lag.seconds);
        }
        let streams = &state.streams;
        self.grpc_streams_open
            .set(i64::try_from(streams.open_count()).unwrap_or(i64::MAX));
        self.grpc_stream_buffered_bytes
            .set(i64::try_from(streams.buffered_bytes()).unwrap_or(i64::MAX));
        // The counts live in the streams; the counters catch up with them at each scrape.
        let refused = streams.refused_count();
        self.grpc_streams_refused
            .inc_by(refused.saturating_sub(self.grpc_streams_refused.get()));
        let dropped = streams.dropped_count();
        self.grpc_streams_dropped
            .inc_by(dropped.saturating_sub(self.grpc_streams_dropped.get()));
        if let Some((resident, peak)) = memory() {
            self.resident_memory.set(resident);
            self.peak_resident_memory.set(peak);
        }
        let mut text = Vec::new();
        if let Err(error) = TextEncoder::new().encode(&self.registry.gather(), &mut text) {
            tracing::warn!(%error, "encoding metrics failed");
        }
        String::from_utf8(text).unwrap_or_default()
    }
}

/// The tenant a SCIM path names, if it is an existing tenant (so that random paths cannot
/// create label values).
fn tenant_label(state: &AppState, path: &str) -> String {
    path.strip_prefix("/scim/v2/")
        .and_then(|rest| rest.split('/').next())
        .and_then(|name| TenantName::parse(name).ok())
        .filter(|tenant| matches!(state.tenant_exists(tenant), Ok(true)))
        .map_or_else(
            || "-".to_owned(),
            |tenant| state.metrics.tenant_label(tenant.as_str()),
        )
}

/// Axum middleware: counts and times every HTTP request.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let method = request.method().as_str().to_owned();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    let metrics = &state.metrics;
    let status = response.status();
    let tenant = tenant_label(&state, &path);
    metrics
        .requests
        .with_label_values(&[&route, &method, status.as_str(), &tenant])
        .inc();
    metrics
        .request_seconds
        .with_label_values(&[&route, &method])
        .observe(started.elapsed().as_secs_f64());
    if status.is_client_error() && route.starts_with("/scim/") {
        let scim_type = response
            .extensions()
            .get::<roster_scim::error::ScimType>()
            .map_or("none", |scim_type| scim_type.0);
        metrics
            .rejections
            .with_label_values(&[&tenant, status.as_str(), scim_type])
            .inc();
        if status == axum::http::StatusCode::UNAUTHORIZED {
            metrics.auth_failure("scim");
        }
    }
    response
}

/// Counts every event appended to the (local) log by type, from `from` on, until the log closes.
pub async fn count_events(state: AppState, mut from: u64) {
    let log = state.engine.log().clone();
    let mut durable = log.subscribe();
    loop {
        let head = *durable.borrow_and_update();
        while from < head {
            let reader = log.clone();
            let next = from + 1;
            let events = match tokio::task::spawn_blocking(move || reader.read(next, 4096)).await {
                Ok(Ok(events)) => events,
                _ => return,
            };
            let Some(last) = events.last().map(|event| event.sequence) else {
                break;
            };
            let mut counts: std::collections::HashMap<&'static str, u64> =
                std::collections::HashMap::new();
            for event in &events {
                *counts.entry(event.payload.event_type()).or_default() += 1;
            }
            for (event_type, count) in counts {
                state.metrics.events_appended(event_type, count);
            }
            from = last;
        }
        if durable.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_labels_are_bounded_and_stable() {
        let metrics = Metrics::new().unwrap();
        let labels: std::collections::HashSet<String> = (0..MAX_TENANT_LABELS + 50)
            .map(|index| metrics.tenant_label(&format!("tenant-{index}")))
            .collect();
        assert_eq!(labels.len(), MAX_TENANT_LABELS + 1);
        assert!(labels.contains("other"));
        // A tenant labelled once keeps its label; a late one stays `other`.
        assert_eq!(metrics.tenant_label("tenant-0"), "tenant-0");
        assert_eq!(
            metrics.tenant_label(&format!("tenant-{}", MAX_TENANT_LABELS + 10)),
            "other"
        );
    }
}
