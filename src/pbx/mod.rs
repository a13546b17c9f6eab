//! The Yeastar S-Series API client: transport, login and token lifecycle, serde types.
//!
//! One [`Client`] per configured PBX owns that PBX's token, its login back-off and the limit on
//! requests in flight to it. A scrape talks to it through a [`Session`], which carries the scrape's
//! deadline and enforces the per-scrape login rules: a failed login is never retried within the
//! scrape, and a token error (20004/20005/20006) costs one new login and one retry of that request.
//! The client knows nothing of metrics; it reports each request and login to an [`Observer`].

pub mod error;
pub mod types;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::clock::SharedClock;
use crate::secret::Secret;
pub use error::{LoginOutcome, Outcome, PbxError, errno_meaning};
use types::{BareAnswer, Envelope, LoginAnswer};

/// How the exporter authenticates to a PBX.
#[derive(Debug, Clone, PartialEq)]
pub enum Auth {
    /// Log in with a username and the MD5 of the password.
    Credentials {
        /// The API username.
        username: String,
        /// The MD5 hex of the password, as `login` wants it.
        password_md5: Secret,
    },
    /// Use this token and never log in (for sites whose application already holds one).
    StaticToken(Secret),
}

/// Everything the client needs to know about one PBX.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientConfig {
    /// The target's name (`default` in single-PBX mode): the `target` label.
    pub target: String,
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
    #[error("ca_file {path}: {reason}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// reqwest refused the settings.
    #[error("HTTP client: {0}")]
    Http(String),
}

/// What an HTTP client depends on: targets that agree on these share one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HttpSettings {
    /// The CA bundle to trust.
    pub ca_file: Option<PathBuf>,
    /// Accept any certificate.
    pub insecure_skip_verify: bool,
}

impl HttpSettings {
    /// The settings of `cfg`.
    pub fn of(cfg: &ClientConfig) -> Self {
        Self {
            ca_file: cfg.ca_file.clone(),
            insecure_skip_verify: cfg.insecure_skip_verify,
        }
    }
}

/// An HTTP client for PBXes with these TLS settings. Timeouts are set per request.
pub fn http_client(settings: &HttpSettings) -> Result<reqwest::Client, BuildError> {
    let mut builder = reqwest::Client::builder()
        // The PBX is on the site's network: an HTTP proxy from the environment must never see
        // its credentials.
        .no_proxy()
        .user_agent(concat!("yeastar-exporter/", env!("CARGO_PKG_VERSION")))
        .danger_accept_invalid_certs(settings.insecure_skip_verify);
    if let Some(path) = &settings.ca_file {
        let ca_error = |reason: String| BuildError::CaFile {
            path: path.clone(),
            reason,
        };
        let pem = std::fs::read(path).map_err(|e| ca_error(e.to_string()))?;
        let certs =
            reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| ca_error(e.to_string()))?;
        if certs.is_empty() {
            return Err(ca_error("no PEM certificate in the file".into()));
        }
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder
        .build()
        .map_err(|e| BuildError::Http(error::transport_reason(e)))
}

#[derive(Debug)]
struct Suspension {
    until_millis: u64,
}

/// The client of one PBX. Cheap to share (`Arc`); its state lives as long as the target's config.
pub struct Client {
    cfg: ClientConfig,
    http: reqwest::Client,
    limiter: Semaphore,
    token: Mutex<Option<Secret>>,
    /// When the token was obtained or last extended (unix millis).
    token_refreshed: Mutex<u64>,
    login_lock: tokio::sync::Mutex<()>,
    suspension: Mutex<Option<Suspension>>,
    observer: Arc<dyn Observer>,
    clock: SharedClock,
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
    /// A client for one PBX, with an HTTP client of its own.
    pub fn new(
        cfg: ClientConfig,
        observer: Arc<dyn Observer>,
        clock: SharedClock,
    ) -> Result<Self, BuildError> {
        let http = http_client(&HttpSettings::of(&cfg))?;
        Ok(Self::with_http(cfg, http, observer, clock))
    }

    /// A client for one PBX sending through `http`, which must have been built by
    /// [`http_client`] for this config's [`HttpSettings`] (targets with the same TLS settings share
    /// one: its root store is the largest part of a target's memory).
    pub fn with_http(
        cfg: ClientConfig,
        http: reqwest::Client,
        observer: Arc<dyn Observer>,
        clock: SharedClock,
    ) -> Self {
        let token = match &cfg.auth {
            Auth::StaticToken(t) => Some(t.clone()),
            Auth::Credentials { .. } => None,
        };
        Self {
            limiter: Semaphore::new(cfg.max_concurrent_requests.max(1)),
            cfg,
            http,
            token: Mutex::new(token),
            token_refreshed: Mutex::new(clock.now_millis()),
            login_lock: tokio::sync::Mutex::new(()),
            suspension: Mutex::new(None),
            observer,
            clock,
        }
    }

    /// The configuration it was built from.
    pub fn config(&self) -> &ClientConfig {
        &self.cfg
    }

    /// A session for one scrape, ending at `deadline`.
    pub fn session(&self, deadline: Instant) -> Session<'_> {
        Session {
            client: self,
            deadline,
            logins: AtomicU32::new(0),
            login_failed: Mutex::new(None),
            heartbeat_tried: AtomicBool::new(false),
        }
    }

    /// Whether logins are suspended now; clears an expired suspension.
    pub fn suspended_for(&self) -> Option<Duration> {
        let now = self.clock.now_millis();
        let mut s = lock(&self.suspension);
        match &*s {
            Some(sus) if sus.until_millis > now => {
                Some(Duration::from_millis(sus.until_millis - now))
            }
            Some(_) => {
                *s = None;
                self.observer.login_suspended(&self.cfg.target, false);
                None
            }
            None => None,
        }
    }

    /// Takes over `old`'s token and login suspension (a reload that changed only settings such
    /// as the timeout must not cost the PBX a login, nor lift a suspension).
    pub fn adopt_session(&self, old: &Client) {
        if matches!(self.cfg.auth, Auth::Credentials { .. })
            && let Some(t) = lock(&old.token).take()
        {
            *lock(&self.token) = Some(t);
            *lock(&self.token_refreshed) = *lock(&old.token_refreshed);
        }
        let until = lock(&old.suspension).as_ref().map(|s| s.until_millis);
        if let Some(until_millis) = until {
            *lock(&self.suspension) = Some(Suspension { until_millis });
        }
    }

    /// Ends the token with `logout` (shutdown, removed target). Static tokens are left alone: they
    /// belong to someone else.
    pub async fn logout(&self, deadline: Instant) {
        if matches!(self.cfg.auth, Auth::StaticToken(_)) {
            return;
        }
        let token = lock(&self.token).take();
        if let Some(token) = token {
            match self
                .send::<BareAnswer>("logout", Some(&token), &json!({}), deadline)
                .await
            {
                Ok(_) => tracing::debug!(target_name = %self.cfg.target, "logged out"),
                Err(e) => {
                    tracing::debug!(target_name = %self.cfg.target, error = %e, "logout failed")
                }
            }
        }
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
        self.observer.login_suspended(&self.cfg.target, true);
        tracing::warn!(
            target_name = %self.cfg.target,
            cause = %why,
            next_attempt_unix = until / 1000,
            next_attempt_in_secs = wait_ms / 1000,
            "logins to the PBX suspended so that it never locks this host out; fix the credentials or unblock the host in the PBX, then wait or reload"
        );
    }

    fn url(&self, endpoint: &str, token: Option<&Secret>) -> String {
        let mut url = String::with_capacity(self.cfg.url.len() + self.cfg.api_path.len() + 64);
        url.push_str(self.cfg.url.trim_end_matches('/'));
        let path = self.cfg.api_path.trim_end_matches('/');
        if !path.starts_with('/') && !path.is_empty() {
            url.push('/');
        }
        url.push_str(path);
        url.push('/');
        url.push_str(endpoint);
        if let Some(t) = token {
            url.push_str("?token=");
            url.push_str(t.expose());
        }
        url
    }

    /// One request: waits for a slot, sends, reads at most `max_response_bytes`, decodes. Counted
    /// once sent; a request still waiting for a slot at the deadline was never sent and is not.
    async fn send<T: DeserializeOwned + Envelope>(
        &self,
        endpoint: &str,
        token: Option<&Secret>,
        body: &Value,
        deadline: Instant,
    ) -> Result<T, PbxError> {
        let timeout = || PbxError::Timeout {
            endpoint: endpoint.to_string(),
        };
        let _permit = match tokio::time::timeout_at(deadline, self.limiter.acquire()).await {
            Ok(Ok(p)) => p,
            // The semaphore is never closed; both arms mean "no slot before the deadline".
            _ => return Err(timeout()),
        };
        let start = Instant::now();
        let result =
            match tokio::time::timeout_at(deadline, self.exchange(endpoint, token, body)).await {
                Ok(r) => r,
                Err(_) => Err(timeout()),
            };
        let outcome = match &result {
            Ok(_) => Outcome::Success,
            Err(e) => e.outcome(),
        };
        self.observer
            .request(&self.cfg.target, endpoint, outcome, start.elapsed());
        result
    }

    async fn exchange<T: DeserializeOwned + Envelope>(
        &self,
        endpoint: &str,
        token: Option<&Secret>,
        body: &Value,
    ) -> Result<T, PbxError> {
        let transport = |e: reqwest::Error| {
            if e.is_timeout() {
                PbxError::Timeout {
                    endpoint: endpoint.to_string(),
                }
            } else {
                PbxError::Connect {
                    endpoint: endpoint.to_string(),
                    reason: error::transport_reason(e),
                }
            }
        };
        let decode = |reason: String| PbxError::Decode {
            endpoint: endpoint.to_string(),
            reason,
        };
        let mut resp = self
            .http
            .post(self.url(endpoint, token))
            .timeout(self.cfg.timeout)
            .header("Content-Type", "application/json; charset=utf-8")
            .body(body.to_string())
            .send()
            .await
            .map_err(transport)?;
        if resp.status() != reqwest::StatusCode::OK {
            return Err(PbxError::Http {
                endpoint: endpoint.to_string(),
                status: resp.status().as_u16(),
            });
        }
        let cap = self.cfg.max_response_bytes;
        let too_large = || decode(format!("answer larger than the {cap}-byte limit"));
        if resp.content_length().is_some_and(|n| n > cap as u64) {
            return Err(too_large());
        }
        let mut buf =
            Vec::with_capacity(resp.content_length().unwrap_or(8192).min(cap as u64) as usize);
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    if buf.len() + chunk.len() > cap {
                        return Err(too_large());
                    }
                    buf.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) if e.is_timeout() => return Err(transport(e)),
                Err(e) => return Err(decode(format!("body: {}", error::transport_reason(e)))),
            }
        }
        decode_answer(endpoint, &buf)
    }
}

/// Decodes a PBX answer to `endpoint`: the type's fields, then its `status` (and `errno`).
pub fn decode_answer<T: DeserializeOwned + Envelope>(
    endpoint: &str,
    bytes: &[u8],
) -> Result<T, PbxError> {
    let decode = |reason: String| PbxError::Decode {
        endpoint: endpoint.to_string(),
        reason,
    };
    // One UTF-8 check of the whole answer is cheaper than one per string read; an answer with
    // stray bytes in a field nobody reads still decodes, through the slice reader.
    let answer: T = match std::str::from_utf8(bytes) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(bytes),
    }
    .map_err(|e| decode(e.to_string()))?;
    match answer.status() {
        Some(s) if s.eq_ignore_ascii_case("success") => Ok(answer),
        Some(s) if s.eq_ignore_ascii_case("failed") => {
            let errno = answer.errno().unwrap_or("").to_string();
            if matches!(errno.as_str(), "20004" | "20005" | "20006") {
                Err(PbxError::TokenExpired {
                    endpoint: endpoint.to_string(),
                    errno,
                })
            } else {
                Err(PbxError::Api {
                    endpoint: endpoint.to_string(),
                    errno,
                })
            }
        }
        Some(other) => Err(decode(format!("unknown status {other:?}"))),
        None => Err(decode("no status field".into())),
    }
}

/// One scrape's use of a [`Client`].
pub struct Session<'a> {
    client: &'a Client,
    deadline: Instant,
    logins: AtomicU32,
    login_failed: Mutex<Option<String>>,
    heartbeat_tried: AtomicBool,
}

/// A token this old gets a `heartbeat` before its next use (the PBX ends tokens after 30 minutes).
pub const HEARTBEAT_AFTER: Duration = Duration::from_secs(20 * 60);

/// Logins one scrape may make: the first, and one after a token expired mid-scrape.
const MAX_LOGINS_PER_SCRAPE: u32 = 2;

impl Session<'_> {
    /// The scrape's deadline.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Calls `endpoint` with `body`, logging in first if needed, and once more on a token error.
    pub async fn call<T: DeserializeOwned + Envelope>(
        &self,
        endpoint: &str,
        body: &Value,
    ) -> Result<T, PbxError> {
        let token = self.token().await?;
        match self
            .client
            .send::<T>(endpoint, Some(&token), body, self.deadline)
            .await
        {
            Err(PbxError::TokenExpired { .. })
                if matches!(self.client.cfg.auth, Auth::Credentials { .. }) =>
            {
                // Forget this token (unless a concurrent request already replaced it), log in again,
                // retry once.
                {
                    let mut held = lock(&self.client.token);
                    if held.as_ref() == Some(&token) {
                        *held = None;
                    }
                }
                let token = self.token().await?;
                self.client
                    .send::<T>(endpoint, Some(&token), body, self.deadline)
                    .await
            }
            other => other,
        }
    }

    /// A held token that needs nothing done: a static one, or ours and refreshed recently.
    fn fresh_token(&self) -> Option<Secret> {
        let t = lock(&self.client.token).clone()?;
        let is_static = matches!(self.client.cfg.auth, Auth::StaticToken(_));
        let age = self
            .client
            .clock
            .now_millis()
            .saturating_sub(*lock(&self.client.token_refreshed));
        (is_static || age < HEARTBEAT_AFTER.as_millis() as u64).then_some(t)
    }

    /// The current token: extended with one `heartbeat` when it nears the PBX's 30-minute
    /// lifetime (gentler than letting it lapse and logging in again), or a new one from `login`
    /// when there is none and logins are allowed.
    async fn token(&self) -> Result<Secret, PbxError> {
        if let Some(t) = self.fresh_token() {
            return Ok(t);
        }
        let (username, password_md5) = match &self.client.cfg.auth {
            Auth::Credentials {
                username,
                password_md5,
            } => (username, password_md5),
            // A static token is always held; it was dropped only by logout at shutdown.
            Auth::StaticToken(_) => return Err(PbxError::NotLoggedIn("static token ended".into())),
        };
        // One login (or heartbeat) at a time per PBX: concurrent requests wait here and use its
        // token.
        let _guard = self.client.login_lock.lock().await;
        if let Some(t) = self.fresh_token() {
            return Ok(t);
        }
        let held = lock(&self.client.token).clone();
        if let Some(t) = held {
            if self.heartbeat_tried.swap(true, Ordering::SeqCst) {
                return Ok(t);
            }
            match self
                .client
                .send::<BareAnswer>("heartbeat", Some(&t), &json!({}), self.deadline)
                .await
            {
                Ok(_) => {
                    *lock(&self.client.token_refreshed) = self.client.clock.now_millis();
                    return Ok(t);
                }
                Err(PbxError::TokenExpired { .. }) => {
                    let mut token = lock(&self.client.token);
                    if token.as_ref() == Some(&t) {
                        *token = None;
                    }
                }
                // Anything else (a firmware without heartbeat, a slow PBX): keep the token and
                // let the query find out.
                Err(_) => return Ok(t),
            }
        }
        if let Some(reason) = lock(&self.login_failed).clone() {
            return Err(PbxError::NotLoggedIn(reason));
        }
        if let Some(left) = self.client.suspended_for() {
            return Err(PbxError::LoginSuspended {
                retry_in_secs: left.as_secs(),
            });
        }
        if self.logins.fetch_add(1, Ordering::SeqCst) >= MAX_LOGINS_PER_SCRAPE {
            return Err(PbxError::NotLoggedIn(
                "login limit for one scrape reached".into(),
            ));
        }
        let body = json!({
            "username": username,
            "password": password_md5.expose(),
            "version": "2.0.0",
        });
        let target = &self.client.cfg.target;
        let result = self
            .client
            .send::<LoginAnswer>("login", None, &body, self.deadline)
            .await;
        let err = match result {
            Ok(answer) => match answer.token {
                Some(t) if !t.is_empty() => {
                    let t = Secret::new(t);
                    *lock(&self.client.token) = Some(t.clone());
                    *lock(&self.client.token_refreshed) = self.client.clock.now_millis();
                    self.client.observer.login(target, LoginOutcome::Success);
                    tracing::debug!(target_name = %target, "logged in");
                    return Ok(t);
                }
                _ => PbxError::Decode {
                    endpoint: "login".into(),
                    reason: "Success without a token".into(),
                },
            },
            Err(PbxError::Api { errno, .. }) if errno == "20003" => PbxError::LoginRejected,
            Err(PbxError::Api { errno, .. }) if errno == "20002" => PbxError::LoginLocked,
            Err(e) => e,
        };
        let outcome = match err {
            PbxError::LoginRejected => LoginOutcome::Rejected,
            PbxError::LoginLocked => LoginOutcome::Locked,
            _ => LoginOutcome::Error,
        };
        self.client.observer.login(target, outcome);
        if matches!(outcome, LoginOutcome::Rejected | LoginOutcome::Locked) {
            self.client.suspend(&err);
        }
        *lock(&self.login_failed) = Some(err.to_string());
        Err(err)
    }
}

/// Locks a std mutex, recovering from poisoning: the data under these locks (a token, a deadline) is
/// always left consistent, so a panic elsewhere must not take the exporter down with it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
