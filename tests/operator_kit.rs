//! Issue 7: the deploy/ and grafana/ files parse and agree with each other.

use std::path::{Path, PathBuf};

use serde_json::Value;
use yeastar_exporter::config::{TargetDefaults, parse_file};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn yaml(path: &Path) -> Value {
    serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_yaml_and_json_file_parses() {
    let mut all = Vec::new();
    files(&Path::new(ROOT).join("deploy"), &mut all);
    files(&Path::new(ROOT).join("grafana"), &mut all);
    let mut parsed = 0;
    for p in &all {
        match p.extension().and_then(|e| e.to_str()) {
            Some("yml" | "yaml") => {
                let v = yaml(p);
                assert!(v.is_object(), "{}: not a mapping", p.display());
                parsed += 1;
            }
            Some("json") => {
                let text = std::fs::read_to_string(p).unwrap();
                serde_json::from_str::<Value>(&text)
                    .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                parsed += 1;
            }
            _ => {}
        }
    }
    assert_eq!(parsed, 25, "YAML and JSON files under deploy/ and grafana/");
}

#[test]
fn prometheusrule_carries_exactly_the_alert_rules() {
    let rules = yaml(&Path::new(ROOT).join("deploy/prometheus/alerts.yml"));
    let recording = yaml(&Path::new(ROOT).join("deploy/prometheus/recording.yml"));
    let pr = yaml(&Path::new(ROOT).join("deploy/kubernetes/prometheusrule.yml"));
    assert_eq!(pr["kind"], "PrometheusRule");
    let mut groups = rules["groups"].as_array().unwrap().clone();
    groups.extend(recording["groups"].as_array().unwrap().iter().cloned());
    assert_eq!(
        pr["spec"]["groups"],
        Value::Array(groups),
        "run scripts/gen_prometheusrule.sh"
    );
    let names: Vec<&str> = rules["groups"][0]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["alert"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "YeastarPBXUnreachable",
            "YeastarExporterDown",
            "YeastarLoginSuspended",
            "YeastarCallStuckRinging",
            "YeastarCallStuckOnHold",
            "YeastarRingingPileUp",
            "YeastarCallTooLong",
            "YeastarTrunkDown",
            "YeastarCollectorFailing"
        ]
    );
    for r in rules["groups"][0]["rules"].as_array().unwrap() {
        for a in ["summary", "description", "runbook"] {
            assert!(
                r["annotations"][a].as_str().is_some_and(|s| !s.is_empty()),
                "{} lacks {a}",
                r["alert"]
            );
        }
    }
}

#[test]
fn dashboard_is_importable_and_documented() {
    let text = std::fs::read_to_string(Path::new(ROOT).join("grafana/dashboards/yeastar-pbx.json"))
        .unwrap();
    let d: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(d["uid"], "yeastar-pbx");
    let vars: Vec<(&str, &str)> = d["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["name"].as_str().unwrap(), v["type"].as_str().unwrap()))
        .collect();
    assert_eq!(
        vars,
        [
            ("datasource", "datasource"),
            ("job", "query"),
            ("instance", "query")
        ]
    );
    let panels: Vec<&Value> = d["panels"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["type"] != "row")
        .collect();
    assert!(panels.len() >= 15);
    for p in &panels {
        assert!(
            p["description"].as_str().is_some_and(|s| s.len() > 20),
            "{} has no description",
            p["title"]
        );
        assert_eq!(p["datasource"]["uid"], "${datasource}");
        for t in p["targets"].as_array().unwrap() {
            let e = t["expr"].as_str().unwrap();
            assert!(e.contains("$job"), "{}: {e} ignores $job", p["title"]);
        }
    }
    let rows: Vec<&str> = d["panels"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["type"] == "row")
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    assert_eq!(
        rows,
        [
            "Health",
            "Calls now",
            "Trunks",
            "Call members",
            "Stuck calls",
            "Call paths",
            "Extensions and PBX",
            "Call accounting (PBX events)",
            "Queues",
            "Exporter"
        ]
    );
    // Counters and histogram buckets only inside rate() or increase(): a raw counter is a line
    // that only climbs (and drops at a restart).
    for p in &panels {
        for t in p["targets"].as_array().unwrap() {
            let e = t["expr"].as_str().unwrap();
            for (at, _) in e.match_indices('{') {
                let name_start = e[..at]
                    .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                    .map_or(0, |i| i + 1);
                let name = &e[name_start..at];
                if !(name.ends_with("_total") || name.ends_with("_bucket")) {
                    continue;
                }
                assert!(
                    enclosing_function(e, name_start)
                        .is_some_and(|f| f == "rate" || f == "increase"),
                    "{}: {name} is not in rate() or increase(): {e}",
                    p["title"]
                );
            }
        }
    }
    // The exporter row: scrapes, request errors and latency, logins, suspended PBXes, CPU and
    // memory, from the exporter's own series, per exporter.
    let exporter_row: Vec<&str> = panels
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap())
        .map(|t| t["expr"].as_str().unwrap())
        .filter(|e| e.contains("and on (exporter) group by (exporter) (yeastar_up{"))
        .collect();
    for series in [
        "up{",
        "yeastar_exporter_pbx_requests_total{",
        "yeastar_exporter_pbx_request_duration_seconds_bucket{",
        "yeastar_exporter_logins_total{",
        "yeastar_exporter_login_suspended_targets{",
        "process_cpu_seconds_total{",
        "process_resident_memory_bytes{",
    ] {
        assert!(
            exporter_row
                .iter()
                .any(|e| e.contains(&format!("({series}")) || e.contains(&format!(" {series}"))),
            "no exporter panel reads {series}"
        );
    }
    let ids: std::collections::HashSet<u64> = d["panels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_u64().unwrap())
        .collect();
    assert_eq!(
        ids.len(),
        d["panels"].as_array().unwrap().len(),
        "panel ids repeat"
    );
}

/// The name of the function whose parentheses enclose position `at` of `expr` (an aggregation's
/// `by (...)` clause skipped), if any.
fn enclosing_function(expr: &str, at: usize) -> Option<&str> {
    let mut depth = 0i32;
    for (i, c) in expr[..at].char_indices().rev() {
        match c {
            ')' => depth += 1,
            '(' if depth > 0 => depth -= 1,
            '(' => {
                let before = expr[..i].trim_end();
                let start = before
                    .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .map_or(0, |j| j + 1);
                return Some(&before[start..]);
            }
            _ => {}
        }
    }
    None
}

#[test]
fn enclosing_functions_are_found() {
    let e = "sum by (instance) (rate(a_total{x=\"y\"}[5m])) / sum(b_total{})";
    assert_eq!(
        enclosing_function(e, e.find("a_total").unwrap()),
        Some("rate")
    );
    assert_eq!(
        enclosing_function(e, e.find("b_total").unwrap()),
        Some("sum")
    );
    assert_eq!(enclosing_function("c_total", 0), None);
}

#[test]
fn example_config_files_are_valid() {
    let dir = std::env::temp_dir().join(format!("yeastar-kit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["password", "branch-2.token", "pbx-ca.pem", "hq-ca.pem"] {
        std::fs::write(dir.join(f), "x\n").unwrap();
    }
    let base = TargetDefaults {
        api: "s-series".into(),
        api_path: "/api/v2.0.0".into(),
        collectors: Default::default(),
        timeout: std::time::Duration::from_secs(5),
        max_concurrent_requests: 1,
        max_response_bytes: 16 << 20,
        login_backoff: std::time::Duration::from_secs(600),
        insecure_skip_verify: false,
        proxy_url: None,
        events: false,
        events_tcp: false,
        events_tcp_port: 8333,
        events_endpoint: Default::default(),
        events_source_addresses: Vec::new(),
    };
    for (file, names) in [
        ("deploy/config/yeastar-exporter.yml", vec!["office"]),
        (
            "deploy/config/three-pbx.yml",
            vec!["branch-1", "branch-2", "hq"],
        ),
    ] {
        let text = std::fs::read_to_string(Path::new(ROOT).join(file))
            .unwrap()
            .replace("/etc/yeastar-exporter/", &format!("{}/", dir.display()));
        let targets = parse_file(&text, file, &base).unwrap_or_else(|e| panic!("{file}: {e}"));
        let got: Vec<&str> = targets.iter().map(|t| t.client.target.as_str()).collect();
        assert_eq!(got, names, "{file}");
    }
    // The Kubernetes config (kustomize makes it a ConfigMap) with its mounted secret and CA, and
    // the Debian package's config with its systemd credential.
    let ca = dir.join("pbx-ca.pem");
    std::fs::copy(Path::new(ROOT).join("deploy/kubernetes/pbx-ca.pem"), &ca).unwrap();
    let text = std::fs::read_to_string(Path::new(ROOT).join("deploy/kubernetes/config.yml"))
        .unwrap()
        .replace(
            "/etc/yeastar-exporter/secret/",
            &format!("{}/", dir.display()),
        )
        .replace("/etc/yeastar-exporter/pbx-ca/ca.pem", ca.to_str().unwrap());
    let targets = parse_file(&text, "kubernetes", &base).unwrap();
    assert_eq!(targets.len(), 2);
    assert!(targets.iter().all(|t| t.client.url.starts_with("https://")));
}

/// The package's conffile names one password file for both readers: the unit's credential
/// (`$CREDENTIALS_DIRECTORY/password`, set by systemd) and, outside the unit, the file itself
/// (`sudo yeastar-exporter --config.check`). Both are the real binary's `--config.check`.
#[test]
fn the_package_config_reads_the_unit_credential_or_the_password_file_itself() {
    let dir = std::env::temp_dir().join(format!("yeastar-deb-{}", std::process::id()));
    let (etc, creds, empty) = (dir.join("etc"), dir.join("creds"), dir.join("empty"));
    for d in [&etc, &creds, &empty] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(etc.join("password"), "the-api-password\n").unwrap();
    std::fs::write(creds.join("password"), "the-api-password").unwrap();
    std::fs::copy(
        Path::new(ROOT).join("deploy/kubernetes/pbx-ca.pem"),
        etc.join("pbx-ca.pem"),
    )
    .unwrap();
    let unit =
        std::fs::read_to_string(Path::new(ROOT).join("deploy/debian/yeastar-exporter.service"))
            .unwrap();
    assert!(unit.contains("\nLoadCredential=password:/etc/yeastar-exporter/password\n"));
    let text = std::fs::read_to_string(Path::new(ROOT).join("deploy/debian/yeastar-exporter.yml"))
        .unwrap();
    assert!(
        text.contains("password_file: ${CREDENTIALS_DIRECTORY:-/etc/yeastar-exporter}/password\n")
    );
    let config = dir.join("yeastar-exporter.yml");
    std::fs::write(
        &config,
        text.replace("/etc/yeastar-exporter", etc.to_str().unwrap()),
    )
    .unwrap();
    let check = |credentials: Option<&Path>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_yeastar-exporter"));
        cmd.args(["--config.check", "--config.file", config.to_str().unwrap()])
            .env_remove("CREDENTIALS_DIRECTORY");
        if let Some(d) = credentials {
            cmd.env("CREDENTIALS_DIRECTORY", d);
        }
        let out = cmd.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // The package's example CA is a placeholder that lists no PBX: --config.check says so, as
    // the exporter warns at start (issue 25), and the configuration is still OK.
    let ok = format!(
        "warning: target office (pbx=https://192.168.5.150:8088): no certificate in {}/pbx-ca.pem lists 192.168.5.150 (it lists: example pbx ca - replace with your pbx certificate); the PBX is still trusted if it presents exactly one of these certificates (pinned), but not one merely signed by them\n\
         config OK: 1 target(s)\n",
        etc.display()
    );
    // An admin's check (no CREDENTIALS_DIRECTORY): the password file itself.
    assert_eq!(check(None), (Some(0), ok.clone(), String::new()));
    // The unit: its credentials directory, and only that.
    assert_eq!(check(Some(&creds)), (Some(0), ok, String::new()));
    let (code, _, stderr) = check(Some(&empty));
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains(&format!(
            "config invalid: auth_modules.main.password_file: cannot read {}/password",
            empty.display()
        )),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn systemd_unit_is_hardened_and_reloads_with_sighup() {
    let unit =
        std::fs::read_to_string(Path::new(ROOT).join("deploy/systemd/yeastar-exporter.service"))
            .unwrap();
    for line in [
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=\n",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "LoadCredential=password:/etc/yeastar-exporter/password\n",
        "--pbx.password-file=${CREDENTIALS_DIRECTORY}/password",
        "--pbx.state-dir=${STATE_DIRECTORY}",
        "StateDirectory=yeastar-exporter\n",
    ] {
        assert!(unit.contains(line), "unit lacks {line:?}");
    }
}

#[test]
fn compose_and_kubernetes_refer_to_what_exists() {
    let compose = yaml(&Path::new(ROOT).join("deploy/docker/compose.yml"));
    let base = Path::new(ROOT).join("deploy/docker");
    let mut mounts = 0;
    for (_, svc) in compose["services"].as_object().unwrap() {
        for v in svc["volumes"].as_array().into_iter().flatten() {
            let host = v.as_str().unwrap().split(':').next().unwrap();
            if !host.starts_with('.') {
                // A named volume: the login ledger's.
                assert_eq!(
                    v.as_str().unwrap(),
                    "exporter-state:/var/lib/yeastar-exporter"
                );
                assert!(
                    compose["volumes"].get(host).is_some(),
                    "undeclared volume {host}"
                );
                continue;
            }
            assert!(base.join(host).exists(), "compose mounts missing {host}");
            mounts += 1;
        }
    }
    assert_eq!(mounts, 5);
    let dep = yaml(&Path::new(ROOT).join("deploy/kubernetes/deployment.yml"));
    let c = &dep["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/-/healthy");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/-/ready");
    assert!(
        c["args"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "--pbx.state-dir=/var/lib/yeastar-exporter")
    );
    assert_eq!(
        dep["spec"]["template"]["spec"]["volumes"][0]["name"], "state",
        "the ledger's volume"
    );
    assert_eq!(
        dep["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"],
        true
    );
    let sc = yaml(&Path::new(ROOT).join("deploy/kubernetes/scrapeconfig.yml"));
    assert_eq!(sc["apiVersion"], "monitoring.coreos.com/v1alpha1");
    assert_eq!(sc["kind"], "ScrapeConfig");
    assert_eq!(sc["spec"]["metricsPath"], "/probe");
    let svc = yaml(&Path::new(ROOT).join("deploy/kubernetes/service.yml"));
    assert_eq!(
        sc["spec"]["httpSDConfigs"][0]["url"],
        format!(
            "http://{}.monitoring.svc:{}/sd",
            svc["metadata"]["name"].as_str().unwrap(),
            svc["spec"]["ports"][0]["port"]
        )
    );
}

/// Issue 25: the PBXes are listed in the exporter's config alone. Every Prometheus job that
/// probes takes its targets from an exporter's `/sd`, and neither the Prometheus examples nor the
/// Kubernetes objects name a PBX of the configs they go with.
#[test]
fn the_pbx_list_lives_in_the_exporters_config_alone() {
    let prom = Path::new(ROOT).join("deploy/prometheus");
    let mut probing = 0;
    for f in ["prometheus-multi-target.yml", "prometheus-sharded.yml"] {
        let cfg = yaml(&prom.join(f));
        for job in cfg["scrape_configs"].as_array().unwrap() {
            if job["metrics_path"] != "/probe" {
                continue;
            }
            probing += 1;
            let name = job["job_name"].as_str().unwrap();
            let keys: Vec<&str> = job
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .filter(|k| k.ends_with("_configs") && *k != "relabel_configs")
                .collect();
            assert_eq!(keys, ["http_sd_configs"], "{f} {name}");
            let url = job["http_sd_configs"][0]["url"].as_str().unwrap();
            assert!(url.ends_with(":11088/sd"), "{f} {name}: {url}");
        }
    }
    assert_eq!(probing, 2);
    let names = |file: &str| -> Vec<String> {
        let cfg = yaml(&Path::new(ROOT).join(file));
        cfg["targets"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    };
    // No value of the files that go with a config is one of its PBX names (comments may show one).
    let check = |files: &[PathBuf], pbxes: &[String]| {
        for p in files {
            let mut values = Vec::new();
            strings(&yaml(p), &mut values);
            for n in pbxes {
                assert!(
                    !values.contains(n),
                    "{} lists the PBX {n}: the exporter's /sd lists it",
                    p.display()
                );
            }
        }
    };
    let three = names("deploy/config/three-pbx.yml");
    assert_eq!(three, ["branch-1", "branch-2", "hq"]);
    check(
        &[
            prom.join("prometheus-multi-target.yml"),
            prom.join("prometheus-sharded.yml"),
        ],
        &three,
    );
    let k8s = names("deploy/kubernetes/config.yml");
    assert_eq!(k8s, ["branch-1", "hq"]);
    let mut kube = Vec::new();
    files(&Path::new(ROOT).join("deploy/kubernetes"), &mut kube);
    kube.retain(|p| {
        p.extension().is_some_and(|e| e == "yml" || e == "yaml") && !p.ends_with("config.yml")
    });
    assert_eq!(kube.len(), 8, "{kube:?}");
    check(&kube, &k8s);
}

/// Every string in `v` (keys and values), into `out`.
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|v| strings(v, out)),
        Value::Object(m) => {
            for (k, v) in m {
                out.push(k.clone());
                strings(v, out);
            }
        }
        _ => {}
    }
}

#[test]
fn version_prints_revision_date_rustc_and_platform() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_yeastar-exporter"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(
        lines[0].starts_with(&format!(
            "yeastar-exporter {} (revision: ",
            env!("CARGO_PKG_VERSION")
        )),
        "{text}"
    );
    for (line, key) in lines[1..]
        .iter()
        .zip(["build date:", "rustc version:", "platform:"])
    {
        assert!(line.trim_start().starts_with(key), "{text}");
        assert!(
            line.split(':').nth(1).is_some_and(|v| !v.trim().is_empty()),
            "{text}"
        );
    }
    let license = std::fs::read_to_string(Path::new(ROOT).join("LICENSE")).unwrap();
    assert!(license.contains("Apache License") && license.contains("Version 2.0, January 2004"));
}

/// The collector table (docs/metrics.md) is the registry's: every collector, in order, with its
/// default and the endpoints it calls.
#[test]
fn the_collector_table_matches_the_registry() {
    use yeastar_exporter::collector::CollectorKind;
    let readme = std::fs::read_to_string(Path::new(ROOT).join("docs/metrics.md")).unwrap();
    let section = readme
        .split("## Collectors")
        .nth(1)
        .unwrap()
        .split("\n## ")
        .next()
        .unwrap();
    let rows: Vec<Vec<String>> = section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| l.split('|').map(|c| c.trim().to_string()).collect())
        .collect();
    let kinds: Vec<CollectorKind> = CollectorKind::all().collect();
    assert_eq!(rows.len(), kinds.len(), "{section}");
    for (row, kind) in rows.iter().zip(kinds) {
        let spec = kind.spec();
        assert_eq!(row[1], format!("`{}`", spec.name));
        let default = if kind == CollectorKind::CALLS {
            "always on"
        } else if spec.on_by_default {
            "on"
        } else {
            "**off**"
        };
        assert_eq!(row[2], default, "{}", spec.name);
        for endpoint in spec.endpoints(yeastar_exporter::pbx::ApiFamily::default()) {
            assert!(
                row[3].contains(&format!("`{endpoint}`")),
                "{}: {endpoint}",
                spec.name
            );
        }
    }
}
