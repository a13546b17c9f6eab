//! Issue 25: the documentation stays true. The README stays a guide (at most 4,500 words); every
//! flag table is the binary's own `--help` (the same flags, no more, no fewer, and the same
//! defaults); every relative link and anchor in the Markdown files resolves; the version the README
//! spells out is the crate's.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const README_MAX_WORDS: usize = 4_500;

fn read(rel: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Words as `wc -w` counts them: runs of non-whitespace.
fn words(text: &str) -> usize {
    text.split_whitespace().count()
}

#[test]
fn the_readme_has_at_most_4500_words() {
    let n = words(&read("README.md"));
    assert!(
        n <= README_MAX_WORDS,
        "README.md has {n} words (at most {README_MAX_WORDS}): move reference material to docs/"
    );
}

#[test]
fn words_are_counted_as_wc_does() {
    assert_eq!(words("one two\tthree\n\nfour  five — `six`|\n"), 7);
    assert_eq!(words("   \n"), 0);
}

/// A flag of `--help`: its long name and its `[default: …]`, if any.
type Help = BTreeMap<String, Option<String>>;

/// The long flags of a clap help text, each with its default.
fn parse_help(text: &str) -> Help {
    let mut out = Help::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let indent = line.len() - line.trim_start().len();
        let trimmed = line.trim_start();
        if trimmed.starts_with('-') && indent <= 6 {
            let name = trimmed
                .split([' ', ','])
                .find(|t| t.starts_with("--"))
                .map(|t| t.split(['[', '=', '<']).next().unwrap().to_string());
            if let Some(name) = &name {
                out.insert(name.clone(), None);
            }
            current = name;
        } else if !line.starts_with(' ') {
            current = None; // a section heading ("Options:", "Commands:") or the usage line
        }
        if let (Some(flag), Some(at)) = (&current, line.find("[default: ")) {
            let rest = &line[at + "[default: ".len()..];
            let value = rest[..rest.find(']').expect("a closed [default: …]")].to_string();
            out.insert(flag.clone(), Some(value));
        }
    }
    out
}

#[test]
fn help_is_parsed_into_flags_and_defaults() {
    let text = "Usage: x [OPTIONS]\n\nCommands:\n  simulate  Run it\n\nOptions:\n      --web.listen-address <LISTEN_ADDRESS>\n          Address [env: X=] [default: :11088]\n      --collector.trunks[=<BOOL>]\n          Enable [possible values: true, false]\n      --cost <COST>  bcrypt cost [default: 10]\n  -h, --help\n          Print help\n";
    let got = parse_help(text);
    let want: Help = [
        ("--web.listen-address", Some(":11088")),
        ("--collector.trunks", None),
        ("--cost", Some("10")),
        ("--help", None),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
    .collect();
    assert_eq!(got, want);
}

fn help_of(args: &[&str]) -> Help {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_yeastar-exporter"))
        .args(args)
        .env_clear()
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?}: {out:?}");
    let help = parse_help(&String::from_utf8(out.stdout).unwrap());
    assert!(help.len() >= 2, "{args:?} printed {help:?}");
    help
}

/// A documented row: the flags its first cell names (`--collector.<name>` is a pattern) and its
/// default cell.
struct Row {
    flags: Vec<String>,
    default: String,
    line: usize,
}

/// Table cells, split on `|` outside backticks (a code span may hold a `|`).
fn cells(line: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut in_code = false;
    for c in line.trim().trim_matches('|').chars() {
        match c {
            '`' => {
                in_code = !in_code;
                out.last_mut().unwrap().push(c);
            }
            '|' if !in_code => out.push(String::new()),
            c => out.last_mut().unwrap().push(c),
        }
    }
    out.into_iter().map(|c| c.trim().to_string()).collect()
}

/// Every table of `text` whose header's first cell is `header`, its rows flattened.
fn flag_tables(text: &str, header: &str) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut in_table = false;
    for (i, line) in text.lines().enumerate() {
        if !line.starts_with('|') {
            in_table = false;
            continue;
        }
        let c = cells(line);
        if c[0] == header {
            in_table = true;
            continue;
        }
        if !in_table || c[0].starts_with("---") {
            continue;
        }
        let flags: Vec<String> = c[0]
            .split('`')
            .skip(1)
            .step_by(2)
            .filter(|t| t.starts_with("--"))
            .map(str::to_string)
            .collect();
        assert!(!flags.is_empty(), "line {}: no flag in {:?}", i + 1, c[0]);
        rows.push(Row {
            flags,
            default: c.get(1).cloned().unwrap_or_default(),
            line: i + 1,
        });
    }
    rows
}

/// Problems of the tables titled `header` in `file` against `help`. `exact`: every flag of `help`
/// must be documented; otherwise the tables may list a few.
fn check_tables(file: &str, header: &str, help: &Help, exact: bool) -> Vec<String> {
    let rows = flag_tables(&read(file), header);
    let mut problems = Vec::new();
    if rows.is_empty() {
        problems.push(format!("{file}: no table headed `{header}`"));
        return problems;
    }
    let mut documented = BTreeSet::new();
    for row in &rows {
        for flag in &row.flags {
            if let Some(at) = flag.find("<name>") {
                let prefix = &flag[..at];
                let covered: Vec<&String> = help.keys().filter(|f| f.starts_with(prefix)).collect();
                if covered.is_empty() {
                    problems.push(format!(
                        "{file}:{}: {flag} matches no flag of --help",
                        row.line
                    ));
                }
                documented.extend(covered.into_iter().cloned());
                continue;
            }
            if !documented.insert(flag.clone()) {
                problems.push(format!("{file}:{}: {flag} documented twice", row.line));
            }
            match help.get(flag) {
                None => problems.push(format!(
                    "{file}:{}: {flag} is documented but not in --help (extra)",
                    row.line
                )),
                Some(Some(default)) if row.default != format!("`{default}`") => {
                    problems.push(format!(
                        "{file}:{}: {flag} default is `{default}` in --help, {:?} here",
                        row.line, row.default
                    ))
                }
                Some(None) if row.flags.len() == 1 && !["—", "off"].contains(&&*row.default) => {
                    problems.push(format!(
                        "{file}:{}: {flag} has no default in --help: write — or off, not {:?}",
                        row.line, row.default
                    ))
                }
                Some(_) => {}
            }
        }
    }
    if exact {
        for flag in help.keys().filter(|f| !documented.contains(*f)) {
            problems.push(format!(
                "{file}: {flag} is in --help but has no row under `{header}` (missing)"
            ));
        }
    }
    problems
}

#[test]
fn the_flag_tables_are_the_help() {
    let main = help_of(&["--help"]);
    let simulate = help_of(&["simulate", "--help"]);
    let hash = help_of(&["hash-password", "--help"]);
    let mut problems = Vec::new();
    problems.extend(check_tables("docs/configuration.md", "flag", &main, true));
    problems.extend(check_tables("README.md", "flag", &main, false));
    problems.extend(check_tables(
        "docs/configuration.md",
        "`simulate` flag",
        &simulate,
        true,
    ));
    problems.extend(check_tables(
        "docs/configuration.md",
        "`hash-password` flag",
        &hash,
        true,
    ));
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn a_table_check_names_missing_and_extra_flags_and_wrong_defaults() {
    let dir = std::env::temp_dir().join(format!("docs-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("t.md");
    std::fs::write(
        &file,
        "| flag | default | meaning |\n| --- | --- | --- |\n| `--a` | `1` | a |\n| `--gone` | — | x |\n| `--c` | `5` | c |\n| `--collector.<name>` | on | p |\n",
    )
    .unwrap();
    let help: Help = [
        ("--a", Some("1")),
        ("--b", None),
        ("--c", Some("6")),
        ("--collector.x", None),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
    .collect();
    let rel = file.to_str().unwrap();
    let got = check_tables(rel, "flag", &help, true);
    assert_eq!(
        got,
        [
            format!("{rel}:4: --gone is documented but not in --help (extra)"),
            format!("{rel}:5: --c default is `6` in --help, \"`5`\" here"),
            format!("{rel}: --b is in --help but has no row under `flag` (missing)"),
        ]
    );
    assert_eq!(check_tables(rel, "flag", &help, false).len(), 2);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The Markdown files whose links are checked.
fn markdown_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = ["README.md", "CHANGELOG.md", "CONTRIBUTING.md"]
        .iter()
        .map(|f| Path::new(ROOT).join(f))
        .collect();
    let mut docs: Vec<PathBuf> = std::fs::read_dir(Path::new(ROOT).join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// Lines outside code fences, with code spans removed.
fn prose(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut fenced = false;
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let kept: String = line
            .split('`')
            .enumerate()
            .filter(|(n, _)| n % 2 == 0)
            .map(|(_, s)| s)
            .collect();
        out.push((i + 1, kept));
    }
    out
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces as `-`.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = BTreeSet::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced || !line.starts_with('#') {
            continue;
        }
        let base = slug(line.trim_start_matches('#'));
        let n = seen.entry(base.clone()).or_default();
        out.insert(if *n == 0 {
            base.clone()
        } else {
            format!("{base}-{n}")
        });
        *n += 1;
    }
    out
}

#[test]
fn anchors_are_githubs() {
    assert_eq!(
        slug(" Many PBXes: `--config.file` and `/probe`"),
        "many-pbxes---configfile-and-probe"
    );
    assert_eq!(slug(" [0.2.0] - 2026-11-25"), "020---2026-11-25");
    assert_eq!(
        slug(" Event reports (`cargo bench --bench events`)"),
        "event-reports-cargo-bench---bench-events"
    );
    let a = anchors("# A\n```\n# not a heading\n```\n## A\n## b c\n");
    assert_eq!(
        a,
        ["a", "a-1", "b-c"].map(String::from).into_iter().collect()
    );
}

#[test]
fn every_relative_link_resolves() {
    let mut problems = Vec::new();
    for file in markdown_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        let name = file.strip_prefix(ROOT).unwrap().display().to_string();
        let dir = file.parent().unwrap();
        for (line, kept) in prose(&text) {
            for piece in kept.split("](").skip(1) {
                let Some(end) = piece.find(')') else { continue };
                let target = &piece[..end];
                if target.contains("://") || target.starts_with("mailto:") {
                    continue;
                }
                let (path, anchor) = target.split_once('#').unwrap_or((target, ""));
                let resolved = if path.is_empty() {
                    file.clone()
                } else {
                    dir.join(path)
                };
                if !resolved.exists() {
                    problems.push(format!("{name}:{line}: {target}: no such file"));
                    continue;
                }
                if !anchor.is_empty() {
                    let doc = std::fs::read_to_string(&resolved).unwrap();
                    if !anchors(&doc).contains(anchor) {
                        problems.push(format!("{name}:{line}: {target}: no such heading"));
                    }
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_readme_spells_the_crates_version() {
    let readme = read("README.md");
    let version = env!("CARGO_PKG_VERSION");
    let mut seen = 0;
    for (marker, end) in [
        ("yeastar-exporter_", "-1_amd64.deb"),
        ("VERSION=", " "),
        ("version=", "\n"),
    ] {
        for piece in readme.split(marker).skip(1) {
            // A log line's `version=` may be followed by other fields.
            let at = match marker {
                "version=" => piece.find(char::is_whitespace),
                _ => piece.find(end),
            };
            let Some(at) = at else { continue };
            let got = &piece[..at];
            if got.starts_with(|c: char| c.is_ascii_digit()) {
                assert_eq!(got, version, "README.md: {marker}{got}");
                seen += 1;
            }
        }
    }
    assert!(seen >= 3, "README.md spells the version {seen} times");
}
