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
