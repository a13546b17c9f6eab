//! Runs the exporter's own work on a simulated N-call scrape in a loop, for a profiler:
//!     cargo build --release --example profile_work
//!     valgrind --tool=callgrind target/release/examples/profile_work 1000 20
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use yeastar_exporter::clock::ManualClock;
use yeastar_exporter::collector::{Answers, CollectorSet, Target};
use yeastar_exporter::pbx::{Auth, Client, ClientConfig, NoopObserver};
use yeastar_exporter::secret::Secret;
use yeastar_exporter::sim::{SimConfig, Simulator};

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The shipped binary's allocator, counting live bytes and their peak.
struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(live, Ordering::Relaxed);
        unsafe { mimalloc::MiMalloc.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn main() {
    let mut args = std::env::args().skip(1);
    let calls: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(20);
    let now = 1_700_000_000;
    let sim = Simulator::new(SimConfig::traffic(1, calls), ManualClock::new(now));
    let get = |e: &str, b: serde_json::Value| sim.answer_bytes(e, &b);
    let answers = Answers {
        inbound: get("call/query", json!({"type": "inbound"})),
        outbound: get("call/query", json!({"type": "outbound"})),
        internal: Some(get("extension/query_call", json!({"number": "all"}))),
        trunks: Some(get("trunk/list", json!({}))),
        extensions: Some(get("extension/list", json!({}))),
        device: Some(get("deviceinfo/query", json!({}))),
    };
    let clock = ManualClock::new(now + 10);
    let client = Client::new(
        ClientConfig {
            target: "profile".into(),
            url: "http://127.0.0.1:9".into(),
            api_path: "/api/v2.0.0".into(),
            auth: Auth::Credentials {
                username: "api".into(),
                password_md5: Secret::new("x").md5_hex(),
            },
            timeout: Duration::from_secs(5),
            max_concurrent_requests: 1,
            max_response_bytes: 64 << 20,
            login_backoff: Duration::from_secs(600),
            ca_file: None,
            insecure_skip_verify: false,
        },
        Arc::new(NoopObserver),
        clock.clone(),
    )
    .unwrap();
    let target = Target::new(Arc::new(client), CollectorSet::default(), clock);
    drop(sim);
    let input: usize = answers.parts().map(<[u8]>::len).sum();
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let mut bytes = 0;
    for _ in 0..rounds {
        bytes += target.render_answers(&answers).text.len();
    }
    let mib = |b: usize| b as f64 / (1 << 20) as f64;
    println!(
        "{rounds} rounds, {bytes} bytes of text; answers {:.1} MiB; heap before {:.1} MiB, peak during {:.1} MiB (+{:.1}), after {:.1} MiB",
        mib(input),
        mib(before),
        mib(PEAK.load(Ordering::Relaxed)),
        mib(PEAK.load(Ordering::Relaxed) - before),
        mib(LIVE.load(Ordering::Relaxed))
    );
}
