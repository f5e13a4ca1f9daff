//! Statements as the bureau and the platforms read them, and their exports.

use serde::Serialize;
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;
use voucher_core::{ApiError, Money};

/// One line: a redemption on the statement.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Line {
    /// The redemption.
    pub redemption_id: Uuid,
    /// Invoice number.
    pub invoice_no: String,
    /// Contract number (evidence).
    pub contract_no: Option<String>,
    /// Period billed (evidence).
    pub billing_period: Option<String>,
    /// The voucher's code.
    pub voucher_code: String,
    /// The firm.
    pub firm_name: String,
    /// The firm's USCC.
    pub firm_uscc: String,
    /// The bill.
    pub bill_amount: Money,
    /// The discount the bureau reimburses.
    pub discount: Money,
    /// When redeemed.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// A statement with its lines.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Statement {
    /// Id.
    pub id: Uuid,
    /// The platform reimbursed.
    pub platform_id: Uuid,
    /// Its name.
    pub platform_name: String,
    /// Its USCC.
    pub platform_uscc: String,
    /// `YYYY-MM`.
    pub month: String,
    /// `draft`, `approved` or `paid`.
    pub status: String,
    /// Sum of the lines' discounts.
    pub total: Money,
    /// The lines, oldest first.
    pub lines: Vec<Line>,
    /// When approved.
    #[serde(with = "time::serde::rfc3339::option")]
    pub approved_at: Option<OffsetDateTime>,
    /// Who approved.
    pub approved_by: Option<String>,
    /// When paid.
    #[serde(with = "time::serde::rfc3339::option")]
    pub paid_at: Option<OffsetDateTime>,
    /// The payment's reference.
    pub payment_reference: Option<String>,
}

/// Which statements to read.
pub enum Filter<'a> {
    /// All of a month.
    Month(&'a str),
    /// One.
    Id(Uuid),
    /// One platform's month.
    PlatformMonth(Uuid, &'a str),
    /// A page of a month: at most `limit` statements after `(platform name, id)`, in the
    /// list's order.
    MonthPage(&'a str, (String, Uuid), i64),
}

fn money(d: rust_decimal::Decimal) -> Result<Money, ApiError> {
    Ok(Money::from_decimal(d).map_err(anyhow::Error::from)?)
}

/// Reads statements with their lines.
pub async fn load(pool: &PgPool, filter: Filter<'_>) -> Result<Vec<Statement>, ApiError> {
    let start = (String::new(), Uuid::nil());
    let (month, id, platform, (after_name, after_id), limit) = match filter {
        Filter::Month(m) => (Some(m), None, None, start, i64::MAX),
        Filter::Id(id) => (None, Some(id), None, start, 1),
        Filter::PlatformMonth(p, m) => (Some(m), None, Some(p), start, i64::MAX),
        Filter::MonthPage(m, after, limit) => (Some(m), None, None, after, limit),
    };
    let heads = sqlx::query!(
        r#"select s.id, s.platform_id, p.name, p.uscc, s.month, s.status, s.total, s.approved_at,
                  s.approved_by, s.paid_at, s.payment_reference
           from statements s join platforms p on p.id = s.platform_id
           where ($1::text is null or s.month = $1) and ($2::uuid is null or s.id = $2)
             and ($3::uuid is null or s.platform_id = $3)
             and (p.name, s.id) > ($4, $5)
           order by p.name, s.id
           limit $6"#,
        month,
        id,
        platform,
        after_name,
        after_id,
        limit
    )
    .fetch_all(pool)
    .await?;
    let ids: Vec<Uuid> = heads.iter().map(|h| h.id).collect();
    let lines = sqlx::query!(
        r#"select l.statement_id, r.id, r.invoice_no, r.contract_no, r.billing_period, v.code,
                  f.name, f.uscc, r.bill_amount, l.discount, r.created_at
           from statement_lines l
           join redemptions r on r.id = l.redemption_id
           join vouchers v on v.id = r.voucher_id
           join firms f on f.id = r.firm_id
           where l.statement_id = any($1)
           order by r.created_at, r.id"#,
        &ids
    )
    .fetch_all(pool)
    .await?;
    let mut out = Vec::with_capacity(heads.len());
    for h in heads {
        let mut mine = Vec::new();
        for l in lines.iter().filter(|l| l.statement_id == h.id) {
            mine.push(Line {
                redemption_id: l.id,
                invoice_no: l.invoice_no.clone(),
                contract_no: l.contract_no.clone(),
                billing_period: l.billing_period.clone(),
                voucher_code: l.code.clone(),
                firm_name: l.name.clone(),
                firm_uscc: l.uscc.clone(),
                bill_amount: money(l.bill_amount)?,
                discount: money(l.discount)?,
                created_at: l.created_at,
            });
        }
        out.push(Statement {
            id: h.id,
            platform_id: h.platform_id,
            platform_name: h.name,
            platform_uscc: h.uscc,
            month: h.month,
            status: h.status,
            total: money(h.total)?,
            lines: mine,
            approved_at: h.approved_at,
            approved_by: h.approved_by,
            paid_at: h.paid_at,
            payment_reference: h.payment_reference,
        });
    }
    Ok(out)
}

/// The export's column headers (Chinese, for the finance office).
pub const HEADERS: [&str; 11] = [
    "平台名称",
    "平台统一社会信用代码",
    "企业名称",
    "企业统一社会信用代码",
    "消费券编码",
    "发票号",
    "合同号",
    "账期",
    "账单金额",
    "抵扣金额(补贴)",
    "核销时间",
];

fn row(s: &Statement, l: &Line) -> [String; 11] {
    [
        s.platform_name.clone(),
        s.platform_uscc.clone(),
        l.firm_name.clone(),
        l.firm_uscc.clone(),
        l.voucher_code.clone(),
        l.invoice_no.clone(),
        l.contract_no.clone().unwrap_or_default(),
        l.billing_period.clone().unwrap_or_default(),
        l.bill_amount.to_string(),
        l.discount.to_string(),
        l.created_at
            .to_offset(voucher_core::state::SHANGHAI)
            .format(time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute]:[second]"
            ))
            .unwrap_or_default(),
    ]
}

fn bill_total(s: &Statement) -> Money {
    s.lines.iter().fold(Money::ZERO, |acc, l| {
        acc.checked_add(l.bill_amount).unwrap_or(acc)
    })
}

/// The lines as CSV (UTF-8 with a byte-order mark, so spreadsheet programs read the Chinese).
pub fn csv(s: &Statement) -> Result<Vec<u8>, ApiError> {
    let mut out = "\u{feff}".as_bytes().to_vec();
    {
        let mut w = csv::Writer::from_writer(&mut out);
        w.write_record(HEADERS).map_err(anyhow::Error::from)?;
        for l in &s.lines {
            w.write_record(row(s, l)).map_err(anyhow::Error::from)?;
        }
        let bills = bill_total(s).to_string();
        let total = s.total.to_string();
        let count = format!("{} 笔", s.lines.len());
        w.write_record([
            "合计",
            "",
            "",
            "",
            "",
            count.as_str(),
            "",
            "",
            bills.as_str(),
            total.as_str(),
            "",
        ])
        .map_err(anyhow::Error::from)?;
        w.flush().map_err(anyhow::Error::from)?;
    }
    Ok(out)
}

/// The lines as an XLSX workbook.
pub fn xlsx(s: &Statement) -> Result<Vec<u8>, ApiError> {
    use rust_xlsxwriter::{Format, Workbook};
    let fail = |e: rust_xlsxwriter::XlsxError| ApiError::internal(anyhow::anyhow!("xlsx: {e}"));
    let mut book = Workbook::new();
    let sheet = book.add_worksheet();
    sheet.set_name(&s.month).map_err(fail)?;
    let bold = Format::new().set_bold();
    let amount = Format::new().set_num_format("#,##0.00");
    for (c, h) in HEADERS.iter().enumerate() {
        sheet
            .write_string_with_format(0, c as u16, *h, &bold)
            .map_err(fail)?;
    }
    let mut r = 1u32;
    for l in &s.lines {
        let cells = row(s, l);
        for (c, value) in cells.iter().enumerate() {
            if c == 8 || c == 9 {
                // Amounts as numbers for the spreadsheet's sums; the text is exact to the fen.
                let n: f64 = value.parse().unwrap_or(0.0);
                sheet
                    .write_number_with_format(r, c as u16, n, &amount)
                    .map_err(fail)?;
            } else {
                sheet.write_string(r, c as u16, value).map_err(fail)?;
            }
        }
        r += 1;
    }
    sheet
        .write_string_with_format(r, 0, "合计", &bold)
        .map_err(fail)?;
    sheet
        .write_string(r, 5, format!("{} 笔", s.lines.len()))
        .map_err(fail)?;
    let bills: f64 = bill_total(s).to_string().parse().unwrap_or(0.0);
    let total: f64 = s.total.to_string().parse().unwrap_or(0.0);
    sheet
        .write_number_with_format(r, 8, bills, &amount)
        .map_err(fail)?;
    sheet
        .write_number_with_format(r, 9, total, &amount)
        .map_err(fail)?;
    sheet.set_column_width(0, 24).map_err(fail)?;
    sheet.set_column_width(2, 30).map_err(fail)?;
    for c in [1u16, 3, 4, 5, 6, 10] {
        sheet.set_column_width(c, 22).map_err(fail)?;
    }
    book.save_to_buffer().map_err(fail)
}
