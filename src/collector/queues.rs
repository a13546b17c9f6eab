//! Queues: `queue/query` `{"number":"all"}`, then `queue/query_status` per queue → waiting callers
//! and agents by status. Agent numbers are never kept.

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
        .filter(|q| q.number.is_empty() || q.number == queue)
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

/// Lists the queues and asks each for its status, one request at a time.
pub async fn fetch(session: &Session<'_>) -> Result<Vec<QueueState>, PbxError> {
    let list: QueueListAnswer = session
        .call("queue/query", &json!({"number": "all"}))
        .await?;
    let mut numbers: Vec<String> = list
        .queues
        .into_iter()
        .map(|q| q.number)
        .filter(|n| !n.is_empty())
        .collect();
    numbers.sort();
    numbers.dedup();
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
