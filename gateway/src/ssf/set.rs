//! Security Event Tokens (RFC 8417, SSF 1.0 profile) from roster's events: which SETs an event
//! gives a stream, with their claims. One event per SET; `txn` is roster's event id (shared by
//! the SETs about one event); `jti` is derived from the stream, the event and the SET's type, so
//! a SET sent again has the same `jti`. No `sub`, no `exp`; the subject is the top-level
//! `sub_id` (and, for CAEP and RISC, also `subject` inside the event, for receivers written
//! before SSF 1.0).
//!
//! | roster event | SETs |
//! |---|---|
//! | `user.deactivated` | RISC `account-disabled`, CAEP `session-revoked`, SCIM `prov:deactivate` |
//! | `user.deleted` | RISC `account-purged`, CAEP `session-revoked`, SCIM `prov:delete` |
//! | `user.reactivated` | RISC `account-enabled`, SCIM `prov:activate` |
//! | `user.provisioned` / `user.updated` | SCIM `prov:create:notice` / `prov:patch:notice` |
//! | a role lowered or removed | CAEP `token-claims-change` with the new claims |
//! | the stream's verification / status changed by an admin or roster | SSF `verification` / `stream-updated` |

use roster_engine::domain::ssf::{
    CAEP_SESSION_REVOKED, CAEP_TOKEN_CLAIMS_CHANGE, RISC_ACCOUNT_DISABLED, RISC_ACCOUNT_ENABLED,
    RISC_ACCOUNT_PURGED, SCIM_PROV_ACTIVATE, SCIM_PROV_CREATE_NOTICE, SCIM_PROV_DEACTIVATE,
    SCIM_PROV_DELETE, SCIM_PROV_PATCH_NOTICE, SSF_STREAM_UPDATED, SSF_VERIFICATION,
};
use roster_engine::domain::{ActorKind, Event, EventPayload, SsfStreamRecord, SsoIdentity, UserId};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// One SET to send, before signing.
#[derive(Clone, Debug, PartialEq)]
pub struct SetDraft {
    pub jti: String,
    pub event_type: &'static str,
    pub claims: Value,
    /// When the event was recorded in the log (Unix microseconds), for delivery latency.
    pub recorded_at: i64,
}

/// What the SET builder needs to know about a user beyond the event: their subject.
pub trait Subjects {
    /// The user's `sub_id`: `iss_sub` when they are linked to an SSO identity whose issuer is
    /// known, else `email` when they have one, else `opaque` (the user id). `recorded` is what
    /// the event recorded of them (lifecycle events do); otherwise the user as they are now.
    fn subject(&self, user: &UserId, user_name: &str, recorded: Option<Recorded<'_>>) -> Value;
}

/// What a lifecycle event recorded of its user.
#[derive(Clone, Copy, Debug)]
pub struct Recorded<'a> {
    pub email: Option<&'a str>,
    pub sso: Option<&'a SsoIdentity>,
}

/// The `sub_id` of a user known by these.
pub fn subject_of(user: &UserId, email: Option<&str>, sso: Option<&SsoIdentity>) -> Value {
    match (sso, email) {
        (Some(sso), _) => json!({"format": "iss_sub", "iss": sso.issuer, "sub": sso.subject}),
        (None, Some(email)) => json!({"format": "email", "email": email}),
        (None, None) => json!({"format": "opaque", "id": user.to_string()}),
    }
}

/// A user's access after an event lowered or removed a role: the CAEP `claims`.
#[derive(Clone, Debug, PartialEq)]
pub struct ClaimsChange {
    pub user: UserId,
    pub user_name: String,
    pub claims: Value,
}

/// The deterministic `jti` of the SET of `event_type` about `event` on `stream`.
pub fn jti(
    stream: &SsfStreamRecord,
    event: &Event,
    event_type: &str,
    user: Option<&UserId>,
) -> String {
    let mut digest = Sha256::new();
    digest.update(stream.id.as_bytes());
    digest.update(event.id.as_bytes());
    digest.update(event_type.as_bytes());
    if let Some(user) = user {
        digest.update(user.as_bytes());
    }
    hex::encode(&digest.finalize()[..16])
}

/// Who did it, as CAEP's `initiating_entity` and `reason_admin` say.
fn initiation(event: &Event) -> (&'static str, Value) {
    let (entity, who) = match event.actor.kind {
        ActorKind::ScimToken => (
            "admin",
            format!("the identity provider (token {})", event.actor.display),
        ),
        ActorKind::Admin => ("admin", "a roster administrator".to_owned()),
        ActorKind::Jit => ("user", "the user's SSO login".to_owned()),
        ActorKind::SsfReceiver => ("admin", "a Shared Signals receiver".to_owned()),
        ActorKind::System => ("system", "roster".to_owned()),
    };
    let what = match &event.payload {
        EventPayload::UserDeactivated { .. } => "deactivated the account",
        EventPayload::UserDeleted { .. } => "deleted the account",
        EventPayload::UserReactivated { .. } => "reactivated the account",
        _ => "changed the account's access",
    };
    let request = if event.source.request_id.is_empty() {
        String::new()
    } else {
        format!(" (request {})", event.source.request_id)
    };
    (entity, json!({"en": format!("{who} {what}{request}")}))
}

/// The SETs `event` gives `stream`, in order, before subject filtering and signing. `claims`
/// are the users whose role the event lowered or removed, with their new access.
pub fn drafts(
    stream: &SsfStreamRecord,
    issuer: &str,
    event: &Event,
    subjects: &dyn Subjects,
    claims: &[ClaimsChange],
) -> Vec<SetDraft> {
    let mut drafts = Vec::new();
    let toe = event.occurred_at.as_micros() / 1_000_000;
    let mut push =
        |event_type: &'static str, sub_id: Value, payload: Value, user: Option<&UserId>| {
            if !stream.delivers(event_type) {
                return;
            }
            let jti = jti(stream, event, event_type, user);
            drafts.push(SetDraft {
                claims: json!({
                    "iss": issuer,
                    "aud": stream.receiver.0,
                    "jti": jti,
                    "txn": event.id.to_string(),
                    "toe": toe,
                    "sub_id": sub_id,
                    "events": {event_type: payload},
                }),
                jti,
                event_type,
                recorded_at: event.recorded_at.as_micros(),
            });
        };
    let scim_subject = |user: &UserId, external_id: Option<&str>| {
        let mut subject =
            json!({"format": "scim", "uri": format!("/Users/{user}"), "id": user.to_string()});
        if let Some(external_id) = external_id {
            subject["externalId"] = json!(external_id);
        }
        subject
    };
    let caep = |subject: &Value, event: &Event| {
        let (entity, reason) = initiation(event);
        json!({
            "subject": subject,
            "event_timestamp": toe,
            "initiating_entity": entity,
            "reason_admin": reason,
        })
    };
    match &event.payload {
        EventPayload::UserDeactivated {
            user_id,
            user_name,
            external_id,
            email,
            sso,
        } => {
            let recorded = (email.is_some() || sso.is_some()).then_some(Recorded {
                email: email.as_deref(),
                sso: sso.as_ref(),
            });
            let subject = subjects.subject(user_id, user_name, recorded);
            push(
                RISC_ACCOUNT_DISABLED,
                subject.clone(),
                json!({"subject": subject}),
                Some(user_id),
            );
            push(
                CAEP_SESSION_REVOKED,
                subject.clone(),
                caep(&subject, event),
                Some(user_id),
            );
            push(
                SCIM_PROV_DEACTIVATE,
                scim_subject(user_id, external_id.as_deref()),
                json!({}),
                Some(user_id),
            );
        }
        EventPayload::UserDeleted {
            user_id,
            user_name,
            external_id,
            email,
            sso,
        } => {
            let recorded = (email.is_some() || sso.is_some()).then_some(Recorded {
                email: email.as_deref(),
                sso: sso.as_ref(),
            });
            let subject = subjects.subject(user_id, user_name, recorded);
            push(
                RISC_ACCOUNT_PURGED,
                subject.clone(),
                json!({"subject": subject}),
                Some(user_id),
            );
            push(
                CAEP_SESSION_REVOKED,
                subject.clone(),
                caep(&subject, event),
                Some(user_id),
            );
            push(
                SCIM_PROV_DELETE,
                scim_subject(user_id, external_id.as_deref()),
                json!({}),
                Some(user_id),
            );
        }
        EventPayload::UserReactivated {
            user_id,
            user_name,
            external_id,
            email,
            sso,
        } => {
            let recorded = (email.is_some() || sso.is_some()).then_some(Recorded {
                email: email.as_deref(),
                sso: sso.as_ref(),
            });
            let subject = subjects.subject(user_id, user_name, recorded);
            push(
                RISC_ACCOUNT_ENABLED,
                subject.clone(),
                json!({"subject": subject}),
                Some(user_id),
            );
            push(
                SCIM_PROV_ACTIVATE,
                scim_subject(user_id, external_id.as_deref()),
                json!({}),
                Some(user_id),
            );
        }
        EventPayload::UserProvisioned {
            user_id, profile, ..
        } => {
            let mut attributes = vec!["userName".to_owned(), "active".to_owned()];
            if profile.external_id.is_some() {
                attributes.push("externalId".to_owned());
            }
            attributes.extend(profile.attributes.keys().cloned());
            push(
                SCIM_PROV_CREATE_NOTICE,
                scim_subject(user_id, profile.external_id.as_deref()),
                json!({"attributes": attributes}),
                Some(user_id),
            );
        }
        EventPayload::UserUpdated {
            user_id,
            user_name,
            external_id,
            changed_attributes,
            ..
        } => {
            let mut attributes: Vec<String> = Vec::new();
            if user_name.is_some() {
                attributes.push("userName".to_owned());
            }
            if external_id.is_some() {
                attributes.push("externalId".to_owned());
            }
            attributes.extend(changed_attributes.keys().cloned());
            push(
                SCIM_PROV_PATCH_NOTICE,
                scim_subject(user_id, external_id.clone().flatten().as_deref()),
                json!({"attributes": attributes}),
                Some(user_id),
            );
        }
        EventPayload::SsfVerificationRequested { stream_id, state } if *stream_id == stream.id => {
            let mut payload = json!({});
            if !state.is_empty() {
                payload["state"] = json!(state);
            }
            push(
                SSF_VERIFICATION,
                json!({"format": "opaque", "id": stream.id.to_string()}),
                payload,
                None,
            );
        }
        EventPayload::SsfStreamStatusChanged {
            stream_id,
            status,
            reason,
            by_receiver: false,
        } if *stream_id == stream.id => {
            let mut payload = json!({"status": status.as_str()});
            if !reason.is_empty() {
                payload["reason"] = json!(reason);
            }
            push(
                SSF_STREAM_UPDATED,
                json!({"format": "opaque", "id": stream.id.to_string()}),
                payload,
                None,
            );
        }
        _ => {}
    }
    for change in claims {
        let subject = subjects.subject(&change.user, &change.user_name, None);
        let mut payload = caep(&subject, event);
        payload["claims"] = change.claims.clone();
        push(
            CAEP_TOKEN_CLAIMS_CHANGE,
            subject,
            payload,
            Some(&change.user),
        );
    }
    drafts
}

/// Whether `event` may lower someone's role: the events [`ClaimsChange`]s are looked for in.
pub fn may_lower_roles(payload: &EventPayload) -> bool {
    matches!(
        payload,
        EventPayload::GroupMembersRemoved { .. }
            | EventPayload::GroupDeleted { .. }
            | EventPayload::RoleMappingSet { .. }
            | EventPayload::RoleMappingRemoved { .. }
            | EventPayload::ResourceGroupMemberSet { .. }
            | EventPayload::ResourceGroupMemberRemoved { .. }
            | EventPayload::ResourceGroupLinkRoleChanged { .. }
            | EventPayload::ResourceGroupUnlinked { .. }
            | EventPayload::UserClaimRoleChanged { .. }
    )
}
