//! The config file (`--config.file`): its YAML shapes (serde, strict: an unknown field is an
//! error), the checks of its structure alone, and what it gives the one pipeline — each auth
//! module's credentials and each target's settings, its own fields over the file's `defaults`
//! over the flags' [`TargetDefaults`], each value named by its field.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::error::{ConfigError, invalid, yaml_error};
use super::settings::{
    AuthChoice, AuthSettings, AuthWords, Collectors, EventsWord, Given, RawDuration, SecretPath,
    Settings, Sources, TargetDefaults,
};

/// The whole file.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileConfig {
    #[serde(default)]
    pub(crate) defaults: TargetFields,
    #[serde(default)]
    pub(crate) auth_modules: BTreeMap<String, AuthModule>,
    #[serde(default)]
    pub(crate) targets: BTreeMap<String, TargetFields>,
}

/// One of `auth_modules`: credentials targets name.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuthModule {
    pub(crate) username: Option<String>,
    pub(crate) password_file: Option<PathBuf>,
    pub(crate) password: Option<String>,
    pub(crate) token_file: Option<PathBuf>,
}

/// One of `targets`, or `defaults`: a target's settings (a new per-target setting is one field
/// here and one line in [`target_settings`]).
#[derive(Debug, Default, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TargetFields {
    pub(crate) url: Option<String>,
    pub(crate) api: Option<String>,
    pub(crate) api_path: Option<String>,
    pub(crate) auth: Option<String>,
    pub(crate) collectors: Option<Vec<String>>,
    pub(crate) timeout: Option<String>,
    pub(crate) max_concurrent_requests: Option<usize>,
    pub(crate) max_response_bytes: Option<usize>,
    pub(crate) login_backoff: Option<String>,
    pub(crate) ca_file: Option<PathBuf>,
    pub(crate) insecure_skip_verify: Option<bool>,
    pub(crate) proxy_url: Option<String>,
    pub(crate) events: Option<EventsField>,
    pub(crate) events_tcp_port: Option<u16>,
    pub(crate) events_source_addresses: Option<Vec<String>>,
}

/// `events:` — `true`/`false`, or the method: `http`, `tcp`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(untagged)]
pub(crate) enum EventsField {
    On(bool),
    Method(String),
}

/// The file's text, read: its shapes, or the YAML error (`source` names the file).
pub(crate) fn parse(text: &str, source: &str) -> Result<FileConfig, ConfigError> {
    serde_saphyr::from_str(text).map_err(|e| yaml_error(source, e))
}

/// What is wrong with the file as a whole, before any target.
pub(crate) fn structure(file: &FileConfig) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    if file.targets.is_empty() {
        errors.push(invalid("targets", "at least one target is required"));
    }
    if file.defaults.url.is_some() {
        errors.push(invalid(
            "defaults.url",
            "each target has its own url; it cannot be a default",
        ));
    }
    errors
}

/// Auth module `name`'s credentials as given.
pub(crate) fn auth_settings(name: &str, m: &AuthModule) -> AuthSettings {
    let field = |f: &str| format!("auth_modules.{name}.{f}");
    let path = |p: &Option<PathBuf>| p.clone().map(|path| SecretPath { path, expand: true });
    AuthSettings {
        username: Given::new(m.username.clone(), field("username")),
        password_file: Given::new(path(&m.password_file), field("password_file")),
        password: m.password.clone(),
        token_file: Given::new(path(&m.token_file), field("token_file")),
        words: AuthWords {
            whole: format!("auth_modules.{name}"),
            or_password: " (or password)".into(),
            or_token: " (or token_file for static-token mode)".into(),
            tcp_needs: "tcp needs an auth module with username and password (the TCP login carries them), not token_file".into(),
        },
    }
}

/// Target `name`'s settings: its fields, else the file's `defaults`, else `base` (the flags).
/// Errors name the target's field (`targets.NAME.timeout`) wherever the value came from, as they
/// always have; but a proxy is named by what set it (`defaults.proxy_url`, `--pbx.proxy-url`), and
/// so are event source addresses (the flags' are checked once, in `base`).
pub(crate) fn target_settings(
    name: &str,
    target: &TargetFields,
    defaults: &TargetFields,
    base: &TargetDefaults,
) -> Settings {
    let field = |f: &str| format!("targets.{name}.{f}");
    // A target's own setting, else the file's defaults.
    macro_rules! get {
        ($f:ident) => {
            target.$f.clone().or_else(|| defaults.$f.clone())
        };
    }
    let mut s = Settings::inherit(
        Given::new(name.to_string(), format!("targets.{name}")),
        AuthChoice::Module {
            name: Given::new(get!(auth), field("auth")),
            hint: " (name one of auth_modules, or set defaults.auth)".into(),
        },
        base,
        &|word, flag| {
            if word == "proxy_url" {
                flag.to_string()
            } else {
                field(word)
            }
        },
    );
    s.url.value = target.url.clone();
    if let Some(api) = get!(api) {
        s.api.value = api;
    }
    if let Some(api_path) = get!(api_path) {
        s.api_path = api_path;
    }
    if let Some(names) = get!(collectors) {
        s.collectors.value = Collectors::Named(names);
    }
    if let Some(text) = get!(timeout) {
        s.timeout.value = RawDuration::Text(text);
    }
    if let Some(text) = get!(login_backoff) {
        s.login_backoff.value = RawDuration::Text(text);
    }
    if let Some(n) = get!(max_concurrent_requests) {
        s.max_concurrent_requests.value = n;
    }
    if let Some(n) = get!(max_response_bytes) {
        s.max_response_bytes.value = n;
    }
    s.ca_file.value = get!(ca_file);
    if let Some(on) = get!(insecure_skip_verify) {
        s.insecure_skip_verify = on;
    }
    if let Some(proxy) = &target.proxy_url {
        s.proxy_url = Some(Given::new(proxy.clone(), field("proxy_url")));
    } else if let Some(proxy) = &defaults.proxy_url {
        s.proxy_url = Some(Given::new(proxy.clone(), "defaults.proxy_url"));
    }
    if let Some(events) = get!(events) {
        s.events.value.word = Some(match events {
            EventsField::On(on) => EventsWord::On(on),
            EventsField::Method(m) => EventsWord::Method(m),
        });
    }
    if let Some(port) = get!(events_tcp_port) {
        s.events_tcp_port = port;
    }
    if let Some(list) = &target.events_source_addresses {
        s.events_source_addresses =
            Sources::Listed(Given::new(list.clone(), field("events_source_addresses")));
    } else if let Some(list) = &defaults.events_source_addresses {
        s.events_source_addresses =
            Sources::Listed(Given::new(list.clone(), "defaults.events_source_addresses"));
    }
    s
}
