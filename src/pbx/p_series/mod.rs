//! The P-Series API family (OpenAPI v1.0 of the P550/P560/P570 Appliance, Software and Cloud
//! Editions): everything about its wire format, and nothing else. From the vendor's pages as
//! `yeastar-pseries-api.md` collects them.
//!
//! - Queries are `GET <api path>/<endpoint>?access_token=…&…` ([`get`]); only the token requests
//!   are `POST`s of a JSON body ([`post`]). A `User-Agent` goes with every request (the vendor
//!   requires one; the transport always sends its own).
//! - Every answer is an envelope: integer `errcode` (0 success) and `errmsg` beside the payload,
//!   read by [`decode_answer`]; [`codes`] says what each code means.
//! - Auth is a grant: `get_token` with the Client ID and Client Secret as they are (never an
//!   MD5) gives an access token (30 minutes) and a refresh token (24 hours); `refresh_token`
//!   renews both before the access token ends ([`renew_after`]); `del_token` revokes it. The PBX
//!   keeps at most 8 valid access tokens per application, and a new `get_token` does not end the
//!   old ones: the client holds one grant per PBX and renews it rather than logging in again.
//! - The domain queries become these endpoints ([`queries`]); the answer types are [`types`].
//!
//! The PBX blocks the caller's IP after 5 failed authentications in a row, until an
//! administrator removes it: the shared login ledger's limit (2 token-less attempts per 10
//! minutes per host) holds here too, with [`MIN_LOGIN_BACKOFF`].

pub mod codes;
pub mod queries;
pub mod types;

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::pbx::error::{Endpoint, MAX_PBX_TEXT, Method};
use crate::pbx::{ApiCode, PbxError, Request, clip};
use crate::support::secret::Secret;
use types::Envelope;

/// The API's path (`--pbx.api-path` for a P-Series target).
pub const API_PATH: &str = "/openapi/v1.0";

/// The shortest login back-off: as the S-Series', so that at most 2 unsuccessful `get_token`s
/// happen per 10 minutes (the PBX blocks after 5 in a row).
pub const MIN_LOGIN_BACKOFF: Duration = Duration::from_secs(180);

/// How long an access token lives when the PBX does not say (`access_token_expire_time`).
pub const ACCESS_LIFETIME: Duration = Duration::from_secs(1800);

/// Every endpoint this family may call, in the order the request counts list them.
pub const ENDPOINTS: &[&str] = &[
    "get_token",
    "refresh_token",
    "del_token",
    "call/query",
    "trunk/list",
    "extension/list",
    "system/information",
];

/// `name` with the method this family asks it with (`POST get_token`, `GET call/query`).
pub fn endpoint(name: impl Into<String>) -> Endpoint {
    let name = name.into();
    let method = match name.as_str() {
        "get_token" | "refresh_token" => Method::Post,
        _ => Method::Get,
    };
    Endpoint::new(method, name)
}

/// When a grant obtained with an access lifetime of `lifetime` is renewed: 2 minutes before it
/// ends (at least a minute after it began), so a scrape never carries a token about to lapse.
pub fn renew_after(lifetime: Duration) -> Duration {
    lifetime
        .saturating_sub(Duration::from_secs(120))
        .max(Duration::from_secs(60).min(lifetime / 2))
}

/// Appends `value` to a query, percent-encoding everything but the unreserved characters (a
/// token or parameter from the PBX can never add a parameter of its own).
fn push_param(query: &mut String, value: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in value.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            query.push(b as char);
        } else {
            query.push('%');
            query.push(HEX[usize::from(b >> 4)] as char);
            query.push(HEX[usize::from(b & 0xf)] as char);
        }
    }
}

/// A `GET` of `endpoint` with `token` and `params` in the query.
pub fn get<'a>(endpoint: &'a str, token: &Secret, params: &[(&str, &str)]) -> Request<'a> {
    let mut path = String::with_capacity(endpoint.len() + 64);
    path.push_str(endpoint);
    path.push_str("?access_token=");
    push_param(&mut path, token.expose());
    for (k, v) in params {
        path.push('&');
        push_param(&mut path, k);
        path.push('=');
        push_param(&mut path, v);
    }
    Request {
        endpoint,
        method: Method::Get,
        path,
        body: None,
    }
}

/// A `POST` of `body` to `endpoint` (the token requests: no token in the query).
pub fn post<'a>(endpoint: &'a str, body: &Value) -> Request<'a> {
    Request {
        endpoint,
        method: Method::Post,
        path: endpoint.to_string(),
        body: Some(serde_json::to_vec(body).unwrap_or_default()),
    }
}

/// The body of a `get_token`: the Client ID and the Client Secret, as they are.
pub fn token_body(client_id: &str, secret: &Secret) -> Value {
    json!({"username": client_id, "password": secret.expose()})
}

/// The body of a `refresh_token`.
pub fn refresh_body(refresh: &Secret) -> Value {
    json!({"refresh_token": refresh.expose()})
}

/// What a `get_token` or `refresh_token` gave.
#[derive(Debug, Clone, PartialEq)]
pub struct Tokens {
    /// The access token every query carries.
    pub access: Secret,
    /// How long it lives.
    pub access_lifetime: Duration,
    /// The refresh token, if the answer had one.
    pub refresh: Option<Secret>,
    /// How long that lives.
    pub refresh_lifetime: Option<Duration>,
}

/// The tokens of a `get_token` or `refresh_token` answer (`None`: success without an access
/// token). A refusal of `get_token` is read in login terms ([`codes::login_error`]).
pub fn read_tokens(endpoint: &str, bytes: &[u8]) -> Result<Option<Tokens>, PbxError> {
    let answer: types::TokenAnswer = decode_with(endpoint, bytes, |code, msg| {
        if endpoint == "get_token" {
            codes::login_error(code, msg)
        } else {
            codes::api_error(code, msg)
        }
    })?;
    let Some(access) = answer.access_token.filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    Ok(Some(Tokens {
        access: Secret::new(access),
        access_lifetime: answer
            .access_token_expire_time
            .filter(|s| *s > 0)
            .map_or(ACCESS_LIFETIME, Duration::from_secs),
        refresh: answer
            .refresh_token
            .filter(|t| !t.is_empty())
            .map(Secret::new),
        refresh_lifetime: answer.refresh_token_expire_time.map(Duration::from_secs),
    }))
}

/// Reads an answer whose content is not used (`del_token`): its envelope only.
pub fn bare_answer(endpoint: &str, bytes: &[u8]) -> Result<(), PbxError> {
    decode_answer::<types::BareAnswer>(endpoint, bytes).map(|_| ())
}

/// Decodes an answer to `endpoint`: the type's fields, then its `errcode` (mapped by
/// [`codes::api_error`]: a token error is [`PbxError::TokenExpired`], any other code
/// [`PbxError::Api`]).
pub fn decode_answer<T: DeserializeOwned + Envelope>(
    endpoint: &str,
    bytes: &[u8],
) -> Result<T, PbxError> {
    decode_with(endpoint, bytes, codes::api_error)
}

fn decode_with<T: DeserializeOwned + Envelope>(
    endpoint: &str,
    bytes: &[u8],
    error: impl Fn(i64, &str) -> crate::pbx::ApiError,
) -> Result<T, PbxError> {
    let decode = |reason: String| PbxError::Decode {
        endpoint: self::endpoint(endpoint),
        reason: clip(&reason, MAX_PBX_TEXT),
    };
    let answer: T = crate::pbx::wire::read_body(bytes).map_err(decode)?;
    match answer.errcode() {
        Some(0) => Ok(answer),
        Some(code) => {
            let error = error(code, answer.errmsg());
            let endpoint = self::endpoint(endpoint);
            Err(match error.code {
                ApiCode::TokenInvalid => PbxError::TokenExpired { endpoint, error },
                _ => PbxError::Api { endpoint, error },
            })
        }
        None => Err(decode("no errcode".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_carry_the_token_in_the_query_and_nothing_more() {
        let t = Secret::new("ab&c=d");
        let r = get("call/query", &t, &[("type", "inbound")]);
        assert_eq!(r.method, Method::Get);
        assert_eq!(r.path, "call/query?access_token=ab%26c%3Dd&type=inbound");
        assert!(r.body.is_none());
        let p = post("get_token", &token_body("id", &Secret::new("s3cr3t")));
        assert_eq!(p.path, "get_token");
        assert_eq!(
            p.body.as_deref(),
            Some(br#"{"password":"s3cr3t","username":"id"}"#.as_slice())
        );
        assert_eq!(endpoint("get_token").to_string(), "POST get_token");
        assert_eq!(endpoint("call/query").to_string(), "GET call/query");
    }

    #[test]
    fn tokens_and_refusals() {
        let ok = br#"{"errcode":0,"errmsg":"SUCCESS","access_token_expire_time":1800,"access_token":"EXZMpZAO86mbrKm6rFtgeb3rfcpC9uqS","refresh_token_expire_time":86400,"refresh_token":"SCduGecwbG9jIusiS8FxFUVn3kf0Q9R8"}"#;
        let t = read_tokens("get_token", ok).unwrap().unwrap();
        assert_eq!(t.access.expose(), "EXZMpZAO86mbrKm6rFtgeb3rfcpC9uqS");
        assert_eq!(t.access_lifetime, Duration::from_secs(1800));
        assert_eq!(
            t.refresh.as_ref().map(Secret::expose),
            Some("SCduGecwbG9jIusiS8FxFUVn3kf0Q9R8")
        );
        assert_eq!(t.refresh_lifetime, Some(Duration::from_secs(86400)));
        // Debug output never shows a token.
        assert!(!format!("{t:?}").contains("EXZM"));
        let wrong = br#"{"errcode":-1,"errmsg":"FAILURE","invalid_param_list":[{"field":"username or password","value":"error"}]}"#;
        let e = read_tokens("get_token", wrong).unwrap_err();
        assert_eq!(e.api_code(), Some(ApiCode::LoginRejected));
        assert_eq!(
            e.to_string(),
            "POST get_token: PBX answered errcode -1 (FAILURE: wrong Client ID or Client Secret)"
        );
        let cap = br#"{"errcode":60002,"errmsg":"MAX LIMITATION EXCEEDED"}"#;
        assert_eq!(
            read_tokens("get_token", cap).unwrap_err().api_code(),
            Some(ApiCode::TokenCap)
        );
        let expired = br#"{"errcode":"10004","errmsg":"TOKEN EXPIRED"}"#;
        let e = read_tokens("refresh_token", expired).unwrap_err();
        assert!(matches!(e, PbxError::TokenExpired { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            "POST refresh_token: token refused, errcode 10004 (TOKEN EXPIRED)"
        );
        assert_eq!(
            bare_answer("del_token", br#"{"errmsg":"SUCCESS"}"#)
                .unwrap_err()
                .to_string(),
            "GET del_token: undecodable answer: no errcode"
        );
    }

    #[test]
    fn renewal_comes_before_the_token_ends() {
        let s = Duration::from_secs;
        assert_eq!(renew_after(s(1800)), s(1680));
        assert_eq!(renew_after(s(100)), s(50));
        assert_eq!(renew_after(s(150)), s(60));
    }
}
