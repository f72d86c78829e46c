//! Webhook subscriptions: the rules of a tenant's signed HTTP pushes of its lifecycle events
//! (Standard Webhooks). What a subscription is (target URL, event filter, status, which secret
//! signs), how a target URL and an event filter are checked, and which events a filter selects.
//! Delivery itself (HTTP, signing, retries, cursors) is the gateway's; this module only decides
//! what the subscriptions are, so every edge and every process agrees.

use serde::{Deserialize, Serialize};

use super::event::EventPayload;
use super::ids::{Timestamp, WebhookId};

/// Most subscriptions a tenant holds.
pub const WEBHOOKS_PER_TENANT_MAX: usize = 32;
/// Longest target URL.
pub const WEBHOOK_URL_MAX: usize = 2048;
/// Longest description.
pub const WEBHOOK_DESCRIPTION_MAX: usize = 256;
/// Most patterns in an event filter.
pub const WEBHOOK_FILTERS_MAX: usize = 64;

/// Whether a subscription is delivered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookStatus {
    /// Delivered as events arrive.
    #[default]
    Active,
    /// Paused by an admin: events wait (the cursor stays) until resumed.
    Paused,
    /// The receiver kept failing for the whole retry schedule: events wait until an admin resumes.
    Failing,
}

impl WebhookStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookStatus::Active => "active",
            WebhookStatus::Paused => "paused",
            WebhookStatus::Failing => "failing",
        }
    }
}

/// A subscription as the tenant record holds it. Its signing secrets are never stored here nor in
/// any event: they are derived from the deployment's webhook key, the id and `secret_generation`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookRecord {
    pub id: WebhookId,
    pub url: String,
    /// Event types or globs (`user.*`); empty: every event type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub event_types: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default)]
    pub status: WebhookStatus,
    /// Why the status is what it is (who paused it, the receiver's last answer when failing).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub status_reason: String,
    /// Which secret signs: 1 at creation, one more at every rotation.
    pub secret_generation: u32,
    /// Earlier secrets still signing alongside (rotations' overlaps), each until its expiry; at
    /// most [`PREVIOUS_SECRETS_MAX`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub previous_secrets: Vec<PreviousSecret>,
    pub created_at: Timestamp,
}

/// Most earlier secrets that keep signing at once (rotations within one another's overlap).
pub const PREVIOUS_SECRETS_MAX: usize = 4;

/// A rotated-out secret that signs until `expires_at`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviousSecret {
    pub generation: u32,
    pub expires_at: Timestamp,
}

impl WebhookRecord {
    /// Whether the subscription selects events of `event_type`.
    pub fn selects(&self, event_type: &str) -> bool {
        self.event_types.is_empty()
            || self
                .event_types
                .iter()
                .any(|pattern| pattern_matches(pattern, event_type))
    }

    /// The secret generations that sign at `now`: the current one, and the earlier ones whose
    /// rotation overlap has not ended.
    pub fn signing_generations(&self, now: Timestamp) -> Vec<u32> {
        let mut generations = vec![self.secret_generation];
        generations.extend(
            self.previous_secrets
                .iter()
                .rev()
                .filter(|previous| now < previous.expires_at)
                .map(|previous| previous.generation),
        );
        generations
    }

    /// Until when the latest rotated-out secret signs, if one still does at `now`.
    pub fn previous_secret_expires_at(&self, now: Timestamp) -> Option<Timestamp> {
        self.previous_secrets
            .iter()
            .filter(|previous| now < previous.expires_at)
            .map(|previous| previous.expires_at)
            .max()
    }
}

/// A subscription to add; the caller made its id.
#[derive(Clone, Debug, PartialEq)]
pub struct NewWebhook {
    pub id: WebhookId,
    pub url: String,
    pub event_types: Vec<String>,
    pub description: String,
}

/// Whether `pattern` (an event type, `resource.*` or `*`) matches `event_type`.
pub fn pattern_matches(pattern: &str, event_type: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    match pattern.strip_suffix(".*") {
        Some(resource) => event_type
            .strip_prefix(resource)
            .is_some_and(|rest| rest.starts_with('.')),
        None => pattern == event_type,
    }
}

/// Checks a target URL: absolute `http` or `https` with a host, no credentials (they would be
/// stored in the log), no fragment, no whitespace or control characters, at most
/// [`WEBHOOK_URL_MAX`] bytes. Returns why not.
pub fn check_url(url: &str) -> Result<(), String> {
    if url.len() > WEBHOOK_URL_MAX {
        return Err(format!(
            "the URL is {} bytes long; at most {WEBHOOK_URL_MAX}",
            url.len()
        ));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("the URL must not contain spaces or control characters".to_owned());
    }
    let lower = url.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))
        .ok_or_else(|| format!("{url:?} is not an http:// or https:// URL"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() {
        return Err(format!("{url:?} has no host"));
    }
    if authority.contains('@') {
        return Err(
            "the URL must not hold credentials (user:password@): receivers authenticate roster by \
             the signature"
                .to_owned(),
        );
    }
    if url.contains('#') {
        return Err("the URL must not have a fragment (#…)".to_owned());
    }
    // `host`, `host:port`, `[v6]` or `[v6]:port`.
    let (host, port) = match authority.strip_prefix('[') {
        Some(bracketed) => {
            let (host, rest) = bracketed.split_once(']').unwrap_or((bracketed, ""));
            (host, rest.strip_prefix(':'))
        }
        None => match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    if host.is_empty() {
        return Err(format!("{url:?} has no host"));
    }
    if port.is_some_and(|port| port.parse::<u16>().is_err()) {
        return Err(format!("{url:?} has an invalid port"));
    }
    Ok(())
}

/// Checks an event filter: each pattern an event type, `resource.*` or `*`, matching at least one
/// of [`EventPayload::TYPES`]; at most [`WEBHOOK_FILTERS_MAX`]. Returns the patterns, trimmed,
/// lowercased and without repeats, or why not.
pub fn check_event_types(patterns: &[String]) -> Result<Vec<String>, String> {
    if patterns.len() > WEBHOOK_FILTERS_MAX {
        return Err(format!(
            "{} event types given; at most {WEBHOOK_FILTERS_MAX}",
            patterns.len()
        ));
    }
    let mut checked: Vec<String> = Vec::new();
    for pattern in patterns {
        let pattern = pattern.trim().to_ascii_lowercase();
        if pattern.is_empty() {
            continue;
        }
        if !EventPayload::TYPES
            .iter()
            .any(|event_type| pattern_matches(&pattern, event_type))
        {
            return Err(format!(
                "{pattern:?} matches no event type (event types are like user.deactivated; \
                 user.* matches every user event)"
            ));
        }
        if !checked.contains(&pattern) {
            checked.push(pattern);
        }
    }
    Ok(checked)
}

/// Checks a description: at most [`WEBHOOK_DESCRIPTION_MAX`] characters, no control characters.
pub fn check_description(description: &str) -> Result<(), String> {
    if description.chars().count() > WEBHOOK_DESCRIPTION_MAX {
        return Err(format!(
            "the description is longer than {WEBHOOK_DESCRIPTION_MAX} characters"
        ));
    }
    if description.chars().any(char::is_control) {
        return Err("the description must not contain control characters".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_types_and_globs() {
        assert!(pattern_matches("user.deactivated", "user.deactivated"));
        assert!(!pattern_matches("user.deactivated", "user.deleted"));
        assert!(pattern_matches("user.*", "user.deleted"));
        assert!(!pattern_matches("user.*", "user_x.deleted"));
        assert!(!pattern_matches("user.*", "resource_group.member_set"));
        assert!(pattern_matches("*", "group.created"));
    }

    #[test]
    fn urls_are_checked() {
        assert!(check_url("https://hooks.example.com/roster").is_ok());
        assert!(check_url("http://127.0.0.1:8080/x?y=1").is_ok());
        assert!(check_url("http://[::1]:8080/x").is_ok());
        assert!(check_url("ftp://example.com").is_err());
        assert!(check_url("https://user:pw@example.com/").is_err());
        assert!(check_url("https:///path").is_err());
        assert!(check_url("https://example.com/a b").is_err());
        assert!(check_url("https://example.com/#x").is_err());
        assert!(check_url("https://example.com:99999/").is_err());
        assert!(check_url(&format!("https://example.com/{}", "a".repeat(3000))).is_err());
    }

    #[test]
    fn event_filters_name_real_types() {
        let checked =
            check_event_types(&["User.Deactivated ".into(), "user.*".into(), "user.*".into()])
                .unwrap();
        assert_eq!(checked, vec!["user.deactivated", "user.*"]);
        assert!(check_event_types(&["user.fired".into()]).is_err());
        assert!(check_event_types(&["nothing.*".into()]).is_err());
    }
}
