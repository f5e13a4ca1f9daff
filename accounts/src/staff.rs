//! Bureau staff: login with a second factor for `admin` and `finance`, logout, password change,
//! and the first admin (the endpoints that manage other accounts are in `staff_admin`).

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;
use voucher_core::audit::{self, Actor};
use voucher_core::auth::{self, BureauSession, Role, Subject};
use voucher_core::config::{is_valid_username, BootstrapAdmin};
use voucher_core::error::is_constraint;
use voucher_core::passwords::check_new_password;
use voucher_core::throttle::ClientAddr;
use voucher_core::{ApiError, AppState, ErrorCode, Json};

use crate::guard;
use crate::totp::{self, TotpSetup};

/// Whether a role needs a second factor (GB/T 22239-2019 level 3: administrators and those who
/// move money).
pub fn needs_totp(role: Role) -> bool {
    match role {
        Role::Admin | Role::Finance => true,
        Role::Reviewer => false,
    }
}

/// A staff login.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StaffLogin {
    /// Username.
    pub username: String,
    /// Password.
    pub password: String,
    /// The authenticator's current 6-digit code (`admin`, `finance`, and enrolled reviewers).
    #[serde(default)]
    pub otp: Option<String>,
}

/// A staff session, with the authenticator's secret on the first login that enrols it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StaffSession {
    /// Bearer token.
    pub token: String,
    /// When it stops working.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// Shown once, on the login that enrolled the authenticator.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub totp_setup: Option<TotpSetup>,
}

fn wrong() -> ApiError {
    ApiError::unauthorized("the username, the password or the one-time code is wrong")
}

/// What a staff login found.
struct Account {
    id: Uuid,
    password_hash: Option<String>,
    role: String,
    disabled: bool,
    totp_secret: Option<String>,
}

/// Logs staff in. Each attempt is counted before the password is checked: five from one
/// address on one account (or 100 from everywhere) in 15 minutes lock further attempts (429
/// with `Retry-After`). `admin` and `finance` need `otp` (401 `otp_required` without it, 401
/// `unauthorized` and a counted failure with a wrong or replayed one); with no authenticator
/// yet, the login enrols one and answers its secret in `totp_setup`, once.
#[utoipa::path(post, path = "/api/bureau/sessions", tag = "bureau", request_body = StaffLogin,
    responses((status = 200, body = StaffSession),
        (status = 401, body = voucher_core::error::Problem, description = "`unauthorized` or `otp_required`"),
        (status = 429, body = voucher_core::error::Problem)))]
pub async fn login(
    State(state): State<AppState>,
    client: ClientAddr,
    Json(login): Json<StaffLogin>,
) -> Result<impl IntoResponse, ApiError> {
    state
        .throttle
        .anonymous(&state, &client, "staff-login")
        .await?;
    if !is_valid_username(&login.username) || login.password.len() > 1024 {
        return Err(wrong());
    }
    let row = sqlx::query_as!(
        Account,
        r#"select id, password_hash, role, disabled, totp_secret from staff where username = $1"#,
        login.username
    )
    .fetch_optional(&state.db)
    .await?;
    let (ok, attempt) = guard::counted_check(
        &state,
        &client,
        &format!("staff:{}", login.username),
        login.password,
        row.as_ref().and_then(|r| r.password_hash.clone()),
    )
    .await?;
    let account = match row {
        Some(account) if ok && !account.disabled => account,
        _ => return Err(failed(&state, &login.username, "password").await?),
    };
    let role = Role::parse(&account.role)
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("unknown stored role")))?;
    let now = state.clock.now();
    let mut totp_setup = None;
    match (&account.totp_secret, login.otp.as_deref()) {
        (None, _) if needs_totp(role) => {
            // First login (or the first after a reset): enrol now, show the secret once.
            let secret = totp::new_secret()?;
            let enrolled = sqlx::query!(
                r#"update staff set totp_secret = $2, totp_last_step = null
                   where id = $1 and totp_secret is null"#,
                account.id,
                secret
            )
            .execute(&state.db)
            .await?;
            if enrolled.rows_affected() != 1 {
                // Another login enrolled it a moment ago: that one showed the secret.
                state.throttle.release(&state, attempt).await;
                return Err(ApiError::new(
                    ErrorCode::OtpRequired,
                    "enter the one-time code of your authenticator",
                ));
            }
            totp_setup = Some(totp::setup(&login.username, &secret)?);
        }
        (None, _) => {}
        (Some(_), None) => {
            // The password was right; the code is asked for, not guessed, so this is no failure.
            state.throttle.release(&state, attempt).await;
            return Err(ApiError::new(
                ErrorCode::OtpRequired,
                "enter the one-time code of your authenticator",
            ));
        }
        (Some(secret), Some(code)) => {
            let unix = u64::try_from(now.unix_timestamp()).unwrap_or(0);
            if !totp::accept(&state.db, account.id, secret, code.trim(), unix).await? {
                return Err(failed(&state, &login.username, "otp").await?);
            }
        }
    }
    let session = auth::staff_session(&state, account.id, &login.username, role).await?;
    let mut tx = state.db.begin().await?;
    sqlx::query!(
        r#"update staff set last_login_at = $2 where id = $1"#,
        account.id,
        now
    )
    .execute(&mut *tx)
    .await?;
    audit::append(
        &mut tx,
        &Actor::Staff(login.username.clone()),
        "session.login",
        Some(&format!("staff:{}", account.id)),
        serde_json::json!({"role": role, "totp_enrolled_now": totp_setup.is_some()}),
    )
    .await?;
    tx.commit().await?;
    state.throttle.release(&state, attempt).await;
    Ok((
        [(header::CACHE_CONTROL, "no-store")],
        Json(StaffSession {
            token: session.token,
            expires_at: session.expires_at,
            totp_setup,
        }),
    ))
}

/// Records a failed login (the attempt stays counted) and returns the 401 to answer.
async fn failed(state: &AppState, username: &str, factor: &str) -> Result<ApiError, ApiError> {
    let name: String = username.chars().take(64).collect();
    let mut conn = state.db.acquire().await?;
    audit::append(
        &mut conn,
        &Actor::Anonymous(name),
        "session.login_failed",
        None,
        serde_json::json!({"portal": "bureau", "factor": factor}),
    )
    .await?;
    Ok(wrong())
}

/// Ends the caller's session at once, on every replica.
#[utoipa::path(delete, path = "/api/bureau/sessions/current", tag = "bureau",
    security(("bearer" = [])), responses((status = 204), (status = 401, body = voucher_core::error::Problem)))]
pub async fn logout(
    State(state): State<AppState>,
    session: BureauSession,
) -> Result<StatusCode, ApiError> {
    auth::end_session(&state, session.session_id).await?;
    let mut conn = state.db.acquire().await?;
    audit::append(
        &mut conn,
        &session.actor(),
        "session.logout",
        Some(&format!("staff:{}", session.staff_id)),
        serde_json::json!({}),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Changes the caller's password; every other session of the account stops working.
#[utoipa::path(post, path = "/api/bureau/password", tag = "bureau",
    request_body = crate::firms::PasswordChange, security(("bearer" = [])),
    responses((status = 204), (status = 401, body = voucher_core::error::Problem),
        (status = 422, body = voucher_core::error::Problem, description = "`validation_failed`")))]
pub async fn change_password(
    State(state): State<AppState>,
    client: ClientAddr,
    session: BureauSession,
    Json(change): Json<crate::firms::PasswordChange>,
) -> Result<StatusCode, ApiError> {
    let stored = sqlx::query_scalar!(
        r#"select password_hash from staff where id = $1"#,
        session.staff_id
    )
    .fetch_one(&state.db)
    .await?;
    guard::current_password(
        &state,
        &client,
        &format!("staff:{}", session.username),
        change.current_password,
        stored,
    )
    .await?;
    check_new_password("new_password", &change.new_password, &[&session.username])?;
    let hash = auth::hash_password(change.new_password).await?;
    let now = state.clock.now();
    let mut tx = state.db.begin().await?;
    sqlx::query!(
        r#"update staff set password_hash = $2, updated_at = $3 where id = $1"#,
        session.staff_id,
        hash,
        now
    )
    .execute(&mut *tx)
    .await?;
    let ended = auth::end_sessions(
        &mut tx,
        Subject::Staff(session.staff_id),
        Some(session.session_id),
        now,
    )
    .await?;
    audit::append(
        &mut tx,
        &session.actor(),
        "staff.password_change",
        Some(&format!("staff:{}", session.staff_id)),
        serde_json::json!({"sessions_ended": ended}),
    )
    .await?;
    tx.commit().await?;
    state
        .sessions
        .forget_subject(Subject::Staff(session.staff_id));
    Ok(StatusCode::NO_CONTENT)
}

/// A staff account as the console lists it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StaffView {
    /// Id.
    pub id: Uuid,
    /// Username.
    pub username: String,
    /// Role.
    pub role: Role,
}

/// Why a staff account could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateStaffError {
    /// Name taken.
    #[error("the username is taken")]
    Taken,
    /// Bad username or password.
    #[error("{0}")]
    Invalid(ApiError),
    /// Anything else.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<CreateStaffError> for ApiError {
    fn from(err: CreateStaffError) -> Self {
        match err {
            CreateStaffError::Taken => {
                ApiError::new(ErrorCode::AlreadyRegistered, "the username is taken")
            }
            CreateStaffError::Invalid(e) => e,
            CreateStaffError::Internal(e) => ApiError::internal(e),
        }
    }
}

/// Inserts a staff account in the caller's transaction, with a password hash or (awaiting
/// activation) none, and audits who created it.
pub(crate) async fn insert_staff(
    conn: &mut sqlx::PgConnection,
    actor: &Actor,
    username: &str,
    password_hash: Option<String>,
    role: Role,
) -> Result<Uuid, CreateStaffError> {
    if !is_valid_username(username) {
        return Err(CreateStaffError::Invalid(ApiError::validation(
            "username",
            "must be 3-64 of a-z, 0-9, '.', '_', '-'",
        )));
    }
    let id = Uuid::now_v7();
    let inserted = sqlx::query!(
        r#"insert into staff (id, username, password_hash, role, created_by) values ($1, $2, $3, $4, $5)"#,
        id,
        username,
        password_hash,
        role.as_str(),
        actor.label()
    )
    .execute(&mut *conn)
    .await;
    match inserted {
        Err(e) if is_constraint(&e, "staff_username_key") => return Err(CreateStaffError::Taken),
        other => {
            other.map_err(anyhow::Error::from)?;
        }
    }
    audit::append(
        &mut *conn,
        actor,
        "staff.create",
        Some(&format!("staff:{id}")),
        serde_json::json!({"username": username, "role": role,
                           "activation": password_hash.is_none()}),
    )
    .await
    .map_err(anyhow::Error::from)?;
    Ok(id)
}

/// Creates a staff account with a password, bypassing activation: for operators at the
/// command line (`voucherd admin create`), the bootstrap admin and tests. An `admin` or
/// `finance` account enrols its authenticator on its first login.
pub async fn create_with_password(
    pool: &PgPool,
    actor: &Actor,
    username: &str,
    password: String,
    role: Role,
) -> Result<StaffView, CreateStaffError> {
    check_new_password("password", &password, &[username]).map_err(CreateStaffError::Invalid)?;
    let hash = auth::hash_password(password)
        .await
        .map_err(CreateStaffError::Invalid)?;
    let mut tx = pool.begin().await.map_err(anyhow::Error::from)?;
    let id = insert_staff(&mut tx, actor, username, Some(hash), role).await?;
    tx.commit().await.map_err(anyhow::Error::from)?;
    Ok(StaffView {
        id,
        username: username.to_owned(),
        role,
    })
}

/// Creates the first admin from `VOUCHER_BOOTSTRAP_ADMIN` when there is no staff at all.
pub async fn bootstrap_admin(pool: &PgPool, admin: &BootstrapAdmin) -> anyhow::Result<bool> {
    let any = sqlx::query_scalar!(r#"select exists (select 1 from staff) as "any!""#)
        .fetch_one(pool)
        .await?;
    if any {
        return Ok(false);
    }
    match create_with_password(
        pool,
        &Actor::System,
        &admin.username,
        admin.password.clone(),
        Role::Admin,
    )
    .await
    {
        Ok(_) => Ok(true),
        // Another replica created it at the same moment.
        Err(CreateStaffError::Taken) => Ok(false),
        Err(CreateStaffError::Invalid(e)) => {
            anyhow::bail!("VOUCHER_BOOTSTRAP_ADMIN: {}", e.detail())
        }
        Err(CreateStaffError::Internal(e)) => Err(e),
    }
}
