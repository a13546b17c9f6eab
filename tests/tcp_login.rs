//! Issue 24: TCP event logins keep the lockout rule. A scripted PBX event port (real sockets on
//! loopback) records every login block it receives; tokio's paused time and a clock that follows
//! it let an hour run in moments. A login counts as a possible failure until the PBX confirms it
//! (`Response: Success` or a report), a refusal is read however its bytes are split, and API and
//! TCP logins together stay within 2 unconfirmed attempts per 10 minutes per PBX host.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use yeastar_exporter::support::clock::Clock;

const T0_MS: u64 = 1_700_000_000_000;
const MINUTE: u64 = 60_000;

/// Unix time that follows tokio's clock (paused here), starting at `T0_MS`.
#[derive(Debug)]
struct TokioClock {
    start: tokio::time::Instant,
}

impl Clock for TokioClock {
    fn now_millis(&self) -> u64 {
        T0_MS + self.start.elapsed().as_millis() as u64
    }
}

/// What the scripted event port does once it has read a login block.
#[derive(Clone, Copy, Debug)]
enum Peer {
    /// Says nothing and closes after 25 s.
    SilentThenClose,
    /// Writes `Response: Error` (and a message) one byte per write, 50 ms apart.
    ErrorByteByByte,
    /// Writes `Response: Success` in three pieces a second apart, then stays open and silent.
    SplitSuccess,
}

const REFUSAL: &[u8] = b"Response: Error\r\nMessage: Authentication failed\r\n\r\n";

/// Logins as the PBX received them: (ms since the start, which port).
#[derive(Clone, Default)]
struct Logins(Arc<Mutex<Vec<(u64, &'static str)>>>);

impl Logins {
    fn push(&self, clock: &TokioClock, port: &'static str) {
        let at = clock.now_millis() - T0_MS;
        self.0.lock().unwrap().push((at, port));
    }

    fn all(&self) -> Vec<(u64, &'static str)> {
        self.0.lock().unwrap().clone()
    }

    fn count(&self, port: &str) -> usize {
        self.all().iter().filter(|(_, p)| *p == port).count()
    }

    /// The most logins (both ports) in any 10 minutes.
    fn most_in_ten_minutes(&self) -> usize {
        let all = self.all();
        all.iter()
            .map(|(t, _)| {
                all.iter()
                    .filter(|(u, _)| *u >= *t && *u < t + 10 * MINUTE)
                    .count()
            })
            .max()
            .unwrap_or(0)
    }
}

/// The scripted event port: the port it listens on.
async fn event_port(peer: Peer, logins: Logins, clock: Arc<TokioClock>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            s.set_nodelay(true).unwrap();
            let (logins, clock) = (logins.clone(), clock.clone());
            tokio::spawn(async move {
                let mut got = Vec::new();
                let mut buf = [0u8; 512];
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                    assert!(got.len() < 4096, "an endless login block");
                }
                assert_eq!(
                    String::from_utf8_lossy(&got),
                    format!(
                        "Action: login\r\nUsername: {USERNAME}\r\nSecret: {PASSWORD}\r\nVersion: 2.0.0\r\n\r\n"
                    )
                );
                logins.push(&clock, "tcp");
                match peer {
                    Peer::SilentThenClose => {
                        tokio::time::sleep(Duration::from_secs(25)).await;
                        return;
                    }
                    Peer::ErrorByteByByte => {
                        for b in REFUSAL {
                            if s.write_all(&[*b]).await.is_err() {
                                return;
                            }
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                    Peer::SplitSuccess => {
                        for piece in [&b"Resp"[..], b"onse: Suc", b"cess\r\n\r\n"] {
                            s.write_all(piece).await.unwrap();
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                }
                // Held open until the exporter closes it.
                while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
            });
        }
    });
    port
}

/// A PBX API whose every login is read and then closed without an answer (a possible failure,
/// as the PBX may count it): its URL.
async fn api_closing_logins(logins: Logins, clock: Arc<TokioClock>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            let (logins, clock) = (logins.clone(), clock.clone());
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
                            if head.starts_with("POST /api/v2.0.0/login ") {
                                logins.push(&clock, "api");
                            }
                            return; // closed without an answer
                        }
                    }
                }
            });
        }
    });
    url
}

/// The exporter reading TCP events from `port`, its API at `api`.
async fn exporter(api: &str, port: u16, clock: Arc<TokioClock>) -> Running {
    let port = port.to_string();
    let cfg = config(
        api,
        &[
            "--pbx.events",
            "--pbx.events-method",
            "tcp",
            "--pbx.events-tcp-port",
            &port,
        ],
    );
    Running::start(cfg, clock).await
}

/// GETs the exporter's `/metrics` through `http` (one client for the whole test: building one per
/// scrape loads the system's roots each time).
async fn scrape(http: &reqwest::Client, exporter: &Running) -> String {
    let r = http
        .get(format!("{}/metrics", exporter.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

/// Lets `total` of paused time pass in steps of `step` (the exporter's tasks run meanwhile).
async fn run_for(total: Duration, step: Duration) {
    let end = tokio::time::Instant::now() + total;
    while tokio::time::Instant::now() < end {
        tokio::time::sleep(step).await;
    }
}

/// The first case: an event port that says nothing and closes after 25 s. The old rule
/// took a login as good after 20 s without a refusal (3 logins in 70 s, about 23 per 10 minutes);
/// now each is a possible failure: 2 in the first 70 s, at most 2 in any 10 minutes over an hour,
/// exactly as the ledger's window allows.
#[tokio::test(start_paused = true)]
async fn a_silent_port_that_closes_gets_two_logins_per_ten_minutes() {
    let clock = Arc::new(TokioClock {
        start: tokio::time::Instant::now(),
    });
    let logins = Logins::default();
    let port = event_port(Peer::SilentThenClose, logins.clone(), clock.clone()).await;
    let exporter = exporter("http://127.0.0.1:1", port, clock.clone()).await;
    run_for(Duration::from_secs(70), Duration::from_secs(1)).await;
    assert_eq!(logins.count("tcp"), 2, "{:?}", logins.all());
    run_for(Duration::from_secs(3600 - 70), Duration::from_secs(5)).await;
    let all = logins.all();
    assert_eq!(logins.most_in_ten_minutes(), 2, "{all:?}");
    assert_eq!(logins.count("tcp"), 12, "{all:?}");
    let text = exporter.scrape().await;
    assert_eq!(must(&text, "yeastar_events_connected"), 0.0);
    exporter.stop().await;
}

/// The second case: `Response: Error` written one byte at a time. The refusal is read
/// across 52 reads, counted as a rejection, and suspends logins for the back-off (10 minutes + up
/// to 10 %) like an API rejection: `yeastar_login_suspended 1`, no API login meanwhile, and 6 TCP
/// logins in 55 minutes (an API login may go out only while a new TCP login awaits its answer).
#[tokio::test(start_paused = true)]
async fn a_refusal_sent_byte_by_byte_suspends_logins() {
    let clock = Arc::new(TokioClock {
        start: tokio::time::Instant::now(),
    });
    let logins = Logins::default();
    let port = event_port(Peer::ErrorByteByByte, logins.clone(), clock.clone()).await;
    let api = api_closing_logins(logins.clone(), clock.clone()).await;
    let exporter = exporter(&api, port, clock.clone()).await;
    run_for(Duration::from_secs(70), Duration::from_secs(1)).await;
    assert_eq!(logins.all().len(), 1, "{:?}", logins.all());
    let text = exporter.scrape().await;
    assert_eq!(must(&text, "yeastar_login_suspended"), 1.0);
    assert_eq!(must(&text, "yeastar_up"), 0.0);
    assert_eq!(must(&text, "yeastar_events_connected"), 0.0);
    let target = exporter.app.targets().iter().next().unwrap().clone();
    let error = target.last().unwrap().error.clone().unwrap();
    assert!(
        error.starts_with(
            "logins suspended (a login failed, or its outcome was not seen); next attempt in "
        ),
        "{error}"
    );
    // Scrapes every 15 s for 55 minutes: one TCP login per back-off. Logins are suspended all
    // along but for the moments between a new TCP login (when a back-off ends) and its refusal,
    // written a byte per 50 ms (2.6 s): only then may a scrape see 0, or an API login go out.
    let http = reqwest::Client::new();
    let end = tokio::time::Instant::now() + Duration::from_secs(55 * 60 - 70);
    let mut unsuspended = Vec::new();
    while tokio::time::Instant::now() < end {
        let at = clock.now_millis() - T0_MS;
        let text = scrape(&http, &exporter).await;
        if must(&text, "yeastar_login_suspended") == 0.0 {
            unsuspended.push(at);
        }
        tokio::time::sleep(Duration::from_secs(15)).await;
    }
    let all = logins.all();
    let tcp: Vec<u64> = all
        .iter()
        .filter(|(_, p)| *p == "tcp")
        .map(|(t, _)| *t)
        .collect();
    assert_eq!(tcp.len(), 6, "{all:?}");
    assert!(logins.most_in_ten_minutes() <= 2, "{all:?}");
    // Each TCP login at least a back-off after the one before.
    for pair in tcp.windows(2) {
        assert!(pair[1] - pair[0] >= 10 * MINUTE, "{all:?}");
    }
    let just_after_a_tcp_login = |at: u64| tcp.iter().any(|t| at >= *t && at - t <= 3_000);
    for at in &unsuspended {
        assert!(
            just_after_a_tcp_login(*at),
            "not suspended at {at}: {all:?}"
        );
    }
    for (at, port) in &all {
        if *port == "api" {
            assert!(just_after_a_tcp_login(*at), "API login at {at}: {all:?}");
        }
    }
    exporter.stop().await;
}

/// `Response: Success` in three pieces confirms the login: it leaves the ledger, the connection
/// is up, and an hour later the PBX still saw one login.
#[tokio::test(start_paused = true)]
async fn a_success_split_across_reads_confirms_the_login() {
    let clock = Arc::new(TokioClock {
        start: tokio::time::Instant::now(),
    });
    let logins = Logins::default();
    let port = event_port(Peer::SplitSuccess, logins.clone(), clock.clone()).await;
    let exporter = exporter("http://127.0.0.1:1", port, clock.clone()).await;
    run_for(Duration::from_secs(1), Duration::from_millis(100)).await;
    assert_eq!(logins.count("tcp"), 1);
    // Until the PBX's answer is whole, the login is a possible failure.
    assert_eq!(
        exporter.app.ledger().count("127.0.0.1", clock.now_millis()),
        1
    );
    run_for(Duration::from_secs(5), Duration::from_millis(100)).await;
    assert_eq!(
        exporter.app.ledger().count("127.0.0.1", clock.now_millis()),
        0
    );
    let text = exporter.scrape().await;
    assert_eq!(must(&text, "yeastar_events_connected"), 1.0);
    assert_eq!(must(&text, "yeastar_login_suspended"), 0.0);
    run_for(Duration::from_secs(3600), Duration::from_secs(30)).await;
    assert_eq!(logins.count("tcp"), 1, "{:?}", logins.all());
    exporter.stop().await;
}

/// API and TCP logins share the budget: an API whose logins are closed without an answer and an
/// event port that says nothing and closes, scraped every 15 s for an hour — together at most 2
/// logins in any 10 minutes, and both kinds still tried.
#[tokio::test(start_paused = true)]
async fn api_and_tcp_logins_together_stay_within_two() {
    let clock = Arc::new(TokioClock {
        start: tokio::time::Instant::now(),
    });
    let logins = Logins::default();
    let port = event_port(Peer::SilentThenClose, logins.clone(), clock.clone()).await;
    let api = api_closing_logins(logins.clone(), clock.clone()).await;
    let exporter = exporter(&api, port, clock.clone()).await;
    let http = reqwest::Client::new();
    let end = tokio::time::Instant::now() + Duration::from_secs(3600);
    while tokio::time::Instant::now() < end {
        scrape(&http, &exporter).await;
        tokio::time::sleep(Duration::from_secs(15)).await;
    }
    let all = logins.all();
    assert_eq!(logins.most_in_ten_minutes(), 2, "{all:?}");
    assert!(
        logins.count("api") >= 1 && logins.count("tcp") >= 1,
        "{all:?}"
    );
    assert_eq!(all.len(), 12, "{all:?}");
    exporter.stop().await;
}
