//! Issue 24: what real PBXes wrote. Older firmware's field names (`extnumber`, `queuenumber`), the
//! 2017 status words without spaces (`nosim`, `poweroff`, …) and in lower case, and the v1 table's
//! uptime (`3:25:04 AM`) give exactly the lines the v2 spellings give; an entry the exporter cannot
//! read fails its collector with the count in the cause, never a silent drop.

mod common;

use common::*;
use yeastar_exporter::support::clock::ManualClock;

const EMPTY: &str = r#"{"Calls":[],"status":"Success"}"#;
const T0: u64 = 1_700_000_000;

/// A fake PBX answering with the fixtures of one spelling (`v1-…` or `v2-…`).
async fn pbx_speaking(spelling: &str) -> FakePbx {
    let pbx = FakePbx::start().await;
    pbx.json("call/query:inbound", EMPTY);
    pbx.json("call/query:outbound", EMPTY);
    pbx.json(
        "extension/query_call",
        r#"{"status":"Success","calllist":[]}"#,
    );
    for (endpoint, file) in [
        ("trunk/list", "trunk-list.json"),
        ("extension/list", "extension-list.json"),
        ("deviceinfo/query", "deviceinfo.json"),
        ("queue/query", "queue-list.json"),
        ("queue/query_status", "queue-status-6700.json"),
    ] {
        pbx.json(endpoint, &fixture(&format!("{spelling}-{file}")));
    }
    pbx
}

/// The health lines of a page (as `health.rs` reads them), sorted.
fn health_lines(text: &str) -> Vec<String> {
    let mut got: Vec<String> = [
        "yeastar_trunk_",
        "yeastar_extensions",
        "yeastar_pbx_",
        "yeastar_queue_",
        "yeastar_collector_success",
        "yeastar_up",
    ]
    .iter()
    .flat_map(|p| lines_with(text, p))
    .filter(|l| !CLIENT_COUNT_FAMILIES.iter().any(|f| l.starts_with(f)))
    .collect();
    got.sort();
    got
}

#[tokio::test]
async fn older_firmware_spellings_give_the_lines_of_the_new_ones() {
    let want: Vec<String> = fixture("firmware-spellings.expected")
        .lines()
        .map(str::to_string)
        .collect();
    for spelling in ["v1", "v2"] {
        let pbx = pbx_speaking(spelling).await;
        let exporter = Running::start(
            config(&pbx.url(), &["--collector.queues"]),
            ManualClock::new(T0),
        )
        .await;
        let text = exporter.scrape().await;
        assert_eq!(health_lines(&text), want, "{spelling}");
        assert_eq!(pbx.count("queue/query_status"), 1, "{spelling}");
        for n in ["1000", "1001", "1005"] {
            assert!(!text.contains(&format!("\"{n}\"")), "{n} in a label");
        }
        exporter.stop().await;
    }
}

#[tokio::test]
async fn unreadable_entries_fail_their_collector_with_the_count() {
    let pbx = pbx_speaking("v2").await;
    pbx.json(
        "trunk/list",
        r#"{"status":"Success","trunklist":[{"trunkname":"siptrunk","type":"SIP","status":"Registered"},
            {"name":"renamed","type":"SIP","status":"Registered"}]}"#,
    );
    pbx.json(
        "extension/list",
        r#"{"status":"Success","extlist":[{"number":"1000","status":"Registered"},{"number":"1001"}]}"#,
    );
    pbx.json(
        "queue/query",
        r#"{"status":"Success","queues":[{"number":"6700"},{"id":"6701","queuename":"Support"}]}"#,
    );
    let exporter = Running::start(
        config(&pbx.url(), &["--collector.queues"]),
        ManualClock::new(T0),
    )
    .await;
    let text = exporter.scrape().await;
    assert_eq!(must(&text, "yeastar_up"), 1.0);
    for (c, v) in [
        ("calls", 1.0),
        ("internal_calls", 1.0),
        ("trunks", 0.0),
        ("extensions", 0.0),
        ("device", 1.0),
        ("queues", 0.0),
    ] {
        assert_eq!(
            must(
                &text,
                &format!(r#"yeastar_collector_success{{collector="{c}"}}"#)
            ),
            v,
            "{c}"
        );
    }
    // Their answers arrived (counted as such); what was in them could not all be read, so none of
    // it is shown as if it were the whole.
    for endpoint in ["trunk/list", "extension/list", "queue/query"] {
        assert_eq!(requests(&text, endpoint, "success"), 1.0, "{endpoint}");
    }
    assert_eq!(pbx.count("queue/query_status"), 0);
    for family in [
        "yeastar_trunk_up",
        "yeastar_trunk_status",
        "yeastar_extensions",
        "yeastar_queue_",
    ] {
        assert!(lines_with(&text, family).is_empty(), "{family}:\n{text}");
    }
    let target = exporter.app.targets().iter().next().unwrap().clone();
    assert_eq!(
        target.last().unwrap().error.as_deref(),
        Some(
            "POST trunk/list: undecodable answer: 1 of 2 trunks unreadable: no trunkname (the first is entry 2)"
        )
    );
    exporter.stop().await;
}
