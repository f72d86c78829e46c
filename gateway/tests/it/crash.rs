//! Durability under SIGKILL: the real `roster` binary is killed while clients create users, then
//! restarted on the same data directory. Every acknowledged create must be there exactly once,
//! on the embedded log and on JetStream.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use roster_engine::testkit::nats::NatsServer;
use serde_json::json;

use crate::support::{Process, Tenant, reply};

/// userName → id of every acknowledged create.
type Acknowledged = Arc<Mutex<HashMap<String, String>>>;

/// Creates users through `tenant` from `clients` concurrent clients until a request fails.
pub fn create_until_failure(
    tenant: &Tenant,
    clients: usize,
    prefix: &str,
) -> (Acknowledged, Vec<tokio::task::JoinHandle<()>>) {
    let acknowledged: Acknowledged = Arc::default();
    let workers = (0..clients)
        .map(|client| {
            let tenant = tenant.clone();
            let acknowledged = acknowledged.clone();
            let prefix = prefix.to_owned();
            tokio::spawn(async move {
                for n in 0.. {
                    let name = format!("{prefix}{client}-{n}");
                    let sent = tenant
                        .request(reqwest::Method::POST, "/Users")
                        .body(json!({"userName": name}).to_string())
                        .send()
                        .await;
                    let Ok(response) = sent else { break };
                    if response.status() != 201 {
                        break;
                    }
                    let Ok(body) = response.json::<serde_json::Value>().await else {
                        break;
                    };
                    let id = body["id"].as_str().unwrap().to_owned();
                    acknowledged.lock().unwrap().insert(name, id);
                }
            })
        })
        .collect();
    (acknowledged, workers)
}

/// Asserts every acknowledged user is listed exactly once, under its id, and nobody twice.
pub async fn assert_all_there_once(tenant: &Tenant, acknowledged: &HashMap<String, String>) {
    let listed = tenant.all_users().await;
    for (name, id) in acknowledged {
        assert_eq!(
            listed.get(name),
            Some(&vec![id.clone()]),
            "acknowledged user {name} is there exactly once"
        );
    }
    assert!(
        listed.values().all(|ids| ids.len() == 1),
        "no user is there twice"
    );
}

async fn kill_under_load_and_restart(data_dir: &Path, nats: Option<&str>) {
    let mut server = Process::spawn(data_dir, nats).await;
    let tenant = server.create_tenant(data_dir, "crash").await;
    let (acknowledged, clients) = create_until_failure(&tenant, 20, "c");
    // Let the load build up, then kill -9 in the middle of it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before_kill = acknowledged.lock().unwrap().len();
    server.kill().await;
    for client in clients {
        client.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        before_kill > 20,
        "the load ran before the kill ({before_kill} creates)"
    );

    let server = Process::spawn(data_dir, nats).await;
    let tenant = server.tenant("crash", &tenant.token);
    assert_all_there_once(&tenant, &acknowledged).await;
    for (name, id) in acknowledged.iter().take(50) {
        let user = tenant.get(&format!("/Users/{id}")).await.expect(200);
        assert_eq!(user["userName"], name.as_str());
    }
    // Creates go on after the restart, and the acknowledged names stay taken.
    let created = tenant
        .post("/Users", &json!({"userName": "after-restart"}))
        .await;
    assert_eq!(created.status, 201);
    let response = tenant
        .request(reqwest::Method::POST, "/Users")
        .body(json!({"userName": acknowledged.keys().next().unwrap()}).to_string())
        .send()
        .await
        .unwrap();
    reply(response).await.expect_error(409, Some("uniqueness"));
    eprintln!(
        "crash test: {} creates acknowledged before SIGKILL",
        acknowledged.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_create_survives_sigkill_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    kill_under_load_and_restart(&dir.path().join("data"), None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_create_survives_sigkill_exactly_once_on_jetstream() {
    let nats = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    kill_under_load_and_restart(&dir.path().join("data"), Some(&nats.url())).await;
}

/// How far the stopped roster's aggregate reached, and the log's head.
/// The checkpoint `stored_checkpoint` reads in a stopped roster's database, and the log's head.
fn stored_and_log_heads(
    data_dir: &Path,
    stored_checkpoint: fn(&roster_engine::sled::Db) -> u64,
) -> (u64, u64) {
    let db = crate::support::open_stopped_database(data_dir);
    let stored = stored_checkpoint(&db);
    let log = roster_engine::log::EmbeddedLog::inspect(
        &db,
        &data_dir.join(roster_engine::log::WATERMARK_FILE),
    )
    .unwrap();
    (stored, log.head)
}

fn aggregate_checkpoint(db: &roster_engine::sled::Db) -> u64 {
    roster_engine::store::StateStore::stored_checkpoint(
        &db.open_tree(roster_engine::engine::AGGREGATE_TREE).unwrap(),
    )
    .unwrap()
}

fn directory_checkpoint(db: &roster_engine::sled::Db) -> u64 {
    roster_projector::DirectoryView::stored_checkpoint(db).unwrap()
}

/// How the kills of [`kill_and_compare_with_a_rebuild`] found the tree.
struct Kills {
    /// Kills that found the tree's stored checkpoint behind the log.
    behind: usize,
    /// Kills that found it behind the log but past the previous start's catch-up: written to
    /// while roster was serving, and killed with more held in memory.
    written_while_serving: usize,
}

/// Kills `roster serve [arguments]` three times, at different moments, while 16 clients create
/// users; then restarts it: every acknowledged create is there once, and `tree` (written behind
/// the acknowledgement, caught up from the log at each start) ends byte for byte equal to the
/// same tree rebuilt from the whole log.
async fn kill_and_compare_with_a_rebuild(
    tree: &str,
    arguments: &[&str],
    stored_checkpoint: fn(&roster_engine::sled::Db) -> u64,
) -> Kills {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let mut token: Option<String> = None;
    let mut acknowledged: HashMap<String, String> = HashMap::new();
    let mut kills = Kills {
        behind: 0,
        written_while_serving: 0,
    };
    let mut head_at_start = 0;
    for (round, delay) in [700u64, 1100, 1500].into_iter().enumerate() {
        let mut server = Process::spawn_with(&data_dir, arguments).await;
        let tenant = match &token {
            Some(token) => server.tenant("behind", token),
            None => {
                let tenant = server.create_tenant(&data_dir, "behind").await;
                token = Some(tenant.token.to_string());
                tenant
            }
        };
        let (acked, clients) = create_until_failure(&tenant, 16, &format!("r{round}-"));
        tokio::time::sleep(Duration::from_millis(delay)).await;
        server.kill().await;
        for client in clients {
            client.await.unwrap();
        }
        acknowledged.extend(acked.lock().unwrap().clone());
        let (stored, head) = stored_and_log_heads(&data_dir, stored_checkpoint);
        assert!(stored <= head, "{tree} at {stored}, past the log {head}");
        if stored < head {
            kills.behind += 1;
            if stored > head_at_start {
                kills.written_while_serving += 1;
            }
        }
        head_at_start = head;
    }

    // Restart: every acknowledged create is there once; stop cleanly and keep the tree.
    let mut server = Process::spawn_with(&data_dir, arguments).await;
    let tenant = server.tenant("behind", token.as_deref().unwrap());
    assert_all_there_once(&tenant, &acknowledged).await;
    let exited = server.terminate().await;
    assert!(exited.success(), "{exited:?}");
    let caught_up = crate::support::dump_tree(&data_dir, tree);

    // The same tree rebuilt from the whole log.
    {
        let db = crate::support::open_stopped_database(&data_dir);
        assert!(db.drop_tree(tree).unwrap());
        db.flush().unwrap();
    }
    let mut server = Process::spawn_with(&data_dir, arguments).await;
    let exited = server.terminate().await;
    assert!(exited.success(), "{exited:?}");
    let rebuilt = crate::support::dump_tree(&data_dir, tree);
    assert!(caught_up.len() > 100, "{tree} holds the history");
    assert!(
        caught_up == rebuilt,
        "the caught-up {tree} ({} entries) differs from the rebuilt one ({} entries)",
        caught_up.len(),
        rebuilt.len()
    );
    kills
}

/// The aggregate is held in memory and persisted behind the acknowledgement, as deltas and
/// packed blocks written by a background thread; killed while one may be in flight, it catches
/// up and equals a rebuild.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_while_the_aggregate_is_written_behind_leaves_it_equal_to_a_rebuild() {
    let kills = kill_and_compare_with_a_rebuild(
        roster_engine::engine::AGGREGATE_TREE,
        &[],
        aggregate_checkpoint,
    )
    .await;
    assert!(
        kills.behind > 0,
        "no kill found the aggregate behind the log: the test did not exercise write-behind"
    );
}

/// The directory view lives in memory and is persisted in packed blocks every
/// `--view-persist-interval` (200 ms here); killed between or during persists, it replays the
/// log from its persisted checkpoint and equals a rebuild.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_between_persists_of_the_directory_view_leaves_it_equal_to_a_rebuild() {
    let kills = kill_and_compare_with_a_rebuild(
        roster_projector::DIRECTORY_TREE,
        &["--view-persist-interval", "200ms"],
        directory_checkpoint,
    )
    .await;
    assert!(
        kills.written_while_serving > 0,
        "no kill found the view persisted while serving and behind the log: the test did not \
         exercise the resident view's persists"
    );
}
