//! Program years: the parameters of each year's voucher program and its quota counter.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};
use voucher_core::audit;
use voucher_core::auth::{BureauSession, Role};
use voucher_core::error::is_constraint;
use voucher_core::extract::Path;
use voucher_core::state::SHANGHAI;
use voucher_core::{ApiError, AppState, ErrorCode, Json, Money, Rate};

/// SPEC §1: a voucher with no redemption this many days after issue lapses (a program setting,
/// not a policy figure, so it is not in the rules module).
pub const DEFAULT_CLAIM_VALIDITY_DAYS: i32 = 90;
/// SPEC §1's quota where the policy version in force names none (the 2021 text's 2,000 is a
/// target, 力争, not a cap).
pub const DEFAULT_FIRM_QUOTA: u32 = 2000;

/// One year's parameters as the program uses them.
#[derive(Debug, Clone)]
pub struct Program {
    /// Calendar year (Asia/Shanghai).
    pub year: i32,
    /// Share of fees a voucher pays.
    pub rate: Rate,
    /// Most one firm can be granted in the year.
    pub cap_per_firm: Money,
    /// Most distinct firms admitted in the year.
    pub firm_quota: i32,
    /// Firms admitted so far.
    pub firms_admitted: i32,
    /// Days after issue an unused voucher lapses.
    pub claim_validity_days: i32,
    /// No redemption after this instant.
    pub redeem_deadline: OffsetDateTime,
}

/// Dec 31, 23:59:59 Asia/Shanghai of `year`.
pub fn redeem_deadline(year: i32) -> OffsetDateTime {
    let date = Date::from_calendar_date(year, Month::December, 31).unwrap_or(Date::MAX);
    PrimitiveDateTime::new(date, Time::from_hms(23, 59, 59).unwrap_or(Time::MIDNIGHT))
        .assume_offset(SHANGHAI)
}

/// Creates `year`'s program with the `cloud_voucher` defaults of the policy version in force
/// on Jan 1 of that year (the rules module is their one source); does nothing if it exists.
pub async fn ensure(state: &AppState, year: i32) -> Result<(), ApiError> {
    // A plain read first: an `insert .. on conflict` would queue behind every claim that holds
    // the program row (to take a quota slot) until it commits, serialising all claims.
    let exists = sqlx::query_scalar!(
        r#"select exists (select 1 from program_years where year = $1) as "exists!""#,
        year
    )
    .fetch_one(&state.db)
    .await?;
    if exists {
        return Ok(());
    }
    let jan1 = Date::from_calendar_date(year, Month::January, 1)
        .map_err(|_| ApiError::not_found(format!("no program year {year}")))?;
    let on = state
        .rules
        .version_on(jan1)
        .map(|_| jan1)
        .unwrap_or_else(|| state.clock.now().to_offset(SHANGHAI).date());
    let params = state.rules.cloud_voucher_params(on).ok_or_else(|| {
        ApiError::not_found(format!("no cloud-voucher measure is in force for {year}"))
    })?;
    let quota = i32::try_from(params.firm_quota.unwrap_or(DEFAULT_FIRM_QUOTA)).unwrap_or(i32::MAX);
    sqlx::query!(
        r#"insert into program_years (year, rate, cap_per_firm, firm_quota, claim_validity_days, redeem_deadline)
           values ($1, $2, $3, $4, $5, $6)
           on conflict (year) do nothing"#,
        year,
        params.rate,
        params.cap_per_firm,
        quota,
        DEFAULT_CLAIM_VALIDITY_DAYS,
        redeem_deadline(year),
    )
    .execute(&state.db)
    .await?;
    Ok(())
}

/// Advisory-lock class of a program year's parameters (the key is `(class, year)`).
const PARAMETERS_LOCK_CLASS: i32 = 0x5E77_0001;

/// Takes the year's parameter lock shared, until the transaction ends: claims hold it while
/// they read the cap and write their firm-year's copy of it, so a `PATCH` of the cap (which
/// takes it exclusively) sees every firm-year row a claim creates, and no claim decides on a
/// cap the `PATCH` is replacing. Claims do not block each other on it, and it is held in
/// memory only (no row is written, unlike `for share`).
pub async fn lock_parameters_shared(conn: &mut PgConnection, year: i32) -> sqlx::Result<()> {
    sqlx::query!(
        r#"select pg_advisory_xact_lock_shared($1, $2)"#,
        PARAMETERS_LOCK_CLASS,
        year
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Takes the year's parameter lock exclusively, until the transaction ends: waits for the
/// claims in flight to commit, and holds new ones back until the change has committed.
async fn lock_parameters_exclusive(conn: &mut PgConnection, year: i32) -> sqlx::Result<()> {
    sqlx::query!(
        r#"select pg_advisory_xact_lock($1, $2)"#,
        PARAMETERS_LOCK_CLASS,
        year
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Reads a year's program in the caller's transaction.
pub async fn load(conn: &mut PgConnection, year: i32) -> Result<Option<Program>, ApiError> {
    let row = sqlx::query!(
        r#"select year, rate, cap_per_firm, firm_quota, firms_admitted, claim_validity_days, redeem_deadline
           from program_years where year = $1"#,
        year
    )
    .fetch_optional(conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    Ok(Some(Program {
        year: row.year,
        rate: Rate::new(row.rate).ok_or_else(|| anyhow::anyhow!("stored rate out of range"))?,
        cap_per_firm: Money::from_decimal(row.cap_per_firm).map_err(anyhow::Error::from)?,
        firm_quota: row.firm_quota,
        firms_admitted: row.firms_admitted,
        claim_validity_days: row.claim_validity_days,
        redeem_deadline: row.redeem_deadline,
    }))
}

/// A program year with its totals (API.md, `GET /api/bureau/programs/{year}`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProgramView {
    /// Calendar year.
    pub year: i32,
    /// Share of the platform's fees a voucher pays, e.g. `"0.30"`.
    #[schema(value_type = String, example = "0.30")]
    pub rate: Rate,
    /// Most one firm can be granted in the year.
    pub cap_per_firm: Money,
    /// Most distinct firms admitted in the year.
    pub firm_quota: i32,
    /// Firms admitted so far.
    pub firms_admitted: i32,
    /// Days after issue an unused voucher lapses.
    pub claim_validity_days: i32,
    /// No redemption after this instant.
    #[serde(with = "time::serde::rfc3339")]
    pub redeem_deadline: OffsetDateTime,
    /// Face value of the year's vouchers not cancelled, lapsed or expired (what firms hold
    /// or used), summed over the firms' rows.
    pub granted_total: Money,
    /// Discounts redeemed, net of reversals.
    pub redeemed_total: Money,
    /// Vouchers currently `active`.
    pub vouchers_active: i64,
}

async fn view(state: &AppState, year: i32) -> Result<ProgramView, ApiError> {
    let mut conn = state.db.acquire().await?;
    let program = load(&mut conn, year)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no program year {year}")))?;
    let totals = sqlx::query!(
        r#"select coalesce(sum(granted), 0) as "granted!", coalesce(sum(redeemed), 0) as "redeemed!",
                  (select count(*) from vouchers where year = $1 and status = 'active') as "active!"
           from firm_years where year = $1"#,
        year
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(ProgramView {
        year,
        rate: program.rate,
        cap_per_firm: program.cap_per_firm,
        firm_quota: program.firm_quota,
        firms_admitted: program.firms_admitted,
        claim_validity_days: program.claim_validity_days,
        redeem_deadline: program.redeem_deadline,
        granted_total: Money::from_decimal(totals.granted).map_err(anyhow::Error::from)?,
        redeemed_total: Money::from_decimal(totals.redeemed).map_err(anyhow::Error::from)?,
        vouchers_active: totals.active,
    })
}

/// A year's parameters and totals; every role may read them.
#[utoipa::path(get, path = "/api/bureau/programs/{year}", tag = "bureau",
    params(("year" = i32, Path, description = "Calendar year")),
    security(("bearer" = [])),
    responses((status = 200, body = ProgramView), (status = 404, body = voucher_core::error::Problem)))]
pub async fn get_program(
    State(state): State<AppState>,
    _session: BureauSession,
    Path(year): Path<i32>,
) -> Result<Json<ProgramView>, ApiError> {
    if year == state.clock.program_year() {
        ensure(&state, year).await?;
    }
    Ok(Json(view(&state, year).await?))
}

/// The parameters an admin may change.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProgramPatch {
    /// New quota; refused below the firms already admitted.
    pub firm_quota: Option<i32>,
    /// New cap per firm; refused below what any firm was already granted.
    pub cap_per_firm: Option<Money>,
    /// New validity for vouchers issued from now on (1–366 days).
    pub claim_validity_days: Option<i32>,
}

/// Changes a year's parameters, never below what is already committed. Next year's program is
/// created by its first change (with the rules module's defaults for what the change leaves
/// out), so it can be set before the year opens.
#[utoipa::path(patch, path = "/api/bureau/programs/{year}", tag = "bureau",
    params(("year" = i32, Path, description = "Calendar year")),
    request_body = ProgramPatch, security(("bearer" = [])),
    responses((status = 200, body = ProgramView), (status = 409, body = voucher_core::error::Problem,
        description = "`invalid_transition`: below what is already committed")))]
pub async fn patch_program(
    State(state): State<AppState>,
    session: BureauSession,
    Path(year): Path<i32>,
    Json(patch): Json<ProgramPatch>,
) -> Result<Json<ProgramView>, ApiError> {
    session.require(&[Role::Admin])?;
    if let Some(q) = patch.firm_quota {
        if !(0..=1_000_000).contains(&q) {
            return Err(ApiError::validation("firm_quota", "must be 0 to 1000000"));
        }
    }
    if patch.cap_per_firm.is_some_and(|c| c.is_zero()) {
        return Err(ApiError::validation(
            "cap_per_firm",
            "must be greater than zero",
        ));
    }
    if let Some(d) = patch.claim_validity_days {
        if !(1..=366).contains(&d) {
            return Err(ApiError::validation(
                "claim_validity_days",
                "must be 1 to 366",
            ));
        }
    }
    // The current year exists from its first request; next year's is created here, with the
    // rules module's defaults, so the bureau can prepare the opening morning in December.
    let current = state.clock.program_year();
    if year == current || year == current + 1 {
        ensure(&state, year).await?;
    }
    let mut tx = state.db.begin().await?;
    // First the parameter lock (claims in flight finish, new ones wait), so every firm-year row
    // that exists or is being created is seen by the update below.
    lock_parameters_exclusive(&mut tx, year).await?;
    let before = load(&mut tx, year)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no program year {year}")))?;
    // Lock order as in claims and the nightly release: the firms' rows first, in firm order,
    // the program row last.
    if let Some(cap) = patch.cap_per_firm {
        sqlx::query!(
            r#"select firm_id from firm_years where year = $1 order by firm_id for update"#,
            year
        )
        .fetch_all(&mut *tx)
        .await?;
        let lowered = sqlx::query!(
            r#"update firm_years set cap = $2 where year = $1"#,
            year,
            cap.as_decimal()
        )
        .execute(&mut *tx)
        .await;
        match lowered {
            Err(e) if is_constraint(&e, "firm_years_within_cap") => {
                return Err(ApiError::new(
                    ErrorCode::InvalidTransition,
                    "cap_per_firm is below what a firm has already been granted this year",
                ));
            }
            other => {
                other?;
            }
        }
    }
    let updated = sqlx::query!(
        r#"update program_years
           set firm_quota = coalesce($2, firm_quota),
               cap_per_firm = coalesce($3, cap_per_firm),
               claim_validity_days = coalesce($4, claim_validity_days),
               updated_at = now()
           where year = $1"#,
        year,
        patch.firm_quota,
        patch.cap_per_firm.map(|c| c.as_decimal()),
        patch.claim_validity_days
    )
    .execute(&mut *tx)
    .await;
    match updated {
        Err(e) if is_constraint(&e, "program_years_within_quota") => {
            return Err(ApiError::new(
                ErrorCode::InvalidTransition,
                format!(
                    "firm_quota is below the {} firms already admitted",
                    before.firms_admitted
                ),
            ));
        }
        other => {
            other?;
        }
    }
    audit::append(
        &mut tx,
        &session.actor(),
        "program.update",
        Some(&format!("program:{year}")),
        serde_json::json!({
            "before": {
                "firm_quota": before.firm_quota,
                "cap_per_firm": before.cap_per_firm,
                "claim_validity_days": before.claim_validity_days,
            },
            "change": {
                "firm_quota": patch.firm_quota,
                "cap_per_firm": patch.cap_per_firm,
                "claim_validity_days": patch.claim_validity_days,
            },
        }),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(view(&state, year).await?))
}
