//! Flags (each also an environment variable `YEASTAR_EXPORTER_<FLAG>`) → one validated [`Config`].
//!
//! Secrets are read here, from files or the environment, straight into [`Secret`]s; the password
//! is never a flag value (it would show in `ps`). Validation names the flag that is wrong.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::collector::{CollectorKind, CollectorSet};
use crate::pbx::{Auth, ClientConfig};
use crate::support::secret::Secret;

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
    about = "Prometheus exporter for Yeastar S-Series PBXes: live calls, trunks, extensions and queues from the PBX's HTTP API."
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
    /// The API's path on the PBX.
    #[arg(
        long = "pbx.api-path",
        env = "YEASTAR_EXPORTER_PBX_API_PATH",
        default_value = "/api/v2.0.0"
    )]
    pub pbx_api_path: String,
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

/// A configuration error, naming the field or flag.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    /// A required setting is missing.
    #[error("{field}: required{hint}")]
    Missing {
        /// The flag or field.
        field: String,
        /// How to set it.
        hint: String,
    },
    /// A value is wrong.
    #[error("{field}: {reason}")]
    Invalid {
        /// The flag or field.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// A file the configuration names cannot be read.
    #[error("{field}: cannot read {}", path.display())]
    Read {
        /// The flag or field.
        field: String,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        cause: crate::support::report::Cause,
    },
}

fn unreadable(field: &str, path: &Path, e: std::io::Error) -> ConfigError {
    ConfigError::Read {
        field: field.to_string(),
        path: path.to_path_buf(),
        cause: crate::support::report::Cause::new(e),
    }
}

fn invalid(field: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.to_string(),
        reason: reason.into(),
    }
}

/// One PBX to scrape.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetConfig {
    /// How to reach and authenticate to it.
    pub client: ClientConfig,
    /// What to collect.
    pub collectors: CollectorSet,
    /// Its events over TCP (the exporter dials the PBX's event port), if that is its method.
    pub events_tcp: Option<TcpEvents>,
    /// The auth module it logs in with (config file; `None` in single-PBX flag mode).
    pub auth_module: Option<String>,
}

/// A PBX whose event reports the exporter reads from the PBX's TCP event port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpEvents {
    /// The PBX's TCP event port.
    pub port: u16,
    /// The API username.
    pub username: String,
    /// The API password in clear: the TCP login block carries it so (vendor documentation).
    pub password: Secret,
}

/// The exporter's validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Where to listen (each address).
    pub listen_address: Vec<String>,
    /// Take the listeners from systemd (`--web.systemd-socket`) instead.
    pub systemd_socket: bool,
    /// Path of the metrics page.
    pub telemetry_path: String,
    /// Subtracted from Prometheus's scrape timeout.
    pub timeout_offset: Duration,
    /// `--web.config.file`.
    pub web_config_file: Option<PathBuf>,
    /// `--web.header-read-timeout`.
    pub header_read_timeout: Duration,
    /// `--web.write-timeout`.
    pub write_timeout: Duration,
    /// `--web.max-connections`.
    pub max_connections: usize,
    /// `--pbx.state-dir`: where the login ledger is kept (read at start only).
    pub state_dir: Option<PathBuf>,
    /// `--events.listen-address`: where the event receiver listens (when a target has events).
    pub events_listen_address: String,
    /// `--events.max-connections-per-source`.
    pub events_max_connections_per_source: usize,
    /// The PBXes (one, named `default`, from the flags; or those of the config file).
    pub targets: Vec<TargetConfig>,
    /// Single-PBX mode (flags): `/metrics` carries the PBX's metrics too.
    pub single: bool,
}

/// Refuses a login back-off short enough that 5 rejected logins, one per back-off, could reach the
/// PBX within its 10-minute lockout window.
pub fn check_login_backoff(field: &str, backoff: Duration) -> Result<(), ConfigError> {
    let min = crate::pbx::ApiFamily::default().min_login_backoff();
    if backoff < min {
        return Err(invalid(
            field,
            format!(
                "{} is too short: the PBX locks this host out after 5 failed logins in 10 minutes, and one login per back-off would reach 5 in {}; use at least {}m (default 10m)",
                format_duration(backoff),
                format_duration(backoff * 4),
                min.as_secs() / 60
            ),
        ));
    }
    Ok(())
}

fn format_duration(d: Duration) -> String {
    if d.subsec_millis() != 0 {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}s", d.as_secs())
    }
}

/// Reads a secret file: surrounding whitespace (a trailing newline) is not part of the secret.
pub fn read_secret_file(field: &str, path: &Path) -> Result<Secret, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| unreadable(field, path, e))?;
    let value = text.trim();
    if value.is_empty() {
        return Err(invalid(field, format!("{} is empty", path.display())));
    }
    Ok(Secret::new(value))
}

/// Expands `${NAME}` and `${NAME:-default}` in the path of a config file's secret file
/// (`password_file`, `token_file`) from the environment, so one file serves both the systemd unit
/// and an admin: `${CREDENTIALS_DIRECTORY:-/etc/yeastar-exporter}/password` is the unit's private
/// copy under systemd (`LoadCredential=password:/etc/yeastar-exporter/password` sets
/// `CREDENTIALS_DIRECTORY`) and the file itself for `sudo yeastar-exporter --config.check`.
/// `:-` takes the default when the variable is unset or empty, as in the shell; a `$` not followed
/// by `{` is kept as written, and nothing else in the file is expanded.
pub fn expand_path(field: &str, path: &Path) -> Result<PathBuf, ConfigError> {
    expand_path_with(field, path, |name| std::env::var_os(name))
}

fn expand_path_with(
    field: &str,
    path: &Path,
    env: impl Fn(&str) -> Option<std::ffi::OsString>,
) -> Result<PathBuf, ConfigError> {
    let Some(mut rest) = path.to_str().filter(|s| s.contains("${")) else {
        return Ok(path.to_path_buf());
    };
    let mut out = std::ffi::OsString::new();
    while let Some(start) = rest.find("${") {
        out.push(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or_else(|| {
            invalid(
                field,
                format!("{}: \"${{\" without its closing \"}}\"", path.display()),
            )
        })?;
        let inner = &after[..end];
        let (name, default) = match inner.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (inner, None),
        };
        let valid = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(invalid(
                field,
                format!(
                    "{}: \"${{{inner}}}\" is not ${{NAME}} or ${{NAME:-default}}",
                    path.display()
                ),
            ));
        }
        match (env(name).filter(|v| !v.is_empty()), default) {
            (Some(value), _) => out.push(value),
            (None, Some(default)) => out.push(default),
            (None, None) => {
                let hint = if name == "CREDENTIALS_DIRECTORY" {
                    " (systemd sets it for a unit with LoadCredential=; give the file's own directory as the default for runs outside the unit, e.g. ${CREDENTIALS_DIRECTORY:-/etc/yeastar-exporter})"
                } else {
                    " (give a default: ${NAME:-/a/directory})"
                };
                return Err(invalid(
                    field,
                    format!("{}: {name} is not set{hint}", path.display()),
                ));
            }
        }
        rest = &after[end + 1..];
    }
    out.push(rest);
    Ok(PathBuf::from(out))
}

/// Checks a PBX base URL: http or https, a host, nothing after the port.
pub fn check_url(field: &str, url: &str) -> Result<String, ConfigError> {
    let url = url.trim().trim_end_matches('/');
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| {
            invalid(
                field,
                format!("{url:?} must start with http:// or https://"),
            )
        })?;
    if rest.is_empty() || rest.starts_with(':') {
        return Err(invalid(field, format!("{url:?} has no host")));
    }
    if rest.contains(['/', '?', '#', '@']) {
        return Err(invalid(
            field,
            format!(
                "{url:?} must be scheme://host[:port] only (the API path is a separate setting; credentials never go in the URL)"
            ),
        ));
    }
    if !rest.is_ascii() {
        return Err(invalid(
            field,
            format!(
                "{url:?}: the host must be written in ASCII (an international name in its xn-- form)"
            ),
        ));
    }
    // What the client will make of it (port, IPv6 brackets), refused here with the field named
    // rather than on every request.
    if let Err(e) = crate::pbx::transport::Origin::new(url, "/") {
        return Err(invalid(field, e));
    }
    Ok(url.to_string())
}

/// A proxy URL for the PBX at `pbx_url` (`http://` or `https://`, `[user:password@]host[:port]`,
/// nothing after): the error names `field` and never echoes the value (it may carry a password).
pub fn check_proxy_url(field: &str, proxy: &str, pbx_url: &str) -> Result<Secret, ConfigError> {
    const FORM: &str = "must be http://[user:password@]host:port or https://[user:password@]host:port (the proxy's address, nothing after it)";
    let proxy = proxy.trim();
    let lower = proxy.to_ascii_lowercase();
    let rest = match (
        lower.strip_prefix("http://"),
        lower.strip_prefix("https://"),
    ) {
        (Some(_), _) => &proxy["http://".len()..],
        (_, Some(_)) => &proxy["https://".len()..],
        _ => return Err(invalid(field, FORM)),
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let host = rest.rsplit('@').next().unwrap_or("");
    if host.is_empty() || rest.contains(['/', '?', '#', ' ']) || !rest.is_ascii() {
        return Err(invalid(field, FORM));
    }
    if reqwest::Proxy::all(proxy).is_err() {
        return Err(invalid(field, FORM));
    }
    if !pbx_url.to_ascii_lowercase().starts_with("https://") {
        return Err(invalid(
            field,
            "the PBX's url is plain http://: through a proxy its login (the password's MD5) and every token would be readable there; use the PBX's https:// URL",
        ));
    }
    Ok(Secret::new(proxy))
}

impl ExporterFlags {
    /// The single-PBX configuration these flags describe; `password_env` is the value of
    /// `YEASTAR_EXPORTER_PBX_PASSWORD`, if set.
    pub fn resolve(&self, password_env: Option<String>) -> Result<Config, ConfigError> {
        if !self.telemetry_path.starts_with('/') || self.telemetry_path.len() < 2 {
            return Err(invalid(
                "--web.telemetry-path",
                "must start with / and not be / itself",
            ));
        }
        let url = self.pbx_url.as_deref().ok_or_else(|| ConfigError::Missing {
            field: "--pbx.url".into(),
            hint: " (or YEASTAR_EXPORTER_PBX_URL; try --demo to run against the embedded simulated PBX)".into(),
        })?;
        let url = check_url("--pbx.url", url)?;
        let mut plain: Option<(String, Secret)> = None;
        let auth = match (&self.pbx_token_file, &self.pbx_username) {
            (Some(path), _) => Auth::StaticToken(read_secret_file("--pbx.token-file", path)?),
            (None, Some(username)) if !username.trim().is_empty() => {
                let password = match (&self.pbx_password_file, password_env) {
                    (Some(path), _) => read_secret_file("--pbx.password-file", path)?,
                    (None, Some(p)) if !p.is_empty() => Secret::new(p),
                    _ => {
                        return Err(ConfigError::Missing {
                            field: "--pbx.password-file".into(),
                            hint: format!(" (or {PASSWORD_ENV})"),
                        });
                    }
                };
                plain = Some((username.trim().to_string(), password.clone()));
                Auth::Credentials {
                    username: username.trim().to_string(),
                    password: password.clone(),
                }
            }
            _ => {
                return Err(ConfigError::Missing {
                    field: "--pbx.username".into(),
                    hint: " (or --pbx.token-file for static-token mode)".into(),
                });
            }
        };
        if self.pbx_timeout.is_zero() {
            return Err(invalid("--pbx.timeout", "must be greater than 0"));
        }
        if self.pbx_max_concurrent_requests == 0 {
            return Err(invalid(
                "--pbx.max-concurrent-requests",
                "must be at least 1",
            ));
        }
        if self.pbx_max_response_bytes < 1024 {
            return Err(invalid("--pbx.max-response-bytes", "must be at least 1024"));
        }
        check_login_backoff("--pbx.login-backoff", self.pbx_login_backoff)?;
        let proxy_url = self
            .pbx_proxy_url
            .as_deref()
            .map(|p| check_proxy_url("--pbx.proxy-url", p, &url))
            .transpose()?;
        if self.pbx_events && self.pbx_events_method == "http" && plain.is_none() {
            return Err(invalid("--pbx.events", STATIC_TOKEN_EVENTS));
        }
        self.config(
            vec![TargetConfig {
                client: ClientConfig {
                    family: Default::default(),
                    target: "default".into(),
                    url,
                    api_path: self.pbx_api_path.clone(),
                    auth,
                    timeout: self.pbx_timeout,
                    max_concurrent_requests: self.pbx_max_concurrent_requests,
                    max_response_bytes: self.pbx_max_response_bytes,
                    login_backoff: self.pbx_login_backoff,
                    ca_file: self.pbx_ca_file.clone(),
                    insecure_skip_verify: self.pbx_insecure_skip_verify,
                    proxy_url,
                    events: (self.pbx_events && self.pbx_events_method == "http")
                        .then(|| self.events_endpoint())
                        .transpose()?
                        .map(|e| e.registration("default", self.source_addresses()?))
                        .transpose()?,
                },
                collectors: self.collectors.resolve(),
                events_tcp: if self.pbx_events && self.pbx_events_method == "tcp" {
                    let (username, password) = plain.ok_or_else(|| {
                        invalid(
                            "--pbx.events-method",
                            "tcp needs --pbx.username and a password (the TCP login carries them), not a static token",
                        )
                    })?;
                    Some(TcpEvents {
                        port: self.pbx_events_tcp_port,
                        username,
                        password,
                    })
                } else {
                    None
                },
                auth_module: None,
            }],
            true,
        )
    }

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

    /// The server settings of these flags around `targets`.
    fn config(&self, targets: Vec<TargetConfig>, single: bool) -> Result<Config, ConfigError> {
        if self.header_read_timeout.is_zero() {
            return Err(invalid(
                "--web.header-read-timeout",
                "must be greater than 0",
            ));
        }
        if self.max_connections == 0 {
            return Err(invalid("--web.max-connections", "must be at least 1"));
        }
        if self.write_timeout.is_zero() {
            return Err(invalid("--web.write-timeout", "must be greater than 0"));
        }
        if self.events_max_connections_per_source == 0 {
            return Err(invalid(
                "--events.max-connections-per-source",
                "must be at least 1",
            ));
        }
        Ok(Config {
            listen_address: self.listen_address.clone(),
            systemd_socket: self.systemd_socket,
            telemetry_path: self.telemetry_path.clone(),
            timeout_offset: self.timeout_offset,
            web_config_file: self.web_config_file.clone(),
            header_read_timeout: self.header_read_timeout,
            write_timeout: self.write_timeout,
            max_connections: self.max_connections,
            state_dir: self.pbx_state_dir.clone(),
            events_listen_address: self.events_listen_address.clone(),
            events_max_connections_per_source: self.events_max_connections_per_source,
            targets,
            single,
        })
    }

    /// The configuration these flags describe: the config file's when one is given, else the
    /// single-PBX flags'.
    pub fn load(&self, password_env: Option<String>) -> Result<Config, ConfigError> {
        self.load_all(password_env)
            .map_err(|mut errors| errors.swap_remove(0))
    }

    /// [`ExporterFlags::load`], with every error found (at least one) instead of the first: the
    /// config file's auth modules and target fields each on their own (`--config.check`).
    pub fn load_all(&self, password_env: Option<String>) -> Result<Config, Vec<ConfigError>> {
        let Some(path) = &self.config_file else {
            return self.resolve(password_env).map_err(|e| vec![e]);
        };
        if self.pbx_url.is_some() {
            return Err(vec![invalid(
                "--pbx.url",
                "cannot be combined with --config.file (name the PBXes in the file)",
            )]);
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| vec![unreadable("--config.file", path, e)])?;
        let base = TargetDefaults {
            api_path: self.pbx_api_path.clone(),
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
            events_endpoint: self.events_endpoint().map_err(|e| vec![e])?,
            events_source_addresses: self.source_addresses().map_err(|e| vec![e])?,
        };
        let targets = parse_file_all(&text, &path.display().to_string(), &base);
        let server = self.config(Vec::new(), false);
        match (targets, server) {
            (Ok(targets), Ok(config)) => Ok(Config { targets, ..config }),
            (Err(errors), Ok(_)) => Err(errors),
            (Ok(_), Err(e)) => Err(vec![e]),
            (Err(mut errors), Err(e)) => {
                errors.push(e);
                Err(errors)
            }
        }
    }
}

/// What a target gets when neither it nor the file's `defaults` say otherwise (from the flags).
#[derive(Debug, Clone)]
pub struct TargetDefaults {
    /// `--pbx.api-path`.
    pub api_path: String,
    /// The `--collector.*` flags.
    pub collectors: CollectorSet,
    /// `--pbx.timeout`.
    pub timeout: Duration,
    /// `--pbx.max-concurrent-requests`.
    pub max_concurrent_requests: usize,
    /// `--pbx.max-response-bytes`.
    pub max_response_bytes: usize,
    /// `--pbx.login-backoff`.
    pub login_backoff: Duration,
    /// `--pbx.insecure-skip-verify`.
    pub insecure_skip_verify: bool,
    /// `--pbx.proxy-url`, as given (checked against each target's URL).
    pub proxy_url: Option<String>,
    /// `--pbx.events`.
    pub events: bool,
    /// `--pbx.events-method`: `tcp` reads events from the PBX's TCP port.
    pub events_tcp: bool,
    /// `--pbx.events-tcp-port`.
    pub events_tcp_port: u16,
    /// `--events.listen-address` and `--events.advertise-url`.
    pub events_endpoint: EventsEndpoint,
    /// `--events.source-addresses`.
    pub events_source_addresses: Vec<std::net::IpAddr>,
}

/// Why HTTP events need logins.
const STATIC_TOKEN_EVENTS: &str = "HTTP events need logins: each login registers the receiver's path with its own secret, and static-token mode never logs in (use an auth module or --pbx.username with a password)";

/// A list of IP addresses event reports may come from, validated (`field` names it on error).
pub fn source_addresses(
    field: &str,
    list: &[String],
) -> Result<Vec<std::net::IpAddr>, ConfigError> {
    list.iter()
        .map(|a| {
            let bare = a.trim();
            let bare = bare.strip_prefix('[').and_then(|b| b.strip_suffix(']')).unwrap_or(bare);
            bare.parse::<std::net::IpAddr>().map_err(|_| {
                invalid(
                    field,
                    format!(
                        "{a:?} is not an IP address (list the addresses the PBX's event reports come from, e.g. 192.0.2.7, 2001:db8::7; no names, no ranges)"
                    ),
                )
            })
        })
        .collect()
}

/// Where PBXes send their HTTP event reports: what login and heartbeat register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventsEndpoint {
    /// The receiver's port as registered.
    pub port: u16,
    /// `HOST:PORT` of `--events.advertise-url` (registered as an absolute URL).
    pub advertised: Option<String>,
    /// The advertised host when it is an IP address (the heartbeat's `ipaddr`).
    pub ipaddr: Option<String>,
}

impl Default for EventsEndpoint {
    fn default() -> Self {
        Self {
            port: 8260,
            advertised: None,
            ipaddr: None,
        }
    }
}

impl EventsEndpoint {
    /// From `--events.listen-address` and `--events.advertise-url`.
    pub fn new(listen: &str, advertise: Option<&str>) -> Result<Self, ConfigError> {
        let port = listen
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse::<u16>().ok())
            .ok_or_else(|| {
                invalid(
                    "--events.listen-address",
                    format!("{listen:?} has no port (use :8260 or HOST:PORT)"),
                )
            })?;
        let Some(url) = advertise.filter(|u| !u.trim().is_empty()) else {
            return Ok(Self {
                port,
                advertised: None,
                ipaddr: None,
            });
        };
        let field = "--events.advertise-url";
        let rest = url.strip_prefix("http://").ok_or_else(|| {
            invalid(
                field,
                format!(
                    "{url:?} must be http://HOST:PORT (the PBX posts its reports in plain HTTP)"
                ),
            )
        })?;
        let hostport = rest.trim_end_matches('/');
        let (host, p) = hostport
            .rsplit_once(':')
            .filter(|(h, _)| !h.is_empty())
            .ok_or_else(|| invalid(field, format!("{url:?} must name a host and a port")))?;
        let advertised_port = p
            .parse::<u16>()
            .map_err(|_| invalid(field, format!("{url:?}: {p:?} is not a port")))?;
        if hostport.contains('/') {
            return Err(invalid(
                field,
                format!("{url:?} must not have a path (each PBX gets /events/<target>)"),
            ));
        }
        let ip = host.trim_start_matches('[').trim_end_matches(']');
        Ok(Self {
            port: advertised_port,
            advertised: Some(hostport.to_string()),
            ipaddr: ip
                .parse::<std::net::IpAddr>()
                .is_ok()
                .then(|| ip.to_string()),
        })
    }

    /// What `target` registers: `events/<target>` (each login adds its secret), relative or
    /// behind the advertised address; its reports may also come from `sources` (NAT).
    pub fn registration(
        &self,
        target: &str,
        sources: Vec<std::net::IpAddr>,
    ) -> Result<crate::pbx::EventsRegistration, ConfigError> {
        let path = format!("events/{target}");
        Ok(crate::pbx::EventsRegistration {
            port: self.port,
            url: match &self.advertised {
                Some(hp) => format!("{hp}/{path}"),
                None => path,
            },
            absolute: self.advertised.is_some(),
            ipaddr: self.ipaddr.clone(),
            source_addresses: sources,
        })
    }
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    defaults: TargetFields,
    #[serde(default)]
    auth_modules: std::collections::BTreeMap<String, AuthModule>,
    #[serde(default)]
    targets: std::collections::BTreeMap<String, TargetFields>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthModule {
    username: Option<String>,
    password_file: Option<PathBuf>,
    password: Option<String>,
    token_file: Option<PathBuf>,
}

#[derive(Debug, Default, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetFields {
    url: Option<String>,
    api_path: Option<String>,
    auth: Option<String>,
    collectors: Option<Vec<String>>,
    timeout: Option<String>,
    max_concurrent_requests: Option<usize>,
    max_response_bytes: Option<usize>,
    login_backoff: Option<String>,
    ca_file: Option<PathBuf>,
    insecure_skip_verify: Option<bool>,
    proxy_url: Option<String>,
    events: Option<EventsField>,
    events_tcp_port: Option<u16>,
    events_source_addresses: Option<Vec<String>>,
}

/// `events:` — `true`/`false`, or the method: `http`, `tcp`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(untagged)]
enum EventsField {
    On(bool),
    Method(String),
}

/// A YAML error as a [`ConfigError`] of `source`: position and cause, without the source excerpt.
pub fn yaml_error(source: &str, e: impl std::fmt::Display) -> ConfigError {
    invalid(source, crate::support::yaml::error_line(e))
}

/// Parses a multi-target config file's text: its targets, or its first error.
pub fn parse_file(
    text: &str,
    source: &str,
    base: &TargetDefaults,
) -> Result<Vec<TargetConfig>, ConfigError> {
    parse_file_all(text, source, base).map_err(|mut errors| errors.swap_remove(0))
}

/// Parses a multi-target config file's text: its targets, or every error it finds (at least one),
/// in the file's order — each auth module and each target field on its own, so one look at
/// `--config.check` lists everything to fix. A field whose error follows from another's (a target
/// naming an auth module that is itself wrong) is not reported twice.
pub fn parse_file_all(
    text: &str,
    source: &str,
    base: &TargetDefaults,
) -> Result<Vec<TargetConfig>, Vec<ConfigError>> {
    let file: FileConfig = serde_saphyr::from_str(text).map_err(|e| vec![yaml_error(source, e)])?;
    let mut errors: Vec<ConfigError> = Vec::new();
    macro_rules! take {
        ($e:expr) => {
            match $e {
                Ok(v) => Some(v),
                Err(e) => {
                    errors.push(e);
                    None
                }
            }
        };
    }
    if file.targets.is_empty() {
        errors.push(invalid("targets", "at least one target is required"));
    }
    if file.defaults.url.is_some() {
        errors.push(invalid(
            "defaults.url",
            "each target has its own url; it cannot be a default",
        ));
    }
    let mut auths = std::collections::BTreeMap::new();
    let mut plain_passwords = std::collections::BTreeMap::new();
    let mut broken_auths = std::collections::BTreeSet::new();
    for (name, module) in &file.auth_modules {
        match resolve_auth(name, module).and_then(|a| Ok((a, plain_password(name, module)?))) {
            Ok((auth, plain)) => {
                auths.insert(name.clone(), auth);
                plain_passwords.insert(name.clone(), plain);
            }
            Err(e) => {
                errors.push(e);
                broken_auths.insert(name.clone());
            }
        }
    }
    let mut out: Vec<TargetConfig> = Vec::with_capacity(file.targets.len());
    let mut urls: Vec<(String, String)> = Vec::with_capacity(file.targets.len());
    for (name, target) in &file.targets {
        let field = |f: &str| format!("targets.{name}.{f}");
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            errors.push(invalid(
                &format!("targets.{name}"),
                "a target name is letters, digits, '.', '_' and '-' only",
            ));
            continue;
        }
        let url = take!(
            target
                .url
                .as_deref()
                .ok_or_else(|| ConfigError::Missing {
                    field: field("url"),
                    hint: String::new(),
                })
                .and_then(|url| check_url(&field("url"), url))
                .and_then(|url| match urls.iter().find(|(u, _)| *u == url) {
                    Some((_, other)) => Err(invalid(
                        &field("url"),
                        format!("same URL as target {other}"),
                    )),
                    None => {
                        urls.push((url.clone(), name.clone()));
                        Ok(url)
                    }
                })
        );
        // A target's own setting, else the file's defaults.
        macro_rules! get {
            ($f:ident) => {
                target.$f.clone().or_else(|| file.defaults.$f.clone())
            };
        }
        let auth_name = take!(get!(auth).ok_or_else(|| ConfigError::Missing {
            field: field("auth"),
            hint: " (name one of auth_modules, or set defaults.auth)".into(),
        }));
        let auth = match &auth_name {
            // Its module's own error is reported already.
            Some(a) if broken_auths.contains(a) => None,
            Some(a) => take!(
                auths
                    .get(a)
                    .cloned()
                    .ok_or_else(|| invalid(&field("auth"), format!("unknown auth module {a:?}")))
            ),
            None => None,
        };
        let collectors = take!(match target
            .collectors
            .as_ref()
            .or(file.defaults.collectors.as_ref())
        {
            None => Ok(base.collectors),
            Some(names) => names
                .iter()
                .map(|n| {
                    CollectorKind::named(n).ok_or_else(|| {
                        invalid(
                            &field("collectors"),
                            format!(
                                "unknown collector {n:?} (known: {})",
                                CollectorKind::all()
                                    .map(|c| c.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()
                .and_then(|kinds| {
                    if kinds.contains(&CollectorKind::CALLS) {
                        Ok(CollectorSet::of(kinds))
                    } else {
                        Err(invalid(
                            &field("collectors"),
                            "must include calls (yeastar_up is about it)",
                        ))
                    }
                }),
        });
        let duration =
            |f: &str, v: Option<String>, default: Duration| -> Result<Duration, ConfigError> {
                match v {
                    None => Ok(default),
                    Some(v) => {
                        let d = parse_duration(&v).map_err(|e| invalid(&field(f), e))?;
                        if d.is_zero() {
                            return Err(invalid(&field(f), "must be greater than 0"));
                        }
                        Ok(d)
                    }
                }
            };
        let timeout = take!(duration("timeout", get!(timeout), base.timeout));
        let login_backoff = take!(
            duration("login_backoff", get!(login_backoff), base.login_backoff).and_then(|b| {
                check_login_backoff(&field("login_backoff"), b)?;
                Ok(b)
            })
        );
        let max_concurrent_requests =
            get!(max_concurrent_requests).unwrap_or(base.max_concurrent_requests);
        if max_concurrent_requests == 0 {
            errors.push(invalid(
                &field("max_concurrent_requests"),
                "must be at least 1",
            ));
        }
        let max_response_bytes = get!(max_response_bytes).unwrap_or(base.max_response_bytes);
        if max_response_bytes < 1024 {
            errors.push(invalid(
                &field("max_response_bytes"),
                "must be at least 1024",
            ));
        }
        // None: off; Some(false): over HTTP; Some(true): over TCP.
        let events = take!(match get!(events) {
            None => Ok((base.events).then_some(base.events_tcp)),
            Some(EventsField::On(false)) => Ok(None),
            Some(EventsField::On(true)) => Ok(Some(base.events_tcp)),
            Some(EventsField::Method(m)) => match m.trim().to_ascii_lowercase().as_str() {
                "http" => Ok(Some(false)),
                "tcp" => Ok(Some(true)),
                "off" | "false" => Ok(None),
                _ => Err(invalid(
                    &field("events"),
                    format!("{m:?}: use true, false, http or tcp"),
                )),
            },
        });
        if events == Some(Some(false)) && matches!(auth, Some(Auth::StaticToken(_))) {
            errors.push(invalid(&field("events"), STATIC_TOKEN_EVENTS));
        }
        let static_token_events_ok =
            !(events == Some(Some(false)) && matches!(auth, Some(Auth::StaticToken(_))));
        // Validated whatever the events setting, so a typo is found before it matters.
        let sources = match get!(events_source_addresses) {
            Some(list) => {
                let f = if target.events_source_addresses.is_some() {
                    field("events_source_addresses")
                } else {
                    "defaults.events_source_addresses".to_string()
                };
                take!(source_addresses(&f, &list))
            }
            None => Some(base.events_source_addresses.clone()),
        };
        let proxy_url = match (&url, get!(proxy_url).or_else(|| base.proxy_url.clone())) {
            (Some(url), Some(proxy)) => {
                let f = if target.proxy_url.is_some() {
                    field("proxy_url")
                } else if file.defaults.proxy_url.is_some() {
                    "defaults.proxy_url".to_string()
                } else {
                    "--pbx.proxy-url".to_string()
                };
                take!(check_proxy_url(&f, &proxy, url)).map(Some)
            }
            // No URL: its own error says so.
            _ => Some(None),
        };
        let ca_file = get!(ca_file);
        let ca_ok = match &ca_file {
            Some(ca) => {
                take!(std::fs::metadata(ca).map_err(|e| unreadable(&field("ca_file"), ca, e)))
                    .is_some()
            }
            None => true,
        };
        let events_tcp = match (events, &auth_name, &auth) {
            (Some(Some(true)), Some(auth_name), Some(_)) => {
                let tcp = plain_passwords
                    .get(auth_name)
                    .cloned()
                    .flatten()
                    .zip(match &auths[auth_name] {
                        Auth::Credentials { username, .. } => Some(username.clone()),
                        Auth::StaticToken(_) => None,
                    })
                    .map(|(password, username)| TcpEvents {
                        port: get!(events_tcp_port).unwrap_or(base.events_tcp_port),
                        username,
                        password,
                    })
                    .ok_or_else(|| {
                        invalid(
                            &field("events"),
                            "tcp needs an auth module with username and password (the TCP login carries them), not token_file",
                        )
                    });
                take!(tcp).map(Some)
            }
            _ => Some(None),
        };
        let (
            Some(url),
            Some(auth),
            Some(collectors),
            Some(timeout),
            Some(login_backoff),
            Some(events),
            Some(events_tcp),
            Some(sources),
            Some(proxy_url),
            true,
            true,
            true,
            true,
        ) = (
            url,
            auth,
            collectors,
            timeout,
            login_backoff,
            events,
            events_tcp,
            sources,
            proxy_url,
            ca_ok,
            max_concurrent_requests > 0,
            max_response_bytes >= 1024,
            static_token_events_ok,
        )
        else {
            continue;
        };
        let events = match events {
            Some(false) => match base.events_endpoint.registration(name, sources) {
                Ok(registration) => Some(registration),
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            },
            _ => None,
        };
        out.push(TargetConfig {
            client: ClientConfig {
                family: Default::default(),
                target: name.clone(),
                url,
                api_path: get!(api_path).unwrap_or_else(|| base.api_path.clone()),
                auth,
                timeout,
                max_concurrent_requests,
                max_response_bytes,
                login_backoff,
                ca_file,
                insecure_skip_verify: get!(insecure_skip_verify)
                    .unwrap_or(base.insecure_skip_verify),
                proxy_url,
                events,
            },
            collectors,
            events_tcp,
            auth_module: auth_name,
        });
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// The clear password of an auth module that has one (for TCP events), read as
/// [`resolve_auth`] reads it.
fn plain_password(name: &str, m: &AuthModule) -> Result<Option<Secret>, ConfigError> {
    if m.token_file.is_some() {
        return Ok(None);
    }
    Ok(match (&m.password_file, &m.password) {
        (Some(path), None) => {
            let field = format!("auth_modules.{name}.password_file");
            Some(read_secret_file(&field, &expand_path(&field, path)?)?)
        }
        (None, Some(p)) if !p.is_empty() => Some(Secret::new(p.clone())),
        _ => None,
    })
}

fn resolve_auth(name: &str, m: &AuthModule) -> Result<Auth, ConfigError> {
    let field = |f: &str| format!("auth_modules.{name}.{f}");
    if let Some(path) = &m.token_file {
        if m.username.is_some() || m.password.is_some() || m.password_file.is_some() {
            return Err(invalid(
                &format!("auth_modules.{name}"),
                "token_file excludes username, password and password_file",
            ));
        }
        let field = field("token_file");
        return Ok(Auth::StaticToken(read_secret_file(
            &field,
            &expand_path(&field, path)?,
        )?));
    }
    let username = m
        .username
        .as_deref()
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .ok_or_else(|| ConfigError::Missing {
            field: field("username"),
            hint: " (or token_file for static-token mode)".into(),
        })?;
    let password = match (&m.password_file, &m.password) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                &format!("auth_modules.{name}"),
                "set password_file or password, not both",
            ));
        }
        (Some(path), None) => {
            let field = field("password_file");
            read_secret_file(&field, &expand_path(&field, path)?)?
        }
        (None, Some(p)) if !p.is_empty() => Secret::new(p.clone()),
        _ => {
            return Err(ConfigError::Missing {
                field: field("password_file"),
                hint: " (or password)".into(),
            });
        }
    };
    Ok(Auth::Credentials {
        username: username.to_string(),
        password: password.clone(),
    })
}

pub use crate::support::duration::parse_duration;

/// Turns `:PORT` into `0.0.0.0:PORT`; other addresses pass through.
pub fn listen_socket(address: &str) -> String {
    if address.starts_with(':') {
        format!("0.0.0.0{address}")
    } else {
        address.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_paths_expand_the_credentials_directory_with_its_fallback() {
        let f = "auth_modules.main.password_file";
        let unit = |name: &str| {
            (name == "CREDENTIALS_DIRECTORY")
                .then(|| "/run/credentials/yeastar-exporter.service".into())
        };
        let admin = |_: &str| None;
        let empty = |_: &str| Some(std::ffi::OsString::new());
        let p = Path::new("${CREDENTIALS_DIRECTORY:-/etc/yeastar-exporter}/password");
        assert_eq!(
            expand_path_with(f, p, unit),
            Ok(PathBuf::from(
                "/run/credentials/yeastar-exporter.service/password"
            ))
        );
        assert_eq!(
            expand_path_with(f, p, admin),
            Ok(PathBuf::from("/etc/yeastar-exporter/password"))
        );
        // Set but empty takes the default, as `:-` does in the shell.
        assert_eq!(
            expand_path_with(f, p, empty),
            Ok(PathBuf::from("/etc/yeastar-exporter/password"))
        );
        // No expansion asked for: the path as written, `$` and all.
        assert_eq!(
            expand_path_with(f, Path::new("/etc/a$b/pass}word"), unit),
            Ok(PathBuf::from("/etc/a$b/pass}word"))
        );
        assert_eq!(
            expand_path_with(f, Path::new("${CREDENTIALS_DIRECTORY}/pw"), unit),
            Ok(PathBuf::from(
                "/run/credentials/yeastar-exporter.service/pw"
            ))
        );
        assert_eq!(
            expand_path_with(f, Path::new("${CREDENTIALS_DIRECTORY}/pw"), admin)
                .unwrap_err()
                .to_string(),
            "auth_modules.main.password_file: ${CREDENTIALS_DIRECTORY}/pw: CREDENTIALS_DIRECTORY is not set (systemd sets it for a unit with LoadCredential=; give the file's own directory as the default for runs outside the unit, e.g. ${CREDENTIALS_DIRECTORY:-/etc/yeastar-exporter})"
        );
        assert_eq!(
            expand_path_with(f, Path::new("${SECRETS}/pw"), admin)
                .unwrap_err()
                .to_string(),
            "auth_modules.main.password_file: ${SECRETS}/pw: SECRETS is not set (give a default: ${NAME:-/a/directory})"
        );
        assert_eq!(
            expand_path_with(f, Path::new("${A}-${B:-b}/${A}"), |n: &str| {
                (n == "A").then(|| "a".into())
            }),
            Ok(PathBuf::from("a-b/a"))
        );
        assert_eq!(
            expand_path_with(f, Path::new("${CREDENTIALS_DIRECTORY/pw"), unit)
                .unwrap_err()
                .to_string(),
            "auth_modules.main.password_file: ${CREDENTIALS_DIRECTORY/pw: \"${\" without its closing \"}\""
        );
        assert_eq!(
            expand_path_with(f, Path::new("${1X:-/d}/pw"), unit)
                .unwrap_err()
                .to_string(),
            "auth_modules.main.password_file: ${1X:-/d}/pw: \"${1X:-/d}\" is not ${NAME} or ${NAME:-default}"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(
            parse_duration("0.5s"),
            Err("not a valid duration string: \"0.5s\"".to_string())
        );
    }

    #[test]
    fn urls() {
        assert_eq!(
            check_url("f", "https://10.0.0.5:8088/"),
            Ok("https://10.0.0.5:8088".into())
        );
        assert!(check_url("f", "ftp://x").is_err());
        assert_eq!(
            check_url("f", "http://u:p@x").unwrap_err().to_string(),
            "f: \"http://u:p@x\" must be scheme://host[:port] only (the API path is a separate setting; credentials never go in the URL)"
        );
        assert_eq!(
            check_url("f", "http://пбх.example")
                .unwrap_err()
                .to_string(),
            "f: \"http://пбх.example\": the host must be written in ASCII (an international name in its xn-- form)"
        );
        assert_eq!(
            check_url("f", "http://10.0.0.5:80800")
                .unwrap_err()
                .to_string(),
            "f: \"http://10.0.0.5:80800\": the port must be a number from 0 to 65535"
        );
        assert_eq!(
            check_url("f", "https://[::1]:8088"),
            Ok("https://[::1]:8088".into())
        );
    }

    #[test]
    fn flags_resolve_and_name_the_missing_flag() {
        let cli = Cli::try_parse_from([
            "x",
            "--pbx.url",
            "http://127.0.0.1:8088",
            "--pbx.username",
            "api",
            "--no-collector.trunks",
            "--collector.queues",
        ])
        .unwrap();
        let cfg = cli.exporter.resolve(Some("pw".into())).unwrap();
        let t = &cfg.targets[0];
        assert!(
            !t.collectors
                .contains(CollectorKind::named("trunks").unwrap())
        );
        assert!(
            t.collectors
                .contains(CollectorKind::named("queues").unwrap())
        );
        assert_eq!(
            format!("{:?}", t.client.auth),
            "Credentials { username: \"api\", password: <secret> }"
        );
        let err = cli.exporter.resolve(None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--pbx.password-file: required (or YEASTAR_EXPORTER_PBX_PASSWORD)"
        );
    }
}
