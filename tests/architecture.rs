//! The crate's modules depend on each other one way: no cycles between top-level modules. Reads
//! every `crate::module` reference in `src/` (comments left out) and fails naming the cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn top_module(root: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(root).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?.to_string();
    let name = first.trim_end_matches(".rs").to_string();
    (name != "lib" && name != "main").then_some(name)
}

fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn edges() -> BTreeMap<String, BTreeSet<String>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = Vec::new();
    files(&root, &mut all);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in all {
        let Some(from) = top_module(&root, &f) else {
            continue;
        };
        let text = std::fs::read_to_string(&f).unwrap();
        let deps = graph.entry(from.clone()).or_default();
        for line in text.lines() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            for (i, _) in code.match_indices("crate::") {
                // `yeastar_exporter::…` paths in doc tests and the like are not edges.
                if code[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_') {
                    continue;
                }
                let rest = &code[i + "crate::".len()..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() && name != from {
                    deps.insert(name);
                }
            }
        }
    }
    graph
}

fn find_cycle(
    graph: &BTreeMap<String, BTreeSet<String>>,
    node: &str,
    path: &mut Vec<String>,
    done: &mut BTreeSet<String>,
) -> Option<Vec<String>> {
    if let Some(i) = path.iter().position(|n| n == node) {
        let mut cycle = path[i..].to_vec();
        cycle.push(node.to_string());
        return Some(cycle);
    }
    if done.contains(node) {
        return None;
    }
    path.push(node.to_string());
    for next in graph.get(node).into_iter().flatten() {
        if let Some(c) = find_cycle(graph, next, path, done) {
            return Some(c);
        }
    }
    path.pop();
    done.insert(node.to_string());
    None
}

#[test]
fn no_cycles_between_modules() {
    let graph = edges();
    assert!(graph.contains_key("pbx") && graph.contains_key("collector"));
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        if let Some(cycle) = find_cycle(&graph, node, &mut Vec::new(), &mut done) {
            panic!("module cycle: {}\nedges: {graph:#?}", cycle.join(" → "));
        }
    }
    // The direction the house style names.
    assert!(!graph["pbx"].contains("collector"), "pbx knows collector");
    assert!(!graph["collector"].contains("http"), "collector knows http");
    assert!(
        !graph["pbx"].contains("metrics"),
        "pbx knows the exporter's metrics"
    );
}

/// `pbx` speaks the PBX's API and nothing of Prometheus: no metric names, no registry, no label
/// values of the contract (the collectors own those).
#[test]
fn pbx_knows_no_metrics() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/pbx");
    let mut all = Vec::new();
    files(&root, &mut all);
    for f in all {
        let text = std::fs::read_to_string(&f).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            for word in [
                "prometheus::",
                "\"yeastar_",
                "with_label_values",
                "MergedCalls",
            ] {
                assert!(
                    !code.contains(word),
                    "{}:{}: `{word}` in pbx",
                    f.display(),
                    n + 1
                );
            }
        }
    }
}
