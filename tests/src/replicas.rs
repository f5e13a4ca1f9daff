//! Two replicas on one database (SPEC "More than one machine"): two `AppState`s, each with its
//! own pool, both mounting one key directory, as two `voucherd serve` behind a balancer would.
//! What one replica signs the other verifies (voucher tokens, firm and staff sessions, after a
//! rotation too), an idempotent redemption retried on the other replica is the same
//! redemption, and of two replicas running the nightly job at once only one does the work.

use axum::http::StatusCode;
use serde_json::json;
use sqlx::PgPool;
use time::macros::date;
use uuid::Uuid;
use voucher_core::auth::Role;
use voucher_core::{cache::Redis, AppState};
use voucher_settlement::job::{self, Nightly};

use crate::support::{redemption, redis_url, wide_pool, TestApp};

/// A replica: its own pool on the test's database and the shared key directory.
async fn replica(pool: &PgPool, key_dir: &std::path::Path) -> TestApp {
    let own_pool = wide_pool((*pool.connect_options()).clone()).await;
    let mut state =
        AppState::new(own_pool, Redis::new(&redis_url()).expect("redis"), key_dir).expect("state");
    state.throttle.namespace = format!("test-{}:", Uuid::new_v4());
    TestApp::with_state(state).await
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn two_replicas_verify_each_others_tokens_and_sessions_and_settle_once(pool: PgPool) {
    let key_dir = std::env::temp_dir().join(format!("voucher-test-keys-{}", Uuid::new_v4()));
    let a = replica(&pool, &key_dir).await;
    let b = replica(&pool, &key_dir).await;

    // A platform made on A; its key works on B.
    let (platform, api_key) = a.platform_with_key(1).await;
    // A firm registered on A, with a session A minted, claims on B: B verifies A's session,
    // and the token B signs redeems on A.
    let (_, session_a, _) = a.firm(1, true).await;
    let claimed = b.claim(&session_a, platform, "50000.00").await;
    assert_eq!(claimed.status, StatusCode::CREATED, "{}", claimed.text());
    let token = claimed.json()["token"].as_str().unwrap().to_owned();
    let body = json!({"voucher": token, "invoice_no": "R-1", "bill_amount": "100.00"});
    let first = a
        .send(redemption(&api_key, "replica-1", body.clone()))
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text());
    // The same request retried on the other replica (the balancer moved it) is the same one.
    let again = b.send(redemption(&api_key, "replica-1", body)).await;
    assert!(again.status.is_success(), "{}", again.text());
    assert_eq!(again.json()["id"], first.json()["id"]);
    let count: i64 = sqlx::query_scalar("select count(*) from redemptions")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(count, 1);

    // A staff session minted by B is good on A.
    let admin_b = b.staff("replica-admin", Role::Admin).await;
    let stats = a
        .call("GET", "/api/bureau/stats", Some(&admin_b), None)
        .await;
    assert_eq!(stats.status, StatusCode::OK, "{}", stats.text());

    // A rotation on A reaches B at its next reload (the reloader runs every 30 s): B then
    // signs with the new key, and A verifies it.
    let kid = a.state.keys.rotate().unwrap();
    b.state.keys.reload().unwrap();
    assert_eq!(b.state.keys.get().current, kid);
    let (_, session_b, _) = b.firm(2, true).await;
    let rotated = b.claim(&session_b, platform, "50000.00").await;
    assert_eq!(rotated.status, StatusCode::CREATED, "{}", rotated.text());
    let token = rotated.json()["token"].as_str().unwrap().to_owned();
    let on_a = a
        .send(redemption(
            &api_key,
            "replica-2",
            json!({"voucher": token, "invoice_no": "R-2", "bill_amount": "100.00"}),
        ))
        .await;
    assert_eq!(on_a.status, StatusCode::CREATED, "{}", on_a.text());

    // Both replicas' nightly jobs fire at once: one runs, the other skips.
    let day = date!(2026 - 06 - 30);
    let (on_a, on_b) = tokio::join!(
        job::nightly_once(&a.state.db, day),
        job::nightly_once(&b.state.db, day)
    );
    let outcomes = [on_a.unwrap(), on_b.unwrap()];
    let ran = outcomes
        .iter()
        .filter(|o| matches!(o, Nightly::Ran(_)))
        .count();
    assert_eq!(ran, 1, "{outcomes:?}");
    assert!(outcomes
        .iter()
        .any(|o| matches!(o, Nightly::AlreadySettled | Nightly::OtherReplica)));
    // Once the date is settled, a late replica (or a retry after a failover) does nothing.
    assert!(matches!(
        job::nightly_once(&b.state.db, day).await.unwrap(),
        Nightly::AlreadySettled
    ));
    let runs: i32 = sqlx::query_scalar("select runs from settlement_runs where business_date = $1")
        .bind(day)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(runs, 1);
    let _ = std::fs::remove_dir_all(&key_dir);
}
