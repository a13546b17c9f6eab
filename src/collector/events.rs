//! Call accounting from the PBX's own event reports (issue 16): what a scrape cannot see — every
//! completed call by direction and outcome, per trunk, talk and wait time, failed set-ups, queue
//! agents' missed calls, PBX boots — as counters and histograms one target keeps across scrapes.
//!
//! [`EventStats::record`] takes what its PBX's family read from one report ([`Report`]) the
//! event gate accepted ([`crate::pbx::gate`]); [`EventStats::write`] writes the families. A
//! report the PBX resends (it does when it gets no 200) counts once: the keys of reports counted
//! ([`Report::key`]: a `NewCdr`'s callid as the PBX writes it, trimmed, …)
//! are remembered for [`DEDUP_WINDOW`], at most [`DEDUP_KEYS`] of them. Only accepted reports
//! enter that window, so forged traffic cannot flush it. Labels carry
//! no phone or extension number, no callid and no agent name: direction, outcome, reason, the
//! PBX's trunk names and queue numbers (both bounded by [`MAX_LABEL_VALUES`], each cut to
//! [`super::families::MAX_LABEL_CHARS`] characters).
//!
//! **Bounded whatever is sent**: one target's event state ([`EventStats`] with its [`EventLegs`])
//! holds at most [`MAX_STATE_BYTES`] (2.5 MiB), however many reports arrive and however long
//! their texts: 20,000 call legs (32 bytes each in a hash table of 32,768 slots, ≈ 1.03 MiB),
//! 256 trunk keys and 2 × 256 queue names of at most 64 characters (≤ 256 bytes each, ≈ 0.3 MiB
//! with the trees), the dedup window (issue 24: 32,768 keys, ≤ 1,114,128 bytes, filled only by
//! reports the event gate accepted) and fixed counters (≈ 2 KiB). `tests/event_state.rs`
//! fills every cap with the widest names, adds the issue's attack (256 `NewCdr` with
//! 60,000-character trunk names) and measures what the allocator holds.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::hash::BuildHasher;
use std::time::Duration;

use super::families::{Families, label_text};
use crate::pbx::gate::Refusal;
use crate::pbx::model::reports::{
    CallLegs, Cdr, CdrDirection, CdrOutcome, Event, FailReason, Kind, ParseError, Report,
};
use crate::pbx::model::{ChannelId, Status};

/// Report keys remembered to drop a resent report: a day of a busy PBX's calls (a 300-user PBX
/// makes about 15,000 a day; the PBX resends within minutes). Kept as 64-bit hashes with their
/// arrival time in a ring (16 bytes each, 524,288 bytes when full) and a set of the hashes
/// (65,536 buckets of 9 bytes, 589,840 bytes when full): at most 1,114,128 bytes per target, and
/// only as many as the PBX's own reports filled.
pub const DEDUP_KEYS: usize = 32_768;

/// How long a report key is remembered.
pub const DEDUP_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// The keys of reports counted in the last [`DEDUP_WINDOW`], at most [`DEDUP_KEYS`], oldest first.
#[derive(Debug, Default)]
struct Dedup {
    /// (hash, arrival unix millis), oldest first.
    order: VecDeque<(u64, u64)>,
    index: HashSet<u64>,
}

impl Dedup {
    /// Whether `hash` was counted within the window; remembers it if not.
    fn seen(&mut self, hash: u64, now_millis: u64) -> bool {
        let window = DEDUP_WINDOW.as_millis() as u64;
        while let Some(&(h, at)) = self.order.front() {
            if at > now_millis || now_millis - at < window {
                break;
            }
            self.order.pop_front();
            self.index.remove(&h);
        }
        if self.index.contains(&hash) {
            return true;
        }
        if self.order.len() >= DEDUP_KEYS
            && let Some((h, _)) = self.order.pop_front()
        {
            self.index.remove(&h);
        }
        self.order.push_back((hash, now_millis));
        self.index.insert(hash);
        false
    }

    fn len(&self) -> usize {
        self.order.len()
    }
}

/// Refusals of one target are logged at most once per this long per reason.
pub const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(60);

/// When each refusal reason of one target was last logged, and how many came since.
#[derive(Debug, Default)]
pub struct RefusalLog {
    last: [Option<u64>; Refusal::ALL.len()],
    since: [u64; Refusal::ALL.len()],
}

impl RefusalLog {
    /// Notes one refusal for `reason` at `now_millis`: `Some(n)` when a line is due now, `n` the
    /// refusals since the last line (this one included).
    pub fn note(&mut self, reason: Refusal, now_millis: u64) -> Option<u64> {
        let i = reason.index();
        self.since[i] += 1;
        let every = REFUSAL_LOG_EVERY.as_millis() as u64;
        match self.last[i] {
            // (A clock stepped back makes a line due: never a silence of a day.)
            Some(at) if now_millis >= at && now_millis - at < every => None,
            _ => {
                self.last[i] = Some(now_millis);
                Some(std::mem::take(&mut self.since[i]))
            }
        }
    }
}

/// Distinct trunk or queue names counted per target; reports naming more are counted without
/// them (in the totals, not per trunk or queue; `yeastar_events_label_overflow_total`), so a
/// lying sender cannot grow the exporter.
pub const MAX_LABEL_VALUES: usize = 256;

/// The most one target's event state holds, in bytes (see the module's documentation).
pub const MAX_STATE_BYTES: usize = 2560 * 1024;

/// Talk time buckets (seconds): from a wrong number to a long call.
pub const TALK_BUCKETS: [f64; 11] = [
    10.0, 30.0, 60.0, 120.0, 180.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0,
];

/// Wait time buckets (seconds: call duration minus talk time): ringing and queueing, up to the
/// usual abandon times.
pub const WAIT_BUCKETS: [f64; 11] = [
    3.0, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 120.0, 300.0, 600.0,
];

/// The `direction` label of a CDR.
pub fn direction_label(d: CdrDirection) -> &'static str {
    match d {
        CdrDirection::Inbound => "inbound",
        CdrDirection::Outbound => "outbound",
        CdrDirection::Internal => "internal",
        CdrDirection::Other => "other",
    }
}

/// The `outcome` label of a CDR.
pub fn outcome_label(o: CdrOutcome) -> &'static str {
    match o {
        CdrOutcome::Answered => "answered",
        CdrOutcome::NoAnswer => "no_answer",
        CdrOutcome::Busy => "busy",
        CdrOutcome::Voicemail => "voicemail",
        CdrOutcome::Other => "other",
    }
}

/// The `reason` label of a failed call set-up.
pub fn reason_label(r: FailReason) -> &'static str {
    match r {
        FailReason::NoOutboundRestriction => "no_outbound_permission",
        FailReason::Congestion => "congestion",
        FailReason::Dnd => "dnd",
        FailReason::LineUnreachable => "line_unreachable",
        FailReason::UserBusy => "user_busy",
        FailReason::Gone => "gone",
        FailReason::NotFound => "not_found",
        FailReason::RequestTimeout => "request_timeout",
        FailReason::TemporarilyUnavailable => "temporarily_unavailable",
        FailReason::AddressIncomplete => "address_incomplete",
        FailReason::BusyHere => "busy_here",
        FailReason::Declined => "declined",
        FailReason::Other => "other",
    }
}

/// The `type` label of a received event.
pub fn kind_label(k: Kind) -> &'static str {
    match k {
        Kind::NewCdr => "new_cdr",
        Kind::CallStatus => "call_status",
        Kind::CallFailed => "call_failed",
        Kind::BootUp => "boot_up",
        Kind::QueueAutoPause => "queue_auto_pause",
        Kind::QueueAgentRingNoAnswerTimeout => "queue_agent_ring_no_answer_timeout",
        Kind::ExtensionStatus => "extension_status",
        Kind::Transfer => "transfer",
        Kind::Forward => "forward",
        Kind::Dtmf => "dtmf",
        Kind::PlayPromptEnd => "play_prompt_end",
        Kind::Invite => "invite",
        Kind::Incoming => "incoming",
        Kind::ConfigChange => "config_change",
        Kind::Satisfaction => "satisfaction",
        Kind::ConferenceStatus => "conference_status",
        Kind::UaCstaCall => "uacsta_call",
    }
}

/// A cumulative histogram with fixed buckets.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    /// Observations at or below each bucket's bound (not yet cumulative).
    counts: [u64; 11],
    pub count: u64,
    pub sum: f64,
}

impl Histogram {
    fn observe(&mut self, bounds: &[f64; 11], v: f64) {
        if let Some(i) = bounds.iter().position(|b| v <= *b) {
            self.counts[i] += 1;
        }
        self.count += 1;
        self.sum += v;
    }

    /// (upper bound, cumulative count) per bucket.
    pub fn cumulative(&self, bounds: &[f64; 11]) -> Vec<(f64, u64)> {
        let mut total = 0;
        bounds
            .iter()
            .zip(self.counts)
            .map(|(b, c)| {
                total += c;
                (*b, total)
            })
            .collect()
    }
}

/// What one report did to the counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Counted.
    Counted,
    /// A `NewCdr` whose callid was counted already: dropped.
    Duplicate,
    /// Not an event report: counted as a parse error.
    ParseError,
}

/// When each call leg entered its status, as the PBX reported it (`CallStatus`), keyed as
/// [`super::calls::StatusAges`] keys members. Bounded by
/// [`super::keys::MAX_TRACKED_MEMBERS`]; a leg leaves on `BYE`, on its call's `NewCdr`, or after
/// 12 hours without news.
#[derive(Debug, Default)]
pub struct EventLegs {
    /// member key → (call key, status, since unix ms).
    legs: std::collections::HashMap<u64, (u64, Status, u64)>,
}

/// A leg not reported on for this long is forgotten (its call's end was never reported).
const LEG_TTL_MS: u64 = 12 * 3600 * 1000;

impl EventLegs {
    /// When the member `key` entered `status`, if a report said so.
    pub fn since(&self, key: u64, status: Status) -> Option<u64> {
        self.legs
            .get(&key)
            .filter(|(_, s, _)| *s == status)
            .map(|(_, _, since)| *since)
    }

    fn report(&mut self, legs: &CallLegs, now_millis: u64) {
        let call = super::keys::call_key(&legs.callid);
        for (channel, status) in &legs.legs {
            let key = call ^ ChannelId::of(channel).0;
            if *status == Status::Bye {
                self.legs.remove(&key);
                continue;
            }
            match self.legs.get_mut(&key) {
                Some(e) if e.1 == *status => e.2 = e.2.min(now_millis),
                Some(e) => *e = (call, *status, now_millis),
                None => {
                    if self.legs.len() >= super::keys::MAX_TRACKED_MEMBERS {
                        self.legs
                            .retain(|_, e| now_millis.saturating_sub(e.2) < LEG_TTL_MS);
                        if self.legs.len() >= super::keys::MAX_TRACKED_MEMBERS {
                            continue;
                        }
                    }
                    self.legs.insert(key, (call, *status, now_millis));
                }
            }
        }
    }

    fn call_ended(&mut self, callid: &str) {
        let call = super::keys::call_key(callid);
        self.legs.retain(|_, e| e.0 != call);
    }

    /// Legs tracked now.
    pub fn len(&self) -> usize {
        self.legs.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.legs.is_empty()
    }
}

/// Everything one target counts from its PBX's reports.
#[derive(Debug, Default)]
pub struct EventStats {
    completed: [[u64; 5]; 4],
    /// (trunk, 0 inbound / 1 outbound) → by outcome.
    trunks: BTreeMap<(String, usize), [u64; 5]>,
    talk: [Histogram; 4],
    wait: [Histogram; 4],
    failed: [u64; 13],
    ring_timeouts: BTreeMap<String, u64>,
    auto_pauses: BTreeMap<String, u64>,
    boots: u64,
    received: [u64; 17],
    received_other: u64,
    received_v1: u64,
    parse_errors: u64,
    repaired: u64,
    /// By [`Refusal::index`].
    refused: [u64; Refusal::ALL.len()],
    duplicates: u64,
    label_overflow: u64,
    last_event_millis: Option<u64>,
    /// The keys of reports counted lately.
    seen: Dedup,
    /// The legs `CallStatus` reports describe, for exact member-status ages.
    pub legs: EventLegs,
    /// Whether the TCP event connection is up (TCP report mode only).
    connected: Option<bool>,
}

/// A queue name as a key: cut as label values are.
fn label_owned(queue: Option<String>) -> String {
    super::families::label_owned(std::borrow::Cow::Owned(queue.unwrap_or_default()))
}

/// Adds one to `map[key]` unless the map is full and lacks `key`; false when it was full.
fn bump<K: Ord>(map: &mut BTreeMap<K, u64>, key: K) -> bool {
    if let Some(n) = map.get_mut(&key) {
        *n += 1;
        return true;
    }
    if map.len() >= MAX_LABEL_VALUES {
        return false;
    }
    map.insert(key, 1);
    true
}

impl EventStats {
    /// Counts one report read at `now_millis` (unix milliseconds).
    pub fn record(&mut self, read: Result<Report, ParseError>, now_millis: u64) -> Recorded {
        let parsed = match read {
            Ok(p) => p,
            Err(_) => {
                self.parse_errors += 1;
                return Recorded::ParseError;
            }
        };
        self.last_event_millis = Some(now_millis);
        match parsed.event.kind() {
            Some(k) => self.received[Kind::ALL.iter().position(|x| *x == k).unwrap_or(0)] += 1,
            None => self.received_other += 1,
        }
        if parsed.legacy {
            self.received_v1 += 1;
        }
        if parsed.repaired {
            self.repaired += 1;
        }
        if let Some(key) = parsed.key {
            // A fixed seed: the same key hashes alike for the process's life.
            let h = foldhash::fast::FixedState::with_seed(0x5eed).hash_one(key.as_bytes());
            if self.seen.seen(h, now_millis) {
                self.duplicates += 1;
                return Recorded::Duplicate;
            }
        }
        match parsed.event {
            Event::NewCdr(cdr) => {
                self.legs.call_ended(&cdr.callid);
                self.count_cdr(&cdr)
            }
            Event::CallStatus(legs) => self.legs.report(&legs, now_millis),
            Event::CallFailed(r) => {
                self.failed[FailReason::ALL.iter().position(|x| *x == r).unwrap_or(12)] += 1
            }
            Event::BootUp => self.boots += 1,
            Event::QueueAgentRingNoAnswerTimeout { queue } => {
                if !bump(&mut self.ring_timeouts, label_owned(queue)) {
                    self.label_overflow += 1;
                }
            }
            Event::QueueAutoPause { queue } => {
                if !bump(&mut self.auto_pauses, label_owned(queue)) {
                    self.label_overflow += 1;
                }
            }
            Event::Known(_) | Event::Other(_) => {}
        }
        Recorded::Counted
    }

    /// The TCP event connection went up or down.
    pub fn set_connected(&mut self, up: bool) {
        self.connected = Some(up);
    }

    /// A report the event gate refused, for `reason`.
    pub fn refused(&mut self, reason: Refusal) {
        self.refused[reason.index()] += 1;
    }

    /// Reports refused for `reason` so far.
    pub fn refused_for(&self, reason: Refusal) -> u64 {
        self.refused[reason.index()]
    }

    /// Report keys remembered now.
    pub fn dedup_len(&self) -> usize {
        self.seen.len()
    }

    fn count_cdr(&mut self, c: &Cdr) {
        let d = CdrDirection::ALL
            .iter()
            .position(|x| *x == c.direction)
            .unwrap_or(3);
        let o = CdrOutcome::ALL
            .iter()
            .position(|x| *x == c.outcome)
            .unwrap_or(4);
        self.completed[d][o] += 1;
        for (trunk, leg) in [(&c.inbound_trunk, 0), (&c.outbound_trunk, 1)] {
            let Some(trunk) = trunk else { continue };
            let key = (label_text(trunk).to_string(), leg);
            if let Some(n) = self.trunks.get_mut(&key) {
                n[o] += 1;
            } else if self.trunks.len() < MAX_LABEL_VALUES {
                let mut n = [0; 5];
                n[o] = 1;
                self.trunks.insert(key, n);
            } else {
                self.label_overflow += 1;
            }
        }
        let talk = c.talk_secs.unwrap_or(0);
        if c.outcome == CdrOutcome::Answered {
            self.talk[d].observe(&TALK_BUCKETS, talk as f64);
        }
        if let Some(call) = c.call_secs {
            self.wait[d].observe(&WAIT_BUCKETS, call.saturating_sub(talk) as f64);
        }
    }

    /// Completed calls counted for `direction` and `outcome` (for tests and the bench).
    pub fn completed(&self, direction: CdrDirection, outcome: CdrOutcome) -> u64 {
        let d = CdrDirection::ALL.iter().position(|x| *x == direction);
        let o = CdrOutcome::ALL.iter().position(|x| *x == outcome);
        d.zip(o).map_or(0, |(d, o)| self.completed[d][o])
    }

    /// Writes the event families (every direction × outcome, reason and type from the start).
    pub fn write(&self, m: &Families) {
        let completed = m.counter_vec(
            "yeastar_calls_completed_total",
            "Calls the PBX reported finished (NewCdr, counted once however often it resends), by direction and outcome.",
            &["direction", "outcome"],
        );
        for (d, dir) in CdrDirection::ALL.iter().enumerate() {
            for (o, out) in CdrOutcome::ALL.iter().enumerate() {
                completed
                    .with_label_values(&[direction_label(*dir), outcome_label(*out)])
                    .set(self.completed[d][o] as f64);
            }
        }
        let trunks = m.counter_vec(
            "yeastar_trunk_calls_completed_total",
            "Finished calls per trunk: inbound on the trunk they came in on, outbound on the one they left by, by outcome.",
            &["trunk", "direction", "outcome"],
        );
        for ((trunk, leg), n) in &self.trunks {
            let dir = if *leg == 0 { "inbound" } else { "outbound" };
            for (o, out) in CdrOutcome::ALL.iter().enumerate() {
                trunks
                    .with_label_values(&[trunk, dir, outcome_label(*out)])
                    .set(n[o] as f64);
            }
        }
        for (name, help, hist, bounds) in [
            (
                "yeastar_call_talk_seconds",
                "Talk time of answered calls (NewCdr talkduraction), by direction.",
                &self.talk,
                &TALK_BUCKETS,
            ),
            (
                "yeastar_call_wait_seconds",
                "Time before answer or hang-up of finished calls (call duration minus talk time), by direction.",
                &self.wait,
                &WAIT_BUCKETS,
            ),
        ] {
            let f = m.histogram_vec(name, help, &["direction"]);
            for (d, dir) in CdrDirection::ALL.iter().enumerate() {
                f.with_label_values(&[direction_label(*dir)]).set_histogram(
                    &hist[d].cumulative(bounds),
                    hist[d].count,
                    hist[d].sum,
                );
            }
        }
        let failed = m.counter_vec(
            "yeastar_calls_failed_total",
            "Calls the PBX could not set up (CallFailed), by reason.",
            &["reason"],
        );
        for (i, r) in FailReason::ALL.iter().enumerate() {
            failed
                .with_label_values(&[reason_label(*r)])
                .set(self.failed[i] as f64);
        }
        for (name, help, map) in [
            (
                "yeastar_queue_agent_ring_timeouts_total",
                "Queue calls an agent let ring out (QueueAgentRingNoAnswerTimeout), by queue number.",
                &self.ring_timeouts,
            ),
            (
                "yeastar_queue_agent_auto_pauses_total",
                "Queue agents paused automatically after missed calls (QueueAutoPause), by queue number.",
                &self.auto_pauses,
            ),
        ] {
            let f = m.counter_vec(name, help, &["queue"]);
            for (queue, n) in map {
                f.with_label_values(&[queue]).set(*n as f64);
            }
        }
        m.counter(
            "yeastar_pbx_boots_total",
            "PBX boots reported (BootUp).",
            self.boots as f64,
        );
        let received = m.counter_vec(
            "yeastar_events_received_total",
            "Event reports received from the PBX and read, by type.",
            &["type"],
        );
        for (i, k) in Kind::ALL.iter().enumerate() {
            received
                .with_label_values(&[kind_label(*k)])
                .set(self.received[i] as f64);
        }
        received
            .with_label_values(&["other"])
            .set(self.received_other as f64);
        for (name, help, v) in [
            (
                "yeastar_events_v1_total",
                "Event reports in the v1 format (the PBX was logged in without \"version\").",
                self.received_v1,
            ),
            (
                "yeastar_events_parse_errors_total",
                "Event reports that were not a JSON object with an event name.",
                self.parse_errors,
            ),
            (
                "yeastar_events_repaired_total",
                "Event reports that were invalid JSON (trailing commas) and read once repaired.",
                self.repaired,
            ),
            (
                "yeastar_events_duplicates_total",
                "Reports dropped because the same report was counted already (the PBX resends): NewCdr, CallFailed and queue reports, by their callid.",
                self.duplicates,
            ),
            (
                "yeastar_events_label_overflow_total",
                "Reports counted without their trunk or queue because 256 distinct names were already counted.",
                self.label_overflow,
            ),
        ] {
            m.counter(name, help, v as f64);
        }
        let refused = m.counter_vec(
            "yeastar_events_refused_total",
            "Event reports refused as not the PBX's own (answered 200 and dropped), by reason: unknown_path (not the path the last login registered), stale_path (the previous login's path after its 60 s grace), wrong_source (not from an address of the PBX), wrong_sn (another serial number than the PBX's deviceinfo/query reports).",
            &["reason"],
        );
        for r in Refusal::ALL {
            refused
                .with_label_values(&[r.as_str()])
                .set(self.refused[r.index()] as f64);
        }
        if let Some(up) = self.connected {
            m.gauge(
                "yeastar_events_connected",
                "1 while the TCP event connection to the PBX is up and logged in (TCP report mode).",
            )
            .set(if up { 1.0 } else { 0.0 });
        }
        if let Some(ms) = self.last_event_millis {
            m.gauge(
                "yeastar_events_last_received_timestamp_seconds",
                "When the last event report was received (unix seconds).",
            )
            .set(ms as f64 / 1000.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pbx::s_series::events::parse;

    fn cdr(
        callid: &str,
        kind: &str,
        status: &str,
        call: u64,
        talk: u64,
        src: &str,
        dst: &str,
    ) -> String {
        format!(
            r#"{{"event":"NewCdr","callid":"{callid}","callduraction":"{call}","talkduraction":"{talk}","srctrunkname":"{src}","dsttrcunkname":"{dst}","status":"{status}","type":"{kind}","sn":"1"}}"#
        )
    }

    fn record(s: &mut EventStats, body: &str) -> Recorded {
        s.record(parse(body.as_bytes()), 1_700_000_000_000)
    }

    #[test]
    fn a_resent_cdr_counts_once() {
        let mut s = EventStats::default();
        let body = cdr("1.1", "Inbound", "ANSWERED", 40, 30, "sip-1", "");
        assert_eq!(record(&mut s, &body), Recorded::Counted);
        assert_eq!(record(&mut s, &body), Recorded::Duplicate);
        assert_eq!(s.completed(CdrDirection::Inbound, CdrOutcome::Answered), 1);
        assert_eq!(s.duplicates, 1);
        assert_eq!(s.received[0], 2, "both arrivals are received events");
    }

    #[test]
    fn the_families_are_exact() {
        let mut s = EventStats::default();
        record(
            &mut s,
            &cdr("1.1", "Inbound", "ANSWERED", 40, 30, "sip-1", ""),
        );
        record(
            &mut s,
            &cdr("1.2", "Inbound", "NO ANSWER", 25, 0, "sip-1", ""),
        );
        record(&mut s, &cdr("1.3", "Outbound", "BUSY", 5, 0, "", "gsm-1"));
        record(
            &mut s,
            r#"{"event":"CallFailed","reason":"486 Busy here","sn":"1"}"#,
        );
        record(&mut s, r#"{"event":"BootUp","sn":"1"}"#);
        record(
            &mut s,
            r#"{"event":"QueueAgentRingNoAnswerTimeout","queue":"queue-6700","agent":"A B","callid":"1.9","caller":"2000","sn":"1"}"#,
        );
        record(&mut s, "not json");
        record(&mut s, r#"{"event":"SomethingNew"}"#);
        let f = Families::default();
        s.write(&f);
        let text = f.encode();
        for line in [
            r#"yeastar_calls_completed_total{direction="inbound",outcome="answered"} 1"#,
            r#"yeastar_calls_completed_total{direction="inbound",outcome="no_answer"} 1"#,
            r#"yeastar_calls_completed_total{direction="outbound",outcome="busy"} 1"#,
            r#"yeastar_calls_completed_total{direction="internal",outcome="voicemail"} 0"#,
            r#"yeastar_trunk_calls_completed_total{direction="inbound",outcome="answered",trunk="sip-1"} 1"#,
            r#"yeastar_trunk_calls_completed_total{direction="inbound",outcome="no_answer",trunk="sip-1"} 1"#,
            r#"yeastar_trunk_calls_completed_total{direction="outbound",outcome="busy",trunk="gsm-1"} 1"#,
            r#"yeastar_call_talk_seconds_bucket{direction="inbound",le="10"} 0"#,
            r#"yeastar_call_talk_seconds_bucket{direction="inbound",le="30"} 1"#,
            r#"yeastar_call_talk_seconds_bucket{direction="inbound",le="+Inf"} 1"#,
            r#"yeastar_call_talk_seconds_sum{direction="inbound"} 30"#,
            r#"yeastar_call_talk_seconds_count{direction="inbound"} 1"#,
            r#"yeastar_call_wait_seconds_bucket{direction="inbound",le="10"} 1"#,
            r#"yeastar_call_wait_seconds_bucket{direction="inbound",le="30"} 2"#,
            r#"yeastar_call_wait_seconds_sum{direction="inbound"} 35"#,
            r#"yeastar_call_wait_seconds_count{direction="outbound"} 1"#,
            r#"yeastar_calls_failed_total{reason="busy_here"} 1"#,
            r#"yeastar_calls_failed_total{reason="other"} 0"#,
            r#"yeastar_queue_agent_ring_timeouts_total{queue="6700"} 1"#,
            "yeastar_pbx_boots_total 1",
            r#"yeastar_events_received_total{type="new_cdr"} 3"#,
            r#"yeastar_events_received_total{type="other"} 1"#,
            "yeastar_events_parse_errors_total 1",
            "yeastar_events_last_received_timestamp_seconds 1700000000",
        ] {
            assert!(text.contains(&format!("{line}\n")), "{line}\n{text}");
        }
        // No phone or extension number, callid or agent name anywhere.
        for secret in ["2000", "A B", "1.9", "1.1"] {
            assert!(!text.contains(&format!("\"{secret}\"")), "{secret}");
        }
    }

    #[test]
    fn the_dedup_window_is_bounded_by_count_and_time() {
        let mut s = EventStats::default();
        let at = |s: &mut EventStats, body: &str, ms: u64| s.record(parse(body.as_bytes()), ms);
        let first = cdr("0.1", "Inbound", "ANSWERED", 1, 1, "", "");
        let t0 = 1_700_000_000_000;
        assert_eq!(at(&mut s, &first, t0), Recorded::Counted);
        for i in 1..DEDUP_KEYS {
            let body = cdr(&format!("{i}.1"), "Inbound", "ANSWERED", 1, 1, "", "");
            assert_eq!(at(&mut s, &body, t0), Recorded::Counted);
        }
        assert_eq!(at(&mut s, &first, t0), Recorded::Duplicate);
        assert_eq!(s.seen.len(), DEDUP_KEYS);
        // The stated byte bound holds when full.
        assert_eq!(s.seen.order.capacity(), DEDUP_KEYS);
        assert!(
            s.seen.index.capacity() < 65_536,
            "{}",
            s.seen.index.capacity()
        );
        // One more new key pushes the oldest out.
        at(&mut s, &cdr("x.1", "Inbound", "ANSWERED", 1, 1, "", ""), t0);
        assert_eq!(at(&mut s, &first, t0), Recorded::Counted);
        assert_eq!(s.seen.len(), DEDUP_KEYS);
        // A day later every key has aged out: the window holds the one new key.
        let day = DEDUP_WINDOW.as_millis() as u64;
        let late = cdr("y.1", "Inbound", "ANSWERED", 1, 1, "", "");
        assert_eq!(at(&mut s, &late, t0 + day - 1), Recorded::Counted);
        assert_eq!(s.seen.len(), DEDUP_KEYS);
        assert_eq!(at(&mut s, &late, t0 + day), Recorded::Duplicate);
        assert_eq!(s.seen.len(), 1);
    }

    #[test]
    fn refusals_are_logged_once_a_minute_per_reason_with_the_count() {
        let mut log = RefusalLog::default();
        let t = 1_700_000_000_000;
        assert_eq!(log.note(Refusal::WrongSource, t), Some(1));
        assert_eq!(log.note(Refusal::WrongSource, t + 1), None);
        assert_eq!(log.note(Refusal::UnknownPath, t + 2), Some(1));
        assert_eq!(log.note(Refusal::WrongSource, t + 59_999), None);
        assert_eq!(log.note(Refusal::WrongSource, t + 60_000), Some(3));
        // The clock stepped back: a line is due, not a day of silence.
        assert_eq!(log.note(Refusal::WrongSource, t - 86_400_000), Some(1));
    }

    #[test]
    fn label_values_are_bounded() {
        let mut s = EventStats::default();
        for i in 0..(MAX_LABEL_VALUES + 10) {
            record(
                &mut s,
                &cdr(
                    &format!("{i}.1"),
                    "Inbound",
                    "ANSWERED",
                    1,
                    1,
                    &format!("t{i}"),
                    "",
                ),
            );
        }
        assert_eq!(s.trunks.len(), MAX_LABEL_VALUES);
        assert_eq!(s.label_overflow, 10);
        assert_eq!(
            s.completed(CdrDirection::Inbound, CdrOutcome::Answered),
            (MAX_LABEL_VALUES + 10) as u64
        );
    }
}
