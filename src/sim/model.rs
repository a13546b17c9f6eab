//! The simulated PBX's traffic: extensions, trunks, features, and calls moving through their states.
//!
//! Deterministic for a seed and a sequence of clock readings: [`Model::advance`] steps the world one
//! simulated second at a time up to the clock's reading, drawing every random choice from one seeded
//! generator. Calls arrive at `target_calls / mean duration` per second (so about `target_calls` are
//! up at any time): inbound through a trunk (some via an IVR, a queue or a ring group, some forwarded
//! out again), outbound through a trunk, internal between extensions. They ring, are answered,
//! sometimes go on hold, and hang up; now and then one sticks in RING or HOLD for minutes, and a trunk
//! drops for a few minutes, so that the stuck-call and trunk alerts have something to show.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::pbx::types::MemberKind;

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
}

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
            let Some(trunk) = self.up_trunk() else { return };
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
        self.seq += 1;
        let mut call = SimCall {
            callid,
            members,
            phase: Phase::Ringing,
            phase_until: created + ring,
            talk_left: talk,
            queue,
        };
        call.set_phase(Phase::Ringing);
        self.calls.push(call);
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
                Phase::Ringing => {
                    call.set_phase(Phase::Talking);
                    call.queue = None;
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
                }
                Phase::Ending => {}
            }
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
            self.paused = (0..self.extensions.len())
                .filter(|_| self.rng.f64() < 0.03)
                .collect();
        }
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

    /// What each extension is doing: index → (phase, is caller).
    fn extension_activity(&self) -> HashMap<&str, &'static str> {
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

    /// `trunk/list`'s `trunklist`.
    pub fn trunk_list(&self) -> Vec<Value> {
        self.trunks
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let busy = self.calls.iter().any(|c| c.members.iter().any(|m| m.trunk.as_deref() == Some(t.name.as_str())));
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
        // Plain structs of strings: serializing into a Vec cannot fail.
        serde_json::to_vec(&CallsAnswer {
            calls,
            status: "Success",
        })
        .unwrap_or_default()
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
                *s.members.entry((m.kind.key(), m.status)).or_default() += 1;
            }
        }
        s
    }
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
}
