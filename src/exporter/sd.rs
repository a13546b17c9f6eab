//! The document `GET /sd` serves: the configured PBXes in Prometheus' HTTP service-discovery format, so that the PBX
//! list lives in the exporter's configuration alone (`http_sd_configs` in Prometheus, `httpSDConfigs`
//! in a prometheus-operator `ScrapeConfig`).
//!
//! One target group per PBX: its target name (what `/probe?target=` takes), and `__meta_yeastar_*`
//! labels a relabelling may use — the PBX as `scheme://host:port`, the auth module and kind, the
//! event method, the collectors. Never a secret: no username, password, token or file path. The
//! document is made once per configuration (at start and on each reload) and served as it is.
//!
//! Prometheus' rules for an HTTP SD endpoint: HTTP 200 with `Content-Type: application/json`, UTF-8,
//! the whole list every time, `[]` when there are no targets.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::Serialize;

use crate::config::TargetConfig;
use crate::pbx::Auth;

/// The content type Prometheus requires of an HTTP SD answer.
pub const CONTENT_TYPE: &str = "application/json";

/// One target group of the document.
#[derive(Serialize)]
struct Group<'a> {
    targets: [&'a str; 1],
    labels: BTreeMap<&'static str, String>,
}

/// The PBX at `url` (`http[s]://host[:port]`, as the config checked it) as `scheme://host:port`:
/// the port written out, an IPv6 address in brackets, the host lower-cased. Never userinfo, path or
/// query (the config refuses URLs with them).
pub fn pbx_origin(url: &str) -> String {
    let Ok(origin) = crate::pbx::transport::Origin::new(url, "/") else {
        // Unreachable for a checked URL; the URL itself carries nothing but scheme and authority.
        return url.to_ascii_lowercase();
    };
    let scheme = if url.starts_with("https://") {
        "https"
    } else {
        "http"
    };
    let (host, port) = origin.host_port();
    let host = host.to_ascii_lowercase();
    if host.contains(':') {
        format!("{scheme}://[{host}]:{port}")
    } else {
        format!("{scheme}://{host}:{port}")
    }
}

/// The HTTP SD document for `targets`, in their order (JSON, one line, with a final newline).
pub fn document(targets: &[TargetConfig]) -> Bytes {
    let groups: Vec<Group<'_>> = targets
        .iter()
        .map(|t| {
            let c = &t.client;
            let mut labels = BTreeMap::new();
            labels.insert("__meta_yeastar_target", c.target.clone());
            labels.insert("__meta_yeastar_pbx_url", pbx_origin(&c.url));
            let auth = match c.auth {
                Auth::Credentials { .. } => "credentials",
                Auth::StaticToken(_) => "token",
            };
            labels.insert("__meta_yeastar_auth", auth.into());
            if let Some(module) = &t.auth_module {
                labels.insert("__meta_yeastar_auth_module", module.clone());
            }
            let events = match (&c.events, &t.events_tcp) {
                (_, Some(_)) => "tcp",
                (Some(_), None) => "http",
                (None, None) => "off",
            };
            labels.insert("__meta_yeastar_events", events.into());
            labels.insert(
                "__meta_yeastar_collectors",
                crate::collector::CollectorKind::all()
                    .filter(|k| t.collectors.contains(*k))
                    .map(|k| k.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
            );
            Group {
                targets: [c.target.as_str()],
                labels,
            }
        })
        .collect();
    let mut body = serde_json::to_vec(&groups).expect("strings and maps always serialise");
    body.push(b'\n');
    Bytes::from(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_scheme_host_and_port() {
        assert_eq!(pbx_origin("https://10.0.0.5:8088"), "https://10.0.0.5:8088");
        assert_eq!(
            pbx_origin("http://PBX.Example.net"),
            "http://pbx.example.net:80"
        );
        assert_eq!(
            pbx_origin("https://pbx.example.net"),
            "https://pbx.example.net:443"
        );
        assert_eq!(
            pbx_origin("https://[FD00::5]:8088"),
            "https://[fd00::5]:8088"
        );
        assert_eq!(pbx_origin("http://[::1]"), "http://[::1]:80");
    }

    #[test]
    fn no_targets_is_an_empty_list() {
        assert_eq!(document(&[]), Bytes::from_static(b"[]\n"));
    }
}
