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

/// The `status` label values, by [`ExtensionStatus`](crate::pbx::types::ExtensionStatus) index; the last one takes every word not
/// listed.
pub const STATUSES: [&str; 9] = [
    "registered",
    "unavailable",
    "ringing",
    "busy",
    "hold",
    "idle",
    "malfunction",
    "fxsnoport",
    "other",
];

/// Extensions counted by [`STATUSES`] index.
pub fn count_by_status(answer: &ExtensionListAnswer) -> [u64; 9] {
    let mut counts = [0u64; 9];
    for e in &answer.extlist {
        counts[e.status as usize] += 1;
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

#[cfg(test)]
mod tests {
    use super::STATUSES;
    use crate::pbx::types::ExtensionStatus;

    #[test]
    fn every_status_has_its_label_at_its_index() {
        for (i, status) in ExtensionStatus::ALL.into_iter().enumerate() {
            assert_eq!(status as usize, i);
            if status != ExtensionStatus::Other {
                assert_eq!(ExtensionStatus::parse(STATUSES[i]), status);
                assert_eq!(ExtensionStatus::parse(&STATUSES[i].to_uppercase()), status);
            }
        }
        assert_eq!(ExtensionStatus::parse(" Registered "), ExtensionStatus::Registered);
        assert_eq!(ExtensionStatus::parse("Rebooting"), ExtensionStatus::Other);
    }
}
