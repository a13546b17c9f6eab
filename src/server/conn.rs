//! What the HTTP server keeps per client connection: a write timeout, and the registry that lets
//! it close the connection that has waited longest for its request head when the cap is reached.
//!
//! A slow or idle client must not hold the server: slowloris connections that trickle a request
//! head, idle connections that send nothing, and clients that pipeline requests and never read the
//! answers. [`WriteTimeout`] cuts a client that accepts no byte of its answer for
//! `--web.write-timeout`; [`Registry`] knows which connections are waiting for a request head
//! (accepted, or done with their last answer) and since when, so that at `--web.max-connections`
//! a new client displaces the longest-waiting idle one instead of waiting behind it. A connection
//! whose request is being served is never displaced.
//!
//! The event receiver ([`crate::intake::http`]) uses the same registry with each connection's source
//! ([`Source`]): a source at its cap makes room among its own connections first, so no single
//! host can take the receiver's slots from the others. [`Tally`] keeps the log of all this to one
//! line per minute per cause, with the count.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};

/// `io` with a bound on how long a write (or flush) may make no progress.
pub struct WriteTimeout<S> {
    io: S,
    timeout: Duration,
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<S> WriteTimeout<S> {
    /// Wraps `io`.
    pub fn new(io: S, timeout: Duration) -> Self {
        Self {
            io,
            timeout,
            stalled: None,
        }
    }

    fn check<T>(
        &mut self,
        cx: &mut Context<'_>,
        poll: Poll<std::io::Result<T>>,
    ) -> Poll<std::io::Result<T>> {
        match poll {
            Poll::Ready(r) => {
                self.stalled = None;
                Poll::Ready(r)
            }
            Poll::Pending => {
                let timeout = self.timeout;
                let sleep = self
                    .stalled
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "the client read nothing of its answer within --web.write-timeout",
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

use std::future::Future;

impl<S: AsyncRead + Unpin> AsyncRead for WriteTimeout<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteTimeout<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write(cx, buf);
        self.check(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.check(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let poll = Pin::new(&mut self.io).poll_flush(cx);
        self.check(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let poll = Pin::new(&mut self.io).poll_shutdown(cx);
        ready!(self.check(cx, poll))?;
        Poll::Ready(Ok(()))
    }
}

/// One connection's entry in the [`Registry`].
#[derive(Debug)]
pub struct Conn {
    /// Microseconds since the registry's start when it began waiting for a request head; 0 while
    /// a request is being served.
    waiting_since: AtomicU64,
    /// Told to close.
    evict: Notify,
    /// Where it comes from, when the server caps connections per source.
    source: Option<Source>,
}

/// The unit a per-source cap counts: an IPv4 address, or an IPv6 /64 (one host's usual share;
/// an IPv4 client on an IPv6 socket counts as its IPv4 address).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Source(IpAddr);

impl Source {
    /// The source of a peer at `ip`.
    pub fn of(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V6(v6) => {
                let s = v6.segments();
                Source(IpAddr::V6(Ipv6Addr::new(
                    s[0], s[1], s[2], s[3], 0, 0, 0, 0,
                )))
            }
            v4 => Source(v4),
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            IpAddr::V4(a) => write!(f, "{a}"),
            IpAddr::V6(a) => write!(f, "{a}/64"),
        }
    }
}

impl Conn {
    /// A request head arrived: the connection is being served.
    pub fn busy(&self) {
        self.waiting_since.store(0, Ordering::SeqCst);
    }

    /// Resolves when the server wants this connection closed.
    pub async fn evicted(&self) {
        self.evict.notified().await
    }
}

/// The open connections.
#[derive(Debug)]
pub struct Registry {
    start: Instant,
    next: AtomicU64,
    conns: std::sync::Mutex<Open>,
    evicted: AtomicU64,
}

/// The open connections, and how many of them each source holds.
#[derive(Debug, Default)]
struct Open {
    conns: HashMap<u64, Arc<Conn>>,
    per_source: HashMap<Source, usize>,
}

impl Open {
    fn insert(&mut self, id: u64, conn: Arc<Conn>) {
        if let Some(source) = conn.source {
            *self.per_source.entry(source).or_default() += 1;
        }
        self.conns.insert(id, conn);
    }

    fn remove(&mut self, id: u64) -> Option<Arc<Conn>> {
        let conn = self.conns.remove(&id)?;
        if let Some(source) = conn.source
            && let Some(n) = self.per_source.get_mut(&source)
        {
            *n -= 1;
            if *n == 0 {
                self.per_source.remove(&source);
            }
        }
        Some(conn)
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self {
            start: Instant::now(),
            next: AtomicU64::new(1),
            conns: Default::default(),
            evicted: AtomicU64::new(0),
        }
    }
}

/// Removes its connection from the registry when dropped (also when the connection task panics).
pub struct Entry {
    registry: Arc<Registry>,
    id: u64,
    /// The connection's state.
    pub conn: Arc<Conn>,
}

impl Drop for Entry {
    fn drop(&mut self) {
        self.registry.lock().remove(self.id);
    }
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn now(&self) -> u64 {
        // Never 0, which means busy.
        (self.start.elapsed().as_micros() as u64).max(1)
    }

    /// A newly accepted connection, waiting for its first request head.
    pub fn register(self: &Arc<Self>) -> Entry {
        self.register_conn(None)
    }

    /// A newly accepted connection from `source`, waiting for its first request head.
    pub fn register_from(self: &Arc<Self>, source: Source) -> Entry {
        self.register_conn(Some(source))
    }

    fn register_conn(self: &Arc<Self>, source: Option<Source>) -> Entry {
        let conn = Arc::new(Conn {
            waiting_since: AtomicU64::new(self.now()),
            evict: Notify::new(),
            source,
        });
        let id = self.next.fetch_add(1, Ordering::SeqCst);
        self.lock().insert(id, conn.clone());
        Entry {
            registry: self.clone(),
            id,
            conn,
        }
    }

    /// `conn` answered its request and waits for the next head.
    pub fn idle(&self, conn: &Conn) {
        conn.waiting_since.store(self.now(), Ordering::SeqCst);
    }

    /// Closes the connection that has waited longest for a request head, if any; whether one was.
    pub fn evict_oldest_idle(&self) -> bool {
        self.evict_oldest_where(|_| true)
    }

    /// Closes the connection of `source` that has waited longest for a request head, if any;
    /// whether one was.
    pub fn evict_oldest_idle_from(&self, source: Source) -> bool {
        self.evict_oldest_where(|c| c.source == Some(source))
    }

    /// Closes the connection that has waited longest for a request head among those of the
    /// sources holding the most connections, if any; whether one was. Without sources this is
    /// [`Registry::evict_oldest_idle`]. A client with one connection (a PBX posting a report)
    /// goes only once every source is down to one: a flood from a few addresses, however fast it
    /// reconnects, displaces its own connections first.
    pub fn evict_oldest_idle_of_busiest_source(&self) -> bool {
        self.evict_where(|open, c| {
            let held = c
                .source
                .map_or(0, |s| open.per_source.get(&s).copied().unwrap_or(0));
            Some(usize::MAX - held)
        })
    }

    fn evict_oldest_where(&self, pick: impl Fn(&Conn) -> bool) -> bool {
        self.evict_where(|_, c| pick(c).then_some(0))
    }

    /// Closes the waiting connection of least `rank` (`None`: not a candidate), the
    /// longest-waiting among equals; whether there was one.
    fn evict_where(&self, rank: impl Fn(&Open, &Conn) -> Option<usize>) -> bool {
        let victim = {
            let mut open = self.lock();
            let oldest = open
                .conns
                .iter()
                .filter_map(|(id, c)| {
                    let since = c.waiting_since.load(Ordering::SeqCst);
                    let r = rank(&open, c)?;
                    (since != 0).then_some((r, since, *id))
                })
                .min();
            oldest.and_then(|(_, _, id)| open.remove(id))
        };
        match victim {
            Some(c) => {
                c.evict.notify_one();
                self.evicted.fetch_add(1, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    /// Connections open now.
    pub fn len(&self) -> usize {
        self.lock().conns.len()
    }

    /// Connections open now from `source`.
    pub fn from_source(&self, source: Source) -> usize {
        self.lock().per_source.get(&source).copied().unwrap_or(0)
    }

    /// Whether none is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Connections closed to make room so far.
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }
}

/// How often a [`Tally`] writes its line: at most once per this, per cause.
pub const TALLY_INTERVAL: Duration = Duration::from_secs(60);

/// Counts what happens to connections by cause and says so in the log at most once a
/// [`TALLY_INTERVAL`] per cause, with the count since the last line: the first occurrence at
/// once, the rest in the next line — never one line per connection, whatever a client does.
#[derive(Debug)]
pub struct Tally<C> {
    causes: HashMap<C, Pending>,
}

#[derive(Debug)]
struct Pending {
    /// Occurrences not in a line yet.
    count: u64,
    /// When the last line for this cause was written.
    last: Option<Instant>,
}

impl<C> Default for Tally<C> {
    fn default() -> Self {
        Self {
            causes: HashMap::new(),
        }
    }
}

impl<C: Copy + Eq + std::hash::Hash> Tally<C> {
    /// Counts one `cause` at `now`; the count to write in a line now, if one is due.
    pub fn note(&mut self, cause: C, now: Instant) -> Option<u64> {
        let p = self.causes.entry(cause).or_insert(Pending {
            count: 0,
            last: None,
        });
        p.count += 1;
        Self::due(p, now)
    }

    /// The causes whose line is due at `now`, with their counts (for a periodic flush).
    pub fn flush(&mut self, now: Instant) -> Vec<(C, u64)> {
        let mut out: Vec<(C, u64)> = Vec::new();
        for (cause, p) in &mut self.causes {
            if let Some(n) = Self::due(p, now) {
                out.push((*cause, n));
            }
        }
        out
    }

    fn due(p: &mut Pending, now: Instant) -> Option<u64> {
        if p.count == 0 || p.last.is_some_and(|t| now < t + TALLY_INTERVAL) {
            return None;
        }
        p.last = Some(now);
        Some(std::mem::take(&mut p.count))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_addresses_and_ipv6_slash_64s() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(Source::of(ip("127.0.0.2")).to_string(), "127.0.0.2");
        assert_eq!(
            Source::of(ip("::ffff:10.0.0.5")),
            Source::of(ip("10.0.0.5"))
        );
        assert_eq!(
            Source::of(ip("2001:db8:1:2:aaaa::1")),
            Source::of(ip("2001:db8:1:2:bbbb::9"))
        );
        assert_ne!(
            Source::of(ip("2001:db8:1:2::1")),
            Source::of(ip("2001:db8:1:3::1"))
        );
        assert_eq!(
            Source::of(ip("2001:db8:1:2:aaaa::1")).to_string(),
            "2001:db8:1:2::/64"
        );
    }

    #[tokio::test]
    async fn a_source_at_its_cap_makes_room_among_its_own() {
        let r = Arc::new(Registry::default());
        let a = Source::of("127.0.0.2".parse().unwrap());
        let b = Source::of("127.0.0.3".parse().unwrap());
        let oldest_b = r.register_from(b);
        tokio::time::sleep(Duration::from_millis(2)).await;
        let first_a = r.register_from(a);
        tokio::time::sleep(Duration::from_millis(2)).await;
        let second_a = r.register_from(a);
        assert_eq!((r.from_source(a), r.from_source(b), r.len()), (2, 1, 3));
        // The source's own oldest goes, though another source's is older.
        assert!(r.evict_oldest_idle_from(a));
        assert_eq!((r.from_source(a), r.from_source(b), r.len()), (1, 1, 2));
        first_a.conn.evicted().await;
        // One being served is never displaced.
        second_a.conn.busy();
        assert!(!r.evict_oldest_idle_from(a));
        // Dropping an evicted entry does not count its source down twice.
        drop(first_a);
        assert_eq!((r.from_source(a), r.len()), (1, 2));
        assert!(r.evict_oldest_idle());
        oldest_b.conn.evicted().await;
        drop(oldest_b);
        drop(second_a);
        assert_eq!((r.from_source(a), r.from_source(b), r.len()), (0, 0, 0));
        assert_eq!(r.evicted(), 2);
    }

    #[tokio::test]
    async fn at_the_cap_the_busiest_source_loses_its_longest_waiting_first() {
        let r = Arc::new(Registry::default());
        let pbx = Source::of("127.0.0.1".parse().unwrap());
        let flood = Source::of("127.0.0.2".parse().unwrap());
        let lone = r.register_from(pbx);
        tokio::time::sleep(Duration::from_millis(2)).await;
        let f1 = r.register_from(flood);
        tokio::time::sleep(Duration::from_millis(2)).await;
        let f2 = r.register_from(flood);
        // The PBX's connection is the oldest, but 127.0.0.2 holds two: its oldest goes.
        assert!(r.evict_oldest_idle_of_busiest_source());
        f1.conn.evicted().await;
        assert_eq!((r.from_source(pbx), r.from_source(flood)), (1, 1));
        // One each now: the longest-waiting of all.
        assert!(r.evict_oldest_idle_of_busiest_source());
        lone.conn.evicted().await;
        assert_eq!((r.from_source(pbx), r.from_source(flood)), (0, 1));
        f2.conn.busy();
        assert!(!r.evict_oldest_idle_of_busiest_source());
    }

    #[test]
    fn a_tally_writes_one_line_a_minute_per_cause_with_the_count() {
        let mut t = Tally::default();
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        assert_eq!(t.note("cap", at(0)), Some(1));
        for s in 1..60 {
            assert_eq!(t.note("cap", at(s)), None);
        }
        // Another cause has its own minute.
        assert_eq!(t.note("deadline", at(30)), Some(1));
        assert_eq!(t.flush(at(59)), vec![]);
        assert_eq!(t.flush(at(60)), vec![("cap", 59)]);
        assert_eq!(t.flush(at(200)), vec![]);
        assert_eq!(t.note("cap", at(200)), Some(1));
        assert_eq!(t.note("cap", at(201)), None);
        assert_eq!(t.note("cap", at(260)), Some(2));
    }
}
