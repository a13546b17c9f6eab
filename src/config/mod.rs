//! Flags (each also an environment variable `YEASTAR_EXPORTER_<FLAG>`) or a YAML file → one
//! validated [`Config`], through one pipeline:
//!
//! - `flags.rs` (the command line) and `file.rs` (the config file's shapes, over the flags' values
//!   as [`TargetDefaults`]) each fill one `Settings` per PBX (`settings.rs`): every value as
//!   given, with the name its error gives it (`--pbx.timeout`, `targets.office.timeout`);
//! - `validate.rs` checks them with one set of rules (`rules.rs`), the field named either way;
//! - `build.rs` is the one place a target's [`crate::pbx::ClientConfig`] and [`TargetConfig`] are
//!   made; `load.rs` runs the steps for each side.
//!
//! Secrets are read here, from files or the environment, straight into
//! [`crate::support::secret::Secret`]s; the password is never a flag value (it would show in
//! `ps`). A per-target setting (the API family, say) is one change per side — the flag and its
//! line in `ExporterFlags::target_defaults` (`flags.rs`); the file's field and its line in
//! `target_settings` (`file.rs`) — and, shared, its field in [`TargetDefaults`] and `Settings`
//! with its line in `Settings::inherit` (`settings.rs`), its rule in `validate.rs` and its line
//! in `build.rs`.

mod build;
mod endpoint;
mod error;
mod file;
mod flags;
mod load;
mod rules;
mod settings;
mod validate;

pub use build::{Config, TargetConfig};
pub use endpoint::EventsEndpoint;
pub use error::{ConfigError, yaml_error};
pub use flags::{
    Cli, CollectorFlags, Command, DEFAULT_PORT, ExporterFlags, LONG_VERSION, PASSWORD_ENV,
};
pub use load::{parse_file, parse_file_all};
pub use rules::{
    check_login_backoff, check_proxy_url, check_url, expand_path, read_secret_file,
    source_addresses,
};
pub use settings::TargetDefaults;
pub use validate::TcpEvents;

pub use crate::support::duration::parse_duration;

/// Turns `:PORT` into `0.0.0.0:PORT`; other addresses pass through.
pub fn listen_socket(address: &str) -> String {
    if address.starts_with(':') {
        format!("0.0.0.0{address}")
    } else {
        address.to_string()
    }
}
