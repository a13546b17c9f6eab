//! The collectors, in one table: each is one file holding a [`Spec`] — its name, whether it is on by
//! default, the domain queries it asks (each API family says which endpoints they call, for the
//! flag help), how it fetches through the scrape's PBX session and how it writes its families. The `--collector.*` flags, the per-target `collectors:`
//! validation, the endpoints the exporter's own metrics know and docs/metrics.md's collector table (a
//! test checks it) all come from [`COLLECTORS`]. Collectors differ only by their [`Spec`]: the
//! call-path ones ([`Run::Calls`]: `calls`, `internal_calls`) feed one set of calls per scrape,
//! the one [`Spec::required`] (`calls`) decides `yeastar_up`, and the others fetch and write
//! their own ([`Run::One`], [`Run::Own`]). Where a collector sits in the table changes nothing
//! but its label order.

use futures_util::future::BoxFuture;

use super::COLLECTORS;
use super::families::Families;
use super::listed::TrunkState;
use crate::pbx::model::{Data, Query};
use crate::pbx::{ApiFamily, PbxError, Session};

/// What one collector fetched in one scrape, ready to be written.
pub trait Collected: Send + Sync + 'static {
    /// Writes its families for `target`.
    fn write(&self, m: &Families, target: &str);
    /// The trunks it listed, if it lists them: the call series write a 0 for every listed trunk
    /// that carries no call.
    fn listed_trunks(&self) -> Option<&[TrunkState]> {
        None
    }
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
    /// The call path: each of its queries' answers is a call list (one or more requests, as the
    /// family asks), merged as it arrives into the scrape's one set of calls, which the call
    /// series are written from ([`super::calls`]) once the required collector succeeded.
    Calls,
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
    /// Always on, and its success is `yeastar_up` (exactly one collector: `calls`).
    pub required: bool,
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

/// The place in [`COLLECTORS`] of the collector `name`, or of the required one (`None`), found
/// when the constants below are compiled (a missing one fails the build).
const fn place(name: Option<&str>) -> CollectorKind {
    const fn same(a: &str, b: &str) -> bool {
        let (a, b) = (a.as_bytes(), b.as_bytes());
        if a.len() != b.len() {
            return false;
        }
        let mut i = 0;
        while i < a.len() {
            if a[i] != b[i] {
                return false;
            }
            i += 1;
        }
        true
    }
    let mut i = 0;
    while i < COLLECTORS.len() {
        let spec = COLLECTORS[i];
        let found = match name {
            Some(name) => same(spec.name, name),
            None => spec.required,
        };
        if found {
            return CollectorKind(i as u8);
        }
        i += 1;
    }
    panic!("no such collector in COLLECTORS")
}

impl CollectorKind {
    /// The required collector (`calls`): always on; `yeastar_up` is its success.
    pub const CALLS: CollectorKind = place(None);
    /// `internal_calls`: its calls join those of `calls`.
    pub const INTERNAL_CALLS: CollectorKind = place(Some("internal_calls"));

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

    /// Always on; its success is `yeastar_up`.
    pub fn required(self) -> bool {
        self.spec().required
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
        endpoint: crate::pbx::Endpoint::unasked(collector),
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
    fn one_required_collector_and_the_call_path_by_spec() {
        assert_eq!(CollectorKind::CALLS.as_str(), "calls");
        assert_eq!(CollectorKind::INTERNAL_CALLS.as_str(), "internal_calls");
        let required: Vec<&str> = CollectorKind::all()
            .filter(|k| k.required())
            .map(CollectorKind::as_str)
            .collect();
        assert_eq!(required, ["calls"]);
        let call_path: Vec<&str> = CollectorKind::all()
            .filter(|k| matches!(k.spec().run, Run::Calls))
            .map(CollectorKind::as_str)
            .collect();
        assert_eq!(call_path, ["calls", "internal_calls"]);
        for k in CollectorKind::all() {
            // A collector's place is found by its spec, never assumed.
            assert_eq!(CollectorKind::named(k.as_str()), Some(k));
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
                "queue/query_status",
                "get_token",
                "refresh_token",
                "del_token",
                "system/information"
            ]
        );
    }
}
