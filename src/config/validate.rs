//! The one validation: a target's [`Settings`] (from the flags or from the file) checked by the
//! rules of `rules.rs` in one order, each error naming the flag or field the value came from,
//! every error of a target found (`--config.check` lists them all; the flags' path keeps the
//! first). Credentials are checked here too, the flags' with their target and each auth module of
//! the file once, on its own.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::error::{ConfigError, invalid, missing};
use super::rules::{self, EventsMethod, STATIC_TOKEN_EVENTS};
use super::settings::{AuthChoice, AuthSettings, Settings, Sources};
use crate::collector::CollectorSet;
use crate::pbx::Auth;
use crate::support::secret::Secret;

/// A PBX whose event reports the exporter reads from the PBX's TCP event port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpEvents {
    /// The PBX's TCP event port.
    pub port: u16,
    /// The API username.
    pub username: String,
    /// The API password in clear: the TCP login carries it so (vendor documentation).
    pub password: Secret,
}

/// Checked credentials.
#[derive(Debug, Clone)]
pub(crate) struct Credentials {
    pub auth: Auth,
    /// The username and clear password, when they are not a static token (TCP events log in
    /// with them).
    pub plain: Option<(String, Secret)>,
    /// Why TCP events need `plain`, in the words of the side that gave them.
    pub tcp_needs: String,
}

/// The file's auth modules by name, each checked once: `None` for one whose error is reported
/// already (a target naming it adds none).
pub(crate) type Modules = BTreeMap<String, Option<Credentials>>;

/// Credentials as given → checked, secrets read.
pub(crate) fn auth(a: &AuthSettings) -> Result<Credentials, ConfigError> {
    if let Some(token) = &a.token_file.value {
        if a.username.value.is_some() || a.password.is_some() || a.password_file.value.is_some() {
            return Err(invalid(
                &a.words.whole,
                "token_file excludes username, password and password_file",
            ));
        }
        return Ok(Credentials {
            auth: Auth::StaticToken(rules::secret_file(&a.token_file.field, token)?),
            plain: None,
            tcp_needs: a.words.tcp_needs.clone(),
        });
    }
    let username = a
        .username
        .value
        .as_deref()
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .ok_or_else(|| missing(&a.username.field, a.words.or_token.clone()))?;
    let password = match (&a.password_file.value, &a.password) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                &a.words.whole,
                "set password_file or password, not both",
            ));
        }
        (Some(file), None) => rules::secret_file(&a.password_file.field, file)?,
        (None, Some(p)) if !p.is_empty() => Secret::new(p.clone()),
        _ => {
            return Err(missing(&a.password_file.field, a.words.or_password.clone()));
        }
    };
    Ok(Credentials {
        auth: Auth::Credentials {
            username: username.to_string(),
            password: password.clone(),
        },
        plain: Some((username.to_string(), password)),
        tcp_needs: a.words.tcp_needs.clone(),
    })
}

/// A target's settings, checked: what `build.rs` makes its configuration of.
#[derive(Debug)]
pub(crate) struct Valid {
    pub name: String,
    pub url: String,
    pub api_path: String,
    pub auth: Auth,
    /// The auth module it names (the file's targets).
    pub auth_module: Option<String>,
    pub collectors: CollectorSet,
    pub timeout: Duration,
    pub max_concurrent_requests: usize,
    pub max_response_bytes: usize,
    pub login_backoff: Duration,
    pub ca_file: Option<PathBuf>,
    pub insecure_skip_verify: bool,
    pub proxy_url: Option<Secret>,
    /// Its events over HTTP: the addresses its reports may come from besides its host's.
    pub http_events: Option<Vec<std::net::IpAddr>>,
    pub events_tcp: Option<TcpEvents>,
}

/// Checks one target's settings, pushing each error onto `errors` in order. `modules` are the
/// file's checked auth modules; `urls` the URLs of the targets checked before it (with their
/// names), which it must not repeat. `None` when anything is wrong: every error is pushed, but
/// one that follows from another's (an auth module that is itself wrong) is not pushed again.
pub(crate) fn target(
    s: &Settings,
    modules: &Modules,
    urls: &mut Vec<(String, String)>,
    errors: &mut Vec<ConfigError>,
) -> Option<Valid> {
    let before = errors.len();
    macro_rules! take {
        ($e:expr) => {
            match $e {
                Ok(v) => Some(v),
                Err(e) => {
                    errors.push(e);
                    None
                }
            }
        };
    }
    let name = &s.name.value;
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        errors.push(invalid(
            &s.name.field,
            "a target name is letters, digits, '.', '_' and '-' only",
        ));
        return None;
    }
    let url = take!(
        s.url
            .value
            .as_deref()
            .ok_or_else(|| missing(&s.url.field, s.url_hint.clone()))
            .and_then(|url| rules::check_url(&s.url.field, url))
            .and_then(|url| match urls.iter().find(|(u, _)| *u == url) {
                Some((_, other)) =>
                    Err(invalid(&s.url.field, format!("same URL as target {other}"),)),
                None => {
                    urls.push((url.clone(), name.clone()));
                    Ok(url)
                }
            })
    );
    let (credentials, auth_module) = match &s.auth {
        AuthChoice::Own(a) => (take!(auth(a)), None),
        AuthChoice::Module { name: m, hint } => {
            let module = take!(
                m.value
                    .clone()
                    .ok_or_else(|| missing(&m.field, hint.clone()))
            );
            let credentials = match &module {
                Some(a) => match modules.get(a) {
                    // Its module's own error is reported already.
                    Some(None) => None,
                    Some(Some(c)) => Some(c.clone()),
                    None => take!(Err(invalid(&m.field, format!("unknown auth module {a:?}")))),
                },
                None => None,
            };
            (credentials, module)
        }
    };
    let collectors = take!(rules::collectors(&s.collectors));
    let timeout =
        take!(rules::duration(&s.timeout).and_then(|d| rules::positive(&s.timeout.field, d)));
    let login_backoff = take!(rules::duration(&s.login_backoff).and_then(|b| {
        rules::check_login_backoff(&s.login_backoff.field, b)?;
        Ok(b)
    }));
    let max_concurrent_requests = take!(rules::at_least(&s.max_concurrent_requests, 1));
    let max_response_bytes = take!(rules::at_least(&s.max_response_bytes, 1024));
    let events = take!(rules::events(&s.events));
    let static_token = matches!(
        &credentials,
        Some(Credentials {
            auth: Auth::StaticToken(_),
            ..
        })
    );
    if events == Some(Some(EventsMethod::Http)) && static_token {
        errors.push(invalid(&s.events.field, STATIC_TOKEN_EVENTS));
    }
    // Checked whatever the events setting, so a typo is found before it matters.
    let sources = match &s.events_source_addresses {
        Sources::Listed(list) => take!(rules::source_addresses(&list.field, &list.value)),
        Sources::Checked(list) => Some(list.clone()),
    };
    let proxy_url = match (&url, &s.proxy_url) {
        (Some(url), Some(proxy)) => {
            take!(rules::check_proxy_url(&proxy.field, &proxy.value, url)).map(Some)
        }
        // No URL: its own error says so.
        _ => Some(None),
    };
    take!(rules::ca_file(&s.ca_file));
    let events_tcp = match (events, &credentials) {
        (Some(Some(EventsMethod::Tcp)), Some(c)) => take!(
            c.plain
                .clone()
                .map(|(username, password)| TcpEvents {
                    port: s.events_tcp_port,
                    username,
                    password,
                })
                .ok_or_else(|| invalid(&s.events_method_field, c.tcp_needs.clone()))
        )
        .map(Some),
        _ => Some(None),
    };
    let (
        Some(url),
        Some(credentials),
        Some(collectors),
        Some(timeout),
        Some(login_backoff),
        Some(max_concurrent_requests),
        Some(max_response_bytes),
        Some(events),
        Some(sources),
        Some(proxy_url),
        Some(events_tcp),
    ) = (
        url,
        credentials,
        collectors,
        timeout,
        login_backoff,
        max_concurrent_requests,
        max_response_bytes,
        events,
        sources,
        proxy_url,
        events_tcp,
    )
    else {
        return None;
    };
    if errors.len() > before {
        return None;
    }
    Some(Valid {
        name: name.clone(),
        url,
        api_path: s.api_path.clone(),
        auth: credentials.auth,
        auth_module,
        collectors,
        timeout,
        max_concurrent_requests,
        max_response_bytes,
        login_backoff,
        ca_file: s.ca_file.value.clone(),
        insecure_skip_verify: s.insecure_skip_verify,
        proxy_url,
        http_events: (events == Some(EventsMethod::Http)).then_some(sources),
        events_tcp,
    })
}

