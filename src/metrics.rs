//! The exporter's own metrics (`yeastar_exporter_*`, `process_*`), served on `/metrics` only.
//!
//! [`ExporterMetrics`] is the [`Observer`] the PBX clients report to: every request sent, every login
//! attempt, every suspension. It lives as long as the process; target metrics, by contrast, are built
//! fresh for every scrape by [`crate::collector`].

use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use prometheus::{
    CounterVec, Encoder, Gauge, GaugeVec, HistogramOpts, HistogramVec, Opts, Registry, TextEncoder,
};

use crate::pbx::{LoginOutcome, Observer, Outcome};

/// The exporter's registry and the handles it updates.
#[derive(Clone)]
pub struct ExporterMetrics {
    registry: Registry,
    requests: CounterVec,
    durations: HistogramVec,
    logins: CounterVec,
    suspended: GaugeVec,
    /// `yeastar_exporter_config_last_reload_successful`.
    pub reload_ok: Gauge,
    /// `yeastar_exporter_config_last_reload_success_timestamp_seconds`.
    pub reload_time: Gauge,
    /// Targets in the configuration. A report about any other (a scrape that began before a
    /// reload removed its target) is dropped, so a removed target's series never come back; the
    /// lock is held across each update, so removal cannot slip between check and write.
    live: Arc<RwLock<HashSet<String>>>,
}

impl std::fmt::Debug for ExporterMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ExporterMetrics")
    }
}

impl Default for ExporterMetrics {
    fn default() -> Self {
        Self::new()
    }
}

// The metric definitions below are constants of this program: registering them in a new registry
// cannot fail (no duplicate names, valid names and labels), so the `expect`s are proofs, not hopes.
impl ExporterMetrics {
    /// A fresh registry with the build info and, on Linux, the process collector.
    pub fn new() -> Self {
        let registry = Registry::new();
        let build = GaugeVec::new(
            Opts::new(
                "yeastar_exporter_build_info",
                "A metric with a constant '1' value labelled by version, revision and rustc_version.",
            ),
            &["version", "revision", "rustc_version"],
        )
        .expect("valid metric");
        build
            .with_label_values(&[
                env!("CARGO_PKG_VERSION"),
                env!("YEASTAR_EXPORTER_REVISION"),
                env!("YEASTAR_EXPORTER_RUSTC_VERSION"),
            ])
            .set(1.0);
        let requests = CounterVec::new(
            Opts::new(
                "yeastar_exporter_pbx_requests_total",
                "Requests sent to a PBX, by endpoint and outcome.",
            ),
            &["target", "endpoint", "outcome"],
        )
        .expect("valid metric");
        let durations = HistogramVec::new(
            HistogramOpts::new(
                "yeastar_exporter_pbx_request_duration_seconds",
                "PBX request latency.",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["target", "endpoint"],
        )
        .expect("valid metric");
        let logins = CounterVec::new(
            Opts::new(
                "yeastar_exporter_logins_total",
                "Login attempts to a PBX, by outcome.",
            ),
            &["target", "outcome"],
        )
        .expect("valid metric");
        let suspended = GaugeVec::new(
            Opts::new(
                "yeastar_exporter_login_suspended",
                "1 while logins to that PBX are suspended (after a rejected login, or at most 2 logins without a token in 10 minutes).",
            ),
            &["target"],
        )
        .expect("valid metric");
        let reload_ok = Gauge::new(
            "yeastar_exporter_config_last_reload_successful",
            "Whether the last configuration load succeeded.",
        )
        .expect("valid metric");
        let reload_time = Gauge::new(
            "yeastar_exporter_config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful configuration load.",
        )
        .expect("valid metric");
        for c in [
            Box::new(build) as Box<dyn prometheus::core::Collector>,
            Box::new(requests.clone()),
            Box::new(durations.clone()),
            Box::new(logins.clone()),
            Box::new(suspended.clone()),
            Box::new(reload_ok.clone()),
            Box::new(reload_time.clone()),
        ] {
            registry.register(c).expect("unique metric names");
        }
        #[cfg(target_os = "linux")]
        registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("unique metric names");
        Self {
            registry,
            requests,
            durations,
            logins,
            suspended,
            reload_ok,
            reload_time,
            live: Default::default(),
        }
    }

    fn live(&self) -> std::sync::RwLockReadGuard<'_, HashSet<String>> {
        self.live.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Creates the series of a target with zeros, so rates and alerts see them from the start.
    pub fn init_target(&self, target: &str) {
        let mut live = self.live.write().unwrap_or_else(|p| p.into_inner());
        live.insert(target.to_string());
        for outcome in Outcome::ALL {
            self.requests
                .with_label_values(&[target, "call/query", outcome.as_str()]);
        }
        for outcome in LoginOutcome::ALL {
            self.logins.with_label_values(&[target, outcome.as_str()]);
        }
        self.suspended.with_label_values(&[target]);
    }

    /// Removes the series of a target that left the configuration.
    pub fn remove_target(&self, target: &str) {
        let mut live = self.live.write().unwrap_or_else(|p| p.into_inner());
        live.remove(target);
        // Removing a series that was never created is an error we do not care about.
        for endpoint in crate::collector::registry::endpoints() {
            for outcome in Outcome::ALL {
                let _ = self
                    .requests
                    .remove_label_values(&[target, endpoint, outcome.as_str()]);
            }
            let _ = self.durations.remove_label_values(&[target, endpoint]);
        }
        for outcome in LoginOutcome::ALL {
            let _ = self.logins.remove_label_values(&[target, outcome.as_str()]);
        }
        let _ = self.suspended.remove_label_values(&[target]);
    }

    /// The text exposition of everything in the registry.
    pub fn encode(&self) -> String {
        let mut out = Vec::with_capacity(16 * 1024);
        // Encoding our own well-formed families into a Vec cannot fail.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

impl Observer for ExporterMetrics {
    fn request(&self, target: &str, endpoint: &str, outcome: Outcome, elapsed: Duration) {
        let live = self.live();
        if !live.contains(target) {
            return;
        }
        self.requests
            .with_label_values(&[target, endpoint, outcome.as_str()])
            .inc();
        self.durations
            .with_label_values(&[target, endpoint])
            .observe(elapsed.as_secs_f64());
    }

    fn login(&self, target: &str, outcome: LoginOutcome) {
        let live = self.live();
        if !live.contains(target) {
            return;
        }
        self.logins
            .with_label_values(&[target, outcome.as_str()])
            .inc();
    }

    fn login_suspended(&self, target: &str, suspended: bool) {
        let live = self.live();
        if !live.contains(target) {
            return;
        }
        self.suspended
            .with_label_values(&[target])
            .set(if suspended { 1.0 } else { 0.0 });
    }
}
