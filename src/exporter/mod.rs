//! The fleet: the exporter's configured targets, its own metrics, and their lifecycle.
//!
//! [`App`] holds the current set of [`Target`]s behind one lock that is only ever swapped whole, so a
//! scrape sees either the old configuration or the new one, never a mix. A target whose settings did
//! not change keeps its `Target` (token, back-off, status ages) across a reload; a removed or changed
//! one logs out. [`sd`] renders the targets for Prometheus' HTTP service discovery, once per
//! configuration.
//!
//! It knows nothing of HTTP or of the event receivers. The layers above it hold an `Arc<App>`; what
//! must follow its targets (the intake's TCP readers) registers as a [`Follower`] and is told of
//! each target built and each reload, and what a reload must read with the targets (the server's
//! web config file) comes in through [`App::reload_with`].

pub mod sd;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::time::Instant;

use crate::collector::Target;
use crate::collector::stats::TargetStats;
use crate::config::{Config, ConfigError, TcpEvents};
use crate::metrics::ExporterMetrics;
use crate::pbx::ledger::LedgerError;
use crate::pbx::{BuildError, Client, HttpSettings, LoginLedger, http_client};
use crate::support::clock::SharedClock;

/// The configured targets, by name.
#[derive(Debug)]
pub struct TargetSet {
    /// Each target with its TCP-events settings: the rest of its configuration is the target's
    /// own (its client's config and its collectors), not kept twice.
    by_name: BTreeMap<String, (Option<TcpEvents>, Arc<Target>)>,
    /// The targets in Prometheus' HTTP service-discovery format (`GET /sd`), made with them.
    sd: bytes::Bytes,
}

impl Default for TargetSet {
    fn default() -> Self {
        Self {
            by_name: BTreeMap::new(),
            sd: sd::document(&[]),
        }
    }
}

impl TargetSet {
    /// The target called `name`, or whose URL is exactly `name`.
    pub fn find(&self, name: &str) -> Option<&Arc<Target>> {
        self.by_name.get(name).map(|(_, t)| t).or_else(|| {
            let wanted = name.trim_end_matches('/');
            self.by_name
                .values()
                .find(|(_, t)| t.client().config().url == wanted)
                .map(|(_, t)| t)
        })
    }

    /// All targets, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Target>> {
        self.by_name.values().map(|(_, t)| t)
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// The targets as Prometheus' HTTP service discovery wants them (`GET /sd`, [`sd`]).
    pub fn sd(&self) -> &bytes::Bytes {
        &self.sd
    }
}

/// Reads the configuration again (file and the secrets it names) for a reload.
pub type Loader = Arc<dyn Fn() -> Result<Config, ConfigError> + Send + Sync>;

/// Why a reload failed.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The new configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A target's client could not be built (CA file).
    #[error(transparent)]
    Build(#[from] BuildError),
    /// The login ledger in `--pbx.state-dir` cannot be used.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// What the exporter warns about, at start and when a reload brings a target in, for a PBX's
/// settings: verification off, a pinned certificate that does not list the URL's host. Also
/// printed by `--config.check`.
pub fn target_warnings(cfg: &crate::pbx::ClientConfig) -> Vec<String> {
    let mut out = Vec::new();
    if !cfg.url.starts_with("https://") {
        return out;
    }
    if cfg.insecure_skip_verify {
        out.push("TLS certificate verification is off for this PBX (insecure_skip_verify): anyone on the network path can impersonate it and read its password and token; prefer ca_file".to_string());
    } else if let Some(ca) = &cfg.ca_file
        && let Some(warning) =
            crate::pbx::tls::name_warning(ca, &crate::pbx::ledger::host_of(&cfg.url))
    {
        out.push(warning);
    }
    out
}

/// A layer above the fleet that must hear of its targets: the event intake, whose TCP readers live
/// as long as the targets they read for, and whose HTTP receiver warns when a reload brings events
/// it cannot receive. Registered with [`App::follow`]: the fleet never names what follows it.
pub trait Follower: Send + Sync {
    /// After each switch ([`App::apply`], a reload) and once at [`App::follow`] (then with every
    /// target): `built` are the targets built anew; the others were kept whole, and so was
    /// whatever follows them. Runs inside the switch: quick, and never calling [`App::follow`].
    fn built(&self, app: &App, built: &[Built<'_>]) {
        let _ = (app, built);
    }

    /// After a reload succeeded (everything in force), before it is logged.
    fn reloaded(&self, app: &App) {
        let _ = app;
    }
}

/// A target a switch built anew, with the settings of it that only a layer above reads.
#[derive(Debug, Clone, Copy)]
pub struct Built<'a> {
    /// The target.
    pub target: &'a Arc<Target>,
    /// Its events over TCP, if that is its method (the intake dials the PBX for them).
    pub tcp_events: Option<&'a TcpEvents>,
}

/// The exporter's state, shared by every request.
pub struct App {
    /// The exporter's own metrics.
    pub metrics: ExporterMetrics,
    loader: Option<Loader>,
    reload_lock: std::sync::Mutex<()>,
    clock: SharedClock,
    ledger: Arc<LoginLedger>,
    /// The configuration and the targets built from it, swapped as one value.
    current: RwLock<Arc<Current>>,
    ready: AtomicBool,
    /// The layers that follow the targets, told under this lock so that none hears of a target
    /// twice or misses one.
    followers: std::sync::Mutex<Vec<Arc<dyn Follower>>>,
}

/// One configuration in force: its settings and its targets.
#[derive(Debug)]
pub struct Current {
    /// The settings (without the targets: those are in `targets`).
    pub config: Arc<Config>,
    /// The targets.
    pub targets: Arc<TargetSet>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("targets", &self.targets())
            .finish_non_exhaustive()
    }
}

impl App {
    /// An exporter for `config`, reading time from `clock`; it cannot reload.
    pub fn new(config: Config, clock: SharedClock) -> Result<Arc<Self>, ReloadError> {
        Self::with_loader(config, clock, None)
    }

    /// An exporter for `config` that reloads through `loader`.
    pub fn with_loader(
        config: Config,
        clock: SharedClock,
        loader: Option<Loader>,
    ) -> Result<Arc<Self>, ReloadError> {
        let ledger = match &config.state_dir {
            Some(dir) => Arc::new(LoginLedger::open(
                dir,
                clock.now_millis(),
                crate::pbx::ledger::file_limit(config.targets.len()),
            )?),
            None => Arc::new(LoginLedger::in_memory()),
        };
        let app = Arc::new(Self {
            metrics: ExporterMetrics::new(),
            loader,
            reload_lock: std::sync::Mutex::new(()),
            clock,
            ledger,
            current: RwLock::new(Arc::new(Current {
                config: Arc::new(Config {
                    targets: Vec::new(),
                    ..config.clone()
                }),
                targets: Arc::new(TargetSet::default()),
            })),
            ready: AtomicBool::new(false),
            followers: Default::default(),
        });
        app.apply(config)?;
        // A rejection from before a restart keeps its back-off.
        for t in app.targets().iter() {
            t.client().restore_suspension();
        }
        Ok(app)
    }

    /// Now, in unix seconds, from the exporter's clock (the landing page's "3m ago").
    pub fn now_unix(&self) -> f64 {
        self.clock.now_secs()
    }

    /// The exporter's clock.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// Registers `follower`: it hears of every target now in force at once, and of each target
    /// built and each reload from then on.
    pub fn follow(&self, follower: Arc<dyn Follower>) {
        let mut followers = self.followers.lock().unwrap_or_else(|p| p.into_inner());
        let targets = self.targets();
        let built: Vec<Built<'_>> = targets
            .by_name
            .values()
            .map(|(tcp_events, target)| Built {
                target,
                tcp_events: tcp_events.as_ref(),
            })
            .collect();
        follower.built(self, &built);
        followers.push(follower);
    }

    /// Where the login ledger is kept (`--pbx.state-dir`), if anywhere.
    pub fn ledger_path(&self) -> Option<&std::path::Path> {
        self.ledger.path()
    }

    /// The login ledger every target's logins (API and TCP) are written in.
    pub fn ledger(&self) -> &Arc<LoginLedger> {
        &self.ledger
    }

    /// The configuration in force and its targets, as one value.
    pub fn current(&self) -> Arc<Current> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The current targets.
    pub fn targets(&self) -> Arc<TargetSet> {
        self.current().targets.clone()
    }

    /// The current settings (their `targets` are empty: the targets are [`App::targets`]).
    pub fn settings(&self) -> Arc<Config> {
        self.current().config.clone()
    }

    /// The single target of flag mode (`/metrics` includes its metrics), if that is the mode.
    pub fn single_target(&self) -> Option<Arc<Target>> {
        let current = self.current();
        if !current.config.single {
            return None;
        }
        current.targets.iter().next().cloned()
    }

    /// Reads the configuration again and switches to it; on error keeps the running one, logs the
    /// error and sets `yeastar_exporter_config_last_reload_successful 0`.
    pub fn reload(&self) -> Result<(), ReloadError> {
        self.reload_with(|_| Ok::<_, ReloadError>(()), |()| ())
    }

    /// [`App::reload`] as one step with what a layer above takes from the same configuration
    /// (the server's web config file): `prepare` reads and checks it after the configuration is
    /// read and before anything changes, and `commit` switches it in once the targets are. So a
    /// bad web config keeps the targets as they were, and a bad target keeps the web config.
    pub fn reload_with<T, E>(
        &self,
        prepare: impl FnOnce(&Config) -> Result<T, E>,
        commit: impl FnOnce(T),
    ) -> Result<(), E>
    where
        E: From<ReloadError> + std::error::Error + 'static,
    {
        // One reload at a time: SIGHUP and POST /-/reload may race.
        let _guard = self.reload_lock.lock().unwrap_or_else(|p| p.into_inner());
        let result = match &self.loader {
            // Everything is read and checked before anything changes.
            Some(load) => load()
                .map_err(|e| E::from(ReloadError::from(e)))
                .and_then(|cfg| {
                    let staged = prepare(&cfg)?;
                    self.apply(cfg).map_err(|e| E::from(ReloadError::from(e)))?;
                    commit(staged);
                    Ok(())
                }),
            None => Ok(()),
        };
        if result.is_ok() {
            let followers = self.followers.lock().unwrap_or_else(|p| p.into_inner());
            for f in followers.iter() {
                f.reloaded(self);
            }
        }
        match &result {
            Ok(()) => tracing::info!(targets = self.targets().len(), "configuration reloaded"),
            Err(e) => {
                self.metrics.reload_ok.set(0.0);
                tracing::error!(error = %crate::support::report::chain(e), "configuration reload failed; the running configuration stays");
            }
        }
        result
    }

    /// Marks the exporter ready (`/-/ready` answers 200).
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::SeqCst);
    }

    /// Whether it is ready.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// Switches to `config`: builds what changed, keeps what did not, swaps in one step. On error
    /// nothing changes.
    pub fn apply(&self, config: Config) -> Result<(), BuildError> {
        let old = self.targets();
        let mut next = TargetSet {
            sd: sd::document(&config.targets),
            ..TargetSet::default()
        };
        let mut http_clients: std::collections::HashMap<
            HttpSettings,
            crate::pbx::transport::HttpClient,
        > = Default::default();
        // One client per distinct TLS setting, its session cache sized to the HTTPS PBXes sharing
        // it (a plain-HTTP PBX keeps no TLS session: sizing the cache for it is memory for
        // nothing).
        let mut sharing: std::collections::HashMap<HttpSettings, usize> = Default::default();
        for tc in &config.targets {
            let https = tc.client.url.starts_with("https://");
            *sharing.entry(HttpSettings::of(&tc.client)).or_default() += usize::from(https);
        }
        for tc in &config.targets {
            let name = tc.client.target.clone();
            let target = match old.by_name.get(&name) {
                Some((tcp, t))
                    if *tcp == tc.events_tcp
                        && t.collectors() == tc.collectors
                        && *t.client().config() == tc.client =>
                {
                    t.clone()
                }
                _ => {
                    let settings = HttpSettings::of(&tc.client);
                    let http = match http_clients.get(&settings) {
                        Some(h) => h.clone(),
                        None => {
                            let servers = sharing.get(&settings).copied().unwrap_or(1);
                            let h = http_client(&settings, servers)?;
                            http_clients.insert(settings, h.clone());
                            h
                        }
                    };
                    let stats = Arc::new(TargetStats::new(
                        Arc::new(self.metrics.clone()),
                        tc.client.family,
                    ));
                    let client = Client::with_http(
                        tc.client.clone(),
                        http,
                        self.ledger.clone(),
                        stats.clone(),
                        self.clock.clone(),
                    );
                    let target = Target::with_stats(
                        Arc::new(client),
                        tc.collectors,
                        self.clock.clone(),
                        stats,
                    );
                    // Its reader (the layer above, told below) lives as long as it does.
                    match &tc.events_tcp {
                        Some(_) => Arc::new(target.with_event_intake()),
                        None => Arc::new(target),
                    }
                }
            };
            self.metrics.init_target(&name);
            next.by_name.insert(name, (tc.events_tcp.clone(), target));
        }
        // Everything is built: nothing below can fail. A target whose settings changed but whose
        // PBX and credentials did not keeps its token, back-off and status ages; one with new
        // credentials starts afresh, without a suspension (say so at once).
        for (name, (_, target)) in &next.by_name {
            let before = old.by_name.get(name).map(|(_, t)| t);
            if before.is_some_and(|b| Arc::ptr_eq(b, target)) {
                continue;
            }
            let _span = target.client().span().enter();
            for warning in target_warnings(target.client().config()) {
                tracing::warn!("{warning}");
            }
            let Some(before) = before else {
                continue;
            };
            let (new_client, old_client) = (target.client(), before.client());
            let (a, b) = (new_client.config(), old_client.config());
            if a.url == b.url && a.api_path == b.api_path && a.auth == b.auth {
                new_client.adopt_session(old_client);
            }
            if a.url == b.url {
                target.adopt_state(before);
            }
            let suspended = new_client.suspended_for().is_some();
            target.report_suspended(suspended);
        }
        let removed: Vec<Arc<Target>> = old
            .by_name
            .iter()
            .filter(|(name, (_, t))| {
                next.by_name
                    .get(*name)
                    .is_none_or(|(_, n)| !Arc::ptr_eq(n, t))
            })
            .map(|(_, (_, t))| t.clone())
            .collect();
        // The targets' configurations live in the targets; the settings keep none of them.
        let settings = Config {
            targets: Vec::new(),
            ..config
        };
        let next = Arc::new(next);
        {
            let followers = self.followers.lock().unwrap_or_else(|p| p.into_inner());
            *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(Current {
                config: Arc::new(settings),
                targets: next.clone(),
            });
            let built: Vec<Built<'_>> = next
                .by_name
                .iter()
                .filter(|(name, (_, t))| {
                    old.by_name
                        .get(*name)
                        .is_none_or(|(_, b)| !Arc::ptr_eq(b, t))
                })
                .map(|(_, (tcp_events, target))| Built {
                    target,
                    tcp_events: tcp_events.as_ref(),
                })
                .collect();
            for f in followers.iter() {
                f.built(self, &built);
            }
        }
        let now = self.clock.now_secs();
        self.metrics.reload_ok.set(1.0);
        self.metrics.reload_time.set(now.floor());
        let current = self.targets();
        for t in removed {
            // A removed target's series go now, for good: reports from its scrapes still in
            // flight are dropped by the metrics.
            if current.find(t.name()).is_none() {
                self.metrics.remove_target(t.name());
            }
            // Tokens of removed or changed targets end now, in the background; a login still in
            // flight for one ends its own token when it arrives (the client is retired).
            if tokio::runtime::Handle::try_current().is_ok() {
                tokio::spawn(async move {
                    t.client()
                        .logout(Instant::now() + Duration::from_secs(5))
                        .await;
                });
            }
        }
        Ok(())
    }

    /// Logs every target out, each within `limit`.
    pub async fn logout_all(&self, limit: Duration) {
        let targets = self.targets();
        let deadline = Instant::now() + limit;
        futures_util::future::join_all(targets.iter().map(|t| t.client().logout(deadline))).await;
    }
}
