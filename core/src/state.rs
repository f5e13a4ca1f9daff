//! What every handler can reach.

use std::path::Path;
use std::sync::{Arc, RwLock};

use sqlx::PgPool;
use time::{macros::offset, OffsetDateTime, UtcOffset};
use voucher_rules::Catalogue;

use crate::cache::Redis;
use crate::keys::KeyRing;
use crate::platform::{PlatformAuth, RateLimits};
use crate::telemetry::Metrics;
use crate::throttle::{Throttle, TrustedProxies};

/// Business dates, months and program years are in Asia/Shanghai (UTC+8 all year).
pub const SHANGHAI: UtcOffset = offset!(+8);

/// Shared state of one server (cheap to clone: every field is a handle).
#[derive(Clone)]
pub struct AppState {
    /// The system of record.
    pub db: PgPool,
    /// Throttling and caches; may be down.
    pub redis: Redis,
    /// This server's metrics registry.
    pub metrics: Metrics,
    /// Voucher signing keys and the session secret.
    pub keys: KeyRing,
    /// The policy measures; the voucher program's defaults come from here.
    pub rules: Arc<Catalogue>,
    /// Login attempts, anonymous endpoints' buckets, failed API keys.
    pub throttle: Throttle,
    /// Whose `X-Forwarded-For` is believed.
    pub trusted_proxies: TrustedProxies,
    /// The time, settable in tests.
    pub clock: Clock,
    /// Platform key checks and rate limits.
    pub platform_auth: PlatformAuth,
    /// Voucher tokens already verified by this process.
    pub verified_tokens: crate::token::VerifiedTokens,
    /// Sessions this process found live a moment ago.
    pub sessions: crate::auth::SessionCache,
}

impl AppState {
    /// Builds the state, opening (and on first start creating) the key directory.
    pub fn new(db: PgPool, redis: Redis, key_dir: &Path) -> anyhow::Result<AppState> {
        let rules = Catalogue::load().map_err(|e| anyhow::anyhow!("policy parameters: {e}"))?;
        let metrics = Metrics::new();
        let platform_auth = PlatformAuth::new(RateLimits::default(), metrics.registry());
        Ok(AppState {
            db,
            redis,
            metrics,
            platform_auth,
            verified_tokens: crate::token::VerifiedTokens::default(),
            sessions: crate::auth::SessionCache::default(),
            keys: KeyRing::open(key_dir)?,
            rules: Arc::new(rules),
            throttle: Throttle::default(),
            trusted_proxies: TrustedProxies::default(),
            clock: Clock::default(),
        })
    }
}

/// The current time; the system clock unless a test fixed it.
#[derive(Clone, Default)]
pub struct Clock {
    fixed: Arc<RwLock<Option<OffsetDateTime>>>,
}

impl Clock {
    /// Now, in UTC.
    pub fn now(&self) -> OffsetDateTime {
        self.fixed
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .unwrap_or_else(OffsetDateTime::now_utc)
    }

    /// Fixes the time (tests and simulations).
    pub fn set(&self, at: OffsetDateTime) {
        *self.fixed.write().unwrap_or_else(|e| e.into_inner()) = Some(at);
    }

    /// The program year now, in Asia/Shanghai.
    pub fn program_year(&self) -> i32 {
        self.now().to_offset(SHANGHAI).year()
    }
}
