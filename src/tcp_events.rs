//! TCP report mode: a PBX whose *Report Method* is TCP is read by [`tcp_client`]: the exporter
//! dials the PBX's event port, sends the documented login block (with the password in clear, as
//! the vendor specifies), and splits the stream into JSON objects whatever the framing
//! ([`ObjectSplitter`]). Its logins follow the login ledger's rule like API logins (the PBX's
//! lockout counts per address): written down before they are sent, a failure unless an event or a
//! success answer comes back (or the connection stays open for [`TCP_LOGIN_PROOF`] without a
//! refusal), so at most 2 unconfirmed logins reach a PBX in any 10 minutes; a refused one suspends
//! them for the target's login back-off. It reconnects with back-off (1 s doubling to 1 minute)
//! and ends when its target is removed.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::clock::SharedClock;
use crate::collector::Target;
use crate::config::TcpEvents;
use crate::pbx::LoginLedger;
use crate::pbx::events::ObjectSplitter;
use crate::pbx::ledger::Failure;

/// A TCP login is taken as accepted when the connection stays open this long after it without a
/// refusal (the PBX documents no answer to it; an idle PBX sends no event).
pub const TCP_LOGIN_PROOF: Duration = Duration::from_secs(20);

/// The TCP login block: AMI-style lines, `\r\n` each, a blank line to end.
pub fn tcp_login_block(username: &str, password: &str) -> String {
    format!("Action: login\r\nUsername: {username}\r\nSecret: {password}\r\nVersion: 2.0.0\r\n\r\n")
}

/// Whether text the PBX sent outside any JSON object refuses the login.
fn refuses(text: &[u8]) -> bool {
    let t = String::from_utf8_lossy(text).to_ascii_lowercase();
    t.contains("response: error") || t.contains("authentication failed")
}

/// Whether it accepts it.
fn accepts(text: &[u8]) -> bool {
    String::from_utf8_lossy(text)
        .to_ascii_lowercase()
        .contains("response: success")
}

/// How one TCP session ended.
#[derive(Debug, PartialEq, Eq)]
enum Session {
    /// No connection (nothing was sent).
    NoConnection,
    /// The login was refused.
    Refused,
    /// Closed (or failed) before the login was confirmed.
    Unconfirmed,
    /// Closed after the login was confirmed.
    Ended,
    /// The target is gone.
    Retired,
}

/// Reads `target`'s events from its PBX's TCP event port until the target is removed.
pub async fn tcp_client(
    target: std::sync::Weak<Target>,
    cfg: TcpEvents,
    url: String,
    ledger: Arc<LoginLedger>,
    clock: SharedClock,
    login_backoff: Duration,
) {
    let host = crate::pbx::ledger::host_of(&url);
    let mut backoff = Duration::from_secs(1);
    loop {
        let Some(t) = target.upgrade() else { return };
        let name = t.name().to_string();
        drop(t);
        let now = clock.now_millis();
        if let Err(until) = ledger.allowed(&host, now) {
            let wait =
                Duration::from_millis(until.saturating_sub(now)).min(Duration::from_secs(60));
            tokio::time::sleep(wait.max(Duration::from_secs(1))).await;
            continue;
        }
        let ended = session(&target, &cfg, &host, &ledger, &clock).await;
        if let Some(t) = target.upgrade() {
            t.set_events_connected(false);
        }
        match ended {
            Session::Retired => return,
            Session::Refused => {
                tracing::warn!(target_name = %name, port = cfg.port, "the PBX refused the TCP event login (wrong username or password?): no TCP login for the login back-off");
                tokio::time::sleep(login_backoff).await;
            }
            Session::Ended => {
                tracing::info!(target_name = %name, "the PBX closed the TCP event connection: reconnecting");
                backoff = Duration::from_secs(1);
                tokio::time::sleep(backoff).await;
            }
            Session::NoConnection | Session::Unconfirmed => {
                tracing::debug!(target_name = %name, ?ended, "TCP event connection failed; retrying in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(60));
            }
        }
    }
}

/// One connection: connect, log in, read events until it ends.
async fn session(
    target: &std::sync::Weak<Target>,
    cfg: &TcpEvents,
    host: &str,
    ledger: &LoginLedger,
    clock: &SharedClock,
) -> Session {
    let connect =
        TcpStream::connect((host.trim_start_matches('[').trim_end_matches(']'), cfg.port));
    let Ok(Ok(mut stream)) = tokio::time::timeout(crate::pbx::CONNECT_TIMEOUT, connect).await
    else {
        return Session::NoConnection;
    };
    let id = ledger.begin_durable(host, clock.now_millis()).await;
    let block = tcp_login_block(&cfg.username, cfg.password.expose());
    if stream.write_all(block.as_bytes()).await.is_err() {
        ledger.fail(host, id, Failure::Unseen, clock.now_millis());
        return Session::Unconfirmed;
    }
    let sent = tokio::time::Instant::now();
    let mut confirmed = false;
    let confirm = |confirmed: &mut bool| {
        if !*confirmed {
            *confirmed = true;
            ledger.erase(host, id, clock.now_millis());
            if let Some(t) = target.upgrade() {
                t.set_events_connected(true);
            }
        }
    };
    let mut splitter = ObjectSplitter::default();
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let wait = if confirmed {
            Duration::from_secs(30)
        } else {
            TCP_LOGIN_PROOF.saturating_sub(sent.elapsed())
        };
        match tokio::time::timeout(wait, stream.read(&mut chunk)).await {
            Err(_) => {
                if !confirmed {
                    // Open, unrefused, for the proof period: the login stands.
                    confirm(&mut confirmed);
                }
                if target.upgrade().is_none() {
                    return Session::Retired;
                }
            }
            Ok(Ok(0)) | Ok(Err(_)) => {
                if !confirmed {
                    ledger.fail(host, id, Failure::Unseen, clock.now_millis());
                    return Session::Unconfirmed;
                }
                return Session::Ended;
            }
            Ok(Ok(n)) => {
                let bytes = &chunk[..n];
                let skipped = splitter.skipped;
                let objects = splitter.push(bytes);
                if !confirmed && splitter.skipped > skipped {
                    if refuses(bytes) {
                        ledger.fail(host, id, Failure::Rejected, clock.now_millis());
                        ledger.durable().await;
                        return Session::Refused;
                    }
                    if accepts(bytes) {
                        confirm(&mut confirmed);
                    }
                }
                if !objects.is_empty() {
                    confirm(&mut confirmed);
                }
                let Some(t) = target.upgrade() else {
                    return Session::Retired;
                };
                for o in objects {
                    t.receive_event(&o);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_login_block_and_the_answers() {
        assert_eq!(
            tcp_login_block("api", "pw"),
            "Action: login\r\nUsername: api\r\nSecret: pw\r\nVersion: 2.0.0\r\n\r\n"
        );
        assert!(refuses(
            b"Response: Error\r\nMessage: Authentication failed\r\n\r\n"
        ));
        assert!(accepts(b"Response: Success\r\n\r\n"));
        assert!(!refuses(b"Response: Success\r\n\r\n") && !accepts(b"{\"event\":\"BootUp\"}"));
    }
}
