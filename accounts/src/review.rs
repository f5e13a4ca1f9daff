//! The bureau's side of a firm's verification (API.md, "Firms"): the reviewer's queue and
//! search, and a firm with its files and vouchers. Reviewers and admins read; finance has no
//! business here. The decision and deleting a squatter are [`crate::decision`]'s.

use axum::extract::State;
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;
use voucher_core::auth::{BureauSession, Role};
use voucher_core::extract::{Path, Query};
use voucher_core::page::Page;
use voucher_core::vouchers::effective_status;
use voucher_core::{ApiError, AppState, Json, Money};

use crate::evidence::{self, Evidence};

/// Who may read firms: reviewers, and admins for reading.
const READERS: &[Role] = &[Role::Reviewer, Role::Admin];

/// A firm's verification state. (Named `VerificationState` in the OpenAPI document: the audit
/// log's `Verification` is another schema.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = VerificationState)]
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
pub(crate) async fn detail(state: &AppState, id: Uuid) -> Result<FirmDetail, ApiError> {
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
