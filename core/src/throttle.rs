//! Throttles that hold under concurrency and keep memory bounded: per-address token buckets on
//! the anonymous endpoints, login attempts counted before the password is checked, and failed
//! platform keys counted per address.
//!
//! Redis holds the counters so every replica shares them. While Redis is down each process
//! falls back to its own memory: a map capped at [`LOCAL_CAPACITY`] entries whose entries
//! expire; when it is full of live entries a new key is refused (fail closed) rather than grow.
//! Keys are hashes of what the request named, never the raw text, so a 60 KB login name costs
//! the same 40 bytes as a USCC.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use ipnet::IpNet;
use ring::digest::{digest, SHA256};

use crate::error::ApiError;
use crate::state::AppState;

/// Entries one process keeps while Redis is down, per map.
pub const LOCAL_CAPACITY: usize = 65_536;

/// Failed logins (and attempts) allowed per account and client address in one window.
pub const PAIR_ATTEMPTS: u32 = 5;
/// Attempts allowed per account from all addresses together in one window: high enough that a
/// stranger hammering from a few addresses leaves the owner able to log in from another.
pub const ACCOUNT_ATTEMPTS: u32 = 100;
/// The login window.
pub const LOGIN_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Requests with an unknown or revoked API key allowed per address in one window.
pub const BAD_KEY_ATTEMPTS: u32 = 20;
/// The bad-key window.
pub const BAD_KEY_WINDOW: Duration = Duration::from_secs(60);

/// Per-address token bucket of the anonymous endpoints (registration, logins, activation,
/// password reset), per endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnonLimits {
    /// Tokens added per minute.
    pub per_minute: u32,
    /// Bucket size.
    pub burst: u32,
}

impl Default for AnonLimits {
    fn default() -> Self {
        AnonLimits {
            per_minute: 30,
            burst: 20,
        }
    }
}

/// Token bucket in one atomic step on the Redis server's clock: refill by elapsed time, take
/// one token or say how many milliseconds until one is there.
pub(crate) const BUCKET: &str = r"
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(b[1]) or burst
local ts = tonumber(b[2]) or now
tokens = math.min(burst, tokens + (now - ts) * rate / 1000)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = math.ceil((1 - tokens) * 1000 / rate) end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return wait
";

/// A fixed-window counter: count this hit, start the window on the first, answer the count and
/// the milliseconds the window has left.
const HIT: &str = r"
local c = redis.call('INCR', KEYS[1])
if c == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {c, ttl}
";

/// Takes back one hit of a window that still runs.
const UNDO: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('DECR', KEYS[1]) end
return 0
";

/// A map of at most [`LOCAL_CAPACITY`] entries, each with its expiry.
struct Bounded<V> {
    entries: HashMap<[u8; 20], (V, Instant)>,
}

impl<V> Default for Bounded<V> {
    fn default() -> Self {
        Bounded {
            entries: HashMap::new(),
        }
    }
}

impl<V> Bounded<V> {
    /// The live entry for `key`, creating it with `make` (and `ttl`) when there is none. A map
    /// full of live entries forgets one at random to make room: memory stays bounded, and with
    /// Redis up the shared count still holds what was forgotten here.
    fn entry(
        &mut self,
        key: [u8; 20],
        ttl: Duration,
        make: impl FnOnce() -> V,
    ) -> &mut (V, Instant) {
        let now = Instant::now();
        if self
            .entries
            .get(&key)
            .is_some_and(|(_, until)| *until <= now)
        {
            self.entries.remove(&key);
        }
        if !self.entries.contains_key(&key) {
            if self.entries.len() >= LOCAL_CAPACITY {
                self.entries.retain(|_, (_, until)| *until > now);
            }
            if self.entries.len() >= LOCAL_CAPACITY {
                if let Some(victim) = self.entries.keys().next().copied() {
                    self.entries.remove(&victim);
                }
            }
        }
        self.entries
            .entry(key)
            .or_insert_with(|| (make(), now + ttl))
    }

    fn get_mut(&mut self, key: &[u8; 20]) -> Option<&mut (V, Instant)> {
        let now = Instant::now();
        match self.entries.get_mut(key) {
            Some(entry) if entry.1 > now => Some(entry),
            _ => None,
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

/// A fixed-size key for a counter: the first 20 bytes of SHA-256 over its parts.
fn key_of(kind: &str, parts: &[&[u8]]) -> [u8; 20] {
    let mut buf = Vec::with_capacity(64);
    buf.extend_from_slice(kind.as_bytes());
    for part in parts {
        buf.push(0);
        buf.extend_from_slice(part);
    }
    let d = digest(&SHA256, &buf);
    let mut key = [0u8; 20];
    key.copy_from_slice(&d.as_ref()[..20]);
    key
}

fn redis_key(namespace: &str, prefix: &str, key: &[u8; 20]) -> String {
    let mut s = String::with_capacity(namespace.len() + prefix.len() + 40);
    s.push_str(prefix);
    s.push_str(namespace);
    for b in key {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// The throttles of one server (cheap to clone).
#[derive(Clone)]
pub struct Throttle {
    /// Limits of the anonymous endpoints.
    pub anon: AnonLimits,
    /// Added to every Redis key: empty in production (replicas share counters); tests give each
    /// app its own so counts never leak between tests or runs.
    pub namespace: String,
    counters: Arc<Mutex<Bounded<u32>>>,
    buckets: Arc<Mutex<Bounded<(u64, Instant)>>>,
    bucket: redis::Script,
    hit: redis::Script,
    undo: redis::Script,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle {
            anon: AnonLimits::default(),
            namespace: String::new(),
            counters: Arc::default(),
            buckets: Arc::default(),
            bucket: redis::Script::new(BUCKET),
            hit: redis::Script::new(HIT),
            undo: redis::Script::new(UNDO),
        }
    }
}

/// A login attempt that has been counted; a success (or a check that never ran) takes the
/// count back.
#[must_use = "call release() when the password was right or never checked"]
pub struct LoginAttempt {
    keys: [[u8; 20]; 2],
}

impl Throttle {
    /// Takes a token from `client`'s bucket for the anonymous endpoint `endpoint`; 429 with
    /// `Retry-After` when it is empty. A request with no client address (built in-process, as
    /// tests do) is not limited.
    pub async fn anonymous(
        &self,
        state: &AppState,
        client: &ClientAddr,
        endpoint: &str,
    ) -> Result<(), ApiError> {
        let Some(addr) = client.bucket_id() else {
            return Ok(());
        };
        let key = key_of("anon", &[endpoint.as_bytes(), addr.as_bytes()]);
        let limits = self.anon;
        let rate_milli = u64::from(limits.per_minute.max(1)) * 1000 / 60;
        if let Some(mut conn) = state.redis.connection().await {
            let reply: redis::RedisResult<u64> = self
                .bucket
                .key(redis_key(&self.namespace, "ratelimit:anon:", &key))
                .arg(format!("{}.{:03}", rate_milli / 1000, rate_milli % 1000))
                .arg(limits.burst.max(1))
                .invoke_async(&mut conn)
                .await;
            match reply {
                Ok(0) => return Ok(()),
                Ok(wait_ms) => return Err(ApiError::rate_limited(wait_ms.div_ceil(1000))),
                Err(_) => state.redis.reset(),
            }
        }
        // In memory: tokens in thousandths, refilled by elapsed milliseconds.
        let burst = u64::from(limits.burst.max(1)) * 1000;
        let ttl = Duration::from_millis(burst * 1000 / rate_milli.max(1) + 1000);
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let ((tokens, at), until) = buckets.entry(key, ttl, || (burst, Instant::now()));
        let elapsed = at.elapsed().as_millis() as u64;
        *tokens = (*tokens + elapsed * rate_milli / 1000).min(burst);
        *at = Instant::now();
        *until = Instant::now() + ttl;
        if *tokens >= 1000 {
            *tokens -= 1000;
            Ok(())
        } else {
            let wait_ms = (1000 - *tokens) * 1000 / rate_milli.max(1);
            Err(ApiError::rate_limited(wait_ms.div_ceil(1000)))
        }
    }

    /// Counts a login attempt for `account` from `client` before the password is checked, so
    /// N parallel guesses get no more checks than N serial ones. 429 with `Retry-After` when
    /// this address has used its [`PAIR_ATTEMPTS`] on the account, or everyone together its
    /// [`ACCOUNT_ATTEMPTS`].
    pub async fn login(
        &self,
        state: &AppState,
        account: &str,
        client: &ClientAddr,
    ) -> Result<LoginAttempt, ApiError> {
        let addr = client
            .bucket_id()
            .unwrap_or_else(|| "in-process".to_owned());
        let pair = key_of("login-pair", &[account.as_bytes(), addr.as_bytes()]);
        let whole = key_of("login-account", &[account.as_bytes()]);
        let (count, wait) = self.hit(state, &pair, LOGIN_WINDOW).await?;
        if count > PAIR_ATTEMPTS {
            return Err(locked(wait));
        }
        let (count, wait) = self.hit(state, &whole, LOGIN_WINDOW).await?;
        if count > ACCOUNT_ATTEMPTS {
            self.take_back(state, &pair).await;
            return Err(locked(wait));
        }
        Ok(LoginAttempt {
            keys: [pair, whole],
        })
    }

    /// Takes the attempt back: the password was right, or it was never checked (the hashing
    /// queue shed the request), so it must not count towards a lockout.
    pub async fn release(&self, state: &AppState, attempt: LoginAttempt) {
        for key in &attempt.keys {
            self.take_back(state, key).await;
        }
    }

    /// Refuses with 429 while `client` has sent [`BAD_KEY_ATTEMPTS`] unknown API keys in the
    /// window (checked before the key is looked up).
    pub async fn bad_keys_allowed(
        &self,
        state: &AppState,
        client: &ClientAddr,
    ) -> Result<(), ApiError> {
        let Some(addr) = client.bucket_id() else {
            return Ok(());
        };
        let key = key_of("bad-key", &[addr.as_bytes()]);
        let mut count = self.local_count(&key);
        if let Some(mut conn) = state.redis.connection().await {
            let reply: redis::RedisResult<(Option<u32>, i64)> = redis::pipe()
                .get(redis_key(&self.namespace, "throttle:", &key))
                .pttl(redis_key(&self.namespace, "throttle:", &key))
                .query_async(&mut conn)
                .await;
            match reply {
                Ok((Some(shared), ttl)) if shared > count.0 => {
                    count = (shared, ttl.max(1000) as u64);
                }
                Ok(_) => {}
                Err(_) => state.redis.reset(),
            }
        }
        if count.0 >= BAD_KEY_ATTEMPTS {
            return Err(ApiError::rate_limited(count.1.div_ceil(1000)));
        }
        Ok(())
    }

    /// Counts a request from `client` that carried an unknown or revoked API key.
    pub async fn bad_key(&self, state: &AppState, client: &ClientAddr) {
        if let Some(addr) = client.bucket_id() {
            let key = key_of("bad-key", &[addr.as_bytes()]);
            let _ = self.hit(state, &key, BAD_KEY_WINDOW).await;
        }
    }

    fn local_count(&self, key: &[u8; 20]) -> (u32, u64) {
        let mut counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        match counters.get_mut(key) {
            Some((count, until)) => (
                *count,
                until.saturating_duration_since(Instant::now()).as_millis() as u64,
            ),
            None => (0, 0),
        }
    }

    /// Counts one hit on `key`: the count after it and the milliseconds its window has left.
    /// The hit is counted in this process's memory and in Redis, and the larger count decides:
    /// Redis shares the count between replicas, memory holds it while Redis is down or while
    /// this process is still dialling it, so concurrent attempts can never split their count
    /// between the two and slip under both.
    async fn hit(
        &self,
        state: &AppState,
        key: &[u8; 20],
        window: Duration,
    ) -> Result<(u32, u64), ApiError> {
        let local = {
            let mut counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
            let (count, until) = counters.entry(*key, window, || 0);
            *count = count.saturating_add(1);
            (
                *count,
                until.saturating_duration_since(Instant::now()).as_millis() as u64,
            )
        };
        if let Some(mut conn) = state.redis.connection().await {
            let reply: redis::RedisResult<(u32, i64)> = self
                .hit
                .key(redis_key(&self.namespace, "throttle:", key))
                .arg(window.as_millis() as u64)
                .invoke_async(&mut conn)
                .await;
            match reply {
                Ok((count, ttl)) if count >= local.0 => return Ok((count, ttl.max(1000) as u64)),
                Ok(_) => {}
                Err(_) => state.redis.reset(),
            }
        }
        Ok((local.0, local.1.max(1000)))
    }

    async fn take_back(&self, state: &AppState, key: &[u8; 20]) {
        if let Some((count, _)) = self
            .counters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(key)
        {
            *count = count.saturating_sub(1);
        }
        if let Some(mut conn) = state.redis.connection().await {
            let reply: redis::RedisResult<i64> = self
                .undo
                .key(redis_key(&self.namespace, "throttle:", key))
                .invoke_async(&mut conn)
                .await;
            if reply.is_err() {
                state.redis.reset();
            }
        }
    }
}

fn locked(wait_ms: u64) -> ApiError {
    let secs = wait_ms.div_ceil(1000).max(1);
    ApiError::rate_limited(secs).with_detail(format!(
        "too many login attempts for this account from here; try again in {} minutes",
        secs.div_ceil(60)
    ))
}

/// Proxies whose `X-Forwarded-For` is believed (`VOUCHER_TRUSTED_PROXIES`).
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(pub Arc<Vec<IpNet>>);

impl TrustedProxies {
    /// Parses a comma-separated list of CIDRs or bare addresses.
    pub fn parse(list: &str) -> Result<TrustedProxies, String> {
        let mut nets = Vec::new();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let net = item
                .parse::<IpNet>()
                .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{item:?} is not a CIDR or an IP address"))?;
            nets.push(net);
        }
        Ok(TrustedProxies(Arc::new(nets)))
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The client's address: the socket's peer, or, when the peer is a trusted proxy, the nearest
/// address in `X-Forwarded-For` that is not one. `None` for a request that came through no
/// socket (built in-process).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub Option<IpAddr>);

impl ClientAddr {
    /// What buckets are keyed by: the address, with IPv6 taken per /64 (one subscriber's
    /// network), so rotating through one's own addresses gains nothing.
    pub fn bucket_id(&self) -> Option<String> {
        self.0.map(|ip| match canonical(ip) {
            IpAddr::V6(v6) => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
            v4 => v4.to_string(),
        })
    }

    /// The address of a request's parts.
    pub fn of(parts: &Parts, trusted: &TrustedProxies) -> ClientAddr {
        let Some(ConnectInfo(peer)) = parts.extensions.get::<ConnectInfo<std::net::SocketAddr>>()
        else {
            return ClientAddr(None);
        };
        let mut client = canonical(peer.ip());
        if trusted.trusts(client) {
            // Right to left: each trusted hop vouches for the one before it.
            let hops: Vec<IpAddr> = parts
                .headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .map(str::trim)
                .map(|s| s.parse::<IpAddr>().ok())
                .collect::<Option<Vec<_>>>()
                .unwrap_or_default();
            for hop in hops.into_iter().rev() {
                client = canonical(hop);
                if !trusted.trusts(client) {
                    break;
                }
            }
        }
        ClientAddr(Some(client))
    }
}

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr::of(parts, &state.trusted_proxies))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;

    fn parts(peer: &str, xff: Option<&str>) -> Parts {
        let mut builder = Request::builder().uri("/");
        if let Some(xff) = xff {
            builder = builder.header("x-forwarded-for", xff);
        }
        let mut request = builder.body(()).unwrap();
        request
            .extensions_mut()
            .insert(ConnectInfo(peer.parse::<std::net::SocketAddr>().unwrap()));
        request.into_parts().0
    }

    #[test]
    fn forwarded_for_counts_only_from_a_trusted_proxy() {
        let trusted = TrustedProxies::parse("10.0.0.0/8, 127.0.0.1").unwrap();
        let cases = [
            (
                "203.0.113.9:4000",
                Some("198.18.0.1"),
                "203.0.113.9",
                "untrusted peer: header ignored",
            ),
            (
                "127.0.0.1:4000",
                Some("198.18.0.1"),
                "198.18.0.1",
                "trusted peer: the forwarded client",
            ),
            (
                "127.0.0.1:4000",
                Some("198.18.0.7, 10.1.2.3"),
                "198.18.0.7",
                "two trusted hops",
            ),
            (
                "127.0.0.1:4000",
                Some("1.1.1.1, 198.18.0.7"),
                "198.18.0.7",
                "a spoofed left entry is not believed",
            ),
            (
                "127.0.0.1:4000",
                None,
                "127.0.0.1",
                "no header: the proxy itself",
            ),
            (
                "127.0.0.1:4000",
                Some("garbage"),
                "127.0.0.1",
                "unparseable header: the proxy itself",
            ),
        ];
        for (peer, xff, want, why) in cases {
            let got = ClientAddr::of(&parts(peer, xff), &trusted);
            assert_eq!(got.0, Some(want.parse().unwrap()), "{why}");
        }
        let none = TrustedProxies::default();
        assert_eq!(
            ClientAddr::of(&parts("127.0.0.1:1", Some("198.18.0.1")), &none).0,
            Some("127.0.0.1".parse().unwrap()),
            "no trusted proxies by default"
        );
    }

    #[test]
    fn ipv6_clients_share_a_bucket_per_64() {
        let a = ClientAddr(Some("2001:db8:1:2::1".parse().unwrap()));
        let b = ClientAddr(Some("2001:db8:1:2:ffff::9".parse().unwrap()));
        assert_eq!(a.bucket_id(), b.bucket_id());
    }

    #[test]
    fn the_local_map_stays_within_its_capacity() {
        let mut map = Bounded::<u32>::default();
        for i in 0..(LOCAL_CAPACITY as u32 + 10) {
            let key = key_of("t", &[&i.to_be_bytes()]);
            let _ = map.entry(key, Duration::from_secs(60), || 0);
        }
        assert_eq!(map.len(), LOCAL_CAPACITY);
        let key = key_of("t", &[b"late"]);
        map.entry(key, Duration::from_secs(60), || 7);
        assert_eq!(map.len(), LOCAL_CAPACITY, "one forgotten to make room");
        assert_eq!(map.get_mut(&key).map(|e| e.0), Some(7));
    }
}
