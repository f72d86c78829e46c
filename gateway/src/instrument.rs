//! What feeds `Metrics` from the running stack: the HTTP middleware that counts and times every
//! request, the task that counts appended events by type, and the state gauges read at a scrape.
//! `metrics.rs` holds the metric families and knows nothing of the stack; this module knows both.

use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use roster_engine::domain::TenantName;

use crate::metrics::Readings;
use crate::state::AppState;

/// The text exposition of every metric, with the state gauges read now.
pub fn render(state: &AppState) -> String {
    let streams = &state.streams;
    let readings = Readings {
        log_head: state.engine.log().durable_head(),
        checkpoints: state.projector.checkpoints().unwrap_or_default(),
        lag: state.projector.lag().ok(),
        streams_open: streams.open_count(),
        stream_buffered_bytes: streams.buffered_bytes(),
        streams_refused: streams.refused_count(),
        streams_dropped: streams.dropped_count(),
        webhooks: webhook_statuses(state),
        webhook_deliveries: state.webhooks.counts().delivered.load(Ordering::Relaxed),
        webhook_failed_attempts: state
            .webhooks
            .counts()
            .failed_attempts
            .load(Ordering::Relaxed),
        ssf_streams: ssf_statuses(state),
        ssf_sets_delivered: state
            .ssf_delivery
            .counts()
            .delivered
            .load(Ordering::Relaxed),
        ssf_failed_pushes: state
            .ssf_delivery
            .counts()
            .failed_attempts
            .load(Ordering::Relaxed),
    };
    state.metrics.render(&readings)
}

/// How many Shared Signals streams have each status, over every tenant.
fn ssf_statuses(state: &AppState) -> Vec<(&'static str, u64)> {
    let mut counts: Vec<(&'static str, u64)> = Vec::new();
    for (_, record) in state.engine.aggregate().tenants().unwrap_or_default() {
        for stream in &record.ssf_streams {
            let status = stream.status.as_str();
            match counts.iter_mut().find(|(name, _)| *name == status) {
                Some((_, count)) => *count += 1,
                None => counts.push((status, 1)),
            }
        }
    }
    counts
}

/// How many webhook subscriptions have each status, over every tenant.
fn webhook_statuses(state: &AppState) -> Vec<(&'static str, u64)> {
    let mut counts: Vec<(&'static str, u64)> = Vec::new();
    for (_, record) in state.engine.aggregate().tenants().unwrap_or_default() {
        for webhook in &record.webhooks {
            let status = webhook.status.as_str();
            match counts.iter_mut().find(|(name, _)| *name == status) {
                Some((_, count)) => *count += 1,
                None => counts.push((status, 1)),
            }
        }
    }
    counts
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
    metrics.request(
        &route,
        &method,
        status.as_str(),
        &tenant,
        started.elapsed().as_secs_f64(),
    );
    if status.is_client_error() && route.starts_with("/scim/") {
        let scim_type = response
            .extensions()
            .get::<roster_scim::error::ScimType>()
            .map_or("none", |scim_type| scim_type.0);
        metrics.rejection(&tenant, status.as_str(), scim_type);
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
