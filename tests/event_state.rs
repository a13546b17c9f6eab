//! Issue 24: the per-target event state has a stated byte bound
//! ([`yeastar_exporter::collector::events::MAX_STATE_BYTES`]), measured here by the allocator
//! itself: one target's `EventStats` filled to every cap — 256 trunk names, 256 queue names twice,
//! each as long as a label value may be in the widest characters, a full dedup window, 20,000
//! call legs — and then hit with the issue's attack (256 `NewCdr` with 60,000-character trunk
//! names) holds no more than the bound, and writes no label value over 64 characters.
//!
//! One test only in this binary: the counting allocator counts every thread.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use yeastar_exporter::collector::events::{DEDUP_KEYS, EventStats, MAX_STATE_BYTES};
use yeastar_exporter::collector::families::{Families, MAX_LABEL_CHARS};
use yeastar_exporter::pbx::s_series::events::parse;

/// Bytes allocated and not freed.
static LIVE: AtomicIsize = AtomicIsize::new(0);

struct Counting;

// SAFETY: every call is passed to the system allocator unchanged; only the counts are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::SeqCst);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::SeqCst);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as isize - layout.size() as isize, Ordering::SeqCst);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn record(s: &mut EventStats, body: &str) {
    s.record(parse(body.as_bytes()), 1_700_000_000_000);
}

fn cdr(callid: &str, src: &str, dst: &str) -> String {
    format!(
        r#"{{"event":"NewCdr","callid":"{callid}","callduraction":"20","talkduraction":"10","srctrunkname":"{src}","dsttrcunkname":"{dst}","status":"ANSWERED","type":"Inbound","sn":"1"}}"#
    )
}

/// A name of `MAX_LABEL_CHARS` 4-byte characters, distinct per `i`.
fn widest(i: usize) -> String {
    format!("{i:04}{}", "😀".repeat(MAX_LABEL_CHARS - 4))
}

#[test]
fn one_targets_event_state_stays_within_its_stated_bound() {
    let before = LIVE.load(Ordering::SeqCst);
    let mut s = Box::new(EventStats::default());
    // 256 trunk names (the cap) on both legs' keys, and the reports past the cap.
    for i in 0..300 {
        record(&mut s, &cdr(&format!("1.{i}"), &widest(i), ""));
    }
    for i in 0..300 {
        let queue = widest(i);
        record(
            &mut s,
            &format!(
                r#"{{"event":"QueueAgentRingNoAnswerTimeout","queue":"queue-{queue}","agent":"a","callid":"2.{i}","sn":"1"}}"#
            ),
        );
        record(
            &mut s,
            &format!(
                r#"{{"event":"QueueAutoPause","queue":"{queue}","agent":"a","misscall":[{{"callid":"3.{i}"}}],"sn":"1"}}"#
            ),
        );
    }
    // A full dedup window and more.
    for i in 0..DEDUP_KEYS + 100 {
        record(&mut s, &cdr(&format!("4.{i}"), "", ""));
    }
    // 20,000 call legs and more: CallStatus reports of 25 members each.
    for call in 0..1_000 {
        let members: Vec<String> = (0..25)
            .map(|m| {
                format!(r#"{{"inbound":{{"channelid":"PJSIP/trunk-{call}-{m}","memberstatus":"RING"}}}}"#)
            })
            .collect();
        record(
            &mut s,
            &format!(
                r#"{{"event":"CallStatus","callid":"5.{call}","members":[{}],"sn":"1"}}"#,
                members.join(",")
            ),
        );
    }
    assert_eq!(s.legs.len(), 20_000);
    // The issue's attack: 256 NewCdr, each with a 60,000-character trunk name (15 MiB).
    for i in 0..256 {
        let long = format!("{i:03}{}", "x".repeat(59_997));
        record(&mut s, &cdr(&format!("6.{i}"), &long, &long));
    }
    let held = LIVE.load(Ordering::SeqCst) - before;
    assert!(
        held as usize <= MAX_STATE_BYTES,
        "one target's event state holds {held} bytes, over its bound of {MAX_STATE_BYTES}"
    );
    // What it writes: every trunk and queue label value at most 64 characters, the widest ones
    // exactly 64, and no more than 256 names per family.
    let f = Families::default();
    s.write(&f);
    let text = f.encode();
    assert!(text.len() < 1024 * 1024, "{} bytes", text.len());
    for (family, label) in [
        ("yeastar_trunk_calls_completed_total{", "trunk=\""),
        ("yeastar_queue_agent_ring_timeouts_total{", "queue=\""),
        ("yeastar_queue_agent_auto_pauses_total{", "queue=\""),
    ] {
        let mut names: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with(family))
            .filter_map(|l| l.split(label).nth(1)?.split('"').next())
            .collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 256, "{family}");
        assert!(
            names.iter().all(|n| n.chars().count() == MAX_LABEL_CHARS),
            "{family}: {:?}",
            names.iter().map(|n| n.chars().count()).max()
        );
    }
    println!(
        "event state: {held} bytes held (bound {MAX_STATE_BYTES}), {} bytes written",
        text.len()
    );
}
