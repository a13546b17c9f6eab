//! Criterion benchmarks: the exporter's work on a 10,000-call PBX, the simulator's answer for it,
//! and a whole scrape over loopback.
//!
//!     cargo bench --bench collect

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use yeastar_exporter::clock;
use yeastar_exporter::collector::calls::MergedCalls;
use yeastar_exporter::collector::{CollectorSet, Target};
use yeastar_exporter::pbx::types::{CallQueryAnswer, MemberKind};
use yeastar_exporter::pbx::{Auth, Client, ClientConfig, NoopObserver};
use yeastar_exporter::secret::Secret;
use yeastar_exporter::sim::model::{CallsAnswer, Model, ModelConfig};
use yeastar_exporter::sim::{SimConfig, Simulator};

const CALLS: usize = 10_000;

fn model() -> Model {
    Model::new(
        ModelConfig {
            seed: 1,
            target_calls: CALLS,
            ..Default::default()
        },
        1_700_000_000,
    )
}

/// Every call, as one answer (the inbound answer holds about half of them).
fn answer_json(m: &Model) -> Vec<u8> {
    let calls: Vec<_> = m.calls.iter().map(|c| c.view()).collect();
    serde_json::to_vec(&CallsAnswer {
        calls,
        status: "Success",
    })
    .unwrap()
}

fn benches(c: &mut Criterion) {
    let m = model();
    let body = answer_json(&m);
    println!(
        "{} calls, call/query answer of {} KiB",
        m.calls.len(),
        body.len() / 1024
    );
    c.bench_function("exporter: decode + merge + stats, 10k calls", |b| {
        b.iter(|| {
            let a: CallQueryAnswer = serde_json::from_slice(&body).unwrap();
            let mut merged = MergedCalls::default();
            merged.add(a.calls);
            merged.stats(1_700_000_100.0)
        })
    });
    c.bench_function(
        "simulator: call/query inbound answer, 10k-call model",
        |b| b.iter(|| m.call_query_answer(MemberKind::Inbound)),
    );

    let rt = tokio::runtime::Runtime::new().unwrap();
    let (target, _sim) = rt.block_on(async {
        let sim = Simulator::start(SimConfig::traffic(1, CALLS), clock::system(), "127.0.0.1:0")
            .await
            .unwrap();
        let client = Client::new(
            ClientConfig {
                target: "bench".into(),
                url: sim.url(),
                api_path: "/api/v2.0.0".into(),
                auth: Auth::Credentials {
                    username: "api".into(),
                    password_md5: Secret::new("demo-password").md5_hex(),
                },
                timeout: Duration::from_secs(30),
                max_concurrent_requests: 1,
                max_response_bytes: 64 << 20,
                login_backoff: Duration::from_secs(600),
                ca_file: None,
                insecure_skip_verify: false,
            },
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
        "scrape of a 10k-call simulated PBX (all default collectors)",
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

criterion_group!(collect, benches);
criterion_main!(collect);
