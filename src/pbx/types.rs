//! The PBX's JSON answers, as serde types.
//!
//! Written for what real firmware sends, not only for what the vendor documents: fields the docs call
//! Integer arrive as strings (and sometimes as numbers), the calls key is `Calls` or `calls`, a member
//! is an object with exactly one key naming its kind (found by key, never by position; unknown kinds
//! are skipped), and fields a firmware leaves out default to empty. Phone numbers (`from`, `to`, an
//! extension's `number`) are deliberately not kept: nothing downstream may label a metric with them.

use serde::{Deserialize, Deserializer};

/// Every answer carries `status` and, when it failed, `errno`.
pub trait Envelope {
    /// `Success` or `Failed` (missing on a broken answer).
    fn status(&self) -> Option<&str>;
    /// The error number of a `Failed` answer.
    fn errno(&self) -> Option<&str>;
}

macro_rules! envelope {
    ($($t:ty),* $(,)?) => {$(
        impl Envelope for $t {
            fn status(&self) -> Option<&str> { self.status.as_deref() }
            fn errno(&self) -> Option<&str> { self.errno.as_deref() }
        }
    )*};
}

/// A string or a number, read as a string (`"6500"` and `6500` both give `"6500"`).
pub fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(lenient_opt_string(d)?.unwrap_or_default())
}

/// Like [`lenient_string`], keeping `null` as `None`.
pub fn lenient_opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    // A visitor rather than an untagged enum: untagged buffers every value first, and these
    // fields are most of a call/query answer.
    struct Lenient;
    impl<'de> serde::de::Visitor<'de> for Lenient {
        type Value = Option<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a string or a number")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(v.to_owned()))
        }
        fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(Lenient)
        }
    }
    d.deserialize_any(Lenient)
}

/// `login`.
#[derive(Debug, Default, Deserialize)]
pub struct LoginAnswer {
    #[serde(default)]
    status: Option<String>,
    #[serde(default, deserialize_with = "lenient_opt_string")]
    errno: Option<String>,
    /// The token. Moved into a `Secret` by the client at once; never printed.
    #[serde(default)]
    pub token: Option<String>,
}

/// An answer whose content is not used (`heartbeat`, `logout`).
#[derive(Debug, Default, Deserialize)]
pub struct BareAnswer {
    #[serde(default)]
    status: Option<String>,
    #[serde(default, deserialize_with = "lenient_opt_string")]
    errno: Option<String>,
}

/// `call/query`.
#[derive(Debug, Default, Deserialize)]
pub struct CallQueryAnswer {
    #[serde(default)]
    status: Option<String>,
    #[serde(default, deserialize_with = "lenient_opt_string")]
    errno: Option<String>,
    /// The active calls.
    #[serde(default, rename = "Calls", alias = "calls")]
    pub calls: Vec<Call>,
}

/// One call.
#[derive(Debug, Default, Deserialize, Clone)]
pub struct Call {
    /// `<unix seconds>.<sequence>`.
    #[serde(default, deserialize_with = "lenient_string")]
    pub callid: String,
    /// Its members, by kind.
    #[serde(default)]
    pub members: Vec<RawMember>,
}

/// A member as the PBX sends it: an object with one key naming its kind.
#[derive(Debug, Default, Deserialize, Clone)]
pub struct RawMember {
    #[serde(default)]
    ext: Option<MemberInfo>,
    #[serde(default)]
    inbound: Option<MemberInfo>,
    #[serde(default)]
    outbound: Option<MemberInfo>,
}

impl RawMember {
    /// The member's kind and fields, by value.
    pub fn into_kind(self) -> Option<(MemberKind, MemberInfo)> {
        if let Some(m) = self.ext {
            Some((MemberKind::Ext, m))
        } else if let Some(m) = self.inbound {
            Some((MemberKind::Inbound, m))
        } else {
            self.outbound.map(|m| (MemberKind::Outbound, m))
        }
    }

    /// The member's kind and content; `None` for a kind this exporter does not know.
    pub fn get(&self) -> Option<(MemberKind, &MemberInfo)> {
        if let Some(m) = &self.ext {
            Some((MemberKind::Ext, m))
        } else if let Some(m) = &self.inbound {
            Some((MemberKind::Inbound, m))
        } else {
            self.outbound.as_ref().map(|m| (MemberKind::Outbound, m))
        }
    }
}

/// The three documented member kinds.
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
    /// All kinds, in label order.
    pub const ALL: [MemberKind; 3] = [MemberKind::Ext, MemberKind::Inbound, MemberKind::Outbound];

    /// The `member` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            MemberKind::Ext => "ext",
            MemberKind::Inbound => "inbound",
            MemberKind::Outbound => "outbound",
        }
    }
}

/// A member's status, as the contract buckets it.
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
    /// All statuses, in label order.
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

    /// The `status` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Alert => "ALERT",
            Status::Ring => "RING",
            Status::Answered => "ANSWERED",
            Status::Answer => "ANSWER",
            Status::Hold => "HOLD",
            Status::Bye => "BYE",
            Status::Other => "OTHER",
        }
    }

    /// Its position in [`Status::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// `memberstatus`: bucketed as it is read, without keeping the word (a number or null is `OTHER`).
pub fn member_status<'de, D: Deserializer<'de>>(d: D) -> Result<Status, D::Error> {
    struct Word;
    impl<'de> serde::de::Visitor<'de> for Word {
        type Value = Status;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a status word")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Status, E> {
            Ok(Status::parse(v))
        }
        fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Status, E> {
            Ok(Status::Other)
        }
        fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Status, E> {
            Ok(Status::Other)
        }
        fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Status, E> {
            Ok(Status::Other)
        }
        fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Status, E> {
            Ok(Status::Other)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Status, E> {
            Ok(Status::Other)
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Status, E> {
            Ok(Status::Other)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Status, D::Error> {
            d.deserialize_any(Word)
        }
    }
    d.deserialize_any(Word)
}

/// What the exporter reads of a member (never its numbers).
#[derive(Debug, Default, Deserialize, Clone)]
pub struct MemberInfo {
    /// The trunk of an inbound or outbound member.
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub trunkname: Option<String>,
    /// The member's channel.
    #[serde(default, deserialize_with = "lenient_string")]
    pub channelid: String,
    /// ALERT, RING, ANSWERED, ANSWER, HOLD, BYE — or something newer.
    #[serde(default, deserialize_with = "member_status")]
    pub memberstatus: Status,
    /// The IVR, queue, ring group… that set up this leg; absent is normal.
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub callpath: Option<String>,
}

/// `extension/query_call`.
#[derive(Debug, Default, Deserialize)]
pub struct ExtensionCallsAnswer {
    #[serde(default)]
    status: Option<String>,
    #[serde(default, deserialize_with = "lenient_opt_string")]
    errno: Option<String>,
    /// One entry per extension.
    #[serde(default)]
    pub calllist: Vec<ExtensionCalls>,
}

/// The calls one extension is on.
#[derive(Debug, Default, Deserialize)]
pub struct ExtensionCalls {
    /// Its calls.
    #[serde(default)]
    pub numbercalls: Vec<Call>,
}

/// `trunk/list`.
#[derive(Debug, Default, Deserialize)]
pub struct TrunkListAnswer {
    #[serde(default)]
    status: Option<String>,
    #[serde(default, deserialize_with = "lenient_opt_string")]
    errno: Option<String>,
    /// The trunks.
    #[serde(default)]
    pub trunklist: Vec<Trunk>,
}

/// One trunk.
#[derive(Debug, Default, Deserialize)]
pub struct Trunk {
    /// Its name (what `trunkname` of a call member refers to).
    #[serde(default, deserialize_with = "lenient_string")]
    pub trunkname: String,
    /// SIP, IAX, FXO, GSM, BRI, E1.
    #[serde(default, rename = "type", deserialize_with = "lenient_string")]
    pub kind: String,
    /// Registered, Idle, No SIM, …
    #[serde(default, deserialize_with = "lenient_string")]
    pub status: String,
}

/// `extension/list`.
#[derive(Debug, Default, Deserialize)]
pub struct ExtensionListAnswer {
    #[serde(default)]
    status: Option<String>,
    #[serde(default, deserialize_with = "lenient_opt_string")]
    errno: Option<String>,
    /// The extensions.
    #[serde(default)]
    pub extlist: Vec<Extension>,
}

/// One extension (its number is not kept).
#[derive(Debug, Default, Deserialize)]
pub struct Extension {
    /// Registered, Unavailable, …
    #[serde(default, deserialize_with = "lenient_string")]
    pub status: String,
}

/// `deviceinfo/query`.
#[derive(Debug, Default, Deserialize)]
pub struct DeviceInfoAnswer {
    #[serde(default)]
    status: Option<String>,
    #[serde(default, deserialize_with = "lenient_opt_string")]
    errno: Option<String>,
    /// The device.
    #[serde(default)]
    pub deviceinfo: Option<DeviceInfo>,
}

/// The PBX itself.
#[derive(Debug, Default, Deserialize)]
pub struct DeviceInfo {
    /// Model, e.g. `S100`.
    #[serde(default, deserialize_with = "lenient_string")]
    pub devicename: String,
    /// Hardware version.
    #[serde(default, deserialize_with = "lenient_string")]
    pub hardwarever: String,
    /// Firmware version.
    #[serde(default, deserialize_with = "lenient_string")]
    pub firmwarever: String,
    /// Uptime, e.g. `00:32:59` or `3 days, 04:05:06`.
    #[serde(default, deserialize_with = "lenient_string")]
    pub uptime: String,
}

/// `queue/query`.
#[derive(Debug, Default, Deserialize)]
pub struct QueueListAnswer {
    #[serde(default)]
    status: Option<String>,
    #[serde(default, deserialize_with = "lenient_opt_string")]
    errno: Option<String>,
    /// The queues.
    #[serde(default)]
    pub queues: Vec<QueueEntry>,
}

/// One queue of `queue/query`.
#[derive(Debug, Default, Deserialize)]
pub struct QueueEntry {
    /// The queue's number.
    #[serde(default, deserialize_with = "lenient_string")]
    pub number: String,
}

/// `queue/query_status`.
#[derive(Debug, Default, Deserialize)]
pub struct QueueStatusAnswer {
    #[serde(default)]
    status: Option<String>,
    #[serde(default, deserialize_with = "lenient_opt_string")]
    errno: Option<String>,
    /// The queue asked for.
    #[serde(default)]
    pub queues: Vec<QueueStatusEntry>,
}

/// One queue's state.
#[derive(Debug, Default, Deserialize)]
pub struct QueueStatusEntry {
    /// The queue's number.
    #[serde(default, deserialize_with = "lenient_string")]
    pub number: String,
    /// Its callers and agents.
    #[serde(default)]
    pub queuestatus: Vec<QueueStatus>,
}

/// Callers and agents of a queue.
#[derive(Debug, Default, Deserialize)]
pub struct QueueStatus {
    /// Callers waiting; `""` means none.
    #[serde(default, deserialize_with = "lenient_string")]
    pub callercount: String,
    /// Agents.
    #[serde(default)]
    pub members: Vec<QueueAgent>,
}

/// One agent of a queue (its number is not kept).
#[derive(Debug, Default, Deserialize)]
pub struct QueueAgent {
    /// `"0"`..`"10"`.
    #[serde(default, deserialize_with = "lenient_string")]
    pub agentstatus: String,
}

envelope!(
    LoginAnswer,
    BareAnswer,
    CallQueryAnswer,
    ExtensionCallsAnswer,
    TrunkListAnswer,
    ExtensionListAnswer,
    DeviceInfoAnswer,
    QueueListAnswer,
    QueueStatusAnswer,
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenient_numbers_and_both_call_keys() {
        let a: CallQueryAnswer = serde_json::from_str(
            r#"{"calls":[{"callid":1571386069.8,"members":[
                {"inbound":{"from":500,"to":1023,"trunkname":"t","channelid":"c1","memberstatus":"RING","callpath":6500}},
                {"fax":{"channelid":"x"}}]}],"status":"Success"}"#,
        )
        .unwrap();
        assert_eq!(a.calls.len(), 1);
        assert_eq!(a.calls[0].callid, "1571386069.8");
        let (kind, m) = a.calls[0].members[0].get().unwrap();
        assert_eq!(kind, MemberKind::Inbound);
        assert_eq!(m.callpath.as_deref(), Some("6500"));
        assert!(a.calls[0].members[1].get().is_none());
        let b: CallQueryAnswer =
            serde_json::from_str(r#"{"Calls":[{"callid":"1.2","members":[]}],"status":"Success"}"#)
                .unwrap();
        assert_eq!(b.calls[0].callid, "1.2");
        let f: BareAnswer = serde_json::from_str(r#"{"status":"Failed","errno":20004}"#).unwrap();
        assert_eq!(f.errno(), Some("20004"));
    }
}
