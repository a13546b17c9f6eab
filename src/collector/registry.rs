//! The collectors, in one table: each is one file holding a [`Spec`] — its name, whether it is on by
//! default, its flag help, the endpoints it calls, how it fetches through the scrape's PBX session
//! and how it writes its families. The `--collector.*` flags, the per-target `collectors:`
//! validation, the endpoints the exporter's own metrics know and docs/metrics.md's collector table (a
//! test checks it) all come from [`COLLECTORS`]. `calls` and `internal_calls` are the call path:
//! they decide `yeastar_up` and merge into one set of calls, so `Target::collect` fetches them
//! itself; every other collector is [`Run::Own`].

use std::any::Any;

use futures_util::future::BoxFuture;

use super::COLLECTORS;
use super::families::Families;
use crate::pbx::{PbxError, Session};

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

/// A single-answer collector's reading of its answer's bytes (benchmarks, property tests).
pub type Parse = fn(&[u8]) -> Result<Box<dyn Collected>, PbxError>;

/// How a collector runs.
pub enum Run {
    /// Part of the call path, fetched and written by `Target::collect` itself.
    CallPath,
    /// Fetches on its own and writes its own families.
    Own {
        /// Its requests.
        fetch: Fetch,
        /// Its one answer's reading, when it makes one request.
        parse: Option<Parse>,
    },
}

/// One collector.
pub struct Spec {
    /// The `collector` label value, the flag's name (`--collector.NAME`), the config file's word.
    pub name: &'static str,
    /// On unless switched off.
    pub on_by_default: bool,
    /// What it asks the PBX, for the flag's help and docs/metrics.md.
    pub help: &'static str,
    /// The endpoints it calls.
    pub endpoints: &'static [&'static str],
    /// How it runs.
    pub run: Run,
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

/// Every endpoint the exporter may call: the session's own and every collector's.
pub fn endpoints() -> Vec<&'static str> {
    let mut out = vec!["login", "logout", "heartbeat"];
    for spec in COLLECTORS {
        for e in spec.endpoints {
            if !out.contains(e) {
                out.push(e);
            }
        }
    }
    out
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
