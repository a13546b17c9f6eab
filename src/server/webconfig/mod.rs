//! Protection of the exporter's own endpoint: the web configuration file (`--web.config.file`) in
//! the format of the Prometheus exporter-toolkit, so a file written for node_exporter works here
//! unchanged.
//!
//! - `tls_server_config`: certificate and key (files or inline), client certificates
//!   (`client_auth_type`, `client_ca_file`, `client_allowed_sans`), versions, cipher suites, curves.
//!   Served with rustls, which speaks TLS 1.2 and 1.3 only.
//! - `basic_auth_users`: user → bcrypt hash. A check's result is cached per (user, hash, password)
//!   (least recently used evicted) and bcrypt runs one at a time, its slot taken before a blocking
//!   thread is, so a flood of requests can neither burn the CPU nor fill the blocking pool.
//! - `http_server_config.headers`: the security headers the toolkit allows, on every response.
//! - `rate_limit`: a token bucket over all requests (429 when empty).
//!
//! The file, and every certificate it names, is read at start and again on each reload; a bad file
//! is refused with the field named and the running configuration stays.

mod tls;
mod verify;

use tls::build_tls;
pub use verify::subject_alt_names;
use verify::{AnyCert, SanCheck};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper::header::{HeaderName, HeaderValue};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    DigitallySignedStruct, DistinguishedName, NamedGroup, RootCertStore, ServerConfig,
    SignatureScheme, SupportedProtocolVersion,
};
use serde::Deserialize;

/// Why a web configuration file was refused: the flag, the file and the field, and what is wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WebConfigError {
    /// The file or one of its fields is wrong.
    #[error("{field}: {reason}")]
    Invalid {
        /// The flag (`--web.config.file`).
        field: String,
        /// The file, the field and the cause.
        reason: String,
    },
    /// A field's content was refused by the library that reads it (PEM, rustls).
    #[error("{field}: {what}")]
    Unusable {
        /// The flag, the file and the field.
        field: String,
        /// What the content is not.
        what: String,
        /// The library's reason.
        #[source]
        cause: Cause,
    },
    /// A file (the config itself, or one it names) cannot be read.
    #[error("{field}: cannot read {}", path.display())]
    Read {
        /// The flag, and the file and field that name it.
        field: String,
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        cause: Cause,
    },
}

use crate::support::duration::parse_go_duration;
use crate::support::report::Cause;
use crate::support::secret::Secret;

/// The flag that names the file, used as the field of every error about it.
pub const FLAG: &str = "--web.config.file";

/// Headers a web config may set, and the values allowed where the set is closed (the toolkit's
/// list: the same file must mean the same thing to every Prometheus exporter).
const ALLOWED_HEADERS: [(&str, &[&str]); 5] = [
    ("Strict-Transport-Security", &[]),
    ("X-Content-Type-Options", &["nosniff"]),
    ("X-Frame-Options", &["deny", "sameorigin"]),
    ("X-XSS-Protection", &[]),
    ("Content-Security-Policy", &[]),
];

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    tls_server_config: Option<RawTls>,
    http_server_config: Option<RawHttp>,
    rate_limit: Option<RawRateLimit>,
    basic_auth_users: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: Option<String>,
    key: Option<Secret>,
    client_ca: Option<String>,
    cert_file: Option<String>,
    key_file: Option<String>,
    client_auth_type: Option<String>,
    client_ca_file: Option<String>,
    cipher_suites: Option<Vec<String>>,
    curve_preferences: Option<Vec<String>>,
    min_version: Option<String>,
    max_version: Option<String>,
    prefer_server_cipher_suites: Option<bool>,
    client_allowed_sans: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    http2: Option<bool>,
    headers: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRateLimit {
    burst: Option<u32>,
    interval: Option<String>,
}

/// How client certificates are treated (`client_auth_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// None asked for.
    NoClientCert,
    /// Asked for, not required, not verified.
    RequestClientCert,
    /// Required, not verified.
    RequireAnyClientCert,
    /// Verified against the client CAs when given.
    VerifyClientCertIfGiven,
    /// Required and verified against the client CAs.
    RequireAndVerifyClientCert,
}

impl ClientAuth {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "" | "NoClientCert" => Self::NoClientCert,
            "RequestClientCert" => Self::RequestClientCert,
            // "RequireClientCert" is the toolkit's old name, still accepted there.
            "RequireAnyClientCert" | "RequireClientCert" => Self::RequireAnyClientCert,
            "VerifyClientCertIfGiven" => Self::VerifyClientCertIfGiven,
            "RequireAndVerifyClientCert" => Self::RequireAndVerifyClientCert,
            _ => return None,
        })
    }
}

/// A validated web configuration. The default is plain HTTP without authentication.
#[derive(Clone, Default)]
pub struct WebConfig {
    tls: Option<Arc<ServerConfig>>,
    client_auth: Option<ClientAuth>,
    /// `basic_auth_users`: user → bcrypt hash.
    pub(crate) users: BTreeMap<String, String>,
    headers: Vec<(HeaderName, HeaderValue)>,
    /// `rate_limit`: interval and burst.
    pub(crate) rate_limit: Option<(Duration, u32)>,
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConfig")
            .field("tls", &self.tls.is_some())
            .field("client_auth", &self.client_auth)
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .field("headers", &self.headers)
            .field("rate_limit", &self.rate_limit)
            .finish()
    }
}

fn bad(path: &Path, field: &str, reason: impl std::fmt::Display) -> WebConfigError {
    WebConfigError::Invalid {
        field: FLAG.into(),
        reason: format!("{}: {field}: {reason}", path.display()),
    }
}

/// `field` of the web config at `path` refused: `what`, because of `cause`.
fn unusable(
    path: &Path,
    field: &str,
    what: &str,
    cause: impl std::error::Error + Send + Sync + 'static,
) -> WebConfigError {
    WebConfigError::Unusable {
        field: format!("{FLAG}: {}: {field}", path.display()),
        what: what.into(),
        cause: Cause::new(cause),
    }
}

impl WebConfig {
    /// Reads and checks the web config at `path`, and every file it names (relative paths are
    /// relative to the file's directory, as in the toolkit).
    pub fn load(path: &Path) -> Result<Self, WebConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| WebConfigError::Read {
            field: FLAG.into(),
            path: path.to_path_buf(),
            cause: Cause::new(e),
        })?;
        Self::parse(&text, path)
    }

    /// Checks the text of a web config read from `path`.
    pub fn parse(text: &str, path: &Path) -> Result<Self, WebConfigError> {
        let source = format!("{FLAG} {}", path.display());
        // An empty file (or one of comments) is a valid config that changes nothing.
        let raw: RawFile = if text
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
        {
            RawFile::default()
        } else {
            serde_saphyr::from_str::<Option<RawFile>>(text)
                .map_err(|e| WebConfigError::Invalid {
                    field: source.clone(),
                    reason: crate::support::yaml::error_line(e),
                })?
                .unwrap_or_default()
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut out = WebConfig::default();

        for (user, hash) in raw.basic_auth_users.unwrap_or_default() {
            if let Err(e) = hash.parse::<bcrypt::HashParts>() {
                return Err(bad(
                    path,
                    &format!("basic_auth_users.{user}"),
                    format!("not a bcrypt hash ({e})"),
                ));
            }
            out.users.insert(user, hash);
        }

        let http = raw.http_server_config.unwrap_or_default();
        // `http2` is accepted for compatibility; this server speaks HTTP/1.1, which is what
        // Prometheus uses for scrapes.
        let _ = http.http2;
        for (name, value) in http.headers.unwrap_or_default() {
            let field = format!("http_server_config.headers.{name}");
            let Some((canonical, allowed)) = ALLOWED_HEADERS.iter().find(|(h, _)| *h == name)
            else {
                return Err(bad(
                    path,
                    &field,
                    format!("HTTP header {name:?} can not be configured"),
                ));
            };
            if !allowed.is_empty() && !allowed.contains(&value.as_str()) {
                return Err(bad(
                    path,
                    &field,
                    format!("invalid value {value:?}; expected one of {allowed:?}"),
                ));
            }
            let value = HeaderValue::from_str(&value)
                .map_err(|_| bad(path, &field, "not a valid header value"))?;
            // HeaderName keeps names lower-cased, as HTTP/2 and hyper want them.
            let name = HeaderName::from_bytes(canonical.as_bytes())
                .map_err(|_| bad(path, &field, "not a valid header name"))?;
            out.headers.push((name, value));
        }

        if let Some(rl) = raw.rate_limit {
            let interval = match rl.interval.as_deref() {
                None | Some("") | Some("0") | Some("0s") => Duration::ZERO,
                Some(text) => {
                    parse_go_duration(text).map_err(|e| bad(path, "rate_limit.interval", e))?
                }
            };
            if !interval.is_zero() {
                let burst = rl.burst.unwrap_or(0);
                if burst == 0 {
                    return Err(bad(
                        path,
                        "rate_limit.burst",
                        "must be at least 1 when rate_limit.interval is set (0 would refuse every request)",
                    ));
                }
                out.rate_limit = Some((interval, burst));
            }
        }

        if let Some(tls) = raw.tls_server_config {
            let enabled = [
                &tls.cert,
                &tls.cert_file,
                &tls.key_file,
                &tls.client_ca,
                &tls.client_ca_file,
                &tls.client_auth_type,
            ]
            .iter()
            .any(|v| v.as_deref().is_some_and(|s| !s.is_empty()))
                || tls.key.as_ref().is_some_and(|k| !k.expose().is_empty());
            if enabled {
                let (config, auth) = build_tls(tls, dir, path)?;
                out.tls = Some(Arc::new(config));
                out.client_auth = Some(auth);
            }
        }
        Ok(out)
    }

    /// The TLS settings, when the endpoint is HTTPS.
    pub fn tls(&self) -> Option<&Arc<ServerConfig>> {
        self.tls.as_ref()
    }

    /// Whether basic auth is on.
    pub fn has_users(&self) -> bool {
        !self.users.is_empty()
    }

    /// Headers added to every response.
    pub fn headers(&self) -> &[(HeaderName, HeaderValue)] {
        &self.headers
    }

    /// One line for the start-up log.
    pub fn describe(&self) -> String {
        let mut parts = vec![
            if self.tls.is_some() {
                "TLS"
            } else {
                "plain HTTP"
            }
            .to_string(),
        ];
        if let Some(a) = self.client_auth.filter(|a| *a != ClientAuth::NoClientCert) {
            parts.push(format!("client certificates: {a:?}"));
        }
        if self.has_users() {
            parts.push(format!("basic auth ({} users)", self.users.len()));
        }
        if let Some((i, b)) = self.rate_limit {
            parts.push(format!("rate limit {b} per {i:?}"));
        }
        parts.join(", ")
    }
}

/// `yeastar-exporter hash-password`: reads one line (the password) from standard input and prints
/// its bcrypt hash.
pub fn hash_password_command(cost: u32) -> anyhow::Result<()> {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    let password = line.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        anyhow::bail!("hash-password: no password on standard input");
    }
    println!("{}", bcrypt::hash(password, cost)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<WebConfig, String> {
        WebConfig::parse(text, Path::new("/etc/web.yml")).map_err(|e| e.to_string())
    }

    #[test]
    fn empty_file_and_empty_sections_are_plain_http() {
        for text in ["", "# nothing\n", "tls_server_config:\nbasic_auth_users:\n"] {
            let c = parse(text).unwrap();
            assert!(c.tls().is_none() && !c.has_users(), "{text:?}");
        }
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (
                "tls_server_config:\n  cert_file: a.pem\n",
                "--web.config.file: /etc/web.yml: tls_server_config: missing one of key or key_file",
            ),
            (
                "tls_server_config:\n  key_file: a.key\n",
                "--web.config.file: /etc/web.yml: tls_server_config: missing one of cert or cert_file",
            ),
            (
                "basic_auth_users:\n  alice: plain\n",
                "--web.config.file: /etc/web.yml: basic_auth_users.alice: not a bcrypt hash (Invalid hash: the hash format is malformed; expected 60 ASCII bytes)",
            ),
            (
                "http_server_config:\n  headers:\n    X-Powered-By: me\n",
                "--web.config.file: /etc/web.yml: http_server_config.headers.X-Powered-By: HTTP header \"X-Powered-By\" can not be configured",
            ),
            (
                "http_server_config:\n  headers:\n    X-Frame-Options: allow\n",
                "--web.config.file: /etc/web.yml: http_server_config.headers.X-Frame-Options: invalid value \"allow\"; expected one of [\"deny\", \"sameorigin\"]",
            ),
            (
                "rate_limit:\n  interval: 1s\n",
                "--web.config.file: /etc/web.yml: rate_limit.burst: must be at least 1 when rate_limit.interval is set (0 would refuse every request)",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text).unwrap_err(), want, "{text}");
        }
        let unknown = parse("tls_server_config:\n  certfile: a.pem\n").unwrap_err();
        assert!(
            unknown.starts_with("--web.config.file /etc/web.yml: ") && unknown.contains("certfile"),
            "{unknown}"
        );
    }
}
