//! Issue 26, first step: the exporter against a scripted fake P-Series PBX over a real socket.
//! The fake records every request (method, path, query, body, User-Agent) and answers each
//! endpoint from a script: exact metric values for calls in every member status and direction,
//! an idle PBX in each of its three forms, the grant (one `get_token`, a `refresh_token` before
//! the access token ends, `del_token` at shutdown, with exact counts), and the refusals a login
//! can meet (a wrong secret, the token cap) each suspending logins with its own words.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use yeastar_exporter::support::clock::ManualClock;

const T0: u64 = 1_651_057_500;
const CLIENT_ID: &str = "client-id-1";
const SECRET: &str = "client-secret-1";

/// One request as the fake saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    endpoint: String,
    query: String,
    body: String,
    user_agent: String,
}

/// A fake P-Series PBX: scripted JSON per endpoint (`call/query:inbound` for a call type).
#[derive(Clone, Default)]
struct FakeP {
    script: Arc<Mutex<HashMap<String, String>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl FakeP {
    async fn start(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let me = me.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    // Read the head, then the body its Content-Length announces.
                    let (head, body) = loop {
                        let n = sock.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..i]).to_string();
                            let len: usize = head
                                .lines()
                                .find_map(|l| {
                                    let (k, v) = l.split_once(':')?;
                                    k.eq_ignore_ascii_case("content-length")
                                        .then(|| v.trim().parse().ok())?
                                })
                                .unwrap_or(0);
                            while buf.len() < i + 4 + len {
                                let n = sock.read(&mut chunk).await.unwrap_or(0);
                                if n == 0 {
                                    break;
                                }
                                buf.extend_from_slice(&chunk[..n]);
                            }
                            let body = String::from_utf8_lossy(&buf[i + 4..]).to_string();
                            break (head, body);
                        }
                    };
                    let mut words = head.lines().next().unwrap_or("").split(' ');
                    let method = words.next().unwrap_or("").to_string();
                    let target = words.next().unwrap_or("").to_string();
                    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
                    let endpoint = path
                        .strip_prefix("/openapi/v1.0/")
                        .unwrap_or(path)
                        .to_string();
                    let user_agent = head
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("user-agent")
                                .then(|| v.trim().to_string())
                        })
                        .unwrap_or_default();
                    let key = match query.split('&').find_map(|p| p.strip_prefix("type=")) {
                        Some(t) => format!("{endpoint}:{t}"),
                        None => endpoint.clone(),
                    };
                    me.seen.lock().unwrap().push(Seen {
                        method,
                        endpoint,
                        query: query.to_string(),
                        body,
                        user_agent,
                    });
                    let answer =
                        me.script
                            .lock()
                            .unwrap()
                            .get(&key)
                            .cloned()
                            .unwrap_or_else(|| {
                                r#"{"errcode":10001,"errmsg":"INTERFACE NOT EXISTED"}"#.to_string()
                            });
                    let reply = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                        answer.len()
                    );
                    let _ = sock.write_all(reply.as_bytes()).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        format!("http://{addr}")
    }

    fn answer(&self, key: &str, json: &str) {
        self.script
            .lock()
            .unwrap()
            .insert(key.to_string(), json.to_string());
    }

    fn count(&self, endpoint: &str) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.endpoint == endpoint)
            .count()
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn tokens(access: &str, refresh: &str) -> String {
    format!(
        r#"{{"errcode":0,"errmsg":"SUCCESS","access_token_expire_time":1800,"access_token":"{access}","refresh_token_expire_time":86400,"refresh_token":"{refresh}"}}"#
    )
}

const INBOUND: &str = r#"{"errcode":0,"errmsg":"SUCCESS","data":[
  {"call_id":"1651057476.362","members":[
    {"inbound":{"from":"5503301","to":"2002","trunk_name":"SIP-Trunk1","channel_id":"PJSIP/trunk-00000010","member_status":"ALERT","call_path":""}},
    {"extension":{"number":"2002","channel_id":"PJSIP/2002-00000011","member_status":"RING","call_path":"6400"}}]},
  {"call_id":"1651057400.360","members":[
    {"inbound":{"from":"5503302","to":"2003","trunk_name":"SIP-Trunk1","channel_id":"PJSIP/trunk-00000012","member_status":"ANSWERED","call_path":""}},
    {"extension":{"number":"2003","channel_id":"PJSIP/2003-00000013","member_status":"ANSWER","call_path":""}}]}]}"#;
const OUTBOUND: &str = r#"{"errcode":0,"errmsg":"SUCCESS","data":[
  {"call_id":"1651057300.350","members":[
    {"extension":{"number":"2005","channel_id":"PJSIP/2005-00000014","member_status":"HOLD","call_path":""}},
    {"outbound":{"from":"2005","to":"5551234","trunk_name":"SIP-Trunk2","channel_id":"PJSIP/trunk2-00000015","member_status":"EARLYMEDIA","call_path":""}}]}]}"#;
const INTERNAL: &str = r#"{"errcode":0,"errmsg":"SUCCESS","data":[
  {"call_id":"1651057450.361","members":[
    {"extension":{"number":"2006","channel_id":"PJSIP/2006-00000016","member_status":"ALERT","call_path":""}},
    {"extension":{"number":"2007","channel_id":"PJSIP/2007-00000017","member_status":"BYE","call_path":""}}]}]}"#;
const TRUNKS: &str = r#"{"errcode":0,"errmsg":"SUCCESS","total_number":3,"data":[
  {"id":1,"name":"SIP-Trunk1","type":"register","status":1},
  {"id":2,"name":"SIP-Trunk2","type":"peer","status":3},
  {"id":3,"name":"gsm1","type":"GSM","status":33}]}"#;
const EXTENSIONS: &str = r#"{"errcode":0,"errmsg":"SUCCESS","total_number":2,"data":[
  {"id":1,"number":"2002","online_status":{"sip_phone":{"status":0,"status_list":[{"status":1,"ip":"192.168.5.20:5060"}]}}},
  {"id":2,"number":"2003","online_status":{"sip_phone":{"status":0}}}]}"#;
const SYSTEM: &str = r#"{"errcode":0,"errmsg":"SUCCESS","data":{"device_name":"PBX","model_name":"Yeastar P560","sn":"3631A2124XXX","hardware_version":"V1.00 0000-0000","firmware_version":"37.21.0.117","up_time":24852}}"#;

async fn busy_pbx() -> (FakeP, String) {
    let pbx = FakeP::default();
    pbx.answer("get_token", &tokens("access-1", "refresh-1"));
    pbx.answer("refresh_token", &tokens("access-2", "refresh-2"));
    pbx.answer("del_token", r#"{"errcode":0,"errmsg":"SUCCESS"}"#);
    pbx.answer("call/query:inbound", INBOUND);
    pbx.answer("call/query:outbound", OUTBOUND);
    pbx.answer("call/query:internal", INTERNAL);
    pbx.answer("trunk/list", TRUNKS);
    pbx.answer("extension/list", EXTENSIONS);
    pbx.answer("system/information", SYSTEM);
    let url = pbx.start().await;
    (pbx, url)
}

fn p_config(url: &str, extra: &[&str]) -> yeastar_exporter::config::Config {
    let mut args = vec!["--pbx.api", "p-series"];
    args.extend_from_slice(extra);
    with_login(config(url, &args), CLIENT_ID, SECRET)
}

#[tokio::test]
async fn a_p_series_pbx_gives_the_same_metrics() {
    let (pbx, url) = busy_pbx().await;
    let clock = ManualClock::new(T0);
    let exporter = Running::start(p_config(&url, &[]), clock.clone()).await;
    let text = exporter.scrape().await;
    let want = [
        ("yeastar_up", 1.0),
        (r#"yeastar_active_calls{direction="inbound"}"#, 2.0),
        (r#"yeastar_active_calls{direction="outbound"}"#, 1.0),
        (r#"yeastar_active_calls{direction="internal"}"#, 1.0),
        (r#"yeastar_call_members{member="ext",status="ring"}"#, 1.0),
        (r#"yeastar_call_members{member="ext",status="answer"}"#, 1.0),
        (r#"yeastar_call_members{member="ext",status="hold"}"#, 1.0),
        (r#"yeastar_call_members{member="ext",status="alert"}"#, 1.0),
        (r#"yeastar_call_members{member="ext",status="bye"}"#, 1.0),
        (
            r#"yeastar_call_members{member="inbound",status="alert"}"#,
            1.0,
        ),
        (
            r#"yeastar_call_members{member="inbound",status="answered"}"#,
            1.0,
        ),
        (
            r#"yeastar_call_members{member="outbound",status="other"}"#,
            1.0,
        ),
        (
            r#"yeastar_trunk_active_calls{direction="inbound",trunk="SIP-Trunk1"}"#,
            2.0,
        ),
        (
            r#"yeastar_trunk_active_calls{direction="outbound",trunk="SIP-Trunk2"}"#,
            1.0,
        ),
        (
            r#"yeastar_trunk_active_calls{direction="inbound",trunk="gsm1"}"#,
            0.0,
        ),
        (r#"yeastar_callpath_active_calls{callpath="6400"}"#, 1.0),
        (
            r#"yeastar_trunk_up{kind="register",trunk="SIP-Trunk1"}"#,
            1.0,
        ),
        (r#"yeastar_trunk_up{kind="peer",trunk="SIP-Trunk2"}"#, 1.0),
        (r#"yeastar_trunk_up{kind="gsm",trunk="gsm1"}"#, 0.0),
        (
            r#"yeastar_trunk_status{kind="gsm",status="no_sim",trunk="gsm1"}"#,
            1.0,
        ),
        (r#"yeastar_extensions{status="registered"}"#, 1.0),
        (r#"yeastar_extensions{status="unavailable"}"#, 1.0),
        (
            r#"yeastar_pbx_info{firmware_version="37.21.0.117",hardware_version="V1.00 0000-0000",model="Yeastar P560"}"#,
            1.0,
        ),
        ("yeastar_pbx_uptime_seconds", 24852.0),
        (r#"yeastar_collector_success{collector="calls"}"#, 1.0),
        (
            r#"yeastar_collector_success{collector="internal_calls"}"#,
            1.0,
        ),
        (r#"yeastar_collector_success{collector="trunks"}"#, 1.0),
        (r#"yeastar_collector_success{collector="extensions"}"#, 1.0),
        (r#"yeastar_collector_success{collector="device"}"#, 1.0),
    ];
    for (series, v) in want {
        assert_eq!(value(&text, series), Some(v), "{series}\n{text}");
    }
    // The oldest call's age comes from its call_id, as on the S-Series.
    assert_eq!(
        must(
            &text,
            r#"yeastar_call_max_age_seconds{direction="inbound"}"#
        ),
        (T0 - 1_651_057_400) as f64
    );
    // No phone or extension number reached a label.
    for number in ["5503301", "2002\"", "5551234", "2005\"", "2006\""] {
        assert!(!text.contains(number), "{number} in\n{text}");
    }
    // The requests: one get_token with the secret as is, the rest GETs with the token.
    let seen = pbx.seen();
    let login = seen.iter().find(|s| s.endpoint == "get_token").unwrap();
    assert_eq!(login.method, "POST");
    assert_eq!(
        login.body,
        format!(r#"{{"password":"{SECRET}","username":"{CLIENT_ID}"}}"#)
    );
    for s in &seen {
        assert!(!s.user_agent.is_empty(), "{s:?}");
        if s.endpoint != "get_token" {
            assert_eq!(s.method, "GET", "{s:?}");
            assert!(s.query.starts_with("access_token=access-1"), "{s:?}");
        }
    }
    assert_eq!(
        requests(&text, "call/query", "success"),
        3.0,
        "inbound, outbound, internal"
    );
    assert_eq!(pbx.count("get_token"), 1);
    // Shutdown revokes the token: its slot of the application's 8 is free again.
    exporter.app.logout_all(Duration::from_secs(5)).await;
    exporter.stop().await;
    assert_eq!(pbx.count("del_token"), 1);
    let del = pbx
        .seen()
        .into_iter()
        .find(|s| s.endpoint == "del_token")
        .unwrap();
    assert_eq!(
        (del.method.as_str(), del.query.as_str()),
        ("GET", "access_token=access-1")
    );
}

#[tokio::test]
async fn one_token_renewed_before_it_ends_over_many_scrapes() {
    let (pbx, url) = busy_pbx().await;
    let clock = ManualClock::new(T0);
    let exporter = Running::start(p_config(&url, &[]), clock.clone()).await;
    // 100 scrapes 15 s apart: 25 minutes, under the 28-minute renewal point.
    for _ in 0..100 {
        let text = exporter.scrape().await;
        assert_eq!(value(&text, "yeastar_up"), Some(1.0));
        clock.advance(Duration::from_secs(15));
    }
    assert_eq!((pbx.count("get_token"), pbx.count("refresh_token")), (1, 0));
    // Past 28 minutes: one refresh, and the new token is used from then on.
    clock.advance(Duration::from_secs(4 * 60));
    let _ = exporter.scrape().await;
    assert_eq!((pbx.count("get_token"), pbx.count("refresh_token")), (1, 1));
    let refresh = pbx
        .seen()
        .into_iter()
        .find(|s| s.endpoint == "refresh_token")
        .unwrap();
    assert_eq!(
        (refresh.method.as_str(), refresh.body.as_str()),
        ("POST", r#"{"refresh_token":"refresh-1"}"#)
    );
    let last = pbx.seen().into_iter().last().unwrap();
    assert!(last.query.starts_with("access_token=access-2"), "{last:?}");
    let _ = exporter.scrape().await;
    assert_eq!((pbx.count("get_token"), pbx.count("refresh_token")), (1, 1));
    exporter.stop().await;
}

#[tokio::test]
async fn an_idle_pbx_is_up_with_zeros_in_each_form() {
    for data in [r#","data":[]"#, r#","data":null"#, ""] {
        let (pbx, url) = busy_pbx().await;
        let idle = format!(r#"{{"errcode":0,"errmsg":"SUCCESS"{data}}}"#);
        for t in ["inbound", "outbound", "internal"] {
            pbx.answer(&format!("call/query:{t}"), &idle);
        }
        let exporter = Running::start(p_config(&url, &[]), ManualClock::new(T0)).await;
        let text = exporter.scrape().await;
        assert_eq!(value(&text, "yeastar_up"), Some(1.0), "{data}: {text}");
        for d in ["inbound", "outbound", "internal"] {
            assert_eq!(
                value(
                    &text,
                    &format!(r#"yeastar_active_calls{{direction="{d}"}}"#)
                ),
                Some(0.0),
                "{data}"
            );
        }
        exporter.stop().await;
    }
}

#[tokio::test]
async fn a_wrong_secret_and_the_token_cap_suspend_logins_with_their_own_words() {
    for (answer, cause) in [
        (
            r#"{"errcode":-1,"errmsg":"FAILURE","invalid_param_list":[{"field":"username or password","value":"error"}]}"#,
            "login rejected: wrong username or password (errcode -1)",
        ),
        (
            r#"{"errcode":60002,"errmsg":"MAX LIMITATION EXCEEDED"}"#,
            "login refused: the application holds the most tokens the PBX allows (errcode 60002)",
        ),
    ] {
        let (pbx, url) = busy_pbx().await;
        pbx.answer("get_token", answer);
        let clock = ManualClock::new(T0);
        let exporter = Running::start(p_config(&url, &[]), clock.clone()).await;
        let _ = exporter.scrape().await;
        let (_, page) = exporter.get("/").await;
        assert!(
            page.contains(cause),
            "{cause} not on the landing page:\n{page}"
        );
        for _ in 0..20 {
            let text = exporter.scrape().await;
            assert_eq!(value(&text, "yeastar_up"), Some(0.0));
            assert_eq!(value(&text, "yeastar_login_suspended"), Some(1.0), "{text}");
            clock.advance(Duration::from_secs(5));
        }
        // One attempt in 100 s of scrapes: the back-off holds.
        assert_eq!(pbx.count("get_token"), 1, "{cause}");
        exporter.stop().await;
    }
}

#[test]
fn p_series_settings_are_checked_with_the_field_named() {
    let out = run_exporter_once(
        &[
            "--pbx.url",
            "http://127.0.0.1:9",
            "--pbx.username",
            "id",
            "--pbx.api",
            "p-series",
            "--pbx.events",
            "--config.check",
        ],
        &[("YEASTAR_EXPORTER_PBX_PASSWORD", "s")],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "--pbx.events: the event reports of a P-Series PBX (its WebSocket) are not read yet: switch events off for this target"
        ),
        "{err}"
    );
    let out = run_exporter_once(
        &["--pbx.url", "http://127.0.0.1:9", "--pbx.api", "q-series"],
        &[],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("invalid value 'q-series' for '--pbx.api <PBX_API>'"),
        "{err}"
    );
}

/// A restart (a crash: no shutdown, no `del_token`) takes up the token the state directory kept
/// rather than asking for another: a crash loop cannot fill the application's 8 slots. A clean
/// shutdown revokes it and forgets it, so the next start asks for a new one.
#[tokio::test]
async fn a_restart_takes_up_the_kept_token_instead_of_minting_another() {
    let (pbx, url) = busy_pbx().await;
    let dir = tempdir("p-state");
    let dir_s = dir.to_str().unwrap().to_string();
    let clock = ManualClock::new(T0);
    for round in 0..5 {
        let exporter =
            Running::start(p_config(&url, &["--pbx.state-dir", &dir_s]), clock.clone()).await;
        let text = exporter.scrape().await;
        assert_eq!(value(&text, "yeastar_up"), Some(1.0), "round {round}");
        // Crashed: no logout.
        exporter.stop().await;
        clock.advance(Duration::from_secs(10));
    }
    assert_eq!((pbx.count("get_token"), pbx.count("del_token")), (1, 0));
    let last = pbx.seen().into_iter().last().unwrap();
    assert!(last.query.starts_with("access_token=access-1"), "{last:?}");
    // The state file holds the tokens: 0600, and nothing prints them.
    let file = dir.join(yeastar_exporter::pbx::ledger::STATE_FILE);
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    assert!(std::fs::read_to_string(&file).unwrap().contains("access-1"));
    // A clean shutdown revokes it and forgets it.
    let exporter =
        Running::start(p_config(&url, &["--pbx.state-dir", &dir_s]), clock.clone()).await;
    let _ = exporter.scrape().await;
    exporter.app.logout_all(Duration::from_secs(5)).await;
    exporter.stop().await;
    assert_eq!((pbx.count("get_token"), pbx.count("del_token")), (1, 1));
    assert!(!std::fs::read_to_string(&file).unwrap().contains("access-1"));
    let exporter =
        Running::start(p_config(&url, &["--pbx.state-dir", &dir_s]), clock.clone()).await;
    let _ = exporter.scrape().await;
    assert_eq!(pbx.count("get_token"), 2);
    exporter.stop().await;
    // A kept token the PBX no longer knows is not a failed login: it logs in again once.
    pbx.answer("get_token", &tokens("access-3", "refresh-3"));
    pbx.answer(
        "call/query:inbound",
        r#"{"errcode":10004,"errmsg":"TOKEN EXPIRED"}"#,
    );
    let exporter =
        Running::start(p_config(&url, &["--pbx.state-dir", &dir_s]), clock.clone()).await;
    let text = exporter.scrape().await;
    assert_eq!(value(&text, "yeastar_login_suspended"), Some(0.0), "{text}");
    assert_eq!(pbx.count("get_token"), 3);
    exporter.stop().await;
}
