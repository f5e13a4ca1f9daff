//! Who is calling: passwords (argon2), sessions for firms and staff (a row in `sessions`, the
//! authority, and an HS256 JWT naming it, the algorithm pinned and an audience per kind), the
//! extractors handlers name in their signatures. Login throttling is in `throttle`, password hashing in `passwords`.

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
    /// Verifies firms, runs settlement, closes months.
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

/// What the token says. `sid` names the session's row in `sessions`. A staff token also names
/// the role and the username for the console to show; the server never trusts them and reads
/// both with the row, so a role change takes effect at once.
#[derive(Debug, Serialize, Deserialize)]
struct SessionClaims {
    sub: Uuid,
    sid: Uuid,
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

/// Whose session a row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    /// A firm, by id.
    Firm(Uuid),
    /// A staff member, by id.
    Staff(Uuid),
}

/// Starts a session: a row in `sessions` (the authority) and a signed token naming it; `shown`
/// is the staff name and role the console displays.
async fn start_session(
    state: &AppState,
    subject: Subject,
    shown: Option<(&str, Role)>,
) -> Result<Session, ApiError> {
    let now = state.clock.now();
    let (aud, ttl, sub, firm_id, staff_id) = match subject {
        Subject::Firm(id) => (FIRM_AUDIENCE, FIRM_SESSION, id, Some(id), None),
        Subject::Staff(id) => (STAFF_AUDIENCE, STAFF_SESSION, id, None, Some(id)),
    };
    let expires_at = now + ttl;
    let sid = Uuid::now_v7();
    sqlx::query!(
        r#"insert into sessions (id, firm_id, staff_id, created_at, expires_at)
           values ($1, $2, $3, $4, $5)"#,
        sid,
        firm_id,
        staff_id,
        now,
        expires_at
    )
    .execute(&state.db)
    .await?;
    let claims = SessionClaims {
        sub,
        sid,
        aud: aud.into(),
        iat: now.unix_timestamp(),
        exp: expires_at.unix_timestamp(),
        role: shown.map(|(_, role)| role),
        name: shown.map(|(name, _)| name.to_owned()),
    };
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(&state.keys.get().session_secret),
    )
    .map_err(|e| ApiError::internal(anyhow::anyhow!("signing a session: {e}")))?;
    Ok(Session { token, expires_at })
}

/// A session for a firm (a row and its token).
pub async fn firm_session(state: &AppState, firm_id: Uuid) -> Result<Session, ApiError> {
    start_session(state, Subject::Firm(firm_id), None).await
}

/// A session for bureau staff (a row and its token).
pub async fn staff_session(
    state: &AppState,
    staff_id: Uuid,
    username: &str,
    role: Role,
) -> Result<Session, ApiError> {
    start_session(state, Subject::Staff(staff_id), Some((username, role))).await
}

/// Ends one session (logout). Takes effect at once on this replica and, through the row, within
/// [`SESSION_CACHE_TTL`] on every other.
pub async fn end_session(state: &AppState, sid: Uuid) -> Result<(), ApiError> {
    sqlx::query!(
        r#"update sessions set ended_at = $2 where id = $1 and ended_at is null"#,
        sid,
        state.clock.now()
    )
    .execute(&state.db)
    .await?;
    state.sessions.forget(|id, _| id == sid);
    Ok(())
}

/// Ends every session of `subject` except `keep` (a password change keeps the caller's own), in
/// the caller's transaction; call [`SessionCache::forget_subject`] after it commits.
pub async fn end_sessions(
    conn: &mut sqlx::PgConnection,
    subject: Subject,
    keep: Option<Uuid>,
    at: OffsetDateTime,
) -> Result<u64, ApiError> {
    let (firm_id, staff_id) = match subject {
        Subject::Firm(id) => (Some(id), None),
        Subject::Staff(id) => (None, Some(id)),
    };
    let ended = sqlx::query!(
        r#"update sessions set ended_at = $4
           where ended_at is null and (firm_id = $1 or staff_id = $2)
             and id is distinct from $3"#,
        firm_id,
        staff_id,
        keep,
        at
    )
    .execute(conn)
    .await?;
    Ok(ended.rows_affected())
}

/// How long a replica may answer from its memory that a session is live. A session ended on
/// another replica stops working there within this time; on the replica that ended it, at once.
pub const SESSION_CACHE_TTL: std::time::Duration = std::time::Duration::from_millis(300);
/// How many live sessions a process remembers; when full it is emptied and refills.
const SESSION_CACHE_CAPACITY: usize = 20_000;

/// What a live session's row said, and when it was read.
#[derive(Debug, Clone)]
struct LiveSession {
    read_at: std::time::Instant,
    subject: Subject,
    staff: Option<(String, Role)>,
}

/// Sessions this process found live in the last [`SESSION_CACHE_TTL`], so a page that fires
/// several requests at once reads the row once, not once per request.
#[derive(Clone, Default)]
pub struct SessionCache {
    inner: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<Uuid, LiveSession>>>,
}

impl SessionCache {
    fn get(&self, sid: Uuid) -> Option<LiveSession> {
        let map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&sid)
            .filter(|live| live.read_at.elapsed() < SESSION_CACHE_TTL)
            .cloned()
    }

    fn put(&self, sid: Uuid, live: LiveSession) {
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= SESSION_CACHE_CAPACITY {
            map.retain(|_, l| l.read_at.elapsed() < SESSION_CACHE_TTL);
            if map.len() >= SESSION_CACHE_CAPACITY {
                map.clear();
            }
        }
        map.insert(sid, live);
    }

    fn forget(&self, drop: impl Fn(Uuid, Subject) -> bool) {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|id, live| !drop(*id, live.subject));
    }

    /// Forgets every remembered session of `subject` (after ending them, or changing its role).
    pub fn forget_subject(&self, subject: Subject) {
        self.forget(|_, s| s == subject);
    }
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

/// The live session a token names: its row not ended, not expired, its staff not disabled.
async fn live(state: &AppState, claims: &SessionClaims) -> Result<LiveSession, ApiError> {
    if let Some(live) = state.sessions.get(claims.sid) {
        return Ok(live);
    }
    let row = sqlx::query!(
        r#"select s.firm_id, s.staff_id, st.username as "username?", st.role as "role?",
                  st.disabled as "disabled?"
           from sessions s left join staff st on st.id = s.staff_id
           where s.id = $1 and s.ended_at is null and s.expires_at > $2"#,
        claims.sid,
        state.clock.now()
    )
    .fetch_optional(&state.db)
    .await?
    .ok_or_else(|| ApiError::unauthorized("the session has ended; log in again"))?;
    let live = match (row.firm_id, row.staff_id) {
        (Some(firm), None) => LiveSession {
            read_at: std::time::Instant::now(),
            subject: Subject::Firm(firm),
            staff: None,
        },
        (None, Some(staff)) => {
            if row.disabled != Some(false) {
                return Err(ApiError::unauthorized("this account is disabled"));
            }
            let role = row.role.as_deref().and_then(Role::parse);
            let (Some(username), Some(role)) = (row.username, role) else {
                return Err(ApiError::unauthorized("the session token is invalid"));
            };
            LiveSession {
                read_at: std::time::Instant::now(),
                subject: Subject::Staff(staff),
                staff: Some((username, role)),
            }
        }
        _ => return Err(ApiError::unauthorized("the session token is invalid")),
    };
    state.sessions.put(claims.sid, live.clone());
    Ok(live)
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

/// A logged-in firm, its session row live.
#[derive(Debug, Clone, Copy)]
pub struct FirmSession {
    /// The firm's id.
    pub firm_id: Uuid,
    /// The session's row (logout ends it).
    pub session_id: Uuid,
}

impl FromRequestParts<AppState> for FirmSession {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let claims = decode(state, bearer(parts)?, FIRM_AUDIENCE)?;
        match live(state, &claims).await?.subject {
            Subject::Firm(firm_id) if firm_id == claims.sub => Ok(FirmSession {
                firm_id,
                session_id: claims.sid,
            }),
            _ => Err(ApiError::unauthorized("the session token is invalid")),
        }
    }
}

/// Logged-in bureau staff, its session row live and its account enabled; the role is the
/// account's role now, not when the session started.
#[derive(Debug, Clone)]
pub struct BureauSession {
    /// The staff member's id.
    pub staff_id: Uuid,
    /// The session's row (logout ends it).
    pub session_id: Uuid,
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
        let live = live(state, &claims).await?;
        match (live.subject, live.staff) {
            (Subject::Staff(staff_id), Some((username, role))) if staff_id == claims.sub => {
                Ok(BureauSession {
                    staff_id,
                    session_id: claims.sid,
                    username,
                    role,
                })
            }
            _ => Err(ApiError::unauthorized("the session token is invalid")),
        }
    }
}
