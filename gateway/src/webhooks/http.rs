//! One webhook request: the body (`{"type", "timestamp", "data"}`, `data` the event's JSON form),
//! the Standard Webhooks headers, the POST with a timeout, redirects never followed, and at most
//! [`ANSWER_BYTES_MAX`] of the answer read.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Request, StatusCode};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use roster_engine::codec;
use roster_engine::domain::Event;

/// Most bytes of a receiver's answer read (the rest is dropped with the connection).
const ANSWER_BYTES_MAX: usize = 64 * 1024;
/// Most characters of a receiver's answer kept to show the admin.
const ANSWER_SHOWN_MAX: usize = 200;
/// Longest wait for the rest of an answer once its status arrived.
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(2);

/// `Retry-After` as seconds or as an HTTP date (RFC 9110 §10.2.3); a date in the past is now.
fn retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at =
        time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc2822).ok()?;
    Some(Duration::try_from(at - time::OffsetDateTime::now_utc()).unwrap_or_default())
}

pub(crate) type Client = HyperClient<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// An HTTP(S) client: TLS with the system's root certificates (none found: https deliveries fail
/// with a certificate error the admin sees), HTTP/1.1 with keep-alive.
pub(crate) fn client() -> Result<Client, rustls::Error> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    let (added, _) = roots.add_parsable_certificates(native.certs);
    if added == 0 {
        tracing::warn!(
            "no system root certificates found: webhook deliveries to https:// URLs will fail (install ca-certificates)"
        );
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(Duration::from_secs(10)));
    http.set_nodelay(true);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(HyperClient::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(32)
        .build(connector))
}

/// The request body of `event`: `{"type": …, "timestamp": …, "data": <the event's JSON form>}`,
/// written straight into one buffer.
pub(crate) fn body(event: &Event) -> Result<Bytes, String> {
    let mut out = Vec::with_capacity(1024);
    out.extend_from_slice(b"{\"type\":");
    serde_json::to_writer(&mut out, event.payload.event_type()).map_err(|e| e.to_string())?;
    out.extend_from_slice(b",\"timestamp\":");
    serde_json::to_writer(&mut out, &event.recorded_at.to_rfc3339()).map_err(|e| e.to_string())?;
    out.extend_from_slice(b",\"data\":");
    roster_proto::json::write_event_json(&codec::to_proto(event), &mut out)
        .map_err(|error| error.to_string())?;
    out.push(b'}');
    Ok(Bytes::from(out))
}

/// A receiver's answer.
pub(crate) struct Answer {
    pub status: StatusCode,
    retry_after: Option<Duration>,
    excerpt: String,
    location: Option<String>,
}

/// A failed attempt.
pub(crate) struct Failed {
    /// 0: no answer.
    pub status: u16,
    pub error: String,
    pub retry_after: Option<Duration>,
}

impl Failed {
    pub fn describe(&self) -> String {
        if self.status == 0 {
            format!("no answer: {}", self.error)
        } else if self.error.is_empty() {
            format!("HTTP {}", self.status)
        } else {
            format!("HTTP {}: {}", self.status, self.error)
        }
    }
}

impl Answer {
    pub fn failure(self) -> Failed {
        let error = match (self.status.is_redirection(), self.location) {
            (true, Some(location)) => format!("redirect to {location} not followed"),
            (true, None) => "redirect not followed".to_owned(),
            _ => self.excerpt,
        };
        Failed {
            status: self.status.as_u16(),
            error,
            retry_after: self.retry_after,
        }
    }
}

/// POSTs `body` to `url` signed with each of `secrets`.
pub(crate) async fn post(
    client: &Client,
    url: &str,
    message_id: &str,
    secrets: &[[u8; 32]],
    body: Bytes,
    timeout: Duration,
) -> Result<Answer, String> {
    let timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
    let signature = secrets
        .iter()
        .map(|secret| super::keys::sign(secret, message_id, timestamp, &body))
        .collect::<Vec<_>>()
        .join(" ");
    let timestamp = timestamp.to_string();
    post_with(
        client,
        url,
        &[
            ("content-type", "application/json"),
            ("webhook-id", message_id),
            ("webhook-timestamp", &timestamp),
            ("webhook-signature", &signature),
        ],
        None,
        body,
        timeout,
    )
    .await
}

/// POSTs `body` to `url` with `headers` (and `authorization`, if given), waiting at most
/// `timeout` for the answer; redirects are not followed and at most 64 KiB of the answer is
/// read.
pub(crate) async fn post_with(
    client: &Client,
    url: &str,
    headers: &[(&str, &str)],
    authorization: Option<&str>,
    body: Bytes,
    timeout: Duration,
) -> Result<Answer, String> {
    let mut request =
        Request::post(url).header("user-agent", concat!("roster/", env!("CARGO_PKG_VERSION")));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(authorization) = authorization {
        request = request.header("authorization", authorization);
    }
    let request = request
        .body(Full::new(body))
        .map_err(|error| format!("invalid request: {error}"))?;
    let exchange = async {
        let response = client.request(request).await.map_err(describe)?;
        let status = response.status();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned)
        };
        let retry_after = header("retry-after").and_then(|value| retry_after(&value));
        let location = header("location");
        Ok::<_, String>((status, retry_after, location, response.into_body()))
    };
    let (status, retry_after, location, body) = match tokio::time::timeout(timeout, exchange).await
    {
        Ok(answer) => answer?,
        Err(_) => return Err(format!("no answer within {timeout:?}")),
    };
    // The status decides. Read (a bounded part of) the rest, briefly, so that the connection can
    // be reused and a failure shows what the receiver said; a slow body changes nothing.
    let read = Limited::new(body, ANSWER_BYTES_MAX).collect();
    let excerpt = match tokio::time::timeout(BODY_READ_TIMEOUT, read).await {
        Ok(Ok(collected)) if !status.is_success() => {
            let bytes = collected.to_bytes();
            String::from_utf8_lossy(&bytes)
                .chars()
                .filter(|c| !c.is_control())
                .take(ANSWER_SHOWN_MAX)
                .collect()
        }
        _ => String::new(),
    };
    Ok(Answer {
        status,
        retry_after,
        excerpt,
        location,
    })
}

/// A client error with its causes (a connection refused says so).
fn describe(error: hyper_util::client::legacy::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        assert_eq!(retry_after("120"), Some(Duration::from_secs(120)));
        let later = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
        let date = later
            .format(&time::format_description::well_known::Rfc2822)
            .unwrap();
        let parsed = retry_after(&date).unwrap();
        assert!(parsed > Duration::from_secs(3500) && parsed <= Duration::from_secs(3600));
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("soon"), None);
    }
}
