//! Who is calling: passwords (argon2), session tokens for firms and staff (HS256 JWT with the
//! algorithm pinned and an audience per kind), the extractors handlers name in their
//! signatures. Login throttling is in `throttle`, password hashing in `passwords`.

use axum::extract::FromRequestParts;
use axum::http::{header, request::Parts};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::AppState;

/// Hashes a new password (argon2id, default parameters, random salt) on the process's bounded
/// hashing pool; 503 `overloaded` when its queue is full.
pub async fn hash_password(password: String) -> Result<String, ApiError> {
    crate::passwords::global().hash(password).await
}

/// Checks a password against a stored hash on the bounded hashing pool; with no hash (unknown
/// user) it still spends the same work, so timing does not tell whether an account exists.
pub async fn verify_password(password: String, stored: Option<String>) -> Result<bool, ApiError> {
    crate::passwords::global().verify(password, stored).await
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
