//! Firms: registration, sessions, what a firm sees of itself, the platforms it can choose.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;
use voucher_core::audit::{self, Actor};
use voucher_core::auth::{self, FirmSession, Session};
use voucher_core::error::is_constraint;
use voucher_core::passwords::check_new_password;
use voucher_core::throttle::ClientAddr;
use voucher_core::{ApiError, AppState, ErrorCode, Json, Money, Uscc};

use crate::eligibility;
use crate::programs;

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
    /// Whether the firm may claim (section C manufacturing in 宝安区).
    pub eligible: bool,
}

fn text(field: &str, value: &str, max: usize) -> Result<String, ApiError> {
    voucher_core::text::required(field, value, max)
}

/// Registers a firm; eligibility is computed, not declared.
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
    let industry_code = reg.industry_code.trim().to_owned();
    if !eligibility::industry_code_is_well_formed(&industry_code) {
        return Err(ApiError::validation(
            "industry_code",
            "must be a GB/T 4754-2017 code such as C3911",
        ));
    }
    let district = text("district", &reg.district, 50)?;
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
                "a firm with this USCC is already registered",
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
) -> Result<Json<Session>, ApiError> {
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
    let attempt = state
        .throttle
        .login(&state, &format!("firm:{}", login.uscc), &client)
        .await?;
    let verified = match &firm {
        // Whether a USCC is registered is no secret (registering it again answers
        // already_registered), so an unknown one costs no hashing: a flood of made-up USCCs
        // cannot fill the hashing queue that real firms wait in.
        None => Ok(false),
        Some(f) => auth::verify_password(login.password, Some(f.password_hash.clone())).await,
    };
    let ok = match verified {
        Ok(ok) => ok,
        Err(shed) => {
            // Queued out before the password was checked: this try must not lock anyone out.
            state.throttle.release(&state, attempt).await;
            return Err(shed);
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
            Ok(Json(auth::firm_session(&state, firm.id)?))
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

/// What a logged-in firm sees of itself and of this year's program.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Me {
    /// Firm id.
    pub id: Uuid,
    /// USCC.
    pub uscc: String,
    /// Name.
    pub name: String,
    /// Industry code.
    pub industry_code: String,
    /// District.
    pub district: String,
    /// Contact person.
    pub contact_name: String,
    /// Whether the firm may claim.
    pub eligible: bool,
    /// The current program year.
    pub year: i32,
    /// Face value granted this year (vouchers not cancelled, lapsed or expired).
    pub granted: Money,
    /// Redeemed this year, net of reversals.
    pub redeemed: Money,
    /// What can still be granted under the cap.
    pub cap_remaining: Money,
    /// Whether the firm holds a quota slot this year.
    pub admitted: bool,
    /// Slots left in this year's quota.
    pub quota_remaining: i32,
}

/// The firm and its standing in the current year.
#[utoipa::path(get, path = "/api/portal/me", tag = "portal", security(("bearer" = [])),
    responses((status = 200, body = Me), (status = 401, body = voucher_core::error::Problem)))]
pub async fn me(State(state): State<AppState>, session: FirmSession) -> Result<Json<Me>, ApiError> {
    let year = state.clock.program_year();
    programs::ensure(&state, year).await?;
    let row = sqlx::query!(
        r#"select f.id, f.uscc, f.name, f.industry_code, f.district, f.contact_name, f.eligible,
                  p.cap_per_firm, p.firm_quota, p.firms_admitted,
                  fy.granted as "granted?", fy.redeemed as "redeemed?", fy.admitted as "admitted?",
                  fy.cap as "cap?"
           from firms f
           join program_years p on p.year = $2
           left join firm_years fy on fy.firm_id = f.id and fy.year = $2
           where f.id = $1"#,
        session.firm_id,
        year
    )
    .fetch_optional(&state.db)
    .await?
    .ok_or_else(|| ApiError::unauthorized("this firm no longer exists"))?;
    let money = |d| Money::from_decimal(d).map_err(anyhow::Error::from);
    let granted = money(row.granted.unwrap_or_default())?;
    let cap = money(row.cap.unwrap_or(row.cap_per_firm))?;
    Ok(Json(Me {
        id: row.id,
        uscc: row.uscc,
        name: row.name,
        industry_code: row.industry_code,
        district: row.district,
        contact_name: row.contact_name,
        eligible: row.eligible,
        year,
        granted,
        redeemed: money(row.redeemed.unwrap_or_default())?,
        cap_remaining: cap.saturating_sub(granted),
        admitted: row.admitted.unwrap_or(false),
        quota_remaining: (row.firm_quota - row.firms_admitted).max(0),
    }))
}

/// A platform a firm can claim for.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PlatformOption {
    /// Platform id.
    pub id: Uuid,
    /// Name.
    pub name: String,
}

/// Active platforms, by name.
#[utoipa::path(get, path = "/api/portal/platforms", tag = "portal", security(("bearer" = [])),
    responses((status = 200, body = [PlatformOption])))]
pub async fn platforms(
    State(state): State<AppState>,
    _session: FirmSession,
) -> Result<Json<Vec<PlatformOption>>, ApiError> {
    let rows = sqlx::query_as!(
        PlatformOption,
        r#"select id, name from platforms where active order by name"#
    )
    .fetch_all(&state.db)
    .await?;
    Ok(Json(rows))
}
