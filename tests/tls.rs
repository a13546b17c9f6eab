//! HTTPS PBXes: a CA file, insecure mode, and a certificate nobody vouches for.

mod common;

use std::sync::Arc;

use common::*;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use yeastar_exporter::clock::ManualClock;

const EMPTY: &str = r#"{"Calls":[],"status":"Success"}"#;

/// A CA and a certificate it signed for 127.0.0.1: (CA PEM, server config).
fn pki(ca_name: &str) -> (String, Arc<ServerConfig>) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, ca_name);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    (ca.pem(), Arc::new(config))
}

async fn https_pbx(config: Arc<ServerConfig>) -> FakePbx {
    let pbx = FakePbx::start_tls(TlsAcceptor::from(config)).await;
    pbx.json("call/query:inbound", &fixture("seed-example2-inbound.json"));
    pbx.json("call/query:outbound", EMPTY);
    pbx
}

fn ca_file(pem: &str, name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("yeastar-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, pem).unwrap();
    path
}

async fn scrape(url: &str, extra: &[&str]) -> String {
    let exporter = Running::start(config(url, extra), ManualClock::new(1_571_639_500)).await;
    let text = exporter.scrape().await;
    exporter.stop().await;
    text
}

#[tokio::test]
async fn a_pbx_certificate_signed_by_the_ca_file_is_trusted() {
    let (ca_pem, server) = pki("site CA");
    let pbx = https_pbx(server).await;
    let ca = ca_file(&ca_pem, "site-ca.pem");
    let text = scrape(&pbx.https_url(), &["--pbx.ca-file", ca.to_str().unwrap()]).await;
    assert_eq!(must(&text, "yeastar_up"), 1.0);
    assert_eq!(
        must(&text, r#"yeastar_active_calls{direction="inbound"}"#),
        2.0
    );
}

#[tokio::test]
async fn an_unknown_certificate_is_refused_without_sending_the_password() {
    let (_, server) = pki("site CA");
    let (other_pem, _) = pki("another CA");
    let pbx = https_pbx(server).await;
    let other = ca_file(&other_pem, "other-ca.pem");
    for extra in [vec![], vec!["--pbx.ca-file", other.to_str().unwrap()]] {
        let text = scrape(&pbx.https_url(), &extra).await;
        assert_eq!(must(&text, "yeastar_up"), 0.0);
        assert_eq!(requests(&text, "login", "connect_error"), 1.0);
    }
    // The handshake failed: the login request never reached the PBX.
    assert_eq!(pbx.count("login"), 0);
}

#[tokio::test]
async fn insecure_mode_accepts_any_certificate() {
    let (_, server) = pki("site CA");
    let pbx = https_pbx(server).await;
    let text = scrape(&pbx.https_url(), &["--pbx.insecure-skip-verify"]).await;
    assert_eq!(must(&text, "yeastar_up"), 1.0);
}
