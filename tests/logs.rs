//! Issue 25: log lines an operator can act on. Every line about a PBX names it
//! (`pbx=scheme://host:port`, never userinfo, path or query), values are words and plain lists,
//! the cause starts with what the PBX admin can do, and one `info` line says when a failing PBX
//! answers again and for how long it failed. Read from the exporter's own log output over real
//! sockets: in process at trace level (the injected clock makes the durations exact), and from
//! the real binary at info level.

mod common;

use std::io::Write;
use std::sync::{Mutex, OnceLock};

use common::*;
use tracing_subscriber::layer::SubscriberExt;
use yeastar_exporter::clock::ManualClock;

/// Everything this test binary logged, through the exporter's own layers at trace level.
static LOG: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct Sink;

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOG.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn init_log() {
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| {
        let subscriber = tracing_subscriber::registry().with(yeastar_exporter::logging::layers(
            tracing_subscriber::filter::LevelFilter::TRACE,
            "logfmt",
            || Sink,
        ));
        tracing::subscriber::set_global_default(subscriber).unwrap();
    });
}

/// The lines logged so far that carry `field`, without their `ts=` (the wall clock).
fn lines_with(field: &str) -> Vec<String> {
    let log = String::from_utf8(LOG.lock().unwrap().clone()).unwrap();
    log.lines()
        .filter(|l| l.split(' ').any(|f| f == field))
        .map(|l| {
            let (ts, rest) = l.split_once(' ').unwrap();
            assert!(ts.starts_with("ts=20") && ts.ends_with('Z'), "{l}");
            rest.to_string()
        })
        .collect()
}

const T0: u64 = 1_796_297_000;

#[tokio::test]
async fn a_failing_pbx_is_named_with_a_cause_to_act_on_and_its_recovery_says_for_how_long() {
    init_log();
    let pbx = FakePbx::start().await;
    let down = Reply::Status(503, String::new());
    pbx.script(
        "call/query:inbound",
        vec![
            down.clone(),
            down,
            Reply::Json(r#"{"status":"Success","calls":[]}"#.into()),
        ],
    );
    let clock = ManualClock::new(T0);
    let exporter = Running::start(
        config(
            &pbx.url(),
            &[
                "--no-collector.trunks",
                "--no-collector.extensions",
                "--no-collector.device",
                "--no-collector.internal_calls",
            ],
        ),
        clock.clone(),
    )
    .await;
    let named = format!("pbx=http://{}", pbx.addr);

    let text = exporter.scrape().await;
    assert_eq!(must(&text, "yeastar_up"), 0.0);
    clock.advance_secs(130);
    let text = exporter.scrape().await;
    assert_eq!(must(&text, "yeastar_up"), 0.0);
    clock.advance_secs(120);
    let text = exporter.scrape().await;
    assert_eq!(must(&text, "yeastar_up"), 1.0);

    let failed = format!(
        "level=warn target=yeastar_exporter::collector message=\"scrape failed\" cause=\"the PBX answered HTTP 503; POST call/query: HTTP status 503\" failed=calls target_name=default {named}"
    );
    let lines = lines_with(&named);
    let warned: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("level=warn"))
        .collect();
    assert_eq!(warned, [&failed, &failed], "{lines:#?}");
    let infos: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("level=info"))
        .collect();
    assert_eq!(
        infos,
        [&format!(
            "level=info target=yeastar_exporter::collector message=\"the PBX answers again\" failing_for=4m10s failing_since=2026-12-03T11:23:20Z target_name=default {named}"
        )],
        "{lines:#?}"
    );
    // Trace: each request to the PBX, in the span of its PBX, and its login.
    let traced: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("level=trace"))
        .collect();
    assert!(
        traced.contains(&&format!(
            "level=trace target=yeastar_exporter::pbx message=\"PBX request\" target_name=default endpoint=login outcome=success elapsed_ms={} {named}",
            traced
                .iter()
                .find(|l| l.contains("endpoint=login"))
                .and_then(|l| l.split("elapsed_ms=").nth(1))
                .and_then(|r| r.split(' ').next())
                .unwrap()
        )),
        "{traced:#?}"
    );
    let debug: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("level=debug"))
        .collect();
    assert_eq!(
        debug,
        [&format!(
            "level=debug target=yeastar_exporter::pbx message=\"logged in\" target_name=default {named}"
        )],
        "{lines:#?}"
    );
    // No secret anywhere, no Rust Debug quoting.
    let all = String::from_utf8(LOG.lock().unwrap().clone()).unwrap();
    for secret in [PASSWORD, PASSWORD_MD5, "faketoken"] {
        assert!(!all.contains(secret), "{secret} in the log");
    }
    assert!(!all.contains("\\'") && !all.contains("[\\\""), "{all}");
    exporter.stop().await;
}

#[tokio::test]
async fn a_refused_connection_says_so_first_and_keeps_the_library_words() {
    init_log();
    let port = free_port();
    let clock = ManualClock::new(T0);
    let url = format!("http://127.0.0.1:{port}/");
    let exporter = Running::start(config(&url, &[]), clock.clone()).await;
    let text = exporter.scrape().await;
    assert_eq!(must(&text, "yeastar_up"), 0.0);
    let named = format!("pbx=http://127.0.0.1:{port}");
    let warned: Vec<String> = lines_with(&named)
        .into_iter()
        .filter(|l| l.starts_with("level=warn"))
        .collect();
    assert_eq!(
        warned,
        [format!(
            "level=warn target=yeastar_exporter::collector message=\"scrape failed\" cause=\"cannot connect to the PBX (connection refused): is it up, and is this its API port?; POST login: connection failed: Connection refused (os error 111)\" failed=calls,internal_calls,trunks,extensions,device target_name=default {named}"
        )]
    );
    exporter.stop().await;
}

/// The real binary at info level: the failure line names the PBX (a multi-target config, so the
/// target's name alone would not say which PBX), and its recovery is one info line.
#[test]
fn the_binary_names_the_pbx_and_says_when_it_answers_again() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let pbx = rt.block_on(FakePbx::start());
    let down = Reply::Status(503, String::new());
    pbx.script(
        "call/query:inbound",
        vec![
            down,
            Reply::Json(r#"{"status":"Success","calls":[]}"#.into()),
        ],
    );
    let dir = tempdir("logs-binary");
    let cfg = dir.join("pbxes.yml");
    std::fs::write(
        &cfg,
        format!(
            "auth_modules:\n  main:\n    username: {USERNAME}\n    password: {PASSWORD}\n\
             targets:\n  office:\n    url: {url}\n    auth: main\n    collectors: [calls]\n",
            url = pbx.url(),
        ),
    )
    .unwrap();
    let spawned = spawn_exporter(&[
        "--config.file",
        cfg.to_str().unwrap(),
        "--log.level",
        "info",
    ]);
    let base = spawned.base.clone();
    let probe = |rt: &tokio::runtime::Runtime| {
        rt.block_on(async {
            reqwest::get(format!("{base}/probe?target=office"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        })
    };
    assert!(probe(&rt).contains("yeastar_up 0"));
    assert!(probe(&rt).contains("yeastar_up 1"));
    spawned.signal("TERM");
    let (mut child, log) = spawned.drain();
    child.wait().unwrap();
    let log = log.join().unwrap();
    let named = format!("target_name=office pbx=http://{}", pbx.addr);
    let about: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("pbx=http://127.0.0.1"))
        .map(|l| l.split_once(' ').unwrap().1)
        .collect();
    assert_eq!(about.len(), 2, "{log}");
    assert_eq!(
        about[0],
        format!(
            "level=warn target=yeastar_exporter::collector message=\"scrape failed\" cause=\"the PBX answered HTTP 503; POST call/query: HTTP status 503\" failed=calls {named}"
        )
    );
    // The wall clock decides how long it failed: its words, exactly, in Prometheus's form.
    let info = about[1];
    let (head, rest) = info.split_once(" failing_for=").unwrap();
    assert_eq!(
        head,
        "level=info target=yeastar_exporter::collector message=\"the PBX answers again\""
    );
    let (failing_for, rest) = rest.split_once(" failing_since=").unwrap();
    assert!(
        failing_for.ends_with("ms") || failing_for.ends_with('s'),
        "{failing_for}"
    );
    assert!(
        failing_for[..failing_for.len() - 1]
            .trim_end_matches('m')
            .chars()
            .all(|c| c.is_ascii_digit() || c == 'm'),
        "{failing_for}"
    );
    let (since, tail) = rest.split_once(' ').unwrap();
    assert_eq!(since.len(), "2026-12-03T11:23:20Z".len(), "{since}");
    assert!(
        since.ends_with('Z') && since.as_bytes()[10] == b'T',
        "{since}"
    );
    assert_eq!(tail, named);
}
