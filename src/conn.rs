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

use std::collections::HashMap;
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
    conns: std::sync::Mutex<HashMap<u64, Arc<Conn>>>,
    evicted: AtomicU64,
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
        self.registry.lock().remove(&self.id);
    }
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn now(&self) -> u64 {
        // Never 0, which means busy.
        (self.start.elapsed().as_micros() as u64).max(1)
    }

    /// A newly accepted connection, waiting for its first request head.
    pub fn register(self: &Arc<Self>) -> Entry {
        let conn = Arc::new(Conn {
            waiting_since: AtomicU64::new(self.now()),
            evict: Notify::new(),
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
        let victim = {
            let mut conns = self.lock();
            let oldest = conns
                .iter()
                .filter_map(|(id, c)| {
                    let since = c.waiting_since.load(Ordering::SeqCst);
                    (since != 0).then_some((since, *id))
                })
                .min();
            oldest.and_then(|(_, id)| conns.remove(&id))
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
        self.lock().len()
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
