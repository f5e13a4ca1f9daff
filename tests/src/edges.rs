//! Clean at every edge (API.md, Conventions): hostile text, bounded dates, look-alike invoice
//! numbers, path and query errors as problems, duplicate JSON keys, no-store on credentials.

use axum::http::StatusCode;
use serde_json::{json, Value};
use sqlx::PgPool;
use voucher_core::auth::Role;

use crate::support::{raw, redemption, request, test_uscc, TestApp};

async fn count(pool: &PgPool, table: &str) -> i64 {
    sqlx::query_scalar(&format!("select count(*) from {table}"))
        .fetch_one(pool)
        .await
        .unwrap()
}

fn registration(n: u32, field: &str, value: &str) -> Value {
    let mut body = json!({"uscc": test_uscc(n), "name": "宝安测试制造有限公司",
        "industry_code": "C3911", "district": "宝安区", "contact_name": "李四",
        "contact_phone": "13800000000", "password": "correct-horse-battery"});
    body[field] = json!(value);
    body
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn hostile_text_is_refused_naming_the_field_and_nothing_is_stored(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let firms = count(&pool, "firms").await;
    let cases = [
        ("name", "宝安\u{0}制造", "a NUL"),
        ("name", "\u{1b}[31m宝安制造", "an ANSI escape"),
        ("name", "宝安\u{202e}造制", "a right-to-left override"),
        (
            "name",
            "\u{200b}\u{200d}\u{feff}",
            "only invisible characters",
        ),
        ("contact_name", "李\u{2066}四", "an isolate"),
        ("district", "宝安区\u{85}", "a C1 control"),
    ];
    for (i, (field, value, why)) in cases.into_iter().enumerate() {
        let reply = app
            .call(
                "POST",
                "/api/portal/firms",
                None,
                Some(registration(700 + i as u32, field, value)),
            )
            .await;
        reply.assert_problem(422, "validation_failed");
        assert_eq!(reply.json()["field"], field, "{why}");
    }
    assert_eq!(count(&pool, "firms").await, firms, "nothing stored");

    // A NUL in an anonymous login is a wrong login, not a server error.
    let reply = app
        .call(
            "POST",
            "/api/portal/sessions",
            None,
            Some(json!({"uscc": "91440300\u{0}", "password": "x"})),
        )
        .await;
    reply.assert_problem(401, "unauthorized");

    let admin = app.staff("admin1", Role::Admin).await;
    let platforms = count(&pool, "platforms").await;
    let reply = app
        .call(
            "POST",
            "/api/bureau/platforms",
            Some(&admin),
            Some(json!({"name": "云\u{0}平台", "uscc": test_uscc(800)})),
        )
        .await;
    reply.assert_problem(422, "validation_failed");
    assert_eq!(reply.json()["field"], "name");
    assert_eq!(count(&pool, "platforms").await, platforms);
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn redemption_evidence_and_dates_are_checked_before_the_database(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let (platform, key) = app.platform_with_key(1).await;
    let voucher = app.voucher(platform, 1, "10000.00").await;
    let cases = [
        ("billing_period", json!("2026-+1"), "a sign in the month"),
        ("billing_period", json!("1999-12"), "a year before 2000"),
        ("invoice_no", json!("INV\u{0}1"), "a NUL"),
        ("invoice_no", json!("\u{200b}"), "nothing visible"),
        ("contract_no", json!("C\u{202e}1"), "a bidi override"),
    ];
    for (i, (field, value, why)) in cases.into_iter().enumerate() {
        let mut body = json!({"voucher": voucher["token"], "invoice_no": format!("E-{i}"),
                              "bill_amount": "100.00"});
        body[field] = value;
        let reply = app.send(redemption(&key, &format!("e-{i}"), body)).await;
        reply.assert_problem(422, "validation_failed");
        assert_eq!(reply.json()["field"], field, "{why}");
    }
    assert_eq!(count(&pool, "redemptions").await, 0, "nothing stored");

    let reviewer = app.staff("reviewer1", Role::Reviewer).await;
    for date in [
        "0000-01-01",
        "-0001-01-01",
        "-9999-01-01",
        "2101-01-01",
        "2026-02-30",
    ] {
        let reply = app
            .call(
                "POST",
                "/api/bureau/settlement-runs",
                Some(&reviewer),
                Some(json!({"business_date": date})),
            )
            .await;
        reply.assert_problem(422, "validation_failed");
        assert_eq!(reply.json()["field"], "business_date", "{date}");
    }
    assert_eq!(count(&pool, "settlement_runs").await, 0);
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn invoices_that_differ_only_by_an_invisible_or_look_alike_character_are_one(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let (platform, key) = app.platform_with_key(1).await;
    let voucher = app.voucher(platform, 1, "100000.00").await;
    let first = app
        .send(redemption(
            &key,
            "inv-1",
            json!({"voucher": voucher["token"], "invoice_no": "INV-X", "bill_amount": "100.00"}),
        ))
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text());
    for (i, (variant, why)) in [
        ("INV-X\u{200b}", "a zero-width space"),
        ("\u{feff}INV-X", "a BOM"),
        ("INV\u{2011}X", "a non-breaking hyphen"),
        ("ＩＮＶ－Ｘ", "full-width letters"),
    ]
    .into_iter()
    .enumerate()
    {
        let reply = app
            .send(redemption(
                &key,
                &format!("inv-{}", i + 2),
                json!({"voucher": voucher["token"], "invoice_no": variant, "bill_amount": "100.00"}),
            ))
            .await;
        reply.assert_problem(409, "duplicate_invoice");
        let _ = why;
    }
    assert_eq!(count(&pool, "redemptions").await, 1);
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn the_sql_reference_key_is_the_rust_one(pool: PgPool) {
    let inputs = [
        "INV-X",
        "INV-X\u{200b}",
        "\u{feff}INV-X",
        "INV\u{2011}X",
        "INV\u{2013}X",
        "INV\u{2212}X",
        "ＩＮＶ－Ｘ",
        " INV X ",
        "发票\u{3000}0001",
        "Ⅻ-№5",
        "ﬁ\u{00ad}le",
        "A\u{e0041}B",
        "x\u{1d173}y",
        "\u{2028}7",
        "No.\u{a0}12",
        "①②",
        "㍿",
        "ｶﾞ",
        "INV\u{fe63}X",
    ];
    for input in inputs {
        let sql: String = sqlx::query_scalar("select reference_key($1)")
            .bind(input)
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(
            sql,
            voucher_core::text::reference_key(input),
            "{input:?} ({})",
            input.escape_unicode()
        );
    }
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn path_query_and_body_errors_are_problems_with_their_codes(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let (_, firm, _) = app.firm(1, true).await;
    let (_, key) = app.platform_with_key(1).await;

    let reply = app
        .call("GET", "/api/portal/vouchers/not-a-uuid", Some(&firm), None)
        .await;
    reply.assert_problem(404, "not_found");
    let reply = app.call("GET", "/assets/nope.js", None, None).await;
    reply.assert_problem(404, "not_found");

    for (uri, field) in [
        ("/v1/redemptions?month=2026-01&month=2026-02", "month"),
        ("/v1/redemptions?month=2026-+1", "month"),
    ] {
        let reply = app.call("GET", uri, Some(&key), None).await;
        reply.assert_problem(422, "validation_failed");
        assert_eq!(reply.json()["field"], field, "{uri}");
    }

    let reply = app
        .send(raw(
            "POST",
            "/api/portal/sessions",
            "application/json",
            r#"{"uscc": "x", "uscc": "y", "password": "p"}"#,
        ))
        .await;
    reply.assert_problem(400, "malformed_request");
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn answers_that_carry_a_credential_are_not_stored(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let (platform, _) = app.platform_with_key(1).await;
    let voucher = app.voucher(platform, 1, "10000.00").await;
    let (_, firm, uscc) = app.firm(2, true).await;
    let login = app
        .call(
            "POST",
            "/api/portal/sessions",
            None,
            Some(json!({"uscc": uscc, "password": "correct-horse-battery"})),
        )
        .await;
    assert_eq!(login.status, StatusCode::OK);
    assert_eq!(login.header("cache-control"), Some("no-store"));
    let token = crate::support::firm_token(&app, &voucher).await;
    let id = voucher["id"].as_str().unwrap();
    for uri in [
        format!("/api/portal/vouchers/{id}"),
        format!("/api/portal/vouchers/{id}/qr.png"),
        format!("/api/portal/vouchers/{id}/qr.svg"),
    ] {
        let reply = app.send(request("GET", &uri, Some(&token), None)).await;
        assert_eq!(reply.status, StatusCode::OK, "{uri}");
        assert_eq!(reply.header("cache-control"), Some("no-store"), "{uri}");
    }
    let _ = firm;
}

async fn status_of(pool: &PgPool, voucher: &Value) -> String {
    sqlx::query_scalar("select status from vouchers where id = $1::uuid")
        .bind(voucher["id"].as_str().unwrap())
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn run_for(app: &TestApp, reviewer: &str, date: &str) -> Value {
    let reply = app
        .call(
            "POST",
            "/api/bureau/settlement-runs",
            Some(reviewer),
            Some(json!({"business_date": date})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    reply.json()
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn a_run_for_today_lapses_and_expires_nothing_whose_time_has_not_come(pool: PgPool) {
    use time::macros::datetime;
    let app = TestApp::new(pool.clone()).await;
    let (platform, key) = app.platform_with_key(1).await;

    // Claimed at 15:00 on March 2nd, unused it lapses at 15:00 ninety days on (May 31st).
    app.state.clock.set(datetime!(2026-03-02 15:00 +8));
    let lapsing = app.voucher(platform, 1, "10000.00").await;
    app.state.clock.set(datetime!(2026-05-31 12:00 +8));
    // A reviewer's session lasts hours: one for each moment the clock is set to.
    let reviewer = app.staff("reviewer1", Role::Reviewer).await;
    let report = run_for(&app, &reviewer, "2026-05-31").await;
    assert_eq!(
        report["lapsed_vouchers"], 0,
        "at noon its time has not come"
    );
    assert_eq!(status_of(&pool, &lapsing).await, "active");
    app.state.clock.set(datetime!(2026-05-31 16:00 +8));
    let report = run_for(&app, &reviewer, "2026-05-31").await;
    assert_eq!(report["lapsed_vouchers"], 1, "at four it has");
    assert_eq!(status_of(&pool, &lapsing).await, "lapsed");

    // Claimed in December and used once, it may be redeemed until Dec 31st 23:59:59.
    app.state.clock.set(datetime!(2026-12-01 10:00 +8));
    let december = app.voucher(platform, 2, "10000.00").await;
    let used = app
        .send(redemption(
            &key,
            "dec-1",
            json!({"voucher": december["token"], "invoice_no": "DEC-1", "bill_amount": "100.00"}),
        ))
        .await;
    assert_eq!(used.status, StatusCode::CREATED, "{}", used.text());
    app.state.clock.set(datetime!(2026-12-31 12:00 +8));
    let reviewer = app.staff("reviewer2", Role::Reviewer).await;
    run_for(&app, &reviewer, "2026-12-31").await;
    assert_eq!(
        status_of(&pool, &december).await,
        "active",
        "noon on Dec 31"
    );
    app.state.clock.set(datetime!(2027-01-01 02:00 +8));
    let reviewer = app.staff("reviewer3", Role::Reviewer).await;
    run_for(&app, &reviewer, "2026-12-31").await;
    assert_eq!(
        status_of(&pool, &december).await,
        "expired",
        "after the year"
    );
    crate::support::assert_ledger_consistent(&pool).await;
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn a_platform_pages_through_its_month_with_link_headers(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let (platform, key) = app.platform_with_key(1).await;
    let voucher = app.voucher(platform, 1, "100000.00").await;
    for i in 0..5 {
        let reply = app
            .send(redemption(
                &key,
                &format!("page-{i}"),
                json!({"voucher": voucher["token"], "invoice_no": format!("P-{i}"), "bill_amount": "10.00"}),
            ))
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    }
    let month = voucher_core::calendar::month_of(
        app.state
            .clock
            .now()
            .to_offset(voucher_core::state::SHANGHAI)
            .date(),
    );
    let mut next = Some(format!("/v1/redemptions?month={month}&limit=2"));
    let mut seen = Vec::new();
    let mut pages = 0;
    while let Some(uri) = next.take() {
        let reply = app.call("GET", &uri, Some(&key), None).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        pages += 1;
        // A redemption made while paging lands after the cursor, never repeats a row.
        if pages == 2 {
            let late = app
                .send(redemption(
                    &key,
                    "page-late",
                    json!({"voucher": voucher["token"], "invoice_no": "P-late", "bill_amount": "10.00"}),
                ))
                .await;
            assert_eq!(late.status, StatusCode::CREATED);
        }
        for r in reply.json().as_array().unwrap() {
            seen.push(r["invoice_no"].as_str().unwrap().to_owned());
        }
        next = reply.header("link").map(|link| {
            assert!(link.ends_with("; rel=\"next\""), "{link}");
            link.trim_start_matches('<')
                .split('>')
                .next()
                .unwrap()
                .to_owned()
        });
    }
    assert_eq!(seen, ["P-0", "P-1", "P-2", "P-3", "P-4", "P-late"]);
    assert_eq!(pages, 3);
    let reply = app
        .call("GET", "/v1/redemptions?limit=0", Some(&key), None)
        .await;
    reply.assert_problem(422, "validation_failed");
    assert_eq!(reply.json()["field"], "limit");
}
