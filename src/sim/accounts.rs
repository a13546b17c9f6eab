//! The simulated PBX's accounts: logins (the MD5 of the password, as the PBX compares it), tokens
//! (issued at login, living [`TOKEN_LIFETIME_MS`], extended by `heartbeat`, ended by `logout` or
//! [`Simulator::expire_tokens`]) and the lockout of an address after [`LOCKOUT_FAILURES`] failed
//! logins.
//!
//! The P-Series side keeps its own grants ([`OpenApiGrants`]): access tokens (living
//! [`P_ACCESS_TOKEN_LIFETIME_MS`], at most [`P_TOKEN_CAP`] alive at once for the one application
//! the simulator has), refresh tokens ([`P_REFRESH_TOKEN_LIFETIME_MS`]), and the IP block after
//! [`P_BLOCK_FAILURES`] failed `get_token` in a row, lifted only by an administrator
//! ([`Simulator::unblock_all`]). It decides; `p_series` words the answers.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::IpAddr;

use serde_json::Value;

use super::s_series::{Answer, failed, success, token_of};
use super::{Simulator, lock};

/// Token lifetime without a heartbeat.
pub const TOKEN_LIFETIME_MS: u64 = 30 * 60 * 1000;
/// Failed logins within [`LOCKOUT_WINDOW_MS`] that lock an address out.
pub const LOCKOUT_FAILURES: usize = 5;
/// The window failed logins are counted in, and the length of a lockout.
pub const LOCKOUT_WINDOW_MS: u64 = 10 * 60 * 1000;

/// P-Series: an access token's lifetime (`access_token_expire_time` 1800 s).
pub const P_ACCESS_TOKEN_LIFETIME_MS: u64 = 1800 * 1000;
/// P-Series: a refresh token's lifetime (`refresh_token_expire_time` 86400 s).
pub const P_REFRESH_TOKEN_LIFETIME_MS: u64 = 86_400 * 1000;
/// P-Series: valid access tokens one application (one Client ID) may hold at once.
pub const P_TOKEN_CAP: usize = 8;
/// P-Series: failed `get_token` in a row from one address that put it on the blocklist.
pub const P_BLOCK_FAILURES: u32 = 5;

#[derive(Debug, Default)]
pub(super) struct Accounts {
    tokens: HashMap<String, u64>,
    issued: Vec<String>,
    failures: HashMap<IpAddr, VecDeque<u64>>,
    locked_until: HashMap<IpAddr, u64>,
    /// The P-Series grants.
    pub(super) open: OpenApiGrants,
}

/// The P-Series application's grants and the blocklist.
///
/// Choices where the vendor leaves it UNKNOWN (`yeastar-pseries-api.md` §1.5, §1.6, §7.2, §7.3):
/// - `refresh_token` ends the access token issued with the refresh token it spends (and that
///   refresh token: each is good once); the new pair keeps the old one's slot under the cap. If
///   that access token had already expired (its slot freed), the new one needs a free slot like a
///   `get_token`.
/// - `del_token` ends the access token and the refresh token issued with it; its slot is free at
///   once.
/// - A `get_token` refused for the cap (60002) neither counts toward the IP block nor resets the
///   count: the credentials were right.
/// - The block lasts until an administrator lifts it; no timer ends it.
#[derive(Debug, Default)]
pub(super) struct OpenApiGrants {
    /// Access token → when it expires (clock milliseconds).
    access: HashMap<String, u64>,
    /// Refresh token → the access token issued with it, and when it expires.
    refresh: HashMap<String, (String, u64)>,
    /// Failed `get_token` in a row, by source address.
    failures: HashMap<IpAddr, u32>,
    /// Addresses on the blocklist.
    blocked: BTreeSet<IpAddr>,
}

/// A new access and refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Pair {
    pub(super) access: String,
    pub(super) refresh: String,
}

/// Why no pair was issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    /// [`P_TOKEN_CAP`] access tokens are alive.
    Cap,
    /// The refresh token is unknown, spent, revoked or expired.
    Unknown,
}

/// Lifetimes of a new pair, in milliseconds.
#[derive(Debug, Clone, Copy)]
pub(super) struct Lifetimes {
    pub(super) access: u64,
    pub(super) refresh: u64,
}

impl OpenApiGrants {
    /// Forgets what expired by `now`.
    fn prune(&mut self, now: u64) {
        self.access.retain(|_, exp| *exp > now);
        self.refresh.retain(|_, (_, exp)| *exp > now);
    }

    /// Access tokens alive at `now`.
    pub(super) fn live_access(&self, now: u64) -> usize {
        self.access.values().filter(|exp| **exp > now).count()
    }

    /// Refresh tokens alive at `now`.
    fn live_refresh(&self, now: u64) -> usize {
        self.refresh.values().filter(|(_, exp)| *exp > now).count()
    }

    /// Whether `token` is an access token alive at `now`.
    pub(super) fn access_alive(&self, token: &str, now: u64) -> bool {
        !token.is_empty() && self.access.get(token).is_some_and(|exp| *exp > now)
    }

    /// A `get_token` with the right credentials at `now`: a new pair, unless the cap is reached.
    pub(super) fn issue(
        &mut self,
        now: u64,
        life: Lifetimes,
        mint: impl FnMut() -> String,
    ) -> Result<Pair, Refusal> {
        self.prune(now);
        if self.access.len() >= P_TOKEN_CAP {
            return Err(Refusal::Cap);
        }
        Ok(self.insert(now, life, mint))
    }

    /// A `refresh_token` with `refresh` at `now` (see the type's choices).
    pub(super) fn refresh(
        &mut self,
        refresh: &str,
        now: u64,
        life: Lifetimes,
        mint: impl FnMut() -> String,
    ) -> Result<Pair, Refusal> {
        self.prune(now);
        let Some((old_access, _)) = self.refresh.get(refresh).cloned() else {
            return Err(Refusal::Unknown);
        };
        let keeps_slot = self.access.contains_key(&old_access);
        if !keeps_slot && self.access.len() >= P_TOKEN_CAP {
            return Err(Refusal::Cap);
        }
        self.refresh.remove(refresh);
        self.access.remove(&old_access);
        Ok(self.insert(now, life, mint))
    }

    fn insert(&mut self, now: u64, life: Lifetimes, mut mint: impl FnMut() -> String) -> Pair {
        let pair = Pair {
            access: mint(),
            refresh: mint(),
        };
        self.access.insert(pair.access.clone(), now + life.access);
        self.refresh.insert(
            pair.refresh.clone(),
            (pair.access.clone(), now + life.refresh),
        );
        pair
    }

    /// A `del_token` of `access`: it and its refresh token end.
    pub(super) fn revoke(&mut self, access: &str) {
        self.access.remove(access);
        self.refresh.retain(|_, (a, _)| a != access);
    }

    /// Whether `peer` is on the blocklist.
    pub(super) fn is_blocked(&self, peer: IpAddr) -> bool {
        self.blocked.contains(&peer)
    }

    /// A `get_token` from `peer` with wrong credentials: the [`P_BLOCK_FAILURES`]th in a row
    /// puts the address on the blocklist.
    pub(super) fn failed(&mut self, peer: IpAddr) {
        let n = self.failures.entry(peer).or_default();
        *n += 1;
        if *n >= P_BLOCK_FAILURES {
            self.failures.remove(&peer);
            self.blocked.insert(peer);
        }
    }

    /// A successful `get_token` from `peer`: its count starts again.
    pub(super) fn succeeded(&mut self, peer: IpAddr) {
        self.failures.remove(&peer);
    }
}

impl Accounts {
    /// `token` lives until `until` (a `heartbeat`).
    pub(super) fn extend(&mut self, token: String, until: u64) {
        self.tokens.insert(token, until);
    }

    /// `token` ends (a `logout`).
    pub(super) fn end(&mut self, token: &str) {
        self.tokens.remove(token);
    }

    /// Whether `peer` is locked out at `now`.
    fn locked(&self, peer: IpAddr, now: u64) -> bool {
        self.locked_until.get(&peer).is_some_and(|u| *u > now)
    }

    /// A failed login (API or TCP events) from `peer` at `now`: the fifth in the window locks
    /// the address out.
    pub(super) fn failed_login(&mut self, peer: IpAddr, now: u64) {
        let failures = self.failures.entry(peer).or_default();
        failures.retain(|t| now.saturating_sub(*t) < LOCKOUT_WINDOW_MS);
        failures.push_back(now);
        if failures.len() >= LOCKOUT_FAILURES {
            failures.clear();
            self.locked_until.insert(peer, now + LOCKOUT_WINDOW_MS);
        }
    }
}

impl Simulator {
    /// Ends every token now (the PBX restarted, or tokens timed out); on the P-Series access and
    /// refresh tokens alike.
    pub fn expire_tokens(&self) {
        let mut acc = lock(&self.accounts);
        acc.tokens.clear();
        acc.open.access.clear();
        acc.open.refresh.clear();
    }

    /// Every token this simulator has handed out, P-Series refresh tokens too (for tests that
    /// search logs for secrets).
    pub fn issued_tokens(&self) -> Vec<String> {
        lock(&self.accounts).issued.clone()
    }

    /// Live tokens (P-Series: live access tokens, what the cap counts).
    pub fn live_tokens(&self) -> usize {
        let now = self.clock.now_millis();
        let acc = lock(&self.accounts);
        acc.tokens.values().filter(|t| **t > now).count() + acc.open.live_access(now)
    }

    /// P-Series: live refresh tokens.
    pub fn live_refresh_tokens(&self) -> usize {
        let now = self.clock.now_millis();
        lock(&self.accounts).open.live_refresh(now)
    }

    /// P-Series: failed `get_token` in a row from `ip` since its last success or block.
    pub fn failed_token_requests(&self, ip: IpAddr) -> u32 {
        lock(&self.accounts)
            .open
            .failures
            .get(&ip)
            .copied()
            .unwrap_or(0)
    }

    /// P-Series: the addresses on the blocklist, in order.
    pub fn blocked_ips(&self) -> Vec<IpAddr> {
        lock(&self.accounts).open.blocked.iter().copied().collect()
    }

    /// P-Series: whether `ip` is on the blocklist.
    pub fn is_blocked(&self, ip: IpAddr) -> bool {
        lock(&self.accounts).open.is_blocked(ip)
    }

    /// P-Series: an administrator empties the blocklist (Security > Security Rules > Blocked
    /// IPs); the counts of failures start again too.
    pub fn unblock_all(&self) {
        let mut acc = lock(&self.accounts);
        acc.open.blocked.clear();
        acc.open.failures.clear();
    }

    /// Writes down tokens handed out (P-Series), for [`Simulator::issued_tokens`].
    pub(super) fn note_issued(&self, pair: &Pair) {
        let mut acc = lock(&self.accounts);
        acc.issued.push(pair.access.clone());
        acc.issued.push(pair.refresh.clone());
    }

    /// Whether `ip` is locked out now.
    pub fn is_locked(&self, ip: IpAddr) -> bool {
        let now = self.clock.now_millis();
        lock(&self.accounts).locked(ip, now)
    }

    pub(super) fn check_token(&self, query: &str) -> Result<(), Answer> {
        let token = token_of(query);
        if token.is_empty() {
            return Err(failed("20005"));
        }
        let now = self.clock.now_millis();
        let accounts = lock(&self.accounts);
        match accounts.tokens.get(token) {
            None => Err(failed("20004")),
            Some(exp) if *exp <= now => Err(failed("20006")),
            Some(_) => Ok(()),
        }
    }

    pub(super) fn login(&self, body: &Value, peer: IpAddr) -> Answer {
        let now = self.clock.now_millis();
        let mut acc = lock(&self.accounts);
        if acc.locked(peer, now) {
            return failed("20002");
        }
        let user = body.get("username").and_then(Value::as_str).unwrap_or("");
        let pass = body.get("password").and_then(Value::as_str).unwrap_or("");
        let cfg = lock(&self.cfg);
        if user.is_empty() || pass.is_empty() {
            return failed("10004");
        }
        if user == cfg.username && pass == self.password_md5.expose() {
            acc.failures.remove(&peer);
            let token = format!("{:032x}", lock(&self.fault_rng).u128(..));
            acc.tokens.retain(|_, exp| *exp > now);
            acc.tokens.insert(token.clone(), now + cfg.token_lifetime);
            acc.issued.push(token.clone());
            return success([("token", token.into()), ("transport", "TCP".into())]);
        }
        acc.failed_login(peer, now);
        failed("20003")
    }

    /// Whether a TCP event login from `peer` with these `Action`, `Username` and `Secret` (the
    /// password in clear) is accepted; a refused one from an address not locked out counts toward
    /// its lockout, as a failed API login does.
    pub(super) fn tcp_login_accepted(
        &self,
        peer: IpAddr,
        action: Option<&str>,
        username: Option<&str>,
        secret: Option<&str>,
    ) -> bool {
        let now = self.clock.now_millis();
        let mut acc = lock(&self.accounts);
        let cfg = lock(&self.cfg);
        let locked = acc.locked(peer, now);
        let right = action.is_some_and(|a| a.eq_ignore_ascii_case("login"))
            && username == Some(cfg.username.as_str())
            && secret == Some(cfg.password.expose());
        if !locked && !right {
            acc.failed_login(peer, now);
        }
        !locked && right
    }
}
