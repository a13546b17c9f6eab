//! The HTTP event receiver: where PBXes with events on POST their reports
//! (`--events.listen-address`, 8260 by default, the PBX's own default).
//!
//! It is its own small server, not hyper, because the PBX's requests are not well-formed HTTP as
//! the vendor documents them: `Host: 192.168.5.150: 8260` (a space in the port), `Accept` twice,
//! no `Content-Length`, and a clone's `POST HTTP/1.1` without a request target. So it reads a head
//! up to a blank line (`\r\n\r\n` or `\n\n`), takes the body by `Content-Length` when there is one
//! and otherwise up to the first complete JSON object or the peer's close, and answers every
//! request `200` and closes — refused ones too, which are counted and dropped: a PBX that gets no
//! 200 resends the report, forever by the docs. A report is tied to its target by its path, `/events/<target>`, and checked
//! against the PBX's serial number there ([`crate::collector::Target::receive_event`]).
//!
//! Bounded: a head of 16 KiB, a body of 64 KiB, 10 seconds per request, 256 requests at once.
//!
//! A PBX whose Report Method is TCP is read by [`crate::tcp_events`] instead.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::collector::Received;
use crate::exporter::App;
use crate::pbx::events::ObjectSplitter;

/// The longest request head read.
pub const MAX_HEAD: usize = 16 * 1024;
/// The longest report body read.
pub const MAX_BODY: usize = 64 * 1024;
/// The longest one request may take to arrive.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Requests handled at once; more wait in the listen queue.
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

/// Serves reports on `listener` for `app`'s targets until the task is dropped.
pub async fn serve(listener: TcpListener, app: Arc<App>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!(error = %e, "event receiver: accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let app = app.clone();
        tokio::spawn(async move {
            let _permit = permit;
            handle(stream, peer, &app).await;
        });
    }
}

async fn handle(mut stream: TcpStream, peer: std::net::SocketAddr, app: &App) {
    let request = match tokio::time::timeout(REQUEST_TIMEOUT, read_request(&mut stream)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "event receiver: unreadable request");
            app.metrics.event_refused("unreadable");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "event receiver: request not complete in 10 s");
            app.metrics.event_refused("unreadable");
            return;
        }
    };
    let target = request
        .path
        .strip_prefix("/events/")
        .map(|n| n.trim_end_matches('/'))
        .and_then(|name| app.targets().find(name).cloned());
    let answer = match target {
        Some(t) => match t.receive_event(&request.body) {
            Received::Taken(_) => OK,
            Received::Refused => {
                tracing::warn!(target_name = %t.name(), %peer, "event report refused: it carries another PBX's serial number");
                OK
            }
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
