//! Calls: `call/query` (inbound, outbound) and `extension/query_call` answers → call metrics.
//!
//! Answers are merged by `callid` (a call forwarded out shows up in both the inbound and the outbound
//! answer; an extension-to-extension call is listed under both extensions), members de-duplicated by
//! (kind, `channelid`). From the merged set come the contract's call series; [`StatusAges`] keeps,
//! per PBX, when each member was first seen in its current status, for the stuck-call ages.

use std::collections::BTreeMap;


use foldhash::HashMap;

use super::families::Families;
use super::registry::{Run, Spec};
use super::keys::{MAX_TRACKED_MEMBERS, call_key};
use super::listed::TrunkState;
use crate::pbx::model::{Call, CallSink, ChannelId, MemberKind, Query, Status};

/// The collector: the call queries, which decide `yeastar_up`.
pub static SPEC: Spec = Spec {
    name: "calls",
    on_by_default: true,
    required: true,
    queries: &[Query::ActiveCalls],
    note: " (always on)",
    run: Run::Calls,
};

/// A call's direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Has an inbound member.
    Inbound,
    /// Has an outbound member and no inbound one.
    Outbound,
    /// Extensions only.
    Internal,
}

impl Direction {
    /// All directions, in label order.
    pub const ALL: [Direction; 3] = [Direction::Inbound, Direction::Outbound, Direction::Internal];

    /// The `direction` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
            Direction::Internal => "internal",
        }
    }
}

/// The `member` label value of a kind.
pub fn member_label(kind: MemberKind) -> &'static str {
    match kind {
        MemberKind::Ext => "ext",
        MemberKind::Inbound => "inbound",
        MemberKind::Outbound => "outbound",
    }
}

/// The `status` label value of a member status: the PBX's word in lower case, as every label
/// value of the contract (see docs/metrics.md).
pub fn status_label(status: Status) -> &'static str {
    match status {
        Status::Alert => "alert",
        Status::Ring => "ring",
        Status::Answered => "answered",
        Status::Answer => "answer",
        Status::Hold => "hold",
        Status::Bye => "bye",
        Status::Other => "other",
    }
}

/// One member of a merged call.
#[derive(Debug, Clone)]
pub struct Member {
    /// ext, inbound or outbound.
    pub kind: MemberKind,
    /// Its channel (the member's identity within the call).
    pub channelid: ChannelId,
    /// Its bucketed status.
    pub status: Status,
    /// The trunk of an inbound or outbound member.
    pub trunk: Option<String>,
    /// The feature number that set up the leg, if any.
    pub callpath: Option<String>,
}

/// One merged call.
#[derive(Debug, Clone, Default)]
pub struct MergedCall {
    /// Its members, each (kind, channel) once.
    pub members: Vec<Member>,
}

/// Calls merged by `callid`, members de-duplicated by (kind, `channelid`). Call lists decode
/// straight into it (it is the [`CallSink`] of the call answers), one call at a time: a scrape
/// never holds a decoded answer beside the merged calls, and a call listed many times is kept once.
#[derive(Debug, Default)]
pub struct MergedCalls {
    /// callid → call.
    pub calls: HashMap<String, MergedCall>,
}

impl CallSink for MergedCalls {
    /// Adds one call as the PBX listed it (its strings are copied only where they are new).
    fn add_call(&mut self, call: Call<'_>) {
        let merged = match self.calls.get_mut(call.callid.as_ref()) {
            Some(m) => m,
            None => self.calls.entry(call.callid.into_owned()).or_default(),
        };
        for member in call.members {
            let kind = member.kind;
            if merged
                .members
                .iter()
                .any(|m| m.kind == kind && m.channelid == member.channel)
            {
                continue;
            }
            merged.members.push(Member {
                kind,
                channelid: member.channel,
                status: member.status,
                // Label values: cut as every label value is, so names alike in their first 64
                // characters count together.
                trunk: member
                    .trunk
                    .filter(|t| !t.is_empty())
                    .map(super::families::label_owned),
                callpath: member
                    .callpath
                    .filter(|c| !c.is_empty())
                    .map(super::families::label_owned),
            });
        }
    }
}

impl MergedCall {
    /// The call's direction per the contract.
    pub fn direction(&self) -> Direction {
        if self.members.iter().any(|m| m.kind == MemberKind::Inbound) {
            Direction::Inbound
        } else if self.members.iter().any(|m| m.kind == MemberKind::Outbound) {
            Direction::Outbound
        } else {
            Direction::Internal
        }
    }
}

impl MergedCalls {
    /// Adds the calls of another answer; where both have a member, the one already here stays.
    pub fn add(&mut self, other: MergedCalls) {
        if self.calls.is_empty() {
            *self = other;
            return;
        }
        for (callid, call) in other.calls {
            match self.calls.entry(callid) {
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(call);
                }
                std::collections::hash_map::Entry::Occupied(mut o) => {
                    let here = &mut o.get_mut().members;
                    for m in call.members {
                        if !here
                            .iter()
                            .any(|h| h.kind == m.kind && h.channelid == m.channelid)
                        {
                            here.push(m);
                        }
                    }
                }
            }
        }
    }

    /// The series values of this set of calls at `now_millis` (unix milliseconds). Ages are
    /// whole milliseconds (computed in integers: `344.368`, never `344.3680000305176`).
    pub fn stats(&self, now_millis: u64) -> CallStats {
        let mut s = CallStats::default();
        let mut paths: Vec<&str> = Vec::new();
        for (callid, call) in &self.calls {
            let dir = call.direction() as usize;
            s.active[dir] += 1;
            let start_millis = callid_start(callid).map_or(now_millis, |s| s.saturating_mul(1000));
            let age = now_millis.saturating_sub(start_millis) as f64 / 1000.0;
            if age > s.max_age[dir] {
                s.max_age[dir] = age;
            }
            paths.clear();
            for m in &call.members {
                s.members[m.kind as usize][m.status.index()] += 1;
                if let (Some(trunk), MemberKind::Inbound | MemberKind::Outbound) =
                    (&m.trunk, m.kind)
                {
                    // Look up before inserting: a trunk's name is copied once per scrape, not per leg.
                    let leg = (m.kind == MemberKind::Outbound) as usize;
                    match s.trunks.get_mut(trunk.as_str()) {
                        Some(legs) => legs[leg] += 1,
                        None => {
                            let mut legs = [0; 2];
                            legs[leg] = 1;
                            s.trunks.insert(trunk.clone(), legs);
                        }
                    }
                }
                if let Some(p) = &m.callpath
                    && !paths.contains(&p.as_str())
                {
                    paths.push(p);
                    match s.callpaths.get_mut(p.as_str()) {
                        Some(n) => *n += 1,
                        None => {
                            s.callpaths.insert(p.clone(), 1);
                        }
                    }
                }
            }
        }
        s
    }
}

/// Writes the call series: `stats` of this scrape, the status `ages`, the internal direction only when
/// the internal calls were listed, and a zero for every trunk the PBX `listed` that carries no call.
pub(crate) fn write(
    m: &Families,
    stats: CallStats,
    ages: &[f64; 7],
    internal_ok: bool,
    listed: Option<&[TrunkState]>,
) {
    let directions: &[Direction] = if internal_ok {
        &Direction::ALL
    } else {
        &Direction::ALL[..2]
    };
    let active = m.gauge_vec(
        "yeastar_active_calls",
        "Distinct active calls by direction.",
        &["direction"],
    );
    let max_age = m.gauge_vec(
        "yeastar_call_max_age_seconds",
        "Age of the oldest active call in that direction, from its callid; 0 when none.",
        &["direction"],
    );
    for d in directions {
        active
            .with_label_values(&[d.as_str()])
            .set(stats.active[*d as usize] as f64);
        max_age
            .with_label_values(&[d.as_str()])
            .set(stats.max_age[*d as usize]);
    }
    let members = m.gauge_vec(
        "yeastar_call_members",
        "Members of active calls by kind and status.",
        &["member", "status"],
    );
    for kind in MemberKind::ALL {
        for status in Status::ALL {
            members
                .with_label_values(&[member_label(kind), status_label(status)])
                .set(stats.members[kind as usize][status.index()] as f64);
        }
    }
    let status_age = m.gauge_vec(
        "yeastar_member_status_max_age_seconds",
        "Longest time any current member has stayed in that status, as observed across scrapes.",
        &["status"],
    );
    for status in Status::ALL {
        status_age
            .with_label_values(&[status_label(status)])
            .set(ages[status.index()]);
    }
    let trunk_calls = m.gauge_vec(
        "yeastar_trunk_active_calls",
        "Trunk legs (inbound and outbound members) per trunk.",
        &["trunk", "direction"],
    );
    let mut legs = stats.trunks;
    for t in listed.into_iter().flatten() {
        legs.entry(t.name.clone()).or_default();
    }
    for (trunk, [inb, outb]) in &legs {
        trunk_calls
            .with_label_values(&[trunk, "inbound"])
            .set(*inb as f64);
        trunk_calls
            .with_label_values(&[trunk, "outbound"])
            .set(*outb as f64);
    }
    let paths = m.gauge_vec(
        "yeastar_callpath_active_calls",
        "Distinct calls with a member set up by that IVR, queue, ring group, paging group or conference.",
        &["callpath"],
    );
    for (path, n) in &stats.callpaths {
        paths.with_label_values(&[path]).set(*n as f64);
    }
}

/// The unix seconds at the start of a callid (`1571386069.8` → 1571386069).
pub fn callid_start(callid: &str) -> Option<u64> {
    callid.split('.').next()?.parse::<u64>().ok()
}

/// The call series of one scrape.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct CallStats {
    /// Distinct calls by [`Direction`] index.
    pub active: [u64; 3],
    /// Members by [`MemberKind`] index and [`Status`] index.
    pub members: [[u64; 7]; 3],
    /// Trunk → [inbound legs, outbound legs].
    pub trunks: BTreeMap<String, [u64; 2]>,
    /// Callpath → distinct calls.
    pub callpaths: BTreeMap<String, u64>,
    /// Oldest call's age in seconds, by [`Direction`] index.
    pub max_age: [f64; 3],
}

/// When each current member entered its current status, as this exporter observed it.
///
/// One flat list per target, sorted by a 64-bit key per member (keyed hash of the callid, mixed
/// with the channel's), rebuilt in place each scrape by a merge with the previous one: a target
/// with 50 calls holds one allocation of about 3 KiB between scrapes, and a steady scrape
/// allocates nothing for it (the new list is built in a per-thread scratch buffer). Small
/// long-lived allocations per call, scattered among each scrape's short-lived ones, kept the
/// allocator's pages from being reused (at 2,000 targets that cost 3 KiB per target of resident
/// memory in `benches/multi_target.rs`); a hash table costs twice the memory of the list.
#[derive(Debug, Default)]
pub struct StatusAges {
    /// Sorted by `key`.
    since: Vec<Tracked>,
}

/// One member: its key, and when it entered its status (unix millis) with that status's index in
/// the low 4 bits — 16 bytes, not 24: at 50 calls a target keeps about a hundred of these.
#[derive(Debug, Clone, Copy)]
struct Tracked {
    key: u64,
    stamp: u64,
}

const _: () = assert!(Status::ALL.len() <= 16);

impl Tracked {
    fn new(key: u64, first_seen: u64, status: Status) -> Self {
        Self {
            key,
            stamp: (first_seen << 4) | status.index() as u64,
        }
    }

    fn first_seen(&self) -> u64 {
        self.stamp >> 4
    }

    fn status(&self) -> Status {
        Status::ALL[(self.stamp & 0xf) as usize]
    }

    fn set_first_seen(&mut self, first_seen: u64) {
        self.stamp = (first_seen << 4) | (self.stamp & 0xf);
    }
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Vec<Tracked>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl StatusAges {
    /// Records the members of this scrape at `now_millis` and returns the longest time spent in
    /// each status (seconds, by [`Status`] index) and how many members were not tracked because
    /// of [`MAX_TRACKED_MEMBERS`]. Exactly the members present are kept, so memory is bounded by
    /// the calls of one scrape: a member the scrape could not see (its collector unsupported, off
    /// or failing) is not kept.
    pub fn observe(&mut self, calls: &MergedCalls, now_millis: u64) -> ([f64; 7], u64) {
        self.observe_with(calls, now_millis, None)
    }

    /// [`StatusAges::observe`], with the leg changes the PBX reported (`CallStatus`): a member
    /// polled in the status a report put it in is aged from the report, exact to the event
    /// rather than to the scrape interval. Polling stays the truth of what is up.
    pub fn observe_with(
        &mut self,
        calls: &MergedCalls,
        now_millis: u64,
        legs: Option<&super::events::EventLegs>,
    ) -> ([f64; 7], u64) {
        self.ages(calls, now_millis, legs, true)
    }

    /// What [`StatusAges::observe_with`] would return, keeping nothing: for an answer made from
    /// part of a collection (a scraper's deadline came first), whose calls may lack those of an
    /// answer still out. The collection's own result records them when it is complete.
    pub fn peek_with(
        &mut self,
        calls: &MergedCalls,
        now_millis: u64,
        legs: Option<&super::events::EventLegs>,
    ) -> ([f64; 7], u64) {
        self.ages(calls, now_millis, legs, false)
    }

    fn ages(
        &mut self,
        calls: &MergedCalls,
        now_millis: u64,
        legs: Option<&super::events::EventLegs>,
        keep: bool,
    ) -> ([f64; 7], u64) {
        let mut max = [0f64; 7];
        let mut dropped = 0u64;
        SCRATCH.with(|scratch| {
            let mut next = scratch.borrow_mut();
            next.clear();
            for (callid, call) in &calls.calls {
                let id = call_key(callid);
                for m in &call.members {
                    if next.len() < MAX_TRACKED_MEMBERS {
                        next.push(Tracked::new(id ^ m.channelid.0, now_millis, m.status));
                    } else {
                        dropped += 1;
                        // Untracked: counted as new, so its age is 0.
                    }
                }
            }
            next.sort_unstable_by_key(|t| t.key);
            // Merge with the last scrape's list: a member still in the same status keeps the
            // time it entered it.
            let mut old = self.since.iter().peekable();
            for t in next.iter_mut() {
                while old.next_if(|o| o.key < t.key).is_some() {}
                let status = t.status();
                if let Some(o) = old.peek()
                    && o.key == t.key
                    && o.status() == status
                {
                    t.set_first_seen(o.first_seen());
                }
                if let Some(since) = legs.and_then(|l| l.since(t.key, status))
                    && since < t.first_seen()
                {
                    t.set_first_seen(since);
                }
                let age = now_millis.saturating_sub(t.first_seen()) as f64 / 1000.0;
                if age > max[status.index()] {
                    max[status.index()] = age;
                }
            }
            if keep {
                self.since.clear();
                // Give back what a burst of calls left, keep what a steady state reuses.
                if self.since.capacity() > 2 * next.len() + 16 {
                    self.since.shrink_to(next.len());
                }
                self.since.extend_from_slice(&next);
            }
            // Nor does the scratch keep a burst.
            if next.capacity() > MAX_TRACKED_MEMBERS / 2 {
                *next = Vec::new();
            }
        });
        (max, dropped)
    }

    /// Members tracked now.
    pub fn len(&self) -> usize {
        self.since.len()
    }

    /// Whether no member is tracked.
    pub fn is_empty(&self) -> bool {
        self.since.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pbx::s_series::types::CallQueryAnswer;

    fn calls(json: &str) -> MergedCalls {
        serde_json::from_str::<CallQueryAnswer<MergedCalls>>(json)
            .unwrap()
            .calls
    }

    #[test]
    fn a_tracked_member_keeps_its_time_and_status_exactly() {
        for status in Status::ALL {
            for ms in [0, 1, 1_700_000_000_123, u64::MAX >> 4] {
                let mut t = Tracked::new(7, ms, status);
                assert_eq!((t.key, t.first_seen(), t.status()), (7, ms, status));
                t.set_first_seen(ms / 2);
                assert_eq!((t.first_seen(), t.status()), (ms / 2, status));
            }
        }
        assert_eq!(std::mem::size_of::<Tracked>(), 16);
    }

    #[test]
    fn merges_by_callid_and_channel() {
        let a = r#"{"Calls":[{"callid":"100.1","members":[
            {"inbound":{"trunkname":"t1","channelid":"a","memberstatus":"ANSWERED","callpath":"6500"}},
            {"ext":{"channelid":"b","memberstatus":"ANSWER","callpath":6500}}]}],"status":"Success"}"#;
        let b = r#"{"Calls":[{"callid":"100.1","members":[
            {"inbound":{"trunkname":"t1","channelid":"a","memberstatus":"ANSWERED"}},
            {"outbound":{"trunkname":"t2","channelid":"c","memberstatus":"EARLYMEDIA"}}]}],"status":"Success"}"#;
        let mut m = MergedCalls::default();
        m.add(calls(a));
        m.add(calls(b));
        let s = m.stats(160_000);
        assert_eq!(s.active, [1, 0, 0]);
        assert_eq!(
            s.members[MemberKind::Inbound as usize][Status::Answered as usize],
            1
        );
        assert_eq!(
            s.members[MemberKind::Outbound as usize][Status::Other as usize],
            1
        );
        assert_eq!(s.trunks["t1"], [1, 0]);
        assert_eq!(s.trunks["t2"], [0, 1]);
        assert_eq!(s.callpaths["6500"], 1);
        assert_eq!(s.max_age[0], 60.0);
    }

    #[test]
    fn call_ages_are_whole_milliseconds_without_float_noise() {
        let a = r#"{"Calls":[{"callid":"1700000000.35","members":[
            {"inbound":{"trunkname":"t1","channelid":"a","memberstatus":"ANSWERED"}}]}],"status":"Success"}"#;
        let mut m = MergedCalls::default();
        m.add(calls(a));
        // As f64 seconds, 1700000344.368 - 1700000000.0 is 344.3680000305176.
        let s = m.stats(1_700_000_344_368);
        assert_eq!(s.max_age[0].to_string(), "344.368");
        let f = Families::default();
        write(&f, s, &[0.0; 7], true, None);
        let text = f.encode();
        assert!(
            text.contains("yeastar_call_max_age_seconds{direction=\"inbound\"} 344.368\n"),
            "{text}"
        );
    }

    #[test]
    fn ages_restart_on_status_change_and_prune() {
        let ring = r#"{"Calls":[{"callid":"1.1","members":[{"ext":{"channelid":"x","memberstatus":"RING"}}]}],"status":"Success"}"#;
        let up = r#"{"Calls":[{"callid":"1.1","members":[{"ext":{"channelid":"x","memberstatus":"ANSWER"}}]}],"status":"Success"}"#;
        let mut ages = StatusAges::default();
        let mut m = MergedCalls::default();
        m.add(calls(ring));
        assert_eq!(ages.observe(&m, 0).0[Status::Ring as usize], 0.0);
        assert_eq!(ages.observe(&m, 180_000).0[Status::Ring as usize], 180.0);
        let mut m2 = MergedCalls::default();
        m2.add(calls(up));
        let (a, _) = ages.observe(&m2, 200_000);
        assert_eq!(
            (a[Status::Ring as usize], a[Status::Answer as usize]),
            (0.0, 0.0)
        );
        // A peek reports the same ages and keeps nothing: the member stays answered since 200 s.
        assert_eq!(ages.peek_with(&m, 225_000, None).0[Status::Ring as usize], 0.0);
        assert_eq!(ages.peek_with(&m2, 225_000, None).0[Status::Answer as usize], 25.0);
        assert_eq!(ages.observe(&m2, 230_000).0[Status::Answer as usize], 30.0);
        // A scrape that saw no call keeps nothing.
        assert_eq!(ages.len(), 1);
        ages.observe(&MergedCalls::default(), 250_000);
        assert!(ages.is_empty());
        // The cap: members beyond it are counted, not kept.
        let mut many = MergedCalls::default();
        let list: Vec<String> = (0..MAX_TRACKED_MEMBERS + 5)
            .map(|i| format!(r#"{{"callid":"1.{i}","members":[{{"ext":{{"channelid":"c{i}","memberstatus":"RING"}}}}]}}"#))
            .collect();
        many.add(calls(&format!(
            r#"{{"Calls":[{}],"status":"Success"}}"#,
            list.join(",")
        )));
        assert_eq!(ages.observe(&many, 260_000).1, 5);
        assert_eq!(ages.len(), MAX_TRACKED_MEMBERS);
    }
}
