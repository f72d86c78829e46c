//! An offboarding job: follows `user.deactivated` events of every tenant on NATS, the way a
//! platform team revokes sessions and keys when an IdP suspends someone.
//!
//! ```sh
//! cargo run -p roster-gateway --example offboarding -- nats://127.0.0.1:4222
//! ```
//!
//! A durable consumer remembers what was acknowledged: stop the job, start it again, and it goes
//! on from there, without missing or repeating an event.

use async_nats::jetstream::{self, consumer};
use futures::StreamExt;
use prost::Message;
use roster_proto::v1 as pb;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "nats://127.0.0.1:4222".to_owned());
    let jetstream = jetstream::new(async_nats::connect(url).await?);
    let stream = jetstream.get_stream("ROSTER_EVENTS").await?;
    let offboarding = stream
        .get_or_create_consumer(
            "offboarding",
            consumer::pull::Config {
                durable_name: Some("offboarding".to_owned()),
                filter_subject: "roster.evt.*.user.deactivated".to_owned(),
                ack_policy: consumer::AckPolicy::Explicit,
                ..Default::default()
            },
        )
        .await?;
    let mut messages = offboarding.messages().await?;
    while let Some(message) = messages.next().await {
        let message = message?;
        let event = pb::Event::decode(message.payload.clone())?;
        // The stream assigns the sequence and the time: read them from the message.
        let sequence = message.info()?.stream_sequence;
        if let Some(pb::event::Payload::UserDeactivated(user)) = &event.payload {
            println!(
                "{tenant} #{sequence}: revoke the sessions of {name} (id {id}, externalId {external})",
                tenant = event.tenant,
                name = user.user_name,
                id = user.user_id,
                external = user.external_id,
            );
        }
        message.ack().await?;
    }
    Ok(())
}
