//! Prometheus metrics, served at `/metrics`: HTTP requests by route, method, status and tenant
//! with latency histograms; SCIM rejections by tenant and `scimType` (a sync stuck in a 409 or 400
//! loop shows there); authentication failures; requests refused by the rate limit; events appended by type; the log head; projection
//! checkpoints and lag; gRPC streams open, their buffered bytes, refusals and drops; webhook
//! subscriptions by status, deliveries, failed attempts and delivery latency; process
//! memory. State gauges are set from the [`Readings`] taken when scraped; counters are updated
//! as things happen. What feeds them from the running stack is `crate::instrument`; this module
//! knows nothing of it.

use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};
use roster_engine::domain::TenantName;
use roster_projector::Lag;

/// The state gauges' values, read from the running stack at a scrape.
#[derive(Debug, Default)]
pub struct Readings {
    pub log_head: u64,
    pub checkpoints: Vec<(&'static str, u64)>,
    pub lag: Option<Lag>,
    pub streams_open: usize,
    pub stream_buffered_bytes: usize,
    /// Streams refused and dropped since the start (counts the streams keep).
    pub streams_refused: u64,
    pub streams_dropped: u64,
    /// Webhook subscriptions by status (`active`, `paused`, `failing`).
    pub webhooks: Vec<(&'static str, u64)>,
    /// Webhook deliveries acknowledged and attempts failed since the start.
    pub webhook_deliveries: u64,
    pub webhook_failed_attempts: u64,
    /// Shared Signals streams by status (`enabled`, `paused`, `disabled`).
    pub ssf_streams: Vec<(&'static str, u64)>,
    /// SETs acknowledged (pushed with a 2xx, or polled and acknowledged) and pushes failed.
    pub ssf_sets_delivered: u64,
    pub ssf_failed_pushes: u64,
}

fn gauge_value<T: TryInto<i64>>(value: T) -> i64 {
    value.try_into().unwrap_or(i64::MAX)
}

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
    webhooks: IntGaugeVec,
    webhook_deliveries: IntCounter,
    webhook_failed_attempts: IntCounter,
    webhook_delivery_seconds: prometheus::Histogram,
    ssf_streams: IntGaugeVec,
    ssf_sets_delivered: IntCounter,
    ssf_failed_pushes: IntCounter,
    ssf_delivery_seconds: prometheus::Histogram,
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
        let webhooks = IntGaugeVec::new(
            Opts::new("webhooks", "Webhook subscriptions by status"),
            &["status"],
        )?;
        let webhook_deliveries = IntCounter::new(
            "webhook_deliveries_total",
            "Webhook deliveries acknowledged with a 2xx",
        )?;
        let webhook_failed_attempts = IntCounter::new(
            "webhook_failed_attempts_total",
            "Webhook delivery attempts that failed (no answer, or not a 2xx)",
        )?;
        let webhook_delivery_seconds = prometheus::Histogram::with_opts(
            HistogramOpts::new(
                "webhook_delivery_seconds",
                "From an event's recording in the log to a receiver's 2xx",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 30.0, 300.0, 3600.0,
            ]),
        )?;
        let ssf_streams = IntGaugeVec::new(
            Opts::new("ssf_streams", "Shared Signals streams by status"),
            &["status"],
        )?;
        let ssf_sets_delivered = IntCounter::new(
            "ssf_sets_delivered_total",
            "SETs acknowledged: pushed and answered with a 2xx, or polled and acknowledged",
        )?;
        let ssf_failed_pushes = IntCounter::new(
            "ssf_failed_pushes_total",
            "SET pushes that failed (no answer, or not a 2xx)",
        )?;
        let ssf_delivery_seconds = prometheus::Histogram::with_opts(
            HistogramOpts::new(
                "ssf_delivery_seconds",
                "From an event's recording in the log to a push receiver's 2xx for its SET",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 30.0, 300.0, 3600.0,
            ]),
        )?;
        registry.register(Box::new(ssf_streams.clone()))?;
        registry.register(Box::new(ssf_sets_delivered.clone()))?;
        registry.register(Box::new(ssf_failed_pushes.clone()))?;
        registry.register(Box::new(ssf_delivery_seconds.clone()))?;
        registry.register(Box::new(webhooks.clone()))?;
        registry.register(Box::new(webhook_deliveries.clone()))?;
        registry.register(Box::new(webhook_failed_attempts.clone()))?;
        registry.register(Box::new(webhook_delivery_seconds.clone()))?;
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
            webhooks,
            webhook_deliveries,
            webhook_failed_attempts,
            webhook_delivery_seconds,
            ssf_streams,
            ssf_sets_delivered,
            ssf_failed_pushes,
            ssf_delivery_seconds,
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

    /// Times one acknowledged SET push (from the event's recording).
    pub fn observe_ssf_delivery(&self, seconds: f64) {
        self.ssf_delivery_seconds.observe(seconds);
    }

    /// Times one acknowledged webhook delivery (from the event's recording).
    pub fn observe_webhook_delivery(&self, seconds: f64) {
        self.webhook_delivery_seconds.observe(seconds);
    }

    /// Counts appended events of one type.
    pub fn events_appended(&self, event_type: &str, count: u64) {
        self.events.with_label_values(&[event_type]).inc_by(count);
    }

    /// Counts and times one HTTP request.
    pub fn request(&self, route: &str, method: &str, status: &str, tenant: &str, seconds: f64) {
        self.requests
            .with_label_values(&[route, method, status, tenant])
            .inc();
        self.request_seconds
            .with_label_values(&[route, method])
            .observe(seconds);
    }

    /// Counts one SCIM request answered with a client error, by its `scimType` (`none` without).
    pub fn rejection(&self, tenant: &str, status: &str, scim_type: &str) {
        self.rejections
            .with_label_values(&[tenant, status, scim_type])
            .inc();
    }

    /// The text exposition of every metric, with the state gauges set from `readings`.
    pub fn render(&self, readings: &Readings) -> String {
        self.log_head.set(gauge_value(readings.log_head));
        for (name, checkpoint) in &readings.checkpoints {
            self.projection_checkpoint
                .with_label_values(&[name])
                .set(gauge_value(*checkpoint));
        }
        if let Some(lag) = &readings.lag {
            self.projection_lag_events.set(gauge_value(lag.events));
            self.projection_lag_seconds.set(lag.seconds);
        }
        self.grpc_streams_open
            .set(gauge_value(readings.streams_open));
        self.grpc_stream_buffered_bytes
            .set(gauge_value(readings.stream_buffered_bytes));
        // The counts live in the streams; the counters catch up with them at each scrape.
        self.grpc_streams_refused.inc_by(
            readings
                .streams_refused
                .saturating_sub(self.grpc_streams_refused.get()),
        );
        self.grpc_streams_dropped.inc_by(
            readings
                .streams_dropped
                .saturating_sub(self.grpc_streams_dropped.get()),
        );
        for status in ["active", "paused", "failing"] {
            let count = readings
                .webhooks
                .iter()
                .find(|(name, _)| *name == status)
                .map_or(0, |(_, count)| *count);
            self.webhooks
                .with_label_values(&[status])
                .set(gauge_value(count));
        }
        self.webhook_deliveries.inc_by(
            readings
                .webhook_deliveries
                .saturating_sub(self.webhook_deliveries.get()),
        );
        self.webhook_failed_attempts.inc_by(
            readings
                .webhook_failed_attempts
                .saturating_sub(self.webhook_failed_attempts.get()),
        );
        for status in ["enabled", "paused", "disabled"] {
            let count = readings
                .ssf_streams
                .iter()
                .find(|(name, _)| *name == status)
                .map_or(0, |(_, count)| *count);
            self.ssf_streams
                .with_label_values(&[status])
                .set(gauge_value(count));
        }
        self.ssf_sets_delivered.inc_by(
            readings
                .ssf_sets_delivered
                .saturating_sub(self.ssf_sets_delivered.get()),
        );
        self.ssf_failed_pushes.inc_by(
            readings
                .ssf_failed_pushes
                .saturating_sub(self.ssf_failed_pushes.get()),
        );
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
