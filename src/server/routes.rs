//! The exporter's HTTP server: `/`, the metrics path, `/probe`, `/sd`, `/-/healthy`, `/-/ready`.
//!
//! Routes turn requests into calls on [`crate::exporter::App`] and [`Target`] and their
//! answers into responses. A failed PBX is data (`yeastar_up 0`, HTTP 200); only a caller's own
//! mistake (unknown or missing target) is a 4xx. Each scrape's deadline comes from Prometheus's
//! `X-Prometheus-Scrape-Timeout-Seconds` minus `--web.timeout-offset` (the target's timeout without
//! the header); the PBX work itself is bound by the target's timeout.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::{Body, Incoming};
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue, WWW_AUTHENTICATE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use std::net::SocketAddr;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use super::Server;
use super::conn::WriteTimeout;
use super::guard::Access;
use crate::collector::Target;
use crate::exporter::Current;

/// The documentation the landing page links to, served from the binary (`/docs/NAME`): the
/// same text as the source tree's `README.md` and `docs/`, whatever version is running.
const DOCS: &[(&str, &str, &str)] = &[
    (
        "README.md",
        include_str!("../../README.md"),
        "install, connect a PBX, multi-target, alerts, troubleshooting",
    ),
    (
        "metrics.md",
        include_str!("../../docs/metrics.md"),
        "every metric and collector",
    ),
    (
        "configuration.md",
        include_str!("../../docs/configuration.md"),
        "every flag and config-file field",
    ),
    (
        "security.md",
        include_str!("../../docs/security.md"),
        "TLS, basic auth, secrets",
    ),
    (
        "events.md",
        include_str!("../../docs/events.md"),
        "the PBX's event reports",
    ),
    (
        "safety.md",
        include_str!("../../docs/safety.md"),
        "logins and the PBX's lockout",
    ),
];

/// The text exposition format's content type.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How long in-flight requests may run on after shutdown begins.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Largest request head (request line and headers) accepted; hyper answers 431 beyond it.
const MAX_REQUEST_HEAD: usize = 16 * 1024;

/// Serves `server` on `listener` until `shutdown` resolves, then stops accepting and lets in-flight
/// requests finish (at most [`SHUTDOWN_GRACE`]).
///
/// At most `--web.max-connections` connections are open at once (further clients wait in the
/// listen queue); each must send its request head, and finish its TLS handshake, within
/// `--web.header-read-timeout`. Whether a connection speaks TLS is decided when it is accepted, from
/// the web configuration in force then.
pub async fn serve(
    listener: TcpListener,
    server: Arc<Server>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    serve_all(vec![listener], server, shutdown).await
}

/// [`serve`] on every listener at once (repeated `--web.listen-address`, or the sockets systemd
/// passed): one server, one connection cap, the same endpoints on each.
pub async fn serve_all(
    listeners: Vec<TcpListener>,
    server: Arc<Server>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    let limit = Arc::new(Semaphore::new(server.app.settings().max_connections));
    server.app.set_ready();
    loop {
        // Whichever listener has a connection first (each registers its waker every time).
        let accept = std::future::poll_fn(|cx| {
            for l in &listeners {
                if let std::task::Poll::Ready(r) = l.poll_accept(cx) {
                    return std::task::Poll::Ready(r);
                }
            }
            std::task::Poll::Pending
        });
        let (stream, peer) = tokio::select! {
            accepted = accept => match accepted {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let permit = match limit.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                // At the cap: the connection that has waited longest for a request head makes
                // room (a slowloris or idle client, never one being served); if every one is
                // being served, wait for one to finish.
                server.connections.evict_oldest_idle();
                tokio::select! {
                    p = limit.clone().acquire_owned() => p.expect("the semaphore is never closed"),
                    _ = &mut shutdown => break,
                }
            }
        };
        let entry = server.connections.register();
        let server = server.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            connection(server, stream, peer, watcher, entry).await;
            drop(permit);
        });
    }
    drop(listeners);
    tracing::info!("shutting down: no new connections; waiting for in-flight scrapes");
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("in-flight requests still running after the grace period; closing them");
    }
    Ok(())
}

/// What a plain-HTTP client gets from the TLS port (Go's servers say the same).
const PLAIN_HTTP_TO_TLS: &[u8] = b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";

async fn connection(
    server: Arc<Server>,
    stream: TcpStream,
    peer: SocketAddr,
    watcher: Watcher,
    entry: super::conn::Entry,
) {
    let settings = server.app.settings();
    let timeout = settings.header_read_timeout;
    let write_timeout = settings.write_timeout;
    let tls = server.web.current().tls().cloned();
    let conn = entry.conn.clone();
    let svc = {
        let server = server.clone();
        let conn = conn.clone();
        service_fn(move |req| {
            let server = server.clone();
            let conn = conn.clone();
            async move {
                conn.busy();
                let response = handle(&server, req).await;
                server.connections.idle(&conn);
                Ok::<_, Infallible>(response)
            }
        })
    };
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(timeout)
        .max_buf_size(MAX_REQUEST_HEAD);
    let serve = async {
        match tls {
            None => {
                let io = TokioIo::new(WriteTimeout::new(stream, write_timeout));
                watcher.watch(builder.serve_connection(io, svc)).await
            }
            Some(tls) => {
                let handshake = async {
                    // A TLS client speaks first with a handshake record (0x16); a letter is plain
                    // HTTP.
                    let mut first = [0u8; 1];
                    stream.peek(&mut first).await?;
                    if first[0].is_ascii_alphabetic() {
                        let mut stream = stream;
                        stream.write_all(PLAIN_HTTP_TO_TLS).await?;
                        let _ = stream.shutdown().await;
                        return Err(std::io::Error::other("plain HTTP request to the TLS port"));
                    }
                    TlsAcceptor::from(tls).accept(stream).await
                };
                match tokio::time::timeout(timeout, handshake).await {
                    Ok(Ok(stream)) => {
                        let io = TokioIo::new(WriteTimeout::new(stream, write_timeout));
                        watcher.watch(builder.serve_connection(io, svc)).await
                    }
                    Ok(Err(e)) => {
                        tracing::debug!(peer = %peer, error = %e, "TLS handshake failed");
                        Ok(())
                    }
                    Err(_) => {
                        tracing::debug!(peer = %peer, "TLS handshake timed out");
                        Ok(())
                    }
                }
            }
        }
    };
    let result = tokio::select! {
        r = serve => r,
        _ = conn.evicted() => {
            tracing::debug!(peer = %peer, "connection closed to make room: it had waited longest for a request head");
            Ok(())
        }
    };
    if let Err(e) = result {
        tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
    }
    drop(entry);
}

/// The web configuration's part of every request: rate limit, basic auth, no bodies, headers.
async fn handle(server: &Arc<Server>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let web = server.web.current();
    let mut response = match server
        .web
        .check(&web, req.uri().path(), req.headers())
        .await
    {
        Access::RateLimited => text(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests\n"),
        Access::Unauthorized => {
            let mut r = text(StatusCode::UNAUTHORIZED, "Unauthorized\n");
            r.headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Basic"));
            r
        }
        // No endpoint takes a body: refuse one rather than read it.
        Access::Allowed if !req.body().is_end_stream() => {
            text(StatusCode::PAYLOAD_TOO_LARGE, "request body not accepted\n")
        }
        Access::Allowed => route(server, req).await,
    };
    for (name, value) in web.headers() {
        response.headers_mut().insert(name.clone(), value.clone());
    }
    response
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn method_not_allowed(allow: &'static str) -> Response<Full<Bytes>> {
    let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    r.headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    r
}

fn query_param(query: Option<&str>, key: &str) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// The scrape's timeout from Prometheus's `X-Prometheus-Scrape-Timeout-Seconds` minus `offset`;
/// `fallback` when the header is missing, unreadable, not positive or not finite (or too large for
/// a `Duration`). Never less than 0.1 s.
///
/// Not capped by `--pbx.timeout`: that bounds the collection, which a scraper never waits beyond
/// anyway; the scraper's own figure is what its log line reports beside `--pbx.timeout`.
pub fn scrape_timeout(header: Option<&[u8]>, offset: Duration, fallback: Duration) -> Duration {
    let Some(seconds) = header
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
    else {
        return fallback;
    };
    let left = (seconds - offset.as_secs_f64()).max(0.1);
    Duration::try_from_secs_f64(left).unwrap_or(fallback)
}

/// The scrape's time: Prometheus's timeout minus the offset, or the target's timeout.
fn probe_timeout(current: &Current, req: &Request<Incoming>, target: &Target) -> Duration {
    scrape_timeout(
        req.headers()
            .get("X-Prometheus-Scrape-Timeout-Seconds")
            .map(|v| v.as_bytes()),
        current.config.timeout_offset,
        target.client().config().timeout,
    )
}

/// The scrape's deadline: [`probe_timeout`] from now.
fn deadline(current: &Current, req: &Request<Incoming>, target: &Target) -> Instant {
    let timeout = probe_timeout(current, req, target);
    let now = Instant::now();
    // A timeout too large for the clock (a config of centuries) is a day: never a panic.
    now.checked_add(timeout)
        .unwrap_or_else(|| now + Duration::from_secs(86_400))
}

async fn route(server: &Arc<Server>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    // One configuration for the whole request: settings and targets as one value, even if a
    // reload swaps them meanwhile.
    let current = server.app.current();
    let settings = &current.config;
    let get_only = |req: &Request<Incoming>| matches!(*req.method(), Method::GET | Method::HEAD);
    match path.as_str() {
        "/" if get_only(&req) => landing(&current, server.app.now_unix()),
        "/-/healthy" if get_only(&req) => text(StatusCode::OK, "Healthy\n"),
        "/-/ready" if get_only(&req) => {
            if server.app.is_ready() {
                text(StatusCode::OK, "Ready\n")
            } else {
                text(StatusCode::SERVICE_UNAVAILABLE, "Not ready\n")
            }
        }
        "/probe" if get_only(&req) => probe(&current, req).await,
        "/sd" if get_only(&req) => sd(&current),
        p if p.starts_with("/docs/") && get_only(&req) => {
            match DOCS
                .iter()
                .find(|(name, _, _)| p == format!("/docs/{name}"))
            {
                Some((_, body, _)) => text(StatusCode::OK, *body),
                None => text(StatusCode::NOT_FOUND, "not found\n"),
            }
        }
        "/-/reload" if req.method() == Method::POST => match server.reload() {
            Ok(()) => text(StatusCode::OK, "configuration reloaded\n"),
            Err(e) => text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!(
                    "failed to reload config: {}\n",
                    crate::support::report::chain(&e)
                ),
            ),
        },
        "/-/reload" => method_not_allowed("POST"),
        p if p == settings.telemetry_path && get_only(&req) => metrics(server, &current, req).await,
        "/" | "/-/healthy" | "/-/ready" | "/probe" | "/sd" => method_not_allowed("GET, HEAD"),
        p if p == settings.telemetry_path => method_not_allowed("GET, HEAD"),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

fn metrics_response(body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(METRICS_CONTENT_TYPE));
    r
}

async fn metrics(
    server: &Arc<Server>,
    current: &Current,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let mut body = String::new();
    let single = current
        .config
        .single
        .then(|| current.targets.iter().next())
        .flatten();
    if let Some(target) = single {
        let out = target.scrape(deadline(current, &req, target)).await;
        body.push_str(&out.text);
    }
    // The exporter's metrics last, so its counters include this scrape's requests.
    body.push_str(&server.app.metrics.encode());
    metrics_response(body)
}

async fn probe(current: &Current, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let Some(name) = query_param(req.uri().query(), "target").filter(|t| !t.is_empty()) else {
        return text(StatusCode::BAD_REQUEST, "missing parameter: target\n");
    };
    // Only configured targets: credentials never go to an address a URL parameter names.
    let Some(target) = current.targets.find(&name).cloned() else {
        return text(
            StatusCode::BAD_REQUEST,
            format!(
                "unknown target {:?}: not a configured target name or URL\n",
                crate::pbx::clip(&name, 100)
            ),
        );
    };
    let debug = query_param(req.uri().query(), "debug").as_deref() == Some("true");
    if !debug {
        let out = target.scrape(deadline(current, &req, &target)).await;
        return metrics_response(out.text.clone());
    }
    // As blackbox_exporter's debug=true: the probe's log lines (every level, whatever
    // --log.level), the metrics it would have returned, the target's settings (no secret).
    let capture = crate::logging::capture(target.name());
    let timeout = probe_timeout(current, &req, &target);
    let deadline = deadline(current, &req, &target);
    {
        let _span = target.client().span().enter();
        tracing::debug!(
            timeout = %crate::logging::duration_words(timeout),
            "beginning probe"
        );
    }
    let out = target.scrape(deadline).await;
    {
        let _span = target.client().span().enter();
        tracing::debug!(up = out.up, "probe finished");
    }
    let logs = capture.text();
    drop(capture);
    text(
        StatusCode::OK,
        format!(
            "Logs for the probe:\n{logs}\n\n\nMetrics that would have been returned:\n{}\n\n\nTarget configuration:\n{}",
            out.text,
            describe_target(&target)
        ),
    )
}

/// A target's settings for `debug=true`, as YAML (credentials named, never shown).
fn describe_target(target: &Target) -> String {
    let cfg = target.client().config();
    let auth = match &cfg.auth {
        crate::pbx::Auth::Credentials { username, .. } => {
            format!("username {username:?}, password <secret>")
        }
        crate::pbx::Auth::StaticToken(_) => "static token <secret>".to_string(),
    };
    let collectors: Vec<&str> = crate::collector::CollectorKind::all()
        .filter(|k| target.collectors().contains(*k))
        .map(|k| k.as_str())
        .collect();
    let mut out = String::new();
    use std::fmt::Write;
    let _ = writeln!(out, "name: {}", target.name());
    let _ = writeln!(out, "url: {}", cfg.url);
    let _ = writeln!(out, "api: {}", cfg.family.flag_word());
    let _ = writeln!(out, "api_path: {}", cfg.api_path);
    let _ = writeln!(out, "auth: {auth}");
    let _ = writeln!(out, "collectors: [{}]", collectors.join(", "));
    let _ = writeln!(
        out,
        "timeout: {}",
        crate::logging::duration_words(cfg.timeout)
    );
    let _ = writeln!(
        out,
        "max_concurrent_requests: {}",
        cfg.max_concurrent_requests
    );
    let _ = writeln!(out, "max_response_bytes: {}", cfg.max_response_bytes);
    let _ = writeln!(
        out,
        "login_backoff: {}",
        crate::logging::duration_words(cfg.login_backoff)
    );
    if let Some(ca) = &cfg.ca_file {
        let _ = writeln!(out, "ca_file: {}", ca.display());
    }
    let _ = writeln!(out, "insecure_skip_verify: {}", cfg.insecure_skip_verify);
    let _ = writeln!(out, "events: {}", target.events_on());
    out
}

/// The targets for Prometheus' HTTP service discovery: behind the same guard as `/probe`.
fn sd(current: &Current) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(current.targets.sd().clone()));
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(crate::exporter::sd::CONTENT_TYPE),
    );
    r
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn landing(current: &Current, now: f64) -> Response<Full<Bytes>> {
    let settings = &current.config;
    let mut rows = String::new();
    let when = |unix: f64| {
        format!(
            "{}, {}",
            crate::logging::rfc3339(unix.max(0.0) as u64),
            crate::logging::ago(unix, now)
        )
    };
    for t in current.targets.iter() {
        let cfg = t.client().config();
        let last = match t.last() {
            None => "not scraped yet".to_string(),
            Some(o) if o.up => format!("up ({})", when(o.finished_unix)),
            Some(o) => format!(
                "down ({}): {}",
                when(o.finished_unix),
                o.error.as_deref().unwrap_or("call queries failed")
            ),
        };
        rows.push_str(&format!(
            "<tr><td>{name}</td><td>{url}</td><td><a href=\"/probe?target={name}\">probe</a></td><td>{last}</td></tr>\n",
            name = escape(t.name()),
            url = escape(&cfg.url),
            last = escape(&last),
        ));
    }
    let path = escape(&settings.telemetry_path);
    let html = format!(
        "<!DOCTYPE html>\n<html><head><title>Yeastar Exporter</title></head><body>\n\
         <h1>Yeastar Exporter</h1>\n<p>Prometheus exporter for Yeastar S-Series and P-Series PBXes, version {version}.</p>\n\
         <p><a href=\"{path}\">Metrics</a> · <a href=\"/-/healthy\">Health</a> · <a href=\"/-/ready\">Ready</a> · <a href=\"/sd\">Targets (HTTP SD)</a></p>\n\
         <h2>Targets</h2>\n<table border=\"1\" cellpadding=\"4\"><tr><th>name</th><th>PBX</th><th></th><th>last scrape</th></tr>\n{rows}</table>\n\
         <p>Probe a target with <code>/probe?target=NAME&amp;debug=true</code> to see its log lines, the metrics it would return and its settings.</p>\n\
         <h2>Documentation</h2>\n<ul>\n{docs}</ul>\n<p>Also <code>yeastar-exporter --help</code> and, with the Debian package, <code>man yeastar-exporter</code>.</p>\n\
         </body></html>\n",
        version = env!("CARGO_PKG_VERSION"),
        docs = DOCS
            .iter()
            .map(|(name, _, about)| format!(
                "<li><a href=\"/docs/{name}\">{name}</a>: {}</li>\n",
                escape(about)
            ))
            .collect::<String>(),
    );
    let mut r = Response::new(Full::new(Bytes::from(html)));
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_params_decode() {
        assert_eq!(
            query_param(Some("target=http%3A%2F%2F10.0.0.5%3A8088&x=1"), "target"),
            Some("http://10.0.0.5:8088".into())
        );
        assert_eq!(query_param(Some("a=1"), "target"), None);
        assert_eq!(
            query_param(Some("target=%zz%4"), "target"),
            Some("%zz%4".into())
        );
        assert_eq!(
            query_param(Some("target=a+b"), "target"),
            Some("a b".into())
        );
    }

    #[test]
    fn scrape_timeouts_never_panic() {
        let (off, cap) = (Duration::from_millis(500), Duration::from_secs(5));
        let t = |h: &str| scrape_timeout(Some(h.as_bytes()), off, cap);
        assert_eq!(t("1e308"), cap);
        assert_eq!(t("1.85e19"), cap);
        assert_eq!(t("NaN"), cap);
        assert_eq!(t("inf"), cap);
        assert_eq!(t("-0"), cap);
        assert_eq!(t("-1"), cap);
        assert_eq!(t("0.3"), Duration::from_millis(100));
        assert_eq!(t("2"), Duration::from_millis(1500));
        assert_eq!(scrape_timeout(Some(&[0xff, 0x31]), off, cap), cap);
        assert_eq!(scrape_timeout(None, off, cap), cap);
    }

    /// Prometheus's 10 s is a 9.5 s deadline whatever `--pbx.timeout` is: the collection has its
    /// own bound, and the scraper reports both.
    #[test]
    fn the_deadline_is_prometheus_timeout_not_the_pbx_timeout() {
        let (off, fallback) = (Duration::from_millis(500), Duration::from_secs(5));
        assert_eq!(
            scrape_timeout(Some(b"10"), off, fallback),
            Duration::from_millis(9500)
        );
        assert_eq!(
            scrape_timeout(Some(b"60"), off, fallback),
            Duration::from_millis(59_500)
        );
    }
}
