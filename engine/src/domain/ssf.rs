//! Shared Signals (OpenID SSF 1.0) streams: the rules of a tenant's event streams to security
//! receivers. What a stream is (its receiver, delivery method, requested events, status, the
//! subjects removed from it), how a stream's configuration and a subject are checked, which event
//! types roster transmits, and which of them a stream delivers. Building and signing SETs,
//! pushing and polling are the gateway's; this module only decides what the streams are, so
//! every edge and every process agrees.

use serde::{Deserialize, Serialize};

use super::ids::{SsfStreamId, Timestamp, TokenId};
use super::webhook::check_url;

/// Most streams a tenant holds (one per receiver).
pub const SSF_STREAMS_PER_TENANT_MAX: usize = 32;
/// Most event types a stream may request.
pub const SSF_EVENTS_REQUESTED_MAX: usize = 64;
/// Longest event type URI a stream may request.
pub const SSF_EVENT_URI_MAX: usize = 256;
/// Longest description.
pub const SSF_DESCRIPTION_MAX: usize = 256;
/// Longest `authorization_header` a push receiver may give.
pub const SSF_AUTHORIZATION_MAX: usize = 4096;
/// Most subjects removed from one stream.
pub const SSF_REMOVED_SUBJECTS_MAX: usize = 256;
/// Longest subject, as canonical JSON.
pub const SSF_SUBJECT_MAX: usize = 1024;
/// Longest verification `state`.
pub const SSF_STATE_MAX: usize = 256;
/// Shortest wait between two verification requests of one stream, in seconds.
pub const SSF_MIN_VERIFICATION_INTERVAL_SECONDS: i64 = 5;
/// Longest status reason kept.
pub const SSF_REASON_MAX: usize = 512;

/// RISC and CAEP event types, and the RFC 9967 SCIM events, roster transmits.
pub const RISC_ACCOUNT_DISABLED: &str =
    "https://schemas.openid.net/secevent/risc/event-type/account-disabled";
pub const RISC_ACCOUNT_ENABLED: &str =
    "https://schemas.openid.net/secevent/risc/event-type/account-enabled";
pub const RISC_ACCOUNT_PURGED: &str =
    "https://schemas.openid.net/secevent/risc/event-type/account-purged";
pub const CAEP_SESSION_REVOKED: &str =
    "https://schemas.openid.net/secevent/caep/event-type/session-revoked";
pub const CAEP_TOKEN_CLAIMS_CHANGE: &str =
    "https://schemas.openid.net/secevent/caep/event-type/token-claims-change";
pub const SCIM_PROV_CREATE_NOTICE: &str = "urn:ietf:params:scim:event:prov:create:notice";
pub const SCIM_PROV_PATCH_NOTICE: &str = "urn:ietf:params:scim:event:prov:patch:notice";
pub const SCIM_PROV_DELETE: &str = "urn:ietf:params:scim:event:prov:delete";
pub const SCIM_PROV_ACTIVATE: &str = "urn:ietf:params:scim:event:prov:activate";
pub const SCIM_PROV_DEACTIVATE: &str = "urn:ietf:params:scim:event:prov:deactivate";
/// SSF's own events, delivered on every stream whatever it requested.
pub const SSF_VERIFICATION: &str =
    "https://schemas.openid.net/secevent/ssf/event-type/verification";
pub const SSF_STREAM_UPDATED: &str =
    "https://schemas.openid.net/secevent/ssf/event-type/stream-updated";

/// Every event type a stream may receive (`events_supported`), in a stable order.
pub const SSF_EVENTS_SUPPORTED: &[&str] = &[
    RISC_ACCOUNT_DISABLED,
    RISC_ACCOUNT_ENABLED,
    RISC_ACCOUNT_PURGED,
    CAEP_SESSION_REVOKED,
    CAEP_TOKEN_CLAIMS_CHANGE,
    SCIM_PROV_CREATE_NOTICE,
    SCIM_PROV_PATCH_NOTICE,
    SCIM_PROV_DELETE,
    SCIM_PROV_ACTIVATE,
    SCIM_PROV_DEACTIVATE,
];

/// Push (RFC 8935) as SSF 1.0 names it, and as drafts before 2023 did (older RISC peers).
pub const SSF_PUSH: &str = "urn:ietf:rfc:8935";
pub const SSF_PUSH_LEGACY: &str = "https://schemas.openid.net/secevent/risc/delivery-method/push";
/// Poll (RFC 8936), and its pre-2023 name.
pub const SSF_POLL: &str = "urn:ietf:rfc:8936";
pub const SSF_POLL_LEGACY: &str = "https://schemas.openid.net/secevent/risc/delivery-method/poll";

/// A stream's status (SSF 1.0 §"Stream Status").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SsfStreamStatus {
    /// Events are delivered as they happen.
    #[default]
    Enabled,
    /// Events are held (none dropped) and delivered in order once enabled again.
    Paused,
    /// Nothing is held: events while disabled are never delivered.
    Disabled,
}

impl SsfStreamStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SsfStreamStatus::Enabled => "enabled",
            SsfStreamStatus::Paused => "paused",
            SsfStreamStatus::Disabled => "disabled",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "enabled" => Some(SsfStreamStatus::Enabled),
            "paused" => Some(SsfStreamStatus::Paused),
            "disabled" => Some(SsfStreamStatus::Disabled),
            _ => None,
        }
    }
}

/// How a stream's SETs reach its receiver.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SsfDelivery {
    /// RFC 8935: roster POSTs each SET to `endpoint_url`, with the receiver's
    /// `authorization_header` if it gave one. That header is a secret: it is kept sealed (see
    /// the gateway's keys), never in the clear in an event.
    Push {
        endpoint_url: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        authorization_sealed: Vec<u8>,
    },
    /// RFC 8936: the receiver polls the endpoint roster gives it.
    Poll,
}

/// What the receiver sets of its stream (SSF's receiver-supplied properties).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SsfStreamConfig {
    pub delivery: SsfDelivery,
    /// Event type URIs the receiver asked for; those roster supports are delivered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events_requested: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

/// A stream as the tenant record holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SsfStreamRecord {
    pub id: SsfStreamId,
    /// The receiver's OAuth client: the id of its `ssf` token (one stream per receiver).
    pub receiver: TokenId,
    pub config: SsfStreamConfig,
    #[serde(default)]
    pub status: SsfStreamStatus,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub status_reason: String,
    /// Subjects removed from the stream (every subject is in it otherwise: `default_subjects`
    /// is `ALL`), as canonical JSON.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed_subjects: Vec<String>,
    #[serde(default)]
    pub last_verification_at: Option<Timestamp>,
    pub created_at: Timestamp,
}

impl SsfStreamRecord {
    /// The event types delivered: those requested that roster supports, in its order.
    pub fn events_delivered(&self) -> Vec<&'static str> {
        events_delivered(&self.config.events_requested)
    }

    /// Whether SETs of `event_type` go out on this stream (SSF's own always do).
    pub fn delivers(&self, event_type: &str) -> bool {
        event_type == SSF_VERIFICATION
            || event_type == SSF_STREAM_UPDATED
            || self
                .config
                .events_requested
                .iter()
                .any(|requested| requested == event_type)
    }

    /// Whether a SET about `subject` (canonical JSON of a simple subject) goes out: not when a
    /// removed subject matches it.
    pub fn includes_subject(&self, subject: &serde_json::Value) -> bool {
        includes_subject(&self.removed_subjects, subject)
    }
}

/// Whether a SET about `subject` goes out on a stream from which `removed` (canonical JSON)
/// were removed.
pub fn includes_subject(removed: &[String], subject: &serde_json::Value) -> bool {
    !removed.iter().any(|removed| {
        serde_json::from_str::<serde_json::Value>(removed)
            .is_ok_and(|removed| subject_matches(&removed, subject))
    })
}

/// The supported event types among `requested`, in roster's order.
pub fn events_delivered(requested: &[String]) -> Vec<&'static str> {
    SSF_EVENTS_SUPPORTED
        .iter()
        .copied()
        .filter(|supported| requested.iter().any(|requested| requested == supported))
        .collect()
}

/// A stream to create; the caller made its id.
#[derive(Clone, Debug, PartialEq)]
pub struct NewSsfStream {
    pub id: SsfStreamId,
    pub receiver: TokenId,
    pub config: SsfStreamConfig,
}

/// Checks a receiver's configuration: a push endpoint is an http(s) URL (as a webhook's), the
/// requested events are at most [`SSF_EVENTS_REQUESTED_MAX`] URIs of at most
/// [`SSF_EVENT_URI_MAX`] bytes (unknown ones are allowed, and not delivered), the description at
/// most [`SSF_DESCRIPTION_MAX`] characters. Returns it trimmed and without repeats, or why not.
pub fn check_config(config: SsfStreamConfig) -> Result<SsfStreamConfig, String> {
    let delivery = match config.delivery {
        SsfDelivery::Push {
            endpoint_url,
            authorization_sealed,
        } => {
            let endpoint_url = endpoint_url.trim().to_owned();
            check_url(&endpoint_url).map_err(|why| format!("delivery.endpoint_url: {why}"))?;
            SsfDelivery::Push {
                endpoint_url,
                authorization_sealed,
            }
        }
        SsfDelivery::Poll => SsfDelivery::Poll,
    };
    if config.events_requested.len() > SSF_EVENTS_REQUESTED_MAX {
        return Err(format!(
            "events_requested has {} entries; at most {SSF_EVENTS_REQUESTED_MAX}",
            config.events_requested.len()
        ));
    }
    let mut events_requested: Vec<String> = Vec::new();
    for uri in config.events_requested {
        let uri = uri.trim().to_owned();
        if uri.is_empty() {
            continue;
        }
        if uri.len() > SSF_EVENT_URI_MAX || uri.chars().any(|c| c.is_control() || c == ' ') {
            return Err(format!(
                "events_requested: {:?} is not an event type URI",
                uri.chars().take(64).collect::<String>()
            ));
        }
        if !events_requested.contains(&uri) {
            events_requested.push(uri);
        }
    }
    let description = config.description.trim().to_owned();
    if description.chars().count() > SSF_DESCRIPTION_MAX
        || description.chars().any(char::is_control)
    {
        return Err(format!(
            "description: at most {SSF_DESCRIPTION_MAX} characters, no control characters"
        ));
    }
    Ok(SsfStreamConfig {
        delivery,
        events_requested,
        description,
    })
}

/// Checks a subject (RFC 9493 / SSF: an object with a string `format`; a `complex` one holds
/// simple subjects) and returns its canonical JSON (keys sorted), or why not.
pub fn check_subject(subject: &serde_json::Value) -> Result<String, String> {
    fn simple(subject: &serde_json::Value) -> Result<(), String> {
        let object = subject
            .as_object()
            .ok_or("a subject is a JSON object with a format")?;
        let format = object
            .get("format")
            .and_then(|format| format.as_str())
            .ok_or("a subject needs a string format (email, iss_sub, opaque, …)")?;
        if format.is_empty() {
            return Err("a subject's format is empty".to_owned());
        }
        Ok(())
    }
    simple(subject)?;
    if subject["format"] == "complex" {
        for (member, value) in subject.as_object().into_iter().flatten() {
            if member != "format" {
                simple(value).map_err(|why| format!("subject.{member}: {why}"))?;
            }
        }
    }
    let canonical = canonical_json(subject);
    if canonical.len() > SSF_SUBJECT_MAX {
        return Err(format!(
            "the subject is {} bytes of JSON; at most {SSF_SUBJECT_MAX}",
            canonical.len()
        ));
    }
    Ok(canonical)
}

/// `value` as JSON text with every object's keys sorted, whatever order it was built in.
pub fn canonical_json(value: &serde_json::Value) -> String {
    fn sorted(value: &serde_json::Value) -> serde_json::Value {
        match value {
            serde_json::Value::Object(object) => {
                let mut entries: Vec<(&String, &serde_json::Value)> = object.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                serde_json::Value::Object(
                    entries
                        .into_iter()
                        .map(|(key, value)| (key.clone(), sorted(value)))
                        .collect(),
                )
            }
            serde_json::Value::Array(items) => {
                serde_json::Value::Array(items.iter().map(sorted).collect())
            }
            other => other.clone(),
        }
    }
    sorted(value).to_string()
}

/// Whether the subject `filter` matches `subject` (SSF 1.0 §"Subject Matching"): simple subjects
/// by equality of every member; a complex filter matches when each of its members matches the
/// subject's member of the same name, or the subject has no such member, and a complex filter
/// matches a simple subject through its `user` member.
pub fn subject_matches(filter: &serde_json::Value, subject: &serde_json::Value) -> bool {
    let complex = |value: &serde_json::Value| value["format"] == "complex";
    match (complex(filter), complex(subject)) {
        (false, false) => filter == subject,
        (true, false) => filter
            .get("user")
            .is_some_and(|user| subject_matches(user, subject)),
        (false, true) => subject
            .get("user")
            .is_some_and(|user| subject_matches(filter, user)),
        (true, true) => filter
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(member, _)| *member != "format")
            .all(|(member, value)| {
                subject
                    .get(member)
                    .is_none_or(|other| subject_matches(value, other))
            }),
    }
}

/// Checks a verification `state`: at most [`SSF_STATE_MAX`] bytes, no control characters.
pub fn check_state(state: &str) -> Result<(), String> {
    if state.len() > SSF_STATE_MAX || state.chars().any(char::is_control) {
        return Err(format!(
            "state: at most {SSF_STATE_MAX} bytes, no control characters"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn delivered_events_are_the_supported_ones_requested() {
        let requested = vec![
            CAEP_SESSION_REVOKED.to_owned(),
            "https://example.com/unknown".to_owned(),
            RISC_ACCOUNT_DISABLED.to_owned(),
        ];
        assert_eq!(
            events_delivered(&requested),
            vec![RISC_ACCOUNT_DISABLED, CAEP_SESSION_REVOKED]
        );
    }

    #[test]
    fn configs_are_checked_and_normalized() {
        let checked = check_config(SsfStreamConfig {
            delivery: SsfDelivery::Push {
                endpoint_url: " https://rp.example.com/events ".into(),
                authorization_sealed: Vec::new(),
            },
            events_requested: vec![
                CAEP_SESSION_REVOKED.into(),
                CAEP_SESSION_REVOKED.into(),
                " ".into(),
            ],
            description: " rp ".into(),
        })
        .unwrap();
        assert_eq!(checked.events_requested, vec![CAEP_SESSION_REVOKED]);
        assert_eq!(checked.description, "rp");
        assert!(
            matches!(checked.delivery, SsfDelivery::Push { ref endpoint_url, .. } if endpoint_url == "https://rp.example.com/events")
        );
        for bad in ["ftp://x", "https://u:p@x.example.com/"] {
            let config = SsfStreamConfig {
                delivery: SsfDelivery::Push {
                    endpoint_url: bad.into(),
                    authorization_sealed: Vec::new(),
                },
                events_requested: Vec::new(),
                description: String::new(),
            };
            assert!(check_config(config).is_err(), "{bad}");
        }
        let too_many = SsfStreamConfig {
            delivery: SsfDelivery::Poll,
            events_requested: (0..65).map(|n| format!("urn:x:{n}")).collect(),
            description: String::new(),
        };
        assert!(check_config(too_many).is_err());
    }

    #[test]
    fn subjects_are_canonical_and_match_as_ssf_says() {
        let email = json!({"format": "email", "email": "ada@example.com"});
        let canonical =
            check_subject(&json!({"email": "ada@example.com", "format": "email"})).unwrap();
        assert_eq!(canonical, r#"{"email":"ada@example.com","format":"email"}"#);
        assert!(check_subject(&json!({"email": "x"})).is_err());
        assert!(check_subject(&json!("ada")).is_err());
        assert!(check_subject(&json!({"format": "complex", "user": 3})).is_err());
        assert!(subject_matches(&email, &email));
        assert!(!subject_matches(
            &email,
            &json!({"format": "email", "email": "bob@example.com"})
        ));
        let complex = json!({"format": "complex", "user": email});
        assert!(subject_matches(&complex, &email));
        assert!(subject_matches(
            &complex,
            &json!({"format": "complex", "user": email, "tenant": {"format": "opaque", "id": "t"}})
        ));
    }
}
