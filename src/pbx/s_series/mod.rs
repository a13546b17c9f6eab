//! The S-Series API family (API v2.0.0 of the S20, S50, S100, S300 and S412): everything about its
//! wire format, and nothing else.
//!
//! - Every request is a `POST` of a JSON body to `<api path>/<endpoint>`, the token in the query
//!   (`?token=`): [`path`].
//! - Every answer is an envelope: `status` `Success` or `Failed` with an `errno`, read by
//!   [`decode_answer`]; [`codes`] says what each errno means ([`crate::pbx::ApiCode`]).
//! - A login sends the username and the password's MD5 ([`login_body`]); its token lives 30
//!   minutes and a `heartbeat` extends it ([`HEARTBEAT_AFTER`]); `logout` ends it. Login and
//!   heartbeat also register the HTTP event receiver ([`registration_fields`]).
//! - The domain queries the collectors ask ([`crate::pbx::Session::calls`] and the others)
//!   become these endpoints ([`queries`]); the answer types are [`types`], the event reports
//!   [`events`].
//!
//! The lockout rule this family's PBXes apply (5 failed logins in 10 minutes lock the address out
//! for 10 minutes, counting a login whose answer was never read) is what the shared login ledger
//! and [`MIN_LOGIN_BACKOFF`] are sized for.

pub mod codes;
pub mod events;
pub mod queries;
pub mod types;

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::pbx::error::MAX_PBX_TEXT;
use crate::pbx::error::{Endpoint, Method};
use crate::pbx::{EventsRegistration, PbxError, Request, clip};
use crate::support::secret::Secret;
use types::Envelope;

/// The API path of the firmware this family speaks: the default of `--pbx.api-path`.
pub const API_PATH: &str = "/api/v2.0.0";

/// A token this old gets a `heartbeat` before its next use (the PBX ends tokens after 30 minutes).
pub const HEARTBEAT_AFTER: Duration = Duration::from_secs(20 * 60);

/// The shortest `login_backoff` accepted: with less, 5 rejected logins (one per back-off) could
/// fall within the PBX's 10-minute window (4 × 150 s = 10 min) before the ledger's own limit.
pub const MIN_LOGIN_BACKOFF: Duration = Duration::from_secs(180);

/// Every endpoint this family may call: the session's own, then each query's
/// ([`queries::endpoints`]), for the request-count series.
pub const ENDPOINTS: &[&str] = &[
    "login",
    "logout",
    "heartbeat",
    "call/query",
    "extension/query_call",
    "trunk/list",
    "extension/list",
    "deviceinfo/query",
    "queue/query",
    "queue/query_status",
];

/// Every S-Series request is a `POST`.
pub const METHOD: Method = Method::Post;

/// `name` as this family's errors name it (`POST call/query`).
pub fn endpoint(name: impl Into<String>) -> Endpoint {
    Endpoint::new(METHOD, name)
}

/// A request to `endpoint` with `body`, carrying `token` in the query when there is one.
pub fn request<'a>(endpoint: &'a str, token: Option<&Secret>, body: &Value) -> Request<'a> {
    Request {
        endpoint,
        method: METHOD,
        path: path(endpoint, token),
        body: Some(serde_json::to_vec(body).unwrap_or_default()),
    }
}

/// The request's path below the API path, and its query: the endpoint, the token.
pub fn path(endpoint: &str, token: Option<&Secret>) -> String {
    let mut path = String::with_capacity(endpoint.len() + 80);
    path.push_str(endpoint);
    if let Some(t) = token {
        path.push_str("?token=");
        crate::pbx::transport::push_query_value(&mut path, t.expose());
    }
    path
}

/// The body of a `login`: the username, the MD5 of the password (the PBX never sees the password
/// itself), the API version, and the event receiver's registration when events are on.
pub fn login_body(
    username: &str,
    password: &Secret,
    events: Option<&EventsRegistration>,
    secret: Option<&Secret>,
) -> Value {
    let mut body = json!({
        "username": username,
        "password": password.md5_hex().expose(),
        "version": "2.0.0",
    });
    if let Some(events) = events {
        registration_fields(events, &mut body, secret);
    }
    body
}

/// The body of a `heartbeat` that keeps the event registration: `ipaddr` (required by the
/// vendor), `port`, `url`, `urltag`, `version`.
pub fn heartbeat_body(ipaddr: &str, events: &EventsRegistration, secret: Option<&Secret>) -> Value {
    let mut body = json!({ "ipaddr": ipaddr, "version": "2.0.0" });
    registration_fields(events, &mut body, secret);
    body
}

/// The registration fields of a login or heartbeat body: `url` is `url/<secret>` (the path's
/// unguessable part, [`crate::pbx::gate`]).
pub fn registration_fields(events: &EventsRegistration, body: &mut Value, secret: Option<&Secret>) {
    body["port"] = json!(events.port.to_string());
    body["url"] = json!(match secret {
        Some(s) => format!("{}/{}", events.url, s.expose()),
        None => events.url.clone(),
    });
    body["urltag"] = json!(if events.absolute { "1" } else { "0" });
}

/// The token of a `login` answer, if it carries one.
pub fn login_token(bytes: &[u8]) -> Result<Option<Secret>, PbxError> {
    let answer: types::LoginAnswer = decode_answer("login", bytes)?;
    Ok(answer.token.filter(|t| !t.is_empty()).map(Secret::new))
}

/// Reads an answer whose content is not used (`heartbeat`, `logout`): its envelope only.
pub fn bare_answer(endpoint: &str, bytes: &[u8]) -> Result<(), PbxError> {
    decode_answer::<types::BareAnswer>(endpoint, bytes).map(|_| ())
}

/// Decodes an answer to `endpoint`: the type's fields, then its `status` (and `errno`, mapped by
/// [`codes::api_error`]: a token error is [`PbxError::TokenExpired`], any other code
/// [`PbxError::Api`]).
///
/// Bytes that are not UTF-8 (a trunk named in Latin-1) become U+FFFD rather than failing the
/// answer; PBX-supplied words kept in an error are cut to [`MAX_PBX_TEXT`].
pub fn decode_answer<T: DeserializeOwned + Envelope>(
    endpoint: &str,
    bytes: &[u8],
) -> Result<T, PbxError> {
    let decode = |reason: String| PbxError::Decode {
        endpoint: self::endpoint(endpoint),
        reason: clip(&reason, MAX_PBX_TEXT),
    };
    let answer: T = crate::pbx::wire::read_body(bytes).map_err(decode)?;
    match answer.status() {
        Some(s) if s.eq_ignore_ascii_case("success") => Ok(answer),
        Some(s) if s.eq_ignore_ascii_case("failed") => {
            let error = codes::api_error(answer.errno().unwrap_or(""));
            let endpoint = self::endpoint(endpoint);
            Err(match error.code {
                crate::pbx::ApiCode::TokenInvalid => PbxError::TokenExpired { endpoint, error },
                _ => PbxError::Api { endpoint, error },
            })
        }
        Some(other) => Err(decode(format!("unknown status {:?}", clip(other, 40)))),
        None => Err(decode("no status field".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pbx::{ApiCode, Outcome};

    #[test]
    fn the_envelope_maps_to_answers_and_typed_errors() {
        assert!(bare_answer("heartbeat", br#"{"status":"Success"}"#).is_ok());
        assert!(bare_answer("heartbeat", br#"{"status":"SUCCESS"}"#).is_ok());
        let token =
            bare_answer("call/query", br#"{"status":"Failed","errno":"20006"}"#).unwrap_err();
        assert_eq!(token.api_code(), Some(ApiCode::TokenInvalid));
        assert_eq!(token.outcome(), Outcome::TokenExpired);
        assert_eq!(
            token.to_string(),
            "POST call/query: token refused, errno 20006 (token timed out)"
        );
        let missing =
            bare_answer("trunk/list", br#"{"status":"Failed","errno":10003}"#).unwrap_err();
        assert!(missing.is_unsupported());
        assert_eq!(missing.outcome(), Outcome::ApiError);
        assert_eq!(
            missing.to_string(),
            "POST trunk/list: PBX answered errno 10003 (API request not supported by this firmware)"
        );
        for (body, reason) in [
            (&br#"{"status":"Maybe"}"#[..], "unknown status \"Maybe\""),
            (br#"{"errno":"1"}"#, "no status field"),
        ] {
            assert_eq!(
                bare_answer("logout", body).unwrap_err().to_string(),
                format!("POST logout: undecodable answer: {reason}")
            );
        }
        // Latin-1 in an answer is read, not refused.
        let device = queries::read_device(
            b"{\"status\":\"Success\",\"deviceinfo\":{\"devicename\":\"S\xe9rie\"}}",
        )
        .unwrap()
        .unwrap();
        assert_eq!(device.model, "S\u{fffd}rie");
    }

    #[test]
    fn the_login_sends_the_md5_never_the_password_and_the_token_travels_in_the_query() {
        let body = login_body("api", &Secret::new("secret"), None, None);
        assert_eq!(
            body,
            json!({"username": "api", "password": "5ebe2294ecd0e0f08eab7690d2a6ee69", "version": "2.0.0"})
        );
        let events = EventsRegistration {
            port: 8260,
            url: "events/hq".into(),
            absolute: false,
            ipaddr: None,
            source_addresses: Vec::new(),
        };
        let body = login_body(
            "api",
            &Secret::new("secret"),
            Some(&events),
            Some(&Secret::new("s3")),
        );
        assert_eq!(
            (&body["port"], &body["url"], &body["urltag"]),
            (&json!("8260"), &json!("events/hq/s3"), &json!("0"))
        );
        let r = request(
            "call/query",
            Some(&Secret::new("a b\"")),
            &json!({"type": "inbound"}),
        );
        assert_eq!(r.path, "call/query?token=a%20b%22");
        assert_eq!(r.method, Method::Post);
        assert_eq!(r.body.as_deref(), Some(&br#"{"type":"inbound"}"#[..]));
        assert_eq!(request("login", None, &json!({})).path, "login");
        assert_eq!(
            login_token(br#"{"status":"Success","token":"abc"}"#).unwrap(),
            Some(Secret::new("abc"))
        );
        assert_eq!(
            login_token(br#"{"status":"Success","token":""}"#).unwrap(),
            None
        );
    }
}
