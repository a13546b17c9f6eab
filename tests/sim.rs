//! Issue 3: the simulated PBX answers like the real one, and demo mode works end to end.

mod common;

use common::*;
use serde_json::{Value, json};
use yeastar_exporter::sim::{Faults, SimConfig, SimHandle, Simulator};
use yeastar_exporter::support::clock::{ManualClock, SharedClock};

const T0: u64 = 1_700_000_000;

async fn sim(clock: SharedClock, calls: usize) -> SimHandle {
    let cfg = SimConfig::traffic(42, calls);
    Simulator::start(cfg, clock, "127.0.0.1:0").await.unwrap()
}

async fn post(
    h: &SimHandle,
    endpoint: &str,
    token: Option<&str>,
    body: Value,
) -> (reqwest::header::HeaderMap, Value) {
    let mut url = format!("{}/api/v2.0.0/{endpoint}", h.url());
    if let Some(t) = token {
        url.push_str(&format!("?token={t}"));
    }
    let r = reqwest::Client::new()
        .post(url)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let headers = r.headers().clone();
    (
        headers,
        serde_json::from_str(&r.text().await.unwrap()).unwrap(),
    )
}

async fn login(h: &SimHandle, password: &str) -> Value {
    let md5 = yeastar_exporter::support::secret::Secret::new(password).md5_hex();
    post(
        h,
        "login",
        None,
        json!({"username": "api", "password": md5.expose(), "version": "2.0.0"}),
    )
    .await
    .1
}

async fn token(h: &SimHandle) -> String {
    let a = login(h, "demo-password").await;
    assert_eq!(a["status"], "Success", "{a}");
    assert_eq!(a["transport"], "TCP");
    a["token"].as_str().unwrap().to_string()
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

#[tokio::test]
async fn answers_have_the_shapes_of_the_seed() {
    let h = sim(ManualClock::new(T0), 60).await;
    let t = token(&h).await;
    let seed: Value = serde_json::from_str(&fixture("seed-example2-inbound.json")).unwrap();
    let (headers, answer) = post(&h, "call/query", Some(&t), json!({"type": "inbound"})).await;
    assert_eq!(headers["server"], "Boa/0.94.14rc21");
    assert_eq!(headers["connection"], "close");
    assert_eq!(keys(&answer), keys(&seed));
    let seed_call = &seed["Calls"][0];
    let seed_inbound = &seed_call["members"][0]["inbound"];
    let seed_ext = &seed_call["members"][1]["ext"];
    let calls = answer["Calls"].as_array().unwrap();
    assert!(!calls.is_empty());
    let mut saw_ext = false;
    for call in calls {
        assert_eq!(keys(call), keys(seed_call));
        let callid = call["callid"].as_str().unwrap();
        let (secs, seq) = callid.split_once('.').unwrap();
        assert!(
            secs.parse::<u64>().unwrap() <= T0 && seq.parse::<u64>().is_ok(),
            "{callid}"
        );
        for m in call["members"].as_array().unwrap() {
            let (kind, info) = m.as_object().unwrap().iter().next().unwrap();
            assert_eq!(m.as_object().unwrap().len(), 1);
            let mut k = keys(info);
            k.retain(|x| x != "callpath");
            let expected = match kind.as_str() {
                "inbound" | "outbound" => keys(seed_inbound),
                "ext" => {
                    saw_ext = true;
                    keys(seed_ext)
                }
                other => panic!("unknown kind {other}"),
            };
            assert_eq!(k, expected, "{m}");
            for (field, v) in info.as_object().unwrap() {
                assert!(v.is_string(), "{field} is not a string: {m}");
            }
            let ch = info["channelid"].as_str().unwrap();
            assert!(ch.starts_with("PJSIP/") || ch.starts_with("DAHDI/"), "{ch}");
            let hex = ch.rsplit('-').next().unwrap();
            assert!(
                hex.len() == 8 && u64::from_str_radix(hex, 16).is_ok(),
                "{ch}"
            );
            assert!(
                ["ALERT", "RING", "ANSWERED", "ANSWER", "HOLD", "BYE"]
                    .contains(&info["memberstatus"].as_str().unwrap())
            );
        }
    }
    assert!(saw_ext);
    // By callid, and an unknown one.
    let id = calls[0]["callid"].as_str().unwrap();
    let (_, one) = post(&h, "call/query", Some(&t), json!({"callid": id})).await;
    assert_eq!(one["Calls"][0]["callid"], id);
    let (_, none) = post(&h, "call/query", Some(&t), json!({"callid": "1.1"})).await;
    assert_eq!(none, json!({"status": "Failed", "errno": "10005"}));
    // Errors as the PBX words them.
    let (_, unknown) = post(&h, "cdr/query", Some(&t), json!({})).await;
    assert_eq!(unknown, json!({"status": "Failed", "errno": "10003"}));
    let get: Value = reqwest::get(format!("{}/api/v2.0.0/trunk/list?token={t}", h.url()))
        .await
        .unwrap()
        .text()
        .await
        .map(|t| serde_json::from_str(&t).unwrap())
        .unwrap();
    assert_eq!(get, json!({"status": "Failed", "errno": "20001"}));
    let bad: Value = reqwest::Client::new()
        .post(format!("{}/api/v2.0.0/trunk/list?token={t}", h.url()))
        .body("not json")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .map(|t| serde_json::from_str(&t).unwrap())
        .unwrap();
    assert_eq!(bad, json!({"status": "Failed", "errno": "20000"}));
    let (_, notoken) = post(&h, "trunk/list", None, json!({})).await;
    assert_eq!(notoken, json!({"status": "Failed", "errno": "20005"}));
    // Every other listed endpoint answers Success with its list.
    for (endpoint, body, key) in [
        ("extension/query_call", json!({"number": "all"}), "calllist"),
        ("trunk/list", json!({}), "trunklist"),
        ("extension/list", json!({}), "extlist"),
        ("deviceinfo/query", json!({}), "deviceinfo"),
        ("queue/query", json!({"number": "all"}), "queues"),
        ("queue/query_status", json!({"number": "6700"}), "queues"),
        ("heartbeat", json!({}), "status"),
    ] {
        let (_, a) = post(&h, endpoint, Some(&t), body).await;
        assert_eq!(a["status"], "Success", "{endpoint}: {a}");
        assert!(!a[key].is_null(), "{endpoint}: {a}");
    }
    let (_, q) = post(
        &h,
        "queue/query_status",
        Some(&t),
        json!({"number": "6700"}),
    )
    .await;
    let agents = q["queues"][0]["queuestatus"][0]["members"]
        .as_array()
        .unwrap();
    assert_eq!(agents.len(), 4);
    let (_, out) = post(&h, "logout", Some(&t), json!({})).await;
    assert_eq!(out["status"], "Success");
    let (_, after) = post(&h, "trunk/list", Some(&t), json!({})).await;
    assert_eq!(after, json!({"status": "Failed", "errno": "20004"}));
}

#[tokio::test]
async fn five_bad_logins_lock_the_caller_out_for_ten_minutes() {
    let clock = ManualClock::new(T0);
    let h = sim(clock.clone(), 5).await;
    for _ in 0..5 {
        assert_eq!(
            login(&h, "wrong").await,
            json!({"status": "Failed", "errno": "20003"})
        );
    }
    // Locked: even the right password is refused.
    assert_eq!(
        login(&h, "demo-password").await,
        json!({"status": "Failed", "errno": "20002"})
    );
    assert!(h.sim.is_locked("127.0.0.1".parse().unwrap()));
    clock.advance_secs(9 * 60);
    assert_eq!(login(&h, "demo-password").await["errno"], "20002");
    clock.advance_secs(61);
    assert_eq!(login(&h, "demo-password").await["status"], "Success");
}

#[tokio::test]
async fn tokens_expire_after_30_minutes_and_heartbeat_extends_them() {
    let clock = ManualClock::new(T0);
    let h = sim(clock.clone(), 5).await;
    let t = token(&h).await;
    clock.advance_secs(31 * 60);
    let (_, a) = post(&h, "call/query", Some(&t), json!({"type": "inbound"})).await;
    assert_eq!(a, json!({"status": "Failed", "errno": "20006"}));

    let t = token(&h).await;
    clock.advance_secs(20 * 60);
    assert_eq!(
        post(&h, "heartbeat", Some(&t), json!({})).await.1["status"],
        "Success"
    );
    clock.advance_secs(20 * 60);
    assert_eq!(
        post(&h, "call/query", Some(&t), json!({"type": "inbound"}))
            .await
            .1["status"],
        "Success"
    );
    clock.advance_secs(11 * 60);
    assert_eq!(
        post(&h, "call/query", Some(&t), json!({"type": "inbound"}))
            .await
            .1["errno"],
        "20006"
    );
}

#[tokio::test]
async fn the_exporter_sees_exactly_the_calls_the_model_holds() {
    let clock = ManualClock::new(T0);
    let h = sim(clock.clone(), 80).await;
    let cfg = sim_config(&h.url(), &[]);
    let exporter = Running::start(cfg, clock.clone()).await;
    let mut changed = false;
    let mut last = None;
    for step in 0..6 {
        let text = exporter.scrape().await;
        let snap = h.sim.snapshot();
        assert_eq!(must(&text, "yeastar_up"), 1.0);
        let seen = assert_model_calls(&text, &snap, step);
        if last.is_some_and(|l| l != seen) {
            changed = true;
        }
        last = Some(seen);
        clock.advance_secs(37);
    }
    assert!(changed, "traffic did not change over three minutes");
    exporter.stop().await;
}

#[test]
fn demo_mode_end_to_end() {
    let spawned = spawn_exporter(&["--demo"]);
    let url = format!("{}/metrics", spawned.base);
    let (mut child, _log) = spawned.drain();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let texts: Vec<String> = rt.block_on(async {
        let mut out = Vec::new();
        for _ in 0..2 {
            out.push(reqwest::get(&url).await.unwrap().text().await.unwrap());
            tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        }
        // The demo PBX reports its calls (README: the call counters move): to the path the
        // login registered, from its own address, with its serial number — counted, none
        // refused. Its calls change every few seconds; wait up to 30 s for the first report.
        for _ in 0..30 {
            let text = reqwest::get(&url).await.unwrap().text().await.unwrap();
            let received = events_received(&text);
            out.push(text);
            if received > 0.0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
        out
    });
    let last = texts.last().unwrap();
    assert!(events_received(last) > 0.0, "{last}");
    for reason in ["unknown_path", "stale_path", "wrong_source", "wrong_sn"] {
        let series = format!(r#"yeastar_events_refused_total{{reason="{reason}"}}"#);
        assert_eq!(must(last, &series), 0.0, "{series}");
    }
    signal_child(&child, "TERM");
    let status = child.wait().unwrap();
    for text in &texts {
        assert_eq!(must(text, "yeastar_up"), 1.0);
        let active: f64 = ["inbound", "outbound", "internal"]
            .iter()
            .map(|d| must(text, &format!(r#"yeastar_active_calls{{direction="{d}"}}"#)))
            .sum();
        assert!(active > 0.0, "{text}");
        assert!(text.contains("yeastar_trunk_up{"));
        assert!(text.contains("yeastar_callpath_active_calls{"));
    }
    assert!(status.success(), "exit status {status:?}");
}

/// Issue 26: a P-Series simulator answers the OpenAPI v1.0 over a real socket: a token, the
/// model's calls by direction, and `del_token` ending the token.
#[tokio::test]
async fn a_p_series_simulator_answers_the_openapi_over_a_socket() {
    let clock = ManualClock::new(T0);
    let cfg = SimConfig::p_series_traffic(42, 30);
    let h = Simulator::start(cfg, clock.clone(), "127.0.0.1:0")
        .await
        .unwrap();
    let base = format!("{}/openapi/v1.0", h.url());
    let client = reqwest::Client::builder()
        .user_agent("OpenAPI")
        .build()
        .unwrap();
    let r = client
        .post(format!("{base}/get_token"))
        .header("Content-Type", "application/json")
        .body(json!({"username": "api", "password": "demo-password"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["connection"], "close");
    assert!(r.headers().get("server").is_none());
    let grant: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(grant["errcode"], 0, "{grant}");
    assert_eq!(grant["errmsg"], "SUCCESS");
    assert_eq!(grant["access_token_expire_time"], 1800);
    let token = grant["access_token"].as_str().unwrap().to_string();
    assert_eq!(token.len(), 32);
    let get = |path: String| {
        let client = client.clone();
        async move {
            let text = client.get(path).send().await.unwrap().text().await.unwrap();
            serde_json::from_str::<Value>(&text).unwrap()
        }
    };
    let snap = h.sim.snapshot();
    let mut members = 0;
    for (i, direction) in ["inbound", "outbound", "internal"].into_iter().enumerate() {
        let a = get(format!(
            "{base}/call/query?access_token={token}&type={direction}"
        ))
        .await;
        assert_eq!(a["errcode"], 0, "{a}");
        let calls = a["data"].as_array().unwrap();
        assert_eq!(calls.len() as u64, snap.active[i], "{direction}");
        for call in calls {
            let kinds: Vec<&str> = call["members"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m.as_object().unwrap().keys().next().unwrap().as_str())
                .collect();
            members += kinds.len() as u64;
            let expected = match direction {
                "inbound" => kinds.contains(&"inbound"),
                "outbound" => kinds.contains(&"outbound") && !kinds.contains(&"inbound"),
                _ => kinds.iter().all(|k| *k == "extension"),
            };
            assert!(expected, "{direction}: {call}");
            for m in call["members"].as_array().unwrap() {
                let info = m.as_object().unwrap().values().next().unwrap();
                assert!(
                    info.as_object().unwrap().values().all(Value::is_string),
                    "{m}"
                );
            }
        }
    }
    assert_eq!(members, snap.members.values().sum::<u64>());
    assert_eq!(h.sim.requests("get_token"), 1);
    assert_eq!(h.sim.requests("call/query:inbound"), 1);
    // The vendor's User-Agent rule: reqwest sends none by default.
    let bare: Value = serde_json::from_str(
        &reqwest::get(format!("{base}/system/capacity?access_token={token}"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(bare, json!({"errcode": 40002, "errmsg": "PARAMETER ERROR"}));
    // The S-Series path is no interface here.
    let s = get(format!(
        "{}/api/v2.0.0/call/query?access_token={token}",
        h.url()
    ))
    .await;
    assert_eq!(
        s,
        json!({"errcode": 10001, "errmsg": "INTERFACE NOT EXISTED"})
    );
    let del = get(format!("{base}/del_token?access_token={token}")).await;
    assert_eq!(del, json!({"errcode": 0, "errmsg": "SUCCESS"}));
    assert_eq!(h.sim.live_tokens(), 0);
    let after = get(format!(
        "{base}/call/query?access_token={token}&type=inbound"
    ))
    .await;
    assert_eq!(after, json!({"errcode": 10004, "errmsg": "TOKEN EXPIRED"}));
    // The wire faults act on the P-Series answers too.
    let url = format!("{base}/system/information?access_token={token}");
    h.sim.set_faults(Faults {
        http500_rate: 1.0,
        ..Faults::default()
    });
    assert_eq!(client.get(&url).send().await.unwrap().status(), 500);
    h.sim.set_faults(Faults {
        malformed_rate: 1.0,
        ..Faults::default()
    });
    let cut = client.get(&url).send().await.unwrap().text().await.unwrap();
    assert_eq!(cut, r#"{"errcode":10004,"err"#);
    h.sim.set_faults(Faults {
        pad_bytes: 3,
        ..Faults::default()
    });
    let padded = client.get(&url).send().await.unwrap().text().await.unwrap();
    assert_eq!(padded, r#"{"errcode":10004,"errmsg":"TOKEN EXPIRED"}   "#);
}

/// Issue 26: the exporter in P-Series mode against the P-Series simulator sees exactly the calls
/// and members the model holds, scrape after scrape as the calls move, on one token.
#[tokio::test]
async fn a_p_series_exporter_sees_exactly_the_calls_the_model_holds() {
    let clock = ManualClock::new(T0);
    let h = Simulator::start(
        SimConfig::p_series_traffic(7, 80),
        clock.clone(),
        "127.0.0.1:0",
    )
    .await
    .unwrap();
    let cfg = sim_config(&h.url(), &["--pbx.api", "p-series"]);
    let exporter = Running::start(cfg, clock.clone()).await;
    for step in 0..6 {
        let text = exporter.scrape().await;
        let snap = h.sim.snapshot();
        assert_eq!(must(&text, "yeastar_up"), 1.0, "step {step}: {text}");
        assert_model_calls(&text, &snap, step);
        for c in ["calls", "internal_calls", "trunks", "extensions", "device"] {
            let series = format!(r#"yeastar_collector_success{{collector="{c}"}}"#);
            assert_eq!(must(&text, &series), 1.0, "step {step}: {series}\n{text}");
        }
        clock.advance_secs(37);
    }
    assert_eq!(h.sim.requests("get_token"), 1);
    assert_eq!(h.sim.live_tokens(), 1);
    exporter
        .app
        .logout_all(std::time::Duration::from_secs(5))
        .await;
    assert_eq!(h.sim.live_tokens(), 0, "del_token freed the slot");
    exporter.stop().await;
}

/// Issue 26: `--demo --demo.api p-series` runs the exporter against the embedded P-Series
/// simulator: up, calls, every default collector, and a clean stop that revokes its token.
#[test]
fn demo_mode_speaks_p_series() {
    let spawned = spawn_exporter(&["--demo", "--demo.api", "p-series"]);
    let url = format!("{}/metrics", spawned.base);
    let (mut child, log) = spawned.drain();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let text = rt.block_on(async { reqwest::get(&url).await.unwrap().text().await.unwrap() });
    signal_child(&child, "TERM");
    let status = child.wait().unwrap();
    let log = log.join().unwrap();
    assert!(status.success(), "{log}");
    assert_eq!(must(&text, "yeastar_up"), 1.0, "{text}");
    let active: f64 = ["inbound", "outbound", "internal"]
        .iter()
        .map(|d| {
            must(
                &text,
                &format!(r#"yeastar_active_calls{{direction="{d}"}}"#),
            )
        })
        .sum();
    assert!(active > 0.0, "{text}");
    for c in ["calls", "internal_calls", "trunks", "extensions", "device"] {
        let series = format!(r#"yeastar_collector_success{{collector="{c}"}}"#);
        assert_eq!(must(&text, &series), 1.0, "{series}");
    }
    assert!(text.contains(r#"model="Yeastar P560""#), "{text}");
    assert!(!log.contains("scrape failed"), "{log}");
}

/// Issue 26: another application holds all 8 tokens of the Client ID. The exporter's one
/// `get_token` is refused with 60002, named as the token cap; it asks no more until its back-off
/// ends, and once the other tokens expired it logs in and the PBX is up.
#[tokio::test]
async fn the_token_cap_reached_by_another_application() {
    let clock = ManualClock::new(T0);
    let h = Simulator::start(
        SimConfig::p_series_traffic(3, 10),
        clock.clone(),
        "127.0.0.1:0",
    )
    .await
    .unwrap();
    let base = format!("{}/openapi/v1.0", h.url());
    let other = reqwest::Client::builder()
        .user_agent("a CRM")
        .build()
        .unwrap();
    for _ in 0..8 {
        let text = other
            .post(format!("{base}/get_token"))
            .header("Content-Type", "application/json")
            .body(json!({"username": "api", "password": "demo-password"}).to_string())
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let r: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(r["errcode"], 0, "{r}");
    }
    assert_eq!(h.sim.live_tokens(), 8);
    let cfg = sim_config(&h.url(), &["--pbx.api", "p-series"]);
    let exporter = Running::start(cfg, clock.clone()).await;
    let text = exporter.scrape().await;
    assert_eq!(must(&text, "yeastar_up"), 0.0);
    assert_eq!(must(&text, "yeastar_login_suspended"), 1.0);
    let (_, page) = exporter.get("/").await;
    assert!(
        page.contains(
            "login refused: the application holds the most tokens the PBX allows (errcode 60002)"
        ),
        "{page}"
    );
    for _ in 0..20 {
        clock.advance_secs(5);
        let text = exporter.scrape().await;
        assert_eq!(must(&text, "yeastar_up"), 0.0);
    }
    assert_eq!(
        h.sim.requests("get_token"),
        9,
        "8 of the CRM's, 1 of the exporter's"
    );
    // The CRM's tokens expire (30 minutes); the exporter's back-off has ended by then.
    clock.advance_secs(31 * 60);
    let text = exporter.scrape().await;
    assert_eq!(must(&text, "yeastar_up"), 1.0, "{text}");
    assert_eq!(must(&text, "yeastar_login_suspended"), 0.0);
    assert_eq!(h.sim.requests("get_token"), 10);
    assert_eq!(h.sim.live_tokens(), 1);
    exporter.stop().await;
}

/// Asserts that `text` shows exactly the active calls and members of the model's `snap` (at
/// scrape `step`), and returns the three active-call counts it shows.
fn assert_model_calls(
    text: &str,
    snap: &yeastar_exporter::sim::model::Snapshot,
    step: usize,
) -> [f64; 3] {
    let seen = [
        must(text, r#"yeastar_active_calls{direction="inbound"}"#),
        must(text, r#"yeastar_active_calls{direction="outbound"}"#),
        must(text, r#"yeastar_active_calls{direction="internal"}"#),
    ];
    assert_eq!(seen, snap.active.map(|n| n as f64), "step {step}");
    for kind in ["ext", "inbound", "outbound"] {
        for status in ["ALERT", "RING", "ANSWERED", "ANSWER", "HOLD", "BYE"] {
            let expected = snap.members.get(&(kind, status)).copied().unwrap_or(0) as f64;
            let label = status.to_ascii_lowercase();
            let series = format!(r#"yeastar_call_members{{member="{kind}",status="{label}"}}"#);
            assert_eq!(must(text, &series), expected, "step {step}: {series}");
        }
    }
    seen
}
