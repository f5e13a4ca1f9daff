//! Under attack (SPEC "Under load and attack"): login throttling that holds under concurrency
//! and cannot be turned against the owner, per-address buckets, who the client is behind a
//! proxy, unknown API keys, weak passwords. Functional checks only; no test asserts a time.

use axum::http::StatusCode;
use serde_json::json;
use sqlx::PgPool;
use voucher_core::throttle::{AnonLimits, TrustedProxies, PAIR_ATTEMPTS};

use crate::support::{from_peer, redis_url, request, send, state_with_redis, test_uscc, TestApp};

fn login_body(uscc: &voucher_core::Uscc, password: &str) -> serde_json::Value {
    json!({"uscc": uscc, "password": password})
}

/// Fires `wrong` wrong passwords and the right one at once from `peer`; the statuses.
async fn burst(
    app: &TestApp,
    uscc: &voucher_core::Uscc,
    peer: &str,
    wrong: usize,
) -> Vec<StatusCode> {
    // Every request is built before any is sent and all start together behind one barrier,
    // so the checks really overlap: each one is in flight while the others count.
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(wrong + 1));
    let mut tasks = Vec::new();
    for i in 0..=wrong {
        let password = if i == wrong / 2 {
            "correct-horse-battery".to_owned()
        } else {
            format!("wrong-guess-{i}")
        };
        let req = from_peer(
            peer,
            request(
                "POST",
                "/api/portal/sessions",
                None,
                Some(login_body(uscc, &password)),
            ),
        );
        let (router, barrier) = (app.router.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            send(&router, req).await.status
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    statuses
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn forty_parallel_guesses_get_no_more_checks_than_five_serial_ones(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let (_, _, uscc) = app.firm(40, true).await;
    let statuses = burst(&app, &uscc, "198.18.0.10:5000", 40).await;
    let checked = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED || **s == StatusCode::OK)
        .count();
    let limited = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert!(
        checked <= PAIR_ATTEMPTS as usize,
        "{checked} passwords were checked: {statuses:?}"
    );
    assert_eq!(checked + limited, 41, "{statuses:?}");
    // After the burst the address is locked out of the account: the right password too.
    let reply = app
        .send(from_peer(
            "198.18.0.10:5001",
            request(
                "POST",
                "/api/portal/sessions",
                None,
                Some(login_body(&uscc, "correct-horse-battery")),
            ),
        ))
        .await;
    reply.assert_problem(429, "rate_limited");
    assert!(reply.header("retry-after").is_some());
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn the_owner_gets_in_from_another_address_while_a_stranger_is_locked_out(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let (_, _, uscc) = app.firm(41, true).await;
    let stranger = "203.0.113.66:4000";
    for i in 0..PAIR_ATTEMPTS {
        app.send(from_peer(
            stranger,
            request(
                "POST",
                "/api/portal/sessions",
                None,
                Some(login_body(&uscc, &format!("guess-number-{i}"))),
            ),
        ))
        .await
        .assert_problem(401, "unauthorized");
    }
    app.send(from_peer(
        stranger,
        request(
            "POST",
            "/api/portal/sessions",
            None,
            Some(login_body(&uscc, "correct-horse-battery")),
        ),
    ))
    .await
    .assert_problem(429, "rate_limited");
    let owner = app
        .send(from_peer(
            "198.18.7.7:4000",
            request(
                "POST",
                "/api/portal/sessions",
                None,
                Some(login_body(&uscc, "correct-horse-battery")),
            ),
        ))
        .await;
    assert_eq!(owner.status, StatusCode::OK, "{}", owner.text());
}

/// Logins to unknown accounts from `peer`, each with another made-up USCC; the statuses.
async fn logins_from(app: &TestApp, peer: &str, xff: Option<&str>, n: u32) -> Vec<u16> {
    let mut statuses = Vec::new();
    for i in 0..n {
        let mut req = from_peer(
            peer,
            request(
                "POST",
                "/api/portal/sessions",
                None,
                Some(login_body(&test_uscc(9000 + i), "any-password-at-all")),
            ),
        );
        if let Some(xff) = xff {
            let value = xff.replace("{i}", &i.to_string());
            req.headers_mut()
                .insert("x-forwarded-for", value.parse().unwrap());
        }
        let reply = app.send(req).await;
        if reply.status == StatusCode::TOO_MANY_REQUESTS {
            assert!(reply.header("retry-after").is_some());
            reply.assert_problem(429, "rate_limited");
        }
        statuses.push(reply.status.as_u16());
    }
    statuses
}

fn small_buckets(pool: PgPool, trusted: &str) -> voucher_core::AppState {
    let mut state = state_with_redis(pool, &redis_url());
    state.throttle.anon = AnonLimits {
        per_minute: 1,
        burst: 3,
    };
    state.trusted_proxies = TrustedProxies::parse(trusted).unwrap();
    state
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn an_address_over_its_bucket_gets_429_with_retry_after(pool: PgPool) {
    let app = TestApp::with_state(small_buckets(pool, "")).await;
    let statuses = logins_from(&app, "198.18.1.1:1000", None, 4).await;
    assert_eq!(statuses, [401, 401, 401, 429]);
    // Another address has its own bucket.
    let statuses = logins_from(&app, "198.18.1.2:1000", None, 1).await;
    assert_eq!(statuses, [401]);
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn forwarded_for_is_ignored_from_peers_that_are_not_trusted_proxies(pool: PgPool) {
    let app = TestApp::with_state(small_buckets(pool, "127.0.0.1/32")).await;
    // An untrusted peer naming a new address in every request still has one bucket.
    let statuses = logins_from(&app, "203.0.113.9:1000", Some("198.18.2.{i}"), 4).await;
    assert_eq!(statuses, [401, 401, 401, 429]);
    // Behind the trusted proxy each forwarded client has its own.
    let statuses = logins_from(&app, "127.0.0.1:1000", Some("198.18.3.{i}"), 6).await;
    assert_eq!(statuses, [401; 6]);
    // And the proxy's own clients are still limited one by one.
    let statuses = logins_from(&app, "127.0.0.1:1000", Some("198.18.4.1"), 4).await;
    assert_eq!(statuses, [401, 401, 401, 429]);
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn registrations_from_one_address_are_limited(pool: PgPool) {
    let app = TestApp::with_state(small_buckets(pool, "")).await;
    let mut statuses = Vec::new();
    for n in 0..4 {
        let body = json!({"uscc": test_uscc(500 + n), "name": "宝安测试制造有限公司",
            "industry_code": "C3911", "district": "宝安区", "contact_name": "李四",
            "contact_phone": "13800000000", "password": "correct-horse-battery"});
        let reply = app
            .send(from_peer(
                "198.18.9.9:1",
                request("POST", "/api/portal/firms", None, Some(body)),
            ))
            .await;
        statuses.push(reply.status.as_u16());
    }
    assert_eq!(statuses, [201, 201, 201, 429]);
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn made_up_api_keys_are_limited_per_address(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let mut statuses = Vec::new();
    for i in 0..(voucher_core::throttle::BAD_KEY_ATTEMPTS + 1) {
        let key = format!("vk_live_madeup{i:035}");
        let reply = app
            .send(from_peer(
                "198.18.5.5:1",
                request(
                    "POST",
                    "/v1/vouchers/verify",
                    Some(&key),
                    Some(json!({"voucher": "BA26-AAAA-AAAA"})),
                ),
            ))
            .await;
        statuses.push(reply.status.as_u16());
    }
    assert!(
        statuses[..statuses.len() - 1].iter().all(|s| *s == 401),
        "{statuses:?}"
    );
    assert_eq!(statuses.last(), Some(&429));
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn weak_passwords_are_refused_naming_password(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let cases = [
        ("short-1", "fewer than 10 characters"),
        ("password123", "a common password with digits"),
        ("1234567890", "a sequence"),
        ("qwertyuiop", "a keyboard row"),
        ("aaaaaaaaaaaaaa", "one repeated character"),
        ("baoan-test-factory", "close to the firm's own name"),
    ];
    for (i, (password, why)) in cases.iter().enumerate() {
        let body = json!({"uscc": test_uscc(600 + i as u32), "name": "baoan-test-factory",
            "industry_code": "C3911", "district": "宝安区", "contact_name": "李四",
            "contact_phone": "13800000000", "password": password});
        let reply = app
            .call("POST", "/api/portal/firms", None, Some(body))
            .await;
        reply.assert_problem(422, "validation_failed");
        assert_eq!(reply.json()["field"], "password", "{password}: {why}");
    }
    let admin = app.staff("admin1", voucher_core::auth::Role::Admin).await;
    let reply = app
        .call(
            "POST",
            "/api/bureau/staff",
            Some(&admin),
            Some(
                json!({"username": "finance7", "password": "finance7finance7", "role": "finance"}),
            ),
        )
        .await;
    reply.assert_problem(422, "validation_failed");
    assert_eq!(reply.json()["field"], "password");
}
