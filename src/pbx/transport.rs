//! One HTTP/1.1 exchange with a PBX over reqwest: a new connection, one `POST`, the answer read to
//! a cap, the connection closed.
//!
//! The PBX's embedded web server closes every connection after one answer, so the client keeps no
//! connection pool (`pool_max_idle_per_host(0)`), sets no keepalive socket option and retries
//! nothing. One `reqwest::Client` serves every PBX with the same TLS settings (built by
//! [`super::http_client`] around the project's own rustls configuration, `pbx::tls`, so pinned
//! certificates, the CA file and the TLS session store that makes repeated probes resume are the
//! same for every request). It replaced a hand-driven hyper exchange (issue 27): reqwest is the
//! client the ecosystem maintains; what it costs per probe is in docs/performance.md.
//!
//! What it guarantees:
//! - **No redirect is followed** (`redirect::Policy::none()`): a 3xx is an answer like any other;
//!   the caller turns it into an error naming where it pointed. Credentials and tokens go to the
//!   configured PBX only.
//! - **No proxy unless configured** (`no_proxy()`): the connection goes straight to the PBX's
//!   address, whatever `HTTP_PROXY`, `HTTPS_PROXY` or `ALL_PROXY` say; only a proxy the target's
//!   config names (`proxy_url`) is used, for `https://` PBXes, through a `CONNECT` tunnel.
//! - **HTTP/1 only**, without retries: a request is sent at most once.
//! - **Bounded**: the connection (TCP and TLS) must open within [`super::CONNECT_TIMEOUT`]; the
//!   answer's body is refused by its `Content-Length` or read to the cap and no further; the
//!   caller's deadline drops the whole exchange, connection included.
//! - **Nothing secret in errors**: the request's URL (with its token) is never part of an error:
//!   a [`Failure`] holds words made from the error's causes (hyper's, the socket's, rustls's),
//!   never reqwest's error or its URL.
//! - **Whether the request left**: a failure before the request was written (name lookup, TCP,
//!   TLS, the connect bound) is [`Failure::Connect`]; once it may have reached the PBX it is
//!   [`Failure::Exchange`], [`Failure::Malformed`] or [`Failure::Body`] (the login ledger needs
//!   the difference: the PBX counts a login whose answer was never read).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;
use reqwest::header::{self, HeaderValue};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub use super::error::Method;
use super::error::{Transport, find_tls_error};
use crate::support::secret::Secret;

/// The exchange's client side: one reqwest client for the PBXes that share its TLS settings.
/// Cheap to clone (the clones share the client, its TLS configuration and TLS sessions).
#[derive(Clone)]
pub struct HttpClient {
    /// The client, or why it could not be built (for [`HttpClient::plain`], which cannot fail).
    client: Result<reqwest::Client, Arc<str>>,
    /// Whether it has TLS settings for `https://` PBXes.
    tls: bool,
    /// Whether it reaches PBXes through a configured proxy (never one from the environment).
    proxied: bool,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("tls", &self.tls)
            .field("built", &self.client.is_ok())
            .field("proxied", &self.proxied)
            .finish()
    }
}

/// The settings every client has: no proxy, no redirect, no pool, no retry, no keepalive, HTTP/1.
fn builder() -> reqwest::ClientBuilder {
    let builder = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .retry(reqwest::retry::never())
        .referer(false)
        .pool_max_idle_per_host(0)
        .http1_only()
        .connect_timeout(super::CONNECT_TIMEOUT)
        .tcp_keepalive(None)
        .tcp_keepalive_interval(None)
        .tcp_keepalive_retries(None);
    #[cfg(any(target_os = "android", target_os = "fuchsia", target_os = "linux"))]
    let builder = builder.tcp_user_timeout(None);
    builder
}

impl HttpClient {
    /// A client speaking TLS with `config` to `https://` PBXes (and plain HTTP to `http://` ones),
    /// through the HTTP proxy at `proxy` when there is one (`CONNECT`: TLS stays end to end; the
    /// config lets only `https://` PBXes use one, so the proxy never sees a login or a token).
    pub fn new(config: rustls::ClientConfig, proxy: Option<&Secret>) -> Result<Self, Transport> {
        let mut builder = builder().use_preconfigured_tls(config);
        if let Some(url) = proxy {
            // Its words only: the URL may carry the proxy's credentials.
            let proxy = reqwest::Proxy::all(url.expose())
                .map_err(|e| Transport::words(format!("proxy_url: {}", e.without_url())))?;
            builder = builder.proxy(proxy);
        }
        let client = builder
            .build()
            .map_err(|e| Transport::new(&e.without_url()))?;
        Ok(Self {
            client: Ok(client),
            tls: true,
            proxied: proxy.is_some(),
        })
    }

    /// A client for plain-HTTP PBXes only: an `https://` PBX gets a connection error.
    pub fn plain() -> Self {
        let client = match super::tls::no_roots_config() {
            Ok(config) => builder()
                .use_preconfigured_tls(config)
                .build()
                .map_err(|e| Arc::from(Transport::new(&e.without_url()).to_string())),
            Err(e) => Err(Arc::from(e.to_string())),
        };
        Self {
            client,
            tls: false,
            proxied: false,
        }
    }
}

/// Where one PBX is: parsed once from its base URL and API path, used for every request.
#[derive(Debug, Clone)]
pub struct Origin {
    /// `scheme://authority`, the start of every request's URL.
    root: String,
    /// The host as written, without IPv6 brackets.
    host: String,
    /// The host as an address, when it is one (no name lookup then).
    ip: Option<IpAddr>,
    port: u16,
    /// `Some` for `https://`: the name the certificate must carry.
    tls_name: Option<Result<ServerName<'static>, String>>,
    /// The `Host` header: the URL's authority.
    host_header: HeaderValue,
    /// The API path, starting and ending with `/`: `/api/v2.0.0/`.
    base_path: String,
}

impl Origin {
    /// The origin of `url` (`http[s]://host[:port]`, as the config checked it) with the API under
    /// `api_path`.
    pub fn new(url: &str, api_path: &str) -> Result<Self, String> {
        let url = url.trim().trim_end_matches('/');
        let (tls, authority) = if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(format!("{url:?} is not an http:// or https:// URL"));
        };
        if authority.is_empty() || authority.contains(['/', '?', '#', '@', ' ']) {
            return Err(format!("{url:?} must be scheme://host[:port] only"));
        }
        if !authority.is_ascii() {
            return Err(format!(
                "{url:?}: the host must be written in ASCII (an international name in its xn-- form)"
            ));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, rest) = v6
                .split_once(']')
                .ok_or_else(|| format!("{url:?}: unclosed IPv6 address"))?;
            (host, rest.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        let port = match port {
            None => {
                if tls {
                    443
                } else {
                    80
                }
            }
            Some(p) => p
                .parse::<u16>()
                .map_err(|_| format!("{url:?}: the port must be a number from 0 to 65535"))?,
        };
        if host.is_empty() {
            return Err(format!("{url:?} has no host"));
        }
        let ip = host.parse::<IpAddr>().ok();
        let tls_name = tls.then(|| {
            ServerName::try_from(host.to_string())
                .map_err(|_| format!("{host:?} is not a valid name for a TLS certificate"))
        });
        let host_header = HeaderValue::from_str(authority)
            .map_err(|_| format!("{url:?}: the host is not a valid header value"))?;
        let mut base_path = String::with_capacity(api_path.len() + 2);
        let path = api_path.trim_matches('/');
        base_path.push('/');
        if !path.is_empty() {
            base_path.push_str(path);
            base_path.push('/');
        }
        let root = format!("{}://{authority}", if tls { "https" } else { "http" });
        Ok(Self {
            root,
            host: host.to_string(),
            ip,
            port,
            tls_name,
            host_header,
            base_path,
        })
    }

    /// The host (an IPv6 address without brackets) and the port.
    pub fn host_port(&self) -> (&str, u16) {
        (&self.host, self.port)
    }

    /// The API path up to the endpoint: `/api/v2.0.0/`.
    pub fn base_path(&self) -> &str {
        &self.base_path
    }
}

/// Appends `value` to a query string as a URL parser would: bytes a query may carry as they are,
/// every other byte (space, `"`, `#`, `'`, `<`, `>`, controls, non-ASCII) percent-encoded (so the
/// URL parser in reqwest leaves it as written). A PBX token is hex; a static token from the config
/// may not be, and must not make every request unsendable.
pub fn push_query_value(query: &mut String, value: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in value.as_bytes() {
        let keep = b.is_ascii_alphanumeric() || b"-._~!$&()*+,;=:@/?%".contains(&b);
        if keep {
            query.push(b as char);
        } else {
            query.push('%');
            query.push(HEX[usize::from(b >> 4)] as char);
            query.push(HEX[usize::from(b & 0xf)] as char);
        }
    }
}

/// What the PBX answered.
#[derive(Debug)]
pub enum Answer {
    /// 200 and the whole body.
    Ok(Bytes),
    /// A 3xx, with its `Location` if any (not followed).
    Redirect {
        /// The status code.
        status: u16,
        /// The `Location` header, lossily decoded.
        location: Option<String>,
    },
    /// Any other status; its body is not read.
    Status(u16),
}

/// Why an exchange failed.
#[derive(Debug)]
pub enum Failure {
    /// No connection was made (name lookup, TCP, TLS, or the connect timeout): the request never
    /// left this host.
    Connect(Transport),
    /// The PBX answered, but not with valid HTTP (not HTTP at all, a bad status line, HTTP/0.9,
    /// an oversized head, conflicting `Content-Length`s, TLS on a plain-HTTP port): the request
    /// reached it.
    Malformed(Transport),
    /// The connection failed once the request was on its way (it may have reached the PBX).
    Exchange(Transport),
    /// The answer's body broke off.
    Body(Transport),
    /// The answer is larger than the cap (by its `Content-Length`, or as it came).
    TooLarge,
}

const USER_AGENT: &str = concat!("yeastar-exporter/", env!("CARGO_PKG_VERSION"));
const JSON: &str = "application/json; charset=utf-8";

impl HttpClient {
    /// `POST`s `body` as JSON to `path_and_query` (below the origin's root, starting with `/`) over
    /// a new connection, and reads a 200 answer of at most `cap` bytes.
    pub async fn post(
        &self,
        origin: &Origin,
        path_and_query: String,
        body: Vec<u8>,
        cap: usize,
    ) -> Result<Answer, Failure> {
        self.send(origin, Method::Post, path_and_query, Some(body), cap)
            .await
    }

    /// Sends one request over a new connection: `method` to `path_and_query` (below the origin's
    /// root, starting with `/`), with `body` as JSON when there is one, and reads a 200 answer of
    /// at most `cap` bytes.
    pub async fn send(
        &self,
        origin: &Origin,
        method: Method,
        path_and_query: String,
        body: Option<Vec<u8>>,
        cap: usize,
    ) -> Result<Answer, Failure> {
        let client = match &self.client {
            Ok(c) => c,
            Err(e) => return Err(Failure::Connect(Transport::words(e.to_string()))),
        };
        // What TLS needs is checked before any connection is opened.
        if let Some(name) = &origin.tls_name {
            if let Err(e) = name {
                return Err(Failure::Connect(Transport::words(e.clone())));
            }
            if !self.tls {
                return Err(Failure::Connect(Transport::words(
                    "this client has no TLS configuration".to_string(),
                )));
            }
        }
        let mut url = String::with_capacity(origin.root.len() + path_and_query.len());
        url.push_str(&origin.root);
        url.push_str(&path_and_query);
        drop(path_and_query);
        let request = match method {
            Method::Get => client.get(url),
            Method::Post => client.post(url),
        }
        .header(header::HOST, origin.host_header.clone());
        // The headers in the order the PBX has always seen them; `Content-Length` follows.
        let request = match body {
            Some(body) => request
                .header(header::CONTENT_TYPE, HeaderValue::from_static(JSON))
                .header(header::USER_AGENT, HeaderValue::from_static(USER_AGENT))
                .header(header::ACCEPT, HeaderValue::from_static("*/*"))
                .body(body),
            None => request
                .header(header::USER_AGENT, HeaderValue::from_static(USER_AGENT))
                .header(header::ACCEPT, HeaderValue::from_static("*/*")),
        };
        match request.send().await {
            Ok(response) => read(response, cap).await,
            Err(e) => Err(failure(origin, e.without_url(), self.proxied).await),
        }
    }
}

/// What went wrong before an answer's head was in, and whether the request may have left. Through a
/// proxy the PBX is never asked directly which protocol it speaks (that would go around the proxy).
async fn failure(origin: &Origin, err: reqwest::Error, proxied: bool) -> Failure {
    let first_answer = |origin| async move {
        if proxied {
            Vec::new()
        } else {
            first_answer(origin).await
        }
    };
    if err.is_builder() {
        // Refused before anything was opened (the URL, a header).
        return Failure::Connect(Transport::new(cause_of(&err)));
    }
    if err.is_connect() {
        if let Some(tls) = find_tls_error(&err) {
            // Whether the port speaks plain HTTP decides the hint; the failed handshake's bytes
            // are rustls's, so another hello asks.
            let first = match tls {
                rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
                    first_answer(origin).await
                }
                _ => Vec::new(),
            };
            return Failure::Connect(Transport::tls_refused(&err, &first));
        }
        let words = if err.is_timeout() {
            format!("no connection within {:?}", super::CONNECT_TIMEOUT)
        } else {
            match io_error_of(&err) {
                Some(io) => Transport::new(io).to_string(),
                None => Transport::new(cause_of(&err)).to_string(),
            }
        };
        if !proxied {
            return Failure::Connect(Transport::words(words));
        }
        // hyper-util's words for a CONNECT answered with anything but 200.
        let words = if words.contains("tunnel error") {
            "it did not open a tunnel to the PBX (its answer to CONNECT was not 200)".to_string()
        } else {
            words
        };
        return Failure::Connect(Transport::words(format!(
            "through the proxy (proxy_url): {words}"
        )));
    }
    match hyper_error_of(&err) {
        Some(h) if h.is_parse() => {
            // Not HTTP: a TLS port is the common case (an `http://` URL on the HTTPS port).
            let tls = origin.tls_name.is_none() && is_tls_record(&first_answer(origin).await);
            Failure::Malformed(Transport::not_http(h, tls))
        }
        Some(h) => Failure::Exchange(Transport::new(h)),
        None => Failure::Exchange(Transport::new(cause_of(&err))),
    }
}

/// Below reqwest's own words ("error sending request"): what failed.
fn cause_of(err: &reqwest::Error) -> &(dyn std::error::Error + 'static) {
    std::error::Error::source(err).unwrap_or(err)
}

/// The first error of type `E` in `err`'s chain.
fn find<'a, E: std::error::Error + 'static>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a E> {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(found) = e.downcast_ref::<E>() {
            return Some(found);
        }
        next = e.source();
    }
    None
}

fn hyper_error_of(err: &reqwest::Error) -> Option<&hyper::Error> {
    find::<hyper::Error>(err)
}

fn io_error_of(err: &reqwest::Error) -> Option<&std::io::Error> {
    find::<std::io::Error>(err)
}

/// How many of the PBX's first bytes are looked at: `HTTP/`, or a TLS record's type and version.
const FIRST_BYTES: usize = 5;

/// The first bytes the PBX sends on a new connection in answer to what its URL says it speaks (at
/// most [`FIRST_BYTES`], within [`super::CONNECT_TIMEOUT`]; none if it could not be asked): for
/// `https://` a TLS client hello, for `http://` a `GET /` that carries nothing else. Asked only
/// after an exchange failed in a way that leaves open whether the port speaks TLS or plain HTTP
/// (the failed connection's own bytes stay inside reqwest): no credential, no token, no API call.
async fn first_answer(origin: &Origin) -> Vec<u8> {
    let Some(question) = question(origin) else {
        return Vec::new();
    };
    let ask = async {
        let mut first = Vec::with_capacity(FIRST_BYTES);
        let Ok(mut tcp) = connect(origin).await else {
            return first;
        };
        if tcp.write_all(&question).await.is_err() {
            return first;
        }
        let mut buf = [0u8; FIRST_BYTES];
        while first.len() < FIRST_BYTES {
            match tcp.read(&mut buf[..FIRST_BYTES - first.len()]).await {
                Ok(0) | Err(_) => break,
                Ok(n) => first.extend_from_slice(&buf[..n]),
            }
        }
        first
    };
    tokio::time::timeout(super::CONNECT_TIMEOUT, ask)
        .await
        .unwrap_or_default()
}

/// What [`first_answer`] sends: a TLS client hello for the host (`https://`), or a bare `GET /`.
fn question(origin: &Origin) -> Option<Vec<u8>> {
    let name = match &origin.tls_name {
        None => {
            let host = origin.host_header.to_str().ok()?;
            return Some(format!("GET / HTTP/1.1\r\nhost: {host}\r\n\r\n").into_bytes());
        }
        Some(Ok(name)) => name.clone(),
        Some(Err(_)) => return None,
    };
    let mut conn = rustls::ClientConnection::new(super::tls::hello_config()?, name).ok()?;
    let mut hello = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut hello).ok()?;
    }
    Some(hello)
}

/// A TCP connection to the origin: its address, or each address its name resolves to in turn.
async fn connect(origin: &Origin) -> std::io::Result<TcpStream> {
    match origin.ip {
        Some(ip) => TcpStream::connect(SocketAddr::new(ip, origin.port)).await,
        None => TcpStream::connect((origin.host.as_str(), origin.port)).await,
    }
}

/// Whether `first` (a connection's first bytes from the PBX) starts a TLS record: a content type
/// (change_cipher_spec, alert, handshake, application_data) and major version 3.
fn is_tls_record(first: &[u8]) -> bool {
    matches!(first, [0x14..=0x17, 0x03, ..])
}

/// The answer: a 200's body up to `cap`, or the status (and where a redirect points). Dropping the
/// response closes the connection (nothing is pooled).
async fn read(mut response: reqwest::Response, cap: usize) -> Result<Answer, Failure> {
    let status = response.status();
    if status.is_redirection() {
        let location = response
            .headers()
            .get(header::LOCATION)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        return Ok(Answer::Redirect {
            status: status.as_u16(),
            location,
        });
    }
    if status != reqwest::StatusCode::OK {
        return Ok(Answer::Status(status.as_u16()));
    }
    if response.content_length().is_some_and(|n| n > cap as u64) {
        return Err(Failure::TooLarge);
    }
    // Big answers (a cut one above all) leave pages the allocator keeps while the exporter idles;
    // hand them back once this answer is done with.
    struct GiveBack(usize);
    impl Drop for GiveBack {
        fn drop(&mut self) {
            if self.0 >= super::RELEASE_AFTER_BYTES {
                crate::support::alloc::release_free_memory();
            }
        }
    }
    let mut give_back = GiveBack(0);
    // The chunks as they came, joined once at the end: no doubling buffer, so an answer cut at the
    // cap holds about the cap, not a multiple of it.
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut total = 0usize;
    loop {
        let chunk = match response.chunk().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(e) => {
                let e = e.without_url();
                return Err(Failure::Body(match hyper_error_of(&e) {
                    Some(h) => Transport::new(h),
                    None => Transport::new(cause_of(&e)),
                }));
            }
        };
        total += chunk.len();
        give_back.0 = total;
        if total > cap {
            return Err(Failure::TooLarge);
        }
        chunks.push(chunk);
    }
    drop(response);
    let whole = match chunks.len() {
        0 => Bytes::new(),
        1 => chunks.pop().unwrap_or_default(),
        _ => {
            let mut buf = Vec::with_capacity(total);
            for c in chunks.drain(..) {
                buf.extend_from_slice(&c);
            }
            Bytes::from(buf)
        }
    };
    // A whole answer is the caller's to release once decoded (`Answer::Ok`); the give-back above is
    // for the answers cut or broken off here.
    give_back.0 = 0;
    Ok(Answer::Ok(whole))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// Reads one request (head and body, by `Content-Length`) from `s`.
    async fn read_request(s: &mut TcpStream) -> String {
        let mut req = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = s.read(&mut buf).await.unwrap();
            req.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&req).to_string();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .map_or(0, |v| v.parse().unwrap());
                if body.len() >= len {
                    break;
                }
            }
            assert!(n > 0, "closed mid-request");
        }
        String::from_utf8_lossy(&req).into_owned()
    }

    /// Whether the client closes `s` (reads until the end; a bound so that a failure is a failed
    /// test, not a hung one).
    async fn closed_by_client(s: &mut TcpStream) -> bool {
        let mut buf = [0u8; 4096];
        loop {
            match tokio::time::timeout(std::time::Duration::from_secs(5), s.read(&mut buf)).await {
                Ok(Ok(0)) => return true,
                Ok(Ok(_)) => continue,
                _ => return false,
            }
        }
    }

    /// A one-connection server: reads the request head and body (by `Content-Length`), answers
    /// `answer`, then reports the request and whether the client closed the connection.
    async fn one_shot(answer: Vec<u8>) -> (String, tokio::task::JoinHandle<(String, bool)>) {
        serve_once(answer, true).await
    }

    /// [`one_shot`], closing at once after the answer when `hold` is false.
    async fn serve_once(
        answer: Vec<u8>,
        hold: bool,
    ) -> (String, tokio::task::JoinHandle<(String, bool)>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let req = read_request(&mut s).await;
            s.write_all(&answer).await.unwrap();
            if !hold {
                return (req, false);
            }
            // The client must close the connection once it has the answer, whatever the server
            // does: the PBX's small web server must not be left holding it.
            (req, closed_by_client(&mut s).await)
        });
        (url, task)
    }

    /// A server answering `answer` on every connection as soon as anything comes in (a request,
    /// a TLS hello), and holding it until the client closes: a port of another protocol.
    async fn answering(answer: &'static [u8]) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    if matches!(s.read(&mut buf).await, Ok(n) if n > 0) {
                        let _ = s.write_all(answer).await;
                    }
                    while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
                });
            }
        });
        addr.to_string()
    }

    const TOKEN: &str = "t0k3n";

    async fn post_with(client: &HttpClient, url: &str, cap: usize) -> Result<Answer, Failure> {
        let origin = Origin::new(url, "/api/v2.0.0").unwrap();
        client
            .post(
                &origin,
                format!("{}call/query?token={TOKEN}", origin.base_path()),
                br#"{"type":"inbound"}"#.to_vec(),
                cap,
            )
            .await
    }

    async fn post(url: &str, cap: usize) -> Result<Answer, Failure> {
        post_with(&HttpClient::plain(), url, cap).await
    }

    /// A client for `https://` PBXes trusting any certificate.
    fn tls_client() -> HttpClient {
        let settings = super::super::HttpSettings {
            ca_file: None,
            insecure_skip_verify: true,
            proxy: None,
        };
        HttpClient::new(
            super::super::tls::client_config(&settings, 1).unwrap(),
            None,
        )
        .unwrap()
    }

    /// Neither the token nor the request's path is in a failure's words or its `Debug`.
    fn no_secret(f: &Failure) {
        let debug = format!("{f:?}");
        let words = match f {
            Failure::Connect(t)
            | Failure::Malformed(t)
            | Failure::Exchange(t)
            | Failure::Body(t) => t.to_string(),
            Failure::TooLarge => String::new(),
        };
        for text in [debug, words] {
            assert!(
                !text.contains(TOKEN) && !text.contains("call/query"),
                "{text}"
            );
        }
    }

    #[tokio::test]
    async fn sends_exactly_the_request_and_closes_after_the_answer() {
        let body = r#"{"status":"Success"}"#;
        let (url, server) = one_shot(
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .into_bytes(),
        )
        .await;
        let answer = post(&url, 1024).await.unwrap();
        assert!(matches!(answer, Answer::Ok(b) if b == body.as_bytes()));
        let (request, closed) = server.await.unwrap();
        let authority = url.trim_start_matches("http://");
        assert_eq!(
            request,
            format!(
                "POST /api/v2.0.0/call/query?token=t0k3n HTTP/1.1\r\n\
                 host: {authority}\r\n\
                 content-type: application/json; charset=utf-8\r\n\
                 user-agent: yeastar-exporter/{}\r\n\
                 accept: */*\r\n\
                 content-length: 18\r\n\r\n\
                 {{\"type\":\"inbound\"}}",
                env!("CARGO_PKG_VERSION")
            )
        );
        assert!(closed, "the connection was left open");
    }

    #[tokio::test]
    async fn a_get_carries_no_body_and_no_content_type() {
        let body = r#"{"errcode":0,"errmsg":"SUCCESS"}"#;
        let (url, server) = one_shot(
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .into_bytes(),
        )
        .await;
        let origin = Origin::new(&url, "/openapi/v1.0").unwrap();
        let answer = HttpClient::plain()
            .send(
                &origin,
                Method::Get,
                format!("{}extension/list?access_token={TOKEN}", origin.base_path()),
                None,
                1024,
            )
            .await
            .unwrap();
        assert!(matches!(answer, Answer::Ok(b) if b == body.as_bytes()));
        let (request, closed) = server.await.unwrap();
        let authority = url.trim_start_matches("http://");
        assert_eq!(
            request,
            format!(
                "GET /openapi/v1.0/extension/list?access_token=t0k3n HTTP/1.1\r\n\
                 host: {authority}\r\n\
                 user-agent: yeastar-exporter/{}\r\n\
                 accept: */*\r\n\r\n",
                env!("CARGO_PKG_VERSION")
            )
        );
        assert!(closed, "the connection was left open");
    }

    /// One client sends every request over a connection of its own, none kept (the PBX closes
    /// each after one answer; a pooled one would be dead).
    #[tokio::test]
    async fn one_client_opens_a_connection_per_request_and_keeps_none() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let mut closed = Vec::new();
            for _ in 0..3 {
                let (mut s, _) = listener.accept().await.unwrap();
                read_request(&mut s).await;
                // Keep-alive offered: the client must still close.
                s.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\n{}",
                )
                .await
                .unwrap();
                closed.push(closed_by_client(&mut s).await);
            }
            closed
        });
        let client = HttpClient::plain();
        for _ in 0..3 {
            assert!(matches!(post_with(&client, &url, 64).await, Ok(Answer::Ok(b)) if b == "{}"));
        }
        assert_eq!(server.await.unwrap(), [true, true, true]);
    }

    #[tokio::test]
    async fn redirects_are_answers_not_followed() {
        let (url, server) = one_shot(
            b"HTTP/1.1 302 Found\r\nLocation: http://elsewhere.example/steal\r\nContent-Length: 0\r\n\r\n"
                .to_vec(),
        )
        .await;
        match post(&url, 1024).await {
            Ok(Answer::Redirect { status, location }) => {
                assert_eq!(status, 302);
                assert_eq!(location.as_deref(), Some("http://elsewhere.example/steal"));
            }
            other => panic!("{other:?}"),
        }
        assert!(server.await.unwrap().1);
    }

    #[tokio::test]
    async fn statuses_and_answers_over_the_cap() {
        let (url, _server) =
            one_shot(b"HTTP/1.1 500 Oops\r\nContent-Length: 2\r\n\r\nno".to_vec()).await;
        assert!(matches!(post(&url, 1024).await, Ok(Answer::Status(500))));
        // By Content-Length, before reading any of it.
        let (url, server) =
            one_shot(b"HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n".to_vec()).await;
        assert!(matches!(post(&url, 1024).await, Err(Failure::TooLarge)));
        assert!(server.await.unwrap().1);
        // Chunked, as it comes: cut at the cap.
        let mut chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for _ in 0..3 {
            chunked.extend_from_slice(b"200\r\n");
            chunked.extend_from_slice(&[b'x'; 0x200]);
            chunked.extend_from_slice(b"\r\n");
        }
        chunked.extend_from_slice(b"0\r\n\r\n");
        let (url, server) = one_shot(chunked.clone()).await;
        assert!(matches!(post(&url, 1024).await, Err(Failure::TooLarge)));
        assert!(server.await.unwrap().1);
        let (url, _server) = one_shot(chunked).await;
        assert!(matches!(post(&url, 2048).await, Ok(Answer::Ok(b)) if b.len() == 3 * 0x200));
        // Without a length, read to the close: cut at the cap as well.
        let mut to_the_close = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".to_vec();
        to_the_close.extend_from_slice(&[b'y'; 1500]);
        let (url, _server) = serve_once(to_the_close.clone(), false).await;
        assert!(matches!(post(&url, 1024).await, Err(Failure::TooLarge)));
        let (url, _server) = serve_once(to_the_close, false).await;
        assert!(matches!(post(&url, 1500).await, Ok(Answer::Ok(b)) if b.len() == 1500));
    }

    #[tokio::test]
    async fn failures_say_whether_the_request_left() {
        // Nothing listens: never sent.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        match post(&url, 1024).await {
            Err(Failure::Connect(t)) => {
                assert_eq!(t.to_string(), "Connection refused (os error 111)")
            }
            other => panic!("{other:?}"),
        }
        // No such host: never sent.
        match post("http://pbx.invalid", 1024).await {
            Err(f @ Failure::Connect(_)) => no_secret(&f),
            other => panic!("{other:?}"),
        }
        // Closed without an answer once the request was read: sent.
        let (url, _server) = serve_once(Vec::new(), false).await;
        match post(&url, 1024).await {
            Err(f @ Failure::Exchange(_)) => {
                no_secret(&f);
                let Failure::Exchange(t) = f else {
                    unreachable!()
                };
                assert_eq!(t.to_string(), "connection closed before message completed")
            }
            other => panic!("{other:?}"),
        }
        // Not HTTP: a TLS port answering a plain request (an alert record), then other bytes.
        let url = format!(
            "http://{}",
            answering(b"\x15\x03\x01\x00\x02\x02\x46").await
        );
        match post(&url, 1024).await {
            Err(Failure::Malformed(t)) => assert_eq!(
                t.to_string(),
                "it speaks TLS (is this an HTTPS port? then use an https:// URL)"
            ),
            other => panic!("{other:?}"),
        }
        let url = format!("http://{}", answering(b"SSH-2.0-OpenSSH_9.6\r\n").await);
        match post(&url, 1024).await {
            Err(f @ Failure::Malformed(_)) => {
                no_secret(&f);
                let Failure::Malformed(t) = f else {
                    unreachable!()
                };
                assert_eq!(t.to_string(), "invalid HTTP version parsed")
            }
            other => panic!("{other:?}"),
        }
        assert!(is_tls_record(b"\x16\x03\x03\x00\x2a") && is_tls_record(b"\x15\x03"));
        assert!(!is_tls_record(b"HTTP/") && !is_tls_record(b"\x16") && !is_tls_record(b"\x16\x02"));
        // A body cut short.
        let (url, _server) = serve_once(
            b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort".to_vec(),
            false,
        )
        .await;
        match post(&url, 1024).await {
            Err(f @ Failure::Body(_)) => {
                no_secret(&f);
                let Failure::Body(t) = f else { unreachable!() };
                assert_eq!(
                    t.to_string(),
                    "error reading a body from connection: end of file before message length reached"
                )
            }
            other => panic!("{other:?}"),
        }
        // https:// without TLS settings.
        let origin = Origin::new("https://127.0.0.1:1", "/").unwrap();
        match HttpClient::plain()
            .post(&origin, "/x".into(), Vec::new(), 10)
            .await
        {
            Err(Failure::Connect(t)) => {
                assert_eq!(t.to_string(), "this client has no TLS configuration")
            }
            other => panic!("{other:?}"),
        }
    }

    /// A TLS handshake that fails is a connection that never carried the request; the port's
    /// answer to a hello decides the hint (plain HTTP, or neither).
    #[tokio::test]
    async fn refused_tls_handshakes_are_never_sent() {
        let client = tls_client();
        let url = format!(
            "https://{}",
            answering(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n").await
        );
        match post_with(&client, &url, 1024).await {
            Err(f @ Failure::Connect(_)) => {
                no_secret(&f);
                let Failure::Connect(t) = f else {
                    unreachable!()
                };
                assert_eq!(
                    t.to_string(),
                    "TLS: the PBX did not answer with TLS (is this port plain HTTP? then use an http:// URL)"
                )
            }
            other => panic!("{other:?}"),
        }
        let url = format!("https://{}", answering(b"SSH-2.0-OpenSSH_9.6\r\n").await);
        match post_with(&client, &url, 1024).await {
            Err(Failure::Connect(t)) => assert_eq!(
                t.to_string(),
                "TLS: the PBX's answer is not valid TLS (received corrupt message of type InvalidContentType)"
            ),
            other => panic!("{other:?}"),
        }
    }

    /// The connection, TLS included, must open within the connect bound: a port that accepts and
    /// never answers the hello is a connection failure at 5 s, the request never sent.
    #[tokio::test(start_paused = true)]
    async fn a_handshake_that_never_ends_is_cut_at_the_connect_bound() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://{}", listener.local_addr().unwrap());
        let _held = tokio::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            std::future::pending::<()>().await;
            drop(s);
        });
        let start = tokio::time::Instant::now();
        match post_with(&tls_client(), &url, 1024).await {
            Err(Failure::Connect(t)) => assert_eq!(t.to_string(), "no connection within 5s"),
            other => panic!("{other:?}"),
        }
        assert_eq!(start.elapsed(), super::super::CONNECT_TIMEOUT);
    }

    /// The caller's deadline drops the exchange: the connection is closed, not left to the PBX.
    #[tokio::test]
    async fn dropping_the_exchange_closes_its_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (read, request_in) = tokio::sync::oneshot::channel();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            read_request(&mut s).await;
            let _ = read.send(());
            // No answer: the client gives up.
            closed_by_client(&mut s).await
        });
        tokio::select! {
            answer = post(&url, 1024) => panic!("{answer:?}"),
            _ = request_in => {}
        }
        assert!(
            server.await.unwrap(),
            "the connection outlived the exchange"
        );
    }

    #[test]
    fn query_values_are_sent_as_a_url_parser_would() {
        let mut q = String::from("/api/x?token=");
        push_query_value(&mut q, "48a7f00d");
        assert_eq!(q, "/api/x?token=48a7f00d");
        let mut q = String::new();
        push_query_value(&mut q, "a b\"#<>é+/='");
        assert_eq!(q, "a%20b%22%23%3C%3E%C3%A9+/=%27");
        // Whatever the value, the URL parses, and its query is what was written.
        let url = reqwest::Url::parse(&format!("http://pbx/x?token={q}")).unwrap();
        assert_eq!(url.query(), Some(format!("token={q}").as_str()));
    }

    #[test]
    fn origins_parse_hosts_ports_and_paths() {
        let o = Origin::new("https://192.168.5.150:8088", "/api/v2.0.0").unwrap();
        assert_eq!(o.host, "192.168.5.150");
        assert_eq!(o.ip, Some("192.168.5.150".parse().unwrap()));
        assert_eq!(o.port, 8088);
        assert!(matches!(o.tls_name, Some(Ok(_))));
        assert_eq!(o.host_header, "192.168.5.150:8088");
        assert_eq!(o.root, "https://192.168.5.150:8088");
        assert_eq!(o.base_path(), "/api/v2.0.0/");

        let o = Origin::new("http://pbx.example/", "api/").unwrap();
        assert_eq!((o.host.as_str(), o.ip, o.port), ("pbx.example", None, 80));
        assert!(o.tls_name.is_none());
        assert_eq!(o.root, "http://pbx.example");
        assert_eq!(o.base_path(), "/api/");

        let o = Origin::new("https://[::1]:8088", "").unwrap();
        assert_eq!((o.host.as_str(), o.port), ("::1", 8088));
        assert_eq!(o.host_header, "[::1]:8088");
        assert_eq!(o.base_path(), "/");
        assert_eq!(Origin::new("https://[fe80::1]", "/").unwrap().port, 443);

        assert_eq!(
            Origin::new("ftp://x", "/").unwrap_err(),
            "\"ftp://x\" is not an http:// or https:// URL"
        );
        assert_eq!(
            Origin::new("http://x:99999", "/").unwrap_err(),
            "\"http://x:99999\": the port must be a number from 0 to 65535"
        );
        assert_eq!(
            Origin::new("http://u:p@x", "/").unwrap_err(),
            "\"http://u:p@x\" must be scheme://host[:port] only"
        );
        assert_eq!(
            Origin::new("https://bad_name!", "/").unwrap().tls_name,
            Some(Err(
                "\"bad_name!\" is not a valid name for a TLS certificate".to_string()
            ))
        );
    }
}
