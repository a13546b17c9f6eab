//! Issue 2: the calls collector and the PBX client against a fake PBX serving fixtures.

mod common;

use clap::Parser;
use common::*;
use yeastar_exporter::support::clock::ManualClock;

const CALLS_ONLY: &[&str] = &[
    "--no-collector.internal_calls",
    "--no-collector.trunks",
    "--no-collector.extensions",
    "--no-collector.device",
];

const EMPTY: &str = r#"{"Calls":[],"status":"Success"}"#;

fn expected(name: &str) -> Vec<String> {
    fixture(name).lines().map(str::to_string).collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

async fn scrape_fixtures(inbound: &str, outbound: &str, now: u64) -> String {
    let pbx = FakePbx::start().await;
    pbx.json("call/query:inbound", inbound);
    pbx.json("call/query:outbound", outbound);
    let exporter = Running::start(config(&pbx.url(), CALLS_ONLY), ManualClock::new(now)).await;
    let text = exporter.scrape().await;
    exporter.stop().await;
    text
}

#[tokio::test]
async fn seed_example_2_gives_exactly_the_expected_lines() {
    let text = scrape_fixtures(&fixture("seed-example2-inbound.json"), EMPTY, 1_571_639_500).await;
    assert_eq!(
        sorted(target_lines(&text)),
        expected("seed-example2.expected")
    );
}

#[tokio::test]
async fn seed_example_1_gives_exactly_the_expected_lines() {
    let text = scrape_fixtures(&fixture("seed-example1-callid.json"), EMPTY, 1_571_386_169).await;
    assert_eq!(
        sorted(target_lines(&text)),
        expected("seed-example1.expected")
    );
}

#[tokio::test]
async fn lenient_answers_dedup_unknown_status_and_kind() {
    // `calls` in lower case, numbers as numbers, callpath as number and string, a call in both
    // answers, EARLYMEDIA, a "fax" member.
    let text = scrape_fixtures(
        &fixture("variants-inbound.json"),
        &fixture("variants-outbound.json"),
        1_700_000_100,
    )
    .await;
    assert_eq!(sorted(target_lines(&text)), expected("variants.expected"));
    assert!(
        !text.contains("5551234") && !text.contains("1001"),
        "numbers in labels"
    );
}

#[tokio::test]
async fn metrics_page_has_the_contract_headers_and_exporter_metrics() {
    let pbx = FakePbx::start().await;
    pbx.json("call/query:inbound", EMPTY);
    pbx.json("call/query:outbound", EMPTY);
    let exporter = Running::start(config(&pbx.url(), &[]), ManualClock::new(1_700_000_000)).await;
    let resp = reqwest::get(format!("{}/metrics", exporter.url))
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = resp.text().await.unwrap();
    assert_eq!(must(&text, "yeastar_up"), 1.0);
    assert!(text.contains("# TYPE yeastar_exporter_pbx_requests_total counter"));
    assert!(text.contains("# TYPE yeastar_exporter_pbx_request_duration_seconds histogram"));
    assert!(text.contains("yeastar_exporter_build_info{"));
    assert!(text.contains("process_resident_memory_bytes"));
    assert_eq!(requests(&text, "call/query", "success"), 2.0);
    assert_eq!(
        must(&text, r#"yeastar_pbx_logins_total{outcome="success"}"#),
        1.0
    );
    // Fresh each scrape: a call gone from the PBX is gone from the page.
    pbx.json("call/query:inbound", &fixture("seed-example2-inbound.json"));
    let text = exporter.scrape().await;
    assert_eq!(
        must(&text, r#"yeastar_active_calls{direction="inbound"}"#),
        2.0
    );
    pbx.json("call/query:inbound", EMPTY);
    let text = exporter.scrape().await;
    assert_eq!(
        must(&text, r#"yeastar_active_calls{direction="inbound"}"#),
        0.0
    );
    assert!(!text.contains(r#"trunk="siptrunk""#));
    // Routes.
    assert_eq!(exporter.get("/-/healthy").await.0, 200);
    assert_eq!(exporter.get("/-/ready").await.0, 200);
    assert_eq!(exporter.get("/nope").await.0, 404);
    let (status, page) = exporter.get("/").await;
    assert_eq!(status, 200);
    assert!(
        page.contains(&pbx.url()) && page.contains("<td>up (2023-11-14T22:13:20Z, just now)</td>"),
        "{page}"
    );
    let post = reqwest::Client::new()
        .post(format!("{}/metrics", exporter.url))
        .send()
        .await
        .unwrap();
    assert_eq!(post.status().as_u16(), 405);
    exporter.stop().await;
}

async fn failing_scrape(reply: Reply, outcome: &str) {
    let pbx = FakePbx::start().await;
    pbx.script("call/query:inbound", vec![reply]);
    pbx.json("call/query:outbound", EMPTY);
    let exporter = Running::start(
        config(&pbx.url(), CALLS_ONLY),
        ManualClock::new(1_700_000_000),
    )
    .await;
    let text = exporter.scrape().await;
    assert_eq!(must(&text, "yeastar_up"), 0.0, "{outcome}");
    assert_eq!(
        must(&text, r#"yeastar_collector_success{collector="calls"}"#),
        0.0
    );
    assert_eq!(requests(&text, "call/query", outcome), 1.0, "{text}");
    // No call series on a failed scrape: a zero would be a lie.
    assert_eq!(
        value(&text, r#"yeastar_active_calls{direction="inbound"}"#),
        None
    );
    // The exporter keeps serving, and recovers when the PBX does.
    assert_eq!(exporter.get("/-/healthy").await.0, 200);
    pbx.json("call/query:inbound", EMPTY);
    let text = exporter.scrape().await;
    assert_eq!(must(&text, "yeastar_up"), 1.0);
    exporter.stop().await;
}

#[tokio::test]
async fn http_500_is_up_0_and_http_error() {
    failing_scrape(Reply::Status(500, "<html>oops</html>".into()), "http_error").await;
}

#[tokio::test]
async fn truncated_body_is_up_0_and_decode_error() {
    failing_scrape(
        Reply::Truncated(fixture("seed-example2-inbound.json")),
        "decode_error",
    )
    .await;
}

#[tokio::test]
async fn errno_30003_is_up_0_and_api_error() {
    failing_scrape(
        Reply::Json(r#"{"status":"Failed","errno":"30003"}"#.into()),
        "api_error",
    )
    .await;
}

#[tokio::test]
async fn connection_closed_without_answer_is_connect_error() {
    failing_scrape(Reply::Close, "connect_error").await;
}

#[tokio::test]
async fn refused_connection_is_up_0_and_connect_error() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let exporter = Running::start(
        config(&format!("http://127.0.0.1:{port}"), CALLS_ONLY),
        ManualClock::new(1_700_000_000),
    )
    .await;
    let text = exporter.scrape().await;
    assert_eq!(must(&text, "yeastar_up"), 0.0);
    assert_eq!(requests(&text, "login", "connect_error"), 1.0);
    assert_eq!(
        must(&text, r#"yeastar_pbx_logins_total{outcome="error"}"#),
        1.0
    );
    // A transport failure is not a rejection: no suspension.
    assert_eq!(must(&text, r#"yeastar_login_suspended"#), 0.0);
    assert_eq!(exporter.get("/-/healthy").await.0, 200);
    exporter.stop().await;
}

#[tokio::test]
async fn token_expiring_between_scrapes_costs_one_login() {
    let pbx = FakePbx::start().await;
    pbx.json("call/query:inbound", &fixture("seed-example2-inbound.json"));
    pbx.json("call/query:outbound", EMPTY);
    let exporter = Running::start(config(&pbx.url(), &[]), ManualClock::new(1_700_000_000)).await;
    let text = exporter.scrape().await;
    assert_eq!(must(&text, "yeastar_up"), 1.0);
    assert_eq!(pbx.count("login"), 1);
    // The token survives between scrapes.
    exporter.scrape().await;
    assert_eq!(pbx.count("login"), 1);
    pbx.expire_tokens();
    let text = exporter.scrape().await;
    assert_eq!(must(&text, "yeastar_up"), 1.0);
    assert_eq!(pbx.count("login"), 2);
    assert_eq!(
        must(&text, r#"yeastar_pbx_logins_total{outcome="success"}"#),
        2.0
    );
    assert!(requests(&text, "call/query", "token_expired") >= 1.0);
    exporter.stop().await;
}

#[tokio::test]
async fn wrong_password_is_one_login_attempt_and_up_0() {
    let pbx = FakePbx::start().await;
    let cfg = with_login(config(&pbx.url(), &[]), USERNAME, "wrong");
    let exporter = Running::start(cfg, ManualClock::new(1_700_000_000)).await;
    let text = exporter.scrape().await;
    assert_eq!(must(&text, "yeastar_up"), 0.0);
    assert_eq!(pbx.count("login"), 1);
    assert_eq!(pbx.keys(), vec!["login".to_string()]);
    assert_eq!(
        must(&text, r#"yeastar_pbx_logins_total{outcome="rejected"}"#),
        1.0
    );
    exporter.stop().await;
}

#[tokio::test]
async fn static_token_mode_never_logs_in_or_out() {
    let pbx = FakePbx::start().await;
    pbx.json("call/query:inbound", &fixture("seed-example2-inbound.json"));
    pbx.json("call/query:outbound", EMPTY);
    pbx.add_token("crm-held-token-0123456789abcdef");
    let dir = std::env::temp_dir().join(format!("yeastar-static-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let token_file = dir.join("token");
    std::fs::write(&token_file, "crm-held-token-0123456789abcdef\n").unwrap();
    let cfg = yeastar_exporter::config::Cli::try_parse_from([
        "yeastar-exporter",
        "--pbx.url",
        &pbx.url(),
        "--pbx.token-file",
        token_file.to_str().unwrap(),
    ])
    .unwrap()
    .exporter
    .resolve(None)
    .unwrap();
    assert_eq!(
        format!("{:?}", cfg.targets[0].client.auth),
        "StaticToken(<secret>)"
    );
    let exporter = Running::start(cfg, ManualClock::new(1_571_639_500)).await;
    let text = exporter.scrape().await;
    assert_eq!(must(&text, "yeastar_up"), 1.0);
    assert_eq!(
        must(&text, r#"yeastar_active_calls{direction="inbound"}"#),
        2.0
    );
    // The token dies: up 0, counted as token_expired, and still no login of our own.
    pbx.expire_tokens();
    let text = exporter.scrape().await;
    assert_eq!(must(&text, "yeastar_up"), 0.0);
    assert_eq!(requests(&text, "call/query", "token_expired"), 2.0);
    exporter
        .app
        .logout_all(std::time::Duration::from_secs(1))
        .await;
    exporter.stop().await;
    assert_eq!((pbx.count("login"), pbx.count("logout")), (0, 0));
}
