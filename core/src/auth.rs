//! Who is calling: passwords (argon2), session tokens for firms and staff (HS256 JWT with the
//! algorithm pinned and an audience per kind), the extractors handlers name in their
//! signatures, and login throttling.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::extract::FromRequestParts;
use axum::http::{header, request::Parts};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::AppState;

/// Hashes a password with argon2id (default parameters) and a random salt.
pub async fn hash_password(password: String) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || {
        let mut salt = [0u8; 16];
        SystemRandom::new()
            .fill(&mut salt)
            .map_err(|_| anyhow::anyhow!("no system randomness"))?;
        let salt = SaltString::encode_b64(&salt).map_err(|e| anyhow::anyhow!("salt: {e}"))?;
        let hash = Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map_err(|e| anyhow::anyhow!("argon2: {e}"))?;
        Ok(hash.to_string())
    })
    .await?
}

/// Checks a password against a stored hash; with no hash (unknown user) it still spends the
/// same work, so timing does not tell whether an account exists.
pub async fn verify_password(password: String, stored: Option<String>) -> bool {
    const DUMMY: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$2E2hKLwhfzcDsSw8aNsYfTYN8Yf8GU6GHm6H6k3mWVs";
    let known = stored.is_some();
    let stored = stored.unwrap_or_else(|| DUMMY.to_owned());
    let ok = tokio::task::spawn_blocking(move || {
        PasswordHash::new(&stored)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false);
    ok && known
}

/// Staff roles (API.md, "Bureau console").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Platforms, parameters, staff.
    Admin,
    /// Reads everything, runs settlement.
    Reviewer,
    /// Approves and pays statements.
    Finance,
}

impl Role {
    /// The role's name in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Reviewer => "reviewer",
            Role::Finance => "finance",
        }
    }

    /// Parses the database value.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "reviewer" => Some(Role::Reviewer),
            "finance" => Some(Role::Finance),
            _ => None,
        }
    }
}

const FIRM_AUDIENCE: &str = "portal";
const STAFF_AUDIENCE: &str = "bureau";
/// How long a firm's session lasts.
pub const FIRM_SESSION: time::Duration = time::Duration::hours(12);
/// How long a staff session lasts.
pub const STAFF_SESSION: time::Duration = time::Duration::hours(8);

#[derive(Debug, Serialize, Deserialize)]
struct SessionClaims {
    sub: Uuid,
    aud: String,
    iat: i64,
    exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    role: Option<Role>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
}

/// A signed session and when it ends.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Session {
    /// Bearer token.
    pub token: String,
    /// When it stops working.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

fn issue(secret: &[u8], claims: &SessionClaims) -> anyhow::Result<String> {
    Ok(jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )?)
}

fn session(
    state: &AppState,
    sub: Uuid,
    aud: &str,
    ttl: time::Duration,
    staff: Option<(&str, Role)>,
) -> anyhow::Result<Session> {
    let now = state.clock.now();
    let expires_at = now + ttl;
    let claims = SessionClaims {
        sub,
        aud: aud.into(),
        iat: now.unix_timestamp(),
        exp: expires_at.unix_timestamp(),
        role: staff.map(|(_, role)| role),
        name: staff.map(|(name, _)| name.to_owned()),
    };
    let token = issue(&state.keys.get().session_secret, &claims)?;
    Ok(Session { token, expires_at })
}

/// A session for a firm.
pub fn firm_session(state: &AppState, firm_id: Uuid) -> anyhow::Result<Session> {
    session(state, firm_id, FIRM_AUDIENCE, FIRM_SESSION, None)
}

/// A session for bureau staff.
pub fn staff_session(
    state: &AppState,
    staff_id: Uuid,
    username: &str,
    role: Role,
) -> anyhow::Result<Session> {
    session(
        state,
        staff_id,
        STAFF_AUDIENCE,
        STAFF_SESSION,
        Some((username, role)),
    )
}

fn decode(state: &AppState, token: &str, audience: &str) -> Result<SessionClaims, ApiError> {
    // The algorithm is pinned: a token naming any other (`none`, HS512, RS256, ...) is refused.
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_audience(&[audience]);
    validation.set_required_spec_claims(&["exp", "aud", "sub"]);
    validation.validate_exp = false;
    let data = jsonwebtoken::decode::<SessionClaims>(
        token,
        &DecodingKey::from_secret(&state.keys.get().session_secret),
        &validation,
    )
    .map_err(|_| ApiError::unauthorized("the session token is invalid"))?;
    if data.claims.exp <= state.clock.now().unix_timestamp() {
        return Err(ApiError::unauthorized(
            "the session has expired; log in again",
        ));
    }
    Ok(data.claims)
}

/// The bearer credential of a request.
pub fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let value = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer credential"))?;
    let value = value
        .to_str()
        .map_err(|_| ApiError::unauthorized("malformed Authorization header"))?;
    let (scheme, credential) = value
        .split_once(' ')
        .ok_or_else(|| ApiError::unauthorized("malformed Authorization header"))?;
    if !scheme.eq_ignore_ascii_case("bearer") || credential.trim().is_empty() {
        return Err(ApiError::unauthorized(
            "expected Authorization: Bearer <credential>",
        ));
    }
    Ok(credential.trim())
}

/// A logged-in firm.
#[derive(Debug, Clone, Copy)]
pub struct FirmSession {
    /// The firm's id.
    pub firm_id: Uuid,
}

impl FromRequestParts<AppState> for FirmSession {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let claims = decode(state, bearer(parts)?, FIRM_AUDIENCE)?;
        Ok(FirmSession {
            firm_id: claims.sub,
        })
    }
}

/// Logged-in bureau staff.
#[derive(Debug, Clone)]
pub struct BureauSession {
    /// The staff member's id.
    pub staff_id: Uuid,
    /// Username (for the audit log).
    pub username: String,
    /// Role.
    pub role: Role,
}

impl BureauSession {
    /// Refuses with 403 `forbidden` unless the caller has one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<(), ApiError> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
            Err(ApiError::forbidden(format!(
                "this needs the {} role",
                names.join(" or ")
            )))
        }
    }

    /// The audit actor for this session.
    pub fn actor(&self) -> crate::audit::Actor {
        crate::audit::Actor::Staff(self.username.clone())
    }
}

impl FromRequestParts<AppState> for BureauSession {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let claims = decode(state, bearer(parts)?, STAFF_AUDIENCE)?;
        let (Some(role), Some(username)) = (claims.role, claims.name) else {
            return Err(ApiError::unauthorized("the session token is invalid"));
        };
        Ok(BureauSession {
            staff_id: claims.sub,
            username,
            role,
        })
    }
}

/// Failed logins allowed per account in one window.
pub const LOGIN_ATTEMPTS: u32 = 5;
/// The window.
pub const LOGIN_WINDOW: Duration = Duration::from_secs(15 * 60);

/// Login throttling: Redis when it is up (shared by replicas), this process's memory when not.
#[derive(Clone, Default)]
pub struct LoginThrottle {
    local: Arc<Mutex<HashMap<String, (u32, Instant)>>>,
}

impl LoginThrottle {
    /// Refuses with 429 while `account` has used up its failed attempts.
    pub async fn check(&self, state: &AppState, account: &str) -> Result<(), ApiError> {
        let key = format!("throttle:login:{account}");
        if let Some(mut conn) = state.redis.connection().await {
            let reply: redis::RedisResult<(Option<u32>, i64)> = redis::pipe()
                .get(&key)
                .ttl(&key)
                .query_async(&mut conn)
                .await;
            match reply {
                Ok((Some(count), ttl)) if count >= LOGIN_ATTEMPTS => {
                    return Err(ApiError::rate_limited(ttl.max(1) as u64));
                }
                Ok(_) => return Ok(()),
                Err(_) => state.redis.reset(),
            }
        }
        let local = self.local.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((count, since)) = local.get(&key) {
            let elapsed = since.elapsed();
            if elapsed < LOGIN_WINDOW && *count >= LOGIN_ATTEMPTS {
                return Err(ApiError::rate_limited((LOGIN_WINDOW - elapsed).as_secs()));
            }
        }
        Ok(())
    }

    /// Counts a failed attempt.
    pub async fn failed(&self, state: &AppState, account: &str) {
        let key = format!("throttle:login:{account}");
        if let Some(mut conn) = state.redis.connection().await {
            let reply: redis::RedisResult<(u32, i64)> = redis::pipe()
                .incr(&key, 1)
                .expire(&key, LOGIN_WINDOW.as_secs() as i64)
                .query_async(&mut conn)
                .await;
            if reply.is_ok() {
                return;
            }
            state.redis.reset();
        }
        let mut local = self.local.lock().unwrap_or_else(|e| e.into_inner());
        let entry = local.entry(key).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= LOGIN_WINDOW {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
    }

    /// Clears the count after a successful login.
    pub async fn succeeded(&self, state: &AppState, account: &str) {
        let key = format!("throttle:login:{account}");
        if let Some(mut conn) = state.redis.connection().await {
            let reply: redis::RedisResult<()> =
                redis::cmd("DEL").arg(&key).query_async(&mut conn).await;
            if reply.is_err() {
                state.redis.reset();
            }
        }
        self.local
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key);
    }
}
