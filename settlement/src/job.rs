//! The nightly job (SPEC §2, "Nightly settlement job"): lapse and expire vouchers, release
//! quota slots, reconcile the business day, and on a month's last business day close it.
//!
//! Every step is one set-based statement group in its own transaction, written so that running
//! it again changes nothing more; a run killed between steps and run again ends where an
//! uninterrupted run would. The report counts what the steps left behind (markers on the rows),
//! and the invariants are computed as of the end of the business day, so a re-run for the same
//! date reports the same, whatever happened since.

use serde::{Deserialize, Serialize};
use sqlx::{Connection, PgPool};
use time::{Date, OffsetDateTime};
use voucher_core::state::SHANGHAI;
use voucher_core::Money;

use crate::reconcile::{self, Invariant};
use crate::statements;

/// Lock key: one settlement run at a time across every replica.
const SETTLEMENT_LOCK: i64 = 0x5E77_1E00;

/// The steps, in order.
pub const STEPS: [&str; 5] = ["lapse", "expire", "release", "reconcile", "close"];

/// The day's report (API.md, `POST /api/bureau/settlement-runs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Report {
    /// The business date (Asia/Shanghai), `YYYY-MM-DD`.
    pub business_date: String,
    /// Redemptions made that day.
    pub redemptions: i64,
    /// Redemptions reversed that day.
    pub reversals: i64,
    /// Discounts of the day's redemptions (reversed or not).
    pub discount_total: Money,
    /// Discounts reversed that day (of redemptions of any day).
    pub reversed_total: Money,
    /// Vouchers this date's run lapsed (unused past their claim validity).
    pub lapsed_vouchers: i64,
    /// Vouchers this date's run expired (past the redeem deadline).
    pub expired_vouchers: i64,
    /// Quota slots this date's run released.
    pub released_slots: i64,
    /// Every invariant of SPEC §2 with its finding.
    pub invariants: Vec<Invariant>,
    /// Statements of the month closed by this run (0 unless the date ends a month).
    pub statements_created: i64,
}

/// The business day's bounds: [00:00, 24:00) Asia/Shanghai.
pub fn day_bounds(date: Date) -> (OffsetDateTime, OffsetDateTime) {
    let start = date.midnight().assume_offset(SHANGHAI);
    (start, start + time::Duration::days(1))
}

/// Parses `YYYY-MM-DD` with a year from 2000 to 2100 (API.md).
pub fn parse_business_date(text: &str) -> Result<Date, BadDate> {
    voucher_core::calendar::parse_date(text).ok_or(BadDate)
}

/// A business date that is not `YYYY-MM-DD` with a year from 2000 to 2100.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("expected YYYY-MM-DD with a year from 2000 to 2100")]
pub struct BadDate;

/// Another run holds the settlement lock: this one did nothing. The API answers it with 409
/// `invalid_transition` at once; the nightly job on another replica skips.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InProgress;

impl std::fmt::Display for InProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a settlement run is already in progress")
    }
}

impl std::error::Error for InProgress {}

/// Runs the whole job for `date`; `stop_after` ends it after that many steps (to show that an
/// interrupted run completes when run again). `progress` is told each step as it starts.
///
/// One run at a time across every replica: the run takes a session advisory lock on a
/// connection of its own, detached from the pool, and closes that connection when it ends; were
/// the run dropped half-way, dropping the connection ends its session all the same, so the
/// lock can never outlive the run (a pooled connection would go back to the pool still holding
/// it). A run that finds the lock taken returns [`InProgress`] at once rather than queueing.
pub async fn run_steps(
    pool: &PgPool,
    date: Date,
    stop_after: Option<usize>,
    progress: &(dyn Fn(usize, &str) + Sync),
) -> anyhow::Result<Option<Report>> {
    run_steps_at(pool, date, OffsetDateTime::now_utc(), stop_after, progress).await
}

/// [`run_steps`] with the time taken as `now`. For a business day that has not ended by then
/// (API.md), the run reconciles what exists so far and lapses or expires only what is due by
/// `now`, dating its movements `now`; for an ended day `now` changes nothing.
pub async fn run_steps_at(
    pool: &PgPool,
    date: Date,
    now: OffsetDateTime,
    stop_after: Option<usize>,
    progress: &(dyn Fn(usize, &str) + Sync),
) -> anyhow::Result<Option<Report>> {
    let mut lock_conn = pool.acquire().await?.detach();
    let locked = sqlx::query_scalar!(
        r#"select pg_try_advisory_lock($1) as "locked!""#,
        SETTLEMENT_LOCK
    )
    .fetch_one(&mut lock_conn)
    .await?;
    if !locked {
        let _ = lock_conn.close().await;
        return Err(InProgress.into());
    }
    let result = steps(pool, date, now, stop_after, progress).await;
    // Unlocked explicitly, so a run right after this one finds the lock free (the server ends a
    // closed session a moment after the client lets go); closing ends the session all the same.
    let unlocked = sqlx::query_scalar!(
        r#"select pg_advisory_unlock($1) as "unlocked!""#,
        SETTLEMENT_LOCK
    )
    .fetch_one(&mut lock_conn)
    .await;
    let closed = lock_conn.close().await;
    let report = result?;
    unlocked?;
    closed?;
    Ok(report)
}

async fn steps(
    pool: &PgPool,
    date: Date,
    now: OffsetDateTime,
    stop_after: Option<usize>,
    progress: &(dyn Fn(usize, &str) + Sync),
) -> anyhow::Result<Option<Report>> {
    let (start, day_end) = day_bounds(date);
    // A day that has not ended is settled as far as it has gone: nothing due later today (a
    // voucher lapsing this evening, every voucher on Dec 31) is touched early.
    let cutoff = day_end.min(now.max(start));
    // Movements the job makes are dated at the very end of the business day they close (or now,
    // for a day still running).
    let end_of_day = if cutoff < day_end {
        cutoff
    } else {
        cutoff - time::Duration::microseconds(1)
    };
    let stop = stop_after.unwrap_or(STEPS.len());
    let mut invariants = Vec::new();
    for (i, name) in STEPS.iter().enumerate() {
        if i >= stop {
            return Ok(None);
        }
        progress(i, name);
        let began = std::time::Instant::now();
        match *name {
            "lapse" => lapse(pool, date, cutoff, end_of_day).await?,
            "expire" => expire(pool, date, cutoff, end_of_day).await?,
            "release" => release(pool, date).await?,
            "reconcile" => {
                invariants = reconcile::check(pool, date, start, cutoff).await?;
                for broken in invariants.iter().filter(|i| !i.ok) {
                    reconcile::alert(pool, date, broken).await?;
                }
            }
            _ => {
                if (date + time::Duration::days(1)).day() == 1 {
                    statements::close_month(
                        pool,
                        &statements::month_of(date),
                        &voucher_core::audit::Actor::System,
                        end_of_day,
                    )
                    .await?;
                }
            }
        }
        tracing::info!(settlement.business_date = %date, settlement.step = name,
            duration_ms = began.elapsed().as_millis() as u64, "settlement step done");
    }
    let report = report(pool, date, start, cutoff, invariants).await?;
    record(pool, &report).await?;
    Ok(Some(report))
}

async fn lapse(
    pool: &PgPool,
    date: Date,
    cutoff: OffsetDateTime,
    at: OffsetDateTime,
) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    let ids = sqlx::query_scalar!(
        r#"select id from vouchers
           where status = 'active' and redemption_count = 0 and lapses_at < $1
           order by id for update"#,
        cutoff
    )
    .fetch_all(&mut *tx)
    .await?;
    if ids.is_empty() {
        tx.commit().await?;
        return Ok(());
    }
    // Decided in a new statement, as in `release`: its snapshot is taken with every candidate
    // voucher locked, so each voucher and its firm-year are read as of one moment.
    sqlx::query!(
        r#"with lapsed as (
               update vouchers v set status = 'lapsed', closed_at = $3, closed_on = $2
               where v.id = any($4) and v.status = 'active' and v.redemption_count = 0 and v.lapses_at < $1
               returning v.id, v.firm_id, v.year, v.face_value),
           journaled as (
               insert into journal (kind, debit, credit, amount, year, voucher_id, created_at)
               select 'lapse', 'budget:' || year, 'voucher:' || id, face_value, year, id, $3 from lapsed),
           audited as (
               insert into audit_log (actor, action, subject, detail)
               select 'system', 'voucher.lapse', 'voucher:' || id,
                      jsonb_build_object('face_value', face_value::text, 'business_date', $2::date::text)
               from lapsed)
           update firm_years f set granted = f.granted - s.total
           from (select firm_id, year, sum(face_value) as total from lapsed group by firm_id, year) s
           where f.firm_id = s.firm_id and f.year = s.year"#,
        cutoff,
        date,
        at,
        &ids
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Expires the vouchers past their redeem deadline and returns what they hold to the budget.
/// Like `lapse` and `release`: the candidates' rows are locked first (voucher order), then a
/// new statement decides, so a reversal that committed while the step waited is seen both in
/// the voucher's balance and in its firm-year's totals (one statement once read the voucher
/// after the reversal and the firm-year before it, and broke the firm-year's CHECK).
///
/// What the voucher held at the end of the business day is returned then; a discount a
/// reversal gave back after that day (before this run marked the voucher expired) is returned
/// at the reversal's time, as the reversal itself does for a voucher already marked expired,
/// so the journal as of each day's end matches the rows.
async fn expire(
    pool: &PgPool,
    date: Date,
    cutoff: OffsetDateTime,
    at: OffsetDateTime,
) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    let ids = sqlx::query_scalar!(
        r#"select id from vouchers
           where status in ('active', 'exhausted') and expires_at < $1
           order by id for update"#,
        cutoff
    )
    .fetch_all(&mut *tx)
    .await?;
    if ids.is_empty() {
        tx.commit().await?;
        return Ok(());
    }
    sqlx::query!(
        r#"with expired as (
               update vouchers v set status = 'expired', closed_at = $3, closed_on = $2
               where v.id = any($4) and v.status in ('active', 'exhausted') and v.expires_at < $1
               returning v.id, v.firm_id, v.year, v.face_value - v.redeemed as unused),
           late as (
               select r.id, r.voucher_id, r.year, r.discount, r.reversed_at
               from redemptions r join expired e on e.id = r.voucher_id
               where r.status = 'reversed' and r.reversed_at >= $1),
           held as (
               select e.id, e.year,
                      e.unused - coalesce((select sum(l.discount) from late l where l.voucher_id = e.id), 0) as amount
               from expired e),
           journaled as (
               insert into journal (kind, debit, credit, amount, year, voucher_id, created_at)
               select 'expire', 'budget:' || year, 'voucher:' || id, amount, year, id, $3
               from held where amount > 0),
           journaled_late as (
               insert into journal (kind, debit, credit, amount, year, voucher_id, redemption_id, created_at)
               select 'expire', 'budget:' || year, 'voucher:' || voucher_id, discount, year, voucher_id, id, reversed_at
               from late),
           audited as (
               insert into audit_log (actor, action, subject, detail)
               select 'system', 'voucher.expire', 'voucher:' || id,
                      jsonb_build_object('returned', unused::text, 'business_date', $2::date::text)
               from expired)
           update firm_years f set granted = f.granted - s.total
           from (select firm_id, year, sum(unused) as total from expired group by firm_id, year) s
           where f.firm_id = s.firm_id and f.year = s.year"#,
        cutoff,
        date,
        at,
        &ids
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Releases the quota slot of every admitted firm that holds no live voucher and never
/// redeemed this year. Two statements: the first locks the candidates' firm-year rows (in firm
/// order, as the cap `PATCH` takes them; claims and cancels take one firm's row before the
/// program row, as here); the second decides per firm with a fresh look at its vouchers. Under
/// READ COMMITTED a single statement would re-check only the locked row after waiting for a
/// claim, while its `not exists` kept the statement's first snapshot: a firm that claimed again
/// meanwhile would keep its new voucher and lose its slot.
async fn release(pool: &PgPool, date: Date) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    let candidates = sqlx::query!(
        r#"select f.firm_id, f.year from firm_years f
           where f.admitted
             and not exists (select 1 from vouchers v
                             where v.firm_id = f.firm_id and v.year = f.year
                               and (v.status in ('active', 'exhausted') or v.redemption_count > 0))
           order by f.firm_id, f.year
           for update of f"#
    )
    .fetch_all(&mut *tx)
    .await?;
    if candidates.is_empty() {
        tx.commit().await?;
        return Ok(());
    }
    let firms: Vec<uuid::Uuid> = candidates.iter().map(|c| c.firm_id).collect();
    let years: Vec<i32> = candidates.iter().map(|c| c.year).collect();
    // A new statement, so a new snapshot taken while this transaction holds every candidate's
    // lock: it sees each claim that committed before, and any later claim waits for this commit
    // and then finds its firm no longer admitted (and takes a slot again).
    sqlx::query!(
        r#"with released as (
               update firm_years f set admitted = false
               from unnest($2::uuid[], $3::int[]) as c(firm_id, year)
               where f.firm_id = c.firm_id and f.year = c.year and f.admitted
                 and not exists (select 1 from vouchers v
                                 where v.firm_id = f.firm_id and v.year = f.year
                                   and (v.status in ('active', 'exhausted') or v.redemption_count > 0))
               returning f.firm_id, f.year),
           marked as (
               insert into quota_releases (firm_id, year, business_date)
               select firm_id, year, $1 from released on conflict do nothing),
           audited as (
               insert into audit_log (actor, action, subject, detail)
               select 'system', 'quota.release', 'firm:' || firm_id,
                      jsonb_build_object('year', year, 'business_date', $1::date::text)
               from released)
           update program_years p set firms_admitted = p.firms_admitted - s.n
           from (select year, count(*)::int as n from released group by year) s
           where p.year = s.year"#,
        date,
        &firms,
        &years
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

async fn report(
    pool: &PgPool,
    date: Date,
    start: OffsetDateTime,
    cutoff: OffsetDateTime,
    invariants: Vec<Invariant>,
) -> anyhow::Result<Report> {
    let counts = sqlx::query!(
        r#"select
             (select count(*) from redemptions where created_at >= $1 and created_at < $2) as "redemptions!",
             (select count(*) from redemptions where reversed_at >= $1 and reversed_at < $2) as "reversals!",
             (select coalesce(sum(discount), 0) from redemptions where created_at >= $1 and created_at < $2)
               as "discount_total!",
             (select coalesce(sum(discount), 0) from redemptions where reversed_at >= $1 and reversed_at < $2)
               as "reversed_total!",
             (select count(*) from vouchers where closed_on = $3 and status = 'lapsed') as "lapsed!",
             (select count(*) from vouchers where closed_on = $3 and status = 'expired') as "expired!",
             (select count(*) from quota_releases where business_date = $3) as "released!",
             (select count(*) from statements where month = $4 and $5) as "statements!""#,
        start,
        cutoff,
        date,
        statements::month_of(date),
        (date + time::Duration::days(1)).day() == 1
    )
    .fetch_one(pool)
    .await?;
    Ok(Report {
        business_date: date.to_string(),
        redemptions: counts.redemptions,
        reversals: counts.reversals,
        discount_total: Money::from_decimal(counts.discount_total)?,
        reversed_total: Money::from_decimal(counts.reversed_total)?,
        lapsed_vouchers: counts.lapsed,
        expired_vouchers: counts.expired,
        released_slots: counts.released,
        invariants,
        statements_created: counts.statements,
    })
}

async fn record(pool: &PgPool, report: &Report) -> anyhow::Result<()> {
    sqlx::query!(
        r#"insert into settlement_runs (business_date, report) values ($1, $2)
           on conflict (business_date) do update
           set report = excluded.report, runs = settlement_runs.runs + 1, last_run_at = now()"#,
        parse_business_date(&report.business_date)?,
        serde_json::to_value(report)?
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// The stored report of a date's latest run.
pub async fn stored(pool: &PgPool, date: Date) -> anyhow::Result<Option<Report>> {
    let row = sqlx::query_scalar!(
        r#"select report from settlement_runs where business_date = $1"#,
        date
    )
    .fetch_optional(pool)
    .await?;
    Ok(match row {
        Some(value) => Some(serde_json::from_value(value)?),
        None => None,
    })
}
