//! Bureau staff: sessions, accounts, the first admin.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;
use voucher_core::audit::{self, Actor};
use voucher_core::auth::{self, BureauSession, Role, Session};
use voucher_core::config::{is_valid_username, BootstrapAdmin};
use voucher_core::error::is_constraint;
use voucher_core::{ApiError, AppState, ErrorCode, Json};

use voucher_core::passwords::check_new_password;
use voucher_core::throttle::ClientAddr;

/// A staff login.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StaffLogin {
    /// Username.
    pub username: String,
    /// Password.
    pub password: String,
}

/// Logs staff in. Each attempt is counted before the password is checked: five from one
/// address on one account (or 100 from everywhere) in 15 minutes lock further attempts (429
/// with `Retry-After`), so a stranger cannot lock the owner out from elsewhere.
#[utoipa::path(post, path = "/api/bureau/sessions", tag = "bureau", request_body = StaffLogin,
    responses((status = 200, body = Session), (status = 401, body = voucher_core::error::Problem),
        (status = 429, body = voucher_core::error::Problem)))]
pub async fn login(
    State(state): State<AppState>,
    client: ClientAddr,
    Json(login): Json<StaffLogin>,
) -> Result<Json<Session>, ApiError> {
    state
        .throttle
        .anonymous(&state, &client, "staff-login")
        .await?;
    if !is_valid_username(&login.username) || login.password.len() > 1024 {
        return Err(ApiError::unauthorized(
            "the username or the password is wrong",
        ));
    }
    let row = sqlx::query!(
        r#"select id, password_hash, role from staff where username = $1"#,
        login.username
    )
    .fetch_optional(&state.db)
    .await?;
    let attempt = state
        .throttle
        .login(&state, &format!("staff:{}", login.username), &client)
        .await?;
    let verified = auth::verify_password(
        login.password,
        row.as_ref().map(|r| r.password_hash.clone()),
    )
    .await;
    let ok = match verified {
        Ok(ok) => ok,
        Err(shed) => {
            // Queued out before the password was checked: this try must not lock anyone out.
            state.throttle.release(&state, attempt).await;
            return Err(shed);
        }
    };
    let mut tx = state.db.begin().await?;
    match (ok, row) {
        (true, Some(row)) => {
            let role = Role::parse(&row.role)
                .ok_or_else(|| ApiError::internal(anyhow::anyhow!("unknown stored role")))?;
            audit::append(
                &mut tx,
                &Actor::Staff(login.username.clone()),
                "session.login",
                Some(&format!("staff:{}", row.id)),
                serde_json::json!({"role": role}),
            )
            .await?;
            tx.commit().await?;
            state.throttle.release(&state, attempt).await;
            Ok(Json(auth::staff_session(
                &state,
                row.id,
                &login.username,
                role,
            )?))
        }
        _ => {
            let name: String = login.username.chars().take(64).collect();
            audit::append(
                &mut tx,
                &Actor::Anonymous(name),
                "session.login_failed",
                None,
                serde_json::json!({"portal": "bureau"}),
            )
            .await?;
            tx.commit().await?;
            Err(ApiError::unauthorized(
                "the username or the password is wrong",
            ))
        }
    }
}

/// A new staff account.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewStaff {
    /// 3–64 of a-z, 0-9, `.`, `_`, `-`.
    pub username: String,
    /// At least 10 characters.
    pub password: String,
    /// `admin`, `reviewer` or `finance`.
    pub role: Role,
}

/// A staff account.
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

/// Creates a staff account (used by the endpoint, the CLI and the bootstrap).
pub async fn create_staff(
    pool: &PgPool,
    actor: &Actor,
    username: &str,
    password: String,
    role: Role,
) -> Result<StaffView, CreateStaffError> {
    if !is_valid_username(username) {
        return Err(CreateStaffError::Invalid(ApiError::validation(
            "username",
            "must be 3-64 of a-z, 0-9, '.', '_', '-'",
        )));
    }
    check_new_password("password", &password, &[username]).map_err(CreateStaffError::Invalid)?;
    let hash = auth::hash_password(password)
        .await
        .map_err(CreateStaffError::Invalid)?;
    let id = Uuid::now_v7();
    let mut tx = pool.begin().await.map_err(anyhow::Error::from)?;
    let inserted = sqlx::query!(
        r#"insert into staff (id, username, password_hash, role) values ($1, $2, $3, $4)"#,
        id,
        username,
        hash,
        role.as_str()
    )
    .execute(&mut *tx)
    .await;
    match inserted {
        Err(e) if is_constraint(&e, "staff_username_key") => return Err(CreateStaffError::Taken),
        other => {
            other.map_err(anyhow::Error::from)?;
        }
    }
    audit::append(
        &mut tx,
        actor,
        "staff.create",
        Some(&format!("staff:{id}")),
        serde_json::json!({"username": username, "role": role}),
    )
    .await
    .map_err(anyhow::Error::from)?;
    tx.commit().await.map_err(anyhow::Error::from)?;
    Ok(StaffView {
        id,
        username: username.to_owned(),
        role,
    })
}

/// Creates a staff account (admins only).
#[utoipa::path(post, path = "/api/bureau/staff", tag = "bureau", request_body = NewStaff,
    security(("bearer" = [])),
    responses((status = 201, body = StaffView), (status = 403, body = voucher_core::error::Problem),
        (status = 409, body = voucher_core::error::Problem, description = "`already_registered`")))]
pub async fn create(
    State(state): State<AppState>,
    session: BureauSession,
    Json(new): Json<NewStaff>,
) -> Result<(StatusCode, Json<StaffView>), ApiError> {
    session.require(&[Role::Admin])?;
    let view = create_staff(
        &state.db,
        &session.actor(),
        &new.username,
        new.password,
        new.role,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// Creates the first admin from `VOUCHER_BOOTSTRAP_ADMIN` when there is no staff at all.
pub async fn bootstrap_admin(pool: &PgPool, admin: &BootstrapAdmin) -> anyhow::Result<bool> {
    let any = sqlx::query_scalar!(r#"select exists (select 1 from staff) as "any!""#)
        .fetch_one(pool)
        .await?;
    if any {
        return Ok(false);
    }
    match create_staff(
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
