//! Claims, quotes and the firm's vouchers (SPEC §2, "Claim", "Cancellation").
//!
//! Postgres decides quota and cap: a claim locks its own firm-year row (so one firm's
//! concurrent claims queue behind each other and never pass the cap, which a CHECK also
//! guards), and takes a quota slot with a conditional update as its last statement, so the
//! program row is held only for the commit. No interleaving admits more firms than the quota.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;
use voucher_core::audit::{self, Actor};
use voucher_core::auth::FirmSession;
use voucher_core::error::is_constraint;
use voucher_core::extract::Path;
use voucher_core::ledger::{self, Account, Kind, Posting};
use voucher_core::page::{self, Page};
use voucher_core::state::SHANGHAI;
use voucher_core::token::{self, VoucherClaims};
use voucher_core::vouchers::effective_status;
use voucher_core::{code, ApiError, AppState, ErrorCode, Json, Money};

use crate::programs::{self, Program};

/// What a firm asks for.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimRequest {
    /// The platform the voucher will be bound to.
    pub platform_id: Uuid,
    /// The annual fee that platform charges the firm (greater than zero).
    pub annual_fee: Money,
}

/// What a claim would give now.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Quote {
    /// min(floor_fen(annual_fee × rate), cap_remaining).
    pub face_value: Money,
    /// What is left under the firm's cap before this claim.
    pub cap_remaining: Money,
    /// Quota slots left this year.
    pub quota_remaining: i32,
    /// When a voucher claimed now would lapse if still unused.
    #[serde(with = "time::serde::rfc3339")]
    pub lapses_at: OffsetDateTime,
    /// When it would expire: the year's redeem deadline (a voucher claimed in December
    /// expires on Dec 31 all the same).
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// A voucher as firms see it (API.md, "A voucher").
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Voucher {
    /// Voucher id.
    pub id: Uuid,
    /// Short code for typing.
    pub code: String,
    /// Program year.
    pub year: i32,
    /// The firm's USCC.
    pub firm_uscc: String,
    /// The bound platform.
    pub platform_id: Uuid,
    /// The bound platform's name.
    pub platform_name: String,
    /// Face value.
    pub face_value: Money,
    /// Redeemed so far, net of reversals.
    pub redeemed: Money,
    /// Balance.
    pub remaining: Money,
    /// `active`, `exhausted`, `cancelled`, `lapsed` or `expired`.
    pub status: String,
    /// When issued.
    #[serde(with = "time::serde::rfc3339")]
    pub issued_at: OffsetDateTime,
    /// When it lapses if still unused.
    #[serde(with = "time::serde::rfc3339")]
    pub lapses_at: OffsetDateTime,
    /// The redeem deadline; no redemption after it.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// The signed token (compact JWS), also in the QR code.
    pub token: String,
}

/// Why a claim (or quote) is refused.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    /// The firm's registration is not verified (pending or rejected): checked before anything
    /// else, so invented firms learn nothing of eligibility, cap or quota and take no slot.
    #[error("this firm's registration has not been verified by the bureau yet: upload the business licence and wait for the review")]
    NotVerified,
    /// The firm is not eligible.
    #[error("this firm is not eligible: only manufacturers (GB/T 4754 section C) registered in 宝安区 may claim")]
    NotEligible,
    /// The quota is full.
    #[error("this year's quota of {0} firms is full")]
    QuotaExhausted(i32),
    /// Nothing left under the cap.
    #[error("nothing is left under this firm's annual cap of {0}")]
    CapReached(Money),
    /// No such active platform.
    #[error("no active platform has this id")]
    UnknownPlatform,
    /// The fee gives a voucher of 0.00.
    #[error("the fee is too small: its share rounds down to 0.00")]
    FeeTooSmall,
    /// The session's firm is gone.
    #[error("this firm no longer exists")]
    UnknownFirm,
    /// Anything else.
    #[error(transparent)]
    Internal(#[from] ApiError),
}

impl From<sqlx::Error> for ClaimError {
    fn from(value: sqlx::Error) -> Self {
        ClaimError::Internal(value.into())
    }
}

impl From<ClaimError> for ApiError {
    fn from(err: ClaimError) -> Self {
        let detail = err.to_string();
        match err {
            ClaimError::NotVerified => ApiError::new(ErrorCode::NotVerified, detail),
            ClaimError::NotEligible => ApiError::new(ErrorCode::NotEligible, detail),
            ClaimError::QuotaExhausted(_) => ApiError::new(ErrorCode::QuotaExhausted, detail),
            ClaimError::CapReached(_) => ApiError::new(ErrorCode::FirmCapReached, detail),
            ClaimError::UnknownPlatform => ApiError::validation("platform_id", detail),
            ClaimError::FeeTooSmall => ApiError::validation("annual_fee", detail),
            ClaimError::UnknownFirm => ApiError::unauthorized(detail),
            ClaimError::Internal(e) => e,
        }
    }
}

struct Decision {
    program: Program,
    firm_uscc: String,
    admitted: bool,
    face_value: Money,
    cap_remaining: Money,
}

/// Everything a claim decides, under the firm-year row lock when `lock` is set.
///
/// Locked (a claim), the program is read only once the firm-year row is held, so the quota
/// count is the one in force when the decision is made (a slot a concurrent cancel freed is
/// seen), and the cap is the program's, which a `PATCH` cannot change while the claim holds the
/// program's parameter lock (shared; see [`programs::lock_parameters_shared`]).
async fn decide(
    conn: &mut PgConnection,
    firm_id: Uuid,
    request: &ClaimRequest,
    year: i32,
    lock: bool,
) -> Result<Decision, ClaimError> {
    // Verification first (API.md): before the fee, eligibility, cap and quota. Verification is
    // final, and the voucher insert's trigger (`vouchers_firm_verified`) checks it again.
    let firm = sqlx::query!(
        r#"select uscc, eligible, verification from firms where id = $1"#,
        firm_id
    )
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(ClaimError::UnknownFirm)?;
    if firm.verification != "verified" {
        return Err(ClaimError::NotVerified);
    }
    if request.annual_fee.is_zero() {
        return Err(ApiError::validation("annual_fee", "must be greater than zero").into());
    }
    if !firm.eligible {
        return Err(ClaimError::NotEligible);
    }
    let platform_ok = sqlx::query_scalar!(
        r#"select exists (select 1 from platforms where id = $1 and active) as "ok!""#,
        request.platform_id
    )
    .fetch_one(&mut *conn)
    .await?;
    if !platform_ok {
        return Err(ClaimError::UnknownPlatform);
    }
    let firm_year = if lock {
        // The copy of the cap comes from the program row inside this statement; the caller
        // holds the parameter lock, so it is the cap in force until this transaction ends.
        sqlx::query!(
            r#"insert into firm_years (firm_id, year, cap)
               select $1, $2, p.cap_per_firm from program_years p where p.year = $2
               on conflict (firm_id, year) do nothing"#,
            firm_id,
            year
        )
        .execute(&mut *conn)
        .await?;
        sqlx::query!(
            r#"select admitted, granted from firm_years
               where firm_id = $1 and year = $2 for update"#,
            firm_id,
            year
        )
        .fetch_optional(&mut *conn)
        .await?
        .map(|r| (r.admitted, r.granted))
    } else {
        sqlx::query!(
            r#"select admitted, granted from firm_years where firm_id = $1 and year = $2"#,
            firm_id,
            year
        )
        .fetch_optional(&mut *conn)
        .await?
        .map(|r| (r.admitted, r.granted))
    };
    // Read after the firm-year lock (when locked): a fresh count and the cap in force.
    let program = programs::load(conn, year)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no program year {year}")))?;
    let (admitted, granted) = match firm_year {
        Some((a, g)) => (
            a,
            Money::from_decimal(g)
                .map_err(anyhow::Error::from)
                .map_err(ApiError::from)?,
        ),
        None => (false, Money::ZERO),
    };
    let cap = program.cap_per_firm;
    let cap_remaining = cap.saturating_sub(granted);
    if cap_remaining.is_zero() {
        return Err(ClaimError::CapReached(cap));
    }
    if !admitted && program.firms_admitted >= program.firm_quota {
        return Err(ClaimError::QuotaExhausted(program.firm_quota));
    }
    let face_value = request
        .annual_fee
        .times_rate_floor_fen(program.rate)
        .map_err(anyhow::Error::from)
        .map_err(ApiError::from)?
        .min(cap_remaining);
    if face_value.is_zero() {
        return Err(ClaimError::FeeTooSmall);
    }
    Ok(Decision {
        program,
        firm_uscc: firm.uscc,
        admitted,
        face_value,
        cap_remaining,
    })
}

/// What a claim would give now, without claiming; refused for the same reasons a claim is.
#[utoipa::path(post, path = "/api/portal/vouchers/quote", tag = "portal", request_body = ClaimRequest,
    security(("bearer" = [])),
    responses((status = 200, body = Quote),
        (status = 409, body = voucher_core::error::Problem, description = "`not_verified` (checked first), `quota_exhausted`, `firm_cap_reached`"),
        (status = 422, body = voucher_core::error::Problem, description = "`not_eligible`, `validation_failed`")))]
pub async fn quote(
    State(state): State<AppState>,
    session: FirmSession,
    Json(request): Json<ClaimRequest>,
) -> Result<Json<Quote>, ApiError> {
    let year = state.clock.program_year();
    programs::ensure(&state, year).await?;
    let mut conn = state.db.acquire().await?;
    let d = decide(&mut conn, session.firm_id, &request, year, false).await?;
    let (lapses_at, expires_at) = voucher_dates(&d.program, state.clock.now());
    Ok(Json(Quote {
        face_value: d.face_value,
        cap_remaining: d.cap_remaining,
        quota_remaining: (d.program.firm_quota - d.program.firms_admitted).max(0),
        lapses_at,
        expires_at,
    }))
}

/// When a voucher issued at `issued_at` lapses if unused and when it expires: unused
/// `claim_validity_days` after issue it lapses, never later than the redeem deadline.
fn voucher_dates(program: &Program, issued_at: OffsetDateTime) -> (OffsetDateTime, OffsetDateTime) {
    let expires_at = program.redeem_deadline;
    let lapses_at =
        (issued_at + time::Duration::days(i64::from(program.claim_validity_days))).min(expires_at);
    (lapses_at, expires_at)
}

/// Claims a signed voucher for one platform.
#[utoipa::path(post, path = "/api/portal/vouchers", tag = "portal", request_body = ClaimRequest,
    security(("bearer" = [])),
    responses((status = 201, body = Voucher),
        (status = 409, body = voucher_core::error::Problem, description = "`not_verified` (checked first), `quota_exhausted`, `firm_cap_reached`"),
        (status = 422, body = voucher_core::error::Problem, description = "`not_eligible`, `validation_failed`")))]
pub async fn claim(
    State(state): State<AppState>,
    session: FirmSession,
    Json(request): Json<ClaimRequest>,
) -> Result<(StatusCode, Json<Voucher>), ApiError> {
    // One clock reading for the whole claim: the year and every stored time come from it, so a
    // claim straddling midnight on Dec 31 is wholly in one year.
    let now = state.clock.now();
    let year = now.to_offset(SHANGHAI).year();
    programs::ensure(&state, year).await?;
    let id = claim_in_tx(&state, session.firm_id, &request, year, now).await?;
    let voucher = fetch(&state, session.firm_id, id).await?;
    Ok((StatusCode::CREATED, Json(voucher)))
}

async fn claim_in_tx(
    state: &AppState,
    firm_id: Uuid,
    request: &ClaimRequest,
    year: i32,
    now: OffsetDateTime,
) -> Result<Uuid, ClaimError> {
    let mut tx = state.db.begin().await?;
    programs::lock_parameters_shared(&mut tx, year).await?;
    let d = decide(&mut tx, firm_id, request, year, true).await?;
    let issued_at = now.replace_nanosecond(0).unwrap_or(now);
    let (lapses_at, expires_at) = voucher_dates(&d.program, issued_at);
    let id = Uuid::now_v7();
    let keys = state.keys.get();
    let mut inserted = false;
    for _ in 0..5 {
        let code = code::generate(year);
        let claims = VoucherClaims {
            iss: token::ISSUER.into(),
            jti: id,
            sub: d.firm_uscc.clone(),
            firm: firm_id,
            platform: request.platform_id,
            year,
            face_value: d.face_value.to_string(),
            code: code.clone(),
            iat: issued_at.unix_timestamp(),
            exp: expires_at.unix_timestamp(),
        };
        let (jws, kid) = token::sign(&keys, &claims).map_err(ApiError::from)?;
        let row = sqlx::query_scalar!(
            r#"insert into vouchers (id, code, year, firm_id, platform_id, annual_fee, face_value,
                                     kid, token, issued_at, lapses_at, expires_at)
               values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
               on conflict (code) do nothing
               returning id"#,
            id,
            code,
            year,
            firm_id,
            request.platform_id,
            request.annual_fee.as_decimal(),
            d.face_value.as_decimal(),
            kid,
            jws,
            issued_at,
            lapses_at,
            expires_at
        )
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| {
            if is_constraint(&e, "vouchers_firm_verified") {
                ClaimError::NotVerified
            } else {
                e.into()
            }
        })?;
        if row.is_some() {
            inserted = true;
            break;
        }
    }
    if !inserted {
        return Err(
            ApiError::internal(anyhow::anyhow!("no free voucher code after 5 tries")).into(),
        );
    }
    sqlx::query!(
        r#"update firm_years set granted = granted + $3, admitted = true
           where firm_id = $1 and year = $2"#,
        firm_id,
        year,
        d.face_value.as_decimal()
    )
    .execute(&mut *tx)
    .await?;
    ledger::post(
        &mut tx,
        &Posting {
            kind: Kind::Issue,
            debit: Account::Voucher(id),
            credit: Account::Budget(year),
            amount: d.face_value,
            year,
            voucher_id: Some(id),
            redemption_id: None,
            statement_id: None,
            at: issued_at,
        },
    )
    .await?;
    audit::append(
        &mut tx,
        &Actor::Firm(firm_id),
        "voucher.claim",
        Some(&format!("voucher:{id}")),
        serde_json::json!({"platform_id": request.platform_id, "annual_fee": request.annual_fee,
                           "face_value": d.face_value, "year": year, "admitted_now": !d.admitted}),
    )
    .await?;
    if !d.admitted {
        // Last statement before commit: the program row is locked only for the commit.
        let slot = sqlx::query_scalar!(
            r#"update program_years set firms_admitted = firms_admitted + 1
               where year = $1 and firms_admitted < firm_quota
               returning firms_admitted"#,
            year
        )
        .fetch_optional(&mut *tx)
        .await?;
        if slot.is_none() {
            return Err(ClaimError::QuotaExhausted(d.program.firm_quota));
        }
    }
    tx.commit().await.map_err(|e| {
        if is_constraint(&e, "firm_years_within_cap") {
            ClaimError::CapReached(d.program.cap_per_firm)
        } else {
            e.into()
        }
    })?;
    Ok(id)
}

/// Reads one of the firm's vouchers; another firm's is `not_found`.
pub async fn fetch(state: &AppState, firm_id: Uuid, id: Uuid) -> Result<Voucher, ApiError> {
    list_where(state, firm_id, Some(id), page::LATEST, 1)
        .await?
        .pop()
        .ok_or_else(|| ApiError::not_found("no such voucher"))
}

async fn list_where(
    state: &AppState,
    firm_id: Uuid,
    id: Option<Uuid>,
    (before_at, before_id): (OffsetDateTime, Uuid),
    limit: i64,
) -> Result<Vec<Voucher>, ApiError> {
    let now = state.clock.now();
    let rows = sqlx::query!(
        r#"select v.id, v.code, v.year, f.uscc, v.platform_id, p.name as platform_name,
                  v.face_value, v.redeemed, v.redemption_count, v.status, v.issued_at, v.lapses_at,
                  v.expires_at, v.token
           from vouchers v join firms f on f.id = v.firm_id join platforms p on p.id = v.platform_id
           where v.firm_id = $1 and ($2::uuid is null or v.id = $2)
             and (v.issued_at, v.id) < ($3, $4)
           order by v.issued_at desc, v.id desc
           limit $5"#,
        firm_id,
        id,
        before_at,
        before_id,
        limit
    )
    .fetch_all(&state.db)
    .await?;
    rows.into_iter()
        .map(|r| {
            let face_value = Money::from_decimal(r.face_value).map_err(anyhow::Error::from)?;
            let redeemed = Money::from_decimal(r.redeemed).map_err(anyhow::Error::from)?;
            Ok(Voucher {
                id: r.id,
                code: r.code,
                year: r.year,
                firm_uscc: r.uscc,
                platform_id: r.platform_id,
                platform_name: r.platform_name,
                face_value,
                redeemed,
                remaining: face_value.saturating_sub(redeemed),
                status: effective_status(
                    &r.status,
                    r.redemption_count,
                    r.lapses_at,
                    r.expires_at,
                    now,
                )
                .to_owned(),
                issued_at: r.issued_at,
                lapses_at: r.lapses_at,
                expires_at: r.expires_at,
                token: r.token,
            })
        })
        .collect()
}

/// The firm's vouchers, newest first (paged).
#[utoipa::path(get, path = "/api/portal/vouchers", tag = "portal", security(("bearer" = [])),
    responses((status = 200, body = [Voucher])))]
pub async fn list(
    State(state): State<AppState>,
    session: FirmSession,
    page: Page,
) -> Result<(HeaderMap, Json<Vec<Voucher>>), ApiError> {
    let mut vouchers = list_where(
        &state,
        session.firm_id,
        None,
        page.before_or_end(),
        page.fetch(),
    )
    .await?;
    let headers = page.finish(&mut vouchers, |v| (v.issued_at, v.id));
    Ok((headers, Json(vouchers)))
}

/// One of the firm's vouchers.
#[utoipa::path(get, path = "/api/portal/vouchers/{id}", tag = "portal", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = Voucher), (status = 404, body = voucher_core::error::Problem)))]
pub async fn get(
    State(state): State<AppState>,
    session: FirmSession,
    Path(id): Path<Uuid>,
) -> Result<Json<Voucher>, ApiError> {
    Ok(Json(fetch(&state, session.firm_id, id).await?))
}

/// Cancels an unused voucher: its face value returns under the cap, and the quota slot is
/// freed when the firm holds no other live voucher and never redeemed this year.
#[utoipa::path(post, path = "/api/portal/vouchers/{id}/cancel", tag = "portal", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = Voucher),
        (status = 404, body = voucher_core::error::Problem),
        (status = 409, body = voucher_core::error::Problem, description = "`voucher_has_redemptions`, `voucher_not_active`")))]
pub async fn cancel(
    State(state): State<AppState>,
    session: FirmSession,
    Path(id): Path<Uuid>,
) -> Result<Json<Voucher>, ApiError> {
    let firm_id = session.firm_id;
    let mut tx = state.db.begin().await?;
    let year = sqlx::query_scalar!(
        r#"select year from vouchers where id = $1 and firm_id = $2"#,
        id,
        firm_id
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| ApiError::not_found("no such voucher"))?;
    // The voucher's row, then the firm's: the order every writer of both follows.
    let now = state.clock.now();
    let cancelled = sqlx::query_scalar!(
        r#"update vouchers set status = 'cancelled', closed_at = $3
           where id = $1 and firm_id = $2 and status = 'active' and redemption_count = 0
             and expires_at >= $3 and lapses_at >= $3
           returning face_value"#,
        id,
        firm_id,
        now
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(face_value) = cancelled else {
        let row = sqlx::query!(
            r#"select status, redemption_count, lapses_at, expires_at from vouchers where id = $1"#,
            id
        )
        .fetch_one(&mut *tx)
        .await?;
        let status = effective_status(
            &row.status,
            row.redemption_count,
            row.lapses_at,
            row.expires_at,
            now,
        );
        return Err(if row.redemption_count > 0 {
            ApiError::new(
                ErrorCode::VoucherHasRedemptions,
                "this voucher has been used and cannot be cancelled",
            )
        } else {
            ApiError::new(
                ErrorCode::VoucherNotActive,
                format!("this voucher is {status} and cannot be cancelled"),
            )
        });
    };
    let face_value = Money::from_decimal(face_value).map_err(anyhow::Error::from)?;
    sqlx::query!(
        r#"update firm_years set granted = granted - $3 where firm_id = $1 and year = $2"#,
        firm_id,
        year,
        face_value.as_decimal()
    )
    .execute(&mut *tx)
    .await?;
    ledger::post(
        &mut tx,
        &Posting {
            kind: Kind::Cancel,
            debit: Account::Budget(year),
            credit: Account::Voucher(id),
            amount: face_value,
            year,
            voucher_id: Some(id),
            redemption_id: None,
            statement_id: None,
            at: now,
        },
    )
    .await?;
    let released = release_slot_if_unused(&mut tx, firm_id, year).await?;
    audit::append(
        &mut tx,
        &Actor::Firm(firm_id),
        "voucher.cancel",
        Some(&format!("voucher:{id}")),
        serde_json::json!({"face_value": face_value, "quota_slot_released": released}),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(fetch(&state, firm_id, id).await?))
}

/// Frees the firm's quota slot when it holds no live voucher and never redeemed in `year`.
/// The caller holds the firm-year row lock. Returns whether a slot was freed.
pub async fn release_slot_if_unused(
    conn: &mut PgConnection,
    firm_id: Uuid,
    year: i32,
) -> Result<bool, ApiError> {
    let released = sqlx::query_scalar!(
        r#"update firm_years set admitted = false
           where firm_id = $1 and year = $2 and admitted
             and not exists (select 1 from vouchers
                             where firm_id = $1 and year = $2
                               and (status in ('active', 'exhausted') or redemption_count > 0))
           returning firm_id"#,
        firm_id,
        year
    )
    .fetch_optional(&mut *conn)
    .await?
    .is_some();
    if released {
        sqlx::query!(
            r#"update program_years set firms_admitted = firms_admitted - 1 where year = $1"#,
            year
        )
        .execute(&mut *conn)
        .await?;
    }
    Ok(released)
}
