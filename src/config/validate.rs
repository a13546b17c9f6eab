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
    pub family: crate::pbx::ApiFamily,
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
                    Err(invalid(&s.url.field, format!("same URL as target {other}"))),
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
    let family = take!(
        crate::pbx::ApiFamily::named(&s.api.value).ok_or_else(|| invalid(
            &s.api.field,
            format!("{:?} is no API family: s-series or p-series", s.api.value)
        ))
    );
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
    // What the P-Series family does not read yet is refused with the field named, rather than
    // accepted and silently missing.
    if matches!(family, Some(crate::pbx::ApiFamily::P(_))) && matches!(events, Some(Some(_))) {
        errors.push(invalid(
            &s.events.field,
            "the event reports of a P-Series PBX (its WebSocket) are not read yet: switch events off for this target",
        ));
    }
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
        Some(family),
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
        family,
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
        family,
        api_path: if s.api_path.is_empty() {
            family.api_path().to_string()
        } else {
            s.api_path.clone()
        },
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

#[cfg(test)]
mod tests {
    //! One rule, two sides: the same bad value refused in the same words, named by the flag from
    //! the command line and by the file's field from the config file.

    use clap::Parser;

    use crate::config::{Cli, ExporterFlags, parse_file};
    use crate::support::report::chain;

    fn flags(args: &[&str]) -> ExporterFlags {
        let mut v = vec!["yeastar-exporter"];
        v.extend_from_slice(args);
        match Cli::try_parse_from(v) {
            Ok(cli) => cli.exporter,
            Err(e) => panic!("{e}"),
        }
    }

    /// The flags' single PBX with `extra`, its first error.
    fn by_flag(url: &str, extra: &[&str]) -> String {
        let mut args = vec!["--pbx.url", url, "--pbx.username", "api"];
        args.extend_from_slice(extra);
        chain(&flags(&args).resolve(Some("pw".into())).unwrap_err())
    }

    /// A file of one target `hq` at `url` with `extra` lines, its first error; the flags are the
    /// defaults, plus `args`.
    fn by_file(url: &str, extra: &str, args: &[&str]) -> String {
        let text = format!(
            "auth_modules:\n  main:\n    username: api\n    password: pw\ntargets:\n  hq:\n    url: {url}\n    auth: main\n{extra}"
        );
        let base = flags(args).target_defaults().unwrap();
        chain(&parse_file(&text, "f.yml", &base).unwrap_err())
    }

    #[test]
    fn a_bad_url_is_refused_by_its_flag_and_by_its_field() {
        let why = "\"10.0.0.5:8088\" must start with http:// or https://";
        assert_eq!(by_flag("10.0.0.5:8088", &[]), format!("--pbx.url: {why}"));
        assert_eq!(
            by_file("10.0.0.5:8088", "", &[]),
            format!("targets.hq.url: {why}")
        );
    }

    #[test]
    fn a_zero_timeout_is_refused_by_its_flag_and_by_its_field() {
        let url = "http://10.0.0.5";
        assert_eq!(
            by_flag(url, &["--pbx.timeout", "0s"]),
            "--pbx.timeout: must be greater than 0"
        );
        assert_eq!(
            by_file(url, "    timeout: 0s\n", &[]),
            "targets.hq.timeout: must be greater than 0"
        );
        // The flag's value, inherited by a target, is held to the same rule (it was let through).
        assert_eq!(
            by_file(url, "", &["--pbx.timeout", "0s"]),
            "targets.hq.timeout: must be greater than 0"
        );
    }

    #[test]
    fn a_short_login_backoff_is_refused_by_its_flag_and_by_its_field() {
        let why = "60s is too short: the PBX locks this host out after 5 failed logins in 10 minutes, and one login per back-off would reach 5 in 240s; use at least 3m (default 10m)";
        let url = "http://10.0.0.5";
        assert_eq!(
            by_flag(url, &["--pbx.login-backoff", "1m"]),
            format!("--pbx.login-backoff: {why}")
        );
        assert_eq!(
            by_file(url, "    login_backoff: 1m\n", &[]),
            format!("targets.hq.login_backoff: {why}")
        );
    }

    #[test]
    fn a_proxy_for_plain_http_is_refused_by_what_set_it() {
        let why = "the PBX's url is plain http://: through a proxy its login (the password's MD5) and every token would be readable there; use the PBX's https:// URL";
        let url = "http://10.0.0.5";
        let proxy = "http://proxy.example:3128";
        assert_eq!(
            by_flag(url, &["--pbx.proxy-url", proxy]),
            format!("--pbx.proxy-url: {why}")
        );
        assert_eq!(
            by_file(url, &format!("    proxy_url: {proxy}\n"), &[]),
            format!("targets.hq.proxy_url: {why}")
        );
        // Inherited from the flag, it is the flag that is named.
        assert_eq!(
            by_file(url, "", &["--pbx.proxy-url", proxy]),
            format!("--pbx.proxy-url: {why}")
        );
    }

    #[test]
    fn an_unreadable_secret_file_is_refused_by_its_flag_and_by_its_field() {
        let missing = "/nonexistent/yeastar-exporter/pw";
        let why = format!("cannot read {missing}: No such file or directory (os error 2)");
        let err = flags(&[
            "--pbx.url",
            "http://10.0.0.5",
            "--pbx.username",
            "api",
            "--pbx.password-file",
            missing,
        ])
        .resolve(Some("from the environment".into()))
        .unwrap_err();
        assert_eq!(chain(&err), format!("--pbx.password-file: {why}"));
        let text = format!(
            "auth_modules:\n  main:\n    username: api\n    password_file: {missing}\ntargets:\n  hq:\n    url: http://10.0.0.5\n    auth: main\n"
        );
        let base = flags(&[]).target_defaults().unwrap();
        assert_eq!(
            chain(&parse_file(&text, "f.yml", &base).unwrap_err()),
            format!("auth_modules.main.password_file: {why}")
        );
    }

    #[test]
    fn an_unreadable_ca_file_is_refused_by_its_flag_and_by_its_field() {
        let missing = "/nonexistent/yeastar-exporter/ca.pem";
        let why = format!("cannot read {missing}: No such file or directory (os error 2)");
        let url = "https://10.0.0.5";
        assert_eq!(
            by_flag(url, &["--pbx.ca-file", missing]),
            format!("--pbx.ca-file: {why}")
        );
        assert_eq!(
            by_file(url, &format!("    ca_file: {missing}\n"), &[]),
            format!("targets.hq.ca_file: {why}")
        );
    }

    #[test]
    fn tcp_events_without_a_password_are_refused_in_each_sides_words() {
        let dir = std::env::temp_dir().join(format!("yeastar-validate-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let token = dir.join("token");
        std::fs::write(&token, "statictoken\n").unwrap();
        let err = flags(&[
            "--pbx.url",
            "http://10.0.0.5",
            "--pbx.token-file",
            token.to_str().unwrap(),
            "--pbx.events",
            "--pbx.events-method",
            "tcp",
        ])
        .resolve(None)
        .unwrap_err();
        assert_eq!(
            chain(&err),
            "--pbx.events-method: tcp needs --pbx.username and a password (the TCP login carries them), not a static token"
        );
        let text = format!(
            "auth_modules:\n  tok:\n    token_file: {}\ntargets:\n  hq:\n    url: http://10.0.0.5\n    auth: tok\n    events: tcp\n",
            token.display()
        );
        let base = flags(&[]).target_defaults().unwrap();
        assert_eq!(
            chain(&parse_file(&text, "f.yml", &base).unwrap_err()),
            "targets.hq.events: tcp needs an auth module with username and password (the TCP login carries them), not token_file"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
