//! One PBX's settings as given, before any check: what the flags say ([`TargetDefaults`] plus the
//! single PBX's own flags) or what the config file says over them. Every value keeps the name its
//! error gives it — the flag (`--pbx.timeout`) or the file's field (`targets.office.timeout`) —
//! so `validate.rs` checks both sides with one set of rules. Nothing here reads a file or refuses
//! a value.

use std::path::PathBuf;
use std::time::Duration;

use super::endpoint::EventsEndpoint;
use crate::collector::CollectorSet;

/// A value as given, and the name of the flag or field that gave it.
#[derive(Debug, Clone)]
pub(crate) struct Given<T> {
    /// The value, unchecked.
    pub value: T,
    /// The flag or field, as its error names it.
    pub field: String,
}

impl<T> Given<T> {
    pub(crate) fn new(value: T, field: impl Into<String>) -> Self {
        Self {
            value,
            field: field.into(),
        }
    }
}

/// A duration: parsed already (a flag: clap refuses what does not parse), or the file's text.
#[derive(Debug, Clone)]
pub(crate) enum RawDuration {
    Parsed(Duration),
    Text(String),
}

/// The collectors: the `--collector.*` flags' set, or the file's list of names.
#[derive(Debug, Clone)]
pub(crate) enum Collectors {
    Set(CollectorSet),
    Named(Vec<String>),
}

/// The file's `events:` word: `true`/`false`, or the method (`http`, `tcp`).
#[derive(Debug, Clone)]
pub(crate) enum EventsWord {
    On(bool),
    Method(String),
}

/// Whether and how a PBX reports its events: `--pbx.events` and `--pbx.events-method`, which the
/// file's `events:` word (if any) overrides.
#[derive(Debug, Clone)]
pub(crate) struct RawEvents {
    /// The file's word, if it has one.
    pub word: Option<EventsWord>,
    /// `--pbx.events`.
    pub on: bool,
    /// `--pbx.events-method tcp`.
    pub tcp: bool,
}

/// A secret file's path as given; the config file's paths expand `${NAME}` (`expand_path`), the
/// flags' are taken as written.
#[derive(Debug, Clone)]
pub(crate) struct SecretPath {
    pub path: PathBuf,
    pub expand: bool,
}

/// How one side names its credentials in errors.
#[derive(Debug, Clone)]
pub(crate) struct AuthWords {
    /// Names a setting that excludes another (`auth_modules.main`).
    pub whole: String,
    /// After a missing password: ` (or password)`.
    pub or_password: String,
    /// After a missing username: ` (or token_file for static-token mode)`.
    pub or_token: String,
    /// Why TCP events need these credentials and not a static token.
    pub tcp_needs: String,
}

/// Credentials as given: a username and password, or a static token. The flags' precedence (a
/// token file over a username, a password file over the environment) is applied when they fill
/// this; the file's settings exclude each other, so both may be set here and are refused.
#[derive(Debug, Clone)]
pub(crate) struct AuthSettings {
    pub username: Given<Option<String>>,
    pub password_file: Given<Option<SecretPath>>,
    /// The password itself: the file's `password:`, or `YEASTAR_EXPORTER_PBX_PASSWORD`.
    pub password: Option<String>,
    pub token_file: Given<Option<SecretPath>>,
    pub words: AuthWords,
}

/// Where a target's credentials come from.
#[derive(Debug, Clone)]
pub(crate) enum AuthChoice {
    /// Its own (the single PBX's flags).
    Own(Box<AuthSettings>),
    /// A named auth module of the file (checked once, on its own): the target's `auth:`, and
    /// how to set it when it is missing.
    Module {
        name: Given<Option<String>>,
        hint: String,
    },
}

/// The addresses a PBX's event reports may come from besides its host's.
#[derive(Debug, Clone)]
pub(crate) enum Sources {
    /// A list as given.
    Listed(Given<Vec<String>>),
    /// The flags' list, checked once for every target ([`TargetDefaults`]).
    Checked(Vec<std::net::IpAddr>),
}

/// One PBX's settings as given, from the flags or the file.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Its name (`default` for the flags' PBX), and how a bad one is named.
    pub name: Given<String>,
    pub url: Given<Option<String>>,
    /// After a missing URL: how else to set it.
    pub url_hint: String,
    /// The API family's word (`s-series`, `p-series`).
    pub api: Given<String>,
    /// `""`: the family's.
    pub api_path: String,
    pub auth: AuthChoice,
    pub collectors: Given<Collectors>,
    pub timeout: Given<RawDuration>,
    pub max_concurrent_requests: Given<usize>,
    pub max_response_bytes: Given<usize>,
    pub login_backoff: Given<RawDuration>,
    pub ca_file: Given<Option<PathBuf>>,
    pub insecure_skip_verify: bool,
    pub proxy_url: Option<Given<String>>,
    pub events: Given<RawEvents>,
    /// Names the method when TCP events lack a clear password.
    pub events_method_field: String,
    pub events_tcp_port: u16,
    pub events_source_addresses: Sources,
}

/// What a target gets when neither it nor the file's `defaults` say otherwise (from the flags).
#[derive(Debug, Clone)]
pub struct TargetDefaults {
    /// `--pbx.api`: `s-series` or `p-series`.
    pub api: String,
    /// `--pbx.api-path` (`""`: the family's own).
    pub api_path: String,
    /// The `--collector.*` flags.
    pub collectors: CollectorSet,
    /// `--pbx.timeout`.
    pub timeout: Duration,
    /// `--pbx.max-concurrent-requests`.
    pub max_concurrent_requests: usize,
    /// `--pbx.max-response-bytes`.
    pub max_response_bytes: usize,
    /// `--pbx.login-backoff`.
    pub login_backoff: Duration,
    /// `--pbx.insecure-skip-verify`.
    pub insecure_skip_verify: bool,
    /// `--pbx.proxy-url`, as given (checked against each target's URL).
    pub proxy_url: Option<String>,
    /// `--pbx.events`.
    pub events: bool,
    /// `--pbx.events-method`: `tcp` reads events from the PBX's TCP port.
    pub events_tcp: bool,
    /// `--pbx.events-tcp-port`.
    pub events_tcp_port: u16,
    /// `--events.listen-address` and `--events.advertise-url`.
    pub events_endpoint: EventsEndpoint,
    /// `--events.source-addresses`.
    pub events_source_addresses: Vec<std::net::IpAddr>,
}

impl Settings {
    /// A target named `name` with `auth` and everything else from `base`. `field(word, flag)`
    /// names each inherited value: the file's word (`timeout`) and the flag (`--pbx.timeout`)
    /// are given, the side picks. The URL and CA file are no defaults: the side sets them.
    pub(crate) fn inherit(
        name: Given<String>,
        auth: AuthChoice,
        base: &TargetDefaults,
        field: &dyn Fn(&'static str, &'static str) -> String,
    ) -> Self {
        Self {
            name,
            url: Given::new(None, field("url", "--pbx.url")),
            url_hint: String::new(),
            api: Given::new(base.api.clone(), field("api", "--pbx.api")),
            api_path: base.api_path.clone(),
            auth,
            collectors: Given::new(
                Collectors::Set(base.collectors),
                field("collectors", "--collector.*"),
            ),
            timeout: Given::new(
                RawDuration::Parsed(base.timeout),
                field("timeout", "--pbx.timeout"),
            ),
            max_concurrent_requests: Given::new(
                base.max_concurrent_requests,
                field("max_concurrent_requests", "--pbx.max-concurrent-requests"),
            ),
            max_response_bytes: Given::new(
                base.max_response_bytes,
                field("max_response_bytes", "--pbx.max-response-bytes"),
            ),
            login_backoff: Given::new(
                RawDuration::Parsed(base.login_backoff),
                field("login_backoff", "--pbx.login-backoff"),
            ),
            ca_file: Given::new(None, field("ca_file", "--pbx.ca-file")),
            insecure_skip_verify: base.insecure_skip_verify,
            proxy_url: base
                .proxy_url
                .clone()
                .map(|p| Given::new(p, field("proxy_url", "--pbx.proxy-url"))),
            events: Given::new(
                RawEvents {
                    word: None,
                    on: base.events,
                    tcp: base.events_tcp,
                },
                field("events", "--pbx.events"),
            ),
            events_method_field: field("events", "--pbx.events-method"),
            events_tcp_port: base.events_tcp_port,
            events_source_addresses: Sources::Checked(base.events_source_addresses.clone()),
        }
    }
}
