//! TLS towards the PBX: the system's roots, the CA file, and pinned self-signed certificates.
//!
//! Real units carry a self-signed certificate, often marked `CA:TRUE` (what `openssl req -x509`
//! makes) and issued for a name or address the exporter does not use. WebPKI refuses such a
//! certificate even when it is in the trust store ("CA used as end entity"). So a certificate in
//! `ca_file` that is *exactly* the one the PBX presents is trusted as such — pinned, byte for byte,
//! whatever its basic constraints or names say; every other certificate goes through the ordinary
//! WebPKI checks against the system's roots plus the CA file. Signatures of the handshake itself
//! are always verified, pinned or not.

use std::path::Path;
use std::sync::Arc;

use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ClientConfig, WebPkiServerVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

use super::{BuildError, HttpSettings};
use crate::support::report::Cause;

/// The certificates of a PEM file.
pub fn read_pem(path: &Path) -> Result<Vec<CertificateDer<'static>>, BuildError> {
    use rustls::pki_types::pem::PemObject;
    let ca_error = |cause: Cause| BuildError::CaFile {
        path: path.to_path_buf(),
        cause,
    };
    let pem = std::fs::read(path).map_err(|e| ca_error(Cause::new(e)))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            ca_error(Cause::words(format!(
                "not a PEM certificate file: {}",
                crate::support::report::chain(&e)
            )))
        })?;
    if certs.is_empty() {
        return Err(ca_error(Cause::words("no PEM certificate in the file")));
    }
    Ok(certs)
}

/// The system's CA roots, read once per process (as Go reads its system pool): a reload that
/// builds new clients does not read and parse the whole store again.
fn system_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: std::sync::OnceLock<Vec<CertificateDer<'static>>> = std::sync::OnceLock::new();
    ROOTS.get_or_init(|| rustls_native_certs::load_native_certs().certs)
}

/// TLS 1.3 tickets kept per PBX. Each connection takes one and the server sends new ones after
/// the handshake (2 by default in rustls and OpenSSL), so with one request in flight per PBX (the
/// default `max_concurrent_requests`) 2 would do; 4 covers up to 4 requests in flight at once.
/// rustls's own cache keeps 8, each with its copy of the server's certificate chain: about 8 KiB
/// per PBX at fleet scale.
const TICKETS_PER_SERVER: usize = 4;

/// The rustls client configuration for `servers` PBXes with these settings. Its session cache
/// holds every one of them (rustls's default remembers 32 servers: a fleet beyond that would
/// make every connection a full handshake).
pub fn client_config(settings: &HttpSettings, servers: usize) -> Result<ClientConfig, BuildError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| BuildError::Http(Cause::new(e)))?;
    let verifier: Arc<dyn ServerCertVerifier> = if settings.insecure_skip_verify {
        Arc::new(AnyCertificate(provider))
    } else {
        let mut roots = rustls::RootCertStore::empty();
        // The system's roots: a host-installed CA is trusted. Unreadable ones are skipped, as
        // every TLS client does.
        roots.add_parsable_certificates(system_roots().iter().cloned());
        let pinned = match &settings.ca_file {
            Some(path) => {
                let certs = read_pem(path)?;
                roots.add_parsable_certificates(certs.iter().cloned());
                certs
            }
            None => Vec::new(),
        };
        if roots.is_empty() {
            return Err(BuildError::Http(Cause::words(
                "no trusted certificate: the system has no CA roots and no ca_file is set",
            )));
        }
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| BuildError::Http(Cause::new(e)))?;
        Arc::new(Pinning { pinned, webpki })
    };
    let mut config = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.resumption = rustls::client::Resumption::store(Arc::new(SessionStore::new(servers)));
    Ok(config)
}

/// A configuration for [`super::transport::HttpClient::plain`]: it trusts nothing (that client
/// refuses `https://` before connecting; reqwest needs a TLS configuration all the same, and this
/// one reads no root store).
pub fn no_roots_config() -> Result<ClientConfig, BuildError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| BuildError::Http(Cause::new(e)))?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The configuration of the client hello the transport sends to learn whether a port speaks TLS
/// (after an exchange failed on that question): it never gets as far as a certificate.
pub(super) fn hello_config() -> Option<Arc<ClientConfig>> {
    static CONFIG: std::sync::OnceLock<Option<Arc<ClientConfig>>> = std::sync::OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .ok()?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
                .with_no_client_auth();
            Some(Arc::new(config))
        })
        .clone()
}

/// The TLS sessions kept for resumption: the last `servers` PBXes used, each with its key-exchange
/// hint, its TLS 1.2 session and at most [`TICKETS_PER_SERVER`] TLS 1.3 tickets (the oldest
/// dropped first).
struct SessionStore {
    servers: std::sync::Mutex<lru::LruCache<ServerName<'static>, Sessions>>,
}

#[derive(Default)]
struct Sessions {
    kx_hint: Option<rustls::NamedGroup>,
    tls12: Option<rustls::client::Tls12ClientSessionValue>,
    tls13: std::collections::VecDeque<rustls::client::Tls13ClientSessionValue>,
}

impl SessionStore {
    fn new(servers: usize) -> Self {
        let servers =
            std::num::NonZeroUsize::new(servers.max(1)).unwrap_or(std::num::NonZeroUsize::MIN);
        Self {
            servers: std::sync::Mutex::new(lru::LruCache::new(servers)),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut lru::LruCache<ServerName<'static>, Sessions>) -> T) -> T {
        f(&mut super::lock(&self.servers))
    }
}

impl std::fmt::Debug for SessionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionStore")
            .field("servers", &self.with(|s| s.len()))
            .finish()
    }
}

impl rustls::client::ClientSessionStore for SessionStore {
    fn set_kx_hint(&self, server_name: ServerName<'static>, group: rustls::NamedGroup) {
        self.with(|s| s.get_or_insert_mut(server_name, Sessions::default).kx_hint = Some(group));
    }

    fn kx_hint(&self, server_name: &ServerName<'_>) -> Option<rustls::NamedGroup> {
        self.with(|s| s.get(&server_name.to_owned()).and_then(|d| d.kx_hint))
    }

    fn set_tls12_session(
        &self,
        server_name: ServerName<'static>,
        value: rustls::client::Tls12ClientSessionValue,
    ) {
        self.with(|s| s.get_or_insert_mut(server_name, Sessions::default).tls12 = Some(value));
    }

    fn tls12_session(
        &self,
        server_name: &ServerName<'_>,
    ) -> Option<rustls::client::Tls12ClientSessionValue> {
        self.with(|s| s.get(&server_name.to_owned()).and_then(|d| d.tls12.clone()))
    }

    fn remove_tls12_session(&self, server_name: &ServerName<'static>) {
        self.with(|s| {
            if let Some(d) = s.peek_mut(server_name) {
                d.tls12 = None;
            }
        });
    }

    fn insert_tls13_ticket(
        &self,
        server_name: ServerName<'static>,
        value: rustls::client::Tls13ClientSessionValue,
    ) {
        self.with(|s| {
            let tickets = &mut s.get_or_insert_mut(server_name, Sessions::default).tls13;
            if tickets.len() >= TICKETS_PER_SERVER {
                tickets.pop_front();
            }
            tickets.push_back(value);
        });
    }

    fn take_tls13_ticket(
        &self,
        server_name: &ServerName<'static>,
    ) -> Option<rustls::client::Tls13ClientSessionValue> {
        self.with(|s| s.peek_mut(server_name).and_then(|d| d.tls13.pop_back()))
    }
}

/// Trusts a certificate of the CA file presented as is; everything else by WebPKI.
#[derive(Debug)]
struct Pinning {
    pinned: Vec<CertificateDer<'static>>,
    webpki: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for Pinning {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self
            .pinned
            .iter()
            .any(|p| p.as_ref() == end_entity.as_ref())
        {
            return Ok(ServerCertVerified::assertion());
        }
        self.webpki
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// `insecure_skip_verify`: any certificate, but the handshake's signatures are still checked (the
/// peer holds the key of the certificate it shows).
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Names (DNS SANs, IP SANs, CN) a certificate lists, lower-cased.
fn names_of(der: &[u8]) -> Vec<String> {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return Vec::new();
    };
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                x509_parser::extensions::GeneralName::DNSName(d) => {
                    names.push(d.to_ascii_lowercase())
                }
                x509_parser::extensions::GeneralName::IPAddress(ip) => match ip.len() {
                    4 => names.push(
                        std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*ip).unwrap_or_default())
                            .to_string(),
                    ),
                    16 => names.push(
                        std::net::Ipv6Addr::from(<[u8; 16]>::try_from(*ip).unwrap_or_default())
                            .to_string(),
                    ),
                    _ => {}
                },
                _ => {}
            }
        }
    }
    for cn in cert.subject().iter_common_name() {
        if let Ok(s) = cn.as_str() {
            names.push(s.to_ascii_lowercase());
        }
    }
    names
}

/// When no certificate of `ca_file` lists `host`: a warning for the start-up log (a pinned
/// certificate is still trusted; an ordinary CA-signed one would be refused for the name).
pub fn name_warning(ca_file: &Path, host: &str) -> Option<String> {
    let certs = read_pem(ca_file).ok()?;
    let host = host.to_ascii_lowercase();
    let matches = |name: &str| {
        name == host
            || name
                .strip_prefix("*.")
                .is_some_and(|rest| host.split_once('.').is_some_and(|(_, h)| h == rest))
    };
    let all: Vec<String> = certs.iter().flat_map(|c| names_of(c)).collect();
    if all.iter().any(|n| matches(n)) {
        return None;
    }
    Some(format!(
        "no certificate in {} lists {host} (it lists: {}); the PBX is still trusted if it presents exactly one of these certificates (pinned), but not one merely signed by them",
        ca_file.display(),
        if all.is_empty() {
            "no names".to_string()
        } else {
            super::error::clip(&all.join(", "), 200)
        }
    ))
}
