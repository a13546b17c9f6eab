//! The Yeastar PBX API client, whatever the PBX's API family: transport, the grant's lifecycle
//! (login, renewal, logout), the domain queries collectors ask.
//!
//! [`family`] names the families; each is one folder with all of its wire knowledge
//! ([`s_series`]); [`model`] is what they read their answers into. The rest is family-neutral.
//!
//! One [`Client`] per configured PBX owns that PBX's token, its login back-off and the limit on
//! requests in flight to it. A scrape talks to it through a [`Session`], which carries the scrape's
//! deadline and enforces the per-scrape login rules: a failed login is never retried within the
//! scrape, and a token error (20004/20005/20006) costs one new login and one retry of that request.
//! The client knows nothing of metrics; it reports each request and login to an [`Observer`].
//!
//! Logins are the one thing that can hurt the PBX (it locks the exporter's address out after 5
//! failed logins in 10 minutes, counting those whose answer was never read), so they follow the
//! [`ledger`]'s invariant, run as their own task to their own bound (a scrape's deadline never cuts
//! one short, so its answer is always read), and one PBX has at most one login in flight.

pub mod error;
pub mod family;
pub mod gate;
pub mod ledger;
pub mod model;
pub mod p_series;
pub mod s_series;
pub mod tls;
pub mod transport;
pub mod wire;
pub mod words;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tracing::Instrument;

use crate::support::clock::SharedClock;
use crate::support::report::Cause;
use crate::support::secret::Secret;
pub use error::{ApiCode, ApiError, Endpoint, LoginOutcome, Outcome, PbxError, clip};
pub use family::ApiFamily;
use ledger::Failure;
pub use ledger::LoginLedger;
use model::{CallSink, Data, Query};

/// The longest a TCP (and TLS) connection to a PBX may take to open.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// An answer at least this large gives the allocator's free pages back when it is done with.
const RELEASE_AFTER_BYTES: usize = 4 << 20;

/// The shortest bound a login runs to, whatever the scrape's deadline or `--pbx.timeout`: long
/// enough that a slow PBX's answer is read rather than abandoned (an abandoned login may count as
/// a failure at the PBX).
pub const LOGIN_MIN_TIMEOUT: Duration = Duration::from_secs(10);

/// How the exporter authenticates to a PBX.
#[derive(Debug, Clone, PartialEq)]
pub enum Auth {
    /// Log in with a username and password (the family decides what of it the PBX sees: the
    /// S-Series gets the password's MD5).
    Credentials {
        /// The API username.
        username: String,
        /// The password.
        password: Secret,
    },
    /// Use this token and never log in (for sites whose application already holds one).
    StaticToken(Secret),
}

/// Everything the client needs to know about one PBX.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientConfig {
    /// The target's name (`default` in single-PBX mode): the `target` label.
    pub target: String,
    /// The API the PBX speaks.
    pub family: ApiFamily,
    /// Scheme, host and port, e.g. `https://192.168.5.150:8088`.
    pub url: String,
    /// E.g. `/api/v2.0.0`.
    pub api_path: String,
    /// Credentials or static token.
    pub auth: Auth,
    /// The longest any one scrape's PBX work may take.
    pub timeout: Duration,
    /// Requests in flight to this PBX at once.
    pub max_concurrent_requests: usize,
    /// Larger answers are cut off and counted as `decode_error`.
    pub max_response_bytes: usize,
    /// No login for this long after a rejected one (plus up to 10% jitter).
    pub login_backoff: Duration,
    /// A PEM file of CA certificates to trust for this PBX.
    pub ca_file: Option<PathBuf>,
    /// Accept any certificate (self-signed units without a CA file).
    pub insecure_skip_verify: bool,
    /// The HTTP proxy to reach the PBX through (`--pbx.proxy-url`, `proxy_url`): an `https://` PBX
    /// only, tunnelled with `CONNECT` (TLS stays end to end). `None`: straight to the PBX, whatever
    /// the environment says. A secret: its URL may carry the proxy's credentials.
    pub proxy_url: Option<Secret>,
    /// Where this PBX is to send its HTTP event reports (`None`: events off, and login and
    /// heartbeat register nothing).
    pub events: Option<EventsRegistration>,
}

/// The HTTP event receiver a login and each heartbeat register with the PBX (`port`, `url`,
/// `urltag`; the heartbeat also `ipaddr`, which the vendor marks required).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventsRegistration {
    /// The receiver's port.
    pub port: u16,
    /// `events/<target>` (relative to the address the PBX sees the login come from, `urltag`
    /// 0), or `host:port/events/<target>` (absolute, `urltag` 1: for NAT and containers).
    pub url: String,
    /// `url` is absolute.
    pub absolute: bool,
    /// The receiver's address for the heartbeat's `ipaddr`; `None`: the local address this host
    /// reaches the PBX from.
    pub ipaddr: Option<String>,
    /// Addresses the PBX's reports may also come from (`events_source_addresses`: NAT), besides
    /// those its URL's host resolves to.
    pub source_addresses: Vec<std::net::IpAddr>,
}

/// One request as a family builds it: what [`Client`] sends below the API path.
#[derive(Debug)]
pub struct Request<'a> {
    /// The endpoint, for the request counts and the errors.
    pub endpoint: &'a str,
    /// GET or POST.
    pub method: transport::Method,
    /// The path below the API path, and the query (where a token may travel: never logged).
    pub path: String,
    /// The JSON body, if any.
    pub body: Option<Vec<u8>>,
}

/// What a login obtained: the credential requests carry, and when it was obtained or last
/// renewed. The family renews it (a heartbeat, a refresh) once it is older than its
/// `renew_after` (or [`ApiFamily::renew_after`]) and revokes it (logout) when the target goes.
#[derive(Clone, PartialEq)]
pub struct Grant {
    /// The access token.
    pub access: Secret,
    /// When it was obtained or last renewed (unix millis).
    pub renewed_millis: u64,
    /// The token that renews it, for a family that has one (the P-Series' refresh token).
    pub refresh: Option<Secret>,
    /// When it is renewed, if the PBX said how long it lives (`None`: the family's default).
    pub renew_after: Option<Duration>,
    /// When it can no longer be used or renewed (unix millis), if the PBX said.
    pub ends_millis: Option<u64>,
}

impl Grant {
    /// A grant of `access` obtained at `now_millis`, renewed as its family does by default.
    pub fn new(access: Secret, now_millis: u64) -> Self {
        Self {
            access,
            renewed_millis: now_millis,
            refresh: None,
            renew_after: None,
            ends_millis: None,
        }
    }

    /// A P-Series grant from the tokens a `get_token` or `refresh_token` gave at `now_millis`.
    fn of_tokens(t: p_series::Tokens, now_millis: u64) -> Self {
        // Renewable until the refresh token ends; usable until the access token does.
        let lasts = match (&t.refresh, t.refresh_lifetime) {
            (Some(_), Some(r)) => r.max(t.access_lifetime),
            _ => t.access_lifetime,
        };
        Self {
            access: t.access,
            renewed_millis: now_millis,
            refresh: t.refresh,
            renew_after: Some(p_series::renew_after(t.access_lifetime)),
            ends_millis: Some(now_millis.saturating_add(lasts.as_millis() as u64)),
        }
    }

    /// As the state file keeps it, if it says when it ends.
    fn saved(&self) -> Option<ledger::SavedGrant> {
        Some(ledger::SavedGrant {
            access: self.access.expose().to_string(),
            refresh: self.refresh.as_ref().map(|r| r.expose().to_string()),
            renewed_ms: self.renewed_millis,
            renew_after_ms: self.renew_after?.as_millis() as u64,
            ends_ms: self.ends_millis?,
        })
    }

    /// A grant the state file kept.
    fn restored(g: ledger::SavedGrant) -> Self {
        Self {
            access: Secret::new(g.access),
            renewed_millis: g.renewed_ms,
            refresh: g.refresh.map(Secret::new),
            renew_after: Some(Duration::from_millis(g.renew_after_ms)),
            ends_millis: Some(g.ends_ms),
        }
    }
}

impl std::fmt::Debug for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grant")
            .field("access", &self.access)
            .field("renewed_millis", &self.renewed_millis)
            .field("refresh", &self.refresh)
            .field("renew_after", &self.renew_after)
            .finish()
    }
}

/// Receives what the client did, to count it.
pub trait Observer: Send + Sync {
    /// A request was sent to `endpoint` and ended with `outcome` after `elapsed`.
    fn request(&self, target: &str, endpoint: &str, outcome: Outcome, elapsed: Duration);
    /// A login attempt ended with `outcome`.
    fn login(&self, target: &str, outcome: LoginOutcome);
    /// Logins to `target` were suspended (`true`) or allowed again (`false`).
    fn login_suspended(&self, target: &str, suspended: bool);
}

/// An observer that ignores everything (the simulator's own tools, tests).
#[derive(Debug, Default)]
pub struct NoopObserver;

impl Observer for NoopObserver {
    fn request(&self, _: &str, _: &str, _: Outcome, _: Duration) {}
    fn login(&self, _: &str, _: LoginOutcome) {}
    fn login_suspended(&self, _: &str, _: bool) {}
}

/// Why the client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The CA file could not be read or parsed.
    #[error("ca_file {}", path.display())]
    CaFile {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        #[source]
        cause: Cause,
    },
    /// rustls refused the settings.
    #[error("HTTP client")]
    Http(#[source] Cause),
}

/// What an HTTP client depends on: targets that agree on these share one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HttpSettings {
    /// The CA bundle to trust.
    pub ca_file: Option<PathBuf>,
    /// Accept any certificate.
    pub insecure_skip_verify: bool,
    /// The HTTP proxy, if any.
    pub proxy: Option<Secret>,
}

impl HttpSettings {
    /// The settings of `cfg`.
    pub fn of(cfg: &ClientConfig) -> Self {
        Self {
            ca_file: cfg.ca_file.clone(),
            insecure_skip_verify: cfg.insecure_skip_verify,
            proxy: cfg.proxy_url.clone(),
        }
    }
}

/// An HTTP client for PBXes with these TLS settings. Timeouts are set per request.
///
/// It never follows a redirect (a 3xx is an error naming where it points): a redirected login
/// would carry the password's MD5, and a redirected query the token, to another address. No
/// connection pool, proxy or keepalive either ([`transport`], reqwest configured so): the PBX's web
/// server closes every connection after one answer, and an HTTP proxy from the environment must
/// never see the PBX's credentials.
///
/// `servers` is how many PBXes will share it: TLS sessions of all of them are kept for resumption.
pub fn http_client(
    settings: &HttpSettings,
    servers: usize,
) -> Result<transport::HttpClient, BuildError> {
    transport::HttpClient::new(
        tls::client_config(settings, servers)?,
        settings.proxy.as_ref(),
    )
    .map_err(|e| BuildError::Http(Cause::new(e)))
}

#[derive(Debug)]
struct Suspension {
    until_millis: u64,
}

type SharedLogin = Shared<BoxFuture<'static, Result<Secret, PbxError>>>;

/// The client of one PBX. Cheap to share (`Arc`); its state lives as long as the target's config.
pub struct Client {
    cfg: ClientConfig,
    /// Its log span: `target_name` and `pbx` on every line about this PBX ([`crate::logging`]).
    span: tracing::Span,
    http: transport::HttpClient,
    /// Where the PBX is, parsed from `cfg.url` once (a URL the config refused cannot get here; if
    /// one did, every request fails with these words instead of a panic).
    origin: Result<transport::Origin, String>,
    limiter: Semaphore,
    /// The grant held: its token, and when it was obtained or last renewed.
    grant: Mutex<Option<Grant>>,
    /// Where its grant is kept across restarts (`<url> <username>`), for a family whose PBXes
    /// cap the tokens an application holds.
    grant_key: Option<String>,
    /// Whether the held token has answered a request since its login (a token refused on its
    /// first use is a failed login, not a reason for another).
    token_proven: AtomicBool,
    login_lock: tokio::sync::Mutex<()>,
    /// The login in flight (one per PBX), and its number.
    login_inflight: Mutex<Option<(u64, SharedLogin)>>,
    login_seq: AtomicU64,
    suspension: Mutex<Option<Suspension>>,
    /// Whether `login_suspended(true)` was reported last.
    reported_suspended: AtomicBool,
    /// Logged out for good (shutdown, or removed or replaced by a reload): a login that ends
    /// after this logs its token out at once.
    retired: AtomicBool,
    ledger: Arc<LoginLedger>,
    /// The PBX host, the ledger's key.
    host: String,
    observer: Arc<dyn Observer>,
    clock: SharedClock,
    /// What its PBX's event reports must show (path, source address, serial number).
    gate: gate::EventGate,
    /// Ask the PBX's serial number after each login (its events are on, over HTTP or TCP).
    wants_serial: AtomicBool,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("target", &self.cfg.target)
            .field("url", &self.cfg.url)
            .field("token", &"<secret>")
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client for one PBX, with an HTTP client of its own and a ledger in memory.
    pub fn new(
        cfg: ClientConfig,
        observer: Arc<dyn Observer>,
        clock: SharedClock,
    ) -> Result<Self, BuildError> {
        let http = http_client(&HttpSettings::of(&cfg), 1)?;
        Ok(Self::with_http(
            cfg,
            http,
            Arc::new(LoginLedger::in_memory()),
            observer,
            clock,
        ))
    }

    /// A client for one PBX sending through `http`, which must have been built by
    /// [`http_client`] for this config's [`HttpSettings`] (targets with the same TLS settings share
    /// one: its root store is the largest part of a target's memory), writing its logins in
    /// `ledger` (one per process).
    pub fn with_http(
        cfg: ClientConfig,
        http: transport::HttpClient,
        ledger: Arc<LoginLedger>,
        observer: Arc<dyn Observer>,
        clock: SharedClock,
    ) -> Self {
        // A family whose PBXes cap the tokens an application holds takes up the grant a previous
        // process kept (`--pbx.state-dir`) rather than minting another.
        let grant_key = grant_key(&cfg);
        let now = clock.now_millis();
        let grant = match &cfg.auth {
            Auth::StaticToken(t) => Some(Grant::new(t.clone(), now)),
            Auth::Credentials { .. } => grant_key
                .as_deref()
                .and_then(|k| ledger.saved_grant(k, now))
                .map(Grant::restored),
        };
        let gate = gate::EventGate::new(
            cfg.events
                .as_ref()
                .map(|e| e.source_addresses.clone())
                .unwrap_or_default(),
        );
        Self {
            limiter: Semaphore::new(cfg.max_concurrent_requests.max(1)),
            host: ledger::host_of(&cfg.url),
            origin: transport::Origin::new(&cfg.url, &cfg.api_path),
            span: crate::logging::span(&cfg.target, &cfg.url),
            cfg,
            http,
            grant: Mutex::new(grant),
            grant_key,
            token_proven: AtomicBool::new(true),
            login_lock: tokio::sync::Mutex::new(()),
            login_inflight: Mutex::new(None),
            login_seq: AtomicU64::new(0),
            suspension: Mutex::new(None),
            reported_suspended: AtomicBool::new(false),
            retired: AtomicBool::new(false),
            ledger,
            observer,
            clock,
            gate,
            wants_serial: AtomicBool::new(false),
        }
    }

    /// The configuration it was built from.
    pub fn config(&self) -> &ClientConfig {
        &self.cfg
    }

    /// The span its work runs in (`target_name`, `pbx`): enter or instrument with it so that
    /// lines about this PBX name it.
    pub fn span(&self) -> &tracing::Span {
        &self.span
    }

    /// What its PBX's event reports must show ([`gate`]).
    pub fn event_gate(&self) -> &gate::EventGate {
        &self.gate
    }

    /// Asks the PBX's serial number after each login (`deviceinfo/query`), for the event gate:
    /// a target whose events are read over TCP (over HTTP the client knows it by itself).
    pub fn want_serial(&self) {
        self.wants_serial.store(true, Ordering::SeqCst);
    }

    fn wants_serial(&self) -> bool {
        self.cfg.events.is_some() || self.wants_serial.load(Ordering::SeqCst)
    }

    /// Asks `deviceinfo/query` for the PBX's serial number with `token` (a login's or a
    /// heartbeat's), by `bound`, and tells the event gate.
    async fn fetch_serial(&self, token: &Secret, bound: Instant) {
        // Events (and so serial numbers) are S-Series only for now: the config refuses them on
        // another family's target.
        let ApiFamily::S(_) = self.cfg.family else {
            return;
        };
        let request = s_series::request("deviceinfo/query", Some(token), &json!({}));
        let serial = match self
            .send(request, s_series::queries::read_device, bound)
            .await
        {
            Ok(device) => match device.and_then(|d| d.serial) {
                Some(sn) if !sn.trim().is_empty() => gate::Serial::Known(sn.trim().to_string()),
                _ => gate::Serial::Unreported,
            },
            Err(e) if e.is_unsupported() => gate::Serial::Unreported,
            Err(e) => {
                tracing::debug!(cause = %words::cause(&e), "deviceinfo/query for the serial number failed; asked again after the next heartbeat");
                gate::Serial::Unknown
            }
        };
        if let gate::Serial::Unreported = serial {
            tracing::info!(
                "the PBX reports no serial number (deviceinfo/query): its event reports are checked by path and source address only"
            );
        }
        self.gate.set_serial(serial);
    }

    /// The addresses the PBX's host resolves to now (an IP literal is itself); `None` when the
    /// lookup fails or takes over 2 seconds.
    async fn resolve(&self) -> Option<Vec<std::net::IpAddr>> {
        let origin = self.origin.as_ref().ok()?;
        let (host, port) = origin.host_port();
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = host.parse::<std::net::IpAddr>() {
            return Some(vec![ip]);
        }
        let found = tokio::time::timeout(
            Duration::from_secs(2),
            tokio::net::lookup_host((host, port)),
        )
        .await
        .ok()?
        .ok()?;
        let mut ips: Vec<std::net::IpAddr> = found.map(|a| a.ip()).collect();
        ips.sort();
        ips.dedup();
        (!ips.is_empty()).then_some(ips)
    }

    /// A session for one scrape, ending at `deadline`.
    pub fn session(self: &Arc<Self>, deadline: Instant) -> Session<'_> {
        Session {
            client: self,
            deadline,
            logins: AtomicU32::new(0),
            login_failed: Mutex::new(None),
            heartbeat_tried: AtomicBool::new(false),
        }
    }

    /// Whether logins are suspended now — after a rejected login (the back-off), or because the
    /// ledger already holds the most failed attempts allowed in 10 minutes — and for how long.
    /// Clears an expired suspension.
    pub fn suspended_for(&self) -> Option<Duration> {
        let now = self.clock.now_millis();
        let backoff = {
            let mut s = lock(&self.suspension);
            // A suspension never lasts longer than a back-off from now: the clock may have been
            // stepped back since it began.
            let base = self.cfg.login_backoff.as_millis() as u64;
            let longest = now.saturating_add(base + base / 10);
            if let Some(sus) = s.as_mut() {
                sus.until_millis = sus.until_millis.min(longest);
            }
            match &*s {
                Some(sus) if sus.until_millis > now => Some(sus.until_millis),
                Some(_) => {
                    *s = None;
                    None
                }
                None => None,
            }
        };
        let ledger = match self.cfg.auth {
            Auth::Credentials { .. } => self.ledger.allowed(&self.host, now).err(),
            Auth::StaticToken(_) => None,
        };
        let until = backoff.max(ledger);
        let suspended = until.is_some();
        if self.reported_suspended.swap(suspended, Ordering::SeqCst) != suspended {
            self.observer.login_suspended(&self.cfg.target, suspended);
        }
        until.map(|u| Duration::from_millis(u.saturating_sub(now)))
    }

    /// At start: a rejection that the ledger remembers from before a restart suspends logins
    /// for the rest of its back-off, as if the process had not restarted.
    pub fn restore_suspension(&self) {
        if !matches!(self.cfg.auth, Auth::Credentials { .. }) {
            return;
        }
        let _span = self.span.enter();
        let now = self.clock.now_millis();
        if let Some(at) = self.ledger.last_rejection(&self.host, now) {
            let until = at + self.cfg.login_backoff.as_millis() as u64;
            if until > now {
                *lock(&self.suspension) = Some(Suspension {
                    until_millis: until,
                });
                tracing::warn!(
                    next_attempt_in_secs = (until - now) / 1000,
                    "a login was rejected before this restart (login ledger): logins stay suspended for the rest of the back-off"
                );
            }
        }
        self.suspended_for();
    }

    /// Takes over `old`'s token and login suspension (a reload that changed only settings such
    /// as the timeout must not cost the PBX a login, nor lift a suspension).
    pub fn adopt_session(&self, old: &Client) {
        if matches!(self.cfg.auth, Auth::Credentials { .. })
            && let Some(grant) = lock(&old.grant).take()
        {
            *lock(&self.grant) = Some(grant);
            self.token_proven
                .store(old.token_proven.load(Ordering::SeqCst), Ordering::SeqCst);
            // The PBX still posts to the path that token's login registered.
            self.gate.adopt(&old.gate);
            self.keep_grant();
        }
        let until = lock(&old.suspension).as_ref().map(|s| s.until_millis);
        if let Some(until_millis) = until {
            *lock(&self.suspension) = Some(Suspension { until_millis });
        }
    }

    /// Ends the token with `logout` (shutdown, removed target) and retires the client: a login
    /// still in flight logs its token out as soon as it arrives. Static tokens are left alone:
    /// they belong to someone else.
    pub async fn logout(&self, deadline: Instant) {
        self.logout_in_span(deadline)
            .instrument(self.span.clone())
            .await
    }

    async fn logout_in_span(&self, deadline: Instant) {
        let token = {
            let mut held = lock(&self.grant);
            self.retired.store(true, Ordering::SeqCst);
            if matches!(self.cfg.auth, Auth::StaticToken(_)) {
                return;
            }
            held.take()
        };
        if let Some(grant) = token {
            self.send_logout(&grant.access, deadline).await;
            // Revoked (or as good as: a token nobody will use again): not to be taken up, even
            // by a process started the moment this one ends.
            self.keep_grant();
            if self.grant_key.is_some() {
                self.ledger.durable().await;
            }
        }
    }

    async fn send_logout(&self, token: &Secret, deadline: Instant) {
        let result = match self.cfg.family {
            ApiFamily::S(_) => {
                let request = s_series::request("logout", Some(token), &json!({}));
                self.send(request, |b| s_series::bare_answer("logout", b), deadline)
                    .await
            }
            // Frees the token's slot of the application's 8.
            ApiFamily::P(_) => {
                let request = p_series::get("del_token", token, &[]);
                self.send(request, |b| p_series::bare_answer("del_token", b), deadline)
                    .await
            }
        };
        match result {
            Ok(_) => tracing::debug!("logged out"),
            Err(e) => {
                tracing::debug!(cause = %words::cause(&e), "logout failed")
            }
        }
    }

    /// Writes the grant held now to the state file (or forgets it there when none is held).
    fn keep_grant(&self) {
        let Some(key) = &self.grant_key else {
            return;
        };
        let now = self.clock.now_millis();
        let saved = lock(&self.grant).as_ref().and_then(Grant::saved);
        match saved {
            Some(g) => self.ledger.save_grant(key, g, now),
            None => self.ledger.forget_grant(key, now),
        }
    }

    /// The PBX refused this target's TCP event login on `port`: its logins (API and TCP) are
    /// suspended for the back-off, as after a rejected API login.
    pub fn suspend_after_refused_tcp_login(&self, port: u16) {
        self.suspend(&PbxError::TcpLoginRefused { port });
    }

    fn suspend(&self, why: &PbxError) {
        let base = self.cfg.login_backoff;
        let jitter_max = (base.as_millis() as u64) / 10;
        let jitter = if jitter_max > 0 {
            fastrand::u64(0..=jitter_max)
        } else {
            0
        };
        let wait_ms = base.as_millis() as u64 + jitter;
        let until = self.clock.now_millis() + wait_ms;
        *lock(&self.suspension) = Some(Suspension {
            until_millis: until,
        });
        self.suspended_for();
        tracing::warn!(
            cause = %words::cause(why),
            next_attempt = %crate::logging::rfc3339(until / 1000),
            next_attempt_in_secs = wait_ms / 1000,
            "logins to the PBX suspended (at most 2 unsuccessful logins per 10 minutes, the PBX locks out at 5); fix the credentials or unblock the host in the PBX, then wait or reload"
        );
    }

    /// How long a login may take, whatever the scrape's deadline.
    fn login_timeout(&self) -> Duration {
        self.cfg.timeout.max(LOGIN_MIN_TIMEOUT)
    }

    /// The login in flight, if any.
    fn login_in_flight(&self) -> Option<SharedLogin> {
        lock(&self.login_inflight).as_ref().map(|(_, f)| f.clone())
    }

    /// Starts a login as a task of its own: it runs to its own bound even when every scrape
    /// waiting for it has gone, so its answer is always read and counted.
    fn start_login(self: &Arc<Self>) -> SharedLogin {
        // The slot stays locked until it holds the new login, so the task (which clears it when
        // done) cannot finish before it is there.
        let mut slot = lock(&self.login_inflight);
        if let Some((_, f)) = &*slot {
            return f.clone();
        }
        let seq = self.login_seq.fetch_add(1, Ordering::SeqCst);
        let client = self.clone();
        let span = self.span.clone();
        let task = tokio::spawn(
            async move {
                let result = client.login_once().await;
                let mut slot = lock(&client.login_inflight);
                if slot.as_ref().is_some_and(|(s, _)| *s == seq) {
                    *slot = None;
                }
                result
            }
            .instrument(span),
        );
        let shared = async move {
            task.await
                .unwrap_or_else(|e| Err(PbxError::NotLoggedIn(format!("login task ended: {e}"))))
        }
        .boxed()
        .shared();
        *slot = Some((seq, shared.clone()));
        shared
    }

    /// A heartbeat that keeps the event registration: `ipaddr` (required by the vendor), `port`,
    /// `url`, `urltag`, `version`.
    async fn heartbeat_body(&self, events: &EventsRegistration) -> Value {
        let ipaddr = match &events.ipaddr {
            Some(ip) => ip.clone(),
            None => match &self.origin {
                Ok(origin) => local_address_towards(origin).await,
                Err(_) => None,
            }
            .map(|ip| ip.to_string())
            .unwrap_or_default(),
        };
        s_series::heartbeat_body(&ipaddr, events, self.gate.current().as_ref())
    }

    /// One login, written in the ledger before it is sent and settled there when it ends.
    async fn login_once(&self) -> Result<Secret, PbxError> {
        let Auth::Credentials { username, password } = &self.cfg.auth else {
            return Err(PbxError::NotLoggedIn("static-token mode".into()));
        };
        let target = &self.cfg.target;
        let now = self.clock.now_millis();
        if let Err(at) = self.ledger.allowed(&self.host, now) {
            return Err(PbxError::LoginSuspended {
                retry_in_secs: at.saturating_sub(now).div_ceil(1000),
            });
        }
        let id = self.ledger.begin_durable(&self.host, now).await;
        // A fresh path for this login: it becomes the registered one if the login succeeds.
        let secret = match &self.cfg.events {
            Some(_) => gate::new_secret().or_else(|| self.gate.current()),
            None => None,
        };
        let bound = Instant::now() + self.login_timeout();
        let (login, result) = match self.cfg.family {
            ApiFamily::S(_) => {
                let body = s_series::login_body(
                    username,
                    password,
                    self.cfg.events.as_ref(),
                    secret.as_ref(),
                );
                let request = s_series::request("login", None, &body);
                drop(body);
                let result = self.send(request, s_series::login_token, bound).await;
                let now = self.clock.now_millis();
                (
                    s_series::endpoint("login"),
                    result.map(|t| t.map(|t| Grant::new(t, now))),
                )
            }
            ApiFamily::P(_) => {
                let request =
                    p_series::post("get_token", &p_series::token_body(username, password));
                let result = self
                    .send(request, |b| p_series::read_tokens("get_token", b), bound)
                    .await;
                let now = self.clock.now_millis();
                (
                    p_series::endpoint("get_token"),
                    result.map(|t| t.map(|t| Grant::of_tokens(t, now))),
                )
            }
        };
        let now = self.clock.now_millis();
        let err = match result {
            Ok(grant) => match grant {
                Some(grant) => {
                    let t = grant.access.clone();
                    self.ledger.erase(&self.host, id, now);
                    self.observer.login(target, LoginOutcome::Success);
                    let kept = {
                        let mut held = lock(&self.grant);
                        if self.retired.load(Ordering::SeqCst) {
                            false
                        } else {
                            *held = Some(grant);
                            self.token_proven.store(false, Ordering::SeqCst);
                            true
                        }
                    };
                    if !kept {
                        // Retired while the login was out: this token is nobody's; end it.
                        self.send_logout(&t, Instant::now() + self.login_timeout())
                            .await;
                        return Err(PbxError::NotLoggedIn(
                            "the target was removed or replaced by a reload".into(),
                        ));
                    }
                    if let Some(secret) = secret {
                        let resolved = self.resolve().await;
                        self.gate.rotated(secret, resolved, self.clock.now_millis());
                    }
                    if self.wants_serial() {
                        self.fetch_serial(&t, bound).await;
                    }
                    self.keep_grant();
                    if self.grant_key.is_some() {
                        // On disk before it is used: a crash now must not cost a slot.
                        self.ledger.durable().await;
                    }
                    tracing::debug!("logged in");
                    return Ok(t);
                }
                None => PbxError::Decode {
                    endpoint: login,
                    reason: "success without a token".into(),
                },
            },
            Err(PbxError::Api { error, .. }) if error.code == ApiCode::LoginRejected => {
                PbxError::LoginRejected(error)
            }
            Err(PbxError::Api { error, .. })
                if matches!(error.code, ApiCode::LoginLocked | ApiCode::IpForbidden) =>
            {
                PbxError::LoginLocked(error)
            }
            Err(PbxError::Api { error, .. }) if error.code == ApiCode::TokenCap => {
                PbxError::TokenCap(error)
            }
            Err(e) => e,
        };
        let (kind, outcome) = match &err {
            PbxError::LoginRejected(_) => (Some(Failure::Rejected), LoginOutcome::Rejected),
            PbxError::LoginLocked(_) => (Some(Failure::Locked), LoginOutcome::Locked),
            // Not the credentials, but a refusal all the same: the back-off lets tokens expire.
            PbxError::TokenCap(_) => (Some(Failure::Locked), LoginOutcome::Locked),
            // Never left this host: the PBX did not see it.
            PbxError::Connect { sent: false, .. } => (None, LoginOutcome::Error),
            _ => (Some(Failure::Unseen), LoginOutcome::Error),
        };
        match kind {
            Some(k) => {
                self.ledger.fail(&self.host, id, k, now);
                // A rejection's back-off must survive a restart right after it (a crash loop
                // would otherwise log in again at once): on disk before the scrape answers.
                if matches!(k, Failure::Rejected | Failure::Locked) {
                    self.ledger.durable().await;
                }
            }
            None => self.ledger.erase(&self.host, id, now),
        }
        self.observer.login(target, outcome);
        match kind {
            Some(Failure::Rejected | Failure::Locked) => self.suspend(&err),
            Some(_) => tracing::warn!(
                cause = %words::cause(&err),
                failed_attempts_in_window = self.ledger.count(&self.host, now),
                "a login ended without a token; the PBX may count it as a failed login, so the exporter does too (at most 2 per 10 minutes)"
            ),
            None => {}
        }
        Err(err)
    }

    /// One request: waits for a slot, sends, reads at most `max_response_bytes`, decodes with the
    /// family's `decode`. Counted once sent; a request still waiting for a slot at the deadline was
    /// never sent and is not.
    async fn send<T>(
        &self,
        request: Request<'_>,
        decode: impl FnOnce(&[u8]) -> Result<T, PbxError>,
        deadline: Instant,
    ) -> Result<T, PbxError> {
        let (endpoint, method) = (request.endpoint, request.method);
        let timeout = || PbxError::Timeout {
            endpoint: Endpoint::new(method, endpoint),
        };
        let _permit = match tokio::time::timeout_at(deadline, self.limiter.acquire()).await {
            Ok(Ok(p)) => p,
            // The semaphore is never closed; both arms mean "no slot before the deadline".
            _ => return Err(timeout()),
        };
        let start = Instant::now();
        let result = match tokio::time::timeout_at(deadline, self.exchange(request, decode)).await {
            Ok(r) => r,
            Err(_) => Err(timeout()),
        };
        let outcome = match &result {
            Ok(_) => Outcome::Success,
            Err(e) => e.outcome(),
        };
        let elapsed = start.elapsed();
        // The request's own line at trace level: endpoint, outcome and time, never the URL (its
        // query holds the token).
        tracing::trace!(
            target_name = %self.cfg.target,
            endpoint,
            %outcome,
            elapsed_ms = elapsed.as_millis() as u64,
            "PBX request"
        );
        self.observer
            .request(&self.cfg.target, endpoint, outcome, elapsed);
        result
    }

    /// What a redirect's `Location` points at (scheme, host and port only), and what to do.
    fn redirect_error(&self, endpoint: Endpoint, status: u16, location: Option<&str>) -> PbxError {
        let location = location.unwrap_or("").trim();
        let origin = match location.split_once("://") {
            Some((scheme, rest)) => {
                let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
                let authority = authority.rsplit('@').next().unwrap_or("");
                Some(format!("{}://{authority}", scheme.to_ascii_lowercase()))
            }
            None => None,
        };
        let (location, hint) = match origin {
            Some(o) if o.eq_ignore_ascii_case(&self.cfg.url) => (
                clip(&o, 200),
                "a path on the same PBX: check the API path (--pbx.api-path) and that the API is enabled".to_string(),
            ),
            Some(o) => (
                clip(&o, 200),
                format!(
                    "set the target's url (--pbx.url) to {} (with default web settings the PBX moves plain HTTP on port 80 to HTTPS on 8088)",
                    clip(&o, 200)
                ),
            ),
            None if location.is_empty() => (
                "nowhere (no Location header)".to_string(),
                "check the target's url (--pbx.url): HTTPS on port 8088 is the vendor's default".to_string(),
            ),
            None => (
                "a path on the same PBX".to_string(),
                "check the API path (--pbx.api-path) and that the API is enabled".to_string(),
            ),
        };
        PbxError::Redirect {
            endpoint,
            status,
            location,
            hint,
        }
    }

    async fn exchange<T>(
        &self,
        request: Request<'_>,
        decode_answer: impl FnOnce(&[u8]) -> Result<T, PbxError>,
    ) -> Result<T, PbxError> {
        use transport::{Answer, Failure};
        let (endpoint, method) = (request.endpoint, request.method);
        let connect = |sent: bool, cause: error::Transport| PbxError::Connect {
            endpoint: Endpoint::new(method, endpoint),
            sent,
            cause: Cause::new(cause),
        };
        let decode = |reason: String| PbxError::Decode {
            endpoint: Endpoint::new(method, endpoint),
            reason,
        };
        let origin = match &self.origin {
            Ok(o) => o,
            Err(e) => return Err(connect(false, error::Transport::words(e.clone()))),
        };
        let cap = self.cfg.max_response_bytes;
        let base = origin.base_path();
        let mut path = String::with_capacity(base.len() + request.path.len());
        path.push_str(base);
        path.push_str(&request.path);
        drop(request.path);
        let answer = self
            .http
            .send(origin, request.method, path, request.body, cap)
            .await;
        match answer {
            Ok(Answer::Ok(bytes)) => {
                let decoded = decode_answer(&bytes);
                let len = bytes.len();
                drop(bytes);
                // Big answers leave pages the allocator keeps while the exporter idles; hand
                // them back once this one is done with.
                if len >= RELEASE_AFTER_BYTES {
                    crate::support::alloc::release_free_memory();
                }
                decoded
            }
            Ok(Answer::Redirect { status, location }) => Err(self.redirect_error(
                Endpoint::new(method, endpoint),
                status,
                location.as_deref(),
            )),
            Ok(Answer::Status(status)) => Err(PbxError::Http {
                endpoint: Endpoint::new(method, endpoint),
                status,
            }),
            Err(Failure::Malformed(cause)) => Err(PbxError::Malformed {
                endpoint: Endpoint::new(method, endpoint),
                cause: Cause::new(cause),
            }),
            Err(Failure::Connect(cause)) => Err(connect(false, cause)),
            Err(Failure::Exchange(cause)) => Err(connect(true, cause)),
            Err(Failure::Body(cause)) => Err(decode(format!("body: {cause}"))),
            Err(Failure::TooLarge) => {
                Err(decode(format!("answer larger than the {cap}-byte limit")))
            }
        }
    }
}

/// One scrape's use of a [`Client`].
pub struct Session<'a> {
    client: &'a Arc<Client>,
    deadline: Instant,
    logins: AtomicU32,
    login_failed: Mutex<Option<PbxError>>,
    heartbeat_tried: AtomicBool,
}

/// Logins one scrape may make: the first, and one after a token expired mid-scrape.
const MAX_LOGINS_PER_SCRAPE: u32 = 2;

impl Session<'_> {
    /// The scrape's deadline.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Calls `endpoint` with `body`, logging in first if needed, and once more on a token error
    /// (unless the token came from a login just now: then the PBX refused what it had just
    /// issued, and that counts as a failed login).
    ///
    /// `build` makes the family's request for a token, `decode` reads its answer; the family's
    /// queries call this ([`s_series::queries`]), collectors call the queries.
    pub async fn call<'e, T>(
        &self,
        build: impl Fn(&Secret) -> Request<'e>,
        decode: impl Fn(&[u8]) -> Result<T, PbxError>,
    ) -> Result<T, PbxError> {
        let client = self.client;
        let token = self.token().await?;
        match client.send(build(&token), &decode, self.deadline).await {
            Err(PbxError::TokenExpired { error, .. })
                if matches!(client.cfg.auth, Auth::Credentials { .. }) =>
            {
                // Forget this token (unless a concurrent request already replaced it).
                let fresh = {
                    let mut held = lock(&client.grant);
                    if held.as_ref().map(|g| &g.access) == Some(&token) {
                        *held = None;
                        !client.token_proven.load(Ordering::SeqCst)
                    } else {
                        false
                    }
                };
                client.keep_grant();
                if fresh {
                    let err = PbxError::FreshTokenRefused(error);
                    client
                        .ledger
                        .fail_after_token(&client.host, client.clock.now_millis());
                    client.suspend(&err);
                    return Err(err);
                }
                let token = self.token().await?;
                let result = client.send(build(&token), &decode, self.deadline).await;
                self.proven(&token, &result);
                result
            }
            other => {
                self.proven(&token, &other);
                other
            }
        }
    }

    /// Request `part` (of [`ApiFamily::call_parts`]) of the call list `query`
    /// ([`Query::ActiveCalls`], [`Query::InternalCalls`]), fed into `S` as the answer is read.
    pub async fn calls<S: CallSink>(&self, query: Query, part: usize) -> Result<S, PbxError> {
        match self.client.cfg.family {
            ApiFamily::S(_) => s_series::queries::calls(self, query, part).await,
            ApiFamily::P(_) => p_series::queries::calls(self, query, part).await,
        }
    }

    /// The answer of a one-request query ([`Query::Trunks`], [`Query::Extensions`],
    /// [`Query::Device`]).
    pub async fn query(&self, query: Query) -> Result<Data, PbxError> {
        match self.client.cfg.family {
            ApiFamily::S(_) => s_series::queries::one(self, query).await,
            ApiFamily::P(_) => p_series::queries::one(self, query).await,
        }
    }

    /// The queues and their state.
    pub async fn queues(&self) -> Result<Vec<model::Queue>, PbxError> {
        match self.client.cfg.family {
            ApiFamily::S(_) => s_series::queries::queues(self).await,
            ApiFamily::P(_) => Err(p_series::queries::queues_unread()),
        }
    }

    /// Notes that `token` answered a request.
    fn proven<T>(&self, token: &Secret, result: &Result<T, PbxError>) {
        if !matches!(result, Err(PbxError::TokenExpired { .. }))
            && lock(&self.client.grant).as_ref().map(|g| &g.access) == Some(token)
        {
            self.client.token_proven.store(true, Ordering::SeqCst);
        }
    }

    /// A held token that needs nothing done: a static one, or ours and refreshed recently.
    fn fresh_token(&self) -> Option<Secret> {
        let (t, renewed, renew_after) = lock(&self.client.grant)
            .as_ref()
            .map(|g| (g.access.clone(), g.renewed_millis, g.renew_after))?;
        let is_static = matches!(self.client.cfg.auth, Auth::StaticToken(_));
        let age = self.client.clock.now_millis().saturating_sub(renewed);
        let renew_after = renew_after.unwrap_or_else(|| self.client.cfg.family.renew_after());
        (is_static || age < renew_after.as_millis() as u64).then_some(t)
    }

    /// The current token: extended with one `heartbeat` when it nears the PBX's 30-minute
    /// lifetime (gentler than letting it lapse and logging in again), or a new one from `login`
    /// when there is none and logins are allowed.
    async fn token(&self) -> Result<Secret, PbxError> {
        if let Some(t) = self.fresh_token() {
            return Ok(t);
        }
        let client = self.client;
        if matches!(client.cfg.auth, Auth::StaticToken(_)) {
            // A static token is always held; it was dropped only by logout at shutdown.
            return Err(PbxError::NotLoggedIn("static token ended".into()));
        }
        let login_timeout = || PbxError::Timeout {
            endpoint: s_series::endpoint("login"),
        };
        // One login (or heartbeat) decision at a time per PBX: concurrent requests wait here and
        // use its token.
        let Ok(_guard) = tokio::time::timeout_at(self.deadline, client.login_lock.lock()).await
        else {
            return Err(login_timeout());
        };
        if let Some(t) = self.fresh_token() {
            return Ok(t);
        }
        let held = lock(&client.grant).as_ref().map(|g| g.access.clone());
        if let Some(t) = held {
            if self.heartbeat_tried.swap(true, Ordering::SeqCst) {
                return Ok(t);
            }
            match client.cfg.family {
                ApiFamily::S(_) => {
                    if let Some(t) = self.heartbeat(t).await {
                        return Ok(t);
                    }
                }
                ApiFamily::P(_) => {
                    if let Some(t) = self.refresh(t).await {
                        return Ok(t);
                    }
                }
            }
        }
        if let Some(e) = lock(&self.login_failed).clone() {
            return Err(PbxError::NotLoggedIn(crate::support::report::chain(&e)));
        }
        let login = match client.login_in_flight() {
            // Someone's login is out: wait for it, it costs nothing more.
            Some(f) => f,
            None => {
                if client.retired.load(Ordering::SeqCst) {
                    return Err(PbxError::NotLoggedIn(
                        "the target was removed or replaced by a reload".into(),
                    ));
                }
                if let Some(left) = client.suspended_for() {
                    return Err(PbxError::LoginSuspended {
                        retry_in_secs: left.as_millis().div_ceil(1000) as u64,
                    });
                }
                if self.logins.fetch_add(1, Ordering::SeqCst) >= MAX_LOGINS_PER_SCRAPE {
                    return Err(PbxError::NotLoggedIn(
                        "login limit for one scrape reached".into(),
                    ));
                }
                client.start_login()
            }
        };
        // The login goes on to its own bound if this scrape's deadline comes first.
        match tokio::time::timeout_at(self.deadline, login).await {
            Ok(Ok(t)) => Ok(t),
            Ok(Err(e)) => {
                *lock(&self.login_failed) = Some(e.clone());
                Err(e)
            }
            Err(_) => Err(login_timeout()),
        }
    }

    /// S-Series: extends `t` with one `heartbeat` (re-registering the event receiver). `None`:
    /// the PBX no longer knows it (log in again); else the token to use.
    async fn heartbeat(&self, t: Secret) -> Option<Secret> {
        let client = self.client;
        let body = match &client.cfg.events {
            Some(events) => client.heartbeat_body(events).await,
            None => json!({}),
        };
        let request = s_series::request("heartbeat", Some(&t), &body);
        match client
            .send(
                request,
                |b| s_series::bare_answer("heartbeat", b),
                self.deadline,
            )
            .await
        {
            Ok(_) => {
                if let Some(g) = lock(&client.grant).as_mut().filter(|g| g.access == t) {
                    g.renewed_millis = client.clock.now_millis();
                }
                if client.wants_serial() && client.gate.serial_unknown() {
                    client.fetch_serial(&t, self.deadline).await;
                }
                Some(t)
            }
            Err(PbxError::TokenExpired { .. }) => {
                let mut grant = lock(&client.grant);
                if grant.as_ref().map(|g| &g.access) == Some(&t) {
                    *grant = None;
                }
                None
            }
            // Anything else (a firmware without heartbeat, a slow PBX): keep the token and
            // let the query find out.
            Err(_) => Some(t),
        }
    }

    /// P-Series: renews the grant of `t` with its refresh token (a new access and refresh
    /// token; no new slot of the application's 8). `None`: the refresh was refused (its token
    /// ended, or the PBX said no): log in again. A refresh that got no answer keeps `t`, which
    /// lives until its own end; a grant without a refresh token is kept to that end too.
    async fn refresh(&self, t: Secret) -> Option<Secret> {
        let client = self.client;
        let refresh = lock(&client.grant)
            .as_ref()
            .filter(|g| g.access == t)
            .and_then(|g| g.refresh.clone())?;
        let request = p_series::post("refresh_token", &p_series::refresh_body(&refresh));
        let result = client
            .send(
                request,
                |b| p_series::read_tokens("refresh_token", b),
                self.deadline,
            )
            .await;
        let now = client.clock.now_millis();
        match result {
            Ok(Some(tokens)) => {
                let mut held = lock(&client.grant);
                if held.as_ref().map(|g| &g.access) != Some(&t) {
                    // Replaced meanwhile (a reload, a login): that one is current.
                    return held.as_ref().map(|g| g.access.clone());
                }
                let grant = Grant::of_tokens(tokens, now);
                let access = grant.access.clone();
                *held = Some(grant);
                drop(held);
                client.token_proven.store(false, Ordering::SeqCst);
                client.keep_grant();
                tracing::debug!("access token refreshed");
                Some(access)
            }
            Ok(None) | Err(PbxError::TokenExpired { .. } | PbxError::Api { .. }) => {
                if let Err(e) = &result {
                    tracing::debug!(cause = %words::cause(e), "the refresh token was refused; a new token is asked for");
                }
                {
                    let mut grant = lock(&client.grant);
                    if grant.as_ref().map(|g| &g.access) == Some(&t) {
                        *grant = None;
                    }
                }
                client.keep_grant();
                None
            }
            Err(_) => Some(t),
        }
    }
}

/// The key a target's grant is kept under across restarts: `<url> <username>` for a P-Series
/// PBX logged in to with credentials (8 tokens per application, none ended by a new one); none
/// for the S-Series, whose new login ends the old token.
fn grant_key(cfg: &ClientConfig) -> Option<String> {
    match (&cfg.family, &cfg.auth) {
        (ApiFamily::P(_), Auth::Credentials { username, .. }) => {
            Some(format!("{} {username}", cfg.url))
        }
        _ => None,
    }
}

/// Locks a std mutex, recovering from poisoning: the data under these locks (a token, a deadline) is
/// always left consistent, so a panic elsewhere must not take the exporter down with it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The local address this host uses to reach the PBX at `origin` (a connected UDP socket: no
/// packet is sent).
async fn local_address_towards(origin: &transport::Origin) -> Option<std::net::IpAddr> {
    let (host, port) = origin.host_port();
    let unspecified = if host.contains(':') {
        "[::]:0"
    } else {
        "0.0.0.0:0"
    };
    let socket = tokio::net::UdpSocket::bind(unspecified).await.ok()?;
    tokio::time::timeout(Duration::from_secs(2), socket.connect((host, port)))
        .await
        .ok()?
        .ok()?;
    socket.local_addr().ok().map(|a| a.ip())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::support::clock::ManualClock;

    fn client(auth: Auth, clock: SharedClock) -> Arc<Client> {
        let cfg = ClientConfig {
            target: "t".into(),
            family: ApiFamily::default(),
            url: "http://127.0.0.1:9".into(),
            api_path: s_series::API_PATH.into(),
            auth,
            timeout: Duration::from_secs(5),
            max_concurrent_requests: 1,
            max_response_bytes: 1 << 20,
            login_backoff: Duration::from_secs(600),
            ca_file: None,
            insecure_skip_verify: false,
            proxy_url: None,
            events: None,
        };
        Arc::new(Client::with_http(
            cfg,
            transport::HttpClient::plain(),
            Arc::new(LoginLedger::in_memory()),
            Arc::new(NoopObserver),
            clock,
        ))
    }

    /// A grant younger than the family's renewal age is used as it is; an older one is renewed on
    /// its next use (20 minutes for the S-Series, whose tokens live 30); a static token never is.
    #[test]
    fn a_grant_is_renewed_once_older_than_the_family_says() {
        let clock = ManualClock::new(1_700_000_000);
        let shared: SharedClock = clock.clone();
        let ours = client(
            Auth::Credentials {
                username: "api".into(),
                password: Secret::new("pw"),
            },
            shared.clone(),
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        // No grant yet: a login is due.
        assert_eq!(ours.session(deadline).fresh_token(), None);
        *lock(&ours.grant) = Some(Grant::new(Secret::new("tok"), shared.now_millis()));
        assert_eq!(
            ours.session(deadline).fresh_token(),
            Some(Secret::new("tok"))
        );
        clock.advance(ApiFamily::default().renew_after() - Duration::from_millis(1));
        assert!(ours.session(deadline).fresh_token().is_some());
        clock.advance(Duration::from_millis(1));
        assert_eq!(
            ours.session(deadline).fresh_token(),
            None,
            "due for renewal"
        );

        let fixed = client(Auth::StaticToken(Secret::new("static")), shared.clone());
        clock.advance(Duration::from_secs(24 * 3600));
        assert_eq!(
            fixed.session(deadline).fresh_token(),
            Some(Secret::new("static"))
        );
    }

    /// A reload's client takes over the grant (no new login for a settings change) and the
    /// suspension; the old one holds neither after.
    #[test]
    fn a_new_client_adopts_the_grant_and_the_suspension() {
        let clock: SharedClock = ManualClock::new(1_700_000_000);
        let creds = || Auth::Credentials {
            username: "api".into(),
            password: Secret::new("pw"),
        };
        let old = client(creds(), clock.clone());
        *lock(&old.grant) = Some(Grant::new(Secret::new("tok"), 123));
        *lock(&old.suspension) = Some(Suspension {
            until_millis: clock.now_millis() + 60_000,
        });
        let new = client(creds(), clock.clone());
        new.adopt_session(&old);
        assert_eq!(
            lock(&new.grant).clone(),
            Some(Grant::new(Secret::new("tok"), 123))
        );
        assert_eq!(*lock(&old.grant), None);
        assert_eq!(new.suspended_for(), Some(Duration::from_secs(60)));
        // The grant's Debug never shows the token.
        let debug = format!("{:?}", lock(&new.grant));
        assert!(!debug.contains("tok\""), "{debug}");
        assert!(debug.contains("<secret>"), "{debug}");
    }
}
