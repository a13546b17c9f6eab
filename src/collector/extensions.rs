//! Extensions: `extension/list` → extensions by status. Numbers are never kept.

use super::families::Families;
use crate::pbx::types::ExtensionListAnswer;

/// The `status` label values, in order; the last one takes every word not listed.
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
        let word = e.status.trim();
        let i = STATUSES[..8]
            .iter()
            .position(|s| s.eq_ignore_ascii_case(word))
            .unwrap_or(8);
        counts[i] += 1;
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
