//! Who may write a target's event reports (issue 24): the PBX itself, and nobody else on its LAN.
//!
//! HTTP event reports carry no authentication, so the exporter gives the PBX three proofs it
//! alone can offer, and keeps them here, beside the login that sets them up:
//!
//! - **the path**: every successful login registers `events/<target>/<secret>`, a fresh 128-bit
//!   secret from the operating system's CSPRNG (ring's `SystemRandom`), written as 32 hex digits;
//!   heartbeats re-register the current one. The previous login's path is still accepted for
//!   [`PATH_GRACE`] after the new login (reports the PBX queued or resends to it are not lost),
//!   then it is refused as `stale_path`; any other path is `unknown_path`.
//! - **the source address**: the addresses the target's URL host resolved to at the last login (an
//!   IP literal is itself), plus the target's `events_source_addresses` (NAT). IPv4-mapped IPv6
//!   peers are read as IPv4.
//! - **the serial number**: `deviceinfo/query`'s `sn`, asked with the login's own token right after
//!   each login (and after heartbeats while it is not known). A report carrying another `sn` is
//!   `wrong_sn`. Nothing is ever learnt from a report (no trust on first use).
//!
//! A report without `sn` — every v1 report, and a v2 one that leaves it out (the vendor's v2
//! pages say reports "usually" carry it) — is taken on the path and the address alone. So is every
//! report while the PBX reports no serial (`deviceinfo/query` unsupported, failing, or without
//! `sn`), and in the moment between the first login and its `deviceinfo/query` answer.
//!
//! The secret is a [`Secret`]: never in a log line, an error or `Debug`.

use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use crate::support::secret::Secret;

/// How long the previous login's path is still accepted after a new login.
pub const PATH_GRACE: Duration = Duration::from_secs(60);

/// Why a report was refused: the `reason` label of `yeastar_events_refused_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// Not on a path this exporter registered (a guessed path, a path of an older login, or no
    /// login yet).
    UnknownPath,
    /// On the previous login's path after its [`PATH_GRACE`].
    StalePath,
    /// From an address that is not the PBX's.
    WrongSource,
    /// Carrying another serial number than the PBX's `deviceinfo/query` reports.
    WrongSn,
}

impl Refusal {
    /// Every reason, in label order.
    pub const ALL: [Refusal; 4] = [
        Refusal::UnknownPath,
        Refusal::StalePath,
        Refusal::WrongSource,
        Refusal::WrongSn,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::UnknownPath => "unknown_path",
            Refusal::StalePath => "stale_path",
            Refusal::WrongSource => "wrong_source",
            Refusal::WrongSn => "wrong_sn",
        }
    }

    /// Its index in [`Refusal::ALL`].
    pub fn index(self) -> usize {
        Refusal::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the PBX's authenticated API says its serial number is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Serial {
    /// Not asked yet, or the last question failed (asked again after the next heartbeat).
    #[default]
    Unknown,
    /// `deviceinfo/query`'s `sn`.
    Known(String),
    /// The PBX answered but reports none (no `sn` field, or the endpoint is unsupported).
    Unreported,
}

#[derive(Debug, Default, Clone)]
struct State {
    /// The secret the last successful login registered.
    current: Option<Secret>,
    /// The one before, and when it was replaced (unix millis).
    previous: Option<(Secret, u64)>,
    /// The addresses the PBX's host resolved to at the last login.
    resolved: Vec<IpAddr>,
    serial: Serial,
}

/// One target's event gate: what its PBX's reports must show. Shared by the client (which sets it
/// up at login) and the target (which checks reports against it).
#[derive(Debug, Default)]
pub struct EventGate {
    state: Mutex<State>,
    /// The target's `events_source_addresses`.
    configured: Vec<IpAddr>,
}

/// A new path secret: 128 bits from the operating system's CSPRNG, in hex. `None` if the system
/// has no random source to give (then no new path is registered).
pub fn new_secret() -> Option<Secret> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new().fill(&mut bytes).ok()?;
    let mut hex = String::with_capacity(32);
    for b in bytes {
        hex.push_str(&format!("{b:02x}"));
    }
    Some(Secret::new(hex))
}

/// Whether `a` and `b` are equal, in time that depends only on their lengths.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// An address as the gate compares it: IPv4-mapped IPv6 as IPv4.
pub fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

impl EventGate {
    /// A gate that also accepts reports from `configured` (the target's NAT addresses).
    pub fn new(configured: Vec<IpAddr>) -> Self {
        Self {
            state: Mutex::new(State::default()),
            configured: configured.into_iter().map(canonical).collect(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        super::lock(&self.state)
    }

    /// The secret of the path registered now, if a login registered one.
    pub fn current(&self) -> Option<Secret> {
        self.state().current.clone()
    }

    /// A login registered `secret` at `now_millis`, for a PBX whose host resolved to `resolved`
    /// (`None`: the lookup failed, the last addresses stay).
    pub fn rotated(&self, secret: Secret, resolved: Option<Vec<IpAddr>>, now_millis: u64) {
        let mut s = self.state();
        if let Some(old) = s.current.replace(secret) {
            s.previous = Some((old, now_millis));
        }
        if let Some(r) = resolved {
            s.resolved = r.into_iter().map(canonical).collect();
        }
    }

    /// What `deviceinfo/query` said. A failed question keeps a serial known before (a serial
    /// number does not change).
    pub fn set_serial(&self, serial: Serial) {
        let mut s = self.state();
        if serial == Serial::Unknown && matches!(s.serial, Serial::Known(_)) {
            return;
        }
        s.serial = serial;
    }

    /// What the PBX's API says its serial number is.
    pub fn serial(&self) -> Serial {
        self.state().serial.clone()
    }

    /// Whether the serial number is still to be asked.
    pub fn serial_unknown(&self) -> bool {
        self.state().serial == Serial::Unknown
    }

    /// Checks a report's source address and path (`secret`: what follows `events/<target>/` in
    /// its request path, without a trailing `/`).
    pub fn check(&self, peer: IpAddr, secret: &str, now_millis: u64) -> Result<(), Refusal> {
        let peer = canonical(peer);
        let s = self.state();
        if !s.resolved.contains(&peer) && !self.configured.contains(&peer) {
            return Err(Refusal::WrongSource);
        }
        let secret = secret.as_bytes();
        if s.current
            .as_ref()
            .is_some_and(|c| same(c.expose().as_bytes(), secret))
        {
            return Ok(());
        }
        match &s.previous {
            Some((p, replaced)) if same(p.expose().as_bytes(), secret) => {
                if now_millis.saturating_sub(*replaced) <= PATH_GRACE.as_millis() as u64 {
                    Ok(())
                } else {
                    Err(Refusal::StalePath)
                }
            }
            _ => Err(Refusal::UnknownPath),
        }
    }

    /// Checks a report's serial number (`None`: it carries none).
    pub fn check_sn(&self, sn: Option<&str>) -> Result<(), Refusal> {
        match (&self.state().serial, sn) {
            (Serial::Known(want), Some(got)) if got.trim() != want.as_str() => {
                Err(Refusal::WrongSn)
            }
            _ => Ok(()),
        }
    }

    /// Takes over `old`'s path, addresses and serial (a reload that kept the client's token: the
    /// PBX still posts to the path that token's login registered).
    pub fn adopt(&self, old: &EventGate) {
        let taken = old.state().clone();
        *self.state() = taken;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn secrets_are_128_bits_of_hex_and_differ() {
        let a = new_secret().unwrap();
        let b = new_secret().unwrap();
        assert_eq!(a.expose().len(), 32);
        assert!(a.expose().chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a.expose(), b.expose());
        assert_eq!(format!("{a:?}"), "<secret>");
    }

    #[test]
    fn paths_sources_grace_and_serial() {
        let gate = EventGate::new(vec![ip("::ffff:198.51.100.7")]);
        let pbx = ip("192.0.2.10");
        // Before any login: nothing is accepted.
        assert_eq!(gate.check(pbx, "x", 0), Err(Refusal::WrongSource));
        let first = Secret::new("a".repeat(32));
        gate.rotated(first.clone(), Some(vec![pbx]), 1_000);
        assert_eq!(gate.check(pbx, first.expose(), 1_000), Ok(()));
        assert_eq!(
            gate.check(ip("::ffff:192.0.2.10"), first.expose(), 1_000),
            Ok(())
        );
        // The NAT address, written mapped, is read as IPv4.
        assert_eq!(
            gate.check(ip("198.51.100.7"), first.expose(), 1_000),
            Ok(())
        );
        assert_eq!(
            gate.check(ip("192.0.2.11"), first.expose(), 1_000),
            Err(Refusal::WrongSource)
        );
        assert_eq!(
            gate.check(pbx, &"b".repeat(32), 1_000),
            Err(Refusal::UnknownPath)
        );
        assert_eq!(gate.check(pbx, "", 1_000), Err(Refusal::UnknownPath));
        // A new login: the old path for 60 s more, then stale; the lookup failed, the
        // addresses stay.
        let second = Secret::new("c".repeat(32));
        gate.rotated(second.clone(), None, 10_000);
        assert_eq!(gate.check(pbx, second.expose(), 10_000), Ok(()));
        assert_eq!(gate.check(pbx, first.expose(), 70_000), Ok(()));
        assert_eq!(
            gate.check(pbx, first.expose(), 70_001),
            Err(Refusal::StalePath)
        );
        // A third login forgets the first path altogether.
        gate.rotated(Secret::new("d".repeat(32)), None, 80_000);
        assert_eq!(
            gate.check(pbx, first.expose(), 80_000),
            Err(Refusal::UnknownPath)
        );
        assert_eq!(gate.check(pbx, second.expose(), 80_000), Ok(()));
        // Serial: unchecked until known; a failed question keeps a known one.
        assert_eq!(gate.check_sn(Some("ATTACKER")), Ok(()));
        gate.set_serial(Serial::Known("3631A2000001".into()));
        gate.set_serial(Serial::Unknown);
        assert_eq!(gate.check_sn(Some("ATTACKER")), Err(Refusal::WrongSn));
        assert_eq!(gate.check_sn(Some(" 3631A2000001 ")), Ok(()));
        assert_eq!(gate.check_sn(None), Ok(()));
        gate.set_serial(Serial::Unreported);
        assert_eq!(gate.check_sn(Some("ATTACKER")), Ok(()));
    }
}
