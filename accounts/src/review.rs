//! The bureau's side of a firm's verification (API.md, "Firms"): the reviewer's queue and
//! search, a firm with its files and vouchers, the decision, and deleting a registration that
//! squats a real firm's USCC. Reviewers decide; admins may read; finance has no business here.
//! Every decision is audited with the reviewer's username.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;
use voucher_core::audit;
use voucher_core::auth::{BureauSession, Role};
use voucher_core::extract::{Path, Query};
use voucher_core::page::Page;
use voucher_core::vouchers::effective_status;
use voucher_core::{ApiError, AppState, ErrorCode, Json, Money};

use crate::eligibility;
use crate::evidence::{self, Evidence};
use crate::firms::{district, industry_code};

/// Who may read firms: reviewers, and admins for reading.
const READERS: &[Role] = &[Role::Reviewer, Role::Admin];

/// A firm's verification state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verification {
    /// Registered, waiting for the reviewer (or for its evidence).
    Pending,
    /// The reviewer compared the licence with the registration: the firm can claim.
    Verified,
    /// Refused, with a reason the firm sees; an upload makes it pending again.
    Rejected,
}

impl Verification {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Verification::Pending => "pending",
            Verification::Verified => "verified",
            Verification::Rejected => "rejected",
        }
    }
}

/// Filters of the firm list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FirmFilter {
    /// Only firms in this state (`pending` is the reviewer's queue).
    pub verification: Option<Verification>,
    /// Matches the start of a USCC or any part of a name.
    pub q: Option<String>,
    /// Rows per page, 1 to 1000 (default 1000).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// From the previous page's `Link: rel="next"`.
    pub cursor: Option<String>,
}

/// A firm in the bureau's list.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FirmRow {
    /// Firm id.
    pub id: Uuid,
    /// USCC.
    pub uscc: String,
    /// Name.
    pub name: String,
    /// Industry code (declared, or confirmed from the licence once verified).
    pub industry_code: String,
    /// District (likewise).
    pub district: String,
    /// Whether the firm may claim once verified.
    pub eligible: bool,
    /// `pending`, `verified` or `rejected`.
    pub verification: String,
    /// When it registered.
    #[serde(with = "time::serde::rfc3339")]
    pub registered_at: OffsetDateTime,
}

/// Firms, oldest registration first, so `?verification=pending` is the queue in the order
/// firms have waited (paged, see API.md Conventions).
#[utoipa::path(get, path = "/api/bureau/firms", tag = "bureau", params(FirmFilter),
    security(("bearer" = [])),
    responses((status = 200, body = [FirmRow]), (status = 403, body = voucher_core::error::Problem)))]
pub async fn list(
    State(state): State<AppState>,
    session: BureauSession,
    Query(filter): Query<FirmFilter>,
    page: Page,
) -> Result<(HeaderMap, Json<Vec<FirmRow>>), ApiError> {
    session.require(READERS)?;
    // An empty search box searches nothing: it lists everything.
    let q = filter.q.as_deref().filter(|q| !q.trim().is_empty());
    let q = voucher_core::text::optional("q", q, 200)?;
    let (after_at, after_id) = page.after_or_start();
    let mut rows = sqlx::query_as!(
        FirmRow,
        r#"select id, uscc, name, industry_code, district, eligible, verification,
                  created_at as registered_at
           from firms
           where ($1::text is null or verification = $1)
             and ($2::text is null or starts_with(uscc, upper($2)) or strpos(lower(name), lower($2)) > 0)
             and (created_at, id) > ($3, $4)
           order by created_at, id
           limit $5"#,
        filter.verification.map(Verification::as_str),
        q,
        after_at,
        after_id,
        page.fetch()
    )
    .fetch_all(&state.db)
    .await?;
    let headers = page.finish(&mut rows, |f| (f.registered_at, f.id));
    Ok((headers, Json(rows)))
}

/// A voucher of the firm, as the reviewer sees it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FirmVoucher {
    /// Voucher id.
    pub id: Uuid,
    /// Short code.
    pub code: String,
    /// Program year.
    pub year: i32,
    /// Bound platform.
    pub platform_id: Uuid,
    /// Face value.
    pub face_value: Money,
    /// Redeemed so far.
    pub redeemed: Money,
    /// `active`, `exhausted`, `cancelled`, `lapsed` or `expired`.
    pub status: String,
    /// When issued.
    #[serde(with = "time::serde::rfc3339")]
    pub issued_at: OffsetDateTime,
}

/// A firm with what the reviewer compares: declared data, files, vouchers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FirmDetail {
    /// The list's fields.
    #[serde(flatten)]
    pub firm: FirmRow,
    /// Contact person.
    pub contact_name: String,
    /// Contact phone.
    pub contact_phone: String,
    /// Why it was rejected (for `rejected`).
    pub verification_reason: Option<String>,
    /// Who made the latest decision.
    pub reviewed_by: Option<String>,
    /// When.
    #[serde(with = "time::serde::rfc3339::option")]
    pub reviewed_at: Option<OffsetDateTime>,
    /// The files, oldest first.
    pub evidence: Vec<Evidence>,
    /// The vouchers, newest first.
    pub vouchers: Vec<FirmVoucher>,
}

/// Reads a firm with its files and vouchers.
async fn detail(state: &AppState, id: Uuid) -> Result<FirmDetail, ApiError> {
    let mut conn = state.db.acquire().await?;
    let row = sqlx::query!(
        r#"select id, uscc, name, industry_code, district, eligible, verification, created_at,
                  contact_name, contact_phone, verification_reason, reviewed_by, reviewed_at
           from firms where id = $1"#,
        id
    )
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| ApiError::not_found("no such firm"))?;
    let (_, files) = evidence::files(&mut conn, id, &Page::everything()).await?;
    let now = state.clock.now();
    let money = |d| Money::from_decimal(d).map_err(anyhow::Error::from);
    let mut vouchers = Vec::new();
    for v in sqlx::query!(
        r#"select id, code, year, platform_id, face_value, redeemed, status, redemption_count,
                  issued_at, lapses_at, expires_at
           from vouchers where firm_id = $1 order by issued_at desc, id desc"#,
        id
    )
    .fetch_all(&mut *conn)
    .await?
    {
        vouchers.push(FirmVoucher {
            id: v.id,
            code: v.code,
            year: v.year,
            platform_id: v.platform_id,
            face_value: money(v.face_value)?,
            redeemed: money(v.redeemed)?,
            status: effective_status(
                &v.status,
                v.redemption_count,
                v.lapses_at,
                v.expires_at,
                now,
            )
            .to_owned(),
            issued_at: v.issued_at,
        });
    }
    Ok(FirmDetail {
        firm: FirmRow {
            id: row.id,
            uscc: row.uscc,
            name: row.name,
            industry_code: row.industry_code,
            district: row.district,
            eligible: row.eligible,
            verification: row.verification,
            registered_at: row.created_at,
        },
        contact_name: row.contact_name,
        contact_phone: row.contact_phone,
        verification_reason: row.verification_reason,
        reviewed_by: row.reviewed_by,
        reviewed_at: row.reviewed_at,
        evidence: files,
        vouchers,
    })
}

/// A firm with its `evidence` and its vouchers.
#[utoipa::path(get, path = "/api/bureau/firms/{id}", tag = "bureau", params(("id" = Uuid, Path)),
    security(("bearer" = [])),
    responses((status = 200, body = FirmDetail), (status = 403, body = voucher_core::error::Problem),
        (status = 404, body = voucher_core::error::Problem)))]
pub async fn get(
    State(state): State<AppState>,
    session: BureauSession,
    Path(id): Path<Uuid>,
) -> Result<Json<FirmDetail>, ApiError> {
    session.require(READERS)?;
    Ok(Json(detail(&state, id).await?))
}

/// The reviewer's decision.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// `verified` or `rejected`.
    pub decision: Verification,
    /// Why, for `rejected` (required then); the firm sees it.
    pub reason: Option<String>,
    /// The industry code on the licence (`verified`; default: the declared one).
    pub industry_code: Option<String>,
    /// The district on the licence (`verified`; default: the declared one).
    pub district: Option<String>,
}

/// Decides a pending registration. `verified` needs a `business_license` file; the industry
/// code and district read off the licence replace the declared ones and eligibility is
/// computed from them as at registration. `rejected` needs a `reason`. Only `pending` firms
/// are decided (a rejected firm becomes pending again when it uploads); otherwise 409
/// `invalid_transition`.
#[utoipa::path(post, path = "/api/bureau/firms/{id}/verification", tag = "bureau",
    params(("id" = Uuid, Path)), request_body = Decision, security(("bearer" = [])),
    responses((status = 200, body = FirmDetail), (status = 403, body = voucher_core::error::Problem),
        (status = 404, body = voucher_core::error::Problem),
        (status = 409, body = voucher_core::error::Problem, description = "`invalid_transition`: not pending, or no business_license file")))]
pub async fn decide(
    State(state): State<AppState>,
    session: BureauSession,
    Path(id): Path<Uuid>,
    Json(decision): Json<Decision>,
) -> Result<Json<FirmDetail>, ApiError> {
    session.require(&[Role::Reviewer])?;
    let reason = voucher_core::text::optional("reason", decision.reason.as_deref(), 500)?;
    let mut tx = state.db.begin().await?;
    let firm = sqlx::query!(
        r#"select verification, industry_code, district,
                  exists (select 1 from firm_evidence e
                          where e.firm_id = f.id and e.kind = 'business_license') as "licensed!"
           from firms f where id = $1 for update"#,
        id
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| ApiError::not_found("no such firm"))?;
    if firm.verification != "pending" {
        return Err(ApiError::new(
            ErrorCode::InvalidTransition,
            format!(
                "this firm is {}; only a pending registration is decided",
                firm.verification
            ),
        ));
    }
    let reviewer = session.actor();
    let now = state.clock.now();
    let detail = match decision.decision {
        Verification::Verified => {
            if !firm.licensed {
                return Err(ApiError::new(
                    ErrorCode::InvalidTransition,
                    "no business_license file: the firm must upload its licence first",
                ));
            }
            let code = match decision.industry_code.as_deref() {
                Some(v) => industry_code(v)?,
                None => firm.industry_code.clone(),
            };
            let district = match decision.district.as_deref() {
                Some(v) => district(v)?,
                None => firm.district.clone(),
            };
            let eligible = verify(&mut tx, id, &code, &district, &session.username, now).await?;
            serde_json::json!({"decision": "verified", "industry_code": code, "district": district,
                               "eligible": eligible, "declared_industry_code": firm.industry_code,
                               "declared_district": firm.district})
        }
        Verification::Rejected => {
            let Some(reason) = reason else {
                return Err(ApiError::validation(
                    "reason",
                    "is required to reject: the firm sees it",
                ));
            };
            sqlx::query!(
                r#"update firms set verification = 'rejected', verification_reason = $2,
                          reviewed_by = $3, reviewed_at = $4
                   where id = $1"#,
                id,
                reason,
                session.username,
                now
            )
            .execute(&mut *tx)
            .await?;
            serde_json::json!({"decision": "rejected", "reason": reason})
        }
        Verification::Pending => {
            return Err(ApiError::validation(
                "decision",
                "must be verified or rejected",
            ))
        }
    };
    audit::append(
        &mut tx,
        &reviewer,
        "firm.verification",
        Some(&format!("firm:{id}")),
        detail,
    )
    .await?;
    tx.commit().await?;
    Ok(Json(self::detail(&state, id).await?))
}

/// Marks a pending firm that has a `business_license` file `verified` with the industry code
/// and district read off the licence, eligibility computed from them as at registration;
/// answers the eligibility. The one statement decides, so a firm without a licence file, or no
/// longer pending, is refused with 409 `invalid_transition` (the decision and the demo data).
pub async fn verify(
    conn: &mut PgConnection,
    id: Uuid,
    code: &str,
    district: &str,
    reviewer: &str,
    now: OffsetDateTime,
) -> Result<bool, ApiError> {
    let eligible = eligibility::is_eligible(code, district);
    let done = sqlx::query!(
        r#"update firms set verification = 'verified', verification_reason = null,
                  industry_code = $2, district = $3, eligible = $4,
                  reviewed_by = $5, reviewed_at = $6
           where id = $1 and verification = 'pending'
             and exists (select 1 from firm_evidence e
                         where e.firm_id = $1 and e.kind = 'business_license')"#,
        id,
        code,
        district,
        eligible,
        reviewer,
        now
    )
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() != 1 {
        return Err(ApiError::new(
            ErrorCode::InvalidTransition,
            "only a pending registration with a business_license file can be verified",
        ));
    }
    Ok(eligible)
}

/// Deletes a `pending` or `rejected` registration that holds no voucher, freeing its USCC for
/// the real firm (its files, sessions and codes go with it). Anything else → 409
/// `invalid_transition`.
#[utoipa::path(delete, path = "/api/bureau/firms/{id}", tag = "bureau", params(("id" = Uuid, Path)),
    security(("bearer" = [])),
    responses((status = 204), (status = 403, body = voucher_core::error::Problem),
        (status = 404, body = voucher_core::error::Problem),
        (status = 409, body = voucher_core::error::Problem, description = "`invalid_transition`: verified, or holds vouchers")))]
pub async fn delete(
    State(state): State<AppState>,
    session: BureauSession,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    session.require(&[Role::Reviewer])?;
    let mut tx = state.db.begin().await?;
    let firm = sqlx::query!(
        r#"select uscc, name, verification from firms where id = $1 for update"#,
        id
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| ApiError::not_found("no such firm"))?;
    let refused = || {
        ApiError::new(
            ErrorCode::InvalidTransition,
            "only a pending or rejected registration without vouchers can be deleted",
        )
    };
    if firm.verification == "verified" {
        return Err(refused());
    }
    let deleted = sqlx::query!(
        r#"delete from firms
           where id = $1 and verification in ('pending', 'rejected')
             and not exists (select 1 from vouchers v where v.firm_id = $1)"#,
        id
    )
    .execute(&mut *tx)
    .await;
    match deleted {
        // A firm-year or a quota release row of an old firm: it took part in the program.
        Err(e)
            if e.as_database_error()
                .is_some_and(|d| d.is_foreign_key_violation()) =>
        {
            return Err(refused())
        }
        Err(e) => return Err(e.into()),
        Ok(done) if done.rows_affected() != 1 => return Err(refused()),
        Ok(_) => {}
    }
    audit::append(
        &mut tx,
        &session.actor(),
        "firm.delete",
        Some(&format!("firm:{id}")),
        serde_json::json!({"uscc": firm.uscc, "name": firm.name,
                           "verification": firm.verification}),
    )
    .await?;
    tx.commit().await?;
    // Its sessions are gone with it (the rows cascade); forget any this replica remembers.
    state
        .sessions
        .forget_subject(voucher_core::auth::Subject::Firm(id));
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_through_their_names() {
        for v in [
            Verification::Pending,
            Verification::Verified,
            Verification::Rejected,
        ] {
            let json = serde_json::to_value(v).unwrap();
            assert_eq!(json, v.as_str());
        }
    }
}
