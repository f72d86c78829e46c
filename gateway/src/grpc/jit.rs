//! `Directory.JitProvision`: the gRPC edge of just-in-time provisioning. It authorizes the caller
//! (the admin token or the tenant's own token, like every Directory call), reads the claims JSON,
//! finds the users holding the login's email (a read index the engine does not keep), and runs
//! `Command::JitProvision` through the engine with the actor kind `jit`; the rules live in
//! `engine::domain`. The answer is the user and their access, read after the write.

use roster_engine::domain::{
    ActorKind, Command, EventPayload, JIT_EMAIL_MATCHES_MAX, JitLogin, Source, UserId,
};
use roster_engine::engine::CommandContext;
use roster_proto::v1 as pb;
use tonic::{Request, Status};
use uuid::Uuid;

use super::admin::{status, tenant_name};
use super::directory::{DirectoryService, unavailable};

/// Largest claims document accepted.
const MAX_CLAIMS_BYTES: usize = 64 * 1024;

fn claims(json: &str) -> Result<serde_json::Value, Status> {
    if json.trim().is_empty() {
        return Ok(serde_json::Value::Object(serde_json::Map::new()));
    }
    if json.len() > MAX_CLAIMS_BYTES {
        return Err(Status::invalid_argument(format!(
            "claims_json is limited to {MAX_CLAIMS_BYTES} bytes"
        )));
    }
    match serde_json::from_str(json) {
        Ok(value @ serde_json::Value::Object(_)) => Ok(value),
        Ok(_) => Err(Status::invalid_argument(
            "claims_json must be a JSON object",
        )),
        Err(error) => Err(Status::invalid_argument(format!(
            "claims_json is not valid JSON: {error}"
        ))),
    }
}

fn optional(text: &str) -> Option<String> {
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

pub(super) async fn provision(
    service: &DirectoryService,
    request: Request<pb::JitProvisionRequest>,
) -> Result<pb::JitProvisionResponse, Status> {
    let state = service.app();
    let tenant = tenant_name(&request.get_ref().tenant)?;
    let caller = super::authorize_tenant(state, request.metadata(), &tenant).await?;
    if !state
        .tenant_exists_fresh(&tenant)
        .await
        .map_err(unavailable)?
    {
        return Err(Status::not_found(format!("tenant {tenant} does not exist")));
    }
    let source = Source {
        ip: request
            .remote_addr()
            .map(|address| address.ip().to_string())
            .unwrap_or_default(),
        user_agent: request
            .metadata()
            .get("user-agent")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .chars()
            .take(512)
            .collect(),
        request_id: Uuid::now_v7().to_string(),
    };
    let request = request.into_inner();
    let subject = request.subject.trim().to_owned();
    if subject.is_empty() {
        return Err(Status::invalid_argument(
            "subject (the IdP's sub claim) is required",
        ));
    }
    let claims = claims(&request.claims_json)?;
    let email = optional(&request.email);
    state.read_barrier().await.map_err(unavailable)?;
    let email_matches: Vec<UserId> = match &email {
        Some(email) => state
            .directory
            .users_by_email(&tenant, email)
            .map_err(unavailable)?
            .into_iter()
            .map(|(id, _)| id)
            .take(JIT_EMAIL_MATCHES_MAX + 1)
            .collect(),
        None => Vec::new(),
    };
    let context = CommandContext {
        now: state.clock.now(),
        actor: roster_engine::domain::Actor {
            kind: ActorKind::Jit,
            id: caller.id,
            display: caller.display,
        },
        causation_id: source.request_id.clone(),
        source,
    };
    let command = Command::JitProvision(JitLogin {
        new_user_id: UserId(Uuid::now_v7()),
        subject: subject.clone(),
        email,
        given_name: optional(&request.given_name),
        family_name: optional(&request.family_name),
        claims,
        email_matches,
    });
    let executed = state
        .engine
        .execute(&tenant, command, context)
        .await
        .map_err(status)?;
    let created = executed
        .events
        .iter()
        .any(|event| matches!(event.payload, EventPayload::UserProvisioned { .. }));
    state.read_barrier().await.map_err(unavailable)?;
    // The command's slice names the linked user; the view, read after the write, as well.
    let user_id = match executed.state.user_id_by_subject(&subject) {
        Some(id) => id,
        None => service
            .store()
            .user_id_by_subject(&tenant, &subject)
            .map_err(unavailable)?
            .ok_or_else(|| Status::unavailable("the directory is catching up; retry later"))?,
    };
    if !executed.events.is_empty() {
        tracing::info!(%tenant, user = %user_id, created, events = executed.events.len(), "just-in-time provisioning");
    }
    let record = service
        .store()
        .user(&tenant, &user_id)
        .map_err(unavailable)?
        .ok_or_else(|| Status::unavailable("the directory is catching up; retry later"))?;
    let access = service
        .access(&tenant, user_id, None)?
        .ok_or_else(|| Status::unavailable("the directory is catching up; retry later"))?;
    Ok(pb::JitProvisionResponse {
        user: Some(service.user_message(&tenant, &record, true)?),
        access: Some(service.access_message(&tenant, user_id, &access)?),
        created,
    })
}
