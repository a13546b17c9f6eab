//! The allocator's one knob the exporter turns: giving free memory back to the system.
//!
//! The binary runs on mimalloc (see `main.rs`), which keeps freed pages for reuse and returns them
//! only as it keeps allocating. After a huge PBX answer (one cut at `--pbx.max-response-bytes`
//! above all) an idle exporter would hold that memory for good; [`release_free_memory`] asks
//! mimalloc to return what it does not use now — on this thread at once, and a second later on the
//! runtime's other worker threads, whose heaps received part of the frees.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// A round on the other threads is scheduled.
static SCHEDULED: AtomicBool = AtomicBool::new(false);

/// Returns the allocator's unused pages to the system. Costs a walk of the heap: call it after
/// rare, large work, not per request.
pub fn release_free_memory() {
    collect_here();
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    if SCHEDULED.swap(true, Ordering::SeqCst) {
        return;
    }
    runtime.spawn(async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        SCHEDULED.store(false, Ordering::SeqCst);
        // Tasks land on the workers as the scheduler places them: a few reach each of them.
        let rounds: Vec<_> = (0..8)
            .map(|_| tokio::spawn(async { collect_here() }))
            .collect();
        for r in rounds {
            let _ = r.await;
        }
        collect_here();
    });
}

fn collect_here() {
    // SAFETY: mi_collect has no preconditions; it only frees memory no allocation refers to. When
    // mimalloc is not the global allocator (the library's tests), its heaps are empty and this is
    // a no-op.
    unsafe { libmimalloc_sys::mi_collect(true) }
}
