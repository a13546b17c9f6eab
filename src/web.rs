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

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use base64::Engine;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
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

use crate::config::{ConfigError, yaml_error};
use crate::duration::parse_go_duration;
use crate::secret::Secret;

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

/// The TLS 1.2 cipher suites Go's crypto/tls knows (`tls.CipherSuites()`): a web config may name
/// any of them. rustls implements the ECDHE AEAD ones; the others are skipped with a warning.
const GO_CIPHER_SUITES: [&str; 17] = [
    "TLS_RSA_WITH_AES_128_CBC_SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
];

/// Paths exempt from basic auth: liveness and readiness probes (systemd, Kubernetes, load
/// balancers) need no credentials, and the answers say nothing but "Healthy"/"Ready".
pub const UNAUTHENTICATED_PATHS: [&str; 2] = ["/-/healthy", "/-/ready"];

/// Most cached basic-auth results kept; when full, the least recently used goes.
const AUTH_CACHE_CAPACITY: std::num::NonZeroUsize = std::num::NonZeroUsize::new(1024).unwrap();

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
    users: BTreeMap<String, String>,
    headers: Vec<(HeaderName, HeaderValue)>,
    rate_limit: Option<(Duration, u32)>,
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

fn bad(path: &Path, field: &str, reason: impl std::fmt::Display) -> ConfigError {
    ConfigError::Invalid {
        field: FLAG.into(),
        reason: format!("{}: {field}: {reason}", path.display()),
    }
}

impl WebConfig {
    /// Reads and checks the web config at `path`, and every file it names (relative paths are
    /// relative to the file's directory, as in the toolkit).
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Invalid {
            field: FLAG.into(),
            reason: format!("cannot read {}: {e}", path.display()),
        })?;
        Self::parse(&text, path)
    }

    /// Checks the text of a web config read from `path`.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let source = format!("{FLAG} {}", path.display());
        // An empty file (or one of comments) is a valid config that changes nothing.
        let raw: RawFile = if text
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
        {
            RawFile::default()
        } else {
            serde_saphyr::from_str::<Option<RawFile>>(text)
                .map_err(|e| yaml_error(&source, e))?
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

fn read_pem(dir: &Path, file: &str) -> Result<(PathBuf, Vec<u8>), String> {
    let p = dir.join(file);
    std::fs::read(&p)
        .map(|b| (p.clone(), b))
        .map_err(|e| format!("cannot read {}: {e}", p.display()))
}

fn version_rank(field: &str, v: &str) -> Result<u8, String> {
    match v {
        "TLS10" => Ok(10),
        "TLS11" => Ok(11),
        "TLS12" => Ok(12),
        "TLS13" => Ok(13),
        _ => Err(format!(
            "{field}: unknown TLS version: {v} (TLS10, TLS11, TLS12, TLS13)"
        )),
    }
}

fn build_tls(
    raw: RawTls,
    dir: &Path,
    path: &Path,
) -> Result<(ServerConfig, ClientAuth), ConfigError> {
    let f = |field: &str| format!("tls_server_config.{field}");
    let nonempty = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());

    // Certificate chain and key: both named before either is read.
    let has_key = nonempty(&raw.key_file).is_some()
        || raw.key.as_ref().is_some_and(|k| !k.expose().is_empty());
    if nonempty(&raw.cert_file).is_none() && nonempty(&raw.cert).is_none() {
        return Err(bad(
            path,
            "tls_server_config",
            "missing one of cert or cert_file",
        ));
    }
    if !has_key {
        return Err(bad(
            path,
            "tls_server_config",
            "missing one of key or key_file",
        ));
    }
    let (cert_field, cert_pem) = match (nonempty(&raw.cert_file), nonempty(&raw.cert)) {
        (Some(file), _) => {
            let (_, b) = read_pem(dir, &file).map_err(|e| bad(path, &f("cert_file"), e))?;
            ("cert_file", b)
        }
        (None, text) => ("cert", text.unwrap_or_default().into_bytes()),
    };
    let (key_field, key_pem) = match (
        nonempty(&raw.key_file),
        raw.key.as_ref().filter(|k| !k.expose().is_empty()),
    ) {
        (Some(file), _) => {
            let (_, b) = read_pem(dir, &file).map_err(|e| bad(path, &f("key_file"), e))?;
            ("key_file", b)
        }
        (None, key) => (
            "key",
            key.map(|k| k.expose().as_bytes().to_vec())
                .unwrap_or_default(),
        ),
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| bad(path, &f(cert_field), format!("not a PEM certificate: {e}")))?;
    if certs.is_empty() {
        return Err(bad(path, &f(cert_field), "no PEM certificate found"));
    }
    // Never echo key material: the error names the field only.
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|_| bad(path, &f(key_field), "no PEM private key found"))?;

    // Versions: rustls offers TLS 1.2 and 1.3.
    let min = match nonempty(&raw.min_version) {
        Some(v) => version_rank(&f("min_version"), &v).map_err(|e| bad(path, "", e))?,
        None => 12,
    };
    let max = match nonempty(&raw.max_version) {
        Some(v) => version_rank(&f("max_version"), &v).map_err(|e| bad(path, "", e))?,
        None => 13,
    };
    if min > max {
        return Err(bad(
            path,
            &f("min_version"),
            "is above tls_server_config.max_version",
        ));
    }
    if max < 12 {
        return Err(bad(
            path,
            &f("max_version"),
            "this exporter speaks TLS 1.2 and 1.3 only",
        ));
    }
    if min < 12 {
        tracing::warn!(
            file = %path.display(),
            "tls_server_config.min_version below TLS12: TLS 1.0 and 1.1 are not offered; the minimum is TLS 1.2"
        );
    }
    let mut versions: Vec<&'static SupportedProtocolVersion> = Vec::new();
    if min <= 12 {
        versions.push(&rustls::version::TLS12);
    }
    if max >= 13 {
        versions.push(&rustls::version::TLS13);
    }

    let mut provider = rustls::crypto::ring::default_provider();
    if let Some(names) = raw.cipher_suites.filter(|v| !v.is_empty()) {
        let mut chosen = Vec::new();
        for name in &names {
            if !GO_CIPHER_SUITES.contains(&name.as_str()) {
                return Err(bad(
                    path,
                    &f("cipher_suites"),
                    format!("unknown cipher: {name}"),
                ));
            }
            match provider
                .cipher_suites
                .iter()
                .find(|s| s.version() == &rustls::version::TLS12 && suite_name(s) == *name)
            {
                Some(s) => chosen.push(*s),
                None if name.starts_with("TLS_AES_") || name.starts_with("TLS_CHACHA20_") => {}
                None => tracing::warn!(
                    file = %path.display(),
                    cipher = %name,
                    "tls_server_config.cipher_suites: not offered by this exporter's TLS library (rustls); skipped"
                ),
            }
        }
        if chosen.is_empty() && min <= 12 && max == 12 {
            return Err(bad(
                path,
                &f("cipher_suites"),
                "none of the listed TLS 1.2 suites is offered by rustls (it offers the ECDHE ones with AES-GCM or ChaCha20-Poly1305)",
            ));
        }
        // As in Go, the list orders and restricts TLS 1.2 suites; TLS 1.3 suites are not configurable.
        let tls13: Vec<_> = provider
            .cipher_suites
            .iter()
            .filter(|s| s.version() == &rustls::version::TLS13)
            .copied()
            .collect();
        if chosen.is_empty() {
            versions.retain(|v| v.version != rustls::ProtocolVersion::TLSv1_2);
        }
        provider.cipher_suites = tls13.into_iter().chain(chosen).collect();
    }
    if let Some(names) = raw.curve_preferences.filter(|v| !v.is_empty()) {
        let mut groups = Vec::new();
        for name in &names {
            let group = match name.as_str() {
                "CurveP256" => NamedGroup::secp256r1,
                "CurveP384" => NamedGroup::secp384r1,
                "CurveP521" => NamedGroup::secp521r1,
                "X25519" => NamedGroup::X25519,
                _ => {
                    return Err(bad(
                        path,
                        &f("curve_preferences"),
                        format!("unknown curve: {name}"),
                    ));
                }
            };
            match provider.kx_groups.iter().find(|g| g.name() == group) {
                Some(g) => groups.push(*g),
                None => tracing::warn!(
                    file = %path.display(),
                    curve = %name,
                    "tls_server_config.curve_preferences: not offered by rustls; skipped"
                ),
            }
        }
        if groups.is_empty() {
            return Err(bad(
                path,
                &f("curve_preferences"),
                "none of the listed curves is offered by rustls (X25519, CurveP256, CurveP384)",
            ));
        }
        provider.kx_groups = groups;
    }
    let provider = Arc::new(provider);

    // Client certificates.
    let auth_name = nonempty(&raw.client_auth_type).unwrap_or_default();
    let auth = ClientAuth::parse(&auth_name).ok_or_else(|| {
        bad(
            path,
            &f("client_auth_type"),
            format!(
                "invalid ClientAuth: {auth_name} (NoClientCert, RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert)"
            ),
        )
    })?;
    let ca_pem = match (nonempty(&raw.client_ca_file), nonempty(&raw.client_ca)) {
        (Some(file), _) => {
            let (p, b) = read_pem(dir, &file).map_err(|e| bad(path, &f("client_ca_file"), e))?;
            Some(("client_ca_file", Some(p), b))
        }
        (None, Some(text)) => Some(("client_ca", None, text.into_bytes())),
        (None, None) => None,
    };
    let roots = match &ca_pem {
        None => None,
        Some((field, _, pem)) => {
            let mut store = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert =
                    cert.map_err(|e| bad(path, &f(field), format!("not a PEM certificate: {e}")))?;
                store
                    .add(cert)
                    .map_err(|e| bad(path, &f(field), format!("unusable CA certificate: {e}")))?;
            }
            if store.is_empty() {
                return Err(bad(path, &f(field), "no PEM certificate found"));
            }
            Some(Arc::new(store))
        }
    };
    if roots.is_some() && auth == ClientAuth::NoClientCert {
        return Err(bad(
            path,
            &f("client_auth_type"),
            "client CA's have been configured without a Client Auth Policy",
        ));
    }
    let sans = raw.client_allowed_sans.filter(|v| !v.is_empty());
    if sans.is_some()
        && !matches!(
            auth,
            ClientAuth::RequireAnyClientCert | ClientAuth::RequireAndVerifyClientCert
        )
    {
        return Err(bad(
            path,
            &f("client_allowed_sans"),
            "requires client_auth_type to be one of RequireAnyClientCert or RequireAndVerifyClientCert",
        ));
    }
    let algorithms = provider.signature_verification_algorithms;
    let verifier: Option<Arc<dyn ClientCertVerifier>> = match auth {
        ClientAuth::NoClientCert => None,
        ClientAuth::RequestClientCert | ClientAuth::RequireAnyClientCert => {
            Some(Arc::new(AnyCert {
                mandatory: auth == ClientAuth::RequireAnyClientCert,
                algorithms,
            }))
        }
        ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert => {
            let Some(roots) = roots else {
                return Err(bad(
                    path,
                    &f("client_ca_file"),
                    format!(
                        "client_auth_type {auth_name} needs the client CAs (client_ca_file or client_ca)"
                    ),
                ));
            };
            let mut b = WebPkiClientVerifier::builder_with_provider(roots, provider.clone());
            if auth == ClientAuth::VerifyClientCertIfGiven {
                b = b.allow_unauthenticated();
            }
            Some(
                b.build()
                    .map_err(|e| bad(path, &f("client_ca_file"), e.to_string()))?,
            )
        }
    };
    let verifier = match (verifier, sans) {
        (Some(inner), Some(allowed)) => {
            Some(Arc::new(SanCheck { inner, allowed }) as Arc<dyn ClientCertVerifier>)
        }
        (v, _) => v,
    };

    let builder = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|e| bad(path, "tls_server_config", e.to_string()))?;
    let builder = match verifier {
        None => builder.with_no_client_auth(),
        Some(v) => builder.with_client_cert_verifier(v),
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|e| {
        bad(
            path,
            &f(key_field),
            format!("does not fit the certificate: {e}"),
        )
    })?;
    config.ignore_client_order = raw.prefer_server_cipher_suites.unwrap_or(true);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((config, auth))
}

fn suite_name(s: &rustls::SupportedCipherSuite) -> String {
    format!("{:?}", s.suite())
}

/// `RequestClientCert` / `RequireAnyClientCert`: any certificate is taken, as long as the client
/// proves it holds the key.
#[derive(Debug)]
struct AnyCert {
    mandatory: bool,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// `client_allowed_sans`: after the inner verifier, one of the certificate's subject alternative
/// names (DNS, e-mail, IP address or URI) must be in the list.
#[derive(Debug)]
struct SanCheck {
    inner: Arc<dyn ClientCertVerifier>,
    allowed: Vec<String>,
}

/// The subject alternative names of a DER certificate, written as Go writes them.
pub fn subject_alt_names(der: &[u8]) -> Result<Vec<String>, String> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| format!("error parsing client certificate: {e}"))?;
    let mut out = Vec::new();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for name in &ext.value.general_names {
            match name {
                GeneralName::DNSName(s) | GeneralName::RFC822Name(s) | GeneralName::URI(s) => {
                    out.push(s.to_string())
                }
                GeneralName::IPAddress(b) => {
                    let ip: Option<std::net::IpAddr> = match b.len() {
                        4 => <[u8; 4]>::try_from(*b).ok().map(Into::into),
                        16 => <[u8; 16]>::try_from(*b).ok().map(Into::into),
                        _ => None,
                    };
                    if let Some(ip) = ip {
                        out.push(ip.to_string());
                    }
                }
                _ => {}
            }
        }
    }
    Ok(out)
}

impl ClientCertVerifier for SanCheck {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let ok = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        let names = subject_alt_names(end_entity).map_err(rustls::Error::General)?;
        if names.iter().any(|n| self.allowed.contains(n)) {
            Ok(ok)
        } else {
            Err(rustls::Error::General(format!(
                "could not find allowed SANs in client cert, found: {names:?}"
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// What a request's credentials amount to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Go on.
    Allowed,
    /// 401.
    Unauthorized,
    /// 429.
    RateLimited,
}

struct Bucket {
    tokens: f64,
    last: Instant,
}

/// The running web configuration and what outlives a request: the auth cache, the bcrypt lock,
/// the rate limiter's bucket.
pub struct Web {
    current: RwLock<Arc<WebConfig>>,
    /// Verified (user, hash, password) digests → result, least recently used dropped first.
    cache: Mutex<lru::LruCache<[u8; 32], bool>>,
    /// One bcrypt at a time, taken *before* a blocking thread is: a flood of wrong passwords
    /// waits here, in async tasks, instead of filling the blocking pool (which reqwest's DNS
    /// lookups share).
    bcrypt_slots: Arc<tokio::sync::Semaphore>,
    bcrypt_runs: std::sync::atomic::AtomicU64,
    bucket: Mutex<Bucket>,
}

impl std::fmt::Debug for Web {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Web")
            .field("current", &self.current())
            .finish_non_exhaustive()
    }
}

impl Web {
    /// Starts with `config`.
    pub fn new(config: WebConfig) -> Self {
        let burst = config.rate_limit.map_or(0, |(_, b)| b);
        Self {
            current: RwLock::new(Arc::new(config)),
            cache: Mutex::new(lru::LruCache::new(AUTH_CACHE_CAPACITY)),
            bcrypt_slots: Arc::new(tokio::sync::Semaphore::new(1)),
            bcrypt_runs: Default::default(),
            bucket: Mutex::new(Bucket {
                tokens: f64::from(burst),
                last: Instant::now(),
            }),
        }
    }

    /// How many bcrypt comparisons have run (the rest were answered from the cache).
    pub fn bcrypt_runs(&self) -> u64 {
        self.bcrypt_runs.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The configuration in force.
    pub fn current(&self) -> Arc<WebConfig> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Switches to `config` (a reload): later connections and requests use it.
    pub fn set(&self, config: WebConfig) {
        let burst = config.rate_limit.map_or(0, |(_, b)| b);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(config);
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).clear();
        *self.bucket.lock().unwrap_or_else(|p| p.into_inner()) = Bucket {
            tokens: f64::from(burst),
            last: Instant::now(),
        };
    }

    fn take_token(&self, interval: Duration, burst: u32) -> bool {
        let mut b = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let refill = now.duration_since(b.last).as_secs_f64() / interval.as_secs_f64();
        b.tokens = (b.tokens + refill).min(f64::from(burst));
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Whether a request to `path` with `headers` may go on under `config`.
    pub async fn check(&self, config: &WebConfig, path: &str, headers: &HeaderMap) -> Access {
        if let Some((interval, burst)) = config.rate_limit
            && !self.take_token(interval, burst)
        {
            return Access::RateLimited;
        }
        if config.users.is_empty() || UNAUTHENTICATED_PATHS.contains(&path) {
            return Access::Allowed;
        }
        let Some((user, password)) = basic_credentials(headers) else {
            return Access::Unauthorized;
        };
        let (hash, known) = match config.users.get(&user) {
            Some(h) => (h.clone(), true),
            // An unknown user costs the same bcrypt as a known one: no user enumeration by timing.
            None => (
                config.users.values().next().cloned().unwrap_or_default(),
                false,
            ),
        };
        let key = cache_key(&user, &hash, password.expose());
        let cached = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .copied();

        let ok = match cached {
            Some(ok) => ok,
            None => {
                // The semaphore is never closed.
                let Ok(slot) = self.bcrypt_slots.clone().acquire_owned().await else {
                    return Access::Unauthorized;
                };
                let again = self
                    .cache
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&key)
                    .copied();
                if let Some(ok) = again {
                    ok
                } else {
                    self.bcrypt_runs
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let ok = tokio::task::spawn_blocking(move || {
                        let _slot = slot;
                        bcrypt::verify(password.expose(), &hash).unwrap_or(false)
                    })
                    .await
                    .unwrap_or(false)
                        && known;
                    self.cache
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .put(key, ok);
                    ok
                }
            }
        };
        if ok && known {
            Access::Allowed
        } else {
            Access::Unauthorized
        }
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

/// SHA-256 of user, hash and password: the cache never holds a password.
fn cache_key(user: &str, hash: &str, password: &str) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for part in [user, hash, password] {
        ctx.update(&(part.len() as u64).to_be_bytes());
        ctx.update(part.as_bytes());
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// The user and password of an `Authorization: Basic` header.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, Secret)> {
    let value = headers.get(hyper::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), Secret::new(password)))
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

    #[test]
    fn basic_credentials_decode() {
        let mut h = HeaderMap::new();
        h.insert(
            hyper::header::AUTHORIZATION,
            HeaderValue::from_static("Basic YWxpY2U6czNjcjN0OngK"),
        );
        let (u, p) = basic_credentials(&h).unwrap();
        assert_eq!((u.as_str(), p.expose()), ("alice", "s3cr3t:x\n"));
        h.insert(
            hyper::header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc"),
        );
        assert!(basic_credentials(&h).is_none());
    }
}
