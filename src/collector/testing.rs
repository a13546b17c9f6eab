//! Support for benchmarks and property tests, not part of the product: a scrape's answers as bytes
//! ([`Answers`]) and the exporter's own work on them without a network ([`Target::render_answers`]
//! on a [`Target::offline`]). Hidden from the documentation.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use std::collections::BTreeMap;

use super::calls::MergedCalls;
use super::registry::Run;
use super::{CollectorKind, CollectorSet, Results, ScrapeOutput, Slot, Target};
use crate::pbx::Client;
use crate::support::clock::SharedClock;

/// One scrape's answers as the PBX sent them, by collector: the input of the exporter's own
/// work (decode, aggregate, encode), for benchmarks and property tests that leave the network out.
/// Each collector's answers are in the order its family asks them (`calls`: `call/query`
/// inbound, then outbound). A collector whose later requests depend on earlier answers
/// ([`Run::Own`]: `queues`) is not rendered from bytes.
#[derive(Debug, Clone, Default)]
pub struct Answers {
    by_collector: BTreeMap<CollectorKind, Vec<Vec<u8>>>,
}

impl Answers {
    /// These answers and `collector`'s, in its family's order.
    ///
    /// # Panics
    /// On a name no collector has (a test's typo).
    pub fn with(mut self, collector: &str, answers: impl IntoIterator<Item = Vec<u8>>) -> Self {
        let Some(kind) = CollectorKind::named(collector) else {
            panic!("no collector is called {collector:?}");
        };
        self.by_collector
            .insert(kind, answers.into_iter().collect());
        self
    }

    /// One scrape's answers of the default collectors to an S-Series PBX, each the bytes
    /// `answer(endpoint, body)` gives, e.g. a simulator's `|e, b| sim.answer_bytes(e, b)`.
    pub fn scrape(answer: impl Fn(&str, &Value) -> Vec<u8>) -> Self {
        let family = crate::pbx::ApiFamily::default();
        let mut out = Self::default();
        for kind in CollectorKind::all().filter(|k| k.on_by_default()) {
            let spec = kind.spec();
            let queries = match spec.run {
                Run::Calls | Run::One { .. } => spec.queries,
                Run::Own { .. } => continue,
            };
            let bytes = queries
                .iter()
                .flat_map(|q| family.requests(*q))
                .map(|(endpoint, body)| answer(endpoint, &body))
                .collect();
            out.by_collector.insert(kind, bytes);
        }
        out
    }

    /// Every byte of every answer.
    pub fn parts(&self) -> impl Iterator<Item = &[u8]> {
        self.by_collector.values().flatten().map(Vec::as_slice)
    }
}

impl Target {
    /// A target for [`Target::render_answers`] alone (benchmarks, property tests): its client
    /// points at a closed port and is never used.
    #[doc(hidden)]
    pub fn offline(collectors: CollectorSet, clock: SharedClock) -> Self {
        let cfg = crate::pbx::ClientConfig {
            target: "offline".into(),
            family: Default::default(),
            url: "http://127.0.0.1:9".into(),
            api_path: "/api/v2.0.0".into(),
            auth: crate::pbx::Auth::StaticToken(crate::support::secret::Secret::new("unused")),
            timeout: Duration::from_secs(5),
            max_concurrent_requests: 1,
            max_response_bytes: 64 << 20,
            login_backoff: Duration::from_secs(600),
            ca_file: None,
            insecure_skip_verify: false,
            proxy_url: None,
            events: None,
        };
        let http = crate::pbx::transport::HttpClient::plain();
        let client = Client::with_http(
            cfg,
            http,
            Arc::new(crate::pbx::LoginLedger::in_memory()),
            Arc::new(crate::pbx::NoopObserver),
            clock.clone(),
        );
        Self::new(Arc::new(client), collectors, clock)
    }

    /// The exporter's own work on one scrape's `answers`: decode each, aggregate, encode the text;
    /// the code a scrape runs once the answers are in, without the network. Member-status ages
    /// carry over between calls as between scrapes.
    #[doc(hidden)]
    pub fn render_answers(&self, answers: &Answers) -> ScrapeOutput {
        let family = self.client.config().family;
        let mut results = Results {
            merged: MergedCalls::default(),
            internal_listed: false,
            started: tokio::time::Instant::now(),
            slots: Vec::new(),
            done: None,
        };
        for (&kind, bytes) in &answers.by_collector {
            if !self.collectors.contains(kind) {
                continue;
            }
            // What a scrape does with each answer: the family reads it, the collector too.
            let slot = match &kind.spec().run {
                Run::Calls => {
                    let mut given = bytes.iter();
                    let parts = super::call_parts(family, kind)
                        .map(|(query, _)| {
                            let bytes = given.next()?;
                            let read = family.read_calls::<MergedCalls>(query, bytes);
                            Some(read.map(|calls| {
                                results.merge(calls, family.lists_internal(query));
                            }))
                        })
                        .collect();
                    Slot::Calls(parts)
                }
                Run::One { query, read } => {
                    let Some(bytes) = bytes.first() else {
                        continue;
                    };
                    Slot::Own(Some(family.read(*query, bytes).and_then(read)))
                }
                Run::Own { .. } => continue,
            };
            results.slots.push(super::Entry {
                kind,
                slot,
                took: Some(Duration::ZERO),
            });
        }
        self.render(&results, Duration::ZERO, true)
    }
}
