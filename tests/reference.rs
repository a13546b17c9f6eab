//! Issue 17: the metrics reference (docs/metrics.md) is the exporter's real output — every family,
//! its type, its label names, and the label values the reference lists — in both directions.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use yeastar_exporter::sim::{SimConfig, Simulator};
use yeastar_exporter::support::clock::ManualClock;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// One row of the reference.
#[derive(Debug)]
struct Documented {
    kind: String,
    labels: BTreeSet<String>,
    /// Label → the values the reference lists for it (`label` = a, b, c), when it lists them.
    values: BTreeMap<String, BTreeSet<String>>,
}

/// Table cells, `\|` kept as a literal bar.
fn cells(row: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = row.trim().trim_matches('|').chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                chars.next();
                out.last_mut().unwrap().push('|');
            }
            '|' => out.push(String::new()),
            c => out.last_mut().unwrap().push(c),
        }
    }
    out.into_iter().map(|c| c.trim().to_string()).collect()
}

/// The backticked words of `text`.
fn ticked(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

fn reference() -> BTreeMap<String, Documented> {
    // Every five-column table of the file is a reference table (the collector table has four).
    let section = std::fs::read_to_string(format!("{ROOT}/docs/metrics.md")).unwrap();
    assert!(
        section.contains("\n## PBX metrics\n") && section.contains("\n## Exporter metrics\n"),
        "docs/metrics.md keeps its PBX and exporter sections"
    );
    let mut out = BTreeMap::new();
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let c = cells(line);
        if c.len() != 5 {
            continue; // not a reference table
        }
        let name = ticked(&c[0]).remove(0);
        if name.starts_with("process_") {
            continue;
        }
        let mut labels = BTreeSet::new();
        let mut values = BTreeMap::new();
        for part in c[2].split(';') {
            let names = ticked(part);
            labels.extend(names.iter().cloned());
            if let (Some(last), Some((_, list))) = (names.last(), part.split_once(" = ")) {
                values.insert(
                    last.clone(),
                    list.split(',').map(|v| v.trim().to_string()).collect(),
                );
            }
        }
        let prev = out.insert(
            name.clone(),
            Documented {
                kind: c[1].clone(),
                labels,
                values,
            },
        );
        assert!(prev.is_none(), "{name} documented twice");
    }
    out
}

/// Family → (type, label names, label → values seen) in an exposition text.
type Family = (String, BTreeSet<String>, BTreeMap<String, BTreeSet<String>>);

fn output(text: &str) -> BTreeMap<String, Family> {
    let mut out: BTreeMap<String, Family> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            out.insert(name.into(), (kind.into(), BTreeSet::new(), BTreeMap::new()));
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let series = line.rsplit_once(' ').unwrap().0;
        let (metric, labels) = series.split_once('{').unwrap_or((series, ""));
        let family = out
            .keys()
            .filter(|f| metric == f.as_str() || metric.starts_with(&format!("{f}_")))
            .max_by_key(|f| f.len())
            .cloned()
            .unwrap_or_else(|| panic!("sample before its TYPE: {line}"));
        let entry = out.get_mut(&family).unwrap();
        for pair in labels
            .trim_end_matches('}')
            .split("\",")
            .filter(|p| !p.is_empty())
        {
            let (k, v) = pair.split_once("=\"").unwrap();
            if k == "le" || k == "quantile" {
                continue;
            }
            entry.1.insert(k.into());
            entry
                .2
                .entry(k.into())
                .or_default()
                .insert(v.trim_end_matches('"').into());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_reference_is_the_output() {
    // Events on (over TCP, so that the connection gauge is there too), and six simulated hours
    // of reports, so every family has series.
    let clock = ManualClock::new(1_700_000_000);
    let sim = Simulator::start(SimConfig::traffic(3, 10), clock.clone(), "127.0.0.1:0")
        .await
        .unwrap();
    let cfg = tcp_events_config(&sim, &["--collector.queues"]).await;
    let exporter = Running::start(cfg, clock.clone()).await;
    for _ in 0..200 {
        if sim.sim.event_delivery().tcp_logins[0] == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    exporter.scrape().await;
    for _ in 0..36 {
        clock.advance_secs(600);
        exporter.scrape().await;
        sim.sim.pump_events().await;
    }
    // Until every report written has been read.
    let text = scrape_until_received(&exporter, sim.sim.event_delivery().tcp_delivered).await;
    let got: BTreeMap<String, Family> = output(&text)
        .into_iter()
        .filter(|(name, _)| !name.starts_with("process_"))
        .collect();
    let doc = reference();
    assert!(
        doc.len() >= 25,
        "the reference lists {} families",
        doc.len()
    );

    let mut problems = Vec::new();
    for name in doc.keys().filter(|n| !got.contains_key(*n)) {
        problems.push(format!("{name}: in docs/metrics.md, not in the output"));
    }
    for (name, (kind, labels, values)) in &got {
        let Some(d) = doc.get(name) else {
            problems.push(format!("{name}: in the output, not in docs/metrics.md"));
            continue;
        };
        if &d.kind != kind {
            problems.push(format!(
                "{name}: docs/metrics.md says {}, output {kind}",
                d.kind
            ));
        }
        if &d.labels != labels {
            problems.push(format!(
                "{name}: docs/metrics.md labels {:?}, output {labels:?}",
                d.labels
            ));
        }
        for (label, listed) in &d.values {
            let seen = values.get(label).cloned().unwrap_or_default();
            let undocumented: Vec<_> = seen.difference(listed).collect();
            if !undocumented.is_empty() {
                problems.push(format!(
                    "{name}: {label} values {undocumented:?} are not in docs/metrics.md"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // Families whose every listed combination is always present: the listed values exactly.
    for (name, label) in [
        ("yeastar_call_members", "status"),
        ("yeastar_call_members", "member"),
        ("yeastar_active_calls", "direction"),
        ("yeastar_extensions", "status"),
        ("yeastar_member_status_max_age_seconds", "status"),
        ("yeastar_collector_success", "collector"),
        ("yeastar_calls_completed_total", "direction"),
        ("yeastar_calls_completed_total", "outcome"),
        ("yeastar_calls_failed_total", "reason"),
        ("yeastar_events_received_total", "type"),
        ("yeastar_events_refused_total", "reason"),
        ("yeastar_exporter_events_refused_total", "reason"),
    ] {
        let seen = &got[name].2[label];
        assert_eq!(seen, &doc[name].values[label], "{name} {label}");
    }
    // One case convention: every label value the exporter chooses is lower case.
    for (name, (_, _, values)) in &got {
        for (label, vs) in values {
            if matches!(
                label.as_str(),
                "trunk" | "queue" | "callpath" | "model" | "firmware_version" | "hardware_version"
            ) || name == "yeastar_exporter_build_info"
                || label == "endpoint"
            {
                continue; // names the PBX or the build chose
            }
            for v in vs {
                assert_eq!(v, &v.to_lowercase(), "{name}{{{label}={v:?}}}");
            }
        }
    }
    exporter.stop().await;
}
