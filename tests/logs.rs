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
use yeastar_exporter::support::clock::ManualClock;

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
    assert!(is_prometheus_duration(failing_for), "{failing_for}");
    let (since, tail) = rest.split_once(' ').unwrap();
    assert_eq!(since.len(), "2026-12-03T11:23:20Z".len(), "{since}");
    assert!(
        since.ends_with('Z') && since.as_bytes()[10] == b'T',
        "{since}"
    );
    assert_eq!(tail, named);
}

/// `/probe?target=…&debug=true`, as blackbox_exporter answers it: the probe's log lines at every
/// level (here the binary logs at info: its "listening" line tells the harness its port), the metrics it would have returned, the target's
/// settings — and no secret.
#[test]
fn debug_probes_answer_their_log_lines_metrics_and_settings() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let pbx = rt.block_on(FakePbx::start());
    let url = pbx.url();
    let spawned = spawn_exporter_env(
        &[
            "--pbx.url",
            &url,
            "--pbx.username",
            USERNAME,
            "--log.level",
            "info",
            "--no-collector.trunks",
            "--no-collector.extensions",
            "--no-collector.device",
            "--no-collector.internal_calls",
        ],
        &[("YEASTAR_EXPORTER_PBX_PASSWORD", PASSWORD)],
    );
    let base = spawned.base.clone();
    let body = rt.block_on(async {
        let r = reqwest::get(format!("{base}/probe?target=default&debug=true"))
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "text/plain; charset=utf-8");
        r.text().await.unwrap()
    });
    let (logs, rest) = body
        .strip_prefix("Logs for the probe:\n")
        .unwrap()
        .split_once("\n\n\nMetrics that would have been returned:\n")
        .unwrap();
    let (metrics, settings) = rest.split_once("\n\n\nTarget configuration:\n").unwrap();
    let named = format!("target_name=default pbx=http://{}", pbx.addr);
    // Each line without its time, the request times as N.
    let lines: Vec<String> = logs
        .lines()
        .map(|l| {
            let rest = l.split_once(' ').unwrap().1;
            match rest.split_once("elapsed_ms=") {
                Some((head, tail)) => format!(
                    "{head}elapsed_ms=N{}",
                    tail.trim_start_matches(|c: char| c.is_ascii_digit())
                ),
                None => rest.to_string(),
            }
        })
        .collect();
    let request = |endpoint: &str| {
        format!(
            "level=trace target=yeastar_exporter::pbx message=\"PBX request\" target_name=default endpoint={endpoint} outcome=success elapsed_ms=N pbx=http://{}",
            pbx.addr
        )
    };
    assert_eq!(
        lines,
        [
            format!(
                "level=debug target=yeastar_exporter::server::routes message=\"beginning probe\" timeout=5s {named}"
            ),
            request("login"),
            format!("level=debug target=yeastar_exporter::pbx message=\"logged in\" {named}"),
            request("call/query"),
            request("call/query"),
            format!(
                "level=debug target=yeastar_exporter::server::routes message=\"probe finished\" up=true {named}"
            ),
        ]
    );
    assert!(metrics.contains("\nyeastar_up 1\n"), "{metrics}");
    assert_eq!(
        settings,
        format!(
            "name: default\nurl: {url}\napi: s-series\napi_path: /api/v2.0.0\nauth: username \"api\", password <secret>\ncollectors: [calls]\ntimeout: 5s\nmax_concurrent_requests: 1\nmax_response_bytes: 16777216\nlogin_backoff: 10m\ninsecure_skip_verify: false\nevents: false\n"
        )
    );
    // The test password is the word "secret": the placeholder `<secret>` is not it.
    let shown = body.replace("<secret>", "<>");
    for secret in [PASSWORD, PASSWORD_MD5, "faketoken"] {
        assert!(!shown.contains(secret), "{secret} in the debug answer");
    }
    // The binary's own log stays at its level: none of those lines.
    spawned.signal("TERM");
    let (mut child, log) = spawned.drain();
    child.wait().unwrap();
    let log = log.join().unwrap();
    assert!(
        !log.contains("level=debug") && !log.contains("level=trace"),
        "{log}"
    );
}

/// Whether `d` is a duration as Prometheus writes one: units h, m, s, ms, each once, largest
/// first, none zero (`4m10s`, `1s5ms`, `250ms`), or `0s`.
fn is_prometheus_duration(d: &str) -> bool {
    if d == "0s" {
        return true;
    }
    let mut rest = d;
    let mut units = ["h", "m", "s", "ms"].iter().peekable();
    let mut any = false;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 || rest.starts_with('0') {
            return false;
        }
        rest = &rest[digits..];
        // The longest unit that fits here ("ms" before "m"), in order.
        loop {
            let Some(unit) = units.next() else {
                return false;
            };
            let longer = *unit == "m" && rest.starts_with("ms");
            if rest.starts_with(unit) && !longer {
                rest = &rest[unit.len()..];
                break;
            }
        }
        any = true;
    }
    any
}

#[test]
fn prometheus_durations_are_recognised() {
    for good in ["0s", "250ms", "4m10s", "1s5ms", "1h5s", "10m", "2h3m4s5ms"] {
        assert!(is_prometheus_duration(good), "{good}");
    }
    for bad in ["", "0ms", "10m0s", "5s1m", "1.5s", "ms", "3x", "1s1s"] {
        assert!(!is_prometheus_duration(bad), "{bad}");
    }
}
