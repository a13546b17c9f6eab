//! Issue 13: every promise to the PBX under real faults. A hostile PBX counts each login when it
//! *receives* it (as the real one does, whether or not its answer is ever read), locks the address
//! out after 5 logins without a token in 10 minutes, and logs every request; the exporter is driven
//! at scrape rates from 5/s to 1 per 15 s and scrape timeouts from 0.6 s to 10 s, on an injected
//! clock so half an hour of scrapes takes seconds.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::pki::Leaf;
use common::*;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use yeastar_exporter::support::clock::{Clock, ManualClock};

const T0: u64 = 1_700_000_000;
const MINUTE: u64 = 60_000;

/// How the hostile PBX answers `login`.
#[derive(Clone, Debug, PartialEq)]
enum Login {
    /// A token.
    Ok,
    /// errno 20003.
    Reject,
    /// HTTP 500.
    Http500,
    /// `Success` without a token.
    NoToken,
    /// The connection closed without an answer.
    Close,
    /// A redirect.
    Redirect(u16, String),
}

/// How it answers everything else.
#[derive(Clone, Debug, PartialEq)]
enum Query {
    Ok,
    /// errno 20004 whatever the token.
    TokenRefused,
    Redirect(u16, String),
}

struct State {
    login: Login,
    login_delay: Duration,
    query: Query,
    /// (clock millis at receipt, yielded a token).
    logins: Vec<(u64, bool)>,
    failures: Vec<u64>,
    locked_until: u64,
    locked_ever: bool,
    requests: Vec<String>,
    next_token: u32,
}

#[derive(Clone)]
struct Hostile {
    addr: SocketAddr,
    st: Arc<Mutex<State>>,
    clock: Arc<ManualClock>,
}

impl Hostile {
    async fn start(clock: Arc<ManualClock>, login: Login, query: Query) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let st = Arc::new(Mutex::new(State {
            login,
            login_delay: Duration::ZERO,
            query,
            logins: Vec::new(),
            failures: Vec::new(),
            locked_until: 0,
            locked_ever: false,
            requests: Vec::new(),
            next_token: 0,
        }));
        let pbx = Self { addr, st, clock };
        let p = pbx.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let p = p.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let p = p.clone();
                        async move { p.handle(req).await }
                    });
                    let _ = http1::Builder::new()
                        .keep_alive(false)
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        pbx
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn set_delay(&self, d: Duration) {
        self.st.lock().unwrap().login_delay = d;
    }

    fn set_login(&self, l: Login) {
        self.st.lock().unwrap().login = l;
    }

    fn logins(&self) -> Vec<(u64, bool)> {
        self.st.lock().unwrap().logins.clone()
    }

    fn requests(&self) -> Vec<String> {
        self.st.lock().unwrap().requests.clone()
    }

    /// The most logins of any 10-minute window (by receipt time).
    fn max_logins_in_window(&self) -> usize {
        let l = self.logins();
        l.iter()
            .map(|(t, _)| {
                l.iter()
                    .filter(|(u, _)| *u >= *t && *u < t + 10 * MINUTE)
                    .count()
            })
            .max()
            .unwrap_or(0)
    }

    fn locked_ever(&self) -> bool {
        self.st.lock().unwrap().locked_ever
    }

    async fn handle(
        &self,
        req: Request<hyper::body::Incoming>,
    ) -> Result<Response<Full<Bytes>>, std::io::Error> {
        let path = req.uri().path().to_string();
        let pq = req
            .uri()
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default();
        let body = req.into_body().collect().await.unwrap().to_bytes();
        let now = self.clock.now_millis();
        let (reply, delay) = {
            let mut s = self.st.lock().unwrap();
            s.requests.push(pq);
            if path.ends_with("/login") {
                // Counted on receipt, before any answer.
                let outcome = if s.locked_until > now {
                    Ans::Json(r#"{"status":"Failed","errno":"20002"}"#.into())
                } else {
                    match s.login.clone() {
                        Login::Ok => {
                            s.next_token += 1;
                            Ans::Json(format!(
                                r#"{{"status":"Success","token":"tok{:029}","transport":"TCP"}}"#,
                                s.next_token
                            ))
                        }
                        Login::Reject => Ans::Json(r#"{"status":"Failed","errno":"20003"}"#.into()),
                        Login::Http500 => Ans::Status(500, "<html>500</html>".into()),
                        Login::NoToken => Ans::Json(r#"{"status":"Success"}"#.into()),
                        Login::Close => Ans::Close,
                        Login::Redirect(code, to) => Ans::Redirect(code, to),
                    }
                };
                let token = matches!(&outcome, Ans::Json(b) if b.contains("token"));
                s.logins.push((now, token));
                if !token {
                    s.failures.retain(|t| now.saturating_sub(*t) < 10 * MINUTE);
                    s.failures.push(now);
                    if s.failures.len() >= 5 {
                        s.locked_until = now + 10 * MINUTE;
                        s.locked_ever = true;
                    }
                }
                let _ = &body;
                (outcome, s.login_delay)
            } else {
                let r = match s.query.clone() {
                    Query::Ok if path.ends_with("call/query") => {
                        Ans::Json(r#"{"status":"Success","Calls":[]}"#.into())
                    }
                    Query::Ok => Ans::Json(r#"{"status":"Success"}"#.into()),
                    Query::TokenRefused => {
                        Ans::Json(r#"{"status":"Failed","errno":"20004"}"#.into())
                    }
                    Query::Redirect(code, to) => Ans::Redirect(code, to),
                };
                (r, Duration::ZERO)
            }
        };
        tokio::time::sleep(delay).await;
        let mk = |status: u16, body: String| {
            let mut r = Response::new(Full::new(Bytes::from(body)));
            *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
            r
        };
        match reply {
            Ans::Json(b) => Ok(mk(200, b)),
            Ans::Status(code, b) => Ok(mk(code, b)),
            Ans::Redirect(code, to) => {
                let mut r = mk(code, String::new());
                r.headers_mut().insert("Location", to.parse().unwrap());
                Ok(r)
            }
            Ans::Close => Err(std::io::Error::other("close")),
        }
    }
}

enum Ans {
    Json(String),
    Status(u16, String),
    Redirect(u16, String),
    Close,
}

/// Scrapes every `every` of clock time for `total`, each with Prometheus's `timeout` header;
/// returns the pages' `yeastar_up` values.
async fn drive(
    exporter: &Running,
    clock: &ManualClock,
    every: Duration,
    timeout: &str,
    total: Duration,
) -> Vec<f64> {
    let client = reqwest::Client::new();
    let mut ups = Vec::new();
    let end = clock.now_millis() + total.as_millis() as u64;
    while clock.now_millis() < end {
        let r = client
            .get(format!("{}/metrics", exporter.url))
            .header("X-Prometheus-Scrape-Timeout-Seconds", timeout)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        ups.push(must(&r.text().await.unwrap(), "yeastar_up"));
        clock.advance(every);
    }
    ups
}

/// A burst at 5/s, half an hour at 1 per 15 s, another burst.
async fn day(exporter: &Running, clock: &ManualClock, timeout: &str) {
    drive(
        exporter,
        clock,
        Duration::from_millis(200),
        timeout,
        Duration::from_secs(30),
    )
    .await;
    drive(
        exporter,
        clock,
        Duration::from_secs(15),
        timeout,
        Duration::from_secs(30 * 60),
    )
    .await;
    drive(
        exporter,
        clock,
        Duration::from_millis(200),
        timeout,
        Duration::from_secs(30),
    )
    .await;
}

/// Every fault that keeps logins from yielding a usable token, at both scrape timeouts: the PBX
/// never sees more than 2 logins in any 10 minutes, and never locks the host out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_fault_makes_more_than_two_logins_in_ten_minutes() {
    let cases: Vec<(&str, Login, Query, Duration)> = vec![
        // A rejected login answered after the scrape's deadline (the 0.6 s scrape gets 0.1 s).
        (
            "slow reject",
            Login::Reject,
            Query::Ok,
            Duration::from_millis(300),
        ),
        ("reject", Login::Reject, Query::Ok, Duration::ZERO),
        ("http 500", Login::Http500, Query::Ok, Duration::ZERO),
        ("no token", Login::NoToken, Query::Ok, Duration::ZERO),
        ("closed", Login::Close, Query::Ok, Duration::ZERO),
        (
            "token refused",
            Login::Ok,
            Query::TokenRefused,
            Duration::ZERO,
        ),
        (
            "slow token refused",
            Login::Ok,
            Query::TokenRefused,
            Duration::from_millis(300),
        ),
    ];
    // Each case on its own clock, all at once.
    let mut runs = Vec::new();
    for timeout in ["0.6", "10"] {
        for (name, login, query, delay) in cases.clone() {
            runs.push(tokio::spawn(async move {
                let clock = ManualClock::new(T0);
                let pbx = Hostile::start(clock.clone(), login, query).await;
                pbx.set_delay(delay);
                let cfg = config(&pbx.url(), &["--pbx.timeout", "5s"]);
                let exporter = Running::start(cfg, clock.clone()).await;
                day(&exporter, &clock, timeout).await;
                let logins = pbx.logins();
                let most = pbx.max_logins_in_window();
                assert!(
                    most <= 2,
                    "{name} at timeout {timeout}: {most} logins in 10 minutes: {logins:?}"
                );
                // Logins went on being tried (about every 10 minutes), never more.
                assert!(
                    logins.len() >= 3 && logins.len() <= 8,
                    "{name} at timeout {timeout}: {} logins",
                    logins.len()
                );
                assert!(!pbx.locked_ever(), "{name}: locked out");
                exporter.stop().await;
            }));
        }
    }
    for r in runs {
        r.await.unwrap();
    }
}

/// The exact count for the case the issue measured (25 logins in 130 s, locked out after 26 s):
/// a rejection that arrives after a 0.6 s scrape gave up, scraped 5 times a second for 130 s.
#[tokio::test]
async fn a_slow_rejection_costs_one_login_not_one_per_scrape() {
    let clock = ManualClock::new(T0);
    let pbx = Hostile::start(clock.clone(), Login::Reject, Query::Ok).await;
    pbx.set_delay(Duration::from_millis(300));
    let exporter = Running::start(config(&pbx.url(), &[]), clock.clone()).await;
    let ups = drive(
        &exporter,
        &clock,
        Duration::from_millis(200),
        "0.6",
        Duration::from_secs(130),
    )
    .await;
    assert_eq!(ups.len(), 650);
    assert!(ups.iter().all(|u| *u == 0.0));
    assert_eq!(pbx.logins().len(), 1, "{:?}", pbx.logins());
    // Its answer was read after the scrape had answered, and counted as a rejection.
    let text = exporter.scrape().await;
    assert_eq!(requests(&text, "login", "api_error"), 1.0);
    assert_eq!(
        must(&text, r#"yeastar_pbx_logins_total{outcome="rejected"}"#),
        1.0
    );
    assert_eq!(must(&text, r#"yeastar_login_suspended"#), 1.0);
    exporter.stop().await;
}

/// Login works, every query says 20004: one login, then the back-off (the issue saw 282 in 60 s).
#[tokio::test]
async fn a_token_refused_right_after_login_suspends_logins() {
    let clock = ManualClock::new(T0);
    let pbx = Hostile::start(clock.clone(), Login::Ok, Query::TokenRefused).await;
    let exporter = Running::start(config(&pbx.url(), &[]), clock.clone()).await;
    drive(
        &exporter,
        &clock,
        Duration::from_millis(200),
        "10",
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(pbx.logins().len(), 1);
    let target = exporter.app.targets().iter().next().unwrap().clone();
    let error = target.last().unwrap().error.clone().unwrap();
    assert!(
        error.starts_with(
            "logins suspended (a login failed, or its outcome was not seen); next attempt in "
        ),
        "{error}"
    );
    let text = exporter.scrape().await;
    assert_eq!(
        must(
            &text,
            r#"yeastar_pbx_requests_total{endpoint="call/query",outcome="token_expired"}"#
        ),
        2.0,
        "the two call queries of the first scrape, none since"
    );
    // The PBX recovers: after the back-off (10 min + ≤ 10 % jitter) one login, and it sticks.
    let query_before = pbx.requests().len();
    clock.advance(Duration::from_secs(11 * 60));
    {
        let mut s = pbx.st.lock().unwrap();
        s.query = Query::Ok;
    }
    let text = exporter.scrape().await;
    assert_eq!(must(&text, "yeastar_up"), 1.0);
    assert_eq!(pbx.logins().len(), 2);
    assert!(pbx.requests().len() > query_before);
    exporter.stop().await;
}

/// Redirects are never followed: not the login body, not the token. The error says where the PBX
/// points and which URL to configure.
#[tokio::test]
async fn redirects_are_never_followed() {
    for code in [301u16, 302, 303, 307, 308] {
        let clock = ManualClock::new(T0);
        let elsewhere = Hostile::start(clock.clone(), Login::Ok, Query::Ok).await;
        let to = format!("https://user:pw@{}/api/v2.0.0/login?x=1", elsewhere.addr);
        // The login is redirected.
        let pbx = Hostile::start(clock.clone(), Login::Redirect(code, to.clone()), Query::Ok).await;
        let exporter = Running::start(config(&pbx.url(), &[]), clock.clone()).await;
        let text = exporter.scrape().await;
        assert_eq!(must(&text, "yeastar_up"), 0.0);
        assert_eq!(requests(&text, "login", "http_error"), 1.0);
        let target = exporter.app.targets().iter().next().unwrap().clone();
        let error = target.last().unwrap().error.clone().unwrap();
        assert_eq!(
            error,
            format!(
                "POST login: the PBX redirects (HTTP {code}) to https://{a}; redirects are never followed (they would carry the password and token elsewhere): set the target's url (--pbx.url) to https://{a} (with default web settings the PBX moves plain HTTP on port 80 to HTTPS on 8088)",
                a = elsewhere.addr
            )
        );
        exporter.stop().await;
        // Queries are redirected after a good login: the token stays home.
        let to = format!("http://{}/api/v2.0.0/call/query", elsewhere.addr);
        pbx.set_login(Login::Ok);
        {
            pbx.st.lock().unwrap().query = Query::Redirect(code, to);
        }
        let exporter = Running::start(config(&pbx.url(), &[]), clock.clone()).await;
        let text = exporter.scrape().await;
        assert_eq!(must(&text, "yeastar_up"), 0.0);
        assert_eq!(requests(&text, "call/query", "http_error"), 2.0);
        exporter.stop().await;
        assert!(
            elsewhere.requests().is_empty(),
            "HTTP {code}: something went elsewhere: {:?}",
            elsewhere.requests()
        );
    }
}

/// Back-offs that would let 5 rejected logins into 10 minutes are refused, by flag and by file.
#[test]
fn an_unsafe_login_backoff_is_refused() {
    use clap::Parser;
    use yeastar_exporter::config::Cli;
    for (value, four) in [("0s", "0s"), ("20s", "80s"), ("150s", "600s")] {
        let cli = Cli::try_parse_from([
            "x",
            "--pbx.url",
            "http://127.0.0.1:1",
            "--pbx.username",
            "api",
            "--pbx.login-backoff",
            value,
        ])
        .unwrap();
        let err = cli.exporter.resolve(Some("pw".into())).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "--pbx.login-backoff: {value} is too short: the PBX locks this host out after 5 failed logins in 10 minutes, and one login per back-off would reach 5 in {four}; use at least 3m (default 10m)"
            )
        );
    }
    let base = yeastar_exporter::config::TargetDefaults {
        api: "s-series".into(),
        api_path: "/api/v2.0.0".into(),
        collectors: Default::default(),
        timeout: Duration::from_secs(5),
        max_concurrent_requests: 1,
        max_response_bytes: 1 << 20,
        login_backoff: Duration::from_secs(600),
        insecure_skip_verify: false,
        proxy_url: None,
        events: false,
        events_tcp: false,
        events_tcp_port: 8333,
        events_endpoint: Default::default(),
        events_source_addresses: Vec::new(),
    };
    let file = "auth_modules:\n  a: {username: api, password: pw}\ntargets:\n  pbx1: {url: 'http://10.0.0.1', auth: a, login_backoff: 1m}\n";
    let err = yeastar_exporter::config::parse_file(file, "f.yml", &base).unwrap_err();
    assert_eq!(
        err.to_string(),
        "targets.pbx1.login_backoff: 60s is too short: the PBX locks this host out after 5 failed logins in 10 minutes, and one login per back-off would reach 5 in 240s; use at least 3m (default 10m)"
    );
}

/// The real binary, restarted 8 times with a wrong password and a state directory: the ledger
/// keeps the back-off, so the PBX sees one login (and never a lockout). Without the directory each
/// start logs in again, and it says so at start.
#[test]
fn restarts_keep_the_back_off_with_a_state_dir() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let clock = ManualClock::new(T0);
    let pbx = rt.block_on(Hostile::start(clock.clone(), Login::Reject, Query::Ok));
    let dir = tempdir("state");
    let state = dir.to_str().unwrap().to_string();
    let url = pbx.url();
    let run_once = |extra: &[&str]| -> Vec<String> {
        let mut args = vec!["--pbx.url", &url, "--pbx.username", "api"];
        args.extend_from_slice(extra);
        let mut run = spawn_exporter_env(&args, &[("YEASTAR_EXPORTER_PBX_PASSWORD", "wrong")]);
        let url = format!("{}/metrics", run.base);
        let text = rt.block_on(async { reqwest::get(&url).await.unwrap().text().await.unwrap() });
        assert!(text.contains("yeastar_up 0"), "{text}");
        run.child.kill().unwrap();
        run.child.wait().unwrap();
        run.before_listening
    };
    for _ in 0..8 {
        let log = run_once(&["--pbx.state-dir", &state]);
        assert!(
            log.iter().any(|l| l.contains("login ledger kept here")),
            "{log:?}"
        );
    }
    assert_eq!(pbx.logins().len(), 1, "{:?}", pbx.logins());
    assert!(dir.join("login-ledger.json").exists());
    // Without the directory: it warns, and a restart forgets.
    let log = run_once(&[]);
    assert!(
        log.iter()
            .any(|l| l.contains("no --pbx.state-dir: a restart forgets recent failed logins")),
        "{log:?}"
    );
    assert_eq!(pbx.logins().len(), 2);
    assert!(!pbx.locked_ever());
}

/// extension/query_call unsupported (older firmware) while calls churn: the status ages hold only
/// what the last scrape saw (the issue measured 13.7 → 772 MiB in 240 s).
#[tokio::test]
async fn status_ages_stay_bounded_when_internal_calls_is_unsupported() {
    use yeastar_exporter::sim::{Faults, SimConfig, Simulator};
    let clock = ManualClock::new(T0);
    let mut cfg = SimConfig::traffic(5, 200);
    cfg.faults = Faults {
        unsupported: vec!["extension/query_call".into()],
        ..Default::default()
    };
    let h = Simulator::start(cfg, clock.clone(), "127.0.0.1:0")
        .await
        .unwrap();
    let exporter = Running::start(sim_config(&h.url(), &[]), clock.clone()).await;
    let target = exporter.app.targets().iter().next().unwrap().clone();
    let mut most = 0;
    for _ in 0..120 {
        let text = exporter.scrape().await;
        assert_eq!(must(&text, "yeastar_up"), 1.0);
        let listed: f64 = lines_with(&text, "yeastar_call_members{")
            .iter()
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum();
        // Exactly the members this scrape listed, no more.
        assert_eq!(target.tracked_members() as f64, listed);
        most = most.max(target.tracked_members());
        clock.advance_secs(20);
    }
    assert!(most > 50, "the model carried too few calls: {most}");
    exporter.stop().await;
}

/// What the PBX sends is cut, replaced or refused, never trusted: Latin-1 names, huge numbers,
/// unreadable counts, megabyte errnos, and the three ways an idle PBX may say "no calls".
#[tokio::test]
async fn sloppy_answers_are_read_leniently_and_strictly() {
    let clock = ManualClock::new(T0);
    let pbx = FakePbx::start().await;
    let idle = [
        r#"{"status":"Success","Calls":[]}"#,
        r#"{"status":"Success"}"#,
        r#"{"status":"Failed","errno":"10007"}"#,
    ];
    for body in idle {
        pbx.json("call/query:inbound", body);
        pbx.json("call/query:outbound", body);
        pbx.json("extension/query_call", body);
        let exporter = Running::start(config(&pbx.url(), &[]), clock.clone()).await;
        let text = exporter.scrape().await;
        assert_eq!(must(&text, "yeastar_up"), 1.0, "{body}");
        assert_eq!(
            must(&text, r#"yeastar_active_calls{direction="inbound"}"#),
            0.0
        );
        assert_eq!(
            must(
                &text,
                r#"yeastar_collector_success{collector="internal_calls"}"#
            ),
            1.0,
            "{body}"
        );
        exporter.stop().await;
    }
    // A trunk named in Latin-1 (0xE9 is é), one named by a number beyond 2^53, a peer trunk.
    let mut trunks = br#"{"status":"Success","trunklist":[{"trunkname":"Op"#.to_vec();
    trunks.push(0xE9);
    trunks.extend_from_slice(
        br#"ra","type":"SIP","status":"Registered"},{"trunkname":111111111111111111111,"type":"SIP","status":"Failure"},{"trunkname":"peer","type":"SIP","status":"Unknown"},{"trunkname":"v1","type":"SIP","status":"Registered (Unmonitored)"}]}"#,
    );
    pbx.json("call/query:inbound", idle[0]);
    pbx.json("call/query:outbound", idle[0]);
    pbx.script(
        "trunk/list",
        vec![Reply::Json(String::from_utf8_lossy(&trunks).into_owned())],
    );
    // (The fake answers text, so the byte arrives already replaced; the decoder's own
    // replacement of raw bytes is `latin1_bytes_decode_with_replacement`.)
    let exporter = Running::start(config(&pbx.url(), &["--collector.queues"]), clock.clone()).await;
    pbx.json(
        "queue/query",
        r#"{"status":"Success","queues":[{"number":"6700"}]}"#,
    );
    pbx.json(
        "queue/query_status",
        r#"{"status":"Success","queues":[{"number":"6700","queuestatus":[{"callercount":"many","members":[]}]}]}"#,
    );
    let text = exporter.scrape().await;
    assert_eq!(must(&text, "yeastar_up"), 1.0);
    assert_eq!(
        must(&text, r#"yeastar_trunk_up{kind="sip",trunk="Op�ra"}"#),
        1.0
    );
    assert_eq!(
        must(
            &text,
            r#"yeastar_trunk_up{kind="sip",trunk="111111111111111111111"}"#
        ),
        0.0
    );
    assert_eq!(
        must(&text, r#"yeastar_trunk_up{kind="sip",trunk="peer"}"#),
        1.0
    );
    assert_eq!(
        must(&text, r#"yeastar_trunk_up{kind="sip",trunk="v1"}"#),
        1.0
    );
    assert_eq!(
        must(
            &text,
            r#"yeastar_trunk_status{kind="sip",status="registered_unmonitored",trunk="v1"}"#
        ),
        1.0
    );
    assert_eq!(
        must(&text, r#"yeastar_collector_success{collector="queues"}"#),
        0.0
    );
    assert_eq!(
        requests(&text, "queue/query_status", "success"),
        1.0,
        "the answer arrived; the collector refused its content"
    );
    assert_eq!(
        value(&text, r#"yeastar_queue_waiting_calls{queue="6700"}"#),
        None
    );
    exporter.stop().await;

    // A megabyte errno: cut in the error, the log and the landing page.
    let huge = "9".repeat(1_000_000);
    pbx.json(
        "call/query:inbound",
        &format!(r#"{{"status":"Failed","errno":"{huge}"}}"#),
    );
    let exporter = Running::start(config(&pbx.url(), &[]), clock.clone()).await;
    let text = exporter.scrape().await;
    assert_eq!(must(&text, "yeastar_up"), 0.0);
    let target = exporter.app.targets().iter().next().unwrap().clone();
    let error = target.last().unwrap().error.clone().unwrap();
    assert_eq!(
        error,
        format!(
            "POST call/query: PBX answered errno {}… (undocumented error)",
            "9".repeat(32)
        )
    );
    let (_, landing) = exporter.get("/").await;
    assert!(
        landing.len() < 4_000,
        "landing page of {} bytes",
        landing.len()
    );
    exporter.stop().await;
}

/// Invalid UTF-8 in a name is replaced, never fails the answer; raw bytes straight to the decoder.
#[test]
fn latin1_bytes_decode_with_replacement() {
    use yeastar_exporter::pbx::s_series::decode_answer;
    use yeastar_exporter::pbx::s_series::types::TrunkListAnswer;
    let mut bytes = br#"{"status":"Success","trunklist":[{"trunkname":"Op"#.to_vec();
    bytes.push(0xE9);
    bytes.extend_from_slice(br#"ra","type":"SIP","status":"Registered"}]}"#);
    let a: TrunkListAnswer = decode_answer("trunk/list", &bytes).unwrap();
    assert_eq!(a.trunklist[0].trunkname, "Op\u{FFFD}ra");
}

/// TLS as real units carry it: a self-signed certificate marked CA:TRUE, for another name, is
/// trusted when given as ca_file (pinned); the mismatch is a warning at start. Wrong schemes are
/// explained.
#[tokio::test]
async fn pinned_self_signed_certificates_and_wrong_schemes() {
    let leaf = Leaf::self_signed_ca(&["pbx.example.com"]);
    let pbx = FakePbx::start_tls(tokio_rustls::TlsAcceptor::from(leaf.server_config())).await;
    pbx.json("call/query:inbound", r#"{"status":"Success","Calls":[]}"#);
    pbx.json("call/query:outbound", r#"{"status":"Success","Calls":[]}"#);
    let dir = tempdir("pin");
    let own = dir.join("pbx.crt");
    std::fs::write(&own, &leaf.cert_pem).unwrap();
    let clock = ManualClock::new(T0);
    let exporter = Running::start(
        config(&pbx.https_url(), &["--pbx.ca-file", own.to_str().unwrap()]),
        clock.clone(),
    )
    .await;
    let text = exporter.scrape().await;
    assert_eq!(must(&text, "yeastar_up"), 1.0);
    exporter.stop().await;
    // Without it: refused, in words.
    let exporter = Running::start(config(&pbx.https_url(), &[]), clock.clone()).await;
    exporter.scrape().await;
    let target = exporter.app.targets().iter().next().unwrap().clone();
    let error = target.last().unwrap().error.clone().unwrap();
    assert!(!error.contains("Other("), "{error}");
    assert_eq!(
        error,
        "POST login: connection failed: TLS: the PBX presents a CA certificate (CA:TRUE, as `openssl req -x509` makes) as its own: give the PBX's own certificate as ca_file (--pbx.ca-file) to pin it"
    );
    exporter.stop().await;
    // http:// to the TLS port.
    let exporter = Running::start(config(&pbx.url(), &[]), clock.clone()).await;
    exporter.scrape().await;
    let target = exporter.app.targets().iter().next().unwrap().clone();
    let error = target.last().unwrap().error.clone().unwrap();
    assert!(
        error.contains("is this an HTTPS port? then use an https:// URL"),
        "{error}"
    );
    exporter.stop().await;
    // https:// to a plain port.
    let plain = FakePbx::start().await;
    let exporter = Running::start(config(&plain.https_url(), &[]), clock.clone()).await;
    exporter.scrape().await;
    let target = exporter.app.targets().iter().next().unwrap().clone();
    let error = target.last().unwrap().error.clone().unwrap();
    assert_eq!(
        error,
        "POST login: connection failed: TLS: the PBX did not answer with TLS (is this port plain HTTP? then use an http:// URL)"
    );
    assert_eq!(plain.count("login"), 0);
    exporter.stop().await;
    // The real binary warns at start that the pinned certificate does not name the host.
    let mut run = spawn_exporter(&[
        "--pbx.url",
        &pbx.https_url(),
        "--pbx.username",
        "api",
        "--pbx.password-file",
        own.to_str().unwrap(),
        "--pbx.ca-file",
        own.to_str().unwrap(),
    ]);
    run.child.kill().unwrap();
    run.child.wait().unwrap();
    assert!(
        run.before_listening.iter().any(|l| l.contains("level=warn")
            && l.contains("no certificate in")
            && l.contains("lists 127.0.0.1 (it lists: pbx.example.com")),
        "{:?}",
        run.before_listening
    );
}

/// Multi-target mode goes through the same client: a target whose PBX (the simulator, told to
/// redirect as a plain-HTTP port does) answers 307 is down with the redirect named, and the other
/// PBX it points at never hears of it.
#[tokio::test]
async fn multi_target_probes_never_follow_redirects_either() {
    use clap::Parser;
    use yeastar_exporter::sim::{Faults, SimConfig, Simulator};
    let clock = ManualClock::new(T0);
    let elsewhere = Simulator::start(SimConfig::traffic(1, 5), clock.clone(), "127.0.0.1:0")
        .await
        .unwrap();
    let redirecting = Simulator::start(SimConfig::traffic(2, 5), clock.clone(), "127.0.0.1:0")
        .await
        .unwrap();
    redirecting.sim.set_faults(Faults {
        redirect_to: Some(format!("{}/api/v2.0.0/login", elsewhere.url())),
        ..Default::default()
    });
    let dir = tempdir("multi-redirect");
    let path = dir.join("c.yml");
    std::fs::write(
        &path,
        format!(
            "auth_modules:\n  a: {{username: api, password: demo-password}}\ndefaults: {{auth: a}}\ntargets:\n  moved: {{url: '{}'}}\n",
            redirecting.url()
        ),
    )
    .unwrap();
    let cfg = yeastar_exporter::config::Cli::try_parse_from([
        "x",
        "--config.file",
        path.to_str().unwrap(),
    ])
    .unwrap()
    .exporter
    .load(None)
    .unwrap();
    let exporter = Running::start(cfg, clock.clone()).await;
    let (status, text) = exporter.get("/probe?target=moved").await;
    assert_eq!(status, 200);
    assert_eq!(must(&text, "yeastar_up"), 0.0);
    let target = exporter.app.targets().iter().next().unwrap().clone();
    let error = target.last().unwrap().error.clone().unwrap();
    assert!(
        error.starts_with(&format!(
            "POST login: the PBX redirects (HTTP 307) to {}; redirects are never followed",
            elsewhere.url()
        )),
        "{error}"
    );
    assert_eq!(elsewhere.sim.total_requests(), 0);
    assert_eq!(redirecting.sim.requests("login"), 1);
    exporter.stop().await;
}

/// A PBX that refuses connections (rebooting, port closed) never saw a login: it costs nothing
/// from the budget, so the exporter logs in as soon as the PBX is back rather than 10 minutes later.
#[tokio::test]
async fn refused_connections_cost_no_login_budget() {
    let clock = ManualClock::new(T0);
    let url = format!("http://127.0.0.1:{}", free_port());
    let exporter = Running::start(config(&url, &[]), clock.clone()).await;
    for _ in 0..10 {
        let text = exporter.scrape().await;
        assert_eq!(must(&text, "yeastar_up"), 0.0);
        assert_eq!(must(&text, r#"yeastar_login_suspended"#), 0.0);
        clock.advance_secs(15);
    }
    let text = exporter.scrape().await;
    assert_eq!(
        must(&text, r#"yeastar_pbx_logins_total{outcome="error"}"#),
        11.0,
        "one attempt per scrape, none held against the PBX"
    );
    assert_eq!(requests(&text, "login", "connect_error"), 11.0);
    exporter.stop().await;
}
