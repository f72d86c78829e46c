//! An optional request rate limit per SCIM token: a token bucket per token id that refills at
//! `per_second` up to `burst`. Off unless `roster serve --rate-limit` is given: Entra ID
//! quarantines a provisioning job that keeps seeing 429s, so throttling is an explicit choice.
//! A refused request gets 429 with `Retry-After` (whole seconds, rounded up).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use roster_engine::domain::TokenId;

/// Requests per second and burst size for each token.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: u32,
}

impl RateLimit {
    /// A limit of `per_second` (positive, finite) with `burst` (at least 1; default: the rate
    /// rounded up).
    pub fn new(per_second: f64, burst: Option<u32>) -> Result<Self, String> {
        if !(per_second.is_finite() && per_second > 0.0) {
            return Err(format!(
                "the rate limit must be a positive number of requests per second, not {per_second}"
            ));
        }
        let burst = burst.unwrap_or_else(|| per_second.ceil().min(f64::from(u32::MAX)) as u32);
        if burst == 0 {
            return Err("the burst must be at least 1".to_owned());
        }
        Ok(Self { per_second, burst })
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Buckets kept before idle full ones are dropped.
const PRUNE_ABOVE: usize = 10_000;

/// The per-token buckets; without a limit every request passes.
#[derive(Debug, Default)]
pub struct RateLimiter {
    limit: Option<RateLimit>,
    buckets: Mutex<HashMap<TokenId, Bucket>>,
}

impl RateLimiter {
    pub fn new(limit: Option<RateLimit>) -> Self {
        Self {
            limit,
            buckets: Mutex::default(),
        }
    }

    pub fn limit(&self) -> Option<RateLimit> {
        self.limit
    }

    /// Takes one request from `token`'s bucket at `now`; when empty, how long until it holds one.
    pub fn check(&self, token: &TokenId, now: Instant) -> Result<(), Duration> {
        let Some(limit) = self.limit else {
            return Ok(());
        };
        let burst = f64::from(limit.burst);
        let mut buckets = match self.buckets.lock() {
            Ok(buckets) => buckets,
            Err(poisoned) => poisoned.into_inner(),
        };
        if buckets.len() > PRUNE_ABOVE {
            buckets.retain(|_, bucket| {
                let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
                bucket.tokens + elapsed * limit.per_second < burst
            });
        }
        let bucket = buckets.entry(token.clone()).or_insert(Bucket {
            tokens: burst,
            updated: now,
        });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * limit.per_second).min(burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - bucket.tokens) / limit.per_second,
            ))
        }
    }
}

/// `Retry-After` seconds for a wait: rounded up, at least 1.
pub fn retry_after_seconds(wait: Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(id: &str) -> TokenId {
        TokenId(id.to_owned())
    }

    #[test]
    fn without_a_limit_everything_passes() {
        let limiter = RateLimiter::new(None);
        let now = Instant::now();
        for _ in 0..10_000 {
            assert_eq!(limiter.check(&token("a"), now), Ok(()));
        }
    }

    #[test]
    fn a_burst_passes_then_the_bucket_refills_at_the_rate() {
        let limiter = RateLimiter::new(Some(RateLimit::new(2.0, Some(3)).unwrap()));
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.check(&token("a"), start), Ok(()));
        }
        let wait = limiter.check(&token("a"), start).unwrap_err();
        assert!((wait.as_secs_f64() - 0.5).abs() < 1e-9, "{wait:?}");
        assert_eq!(retry_after_seconds(wait), 1);
        // Another token has its own bucket.
        assert_eq!(limiter.check(&token("b"), start), Ok(()));
        // Half a second later one more request fits, and only one.
        let later = start + Duration::from_millis(500);
        assert_eq!(limiter.check(&token("a"), later), Ok(()));
        assert!(limiter.check(&token("a"), later).is_err());
        // Refilling stops at the burst.
        let much_later = start + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(limiter.check(&token("a"), much_later), Ok(()));
        }
        assert!(limiter.check(&token("a"), much_later).is_err());
    }

    #[test]
    fn retry_after_rounds_up() {
        let limiter = RateLimiter::new(Some(RateLimit::new(0.25, Some(1)).unwrap()));
        let now = Instant::now();
        assert_eq!(limiter.check(&token("a"), now), Ok(()));
        let wait = limiter.check(&token("a"), now).unwrap_err();
        assert_eq!(retry_after_seconds(wait), 4);
        assert_eq!(retry_after_seconds(Duration::from_millis(4001)), 5);
        assert_eq!(retry_after_seconds(Duration::ZERO), 1);
    }

    #[test]
    fn nonsense_limits_are_refused() {
        assert!(RateLimit::new(0.0, None).is_err());
        assert!(RateLimit::new(-1.0, None).is_err());
        assert!(RateLimit::new(f64::NAN, None).is_err());
        assert!(RateLimit::new(5.0, Some(0)).is_err());
        assert_eq!(RateLimit::new(2.5, None).unwrap().burst, 3);
    }
}
