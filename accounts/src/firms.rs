//! Firms' accounts: registration, sessions, logout, password change and the hotline's reset.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;
use voucher_core::audit::{self, Actor};
use voucher_core::auth::{self, BureauSession, FirmSession, Role, Session, Subject};
use voucher_core::error::is_constraint;
use voucher_core::extract::Path;
use voucher_core::passwords::check_new_password;
use voucher_core::throttle::ClientAddr;
use voucher_core::{ApiError, AppState, ErrorCode, Json, Uscc};

use crate::codes::{self, Kind, Owner};
use crate::eligibility;
use crate::guard;

/// A registration (API.md, `POST /api/portal/firms`).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    /// 统一社会信用代码, upper case, check digits verified.
    pub uscc: Uscc,
    /// Registered name.
    pub name: String,
    /// GB/T 4754-2017 code, e.g. `C3911`.
    pub industry_code: String,
    /// Registered district, e.g. `宝安区`.
    pub district: String,
    /// Contact person.
    pub contact_name: String,
    /// Contact phone.
    pub contact_phone: String,
    /// At least 10 characters.
    pub password: String,
}

/// A registered firm.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Registered {
    /// Firm id.
    pub id: Uuid,
    /// USCC.
    pub uscc: Uscc,
    /// Name.
    pub name: String,
    /// Whether the firm may claim (section C manufacturing in 宝安区), once verified.
    pub eligible: bool,
    /// Always `pending`: a registration is an application until the bureau has seen the
    /// business licence.
    pub verification: String,
}

fn text(field: &str, value: &str, max: usize) -> Result<String, ApiError> {
    voucher_core::text::required(field, value, max)
}

/// A GB/T 4754-2017 industry code, trimmed (registration and the reviewer's decision).
pub(crate) fn industry_code(value: &str) -> Result<String, ApiError> {
    let code = value.trim().to_owned();
    if !eligibility::industry_code_is_well_formed(&code) {
        return Err(ApiError::validation(
            "industry_code",
            "must be a GB/T 4754-2017 code such as C3911",
        ));
    }
    Ok(code)
}

/// A district name (registration and the reviewer's decision).
pub(crate) fn district(value: &str) -> Result<String, ApiError> {
    text("district", value, 50)
}

/// Registers a firm; eligibility is computed, not declared, and the firm starts `pending`.
#[utoipa::path(post, path = "/api/portal/firms", tag = "portal", request_body = Registration,
    responses((status = 201, body = Registered),
        (status = 409, body = voucher_core::error::Problem, description = "`already_registered`"),
        (status = 422, body = voucher_core::error::Problem, description = "`validation_failed`")))]
pub async fn register(
    State(state): State<AppState>,
    client: ClientAddr,
    Json(reg): Json<Registration>,
) -> Result<(StatusCode, Json<Registered>), ApiError> {
    state
        .throttle
        .anonymous(&state, &client, "firm-register")
        .await?;
    Ok((StatusCode::CREATED, Json(create(&state.db, reg).await?)))
}

/// Registers a firm (the endpoint and the demo data set).
pub async fn create(db: &PgPool, reg: Registration) -> Result<Registered, ApiError> {
    let name = text("name", &reg.name, 200)?;
    let industry_code = industry_code(&reg.industry_code)?;
    let district = district(&reg.district)?;
    let contact_name = text("contact_name", &reg.contact_name, 100)?;
    let contact_phone = reg.contact_phone.trim().to_owned();
    let phone_ok = (5..=20).contains(&contact_phone.len())
        && contact_phone
            .bytes()
            .all(|b| b.is_ascii_digit() || b"+- ".contains(&b));
    if !phone_ok {
        return Err(ApiError::validation(
            "contact_phone",
            "must be 5 to 20 digits",
        ));
    }
    check_new_password(
        "password",
        &reg.password,
        &[reg.uscc.as_str(), &name, &contact_name, &contact_phone],
    )?;
    let eligible = eligibility::is_eligible(&industry_code, &district);
    let hash = auth::hash_password(reg.password).await?;
    let id = Uuid::now_v7();
    let mut tx = db.begin().await?;
    let inserted = sqlx::query!(
        r#"insert into firms (id, uscc, name, industry_code, district, contact_name, contact_phone, password_hash, eligible)
           values ($1, $2, $3, $4, $5, $6, $7, $8, $9)"#,
        id,
        reg.uscc.as_str(),
        name,
        industry_code,
        district,
        contact_name,
        contact_phone,
        hash,
        eligible
    )
    .execute(&mut *tx)
    .await;
    match inserted {
        Err(e) if is_constraint(&e, "firms_uscc_key") => {
            return Err(ApiError::new(
                ErrorCode::AlreadyRegistered,
                "a firm with this USCC is already registered; if it is yours, call the bureau \
                 (区工业和信息化局), which can remove a registration that is not the firm's",
            ));
        }
        other => {
            other?;
        }
    }
    audit::append(
        &mut tx,
        &Actor::Firm(id),
        "firm.register",
        Some(&format!("firm:{id}")),
        serde_json::json!({"uscc": reg.uscc, "name": name, "industry_code": industry_code,
                           "district": district, "eligible": eligible}),
    )
    .await?;
    tx.commit().await?;
    Ok(Registered {
        id,
        uscc: reg.uscc,
        name,
        eligible,
        verification: "pending".to_owned(),
    })
}

/// A firm's login.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FirmLogin {
    /// The firm's USCC.
    pub uscc: String,
    /// Its password.
    pub password: String,
}

/// Longest USCC a login looks up: longer names cannot exist and never reach Redis or argon2.
const MAX_LOGIN_NAME: usize = 18;

/// Logs a firm in. Each attempt is counted before the password is checked: five from one
/// address on one account (or 100 from everywhere) in 15 minutes lock further attempts (429
/// with `Retry-After`); the address's bucket limits logins to any account.
#[utoipa::path(post, path = "/api/portal/sessions", tag = "portal", request_body = FirmLogin,
    responses((status = 200, body = Session),
        (status = 401, body = voucher_core::error::Problem),
        (status = 429, body = voucher_core::error::Problem)))]
pub async fn login(
    State(state): State<AppState>,
    client: ClientAddr,
    Json(login): Json<FirmLogin>,
) -> Result<impl IntoResponse, ApiError> {
    state
        .throttle
        .anonymous(&state, &client, "firm-login")
        .await?;
    // Only a well-formed USCC can name an account: anything else (too long, a NUL, a wrong
    // check digit) is refused here, before Redis, the database or argon2 see it.
    if login.uscc.chars().count() > MAX_LOGIN_NAME
        || Uscc::parse(&login.uscc).is_err()
        || login.password.len() > 1024
    {
        return Err(ApiError::unauthorized("the USCC or the password is wrong"));
    }
    let firm = sqlx::query!(
        r#"select id, password_hash from firms where uscc = $1"#,
        login.uscc
    )
    .fetch_optional(&state.db)
    .await?;
    let account = format!("firm:{}", login.uscc);
    let (ok, attempt) = match &firm {
        // Whether a USCC is registered is no secret (registering it again answers
        // already_registered), so an unknown one costs no hashing: a flood of made-up USCCs
        // cannot fill the hashing queue that real firms wait in. The attempt still counts.
        None => (
            false,
            state.throttle.login(&state, &account, &client).await?,
        ),
        Some(f) => {
            guard::counted_check(
                &state,
                &client,
                &account,
                login.password,
                Some(f.password_hash.clone()),
            )
            .await?
        }
    };
    let mut tx = state.db.begin().await?;
    match (ok, firm) {
        (true, Some(firm)) => {
            audit::append(
                &mut tx,
                &Actor::Firm(firm.id),
                "session.login",
                Some(&format!("firm:{}", firm.id)),
                serde_json::json!({}),
            )
            .await?;
            tx.commit().await?;
            state.throttle.release(&state, attempt).await;
            Ok((
                [(header::CACHE_CONTROL, "no-store")],
                Json(auth::firm_session(&state, firm.id).await?),
            ))
        }
        _ => {
            let name: String = login.uscc.chars().take(32).collect();
            audit::append(
                &mut tx,
                &Actor::Anonymous(name),
                "session.login_failed",
                None,
                serde_json::json!({"portal": "firm"}),
            )
            .await?;
            tx.commit().await?;
            Err(ApiError::unauthorized("the USCC or the password is wrong"))
        }
    }
}

/// Ends the caller's session at once, on every replica.
#[utoipa::path(delete, path = "/api/portal/sessions/current", tag = "portal",
    security(("bearer" = [])), responses((status = 204), (status = 401, body = voucher_core::error::Problem)))]
pub async fn logout(
    State(state): State<AppState>,
    session: FirmSession,
) -> Result<StatusCode, ApiError> {
    auth::end_session(&state, session.session_id).await?;
    let mut conn = state.db.acquire().await?;
    audit::append(
        &mut conn,
        &Actor::Firm(session.firm_id),
        "session.logout",
        Some(&format!("firm:{}", session.firm_id)),
        serde_json::json!({}),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A password change.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    /// The password now.
    pub current_password: String,
    /// The new one: 10+ characters, not guessable.
    pub new_password: String,
}

/// Changes the firm's password; every other session of the firm stops working.
#[utoipa::path(post, path = "/api/portal/password", tag = "portal", request_body = PasswordChange,
    security(("bearer" = [])),
    responses((status = 204), (status = 401, body = voucher_core::error::Problem),
        (status = 422, body = voucher_core::error::Problem, description = "`validation_failed`")))]
pub async fn change_password(
    State(state): State<AppState>,
    client: ClientAddr,
    session: FirmSession,
    Json(change): Json<PasswordChange>,
) -> Result<StatusCode, ApiError> {
    let firm = sqlx::query!(
        r#"select uscc, name, contact_name, contact_phone, password_hash from firms where id = $1"#,
        session.firm_id
    )
    .fetch_one(&state.db)
    .await?;
    guard::current_password(
        &state,
        &client,
        &format!("firm:{}", firm.uscc),
        change.current_password,
        Some(firm.password_hash),
    )
    .await?;
    check_new_password(
        "new_password",
        &change.new_password,
        &[
            &firm.uscc,
            &firm.name,
            &firm.contact_name,
            &firm.contact_phone,
        ],
    )?;
    let hash = auth::hash_password(change.new_password).await?;
    let now = state.clock.now();
    let mut tx = state.db.begin().await?;
    sqlx::query!(
        r#"update firms set password_hash = $2 where id = $1"#,
        session.firm_id,
        hash
    )
    .execute(&mut *tx)
    .await?;
    let ended = auth::end_sessions(
        &mut tx,
        Subject::Firm(session.firm_id),
        Some(session.session_id),
        now,
    )
    .await?;
    audit::append(
        &mut tx,
        &Actor::Firm(session.firm_id),
        "firm.password_change",
        Some(&format!("firm:{}", session.firm_id)),
        serde_json::json!({"sessions_ended": ended}),
    )
    .await?;
    tx.commit().await?;
    forget_others(&state, Subject::Firm(session.firm_id));
    Ok(StatusCode::NO_CONTENT)
}

/// Forgets every remembered session of `subject` on this replica (the rows are already ended;
/// the caller's own session, if kept, is simply read again).
pub(crate) fn forget_others(state: &AppState, subject: Subject) {
    state.sessions.forget_subject(subject);
}

/// A reset code and when it expires, shown once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ResetCode {
    /// The single-use code the hotline reads to the firm.
    pub code: String,
    /// When it stops working (24 h).
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// Issues a single-use password reset code for a firm (reviewers and admins, the hotline model:
/// the caller has checked who is on the phone). Older unused codes of the firm stop working.
#[utoipa::path(post, path = "/api/bureau/firms/{id}/password-reset", tag = "bureau",
    params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses((status = 200, body = ResetCode), (status = 403, body = voucher_core::error::Problem),
        (status = 404, body = voucher_core::error::Problem)))]
pub async fn issue_reset(
    State(state): State<AppState>,
    session: BureauSession,
    Path(id): Path<Uuid>,
) -> Result<impl IntoResponse, ApiError> {
    session.require(&[Role::Reviewer, Role::Admin])?;
    let mut tx = state.db.begin().await?;
    let exists = sqlx::query_scalar!(r#"select uscc from firms where id = $1 for update"#, id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| ApiError::not_found("no such firm"))?;
    let actor = session.actor();
    let (code, expires_at) = codes::issue(
        &mut tx,
        Kind::FirmReset,
        Owner::Firm(id),
        &actor.label(),
        state.clock.now(),
    )
    .await?;
    audit::append(
        &mut tx,
        &actor,
        "firm.password_reset_issued",
        Some(&format!("firm:{id}")),
        serde_json::json!({"uscc": exists, "expires_at": expires_at.unix_timestamp()}),
    )
    .await?;
    tx.commit().await?;
    Ok((
        [(header::CACHE_CONTROL, "no-store")],
        Json(ResetCode { code, expires_at }),
    ))
}

/// A password reset with the bureau's code.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordReset {
    /// The firm's USCC.
    pub uscc: String,
    /// The code the bureau gave.
    pub code: String,
    /// The new password: 10+ characters, not guessable.
    pub new_password: String,
}

/// Sets a firm's password with a reset code (anonymous, single use, 24 h); every session of the
/// firm stops working. A used, expired, unknown or other firm's code → 422 naming `code`.
#[utoipa::path(post, path = "/api/portal/password-reset", tag = "portal", request_body = PasswordReset,
    responses((status = 204),
        (status = 422, body = voucher_core::error::Problem, description = "`validation_failed`"),
        (status = 429, body = voucher_core::error::Problem)))]
pub async fn reset_password(
    State(state): State<AppState>,
    client: ClientAddr,
    Json(reset): Json<PasswordReset>,
) -> Result<StatusCode, ApiError> {
    state
        .throttle
        .anonymous(&state, &client, "password-reset")
        .await?;
    let uscc = Uscc::parse(reset.uscc.trim())
        .map_err(|_| ApiError::validation("uscc", "is not a valid USCC"))?;
    let firm = sqlx::query!(
        r#"select id, name, contact_name, contact_phone from firms where uscc = $1"#,
        uscc.as_str()
    )
    .fetch_optional(&state.db)
    .await?;
    let refused = || {
        ApiError::validation(
            "code",
            "is unknown, already used or expired; ask the bureau for a new one",
        )
    };
    let Some(firm) = firm else {
        return Err(refused());
    };
    check_new_password(
        "new_password",
        &reset.new_password,
        &[
            uscc.as_str(),
            &firm.name,
            &firm.contact_name,
            &firm.contact_phone,
        ],
    )?;
    let hash = auth::hash_password(reset.new_password).await?;
    let now = state.clock.now();
    let mut tx = state.db.begin().await?;
    let owner = codes::take(&mut tx, Kind::FirmReset, &reset.code, "code", now).await?;
    if owner != Owner::Firm(firm.id) {
        // Dropping the transaction leaves another firm's code unused.
        return Err(refused());
    }
    sqlx::query!(
        r#"update firms set password_hash = $2 where id = $1"#,
        firm.id,
        hash
    )
    .execute(&mut *tx)
    .await?;
    let ended = auth::end_sessions(&mut tx, Subject::Firm(firm.id), None, now).await?;
    audit::append(
        &mut tx,
        &Actor::Firm(firm.id),
        "firm.password_reset",
        Some(&format!("firm:{}", firm.id)),
        serde_json::json!({"sessions_ended": ended}),
    )
    .await?;
    tx.commit().await?;
    forget_others(&state, Subject::Firm(firm.id));
    Ok(StatusCode::NO_CONTENT)
}
