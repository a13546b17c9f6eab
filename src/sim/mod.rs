//! A simulated Yeastar S-Series PBX: the API of `yeastar-api.md`, answered as a real unit answers it.
//!
//! Used by demo mode (`--demo`), by `yeastar-exporter simulate`, by the tests and by the benchmarks.
//! It owns its HTTP server (hyper, one request per connection, `Server: Boa/0.94.14rc21`), its
//! accounts, tokens (30 minutes, extended by `heartbeat`) and per-address login lockout (5 failures
//! in 10 minutes lock the address out for 10 minutes), the traffic [`model`], fault knobs, and a count
//! of every request it answered. Time comes from an injected [`Clock`](crate::clock::Clock).

pub mod model;

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::clock::SharedClock;
use crate::pbx::lock;
use crate::secret::Secret;
use model::{Model, ModelConfig, Snapshot};

/// Token lifetime without a heartbeat.
pub const TOKEN_LIFETIME_MS: u64 = 30 * 60 * 1000;
/// Failed logins within [`LOCKOUT_WINDOW_MS`] that lock an address out.
pub const LOCKOUT_FAILURES: usize = 5;
/// The window failed logins are counted in, and the length of a lockout.
pub const LOCKOUT_WINDOW_MS: u64 = 10 * 60 * 1000;

/// `yeastar-exporter simulate` flags.
#[derive(Debug, clap::Args, Clone)]
pub struct SimFlags {
    /// Address to serve the simulated API on.
    #[arg(long, default_value = "127.0.0.1:8088")]
    pub listen: String,
    /// Seed of the traffic model.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Calls up at any time, on average.
    #[arg(long, default_value_t = 40)]
    pub calls: usize,
    /// Extensions (default: enough for the calls).
    #[arg(long)]
    pub extensions: Option<usize>,
    /// The API username it accepts.
    #[arg(long, default_value = "api")]
    pub username: String,
    /// The API password it accepts.
    #[arg(long, default_value = "demo-password")]
    pub password: String,
    /// Added latency for every answer.
    #[arg(long = "fault.latency", default_value = "0s", value_parser = crate::duration::parse_duration)]
    pub latency: Duration,
    /// Share of answers that are `{"status":"Failed","errno":"30003"}`.
    #[arg(long = "fault.error-rate", default_value_t = 0.0)]
    pub error_rate: f64,
    /// Share of answers that are HTTP 500.
    #[arg(long = "fault.http500-rate", default_value_t = 0.0)]
    pub http500_rate: f64,
    /// Share of answers that are cut off mid-JSON.
    #[arg(long = "fault.malformed-rate", default_value_t = 0.0)]
    pub malformed_rate: f64,
    /// Share of connections closed without an answer.
    #[arg(long = "fault.close-rate", default_value_t = 0.0)]
    pub close_rate: f64,
    /// Tokens live this long instead of 30 minutes.
    #[arg(long = "fault.token-lifetime", value_parser = crate::duration::parse_duration)]
    pub token_lifetime: Option<Duration>,
    /// Endpoints that answer errno 10003, as on older firmware (comma-separated, e.g.
    /// `extension/query_call`).
    #[arg(long = "fault.unsupported", value_delimiter = ',')]
    pub unsupported: Vec<String>,
    /// Pad every successful answer with this many bytes of whitespace (oversized answers).
    #[arg(long = "fault.pad-bytes", default_value_t = 0)]
    pub pad_bytes: usize,
    /// Answer every request with a 307 redirect to this URL (as a PBX whose plain-HTTP port
    /// moves clients to HTTPS).
    #[arg(long = "fault.redirect-to")]
    pub redirect_to: Option<String>,
    /// Share of event reports answered 200 that are sent again anyway (duplicates).
    #[arg(long = "fault.event-resend-rate", default_value_t = 0.0)]
    pub event_resend_rate: f64,
    /// Send event reports in the v1 format (`action`, no `sn`) whatever the login asked.
    #[arg(long = "fault.event-v1")]
    pub event_v1: bool,
    /// Serve HTTPS with this PEM certificate chain (a self-signed one, as real PBXes carry);
    /// needs --tls.key-file.
    #[arg(long = "tls.cert-file", requires = "tls_key_file")]
    pub tls_cert_file: Option<std::path::PathBuf>,
    /// The PEM private key of --tls.cert-file.
    #[arg(long = "tls.key-file", requires = "tls_cert_file")]
    pub tls_key_file: Option<std::path::PathBuf>,
}

/// A rustls server configuration for the simulator from a PEM certificate chain and key, with
/// stateless session tickets (so any number of simulators resume without shared state).
pub fn tls_server_config(
    cert_pem: &[u8],
    key_pem: &[u8],
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_slice_iter(cert_pem).collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_slice(key_pem)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.ticketer = rustls::crypto::ring::Ticketer::new()?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

impl SimFlags {
    /// The simulator these flags describe.
    pub fn sim_config(&self) -> SimConfig {
        SimConfig {
            username: self.username.clone(),
            password: Secret::new(self.password.clone()),
            model: ModelConfig {
                seed: self.seed,
                target_calls: self.calls,
                extensions: self.extensions.unwrap_or((self.calls * 3).max(60)),
                ..ModelConfig::default()
            },
            faults: Faults {
                latency: self.latency,
                error_rate: self.error_rate,
                http500_rate: self.http500_rate,
                malformed_rate: self.malformed_rate,
                close_rate: self.close_rate,
                unsupported: self.unsupported.clone(),
                pad_bytes: self.pad_bytes,
                redirect_to: self.redirect_to.clone(),
                event_resend_rate: self.event_resend_rate,
                event_v1: self.event_v1,
            },
            token_lifetime: self
                .token_lifetime
                .map_or(TOKEN_LIFETIME_MS, |d| d.as_millis() as u64),
            api_path: "/api/v2.0.0".into(),
        }
    }
}

/// Ways to misbehave, for tests and demos.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    /// Wait this long before every answer.
    pub latency: Duration,
    /// Share of answers that are errno 30003.
    pub error_rate: f64,
    /// Share of answers that are HTTP 500.
    pub http500_rate: f64,
    /// Share of answers cut off mid-JSON.
    pub malformed_rate: f64,
    /// Share of connections closed without an answer.
    pub close_rate: f64,
    /// Endpoints that answer 10003 as on older firmware.
    pub unsupported: Vec<String>,
    /// Pad every successful answer with this many bytes of whitespace (oversized answers).
    pub pad_bytes: usize,
    /// Answer everything with a 307 to this URL.
    pub redirect_to: Option<String>,
    /// Share of event reports delivered with a 200 that the simulator resends anyway, as a PBX
    /// does when the 200 is lost on the way back: the receiver sees duplicates.
    pub event_resend_rate: f64,
    /// Send event reports in the v1 format whatever the login said (as a PBX another
    /// application logged in without `version`).
    pub event_v1: bool,
}

/// What the simulator accepts and how it behaves.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// API username.
    pub username: String,
    /// API password (the simulator compares its MD5, as the PBX does).
    pub password: Secret,
    /// Traffic.
    pub model: ModelConfig,
    /// Faults.
    pub faults: Faults,
    /// Token lifetime in milliseconds.
    pub token_lifetime: u64,
    /// API path.
    pub api_path: String,
}

impl SimConfig {
    /// The default simulator (demo credentials, no faults) with `calls` calls from `seed`.
    pub fn traffic(seed: u64, calls: usize) -> Self {
        Self {
            model: ModelConfig {
                seed,
                target_calls: calls,
                ..ModelConfig::default()
            },
            ..Self::default()
        }
    }
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            username: "api".into(),
            password: Secret::new("demo-password"),
            model: ModelConfig::default(),
            faults: Faults::default(),
            token_lifetime: TOKEN_LIFETIME_MS,
            api_path: "/api/v2.0.0".into(),
        }
    }
}

#[derive(Debug, Default)]
struct Accounts {
    tokens: HashMap<String, u64>,
    issued: Vec<String>,
    failures: HashMap<IpAddr, VecDeque<u64>>,
    locked_until: HashMap<IpAddr, u64>,
}

impl Accounts {
    /// A failed login (API or TCP events) from `peer` at `now`: the fifth in the window locks
    /// the address out.
    fn failed_login(&mut self, peer: IpAddr, now: u64) {
        let failures = self.failures.entry(peer).or_default();
        failures.retain(|t| now.saturating_sub(*t) < LOCKOUT_WINDOW_MS);
        failures.push_back(now);
        if failures.len() >= LOCKOUT_FAILURES {
            failures.clear();
            self.locked_until.insert(peer, now + LOCKOUT_WINDOW_MS);
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    /// endpoint (and `call/query:<type>`) → requests answered.
    requests: HashMap<String, u64>,
    /// TLS handshakes: full, resumed.
    handshakes: [u64; 2],
}

/// Where a login or heartbeat asked the PBX to send its HTTP event reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventReceiver {
    /// The host to connect to: the caller's address, the heartbeat's `ipaddr`, or the absolute
    /// URL's host.
    pub host: String,
    pub port: u16,
    /// The request path (`/` + a relative `url`, or the absolute URL's path).
    pub path: String,
    /// The login said `"version": "2.0.0"` (else reports come in the v1 format).
    pub v2: bool,
}

impl EventReceiver {
    /// From a login or heartbeat `body` sent by `peer`; `None` when it registers nothing.
    fn of(body: &Value, peer: IpAddr) -> Option<Self> {
        let field = |k: &str| match body.get(k)? {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
        let port: u16 = field("port")?.parse().ok()?;
        let url = field("url").unwrap_or_default();
        let v2 = field("version").is_some_and(|v| v.starts_with('2'));
        let host = field("ipaddr").unwrap_or_else(|| peer.to_string());
        if field("urltag").as_deref() == Some("1") {
            // host:port/path, no scheme.
            let (hostport, path) = url.split_once('/').unwrap_or((url.as_str(), ""));
            let (h, p) = hostport.rsplit_once(':')?;
            return Some(Self {
                host: h.to_string(),
                port: p.parse().ok()?,
                path: format!("/{path}"),
                v2,
            });
        }
        Some(Self {
            host,
            port,
            path: format!("/{}", url.trim_start_matches('/')),
            v2,
        })
    }
}

/// What the simulator did with its event reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventDelivery {
    /// Reports the receiver answered 200.
    pub delivered: u64,
    /// Deliveries that failed (no connection, no 200): the report stays queued and is resent.
    pub failed: u64,
    /// Why the last failed delivery failed, if one did.
    pub last_failure: Option<DeliveryFailure>,
    /// Reports sent again after a 200 (the `event_resend_rate` fault).
    pub resent: u64,
    /// Reports discarded because no receiver was registered.
    pub unregistered: u64,
    /// TCP event logins: accepted, refused.
    pub tcp_logins: [u64; 2],
    /// Reports written to TCP event clients.
    pub tcp_delivered: u64,
}

/// Why a report got no 200.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryFailure {
    /// No connection to the receiver (refused, unreachable, no socket).
    Connect,
    /// The request could not be written whole.
    Write,
    /// The connection ended in an error (reset) before the answer was read.
    Reset,
    /// An answer that was not `200` (empty: closed without one).
    Status,
    /// No answer within the simulator's 5 s.
    Timeout,
}

/// The simulator's shared state.
#[derive(Debug)]
pub struct Simulator {
    cfg: Mutex<SimConfig>,
    password_md5: Secret,
    clock: SharedClock,
    model: Mutex<Model>,
    accounts: Mutex<Accounts>,
    counters: Mutex<Counters>,
    fault_rng: Mutex<fastrand::Rng>,
    /// Where event reports go, once a login or heartbeat said.
    receiver: Mutex<Option<EventReceiver>>,
    /// Reports taken from the model, not yet answered 200, oldest first.
    pending: tokio::sync::Mutex<VecDeque<Value>>,
    delivery: Mutex<EventDelivery>,
    /// Logged-in TCP event clients (TCP report mode), written to by [`Simulator::pump_events`].
    tcp_clients: tokio::sync::Mutex<Vec<tokio::net::tcp::OwnedWriteHalf>>,
    /// The address it serves on: its HTTP event reports leave from it, as a PBX's leave from
    /// its own address.
    own_ip: Mutex<Option<IpAddr>>,
}

/// A running simulator: its address and its state.
#[derive(Debug, Clone)]
pub struct SimHandle {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its state, to inspect and steer.
    pub sim: Arc<Simulator>,
    /// Whether it serves HTTPS.
    pub https: bool,
}

impl SimHandle {
    /// `http://addr`.
    pub fn url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }
}

impl Simulator {
    /// A simulator whose model starts at the clock's current time.
    pub fn new(cfg: SimConfig, clock: SharedClock) -> Arc<Self> {
        let now = clock.now_millis() / 1000;
        Arc::new(Self {
            password_md5: cfg.password.md5_hex(),
            model: Mutex::new(Model::new(cfg.model.clone(), now)),
            fault_rng: Mutex::new(fastrand::Rng::with_seed(cfg.model.seed ^ 0x5eed)),
            cfg: Mutex::new(cfg),
            clock,
            accounts: Mutex::new(Accounts::default()),
            counters: Mutex::new(Counters::default()),
            receiver: Mutex::new(None),
            pending: tokio::sync::Mutex::new(VecDeque::new()),
            delivery: Mutex::new(EventDelivery::default()),
            tcp_clients: tokio::sync::Mutex::new(Vec::new()),
            own_ip: Mutex::new(None),
        })
    }

    /// Serves the TCP event port (TCP report mode) on `addr`: a client sends the login block
    /// (`Action: login`, `Username:`, `Secret:` with the password in clear, `Version:`, a blank
    /// line); a wrong one is answered `Response: Error` and closed, and counts toward the same
    /// lockout as API logins; a right one is answered `Response: Success` and gets every report
    /// from then on, objects separated by nothing, CRLF or a blank line in turn.
    pub async fn start_tcp_events(self: &Arc<Self>, addr: &str) -> std::io::Result<SocketAddr> {
        let listener = TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let sim = self.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, peer)) = listener.accept().await else {
                    continue;
                };
                let sim = sim.clone();
                tokio::spawn(async move { sim.tcp_login(stream, peer.ip()).await });
            }
        });
        Ok(local)
    }

    async fn tcp_login(&self, stream: tokio::net::TcpStream, peer: IpAddr) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut read, mut write) = stream.into_split();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        let head = loop {
            let text = String::from_utf8_lossy(&buf).to_string();
            if let Some(i) = text.find("\r\n\r\n").or_else(|| text.find("\n\n")) {
                break text[..i].to_string();
            }
            if buf.len() > 4096 {
                return;
            }
            match tokio::time::timeout(Duration::from_secs(10), read.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                _ => return,
            }
        };
        let field = |name: &str| {
            head.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_string())
            })
        };
        let now = self.clock.now_millis();
        let ok = {
            let mut acc = lock(&self.accounts);
            let cfg = lock(&self.cfg);
            let locked = acc.locked_until.get(&peer).is_some_and(|u| *u > now);
            let right = field("Action").is_some_and(|a| a.eq_ignore_ascii_case("login"))
                && field("Username").as_deref() == Some(cfg.username.as_str())
                && field("Secret").as_deref() == Some(cfg.password.expose());
            if !locked && !right {
                acc.failed_login(peer, now);
            }
            !locked && right
        };
        lock(&self.delivery).tcp_logins[usize::from(!ok)] += 1;
        if !ok {
            let _ = write
                .write_all(b"Response: Error\r\nMessage: Authentication failed\r\n\r\n")
                .await;
            return;
        }
        if write.write_all(b"Response: Success\r\n\r\n").await.is_ok() {
            self.with_model(|m| m.events_on = true);
            self.tcp_clients.lock().await.push(write);
        }
        // The client's further bytes (none are documented) are read and dropped until it closes.
        while let Ok(n) = read.read(&mut chunk).await {
            if n == 0 {
                break;
            }
        }
    }

    /// Closes every TCP event connection (a network cut or a PBX restart, for tests).
    pub async fn cut_tcp_events(&self) {
        use tokio::io::AsyncWriteExt;
        for mut w in self.tcp_clients.lock().await.drain(..) {
            let _ = w.shutdown().await;
        }
    }

    /// Writes every pending report to every TCP client, objects separated by nothing, CRLF or a
    /// blank line in turn; a client whose write fails is dropped and the reports stay pending.
    async fn write_tcp(
        &self,
        clients: &mut Vec<tokio::net::tcp::OwnedWriteHalf>,
        pending: &mut VecDeque<Value>,
    ) -> u64 {
        use tokio::io::AsyncWriteExt;
        let mut batch = Vec::new();
        let base = lock(&self.delivery).tcp_delivered;
        for (i, event) in pending.iter().enumerate() {
            batch.extend_from_slice(event.to_string().as_bytes());
            batch.extend_from_slice(match (base + i as u64) % 3 {
                0 => &b""[..],
                1 => b"\r\n",
                _ => b"\r\n\r\n",
            });
        }
        let mut written = false;
        let mut kept = Vec::new();
        for mut w in clients.drain(..) {
            if w.write_all(&batch).await.is_ok() && w.flush().await.is_ok() {
                written = true;
                kept.push(w);
            }
        }
        *clients = kept;
        if !written {
            return 0;
        }
        let n = pending.len() as u64;
        pending.clear();
        lock(&self.delivery).tcp_delivered += n;
        n
    }

    /// Where event reports go now, if anywhere.
    pub fn event_receiver(&self) -> Option<EventReceiver> {
        lock(&self.receiver).clone()
    }

    /// What happened to the event reports so far.
    pub fn event_delivery(&self) -> EventDelivery {
        *lock(&self.delivery)
    }

    /// Brings the model to the clock's time and sends every report it has made since to the
    /// registered receiver, in order, one connection each (as the PBX does), until one is not
    /// answered 200: that one and the rest stay queued for the next call. Returns how many were
    /// answered 200.
    pub async fn pump_events(&self) -> u64 {
        let mut pending = self.pending.lock().await;
        {
            let mut model = lock(&self.model);
            model.advance(self.clock.now_millis() / 1000);
            pending.extend(model.outbox.drain(..));
        }
        while pending.len() > model::MAX_OUTBOX {
            pending.pop_front();
        }
        {
            let mut clients = self.tcp_clients.lock().await;
            if !clients.is_empty() {
                return self.write_tcp(&mut clients, &mut pending).await;
            }
        }
        let Some(receiver) = self.event_receiver() else {
            lock(&self.delivery).unregistered += pending.len() as u64;
            pending.clear();
            return 0;
        };
        let mut sent = 0;
        let mut resent_front = false;
        while let Some(event) = pending.front() {
            let body = if receiver.v2 && !lock(&self.cfg).faults.event_v1 {
                event.to_string()
            } else {
                v1_report(event).to_string()
            };
            let shape = (lock(&self.delivery).delivered + sent) % 2;
            let from = *lock(&self.own_ip);
            if let Err(why) = post_report(&receiver, from, &body, shape == 0).await {
                let mut d = lock(&self.delivery);
                d.failed += 1;
                d.last_failure = Some(why);
                break;
            }
            sent += 1;
            let rate = lock(&self.cfg).faults.event_resend_rate;
            if !resent_front && rate > 0.0 && self.roll(rate) {
                // The 200 "never arrived": the report goes again, once.
                lock(&self.delivery).resent += 1;
                resent_front = true;
                continue;
            }
            resent_front = false;
            pending.pop_front();
        }
        lock(&self.delivery).delivered += sent;
        sent
    }

    /// Binds `listener` and serves until the task is dropped or aborted.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) {
        self.serve_with(listener, None).await
    }

    /// Serves the API on `listener`, over TLS when `tls` is given.
    pub async fn serve_with(
        self: Arc<Self>,
        listener: TcpListener,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) {
        if let Ok(local) = listener.local_addr()
            && !local.ip().is_unspecified()
        {
            *lock(&self.own_ip) = Some(local.ip());
        }
        let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
        // Event reports go out as the PBX's would: soon after they happen, resent until a 200.
        let pump = {
            let sim = self.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    let tcp = sim.tcp_clients.try_lock().is_ok_and(|c| !c.is_empty());
                    if tcp || sim.event_receiver().is_some() {
                        sim.pump_events().await;
                    }
                }
            })
        };
        let _stop_pump = AbortOnDrop(pump);
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(x) => x,
                Err(e) => {
                    tracing::debug!(error = %e, "simulator accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            let sim = self.clone();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let svc = {
                    let sim = sim.clone();
                    service_fn(move |req| {
                        let sim = sim.clone();
                        async move { sim.handle(req, peer.ip()).await }
                    })
                };
                let http = http1::Builder::new().keep_alive(false).clone();
                match acceptor {
                    None => {
                        let _ = http.serve_connection(TokioIo::new(stream), svc).await;
                    }
                    Some(acceptor) => {
                        let Ok(tls) = acceptor.accept(stream).await else {
                            return;
                        };
                        let resumed = tls.get_ref().1.handshake_kind()
                            == Some(rustls::HandshakeKind::Resumed);
                        lock(&sim.counters).handshakes[usize::from(resumed)] += 1;
                        let _ = http.serve_connection(TokioIo::new(tls), svc).await;
                    }
                }
            });
        }
    }

    /// Starts a simulator on `addr` (e.g. `127.0.0.1:0`) in a background task.
    pub async fn start(
        cfg: SimConfig,
        clock: SharedClock,
        addr: &str,
    ) -> std::io::Result<SimHandle> {
        Self::start_with(cfg, clock, addr, None).await
    }

    /// [`Simulator::start`], serving HTTPS with `tls` when given.
    pub async fn start_with(
        cfg: SimConfig,
        clock: SharedClock,
        addr: &str,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> std::io::Result<SimHandle> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let sim = Simulator::new(cfg, clock);
        let https = tls.is_some();
        tokio::spawn(sim.clone().serve_with(listener, tls));
        Ok(SimHandle { addr, sim, https })
    }

    /// TLS handshakes completed: (full, resumed).
    pub fn handshakes(&self) -> (u64, u64) {
        let h = lock(&self.counters).handshakes;
        (h[0], h[1])
    }

    /// Replaces the fault knobs.
    pub fn set_faults(&self, faults: Faults) {
        lock(&self.cfg).faults = faults;
    }

    /// Ends every token now (the PBX restarted, or tokens timed out).
    pub fn expire_tokens(&self) {
        lock(&self.accounts).tokens.clear();
    }

    /// Every token this simulator has handed out (for tests that search logs for secrets).
    pub fn issued_tokens(&self) -> Vec<String> {
        lock(&self.accounts).issued.clone()
    }

    /// Live tokens.
    pub fn live_tokens(&self) -> usize {
        let now = self.clock.now_millis();
        lock(&self.accounts)
            .tokens
            .values()
            .filter(|t| **t > now)
            .count()
    }

    /// Requests answered for `key`: an endpoint (`login`, `trunk/list`) or `call/query:<type>`.
    pub fn requests(&self, key: &str) -> u64 {
        lock(&self.counters).requests.get(key).copied().unwrap_or(0)
    }

    /// Every request answered.
    pub fn total_requests(&self) -> u64 {
        lock(&self.counters).requests.values().sum()
    }

    /// Whether `ip` is locked out now.
    pub fn is_locked(&self, ip: IpAddr) -> bool {
        let now = self.clock.now_millis();
        lock(&self.accounts)
            .locked_until
            .get(&ip)
            .is_some_and(|u| *u > now)
    }

    /// The model's counts at the clock's current time.
    pub fn snapshot(&self) -> Snapshot {
        let mut m = lock(&self.model);
        m.advance(self.clock.now_millis() / 1000);
        m.snapshot()
    }

    /// Runs `f` on the model, advanced to now.
    pub fn with_model<T>(&self, f: impl FnOnce(&mut Model) -> T) -> T {
        let mut m = lock(&self.model);
        m.advance(self.clock.now_millis() / 1000);
        f(&mut m)
    }

    fn count(&self, key: String) {
        *lock(&self.counters).requests.entry(key).or_default() += 1;
    }

    fn roll(&self, rate: f64) -> bool {
        rate > 0.0 && lock(&self.fault_rng).f64() < rate
    }

    /// Answers one request; `Err` makes hyper drop the connection without an answer.
    async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        peer: IpAddr,
    ) -> Result<Response<Full<Bytes>>, CloseWithoutAnswer> {
        let faults = lock(&self.cfg).faults.clone();
        if !faults.latency.is_zero() {
            tokio::time::sleep(faults.latency).await;
        }
        let api_path = lock(&self.cfg).api_path.clone();
        let path = req.uri().path().to_string();
        let query = req.uri().query().unwrap_or("").to_string();
        let method = req.method().clone();
        let body = match req.into_body().collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => Bytes::new(),
        };
        let endpoint = path
            .strip_prefix(api_path.trim_end_matches('/'))
            .and_then(|p| p.strip_prefix('/'))
            .unwrap_or("")
            .to_string();
        let parsed: Option<Value> = serde_json::from_slice(&body).ok();
        let key = match (
            &endpoint[..],
            parsed
                .as_ref()
                .and_then(|v| v.get("type"))
                .and_then(Value::as_str),
        ) {
            ("call/query", Some(t)) => format!("call/query:{t}"),
            _ => endpoint.clone(),
        };
        self.count(key);
        if let Some(to) = &faults.redirect_to {
            let mut r = respond(StatusCode::TEMPORARY_REDIRECT, Bytes::new());
            if let Ok(v) = hyper::header::HeaderValue::from_str(to) {
                r.headers_mut().insert(hyper::header::LOCATION, v);
            }
            return Ok(r);
        }
        if self.roll(faults.close_rate) {
            return Err(CloseWithoutAnswer);
        }
        if self.roll(faults.http500_rate) {
            return Ok(respond(
                StatusCode::INTERNAL_SERVER_ERROR,
                Bytes::from_static(b"<html>500 Internal Server Error</html>"),
            ));
        }
        let answer: Answer = if method != Method::POST {
            failed("20001")
        } else if let Some(v) = parsed.filter(Value::is_object) {
            if self.roll(faults.error_rate) {
                failed("30003")
            } else if faults.unsupported.contains(&endpoint) {
                failed("10003")
            } else {
                self.answer(&endpoint, &query, &v, peer)
            }
        } else {
            failed("20000")
        };
        let mut bytes = answer.into_bytes();
        if faults.pad_bytes > 0 {
            bytes.extend(std::iter::repeat_n(b' ', faults.pad_bytes));
        }
        if self.roll(faults.malformed_rate) {
            bytes.truncate(bytes.len() / 2);
        }
        Ok(respond(StatusCode::OK, Bytes::from(bytes)))
    }

    fn check_token(&self, query: &str) -> Result<(), Answer> {
        let token = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("token="))
            .unwrap_or("");
        if token.is_empty() {
            return Err(failed("20005"));
        }
        let now = self.clock.now_millis();
        let accounts = lock(&self.accounts);
        match accounts.tokens.get(token) {
            None => Err(failed("20004")),
            Some(exp) if *exp <= now => Err(failed("20006")),
            Some(_) => Ok(()),
        }
    }

    fn login(&self, body: &Value, peer: IpAddr) -> Answer {
        let now = self.clock.now_millis();
        let mut acc = lock(&self.accounts);
        if acc.locked_until.get(&peer).is_some_and(|u| *u > now) {
            return failed("20002");
        }
        let user = body.get("username").and_then(Value::as_str).unwrap_or("");
        let pass = body.get("password").and_then(Value::as_str).unwrap_or("");
        let cfg = lock(&self.cfg);
        if user.is_empty() || pass.is_empty() {
            return failed("10004");
        }
        if user == cfg.username && pass == self.password_md5.expose() {
            acc.failures.remove(&peer);
            let token = format!("{:032x}", lock(&self.fault_rng).u128(..));
            acc.tokens.retain(|_, exp| *exp > now);
            acc.tokens.insert(token.clone(), now + cfg.token_lifetime);
            acc.issued.push(token.clone());
            return json!({"status": "Success", "token": token, "transport": "TCP"}).into();
        }
        acc.failed_login(peer, now);
        failed("20003")
    }

    fn answer(&self, endpoint: &str, query: &str, body: &Value, peer: IpAddr) -> Answer {
        if endpoint == "login" {
            let answer = self.login(body, peer);
            if answer.0.starts_with(br#"{"status":"Success""#)
                && let Some(r) = EventReceiver::of(body, peer)
            {
                *lock(&self.receiver) = Some(r);
                self.with_model(|m| m.events_on = true);
            }
            return answer;
        }
        if let Err(e) = self.check_token(query) {
            return e;
        }
        if endpoint == "heartbeat"
            && let Some(r) = EventReceiver::of(body, peer)
        {
            *lock(&self.receiver) = Some(r);
            self.with_model(|m| m.events_on = true);
        }
        let token = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("token="))
            .unwrap_or("")
            .to_string();
        self.api(endpoint, body, token)
    }

    /// The bytes this PBX answers to an authenticated request to `endpoint` with `body`, now: the
    /// benchmarks' and property tests' input, without a network.
    pub fn answer_bytes(&self, endpoint: &str, body: &Value) -> Vec<u8> {
        self.api(endpoint, body, String::new()).0
    }

    fn api(&self, endpoint: &str, body: &Value, token: String) -> Answer {
        let now_ms = self.clock.now_millis();
        let lifetime = lock(&self.cfg).token_lifetime;
        let mut model = lock(&self.model);
        model.advance(now_ms / 1000);
        let str_field = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_string);
        match endpoint {
            "heartbeat" => {
                lock(&self.accounts).tokens.insert(token, now_ms + lifetime);
                json!({"status": "Success"}).into()
            }
            "logout" => {
                lock(&self.accounts).tokens.remove(&token);
                json!({"status": "Success"}).into()
            }
            "call/query" => {
                if let Some(callid) = str_field("callid") {
                    match model.calls.iter().find(|c| c.callid == callid) {
                        Some(c) => Answer::serialize(&model::CallsAnswer {
                            calls: vec![c.view()],
                            status: "Success",
                        }),
                        None => failed("10005"),
                    }
                } else {
                    let kind = match str_field("type").as_deref() {
                        Some("inbound") => crate::pbx::types::MemberKind::Inbound,
                        Some("outbound") => crate::pbx::types::MemberKind::Outbound,
                        Some(_) => return failed("10004"),
                        None => return failed("10004"),
                    };
                    Answer(model.call_query_answer(kind))
                }
            }
            "extension/query_call" => {
                let Some(number) = str_field("number") else {
                    return failed("10004");
                };
                let wanted: Vec<&str> = number.split(',').map(str::trim).collect();
                let all = number == "all";
                let mut by_ext: Vec<(String, Vec<model::CallView<'_>>)> = Vec::new();
                let mut index: HashMap<String, usize> = HashMap::new();
                for c in &model.calls {
                    for m in c
                        .members
                        .iter()
                        .filter(|m| m.kind == crate::pbx::types::MemberKind::Ext)
                    {
                        if !all && !wanted.contains(&m.number.as_str()) {
                            continue;
                        }
                        let i = *index.entry(m.number.clone()).or_insert_with(|| {
                            by_ext.push((m.number.clone(), Vec::new()));
                            by_ext.len() - 1
                        });
                        by_ext[i].1.push(c.view());
                    }
                }
                let calllist: Vec<ExtensionCallsView<'_>> = by_ext
                    .into_iter()
                    .map(|(number, numbercalls)| ExtensionCallsView {
                        number,
                        numbercalls,
                    })
                    .collect();
                Answer::serialize(&ExtensionCallsAnswer {
                    status: "Success",
                    calllist,
                })
            }
            "trunk/list" => json!({"status": "Success", "trunklist": model.trunk_list()}).into(),
            "extension/list" => {
                json!({"status": "Success", "extlist": model.extension_list()}).into()
            }
            "deviceinfo/query" => {
                let up = (now_ms / 1000).saturating_sub(model.booted);
                let (d, h, m, s) = (up / 86_400, up % 86_400 / 3600, up % 3600 / 60, up % 60);
                let uptime = if d > 0 {
                    format!("{d} days, {h:02}:{m:02}:{s:02}")
                } else {
                    format!("{h:02}:{m:02}:{s:02}")
                };
                let registered = model.extensions.iter().filter(|e| e.registered).count();
                json!({"status": "Success", "deviceinfo": {
                    "devicename": "S100",
                    // The serial its event reports carry.
                    "sn": model.sn(),
                    "hardwarever": "0000-0000-000",
                    "firmwarever": "30.13.0.30",
                    "systemtime": (now_ms / 1000).to_string(),
                    "uptime": uptime,
                    "extensionstatus": format!("{registered}/{}", model.extensions.len()),
                }})
                .into()
            }
            "queue/query" => {
                let number = str_field("number").unwrap_or_default();
                let queues: Vec<Value> = model
                    .queues
                    .iter()
                    .filter(|(n, _)| number == "all" || number.split(',').any(|x| x.trim() == n))
                    .map(|(n, agents)| {
                        let agents: Vec<&str> = agents.iter().map(|i| model.extensions[*i].number.as_str()).collect();
                        json!({"number": n, "queuename": format!("Queue {n}"), "agents": agents.join(",")})
                    })
                    .collect();
                json!({"status": "Success", "queues": queues}).into()
            }
            "queue/query_status" => {
                let Some(number) = str_field("number") else {
                    return failed("10004");
                };
                let queues: Vec<Value> = number
                    .split(',')
                    .filter_map(|n| model.queue_status(n.trim()))
                    .collect();
                json!({"status": "Success", "queues": queues}).into()
            }
            _ => failed("10003"),
        }
    }
}

fn failed(errno: &str) -> Answer {
    json!({"status": "Failed", "errno": errno}).into()
}

/// A serialized answer body.
struct Answer(Vec<u8>);

impl Answer {
    fn serialize(v: &impl serde::Serialize) -> Self {
        // Serializing plain structs of strings into a Vec cannot fail.
        Answer(serde_json::to_vec(v).unwrap_or_default())
    }

    fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

impl From<Value> for Answer {
    fn from(v: Value) -> Self {
        Answer::serialize(&v)
    }
}

#[derive(serde::Serialize)]
struct ExtensionCallsView<'a> {
    number: String,
    numbercalls: Vec<model::CallView<'a>>,
}

#[derive(serde::Serialize)]
struct ExtensionCallsAnswer<'a> {
    status: &'static str,
    calllist: Vec<ExtensionCallsView<'a>>,
}

fn respond(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        "Server",
        hyper::header::HeaderValue::from_static("Boa/0.94.14rc21"),
    );
    h.insert(
        "Accept-Ranges",
        hyper::header::HeaderValue::from_static("bytes"),
    );
    h.insert(
        "Connection",
        hyper::header::HeaderValue::from_static("close"),
    );
    h.insert(
        "Content-Type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    h.insert(
        "Access-control-allow-origin",
        hyper::header::HeaderValue::from_static("*"),
    );
    h.insert(
        "Access-control-allow-methods",
        hyper::header::HeaderValue::from_static("GET, POST, OPTIONS, PUT, DELETE"),
    );
    resp
}

/// The service's error for the close fault: hyper ends the connection without writing an answer.
#[derive(Debug)]
pub struct CloseWithoutAnswer;

impl std::fmt::Display for CloseWithoutAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("fault: connection closed without an answer")
    }
}

impl std::error::Error for CloseWithoutAnswer {}

/// Runs `yeastar-exporter simulate`.
pub async fn run(flags: SimFlags) -> anyhow::Result<()> {
    let cfg = flags.sim_config();
    let tls = match (&flags.tls_cert_file, &flags.tls_key_file) {
        (Some(cert), Some(key)) => {
            let read = |p: &std::path::Path| {
                std::fs::read(p).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", p.display()))
            };
            Some(tls_server_config(&read(cert)?, &read(key)?)?)
        }
        _ => None,
    };
    let handle =
        Simulator::start_with(cfg.clone(), crate::clock::system(), &flags.listen, tls).await?;
    println!(
        "simulated Yeastar PBX on {} (API {}): username {:?}, password {:?}; seed {}, about {} calls",
        handle.url(),
        cfg.api_path,
        cfg.username,
        flags.password,
        cfg.model.seed,
        cfg.model.target_calls
    );
    tracing::info!(address = %handle.addr, "simulator listening");
    crate::shutdown_signal().await;
    Ok(())
}

/// A v2 report in the v1 format (a login without `version`): `action` for `event`, no `sn`.
fn v1_report(event: &Value) -> Value {
    let mut v = event.clone();
    if let Some(o) = v.as_object_mut() {
        if let Some(name) = o.remove("event") {
            o.insert("action".into(), name);
        }
        o.remove("sn");
    }
    v
}

/// POSTs one report to `r` over a new connection and reads the answer to the close: true for a
/// 200. `documented`: the request exactly as the vendor's pages show it (`Host` with a space
/// before the port, `Accept` twice, no `Content-Length`); else with `Content-Length`,
/// `Connection: close` and a well-formed `Host`.
async fn post_report(
    r: &EventReceiver,
    from: Option<IpAddr>,
    body: &str,
    documented: bool,
) -> Result<(), DeliveryFailure> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let mut s = connect_from(from, &r.host, r.port)
            .await
            .ok_or(DeliveryFailure::Connect)?;
        let head = if documented {
            format!(
                "POST {} HTTP/1.1\r\nHost: {}: {}\r\nAccept: application/json\r\nUser-Agent: WebAPI\r\nContent-Type: application/json\r\nAccept: application/json\r\n\r\n",
                r.path, r.host, r.port
            )
        } else {
            format!(
                "POST {} HTTP/1.1\r\nHost: {}:{}\r\nContent-Type: application/json\r\nContent-Length:{}\r\nConnection:close\r\n\r\n",
                r.path,
                r.host,
                r.port,
                body.len()
            )
        };
        s.write_all(head.as_bytes())
            .await
            .map_err(|_| DeliveryFailure::Write)?;
        s.write_all(body.as_bytes())
            .await
            .map_err(|_| DeliveryFailure::Write)?;
        let mut answer = Vec::new();
        s.read_to_end(&mut answer)
            .await
            .map_err(|_| DeliveryFailure::Reset)?;
        if answer.starts_with(b"HTTP/1.1 200") {
            Ok(())
        } else {
            Err(DeliveryFailure::Status)
        }
    };
    tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .unwrap_or(Err(DeliveryFailure::Timeout))
}

/// A connection to `host:port` leaving from `from` when given (and of the same family), as a
/// PBX's reports leave from its own address.
async fn connect_from(
    from: Option<IpAddr>,
    host: &str,
    port: u16,
) -> Option<tokio::net::TcpStream> {
    let to = tokio::net::lookup_host((host, port)).await.ok()?.next()?;
    match from {
        Some(ip) if ip.is_ipv4() == to.is_ipv4() => {
            let socket = if ip.is_ipv4() {
                tokio::net::TcpSocket::new_v4()
            } else {
                tokio::net::TcpSocket::new_v6()
            }
            .ok()?;
            socket.bind(SocketAddr::new(ip, 0)).ok()?;
            socket.connect(to).await.ok()
        }
        _ => tokio::net::TcpStream::connect(to).await.ok(),
    }
}

/// Aborts a task when dropped (the simulator's event pump ends with its server).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod event_tests {
    use super::*;

    #[test]
    fn a_login_without_version_gets_v1_reports() {
        let peer: IpAddr = "10.0.0.9".parse().unwrap();
        let v2 = EventReceiver::of(
            &json!({"username": "api", "port": "8260", "url": "events/hq", "version": "2.0.0"}),
            peer,
        )
        .unwrap();
        assert_eq!(
            v2,
            EventReceiver {
                host: "10.0.0.9".into(),
                port: 8260,
                path: "/events/hq".into(),
                v2: true
            }
        );
        // A heartbeat's number port and ipaddr; an absolute URL.
        let hb = EventReceiver::of(&json!({"ipaddr": "10.0.0.7", "port": 8261}), peer).unwrap();
        assert_eq!(
            (hb.host.as_str(), hb.port, hb.path.as_str(), hb.v2),
            ("10.0.0.7", 8261, "/", false)
        );
        let abs = EventReceiver::of(
            &json!({"port": "8260", "url": "203.0.113.5:9000/events/hq", "urltag": "1", "version": "2.0.0"}),
            peer,
        )
        .unwrap();
        assert_eq!(
            (abs.host.as_str(), abs.port, abs.path.as_str()),
            ("203.0.113.5", 9000, "/events/hq")
        );
        // No port: nothing registered (a login for polling only).
        assert_eq!(EventReceiver::of(&json!({"username": "api"}), peer), None);
        // The v1 form of a report: `action`, no `sn`, and the exporter reads it as v1.
        let v1 = v1_report(
            &json!({"event": "NewCdr", "callid": "1.1", "status": "ANSWERED", "type": "Inbound", "sn": "1"}),
        );
        let read = crate::pbx::events::parse(v1.to_string().as_bytes()).unwrap();
        assert_eq!(
            (read.format, read.sn),
            (crate::pbx::events::Format::V1, None)
        );
        assert_eq!(read.event.kind(), Some(crate::pbx::events::Kind::NewCdr));
    }
}
