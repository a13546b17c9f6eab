//! The event receivers: where the PBXes' event reports come in and are handed to their target
//! (`Target::receive_http_event`, `Target::receive_event`).

// The HTTP event receiver: PBXes with events on POST their reports to `/events/<target>`.
pub mod http;
// TCP report mode: the exporter dials the PBX's event port and reads the stream.
pub mod tcp;
