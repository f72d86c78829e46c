//! The `Events` gRPC service: a tenant's lifecycle events, streamed from a sequence on and then
//! as they become durable. Every message carries its sequence, so a client that reconnects with
//! `from_sequence = last + 1` misses nothing and sees nothing twice. A stream ends with
//! `UNAUTHENTICATED` once its token is revoked or expires.
//!
//! A stream reads its tenant's events only (the log's tenant index), a buffer's worth at a time:
//! it is bounded in bytes and dropped when its client stops reading ([`super::streams`]).

use std::pin::Pin;
use std::time::Duration;

use roster_engine::codec;
use roster_engine::domain::{Actor, TenantName, TokenId};
use roster_proto::v1 as pb;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::admin::tenant_name;
use crate::state::AppState;
use crate::streams::{READ_BYTES, StreamSender, token_owner};

/// Events read from the log per step, at most.
const READ_EVENTS: usize = 512;

pub struct EventsService {
    state: AppState,
}

impl EventsService {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::Event, Status>> + Send>>;

/// How often an idle stream checks that its token is still valid.
const RECHECK_EVERY: Duration = Duration::from_secs(15);

/// The token a stream was opened with. It is checked again before every batch and while idle,
/// so a revoked or expired token stops receiving events at once, as it gets 401 on SCIM.
struct Credential {
    /// The tenant holding the token: the system tenant for the admin token.
    owner: TenantName,
    id: TokenId,
}

impl Credential {
    fn of(actor: &Actor, tenant: &TenantName) -> Self {
        Self {
            owner: token_owner(actor, tenant),
            id: TokenId(actor.id.clone()),
        }
    }

    /// `Ok` while the token is valid, else the status that ends the stream.
    fn check(&self, state: &AppState) -> Result<(), Status> {
        let record = state
            .engine
            .aggregate()
            .token(&self.owner, &self.id)
            .map_err(|error| Status::unavailable(error.to_string()))?;
        if record.is_some_and(|record| record.is_valid_at(state.clock.now())) {
            Ok(())
        } else {
            Err(Status::unauthenticated(
                "the stream's token was revoked or has expired",
            ))
        }
    }
}

/// Sends `tenant`'s events from `next` on until the client goes away, the log stops, the stream's
/// token is no longer valid or the client is too slow.
async fn follow(
    state: AppState,
    tenant: TenantName,
    credential: Credential,
    mut next: u64,
    types: Vec<String>,
    sender: StreamSender<pb::Event>,
) {
    let log = state.engine.log().clone();
    let mut durable = log.subscribe();
    loop {
        match credential.check(&state) {
            Ok(()) => {}
            // The store could not say: send nothing now, and ask again at the next wake-up.
            Err(status) if status.code() == tonic::Code::Unavailable => {
                tracing::warn!(%tenant, error = %status.message(), "could not re-check a Watch stream's token");
                tokio::select! {
                    () = sender.closed() => return,
                    () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
            Err(status) => {
                // Nothing more reaches the client, not even what is queued.
                sender.abort(status);
                return;
            }
        }
        if next <= *durable.borrow_and_update() {
            let Ok(mut grant) = sender.reserve(READ_BYTES).await else {
                return;
            };
            let reader = log.clone();
            let (from, limit_bytes, of) = (next, grant.bytes(), tenant.clone());
            let read = tokio::task::spawn_blocking(move || {
                reader.read_tenant(&of, from, READ_EVENTS, limit_bytes)
            })
            .await;
            let read = match read {
                Ok(Ok(read)) => read,
                Ok(Err(error)) => {
                    sender.finish(Some(Status::unavailable(error.to_string())));
                    return;
                }
                Err(_) => return,
            };
            for event in read.events {
                let wanted = types.is_empty()
                    || types
                        .iter()
                        .any(|kind| kind.eq_ignore_ascii_case(event.payload.event_type()));
                if wanted && sender.push(&mut grant, codec::to_proto(&event)).is_err() {
                    return;
                }
            }
            sender.read_until(read.next);
            next = read.next;
            continue;
        }
        tokio::select! {
            changed = durable.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            () = sender.closed() => return,
            () = tokio::time::sleep(RECHECK_EVERY) => {}
        }
    }
}

#[tonic::async_trait]
impl pb::events_server::Events for EventsService {
    type WatchStream = EventStream;

    async fn watch(
        &self,
        request: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let tenant = tenant_name(&request.get_ref().tenant)?;
        let actor = super::authorize_tenant(&self.state, request.metadata(), &tenant).await?;
        let credential = Credential::of(&actor, &tenant);
        let request = request.into_inner();
        let from = request.from_sequence.max(1);
        let (sender, receiver) = self.state.streams.open(&actor, &tenant, from)?;
        tokio::spawn(follow(
            self.state.clone(),
            tenant,
            credential,
            from,
            request.event_types,
            sender,
        ));
        Ok(Response::new(Box::pin(receiver)))
    }
}
