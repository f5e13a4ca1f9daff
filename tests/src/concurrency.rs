//! Quota and cap under real concurrent claims against a real Postgres.

use std::time::Instant;

use axum::http::StatusCode;
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::support::{assert_ledger_consistent, request, wide_pool, TestApp};

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn claims_by_2100_firms_at_once_admit_exactly_2000(
    _harness: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let pool = wide_pool(connect).await;
    let app = TestApp::new(pool.clone()).await;
    let platform = app.platform("云平台", 1).await;
    let firms = app.firms_in_bulk(2100, 0).await;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (_, token) in firms {
        let router = app.router.clone();
        let body = json!({"platform_id": platform, "annual_fee": "10000.00"});
        tasks.push(tokio::spawn(async move {
            // A loaded machine may shed a claim (503 `overloaded`, nothing done); a client
            // tries again, as Retry-After tells it.
            let mut tries = 0;
            loop {
                let reply = crate::support::send(
                    &router,
                    request(
                        "POST",
                        "/api/portal/vouchers",
                        Some(&token),
                        Some(body.clone()),
                    ),
                )
                .await;
                tries += 1;
                if reply.status != StatusCode::SERVICE_UNAVAILABLE || tries == 5 {
                    break reply;
                }
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        }));
    }
    let (mut created, mut exhausted) = (0, 0);
    for task in tasks {
        let reply = task.await.unwrap();
        match reply.status {
            StatusCode::CREATED => created += 1,
            StatusCode::CONFLICT => {
                assert_eq!(reply.json()["code"], "quota_exhausted");
                exhausted += 1;
            }
            other => panic!("unexpected {other}: {}", reply.text()),
        }
    }
    eprintln!(
        "2100 concurrent claims against a 2000 quota took {:?}",
        started.elapsed()
    );
    assert_eq!((created, exhausted), (2000, 100));
    let admitted: i32 = sqlx::query_scalar("select firms_admitted from program_years")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(admitted, 2000);
    let distinct: i64 = sqlx::query_scalar("select count(distinct firm_id) from vouchers")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(distinct, 2000);
    let admitted_rows: i64 = sqlx::query_scalar("select count(*) from firm_years where admitted")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(admitted_rows, 2000);
    assert_ledger_consistent(&pool).await;
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn twenty_claims_by_one_firm_at_once_are_granted_exactly_its_cap(
    _harness: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let pool = wide_pool(connect).await;
    let app = TestApp::new(pool.clone()).await;
    let platform = app.platform("云平台", 2).await;
    let (firm_id, token) = app.firms_in_bulk(1, 0).await.remove(0);
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let router = app.router.clone();
        let token = token.clone();
        // Each asks for 30% of 23,456.78 = 7,037.03; seven fit under 50,000 and the eighth
        // gets what is left (740.79).
        let body = json!({"platform_id": platform, "annual_fee": "23456.78"});
        tasks.push(tokio::spawn(async move {
            crate::support::send(
                &router,
                request("POST", "/api/portal/vouchers", Some(&token), Some(body)),
            )
            .await
        }));
    }
    let mut faces = Vec::new();
    for task in tasks {
        let reply = task.await.unwrap();
        match reply.status {
            StatusCode::CREATED => {
                faces.push(reply.json()["face_value"].as_str().unwrap().to_owned())
            }
            StatusCode::CONFLICT => {
                assert_eq!(reply.json()["code"], "firm_cap_reached", "{}", reply.text())
            }
            other => panic!("unexpected {other}: {}", reply.text()),
        }
    }
    faces.sort();
    assert_eq!(faces.len(), 8, "{faces:?}");
    assert_eq!(faces.iter().filter(|f| *f == "7037.03").count(), 7);
    assert!(faces.contains(&"740.79".to_owned()));
    let granted: rust_decimal::Decimal =
        sqlx::query_scalar("select granted from firm_years where firm_id = $1")
            .bind(firm_id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(granted.to_string(), "50000.00");
    let admitted: i32 = sqlx::query_scalar("select firms_admitted from program_years")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        admitted, 1,
        "one firm takes one slot however many vouchers it claims"
    );
    assert_ledger_consistent(&pool).await;
}
