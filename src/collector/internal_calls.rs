//! Internal calls: `extension/query_call` `{"number":"all"}` adds extension-to-extension calls (and
//! the extension members of every call) to the call path's merged set. Fetched and written with
//! `calls` (see `Target::collect`), since its calls are merged into the same set.

use super::registry::{Run, Spec};
use crate::pbx::model::Query;

/// The collector.
pub static SPEC: Spec = Spec {
    name: "internal_calls",
    on_by_default: true,
    queries: &[Query::InternalCalls],
    note: "",
    run: Run::CallPath,
};
