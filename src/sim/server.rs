//! The simulator's HTTP server: the listener (plain or TLS, counting full and resumed handshakes),
//! one request per connection answered as the PBX answers it (the S-Series through its Boa
//! server; the P-Series OpenAPI by `p_series`), and the [`Faults`](super::Faults) applied on the
//! wire to either API (latency, redirects, closed connections, HTTP 500s, errors, padding, cut
//! answers).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;

use super::p_series::{self, Request as PSeriesRequest};
use super::s_series::{Answer, failed};
use super::{SimApi, SimConfig, SimHandle, Simulator, lock};
use crate::support::clock::SharedClock;

/// A rustls server configuration for the simulator from a PEM certificate chain and key, with
/// stateless session tickets (so any number of simulators resume without shared state).
pub fn tls_server_config(
    cert_pem: &[u8],
    key_pem: &[u8],
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_slice_iter(cert_pem).collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_slice(key_pem)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.ticketer = rustls::crypto::ring::Ticketer::new()?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

impl Simulator {
    /// Binds `listener` and serves until the task is dropped or aborted.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) {
        self.serve_with(listener, None).await
    }

    /// Serves the API on `listener`, over TLS when `tls` is given.
    pub async fn serve_with(
        self: Arc<Self>,
        listener: TcpListener,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) {
        if let Ok(local) = listener.local_addr()
            && !local.ip().is_unspecified()
        {
            *lock(&self.own_ip) = Some(local.ip());
        }
        let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
        let _stop_pump = self.spawn_pump();
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(x) => x,
                Err(e) => {
                    tracing::debug!(error = %e, "simulator accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            let sim = self.clone();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let svc = {
                    let sim = sim.clone();
                    service_fn(move |req| {
                        let sim = sim.clone();
                        async move { sim.handle(req, peer.ip()).await }
                    })
                };
                let http = http1::Builder::new().keep_alive(false).clone();
                match acceptor {
                    None => {
                        let _ = http.serve_connection(TokioIo::new(stream), svc).await;
                    }
                    Some(acceptor) => {
                        let Ok(tls) = acceptor.accept(stream).await else {
                            return;
                        };
                        let resumed = tls.get_ref().1.handshake_kind()
                            == Some(rustls::HandshakeKind::Resumed);
                        lock(&sim.counters).handshakes[usize::from(resumed)] += 1;
                        let _ = http.serve_connection(TokioIo::new(tls), svc).await;
                    }
                }
            });
        }
    }

    /// Starts a simulator on `addr` (e.g. `127.0.0.1:0`) in a background task.
    pub async fn start(
        cfg: SimConfig,
        clock: SharedClock,
        addr: &str,
    ) -> std::io::Result<SimHandle> {
        Self::start_with(cfg, clock, addr, None).await
    }

    /// [`Simulator::start`], serving HTTPS with `tls` when given.
    pub async fn start_with(
        cfg: SimConfig,
        clock: SharedClock,
        addr: &str,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> std::io::Result<SimHandle> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let sim = Simulator::new(cfg, clock);
        let https = tls.is_some();
        tokio::spawn(sim.clone().serve_with(listener, tls));
        Ok(SimHandle { addr, sim, https })
    }

    /// TLS handshakes completed: (full, resumed).
    pub fn handshakes(&self) -> (u64, u64) {
        let h = lock(&self.counters).handshakes;
        (h[0], h[1])
    }

    /// Answers one request; `Err` makes hyper drop the connection without an answer.
    async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        peer: IpAddr,
    ) -> Result<Response<Full<Bytes>>, CloseWithoutAnswer> {
        let faults = lock(&self.cfg).faults.clone();
        if !faults.latency.is_zero() {
            tokio::time::sleep(faults.latency).await;
        }
        let (api, api_path) = {
            let cfg = lock(&self.cfg);
            (cfg.api, cfg.path().to_string())
        };
        let path = req.uri().path().to_string();
        let query = req.uri().query().unwrap_or("").to_string();
        let method = req.method().clone();
        let user_agent = req
            .headers()
            .get(hyper::header::USER_AGENT)
            .is_some_and(|v| !v.as_bytes().iter().all(u8::is_ascii_whitespace));
        let body = match req.into_body().collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => Bytes::new(),
        };
        let endpoint = path
            .strip_prefix(api_path.trim_end_matches('/'))
            .and_then(|p| p.strip_prefix('/'))
            .unwrap_or("")
            .to_string();
        let parsed: Option<Value> = serde_json::from_slice(&body).ok();
        let key = match (
            api,
            &endpoint[..],
            parsed
                .as_ref()
                .and_then(|v| v.get("type"))
                .and_then(Value::as_str),
        ) {
            (SimApi::PSeries, ..) => p_series::count_key(&endpoint, &query),
            (SimApi::SSeries, "call/query", Some(t)) => format!("call/query:{t}"),
            (SimApi::SSeries, ..) => endpoint.clone(),
        };
        self.count(key);
        if let Some(to) = &faults.redirect_to {
            let mut r = respond(api, StatusCode::TEMPORARY_REDIRECT, Bytes::new());
            if let Ok(v) = hyper::header::HeaderValue::from_str(to) {
                r.headers_mut().insert(hyper::header::LOCATION, v);
            }
            return Ok(r);
        }
        if self.roll(faults.close_rate) {
            return Err(CloseWithoutAnswer);
        }
        if self.roll(faults.http500_rate) {
            return Ok(respond(
                api,
                StatusCode::INTERNAL_SERVER_ERROR,
                Bytes::from_static(b"<html>500 Internal Server Error</html>"),
            ));
        }
        let mut bytes = match api {
            SimApi::SSeries => {
                let answer: Answer = if method != Method::POST {
                    failed("20001")
                } else if let Some(v) = parsed.filter(Value::is_object) {
                    if self.roll(faults.error_rate) {
                        failed("30003")
                    } else if faults.unsupported.contains(&endpoint) {
                        failed("10003")
                    } else {
                        self.answer(&endpoint, &query, &v, peer)
                    }
                } else {
                    failed("20000")
                };
                answer.into_bytes()
            }
            SimApi::PSeries => self.p_series_answer(
                &PSeriesRequest {
                    method: &method,
                    endpoint: &endpoint,
                    query: &query,
                    body: parsed.as_ref(),
                    user_agent,
                    peer,
                },
                &faults,
            ),
        };
        if faults.pad_bytes > 0 {
            bytes.extend(std::iter::repeat_n(b' ', faults.pad_bytes));
        }
        if self.roll(faults.malformed_rate) {
            bytes.truncate(bytes.len() / 2);
        }
        Ok(respond(api, StatusCode::OK, Bytes::from(bytes)))
    }
}

/// An answer with the headers of `api`'s web server (the P-Series one's `Server` is not
/// documented: none).
fn respond(api: SimApi, status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    if api == SimApi::SSeries {
        h.insert(
            "Server",
            hyper::header::HeaderValue::from_static("Boa/0.94.14rc21"),
        );
    }
    h.insert(
        "Accept-Ranges",
        hyper::header::HeaderValue::from_static("bytes"),
    );
    h.insert(
        "Connection",
        hyper::header::HeaderValue::from_static("close"),
    );
    h.insert(
        "Content-Type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    h.insert(
        "Access-control-allow-origin",
        hyper::header::HeaderValue::from_static("*"),
    );
    h.insert(
        "Access-control-allow-methods",
        hyper::header::HeaderValue::from_static("GET, POST, OPTIONS, PUT, DELETE"),
    );
    resp
}

/// The service's error for the close fault: hyper ends the connection without writing an answer.
#[derive(Debug)]
pub struct CloseWithoutAnswer;

impl std::fmt::Display for CloseWithoutAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("fault: connection closed without an answer")
    }
}

impl std::error::Error for CloseWithoutAnswer {}
