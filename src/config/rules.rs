//! The rules, each written once: every check of one value, given the name of the flag or field
//! it came from, so the same rule refuses `--pbx.timeout` and `targets.office.timeout` in the
//! same words. `validate.rs` applies them to a target's settings in one order.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::{ConfigError, invalid, unreadable};
use super::settings::{Collectors, EventsWord, Given, RawDuration, RawEvents, SecretPath};
use crate::collector::{CollectorKind, CollectorSet};
use crate::support::duration::parse_duration;
use crate::support::secret::Secret;

/// Why HTTP events need logins.
pub(crate) const STATIC_TOKEN_EVENTS: &str = "HTTP events need logins: each login registers the receiver's path with its own secret, and static-token mode never logs in (use an auth module or --pbx.username with a password)";

/// Refuses a login back-off short enough that 5 rejected logins, one per back-off, could reach the
/// PBX within its 10-minute lockout window.
pub fn check_login_backoff(field: &str, backoff: Duration) -> Result<(), ConfigError> {
    let min = crate::pbx::ApiFamily::default().min_login_backoff();
    if backoff < min {
        return Err(invalid(
            field,
            format!(
                "{} is too short: the PBX locks this host out after 5 failed logins in 10 minutes, and one login per back-off would reach 5 in {}; use at least {}m (default 10m)",
                format_duration(backoff),
                format_duration(backoff * 4),
                min.as_secs() / 60
            ),
        ));
    }
    Ok(())
}

fn format_duration(d: Duration) -> String {
    if d.subsec_millis() != 0 {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}s", d.as_secs())
    }
}

/// Reads a secret file: surrounding whitespace (a trailing newline) is not part of the secret.
pub fn read_secret_file(field: &str, path: &Path) -> Result<Secret, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| unreadable(field, path, e))?;
    let value = text.trim();
    if value.is_empty() {
        return Err(invalid(field, format!("{} is empty", path.display())));
    }
    Ok(Secret::new(value))
}

/// A secret file as given: the config file's path expanded first ([`expand_path`]).
pub(crate) fn secret_file(field: &str, file: &SecretPath) -> Result<Secret, ConfigError> {
    if file.expand {
        read_secret_file(field, &expand_path(field, &file.path)?)
    } else {
        read_secret_file(field, &file.path)
    }
}

/// Expands `${NAME}` and `${NAME:-default}` in the path of a config file's secret file
/// (`password_file`, `token_file`) from the environment, so one file serves both the systemd unit
/// and an admin: `${CREDENTIALS_DIRECTORY:-/etc/yeastar-exporter}/password` is the unit's private
/// copy under systemd (`LoadCredential=password:/etc/yeastar-exporter/password` sets
/// `CREDENTIALS_DIRECTORY`) and the file itself for `sudo yeastar-exporter --config.check`.
/// `:-` takes the default when the variable is unset or empty, as in the shell; a `$` not followed
/// by `{` is kept as written, and nothing else in the file is expanded.
pub fn expand_path(field: &str, path: &Path) -> Result<PathBuf, ConfigError> {
    expand_path_with(field, path, |name| std::env::var_os(name))
}

fn expand_path_with(
    field: &str,
    path: &Path,
    env: impl Fn(&str) -> Option<std::ffi::OsString>,
) -> Result<PathBuf, ConfigError> {
    let Some(mut rest) = path.to_str().filter(|s| s.contains("${")) else {
        return Ok(path.to_path_buf());
    };
    let mut out = std::ffi::OsString::new();
    while let Some(start) = rest.find("${") {
        out.push(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or_else(|| {
            invalid(
                field,
                format!("{}: \"${{\" without its closing \"}}\"", path.display()),
            )
        })?;
        let inner = &after[..end];
        let (name, default) = match inner.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (inner, None),
        };
        let valid = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(invalid(
                field,
                format!(
                    "{}: \"${{{inner}}}\" is not ${{NAME}} or ${{NAME:-default}}",
                    path.display()
                ),
            ));
        }
        match (env(name).filter(|v| !v.is_empty()), default) {
            (Some(value), _) => out.push(value),
            (None, Some(default)) => out.push(default),
            (None, None) => {
                let hint = if name == "CREDENTIALS_DIRECTORY" {
                    " (systemd sets it for a unit with LoadCredential=; give the file's own directory as the default for runs outside the unit, e.g. ${CREDENTIALS_DIRECTORY:-/etc/yeastar-exporter})"
                } else {
                    " (give a default: ${NAME:-/a/directory})"
                };
                return Err(invalid(
                    field,
                    format!("{}: {name} is not set{hint}", path.display()),
                ));
            }
        }
        rest = &after[end + 1..];
    }
    out.push(rest);
    Ok(PathBuf::from(out))
}

/// Checks a PBX base URL: http or https, a host, nothing after the port.
pub fn check_url(field: &str, url: &str) -> Result<String, ConfigError> {
    let url = url.trim().trim_end_matches('/');
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| {
            invalid(
                field,
                format!("{url:?} must start with http:// or https://"),
            )
        })?;
    if rest.is_empty() || rest.starts_with(':') {
        return Err(invalid(field, format!("{url:?} has no host")));
    }
    if rest.contains(['/', '?', '#', '@']) {
        return Err(invalid(
            field,
            format!(
                "{url:?} must be scheme://host[:port] only (the API path is a separate setting; credentials never go in the URL)"
            ),
        ));
    }
    if !rest.is_ascii() {
        return Err(invalid(
            field,
            format!(
                "{url:?}: the host must be written in ASCII (an international name in its xn-- form)"
            ),
        ));
    }
    // What the client will make of it (port, IPv6 brackets), refused here with the field named
    // rather than on every request.
    if let Err(e) = crate::pbx::transport::Origin::new(url, "/") {
        return Err(invalid(field, e));
    }
    Ok(url.to_string())
}

/// A proxy URL for the PBX at `pbx_url` (`http://` or `https://`, `[user:password@]host[:port]`,
/// nothing after): the error names `field` and never echoes the value (it may carry a password).
pub fn check_proxy_url(field: &str, proxy: &str, pbx_url: &str) -> Result<Secret, ConfigError> {
    const FORM: &str = "must be http://[user:password@]host:port or https://[user:password@]host:port (the proxy's address, nothing after it)";
    let proxy = proxy.trim();
    let lower = proxy.to_ascii_lowercase();
    let rest = match (
        lower.strip_prefix("http://"),
        lower.strip_prefix("https://"),
    ) {
        (Some(_), _) => &proxy["http://".len()..],
        (_, Some(_)) => &proxy["https://".len()..],
        _ => return Err(invalid(field, FORM)),
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let host = rest.rsplit('@').next().unwrap_or("");
    if host.is_empty() || rest.contains(['/', '?', '#', ' ']) || !rest.is_ascii() {
        return Err(invalid(field, FORM));
    }
    if reqwest::Proxy::all(proxy).is_err() {
        return Err(invalid(field, FORM));
    }
    if !pbx_url.to_ascii_lowercase().starts_with("https://") {
        return Err(invalid(
            field,
            "the PBX's url is plain http://: through a proxy its login (the password's MD5) and every token would be readable there; use the PBX's https:// URL",
        ));
    }
    Ok(Secret::new(proxy))
}

/// A duration: the file's text must parse and be more than 0; a flag's clap has parsed.
pub(crate) fn duration(raw: &Given<RawDuration>) -> Result<Duration, ConfigError> {
    match &raw.value {
        RawDuration::Parsed(d) => Ok(*d),
        RawDuration::Text(text) => {
            let d = parse_duration(text).map_err(|e| invalid(&raw.field, e))?;
            positive(&raw.field, d)
        }
    }
}

/// A duration that must be more than 0 (a timeout).
pub(crate) fn positive(field: &str, d: Duration) -> Result<Duration, ConfigError> {
    if d.is_zero() {
        return Err(invalid(field, "must be greater than 0"));
    }
    Ok(d)
}

/// A count that must be at least `min`.
pub(crate) fn at_least(n: &Given<usize>, min: usize) -> Result<usize, ConfigError> {
    if n.value < min {
        return Err(invalid(&n.field, format!("must be at least {min}")));
    }
    Ok(n.value)
}

/// The collectors: the flags' set as it is, or the file's names, each known, `calls` among them.
pub(crate) fn collectors(raw: &Given<Collectors>) -> Result<CollectorSet, ConfigError> {
    let names = match &raw.value {
        Collectors::Set(set) => return Ok(*set),
        Collectors::Named(names) => names,
    };
    let kinds = names
        .iter()
        .map(|n| {
            CollectorKind::named(n).ok_or_else(|| {
                invalid(
                    &raw.field,
                    format!(
                        "unknown collector {n:?} (known: {})",
                        CollectorKind::all()
                            .map(|c| c.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if !kinds.contains(&CollectorKind::CALLS) {
        return Err(invalid(
            &raw.field,
            "must include calls (yeastar_up is about it)",
        ));
    }
    Ok(CollectorSet::of(kinds))
}

/// How a PBX reports its events, when it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventsMethod {
    /// It posts to the exporter's receiver.
    Http,
    /// The exporter dials its TCP event port.
    Tcp,
}

/// Whether and how a PBX reports its events: the file's word if any, else the flags.
pub(crate) fn events(raw: &Given<RawEvents>) -> Result<Option<EventsMethod>, ConfigError> {
    let flags_method = if raw.value.tcp {
        EventsMethod::Tcp
    } else {
        EventsMethod::Http
    };
    Ok(match &raw.value.word {
        None => raw.value.on.then_some(flags_method),
        Some(EventsWord::On(false)) => None,
        Some(EventsWord::On(true)) => Some(flags_method),
        Some(EventsWord::Method(m)) => match m.trim().to_ascii_lowercase().as_str() {
            "http" => Some(EventsMethod::Http),
            "tcp" => Some(EventsMethod::Tcp),
            "off" | "false" => None,
            _ => {
                return Err(invalid(
                    &raw.field,
                    format!("{m:?}: use true, false, http or tcp"),
                ));
            }
        },
    })
}

/// A CA file must at least exist and be reachable (whether it holds certificates is the
/// client's check, when it is built).
pub(crate) fn ca_file(ca: &Given<Option<PathBuf>>) -> Result<(), ConfigError> {
    match &ca.value {
        Some(path) => std::fs::metadata(path)
            .map(|_| ())
            .map_err(|e| unreadable(&ca.field, path, e)),
        None => Ok(()),
    }
}

/// A list of IP addresses event reports may come from, validated (`field` names it on error).
pub fn source_addresses(
    field: &str,
    list: &[String],
) -> Result<Vec<std::net::IpAddr>, ConfigError> {
    list.iter()
        .map(|a| {
            let bare = a.trim();
            let bare = bare.strip_prefix('[').and_then(|b| b.strip_suffix(']')).unwrap_or(bare);
            bare.parse::<std::net::IpAddr>().map_err(|_| {
                invalid(
                    field,
                    format!(
                        "{a:?} is not an IP address (list the addresses the PBX's event reports come from, e.g. 192.0.2.7, 2001:db8::7; no names, no ranges)"
                    ),
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_paths_expand_the_credentials_directory_with_its_fallback() {
        let f = "auth_modules.main.password_file";
        let unit = |name: &str| {
            (name == "CREDENTIALS_DIRECTORY")
                .then(|| "/run/credentials/yeastar-exporter.service".into())
        };
        let admin = |_: &str| None;
        let empty = |_: &str| Some(std::ffi::OsString::new());
        let p = Path::new("${CREDENTIALS_DIRECTORY:-/etc/yeastar-exporter}/password");
        assert_eq!(
            expand_path_with(f, p, unit),
            Ok(PathBuf::from(
                "/run/credentials/yeastar-exporter.service/password"
            ))
        );
        assert_eq!(
            expand_path_with(f, p, admin),
            Ok(PathBuf::from("/etc/yeastar-exporter/password"))
        );
        // Set but empty takes the default, as `:-` does in the shell.
        assert_eq!(
            expand_path_with(f, p, empty),
            Ok(PathBuf::from("/etc/yeastar-exporter/password"))
        );
        // No expansion asked for: the path as written, `$` and all.
        assert_eq!(
            expand_path_with(f, Path::new("/etc/a$b/pass}word"), unit),
            Ok(PathBuf::from("/etc/a$b/pass}word"))
        );
        assert_eq!(
            expand_path_with(f, Path::new("${CREDENTIALS_DIRECTORY}/pw"), unit),
            Ok(PathBuf::from(
                "/run/credentials/yeastar-exporter.service/pw"
            ))
        );
        assert_eq!(
            expand_path_with(f, Path::new("${CREDENTIALS_DIRECTORY}/pw"), admin)
                .unwrap_err()
                .to_string(),
            "auth_modules.main.password_file: ${CREDENTIALS_DIRECTORY}/pw: CREDENTIALS_DIRECTORY is not set (systemd sets it for a unit with LoadCredential=; give the file's own directory as the default for runs outside the unit, e.g. ${CREDENTIALS_DIRECTORY:-/etc/yeastar-exporter})"
        );
        assert_eq!(
            expand_path_with(f, Path::new("${SECRETS}/pw"), admin)
                .unwrap_err()
                .to_string(),
            "auth_modules.main.password_file: ${SECRETS}/pw: SECRETS is not set (give a default: ${NAME:-/a/directory})"
        );
        assert_eq!(
            expand_path_with(f, Path::new("${A}-${B:-b}/${A}"), |n: &str| {
                (n == "A").then(|| "a".into())
            }),
            Ok(PathBuf::from("a-b/a"))
        );
        assert_eq!(
            expand_path_with(f, Path::new("${CREDENTIALS_DIRECTORY/pw"), unit)
                .unwrap_err()
                .to_string(),
            "auth_modules.main.password_file: ${CREDENTIALS_DIRECTORY/pw: \"${\" without its closing \"}\""
        );
        assert_eq!(
            expand_path_with(f, Path::new("${1X:-/d}/pw"), unit)
                .unwrap_err()
                .to_string(),
            "auth_modules.main.password_file: ${1X:-/d}/pw: \"${1X:-/d}\" is not ${NAME} or ${NAME:-default}"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(
            parse_duration("0.5s"),
            Err("not a valid duration string: \"0.5s\"".to_string())
        );
    }

    #[test]
    fn urls() {
        assert_eq!(
            check_url("f", "https://10.0.0.5:8088/"),
            Ok("https://10.0.0.5:8088".into())
        );
        assert!(check_url("f", "ftp://x").is_err());
        assert_eq!(
            check_url("f", "http://u:p@x").unwrap_err().to_string(),
            "f: \"http://u:p@x\" must be scheme://host[:port] only (the API path is a separate setting; credentials never go in the URL)"
        );
        assert_eq!(
            check_url("f", "http://пбх.example")
                .unwrap_err()
                .to_string(),
            "f: \"http://пбх.example\": the host must be written in ASCII (an international name in its xn-- form)"
        );
        assert_eq!(
            check_url("f", "http://10.0.0.5:80800")
                .unwrap_err()
                .to_string(),
            "f: \"http://10.0.0.5:80800\": the port must be a number from 0 to 65535"
        );
        assert_eq!(
            check_url("f", "https://[::1]:8088"),
            Ok("https://[::1]:8088".into())
        );
    }
}
