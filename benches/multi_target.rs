//! Scale figure for multi-target mode: one exporter process, many simulated PBXes, every target
//! probed on a fixed interval like Prometheus would. Prints the exporter's CPU share (of one core),
//! its peak RSS, and probe latency percentiles.
//!
//!     cargo bench --bench multi_target
//!
//! Knobs (environment): BENCH_TARGETS (500), BENCH_CALLS (50), BENCH_INTERVAL_SECS (15),
//! BENCH_DURATION_SECS (90). The simulators run in this process; the exporter is the release
//! binary in its own process, measured through /proc.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use yeastar_exporter::clock;
use yeastar_exporter::sim::{SimConfig, Simulator};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn proc_cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the ")" of the command name: utime is the 12th, stime the 13th.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

fn proc_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn clk_tck() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

fn main() {
    // `cargo bench` passes --bench; nothing else to parse.
    let targets = env("BENCH_TARGETS", 500) as usize;
    let calls = env("BENCH_CALLS", 50) as usize;
    let interval = Duration::from_secs(env("BENCH_INTERVAL_SECS", 15));
    let duration = Duration::from_secs(env("BENCH_DURATION_SECS", 90));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = std::env::temp_dir().join(format!("yeastar-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    let sims = rt.block_on(async {
        let mut v = Vec::with_capacity(targets);
        for i in 0..targets {
            let cfg = SimConfig::traffic(i as u64 + 1, calls);
            v.push(
                Simulator::start(cfg, clock::system(), "127.0.0.1:0")
                    .await
                    .unwrap(),
            );
        }
        v
    });
    let pw = dir.join("password");
    std::fs::write(&pw, "demo-password").unwrap();
    let mut text = format!(
        "auth_modules:\n  main:\n    username: api\n    password_file: {}\ndefaults:\n  auth: main\ntargets:\n",
        pw.display()
    );
    for (i, s) in sims.iter().enumerate() {
        text.push_str(&format!("  pbx-{i}:\n    url: {}\n", s.url()));
    }
    let cfg = dir.join("config.yml");
    std::fs::write(&cfg, text).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_yeastar-exporter"))
        .args([
            "--config.file",
            cfg.to_str().unwrap(),
            "--web.listen-address",
            &format!("127.0.0.1:{port}"),
            "--log.level",
            "warn",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let pid = child.id();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();

    let (latencies, failures, peak_rss, cpu_secs, wall) = rt.block_on(async {
        for _ in 0..100 {
            if client.get(format!("{base}/-/ready")).send().await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Warm-up: every target logs in once.
        for i in 0..targets {
            let _ = client
                .get(format!("{base}/probe?target=pbx-{i}"))
                .send()
                .await
                .unwrap()
                .text()
                .await;
        }
        let lat = Arc::new(std::sync::Mutex::new(Vec::<f64>::new()));
        let failures = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let cpu0 = proc_cpu_ticks(pid);
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
                        Ok(r) => r.text().await.is_ok_and(|b| b.contains("yeastar_up 1")),
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
        while start.elapsed() < duration {
            peak = peak.max(proc_rss_kib(pid));
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        // The window is exactly `duration`: probes start only inside it (a probe in flight at
        // its end adds a few milliseconds of CPU at most).
        let cpu = (proc_cpu_ticks(pid) - cpu0) as f64 / clk_tck();
        let wall = start.elapsed().as_secs_f64();
        for t in tasks {
            t.await.unwrap();
        }
        let l = lat.lock().unwrap().clone();
        (
            l,
            failures.load(std::sync::atomic::Ordering::Relaxed),
            peak,
            cpu,
            wall,
        )
    });
    let _ = child.kill();
    let _ = child.wait();
    let mut l = latencies;
    l.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let pct = |p: f64| l[((l.len() as f64 - 1.0) * p).round() as usize] * 1000.0;
    println!(
        "multi-target: {targets} targets x {calls} calls, each probed every {}s, for {wall:.0}s",
        interval.as_secs()
    );
    println!(
        "  probes: {} ({:.1}/s), failed: {failures}",
        l.len(),
        l.len() as f64 / wall
    );
    println!(
        "  exporter CPU: {:.1}% of one core ({cpu_secs:.2} s CPU over {wall:.0} s)",
        cpu_secs / wall * 100.0
    );
    println!("  exporter peak RSS: {:.1} MiB", peak_rss as f64 / 1024.0);
    println!(
        "  probe latency: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        pct(0.5),
        pct(0.9),
        pct(0.99),
        pct(1.0)
    );
    drop(sims);
    let _ = std::fs::remove_dir_all(&dir);
}
