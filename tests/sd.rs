//! Issue 25: `GET /sd` lists the configured PBXes in Prometheus' HTTP service-discovery format
//! (the PBX list lives in the exporter's config alone), behind the same guard as `/probe`, and
//! carries no secret.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Parser;
use common::*;
use yeastar_exporter::config::{Cli, ExporterFlags, TargetDefaults, parse_file};
use yeastar_exporter::exporter::{App, Loader};
use yeastar_exporter::support::clock::ManualClock;
use yeastar_exporter::support::secret::Secret;

const PBX_PASSWORD: &str = "Pbx-Pa55word-7q";
const TOKEN: &str = "static-token-9f8e7d";

fn flags(args: &[&str]) -> ExporterFlags {
    let mut v = vec!["yeastar-exporter", "--web.listen-address", "127.0.0.1:0"];
    v.extend_from_slice(args);
    Cli::try_parse_from(v).unwrap().exporter
}

/// A config file in `dir` with a password module and a token module, and `targets` (YAML lines
/// under `targets:`).
fn write_config(dir: &Path, targets: &str) -> PathBuf {
    std::fs::write(dir.join("password"), format!("{PBX_PASSWORD}\n")).unwrap();
    std::fs::write(dir.join("token"), format!("{TOKEN}\n")).unwrap();
    let text = format!(
        "auth_modules:\n  main:\n    username: sd-api-user\n    password_file: {dir}/password\n  tok:\n    token_file: {dir}/token\ndefaults:\n  auth: main\n  collectors: [calls]\ntargets:\n{targets}",
        dir = dir.display()
    );
    let path = dir.join("config.yml");
    std::fs::write(&path, text).unwrap();
    path
}

async fn start_with_file(path: &Path, extra: &[&str]) -> Running {
    let mut args = vec!["--config.file", path.to_str().unwrap()];
    args.extend_from_slice(extra);
    let f = flags(&args);
    let cfg = f.load(None).unwrap();
    let loader: Loader = Arc::new(move || f.load(None));
    let app = App::with_loader(cfg, ManualClock::new(1_700_000_100), Some(loader)).unwrap();
    Running::start_app(app).await
}

/// GET `path` on `r`: status, content type, body.
async fn get(r: &Running, path: &str) -> (u16, String, String) {
    let resp = reqwest::get(format!("{}{path}", r.url)).await.unwrap();
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, ct, resp.text().await.unwrap())
}

fn group(name: &str, labels: &[(&str, &str)]) -> String {
    let labels: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("\"__meta_yeastar_{k}\":\"{v}\""))
        .collect();
    format!(
        "{{\"targets\":[\"{name}\"],\"labels\":{{{}}}}}",
        labels.join(",")
    )
}

#[tokio::test]
async fn sd_lists_each_configured_pbx_once_and_follows_reloads() {
    let hq = FakePbx::start().await;
    let dir = tempdir("sd");
    let path = write_config(
        &dir,
        &format!(
            "  hq:\n    url: {}\n    events: true\n  branch-1:\n    url: https://PBX-1.Example.net\n    auth: tok\n    collectors: [calls, trunks, queues]\n    insecure_skip_verify: true\n",
            hq.url()
        ),
    );
    let r = start_with_file(&path, &[]).await;
    let (status, ct, body) = get(&r, "/sd").await;
    assert_eq!((status, ct.as_str()), (200, "application/json"));
    let want = format!(
        "[{},{}]\n",
        group(
            "branch-1",
            &[
                ("auth", "token"),
                ("auth_module", "tok"),
                ("collectors", "calls,trunks,queues"),
                ("events", "off"),
                ("pbx_url", "https://pbx-1.example.net:443"),
                ("target", "branch-1"),
            ]
        ),
        group(
            "hq",
            &[
                ("auth", "credentials"),
                ("auth_module", "main"),
                ("collectors", "calls"),
                ("events", "http"),
                ("pbx_url", &hq.url()),
                ("target", "hq"),
            ]
        ),
    );
    assert_eq!(body, want);
    // It is JSON as Prometheus reads it: a list of groups with targets and string labels.
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2);
    // Each listed name is one /probe takes.
    for name in ["hq", "branch-1"] {
        assert!(r.app.targets().find(name).is_some(), "{name}");
    }
    // Nothing about the PBX's credentials: no username, password, its MD5, token or file path.
    let md5 = Secret::new(PBX_PASSWORD).md5_hex();
    for secret in [
        PBX_PASSWORD,
        md5.expose(),
        TOKEN,
        "sd-api-user",
        dir.to_str().unwrap(),
    ] {
        assert!(!body.contains(secret), "{secret} in {body}");
    }
    // Listing the targets asks no PBX anything.
    assert_eq!(hq.keys(), Vec::<String>::new());
    // HEAD answers like GET without the body; other methods are refused.
    let http = reqwest::Client::new();
    let head = http.head(format!("{}/sd", r.url)).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-type"], "application/json");
    let post = http.post(format!("{}/sd", r.url)).send().await.unwrap();
    assert_eq!(post.status(), 405);
    assert_eq!(post.headers()["allow"], "GET, HEAD");

    // A reload is the only way the list changes: branch-1 goes, branch-2 comes.
    write_config(
        &dir,
        "  hq:\n    url: http://10.0.0.5\n  branch-2:\n    url: http://[FD00::7]:8088\n",
    );
    let reload = http
        .post(format!("{}/-/reload", r.url))
        .send()
        .await
        .unwrap();
    assert_eq!(reload.status(), 200);
    let (_, _, body) = get(&r, "/sd").await;
    let common = [
        ("auth", "credentials"),
        ("auth_module", "main"),
        ("collectors", "calls"),
        ("events", "off"),
    ];
    let with = |url: &'static str, name: &'static str| {
        let mut l = common.to_vec();
        l.extend([("pbx_url", url), ("target", name)]);
        l
    };
    assert_eq!(
        body,
        format!(
            "[{},{}]\n",
            group("branch-2", &with("http://[fd00::7]:8088", "branch-2")),
            group("hq", &with("http://10.0.0.5:80", "hq")),
        )
    );
    // The landing page links it.
    let (_, _, page) = get(&r, "/").await;
    assert!(page.contains("<a href=\"/sd\">"), "{page}");
    r.stop().await;
}

#[tokio::test]
async fn sd_in_single_pbx_mode_lists_the_default_target() {
    let pbx = FakePbx::start().await;
    let r = Running::start(
        config(&pbx.url(), &["--no-collector.device"]),
        ManualClock::new(1_700_000_000),
    )
    .await;
    let (status, ct, body) = get(&r, "/sd").await;
    assert_eq!((status, ct.as_str()), (200, "application/json"));
    assert_eq!(
        body,
        format!(
            "[{}]\n",
            group(
                "default",
                &[
                    ("auth", "credentials"),
                    ("collectors", "calls,internal_calls,trunks,extensions"),
                    ("events", "off"),
                    ("pbx_url", &pbx.url()),
                    ("target", "default"),
                ]
            )
        )
    );
    assert!(!body.contains(PASSWORD_MD5) && !body.contains(USERNAME));
    r.stop().await;
}

#[tokio::test]
async fn sd_is_behind_basic_auth_and_the_rate_limit_like_probe() {
    let pbx = FakePbx::start().await;
    let dir = tempdir("sd-web");
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    let web = dir.join("web.yml");
    std::fs::write(
        &web,
        format!(
            "basic_auth_users:\n  prometheus: {hash}\nrate_limit:\n  interval: 1h\n  burst: 3\n"
        ),
    )
    .unwrap();
    let r = Running::start(
        config(&pbx.url(), &["--web.config.file", web.to_str().unwrap()]),
        ManualClock::new(1_700_000_000),
    )
    .await;
    let http = reqwest::Client::new();
    let url = format!("{}/sd", r.url);
    let refused = http.get(&url).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    assert_eq!(refused.headers()["www-authenticate"], "Basic");
    assert_eq!(refused.text().await.unwrap(), "Unauthorized\n");
    let wrong = http
        .get(&url)
        .basic_auth("prometheus", Some("guess"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let ok = http
        .get(&url)
        .basic_auth("prometheus", Some("s3cret"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert!(
        ok.text()
            .await
            .unwrap()
            .starts_with("[{\"targets\":[\"default\"]")
    );
    // The burst of 3 is spent: the fourth request is refused before its credentials are read.
    let limited = http
        .get(&url)
        .basic_auth("prometheus", Some("s3cret"))
        .send()
        .await
        .unwrap();
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.text().await.unwrap(), "Too Many Requests\n");
    r.stop().await;
}

/// TCP events and the token mode's labels, from the config file as parsed.
#[test]
fn sd_labels_name_the_event_method_and_auth_kind() {
    let dir = tempdir("sd-doc");
    let path = write_config(
        &dir,
        "  c:\n    url: http://10.0.0.3\n    events: tcp\n  t:\n    url: https://10.0.0.4:8088\n    auth: tok\n",
    );
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
    let text = std::fs::read_to_string(&path).unwrap();
    let targets = parse_file(&text, "cfg.yml", &base).unwrap();
    let body = yeastar_exporter::exporter::sd::document(&targets);
    let body = std::str::from_utf8(&body).unwrap();
    assert_eq!(
        body,
        format!(
            "[{},{}]\n",
            group(
                "c",
                &[
                    ("auth", "credentials"),
                    ("auth_module", "main"),
                    ("collectors", "calls"),
                    ("events", "tcp"),
                    ("pbx_url", "http://10.0.0.3:80"),
                    ("target", "c"),
                ]
            ),
            group(
                "t",
                &[
                    ("auth", "token"),
                    ("auth_module", "tok"),
                    ("collectors", "calls"),
                    ("events", "off"),
                    ("pbx_url", "https://10.0.0.4:8088"),
                    ("target", "t"),
                ]
            ),
        )
    );
    // The TCP login carries the clear password: the document does not.
    assert!(!body.contains(PBX_PASSWORD) && !body.contains(TOKEN));
}

/// docs/configuration.md's example is what `/sd` serves for deploy/config/three-pbx.yml.
#[test]
fn the_documented_example_is_what_sd_serves_for_the_three_pbx_config() {
    let root = env!("CARGO_MANIFEST_DIR");
    let dir = tempdir("sd-docs");
    for f in ["password", "branch-2.token", "hq-ca.pem"] {
        std::fs::write(dir.join(f), "x\n").unwrap();
    }
    let text = std::fs::read_to_string(format!("{root}/deploy/config/three-pbx.yml"))
        .unwrap()
        .replace("/etc/yeastar-exporter/", &format!("{}/", dir.display()));
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
    let served: serde_json::Value =
        serde_json::from_slice(&yeastar_exporter::exporter::sd::document(
            &parse_file(&text, "three-pbx.yml", &base).unwrap(),
        ))
        .unwrap();
    let docs = std::fs::read_to_string(format!("{root}/docs/configuration.md")).unwrap();
    let example = docs
        .split("### `/sd`")
        .nth(1)
        .and_then(|s| s.split("```json\n").nth(1))
        .and_then(|s| s.split("```").next())
        .expect("a json block under ### `/sd`");
    let documented: serde_json::Value = serde_json::from_str(example).unwrap();
    assert_eq!(documented, served, "{served}");
}
