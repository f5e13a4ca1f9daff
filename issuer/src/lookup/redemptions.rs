//! The bureau's redemption look-up (by month, platform, firm and status) and a firm's own
//! voucher's redemptions.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;
use voucher_core::auth::{BureauSession, FirmSession};
use voucher_core::export::{self, Cell};
use voucher_core::extract::{Path, Query};
use voucher_core::page::{self, Page};
use voucher_core::{ApiError, AppState, Json, Money};

use super::{money, status_filter, too_many, CSV_MAX_ROWS};

const REDEMPTION_STATUSES: [&str; 2] = ["active", "reversed"];

/// Which redemptions.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RedemptionQuery {
    /// `YYYY-MM`, Asia/Shanghai: made in that month.
    pub month: Option<String>,
    /// The platform that redeemed.
    pub platform_id: Option<Uuid>,
    /// The firm whose voucher it was.
    pub firm_id: Option<Uuid>,
    /// `active` or `reversed`.
    pub status: Option<String>,
}

/// A redemption as the bureau sees it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BureauRedemption {
    /// Redemption id.
    pub id: Uuid,
    /// The voucher.
    pub voucher_id: Uuid,
    /// Its code.
    pub voucher_code: String,
    /// The firm.
    pub firm_id: Uuid,
    /// Its name.
    pub firm_name: String,
    /// Its USCC.
    pub firm_uscc: String,
    /// The platform.
    pub platform_id: Uuid,
    /// Its name.
    pub platform_name: String,
    /// Invoice number.
    pub invoice_no: String,
    /// Contract number (evidence).
    pub contract_no: Option<String>,
    /// Period billed (evidence).
    pub billing_period: Option<String>,
    /// The bill.
    pub bill_amount: Money,
    /// The discount.
    pub discount: Money,
    /// `active` or `reversed`.
    pub status: String,
    /// When redeemed.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When reversed.
    #[serde(with = "time::serde::rfc3339::option")]
    pub reversed_at: Option<OffsetDateTime>,
    /// Why reversed.
    pub reversal_reason: Option<String>,
}

/// Which redemptions, parsed.
#[derive(Default)]
pub(crate) struct RedemptionFilter {
    pub(crate) from: Option<OffsetDateTime>,
    pub(crate) to: Option<OffsetDateTime>,
    pub(crate) platform_id: Option<Uuid>,
    pub(crate) firm_id: Option<Uuid>,
    pub(crate) voucher_id: Option<Uuid>,
    pub(crate) status: Option<String>,
}

impl RedemptionFilter {
    fn parse(q: RedemptionQuery) -> Result<RedemptionFilter, ApiError> {
        let (from, to) = match q.month.as_deref() {
            Some(m) => {
                let (from, to) = voucher_core::calendar::month_bounds(m)
                    .ok_or_else(|| ApiError::validation("month", "must be YYYY-MM"))?;
                (Some(from), Some(to))
            }
            None => (None, None),
        };
        Ok(RedemptionFilter {
            from,
            to,
            platform_id: q.platform_id,
            firm_id: q.firm_id,
            voucher_id: None,
            status: status_filter("status", q.status, &REDEMPTION_STATUSES)?,
        })
    }
}

/// The redemptions `f` selects, newest first, below `before`.
pub(crate) async fn redemptions_where(
    state: &AppState,
    f: &RedemptionFilter,
    before: (OffsetDateTime, Uuid),
    limit: i64,
) -> Result<Vec<BureauRedemption>, ApiError> {
    let rows = sqlx::query!(
        r#"select r.id, r.voucher_id, v.code, r.firm_id, f.name as firm_name, f.uscc,
                  r.platform_id, p.name as platform_name, r.invoice_no, r.contract_no,
                  r.billing_period, r.bill_amount, r.discount, r.status, r.created_at,
                  r.reversed_at, r.reversal_reason
           from redemptions r join vouchers v on v.id = r.voucher_id
             join firms f on f.id = r.firm_id join platforms p on p.id = r.platform_id
           where ($1::timestamptz is null or r.created_at >= $1)
             and ($2::timestamptz is null or r.created_at < $2)
             and ($3::uuid is null or r.platform_id = $3)
             and ($4::uuid is null or r.firm_id = $4)
             and ($5::uuid is null or r.voucher_id = $5)
             and ($6::text is null or r.status = $6)
             and (r.created_at, r.id) < ($7, $8)
           order by r.created_at desc, r.id desc
           limit $9"#,
        f.from,
        f.to,
        f.platform_id,
        f.firm_id,
        f.voucher_id,
        f.status,
        before.0,
        before.1,
        limit
    )
    .fetch_all(&state.db)
    .await?;
    rows.into_iter()
        .map(|r| {
            Ok(BureauRedemption {
                id: r.id,
                voucher_id: r.voucher_id,
                voucher_code: r.code,
                firm_id: r.firm_id,
                firm_name: r.firm_name,
                firm_uscc: r.uscc,
                platform_id: r.platform_id,
                platform_name: r.platform_name,
                invoice_no: r.invoice_no,
                contract_no: r.contract_no,
                billing_period: r.billing_period,
                bill_amount: money(r.bill_amount)?,
                discount: money(r.discount)?,
                status: r.status,
                created_at: r.created_at,
                reversed_at: r.reversed_at,
                reversal_reason: r.reversal_reason,
            })
        })
        .collect()
}

/// Redemptions by month, platform, firm and status, newest first (every role).
#[utoipa::path(get, path = "/api/bureau/redemptions", tag = "bureau", params(RedemptionQuery),
    security(("bearer" = [])),
    responses((status = 200, body = [BureauRedemption]),
        (status = 422, body = voucher_core::error::Problem)))]
pub async fn bureau_redemptions(
    State(state): State<AppState>,
    _session: BureauSession,
    Query(q): Query<RedemptionQuery>,
    page: Page,
) -> Result<(HeaderMap, Json<Vec<BureauRedemption>>), ApiError> {
    let f = RedemptionFilter::parse(q)?;
    let mut rows = redemptions_where(&state, &f, page.before_or_end(), page.fetch()).await?;
    let headers = page.finish(&mut rows, |r| (r.created_at, r.id));
    Ok((headers, Json(rows)))
}

/// The redemption look-up's filter as CSV (UTF-8 with BOM), every matching row, newest first.
#[utoipa::path(get, path = "/api/bureau/redemptions.csv", tag = "bureau", params(RedemptionQuery),
    security(("bearer" = [])),
    responses((status = 200, content_type = "text/csv", body = String),
        (status = 422, body = voucher_core::error::Problem, description = "`validation_failed`: more than 100,000 rows; narrow the filter")))]
pub async fn bureau_redemptions_csv(
    State(state): State<AppState>,
    _session: BureauSession,
    Query(q): Query<RedemptionQuery>,
) -> Result<Response, ApiError> {
    let f = RedemptionFilter::parse(q)?;
    let rows = redemptions_where(&state, &f, page::LATEST, CSV_MAX_ROWS + 1).await?;
    too_many(rows.len())?;
    let headers = [
        "核销时间",
        "平台名称",
        "企业名称",
        "企业统一社会信用代码",
        "消费券编码",
        "发票号",
        "合同号",
        "账期",
        "账单金额",
        "抵扣金额(补贴)",
        "状态",
        "撤销时间",
        "撤销原因",
    ];
    let cells: Vec<Vec<Cell>> = rows
        .into_iter()
        .map(|r| {
            vec![
                Cell::Text(export::local_time(r.created_at)),
                Cell::Text(r.platform_name),
                Cell::Text(r.firm_name),
                Cell::Id(r.firm_uscc),
                Cell::Id(r.voucher_code),
                Cell::Id(r.invoice_no),
                Cell::Id(r.contract_no.unwrap_or_default()),
                Cell::Id(r.billing_period.unwrap_or_default()),
                Cell::Amount(r.bill_amount),
                Cell::Amount(r.discount),
                Cell::Text(
                    if r.status == "reversed" {
                        "已撤销"
                    } else {
                        "有效"
                    }
                    .to_owned(),
                ),
                r.reversed_at
                    .map(|t| Cell::Text(export::local_time(t)))
                    .unwrap_or(Cell::Empty),
                r.reversal_reason.map(Cell::Text).unwrap_or(Cell::Empty),
            ]
        })
        .collect();
    Ok(export::attachment(
        export::CSV_TYPE,
        "redemptions.csv",
        export::csv(&headers, &cells)?,
    ))
}

/// A redemption of the firm's voucher, as the firm sees it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PortalRedemption {
    /// Redemption id.
    pub id: Uuid,
    /// The platform that redeemed.
    pub platform_name: String,
    /// The platform's invoice number.
    pub invoice_no: String,
    /// The bill.
    pub bill_amount: Money,
    /// The voucher's discount on it.
    pub discount: Money,
    /// `active` or `reversed`.
    pub status: String,
    /// When redeemed.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When reversed (the invoice voided; the discount went back to the voucher).
    #[serde(with = "time::serde::rfc3339::option")]
    pub reversed_at: Option<OffsetDateTime>,
}

/// The redemptions of one of the firm's vouchers, newest first; another firm's voucher is
/// `not_found`.
#[utoipa::path(get, path = "/api/portal/vouchers/{id}/redemptions", tag = "portal",
    params(("id" = Uuid, Path)),
    security(("bearer" = [])),
    responses((status = 200, body = [PortalRedemption]),
        (status = 404, body = voucher_core::error::Problem)))]
pub async fn portal_redemptions(
    State(state): State<AppState>,
    session: FirmSession,
    Path(id): Path<Uuid>,
    page: Page,
) -> Result<(HeaderMap, Json<Vec<PortalRedemption>>), ApiError> {
    let mine = sqlx::query_scalar!(
        r#"select exists (select 1 from vouchers where id = $1 and firm_id = $2) as "mine!""#,
        id,
        session.firm_id
    )
    .fetch_one(&state.db)
    .await?;
    if !mine {
        return Err(ApiError::not_found("no such voucher"));
    }
    let filter = RedemptionFilter {
        voucher_id: Some(id),
        ..RedemptionFilter::default()
    };
    let mut rows = redemptions_where(&state, &filter, page.before_or_end(), page.fetch())
        .await?
        .into_iter()
        .map(|r| PortalRedemption {
            id: r.id,
            platform_name: r.platform_name,
            invoice_no: r.invoice_no,
            bill_amount: r.bill_amount,
            discount: r.discount,
            status: r.status,
            created_at: r.created_at,
            reversed_at: r.reversed_at,
        })
        .collect();
    let headers = page.finish(&mut rows, |r| (r.created_at, r.id));
    Ok((headers, Json(rows)))
}
