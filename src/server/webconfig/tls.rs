//! The web configuration's TLS: a rustls server configuration from `tls_server_config` (versions,
//! cipher suites by their Go names, curves, client certificate modes).

use super::*;

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

/// Reads `file` (relative to `dir`) for `field` of the web config at `config`.
fn read_pem(
    config: &Path,
    field: &str,
    dir: &Path,
    file: &str,
) -> Result<(PathBuf, Vec<u8>), WebConfigError> {
    let p = dir.join(file);
    match std::fs::read(&p) {
        Ok(b) => Ok((p, b)),
        Err(e) => Err(WebConfigError::Read {
            field: format!("{FLAG}: {}: {field}", config.display()),
            path: p,
            cause: Cause::new(e),
        }),
    }
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

pub(super) fn build_tls(
    raw: RawTls,
    dir: &Path,
    path: &Path,
) -> Result<(ServerConfig, ClientAuth), WebConfigError> {
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
            let (_, b) = read_pem(path, &f("cert_file"), dir, &file)?;
            ("cert_file", b)
        }
        (None, text) => ("cert", text.unwrap_or_default().into_bytes()),
    };
    let (key_field, key_pem) = match (
        nonempty(&raw.key_file),
        raw.key.as_ref().filter(|k| !k.expose().is_empty()),
    ) {
        (Some(file), _) => {
            let (_, b) = read_pem(path, &f("key_file"), dir, &file)?;
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
        .map_err(|e| unusable(path, &f(cert_field), "not a PEM certificate", e))?;
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
            let (p, b) = read_pem(path, &f("client_ca_file"), dir, &file)?;
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
                    cert.map_err(|e| unusable(path, &f(field), "not a PEM certificate", e))?;
                store
                    .add(cert)
                    .map_err(|e| unusable(path, &f(field), "unusable CA certificate", e))?;
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
                    .map_err(|e| unusable(path, &f("client_ca_file"), "unusable", e))?,
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
        .map_err(|e| unusable(path, "tls_server_config", "unusable", e))?;
    let builder = match verifier {
        None => builder.with_no_client_auth(),
        Some(v) => builder.with_client_cert_verifier(v),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| unusable(path, &f(key_field), "does not fit the certificate", e))?;
    config.ignore_client_order = raw.prefer_server_cipher_suites.unwrap_or(true);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((config, auth))
}

fn suite_name(s: &rustls::SupportedCipherSuite) -> String {
    format!("{:?}", s.suite())
}
