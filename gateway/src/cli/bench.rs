//! `roster bench …`: SCIM and gRPC load against a running roster (creates, IdP traffic, group
//! scale, gRPC access checks) and the offline history benchmarks (seed, point-in-time
//! queries); the load itself is `roster_gateway::bench`.

use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Subcommand;
use roster_proto::v1 as pb;

use super::connect::{self, admin_token};
use super::{Common, rpc_error};

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Create users as fast as `--clients` concurrent clients can, one request at a time each.
    Creates {
        /// The running roster's SCIM HTTP address; several, comma-separated, spread the clients
        /// over several roster processes (NATS mode).
        #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:8080")]
        http: Vec<String>,
        #[arg(long, default_value_t = 32)]
        clients: usize,
        #[arg(long, default_value_t = 20_000)]
        users: usize,
        /// Fresh `bench-…` tenants to spread the clients over.
        #[arg(long, default_value_t = 1, conflicts_with = "tenant")]
        tenants: usize,
        /// Tenant to load; default: fresh `bench-…` tenants created with the admin token.
        #[arg(long, requires = "token")]
        tenant: Option<String>,
        /// SCIM token of `--tenant`.
        #[arg(long)]
        token: Option<String>,
    },
    /// Offline (roster stopped): append a realistic history of about `--events` events to the
    /// data directory through the engine. Then `roster rebuild` times the projections.
    Seed {
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        #[arg(long, default_value_t = 1)]
        tenants: usize,
    },
    /// Offline (roster stopped, views built): time point-in-time queries.
    History {
        #[arg(long, default_value_t = 2000)]
        rounds: usize,
    },
    /// GetUserAccess and CheckAccess throughput and latency over gRPC.
    Grpc {
        #[arg(long, default_value = "127.0.0.1:8080")]
        http: String,
        #[arg(long, default_value_t = 2000)]
        users: usize,
        #[arg(long, default_value_t = 64)]
        streams: usize,
        /// Seconds per RPC.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// Realistic IdP traffic (initial sync, churn, lookups, read mix), each phase also played
    /// against a bare echo server (the ceiling); reports figures and roster's peak RSS.
    Idp {
        #[arg(long, default_value = "127.0.0.1:8080")]
        http: String,
        #[arg(long, default_value_t = 10_000)]
        users: usize,
        #[arg(long, default_value_t = 100)]
        groups: usize,
        /// Members added per group PATCH in the initial sync.
        #[arg(long, default_value_t = 100)]
        members_per_patch: usize,
        #[arg(long, default_value_t = 32)]
        clients: usize,
        /// Seconds of each timed phase (churn, lookups, read mix).
        #[arg(long, default_value_t = 15)]
        seconds: u64,
    },
    /// Webhook delivery: users created at full speed in a tenant with `--webhooks` subscriptions
    /// to user.provisioned, all delivered to a receiver in this process; reports deliveries/s
    /// and the latency from an event's recording to its arrival.
    Webhooks {
        #[arg(long, default_value = "127.0.0.1:8080")]
        http: String,
        #[arg(long, default_value_t = 8)]
        webhooks: usize,
        #[arg(long, default_value_t = 5_000)]
        users: usize,
        #[arg(long, default_value_t = 32)]
        clients: usize,
        /// Creates per second (0: as fast as the clients go); below the delivery rate, the
        /// latency measured is that of a receiver keeping up.
        #[arg(long, default_value_t = 0.0)]
        rate: f64,
    },
    /// SETs pushed per second and their latency: push streams (RFC 9967 create notices) in a
    /// fresh tenant, one SET per create and stream, to a receiver in this process.
    Ssf {
        #[arg(long, default_value = "127.0.0.1:8080")]
        http: String,
        #[arg(long, default_value_t = 4)]
        streams: usize,
        #[arg(long, default_value_t = 5_000)]
        users: usize,
        #[arg(long, default_value_t = 32)]
        clients: usize,
        /// Creates per second (0: as fast as the clients go).
        #[arg(long, default_value_t = 0.0)]
        rate: f64,
    },
    /// Time single-member adds/removes and member-less reads on groups of several sizes.
    Groups {
        #[arg(long, default_value = "127.0.0.1:8080")]
        http: String,
        /// Group sizes to measure.
        #[arg(long, value_delimiter = ',', default_value = "10,10000,100000")]
        sizes: Vec<usize>,
        /// Measured operations of each kind per size.
        #[arg(long, default_value_t = 200)]
        rounds: usize,
    },
}

/// A fresh `bench-…` tenant created with the admin token: its name and SCIM token.
async fn bench_tenant(common: &Common) -> Result<(String, String)> {
    let name = format!("bench-{}", uuid::Uuid::now_v7().simple());
    let name = name[..name.len().min(40)].to_owned();
    let response = connect::admin(common)
        .await?
        .create_tenant(pb::CreateTenantRequest {
            name,
            token_name: "bench".into(),
            usernames: String::new(),
        })
        .await
        .map_err(rpc_error)?
        .into_inner();
    Ok((response.tenant, response.secret))
}

/// A tenant's SCIM endpoint at an HTTP address (`host:port`, or a URL).
fn bench_target(http: &str, tenant: &str, token: String) -> roster_gateway::bench::Target {
    let origin = if http.contains("://") {
        http.to_owned()
    } else {
        format!("http://{http}")
    };
    roster_gateway::bench::Target {
        base_url: format!("{origin}/scim/v2/{tenant}"),
        token,
    }
}

pub async fn run(common: &Common, command: BenchCommand) -> Result<ExitCode> {
    match command {
        BenchCommand::Creates {
            http,
            clients,
            users,
            tenants,
            tenant,
            token,
        } => {
            let tenants = match (tenant, token) {
                (Some(tenant), Some(token)) => vec![(tenant, token)],
                _ => {
                    let mut created = Vec::new();
                    for _ in 0..tenants.max(1) {
                        created.push(bench_tenant(common).await?);
                    }
                    created
                }
            };
            let targets: Vec<_> = tenants
                .iter()
                .flat_map(|(tenant, token)| {
                    http.iter()
                        .map(|http| bench_target(http, tenant, token.clone()))
                })
                .collect();
            eprintln!(
                "creating {users} users in {} tenant(s) through {} address(es) with {clients} clients",
                tenants.len(),
                http.len()
            );
            let report = roster_gateway::bench::creates(&targets, clients, users, "user").await;
            println!("{}", report.summary());
            if report.latencies.is_empty() {
                bail!("no request succeeded");
            }
        }
        BenchCommand::Idp {
            http,
            users,
            groups,
            members_per_patch,
            clients,
            seconds,
        } => {
            let (tenant, token) = bench_tenant(common).await?;
            let target = bench_target(&http, &tenant, token);
            let plan = roster_gateway::bench::idp::IdpPlan {
                users,
                groups,
                members_per_patch,
                clients,
                phase: std::time::Duration::from_secs(seconds),
            };
            eprintln!(
                "IdP traffic into tenant {tenant}: {users} users, {groups} groups, {clients} clients"
            );
            let phases = roster_gateway::bench::idp::run(&target, &plan)
                .await
                .map_err(|error| anyhow::anyhow!(error))?;
            for phase in &phases {
                println!("{}", phase.summary());
            }
            let origin = target
                .base_url
                .split("/scim/v2/")
                .next()
                .unwrap_or_default()
                .to_owned();
            // `/metrics` on the SCIM port answers the admin token only.
            let admin = admin_token(&common.data_dir)?;
            match roster_gateway::bench::idp::peak_rss(&origin, &admin).await {
                Some(bytes) => println!("roster peak RSS: {:.0} MiB", bytes as f64 / 1048576.0),
                None => println!("roster peak RSS: not available from {origin}/metrics"),
            }
        }
        BenchCommand::Webhooks {
            http,
            webhooks,
            users,
            clients,
            rate,
        } => {
            let (tenant, token) = bench_tenant(common).await?;
            let target = bench_target(&http, &tenant, token);
            let admin = connect::admin(common).await?;
            let add = |url: String| {
                let mut admin = admin.clone();
                let tenant = tenant.clone();
                async move {
                    admin
                        .add_webhook(pb::AddWebhookRequest {
                            tenant,
                            url,
                            event_types: vec!["user.provisioned".into()],
                            description: "bench".into(),
                        })
                        .await
                        .map(|_| ())
                        .map_err(|status| status.message().to_owned())
                }
            };
            eprintln!(
                "creating {users} users with {clients} clients in tenant {tenant}, {webhooks} webhooks"
            );
            let run = roster_gateway::bench::webhooks::run(
                &target,
                webhooks,
                users,
                clients,
                (rate > 0.0).then_some(rate),
                std::time::Duration::from_secs(120),
                add,
            )
            .await
            .map_err(|error| anyhow::anyhow!(error))?;
            println!("{}", run.creates.summary());
            println!("{}", run.deliveries.summary());
            if run.deliveries.latencies.len() < run.expected {
                bail!(
                    "{} of {} deliveries arrived",
                    run.deliveries.latencies.len(),
                    run.expected
                );
            }
        }
        BenchCommand::Ssf {
            http,
            streams,
            users,
            clients,
            rate,
        } => {
            let (tenant, token) = bench_tenant(common).await?;
            let target = bench_target(&http, &tenant, token);
            let origin = target
                .base_url
                .split("/scim/v2/")
                .next()
                .unwrap_or_default()
                .to_owned();
            let admin = connect::admin(common).await?;
            let http_client = reqwest::Client::new();
            let create = |url: String| {
                let mut admin = admin.clone();
                let tenant = tenant.clone();
                let origin = origin.clone();
                let http_client = http_client.clone();
                async move {
                    let issued = admin
                        .issue_token(pb::IssueTokenRequest {
                            tenant: tenant.clone(),
                            name: "bench-receiver".into(),
                            expires_in: None,
                            scope: "ssf".into(),
                        })
                        .await
                        .map_err(|status| status.message().to_owned())?
                        .into_inner();
                    let client_id = issued.token.map(|token| token.id).unwrap_or_default();
                    let grant: serde_json::Value = http_client
                        .post(format!("{origin}/oauth/token"))
                        .basic_auth(&client_id, Some(&issued.secret))
                        .form(&[("grant_type", "client_credentials")])
                        .send()
                        .await
                        .map_err(|error| error.to_string())?
                        .json()
                        .await
                        .map_err(|error| error.to_string())?;
                    let access = grant["access_token"].as_str().unwrap_or_default();
                    let created = http_client
                        .post(format!("{origin}/ssf/{tenant}/stream"))
                        .bearer_auth(access)
                        .json(&serde_json::json!({
                            "delivery": {"method": "urn:ietf:rfc:8935", "endpoint_url": url},
                            "events_requested": ["urn:ietf:params:scim:event:prov:create:notice"],
                        }))
                        .send()
                        .await
                        .map_err(|error| error.to_string())?;
                    if created.status().as_u16() != 201 {
                        return Err(format!("creating a stream answered {}", created.status()));
                    }
                    Ok(())
                }
            };
            eprintln!(
                "creating {users} users with {clients} clients in tenant {tenant}, {streams} push streams"
            );
            let run = roster_gateway::bench::ssf::run(
                &target,
                streams,
                users,
                clients,
                (rate > 0.0).then_some(rate),
                std::time::Duration::from_secs(300),
                create,
            )
            .await
            .map_err(|error| anyhow::anyhow!(error))?;
            println!("{}", run.creates.summary());
            println!("{}", run.deliveries.summary());
            if run.deliveries.latencies.len() < run.expected {
                bail!(
                    "{} of {} SETs arrived",
                    run.deliveries.latencies.len(),
                    run.expected
                );
            }
        }
        BenchCommand::Grpc {
            http,
            users,
            streams,
            seconds,
        } => {
            let (tenant, token) = bench_tenant(common).await?;
            let target = bench_target(&http, &tenant, token);
            let reports = roster_gateway::bench::grpc_access(
                &target,
                &common.grpc,
                &tenant,
                users,
                streams,
                std::time::Duration::from_secs(seconds),
            )
            .await
            .map_err(|error| anyhow::anyhow!(error))?;
            for report in reports {
                println!("{}", report.summary());
            }
        }
        BenchCommand::Seed { events, tenants } => {
            eprintln!(
                "seeding about {events} events over {tenants} tenant(s) into {}",
                common.data_dir.display()
            );
            let seeded = roster_gateway::bench::history::seed(&common.data_dir, events, tenants)
                .await
                .map_err(|error| anyhow::anyhow!(error))?;
            println!(
                "seeded {} events ({} commands) in {:.1}s: {:.0} events/s",
                seeded.events,
                seeded.commands,
                seeded.elapsed.as_secs_f64(),
                seeded.events as f64 / seeded.elapsed.as_secs_f64().max(f64::EPSILON)
            );
        }
        BenchCommand::History { rounds } => {
            let data_dir = common.data_dir.clone();
            let measured = tokio::task::spawn_blocking(move || {
                roster_gateway::bench::history::point_in_time(&data_dir, rounds)
            })
            .await?
            .map_err(|error| anyhow::anyhow!(error))?;
            println!("history of {} events", measured.events);
            for report in [&measured.members_at, &measured.access_at] {
                let millis = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
                println!(
                    "{}: p50 {:.3} ms, p99 {:.3} ms, p999 {:.3} ms",
                    report.name,
                    millis(report.percentile(0.5)),
                    millis(report.percentile(0.99)),
                    millis(report.percentile(0.999))
                );
            }
        }
        BenchCommand::Groups {
            http,
            sizes,
            rounds,
        } => {
            let (tenant, token) = bench_tenant(common).await?;
            let target = bench_target(&http, &tenant, token);
            let results = roster_gateway::bench::group_scale(&target, &sizes, rounds)
                .await
                .map_err(|error| anyhow::anyhow!(error))?;
            for scale in results {
                for report in [&scale.add, &scale.remove, &scale.read_without_members] {
                    let millis = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
                    println!(
                        "{}: p50 {:.2} ms, p99 {:.2} ms",
                        report.name,
                        millis(report.percentile(0.5)),
                        millis(report.percentile(0.99))
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
