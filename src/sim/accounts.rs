//! The simulated PBX's accounts: logins (the MD5 of the password, as the PBX compares it), tokens
//! (issued at login, living [`TOKEN_LIFETIME_MS`], extended by `heartbeat`, ended by `logout` or
//! [`Simulator::expire_tokens`]) and the lockout of an address after [`LOCKOUT_FAILURES`] failed
//! logins.

use std::collections::{HashMap, VecDeque};
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

#[derive(Debug, Default)]
pub(super) struct Accounts {
    tokens: HashMap<String, u64>,
    issued: Vec<String>,
    failures: HashMap<IpAddr, VecDeque<u64>>,
    locked_until: HashMap<IpAddr, u64>,
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
    /// Ends every token now (the PBX restarted, or tokens timed out).
    pub fn expire_tokens(&self) {
        lock(&self.accounts).tokens.clear();
    }

    /// Every token this simulator has handed out (for tests that search logs for secrets).
    pub fn issued_tokens(&self) -> Vec<String> {
        lock(&self.accounts).issued.clone()
    }

    /// Live tokens.
    pub fn live_tokens(&self) -> usize {
        let now = self.clock.now_millis();
        lock(&self.accounts)
            .tokens
            .values()
            .filter(|t| **t > now)
            .count()
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
