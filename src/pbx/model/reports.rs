//! The PBX's event reports as every API family reads them: what happened ([`Event`]: a finished
//! call, a call's legs, a failed set-up, a boot, a queue agent's miss), in words no family's
//! wire format owns. Each family reads its reports into [`Report`] (the S-Series:
//! [`crate::pbx::s_series::events`]); the events collector counts them. No phone or extension
//! number is kept beyond a call's id and its legs' channels (never in a label).

use crate::pbx::model::Status;

/// One event report, read (whatever the family and its format).
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// What it reports.
    pub event: Event,
    /// In the family's older report format (the S-Series' v1, which a login without
    /// `version` gets).
    pub legacy: bool,
    /// The PBX's serial number (`sn`), when the report carries one (v1 reports do not).
    pub sn: Option<String>,
    /// The body was invalid JSON that parsed once trailing commas were removed.
    pub repaired: bool,
    /// What identifies this report if the PBX sends it again (it resends a report it got no 200
    /// for): the kind and callid of a `NewCdr`, `CallFailed` or ring timeout, the agent and
    /// missed calls of an auto-pause. `None`: a report that cannot be told from a later, equal one.
    pub key: Option<String>,
}

/// The events the exporter reads, and the rest by kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A call ended (`NewCdr`).
    NewCdr(Cdr),
    /// A call's legs changed (`CallStatus`; v1 `RING`, `ALERT`, `ANSWER`, `ANSWERED`, `BYE`).
    CallStatus(CallLegs),
    /// A call could not be set up (`CallFailed`).
    CallFailed(FailReason),
    /// The PBX booted (`BootUp`).
    BootUp,
    /// A queue agent was paused after too many missed calls (`QueueAutoPause`).
    QueueAutoPause { queue: Option<String> },
    /// A queue agent let a call ring out (`QueueAgentRingNoAnswerTimeout`).
    QueueAgentRingNoAnswerTimeout { queue: Option<String> },
    /// A documented event the exporter does not count beyond its arrival.
    Known(Kind),
    /// An event this exporter does not know (its name, clipped).
    Other(String),
}

/// The documented events, as a closed set (the `type` label of received events).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    NewCdr,
    CallStatus,
    CallFailed,
    BootUp,
    QueueAutoPause,
    QueueAgentRingNoAnswerTimeout,
    ExtensionStatus,
    Transfer,
    Forward,
    Dtmf,
    PlayPromptEnd,
    Invite,
    Incoming,
    ConfigChange,
    Satisfaction,
    ConferenceStatus,
    UaCstaCall,
}

impl Kind {
    /// Every kind, in label order.
    pub const ALL: [Kind; 17] = [
        Kind::NewCdr,
        Kind::CallStatus,
        Kind::CallFailed,
        Kind::BootUp,
        Kind::QueueAutoPause,
        Kind::QueueAgentRingNoAnswerTimeout,
        Kind::ExtensionStatus,
        Kind::Transfer,
        Kind::Forward,
        Kind::Dtmf,
        Kind::PlayPromptEnd,
        Kind::Invite,
        Kind::Incoming,
        Kind::ConfigChange,
        Kind::Satisfaction,
        Kind::ConferenceStatus,
        Kind::UaCstaCall,
    ];
}

impl Event {
    /// Its kind; `None` for an unknown event.
    pub fn kind(&self) -> Option<Kind> {
        Some(match self {
            Event::NewCdr(_) => Kind::NewCdr,
            Event::CallStatus(_) => Kind::CallStatus,
            Event::CallFailed(_) => Kind::CallFailed,
            Event::BootUp => Kind::BootUp,
            Event::QueueAutoPause { .. } => Kind::QueueAutoPause,
            Event::QueueAgentRingNoAnswerTimeout { .. } => Kind::QueueAgentRingNoAnswerTimeout,
            Event::Known(k) => *k,
            Event::Other(_) => return None,
        })
    }
}

/// A finished call (`NewCdr`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cdr {
    /// Its callid: the key a resent report is recognised by.
    pub callid: String,
    pub direction: CdrDirection,
    pub outcome: CdrOutcome,
    /// Seconds from start to end (`callduraction`), when given and readable.
    pub call_secs: Option<u64>,
    /// Seconds answered (`talkduraction`), when given and readable.
    pub talk_secs: Option<u64>,
    /// The trunk the call came in on (`srctrunkname`).
    pub inbound_trunk: Option<String>,
    /// The trunk the call went out on (`dsttrcunkname`, sic, and its v1 spellings).
    pub outbound_trunk: Option<String>,
}

/// A CDR's `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CdrDirection {
    Inbound,
    Outbound,
    Internal,
    /// v1's `Callback`, `Transfer`, and anything else.
    Other,
}

impl CdrDirection {
    pub const ALL: [CdrDirection; 4] = [
        CdrDirection::Inbound,
        CdrDirection::Outbound,
        CdrDirection::Internal,
        CdrDirection::Other,
    ];
}

/// A CDR's `status`, every documented spelling mapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CdrOutcome {
    /// `ANSWERED`, `ANSWER`, `ANSWERD` (sic).
    Answered,
    /// `NO ANSWER`, `NO ANSWERED` (sic), `NOANSWER`.
    NoAnswer,
    /// `BUSY`.
    Busy,
    /// `VOICEMAIL`.
    Voicemail,
    /// v1's `FAILED`, a missing status, and anything else.
    Other,
}

impl CdrOutcome {
    pub const ALL: [CdrOutcome; 5] = [
        CdrOutcome::Answered,
        CdrOutcome::NoAnswer,
        CdrOutcome::Busy,
        CdrOutcome::Voicemail,
        CdrOutcome::Other,
    ];
}

/// Why a call could not be set up (`CallFailed`'s `reason`), the documented ones and the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailReason {
    NoOutboundRestriction,
    Congestion,
    Dnd,
    LineUnreachable,
    UserBusy,
    Gone,
    NotFound,
    RequestTimeout,
    TemporarilyUnavailable,
    AddressIncomplete,
    BusyHere,
    Declined,
    Other,
}

impl FailReason {
    pub const ALL: [FailReason; 13] = [
        FailReason::NoOutboundRestriction,
        FailReason::Congestion,
        FailReason::Dnd,
        FailReason::LineUnreachable,
        FailReason::UserBusy,
        FailReason::Gone,
        FailReason::NotFound,
        FailReason::RequestTimeout,
        FailReason::TemporarilyUnavailable,
        FailReason::AddressIncomplete,
        FailReason::BusyHere,
        FailReason::Declined,
        FailReason::Other,
    ];
}

/// A `CallStatus`: the legs of one call as the PBX reports them now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallLegs {
    pub callid: String,
    /// (channel, status) of each member that names its channel.
    pub legs: Vec<(String, Status)>,
}

/// Why a body is not an event report.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("not JSON: {0}")]
    NotJson(String),
    #[error("not a JSON object")]
    NotAnObject,
    #[error("no \"event\" or \"action\"")]
    NoEvent,
    #[error("{event} without a callid")]
    NoCallid { event: &'static str },
}
