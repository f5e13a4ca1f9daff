//! Verified firms only (SPEC §2, "Who a firm is"): the reviewer's decision, deleting a
//! squatter, who may see what, claims by firms that are not verified, and migration 0009. The
//! files themselves are `evidence.rs`'s.

use axum::http::StatusCode;
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use uuid::Uuid;
use voucher_core::auth::Role;

use crate::support::{request, send, wide_pool, Reply, TestApp, PDF, PNG};

fn claim_body(platform: Uuid, fee: &str) -> serde_json::Value {
    json!({"platform_id": platform, "annual_fee": fee})
}

async fn me(app: &TestApp, token: &str) -> serde_json::Value {
    let reply = app.call("GET", "/api/portal/me", Some(token), None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    reply.json()
}

async fn decide(app: &TestApp, token: &str, firm: Uuid, body: serde_json::Value) -> Reply {
    app.call(
        "POST",
        &format!("/api/bureau/firms/{firm}/verification"),
        Some(token),
        Some(body),
    )
    .await
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn a_pending_firm_gets_not_verified_and_claims_once_verified(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let platform = app.platform("云平台", 1).await;
    let (id, token, _) = app.pending_firm(1, true).await;
    assert_eq!(me(&app, &token).await["verification"], "pending");

    // Before anything else: even a fee that would be refused, or a firm that is not eligible.
    for fee in ["10000.00", "0.00"] {
        app.call(
            "POST",
            "/api/portal/vouchers/quote",
            Some(&token),
            Some(claim_body(platform, fee)),
        )
        .await
        .assert_problem(409, "not_verified");
        app.claim(&token, platform, fee)
            .await
            .assert_problem(409, "not_verified");
    }
    let (_, ineligible, _) = app.pending_firm(2, false).await;
    app.claim(&ineligible, platform, "10000.00")
        .await
        .assert_problem(409, "not_verified");
    let (slots, rows): (i32, i64) = sqlx::query_as(
        "select firms_admitted, (select count(*) from firm_years) from program_years",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((slots, rows), (0, 0), "no quota slot, no firm-year");

    // Uploading is not enough: still pending until the reviewer decides.
    app.upload_licence(&token).await;
    app.claim(&token, platform, "10000.00")
        .await
        .assert_problem(409, "not_verified");
    let reviewer = app.reviewer().await;
    let reply = decide(
        &app,
        &reviewer,
        id,
        json!({"decision": "verified", "industry_code": "C3911", "district": "宝安区"}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.json()["verification"], "verified");
    assert_eq!(reply.json()["reviewed_by"], "test-reviewer");
    let me = me(&app, &token).await;
    assert_eq!(me["verification"], "verified");
    assert!(me["verification_reason"].is_null());
    let reply = app.claim(&token, platform, "10000.00").await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());

    // Audited with the reviewer's name.
    let actor: String = sqlx::query_scalar(
        "select actor from audit_log where action = 'firm.verification' and subject = $1",
    )
    .bind(format!("firm:{id}"))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(actor, "staff:test-reviewer");
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn verification_needs_a_business_license_and_takes_the_licence_data(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let reviewer = app.reviewer().await;
    let (id, token, _) = app.pending_firm(3, true).await;
    decide(&app, &reviewer, id, json!({"decision": "verified"}))
        .await
        .assert_problem(409, "invalid_transition");
    let reply = app
        .upload(
            &token,
            "authorization_letter",
            "application/pdf",
            PDF.to_vec(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    decide(&app, &reviewer, id, json!({"decision": "verified"}))
        .await
        .assert_problem(409, "invalid_transition");
    let reply = app
        .upload(&token, "business_license", "image/png", PNG.to_vec())
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    // A malformed code from the licence is refused like one at registration.
    let reply = decide(
        &app,
        &reviewer,
        id,
        json!({"decision": "verified", "industry_code": "manufacturing"}),
    )
    .await;
    reply.assert_problem(422, "validation_failed");
    assert_eq!(reply.json()["field"], "industry_code");
    // Declared C3911 in 宝安区; the licence says another district: not eligible.
    let reply = decide(
        &app,
        &reviewer,
        id,
        json!({"decision": "verified", "industry_code": "C3911", "district": "南山区"}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let body = reply.json();
    assert_eq!(
        (&body["district"], &body["eligible"]),
        (&json!("南山区"), &json!(false))
    );
    assert_eq!(body["evidence"].as_array().unwrap().len(), 2);
    // Decided once: a verified firm is not decided again, nor uploads more.
    decide(
        &app,
        &reviewer,
        id,
        json!({"decision": "rejected", "reason": "x"}),
    )
    .await
    .assert_problem(409, "invalid_transition");
    app.upload(&token, "business_license", "image/png", PNG.to_vec())
        .await
        .assert_problem(409, "invalid_transition");
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn a_rejected_firm_sees_the_reason_and_is_pending_again_when_it_uploads(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let platform = app.platform("云平台", 5).await;
    let reviewer = app.reviewer().await;
    let (id, token, _) = app.pending_firm(5, true).await;
    app.upload_licence(&token).await;
    let reply = decide(&app, &reviewer, id, json!({"decision": "rejected"})).await;
    reply.assert_problem(422, "validation_failed");
    assert_eq!(reply.json()["field"], "reason");
    let reply = decide(
        &app,
        &reviewer,
        id,
        json!({"decision": "rejected", "reason": "营业执照照片模糊，请重新拍摄"}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let me_now = me(&app, &token).await;
    assert_eq!(me_now["verification"], "rejected");
    assert_eq!(
        me_now["verification_reason"],
        "营业执照照片模糊，请重新拍摄"
    );
    app.claim(&token, platform, "10000.00")
        .await
        .assert_problem(409, "not_verified");
    app.upload_licence(&token).await;
    let me_now = me(&app, &token).await;
    assert_eq!(me_now["verification"], "pending");
    assert!(me_now["verification_reason"].is_null());
    let queue = app
        .call(
            "GET",
            "/api/bureau/firms?verification=pending",
            Some(&reviewer),
            None,
        )
        .await;
    assert_eq!(queue.json()[0]["id"], id.to_string());
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn deleting_a_squatter_frees_the_uscc_for_the_real_firm(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let reviewer = app.reviewer().await;
    let (squatter, squatter_token, uscc) = app.pending_firm(6, true).await;
    let reply = app
        .call(
            "POST",
            "/api/portal/firms",
            None,
            Some(
                json!({"uscc": uscc, "name": "真实企业", "industry_code": "C3911",
                        "district": "宝安区", "contact_name": "王五",
                        "contact_phone": "13900000000", "password": "real-firm-password"}),
            ),
        )
        .await;
    reply.assert_problem(409, "already_registered");
    assert!(reply.json()["detail"].as_str().unwrap().contains("bureau"));
    let path = format!("/api/bureau/firms/{squatter}");
    let reply = app.call("DELETE", &path, Some(&reviewer), None).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text());
    app.call("GET", "/api/portal/me", Some(&squatter_token), None)
        .await
        .assert_problem(401, "unauthorized");
    app.call("GET", &path, Some(&reviewer), None)
        .await
        .assert_problem(404, "not_found");
    let (real, _, _) = app.firm(6, true).await;
    assert_ne!(real, squatter);
    // A verified firm is never deleted; nor is one that does not exist.
    app.call(
        "DELETE",
        &format!("/api/bureau/firms/{real}"),
        Some(&reviewer),
        None,
    )
    .await
    .assert_problem(409, "invalid_transition");
    app.call(
        "DELETE",
        "/api/bureau/firms/not-a-uuid",
        Some(&reviewer),
        None,
    )
    .await
    .assert_problem(404, "not_found");
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn only_reviewers_decide_admins_read_and_finance_stays_out(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let (firm, token, uscc) = app.pending_firm(9, true).await;
    let file = app
        .upload(&token, "business_license", "image/png", PNG.to_vec())
        .await
        .json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let finance = app.staff("finance1", Role::Finance).await;
    let admin = app.staff("admin1", Role::Admin).await;
    let reads = [
        "/api/bureau/firms".to_owned(),
        format!("/api/bureau/firms/{firm}"),
        format!("/api/bureau/firms/{firm}/evidence/{file}"),
    ];
    for path in &reads {
        app.call("GET", path, Some(&finance), None)
            .await
            .assert_problem(403, "forbidden");
        let reply = app.call("GET", path, Some(&admin), None).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.text());
    }
    for who in [&finance, &admin] {
        decide(&app, who, firm, json!({"decision": "verified"}))
            .await
            .assert_problem(403, "forbidden");
        app.call(
            "DELETE",
            &format!("/api/bureau/firms/{firm}"),
            Some(who),
            None,
        )
        .await
        .assert_problem(403, "forbidden");
    }
    let reset = format!("/api/bureau/firms/{firm}/password-reset");
    app.call("POST", &reset, Some(&finance), None)
        .await
        .assert_problem(403, "forbidden");
    let reply = app.call("POST", &reset, Some(&admin), None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());

    // The reviewer's list: search by USCC prefix or by name, filter by state.
    let reviewer = app.reviewer().await;
    let (other, _, _) = app.firm(10, true).await;
    let list = |q: String| {
        let app = &app;
        let reviewer = reviewer.clone();
        async move {
            let reply = app.call("GET", &q, Some(&reviewer), None).await;
            assert_eq!(reply.status, StatusCode::OK, "{q}: {}", reply.text());
            reply
                .json()
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["id"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    let prefix = &uscc.as_str()[..14];
    assert_eq!(
        list(format!("/api/bureau/firms?q={prefix}")).await,
        [firm.to_string(), other.to_string()]
    );
    assert_eq!(
        list(format!("/api/bureau/firms?q={uscc}")).await,
        [firm.to_string()]
    );
    assert_eq!(
        list("/api/bureau/firms?q=%E4%BC%81%E4%B8%9A10".to_owned()).await,
        [other.to_string()],
        "name 测试企业10 contains 企业10"
    );
    assert_eq!(
        list("/api/bureau/firms?verification=verified".to_owned()).await,
        [other.to_string()]
    );
    assert_eq!(
        list("/api/bureau/firms?verification=pending&limit=1".to_owned()).await,
        [firm.to_string()]
    );
    assert_eq!(
        list("/api/bureau/firms?q=".to_owned()).await.len(),
        2,
        "an empty search lists every firm"
    );
    let reply = app
        .call(
            "GET",
            "/api/bureau/firms?verification=maybe",
            Some(&reviewer),
            None,
        )
        .await;
    reply.assert_problem(422, "validation_failed");
    assert_eq!(reply.json()["field"], "verification");
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn fifty_pending_and_ten_verified_firms_at_once_against_five_slots_admit_five_verified(
    _harness: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let pool = wide_pool(connect).await;
    let app = TestApp::new(pool.clone()).await;
    let platform = app.platform("云平台", 11).await;
    sqlx::query("update program_years set firm_quota = 5")
        .execute(&pool)
        .await
        .unwrap();
    let pending = app.firms_in_bulk_as(50, 100, "pending").await;
    let verified = app.firms_in_bulk_as(10, 200, "verified").await;
    let verified_ids: Vec<Uuid> = verified.iter().map(|(id, _)| *id).collect();
    let mut tasks = Vec::new();
    // Interleaved, so pending and verified claims really meet in Postgres.
    for (i, (_, token)) in pending.iter().chain(verified.iter()).enumerate() {
        let router = app.router.clone();
        let token = token.clone();
        let body = claim_body(platform, "10000.00");
        tasks.push((
            i >= 50,
            tokio::spawn(async move {
                send(
                    &router,
                    request("POST", "/api/portal/vouchers", Some(&token), Some(body)),
                )
                .await
            }),
        ));
    }
    let (mut created, mut exhausted, mut not_verified) = (0, 0, 0);
    for (is_verified, task) in tasks {
        let reply = task.await.unwrap();
        match (reply.status, is_verified) {
            (StatusCode::CREATED, true) => created += 1,
            (StatusCode::CONFLICT, true) => {
                assert_eq!(reply.json()["code"], "quota_exhausted");
                exhausted += 1;
            }
            (StatusCode::CONFLICT, false) => {
                assert_eq!(reply.json()["code"], "not_verified");
                not_verified += 1;
            }
            (status, _) => panic!("unexpected {status}: {}", reply.text()),
        }
    }
    assert_eq!((created, exhausted, not_verified), (5, 5, 50));
    let holders: Vec<Uuid> = sqlx::query_scalar("select distinct firm_id from vouchers")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(holders.len(), 5);
    assert!(holders.iter().all(|h| verified_ids.contains(h)));
    let admitted: i32 = sqlx::query_scalar("select firms_admitted from program_years")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(admitted, 5);
    crate::support::assert_ledger_consistent(&pool).await;
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn postgres_refuses_a_voucher_for_a_firm_that_is_not_verified(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let platform = app.platform("云平台", 12).await;
    let (firm, _) = app.firms_in_bulk_as(1, 300, "pending").await.remove(0);
    let inserted = sqlx::query(
        r#"insert into vouchers (id, code, year, firm_id, platform_id, annual_fee, face_value,
                                 kid, token, issued_at, lapses_at, expires_at)
           values ($1, 'BA26-TEST-TEST', 2026, $2, $3, 100, 30, 'k', 't', now(), now(), now())"#,
    )
    .bind(Uuid::now_v7())
    .bind(firm)
    .bind(platform)
    .execute(&pool)
    .await
    .unwrap_err();
    assert!(voucher_core::error::is_constraint(
        &inserted,
        "vouchers_firm_verified"
    ));
}

#[sqlx::test(migrations = false)]
async fn firms_from_before_verification_are_pending_their_vouchers_kept_and_verification_is_final(
    pool: PgPool,
) {
    for m in voucher_core::db::MIGRATOR.iter().filter(|m| m.version < 9) {
        sqlx::raw_sql(&m.sql).execute(&pool).await.unwrap();
    }
    sqlx::raw_sql(
        r#"insert into program_years (year, rate, cap_per_firm, firm_quota, firms_admitted,
                                      claim_validity_days, redeem_deadline)
           values (2026, 0.30, 50000, 2000, 1, 90, '2026-12-31 23:59:59+08');
           insert into platforms (id, name, uscc)
           values ('00000000-0000-7000-8000-000000000001', 'p', '91440300MA5BENCH0X');
           insert into firms (id, uscc, name, industry_code, district, contact_name, contact_phone,
                              password_hash, eligible)
           values ('00000000-0000-7000-9000-000000000001', 'A', 'holds a voucher', 'C3911', '宝安区', 'x', '13800000000', 'x', true),
                  ('00000000-0000-7000-9000-000000000002', 'B', 'registered only', 'C3911', '宝安区', 'x', '13800000000', 'x', true);
           insert into vouchers (id, code, year, firm_id, platform_id, annual_fee, face_value, kid,
                                 token, issued_at, lapses_at, expires_at)
           values ('00000000-0000-7000-a000-000000000001', 'BA26-AAAA-AAAA', 2026,
                   '00000000-0000-7000-9000-000000000001', '00000000-0000-7000-8000-000000000001',
                   10000, 3000, 'k', 't', now(), now() + interval '90 days', '2026-12-31 23:59:59+08');"#,
    )
    .execute(&pool)
    .await
    .unwrap();
    let m9 = voucher_core::db::MIGRATOR
        .iter()
        .find(|m| m.version == 9)
        .unwrap();
    sqlx::raw_sql(&m9.sql).execute(&pool).await.unwrap();
    let states: Vec<(String, String)> =
        sqlx::query_as("select name, verification from firms order by id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        states,
        [
            ("holds a voucher".to_owned(), "verified".to_owned()),
            ("registered only".to_owned(), "pending".to_owned())
        ]
    );
    // 0010: nobody reviewed the firm that held a voucher (it could be a squatter that claimed a
    // cent): it waits in the queue like the other, and keeps the voucher it holds.
    let m10 = voucher_core::db::MIGRATOR
        .iter()
        .find(|m| m.version == 10)
        .unwrap();
    sqlx::raw_sql(&m10.sql).execute(&pool).await.unwrap();
    let states: Vec<(String, String)> =
        sqlx::query_as("select name, verification from firms order by id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        states,
        [
            ("holds a voucher".to_owned(), "pending".to_owned()),
            ("registered only".to_owned(), "pending".to_owned())
        ]
    );
    let vouchers: i64 = sqlx::query_scalar("select count(*) from vouchers")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(vouchers, 1);
    // Once a reviewer verifies a firm, Postgres keeps it verified and keeps it.
    sqlx::raw_sql(
        "update firms set verification = 'verified', reviewed_by = 'rev', reviewed_at = now()
         where name = 'registered only'",
    )
    .execute(&pool)
    .await
    .unwrap();
    for sql in [
        "update firms set verification = 'rejected', verification_reason = 'x' where name = 'registered only'",
        "update firms set verification = 'pending' where name = 'registered only'",
        "delete from firms where name = 'registered only'",
    ] {
        let refused = sqlx::raw_sql(sql).execute(&pool).await.unwrap_err();
        assert!(
            voucher_core::error::is_constraint(&refused, "firms_verification_final"),
            "{sql}: {refused}"
        );
    }
}
