//! The reviewer's decision on a registration (API.md, `POST /api/bureau/firms/{id}/verification`)
//! and deleting one that squats a real firm's USCC (`DELETE /api/bureau/firms/{id}`). Only
//! reviewers decide; every step is audited with the reviewer's username.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;
use voucher_core::audit;
use voucher_core::auth::{BureauSession, Role};
use voucher_core::extract::Path;
use voucher_core::{ApiError, AppState, ErrorCode, Json};

use crate::eligibility;
use crate::firms::{district, industry_code};
use crate::review::{self, FirmDetail, Verification};

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
    Ok(Json(review::detail(&state, id).await?))
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
