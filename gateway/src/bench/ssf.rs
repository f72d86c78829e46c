//! `roster bench ssf`: how fast and how soon SETs are pushed. A receiver in this process (on
//! 127.0.0.1) counts every SET and its latency from the acknowledgement (201) of the create it
//! is about to its arrival, while users are created in a tenant with `streams` push streams
//! asking for RFC 9967 `prov:create:notice`: every create makes one SET per stream, signed RS256.
//! The receiver reads the SET's payload without checking the signature (receivers' cost is not
//! roster's); the tests and CI check signatures.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::StatusCode;
use base64::Engine as _;

use super::{Report, Target};

/// What the receiver saw: per externalId, when its SETs arrived.
#[derive(Default)]
struct Seen {
    arrivals: Vec<(String, Instant)>,
    first: Option<Instant>,
    last: Option<Instant>,
}

/// The figures of one run.
pub struct SsfRun {
    pub creates: Report,
    pub deliveries: Report,
    pub expected: usize,
}

/// The externalId a `prov:create:notice` SET names (its `sub_id`).
fn external_id(set: &[u8]) -> Option<String> {
    let payload = set.split(|byte| *byte == b'.').nth(1)?;
    let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&claims).ok()?;
    claims["sub_id"]["externalId"].as_str().map(str::to_owned)
}

async fn receiver() -> std::io::Result<(String, Arc<Mutex<Seen>>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let recorder = Arc::clone(&seen);
    let app = axum::Router::new().route(
        "/events/{n}",
        axum::routing::post(move |body: Bytes| {
            let recorder = Arc::clone(&recorder);
            async move {
                let arrived = Instant::now();
                let Some(external_id) = external_id(&body) else {
                    return StatusCode::BAD_REQUEST;
                };
                if let Ok(mut seen) = recorder.lock() {
                    seen.arrivals.push((external_id, arrived));
                    seen.first.get_or_insert(arrived);
                    seen.last = Some(arrived);
                }
                StatusCode::ACCEPTED
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((format!("http://{address}/events"), seen))
}

/// Creates `streams` push streams with `create` (given each one's URL), creates `users` users
/// through `clients` clients (at most `rate` per second, if given), and waits (up to `patience`
/// after the last create) for every SET.
pub async fn run<F, Fut>(
    target: &Target,
    streams: usize,
    users: usize,
    clients: usize,
    rate: Option<f64>,
    patience: Duration,
    create: F,
) -> Result<SsfRun, String>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let (url, seen) = receiver()
        .await
        .map_err(|error| format!("cannot start the receiver: {error}"))?;
    for n in 0..streams {
        create(format!("{url}/{n}")).await?;
    }
    let acknowledged: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let observer = {
        let acknowledged = Arc::clone(&acknowledged);
        Arc::new(move |external_id: &str, at: Instant| {
            if let Ok(mut acknowledged) = acknowledged.lock() {
                acknowledged.insert(external_id.to_owned(), at);
            }
        })
    };
    let creates = super::paced_creates_observed(
        std::slice::from_ref(target),
        clients,
        users,
        "signals",
        rate,
        observer,
    )
    .await;
    let expected = creates.latencies.len() * streams;
    let waited = Instant::now();
    loop {
        let count = seen.lock().map(|seen| seen.arrivals.len()).unwrap_or(0);
        if count >= expected || waited.elapsed() > patience {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seen = seen.lock().map_err(|_| "the receiver failed".to_owned())?;
    let acknowledged = acknowledged
        .lock()
        .map_err(|_| "the creates failed".to_owned())?;
    // A SET can arrive a moment before its create's 201 is read: that counts as no wait.
    let latencies: Vec<Duration> = seen
        .arrivals
        .iter()
        .filter_map(|(external_id, arrived)| {
            acknowledged
                .get(external_id)
                .map(|acked| arrived.saturating_duration_since(*acked))
        })
        .collect();
    let elapsed = match (seen.first, seen.last) {
        (Some(first), Some(last)) => last - first,
        _ => Duration::ZERO,
    };
    let mut errors = std::collections::BTreeMap::new();
    if seen.arrivals.len() < expected {
        errors.insert("missing".to_owned(), expected - seen.arrivals.len());
    }
    Ok(SsfRun {
        creates,
        deliveries: Report {
            name: format!("SET pushes ({streams} streams, create acknowledged → SET received)"),
            elapsed,
            latencies,
            errors,
        },
        expected,
    })
}
