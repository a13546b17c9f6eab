//! The intake: where the PBXes' event reports come in, over HTTP ([`http`]: the PBX posts them to
//! the exporter's receiver) or TCP ([`tcp`]: the exporter dials the PBX's event port). Both hand
//! each report to its target ([`crate::collector::Target::receive_http_event`],
//! [`crate::collector::Target::receive_event`]), whose event gate checks it is the PBX's own and
//! whose event counts take it; the intake keeps no count of its own but its connections'.
//!
//! It reads the fleet ([`crate::exporter::App`]) and follows it ([`crate::exporter::Follower`]:
//! a TCP reader per target that wants one); the fleet never names it.

pub mod http;
pub mod tcp;
