//! Trunks: `trunk/list` → whether each trunk can carry calls, and its status word.

use futures_util::future::BoxFuture;

use super::families::Families;
use super::registry::{Collected, Run, Spec};
use crate::pbx::types::TrunkListAnswer;
use crate::pbx::{PbxError, Session, decode_answer};

/// The collector.
pub static SPEC: Spec = Spec {
    name: "trunks",
    on_by_default: true,
    help: "trunk/list",
    endpoints: &["trunk/list"],
    run: Run::Own {
        fetch,
        parse: Some(parse),
    },
};

/// The trunks a scrape listed (the call path reads them too, for a 0 per idle trunk).
#[derive(Debug, Clone, PartialEq)]
pub struct Listed(pub Vec<TrunkState>);

impl Collected for Listed {
    fn write(&self, m: &Families, _: &str) {
        write(m, &self.0);
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

fn fetch<'a>(s: &'a Session<'a>) -> BoxFuture<'a, Result<Box<dyn Collected>, PbxError>> {
    Box::pin(async move {
        let answer: TrunkListAnswer = s.call("trunk/list", &serde_json::json!({})).await?;
        Ok(Box::new(Listed(trunk_states(&answer))) as Box<dyn Collected>)
    })
}

fn parse(bytes: &[u8]) -> Result<Box<dyn Collected>, PbxError> {
    let answer: TrunkListAnswer = decode_answer("trunk/list", bytes)?;
    Ok(Box::new(Listed(trunk_states(&answer))))
}

/// One trunk, as the metrics show it.
#[derive(Debug, Clone, PartialEq)]
pub struct TrunkState {
    /// Its name.
    pub name: String,
    /// SIP, IAX, FXO, GSM, BRI, E1 (upper-cased).
    pub kind: String,
    /// The PBX's status word, lower-cased with spaces as `_` (`registered`, `no_sim`).
    pub status: String,
    /// Whether it can carry calls.
    pub up: bool,
}

/// A status word as a label value: lower case, runs of anything but letters and digits as one `_`
/// (`Registered (Unmonitored)` → `registered_unmonitored`), at most 40 characters.
pub fn status_label(word: &str) -> String {
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
    let status = status.trim();
    status.eq_ignore_ascii_case("unknown") || status.to_ascii_lowercase().contains("unmonitored")
}

/// Whether a trunk of `kind` in `status` can carry calls (case-insensitive).
pub fn can_carry_calls(kind: &str, status: &str) -> bool {
    if unmonitored(status) {
        return true;
    }
    let status = status.trim();
    let is = |w: &str| status.eq_ignore_ascii_case(w);
    match kind.to_ascii_uppercase().as_str() {
        "SIP" | "IAX" => is("Registered"),
        "BRI" | "E1" => is("Up"),
        "FXO" | "GSM" => is("Idle") || is("Busy"),
        // An unknown trunk kind: the words that mean "working" on the known ones.
        _ => is("Registered") || is("Up") || is("Idle") || is("Busy"),
    }
}

/// The trunks of a `trunk/list` answer.
pub fn trunk_states(answer: &TrunkListAnswer) -> Vec<TrunkState> {
    answer
        .trunklist
        .iter()
        .filter(|t| !t.trunkname.is_empty())
        .map(|t| TrunkState {
            name: super::families::label_text(&t.trunkname).to_string(),
            // The PBX's type word folded as the status is (`SIP` → `sip`): one case for every label.
            kind: status_label(&t.kind),
            status: status_label(&t.status),
            up: can_carry_calls(&t.kind, &t.status),
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
}
