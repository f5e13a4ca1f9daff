//! The nightly job, reconciliation and monthly statements.

use axum::http::StatusCode;
use serde_json::{json, Value};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use time::macros::datetime;
use voucher_core::auth::Role;
use voucher_settlement::job;

use crate::support::{assert_ledger_consistent, redemption, TestApp};

/// A month of activity for one platform, dated by the app's clock:
/// - a firm claims on 2026-03-31 and never redeems (lapses on 2026-06-29, 90 days later);
/// - two firms claim on 2026-06-30 and redeem three bills; one redemption is reversed.
async fn june(app: &TestApp) -> (String, Vec<Value>) {
    let (platform, key) = app.platform_with_key(1).await;
    app.state.clock.set(datetime!(2026-03-31 10:00 +8));
    app.voucher(platform, 1, "10000.00").await;
    app.state.clock.set(datetime!(2026-06-30 09:00 +8));
    let a = app.voucher(platform, 2, "100000.00").await; // 30,000.00
    let b = app.voucher(platform, 3, "10000.00").await; // 3,000.00
    let mut made = Vec::new();
    for (n, (v, bill)) in [(&a, "20000.00"), (&a, "1000.00"), (&b, "5000.00")]
        .into_iter()
        .enumerate()
    {
        let body =
            json!({"voucher": v["token"], "invoice_no": format!("JUN-{n}"), "bill_amount": bill});
        let reply = app.send(redemption(&key, &format!("jun-{n}"), body)).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
        made.push(reply.json());
    }
    let reversal = app
        .call(
            "POST",
            &format!(
                "/v1/redemptions/{}/reversal",
                made[1]["id"].as_str().unwrap()
            ),
            Some(&key),
            Some(json!({"reason": "invoice voided"})),
        )
        .await;
    assert_eq!(reversal.status, StatusCode::OK);
    (key, made)
}

async fn journal_count(pool: &PgPool) -> i64 {
    sqlx::query_scalar("select count(*) from journal")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn running_a_date_twice_gives_the_same_report_and_no_extra_entries(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    june(&app).await;
    let date = time::macros::date!(2026 - 06 - 30);
    let first = job::run_steps(&pool, date, None, &|_, _| {})
        .await
        .unwrap()
        .unwrap();
    // SPEC §2: the day's figures, the lapse, the month closed on its last day.
    assert_eq!(first.business_date, "2026-06-30");
    assert_eq!((first.redemptions, first.reversals), (3, 1));
    assert_eq!(first.discount_total.to_string(), "7800.00"); // 6,000 + 300 + 1,500
    assert_eq!(first.reversed_total.to_string(), "300.00");
    assert_eq!(
        (
            first.lapsed_vouchers,
            first.released_slots,
            first.statements_created
        ),
        (1, 1, 1)
    );
    assert!(
        first.invariants.iter().all(|i| i.ok),
        "{:#?}",
        first.invariants
    );
    assert_eq!(
        first.invariants.len(),
        voucher_settlement::reconcile::NAMES.len()
    );
    let entries = journal_count(&pool).await;
    let second = job::run_steps(&pool, date, None, &|_, _| {})
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second, first);
    assert_eq!(journal_count(&pool).await, entries);
    let runs: i32 = sqlx::query_scalar("select runs from settlement_runs")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(runs, 2);
    assert_ledger_consistent(&pool).await;
}

/// Everything a run leaves behind, without ids, for comparing two databases.
async fn state_of(pool: &PgPool) -> Value {
    let rows: Vec<(String, String)> = sqlx::query_as(
        r#"select 'journal', kind || ' ' || amount::text from journal
           union all select 'voucher', status || ' ' || face_value::text || ' ' || redeemed::text from vouchers
           union all select 'firm_year', admitted::text || ' ' || granted::text || ' ' || redeemed::text from firm_years
           union all select 'program', firms_admitted::text from program_years
           union all select 'statement', status || ' ' || total::text || ' ' || line_count::text from statements
           union all select 'release', business_date::text from quota_releases
           order by 1, 2"#,
    )
    .fetch_all(pool)
    .await
    .unwrap();
    json!(rows)
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn a_run_killed_between_steps_ends_where_an_uninterrupted_run_ends(
    _harness: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let date = time::macros::date!(2026 - 06 - 30);
    // A second database beside the test's, migrated and loaded with the same month.
    let pool = PgPoolOptions::new()
        .connect_with(connect.clone())
        .await
        .unwrap();
    let twin_name = format!("twin_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("create database {twin_name}"))
        .execute(&pool)
        .await
        .unwrap();
    let twin = PgPoolOptions::new()
        .connect_with(connect.clone().database(&twin_name))
        .await
        .unwrap();
    voucher_core::db::MIGRATOR.run(&twin).await.unwrap();

    let interrupted = TestApp::new(pool.clone()).await;
    june(&interrupted).await;
    let uninterrupted = TestApp::new(twin.clone()).await;
    june(&uninterrupted).await;

    for stop in 1..job::STEPS.len() {
        assert!(job::run_steps(&pool, date, Some(stop), &|_, _| {})
            .await
            .unwrap()
            .is_none());
    }
    let resumed = job::run_steps(&pool, date, None, &|_, _| {})
        .await
        .unwrap()
        .unwrap();
    let whole = job::run_steps(&twin, date, None, &|_, _| {})
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resumed, whole);
    assert_eq!(state_of(&pool).await, state_of(&twin).await);
    twin.close().await;
    sqlx::query(&format!("drop database {twin_name} with (force)"))
        .execute(&pool)
        .await
        .unwrap();
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn rows_written_behind_the_system_s_back_are_reported_as_broken(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let (_, made) = june(&app).await;
    // A redemption inserted straight into the database, without its journal entry.
    let orphan = uuid::Uuid::now_v7();
    sqlx::query(
        r#"insert into redemptions (id, platform_id, voucher_id, firm_id, year, invoice_no, bill_amount,
                                    discount, voucher_remaining_after, created_at)
           select $1, platform_id, voucher_id, firm_id, year, 'FORGED-1', 10.00, 3.00, 0, '2026-06-30 12:00+08'
           from redemptions where id = $2::uuid"#,
    )
    .bind(orphan)
    .bind(made[0]["id"].as_str().unwrap())
    .execute(&pool)
    .await
    .unwrap();
    // A voucher whose redemptions exceed its face value (3,000.00), journal and all.
    let b_voucher: uuid::Uuid =
        sqlx::query_scalar("select voucher_id from redemptions where id = $1::uuid")
            .bind(made[2]["id"].as_str().unwrap())
            .fetch_one(&pool)
            .await
            .unwrap();
    let overdraw = uuid::Uuid::now_v7();
    sqlx::query(
        r#"with r as (
               insert into redemptions (id, platform_id, voucher_id, firm_id, year, invoice_no, bill_amount,
                                        discount, voucher_remaining_after, created_at)
               select $1, platform_id, voucher_id, firm_id, year, 'FORGED-2', 10000.00, 2000.00, 0, '2026-06-30 13:00+08'
               from redemptions where voucher_id = $2 limit 1
               returning id, platform_id, voucher_id, year, discount, created_at)
           insert into journal (kind, debit, credit, amount, year, voucher_id, redemption_id, created_at)
           select 'redeem', 'payable:' || platform_id, 'voucher:' || voucher_id, discount, year, voucher_id, id, created_at
           from r"#,
    )
    .bind(overdraw)
    .bind(b_voucher)
    .execute(&pool)
    .await
    .unwrap();
    let report = job::run_steps(&pool, time::macros::date!(2026 - 06 - 30), None, &|_, _| {})
        .await
        .unwrap()
        .unwrap();
    let broken: Vec<&str> = report
        .invariants
        .iter()
        .filter(|i| !i.ok)
        .map(|i| i.name.as_str())
        .collect();
    assert!(broken.contains(&"redemptions_journaled"), "{broken:?}");
    assert!(
        broken.contains(&"voucher_redeemed_within_face_value"),
        "{broken:?}"
    );
    let journaled = report
        .invariants
        .iter()
        .find(|i| i.name == "redemptions_journaled")
        .unwrap();
    assert!(
        journaled.detail.contains(&orphan.to_string()),
        "{}",
        journaled.detail
    );
    let within = report
        .invariants
        .iter()
        .find(|i| i.name == "voucher_redeemed_within_face_value")
        .unwrap();
    assert!(
        within.detail.contains(&b_voucher.to_string()),
        "{}",
        within.detail
    );
    assert!(
        within
            .detail
            .contains("redeemed 3500.00 of face value 3000.00"),
        "{}",
        within.detail
    );
    // The alarm: an audit entry per broken invariant, and the metric.
    let alerts: i64 = sqlx::query_scalar(
        "select count(*) from audit_log where action = 'settlement.invariant_broken'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(alerts, broken.len() as i64);
    let metrics = app.call("GET", "/metrics", None, None).await.text();
    assert!(
        metrics.contains("settlement_invariant_broken_total{invariant=\"redemptions_journaled\"}"),
        "{metrics}"
    );
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn a_statement_totals_its_months_active_redemptions_and_moves_only_by_finance(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let (key, made) = june(&app).await;
    app.state.clock.set(datetime!(2026-07-02 10:00 +8));
    let admin = app.staff("admin1", Role::Admin).await;
    let reviewer = app.staff("reviewer1", Role::Reviewer).await;
    let finance = app.staff("finance1", Role::Finance).await;
    let closed = app
        .call(
            "POST",
            "/api/bureau/statements",
            Some(&reviewer),
            Some(json!({"month": "2026-06"})),
        )
        .await;
    assert_eq!(closed.status, StatusCode::OK, "{}", closed.text());
    let statements = closed.json();
    assert_eq!(statements.as_array().unwrap().len(), 1);
    let statement = &statements[0];
    let expected: rust_decimal::Decimal = sqlx::query_scalar(
        "select sum(discount) from redemptions where status = 'active' and created_at < '2026-07-01 00:00+08'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(statement["total"], expected.to_string());
    assert_eq!(statement["total"], "7500.00");
    assert_eq!(statement["lines"].as_array().unwrap().len(), 2);
    assert_eq!(statement["status"], "draft");
    let id = statement["id"].as_str().unwrap();

    let pay_uri = format!("/api/bureau/statements/{id}/payment");
    app.call(
        "POST",
        &pay_uri,
        Some(&finance),
        Some(json!({"reference": "TR-1"})),
    )
    .await
    .assert_problem(409, "invalid_transition");
    let approve_uri = format!("/api/bureau/statements/{id}/approve");
    for token in [&admin, &reviewer] {
        app.call("POST", &approve_uri, Some(token), None)
            .await
            .assert_problem(403, "forbidden");
    }
    let approved = app.call("POST", &approve_uri, Some(&finance), None).await;
    assert_eq!(approved.status, StatusCode::OK, "{}", approved.text());
    assert_eq!(approved.json()["status"], "approved");
    app.call("POST", &approve_uri, Some(&finance), None)
        .await
        .assert_problem(409, "invalid_transition");
    // Approval locked the month: its redemptions can no longer be reversed.
    let late = app
        .call(
            "POST",
            &format!(
                "/v1/redemptions/{}/reversal",
                made[0]["id"].as_str().unwrap()
            ),
            Some(&key),
            Some(json!({"reason": "too late"})),
        )
        .await;
    late.assert_problem(409, "period_closed");
    app.call(
        "POST",
        &pay_uri,
        Some(&admin),
        Some(json!({"reference": "TR-1"})),
    )
    .await
    .assert_problem(403, "forbidden");
    // Four eyes: the officer who approved may not record the payment; a colleague does.
    app.call(
        "POST",
        &pay_uri,
        Some(&finance),
        Some(json!({"reference": "TR-2026-06-001"})),
    )
    .await
    .assert_problem(403, "separation_of_duties");
    let payer = app.staff("finance1b", Role::Finance).await;
    let paid = app
        .call(
            "POST",
            &pay_uri,
            Some(&payer),
            Some(json!({"reference": "TR-2026-06-001"})),
        )
        .await;
    assert_eq!(paid.status, StatusCode::OK, "{}", paid.text());
    assert_eq!(paid.json()["status"], "paid");
    assert_eq!(paid.json()["payment_reference"], "TR-2026-06-001");
    let payment: rust_decimal::Decimal =
        sqlx::query_scalar("select amount from journal where kind = 'payment'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(payment.to_string(), "7500.00");
    // Closing again leaves the paid statement as it is.
    let again = app
        .call(
            "POST",
            "/api/bureau/statements",
            Some(&reviewer),
            Some(json!({"month": "2026-06"})),
        )
        .await
        .json();
    assert_eq!(again[0]["status"], "paid");
    assert_ledger_consistent(&pool).await;
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn a_redemption_after_approval_belongs_to_the_next_month(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let (key, made) = june(&app).await;
    let reviewer = app.staff("reviewer2", Role::Reviewer).await;
    let finance = app.staff("finance2", Role::Finance).await;
    // June is closed and approved while it is still June.
    let statement = app
        .call(
            "POST",
            "/api/bureau/statements",
            Some(&reviewer),
            Some(json!({"month": "2026-06"})),
        )
        .await
        .json();
    let id = statement[0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{statement}"))
        .to_owned();
    let approved = app
        .call(
            "POST",
            &format!("/api/bureau/statements/{id}/approve"),
            Some(&finance),
            None,
        )
        .await;
    assert_eq!(approved.status, StatusCode::OK, "{}", approved.text());
    app.state.clock.set(datetime!(2026-06-30 20:00 +8));
    let voucher_token: String =
        sqlx::query_scalar("select token from vouchers where id = $1::uuid")
            .bind(made[0]["voucher_id"].as_str().unwrap())
            .fetch_one(&pool)
            .await
            .unwrap();
    let reply = app
        .send(redemption(
            &key,
            "late",
            json!({"voucher": voucher_token, "invoice_no": "JUN-LATE", "bill_amount": "100.00"}),
        ))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    app.state.clock.set(datetime!(2026-07-05 10:00 +8));
    let reviewer = app.staff("reviewer2b", Role::Reviewer).await;
    let june = app
        .call(
            "GET",
            "/api/bureau/statements?month=2026-06",
            Some(&reviewer),
            None,
        )
        .await
        .json();
    assert_eq!(
        june[0]["lines"]
            .as_array()
            .unwrap_or_else(|| panic!("{june}"))
            .len(),
        2,
        "the approved June is frozen"
    );
    let july = app
        .call(
            "POST",
            "/api/bureau/statements",
            Some(&reviewer),
            Some(json!({"month": "2026-07"})),
        )
        .await
        .json();
    let lines = july[0]["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["invoice_no"], "JUN-LATE");
    assert_eq!(july[0]["total"], "30.00");
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn exports_and_the_platform_s_own_reconciliation(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let (key, _) = june(&app).await;
    let (_, other_key) = app.platform_with_key(2).await;
    app.state.clock.set(datetime!(2026-07-02 10:00 +8));
    let reviewer = app.staff("reviewer3", Role::Reviewer).await;
    let statement = app
        .call(
            "POST",
            "/api/bureau/statements",
            Some(&reviewer),
            Some(json!({"month": "2026-06"})),
        )
        .await
        .json();
    let id = statement[0]["id"].as_str().unwrap().to_owned();
    let csv = app
        .call(
            "GET",
            &format!("/api/bureau/statements/{id}/lines.csv"),
            Some(&reviewer),
            None,
        )
        .await;
    assert_eq!(csv.header("content-type"), Some("text/csv; charset=utf-8"));
    let text = csv.text();
    assert!(
        text.contains("平台名称") && text.contains("抵扣金额(补贴)") && text.contains("JUN-0"),
        "{text}"
    );
    assert!(text.lines().last().unwrap().starts_with("合计"), "{text}");
    assert!(text.contains("7500.00"));
    let xlsx = app
        .call(
            "GET",
            &format!("/api/bureau/statements/{id}/lines.xlsx"),
            Some(&reviewer),
            None,
        )
        .await;
    assert_eq!(&xlsx.body[..2], b"PK");

    let mine = app
        .call("GET", "/v1/statements?month=2026-06", Some(&key), None)
        .await;
    assert_eq!(mine.json()["id"], id.as_str());
    app.call(
        "GET",
        "/v1/statements?month=2026-06",
        Some(&other_key),
        None,
    )
    .await
    .assert_problem(404, "not_found");
    app.call("GET", "/v1/statements?month=2026-05", Some(&key), None)
        .await
        .assert_problem(404, "not_found");

    let upload = "invoice_no,discount\nJUN-0,6000.00\nJUN-2,1499.00\nJUN-9,10.00\n";
    let uri = format!("/v1/statements/{id}/reconciliation");
    let reply = app
        .send(crate::support::raw_with_key(
            "POST", &uri, &key, "text/csv", upload,
        ))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let diff = reply.json();
    assert_eq!(diff["matched"], 1);
    assert_eq!(diff["amount_mismatch"][0]["invoice_no"], "JUN-2");
    assert_eq!(diff["amount_mismatch"][0]["statement"], "1500.00");
    assert_eq!(diff["missing_in_statement"][0]["invoice_no"], "JUN-9");
    assert_eq!(diff["missing_in_upload"], json!([]));
    let bad = app
        .send(crate::support::raw_with_key(
            "POST",
            &uri,
            &key,
            "text/csv",
            "JUN-0,6000.001\n",
        ))
        .await;
    bad.assert_problem(422, "validation_failed");
    let theirs = app
        .send(crate::support::raw_with_key(
            "POST", &uri, &other_key, "text/csv", upload,
        ))
        .await;
    theirs.assert_problem(404, "not_found");
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn settlement_runs_over_http(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    june(&app).await;
    app.state.clock.set(datetime!(2026-07-01 03:00 +8));
    let reviewer = app.staff("reviewer4", Role::Reviewer).await;
    let finance = app.staff("finance4", Role::Finance).await;
    let body = json!({"business_date": "2026-06-30"});
    app.call(
        "POST",
        "/api/bureau/settlement-runs",
        Some(&finance),
        Some(body.clone()),
    )
    .await
    .assert_problem(403, "forbidden");
    let first = app
        .call(
            "POST",
            "/api/bureau/settlement-runs",
            Some(&reviewer),
            Some(body.clone()),
        )
        .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());
    let again = app
        .call(
            "POST",
            "/api/bureau/settlement-runs",
            Some(&reviewer),
            Some(body),
        )
        .await;
    assert_eq!(again.json(), first.json());
    let stored = app
        .call(
            "GET",
            "/api/bureau/settlement-runs/2026-06-30",
            Some(&finance),
            None,
        )
        .await;
    assert_eq!(stored.json(), first.json());
    app.call(
        "GET",
        "/api/bureau/settlement-runs/2026-06-29",
        Some(&finance),
        None,
    )
    .await
    .assert_problem(404, "not_found");
    app.call(
        "POST",
        "/api/bureau/settlement-runs",
        Some(&reviewer),
        Some(json!({"business_date": "2026-07-09"})),
    )
    .await
    .assert_problem(422, "validation_failed");
    let listed = app
        .call("GET", "/api/bureau/settlement-runs", Some(&finance), None)
        .await
        .json();
    assert_eq!(listed[0]["runs"], 2);
    assert_eq!(listed[0]["ok"], true);
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn a_reversal_after_the_deadline_returns_the_discount_to_the_budget(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let (platform, key) = app.platform_with_key(1).await;
    app.state.clock.set(datetime!(2026-12-30 10:00 +8));
    let voucher = app.voucher(platform, 1, "10000.00").await; // 3,000.00
    let body =
        json!({"voucher": voucher["token"], "invoice_no": "DEC-1", "bill_amount": "1000.00"});
    let made = app.send(redemption(&key, "dec-1", body)).await.json();
    // The year ends: the nightly job expires the voucher and returns its unused 2,700.00.
    // Run as the nightly job would, once the day has ended (not at the wall clock's now).
    let report = job::run_steps_at(
        &pool,
        time::macros::date!(2026 - 12 - 31),
        datetime!(2027-01-01 02:00 +8),
        None,
        &|_, _| {},
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(report.expired_vouchers, 1);
    assert!(
        report.invariants.iter().all(|i| i.ok),
        "{:#?}",
        report.invariants
    );
    // In January the platform voids the December invoice; December is not approved yet.
    app.state.clock.set(datetime!(2027-01-02 10:00 +8));
    let reply = app
        .call(
            "POST",
            &format!("/v1/redemptions/{}/reversal", made["id"].as_str().unwrap()),
            Some(&key),
            Some(json!({"reason": "invoice voided"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let balance = voucher_core::ledger::voucher_balance(
        &mut pool.acquire().await.unwrap(),
        made["voucher_id"].as_str().unwrap().parse().unwrap(),
    )
    .await
    .unwrap();
    assert!(
        balance.is_zero(),
        "an expired voucher holds nothing, got {balance}"
    );
    let report = job::run_steps(&pool, time::macros::date!(2027 - 01 - 02), None, &|_, _| {})
        .await
        .unwrap()
        .unwrap();
    assert!(
        report.invariants.iter().all(|i| i.ok),
        "{:#?}",
        report.invariants
    );
    assert_ledger_consistent(&pool).await;
}
