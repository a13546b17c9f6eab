//! Trunks: `trunk/list` → whether each trunk can carry calls, and its status word. Status words are
//! folded so every spelling firmware has used gives one label value (`No SIM`, `nosim` → `no_sim`).
//! A trunk without a name is unreadable: the collector then fails (`decode_error`, the count in the
//! cause) rather than drop it silently.

use super::families::Families;
use super::registry::{Collected, Run, Spec};
use crate::pbx::PbxError;
use crate::pbx::model::{Data, Query, Trunk};

/// The collector.
pub static SPEC: Spec = Spec {
    name: "trunks",
    on_by_default: true,
    required: false,
    queries: &[Query::Trunks],
    note: "",
    run: Run::One {
        query: Query::Trunks,
        read,
    },
};

/// The trunks a scrape listed (the call path reads them too, for a 0 per idle trunk).
#[derive(Debug, Clone, PartialEq)]
pub struct Listed(pub Vec<TrunkState>);

impl Collected for Listed {
    fn write(&self, m: &Families, _: &str) {
        write(m, &self.0);
    }
    fn listed_trunks(&self) -> Option<&[TrunkState]> {
        Some(&self.0)
    }
}

fn read(answer: Data) -> Result<Box<dyn Collected>, PbxError> {
    match answer {
        Data::Trunks(list) => Ok(Box::new(Listed(trunk_states(&list)))),
        other => Err(super::registry::unexpected("trunks", &other)),
    }
}

pub use super::listed::TrunkState;

/// The status words firmware has written without spaces (the 2017 status table: `nosim`,
/// `poweroff`, …), by their letters and digits in lower case, and the label value of the spaced
/// spelling later pages use (`No SIM` → `no_sim`): both spellings give one label value.
const RUN_TOGETHER: [(&str, &str); 5] = [
    ("nosim", "no_sim"),
    ("poweroff", "power_off"),
    ("nosignal", "no_signal"),
    ("pinerror", "pin_error"),
    ("registeredunmonitored", "registered_unmonitored"),
];

/// `word`'s letters and digits in lower case: what two spellings of one status word share
/// (`No SIM`, `nosim`, `NO_SIM` → `nosim`).
pub fn fold_key(word: &str) -> String {
    word.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// A status word as a label value: lower case, runs of anything but letters and digits as one `_`
/// (`Registered (Unmonitored)` → `registered_unmonitored`), at most 40 characters. The words
/// older firmware wrote without spaces read as the spaced ones (`nosim` → `no_sim`,
/// `poweroff` → `power_off`, `nosignal` → `no_signal`, `pinerror` → `pin_error`).
pub fn status_label(word: &str) -> String {
    let key = fold_key(word);
    if let Some((_, label)) = RUN_TOGETHER.iter().find(|(k, _)| *k == key) {
        return (*label).to_string();
    }
    let mut out = String::with_capacity(word.len());
    for part in word
        .split(|c: char| !c.is_alphanumeric())
        .filter(|p| !p.is_empty())
    {
        if !out.is_empty() {
            out.push('_');
        }
        out.push_str(&part.to_lowercase());
    }
    if out.is_empty() {
        out.push_str("unknown");
    }
    if let Some((i, _)) = out.char_indices().nth(40) {
        out.truncate(i);
    }
    out
}

/// A status the exporter cannot judge: the PBX does not monitor the trunk (a peer trunk's
/// `Unknown`, `Registered (Unmonitored)`). Such a trunk reads as up: it may well carry calls, and
/// paging on it would be a false alarm; `yeastar_trunk_status` shows the word.
pub fn unmonitored(status: &str) -> bool {
    let key = fold_key(status);
    key == "unknown" || key.contains("unmonitored")
}

/// Whether a trunk of `kind` in `status` can carry calls (case, spaces and punctuation ignored).
pub fn can_carry_calls(kind: &str, status: &str) -> bool {
    if unmonitored(status) {
        return true;
    }
    let status = fold_key(status);
    let is = |w: &str| status == w;
    match fold_key(kind).to_ascii_uppercase().as_str() {
        "SIP" | "IAX" => is("registered"),
        "BRI" | "E1" => is("up"),
        "FXO" | "GSM" => is("idle") || is("busy"),
        // An unknown trunk kind: the words that mean "working" on the known ones.
        _ => is("registered") || is("up") || is("idle") || is("busy"),
    }
}

/// The trunks as the metrics show them.
pub fn trunk_states(list: &[Trunk]) -> Vec<TrunkState> {
    list.iter()
        .map(|t| TrunkState {
            name: super::families::label_text(&t.name).to_string(),
            // The PBX's type word folded as the status is (`SIP` → `sip`): one case for every label.
            kind: status_label(&t.kind),
            status: status_label(&t.status),
            up: t.up.unwrap_or_else(|| can_carry_calls(&t.kind, &t.status)),
        })
        .collect()
}

/// Writes `yeastar_trunk_up` and `yeastar_trunk_status` for the listed trunks.
pub(crate) fn write(m: &Families, list: &[TrunkState]) {
    let trunk_up = m.gauge_vec(
        "yeastar_trunk_up",
        "1 when the trunk can carry calls, else 0.",
        &["trunk", "kind"],
    );
    let trunk_status = m.gauge_vec(
        "yeastar_trunk_status",
        "1 for the trunk's current status as the PBX words it.",
        &["trunk", "kind", "status"],
    );
    for t in list {
        trunk_up
            .with_label_values(&[&t.name, &t.kind])
            .set(if t.up { 1.0 } else { 0.0 });
        trunk_status
            .with_label_values(&[&t.name, &t.kind, &t.status])
            .set(1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_and_up() {
        assert_eq!(status_label("No SIM"), "no_sim");
        assert_eq!(status_label(" Power  Off "), "power_off");
        assert_eq!(status_label(""), "unknown");
        assert!(can_carry_calls("sip", "registered"));
        assert!(!can_carry_calls("SIP", "Registering"));
        assert!(can_carry_calls("GSM", "Busy"));
        assert!(!can_carry_calls("GSM", "No SIM"));
        assert!(can_carry_calls("E1", "UP"));
        assert!(can_carry_calls("SIP", "Unknown"));
        assert!(can_carry_calls("SIP", "Registered (Unmonitored)"));
        assert_eq!(
            status_label("Registered (Unmonitored)"),
            "registered_unmonitored"
        );
        assert!(!can_carry_calls("SIP", "Failure"));
    }

    /// Every spelling the vendor's pages and captures show, and what it reads as.
    #[test]
    fn every_spelling_folds_to_one_label() {
        let cases = [
            // (kind, status word, label, can carry calls)
            ("GSM", "No SIM", "no_sim", false),
            ("GSM", "nosim", "no_sim", false),
            ("GSM", "NOSIM", "no_sim", false),
            ("GSM", "no_sim", "no_sim", false),
            ("GSM", "Power Off", "power_off", false),
            ("GSM", "poweroff", "power_off", false),
            ("GSM", "PowerOff", "power_off", false),
            ("GSM", "No Signal", "no_signal", false),
            ("GSM", "nosignal", "no_signal", false),
            ("GSM", "Pin Error", "pin_error", false),
            ("GSM", "pinerror", "pin_error", false),
            ("GSM", "Unregister", "unregister", false),
            ("GSM", "unregister", "unregister", false),
            ("GSM", "Alarm", "alarm", false),
            ("GSM", "Idle", "idle", true),
            ("GSM", "idle", "idle", true),
            ("GSM", "Busy", "busy", true),
            ("SIP", "Registered", "registered", true),
            ("SIP", "registered", "registered", true),
            ("SIP", "REGISTERED", "registered", true),
            ("SIP", "Registered (Unmonitored)", "registered_unmonitored", true),
            ("SIP", "registered (unmonitored)", "registered_unmonitored", true),
            ("SIP", "registered(unmonitored)", "registered_unmonitored", true),
            ("SIP", "registeredunmonitored", "registered_unmonitored", true),
            ("SIP", "Registering", "registering", false),
            ("SIP", "Failure", "failure", false),
            ("SIP", "failure", "failure", false),
            ("SIP", "Disable", "disable", false),
            ("SIP", "Unknown", "unknown", true),
            ("IAX", "unknown", "unknown", true),
            ("FXO", "Fault", "fault", false),
            ("FXO", "Idle", "idle", true),
            ("E1", "Up", "up", true),
            ("BRI", "up", "up", true),
            ("BRI", "Down", "down", false),
            ("SIP", "", "unknown", false),
        ];
        for (kind, word, label, up) in cases {
            assert_eq!(status_label(word), label, "{word:?}");
            assert_eq!(can_carry_calls(kind, word), up, "{kind} {word:?}");
        }
    }

    #[test]
    fn a_trunk_without_a_name_fails_the_list() {
        let read = |json: &str| {
            crate::pbx::s_series::queries::read_trunks(json.as_bytes()).map(|l| trunk_states(&l))
        };
        let ok = read(r#"{"status":"Success","trunklist":[{"trunkname":"gsm","type":"GSM","status":"nosim"}]}"#)
            .unwrap();
        assert_eq!(
            ok,
            [TrunkState {
                name: "gsm".into(),
                kind: "gsm".into(),
                status: "no_sim".into(),
                up: false
            }]
        );
        let err = read(
            r#"{"status":"Success","trunklist":[{"trunkname":"a","type":"SIP","status":"Registered"},
                {"name":"b","type":"SIP","status":"Registered"}]}"#,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "POST trunk/list: undecodable answer: 1 of 2 trunks unreadable: no trunkname (the first is entry 2)"
        );
    }
}
