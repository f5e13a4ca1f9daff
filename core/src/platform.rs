//! Platform API keys and their per-key rate limit: the credential every `/v1` call carries.
//!
//! A key is `vk_live_` and 43 characters of base64url (32 random bytes from `ring::rand`),
//! shown once; only its SHA-256 is stored, so each request costs one indexed lookup and a
//! revoked key fails on the very next request. Rate limits are a token bucket per key in
//! Redis; when Redis is down, requests go on unthrottled, a warning is logged once a minute
//! and `rate_limit_disabled` reads 1.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use base64::Engine as _;
use prometheus::IntGauge;
use ring::digest::{digest, SHA256};
use ring::rand::{SecureRandom, SystemRandom};
use uuid::Uuid;

use crate::auth::bearer;
use crate::error::ApiError;
use crate::state::AppState;

/// Every key starts with this, so a leaked one is recognisable (secret scanners, logs).
pub const KEY_PREFIX: &str = "vk_live_";

/// A new key: the secret to show once, what to store, and what to display.
pub struct NewKey {
    /// The whole key (shown once).
    pub secret: String,
    /// SHA-256 of the key (stored).
    pub hash: Vec<u8>,
    /// The prefix and first characters, to tell keys apart in the console.
    pub display: String,
}

/// Makes a fresh random key.
pub fn generate_key() -> anyhow::Result<NewKey> {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| anyhow::anyhow!("no system randomness"))?;
    let secret = format!(
        "{KEY_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    Ok(NewKey {
        hash: hash_key(&secret),
        display: secret[..KEY_PREFIX.len() + 8].to_owned(),
        secret,
    })
}

/// SHA-256 of a key: keys are 256 random bits, so a fast hash is safe (no dictionary to try).
pub fn hash_key(key: &str) -> Vec<u8> {
    digest(&SHA256, key.as_bytes()).as_ref().to_vec()
}

/// Per-key limits.
#[derive(Debug, Clone, Copy)]
pub struct RateLimits {
    /// Tokens added per second.
    pub per_second: u32,
    /// Bucket size.
    pub burst: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            per_second: 100,
            burst: 200,
        }
    }
}

/// Shared platform-auth state of one server.
#[derive(Clone)]
pub struct PlatformAuth {
    /// The limits every key gets.
    pub limits: RateLimits,
    last_used_written: Arc<Mutex<HashMap<Uuid, Instant>>>,
    warned_at: Arc<Mutex<Option<Instant>>>,
    /// 1 while rate limits are off because Redis is down.
    pub disabled: IntGauge,
    script: redis::Script,
}

impl PlatformAuth {
    /// With `limits`, registering its gauge on `registry`.
    pub fn new(limits: RateLimits, registry: &prometheus::Registry) -> PlatformAuth {
        let disabled = IntGauge::new(
            "rate_limit_disabled",
            "1 while platform rate limits are off because Redis is unreachable",
        )
        .expect("static metric definition");
        let _ = registry.register(Box::new(disabled.clone()));
        PlatformAuth {
            limits,
            last_used_written: Arc::default(),
            warned_at: Arc::default(),
            disabled,
            script: redis::Script::new(crate::throttle::BUCKET),
        }
    }

    /// Takes a token for `key_id`; `Err(rate_limited)` when the bucket is empty.
    async fn take(&self, state: &AppState, key_hash: &[u8]) -> Result<(), ApiError> {
        let Some(mut conn) = state.redis.connection().await else {
            self.redis_down();
            return Ok(());
        };
        let reply: redis::RedisResult<u64> = self
            .script
            .key(format!("ratelimit:key:{}", hex(&key_hash[..16])))
            .arg(self.limits.per_second)
            .arg(self.limits.burst)
            .invoke_async(&mut conn)
            .await;
        match reply {
            Ok(0) => {
                self.disabled.set(0);
                Ok(())
            }
            Ok(wait_ms) => {
                self.disabled.set(0);
                Err(ApiError::rate_limited(wait_ms.div_ceil(1000)))
            }
            Err(_) => {
                state.redis.reset();
                self.redis_down();
                Ok(())
            }
        }
    }

    fn redis_down(&self) {
        self.disabled.set(1);
        let mut warned = self.warned_at.lock().unwrap_or_else(|e| e.into_inner());
        if warned.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
            *warned = Some(Instant::now());
            tracing::warn!("Redis is unreachable: platform rate limits are off until it is back");
        }
    }

    /// Whether this process should write `last_used_at` now: at most once a minute per key,
    /// so the key row never becomes a row every request writes.
    pub fn should_touch(&self, key_id: Uuid) -> bool {
        let mut map = self
            .last_used_written
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match map.get(&key_id) {
            Some(at) if at.elapsed() < Duration::from_secs(60) => false,
            _ => {
                map.insert(key_id, Instant::now());
                true
            }
        }
    }
}

/// A platform authenticated by a live API key, within its rate limit.
#[derive(Debug, Clone, Copy)]
pub struct PlatformKey {
    /// The calling platform.
    pub platform_id: Uuid,
    /// The key it used.
    pub key_id: Uuid,
}

impl FromRequestParts<AppState> for PlatformKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let credential = PlatformCredential::from_request_parts(parts, state).await?;
        let row = sqlx::query!(
            r#"select k.id, k.platform_id from api_keys k join platforms p on p.id = k.platform_id
               where k.hash = $1 and k.revoked_at is null and p.active"#,
            credential.hash
        )
        .fetch_optional(&state.db)
        .await?
        .ok_or_else(|| ApiError::unauthorized("the API key is unknown or revoked"))?;
        touch(state, row.id);
        Ok(PlatformKey {
            platform_id: row.platform_id,
            key_id: row.id,
        })
    }
}

/// Records that a key was used, at most once a minute per key and off the request's path.
pub fn touch(state: &AppState, key_id: Uuid) {
    if state.platform_auth.should_touch(key_id) {
        let db = state.db.clone();
        tokio::spawn(async move {
            let _ = sqlx::query!(
                r#"update api_keys set last_used_at = now() where id = $1"#,
                key_id
            )
            .execute(&db)
            .await;
        });
    }
}

/// A well-formed platform key, hashed and within its rate limit, not yet looked up: the
/// redemption checks it inside its one database round trip.
#[derive(Debug, Clone)]
pub struct PlatformCredential {
    /// SHA-256 of the key, as `api_keys.hash` stores it.
    pub hash: Vec<u8>,
}

impl FromRequestParts<AppState> for PlatformCredential {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let credential = bearer(parts)?;
        if !credential.starts_with(KEY_PREFIX) {
            return Err(ApiError::unauthorized(
                "expected a platform API key (vk_live_...)",
            ));
        }
        let hash = hash_key(credential);
        state.platform_auth.take(state, &hash).await?;
        Ok(PlatformCredential { hash })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Limits, per client address, the platform API's requests that carry an unknown or revoked
/// key: past [`crate::throttle::BAD_KEY_ATTEMPTS`] such answers in a minute the address gets
/// 429 before any key is looked up. (Each made-up key would otherwise get a fresh bucket of its
/// own, so per-key limits alone never stop a key-guesser.)
pub async fn limit_bad_keys(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if !request.uri().path().starts_with("/v1/") {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let client = crate::throttle::ClientAddr::of(&parts, &state.trusted_proxies);
    if let Err(refused) = state.throttle.bad_keys_allowed(&state, &client).await {
        return refused.into_response();
    }
    let response = next
        .run(axum::extract::Request::from_parts(parts, body))
        .await;
    if response.status() == axum::http::StatusCode::UNAUTHORIZED {
        state.throttle.bad_key(&state, &client).await;
    }
    response
}
