//! Issue 14: no client can hurt another — deadlines of other scrapers, clients that never read,
//! hostile headers, reloads under load, password floods. Real sockets throughout.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use yeastar_exporter::config::{Cli, ExporterFlags};
use yeastar_exporter::exporter::App;
use yeastar_exporter::sim::{Faults, SimConfig, Simulator};
use yeastar_exporter::support::clock::ManualClock;

const T0: u64 = 1_700_000_000;

async fn slow_sim(latency_ms: u64) -> yeastar_exporter::sim::SimHandle {
    let clock = ManualClock::new(T0);
    let h = Simulator::start(SimConfig::traffic(3, 20), clock, "127.0.0.1:0")
        .await
        .unwrap();
    h.sim.set_faults(Faults {
        latency: Duration::from_millis(latency_ms),
        ..Default::default()
    });
    h
}

async fn get_with_timeout(url: &str, timeout: &str) -> String {
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

/// One client with a 0.6 s timeout (a 0.1 s deadline) keeps scraping a PBX that takes 0.03 s per
/// request (a collection takes ~0.2 s): the 15 normal scrapes beside it are all up (the issue
/// saw 0 of 15).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_deadline_client_does_not_make_the_pbx_look_down() {
    let h = slow_sim(30).await;
    let exporter = Arc::new(
        Running::start(
            sim_config(&h.url(), &["--pbx.timeout", "8s"]),
            ManualClock::new(T0),
        )
        .await,
    );
    let url = format!("{}/metrics", exporter.url);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let hostile = {
        let (url, stop) = (url.clone(), stop.clone());
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                // Up only when it joined a collection about to end.
                let text = get_with_timeout(&url, "0.6").await;
                must(&text, "yeastar_up");
                n += 1;
            }
            n
        })
    };
    let mut ups = 0;
    for _ in 0..15 {
        let text = get_with_timeout(&url, "10").await;
        ups += must(&text, "yeastar_up") as usize;
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let hostile_scrapes = hostile.await.unwrap();
    assert_eq!(ups, 15, "normal scrapes up");
    assert!(
        hostile_scrapes > 15,
        "the short client scraped {hostile_scrapes} times"
    );
}

/// A collection whose scraper went away still finishes: its requests are all sent and answered,
/// its result is kept, and the PBX's request slot is free for the next scrape.
/// On paused time: the PBX's latency, the deadline and the wait are tokio timers.
#[tokio::test(start_paused = true)]
async fn an_abandoned_collection_finishes_and_frees_its_slot() {
    let h = slow_sim(100).await;
    let exporter = Running::start(sim_config(&h.url(), &[]), ManualClock::new(T0)).await;
    let url = format!("{}/metrics", exporter.url);
    let text = get_with_timeout(&url, "0.6").await;
    assert_eq!(must(&text, "yeastar_up"), 0.0);
    // Login + 6 requests at 0.1 s each, while nobody waits.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let target = exporter.app.targets().iter().next().unwrap().clone();
    assert!(target.last().unwrap().up, "the collection did not finish");
    assert_eq!(h.sim.requests("call/query:inbound"), 1);
    assert_eq!(h.sim.requests("deviceinfo/query"), 1);
    let text = get_with_timeout(&url, "10").await;
    assert_eq!(must(&text, "yeastar_up"), 1.0);
    assert_eq!(h.sim.requests("call/query:inbound"), 2);
    assert_eq!(h.sim.requests("login"), 1);
    exporter.stop().await;
}

/// Clients that pipeline `GET /metrics` and never read hold all 4 slots; the write timeout cuts
/// them and a normal scrape gets through (the issue saw every normal scrape fail for 90 s+).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_never_read_are_cut_by_the_write_timeout() {
    let h = slow_sim(0).await;
    let exporter = Running::start(
        sim_config(
            &h.url(),
            &["--web.max-connections", "4", "--web.write-timeout", "1s"],
        ),
        ManualClock::new(T0),
    )
    .await;
    let addr = exporter.url.trim_start_matches("http://").to_string();
    let mut hogs = Vec::new();
    for _ in 0..4 {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        let one = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".repeat(2000);
        // Whatever part the kernel takes; the rest is never sent (nor is any answer read).
        let _ = tokio::time::timeout(Duration::from_millis(500), s.write_all(one.as_bytes())).await;
        hogs.push(s);
    }
    // No keep-alive: the only connections left afterwards are the hogs'. Without the write
    // timeout the hogs hold the 4 slots for ever, so getting an answer at all is the proof; the
    // client's limit is only there to end the test (no timed assertion: the machine is shared).
    let text = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
        .get(format!("{}/metrics", exporter.url))
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(must(&text, "yeastar_up"), 1.0);
    // The hogs were disconnected (without reading a byte of theirs: reading would let the
    // server's writes go on): nothing but closed connections is left.
    let mut open = usize::MAX;
    for _ in 0..600 {
        open = exporter.server.connections.len();
        if open == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(open, 0, "clients that never read were kept");
    drop(hogs);
    exporter.stop().await;
}

/// Sends `head` raw; the status code of the answer, if there was one.
async fn raw_status(addr: &str, head: &[u8]) -> Option<u16> {
    let mut s = TcpStream::connect(addr).await.ok()?;
    s.write_all(head).await.ok()?;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf);
    text.strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
}

/// The header values that panicked `http::deadline` (and friends) get an answer, as does
/// everything proptest throws at the real router; the server keeps serving.
#[test]
fn no_request_head_panics_the_server() {
    use proptest::prelude::*;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let pbx = rt.block_on(FakePbx::start());
    pbx.json("call/query:inbound", r#"{"status":"Success","Calls":[]}"#);
    pbx.json("call/query:outbound", r#"{"status":"Success","Calls":[]}"#);
    let exporter = rt.block_on(Running::start(
        config(&pbx.url(), &["--collector.queues"]),
        ManualClock::new(T0),
    ));
    let addr = exporter.url.trim_start_matches("http://").to_string();
    for v in [
        "1e308",
        "1.85e19",
        "-0",
        "NaN",
        "inf",
        "-inf",
        "0",
        "1e-320",
        "9".repeat(400).as_str(),
    ] {
        let head = format!(
            "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Prometheus-Scrape-Timeout-Seconds: {v}\r\nConnection: close\r\n\r\n"
        );
        assert_eq!(
            rt.block_on(raw_status(&addr, head.as_bytes())),
            Some(200),
            "{v}"
        );
    }
    let paths = prop_oneof![
        Just("/metrics".to_string()),
        Just("/probe".to_string()),
        Just("/".to_string()),
        Just("/-/reload".to_string()),
        "/[a-z%0-9?=&.+-]{0,30}",
    ];
    let methods = prop_oneof![Just("GET"), Just("HEAD"), Just("POST"), Just("PUT")];
    let values = prop_oneof![
        "[ -~]{0,40}",
        Just("1e308".to_string()),
        Just("NaN".to_string()),
        Just("-0".to_string()),
        any::<f64>().prop_map(|f| f.to_string()),
    ];
    let mut runner = proptest::test_runner::TestRunner::new(proptest::test_runner::Config {
        cases: 64,
        ..Default::default()
    });
    runner
        .run(
            &(methods, paths, values.clone(), values, "[a-zA-Z%0-9=&]{0,40}"),
            |(method, path, timeout, auth, query)| {
                let head = format!(
                    "{method} {path}?{query} HTTP/1.1\r\nHost: x\r\nX-Prometheus-Scrape-Timeout-Seconds: {timeout}\r\nAuthorization: {auth}\r\nConnection: close\r\n\r\n"
                );
                let status = rt.block_on(raw_status(&addr, head.as_bytes()));
                prop_assert!(status.is_some(), "no answer to {head:?}");
                Ok(())
            },
        )
        .unwrap();
    let (status, _) = rt.block_on(exporter.get("/-/healthy"));
    assert_eq!(status, 200);
    rt.block_on(exporter.stop());
}

fn multi_flags(path: &std::path::Path) -> ExporterFlags {
    use clap::Parser;
    Cli::try_parse_from([
        "yeastar-exporter",
        "--config.file",
        path.to_str().unwrap(),
        "--web.listen-address",
        "127.0.0.1:0",
    ])
    .unwrap()
    .exporter
}

/// Hundreds of reloads under load, each removing or changing targets while they are scraped: a
/// removed target never gets its series back, and every token issued is logged out exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_under_load_are_atomic_and_log_every_token_out_once() {
    let mut sims = Vec::new();
    for _ in 0..4 {
        sims.push(slow_sim(0).await);
    }
    let dir = tempdir("reload-race");
    let path = dir.join("config.yml");
    let names = ["a", "b", "c", "d"];
    let write = |n: usize| {
        // Even reloads: all four; odd: only a and b, with another timeout (changed targets).
        let mut text = String::from(
            "auth_modules:\n  main:\n    username: api\n    password: demo-password\ndefaults:\n  auth: main\n  collectors: [calls]\ntargets:\n",
        );
        let keep = if n.is_multiple_of(2) { 4 } else { 2 };
        for (i, name) in names.iter().take(keep).enumerate() {
            let timeout = if n.is_multiple_of(2) { "5s" } else { "4s" };
            text.push_str(&format!(
                "  {name}:\n    url: {}\n    timeout: {timeout}\n",
                sims[i].url()
            ));
        }
        std::fs::write(&path, text).unwrap();
    };
    write(0);
    let flags = multi_flags(&path);
    let cfg = flags.load(None).unwrap();
    let loader: yeastar_exporter::exporter::Loader = {
        let flags = flags.clone();
        Arc::new(move || flags.load(None))
    };
    let app = App::with_loader(
        cfg,
        yeastar_exporter::support::clock::system(),
        Some(loader),
    )
    .unwrap();
    let exporter = Running::start_app(app.clone()).await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for name in names {
        let url = format!("{}/probe?target={name}", exporter.url);
        let stop = stop.clone();
        load.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let _ = client.get(&url).send().await;
            }
        }));
    }
    for n in 1..=301 {
        write(n);
        app.reload().unwrap();
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for l in load {
        l.await.unwrap();
    }
    // The last reload left a and b. Let logins and logouts in flight end.
    tokio::time::sleep(Duration::from_millis(500)).await;
    // /metrics carries fleet totals only: no target, live or removed, has a series of its own,
    // and the target count is the configuration's.
    let text = app.metrics.encode();
    assert!(
        !text.contains("target=\""),
        "per-target series on /metrics:\n{}",
        lines_with(&text, "yeastar_exporter_").join("\n")
    );
    assert_eq!(must(&text, "yeastar_exporter_targets"), 2.0);
    exporter.stop().await;
    app.logout_all(Duration::from_secs(5)).await;
    let mut issued = 0;
    let mut logouts = 0;
    for h in &sims {
        issued += h.sim.issued_tokens().len() as u64;
        logouts += h.sim.requests("logout");
        assert_eq!(h.sim.live_tokens(), 0, "a token was never logged out");
    }
    assert!(issued > 100, "only {issued} logins: not enough churn");
    assert_eq!(logouts, issued, "every token logged out exactly once");
}

/// A flood of distinct wrong passwords waits for the one bcrypt slot without taking blocking
/// threads, and the cache keeps the credentials in use (least recently used go first).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_floods_cannot_evict_the_credentials_in_use() {
    let pbx = FakePbx::start().await;
    let dir = tempdir("bcrypt-flood");
    let hash = bcrypt::hash("right", 4).unwrap();
    let file = dir.join("web.yml");
    std::fs::write(&file, format!("basic_auth_users:\n  prom: {hash}\n")).unwrap();
    let cfg = config(&pbx.url(), &["--web.config.file", file.to_str().unwrap()]);
    let exporter = Running::start(cfg, ManualClock::new(T0)).await;
    let client = reqwest::Client::new();
    let get = |pw: String| {
        let client = client.clone();
        let url = format!("{}/", exporter.url);
        async move {
            client
                .get(url)
                .basic_auth("prom", Some(pw))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(get("right".into()).await, 200);
    assert_eq!(exporter.server.web.bcrypt_runs(), 1);
    // 1,200 distinct wrong passwords, 64 at a time, the right one used between batches.
    for batch in 0..19 {
        let mut tasks = Vec::new();
        for i in 0..64 {
            tasks.push(tokio::spawn(get(format!("wrong-{batch}-{i}"))));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), 401);
        }
        assert_eq!(get("right".into()).await, 200);
    }
    // Every wrong one cost one bcrypt; the right one never again, though 1,216 > 1,024 entries.
    assert_eq!(exporter.server.web.bcrypt_runs(), 1 + 19 * 64);
    exporter.stop().await;
}
