//! The domain queries ([`crate::pbx::Session::calls`] and the others) as S-Series requests,
//! and their answers read into the [`model`](crate::pbx::model). What this family's answers leave
//! unreadable (a trunk without a name, an extension without a status word, a queue without a
//! number) fails the query with a decode error naming how many and the first, never a list that
//! leaves them out.

use serde_json::json;

use super::types::{
    CallQueryAnswer, DeviceInfoAnswer, ExtensionCallsAnswer, ExtensionListAnswer, QueueListAnswer,
    QueueStatusAnswer, TrunkListAnswer,
};
use super::{decode_answer, request};
use crate::pbx::model::{AGENT_STATUSES, CallSink, Data, Device, Extension, Query, Queue, Trunk};
use crate::pbx::{ApiCode, PbxError, Session, clip};

/// The endpoints `query` calls.
pub fn endpoints(query: Query) -> &'static [&'static str] {
    match query {
        Query::ActiveCalls => &["call/query"],
        Query::InternalCalls => &["extension/query_call"],
        Query::Trunks => &["trunk/list"],
        Query::Extensions => &["extension/list"],
        Query::Device => &["deviceinfo/query"],
        Query::Queues => &["queue/query", "queue/query_status"],
    }
}

/// The requests (endpoint and body) `query` sends, in order: the call query's two directions,
/// a queue list's first request (each queue's status follows it).
pub fn requests(query: Query) -> Vec<(&'static str, serde_json::Value)> {
    match query {
        Query::ActiveCalls => vec![
            ("call/query", json!({"type": "inbound"})),
            ("call/query", json!({"type": "outbound"})),
        ],
        Query::InternalCalls => vec![("extension/query_call", json!({"number": "all"}))],
        Query::Trunks => vec![("trunk/list", json!({}))],
        Query::Extensions => vec![("extension/list", json!({}))],
        Query::Device => vec![("deviceinfo/query", json!({}))],
        Query::Queues => vec![("queue/query", json!({"number": "all"}))],
    }
}

/// The `nth` of [`requests`]`(query)` (every query has its first).
fn nth_request(query: Query, nth: usize) -> (&'static str, serde_json::Value) {
    let mut all = requests(query);
    if nth < all.len() {
        all.swap_remove(nth)
    } else {
        ("", json!({}))
    }
}

/// What `query` asks, in this family's words.
pub fn help(query: Query) -> &'static str {
    match query {
        Query::ActiveCalls => "call/query inbound and outbound",
        Query::InternalCalls => "extension/query_call, for extension-to-extension calls",
        Query::Trunks => "trunk/list",
        Query::Extensions => "extension/list",
        Query::Device => "deviceinfo/query",
        Query::Queues => "queue/query plus one queue/query_status per queue",
    }
}

/// Calls `endpoint` with `body` in `session` and decodes the answer as `T`.
async fn call<T>(
    session: &Session<'_>,
    endpoint: &'static str,
    body: serde_json::Value,
) -> Result<T, PbxError>
where
    T: serde::de::DeserializeOwned + super::types::Envelope,
{
    session
        .call(
            |token| request(endpoint, Some(token), &body),
            |bytes| decode_answer::<T>(endpoint, bytes),
        )
        .await
}

/// A call list answered `Failed` with errno 10007 ("call does not exist") is how some firmware
/// says no call is up: an empty list, not a failure.
fn idle<T: Default>(answer: Result<T, PbxError>) -> Result<T, PbxError> {
    match answer {
        Err(e) if e.api_code() == Some(ApiCode::NoCalls) => Ok(T::default()),
        other => other,
    }
}

/// How many requests the call list `query` takes: the active calls two (`call/query` inbound,
/// then outbound), the internal calls one; any other query is no call list (0).
pub fn call_parts(query: Query) -> usize {
    match query {
        Query::ActiveCalls => 2,
        Query::InternalCalls => 1,
        Query::Trunks | Query::Extensions | Query::Device | Query::Queues => 0,
    }
}

/// Whether the call list `query` lists extension-to-extension calls (the internal direction).
pub fn lists_internal(query: Query) -> bool {
    query == Query::InternalCalls
}

/// Request `part` of the call list `query`, fed into `S`: `active_calls` inbound (0) or
/// outbound (1), or `internal_calls`.
pub async fn calls<S: CallSink>(
    session: &Session<'_>,
    query: Query,
    part: usize,
) -> Result<S, PbxError> {
    match query {
        Query::ActiveCalls => active_calls(session, part).await,
        Query::InternalCalls => internal_calls(session).await,
        Query::Trunks | Query::Extensions | Query::Device | Query::Queues => Err(not_one(query)),
    }
}

/// `call/query` `{"type": "inbound"|"outbound"}` (`nth` 0 or 1 of the query's requests): the
/// calls with an external member of that direction, fed into `S`.
async fn active_calls<S: CallSink>(session: &Session<'_>, nth: usize) -> Result<S, PbxError> {
    let (endpoint, body) = nth_request(Query::ActiveCalls, nth);
    idle(call::<CallQueryAnswer<S>>(session, endpoint, body).await).map(|a| a.calls)
}

/// `active_calls`'s reading of an answer's bytes.
pub fn read_active_calls<S: CallSink>(bytes: &[u8]) -> Result<S, PbxError> {
    idle(decode_answer::<CallQueryAnswer<S>>("call/query", bytes)).map(|a| a.calls)
}

/// `extension/query_call` `{"number": "all"}`: every extension's calls (extension-to-extension
/// calls among them), fed into `S`.
async fn internal_calls<S: CallSink>(session: &Session<'_>) -> Result<S, PbxError> {
    let (endpoint, body) = nth_request(Query::InternalCalls, 0);
    idle(call::<ExtensionCallsAnswer<S>>(session, endpoint, body).await).map(|a| a.calllist)
}

/// `internal_calls`'s reading of an answer's bytes.
pub fn read_internal_calls<S: CallSink>(bytes: &[u8]) -> Result<S, PbxError> {
    idle(decode_answer::<ExtensionCallsAnswer<S>>(
        "extension/query_call",
        bytes,
    ))
    .map(|a| a.calllist)
}

/// The one-request query `query` in `session`. The answer is counted as the PBX's (`success`)
/// once its envelope reads; entries it leaves unreadable then fail the query, not the request.
pub async fn one(session: &Session<'_>, query: Query) -> Result<Data, PbxError> {
    let (endpoint, body) = nth_request(query, 0);
    match query {
        Query::Trunks => {
            let a = call::<TrunkListAnswer>(session, endpoint, body).await?;
            trunks_of(a).map(Data::Trunks)
        }
        Query::Extensions => {
            let a = call::<ExtensionListAnswer>(session, endpoint, body).await?;
            extensions_of(a).map(Data::Extensions)
        }
        Query::Device => {
            let a = call::<DeviceInfoAnswer>(session, endpoint, body).await?;
            Ok(Data::Device(device_of(a)))
        }
        Query::ActiveCalls | Query::InternalCalls | Query::Queues => Err(not_one(query)),
    }
}

fn not_one(query: Query) -> PbxError {
    PbxError::Decode {
        endpoint: super::endpoint(endpoints(query).join(",")),
        reason: format!("{query:?} is not a query of this kind (a bug: please report it)"),
    }
}

/// The answer of the one-request query `query`, read from its bytes: what [`one`] does with
/// what the PBX sent, for benchmarks and property tests too.
pub fn read(query: Query, bytes: &[u8]) -> Result<Data, PbxError> {
    match query {
        Query::Trunks => read_trunks(bytes).map(Data::Trunks),
        Query::Extensions => read_extensions(bytes).map(Data::Extensions),
        Query::Device => read_device(bytes).map(Data::Device),
        Query::ActiveCalls | Query::InternalCalls | Query::Queues => Err(not_one(query)),
    }
}

/// A decode error of `endpoint` when any entry is not `readable`: how many of how many, `what`,
/// and the first (`2 of 3 queues unreadable: … (the first is entry 2)`), never a list that
/// leaves them out.
fn all_readable<T>(
    endpoint: &str,
    what: &str,
    entries: &[T],
    readable: impl Fn(&T) -> bool,
) -> Result<(), PbxError> {
    let mut bad = entries.iter().enumerate().filter(|(_, e)| !readable(e));
    let Some((first, _)) = bad.next() else {
        return Ok(());
    };
    Err(PbxError::Decode {
        endpoint: super::endpoint(endpoint),
        reason: format!(
            "{} of {} {what} (the first is entry {})",
            1 + bad.count(),
            entries.len(),
            first + 1
        ),
    })
}

/// `trunk/list` → the trunks; a decode error naming how many had no name (and the first).
pub fn read_trunks(bytes: &[u8]) -> Result<Vec<Trunk>, PbxError> {
    trunks_of(decode_answer("trunk/list", bytes)?)
}

fn trunks_of(answer: TrunkListAnswer) -> Result<Vec<Trunk>, PbxError> {
    all_readable(
        "trunk/list",
        "trunks unreadable: no trunkname",
        &answer.trunklist,
        |t| !t.trunkname.is_empty(),
    )?;
    Ok(answer
        .trunklist
        .into_iter()
        .map(|t| Trunk {
            name: t.trunkname,
            kind: t.kind,
            status: t.status,
            up: None,
            code: None,
        })
        .collect())
}

/// `extension/list` → the extensions; a decode error naming how many entries had no status word
/// (and the first).
pub fn read_extensions(bytes: &[u8]) -> Result<Vec<Extension>, PbxError> {
    extensions_of(decode_answer("extension/list", bytes)?)
}

fn extensions_of(answer: ExtensionListAnswer) -> Result<Vec<Extension>, PbxError> {
    all_readable(
        "extension/list",
        "extensions unreadable: no status",
        &answer.extlist,
        |e| e.status.is_some(),
    )?;
    Ok(answer
        .extlist
        .iter()
        .map(|e| Extension { status: e.status })
        .collect())
}

/// `deviceinfo/query` → the device (`None` when the answer had no `deviceinfo`).
pub fn read_device(bytes: &[u8]) -> Result<Option<Device>, PbxError> {
    Ok(device_of(decode_answer("deviceinfo/query", bytes)?))
}

fn device_of(answer: DeviceInfoAnswer) -> Option<Device> {
    answer.deviceinfo.map(|d| Device {
        model: d.devicename,
        serial: d.sn,
        hardware_version: d.hardwarever,
        firmware_version: d.firmwarever,
        uptime: d.uptime,
        uptime_seconds: None,
    })
}

/// `queue/query` `{"number": "all"}`, then `queue/query_status` for each queue, one request at a
/// time.
pub async fn queues(session: &Session<'_>) -> Result<Vec<Queue>, PbxError> {
    let (endpoint, body) = nth_request(Query::Queues, 0);
    let list: QueueListAnswer = call(session, endpoint, body).await?;
    let numbers = queue_numbers(&list)?;
    let mut out = Vec::with_capacity(numbers.len());
    for number in numbers {
        let answer: QueueStatusAnswer =
            call(session, "queue/query_status", json!({ "number": number })).await?;
        out.push(queue_state(&number, &answer)?);
    }
    Ok(out)
}

/// The numbers of the queues `queue/query` listed, sorted, each once; a decode error naming how
/// many entries had no number under either name (and the first), never a list that leaves them
/// out.
pub fn queue_numbers(list: &QueueListAnswer) -> Result<Vec<String>, PbxError> {
    all_readable(
        "queue/query",
        "queues unreadable: no number nor queuenumber",
        &list.queues,
        |q| !q.number().is_empty(),
    )?;
    let mut numbers: Vec<String> = list.queues.iter().map(|q| q.number().to_string()).collect();
    numbers.sort();
    numbers.dedup();
    Ok(numbers)
}

/// Turns one `queue/query_status` answer into the state of `queue`. A `callercount` or
/// `agentstatus` that is not a number is a decode error, never a silent 0 (`""` is none; an
/// unknown status code counts as `unknown`).
pub fn queue_state(queue: &str, answer: &QueueStatusAnswer) -> Result<Queue, PbxError> {
    let unreadable = |field: &str, value: &str| PbxError::Decode {
        endpoint: super::endpoint("queue/query_status"),
        reason: format!(
            "{field} {:?} of queue {} is not a number",
            clip(value, 40),
            clip(queue, 40)
        ),
    };
    let mut state = Queue {
        number: queue.to_string(),
        waiting: 0,
        agents: [0; 11],
    };
    for entry in answer
        .queues
        .iter()
        .filter(|q| q.number().is_empty() || q.number() == queue)
    {
        for status in &entry.queuestatus {
            let count = status.callercount.trim();
            if !count.is_empty() {
                let n = count
                    .parse::<u64>()
                    .map_err(|_| unreadable("callercount", count))?;
                state.waiting = state.waiting.saturating_add(n);
            }
            for agent in &status.members {
                let code = agent.agentstatus.trim();
                let i = if code.is_empty() {
                    0
                } else {
                    code.parse::<u64>()
                        .map_err(|_| unreadable("agentstatus", code))?
                };
                let i = usize::try_from(i)
                    .ok()
                    .filter(|i| *i < AGENT_STATUSES.len())
                    .unwrap_or(0);
                state.agents[i] += 1;
            }
        }
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pbx::s_series::types::{QueueListAnswer, QueueStatusAnswer};

    #[test]
    fn old_and_new_field_names_read_alike() {
        let list: QueueListAnswer = serde_json::from_str(
            r#"{"status":"Success","queues":[{"queuenumber":"6701","queuename":"Support"},
                {"number":6700},{"number":"","queuenumber":" 6702 "},{"number":"6700","queuenumber":"9"}]}"#,
        )
        .unwrap();
        assert_eq!(queue_numbers(&list).unwrap(), ["6700", "6701", "6702"]);
        let status: QueueStatusAnswer = serde_json::from_str(
            r#"{"status":"Success","queues":[{"queuenumber":"6701","queuestatus":[{"callercount":"3",
                "members":[{"agent":"1000","agentstatus":"1"},{"agent":"1001","agentstatus":"10"}]}]},
                {"queuenumber":"6702","queuestatus":[{"callercount":"7","members":[]}]}]}"#,
        )
        .unwrap();
        let mut agents = [0; 11];
        agents[1] = 1;
        agents[10] = 1;
        assert_eq!(
            queue_state("6701", &status).unwrap(),
            Queue {
                number: "6701".into(),
                waiting: 3,
                agents
            }
        );
    }

    #[test]
    fn a_queue_without_a_number_fails_the_list() {
        let list: QueueListAnswer = serde_json::from_str(
            r#"{"status":"Success","queues":[{"number":"6700"},{"queuename":"Sales"},{"number":""}]}"#,
        )
        .unwrap();
        assert_eq!(
            queue_numbers(&list).unwrap_err().to_string(),
            "POST queue/query: undecodable answer: 2 of 3 queues unreadable: no number nor queuenumber (the first is entry 2)"
        );
    }
}
