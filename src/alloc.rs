//! The allocator's one knob the exporter turns: giving free memory back to the system.
//!
//! The binary runs on mimalloc (see `main.rs`), which keeps freed pages for reuse and returns them
//! only as it keeps allocating. After a huge PBX answer (one cut at `--pbx.max-response-bytes`
//! above all) an idle exporter would hold that memory for good; [`release_free_memory`] asks
//! mimalloc to return what it does not use now.

/// Returns the allocator's unused pages to the system. Costs a walk of the heap: call it after
/// rare, large work, not per request.
pub fn release_free_memory() {
    // SAFETY: mi_collect has no preconditions; it only frees memory no allocation refers to. When
    // mimalloc is not the global allocator (the library's tests), its heaps are empty and this is
    // a no-op.
    unsafe { libmimalloc_sys::mi_collect(true) }
}
