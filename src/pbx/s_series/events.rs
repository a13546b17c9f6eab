//! The PBX's event reports (API v2.0.0, and the v1 format a login without `version` gets), read
//! the way `yeastar-events.md` says a receiver must survive them.
//!
//! - Strict JSON first; on failure once more with trailing commas removed (the vendor's own
//!   `CallFailed` example has one), which [`Report::repaired`] records.
//! - The discriminator is `event` (v2) or `action` (v1); an unknown one is [`Event::Other`], never
//!   an error. A body without either is an error.
//! - Every scalar may be a string, a number or null; `""` is absent.
//! - The misspellings the PBX really sends are read: `callduraction`, `talkduraction`,
//!   `dsttrcunkname` (and the v1 `desttrunkname`, `dstrunkname`, `dsttrunkname`), `Tranfer`,
//!   `NO ANSWERED`, `ANSWERD`, `480 Temporatily Unavailable`.
//! - v1 duplicate keys (`"ext":{…},"ext":{…}`) keep the last value and are not an error.
//!
//! It also splits a TCP event stream into JSON objects whatever the framing ([`ObjectSplitter`]).
//! It reads them into the family-neutral [`Report`] ([`crate::pbx::model::reports`]); nothing here
//! knows metrics: the events collector counts what this reads.

use serde_json::{Map, Value};

use crate::pbx::model::Status;
use crate::pbx::model::reports::{
    CallLegs, Cdr, CdrDirection, CdrOutcome, Event, FailReason, Kind, ParseError, Report,
};

/// Which report format a body is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// `"event": …` (a login with `"version": "2.0.0"`).
    V2,
    /// `"action": …` (a login without `version`).
    V1,
}

/// The kind of an `event` (or v1 `action`) value, case-insensitively, misspellings included.
fn kind_of(name: &str) -> Option<Kind> {
    let n = name.trim().to_ascii_lowercase();
    Some(match n.as_str() {
        "newcdr" => Kind::NewCdr,
        "callstatus" | "ring" | "alert" | "answer" | "answered" | "bye" | "hold" => {
            Kind::CallStatus
        }
        "callfailed" => Kind::CallFailed,
        "bootup" => Kind::BootUp,
        "queueautopause" => Kind::QueueAutoPause,
        "queueagentringnoanswertimeout" => Kind::QueueAgentRingNoAnswerTimeout,
        "extensionstatus" => Kind::ExtensionStatus,
        "tranfer" | "transfer" | "calltransfer" => Kind::Transfer,
        "forward" => Kind::Forward,
        "dtmf" => Kind::Dtmf,
        "playpromptend" => Kind::PlayPromptEnd,
        "invite" => Kind::Invite,
        "incoming" => Kind::Incoming,
        "configchange" => Kind::ConfigChange,
        "satisfaction" => Kind::Satisfaction,
        "conferencestatus" => Kind::ConferenceStatus,
        "uacstacall" => Kind::UaCstaCall,
        _ => return None,
    })
}

fn direction_of(word: &str) -> CdrDirection {
    match word.trim().to_ascii_lowercase().as_str() {
        "inbound" => CdrDirection::Inbound,
        "outbound" => CdrDirection::Outbound,
        "internal" => CdrDirection::Internal,
        _ => CdrDirection::Other,
    }
}

fn outcome_of(word: &str) -> CdrOutcome {
    let w: String = word
        .chars()
        .filter(|c| c.is_ascii_alphabetic())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    match w.as_str() {
        "ANSWERED" | "ANSWER" | "ANSWERD" => CdrOutcome::Answered,
        "NOANSWER" | "NOANSWERED" | "NOANSWERD" => CdrOutcome::NoAnswer,
        "BUSY" => CdrOutcome::Busy,
        "VOICEMAIL" => CdrOutcome::Voicemail,
        _ => CdrOutcome::Other,
    }
}

/// The reason of a `reason` text: by SIP code where it starts with one (the PBX's own
/// spellings after it vary: `480 Temporatily Unavailable`), else by its words.
fn reason_of(text: &str) -> FailReason {
    let t = text.trim().to_ascii_lowercase();
    let code = t.split_whitespace().next().unwrap_or("");
    match code {
        "410" => return FailReason::Gone,
        "404" => return FailReason::NotFound,
        "408" => return FailReason::RequestTimeout,
        "480" => return FailReason::TemporarilyUnavailable,
        "484" => return FailReason::AddressIncomplete,
        "486" => return FailReason::BusyHere,
        "603" => return FailReason::Declined,
        _ => {}
    }
    let words: String = t.chars().filter(|c| c.is_ascii_alphabetic()).collect();
    match words.as_str() {
        "nooutboundrestriction" => FailReason::NoOutboundRestriction,
        "circuitchannelcongestion" => FailReason::Congestion,
        "dnd" => FailReason::Dnd,
        "lineunreachable" => FailReason::LineUnreachable,
        "userbusy" => FailReason::UserBusy,
        _ => FailReason::Other,
    }
}

/// The longest event name kept from an unknown event.
const MAX_NAME: usize = 64;

/// Reads one event report.
pub fn parse(body: &[u8]) -> Result<Report, ParseError> {
    let (value, repaired) = match serde_json::from_slice::<Value>(body) {
        Ok(v) => (v, false),
        Err(first) => {
            let fixed = without_trailing_commas(body);
            match serde_json::from_slice::<Value>(&fixed) {
                Ok(v) if fixed.len() != body.len() => (v, true),
                _ => {
                    return Err(ParseError::NotJson(crate::pbx::clip(
                        &first.to_string(),
                        200,
                    )));
                }
            }
        }
    };
    let Value::Object(o) = value else {
        return Err(ParseError::NotAnObject);
    };
    let (name, format) = match (scalar(&o, "event"), scalar(&o, "action")) {
        (Some(e), _) => (e, Format::V2),
        (None, Some(a)) => (a, Format::V1),
        (None, None) => return Err(ParseError::NoEvent),
    };
    let event = match kind_of(&name) {
        Some(Kind::NewCdr) => Event::NewCdr(cdr(&o)?),
        Some(Kind::CallStatus) => Event::CallStatus(legs(&o, format, &name)?),
        Some(Kind::CallFailed) => {
            Event::CallFailed(reason_of(&scalar(&o, "reason").unwrap_or_default()))
        }
        Some(Kind::BootUp) => Event::BootUp,
        Some(Kind::QueueAutoPause) => Event::QueueAutoPause { queue: queue(&o) },
        Some(Kind::QueueAgentRingNoAnswerTimeout) => {
            Event::QueueAgentRingNoAnswerTimeout { queue: queue(&o) }
        }
        Some(k) => Event::Known(k),
        None => Event::Other(name.chars().take(MAX_NAME).collect()),
    };
    let call = callid(&o);
    let key = match &event {
        Event::NewCdr(c) => Some(format!("cdr {}", c.callid)),
        Event::CallFailed(_) => call.map(|c| format!("failed {c}")),
        Event::QueueAgentRingNoAnswerTimeout { .. } => call.map(|c| {
            format!(
                "ring-timeout {c} {}",
                scalar(&o, "agent").unwrap_or_default().trim()
            )
        }),
        Event::QueueAutoPause { .. } => {
            let missed: Vec<String> = o
                .get("misscall")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|m| m.as_object().and_then(callid))
                .collect();
            (!missed.is_empty()).then(|| {
                format!(
                    "auto-pause {} {}",
                    scalar(&o, "agent").unwrap_or_default().trim(),
                    missed.join(",")
                )
            })
        }
        _ => None,
    };
    Ok(Report {
        event,
        legacy: format == Format::V1,
        sn: scalar(&o, "sn"),
        repaired,
        key,
    })
}

fn cdr(o: &Map<String, Value>) -> Result<Cdr, ParseError> {
    let callid = callid(o).ok_or(ParseError::NoCallid { event: "NewCdr" })?;
    let outbound_trunk = [
        "dsttrcunkname",
        "dsttrunkname",
        "desttrunkname",
        "dstrunkname",
    ]
    .iter()
    .find_map(|k| scalar(o, k));
    Ok(Cdr {
        callid,
        direction: direction_of(&scalar(o, "type").unwrap_or_default()),
        outcome: outcome_of(&scalar(o, "status").unwrap_or_default()),
        call_secs: scalar(o, "callduraction")
            .or_else(|| scalar(o, "callduration"))
            .and_then(|s| seconds(&s)),
        talk_secs: scalar(o, "talkduraction")
            .or_else(|| scalar(o, "talkduration"))
            .and_then(|s| seconds(&s)),
        inbound_trunk: scalar(o, "srctrunkname"),
        outbound_trunk,
    })
}

/// The legs of a `CallStatus` (v2: `members`, one key each) or of a v1 call action (top-level
/// `ext`/`inbound`/`outbound` objects, whose status is the action itself).
fn legs(o: &Map<String, Value>, format: Format, name: &str) -> Result<CallLegs, ParseError> {
    let callid = callid(o).ok_or(ParseError::NoCallid {
        event: "CallStatus",
    })?;
    let mut legs = Vec::new();
    let mut add = |member: &Value, status: Option<Status>| {
        let Value::Object(m) = member else { return };
        let Some(channel) = scalar(m, "channelid")
            .or_else(|| scalar(m, "extid"))
            .or_else(|| scalar(m, "inboundid"))
            .or_else(|| scalar(m, "outboundid"))
        else {
            return;
        };
        let status =
            status.unwrap_or_else(|| Status::parse(&scalar(m, "memberstatus").unwrap_or_default()));
        legs.push((channel, status));
    };
    match format {
        Format::V2 => {
            for member in o
                .get("members")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Value::Object(one) = member {
                    for inner in one.values() {
                        add(inner, None);
                    }
                }
            }
        }
        Format::V1 => {
            let status = Status::parse(name);
            for key in ["ext", "inbound", "outbound"] {
                if let Some(m) = o.get(key) {
                    add(m, Some(status));
                }
            }
        }
    }
    Ok(CallLegs { callid, legs })
}

/// A queue's number: `6700` in `QueueAutoPause`, `queue-6700` in the ring-timeout event.
fn queue(o: &Map<String, Value>) -> Option<String> {
    let q = scalar(o, "queue")?;
    let q = q.trim();
    let bare = q
        .strip_prefix("queue-")
        .or_else(|| q.strip_prefix("Queue-"))
        .unwrap_or(q);
    (!bare.is_empty()).then(|| bare.chars().take(MAX_NAME).collect())
}

/// A report's `callid` as the PBX writes it (`"1571897930.5"`: the call's start in unix seconds,
/// a dot, Asterisk's sequence number), trimmed of whitespace and NUL and otherwise kept as text:
/// `1711516130.30` and `1711516130.3` are two calls (sequence 30 and 3), not one number. One sent
/// as a JSON number (the docs show strings) is the number's shortest text.
pub fn callid(o: &Map<String, Value>) -> Option<String> {
    let c = scalar(o, "callid")?;
    let t = c.trim_matches(|ch: char| ch.is_whitespace() || ch == '\0');
    (!t.is_empty()).then(|| t.to_string())
}

/// A field as text: a string (not blank) or a number; `None` for absent, null, `""` and others.
fn scalar(o: &Map<String, Value>, key: &str) -> Option<String> {
    match o.get(key)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Seconds from `"19"` or `"HH:MM:SS"`.
pub fn seconds(text: &str) -> Option<u64> {
    let t = text.trim();
    if let Ok(s) = t.parse::<u64>() {
        return Some(s);
    }
    let parts: Vec<&str> = t.split(':').collect();
    if parts.len() != 3 {
        return None;
    }
    let mut total = 0u64;
    for (p, unit) in parts.iter().zip([3600u64, 60, 1]) {
        let n: u64 = p.parse().ok()?;
        if unit != 3600 && n >= 60 {
            return None;
        }
        total = total.checked_add(n.checked_mul(unit)?)?;
    }
    Some(total)
}

/// `body` with every comma removed that is followed (after whitespace) by `}` or `]`, outside
/// strings.
fn without_trailing_commas(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let (mut in_string, mut escaped) = (false, false);
    for (i, &b) in body.iter().enumerate() {
        if in_string {
            out.push(b);
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b',' => {
                let next = body[i + 1..].iter().find(|c| !c.is_ascii_whitespace());
                if matches!(next, Some(b'}' | b']')) {
                    continue;
                }
            }
            _ => {}
        }
        out.push(b);
    }
    out
}

/// Splits a byte stream into top-level JSON objects, whatever separates them (nothing, CR/LF,
/// blank lines) and whatever else the stream carries between them (an AMI-style
/// `Response: Success` line, for one): bytes outside an object are skipped and counted.
#[derive(Debug, Default)]
pub struct ObjectSplitter {
    buf: Vec<u8>,
    depth: usize,
    in_string: bool,
    escaped: bool,
    /// Where the current object started in `buf`, while inside one.
    start: Option<usize>,
    /// Bytes scanned in `buf` so far.
    scanned: usize,
    /// Non-whitespace bytes seen outside any object.
    pub skipped: u64,
    /// How many of the last bytes outside objects [`ObjectSplitter::outside`] keeps (0: none).
    keep_outside: usize,
    outside: Vec<u8>,
}

/// The largest object [`ObjectSplitter`] assembles: a longer one is dropped (and counted as
/// skipped) so a broken stream cannot grow memory without bound.
pub const MAX_OBJECT: usize = 256 * 1024;

impl ObjectSplitter {
    /// Keeps the last `bytes` bytes of what arrives outside objects, for
    /// [`ObjectSplitter::outside`] (the TCP login's answer, however it is split); 0 keeps none
    /// and drops what was kept.
    pub fn keep_outside(&mut self, bytes: usize) {
        self.keep_outside = bytes;
        if bytes == 0 {
            self.outside = Vec::new();
        } else if self.outside.len() > bytes {
            self.outside.drain(..self.outside.len() - bytes);
        }
    }

    /// The bytes kept from outside objects (see [`ObjectSplitter::keep_outside`]), oldest first.
    pub fn outside(&self) -> &[u8] {
        &self.outside
    }

    /// Adds `bytes` and returns every object they complete, in order.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Vec<u8>> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        let mut i = self.scanned;
        while i < self.buf.len() {
            let b = self.buf[i];
            match self.start {
                None => {
                    if b == b'{' {
                        self.start = Some(i);
                        self.depth = 1;
                    } else {
                        if !b.is_ascii_whitespace() {
                            self.skipped += 1;
                        }
                        if self.keep_outside > 0 {
                            if self.outside.len() >= self.keep_outside {
                                // Keep the newer half: an answer split at the cut stays whole.
                                self.outside.drain(..self.keep_outside.div_ceil(2));
                            }
                            self.outside.push(b);
                        }
                    }
                }
                Some(start) => {
                    if self.in_string {
                        match (self.escaped, b) {
                            (true, _) => self.escaped = false,
                            (false, b'\\') => self.escaped = true,
                            (false, b'"') => self.in_string = false,
                            _ => {}
                        }
                    } else {
                        match b {
                            b'"' => self.in_string = true,
                            b'{' | b'[' => self.depth += 1,
                            b'}' | b']' => {
                                self.depth -= 1;
                                if self.depth == 0 {
                                    out.push(self.buf[start..=i].to_vec());
                                    self.start = None;
                                }
                            }
                            _ => {}
                        }
                    }
                    if let Some(start) = self.start
                        && i + 1 - start > MAX_OBJECT
                    {
                        self.skipped += (i + 1 - start) as u64;
                        self.start = None;
                        self.depth = 0;
                        self.in_string = false;
                        self.escaped = false;
                    }
                }
            }
            i += 1;
        }
        // Keep only the unfinished object.
        let keep_from = self.start.unwrap_or(self.buf.len());
        self.buf.drain(..keep_from);
        if let Some(s) = self.start.as_mut() {
            *s = 0;
        }
        self.scanned = self.buf.len();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SN: &str = "369451090405";

    fn ok(body: &str) -> Report {
        parse(body.as_bytes()).unwrap_or_else(|e| panic!("{body}: {e}"))
    }

    #[test]
    fn the_vendors_newcdr_reads_exactly() {
        let p = ok(
            r#"{"event":"NewCdr","callid":"1571897930.5","timestart":"2019-10-23 22:18:50","callfrom":"1023","callto":"2023","callduraction":"19","talkduraction":"14","srctrunkname":"","dsttrcunkname":"","pincode":"","status":"ANSWERED","type":"Internal","recording":"20191024201242-1571897930.5-203-201-Internal.wav","didnumber":"","agentringtime":"0","sn":"369451090405"}"#,
        );
        assert_eq!(
            p,
            Report {
                event: Event::NewCdr(Cdr {
                    callid: "1571897930.5".into(),
                    direction: CdrDirection::Internal,
                    outcome: CdrOutcome::Answered,
                    call_secs: Some(19),
                    talk_secs: Some(14),
                    inbound_trunk: None,
                    outbound_trunk: None,
                }),
                legacy: false,
                sn: Some(SN.into()),
                repaired: false,
                key: Some("cdr 1571897930.5".into()),
            }
        );
    }

    #[test]
    fn outbound_no_answer_names_its_trunk() {
        let p = ok(
            r#"{"event":"NewCdr","callid":"1571898000.7","timestart":"2019-10-23 22:20:00","callfrom":"1023","callto":"9283737733","callduraction":"25","talkduraction":"0","srctrunkname":"","dsttrcunkname":"siptrunk","pincode":"","status":"NO ANSWER","type":"Outbound","recording":"","didnumber":"","agentringtime":"0","sn":"369451090405"}"#,
        );
        let Event::NewCdr(c) = p.event else { panic!() };
        assert_eq!(
            (c.direction, c.outcome, c.outbound_trunk.as_deref()),
            (
                CdrDirection::Outbound,
                CdrOutcome::NoAnswer,
                Some("siptrunk")
            )
        );
        assert_eq!((c.call_secs, c.talk_secs), (Some(25), Some(0)));
    }

    #[test]
    fn every_documented_status_spelling_is_mapped() {
        for (word, want) in [
            ("ANSWERED", CdrOutcome::Answered),
            ("ANSWER", CdrOutcome::Answered),
            ("ANSWERD", CdrOutcome::Answered),
            ("NO ANSWER", CdrOutcome::NoAnswer),
            ("NO ANSWERED", CdrOutcome::NoAnswer),
            ("no_answer", CdrOutcome::NoAnswer),
            ("BUSY", CdrOutcome::Busy),
            ("VOICEMAIL", CdrOutcome::Voicemail),
            ("FAILED", CdrOutcome::Other),
            ("", CdrOutcome::Other),
        ] {
            assert_eq!(outcome_of(word), want, "{word:?}");
        }
    }

    #[test]
    fn v1_newcdr_and_its_trunk_spelling() {
        let p = ok(
            r#"{"action":"NewCdr","callid":"1505352615.274","timestart":"2017-09-14 09:30:15","callfrom":"1000","callto":"91000","desttrunkname":"Apple_test","callduraction":"29","talkduraction":"29","status":"ANSWERED","type":"Outbound","pincode":"1000","recording":"x.wav"}"#,
        );
        assert_eq!((p.legacy, p.sn.as_deref()), (true, None));
        let Event::NewCdr(c) = p.event else { panic!() };
        assert_eq!(c.outbound_trunk.as_deref(), Some("Apple_test"));
    }

    #[test]
    fn the_vendors_invalid_callfailed_is_repaired_and_read() {
        let p = ok(
            r#"{"callid":"1573097568.15","event":"CallFailed","reason":"NO Outbound Restriction","members":[{"ext":{"number":"1023","channelid":"PJSIP/1023-0000000a",}}],"sn":"369451090405"}"#,
        );
        assert!(p.repaired);
        assert_eq!(
            p.event,
            Event::CallFailed(FailReason::NoOutboundRestriction)
        );
    }

    #[test]
    fn every_documented_fail_reason_is_mapped() {
        let all = [
            ("NO Outbound Restriction", FailReason::NoOutboundRestriction),
            ("Circuit/channel congestion", FailReason::Congestion),
            ("DND", FailReason::Dnd),
            ("Line Unreachable", FailReason::LineUnreachable),
            ("User Busy", FailReason::UserBusy),
            ("410 Gone", FailReason::Gone),
            ("404 NOT found", FailReason::NotFound),
            ("408 Request Time", FailReason::RequestTimeout),
            (
                "480 Temporatily Unavailable",
                FailReason::TemporarilyUnavailable,
            ),
            ("484 Address incomplete", FailReason::AddressIncomplete),
            ("486 Busy here", FailReason::BusyHere),
            ("603 Declined", FailReason::Declined),
            ("500 Server Error", FailReason::Other),
        ];
        for (text, want) in all {
            assert_eq!(reason_of(text), want, "{text}");
        }
        assert_eq!(all.len(), FailReason::ALL.len());
    }

    #[test]
    fn call_status_legs_and_v1_duplicate_keys() {
        let p = ok(
            r#"{"event":"CallStatus","callid":"1571905397.97","members":[{"ext":{"number":"1023","channelid":"PJSIP/1023-00000039","memberstatus":"ALERT"}},{"ext":{"number":"2023","channelid":"PJSIP/2023-0000003a","memberstatus":"RING"}}],"sn":"369451090405"}"#,
        );
        assert_eq!(
            p.event,
            Event::CallStatus(CallLegs {
                callid: "1571905397.97".into(),
                legs: vec![
                    ("PJSIP/1023-00000039".into(), Status::Alert),
                    ("PJSIP/2023-0000003a".into(), Status::Ring),
                ],
            })
        );
        // v1: duplicate "ext" keys keep the last; the action is the status.
        let p = ok(
            r#"{"action":"RING","callid":"1495706238.328","ext":{"extid":"1000"},"ext":{"extid":"1002"}}"#,
        );
        assert_eq!(
            p.event,
            Event::CallStatus(CallLegs {
                callid: "1495706238.328".into(),
                legs: vec![("1002".into(), Status::Ring)],
            })
        );
    }

    #[test]
    fn queues_boot_and_the_rest() {
        assert_eq!(
            ok(r#"{"event":"QueueAutoPause","queue":"6700","agent":"1000","misscall":[{"caller":"2000","callid":"1711360264.92"}],"sn":"369451090405"}"#).event,
            Event::QueueAutoPause { queue: Some("6700".into()) }
        );
        assert_eq!(
            ok(r#"{"event":"QueueAgentRingNoAnswerTimeout","queue":"queue-6700","agent":"Phillip Huff","callid":"1711516130.30","caller":"2000","sn":"369451090405"}"#).event,
            Event::QueueAgentRingNoAnswerTimeout { queue: Some("6700".into()) }
        );
        assert_eq!(
            ok(r#"{"event":"BootUp","sn":"369451090405"}"#).event,
            Event::BootUp
        );
        assert_eq!(
            ok(r#"{"event":"Tranfer","callid":"1.1","members":[],"sn":"1"}"#).event,
            Event::Known(Kind::Transfer)
        );
        assert_eq!(
            ok(r#"{"event":"satisfaction","callid":"1571972541.133","surveyresult":"1","sn":"369451090405"}"#).event,
            Event::Known(Kind::Satisfaction)
        );
        assert_eq!(
            ok(r#"{"event":"SomethingNew","callid":"1700000000.1","sn":"369451090405"}"#).event,
            Event::Other("SomethingNew".into())
        );
    }

    #[test]
    fn garbage_is_an_error_named() {
        assert!(matches!(parse(b"not json"), Err(ParseError::NotJson(_))));
        assert!(matches!(parse(b""), Err(ParseError::NotJson(_))));
        assert_eq!(parse(b"[1]"), Err(ParseError::NotAnObject));
        assert_eq!(parse(br#"{"sn":"369451090405"}"#), Err(ParseError::NoEvent));
        assert_eq!(
            parse(br#"{"event":"NewCdr","status":"ANSWERED"}"#),
            Err(ParseError::NoCallid { event: "NewCdr" })
        );
    }

    #[test]
    fn durations_in_seconds_or_clock_form() {
        assert_eq!(seconds("19"), Some(19));
        assert_eq!(seconds("00:10:00"), Some(600));
        assert_eq!(seconds("1:02:03"), Some(3723));
        assert_eq!(seconds("12:10:10 AM"), None);
        assert_eq!(seconds("00:61:00"), None);
        assert_eq!(seconds(""), None);
    }

    #[test]
    fn the_splitter_survives_every_framing() {
        let a = r#"{"event":"BootUp","sn":"1"}"#;
        let b = r#"{"event":"NewCdr","callid":"1.1","note":"a } and \" in a string"}"#;
        for sep in ["", "\r\n", "\r\n\r\n", "\n", "Response: Success\r\n\r\n"] {
            let stream = format!("{sep}{a}{sep}{b}{sep}");
            // Whole, and one byte at a time.
            let mut s = ObjectSplitter::default();
            let got: Vec<Vec<u8>> = s.push(stream.as_bytes());
            assert_eq!(
                got,
                vec![a.as_bytes().to_vec(), b.as_bytes().to_vec()],
                "{sep:?}"
            );
            let mut s = ObjectSplitter::default();
            let mut got = Vec::new();
            for byte in stream.as_bytes() {
                got.extend(s.push(std::slice::from_ref(byte)));
            }
            assert_eq!(got.len(), 2, "{sep:?}");
            let skipped = 3 * sep.bytes().filter(|c| !c.is_ascii_whitespace()).count();
            assert_eq!(s.skipped, skipped as u64, "{sep:?}");
        }
    }

    #[test]
    fn the_splitter_drops_an_endless_object() {
        let mut s = ObjectSplitter::default();
        let mut got = s.push(b"{\"a\":\"");
        for _ in 0..(MAX_OBJECT / 1024 + 1) {
            got.extend(s.push(&[b'x'; 1024]));
        }
        assert!(got.is_empty());
        assert!(s.buf.len() <= 1024, "{}", s.buf.len());
        // The stream recovers at the next object.
        let after = s.push(b"\"}{\"event\":\"BootUp\"}");
        assert_eq!(after, vec![br#"{"event":"BootUp"}"#.to_vec()]);
    }
}
