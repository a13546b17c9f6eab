//! Issue 6: trunk, extension, device and queue health from fixture answers.

mod common;

use common::*;
use yeastar_exporter::support::clock::ManualClock;

const EMPTY: &str = r#"{"Calls":[],"status":"Success"}"#;
const T0: u64 = 1_700_000_000;

async fn pbx_with_fixtures() -> FakePbx {
    let pbx = FakePbx::start().await;
    pbx.json("call/query:inbound", EMPTY);
    pbx.json("call/query:outbound", EMPTY);
    pbx.json(
        "extension/query_call",
        r#"{"status":"Success","calllist":[]}"#,
    );
    pbx.json("trunk/list", &fixture("trunk-list.json"));
    pbx.json("extension/list", &fixture("extension-list.json"));
    pbx.json("deviceinfo/query", &fixture("deviceinfo.json"));
    pbx.json("queue/query", &fixture("queue-list.json"));
    pbx.script(
        "queue/query_status",
        vec![
            Reply::Json(fixture("queue-status-6700.json")),
            Reply::Json(fixture("queue-status-6701.json")),
        ],
    );
    pbx
}

#[tokio::test]
async fn every_endpoint_gives_its_exact_lines() {
    let pbx = pbx_with_fixtures().await;
    let exporter = Running::start(
        config(&pbx.url(), &["--collector.queues"]),
        ManualClock::new(T0),
    )
    .await;
    let text = exporter.scrape().await;
    let mut got: Vec<String> = [
        "yeastar_trunk_",
        "yeastar_extensions",
        "yeastar_pbx_",
        "yeastar_queue_",
        "yeastar_collector_success",
        "yeastar_up",
    ]
    .iter()
    .flat_map(|p| lines_with(&text, p))
    .filter(|l| !CLIENT_COUNT_FAMILIES.iter().any(|f| l.starts_with(f)))
    .collect();
    got.sort();
    let mut want: Vec<String> = fixture("health.expected")
        .lines()
        .map(str::to_string)
        .collect();
    want.sort();
    assert_eq!(got, want);
    // No extension or agent number anywhere on the page.
    for n in ["1000", "1001", "1005", "1009"] {
        assert!(!text.contains(&format!("\"{n}\"")), "{n} in a label");
    }
    assert_eq!(pbx.count("queue/query_status"), 2);
    exporter.stop().await;
}

#[tokio::test]
async fn an_unknown_uptime_form_drops_only_the_uptime() {
    let pbx = pbx_with_fixtures().await;
    pbx.json(
        "deviceinfo/query",
        &fixture("deviceinfo.json").replace("3 days, 04:05:06", "up 5 weeks"),
    );
    let exporter = Running::start(config(&pbx.url(), &[]), ManualClock::new(T0)).await;
    let text = exporter.scrape().await;
    assert_eq!(value(&text, "yeastar_pbx_uptime_seconds"), None);
    assert_eq!(
        must(&text, r#"yeastar_collector_success{collector="device"}"#),
        1.0
    );
    assert_eq!(
        must(
            &text,
            r#"yeastar_pbx_info{firmware_version="30.13.0.30",hardware_version="0003-0001-001",model="S300"}"#
        ),
        1.0
    );
    exporter.stop().await;
}

#[tokio::test]
async fn a_failing_trunk_list_leaves_the_calls_standing() {
    let pbx = pbx_with_fixtures().await;
    pbx.json("call/query:inbound", &fixture("seed-example2-inbound.json"));
    pbx.script("trunk/list", vec![Reply::Status(500, "oops".into())]);
    let exporter = Running::start(config(&pbx.url(), &[]), ManualClock::new(T0)).await;
    let text = exporter.scrape().await;
    assert_eq!(must(&text, "yeastar_up"), 1.0);
    assert_eq!(
        must(&text, r#"yeastar_collector_success{collector="trunks"}"#),
        0.0
    );
    assert_eq!(
        must(&text, r#"yeastar_collector_success{collector="calls"}"#),
        1.0
    );
    assert_eq!(
        must(
            &text,
            r#"yeastar_collector_success{collector="extensions"}"#
        ),
        1.0
    );
    assert_eq!(
        must(&text, r#"yeastar_active_calls{direction="inbound"}"#),
        2.0
    );
    assert_eq!(
        must(
            &text,
            r#"yeastar_trunk_active_calls{direction="inbound",trunk="siptrunk"}"#
        ),
        2.0
    );
    assert!(lines_with(&text, "yeastar_trunk_up").is_empty());
    exporter.stop().await;
}

#[tokio::test]
async fn disabled_collectors_send_no_request() {
    let pbx = pbx_with_fixtures().await;
    let exporter = Running::start(
        config(
            &pbx.url(),
            &[
                "--no-collector.internal_calls",
                "--no-collector.trunks",
                "--no-collector.extensions",
                "--no-collector.device",
            ],
        ),
        ManualClock::new(T0),
    )
    .await;
    let text = exporter.scrape().await;
    assert_eq!(must(&text, "yeastar_up"), 1.0);
    let mut keys = pbx.keys();
    keys.sort();
    assert_eq!(
        keys,
        vec!["call/query:inbound", "call/query:outbound", "login"]
    );
    assert_eq!(
        lines_with(&text, "yeastar_collector_success"),
        vec![r#"yeastar_collector_success{collector="calls"} 1"#]
    );
    exporter.stop().await;
}
