//! Extensions: `extension/list` → extensions by status. Numbers are never kept.

use futures_util::future::BoxFuture;

use super::families::Families;
use super::registry::{Collected, Run, Spec};
use crate::pbx::types::ExtensionListAnswer;
use crate::pbx::{PbxError, Session, decode_answer};

/// The collector.
pub static SPEC: Spec = Spec {
    name: "extensions",
    on_by_default: true,
    help: "extension/list",
    endpoints: &["extension/list"],
    run: Run::Own {
        fetch,
        parse: Some(parse),
    },
};

/// Extensions counted by status.
struct Counted([u64; 9]);

impl Collected for Counted {
    fn write(&self, m: &Families, _: &str) {
        write_counts(m, &self.0);
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

fn fetch<'a>(s: &'a Session<'a>) -> BoxFuture<'a, Result<Box<dyn Collected>, PbxError>> {
    Box::pin(async move {
        let answer: ExtensionListAnswer = s
            .call("extension/list", &serde_json::json!({}))
            .await?;
        Ok(Box::new(Counted(count_by_status(&answer))) as Box<dyn Collected>)
    })
}

fn parse(bytes: &[u8]) -> Result<Box<dyn Collected>, PbxError> {
    let answer: ExtensionListAnswer = decode_answer("extension/list", bytes)?;
    Ok(Box::new(Counted(count_by_status(&answer))))
}

/// The `status` label values, in order; the last one takes every word not listed.
pub use crate::pbx::types::EXTENSION_STATUSES as STATUSES;

/// Extensions counted by [`STATUSES`] index.
pub fn count_by_status(answer: &ExtensionListAnswer) -> [u64; 9] {
    let mut counts = [0u64; 9];
    for e in &answer.extlist {
        counts[usize::from(e.status).min(8)] += 1;
    }
    counts
}

/// Writes `yeastar_extensions`, every status present.
fn write_counts(m: &Families, counts: &[u64; 9]) {
    let g = m.gauge_vec("yeastar_extensions", "Extensions by status.", &["status"]);
    for (i, status) in STATUSES.iter().enumerate() {
        g.with_label_values(&[status]).set(counts[i] as f64);
    }
}
