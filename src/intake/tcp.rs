//! TCP report mode: a PBX whose *Report Method* is TCP is read by [`tcp_client`]: the exporter
//! dials the PBX's event port, sends the documented login block (with the password in clear, as
//! the vendor specifies), and splits the stream into JSON objects whatever the framing
//! ([`ObjectSplitter`]).
//!
//! Its logins keep the login ledger's rule like API logins (the PBX's lockout counts per
//! address): each is written down before it is sent, as a possible failure, and stays one until
//! the PBX confirms it — `Response: Success`, or a report (a JSON object) — however long the
//! connection stays open without a word; a connection that closes before then leaves it a
//! failure, stamped when it closed. So API and TCP logins together stay within 2 unconfirmed
//! attempts per 10 minutes per PBX host. The PBX's answer is looked for in everything it sends
//! outside JSON objects since the login, kept across reads (bounded: [`ANSWER_WINDOW`]), so a
//! `Response: Error` split over any number of reads is still a refusal. A refused login
//! suspends the target's logins (API and TCP) for its login back-off, as an API rejection does
//! (`yeastar_login_suspended 1`). It reconnects with back-off (1 s doubling to 1 minute; reset
//! only after a connection that lasted a minute) and ends when its target is removed.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::collector::Target;
use crate::config::TcpEvents;
use crate::exporter::{App, Built, Follower};
use crate::pbx::LoginLedger;
use crate::pbx::ledger::Failure;
use crate::pbx::s_series::events::ObjectSplitter;
use crate::support::clock::SharedClock;

/// Starts a reader for each target with TCP events that `app` builds, now and after each switch:
/// each lives as long as its target (a changed target is a new one, with a new reader).
pub fn follow(app: &App) {
    app.follow(Arc::new(Readers));
}

/// The fleet's follower that starts the readers.
#[derive(Debug)]
struct Readers;

impl Follower for Readers {
    fn built(&self, app: &App, built: &[Built<'_>]) {
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        for b in built {
            let Some(tcp) = b.tcp_events else { continue };
            tokio::spawn(tracing::Instrument::instrument(
                tcp_client(
                    Arc::downgrade(b.target),
                    tcp.clone(),
                    b.target.client().config().url.clone(),
                    app.ledger().clone(),
                    app.clock().clone(),
                ),
                b.target.client().span().clone(),
            ));
        }
    }
}

/// How much of the text the PBX sends outside JSON objects is kept to recognise its answer to
/// the login: the last this many bytes (an answer is a few dozen).
pub const ANSWER_WINDOW: usize = 1024;

/// How often a connection that carries nothing checks whether its target still exists.
const IDLE_CHECK: Duration = Duration::from_secs(30);

/// A connection that lasted this long resets the reconnect back-off to 1 s: a PBX that accepts
/// and closes at once is not logged in to every second.
const STABLE: Duration = Duration::from_secs(60);

/// The TCP login block: AMI-style lines, `\r\n` each, a blank line to end.
pub fn tcp_login_block(username: &str, password: &str) -> String {
    format!("Action: login\r\nUsername: {username}\r\nSecret: {password}\r\nVersion: 2.0.0\r\n\r\n")
}

/// What the PBX's text outside JSON objects says of the login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Accepted,
    Refused,
}

/// Reads the PBX's answer to the login from its text, however it is split: case and blanks
/// (spaces, tabs) are ignored, line breaks kept; the first answer in the text decides.
fn answer(text: &[u8]) -> Option<Answer> {
    let folded: Vec<u8> = text
        .iter()
        .filter(|b| !matches!(b, b' ' | b'\t'))
        .map(u8::to_ascii_lowercase)
        .collect();
    let find = |needle: &[u8]| folded.windows(needle.len()).position(|w| w == needle);
    let refused = [
        &b"response:error"[..],
        b"response:fail",
        b"authenticationfailed",
    ]
    .iter()
    .filter_map(|n| find(n))
    .min();
    let accepted = find(b"response:success");
    match (accepted, refused) {
        (Some(a), Some(r)) if a < r => Some(Answer::Accepted),
        (_, Some(_)) => Some(Answer::Refused),
        (Some(_), None) => Some(Answer::Accepted),
        (None, None) => None,
    }
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
    /// Closed after the login was confirmed, having lasted this long.
    Ended(Duration),
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
) {
    let host = crate::pbx::ledger::host_of(&url);
    let mut backoff = Duration::from_secs(1);
    loop {
        let Some(t) = target.upgrade() else { return };
        // The target's back-off (a refused login, API or TCP) and the ledger (at most 2
        // unconfirmed logins to this host in 10 minutes, API ones included) both hold.
        let now = clock.now_millis();
        let suspended = t
            .client()
            .suspended_for()
            .map(|d| now.saturating_add(d.as_millis() as u64));
        drop(t);
        if let Some(until) = suspended.max(ledger.allowed(&host, now).err()) {
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
                // The suspension (set by the session) is waited for at the top.
                backoff = Duration::from_secs(1);
            }
            Session::Ended(lasted) => {
                tracing::info!(
                    lasted_secs = lasted.as_secs(),
                    "the PBX closed the TCP event connection: reconnecting"
                );
                if lasted >= STABLE {
                    backoff = Duration::from_secs(1);
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(60));
            }
            Session::NoConnection | Session::Unconfirmed => {
                let ended = if ended == Session::NoConnection {
                    "no connection"
                } else {
                    "closed before the PBX confirmed the login"
                };
                tracing::debug!(
                    ended,
                    retry_in = %crate::logging::duration_words(backoff),
                    "TCP event connection failed; retrying"
                );
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
    let mut confirmed: Option<tokio::time::Instant> = None;
    let confirm = |confirmed: &mut Option<tokio::time::Instant>| {
        if confirmed.is_none() {
            *confirmed = Some(tokio::time::Instant::now());
            ledger.erase(host, id, clock.now_millis());
            if let Some(t) = target.upgrade() {
                t.set_events_connected(true);
            }
        }
    };
    let mut splitter = ObjectSplitter::default();
    splitter.keep_outside(ANSWER_WINDOW);
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        match tokio::time::timeout(IDLE_CHECK, stream.read(&mut chunk)).await {
            Err(_) => {
                // Nothing for a while. Unconfirmed, the login stays a possible failure in the
                // ledger for as long as this lasts.
                if target.upgrade().is_none() {
                    if confirmed.is_none() {
                        ledger.fail(host, id, Failure::Unseen, clock.now_millis());
                    }
                    return Session::Retired;
                }
            }
            Ok(Ok(0)) | Ok(Err(_)) => {
                return match confirmed {
                    None => {
                        ledger.fail(host, id, Failure::Unseen, clock.now_millis());
                        Session::Unconfirmed
                    }
                    Some(at) => Session::Ended(at.elapsed()),
                };
            }
            Ok(Ok(n)) => {
                let objects = splitter.push(&chunk[..n]);
                if confirmed.is_none() {
                    match answer(splitter.outside()) {
                        Some(Answer::Refused) => {
                            ledger.fail(host, id, Failure::Rejected, clock.now_millis());
                            // On disk before the back-off starts: a restart must keep it.
                            ledger.durable().await;
                            if let Some(t) = target.upgrade() {
                                t.client().suspend_after_refused_tcp_login(cfg.port);
                            }
                            return Session::Refused;
                        }
                        Some(Answer::Accepted) => confirm(&mut confirmed),
                        None => {}
                    }
                    if !objects.is_empty() {
                        confirm(&mut confirmed);
                    }
                    if confirmed.is_some() {
                        // The answer is read; nothing outside objects is kept any more.
                        splitter.keep_outside(0);
                    }
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
        assert_eq!(
            answer(b"Response: Error\r\nMessage: Authentication failed\r\n\r\n"),
            Some(Answer::Refused)
        );
        assert_eq!(
            answer(b"response:  FAILED\r\n"),
            Some(Answer::Refused),
            "case and blanks do not matter"
        );
        assert_eq!(answer(b"Response: Success\r\n\r\n"), Some(Answer::Accepted));
        assert_eq!(
            answer(b"Response: Success\r\nMessage: Authentication failed next time\r\n"),
            Some(Answer::Accepted),
            "the first answer decides"
        );
        assert_eq!(answer(b"Response: Succ"), None);
        assert_eq!(answer(b"Response\r\n: Error"), None, "not across lines");
    }

    /// However the PBX's words are split across reads, the splitter keeps them whole.
    #[test]
    fn answers_split_anywhere_are_read() {
        for text in [
            &b"Response: Error\r\nMessage: Authentication failed\r\n\r\n"[..],
            b"Response: Success\r\n\r\n",
        ] {
            for cut in 1..text.len() {
                let mut s = ObjectSplitter::default();
                s.keep_outside(ANSWER_WINDOW);
                let mut seen = Vec::new();
                for piece in text.chunks(cut) {
                    s.push(piece);
                    seen.push(answer(s.outside()));
                }
                let want = answer(text);
                assert!(want.is_some());
                assert_eq!(seen.last().copied().flatten(), want, "cut {cut}");
            }
        }
    }

    /// The text kept is bounded, and an answer after a flood of other text is still read.
    #[test]
    fn the_kept_text_is_bounded() {
        let mut s = ObjectSplitter::default();
        s.keep_outside(ANSWER_WINDOW);
        for _ in 0..1_000 {
            s.push(&[b'x'; 1000]);
            assert!(s.outside().len() <= ANSWER_WINDOW);
        }
        s.push(b"Response: ");
        s.push(b"Error\r\n");
        assert_eq!(answer(s.outside()), Some(Answer::Refused));
    }
}
