//! Start-up: what `main.rs` runs — the runtime, logging, the panic hook, the listening sockets
//! (bound or passed by systemd), `--config.check`, and the exporter itself until SIGINT/SIGTERM.

use std::sync::Arc;
use std::time::Duration;

use crate::config;
use crate::exporter;
use crate::intake;
use crate::logging;
use crate::pbx;
use crate::server;
use crate::sim;
use crate::support::clock;
use crate::support::report;
use crate::support::signal::shutdown_signal;

/// Sets up logging to stderr at `level` in `format` (`logfmt` or `json`): see [`logging`].
pub fn init_tracing(level: &str, format: &str) {
    logging::init(level, format);
}

/// The runtime the binary runs on. One worker thread (the default) is a current-thread runtime:
/// a probe's request, its collection and its PBX connections all run on the thread that accepted
/// it, with no wake-ups across threads (in `benches/multi_target.rs` that took 27–30% off the CPU
/// per probe). More workers: a multi-thread runtime over that many threads. Blocking work (bcrypt,
/// files) has its own pool either way.
pub fn runtime(worker_threads: u16) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = if worker_threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(usize::from(worker_threads));
        b
    };
    builder.enable_all().build()
}

/// Makes a panic one log line (where, and its message cut to 300 characters) instead of a
/// backtrace on stderr. A panicking task (one request, one collection) is dropped by tokio; the
/// exporter keeps serving.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".into());
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        tracing::error!(
            panic = %pbx::clip(&message, 300),
            location = %location,
            "a task panicked; its request or collection was dropped and the exporter keeps serving"
        );
    }));
}

/// Listens on `address` with a long accept queue (4096, as far as the kernel's `somaxconn`
/// allows): under a connection flood, a scraper's connection waits in the queue instead of being
/// dropped and retried a second or more later.
pub async fn bind(address: &str) -> std::io::Result<tokio::net::TcpListener> {
    let addr = tokio::net::lookup_host(address)
        .await?
        .next()
        .ok_or_else(|| std::io::Error::other("no address"))?;
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

/// The listening sockets systemd passed (socket activation, `sd_listen_fds(3)`): `LISTEN_PID` must
/// be this process, and `LISTEN_FDS` sockets follow from fd 3 — as exporter-toolkit's
/// `--web.systemd-socket` takes them. Each must be a listening TCP socket.
#[cfg(unix)]
pub fn systemd_listeners() -> anyhow::Result<Vec<tokio::net::TcpListener>> {
    use std::os::fd::FromRawFd;
    let flag = "--web.systemd-socket";
    let pid = std::env::var("LISTEN_PID").map_err(|_| {
        anyhow::anyhow!("{flag}: LISTEN_PID is not set: start the exporter from its .socket unit")
    })?;
    if pid.trim().parse::<u32>().ok() != Some(std::process::id()) {
        anyhow::bail!(
            "{flag}: LISTEN_PID {pid} is not this process ({}): the sockets are another's",
            std::process::id()
        );
    }
    let fds = std::env::var("LISTEN_FDS").unwrap_or_default();
    let count: i32 = fds
        .trim()
        .parse()
        .ok()
        .filter(|n| (1..=64).contains(n))
        .ok_or_else(|| anyhow::anyhow!("{flag}: LISTEN_FDS {fds:?} names no socket"))?;
    let mut listeners = Vec::new();
    for fd in 3..3 + count {
        // SAFETY: under the socket-activation protocol fds 3 .. 3 + LISTEN_FDS are open sockets
        // handed to this process (LISTEN_PID checked above) that nothing else in it owns; each
        // is taken once, here.
        let listener = unsafe { std::net::TcpListener::from_raw_fd(fd) };
        listener
            .local_addr()
            .map_err(|e| anyhow::anyhow!("{flag}: fd {fd} is not a TCP socket: {e}"))?;
        listener.set_nonblocking(true)?;
        listeners.push(tokio::net::TcpListener::from_std(listener)?);
    }
    Ok(listeners)
}

/// Socket activation is a Unix protocol.
#[cfg(not(unix))]
pub fn systemd_listeners() -> anyhow::Result<Vec<tokio::net::TcpListener>> {
    anyhow::bail!("--web.systemd-socket: socket activation needs a Unix system")
}

/// `--config.check` found errors and printed each: exit 1, nothing more to say.
#[derive(Debug, thiserror::Error)]
#[error("the configuration has errors (printed above)")]
pub struct CheckFailed;

/// `--config.check`: every error found (each on its own line on stderr), then the warnings the
/// exporter would log at start (on stdout, `warning: …`), then `config OK` when there was no
/// error. Fails ([`CheckFailed`]) only for errors.
fn config_check(
    flags: &config::ExporterFlags,
    password_env: Option<String>,
    clock: &clock::SharedClock,
) -> anyhow::Result<()> {
    let mut errors: Vec<String> = Vec::new();
    let mut warnings: Vec<String> = Vec::new();
    let cfg = match flags.load_all(password_env) {
        Ok(cfg) => Some(cfg),
        Err(all) => {
            errors.extend(
                all.iter()
                    .map(|e| format!("config invalid: {}", report::chain(e))),
            );
            None
        }
    };
    let mut web = None;
    if let Some(cfg) = &cfg {
        for t in &cfg.targets {
            // Build each client too: a CA file that does not parse is caught here.
            if let Err(e) =
                pbx::Client::new(t.client.clone(), Arc::new(pbx::NoopObserver), clock.clone())
            {
                errors.push(report::chain(&e));
            }
            for w in exporter::target_warnings(&t.client) {
                warnings.push(format!(
                    "target {} (pbx={}): {w}",
                    t.client.target,
                    logging::origin(&t.client.url)
                ));
            }
        }
        match server::load_web(cfg) {
            Ok(w) => web = Some(w),
            Err(e) => errors.push(format!("config invalid: {}", report::chain(&e))),
        }
    }
    for e in &errors {
        eprintln!("yeastar-exporter: {e}");
    }
    for w in &warnings {
        println!("warning: {w}");
    }
    match (cfg, web) {
        (Some(cfg), Some(web)) if errors.is_empty() => {
            println!("config OK: {} target(s)", cfg.targets.len());
            if cfg.web_config_file.is_some() {
                println!("web config OK: {}", web.describe());
            }
            Ok(())
        }
        _ => Err(CheckFailed.into()),
    }
}

/// Runs the exporter with `flags` until SIGINT/SIGTERM; logs every token out on the way down.
pub async fn run_exporter(mut flags: config::ExporterFlags) -> anyhow::Result<()> {
    let clock = clock::system();
    let mut password_env = std::env::var(config::PASSWORD_ENV).ok();
    let mut _demo = None;
    let mut events_listener = None;
    if flags.demo {
        let p_series = flags.demo_api == "p-series";
        if p_series {
            // Its WebSocket events are not read yet: the demo scrapes only.
            flags.pbx_api = "p-series".into();
            flags.pbx_api_path = None;
            flags.pbx_events = false;
        } else {
            // The demo's PBX reports its calls to a receiver on a free loopback port.
            let l = bind("127.0.0.1:0").await?;
            flags.events_listen_address = l.local_addr()?.to_string();
            flags.pbx_events = true;
            events_listener = Some(l);
        }
        let sim_cfg = sim::SimConfig {
            api: if p_series {
                sim::SimApi::PSeries
            } else {
                sim::SimApi::SSeries
            },
            model: sim::model::ModelConfig {
                seed: fastrand::u64(..),
                target_calls: flags.demo_calls,
                extensions: (flags.demo_calls * 3).max(60),
                ..Default::default()
            },
            ..Default::default()
        };
        let handle = sim::Simulator::start(sim_cfg.clone(), clock.clone(), "127.0.0.1:0").await?;
        tracing::info!(pbx = %handle.url(), "demo mode: simulated Yeastar PBX started");
        flags.pbx_url = Some(handle.url());
        flags.pbx_username = Some(sim_cfg.username.clone());
        flags.pbx_password_file = None;
        flags.pbx_token_file = None;
        password_env = Some(sim_cfg.password.expose().to_string());
        _demo = Some(handle);
    }
    if flags.config_check {
        return config_check(&flags, password_env, &clock);
    }
    let config = flags.load(password_env.clone())?;
    let listeners = if config.systemd_socket {
        systemd_listeners()?
    } else {
        let mut listeners = Vec::with_capacity(config.listen_address.len());
        for address in &config.listen_address {
            let listen = config::listen_socket(address);
            listeners.push(
                bind(&listen)
                    .await
                    .map_err(|e| anyhow::anyhow!("--web.listen-address {listen}: {e}"))?,
            );
        }
        listeners
    };
    let loader: exporter::Loader = {
        let flags = flags.clone();
        Arc::new(move || flags.load(password_env.clone()))
    };
    // The web config before the targets, as it always was read: a bad file is the first error told.
    let web = server::load_web(&config)?;
    let app = exporter::App::with_loader(config.clone(), clock, Some(loader))?;
    let server = server::Server::with_web(Arc::clone(&app), web);
    if config.targets.iter().any(|t| t.client.events.is_some()) {
        let l = match events_listener.take() {
            Some(l) => l,
            None => {
                let addr = config::listen_socket(&config.events_listen_address);
                bind(&addr)
                    .await
                    .map_err(|e| anyhow::anyhow!("--events.listen-address {addr}: {e}"))?
            }
        };
        tracing::info!(address = %l.local_addr()?, "event receiver listening: PBXes with events on post their reports to /events/<target>");
        tokio::spawn(intake::http::serve(l, Arc::clone(&app)));
    } else {
        app.follow(Arc::new(intake::http::NotListening));
    }
    intake::tcp::follow(&app);
    match app.ledger_path() {
        Some(path) => {
            tracing::info!(path = %path.display(), "login ledger kept here: the login back-off survives restarts")
        }
        None if !flags.demo => tracing::warn!(
            "no --pbx.state-dir: a restart forgets recent failed logins (the back-off starts afresh); set it so a crash loop cannot add up to a PBX lockout"
        ),
        None => {}
    }
    let web = server.web.current();
    let scheme = if web.tls().is_some() { "https" } else { "http" };
    #[cfg(unix)]
    {
        let server = Arc::clone(&server);
        tokio::spawn(async move {
            let Ok(mut hup) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            else {
                return;
            };
            while hup.recv().await.is_some() {
                tracing::info!("SIGHUP received: reloading configuration");
                let _ = server.reload();
            }
        });
    }
    for listener in &listeners {
        let local = listener.local_addr()?;
        let shown = if local.ip().is_unspecified() {
            format!("127.0.0.1:{}", local.port())
        } else {
            local.to_string()
        };
        tracing::info!(
            address = %local,
            metrics = %format!("{scheme}://{shown}{}", config.telemetry_path),
            web = %web.describe(),
            version = env!("CARGO_PKG_VERSION"),
            systemd_socket = config.systemd_socket,
            "yeastar-exporter listening; metrics at the URL shown"
        );
    }
    server::serve_all(listeners, Arc::clone(&server), shutdown_signal()).await?;
    app.logout_all(Duration::from_secs(5)).await;
    tracing::info!("stopped");
    Ok(())
}
