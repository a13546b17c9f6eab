//! Issue 5: many PBXes from one exporter — config file, /probe, reload, no SSRF.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use clap::Parser;
use common::*;
use yeastar_exporter::config::{Cli, ExporterFlags, parse_file};
use yeastar_exporter::exporter::App;
use yeastar_exporter::support::clock::ManualClock;

const EMPTY: &str = r#"{"Calls":[],"status":"Success"}"#;

fn tmpdir() -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let d = std::env::temp_dir().join(format!(
        "yeastar-exporter-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn flags(args: &[&str]) -> ExporterFlags {
    let mut v = vec!["yeastar-exporter", "--web.listen-address", "127.0.0.1:0"];
    v.extend_from_slice(args);
    Cli::try_parse_from(v).unwrap().exporter
}

fn base() -> yeastar_exporter::config::TargetDefaults {
    let f = flags(&[]);
    yeastar_exporter::config::TargetDefaults {
        api: f.pbx_api.clone(),
        api_path: f.pbx_api_path.clone().unwrap_or_default(),
        collectors: f.collectors.resolve(),
        timeout: f.pbx_timeout,
        max_concurrent_requests: f.pbx_max_concurrent_requests,
        max_response_bytes: f.pbx_max_response_bytes,
        login_backoff: f.pbx_login_backoff,
        insecure_skip_verify: false,
        proxy_url: None,
        events: false,
        events_tcp: false,
        events_tcp_port: 8333,
        events_endpoint: Default::default(),
        events_source_addresses: Vec::new(),
    }
}

#[test]
fn each_validation_rule_has_its_exact_error() {
    let dir = tmpdir();
    let pw = dir.join("pw");
    std::fs::write(&pw, "secret\n").unwrap();
    let empty = dir.join("empty");
    std::fs::write(&empty, "\n").unwrap();
    let auth = format!(
        "auth_modules:\n  main:\n    username: api\n    password_file: {}\n",
        pw.display()
    );
    let t = |body: &str| format!("{auth}targets:\n{body}");
    let cases: Vec<(String, &str)> = vec![
        (format!("{auth}targets:\n  hq:\n    url: http://10.0.0.5\n    auth: main\n    colour: red\n"),
         "cfg.yml: line 9 column 5: unknown field `colour`, expected one of url, api, api_path, auth, collectors, timeout, max_concurrent_requests, max_response_bytes, login_backoff, ca_file, insecure_skip_verify, proxy_url, events, events_tcp_port, events_source_addresses"),
        (format!("{auth}targets: {{}}\nlabels: {{}}\n"), "cfg.yml: line 6 column 1: unknown field `labels`, expected one of defaults, auth_modules, targets"),
        (auth.clone(), "targets: at least one target is required"),
        (t("  hq:\n    auth: main\n"), "targets.hq.url: required"),
        (format!("{auth}defaults:\n  url: http://10.0.0.5\ntargets:\n  hq:\n    url: http://10.0.0.6\n    auth: main\n"), "defaults.url: each target has its own url; it cannot be a default"),
        (t("  hq:\n    url: 10.0.0.5:8088\n    auth: main\n"), "targets.hq.url: \"10.0.0.5:8088\" must start with http:// or https://"),
        (t("  hq:\n    url: http://u:p@10.0.0.5\n    auth: main\n"), "targets.hq.url: \"http://u:p@10.0.0.5\" must be scheme://host[:port] only (the API path is a separate setting; credentials never go in the URL)"),
        (t("  a:\n    url: http://10.0.0.5\n    auth: main\n  b:\n    url: http://10.0.0.5/\n    auth: main\n"), "targets.b.url: same URL as target a"),
        (t("  hq:\n    url: http://10.0.0.5\n"), "targets.hq.auth: required (name one of auth_modules, or set defaults.auth)"),
        (t("  hq:\n    url: http://10.0.0.5\n    auth: other\n"), "targets.hq.auth: unknown auth module \"other\""),
        (t("  \"h q\":\n    url: http://10.0.0.5\n    auth: main\n"), "targets.h q: a target name is letters, digits, '.', '_' and '-' only"),
        (t("  hq:\n    url: http://10.0.0.5\n    auth: main\n    collectors: [calls, cdr]\n"), "targets.hq.collectors: unknown collector \"cdr\" (known: calls, internal_calls, trunks, extensions, device, queues)"),
        (t("  hq:\n    url: http://10.0.0.5\n    auth: main\n    collectors: [trunks]\n"), "targets.hq.collectors: must include calls (yeastar_up is about it)"),
        (t("  hq:\n    url: http://10.0.0.5\n    auth: main\n    timeout: 5\n"), "targets.hq.timeout: not a valid duration string: \"5\""),
        (t("  hq:\n    url: http://10.0.0.5\n    auth: main\n    timeout: 0s\n"), "targets.hq.timeout: must be greater than 0"),
        (format!("{auth}defaults:\n  login_backoff: 10x\ntargets:\n  hq:\n    url: http://10.0.0.5\n    auth: main\n"), "targets.hq.login_backoff: not a valid duration string: \"10x\""),
        (t("  hq:\n    url: http://10.0.0.5\n    auth: main\n    max_concurrent_requests: 0\n"), "targets.hq.max_concurrent_requests: must be at least 1"),
        (t("  hq:\n    url: http://10.0.0.5\n    auth: main\n    max_response_bytes: 10\n"), "targets.hq.max_response_bytes: must be at least 1024"),
        (t("  hq:\n    url: http://10.0.0.5\n    auth: main\n    ca_file: /nonexistent/ca.pem\n"), "targets.hq.ca_file: cannot read /nonexistent/ca.pem: No such file or directory (os error 2)"),
        ("auth_modules:\n  main:\n    password: x\ntargets:\n  hq:\n    url: http://10.0.0.5\n    auth: main\n".into(), "auth_modules.main.username: required (or token_file for static-token mode)"),
        ("auth_modules:\n  main:\n    username: api\ntargets:\n  hq:\n    url: http://10.0.0.5\n    auth: main\n".into(), "auth_modules.main.password_file: required (or password)"),
        ("auth_modules:\n  main:\n    username: api\n    password: x\n    password_file: /x\ntargets:\n  hq:\n    url: http://10.0.0.5\n    auth: main\n".into(), "auth_modules.main: set password_file or password, not both"),
        ("auth_modules:\n  main:\n    username: api\n    password_file: /nonexistent/pw\ntargets:\n  hq:\n    url: http://10.0.0.5\n    auth: main\n".into(), "auth_modules.main.password_file: cannot read /nonexistent/pw: No such file or directory (os error 2)"),
        (format!("auth_modules:\n  main:\n    username: api\n    password_file: {}\ntargets:\n  hq:\n    url: http://10.0.0.5\n    auth: main\n", empty.display()), ""),
        (format!("auth_modules:\n  main:\n    username: api\n    token_file: {}\ntargets:\n  hq:\n    url: http://10.0.0.5\n    auth: main\n", pw.display()), "auth_modules.main: token_file excludes username, password and password_file"),
    ];
    for (text, want) in cases {
        let got = yeastar_exporter::support::report::chain(
            &parse_file(&text, "cfg.yml", &base()).unwrap_err(),
        );
        let want = if want.is_empty() {
            format!(
                "auth_modules.main.password_file: {} is empty",
                empty.display()
            )
        } else {
            want.to_string()
        };
        assert_eq!(got, want, "for:\n{text}");
    }
    // And a good one, with defaults applied and overridden.
    let good = format!(
        "{auth}defaults:\n  auth: main\n  timeout: 3s\n  collectors: [calls, trunks]\ntargets:\n  hq:\n    url: https://10.0.0.5:8088/\n  branch-1:\n    url: http://10.1.0.5:80\n    timeout: 2s\n    collectors: [calls]\n    insecure_skip_verify: true\n"
    );
    let targets = parse_file(&good, "cfg.yml", &base()).unwrap();
    assert_eq!(targets.len(), 2);
    let hq = targets.iter().find(|t| t.client.target == "hq").unwrap();
    assert_eq!(hq.client.url, "https://10.0.0.5:8088");
    assert_eq!(hq.client.timeout, Duration::from_secs(3));
    assert!(
        hq.collectors
            .contains(yeastar_exporter::collector::CollectorKind::named("trunks").unwrap())
    );
    assert!(
        !hq.collectors
            .contains(yeastar_exporter::collector::CollectorKind::named("device").unwrap())
    );
    let b = targets
        .iter()
        .find(|t| t.client.target == "branch-1")
        .unwrap();
    assert_eq!(b.client.timeout, Duration::from_secs(2));
    assert!(b.client.insecure_skip_verify);
    assert!(
        !b.collectors
            .contains(yeastar_exporter::collector::CollectorKind::named("trunks").unwrap())
    );
    let debug = format!("{targets:?}");
    assert!(
        debug.contains("password: <secret>") && !debug.contains(PASSWORD_MD5),
        "{debug}"
    );
}

fn write_config(dir: &std::path::Path, targets: &[(&str, &str)]) -> PathBuf {
    let pw = dir.join("password");
    std::fs::write(&pw, PASSWORD).unwrap();
    let mut text = format!(
        "auth_modules:\n  main:\n    username: {USERNAME}\n    password_file: {}\ndefaults:\n  auth: main\n  collectors: [calls]\ntargets:\n",
        pw.display()
    );
    for (name, url) in targets {
        text.push_str(&format!("  {name}:\n    url: {url}\n"));
    }
    let path = dir.join("config.yml");
    std::fs::write(&path, text).unwrap();
    path
}

async fn start_with_file(path: &std::path::Path) -> Running {
    let f = flags(&["--config.file", path.to_str().unwrap()]);
    let cfg = f.load(None).unwrap();
    let loader: yeastar_exporter::exporter::Loader = Arc::new(move || f.load(None));
    let app = App::with_loader(cfg, ManualClock::new(1_700_000_100), Some(loader)).unwrap();
    Running::start_app(app).await
}

#[tokio::test]
async fn each_probe_shows_only_its_own_pbx() {
    let a = FakePbx::start().await;
    a.json("call/query:inbound", &fixture("seed-example2-inbound.json"));
    a.json("call/query:outbound", EMPTY);
    let b = FakePbx::start().await;
    b.json("call/query:inbound", &fixture("seed-example1-callid.json"));
    b.json("call/query:outbound", EMPTY);
    let dir = tmpdir();
    let path = write_config(&dir, &[("hq", &a.url()), ("branch-1", &b.url())]);
    let exporter = start_with_file(&path).await;
    let (status, hq) = exporter.get("/probe?target=hq").await;
    assert_eq!(status, 200);
    assert_eq!(
        must(&hq, r#"yeastar_active_calls{direction="inbound"}"#),
        2.0
    );
    assert!(
        !hq.contains("yeastar_exporter_"),
        "probe must not carry exporter metrics"
    );
    let (_, br) = exporter.get("/probe?target=branch-1").await;
    assert_eq!(
        must(&br, r#"yeastar_active_calls{direction="inbound"}"#),
        1.0
    );
    // By exact URL too.
    let (status, by_url) = exporter.get(&format!("/probe?target={}", b.url())).await;
    assert_eq!(status, 200);
    assert_eq!(
        must(&by_url, r#"yeastar_active_calls{direction="inbound"}"#),
        1.0
    );
    assert_eq!(
        (a.count("call/query:inbound"), b.count("call/query:inbound")),
        (1, 2)
    );
    // The target's own request and login counts go with its probe.
    assert_eq!(
        must(&by_url, r#"yeastar_pbx_logins_total{outcome="success"}"#),
        1.0
    );
    assert_eq!(
        must(
            &by_url,
            r#"yeastar_pbx_requests_total{endpoint="call/query",outcome="success"}"#
        ),
        4.0
    );
    // /metrics is the exporter's own in multi-target mode: fleet totals, no per-target series.
    let m = exporter.scrape().await;
    assert_eq!(value(&m, "yeastar_up"), None);
    assert_eq!(
        must(&m, r#"yeastar_exporter_logins_total{outcome="success"}"#),
        2.0
    );
    assert_eq!(must(&m, "yeastar_exporter_targets"), 2.0);
    assert!(
        !m.contains("target=\""),
        "per-target series on /metrics:\n{m}"
    );
    let (_, page) = exporter.get("/").await;
    assert!(
        page.contains("/probe?target=hq") && page.contains("/probe?target=branch-1"),
        "{page}"
    );
    assert_eq!(
        exporter.get("/probe").await,
        (400, "missing parameter: target\n".into())
    );
    assert_eq!(exporter.get("/probe?target=nope").await.0, 400);
    exporter.stop().await;
}

#[tokio::test]
async fn a_probe_of_an_unconfigured_url_is_refused_without_a_connection() {
    let a = FakePbx::start().await;
    let dir = tmpdir();
    let path = write_config(&dir, &[("hq", &a.url())]);
    let exporter = start_with_file(&path).await;
    let trap = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    trap.set_nonblocking(true).unwrap();
    let port = trap.local_addr().unwrap().port();
    for (target, named) in [
        (
            format!("http://127.0.0.1:{port}"),
            format!("http://127.0.0.1:{port}"),
        ),
        (
            format!("http%3A%2F%2F127.0.0.1%3A{port}"),
            format!("http://127.0.0.1:{port}"),
        ),
        (
            format!("{}/../", a.url()).replace(&a.addr.port().to_string(), &port.to_string()),
            format!("http://127.0.0.1:{port}/../"),
        ),
    ] {
        let (status, body) = exporter.get(&format!("/probe?target={target}")).await;
        assert_eq!(status, 400, "{target}");
        assert_eq!(
            body,
            format!("unknown target \"{named}\": not a configured target name or URL\n")
        );
    }
    // The kernel completes a handshake before accept(): a connection attempt would be waiting here.
    match trap.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("something connected to the unconfigured port: {other:?}"),
    }
    assert_eq!(a.keys(), Vec::<String>::new());
    exporter.stop().await;
}

#[tokio::test]
async fn reload_adds_targets_keeps_tokens_and_survives_a_bad_file() {
    let a = FakePbx::start().await;
    a.json("call/query:inbound", EMPTY);
    a.json("call/query:outbound", EMPTY);
    let b = FakePbx::start().await;
    b.json("call/query:inbound", &fixture("seed-example1-callid.json"));
    b.json("call/query:outbound", EMPTY);
    let dir = tmpdir();
    let path = write_config(&dir, &[("hq", &a.url())]);
    let exporter = start_with_file(&path).await;
    assert_eq!(exporter.get("/probe?target=hq").await.0, 200);
    assert_eq!(exporter.get("/probe?target=branch-1").await.0, 400);
    let client = reqwest::Client::new();
    let reload = || async {
        let r = client
            .post(format!("{}/-/reload", exporter.url))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    };
    write_config(&dir, &[("hq", &a.url()), ("branch-1", &b.url())]);
    assert_eq!(reload().await, (200, "configuration reloaded\n".into()));
    let (status, br) = exporter.get("/probe?target=branch-1").await;
    assert_eq!(status, 200);
    assert_eq!(
        must(&br, r#"yeastar_active_calls{direction="inbound"}"#),
        1.0
    );
    // hq did not change: its token survived.
    exporter.get("/probe?target=hq").await;
    assert_eq!(a.count("login"), 1);
    // Only hq's timeout changes: still the same PBX and credentials, so still no new login and no
    // logout.
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(&format!("url: {}\n", a.url())));
    std::fs::write(
        &path,
        text.replace(
            &format!("url: {}\n", a.url()),
            &format!("url: {}\n    timeout: 4s\n", a.url()),
        ),
    )
    .unwrap();
    assert_eq!(reload().await.0, 200);
    assert_eq!(exporter.get("/probe?target=hq").await.0, 200);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!((a.count("login"), a.count("logout")), (1, 0));
    // A bad file: 500 with the error, old config kept, gauge 0.
    std::fs::write(
        &path,
        "targets:\n  hq:\n    url: http://x\n    colour: red\n",
    )
    .unwrap();
    let (status, body) = reload().await;
    assert_eq!(status, 500);
    assert_eq!(
        body,
        format!(
            "failed to reload config: {}: line 4 column 5: unknown field `colour`, expected one of url, api, api_path, auth, collectors, timeout, max_concurrent_requests, max_response_bytes, login_backoff, ca_file, insecure_skip_verify, proxy_url, events, events_tcp_port, events_source_addresses\n",
            path.display()
        )
    );
    let m = exporter.scrape().await;
    assert_eq!(
        must(&m, "yeastar_exporter_config_last_reload_successful"),
        0.0
    );
    assert_eq!(exporter.get("/probe?target=branch-1").await.0, 200);
    assert_eq!(exporter.get("/-/reload").await.0, 405);
    // Removing a target logs it out.
    write_config(&dir, &[("branch-1", &b.url())]);
    assert_eq!(reload().await.0, 200);
    assert_eq!(exporter.get("/probe?target=hq").await.0, 400);
    for _ in 0..50 {
        if a.count("logout") == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(a.count("logout"), 1);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let m = exporter.scrape().await;
    assert_eq!(
        must(&m, "yeastar_exporter_config_last_reload_successful"),
        1.0
    );
    assert!(!m.contains(r#"target="hq""#), "{m}");
    exporter.stop().await;
}

#[test]
fn sighup_reloads_and_config_check_validates() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (a, b) = rt.block_on(async {
        let a = FakePbx::start().await;
        a.json("call/query:inbound", EMPTY);
        a.json("call/query:outbound", EMPTY);
        let b = FakePbx::start().await;
        b.json("call/query:inbound", EMPTY);
        b.json("call/query:outbound", EMPTY);
        (a, b)
    });
    let dir = tmpdir();
    let path = write_config(&dir, &[("hq", &a.url())]);
    let check = run_exporter_once(
        &["--config.file", path.to_str().unwrap(), "--config.check"],
        &[],
    );
    assert!(check.status.success());
    assert_eq!(
        String::from_utf8_lossy(&check.stdout),
        "config OK: 1 target(s)\n"
    );
    let bad = dir.join("bad.yml");
    std::fs::write(&bad, "targets:\n  hq:\n    url: ftp://x\n    auth: main\n").unwrap();
    let check = run_exporter_once(
        &["--config.file", bad.to_str().unwrap(), "--config.check"],
        &[],
    );
    assert_eq!(check.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&check.stderr).contains(
            "config invalid: targets.hq.url: \"ftp://x\" must start with http:// or https://"
        ),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );

    let Spawned {
        mut child,
        base,
        lines,
        ..
    } = spawn_exporter(&["--config.file", path.to_str().unwrap()]);
    std::thread::spawn(move || for _ in lines {});
    let probe = |t: &str| {
        let url = format!("{base}/probe?target={t}");
        rt.block_on(async { reqwest::get(url).await.unwrap().status().as_u16() })
    };
    assert_eq!(probe("branch-1"), 400);
    write_config(&dir, &[("hq", &a.url()), ("branch-1", &b.url())]);
    signal_child(&child, "HUP");
    let mut status = 0;
    for _ in 0..100 {
        status = probe("branch-1");
        if status == 200 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(status, 200);
    signal_child(&child, "TERM");
    assert!(child.wait().unwrap().success());
}

#[tokio::test]
async fn a_reload_with_new_credentials_ends_the_suspension() {
    let a = FakePbx::start().await;
    a.json("call/query:inbound", EMPTY);
    a.json("call/query:outbound", EMPTY);
    let dir = tmpdir();
    let path = write_config(&dir, &[("hq", &a.url())]);
    std::fs::write(dir.join("password"), "wrong").unwrap();
    let exporter = start_with_file(&path).await;
    let (_, probe) = exporter.get("/probe?target=hq").await;
    assert_eq!(must(&probe, "yeastar_up"), 0.0);
    let m = exporter.scrape().await;
    assert_eq!(must(&m, "yeastar_exporter_login_suspended_targets"), 1.0);
    assert_eq!(must(&probe, "yeastar_login_suspended"), 1.0);
    // Suspended: the next probe does not try.
    exporter.get("/probe?target=hq").await;
    assert_eq!(a.count("login"), 1);
    std::fs::write(dir.join("password"), PASSWORD).unwrap();
    let r = reqwest::Client::new()
        .post(format!("{}/-/reload", exporter.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let m = exporter.scrape().await;
    assert_eq!(must(&m, "yeastar_exporter_login_suspended_targets"), 0.0);
    let (_, probe) = exporter.get("/probe?target=hq").await;
    assert_eq!(must(&probe, "yeastar_up"), 1.0);
    assert_eq!(must(&probe, "yeastar_login_suspended"), 0.0);
    assert_eq!(a.count("login"), 2);
    exporter.stop().await;
}

#[tokio::test]
async fn a_ca_file_without_certificates_is_refused_with_its_name() {
    let dir = tmpdir();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, "not a certificate\n").unwrap();
    let path = write_config(&dir, &[("hq", "https://10.0.0.5:8088")]);
    let text =
        std::fs::read_to_string(&path).unwrap() + &format!("    ca_file: {}\n", ca.display());
    std::fs::write(&path, text).unwrap();
    let cfg = flags(&["--config.file", path.to_str().unwrap()])
        .load(None)
        .unwrap();
    let err = App::new(cfg, ManualClock::new(1_700_000_000)).unwrap_err();
    assert_eq!(
        yeastar_exporter::support::report::chain(&err),
        format!("ca_file {}: no PEM certificate in the file", ca.display())
    );
    let out = run_exporter_once(
        &["--config.file", path.to_str().unwrap(), "--config.check"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "yeastar-exporter: ca_file {}: no PEM certificate in the file\n",
            ca.display()
        )
    );
}

/// Issue 16: `events:` per target — off by default; `true`/`http` registers an HTTP receiver at
/// `events/<target>`; `tcp` reads the PBX's TCP port with the module's clear password; anything
/// else is refused with the field named.
#[test]
fn events_per_target_in_the_config_file() {
    let dir = tempdir("events-cfg");
    let pw = dir.join("pw");
    std::fs::write(&pw, "s3cret\n").unwrap();
    let text = format!(
        "auth_modules:\n  main:\n    username: api\n    password_file: {}\ndefaults:\n  auth: main\ntargets:\n  a:\n    url: http://10.0.0.1\n  b:\n    url: http://10.0.0.2\n    events: true\n  c:\n    url: http://10.0.0.3\n    events: tcp\n    events_tcp_port: 9999\n",
        pw.display()
    );
    let targets = parse_file(&text, "cfg.yml", &base()).unwrap();
    let by = |n: &str| targets.iter().find(|t| t.client.target == n).unwrap();
    assert_eq!(
        (
            by("a").client.events.is_none(),
            by("a").events_tcp.is_none()
        ),
        (true, true)
    );
    let b = by("b").client.events.clone().unwrap();
    assert_eq!(
        (b.port, b.url.as_str(), b.absolute),
        (8260, "events/b", false)
    );
    assert!(by("b").events_tcp.is_none());
    let c = by("c").events_tcp.clone().unwrap();
    assert_eq!(
        (c.port, c.username.as_str(), c.password.expose()),
        (9999, "api", "s3cret")
    );
    assert!(by("c").client.events.is_none());
    // The clear password never shows in Debug.
    assert!(!format!("{:?}", by("c")).contains("s3cret"));
    let bad = text.replace("events: tcp", "events: udp");
    assert_eq!(
        yeastar_exporter::support::report::chain(
            &parse_file(&bad, "cfg.yml", &base()).unwrap_err()
        ),
        "targets.c.events: \"udp\": use true, false, http or tcp"
    );
    // Issue 24: NAT addresses per target or in defaults, validated with the field named.
    let nat = text.replace(
        "    events: true\n",
        "    events: true\n    events_source_addresses: [192.0.2.7, \"2001:db8::7\"]\n",
    );
    let targets = parse_file(&nat, "cfg.yml", &base()).unwrap();
    let b = targets.iter().find(|t| t.client.target == "b").unwrap();
    assert_eq!(
        b.client.events.as_ref().unwrap().source_addresses,
        vec![
            "192.0.2.7".parse::<std::net::IpAddr>().unwrap(),
            "2001:db8::7".parse().unwrap()
        ]
    );
    for (bad, want) in [
        (
            text.replace(
                "    events: true\n",
                "    events: true\n    events_source_addresses: [192.0.2.0/24]\n",
            ),
            "targets.b.events_source_addresses: \"192.0.2.0/24\" is not an IP address (list the addresses the PBX's event reports come from, e.g. 192.0.2.7, 2001:db8::7; no names, no ranges)",
        ),
        (
            text.replace(
                "  auth: main\n",
                "  auth: main\n  events_source_addresses: [nat.example]\n",
            ),
            "defaults.events_source_addresses: \"nat.example\" is not an IP address (list the addresses the PBX's event reports come from, e.g. 192.0.2.7, 2001:db8::7; no names, no ranges)",
        ),
        (
            format!(
                "auth_modules:\n  tok:\n    token_file: {}\ntargets:\n  b:\n    url: http://10.0.0.2\n    auth: tok\n    events: true\n",
                pw.display()
            ),
            "targets.b.events: HTTP events need logins: each login registers the receiver's path with its own secret, and static-token mode never logs in (use an auth module or --pbx.username with a password)",
        ),
    ] {
        assert_eq!(
            yeastar_exporter::support::report::chain(
                &parse_file(&bad, "cfg.yml", &base()).unwrap_err()
            ),
            want,
            "{bad}"
        );
    }
}

/// `proxy_url` per target or in `defaults` (else `--pbx.proxy-url`): an `https://` target takes
/// it, a plain-HTTP one is refused with the field that set it named.
#[test]
fn proxy_url_per_target_and_in_defaults() {
    let dir = tmpdir();
    let path = write_config(&dir, &[("cloud", "https://pbx.example.com")]);
    let text = std::fs::read_to_string(&path).unwrap();
    let load = |text: String, extra: &[&str]| {
        std::fs::write(&path, text).unwrap();
        let mut args = vec!["--config.file", path.to_str().unwrap()];
        args.extend_from_slice(extra);
        flags(&args).load(None).map_err(|e| e.to_string())
    };
    let proxy = |cfg: &yeastar_exporter::config::Config| {
        cfg.targets
            .iter()
            .map(|t| t.client.proxy_url.as_ref().map(|p| p.expose().to_string()))
            .collect::<Vec<_>>()
    };
    let own = load(
        format!("{text}    proxy_url: http://proxy.example.com:3128\n"),
        &[],
    )
    .unwrap();
    assert_eq!(
        proxy(&own),
        [Some("http://proxy.example.com:3128".to_string())]
    );
    let flag = load(
        text.clone(),
        &["--pbx.proxy-url", "http://flag.example.com:8080"],
    )
    .unwrap();
    assert_eq!(
        proxy(&flag),
        [Some("http://flag.example.com:8080".to_string())]
    );
    let defaults = text.replace(
        "defaults:\n",
        "defaults:\n  proxy_url: http://proxy.example.com:3128\n",
    );
    assert_eq!(
        load(format!("{defaults}  lan:\n    url: http://10.0.0.9\n"), &[]),
        Err("defaults.proxy_url: the PBX's url is plain http://: through a proxy its login (the password's MD5) and every token would be readable there; use the PBX's https:// URL".into())
    );
    assert_eq!(
        load(format!("{text}    proxy_url: ftp://u:hunter2@proxy\n"), &[]),
        Err("targets.cloud.proxy_url: must be http://[user:password@]host:port or https://[user:password@]host:port (the proxy's address, nothing after it)".into())
    );
}
