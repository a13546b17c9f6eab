//! The login ledger: every login attempt that did not yield a token, per PBX host, kept on disk.
//!
//! The PBX locks an address out for 10 minutes after 5 failed logins in 10 minutes, and it counts a
//! login whose answer the exporter never read. So the exporter keeps the one invariant that holds
//! whatever the PBX, the scrape rate or the deadlines do: **at most [`MAX_UNSEEN_FAILURES`] login
//! attempts that did not yield a token in any [`WINDOW`], per PBX host**. An attempt is written down
//! (and, with a state directory, written to disk) *before* it is sent, as a possible failure; only
//! a token coming back erases it. A request that never left this host (connection refused, DNS,
//! TLS refused before the request) is erased too: the PBX never saw it. The ledger is keyed by host,
//! not by target: the PBX counts failures per source address, whatever port or scheme they used.
//!
//! With `--pbx.state-dir` the ledger survives restarts (a crash loop with a wrong password makes at
//! most 2 attempts in 10 minutes); it is written atomically (temporary file, fsync, rename).
//!
//! It holds against local faults too, since resetting it would reset the login budget:
//! - the temporary file is created exclusively (`O_CREAT|O_EXCL`, which never follows a symlink:
//!   a stale one, or a link planted there, is removed first — the link, not its target);
//! - the file is 0600 and a folder the exporter creates 0700, whatever the umask (modes are set
//!   explicitly); an existing folder keeps its mode (it is the operator's, e.g. systemd's
//!   `StateDirectory=`), with a warning at start when others may write to it;
//! - an entry stamped in the future (the clock was stepped back) is taken as made now, so it
//!   ages out 10 minutes later instead of when the clock catches up;
//! - a file over [`MAX_FILE_BYTES`] (or 512 bytes per configured target, if more) is refused at
//!   start, read through a bounded reader: the exporter writes a few entries per PBX host;
//! - hosts without an attempt in the last 10 minutes are dropped on every write.
//!
//! It also keeps the live grant of every PBX whose family caps the tokens an application may hold
//! (the P-Series: 8 per Client ID, and a new token does not end the old ones): a restart takes the
//! grant up again instead of minting another, so a crash loop cannot fill the PBX's slots
//! ([`LoginLedger::saved_grant`]). The tokens make the file a secret (it is 0600 in a 0700
//! folder, and never printed: [`SavedGrant`]'s `Debug` shows no token); a grant leaves it when it
//! is revoked or ends.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::lock;

/// The PBX's lockout window.
pub const WINDOW: Duration = Duration::from_secs(10 * 60);

/// Login attempts without a token the exporter allows itself in any [`WINDOW`] (the PBX locks out
/// at 5).
pub const MAX_UNSEEN_FAILURES: usize = 2;

/// The state file's name inside `--pbx.state-dir`.
pub const STATE_FILE: &str = "login-ledger.json";

/// The largest state file read at start (more with many targets: see [`file_limit`]). The
/// exporter writes about 60 bytes per attempt and at most 2–3 attempts per PBX host, only for
/// hosts with an attempt in the last 10 minutes.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// The largest state file read at start for `targets` configured targets: [`MAX_FILE_BYTES`], or
/// 512 bytes per target if that is more (so the exporter never writes a file it would refuse: a
/// few attempts and one saved grant, about 200 bytes, per target).
pub fn file_limit(targets: usize) -> u64 {
    MAX_FILE_BYTES.max(targets as u64 * 512)
}

/// Why an attempt is in the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Failure {
    /// Sent, no outcome yet (or the process ended before it came).
    Pending,
    /// errno 20003: wrong username or password.
    Rejected,
    /// errno 20002: the host is locked out.
    Locked,
    /// The outcome was not seen (timeout, closed connection, HTTP error, no token, undecodable), or
    /// the token it gave was refused on first use.
    Unseen,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    id: u64,
    /// When the attempt ended (unix millis); while pending, when it began.
    at_ms: u64,
    kind: Failure,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    version: u32,
    /// PBX host → attempts.
    hosts: BTreeMap<String, Vec<Entry>>,
    /// `<url> <username>` → the live grant of a PBX whose family caps its tokens.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    grants: BTreeMap<String, SavedGrant>,
}

/// A grant as the state file keeps it across a restart.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedGrant {
    /// The access token.
    pub access: String,
    /// The refresh token, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh: Option<String>,
    /// When it was obtained or last renewed (unix millis).
    pub renewed_ms: u64,
    /// How long after that it is renewed.
    pub renew_after_ms: u64,
    /// When it can no longer be renewed or used (unix millis): it is dropped then.
    pub ends_ms: u64,
}

impl std::fmt::Debug for SavedGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SavedGrant")
            .field("access", &"<secret>")
            .field("renewed_ms", &self.renewed_ms)
            .field("ends_ms", &self.ends_ms)
            .finish_non_exhaustive()
    }
}

/// Why the state file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// Reading or parsing failed.
    #[error(
        "--pbx.state-dir: cannot use {path}: {source}; fix or delete it (the PBX may still count recent failed logins)"
    )]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is larger than the exporter ever writes: not read.
    #[error(
        "--pbx.state-dir: {path} is larger than {limit} bytes, far more than the login ledger ever holds (a few entries per PBX), so it was not written by this exporter and is not read; delete it or move it aside and start again (the PBX may still count failed logins from the last 10 minutes)"
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit it exceeds.
        limit: u64,
    },
}

/// The ledger of every PBX this process logs in to. One per process (all targets share it).
///
/// With a state file, writes are group commits made off the runtime's thread: a login waits until
/// the file holding its attempt is on disk ([`LoginLedger::begin_durable`]), and every attempt
/// written down meanwhile shares that one write and fsync — at fleet scale (thousands of PBXes
/// logging in after a start) one fsync per login on the one runtime thread would stall every
/// probe. Outcomes (erase, fail) are written by the next commit without being waited for: losing
/// one to a crash only errs towards counting an attempt as failed.
#[derive(Debug)]
pub struct LoginLedger {
    path: Option<PathBuf>,
    state: Arc<Mutex<(File, u64)>>,
    /// Bumped by every change, under the state's lock.
    version: Arc<AtomicU64>,
    writer: OnceLock<Arc<Writer>>,
}

/// The background writer of a ledger with a state file.
#[derive(Debug)]
struct Writer {
    wake: tokio::sync::Notify,
    /// The version last written (or given up on after an error, which is logged).
    durable: tokio::sync::watch::Sender<u64>,
}

impl LoginLedger {
    /// A ledger in memory only: restarts forget it.
    pub fn in_memory() -> Self {
        Self {
            path: None,
            state: Arc::new(Mutex::new((File::default(), 0))),
            version: Arc::new(AtomicU64::new(0)),
            writer: OnceLock::new(),
        }
    }

    /// The ledger of `dir` (created if missing, 0700), refusing a file over `limit` bytes
    /// ([`file_limit`]). Attempts left pending by a previous process are taken as failures at
    /// `now_ms`: their outcome was never seen; attempts stamped after `now_ms` are taken as made at
    /// `now_ms`.
    pub fn open(dir: &Path, now_ms: u64, limit: u64) -> Result<Self, LedgerError> {
        let path = dir.join(STATE_FILE);
        let err = |source: std::io::Error| LedgerError::Read {
            path: path.clone(),
            source,
        };
        prepare_dir(dir).map_err(err)?;
        let mut file = match read_bounded(&path, limit) {
            Ok(Some(bytes)) => serde_json::from_slice::<File>(&bytes)
                .map_err(|e| err(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?,
            Ok(None) => {
                return Err(LedgerError::TooLarge {
                    path: path.clone(),
                    limit,
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => File::default(),
            Err(e) => return Err(err(e)),
        };
        let mut next_id = 0;
        for entries in file.hosts.values_mut() {
            for e in entries.iter_mut() {
                if e.kind == Failure::Pending {
                    e.kind = Failure::Unseen;
                    e.at_ms = e.at_ms.max(now_ms);
                }
                next_id = next_id.max(e.id + 1);
            }
        }
        let ledger = Self {
            path: Some(path.clone()),
            state: Arc::new(Mutex::new((file, next_id))),
            version: Arc::new(AtomicU64::new(0)),
            writer: OnceLock::new(),
        };
        // Proves the directory is writable now rather than at the first failed login.
        {
            let mut state = lock(&ledger.state);
            trim(&mut state.0, now_ms);
            ledger.save(&mut state.0).map_err(err)?;
        }
        Ok(ledger)
    }

    /// Where it is kept, if anywhere.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// `Ok` when a login to `host` may be attempted at `now_ms`; else the unix millis from which
    /// one may.
    pub fn allowed(&self, host: &str, now_ms: u64) -> Result<(), u64> {
        let mut state = lock(&self.state);
        let Some(entries) = state.0.hosts.get_mut(host) else {
            return Ok(());
        };
        clamp(entries, now_ms);
        let live: Vec<u64> = entries
            .iter()
            .filter(|e| e.kind == Failure::Pending || in_window(e.at_ms, now_ms))
            .map(|e| e.at_ms)
            .collect();
        if live.len() < MAX_UNSEEN_FAILURES {
            return Ok(());
        }
        // The oldest must leave the window for one more to fit.
        let mut sorted = live;
        sorted.sort_unstable();
        let k = sorted.len() - MAX_UNSEEN_FAILURES;
        Err(sorted[k] + WINDOW.as_millis() as u64)
    }

    /// Writes down an attempt about to be sent and returns its id once the state file holding it
    /// is on disk (a group commit off the runtime's thread; inline without a runtime).
    pub async fn begin_durable(&self, host: &str, now_ms: u64) -> u64 {
        let id = self.begin(host, now_ms);
        self.durable().await;
        id
    }

    /// Waits until the state file holds every change made so far (a group commit, as
    /// [`LoginLedger::begin_durable`]); at once without a state file or runtime.
    pub async fn durable(&self) {
        if let Some(w) = self.writer() {
            let wanted = self.version.load(Ordering::SeqCst);
            let mut durable = w.durable.subscribe();
            let waited =
                tokio::time::timeout(Duration::from_secs(10), durable.wait_for(|d| *d >= wanted))
                    .await;
            if !matches!(waited, Ok(Ok(_))) {
                let mut state = lock(&self.state);
                self.write_inline(&mut state.0);
            }
        }
    }

    /// Writes down an attempt about to be sent; returns its id. With a state file and a runtime,
    /// the write is scheduled, not waited for: see [`LoginLedger::begin_durable`].
    pub fn begin(&self, host: &str, now_ms: u64) -> u64 {
        let mut state = lock(&self.state);
        let id = state.1;
        state.1 += 1;
        state
            .0
            .hosts
            .entry(host.to_string())
            .or_default()
            .push(Entry {
                id,
                at_ms: now_ms,
                kind: Failure::Pending,
            });
        self.persist(&mut state.0, now_ms);
        id
    }

    /// The attempt yielded a token, or never reached the PBX: it is not a failure.
    pub fn erase(&self, host: &str, id: u64, now_ms: u64) {
        let mut state = lock(&self.state);
        if let Some(entries) = state.0.hosts.get_mut(host) {
            entries.retain(|e| e.id != id);
        }
        self.persist(&mut state.0, now_ms);
    }

    /// The attempt ended at `now_ms` without a token, for `kind`.
    pub fn fail(&self, host: &str, id: u64, kind: Failure, now_ms: u64) {
        let mut state = lock(&self.state);
        let entries = state.0.hosts.entry(host.to_string()).or_default();
        match entries.iter_mut().find(|e| e.id == id) {
            Some(e) => {
                e.kind = kind;
                e.at_ms = now_ms;
            }
            None => entries.push(Entry {
                id,
                at_ms: now_ms,
                kind,
            }),
        }
        self.persist(&mut state.0, now_ms);
    }

    /// A login that had yielded a token counts as failed after all (the PBX refused that token on
    /// first use): recorded as a new failure at `now_ms`.
    pub fn fail_after_token(&self, host: &str, now_ms: u64) {
        let id = {
            let mut state = lock(&self.state);
            let id = state.1;
            state.1 += 1;
            id
        };
        self.fail(host, id, Failure::Unseen, now_ms);
    }

    /// The latest rejection (20003 or 20002) of `host` still in the window, unix millis.
    pub fn last_rejection(&self, host: &str, now_ms: u64) -> Option<u64> {
        let mut state = lock(&self.state);
        let entries = state.0.hosts.get_mut(host)?;
        clamp(entries, now_ms);
        entries
            .iter()
            .filter(|e| matches!(e.kind, Failure::Rejected | Failure::Locked))
            .filter(|e| in_window(e.at_ms, now_ms))
            .map(|e| e.at_ms)
            .max()
    }

    /// Attempts of `host` in the ledger now (pending or failed within the window).
    pub fn count(&self, host: &str, now_ms: u64) -> usize {
        lock(&self.state)
            .0
            .hosts
            .get_mut(host)
            .map_or(0, |entries| {
                clamp(entries, now_ms);
                entries
                    .iter()
                    .filter(|e| e.kind == Failure::Pending || in_window(e.at_ms, now_ms))
                    .count()
            })
    }

    /// The grant saved under `key` (`<url> <username>`), if one is and has not ended by `now_ms`.
    pub fn saved_grant(&self, key: &str, now_ms: u64) -> Option<SavedGrant> {
        lock(&self.state)
            .0
            .grants
            .get(key)
            .filter(|g| g.ends_ms > now_ms)
            .cloned()
    }

    /// Keeps `grant` under `key` (written with the next commit; [`LoginLedger::durable`] waits
    /// for it).
    pub fn save_grant(&self, key: &str, grant: SavedGrant, now_ms: u64) {
        let mut state = lock(&self.state);
        if state.0.grants.get(key) == Some(&grant) {
            return;
        }
        state.0.grants.insert(key.to_string(), grant);
        self.persist(&mut state.0, now_ms);
    }

    /// Forgets the grant under `key` (revoked, refused or replaced).
    pub fn forget_grant(&self, key: &str, now_ms: u64) {
        let mut state = lock(&self.state);
        if state.0.grants.remove(key).is_some() {
            self.persist(&mut state.0, now_ms);
        }
    }

    /// The background writer, started on first use inside a runtime; `None` without a state
    /// file or outside a runtime.
    fn writer(&self) -> Option<&Arc<Writer>> {
        let path = self.path.clone()?;
        if let Some(w) = self.writer.get() {
            return Some(w);
        }
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let w = self.writer.get_or_init(|| {
            let w = Arc::new(Writer {
                wake: tokio::sync::Notify::new(),
                durable: tokio::sync::watch::Sender::new(0),
            });
            let (writer, state, version) = (w.clone(), self.state.clone(), self.version.clone());
            runtime.spawn(async move {
                loop {
                    writer.wake.notified().await;
                    let (bytes, v) = {
                        let state = lock(&state);
                        (serde_json::to_vec(&state.0), version.load(Ordering::SeqCst))
                    };
                    let path = path.clone();
                    let written = match bytes {
                        Ok(bytes) => {
                            tokio::task::spawn_blocking(move || write_file(&path, &bytes))
                                .await
                                .unwrap_or_else(|e| Err(std::io::Error::other(e)))
                        }
                        Err(e) => Err(std::io::Error::other(e)),
                    };
                    if let Err(e) = written {
                        tracing::error!(error = %e, "cannot write the login ledger; a restart now would forget recent failed logins");
                    }
                    writer.durable.send_replace(v);
                }
            });
            w
        });
        Some(w)
    }

    fn persist(&self, file: &mut File, now_ms: u64) {
        trim(file, now_ms);
        self.version.fetch_add(1, Ordering::SeqCst);
        match self.writer() {
            Some(w) => w.wake.notify_one(),
            None => self.write_inline(file),
        }
    }

    fn write_inline(&self, file: &mut File) {
        if let Err(e) = self.save(file)
            && let Some(path) = &self.path
        {
            // Still safe within this process (the ledger in memory holds); only a restart would
            // forget the attempt.
            tracing::error!(path = %path.display(), error = %e, "cannot write the login ledger; a restart now would forget recent failed logins");
        }
    }

    /// Writes the file now (temporary file, fsync, rename).
    fn save(&self, file: &mut File) -> std::io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let bytes = serde_json::to_vec(file).map_err(std::io::Error::other)?;
        write_file(path, &bytes)
    }
}

/// Drops what left the window, and every host left without an attempt; clamps what is stamped
/// in the future.
fn trim(file: &mut File, now_ms: u64) {
    for entries in file.hosts.values_mut() {
        clamp(entries, now_ms);
        entries.retain(|e| e.kind == Failure::Pending || in_window(e.at_ms, now_ms));
    }
    file.hosts.retain(|_, entries| !entries.is_empty());
    file.grants.retain(|_, g| g.ends_ms > now_ms);
    file.version = 1;
}

/// An attempt stamped after `now_ms` (the clock was stepped back since) is taken as made at
/// `now_ms`: it then ages out 10 minutes from now, not 10 minutes after the clock catches up.
fn clamp(entries: &mut [Entry], now_ms: u64) {
    for e in entries {
        e.at_ms = e.at_ms.min(now_ms);
    }
}

/// Creates `dir` (and missing parents) 0700 whatever the umask; an existing folder keeps its
/// mode, with a warning when users other than its owner may write to it.
fn prepare_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        match std::fs::metadata(dir) {
            Ok(meta) => {
                let mode = meta.permissions().mode() & 0o7777;
                if mode & 0o022 != 0 {
                    tracing::warn!(
                        path = %dir.display(),
                        mode = format!("{mode:04o}"),
                        "the login ledger folder (--pbx.state-dir) is writable by other users: any of them can delete the ledger and so reset the login budget; make it private (chmod 700)"
                    );
                }
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)?;
                // The umask may have taken bits from 0700 (a umask of 0200 leaves 0500).
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            }
            Err(e) => Err(e),
        }
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(dir)
    }
}

/// The file's bytes, read through a reader bounded at `limit` bytes; `None` when it is larger
/// (or is not a regular file: a FIFO would block the start, a device never end).
fn read_bounded(path: &Path, limit: u64) -> std::io::Result<Option<Vec<u8>>> {
    use std::io::Read;
    let f = std::fs::File::open(path)?;
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not a regular file",
        ));
    }
    if meta.len() > limit {
        return Ok(None);
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    f.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Ok(None);
    }
    Ok(Some(bytes))
}

/// Writes `bytes` to `path` through a temporary file (created exclusively, 0600), fsync and
/// rename. One write at a time in the process: the temporary file's name is fixed.
fn write_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    static WRITING: Mutex<()> = Mutex::new(());
    let _one = lock(&WRITING);
    let tmp = path.with_extension("json.tmp");
    {
        use std::io::Write;
        // A stale temporary file (a crash mid-write), or a symlink planted there: removing it
        // removes the link, never its target, and `create_new` (O_CREAT|O_EXCL) refuses to follow
        // one planted again in between.
        match std::fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut f = options.open(&tmp)?;
        #[cfg(unix)]
        {
            // The umask may have taken bits from 0600; set the mode on the open file.
            use std::os::unix::fs::PermissionsExt;
            f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent()
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

fn in_window(at_ms: u64, now_ms: u64) -> bool {
    now_ms.saturating_sub(at_ms) < WINDOW.as_millis() as u64
}

/// The host part of a PBX base URL (`https://10.0.0.5:8088` → `10.0.0.5`), lower-cased: the
/// PBX counts failed logins per source address, whatever port or scheme they came to.
pub fn host_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    host.to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60_000;

    #[test]
    fn two_failures_per_window_then_wait_for_the_oldest() {
        let l = LoginLedger::in_memory();
        assert_eq!(l.allowed("pbx", 0), Ok(()));
        let a = l.begin("pbx", 0);
        l.fail("pbx", a, Failure::Unseen, 5_000);
        let b = l.begin("pbx", MIN);
        // Pending counts.
        assert_eq!(l.allowed("pbx", MIN), Err(5_000 + 10 * MIN));
        l.fail("pbx", b, Failure::Rejected, MIN);
        assert_eq!(l.allowed("pbx", 10 * MIN), Err(5_000 + 10 * MIN));
        assert_eq!(l.allowed("pbx", 5_000 + 10 * MIN), Ok(()));
        assert_eq!(l.last_rejection("pbx", 2 * MIN), Some(MIN));
        // Another host is not affected; a success erases.
        let c = l.begin("other", 0);
        l.erase("other", c, 0);
        assert_eq!(l.count("other", 0), 0);
    }

    #[test]
    fn hosts_ignore_scheme_and_port() {
        assert_eq!(host_of("https://PBX.example:8088"), "pbx.example");
        assert_eq!(host_of("http://10.0.0.5"), "10.0.0.5");
        assert_eq!(host_of("http://[fe80::1]:80"), "fe80::1");
    }

    #[test]
    fn the_file_survives_and_pending_becomes_failure() {
        let dir = std::env::temp_dir().join(format!("ledger-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let l = LoginLedger::open(&dir, 0, MAX_FILE_BYTES).unwrap();
        let a = l.begin("pbx", 0);
        l.fail("pbx", a, Failure::Rejected, 1_000);
        l.begin("pbx", 2_000); // the process "dies" here
        drop(l);
        let l = LoginLedger::open(&dir, 3_000, MAX_FILE_BYTES).unwrap();
        assert_eq!(l.count("pbx", 3_000), 2);
        assert_eq!(l.allowed("pbx", 3_000), Err(1_000 + 10 * MIN));
        std::fs::write(dir.join(STATE_FILE), "{broken").unwrap();
        let e = LoginLedger::open(&dir, 0, MAX_FILE_BYTES)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("--pbx.state-dir: cannot use "), "{e}");
        assert!(e.contains("login-ledger.json: "), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Inside a runtime, concurrent logins share group commits, and each returns only once the
    /// file holds its attempt; outcomes follow with the next commit.
    #[tokio::test]
    async fn logins_wait_for_a_shared_commit() {
        let dir = std::env::temp_dir().join(format!("ledger-group-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let l = Arc::new(LoginLedger::open(&dir, 0, MAX_FILE_BYTES).unwrap());
        let read = |dir: &Path| -> File {
            serde_json::from_slice(&std::fs::read(dir.join(STATE_FILE)).unwrap()).unwrap()
        };
        let tasks: Vec<_> = (0..100)
            .map(|i| {
                let (l, dir) = (l.clone(), dir.clone());
                tokio::spawn(async move {
                    let id = l.begin_durable(&format!("pbx-{i}"), 1_000).await;
                    // On disk before it returns.
                    let file = read(&dir);
                    assert!(
                        file.hosts[&format!("pbx-{i}")].iter().any(|e| e.id == id),
                        "attempt {i} not on disk"
                    );
                    id
                })
            })
            .collect();
        let mut ids = Vec::new();
        for t in tasks {
            ids.push(t.await.unwrap());
        }
        l.fail("pbx-7", ids[7], Failure::Rejected, 2_000);
        let mut rejected = false;
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            rejected = read(&dir).hosts["pbx-7"][0].kind == Failure::Rejected;
            if rejected {
                break;
            }
        }
        assert!(rejected, "the outcome never reached the file");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
