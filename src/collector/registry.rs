//! The collectors, in one table: each is one file holding a [`Spec`] — its name, whether it is on by
//! default, the domain queries it asks (each API family says which endpoints they call, for the
//! flag help), how it fetches through the scrape's PBX session and how it writes its families. The `--collector.*` flags, the per-target `collectors:`
//! validation, the endpoints the exporter's own metrics know and docs/metrics.md's collector table (a
//! test checks it) all come from [`COLLECTORS`]. `calls` and `internal_calls` are the call path:
//! they decide `yeastar_up` and merge into one set of calls, so `Target::collect` fetches them
//! itself; every other collector is [`Run::Own`].

use std::any::Any;

use futures_util::future::BoxFuture;

use super::COLLECTORS;
use super::families::Families;
use crate::pbx::model::{Data, Query};
use crate::pbx::{ApiFamily, PbxError, Session};

/// What one collector fetched in one scrape, ready to be written.
pub trait Collected: Send + Sync + 'static {
    /// Writes its families for `target`.
    fn write(&self, m: &Families, target: &str);
    /// Itself, for the one collector whose result another reads (`calls` reads the trunk list).
    fn as_any(&self) -> &dyn Any;
}

/// A collector's requests, through the scrape's session.
pub type Fetch = for<'a> fn(&'a Session<'a>) -> BoxFuture<'a, Result<Box<dyn Collected>, PbxError>>;

/// What a collector's run came to.
pub type Outcome = Result<Box<dyn Collected>, PbxError>;

/// A one-request collector's reading of its query's answer: the same function whether the
/// answer came over the network (a scrape) or from bytes (benchmarks, property tests).
pub type Read = fn(Data) -> Result<Box<dyn Collected>, PbxError>;

/// How a collector runs.
pub enum Run {
    /// Part of the call path, fetched and written by `Target::collect` itself.
    CallPath,
    /// One request: the family's answer to `query`, read by `read`.
    One {
        /// Its query ([`Query::Trunks`], [`Query::Extensions`], [`Query::Device`]).
        query: Query,
        /// Its reading of the answer.
        read: Read,
    },
    /// Fetches on its own (several requests) and writes its own families.
    Own {
        /// Its requests.
        fetch: Fetch,
    },
}

/// One collector.
pub struct Spec {
    /// The `collector` label value, the flag's name (`--collector.NAME`), the config file's word.
    pub name: &'static str,
    /// On unless switched off.
    pub on_by_default: bool,
    /// What it asks the PBX.
    pub queries: &'static [Query],
    /// Words for the flag's help after what it asks (`" (always on)"`), or `""`.
    pub note: &'static str,
    /// How it runs.
    pub run: Run,
}

impl Spec {
    /// What it asks a PBX of `family`, for the flag's help and docs/metrics.md.
    pub fn help(&self, family: ApiFamily) -> String {
        let words: Vec<&str> = self.queries.iter().map(|q| family.query_help(*q)).collect();
        format!("{}{}", words.join(", "), self.note)
    }

    /// The endpoints it calls on a PBX of `family`.
    pub fn endpoints(&self, family: ApiFamily) -> Vec<&'static str> {
        self.queries
            .iter()
            .flat_map(|q| family.query_endpoints(*q).iter().copied())
            .collect()
    }
}

/// A collector, by its place in [`COLLECTORS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CollectorKind(u8);

impl CollectorKind {
    /// `calls`: always on; `yeastar_up` is about it.
    pub const CALLS: CollectorKind = CollectorKind(0);
    /// `internal_calls`: merged into the calls of `calls`.
    pub const INTERNAL_CALLS: CollectorKind = CollectorKind(1);

    /// Its bit in a [`super::CollectorSet`].
    pub(crate) fn bit(self) -> u64 {
        1 << self.0
    }

    /// Every collector, in label order.
    pub fn all() -> impl Iterator<Item = CollectorKind> {
        (0..COLLECTORS.len()).map(|i| CollectorKind(i as u8))
    }

    /// The collector called `name`.
    pub fn named(name: &str) -> Option<Self> {
        Self::all().find(|k| k.as_str() == name)
    }

    /// Its [`Spec`].
    pub fn spec(self) -> &'static Spec {
        COLLECTORS[usize::from(self.0)]
    }

    /// The `collector` label value and flag name.
    pub fn as_str(self) -> &'static str {
        self.spec().name
    }

    /// On unless switched off.
    pub fn on_by_default(self) -> bool {
        self.spec().on_by_default
    }
}

impl std::fmt::Display for CollectorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of a family that answered a collector's query with another query's data: a bug.
pub fn unexpected(collector: &str, answer: &Data) -> PbxError {
    let kind = match answer {
        Data::Trunks(_) => "trunks",
        Data::Extensions(_) => "extensions",
        Data::Device(_) => "device",
    };
    PbxError::Decode {
        endpoint: collector.to_string(),
        reason: format!(
            "the {kind} answer reached the {collector} collector (a bug: please report it)"
        ),
    }
}

/// Every endpoint the exporter may call, in every family: the sessions' own and every query's.
pub fn endpoints() -> Vec<&'static str> {
    ApiFamily::all_endpoints()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_call_path_comes_first() {
        assert_eq!(CollectorKind::CALLS.as_str(), "calls");
        assert_eq!(CollectorKind::INTERNAL_CALLS.as_str(), "internal_calls");
        for k in CollectorKind::all() {
            let call_path = matches!(k.spec().run, Run::CallPath);
            assert_eq!(call_path, k.0 < 2, "{k}");
            // Every endpoint a collector calls is one its family lists.
            let family = ApiFamily::default();
            for e in k.spec().endpoints(family) {
                assert!(family.endpoints().contains(&e), "{k}: {e}");
            }
        }
        assert_eq!(
            endpoints(),
            [
                "login",
                "logout",
                "heartbeat",
                "call/query",
                "extension/query_call",
                "trunk/list",
                "extension/list",
                "deviceinfo/query",
                "queue/query",
                "queue/query_status"
            ]
        );
    }
}
