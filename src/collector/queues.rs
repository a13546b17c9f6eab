//! Queues: `queue/query` `{"number":"all"}`, then `queue/query_status` per queue → waiting callers
//! and agents by status. Agent numbers are never kept. A queue's number is `number` (v2) or
//! `queuenumber` (older firmware); a listed queue with neither is unreadable: the collector then
//! fails (`decode_error`, the count in the cause) rather than drop it silently.

use futures_util::future::BoxFuture;

use super::families::Families;
use super::registry::{Collected, Run, Spec};
use crate::pbx::model::{AGENT_STATUSES, Query, Queue};
use crate::pbx::{PbxError, Session};

/// The collector: off by default, as it costs one request per queue.
pub static SPEC: Spec = Spec {
    name: "queues",
    on_by_default: false,
    required: false,
    queries: &[Query::Queues],
    note: "",
    run: Run::Own { fetch: fetch_boxed },
};

/// Every queue's state this scrape.
struct Queues(Vec<Queue>);

impl Collected for Queues {
    fn write(&self, m: &Families, _: &str) {
        write(m, &self.0);
    }
}

fn fetch_boxed<'a>(s: &'a Session<'a>) -> BoxFuture<'a, Result<Box<dyn Collected>, PbxError>> {
    Box::pin(async move { Ok(Box::new(Queues(s.queues().await?)) as Box<dyn Collected>) })
}

/// Writes `yeastar_queue_waiting_calls` and `yeastar_queue_agents`, every status present per queue.
fn write(m: &Families, list: &[Queue]) {
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
        let queue = super::families::label_text(&q.number);
        waiting.with_label_values(&[queue]).set(q.waiting as f64);
        for (i, status) in AGENT_STATUSES.iter().enumerate() {
            agents
                .with_label_values(&[queue, status])
                .set(q.agents[i] as f64);
        }
    }
}
