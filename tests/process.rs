//! Issue 25: `process_cpu_seconds_total` keeps its fractions of a second (the `prometheus` crate's
//! collector truncated it to whole seconds: 0 while /proc showed 0.41 s), and every `process_*`
//! series keeps its name, help and type. Read from `/metrics` over a real socket.

mod common;

use common::*;
use yeastar_exporter::support::clock::ManualClock;

const PROCESS_FAMILIES: &str = "\
# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.
# TYPE process_cpu_seconds_total counter
# HELP process_max_fds Maximum number of open file descriptors.
# TYPE process_max_fds gauge
# HELP process_open_fds Number of open file descriptors.
# TYPE process_open_fds gauge
# HELP process_resident_memory_bytes Resident memory size in bytes.
# TYPE process_resident_memory_bytes gauge
# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.
# TYPE process_start_time_seconds gauge
# HELP process_threads Number of OS threads in the process.
# TYPE process_threads gauge
# HELP process_virtual_memory_bytes Virtual memory size in bytes.
# TYPE process_virtual_memory_bytes gauge
";

/// Some CPU work the optimiser cannot drop.
fn burn() -> u64 {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..2_000_000u64 {
        x = x.rotate_left(7) ^ i.wrapping_mul(0x2545_f491_4f6c_dd1d);
    }
    std::hint::black_box(x)
}

#[tokio::test]
async fn cpu_seconds_keep_their_fractions_and_process_families_are_unchanged() {
    let pbx = FakePbx::start().await;
    let exporter = Running::start(config(&pbx.url(), &[]), ManualClock::new(1_700_000_000)).await;
    let ticks_per_second = 100.0; // USER_HZ on Linux, which sysconf(_SC_CLK_TCK) reports
    let mut fractional = None;
    for _ in 0..200 {
        burn();
        let before = yeastar_exporter::metrics::cpu_ticks().unwrap() as f64 / ticks_per_second;
        let text = exporter.scrape().await;
        let after = yeastar_exporter::metrics::cpu_ticks().unwrap() as f64 / ticks_per_second;
        let cpu = must(&text, "process_cpu_seconds_total");
        assert!(
            before <= cpu && cpu <= after,
            "{before} <= {cpu} <= {after}"
        );
        let meta: String = text
            .lines()
            .filter(|l| l.starts_with("# HELP process_") || l.starts_with("# TYPE process_"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(meta, PROCESS_FAMILIES);
        if cpu.fract() != 0.0 {
            fractional = Some(cpu);
            break;
        }
    }
    let cpu = fractional.expect("process_cpu_seconds_total never had a fractional part");
    assert!(cpu > 0.0);
    exporter.stop().await;
}
