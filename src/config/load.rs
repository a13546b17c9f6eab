//! The one pipeline, run for each side: the flags' single PBX or the config file's targets →
//! settings (`flags.rs`, `file.rs`) → one validation (`validate.rs`) → one build (`build.rs`),
//! around the server settings of the flags.

use super::build::{self, Config, TargetConfig};
use super::endpoint::EventsEndpoint;
use super::error::{ConfigError, invalid, unreadable};
use super::file;
use super::flags::ExporterFlags;
use super::settings::{Settings, TargetDefaults};
use super::validate::{self, Modules};

impl ExporterFlags {
    /// The single-PBX configuration these flags describe; `password_env` is the value of
    /// `YEASTAR_EXPORTER_PBX_PASSWORD`, if set.
    pub fn resolve(&self, password_env: Option<String>) -> Result<Config, ConfigError> {
        if !self.telemetry_path.starts_with('/') || self.telemetry_path.len() < 2 {
            return Err(invalid(
                "--web.telemetry-path",
                "must start with / and not be / itself",
            ));
        }
        let base = self.target_defaults()?;
        let settings = self.settings(&base, password_env);
        let targets = targets([settings], &Modules::new(), &base.events_endpoint)
            // Never empty: the single PBX has its own credentials, so no error of its is left to
            // an auth module's (`validate::target` pushes one whenever it gives no target).
            .map_err(|mut errors| errors.swap_remove(0))?;
        self.config(targets, true)
    }

    /// The server settings of these flags around `targets`.
    fn config(&self, targets: Vec<TargetConfig>, single: bool) -> Result<Config, ConfigError> {
        if self.header_read_timeout.is_zero() {
            return Err(invalid(
                "--web.header-read-timeout",
                "must be greater than 0",
            ));
        }
        if self.max_connections == 0 {
            return Err(invalid("--web.max-connections", "must be at least 1"));
        }
        if self.write_timeout.is_zero() {
            return Err(invalid("--web.write-timeout", "must be greater than 0"));
        }
        if self.events_max_connections_per_source == 0 {
            return Err(invalid(
                "--events.max-connections-per-source",
                "must be at least 1",
            ));
        }
        Ok(Config {
            listen_address: self.listen_address.clone(),
            systemd_socket: self.systemd_socket,
            telemetry_path: self.telemetry_path.clone(),
            timeout_offset: self.timeout_offset,
            web_config_file: self.web_config_file.clone(),
            header_read_timeout: self.header_read_timeout,
            write_timeout: self.write_timeout,
            max_connections: self.max_connections,
            state_dir: self.pbx_state_dir.clone(),
            events_listen_address: self.events_listen_address.clone(),
            events_max_connections_per_source: self.events_max_connections_per_source,
            targets,
            single,
        })
    }

    /// The configuration these flags describe: the config file's when one is given, else the
    /// single-PBX flags'.
    pub fn load(&self, password_env: Option<String>) -> Result<Config, ConfigError> {
        self.load_all(password_env)
            .map_err(|mut errors| errors.swap_remove(0))
    }

    /// [`ExporterFlags::load`], with every error found (at least one) instead of the first: the
    /// config file's auth modules and target fields each on their own (`--config.check`).
    pub fn load_all(&self, password_env: Option<String>) -> Result<Config, Vec<ConfigError>> {
        let Some(path) = &self.config_file else {
            return self.resolve(password_env).map_err(|e| vec![e]);
        };
        if self.pbx_url.is_some() {
            return Err(vec![invalid(
                "--pbx.url",
                "cannot be combined with --config.file (name the PBXes in the file)",
            )]);
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| vec![unreadable("--config.file", path, e)])?;
        let base = self.target_defaults().map_err(|e| vec![e])?;
        let targets = parse_file_all(&text, &path.display().to_string(), &base);
        let server = self.config(Vec::new(), false);
        match (targets, server) {
            (Ok(targets), Ok(config)) => Ok(Config { targets, ..config }),
            (Err(errors), Ok(_)) => Err(errors),
            (Ok(_), Err(e)) => Err(vec![e]),
            (Err(mut errors), Err(e)) => {
                errors.push(e);
                Err(errors)
            }
        }
    }
}

/// Parses a multi-target config file's text: its targets, or its first error.
pub fn parse_file(
    text: &str,
    source: &str,
    base: &TargetDefaults,
) -> Result<Vec<TargetConfig>, ConfigError> {
    parse_file_all(text, source, base).map_err(|mut errors| errors.swap_remove(0))
}

/// Parses a multi-target config file's text: its targets, or every error it finds (at least one),
/// in the file's order — each auth module and each target field on its own, so one look at
/// `--config.check` lists everything to fix. A field whose error follows from another's (a target
/// naming an auth module that is itself wrong) is not reported twice.
pub fn parse_file_all(
    text: &str,
    source: &str,
    base: &TargetDefaults,
) -> Result<Vec<TargetConfig>, Vec<ConfigError>> {
    let file = file::parse(text, source).map_err(|e| vec![e])?;
    let mut errors = file::structure(&file);
    let mut modules = Modules::new();
    for (name, module) in &file.auth_modules {
        let checked = validate::auth(&file::auth_settings(name, module))
            .map_err(|e| errors.push(e))
            .ok();
        modules.insert(name.clone(), checked);
    }
    let settings = file
        .targets
        .iter()
        .map(|(name, t)| file::target_settings(name, t, &file.defaults, base));
    match targets(settings, &modules, &base.events_endpoint) {
        Ok(targets) if errors.is_empty() => Ok(targets),
        Ok(_) => Err(errors),
        Err(more) => {
            errors.extend(more);
            Err(errors)
        }
    }
}

/// Each target's settings validated and built: every target, or every error (at least one).
fn targets(
    settings: impl IntoIterator<Item = Settings>,
    modules: &Modules,
    endpoint: &EventsEndpoint,
) -> Result<Vec<TargetConfig>, Vec<ConfigError>> {
    let settings = settings.into_iter();
    let mut out = Vec::with_capacity(settings.size_hint().0);
    let mut urls = Vec::with_capacity(settings.size_hint().0);
    let mut errors = Vec::new();
    let mut skipped = false;
    for s in settings {
        let Some(valid) = validate::target(&s, modules, &mut urls, &mut errors) else {
            skipped = true;
            continue;
        };
        match build::target(valid, endpoint) {
            Ok(target) => out.push(target),
            Err(e) => errors.push(e),
        }
    }
    match (errors.is_empty(), skipped) {
        (true, false) => Ok(out),
        _ => Err(errors),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::collector::CollectorKind;
    use crate::config::Cli;

    #[test]
    fn flags_resolve_and_name_the_missing_flag() {
        let cli = Cli::try_parse_from([
            "x",
            "--pbx.url",
            "http://127.0.0.1:8088",
            "--pbx.username",
            "api",
            "--no-collector.trunks",
            "--collector.queues",
        ])
        .unwrap();
        let cfg = cli.exporter.resolve(Some("pw".into())).unwrap();
        let t = &cfg.targets[0];
        assert!(
            !t.collectors
                .contains(CollectorKind::named("trunks").unwrap())
        );
        assert!(
            t.collectors
                .contains(CollectorKind::named("queues").unwrap())
        );
        assert_eq!(
            format!("{:?}", t.client.auth),
            "Credentials { username: \"api\", password: <secret> }"
        );
        let err = cli.exporter.resolve(None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--pbx.password-file: required (or YEASTAR_EXPORTER_PBX_PASSWORD)"
        );
    }
}
