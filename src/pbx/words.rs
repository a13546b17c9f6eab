//! A PBX failure in the words of the PBX's admin first (what to check, where), the chain of the
//! libraries' words after: for log lines (`cause=`), where the admin is the reader.

use super::PbxError;

/// A PBX failure in words a PBX admin can act on, then the chain of what failed and why, as the
/// libraries said it: `cannot connect to the PBX (connection refused): is it up, and is this
/// its API port?; POST login: connection failed: Connection refused (os error 111)`.
pub fn cause(err: &PbxError) -> String {
    let chain = crate::support::report::chain(err);
    match hint(err) {
        Some(h) => format!("{h}; {chain}"),
        None => chain,
    }
}

/// The admin's words for `err`, when its own words are not already them.
fn hint(err: &PbxError) -> Option<String> {
    Some(match err {
        PbxError::Connect { cause, sent, .. } => {
            let words = cause.to_string();
            let lower = words.to_ascii_lowercase();
            if words.starts_with("through the proxy") {
                "cannot reach the PBX through its proxy: check proxy_url (--pbx.proxy-url), the proxy, and that it may CONNECT to the PBX's port"
                    .into()
            } else if words.starts_with("TLS") {
                // The transport's TLS words are already what to do.
                words
            } else if lower.contains("connection refused") {
                "cannot connect to the PBX (connection refused): is it up, and is this its API port?"
                    .into()
            } else if lower.starts_with("no connection within") {
                format!(
                    "cannot connect to the PBX ({words}): check the address and any firewall on the way"
                )
            } else if lower.contains("failed to lookup address")
                || lower.contains("name or service not known")
                || lower.contains("no address associated")
                || lower.contains("temporary failure in name resolution")
            {
                "cannot resolve the PBX's name: check the host in its URL and this host's DNS"
                    .into()
            } else if lower.contains("no route to host") || lower.contains("network is unreachable")
            {
                "cannot reach the PBX (no route): check the network path to it".into()
            } else if *sent {
                "the connection to the PBX broke off before its answer".into()
            } else {
                "cannot connect to the PBX".into()
            }
        }
        PbxError::Timeout { .. } => {
            "the PBX did not answer in time (--pbx.timeout, or the scraper's timeout)".into()
        }
        PbxError::Http { status: 404, .. } => {
            "the PBX has no API at this path (HTTP 404): check --pbx.api-path (api_path) and that the API is enabled".into()
        }
        PbxError::Http { status, .. } => format!("the PBX answered HTTP {status}"),
        PbxError::Redirect { .. } => return None,
        PbxError::Malformed { cause, .. } => {
            if cause.to_string().starts_with("it speaks TLS") {
                "the PBX speaks TLS on this port: use an https:// URL".into()
            } else {
                "the PBX's answer is not HTTP: is this its API port?".into()
            }
        }
        PbxError::Decode { .. } => "the PBX's answer is not what its API answers".into(),
        PbxError::Api { error, .. } => match error.code {
            super::ApiCode::ApiDisabled => {
                "the PBX's API service is not running: enable it on the PBX (Settings → PBX → General → API)".into()
            }
            super::ApiCode::Unsupported => format!(
                "this PBX's firmware lacks the endpoint ({} {})",
                error.label, error.wire
            ),
            _ => format!(
                "the PBX refused the request: {} ({} {})",
                error.meaning, error.label, error.wire
            ),
        },
        PbxError::TokenExpired { error, .. } => format!(
            "the PBX refused the token ({}, {} {}): a static token may be dead; else another application may be logging the same API account out",
            error.meaning, error.label, error.wire
        ),
        PbxError::LoginRejected(_) => {
            "wrong username or password: the PBX rejected the login (check the API account on the PBX)".into()
        }
        PbxError::LoginLocked(e) if e.code == super::ApiCode::IpForbidden => {
            "this host's address is not on the PBX's API allow-list: add it on the PBX (Integrations → API → IP restriction)".into()
        }
        PbxError::LoginLocked(_) => {
            "the PBX has locked this host out after failed logins: unblock it on the PBX".into()
        }
        PbxError::TokenCap(_) => {
            "the PBX already holds 8 live tokens for this Client ID (other applications or exporter replicas using it, or tokens not revoked): logins wait for tokens to expire (30 minutes) or be revoked; give this exporter its own Client ID".into()
        }
        // Its own words are the admin's already.
        PbxError::TcpLoginRefused { .. } => return None,
        PbxError::LoginSuspended { .. } | PbxError::NotLoggedIn(_) => return None,
        PbxError::FreshTokenRefused(_) => {
            "the PBX refused the token it had just issued".into()
        }
    })
}
