//! The one way the admin commands reach a running roster: a gRPC channel to `--grpc` that
//! carries the admin token (from `ROSTER_ADMIN_TOKEN` or the data directory) on every call.

use std::path::Path;

use anyhow::{Context, Result};
use roster_gateway::app::ADMIN_TOKEN_FILE;
use roster_proto::v1::admin_client::AdminClient;
use roster_proto::v1::audit_client::AuditClient;
#[cfg(feature = "tools")]
use roster_proto::v1::directory_client::DirectoryClient;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use super::Common;

/// Attaches the admin token to every call.
#[derive(Clone)]
pub struct AdminToken(MetadataValue<Ascii>);

impl Interceptor for AdminToken {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

/// A channel to roster whose calls carry the admin token.
pub type AdminChannel = InterceptedService<Channel, AdminToken>;

/// The Admin service (tenants, tokens, roles, resource groups, staging).
pub type Admin = AdminClient<AdminChannel>;

/// The Audit service (replay and verify of the audit trail).
pub type Audit = AuditClient<AdminChannel>;

/// The Directory service (users, groups and members, a page at a time).
#[cfg(feature = "tools")]
pub type Directory = DirectoryClient<AdminChannel>;

/// The admin token: `ROSTER_ADMIN_TOKEN` when set, else the token file in the data directory.
pub fn admin_token(data_dir: &Path) -> Result<String> {
    if let Ok(token) = std::env::var("ROSTER_ADMIN_TOKEN")
        && !token.trim().is_empty()
    {
        return Ok(token.trim().to_owned());
    }
    let path = data_dir.join(ADMIN_TOKEN_FILE);
    let token = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "reading the admin token from {} (set ROSTER_ADMIN_TOKEN or --data-dir)",
            path.display()
        )
    })?;
    Ok(token.trim().to_owned())
}

/// Connects to the roster at `--grpc` (`host:port`, or a URL) with the admin token.
pub async fn connect(common: &Common) -> Result<AdminChannel> {
    let token = admin_token(&common.data_dir)?;
    let header: MetadataValue<Ascii> = format!("Bearer {token}")
        .parse()
        .context("the admin token contains characters not allowed in a header")?;
    let endpoint = if common.grpc.contains("://") {
        common.grpc.clone()
    } else {
        format!("http://{}", common.grpc)
    };
    let channel = Channel::from_shared(endpoint.clone())
        .with_context(|| format!("invalid gRPC address {endpoint:?}"))?
        .connect()
        .await
        .with_context(|| {
            format!("connecting to roster at {endpoint} (is `roster serve` running?)")
        })?;
    Ok(InterceptedService::new(channel, AdminToken(header)))
}

/// The Admin service of the roster at `--grpc`.
pub async fn admin(common: &Common) -> Result<Admin> {
    Ok(AdminClient::new(connect(common).await?))
}

/// The Audit service of the roster at `--grpc`.
pub async fn audit(common: &Common) -> Result<Audit> {
    Ok(AuditClient::new(connect(common).await?))
}

/// The Directory service of the roster at `--grpc`, taking replies of up to 64 MiB (a page
/// holds up to 1000 users, groups or members).
#[cfg(feature = "tools")]
pub async fn directory(common: &Common) -> Result<Directory> {
    Ok(DirectoryClient::new(connect(common).await?).max_decoding_message_size(64 << 20))
}
