//! Monthly statements (SPEC §2, "Monthly reimbursement"): close a month into one draft per
//! platform, approve (finance; locks the month's redemptions), pay (finance; journal entry).

use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;
use voucher_core::audit::{self, Actor};
use voucher_core::ledger::{self, Account, Kind, Posting};
use voucher_core::{ApiError, ErrorCode, Money};

pub use voucher_core::calendar::{month_bounds, month_of};

/// Redemptions placed in `month` ($1; $2 is the month's end) for the platforms chosen ($3; all
/// when null): active, not locked, not on a statement of another month, and belonging to this
/// month or an earlier one. A redemption belongs to the month it was made in unless its
/// platform's statement for that month is already approved (then the first later month whose is
/// not). "Or an earlier one": a redemption that committed after its month was closed (made in
/// the month on a platform without a statement then, or after the platform's draft was
/// refreshed) is placed by the next close of any later month instead of being left off every
/// statement. Once on a draft it stays there. Unlocked redemptions older than 400 days are not
/// looked for: a month stays unapproved that long only by mistake.
const PLACED: &str = r#"
    with cand as (
        select r.id, r.platform_id, r.discount, r.created_at,
               to_char(r.created_at at time zone 'Asia/Shanghai', 'YYYY-MM') as own_month
        from redemptions r
        where r.status = 'active' and not r.locked
          and r.created_at < $2 and r.created_at >= $2 - interval '400 days'
          and ($3::uuid is null or r.platform_id = $3)
          and not exists (select 1 from statement_lines l join statements o on o.id = l.statement_id
                          where l.redemption_id = r.id and o.month <> $1)),
    placed as (
        select c.id, c.platform_id, c.discount,
               case when s.id is null then c.own_month
                    else redemption_month(c.platform_id, c.created_at) end as month
        from cand c left join statements s
          on s.platform_id = c.platform_id and s.month = c.own_month and s.status <> 'draft')
    select id, platform_id, discount from placed where month <= $1"#;

/// Advisory lock key: statements are placed (closes, approvals) one transaction at a time, so
/// two of them never place one redemption on two statements. Both are rare.
const STATEMENTS_LOCK: i64 = 0x5E77_57A7;

async fn lock_statements(conn: &mut PgConnection) -> sqlx::Result<()> {
    sqlx::query!(r#"select pg_advisory_xact_lock($1)"#, STATEMENTS_LOCK)
        .execute(conn)
        .await?;
    Ok(())
}

/// Closes `month` now: one draft statement per platform with redemptions in it, refreshed if
/// it exists; approved and paid statements stay as they are. Returns nothing; read them back.
pub async fn close_month(
    pool: &PgPool,
    month: &str,
    actor: &Actor,
    at: OffsetDateTime,
) -> Result<(), ApiError> {
    let (_, end) =
        month_bounds(month).ok_or_else(|| ApiError::validation("month", "must be YYYY-MM"))?;
    let mut tx = pool.begin().await?;
    lock_statements(&mut tx).await?;
    // Drafts are refreshed under their row locks too, so an approval cannot interleave.
    sqlx::query(&format!(
        r#"with placed as ({PLACED})
           insert into statements (id, platform_id, month, created_at, refreshed_at)
           select gen_random_uuid(), platform_id, $1, $4, $4 from placed group by platform_id
           on conflict (platform_id, month) do nothing"#
    ))
    .bind(month)
    .bind(end)
    .bind(None::<Uuid>)
    .bind(at)
    .execute(&mut *tx)
    .await?;
    let drafts: Vec<Uuid> = sqlx::query_scalar!(
        r#"select id from statements where month = $1 and status = 'draft' order by id for update"#,
        month
    )
    .fetch_all(&mut *tx)
    .await?;
    sqlx::query!(
        r#"delete from statement_lines where statement_id = any($1)"#,
        &drafts
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query(&format!(
        r#"with placed as ({PLACED})
           insert into statement_lines (statement_id, redemption_id, discount)
           select s.id, p.id, p.discount from placed p
           join statements s on s.platform_id = p.platform_id and s.month = $1 and s.status = 'draft'"#
    ))
    .bind(month)
    .bind(end)
    .bind(None::<Uuid>)
    .execute(&mut *tx)
    .await?;
    refresh_totals(&mut tx, &drafts, at).await?;
    audit::append(
        &mut tx,
        actor,
        "statement.close_month",
        Some(&format!("month:{month}")),
        serde_json::json!({"drafts": drafts.len(), "at": at.to_string()}),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

async fn refresh_totals(
    conn: &mut PgConnection,
    ids: &[Uuid],
    at: OffsetDateTime,
) -> Result<(), ApiError> {
    sqlx::query!(
        r#"update statements s
           set total = coalesce((select sum(l.discount) from statement_lines l where l.statement_id = s.id), 0),
               line_count = (select count(*) from statement_lines l where l.statement_id = s.id),
               refreshed_at = $2
           where s.id = any($1)"#,
        ids,
        at
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Approves a draft: its lines are placed afresh and locked in the same transaction, so a
/// reversal either happened before (and is not on it) or is refused after (`period_closed`).
/// `at` is the approval's one time (the application clock, as the payment's).
pub async fn approve(
    pool: &PgPool,
    id: Uuid,
    actor: &Actor,
    at: OffsetDateTime,
) -> Result<(), ApiError> {
    let mut tx = pool.begin().await?;
    lock_statements(&mut tx).await?;
    let statement = sqlx::query!(
        r#"select platform_id, month, status from statements where id = $1 for update"#,
        id
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| ApiError::not_found("no such statement"))?;
    if statement.status != "draft" {
        return Err(ApiError::new(
            ErrorCode::InvalidTransition,
            format!(
                "the statement is {}; only a draft can be approved",
                statement.status
            ),
        ));
    }
    let (_, end) = month_bounds(&statement.month)
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("stored month malformed")))?;
    sqlx::query!(r#"delete from statement_lines where statement_id = $1"#, id)
        .execute(&mut *tx)
        .await?;
    sqlx::query(&format!(
        r#"with placed as ({PLACED}),
           locked as (
               update redemptions r set locked = true from placed p
               where r.id = p.id and r.status = 'active' and not r.locked
               returning r.id, r.discount)
           insert into statement_lines (statement_id, redemption_id, discount)
           select $4, id, discount from locked"#
    ))
    .bind(&statement.month)
    .bind(end)
    .bind(Some(statement.platform_id))
    .bind(id)
    .execute(&mut *tx)
    .await?;
    refresh_totals(&mut tx, &[id], at).await?;
    let actor_label = actor.label();
    sqlx::query!(
        r#"update statements set status = 'approved', approved_at = $3, approved_by = $2 where id = $1"#,
        id,
        actor_label,
        at
    )
    .execute(&mut *tx)
    .await?;
    audit::append(
        &mut tx,
        actor,
        "statement.approve",
        Some(&format!("statement:{id}")),
        serde_json::json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Records the payment of an approved statement and moves its total from payable to paid.
pub async fn pay(
    pool: &PgPool,
    id: Uuid,
    reference: &str,
    actor: &Actor,
    at: OffsetDateTime,
) -> Result<(), ApiError> {
    let reference = voucher_core::text::required("reference", reference, 100)?;
    let reference = reference.as_str();
    let mut tx = pool.begin().await?;
    let actor_label = actor.label();
    let paid = sqlx::query!(
        r#"update statements set status = 'paid', paid_at = $3, paid_by = $4, payment_reference = $2
           where id = $1 and status = 'approved' and approved_by is distinct from $4
           returning platform_id, total"#,
        id,
        reference,
        at,
        actor_label
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(paid) = paid else {
        let row = sqlx::query!(
            r#"select status, approved_by from statements where id = $1"#,
            id
        )
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| ApiError::not_found("no such statement"))?;
        if row.status == "approved" && row.approved_by.as_deref() == Some(actor_label.as_str()) {
            return Err(ApiError::new(
                ErrorCode::SeparationOfDuties,
                "you approved this statement; another finance officer records its payment",
            ));
        }
        let status = row.status;
        return Err(ApiError::new(
            ErrorCode::InvalidTransition,
            format!("the statement is {status}; only an approved statement can be paid"),
        ));
    };
    let total = Money::from_decimal(paid.total).map_err(anyhow::Error::from)?;
    // The payment is journaled in the program year(s) of the money paid: a statement carrying
    // lines of two years (December's carried into January) gets one entry per year.
    let by_year = sqlx::query!(
        r#"select r.year, sum(l.discount) as "amount!" from statement_lines l
           join redemptions r on r.id = l.redemption_id
           where l.statement_id = $1 group by r.year order by r.year"#,
        id
    )
    .fetch_all(&mut *tx)
    .await?;
    for part in by_year {
        let amount = Money::from_decimal(part.amount).map_err(anyhow::Error::from)?;
        if amount.is_zero() {
            continue;
        }
        ledger::post(
            &mut tx,
            &Posting {
                kind: Kind::Payment,
                debit: Account::Paid(paid.platform_id),
                credit: Account::Payable(paid.platform_id),
                amount,
                year: part.year,
                voucher_id: None,
                redemption_id: None,
                statement_id: Some(id),
                at,
            },
        )
        .await?;
    }
    audit::append(
        &mut tx,
        actor,
        "statement.pay",
        Some(&format!("statement:{id}")),
        serde_json::json!({"reference": reference, "total": total}),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
