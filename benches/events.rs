//! The event receiver under load (issue 16): one exporter process (the release binary) with
//! events on, fed `NewCdr` reports over HTTP exactly as a PBX posts them (the vendor's malformed
//! request, one connection per report) by this process. Prints:
//!
//! - reports per second the receiver took, and the exporter's CPU per report (its process's CPU
//!   over the run, through /proc): the receiver runs on the exporter's one runtime thread, so
//!   `1 / CPU per report` is what one core carries;
//! - RSS per target with events on: BENCH_EVENT_TARGETS targets, each sent enough distinct reports
//!   to fill its duplicate window, against the same exporter whose targets have events off.
//!
//!     cargo bench --bench events
//!
//! Knobs (environment): BENCH_EVENTS (100000 reports for the rate), BENCH_SENDERS (32 at once),
//! BENCH_EVENT_TARGETS (200).
//!
//! Since issue 24 a report counts only on the path a login registered, from the PBX's address:
//! these targets are never logged in, so every report here is refused (`wrong_source`) — the
//! figures are the receiver's read-and-refuse path (what a flood from the LAN costs), and the
//! memory run no longer fills duplicate windows (only counted reports enter them; their bound is
//! `DEDUP_KEYS` keys, 1,114,128 bytes per target, unit-tested in `collector::events`).

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[path = "support/proc.rs"]
mod proc;
use proc::{clk_tck, env, free_port, proc_cpu_ticks, proc_rss_kib};

fn proc_cpu_secs(pid: u32) -> f64 {
    proc_cpu_ticks(pid) as f64 / clk_tck()
}

/// An exporter with `targets` PBXes (never scraped: only their receivers are used), events on or
/// off; returns it and its receiver's port.
fn exporter(dir: &std::path::Path, targets: usize, events: bool) -> (std::process::Child, u16) {
    let pw = dir.join("password");
    std::fs::write(&pw, "x").unwrap();
    let mut text = format!(
        "auth_modules:\n  main:\n    username: api\n    password_file: {}\ndefaults:\n  auth: main\n  events: {events}\ntargets:\n",
        pw.display()
    );
    for i in 0..targets {
        // Distinct URLs that are never dialled (nothing scrapes these targets).
        text.push_str(&format!(
            "  pbx-{i}:\n    url: http://127.0.{}.{}:9\n",
            i / 250,
            i % 250 + 1
        ));
    }
    let cfg = dir.join(format!("events-{targets}-{events}.yml"));
    std::fs::write(&cfg, text).unwrap();
    let (web, events_port) = (free_port(), free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_yeastar-exporter"))
        .args([
            "--config.file",
            cfg.to_str().unwrap(),
            "--web.listen-address",
            &format!("127.0.0.1:{web}"),
            "--events.listen-address",
            &format!("127.0.0.1:{events_port}"),
            "--log.level",
            "error",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", web)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    std::thread::sleep(Duration::from_millis(200));
    (child, events_port)
}

/// One report posted as the PBX does: a new connection, the documented malformed head, no
/// Content-Length; true for a 200.
fn post(port: u16, target: usize, callid: &str) -> bool {
    let body = format!(
        r#"{{"event":"NewCdr","callid":"{callid}","timestart":"2019-10-23 22:18:50","callfrom":"1023","callto":"2023","callduraction":"19","talkduraction":"14","srctrunkname":"siptrunk","dsttrcunkname":"","pincode":"","status":"ANSWERED","type":"Inbound","recording":"","didnumber":"","agentringtime":"0","sn":"369451090405"}}"#
    );
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let head = format!(
        "POST /events/pbx-{target} HTTP/1.1\r\nHost: 127.0.0.1: {port}\r\nAccept: application/json\r\nUser-Agent: WebAPI\r\nContent-Type: application/json\r\nAccept: application/json\r\n\r\n"
    );
    if s.write_all(head.as_bytes()).is_err() || s.write_all(body.as_bytes()).is_err() {
        return false;
    }
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    answer.starts_with(b"HTTP/1.1 200")
}

/// Posts `count` reports from `senders` threads, spread over `targets`; (seconds, failures).
fn blast(port: u16, targets: usize, count: u64, senders: u64) -> (f64, u64) {
    let next = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let threads: Vec<_> = (0..senders)
        .map(|_| {
            let (next, failed) = (next.clone(), failed.clone());
            std::thread::spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count {
                        return;
                    }
                    let target = (i as usize) % targets;
                    if !post(port, target, &format!("1700000000.{i}")) {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    (
        start.elapsed().as_secs_f64(),
        failed.load(Ordering::Relaxed),
    )
}

fn main() {
    let dir = std::env::temp_dir().join(format!("yeastar-events-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let count = env("BENCH_EVENTS", 100_000);
    let senders = env("BENCH_SENDERS", 32);
    let fleet = env("BENCH_EVENT_TARGETS", 200) as usize;

    // 1. Rate: one target takes every report.
    let (mut child, port) = exporter(&dir, 1, true);
    let pid = child.id();
    let cpu0 = proc_cpu_secs(pid);
    let (secs, failed) = blast(port, 1, count, senders);
    let cpu = proc_cpu_secs(pid) - cpu0;
    let _ = child.kill();
    let _ = child.wait();
    println!("events: {count} NewCdr reports over HTTP, {senders} senders, one connection each");
    println!(
        "  receiver  {:.0} reports/s taken, failed {failed}; exporter CPU {:.1} µs per report = {:.0} reports/s on one core",
        count as f64 / secs,
        cpu / count as f64 * 1e6,
        count as f64 / cpu.max(1e-9),
    );

    // 2. Memory: `fleet` targets, each sent 1,040 distinct reports (refused: see above).
    let per = 1_040u64;
    let (mut off, _) = exporter(&dir, fleet, false);
    std::thread::sleep(Duration::from_millis(300));
    let rss_off = proc_rss_kib(off.id());
    let _ = off.kill();
    let _ = off.wait();
    let (mut on, port) = exporter(&dir, fleet, true);
    let rss_on_idle = proc_rss_kib(on.id());
    let (_, failed) = blast(port, fleet, per * fleet as u64, senders);
    std::thread::sleep(Duration::from_millis(300));
    let rss_on_full = proc_rss_kib(on.id());
    let _ = on.kill();
    let _ = on.wait();
    println!(
        "  memory    {fleet} targets: events off {:.1} MiB; on, before any report {:.1} MiB; after {per} distinct refused reports each (failed {failed}) {:.1} MiB = {:.1} KiB per target beyond events off",
        rss_off as f64 / 1024.0,
        rss_on_idle as f64 / 1024.0,
        rss_on_full as f64 / 1024.0,
        (rss_on_full.saturating_sub(rss_off)) as f64 / fleet as f64,
    );
    let _ = std::fs::remove_dir_all(&dir);
}
