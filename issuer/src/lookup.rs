//! Look-ups: the bureau's vouchers and redemptions (a hotline call about a voucher code, a
//! firm's or a platform's month), and a firm's own voucher's redemptions. Read-only; every
//! list is newest first and paged by `(time, id)` downwards (`voucher_core::page`), and each
//! bureau list has a CSV of the same filter for the finance office (`voucher_core::export`).

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;
use voucher_core::auth::{BureauSession, FirmSession};
use voucher_core::export::{self, Cell};
use voucher_core::extract::{Path, Query};
use voucher_core::page::{Page, PageParams};
use voucher_core::vouchers::effective_status;
use voucher_core::{ApiError, AppState, Json, Money};

/// The most rows a CSV of a filter holds; a wider filter is refused, to be narrowed.
pub const CSV_MAX_ROWS: i64 = 100_000;

const VOUCHER_STATUSES: [&str; 5] = ["active", "exhausted", "cancelled", "lapsed", "expired"];
const REDEMPTION_STATUSES: [&str; 2] = ["active", "reversed"];

fn money(d: rust_decimal::Decimal) -> Result<Money, ApiError> {
    Ok(Money::from_decimal(d).map_err(anyhow::Error::from)?)
}

fn status_filter(
    field: &str,
    value: Option<String>,
    known: &[&str],
) -> Result<Option<String>, ApiError> {
    match value {
        Some(s) if known.contains(&s.as_str()) => Ok(Some(s)),
        Some(_) => Err(ApiError::validation(
            field,
            format!("must be one of {}", known.join(", ")),
        )),
        None => Ok(None),
    }
}

/// Which vouchers.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VoucherQuery {
    /// A voucher code or a USCC, or the beginning of one (at least 4 characters).
    pub q: Option<String>,
    /// `active`, `exhausted`, `cancelled`, `lapsed` or `expired` (as of now).
    pub status: Option<String>,
    /// Program year.
    pub year: Option<i32>,
}

/// A voucher as the bureau sees it (no token: the bureau never presents it).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BureauVoucher {
    /// Voucher id.
    pub id: Uuid,
    /// Short code.
    pub code: String,
    /// Program year.
    pub year: i32,
    /// The firm.
    pub firm_id: Uuid,
    /// Its USCC.
    pub firm_uscc: String,
    /// Its name.
    pub firm_name: String,
    /// The bound platform.
    pub platform_id: Uuid,
    /// Its name.
    pub platform_name: String,
    /// The annual fee the firm declared.
    pub annual_fee: Money,
    /// Face value.
    pub face_value: Money,
    /// Redeemed, net of reversals.
    pub redeemed: Money,
    /// Balance.
    pub remaining: Money,
    /// `active`, `exhausted`, `cancelled`, `lapsed` or `expired`, as of now.
    pub status: String,
    /// When issued.
    #[serde(with = "time::serde::rfc3339")]
    pub issued_at: OffsetDateTime,
    /// When it lapses if still unused.
    #[serde(with = "time::serde::rfc3339")]
    pub lapses_at: OffsetDateTime,
    /// The redeem deadline.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// When cancelled, lapsed or expired.
    #[serde(with = "time::serde::rfc3339::option")]
    pub closed_at: Option<OffsetDateTime>,
}

/// A voucher with its redemptions, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BureauVoucherDetail {
    /// The voucher.
    #[serde(flatten)]
    pub voucher: BureauVoucher,
    /// Every redemption of it, reversed ones included, newest first.
    pub redemptions: Vec<BureauRedemption>,
}

struct VoucherFilter {
    q: Option<String>,
    status: Option<String>,
    year: Option<i32>,
}

impl VoucherFilter {
    fn parse(q: VoucherQuery) -> Result<VoucherFilter, ApiError> {
        let text = match q.q {
            Some(t) => {
                let t = code_with_dashes(
                    &voucher_core::text::required("q", &t, 64)?
                        .to_uppercase()
                        .replace(' ', ""),
                );
                if t.chars().count() < 4 {
                    return Err(ApiError::validation("q", "needs at least 4 characters"));
                }
                Some(t)
            }
            None => None,
        };
        Ok(VoucherFilter {
            q: text,
            status: status_filter("status", q.status, &VOUCHER_STATUSES)?,
            year: q.year,
        })
    }
}

/// A voucher code read out without its dashes (`BA26TKAQ8BNE`) as the code is stored
/// (`BA26-TKAQ-8BNE`); anything else unchanged. No USCC begins with `BA`.
fn code_with_dashes(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    if !text.starts_with("BA") || text.contains('-') || chars.len() <= 4 {
        return text.to_owned();
    }
    let mut out = String::new();
    for (i, c) in chars.iter().enumerate() {
        if i == 4 || i == 8 {
            out.push('-');
        }
        out.push(*c);
    }
    out
}

async fn vouchers_where(
    state: &AppState,
    f: &VoucherFilter,
    id: Option<Uuid>,
    before: (OffsetDateTime, Uuid),
    limit: i64,
) -> Result<Vec<BureauVoucher>, ApiError> {
    let now = state.clock.now();
    // The status as of now, as `effective_status` has it, so a filter finds what a row shows.
    let rows = sqlx::query!(
        r#"select v.id, v.code, v.year, v.firm_id, f.uscc, f.name as firm_name, v.platform_id,
                  p.name as platform_name, v.annual_fee, v.face_value, v.redeemed,
                  v.redemption_count, v.status, v.issued_at, v.lapses_at, v.expires_at, v.closed_at
           from vouchers v join firms f on f.id = v.firm_id join platforms p on p.id = v.platform_id
           where ($1::text is null or starts_with(v.code, $1) or starts_with(f.uscc, $1))
             and ($2::text is null or $2 = case
                   when v.status in ('active', 'exhausted') and $3 > v.expires_at then 'expired'
                   when v.status = 'active' and v.redemption_count = 0 and $3 > v.lapses_at
                     then 'lapsed'
                   else v.status end)
             and ($4::int is null or v.year = $4)
             and ($5::uuid is null or v.id = $5)
             and (v.issued_at, v.id) < ($6, $7)
           order by v.issued_at desc, v.id desc
           limit $8"#,
        f.q,
        f.status,
        now,
        f.year,
        id,
        before.0,
        before.1,
        limit
    )
    .fetch_all(&state.db)
    .await?;
    rows.into_iter()
        .map(|r| {
            let face_value = money(r.face_value)?;
            let redeemed = money(r.redeemed)?;
            Ok(BureauVoucher {
                id: r.id,
                code: r.code,
                year: r.year,
                firm_id: r.firm_id,
                firm_uscc: r.uscc,
                firm_name: r.firm_name,
                platform_id: r.platform_id,
                platform_name: r.platform_name,
                annual_fee: money(r.annual_fee)?,
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
                closed_at: r.closed_at,
            })
        })
        .collect()
}

/// Vouchers by code or USCC, status and year, newest first (every role).
#[utoipa::path(get, path = "/api/bureau/vouchers", tag = "bureau", params(VoucherQuery, PageParams),
    security(("bearer" = [])),
    responses((status = 200, body = [BureauVoucher],
        headers(("Link" = String, description = "`<URL>; rel=\"next\"` when more rows follow"))),
        (status = 422, body = voucher_core::error::Problem)))]
pub async fn bureau_vouchers(
    State(state): State<AppState>,
    _session: BureauSession,
    Query(q): Query<VoucherQuery>,
    page: Page,
) -> Result<(HeaderMap, Json<Vec<BureauVoucher>>), ApiError> {
    let f = VoucherFilter::parse(q)?;
    let mut rows = vouchers_where(&state, &f, None, page.before_or_end(), page.fetch()).await?;
    let headers = page.finish(&mut rows, |v| (v.issued_at, v.id));
    Ok((headers, Json(rows)))
}

/// The voucher look-up's filter as CSV (UTF-8 with BOM), every matching row, newest first.
#[utoipa::path(get, path = "/api/bureau/vouchers.csv", tag = "bureau", params(VoucherQuery),
    security(("bearer" = [])),
    responses((status = 200, content_type = "text/csv", body = String),
        (status = 422, body = voucher_core::error::Problem, description = "`validation_failed`: more than 100,000 rows; narrow the filter")))]
pub async fn bureau_vouchers_csv(
    State(state): State<AppState>,
    _session: BureauSession,
    Query(q): Query<VoucherQuery>,
) -> Result<Response, ApiError> {
    let f = VoucherFilter::parse(q)?;
    let start = Page::default_before();
    let rows = vouchers_where(&state, &f, None, start, CSV_MAX_ROWS + 1).await?;
    too_many(rows.len())?;
    let headers = [
        "消费券编码",
        "年度",
        "企业名称",
        "企业统一社会信用代码",
        "平台名称",
        "年服务费",
        "面额",
        "已核销",
        "余额",
        "状态",
        "发放时间",
        "未使用失效时间",
        "截止时间",
    ];
    let cells: Vec<Vec<Cell>> = rows
        .into_iter()
        .map(|v| {
            vec![
                Cell::Id(v.code),
                Cell::Count(v.year.into()),
                Cell::Text(v.firm_name),
                Cell::Id(v.firm_uscc),
                Cell::Text(v.platform_name),
                Cell::Amount(v.annual_fee),
                Cell::Amount(v.face_value),
                Cell::Amount(v.redeemed),
                Cell::Amount(v.remaining),
                Cell::Text(voucher_status_label(&v.status).to_owned()),
                Cell::Text(export::local_time(v.issued_at)),
                Cell::Text(export::local_time(v.lapses_at)),
                Cell::Text(export::local_time(v.expires_at)),
            ]
        })
        .collect();
    Ok(export::attachment(
        export::CSV_TYPE,
        "vouchers.csv",
        export::csv(&headers, &cells)?,
    ))
}

/// One voucher with every redemption of it (every role).
#[utoipa::path(get, path = "/api/bureau/vouchers/{id}", tag = "bureau",
    params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses((status = 200, body = BureauVoucherDetail),
        (status = 404, body = voucher_core::error::Problem)))]
pub async fn bureau_voucher(
    State(state): State<AppState>,
    _session: BureauSession,
    Path(id): Path<Uuid>,
) -> Result<Json<BureauVoucherDetail>, ApiError> {
    let none = VoucherFilter {
        q: None,
        status: None,
        year: None,
    };
    let voucher = vouchers_where(&state, &none, Some(id), Page::default_before(), 1)
        .await?
        .pop()
        .ok_or_else(|| ApiError::not_found("no such voucher"))?;
    let filter = RedemptionFilter {
        voucher_id: Some(id),
        ..RedemptionFilter::default()
    };
    let redemptions =
        redemptions_where(&state, &filter, Page::default_before(), CSV_MAX_ROWS).await?;
    Ok(Json(BureauVoucherDetail {
        voucher,
        redemptions,
    }))
}

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

#[derive(Default)]
struct RedemptionFilter {
    from: Option<OffsetDateTime>,
    to: Option<OffsetDateTime>,
    platform_id: Option<Uuid>,
    firm_id: Option<Uuid>,
    voucher_id: Option<Uuid>,
    status: Option<String>,
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

async fn redemptions_where(
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
#[utoipa::path(get, path = "/api/bureau/redemptions", tag = "bureau", params(RedemptionQuery, PageParams),
    security(("bearer" = [])),
    responses((status = 200, body = [BureauRedemption],
        headers(("Link" = String, description = "`<URL>; rel=\"next\"` when more rows follow"))),
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
    let rows = redemptions_where(&state, &f, Page::default_before(), CSV_MAX_ROWS + 1).await?;
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
    params(("id" = Uuid, Path), PageParams),
    security(("bearer" = [])),
    responses((status = 200, body = [PortalRedemption],
        headers(("Link" = String, description = "`<URL>; rel=\"next\"` when more rows follow"))),
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

fn too_many(rows: usize) -> Result<(), ApiError> {
    if rows as i64 > CSV_MAX_ROWS {
        return Err(ApiError::validation(
            "query",
            "matches more than 100,000 rows; narrow the filter",
        ));
    }
    Ok(())
}

/// A voucher's status in Chinese, for the CSV.
fn voucher_status_label(status: &str) -> &str {
    match status {
        "active" => "可用",
        "exhausted" => "已用完",
        "cancelled" => "已取消",
        "lapsed" => "未使用失效",
        "expired" => "已过期",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_read_out_without_dashes_gets_them_back() {
        for (typed, want) in [
            ("BA26TKAQ8BNE", "BA26-TKAQ-8BNE"),
            ("BA26TKAQ", "BA26-TKAQ"),
            ("BA26TK", "BA26-TK"),
            ("BA26", "BA26"),
            ("BA26-TKAQ", "BA26-TKAQ"),
            ("914403064427429123", "914403064427429123"),
        ] {
            assert_eq!(code_with_dashes(typed), want, "{typed}");
        }
    }
}
