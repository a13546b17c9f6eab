//! Extensions: `extension/list` → extensions by status. Numbers are never kept (so v2's `number` and
//! older firmware's `extnumber` read alike). An entry without a status word is unreadable: the
//! collector then fails (`decode_error`, the count in the cause) rather than drop it silently.

use super::families::Families;
use super::registry::{Collected, Run, Spec};
use crate::pbx::PbxError;
use crate::pbx::model::{Data, Extension, Query};

/// The collector.
pub static SPEC: Spec = Spec {
    name: "extensions",
    on_by_default: true,
    required: false,
    queries: &[Query::Extensions],
    note: "",
    run: Run::One {
        query: Query::Extensions,
        read,
    },
};

/// Extensions counted by status.
struct Counted([u64; 9]);

impl Collected for Counted {
    fn write(&self, m: &Families, _: &str) {
        write_counts(m, &self.0);
    }
}

fn read(answer: Data) -> Result<Box<dyn Collected>, PbxError> {
    match answer {
        Data::Extensions(list) => Ok(Box::new(Counted(count_by_status(&list)))),
        other => Err(super::registry::unexpected("extensions", &other)),
    }
}

/// The `status` label values, by [`ExtensionStatus`](crate::pbx::model::ExtensionStatus) index; the last one takes every word not
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

/// Extensions counted by [`STATUSES`] index (an entry without a status, which the family does not
/// let through, counts as `other`).
pub fn count_by_status(list: &[Extension]) -> [u64; 9] {
    let mut counts = [0u64; 9];
    for e in list {
        counts[e.status.map_or(8, |s| s as usize)] += 1;
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
    use super::{STATUSES, count_by_status};
    use crate::pbx::model::ExtensionStatus;

    #[test]
    fn every_spelling_of_a_status_is_one_bucket() {
        let cases = [
            ("Registered", ExtensionStatus::Registered),
            ("registered", ExtensionStatus::Registered),
            ("REGISTERED", ExtensionStatus::Registered),
            (" Registered ", ExtensionStatus::Registered),
            ("Unavailable", ExtensionStatus::Unavailable),
            ("unavailable", ExtensionStatus::Unavailable),
            ("Un available", ExtensionStatus::Unavailable),
            ("Ringing", ExtensionStatus::Ringing),
            ("Busy", ExtensionStatus::Busy),
            ("Hold", ExtensionStatus::Hold),
            ("Idle", ExtensionStatus::Idle),
            ("Malfunction", ExtensionStatus::Malfunction),
            ("Fxsnoport", ExtensionStatus::FxsNoPort),
            ("FXSNoPort", ExtensionStatus::FxsNoPort),
            ("FXS No Port", ExtensionStatus::FxsNoPort),
            ("fxs_no_port", ExtensionStatus::FxsNoPort),
            ("Away", ExtensionStatus::Other),
            ("Registering", ExtensionStatus::Other),
        ];
        for (word, status) in cases {
            assert_eq!(ExtensionStatus::parse(word), status, "{word:?}");
        }
    }

    #[test]
    fn old_field_names_count_and_entries_without_status_fail() {
        let read = |json: &str| {
            crate::pbx::s_series::queries::read_extensions(json.as_bytes())
                .map(|l| count_by_status(&l))
        };
        // v1's `extnumber`, a lower-case status, a number as the number.
        let counts = read(
            r#"{"status":"Success","extlist":[{"extnumber":"1000","status":"unavailable"},
                {"extnumber":1001,"status":"Registered"},{"number":"1002","status":"Busy"}]}"#,
        )
        .unwrap();
        assert_eq!(counts, [1, 1, 0, 1, 0, 0, 0, 0, 0]);
        let err = read(
            r#"{"status":"Success","extlist":[{"number":"1000","status":"Idle"},{"number":"1001"},
                {"number":"1002","status":""},{"number":"1003","status":null}]}"#,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "POST extension/list: undecodable answer: 3 of 4 extensions unreadable: no status (the first is entry 2)"
        );
        assert_eq!(err.outcome(), crate::pbx::Outcome::DecodeError);
    }

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
