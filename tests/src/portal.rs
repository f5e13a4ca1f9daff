//! The firm portal: registration, sessions, quotes, claims, vouchers, QR codes, cancellation.

use axum::http::StatusCode;
use serde_json::json;
use sqlx::PgPool;

use crate::support::{assert_ledger_consistent, test_uscc, TestApp};

fn registration(n: u32) -> serde_json::Value {
    json!({"uscc": test_uscc(n), "name": "宝安测试制造有限公司", "industry_code": "C3911",
           "district": "宝安区", "contact_name": "李四", "contact_phone": "13800000000",
           "password": "correct-horse-battery"})
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn registration_computes_eligibility_and_refuses_duplicates(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let reply = app
        .call("POST", "/api/portal/firms", None, Some(registration(1)))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["eligible"], true);
    assert_eq!(body["uscc"], test_uscc(1).to_string());

    let mut other = registration(2);
    other["district"] = json!("南山区");
    let reply = app
        .call("POST", "/api/portal/firms", None, Some(other))
        .await;
    assert_eq!(reply.json()["eligible"], false);

    let reply = app
        .call("POST", "/api/portal/firms", None, Some(registration(1)))
        .await;
    reply.assert_problem(409, "already_registered");
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn bad_registrations_name_the_field(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let cases = [
        ("uscc", json!("914403001922038217")),
        ("uscc", json!("91440300708461136t")),
        ("industry_code", json!("manufacturing")),
        ("password", json!("short")),
        ("contact_phone", json!("call me")),
        ("name", json!("   ")),
    ];
    for (field, value) in cases {
        let mut body = registration(3);
        body[field] = value;
        let reply = app
            .call("POST", "/api/portal/firms", None, Some(body))
            .await;
        reply.assert_problem(422, "validation_failed");
        assert_eq!(reply.json()["field"], field);
    }
}

async fn login(app: &TestApp, uscc: &voucher_core::Uscc, password: &str) -> crate::support::Reply {
    app.call(
        "POST",
        "/api/portal/sessions",
        None,
        Some(json!({"uscc": uscc, "password": password})),
    )
    .await
}

/// Five wrong passwords, then even the right one is refused for a while.
async fn assert_locked_after_five_failures(app: &TestApp, uscc: &voucher_core::Uscc) {
    for _ in 0..5 {
        login(app, uscc, "wrong-password")
            .await
            .assert_problem(401, "unauthorized");
    }
    let reply = login(app, uscc, "correct-horse-battery").await;
    reply.assert_problem(429, "rate_limited");
    assert!(reply.header("retry-after").is_some());
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn login_gives_a_session_and_wrong_passwords_are_throttled(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let (_, _, uscc) = app.firm(10, true).await;
    let reply = login(&app, &uscc, "correct-horse-battery").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let token = reply.json()["token"].as_str().unwrap().to_owned();
    let me = app.call("GET", "/api/portal/me", Some(&token), None).await;
    assert_eq!(me.json()["uscc"], uscc.to_string());
    assert_locked_after_five_failures(&app, &uscc).await;
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn login_throttling_falls_back_to_memory_without_redis(pool: PgPool) {
    let app = TestApp::with_redis(pool, "redis://127.0.0.1:1").await;
    let (_, _, uscc) = app.firm(11, true).await;
    assert_locked_after_five_failures(&app, &uscc).await;
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn sessions_refuse_other_algorithms_audiences_and_garbage(pool: PgPool) {
    use base64::Engine as _;
    let app = TestApp::new(pool).await;
    let (firm_id, token, _) = app.firm(12, true).await;
    let b64 = |v: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let claims = json!({"sub": firm_id, "aud": "portal", "iat": 0, "exp": 4_000_000_000i64});
    let none = format!(
        "{}.{}.",
        b64(json!({"alg": "none", "typ": "JWT"})),
        b64(claims.clone())
    );
    let hs512 = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS512),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(&app.state.keys.get().session_secret),
    )
    .unwrap();
    let staff_token = app
        .staff("reviewer1", voucher_core::auth::Role::Reviewer)
        .await;
    for (what, bad) in [
        ("alg none", none.as_str()),
        ("HS512", hs512.as_str()),
        ("garbage", "abc.def.ghi"),
        ("staff token", staff_token.as_str()),
    ] {
        let reply = app.call("GET", "/api/portal/me", Some(bad), None).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{what}");
        reply.assert_problem(401, "unauthorized");
    }
    let reply = app
        .call("GET", "/api/bureau/programs/2026", Some(&token), None)
        .await;
    reply.assert_problem(401, "unauthorized");
    let reply = app.call("GET", "/api/portal/me", None, None).await;
    reply.assert_problem(401, "unauthorized");
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn a_claim_gives_thirty_percent_floored_and_never_past_the_cap(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let platform = app.platform("云平台甲", 1).await;
    let (_, token, uscc) = app.firm(20, true).await;
    // SPEC §1 / 五(1): 30% of the fee, floored to the fen, at most 50,000 a year.
    let cases = [
        ("33333.33", "9999.99", "floor_fen(9999.999)"),
        ("100000.00", "30000.00", "30% of 100,000"),
        (
            "100000.00",
            "10000.01",
            "capped by what is left: 50,000 − 39,999.99",
        ),
    ];
    for (fee, face, why) in cases {
        let quote = app
            .call(
                "POST",
                "/api/portal/vouchers/quote",
                Some(&token),
                Some(json!({"platform_id": platform, "annual_fee": fee})),
            )
            .await;
        assert_eq!(quote.status, StatusCode::OK, "{why}: {}", quote.text());
        assert_eq!(quote.json()["face_value"], face, "{why}");
        let reply = app.claim(&token, platform, fee).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{why}: {}", reply.text());
        let v = reply.json();
        assert_eq!(v["face_value"], face, "{why}");
        assert_eq!(v["remaining"], face);
        assert_eq!(v["redeemed"], "0.00");
        assert_eq!(v["status"], "active");
        assert_eq!(v["firm_uscc"], uscc.to_string());
        assert!(v["code"].as_str().unwrap().starts_with("BA"));
        assert_eq!(v["token"].as_str().unwrap().split('.').count(), 3);
    }
    let reply = app.claim(&token, platform, "1000.00").await;
    reply.assert_problem(409, "firm_cap_reached");
    let me = app
        .call("GET", "/api/portal/me", Some(&token), None)
        .await
        .json();
    assert_eq!(me["granted"], "50000.00");
    assert_eq!(me["cap_remaining"], "0.00");
    assert_eq!(me["admitted"], true);
    let list = app
        .call("GET", "/api/portal/vouchers", Some(&token), None)
        .await
        .json();
    assert_eq!(list.as_array().unwrap().len(), 3);
    assert_ledger_consistent(&pool).await;
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn bad_claims_are_refused_with_their_codes(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let platform = app.platform("云平台乙", 2).await;
    let (_, token, _) = app.firm(30, true).await;
    let (_, ineligible, _) = app.firm(31, false).await;
    let cases = [
        (
            json!({"platform_id": platform, "annual_fee": 1000}),
            422,
            "validation_failed",
            "a JSON number",
        ),
        (
            json!({"platform_id": platform, "annual_fee": "0.00"}),
            422,
            "validation_failed",
            "zero fee",
        ),
        (
            json!({"platform_id": platform, "annual_fee": "0.03"}),
            422,
            "validation_failed",
            "face value 0.00",
        ),
        (
            json!({"platform_id": platform, "annual_fee": "1.005"}),
            422,
            "validation_failed",
            "three decimals",
        ),
        (
            json!({"platform_id": uuid::Uuid::nil(), "annual_fee": "1000.00"}),
            422,
            "validation_failed",
            "unknown platform",
        ),
        (
            json!({"annual_fee": "1000.00"}),
            422,
            "validation_failed",
            "no platform",
        ),
    ];
    for (body, status, code, why) in cases {
        let reply = app
            .call("POST", "/api/portal/vouchers", Some(&token), Some(body))
            .await;
        assert_eq!(reply.status.as_u16(), status, "{why}: {}", reply.text());
        reply.assert_problem(status, code);
    }
    let reply = app.claim(&ineligible, platform, "1000.00").await;
    reply.assert_problem(422, "not_eligible");
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn vouchers_are_visible_only_to_their_firm_with_qr_codes(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let platform = app.platform("云平台丙", 3).await;
    let (_, token, _) = app.firm(40, true).await;
    let (_, other, _) = app.firm(41, true).await;
    let v = app.claim(&token, platform, "5000.00").await.json();
    let id = v["id"].as_str().unwrap();
    let mine = app
        .call(
            "GET",
            &format!("/api/portal/vouchers/{id}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(mine.json()["token"], v["token"]);
    let theirs = app
        .call(
            "GET",
            &format!("/api/portal/vouchers/{id}"),
            Some(&other),
            None,
        )
        .await;
    theirs.assert_problem(404, "not_found");
    let svg = app
        .call(
            "GET",
            &format!("/api/portal/vouchers/{id}/qr.svg"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(svg.header("content-type"), Some("image/svg+xml"));
    assert!(svg.text().contains("<svg"));
    let png = app
        .call(
            "GET",
            &format!("/api/portal/vouchers/{id}/qr.png"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(png.header("content-type"), Some("image/png"));
    assert_eq!(&png.body[..8], b"\x89PNG\r\n\x1a\n");
    let png_other = app
        .call(
            "GET",
            &format!("/api/portal/vouchers/{id}/qr.png"),
            Some(&other),
            None,
        )
        .await;
    png_other.assert_problem(404, "not_found");
    // A cancelled voucher has nothing to show at the till: no QR code.
    let cancel = app
        .call(
            "POST",
            &format!("/api/portal/vouchers/{id}/cancel"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(cancel.status, StatusCode::OK, "{}", cancel.text());
    for image in ["qr.svg", "qr.png"] {
        app.call(
            "GET",
            &format!("/api/portal/vouchers/{id}/{image}"),
            Some(&token),
            None,
        )
        .await
        .assert_problem(409, "voucher_not_active");
    }
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn cancelling_an_unused_voucher_returns_its_value_and_frees_the_slot(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let platform = app.platform("云平台丁", 4).await;
    let (_, token, _) = app.firm(50, true).await;
    let v = app.claim(&token, platform, "100000.00").await.json();
    let id = v["id"].as_str().unwrap();
    let admitted_before: i32 = sqlx::query_scalar("select firms_admitted from program_years")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(admitted_before, 1);
    let reply = app
        .call(
            "POST",
            &format!("/api/portal/vouchers/{id}/cancel"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.json()["status"], "cancelled");
    let me = app
        .call("GET", "/api/portal/me", Some(&token), None)
        .await
        .json();
    assert_eq!(me["granted"], "0.00");
    assert_eq!(me["cap_remaining"], "50000.00");
    assert_eq!(me["admitted"], false);
    let admitted_after: i32 = sqlx::query_scalar("select firms_admitted from program_years")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(admitted_after, 0);
    let again = app
        .call(
            "POST",
            &format!("/api/portal/vouchers/{id}/cancel"),
            Some(&token),
            None,
        )
        .await;
    again.assert_problem(409, "voucher_not_active");
    assert_ledger_consistent(&pool).await;
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn a_used_voucher_cannot_be_cancelled_and_keeps_the_slot(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let platform = app.platform("云平台戊", 5).await;
    let (_, token, _) = app.firm(60, true).await;
    let used = app.claim(&token, platform, "10000.00").await.json();
    let unused = app.claim(&token, platform, "10000.00").await.json();
    // The redeemer marks a voucher used; here the row is marked directly.
    sqlx::query("update vouchers set redemption_count = 1 where id = $1::uuid")
        .bind(used["id"].as_str().unwrap())
        .execute(&pool)
        .await
        .unwrap();
    let reply = app
        .call(
            "POST",
            &format!(
                "/api/portal/vouchers/{}/cancel",
                used["id"].as_str().unwrap()
            ),
            Some(&token),
            None,
        )
        .await;
    reply.assert_problem(409, "voucher_has_redemptions");
    let reply = app
        .call(
            "POST",
            &format!(
                "/api/portal/vouchers/{}/cancel",
                unused["id"].as_str().unwrap()
            ),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let me = app
        .call("GET", "/api/portal/me", Some(&token), None)
        .await
        .json();
    assert_eq!(me["admitted"], true, "a firm that redeemed keeps its slot");
}
