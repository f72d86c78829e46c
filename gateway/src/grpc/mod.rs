//! The gRPC server: roster's services plus tonic-health and tonic-reflection, so generic clients
//! (grpcurl, grpc_health_probe) work without the .proto files.

mod admin;
mod audit;
mod directory;
mod events;
mod jit;
mod streams;

use roster_proto::v1::FILE_DESCRIPTOR_SET;
use roster_proto::v1::admin_server::AdminServer;
use roster_proto::v1::audit_server::AuditServer;
use roster_proto::v1::directory_server::DirectoryServer;
use roster_proto::v1::events_server::EventsServer;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::Status;
use tonic::metadata::MetadataMap;

use roster_engine::domain::{Actor, ActorKind, TenantName};

use crate::app::AppState;
use crate::auth;
use crate::clock;

pub use admin::AdminService;
pub use audit::AuditService;
pub use directory::DirectoryService;
pub use events::EventsService;
pub use streams::{RESUME_FROM_TRAILER, StreamLimits, Streams};

/// How often an idle connection is pinged, and how long its answer may take.
const KEEPALIVE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);
const KEEPALIVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// Starts serving gRPC on `listener` until `shutdown` turns true.
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
) -> Result<JoinHandle<()>, String> {
    let limits = state.streams.limits();
    tracing::info!(
        per_token = limits.max_per_token,
        per_tenant = limits.max_per_tenant,
        total = limits.max_total,
        buffer_bytes = limits.buffer_bytes,
        total_buffer_bytes = limits.total_buffer_bytes,
        stall_timeout = ?limits.stall_timeout,
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
    let router = tonic::transport::Server::builder()
        // A peer that vanished without closing its connection stops answering pings: its
        // connection, and the streams it holds against the stream limits, are then let go.
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
        .add_service(health_service)
        .add_service(reflection)
        .add_service(reflection_v1alpha)
        .add_service(AdminServer::new(AdminService::new(state.clone())))
        .add_service(AuditServer::new(AuditService::new(state.clone())))
        .add_service(DirectoryServer::new(DirectoryService::new(state.clone())))
        .add_service(EventsServer::new(EventsService::new(state)));
    Ok(tokio::spawn(async move {
        let incoming = TcpListenerStream::new(listener);
        let signal = async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        };
        if let Err(error) = router.serve_with_incoming_shutdown(incoming, signal).await {
            tracing::warn!(%error, "gRPC server stopped with an error");
        }
    }))
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
    let now = clock::now();
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
    let now = clock::now();
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
