//! How a call's members are keyed, for the two kinds of state that track them across scrapes: the
//! status ages ([`super::calls::StatusAges`]) and the event legs ([`super::events::EventLegs`]).
//! Its own module so that neither of them depends on the other for it.

use crate::pbx::model::ChannelId;

/// Most members whose status age one target tracks: far above what an S-Series unit carries (tens
/// of calls), low enough that a lying PBX cannot grow the exporter without bound.
pub const MAX_TRACKED_MEMBERS: usize = 20_000;

/// A call's part of a member's key: the member's key is this XOR its channel's id.
pub fn call_key(callid: &str) -> u64 {
    ChannelId::of(callid).0.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}
