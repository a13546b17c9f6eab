//! The floor: exactly the work of one probe with the least machinery, as a server the bench
//! drives like the exporter. One thread (a current-thread runtime), raw HTTP/1.1 over tokio
//! sockets, no client library: for `GET /probe?target=pbx-N` it makes the same six requests the
//! exporter's default collectors make (`call/query` inbound and outbound, `extension/query_call`,
//! `trunk/list`, `extension/list`, `deviceinfo/query`), each over a new connection (the PBX closes
//! every connection), reads each answer whole, parses it into `serde_json::Value`, and writes a
//! text page of comparable content: calls merged by callid, members by kind and status, trunk legs,
//! trunks, extensions by status, the device. Each target logs in once (the warm-up does it).
//!
//! Started by the bench as a copy of its own process (`FLOOR_LISTEN`, `FLOOR_TARGETS`, and
//! `FLOOR_TLS_CERT` for HTTPS: the PBXes' certificate, trusted byte for byte, with a session
//! cache holding every PBX), so its CPU and memory are measured exactly as the exporter's are.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::rc::Rc;

use std::sync::Arc;

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls;

const API: &str = "/api/v2.0.0";

/// Runs the floor server until killed: `listen` is `127.0.0.1:PORT`, `targets` the PBXes'
/// `host:port`, `password_md5` the API password's MD5.
pub fn serve(
    listen: &str,
    targets: Vec<String>,
    password_md5: String,
    tls_cert: Option<Vec<u8>>,
) -> ! {
    let tls = tls_cert.map(|der| {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Exactly(der, provider)))
            .with_no_client_auth();
        config.resumption = rustls::client::Resumption::in_memory_sessions(targets.len() * 8);
        tokio_rustls::TlsConnector::from(Arc::new(config))
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let listener = TcpListener::bind(listen).await.unwrap();
        let state = Rc::new(Floor {
            targets,
            password_md5,
            tokens: RefCell::new(HashMap::new()),
            tls,
        });
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let state = state.clone();
            tokio::task::spawn_local(async move {
                let _ = state.connection(stream).await;
            });
        }
    });
    unreachable!()
}

struct Floor {
    targets: Vec<String>,
    password_md5: String,
    tokens: RefCell<HashMap<usize, String>>,
    tls: Option<tokio_rustls::TlsConnector>,
}

impl Floor {
    /// One client connection, keep-alive: a request head, an answer, and so on.
    async fn connection(&self, mut stream: TcpStream) -> std::io::Result<()> {
        let mut buf = Vec::with_capacity(1024);
        loop {
            let end = loop {
                if let Some(i) = find(&buf, b"\r\n\r\n") {
                    break i + 4;
                }
                let mut chunk = [0u8; 1024];
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    return Ok(());
                }
                buf.extend_from_slice(&chunk[..n]);
            };
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            buf.drain(..end);
            let path = head.split_whitespace().nth(1).unwrap_or("/");
            let (status, body) = match path
                .strip_prefix("/probe?target=pbx-")
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|n| *n < self.targets.len())
            {
                Some(n) => match self.probe(n).await {
                    Ok(text) => ("200 OK", text),
                    Err(e) => ("200 OK", format!("yeastar_up 0\n# {e}\n")),
                },
                None if path == "/-/ready" => ("200 OK", "ready\n".to_string()),
                None => ("404 Not Found", String::new()),
            };
            let answer = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(answer.as_bytes()).await?;
        }
    }

    /// The six exchanges of one probe and its text.
    async fn probe(&self, n: usize) -> Result<String, String> {
        let addr = &self.targets[n];
        let known = self.tokens.borrow().get(&n).cloned();
        let token = if let Some(t) = known {
            t
        } else {
            let body = format!(
                r#"{{"username":"api","password":"{}","version":"2.0.0"}}"#,
                self.password_md5
            );
            let answer = exchange(&self.tls, addr, "login", None, &body).await?;
            let t = answer["token"]
                .as_str()
                .ok_or("login without token")?
                .to_string();
            self.tokens.borrow_mut().insert(n, t.clone());
            t
        };
        let t = Some(token.as_str());
        let inbound = exchange(&self.tls, addr, "call/query", t, r#"{"type":"inbound"}"#).await?;
        let outbound = exchange(&self.tls, addr, "call/query", t, r#"{"type":"outbound"}"#).await?;
        let internal = exchange(
            &self.tls,
            addr,
            "extension/query_call",
            t,
            r#"{"number":"all"}"#,
        )
        .await?;
        let trunks = exchange(&self.tls, addr, "trunk/list", t, "{}").await?;
        let extensions = exchange(&self.tls, addr, "extension/list", t, "{}").await?;
        let device = exchange(&self.tls, addr, "deviceinfo/query", t, "{}").await?;

        // Calls merged by callid; members by (kind, status); trunk legs.
        let mut calls: HashSet<String> = HashSet::new();
        let mut members: BTreeMap<(String, String), u64> = BTreeMap::new();
        let mut legs: BTreeMap<(String, &'static str), u64> = BTreeMap::new();
        let lists = [&inbound["calls"], &outbound["calls"]];
        let mut add = |call: &Value| {
            let id = call["callid"].as_str().unwrap_or_default().to_string();
            if !calls.insert(id) {
                return;
            }
            for m in call["members"].as_array().into_iter().flatten() {
                if let Some((kind, info)) = m.as_object().and_then(|o| o.iter().next()) {
                    let status = info["memberstatus"].as_str().unwrap_or("OTHER").to_string();
                    *members.entry((kind.clone(), status)).or_default() += 1;
                    if let Some(trunk) = info["trunkname"].as_str() {
                        let dir = if kind == "inbound" {
                            "inbound"
                        } else {
                            "outbound"
                        };
                        *legs.entry((trunk.to_string(), dir)).or_default() += 1;
                    }
                }
            }
        };
        for list in lists {
            for call in list.as_array().into_iter().flatten() {
                add(call);
            }
        }
        for ext in internal["calllist"].as_array().into_iter().flatten() {
            for call in ext["numbercalls"].as_array().into_iter().flatten() {
                add(call);
            }
        }
        let mut text = String::with_capacity(8 << 10);
        text.push_str("# TYPE yeastar_up gauge\nyeastar_up 1\n");
        let _ = writeln!(text, "yeastar_active_calls {}", calls.len());
        for ((kind, status), v) in &members {
            let _ = writeln!(
                text,
                "yeastar_call_members{{member=\"{kind}\",status=\"{status}\"}} {v}"
            );
        }
        for ((trunk, dir), v) in &legs {
            let _ = writeln!(
                text,
                "yeastar_trunk_active_calls{{trunk=\"{trunk}\",direction=\"{dir}\"}} {v}"
            );
        }
        for t in trunks["trunklist"].as_array().into_iter().flatten() {
            let _ = writeln!(
                text,
                "yeastar_trunk_up{{trunk=\"{}\",type=\"{}\",status=\"{}\"}} 1",
                t["trunkname"].as_str().unwrap_or_default(),
                t["type"].as_str().unwrap_or_default(),
                t["status"].as_str().unwrap_or_default()
            );
        }
        let mut by_status: BTreeMap<String, u64> = BTreeMap::new();
        for e in extensions["extlist"].as_array().into_iter().flatten() {
            let s = e["status"].as_str().unwrap_or("other").to_ascii_lowercase();
            *by_status.entry(s).or_default() += 1;
        }
        for (s, v) in &by_status {
            let _ = writeln!(text, "yeastar_extensions{{status=\"{s}\"}} {v}");
        }
        let d = &device["deviceinfo"];
        let _ = writeln!(
            text,
            "yeastar_device_info{{model=\"{}\",firmware=\"{}\"}} 1",
            d["devicename"].as_str().unwrap_or_default(),
            d["firmwarever"].as_str().unwrap_or_default()
        );
        Ok(text)
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// One POST over a new connection (TLS when `tls`); the answer's JSON.
async fn exchange(
    tls: &Option<tokio_rustls::TlsConnector>,
    addr: &str,
    endpoint: &str,
    token: Option<&str>,
    body: &str,
) -> Result<Value, String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    match tls {
        None => exchange_on(tcp, addr, endpoint, token, body).await,
        Some(c) => {
            let ip: std::net::IpAddr = addr.rsplit_once(':').unwrap().0.parse().unwrap();
            let s = c
                .connect(rustls::pki_types::ServerName::IpAddress(ip.into()), tcp)
                .await
                .map_err(|e| e.to_string())?;
            exchange_on(s, addr, endpoint, token, body).await
        }
    }
}

async fn exchange_on<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    addr: &str,
    endpoint: &str,
    token: Option<&str>,
    body: &str,
) -> Result<Value, String> {
    let query = token.map(|t| format!("?token={t}")).unwrap_or_default();
    let req = format!(
        "POST {API}/{endpoint}{query} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut answer = Vec::with_capacity(16 << 10);
    s.read_to_end(&mut answer)
        .await
        .map_err(|e| e.to_string())?;
    let end = find(&answer, b"\r\n\r\n").ok_or("no head")? + 4;
    let head = String::from_utf8_lossy(&answer[..end]).to_ascii_lowercase();
    let body = if head.contains("transfer-encoding: chunked") {
        dechunk(&answer[end..])?
    } else {
        answer[end..].to_vec()
    };
    serde_json::from_slice(&body).map_err(|e| format!("{endpoint}: {e}"))
}

fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(rest.len());
    loop {
        let line = find(rest, b"\r\n").ok_or("bad chunk")?;
        let size = usize::from_str_radix(
            std::str::from_utf8(&rest[..line])
                .map_err(|e| e.to_string())?
                .trim(),
            16,
        )
        .map_err(|e| e.to_string())?;
        rest = &rest[line + 2..];
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

/// Trusts exactly one certificate (the PBXes' self-signed one), whatever name it is used for.
#[derive(Debug)]
struct Exactly(Vec<u8>, Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for Exactly {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.0.as_slice() {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General("not the pinned certificate".into()))
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.1.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.1.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.1.signature_verification_algorithms.supported_schemes()
    }
}
