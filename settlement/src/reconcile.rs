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

/// The names of the invariants [`check`] reports, in its order.
pub const NAMES: [&str; 10] = [
    "admitted_firms_are_holders",
    "admitted_firms_within_quota",
    "firm_granted_within_cap",
    "voucher_redeemed_matches_redemptions",
    "voucher_balance_matches_journal",
    "voucher_redeemed_within_face_value",
    "discount_within_rate",
    "redemptions_journaled",
    "invoice_redeemed_once",
    "program_totals_match_journal",
];

/// Every invariant for the business day [`start`, `cutoff`).
///
/// Each is checked from first principles (the redemptions, the vouchers' lives, the journal, the
/// program's parameters in force), never by comparing two counters that every writer moves
/// together, nor against a constraint the tables already enforce. Each query is one statement,
/// so it sees one consistent snapshot while claims and redemptions go on. What can be dated
/// (holdings, grants, balances) is taken as of the end of the business day; the counters that
/// only exist as current values (`admitted`, `firms_admitted`, `vouchers.redeemed`, the firm-year
/// totals) are compared with what the rows say now.
pub async fn check(
    pool: &PgPool,
    _date: Date,
    start: OffsetDateTime,
    cutoff: OffsetDateTime,
) -> anyhow::Result<Vec<Invariant>> {
    let mut out = Vec::new();
    quota(pool, cutoff, &mut out).await?;
    caps(pool, cutoff, &mut out).await?;
    vouchers(pool, start, cutoff, &mut out).await?;
    redemptions(pool, start, cutoff, &mut out).await?;
    totals(pool, start, cutoff, &mut out).await?;
    Ok(out)
}

/// A firm takes a quota slot while it holds a live voucher or has redeemed that year (SPEC §2,
/// "Claim", "Cancellation and lapse"): the admitted flags must be exactly those firms, the
/// counter their number, and the firms holding a slot at the end of the day within the quota.
async fn quota(
    pool: &PgPool,
    cutoff: OffsetDateTime,
    out: &mut Vec<Invariant>,
) -> anyhow::Result<()> {
    let years = sqlx::query!(
        r#"with holders as (
               select distinct v.firm_id, v.year from vouchers v
               where v.status in ('active', 'exhausted')
                  or exists (select 1 from redemptions r where r.voucher_id = v.id)),
           held_at_cutoff as (
               select distinct v.firm_id, v.year from vouchers v
               where v.issued_at < $1
                 and (v.closed_at is null or v.closed_at >= $1
                      or exists (select 1 from redemptions r where r.voucher_id = v.id and r.created_at < $1))),
           flagged as (select firm_id, year from firm_years where admitted),
           mismatched as (
               select coalesce(h.year, f.year) as year,
                      'firm ' || coalesce(h.firm_id, f.firm_id)::text
                        || case when f.firm_id is null then ' holds a live voucher or a redemption but is not admitted'
                                else ' is admitted but holds no live voucher and never redeemed' end as what
               from holders h full join flagged f on f.firm_id = h.firm_id and f.year = h.year
               where h.firm_id is null or f.firm_id is null)
           select p.year, p.firm_quota, p.firms_admitted,
                  (select count(*) from flagged f where f.year = p.year) as "flagged!",
                  (select count(*) from holders h where h.year = p.year) as "holders!",
                  (select count(*) from held_at_cutoff h where h.year = p.year) as "held_at_cutoff!",
                  coalesce((select array_agg(m.what order by m.what) from mismatched m where m.year = p.year),
                           '{}') as "mismatched!"
           from program_years p order by p.year"#,
        cutoff
    )
    .fetch_all(pool)
    .await?;
    let mut holders = Vec::new();
    let mut within = Vec::new();
    for y in &years {
        holders.extend(y.mismatched.iter().map(|m| format!("{}: {m}", y.year)));
        if i64::from(y.firms_admitted) != y.flagged {
            holders.push(format!(
                "{}: the counter says {} firms admitted, {} firm-years are flagged admitted",
                y.year, y.firms_admitted, y.flagged
            ));
        }
        let quota = i64::from(y.firm_quota);
        if y.held_at_cutoff > quota || y.holders > quota || y.flagged > quota {
            within.push(format!(
                "{}: {} firms held a slot at the end of the day, {} hold one now, {} are flagged admitted; quota {}",
                y.year, y.held_at_cutoff, y.holders, y.flagged, y.firm_quota
            ));
        }
    }
    out.push(finding(
        "admitted_firms_are_holders",
        years.len() as i64,
        "program years",
        holders,
    ));
    out.push(finding(
        "admitted_firms_within_quota",
        years.len() as i64,
        "program years",
        within,
    ));
    Ok(())
}

/// What each firm was granted at the end of the day, from its vouchers' lives, within the
/// program's cap in force (not the firm-year's copy of it, which could go stale).
async fn caps(
    pool: &PgPool,
    cutoff: OffsetDateTime,
    out: &mut Vec<Invariant>,
) -> anyhow::Result<()> {
    let firms = sqlx::query!(
        r#"with granted as (
               select v.firm_id, v.year,
                      sum(case when v.issued_at >= $1 then 0
                               when v.closed_at is not null and v.closed_at < $1 and v.status = 'expired'
                                    then (select coalesce(sum(r.discount), 0) from redemptions r
                                          where r.voucher_id = v.id and r.status = 'active')
                               when v.closed_at is not null and v.closed_at < $1 then 0
                               else v.face_value end) as granted
               from vouchers v group by v.firm_id, v.year)
           select g.firm_id, g.year, g.granted as "granted!", p.cap_per_firm
           from granted g join program_years p on p.year = g.year
           order by g.year, g.firm_id"#,
        cutoff
    )
    .fetch_all(pool)
    .await?;
    out.push(finding(
        "firm_granted_within_cap",
        firms.len() as i64,
        "firm-years",
        firms
            .iter()
            .filter(|f| f.granted > f.cap_per_firm)
            .map(|f| {
                format!(
                    "firm {} in {}: granted {:.2} over the program's cap {:.2}",
                    f.firm_id, f.year, f.granted, f.cap_per_firm
                )
            })
            .collect(),
    ));
    Ok(())
}

/// Per voucher touched that day: its `redeemed` counter equals its active redemptions now; its
/// journal account at the end of the day equals what its redemptions then left on it (nothing
/// once closed); and what was redeemed never exceeded its face value.
async fn vouchers(
    pool: &PgPool,
    start: OffsetDateTime,
    cutoff: OffsetDateTime,
    out: &mut Vec<Invariant>,
) -> anyhow::Result<()> {
    let vouchers = sqlx::query!(
        r#"with touched as (
               select voucher_id as id from journal
               where created_at >= $1 and created_at < $2 and voucher_id is not null
               union
               select voucher_id from redemptions
               where (created_at >= $1 and created_at < $2) or (reversed_at >= $1 and reversed_at < $2)),
           rows as (
               select v.id, v.face_value, v.redeemed as counter,
                      coalesce((select sum(r.discount) from redemptions r
                                where r.voucher_id = v.id and r.status = 'active'), 0) as redeemed_now,
                      coalesce((select sum(r.discount) from redemptions r
                                where r.voucher_id = v.id and r.created_at < $2
                                  and not (r.status = 'reversed' and r.reversed_at < $2)), 0) as redeemed,
                      v.issued_at < $2 as issued,
                      v.closed_at is not null and v.closed_at < $2 as closed
               from vouchers v join touched t on t.id = v.id),
           journal as (
               select j.voucher_id as id,
                      sum(case when j.debit = 'voucher:' || j.voucher_id then j.amount
                               when j.credit = 'voucher:' || j.voucher_id then -j.amount else 0 end) as balance
               from journal j join touched t on t.id = j.voucher_id
               where j.created_at < $2
               group by j.voucher_id)
           select r.id, r.face_value, r.counter, r.redeemed_now as "redeemed_now!", r.redeemed as "redeemed!",
                  coalesce(j.balance, 0) as "balance!",
                  case when not r.issued or r.closed then 0 else r.face_value - r.redeemed end as "expected!"
           from rows r left join journal j on j.id = r.id
           order by r.id"#,
        start,
        cutoff
    )
    .fetch_all(pool)
    .await?;
    let checked = vouchers.len() as i64;
    out.push(finding(
        "voucher_redeemed_matches_redemptions",
        checked,
        "vouchers touched",
        vouchers
            .iter()
            .filter(|v| v.counter != v.redeemed_now)
            .map(|v| {
                format!(
                    "voucher {}: counter {:.2}, active redemptions {:.2}",
                    v.id, v.counter, v.redeemed_now
                )
            })
            .collect(),
    ));
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
            .filter(|v| v.redeemed > v.face_value || v.redeemed_now > v.face_value)
            .map(|v| {
                format!(
                    "voucher {}: redeemed {:.2} of face value {:.2}",
                    v.id,
                    v.redeemed.max(v.redeemed_now),
                    v.face_value
                )
            })
            .collect(),
    ));
    Ok(())
}

/// Each redemption of the day: its discount at most floor_fen(bill × rate) (SQL's one
/// `floor_fen`), and a single journal entry for it (and for each reversal of the day).
async fn redemptions(
    pool: &PgPool,
    start: OffsetDateTime,
    cutoff: OffsetDateTime,
    out: &mut Vec<Invariant>,
) -> anyhow::Result<()> {
    let discounts = sqlx::query!(
        r#"select count(*) as "checked!",
                  coalesce(array_agg(r.id::text || ': ' || r.discount::text || ' on a bill of ' || r.bill_amount::text)
                           filter (where r.discount > floor_fen(r.bill_amount * p.rate)), '{}') as "bad!"
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

    // Uniqueness is decided on the normalised number (reference_key, the same rule as the
    // server's); rows stored before it, or written behind the system's back, are caught here.
    let invoices = sqlx::query!(
        r#"select count(*) as "checked!",
                  coalesce(array_agg(d.id::text || ' (invoice ' || d.invoice_no || ')') filter (where exists (
                      select 1 from redemptions x
                      where x.platform_id = d.platform_id and x.id <> d.id
                        and reference_key(x.invoice_no) = reference_key(d.invoice_no))), '{}') as "bad!"
           from redemptions d
           where d.created_at >= $1 and d.created_at < $2"#,
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
            .map(|b| format!("redemption {b} shares its normalised invoice number with another"))
            .collect(),
    ));
    Ok(())
}

/// Per program year with movements that day: what the journal says was granted (issued less
/// returned to the budget) and redeemed (less reversed) equals the firm-years' totals, and what
/// was redeemed equals the year's active redemptions.
async fn totals(
    pool: &PgPool,
    start: OffsetDateTime,
    cutoff: OffsetDateTime,
    out: &mut Vec<Invariant>,
) -> anyhow::Result<()> {
    let years = sqlx::query!(
        r#"with years as (
               select distinct year from journal where created_at >= $1 and created_at < $2),
           j as (
               select j.year,
                      coalesce(sum(j.amount) filter (where j.kind = 'issue'), 0)
                        - coalesce(sum(j.amount) filter (where j.kind in ('cancel', 'lapse', 'expire')), 0) as granted,
                      coalesce(sum(j.amount) filter (where j.kind = 'redeem'), 0)
                        - coalesce(sum(j.amount) filter (where j.kind = 'reversal'), 0) as redeemed
               from journal j where j.year in (select year from years) group by j.year),
           f as (
               select year, sum(granted) as granted, sum(redeemed) as redeemed from firm_years
               where year in (select year from years) group by year),
           r as (
               select year, sum(discount) as redeemed from redemptions
               where status = 'active' and year in (select year from years) group by year)
           select y.year as "year!",
                  coalesce(j.granted, 0) as "journal_granted!", coalesce(f.granted, 0) as "rows_granted!",
                  coalesce(j.redeemed, 0) as "journal_redeemed!", coalesce(f.redeemed, 0) as "rows_redeemed!",
                  coalesce(r.redeemed, 0) as "redemptions!"
           from years y left join j on j.year = y.year left join f on f.year = y.year
                left join r on r.year = y.year
           order by y.year"#,
        start,
        cutoff
    )
    .fetch_all(pool)
    .await?;
    let mut bad = Vec::new();
    for y in &years {
        if y.journal_granted != y.rows_granted {
            bad.push(format!(
                "{}: granted {:.2} by the journal, {:.2} by the firm-years",
                y.year, y.journal_granted, y.rows_granted
            ));
        }
        if y.journal_redeemed != y.rows_redeemed || y.journal_redeemed != y.redemptions {
            bad.push(format!(
                "{}: redeemed {:.2} by the journal, {:.2} by the firm-years, {:.2} by the active redemptions",
                y.year, y.journal_redeemed, y.rows_redeemed, y.redemptions
            ));
        }
    }
    out.push(finding(
        "program_totals_match_journal",
        years.len() as i64,
        "program years with movements that day",
        bad,
    ));
    Ok(())
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
