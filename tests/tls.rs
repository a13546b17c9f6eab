//! HTTPS PBXes: system roots by default, a CA file, a self-signed certificate, insecure mode, and
//! the log line for each common failure (unknown issuer, name mismatch, expired).

mod common;

use std::sync::Arc;

use common::pki::{Ca, Leaf};
use common::*;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use yeastar_exporter::support::clock::ManualClock;

const EMPTY: &str = r#"{"Calls":[],"status":"Success"}"#;

async fn https_pbx(config: Arc<ServerConfig>) -> FakePbx {
    let pbx = FakePbx::start_tls(TlsAcceptor::from(config)).await;
    pbx.json("call/query:inbound", &fixture("seed-example2-inbound.json"));
    pbx.json("call/query:outbound", EMPTY);
    pbx
}

fn pem_file(pem: &str, name: &str) -> std::path::PathBuf {
    let path = tempdir("tls").join(name);
    std::fs::write(&path, pem).unwrap();
    path
}

/// One scrape: the page, and why the target failed (the cause the log line carries).
async fn scrape(url: &str, extra: &[&str]) -> (String, Option<String>) {
    let exporter = Running::start(config(url, extra), ManualClock::new(1_571_639_500)).await;
    let text = exporter.scrape().await;
    let target = exporter.app.targets().iter().next().unwrap().clone();
    let error = target.last().and_then(|o| o.error.clone());
    exporter.stop().await;
    (text, error)
}

#[tokio::test]
async fn a_pbx_certificate_signed_by_the_ca_file_is_trusted() {
    let ca = Ca::new("site CA");
    let pbx = https_pbx(ca.leaf(&["127.0.0.1"]).server_config()).await;
    let file = pem_file(&ca.pem(), "site-ca.pem");
    let (text, _) = scrape(&pbx.https_url(), &["--pbx.ca-file", file.to_str().unwrap()]).await;
    assert_eq!(must(&text, "yeastar_up"), 1.0);
    assert_eq!(
        must(&text, r#"yeastar_active_calls{direction="inbound"}"#),
        2.0
    );
}

#[tokio::test]
async fn an_unknown_certificate_is_refused_without_sending_the_password() {
    let pbx = https_pbx(Ca::new("site CA").leaf(&["127.0.0.1"]).server_config()).await;
    let other = pem_file(&Ca::new("another CA").pem(), "other-ca.pem");
    // System roots (the default), then a CA file of another CA.
    for extra in [vec![], vec!["--pbx.ca-file", other.to_str().unwrap()]] {
        let (text, error) = scrape(&pbx.https_url(), &extra).await;
        assert_eq!(must(&text, "yeastar_up"), 0.0);
        assert_eq!(requests(&text, "login", "connect_error"), 1.0);
        assert!(
            error.as_deref().unwrap_or("").contains("unknown issuer"),
            "{error:?}"
        );
    }
    // The handshake failed: the login request never reached the PBX.
    assert_eq!(pbx.count("login"), 0);
}

#[tokio::test]
async fn a_self_signed_pbx_is_refused_by_default_and_accepted_with_its_certificate_or_insecure() {
    let leaf = Leaf::self_signed(&["127.0.0.1"]);
    let pbx = https_pbx(leaf.server_config()).await;

    let (text, error) = scrape(&pbx.https_url(), &[]).await;
    assert_eq!(must(&text, "yeastar_up"), 0.0);
    assert_eq!(
        error.as_deref(),
        Some(
            "POST login: connection failed: TLS: the PBX's certificate is not signed by a trusted CA \
             (unknown issuer; a self-signed certificate?): give its CA or the certificate itself as \
             ca_file (--pbx.ca-file)"
        )
    );
    assert_eq!(pbx.count("login"), 0);

    // The PBX's own certificate as the CA file.
    let own = pem_file(&leaf.cert_pem, "pbx.crt");
    let (text, error) = scrape(&pbx.https_url(), &["--pbx.ca-file", own.to_str().unwrap()]).await;
    assert_eq!(must(&text, "yeastar_up"), 1.0, "{error:?}");

    let (text, _) = scrape(&pbx.https_url(), &["--pbx.insecure-skip-verify"]).await;
    assert_eq!(must(&text, "yeastar_up"), 1.0);
    assert_eq!(pbx.count("login"), 2);
}

#[tokio::test]
async fn a_name_mismatch_and_an_expired_certificate_say_so() {
    let ca = Ca::new("site CA");
    let file = pem_file(&ca.pem(), "site-ca.pem");
    let ca_flag = ["--pbx.ca-file", file.to_str().unwrap()];

    let pbx = https_pbx(ca.leaf(&["pbx.example.com"]).server_config()).await;
    let (text, error) = scrape(&pbx.https_url(), &ca_flag).await;
    assert_eq!(must(&text, "yeastar_up"), 0.0);
    assert_eq!(
        error.as_deref(),
        Some(
            "POST login: connection failed: TLS: the PBX's certificate is not valid for the host \
             in the URL (name mismatch; it lists DnsName(\"pbx.example.com\")): use a name or \
             address the certificate lists"
        )
    );

    let pbx = https_pbx(ca.expired_leaf(&["127.0.0.1"]).server_config()).await;
    let (text, error) = scrape(&pbx.https_url(), &ca_flag).await;
    assert_eq!(must(&text, "yeastar_up"), 0.0);
    assert_eq!(
        error.as_deref(),
        Some(
            "POST login: connection failed: TLS: the PBX's certificate has expired (renew it, or \
             check this host's clock)"
        )
    );
}

/// The real binary: insecure mode warns at start; a refused certificate gives one log line naming
/// the target and the cause.
#[test]
fn the_log_names_insecure_targets_and_certificate_failures() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let pbx = rt.block_on(https_pbx(Leaf::self_signed(&["127.0.0.1"]).server_config()));
    let lab = rt.block_on(https_pbx(Leaf::self_signed(&["127.0.0.1"]).server_config()));
    let dir = tempdir("tls-log");
    let cfg = dir.join("pbxes.yml");
    std::fs::write(
        &cfg,
        format!(
            "auth_modules:\n  main:\n    username: {USERNAME}\n    password: {PASSWORD}\n\
             targets:\n  strict:\n    url: {url}\n    auth: main\n  lab:\n    url: {lab}\n    auth: main\n    insecure_skip_verify: true\n",
            url = pbx.https_url(),
            lab = lab.https_url()
        ),
    )
    .unwrap();
    let Spawned {
        mut child,
        base,
        before_listening,
        mut lines,
    } = spawn_exporter(&["--config.file", cfg.to_str().unwrap()]);
    let warned: Vec<_> = before_listening
        .iter()
        .filter(|l| l.contains("level=warn") && l.contains("insecure_skip_verify"))
        .collect();
    assert_eq!(warned.len(), 1, "{before_listening:#?}");
    assert!(warned[0].contains("target_name=lab"), "{}", warned[0]);

    let status = rt.block_on(async {
        reqwest::get(format!("{base}/probe?target=strict"))
            .await
            .unwrap()
            .status()
            .as_u16()
    });
    assert_eq!(status, 200);
    let failed = loop {
        let line = lines.next().expect("exited early").unwrap();
        if line.contains("scrape failed") {
            break line;
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(failed.contains("level=warn"), "{failed}");
    assert!(failed.contains("target_name=strict"), "{failed}");
    assert!(
        failed.contains("not signed by a trusted CA (unknown issuer"),
        "{failed}"
    );
}

/// The default trust is the system's: a CA in the system store (here through `SSL_CERT_FILE`, which
/// the platform verifier honours like `/etc/ssl/certs`) is trusted with no `ca_file`.
#[test]
fn the_system_roots_are_trusted_by_default() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ca = Ca::new("site CA in the system store");
    let pbx = rt.block_on(https_pbx(ca.leaf(&["127.0.0.1"]).server_config()));
    let bundle = pem_file(&ca.pem(), "system-bundle.pem");
    let spawned = spawn_exporter_env(
        &["--pbx.url", &pbx.https_url(), "--pbx.username", USERNAME],
        &[
            ("YEASTAR_EXPORTER_PBX_PASSWORD", PASSWORD),
            ("SSL_CERT_FILE", bundle.to_str().unwrap()),
            ("SSL_CERT_DIR", ""),
        ],
    );
    let url = format!("{}/metrics", spawned.base);
    let (mut child, _log) = spawned.drain();
    let text = rt.block_on(async { reqwest::get(url).await.unwrap().text().await.unwrap() });
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(must(&text, "yeastar_up"), 1.0);
    assert_eq!(pbx.count("login"), 1);
}

/// TLS sessions resume across probes for every PBX sharing a client: after each PBX's first
/// connection, every connection is resumed (the client keeps a few tickets per PBX, and a fleet's
/// worth of PBXes).
#[tokio::test]
async fn every_pbx_resumes_its_tls_sessions_across_scrapes() {
    use yeastar_exporter::collector::{CollectorSet, Target};
    use yeastar_exporter::pbx::{
        Auth, Client, ClientConfig, HttpSettings, LoginLedger, NoopObserver, http_client,
    };
    use yeastar_exporter::sim::{SimConfig, Simulator, tls_server_config};

    let leaf = Ca::new("site CA").leaf(&["127.0.0.1"]);
    let ca = pem_file(&leaf.cert_pem, "pbx-leaf.pem");
    let settings = HttpSettings {
        ca_file: Some(ca),
        insecure_skip_verify: false,
        proxy: None,
    };
    const PBXES: usize = 3;
    let http = http_client(&settings, PBXES).unwrap();
    let ledger = Arc::new(LoginLedger::in_memory());
    let mut sims = Vec::new();
    let mut targets = Vec::new();
    for i in 0..PBXES {
        // Each its own ticket keys, as separate PBXes have.
        let server = tls_server_config(leaf.cert_pem.as_bytes(), leaf.key_pem.as_bytes()).unwrap();
        // Each on its own address: TLS sessions are kept by host name or address, not port.
        let sim = Simulator::start_with(
            SimConfig::traffic(i as u64 + 1, 5),
            yeastar_exporter::support::clock::system(),
            &format!("127.7.0.{}:0", i + 1),
            Some(server),
        )
        .await
        .unwrap();
        let cfg = ClientConfig {
            family: Default::default(),
            target: format!("pbx-{i}"),
            url: format!("https://{}", sim.addr),
            api_path: "/api/v2.0.0".into(),
            auth: Auth::Credentials {
                username: "api".into(),
                password: yeastar_exporter::support::secret::Secret::new("demo-password"),
            },
            timeout: std::time::Duration::from_secs(10),
            max_concurrent_requests: 1,
            max_response_bytes: 1 << 20,
            login_backoff: std::time::Duration::from_secs(600),
            ca_file: settings.ca_file.clone(),
            insecure_skip_verify: false,
            proxy_url: None,
            events: None,
        };
        let client = Client::with_http(
            cfg,
            http.clone(),
            ledger.clone(),
            Arc::new(NoopObserver),
            yeastar_exporter::support::clock::system(),
        );
        targets.push(Arc::new(Target::new(
            Arc::new(client),
            CollectorSet::default(),
            yeastar_exporter::support::clock::system(),
        )));
        sims.push(sim);
    }
    for _ in 0..3 {
        for t in &targets {
            let out = t
                .scrape(tokio::time::Instant::now() + std::time::Duration::from_secs(10))
                .await;
            assert!(out.up, "{:?}", out.error);
        }
    }
    for sim in &sims {
        let (full, resumed) = sim.sim.handshakes();
        // A login and three scrapes of the default collectors: 1 + 3 × 6 connections.
        assert_eq!((full, resumed), (1, 18), "full and resumed handshakes");
    }
}

/// No proxy from the environment, ever: `HTTP_PROXY`, `HTTPS_PROXY` and `ALL_PROXY` (either case)
/// point at a listener that would see the PBX's credentials and token; the exporter goes straight
/// to the PBX, plain HTTP and HTTPS alike.
#[test]
fn proxies_in_the_environment_are_never_used() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let rt = tokio::runtime::Runtime::new().unwrap();
    let proxied = Arc::new(AtomicUsize::new(0));
    let proxy = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let count = proxied.clone();
        tokio::spawn(async move {
            while listener.accept().await.is_ok() {
                count.fetch_add(1, Ordering::SeqCst);
            }
        });
        format!("http://{addr}")
    });
    let plain = rt.block_on(FakePbx::start());
    plain.json("call/query:inbound", EMPTY);
    plain.json("call/query:outbound", EMPTY);
    let tls = rt.block_on(https_pbx(
        Ca::new("site CA").leaf(&["127.0.0.1"]).server_config(),
    ));
    for (url, extra) in [
        (plain.url(), None),
        (tls.https_url(), Some("--pbx.insecure-skip-verify")),
    ] {
        let mut args = vec!["--pbx.url", &url, "--pbx.username", USERNAME];
        args.extend(extra);
        let mut env = vec![
            ("YEASTAR_EXPORTER_PBX_PASSWORD", PASSWORD),
            ("NO_PROXY", ""),
            ("no_proxy", ""),
        ];
        for name in [
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "ALL_PROXY",
            "http_proxy",
            "https_proxy",
            "all_proxy",
        ] {
            env.push((name, proxy.as_str()));
        }
        let spawned = spawn_exporter_env(&args, &env);
        let metrics = format!("{}/metrics", spawned.base);
        let (mut child, _log) = spawned.drain();
        let text =
            rt.block_on(async { reqwest::get(metrics).await.unwrap().text().await.unwrap() });
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(must(&text, "yeastar_up"), 1.0, "{url}");
    }
    assert_eq!((plain.count("login"), tls.count("login")), (1, 1));
    assert_eq!(proxied.load(Ordering::SeqCst), 0);
}

/// A CONNECT proxy on loopback: each tunnel's request head is kept; `refuse` answers 403 instead.
struct ConnectProxy {
    url: String,
    heads: Arc<std::sync::Mutex<Vec<String>>>,
}

async fn connect_proxy(refuse: bool) -> ConnectProxy {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let heads = Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = heads.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let kept = kept.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if client.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let target = head
                    .strip_prefix("CONNECT ")
                    .and_then(|r| r.split(' ').next())
                    .unwrap_or("")
                    .to_string();
                kept.lock().unwrap().push(head);
                if refuse {
                    let _ = client
                        .write_all(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n")
                        .await;
                    return;
                }
                let Ok(mut upstream) = tokio::net::TcpStream::connect(target).await else {
                    return;
                };
                let _ = client
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await;
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
        }
    });
    ConnectProxy { url, heads }
}

/// `--pbx.proxy-url`: every request to an HTTPS PBX goes through the proxy's CONNECT tunnel to the
/// PBX's address (TLS end to end, the certificate checked as without it), with the proxy's own
/// credentials from its URL; the config never prints them.
#[tokio::test]
async fn a_configured_proxy_tunnels_every_request_to_an_https_pbx() {
    let ca = Ca::new("site CA");
    let pbx = https_pbx(ca.leaf(&["127.0.0.1"]).server_config()).await;
    let file = pem_file(&ca.pem(), "proxy-ca.pem");
    let proxy = connect_proxy(false).await;
    let with_auth = proxy.url.replace("http://", "http://squid:pr0xy-secret@");
    let cfg = config(
        &pbx.https_url(),
        &[
            "--pbx.ca-file",
            file.to_str().unwrap(),
            "--pbx.proxy-url",
            &with_auth,
        ],
    );
    let debug = format!("{cfg:?}");
    assert!(!debug.contains("pr0xy-secret"), "{debug}");
    let exporter = Running::start(cfg, ManualClock::new(1_571_639_500)).await;
    let text = exporter.scrape().await;
    exporter.stop().await;
    assert_eq!(must(&text, "yeastar_up"), 1.0);
    assert_eq!(
        must(&text, r#"yeastar_active_calls{direction="inbound"}"#),
        2.0
    );
    let heads = proxy.heads.lock().unwrap().clone();
    let authority = pbx.https_url().trim_start_matches("https://").to_string();
    // Every exchange of the scrape (login, both call queries, the other collectors, the logout at
    // stop), each on a tunnel of its own.
    assert_eq!(heads.len(), pbx.keys().len(), "{heads:?}");
    for head in &heads {
        let lines: Vec<&str> = head.lines().collect();
        assert_eq!(lines[0], format!("CONNECT {authority} HTTP/1.1"), "{head}");
        // base64("squid:pr0xy-secret")
        assert!(
            lines.iter().any(
                |l| l.to_ascii_lowercase().starts_with("proxy-authorization:")
                    && l.ends_with(" Basic c3F1aWQ6cHIweHktc2VjcmV0")
            ),
            "{head}"
        );
    }
}

/// A proxy that refuses the tunnel: the login never reached the PBX (a `connect_error`, not in the
/// ledger's count), the PBX saw nothing, and the cause says the proxy refused.
#[tokio::test]
async fn a_proxy_that_refuses_the_tunnel_costs_the_pbx_nothing() {
    let pbx = https_pbx(Ca::new("site CA").leaf(&["127.0.0.1"]).server_config()).await;
    let proxy = connect_proxy(true).await;
    let (text, error) = scrape(
        &pbx.https_url(),
        &["--pbx.insecure-skip-verify", "--pbx.proxy-url", &proxy.url],
    )
    .await;
    assert_eq!(must(&text, "yeastar_up"), 0.0);
    assert_eq!(requests(&text, "login", "connect_error"), 1.0);
    assert_eq!(pbx.keys().len(), 0);
    assert_eq!(proxy.heads.lock().unwrap().len(), 1);
    assert_eq!(
        error.as_deref(),
        Some(
            "POST login: connection failed: through the proxy (proxy_url): it did not open a tunnel to the PBX (its answer to CONNECT was not 200)"
        )
    );
}

/// The config refuses a proxy for a plain-HTTP PBX (the proxy would read the login and tokens) and
/// a proxy URL that is not one, naming the field and never echoing the value.
#[test]
fn a_proxy_url_is_refused_for_plain_http_and_in_bad_forms() {
    use clap::Parser;
    let resolve = |url: &str, proxy: &str| {
        yeastar_exporter::config::Cli::try_parse_from([
            "yeastar-exporter",
            "--pbx.url",
            url,
            "--pbx.username",
            USERNAME,
            "--pbx.proxy-url",
            proxy,
        ])
        .unwrap()
        .exporter
        .resolve(Some(PASSWORD.into()))
        .map(|_| ())
        .map_err(|e| e.to_string())
    };
    assert_eq!(
        resolve("http://192.0.2.1", "http://proxy:3128"),
        Err("--pbx.proxy-url: the PBX's url is plain http://: through a proxy its login (the password's MD5) and every token would be readable there; use the PBX's https:// URL".into())
    );
    for bad in [
        "proxy:3128",
        "socks5://proxy:1080",
        "http://u:hunter2@proxy:3128/path",
        "http://",
        "http://u:hunter2@",
    ] {
        assert_eq!(
            resolve("https://192.0.2.1:8088", bad),
            Err("--pbx.proxy-url: must be http://[user:password@]host:port or https://[user:password@]host:port (the proxy's address, nothing after it)".into()),
            "{bad}"
        );
    }
    assert_eq!(
        resolve("https://192.0.2.1:8088", "http://u:p@proxy:3128/"),
        Ok(())
    );
}
