//! yeastar-exporter: a Prometheus exporter for Yeastar S-Series VoIP PBXes.
//!
//! - [`config`] turns flags, environment variables and the config file into one validated
//!   [`config::Config`] (one validation for flags and file alike); secrets live in
//!   [`support::secret::Secret`], which never prints.
//! - [`pbx`] is the PBX's HTTP API client: transport, login and token lifecycle, the login ledger
//!   ([`pbx::ledger`]: at most 2 logins without a token per PBX in any 10 minutes, kept across
//!   restarts), login back-off, the per-PBX request limit, TLS with pinned certificates
//!   ([`pbx::tls`]), serde types. It knows nothing of metrics.
//! - [`collector`] turns PBX answers into the metric families of the contract, fresh for every scrape,
//!   and keeps the little state that must outlive a scrape (member-status ages, missing endpoints).
//! - [`metrics`] holds the exporter's own metrics and counts every PBX request and login.
//! - [`exporter`] is the fleet: the running set of targets and settings (swapped as one value on
//!   reload), and [`exporter::sd`], the targets for Prometheus' HTTP service discovery. It knows
//!   nothing of HTTP or of the event receivers: what must follow its targets registers as an
//!   [`exporter::Follower`].
//! - [`server`] serves the fleet over HTTP ([`server::Server`]: the fleet, the web config in
//!   force, the open connections): [`server::routes`], with [`server::conn`] keeping slow and idle
//!   clients from holding the server and [`server::guard`] applying the [`server::webconfig`] file
//!   (TLS, basic auth, headers, rate limit).
//! - [`intake`] receives the PBXes' event reports, over HTTP ([`intake::http`]) and TCP
//!   ([`intake::tcp`]); it follows the fleet's targets, which never name it.
//! - [`logging`] writes logfmt lines that name the PBX, and captures a probe's lines for `debug=true`.
//! - [`sim`] is a simulated PBX for demo mode, tests and benchmarks; [`support::clock`] makes time
//!   injectable; [`support::alloc`] gives memory back after huge answers.
//! - [`startup`] is what `main.rs` runs: runtime, sockets, `--config.check`, the exporter.
//!
//! Dependencies point one way: `startup` wires `server` and `intake`, each over
//! `exporter → collector → pbx`, and `intake` uses `server::conn`'s bounds for its own
//! connections; the fleet names neither, and everything may read `config`.

// Parses flags, environment variables and the configuration file into one validated `Config`.
pub mod config;
// The PBX's HTTP API client; knows nothing of metrics.
pub mod pbx;
// PBX answers → the metric families of the contract.
pub mod collector;
// The exporter's own metrics.
pub mod metrics;
// The running set of targets and settings, swapped whole on reload.
pub mod exporter;
// The HTTP server: routes, connections, the access guard, the web configuration file.
pub mod server;
// The PBXes' event reports coming in: the HTTP receiver, the TCP readers.
pub mod intake;
// Logfmt lines that name the PBX; a probe's captured lines.
pub mod logging;
// The simulated PBX: demo mode, tests, benchmarks.
pub mod sim;
// Small pieces every layer uses: time, durations, error chains, secrets, YAML errors, the allocator.
pub mod support;
// Start-up: runtime, logging, panic hook, sockets, `--config.check`, the exporter's run.
pub mod startup;
