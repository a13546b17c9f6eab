//! A simulated Yeastar S-Series PBX: the API of `yeastar-api.md`, answered as a real unit answers it.
//!
//! Used by demo mode (`--demo`), by `yeastar-exporter simulate`, by the tests and by the benchmarks.
//! It owns its HTTP server (hyper, one request per connection, `Server: Boa/0.94.14rc21`), its
//! accounts, tokens (30 minutes, extended by `heartbeat`) and per-address login lockout (5 failures
//! in 10 minutes lock the address out for 10 minutes), the traffic [`model`], fault knobs, and a count
//! of every request it answered. Time comes from an injected [`Clock`](crate::support::clock::Clock).
//!
//! The map:
//! - [`model`]: the simulated PBX's state (extensions, trunks, queues, calls) and its answer views.
//! - [`model`]: the simulated PBX's state (extensions, trunks, queues, calls), its answer views.
//! - `accounts`: logins, tokens (issued, expired, extended by `heartbeat`, ended by `logout`) and
//!   the per-address lockout.
//! - `s_series`: the S-Series API's answers: an endpoint and its body in, JSON out.
//! - `delivery`: event reports sent to the exporter, over HTTP POSTs or the TCP event port.
//! - `command`: `yeastar-exporter simulate`.

mod accounts;
mod command;
mod delivery;
pub mod model;
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

pub use accounts::{LOCKOUT_FAILURES, LOCKOUT_WINDOW_MS, TOKEN_LIFETIME_MS};
pub use command::{SimFlags, run};
pub use delivery::{DeliveryFailure, EventDelivery, EventReceiver};
pub use server::{CloseWithoutAnswer, tls_server_config};

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
struct Counters {
    /// endpoint (and `call/query:<type>`) → requests answered.
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
