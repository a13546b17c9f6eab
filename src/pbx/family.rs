//! The API families a PBX may speak, as one enum the client dispatches on by `match` (a trait
//! object would need async in `dyn`; a type parameter would spread through every target). Each
//! family is one folder holding all of its wire knowledge — paths, bodies, the answer envelope,
//! what its error codes mean, how its grant is obtained, renewed and revoked, and how the domain
//! queries of [`super::Session`] become its requests. What is family-neutral (the login ledger,
//! TLS, the request limit, the observer, the clock, secrets) stays in [`super`].

use std::time::Duration;

use super::model::reports::{ParseError, Report};
use super::model::{CallSink, Data, Query};
use super::{PbxError, p_series, s_series};

/// The S-Series family (API v2.0.0): see [`s_series`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SSeries;

/// The P-Series family (OpenAPI v1.0: the Appliance, Software and Cloud Editions): see
/// [`p_series`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PSeries;

/// The API family of one PBX.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiFamily {
    /// The S-Series (S20, S50, S100, S300, S412).
    S(SSeries),
    /// The P-Series (P550, P560, P570; Software Edition; Cloud Edition).
    P(PSeries),
}

impl Default for ApiFamily {
    fn default() -> Self {
        ApiFamily::S(SSeries)
    }
}

impl ApiFamily {
    /// Every family, for the lists built from them (the request-count series' endpoints).
    pub const ALL: [ApiFamily; 2] = [ApiFamily::S(SSeries), ApiFamily::P(PSeries)];

    /// Its name in the config and the docs.
    pub fn name(self) -> &'static str {
        match self {
            ApiFamily::S(_) => "s_series",
            ApiFamily::P(_) => "p_series",
        }
    }

    /// Its word for `--pbx.api` and a target's `api:` (`s-series`, `p-series`).
    pub fn flag_word(self) -> &'static str {
        match self {
            ApiFamily::S(_) => "s-series",
            ApiFamily::P(_) => "p-series",
        }
    }

    /// The family `word` names (`--pbx.api`, `api:`), case-insensitively.
    pub fn named(word: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|f| f.flag_word().eq_ignore_ascii_case(word.trim()))
    }

    /// Its default API path (`--pbx.api-path`).
    pub fn api_path(self) -> &'static str {
        match self {
            ApiFamily::S(_) => s_series::API_PATH,
            ApiFamily::P(_) => p_series::API_PATH,
        }
    }

    /// Every endpoint it may call.
    pub fn endpoints(self) -> &'static [&'static str] {
        match self {
            ApiFamily::S(_) => s_series::ENDPOINTS,
            ApiFamily::P(_) => p_series::ENDPOINTS,
        }
    }

    /// The endpoints `query` calls.
    pub fn query_endpoints(self, query: Query) -> &'static [&'static str] {
        match self {
            ApiFamily::S(_) => s_series::queries::endpoints(query),
            ApiFamily::P(_) => p_series::queries::endpoints(query),
        }
    }

    /// What `query` asks, in the family's words (the flags' help, docs/metrics.md).
    pub fn query_help(self, query: Query) -> &'static str {
        match self {
            ApiFamily::S(_) => s_series::queries::help(query),
            ApiFamily::P(_) => p_series::queries::help(query),
        }
    }

    /// The answer of the one-request query `query`, read from the bytes the PBX sent: what a
    /// scrape does with them, for benchmarks and property tests.
    pub fn read(self, query: Query, bytes: &[u8]) -> Result<Data, PbxError> {
        match self {
            ApiFamily::S(_) => s_series::queries::read(query, bytes),
            ApiFamily::P(_) => p_series::queries::read(query, bytes),
        }
    }

    /// The answer to any request of a call list ([`Query::ActiveCalls`],
    /// [`Query::InternalCalls`]) read from its bytes into `S`, as a scrape reads it.
    pub fn read_calls<S: CallSink>(self, query: Query, bytes: &[u8]) -> Result<S, PbxError> {
        match (self, query) {
            (ApiFamily::S(_), Query::InternalCalls) => {
                s_series::queries::read_internal_calls(bytes)
            }
            (ApiFamily::S(_), _) => s_series::queries::read_active_calls(bytes),
            (ApiFamily::P(_), _) => p_series::queries::read_calls(bytes),
        }
    }

    /// How many requests the call list `query` takes ([`Query::ActiveCalls`],
    /// [`Query::InternalCalls`]; 0 for any other query): [`super::Session::calls`] asks each.
    pub fn call_parts(self, query: Query) -> usize {
        match self {
            ApiFamily::S(_) => s_series::queries::call_parts(query),
            ApiFamily::P(_) => p_series::queries::call_parts(query),
        }
    }

    /// Whether the call list `query` lists extension-to-extension calls: the internal direction
    /// is shown once such an answer came.
    pub fn lists_internal(self, query: Query) -> bool {
        match self {
            ApiFamily::S(_) => s_series::queries::lists_internal(query),
            ApiFamily::P(_) => p_series::queries::lists_internal(query),
        }
    }

    /// The requests (endpoint and body; for a family that GETs, the query's parameters as a JSON
    /// object) `query` sends, in order (for a list: its first page or its first request).
    pub fn requests(self, query: Query) -> Vec<(&'static str, serde_json::Value)> {
        match self {
            ApiFamily::S(_) => s_series::queries::requests(query),
            ApiFamily::P(_) => p_series::queries::requests(query)
                .into_iter()
                .map(|(endpoint, params)| {
                    let params: serde_json::Map<String, serde_json::Value> = params
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), serde_json::Value::String(v)))
                        .collect();
                    (endpoint, serde_json::Value::Object(params))
                })
                .collect(),
        }
    }

    /// One event report its PBX pushed, read into the family-neutral [`Report`].
    pub fn read_report(self, body: &[u8]) -> Result<Report, ParseError> {
        match self {
            ApiFamily::S(_) => s_series::events::parse(body),
            // Its reports come over a WebSocket (not read yet): none reaches a receiver.
            ApiFamily::P(_) => Err(ParseError::NoEvent),
        }
    }

    /// How old a grant may get before it is renewed on its next use.
    pub fn renew_after(self) -> Duration {
        match self {
            ApiFamily::S(_) => s_series::HEARTBEAT_AFTER,
            ApiFamily::P(_) => p_series::renew_after(p_series::ACCESS_LIFETIME),
        }
    }

    /// The shortest login back-off that keeps failed logins below the family's lockout: the
    /// config refuses a shorter one.
    pub fn min_login_backoff(self) -> Duration {
        match self {
            ApiFamily::S(_) => s_series::MIN_LOGIN_BACKOFF,
            ApiFamily::P(_) => p_series::MIN_LOGIN_BACKOFF,
        }
    }

    /// The endpoints of every family, each once, in the families' order: what the exporter's own
    /// request counts are kept for.
    pub fn all_endpoints() -> Vec<&'static str> {
        let mut out: Vec<&'static str> = Vec::new();
        for family in Self::ALL {
            for e in family.endpoints() {
                if !out.contains(e) {
                    out.push(e);
                }
            }
        }
        out
    }
}
