//! The command line: [`Cli`] and the exporter's flags (clap; each also an environment variable
//! `YEASTAR_EXPORTER_<FLAG>`), and what they give the one pipeline — the single PBX's settings,
//! and the [`TargetDefaults`] a config file's targets start from. Each value is named by its flag.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use super::endpoint::EventsEndpoint;
use super::error::ConfigError;
use super::rules::source_addresses;
use super::settings::{
    AuthChoice, AuthSettings, AuthWords, Given, SecretPath, Settings, TargetDefaults,
};
use crate::collector::{CollectorKind, CollectorSet};
use crate::support::duration::parse_duration;

/// The default listen port: above the crowded 9100–9999 exporter range, used by no well-known
/// exporter (the digits recall the PBX's API port, 8088).
pub const DEFAULT_PORT: u16 = 11088;

/// The environment variable that carries the PBX password.
pub const PASSWORD_ENV: &str = "YEASTAR_EXPORTER_PBX_PASSWORD";

/// What `--version` prints, in the Prometheus exporters' shape.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (revision: ",
    env!("YEASTAR_EXPORTER_REVISION"),
    ")\n  build date:       ",
    env!("YEASTAR_EXPORTER_BUILD_DATE"),
    "\n  rustc version:    ",
    env!("YEASTAR_EXPORTER_RUSTC_VERSION"),
    "\n  platform:         ",
    env!("YEASTAR_EXPORTER_TARGET"),
);

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "yeastar-exporter",
    version,
    long_version = LONG_VERSION,
    about = "Prometheus exporter for Yeastar S-Series and P-Series PBXes: live calls, trunks, extensions and queues from the PBX's HTTP API."
)]
pub struct Cli {
    /// Run something other than the exporter.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The exporter's flags.
    #[command(flatten)]
    pub exporter: ExporterFlags,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the simulated Yeastar PBX alone.
    Simulate(Box<crate::sim::SimFlags>),
    /// Read a password on standard input and print its bcrypt hash for `basic_auth_users`.
    HashPassword {
        /// bcrypt cost: each step doubles the work of every uncached check.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(4..=31))]
        cost: u32,
    },
}

/// Flags of the exporter.
#[derive(Debug, Args, Clone)]
pub struct ExporterFlags {
    /// Address to listen on for the web interface and telemetry (`:PORT` listens on all
    /// interfaces). Repeat it to listen on several (the same endpoints on each).
    #[arg(
        long = "web.listen-address",
        env = "YEASTAR_EXPORTER_WEB_LISTEN_ADDRESS",
        default_value = ":11088",
        action = clap::ArgAction::Append
    )]
    pub listen_address: Vec<String>,
    /// Serve on the listening sockets systemd passes (socket activation: LISTEN_FDS, LISTEN_PID,
    /// from fd 3) instead of --web.listen-address.
    #[arg(
        long = "web.systemd-socket",
        env = "YEASTAR_EXPORTER_WEB_SYSTEMD_SOCKET"
    )]
    pub systemd_socket: bool,
    /// Path under which to expose metrics.
    #[arg(
        long = "web.telemetry-path",
        env = "YEASTAR_EXPORTER_WEB_TELEMETRY_PATH",
        default_value = "/metrics"
    )]
    pub telemetry_path: String,
    /// Subtracted from Prometheus's scrape timeout (X-Prometheus-Scrape-Timeout-Seconds) to leave time to answer.
    #[arg(long = "web.timeout-offset", env = "YEASTAR_EXPORTER_WEB_TIMEOUT_OFFSET", default_value = "500ms", value_parser = parse_duration)]
    pub timeout_offset: Duration,
    /// A web configuration file (exporter-toolkit format): TLS, client certificates, basic auth,
    /// headers. Re-read on reload.
    #[arg(long = "web.config.file", env = "YEASTAR_EXPORTER_WEB_CONFIG_FILE")]
    pub web_config_file: Option<PathBuf>,
    /// Longest a client may take to send a request's headers (and the TLS handshake); also how
    /// long an idle keep-alive connection stays open.
    #[arg(long = "web.header-read-timeout", env = "YEASTAR_EXPORTER_WEB_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub header_read_timeout: Duration,
    /// Longest a client may leave its answer unread (no byte accepted) before it is disconnected.
    #[arg(long = "web.write-timeout", env = "YEASTAR_EXPORTER_WEB_WRITE_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub write_timeout: Duration,
    /// Most client connections open at once; at the cap, the connection that has waited longest
    /// for its request head is closed to make room.
    #[arg(
        long = "web.max-connections",
        env = "YEASTAR_EXPORTER_WEB_MAX_CONNECTIONS",
        default_value_t = 1024
    )]
    pub max_connections: usize,
    /// The PBX's base URL: scheme, host and port, e.g. https://192.168.5.150:8088.
    #[arg(long = "pbx.url", env = "YEASTAR_EXPORTER_PBX_URL")]
    pub pbx_url: Option<String>,
    /// The API the PBX speaks: s-series (S20 to S412, API v2.0.0) or p-series (P550, P560,
    /// P570, Software and Cloud Editions, OpenAPI v1.0; --pbx.username is then the Client ID and
    /// --pbx.password-file the Client Secret).
    #[arg(
        long = "pbx.api",
        env = "YEASTAR_EXPORTER_PBX_API",
        default_value = "s-series",
        value_parser = ["s-series", "p-series"]
    )]
    pub pbx_api: String,
    /// The API's path on the PBX (by default the family's: /api/v2.0.0 for s-series,
    /// /openapi/v1.0 for p-series).
    #[arg(long = "pbx.api-path", env = "YEASTAR_EXPORTER_PBX_API_PATH")]
    pub pbx_api_path: Option<String>,
    /// The API username (Settings → PBX → General → API).
    #[arg(long = "pbx.username", env = "YEASTAR_EXPORTER_PBX_USERNAME")]
    pub pbx_username: Option<String>,
    /// A file holding the API password (or set YEASTAR_EXPORTER_PBX_PASSWORD).
    #[arg(long = "pbx.password-file", env = "YEASTAR_EXPORTER_PBX_PASSWORD_FILE")]
    pub pbx_password_file: Option<PathBuf>,
    /// A file holding an existing API token: use it and never log in (static-token mode).
    #[arg(long = "pbx.token-file", env = "YEASTAR_EXPORTER_PBX_TOKEN_FILE")]
    pub pbx_token_file: Option<PathBuf>,
    /// The longest a scrape's PBX work may take.
    #[arg(long = "pbx.timeout", env = "YEASTAR_EXPORTER_PBX_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub pbx_timeout: Duration,
    /// Requests in flight to the PBX at once (its embedded web server is small).
    #[arg(
        long = "pbx.max-concurrent-requests",
        env = "YEASTAR_EXPORTER_PBX_MAX_CONCURRENT_REQUESTS",
        default_value_t = 1
    )]
    pub pbx_max_concurrent_requests: usize,
    /// No login for this long after a rejected one (plus up to 10% jitter); at least 3m. Whatever
    /// it is, at most 2 logins without a token reach a PBX in any 10 minutes (it locks out at 5).
    #[arg(long = "pbx.login-backoff", env = "YEASTAR_EXPORTER_PBX_LOGIN_BACKOFF", default_value = "10m", value_parser = parse_duration)]
    pub pbx_login_backoff: Duration,
    /// A directory for the login ledger (failed and unanswered logins of the last 10 minutes), so
    /// the login back-off survives restarts. Without it a restart forgets them.
    #[arg(long = "pbx.state-dir", env = "YEASTAR_EXPORTER_PBX_STATE_DIR")]
    pub pbx_state_dir: Option<PathBuf>,
    /// PBX answers larger than this many bytes are cut off and counted as decode errors.
    #[arg(long = "pbx.max-response-bytes", env = "YEASTAR_EXPORTER_PBX_MAX_RESPONSE_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub pbx_max_response_bytes: usize,
    /// A PEM file of CA certificates for the PBX's HTTPS certificate.
    #[arg(long = "pbx.ca-file", env = "YEASTAR_EXPORTER_PBX_CA_FILE")]
    pub pbx_ca_file: Option<PathBuf>,
    /// Accept any certificate from the PBX (self-signed units without a CA file).
    #[arg(
        long = "pbx.insecure-skip-verify",
        env = "YEASTAR_EXPORTER_PBX_INSECURE_SKIP_VERIFY"
    )]
    pub pbx_insecure_skip_verify: bool,
    /// Reach the PBX through this HTTP proxy (`http://[user:password@]host:port`, or `https://`):
    /// for an `https://` PBX only, tunnelled with CONNECT. Without it the exporter connects
    /// straight to the PBX and ignores HTTP_PROXY, HTTPS_PROXY and ALL_PROXY.
    #[arg(long = "pbx.proxy-url", env = "YEASTAR_EXPORTER_PBX_PROXY_URL")]
    pub pbx_proxy_url: Option<String>,
    /// Receive this PBX's HTTP event reports (exact call accounting: completed calls, outcomes,
    /// talk time, failures). Registering takes the PBX's reports from any other application using
    /// the same API account: see docs/events.md. Off by default.
    #[arg(long = "pbx.events", env = "YEASTAR_EXPORTER_PBX_EVENTS")]
    pub pbx_events: bool,
    /// How this PBX reports its events: `http` (it posts to --events.listen-address) or `tcp`
    /// (the exporter connects to the PBX's event port). Match the PBX's Report Method.
    #[arg(long = "pbx.events-method", env = "YEASTAR_EXPORTER_PBX_EVENTS_METHOD", default_value = "http", value_parser = ["http", "tcp"])]
    pub pbx_events_method: String,
    /// The PBX's TCP event port (its API page's TCP port) for --pbx.events-method tcp.
    #[arg(
        long = "pbx.events-tcp-port",
        env = "YEASTAR_EXPORTER_PBX_EVENTS_TCP_PORT",
        default_value_t = 8333
    )]
    pub pbx_events_tcp_port: u16,
    /// Address the event receiver listens on when any PBX has events on (`:PORT` = all
    /// interfaces; 8260 is the PBX's own default).
    #[arg(
        long = "events.listen-address",
        env = "YEASTAR_EXPORTER_EVENTS_LISTEN_ADDRESS",
        default_value = ":8260"
    )]
    pub events_listen_address: String,
    /// The receiver as the PBX must reach it, `http://HOST:PORT`, when that is not this host's
    /// address and the listen port (NAT, containers): registered as an absolute URL (`urltag` 1).
    #[arg(
        long = "events.advertise-url",
        env = "YEASTAR_EXPORTER_EVENTS_ADVERTISE_URL"
    )]
    pub events_advertise_url: Option<String>,
    /// Most connections one source (an IPv4 address, an IPv6 /64) may hold open on the event
    /// receiver; at the cap its connection that has waited longest for a complete report is
    /// closed to make room. Raise it when several PBXes post from one address (NAT).
    #[arg(
        long = "events.max-connections-per-source",
        env = "YEASTAR_EXPORTER_EVENTS_MAX_CONNECTIONS_PER_SOURCE",
        default_value_t = 16
    )]
    pub events_max_connections_per_source: usize,
    /// Addresses the PBX's HTTP event reports may come from besides those its --pbx.url host
    /// resolves to, comma-separated IPs (a PBX behind NAT posts from the NAT's address). Reports
    /// from anywhere else are refused (`wrong_source`).
    #[arg(
        long = "events.source-addresses",
        env = "YEASTAR_EXPORTER_EVENTS_SOURCE_ADDRESSES",
        value_name = "IP,..."
    )]
    pub events_source_addresses: Option<String>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub collectors: CollectorFlags,
    /// Log level: error, warn, info, debug, trace.
    #[arg(long = "log.level", env = "YEASTAR_EXPORTER_LOG_LEVEL", default_value = "info", value_parser = ["error", "warn", "info", "debug", "trace"])]
    pub log_level: String,
    /// Log format: logfmt or json.
    #[arg(long = "log.format", env = "YEASTAR_EXPORTER_LOG_FORMAT", default_value = "logfmt", value_parser = ["logfmt", "json"])]
    pub log_format: String,
    /// Threads that serve scrapes and talk to PBXes. 1 (the default) keeps each probe on one
    /// thread — no hand-offs between threads, the least CPU per probe — and carries thousands of
    /// PBXes (see docs/performance.md); more spread the work over more cores.
    #[arg(long = "runtime.worker-threads", env = "YEASTAR_EXPORTER_RUNTIME_WORKER_THREADS", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub worker_threads: u16,
    /// A YAML file of targets and credentials (multi-target mode, `/probe?target=`).
    #[arg(long = "config.file", env = "YEASTAR_EXPORTER_CONFIG_FILE")]
    pub config_file: Option<PathBuf>,
    /// Validate --config.file (and the files it names), print the result, and exit.
    #[arg(long = "config.check")]
    pub config_check: bool,
    /// Start the embedded simulated PBX on a loopback port and scrape it (try the exporter without a PBX).
    #[arg(long = "demo", env = "YEASTAR_EXPORTER_DEMO")]
    pub demo: bool,
    /// Calls the demo's simulated PBX keeps going on average.
    #[arg(
        long = "demo.calls",
        env = "YEASTAR_EXPORTER_DEMO_CALLS",
        default_value_t = 40
    )]
    pub demo_calls: usize,
    /// The API the demo's simulated PBX speaks (p-series: its calls, trunks, extensions and device;
    /// no event reports yet).
    #[arg(
        long = "demo.api",
        env = "YEASTAR_EXPORTER_DEMO_API",
        default_value = "s-series",
        value_parser = ["s-series", "p-series"]
    )]
    pub demo_api: String,
}

/// `--collector.<name>` / `--no-collector.<name>` for every collector of the table
/// ([`crate::collector::COLLECTORS`]) but `calls`, each also `YEASTAR_EXPORTER_COLLECTOR_<NAME>`.
#[derive(Debug, Clone, Default)]
pub struct CollectorFlags {
    /// What the command line said of each collector, if anything.
    settings: Vec<(CollectorKind, Option<bool>)>,
}

impl CollectorFlags {
    /// The switchable collectors: all but `calls`.
    fn switchable() -> impl Iterator<Item = CollectorKind> {
        CollectorKind::all().filter(|k| *k != CollectorKind::CALLS)
    }

    /// The collectors these flags enable, starting from the defaults.
    pub fn resolve(&self) -> CollectorSet {
        let mut set = CollectorSet::default();
        for (kind, on) in &self.settings {
            if let Some(on) = on {
                set.set(*kind, *on);
            }
        }
        set
    }
}

impl clap::FromArgMatches for CollectorFlags {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let mut flags = Self::default();
        flags.update_from_arg_matches(matches)?;
        Ok(flags)
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        self.settings = Self::switchable()
            .map(|kind| {
                let on = if matches.get_flag(&format!("no-collector.{kind}")) {
                    Some(false)
                } else {
                    matches
                        .get_one::<bool>(&format!("collector.{kind}"))
                        .copied()
                };
                (kind, on)
            })
            .collect();
        Ok(())
    }
}

impl Args for CollectorFlags {
    fn augment_args(mut cmd: clap::Command) -> clap::Command {
        use clap::{Arg, ArgAction};
        for kind in Self::switchable() {
            let spec = kind.spec();
            let (on, off) = (format!("collector.{kind}"), format!("no-collector.{kind}"));
            let default = if spec.on_by_default { "on" } else { "off" };
            cmd = cmd
                .arg(
                    Arg::new(on.clone())
                        .long(on.clone())
                        .env(format!(
                            "YEASTAR_EXPORTER_COLLECTOR_{}",
                            spec.name.to_ascii_uppercase()
                        ))
                        .value_name("BOOL")
                        .num_args(0..=1)
                        .require_equals(true)
                        .default_missing_value("true")
                        .value_parser(clap::value_parser!(bool))
                        .overrides_with(off.clone())
                        .help(format!(
                            "Enable the {} collector: {} (default {default}).",
                            spec.name,
                            spec.help(crate::pbx::ApiFamily::default())
                        )),
                )
                .arg(
                    Arg::new(off.clone())
                        .long(off.clone())
                        .action(ArgAction::SetTrue)
                        .overrides_with(on)
                        .help(format!("Disable the {} collector", spec.name)),
                );
        }
        cmd
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

impl ExporterFlags {
    /// `--events.source-addresses`, validated.
    fn source_addresses(&self) -> Result<Vec<std::net::IpAddr>, ConfigError> {
        let list: Vec<String> = self
            .events_source_addresses
            .as_deref()
            .unwrap_or("")
            .split(',')
            .map(|a| a.trim().to_string())
            .filter(|a| !a.is_empty())
            .collect();
        source_addresses("--events.source-addresses", &list)
    }

    /// Where PBXes are to send their event reports, from `--events.*`.
    pub fn events_endpoint(&self) -> Result<EventsEndpoint, ConfigError> {
        EventsEndpoint::new(
            &self.events_listen_address,
            self.events_advertise_url.as_deref(),
        )
    }

    /// What every target of a config file gets unless the file says otherwise (the single
    /// PBX's too): the `--pbx.*` and `--collector.*` flags; the event receiver and its source
    /// addresses are checked here, once for all targets. A new per-target flag is one line here.
    pub fn target_defaults(&self) -> Result<TargetDefaults, ConfigError> {
        Ok(TargetDefaults {
            api: self.pbx_api.clone(),
            api_path: self.pbx_api_path.clone().unwrap_or_default(),
            collectors: self.collectors.resolve(),
            timeout: self.pbx_timeout,
            max_concurrent_requests: self.pbx_max_concurrent_requests,
            max_response_bytes: self.pbx_max_response_bytes,
            login_backoff: self.pbx_login_backoff,
            insecure_skip_verify: self.pbx_insecure_skip_verify,
            proxy_url: self.pbx_proxy_url.clone(),
            events: self.pbx_events,
            events_tcp: self.pbx_events_method == "tcp",
            events_tcp_port: self.pbx_events_tcp_port,
            events_endpoint: self.events_endpoint()?,
            events_source_addresses: self.source_addresses()?,
        })
    }

    /// The single PBX's settings, named `default`: `base` (these flags' [`TargetDefaults`]) and
    /// its own URL, credentials and CA file; `password_env` is `YEASTAR_EXPORTER_PBX_PASSWORD`.
    pub(crate) fn settings(&self, base: &TargetDefaults, password_env: Option<String>) -> Settings {
        let mut s = Settings::inherit(
            // "default" is a good name: never named in an error.
            Given::new("default".to_string(), "targets.default"),
            AuthChoice::Own(Box::new(self.auth_settings(password_env))),
            base,
            &|_, flag| flag.to_string(),
        );
        s.url.value = self.pbx_url.clone();
        s.url_hint =
            " (or YEASTAR_EXPORTER_PBX_URL; try --demo to run against the embedded simulated PBX)"
                .into();
        s.ca_file.value = self.pbx_ca_file.clone();
        s
    }

    /// The credentials flags, with their precedence: a token file over a username, a password
    /// file over the environment.
    fn auth_settings(&self, password_env: Option<String>) -> AuthSettings {
        let path = |p: &Option<PathBuf>| {
            p.clone().map(|path| SecretPath {
                path,
                expand: false,
            })
        };
        let token = self.pbx_token_file.is_some();
        let password_file = self.pbx_password_file.is_some();
        AuthSettings {
            username: Given::new(
                self.pbx_username.clone().filter(|_| !token),
                "--pbx.username",
            ),
            password_file: Given::new(
                path(&self.pbx_password_file).filter(|_| !token),
                "--pbx.password-file",
            ),
            password: password_env.filter(|_| !token && !password_file),
            token_file: Given::new(path(&self.pbx_token_file), "--pbx.token-file"),
            words: AuthWords {
                // Never named: the precedence above leaves nothing to exclude.
                whole: "--pbx.username".into(),
                or_password: format!(" (or {PASSWORD_ENV})"),
                or_token: " (or --pbx.token-file for static-token mode)".into(),
                tcp_needs: "tcp needs --pbx.username and a password (the TCP login carries them), not a static token".into(),
            },
        }
    }
}
