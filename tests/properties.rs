//! Property tests of the PBX answer decoder and the aggregation (proptest).
//!
//! - Arbitrary bytes, and arbitrary JSON, never make the decoder or a whole scrape's work panic.
//! - Arbitrary well-formed call lists, spread over the inbound, outbound and internal answers as the
//!   PBX spreads them (a call may be in several), give member counts that add up to the members
//!   given, active calls equal to the distinct callids, and the right per-direction, per-trunk and
//!   per-callpath figures; and the encoded text, parsed back by this file's own parser of the text
//!   format, carries exactly those values.
//!
//! Case counts are bounded (`PROPTEST_CASES` overrides them), so `cargo test` runs them in CI.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use proptest::prelude::*;
use serde_json::{Value, json};
use yeastar_exporter::collector::calls::MergedCalls;
use yeastar_exporter::collector::{Answers, CollectorKind, CollectorSet, Target};
use yeastar_exporter::pbx::s_series::decode_answer;
use yeastar_exporter::pbx::s_series::types::{
    CallQueryAnswer, DeviceInfoAnswer, ExtensionCallsAnswer, ExtensionListAnswer,
    QueueStatusAnswer, TrunkListAnswer,
};
use yeastar_exporter::support::clock::ManualClock;

const NOW: u64 = 1_700_000_000;

fn target(collectors: CollectorSet) -> Target {
    Target::offline(collectors, ManualClock::new(NOW))
}

/// 64 cases per property in a debug build (`cargo test`, every commit: the suite stays under 30 s),
/// 1,024 in `cargo test --release --test properties` (run before a release, and by hand after any
/// change to the decoder); `PROPTEST_CASES` overrides both.
fn config() -> ProptestConfig {
    let default = if cfg!(debug_assertions) { 64 } else { 1024 };
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Arbitrary JSON, with the keys the decoder looks for among the random ones.
fn json_value() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("Calls".to_string()),
        Just("calls".to_string()),
        Just("members".to_string()),
        Just("callid".to_string()),
        Just("status".to_string()),
        Just("errno".to_string()),
        Just("inbound".to_string()),
        Just("ext".to_string()),
        Just("memberstatus".to_string()),
        Just("channelid".to_string()),
        Just("calllist".to_string()),
        Just("numbercalls".to_string()),
        Just("extlist".to_string()),
        Just("trunklist".to_string()),
        Just("deviceinfo".to_string()),
        Just("uptime".to_string()),
        "[a-z]{1,6}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        prop_oneof![
            Just("Success".to_string()),
            Just("Failed".to_string()),
            ".{0,12}"
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 64, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn decode_everything(bytes: &[u8]) {
    let _ = decode_answer::<CallQueryAnswer<MergedCalls>>("call/query", bytes);
    let _ = decode_answer::<ExtensionCallsAnswer<MergedCalls>>("extension/query_call", bytes);
    let _ = decode_answer::<TrunkListAnswer>("trunk/list", bytes);
    let _ = decode_answer::<ExtensionListAnswer>("extension/list", bytes);
    let _ = decode_answer::<DeviceInfoAnswer>("deviceinfo/query", bytes);
    let _ = decode_answer::<QueueStatusAnswer>("queue/query_status", bytes);
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        decode_everything(&bytes);
        let answers = Answers::default()
            .with("calls", [bytes.clone(), bytes.clone()])
            .with("internal_calls", [bytes.clone()])
            .with("trunks", [bytes.clone()])
            .with("extensions", [bytes.clone()])
            .with("device", [bytes.clone()]);
        let out = target(CollectorSet::default()).render_answers(&answers);
        prop_assert!(!out.up || out.error.is_none());
    }

    #[test]
    fn arbitrary_json_never_panics(v in json_value(), w in json_value()) {
        let (a, b) = (serde_json::to_vec(&v).unwrap(), serde_json::to_vec(&w).unwrap());
        decode_everything(&a);
        let answers = Answers::default()
            .with("calls", [a.clone(), b.clone()])
            .with("internal_calls", [a.clone()])
            .with("trunks", [b.clone()])
            .with("extensions", [a])
            .with("device", [b]);
        let _ = target(CollectorSet::default()).render_answers(&answers);
    }
}

/// One member as the test means it: kind, channel, status word, trunk, callpath.
#[derive(Debug, Clone)]
struct M {
    kind: &'static str,
    channel: String,
    status: &'static str,
    trunk: Option<String>,
    callpath: Option<String>,
}

#[derive(Debug, Clone)]
struct C {
    callid: String,
    members: Vec<M>,
    /// Which answers list it: inbound, outbound, internal.
    listed: [bool; 3],
}

const STATUSES: [&str; 9] = [
    "ALERT",
    "RING",
    "ANSWERED",
    "ANSWER",
    "HOLD",
    "BYE",
    "EARLYMEDIA",
    "ring",
    "",
];
/// Trunk names and callpaths, some needing escapes in the text format.
const NAMES: [&str; 5] = [
    "siptrunk",
    "GSM 1",
    "quote\"d",
    "back\\slash",
    "line\nbreak",
];

fn member() -> impl Strategy<Value = M> {
    (
        prop::sample::select(vec!["ext", "inbound", "outbound"]),
        0u8..4,
        prop::sample::select(STATUSES.to_vec()),
        prop::option::of(prop::sample::select(NAMES.to_vec())),
        prop::option::of(prop::sample::select(vec!["6500", "6400", "6300"])),
    )
        .prop_map(|(kind, ch, status, trunk, callpath)| M {
            kind,
            // One channel per (kind, number): a repeated channel is the same member again.
            channel: format!("PJSIP/{kind}-{ch:08x}"),
            status,
            trunk: trunk.map(str::to_string),
            callpath: callpath.map(str::to_string),
        })
}

fn call() -> impl Strategy<Value = C> {
    (
        0u32..30,
        prop::collection::vec(member(), 0..6),
        any::<[bool; 3]>(),
    )
        .prop_map(|(n, members, listed)| C {
            // Started up to 30 minutes ago; several calls may share nothing but their start second.
            callid: format!("{}.{n}", NOW - 60 * n as u64),
            members,
            listed,
        })
}

/// One snapshot of the PBX: wherever a (callid, channel) appears again, it is the same member as
/// where it first appeared (same status, trunk, callpath).
fn canonical(mut calls: Vec<C>) -> Vec<C> {
    let mut first: HashMap<(String, String), M> = HashMap::new();
    for c in &mut calls {
        for m in &mut c.members {
            *m = first
                .entry((c.callid.clone(), m.channel.clone()))
                .or_insert_with(|| m.clone())
                .clone();
        }
    }
    calls
}

/// A call's members as the PBX lists them.
fn members_json(c: &C) -> Vec<Value> {
    c.members
        .iter()
        .map(|m| {
            let mut info = json!({"channelid": m.channel, "memberstatus": m.status});
            if let Some(t) = &m.trunk {
                info["trunkname"] = json!(t);
            }
            if let Some(p) = &m.callpath {
                info["callpath"] = json!(p);
            }
            json!({ m.kind: info })
        })
        .collect()
}

fn bucket(word: &str) -> &'static str {
    match word.to_ascii_uppercase().as_str() {
        "ALERT" => "alert",
        "RING" => "ring",
        "ANSWERED" => "answered",
        "ANSWER" => "answer",
        "HOLD" => "hold",
        "BYE" => "bye",
        _ => "other",
    }
}

/// The series the contract asks for, computed here from the calls as given.
fn expected(calls: &[C]) -> BTreeMap<String, f64> {
    // Calls with the same callid are one call: their members together.
    let mut by_id: BTreeMap<&str, Vec<&M>> = BTreeMap::new();
    for c in calls.iter().filter(|c| c.listed.iter().any(|l| *l)) {
        let members = by_id.entry(c.callid.as_str()).or_default();
        for m in &c.members {
            if !members.iter().any(|x| x.channel == m.channel) {
                members.push(m);
            }
        }
    }
    let mut out = BTreeMap::new();
    let mut set = |k: String, v: f64| {
        *out.entry(k).or_insert(0.0) += v;
    };
    for kind in ["ext", "inbound", "outbound"] {
        for s in [
            "alert", "ring", "answered", "answer", "hold", "bye", "other",
        ] {
            set(
                format!("yeastar_call_members{{member={kind:?},status={s:?}}}"),
                0.0,
            );
        }
    }
    for d in ["inbound", "outbound", "internal"] {
        set(format!("yeastar_active_calls{{direction={d:?}}}"), 0.0);
    }
    for members in by_id.values() {
        let dir = if members.iter().any(|m| m.kind == "inbound") {
            "inbound"
        } else if members.iter().any(|m| m.kind == "outbound") {
            "outbound"
        } else {
            "internal"
        };
        set(format!("yeastar_active_calls{{direction={dir:?}}}"), 1.0);
        let mut paths = BTreeSet::new();
        for m in members {
            set(
                format!(
                    "yeastar_call_members{{member={:?},status={:?}}}",
                    m.kind,
                    bucket(m.status)
                ),
                1.0,
            );
            if let (Some(t), "inbound" | "outbound") = (&m.trunk, m.kind) {
                set(
                    format!(
                        "yeastar_trunk_active_calls{{direction={:?},trunk={t:?}}}",
                        m.kind
                    ),
                    1.0,
                );
                let other = if m.kind == "inbound" {
                    "outbound"
                } else {
                    "inbound"
                };
                set(
                    format!("yeastar_trunk_active_calls{{direction={other:?},trunk={t:?}}}"),
                    0.0,
                );
            }
            if let Some(p) = &m.callpath {
                paths.insert(p.clone());
            }
        }
        for p in paths {
            set(
                format!("yeastar_callpath_active_calls{{callpath={p:?}}}"),
                1.0,
            );
        }
    }
    out
}

/// A small parser of the text exposition format: `name{label="value",...} value` per sample line,
/// label values unescaped (`\\`, `\"`, `\n`), keyed back in the form [`expected`] writes.
fn parse_text(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("a sample line has a value");
        let value: f64 = value.parse().expect("a number");
        let (name, labels) = match series.split_once('{') {
            None => (series.to_string(), Vec::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').expect("labels end with }");
                let mut labels = Vec::new();
                let mut chars = body.chars().peekable();
                while chars.peek().is_some() {
                    let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
                    assert_eq!(chars.next(), Some('"'), "{line}");
                    let mut v = String::new();
                    loop {
                        match chars.next().expect("a closed label value") {
                            '"' => break,
                            '\\' => match chars.next() {
                                Some('n') => v.push('\n'),
                                Some(c) => v.push(c),
                                None => panic!("dangling escape in {line}"),
                            },
                            c => v.push(c),
                        }
                    }
                    labels.push((key, v));
                    if chars.peek() == Some(&',') {
                        chars.next();
                    }
                }
                (name.to_string(), labels)
            }
        };
        let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
        let key = if labels.is_empty() {
            name
        } else {
            format!("{name}{{{}}}", labels.join(","))
        };
        assert!(out.insert(key, value).is_none(), "series twice: {line}");
    }
    out
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn call_lists_add_up_and_the_text_parses_back(calls in prop::collection::vec(call(), 0..25)) {
        let calls = canonical(calls);
        let listed = |i: usize| -> Vec<Value> {
            calls
                .iter()
                .filter(|c| c.listed[i])
                .map(|c| json!({"callid": c.callid, "members": members_json(c)}))
                .collect()
        };
        let internal: Vec<Value> = listed(2)
            .into_iter()
            .enumerate()
            .map(|(i, c)| json!({"number": format!("{}", 1000 + i), "numbercalls": [c]}))
            .collect();
        let answers = Answers::default()
            .with("calls", [
                serde_json::to_vec(&json!({"status": "Success", "Calls": listed(0)})).unwrap(),
                serde_json::to_vec(&json!({"status": "Success", "calls": listed(1)})).unwrap(),
            ])
            .with("internal_calls", [
                serde_json::to_vec(&json!({"status": "Success", "calllist": internal})).unwrap(),
            ]);
        let t = target(CollectorSet::of([CollectorKind::INTERNAL_CALLS]));
        let out = t.render_answers(&answers);
        prop_assert!(out.up, "{:?}", out.error);
        let parsed = parse_text(&out.text);

        let want = expected(&calls);
        let distinct: BTreeSet<&str> = calls
            .iter()
            .filter(|c| c.listed.iter().any(|l| *l))
            .map(|c| c.callid.as_str())
            .collect();
        let members_given: BTreeSet<(&str, &str)> = calls
            .iter()
            .filter(|c| c.listed.iter().any(|l| *l))
            .flat_map(|c| c.members.iter().map(|m| (c.callid.as_str(), m.channel.as_str())))
            .collect();
        let sum = |prefix: &str| -> f64 {
            parsed.iter().filter(|(k, _)| k.starts_with(prefix)).map(|(_, v)| v).sum()
        };
        prop_assert_eq!(sum("yeastar_active_calls{"), distinct.len() as f64);
        prop_assert_eq!(sum("yeastar_call_members{"), members_given.len() as f64);
        for (series, value) in &want {
            prop_assert_eq!(parsed.get(series), Some(value), "{}", series);
        }
        // Nothing else of these families.
        for (series, _) in parsed.iter().filter(|(k, _)| {
            ["yeastar_active_calls{", "yeastar_call_members{", "yeastar_trunk_active_calls{", "yeastar_callpath_active_calls{"]
                .iter()
                .any(|p| k.starts_with(p))
        }) {
            prop_assert!(want.contains_key(series), "unexpected {}", series);
        }
        prop_assert_eq!(parsed.get("yeastar_up"), Some(&1.0));
    }
}
