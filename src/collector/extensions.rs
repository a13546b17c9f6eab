//! Extensions: `extension/list` → extensions by status. Numbers are never kept.

use super::families::Families;
use crate::pbx::types::ExtensionListAnswer;

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
pub(crate) fn write(m: &Families, answer: &ExtensionListAnswer) {
    let counts = count_by_status(answer);
    let g = m.gauge_vec("yeastar_extensions", "Extensions by status.", &["status"]);
    for (i, status) in STATUSES.iter().enumerate() {
        g.with_label_values(&[status]).set(counts[i] as f64);
    }
}
