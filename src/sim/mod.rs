//! A simulated Yeastar PBX: the S-Series API of `yeastar-api.md` or the P-Series OpenAPI of
//! `yeastar-pseries-api.md` ([`SimApi`], one per simulator), answered as a real unit answers it,
//! both from the same traffic [`model`].
//!
//! Used by demo mode (`--demo`), by `yeastar-exporter simulate`, by the tests and by the benchmarks.
//! It owns its HTTP server (hyper, one request per connection; S-Series `Server: Boa/0.94.14rc21`),
//! its accounts — S-Series tokens (30 minutes, extended by `heartbeat`) and per-address login
//! lockout (5 failures in 10 minutes lock the address out for 10 minutes); P-Series access and
//! refresh tokens (the 8-token cap, `refresh_token`, `del_token`) and the IP block after 5 failed
//! `get_token` in a row — the traffic [`model`], fault knobs, and a count of every request it
//! answered. Time comes from an injected [`Clock`](crate::support::clock::Clock).
//!
//! The map:
//! - [`model`]: the simulated PBX's state (extensions, trunks, queues, calls), its S-Series answer
//!   views.
//! - `accounts`: logins, tokens (issued, expired, extended by `heartbeat`, ended by `logout`) and
//!   the per-address lockout; the P-Series grants (access and refresh tokens, the cap, the IP
//!   block).
//! - `s_series`: the S-Series API's answers: an endpoint and its body in, JSON out.
//! - `p_series`: the P-Series OpenAPI's answers: method, endpoint, query string and body in, JSON
//!   out (no WebSocket yet).
//! - `delivery`: event reports sent to the exporter, over HTTP POSTs or the TCP event port.
//! - `command`: `yeastar-exporter simulate`.

mod accounts;
mod command;
mod delivery;
pub mod model;
mod p_series;
mod s_series;
mod server;

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::support::clock::SharedClock;
// What the simulator takes from the exporter's PBX client, for its children too (model.rs names
// `MemberKind` itself).
use crate::pbx::{lock, model::MemberKind};
use crate::support::secret::Secret;
use accounts::Accounts;
use model::{Model, ModelConfig, Snapshot};

pub use accounts::{
    LOCKOUT_FAILURES, LOCKOUT_WINDOW_MS, P_ACCESS_TOKEN_LIFETIME_MS, P_BLOCK_FAILURES,
    P_REFRESH_TOKEN_LIFETIME_MS, P_TOKEN_CAP, TOKEN_LIFETIME_MS,
};
pub use command::{SimFlags, run};
pub use delivery::{DeliveryFailure, EventDelivery, EventReceiver};
pub use p_series::{P_SERIES_API_PATH, P_SERIES_PAGE_SIZE, p_series_endpoints};
pub use server::{CloseWithoutAnswer, tls_server_config};

/// Ways to misbehave, for tests and demos.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    /// Wait this long before every answer.
    pub latency: Duration,
    /// Share of answers that are errno 30003 (P-Series: errcode -2, `INTERNAL SERVER ERROR`).
    pub error_rate: f64,
    /// Share of answers that are HTTP 500.
    pub http500_rate: f64,
    /// Share of answers cut off mid-JSON.
    pub malformed_rate: f64,
    /// Share of connections closed without an answer.
    pub close_rate: f64,
    /// Endpoints that answer 10003 as on older firmware (P-Series: errcode 10001, `INTERFACE NOT
    /// EXISTED`).
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
    /// P-Series: trunks (by name) whose `trunk/list` entry shows this raw `status` code whatever
    /// the model says (e.g. 33, no SIM card; 45, authentication failed).
    pub trunk_status_codes: Vec<(String, i64)>,
}

/// Which API a simulator answers: one per simulator (`simulate --api`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum SimApi {
    /// The S-Series API (`/api/v2.0.0`, POSTs with `?token=`).
    #[default]
    #[value(name = "s-series")]
    SSeries,
    /// The P-Series OpenAPI v1.0 (`/openapi/v1.0`, GETs with `?access_token=`).
    #[value(name = "p-series")]
    PSeries,
}

impl SimApi {
    /// Its word on `simulate --api`: `s-series` or `p-series`.
    pub fn word(self) -> &'static str {
        match self {
            SimApi::SSeries => "s-series",
            SimApi::PSeries => "p-series",
        }
    }
}

/// What `call/query` answers on the P-Series when no call matches: the vendor leaves the idle
/// answer UNKNOWN, so a client must take all three.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum IdleCalls {
    /// `"data": []`.
    #[default]
    EmptyList,
    /// `"data": null`.
    Null,
    /// No `data` key at all.
    Absent,
}

/// The P-Series side's knobs (unused by an S-Series simulator).
#[derive(Debug, Clone, PartialEq)]
pub struct PSeriesConfig {
    /// The API path ([`P_SERIES_API_PATH`]).
    pub api_path: String,
    /// An access token's lifetime in milliseconds ([`P_ACCESS_TOKEN_LIFETIME_MS`]).
    pub access_token_lifetime: u64,
    /// A refresh token's lifetime in milliseconds ([`P_REFRESH_TOKEN_LIFETIME_MS`]).
    pub refresh_token_lifetime: u64,
    /// `system/information`'s `model_name`: `Yeastar P560` (an Appliance, with a
    /// `hardware_version`) or a name with `Edition` in it (`P-Series Software Edition`,
    /// `P-Series Cloud Edition`: no `hardware_version`).
    pub model_name: String,
    /// `system/information`'s `firmware_version` (37.x Appliance, 83.x Software, 84.x Cloud).
    pub firmware_version: String,
    /// `call/query`'s answer when no call matches.
    pub idle_calls: IdleCalls,
}

impl Default for PSeriesConfig {
    fn default() -> Self {
        Self {
            api_path: P_SERIES_API_PATH.into(),
            access_token_lifetime: P_ACCESS_TOKEN_LIFETIME_MS,
            refresh_token_lifetime: P_REFRESH_TOKEN_LIFETIME_MS,
            model_name: "Yeastar P560".into(),
            firmware_version: "37.21.0.117".into(),
            idle_calls: IdleCalls::EmptyList,
        }
    }
}

/// What the simulator accepts and how it behaves.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The API it answers.
    pub api: SimApi,
    /// API username (P-Series: the Client ID).
    pub username: String,
    /// API password (S-Series: the simulator compares its MD5, as the PBX does; P-Series: the
    /// Client Secret, compared as is).
    pub password: Secret,
    /// Traffic.
    pub model: ModelConfig,
    /// Faults.
    pub faults: Faults,
    /// Token lifetime in milliseconds (S-Series).
    pub token_lifetime: u64,
    /// API path (S-Series; the P-Series one is [`PSeriesConfig::api_path`]).
    pub api_path: String,
    /// The P-Series side's knobs.
    pub p_series: PSeriesConfig,
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

    /// [`SimConfig::traffic`] answering the P-Series OpenAPI.
    pub fn p_series_traffic(seed: u64, calls: usize) -> Self {
        Self {
            api: SimApi::PSeries,
            ..Self::traffic(seed, calls)
        }
    }

    /// The path its API answers under.
    pub fn path(&self) -> &str {
        match self.api {
            SimApi::SSeries => &self.api_path,
            SimApi::PSeries => &self.p_series.api_path,
        }
    }
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            api: SimApi::SSeries,
            username: "api".into(),
            password: Secret::new("demo-password"),
            model: ModelConfig::default(),
            faults: Faults::default(),
            token_lifetime: TOKEN_LIFETIME_MS,
            api_path: "/api/v2.0.0".into(),
            p_series: PSeriesConfig::default(),
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    /// endpoint (and `call/query:<type>`) → requests answered, whichever API.
    requests: HashMap<String, u64>,
    /// TLS handshakes: full, resumed.
    handshakes: [u64; 2],
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

    /// Replaces the fault knobs.
    pub fn set_faults(&self, faults: Faults) {
        lock(&self.cfg).faults = faults;
    }

    /// Requests answered for `key`: an endpoint (`login`, `trunk/list`) or `call/query:<type>`.
    pub fn requests(&self, key: &str) -> u64 {
        lock(&self.counters).requests.get(key).copied().unwrap_or(0)
    }

    /// Every request answered.
    pub fn total_requests(&self) -> u64 {
        lock(&self.counters).requests.values().sum()
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
}
