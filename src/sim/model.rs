//! The simulated PBX's traffic: extensions, trunks, features, and calls moving through their states.
//!
//! Deterministic for a seed and a sequence of clock readings: [`Model::advance`] steps the world one
//! simulated second at a time up to the clock's reading, drawing every random choice from one seeded
//! generator. Calls arrive at `target_calls / mean duration` per second (so about `target_calls` are
//! up at any time): inbound through a trunk (some via an IVR, a queue or a ring group, some forwarded
//! out again), outbound through a trunk, internal between extensions. They ring, are answered,
//! sometimes go on hold, and hang up; now and then one sticks in RING or HOLD for minutes, and a trunk
//! drops for a few minutes, so that the stuck-call and trunk alerts have something to show.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Value, json};

use crate::pbx::model::MemberKind;

/// The model's knobs.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    /// Seed of every random choice.
    pub seed: u64,
    /// Calls up at any time, on average.
    pub target_calls: usize,
    /// Extensions (numbers from 1000).
    pub extensions: usize,
    /// Average call length in seconds, ringing included.
    pub mean_duration_secs: u64,
    /// Chance that a new call sticks in RING for minutes.
    pub stuck_ring_chance: f64,
    /// Chance that a call put on hold stays there for over half an hour.
    pub stuck_hold_chance: f64,
    /// Chance per second that a working trunk drops (for a few minutes).
    pub trunk_drop_chance: f64,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            target_calls: 40,
            extensions: 60,
            mean_duration_secs: 120,
            stuck_ring_chance: 0.01,
            stuck_hold_chance: 0.05,
            trunk_drop_chance: 1.0 / 1800.0,
        }
    }
}

/// Trunk kinds the simulator has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrunkKind {
    /// A SIP registration trunk.
    Sip,
    /// An analogue line.
    Fxo,
    /// A GSM module.
    Gsm,
}

/// A simulated trunk.
#[derive(Debug, Clone)]
pub struct SimTrunk {
    /// Its name.
    pub name: String,
    /// Its kind.
    pub kind: TrunkKind,
    /// Dropped until this unix second.
    pub down_until: Option<u64>,
}

impl SimTrunk {
    /// Its status word, as the PBX reports it.
    pub fn status(&self, busy: bool) -> &'static str {
        match (self.kind, self.down_until.is_some()) {
            (TrunkKind::Sip, false) => "Registered",
            (TrunkKind::Sip, true) => "Failure",
            (TrunkKind::Fxo, true) => "Fault",
            (TrunkKind::Gsm, true) => "No Signal",
            (_, false) if busy => "Busy",
            (_, false) => "Idle",
        }
    }

    /// Its type word.
    pub fn kind_str(&self) -> &'static str {
        match self.kind {
            TrunkKind::Sip => "SIP",
            TrunkKind::Fxo => "FXO",
            TrunkKind::Gsm => "GSM",
        }
    }
}

/// A simulated extension.
#[derive(Debug, Clone)]
pub struct SimExtension {
    /// Its number.
    pub number: String,
    /// Whether a phone is registered on it.
    pub registered: bool,
    /// An analogue (FXS) port rather than a SIP phone.
    pub fxs: bool,
}

/// Where a call is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Caller ALERT, callee RING.
    Ringing,
    /// ANSWERED / ANSWER.
    Talking,
    /// One side HOLD.
    Hold,
    /// One side BYE, about to vanish.
    Ending,
}

/// One member of a simulated call.
#[derive(Debug, Clone)]
pub struct SimMember {
    /// ext, inbound or outbound.
    pub kind: MemberKind,
    /// An extension's number, or the external party's number.
    pub number: String,
    /// The other party's number (for trunk members: `to`).
    pub peer: String,
    /// The trunk of an inbound or outbound member.
    pub trunk: Option<String>,
    /// Its channel.
    pub channelid: String,
    /// The caller (ALERT → ANSWERED) or the callee (RING → ANSWER).
    pub caller: bool,
    /// The feature that set up this leg.
    pub callpath: Option<String>,
    /// Its status word now.
    pub status: &'static str,
    /// The extension's index, for an ext member.
    pub ext: Option<usize>,
}

/// One simulated call.
#[derive(Debug, Clone)]
pub struct SimCall {
    /// `<unix seconds>.<sequence>`.
    pub callid: String,
    /// Its members.
    pub members: Vec<SimMember>,
    /// Its phase.
    pub phase: Phase,
    /// When the phase ends (unix seconds).
    pub phase_until: u64,
    /// Talk time left after a hold.
    pub talk_left: u64,
    /// The queue it waits in while ringing, if any.
    pub queue: Option<String>,
    /// How it will end (its CDR's status).
    pub outcome: SimOutcome,
    /// When it was answered (unix seconds), once it was.
    pub answered_at: Option<u64>,
}

/// How a simulated call ends, as its `NewCdr` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimOutcome {
    Answered,
    NoAnswer,
    Busy,
    Voicemail,
}

impl SimOutcome {
    /// The outcome of the call with sequence number `seq`: 80% answered, 10% not, 5% busy, 5%
    /// voicemail (from the sequence, so the traffic's random draws stay what they were).
    pub fn of_seq(seq: u64) -> Self {
        match seq % 20 {
            0 | 7 => SimOutcome::NoAnswer,
            13 => SimOutcome::Busy,
            17 => SimOutcome::Voicemail,
            _ => SimOutcome::Answered,
        }
    }

    /// The CDR `status` word.
    pub fn word(self) -> &'static str {
        match self {
            SimOutcome::Answered => "ANSWERED",
            SimOutcome::NoAnswer => "NO ANSWER",
            SimOutcome::Busy => "BUSY",
            SimOutcome::Voicemail => "VOICEMAIL",
        }
    }

    /// The exporter's `outcome` label for it.
    pub fn label(self) -> &'static str {
        match self {
            SimOutcome::Answered => "answered",
            SimOutcome::NoAnswer => "no_answer",
            SimOutcome::Busy => "busy",
            SimOutcome::Voicemail => "voicemail",
        }
    }
}

/// What the model's finished calls add up to: the ground truth an exporter counting its `NewCdr`
/// reports must equal (keyed by the exporter's label values).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CdrTruth {
    /// (direction, outcome) → calls.
    pub completed: BTreeMap<(String, String), u64>,
    /// (trunk, inbound|outbound, outcome) → calls.
    pub trunks: BTreeMap<(String, String, String), u64>,
    /// direction → (answered calls, their talk seconds).
    pub talk: BTreeMap<String, (u64, u64)>,
    /// direction → (calls, their seconds before answer or hang-up).
    pub wait: BTreeMap<String, (u64, u64)>,
    /// `CallFailed` reports by the exporter's `reason` label.
    pub failed: BTreeMap<String, u64>,
    /// `QueueAgentRingNoAnswerTimeout` reports by queue number.
    pub ring_timeouts: BTreeMap<String, u64>,
    /// `QueueAutoPause` reports by queue number.
    pub auto_pauses: BTreeMap<String, u64>,
}

/// Reports the model keeps for delivery at most; older ones are dropped (and counted).
pub const MAX_OUTBOX: usize = 100_000;

impl SimCall {
    /// The call's direction per the exporter's contract.
    pub fn direction(&self) -> &'static str {
        if self.members.iter().any(|m| m.kind == MemberKind::Inbound) {
            "inbound"
        } else if self.members.iter().any(|m| m.kind == MemberKind::Outbound) {
            "outbound"
        } else {
            "internal"
        }
    }

    fn has(&self, kind: MemberKind) -> bool {
        self.members.iter().any(|m| m.kind == kind)
    }

    fn set_phase(&mut self, phase: Phase) {
        self.phase = phase;
        for m in &mut self.members {
            m.status = match (phase, m.caller) {
                (Phase::Ringing, true) => "ALERT",
                (Phase::Ringing, false) => "RING",
                (Phase::Talking | Phase::Hold, true) => "ANSWERED",
                (Phase::Talking | Phase::Hold, false) => "ANSWER",
                (Phase::Ending, _) => m.status,
            };
        }
        match phase {
            Phase::Hold => {
                if let Some(m) = self.members.iter_mut().find(|m| m.kind == MemberKind::Ext) {
                    m.status = "HOLD";
                }
            }
            Phase::Ending => {
                if let Some(m) = self.members.first_mut() {
                    m.status = "BYE";
                }
            }
            _ => {}
        }
    }

    /// The call as `call/query` lists it, ready to serialize (no intermediate JSON tree: the
    /// simulator must answer 10,000 calls fast enough that benchmarks measure the exporter).
    pub fn view(&self) -> CallView<'_> {
        CallView {
            members: self
                .members
                .iter()
                .map(|m| {
                    let callpath = m.callpath.as_deref();
                    match m.kind {
                        MemberKind::Ext => MemberView::Ext(ExtView {
                            number: &m.number,
                            channelid: &m.channelid,
                            memberstatus: m.status,
                            callpath,
                        }),
                        kind => {
                            let t = TrunkView {
                                from: &m.number,
                                to: &m.peer,
                                trunkname: m.trunk.as_deref().unwrap_or(""),
                                channelid: &m.channelid,
                                memberstatus: m.status,
                                callpath,
                            };
                            if kind == MemberKind::Inbound {
                                MemberView::Inbound(t)
                            } else {
                                MemberView::Outbound(t)
                            }
                        }
                    }
                })
                .collect(),
            callid: &self.callid,
        }
    }
}

/// A `call/query` answer.
#[derive(Debug, serde::Serialize)]
pub struct CallsAnswer<'a> {
    /// The calls, under the key real firmware uses.
    #[serde(rename = "Calls")]
    pub calls: Vec<CallView<'a>>,
    /// `Success`.
    pub status: &'static str,
}

impl<'a> CallsAnswer<'a> {
    /// The successful `call/query` answer listing `calls`, serialized (by `type` or by `callid`).
    pub fn bytes(calls: Vec<CallView<'a>>) -> Vec<u8> {
        // Plain structs of strings: serializing into a Vec cannot fail.
        serde_json::to_vec(&CallsAnswer {
            calls,
            status: "Success",
        })
        .unwrap_or_default()
    }
}

/// A call as the API lists it.
#[derive(Debug, serde::Serialize)]
pub struct CallView<'a> {
    members: Vec<MemberView<'a>>,
    callid: &'a str,
}

/// A member: an object with one key naming its kind.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "lowercase")]
enum MemberView<'a> {
    Ext(ExtView<'a>),
    Inbound(TrunkView<'a>),
    Outbound(TrunkView<'a>),
}

#[derive(Debug, serde::Serialize)]
struct ExtView<'a> {
    number: &'a str,
    channelid: &'a str,
    memberstatus: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    callpath: Option<&'a str>,
}

#[derive(Debug, serde::Serialize)]
struct TrunkView<'a> {
    from: &'a str,
    to: &'a str,
    trunkname: &'a str,
    channelid: &'a str,
    memberstatus: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    callpath: Option<&'a str>,
}

/// Counts of the model's state, for tests and the simulate command.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// Calls by direction: inbound, outbound, internal.
    pub active: [u64; 3],
    /// Members by kind (ext, inbound, outbound) and status word.
    pub members: HashMap<(&'static str, &'static str), u64>,
}

/// The simulated PBX's world.
#[derive(Debug)]
pub struct Model {
    cfg: ModelConfig,
    rng: fastrand::Rng,
    now: u64,
    seq: u64,
    channel: u64,
    /// Booted at (unix seconds).
    pub booted: u64,
    /// The extensions.
    pub extensions: Vec<SimExtension>,
    /// The trunks.
    pub trunks: Vec<SimTrunk>,
    /// IVR numbers.
    pub ivrs: Vec<String>,
    /// Queue numbers and their agents (extension indexes).
    pub queues: Vec<(String, Vec<usize>)>,
    /// Ring group numbers.
    pub ring_groups: Vec<String>,
    /// Calls up now.
    pub calls: Vec<SimCall>,
    /// Paused agents (extension index), re-drawn now and then.
    pub paused: Vec<usize>,
    /// Extensions on a call, by index.
    busy: Vec<bool>,
    /// Event reports not yet taken for delivery (`NewCdr`, `CallStatus`), oldest first.
    pub outbox: std::collections::VecDeque<serde_json::Value>,
    /// Reports dropped because the outbox was full.
    pub outbox_dropped: u64,
    /// Every `NewCdr` the model emitted, added up.
    pub truth: CdrTruth,
    /// Whether it makes event reports (and their truth) at all: only once a receiver registered
    /// or a TCP client logged in, so a PBX nobody listens to keeps no outbox.
    pub events_on: bool,
    event_seq: u64,
}

impl Model {
    /// A model starting at `now` (unix seconds), already carrying about `target_calls` calls.
    pub fn new(cfg: ModelConfig, now: u64) -> Self {
        let mut rng = fastrand::Rng::with_seed(cfg.seed);
        // Enough extensions for the calls: each call holds one or two.
        let ext_count = cfg.extensions.max(cfg.target_calls * 3).max(4);
        let extensions = (0..ext_count)
            .map(|i| SimExtension {
                number: (1000 + i).to_string(),
                registered: rng.f64() < 0.9,
                fxs: i % 20 == 19,
            })
            .collect();
        let trunks = vec![
            SimTrunk {
                name: "siptrunk".into(),
                kind: TrunkKind::Sip,
                down_until: None,
            },
            SimTrunk {
                name: "sip-carrier-2".into(),
                kind: TrunkKind::Sip,
                down_until: None,
            },
            SimTrunk {
                name: "fxo-1".into(),
                kind: TrunkKind::Fxo,
                down_until: None,
            },
            SimTrunk {
                name: "gsm-1".into(),
                kind: TrunkKind::Gsm,
                down_until: None,
            },
        ];
        let agents =
            |start: usize| -> Vec<usize> { (start..start + 4).map(|i| i % ext_count).collect() };
        let mut model = Self {
            now,
            seq: 1,
            channel: 0x90,
            booted: now.saturating_sub(3 * 86_400 + 4 * 3600 + 5 * 60 + 6),
            extensions,
            trunks,
            ivrs: vec!["6500".into(), "6501".into()],
            queues: vec![("6700".into(), agents(0)), ("6701".into(), agents(4))],
            ring_groups: vec!["6300".into()],
            calls: Vec::new(),
            paused: Vec::new(),
            busy: vec![false; ext_count],
            outbox: Default::default(),
            outbox_dropped: 0,
            truth: CdrTruth::default(),
            events_on: false,
            event_seq: 0,
            rng,
            cfg,
        };
        // Start in the middle of a working day: calls already up, of various ages.
        for _ in 0..model.cfg.target_calls {
            let age = model.rng.u64(0..model.cfg.mean_duration_secs.max(2));
            model.start_call(now - age.min(now));
            if let Some(call) = model.calls.last_mut() {
                call.set_phase(Phase::Talking);
                call.phase_until = now + 1 + age % 60;
                call.outcome = SimOutcome::Answered;
                call.answered_at = call.callid.split('.').next().and_then(|s| s.parse().ok());
            }
        }
        model
    }

    /// The configuration.
    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    /// The model's current time.
    pub fn now(&self) -> u64 {
        self.now
    }

    /// Steps the world up to `now` (unix seconds), one second at a time; a gap of over a day is
    /// jumped, not replayed.
    pub fn advance(&mut self, now: u64) {
        if now <= self.now {
            return;
        }
        if now - self.now > 86_400 {
            self.now = now - 86_400;
        }
        while self.now < now {
            self.now += 1;
            self.tick();
        }
    }

    fn next_channel(&mut self) -> String {
        self.channel += 1;
        format!("{:08x}", self.channel)
    }

    fn free_extension(&mut self) -> Option<usize> {
        for _ in 0..8 {
            let i = self.rng.usize(0..self.extensions.len());
            if self.extensions[i].registered && !self.busy[i] {
                // Taken from now on: the caller of this function puts it on a call or gives up
                // the call, in which case `release` frees it.
                self.busy[i] = true;
                return Some(i);
            }
        }
        None
    }

    fn up_trunk(&mut self) -> Option<usize> {
        let up: Vec<usize> = (0..self.trunks.len())
            .filter(|i| self.trunks[*i].down_until.is_none())
            .collect();
        if up.is_empty() {
            None
        } else {
            Some(up[self.rng.usize(0..up.len())])
        }
    }

    fn external_number(&mut self) -> String {
        format!("0{}", self.rng.u64(200_000_000..999_999_999))
    }

    fn ext_member(
        &mut self,
        ext: usize,
        caller: bool,
        peer: &str,
        callpath: Option<String>,
    ) -> SimMember {
        let number = self.extensions[ext].number.clone();
        let ch = self.next_channel();
        let tech = if self.extensions[ext].fxs {
            "DAHDI"
        } else {
            "PJSIP"
        };
        SimMember {
            kind: MemberKind::Ext,
            channelid: format!("{tech}/{number}-{ch}"),
            number,
            peer: peer.to_string(),
            trunk: None,
            caller,
            callpath,
            status: "",
            ext: Some(ext),
        }
    }

    fn trunk_member(
        &mut self,
        kind: MemberKind,
        trunk: usize,
        from: String,
        to: String,
        caller: bool,
        callpath: Option<String>,
    ) -> SimMember {
        let name = self.trunks[trunk].name.clone();
        let ch = self.next_channel();
        let channelid = match self.trunks[trunk].kind {
            TrunkKind::Sip => format!("PJSIP/trunk-{name}-endpoint-{ch}"),
            TrunkKind::Fxo | TrunkKind::Gsm => format!("DAHDI/{}-{ch}", trunk + 1),
        };
        SimMember {
            kind,
            number: from,
            peer: to,
            trunk: Some(name),
            channelid,
            caller,
            callpath,
            status: "",
            ext: None,
        }
    }

    /// Starts a new call created at `created`, in RING.
    fn start_call(&mut self, created: u64) {
        let roll = self.rng.f64();
        let mut members = Vec::with_capacity(3);
        let mut queue = None;
        if roll < 0.5 {
            // Inbound through a trunk: direct, via an IVR, a queue or a ring group; some forwarded out.
            let Some(trunk) = self.up_trunk() else { return };
            let Some(ext) = self.free_extension() else {
                return;
            };
            let caller = self.external_number();
            let path_roll = self.rng.f64();
            let callpath = if path_roll < 0.2 {
                Some(self.ivrs[self.rng.usize(0..self.ivrs.len())].clone())
            } else if path_roll < 0.4 {
                let q = self.queues[self.rng.usize(0..self.queues.len())].0.clone();
                queue = Some(q.clone());
                Some(q)
            } else if path_roll < 0.5 {
                Some(self.ring_groups[0].clone())
            } else {
                None
            };
            let did = self.extensions[ext].number.clone();
            let m = self.trunk_member(
                MemberKind::Inbound,
                trunk,
                caller.clone(),
                did.clone(),
                true,
                callpath.clone(),
            );
            members.push(m);
            if self.rng.f64() < 0.05 {
                // Forwarded to a mobile: the extension is not on the call after all.
                self.busy[ext] = false;
                let out = self.up_trunk().unwrap_or(trunk);
                let mobile = self.external_number();
                let m = self.trunk_member(MemberKind::Outbound, out, did, mobile, false, callpath);
                members.push(m);
            } else {
                let m = self.ext_member(ext, false, &caller, callpath);
                members.push(m);
            }
        } else if roll < 0.8 {
            let Some(trunk) = self.up_trunk() else {
                // Every trunk down: the PBX cannot set the call up.
                self.emit_call_failed("Line Unreachable", "line_unreachable");
                return;
            };
            let Some(ext) = self.free_extension() else {
                return;
            };
            let callee = self.external_number();
            let number = self.extensions[ext].number.clone();
            let m = self.ext_member(ext, true, &callee, None);
            members.push(m);
            let m = self.trunk_member(MemberKind::Outbound, trunk, number, callee, false, None);
            members.push(m);
        } else {
            let Some(a) = self.free_extension() else {
                return;
            };
            let Some(b) = self.free_extension() else {
                self.busy[a] = false;
                return;
            };
            let callpath = (self.rng.f64() < 0.2).then(|| self.ring_groups[0].clone());
            let (na, nb) = (
                self.extensions[a].number.clone(),
                self.extensions[b].number.clone(),
            );
            let m = self.ext_member(a, true, &nb, None);
            members.push(m);
            let m = self.ext_member(b, false, &na, callpath);
            members.push(m);
        }
        let ring = if self.rng.f64() < self.cfg.stuck_ring_chance {
            self.rng.u64(150..400)
        } else {
            self.rng.u64(3..20)
        };
        let mean_talk = self.cfg.mean_duration_secs.saturating_sub(10).max(2);
        let talk = 1 + (-(1.0 - self.rng.f64()).ln() * mean_talk as f64) as u64;
        let callid = format!("{created}.{}", self.seq);
        let outcome = SimOutcome::of_seq(self.seq);
        self.seq += 1;
        let mut call = SimCall {
            callid,
            members,
            phase: Phase::Ringing,
            phase_until: created + ring,
            talk_left: talk,
            queue,
            outcome,
            answered_at: None,
        };
        call.set_phase(Phase::Ringing);
        self.calls.push(call);
        let i = self.calls.len() - 1;
        self.emit_call_status(i);
    }

    fn poisson(&mut self, lambda: f64) -> u64 {
        if lambda > 200.0 {
            // Normal approximation: exact enough, and Knuth's method underflows.
            let u1 = self.rng.f64().max(1e-12);
            let u2 = self.rng.f64();
            let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
            return (lambda + z * lambda.sqrt()).round().max(0.0) as u64;
        }
        let limit = (-lambda).exp();
        let mut k = 0;
        let mut p = self.rng.f64();
        while p > limit {
            k += 1;
            p *= self.rng.f64();
        }
        k
    }

    fn tick(&mut self) {
        let now = self.now;
        // Calls that hung up last second are gone now.
        let busy = &mut self.busy;
        self.calls.retain(|c| {
            let gone = c.phase == Phase::Ending && c.phase_until <= now;
            if gone {
                for i in c.members.iter().filter_map(|m| m.ext) {
                    busy[i] = false;
                }
            }
            !gone
        });
        let mut ended = Vec::new();
        let mut changed = Vec::new();
        let mut timeouts = Vec::new();
        for i in 0..self.calls.len() {
            if self.calls[i].phase_until > now {
                continue;
            }
            let hold_roll = self.rng.f64();
            let stuck_roll = self.rng.f64();
            let hold_len = self.rng.u64(10..90);
            let stuck_len = self.rng.u64(31 * 60..45 * 60);
            let call = &mut self.calls[i];
            match call.phase {
                Phase::Ringing
                    if matches!(call.outcome, SimOutcome::NoAnswer | SimOutcome::Busy) =>
                {
                    // Nobody answers (or the callee is busy): the call ends from ringing; in a
                    // queue, its agent let it ring out.
                    call.set_phase(Phase::Ending);
                    if call.outcome == SimOutcome::NoAnswer
                        && let Some(q) = call.queue.take()
                    {
                        timeouts.push((q, call.callid.clone()));
                    }
                    call.queue = None;
                    call.phase_until = now + 1;
                    ended.push(i);
                }
                Phase::Ringing => {
                    call.set_phase(Phase::Talking);
                    call.queue = None;
                    call.answered_at = Some(now);
                    call.phase_until = now + call.talk_left / 2 + 1;
                    call.talk_left -= call.talk_left / 2;
                }
                Phase::Talking
                    if call.talk_left > 0 && hold_roll < 0.25 && call.has(MemberKind::Ext) =>
                {
                    call.set_phase(Phase::Hold);
                    let stuck = stuck_roll < self.cfg.stuck_hold_chance;
                    call.phase_until = now + if stuck { stuck_len } else { hold_len };
                }
                Phase::Hold => {
                    call.set_phase(Phase::Talking);
                    call.phase_until = now + call.talk_left;
                    call.talk_left = 0;
                }
                Phase::Talking => {
                    call.set_phase(Phase::Ending);
                    call.phase_until = now + 1;
                    ended.push(i);
                }
                Phase::Ending => continue,
            }
            changed.push(i);
        }
        for i in changed {
            self.emit_call_status(i);
        }
        for i in ended {
            self.emit_cdr(i, now);
        }
        let on = self.events_on;
        for (queue, callid) in timeouts.into_iter().filter(|_| on) {
            let event = json!({
                "event": "QueueAgentRingNoAnswerTimeout",
                "queue": format!("queue-{queue}"),
                "agent": "Queue Agent",
                "callid": callid,
                "caller": "2000",
                "sn": self.sn(),
            });
            *self.truth.ring_timeouts.entry(queue).or_default() += 1;
            self.push_event(event);
        }
        let lambda = self.cfg.target_calls as f64 / self.cfg.mean_duration_secs.max(1) as f64;
        let arrivals = self.poisson(lambda);
        let cap = self.cfg.target_calls * 3 + 10;
        for _ in 0..arrivals {
            if self.calls.len() >= cap {
                break;
            }
            self.start_call(now);
        }
        for i in 0..self.trunks.len() {
            let roll = self.rng.f64();
            match self.trunks[i].down_until {
                Some(until) if until <= now => self.trunks[i].down_until = None,
                Some(_) => {}
                None if roll < self.cfg.trunk_drop_chance => {
                    let len = self.rng.u64(150..420);
                    self.trunks[i].down_until = Some(now + len);
                }
                None => {}
            }
        }
        if self.rng.f64() < self.extensions.len() as f64 / 600.0 {
            let i = self.rng.usize(0..self.extensions.len());
            self.extensions[i].registered = !self.extensions[i].registered;
        }
        if self.rng.f64() < 1.0 / 120.0 {
            let before = std::mem::take(&mut self.paused);
            self.paused = (0..self.extensions.len())
                .filter(|_| self.rng.f64() < 0.03)
                .collect();
            // Agents newly paused in a queue: the PBX reports the auto-pause.
            let newly: Vec<(String, String)> = self
                .paused
                .iter()
                .filter(|i| !before.contains(i))
                .filter_map(|i| {
                    let q = self.queues.iter().find(|(_, agents)| agents.contains(i))?;
                    Some((q.0.clone(), self.extensions[*i].number.clone()))
                })
                .collect();
            let on = self.events_on;
            for (queue, agent) in newly.into_iter().filter(|_| on) {
                let event = json!({
                    "event": "QueueAutoPause",
                    "queue": queue,
                    "agent": agent,
                    "misscall": [{"caller": "2000", "callid": self.event_callid()}],
                    "sn": self.sn(),
                });
                *self.truth.auto_pauses.entry(queue).or_default() += 1;
                self.push_event(event);
            }
        }
    }

    fn emit_call_failed(&mut self, reason: &str, label: &str) {
        if !self.events_on {
            return;
        }
        let event = json!({
            "callid": self.event_callid(),
            "event": "CallFailed",
            "reason": reason,
            "members": [],
            "sn": self.sn(),
        });
        *self.truth.failed.entry(label.to_string()).or_default() += 1;
        self.push_event(event);
    }

    fn push_event(&mut self, event: serde_json::Value) {
        if !self.events_on {
            return;
        }
        if self.outbox.len() >= MAX_OUTBOX {
            self.outbox.pop_front();
            self.outbox_dropped += 1;
        }
        self.outbox.push_back(event);
    }

    /// A fresh callid for a report about no call of the traffic (a failed set-up, a missed queue
    /// call): its own sequence, so reporting never changes the traffic.
    fn event_callid(&mut self) -> String {
        self.event_seq += 1;
        format!("{}.{}", self.now, 1_000_000_000 + self.event_seq)
    }

    /// The PBX's serial number in its reports.
    pub fn sn(&self) -> String {
        format!("3694{:08}", self.cfg.seed % 100_000_000)
    }

    /// A `CallStatus` report of call `i` as it is now.
    fn emit_call_status(&mut self, i: usize) {
        if !self.events_on {
            return;
        }
        let call = &self.calls[i];
        let mut event = serde_json::to_value(call.view()).unwrap_or_default();
        event["event"] = "CallStatus".into();
        event["sn"] = self.sn().into();
        self.push_event(event);
    }

    /// The `NewCdr` of call `i`, ending at `end`; added to the ground truth.
    fn emit_cdr(&mut self, i: usize, end: u64) {
        if !self.events_on {
            return;
        }
        let call = &self.calls[i];
        let created: u64 = call
            .callid
            .split('.')
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or(end);
        let duration = end.saturating_sub(created);
        let talk = call.answered_at.map_or(0, |a| end.saturating_sub(a));
        let direction = call.direction();
        let trunk = |kind: MemberKind| {
            call.members
                .iter()
                .find(|m| m.kind == kind)
                .and_then(|m| m.trunk.clone())
        };
        let (src, dst) = (trunk(MemberKind::Inbound), trunk(MemberKind::Outbound));
        let from = call
            .members
            .first()
            .map(|m| m.number.clone())
            .unwrap_or_default();
        let to = call
            .members
            .get(1)
            .map(|m| m.number.clone())
            .unwrap_or_default();
        let kind = match direction {
            "inbound" => "Inbound",
            "outbound" => "Outbound",
            _ => "Internal",
        };
        let outcome = call.outcome;
        let event = serde_json::json!({
            "event": "NewCdr",
            "callid": call.callid,
            "timestart": civil_time(created),
            "callfrom": from,
            "callto": to,
            "callduraction": duration.to_string(),
            "talkduraction": talk.to_string(),
            "srctrunkname": src.clone().unwrap_or_default(),
            "dsttrcunkname": dst.clone().unwrap_or_default(),
            "pincode": "",
            "status": outcome.word(),
            "type": kind,
            "recording": "",
            "didnumber": "",
            "agentringtime": "0",
            "sn": self.sn(),
        });
        let t = &mut self.truth;
        *t.completed
            .entry((direction.to_string(), outcome.label().to_string()))
            .or_default() += 1;
        for (trunk, leg) in [(src, "inbound"), (dst, "outbound")] {
            if let Some(trunk) = trunk {
                *t.trunks
                    .entry((trunk, leg.to_string(), outcome.label().to_string()))
                    .or_default() += 1;
            }
        }
        if outcome == SimOutcome::Answered {
            let e = t.talk.entry(direction.to_string()).or_default();
            e.0 += 1;
            e.1 += talk;
        }
        let e = t.wait.entry(direction.to_string()).or_default();
        e.0 += 1;
        e.1 += duration - talk.min(duration);
        self.push_event(event);
    }

    /// Adds a call held in RING until `ring_until` (tests and demos of the stuck-RING alert).
    /// Returns its callid.
    pub fn add_stuck_ringing_call(&mut self, ring_until: u64) -> String {
        let before = self.calls.len();
        while self.calls.len() == before {
            self.start_call(self.now);
        }
        let call = self.calls.last_mut().expect("a call was just added");
        call.set_phase(Phase::Ringing);
        call.phase_until = ring_until;
        call.callid.clone()
    }

    /// What each extension is doing: its number → its member status on the call it is on.
    pub fn extension_activity(&self) -> HashMap<&str, &'static str> {
        let mut map = HashMap::new();
        for c in &self.calls {
            for m in &c.members {
                if m.kind == MemberKind::Ext {
                    map.insert(m.number.as_str(), m.status);
                }
            }
        }
        map
    }

    /// `extension/list`'s `extlist`.
    pub fn extension_list(&self) -> Vec<Value> {
        let activity = self.extension_activity();
        self.extensions
            .iter()
            .map(|e| {
                let status = if !e.registered {
                    if e.fxs { "Fxsnoport" } else { "Unavailable" }
                } else {
                    match activity.get(e.number.as_str()) {
                        Some(&"RING") | Some(&"ALERT") => "Ringing",
                        Some(&"HOLD") => "Hold",
                        Some(_) => "Busy",
                        None if e.fxs => "Idle",
                        None => "Registered",
                    }
                };
                json!({
                    "number": e.number,
                    "status": status,
                    "type": if e.fxs { "FXS" } else { "SIP" },
                    "port": if e.fxs { "1" } else { "" },
                    "username": e.number,
                    "agentid": "",
                })
            })
            .collect()
    }

    /// Whether a call is up on trunk `t` now.
    pub fn trunk_busy(&self, t: &SimTrunk) -> bool {
        self.calls.iter().any(|c| {
            c.members
                .iter()
                .any(|m| m.trunk.as_deref() == Some(t.name.as_str()))
        })
    }

    /// `trunk/list`'s `trunklist`.
    pub fn trunk_list(&self) -> Vec<Value> {
        self.trunks
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let busy = self.trunk_busy(t);
                json!({
                    "trunkname": t.name,
                    "id": (i + 1).to_string(),
                    "type": t.kind_str(),
                    "status": t.status(busy),
                    "port": if t.kind == TrunkKind::Sip { String::new() } else { (i + 1).to_string() },
                })
            })
            .collect()
    }

    /// `queue/query_status`'s entry for queue `number`, if it exists.
    pub fn queue_status(&self, number: &str) -> Option<Value> {
        let (_, agents) = self.queues.iter().find(|(n, _)| n == number)?;
        let waiting = self
            .calls
            .iter()
            .filter(|c| c.phase == Phase::Ringing && c.queue.as_deref() == Some(number))
            .count();
        let activity = self.extension_activity();
        let members: Vec<Value> = agents
            .iter()
            .map(|i| {
                let e = &self.extensions[*i];
                let code = if !e.registered {
                    "5"
                } else if self.paused.contains(i) {
                    "9"
                } else {
                    match activity.get(e.number.as_str()) {
                        Some(&"RING") | Some(&"ALERT") => "6",
                        Some(&"HOLD") => "8",
                        Some(_) => "2",
                        None => "1",
                    }
                };
                json!({"agent": e.number, "agentstatus": code})
            })
            .collect();
        Some(json!({
            "number": number,
            "queuestatus": [{
                "callercount": if waiting == 0 { String::new() } else { waiting.to_string() },
                "members": members,
            }],
        }))
    }

    /// The `call/query` `{"type": …}` answer: every call with a member of `kind`, serialized.
    pub fn call_query_answer(&self, kind: MemberKind) -> Vec<u8> {
        let calls = self
            .calls
            .iter()
            .filter(|c| c.members.iter().any(|m| m.kind == kind))
            .map(|c| c.view())
            .collect();
        CallsAnswer::bytes(calls)
    }

    /// The model's counts, as the exporter should see them.
    pub fn snapshot(&self) -> Snapshot {
        let mut s = Snapshot::default();
        for c in &self.calls {
            let d = match c.direction() {
                "inbound" => 0,
                "outbound" => 1,
                _ => 2,
            };
            s.active[d] += 1;
            for m in &c.members {
                *s.members
                    .entry((crate::pbx::s_series::types::member_key(m.kind), m.status))
                    .or_default() += 1;
            }
        }
        s
    }
}

/// `YYYY-MM-DD HH:MM:SS` of unix seconds (UTC; the PBX writes its local time without an offset).
pub fn civil_time(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_for_a_seed() {
        let cfg = ModelConfig {
            seed: 7,
            target_calls: 30,
            ..Default::default()
        };
        let mut a = Model::new(cfg.clone(), 1_700_000_000);
        let mut b = Model::new(cfg, 1_700_000_000);
        a.advance(1_700_000_600);
        b.advance(1_700_000_300);
        b.advance(1_700_000_600);
        assert_eq!(a.snapshot(), b.snapshot());
        let ids_a: Vec<_> = a.calls.iter().map(|c| c.callid.clone()).collect();
        let ids_b: Vec<_> = b.calls.iter().map(|c| c.callid.clone()).collect();
        assert_eq!(ids_a, ids_b);
    }

    #[test]
    fn keeps_about_the_target_number_of_calls() {
        let cfg = ModelConfig {
            seed: 3,
            target_calls: 200,
            ..Default::default()
        };
        let mut m = Model::new(cfg, 1_700_000_000);
        m.advance(1_700_003_600);
        let n = m.calls.len();
        assert!((120..=300).contains(&n), "{n} calls");
        let s = m.snapshot();
        assert!(s.active.iter().all(|n| *n > 0), "{:?}", s.active);
    }

    #[test]
    fn civil_time_is_the_calendar() {
        assert_eq!(civil_time(0), "1970-01-01 00:00:00");
        assert_eq!(civil_time(1_571_897_930), "2019-10-24 06:18:50");
        assert_eq!(civil_time(951_782_400), "2000-02-29 00:00:00");
    }
}
