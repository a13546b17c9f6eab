//! Queues: `queue/query` `{"number":"all"}`, then `queue/query_status` per queue → waiting callers
//! and agents by status. Agent numbers are never kept. A queue's number is `number` (v2) or
//! `queuenumber` (older firmware); a listed queue with neither is unreadable: the collector then
//! fails (`decode_error`, the count in the cause) rather than drop it silently.

use futures_util::future::BoxFuture;
use serde_json::json;

use super::families::Families;
use super::registry::{Collected, Run, Spec};
use crate::pbx::types::{QueueListAnswer, QueueStatusAnswer};
use crate::pbx::{PbxError, Session};

/// The collector: off by default, as it costs one request per queue.
pub static SPEC: Spec = Spec {
    name: "queues",
    on_by_default: false,
    help: "queue/query plus one queue/query_status per queue",
    endpoints: &["queue/query", "queue/query_status"],
    run: Run::Own {
        fetch: fetch_boxed,
        parse: None,
    },
};

/// Every queue's state this scrape.
struct Queues(Vec<QueueState>);

impl Collected for Queues {
    fn write(&self, m: &Families, _: &str) {
        write(m, &self.0);
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

fn fetch_boxed<'a>(s: &'a Session<'a>) -> BoxFuture<'a, Result<Box<dyn Collected>, PbxError>> {
    Box::pin(async move { Ok(Box::new(Queues(fetch(s).await?)) as Box<dyn Collected>) })
}

/// The `status` label values, indexed by the PBX's agent status code (`"0"`..`"10"`).
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

/// One queue's numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueState {
    /// The queue's number.
    pub queue: String,
    /// Callers waiting.
    pub waiting: u64,
    /// Agents by [`AGENT_STATUSES`] index (unknown codes count as `unknown`).
    pub agents: [u64; 11],
}

/// Turns one `queue/query_status` answer into the state of `queue`. A `callercount` or
/// `agentstatus` that is not a number is a decode error for the collector, never a silent 0
/// (`""` is none; an unknown status code counts as `unknown`).
pub fn queue_state(queue: &str, answer: &QueueStatusAnswer) -> Result<QueueState, PbxError> {
    let unreadable = |field: &str, value: &str| PbxError::Decode {
        endpoint: "queue/query_status".into(),
        reason: format!(
            "{field} {:?} of queue {} is not a number",
            crate::pbx::clip(value, 40),
            crate::pbx::clip(queue, 40)
        ),
    };
    let mut state = QueueState {
        queue: super::families::label_text(queue).to_string(),
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

/// The numbers of the queues `queue/query` listed, sorted, each once; a decode error naming how
/// many entries had no number under either name (and the first), never a list that leaves them
/// out.
pub fn queue_numbers(list: &QueueListAnswer) -> Result<Vec<String>, PbxError> {
    let unnumbered: Vec<usize> = (0..list.queues.len())
        .filter(|i| list.queues[*i].number().is_empty())
        .collect();
    if let Some(first) = unnumbered.first() {
        return Err(PbxError::Decode {
            endpoint: "queue/query".into(),
            reason: format!(
                "{} of {} queues unreadable: no number nor queuenumber (the first is entry {})",
                unnumbered.len(),
                list.queues.len(),
                first + 1
            ),
        });
    }
    let mut numbers: Vec<String> = list.queues.iter().map(|q| q.number().to_string()).collect();
    numbers.sort();
    numbers.dedup();
    Ok(numbers)
}

/// Lists the queues and asks each for its status, one request at a time.
pub async fn fetch(session: &Session<'_>) -> Result<Vec<QueueState>, PbxError> {
    let list: QueueListAnswer = session
        .call("queue/query", &json!({"number": "all"}))
        .await?;
    let numbers = queue_numbers(&list)?;
    let mut out = Vec::with_capacity(numbers.len());
    for number in numbers {
        let answer: QueueStatusAnswer = session
            .call("queue/query_status", &json!({ "number": number }))
            .await?;
        out.push(queue_state(&number, &answer)?);
    }
    Ok(out)
}

/// Writes `yeastar_queue_waiting_calls` and `yeastar_queue_agents`, every status present per queue.
fn write(m: &Families, list: &[QueueState]) {
    let waiting = m.gauge_vec(
        "yeastar_queue_waiting_calls",
        "Callers waiting in the queue.",
        &["queue"],
    );
    let agents = m.gauge_vec(
        "yeastar_queue_agents",
        "Queue agents by status.",
        &["queue", "status"],
    );
    for q in list {
        waiting.with_label_values(&[&q.queue]).set(q.waiting as f64);
        for (i, status) in AGENT_STATUSES.iter().enumerate() {
            agents
                .with_label_values(&[q.queue.as_str(), status])
                .set(q.agents[i] as f64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            QueueState {
                queue: "6701".into(),
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
