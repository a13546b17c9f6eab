//! Internal calls: every extension's calls (S-Series: `extension/query_call` `{"number":"all"}`)
//! join the call path's one set of calls ([`Run::Calls`]): extension-to-extension calls, and the
//! extension members of every call. It writes nothing of its own: the call series show what it
//! added, and the internal direction only when its answer came.

use super::registry::{Run, Spec};
use crate::pbx::model::Query;

/// The collector.
pub static SPEC: Spec = Spec {
    name: "internal_calls",
    on_by_default: true,
    required: false,
    queries: &[Query::InternalCalls],
    note: "",
    run: Run::Calls,
};
