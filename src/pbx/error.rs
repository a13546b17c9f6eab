//! What can go wrong talking to a PBX, and how each failure is counted.
//!
//! Messages name the endpoint and the cause and never a secret: a transport failure keeps the words
//! of reqwest's causes (hyper's, the socket's, rustls's), never reqwest's error or its URL (which
//! carries the token).

use std::fmt;

use crate::support::report::Cause;

/// The `outcome` label of `yeastar_exporter_pbx_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// `status: Success`.
    Success,
    /// `status: Failed` with an errno other than a token error.
    ApiError,
    /// errno 20004, 20005 or 20006.
    TokenExpired,
    /// An HTTP status other than 200 (a redirect included), or an answer that is not valid HTTP.
    HttpError,
    /// No complete answer before the deadline.
    Timeout,
    /// Could not connect, or the connection closed without an answer.
    ConnectError,
    /// An answer that is not the JSON expected, or larger than the cap.
    DecodeError,
}

impl Outcome {
    /// Every outcome, in label order.
    pub const ALL: [Outcome; 7] = [
        Outcome::Success,
        Outcome::ApiError,
        Outcome::TokenExpired,
        Outcome::HttpError,
        Outcome::Timeout,
        Outcome::ConnectError,
        Outcome::DecodeError,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::ApiError => "api_error",
            Outcome::TokenExpired => "token_expired",
            Outcome::HttpError => "http_error",
            Outcome::Timeout => "timeout",
            Outcome::ConnectError => "connect_error",
            Outcome::DecodeError => "decode_error",
        }
    }
}

/// The `outcome` label of `yeastar_exporter_logins_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginOutcome {
    /// A token came back.
    Success,
    /// errno 20003: wrong username or password.
    Rejected,
    /// errno 20002: this host is locked out.
    Locked,
    /// Anything else: transport failure, other errno, broken answer.
    Error,
}

impl LoginOutcome {
    /// Every outcome, in label order.
    pub const ALL: [LoginOutcome; 4] = [
        LoginOutcome::Success,
        LoginOutcome::Rejected,
        LoginOutcome::Locked,
        LoginOutcome::Error,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            LoginOutcome::Success => "success",
            LoginOutcome::Rejected => "rejected",
            LoginOutcome::Locked => "locked",
            LoginOutcome::Error => "error",
        }
    }
}

/// What an API error code means, whatever family sent it: each family maps its own codes
/// (`s_series::codes`), and the client, the collectors and the log words act on these alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiCode {
    /// The token is unknown, blank or timed out: a new login (or refresh) may cure it.
    TokenInvalid,
    /// The firmware lacks the endpoint: the collector is left off for a while.
    Unsupported,
    /// A call list's way of saying no call is up: an empty list, not a failure.
    NoCalls,
    /// Wrong username or password (a login).
    LoginRejected,
    /// This host is locked out after failed logins (a login).
    LoginLocked,
    /// The PBX's API service is switched off.
    ApiDisabled,
    /// The application already holds as many live tokens as the PBX allows (a login).
    TokenCap,
    /// This host's address is not on the PBX's API allow-list.
    IpForbidden,
    /// Anything else the PBX refused.
    Other,
}

/// An API error as the PBX sent it: what it means, and its code as written, for the words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// What it means.
    pub code: ApiCode,
    /// The family's name for its codes (`errno`).
    pub label: &'static str,
    /// The code as the PBX wrote it, cut to 32 characters.
    pub wire: String,
    /// What the code means, in words a user can act on.
    pub meaning: &'static str,
}

impl fmt::Display for ApiError {
    /// `errno 10003 (API request not supported by this firmware)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} ({})", self.label, self.wire, self.meaning)
    }
}

/// The longest piece of PBX-supplied text (an errno, a status word, a redirect target) kept in an
/// error: a hostile or broken PBX must not fill logs and the landing page.
pub const MAX_PBX_TEXT: usize = 200;

/// `text` cut to at most `max` characters (on a character boundary), with `…` when cut.
pub fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_string(),
        Some((i, _)) => format!("{}…", &text[..i]),
    }
}

/// The request methods the PBX APIs use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// A query with its arguments in the URL (the P-Series' lists and queries).
    Get,
    /// A JSON body (every S-Series endpoint; the P-Series' token requests).
    Post,
}

impl Method {
    /// As HTTP writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
        }
    }
}

/// What a PBX error is about, as its message names it: the request's method and endpoint
/// (`POST call/query`, `GET call/query`: the family's own), or, for an error no request made,
/// only what it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    method: Option<Method>,
    name: String,
}

impl Endpoint {
    /// `name` asked with `method`.
    pub fn new(method: Method, name: impl Into<String>) -> Self {
        Self {
            method: Some(method),
            name: name.into(),
        }
    }

    /// An error about `name` that no request of a method made (a bug between layers).
    pub fn unasked(name: impl Into<String>) -> Self {
        Self {
            method: None,
            name: name.into(),
        }
    }

    /// The endpoint's name (`call/query`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The method it was asked with, if a request made it.
    pub fn method(&self) -> Option<Method> {
        self.method
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.method {
            Some(m) => write!(f, "{} {}", m.as_str(), self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// A failed exchange with the PBX.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PbxError {
    /// No connection, or it closed before an answer.
    #[error("{endpoint}: connection failed")]
    Connect {
        /// The request (method and API endpoint).
        endpoint: Endpoint,
        /// The transport's failure (URL removed, TLS refusals explained).
        #[source]
        cause: Cause,
        /// Whether the request may have reached the PBX (false: refused, DNS, TLS before sending).
        sent: bool,
    },
    /// The PBX answered with a redirect, which is never followed: it would carry the login body
    /// or the token (in the query string) to wherever it points.
    #[error(
        "{endpoint}: the PBX redirects (HTTP {status}) to {location}; redirects are never followed (they would carry the password and token elsewhere): {hint}"
    )]
    Redirect {
        /// The request (method and API endpoint).
        endpoint: Endpoint,
        /// The 3xx status.
        status: u16,
        /// Scheme, host and port of the redirect target (no path, no query), or what it was.
        location: String,
        /// What to configure.
        hint: String,
    },
    /// The deadline passed.
    #[error("{endpoint}: no answer before the deadline")]
    Timeout {
        /// The request (method and API endpoint).
        endpoint: Endpoint,
    },
    /// The PBX answered, but not with valid HTTP (counted as `http_error`; the request reached it).
    #[error("{endpoint}: the PBX's answer is not valid HTTP")]
    Malformed {
        /// The request (method and API endpoint).
        endpoint: Endpoint,
        /// What hyper could not read, or that the PBX speaks TLS.
        #[source]
        cause: Cause,
    },
    /// HTTP status other than 200.
    #[error("{endpoint}: HTTP status {status}")]
    Http {
        /// The request (method and API endpoint).
        endpoint: Endpoint,
        /// The status code.
        status: u16,
    },
    /// Not the JSON expected.
    #[error("{endpoint}: undecodable answer: {reason}")]
    Decode {
        /// The request (method and API endpoint).
        endpoint: Endpoint,
        /// What was wrong, in words clipped to [`MAX_PBX_TEXT`]: the decoder's message quotes the
        /// PBX's text, which must not reach a log unbounded (so no `#[source]` here).
        reason: String,
    },
    /// The PBX refused the request with an API error code.
    #[error("{endpoint}: PBX answered {error}")]
    Api {
        /// The request (method and API endpoint).
        endpoint: Endpoint,
        /// The code and what it means.
        error: ApiError,
    },
    /// A token error that a new login did not cure, or static-token mode.
    #[error("{endpoint}: token refused, {error}")]
    TokenExpired {
        /// The request (method and API endpoint).
        endpoint: Endpoint,
        /// The code and what it means.
        error: ApiError,
    },
    /// A login refused for its credentials.
    #[error("login rejected: wrong username or password ({} {})", .0.label, .0.wire)]
    LoginRejected(ApiError),
    /// A login refused because this host is locked out.
    #[error("login refused: the PBX has locked this host out ({} {})", .0.label, .0.wire)]
    LoginLocked(ApiError),
    /// A login refused because the application already holds every token the PBX allows.
    #[error("login refused: the application holds the most tokens the PBX allows ({} {})", .0.label, .0.wire)]
    TokenCap(ApiError),
    /// The PBX refused the TCP event login (`Response: Error`).
    #[error(
        "the PBX refused the TCP event login on port {port} (Response: Error: wrong username or password?)"
    )]
    TcpLoginRefused {
        /// The PBX's TCP event port.
        port: u16,
    },
    /// A login failed earlier; no new attempt until the back-off ends.
    #[error(
        "logins suspended (a login failed, or its outcome was not seen); next attempt in {retry_in_secs}s"
    )]
    LoginSuspended {
        /// Seconds until the next attempt is allowed.
        retry_in_secs: u64,
    },
    /// A login failed earlier in this scrape; it is not retried within the scrape.
    #[error("not logged in: {0}")]
    NotLoggedIn(String),
    /// The PBX refused, on its first use, the token its login had just given: counted as a failed
    /// login (logins are suspended), never a reason for another login at once.
    #[error(
        "the PBX refused the token it had just issued ({} {}, {}); counted as a failed login",
        .0.label,
        .0.wire,
        .0.meaning
    )]
    FreshTokenRefused(ApiError),
}

impl PbxError {
    /// How a request that ended in this error is counted.
    pub fn outcome(&self) -> Outcome {
        match self {
            PbxError::Connect { .. } => Outcome::ConnectError,
            PbxError::Timeout { .. } => Outcome::Timeout,
            PbxError::Http { .. } | PbxError::Redirect { .. } | PbxError::Malformed { .. } => {
                Outcome::HttpError
            }
            PbxError::Decode { .. } => Outcome::DecodeError,
            PbxError::Api { .. }
            | PbxError::LoginRejected(_)
            | PbxError::LoginLocked(_)
            | PbxError::TokenCap(_)
            | PbxError::TcpLoginRefused { .. }
            | PbxError::LoginSuspended { .. }
            | PbxError::NotLoggedIn(_) => Outcome::ApiError,
            PbxError::TokenExpired { .. } | PbxError::FreshTokenRefused(_) => Outcome::TokenExpired,
        }
    }

    /// The API error the PBX answered, if that is what this is.
    pub fn api_error(&self) -> Option<&ApiError> {
        match self {
            PbxError::Api { error, .. }
            | PbxError::TokenExpired { error, .. }
            | PbxError::LoginRejected(error)
            | PbxError::LoginLocked(error)
            | PbxError::TokenCap(error)
            | PbxError::FreshTokenRefused(error) => Some(error),
            _ => None,
        }
    }

    /// What the PBX's API error code means, if it answered one.
    pub fn api_code(&self) -> Option<ApiCode> {
        self.api_error().map(|e| e.code)
    }

    /// Whether the PBX said this endpoint does not exist on its firmware.
    pub fn is_unsupported(&self) -> bool {
        self.api_code() == Some(ApiCode::Unsupported)
    }
}

/// The rustls error somewhere in `err`'s chain (an `io::Error` hides its inner error from
/// `source()`, so each one is opened too).
pub(crate) fn find_tls_error<'a>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a rustls::Error> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = next {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        next = match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    None
}

/// A failed TLS handshake with a PBX, in words that say what to do; `plain_http`: the PBX's first
/// bytes were `HTTP/` (a plain-HTTP port), the only case the hint to use `http://` is given.
pub(crate) fn tls_reason(err: &rustls::Error, plain_http: bool) -> String {
    use rustls::CertificateError as C;
    const PIN: &str = "give the PBX's own certificate as ca_file (--pbx.ca-file) to pin it";
    let cert = match err {
        rustls::Error::InvalidCertificate(cert) => cert,
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. }
            if plain_http =>
        {
            return "TLS: the PBX did not answer with TLS (is this port plain HTTP? then use \
                    an http:// URL)"
                .into();
        }
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
            return format!(
                "TLS: the PBX's answer is not valid TLS ({})",
                clip(&err.to_string(), 120)
            );
        }
        rustls::Error::AlertReceived(alert) => {
            return format!(
                "TLS: the PBX ended the handshake (alert {}): it may accept no TLS version or \
                 cipher this exporter offers (TLS 1.2 and 1.3), or want a client certificate",
                clip(&format!("{alert:?}"), 40)
            );
        }
        other => return format!("TLS handshake failed: {}", clip(&other.to_string(), 200)),
    };
    match cert {
        C::UnknownIssuer => "TLS: the PBX's certificate is not signed by a trusted CA (unknown \
             issuer; a self-signed certificate?): give its CA or the certificate itself as ca_file \
             (--pbx.ca-file)"
            .into(),
        C::NotValidForName => "TLS: the PBX's certificate is not valid for the host in the URL \
             (name mismatch): use a name or address the certificate lists"
            .into(),
        C::NotValidForNameContext { presented, .. } => format!(
            "TLS: the PBX's certificate is not valid for the host in the URL (name mismatch; it \
             lists {}): use a name or address the certificate lists",
            clip(&presented.join(", "), 200)
        ),
        C::Expired | C::ExpiredContext { .. } => "TLS: the PBX's certificate has expired \
             (renew it, or check this host's clock)"
            .into(),
        C::NotValidYet | C::NotValidYetContext { .. } => "TLS: the PBX's certificate is not \
             valid yet (check this host's clock)"
            .into(),
        C::BadSignature | C::UnsupportedSignatureAlgorithmContext { .. } => format!(
            "TLS: the PBX's certificate signature cannot be verified (bad or unsupported \
             signature algorithm): {PIN}"
        ),
        C::InvalidPurpose | C::InvalidPurposeContext { .. } => format!(
            "TLS: the PBX's certificate is not meant for a server (extended key usage): {PIN}"
        ),
        C::BadEncoding => "TLS: the PBX's certificate is malformed".into(),
        C::Revoked => "TLS: the PBX's certificate has been revoked".into(),
        C::Other(other) if format!("{other:?}").contains("CaUsedAsEndEntity") => format!(
            "TLS: the PBX presents a CA certificate (CA:TRUE, as `openssl req -x509` makes) as \
             its own: {PIN}"
        ),
        _ => format!("TLS: the PBX's certificate could not be verified: {PIN}"),
    }
}

/// Words for a plain-HTTP exchange answered with a TLS record: an HTTPS port.
const TLS_ON_PLAIN: &str = "it speaks TLS (is this an HTTPS port? then use an https:// URL)";

/// A transport failure in words: the error's whole chain, TLS refusals explained, an answer that is
/// not HTTP named as such (the HTTPS hint only when the PBX answered with a TLS record). The
/// errors it is made from never hold the request's URL (and so never the token). Its words already
/// hold the chain, so it names no source.
#[derive(Debug)]
pub struct Transport {
    words: String,
}

impl Transport {
    /// Explains `err` and its sources.
    pub fn new(err: &(dyn std::error::Error + 'static)) -> Self {
        Transport {
            words: transport_reason(err),
        }
    }

    /// An answer that is not valid HTTP (hyper could not parse it): hyper's words, or, when the
    /// PBX answered with a TLS record (`tls`), that it speaks TLS.
    pub fn not_http(err: &(dyn std::error::Error + 'static), tls: bool) -> Self {
        Transport {
            words: if tls {
                TLS_ON_PLAIN.to_string()
            } else {
                transport_reason(err)
            },
        }
    }

    /// A refused TLS handshake, given the first bytes the PBX sent (`HTTP/…`: a plain-HTTP port).
    pub fn tls_refused(err: &(dyn std::error::Error + 'static), first: &[u8]) -> Self {
        Transport {
            words: match find_tls_error(err) {
                Some(tls) => tls_reason(tls, first.starts_with(b"HTTP/")),
                None => transport_reason(err),
            },
        }
    }

    /// A failure these words describe.
    pub fn words(words: String) -> Self {
        Transport {
            words: clip(&words, MAX_PBX_TEXT),
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.words)
    }
}

impl std::error::Error for Transport {}

fn transport_reason(err: &(dyn std::error::Error + 'static)) -> String {
    if let Some(tls) = find_tls_error(err) {
        return tls_reason(tls, false);
    }
    let mut text = err.to_string();
    let mut source = Some(err);
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    clip(&text, MAX_PBX_TEXT)
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_method_the_family_used() {
        let timeout = |method| PbxError::Timeout {
            endpoint: Endpoint::new(method, "call/query"),
        };
        assert_eq!(
            timeout(Method::Post).to_string(),
            "POST call/query: no answer before the deadline"
        );
        assert_eq!(
            timeout(Method::Get).to_string(),
            "GET call/query: no answer before the deadline"
        );
        let bug = PbxError::Decode {
            endpoint: Endpoint::unasked("trunks"),
            reason: "the device answer reached the trunks collector (a bug: please report it)"
                .into(),
        };
        assert_eq!(
            bug.to_string(),
            "trunks: undecodable answer: the device answer reached the trunks collector (a bug: please report it)"
        );
        assert_eq!(Endpoint::new(Method::Get, "x").name(), "x");
        assert_eq!(Endpoint::unasked("x").method(), None);
    }
}
