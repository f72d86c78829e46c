//! The gRPC server: roster's services plus tonic-health and tonic-reflection, so generic clients
//! (grpcurl, grpc_health_probe) work without the .proto files.

mod admin;
mod audit;
mod directory;
mod events;
mod jit;

use roster_proto::v1::FILE_DESCRIPTOR_SET;
use roster_proto::v1::admin_server::AdminServer;
use roster_proto::v1::audit_server::AuditServer;
use roster_proto::v1::directory_server::DirectoryServer;
use roster_proto::v1::events_server::EventsServer;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use tonic::Status;
use tonic::metadata::MetadataMap;

use roster_engine::domain::{Actor, ActorKind, TenantName, TokenScope};

use crate::auth;
use crate::connections::{Activity, Gate, GuardedStream, InFlightLayer};
use crate::scim::server::{HTTP2_KEEPALIVE_INTERVAL, HTTP2_KEEPALIVE_TIMEOUT};
use crate::state::AppState;

pub use crate::streams::{RESUME_FROM_TRAILER, StreamLimits, Streams, parse_timeout};
pub use admin::AdminService;
pub use audit::AuditService;
pub use directory::DirectoryService;
pub use events::EventsService;

/// Starts serving gRPC on `listener` until `shutdown` turns true, admitting connections through
/// `gate` under its limits and timeouts.
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    gate: Arc<Gate>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<JoinHandle<()>, String> {
    let stream_limits = state.streams.limits();
    tracing::info!(
        per_token = stream_limits.max_per_token,
        per_tenant = stream_limits.max_per_tenant,
        total = stream_limits.max_total,
        buffer_bytes = stream_limits.buffer_bytes,
        total_buffer_bytes = stream_limits.total_buffer_bytes,
        stall_timeout = ?stream_limits.stall_timeout,
        "gRPC stream limits"
    );
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<AdminServer<AdminService>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|error| error.to_string())?;
    // Older generic clients only speak the v1alpha reflection protocol.
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(|error| error.to_string())?;
    health_reporter
        .set_serving::<AuditServer<AuditService>>()
        .await;
    health_reporter
        .set_serving::<DirectoryServer<DirectoryService>>()
        .await;
    health_reporter
        .set_serving::<EventsServer<EventsService>>()
        .await;
    let limits = gate.limits().clone();
    // A peer that vanished without closing its connection stops answering keep-alive pings: its
    // connection, and the streams it holds against the stream limits, are then let go.
    let router = tonic::transport::Server::builder()
        .max_concurrent_streams(limits.max_concurrent_streams)
        .http2_keepalive_interval(Some(HTTP2_KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(HTTP2_KEEPALIVE_TIMEOUT))
        .http2_max_header_list_size(Some(MAX_HEADER_LIST_BYTES))
        .layer(InFlightLayer)
        .add_service(health_service)
        .add_service(reflection)
        .add_service(reflection_v1alpha)
        .add_service(AdminServer::new(AdminService::new(state.clone())))
        .add_service(AuditServer::new(AuditService::new(state.clone())))
        .add_service(DirectoryServer::new(DirectoryService::new(state.clone())))
        .add_service(EventsServer::new(EventsService::new(state)));
    Ok(tokio::spawn(async move {
        let incoming = admitted(listener, gate);
        let signal = async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        };
        if let Err(error) = router.serve_with_incoming_shutdown(incoming, signal).await {
            tracing::warn!(%error, "gRPC server stopped with an error");
        }
    }))
}

/// Most bytes of a gRPC request's headers (metadata).
const MAX_HEADER_LIST_BYTES: u32 = 32 * 1024;

/// The connections `listener` accepts that `gate` admits, guarded by its timeouts; the others
/// are closed at once (a gRPC client sees the connection fail and retries with backoff).
fn admitted(
    listener: TcpListener,
    gate: Arc<Gate>,
) -> impl tokio_stream::Stream<Item = Result<GuardedStream, std::io::Error>> {
    let limits = gate.limits().clone();
    futures::stream::unfold(
        (listener, gate, limits),
        |(listener, gate, limits)| async move {
            loop {
                let (stream, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::warn!(%error, "gRPC listener could not accept a connection");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        continue;
                    }
                };
                match gate.admit(peer.ip()) {
                    Ok(admission) => {
                        let _ = stream.set_nodelay(true);
                        let guarded =
                            GuardedStream::new(stream, peer, admission, Activity::new(), &limits);
                        return Some((Ok(guarded), (listener, gate, limits)));
                    }
                    Err(refusal) => {
                        tracing::debug!(%peer, %refusal, "gRPC connection refused");
                    }
                }
            }
        },
    )
}

/// The admin actor behind `authorization: Bearer <admin token>`, or why not.
pub async fn authorize_admin(state: &AppState, metadata: &MetadataMap) -> Result<Actor, Status> {
    counted(state, authorize_admin_unmetered(state, metadata).await)
}

/// Counts refused credentials in the metrics.
fn counted(state: &AppState, outcome: Result<Actor, Status>) -> Result<Actor, Status> {
    if let Err(status) = &outcome
        && matches!(
            status.code(),
            tonic::Code::Unauthenticated | tonic::Code::PermissionDenied
        )
    {
        state.metrics.auth_failure("grpc");
    }
    outcome
}

async fn authorize_admin_unmetered(
    state: &AppState,
    metadata: &MetadataMap,
) -> Result<Actor, Status> {
    let header = metadata
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .ok_or_else(|| {
            Status::unauthenticated("missing authorization metadata: send \"Bearer <admin token>\"")
        })?;
    let presented = auth::parse_authorization(header)
        .ok_or_else(|| Status::unauthenticated("authorization must be \"Bearer <admin token>\""))?;
    let now = state.clock.now();
    let record = state
        .authenticate_fresh(&TenantName::system(), &presented, now)
        .await
        .map_err(|error| Status::unavailable(error.to_string()))?
        .ok_or_else(|| Status::permission_denied("this token is not a valid admin token"))?;
    state
        .note_token_use(&TenantName::system(), &record, now)
        .await;
    Ok(Actor {
        kind: ActorKind::Admin,
        id: record.id.0,
        display: record.name,
    })
}

/// The actor behind `authorization: Bearer <token>` for a call about `tenant`: the admin token,
/// or a valid token of that tenant. A valid token of another tenant is refused as such.
pub async fn authorize_tenant(
    state: &AppState,
    metadata: &MetadataMap,
    tenant: &TenantName,
) -> Result<Actor, Status> {
    counted(
        state,
        authorize_tenant_unmetered(state, metadata, tenant).await,
    )
}

async fn authorize_tenant_unmetered(
    state: &AppState,
    metadata: &MetadataMap,
    tenant: &TenantName,
) -> Result<Actor, Status> {
    let header = metadata
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .ok_or_else(|| {
            Status::unauthenticated("missing authorization metadata: send \"Bearer <token>\"")
        })?;
    let presented = auth::parse_authorization(header)
        .ok_or_else(|| Status::unauthenticated("authorization must be \"Bearer <token>\""))?;
    let now = state.clock.now();
    let unavailable =
        |error: roster_engine::engine::ExecuteError| Status::unavailable(error.to_string());
    if let Some(record) = state
        .authenticate(&TenantName::system(), &presented, now)
        .map_err(unavailable)?
    {
        state
            .note_token_use(&TenantName::system(), &record, now)
            .await;
        return Ok(Actor {
            kind: ActorKind::Admin,
            id: record.id.0,
            display: record.name,
        });
    }
    if let Some(record) = state
        .authenticate_fresh(tenant, &presented, now)
        .await
        .map_err(unavailable)?
    {
        if record.scope != TokenScope::Scim {
            return Err(Status::permission_denied(format!(
                "this token has the {} scope: it reaches the Shared Signals endpoints only",
                record.scope.as_str()
            )));
        }
        state.note_token_use(tenant, &record, now).await;
        return Ok(Actor {
            kind: ActorKind::ScimToken,
            id: record.id.0,
            display: record.name,
        });
    }
    let owner = state
        .engine
        .aggregate()
        .token_owner(&presented.id)
        .map_err(|error| Status::unavailable(error.to_string()))?;
    if let Some(owner) = owner
        && owner != *tenant
        && state
            .authenticate(&owner, &presented, now)
            .map_err(unavailable)?
            .is_some()
    {
        return Err(Status::permission_denied(format!(
            "this token belongs to another tenant and cannot reach tenant {tenant}"
        )));
    }
    Err(Status::unauthenticated("the token is not valid"))
}
