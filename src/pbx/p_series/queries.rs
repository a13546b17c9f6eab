//! The domain queries ([`crate::pbx::Session::calls`] and the others) as P-Series requests, and
//! their answers read into the [`model`](crate::pbx::model). The active calls are asked by type
//! (`inbound`, `outbound`; `internal` for the internal calls: the documented parameters, each a
//! small answer); lists are paged until `total_number` is reached or a page comes back empty,
//! at most [`MAX_PAGES`] pages. What an answer leaves unreadable (a trunk without a name) fails
//! the query with a decode error naming how many, never a list that leaves them out.

use super::types::{CallQueryAnswer, ExtensionListAnswer, SystemInfoAnswer, TrunkListAnswer};
use super::{decode_answer, get};
use crate::pbx::model::{CallSink, Data, Device, Extension, ExtensionStatus, Query, Trunk};
use crate::pbx::{PbxError, Session};

/// Entries asked per page of a list.
pub const PAGE_SIZE: usize = 100;

/// The most pages one list takes (10,000 entries): a PBX whose `total_number` lies cannot make
/// a scrape ask forever.
pub const MAX_PAGES: usize = 100;

/// The endpoints `query` calls.
pub fn endpoints(query: Query) -> &'static [&'static str] {
    match query {
        Query::ActiveCalls | Query::InternalCalls => &["call/query"],
        Query::Trunks => &["trunk/list"],
        Query::Extensions => &["extension/list"],
        Query::Device => &["system/information"],
        Query::Queues => &[],
    }
}

/// The `type` of each request of a call list.
fn call_types(query: Query) -> &'static [&'static str] {
    match query {
        Query::ActiveCalls => &["inbound", "outbound"],
        Query::InternalCalls => &["internal"],
        Query::Trunks | Query::Extensions | Query::Device | Query::Queues => &[],
    }
}

/// How many requests the call list `query` takes.
pub fn call_parts(query: Query) -> usize {
    call_types(query).len()
}

/// Whether the call list `query` lists extension-to-extension calls.
pub fn lists_internal(query: Query) -> bool {
    query == Query::InternalCalls
}

/// The requests (endpoint and query parameters) `query` sends, in order (a list: its first
/// page).
pub fn requests(query: Query) -> Vec<(&'static str, Vec<(&'static str, String)>)> {
    let page = || {
        vec![
            ("page", "1".to_string()),
            ("page_size", PAGE_SIZE.to_string()),
        ]
    };
    match query {
        Query::ActiveCalls | Query::InternalCalls => call_types(query)
            .iter()
            .map(|t| ("call/query", vec![("type", (*t).to_string())]))
            .collect(),
        Query::Trunks => vec![("trunk/list", page())],
        Query::Extensions => vec![("extension/list", page())],
        Query::Device => vec![("system/information", Vec::new())],
        Query::Queues => Vec::new(),
    }
}

/// What `query` asks, in this family's words.
pub fn help(query: Query) -> &'static str {
    match query {
        Query::ActiveCalls => "call/query type=inbound and type=outbound",
        Query::InternalCalls => "call/query type=internal, for extension-to-extension calls",
        Query::Trunks => "trunk/list, paged",
        Query::Extensions => "extension/list, paged",
        Query::Device => "system/information",
        Query::Queues => "not yet asked of a P-Series PBX",
    }
}

/// The error of a query this family does not ask (yet).
fn not_asked(query: Query) -> PbxError {
    PbxError::Decode {
        endpoint: crate::pbx::Endpoint::unasked(format!("{query:?}")),
        reason: "not asked of a P-Series PBX".into(),
    }
}

/// The queues are not read from a P-Series PBX yet (`queue/list` and its agents' states are
/// the next step): the `queues` collector reads this as its endpoint missing, stays off for the
/// PBX and says so once an hour.
pub fn queues_unread() -> PbxError {
    PbxError::Api {
        endpoint: super::endpoint("queue/list"),
        error: crate::pbx::ApiError {
            code: crate::pbx::ApiCode::Unsupported,
            label: "exporter",
            wire: "p-series".into(),
            meaning: "queues are not read from a P-Series PBX yet",
        },
    }
}

/// Request `part` of the call list `query`, fed into `S`.
pub async fn calls<S: CallSink>(
    session: &Session<'_>,
    query: Query,
    part: usize,
) -> Result<S, PbxError> {
    let Some(kind) = call_types(query).get(part) else {
        return Err(not_asked(query));
    };
    session
        .call(
            |token| get("call/query", token, &[("type", kind)]),
            read_calls::<S>,
        )
        .await
}

/// A `call/query` answer's calls, read from its bytes (`data` empty, absent or `null`: none).
pub fn read_calls<S: CallSink>(bytes: &[u8]) -> Result<S, PbxError> {
    decode_answer::<CallQueryAnswer<S>>("call/query", bytes).map(|a| a.data)
}

/// The one-request query `query` in `session` (a list: every page of it).
pub async fn one(session: &Session<'_>, query: Query) -> Result<Data, PbxError> {
    match query {
        Query::Trunks => {
            let pages = pages(session, "trunk/list", |b| {
                decode_answer::<TrunkListAnswer>("trunk/list", b).map(|a| (a.total_number, a.data))
            })
            .await?;
            trunks_of(pages).map(Data::Trunks)
        }
        Query::Extensions => {
            let pages = pages(session, "extension/list", |b| {
                decode_answer::<ExtensionListAnswer>("extension/list", b)
                    .map(|a| (a.total_number, a.data))
            })
            .await?;
            Ok(Data::Extensions(extensions_of(&pages)))
        }
        Query::Device => {
            let a: SystemInfoAnswer = session
                .call(
                    |token| get("system/information", token, &[]),
                    |b| decode_answer::<SystemInfoAnswer>("system/information", b),
                )
                .await?;
            Ok(Data::Device(device_of(a)))
        }
        Query::ActiveCalls | Query::InternalCalls | Query::Queues => Err(not_asked(query)),
    }
}

/// Every page of a list, in order, until `total_number` entries came, a page came back empty,
/// or [`MAX_PAGES`] pages were asked.
async fn pages<T>(
    session: &Session<'_>,
    endpoint: &'static str,
    read: impl Fn(&[u8]) -> Result<(Option<u64>, Vec<T>), PbxError>,
) -> Result<Vec<T>, PbxError> {
    let mut all = Vec::new();
    let size = PAGE_SIZE.to_string();
    for page in 1..=MAX_PAGES {
        let number = page.to_string();
        let (total, entries) = session
            .call(
                |token| get(endpoint, token, &[("page", &number), ("page_size", &size)]),
                &read,
            )
            .await?;
        let got = entries.len();
        all.extend(entries);
        // Without a total, a short page is the last.
        let done = got == 0
            || match total {
                Some(t) => all.len() as u64 >= t,
                None => got < PAGE_SIZE,
            };
        if done {
            break;
        }
    }
    Ok(all)
}

/// The answer of the one-request query `query`, read from one answer's bytes (a list: one
/// page), for benchmarks and property tests.
pub fn read(query: Query, bytes: &[u8]) -> Result<Data, PbxError> {
    match query {
        Query::Trunks => decode_answer::<TrunkListAnswer>("trunk/list", bytes)
            .and_then(|a| trunks_of(a.data))
            .map(Data::Trunks),
        Query::Extensions => decode_answer::<ExtensionListAnswer>("extension/list", bytes)
            .map(|a| Data::Extensions(extensions_of(&a.data))),
        Query::Device => decode_answer::<SystemInfoAnswer>("system/information", bytes)
            .map(|a| Data::Device(device_of(a))),
        Query::ActiveCalls | Query::InternalCalls | Query::Queues => Err(not_asked(query)),
    }
}

/// A trunk status code's word and whether the trunk can carry calls (§3.5): 1 idle, 2 busy and
/// 3 unmonitored carry calls; 4 and 5 are registering; 0 unknown; 11 and above are failures.
pub fn trunk_status(code: Option<i64>) -> (&'static str, bool) {
    match code {
        Some(1) => ("idle", true),
        Some(2) => ("busy", true),
        Some(3) => ("idle_unmonitored", true),
        Some(4) => ("registering", false),
        Some(5) => ("gsm_registering", false),
        Some(11) => ("fxo_failure", false),
        Some(12) => ("no_pstn_line", false),
        Some(21) => ("protocol_misconfigured", false),
        Some(22) => ("interface_fault", false),
        Some(23) => ("not_plugged", false),
        Some(31) => ("gsm_module_fault", false),
        Some(32) => ("power_off", false),
        Some(33) => ("no_sim", false),
        Some(34) => ("no_signal", false),
        Some(35) => ("pin_error", false),
        Some(36) => ("network_registration_failed", false),
        Some(41) => ("registration_failed", false),
        Some(42) => ("unreachable", false),
        Some(43) => ("account_unavailable", false),
        Some(44) => ("disabled", false),
        Some(45) => ("authentication_failed", false),
        Some(0) | None => ("unknown", false),
        Some(_) => ("other", false),
    }
}

fn trunks_of(list: Vec<super::types::Trunk>) -> Result<Vec<Trunk>, PbxError> {
    let unnamed = list
        .iter()
        .filter(|t| t.name.as_deref().is_none_or(|n| n.trim().is_empty()))
        .count();
    if let Some(first) = list
        .iter()
        .position(|t| t.name.as_deref().is_none_or(|n| n.trim().is_empty()))
    {
        return Err(PbxError::Decode {
            endpoint: super::endpoint("trunk/list"),
            reason: format!(
                "{unnamed} of {} trunks unreadable: no name (the first is entry {})",
                list.len(),
                first + 1
            ),
        });
    }
    Ok(list
        .into_iter()
        .map(|t| {
            let (word, up) = trunk_status(t.status);
            Trunk {
                name: t.name.unwrap_or_default(),
                kind: t.kind.unwrap_or_default(),
                status: word.to_string(),
                up: Some(up),
                code: t.status,
            }
        })
        .collect())
}

fn extensions_of(list: &[super::types::Extension]) -> Vec<Extension> {
    list.iter()
        .map(|e| Extension {
            status: Some(if e.registered() {
                ExtensionStatus::Registered
            } else {
                ExtensionStatus::Unavailable
            }),
        })
        .collect()
}

fn device_of(answer: SystemInfoAnswer) -> Option<Device> {
    answer.data.map(|d| Device {
        model: d.model_name.unwrap_or_default(),
        serial: d.sn,
        hardware_version: d.hardware_version.unwrap_or_default(),
        firmware_version: d.firmware_version.unwrap_or_default(),
        uptime: String::new(),
        uptime_seconds: d.up_time,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pbx::model::{MemberKind, Status};

    /// A member as the test reads it: kind, status, trunk, call path.
    type Seen = (MemberKind, Status, Option<String>, Option<String>);

    #[derive(Default)]
    struct Calls(Vec<(String, Vec<Seen>)>);

    impl CallSink for Calls {
        fn add_call(&mut self, call: crate::pbx::model::Call<'_>) {
            self.0.push((
                call.callid.into_owned(),
                call.members
                    .iter()
                    .map(|m| {
                        (
                            m.kind,
                            m.status,
                            m.trunk.as_deref().map(str::to_string),
                            m.callpath.as_deref().map(str::to_string),
                        )
                    })
                    .collect(),
            ));
        }
    }

    #[test]
    fn the_vendors_call_reads_exactly() {
        let a = br#"{"errcode":0,"errmsg":"SUCCESS","data":[{"call_id":"1651057476.362","members":[
          {"inbound":{"from":"5503301","to":"2002","trunk_name":"SIP-Trunk1","channel_id":"PJSIP/trunk-00000010","member_status":"ALERT","call_path":""}},
          {"extension":{"number":"2002","channel_id":"PJSIP/2002-00000011","member_status":"RING","call_path":"6400"}},
          {"fax":{"number":"9"}},
          {"outbound":{"trunk_name":" ","channel_id":7,"member_status":"EARLYMEDIA"}}]}]}"#;
        let c: Calls = read_calls(a).unwrap();
        assert_eq!(
            c.0,
            [(
                "1651057476.362".to_string(),
                vec![
                    (
                        MemberKind::Inbound,
                        Status::Alert,
                        Some("SIP-Trunk1".into()),
                        Some("".into())
                    ),
                    (MemberKind::Ext, Status::Ring, None, Some("6400".into())),
                    (MemberKind::Outbound, Status::Other, None, None),
                ]
            )]
        );
        for idle in [
            r#"{"errcode":0,"errmsg":"SUCCESS","data":[]}"#,
            r#"{"errcode":0,"errmsg":"SUCCESS","data":null}"#,
            r#"{"errcode":0,"errmsg":"SUCCESS"}"#,
        ] {
            assert!(
                read_calls::<Calls>(idle.as_bytes()).unwrap().0.is_empty(),
                "{idle}"
            );
        }
    }

    #[test]
    fn trunks_extensions_device() {
        let t = br#"{"errcode":0,"errmsg":"SUCCESS","total_number":3,"data":[
          {"id":1,"name":"SIP-Trunk1","type":"register","status":1},
          {"id":2,"name":"gsm","type":"GSM","status":"33"},
          {"id":3,"name":"odd","type":"peer","status":99}]}"#;
        let Data::Trunks(list) = read(Query::Trunks, t).unwrap() else {
            panic!()
        };
        let got: Vec<(&str, &str, Option<bool>, Option<i64>)> = list
            .iter()
            .map(|t| (t.name.as_str(), t.status.as_str(), t.up, t.code))
            .collect();
        assert_eq!(
            got,
            [
                ("SIP-Trunk1", "idle", Some(true), Some(1)),
                ("gsm", "no_sim", Some(false), Some(33)),
                ("odd", "other", Some(false), Some(99)),
            ]
        );
        let unnamed =
            br#"{"errcode":0,"errmsg":"SUCCESS","data":[{"status":1},{"name":"a"},{"name":""}]}"#;
        assert_eq!(
            read(Query::Trunks, unnamed).unwrap_err().to_string(),
            "GET trunk/list: undecodable answer: 2 of 3 trunks unreadable: no name (the first is entry 1)"
        );
        let e = br#"{"errcode":0,"errmsg":"SUCCESS","total_number":3,"data":[
          {"number":"1000","online_status":{"sip_phone":{"status":0,"status_list":[{"status":1,"ip":"192.168.5.20:5060"}]}}},
          {"number":"1001","online_status":{"sip_phone":{"status":0},"linkus_mobile":{"status":1}}},
          {"number":"1002","online_status":{"sip_phone":{"status":0,"status_list":null}}}]}"#;
        let Data::Extensions(list) = read(Query::Extensions, e).unwrap() else {
            panic!()
        };
        let got: Vec<Option<ExtensionStatus>> = list.iter().map(|e| e.status).collect();
        assert_eq!(
            got,
            [
                Some(ExtensionStatus::Registered),
                Some(ExtensionStatus::Registered),
                Some(ExtensionStatus::Unavailable)
            ]
        );
        let d = br#"{"errcode":0,"errmsg":"SUCCESS","data":{"device_name":"PBX","model_name":"Yeastar P550","sn":"3631A2124XXX","hardware_version":"V1.00 0000-0000","firmware_version":"37.21.0.117","up_time":24852}}"#;
        let Data::Device(Some(dev)) = read(Query::Device, d).unwrap() else {
            panic!()
        };
        assert_eq!(
            (
                dev.model.as_str(),
                dev.serial.as_deref(),
                dev.firmware_version.as_str(),
                dev.uptime_seconds
            ),
            (
                "Yeastar P550",
                Some("3631A2124XXX"),
                "37.21.0.117",
                Some(24852)
            )
        );
    }
}
