//! Shared Signals streams: a receiver creating its one stream (configuration checked, at most
//! `SSF_STREAMS_PER_TENANT_MAX` per tenant), updating it, changing its status, removing subjects
//! from it and adding them back, asking for a verification event (at most one every
//! `SSF_MIN_VERIFICATION_INTERVAL_SECONDS`), and deleting it. A receiver reaches only its own
//! stream; an admin or roster itself reaches any.

use super::*;
use crate::domain::SsfStreamId;
use crate::domain::ssf::{
    NewSsfStream, SSF_MIN_VERIFICATION_INTERVAL_SECONDS, SSF_REASON_MAX, SSF_REMOVED_SUBJECTS_MAX,
    SSF_STREAMS_PER_TENANT_MAX, SsfStreamConfig, SsfStreamRecord, SsfStreamStatus, check_config,
    check_state, check_subject,
};

/// `stream_id` as `receiver` may see it: another receiver's stream is not found.
fn stream<'a>(
    state: &'a State,
    stream_id: SsfStreamId,
    receiver: Option<&TokenId>,
) -> Result<&'a SsfStreamRecord, Rejection> {
    state
        .tenant
        .as_ref()
        .and_then(|tenant| tenant.ssf_stream(&stream_id))
        .filter(|stream| receiver.is_none_or(|receiver| stream.receiver == *receiver))
        .ok_or(Rejection::SsfStreamNotFound(stream_id))
}

fn reason(text: String) -> String {
    text.chars().take(SSF_REASON_MAX).collect()
}

pub(super) fn create_stream(
    state: &State,
    stream: NewSsfStream,
) -> Result<Vec<EventPayload>, Rejection> {
    require_tenant(state)?;
    let Some(tenant) = state.tenant.as_ref() else {
        return Err(Rejection::TenantNotFound);
    };
    if let Some(existing) = tenant
        .ssf_streams
        .iter()
        .find(|existing| existing.receiver == stream.receiver || existing.id == stream.id)
    {
        return Err(Rejection::SsfStreamExists(existing.id));
    }
    if tenant.ssf_streams.len() >= SSF_STREAMS_PER_TENANT_MAX {
        return Err(Rejection::TooManySsfStreams {
            max: SSF_STREAMS_PER_TENANT_MAX,
        });
    }
    let config = check_config(stream.config).map_err(Rejection::InvalidValue)?;
    Ok(vec![EventPayload::SsfStreamCreated {
        stream_id: stream.id,
        receiver: stream.receiver,
        config,
    }])
}

pub(super) fn update_stream(
    state: &State,
    stream_id: SsfStreamId,
    receiver: Option<TokenId>,
    config: SsfStreamConfig,
) -> Result<Vec<EventPayload>, Rejection> {
    let current = stream(state, stream_id, receiver.as_ref())?;
    let config = check_config(config).map_err(Rejection::InvalidValue)?;
    if current.config == config {
        return Ok(Vec::new());
    }
    Ok(vec![EventPayload::SsfStreamUpdated {
        stream_id,
        config,
        receiver: None,
    }])
}

pub(super) fn set_status(
    state: &State,
    stream_id: SsfStreamId,
    receiver: Option<TokenId>,
    status: SsfStreamStatus,
    why: String,
) -> Result<Vec<EventPayload>, Rejection> {
    let current = stream(state, stream_id, receiver.as_ref())?;
    let why = reason(why);
    if current.status == status && current.status_reason == why {
        return Ok(Vec::new());
    }
    Ok(vec![EventPayload::SsfStreamStatusChanged {
        stream_id,
        status,
        reason: why,
        by_receiver: receiver.is_some(),
    }])
}

pub(super) fn change_subject(
    state: &State,
    stream_id: SsfStreamId,
    receiver: TokenId,
    subject: serde_json::Value,
    removed: bool,
) -> Result<Vec<EventPayload>, Rejection> {
    let current = stream(state, stream_id, Some(&receiver))?;
    let subject = check_subject(&subject).map_err(Rejection::InvalidValue)?;
    let listed = current.removed_subjects.contains(&subject);
    if listed == removed {
        return Ok(Vec::new());
    }
    if removed && current.removed_subjects.len() >= SSF_REMOVED_SUBJECTS_MAX {
        return Err(Rejection::TooManySsfSubjects {
            max: SSF_REMOVED_SUBJECTS_MAX,
        });
    }
    Ok(vec![EventPayload::SsfSubjectChanged {
        stream_id,
        subject,
        removed,
    }])
}

pub(super) fn request_verification(
    state: &State,
    stream_id: SsfStreamId,
    receiver: TokenId,
    echoed: String,
    at: Timestamp,
) -> Result<Vec<EventPayload>, Rejection> {
    let current = stream(state, stream_id, Some(&receiver))?;
    check_state(&echoed).map_err(Rejection::InvalidValue)?;
    let interval = SSF_MIN_VERIFICATION_INTERVAL_SECONDS * 1_000_000;
    if let Some(last) = current.last_verification_at {
        let since = at.as_micros() - last.as_micros();
        if (0..interval).contains(&since) {
            return Err(Rejection::SsfVerificationTooSoon {
                wait_seconds: ((interval - since + 999_999) / 1_000_000).max(1),
            });
        }
    }
    Ok(vec![EventPayload::SsfVerificationRequested {
        stream_id,
        state: echoed,
    }])
}

pub(super) fn delete_stream(
    state: &State,
    stream_id: SsfStreamId,
    receiver: Option<TokenId>,
    why: String,
) -> Result<Vec<EventPayload>, Rejection> {
    stream(state, stream_id, receiver.as_ref())?;
    Ok(vec![EventPayload::SsfStreamDeleted {
        stream_id,
        reason: reason(why),
    }])
}
