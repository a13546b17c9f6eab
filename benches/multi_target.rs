//! Fleet scale: one exporter process, many simulated PBXes, every target probed on a fixed
//! interval like Prometheus would — and, in the same run, the floor (`support/floor.rs`: the same
//! six exchanges per probe with the least machinery) driven identically. Prints for both: CPU per
//! probe and share of one core, the ratio, RSS idle after warm-up and peak (also while `/metrics`
//! is fetched) and per target beyond the base, probe latency percentiles, failed probes.
//!
//!     cargo bench --bench multi_target
//!
//! With BENCH_TLS=1 every simulated PBX serves HTTPS with one self-signed certificate (pinned by
//! the exporter's `ca_file` and by the floor), each on its own loopback address (127.1.x.y: TLS
//! session caches are keyed by host), with its own ticket keys; the figures then include TLS
//! handshakes per probe, full and resumed, counted by the simulators.
//!
//! Knobs (environment): BENCH_TARGETS (2000), BENCH_CALLS (50), BENCH_INTERVAL_SECS (15),
//! BENCH_DURATION_SECS (60), BENCH_FLOOR (1; 0 skips the floor), BENCH_EXPORTER_ARGS (extra
//! flags for the exporter, space-separated), BENCH_EXPORTER_BIN (another build of the exporter,
//! e.g. the previous commit's, for before/after figures). The simulators run in this process; the exporter
//! (the release binary) and the floor (this bench binary, re-executed) run in their own
//! processes, measured through /proc.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use yeastar_exporter::sim::{SimConfig, Simulator};
use yeastar_exporter::support::clock;
use yeastar_exporter::support::secret::Secret;

#[path = "support/floor.rs"]
mod floor;
#[path = "support/proc.rs"]
mod proc;
use proc::{clk_tck, env, free_port, proc_cpu_ticks, proc_rss_kib};

/// What one server did under the probe load.
struct Figures {
    probes: usize,
    failures: u64,
    cpu_secs: f64,
    wall: f64,
    rss_base_kib: u64,
    rss_idle_kib: u64,
    rss_peak_kib: u64,
    latencies: Vec<f64>,
    /// TLS handshakes during the window: full, resumed.
    handshakes: (u64, u64),
    /// The exporter's /metrics after the window: series, families.
    metrics_series: Option<(usize, usize)>,
}

impl Figures {
    fn cpu_ms_per_probe(&self) -> f64 {
        self.cpu_secs * 1000.0 / self.probes.max(1) as f64
    }
    fn pct(&self, p: f64) -> f64 {
        let l = &self.latencies;
        if l.is_empty() {
            return 0.0;
        }
        l[((l.len() as f64 - 1.0) * p).round() as usize] * 1000.0
    }
    fn per_target_kib(&self, rss: u64, targets: usize) -> f64 {
        rss.saturating_sub(self.rss_base_kib) as f64 / targets.max(1) as f64
    }
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Server {
    Exporter,
    Floor,
}

/// Starts `server` for the first `n` simulators on `port`.
fn spawn(
    server: Server,
    sims: &[String],
    n: usize,
    dir: &std::path::Path,
    port: u16,
) -> std::process::Child {
    let cert = dir.join("pbx.pem");
    let tls = cert.exists();
    match server {
        Server::Exporter => {
            let pw = dir.join("password");
            std::fs::write(&pw, "demo-password").unwrap();
            let ca = if tls {
                format!("\n  ca_file: {}", cert.display())
            } else {
                String::new()
            };
            let mut text = format!(
                "auth_modules:\n  main:\n    username: api\n    password_file: {}\ndefaults:\n  auth: main{ca}\ntargets:\n",
                pw.display()
            );
            let scheme = if tls { "https" } else { "http" };
            for (i, s) in sims.iter().take(n).enumerate() {
                text.push_str(&format!("  pbx-{i}:\n    url: {scheme}://{s}\n"));
            }
            let cfg = dir.join(format!("config-{n}.yml"));
            std::fs::write(&cfg, text).unwrap();
            let extra = std::env::var("BENCH_EXPORTER_ARGS").unwrap_or_default();
            let bin = std::env::var("BENCH_EXPORTER_BIN")
                .unwrap_or_else(|_| env!("CARGO_BIN_EXE_yeastar-exporter").to_string());
            Command::new(bin)
                .args([
                    "--config.file",
                    cfg.to_str().unwrap(),
                    "--web.listen-address",
                    &format!("127.0.0.1:{port}"),
                    "--log.level",
                    "warn",
                ])
                .args(extra.split_whitespace())
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap()
        }
        Server::Floor => {
            let list = dir.join(format!("floor-{n}.txt"));
            std::fs::write(&list, sims[..n].join("\n")).unwrap();
            let mut cmd = Command::new(std::env::current_exe().unwrap());
            if tls {
                cmd.env("FLOOR_TLS_CERT", dir.join("pbx.der"));
            }
            cmd.env("FLOOR_LISTEN", format!("127.0.0.1:{port}"))
                .env("FLOOR_TARGETS", &list)
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap()
        }
    }
}

async fn wait_ready(client: &reqwest::Client, base: &str) {
    for _ in 0..200 {
        if client.get(format!("{base}/-/ready")).send().await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{base} never became ready");
}

/// RSS of `server` with one target, probed a few times: the base every target adds to.
fn base_rss(
    server: Server,
    sims: &[String],
    dir: &std::path::Path,
    rt: &tokio::runtime::Runtime,
) -> u64 {
    let port = free_port();
    let mut child = spawn(server, sims, 1, dir, port);
    let base = format!("http://127.0.0.1:{port}");
    let rss = rt.block_on(async {
        let client = reqwest::Client::new();
        wait_ready(&client, &base).await;
        for _ in 0..5 {
            let _ = client
                .get(format!("{base}/probe?target=pbx-0"))
                .send()
                .await
                .unwrap()
                .text()
                .await;
        }
        let _ = client.get(format!("{base}/metrics")).send().await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        proc_rss_kib(child.id())
    });
    let _ = child.kill();
    let _ = child.wait();
    rss
}

fn handshakes(sims: &[yeastar_exporter::sim::SimHandle]) -> (u64, u64) {
    sims.iter().fold((0, 0), |(f, r), s| {
        let (a, b) = s.sim.handshakes();
        (f + a, r + b)
    })
}

fn run(
    server: Server,
    handles: &[yeastar_exporter::sim::SimHandle],
    sims: &[String],
    dir: &std::path::Path,
    rt: &tokio::runtime::Runtime,
    interval: Duration,
    duration: Duration,
) -> Figures {
    let targets = sims.len();
    let rss_base_kib = base_rss(server, sims, dir, rt);
    let port = free_port();
    let mut child = spawn(server, sims, targets, dir, port);
    let pid = child.id();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    let figures = rt.block_on(async {
        wait_ready(&client, &base).await;
        // Warm-up: every target logs in, 32 at a time, and is probed until it answers up: all
        // the simulators share one address, and the exporter lets at most two logins to one
        // address be unsettled at once (the PBX's lockout counts per source address), so some
        // first probes are refused and must be repeated before the window — otherwise their
        // logins (with `--pbx.state-dir`, each waiting for an fsync) fall inside it.
        let retried = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let warm_start = Instant::now();
        let warm: Vec<_> = (0..32)
            .map(|w| {
                let (client, base, retried) = (client.clone(), base.clone(), retried.clone());
                tokio::spawn(async move {
                    for i in (w..targets).step_by(32) {
                        for attempt in 0.. {
                            let body = client
                                .get(format!("{base}/probe?target=pbx-{i}"))
                                .send()
                                .await
                                .unwrap()
                                .text()
                                .await
                                .unwrap_or_default();
                            if body.lines().any(|l| l == "yeastar_up 1") {
                                break;
                            }
                            assert!(attempt < 500, "pbx-{i} never came up in the warm-up");
                            retried.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                })
            })
            .collect();
        for w in warm {
            w.await.unwrap();
        }
        let retried = retried.load(std::sync::atomic::Ordering::Relaxed);
        eprintln!(
            "  {server:?}: warm-up {:.1} s, {retried} probes repeated until every target was up",
            warm_start.elapsed().as_secs_f64()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        let rss_idle_kib = proc_rss_kib(pid);
        let lat = Arc::new(std::sync::Mutex::new(Vec::<f64>::new()));
        let failures = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let cpu0 = proc_cpu_ticks(pid);
        let hs0 = handshakes(handles);
        let start = Instant::now();
        let mut tasks = Vec::with_capacity(targets);
        for i in 0..targets {
            let (client, base, lat, failures) =
                (client.clone(), base.clone(), lat.clone(), failures.clone());
            let offset = interval.mul_f64(i as f64 / targets as f64);
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep(offset).await;
                let mut tick = tokio::time::interval(interval);
                loop {
                    tick.tick().await;
                    if start.elapsed() >= duration {
                        break;
                    }
                    let t = Instant::now();
                    let r = client
                        .get(format!("{base}/probe?target=pbx-{i}"))
                        .header("X-Prometheus-Scrape-Timeout-Seconds", "10")
                        .send()
                        .await;
                    let ok = match r {
                        Ok(r) => r
                            .text()
                            .await
                            .is_ok_and(|b| b.lines().any(|l| l == "yeastar_up 1")),
                        Err(_) => false,
                    };
                    lat.lock().unwrap().push(t.elapsed().as_secs_f64());
                    if !ok {
                        failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            }));
        }
        let mut peak = 0;
        let mut n = 0u64;
        while start.elapsed() < duration {
            peak = peak.max(proc_rss_kib(pid));
            // The exporter's own metrics, fetched now and then as Prometheus would.
            if server == Server::Exporter && n % 20 == 0 {
                let _ = client
                    .get(format!("{base}/metrics"))
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await;
                peak = peak.max(proc_rss_kib(pid));
            }
            n += 1;
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        // The window is exactly `duration`: probes start only inside it (a probe in flight at
        // its end adds a few milliseconds of CPU at most).
        let cpu_secs = (proc_cpu_ticks(pid) - cpu0) as f64 / clk_tck();
        let wall = start.elapsed().as_secs_f64();
        for t in tasks {
            t.await.unwrap();
        }
        let hs1 = handshakes(handles);
        // The exporter's own /metrics once every target has been probed: its size must not
        // grow with the fleet.
        let metrics_series = if server == Server::Exporter {
            let text = client
                .get(format!("{base}/metrics"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            let families = text.lines().filter(|l| l.starts_with("# TYPE ")).count();
            let series = text
                .lines()
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .count();
            Some((series, families))
        } else {
            None
        };
        let mut latencies = lat.lock().unwrap().clone();
        latencies.sort_by(|a, b| a.partial_cmp(b).unwrap());
        Figures {
            probes: latencies.len(),
            failures: failures.load(std::sync::atomic::Ordering::Relaxed),
            cpu_secs,
            wall,
            rss_base_kib,
            rss_idle_kib,
            rss_peak_kib: peak,
            latencies,
            handshakes: (hs1.0 - hs0.0, hs1.1 - hs0.1),
            metrics_series,
        }
    });
    let _ = child.kill();
    let _ = child.wait();
    figures
}

fn report(name: &str, f: &Figures, targets: usize) {
    println!(
        "  {name:<9} probes {} ({:.1}/s), failed {}; CPU {:.1}% of one core = {:.3} ms per probe; \
         latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        f.probes,
        f.probes as f64 / f.wall,
        f.failures,
        f.cpu_secs / f.wall * 100.0,
        f.cpu_ms_per_probe(),
        f.pct(0.5),
        f.pct(0.99),
        f.pct(1.0),
    );
    println!(
        "  {:<9} RSS base {:.1} MiB, idle after warm-up {:.1} MiB ({:.1} KiB per target), peak {:.1} MiB ({:.1} KiB per target)",
        "",
        f.rss_base_kib as f64 / 1024.0,
        f.rss_idle_kib as f64 / 1024.0,
        f.per_target_kib(f.rss_idle_kib, targets),
        f.rss_peak_kib as f64 / 1024.0,
        f.per_target_kib(f.rss_peak_kib, targets),
    );
    if let Some((series, families)) = f.metrics_series {
        println!(
            "  {:<9} /metrics: {series} series in {families} families",
            ""
        );
    }
    if f.handshakes != (0, 0) {
        let p = f.probes.max(1) as f64;
        println!(
            "  {:<9} TLS handshakes per probe: {:.3} full, {:.2} resumed",
            "",
            f.handshakes.0 as f64 / p,
            f.handshakes.1 as f64 / p
        );
    }
}

fn main() {
    if let Ok(listen) = std::env::var("FLOOR_LISTEN") {
        let list = std::env::var("FLOOR_TARGETS").unwrap();
        let targets = std::fs::read_to_string(list)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        let md5 = Secret::new("demo-password").md5_hex().expose().to_string();
        let cert = std::env::var("FLOOR_TLS_CERT")
            .ok()
            .map(|p| std::fs::read(p).unwrap());
        floor::serve(&listen, targets, md5, cert);
    }
    // `cargo bench` passes --bench; nothing else to parse.
    let targets = env("BENCH_TARGETS", 2000) as usize;
    let calls = env("BENCH_CALLS", 50) as usize;
    let interval = Duration::from_secs(env("BENCH_INTERVAL_SECS", 15));
    let duration = Duration::from_secs(env("BENCH_DURATION_SECS", 60));
    let with_floor = env("BENCH_FLOOR", 1) == 1;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = std::env::temp_dir().join(format!("yeastar-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    let tls = env("BENCH_TLS", 0) == 1;
    let pem = tls.then(|| {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["pbx.example".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        std::fs::write(dir.join("pbx.pem"), cert.pem()).unwrap();
        std::fs::write(dir.join("pbx.der"), cert.der()).unwrap();
        (cert.pem(), key.serialize_pem())
    });
    let sims = rt.block_on(async {
        let mut v = Vec::with_capacity(targets);
        for i in 0..targets {
            let cfg = SimConfig::traffic(i as u64 + 1, calls);
            // Each its own ticket keys, as separate PBXes have.
            let server = pem.as_ref().map(|(c, k)| {
                yeastar_exporter::sim::tls_server_config(c.as_bytes(), k.as_bytes()).unwrap()
            });
            let addr = if tls {
                format!("127.1.{}.{}:0", i / 250, i % 250 + 1)
            } else {
                "127.0.0.1:0".to_string()
            };
            v.push(
                Simulator::start_with(cfg, clock::system(), &addr, server)
                    .await
                    .unwrap(),
            );
        }
        v
    });
    let addrs: Vec<String> = sims.iter().map(|s| s.addr.to_string()).collect();
    let exporter = run(
        Server::Exporter,
        &sims,
        &addrs,
        &dir,
        &rt,
        interval,
        duration,
    );
    let floor =
        with_floor.then(|| run(Server::Floor, &sims, &addrs, &dir, &rt, interval, duration));
    println!(
        "multi-target: {targets} targets x {calls} calls, each probed every {}s, for {:.0}s{}",
        interval.as_secs(),
        exporter.wall,
        if tls { ", HTTPS" } else { "" }
    );
    report("exporter", &exporter, targets);
    if let Some(floor) = &floor {
        report("floor", floor, targets);
        println!(
            "  ratio     CPU per probe exporter/floor: {:.2}",
            exporter.cpu_ms_per_probe() / floor.cpu_ms_per_probe()
        );
    }
    drop(sims);
    let _ = std::fs::remove_dir_all(&dir);
}
