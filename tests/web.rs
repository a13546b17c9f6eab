//! The exporter's own endpoint: `--web.config.file` (TLS, client certificates, basic auth, headers),
//! reloads, and the server's limits (header timeout, connection cap, bodies).

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use common::pki::{Ca, Leaf};
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use yeastar_exporter::config::Cli;
use yeastar_exporter::exporter::{App, Loader};
use yeastar_exporter::support::clock::ManualClock;

const EMPTY: &str = r#"{"Calls":[],"status":"Success"}"#;

async fn pbx() -> FakePbx {
    let pbx = FakePbx::start().await;
    pbx.json("call/query:inbound", EMPTY);
    pbx.json("call/query:outbound", EMPTY);
    pbx
}

/// A directory with `web.yml` (`yaml`) and a server certificate for 127.0.0.1 from `ca`, written as
/// `server.crt` / `server.key` (the file names them relative to its own directory).
fn web_dir(ca: &Ca, yaml: &str) -> (PathBuf, PathBuf) {
    let dir = tempdir("web");
    ca.leaf(&["127.0.0.1"]).write(&dir, "server");
    let file = dir.join("web.yml");
    std::fs::write(&file, yaml).unwrap();
    (dir, file)
}

async fn start(pbx: &FakePbx, web_file: &Path, extra: &[&str]) -> Running {
    let mut args = vec!["--web.config.file", web_file.to_str().unwrap()];
    args.extend_from_slice(extra);
    Running::start(config(&pbx.url(), &args), ManualClock::new(1_700_000_000)).await
}

fn https(r: &Running) -> String {
    r.url.replace("http://", "https://")
}

fn client(ca: &Ca, identity: Option<&Leaf>) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap());
    if let Some(leaf) = identity {
        b = b.identity(leaf.identity());
    }
    b.build().unwrap()
}

const TLS_ONLY: &str = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n";

#[tokio::test]
async fn tls_serves_scrapes_and_plain_http_to_the_tls_port_fails() {
    let pbx = pbx().await;
    let ca = Ca::new("exporter CA");
    let (_, file) = web_dir(&ca, TLS_ONLY);
    let r = start(&pbx, &file, &[]).await;

    let resp = client(&ca, None)
        .get(format!("{}/metrics", https(&r)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(must(&resp.text().await.unwrap(), "yeastar_up"), 1.0);

    let plain = reqwest::get(format!("{}/metrics", r.url)).await.unwrap();
    assert_eq!(plain.status(), 400);
    assert_eq!(
        plain.text().await.unwrap(),
        "Client sent an HTTP request to an HTTPS server.\n"
    );
    // A client that does not trust the certificate refuses it.
    assert!(
        reqwest::get(format!("{}/metrics", https(&r)))
            .await
            .is_err()
    );
    r.stop().await;
}

/// An exporter with TLS from `ca` that requires client certificates from `clients`, plus `extra`
/// lines of `tls_server_config`.
async fn mutual_tls(pbx: &FakePbx, ca: &Ca, clients: &Ca, extra: &str) -> Running {
    let (dir, file) = web_dir(
        ca,
        &format!(
            "{TLS_ONLY}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: clients.crt\n{extra}"
        ),
    );
    std::fs::write(dir.join("clients.crt"), clients.pem()).unwrap();
    start(pbx, &file, &[]).await
}

#[tokio::test]
async fn require_and_verify_client_cert_refuses_clients_without_a_trusted_certificate() {
    let pbx = pbx().await;
    let ca = Ca::new("exporter CA");
    let clients = Ca::new("scrapers CA");
    let r = mutual_tls(&pbx, &ca, &clients, "").await;
    let url = format!("{}/metrics", https(&r));

    assert!(client(&ca, None).get(&url).send().await.is_err());
    let stranger = Ca::new("someone else").leaf(&["prometheus"]);
    assert!(client(&ca, Some(&stranger)).get(&url).send().await.is_err());
    let scraper = clients.leaf(&["prometheus"]);
    let ok = client(&ca, Some(&scraper)).get(&url).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    r.stop().await;
}

#[tokio::test]
async fn client_allowed_sans_admits_only_the_listed_names() {
    let pbx = pbx().await;
    let ca = Ca::new("exporter CA");
    let clients = Ca::new("scrapers CA");
    let r = mutual_tls(
        &pbx,
        &ca,
        &clients,
        "  client_allowed_sans: [prometheus.example.com]\n",
    )
    .await;
    let url = format!("{}/-/healthy", https(&r));
    let allowed = clients.leaf(&["prometheus.example.com"]);
    let other = clients.leaf(&["grafana.example.com"]);
    assert_eq!(
        client(&ca, Some(&allowed))
            .get(&url)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert!(client(&ca, Some(&other)).get(&url).send().await.is_err());
    r.stop().await;
}

fn basic_auth_yaml() -> String {
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    format!(
        "basic_auth_users:\n  prometheus: {hash}\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\n    X-Content-Type-Options: nosniff\n"
    )
}

#[tokio::test]
async fn basic_auth_right_wrong_missing_and_the_health_endpoints() {
    let pbx = pbx().await;
    let dir = tempdir("web-auth");
    let file = dir.join("web.yml");
    std::fs::write(&file, basic_auth_yaml()).unwrap();
    let r = start(&pbx, &file, &[]).await;
    let http = reqwest::Client::new();
    let get = |path: &str, creds: Option<(&str, &str)>| {
        let mut req = http.get(format!("{}{path}", r.url));
        if let Some((u, p)) = creds {
            req = req.basic_auth(u, Some(p));
        }
        req.send()
    };

    let ok = get("/metrics", Some(("prometheus", "s3cret")))
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["x-frame-options"], "deny");
    assert_eq!(ok.headers()["x-content-type-options"], "nosniff");
    assert_eq!(must(&ok.text().await.unwrap(), "yeastar_up"), 1.0);

    for creds in [
        Some(("prometheus", "wrong")),
        Some(("nobody", "s3cret")),
        Some(("prometheus", "")),
        None,
    ] {
        let resp = get("/metrics", creds).await.unwrap();
        assert_eq!(resp.status(), 401, "{creds:?}");
        assert_eq!(resp.headers()["www-authenticate"], "Basic");
        assert_eq!(resp.headers()["x-frame-options"], "deny");
        assert_eq!(resp.text().await.unwrap(), "Unauthorized\n");
    }
    // Everything else needs credentials too, reload above all.
    for path in ["/", "/probe?target=default"] {
        assert_eq!(get(path, None).await.unwrap().status(), 401, "{path}");
    }
    let reload = http
        .post(format!("{}/-/reload", r.url))
        .send()
        .await
        .unwrap();
    assert_eq!(reload.status(), 401);
    // Liveness and readiness answer without credentials (probes of systemd, Kubernetes, load
    // balancers); they reveal nothing.
    for path in ["/-/healthy", "/-/ready"] {
        let resp = get(path, None).await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(resp.headers()["x-frame-options"], "deny");
    }
    // No PBX request was made for a refused scrape.
    assert_eq!(pbx.count("login"), 1);
    r.stop().await;
}

#[tokio::test]
async fn bcrypt_runs_once_per_user_and_password() {
    let pbx = pbx().await;
    let dir = tempdir("web-cache");
    let file = dir.join("web.yml");
    std::fs::write(&file, basic_auth_yaml()).unwrap();
    let r = start(&pbx, &file, &[]).await;
    let http = reqwest::Client::new();
    let status = |password: &'static str| {
        http.get(format!("{}/-/reload", r.url))
            .basic_auth("prometheus", Some(password))
            .send()
    };
    // GET on /-/reload: 405 once past authentication, so nothing but the check itself runs.
    for _ in 0..20 {
        assert_eq!(status("s3cret").await.unwrap().status(), 405);
    }
    assert_eq!(r.server.web.bcrypt_runs(), 1);
    for _ in 0..20 {
        assert_eq!(status("guess").await.unwrap().status(), 401);
    }
    assert_eq!(r.server.web.bcrypt_runs(), 2);
    r.stop().await;
}

/// A scraper that gives up while bcrypt runs (its scrape timeout shorter than bcrypt on a slow or
/// busy machine) still leaves the result in the cache: the next scrape is answered without bcrypt,
/// instead of every scrape starting bcrypt again and timing out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scraper_that_gives_up_during_bcrypt_still_fills_the_cache() {
    let pbx = pbx().await;
    let dir = tempdir("web-gone");
    let file = dir.join("web.yml");
    // Cost 10 (the shipped example's): long enough to give up during it.
    let hash = bcrypt::hash("s3cret", 10).unwrap();
    std::fs::write(&file, format!("basic_auth_users:\n  prometheus: {hash}\n")).unwrap();
    let r = start(&pbx, &file, &[]).await;
    let reload = format!("{}/-/reload", r.url);
    let gone = tokio::spawn(async move {
        reqwest::Client::new()
            .get(reload)
            .basic_auth("prometheus", Some("s3cret"))
            .send()
            .await
    });
    while r.server.web.bcrypt_runs() == 0 {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    gone.abort();
    let _ = gone.await;
    // GET on /-/reload: 405 once past authentication.
    let again = reqwest::Client::new()
        .get(format!("{}/-/reload", r.url))
        .basic_auth("prometheus", Some("s3cret"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 405);
    assert_eq!(r.server.web.bcrypt_runs(), 1);
    r.stop().await;
}

#[tokio::test]
async fn the_rate_limit_answers_429_beyond_the_burst() {
    let pbx = pbx().await;
    let dir = tempdir("web-rate");
    let file = dir.join("web.yml");
    std::fs::write(&file, "rate_limit:\n  interval: 1h\n  burst: 2\n").unwrap();
    let r = start(&pbx, &file, &[]).await;
    assert_eq!(r.get("/-/healthy").await.0, 200);
    assert_eq!(r.get("/-/healthy").await.0, 200);
    assert_eq!(
        r.get("/-/healthy").await,
        (429, "Too Many Requests\n".to_string())
    );
    r.stop().await;
}

#[tokio::test]
async fn request_bodies_are_refused() {
    let pbx = pbx().await;
    let r = Running::start(config(&pbx.url(), &[]), ManualClock::new(1_700_000_000)).await;
    let http = reqwest::Client::new();
    let with_body = http
        .post(format!("{}/-/reload", r.url))
        .body("please")
        .send()
        .await
        .unwrap();
    assert_eq!(with_body.status(), 413);
    assert_eq!(
        with_body.text().await.unwrap(),
        "request body not accepted\n"
    );
    let get_with_body = http
        .get(format!("{}/metrics", r.url))
        .body(vec![b'x'; 10_000])
        .send()
        .await
        .unwrap();
    assert_eq!(get_with_body.status(), 413);
    let empty = http
        .post(format!("{}/-/reload", r.url))
        .send()
        .await
        .unwrap();
    assert_eq!(empty.status(), 200);
    assert_eq!(pbx.count("login"), 0);
    r.stop().await;
}

/// Reads until the peer closes or `limit` passes: (bytes, closed).
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    let end = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(end, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (got, true),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => return (got, false),
        }
    }
}

/// On paused time: the bytes' pauses and the header-read timeout are tokio timers.
#[tokio::test(start_paused = true)]
async fn a_client_sending_headers_one_byte_a_second_is_cut_off() {
    let pbx = pbx().await;
    let r = Running::start(
        config(&pbx.url(), &["--web.header-read-timeout", "2s"]),
        ManualClock::new(1_700_000_000),
    )
    .await;
    let addr = r.url.trim_start_matches("http://").to_string();
    let request = b"GET /metrics HTTP/1.1\r\nHost: exporter\r\nUser-Agent: slowloris\r\n\r\n";
    let stream = TcpStream::connect(&addr).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        let _ = rd.read_to_end(&mut got).await;
        got
    });
    let mut sent = 0;
    for b in request {
        if reader.is_finished() || wr.write_all(&[*b]).await.is_err() {
            break;
        }
        sent += 1;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let got = tokio::time::timeout(Duration::from_secs(5), reader)
        .await
        .expect("the exporter kept the connection open")
        .unwrap();
    assert!(sent < request.len(), "all {sent} bytes were accepted");
    assert!(
        !String::from_utf8_lossy(&got).contains("200 OK"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    // The exporter still serves others.
    assert_eq!(r.get("/-/healthy").await.0, 200);
    r.stop().await;
}

#[tokio::test]
async fn a_tls_client_that_never_finishes_the_handshake_is_cut_off() {
    let pbx = pbx().await;
    let ca = Ca::new("exporter CA");
    let (_, file) = web_dir(&ca, TLS_ONLY);
    let r = start(&pbx, &file, &["--web.header-read-timeout", "1s"]).await;
    let mut stream = TcpStream::connect(r.url.trim_start_matches("http://"))
        .await
        .unwrap();
    // The first bytes of a TLS record, then silence.
    stream.write_all(&[0x16, 0x03, 0x01]).await.unwrap();
    let (_, closed) = read_until_closed(&mut stream, Duration::from_secs(10)).await;
    assert!(closed, "the handshake was never cut off");
    r.stop().await;
}

#[tokio::test]
async fn at_the_cap_the_longest_idle_connection_makes_room() {
    let pbx = pbx().await;
    let r = Running::start(
        config(&pbx.url(), &["--web.max-connections", "2"]),
        ManualClock::new(1_700_000_000),
    )
    .await;
    let addr = r.url.trim_start_matches("http://").to_string();
    let mut first = TcpStream::connect(&addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut second = TcpStream::connect(&addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut third = TcpStream::connect(&addr).await.unwrap();
    third
        .write_all(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (got, closed) = read_until_closed(&mut third, Duration::from_secs(5)).await;
    assert!(closed);
    assert!(
        String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200 OK"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    // The first had waited longest for a request head: it was closed; the second was not.
    let (_, first_closed) = read_until_closed(&mut first, Duration::from_secs(2)).await;
    assert!(first_closed, "the oldest idle connection was kept");
    let (_, second_closed) = read_until_closed(&mut second, Duration::from_millis(300)).await;
    assert!(!second_closed, "a younger idle connection was closed");
    assert_eq!(r.server.connections.evicted(), 1);
    r.stop().await;
}

#[tokio::test]
async fn connections_being_served_are_never_displaced() {
    let pbx = pbx().await;
    pbx.script(
        "call/query:inbound",
        vec![Reply::Slow(
            Duration::from_millis(800),
            Box::new(Reply::Json(r#"{"Calls":[],"status":"Success"}"#.into())),
        )],
    );
    let r = Running::start(
        config(&pbx.url(), &["--web.max-connections", "2"]),
        ManualClock::new(1_700_000_000),
    )
    .await;
    let addr = r.url.trim_start_matches("http://").to_string();
    // Two scrapes in progress hold both slots.
    let mut busy = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        busy.push(s);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut third = TcpStream::connect(&addr).await.unwrap();
    third
        .write_all(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (got, _) = read_until_closed(&mut third, Duration::from_millis(300)).await;
    assert!(got.is_empty(), "answered over the cap");
    // Both scrapes finish with their answers; then the third is served.
    for mut s in busy {
        let (got, closed) = read_until_closed(&mut s, Duration::from_secs(10)).await;
        assert!(closed);
        assert!(String::from_utf8_lossy(&got).contains("\nyeastar_up 1\n"));
    }
    let (got, closed) = read_until_closed(&mut third, Duration::from_secs(10)).await;
    assert!(closed);
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200 OK"));
    assert_eq!(r.server.connections.evicted(), 0);
    r.stop().await;
}

#[tokio::test]
async fn reload_rereads_the_file_and_certificates_and_keeps_them_when_broken() {
    let pbx = pbx().await;
    let old_ca = Ca::new("old CA");
    let (dir, file) = web_dir(&old_ca, TLS_ONLY);
    let args: Vec<String> = [
        "yeastar-exporter",
        "--pbx.url",
        &pbx.url(),
        "--pbx.username",
        USERNAME,
        "--web.listen-address",
        "127.0.0.1:0",
        "--web.config.file",
        file.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let flags = Cli::try_parse_from(args).unwrap().exporter;
    let load_flags = flags.clone();
    let loader: Loader = Arc::new(move || load_flags.resolve(Some(PASSWORD.into())));
    let cfg = flags.resolve(Some(PASSWORD.into())).unwrap();
    let app = App::with_loader(cfg, ManualClock::new(1_700_000_000), Some(loader)).unwrap();
    let r = Running::start_app(app).await;
    let url = format!("{}/-/healthy", https(&r));
    assert_eq!(
        client(&old_ca, None)
            .get(&url)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // New certificate, and basic auth switched on.
    let new_ca = Ca::new("new CA");
    new_ca.leaf(&["127.0.0.1"]).write(&dir, "server");
    std::fs::write(&file, format!("{TLS_ONLY}{}", basic_auth_yaml())).unwrap();
    let reload = client(&old_ca, None)
        .post(format!("{}/-/reload", https(&r)))
        .send()
        .await
        .unwrap();
    assert_eq!(reload.status(), 200);
    assert!(client(&old_ca, None).get(&url).send().await.is_err());
    let new = client(&new_ca, None);
    assert_eq!(new.get(&url).send().await.unwrap().status(), 200);
    let metrics = format!("{}/metrics", https(&r));
    assert_eq!(new.get(&metrics).send().await.unwrap().status(), 401);

    // A broken file is refused with the field named; the running configuration stays.
    std::fs::write(
        &file,
        format!("{TLS_ONLY}  client_auth_type: RequireEverything\n"),
    )
    .unwrap();
    let reload = new
        .post(format!("{}/-/reload", https(&r)))
        .basic_auth("prometheus", Some("s3cret"))
        .send()
        .await
        .unwrap();
    assert_eq!(reload.status(), 500);
    let body = reload.text().await.unwrap();
    assert!(
        body.contains("tls_server_config.client_auth_type: invalid ClientAuth: RequireEverything"),
        "{body}"
    );
    let scrape = new
        .get(&metrics)
        .basic_auth("prometheus", Some("s3cret"))
        .send()
        .await
        .unwrap();
    assert_eq!(scrape.status(), 200);
    r.stop().await;
}

/// A web config as written for node_exporter, with every field the toolkit documents, works here
/// unchanged (the CI's end-to-end test also has promtool check it).
#[tokio::test]
async fn a_node_exporter_web_config_works_unchanged() {
    let pbx = pbx().await;
    let ca = Ca::new("exporter CA");
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    let yaml = format!(
        r#"tls_server_config:
  cert_file: server.crt
  key_file: server.key
  client_auth_type: "NoClientCert"
  min_version: "TLS12"
  max_version: "TLS13"
  cipher_suites:
    - TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA
    - TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
    - TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
    - TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
    - TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
  prefer_server_cipher_suites: true
  curve_preferences: [CurveP256, CurveP384, CurveP521, X25519]
http_server_config:
  http2: true
  headers:
    Strict-Transport-Security: max-age=31536000
    Content-Security-Policy: default-src 'self'
    X-Frame-Options: sameorigin
    X-Content-Type-Options: nosniff
    X-XSS-Protection: "1; mode=block"
basic_auth_users:
  prometheus: {hash}
"#
    );
    let (_, file) = web_dir(&ca, &yaml);
    let r = start(&pbx, &file, &[]).await;
    let resp = client(&ca, None)
        .get(format!("{}/metrics", https(&r)))
        .basic_auth("prometheus", Some("s3cret"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["strict-transport-security"],
        "max-age=31536000"
    );
    assert_eq!(resp.headers()["x-xss-protection"], "1; mode=block");
    r.stop().await;
}

#[test]
fn config_check_validates_the_web_config() {
    let dir = tempdir("web-check");
    let ca = Ca::new("exporter CA");
    ca.leaf(&["127.0.0.1"]).write(&dir, "server");
    let good = dir.join("good.yml");
    std::fs::write(&good, format!("{TLS_ONLY}{}", basic_auth_yaml())).unwrap();
    let bad = dir.join("bad.yml");
    std::fs::write(
        &bad,
        "tls_server_config:\n  cert_file: server.crt\n  key_file: missing.key\n",
    )
    .unwrap();
    let run = |file: &Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_yeastar-exporter"))
            .args([
                "--pbx.url",
                "http://127.0.0.1:9",
                "--pbx.username",
                "api",
                "--web.config.file",
                file.to_str().unwrap(),
                "--config.check",
            ])
            .env("YEASTAR_EXPORTER_PBX_PASSWORD", "x")
            .output()
            .unwrap()
    };
    let out = run(&good);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "config OK: 1 target(s)\nweb config OK: TLS, basic auth (1 users)\n"
    );
    let out = run(&bad);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "yeastar-exporter: config invalid: --web.config.file: {}: tls_server_config.key_file: cannot read {}: No such file or directory (os error 2)\n",
            bad.display(),
            dir.join("missing.key").display()
        )
    );
}

#[test]
fn the_shipped_example_loads_and_its_hash_is_the_documented_password() {
    let dir = tempdir("web-example");
    Ca::new("exporter CA")
        .leaf(&["127.0.0.1"])
        .write(&dir, "yeastar-exporter");
    let file = dir.join("web-config.yml");
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/web/web-config.yml"
    ))
    .unwrap();
    std::fs::write(&file, &text).unwrap();
    let web = yeastar_exporter::server::webconfig::WebConfig::load(&file).unwrap();
    assert_eq!(web.describe(), "TLS, basic auth (1 users)");
    let hash = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("prometheus: "))
        .unwrap();
    assert!(bcrypt::verify("change-me", hash).unwrap());
}
