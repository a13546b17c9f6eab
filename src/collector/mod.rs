//! PBX answers → target metric families, built fresh for every scrape.
//!
//! A [`Target`] is one configured PBX: its [`Client`], the collectors enabled for it, and the state
//! that must outlive a scrape (member-status ages, endpoints this firmware lacks, the last outcome).
//! [`Target::scrape`] runs every enabled collector against the PBX under one deadline and renders the
//! result as text. Concurrent scrapes of one target share one collection, so two Prometheus
//! replicas, a dashboard and a person with curl cost the PBX one set of requests. Nothing here knows
//! about HTTP requests; the PBX's failures become `yeastar_up 0` and `yeastar_collector_success 0`.

pub mod events;
pub mod families;
pub mod registry;
pub mod stats;
#[doc(hidden)]
pub mod testing;

macro_rules! collectors {
    ($($module:ident),* $(,)?) => {
        $(pub mod $module;)*
        /// Every collector, in label order (the call path first): see [`registry`].
        pub static COLLECTORS: &[&registry::Spec] = &[$(&$module::SPEC),*];
    };
}

// Adding a collector: a new file beside these with its `SPEC`, and its name here (CONTRIBUTING.md).
collectors![calls, internal_calls, trunks, extensions, device, queues];

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use serde_json::json;
use tokio::time::Instant;

use crate::clock::SharedClock;
use crate::pbx::types::{CallQueryAnswer, ExtensionCallsAnswer};
use crate::pbx::{Client, PbxError, lock};
use calls::{MergedCalls, StatusAges};
use families::Families;

/// How long an endpoint that answered 10003 is left alone before it is asked again.
pub const UNSUPPORTED_RECHECK: Duration = Duration::from_secs(3600);

pub use registry::CollectorKind;
use registry::Run;
#[doc(hidden)]
pub use testing::Answers;

/// The collectors enabled for a target. `calls` is always among them: `yeastar_up` is about it.
/// One bit per collector (a set every target carries: a word, not an allocation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CollectorSet(u64);

const _: () = assert!(COLLECTORS.len() <= 64, "CollectorSet holds 64 collectors");

impl Default for CollectorSet {
    fn default() -> Self {
        Self::of(CollectorKind::all().filter(|c| c.on_by_default()))
    }
}

impl CollectorSet {
    /// Exactly these collectors, plus `calls`.
    pub fn of(kinds: impl IntoIterator<Item = CollectorKind>) -> Self {
        let mut set = Self(0);
        for kind in kinds {
            set.set(kind, true);
        }
        set.set(CollectorKind::CALLS, true);
        set
    }

    /// Whether `kind` is enabled.
    pub fn contains(&self, kind: CollectorKind) -> bool {
        self.0 & kind.bit() != 0
    }

    /// Switches `kind` on or off (`calls` stays on).
    pub fn set(&mut self, kind: CollectorKind, on: bool) {
        if on || kind == CollectorKind::CALLS {
            self.0 |= kind.bit();
        } else {
            self.0 &= !kind.bit();
        }
    }
}

/// What one scrape of a target produced.
#[derive(Debug, Clone)]
pub struct ScrapeOutput {
    /// The target's metric families in the text format.
    pub text: String,
    /// `yeastar_up`.
    pub up: bool,
    /// The first failure, if any (for the landing page; never a secret).
    pub error: Option<String>,
    /// When it finished (unix seconds, from the target's clock).
    pub finished_unix: f64,
}

/// What a target keeps of its last scrape between probes: the landing page's up, error and time,
/// never the text (at fleet scale that would be kilobytes per PBX held for nothing).
#[derive(Debug, Clone)]
pub struct LastScrape {
    /// `yeastar_up`.
    pub up: bool,
    /// The first failure, if any.
    pub error: Option<String>,
    /// When it finished (unix seconds).
    pub finished_unix: f64,
}

type SharedScrape = Shared<BoxFuture<'static, Arc<ScrapeOutput>>>;

#[derive(Debug, Default)]
struct TargetState {
    ages: StatusAges,
    /// Collector → when to ask its endpoint again (unix millis) after 10003.
    unsupported: HashMap<CollectorKind, u64>,
    last: Option<LastScrape>,
    /// Members left untracked by [`calls::MAX_TRACKED_MEMBERS`], in total.
    members_dropped: u64,
}

/// One configured PBX and the state its scrapes share.
pub struct Target {
    name: String,
    client: Arc<Client>,
    collectors: CollectorSet,
    clock: SharedClock,
    state: Mutex<TargetState>,
    /// What its client did (the client reports to it), written into its output.
    stats: Option<Arc<stats::TargetStats>>,
    /// The collection in flight, and its number.
    inflight: Mutex<Option<(u64, SharedScrape)>>,
    seq: AtomicU64,
    /// What its PBX's event reports counted, when its events are on.
    /// Boxed: the counts are about 2 KiB, and a fleet of targets without events must not carry
    /// them inline.
    events: Option<Box<Mutex<EventIntake>>>,
}

/// A target's event accounting, and when its refusals were last logged.
#[derive(Debug, Default)]
struct EventIntake {
    stats: events::EventStats,
    refusals: events::RefusalLog,
}

/// What [`Target::receive_event`] did with a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// Read and counted (or dropped as a resent duplicate, or counted as a parse error).
    Taken(events::Recorded),
    /// Not the PBX's own ([`crate::pbx::gate`]): counted as refused, for this reason.
    Refused(crate::pbx::gate::Refusal),
    /// This target does not take events.
    Off,
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("name", &self.name)
            .field("client", &self.client)
            .field("collectors", &self.collectors)
            .finish_non_exhaustive()
    }
}

/// Results of one collection, before rendering. `None`: collector not run this scrape.
struct Results {
    /// The calls of every call answer that came in, merged as each arrived (so no decoded answer
    /// outlives its merge: a scrape's peak memory is one answer plus the merged calls).
    merged: MergedCalls,
    inbound: Result<(), PbxError>,
    outbound: Result<(), PbxError>,
    internal: Option<Result<(), PbxError>>,
    /// The other collectors that ran, in table order.
    own: Vec<(CollectorKind, registry::Outcome)>,
}

/// A call list answered `Failed` with errno 10007 ("call does not exist") is how some firmware
/// says no call is up: an empty list, not a failure.
fn idle<T: Default>(answer: Result<T, PbxError>) -> Result<T, PbxError> {
    match answer {
        Err(e) if e.errno() == Some("10007") => Ok(T::default()),
        other => other,
    }
}

async fn maybe<T>(run: bool, fut: impl Future<Output = T>) -> Option<T> {
    if run { Some(fut.await) } else { None }
}

impl Target {
    /// A target scraping through `client`.
    pub fn new(client: Arc<Client>, collectors: CollectorSet, clock: SharedClock) -> Self {
        Self {
            name: client.config().target.clone(),
            collectors,
            clock,
            state: Mutex::new(TargetState::default()),
            stats: None,
            inflight: Mutex::new(None),
            seq: AtomicU64::new(0),
            events: client
                .config()
                .events
                .is_some()
                .then(|| Box::new(Mutex::new(EventIntake::default()))),
            client,
        }
    }

    /// Reads one event report its PBX posted over HTTP from `peer` to `/events/<target>/<secret>`
    /// (`secret`: what follows the target's name) and counts it — if the event gate
    /// ([`crate::pbx::gate`]) finds it the PBX's own: on the path the last login registered, from
    /// an address of the PBX, with the PBX's serial number.
    pub fn receive_http_event(&self, secret: &str, peer: IpAddr, body: &[u8]) -> Received {
        if self.events.is_none() {
            return Received::Off;
        }
        let now = self.clock.now_millis();
        if let Err(reason) = self.client.event_gate().check(peer, secret, now) {
            return self.refuse(reason, &peer.to_canonical().to_string());
        }
        self.take(body, &peer.to_canonical().to_string())
    }

    /// Reads one event report from the TCP event connection the exporter dialed to its PBX (the
    /// connection is the path and the address) and counts it unless it carries another serial
    /// number than the PBX's.
    pub fn receive_event(&self, body: &[u8]) -> Received {
        self.take(body, "tcp")
    }

    /// Checks the serial number of a report whose path and source passed, and counts it.
    fn take(&self, body: &[u8], source: &str) -> Received {
        let Some(intake) = &self.events else {
            return Received::Off;
        };
        let read = crate::pbx::events::parse(body);
        if let Ok(p) = &read
            && let Err(reason) = self.client.event_gate().check_sn(p.sn.as_deref())
        {
            return self.refuse(reason, source);
        }
        Received::Taken(lock(intake).stats.record(read, self.clock.now_millis()))
    }

    /// Counts a refused report, and logs it at most once a minute per reason.
    fn refuse(&self, reason: crate::pbx::gate::Refusal, source: &str) -> Received {
        use crate::pbx::gate::Refusal;
        let Some(intake) = &self.events else {
            return Received::Off;
        };
        let due = {
            let mut intake = lock(intake);
            intake.stats.refused(reason);
            intake.refusals.note(reason, self.clock.now_millis())
        };
        if let Some(refused) = due {
            let why = match reason {
                Refusal::WrongSource => {
                    "not from an address of the PBX (its URL's host resolved at login; behind NAT, list the address its reports come from in events_source_addresses / --events.source-addresses)"
                }
                Refusal::UnknownPath => {
                    "not on the path the last login registered (a guessed path, an older login's, or no login yet)"
                }
                Refusal::StalePath => {
                    "on the previous login's path after its 60-second grace (another application re-registering the API account?)"
                }
                Refusal::WrongSn => {
                    "carrying another serial number than the PBX's deviceinfo/query reports"
                }
            };
            tracing::warn!(
                target_name = %self.name,
                pbx = %self.client.config().url,
                source,
                reason = reason.as_str(),
                refused,
                "event reports refused (answered 200 and dropped): {why}; refused counts those since the last such line, at most one a minute per reason"
            );
        }
        Received::Refused(reason)
    }

    /// Whether it takes its PBX's event reports.
    pub fn events_on(&self) -> bool {
        self.events.is_some()
    }

    /// It takes its PBX's event reports (read over TCP: its client registers nothing, but asks
    /// the PBX's serial number after each login).
    pub fn with_event_intake(mut self) -> Self {
        self.client.want_serial();
        if self.events.is_none() {
            self.events = Some(Box::new(Mutex::new(EventIntake::default())));
        }
        self
    }

    /// Whether its TCP event connection is up (`yeastar_events_connected`).
    pub fn set_events_connected(&self, up: bool) {
        if let Some(intake) = &self.events {
            lock(intake).stats.set_connected(up);
        }
    }

    /// A target whose client reports to `stats`: its output then carries the client's request
    /// and login counts (`yeastar_pbx_requests_total`, `yeastar_pbx_logins_total`,
    /// `yeastar_login_suspended`).
    pub fn with_stats(
        client: Arc<Client>,
        collectors: CollectorSet,
        clock: SharedClock,
        stats: Arc<stats::TargetStats>,
    ) -> Self {
        Self {
            stats: Some(stats),
            ..Self::new(client, collectors, clock)
        }
    }

    /// The target's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The collectors it runs.
    pub fn collectors(&self) -> CollectorSet {
        self.collectors
    }

    /// Its PBX client.
    pub fn client(&self) -> &Arc<Client> {
        &self.client
    }

    /// Reports whether its logins are suspended now (after a reload handed it a predecessor's
    /// back-off), to its counts and the fleet's.
    pub fn report_suspended(&self, suspended: bool) {
        if let Some(stats) = &self.stats {
            use crate::pbx::Observer;
            stats.login_suspended(&self.name, suspended);
        }
    }

    /// The outcome of the last finished scrape, if any.
    pub fn last(&self) -> Option<LastScrape> {
        lock(&self.state).last.clone()
    }

    /// Takes over `old`'s member-status ages, missing-endpoint marks and last outcome (the same
    /// PBX under new settings after a reload).
    pub fn adopt_state(&self, old: &Target) {
        let taken = std::mem::take(&mut *lock(&old.state));
        *lock(&self.state) = taken;
        // Counters are totals: they carry over while events stay on.
        if let (Some(new), Some(old)) = (&self.events, &old.events) {
            let taken = std::mem::take(&mut *lock(old));
            *lock(new) = taken;
        }
    }

    /// Members whose status age is tracked now.
    pub fn tracked_members(&self) -> usize {
        lock(&self.state).ages.len()
    }

    /// Scrapes the PBX, or joins the collection already in flight, answering by `deadline`.
    ///
    /// A collection is a task of its own, bound by the target's timeout (`--pbx.timeout`, the
    /// longest deadline any scrape can have): a scraper with a short deadline answers alone when
    /// it passes, and never cuts short the collection others wait for; a collection whose
    /// scrapers all went away still finishes (so its logins are read) and releases its permits.
    pub async fn scrape(self: &Arc<Self>, deadline: Instant) -> Arc<ScrapeOutput> {
        let started = Instant::now();
        let shared = {
            let mut slot = lock(&self.inflight);
            match &*slot {
                Some((_, f)) => f.clone(),
                None => {
                    let seq = self.seq.fetch_add(1, Ordering::SeqCst);
                    let bound = started + self.client.config().timeout;
                    let this = self.clone();
                    // The slot is held while spawning, so the task (which empties it when done)
                    // cannot finish before it is there.
                    let task = tokio::spawn(async move {
                        let out = this.clone().collect(bound).await;
                        let mut slot = lock(&this.inflight);
                        if slot.as_ref().is_some_and(|(s, _)| *s == seq) {
                            *slot = None;
                        }
                        out
                    });
                    let this = self.clone();
                    let f = async move {
                        match task.await {
                            Ok(out) => out,
                            // A panic in the collection: an answer like a timeout, not a hang.
                            Err(_) => Arc::new(this.render(Results::timed_out(), Duration::ZERO)),
                        }
                    }
                    .boxed()
                    .shared();
                    *slot = Some((seq, f.clone()));
                    f
                }
            }
        };
        match tokio::time::timeout_at(deadline, shared).await {
            Ok(out) => out,
            // Our deadline came first: answer with what we know — nothing — now; the collection
            // goes on for the others.
            Err(_) => Arc::new(self.render(Results::timed_out(), started.elapsed())),
        }
    }

    fn runs(&self, kind: CollectorKind) -> bool {
        if !self.collectors.contains(kind) {
            return false;
        }
        let now = self.clock.now_millis();
        let mut state = lock(&self.state);
        match state.unsupported.get(&kind) {
            Some(recheck) if *recheck > now => false,
            Some(_) => {
                state.unsupported.remove(&kind);
                true
            }
            None => true,
        }
    }

    async fn collect(self: Arc<Self>, deadline: Instant) -> Arc<ScrapeOutput> {
        let started = Instant::now();
        // Ends an expired login suspension (and its gauge) even if no login is due this scrape.
        self.client.suspended_for();
        let session = self.client.session(deadline);
        let s = &session;
        let (inbound_q, outbound_q) = (json!({"type": "inbound"}), json!({"type": "outbound"}));
        let all = json!({"number": "all"});
        // With one request in flight per PBX (the default), the limiter's queue is fair, so these
        // go out in the order written: the call queries first, then the table's order.
        let merged = std::sync::Mutex::new(MergedCalls::default());
        let merge = |calls: MergedCalls| lock(&merged).add(calls);
        let own = CollectorKind::all().filter_map(|kind| match kind.spec().run {
            Run::Own { fetch, .. } if self.runs(kind) => {
                Some(async move { (kind, fetch(s).await) })
            }
            _ => None,
        });
        let own = futures_util::future::join_all(own);
        let (inbound, outbound, internal, own) = tokio::join!(
            async {
                let a = idle(
                    s.call::<CallQueryAnswer<MergedCalls>>("call/query", &inbound_q)
                        .await,
                )?;
                merge(a.calls);
                Ok(())
            },
            async {
                let a = idle(
                    s.call::<CallQueryAnswer<MergedCalls>>("call/query", &outbound_q)
                        .await,
                )?;
                merge(a.calls);
                Ok(())
            },
            maybe(self.runs(CollectorKind::INTERNAL_CALLS), async {
                let a = idle(
                    s.call::<ExtensionCallsAnswer<MergedCalls>>("extension/query_call", &all)
                        .await,
                )?;
                merge(a.calllist);
                Ok(())
            }),
            own,
        );
        let results = Results {
            merged: merged.into_inner().unwrap_or_else(|p| p.into_inner()),
            inbound,
            outbound,
            internal,
            own,
        };
        let out = Arc::new(self.render(results, started.elapsed()));
        lock(&self.state).last = Some(LastScrape {
            up: out.up,
            error: out.error.clone(),
            finished_unix: out.finished_unix,
        });
        out
    }

    fn render(&self, r: Results, elapsed: Duration) -> ScrapeOutput {
        let now_millis = self.clock.now_millis();
        let now_secs = now_millis as f64 / 1000.0;
        let m = Families::default();
        let up = r.inbound.is_ok() && r.outbound.is_ok();
        m.gauge(
            "yeastar_up",
            "1 when this scrape's call queries (call/query inbound and outbound) both succeeded.",
        )
        .set(if up { 1.0 } else { 0.0 });
        let success = m.gauge_vec(
            "yeastar_collector_success",
            "1 when the collector's PBX requests succeeded this scrape, else 0.",
            &["collector"],
        );
        fn unit<T>(r: &Option<Result<T, PbxError>>) -> Option<Result<(), &PbxError>> {
            r.as_ref().map(|x| x.as_ref().map(|_| ()))
        }
        let calls_err = r.inbound.as_ref().err().or(r.outbound.as_ref().err());
        let mut outcomes: Vec<(CollectorKind, Option<Result<(), &PbxError>>)> = vec![
            (CollectorKind::CALLS, Some(calls_err.map_or(Ok(()), Err))),
            (CollectorKind::INTERNAL_CALLS, unit(&r.internal)),
        ];
        for kind in CollectorKind::all().skip(2) {
            let result = r
                .own
                .iter()
                .find(|(k, _)| *k == kind)
                .map(|(_, res)| res.as_ref().map(|_| ()));
            outcomes.push((kind, result));
        }
        let mut failures: Vec<(CollectorKind, &PbxError)> = Vec::new();
        for (kind, result) in outcomes {
            if !self.collectors.contains(kind) {
                continue;
            }
            let ok = matches!(result, Some(Ok(())));
            success
                .with_label_values(&[kind.as_str()])
                .set(if ok { 1.0 } else { 0.0 });
            if let Some(Err(e)) = result {
                failures.push((kind, e));
            }
        }

        // Endpoints this firmware lacks: remember, say so once, ask again in an hour.
        {
            let mut state = lock(&self.state);
            for (kind, e) in &failures {
                if e.is_unsupported() && *kind != CollectorKind::CALLS {
                    state
                        .unsupported
                        .insert(*kind, now_millis + UNSUPPORTED_RECHECK.as_millis() as u64);
                    tracing::info!(
                        target_name = %self.name,
                        collector = %kind,
                        "the PBX does not support this collector's endpoint (errno 10003); the collector stays off for this PBX and is re-checked hourly"
                    );
                }
            }
        }
        let first_error = failures.first().map(|(_, e)| crate::report::chain(*e));
        self.log_failures(&failures);

        let trunk_list = r.own.iter().find_map(|(_, res)| {
            res.as_ref()
                .ok()?
                .as_any()
                .downcast_ref::<trunks::Listed>()
                .map(|l| l.0.as_slice())
        });
        if up {
            let internal_ok = matches!(r.internal, Some(Ok(_)));
            let merged = r.merged;
            // Only what this scrape saw is kept: without the internal answer (unsupported, off,
            // failing) extension-only members lose their ages rather than pile up.
            let ages = {
                let mut state = lock(&self.state);
                let (ages, dropped) = match &self.events {
                    Some(intake) => {
                        let intake = lock(intake);
                        state
                            .ages
                            .observe_with(&merged, now_millis, Some(&intake.stats.legs))
                    }
                    None => state.ages.observe(&merged, now_millis),
                };
                state.members_dropped += dropped;
                ages
            };
            calls::write(&m, merged.stats(now_millis), &ages, internal_ok, trunk_list);
        }
        for (_, result) in &r.own {
            if let Ok(collected) = result {
                collected.write(&m, &self.name);
            }
        }
        m.counter(
            "yeastar_status_age_members_dropped_total",
            "Call members whose status age was not tracked because the per-target cap (20000) was reached.",
            lock(&self.state).members_dropped as f64,
        );
        m.gauge(
            "yeastar_scrape_duration_seconds",
            "Wall time of this scrape's PBX work.",
        )
        .set(elapsed.as_secs_f64());
        if let Some(stats) = &self.stats {
            stats.write(&m);
        }
        if let Some(intake) = &self.events {
            lock(intake).stats.write(&m);
        }
        ScrapeOutput {
            text: m.encode(),
            up,
            error: first_error,
            finished_unix: now_secs,
        }
    }

    /// One `warn` line per scrape naming the target and the cause. Login rejections and
    /// suspensions are left out: the client already warned once for the whole suspension.
    fn log_failures(&self, failures: &[(CollectorKind, &PbxError)]) {
        let Some((_, first)) = failures.first() else {
            return;
        };
        let collectors: Vec<&str> = failures.iter().map(|(k, _)| k.as_str()).collect();
        let quiet = failures.iter().all(|(_, e)| {
            e.is_unsupported()
                || matches!(
                    e,
                    PbxError::LoginRejected
                        | PbxError::LoginLocked
                        | PbxError::LoginSuspended { .. }
                        | PbxError::NotLoggedIn(_)
                )
        });
        let cause = crate::report::chain(*first);
        if quiet {
            tracing::debug!(target_name = %self.name, cause = %cause, failed = ?collectors, "scrape failed");
        } else {
            tracing::warn!(target_name = %self.name, cause = %cause, failed = ?collectors, "scrape failed");
        }
    }
}

impl Results {
    fn timed_out() -> Self {
        let t = || PbxError::Timeout {
            endpoint: "call/query".into(),
        };
        Results {
            merged: MergedCalls::default(),
            inbound: Err(t()),
            outbound: Err(t()),
            internal: Some(Err(t())),
            own: CollectorKind::all()
                .filter(|k| matches!(k.spec().run, Run::Own { .. }))
                .map(|k| (k, Err(t())))
                .collect(),
        }
    }
}
