//! The S-Series' JSON answers, as serde types, read into the family-neutral [`model`] where a
//! collector reads them.
//!
//! Written for what real firmware sends, not only for what the vendor documents: fields the docs call
//! Integer arrive as strings (and sometimes as numbers), the calls key is `Calls` or `calls`, a member
//! is an object with exactly one key naming its kind (found by key, never by position; unknown kinds
//! are skipped), and fields a firmware leaves out default to empty. Phone numbers (`from`, `to`, an
//! extension's `number`) are deliberately not kept: nothing downstream may label a metric with them.

use std::borrow::Cow;

use serde::{Deserialize, Deserializer};

use crate::pbx::model::{self, Call, CallSink, ChannelId, ExtensionStatus, MemberKind, Status};
pub use crate::pbx::wire::{
    channel_id, decode_exact, lenient_cow, lenient_opt_cow, lenient_opt_cow_field,
    lenient_opt_string, lenient_string, member_status,
};

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

/// `call/query`, its calls decoded into `S`.
#[derive(Debug, Default, Deserialize)]
#[serde(bound(deserialize = "S: CallSink"))]
pub struct CallQueryAnswer<S> {
    #[serde(default)]
    status: Option<String>,
    #[serde(default, deserialize_with = "lenient_opt_string")]
    errno: Option<String>,
    /// The active calls.
    #[serde(
        default,
        rename = "Calls",
        alias = "calls",
        deserialize_with = "call_seq"
    )]
    pub calls: S,
}

/// One call as the S-Series lists it: its members of known kinds are read straight into the
/// model's (a call list of thousands of members holds one small record per member, nothing more).
#[derive(Debug, Default, Deserialize)]
struct ListedCall<'a> {
    /// `<unix seconds>.<sequence>`.
    #[serde(default, borrow, deserialize_with = "lenient_cow")]
    callid: Cow<'a, str>,
    /// Its members of a known kind.
    #[serde(default, borrow, deserialize_with = "known_members")]
    members: Vec<model::Member<'a>>,
}

impl<'a> From<ListedCall<'a>> for Call<'a> {
    fn from(c: ListedCall<'a>) -> Self {
        Call {
            callid: c.callid,
            members: c.members,
        }
    }
}

/// `members`: every member of a known kind, in order (an unknown kind is skipped: it carries
/// nothing the contract counts); null counts as none.
fn known_members<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<model::Member<'de>>, D::Error> {
    struct Members;
    impl<'de> serde::de::Visitor<'de> for Members {
        type Value = Vec<model::Member<'de>>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a list of members")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
            while let Some(raw) = seq.next_element::<RawMember<'de>>()? {
                if let Some(m) = raw.into_member() {
                    out.push(m);
                }
            }
            Ok(out)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }
    }
    d.deserialize_any(Members)
}

/// The key naming a member's kind in the S-Series' member objects.
pub fn member_key(kind: MemberKind) -> &'static str {
    match kind {
        MemberKind::Ext => "ext",
        MemberKind::Inbound => "inbound",
        MemberKind::Outbound => "outbound",
    }
}

/// A member as the PBX sends it: an object with one key naming its kind (`ext`, `inbound`,
/// `outbound`), read straight into that kind and its fields: a call list of thousands of members
/// holds one small record per member, not a slot for every kind.
#[derive(Debug, Default, Clone)]
pub struct RawMember<'a>(Option<(MemberKind, MemberInfo<'a>)>);

impl<'de: 'a, 'a> Deserialize<'de> for RawMember<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = RawMember<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a member object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<RawMember<'de>, A::Error> {
                let mut found = None;
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    let kind = match key.as_ref() {
                        k if k == member_key(MemberKind::Ext) => Some(MemberKind::Ext),
                        k if k == member_key(MemberKind::Inbound) => Some(MemberKind::Inbound),
                        k if k == member_key(MemberKind::Outbound) => Some(MemberKind::Outbound),
                        _ => None,
                    };
                    match kind {
                        // The first known kind counts; an unknown kind (fax, …) is skipped.
                        Some(kind) if found.is_none() => {
                            if let Some(info) = map.next_value::<Option<MemberInfo<'de>>>()? {
                                found = Some((kind, info));
                            }
                        }
                        _ => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                        }
                    }
                }
                Ok(RawMember(found))
            }
        }
        d.deserialize_map(Visit)
    }
}

impl<'a> RawMember<'a> {
    /// The member in the model's terms; `None` for a kind this exporter does not know.
    pub fn into_member(self) -> Option<model::Member<'a>> {
        self.0.map(|(kind, info)| model::Member {
            kind,
            trunk: info.trunkname,
            channel: info.channelid,
            status: info.memberstatus,
            callpath: info.callpath,
        })
    }
}

/// What the exporter reads of a member (never its numbers).
#[derive(Debug, Default, Deserialize, Clone)]
pub struct MemberInfo<'a> {
    /// The trunk of an inbound or outbound member.
    #[serde(default, borrow, deserialize_with = "lenient_opt_cow_field")]
    pub trunkname: Option<Cow<'a, str>>,
    /// The member's channel, hashed.
    #[serde(default, deserialize_with = "channel_id")]
    pub channelid: ChannelId,
    /// ALERT, RING, ANSWERED, ANSWER, HOLD, BYE — or something newer.
    #[serde(default, deserialize_with = "member_status")]
    pub memberstatus: Status,
    /// The IVR, queue, ring group… that set up this leg; absent is normal.
    #[serde(default, borrow, deserialize_with = "lenient_opt_cow_field")]
    pub callpath: Option<Cow<'a, str>>,
}

/// `extension/query_call`, its calls decoded into `S`.
#[derive(Debug, Default, Deserialize)]
#[serde(bound(deserialize = "S: CallSink"))]
pub struct ExtensionCallsAnswer<S> {
    #[serde(default)]
    status: Option<String>,
    #[serde(default, deserialize_with = "lenient_opt_string")]
    errno: Option<String>,
    /// The calls of every extension's entry (`calllist[].numbercalls`), merged as they are read:
    /// an extension-to-extension call is listed under each of its extensions.
    #[serde(default, deserialize_with = "call_lists")]
    pub calllist: S,
}

/// `Calls`: a list of calls fed into a sink.
fn call_seq<'de, D: Deserializer<'de>, S: CallSink>(d: D) -> Result<S, D::Error> {
    crate::pbx::wire::call_seq::<D, S, ListedCall<'de>>(d)
}

/// `calllist`: an array of `{"number": …, "numbercalls": [calls]}`, every entry's calls fed into
/// one sink as they are read.
fn call_lists<'de, D: Deserializer<'de>, S: CallSink>(d: D) -> Result<S, D::Error> {
    struct Lists<S>(std::marker::PhantomData<S>);
    impl<'de, S: CallSink> serde::de::Visitor<'de> for Lists<S> {
        type Value = S;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a list of extensions' calls")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<S, A::Error> {
            let mut out = S::default();
            while seq.next_element_seed(Entry(&mut out))?.is_some() {}
            Ok(out)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<S, E> {
            Ok(S::default())
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<S, E> {
            Ok(S::default())
        }
    }
    struct Entry<'a, S>(&'a mut S);
    impl<'de, S: CallSink> serde::de::DeserializeSeed<'de> for Entry<'_, S> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_map(self)
        }
    }
    impl<'de, S: CallSink> serde::de::Visitor<'de> for Entry<'_, S> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an extension's calls")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                if key == "numbercalls" {
                    map.next_value_seed(crate::pbx::wire::CallSeq::<S, ListedCall<'de>>::new(
                        &mut *self.0,
                    ))?;
                } else {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
            Ok(())
        }
    }
    d.deserialize_any(Lists(std::marker::PhantomData))
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

/// One extension (its number is not kept: `number` in v2, `extnumber` in older firmware, read
/// alike because neither is read).
#[derive(Debug, Default, Deserialize)]
pub struct Extension {
    /// Registered, Unavailable, …, bucketed as it is read; `None` when the entry has no status
    /// word (missing, null or blank): an entry the collector cannot read.
    #[serde(default, deserialize_with = "extension_status")]
    pub status: Option<ExtensionStatus>,
}

fn extension_status<'de, D: Deserializer<'de>>(d: D) -> Result<Option<ExtensionStatus>, D::Error> {
    Ok(lenient_opt_cow(d)?
        .filter(|w| !w.trim().is_empty())
        .map(|w| ExtensionStatus::parse(&w)))
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
    /// Serial number: what the PBX's event reports carry as `sn` (the event gate checks them).
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub sn: Option<String>,
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
    /// The queue's number (v2).
    #[serde(default, deserialize_with = "lenient_string")]
    pub number: String,
    /// The queue's number as older firmware names it (the v1 guide's `queuenumber`).
    #[serde(default, deserialize_with = "lenient_string")]
    pub queuenumber: String,
}

impl QueueEntry {
    /// Its number under either name (`number` first), trimmed; `""` when it has none.
    pub fn number(&self) -> &str {
        either_number(&self.number, &self.queuenumber)
    }
}

/// `number`, or `old` when `number` is blank, trimmed.
fn either_number<'a>(number: &'a str, old: &'a str) -> &'a str {
    match number.trim() {
        "" => old.trim(),
        n => n,
    }
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
    /// The queue's number as older firmware names it (`queuenumber`).
    #[serde(default, deserialize_with = "lenient_string")]
    pub queuenumber: String,
    /// Its callers and agents.
    #[serde(default)]
    pub queuestatus: Vec<QueueStatus>,
}

impl QueueStatusEntry {
    /// Its number under either name (`number` first), trimmed; `""` when it has none.
    pub fn number(&self) -> &str {
        either_number(&self.number, &self.queuenumber)
    }
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

impl<S> Envelope for CallQueryAnswer<S> {
    fn status(&self) -> Option<&str> {
        self.status.as_deref()
    }
    fn errno(&self) -> Option<&str> {
        self.errno.as_deref()
    }
}

impl<S> Envelope for ExtensionCallsAnswer<S> {
    fn status(&self) -> Option<&str> {
        self.status.as_deref()
    }
    fn errno(&self) -> Option<&str> {
        self.errno.as_deref()
    }
}

envelope!(
    LoginAnswer,
    BareAnswer,
    TrunkListAnswer,
    ExtensionListAnswer,
    DeviceInfoAnswer,
    QueueListAnswer,
    QueueStatusAnswer,
);

#[cfg(test)]
mod tests {
    use super::*;

    /// Keeps every call as listed: callid and (kind, callpath) of each known member.
    #[derive(Default)]
    struct Listed(Vec<(String, Vec<KindAndPath>)>);

    type KindAndPath = (MemberKind, Option<String>);

    impl CallSink for Listed {
        fn add_call(&mut self, call: Call<'_>) {
            let members = call
                .members
                .into_iter()
                .map(|m| (m.kind, m.callpath.map(Cow::into_owned)))
                .collect();
            self.0.push((call.callid.into_owned(), members));
        }
    }

    #[test]
    fn lenient_numbers_and_both_call_keys() {
        let a: CallQueryAnswer<Listed> = serde_json::from_str(
            r#"{"calls":[{"callid":1571386069.8,"members":[
                {"inbound":{"from":500,"to":1023,"trunkname":"t","channelid":"c1","memberstatus":"RING","callpath":6500}},
                {"fax":{"channelid":"x"}}]}],"status":"Success"}"#,
        )
        .unwrap();
        // The fax member is skipped.
        assert_eq!(
            a.calls.0,
            [(
                "1571386069.8".to_owned(),
                vec![(MemberKind::Inbound, Some("6500".to_owned()))]
            )]
        );
        let b: CallQueryAnswer<Listed> =
            serde_json::from_str(r#"{"Calls":[{"callid":"1.2","members":[]}],"status":"Success"}"#)
                .unwrap();
        assert_eq!(b.calls.0, [("1.2".to_owned(), vec![])]);
        let lists: ExtensionCallsAnswer<Listed> = serde_json::from_str(
            r#"{"status":"Success","calllist":[{"number":"1000","numbercalls":[{"callid":"3.1","members":[]}]},
                {"number":"1001","numbercalls":null},{"number":"1002","numbercalls":[{"callid":"3.1","members":[]}]}]}"#,
        )
        .unwrap();
        assert_eq!(
            lists
                .calllist
                .0
                .iter()
                .map(|(c, _)| c.as_str())
                .collect::<Vec<_>>(),
            ["3.1", "3.1"],
            "the sink sees every listing; merging is its business"
        );
        let f: BareAnswer = serde_json::from_str(r#"{"status":"Failed","errno":20004}"#).unwrap();
        assert_eq!(f.errno(), Some("20004"));
        // Members null or absent are none; a member of an unknown kind is skipped.
        let c: CallQueryAnswer<Listed> = serde_json::from_str(
            r#"{"calls":[{"callid":"1.1","members":null},{"callid":"1.2"},
                {"callid":"1.3","members":[{"fax":{}},{"ext":{"channelid":"a"}}]}],"status":"Success"}"#,
        )
        .unwrap();
        assert_eq!(
            c.calls.0,
            [
                ("1.1".to_owned(), vec![]),
                ("1.2".to_owned(), vec![]),
                ("1.3".to_owned(), vec![(MemberKind::Ext, None)])
            ]
        );
    }
}
