//! The day's invariants (SPEC §2, step 2), computed from the journal and the rows as they stood
//! at the end of the business day, never from the cached counters they guard. A broken one is
//! reported and alerted on (error log, metric, audit entry); money is never corrected here.

use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use time::{Date, OffsetDateTime};

/// One invariant and what was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Invariant {
    /// Stable name.
    pub name: String,
    /// Whether it holds.
    pub ok: bool,
    /// What was checked, and on failure the first offenders.
    pub detail: String,
}

fn finding(name: &str, checked: i64, what: &str, offenders: Vec<String>) -> Invariant {
    let ok = offenders.is_empty();
    let detail = if ok {
        format!("{checked} {what} checked; all hold")
    } else {
        let shown: Vec<&str> = offenders.iter().take(5).map(String::as_str).collect();
        format!(
            "{} of {checked} {what} broken: {}{}",
            offenders.len(),
            shown.join("; "),
            if offenders.len() > 5 { "; ..." } else { "" }
        )
    };
    Invariant {
        name: name.to_owned(),
        ok,
        detail,
    }
}

/// Every invariant for the business day [`start`, `cutoff`).
pub async fn check(
    pool: &PgPool,
    _date: Date,
    start: OffsetDateTime,
    cutoff: OffsetDateTime,
) -> anyhow::Result<Vec<Invariant>> {
    let mut out = Vec::new();

    // Every journal entry is a balanced transfer of a positive amount between two accounts.
    let journal = sqlx::query!(
        r#"select count(*) as "checked!",
                  coalesce(array_agg(id::text) filter (where amount <= 0 or debit = credit), '{}') as "bad!"
           from journal where created_at >= $1 and created_at < $2"#,
        start,
        cutoff
    )
    .fetch_one(pool)
    .await?;
    out.push(finding(
        "journal_balanced",
        journal.checked,
        "journal entries of the day",
        journal
            .bad
            .into_iter()
            .map(|id| format!("entry {id}"))
            .collect(),
    ));

    // Per voucher touched that day: the journal balance equals what the rows say, and what was
    // redeemed does not exceed the face value.
    let vouchers = sqlx::query!(
        r#"with touched as (
               select voucher_id as id from journal
               where created_at >= $1 and created_at < $2 and voucher_id is not null
               union
               select voucher_id from redemptions
               where (created_at >= $1 and created_at < $2) or (reversed_at >= $1 and reversed_at < $2)),
           rows as (
               select v.id, v.face_value,
                      coalesce((select sum(r.discount) from redemptions r
                                where r.voucher_id = v.id and r.created_at < $2
                                  and not (r.status = 'reversed' and r.reversed_at < $2)), 0) as redeemed,
                      v.issued_at < $2 as issued,
                      v.closed_at is not null and v.closed_at < $2 as closed,
                      v.status
               from vouchers v join touched t on t.id = v.id),
           journal as (
               select j.voucher_id as id,
                      sum(case when j.debit = 'voucher:' || j.voucher_id then j.amount
                               when j.credit = 'voucher:' || j.voucher_id then -j.amount else 0 end) as balance
               from journal j join touched t on t.id = j.voucher_id
               where j.created_at < $2
               group by j.voucher_id)
           select r.id, r.face_value, r.redeemed, coalesce(j.balance, 0) as "balance!",
                  case when not r.issued or r.closed then 0 else r.face_value - r.redeemed end as "expected!"
           from rows r left join journal j on j.id = r.id"#,
        start,
        cutoff
    )
    .fetch_all(pool)
    .await?;
    let checked = vouchers.len() as i64;
    out.push(finding(
        "voucher_balance_matches_journal",
        checked,
        "vouchers touched",
        vouchers
            .iter()
            .filter(|v| v.balance != v.expected)
            .map(|v| {
                format!(
                    "voucher {}: journal {:.2}, rows {:.2}",
                    v.id, v.balance, v.expected
                )
            })
            .collect(),
    ));
    out.push(finding(
        "voucher_redeemed_within_face_value",
        checked,
        "vouchers touched",
        vouchers
            .iter()
            .filter_map(|v| {
                let redeemed = v.redeemed?;
                (redeemed > v.face_value).then(|| {
                    format!(
                        "voucher {}: redeemed {redeemed:.2} of face value {:.2}",
                        v.id, v.face_value
                    )
                })
            })
            .collect(),
    ));

    // Per firm and year touched that day: what was granted stays within the cap.
    let firms = sqlx::query!(
        r#"with touched as (
               select distinct v.firm_id, v.year from vouchers v
               where v.id in (select voucher_id from journal
                              where created_at >= $1 and created_at < $2 and voucher_id is not null)),
           granted as (
               select v.firm_id, v.year,
                      sum(case when v.issued_at >= $2 then 0
                               when v.closed_at is not null and v.closed_at < $2 and v.status = 'expired'
                                    then (select coalesce(sum(r.discount), 0) from redemptions r
                                          where r.voucher_id = v.id and r.status = 'active')
                               when v.closed_at is not null and v.closed_at < $2 then 0
                               else v.face_value end) as granted
               from vouchers v join touched t on t.firm_id = v.firm_id and t.year = v.year
               group by v.firm_id, v.year)
           select g.firm_id, g.year, g.granted as "granted!", f.cap
           from granted g join firm_years f on f.firm_id = g.firm_id and f.year = g.year"#,
        start,
        cutoff
    )
    .fetch_all(pool)
    .await?;
    out.push(finding(
        "firm_granted_within_cap",
        firms.len() as i64,
        "firm-years touched",
        firms
            .iter()
            .filter(|f| f.granted > f.cap)
            .map(|f| {
                format!(
                    "firm {} in {}: granted {:.2} over cap {:.2}",
                    f.firm_id, f.year, f.granted, f.cap
                )
            })
            .collect(),
    ));

    // Every discount of the day is at most floor_fen(bill × rate).
    let discounts = sqlx::query!(
        r#"select count(*) as "checked!",
                  coalesce(array_agg(r.id::text || ': ' || r.discount::text || ' on a bill of ' || r.bill_amount::text)
                           filter (where r.discount > trunc(r.bill_amount * p.rate, 2)), '{}') as "bad!"
           from redemptions r join program_years p on p.year = r.year
           where r.created_at >= $1 and r.created_at < $2"#,
        start,
        cutoff
    )
    .fetch_one(pool)
    .await?;
    out.push(finding(
        "discount_within_rate",
        discounts.checked,
        "redemptions of the day",
        discounts
            .bad
            .into_iter()
            .map(|d| format!("redemption {d}"))
            .collect(),
    ));

    // Distinct admitted firms within each year's quota, and the counter agreeing with them.
    let quota = sqlx::query!(
        r#"select p.year, p.firm_quota, p.firms_admitted,
                  (select count(*) from firm_years f where f.year = p.year and f.admitted) as "admitted!"
           from program_years p order by p.year"#
    )
    .fetch_all(pool)
    .await?;
    out.push(finding(
        "admitted_firms_within_quota",
        quota.len() as i64,
        "program years",
        quota
            .iter()
            .filter(|q| {
                q.admitted > i64::from(q.firm_quota) || q.admitted != i64::from(q.firms_admitted)
            })
            .map(|q| {
                format!(
                    "{}: {} firms admitted (counter {}), quota {}",
                    q.year, q.admitted, q.firms_admitted, q.firm_quota
                )
            })
            .collect(),
    ));

    // No invoice redeemed twice by one platform.
    let invoices = sqlx::query!(
        r#"select count(*) as "checked!",
                  coalesce(array_agg(d.invoice_no) filter (where exists (
                      select 1 from redemptions o
                      where o.platform_id = d.platform_id and o.invoice_no = d.invoice_no and o.id <> d.id)), '{}') as "bad!"
           from redemptions d where d.created_at >= $1 and d.created_at < $2"#,
        start,
        cutoff
    )
    .fetch_one(pool)
    .await?;
    out.push(finding(
        "invoice_redeemed_once",
        invoices.checked,
        "redemptions of the day",
        invoices
            .bad
            .into_iter()
            .map(|i| format!("invoice {i}"))
            .collect(),
    ));

    // Every redemption of the day has its journal entry, and every reversal of the day its own.
    let journaled = sqlx::query!(
        r#"with day as (
               select id, 'redeem' as kind from redemptions where created_at >= $1 and created_at < $2
               union all
               select id, 'reversal' from redemptions where reversed_at >= $1 and reversed_at < $2),
           entries as (
               select redemption_id, kind, count(*) as n from journal
               where redemption_id is not null and created_at >= $1 - interval '1 day'
               group by redemption_id, kind)
           select count(*) as "checked!",
                  coalesce(array_agg(d.kind || ' of ' || d.id::text) filter (where coalesce(e.n, 0) <> 1), '{}') as "bad!"
           from day d left join entries e on e.redemption_id = d.id and e.kind = d.kind"#,
        start,
        cutoff
    )
    .fetch_one(pool)
    .await?;
    out.push(finding(
        "redemptions_journaled",
        journaled.checked,
        "redemptions and reversals of the day",
        journaled
            .bad
            .into_iter()
            .map(|b| format!("no single journal entry for the {b}"))
            .collect(),
    ));
    Ok(out)
}

/// Raises the alarm for a broken invariant: an error-level log with the details, a metric and
/// an audit entry. Nothing is corrected.
pub async fn alert(pool: &PgPool, date: Date, broken: &Invariant) -> anyhow::Result<()> {
    tracing::error!(
        settlement.business_date = %date,
        invariant.name = %broken.name,
        invariant.detail = %broken.detail,
        "settlement invariant broken"
    );
    crate::metrics::INVARIANTS_BROKEN
        .with_label_values(&[broken.name.as_str()])
        .inc();
    sqlx::query!(
        r#"insert into audit_log (actor, action, subject, detail)
           values ('system', 'settlement.invariant_broken', $1, $2)"#,
        format!("settlement:{date}"),
        serde_json::json!({"invariant": broken.name, "detail": broken.detail})
    )
    .execute(pool)
    .await?;
    Ok(())
}
