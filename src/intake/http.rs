//! The HTTP event receiver: where PBXes with events on POST their reports
//! (`--events.listen-address`, 8260 by default, the PBX's own default).
//!
//! It is its own small server, not hyper, because the PBX's requests are not well-formed HTTP as
//! the vendor documents them: `Host: 192.168.5.150: 8260` (a space in the port), `Accept` twice,
//! no `Content-Length`, and a clone's `POST HTTP/1.1` without a request target. So it reads a head
//! up to a blank line (`\r\n\r\n` or `\n\n`), takes the body by `Content-Length` when there is one
//! and otherwise up to the first complete JSON object or the peer's close, and answers every
//! request `200` and closes — refused ones too, which are counted and dropped: a PBX that gets no
//! 200 resends the report, forever by the docs. A report is tied to its target by its path,
//! `/events/<target>/<secret>`, and counted only if that target's event gate finds it the PBX's
//! own: the secret its last login registered, an address of the PBX, the PBX's serial number
//! ([`crate::collector::Target::receive_http_event`], [`crate::pbx::gate`]).
//!
//! Bounded: a head of 16 KiB, a body of 64 KiB, 10 seconds for the whole request (not per read:
//! a client trickling a byte a second is cut off all the same), 256 connections at once and
//! `--events.max-connections-per-source` (16) from one source (an IPv4 address, an IPv6 /64). A
//! new connection is never kept waiting by the others: at a source's cap that source's connection
//! that has waited longest for a complete request is closed to make room, at the overall cap the
//! longest-waiting of the sources holding the most ([`crate::server::conn::Registry`]; the web server
//! evicts the longest-waiting of all); a request being answered is never displaced. So idle and
//! trickling clients elsewhere cannot keep the PBX's report out: its one fresh connection is the
//! last to go, however fast the others reconnect. Closed connections are counted
//! (`yeastar_exporter_events_connections_evicted_total`) and logged at most once a minute per
//! cause, with the count.
//!
//! A PBX whose Report Method is TCP is read by [`super::tcp`] instead.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::collector::Received;
use crate::config::Config;
use crate::exporter::{App, Follower};
use crate::pbx::s_series::events::ObjectSplitter;
use crate::server::conn::{Entry, Registry, Source, TALLY_INTERVAL, Tally};

/// The longest request head read.
pub const MAX_HEAD: usize = 16 * 1024;
/// The longest report body read.
pub const MAX_BODY: usize = 64 * 1024;
/// The longest one request may take to arrive.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections open at once; at the cap the one that has waited longest for a complete request
/// is closed to make room.
pub const MAX_CONCURRENT: usize = 256;

const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// One request as the receiver reads it.
#[derive(Debug, PartialEq, Eq)]
pub struct Request {
    /// The request target's path (`/` when the request line has none).
    pub path: String,
    /// The body: by `Content-Length`, or up to the first complete JSON object, or to the close.
    pub body: Vec<u8>,
}

/// What the receiver lets one client hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections open at once ([`MAX_CONCURRENT`]).
    pub max_connections: usize,
    /// Connections open at once from one source (`--events.max-connections-per-source`).
    pub max_per_source: usize,
    /// The longest a whole request may take to arrive ([`REQUEST_TIMEOUT`]).
    pub request_timeout: Duration,
}

impl Limits {
    /// The limits `config` sets.
    pub fn of(config: &Config) -> Self {
        Self {
            max_connections: MAX_CONCURRENT,
            max_per_source: config.events_max_connections_per_source,
            request_timeout: REQUEST_TIMEOUT,
        }
    }
}

/// Serves reports on `listener` for `app`'s targets until the task is dropped, with the limits
/// of `app`'s configuration at the start.
pub async fn serve(listener: TcpListener, app: Arc<App>) {
    let limits = Limits::of(&app.settings());
    serve_with(listener, app, limits).await
}

/// Told of each reload when the receiver does not run (no target had events at start): warns
/// that a target's events are on but nothing receives them until a restart.
#[derive(Debug, Default)]
pub struct NotListening;

impl Follower for NotListening {
    fn reloaded(&self, app: &App) {
        if let Some(t) = app.targets().iter().find(|t| t.events_on()) {
            let _span = t.client().span().enter();
            tracing::warn!(
                "events are on for this target, but the event receiver starts only with the process (no target had events at start): restart the exporter to receive its reports"
            );
        }
    }
}

/// What the receiver says about connections, one line a minute per cause at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Cause {
    /// Closed to make room at the connection cap.
    ConnectionCap,
    /// Closed to make room at a source's cap (or, if none of its connections could go, refused).
    SourceCap,
    /// No complete request within the time limit.
    Deadline,
    /// `accept` failed (out of file descriptors and the like).
    AcceptFailed,
}

/// The receiver's connection log: a [`Tally`] and the words of each line.
struct ConnLog {
    limits: Limits,
    tally: std::sync::Mutex<Tally<Cause>>,
}

impl ConnLog {
    fn note(&self, cause: Cause, source: Option<Source>) {
        let due = self
            .tally
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .note(cause, Instant::now());
        if let Some(count) = due {
            self.write(cause, count, source);
        }
    }

    fn flush(&self) {
        let due = self
            .tally
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .flush(Instant::now());
        for (cause, count) in due {
            self.write(cause, count, None);
        }
    }

    fn write(&self, cause: Cause, count: u64, source: Option<Source>) {
        let l = &self.limits;
        let source = source.map(|s| s.to_string());
        let source = source.as_deref().unwrap_or("several");
        match cause {
            Cause::ConnectionCap => tracing::warn!(
                closed = count,
                cap = l.max_connections,
                source,
                "event receiver at its connection cap: connections that had waited longest for a complete report were closed to make room (count since the last such line; at most one a minute)"
            ),
            Cause::SourceCap => tracing::warn!(
                closed = count,
                cap = l.max_per_source,
                source,
                "event receiver: a source at --events.max-connections-per-source had its longest-waiting connections closed (count since the last such line; at most one a minute)"
            ),
            Cause::Deadline => tracing::warn!(
                closed = count,
                timeout_seconds = l.request_timeout.as_secs_f64(),
                source,
                "event receiver: connections closed without a complete report within the time limit (count since the last such line; at most one a minute)"
            ),
            Cause::AcceptFailed => tracing::warn!(
                failed = count,
                "event receiver: accepting connections failed, out of file descriptors? (count since the last such line; at most one a minute)"
            ),
        }
    }
}

/// Serves reports on `listener` for `app`'s targets until the task is dropped, within `limits`.
///
/// A connection is accepted at once, whatever the others do: at `limits.max_per_source` its
/// source's connection that has waited longest for a complete request is closed to make room, at
/// `limits.max_connections` the longest-waiting of the sources holding the most; a request being
/// answered is never displaced. Every request must arrive whole within `limits.request_timeout`.
pub async fn serve_with(listener: TcpListener, app: Arc<App>, limits: Limits) {
    let slots = Arc::new(Semaphore::new(2 * limits.max_connections));
    let open = Arc::new(Registry::default());
    let log = Arc::new(ConnLog {
        limits,
        tally: Default::default(),
    });
    let mut flush = tokio::time::interval(TALLY_INTERVAL);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(x) => x,
                Err(_) => {
                    log.note(Cause::AcceptFailed, None);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            _ = flush.tick() => {
                log.flush();
                continue;
            }
        };
        let source = Source::of(peer.ip());
        let mut made_room = false;
        if open.from_source(source) >= limits.max_per_source {
            app.metrics.event_connection_evicted("source_cap");
            log.note(Cause::SourceCap, Some(source));
            if !open.evict_oldest_idle_from(source) {
                // Every one of its connections is being answered (a moment's work): this one
                // is closed rather than let the source past its cap.
                continue;
            }
            made_room = true;
        }
        // The cap counts connections not yet told to close: an evicted one leaves the registry
        // at once, so the next accept never waits for its task to run (under a flood of
        // reconnects that wait would let the listen queue fill in front of the PBX).
        if !made_room && open.len() >= limits.max_connections {
            if open.evict_oldest_idle_of_busiest_source() {
                app.metrics.event_connection_evicted("connection_cap");
                log.note(Cause::ConnectionCap, Some(source));
            } else {
                // Every one is being answered (a moment's work): wait for one to finish.
                while open.len() >= limits.max_connections {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        }
        // The hard bound on sockets held: closed ones whose tasks have not run yet included.
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let entry = open.register_from(source);
        let app = app.clone();
        let log = log.clone();
        tokio::spawn(async move {
            connection(stream, peer, &app, entry, &log).await;
            drop(permit);
        });
    }
}

/// Reads one request from `stream` unless it is evicted or out of time first, then answers it.
async fn connection(
    mut stream: TcpStream,
    peer: std::net::SocketAddr,
    app: &App,
    entry: Entry,
    log: &ConnLog,
) {
    let timeout = log.limits.request_timeout;
    let read = tokio::select! {
        r = tokio::time::timeout(timeout, read_request(&mut stream)) => r,
        // Closed to make room (counted and logged where it was chosen).
        _ = entry.conn.evicted() => return,
    };
    entry.conn.busy();
    let request = match read {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "event receiver: unreadable request");
            app.metrics.event_refused("unreadable");
            return;
        }
        Err(_) => {
            log.note(Cause::Deadline, Some(Source::of(peer.ip())));
            app.metrics.event_refused("unreadable");
            return;
        }
    };
    answer(stream, peer, app, request).await;
}

/// Answers one request read whole: counted for its target or refused, `200` either way.
async fn answer(mut stream: TcpStream, peer: std::net::SocketAddr, app: &App, request: Request) {
    // `/events/<target>/<secret>`: the target by name, the rest for its event gate.
    let (name, secret) = match request.path.strip_prefix("/events/") {
        Some(rest) => {
            let rest = rest.trim_end_matches('/');
            rest.split_once('/').unwrap_or((rest, ""))
        }
        None => ("", ""),
    };
    let target = (!name.is_empty())
        .then(|| app.targets().find(name).cloned())
        .flatten();
    let answer = match target {
        // Lines about the report (a refusal) name its PBX.
        Some(t) => match t
            .client()
            .span()
            .in_scope(|| t.receive_http_event(secret, peer.ip(), &request.body))
        {
            // Refused ones are counted and logged (once a minute) by the target.
            Received::Taken(_) | Received::Refused(_) => OK,
            Received::Off => {
                app.metrics.event_refused("unknown_target");
                OK
            }
        },
        None => {
            tracing::debug!(%peer, path = %crate::pbx::clip(&request.path, 100), "event report for no configured target");
            app.metrics.event_refused("unknown_target");
            OK
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let _ = stream.write_all(answer).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// Reads one request leniently (see the module's documentation).
pub async fn read_request<S: tokio::io::AsyncRead + Unpin>(
    stream: &mut S,
) -> std::io::Result<Request> {
    let mut buf = Vec::with_capacity(2048);
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(end) = find_head_end(&buf) {
            break end;
        }
        if buf.len() > MAX_HEAD {
            return Err(std::io::Error::other("request head over 16 KiB"));
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::other("closed before the end of the head"));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let (head_len, sep_len) = head_end;
    let head = String::from_utf8_lossy(&buf[..head_len]).into_owned();
    let mut body: Vec<u8> = buf[head_len + sep_len..].to_vec();
    let mut lines = head.lines();
    let request_line = lines.next().unwrap_or("");
    let path = request_line
        .split_whitespace()
        .nth(1)
        .filter(|t| t.starts_with('/'))
        .map(|t| t.split('?').next().unwrap_or(t).to_string())
        .unwrap_or_else(|| "/".into());
    let length = lines.find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse::<usize>().ok())
            .flatten()
    });
    match length {
        Some(len) => {
            if len > MAX_BODY {
                return Err(std::io::Error::other("body over 64 KiB"));
            }
            while body.len() < len {
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
            }
            body.truncate(len);
        }
        None => {
            // No length: up to the first complete JSON object, or the close.
            let mut splitter = ObjectSplitter::default();
            let mut objects = splitter.push(&body);
            while objects.is_empty() {
                if body.len() > MAX_BODY {
                    return Err(std::io::Error::other("body over 64 KiB"));
                }
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
                objects = splitter.push(&chunk[..n]);
            }
            if let Some(first) = objects.into_iter().next() {
                body = first;
            }
        }
    }
    Ok(Request { path, body })
}

/// Where the head ends: (its length, the separator's length).
fn find_head_end(buf: &[u8]) -> Option<(usize, usize)> {
    let crlf = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4));
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2));
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read(bytes: &[u8]) -> std::io::Result<Request> {
        let mut s: &[u8] = bytes;
        read_request(&mut s).await
    }

    const BODY: &str = r#"{"event":"BootUp","sn":"369451090405"}"#;

    #[tokio::test]
    async fn the_documented_malformed_request_is_read() {
        let raw = format!(
            "POST /events/hq HTTP/1.1\r\nHost: 192.168.5.150: 8260\r\nAccept: application/json\r\nUser-Agent: WebAPI\r\nContent-Type: application/json\r\nAccept: application/json\r\n\r\n{BODY}"
        );
        let r = read(raw.as_bytes()).await.unwrap();
        assert_eq!(r.path, "/events/hq");
        assert_eq!(r.body, BODY.as_bytes());
    }

    #[tokio::test]
    async fn content_length_without_a_space_and_lf_only_heads() {
        let raw = format!(
            "POST /events/hq HTTP/1.1\nContent-Length:{}\nConnection:close\n\n{BODY}trailing",
            BODY.len()
        );
        let r = read(raw.as_bytes()).await.unwrap();
        assert_eq!(r.body, BODY.as_bytes());
    }

    #[tokio::test]
    async fn a_request_line_without_a_target_is_the_root() {
        let raw = format!(
            "POST HTTP/1.1\r\nContent-Length:{}\r\n\r\n{BODY}",
            BODY.len()
        );
        let r = read(raw.as_bytes()).await.unwrap();
        assert_eq!(r.path, "/");
    }

    #[tokio::test]
    async fn oversized_and_truncated_requests_are_errors() {
        let raw = format!(
            "POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY + 1
        );
        assert_eq!(
            read(raw.as_bytes()).await.unwrap_err().to_string(),
            "body over 64 KiB"
        );
        assert_eq!(
            read(b"POST / HTTP/1.1\r\nHost: x")
                .await
                .unwrap_err()
                .to_string(),
            "closed before the end of the head"
        );
        let huge = vec![b'a'; MAX_HEAD + 4096];
        assert_eq!(
            read(&huge).await.unwrap_err().to_string(),
            "request head over 16 KiB"
        );
    }
}
