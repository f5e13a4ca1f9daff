//! What a firm sees of itself and the platforms it can choose (its account is `accounts`'s).

use axum::extract::State;
use axum::http::HeaderMap;
use serde::Serialize;
use uuid::Uuid;
use voucher_core::auth::FirmSession;
use voucher_core::page::Page;
use voucher_core::{ApiError, AppState, Json, Money};

use crate::programs;

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
    /// `pending`, `verified` or `rejected`: only a verified firm can claim.
    pub verification: String,
    /// Why the bureau rejected the registration (for `rejected`).
    pub verification_reason: Option<String>,
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
                  f.verification, f.verification_reason,
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
        verification: row.verification,
        verification_reason: row.verification_reason,
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

/// Active platforms, by name (paged).
#[utoipa::path(get, path = "/api/portal/platforms", tag = "portal", security(("bearer" = [])),
    responses((status = 200, body = [PlatformOption])))]
pub async fn platforms(
    State(state): State<AppState>,
    _session: FirmSession,
    page: Page<(String, Uuid)>,
) -> Result<(HeaderMap, Json<Vec<PlatformOption>>), ApiError> {
    let (after_name, after_id) = page.after_or_start();
    let mut rows = sqlx::query_as!(
        PlatformOption,
        r#"select id, name from platforms
           where active and (name, id) > ($1, $2)
           order by name, id
           limit $3"#,
        after_name,
        after_id,
        page.fetch()
    )
    .fetch_all(&state.db)
    .await?;
    let headers = page.finish(&mut rows, |p| (p.name.clone(), p.id));
    Ok((headers, Json(rows)))
}

/// This year's program as the portal's visitors see it (anonymous), so the page never states
/// a rate, cap or quota the bureau has since changed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PublicProgram {
    /// The current program year.
    pub year: i32,
    /// Share of the platform's fees a voucher pays, e.g. `"0.30"`.
    #[schema(value_type = String, example = "0.30")]
    pub rate: voucher_core::Rate,
    /// Most one firm can be granted in the year.
    pub cap_per_firm: Money,
    /// Most firms admitted in the year.
    pub firm_quota: i32,
    /// Slots left in the year's quota.
    pub quota_remaining: i32,
    /// Days after issue an unused voucher lapses.
    pub claim_validity_days: i32,
    /// No redemption after this instant.
    #[serde(with = "time::serde::rfc3339")]
    pub redeem_deadline: time::OffsetDateTime,
}

/// The current year's parameters and the quota left (anonymous).
#[utoipa::path(get, path = "/api/portal/program", tag = "portal",
    responses((status = 200, body = PublicProgram)))]
pub async fn program(State(state): State<AppState>) -> Result<Json<PublicProgram>, ApiError> {
    let year = state.clock.program_year();
    programs::ensure(&state, year).await?;
    let mut conn = state.db.acquire().await?;
    let p = programs::load(&mut conn, year)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no program year {year}")))?;
    Ok(Json(PublicProgram {
        year,
        rate: p.rate,
        cap_per_firm: p.cap_per_firm,
        firm_quota: p.firm_quota,
        quota_remaining: (p.firm_quota - p.firms_admitted).max(0),
        claim_validity_days: p.claim_validity_days,
        redeem_deadline: p.redeem_deadline,
    }))
}
