//! Folds Shared Signals stream events into the tenant record.

use super::*;
use crate::domain::ssf::{SsfStreamRecord, SsfStreamStatus};

pub(super) fn apply(state: &mut State, event: &Event) {
    let Some(tenant) = state.tenant.as_mut() else {
        return;
    };
    let find = |streams: &mut Vec<SsfStreamRecord>, id| {
        streams.iter_mut().position(|stream| stream.id == id)
    };
    match &event.payload {
        EventPayload::SsfStreamCreated {
            stream_id,
            receiver,
            config,
        } => {
            tenant.ssf_streams.retain(|stream| stream.id != *stream_id);
            tenant.ssf_streams.push(SsfStreamRecord {
                id: *stream_id,
                receiver: receiver.clone(),
                config: config.clone(),
                status: SsfStreamStatus::Enabled,
                status_reason: String::new(),
                removed_subjects: Vec::new(),
                last_verification_at: None,
                created_at: event.occurred_at,
            });
        }
        EventPayload::SsfStreamUpdated {
            stream_id,
            config,
            receiver,
        } => {
            let Some(at) = find(&mut tenant.ssf_streams, *stream_id) else {
                return;
            };
            let stream = &mut tenant.ssf_streams[at];
            stream.config = config.clone();
            if let Some(receiver) = receiver {
                stream.receiver = receiver.clone();
            }
        }
        EventPayload::SsfStreamStatusChanged {
            stream_id,
            status,
            reason,
            ..
        } => {
            let Some(at) = find(&mut tenant.ssf_streams, *stream_id) else {
                return;
            };
            let stream = &mut tenant.ssf_streams[at];
            stream.status = *status;
            stream.status_reason.clone_from(reason);
        }
        EventPayload::SsfSubjectChanged {
            stream_id,
            subject,
            removed,
        } => {
            let Some(at) = find(&mut tenant.ssf_streams, *stream_id) else {
                return;
            };
            let subjects = &mut tenant.ssf_streams[at].removed_subjects;
            subjects.retain(|listed| listed != subject);
            if *removed {
                subjects.push(subject.clone());
            }
        }
        EventPayload::SsfVerificationRequested { stream_id, .. } => {
            let Some(at) = find(&mut tenant.ssf_streams, *stream_id) else {
                return;
            };
            tenant.ssf_streams[at].last_verification_at = Some(event.occurred_at);
        }
        EventPayload::SsfStreamDeleted { stream_id, .. } => {
            tenant.ssf_streams.retain(|stream| stream.id != *stream_id);
        }
        _ => return,
    }
    state.journal.touch(Touched::Tenant);
}
