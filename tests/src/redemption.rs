//! The platform API: keys, verify, redeem, idempotency, reversal, limits; under concurrency.

use std::collections::HashSet;

use axum::http::StatusCode;
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use voucher_core::auth::Role;

use crate::support::{assert_ledger_consistent, redemption, request, send, wide_pool, TestApp};

fn body(voucher: &serde_json::Value, invoice: &str, bill: &str) -> serde_json::Value {
    json!({"voucher": voucher["token"], "invoice_no": invoice, "bill_amount": bill})
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn api_keys_are_shown_once_and_revocation_applies_to_the_next_request(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let (platform, first_key) = app.platform_with_key(1).await;
    assert!(first_key.starts_with("vk_live_"));
    let stored: i64 =
        sqlx::query_scalar("select count(*) from api_keys where display = left($1, 16)")
            .bind(&first_key)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(stored, 1, "only a display prefix and a hash are stored");
    let leaked: i64 = sqlx::query_scalar("select count(*) from api_keys where display = $1")
        .bind(&first_key)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(leaked, 0);
    let admin = app.staff("keyadmin", Role::Admin).await;
    let second = app
        .call(
            "POST",
            &format!("/api/bureau/platforms/{platform}/api-keys"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(second.status, StatusCode::CREATED);
    let second_key = second.json()["api_key"].as_str().unwrap().to_owned();
    let first_id: String =
        sqlx::query_scalar("select id::text from api_keys where display = left($1, 16)")
            .bind(&first_key)
            .fetch_one(&pool)
            .await
            .unwrap();
    let voucher = app.voucher(platform, 1, "10000.00").await;
    let verify = json!({"voucher": voucher["code"]});
    assert_eq!(
        app.call(
            "POST",
            "/v1/vouchers/verify",
            Some(&first_key),
            Some(verify.clone())
        )
        .await
        .status,
        StatusCode::OK
    );
    let reply = app
        .call(
            "DELETE",
            &format!("/api/bureau/api-keys/{first_id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    app.call(
        "POST",
        "/v1/vouchers/verify",
        Some(&first_key),
        Some(verify.clone()),
    )
    .await
    .assert_problem(401, "unauthorized");
    assert_eq!(
        app.call(
            "POST",
            "/v1/vouchers/verify",
            Some(&second_key),
            Some(verify.clone())
        )
        .await
        .status,
        StatusCode::OK
    );
    app.call(
        "POST",
        "/v1/vouchers/verify",
        Some("vk_live_made_up"),
        Some(verify.clone()),
    )
    .await
    .assert_problem(401, "unauthorized");
    app.call("POST", "/v1/vouchers/verify", None, Some(verify))
        .await
        .assert_problem(401, "unauthorized");
    let reviewer = app.staff("keyreviewer", Role::Reviewer).await;
    app.call(
        "POST",
        &format!("/api/bureau/platforms/{platform}/api-keys"),
        Some(&reviewer),
        None,
    )
    .await
    .assert_problem(403, "forbidden");
    let listed = app
        .call("GET", "/api/bureau/platforms", Some(&reviewer), None)
        .await
        .json();
    assert_eq!(listed[0]["keys"].as_array().unwrap().len(), 2);
    assert!(listed
        .to_string()
        .find("vk_live_")
        .is_some_and(|_| !listed.to_string().contains(&second_key)));
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn verify_takes_a_token_or_a_code_and_changes_nothing(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let (platform, key) = app.platform_with_key(1).await;
    let (_, other_key) = app.platform_with_key(2).await;
    let voucher = app.voucher(platform, 1, "10000.00").await;
    for presented in [
        voucher["token"].clone(),
        voucher["code"].clone(),
        json!(voucher["code"].as_str().unwrap().to_lowercase()),
    ] {
        let reply = app
            .call(
                "POST",
                "/v1/vouchers/verify",
                Some(&key),
                Some(json!({"voucher": presented})),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        let v = &reply.json()["voucher"];
        assert_eq!(v["remaining"], "3000.00");
        assert_eq!(v["rate"], "0.30");
    }
    for presented in [voucher["token"].clone(), voucher["code"].clone()] {
        app.call(
            "POST",
            "/v1/vouchers/verify",
            Some(&other_key),
            Some(json!({"voucher": presented})),
        )
        .await
        .assert_problem(403, "wrong_platform");
    }
    // Change a character well inside the signature (the last one carries padding bits).
    let token = voucher["token"].as_str().unwrap();
    let at = token.len() - 10;
    let swapped = if &token[at..=at] == "A" { "B" } else { "A" };
    let forged = format!("{}{swapped}{}", &token[..at], &token[at + 1..]);
    for bad in [json!(forged), json!("BA26-2222-2222"), json!("hello")] {
        app.call(
            "POST",
            "/v1/vouchers/verify",
            Some(&key),
            Some(json!({"voucher": bad})),
        )
        .await
        .assert_problem(422, "invalid_voucher");
    }
    let journal: i64 = sqlx::query_scalar("select count(*) from journal where kind = 'redeem'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(journal, 0);
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn a_redemption_pays_thirty_percent_floored_up_to_the_balance(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let (platform, key) = app.platform_with_key(1).await;
    let voucher = app.voucher(platform, 1, "10000.00").await; // face value 3,000.00
                                                              // SPEC §2: discount = min(floor_fen(bill × 30%), remaining).
    let cases = [
        (
            "INV-1",
            "3333.33",
            "999.99",
            "2000.01",
            "floor_fen(999.999)",
        ),
        ("INV-2", "1000.00", "300.00", "1700.01", "30% of 1,000"),
        (
            "INV-3",
            "10000.00",
            "1700.01",
            "0.00",
            "capped by the balance",
        ),
    ];
    for (invoice, bill, discount, remaining, why) in cases {
        let reply = app
            .send(redemption(&key, invoice, body(&voucher, invoice, bill)))
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{why}: {}", reply.text());
        let r = reply.json();
        assert_eq!(r["discount"], discount, "{why}");
        assert_eq!(r["voucher_remaining"], remaining, "{why}");
        assert_eq!(r["status"], "active");
        assert!(reply.header("idempotent-replayed").is_none());
    }
    let reply = app
        .send(redemption(&key, "INV-4", body(&voucher, "INV-4", "100.00")))
        .await;
    reply.assert_problem(409, "voucher_exhausted");
    let portal = app
        .call(
            "GET",
            "/api/portal/vouchers",
            Some(&crate::support::firm_token(&app, &voucher).await),
            None,
        )
        .await
        .json();
    assert_eq!(portal[0]["status"], "exhausted");
    assert_ledger_consistent(&pool).await;
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn bad_redemptions_get_their_codes(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let (platform, key) = app.platform_with_key(1).await;
    let voucher = app.voucher(platform, 1, "10000.00").await;
    let ok = app
        .send(redemption(&key, "k1", body(&voucher, "INV-1", "100.00")))
        .await;
    assert_eq!(ok.status, StatusCode::CREATED);
    app.send(redemption(&key, "k2", body(&voucher, "INV-1", "100.00")))
        .await
        .assert_problem(409, "duplicate_invoice");
    let mut no_key = request(
        "POST",
        "/v1/redemptions",
        Some(&key),
        Some(body(&voucher, "INV-2", "100.00")),
    );
    no_key.headers_mut().remove("idempotency-key");
    let reply = app.send(no_key).await;
    reply.assert_problem(422, "validation_failed");
    assert_eq!(reply.json()["field"], "Idempotency-Key");
    for (field, value) in [
        ("bill_amount", json!(100)),
        ("bill_amount", json!("0.00")),
        ("bill_amount", json!("0.01")),
        ("invoice_no", json!("")),
        ("billing_period", json!("2026-13")),
    ] {
        let mut b = body(&voucher, "INV-3", "100.00");
        b[field] = value;
        let reply = app
            .send(redemption(&key, &format!("bad-{field}-{}", b[field]), b))
            .await;
        reply.assert_problem(422, "validation_failed");
        assert_eq!(reply.json()["field"], field);
    }
    // A cancelled voucher (its own, unused) cannot be redeemed.
    let unused = app.voucher(platform, 2, "1000.00").await;
    let firm = crate::support::firm_token(&app, &unused).await;
    app.call(
        "POST",
        &format!(
            "/api/portal/vouchers/{}/cancel",
            unused["id"].as_str().unwrap()
        ),
        Some(&firm),
        None,
    )
    .await;
    app.send(redemption(&key, "k3", body(&unused, "INV-9", "100.00")))
        .await
        .assert_problem(409, "voucher_not_active");
    // A voucher unused past its claim validity has lapsed.
    let late = app.voucher(platform, 3, "1000.00").await;
    app.state
        .clock
        .set(app.state.clock.now() + time::Duration::days(91));
    let reply = app
        .send(redemption(&key, "k4", body(&late, "INV-10", "100.00")))
        .await;
    assert!(
        ["voucher_not_active"].contains(&reply.json()["code"].as_str().unwrap()),
        "{}",
        reply.text()
    );
    // Evidence fields are kept.
    app.state.clock.set(time::OffsetDateTime::now_utc());
    let mut b = body(&voucher, "INV-11", "100.00");
    b["contract_no"] = json!("HT-2026-001");
    b["billing_period"] = json!("2026-11");
    let reply = app.send(redemption(&key, "k5", b)).await;
    assert_eq!(reply.json()["contract_no"], "HT-2026-001");
    assert_eq!(reply.json()["billing_period"], "2026-11");
    assert_ledger_consistent(&pool).await;
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn a_retry_gets_the_first_answer_and_another_body_is_refused(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let (platform, key) = app.platform_with_key(1).await;
    let voucher = app.voucher(platform, 1, "10000.00").await;
    let first = app
        .send(redemption(
            &key,
            "retry-1",
            body(&voucher, "INV-1", "1000.00"),
        ))
        .await;
    assert_eq!(first.status, StatusCode::CREATED);
    let again = app
        .send(redemption(
            &key,
            "retry-1",
            body(&voucher, "INV-1", "1000.00"),
        ))
        .await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(
        again.body, first.body,
        "the replay is the first response, byte for byte"
    );
    let other = app
        .send(redemption(
            &key,
            "retry-1",
            body(&voucher, "INV-2", "1000.00"),
        ))
        .await;
    other.assert_problem(422, "idempotency_key_reused");
    // Errors are answers too: replayed as they were.
    let refused = app
        .send(redemption(&key, "retry-2", body(&voucher, "INV-1", "5.00")))
        .await;
    refused.assert_problem(409, "duplicate_invoice");
    let refused_again = app
        .send(redemption(&key, "retry-2", body(&voucher, "INV-1", "5.00")))
        .await;
    refused_again.assert_problem(409, "duplicate_invoice");
    assert_eq!(refused_again.header("idempotent-replayed"), Some("true"));
    // Keys are per platform: another platform may use the same key string.
    let (_, other_key) = app.platform_with_key(2).await;
    app.send(redemption(
        &other_key,
        "retry-1",
        body(&voucher, "INV-1", "1000.00"),
    ))
    .await
    .assert_problem(403, "wrong_platform");
    let count: i64 = sqlx::query_scalar("select count(*) from redemptions")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(count, 1);
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn a_platform_cannot_touch_another_platforms_voucher_or_redemption(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let (platform_a, key_a) = app.platform_with_key(1).await;
    let (_, key_b) = app.platform_with_key(2).await;
    let voucher = app.voucher(platform_a, 1, "10000.00").await;
    app.send(redemption(&key_b, "b1", body(&voucher, "INV-1", "100.00")))
        .await
        .assert_problem(403, "wrong_platform");
    let by_code =
        json!({"voucher": voucher["code"], "invoice_no": "INV-1", "bill_amount": "100.00"});
    app.send(redemption(&key_b, "b2", by_code))
        .await
        .assert_problem(403, "wrong_platform");
    let made = app
        .send(redemption(&key_a, "a1", body(&voucher, "INV-1", "100.00")))
        .await
        .json();
    let uri = format!("/v1/redemptions/{}/reversal", made["id"].as_str().unwrap());
    app.call(
        "POST",
        &uri,
        Some(&key_b),
        Some(json!({"reason": "not mine"})),
    )
    .await
    .assert_problem(404, "not_found");
    let month = time::OffsetDateTime::now_utc().to_offset(voucher_core::state::SHANGHAI);
    let month = format!("{:04}-{:02}", month.year(), u8::from(month.month()));
    let listed_b = app
        .call(
            "GET",
            &format!("/v1/redemptions?month={month}"),
            Some(&key_b),
            None,
        )
        .await
        .json();
    assert_eq!(listed_b, json!([]));
    let listed_a = app
        .call(
            "GET",
            &format!("/v1/redemptions?month={month}"),
            Some(&key_a),
            None,
        )
        .await
        .json();
    assert_eq!(listed_a.as_array().unwrap().len(), 1);
    app.call("GET", "/v1/redemptions", Some(&key_a), None)
        .await
        .assert_problem(422, "validation_failed");
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn a_reversal_returns_the_discount_until_the_month_is_approved(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let (platform, key) = app.platform_with_key(1).await;
    let voucher = app.voucher(platform, 1, "10000.00").await;
    let made = app
        .send(redemption(&key, "r1", body(&voucher, "INV-1", "10000.00")))
        .await
        .json();
    assert_eq!(made["voucher_remaining"], "0.00");
    let uri = format!("/v1/redemptions/{}/reversal", made["id"].as_str().unwrap());
    let reply = app
        .call(
            "POST",
            &uri,
            Some(&key),
            Some(json!({"reason": "invoice voided"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.json()["status"], "reversed");
    assert_eq!(reply.json()["voucher_remaining"], "3000.00");
    app.call("POST", &uri, Some(&key), Some(json!({"reason": "again"})))
        .await
        .assert_problem(409, "already_reversed");
    app.call("POST", &uri, Some(&key), Some(json!({"reason": ""})))
        .await
        .assert_problem(422, "validation_failed");
    // The invoice number stays used, so a new bill needs a new invoice number.
    let second = app
        .send(redemption(&key, "r2", body(&voucher, "INV-2", "1000.00")))
        .await
        .json();
    // Approval of the month's statement locks its redemptions (settlement does this).
    sqlx::query("update redemptions set locked = true")
        .execute(&pool)
        .await
        .unwrap();
    let uri = format!(
        "/v1/redemptions/{}/reversal",
        second["id"].as_str().unwrap()
    );
    app.call(
        "POST",
        &uri,
        Some(&key),
        Some(json!({"reason": "too late"})),
    )
    .await
    .assert_problem(409, "period_closed");
    assert_ledger_consistent(&pool).await;
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn rate_limits_answer_429_and_redis_down_turns_them_off(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let (platform, key) = app.platform_with_key(1).await;
    let voucher = app.voucher(platform, 1, "10000.00").await;
    let mut state = app.state.clone();
    state.platform_auth.limits = voucher_core::platform::RateLimits {
        per_second: 1,
        burst: 2,
    };
    let limited = voucherd::app(state);
    let verify = || {
        request(
            "POST",
            "/v1/vouchers/verify",
            Some(&key),
            Some(json!({"voucher": voucher["code"]})),
        )
    };
    assert_eq!(send(&limited, verify()).await.status, StatusCode::OK);
    assert_eq!(send(&limited, verify()).await.status, StatusCode::OK);
    let reply = send(&limited, verify()).await;
    reply.assert_problem(429, "rate_limited");
    assert!(reply.header("retry-after").unwrap().parse::<u64>().unwrap() >= 1);

    // The same server, with REDIS_URL pointing at nothing.
    let mut state = app.state.clone();
    state.redis = voucher_core::cache::Redis::new("redis://127.0.0.1:1").unwrap();
    state.platform_auth.limits = voucher_core::platform::RateLimits {
        per_second: 1,
        burst: 1,
    };
    let unlimited = voucherd::app(state);
    for n in 0..5 {
        let reply = send(
            &unlimited,
            redemption(
                &key,
                &format!("nr{n}"),
                body(&voucher, &format!("NR-{n}"), "10.00"),
            ),
        )
        .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    }
    let metrics = send(&unlimited, crate::support::get("/metrics"))
        .await
        .text();
    assert!(metrics.contains("rate_limit_disabled 1"), "{metrics}");
    assert_ledger_consistent(&pool).await;
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn forty_redemptions_at_once_never_overdraw_a_voucher(
    _harness: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let pool = wide_pool(connect).await;
    let app = TestApp::new(pool.clone()).await;
    let (platform, key) = app.platform_with_key(1).await;
    let voucher = app.voucher(platform, 1, "46666.67").await;
    assert_eq!(voucher["face_value"], "14000.00");
    let mut tasks = Vec::new();
    for n in 0..40 {
        let router = app.router.clone();
        let req = redemption(
            &key,
            &format!("hot-{n}"),
            body(&voucher, &format!("HOT-{n}"), "10000.00"),
        );
        tasks.push(tokio::spawn(async move { send(&router, req).await }));
    }
    let (mut discounts, mut exhausted) = (Vec::new(), 0);
    for task in tasks {
        let reply = task.await.unwrap();
        match reply.status {
            StatusCode::CREATED => discounts.push(
                reply.json()["discount"]
                    .as_str()
                    .unwrap()
                    .parse::<rust_decimal::Decimal>()
                    .unwrap(),
            ),
            StatusCode::CONFLICT => {
                assert_eq!(
                    reply.json()["code"],
                    "voucher_exhausted",
                    "{}",
                    reply.text()
                );
                exhausted += 1;
            }
            other => panic!("unexpected {other}: {}", reply.text()),
        }
    }
    assert_eq!(discounts.len(), 5, "{discounts:?}");
    assert_eq!(exhausted, 35);
    assert_eq!(
        discounts.iter().sum::<rust_decimal::Decimal>().to_string(),
        "14000.00"
    );
    assert_ledger_consistent(&pool).await;
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn twenty_retries_at_once_with_one_key_create_one_redemption(
    _harness: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let pool = wide_pool(connect).await;
    let app = TestApp::new(pool.clone()).await;
    let (platform, key) = app.platform_with_key(1).await;
    let voucher = app.voucher(platform, 1, "10000.00").await;
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let router = app.router.clone();
        let req = redemption(&key, "same-key", body(&voucher, "INV-ONCE", "1000.00"));
        tasks.push(tokio::spawn(async move { send(&router, req).await }));
    }
    let mut bodies = HashSet::new();
    let (mut created, mut in_flight) = (0, 0);
    for task in tasks {
        let reply = task.await.unwrap();
        match reply.status {
            StatusCode::CREATED => {
                created += 1;
                bodies.insert(reply.body.clone());
            }
            StatusCode::CONFLICT => {
                assert_eq!(
                    reply.json()["code"],
                    "idempotency_in_flight",
                    "{}",
                    reply.text()
                );
                in_flight += 1;
            }
            other => panic!("unexpected {other}: {}", reply.text()),
        }
    }
    assert_eq!(created + in_flight, 20);
    assert!(created >= 1);
    assert_eq!(bodies.len(), 1, "every success is the same first answer");
    let count: i64 = sqlx::query_scalar("select count(*) from redemptions")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(count, 1);
    assert_ledger_consistent(&pool).await;
}
