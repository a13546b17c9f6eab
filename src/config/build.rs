//! What the configuration is made into: the one place a target's [`ClientConfig`] and
//! [`TargetConfig`] are built (from checked settings, whichever side gave them), and the
//! [`Config`] that holds them.

use std::path::PathBuf;
use std::time::Duration;

use super::endpoint::EventsEndpoint;
use super::error::ConfigError;
use super::validate::{TcpEvents, Valid};
use crate::collector::CollectorSet;
use crate::pbx::ClientConfig;

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

/// A checked target's configuration; HTTP events register at `endpoint`.
pub(crate) fn target(v: Valid, endpoint: &EventsEndpoint) -> Result<TargetConfig, ConfigError> {
    let events = match v.http_events {
        Some(sources) => Some(endpoint.registration(&v.name, sources)?),
        None => None,
    };
    Ok(TargetConfig {
        client: ClientConfig {
            family: v.family,
            target: v.name,
            url: v.url,
            api_path: v.api_path,
            auth: v.auth,
            timeout: v.timeout,
            max_concurrent_requests: v.max_concurrent_requests,
            max_response_bytes: v.max_response_bytes,
            login_backoff: v.login_backoff,
            ca_file: v.ca_file,
            insecure_skip_verify: v.insecure_skip_verify,
            proxy_url: v.proxy_url,
            events,
        },
        collectors: v.collectors,
        events_tcp: v.events_tcp,
        auth_module: v.auth_module,
    })
}
