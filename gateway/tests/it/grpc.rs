//! The gRPC API with a tonic client: every Directory RPC, `CheckAccess` for each rule, `Watch`
//! resumed after a disconnect, tenant scoping, health and reflection.

use std::time::Duration;

use roster_proto::v1 as pb;
use roster_proto::v1::directory_client::DirectoryClient;
use roster_proto::v1::events_client::EventsClient;
use serde_json::json;
use tokio_stream::StreamExt;
use tonic::Code;
use tonic::transport::Channel;

use crate::support::{Stack, Tenant, authorized, patch_op};

fn by_name(name: &str) -> Option<pb::UserRef> {
    Some(pb::UserRef {
        by: Some(pb::user_ref::By::UserName(name.into())),
    })
}

struct World {
    acme: Tenant,
    alice: String,
    bob: String,
    engineering: String,
}

/// acme: alice (Engineering → write; resource group "models" linked to Engineering with admin),
/// bob (no group, default role read), carol (deactivated).
async fn world(stack: &Stack) -> World {
    let acme = stack.tenant("acme").await;
    let alice = acme
        .post(
            "/Users",
            &json!({"userName": "alice", "externalId": "ext-alice"}),
        )
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let bob = acme.create_user("bob").await;
    let carol = acme.create_user("carol").await;
    acme.patch(
        &format!("/Users/{carol}"),
        &patch_op(json!([{"op": "replace", "path": "active", "value": false}])),
    )
    .await
    .expect(200);
    let engineering = acme
        .post(
            "/Groups",
            &json!({"displayName": "Engineering", "members": [{"value": alice}]}),
        )
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut admin = stack.admin().await;
    admin
        .set_role_mapping(stack.with_admin_token(pb::SetRoleMappingRequest {
            tenant: "acme".into(),
            group: "Engineering".into(),
            role: pb::Role::Write.into(),
        }))
        .await
        .unwrap();
    admin
        .create_resource_group(stack.with_admin_token(pb::CreateResourceGroupRequest {
            tenant: "acme".into(),
            name: "models".into(),
        }))
        .await
        .unwrap();
    admin
        .link_resource_group(stack.with_admin_token(pb::LinkResourceGroupRequest {
            tenant: "acme".into(),
            resource_group: "models".into(),
            group: "Engineering".into(),
            role: pb::Role::Admin.into(),
        }))
        .await
        .unwrap();
    World {
        acme,
        alice,
        bob,
        engineering,
    }
}

#[tokio::test]
async fn get_user_by_id_user_name_or_external_id() {
    let stack = Stack::start().await;
    let world = world(&stack).await;
    let mut client = stack.directory().await;
    for by in [
        pb::user_ref::By::Id(world.alice.clone()),
        pb::user_ref::By::UserName("ALICE".into()),
        pb::user_ref::By::ExternalId("ext-alice".into()),
    ] {
        let user = client
            .get_user(authorized(
                &world.acme.token,
                pb::GetUserRequest {
                    tenant: "acme".into(),
                    user: Some(pb::UserRef { by: Some(by) }),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(user.id, world.alice);
        assert_eq!(user.user_name, "alice");
        assert_eq!(user.groups[0].display_name, "Engineering");
        assert!(user.active);
    }
    let missing = client
        .get_user(authorized(
            &world.acme.token,
            pb::GetUserRequest {
                tenant: "acme".into(),
                user: by_name("nobody"),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let no_ref = client
        .get_user(authorized(
            &world.acme.token,
            pb::GetUserRequest {
                tenant: "acme".into(),
                user: None,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(no_ref.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn get_user_by_a_shared_external_id_is_refused_naming_the_count() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    for name in ["alice", "bob", "carol"] {
        acme.post("/Users", &json!({"userName": name, "externalId": "shared"}))
            .await
            .expect(201);
    }
    let mut client = stack.directory().await;
    let refused = client
        .get_user(authorized(
            &acme.token,
            pb::GetUserRequest {
                tenant: "acme".into(),
                user: Some(pb::UserRef {
                    by: Some(pb::user_ref::By::ExternalId("shared".into())),
                }),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(refused.message().contains("3 users"), "{refused:?}");
}

#[tokio::test]
async fn list_users_pages_through_everyone_once() {
    let stack = Stack::start().await;
    let world = world(&stack).await;
    let mut client = stack.directory().await;
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_users(authorized(
                &world.acme.token,
                pb::ListUsersRequest {
                    tenant: "acme".into(),
                    page_size: 2,
                    page_token: token.clone(),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(page.total, 3);
        seen.extend(page.users.into_iter().map(|user| user.user_name));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen, ["alice", "bob", "carol"]);
}

#[tokio::test]
async fn group_members_now_and_as_of_a_moment_and_user_groups() {
    let clock = roster_engine::clock::ManualClock::starting_now();
    let stack = Stack::start_with({
        let clock = clock.clone();
        move |config| config.clock = clock
    })
    .await;
    let world = world(&stack).await;
    let mut client = stack.directory().await;
    clock.advance(5_000);
    let before_bob =
        roster_engine::codec::timestamp_to_proto(roster_engine::clock::Clock::now(&*clock));
    clock.advance(5_000);
    world
        .acme
        .patch(
            &format!("/Groups/{}", world.engineering),
            &patch_op(json!([{"op": "add", "path": "members", "value": [{"value": world.bob}]}])),
        )
        .await;
    let now = client
        .list_group_members(authorized(
            &world.acme.token,
            pb::ListGroupMembersRequest {
                tenant: "acme".into(),
                group: "engineering".into(),
                page_size: 10,
                page_token: String::new(),
                as_of: None,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let names: Vec<&str> = now
        .members
        .iter()
        .map(|member| member.user_name.as_str())
        .collect();
    assert_eq!(
        names,
        ["alice", "bob"],
        "a query after the write's response sees it"
    );
    let then = client
        .list_group_members(authorized(
            &world.acme.token,
            pb::ListGroupMembersRequest {
                tenant: "acme".into(),
                group: world.engineering.clone(),
                page_size: 10,
                page_token: String::new(),
                as_of: Some(before_bob),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(then.members.len(), 1);
    assert_eq!(then.members[0].user_id, world.alice);
    let groups = client
        .list_user_groups(authorized(
            &world.acme.token,
            pb::ListUserGroupsRequest {
                tenant: "acme".into(),
                user: by_name("bob"),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(groups.groups[0].display_name, "Engineering");
}

#[tokio::test]
async fn user_access_now_and_as_of_a_moment_with_sources() {
    let stack = Stack::start().await;
    let world = world(&stack).await;
    let mut client = stack.directory().await;
    let access = client
        .get_user_access(authorized(
            &world.acme.token,
            pb::GetUserAccessRequest {
                tenant: "acme".into(),
                user: by_name("alice"),
                as_of: None,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(access.active);
    assert_eq!(access.org_role, i32::from(pb::Role::Write));
    let Some(pb::role_source::Kind::Group(group)) = access.org_role_source.unwrap().kind else {
        panic!("alice's role comes from a group");
    };
    assert_eq!(group.display_name, "Engineering");
    assert_eq!(access.resource_groups.len(), 1);
    assert_eq!(access.resource_groups[0].resource_group_name, "models");
    assert_eq!(access.resource_groups[0].role, i32::from(pb::Role::Admin));
    let bob = client
        .get_user_access(authorized(
            &world.acme.token,
            pb::GetUserAccessRequest {
                tenant: "acme".into(),
                user: by_name("bob"),
                as_of: None,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(bob.org_role, i32::from(pb::Role::Read));
    assert_eq!(
        bob.org_role_source.unwrap().kind,
        Some(pb::role_source::Kind::DefaultRole(true))
    );
    let carol = client
        .get_user_access(authorized(
            &world.acme.token,
            pb::GetUserAccessRequest {
                tenant: "acme".into(),
                user: by_name("carol"),
                as_of: None,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(!carol.active);
    assert_eq!(carol.org_role, i32::from(pb::Role::Unspecified));
    let long_ago = client
        .get_user_access(authorized(
            &world.acme.token,
            pb::GetUserAccessRequest {
                tenant: "acme".into(),
                user: Some(pb::UserRef {
                    by: Some(pb::user_ref::By::Id(world.alice.clone())),
                }),
                as_of: Some(prost_types::Timestamp {
                    seconds: 1_000_000_000,
                    nanos: 0,
                }),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(long_ago.code(), Code::NotFound);
}

async fn check(
    client: &mut DirectoryClient<Channel>,
    token: &str,
    user: &str,
    action: pb::Action,
    namespace: &str,
    resource_group: &str,
) -> pb::CheckAccessResponse {
    client
        .check_access(authorized(
            token,
            pb::CheckAccessRequest {
                tenant: "acme".into(),
                user: by_name(user),
                action: action.into(),
                resource: Some(pb::Resource {
                    namespace: namespace.into(),
                    resource_group: resource_group.into(),
                }),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn check_access_applies_each_managed_account_rule() {
    let stack = Stack::start().await;
    let world = world(&stack).await;
    let token = world.acme.token.clone();
    let mut client = stack.directory().await;
    // Roles: read < contribute < write < administer.
    let write = check(&mut client, &token, "alice", pb::Action::Write, "acme", "").await;
    assert!(write.allowed, "{}", write.reason);
    assert_eq!(write.effective_role, i32::from(pb::Role::Write));
    let administer = check(
        &mut client,
        &token,
        "alice",
        pb::Action::Administer,
        "acme",
        "",
    )
    .await;
    assert!(!administer.allowed);
    assert!(
        administer.reason.contains("below admin"),
        "{}",
        administer.reason
    );
    // A resource group's role adds to the org role.
    let in_models = check(
        &mut client,
        &token,
        "alice",
        pb::Action::Administer,
        "acme",
        "models",
    )
    .await;
    assert!(in_models.allowed, "{}", in_models.reason);
    assert!(
        check(&mut client, &token, "bob", pb::Action::Read, "acme", "")
            .await
            .allowed
    );
    let contribute = check(
        &mut client,
        &token,
        "bob",
        pb::Action::Contribute,
        "acme",
        "",
    )
    .await;
    assert!(!contribute.allowed);
    // A deactivated user is denied everything.
    let carol = check(&mut client, &token, "carol", pb::Action::Read, "acme", "").await;
    assert!(!carol.allowed);
    assert!(carol.reason.contains("deactivated"));
    // A deleted (unknown) user is denied everything.
    world.acme.delete(&format!("/Users/{}", world.bob)).await;
    let gone = check(&mut client, &token, "bob", pb::Action::Read, "acme", "").await;
    assert!(!gone.allowed);
    assert!(gone.reason.contains("does not exist"));
    // No content in a personal namespace.
    let personal = check(
        &mut client,
        &token,
        "alice",
        pb::Action::Contribute,
        "alice",
        "",
    )
    .await;
    assert!(!personal.allowed);
    assert!(
        personal.reason.contains("personal namespace"),
        "{}",
        personal.reason
    );
    // Nothing in another tenant.
    stack.tenant("globex").await;
    let elsewhere = check(&mut client, &token, "alice", pb::Action::Read, "globex", "").await;
    assert!(!elsewhere.allowed);
    assert!(
        elsewhere.reason.contains("another organization"),
        "{}",
        elsewhere.reason
    );
    let unknown_action = client
        .check_access(authorized(
            &token,
            pb::CheckAccessRequest {
                tenant: "acme".into(),
                user: by_name("alice"),
                action: pb::Action::Unspecified.into(),
                resource: Some(pb::Resource {
                    namespace: "acme".into(),
                    resource_group: String::new(),
                }),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(unknown_action.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn tenant_tokens_reach_only_their_tenant() {
    let stack = Stack::start().await;
    let world = world(&stack).await;
    let other = stack.tenant("other").await;
    let mut client = stack.directory().await;
    let denied = client
        .get_user(authorized(
            &other.token,
            pb::GetUserRequest {
                tenant: "acme".into(),
                user: by_name("alice"),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert!(!denied.message().is_empty());
    let unauthenticated = client
        .get_user(tonic::Request::new(pb::GetUserRequest {
            tenant: "acme".into(),
            user: by_name("alice"),
        }))
        .await
        .unwrap_err();
    assert_eq!(unauthenticated.code(), Code::Unauthenticated);
    let admin = client
        .get_user(authorized(
            &stack.admin_token(),
            pb::GetUserRequest {
                tenant: "acme".into(),
                user: by_name("alice"),
            },
        ))
        .await
        .unwrap();
    assert_eq!(admin.into_inner().id, world.alice);
}

async fn watch(
    stack: &Stack,
    token: &str,
    from: u64,
    types: &[&str],
) -> tonic::Streaming<pb::Event> {
    let mut client = EventsClient::connect(format!("http://{}", stack.running.grpc_addr))
        .await
        .unwrap();
    client
        .watch(authorized(
            token,
            pb::WatchRequest {
                tenant: "acme".into(),
                from_sequence: from,
                event_types: types.iter().map(|kind| (*kind).to_owned()).collect(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
}

async fn next(stream: &mut tonic::Streaming<pb::Event>) -> pb::Event {
    tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("an event arrives")
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn watch_resumes_after_a_disconnect_with_no_gap_and_no_duplicate() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    stack.tenant("other").await.create_user("noise").await;
    let mut stream = watch(&stack, &acme.token, 0, &[]).await;
    let mut seen: Vec<u64> = Vec::new();
    // tenant.created, token.issued, and token.used (this call is the token's first use).
    for _ in 0..3 {
        let event = next(&mut stream).await;
        assert_eq!(event.tenant, "acme", "only the tenant's own events");
        seen.push(event.sequence);
    }
    acme.create_user("first").await;
    let event = next(&mut stream).await;
    assert!(matches!(
        event.payload,
        Some(pb::event::Payload::UserProvisioned(_))
    ));
    seen.push(event.sequence);
    drop(stream);
    // Written while nobody listens.
    acme.create_user("second").await;
    acme.create_user("third").await;
    let mut stream = watch(&stack, &acme.token, seen.last().unwrap() + 1, &[]).await;
    let mut names = Vec::new();
    for _ in 0..2 {
        let event = next(&mut stream).await;
        seen.push(event.sequence);
        if let Some(pb::event::Payload::UserProvisioned(user)) = event.payload {
            names.push(user.user_name);
        }
    }
    assert_eq!(names, ["second", "third"]);
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, seen, "increasing, never twice");
    // And live events keep coming on the resumed stream.
    acme.create_user("fourth").await;
    assert!(matches!(
        next(&mut stream).await.payload,
        Some(pb::event::Payload::UserProvisioned(_))
    ));
}

#[tokio::test]
async fn watch_filters_by_event_type_for_offboarding_subscribers() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let id = acme.create_user("leaver").await;
    let mut stream = watch(&stack, &acme.token, 0, &["user.deactivated"]).await;
    acme.patch(
        &format!("/Users/{id}"),
        &patch_op(json!([{"op": "replace", "path": "active", "value": false}])),
    )
    .await
    .expect(200);
    let event = next(&mut stream).await;
    let Some(pb::event::Payload::UserDeactivated(deactivated)) = event.payload else {
        panic!("only deactivations");
    };
    assert_eq!(deactivated.user_name, "leaver");
}

/// A stream opened with a token ends when the token is revoked, as SCIM answers it 401 then.
#[tokio::test]
async fn watch_ends_when_its_token_is_revoked() {
    let stack = Stack::start().await;
    let acme = stack.tenant("acme").await;
    let mut stream = watch(&stack, &acme.token, 0, &["user.provisioned"]).await;
    acme.create_user("first").await;
    assert!(matches!(
        next(&mut stream).await.payload,
        Some(pb::event::Payload::UserProvisioned(_))
    ));
    let mut admin = stack.admin().await;
    let tokens = admin
        .list_tokens(stack.with_admin_token(pb::ListTokensRequest {
            tenant: "acme".into(),
        }))
        .await
        .unwrap()
        .into_inner()
        .tokens;
    admin
        .revoke_token(stack.with_admin_token(pb::RevokeTokenRequest {
            tenant: "acme".into(),
            token_id: tokens[0].id.clone(),
        }))
        .await
        .unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("the stream ends promptly")
        .expect("with a status")
        .unwrap_err();
    assert_eq!(ended.code(), tonic::Code::Unauthenticated, "{ended:?}");
    // A stream opened with the admin token is not affected.
    let mut admin_stream = watch(&stack, &stack.admin_token(), 0, &["user.provisioned"]).await;
    assert!(matches!(
        next(&mut admin_stream).await.payload,
        Some(pb::event::Payload::UserProvisioned(_))
    ));
}

#[tokio::test]
async fn health_and_reflection_are_served() {
    let stack = Stack::start().await;
    let channel = Channel::from_shared(format!("http://{}", stack.running.grpc_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    for service in [
        "roster.v1.Directory",
        "roster.v1.Events",
        "roster.v1.Audit",
        "roster.v1.Admin",
    ] {
        let status = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            status.status,
            tonic_health::pb::health_check_response::ServingStatus::Serving as i32,
            "{service}"
        );
    }
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let mut reflection = ServerReflectionClient::new(channel);
    let request = tonic_reflection::pb::v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        responses.next().await.unwrap().unwrap().message_response
    else {
        panic!("a service list");
    };
    let names: Vec<String> = list
        .service
        .into_iter()
        .map(|service| service.name)
        .collect();
    for expected in [
        "roster.v1.Directory",
        "roster.v1.Events",
        "roster.v1.Audit",
        "roster.v1.Admin",
    ] {
        assert!(names.iter().any(|name| name == expected), "{names:?}");
    }
}
