//! Each reconciliation invariant, provoked: a violation forged through SQL behind the system's
//! back is reported by the next run under the invariant's name.

use axum::http::StatusCode;
use serde_json::json;
use sqlx::PgPool;
use time::macros::{date, datetime};
use uuid::Uuid;
use voucher_settlement::{job, reconcile, Report};

use crate::support::{redemption, TestApp};

/// What the forgeries work on: two firms' vouchers and a redemption on each, on 2026-06-30.
struct Day {
    /// 30,000.00, with a redemption of 6,000.00 (bill 20,000.00).
    a: Uuid,
    /// 3,000.00, with a redemption of 1,500.00 (bill 5,000.00).
    b: Uuid,
    firm_a: Uuid,
    firm_b: Uuid,
    redemption_a: Uuid,
}

async fn day(app: &TestApp) -> Day {
    let (platform, key) = app.platform_with_key(1).await;
    app.state.clock.set(datetime!(2026-06-30 09:00 +8));
    let a = app.voucher(platform, 1, "100000.00").await;
    let b = app.voucher(platform, 2, "10000.00").await;
    let mut made = Vec::new();
    for (n, (v, bill)) in [(&a, "20000.00"), (&b, "5000.00")].into_iter().enumerate() {
        let body =
            json!({"voucher": v["token"], "invoice_no": format!("D-{n}"), "bill_amount": bill});
        let reply = app.send(redemption(&key, &format!("d-{n}"), body)).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
        made.push(reply.json());
    }
    let id = |v: &serde_json::Value| -> Uuid { v["id"].as_str().unwrap().parse().unwrap() };
    let firm = |v: Uuid| async move {
        sqlx::query_scalar::<_, Uuid>("select firm_id from vouchers where id = $1")
            .bind(v)
            .fetch_one(&app.state.db)
            .await
            .unwrap()
    };
    Day {
        a: id(&a),
        b: id(&b),
        firm_a: firm(id(&a)).await,
        firm_b: firm(id(&b)).await,
        redemption_a: id(&made[0]),
    }
}

async fn run(pool: &PgPool) -> Report {
    job::run_steps(pool, date!(2026 - 06 - 30), None, &|_, _| {})
        .await
        .unwrap()
        .unwrap()
}

async fn forge(pool: &PgPool, sql: &str, ids: &[Uuid]) {
    let mut q = sqlx::query(sql);
    for id in ids {
        q = q.bind(*id);
    }
    q.execute(pool).await.unwrap();
}

/// Asserts that `name` is reported broken, naming `offender` in its detail.
fn assert_reported(report: &Report, name: &str, offender: &str) {
    assert!(reconcile::NAMES.contains(&name), "{name} is an invariant");
    let found = report
        .invariants
        .iter()
        .find(|i| i.name == name)
        .unwrap_or_else(|| panic!("{name} not in the report: {:#?}", report.invariants));
    assert!(
        !found.ok,
        "{name} should be broken: {:#?}",
        report.invariants
    );
    assert!(found.detail.contains(offender), "{name}: {}", found.detail);
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn the_day_as_the_system_made_it_breaks_nothing(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    day(&app).await;
    let report = run(&pool).await;
    let names: Vec<&str> = report.invariants.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, reconcile::NAMES);
    assert!(
        report.invariants.iter().all(|i| i.ok),
        "{:#?}",
        report.invariants
    );
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn a_holder_not_admitted_is_reported_by_admitted_firms_are_holders(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let d = day(&app).await;
    forge(
        &pool,
        "with f as (update firm_years set admitted = false where firm_id = $1 returning year)
         update program_years p set firms_admitted = firms_admitted - 1 from f where p.year = f.year",
        &[d.firm_a],
    )
    .await;
    assert_reported(
        &run(&pool).await,
        "admitted_firms_are_holders",
        &d.firm_a.to_string(),
    );
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn more_holders_than_the_quota_is_reported_by_admitted_firms_within_quota(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    day(&app).await;
    // Two firms hold vouchers; the quota (and its counter, which the CHECK ties to it) says one.
    forge(
        &pool,
        "update program_years set firms_admitted = 1, firm_quota = 1",
        &[],
    )
    .await;
    assert_reported(&run(&pool).await, "admitted_firms_within_quota", "quota 1");
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn a_grant_over_the_program_s_cap_is_reported_by_firm_granted_within_cap(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let d = day(&app).await;
    // The program's cap changed behind the firm-years' copies (which the CHECK guards).
    forge(
        &pool,
        "update program_years set cap_per_firm = 10000.00",
        &[],
    )
    .await;
    assert_reported(
        &run(&pool).await,
        "firm_granted_within_cap",
        &d.firm_a.to_string(),
    );
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn a_counter_off_its_redemptions_is_reported_by_voucher_redeemed_matches_redemptions(
    pool: PgPool,
) {
    let app = TestApp::new(pool.clone()).await;
    let d = day(&app).await;
    forge(
        &pool,
        "update vouchers set redeemed = redeemed - 100.00 where id = $1",
        &[d.a],
    )
    .await;
    assert_reported(
        &run(&pool).await,
        "voucher_redeemed_matches_redemptions",
        &d.a.to_string(),
    );
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn a_journal_entry_without_its_movement_is_reported_by_voucher_balance_matches_journal(
    pool: PgPool,
) {
    let app = TestApp::new(pool.clone()).await;
    let d = day(&app).await;
    forge(
        &pool,
        "insert into journal (kind, debit, credit, amount, year, voucher_id, created_at)
         values ('cancel', 'budget:2026', 'voucher:' || $1, 100.00, 2026, $1, '2026-06-30 12:00+08')",
        &[d.a],
    )
    .await;
    assert_reported(
        &run(&pool).await,
        "voucher_balance_matches_journal",
        &d.a.to_string(),
    );
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn an_overdrawn_voucher_is_reported_by_voucher_redeemed_within_face_value(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let d = day(&app).await;
    forge(
        &pool,
        "with r as (
             insert into redemptions (id, platform_id, voucher_id, firm_id, year, invoice_no, bill_amount,
                                      discount, voucher_remaining_after, created_at)
             select gen_random_uuid(), platform_id, id, firm_id, year, 'FORGED', 10000.00, 2000.00, 0,
                    '2026-06-30 13:00+08'
             from vouchers where id = $1
             returning id, platform_id, voucher_id, year, discount, created_at)
         insert into journal (kind, debit, credit, amount, year, voucher_id, redemption_id, created_at)
         select 'redeem', 'payable:' || platform_id, 'voucher:' || voucher_id, discount, year, voucher_id, id, created_at
         from r",
        &[d.b],
    )
    .await;
    assert_reported(
        &run(&pool).await,
        "voucher_redeemed_within_face_value",
        "redeemed 3500.00 of face value 3000.00",
    );
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn a_discount_over_the_rate_is_reported_by_discount_within_rate(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let d = day(&app).await;
    // 6,000.01 on a bill of 20,000.00: one fen over floor_fen(20,000.00 × 0.30).
    forge(
        &pool,
        "update redemptions set discount = discount + 0.01 where id = $1",
        &[d.redemption_a],
    )
    .await;
    assert_reported(
        &run(&pool).await,
        "discount_within_rate",
        &d.redemption_a.to_string(),
    );
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn a_redemption_without_its_entry_is_reported_by_redemptions_journaled(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let d = day(&app).await;
    forge(
        &pool,
        "delete from journal where redemption_id = $1",
        &[d.redemption_a],
    )
    .await;
    assert_reported(
        &run(&pool).await,
        "redemptions_journaled",
        &d.redemption_a.to_string(),
    );
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn a_look_alike_invoice_is_reported_by_invoice_redeemed_once(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let day = day(&app).await;
    // The other redemption's invoice becomes "D-0" with a non-breaking hyphen and a zero-width
    // space: a different string to the table's unique constraint, the same invoice to the rule.
    forge(
        &pool,
        "update redemptions set invoice_no = E'D\\u20110\\u200b' where id <> $1",
        &[day.redemption_a],
    )
    .await;
    assert_reported(&run(&pool).await, "invoice_redeemed_once", "D-0");
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn a_firm_total_off_the_journal_is_reported_by_program_totals_match_journal(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let d = day(&app).await;
    forge(
        &pool,
        "update firm_years set granted = granted - 1.00 where firm_id = $1",
        &[d.firm_b],
    )
    .await;
    assert_reported(
        &run(&pool).await,
        "program_totals_match_journal",
        "2026: granted",
    );
}
