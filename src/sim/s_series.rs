//! The S-Series API's answers: an endpoint and its JSON body in, the JSON the PBX answers out,
//! written from the [`model`](super::model)'s views.

use std::collections::HashMap;
use std::net::IpAddr;

use serde_json::{Value, json};

use super::delivery::EventReceiver;
use super::model;
use super::{MemberKind, Simulator, lock};

impl Simulator {
    /// The answer to a well-formed POST to `endpoint` from `peer`: a login, else the token of
    /// `query` checked and the API's answer.
    pub(super) fn answer(&self, endpoint: &str, query: &str, body: &Value, peer: IpAddr) -> Answer {
        if endpoint == "login" {
            let answer = self.login(body, peer);
            if answer.is_success()
                && let Some(r) = EventReceiver::of(body, peer)
            {
                self.register_receiver(r);
            }
            return answer;
        }
        if let Err(e) = self.check_token(query) {
            return e;
        }
        if endpoint == "heartbeat"
            && let Some(r) = EventReceiver::of(body, peer)
        {
            self.register_receiver(r);
        }
        self.api(endpoint, body, token_of(query).to_string())
    }

    /// The bytes this PBX answers to an authenticated request to `endpoint` with `body`, now: the
    /// benchmarks' and property tests' input, without a network.
    pub fn answer_bytes(&self, endpoint: &str, body: &Value) -> Vec<u8> {
        self.api(endpoint, body, String::new()).0
    }

    fn api(&self, endpoint: &str, body: &Value, token: String) -> Answer {
        let now_ms = self.clock.now_millis();
        let lifetime = lock(&self.cfg).token_lifetime;
        let mut model = lock(&self.model);
        model.advance(now_ms / 1000);
        let str_field = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_string);
        match endpoint {
            "heartbeat" => {
                lock(&self.accounts).extend(token, now_ms + lifetime);
                success([])
            }
            "logout" => {
                lock(&self.accounts).end(&token);
                success([])
            }
            "call/query" => {
                if let Some(callid) = str_field("callid") {
                    match model.calls.iter().find(|c| c.callid == callid) {
                        Some(c) => Answer(model::CallsAnswer::bytes(vec![c.view()])),
                        None => failed("10005"),
                    }
                } else {
                    let kind = match str_field("type").as_deref() {
                        Some("inbound") => MemberKind::Inbound,
                        Some("outbound") => MemberKind::Outbound,
                        Some(_) => return failed("10004"),
                        None => return failed("10004"),
                    };
                    Answer(model.call_query_answer(kind))
                }
            }
            "extension/query_call" => {
                let Some(number) = str_field("number") else {
                    return failed("10004");
                };
                let wanted: Vec<&str> = number.split(',').map(str::trim).collect();
                let all = number == "all";
                let mut by_ext: Vec<(String, Vec<model::CallView<'_>>)> = Vec::new();
                let mut index: HashMap<String, usize> = HashMap::new();
                for c in &model.calls {
                    for m in c.members.iter().filter(|m| m.kind == MemberKind::Ext) {
                        if !all && !wanted.contains(&m.number.as_str()) {
                            continue;
                        }
                        let i = *index.entry(m.number.clone()).or_insert_with(|| {
                            by_ext.push((m.number.clone(), Vec::new()));
                            by_ext.len() - 1
                        });
                        by_ext[i].1.push(c.view());
                    }
                }
                let calllist: Vec<ExtensionCallsView<'_>> = by_ext
                    .into_iter()
                    .map(|(number, numbercalls)| ExtensionCallsView {
                        number,
                        numbercalls,
                    })
                    .collect();
                Answer::serialize(&ExtensionCallsAnswer {
                    status: "Success",
                    calllist,
                })
            }
            "trunk/list" => success([("trunklist", model.trunk_list().into())]),
            "extension/list" => success([("extlist", model.extension_list().into())]),
            "deviceinfo/query" => {
                let up = (now_ms / 1000).saturating_sub(model.booted);
                let (d, h, m, s) = (up / 86_400, up % 86_400 / 3600, up % 3600 / 60, up % 60);
                let uptime = if d > 0 {
                    format!("{d} days, {h:02}:{m:02}:{s:02}")
                } else {
                    format!("{h:02}:{m:02}:{s:02}")
                };
                let registered = model.extensions.iter().filter(|e| e.registered).count();
                success([(
                    "deviceinfo",
                    json!({
                        "devicename": "S100",
                        // The serial its event reports carry.
                        "sn": model.sn(),
                        "hardwarever": "0000-0000-000",
                        "firmwarever": "30.13.0.30",
                        "systemtime": (now_ms / 1000).to_string(),
                        "uptime": uptime,
                        "extensionstatus": format!("{registered}/{}", model.extensions.len()),
                    }),
                )])
            }
            "queue/query" => {
                let number = str_field("number").unwrap_or_default();
                let queues: Vec<Value> = model
                    .queues
                    .iter()
                    .filter(|(n, _)| number == "all" || number.split(',').any(|x| x.trim() == n))
                    .map(|(n, agents)| {
                        let agents: Vec<&str> = agents.iter().map(|i| model.extensions[*i].number.as_str()).collect();
                        json!({"number": n, "queuename": format!("Queue {n}"), "agents": agents.join(",")})
                    })
                    .collect();
                success([("queues", queues.into())])
            }
            "queue/query_status" => {
                let Some(number) = str_field("number") else {
                    return failed("10004");
                };
                let queues: Vec<Value> = number
                    .split(',')
                    .filter_map(|n| model.queue_status(n.trim()))
                    .collect();
                success([("queues", queues.into())])
            }
            _ => failed("10003"),
        }
    }
}

/// `{"status": "Success"}` with `fields` beside it: every successful answer but the typed
/// `call/query` and `extension/query_call` ones.
pub(super) fn success<const N: usize>(fields: [(&str, Value); N]) -> Answer {
    let mut answer = serde_json::Map::new();
    answer.insert("status".into(), "Success".into());
    answer.extend(fields.map(|(k, v)| (k.to_string(), v)));
    Value::Object(answer).into()
}

/// `{"status": "Failed", "errno": errno}`: every refusal.
pub(super) fn failed(errno: &str) -> Answer {
    json!({"status": "Failed", "errno": errno}).into()
}

/// A serialized answer body.
pub(super) struct Answer(Vec<u8>);

impl Answer {
    /// Whether it is a [`success`] (which serializes `status` first).
    fn is_success(&self) -> bool {
        self.0.starts_with(br#"{"status":"Success""#)
    }

    fn serialize(v: &impl serde::Serialize) -> Self {
        // Serializing plain structs of strings into a Vec cannot fail.
        Answer(serde_json::to_vec(v).unwrap_or_default())
    }

    pub(super) fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

impl From<Value> for Answer {
    fn from(v: Value) -> Self {
        Answer::serialize(&v)
    }
}

#[derive(serde::Serialize)]
struct ExtensionCallsView<'a> {
    number: String,
    numbercalls: Vec<model::CallView<'a>>,
}

#[derive(serde::Serialize)]
struct ExtensionCallsAnswer<'a> {
    status: &'static str,
    calllist: Vec<ExtensionCallsView<'a>>,
}

/// The `token=` of a request's query string (empty without one).
pub(super) fn token_of(query: &str) -> &str {
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix("token="))
        .unwrap_or("")
}
