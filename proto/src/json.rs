//! The JSON form of a `roster.v1.Event`: the proto3 JSON mapping (timestamps in RFC 3339, enums
//! by name, bytes in base64, fields at their default value left out) with the proto's own field
//! names (`user_id`, not `userId`) and integers as JSON numbers. Webhooks carry it; it changes
//! only as the proto does (fields are only ever added).

use std::sync::OnceLock;

use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, SerializeOptions};

/// Why an event could not be turned into JSON (a descriptor set not matching the generated code:
/// a build defect, never the event's fault).
#[derive(Debug, thiserror::Error)]
#[error("cannot render an event as JSON: {0}")]
pub struct JsonError(String);

fn event_descriptor() -> Result<&'static MessageDescriptor, JsonError> {
    static EVENT: OnceLock<Result<MessageDescriptor, String>> = OnceLock::new();
    EVENT
        .get_or_init(|| {
            let pool = DescriptorPool::decode(crate::v1::FILE_DESCRIPTOR_SET)
                .map_err(|error| error.to_string())?;
            pool.get_message_by_name("roster.v1.Event")
                .ok_or_else(|| "roster.v1.Event is not in the descriptor set".to_owned())
        })
        .as_ref()
        .map_err(|error| JsonError(error.clone()))
}

/// Appends `event`'s JSON form to `out`, without an intermediate value.
pub fn write_event_json(event: &crate::v1::Event, out: &mut Vec<u8>) -> Result<(), JsonError> {
    let descriptor = event_descriptor()?.clone();
    let dynamic = DynamicMessage::decode(descriptor, event.encode_to_vec().as_slice())
        .map_err(|error| JsonError(error.to_string()))?;
    let mut serializer = serde_json::Serializer::new(out);
    dynamic
        .serialize_with_options(&mut serializer, &options())
        .map_err(|error| JsonError(error.to_string()))
}

/// The proto3 JSON mapping with the proto's field names and numbers as numbers.
fn options() -> SerializeOptions {
    SerializeOptions::new()
        .use_proto_field_name(true)
        .stringify_64_bit_integers(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1;

    #[test]
    fn an_event_has_its_proto_field_names_and_a_numeric_sequence() {
        let event = v1::Event {
            event_id: "0190e0a0-0000-7000-8000-000000000001".into(),
            tenant: "acme".into(),
            sequence: 42,
            occurred_at: Some(prost_types::Timestamp {
                seconds: 1_700_000_000,
                nanos: 0,
            }),
            payload: Some(v1::event::Payload::UserDeactivated(v1::UserDeactivated {
                user_id: "u1".into(),
                user_name: "alice".into(),
                ..Default::default()
            })),
            ..Default::default()
        };
        let mut written = Vec::new();
        write_event_json(&event, &mut written).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&written).unwrap();
        assert_eq!(json["tenant"], "acme");
        assert_eq!(json["sequence"], 42);
        assert_eq!(json["occurred_at"], "2023-11-14T22:13:20Z");
        assert_eq!(json["user_deactivated"]["user_name"], "alice");
        let mut written = Vec::new();
        write_event_json(&event, &mut written).unwrap();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&written).unwrap(),
            json
        );
    }
}
