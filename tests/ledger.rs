//! Issue 24: the login ledger holds against local faults — a symlink planted at its temporary
//! file, a umask of 000, a clock stepped back a day, a huge or padded file, stale hosts — since
//! whoever resets it resets the login budget that keeps the PBX from locking the exporter out.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::*;
use yeastar_exporter::pbx::LoginLedger;
use yeastar_exporter::pbx::ledger::{Failure, MAX_FILE_BYTES, STATE_FILE};
use yeastar_exporter::support::clock::ManualClock;

const T0: u64 = 1_700_000_000;
const NOW_MS: u64 = T0 * 1000;
const DAY_MS: u64 = 86_400_000;

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}

/// The ledger's hosts as the file holds them.
fn hosts_in(dir: &Path) -> Vec<String> {
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join(STATE_FILE)).unwrap()).unwrap();
    v["hosts"].as_object().unwrap().keys().cloned().collect()
}

/// A symlink planted at `login-ledger.json.tmp` (pointing at a file the exporter's user may
/// write) is removed, never followed: its target keeps its bytes, at start and at every write.
#[test]
fn a_planted_symlink_is_never_followed() {
    let dir = tempdir("ledger-symlink");
    let victim = dir.join("victim.txt");
    std::fs::write(&victim, "precious\n").unwrap();
    let state = dir.join("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
    let tmp = state.join("login-ledger.json.tmp");
    std::os::unix::fs::symlink(&victim, &tmp).unwrap();
    let ledger = LoginLedger::open(&state, NOW_MS, MAX_FILE_BYTES).unwrap();
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    // Planted again before a write (no runtime here: the write is inline).
    std::os::unix::fs::symlink(&victim, &tmp).unwrap();
    let id = ledger.begin("10.0.0.5", NOW_MS);
    ledger.fail("10.0.0.5", id, Failure::Unseen, NOW_MS + 1_000);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    assert!(!tmp.exists(), "the temporary file was left behind");
    let file = state.join(STATE_FILE);
    assert!(std::fs::symlink_metadata(&file).unwrap().is_file());
    assert_eq!(mode(&file), 0o600);
    assert_eq!(hosts_in(&state), ["10.0.0.5"]);
}

/// Starts the real binary under `umask 000` with `state` as its state directory, waits until it
/// listens, stops it; its log before listening.
fn run_under_umask_000(state: &Path) -> Vec<String> {
    use std::io::BufRead;
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg("umask 000; exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_yeastar-exporter"))
        .args([
            "--pbx.url",
            "http://127.0.0.1:1",
            "--pbx.username",
            "api",
            "--pbx.state-dir",
            state.to_str().unwrap(),
            "--web.listen-address",
            "127.0.0.1:0",
        ])
        .env("YEASTAR_EXPORTER_PBX_PASSWORD", "pw")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut log = Vec::new();
    loop {
        let line = lines.next().expect("exited early").unwrap();
        if line.contains("metrics=http://") {
            break;
        }
        log.push(line);
    }
    child.kill().unwrap();
    child.wait().unwrap();
    log
}

/// Under umask 000 the folder the exporter creates is 0700 (its missing parents too) and the file
/// 0600; an existing folder others may write to keeps its mode (it is the operator's) and is
/// warned about, and a file left 0666 is 0600 after the start's write.
#[test]
fn umask_000_still_gives_a_private_folder_and_file() {
    let dir = tempdir("ledger-umask");
    let state = dir.join("new").join("state");
    let log = run_under_umask_000(&state);
    assert_eq!(mode(&dir.join("new")), 0o700);
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&state.join(STATE_FILE)), 0o600);
    assert!(
        !log.iter().any(|l| l.contains("writable by other users")),
        "{log:?}"
    );
    // An existing folder writable by all, with a file writable by all in it.
    let shared = dir.join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::write(shared.join(STATE_FILE), r#"{"version":1,"hosts":{}}"#).unwrap();
    std::fs::set_permissions(
        shared.join(STATE_FILE),
        std::fs::Permissions::from_mode(0o666),
    )
    .unwrap();
    let log = run_under_umask_000(&shared);
    assert_eq!(mode(&shared), 0o777, "an existing folder keeps its mode");
    assert_eq!(mode(&shared.join(STATE_FILE)), 0o600);
    let warning = log
        .iter()
        .find(|l| l.contains("level=warn") && l.contains("writable by other users"))
        .unwrap_or_else(|| panic!("no warning: {log:?}"));
    assert!(
        warning.contains(&format!("path={}", shared.display())) && warning.contains("mode=0777"),
        "{warning}"
    );
    assert!(
        warning.contains("the login ledger folder (--pbx.state-dir) is writable by other users: any of them can delete the ledger and so reset the login budget; make it private (chmod 700)"),
        "{warning}"
    );
}

/// A ledger whose entries are stamped a day ahead (the clock was stepped back a day since they
/// were written): they count from now and age out 10 minutes from now — the issue measured "next
/// attempt in 87000s".
#[tokio::test]
async fn entries_stamped_in_the_future_are_clamped_to_now() {
    let dir = tempdir("ledger-future");
    let ahead = NOW_MS + DAY_MS;
    std::fs::write(
        dir.join(STATE_FILE),
        format!(
            r#"{{"version":1,"hosts":{{"127.0.0.1":[{{"id":0,"at_ms":{ahead},"kind":"unseen"}},{{"id":1,"at_ms":{},"kind":"unseen"}}]}}}}"#,
            ahead + 1_000
        ),
    )
    .unwrap();
    let ledger = LoginLedger::open(&dir, NOW_MS, MAX_FILE_BYTES).unwrap();
    assert_eq!(ledger.allowed("127.0.0.1", NOW_MS), Err(NOW_MS + 600_000));
    // On disk as clamped.
    let text = std::fs::read_to_string(dir.join(STATE_FILE)).unwrap();
    assert_eq!(
        text,
        format!(
            r#"{{"version":1,"hosts":{{"127.0.0.1":[{{"id":0,"at_ms":{NOW_MS},"kind":"unseen"}},{{"id":1,"at_ms":{NOW_MS},"kind":"unseen"}}]}}}}"#
        )
    );
    drop(ledger);
    // Through the exporter: the scrape says 600 s, and after 10 minutes it logs in.
    let pbx = FakePbx::start().await;
    pbx.json("call/query:inbound", r#"{"status":"Success","Calls":[]}"#);
    pbx.json("call/query:outbound", r#"{"status":"Success","Calls":[]}"#);
    std::fs::write(
        dir.join(STATE_FILE),
        format!(
            r#"{{"version":1,"hosts":{{"127.0.0.1":[{{"id":0,"at_ms":{ahead},"kind":"unseen"}},{{"id":1,"at_ms":{ahead},"kind":"rejected"}}]}}}}"#
        ),
    )
    .unwrap();
    let clock = ManualClock::new(T0);
    let exporter = Running::start(
        config(&pbx.url(), &["--pbx.state-dir", dir.to_str().unwrap()]),
        clock.clone(),
    )
    .await;
    let text = exporter.scrape().await;
    assert_eq!(must(&text, "yeastar_up"), 0.0);
    assert_eq!(must(&text, "yeastar_login_suspended"), 1.0);
    let target = exporter.app.targets().iter().next().unwrap().clone();
    assert_eq!(
        target.last().unwrap().error.as_deref(),
        Some(
            "logins suspended (a login failed, or its outcome was not seen); next attempt in 600s"
        )
    );
    assert_eq!(pbx.count("login"), 0);
    // The rejection's back-off (10 minutes + up to 10 %) runs from now too, not from a day ahead.
    clock.advance_secs(661);
    let text = exporter.scrape().await;
    assert_eq!(must(&text, "yeastar_up"), 1.0);
    assert_eq!(pbx.count("login"), 1);
    exporter.stop().await;
}

/// The exact words the exporter exits with for a state file over the limit.
fn too_large(path: &Path) -> String {
    format!(
        "yeastar-exporter: --pbx.state-dir: {} is larger than 1048576 bytes, far more than the login ledger ever holds (a few entries per PBX), so it was not written by this exporter and is not read; delete it or move it aside and start again (the PBX may still count failed logins from the last 10 minutes)\n",
        path.display()
    )
}

fn start_with_state(dir: &Path) -> std::process::Output {
    run_exporter_once(
        &[
            "--pbx.url",
            "http://127.0.0.1:1",
            "--pbx.username",
            "api",
            "--pbx.state-dir",
            dir.to_str().unwrap(),
            "--web.listen-address",
            "127.0.0.1:0",
        ],
        &[("YEASTAR_EXPORTER_PBX_PASSWORD", "pw")],
    )
}

/// A 100 MiB file, and a well-formed one with 300,000 hosts (the issue measured 108.7 and
/// 187.8 MiB of RSS reading them whole): refused at start, the file named and what to do said,
/// and left as it was.
#[test]
fn a_huge_ledger_file_is_refused_at_start() {
    let dir = tempdir("ledger-huge");
    let path = dir.join(STATE_FILE);
    let f = std::fs::File::create(&path).unwrap();
    f.set_len(100 << 20).unwrap();
    drop(f);
    let out = start_with_state(&dir);
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .last()
            .map(|l| format!("{l}\n")),
        Some(too_large(&path))
    );
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 100 << 20);
    // 300,000 hosts, each with one entry from now: valid JSON, about 20 MB.
    let mut text = String::from(r#"{"version":1,"hosts":{"#);
    for i in 0..300_000u32 {
        if i > 0 {
            text.push(',');
        }
        text.push_str(&format!(
            r#""10.{}.{}.{}":[{{"id":{i},"at_ms":{NOW_MS},"kind":"unseen"}}]"#,
            i >> 16,
            (i >> 8) & 0xff,
            i & 0xff
        ));
    }
    text.push_str("}}");
    assert!(text.len() as u64 > MAX_FILE_BYTES);
    std::fs::write(&path, &text).unwrap();
    let out = start_with_state(&dir);
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .last()
            .map(|l| format!("{l}\n")),
        Some(too_large(&path))
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    // Just under the limit (padding is whitespace): read.
    let mut padded = String::from(r#"{"version":1,"hosts":{}}"#);
    padded.push_str(&" ".repeat(MAX_FILE_BYTES as usize - padded.len()));
    std::fs::write(&path, &padded).unwrap();
    let ledger = LoginLedger::open(&dir, NOW_MS, MAX_FILE_BYTES).unwrap();
    assert_eq!(ledger.count("10.0.0.1", NOW_MS), 0);
    // One byte over: refused.
    padded.push(' ');
    std::fs::write(&path, &padded).unwrap();
    let err = LoginLedger::open(&dir, NOW_MS, MAX_FILE_BYTES)
        .unwrap_err()
        .to_string();
    assert_eq!(
        format!("yeastar-exporter: {err}\n"),
        too_large(&path),
        "{err}"
    );
    // More targets allow more: 512 bytes each.
    assert_eq!(
        yeastar_exporter::pbx::ledger::file_limit(10),
        MAX_FILE_BYTES
    );
    assert_eq!(yeastar_exporter::pbx::ledger::file_limit(10_000), 5_120_000);
}

/// Hosts without an attempt in the last 10 minutes are dropped on every write: 1,000 stale
/// hosts and one fresh one in the file at start leave the fresh one only; once it ages out too,
/// the next write leaves none.
#[test]
fn stale_hosts_are_pruned_on_every_write() {
    let dir = tempdir("ledger-prune");
    let mut text = String::from(r#"{"version":1,"hosts":{"#);
    for i in 0..1_000u32 {
        text.push_str(&format!(
            r#""stale-{i}":[{{"id":{i},"at_ms":{},"kind":"rejected"}}],"#,
            NOW_MS - 601_000
        ));
    }
    text.push_str(&format!(
        r#""fresh":[{{"id":5000,"at_ms":{},"kind":"unseen"}}]}}}}"#,
        NOW_MS - 1_000
    ));
    std::fs::write(dir.join(STATE_FILE), &text).unwrap();
    let ledger = LoginLedger::open(&dir, NOW_MS, MAX_FILE_BYTES).unwrap();
    assert_eq!(hosts_in(&dir), ["fresh"]);
    // Ten minutes on, another host's attempt is written: "fresh" has aged out and goes.
    let later = NOW_MS + 600_000;
    let id = ledger.begin("other", later);
    assert_eq!(hosts_in(&dir), ["other"]);
    ledger.erase("other", id, later);
    assert!(hosts_in(&dir).is_empty());
}
