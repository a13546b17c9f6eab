//! Small pieces every layer may use; none of them knows the PBX, the metrics or the server.

// The allocator's one knob: giving free memory back to the system.
pub mod alloc;
// Wall-clock time, injectable.
pub mod clock;
// Durations as Prometheus writes them.
pub mod duration;
// Errors rendered once, with their causes.
pub mod report;
// Secrets that never print.
pub mod secret;
// SIGINT or SIGTERM: the end of a run.
pub mod signal;
// YAML errors in one line, without the source's excerpt.
pub mod yaml;
