//! The exporter's own metrics (`yeastar_exporter_*`, `process_*`), served on `/metrics` only.
//!
//! [`ExporterMetrics`] is where every target's [`Observer`] passes its reports on: every request
//! sent, every login attempt, every suspension — as fleet totals by endpoint and outcome, with no
//! `target` label, so `/metrics` stays the same size for 1 PBX or 5,000. The per-target detail goes
//! with the target's own output (`collector::stats`). It lives as long as the process; target
//! metrics, by contrast, are built fresh for every scrape by `collector`.

use std::collections::HashSet;

#[derive(Default)]
struct Live {
    targets: HashSet<String>,
    suspended: HashSet<String>,
}
use std::sync::{Arc, RwLock};
use std::time::Duration;

use prometheus::{
    CounterVec, Encoder, Gauge, GaugeVec, HistogramOpts, HistogramVec, Opts, Registry, TextEncoder,
};

use crate::pbx::{LoginOutcome, Observer, Outcome};

/// The `reason` values of `yeastar_exporter_events_connections_evicted_total`: the receiver's
/// connection cap, the per-source cap.
pub const EVICTION_REASONS: [&str; 2] = ["connection_cap", "source_cap"];

/// The exporter's registry and the handles it updates.
#[derive(Clone)]
pub struct ExporterMetrics {
    registry: Registry,
    requests: CounterVec,
    durations: HistogramVec,
    logins: CounterVec,
    suspended: Gauge,
    targets: Gauge,
    events_refused: CounterVec,
    /// `yeastar_exporter_config_last_reload_successful`.
    pub reload_ok: Gauge,
    /// `yeastar_exporter_config_last_reload_success_timestamp_seconds`.
    pub reload_time: Gauge,
    /// `yeastar_exporter_events_connections_evicted_total`.
    events_evicted: CounterVec,
    /// Targets in the configuration, and those of them whose logins are suspended now. A
    /// suspension report about any other (a scrape that began before a reload removed its target)
    /// is dropped.
    live: Arc<RwLock<Live>>,
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
                "Requests sent to PBXes (all targets), by endpoint and outcome.",
            ),
            &["endpoint", "outcome"],
        )
        .expect("valid metric");
        let durations = HistogramVec::new(
            HistogramOpts::new(
                "yeastar_exporter_pbx_request_duration_seconds",
                "PBX request latency (all targets).",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["endpoint"],
        )
        .expect("valid metric");
        let logins = CounterVec::new(
            Opts::new(
                "yeastar_exporter_logins_total",
                "Login attempts to PBXes (all targets), by outcome.",
            ),
            &["outcome"],
        )
        .expect("valid metric");
        let suspended = Gauge::new(
            "yeastar_exporter_login_suspended_targets",
            "Targets whose logins are suspended now (the per-target yeastar_login_suspended is 1).",
        )
        .expect("valid metric");
        let targets = Gauge::new(
            "yeastar_exporter_targets",
            "PBXes in the configuration in force.",
        )
        .expect("valid metric");
        // Every outcome from the start, so rates and alerts see them before the first failure.
        for outcome in Outcome::ALL {
            requests.with_label_values(&["call/query", outcome.as_str()]);
        }
        for outcome in LoginOutcome::ALL {
            logins.with_label_values(&[outcome.as_str()]);
        }
        let events_refused = CounterVec::new(
            Opts::new(
                "yeastar_exporter_events_refused_total",
                "Event reports the receiver refused: for no configured target with events on, or unreadable (over the size or time limits, or not HTTP).",
            ),
            &["reason"],
        )
        .expect("valid metric");
        for reason in ["unknown_target", "unreadable"] {
            events_refused.with_label_values(&[reason]);
        }
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
        let events_evicted = CounterVec::new(
            Opts::new(
                "yeastar_exporter_events_connections_evicted_total",
                "Connections the event receiver closed before a complete report to make room: at its connection cap (256), or at the per-source cap (--events.max-connections-per-source).",
            ),
            &["reason"],
        )
        .expect("valid metric");
        for reason in EVICTION_REASONS {
            events_evicted.with_label_values(&[reason]);
        }
        for c in [
            Box::new(build) as Box<dyn prometheus::core::Collector>,
            Box::new(requests.clone()),
            Box::new(durations.clone()),
            Box::new(logins.clone()),
            Box::new(suspended.clone()),
            Box::new(targets.clone()),
            Box::new(events_refused.clone()),
            Box::new(reload_ok.clone()),
            Box::new(reload_time.clone()),
            Box::new(events_evicted.clone()),
        ] {
            registry.register(c).expect("unique metric names");
        }
        #[cfg(target_os = "linux")]
        registry
            .register(Box::new(Process::new()))
            .expect("unique metric names");
        Self {
            registry,
            requests,
            durations,
            logins,
            suspended,
            targets,
            events_refused,
            reload_ok,
            reload_time,
            events_evicted,
            live: Default::default(),
        }
    }

    fn live(&self) -> std::sync::RwLockWriteGuard<'_, Live> {
        self.live.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts an event report the receiver refused, for `reason` (`unknown_target`,
    /// `unreadable`).
    pub fn event_refused(&self, reason: &str) {
        self.events_refused.with_label_values(&[reason]).inc();
    }

    /// Counts a connection the event receiver closed to make room, for `reason` (one of
    /// [`EVICTION_REASONS`]).
    pub fn event_connection_evicted(&self, reason: &str) {
        self.events_evicted.with_label_values(&[reason]).inc();
    }

    /// Counts a target in.
    pub fn init_target(&self, target: &str) {
        let mut live = self.live();
        live.targets.insert(target.to_string());
        self.targets.set(live.targets.len() as f64);
    }

    /// Counts out a target that left the configuration.
    pub fn remove_target(&self, target: &str) {
        let mut live = self.live();
        live.targets.remove(target);
        live.suspended.remove(target);
        self.targets.set(live.targets.len() as f64);
        self.suspended.set(live.suspended.len() as f64);
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
    fn request(&self, _target: &str, endpoint: &str, outcome: Outcome, elapsed: Duration) {
        self.requests
            .with_label_values(&[endpoint, outcome.as_str()])
            .inc();
        self.durations
            .with_label_values(&[endpoint])
            .observe(elapsed.as_secs_f64());
    }

    fn login(&self, _target: &str, outcome: LoginOutcome) {
        self.logins.with_label_values(&[outcome.as_str()]).inc();
    }

    fn login_suspended(&self, target: &str, suspended: bool) {
        let mut live = self.live();
        if !live.targets.contains(target) {
            return;
        }
        if suspended {
            live.suspended.insert(target.to_string());
        } else {
            live.suspended.remove(target);
        }
        self.suspended.set(live.suspended.len() as f64);
    }
}

/// The `prometheus` crate's process collector (`process_*`: CPU, memory, file descriptors,
/// threads, start time), with `process_cpu_seconds_total` in fractions of a second: the crate
/// divides whole clock ticks by the tick rate in integers, so the counter read 0 while /proc
/// showed 0.41 s, and a CPU panel read 0 or jumped by whole seconds. Same names, help and types.
#[cfg(target_os = "linux")]
struct Process {
    inner: prometheus::process_collector::ProcessCollector,
    /// Clock ticks per second (`sysconf(_SC_CLK_TCK)`), the unit of /proc's `utime` and `stime`.
    ticks_per_second: f64,
}

#[cfg(target_os = "linux")]
impl Process {
    fn new() -> Self {
        // SAFETY: sysconf only reads a constant of the system; it has no preconditions.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        Self {
            inner: prometheus::process_collector::ProcessCollector::for_self(),
            // Linux's USER_HZ (100) if sysconf could not say.
            ticks_per_second: if ticks > 0 { ticks as f64 } else { 100.0 },
        }
    }
}

/// User plus system CPU time of this process, in clock ticks, from `/proc/self/stat`.
#[cfg(target_os = "linux")]
pub fn cpu_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count from the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Field 3 (state) is fields[0]: utime is field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(target_os = "linux")]
impl prometheus::core::Collector for Process {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        self.inner.desc()
    }

    fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
        let mut families = self.inner.collect();
        if let Some(ticks) = cpu_ticks() {
            let seconds = ticks as f64 / self.ticks_per_second;
            for family in &mut families {
                if family.name() == "process_cpu_seconds_total" {
                    for m in family.mut_metric() {
                        let mut counter = prometheus::proto::Counter::default();
                        counter.set_value(seconds);
                        m.set_counter(counter);
                    }
                }
            }
        }
        families
    }
}
