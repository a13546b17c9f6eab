//! Issue 16: every payload of `yeastar-events.md` §8 (verbatim, invalid and v1 ones included)
//! gives its documented result: read as its type, repaired where the vendor's JSON is invalid,
//! counted once, and the garbage of #29 counted as a parse error without harm.

mod common;

use std::sync::Arc;

use common::*;
use yeastar_exporter::collector::events::{EventStats, Recorded, kind_label};
use yeastar_exporter::collector::families::Families;
use yeastar_exporter::pbx::model::reports::Event;
use yeastar_exporter::pbx::s_series::events::parse;
use yeastar_exporter::sim::{SimConfig, Simulator};
use yeastar_exporter::support::clock::ManualClock;

/// (number in §8, payload exactly as the document gives it, the `type` label it counts under).
const PAYLOADS: &[(u32, &str, &str)] = &[
    (
        1,
        r#"{"event":"NewCdr","callid":"1571897930.5","timestart":"2019-10-23 22:18:50","callfrom":"1023","callto":"2023","callduraction":"19","talkduraction":"14","srctrunkname":"","dsttrcunkname":"","pincode":"","status":"ANSWERED","type":"Internal","recording":"20191024201242-1571897930.5-203-201-Internal.wav","didnumber":"","agentringtime":"0","sn":"369451090405"}"#,
        "new_cdr",
    ),
    (
        2,
        r#"{"event":"ExtensionStatus","extension":"1023","status":"Ringing","sn":"369451090405"}"#,
        "extension_status",
    ),
    (
        3,
        r#"{"event":"Tranfer","callid":"1571981311.105","members":[{"ext":{"number":"2000","channelid":"PJSIP/2000-00000025"}},{"ext":{"number":"1020","channelid":"PJSIP/1020-00000026"}}],"sn":"369451090405"}"#,
        "transfer",
    ),
    (
        4,
        r#"{"event":"Forward","callid":"1571901993.46","members":[{"inbound":{"from":"12345678","to":"1020","trunkname":"siptrunk","channelid":"PJSIP/trunk-siptrunk-endpoint-0000001c"}}],"sn":"369451090405"}"#,
        "forward",
    ),
    (
        5,
        r#"{"callid":"1573097568.15","event":"CallFailed","reason":"NO Outbound Restriction","members":[{"ext":{"number":"1023","channelid":"PJSIP/1023-0000000a",}}],"sn":"369451090405"}"#,
        "call_failed",
    ),
    (
        6,
        r#"{"event":"Invite","callid":"1571896991.2","members":[{"inbound":{"from":"2000","to":"1023","trunkname":"siptrunk","channelid":"PJSIP/trunk-siptrunk-endpoint-00000001"}}],"sn":"369451090405"}"#,
        "invite",
    ),
    (
        7,
        r#"{"event":"Incoming","callid":"1571897079.3","members":[{"inbound":{"from":"2000","to":"1023","trunkname":"siptrunk","channelid":"PJSIP/trunk-siptrunk-endpoint-00000002"}}],"sn":"369451090405"}"#,
        "incoming",
    ),
    (
        8,
        r#"{"event":"ConfigChange","type":"extension","extid":"1000","operation":"update","sn":"369451090405"}"#,
        "config_change",
    ),
    (9, r#"{"event":"BootUp","sn":"369451090405"}"#, "boot_up"),
    (
        10,
        r#"{"event":"satisfaction","callid":"1571972541.133","surveyresult":"1","sn":"369451090405"}"#,
        "satisfaction",
    ),
    (
        11,
        r#"{"event":"QueueAutoPause","queue":"6700","agent":"1000","misscall":[{"caller":"2000","callid":"1711360264.92"}],"sn":"369451090405"}"#,
        "queue_auto_pause",
    ),
    (
        12,
        r#"{"event":"QueueAgentRingNoAnswerTimeout","queue":"queue-6700","agent":"Phillip Huff","callid":"1711516130.30","caller":"2000","sn":"369451090405"}"#,
        "queue_agent_ring_no_answer_timeout",
    ),
    (
        13,
        r#"{"event":"uacstacall","operation":"callanswer","extnumber":"1000","cstacallid":"32788","ipaddress":"192.168.5.70:5060","sn":"369451090405"}"#,
        "uacsta_call",
    ),
    (
        14,
        r#"{"event":"DTMF","callid":"1571905397.97","members":[{"ext":{"number":"1023","channelid":"PJSIP/1023-00000039","memberstatus":"ANSWERED","callpath":"6500"}}],"info":"2","flag":"0","infos":"2","sn":"369451090405"}"#,
        "dtmf",
    ),
    (
        15,
        r#"{"event":"ConferenceStatus","callid":"1572313740.138","conferencenumber":"6409","conferencename":" 6409","members":[{"outbound":{"from":"6409","to":"2100","trunkname":"siptrunk","channelid":"PJSIP/trunk-siptrunk-endpoint-0000001f","memberstatus":"ANSWERED","callpath":"6409"}},{"ext":{"number":"1020","channelid":"PJSIP/1020-0000001e","memberstatus":"ANSWERED","callpath":"6409"}}],"sn":"369451090405"}"#,
        "conference_status",
    ),
    (
        16,
        r#"{"event":"PlayPromptEnd","callid":"1571965641.241","members":[{"ext":{"number":"2023","channelid":"PJSIP/2023-0000008f"}}],"prompt":"welcome","sn":"369451090405"}"#,
        "play_prompt_end",
    ),
    (
        17,
        r#"{"event":"PlayPromptEnd","callid":"1571965641.242","members":[{"inbound":{"from":"2203303","to":"6500","trunkname":"siptrunk","channelid":"PJSIP/trunk-siptrunk-endpoint-00000020","callpath":"6500"}}],"ivr":{"number":"6500"},"sn":"369451090405"}"#,
        "play_prompt_end",
    ),
    (
        23,
        r#"{"event":"CallStatus","callid":"1571896991.2","members":[{"inbound":{"from":"2203303","to":"6500","trunkname":"siptrunk","channelid":"PJSIP/trunk-siptrunk-endpoint-00000001","memberstatus":"ALERT","callpath":"6500"}},{"ext":{"number":"2000","channelid":"PJSIP/2000-00000002","memberstatus":"RING","callpath":"6500"}}],"sn":"369451090405"}"#,
        "call_status",
    ),
    (
        24,
        r#"{"event":"NewCdr","callid":"1571898000.7","timestart":"2019-10-23 22:20:00","callfrom":"1023","callto":"9283737733","callduraction":"25","talkduraction":"0","srctrunkname":"","dsttrcunkname":"siptrunk","pincode":"","status":"NO ANSWER","type":"Outbound","recording":"","didnumber":"","agentringtime":"0","sn":"369451090405"}"#,
        "new_cdr",
    ),
    (
        25,
        r#"{"event":"ExtensionStatus","extension":"1023","status":"Registered","registeredIP":"192.168.5.70","sn":"369451090405"}"#,
        "extension_status",
    ),
    (
        26,
        r#"{"action":"NewCdr","callid":"1495779310.371","timestart":"2017-05-25 22:15:10","callfrom":"1002","callto":"1000","desttrunkname":"","callduraction":"3","talkduraction":"2","status":"ANSWERED","type":"Internal"}"#,
        "new_cdr",
    ),
    (
        27,
        r#"{"action":"RING","callid":"1495706238.328","ext":{"extid":"1000"},"ext":{"extid":"1002"}}"#,
        "call_status",
    ),
    (
        28,
        r#"{"event":"SomethingNew","callid":"1700000000.1","sn":"369451090405"}"#,
        "other",
    ),
];

#[test]
fn every_section_8_payload_reads_as_documented() {
    for &(n, body, want) in PAYLOADS {
        let p = parse(body.as_bytes()).unwrap_or_else(|e| panic!("#{n}: {e}"));
        let got = p.event.kind().map_or("other", kind_label);
        assert_eq!(got, want, "#{n}");
        // Only #5 (the vendor's CallFailed with a trailing comma) needs the repair.
        assert_eq!(p.repaired, n == 5, "#{n}");
        // v1 reports (#26, #27: a login without "version") carry no serial number.
        assert_eq!(p.legacy, n == 26 || n == 27, "#{n}");
        assert_eq!(p.sn.is_none(), n == 26 || n == 27, "#{n}");
    }
}

#[test]
fn section_8_counts_exactly() {
    let mut s = EventStats::default();
    for &(n, body, _) in PAYLOADS {
        assert_eq!(
            s.record(parse(body.as_bytes()), 1_000),
            Recorded::Counted,
            "#{n}"
        );
    }
    // #29: garbage, an empty body, a body without an event.
    for body in ["not json", "", r#"{"sn":"369451090405"}"#] {
        assert_eq!(
            s.record(parse(body.as_bytes()), 1_000),
            Recorded::ParseError
        );
    }
    // #1 resent (the PBX resends when it gets no 200): dropped.
    assert_eq!(
        s.record(parse(PAYLOADS[0].1.as_bytes()), 1_000),
        Recorded::Duplicate
    );
    let f = Families::default();
    s.write(&f);
    let text = f.encode();
    for line in [
        // #1 internal answered, #24 outbound no answer on siptrunk, #26 v1 internal answered.
        r#"yeastar_calls_completed_total{direction="internal",outcome="answered"} 2"#,
        r#"yeastar_calls_completed_total{direction="outbound",outcome="no_answer"} 1"#,
        r#"yeastar_trunk_calls_completed_total{direction="outbound",outcome="no_answer",trunk="siptrunk"} 1"#,
        r#"yeastar_call_talk_seconds_sum{direction="internal"} 16"#,
        r#"yeastar_call_wait_seconds_sum{direction="outbound"} 25"#,
        r#"yeastar_calls_failed_total{reason="no_outbound_permission"} 1"#,
        r#"yeastar_queue_agent_auto_pauses_total{queue="6700"} 1"#,
        r#"yeastar_queue_agent_ring_timeouts_total{queue="6700"} 1"#,
        "yeastar_pbx_boots_total 1",
        r#"yeastar_events_received_total{type="new_cdr"} 4"#,
        r#"yeastar_events_received_total{type="play_prompt_end"} 2"#,
        r#"yeastar_events_received_total{type="other"} 1"#,
        "yeastar_events_v1_total 2",
        "yeastar_events_repaired_total 1",
        "yeastar_events_parse_errors_total 3",
        "yeastar_events_duplicates_total 1",
    ] {
        assert!(text.contains(&format!("{line}\n")), "{line}\n{text}");
    }
    // #27's duplicate keys kept the last member; nothing of the callers, agents or callids is
    // a label value.
    for leak in ["Phillip Huff", "1023", "2000", "12345678", "1571897930.5"] {
        assert!(!text.contains(&format!("\"{leak}\"")), "{leak} in a label");
    }
    assert!(matches!(
        parse(PAYLOADS.iter().find(|p| p.0 == 27).unwrap().1.as_bytes()).unwrap().event,
        Event::CallStatus(ref legs) if legs.legs.len() == 1
    ));
}

/// The exporter's counts in `text` are the simulator's `truth`: finished calls by direction and
/// outcome (every combination, zeros included), per trunk, talk and wait count and sum.
fn assert_counts_match(text: &str, truth: &yeastar_exporter::sim::model::CdrTruth) {
    for dir in ["inbound", "outbound", "internal", "other"] {
        for out in ["answered", "no_answer", "busy", "voicemail", "other"] {
            let want = truth
                .completed
                .get(&(dir.to_string(), out.to_string()))
                .copied()
                .unwrap_or(0);
            let series =
                format!(r#"yeastar_calls_completed_total{{direction="{dir}",outcome="{out}"}}"#);
            assert_eq!(must(text, &series), want as f64, "{series}");
        }
    }
    for ((trunk, leg, out), n) in &truth.trunks {
        let series = format!(
            r#"yeastar_trunk_calls_completed_total{{direction="{leg}",outcome="{out}",trunk="{trunk}"}}"#
        );
        assert_eq!(must(text, &series), *n as f64, "{series}");
    }
    for (name, by_dir) in [("talk", &truth.talk), ("wait", &truth.wait)] {
        for (dir, (count, sum)) in by_dir {
            let c = format!(r#"yeastar_call_{name}_seconds_count{{direction="{dir}"}}"#);
            let s = format!(r#"yeastar_call_{name}_seconds_sum{{direction="{dir}"}}"#);
            assert_eq!(
                (must(text, &c), must(text, &s)),
                (*count as f64, *sum as f64),
                "{name} {dir}"
            );
        }
    }
}

/// The exporter's event receiver on `port`, serving `app` (a task to abort to take it down).
async fn receiver(
    port: u16,
    app: Arc<yeastar_exporter::exporter::App>,
) -> tokio::task::JoinHandle<()> {
    let l = yeastar_exporter::startup::bind(&format!("127.0.0.1:{port}"))
        .await
        .unwrap();
    tokio::spawn(yeastar_exporter::intake::http::serve(l, app))
}

/// Issue 16: a seeded day of simulated traffic, reported by the simulator over HTTP as a PBX
/// reports it (the documented malformed request, one connection per report), counted by the
/// exporter exactly as the simulator's own ground truth — through two hours with the receiver
/// down (the PBX resends) and a PBX that resends 5% of reports it got a 200 for (duplicates).
#[tokio::test(flavor = "multi_thread")]
async fn a_seeded_day_counts_exactly_what_the_pbx_reported() {
    let start = 1_700_000_000;
    let clock = ManualClock::new(start);
    let mut cfg = SimConfig::traffic(11, 6);
    cfg.faults.event_resend_rate = 0.05;
    let sim = Simulator::start(cfg, clock.clone(), "127.0.0.1:0")
        .await
        .unwrap();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let exporter_cfg = sim_config(
        &sim.url(),
        &["--pbx.events", "--events.listen-address", &listen],
    );
    let exporter = Running::start(exporter_cfg, clock.clone()).await;
    let mut rx = Some(receiver(port, exporter.app.clone()).await);
    // The first scrape logs in, and the login registers the receiver.
    exporter.scrape().await;
    let registered = sim
        .sim
        .event_receiver()
        .expect("the login registered a receiver");
    // `/events/<target>/<secret>`: 128 random bits from this login, in hex.
    let secret = registered.path.strip_prefix("/events/default/").unwrap();
    assert_eq!(
        (registered.port, secret.len(), registered.v2),
        (port, 32, true)
    );
    assert!(secret.chars().all(|c| c.is_ascii_hexdigit()), "{secret}");
    for step in 0..144 {
        // Ten minutes of traffic, a scrape (heartbeats keep the token), the reports.
        clock.advance_secs(600);
        exporter.scrape().await;
        match step {
            36 => {
                rx.take().unwrap().abort();
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            48 => rx = Some(receiver(port, exporter.app.clone()).await),
            _ => {}
        }
        sim.sim.pump_events().await;
    }
    // Everything delivered.
    for _ in 0..50 {
        if sim.sim.pump_events().await == 0 {
            break;
        }
    }
    // A day of heartbeats kept the registration as the login made it.
    assert_eq!(sim.sim.event_receiver(), Some(registered));
    let delivery = sim.sim.event_delivery();
    assert!(delivery.failed > 0, "the receiver was down: {delivery:?}");
    assert!(delivery.resent > 0, "{delivery:?}");
    assert_eq!(delivery.unregistered, 0, "{delivery:?}");
    let text = exporter.scrape().await;
    let truth = sim.sim.with_model(|m| m.truth.clone());

    let total: u64 = truth.completed.values().sum();
    assert!(total > 1_000, "a day of traffic: {total} calls");
    assert_counts_match(&text, &truth);
    assert_eq!(
        must(
            &text,
            r#"yeastar_calls_failed_total{reason="line_unreachable"}"#
        ),
        truth.failed.get("line_unreachable").copied().unwrap_or(0) as f64
    );
    assert!(
        !truth.ring_timeouts.is_empty() && !truth.auto_pauses.is_empty(),
        "{truth:?}"
    );
    for (queue, n) in &truth.ring_timeouts {
        let series = format!(r#"yeastar_queue_agent_ring_timeouts_total{{queue="{queue}"}}"#);
        assert_eq!(must(&text, &series), *n as f64, "{series}");
    }
    for (queue, n) in &truth.auto_pauses {
        let series = format!(r#"yeastar_queue_agent_auto_pauses_total{{queue="{queue}"}}"#);
        assert_eq!(must(&text, &series), *n as f64, "{series}");
    }
    let dups = must(&text, "yeastar_events_duplicates_total");
    assert!(
        dups > 0.0 && dups <= delivery.resent as f64,
        "{dups} vs {delivery:?}"
    );
    assert_eq!(must(&text, "yeastar_events_parse_errors_total"), 0.0);
    // The simulator posts as a PBX does: to the path its login registered, from its own address,
    // with the serial number its deviceinfo/query answers. Nothing of it is refused.
    for reason in ["unknown_path", "stale_path", "wrong_source", "wrong_sn"] {
        let series = format!(r#"yeastar_events_refused_total{{reason="{reason}"}}"#);
        assert_eq!(must(&text, &series), 0.0, "{series}");
    }
    // Every report the simulator got a 200 for was received (resends included).
    assert_eq!(events_received(&text), delivery.delivered as f64);
    exporter.stop().await;
}

/// Issue 16: with `CallStatus` reports, a member's status age counts from the report, not from
/// the first scrape that saw it: exact to the event, whatever the scrape interval.
#[tokio::test(flavor = "multi_thread")]
async fn member_ages_are_exact_to_the_call_status_report() {
    let start = 1_700_000_000;
    let clock = ManualClock::new(start);
    // A PBX with no traffic of its own: the one call below is the only one.
    let sim = Simulator::start(SimConfig::traffic(5, 0), clock.clone(), "127.0.0.1:0")
        .await
        .unwrap();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let with_events = Running::start(
        sim_config(
            &sim.url(),
            &["--pbx.events", "--events.listen-address", &listen],
        ),
        clock.clone(),
    )
    .await;
    let without = Running::start(sim_config(&sim.url(), &[]), clock.clone()).await;
    let rx = receiver(port, with_events.app.clone()).await;
    with_events.scrape().await;
    without.scrape().await;
    // Without events the second exporter must not take the registration: log the first in again.
    assert_eq!(sim.sim.event_receiver().map(|r| r.port), Some(port));
    clock.advance_secs(5);
    sim.sim.pump_events().await;
    // A call starts ringing now; the PBX reports it at once.
    sim.sim.with_model(|m| {
        let now = m.now();
        m.add_stuck_ringing_call(now + 600)
    });
    sim.sim.pump_events().await;
    // The next scrapes, 55 seconds later, are the first to see it.
    clock.advance_secs(55);
    let exact = with_events.scrape().await;
    let polled = without.scrape().await;
    let ring = r#"yeastar_member_status_max_age_seconds{status="ring"}"#;
    assert_eq!(must(&exact, ring), 55.0);
    assert_eq!(must(&polled, ring), 0.0);
    // Polling stays the truth: once the call is gone, no age remains.
    clock.advance_secs(700);
    sim.sim.pump_events().await;
    let later = with_events.scrape().await;
    assert_eq!(must(&later, ring), 0.0);
    rx.abort();
    with_events.stop().await;
    without.stop().await;
}

/// Waits (real time) until `f` holds, up to 10 s.
async fn until(mut f: impl FnMut() -> bool) -> bool {
    for _ in 0..200 {
        if f() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    false
}

/// Issue 16, TCP report mode: the exporter dials the PBX's event port, logs in with the
/// documented block, splits the stream whatever the framing (nothing, CRLF, blank lines between
/// objects), reconnects when the connection is cut — and counts a seeded day exactly as the
/// simulator's truth.
#[tokio::test(flavor = "multi_thread")]
async fn tcp_reports_count_exactly_through_a_cut_connection() {
    let clock = ManualClock::new(1_700_000_000);
    let sim = Simulator::start(SimConfig::traffic(13, 6), clock.clone(), "127.0.0.1:0")
        .await
        .unwrap();
    let cfg = tcp_events_config(&sim, &[]).await;
    assert!(
        cfg.targets[0].client.events.is_none(),
        "TCP mode registers no HTTP receiver"
    );
    let exporter = Running::start(cfg, clock.clone()).await;
    assert!(until(|| sim.sim.event_delivery().tcp_logins == [1, 0]).await);
    let text = exporter.scrape().await;
    assert_eq!(must(&text, "yeastar_events_connected"), 1.0);
    assert_eq!(sim.sim.event_receiver(), None, "no HTTP registration");
    for step in 0..144 {
        clock.advance_secs(600);
        exporter.scrape().await;
        if step == 60 {
            sim.sim.cut_tcp_events().await;
            // The exporter reconnects and logs in again (after a second).
            assert!(until(|| sim.sim.event_delivery().tcp_logins == [2, 0]).await);
        }
        sim.sim.pump_events().await;
    }
    let delivered = sim.sim.event_delivery().tcp_delivered;
    let text = scrape_until_received(&exporter, delivered).await;
    assert_eq!(
        events_received(&text),
        delivered as f64,
        "every report written was read"
    );
    let truth = sim.sim.with_model(|m| m.truth.clone());
    assert!(truth.completed.values().sum::<u64>() > 300);
    assert_counts_match(&text, &truth);
    assert_eq!(must(&text, "yeastar_events_parse_errors_total"), 0.0);
    assert_eq!(must(&text, "yeastar_events_connected"), 1.0);
    exporter.stop().await;
}

/// TCP logins follow the login ledger: with a wrong password the exporter's API login and its
/// TCP event login together never reach the PBX's lockout (5), however long it runs — a refused
/// TCP login suspends them for the login back-off.
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_tcp_login_never_locks_the_pbx_out() {
    let clock = ManualClock::new(1_700_000_000);
    let sim = Simulator::start(SimConfig::traffic(14, 2), clock.clone(), "127.0.0.1:0")
        .await
        .unwrap();
    let cfg = with_login(tcp_events_config(&sim, &[]).await, "api", "wrong-password");
    let exporter = Running::start(cfg, clock.clone()).await;
    assert!(until(|| sim.sim.event_delivery().tcp_logins == [0, 1]).await);
    // Scrapes keep coming; the TCP reader keeps running.
    for _ in 0..10 {
        let text = exporter.scrape().await;
        assert!(text.contains("\nyeastar_up 0\n"));
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let failed = sim.sim.event_delivery().tcp_logins[1] + sim.sim.requests("login");
    assert!(failed <= 2, "{failed} failed logins reached the PBX");
    assert!(!sim.sim.is_locked("127.0.0.1".parse().unwrap()));
    let text = exporter.scrape().await;
    assert_eq!(must(&text, "yeastar_events_connected"), 0.0);
    exporter.stop().await;
}

/// A PBX that sends the v1 format (another application logged the account in without
/// `version`): the reports are still read and counted exactly, and `yeastar_events_v1_total`
/// says so.
#[tokio::test(flavor = "multi_thread")]
async fn v1_reports_count_exactly_and_are_flagged() {
    let clock = ManualClock::new(1_700_000_000);
    let mut cfg = SimConfig::traffic(17, 6);
    cfg.faults.event_v1 = true;
    let sim = Simulator::start(cfg, clock.clone(), "127.0.0.1:0")
        .await
        .unwrap();
    let (exporter, rx) = with_http_events(&sim.url(), clock.clone(), &[]).await;
    exporter.scrape().await;
    for _ in 0..18 {
        clock.advance_secs(600);
        exporter.scrape().await;
        sim.sim.pump_events().await;
    }
    let text = exporter.scrape().await;
    let truth = sim.sim.with_model(|m| m.truth.clone());
    assert!(truth.completed.values().sum::<u64>() > 50);
    assert_counts_match(&text, &truth);
    let delivered = sim.sim.event_delivery().delivered as f64;
    assert_eq!(must(&text, "yeastar_events_v1_total"), delivered);
    rx.abort();
    exporter.stop().await;
}

/// Reports from elsewhere are refused and counted, and still answered 200 (a PBX resends a
/// report it gets no 200 for, forever): a path without the login's secret, an unknown target,
/// another PBX's serial number, a body that is not a report, a request over the size limit.
#[tokio::test(flavor = "multi_thread")]
async fn reports_from_elsewhere_are_refused_and_counted() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let clock = ManualClock::new(1_700_000_000);
    let sim = Simulator::start(SimConfig::traffic(18, 0), clock.clone(), "127.0.0.1:0")
        .await
        .unwrap();
    let (exporter, rx) = with_http_events(&sim.url(), clock.clone(), &[]).await;
    // The login registers the path; deviceinfo/query gives the serial number.
    exporter.scrape().await;
    let registered = sim.sim.event_receiver().unwrap().path;
    let sn = sim.sim.with_model(|m| m.sn());
    let port: u16 = exporter
        .app
        .settings()
        .events_listen_address
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let post = |path: String, body: String| async move {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1: {port}\r\nContent-Length:{}\r\n\r\n",
            body.len()
        );
        // The receiver may close on a request it refuses before the body is all sent.
        let _ = s.write_all(head.as_bytes()).await;
        let _ = s.write_all(body.as_bytes()).await;
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer).await;
        answer
    };
    let boot = |sn: &str| format!(r#"{{"event":"BootUp","sn":"{sn}"}}"#);
    for (path, body) in [
        ("/events/default".to_string(), boot(&sn)),
        ("/events/nope".to_string(), boot(&sn)),
        (registered.clone(), boot("222222222222")),
        (registered.clone(), "not json".to_string()),
        (registered.clone(), boot(&sn)),
    ] {
        let answer = post(path, body).await;
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    }
    let too_big = "x".repeat(yeastar_exporter::intake::http::MAX_BODY + 1);
    let answer = post(registered.clone(), too_big).await;
    assert_eq!(answer, "", "over the size limit: closed without an answer");
    let text = exporter.scrape().await;
    // Only the PBX's own boot counts.
    assert_eq!(must(&text, "yeastar_pbx_boots_total"), 1.0);
    for (reason, n) in [
        ("unknown_path", 1.0),
        ("stale_path", 0.0),
        ("wrong_source", 0.0),
        ("wrong_sn", 1.0),
    ] {
        let series = format!(r#"yeastar_events_refused_total{{reason="{reason}"}}"#);
        assert_eq!(must(&text, &series), n, "{series}");
    }
    assert_eq!(must(&text, "yeastar_events_parse_errors_total"), 1.0);
    assert_eq!(
        must(
            &text,
            r#"yeastar_exporter_events_refused_total{reason="unknown_target"}"#
        ),
        1.0
    );
    assert_eq!(
        must(
            &text,
            r#"yeastar_exporter_events_refused_total{reason="unreadable"}"#
        ),
        1.0
    );
    rx.abort();
    exporter.stop().await;
}

/// Behind NAT or in a container the PBX must post to an address that is not the one it sees the
/// login come from: `--events.advertise-url` registers it as an absolute URL (`urltag` 1), and
/// the heartbeats keep it. Here the receiver listens on 127.0.0.2 only, while the exporter's
/// requests come from 127.0.0.1: without the absolute URL no report would arrive.
#[tokio::test(flavor = "multi_thread")]
async fn an_advertised_receiver_gets_the_reports() {
    let clock = ManualClock::new(1_700_000_000);
    let sim = Simulator::start(SimConfig::traffic(19, 6), clock.clone(), "127.0.0.1:0")
        .await
        .unwrap();
    let port = free_port();
    let listen = format!("127.0.0.2:{port}");
    let advertise = format!("http://127.0.0.2:{port}");
    let exporter = Running::start(
        sim_config(
            &sim.url(),
            &[
                "--pbx.events",
                "--events.listen-address",
                &listen,
                "--events.advertise-url",
                &advertise,
            ],
        ),
        clock.clone(),
    )
    .await;
    let l = yeastar_exporter::startup::bind(&listen).await.unwrap();
    let rx = tokio::spawn(yeastar_exporter::intake::http::serve(
        l,
        exporter.app.clone(),
    ));
    exporter.scrape().await;
    let path = sim.sim.event_receiver().unwrap().path;
    assert_eq!(
        path.strip_prefix("/events/default/").map(str::len),
        Some(32),
        "{path}"
    );
    let want = yeastar_exporter::sim::EventReceiver {
        host: "127.0.0.2".into(),
        port,
        path,
        v2: true,
    };
    assert_eq!(sim.sim.event_receiver(), Some(want.clone()));
    for _ in 0..12 {
        clock.advance_secs(600);
        exporter.scrape().await;
        sim.sim.pump_events().await;
    }
    // Heartbeats (every 20 minutes of token age) re-registered the same receiver.
    assert_eq!(sim.sim.event_receiver(), Some(want));
    let delivery = sim.sim.event_delivery();
    assert_eq!(delivery.failed, 0, "{delivery:?}");
    let text = exporter.scrape().await;
    assert!(delivery.delivered > 100, "{delivery:?}");
    assert_eq!(events_received(&text), delivery.delivered as f64);
    rx.abort();
    exporter.stop().await;
}
