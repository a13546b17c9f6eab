//! Support for benchmarks and property tests, not part of the product: a scrape's answers as bytes
//! ([`Answers`]) and the exporter's own work on them without a network ([`Target::render_answers`]
//! on a [`Target::offline`]). Hidden from the documentation.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::calls::MergedCalls;
use super::registry::Run;
use super::{CollectorKind, CollectorSet, Results, ScrapeOutput, Target};
use crate::pbx::Client;
use crate::pbx::model::Query;
use crate::support::clock::SharedClock;

/// One scrape's answers as the PBX sent them: the input of the exporter's own work (decode,
/// aggregate, encode), for benchmarks and property tests that leave the network out.
#[derive(Debug, Clone, Default)]
pub struct Answers {
    /// `call/query` `{"type":"inbound"}`.
    pub inbound: Vec<u8>,
    /// `call/query` `{"type":"outbound"}`.
    pub outbound: Vec<u8>,
    /// `extension/query_call` `{"number":"all"}`.
    pub internal: Option<Vec<u8>>,
    /// `trunk/list`.
    pub trunks: Option<Vec<u8>>,
    /// `extension/list`.
    pub extensions: Option<Vec<u8>>,
    /// `deviceinfo/query`.
    pub device: Option<Vec<u8>>,
}

impl Answers {
    /// One scrape's answers of the default collectors to an S-Series PBX, each the bytes
    /// `answer(endpoint, body)` gives, e.g. a simulator's `|e, b| sim.answer_bytes(e, b)`.
    pub fn scrape(answer: impl Fn(&str, &Value) -> Vec<u8>) -> Self {
        let family = crate::pbx::ApiFamily::default();
        let get = |query: Query| -> Vec<Vec<u8>> {
            family
                .requests(query)
                .iter()
                .map(|(endpoint, body)| answer(endpoint, body))
                .collect()
        };
        let one = |query: Query| get(query).into_iter().next();
        let mut calls = get(Query::ActiveCalls).into_iter();
        Self {
            inbound: calls.next().unwrap_or_default(),
            outbound: calls.next().unwrap_or_default(),
            internal: one(Query::InternalCalls),
            trunks: one(Query::Trunks),
            extensions: one(Query::Extensions),
            device: one(Query::Device),
        }
    }

    /// Every byte of every answer.
    pub fn parts(&self) -> impl Iterator<Item = &[u8]> {
        [Some(&self.inbound), Some(&self.outbound)]
            .into_iter()
            .chain([
                self.internal.as_ref(),
                self.trunks.as_ref(),
                self.extensions.as_ref(),
                self.device.as_ref(),
            ])
            .flatten()
            .map(Vec::as_slice)
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
        let mut merged = MergedCalls::default();
        let mut calls = |bytes: &[u8]| {
            family
                .read_calls::<MergedCalls>(Query::ActiveCalls, bytes)
                .map(|calls| merged.add(calls))
        };
        let (inbound, outbound) = (
            Some(calls(&answers.inbound)),
            Some(calls(&answers.outbound)),
        );
        let internal = answers.internal.as_deref().map(|b| {
            family
                .read_calls::<MergedCalls>(Query::InternalCalls, b)
                .map(|calls| merged.add(calls))
        });
        let internal = internal.map(Some);
        let given = [
            ("trunks", &answers.trunks),
            ("extensions", &answers.extensions),
            ("device", &answers.device),
        ];
        let own = given
            .into_iter()
            .filter_map(|(name, bytes)| {
                let kind = CollectorKind::named(name)?;
                let Run::One { query, read } = kind.spec().run else {
                    return None;
                };
                // What a scrape does with the answer: the family reads it, the collector too.
                Some((
                    kind,
                    Some(family.read(query, bytes.as_deref()?).and_then(read)),
                ))
            })
            .collect();
        let results = Results {
            merged,
            inbound,
            outbound,
            internal,
            own,
            done: None,
        };
        self.render(&results, Duration::ZERO, true)
    }
}
