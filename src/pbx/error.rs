//! What can go wrong talking to a PBX, and how each failure is counted.
//!
//! Messages name the endpoint and the cause and never a secret: reqwest errors are stripped of their
//! URL (which carries the token) before their text is kept.

use std::fmt;

/// The `outcome` label of `yeastar_exporter_pbx_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// `status: Success`.
    Success,
    /// `status: Failed` with an errno other than a token error.
    ApiError,
    /// errno 20004, 20005 or 20006.
    TokenExpired,
    /// An HTTP status other than 200.
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

/// What an errno means, in words a user can act on.
pub fn errno_meaning(errno: &str) -> &'static str {
    match errno {
        "10003" => "API request not supported by this firmware",
        "10004" => "required parameter blank",
        "10005" => "callid does not exist",
        "20000" => "JSON body required",
        "20001" => "POST required",
        "20002" => "this host is locked out after failed logins",
        "20003" => "wrong username or password",
        "20004" => "no such token",
        "20005" => "token blank",
        "20006" => "token timed out",
        "30003" => "API service not running",
        _ => "undocumented error",
    }
}

/// A failed exchange with the PBX.
#[derive(Debug, thiserror::Error)]
pub enum PbxError {
    /// No connection, or it closed before an answer.
    #[error("POST {endpoint}: connection failed: {reason}")]
    Connect {
        /// The API endpoint.
        endpoint: String,
        /// The transport's words, URL removed.
        reason: String,
    },
    /// The deadline passed.
    #[error("POST {endpoint}: no answer before the deadline")]
    Timeout {
        /// The API endpoint.
        endpoint: String,
    },
    /// HTTP status other than 200.
    #[error("POST {endpoint}: HTTP status {status}")]
    Http {
        /// The API endpoint.
        endpoint: String,
        /// The status code.
        status: u16,
    },
    /// Not the JSON expected.
    #[error("POST {endpoint}: undecodable answer: {reason}")]
    Decode {
        /// The API endpoint.
        endpoint: String,
        /// What was wrong.
        reason: String,
    },
    /// `status: Failed`.
    #[error(
        "POST {endpoint}: PBX answered errno {errno} ({})",
        errno_meaning(errno)
    )]
    Api {
        /// The API endpoint.
        endpoint: String,
        /// The PBX's error number.
        errno: String,
    },
    /// A token error (20004/20005/20006) that a new login did not cure, or static-token mode.
    #[error(
        "POST {endpoint}: token refused, errno {errno} ({})",
        errno_meaning(errno)
    )]
    TokenExpired {
        /// The API endpoint.
        endpoint: String,
        /// The PBX's error number.
        errno: String,
    },
    /// errno 20003 on login.
    #[error("login rejected: wrong username or password (errno 20003)")]
    LoginRejected,
    /// errno 20002 on login.
    #[error("login refused: the PBX has locked this host out (errno 20002)")]
    LoginLocked,
    /// A login failed earlier; no new attempt until the back-off ends.
    #[error("logins suspended after a rejected login; next attempt in {retry_in_secs}s")]
    LoginSuspended {
        /// Seconds until the next attempt is allowed.
        retry_in_secs: u64,
    },
    /// A login failed earlier in this scrape; it is not retried within the scrape.
    #[error("not logged in: {0}")]
    NotLoggedIn(String),
}

impl PbxError {
    /// How a request that ended in this error is counted.
    pub fn outcome(&self) -> Outcome {
        match self {
            PbxError::Connect { .. } => Outcome::ConnectError,
            PbxError::Timeout { .. } => Outcome::Timeout,
            PbxError::Http { .. } => Outcome::HttpError,
            PbxError::Decode { .. } => Outcome::DecodeError,
            PbxError::Api { .. }
            | PbxError::LoginRejected
            | PbxError::LoginLocked
            | PbxError::LoginSuspended { .. }
            | PbxError::NotLoggedIn(_) => Outcome::ApiError,
            PbxError::TokenExpired { .. } => Outcome::TokenExpired,
        }
    }

    /// The errno of an API error.
    pub fn errno(&self) -> Option<&str> {
        match self {
            PbxError::Api { errno, .. } | PbxError::TokenExpired { errno, .. } => Some(errno),
            PbxError::LoginRejected => Some("20003"),
            PbxError::LoginLocked => Some("20002"),
            _ => None,
        }
    }

    /// Whether the PBX said this endpoint does not exist on its firmware (10003).
    pub fn is_unsupported(&self) -> bool {
        self.errno() == Some("10003")
    }
}

/// The rustls error somewhere in `err`'s chain (an `io::Error` hides its inner error from
/// `source()`, so each one is opened too).
fn find_tls_error<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
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

/// A failed TLS handshake with a PBX, in words that say what to do.
pub(crate) fn tls_reason(err: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    let rustls::Error::InvalidCertificate(cert) = err else {
        return format!("TLS handshake failed: {err}");
    };
    match cert {
        C::UnknownIssuer => {
            "TLS: the PBX's certificate is not signed by a trusted CA (unknown issuer; \
             a self-signed certificate?): give its CA or the certificate itself as ca_file \
             (--pbx.ca-file)"
                .into()
        }
        C::NotValidForName => "TLS: the PBX's certificate is not valid for the host in the URL \
             (name mismatch): use a name or address the certificate lists"
            .into(),
        C::NotValidForNameContext { presented, .. } => format!(
            "TLS: the PBX's certificate is not valid for the host in the URL (name mismatch; it \
             lists {}): use a name or address the certificate lists",
            presented.join(", ")
        ),
        C::Expired | C::ExpiredContext { .. } => "TLS: the PBX's certificate has expired \
             (renew it, or check this host's clock)"
            .into(),
        C::NotValidYet | C::NotValidYetContext { .. } => "TLS: the PBX's certificate is not \
             valid yet (check this host's clock)"
            .into(),
        other => format!("TLS: the PBX's certificate was refused: {other:?}"),
    }
}

/// The text of a transport error and its sources, without the URL.
pub(crate) fn transport_reason(err: reqwest::Error) -> String {
    let err = err.without_url();
    if let Some(tls) = find_tls_error(&err) {
        return tls_reason(tls);
    }
    let mut text = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
