//! Conversion between domain events and their wire form, `roster.v1.Event` protobuf. This is the
//! only place in the engine that knows the generated types.

use prost::Message;
use roster_proto::v1 as pb;
use thiserror::Error;
use uuid::Uuid;

use crate::domain::{
    Actor, ActorKind, Attributes, ClaimRole, Event, EventPayload, GroupId, GroupProfile,
    ResourceGroupId, Role, Source, SsfDelivery, SsfStreamConfig, SsfStreamId, SsfStreamStatus,
    SsoIdentity, TenantName, Timestamp, TokenId, TokenScope, UserId, UserProfile, UsernamePolicy,
    WebhookId, WebhookStatus,
};

#[derive(Debug, Error)]
pub enum CodecError {
    #[error("malformed event bytes: {0}")]
    Protobuf(#[from] prost::DecodeError),
    #[error("event has no payload this version of roster understands")]
    UnknownPayload,
    #[error("event field {field} is invalid: {reason}")]
    Invalid { field: &'static str, reason: String },
}

fn invalid(field: &'static str, reason: impl ToString) -> CodecError {
    CodecError::Invalid {
        field,
        reason: reason.to_string(),
    }
}

pub fn encode(event: &Event) -> Vec<u8> {
    to_proto(event).encode_to_vec()
}

pub fn decode(bytes: &[u8]) -> Result<Event, CodecError> {
    from_proto(pb::Event::decode(bytes)?)
}

pub fn timestamp_to_proto(at: Timestamp) -> prost_types::Timestamp {
    let micros = at.as_micros();
    prost_types::Timestamp {
        seconds: micros.div_euclid(1_000_000),
        nanos: (micros.rem_euclid(1_000_000) * 1_000) as i32,
    }
}

pub fn timestamp_from_proto(at: &prost_types::Timestamp) -> Timestamp {
    Timestamp::from_micros(at.seconds.saturating_mul(1_000_000) + i64::from(at.nanos / 1_000))
}

pub fn role_to_proto(role: Role) -> pb::Role {
    match role {
        Role::Read => pb::Role::Read,
        Role::Contributor => pb::Role::Contributor,
        Role::Write => pb::Role::Write,
        Role::Admin => pb::Role::Admin,
    }
}

pub fn role_from_proto(role: i32) -> Option<Role> {
    match pb::Role::try_from(role).ok()? {
        pb::Role::Unspecified => None,
        pb::Role::Read => Some(Role::Read),
        pb::Role::Contributor => Some(Role::Contributor),
        pb::Role::Write => Some(Role::Write),
        pb::Role::Admin => Some(Role::Admin),
    }
}

fn attributes_to_json(attributes: &Attributes) -> String {
    serde_json::Value::Object(attributes.clone()).to_string()
}

fn attributes_from_json(field: &'static str, json: &str) -> Result<Attributes, CodecError> {
    if json.is_empty() {
        return Ok(Attributes::new());
    }
    match serde_json::from_str(json).map_err(|error| invalid(field, error))? {
        serde_json::Value::Object(attributes) => Ok(attributes),
        _ => Err(invalid(field, "not a JSON object")),
    }
}

fn optional(value: &str) -> Option<String> {
    (!value.is_empty()).then(|| value.to_owned())
}

fn user_id(value: &str) -> Result<UserId, CodecError> {
    value.parse().map_err(|error| invalid("user_id", error))
}

fn webhook_id(value: &str) -> Result<WebhookId, CodecError> {
    value.parse().map_err(|error| invalid("webhook_id", error))
}

fn sso_identity_to_proto(sso: &SsoIdentity) -> pb::SsoIdentity {
    pb::SsoIdentity {
        issuer: sso.issuer.clone(),
        subject: sso.subject.clone(),
    }
}

fn sso_identity_from_proto(sso: pb::SsoIdentity) -> SsoIdentity {
    SsoIdentity {
        issuer: sso.issuer,
        subject: sso.subject,
    }
}

fn ssf_stream_id(value: &str) -> Result<SsfStreamId, CodecError> {
    value.parse().map_err(|error| invalid("stream_id", error))
}

pub fn ssf_status_to_proto(status: SsfStreamStatus) -> pb::SsfStreamStatus {
    match status {
        SsfStreamStatus::Enabled => pb::SsfStreamStatus::Enabled,
        SsfStreamStatus::Paused => pb::SsfStreamStatus::Paused,
        SsfStreamStatus::Disabled => pb::SsfStreamStatus::Disabled,
    }
}

pub fn ssf_status_from_proto(status: i32) -> Option<SsfStreamStatus> {
    match pb::SsfStreamStatus::try_from(status).ok()? {
        pb::SsfStreamStatus::Enabled => Some(SsfStreamStatus::Enabled),
        pb::SsfStreamStatus::Paused => Some(SsfStreamStatus::Paused),
        pb::SsfStreamStatus::Disabled => Some(SsfStreamStatus::Disabled),
        pb::SsfStreamStatus::Unspecified => None,
    }
}

fn ssf_config_to_proto(config: &SsfStreamConfig) -> pb::SsfStreamConfig {
    let method = match &config.delivery {
        SsfDelivery::Push {
            endpoint_url,
            authorization_sealed,
        } => pb::ssf_delivery::Method::Push(pb::SsfPush {
            endpoint_url: endpoint_url.clone(),
            authorization_sealed: authorization_sealed.clone(),
        }),
        SsfDelivery::Poll => pb::ssf_delivery::Method::Poll(pb::SsfPoll {}),
    };
    pb::SsfStreamConfig {
        delivery: Some(pb::SsfDelivery {
            method: Some(method),
        }),
        events_requested: config.events_requested.clone(),
        description: config.description.clone(),
    }
}

fn ssf_config_from_proto(
    config: Option<pb::SsfStreamConfig>,
) -> Result<SsfStreamConfig, CodecError> {
    let config = config.ok_or_else(|| invalid("config", "missing"))?;
    let delivery = match config.delivery.and_then(|delivery| delivery.method) {
        Some(pb::ssf_delivery::Method::Push(push)) => SsfDelivery::Push {
            endpoint_url: push.endpoint_url,
            authorization_sealed: push.authorization_sealed,
        },
        Some(pb::ssf_delivery::Method::Poll(_)) => SsfDelivery::Poll,
        None => return Err(invalid("config.delivery", "missing")),
    };
    Ok(SsfStreamConfig {
        delivery,
        events_requested: config.events_requested,
        description: config.description,
    })
}

pub fn webhook_status_to_proto(status: WebhookStatus) -> pb::WebhookStatus {
    match status {
        WebhookStatus::Active => pb::WebhookStatus::Active,
        WebhookStatus::Paused => pb::WebhookStatus::Paused,
        WebhookStatus::Failing => pb::WebhookStatus::Failing,
    }
}

pub fn webhook_status_from_proto(status: i32) -> Option<WebhookStatus> {
    match pb::WebhookStatus::try_from(status).ok()? {
        pb::WebhookStatus::Active => Some(WebhookStatus::Active),
        pb::WebhookStatus::Paused => Some(WebhookStatus::Paused),
        pb::WebhookStatus::Failing => Some(WebhookStatus::Failing),
        pb::WebhookStatus::Unspecified => None,
    }
}

fn user_ids(values: &[String]) -> Result<Vec<UserId>, CodecError> {
    values.iter().map(|value| user_id(value)).collect()
}

fn group_id(value: &str) -> Result<GroupId, CodecError> {
    value.parse().map_err(|error| invalid("group_id", error))
}

fn resource_group_id(value: &str) -> Result<ResourceGroupId, CodecError> {
    value
        .parse()
        .map_err(|error| invalid("resource_group_id", error))
}

/// A username policy as events carry it; empty means strict.
fn username_policy(text: &str) -> Result<UsernamePolicy, CodecError> {
    UsernamePolicy::from_message(text).map_err(|reason| invalid("usernames", reason))
}

fn role(value: i32) -> Result<Role, CodecError> {
    role_from_proto(value).ok_or_else(|| invalid("role", format!("unknown role {value}")))
}

pub fn to_proto(event: &Event) -> pb::Event {
    use pb::event::Payload as P;
    let payload = match &event.payload {
        EventPayload::TenantCreated {
            default_role,
            usernames,
        } => P::TenantCreated(pb::TenantCreated {
            default_role: role_to_proto(*default_role).into(),
            usernames: match usernames {
                UsernamePolicy::Strict => String::new(),
                policy => policy.as_str().to_owned(),
            },
        }),
        EventPayload::TokenIssued {
            token_id,
            name,
            scope,
            secret_sha256,
            expires_at,
        } => P::TokenIssued(pb::TokenIssued {
            token_id: token_id.0.clone(),
            name: name.clone(),
            secret_sha256: secret_sha256.to_vec(),
            expires_at: expires_at.map(timestamp_to_proto),
            // Scim stays empty: the events written before scopes read the same.
            scope: match scope {
                TokenScope::Scim => String::new(),
                other => other.as_str().to_owned(),
            },
        }),
        EventPayload::TokenRevoked { token_id } => P::TokenRevoked(pb::TokenRevoked {
            token_id: token_id.0.clone(),
        }),
        EventPayload::TokenExpiryChanged {
            token_id,
            expires_at,
        } => P::TokenExpiryChanged(pb::TokenExpiryChanged {
            token_id: token_id.0.clone(),
            expires_at: expires_at.map(timestamp_to_proto),
        }),
        EventPayload::TokenUsed { token_id } => P::TokenUsed(pb::TokenUsed {
            token_id: token_id.0.clone(),
        }),
        EventPayload::TenantSettingsChanged {
            sso_enforced,
            usernames,
        } => P::TenantSettingsChanged(pb::TenantSettingsChanged {
            sso_enforced: *sso_enforced,
            usernames: usernames.map(|policy| policy.as_str().to_owned()),
        }),
        EventPayload::UserProvisioned {
            user_id,
            profile,
            handle,
        } => P::UserProvisioned(pb::UserProvisioned {
            user_id: user_id.to_string(),
            user_name: profile.user_name.clone(),
            external_id: profile.external_id.clone().unwrap_or_default(),
            active: profile.active,
            attributes_json: attributes_to_json(&profile.attributes),
            handle: handle.clone().unwrap_or_default(),
        }),
        EventPayload::UserUpdated {
            user_id,
            user_name,
            handle,
            external_id,
            changed_attributes,
        } => P::UserUpdated(pb::UserUpdated {
            user_id: user_id.to_string(),
            user_name: user_name.clone(),
            external_id: external_id.clone().map(Option::unwrap_or_default),
            changed_attributes_json: attributes_to_json(changed_attributes),
            handle: user_name.as_ref().and(handle.clone()),
        }),
        EventPayload::UserDeactivated {
            user_id,
            user_name,
            external_id,
            email,
            sso,
        } => P::UserDeactivated(pb::UserDeactivated {
            user_id: user_id.to_string(),
            user_name: user_name.clone(),
            external_id: external_id.clone().unwrap_or_default(),
            email: email.clone().unwrap_or_default(),
            sso: sso.as_ref().map(sso_identity_to_proto),
        }),
        EventPayload::UserReactivated {
            user_id,
            user_name,
            external_id,
            email,
            sso,
        } => P::UserReactivated(pb::UserReactivated {
            user_id: user_id.to_string(),
            user_name: user_name.clone(),
            external_id: external_id.clone().unwrap_or_default(),
            email: email.clone().unwrap_or_default(),
            sso: sso.as_ref().map(sso_identity_to_proto),
        }),
        EventPayload::UserDeleted {
            user_id,
            user_name,
            external_id,
            email,
            sso,
        } => P::UserDeleted(pb::UserDeleted {
            user_id: user_id.to_string(),
            user_name: user_name.clone(),
            external_id: external_id.clone().unwrap_or_default(),
            email: email.clone().unwrap_or_default(),
            sso: sso.as_ref().map(sso_identity_to_proto),
        }),
        EventPayload::GroupCreated { group_id, profile } => P::GroupCreated(pb::GroupCreated {
            group_id: group_id.to_string(),
            display_name: profile.display_name.clone(),
            external_id: profile.external_id.clone().unwrap_or_default(),
            attributes_json: attributes_to_json(&profile.attributes),
        }),
        EventPayload::GroupRenamed {
            group_id,
            display_name,
        } => P::GroupRenamed(pb::GroupRenamed {
            group_id: group_id.to_string(),
            display_name: display_name.clone(),
        }),
        EventPayload::GroupUpdated {
            group_id,
            external_id,
            changed_attributes,
        } => P::GroupUpdated(pb::GroupUpdated {
            group_id: group_id.to_string(),
            external_id: external_id.clone().map(Option::unwrap_or_default),
            changed_attributes_json: attributes_to_json(changed_attributes),
        }),
        EventPayload::GroupMembersAdded { group_id, user_ids } => {
            P::GroupMembersAdded(pb::GroupMembersAdded {
                group_id: group_id.to_string(),
                user_ids: user_ids.iter().map(ToString::to_string).collect(),
            })
        }
        EventPayload::GroupMembersRemoved { group_id, user_ids } => {
            P::GroupMembersRemoved(pb::GroupMembersRemoved {
                group_id: group_id.to_string(),
                user_ids: user_ids.iter().map(ToString::to_string).collect(),
            })
        }
        EventPayload::GroupDeleted {
            group_id,
            display_name,
        } => P::GroupDeleted(pb::GroupDeleted {
            group_id: group_id.to_string(),
            display_name: display_name.clone(),
        }),
        EventPayload::DefaultRoleSet { role } => P::DefaultRoleSet(pb::DefaultRoleSet {
            role: role_to_proto(*role).into(),
        }),
        EventPayload::RoleMappingSet { group_id, role } => P::RoleMappingSet(pb::RoleMappingSet {
            group_id: group_id.to_string(),
            role: role_to_proto(*role).into(),
        }),
        EventPayload::RoleMappingRemoved { group_id } => {
            P::RoleMappingRemoved(pb::RoleMappingRemoved {
                group_id: group_id.to_string(),
            })
        }
        EventPayload::ResourceGroupCreated {
            resource_group_id,
            name,
        } => P::ResourceGroupCreated(pb::ResourceGroupCreated {
            resource_group_id: resource_group_id.to_string(),
            name: name.clone(),
        }),
        EventPayload::ResourceGroupDeleted { resource_group_id } => {
            P::ResourceGroupDeleted(pb::ResourceGroupDeleted {
                resource_group_id: resource_group_id.to_string(),
            })
        }
        EventPayload::ResourceGroupLinked {
            resource_group_id,
            group_id,
            role,
        } => P::ResourceGroupLinked(pb::ResourceGroupLinked {
            resource_group_id: resource_group_id.to_string(),
            group_id: group_id.to_string(),
            role: role_to_proto(*role).into(),
        }),
        EventPayload::ResourceGroupLinkRoleChanged {
            resource_group_id,
            group_id,
            role,
        } => P::ResourceGroupLinkRoleChanged(pb::ResourceGroupLinkRoleChanged {
            resource_group_id: resource_group_id.to_string(),
            group_id: group_id.to_string(),
            role: role_to_proto(*role).into(),
        }),
        EventPayload::ResourceGroupUnlinked {
            resource_group_id,
            group_id,
        } => P::ResourceGroupUnlinked(pb::ResourceGroupUnlinked {
            resource_group_id: resource_group_id.to_string(),
            group_id: group_id.to_string(),
        }),
        EventPayload::ResourceGroupMemberSet {
            resource_group_id,
            user_id,
            role,
        } => P::ResourceGroupMemberSet(pb::ResourceGroupMemberSet {
            resource_group_id: resource_group_id.to_string(),
            user_id: user_id.to_string(),
            role: role_to_proto(*role).into(),
        }),
        EventPayload::ResourceGroupMemberRemoved {
            resource_group_id,
            user_id,
        } => P::ResourceGroupMemberRemoved(pb::ResourceGroupMemberRemoved {
            resource_group_id: resource_group_id.to_string(),
            user_id: user_id.to_string(),
        }),
        EventPayload::TenantStaged { generation } => P::TenantStaged(pb::TenantStaged {
            generation: *generation,
        }),
        EventPayload::BranchOpened => P::BranchOpened(pb::BranchOpened {}),
        EventPayload::BranchReady => P::BranchReady(pb::BranchReady {}),
        EventPayload::BranchFrozen => P::BranchFrozen(pb::BranchFrozen {}),
        EventPayload::BranchDropped => P::BranchDropped(pb::BranchDropped {}),
        EventPayload::StagingPromoted { generation } => P::StagingPromoted(pb::StagingPromoted {
            generation: *generation,
        }),
        EventPayload::StagingDiscarded { generation } => {
            P::StagingDiscarded(pb::StagingDiscarded {
                generation: *generation,
            })
        }
        EventPayload::ClaimRoleMappingSet { claim, value, role } => {
            P::ClaimRoleMappingSet(pb::ClaimRoleMappingSet {
                claim: claim.clone(),
                value: value.clone(),
                role: role_to_proto(*role).into(),
            })
        }
        EventPayload::ClaimRoleMappingRemoved { claim, value } => {
            P::ClaimRoleMappingRemoved(pb::ClaimRoleMappingRemoved {
                claim: claim.clone(),
                value: value.clone(),
            })
        }
        EventPayload::UserSsoLinked {
            user_id,
            subject,
            issuer,
        } => P::UserSsoLinked(pb::UserSsoLinked {
            user_id: user_id.to_string(),
            subject: subject.clone(),
            issuer: issuer.clone().unwrap_or_default(),
        }),
        EventPayload::WebhookAdded {
            webhook_id,
            url,
            event_types,
            description,
        } => P::WebhookAdded(pb::WebhookAdded {
            webhook_id: webhook_id.to_string(),
            url: url.clone(),
            event_types: event_types.clone(),
            description: description.clone(),
        }),
        EventPayload::WebhookStatusChanged {
            webhook_id,
            status,
            reason,
        } => P::WebhookStatusChanged(pb::WebhookStatusChanged {
            webhook_id: webhook_id.to_string(),
            status: webhook_status_to_proto(*status).into(),
            reason: reason.clone(),
        }),
        EventPayload::WebhookSecretRotated {
            webhook_id,
            generation,
            previous_expires_at,
        } => P::WebhookSecretRotated(pb::WebhookSecretRotated {
            webhook_id: webhook_id.to_string(),
            generation: *generation,
            previous_expires_at: Some(timestamp_to_proto(*previous_expires_at)),
        }),
        EventPayload::WebhookRemoved { webhook_id, reason } => {
            P::WebhookRemoved(pb::WebhookRemoved {
                webhook_id: webhook_id.to_string(),
                reason: reason.clone(),
            })
        }
        EventPayload::SsfStreamCreated {
            stream_id,
            receiver,
            config,
        } => P::SsfStreamCreated(pb::SsfStreamCreated {
            stream_id: stream_id.to_string(),
            receiver: receiver.0.clone(),
            config: Some(ssf_config_to_proto(config)),
        }),
        EventPayload::SsfStreamUpdated {
            stream_id,
            config,
            receiver,
        } => P::SsfStreamUpdated(pb::SsfStreamUpdated {
            stream_id: stream_id.to_string(),
            config: Some(ssf_config_to_proto(config)),
            receiver: receiver
                .as_ref()
                .map(|receiver| receiver.0.clone())
                .unwrap_or_default(),
        }),
        EventPayload::SsfStreamStatusChanged {
            stream_id,
            status,
            reason,
            by_receiver,
        } => P::SsfStreamStatusChanged(pb::SsfStreamStatusChanged {
            stream_id: stream_id.to_string(),
            status: ssf_status_to_proto(*status).into(),
            reason: reason.clone(),
            by_receiver: *by_receiver,
        }),
        EventPayload::SsfSubjectChanged {
            stream_id,
            subject,
            removed,
        } => P::SsfSubjectChanged(pb::SsfSubjectChanged {
            stream_id: stream_id.to_string(),
            subject: subject.clone(),
            removed: *removed,
        }),
        EventPayload::SsfVerificationRequested { stream_id, state } => {
            P::SsfVerificationRequested(pb::SsfVerificationRequested {
                stream_id: stream_id.to_string(),
                state: state.clone(),
            })
        }
        EventPayload::SsfStreamDeleted { stream_id, reason } => {
            P::SsfStreamDeleted(pb::SsfStreamDeleted {
                stream_id: stream_id.to_string(),
                reason: reason.clone(),
            })
        }
        EventPayload::UserClaimRoleChanged {
            user_id,
            claim_role,
        } => P::UserClaimRoleChanged(match claim_role {
            Some(granted) => pb::UserClaimRoleChanged {
                user_id: user_id.to_string(),
                role: role_to_proto(granted.role).into(),
                claim: granted.claim.clone(),
                value: granted.value.clone(),
            },
            None => pb::UserClaimRoleChanged {
                user_id: user_id.to_string(),
                ..Default::default()
            },
        }),
    };
    pb::Event {
        event_id: event.id.to_string(),
        tenant: event.tenant.to_string(),
        sequence: event.sequence,
        occurred_at: Some(timestamp_to_proto(event.occurred_at)),
        recorded_at: Some(timestamp_to_proto(event.recorded_at)),
        actor: Some(pb::Actor {
            kind: actor_kind_to_proto(event.actor.kind).into(),
            id: event.actor.id.clone(),
            display: event.actor.display.clone(),
        }),
        source: Some(pb::Source {
            ip: event.source.ip.clone(),
            user_agent: event.source.user_agent.clone(),
            request_id: event.source.request_id.clone(),
        }),
        causation_id: event.causation_id.clone(),
        payload: Some(payload),
    }
}

pub fn actor_kind_to_proto(kind: ActorKind) -> pb::ActorKind {
    match kind {
        ActorKind::ScimToken => pb::ActorKind::ScimToken,
        ActorKind::Admin => pb::ActorKind::Admin,
        ActorKind::Jit => pb::ActorKind::Jit,
        ActorKind::System => pb::ActorKind::System,
        ActorKind::SsfReceiver => pb::ActorKind::SsfReceiver,
    }
}

fn actor_kind_from_proto(kind: i32) -> ActorKind {
    match pb::ActorKind::try_from(kind) {
        Ok(pb::ActorKind::ScimToken) => ActorKind::ScimToken,
        Ok(pb::ActorKind::Admin) => ActorKind::Admin,
        Ok(pb::ActorKind::Jit) => ActorKind::Jit,
        Ok(pb::ActorKind::SsfReceiver) => ActorKind::SsfReceiver,
        Ok(pb::ActorKind::System | pb::ActorKind::Unspecified) | Err(_) => ActorKind::System,
    }
}

pub fn from_proto(event: pb::Event) -> Result<Event, CodecError> {
    use pb::event::Payload as P;
    let payload = match event.payload.ok_or(CodecError::UnknownPayload)? {
        P::TenantCreated(p) => EventPayload::TenantCreated {
            default_role: role_from_proto(p.default_role).unwrap_or(Role::Read),
            usernames: username_policy(&p.usernames)?,
        },
        P::TokenIssued(p) => EventPayload::TokenIssued {
            token_id: TokenId(p.token_id),
            name: p.name,
            scope: TokenScope::parse(&p.scope)
                .ok_or_else(|| invalid("scope", format!("unknown token scope {:?}", p.scope)))?,
            secret_sha256: p
                .secret_sha256
                .as_slice()
                .try_into()
                .map_err(|_| invalid("secret_sha256", "not 32 bytes"))?,
            expires_at: p.expires_at.as_ref().map(timestamp_from_proto),
        },
        P::TokenRevoked(p) => EventPayload::TokenRevoked {
            token_id: TokenId(p.token_id),
        },
        P::TokenExpiryChanged(p) => EventPayload::TokenExpiryChanged {
            token_id: TokenId(p.token_id),
            expires_at: p.expires_at.as_ref().map(timestamp_from_proto),
        },
        P::TokenUsed(p) => EventPayload::TokenUsed {
            token_id: TokenId(p.token_id),
        },
        P::TenantSettingsChanged(p) => EventPayload::TenantSettingsChanged {
            sso_enforced: p.sso_enforced,
            usernames: p.usernames.as_deref().map(username_policy).transpose()?,
        },
        P::UserProvisioned(p) => EventPayload::UserProvisioned {
            user_id: user_id(&p.user_id)?,
            profile: UserProfile {
                user_name: p.user_name,
                external_id: optional(&p.external_id),
                active: p.active,
                attributes: attributes_from_json("attributes_json", &p.attributes_json)?,
            },
            handle: optional(&p.handle),
        },
        P::UserUpdated(p) => EventPayload::UserUpdated {
            user_id: user_id(&p.user_id)?,
            handle: p.user_name.as_ref().and(p.handle),
            user_name: p.user_name,
            external_id: p.external_id.as_deref().map(optional),
            changed_attributes: attributes_from_json(
                "changed_attributes_json",
                &p.changed_attributes_json,
            )?,
        },
        P::UserDeactivated(p) => EventPayload::UserDeactivated {
            user_id: user_id(&p.user_id)?,
            user_name: p.user_name,
            external_id: optional(&p.external_id),
            email: optional(&p.email),
            sso: p.sso.map(sso_identity_from_proto),
        },
        P::UserReactivated(p) => EventPayload::UserReactivated {
            user_id: user_id(&p.user_id)?,
            user_name: p.user_name,
            external_id: optional(&p.external_id),
            email: optional(&p.email),
            sso: p.sso.map(sso_identity_from_proto),
        },
        P::UserDeleted(p) => EventPayload::UserDeleted {
            user_id: user_id(&p.user_id)?,
            user_name: p.user_name,
            external_id: optional(&p.external_id),
            email: optional(&p.email),
            sso: p.sso.map(sso_identity_from_proto),
        },
        P::GroupCreated(p) => EventPayload::GroupCreated {
            group_id: group_id(&p.group_id)?,
            profile: GroupProfile {
                display_name: p.display_name,
                external_id: optional(&p.external_id),
                attributes: attributes_from_json("attributes_json", &p.attributes_json)?,
            },
        },
        P::GroupRenamed(p) => EventPayload::GroupRenamed {
            group_id: group_id(&p.group_id)?,
            display_name: p.display_name,
        },
        P::GroupUpdated(p) => EventPayload::GroupUpdated {
            group_id: group_id(&p.group_id)?,
            external_id: p.external_id.as_deref().map(optional),
            changed_attributes: attributes_from_json(
                "changed_attributes_json",
                &p.changed_attributes_json,
            )?,
        },
        P::GroupMembersAdded(p) => EventPayload::GroupMembersAdded {
            group_id: group_id(&p.group_id)?,
            user_ids: user_ids(&p.user_ids)?,
        },
        P::GroupMembersRemoved(p) => EventPayload::GroupMembersRemoved {
            group_id: group_id(&p.group_id)?,
            user_ids: user_ids(&p.user_ids)?,
        },
        P::GroupDeleted(p) => EventPayload::GroupDeleted {
            group_id: group_id(&p.group_id)?,
            display_name: p.display_name,
        },
        P::DefaultRoleSet(p) => EventPayload::DefaultRoleSet {
            role: role(p.role)?,
        },
        P::RoleMappingSet(p) => EventPayload::RoleMappingSet {
            group_id: group_id(&p.group_id)?,
            role: role(p.role)?,
        },
        P::RoleMappingRemoved(p) => EventPayload::RoleMappingRemoved {
            group_id: group_id(&p.group_id)?,
        },
        P::ResourceGroupCreated(p) => EventPayload::ResourceGroupCreated {
            resource_group_id: resource_group_id(&p.resource_group_id)?,
            name: p.name,
        },
        P::ResourceGroupDeleted(p) => EventPayload::ResourceGroupDeleted {
            resource_group_id: resource_group_id(&p.resource_group_id)?,
        },
        P::ResourceGroupLinked(p) => EventPayload::ResourceGroupLinked {
            resource_group_id: resource_group_id(&p.resource_group_id)?,
            group_id: group_id(&p.group_id)?,
            role: role(p.role)?,
        },
        P::ResourceGroupLinkRoleChanged(p) => EventPayload::ResourceGroupLinkRoleChanged {
            resource_group_id: resource_group_id(&p.resource_group_id)?,
            group_id: group_id(&p.group_id)?,
            role: role(p.role)?,
        },
        P::ResourceGroupUnlinked(p) => EventPayload::ResourceGroupUnlinked {
            resource_group_id: resource_group_id(&p.resource_group_id)?,
            group_id: group_id(&p.group_id)?,
        },
        P::ResourceGroupMemberSet(p) => EventPayload::ResourceGroupMemberSet {
            resource_group_id: resource_group_id(&p.resource_group_id)?,
            user_id: user_id(&p.user_id)?,
            role: role(p.role)?,
        },
        P::ResourceGroupMemberRemoved(p) => EventPayload::ResourceGroupMemberRemoved {
            resource_group_id: resource_group_id(&p.resource_group_id)?,
            user_id: user_id(&p.user_id)?,
        },
        P::TenantStaged(p) => EventPayload::TenantStaged {
            generation: p.generation,
        },
        P::BranchOpened(_) => EventPayload::BranchOpened,
        P::BranchReady(_) => EventPayload::BranchReady,
        P::BranchFrozen(_) => EventPayload::BranchFrozen,
        P::BranchDropped(_) => EventPayload::BranchDropped,
        P::StagingPromoted(p) => EventPayload::StagingPromoted {
            generation: p.generation,
        },
        P::StagingDiscarded(p) => EventPayload::StagingDiscarded {
            generation: p.generation,
        },
        P::ClaimRoleMappingSet(p) => EventPayload::ClaimRoleMappingSet {
            claim: p.claim,
            value: p.value,
            role: role(p.role)?,
        },
        P::ClaimRoleMappingRemoved(p) => EventPayload::ClaimRoleMappingRemoved {
            claim: p.claim,
            value: p.value,
        },
        P::UserSsoLinked(p) => EventPayload::UserSsoLinked {
            user_id: user_id(&p.user_id)?,
            subject: p.subject,
            issuer: optional(&p.issuer),
        },
        P::UserClaimRoleChanged(p) => EventPayload::UserClaimRoleChanged {
            user_id: user_id(&p.user_id)?,
            claim_role: role_from_proto(p.role).map(|role| ClaimRole {
                role,
                claim: p.claim,
                value: p.value,
            }),
        },
        P::WebhookAdded(p) => EventPayload::WebhookAdded {
            webhook_id: webhook_id(&p.webhook_id)?,
            url: p.url,
            event_types: p.event_types,
            description: p.description,
        },
        P::WebhookStatusChanged(p) => EventPayload::WebhookStatusChanged {
            webhook_id: webhook_id(&p.webhook_id)?,
            status: webhook_status_from_proto(p.status)
                .ok_or_else(|| invalid("status", "unknown webhook status"))?,
            reason: p.reason,
        },
        P::WebhookSecretRotated(p) => EventPayload::WebhookSecretRotated {
            webhook_id: webhook_id(&p.webhook_id)?,
            generation: p.generation,
            previous_expires_at: p
                .previous_expires_at
                .as_ref()
                .map(timestamp_from_proto)
                .unwrap_or_default(),
        },
        P::WebhookRemoved(p) => EventPayload::WebhookRemoved {
            webhook_id: webhook_id(&p.webhook_id)?,
            reason: p.reason,
        },
        P::SsfStreamCreated(p) => EventPayload::SsfStreamCreated {
            stream_id: ssf_stream_id(&p.stream_id)?,
            receiver: TokenId(p.receiver),
            config: ssf_config_from_proto(p.config)?,
        },
        P::SsfStreamUpdated(p) => EventPayload::SsfStreamUpdated {
            stream_id: ssf_stream_id(&p.stream_id)?,
            config: ssf_config_from_proto(p.config)?,
            receiver: optional(&p.receiver).map(TokenId),
        },
        P::SsfStreamStatusChanged(p) => EventPayload::SsfStreamStatusChanged {
            stream_id: ssf_stream_id(&p.stream_id)?,
            status: ssf_status_from_proto(p.status)
                .ok_or_else(|| invalid("status", "unknown stream status"))?,
            reason: p.reason,
            by_receiver: p.by_receiver,
        },
        P::SsfSubjectChanged(p) => EventPayload::SsfSubjectChanged {
            stream_id: ssf_stream_id(&p.stream_id)?,
            subject: p.subject,
            removed: p.removed,
        },
        P::SsfVerificationRequested(p) => EventPayload::SsfVerificationRequested {
            stream_id: ssf_stream_id(&p.stream_id)?,
            state: p.state,
        },
        P::SsfStreamDeleted(p) => EventPayload::SsfStreamDeleted {
            stream_id: ssf_stream_id(&p.stream_id)?,
            reason: p.reason,
        },
    };
    let actor = event.actor.unwrap_or_default();
    let source = event.source.unwrap_or_default();
    Ok(Event {
        id: Uuid::parse_str(&event.event_id).map_err(|error| invalid("event_id", error))?,
        tenant: TenantName::parse_stored(&event.tenant)
            .map_err(|error| invalid("tenant", error))?,
        sequence: event.sequence,
        occurred_at: event
            .occurred_at
            .as_ref()
            .map(timestamp_from_proto)
            .unwrap_or_default(),
        recorded_at: event
            .recorded_at
            .as_ref()
            .map(timestamp_from_proto)
            .unwrap_or_default(),
        actor: Actor {
            kind: actor_kind_from_proto(actor.kind),
            id: actor.id,
            display: actor.display,
        },
        source: Source {
            ip: source.ip,
            user_agent: source.user_agent,
            request_id: source.request_id,
        },
        causation_id: event.causation_id,
        payload,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::json;

    use super::*;

    fn envelope(payload: EventPayload) -> Event {
        Event {
            id: Uuid::now_v7(),
            tenant: TenantName::parse("acme").unwrap(),
            sequence: 42,
            occurred_at: Timestamp::from_micros(1_700_000_000_123_456),
            recorded_at: Timestamp::from_micros(1_700_000_000_223_456),
            actor: Actor {
                kind: ActorKind::ScimToken,
                id: "tok".into(),
                display: "entra".into(),
            },
            source: Source {
                ip: "10.0.0.1".into(),
                user_agent: "Okta SCIM Client 1.0.0".into(),
                request_id: "req-1".into(),
            },
            causation_id: "req-1".into(),
            payload,
        }
    }

    #[test]
    fn every_payload_survives_the_wire() {
        let mut attributes = Attributes::new();
        attributes.insert(
            "emails".into(),
            json!([{"value": "a@x.io", "type": "work"}]),
        );
        let mut changed = Attributes::new();
        changed.insert("title".into(), serde_json::Value::Null);
        let user_id = UserId(Uuid::now_v7());
        let group_id = GroupId(Uuid::now_v7());
        let resource_group_id = ResourceGroupId(Uuid::now_v7());
        let mut types = BTreeSet::new();
        for payload in [
            EventPayload::TenantCreated {
                default_role: Role::Contributor,
                usernames: crate::domain::UsernamePolicy::Strict,
            },
            EventPayload::TokenIssued {
                token_id: TokenId("abc".into()),
                name: "n".into(),
                scope: TokenScope::Ssf,
                secret_sha256: [9; 32],
                expires_at: Some(Timestamp::from_micros(-1)),
            },
            EventPayload::TokenRevoked {
                token_id: TokenId("abc".into()),
            },
            EventPayload::TokenExpiryChanged {
                token_id: TokenId("abc".into()),
                expires_at: Some(Timestamp::from_micros(1_700_000_000_000_000)),
            },
            EventPayload::TokenExpiryChanged {
                token_id: TokenId("abc".into()),
                expires_at: None,
            },
            EventPayload::TokenUsed {
                token_id: TokenId("abc".into()),
            },
            EventPayload::TenantSettingsChanged {
                sso_enforced: Some(true),
                usernames: None,
            },
            EventPayload::UserProvisioned {
                user_id,
                profile: UserProfile {
                    user_name: "alice".into(),
                    external_id: Some("e".into()),
                    active: true,
                    attributes,
                },
                handle: None,
            },
            EventPayload::UserUpdated {
                user_id,
                user_name: Some("bob".into()),
                external_id: Some(None),
                changed_attributes: changed,
                handle: None,
            },
            EventPayload::UserUpdated {
                user_id,
                user_name: None,
                external_id: None,
                changed_attributes: Attributes::new(),
                handle: None,
            },
            EventPayload::UserDeactivated {
                user_id,
                user_name: "bob".into(),
                external_id: None,
                email: Some("bob@example.com".into()),
                sso: Default::default(),
            },
            EventPayload::UserReactivated {
                user_id,
                user_name: "bob".into(),
                external_id: Some("e".into()),
                email: Default::default(),
                sso: Default::default(),
            },
            EventPayload::UserDeleted {
                user_id,
                user_name: "bob".into(),
                external_id: None,
                email: Default::default(),
                sso: Default::default(),
            },
            EventPayload::GroupCreated {
                group_id,
                profile: GroupProfile {
                    display_name: "Engineering".into(),
                    external_id: Some("g-ext".into()),
                    attributes: Attributes::new(),
                },
            },
            EventPayload::GroupRenamed {
                group_id,
                display_name: "Eng".into(),
            },
            EventPayload::GroupUpdated {
                group_id,
                external_id: Some(None),
                changed_attributes: Attributes::new(),
            },
            EventPayload::GroupMembersAdded {
                group_id,
                user_ids: vec![user_id],
            },
            EventPayload::GroupMembersRemoved {
                group_id,
                user_ids: vec![user_id],
            },
            EventPayload::GroupDeleted {
                group_id,
                display_name: "Eng".into(),
            },
            EventPayload::DefaultRoleSet { role: Role::Write },
            EventPayload::RoleMappingSet {
                group_id,
                role: Role::Admin,
            },
            EventPayload::RoleMappingRemoved { group_id },
            EventPayload::ResourceGroupCreated {
                resource_group_id,
                name: "models".into(),
            },
            EventPayload::ResourceGroupDeleted { resource_group_id },
            EventPayload::ResourceGroupLinked {
                resource_group_id,
                group_id,
                role: Role::Read,
            },
            EventPayload::ResourceGroupLinkRoleChanged {
                resource_group_id,
                group_id,
                role: Role::Contributor,
            },
            EventPayload::ResourceGroupUnlinked {
                resource_group_id,
                group_id,
            },
            EventPayload::ResourceGroupMemberSet {
                resource_group_id,
                user_id,
                role: Role::Write,
            },
            EventPayload::ResourceGroupMemberRemoved {
                resource_group_id,
                user_id,
            },
            EventPayload::TenantStaged { generation: 3 },
            EventPayload::BranchOpened,
            EventPayload::BranchReady,
            EventPayload::BranchFrozen,
            EventPayload::BranchDropped,
            EventPayload::StagingPromoted { generation: 3 },
            EventPayload::StagingDiscarded { generation: 4 },
            EventPayload::ClaimRoleMappingSet {
                claim: "custom.department".into(),
                value: "Research".into(),
                role: Role::Write,
            },
            EventPayload::ClaimRoleMappingRemoved {
                claim: "groups".into(),
                value: "eng".into(),
            },
            EventPayload::UserSsoLinked {
                user_id,
                subject: "00u1abc".into(),
                issuer: Some("https://acme.okta.com".into()),
            },
            EventPayload::UserClaimRoleChanged {
                user_id,
                claim_role: Some(ClaimRole {
                    role: Role::Admin,
                    claim: "roles".into(),
                    value: "Owner".into(),
                }),
            },
            EventPayload::UserClaimRoleChanged {
                user_id,
                claim_role: None,
            },
            EventPayload::WebhookAdded {
                webhook_id: WebhookId(Uuid::now_v7()),
                url: "https://hooks.example.com/roster".into(),
                event_types: vec!["user.*".into()],
                description: "offboarding".into(),
            },
            EventPayload::WebhookStatusChanged {
                webhook_id: WebhookId(Uuid::now_v7()),
                status: WebhookStatus::Failing,
                reason: "503 after 10 attempts".into(),
            },
            EventPayload::WebhookSecretRotated {
                webhook_id: WebhookId(Uuid::now_v7()),
                generation: 2,
                previous_expires_at: Timestamp::from_micros(1_700_000_000_000_000),
            },
            EventPayload::WebhookRemoved {
                webhook_id: WebhookId(Uuid::now_v7()),
                reason: "410 Gone".into(),
            },
            EventPayload::SsfStreamCreated {
                stream_id: SsfStreamId(Uuid::now_v7()),
                receiver: TokenId("0a1b2c3d4e5f6a7b".into()),
                config: SsfStreamConfig {
                    delivery: SsfDelivery::Push {
                        endpoint_url: "https://rp.example.com/events".into(),
                        authorization_sealed: vec![1, 2, 3],
                    },
                    events_requested: vec![crate::domain::ssf::CAEP_SESSION_REVOKED.into()],
                    description: "rp".into(),
                },
            },
            EventPayload::SsfStreamUpdated {
                stream_id: SsfStreamId(Uuid::now_v7()),
                config: SsfStreamConfig {
                    delivery: SsfDelivery::Poll,
                    events_requested: Vec::new(),
                    description: String::new(),
                },
                receiver: Some(TokenId("1a2b3c4d5e6f7a8b".into())),
            },
            EventPayload::SsfStreamStatusChanged {
                stream_id: SsfStreamId(Uuid::now_v7()),
                status: SsfStreamStatus::Paused,
                reason: "maintenance".into(),
                by_receiver: true,
            },
            EventPayload::SsfSubjectChanged {
                stream_id: SsfStreamId(Uuid::now_v7()),
                subject: r#"{"email":"ada@example.com","format":"email"}"#.into(),
                removed: true,
            },
            EventPayload::SsfVerificationRequested {
                stream_id: SsfStreamId(Uuid::now_v7()),
                state: "abc".into(),
            },
            EventPayload::SsfStreamDeleted {
                stream_id: SsfStreamId(Uuid::now_v7()),
                reason: "receiver".into(),
            },
        ] {
            types.insert(payload.event_type());
            let event = envelope(payload);
            assert_eq!(decode(&encode(&event)).unwrap(), event);
        }
        // One payload of every type, and `EventPayload::TYPES` names exactly those.
        assert_eq!(
            types,
            EventPayload::TYPES.iter().copied().collect::<BTreeSet<_>>()
        );
        let mut branch_event = envelope(EventPayload::BranchReady);
        branch_event.tenant = TenantName::parse("acme").unwrap().staging_branch(7);
        assert_eq!(decode(&encode(&branch_event)).unwrap(), branch_event);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode(b"\xff\xff\xff").is_err());
        assert!(matches!(decode(&[]), Err(CodecError::UnknownPayload)));
    }
}
