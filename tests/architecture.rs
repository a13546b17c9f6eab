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
    for layer in ["server", "intake"] {
        assert!(
            !graph["collector"].contains(layer),
            "collector knows {layer}"
        );
        // The fleet is told of its targets' changes through `exporter::Follower`: it names no
        // layer above it.
        assert!(!graph["exporter"].contains(layer), "exporter knows {layer}");
    }
    assert!(!graph["server"].contains("intake"), "server knows intake");
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

/// A module's path below `src/`: `src/pbx/s_series/queries.rs` → `pbx::s_series::queries`,
/// `src/pbx/s_series/mod.rs` → `pbx::s_series`.
fn module_path(root: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(root).unwrap();
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| {
            c.as_os_str()
                .to_str()
                .unwrap()
                .trim_end_matches(".rs")
                .to_string()
        })
        .collect();
    if parts
        .last()
        .is_some_and(|p| p == "mod" || p == "lib" || p == "main")
    {
        parts.pop();
    }
    parts
}

/// A file's code: comment lines left out, and nothing from its first `#[cfg(test)]` on (a test
/// may reach anywhere).
fn code_lines(text: &str) -> Vec<&str> {
    text.lines()
        .take_while(|l| !l.starts_with("#[cfg(test)]"))
        .map(str::trim_start)
        .filter(|l| !l.starts_with("//"))
        .collect()
}

/// The module paths `line` (in module `from`) names: `super::a::b`, `super::{a, b::c}`,
/// `crate::x::y`, `crate::x::{y, z}`, each resolved from the crate root.
fn references(from: &[String], line: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for (prefix, base) in [
        ("crate::", Vec::new()),
        ("super::", from[..from.len().saturating_sub(1)].to_vec()),
    ] {
        for (i, _) in line.match_indices(prefix) {
            if line[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let rest = &line[i + prefix.len()..];
            let path: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            let mut names: Vec<String> = path
                .split("::")
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
            let mut full = base.clone();
            full.append(&mut names);
            // A group: `super::{a, b::c}` names each of its items.
            let after = &rest[path.len()..];
            if let Some(group) = after.strip_prefix('{') {
                let group = group.split('}').next().unwrap_or("");
                for item in group.split(',') {
                    let first = item.trim().split("::").next().unwrap_or("").trim();
                    if !first.is_empty() && first != "self" {
                        let mut p = full.clone();
                        p.push(first.to_string());
                        out.push(p);
                    }
                }
            } else {
                out.push(full);
            }
        }
    }
    out
}

/// No cycles inside a folder either: within `pbx/`, `collector/`, `sim/`, … the files (and
/// sub-folders) a folder holds depend on each other one way. The folder's own `mod.rs` is left
/// out: it declares them all.
#[test]
fn no_cycles_inside_folders() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = Vec::new();
    files(&root, &mut all);
    let modules: Vec<(Vec<String>, std::path::PathBuf)> = all
        .iter()
        .map(|f| (module_path(&root, f), f.clone()))
        .collect();
    let folders: BTreeSet<Vec<String>> = all
        .iter()
        .filter(|f| f.file_name().is_some_and(|n| n == "mod.rs"))
        .map(|f| module_path(&root, f))
        .collect();
    let mut checked = 0;
    for folder in &folders {
        let children: BTreeSet<String> = modules
            .iter()
            .filter(|(m, _)| m.len() == folder.len() + 1 && m.starts_with(folder))
            .map(|(m, _)| m[folder.len()].clone())
            .collect();
        let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (m, file) in &modules {
            // Files below one of the folder's children count as that child.
            if m.len() <= folder.len() || !m.starts_with(folder) {
                continue;
            }
            let child = m[folder.len()].clone();
            let deps = graph.entry(child.clone()).or_default();
            let text = std::fs::read_to_string(file).unwrap();
            for line in code_lines(&text) {
                for r in references(m, line) {
                    if r.len() > folder.len()
                        && r.starts_with(folder)
                        && children.contains(&r[folder.len()])
                        && r[folder.len()] != child
                    {
                        deps.insert(r[folder.len()].clone());
                    }
                }
            }
        }
        let mut done = BTreeSet::new();
        for node in graph.keys() {
            if let Some(cycle) = find_cycle(&graph, node, &mut Vec::new(), &mut done) {
                panic!(
                    "cycle inside src/{}: {}\nedges: {graph:#?}",
                    folder.join("/"),
                    cycle.join(" → ")
                );
            }
        }
        checked += 1;
    }
    assert!(checked >= 4, "only {checked} folders found");
}

/// Collectors know no wire format: they ask the session's domain queries and read the model
/// (event reports too: `pbx::model::reports`, read by the target's family), so adding an API
/// family touches no collector. No endpoint, no family folder, no error number.
#[test]
fn collectors_name_no_endpoint_and_no_family() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/collector");
    let mut all = Vec::new();
    files(&root, &mut all);
    let endpoints = yeastar_exporter::pbx::ApiFamily::all_endpoints();
    assert!(endpoints.contains(&"call/query"));
    for f in all {
        let text = std::fs::read_to_string(&f).unwrap();
        for line in code_lines(&text) {
            let where_ = format!("{}: {line}", f.display());
            for e in &endpoints {
                assert!(
                    !line.contains(&format!("\"{e}\"")),
                    "endpoint {e} in {where_}"
                );
            }
            assert!(!line.contains("errno"), "an error number in {where_}");
            let family = line.contains("s_series");
            assert!(!family, "an API family in {where_}");
        }
    }
}
