//! Issue 24: a slow PBX is not a down PBX. A scraper whose deadline comes before the collection
//! ends answers with what came in — `yeastar_up` from the call queries when they are in,
//! `yeastar_collector_success 0` for each collector still out — and logs one line naming them,
//! its deadline and `--pbx.timeout`. All on paused time: the PBX's delays, the deadlines and the
//! collection's bound are tokio timers, so every instant below is exact.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use yeastar_exporter::sim::{Faults, SimConfig, Simulator};
use yeastar_exporter::support::clock::ManualClock;

const T0: u64 = 1_571_639_500;
const EMPTY: &str = r#"{"Calls":[],"status":"Success"}"#;

/// The log lines written while it lives, as the binary writes them (logfmt).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    /// Captures this thread's log lines (a current-thread runtime: every task of the test).
    fn capture() -> (Self, tracing::subscriber::DefaultGuard) {
        use tracing_subscriber::layer::SubscriberExt;
        keep_every_callsite_enabled();
        let logs = Logs::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::registry().with(yeastar_exporter::logging::layers(
            tracing_subscriber::filter::LevelFilter::INFO,
            "logfmt",
            move || writer.clone(),
        ));
        (logs, tracing::subscriber::set_default(subscriber))
    }

    /// The lines at `level=warn` from the collector, from `message=` on (no timestamp).
    fn warnings(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .filter(|l| {
                l.contains("level=warn") && l.contains("target=yeastar_exporter::collector")
            })
            .map(|l| l[l.find("message=").unwrap()..].to_string())
            .collect()
    }
}

fn slow(delay_ms: u64, body: &str) -> Vec<Reply> {
    vec![Reply::Slow(
        Duration::from_millis(delay_ms),
        Box::new(Reply::Json(body.to_string())),
    )]
}

/// Every endpoint of the default collectors answers after 0.9 s; one request at a time, so the
/// answers come in at 0.9 s (inbound), 1.8 (outbound), 2.7 (internal calls), 3.6 (trunks), 4.5
/// (extensions) and 5.4 (device: after `--pbx.timeout`'s 5 s).
async fn slow_pbx() -> FakePbx {
    let pbx = FakePbx::start().await;
    pbx.script(
        "call/query:inbound",
        slow(900, &fixture("seed-example2-inbound.json")),
    );
    pbx.script("call/query:outbound", slow(900, EMPTY));
    pbx.script(
        "extension/query_call",
        slow(900, r#"{"status":"Success","calllist":[]}"#),
    );
    pbx.script("trunk/list", slow(900, &fixture("trunk-list.json")));
    pbx.script("extension/list", slow(900, &fixture("extension-list.json")));
    pbx.script("deviceinfo/query", slow(900, &fixture("deviceinfo.json")));
    pbx
}

async fn get(url: &str, timeout: &str) -> String {
    reqwest::Client::new()
        .get(url)
        .header("X-Prometheus-Scrape-Timeout-Seconds", timeout)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// The seed's second example (two inbound calls on `siptrunk`) as the calls collector writes it
/// without the trunk list: `yeastar_up 1` and every call series.
fn call_lines() -> Vec<String> {
    fixture("seed-example2.expected")
        .lines()
        .filter(|l| !l.starts_with("yeastar_collector_success"))
        .map(str::to_string)
        .collect()
}

/// Two scrapers share one collection: one with 3 s (Prometheus's 3.5 s minus the offset), one with
/// 9.5 s. The first answers at 3 s with the call queries and internal calls in and the rest still
/// out; the second gets the collection's end at `--pbx.timeout` (5 s), where only `device` is
/// missing. The PBX was asked each thing once.
#[tokio::test(start_paused = true)]
async fn each_scraper_answers_at_its_deadline_with_what_came_in() {
    let (logs, _guard) = Logs::capture();
    let pbx = slow_pbx().await;
    let exporter = Running::start(config(&pbx.url(), &[]), ManualClock::new(T0)).await;
    let url = format!("{}/metrics", exporter.url);
    let started = tokio::time::Instant::now();
    let short = async {
        let text = get(&url, "3.5").await;
        (text, started.elapsed())
    };
    let long = async {
        let text = get(&url, "10").await;
        (text, started.elapsed())
    };
    let ((short, short_took), (long, long_took)) = tokio::join!(short, long);
    assert_eq!(short_took, Duration::from_secs(3));
    assert_eq!(long_took, Duration::from_secs(5));

    let mut want = call_lines();
    want.extend(
        [
            r#"yeastar_collector_success{collector="calls"} 1"#,
            r#"yeastar_collector_success{collector="internal_calls"} 1"#,
            r#"yeastar_collector_success{collector="trunks"} 0"#,
            r#"yeastar_collector_success{collector="extensions"} 0"#,
            r#"yeastar_collector_success{collector="device"} 0"#,
            r#"yeastar_active_calls{direction="internal"} 0"#,
            r#"yeastar_call_max_age_seconds{direction="internal"} 0"#,
        ]
        .map(String::from),
    );
    assert_eq!(sorted(target_lines(&short)), sorted(want.clone()));
    assert_eq!(must(&short, "yeastar_scrape_duration_seconds"), 3.0);

    // The long one: trunks (with a 0 per idle trunk) and extensions too; device timed out.
    let long_lines = target_lines(&long);
    for line in [
        "yeastar_up 1",
        r#"yeastar_collector_success{collector="calls"} 1"#,
        r#"yeastar_collector_success{collector="internal_calls"} 1"#,
        r#"yeastar_collector_success{collector="trunks"} 1"#,
        r#"yeastar_collector_success{collector="extensions"} 1"#,
        r#"yeastar_collector_success{collector="device"} 0"#,
        r#"yeastar_trunk_up{kind="sip",trunk="siptrunk"} 1"#,
        r#"yeastar_trunk_active_calls{direction="inbound",trunk="siptrunk"} 2"#,
        r#"yeastar_trunk_active_calls{direction="inbound",trunk="backup"} 0"#,
        r#"yeastar_extensions{status="registered"} 2"#,
    ] {
        assert!(
            long_lines.iter().any(|l| l == line),
            "{line} missing:\n{long}"
        );
    }
    assert!(!long.contains("yeastar_pbx_info"), "{long}");
    assert_eq!(must(&long, "yeastar_scrape_duration_seconds"), 5.0);
    assert_eq!(
        requests(&long, "deviceinfo/query", "timeout"),
        1.0,
        "device's request ran to the collection's bound"
    );
    for key in [
        "call/query:inbound",
        "call/query:outbound",
        "extension/query_call",
        "trunk/list",
        "extension/list",
        "deviceinfo/query",
        "login",
    ] {
        assert_eq!(pbx.count(key), 1, "{key}");
    }

    let pbx_url = pbx.url();
    assert_eq!(
        logs.warnings(),
        [
            format!(
                r#"message="scrape deadline passed before every collector answered" timed_out=trunks,extensions,device deadline=3s pbx_timeout=5s target_name=default pbx={pbx_url}"#
            ),
            format!(
                r#"message="scrape deadline passed before every collector answered" timed_out=device deadline=9.5s pbx_timeout=5s target_name=default pbx={pbx_url}"#
            ),
        ]
    );
    exporter.stop().await;
}

/// A scraper whose deadline passes before the call queries answered is `yeastar_up 0`, every
/// collector 0, and says so — the login it waited on is not cut short: it is answered after the
/// scrape, and the collection goes on with its token (one login for both scrapes).
#[tokio::test(start_paused = true)]
async fn a_deadline_during_the_login_does_not_cut_it_short() {
    let (logs, _guard) = Logs::capture();
    let pbx = slow_pbx().await;
    let token = "slowtoken0000000000000000000000";
    pbx.add_token(token);
    pbx.script(
        "login",
        slow(
            2000,
            &format!(r#"{{"status":"Success","token":"{token}","transport":"TCP"}}"#),
        ),
    );
    let exporter = Running::start(config(&pbx.url(), &[]), ManualClock::new(T0)).await;
    let url = format!("{}/metrics", exporter.url);
    let text = get(&url, "1.5").await;
    assert_eq!(must(&text, "yeastar_up"), 0.0);
    for c in ["calls", "internal_calls", "trunks", "extensions", "device"] {
        assert_eq!(
            must(
                &text,
                &format!(r#"yeastar_collector_success{{collector="{c}"}}"#)
            ),
            0.0,
            "{c}"
        );
    }
    assert_eq!(
        value(&text, r#"yeastar_pbx_logins_total{outcome="error"}"#),
        Some(0.0),
        "the login is not over"
    );
    // The login answers at 2 s, the call queries at 2.9 and 3.8 s: the collection's own result.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let target = exporter.app.targets().iter().next().unwrap().clone();
    assert!(target.last().unwrap().up, "{:?}", target.last());
    let text = get(&url, "10").await;
    assert_eq!(must(&text, "yeastar_up"), 1.0);
    assert_eq!(pbx.count("login"), 1);
    assert_eq!(
        must(&text, r#"yeastar_pbx_logins_total{outcome="success"}"#),
        1.0
    );
    let warnings = logs.warnings();
    assert_eq!(
        warnings[0],
        format!(
            r#"message="scrape deadline passed before every collector answered" timed_out=calls,internal_calls,trunks,extensions,device deadline=1s pbx_timeout=5s target_name=default pbx={}"#,
            pbx.url()
        )
    );
    exporter.stop().await;
}

/// The issue's case: a PBX answering every request in 1 s, `--pbx.timeout` 5 s, Prometheus's
/// 10 s scrape timeout. Before: every scrape `yeastar_up 0` and every collector failed. Now the
/// call queries (in at 2 and 3 s after the first scrape's login, 1 and 2 s after) make every scrape
/// up; what the 5 s do not cover (device, at 6–7 s) is named in the log.
#[tokio::test(start_paused = true)]
async fn a_pbx_answering_in_one_second_is_up() {
    let (logs, _guard) = Logs::capture();
    let clock = ManualClock::new(1_700_000_000);
    let h = Simulator::start(SimConfig::traffic(5, 20), clock.clone(), "127.0.0.1:0")
        .await
        .unwrap();
    h.sim.set_faults(Faults {
        latency: Duration::from_secs(1),
        ..Default::default()
    });
    let exporter = Running::start(sim_config(&h.url(), &[]), clock.clone()).await;
    let url = format!("{}/metrics", exporter.url);
    for i in 0..5 {
        let text = get(&url, "10").await;
        assert_eq!(must(&text, "yeastar_up"), 1.0, "scrape {i}:\n{text}");
        for (c, v) in [("calls", 1.0), ("internal_calls", 1.0), ("device", 0.0)] {
            assert_eq!(
                must(
                    &text,
                    &format!(r#"yeastar_collector_success{{collector="{c}"}}"#)
                ),
                v,
                "scrape {i}: {c}"
            );
        }
        assert!(must(&text, r#"yeastar_active_calls{direction="inbound"}"#) >= 0.0);
        tokio::time::sleep(Duration::from_secs(10)).await;
        clock.advance_secs(15);
    }
    let warnings = logs.warnings();
    assert_eq!(warnings.len(), 5, "{warnings:#?}");
    for w in &warnings {
        assert!(
            w.starts_with(r#"message="scrape deadline passed before every collector answered""#)
                && w.contains("device deadline=9.5s pbx_timeout=5s"),
            "{w}"
        );
    }
    assert_eq!(h.sim.requests("login"), 1);
    exporter.stop().await;
}

/// `yeastar_collector_duration_seconds` says when each collector's last answer came, counted from
/// the collection's start: `calls` at 1.8 s (its outbound answer), `internal_calls` 2.7, `trunks`
/// 3.6, `extensions` 4.5, and `device` at the collection's bound (5 s, timed out). A scraper that
/// answers at 3 s gives those still out the 3 s it waited.
#[tokio::test(start_paused = true)]
async fn each_collector_says_how_long_it_took() {
    let pbx = slow_pbx().await;
    let exporter = Running::start(config(&pbx.url(), &[]), ManualClock::new(T0)).await;
    let url = format!("{}/metrics", exporter.url);
    let (short, long) = tokio::join!(get(&url, "3.5"), get(&url, "10"));
    let took = |text: &str, c: &str| {
        must(
            text,
            &format!(r#"yeastar_collector_duration_seconds{{collector="{c}"}}"#),
        )
    };
    for (text, want) in [
        (&long, [1.8, 2.7, 3.6, 4.5, 5.0]),
        (&short, [1.8, 2.7, 3.0, 3.0, 3.0]),
    ] {
        let got = ["calls", "internal_calls", "trunks", "extensions", "device"]
            .map(|c| (took(text, c) * 1000.0).round() / 1000.0);
        assert_eq!(got, want, "{text}");
        // Only the collectors run: queues is off.
        assert!(!text.contains(r#"yeastar_collector_duration_seconds{collector="queues"}"#));
    }
}
