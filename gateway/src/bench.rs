//! The load generator behind `roster bench`: plays SCIM traffic against a running roster over
//! HTTP and reports throughput, latency percentiles and errors by status.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

/// Latencies and outcomes of one scenario.
#[derive(Debug, Default)]
pub struct Report {
    pub name: String,
    pub elapsed: Duration,
    pub latencies: Vec<Duration>,
    pub errors: BTreeMap<String, usize>,
}

impl Report {
    pub fn requests(&self) -> usize {
        self.latencies.len() + self.errors.values().sum::<usize>()
    }

    pub fn per_second(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    /// The latency below which `fraction` of successful requests fall.
    pub fn percentile(&self, fraction: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let mut sorted = self.latencies.clone();
        sorted.sort_unstable();
        let index = ((sorted.len() as f64 * fraction).ceil() as usize).clamp(1, sorted.len()) - 1;
        sorted[index]
    }

    pub fn summary(&self) -> String {
        let millis = |duration: Duration| duration.as_secs_f64() * 1000.0;
        format!(
            "{}: {} ok in {:.2}s = {:.0}/s; p50 {:.2} ms, p99 {:.2} ms, p999 {:.2} ms; errors {:?}",
            self.name,
            self.latencies.len(),
            self.elapsed.as_secs_f64(),
            self.per_second(),
            millis(self.percentile(0.50)),
            millis(self.percentile(0.99)),
            millis(self.percentile(0.999)),
            self.errors
        )
    }
}

/// Where to send the traffic.
#[derive(Clone, Debug)]
pub struct Target {
    /// `http://host:port/scim/v2/<tenant>`.
    pub base_url: String,
    pub token: String,
}

/// Creates `users` users through `clients` concurrent clients, each sending one request at a
/// time (the way an IdP's provisioning workers do).
pub async fn creates(target: &Target, clients: usize, users: usize, prefix: &str) -> Report {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()
        .unwrap_or_default();
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..clients.max(1) {
        let http = http.clone();
        let next = next.clone();
        let target = target.clone();
        let prefix = prefix.to_owned();
        workers.push(tokio::spawn(async move {
            let mut report = Report::default();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= users {
                    break;
                }
                let body = json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "userName": format!("{prefix}-{n}"),
                    "externalId": format!("{prefix}-ext-{n}"),
                    "name": {"givenName": "Bench", "familyName": format!("User {n}")},
                    "emails": [{"value": format!("{prefix}-{n}@bench.example"), "type": "work", "primary": true}],
                    "active": true
                });
                let sent = Instant::now();
                let response = http
                    .post(format!("{}/Users", target.base_url))
                    .bearer_auth(&target.token)
                    .header("content-type", "application/scim+json")
                    .body(body.to_string())
                    .send()
                    .await;
                match response {
                    Ok(response) if response.status().as_u16() == 201 => {
                        let _ = response.bytes().await;
                        report.latencies.push(sent.elapsed());
                    }
                    Ok(response) => {
                        *report.errors.entry(response.status().as_u16().to_string()).or_default() += 1;
                    }
                    Err(error) => {
                        let kind = if error.is_connect() { "connect" } else { "transport" };
                        *report.errors.entry(kind.to_owned()).or_default() += 1;
                    }
                }
            }
            report
        }));
    }
    let mut total = Report {
        name: format!("creates ({clients} clients)"),
        ..Report::default()
    };
    for worker in workers {
        if let Ok(report) = worker.await {
            total.latencies.extend(report.latencies);
            for (status, count) in report.errors {
                *total.errors.entry(status).or_default() += count;
            }
        }
    }
    total.elapsed = started.elapsed();
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_the_nearest_rank() {
        let report = Report {
            latencies: (1..=100).map(Duration::from_millis).collect(),
            elapsed: Duration::from_secs(1),
            ..Report::default()
        };
        assert_eq!(report.percentile(0.5), Duration::from_millis(50));
        assert_eq!(report.percentile(0.99), Duration::from_millis(99));
        assert_eq!(report.percentile(1.0), Duration::from_millis(100));
        assert_eq!(report.per_second(), 100.0);
    }
}
