//! The S-Series' error numbers (`errno` of a `Failed` answer): what each means, in the
//! family-neutral [`ApiCode`] the client and collectors act on, and in words a user can act on.

use crate::pbx::{ApiCode, ApiError, clip};

/// The code and words of every errno the vendor documents (and 10007, which firmware answers a
/// call list with when no call is up).
const TABLE: &[(&str, ApiCode, &str)] = &[
    (
        "10003",
        ApiCode::Unsupported,
        "API request not supported by this firmware",
    ),
    ("10004", ApiCode::Other, "required parameter blank"),
    ("10005", ApiCode::Other, "callid does not exist"),
    ("10007", ApiCode::NoCalls, "call does not exist"),
    ("20000", ApiCode::Other, "JSON body required"),
    ("20001", ApiCode::Other, "POST required"),
    (
        "20002",
        ApiCode::LoginLocked,
        "this host is locked out after failed logins",
    ),
    (
        "20003",
        ApiCode::LoginRejected,
        "wrong username or password",
    ),
    ("20004", ApiCode::TokenInvalid, "no such token"),
    ("20005", ApiCode::TokenInvalid, "token blank"),
    ("20006", ApiCode::TokenInvalid, "token timed out"),
    ("30003", ApiCode::ApiDisabled, "API service not running"),
];

/// What `errno` (as the PBX wrote it) means.
pub fn api_error(errno: &str) -> ApiError {
    let wire = clip(errno, 32);
    let (code, meaning) = TABLE
        .iter()
        .find(|(n, _, _)| *n == errno)
        .map_or((ApiCode::Other, "undocumented error"), |(_, c, m)| (*c, *m));
    ApiError {
        code,
        label: "errno",
        wire,
        meaning,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_errno_has_its_code_and_words() {
        let e = api_error("20004");
        assert_eq!(
            (e.code, e.wire.as_str(), e.meaning),
            (ApiCode::TokenInvalid, "20004", "no such token")
        );
        assert_eq!(e.to_string(), "errno 20004 (no such token)");
        for (n, code) in [
            ("20005", ApiCode::TokenInvalid),
            ("20006", ApiCode::TokenInvalid),
            ("20003", ApiCode::LoginRejected),
            ("20002", ApiCode::LoginLocked),
            ("10003", ApiCode::Unsupported),
            ("10007", ApiCode::NoCalls),
            ("30003", ApiCode::ApiDisabled),
            ("10004", ApiCode::Other),
        ] {
            assert_eq!(api_error(n).code, code, "{n}");
        }
        let unknown = api_error("99999");
        assert_eq!(
            (unknown.code, unknown.meaning),
            (ApiCode::Other, "undocumented error")
        );
        // A hostile PBX's errno is cut before it reaches a log line.
        let long = "9".repeat(500);
        assert_eq!(api_error(&long).wire.chars().count(), 33);
    }
}
