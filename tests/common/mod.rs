//! Test harness: a fake PBX serving scripted JSON fixtures over real sockets, an exporter started
//! on a loopback port, and helpers to read metric values out of the text format.
#![allow(dead_code)]

pub mod pki;

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use yeastar_exporter::config::{Cli, Config};
use yeastar_exporter::exporter::App;
use yeastar_exporter::server::Server;
use yeastar_exporter::support::clock::SharedClock;

/// One scripted answer.
#[derive(Clone, Debug)]
pub enum Reply {
    /// HTTP 200 with this body.
    Json(String),
    /// Another status with this body.
    Status(u16, String),
    /// HTTP 200 with only the first half of this body (the connection closed mid-answer).
    Truncated(String),
    /// Close the connection without answering.
    Close,
    /// Wait, then answer.
    Slow(Duration, Box<Reply>),
}

/// A fixture file's text.
pub fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[derive(Default)]
struct FakeState {
    scripts: HashMap<String, VecDeque<Reply>>,
    requests: Vec<(String, String)>,
    tokens: HashSet<String>,
    next_token: u32,
    in_flight: usize,
    max_in_flight: usize,
}

/// A fake PBX: logs in `api` / `secret`, checks tokens, answers each endpoint from its script.
#[derive(Clone)]
pub struct FakePbx {
    pub addr: SocketAddr,
    state: Arc<Mutex<FakeState>>,
}

pub const USERNAME: &str = "api";
pub const PASSWORD: &str = "secret";
/// MD5 of "secret".
pub const PASSWORD_MD5: &str = "5ebe2294ecd0e0f08eab7690d2a6ee69";

impl FakePbx {
    pub async fn start() -> Self {
        Self::start_with(None).await
    }

    /// A fake PBX answering over HTTPS with `acceptor`'s certificate.
    pub async fn start_tls(acceptor: tokio_rustls::TlsAcceptor) -> Self {
        Self::start_with(Some(acceptor)).await
    }

    async fn start_with(tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(FakeState::default()));
        let st = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let st = st.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let st = st.clone();
                        async move {
                            {
                                let mut s = st.lock().unwrap();
                                s.in_flight += 1;
                                s.max_in_flight = s.max_in_flight.max(s.in_flight);
                            }
                            let r = handle(st.clone(), req).await;
                            st.lock().unwrap().in_flight -= 1;
                            r
                        }
                    });
                    let builder = http1::Builder::new().keep_alive(false).clone();
                    match tls {
                        None => {
                            let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
                        }
                        Some(acceptor) => {
                            // A client that refuses the certificate ends the handshake here.
                            if let Ok(stream) = acceptor.accept(stream).await {
                                let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
                            }
                        }
                    }
                });
            }
        });
        Self { addr, state }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn https_url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Answers for `key` (an endpoint, or `call/query:inbound` / `call/query:outbound`): each
    /// request takes the next; the last repeats.
    pub fn script(&self, key: &str, replies: Vec<Reply>) {
        self.state
            .lock()
            .unwrap()
            .scripts
            .insert(key.to_string(), replies.into());
    }

    pub fn json(&self, key: &str, body: &str) {
        self.script(key, vec![Reply::Json(body.to_string())]);
    }

    /// Requests received for `key` (`login` and endpoints; `call/query:<type>`).
    pub fn count(&self, key: &str) -> usize {
        self.state
            .lock()
            .unwrap()
            .requests
            .iter()
            .filter(|(k, _)| k == key || k.split(':').next() == Some(key) && !key.contains(':'))
            .count()
    }

    /// Every request key, in order.
    pub fn keys(&self) -> Vec<String> {
        self.state
            .lock()
            .unwrap()
            .requests
            .iter()
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// The most requests that were in flight at once.
    pub fn max_in_flight(&self) -> usize {
        self.state.lock().unwrap().max_in_flight
    }

    /// Makes `token` valid, as if another application had logged in.
    pub fn add_token(&self, token: &str) {
        self.state.lock().unwrap().tokens.insert(token.to_string());
    }

    pub fn expire_tokens(&self) {
        self.state.lock().unwrap().tokens.clear();
    }
}

fn failed(errno: &str) -> String {
    format!(r#"{{"status":"Failed","errno":"{errno}"}}"#)
}

async fn handle(
    st: Arc<Mutex<FakeState>>,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, std::io::Error> {
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let endpoint = path
        .strip_prefix("/api/v2.0.0/")
        .unwrap_or(&path)
        .to_string();
    let key = match json.get("type").and_then(|t| t.as_str()) {
        Some(t) if endpoint == "call/query" => format!("call/query:{t}"),
        _ => endpoint.clone(),
    };
    let reply = {
        let mut s = st.lock().unwrap();
        s.requests
            .push((key.clone(), String::from_utf8_lossy(&body).into_owned()));
        let scripted = s.scripts.get_mut(&key).map(|q| {
            if q.len() > 1 {
                q.pop_front().unwrap()
            } else {
                q.front().unwrap().clone()
            }
        });
        let token = query.strip_prefix("token=").unwrap_or("");
        match scripted {
            Some(r) => Some(r),
            None if endpoint == "login" => {
                let ok = json.get("username").and_then(|v| v.as_str()) == Some(USERNAME)
                    && json.get("password").and_then(|v| v.as_str()) == Some(PASSWORD_MD5);
                if ok {
                    s.next_token += 1;
                    let t = format!("faketoken{:023}", s.next_token);
                    s.tokens.insert(t.clone());
                    Some(Reply::Json(format!(
                        r#"{{"status":"Success","token":"{t}","transport":"TCP"}}"#
                    )))
                } else {
                    Some(Reply::Json(failed("20003")))
                }
            }
            None => None,
        }
        .map(|r| (r, true))
        .unwrap_or_else(|| {
            if !s.tokens.contains(token) {
                (Reply::Json(failed("20004")), false)
            } else {
                (Reply::Json(r#"{"status":"Success"}"#.into()), false)
            }
        })
    };
    // Scripted answers for endpoints other than login still need a valid token.
    let (mut reply, scripted) = reply;
    if scripted && endpoint != "login" {
        let token = query.strip_prefix("token=").unwrap_or("");
        if !st.lock().unwrap().tokens.contains(token) {
            reply = Reply::Json(failed("20004"));
        }
    }
    answer(reply).await
}

type Answer = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Response<Full<Bytes>>, std::io::Error>> + Send>,
>;

fn answer(reply: Reply) -> Answer {
    Box::pin(async move {
        let mk = |status: u16, body: Bytes| {
            let mut r = Response::new(Full::new(body));
            *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
            r.headers_mut()
                .insert("Server", "Boa/0.94.14rc21".parse().unwrap());
            r.headers_mut()
                .insert("Content-Type", "application/json".parse().unwrap());
            r
        };
        match reply {
            Reply::Json(b) => Ok(mk(200, Bytes::from(b))),
            Reply::Status(code, b) => Ok(mk(code, Bytes::from(b))),
            Reply::Truncated(b) => Ok(mk(200, Bytes::from(b[..b.len() / 2].to_string()))),
            Reply::Close => Err(std::io::Error::other("close without answer")),
            Reply::Slow(d, r) => {
                tokio::time::sleep(d).await;
                answer(*r).await
            }
        }
    })
}

/// Exporter flags for a PBX at `url` with the fake's credentials, plus `extra` flags.
pub fn config(url: &str, extra: &[&str]) -> Config {
    let mut args = vec![
        "yeastar-exporter",
        "--pbx.url",
        url,
        "--pbx.username",
        USERNAME,
        "--web.listen-address",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(extra);
    Cli::try_parse_from(args)
        .unwrap()
        .exporter
        .resolve(Some(PASSWORD.into()))
        .unwrap()
}

/// `cfg` logging in as `username` with `password` instead of the fake's credentials.
pub fn with_login(mut cfg: Config, username: &str, password: &str) -> Config {
    if let Some(tcp) = cfg.targets[0].events_tcp.as_mut() {
        tcp.username = username.into();
        tcp.password = yeastar_exporter::support::secret::Secret::new(password);
    }
    cfg.targets[0].client.auth = yeastar_exporter::pbx::Auth::Credentials {
        username: username.into(),
        password: yeastar_exporter::support::secret::Secret::new(password),
    };
    cfg
}

/// Exporter flags for the simulated PBX at `url` (its demo credentials), plus `extra` flags.
pub fn sim_config(url: &str, extra: &[&str]) -> Config {
    with_login(config(url, extra), "api", "demo-password")
}

/// An exporter serving on a loopback port.
pub struct Running {
    pub url: String,
    pub app: Arc<App>,
    pub server: Arc<Server>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Running {
    pub async fn start(config: Config, clock: SharedClock) -> Self {
        Self::start_app(App::new(config, clock).unwrap()).await
    }

    pub async fn start_app(app: Arc<App>) -> Self {
        // As start-up wires it: a TCP event reader for each target that reads its events so.
        yeastar_exporter::intake::tcp::follow(&app);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = Server::new(app.clone()).unwrap();
        let s = server.clone();
        let task = tokio::spawn(async move {
            yeastar_exporter::server::serve(listener, s, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        Self {
            url,
            app,
            server,
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// GET `path`: (status, body).
    pub async fn get(&self, path: &str) -> (u16, String) {
        let r = reqwest::get(format!("{}{path}", self.url)).await.unwrap();
        let status = r.status().as_u16();
        (status, r.text().await.unwrap())
    }

    /// GET the metrics page, asserting HTTP 200.
    pub async fn scrape(&self) -> String {
        let (status, body) = self.get("/metrics").await;
        assert_eq!(status, 200, "{body}");
        body
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.unwrap();
        }
    }
}

/// The value of the series written exactly as `series` (name plus labels in the encoder's order).
pub fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .map(|v| v.trim().parse().unwrap())
}

/// Like [`value`], panicking with the page when the series is missing.
pub fn must(text: &str, series: &str) -> f64 {
    value(text, series).unwrap_or_else(|| panic!("{series} missing from:\n{text}"))
}

/// `yeastar_pbx_requests_total` of the single target for `endpoint` and `outcome`.
pub fn requests(text: &str, endpoint: &str, outcome: &str) -> f64 {
    must(
        text,
        &format!(r#"yeastar_pbx_requests_total{{endpoint="{endpoint}",outcome="{outcome}"}}"#),
    )
}

/// The sample lines (no comments) whose name starts with `prefix`.
pub fn lines_with(text: &str, prefix: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && l.starts_with(prefix))
        .map(str::to_string)
        .collect()
}

/// The families of the target's output that count its client's requests and logins (asserted on
/// their own; they depend on how many scrapes came before, not on the PBX's answers).
pub const CLIENT_COUNT_FAMILIES: [&str; 3] = [
    "yeastar_pbx_requests_total",
    "yeastar_pbx_logins_total",
    "yeastar_login_suspended",
];

/// The target's sample lines from the PBX's answers, without those that depend on wall time.
pub fn target_lines(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| {
            !l.starts_with('#') && l.starts_with("yeastar_") && !l.starts_with("yeastar_exporter_")
        })
        .filter(|l| !l.starts_with("yeastar_scrape_duration_seconds"))
        .filter(|l| !l.starts_with("yeastar_collector_duration_seconds"))
        .filter(|l| !CLIENT_COUNT_FAMILIES.iter().any(|f| l.starts_with(f)))
        .map(str::to_string)
        .collect()
}

/// A fresh directory under the system's temporary directory.
pub fn tempdir(tag: &str) -> std::path::PathBuf {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let d = std::env::temp_dir().join(format!(
        "yeastar-exporter-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Makes a test's own log capture (`tracing::subscriber::set_default`, this thread only) see
/// every event while other tests of the binary run on other threads without one. tracing caches
/// each callsite's interest and the highest level enabled across the dispatchers that exist: a
/// callsite first hit on a thread without a subscriber, or a rebuild racing a capture's start,
/// can leave an event disabled for the capture too (a CI run saw 0 of 3 expected lines). A
/// global subscriber interested in everything (a bare registry: it keeps nothing) keeps every
/// callsite enabled at every level; each capture then decides for its own thread.
pub fn keep_every_callsite_enabled() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry());
    });
}

/// A loopback port free a moment ago (for processes that must be told their port up front).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The real binary run once to its end (`--config.check`, `--version`, …), its output collected.
pub fn run_exporter_once(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_yeastar-exporter"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

/// The real binary, started with `args` on a loopback port of its choosing.
pub struct Spawned {
    pub child: std::process::Child,
    /// `http://127.0.0.1:PORT`, read from its "listening" log line.
    pub base: String,
    /// The log lines before that one.
    pub before_listening: Vec<String>,
    /// The rest of its log, line by line.
    pub lines: std::io::Lines<std::io::BufReader<std::process::ChildStderr>>,
}

/// Starts the binary with `args` plus `--web.listen-address 127.0.0.1:0` and waits for it to listen.
pub fn spawn_exporter(args: &[&str]) -> Spawned {
    spawn_exporter_env(args, &[])
}

/// [`spawn_exporter`] with environment variables set (a name with an empty value is removed).
pub fn spawn_exporter_env(args: &[&str], env: &[(&str, &str)]) -> Spawned {
    use std::io::BufRead;
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_yeastar-exporter"));
    cmd.args(args).args(["--web.listen-address", "127.0.0.1:0"]);
    for (k, v) in env {
        if v.is_empty() {
            cmd.env_remove(k);
        } else {
            cmd.env(k, v);
        }
    }
    let mut child = cmd
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut before_listening = Vec::new();
    let base = loop {
        let line = lines.next().expect("exited early").unwrap();
        if let Some(i) = line.find("metrics=http://") {
            let url = line[i + "metrics=".len()..]
                .split_whitespace()
                .next()
                .unwrap();
            break url.trim_end_matches("/metrics").to_string();
        }
        before_listening.push(line);
    };
    Spawned {
        child,
        base,
        before_listening,
        lines,
    }
}

impl Spawned {
    /// Reads the rest of its log on a thread (a busy log must never fill the pipe and stall it);
    /// the handle gives the whole log, lines before listening included, once it has exited.
    pub fn drain(self) -> (std::process::Child, std::thread::JoinHandle<String>) {
        let Spawned {
            child,
            before_listening,
            lines,
            ..
        } = self;
        let log = std::thread::spawn(move || {
            let mut text = before_listening.join("\n");
            for line in lines.map_while(Result::ok) {
                text.push('\n');
                text.push_str(&line);
            }
            text
        });
        (child, log)
    }

    /// Sends `signal` (`TERM`, `HUP`, …) to it.
    pub fn signal(&self, signal: &str) {
        signal_child(&self.child, signal);
    }
}

/// Sends `signal` to `child` through kill(1).
pub fn signal_child(child: &std::process::Child, signal: &str) {
    let ok = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{signal} failed");
}

/// The reports an exporter's text says it received (`yeastar_events_received_total`, all types).
#[allow(dead_code)]
pub fn events_received(text: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with("yeastar_events_received_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Scrapes until the exporter has read `delivered` reports (TCP reports are read as they
/// stream in), up to 10 s; the last text.
#[allow(dead_code)]
pub async fn scrape_until_received(exporter: &Running, delivered: u64) -> String {
    let mut text = String::new();
    for _ in 0..200 {
        text = exporter.scrape().await;
        if events_received(&text) == delivered as f64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    text
}

/// An exporter for the simulated PBX at `url` with HTTP events on, and its event receiver
/// running on a free loopback port (abort the task to take the receiver down).
#[allow(dead_code)]
pub async fn with_http_events(
    url: &str,
    clock: SharedClock,
    extra: &[&str],
) -> (Running, tokio::task::JoinHandle<()>) {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut args = vec!["--pbx.events", "--events.listen-address", listen.as_str()];
    args.extend_from_slice(extra);
    let exporter = Running::start(sim_config(url, &args), clock).await;
    let l = yeastar_exporter::startup::bind(&listen).await.unwrap();
    let rx = tokio::spawn(yeastar_exporter::intake::http::serve(
        l,
        exporter.app.clone(),
    ));
    (exporter, rx)
}

/// The exporter's configuration for the simulated PBX `sim` with its events read over TCP (the
/// simulator's TCP event port is started here), plus `extra` flags.
#[allow(dead_code)]
pub async fn tcp_events_config(sim: &yeastar_exporter::sim::SimHandle, extra: &[&str]) -> Config {
    let tcp = sim.sim.start_tcp_events("127.0.0.1:0").await.unwrap();
    let port = tcp.port().to_string();
    let mut args = vec![
        "--pbx.events",
        "--pbx.events-method",
        "tcp",
        "--pbx.events-tcp-port",
        port.as_str(),
    ];
    args.extend_from_slice(extra);
    sim_config(&sim.url(), &args)
}
