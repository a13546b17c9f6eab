//! The per-request guard of the exporter's endpoint: rate limit, basic auth (bcrypt, cached, one at
//! a time), and the web configuration in force, beside the HTTP server that calls it for each
//! request. Built from [`super::webconfig`]'s file.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use base64::Engine;
use hyper::header::HeaderMap;

use super::webconfig::WebConfig;
use crate::support::secret::Secret;

/// Paths exempt from basic auth: liveness and readiness probes (systemd, Kubernetes, load
/// balancers) need no credentials, and the answers say nothing but "Healthy"/"Ready".
pub const UNAUTHENTICATED_PATHS: [&str; 2] = ["/-/healthy", "/-/ready"];

/// Most cached basic-auth results kept; when full, the least recently used goes.
const AUTH_CACHE_CAPACITY: std::num::NonZeroUsize = std::num::NonZeroUsize::new(1024).unwrap();

/// What a request's credentials amount to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Go on.
    Allowed,
    /// 401.
    Unauthorized,
    /// 429.
    RateLimited,
}

struct Bucket {
    tokens: f64,
    last: Instant,
}

/// The running web configuration and what outlives a request: the auth cache, the bcrypt lock,
/// the rate limiter's bucket.
pub struct Web {
    current: RwLock<Arc<WebConfig>>,
    /// Verified (user, hash, password) digests → result, least recently used dropped first.
    /// Shared with the blocking task that runs bcrypt, which records its result even when the
    /// request that asked has gone (a scraper that timed out must not make the next scrape pay
    /// bcrypt again, or a machine where bcrypt outlasts the scrape timeout never authenticates).
    cache: Arc<Mutex<lru::LruCache<[u8; 32], bool>>>,
    /// One bcrypt at a time, taken *before* a blocking thread is: a flood of wrong passwords
    /// waits here, in async tasks, instead of filling the blocking pool (which reqwest's DNS
    /// lookups share).
    bcrypt_slots: Arc<tokio::sync::Semaphore>,
    bcrypt_runs: std::sync::atomic::AtomicU64,
    bucket: Mutex<Bucket>,
}

impl std::fmt::Debug for Web {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Web")
            .field("current", &self.current())
            .finish_non_exhaustive()
    }
}

impl Web {
    /// Starts with `config`.
    pub fn new(config: WebConfig) -> Self {
        let burst = config.rate_limit.map_or(0, |(_, b)| b);
        Self {
            current: RwLock::new(Arc::new(config)),
            cache: Arc::new(Mutex::new(lru::LruCache::new(AUTH_CACHE_CAPACITY))),
            bcrypt_slots: Arc::new(tokio::sync::Semaphore::new(1)),
            bcrypt_runs: Default::default(),
            bucket: Mutex::new(Bucket {
                tokens: f64::from(burst),
                last: Instant::now(),
            }),
        }
    }

    /// How many bcrypt comparisons have run (the rest were answered from the cache).
    pub fn bcrypt_runs(&self) -> u64 {
        self.bcrypt_runs.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The configuration in force.
    pub fn current(&self) -> Arc<WebConfig> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Switches to `config` (a reload): later connections and requests use it.
    pub fn set(&self, config: WebConfig) {
        let burst = config.rate_limit.map_or(0, |(_, b)| b);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(config);
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).clear();
        *self.bucket.lock().unwrap_or_else(|p| p.into_inner()) = Bucket {
            tokens: f64::from(burst),
            last: Instant::now(),
        };
    }

    fn take_token(&self, interval: Duration, burst: u32) -> bool {
        let mut b = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let refill = now.duration_since(b.last).as_secs_f64() / interval.as_secs_f64();
        b.tokens = (b.tokens + refill).min(f64::from(burst));
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Whether a request to `path` with `headers` may go on under `config`.
    pub async fn check(&self, config: &WebConfig, path: &str, headers: &HeaderMap) -> Access {
        if let Some((interval, burst)) = config.rate_limit
            && !self.take_token(interval, burst)
        {
            return Access::RateLimited;
        }
        if config.users.is_empty() || UNAUTHENTICATED_PATHS.contains(&path) {
            return Access::Allowed;
        }
        let Some((user, password)) = basic_credentials(headers) else {
            return Access::Unauthorized;
        };
        let (hash, known) = match config.users.get(&user) {
            Some(h) => (h.clone(), true),
            // An unknown user costs the same bcrypt as a known one: no user enumeration by timing.
            None => (
                config.users.values().next().cloned().unwrap_or_default(),
                false,
            ),
        };
        let key = cache_key(&user, &hash, password.expose());
        let cached = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .copied();

        let ok = match cached {
            Some(ok) => ok,
            None => {
                // The semaphore is never closed.
                let Ok(slot) = self.bcrypt_slots.clone().acquire_owned().await else {
                    return Access::Unauthorized;
                };
                let again = self
                    .cache
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&key)
                    .copied();
                if let Some(ok) = again {
                    ok
                } else {
                    self.bcrypt_runs
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let cache = self.cache.clone();
                    // The result goes into the cache before the slot is released, so a request
                    // waiting for the slot finds it there.
                    tokio::task::spawn_blocking(move || {
                        let _slot = slot;
                        let ok = bcrypt::verify(password.expose(), &hash).unwrap_or(false) && known;
                        cache.lock().unwrap_or_else(|p| p.into_inner()).put(key, ok);
                        ok
                    })
                    .await
                    .unwrap_or(false)
                }
            }
        };
        if ok && known {
            Access::Allowed
        } else {
            Access::Unauthorized
        }
    }
}

/// SHA-256 of user, hash and password: the cache never holds a password.
fn cache_key(user: &str, hash: &str, password: &str) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for part in [user, hash, password] {
        ctx.update(&(part.len() as u64).to_be_bytes());
        ctx.update(part.as_bytes());
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// The user and password of an `Authorization: Basic` header.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, Secret)> {
    let value = headers.get(hyper::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), Secret::new(password)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    #[test]
    fn basic_credentials_decode() {
        let mut h = HeaderMap::new();
        h.insert(
            hyper::header::AUTHORIZATION,
            HeaderValue::from_static("Basic YWxpY2U6czNjcjN0OngK"),
        );
        let (u, p) = basic_credentials(&h).unwrap();
        assert_eq!((u.as_str(), p.expose()), ("alice", "s3cr3t:x\n"));
        h.insert(
            hyper::header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc"),
        );
        assert!(basic_credentials(&h).is_none());
    }
}
