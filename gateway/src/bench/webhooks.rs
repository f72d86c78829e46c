//! `roster bench webhooks`: how fast and how soon webhooks are delivered. A receiver in this
//! process (on 127.0.0.1) counts every delivery and its latency from the event's recording in the
//! log (`timestamp` of the body) to its arrival, while users are created at full speed in a
//! tenant with `webhooks` subscriptions to `user.provisioned`: every create makes one delivery
//! per subscription.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::StatusCode;

use super::{Report, Target};

/// What the receiver saw.
#[derive(Default)]
struct Seen {
    latencies: Vec<Duration>,
    first: Option<Instant>,
    last: Option<Instant>,
}

/// The delivery figures of one run.
pub struct WebhookRun {
    pub creates: Report,
    /// Deliveries received, and in how long (first to last).
    pub deliveries: Report,
    pub expected: usize,
}

/// Starts the receiver; returns its base URL and what it saw.
async fn receiver() -> std::io::Result<(String, Arc<Mutex<Seen>>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let recorder = Arc::clone(&seen);
    let app = axum::Router::new().route(
        "/hook/{n}",
        axum::routing::post(move |body: Bytes| {
            let recorder = Arc::clone(&recorder);
            async move {
                let arrived = Instant::now();
                let now = time::OffsetDateTime::now_utc();
                let recorded = serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|body| body["timestamp"].as_str().map(str::to_owned))
                    .and_then(|text| {
                        time::OffsetDateTime::parse(
                            &text,
                            &time::format_description::well_known::Rfc3339,
                        )
                        .ok()
                    });
                let latency = recorded
                    .map(|at| Duration::try_from(now - at).unwrap_or_default())
                    .unwrap_or_default();
                if let Ok(mut seen) = recorder.lock() {
                    seen.latencies.push(latency);
                    seen.first.get_or_insert(arrived);
                    seen.last = Some(arrived);
                }
                StatusCode::NO_CONTENT
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((format!("http://{address}/hook"), seen))
}

/// Adds `webhooks` subscriptions with `add` (given each one's URL), creates `users` users through
/// `clients` clients (at most `rate` per second, if given), and waits (up to `patience` after
/// the last create) for every delivery.
pub async fn run<F, Fut>(
    target: &Target,
    webhooks: usize,
    users: usize,
    clients: usize,
    rate: Option<f64>,
    patience: Duration,
    add: F,
) -> Result<WebhookRun, String>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let (url, seen) = receiver()
        .await
        .map_err(|error| format!("cannot start the receiver: {error}"))?;
    for n in 0..webhooks {
        add(format!("{url}/{n}")).await?;
    }
    let creates =
        super::paced_creates(std::slice::from_ref(target), clients, users, "hooked", rate).await;
    let expected = creates.latencies.len() * webhooks;
    let waited = Instant::now();
    loop {
        let count = seen.lock().map(|seen| seen.latencies.len()).unwrap_or(0);
        if count >= expected || waited.elapsed() > patience {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seen = seen.lock().map_err(|_| "the receiver failed".to_owned())?;
    let elapsed = match (seen.first, seen.last) {
        (Some(first), Some(last)) => last - first,
        _ => Duration::ZERO,
    };
    let mut errors = std::collections::BTreeMap::new();
    if seen.latencies.len() < expected {
        errors.insert("missing".to_owned(), expected - seen.latencies.len());
    }
    Ok(WebhookRun {
        creates,
        deliveries: Report {
            name: format!("webhook deliveries ({webhooks} webhooks, event recorded → received)"),
            elapsed,
            latencies: seen.latencies.clone(),
            errors,
        },
        expected,
    })
}
