//! Issue 7: the operator kit against a real Prometheus.
//!
//! Ignored by plain `cargo test` (a machine without Prometheus); `.ci/run` installs Debian's
//! `prometheus` package and runs it with `--ignored`, where a missing binary is a failure.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;
use yeastar_exporter::clock;
use yeastar_exporter::sim::{SimConfig, Simulator};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn bin(name: &str) -> String {
    let var = format!("{}_BIN", name.to_uppercase());
    std::env::var(&var).unwrap_or_else(|_| name.to_string())
}

/// A real Prometheus with `config`, its data under `dir`, listening on loopback `port`.
fn prometheus(config: &Path, dir: &Path, port: u16) -> KillOnDrop {
    KillOnDrop(
        Command::new(bin("prometheus"))
            .args([
                &format!("--config.file={}", config.display()),
                &format!("--storage.tsdb.path={}", dir.join("data").display()),
                &format!("--web.listen-address=127.0.0.1:{port}"),
                "--log.level=warn",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("prometheus not runnable ({e}); install Debian's prometheus package")
            }),
    )
}

fn promtool(args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let mut cmd = Command::new(bin("promtool"));
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    if stdin.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let mut child = cmd.spawn().unwrap_or_else(|e| {
        panic!("promtool not runnable ({e}); install Debian's prometheus package")
    });
    if let Some(text) = stdin {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

async fn query(prom: &str, expr: &str) -> Value {
    let url = format!("{prom}/api/v1/query");
    let r = reqwest::Client::new()
        .get(url)
        .query(&[("query", expr)])
        .send()
        .await
        .unwrap();
    serde_json::from_str(&r.text().await.unwrap()).unwrap()
}

fn dashboard_exprs() -> Vec<(String, String)> {
    let text =
        std::fs::read_to_string(format!("{ROOT}/grafana/dashboards/yeastar-pbx.json")).unwrap();
    let d: Value = serde_json::from_str(&text).unwrap();
    let mut out = Vec::new();
    for p in d["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().into_iter().flatten() {
            out.push((
                p["title"].as_str().unwrap().to_string(),
                t["expr"].as_str().unwrap().to_string(),
            ));
        }
    }
    for v in d["templating"]["list"].as_array().unwrap() {
        if let Some(q) = v["definition"].as_str() {
            // label_values(metric{...}, label) → the series query Grafana sends.
            let inner = q
                .trim_start_matches("label_values(")
                .rsplit_once(',')
                .unwrap()
                .0;
            out.push((format!("variable {}", v["name"]), inner.to_string()));
        }
    }
    out
}

fn alert_exprs(path: &Path) -> Vec<(String, String)> {
    let rules: Value = serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut out = Vec::new();
    for g in rules["groups"].as_array().unwrap() {
        for r in g["rules"].as_array().unwrap() {
            out.push((
                r["alert"].as_str().unwrap().to_string(),
                r["expr"].as_str().unwrap().to_string(),
            ));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs prometheus and promtool; .ci/run runs it"]
async fn dashboard_and_alerts_work_against_a_real_prometheus() {
    let dir = std::env::temp_dir().join(format!("yeastar-e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();

    // 1. The simulator, the exporter (every collector on), a real Prometheus.
    let sim = Simulator::start(SimConfig::traffic(5, 60), clock::system(), "127.0.0.1:0")
        .await
        .unwrap();
    let cfg = sim_config(&sim.url(), &["--collector.queues"]);
    let exporter = Running::start(cfg, clock::system()).await;
    let exporter_addr = exporter.url.trim_start_matches("http://").to_string();

    // The rules as shipped, with the RING threshold lowered to 5 s so the test need not wait 2 min.
    let alerts = std::fs::read_to_string(format!("{ROOT}/deploy/prometheus/alerts.yml")).unwrap();
    let lowered = alerts.replace(
        r#"yeastar_member_status_max_age_seconds{status="RING"} > 120"#,
        r#"yeastar_member_status_max_age_seconds{status="RING"} > 5"#,
    );
    assert_ne!(alerts, lowered, "RING threshold not found in alerts.yml");
    let rules = dir.join("alerts.yml");
    std::fs::write(&rules, &lowered).unwrap();
    let port = free_port();
    let prom_cfg = dir.join("prometheus.yml");
    std::fs::write(
        &prom_cfg,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs:\n  - job_name: yeastar\n    static_configs:\n      - targets: ['{exporter_addr}']\n",
            rules.display()
        ),
    )
    .unwrap();
    let (ok, out) = promtool(&["check", "config", prom_cfg.to_str().unwrap()], None);
    assert!(ok, "{out}");
    let _prom = prometheus(&prom_cfg, &dir, port);
    let prom = format!("http://127.0.0.1:{port}");

    // 2. Wait for data: a few samples of everything, enough for rate() over 30 s.
    let mut ready = false;
    for _ in 0..120 {
        if let Ok(r) = reqwest::get(format!(
            "{prom}/api/v1/query?query=count_over_time(yeastar_up[1m])"
        ))
        .await
        {
            let v: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap_or_default();
            if v["data"]["result"][0]["value"][1]
                .as_str()
                .and_then(|s| s.parse::<f64>().ok())
                .is_some_and(|n| n >= 8.0)
            {
                ready = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(ready, "Prometheus never collected 8 samples of yeastar_up");

    // 3. Hold a call in RING for ten minutes; the lowered alert must reach firing.
    sim.sim.with_model(|m| {
        let now = m.now();
        m.add_stuck_ringing_call(now + 600)
    });

    // Every dashboard query parses, evaluates and returns data.
    let mut failures = Vec::new();
    for (title, expr) in dashboard_exprs() {
        let e = expr
            .replace("$__rate_interval", "30s")
            .replace("$job", "yeastar")
            .replace("$instance", ".+");
        let v = query(&prom, &e).await;
        if v["status"] != "success" {
            failures.push(format!("{title}: {e}: {v}"));
        } else if v["data"]["result"].as_array().is_none_or(|r| r.is_empty()) {
            failures.push(format!("{title}: {e}: no data"));
        }
    }
    // Every alert expression (as shipped) parses and evaluates.
    for (name, expr) in alert_exprs(Path::new(&format!("{ROOT}/deploy/prometheus/alerts.yml"))) {
        let v = query(&prom, &expr).await;
        if v["status"] != "success" {
            failures.push(format!("alert {name}: {expr}: {v}"));
        }
    }
    assert!(
        failures.is_empty(),
        "queries failed:\n{}",
        failures.join("\n")
    );

    let mut state = String::new();
    for _ in 0..60 {
        let v: Value = serde_json::from_str(
            &reqwest::get(format!("{prom}/api/v1/alerts"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
        )
        .unwrap();
        state = v["data"]["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["labels"]["alertname"] == "YeastarCallStuckRinging")
            .map(|a| a["state"].as_str().unwrap().to_string())
            .next()
            .unwrap_or_default();
        if state == "firing" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(state, "firing", "YeastarCallStuckRinging did not fire");

    // 4. promtool on the live output, the rules, their tests and every example config.
    let live = exporter.scrape().await;
    let (ok, out) = promtool(&["check", "metrics"], Some(&live));
    assert!(ok && out.trim().is_empty(), "promtool check metrics: {out}");
    let deploy = PathBuf::from(format!("{ROOT}/deploy/prometheus"));
    let (ok, out) = promtool(
        &[
            "check",
            "rules",
            deploy.join("alerts.yml").to_str().unwrap(),
        ],
        None,
    );
    assert!(ok, "{out}");
    let (ok, out) = promtool(
        &[
            "test",
            "rules",
            deploy.join("alerts_test.yml").to_str().unwrap(),
        ],
        None,
    );
    assert!(ok, "{out}");
    let mut configs = 0;
    for entry in std::fs::read_dir(&deploy).unwrap() {
        let p = entry.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with("prometheus") && name.ends_with(".yml") {
            let (ok, out) = promtool(&["check", "config", p.to_str().unwrap()], None);
            assert!(ok, "{name}: {out}");
            configs += 1;
        }
    }
    assert_eq!(configs, 3);
    exporter.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue 8: the shipped web config passes `promtool check web-config` (the toolkit's own checker)
/// and a real Prometheus scrapes the exporter through it: TLS with a CA file, basic auth.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs prometheus and promtool; .ci/run runs it"]
async fn prometheus_scrapes_over_tls_with_basic_auth() {
    let dir = tempdir("e2e-web");
    let ca = common::pki::Ca::new("exporter CA");
    ca.leaf(&["127.0.0.1", "localhost"])
        .write(&dir, "yeastar-exporter");
    let web = dir.join("web-config.yml");
    std::fs::copy(format!("{ROOT}/deploy/web/web-config.yml"), &web).unwrap();
    let (ok, out) = promtool(&["check", "web-config", web.to_str().unwrap()], None);
    assert!(ok, "promtool check web-config: {out}");

    let sim = Simulator::start(SimConfig::traffic(7, 10), clock::system(), "127.0.0.1:0")
        .await
        .unwrap();
    let cfg = sim_config(&sim.url(), &["--web.config.file", web.to_str().unwrap()]);
    let exporter = Running::start(cfg, clock::system()).await;
    let exporter_addr = exporter.url.trim_start_matches("http://").to_string();
    let ca_file = dir.join("ca.crt");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let port = free_port();
    let prom_cfg = dir.join("prometheus.yml");
    std::fs::write(
        &prom_cfg,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\nscrape_configs:\n  - job_name: yeastar\n    scheme: https\n    tls_config:\n      ca_file: {ca}\n    basic_auth:\n      username: prometheus\n      password: change-me\n    static_configs:\n      - targets: ['{exporter_addr}']\n  - job_name: no-credentials\n    scheme: https\n    tls_config:\n      ca_file: {ca}\n    static_configs:\n      - targets: ['{exporter_addr}']\n",
            ca = ca_file.display()
        ),
    )
    .unwrap();
    let (ok, out) = promtool(&["check", "config", prom_cfg.to_str().unwrap()], None);
    assert!(ok, "{out}");
    let _prom = prometheus(&prom_cfg, &dir, port);
    let prom = format!("http://127.0.0.1:{port}");
    // Prometheus may not be listening yet: a failed query is "no value".
    let value = |expr: &'static str| {
        let url = format!("{prom}/api/v1/query");
        async move {
            let r = reqwest::Client::new()
                .get(url)
                .query(&[("query", expr)])
                .send()
                .await
                .ok()?;
            let v: Value = serde_json::from_str(&r.text().await.ok()?).ok()?;
            v["data"]["result"][0]["value"][1]
                .as_str()
                .and_then(|s| s.parse::<f64>().ok())
        }
    };
    let mut seen = (None, None, None);
    for _ in 0..60 {
        seen = (
            value(r#"up{job="yeastar"}"#).await,
            value(r#"yeastar_up{job="yeastar"}"#).await,
            value(r#"up{job="no-credentials"}"#).await,
        );
        if seen == (Some(1.0), Some(1.0), Some(0.0)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(seen, (Some(1.0), Some(1.0), Some(0.0)));
    exporter.stop().await;
}
