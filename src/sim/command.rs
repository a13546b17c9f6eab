//! `yeastar-exporter simulate`: its flags ([`SimFlags`]) and [`run`].

use std::time::Duration;

use super::accounts::{P_ACCESS_TOKEN_LIFETIME_MS, TOKEN_LIFETIME_MS};
use super::model::ModelConfig;
use super::server::tls_server_config;
use super::{Faults, PSeriesConfig, SimApi, SimConfig, Simulator};
use crate::support::secret::Secret;

/// `yeastar-exporter simulate` flags.
#[derive(Debug, clap::Args, Clone)]
pub struct SimFlags {
    /// Address to serve the simulated API on.
    #[arg(long, default_value = "127.0.0.1:8088")]
    pub listen: String,
    /// The API it answers: `s-series` (`/api/v2.0.0`) or `p-series` (the OpenAPI v1.0,
    /// `/openapi/v1.0`; the username and password are its Client ID and Client Secret).
    #[arg(long, value_enum, default_value_t = SimApi::SSeries, hide_possible_values = true)]
    pub api: SimApi,
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
    #[arg(long = "fault.latency", default_value = "0s", value_parser = crate::support::duration::parse_duration)]
    pub latency: Duration,
    /// Share of answers that are `{"status":"Failed","errno":"30003"}` (P-Series: errcode -2).
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
    /// Tokens live this long instead of 30 minutes (P-Series: access tokens).
    #[arg(long = "fault.token-lifetime", value_parser = crate::support::duration::parse_duration)]
    pub token_lifetime: Option<Duration>,
    /// Endpoints that answer errno 10003 (P-Series: errcode 10001), as on older firmware
    /// (comma-separated, e.g. `extension/query_call`).
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
            api: self.api,
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
                trunk_status_codes: Vec::new(),
            },
            token_lifetime: self
                .token_lifetime
                .map_or(TOKEN_LIFETIME_MS, |d| d.as_millis() as u64),
            api_path: "/api/v2.0.0".into(),
            p_series: PSeriesConfig {
                access_token_lifetime: self
                    .token_lifetime
                    .map_or(P_ACCESS_TOKEN_LIFETIME_MS, |d| d.as_millis() as u64),
                ..PSeriesConfig::default()
            },
        }
    }
}

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
    let handle = Simulator::start_with(
        cfg.clone(),
        crate::support::clock::system(),
        &flags.listen,
        tls,
    )
    .await?;
    println!(
        "simulated Yeastar PBX on {} ({} API {}): username {:?}, password {:?}; seed {}, about {} calls",
        handle.url(),
        cfg.api.word(),
        cfg.path(),
        cfg.username,
        flags.password,
        cfg.model.seed,
        cfg.model.target_calls
    );
    tracing::info!(address = %handle.addr, "simulator listening");
    crate::support::signal::shutdown_signal().await;
    Ok(())
}
