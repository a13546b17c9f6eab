//! One HTTP/1.1 exchange with a PBX: a new connection, one `POST`, the answer read to a cap, the
//! connection closed.
//!
//! The PBX's embedded web server closes every connection after one answer, so a connection pool,
//! keep-alive socket options or a task per connection are work for nothing. This is hyper's
//! connection-level client driven inside the request's own future: no task is spawned, nothing is
//! pooled, nothing is asked of the socket beyond opening it (no `getsockname`/`getpeername`, no
//! option set after the fact), and the request carries exactly the headers the PBX needs.
//! It replaced reqwest on this path: configured as far as reqwest allows (no pool, no keepalive, no
//! proxy, no redirects), it still cost about 18 system calls and a spawned task per connection
//! against 7 for the least a client can do, and kept the exporter above the bench's floor
//! (`cargo bench --bench multi_target`; figures in docs/performance.md).
//!
//! What it guarantees:
//! - **No redirect is followed**: a 3xx is an answer like any other; the caller turns it into an
//!   error naming where it pointed. Credentials and tokens go to the configured PBX only.
//! - **No proxy**: the connection goes straight to the PBX's address, whatever the environment says.
//! - **Bounded**: the connection (TCP and TLS) must open within [`super::CONNECT_TIMEOUT`]; the
//!   answer's body is read to the cap and no further; the caller's deadline drops the whole
//!   exchange, connection included.
//! - **Nothing secret in errors**: the request's URL (with its token) is never part of an error.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::pin;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::header::{self, HeaderValue};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::error::Transport;

/// The exchange's client side: the TLS configuration shared by the PBXes that agree on it. Cheap to
/// clone.
#[derive(Clone)]
pub struct HttpClient {
    tls: Option<tokio_rustls::TlsConnector>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl HttpClient {
    /// A client speaking TLS with `config` to `https://` PBXes.
    pub fn new(config: rustls::ClientConfig) -> Self {
        Self {
            tls: Some(tokio_rustls::TlsConnector::from(Arc::new(config))),
        }
    }

    /// A client for plain-HTTP PBXes only: an `https://` PBX gets a connection error.
    pub fn plain() -> Self {
        Self { tls: None }
    }
}

/// Where one PBX is: parsed once from its base URL and API path, used for every request.
#[derive(Debug, Clone)]
pub struct Origin {
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
        Ok(Self {
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
/// every other byte (space, `"`, `#`, `<`, `>`, controls, non-ASCII) percent-encoded. A PBX token is
/// hex; a static token from the config may not be, and must not make every request unsendable.
pub fn push_query_value(query: &mut String, value: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in value.as_bytes() {
        let keep = b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?%".contains(&b);
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
    /// The PBX answered, but not with valid HTTP (not HTTP at all, a bad status line, HTTP/0.9,
    /// an oversized head, conflicting `Content-Length`s, TLS on a plain-HTTP port): the request
    /// reached it.
    /// No connection was made (name lookup, TCP, TLS, or the connect timeout): the request never
    /// left this host.
    Connect(Transport),
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
        let request = Request::post(path_and_query)
            .header(header::HOST, origin.host_header.clone())
            .header(header::CONTENT_TYPE, HeaderValue::from_static(JSON))
            .header(header::USER_AGENT, HeaderValue::from_static(USER_AGENT))
            .header(header::ACCEPT, HeaderValue::from_static("*/*"))
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| Failure::Connect(Transport::new(&e)))?;
        let connect_by = Instant::now() + super::CONNECT_TIMEOUT;
        let timed_out = || {
            Failure::Connect(Transport::words(format!(
                "no connection within {:?}",
                super::CONNECT_TIMEOUT
            )))
        };
        // What TLS needs is checked before any connection is opened.
        let tls = match &origin.tls_name {
            None => None,
            Some(name) => {
                let name = name
                    .clone()
                    .map_err(|e| Failure::Connect(Transport::words(e)))?;
                let Some(tls) = &self.tls else {
                    return Err(Failure::Connect(Transport::words(
                        "this client has no TLS configuration".to_string(),
                    )));
                };
                Some((tls, name))
            }
        };
        let tcp = match tokio::time::timeout_at(connect_by, connect(origin)).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(e)) => return Err(Failure::Connect(Transport::new(&e))),
            Err(_) => return Err(timed_out()),
        };
        let first = FirstBytes::default();
        let tcp = Recorded {
            inner: tcp,
            first: first.clone(),
            done: false,
        };
        match tls {
            None => exchange(CloseOnly(tcp), request, cap, Some(&first)).await,
            Some((tls, name)) => {
                let stream = match tokio::time::timeout_at(connect_by, tls.connect(name, tcp)).await
                {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        return Err(Failure::Connect(Transport::tls_refused(&e, &first.get())));
                    }
                    Err(_) => return Err(timed_out()),
                };
                exchange(stream, request, cap, None).await
            }
        }
    }
}

/// A TCP connection to the origin: its address, or each address its name resolves to in turn.
async fn connect(origin: &Origin) -> std::io::Result<TcpStream> {
    match origin.ip {
        Some(ip) => TcpStream::connect(SocketAddr::new(ip, origin.port)).await,
        None => TcpStream::connect((origin.host.as_str(), origin.port)).await,
    }
}

/// The first bytes the PBX sent on a connection (up to [`FIRST_BYTES`]): enough to tell a TLS
/// record from an HTTP answer.
#[derive(Clone, Default)]
struct FirstBytes(Arc<std::sync::Mutex<Vec<u8>>>);

/// How many of the PBX's first bytes are kept: `HTTP/`, or a TLS record's type and version.
const FIRST_BYTES: usize = 5;

impl FirstBytes {
    fn get(&self) -> Vec<u8> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// A connection that keeps the first bytes the PBX sends (it asks nothing more of the socket).
struct Recorded<S> {
    inner: S,
    first: FirstBytes,
    /// All of [`FIRST_BYTES`] are in: nothing more to keep.
    done: bool,
}

impl<S: AsyncRead + Unpin> AsyncRead for Recorded<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        if !self.done && buf.filled().len() > before {
            let mut first = self.first.0.lock().unwrap_or_else(|p| p.into_inner());
            let room = FIRST_BYTES - first.len();
            let new = &buf.filled()[before..];
            first.extend_from_slice(&new[..new.len().min(room)]);
            let full = first.len() == FIRST_BYTES;
            drop(first);
            self.done = full;
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Recorded<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A plain TCP connection whose end is its close: hyper shuts the write side down once the PBX
/// has closed its own (a `shutdown` system call per connection), which the close that follows makes
/// redundant — it sends the FIN anyway. (A TLS connection keeps its shutdown: that is its
/// `close_notify`.)
struct CloseOnly<S>(S);

impl<S: AsyncRead + Unpin> AsyncRead for CloseOnly<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for CloseOnly<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// The request and its answer over `io`, the connection driven in this future (no task).
/// `plain`: the first bytes of a plain-HTTP connection, to tell a TLS answer from other garbage.
async fn exchange<S>(
    io: S,
    request: Request<Full<Bytes>>,
    cap: usize,
    plain: Option<&FirstBytes>,
) -> Result<Answer, Failure>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| Failure::Connect(Transport::new(&e)))?;
    let work = async move {
        let response = sender.send_request(request).await.map_err(|e| {
            if e.is_parse() {
                let tls = plain.is_some_and(|f| is_tls_record(&f.get()));
                Failure::Malformed(Transport::not_http(&e, tls))
            } else {
                Failure::Exchange(Transport::new(&e))
            }
        })?;
        read(response, cap).await
    };
    drive(work, connection).await
}

/// Whether `first` (a connection's first bytes from the PBX) starts a TLS record: a content type
/// (change_cipher_spec, alert, handshake, application_data) and major version 3.
fn is_tls_record(first: &[u8]) -> bool {
    matches!(first, [0x14..=0x17, 0x03, ..])
}

/// Polls `connection` (which moves the bytes) alongside `work` (which waits for them) until `work`
/// is done; then both are dropped, closing the connection. Once the connection future ends, a
/// failure of its own has been handed to the request or body `work` waits on.
async fn drive<W: Future, C: Future>(work: W, connection: C) -> W::Output {
    let mut work = pin!(work);
    let mut connection = pin!(connection);
    let mut connection_done = false;
    std::future::poll_fn(move |cx| {
        if !connection_done && connection.as_mut().poll(cx).is_ready() {
            connection_done = true;
        }
        work.as_mut().poll(cx)
    })
    .await
}

/// The answer: a 200's body up to `cap`, or the status (and where a redirect points).
async fn read(
    response: hyper::Response<hyper::body::Incoming>,
    cap: usize,
) -> Result<Answer, Failure> {
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
    if status != hyper::StatusCode::OK {
        return Ok(Answer::Status(status.as_u16()));
    }
    let mut body = response.into_body();
    if hyper::body::Body::size_hint(&body)
        .exact()
        .is_some_and(|n| n > cap as u64)
    {
        return Err(Failure::TooLarge);
    }
    // Big answers (a cut one above all) leave pages the allocator keeps while the exporter idles;
    // hand them back once this answer is done with.
    struct GiveBack(usize);
    impl Drop for GiveBack {
        fn drop(&mut self) {
            if self.0 >= super::RELEASE_AFTER_BYTES {
                crate::alloc::release_free_memory();
            }
        }
    }
    let mut give_back = GiveBack(0);
    // The chunks as they came, joined once at the end: no doubling buffer, so an answer cut at the
    // cap holds about the cap, not a multiple of it.
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| Failure::Body(Transport::new(&e)))?;
        let Ok(chunk) = frame.into_data() else {
            continue; // trailers
        };
        total += chunk.len();
        give_back.0 = total;
        if total > cap {
            return Err(Failure::TooLarge);
        }
        chunks.push(chunk);
    }
    drop(body);
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
            s.write_all(&answer).await.unwrap();
            if !hold {
                return (String::from_utf8_lossy(&req).into_owned(), false);
            }
            // The client must close the connection once it has the answer, whatever the server
            // does: the PBX's small web server must not be left holding it.
            let closed = matches!(
                tokio::time::timeout(std::time::Duration::from_secs(5), s.read(&mut buf)).await,
                Ok(Ok(0))
            );
            (String::from_utf8_lossy(&req).into_owned(), closed)
        });
        (url, task)
    }

    async fn post(url: &str, cap: usize) -> Result<Answer, Failure> {
        let origin = Origin::new(url, "/api/v2.0.0").unwrap();
        HttpClient::plain()
            .post(
                &origin,
                format!("{}call/query?token=t0k3n", origin.base_path()),
                br#"{"type":"inbound"}"#.to_vec(),
                cap,
            )
            .await
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
        let (url, _server) =
            one_shot(b"HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n".to_vec()).await;
        assert!(matches!(post(&url, 1024).await, Err(Failure::TooLarge)));
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
    }

    #[tokio::test]
    async fn failures_say_whether_the_request_left() {
        // Nothing listens: never sent.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        match post(&url, 1024).await {
            Err(Failure::Connect(t)) => assert!(t.to_string().contains("refused"), "{t}"),
            other => panic!("{other:?}"),
        }
        // Closed without an answer once the request was read: sent.
        let (url, _server) = serve_once(Vec::new(), false).await;
        match post(&url, 1024).await {
            Err(Failure::Exchange(t)) => {
                assert_eq!(t.to_string(), "connection closed before message completed")
            }
            other => panic!("{other:?}"),
        }
        // Not HTTP: a TLS port answering a plain request (an alert record), then other bytes.
        let (url, _server) = one_shot(b"\x15\x03\x01\x00\x02\x02\x46".to_vec()).await;
        match post(&url, 1024).await {
            Err(Failure::Malformed(t)) => assert_eq!(
                t.to_string(),
                "it speaks TLS (is this an HTTPS port? then use an https:// URL)"
            ),
            other => panic!("{other:?}"),
        }
        let (url, _server) = one_shot(b"SSH-2.0-OpenSSH_9.6\r\n".to_vec()).await;
        match post(&url, 1024).await {
            Err(Failure::Malformed(t)) => assert_eq!(t.to_string(), "invalid HTTP version parsed"),
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
            Err(Failure::Body(t)) => assert_eq!(
                t.to_string(),
                "error reading a body from connection: end of file before message length reached"
            ),
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

    #[test]
    fn query_values_are_sent_as_a_url_parser_would() {
        let mut q = String::from("/api/x?token=");
        push_query_value(&mut q, "48a7f00d");
        assert_eq!(q, "/api/x?token=48a7f00d");
        let mut q = String::new();
        push_query_value(&mut q, "a b\"#<>é+/=");
        assert_eq!(q, "a%20b%22%23%3C%3E%C3%A9+/=");
        // Whatever the value, the request can be built.
        assert!(Request::post(format!("/x?token={q}")).body(()).is_ok());
    }

    #[test]
    fn origins_parse_hosts_ports_and_paths() {
        let o = Origin::new("https://192.168.5.150:8088", "/api/v2.0.0").unwrap();
        assert_eq!(o.host, "192.168.5.150");
        assert_eq!(o.ip, Some("192.168.5.150".parse().unwrap()));
        assert_eq!(o.port, 8088);
        assert!(matches!(o.tls_name, Some(Ok(_))));
        assert_eq!(o.host_header, "192.168.5.150:8088");
        assert_eq!(o.base_path(), "/api/v2.0.0/");

        let o = Origin::new("http://pbx.example/", "api/").unwrap();
        assert_eq!((o.host.as_str(), o.ip, o.port), ("pbx.example", None, 80));
        assert!(o.tls_name.is_none());
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
