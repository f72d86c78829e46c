//! Prometheus metrics, served at `/metrics`. Gauges that describe state (log head, projection
//! checkpoints and lag) are read from the running stack when scraped.

use prometheus::{Encoder, Gauge, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};

use crate::app::AppState;

/// roster's metric families.
pub struct Metrics {
    registry: Registry,
    log_head: IntGauge,
    projection_checkpoint: IntGaugeVec,
    projection_lag_events: IntGauge,
    projection_lag_seconds: Gauge,
    resident_memory: IntGauge,
    peak_resident_memory: IntGauge,
}

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
        registry.register(Box::new(resident_memory.clone()))?;
        registry.register(Box::new(peak_resident_memory.clone()))?;
        registry.register(Box::new(log_head.clone()))?;
        registry.register(Box::new(projection_checkpoint.clone()))?;
        registry.register(Box::new(projection_lag_events.clone()))?;
        registry.register(Box::new(projection_lag_seconds.clone()))?;
        Ok(Self {
            registry,
            log_head,
            projection_checkpoint,
            projection_lag_events,
            projection_lag_seconds,
            resident_memory,
            peak_resident_memory,
        })
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
