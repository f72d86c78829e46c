//! Everything but the log is a cache: deleting the aggregate store or a view and restarting
//! rebuilds it byte for byte from the log.

use serde_json::json;

use crate::support::{Stack, dump_tree, open_stopped_database, patch_op};

/// Runs a little history with every kind of user change.
async fn history(stack: &Stack) {
    let acme = stack.tenant("acme").await;
    let other = stack.tenant("other").await;
    let mut ids = Vec::new();
    for n in 0..30 {
        let created = acme
            .post(
                "/Users",
                &json!({"userName": format!("user-{n}"), "externalId": format!("ext-{n}"),
                        "emails": [{"value": format!("u{n}@acme.io"), "type": "work"}]}),
            )
            .await
            .expect(201);
        ids.push(created["id"].as_str().unwrap().to_owned());
    }
    for id in &ids[0..10] {
        acme.patch(
            &format!("/Users/{id}"),
            &patch_op(json!([{"op": "replace", "path": "active", "value": false},
                             {"op": "add", "path": "title", "value": "gone"}])),
        )
        .await
        .expect(200);
    }
    for id in &ids[10..15] {
        assert_eq!(acme.delete(&format!("/Users/{id}")).await.status, 204);
    }
    acme.put(
        &format!("/Users/{}", ids[20]),
        &json!({"userName": "renamed", "externalId": "ext-new"}),
    )
    .await
    .expect(200);
    other.create_user("user-0").await;
}

async fn rebuilds_identically(tree: &str) {
    let stack = Stack::start().await;
    history(&stack).await;
    let data_dir = stack.data_dir();
    let dir = {
        let Stack { running, dir, .. } = stack;
        running.shutdown().await;
        dir
    };
    let before = dump_tree(&data_dir, tree);
    assert!(before.len() > 50, "{tree} holds the history");
    {
        let db = open_stopped_database(&data_dir);
        assert!(db.drop_tree(tree).unwrap(), "{tree} existed");
        db.flush().unwrap();
    }
    let stack = Stack::start_in(dir, None).await;
    let acme = roster_engine::domain::TenantName::parse("acme").unwrap();
    let acme_users = stack
        .running
        .state
        .directory
        .store()
        .users_after(&acme, None)
        .count();
    assert_eq!(acme_users, 25);
    let dir = {
        let Stack { running, dir, .. } = stack;
        running.shutdown().await;
        dir
    };
    let after = dump_tree(&data_dir, tree);
    let first_difference = before
        .iter()
        .zip(&after)
        .find(|(left, right)| left != right)
        .map(|(left, right)| {
            format!(
                "{} = {} vs {} = {}",
                String::from_utf8_lossy(&left.0),
                String::from_utf8_lossy(&left.1),
                String::from_utf8_lossy(&right.0),
                String::from_utf8_lossy(&right.1)
            )
        });
    assert!(
        before == after,
        "{tree} rebuilt from the log differs: {} entries before, {} after; first difference: {first_difference:?}",
        before.len(),
        after.len()
    );
    drop(dir);
}

#[tokio::test]
async fn deleting_the_aggregate_store_and_restarting_rebuilds_the_same_state() {
    rebuilds_identically("aggregate").await;
}

#[tokio::test]
async fn deleting_the_directory_view_and_restarting_rebuilds_the_same_view() {
    rebuilds_identically("view.directory").await;
}

#[tokio::test]
async fn after_a_rebuild_the_rules_still_hold() {
    let stack = Stack::start().await;
    history(&stack).await;
    let token = stack.tenant("probe").await.token;
    let data_dir = stack.data_dir();
    let dir = {
        let Stack { running, dir, .. } = stack;
        running.shutdown().await;
        dir
    };
    {
        let db = open_stopped_database(&data_dir);
        db.drop_tree("aggregate").unwrap();
        db.flush().unwrap();
    }
    let stack = Stack::start_in(dir, None).await;
    let mut probe = stack.tenant("probe-2").await;
    probe.base = probe.base.replace("/probe-2", "/probe");
    probe.token = token;
    probe.get("/Users").await.expect(200);
    let mut acme = probe.clone();
    acme.base = acme.base.replace("/probe", "/acme");
    acme.get("/Users").await.expect_error(401, None);
}

/// `roster` run to completion on `data_dir`.
fn roster(data_dir: &std::path::Path, arguments: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_roster"))
        .args(arguments)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .unwrap()
}

#[cfg_attr(
    not(feature = "tools"),
    ignore = "`roster bench seed` is a client tool"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_killed_halfway_leaves_roster_answering_exactly_as_before() {
    let stack = Stack::start().await;
    history(&stack).await;
    let data_dir = stack.data_dir();
    let mut dir = {
        let Stack { running, dir, .. } = stack;
        running.shutdown().await;
        dir
    };
    // More history, so that a rebuild takes a while to kill in the middle of.
    let seeded = roster(&data_dir, &["bench", "seed", "--events", "4000"]);
    assert!(
        seeded.status.success(),
        "{}",
        String::from_utf8_lossy(&seeded.stderr)
    );
    // Views caught up with the seeded history (a start brings them up, a shutdown keeps them).
    let stack = Stack::start_in(dir, None).await;
    dir = {
        let Stack { running, dir, .. } = stack;
        running.shutdown().await;
        dir
    };
    let trees = ["aggregate", "view.directory", "view.audit"];
    let before: Vec<_> = trees
        .iter()
        .map(|tree| dump_tree(&data_dir, tree))
        .collect();
    // The audit trail packs 64 records to a key; the others hold a key or more per entity.
    let least = [100, 100, 20];
    assert!(
        before
            .iter()
            .zip(least)
            .all(|(entries, least)| entries.len() > least)
    );

    for delay_ms in [150, 400, 900] {
        let mut rebuild = std::process::Command::new(env!("CARGO_BIN_EXE_roster"))
            .args(["rebuild", "--aggregate", "--data-dir"])
            .arg(&data_dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(delay_ms)).await;
        let _ = rebuild.kill(); // SIGKILL; it may have finished already
        rebuild.wait().unwrap();

        // The restarted roster catches the aggregate and the views up from wherever the
        // rebuild left them, and ends exactly where it was.
        let stack = Stack::start_in(dir, None).await;
        let acme = roster_engine::domain::TenantName::parse("acme").unwrap();
        let acme_users = stack
            .running
            .state
            .directory
            .store()
            .users_after(&acme, None)
            .count();
        assert_eq!(acme_users, 25, "after a rebuild killed at {delay_ms} ms");
        dir = {
            let Stack { running, dir, .. } = stack;
            running.shutdown().await;
            dir
        };
        for (tree, entries) in trees.iter().zip(&before) {
            assert!(
                dump_tree(&data_dir, tree) == *entries,
                "{tree} differs after a rebuild killed at {delay_ms} ms"
            );
        }
    }
    drop(dir);
}

/// Gives the aggregate and the directory view 4 KiB of memory for their blocks: the rest
/// stays on disk and is read back when a request needs it.
fn little_memory(config: &mut roster_gateway::app::Config) {
    config.view_memory_bytes = 4096;
    config.aggregate_memory_bytes = 4096;
}

/// With almost no memory for blocks, roster reads and writes through blocks read back from disk
/// and answers as it did with everything in memory, across restarts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_almost_no_memory_for_blocks_everything_reads_and_writes_from_disk() {
    let stack = Stack::start_with(little_memory).await;
    let tenant = stack.tenant("acme").await;
    let mut ids = Vec::new();
    for index in 0..200 {
        ids.push(tenant.create_user(&format!("user-{index:03}")).await);
    }
    let group = tenant.create_group("engineering", &ids[..50]).await;
    // Stopped cleanly, everything is written; started again, blocks past 4 KiB stay on disk.
    let stack = stack.restart_with(little_memory).await;
    let tenant = tenant.via(stack.running.http_addr);
    assert_eq!(tenant.all_users().await.len(), 200);
    for id in ids.iter().step_by(17) {
        tenant.get(&format!("/Users/{id}")).await.expect(200);
    }
    let found = tenant.find("userName eq \"user-123\"").await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["id"], ids[123].as_str());
    // Writes into blocks that were on disk: decided against them, applied to them.
    for id in &ids[150..] {
        tenant
            .patch(
                &format!("/Users/{id}"),
                &patch_op(json!([{"op": "replace", "path": "active", "value": false}])),
            )
            .await
            .expect(200);
    }
    tenant
        .delete(&format!("/Users/{}", ids[0]))
        .await
        .expect(204);
    let added: Vec<_> = ids[60..70].iter().map(|id| json!({"value": id})).collect();
    tenant
        .patch(
            &format!("/Groups/{group}"),
            &patch_op(json!([{"op": "add", "path": "members", "value": added}])),
        )
        .await
        .expect(204);
    // A name freed by the delete is free in the aggregate too.
    tenant.create_user("user-000").await;
    let users = tenant.all_users().await;
    let members = tenant.group_members(&group).await;
    assert_eq!(users.len(), 200);
    assert_eq!(members.len(), 59);
    assert_eq!(
        tenant.find("active eq false").await.len(),
        50,
        "the deactivated users"
    );
    let stack = stack.restart_with(little_memory).await;
    let tenant = tenant.via(stack.running.http_addr);
    assert_eq!(tenant.all_users().await, users);
    assert_eq!(tenant.group_members(&group).await, members);
}
