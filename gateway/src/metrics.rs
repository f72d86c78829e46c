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
        let mut text = Vec::new();
        if let Err(error) = TextEncoder::new().encode(&self.registry.gather(), &mut text) {
            tracing::warn!(%error, "encoding metrics failed");
        }
        String::from_utf8(text).unwrap_or_default()
    }
}
