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
//! - [`exporter`] holds the running set of targets and settings (swapped as one value on reload);
//!   [`http`] serves them, with [`conn`] keeping slow and idle clients from holding the server and
//!   [`guard`] applying the [`webconfig`] file (TLS, basic auth, headers, rate limit); [`sd`]
//!   lists the targets for Prometheus' HTTP service discovery.
//! - [`events`] and [`tcp_events`] receive the PBXes' event reports, over HTTP and TCP.
//! - [`logging`] writes logfmt lines that name the PBX, and captures a probe's lines for `debug=true`.
//! - [`sim`] is a simulated PBX for demo mode, tests and benchmarks; [`support::clock`] makes time
//!   injectable; [`support::alloc`] gives memory back after huge answers.
//! - [`startup`] is what `main.rs` runs: runtime, sockets, `--config.check`, the exporter.
//!
//! Dependencies point one way: `http → exporter → collector → pbx`; everything may read `config`.

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
// The exporter's HTTP routes and server. (`App` holds the connection registry, the guard, the
// web config and `/sd`'s document, and spawns the TCP event readers, while the routes and the HTTP
// event receiver take `App`: so these stay beside `exporter`, not in a folder with the routes.)
pub mod http;
// Bounds what a client can hold: write timeout, the connection cap, eviction.
pub mod conn;
// Applies the web config to each request: rate limit, basic auth, headers.
pub mod guard;
// The exporter-toolkit web configuration file: TLS, users, headers.
pub mod webconfig;
// `/sd`: the targets in Prometheus' HTTP service-discovery format.
pub mod sd;
// The HTTP event receiver: the PBXes' reports.
pub mod events;
// The TCP event reader: one per target with TCP events.
pub mod tcp_events;
// Logfmt lines that name the PBX; a probe's captured lines.
pub mod logging;
// The simulated PBX: demo mode, tests, benchmarks.
pub mod sim;
// Small pieces every layer uses: time, durations, error chains, secrets, YAML errors, the allocator.
pub mod support;
// Start-up: runtime, logging, panic hook, sockets, `--config.check`, the exporter's run.
pub mod startup;
