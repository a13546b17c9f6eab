//! Issue 24: malformed PBX answers are named as such. A hostile PBX on a real loopback socket
//! reads the login and answers with bytes that are not valid HTTP: each is an `http_error` with
//! words that fit, counted by the login ledger as a login the PBX may have seen (the request
//! reached it), and the HTTPS hint appears only when the PBX answered with a TLS record.

mod common;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use yeastar_exporter::support::clock::ManualClock;

const T0: u64 = 1_700_000_000;

/// A PBX that reads each request whole and answers `answer` (then closes): its URL.
async fn answering(answer: Vec<u8>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                    let text = String::from_utf8_lossy(&got).to_string();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length: "))
                            .map_or(0, |v| v.parse().unwrap());
                        if body.len() >= len {
                            break;
                        }
                    }
                }
                let _ = s.write_all(&answer).await;
            });
        }
    });
    url
}

/// One scrape of an exporter for `url`: the page and the target's error.
async fn scrape_once(url: &str) -> (String, String) {
    let exporter = Running::start(config(url, &[]), ManualClock::new(T0)).await;
    let text = exporter.scrape().await;
    let target = exporter.app.targets().iter().next().unwrap().clone();
    let error = target.last().unwrap().error.clone().unwrap_or_default();
    assert_eq!(
        exporter.app.ledger().count("127.0.0.1", T0 * 1000),
        1,
        "the login reached the PBX: a possible failure"
    );
    exporter.stop().await;
    (text, error)
}

#[tokio::test]
async fn every_malformed_answer_is_an_http_error_named_as_such() {
    let big_head = format!(
        "HTTP/1.1 200 OK\r\nX-Filler: {}\r\n\r\n",
        "a".repeat(500 * 1024)
    );
    let many_headers = format!(
        "HTTP/1.1 200 OK\r\n{}\r\n",
        (0..200)
            .map(|i| format!("X-{i}: v\r\n"))
            .collect::<String>()
    );
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "not HTTP",
            b"SSH-2.0-OpenSSH_9.6\r\n".to_vec(),
            "invalid HTTP version parsed",
        ),
        (
            "HTTP/0.9 (a body, no status line)",
            br#"{"status":"Success","token":"0123456789abcdef"}"#.to_vec(),
            "invalid HTTP version parsed",
        ),
        (
            "bad status line",
            b"HTTP/1.1 abc OK\r\nContent-Length: 0\r\n\r\n".to_vec(),
            "invalid HTTP status-code parsed",
        ),
        (
            "oversized head (one 500 KiB header)",
            big_head.into_bytes(),
            "message head is too large",
        ),
        (
            "oversized head (200 headers)",
            many_headers.into_bytes(),
            "message head is too large",
        ),
        (
            "duplicate Content-Length",
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 40\r\n\r\n{}".to_vec(),
            "invalid content-length parsed",
        ),
        (
            "a TLS alert record (an HTTPS port)",
            b"\x15\x03\x01\x00\x02\x02\x46".to_vec(),
            "it speaks TLS (is this an HTTPS port? then use an https:// URL)",
        ),
        (
            "a TLS handshake record",
            b"\x16\x03\x03\x00\x04\x0e\x00\x00\x00".to_vec(),
            "it speaks TLS (is this an HTTPS port? then use an https:// URL)",
        ),
    ];
    for (name, answer, words) in cases {
        let url = answering(answer).await;
        let (text, error) = scrape_once(&url).await;
        assert_eq!(must(&text, "yeastar_up"), 0.0, "{name}");
        assert_eq!(requests(&text, "login", "http_error"), 1.0, "{name}");
        assert_eq!(requests(&text, "login", "connect_error"), 0.0, "{name}");
        assert_eq!(
            must(&text, r#"yeastar_pbx_logins_total{outcome="error"}"#),
            1.0,
            "{name}"
        );
        assert_eq!(
            error,
            format!("POST login: the PBX's answer is not valid HTTP: {words}"),
            "{name}"
        );
        if !words.contains("TLS") {
            assert!(!error.contains("HTTPS"), "{name}: {error}");
        }
    }
}

/// An answer that closes early is still a closed connection, not a malformed answer (and the
/// request was sent: it counts in the ledger), and the HTTPS hint is not given.
#[tokio::test]
async fn a_connection_closed_without_an_answer_stays_a_connect_error() {
    let url = answering(Vec::new()).await;
    let (text, error) = scrape_once(&url).await;
    assert_eq!(requests(&text, "login", "connect_error"), 1.0);
    assert_eq!(requests(&text, "login", "http_error"), 0.0);
    assert_eq!(
        error,
        "POST login: connection failed: connection closed before message completed"
    );
}

/// `https://` to a port that answers neither TLS nor HTTP: the TLS error is named, without the
/// hint that the port is plain HTTP (that one is kept for an `HTTP/` answer:
/// `tests/pbx_faults.rs`); the handshake failed before the login was sent, so the ledger holds
/// nothing.
#[tokio::test]
async fn https_to_a_port_that_speaks_neither_gets_no_plain_http_hint() {
    // It answers at once: a TLS client's hello is no HTTP request to wait for.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let _ = s.write_all(b"SSH-2.0-OpenSSH_9.6\r\n").await;
                let mut buf = [0u8; 1024];
                while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
            });
        }
    });
    let exporter = Running::start(
        config(&format!("https://{addr}"), &["--pbx.insecure-skip-verify"]),
        ManualClock::new(T0),
    )
    .await;
    let text = exporter.scrape().await;
    let target = exporter.app.targets().iter().next().unwrap().clone();
    let error = target.last().unwrap().error.clone().unwrap();
    assert_eq!(requests(&text, "login", "connect_error"), 1.0);
    assert!(
        error
            .starts_with("POST login: connection failed: TLS: the PBX's answer is not valid TLS ("),
        "{error}"
    );
    assert!(!error.contains("plain HTTP"), "{error}");
    assert_eq!(exporter.app.ledger().count("127.0.0.1", T0 * 1000), 0);
    exporter.stop().await;
}
