//! The P-Series OpenAPI v1.0's answers (`yeastar-pseries-api.md` §1–§3): a request's method,
//! endpoint, query string and JSON body in, the JSON the PBX answers out, written from the
//! [`model`](super::model) — the same calls, members, trunks, extensions, queues and device the
//! S-Series side answers from, so both APIs tell the same truth.
//!
//! Every answer is HTTP 200 with `{"errcode": N, "errmsg": "…"}` and its payload beside them;
//! each shape is written once here (the views below), for the network and for
//! [`Simulator::p_series_answer_bytes`] alike. Grants (tokens, the cap, the IP block) are decided in
//! `accounts`; this module words them. It knows no collector and no client.
//!
//! Choices where the vendor leaves it UNKNOWN (beside those of `accounts::OpenApiGrants`):
//! - A request without a non-empty `User-Agent` is answered 40002 `PARAMETER ERROR` (the vendor
//!   says it MUST be sent, not what happens when it is not).
//! - A blocked address gets 70004 `ACCOUNT IP BLOCKED` on every request, before anything else is
//!   looked at (not a refused connection).
//! - An unknown or revoked access token is 10004 `TOKEN EXPIRED`, as an expired one.
//! - `call/query` without `type` lists every call; with no call matching it answers the idle
//!   form of [`IdleCalls`] (default `data: []`).
//! - List endpoints default to [`P_SERIES_PAGE_SIZE`] entries a page, take any `page_size` ≥ 1,
//!   and answer `data: []` (with the real `total_number`) past the last page.
//! - `system/capacity`'s `cc_used` counts every call up, internal ones too.
//! - Answers carry no `Server` header (the P-Series web server's is not documented).
//!
//! Not here yet: the WebSocket event subscription (`/openapi/v1.0/subscribe`, §4.1). It will be
//! a route of its own in `server.rs` (an upgrade, not a JSON answer) fed by the model's outbox, as
//! `delivery` feeds the S-Series event reports.

use std::collections::HashMap;
use std::net::IpAddr;

use hyper::Method;
use serde::Serialize;
use serde_json::{Value, json};

use super::accounts::{Lifetimes, Pair, Refusal};
use super::model::{Model, Phase, SimCall, SimMember, SimTrunk, TrunkKind, civil_time};
use super::{Faults, IdleCalls, MemberKind, Simulator, lock};

/// The P-Series OpenAPI's path.
pub const P_SERIES_API_PATH: &str = "/openapi/v1.0";

/// Entries a page of `trunk/list`, `extension/list` and `queue/list` hold without `page_size`
/// (the vendor's default is UNKNOWN; consumers ask for 50 or 100).
pub const P_SERIES_PAGE_SIZE: usize = 20;

/// The endpoints the simulator answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    GetToken,
    RefreshToken,
    DelToken,
    CallQuery,
    SystemInformation,
    SystemCapacity,
    TrunkList,
    ExtensionList,
    QueueList,
    QueueAgentStatus,
    QueueCallStatus,
}

/// Each endpoint's path below the API path, the one table paths are read from.
const ROUTES: [(&str, Endpoint); 11] = [
    ("get_token", Endpoint::GetToken),
    ("refresh_token", Endpoint::RefreshToken),
    ("del_token", Endpoint::DelToken),
    ("call/query", Endpoint::CallQuery),
    ("system/information", Endpoint::SystemInformation),
    ("system/capacity", Endpoint::SystemCapacity),
    ("trunk/list", Endpoint::TrunkList),
    ("extension/list", Endpoint::ExtensionList),
    ("queue/list", Endpoint::QueueList),
    ("queue/agent_status", Endpoint::QueueAgentStatus),
    ("queue/call_status", Endpoint::QueueCallStatus),
];

/// Every endpoint the P-Series simulator answers, as its path below [`P_SERIES_API_PATH`].
pub fn p_series_endpoints() -> impl Iterator<Item = &'static str> {
    ROUTES.iter().map(|(path, _)| *path)
}

impl Endpoint {
    fn of(path: &str) -> Option<Self> {
        ROUTES.iter().find(|(p, _)| *p == path).map(|(_, e)| *e)
    }

    /// The token requests are POSTs of a JSON body; everything else is a GET.
    fn method(self) -> Method {
        match self {
            Endpoint::GetToken | Endpoint::RefreshToken => Method::POST,
            _ => Method::GET,
        }
    }
}

/// The error answers the simulator gives, with the vendor's spellings (§2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Code {
    InternalError,
    Failure,
    InterfaceNotExisted,
    TokenExpired,
    SyntaxError,
    ParameterError,
    DataNotFound,
    MaxLimitation,
    IpBlocked,
}

impl Code {
    fn errcode(self) -> i64 {
        match self {
            Code::InternalError => -2,
            Code::Failure => -1,
            Code::InterfaceNotExisted => 10001,
            Code::TokenExpired => 10004,
            Code::SyntaxError => 40001,
            Code::ParameterError => 40002,
            Code::DataNotFound => 60001,
            Code::MaxLimitation => 60002,
            Code::IpBlocked => 70004,
        }
    }

    fn errmsg(self) -> &'static str {
        match self {
            Code::InternalError => "INTERNAL SERVER ERROR",
            Code::Failure => "FAILURE",
            Code::InterfaceNotExisted => "INTERFACE NOT EXISTED",
            Code::TokenExpired => "TOKEN EXPIRED",
            Code::SyntaxError => "PARAMETER SYNTAX ERROR",
            Code::ParameterError => "PARAMETER ERROR",
            Code::DataNotFound => "DATA NOT FOUND",
            Code::MaxLimitation => "MAX LIMITATION EXCEEDED",
            Code::IpBlocked => "ACCOUNT IP BLOCKED",
        }
    }
}

/// `{"errcode", "errmsg"}` with the payload's fields beside them: every answer.
#[derive(Serialize)]
struct Envelope<P> {
    errcode: i64,
    errmsg: &'static str,
    #[serde(flatten)]
    payload: P,
}

/// No payload.
#[derive(Serialize)]
struct Nothing {}

/// A successful answer with `payload` beside `errcode` 0.
fn success(payload: impl Serialize) -> Vec<u8> {
    serialize(&Envelope {
        errcode: 0,
        errmsg: "SUCCESS",
        payload,
    })
}

/// An error answer with `payload` beside its code.
fn refusal(code: Code, payload: impl Serialize) -> Vec<u8> {
    serialize(&Envelope {
        errcode: code.errcode(),
        errmsg: code.errmsg(),
        payload,
    })
}

/// An error answer of `code` alone.
fn error(code: Code) -> Vec<u8> {
    refusal(code, Nothing {})
}

/// 40002 naming the parameter `field` and what is wrong with it (`required`, `invalid`).
fn param_error(field: &str, validation_type: &str) -> Vec<u8> {
    refusal(
        Code::ParameterError,
        json!({"invalid_param_list": [{"field": field, "validation_type": validation_type}]}),
    )
}

fn serialize(v: &impl Serialize) -> Vec<u8> {
    // Structs of strings and integers and string-keyed maps: serializing into a Vec cannot fail.
    serde_json::to_vec(v).unwrap_or_default()
}

/// A request's query parameters (the first of a repeated name wins).
#[derive(Debug, Default)]
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(query: &str) -> Self {
        Params(
            form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect(),
        )
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A positive integer parameter, `default` when absent, else the 40002 to answer.
    fn positive(&self, name: &str, default: usize) -> Result<usize, Vec<u8>> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => match v.parse::<usize>() {
                Ok(n) if n >= 1 => Ok(n),
                _ => Err(param_error(name, "invalid")),
            },
        }
    }

    /// `page` (1-based) and `page_size`: the range of a list to answer.
    fn page(&self) -> Result<(usize, usize), Vec<u8>> {
        let page = self.positive("page", 1)?;
        let size = self.positive("page_size", P_SERIES_PAGE_SIZE)?;
        Ok(((page - 1).saturating_mul(size), size))
    }
}

/// The request counter's key: the endpoint, `call/query:<type>` for a call query by type (as on
/// the S-Series side).
pub(super) fn count_key(endpoint: &str, query: &str) -> String {
    match Params::parse(query).get("type") {
        Some(t) if endpoint == "call/query" => format!("call/query:{t}"),
        _ => endpoint.to_string(),
    }
}

/// One request as the server read it.
#[derive(Debug)]
pub(super) struct Request<'a> {
    pub(super) method: &'a Method,
    /// The path below the API path (empty when the path is not below it).
    pub(super) endpoint: &'a str,
    pub(super) query: &'a str,
    /// The body, when it is JSON.
    pub(super) body: Option<&'a Value>,
    /// Whether it carried a non-empty `User-Agent`.
    pub(super) user_agent: bool,
    pub(super) peer: IpAddr,
}

impl Simulator {
    /// The answer to `req`: the block, the `User-Agent`, the route and its method, the faults
    /// that answer for the PBX (errors, unsupported endpoints), the token requests, else the
    /// access token checked and the API's answer.
    pub(super) fn p_series_answer(&self, req: &Request<'_>, faults: &Faults) -> Vec<u8> {
        if lock(&self.accounts).open.is_blocked(req.peer) {
            return error(Code::IpBlocked);
        }
        if !req.user_agent {
            return error(Code::ParameterError);
        }
        let Some(endpoint) = Endpoint::of(req.endpoint) else {
            return error(Code::InterfaceNotExisted);
        };
        if *req.method != endpoint.method() {
            return error(Code::InterfaceNotExisted);
        }
        if self.roll(faults.error_rate) {
            return error(Code::InternalError);
        }
        if faults.unsupported.iter().any(|e| e == req.endpoint) {
            return error(Code::InterfaceNotExisted);
        }
        match endpoint {
            Endpoint::GetToken => return self.get_token(req.body, req.peer),
            Endpoint::RefreshToken => return self.refresh_token(req.body),
            _ => {}
        }
        let params = Params::parse(req.query);
        let token = params.get("access_token").unwrap_or("");
        let now = self.clock.now_millis();
        if !lock(&self.accounts).open.access_alive(token, now) {
            return error(Code::TokenExpired);
        }
        if endpoint == Endpoint::DelToken {
            lock(&self.accounts).open.revoke(token);
            return success(Nothing {});
        }
        self.p_series_api(endpoint, &params, faults)
    }

    /// The bytes this PBX answers to an authenticated GET of `endpoint` with the query
    /// parameters `params` (without `access_token`), now: the benchmarks' and tests' input,
    /// without a network. The token endpoints and unknown paths answer 10001 here.
    pub fn p_series_answer_bytes(&self, endpoint: &str, params: &[(&str, &str)]) -> Vec<u8> {
        let params = Params(
            params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        let faults = lock(&self.cfg).faults.clone();
        match Endpoint::of(endpoint) {
            Some(Endpoint::GetToken | Endpoint::RefreshToken | Endpoint::DelToken) | None => {
                error(Code::InterfaceNotExisted)
            }
            Some(e) => self.p_series_api(e, &params, &faults),
        }
    }

    fn lifetimes(&self) -> Lifetimes {
        let cfg = lock(&self.cfg);
        Lifetimes {
            access: cfg.p_series.access_token_lifetime,
            refresh: cfg.p_series.refresh_token_lifetime,
        }
    }

    /// A new 32-character `[A-Za-z0-9]` token.
    fn mint(&self) -> String {
        let mut rng = lock(&self.fault_rng);
        (0..32).map(|_| rng.alphanumeric()).collect()
    }

    /// `POST get_token {"username": <Client ID>, "password": <Client Secret>}`.
    fn get_token(&self, body: Option<&Value>, peer: IpAddr) -> Vec<u8> {
        let Some(body) = body.filter(|b| b.is_object()) else {
            return error(Code::SyntaxError);
        };
        let field = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or("");
        let right = {
            let cfg = lock(&self.cfg);
            !cfg.username.is_empty()
                && field("username") == cfg.username
                && field("password") == cfg.password.expose()
        };
        let life = self.lifetimes();
        let now = self.clock.now_millis();
        let issued = {
            let mut acc = lock(&self.accounts);
            if !right {
                acc.open.failed(peer);
                return refusal(
                    Code::Failure,
                    json!({"invalid_param_list": [{"field": "username or password", "value": "error"}]}),
                );
            }
            let issued = acc.open.issue(now, life, || self.mint());
            if issued.is_ok() {
                acc.open.succeeded(peer);
            }
            issued
        };
        self.granted(issued, life)
    }

    /// `POST refresh_token {"refresh_token": …}`.
    fn refresh_token(&self, body: Option<&Value>) -> Vec<u8> {
        let Some(body) = body.filter(|b| b.is_object()) else {
            return error(Code::SyntaxError);
        };
        let refresh = body
            .get("refresh_token")
            .and_then(Value::as_str)
            .unwrap_or("");
        let life = self.lifetimes();
        let now = self.clock.now_millis();
        let issued = lock(&self.accounts)
            .open
            .refresh(refresh, now, life, || self.mint());
        self.granted(issued, life)
    }

    /// The answer to a token request that issued `issued`.
    fn granted(&self, issued: Result<Pair, Refusal>, life: Lifetimes) -> Vec<u8> {
        match issued {
            Ok(pair) => {
                self.note_issued(&pair);
                success(TokenView {
                    access_token_expire_time: life.access / 1000,
                    access_token: &pair.access,
                    refresh_token_expire_time: life.refresh / 1000,
                    refresh_token: &pair.refresh,
                })
            }
            Err(Refusal::Cap) => error(Code::MaxLimitation),
            Err(Refusal::Unknown) => error(Code::TokenExpired),
        }
    }

    /// An authenticated GET of `endpoint`, answered from the model advanced to now.
    fn p_series_api(&self, endpoint: Endpoint, params: &Params, faults: &Faults) -> Vec<u8> {
        let now_ms = self.clock.now_millis();
        let p = lock(&self.cfg).p_series.clone();
        let mut model = lock(&self.model);
        model.advance(now_ms / 1000);
        let model = &*model;
        match endpoint {
            Endpoint::CallQuery => {
                let direction = match params.get("type") {
                    None => None,
                    Some(t @ ("inbound" | "outbound" | "internal")) => Some(t),
                    Some(_) => return param_error("type", "invalid"),
                };
                let call_id = params.get("call_id");
                let extension = params.get("extension");
                let calls: Vec<CallView<'_>> = model
                    .calls
                    .iter()
                    .filter(|c| direction.is_none_or(|d| c.direction() == d))
                    .filter(|c| call_id.is_none_or(|id| c.callid == id))
                    .filter(|c| {
                        extension.is_none_or(|n| {
                            c.members
                                .iter()
                                .any(|m| m.kind == MemberKind::Ext && m.number == n)
                        })
                    })
                    .map(CallView::of)
                    .collect();
                let data = match (calls.is_empty(), p.idle_calls) {
                    (false, _) | (true, IdleCalls::EmptyList) => Some(Some(calls)),
                    (true, IdleCalls::Null) => Some(None),
                    (true, IdleCalls::Absent) => None,
                };
                success(CallsView { data })
            }
            Endpoint::SystemInformation => {
                let now = now_ms / 1000;
                let mut data = json!({
                    "device_name": "PBX",
                    "model_name": p.model_name,
                    "sn": model.sn(),
                    "firmware_version": p.firmware_version,
                    "system_time": civil_time(now).replace('-', "/"),
                    "up_time": now.saturating_sub(model.booted),
                    "system_date_format": "YYYY/MM/DD",
                    "system_time_format": "hh:mm:ss",
                    "timestamp": now,
                });
                // Software and Cloud Editions have no hardware.
                if !p.model_name.contains("Edition") {
                    data["hardware_version"] = "V1.00 0000-0000".into();
                }
                success(json!({ "data": data }))
            }
            Endpoint::SystemCapacity => {
                let extensions = model.extensions.len();
                success(json!({"data": {
                    "extension_capacity": extensions.div_ceil(50).max(1) * 50,
                    "extension_used": extensions,
                    "cc_capacity": model.config().target_calls * 3 + 10,
                    "cc_used": model.calls.len(),
                }}))
            }
            Endpoint::TrunkList => {
                let (skip, size) = match params.page() {
                    Ok(p) => p,
                    Err(e) => return e,
                };
                let data: Vec<_> = model
                    .trunks
                    .iter()
                    .enumerate()
                    .skip(skip)
                    .take(size)
                    .map(|(i, t)| TrunkView::of(model, i, t, &faults.trunk_status_codes))
                    .collect();
                success(Listed {
                    total_number: model.trunks.len(),
                    data,
                })
            }
            Endpoint::ExtensionList => {
                let (skip, size) = match params.page() {
                    Ok(p) => p,
                    Err(e) => return e,
                };
                let data: Vec<_> = model
                    .extensions
                    .iter()
                    .enumerate()
                    .skip(skip)
                    .take(size)
                    .map(|(i, e)| ExtensionView::of(i, &e.number, e.registered, e.fxs))
                    .collect();
                success(Listed {
                    total_number: model.extensions.len(),
                    data,
                })
            }
            Endpoint::QueueList => {
                let (skip, size) = match params.page() {
                    Ok(p) => p,
                    Err(e) => return e,
                };
                let queue_list: Vec<_> = model
                    .queues
                    .iter()
                    .enumerate()
                    .skip(skip)
                    .take(size)
                    .map(|(i, (number, agents))| QueueView::of(model, i, number, agents))
                    .collect();
                success(QueuesView {
                    total_number: model.queues.len(),
                    queue_list,
                })
            }
            Endpoint::QueueAgentStatus | Endpoint::QueueCallStatus => {
                let Some(id) = params.get("id") else {
                    return param_error("id", "required");
                };
                let Ok(id) = id.parse::<usize>() else {
                    return param_error("id", "invalid");
                };
                let Some((number, agents)) = id.checked_sub(1).and_then(|i| model.queues.get(i))
                else {
                    return error(Code::DataNotFound);
                };
                if endpoint == Endpoint::QueueAgentStatus {
                    let activity = model.extension_activity();
                    let data: Vec<AgentView<'_>> = agents
                        .iter()
                        .map(|i| AgentView::of(model, *i, &activity))
                        .collect();
                    success(Listed {
                        total_number: data.len(),
                        data,
                    })
                } else {
                    success(json!({ "data": queue_calls(model, number, now_ms / 1000) }))
                }
            }
            Endpoint::GetToken | Endpoint::RefreshToken | Endpoint::DelToken => {
                error(Code::InterfaceNotExisted)
            }
        }
    }
}

/// The answer to a token request.
#[derive(Serialize)]
struct TokenView<'a> {
    access_token_expire_time: u64,
    access_token: &'a str,
    refresh_token_expire_time: u64,
    refresh_token: &'a str,
}

/// `call/query`'s payload: `data` a list, `null` (`Some(None)`) or absent (`None`).
#[derive(Serialize)]
struct CallsView<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<Option<Vec<CallView<'a>>>>,
}

/// A call as `call/query` lists it (serialized straight from the model: no JSON tree, so that
/// 10,000 calls are answered fast enough for the benchmarks to measure the exporter).
#[derive(Serialize)]
struct CallView<'a> {
    call_id: &'a str,
    members: Vec<MemberView<'a>>,
}

impl<'a> CallView<'a> {
    fn of(call: &'a SimCall) -> Self {
        CallView {
            call_id: &call.callid,
            members: call.members.iter().map(MemberView::of).collect(),
        }
    }
}

/// A member: an object with one key naming its kind.
#[derive(Serialize)]
#[serde(rename_all = "lowercase")]
enum MemberView<'a> {
    Extension(ExtMemberView<'a>),
    Inbound(TrunkMemberView<'a>),
    Outbound(TrunkMemberView<'a>),
}

impl<'a> MemberView<'a> {
    fn of(m: &'a SimMember) -> Self {
        let call_path = m.callpath.as_deref().unwrap_or("");
        let trunk = || TrunkMemberView {
            from: &m.number,
            to: &m.peer,
            trunk_name: m.trunk.as_deref().unwrap_or(""),
            channel_id: &m.channelid,
            member_status: m.status,
            call_path,
        };
        match m.kind {
            MemberKind::Ext => MemberView::Extension(ExtMemberView {
                number: &m.number,
                channel_id: &m.channelid,
                member_status: m.status,
                call_path,
            }),
            MemberKind::Inbound => MemberView::Inbound(trunk()),
            MemberKind::Outbound => MemberView::Outbound(trunk()),
        }
    }
}

#[derive(Serialize)]
struct ExtMemberView<'a> {
    number: &'a str,
    channel_id: &'a str,
    member_status: &'a str,
    call_path: &'a str,
}

#[derive(Serialize)]
struct TrunkMemberView<'a> {
    from: &'a str,
    to: &'a str,
    trunk_name: &'a str,
    channel_id: &'a str,
    member_status: &'a str,
    call_path: &'a str,
}

/// A list endpoint's payload.
#[derive(Serialize)]
struct Listed<T> {
    total_number: usize,
    data: Vec<T>,
}

/// `queue/list`'s payload: `queue_list`, not `data` (§6.1).
#[derive(Serialize)]
struct QueuesView<'a> {
    total_number: usize,
    queue_list: Vec<QueueView<'a>>,
}

/// A trunk as `trunk/list` lists it.
#[derive(Serialize)]
struct TrunkView<'a> {
    id: usize,
    name: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    status: i64,
    host_port: String,
}

impl<'a> TrunkView<'a> {
    fn of(model: &Model, i: usize, t: &'a SimTrunk, codes: &[(String, i64)]) -> Self {
        let status = codes
            .iter()
            .find(|(name, _)| *name == t.name)
            .map_or_else(|| trunk_status(t, model.trunk_busy(t)), |(_, c)| *c);
        TrunkView {
            id: i + 1,
            name: &t.name,
            kind: match t.kind {
                TrunkKind::Sip => "register",
                TrunkKind::Fxo => "FXO",
                TrunkKind::Gsm => "GSM",
            },
            status,
            host_port: match t.kind {
                TrunkKind::Sip => format!("203.0.113.{}:5060", i + 1),
                TrunkKind::Fxo | TrunkKind::Gsm => String::new(),
            },
        }
    }
}

/// The §3.5 status code of the model's trunk state: the same states the S-Series words name
/// (`Registered`/`Idle` → 1 idle, `Busy` → 2 busy; a dropped SIP register trunk → 41
/// registration failed, FXO → 11 failure, GSM → 34 no signal). A SIP trunk carrying a call is
/// busy here, as every P-Series trunk is.
fn trunk_status(t: &SimTrunk, busy: bool) -> i64 {
    match (t.kind, t.down_until.is_some()) {
        (TrunkKind::Sip, true) => 41,
        (TrunkKind::Fxo, true) => 11,
        (TrunkKind::Gsm, true) => 34,
        (_, false) if busy => 2,
        (_, false) => 1,
    }
}

/// An extension as `extension/list` lists it.
#[derive(Serialize)]
struct ExtensionView<'a> {
    id: usize,
    number: &'a str,
    caller_id_name: String,
    presence_status: &'static str,
    online_status: OnlineStatus,
}

#[derive(Serialize)]
struct OnlineStatus {
    sip_phone: DeviceView,
    linkus_desktop: DeviceView,
    linkus_mobile: DeviceView,
    linkus_web: DeviceView,
    fxs_phone: DeviceView,
}

/// One kind of device of an extension; `status_list` only for a registered SIP phone.
#[derive(Serialize)]
struct DeviceView {
    status: u8,
    ext_dev_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    status_list: Option<Vec<RegistrationView>>,
}

#[derive(Serialize)]
struct RegistrationView {
    status: u8,
    ip: String,
}

impl<'a> ExtensionView<'a> {
    /// Extension `i` (id `i + 1`): a registered SIP phone shows in `sip_phone.status_list`, a
    /// registered analogue port as `fxs_phone.status` 1.
    fn of(i: usize, number: &'a str, registered: bool, fxs: bool) -> Self {
        let device = |status: bool, ext_dev_type| DeviceView {
            status: u8::from(status),
            ext_dev_type,
            status_list: None,
        };
        let mut sip_phone = device(false, "sip");
        if registered && !fxs {
            sip_phone.status_list = Some(vec![RegistrationView {
                status: 1,
                ip: format!("192.168.5.{}:5060", 20 + i % 200),
            }]);
        }
        ExtensionView {
            id: i + 1,
            number,
            caller_id_name: format!("User {number}"),
            presence_status: "available",
            online_status: OnlineStatus {
                sip_phone,
                linkus_desktop: device(false, "linkusdesktop"),
                linkus_mobile: device(false, "linkusmobile"),
                linkus_web: device(false, "linkusweb"),
                fxs_phone: device(registered && fxs, "fxs"),
            },
        }
    }
}

/// A queue as `queue/list` lists it (id `i + 1`), its agents static.
#[derive(Serialize)]
struct QueueView<'a> {
    id: usize,
    number: &'a str,
    name: String,
    ring_strategy: &'static str,
    dynamic_agent_list: Vec<Value>,
    static_agent_list: Vec<Value>,
    manager_list: Vec<Value>,
}

impl<'a> QueueView<'a> {
    fn of(model: &Model, i: usize, number: &'a str, agents: &[usize]) -> Self {
        QueueView {
            id: i + 1,
            number,
            name: format!("Queue {number}"),
            ring_strategy: "ring_all",
            dynamic_agent_list: Vec::new(),
            static_agent_list: agents
                .iter()
                .map(|a| {
                    let n = &model.extensions[*a].number;
                    json!({"text": format!("User {n}"), "text2": n, "value": (a + 1).to_string(), "type": "extension"})
                })
                .collect(),
            manager_list: Vec::new(),
        }
    }
}

/// An agent as `queue/agent_status` lists it.
#[derive(Serialize)]
struct AgentView<'a> {
    name: String,
    number: &'a str,
    is_login: u8,
    is_pause: u8,
    /// 0 unknown (not logged in), 1 idle, 2 in a call (holding it too), 3 ringing.
    call_status: u8,
    pause_reason: &'static str,
    agent_type: &'static str,
}

impl<'a> AgentView<'a> {
    fn of(model: &'a Model, i: usize, activity: &HashMap<&str, &'static str>) -> Self {
        let e = &model.extensions[i];
        let call_status = if !e.registered {
            0
        } else {
            match activity.get(e.number.as_str()) {
                Some(&"RING") | Some(&"ALERT") => 3,
                Some(_) => 2,
                None => 1,
            }
        };
        AgentView {
            name: format!("User {}", e.number),
            number: &e.number,
            is_login: u8::from(e.registered),
            is_pause: u8::from(model.paused.contains(&i)),
            call_status,
            pause_reason: "",
            agent_type: "static",
        }
    }
}

/// `queue/call_status`'s `data` for queue `number` at `now`: callers waiting (a queued call still
/// ringing its agents), ringing (the same calls: an agent's phone rings while the caller waits)
/// and active (answered calls that came through the queue).
fn queue_calls(model: &Model, number: &str, now: u64) -> Value {
    let entry = |c: &SimCall| {
        let caller = c.members.first().map_or("", |m| m.number.as_str());
        let callee = c
            .members
            .iter()
            .find(|m| m.kind == MemberKind::Ext)
            .map_or(number, |m| m.number.as_str());
        let started: u64 = c
            .callid
            .split('.')
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or(now);
        json!({
            "call_id": c.callid,
            "caller_number": caller,
            "caller_display_name": "",
            "callee_number": callee,
            "callee_display_name": "",
            "duration": now.saturating_sub(c.answered_at.unwrap_or(started)),
        })
    };
    let waiting: Vec<Value> = model
        .calls
        .iter()
        .filter(|c| c.phase == Phase::Ringing && c.queue.as_deref() == Some(number))
        .map(entry)
        .collect();
    let active: Vec<Value> = model
        .calls
        .iter()
        .filter(|c| matches!(c.phase, Phase::Talking | Phase::Hold))
        .filter(|c| {
            c.members
                .iter()
                .any(|m| m.kind == MemberKind::Ext && m.callpath.as_deref() == Some(number))
        })
        .map(entry)
        .collect();
    json!({
        "waiting_calls": waiting.len(),
        "active_calls": active.len(),
        "ringing_calls": waiting.len(),
        "waiting_list": waiting,
        "active_list": active,
        "ringing_list": waiting,
    })
}

#[cfg(test)]
mod tests {
    use super::super::model::{ModelConfig, SimExtension, SimOutcome};
    use super::super::{IdleCalls, SimConfig};
    use super::*;
    use crate::support::clock::ManualClock;
    use std::sync::Arc;

    const T0: u64 = 1_700_000_000;
    const PEER: &str = "192.0.2.7";

    fn member(
        kind: MemberKind,
        number: &str,
        peer: &str,
        trunk: Option<&str>,
        status: &'static str,
        callpath: Option<&str>,
    ) -> SimMember {
        SimMember {
            kind,
            number: number.into(),
            peer: peer.into(),
            trunk: trunk.map(String::from),
            channelid: format!("PJSIP/{number}-0000009{}", status.len()),
            caller: false,
            callpath: callpath.map(String::from),
            status,
            ext: None,
        }
    }

    fn call(seq: u64, phase: Phase, queue: Option<&str>, members: Vec<SimMember>) -> SimCall {
        SimCall {
            callid: format!("{T0}.{seq}"),
            members,
            phase,
            phase_until: T0 + 100_000,
            talk_left: 0,
            queue: queue.map(String::from),
            outcome: SimOutcome::Answered,
            answered_at: (phase != Phase::Ringing).then_some(T0 + 10),
        }
    }

    /// A simulator of five extensions (1000, 1001, 1004 SIP; 1002 unregistered; 1003 an FXS
    /// port), the model's four trunks and two queues, and four calls holding every member status:
    /// inbound ringing through queue 6700 (ALERT, RING), outbound talking (ANSWERED, ANSWER),
    /// internal on hold (HOLD, ANSWER), and an inbound call forwarded out, hanging up (BYE,
    /// ANSWER) — inbound, since it has an inbound member.
    fn fixed(clock: Arc<ManualClock>) -> Arc<Simulator> {
        let cfg = SimConfig {
            model: ModelConfig {
                seed: 1,
                target_calls: 0,
                extensions: 5,
                ..ModelConfig::default()
            },
            ..SimConfig::p_series_traffic(1, 0)
        };
        let sim = Simulator::new(cfg, clock);
        sim.with_model(|m| {
            m.extensions = [
                ("1000", true, false),
                ("1001", true, false),
                ("1002", false, false),
                ("1003", true, true),
                ("1004", true, false),
            ]
            .into_iter()
            .map(|(n, registered, fxs)| SimExtension {
                number: n.into(),
                registered,
                fxs,
            })
            .collect();
            m.paused = vec![1];
            use MemberKind::{Ext, Inbound, Outbound};
            m.calls = vec![
                call(
                    1,
                    Phase::Ringing,
                    Some("6700"),
                    vec![
                        member(
                            Inbound,
                            "0299990000",
                            "1000",
                            Some("siptrunk"),
                            "ALERT",
                            Some("6700"),
                        ),
                        member(Ext, "1000", "0299990000", None, "RING", Some("6700")),
                    ],
                ),
                call(
                    2,
                    Phase::Talking,
                    None,
                    vec![
                        member(Ext, "1001", "0311112222", None, "ANSWERED", None),
                        member(
                            Outbound,
                            "1001",
                            "0311112222",
                            Some("sip-carrier-2"),
                            "ANSWER",
                            None,
                        ),
                    ],
                ),
                call(
                    3,
                    Phase::Hold,
                    None,
                    vec![
                        member(Ext, "1003", "1004", None, "HOLD", None),
                        member(Ext, "1004", "1003", None, "ANSWER", None),
                    ],
                ),
                call(
                    4,
                    Phase::Ending,
                    None,
                    vec![
                        member(Inbound, "0255550000", "1004", Some("fxo-1"), "BYE", None),
                        member(
                            Outbound,
                            "1004",
                            "0466660000",
                            Some("gsm-1"),
                            "ANSWER",
                            None,
                        ),
                    ],
                ),
            ];
        });
        sim
    }

    fn ask(
        sim: &Simulator,
        method: Method,
        endpoint: &str,
        query: &str,
        body: Option<Value>,
        user_agent: bool,
    ) -> Value {
        let faults = lock(&sim.cfg).faults.clone();
        let bytes = sim.p_series_answer(
            &Request {
                method: &method,
                endpoint,
                query,
                body: body.as_ref(),
                user_agent,
                peer: PEER.parse().unwrap(),
            },
            &faults,
        );
        serde_json::from_slice(&bytes).unwrap()
    }

    fn get_token(sim: &Simulator, secret: &str) -> Value {
        let body = json!({"username": "api", "password": secret});
        ask(sim, Method::POST, "get_token", "", Some(body), true)
    }

    fn token(sim: &Simulator) -> String {
        let a = get_token(sim, "demo-password");
        assert_eq!(a["errcode"], 0, "{a}");
        a["access_token"].as_str().unwrap().to_string()
    }

    fn get(sim: &Simulator, endpoint: &str, token: &str, params: &str) -> Value {
        let q = format!("access_token={token}{params}");
        ask(sim, Method::GET, endpoint, &q, None, true)
    }

    fn ip() -> IpAddr {
        PEER.parse().unwrap()
    }

    #[test]
    fn call_query_lists_the_models_calls_by_direction_in_the_vendors_shape() {
        let sim = fixed(ManualClock::new(T0));
        let t = token(&sim);
        let inbound_ringing = json!({"call_id": "1700000000.1", "members": [
            {"inbound": {"from": "0299990000", "to": "1000", "trunk_name": "siptrunk",
                "channel_id": "PJSIP/0299990000-00000095", "member_status": "ALERT", "call_path": "6700"}},
            {"extension": {"number": "1000", "channel_id": "PJSIP/1000-00000094",
                "member_status": "RING", "call_path": "6700"}}]});
        let outbound = json!({"call_id": "1700000000.2", "members": [
            {"extension": {"number": "1001", "channel_id": "PJSIP/1001-00000098",
                "member_status": "ANSWERED", "call_path": ""}},
            {"outbound": {"from": "1001", "to": "0311112222", "trunk_name": "sip-carrier-2",
                "channel_id": "PJSIP/1001-00000096", "member_status": "ANSWER", "call_path": ""}}]});
        let internal = json!({"call_id": "1700000000.3", "members": [
            {"extension": {"number": "1003", "channel_id": "PJSIP/1003-00000094",
                "member_status": "HOLD", "call_path": ""}},
            {"extension": {"number": "1004", "channel_id": "PJSIP/1004-00000096",
                "member_status": "ANSWER", "call_path": ""}}]});
        let forwarded = json!({"call_id": "1700000000.4", "members": [
            {"inbound": {"from": "0255550000", "to": "1004", "trunk_name": "fxo-1",
                "channel_id": "PJSIP/0255550000-00000093", "member_status": "BYE", "call_path": ""}},
            {"outbound": {"from": "1004", "to": "0466660000", "trunk_name": "gsm-1",
                "channel_id": "PJSIP/1004-00000096", "member_status": "ANSWER", "call_path": ""}}]});
        let answer = |calls: Vec<&Value>| json!({"errcode": 0, "errmsg": "SUCCESS", "data": calls});
        assert_eq!(
            get(&sim, "call/query", &t, "&type=inbound"),
            answer(vec![&inbound_ringing, &forwarded])
        );
        assert_eq!(
            get(&sim, "call/query", &t, "&type=outbound"),
            answer(vec![&outbound])
        );
        assert_eq!(
            get(&sim, "call/query", &t, "&type=internal"),
            answer(vec![&internal])
        );
        assert_eq!(
            get(&sim, "call/query", &t, ""),
            answer(vec![&inbound_ringing, &outbound, &internal, &forwarded])
        );
        assert_eq!(
            get(&sim, "call/query", &t, "&call_id=1700000000.3"),
            answer(vec![&internal])
        );
        assert_eq!(
            get(&sim, "call/query", &t, "&extension=1004"),
            answer(vec![&internal])
        );
        assert_eq!(
            get(&sim, "call/query", &t, "&type=trunk"),
            json!({"errcode": 40002, "errmsg": "PARAMETER ERROR",
                "invalid_param_list": [{"field": "type", "validation_type": "invalid"}]})
        );
        // The bytes: the envelope first, as the vendor prints it.
        let bytes = sim.p_series_answer_bytes("call/query", &[("type", "outbound")]);
        assert!(
            bytes.starts_with(br#"{"errcode":0,"errmsg":"SUCCESS","data":[{"call_id":"1700000000.2","members":[{"extension":{"number":"1001","#),
            "{}",
            String::from_utf8_lossy(&bytes)
        );
        // The same truth as the model's directions.
        let snap = sim.snapshot();
        assert_eq!(snap.active, [2, 1, 1]);
    }

    #[test]
    fn an_idle_call_query_answers_the_configured_form() {
        let sim = fixed(ManualClock::new(T0));
        let t = token(&sim);
        for (idle, expected) in [
            (
                IdleCalls::EmptyList,
                json!({"errcode": 0, "errmsg": "SUCCESS", "data": []}),
            ),
            (
                IdleCalls::Null,
                json!({"errcode": 0, "errmsg": "SUCCESS", "data": null}),
            ),
            (
                IdleCalls::Absent,
                json!({"errcode": 0, "errmsg": "SUCCESS"}),
            ),
        ] {
            lock(&sim.cfg).p_series.idle_calls = idle;
            assert_eq!(
                get(&sim, "call/query", &t, "&call_id=1.1"),
                expected,
                "{idle:?}"
            );
            // Calls are listed whatever the idle form.
            let some = get(&sim, "call/query", &t, "&type=internal");
            assert_eq!(some["data"].as_array().map(Vec::len), Some(1), "{idle:?}");
        }
    }

    #[test]
    fn get_token_answers_two_fresh_tokens_and_their_lifetimes() {
        let sim = fixed(ManualClock::new(T0));
        let a = get_token(&sim, "demo-password");
        let mut keys: Vec<&str> = a.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "access_token",
                "access_token_expire_time",
                "errcode",
                "errmsg",
                "refresh_token",
                "refresh_token_expire_time"
            ]
        );
        assert_eq!(a["errcode"], 0);
        assert_eq!(a["errmsg"], "SUCCESS");
        assert_eq!(a["access_token_expire_time"], 1800);
        assert_eq!(a["refresh_token_expire_time"], 86400);
        for k in ["access_token", "refresh_token"] {
            let t = a[k].as_str().unwrap();
            assert_eq!(t.len(), 32, "{t}");
            assert!(t.chars().all(|c| c.is_ascii_alphanumeric()), "{t}");
        }
        assert_ne!(a["access_token"], a["refresh_token"]);
        assert_eq!(sim.issued_tokens().len(), 2);
        // The secret as is: its MD5 is a wrong password.
        let md5 = crate::support::secret::Secret::new("demo-password").md5_hex();
        assert_eq!(get_token(&sim, md5.expose())["errcode"], -1);
    }

    #[test]
    fn the_ninth_live_token_is_refused_and_del_token_frees_a_slot() {
        let sim = fixed(ManualClock::new(T0));
        let tokens: Vec<String> = (0..8).map(|_| token(&sim)).collect();
        assert_eq!(sim.live_tokens(), 8);
        assert_eq!(
            get_token(&sim, "demo-password"),
            json!({"errcode": 60002, "errmsg": "MAX LIMITATION EXCEEDED"})
        );
        // A refusal for the cap is no failed login.
        assert_eq!(sim.failed_token_requests(ip()), 0);
        // Older tokens all still work.
        for t in &tokens {
            assert_eq!(get(&sim, "system/capacity", t, "")["errcode"], 0);
        }
        assert_eq!(
            get(&sim, "del_token", &tokens[3], ""),
            json!({"errcode": 0, "errmsg": "SUCCESS"})
        );
        assert_eq!(sim.live_tokens(), 7);
        assert_eq!(
            get(&sim, "trunk/list", &tokens[3], ""),
            json!({"errcode": 10004, "errmsg": "TOKEN EXPIRED"})
        );
        assert_eq!(get(&sim, "del_token", &tokens[3], "")["errcode"], 10004);
        let ninth = token(&sim);
        assert_eq!(get(&sim, "system/capacity", &ninth, "")["errcode"], 0);
        assert_eq!(get_token(&sim, "demo-password")["errcode"], 60002);
    }

    #[test]
    fn refresh_token_swaps_the_pair_in_its_slot() {
        let sim = fixed(ManualClock::new(T0));
        let first = get_token(&sim, "demo-password");
        let (access, refresh) = (
            first["access_token"].as_str().unwrap(),
            first["refresh_token"].as_str().unwrap(),
        );
        for _ in 0..7 {
            token(&sim);
        }
        let body = |r: &str| Some(json!({"refresh_token": r}));
        let renewed = ask(&sim, Method::POST, "refresh_token", "", body(refresh), true);
        assert_eq!(renewed["errcode"], 0, "{renewed}");
        assert_eq!(renewed["access_token_expire_time"], 1800);
        assert_eq!(renewed["refresh_token_expire_time"], 86400);
        let new_access = renewed["access_token"].as_str().unwrap();
        assert_ne!(new_access, access);
        assert_eq!(sim.live_tokens(), 8);
        // The old access token ended; the new one works; the spent refresh token is no more.
        assert_eq!(get(&sim, "trunk/list", access, "")["errcode"], 10004);
        assert_eq!(get(&sim, "trunk/list", new_access, "")["errcode"], 0);
        let again = ask(&sim, Method::POST, "refresh_token", "", body(refresh), true);
        assert_eq!(again, json!({"errcode": 10004, "errmsg": "TOKEN EXPIRED"}));
        let unknown = ask(&sim, Method::POST, "refresh_token", "", body("x"), true);
        assert_eq!(
            unknown,
            json!({"errcode": 10004, "errmsg": "TOKEN EXPIRED"})
        );
        // del_token ends the pair: its refresh token too.
        let r2 = renewed["refresh_token"].as_str().unwrap();
        assert_eq!(get(&sim, "del_token", new_access, "")["errcode"], 0);
        let after = ask(&sim, Method::POST, "refresh_token", "", body(r2), true);
        assert_eq!(after["errcode"], 10004);
        assert_eq!(sim.live_refresh_tokens(), 7);
    }

    #[test]
    fn tokens_expire_by_the_clock() {
        let clock = ManualClock::new(T0);
        let sim = fixed(clock.clone());
        let a = get_token(&sim, "demo-password");
        let access = a["access_token"].as_str().unwrap();
        let refresh = a["refresh_token"].as_str().unwrap();
        for _ in 0..7 {
            token(&sim);
        }
        clock.advance_secs(1799);
        assert_eq!(get(&sim, "system/information", access, "")["errcode"], 0);
        assert_eq!(get_token(&sim, "demo-password")["errcode"], 60002);
        clock.advance_secs(1);
        assert_eq!(
            get(&sim, "system/information", access, ""),
            json!({"errcode": 10004, "errmsg": "TOKEN EXPIRED"})
        );
        assert_eq!(sim.live_tokens(), 0);
        // The slots are free; the refresh token lives on (24 h) and takes one.
        let body = Some(json!({"refresh_token": refresh}));
        let renewed = ask(&sim, Method::POST, "refresh_token", "", body, true);
        assert_eq!(renewed["errcode"], 0, "{renewed}");
        assert_eq!(sim.live_tokens(), 1);
        let later = renewed["refresh_token"].as_str().unwrap().to_string();
        clock.advance_secs(86_400);
        let body = Some(json!({"refresh_token": later}));
        let expired = ask(&sim, Method::POST, "refresh_token", "", body, true);
        assert_eq!(
            expired,
            json!({"errcode": 10004, "errmsg": "TOKEN EXPIRED"})
        );
        // Shorter lifetimes for tests.
        lock(&sim.cfg).p_series.access_token_lifetime = 5_000;
        let short = get_token(&sim, "demo-password");
        assert_eq!(short["access_token_expire_time"], 5);
        clock.advance_secs(5);
        let t = short["access_token"].as_str().unwrap();
        assert_eq!(get(&sim, "system/information", t, "")["errcode"], 10004);
    }

    #[test]
    fn five_failed_get_tokens_in_a_row_block_the_address_until_an_administrator_lifts_it() {
        let clock = ManualClock::new(T0);
        let sim = fixed(clock.clone());
        let wrong = json!({"errcode": -1, "errmsg": "FAILURE",
            "invalid_param_list": [{"field": "username or password", "value": "error"}]});
        for n in 1..=4 {
            assert_eq!(get_token(&sim, "wrong"), wrong);
            assert_eq!(sim.failed_token_requests(ip()), n);
        }
        // A success starts the count again.
        let t = token(&sim);
        assert_eq!(sim.failed_token_requests(ip()), 0);
        for _ in 0..4 {
            assert_eq!(get_token(&sim, "wrong"), wrong);
        }
        assert!(!sim.is_blocked(ip()));
        assert_eq!(get_token(&sim, "wrong"), wrong);
        assert!(sim.is_blocked(ip()));
        assert_eq!(sim.blocked_ips(), vec![ip()]);
        let blocked = json!({"errcode": 70004, "errmsg": "ACCOUNT IP BLOCKED"});
        assert_eq!(get_token(&sim, "demo-password"), blocked);
        assert_eq!(get(&sim, "call/query", &t, ""), blocked);
        assert_eq!(ask(&sim, Method::GET, "nothing", "", None, false), blocked);
        // No timer lifts it.
        clock.advance_secs(7 * 86_400);
        assert_eq!(get_token(&sim, "demo-password"), blocked);
        sim.unblock_all();
        assert!(sim.blocked_ips().is_empty());
        assert_eq!(get_token(&sim, "demo-password")["errcode"], 0);
    }

    #[test]
    fn every_request_needs_a_user_agent_and_a_live_token() {
        let sim = fixed(ManualClock::new(T0));
        let t = token(&sim);
        let no_ua = json!({"errcode": 40002, "errmsg": "PARAMETER ERROR"});
        let body = json!({"username": "api", "password": "demo-password"});
        assert_eq!(
            ask(&sim, Method::POST, "get_token", "", Some(body), false),
            no_ua
        );
        let q = format!("access_token={t}");
        assert_eq!(ask(&sim, Method::GET, "call/query", &q, None, false), no_ua);
        // Nor is it a failed login.
        assert_eq!(sim.failed_token_requests(ip()), 0);
        let expired = json!({"errcode": 10004, "errmsg": "TOKEN EXPIRED"});
        for endpoint in p_series_endpoints().filter(|e| !e.ends_with("_token")) {
            assert_eq!(
                ask(&sim, Method::GET, endpoint, "", None, true),
                expired,
                "{endpoint}"
            );
            assert_eq!(get(&sim, endpoint, "nope", ""), expired, "{endpoint}");
        }
    }

    #[test]
    fn unknown_paths_and_wrong_methods_are_interfaces_not_existed() {
        let sim = fixed(ManualClock::new(T0));
        let t = token(&sim);
        let none = json!({"errcode": 10001, "errmsg": "INTERFACE NOT EXISTED"});
        let q = format!("access_token={t}");
        assert_eq!(get(&sim, "cdr/list", &t, ""), none);
        assert_eq!(get(&sim, "", &t, ""), none);
        assert_eq!(
            ask(&sim, Method::POST, "call/query", &q, Some(json!({})), true),
            none
        );
        assert_eq!(ask(&sim, Method::GET, "get_token", "", None, true), none);
        assert_eq!(ask(&sim, Method::POST, "del_token", &q, None, true), none);
        // A token request that is not JSON.
        assert_eq!(
            ask(&sim, Method::POST, "get_token", "", None, true),
            json!({"errcode": 40001, "errmsg": "PARAMETER SYNTAX ERROR"})
        );
        assert_eq!(
            sim.p_series_answer_bytes("get_token", &[]),
            serialize(&none)
        );
        // The unsupported fault, and the error one.
        let faults = Faults {
            unsupported: vec!["system/capacity".into()],
            ..Faults::default()
        };
        sim.set_faults(faults);
        assert_eq!(get(&sim, "system/capacity", &t, ""), none);
        assert_eq!(get(&sim, "system/information", &t, "")["errcode"], 0);
        sim.set_faults(Faults {
            error_rate: 1.0,
            ..Faults::default()
        });
        assert_eq!(
            get(&sim, "trunk/list", &t, ""),
            json!({"errcode": -2, "errmsg": "INTERNAL SERVER ERROR"})
        );
    }

    #[test]
    fn lists_are_paged_with_their_total() {
        let sim = fixed(ManualClock::new(T0));
        let t = token(&sim);
        let numbers = |a: &Value| -> Vec<String> {
            a["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["number"].as_str().unwrap().to_string())
                .collect()
        };
        let page = |p: &str| {
            get(
                &sim,
                "extension/list",
                &t,
                &format!("&page_size=2&page={p}"),
            )
        };
        for (p, expected) in [
            ("1", vec!["1000", "1001"]),
            ("2", vec!["1002", "1003"]),
            ("3", vec!["1004"]),
            ("4", vec![]),
            ("99999999999999", vec![]),
        ] {
            let a = page(p);
            assert_eq!(a["total_number"], 5, "{a}");
            assert_eq!(numbers(&a), expected, "page {p}");
        }
        // The default page holds 20: all five, and all four trunks.
        assert_eq!(numbers(&get(&sim, "extension/list", &t, "")).len(), 5);
        let trunks = get(&sim, "trunk/list", &t, "&page=2&page_size=3");
        assert_eq!(trunks["total_number"], 4);
        assert_eq!(trunks["data"][0]["name"], "gsm-1");
        assert_eq!(trunks["data"].as_array().unwrap().len(), 1);
        for bad in ["&page=0", "&page_size=0", "&page=x"] {
            let a = get(&sim, "trunk/list", &t, bad);
            assert_eq!(a["errcode"], 40002, "{bad}: {a}");
        }
        let queues = get(&sim, "queue/list", &t, "&page=2&page_size=1");
        assert_eq!(queues["total_number"], 2);
        assert_eq!(queues["queue_list"][0]["number"], "6701");
        assert!(queues.get("data").is_none());
    }

    #[test]
    fn extension_list_shows_registrations_per_device() {
        let sim = fixed(ManualClock::new(T0));
        let t = token(&sim);
        let a = get(&sim, "extension/list", &t, "&page_size=4");
        let off = |kind: &str| json!({"status": 0, "ext_dev_type": kind});
        let ext = |id: usize, number: &str, sip: Value, fxs: Value| {
            json!({"id": id, "number": number, "caller_id_name": format!("User {number}"),
                "presence_status": "available", "online_status": {
                    "sip_phone": sip, "linkus_desktop": off("linkusdesktop"),
                    "linkus_mobile": off("linkusmobile"), "linkus_web": off("linkusweb"),
                    "fxs_phone": fxs}})
        };
        let registered = |ip: &str| json!({"status": 0, "ext_dev_type": "sip", "status_list": [{"status": 1, "ip": ip}]});
        assert_eq!(
            a,
            json!({"errcode": 0, "errmsg": "SUCCESS", "total_number": 5, "data": [
                ext(1, "1000", registered("192.168.5.20:5060"), off("fxs")),
                ext(2, "1001", registered("192.168.5.21:5060"), off("fxs")),
                ext(3, "1002", off("sip"), off("fxs")),
                ext(4, "1003", off("sip"), json!({"status": 1, "ext_dev_type": "fxs"})),
            ]})
        );
    }

    #[test]
    fn trunk_list_gives_the_status_codes_of_the_models_trunks() {
        let sim = fixed(ManualClock::new(T0));
        let t = token(&sim);
        sim.with_model(|m| m.trunks[3].down_until = Some(T0 + 600));
        let a = get(&sim, "trunk/list", &t, "");
        assert_eq!(
            a,
            json!({"errcode": 0, "errmsg": "SUCCESS", "total_number": 4, "data": [
                {"id": 1, "name": "siptrunk", "type": "register", "status": 2, "host_port": "203.0.113.1:5060"},
                {"id": 2, "name": "sip-carrier-2", "type": "register", "status": 2, "host_port": "203.0.113.2:5060"},
                {"id": 3, "name": "fxo-1", "type": "FXO", "status": 2, "host_port": ""},
                {"id": 4, "name": "gsm-1", "type": "GSM", "status": 34, "host_port": ""},
            ]})
        );
        sim.with_model(|m| {
            m.calls.clear();
            m.trunks[0].down_until = Some(T0 + 600);
            m.trunks[2].down_until = Some(T0 + 600);
            m.trunks[3].down_until = None;
        });
        let codes = |a: &Value| -> Vec<i64> {
            a["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["status"].as_i64().unwrap())
                .collect()
        };
        assert_eq!(codes(&get(&sim, "trunk/list", &t, "")), [41, 1, 11, 1]);
        sim.set_faults(Faults {
            trunk_status_codes: vec![("gsm-1".into(), 33), ("sip-carrier-2".into(), 3)],
            ..Faults::default()
        });
        assert_eq!(codes(&get(&sim, "trunk/list", &t, "")), [41, 3, 11, 33]);
    }

    #[test]
    fn system_information_and_capacity_come_from_the_model() {
        let sim = fixed(ManualClock::new(T0));
        let t = token(&sim);
        let info = get(&sim, "system/information", &t, "");
        let up = 3 * 86_400 + 4 * 3600 + 5 * 60 + 6;
        let mut expected = json!({"errcode": 0, "errmsg": "SUCCESS", "data": {
            "device_name": "PBX", "model_name": "Yeastar P560", "sn": "369400000001",
            "hardware_version": "V1.00 0000-0000", "firmware_version": "37.21.0.117",
            "system_time": "2023/11/14 22:13:20", "up_time": up,
            "system_date_format": "YYYY/MM/DD", "system_time_format": "hh:mm:ss",
            "timestamp": T0}});
        assert_eq!(info, expected);
        {
            let mut cfg = lock(&sim.cfg);
            cfg.p_series.model_name = "P-Series Software Edition".into();
            cfg.p_series.firmware_version = "83.21.0.117".into();
        }
        let soft = get(&sim, "system/information", &t, "");
        let data = expected["data"].as_object_mut().unwrap();
        data.remove("hardware_version");
        data.insert("model_name".into(), "P-Series Software Edition".into());
        data.insert("firmware_version".into(), "83.21.0.117".into());
        assert_eq!(soft, expected);
        assert_eq!(
            get(&sim, "system/capacity", &t, ""),
            json!({"errcode": 0, "errmsg": "SUCCESS", "data": {
                "extension_capacity": 50, "extension_used": 5, "cc_capacity": 10, "cc_used": 4}})
        );
    }

    #[test]
    fn queues_answer_their_agents_and_calls() {
        let sim = fixed(ManualClock::new(T0));
        let t = token(&sim);
        let list = get(&sim, "queue/list", &t, "");
        assert_eq!(list["total_number"], 2);
        assert_eq!(
            list["queue_list"][0],
            json!({"id": 1, "number": "6700", "name": "Queue 6700", "ring_strategy": "ring_all",
                "dynamic_agent_list": [], "manager_list": [], "static_agent_list": [
                    {"text": "User 1000", "text2": "1000", "value": "1", "type": "extension"},
                    {"text": "User 1001", "text2": "1001", "value": "2", "type": "extension"},
                    {"text": "User 1002", "text2": "1002", "value": "3", "type": "extension"},
                    {"text": "User 1003", "text2": "1003", "value": "4", "type": "extension"}]})
        );
        let agent = |number: &str, is_login: u8, is_pause: u8, call_status: u8| {
            json!({"name": format!("User {number}"), "number": number, "is_login": is_login,
                "is_pause": is_pause, "call_status": call_status, "pause_reason": "",
                "agent_type": "static"})
        };
        assert_eq!(
            get(&sim, "queue/agent_status", &t, "&id=1"),
            json!({"errcode": 0, "errmsg": "SUCCESS", "total_number": 4, "data": [
                agent("1000", 1, 0, 3), agent("1001", 1, 1, 2), agent("1002", 0, 0, 0),
                agent("1003", 1, 0, 2)]})
        );
        let waiting = json!({"call_id": "1700000000.1", "caller_number": "0299990000",
            "caller_display_name": "", "callee_number": "1000", "callee_display_name": "",
            "duration": 0});
        assert_eq!(
            get(&sim, "queue/call_status", &t, "&id=1"),
            json!({"errcode": 0, "errmsg": "SUCCESS", "data": {
                "waiting_calls": 1, "active_calls": 0, "ringing_calls": 1,
                "waiting_list": [waiting], "active_list": [], "ringing_list": [waiting]}})
        );
        assert_eq!(
            get(&sim, "queue/call_status", &t, "&id=3"),
            json!({"errcode": 60001, "errmsg": "DATA NOT FOUND"})
        );
        assert_eq!(
            get(&sim, "queue/agent_status", &t, ""),
            json!({"errcode": 40002, "errmsg": "PARAMETER ERROR",
                "invalid_param_list": [{"field": "id", "validation_type": "required"}]})
        );
    }

    #[test]
    fn answer_bytes_are_the_authenticated_answers() {
        let sim = fixed(ManualClock::new(T0));
        let t = token(&sim);
        for (endpoint, params) in [
            ("call/query", vec![("type", "inbound")]),
            ("extension/list", vec![("page", "1"), ("page_size", "3")]),
            ("trunk/list", vec![]),
            ("queue/agent_status", vec![("id", "2")]),
            ("system/information", vec![]),
        ] {
            let query: String = params.iter().map(|(k, v)| format!("&{k}={v}")).collect();
            let bytes = sim.p_series_answer_bytes(endpoint, &params);
            let v: Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(v, get(&sim, endpoint, &t, &query), "{endpoint}");
        }
        assert_eq!(
            count_key("call/query", "access_token=x&type=inbound"),
            "call/query:inbound"
        );
        assert_eq!(count_key("call/query", "access_token=x"), "call/query");
        assert_eq!(count_key("trunk/list", "type=inbound"), "trunk/list");
    }
}
