//! What a target's PBX client did, counted per target and written into the target's own output
//! (`/probe`, and `/metrics` in single-target mode) — as blackbox_exporter's `probe_*` series go
//! with the probe. The exporter's `/metrics` keeps only fleet totals, which do not grow with the
//! number of PBXes: every report is also passed on to them.

use std::borrow::Cow;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::families::Families;
use crate::pbx::model::Query;
use crate::pbx::{ApiFamily, LoginOutcome, Observer, Outcome};

/// One target's request and login counts since its client was created (a reload that changes the
/// target's settings starts them again, as a restart would: counters reset, `rate` copes).
pub struct TargetStats {
    fleet: Arc<dyn Observer>,
    /// The target's API family: which endpoint its call query is, for the series shown at 0.
    family: ApiFamily,
    counts: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    /// Endpoint → requests by [`Outcome`] index. A handful of endpoints: a list beats a map; its
    /// names are the registry's own strings (no copy per target), its capacity exact.
    requests: Vec<(Cow<'static, str>, [u64; Outcome::ALL.len()])>,
    /// Logins by [`LoginOutcome`] index.
    logins: [u64; LoginOutcome::ALL.len()],
    suspended: bool,
}

impl std::fmt::Debug for TargetStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TargetStats")
    }
}

fn index<T: PartialEq>(all: &[T], x: &T) -> usize {
    all.iter().position(|o| o == x).unwrap_or(0)
}

impl TargetStats {
    /// Counts for one target of `family`, passing every report on to `fleet` too.
    pub fn new(fleet: Arc<dyn Observer>, family: ApiFamily) -> Self {
        Self {
            fleet,
            family,
            counts: Mutex::new(Counts::default()),
        }
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes `yeastar_pbx_requests_total`, `yeastar_pbx_logins_total` and
    /// `yeastar_login_suspended`, every outcome present (for the call query's endpoint,
    /// `call/query` on the S-Series, from the start).
    pub fn write(&self, m: &Families) {
        let c = self.counts();
        let requests = m.counter_vec(
            "yeastar_pbx_requests_total",
            "Requests this exporter sent to the PBX, by endpoint and outcome.",
            &["endpoint", "outcome"],
        );
        for first in self
            .family
            .query_endpoints(Query::ActiveCalls)
            .iter()
            .take(1)
        {
            if !c.requests.iter().any(|(e, _)| e == first) {
                for o in Outcome::ALL {
                    requests.with_label_values(&[first, o.as_str()]).set(0.0);
                }
            }
        }
        for (endpoint, by_outcome) in &c.requests {
            for (o, n) in Outcome::ALL.iter().zip(by_outcome) {
                requests
                    .with_label_values(&[endpoint, o.as_str()])
                    .set(*n as f64);
            }
        }
        let logins = m.counter_vec(
            "yeastar_pbx_logins_total",
            "Login attempts to the PBX, by outcome.",
            &["outcome"],
        );
        for (o, n) in LoginOutcome::ALL.iter().zip(c.logins) {
            logins.with_label_values(&[o.as_str()]).set(n as f64);
        }
        m.gauge(
            "yeastar_login_suspended",
            "1 while logins to the PBX are suspended (after a rejected login, or at most 2 logins without a token in 10 minutes).",
        )
        .set(if c.suspended { 1.0 } else { 0.0 });
    }
}

impl Observer for TargetStats {
    fn request(&self, target: &str, endpoint: &str, outcome: Outcome, elapsed: Duration) {
        {
            let mut c = self.counts();
            let i = index(&Outcome::ALL, &outcome);
            match c.requests.iter_mut().find(|(e, _)| e == endpoint) {
                Some((_, n)) => n[i] += 1,
                None => {
                    let mut n = [0; Outcome::ALL.len()];
                    n[i] = 1;
                    let name = super::registry::endpoints()
                        .into_iter()
                        .find(|e| *e == endpoint)
                        .map_or_else(|| Cow::Owned(endpoint.to_string()), Cow::Borrowed);
                    c.requests.reserve_exact(1);
                    c.requests.push((name, n));
                }
            }
        }
        self.fleet.request(target, endpoint, outcome, elapsed);
    }

    fn login(&self, target: &str, outcome: LoginOutcome) {
        self.counts().logins[index(&LoginOutcome::ALL, &outcome)] += 1;
        self.fleet.login(target, outcome);
    }

    fn login_suspended(&self, target: &str, suspended: bool) {
        self.counts().suspended = suspended;
        self.fleet.login_suspended(target, suspended);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pbx::NoopObserver;

    #[test]
    fn counts_per_endpoint_and_outcome_with_zeros() {
        let s = TargetStats::new(Arc::new(NoopObserver), ApiFamily::default());
        let m = Families::default();
        s.write(&m);
        let empty = m.encode();
        assert!(empty.contains(
            "yeastar_pbx_requests_total{endpoint=\"call/query\",outcome=\"timeout\"} 0\n"
        ));
        assert!(empty.contains("yeastar_pbx_logins_total{outcome=\"rejected\"} 0\n"));
        assert!(empty.contains("yeastar_login_suspended 0\n"));
        s.request("t", "login", Outcome::Timeout, Duration::ZERO);
        s.request("t", "call/query", Outcome::Success, Duration::ZERO);
        s.request("t", "call/query", Outcome::Success, Duration::ZERO);
        s.login("t", LoginOutcome::Error);
        s.login_suspended("t", true);
        let m = Families::default();
        s.write(&m);
        let text = m.encode();
        assert!(text.contains("# TYPE yeastar_pbx_requests_total counter\n"));
        assert!(text.contains(
            "yeastar_pbx_requests_total{endpoint=\"call/query\",outcome=\"success\"} 2\n"
        ));
        assert!(
            text.contains("yeastar_pbx_requests_total{endpoint=\"login\",outcome=\"timeout\"} 1\n")
        );
        assert!(
            text.contains("yeastar_pbx_requests_total{endpoint=\"login\",outcome=\"success\"} 0\n")
        );
        assert!(text.contains("yeastar_pbx_logins_total{outcome=\"error\"} 1\n"));
        assert!(text.contains("yeastar_login_suspended 1\n"));
    }
}
