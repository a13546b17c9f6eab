//! What a PBX reports, whatever API family it speaks: calls and their members, trunks,
//! extensions, the device, queues. The families (`s_series`, …) read their own wire formats into
//! these types; collectors read only these. Phone numbers, extension numbers and agent names are not
//! here: nothing downstream may label a metric with them.

pub mod reports;

use std::borrow::Cow;

/// Where a call list is decoded into, one call at a time: the API family reads the PBX's lists, the
/// caller decides what to keep of them (the collector merges them by `callid`). A scrape never holds
/// a decoded answer beside what its sink kept.
pub trait CallSink: Default {
    /// Takes one call as the PBX listed it; its strings borrow from the answer's text.
    fn add_call(&mut self, call: Call<'_>);
}

/// One call as listed, borrowing from the answer's text where it can: a call listed again (an
/// internal call appears under each of its extensions) is merged without copying its strings.
#[derive(Debug, Default, Clone)]
pub struct Call<'a> {
    /// The PBX's id of the call (S-Series: `<unix seconds>.<sequence>`).
    pub callid: Cow<'a, str>,
    /// Its members of a known kind, as listed.
    pub members: Vec<Member<'a>>,
}

/// One member of a call: what the exporter reads of it (never its numbers).
#[derive(Debug, Clone)]
pub struct Member<'a> {
    /// Extension, inbound or outbound.
    pub kind: MemberKind,
    /// The trunk of an inbound or outbound member.
    pub trunk: Option<Cow<'a, str>>,
    /// The member's channel, hashed.
    pub channel: ChannelId,
    /// Its status, bucketed.
    pub status: Status,
    /// The IVR, queue, ring group… that set up this leg; absent is normal.
    pub callpath: Option<Cow<'a, str>>,
}

/// A member's kind, named by the one key of its object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MemberKind {
    /// An extension.
    Ext,
    /// An external caller, through a trunk.
    Inbound,
    /// An external callee, through a trunk.
    Outbound,
}

impl MemberKind {
    /// All kinds.
    pub const ALL: [MemberKind; 3] = [MemberKind::Ext, MemberKind::Inbound, MemberKind::Outbound];
}

/// A member's status, bucketed as it is read (the words the PBX documents, and everything else).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Status {
    /// Caller, ringing back.
    Alert,
    /// Callee, ringing.
    Ring,
    /// Caller, answered.
    Answered,
    /// Callee, answered.
    Answer,
    /// On hold.
    Hold,
    /// Hung up.
    Bye,
    /// Anything else (EARLYMEDIA on newer firmware, …).
    #[default]
    Other,
}

impl Status {
    /// All statuses, in the order the collector writes them.
    pub const ALL: [Status; 7] = [
        Status::Alert,
        Status::Ring,
        Status::Answered,
        Status::Answer,
        Status::Hold,
        Status::Bye,
        Status::Other,
    ];

    /// Buckets a PBX status word (case-insensitively).
    pub fn parse(word: &str) -> Status {
        const NAMED: [(&str, Status); 6] = [
            ("ALERT", Status::Alert),
            ("RING", Status::Ring),
            ("ANSWERED", Status::Answered),
            ("ANSWER", Status::Answer),
            ("HOLD", Status::Hold),
            ("BYE", Status::Bye),
        ];
        NAMED
            .iter()
            .find(|(w, _)| w.eq_ignore_ascii_case(word))
            .map_or(Status::Other, |(_, s)| *s)
    }

    /// Its position in [`Status::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// A member's `channelid`, kept as a 64-bit keyed hash: it only identifies the member within its
/// call (a handful of members), so the string itself is never stored. The key is random per
/// process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ChannelId(pub u64);

impl ChannelId {
    /// The id of channel `name`.
    pub fn of(name: &str) -> Self {
        use std::hash::BuildHasher;
        static KEY: std::sync::OnceLock<foldhash::quality::RandomState> =
            std::sync::OnceLock::new();
        ChannelId(KEY.get_or_init(Default::default).hash_one(name))
    }
}

/// One trunk.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Trunk {
    /// Its name (what a call member's trunk refers to).
    pub name: String,
    /// SIP, IAX, FXO, GSM, BRI, E1, as the PBX words it.
    pub kind: String,
    /// Registered, Idle, No SIM, …, as the PBX words it (or as its family words its code).
    pub status: String,
    /// Whether it can carry calls, when the family knows from the PBX's own code (`None`: the
    /// collector judges the words).
    pub up: Option<bool>,
    /// The PBX's status code, for a family that reports codes (the P-Series).
    pub code: Option<i64>,
}

/// One extension (its number is not kept).
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Extension {
    /// Its status, bucketed as it is read; `None` when the PBX gave no status word (missing, null or
    /// blank): an entry the collector cannot read.
    pub status: Option<ExtensionStatus>,
}

/// An extension's status as `extension/list` words it; every word not listed is `Other` (case,
/// spaces and punctuation ignored: `FXS No Port` is `fxsnoport`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum ExtensionStatus {
    /// Registered.
    Registered,
    /// Unavailable.
    Unavailable,
    /// Ringing.
    Ringing,
    /// Busy.
    Busy,
    /// Hold.
    Hold,
    /// Idle (an FXS port).
    Idle,
    /// Malfunction (an FXS port).
    Malfunction,
    /// FXSNoPort.
    FxsNoPort,
    /// Anything else.
    #[default]
    Other,
}

impl ExtensionStatus {
    /// Every status, in declaration order (`status as usize` is its index).
    pub const ALL: [ExtensionStatus; 9] = [
        ExtensionStatus::Registered,
        ExtensionStatus::Unavailable,
        ExtensionStatus::Ringing,
        ExtensionStatus::Busy,
        ExtensionStatus::Hold,
        ExtensionStatus::Idle,
        ExtensionStatus::Malfunction,
        ExtensionStatus::FxsNoPort,
        ExtensionStatus::Other,
    ];

    /// The PBX's words for every status but `Other`, in order.
    const WORDS: [&'static str; 8] = [
        "registered",
        "unavailable",
        "ringing",
        "busy",
        "hold",
        "idle",
        "malfunction",
        "fxsnoport",
    ];

    /// Buckets a PBX word by its letters and digits in any case (`Unavailable`, `unavailable`,
    /// `Un-available`, `FXS No Port`).
    pub fn parse(word: &str) -> ExtensionStatus {
        let key: String = word
            .chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_lowercase)
            .collect();
        Self::WORDS
            .iter()
            .position(|w| *w == key)
            .map_or(ExtensionStatus::Other, |i| Self::ALL[i])
    }
}

/// The PBX itself.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Device {
    /// Model, e.g. `S100`.
    pub model: String,
    /// Serial number: what the PBX's event reports carry (the event gate checks them).
    pub serial: Option<String>,
    /// Hardware version.
    pub hardware_version: String,
    /// Firmware version.
    pub firmware_version: String,
    /// Uptime as the PBX words it, e.g. `00:32:59` or `3 days, 04:05:06`.
    pub uptime: String,
    /// Uptime in seconds, for a family that reports it so (the P-Series' `up_time`).
    pub uptime_seconds: Option<u64>,
}

/// One queue's state.
#[derive(Debug, Clone, PartialEq)]
pub struct Queue {
    /// The queue's number (a label value: queues are configuration, not people).
    pub number: String,
    /// Callers waiting.
    pub waiting: u64,
    /// Agents by [`AGENT_STATUSES`] index (unknown codes count as `unknown`).
    pub agents: [u64; 11],
}

/// The agent statuses, by the PBX's agent status code (`0`..`10`).
pub const AGENT_STATUSES: [&str; 11] = [
    "unknown",
    "idle",
    "in_use",
    "busy",
    "invalid",
    "unavailable",
    "ringing",
    "in_use_ringing",
    "on_hold",
    "paused",
    "wrap_up",
];

/// What a collector may ask a PBX, whatever its API family: each family says which endpoints a
/// query calls (for the request-count series and the flags' help).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Query {
    /// The active calls, inbound and outbound.
    ActiveCalls,
    /// Every extension's calls (extension-to-extension calls among them).
    InternalCalls,
    /// The trunks.
    Trunks,
    /// The extensions.
    Extensions,
    /// The PBX itself.
    Device,
    /// The queues and their state.
    Queues,
}

/// The answer of a one-request query ([`Query::Trunks`], [`Query::Extensions`], [`Query::Device`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Data {
    /// The trunks.
    Trunks(Vec<Trunk>),
    /// The extensions.
    Extensions(Vec<Extension>),
    /// The PBX itself (`None`: the PBX said nothing about itself).
    Device(Option<Device>),
}
