//! The bureau's voucher look-up: by code or USCC, status and year, with each voucher's
//! redemptions.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;
use voucher_core::auth::BureauSession;
use voucher_core::export::{self, Cell};
use voucher_core::extract::{Path, Query};
use voucher_core::page::{self, Page};
use voucher_core::vouchers::effective_status;
use voucher_core::{ApiError, AppState, Json, Money};

use super::redemptions::{redemptions_where, BureauRedemption, RedemptionFilter};
use super::{money, status_filter, too_many, CSV_MAX_ROWS};

const VOUCHER_STATUSES: [&str; 5] = ["active", "exhausted", "cancelled", "lapsed", "expired"];

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
#[utoipa::path(get, path = "/api/bureau/vouchers", tag = "bureau", params(VoucherQuery),
    security(("bearer" = [])),
    responses((status = 200, body = [BureauVoucher]),
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
    let start = page::LATEST;
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
    let voucher = vouchers_where(&state, &none, Some(id), page::LATEST, 1)
        .await?
        .pop()
        .ok_or_else(|| ApiError::not_found("no such voucher"))?;
    let filter = RedemptionFilter {
        voucher_id: Some(id),
        ..RedemptionFilter::default()
    };
    let redemptions = redemptions_where(&state, &filter, page::LATEST, CSV_MAX_ROWS).await?;
    Ok(Json(BureauVoucherDetail {
        voucher,
        redemptions,
    }))
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
