//! Runs the exporter's own work on a simulated N-call scrape in a loop, for a profiler:
//!     cargo build --release --example profile_work
//!     valgrind --tool=callgrind target/release/examples/profile_work 1000 20

use yeastar_exporter::collector::{Answers, CollectorSet, Target};
use yeastar_exporter::sim::{SimConfig, Simulator};
use yeastar_exporter::support::clock::ManualClock;

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
    let answers = Answers::scrape(|e, b| sim.answer_bytes(e, b));
    let target = Target::offline(CollectorSet::default(), ManualClock::new(now + 10));
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
