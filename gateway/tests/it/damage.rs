//! A damaged database is never served silently: the log's watermark (`log.watermark`) records
//! what was acknowledged, so a log that sled recovered short of it makes `roster serve` refuse to
//! start and `roster check` report it; `roster check --accept-loss` is the way past it.

use std::path::Path;
use std::process::Output;

use tokio::process::Command;

use crate::support::Process;

async fn roster(data_dir: &Path, arguments: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_roster"))
        .args(arguments)
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .output()
        .await
        .unwrap()
}

async fn check(data_dir: &Path, arguments: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_roster"))
        .arg("check")
        .args(arguments)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .await
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The last sequence `roster check` reports for the log.
fn log_head(output: &Output) -> u64 {
    let text = text(output);
    let line = text
        .lines()
        .find(|line| line.starts_with("log: "))
        .unwrap_or_else(|| panic!("no log line in {text}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

/// Writes users until the database file is a few segments long, then SIGKILLs roster.
async fn populated(data_dir: &Path) {
    let mut server = Process::spawn(data_dir, None).await;
    let tenant = server.create_tenant(data_dir, "acme").await;
    let padding = "x".repeat(2000);
    for n in 0..600 {
        let body = serde_json::json!({"userName": format!("user-{n}"), "title": padding});
        tenant.post("/Users", &body).await.expect(201);
    }
    server.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_cut_short_by_a_damaged_database_is_refused_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    populated(&data_dir).await;

    let sound = check(&data_dir, &[]).await;
    assert!(sound.status.success(), "{}", text(&sound));
    assert!(
        text(&sound).contains("ok: the log is whole"),
        "{}",
        text(&sound)
    );
    let acknowledged = log_head(&sound);
    assert!(acknowledged > 600, "{}", text(&sound));

    // One byte in the middle of sled's file, with roster stopped. sled recovers to the last
    // intact segment before it and drops the rest.
    let file = data_dir.join("db").join("db");
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x5a;
    std::fs::write(&file, &bytes).unwrap();

    let refused = roster(&data_dir, &["serve"]).await;
    assert!(!refused.status.success(), "{}", text(&refused));
    let said = text(&refused);
    assert!(
        said.contains(&format!(
            "events up to sequence {acknowledged} were acknowledged"
        )),
        "the refusal names the acknowledged sequence: {said}"
    );
    assert!(said.contains("ends at sequence"), "{said}");

    let damaged = check(&data_dir, &[]).await;
    assert_eq!(damaged.status.code(), Some(1), "{}", text(&damaged));
    let recovered = log_head(&damaged);
    assert!(recovered < acknowledged, "{}", text(&damaged));
    assert!(
        text(&damaged).contains(&format!(
            "{} acknowledged events are lost",
            acknowledged - recovered
        )),
        "{}",
        text(&damaged)
    );
    // Nothing was written by the refusals: the same verdict again.
    assert_eq!(log_head(&check(&data_dir, &[]).await), recovered);

    // An operator without a backup accepts the loss; roster then starts on the shorter log and
    // rebuilds the views that had seen more than it holds.
    let accepted = check(&data_dir, &["--accept-loss"]).await;
    assert!(accepted.status.success(), "{}", text(&accepted));
    assert!(text(&accepted).contains("accepted the log as it is"));
    let mut server = Process::spawn(&data_dir, None).await;
    let after = check_while_running(&server).await;
    assert!(after, "roster serves again after the loss was accepted");
    server.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watermark_ahead_of_the_log_stops_roster_with_both_sequences() {
    // The same refusal without relying on where sled puts bytes: a log restored from an older
    // copy of the database, with the newer watermark beside it.
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let mut server = Process::spawn(&data_dir, None).await;
    let tenant = server.create_tenant(&data_dir, "acme").await;
    tenant
        .post("/Users", &serde_json::json!({"userName": "early"}))
        .await
        .expect(201);
    server.kill().await;
    let older = dir.path().join("older-db");
    copy_dir(&data_dir.join("db"), &older);
    let early = log_head(&check(&data_dir, &[]).await);

    let mut server = Process::spawn(&data_dir, None).await;
    let tenant = server.tenant("acme", &tenant.token);
    for n in 0..5 {
        let body = serde_json::json!({"userName": format!("late-{n}")});
        tenant.post("/Users", &body).await.expect(201);
    }
    server.kill().await;
    let late = log_head(&check(&data_dir, &[]).await);
    assert!(late >= early + 5);

    std::fs::remove_dir_all(data_dir.join("db")).unwrap();
    copy_dir(&older, &data_dir.join("db"));
    let refused = roster(&data_dir, &["serve"]).await;
    assert!(!refused.status.success());
    let said = text(&refused);
    assert!(
        said.contains(&format!("ends at sequence {early}"))
            && said.contains(&format!("up to sequence {late}")),
        "{said}"
    );
}

/// Whether the running roster answers its health check.
async fn check_while_running(server: &Process) -> bool {
    let url = format!("http://{}/healthz", server.http);
    reqwest::get(url)
        .await
        .is_ok_and(|response| response.status().is_success())
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
