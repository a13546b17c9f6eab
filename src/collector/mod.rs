//! PBX answers → target metric families, built fresh for every scrape.
//!
//! A [`Target`] is one configured PBX: its [`Client`], the collectors enabled for it, and the state
//! that must outlive a scrape (member-status ages, endpoints this firmware lacks, the last outcome).
//! [`Target::scrape`] runs every enabled collector against the PBX under one deadline and renders the
//! result as text. Concurrent scrapes of one target share one collection, so two Prometheus
//! replicas, a dashboard and a person with curl cost the PBX one set of requests. A collection
//! records each collector's result as it arrives; a scraper whose deadline comes first answers with
//! what is in by then (a slow PBX is not a down PBX). Nothing here knows about HTTP requests; the
//! PBX's failures become `yeastar_up 0` and `yeastar_collector_success 0`.

pub mod events;
pub mod families;
pub mod keys;
pub mod listed;
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
use tokio::time::Instant;
use tracing::Instrument;

use crate::pbx::{Client, PbxError, lock};
use crate::support::clock::SharedClock;
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
    /// Exactly these collectors, plus the required one (`calls`).
    pub fn of(kinds: impl IntoIterator<Item = CollectorKind>) -> Self {
        let mut set = Self(0);
        for kind in kinds
            .into_iter()
            .chain(CollectorKind::all().filter(|k| k.required()))
        {
            set.set(kind, true);
        }
        set
    }

    /// Whether `kind` is enabled.
    pub fn contains(&self, kind: CollectorKind) -> bool {
        self.0 & kind.bit() != 0
    }

    /// Switches `kind` on or off (the required one stays on).
    pub fn set(&mut self, kind: CollectorKind, on: bool) {
        if on || kind.required() {
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
    /// Each enabled collector that did not succeed, in table order, with its error (`None`: its
    /// answer was still out when this answer was made). For the scraper's log line.
    problems: Vec<(CollectorKind, Option<PbxError>)>,
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
    /// Members left untracked by [`keys::MAX_TRACKED_MEMBERS`], in total.
    members_dropped: u64,
    /// Since when (unix millis) its collections find the PBX down (`yeastar_up 0`): the line
    /// saying it answers again tells how long it failed.
    failing_since: Option<u64>,
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
    /// The collection in flight, its number, and its results so far.
    inflight: Mutex<Option<(u64, SharedScrape, Progress)>>,
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

/// Results of one collection, filled in as each answer arrives: the collection writes them, and a
/// scraper whose deadline comes first renders what is in (`None`: still out).
struct Results {
    /// The calls of every call answer that came in, merged as each arrived (so no decoded answer
    /// outlives its merge: a scrape's peak memory is one answer plus the merged calls).
    merged: MergedCalls,
    /// Whether an answer listing extension-to-extension calls is among them.
    internal_listed: bool,
    /// When the collection began: each collector's time is counted from then.
    started: Instant,
    /// The collectors run this scrape, in table order, each with what has come in.
    slots: Vec<Entry>,
    /// The collection's own answer, once it is complete (a scraper whose deadline passes in the
    /// instant between then and the collection's end takes it rather than a partial one).
    done: Option<Arc<ScrapeOutput>>,
}

/// A collection's results, shared by the collection and its scrapers.
type Progress = Arc<Mutex<Results>>;

/// One collector run this scrape.
struct Entry {
    kind: CollectorKind,
    slot: Slot,
    /// From the collection's start until its last answer so far came.
    took: Option<Duration>,
}

/// What has come in of one collector's run.
enum Slot {
    /// A call-path collector ([`Run::Calls`]): each of its requests' outcome once in, in the
    /// family's order (their calls are in [`Results::merged`]).
    Calls(Vec<Option<Result<(), PbxError>>>),
    /// Any other: its outcome once in.
    Own(Option<registry::Outcome>),
}

/// How one collector stands in a collection's [`Results`].
enum Came<'a> {
    /// Not run this scrape (off, or its endpoint unsupported and not yet rechecked).
    NotRun,
    /// Its answer is still out.
    Out,
    /// Succeeded.
    Ok,
    /// Failed.
    Failed(&'a PbxError),
}

impl Results {
    /// Merges a call answer's `calls` (`internal`: it lists extension-to-extension calls).
    fn merge(&mut self, calls: MergedCalls, internal: bool) {
        self.merged.add(calls);
        self.internal_listed |= internal;
    }

    /// `kind`'s slot, if it runs this scrape, for an answer that came now.
    fn record(&mut self, kind: CollectorKind) -> Option<&mut Slot> {
        let took = self.started.elapsed();
        let entry = self.slots.iter_mut().find(|e| e.kind == kind)?;
        entry.took = Some(took);
        Some(&mut entry.slot)
    }

    fn came(&self, kind: CollectorKind) -> Came<'_> {
        fn of<T>(r: &Option<Result<T, PbxError>>) -> Came<'_> {
            match r {
                None => Came::Out,
                Some(Ok(_)) => Came::Ok,
                Some(Err(e)) => Came::Failed(e),
            }
        }
        let Some(entry) = self.slots.iter().find(|e| e.kind == kind) else {
            return Came::NotRun;
        };
        match &entry.slot {
            // Any of its requests failing fails it (the first in the family's order), whether
            // or not the others are in.
            Slot::Calls(parts) => {
                let mut came = Came::Ok;
                for part in parts {
                    match of(part) {
                        Came::Failed(e) => return Came::Failed(e),
                        Came::Out => came = Came::Out,
                        _ => {}
                    }
                }
                came
            }
            Slot::Own(r) => of(r),
        }
    }

    /// How long `kind` took, if an answer of it came.
    fn took(&self, kind: CollectorKind) -> Option<Duration> {
        self.slots.iter().find(|e| e.kind == kind)?.took
    }

    /// The trunks a collector listed this scrape, if one did.
    fn listed_trunks(&self) -> Option<&[listed::TrunkState]> {
        self.slots.iter().find_map(|e| match &e.slot {
            Slot::Own(Some(Ok(collected))) => collected.listed_trunks(),
            _ => None,
        })
    }
}

/// The requests of the call-path collector `kind` on a PBX of `family`: each of its queries
/// with each request number.
fn call_parts(
    family: crate::pbx::ApiFamily,
    kind: CollectorKind,
) -> impl Iterator<Item = (crate::pbx::model::Query, usize)> {
    kind.spec()
        .queries
        .iter()
        .flat_map(move |q| (0..family.call_parts(*q)).map(move |part| (*q, part)))
}

/// A duration in seconds as a log value: `9.5s`, `5s`, `0.1s` (to the millisecond).
fn seconds(d: Duration) -> String {
    let ms = d.as_millis() + u128::from(d.subsec_nanos() % 1_000_000 >= 500_000);
    let (whole, frac) = (ms / 1000, ms % 1000);
    if frac == 0 {
        format!("{whole}s")
    } else {
        let frac = format!("{frac:03}");
        format!("{whole}.{}s", frac.trim_end_matches('0'))
    }
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
        let read = self.client.config().family.read_report(body);
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
            let _span = self.client.span().enter();
            tracing::warn!(
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
    /// A collection is a task of its own, bound by the target's timeout (`--pbx.timeout`): a
    /// scraper whose deadline comes first answers then with what is in — `yeastar_up` from the
    /// call queries if they answered, `yeastar_collector_success 0` for each collector still out —
    /// and never cuts short the collection others wait for; a collection whose scrapers all went
    /// away still finishes (so its logins are read) and releases its permits. Each answer logs at
    /// most one `warn` line: what timed out, this scraper's deadline and `--pbx.timeout`, or the
    /// failures.
    pub async fn scrape(self: &Arc<Self>, deadline: Instant) -> Arc<ScrapeOutput> {
        let started = Instant::now();
        let (shared, progress) = {
            let mut slot = lock(&self.inflight);
            match &*slot {
                Some((_, f, p)) => (f.clone(), p.clone()),
                None => {
                    let seq = self.seq.fetch_add(1, Ordering::SeqCst);
                    let bound = started + self.client.config().timeout;
                    let progress = Arc::new(Mutex::new(self.planned()));
                    let (this, p) = (self.clone(), progress.clone());
                    // The slot is held while spawning, so the task (which empties it when done)
                    // cannot finish before it is there.
                    let span = self.client.span().clone();
                    let task = tokio::spawn(
                        async move {
                            let out = this.clone().collect(bound, p).await;
                            let mut slot = lock(&this.inflight);
                            if slot.as_ref().is_some_and(|(s, _, _)| *s == seq) {
                                *slot = None;
                            }
                            out
                        }
                        .instrument(span),
                    );
                    let (this, p) = (self.clone(), progress.clone());
                    let f = async move {
                        match task.await {
                            Ok(out) => out,
                            // A panic in the collection: an answer with what came in, not a hang.
                            Err(e) => {
                                let _span = this.client.span().enter();
                                tracing::error!(cause = %e, "the collection ended without its answer (a bug: please report it)");
                                this.answer_now(&p, started.elapsed())
                            }
                        }
                    }
                    .boxed()
                    .shared();
                    *slot = Some((seq, f.clone(), progress.clone()));
                    (f, progress)
                }
            }
        };
        let out = match tokio::time::timeout_at(deadline, shared).await {
            Ok(out) => out,
            // Our deadline came first: answer with what is in now; the collection goes on for
            // the others.
            Err(_) => self.answer_now(&progress, started.elapsed()),
        };
        // A scraper answers outside the collection: its line names the PBX too.
        let _span = self.client.span().enter();
        self.log_answer(&out, deadline.saturating_duration_since(started));
        out
    }

    /// The collectors a new collection runs, none of them in yet.
    fn planned(&self) -> Results {
        let family = self.client.config().family;
        Results {
            merged: MergedCalls::default(),
            internal_listed: false,
            slots: CollectorKind::all()
                .filter(|k| self.runs(*k))
                .map(|k| {
                    let slot = match k.spec().run {
                        Run::Calls => {
                            Slot::Calls((0..call_parts(family, k).count()).map(|_| None).collect())
                        }
                        Run::One { .. } | Run::Own { .. } => Slot::Own(None),
                    };
                    Entry {
                        kind: k,
                        slot,
                        took: None,
                    }
                })
                .collect(),
            started: Instant::now(),
            done: None,
        }
    }

    /// An answer from what `progress` holds now: the collection's own once it is complete, else
    /// what has come in (nothing of it is kept: the collection records its results itself).
    fn answer_now(&self, progress: &Progress, elapsed: Duration) -> Arc<ScrapeOutput> {
        let r = lock(progress);
        match &r.done {
            Some(out) => out.clone(),
            None => Arc::new(self.render(&r, elapsed, false)),
        }
    }

    /// Marks `kind`'s endpoint as one this firmware lacks when `e` says so (10003): the collector
    /// stays off for an hour, said once.
    fn note_unsupported(&self, kind: CollectorKind, e: &PbxError) {
        if !e.is_unsupported() {
            return;
        }
        let recheck = self.clock.now_millis() + UNSUPPORTED_RECHECK.as_millis() as u64;
        lock(&self.state).unsupported.insert(kind, recheck);
        let code = e
            .api_error()
            .map(|a| format!(" ({} {})", a.label, a.wire))
            .unwrap_or_default();
        tracing::info!(
            collector = %kind,
            "the PBX does not support this collector's endpoint{code}; the collector stays off for this PBX and is re-checked hourly"
        );
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

    /// Runs the collectors `progress` plans, recording each result in it as it arrives, and
    /// renders the whole.
    async fn collect(self: Arc<Self>, deadline: Instant, progress: Progress) -> Arc<ScrapeOutput> {
        let started = Instant::now();
        // Ends an expired login suspension (and its gauge) even if no login is due this scrape.
        self.client.suspended_for();
        let session = self.client.session(deadline);
        let family = self.client.config().family;
        let s = &session;
        let p = &progress;
        let this = &*self;
        let kinds: Vec<CollectorKind> = lock(p).slots.iter().map(|e| e.kind).collect();
        // Every request of every collector run, in table order (a call-path collector's requests
        // in the family's order). With one request in flight per PBX (the default), the limiter's
        // queue is fair, so they go out in that order: the call queries first.
        let mut runs: Vec<BoxFuture<'_, ()>> = Vec::new();
        for kind in kinds {
            match &kind.spec().run {
                Run::Calls => {
                    for (i, (query, part)) in call_parts(family, kind).enumerate() {
                        runs.push(
                            async move {
                                let answer = s.calls::<MergedCalls>(query, part).await;
                                if let Err(e) = &answer
                                    && !kind.required()
                                {
                                    this.note_unsupported(kind, e);
                                }
                                let mut r = lock(p);
                                let res = answer
                                    .map(|calls| r.merge(calls, family.lists_internal(query)));
                                if let Some(Slot::Calls(parts)) = r.record(kind) {
                                    parts[i] = Some(res);
                                }
                            }
                            .boxed(),
                        );
                    }
                }
                run => runs.push(
                    async move {
                        let out = match run {
                            Run::One { query, read } => s.query(*query).await.and_then(read),
                            Run::Own { fetch } => fetch(s).await,
                            Run::Calls => return,
                        };
                        if let Err(e) = &out {
                            this.note_unsupported(kind, e);
                        }
                        if let Some(Slot::Own(slot)) = lock(p).record(kind) {
                            *slot = Some(out);
                        }
                    }
                    .boxed(),
                ),
            }
        }
        futures_util::future::join_all(runs).await;
        let out = {
            let mut r = lock(p);
            let out = Arc::new(self.render(&r, started.elapsed(), true));
            r.done = Some(out.clone());
            // Nothing more is rendered from them.
            r.merged = MergedCalls::default();
            r.slots.clear();
            out
        };
        let now = self.clock.now_millis();
        let recovered = {
            let mut state = lock(&self.state);
            state.last = Some(LastScrape {
                up: out.up,
                error: out.error.clone(),
                finished_unix: out.finished_unix,
            });
            match (out.up, state.failing_since) {
                (true, Some(since)) => {
                    state.failing_since = None;
                    Some(since)
                }
                (false, None) => {
                    state.failing_since = Some(now);
                    None
                }
                _ => None,
            }
        };
        if let Some(since) = recovered {
            tracing::info!(
                failing_for = %crate::logging::duration_words(Duration::from_millis(now.saturating_sub(since))),
                failing_since = %crate::logging::rfc3339(since / 1000),
                "the PBX answers again"
            );
        }
        out
    }

    /// Renders `r`: complete (the collection's own answer: `keep` records the member-status ages
    /// it saw) or partial (a scraper's deadline came first: collectors still out are failed this
    /// scrape, and nothing is kept).
    fn render(&self, r: &Results, elapsed: Duration, keep: bool) -> ScrapeOutput {
        // A scraper whose deadline passed renders outside the collection: its lines name the PBX
        // too.
        let _span = self.client.span().enter();
        let now_millis = self.clock.now_millis();
        let now_secs = now_millis as f64 / 1000.0;
        let m = Families::default();
        let up = matches!(r.came(CollectorKind::CALLS), Came::Ok);
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
        let took = m.gauge_vec(
            "yeastar_collector_duration_seconds",
            "Seconds from the start of this scrape's PBX work until the collector's last answer came (for one still out: until this answer was made); absent for a collector not run.",
            &["collector"],
        );
        let mut problems: Vec<(CollectorKind, Option<PbxError>)> = Vec::new();
        for kind in CollectorKind::all() {
            if !self.collectors.contains(kind) {
                continue;
            }
            let came = r.came(kind);
            success
                .with_label_values(&[kind.as_str()])
                .set(if matches!(came, Came::Ok) { 1.0 } else { 0.0 });
            let seconds = match came {
                Came::NotRun => None,
                Came::Out => Some(elapsed),
                Came::Ok | Came::Failed(_) => r.took(kind).or(Some(elapsed)),
            };
            if let Some(d) = seconds {
                took.with_label_values(&[kind.as_str()])
                    .set(d.as_secs_f64());
            }
            match came {
                Came::Out => problems.push((kind, None)),
                Came::Failed(e) => problems.push((kind, Some(e.clone()))),
                Came::Ok | Came::NotRun => {}
            }
        }
        let first_error = problems.first().map(|(_, e)| match e {
            Some(e) => crate::support::report::chain(e),
            None => "no answer before the scrape's deadline".to_string(),
        });

        if up {
            let merged = &r.merged;
            // Only what this scrape saw is kept: without the internal answer (unsupported, off,
            // failing) extension-only members lose their ages rather than pile up.
            let ages = {
                let mut state = lock(&self.state);
                let legs = self.events.as_ref().map(|intake| lock(intake));
                let legs = legs.as_ref().map(|intake| &intake.stats.legs);
                let (ages, dropped) = if keep {
                    state.ages.observe_with(merged, now_millis, legs)
                } else {
                    state.ages.peek_with(merged, now_millis, legs)
                };
                if keep {
                    state.members_dropped += dropped;
                }
                ages
            };
            calls::write(
                &m,
                merged.stats(now_millis),
                &ages,
                r.internal_listed,
                r.listed_trunks(),
            );
        }
        for e in &r.slots {
            if let Slot::Own(Some(Ok(collected))) = &e.slot {
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
            problems,
        }
    }

    /// The log line of one answer, made by a scraper whose deadline was `deadline` after it
    /// asked: when a collector's answer was still out (or the collection's own bound,
    /// `--pbx.timeout`, passed first), one `warn` line naming them with both durations, and the
    /// other failures if any; else [`Target::log_failures`].
    fn log_answer(&self, out: &ScrapeOutput, deadline: Duration) {
        let timed_out =
            |e: &Option<PbxError>| !matches!(e, Some(e) if !matches!(e, PbxError::Timeout { .. }));
        let late: Vec<&str> = out
            .problems
            .iter()
            .filter(|(_, e)| timed_out(e))
            .map(|(k, _)| k.as_str())
            .collect();
        let failed: Vec<(CollectorKind, &PbxError)> = out
            .problems
            .iter()
            .filter(|(_, e)| !timed_out(e))
            .filter_map(|(k, e)| e.as_ref().map(|e| (*k, e)))
            .collect();
        if late.is_empty() {
            self.log_failures(&failed);
            return;
        }
        let late = late.join(",");
        let (deadline, pbx_timeout) = (seconds(deadline), seconds(self.client.config().timeout));
        match failed.first() {
            None => tracing::warn!(
                timed_out = %late,
                deadline = %deadline,
                pbx_timeout = %pbx_timeout,
                "scrape deadline passed before every collector answered"
            ),
            Some((_, first)) => {
                let names: Vec<&str> = failed.iter().map(|(k, _)| k.as_str()).collect();
                tracing::warn!(
                    cause = %crate::pbx::words::cause(first),
                    timed_out = %late,
                    deadline = %deadline,
                    pbx_timeout = %pbx_timeout,
                    failed = %names.join(","),
                    "scrape deadline passed before every collector answered"
                )
            }
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
                    PbxError::LoginRejected(_)
                        | PbxError::LoginLocked(_)
                        | PbxError::TokenCap(_)
                        | PbxError::LoginSuspended { .. }
                        | PbxError::NotLoggedIn(_)
                )
        });
        let cause = crate::pbx::words::cause(first);
        let failed = crate::logging::List(&collectors);
        if quiet {
            tracing::debug!(cause = %cause, failed = %failed, "scrape failed");
        } else {
            tracing::warn!(cause = %cause, failed = %failed, "scrape failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeout(name: &str) -> PbxError {
        PbxError::Timeout {
            endpoint: crate::pbx::Endpoint::unasked(name),
        }
    }

    fn results(slots: Vec<(CollectorKind, Slot)>) -> Results {
        Results {
            merged: MergedCalls::default(),
            internal_listed: false,
            started: Instant::now(),
            slots: slots
                .into_iter()
                .map(|(kind, slot)| Entry {
                    kind,
                    slot,
                    took: None,
                })
                .collect(),
            done: None,
        }
    }

    #[test]
    fn a_call_path_collector_is_in_when_every_request_is_and_fails_with_its_first_failure() {
        let calls = CollectorKind::CALLS;
        let part = |r: Option<Result<(), PbxError>>| r;
        // Both in: ok.
        let r = results(vec![(calls, Slot::Calls(vec![Some(Ok(())), Some(Ok(()))]))]);
        assert!(matches!(r.came(calls), Came::Ok));
        // One still out: out.
        let r = results(vec![(calls, Slot::Calls(vec![Some(Ok(())), None]))]);
        assert!(matches!(r.came(calls), Came::Out));
        // A failure fails it whether or not the other is in; the first request's failure is the
        // one named when both failed.
        let r = results(vec![(
            calls,
            Slot::Calls(vec![None, part(Some(Err(timeout("second"))))]),
        )]);
        assert!(matches!(r.came(calls), Came::Failed(e) if e.to_string().starts_with("second")));
        let r = results(vec![(
            calls,
            Slot::Calls(vec![
                Some(Err(timeout("first"))),
                Some(Err(timeout("second"))),
            ]),
        )]);
        assert!(matches!(r.came(calls), Came::Failed(e) if e.to_string().starts_with("first")));
        // A collector with no slot did not run.
        assert!(matches!(
            r.came(CollectorKind::INTERNAL_CALLS),
            Came::NotRun
        ));
    }

    #[test]
    fn answers_are_recorded_with_their_time_and_only_in_their_own_slot() {
        let trunks = CollectorKind::named("trunks").unwrap();
        let device = CollectorKind::named("device").unwrap();
        let mut r = results(vec![(trunks, Slot::Own(None)), (device, Slot::Own(None))]);
        if let Some(Slot::Own(slot)) = r.record(device) {
            *slot = Some(Err(timeout("device")));
        }
        assert!(matches!(r.came(trunks), Came::Out));
        assert!(matches!(r.came(device), Came::Failed(_)));
        assert_eq!(r.took(trunks), None);
        assert!(r.took(device).is_some());
        // Nothing listed trunks: the call series get none.
        assert!(r.listed_trunks().is_none());
        assert!(r.record(CollectorKind::CALLS).is_none());
    }

    #[test]
    fn the_required_collector_cannot_be_switched_off() {
        let mut set = CollectorSet::of([]);
        assert!(set.contains(CollectorKind::CALLS));
        set.set(CollectorKind::CALLS, false);
        assert!(set.contains(CollectorKind::CALLS));
        set.set(CollectorKind::INTERNAL_CALLS, false);
        assert!(!set.contains(CollectorKind::INTERNAL_CALLS));
        assert_eq!(
            CollectorKind::all()
                .filter(|k| CollectorSet::default().contains(*k))
                .map(CollectorKind::as_str)
                .collect::<Vec<_>>(),
            ["calls", "internal_calls", "trunks", "extensions", "device"]
        );
    }

    #[test]
    fn log_durations_read_as_seconds_to_the_millisecond() {
        let ms = Duration::from_millis;
        assert_eq!(seconds(ms(9500)), "9.5s");
        assert_eq!(seconds(ms(5000)), "5s");
        assert_eq!(seconds(ms(100)), "0.1s");
        assert_eq!(seconds(ms(1234)), "1.234s");
        assert_eq!(seconds(Duration::ZERO), "0s");
        // A deadline computed a few microseconds before the scrape began reads as the whole.
        assert_eq!(seconds(Duration::from_nanos(9_499_999_100)), "9.5s");
        assert_eq!(seconds(Duration::from_nanos(4_999_400)), "0.005s");
    }
}
