//! Issue 24: event reports are counted only from the PBX itself — on the path its last login
//! registered (a fresh 128-bit secret per login), from an address of the PBX, with the serial
//! number its `deviceinfo/query` reports. Over real sockets, the attacker on 127.0.0.2 against a
//! PBX (the simulator) on 127.0.0.1; refusals counted by reason and logged at most once a minute
//! per reason; the dedup window normalised and fed by accepted reports only.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use yeastar_exporter::sim::{SimConfig, SimHandle, Simulator};
use yeastar_exporter::support::clock::ManualClock;

/// The simulated PBX's serial number, as its `deviceinfo/query` answers it.
fn serial(sim: &SimHandle) -> String {
    sim.sim.with_model(|m| m.sn())
}

/// POSTs `body` to the receiver on 127.0.0.1:`port` at `path` from a socket bound to `from`
/// (`127.0.0.1` is the PBX's own address, `127.0.0.2` the attacker's); the answer.
async fn post_from(from: &str, port: u16, path: &str, body: &str) -> String {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let mut s = socket
        .connect(format!("127.0.0.1:{port}").parse().unwrap())
        .await
        .unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1: {port}\r\nUser-Agent: WebAPI\r\nContent-Type: application/json\r\nContent-Length:{}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body.as_bytes()).await.unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).await.unwrap();
    answer
}

/// Posts and asserts the 200 the receiver gives every report (the PBX resends otherwise).
async fn post_ok(from: &str, port: u16, path: &str, body: &str) {
    let answer = post_from(from, port, path, body).await;
    assert_eq!(
        answer, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        "{from} {path}"
    );
}

fn cdr(callid: &str, sn: Option<&str>) -> String {
    let sn = sn.map_or(String::new(), |s| format!(r#","sn":"{s}""#));
    format!(
        r#"{{"event":"NewCdr","callid":"{callid}","callduraction":"19","talkduraction":"14","srctrunkname":"","dsttrcunkname":"","status":"ANSWERED","type":"Internal"{sn}}}"#
    )
}

fn boot(sn: &str) -> String {
    format!(r#"{{"event":"BootUp","sn":"{sn}"}}"#)
}

/// A simulated PBX without traffic of its own, an exporter with HTTP events for it, its receiver;
/// the first scrape has logged in (registering the path) and asked the serial number.
struct Setup {
    sim: SimHandle,
    exporter: Running,
    rx: tokio::task::JoinHandle<()>,
    port: u16,
    clock: Arc<ManualClock>,
}

impl Setup {
    async fn start(seed: u64, extra: &[&str]) -> Self {
        let clock = ManualClock::new(1_700_000_000);
        let sim = Simulator::start(SimConfig::traffic(seed, 0), clock.clone(), "127.0.0.1:0")
            .await
            .unwrap();
        let (exporter, rx) = with_http_events(&sim.url(), clock.clone(), extra).await;
        let port: u16 = exporter
            .app
            .settings()
            .events_listen_address
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        exporter.scrape().await;
        Self {
            sim,
            exporter,
            rx,
            port,
            clock,
        }
    }

    /// The path the PBX was told to post to.
    fn path(&self) -> String {
        self.sim.sim.event_receiver().expect("registered").path
    }

    async fn stop(self) {
        self.rx.abort();
        self.exporter.stop().await;
    }
}

/// `yeastar_events_refused_total` by reason, in the order unknown_path, stale_path,
/// wrong_source, wrong_sn.
fn refused(text: &str) -> [f64; 4] {
    ["unknown_path", "stale_path", "wrong_source", "wrong_sn"].map(|r| {
        must(
            text,
            &format!(r#"yeastar_events_refused_total{{reason="{r}"}}"#),
        )
    })
}

fn completed(text: &str) -> f64 {
    must(
        text,
        r#"yeastar_calls_completed_total{direction="internal",outcome="answered"}"#,
    )
}

/// Issue 24 row 2: one forged `BootUp` with another serial number before the PBX's first report
/// used to pin that serial, so the PBX's own reports then counted 0 of 50 (and 0 of 10 after a
/// reload). Nothing is learnt from reports now: the forgeries are refused (from 127.0.0.2, from
/// the PBX's address without the path's secret, and with the secret but another serial), and the
/// PBX's 50 reports then count 50 — and 10 more after a reload that rebuilt the target.
#[tokio::test(flavor = "multi_thread")]
async fn a_forged_boot_up_before_the_first_report_pins_nothing() {
    let s = Setup::start(31, &[]).await;
    let path = s.path();
    let sn = serial(&s.sim);
    // The attacker on the LAN, even knowing the path; another sender on the PBX's address
    // without it; one with the path (leaked) but another serial number.
    post_ok("127.0.0.2", s.port, &path, &boot("ATTACKER")).await;
    post_ok("127.0.0.2", s.port, "/events/default", &boot("ATTACKER")).await;
    post_ok("127.0.0.1", s.port, "/events/default", &boot("ATTACKER")).await;
    post_ok("127.0.0.1", s.port, &path, &boot("ATTACKER")).await;
    for i in 0..50 {
        post_ok(
            "127.0.0.1",
            s.port,
            &path,
            &cdr(&format!("1700000000.{i}"), Some(&sn)),
        )
        .await;
    }
    let text = s.exporter.scrape().await;
    assert_eq!(completed(&text), 50.0);
    assert_eq!(must(&text, "yeastar_pbx_boots_total"), 0.0);
    assert_eq!(refused(&text), [1.0, 0.0, 2.0, 1.0]);
    // A reload that changes the target's settings builds a new target and client; the token and
    // the registered path carry over, so the PBX's next reports count too.
    let listen = format!("127.0.0.1:{}", s.port);
    let cfg = sim_config(
        &s.sim.url(),
        &[
            "--pbx.events",
            "--events.listen-address",
            &listen,
            "--pbx.timeout",
            "4s",
        ],
    );
    s.exporter.app.apply(cfg).unwrap();
    assert_eq!(s.sim.sim.requests("login"), 1, "the token carried over");
    for i in 50..60 {
        post_ok(
            "127.0.0.1",
            s.port,
            &path,
            &cdr(&format!("1700000000.{i}"), Some(&sn)),
        )
        .await;
    }
    let text = s.exporter.scrape().await;
    assert_eq!(completed(&text), 60.0);
    assert_eq!(refused(&text), [1.0, 0.0, 2.0, 1.0]);
    s.stop().await;
}

/// Issue 24 row 3: forged reports without `sn` (100), with the PBX's public serial (100) and
/// forged `BootUp`s (50) all counted before. From 127.0.0.2 — on the registered path itself, the
/// worst case — every one is refused as `wrong_source`; without the path's secret from the PBX's
/// own address as `unknown_path`: 0 counted, not one `yeastar_pbx_boots_total`.
#[tokio::test(flavor = "multi_thread")]
async fn forged_reports_are_refused_by_reason_and_none_counted() {
    let s = Setup::start(32, &[]).await;
    let path = s.path();
    let sn = serial(&s.sim);
    for i in 0..100 {
        post_ok(
            "127.0.0.2",
            s.port,
            &path,
            &cdr(&format!("1700000001.{i}"), None),
        )
        .await;
    }
    for i in 0..100 {
        post_ok(
            "127.0.0.2",
            s.port,
            &path,
            &cdr(&format!("1700000002.{i}"), Some(&sn)),
        )
        .await;
    }
    for _ in 0..50 {
        post_ok("127.0.0.2", s.port, &path, &boot(&sn)).await;
    }
    let guessed = format!("/events/default/{}", "0".repeat(32));
    for i in 0..10 {
        post_ok(
            "127.0.0.1",
            s.port,
            &guessed,
            &cdr(&format!("1700000003.{i}"), Some(&sn)),
        )
        .await;
    }
    let text = s.exporter.scrape().await;
    assert_eq!(refused(&text), [10.0, 0.0, 250.0, 0.0]);
    assert_eq!(events_received(&text), 0.0);
    assert_eq!(completed(&text), 0.0);
    assert_eq!(must(&text, "yeastar_pbx_boots_total"), 0.0);
    // The PBX's own report without `sn` (v1, or a v2 report that leaves it out) is taken on the
    // path and the address.
    post_ok("127.0.0.1", s.port, &path, &cdr("1700000004.1", None)).await;
    let text = s.exporter.scrape().await;
    assert_eq!(completed(&text), 1.0);
    s.stop().await;
}

/// A PBX behind NAT posts from the NAT's address: listed in `--events.source-addresses`, its
/// reports count; the list is validated with the flag named.
#[tokio::test(flavor = "multi_thread")]
async fn a_listed_nat_address_is_the_pbxs() {
    let s = Setup::start(33, &["--events.source-addresses", "127.0.0.2"]).await;
    let path = s.path();
    let sn = serial(&s.sim);
    post_ok("127.0.0.2", s.port, &path, &cdr("1700000005.1", Some(&sn))).await;
    post_ok("127.0.0.3", s.port, &path, &cdr("1700000005.2", Some(&sn))).await;
    let text = s.exporter.scrape().await;
    assert_eq!(completed(&text), 1.0);
    assert_eq!(refused(&text), [0.0, 0.0, 1.0, 0.0]);
    s.stop().await;
    use clap::Parser;
    let err = yeastar_exporter::config::Cli::try_parse_from([
        "yeastar-exporter",
        "--pbx.url",
        "http://127.0.0.1:1",
        "--pbx.username",
        "api",
        "--pbx.events",
        "--events.source-addresses",
        "127.0.0.2,pbx.example",
    ])
    .unwrap()
    .exporter
    .resolve(Some("pw".into()))
    .unwrap_err()
    .to_string();
    assert_eq!(
        err,
        "--events.source-addresses: \"pbx.example\" is not an IP address (list the addresses the PBX's event reports come from, e.g. 192.0.2.7, 2001:db8::7; no names, no ranges)"
    );
}

/// Issue 24 row 4: 1,024 forged reports used to push a counted report out of the dedup window,
/// so the PBX's resend counted twice. Refused reports never enter the window: the resend is a
/// duplicate, the call counted once.
#[tokio::test(flavor = "multi_thread")]
async fn forged_traffic_cannot_flush_the_dedup_window() {
    let s = Setup::start(34, &[]).await;
    let path = s.path();
    let sn = serial(&s.sim);
    let real = cdr("1700000006.7", Some(&sn));
    post_ok("127.0.0.1", s.port, &path, &real).await;
    for i in 0..1024 {
        post_ok(
            "127.0.0.2",
            s.port,
            &path,
            &cdr(&format!("1700000007.{i}"), Some(&sn)),
        )
        .await;
    }
    // The PBX resends (its 200 was lost).
    post_ok("127.0.0.1", s.port, &path, &real).await;
    let text = s.exporter.scrape().await;
    assert_eq!(completed(&text), 1.0);
    assert_eq!(must(&text, "yeastar_events_duplicates_total"), 1.0);
    assert_eq!(refused(&text), [0.0, 0.0, 1024.0, 0.0]);
    s.stop().await;
}

/// Issue 24 row 4: variants of one callid (padded with spaces, tabs, line breaks, NUL) used to
/// count as 6 calls. The callid is read as the PBX writes it, trimmed: one call, 5 duplicates.
/// `1700000008.3` is another call than `1700000008.30` (Asterisk's sequence number 3, not 30).
#[tokio::test(flavor = "multi_thread")]
async fn variants_of_one_callid_count_once() {
    let s = Setup::start(35, &[]).await;
    let path = s.path();
    let sn = serial(&s.sim);
    for variant in [
        "1700000008.30",
        " 1700000008.30",
        "1700000008.30 ",
        "\\t1700000008.30\\r\\n",
        "1700000008.30\\u0000",
        "\\u00001700000008.30\\u0000 ",
    ] {
        post_ok("127.0.0.1", s.port, &path, &cdr(variant, Some(&sn))).await;
    }
    let text = s.exporter.scrape().await;
    assert_eq!(completed(&text), 1.0);
    assert_eq!(must(&text, "yeastar_events_duplicates_total"), 5.0);
    post_ok("127.0.0.1", s.port, &path, &cdr("1700000008.3", Some(&sn))).await;
    let text = s.exporter.scrape().await;
    assert_eq!(completed(&text), 2.0);
    assert_eq!(must(&text, "yeastar_events_duplicates_total"), 5.0);
    s.stop().await;
}

/// Nothing is lost across a re-login: the previous path is accepted for 60 seconds after the
/// login that replaced it, then refused as `stale_path`; the new one is the registered one.
#[tokio::test(flavor = "multi_thread")]
async fn the_previous_path_is_accepted_for_a_minute_after_a_re_login() {
    let s = Setup::start(36, &[]).await;
    let old = s.path();
    let sn = serial(&s.sim);
    // The PBX forgets the token: the next scrape logs in again, with a new path.
    s.sim.sim.expire_tokens();
    s.exporter.scrape().await;
    let new = s.path();
    assert_ne!(new, old);
    assert_eq!(s.sim.sim.requests("login"), 2);
    post_ok("127.0.0.1", s.port, &old, &cdr("1700000009.1", Some(&sn))).await;
    post_ok("127.0.0.1", s.port, &new, &cdr("1700000009.2", Some(&sn))).await;
    s.clock.advance_secs(60);
    post_ok("127.0.0.1", s.port, &old, &cdr("1700000009.3", Some(&sn))).await;
    s.clock.advance_secs(1);
    post_ok("127.0.0.1", s.port, &old, &cdr("1700000009.4", Some(&sn))).await;
    post_ok("127.0.0.1", s.port, &new, &cdr("1700000009.5", Some(&sn))).await;
    let text = s.exporter.scrape().await;
    assert_eq!(completed(&text), 4.0);
    assert_eq!(refused(&text), [0.0, 1.0, 0.0, 0.0]);
    s.stop().await;
}

/// Captured log output.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Captured {
    /// The captured lines about refused reports.
    fn refusal_lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .filter(|l| l.contains("event reports refused"))
            .map(str::to_string)
            .collect()
    }
}

/// Issue 24 row 7: refused reports from one client used to log one warn line each (46,473 lines
/// in 5 s). Now at most one line a minute per target and reason, with the count since the last
/// one, naming the PBX and the source: 351 refused reports over a minute and a half, 3 lines.
/// (A current-thread runtime: the receiver runs on the thread whose log is captured.)
#[tokio::test]
async fn refusals_are_logged_once_a_minute_per_reason_with_the_count() {
    use tracing_subscriber::layer::SubscriberExt;
    keep_every_callsite_enabled();
    let log = Captured::default();
    let subscriber = tracing_subscriber::registry().with(yeastar_exporter::logging::layers(
        tracing_subscriber::filter::LevelFilter::TRACE,
        "logfmt",
        log.clone(),
    ));
    let _guard = tracing::subscriber::set_default(subscriber);
    let s = Setup::start(37, &[]).await;
    let path = s.path();
    let sn = serial(&s.sim);
    for _ in 0..200 {
        post_ok("127.0.0.2", s.port, &path, &boot(&sn)).await;
    }
    for _ in 0..100 {
        post_ok("127.0.0.1", s.port, "/events/default", &boot(&sn)).await;
    }
    s.clock.advance_secs(59);
    for _ in 0..50 {
        post_ok("127.0.0.2", s.port, &path, &boot(&sn)).await;
    }
    // A minute after the first line: the next refusal logs the 250 since it.
    s.clock.advance_secs(1);
    post_ok("127.0.0.2", s.port, &path, &boot(&sn)).await;
    let lines = log.refusal_lines();
    assert_eq!(lines.len(), 3, "{lines:#?}");
    let pbx = format!("pbx={}", s.sim.url());
    for (line, source, reason, count) in [
        (&lines[0], "127.0.0.2", "wrong_source", 1),
        (&lines[1], "127.0.0.1", "unknown_path", 1),
        (&lines[2], "127.0.0.2", "wrong_source", 250),
    ] {
        for want in [
            "level=warn".to_string(),
            pbx.clone(),
            format!("source={source}"),
            format!("reason={reason}"),
            format!("refused={count}"),
        ] {
            assert!(line.contains(&want), "{want} not in {line}");
        }
        assert!(!line.contains(&path[16..]), "the path's secret in {line}");
        // The PBX named once, by its span, as every line about a PBX names it (issue 25).
        assert!(
            line.ends_with(&format!(" target_name=default {pbx}")),
            "{line}"
        );
        assert_eq!(line.matches("pbx=").count(), 1, "{line}");
    }
    let text = s.exporter.scrape().await;
    assert_eq!(refused(&text), [100.0, 0.0, 251.0, 0.0]);
    s.stop().await;
}

/// TCP report mode: the reports come on the connection the exporter dialed to the PBX, and the
/// serial number is checked there too: a report with another `sn` than the PBX's
/// `deviceinfo/query` reports is refused as `wrong_sn`.
#[tokio::test(flavor = "multi_thread")]
async fn tcp_reports_with_another_serial_are_refused() {
    let pbx = FakePbx::start().await;
    pbx.json("deviceinfo/query", &fixture("deviceinfo.json"));
    let events = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = events.local_addr().unwrap().port().to_string();
    let (go, wait) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let (mut s, _) = events.accept().await.unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            s.read_exact(&mut byte).await.unwrap();
            head.push(byte[0]);
        }
        s.write_all(b"Response: Success\r\n\r\n").await.unwrap();
        let _ = wait.await;
        let reports = [
            boot("OTHERPBX0001"),
            cdr("1700000010.1", Some("3631A2000001")),
            cdr("1700000010.2", Some("OTHERPBX0001")),
        ];
        s.write_all(reports.join("\r\n").as_bytes()).await.unwrap();
        // Held open: the exporter reads on.
        tokio::time::sleep(std::time::Duration::from_secs(30)).await;
    });
    let cfg = config(
        &pbx.url(),
        &[
            "--pbx.events",
            "--pbx.events-method",
            "tcp",
            "--pbx.events-tcp-port",
            &port,
        ],
    );
    let exporter = Running::start(cfg, ManualClock::new(1_700_000_000)).await;
    // The first scrape logs in and asks the serial number; then the PBX's reports come.
    exporter.scrape().await;
    assert_eq!(
        pbx.count("deviceinfo/query"),
        2,
        "after the login, and the collector's"
    );
    go.send(()).unwrap();
    let mut text = String::new();
    for _ in 0..200 {
        text = exporter.scrape().await;
        if events_received(&text) + refused(&text).iter().sum::<f64>() >= 3.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(events_received(&text), 1.0);
    assert_eq!(completed(&text), 1.0);
    assert_eq!(refused(&text), [0.0, 0.0, 0.0, 2.0]);
    assert_eq!(must(&text, "yeastar_pbx_boots_total"), 0.0);
    server.abort();
    exporter.stop().await;
}
