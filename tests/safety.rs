//! Issue 4: never hurt the PBX, never lose the signal.

mod common;

use std::time::Duration;

use common::*;
use yeastar_exporter::config::Config;
use yeastar_exporter::sim::{Faults, SimConfig, SimHandle, Simulator};
use yeastar_exporter::support::clock::{ManualClock, SharedClock};
use yeastar_exporter::support::secret::Secret;

const T0: u64 = 1_700_000_000;
const EMPTY: &str = r#"{"Calls":[],"status":"Success"}"#;

async fn sim(clock: SharedClock) -> SimHandle {
    let cfg = SimConfig::traffic(9, 30);
    Simulator::start(cfg, clock, "127.0.0.1:0").await.unwrap()
}

fn sim_login(h: &SimHandle, password: &str, extra: &[&str]) -> Config {
    with_login(config(&h.url(), extra), "api", password)
}

#[tokio::test]
async fn wrong_password_for_30_minutes_never_locks_the_pbx_out() {
    let clock = ManualClock::new(T0);
    let h = sim(clock.clone()).await;
    let exporter = Running::start(sim_login(&h, "wrong", &[]), clock.clone()).await;
    for i in 0..120 {
        let text = exporter.scrape().await;
        assert_eq!(must(&text, "yeastar_up"), 0.0, "scrape {i}");
        assert_eq!(must(&text, r#"yeastar_login_suspended"#), 1.0, "scrape {i}");
        clock.advance_secs(15);
    }
    let logins = h.sim.requests("login");
    assert!((2..=3).contains(&logins), "{logins} logins reached the PBX");
    assert!(!h.sim.is_locked("127.0.0.1".parse().unwrap()));
    // Nothing else was asked of the PBX without a token.
    assert_eq!(h.sim.total_requests(), logins);
    exporter.stop().await;
}

#[tokio::test]
async fn a_hundred_concurrent_scrapes_cost_one_set_of_requests() {
    let clock = ManualClock::new(T0);
    let h = sim(clock.clone()).await;
    h.sim.set_faults(Faults {
        latency: Duration::from_millis(150),
        ..Default::default()
    });
    let exporter = Running::start(sim_login(&h, "demo-password", &[]), clock).await;
    let url = format!("{}/metrics", exporter.url);
    let client = reqwest::Client::new();
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let (c, u) = (client.clone(), url.clone());
            tokio::spawn(async move { c.get(u).send().await.unwrap().text().await.unwrap() })
        })
        .collect();
    for t in tasks {
        let text = t.await.unwrap();
        assert_eq!(must(&text, "yeastar_up"), 1.0);
    }
    assert_eq!(h.sim.requests("call/query:inbound"), 1);
    assert_eq!(h.sim.requests("call/query:outbound"), 1);
    assert_eq!(h.sim.requests("login"), 1);
    assert_eq!(h.sim.requests("trunk/list"), 1);
    exporter.stop().await;
}

#[tokio::test]
async fn requests_in_flight_are_bounded_per_pbx() {
    for (limit, expected) in [("1", 1), ("2", 2)] {
        let pbx = FakePbx::start().await;
        let slow = |body: &str| {
            Reply::Slow(
                Duration::from_millis(100),
                Box::new(Reply::Json(body.into())),
            )
        };
        pbx.script("call/query:inbound", vec![slow(EMPTY)]);
        pbx.script("call/query:outbound", vec![slow(EMPTY)]);
        pbx.script(
            "trunk/list",
            vec![slow(r#"{"status":"Success","trunklist":[]}"#)],
        );
        pbx.script(
            "extension/list",
            vec![slow(r#"{"status":"Success","extlist":[]}"#)],
        );
        let exporter = Running::start(
            config(&pbx.url(), &["--pbx.max-concurrent-requests", limit]),
            ManualClock::new(T0),
        )
        .await;
        let text = exporter.scrape().await;
        assert_eq!(must(&text, "yeastar_up"), 1.0);
        assert_eq!(pbx.max_in_flight(), expected, "limit {limit}");
        exporter.stop().await;
    }
}

/// On paused time: the PBX's 20 s and the scrape's 1 s deadline are tokio timers, so the test
/// takes no wall time and the deadline is exact.
#[tokio::test(start_paused = true)]
async fn a_pbx_slower_than_the_deadline_gives_up_0_by_the_deadline() {
    let clock = ManualClock::new(T0);
    let h = sim(clock.clone()).await;
    h.sim.set_faults(Faults {
        latency: Duration::from_secs(20),
        ..Default::default()
    });
    let exporter = Running::start(sim_login(&h, "demo-password", &[]), clock).await;
    let paused_started = tokio::time::Instant::now();
    let text = reqwest::Client::new()
        .get(format!("{}/metrics", exporter.url))
        .header("X-Prometheus-Scrape-Timeout-Seconds", "1.5")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let paused_took = paused_started.elapsed();
    assert_eq!(must(&text, "yeastar_up"), 0.0);
    for c in ["calls", "internal_calls", "trunks", "extensions", "device"] {
        assert_eq!(
            must(
                &text,
                &format!(r#"yeastar_collector_success{{collector="{c}"}}"#)
            ),
            0.0
        );
    }
    // The login was not cut short by the scrape's deadline: it runs on to its own bound (so its
    // answer is read), and is not counted until it ends.
    assert_eq!(
        value(
            &text,
            r#"yeastar_pbx_requests_total{endpoint="login",outcome="timeout"}"#
        ),
        None
    );
    // The deadline is 1 s (1.5 s minus the 0.5 s offset); 20 s is what the PBX would have taken.
    assert_eq!(
        paused_took.as_millis() / 100,
        10,
        "answered at the deadline: {paused_took:?}"
    );
    exporter.stop().await;
}

#[tokio::test]
async fn an_oversized_answer_is_cut_off_as_decode_error() {
    let pbx = FakePbx::start().await;
    let big = format!(
        r#"{{"Calls":[],"status":"Success"{}}}"#,
        " ".repeat(200_000)
    );
    pbx.json("call/query:inbound", &big);
    pbx.json("call/query:outbound", EMPTY);
    let exporter = Running::start(
        config(&pbx.url(), &["--pbx.max-response-bytes", "65536"]),
        ManualClock::new(T0),
    )
    .await;
    let text = exporter.scrape().await;
    assert_eq!(must(&text, "yeastar_up"), 0.0);
    assert_eq!(requests(&text, "call/query", "decode_error"), 1.0);
    exporter.stop().await;
}

#[tokio::test]
async fn sim_faults_each_become_up_0_with_their_outcome() {
    let clock = ManualClock::new(T0);
    let h = sim(clock.clone()).await;
    let exporter = Running::start(sim_login(&h, "demo-password", &[]), clock).await;
    assert_eq!(must(&exporter.scrape().await, "yeastar_up"), 1.0);
    for (faults, outcome) in [
        (
            Faults {
                http500_rate: 1.0,
                ..Default::default()
            },
            "http_error",
        ),
        (
            Faults {
                malformed_rate: 1.0,
                ..Default::default()
            },
            "decode_error",
        ),
        (
            Faults {
                close_rate: 1.0,
                ..Default::default()
            },
            "connect_error",
        ),
        (
            Faults {
                error_rate: 1.0,
                ..Default::default()
            },
            "api_error",
        ),
    ] {
        h.sim.set_faults(faults);
        let text = exporter.scrape().await;
        assert_eq!(must(&text, "yeastar_up"), 0.0, "{outcome}");
        assert!(requests(&text, "call/query", outcome) >= 1.0, "{outcome}");
        h.sim.set_faults(Faults::default());
        assert_eq!(
            must(&exporter.scrape().await, "yeastar_up"),
            1.0,
            "after {outcome}"
        );
    }
    exporter.stop().await;
}

#[tokio::test]
async fn token_expiry_in_the_middle_of_a_scrape_costs_one_login() {
    let pbx = FakePbx::start().await;
    pbx.json("call/query:inbound", &fixture("seed-example2-inbound.json"));
    pbx.script(
        "call/query:outbound",
        vec![
            Reply::Json(r#"{"status":"Failed","errno":"20006"}"#.into()),
            Reply::Json(EMPTY.into()),
        ],
    );
    let exporter = Running::start(config(&pbx.url(), &[]), ManualClock::new(T0)).await;
    let text = exporter.scrape().await;
    assert_eq!(must(&text, "yeastar_up"), 1.0);
    assert_eq!(pbx.count("login"), 2);
    assert_eq!(pbx.count("call/query:outbound"), 2);
    assert_eq!(requests(&text, "call/query", "token_expired"), 1.0);
    exporter.stop().await;
}

#[tokio::test]
async fn unsupported_internal_calls_is_marked_and_rechecked_hourly() {
    let clock = ManualClock::new(T0);
    let h = sim(clock.clone()).await;
    h.sim.set_faults(Faults {
        unsupported: vec!["extension/query_call".into()],
        ..Default::default()
    });
    let exporter = Running::start(sim_login(&h, "demo-password", &[]), clock.clone()).await;
    for _ in 0..3 {
        let text = exporter.scrape().await;
        assert_eq!(must(&text, "yeastar_up"), 1.0);
        assert_eq!(
            must(
                &text,
                r#"yeastar_collector_success{collector="internal_calls"}"#
            ),
            0.0
        );
        assert_eq!(
            value(&text, r#"yeastar_active_calls{direction="internal"}"#),
            None
        );
        assert_eq!(
            value(
                &text,
                r#"yeastar_call_max_age_seconds{direction="internal"}"#
            ),
            None
        );
        assert!(value(&text, r#"yeastar_active_calls{direction="inbound"}"#).is_some());
        clock.advance_secs(15);
    }
    assert_eq!(h.sim.requests("extension/query_call"), 1);
    h.sim.set_faults(Faults::default());
    clock.advance_secs(3600);
    let text = exporter.scrape().await;
    // Asked again. The token had timed out over the hour: its heartbeat failed, one new login.
    assert_eq!(h.sim.requests("extension/query_call"), 2);
    assert_eq!(
        (h.sim.requests("heartbeat"), h.sim.requests("login")),
        (1, 2)
    );
    assert_eq!(
        must(
            &text,
            r#"yeastar_collector_success{collector="internal_calls"}"#
        ),
        1.0
    );
    assert!(value(&text, r#"yeastar_active_calls{direction="internal"}"#).is_some());
    exporter.stop().await;
}

#[tokio::test]
async fn member_status_ages_follow_the_clock_and_restart_on_change() {
    let ring = r#"{"Calls":[{"callid":"1699999990.1","members":[
        {"inbound":{"from":"1","to":"2","trunkname":"t","channelid":"PJSIP/trunk-t-endpoint-00000001","memberstatus":"ALERT"}},
        {"ext":{"number":"2","channelid":"PJSIP/2-00000002","memberstatus":"RING"}}]}],"status":"Success"}"#;
    let answered = ring.replace("ALERT", "ANSWERED").replace("RING", "ANSWER");
    let clock = ManualClock::new(T0);
    let pbx = FakePbx::start().await;
    pbx.json("call/query:inbound", ring);
    pbx.json("call/query:outbound", EMPTY);
    let exporter = Running::start(config(&pbx.url(), &[]), clock.clone()).await;
    let age = |text: &str, s: &str| {
        must(
            text,
            &format!(r#"yeastar_member_status_max_age_seconds{{status="{s}"}}"#),
        )
    };
    let text = exporter.scrape().await;
    assert_eq!((age(&text, "ring"), age(&text, "alert")), (0.0, 0.0));
    clock.advance_secs(60);
    exporter.scrape().await;
    clock.advance_secs(120);
    let text = exporter.scrape().await;
    assert_eq!((age(&text, "ring"), age(&text, "alert")), (180.0, 180.0));
    assert_eq!(
        must(
            &text,
            r#"yeastar_call_max_age_seconds{direction="inbound"}"#
        ),
        190.0
    );
    pbx.json("call/query:inbound", &answered);
    let text = exporter.scrape().await;
    assert_eq!((age(&text, "ring"), age(&text, "answer")), (0.0, 0.0));
    clock.advance_secs(30);
    let text = exporter.scrape().await;
    assert_eq!((age(&text, "answer"), age(&text, "answered")), (30.0, 30.0));
    pbx.json("call/query:inbound", EMPTY);
    exporter.scrape().await;
    assert_eq!(
        exporter
            .app
            .targets()
            .iter()
            .next()
            .unwrap()
            .tracked_members(),
        0
    );
    exporter.stop().await;
}

/// Runs the real binary at trace level through logins, expiry, failures and shutdown, then looks
/// for every secret in everything it wrote and served.
#[test]
fn secrets_never_reach_logs_or_metrics_and_shutdown_logs_out() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let h = rt.block_on(sim(yeastar_exporter::support::clock::system()));
    let spawned = spawn_exporter_env(
        &[
            "--pbx.url",
            &h.url(),
            "--pbx.username",
            "api",
            "--log.level",
            "trace",
        ],
        &[("YEASTAR_EXPORTER_PBX_PASSWORD", "demo-password")],
    );
    let base = spawned.base.clone();
    // Drain the log while it runs: trace logging fills a pipe buffer in no time.
    let (mut child, log) = spawned.drain();
    let url = format!("{base}/metrics");
    let mut pages = String::new();
    rt.block_on(async {
        let get = || async {
            for _ in 0..100 {
                if let Ok(r) = reqwest::get(&url).await {
                    return r.text().await.unwrap();
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("exporter never answered");
        };
        pages.push_str(&get().await);
        h.sim.expire_tokens();
        pages.push_str(&get().await);
        h.sim.set_faults(Faults {
            http500_rate: 1.0,
            ..Default::default()
        });
        pages.push_str(&get().await);
        h.sim.set_faults(Faults {
            close_rate: 1.0,
            ..Default::default()
        });
        pages.push_str(&get().await);
        h.sim.set_faults(Faults::default());
        pages.push_str(&get().await);
        pages.push_str(
            &reqwest::get(format!("{base}/"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
        );
    });
    signal_child(&child, "TERM");
    let status = child.wait().unwrap();
    let logs = log.join().unwrap();
    assert!(status.success(), "exit {status:?}\n{logs}");
    assert_eq!(h.sim.requests("logout"), 1, "shutdown must log out");
    assert_eq!(h.sim.live_tokens(), 0);
    let tokens = h.sim.issued_tokens();
    assert_eq!(tokens.len(), 2, "one login, one after expiry");
    assert!(
        logs.lines().count() > 20,
        "trace logging produced too little:\n{logs}"
    );
    assert!(
        logs.contains("token=<secret>") || !logs.contains("token="),
        "a token parameter reached the logs"
    );
    let md5 = Secret::new("demo-password").md5_hex().expose().to_string();
    for secret in tokens.iter().chain([&md5, &"demo-password".to_string()]) {
        assert!(!logs.contains(secret.as_str()), "secret {secret} in logs");
        assert!(!pages.contains(secret.as_str()), "secret {secret} served");
    }
}

/// On paused time: latency, the client's 30 ms and the deadline are tokio timers.
#[tokio::test(start_paused = true)]
async fn a_scrape_abandoned_by_prometheus_does_not_poison_the_next() {
    let clock = ManualClock::new(T0);
    let h = sim(clock.clone()).await;
    h.sim.set_faults(Faults {
        latency: Duration::from_millis(60),
        ..Default::default()
    });
    let exporter = Running::start(sim_login(&h, "demo-password", &[]), clock).await;
    // Prometheus gives up after 30 ms and drops the connection; the scrape's deadline (0.6 s
    // minus the 0.5 s offset) passes soon after.
    let abandoned = reqwest::Client::new()
        .get(format!("{}/metrics", exporter.url))
        .header("X-Prometheus-Scrape-Timeout-Seconds", "0.6")
        .timeout(Duration::from_millis(30))
        .send()
        .await;
    assert!(abandoned.is_err());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let text = exporter.scrape().await;
    assert_eq!(must(&text, "yeastar_up"), 1.0, "{text}");
    exporter.stop().await;
}

#[tokio::test]
async fn heartbeats_keep_the_token_alive_without_new_logins() {
    let clock = ManualClock::new(T0);
    let h = sim(clock.clone()).await;
    let exporter = Running::start(sim_login(&h, "demo-password", &[]), clock.clone()).await;
    assert_eq!(must(&exporter.scrape().await, "yeastar_up"), 1.0);
    for round in 1..=4 {
        clock.advance_secs(19 * 60);
        // Young enough: no heartbeat.
        exporter.scrape().await;
        assert_eq!(h.sim.requests("heartbeat"), round - 1);
        clock.advance_secs(6 * 60);
        let text = exporter.scrape().await;
        assert_eq!(must(&text, "yeastar_up"), 1.0);
        assert_eq!(h.sim.requests("heartbeat"), round, "round {round}");
    }
    // 100 minutes, one login, never a token error.
    assert_eq!(h.sim.requests("login"), 1);
    let text = exporter.scrape().await;
    assert_eq!(requests(&text, "call/query", "token_expired"), 0.0);
    assert_eq!(requests(&text, "heartbeat", "success"), 4.0);
    exporter.stop().await;
}
