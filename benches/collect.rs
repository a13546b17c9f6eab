//! Criterion benchmarks of the exporter's own work per scrape, against the floor.
//!
//!     cargo bench --bench collect
//!
//! - `scrape_work/exporter/N`: one scrape's work once the answers are in — decode every answer of
//!   the default collectors (call/query inbound and outbound, extension/query_call, trunk/list,
//!   extension/list, deviceinfo/query), merge and aggregate, encode the text — on answers the
//!   simulator produced for a PBX with about N active calls.
//! - `scrape_work/value_floor/N`: `serde_json::from_slice::<serde_json::Value>` of the same bytes:
//!   what merely reading the answers costs.
//! - the simulator's answer at 10,000 calls, and a whole scrape over loopback at 10,000 calls.
//!
//! At the end a table gives both medians, their ratio and the targets (ratio ≤ 1.5 and < 2 ms at
//! 1,000 calls; < 20 ms at 10,000), read from Criterion's own estimates.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};
use serde_json::Value;
use yeastar_exporter::collector::{Answers, CollectorSet, Target};
use yeastar_exporter::pbx::model::MemberKind;
use yeastar_exporter::pbx::{Auth, Client, ClientConfig, NoopObserver};
use yeastar_exporter::sim::model::{Model, ModelConfig};
use yeastar_exporter::sim::{SimConfig, Simulator};
use yeastar_exporter::support::clock::{self, ManualClock};
use yeastar_exporter::support::secret::Secret;

// The allocator of the shipped binary (src/main.rs), so the figures are the binary's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SIZES: [usize; 3] = [10, 1_000, 10_000];
const NOW: u64 = 1_700_000_000;

fn client_config(url: String) -> ClientConfig {
    ClientConfig {
        family: Default::default(),
        target: "bench".into(),
        url,
        api_path: "/api/v2.0.0".into(),
        auth: Auth::Credentials {
            username: "api".into(),
            password: Secret::new("demo-password"),
        },
        timeout: Duration::from_secs(30),
        max_concurrent_requests: 1,
        max_response_bytes: 64 << 20,
        login_backoff: Duration::from_secs(600),
        ca_file: None,
        insecure_skip_verify: false,
        proxy_url: None,
        events: None,
    }
}

/// The simulator's answers to one scrape of the default collectors, and the distinct calls in them.
pub fn answers(calls: usize) -> (Answers, usize) {
    let sim = Simulator::new(SimConfig::traffic(1, calls), ManualClock::new(NOW));
    let answers = Answers::scrape(|e, b| sim.answer_bytes(e, b));
    let distinct = sim.with_model(|m| {
        m.calls
            .iter()
            .map(|c| c.callid.clone())
            .collect::<HashSet<_>>()
            .len()
    });
    (answers, distinct)
}

fn scrape_work(c: &mut Criterion) {
    let mut g = c.benchmark_group("scrape_work");
    for calls in SIZES {
        let (answers, distinct) = answers(calls);
        let bytes: usize = answers.parts().map(<[u8]>::len).sum();
        println!("~{calls} calls: {distinct} active calls, {bytes} bytes of answers");
        g.throughput(Throughput::Bytes(bytes as u64));
        if calls >= 10_000 {
            g.sample_size(30);
        }
        let target = Target::offline(CollectorSet::default(), ManualClock::new(NOW + 10));
        let out = target.render_answers(&answers);
        assert!(out.up, "{:?}", out.error);
        g.bench_with_input(BenchmarkId::new("exporter", calls), &answers, |b, a| {
            b.iter(|| target.render_answers(a))
        });
        g.bench_with_input(BenchmarkId::new("value_floor", calls), &answers, |b, a| {
            b.iter(|| {
                a.parts()
                    .map(|p| serde_json::from_slice::<Value>(p).unwrap())
                    .collect::<Vec<_>>()
            })
        });
    }
    g.finish();
}

fn simulator_and_end_to_end(c: &mut Criterion) {
    let m = Model::new(
        ModelConfig {
            seed: 1,
            target_calls: 10_000,
            ..Default::default()
        },
        NOW,
    );
    c.bench_function(
        "simulator: call/query inbound answer, 10k-call model",
        |b| b.iter(|| m.call_query_answer(MemberKind::Inbound)),
    );

    let rt = tokio::runtime::Runtime::new().unwrap();
    let (target, _sim) = rt.block_on(async {
        let sim = Simulator::start(
            SimConfig::traffic(1, 10_000),
            clock::system(),
            "127.0.0.1:0",
        )
        .await
        .unwrap();
        let client = Client::new(
            client_config(sim.url()),
            Arc::new(NoopObserver),
            clock::system(),
        )
        .unwrap();
        let target = Arc::new(Target::new(
            Arc::new(client),
            CollectorSet::default(),
            clock::system(),
        ));
        (target, sim)
    });
    let mut g = c.benchmark_group("end to end");
    g.sample_size(10);
    g.bench_function(
        "scrape of a 10k-call simulated PBX over loopback (all default collectors)",
        |b| {
            b.iter(|| {
                rt.block_on(async {
                    let out = target
                        .scrape(tokio::time::Instant::now() + Duration::from_secs(30))
                        .await;
                    assert!(out.up);
                })
            })
        },
    );
    g.finish();
}

/// Criterion's output directory, as Criterion finds it.
fn criterion_dir() -> PathBuf {
    if let Ok(home) = std::env::var("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("criterion")
}

/// The median of a benchmark's latest run, in seconds.
fn median(function: &str, calls: usize) -> Option<f64> {
    let path = criterion_dir()
        .join("scrape_work")
        .join(function)
        .join(calls.to_string())
        .join("new/estimates.json");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    Some(v["median"]["point_estimate"].as_f64()? / 1e9)
}

fn summary() {
    println!();
    println!("own work per scrape vs the serde_json::Value floor (medians of this run)");
    println!(
        "{:>8}  {:>12}  {:>12}  {:>6}  target",
        "calls", "exporter", "Value floor", "ratio"
    );
    for calls in SIZES {
        let (Some(ours), Some(floor)) = (median("exporter", calls), median("value_floor", calls))
        else {
            println!("{calls:>8}  (not measured in this run)");
            continue;
        };
        let ratio = ours / floor;
        let target = match calls {
            1_000 => format!(
                "ratio <= 1.5 and < 2 ms: {}",
                if ratio <= 1.5 && ours < 0.002 {
                    "met"
                } else {
                    "MISSED"
                }
            ),
            10_000 => format!("< 20 ms: {}", if ours < 0.020 { "met" } else { "MISSED" }),
            _ => String::new(),
        };
        println!(
            "{calls:>8}  {:>9.3} ms  {:>9.3} ms  {ratio:>6.2}  {target}",
            ours * 1e3,
            floor * 1e3
        );
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    scrape_work(&mut c);
    simulator_and_end_to_end(&mut c);
    c.final_summary();
    summary();
}
