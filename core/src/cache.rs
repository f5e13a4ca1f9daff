//! The Redis connection: used for throttling and caches, never for money or quota.
//!
//! The server must start and serve while Redis is down (SPEC §4), so there is no connection at
//! start-up: the first caller that wants one dials, at most once a second, and a command that
//! fails drops the connection so the next caller dials again.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::AsyncConnectionConfig;

/// How long dialing may take before Redis counts as down.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(250);
/// How long one command may take; a slow Redis must not slow a redemption.
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(250);
/// How often a down Redis is dialed again.
const REDIAL_EVERY: Duration = Duration::from_secs(1);

/// A shared, lazily (re)connected Redis handle.
#[derive(Clone)]
pub struct Redis {
    inner: Arc<Inner>,
}

struct Inner {
    client: redis::Client,
    conn: RwLock<Option<MultiplexedConnection>>,
    dialing: tokio::sync::Mutex<()>,
    next_dial: Mutex<Instant>,
}

impl Redis {
    /// A handle for `url`; checks the URL's form, does not connect.
    pub fn new(url: &str) -> anyhow::Result<Redis> {
        let client = redis::Client::open(url)?;
        Ok(Redis {
            inner: Arc::new(Inner {
                client,
                conn: RwLock::new(None),
                dialing: tokio::sync::Mutex::new(()),
                next_dial: Mutex::new(Instant::now()),
            }),
        })
    }

    /// A connection, or `None` when Redis is down (then the caller goes on without it).
    pub async fn connection(&self) -> Option<MultiplexedConnection> {
        if let Some(conn) = self.current() {
            return Some(conn);
        }
        // One task dials; the others carry on without Redis rather than queue behind it.
        let _dialing = self.inner.dialing.try_lock().ok()?;
        if let Some(conn) = self.current() {
            return Some(conn);
        }
        {
            let next = self
                .inner
                .next_dial
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if Instant::now() < *next {
                return None;
            }
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(CONNECT_TIMEOUT)
            .set_response_timeout(RESPONSE_TIMEOUT);
        let dial = self
            .inner
            .client
            .get_multiplexed_async_connection_with_config(&config);
        match tokio::time::timeout(CONNECT_TIMEOUT, dial).await {
            Ok(Ok(conn)) => {
                *self.inner.conn.write().unwrap_or_else(|e| e.into_inner()) = Some(conn.clone());
                Some(conn)
            }
            _ => {
                *self
                    .inner
                    .next_dial
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = Instant::now() + REDIAL_EVERY;
                None
            }
        }
    }

    /// Drops the connection after a failed command, so the next caller dials again.
    pub fn reset(&self) {
        *self.inner.conn.write().unwrap_or_else(|e| e.into_inner()) = None;
        *self
            .inner
            .next_dial
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Instant::now() + REDIAL_EVERY;
    }

    /// Whether Redis answers `PING` now; `/readyz` reports it.
    pub async fn ping(&self) -> bool {
        let Some(mut conn) = self.connection().await else {
            return false;
        };
        let reply: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut conn).await;
        if reply.is_err() {
            self.reset();
        }
        reply.is_ok()
    }

    fn current(&self) -> Option<MultiplexedConnection> {
        self.inner
            .conn
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}
