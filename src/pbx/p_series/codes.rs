//! The P-Series' error codes (`errcode` beside `errmsg` in every answer; 0 is success): what each
//! means in the family-neutral [`ApiCode`], in words a user can act on. From the vendor's error
//! table (yeastar-pseries-api.md §2.4); a code it does not list is "undocumented", its `errmsg`
//! kept in the words (clipped).

use crate::pbx::{ApiCode, ApiError, clip};

/// The codes the exporter acts on or explains, with the vendor's meaning.
const TABLE: &[(i64, ApiCode, &str)] = &[
    (-2, ApiCode::Other, "INTERNAL SERVER ERROR"),
    (
        -1,
        ApiCode::Other,
        "FAILURE (at get_token: wrong Client ID or Client Secret)",
    ),
    (
        10001,
        ApiCode::Unsupported,
        "INTERFACE NOT EXISTED: this firmware lacks the endpoint",
    ),
    (10002, ApiCode::Other, "API VERSION OUT OF MAINTENANCE"),
    (10003, ApiCode::Other, "API VERSION UNSUPPORTED"),
    (10004, ApiCode::TokenInvalid, "TOKEN EXPIRED"),
    (10005, ApiCode::Other, "ACCESS DENIED"),
    (
        10009,
        ApiCode::Other,
        "OPERATION FAILED: feature disabled or permission missing",
    ),
    (40001, ApiCode::Other, "PARAMETER SYNTAX ERROR"),
    (40002, ApiCode::Other, "PARAMETER ERROR"),
    (60001, ApiCode::Other, "DATA NOT FOUND"),
    (
        60002,
        ApiCode::TokenCap,
        "MAX LIMITATION EXCEEDED: at get_token, the application already holds 8 valid access tokens",
    ),
    (
        70004,
        ApiCode::LoginLocked,
        "ACCOUNT IP BLOCKED: the PBX has blocked this host's IP after failed authentications",
    ),
    (
        70087,
        ApiCode::IpForbidden,
        "IP FORBIDDEN: this host's IP is not on the API's allow-list",
    ),
    (70123, ApiCode::ApiDisabled, "API UNAVAILABLE"),
    (70132, ApiCode::Unsupported, "OPERATION NOT SUPPORTED"),
];

/// What `errcode` means (`errmsg`: what the PBX said with it, for a code the table lacks).
pub fn api_error(errcode: i64, errmsg: &str) -> ApiError {
    let (code, meaning) = TABLE
        .iter()
        .find(|(n, _, _)| *n == errcode)
        .map_or((ApiCode::Other, "undocumented error"), |(_, c, m)| (*c, *m));
    let wire = if meaning == "undocumented error" && !errmsg.trim().is_empty() {
        format!("{errcode} {}", clip(errmsg.trim(), 32))
    } else {
        errcode.to_string()
    };
    ApiError {
        code,
        label: "errcode",
        wire,
        meaning,
    }
}

/// A `get_token` refusal in login terms: `-1` (FAILURE) is wrong credentials there.
pub fn login_error(errcode: i64, errmsg: &str) -> ApiError {
    let mut e = api_error(errcode, errmsg);
    if errcode == -1 {
        e.code = ApiCode::LoginRejected;
        e.meaning = "FAILURE: wrong Client ID or Client Secret";
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_words() {
        let e = api_error(10004, "TOKEN EXPIRED");
        assert_eq!(e.to_string(), "errcode 10004 (TOKEN EXPIRED)");
        assert_eq!(e.code, ApiCode::TokenInvalid);
        for (n, code) in [
            (10001, ApiCode::Unsupported),
            (60002, ApiCode::TokenCap),
            (70004, ApiCode::LoginLocked),
            (70087, ApiCode::IpForbidden),
            (70123, ApiCode::ApiDisabled),
            (-1, ApiCode::Other),
        ] {
            assert_eq!(api_error(n, "").code, code, "{n}");
        }
        assert_eq!(login_error(-1, "FAILURE").code, ApiCode::LoginRejected);
        assert_eq!(
            login_error(-1, "FAILURE").to_string(),
            "errcode -1 (FAILURE: wrong Client ID or Client Secret)"
        );
        let odd = api_error(70999, &"X".repeat(500));
        assert_eq!(odd.code, ApiCode::Other);
        assert_eq!(odd.wire.chars().count(), "70999 ".len() + 33);
        assert_eq!(
            api_error(70999, "").to_string(),
            "errcode 70999 (undocumented error)"
        );
    }
}
