//! The P-Series' JSON answers (OpenAPI v1.0), as serde types read into the family-neutral
//! [`model`]. Every answer carries `errcode` (0: success) and `errmsg` beside its payload; lists
//! are `data` (with `total_number`), absent or `null` when there is nothing. Written for what
//! consumers of real units report, not only for the docs: scalars may be strings or numbers, a
//! member is an object with exactly one key naming its kind (`extension`, `inbound`,
//! `outbound`; found by key, unknown kinds skipped). Phone and extension numbers are never
//! kept.

use std::borrow::Cow;

use serde::{Deserialize, Deserializer};

use crate::pbx::model::{self, Call, CallSink, ChannelId, MemberKind, Status};
use crate::pbx::wire::{
    channel_id, lenient_cow, lenient_opt_cow_field, lenient_opt_string, member_status,
};

/// Every answer carries `errcode` and `errmsg`.
pub trait Envelope {
    /// `errcode` (`None`: the answer had none, or not a number).
    fn errcode(&self) -> Option<i64>;
    /// `errmsg` (`""` when absent).
    fn errmsg(&self) -> &str;
}

macro_rules! envelope {
    ($($t:ty),* $(,)?) => {$(
        impl Envelope for $t {
            fn errcode(&self) -> Option<i64> { self.errcode }
            fn errmsg(&self) -> &str { self.errmsg.as_deref().unwrap_or("") }
        }
    )*};
}

/// `errcode`: a number, or a number written as a string; anything else is none.
fn errcode<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(lenient_opt_string(d)?.and_then(|s| s.trim().parse().ok()))
}

/// A count or a number of seconds, as a number or a numeric string; anything else is none.
fn count<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(lenient_opt_string(d)?.and_then(|s| s.trim().parse().ok()))
}

/// An integer code (a trunk's `status`), as a number or a numeric string.
fn code<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(lenient_opt_string(d)?.and_then(|s| s.trim().parse().ok()))
}

/// A list that may be `null` (none).
fn list<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// `get_token` and `refresh_token`: the tokens sit at the top level, beside the envelope.
#[derive(Default, Deserialize)]
pub struct TokenAnswer {
    #[serde(default, deserialize_with = "errcode")]
    errcode: Option<i64>,
    #[serde(default, deserialize_with = "lenient_opt_string")]
    errmsg: Option<String>,
    /// Moved into a `Secret` by the client at once; never printed.
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub access_token: Option<String>,
    /// Seconds the access token lives (1800).
    #[serde(default, deserialize_with = "count")]
    pub access_token_expire_time: Option<u64>,
    /// Moved into a `Secret` by the client at once; never printed.
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub refresh_token: Option<String>,
    /// Seconds the refresh token lives (86400).
    #[serde(default, deserialize_with = "count")]
    pub refresh_token_expire_time: Option<u64>,
}

impl std::fmt::Debug for TokenAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenAnswer")
            .field("errcode", &self.errcode)
            .field("access_token_expire_time", &self.access_token_expire_time)
            .field("refresh_token_expire_time", &self.refresh_token_expire_time)
            .finish_non_exhaustive()
    }
}

/// An answer whose content is not used (`del_token`).
#[derive(Debug, Default, Deserialize)]
pub struct BareAnswer {
    #[serde(default, deserialize_with = "errcode")]
    errcode: Option<i64>,
    #[serde(default, deserialize_with = "lenient_opt_string")]
    errmsg: Option<String>,
}

/// `call/query`, its calls decoded into `S` (`data` absent or `null`: no call).
#[derive(Debug, Default, Deserialize)]
#[serde(bound(deserialize = "S: CallSink"))]
pub struct CallQueryAnswer<S> {
    #[serde(default, deserialize_with = "errcode")]
    errcode: Option<i64>,
    #[serde(default, deserialize_with = "lenient_opt_string")]
    errmsg: Option<String>,
    /// The active calls.
    #[serde(default, deserialize_with = "call_seq")]
    pub data: S,
}

/// One call as the P-Series lists it.
#[derive(Debug, Default, Deserialize)]
struct ListedCall<'a> {
    /// `<unix seconds>.<sequence>`.
    #[serde(default, borrow, deserialize_with = "lenient_cow")]
    call_id: Cow<'a, str>,
    /// Its members of a known kind.
    #[serde(default, borrow, deserialize_with = "known_members")]
    members: Vec<model::Member<'a>>,
}

/// The key naming a member's kind in the P-Series' member objects.
pub fn member_key(kind: MemberKind) -> &'static str {
    match kind {
        MemberKind::Ext => "extension",
        MemberKind::Inbound => "inbound",
        MemberKind::Outbound => "outbound",
    }
}

/// What the exporter reads of a member (never its numbers).
#[derive(Debug, Default, Deserialize)]
struct MemberInfo<'a> {
    #[serde(default, borrow, deserialize_with = "lenient_opt_cow_field")]
    trunk_name: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "channel_id")]
    channel_id: ChannelId,
    /// ALERT, RING, ANSWERED, ANSWER, HOLD, BYE; EARLYMEDIA (an outbound callee ringing after
    /// a 183) and anything newer count as `other`.
    #[serde(default, deserialize_with = "member_status")]
    member_status: Status,
    #[serde(default, borrow, deserialize_with = "lenient_opt_cow_field")]
    call_path: Option<Cow<'a, str>>,
}

/// `members`: every member of a known kind, in order (null counts as none; the first known key
/// of an object counts).
fn known_members<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<model::Member<'de>>, D::Error> {
    struct One<'a>(Option<model::Member<'a>>);
    impl<'de> Deserialize<'de> for One<'de> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct Visit;
            impl<'de> serde::de::Visitor<'de> for Visit {
                type Value = One<'de>;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("a member object")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut map: A,
                ) -> Result<One<'de>, A::Error> {
                    let mut found = None;
                    while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                        let kind = MemberKind::ALL
                            .into_iter()
                            .find(|k| member_key(*k) == key.as_ref());
                        match kind {
                            Some(kind) if found.is_none() => {
                                if let Some(info) = map.next_value::<Option<MemberInfo<'de>>>()? {
                                    found = Some(model::Member {
                                        kind,
                                        trunk: info.trunk_name.filter(|t| !t.trim().is_empty()),
                                        channel: info.channel_id,
                                        status: info.member_status,
                                        callpath: info.call_path,
                                    });
                                }
                            }
                            _ => {
                                map.next_value::<serde::de::IgnoredAny>()?;
                            }
                        }
                    }
                    Ok(One(found))
                }
            }
            d.deserialize_map(Visit)
        }
    }
    let all = Option::<Vec<One<'de>>>::deserialize(d)?.unwrap_or_default();
    Ok(all.into_iter().filter_map(|m| m.0).collect())
}

impl<'a> From<ListedCall<'a>> for Call<'a> {
    fn from(c: ListedCall<'a>) -> Self {
        Call {
            callid: c.call_id,
            members: c.members,
        }
    }
}

/// `data`: a list of calls fed into a sink.
fn call_seq<'de, D: Deserializer<'de>, S: CallSink>(d: D) -> Result<S, D::Error> {
    crate::pbx::wire::call_seq::<D, S, ListedCall<'de>>(d)
}

/// `system/information`.
#[derive(Debug, Default, Deserialize)]
pub struct SystemInfoAnswer {
    #[serde(default, deserialize_with = "errcode")]
    errcode: Option<i64>,
    #[serde(default, deserialize_with = "lenient_opt_string")]
    errmsg: Option<String>,
    /// The PBX (absent or `null`: it said nothing of itself).
    #[serde(default)]
    pub data: Option<SystemInfo>,
}

/// What `system/information` says of the PBX.
#[derive(Debug, Default, Deserialize)]
pub struct SystemInfo {
    /// `Yeastar P550`, `P-Series Software Edition`, `P-Series Cloud Edition`.
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub model_name: Option<String>,
    /// The serial number (what its events carry as `sn`).
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub sn: Option<String>,
    /// Appliance Edition only.
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub hardware_version: Option<String>,
    /// `37.21.0.117` (37: Appliance, 83: Software, 84: Cloud).
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub firmware_version: Option<String>,
    /// Seconds.
    #[serde(default, deserialize_with = "count")]
    pub up_time: Option<u64>,
}

/// One page of `trunk/list`.
#[derive(Debug, Default, Deserialize)]
pub struct TrunkListAnswer {
    #[serde(default, deserialize_with = "errcode")]
    errcode: Option<i64>,
    #[serde(default, deserialize_with = "lenient_opt_string")]
    errmsg: Option<String>,
    /// Trunks in all (every page).
    #[serde(default, deserialize_with = "count")]
    pub total_number: Option<u64>,
    /// This page's trunks.
    #[serde(default, deserialize_with = "list")]
    pub data: Vec<Trunk>,
}

/// One trunk as `trunk/list` lists it.
#[derive(Debug, Default, Deserialize)]
pub struct Trunk {
    /// Its name (what a call member's `trunk_name` refers to).
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub name: Option<String>,
    /// `register`, `peer`, `account`, `FXO`, `GSM`, …
    #[serde(default, rename = "type", deserialize_with = "lenient_opt_string")]
    pub kind: Option<String>,
    /// The status code (§3.5).
    #[serde(default, deserialize_with = "code")]
    pub status: Option<i64>,
}

/// One page of `extension/list`.
#[derive(Debug, Default, Deserialize)]
pub struct ExtensionListAnswer {
    #[serde(default, deserialize_with = "errcode")]
    errcode: Option<i64>,
    #[serde(default, deserialize_with = "lenient_opt_string")]
    errmsg: Option<String>,
    /// Extensions in all (every page).
    #[serde(default, deserialize_with = "count")]
    pub total_number: Option<u64>,
    /// This page's extensions.
    #[serde(default, deserialize_with = "list")]
    pub data: Vec<Extension>,
}

/// One extension: whether any of its devices is registered (its number is not kept).
#[derive(Debug, Default, Deserialize)]
pub struct Extension {
    /// Its devices by kind (`sip_phone`, `linkus_mobile`, …).
    #[serde(default)]
    pub online_status: Option<std::collections::BTreeMap<String, Online>>,
}

/// One device kind of an extension.
#[derive(Debug, Default, Deserialize)]
pub struct Online {
    /// 1: online.
    #[serde(default, deserialize_with = "code")]
    pub status: Option<i64>,
    /// The registered SIP devices (`status` 1 each).
    #[serde(default, deserialize_with = "list")]
    pub status_list: Vec<Registration>,
}

/// One registered device of a SIP phone.
#[derive(Debug, Default, Deserialize)]
pub struct Registration {
    /// 1: registered.
    #[serde(default, deserialize_with = "code")]
    pub status: Option<i64>,
}

impl Extension {
    /// Registered: any device kind online, or any SIP registration (consumers of real units
    /// agree on this rule, yeastar-pseries-api.md §3.4).
    pub fn registered(&self) -> bool {
        self.online_status
            .iter()
            .flatten()
            .any(|(_, o)| o.status == Some(1) || o.status_list.iter().any(|r| r.status == Some(1)))
    }
}

envelope!(
    TokenAnswer,
    BareAnswer,
    SystemInfoAnswer,
    TrunkListAnswer,
    ExtensionListAnswer
);

impl<S> Envelope for CallQueryAnswer<S> {
    fn errcode(&self) -> Option<i64> {
        self.errcode
    }
    fn errmsg(&self) -> &str {
        self.errmsg.as_deref().unwrap_or("")
    }
}
