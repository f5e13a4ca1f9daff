//! The nightly job's races (issue 11), through the router against a real Postgres with a pool
//! wide enough for the requests to run side by side.
//!
//! Starting requests together does not make them overlap in the database. Each test therefore
//! holds a "gate": a transaction of its own that locks a row one side needs, waits (reading
//! `pg_stat_activity`) until that side is blocked on it inside its transaction, sends the other
//! side, and only then lets go. Each test says which row and why.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::Router;
use serde_json::{json, Value};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use time::macros::{date, datetime};
use tokio::task::JoinHandle;
use uuid::Uuid;
use voucher_core::auth::{self, Role};
use voucher_core::platform::RateLimits;
use voucher_settlement::job;

use crate::support::{assert_ledger_consistent, redemption, request, send, Reply, TestApp};

/// How many connections each test's app gets: enough for a few dozen requests to be in
/// Postgres at once, while two race tests at a time (and whatever else runs on this Postgres)
/// stay within its connection limit.
const POOL: u32 = 24;

async fn pool_of(connect: &PgConnectOptions, size: u32) -> PgPool {
    PgPoolOptions::new()
        .max_connections(size)
        .connect_with(connect.clone())
        .await
        .unwrap()
}

/// The app's router with rate limits out of the way (hundreds of platform calls at once).
fn unlimited(app: &TestApp) -> Router {
    let mut state = app.state.clone();
    state.platform_auth.limits = RateLimits {
        per_second: 1_000_000,
        burst: 1_000_000,
    };
    voucherd::app(state)
}

fn fire(router: &Router, r: axum::http::Request<axum::body::Body>) -> JoinHandle<Reply> {
    let router = router.clone();
    tokio::spawn(async move { send(&router, r).await })
}

async fn all(tasks: Vec<JoinHandle<Reply>>) -> Vec<Reply> {
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

/// Backends of this test's database blocked on a lock (row or advisory).
async fn lock_waiters(pool: &PgPool) -> i64 {
    sqlx::query_scalar(
        "select count(*) from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

/// Waits until at least `n` backends are blocked on a lock: the proof that they are inside
/// their transactions, queued behind the gate.
async fn until_blocked(pool: &PgPool, n: i64, what: &str) {
    let started = Instant::now();
    while lock_waiters(pool).await < n {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{what}: fewer than {n} backends ever waited on the gate"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Every firm's claim through the portal at once; all must succeed.
async fn claim_all(
    router: &Router,
    firms: &[(Uuid, String)],
    platform: Uuid,
    fee: &str,
) -> Vec<Value> {
    let tasks = firms
        .iter()
        .map(|(_, token)| {
            fire(
                router,
                request(
                    "POST",
                    "/api/portal/vouchers",
                    Some(token),
                    Some(json!({"platform_id": platform, "annual_fee": fee})),
                ),
            )
        })
        .collect();
    all(tasks)
        .await
        .into_iter()
        .map(|r| {
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
            r.json()
        })
        .collect()
}

/// One redemption of `bill` on each voucher at once; all must succeed.
async fn redeem_all(router: &Router, key: &str, vouchers: &[Value], bill: &str) -> Vec<Value> {
    let tasks = vouchers
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let body = json!({"voucher": v["token"], "invoice_no": format!("INV-{i}"), "bill_amount": bill});
            fire(router, redemption(key, &format!("r-{i}"), body))
        })
        .collect();
    all(tasks)
        .await
        .into_iter()
        .map(|r| {
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
            r.json()
        })
        .collect()
}

/// Sessions minted by the app's clock as it now stands (a session minted before the clock was
/// moved months ahead has expired by it).
async fn sessions(app: &TestApp, firms: &[(Uuid, String)]) -> Vec<(Uuid, String)> {
    let mut out = Vec::with_capacity(firms.len());
    for (id, _) in firms {
        out.push((
            *id,
            auth::firm_session(&app.state, *id).await.unwrap().token,
        ));
    }
    out
}

fn id(v: &Value) -> Uuid {
    v["id"].as_str().unwrap().parse().unwrap()
}

fn reversal(key: &str, redemption: &Value) -> axum::http::Request<axum::body::Body> {
    request(
        "POST",
        &format!("/v1/redemptions/{}/reversal", id(redemption)),
        Some(key),
        Some(json!({"reason": "invoice voided"})),
    )
}

fn settlement_run(reviewer: &str, date: &str) -> axum::http::Request<axum::body::Body> {
    request(
        "POST",
        "/api/bureau/settlement-runs",
        Some(reviewer),
        Some(json!({"business_date": date})),
    )
}

/// The settlement run's advisory lock (key 0x5E771E00), held by some session.
async fn settlement_lock_held(pool: &PgPool) -> bool {
    sqlx::query_scalar(
        "select exists (select 1 from pg_locks where locktype = 'advisory' and granted
                        and classid = 0 and objid = 1584864768 and objsubid = 1)",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn the_release_step_against_400_reclaims_leaves_every_holder_admitted(
    _harness: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let pool = pool_of(&connect, POOL).await;
    let app = TestApp::new(pool.clone()).await;
    let router = unlimited(&app);
    let platform = app.platform("云平台", 1).await;
    // The gate firm comes first in firm order (ids grow with time), so the release step, which
    // locks candidates in firm order, blocks on it before any other firm's row.
    let gate = app.firms_in_bulk(1, 0).await;
    app.state.clock.set(datetime!(2026-08-01 10:00 +8));
    let (gate_firm, gate_token) = sessions(&app, &gate).await.remove(0);
    assert_eq!(
        app.claim(&gate_token, platform, "10000.00").await.status,
        StatusCode::CREATED
    );
    // Its voucher lapses in a run for 2026-11-01 killed after the lapse step: it holds nothing
    // but is still admitted, a release candidate that this date's lapse step does not touch.
    job::run_steps(&pool, date!(2026 - 11 - 01), Some(1), &|_, _| {})
        .await
        .unwrap();
    let firms = app.firms_in_bulk(400, 1).await;
    app.state.clock.set(datetime!(2026-09-01 10:00 +8));
    claim_all(&router, &sessions(&app, &firms).await, platform, "10000.00").await; // lapse 2026-11-30
    app.state.clock.set(datetime!(2026-12-01 10:00 +8));
    let firms = sessions(&app, &firms).await;
    let reviewer = app.staff("reviewer1", Role::Reviewer).await;

    let mut gate = pool.begin().await.unwrap();
    sqlx::query("select 1 from firm_years where firm_id = $1 for update")
        .bind(gate_firm)
        .execute(&mut *gate)
        .await
        .unwrap();
    let run = fire(&router, settlement_run(&reviewer, "2026-12-01"));
    // Overlap: the run has lapsed the 400 vouchers and is blocked in its release step, its
    // candidates chosen, when the 400 firms claim again; the claims all commit before it goes on.
    until_blocked(&pool, 1, "the release step").await;
    let reclaimed = claim_all(&router, &firms, platform, "10000.00").await;
    assert_eq!(reclaimed.len(), 400);
    assert!(!run.is_finished(), "the run was still in its release step");
    gate.rollback().await.unwrap();
    let report = run.await.unwrap();
    assert_eq!(report.status, StatusCode::OK, "{}", report.text());
    let report = report.json();
    assert_eq!(report["lapsed_vouchers"], 400);
    assert_eq!(
        report["released_slots"], 1,
        "only the gate firm holds nothing"
    );
    assert!(
        report["invariants"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["ok"] == true),
        "{report:#}"
    );

    // Every firm holding a live voucher or a redemption is admitted, and the count matches.
    let not_admitted: i64 = sqlx::query_scalar(
        r#"select count(*) from firm_years f where not f.admitted
           and exists (select 1 from vouchers v where v.firm_id = f.firm_id and v.year = f.year
                       and (v.status in ('active', 'exhausted') or v.redemption_count > 0))"#,
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(not_admitted, 0);
    let (counter, flagged): (i32, i64) = sqlx::query_as(
        "select firms_admitted, (select count(*) from firm_years where admitted) from program_years where year = 2026",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((counter, flagged), (400, 400));
    assert_ledger_consistent(&pool).await;
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn a_cap_patch_against_400_first_claims_leaves_no_firm_year_above_the_cap_in_force(
    _harness: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let pool = pool_of(&connect, POOL).await;
    let app = TestApp::new(pool.clone()).await;
    let router = unlimited(&app);
    let platform = app.platform("云平台", 1).await;
    let firms = app.firms_in_bulk(400, 0).await;
    app.state.clock.set(datetime!(2026-03-01 10:00 +8));
    let firms = sessions(&app, &firms).await;
    let admin = app.staff("admin1", Role::Admin).await;
    // The admin's console, and the test's own look into Postgres, on a pool of their own: on
    // the claims' pool they would queue for a connection behind every outstanding claim.
    let side = pool_of(&connect, 4).await;
    let mut admin_state = app.state.clone();
    admin_state.db = side.clone();
    let admin_router = voucherd::app(admin_state);
    // Overlap: the gate holds the program row, so the first claims in flight stop at their last
    // statement (taking the quota slot), their new firm-year rows (with the cap copied) written
    // but not committed. The PATCH is sent then, and is seen waiting for them (on the
    // parameter lock) before the gate opens; the audit sequence shows claims on both sides.
    let mut gate = side.begin().await.unwrap();
    sqlx::query("select 1 from program_years where year = 2026 for update")
        .execute(&mut *gate)
        .await
        .unwrap();
    let tasks: Vec<_> = firms
        .iter()
        .map(|(_, token)| {
            let r = request(
                "POST",
                "/api/portal/vouchers",
                Some(token),
                Some(json!({"platform_id": platform, "annual_fee": "100000.00"})), // 30,000.00
            );
            fire(&router, r)
        })
        .collect();
    until_blocked(&side, 16, "first claims at their quota slot").await;
    let patch = fire(
        &admin_router,
        request(
            "PATCH",
            "/api/bureau/programs/2026",
            Some(&admin),
            Some(json!({"cap_per_firm": "40000.00"})),
        ),
    );
    let started = Instant::now();
    loop {
        let waiting: bool = sqlx::query_scalar(
            "select exists (select 1 from pg_stat_activity where datname = current_database()
                            and wait_event = 'advisory' and query like 'select pg_advisory_xact_lock(%')",
        )
        .fetch_one(&side)
        .await
        .unwrap();
        if waiting {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the PATCH never waited for the claims"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    gate.rollback().await.unwrap();
    let patch = patch.await.unwrap();
    assert_eq!(patch.status, StatusCode::OK, "{}", patch.text());
    for reply in all(tasks).await {
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
        assert_eq!(reply.json()["face_value"], "30000.00");
    }
    let (before, after): (i64, i64) = sqlx::query_as(
        r#"with p as (select seq from audit_log where action = 'program.update')
           select count(*) filter (where a.seq < p.seq), count(*) filter (where a.seq > p.seq)
           from audit_log a, p where a.action = 'voucher.claim'"#,
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(
        before > 0 && after > 0,
        "claims before {before}, after {after} the PATCH"
    );
    // Each firm claims again: 10,000.00 is what the new cap leaves, whenever its row was made.
    for reply in claim_all(&router, &firms, platform, "100000.00").await {
        assert_eq!(reply["face_value"], "10000.00");
    }
    let above: i64 = sqlx::query_scalar(
        "select count(*) from firm_years f join program_years p on p.year = f.year
         where f.cap <> p.cap_per_firm or f.granted > p.cap_per_firm",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        above, 0,
        "no firm-year above the cap in force, no stale copy"
    );
    let report = job::run_steps(&pool, date!(2026 - 03 - 01), None, &|_, _| {})
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

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn a_client_that_disconnects_mid_run_does_not_stop_the_next_run(
    _harness: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let pool = pool_of(&connect, POOL).await;
    let app = TestApp::new(pool.clone()).await;
    let platform = app.platform("云平台", 1).await;
    let firm = app.firms_in_bulk(1, 0).await;
    app.state.clock.set(datetime!(2026-03-01 10:00 +8));
    let (_, token) = sessions(&app, &firm).await.remove(0);
    let voucher = app.claim(&token, platform, "10000.00").await.json(); // lapses 2026-05-30
    app.state.clock.set(datetime!(2026-06-01 10:00 +8));
    let reviewer = app.staff("reviewer1", Role::Reviewer).await;

    // Overlap: the voucher's row is held, so the run blocks in its lapse step, lock taken,
    // while its client goes away and a second run is asked for.
    let mut gate = pool.begin().await.unwrap();
    sqlx::query("select 1 from vouchers where id = $1 for update")
        .bind(id(&voucher))
        .execute(&mut *gate)
        .await
        .unwrap();
    let client = fire(&app.router, settlement_run(&reviewer, "2026-05-31"));
    until_blocked(&pool, 1, "the lapse step").await;
    assert!(settlement_lock_held(&pool).await);
    client.abort(); // the client disconnects: hyper drops the request's future
    assert!(matches!(client.await, Err(e) if e.is_cancelled()));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        settlement_lock_held(&pool).await,
        "the run goes on without its client"
    );
    let asked = Instant::now();
    app.call(
        "POST",
        "/api/bureau/settlement-runs",
        Some(&reviewer),
        Some(json!({"business_date": "2026-05-31"})),
    )
    .await
    .assert_problem(409, "invalid_transition");
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "a second run is refused at once, not queued"
    );
    gate.rollback().await.unwrap();
    // The abandoned run finishes and lets go of its lock.
    let started = Instant::now();
    while settlement_lock_held(&pool).await {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the lock stuck"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stored = app
        .call(
            "GET",
            "/api/bureau/settlement-runs/2026-05-31",
            Some(&reviewer),
            None,
        )
        .await;
    assert_eq!(stored.status, StatusCode::OK, "the abandoned run completed");
    assert_eq!(stored.json()["lapsed_vouchers"], 1);
    let next = app
        .call(
            "POST",
            "/api/bureau/settlement-runs",
            Some(&reviewer),
            Some(json!({"business_date": "2026-05-31"})),
        )
        .await;
    assert_eq!(next.status, StatusCode::OK, "{}", next.text());
    assert_eq!(next.json(), stored.json());
    let runs: i32 = sqlx::query_scalar("select runs from settlement_runs")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(runs, 2);
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn cancel_against_redeem_on_200_vouchers_exactly_one_wins_each(
    _harness: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let pool = pool_of(&connect, POOL).await;
    let app = TestApp::new(pool.clone()).await;
    let router = unlimited(&app);
    let (platform, key) = app.platform_with_key(1).await;
    let firms = app.firms_in_bulk(200, 0).await;
    app.state.clock.set(datetime!(2026-03-01 10:00 +8));
    let firms = sessions(&app, &firms).await;
    let vouchers = claim_all(&router, &firms, platform, "10000.00").await; // 3,000.00 each
    let (mut cancels, mut redeems) = (0, 0);
    // Ten vouchers at a time (20 requests, within the pool): the gate holds their rows, so
    // each cancel and each redeem is blocked on its voucher's row inside its transaction before
    // either may go on; which one the row goes to first is up to Postgres.
    for (batch, chunk) in vouchers.chunks(10).enumerate() {
        let ids: Vec<Uuid> = chunk.iter().map(id).collect();
        let mut gate = pool.begin().await.unwrap();
        sqlx::query("select 1 from vouchers where id = any($1) for update")
            .bind(&ids)
            .execute(&mut *gate)
            .await
            .unwrap();
        let mut pairs = Vec::new();
        for (i, v) in chunk.iter().enumerate() {
            let n = batch * 10 + i;
            // claim_all answers in the order of the firms.
            let firm_token = &firms[n].1;
            let cancel = fire(
                &router,
                request(
                    "POST",
                    &format!("/api/portal/vouchers/{}/cancel", id(v)),
                    Some(firm_token),
                    None,
                ),
            );
            let body = json!({"voucher": v["token"], "invoice_no": format!("CR-{n}"), "bill_amount": "1000.00"});
            let redeem = fire(&router, redemption(&key, &format!("cr-{n}"), body));
            pairs.push((cancel, redeem));
        }
        until_blocked(&pool, 2 * chunk.len() as i64, "cancels and redeems").await;
        gate.rollback().await.unwrap();
        for (cancel, redeem) in pairs {
            let (cancel, redeem) = (cancel.await.unwrap(), redeem.await.unwrap());
            match (cancel.status, redeem.status) {
                (StatusCode::OK, StatusCode::CONFLICT) => {
                    assert_eq!(
                        redeem.json()["code"],
                        "voucher_not_active",
                        "{}",
                        redeem.text()
                    );
                    cancels += 1;
                }
                (StatusCode::CONFLICT, StatusCode::CREATED) => {
                    assert_eq!(
                        cancel.json()["code"],
                        "voucher_has_redemptions",
                        "{}",
                        cancel.text()
                    );
                    redeems += 1;
                }
                other => panic!(
                    "not exactly one winner: {other:?} {} {}",
                    cancel.text(),
                    redeem.text()
                ),
            }
        }
    }
    eprintln!("cancel won {cancels}, redeem won {redeems} of 200");
    assert_eq!(cancels + redeems, 200);
    let wrong: i64 = sqlx::query_scalar(
        r#"select count(*) from vouchers v
           where not ((v.status = 'cancelled' and v.redemption_count = 0
                       and not exists (select 1 from redemptions r where r.voucher_id = v.id))
                   or (v.status = 'active' and v.redemption_count = 1 and v.redeemed = 300.00))"#,
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(wrong, 0);
    assert_ledger_consistent(&pool).await;
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn reversals_against_the_approval_of_a_200_line_statement_leave_it_whole(
    _harness: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let pool = pool_of(&connect, POOL).await;
    let app = TestApp::new(pool.clone()).await;
    let router = unlimited(&app);
    let (platform, key) = app.platform_with_key(1).await;
    let firms = app.firms_in_bulk(200, 0).await;
    app.state.clock.set(datetime!(2026-07-01 10:00 +8));
    let firms = sessions(&app, &firms).await;
    let vouchers = claim_all(&router, &firms, platform, "10000.00").await;
    let made = redeem_all(&router, &key, &vouchers, "1000.00").await; // 300.00 each
    app.state.clock.set(datetime!(2026-08-02 10:00 +8));
    let reviewer = app.staff("reviewer1", Role::Reviewer).await;
    let finance = app.staff("finance1", Role::Finance).await;
    let closed = app
        .call(
            "POST",
            "/api/bureau/statements",
            Some(&reviewer),
            Some(json!({"month": "2026-07"})),
        )
        .await;
    assert_eq!(closed.status, StatusCode::OK, "{}", closed.text());
    let statement = closed.json()[0].clone();
    assert_eq!(
        statement["lines"].as_array().map(Vec::len).unwrap_or(200),
        200
    );

    // Overlap: one redemption's row (the 100th) is held, so the approval blocks on it inside
    // its transaction, the statement row and some redemptions already locked; all 200 reversals
    // are sent while it waits, and the gate opens only after some have been answered.
    let mut gate = pool.begin().await.unwrap();
    sqlx::query("select 1 from redemptions where id = $1 for update")
        .bind(id(&made[100]))
        .execute(&mut *gate)
        .await
        .unwrap();
    let approval = fire(
        &router,
        request(
            "POST",
            &format!(
                "/api/bureau/statements/{}/approve",
                statement["id"].as_str().unwrap()
            ),
            Some(&finance),
            None,
        ),
    );
    until_blocked(&pool, 1, "the approval").await;
    let reversals: Vec<_> = made
        .iter()
        .map(|r| fire(&router, reversal(&key, r)))
        .collect();
    let started = Instant::now();
    while !reversals.iter().any(|r| r.is_finished()) && started.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let answered_during = reversals.iter().filter(|r| r.is_finished()).count();
    assert!(
        !approval.is_finished(),
        "the approval was still in its transaction"
    );
    gate.rollback().await.unwrap();
    let approval = approval.await.unwrap();
    assert_eq!(approval.status, StatusCode::OK, "{}", approval.text());
    let (mut reversed, mut closed_out) = (0, 0);
    for reply in all(reversals).await {
        match reply.status {
            StatusCode::OK => reversed += 1,
            _ => {
                reply.assert_problem(409, "period_closed");
                closed_out += 1;
            }
        }
    }
    eprintln!("{answered_during} reversals answered while the approval waited; {reversed} reversed, {closed_out} period_closed");
    assert_eq!(reversed + closed_out, 200);
    // Every approved line is an active, locked redemption; the total is the sum of the lines;
    // every redemption is either reversed or on the statement.
    let (lines, bad_lines, sum, total, line_count): (
        i64,
        i64,
        rust_decimal::Decimal,
        rust_decimal::Decimal,
        i32,
    ) = sqlx::query_as(
        r#"select count(*), count(*) filter (where r.status <> 'active' or not r.locked),
                      coalesce(sum(l.discount), 0), s.total, s.line_count
               from statements s left join statement_lines l on l.statement_id = s.id
               left join redemptions r on r.id = l.redemption_id
               where s.id = $1::uuid group by s.total, s.line_count"#,
    )
    .bind(statement["id"].as_str().unwrap())
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(bad_lines, 0);
    assert_eq!(sum, total);
    assert_eq!(i64::from(line_count), lines);
    assert_eq!(
        lines, closed_out as i64,
        "each period_closed reversal left its line on"
    );
    let reversed_rows: i64 = sqlx::query_scalar(
        "select count(*) from redemptions where status = 'reversed' and not locked",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(reversed_rows, reversed as i64);
    assert_ledger_consistent(&pool).await;
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn dec_31_s_run_against_december_reversals_keeps_the_ledger_consistent(
    _harness: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let pool = pool_of(&connect, POOL).await;
    let app = TestApp::new(pool.clone()).await;
    let router = unlimited(&app);
    let (platform, key) = app.platform_with_key(1).await;
    let firms = app.firms_in_bulk(200, 0).await;
    app.state.clock.set(datetime!(2026-12-01 10:00 +8));
    let firms = sessions(&app, &firms).await;
    let vouchers = claim_all(&router, &firms, platform, "10000.00").await; // 3,000.00
    app.state.clock.set(datetime!(2026-12-15 10:00 +8));
    let made = redeem_all(&router, &key, &vouchers, "1000.00").await; // 300.00
    app.state.clock.set(datetime!(2027-01-01 01:00 +8));
    let reviewer = app.staff("reviewer1", Role::Reviewer).await;

    // Overlap: the 100th voucher's row is held, so the run blocks in its expire step with some
    // vouchers already expired (locked) and others not yet reached; all 200 reversals of
    // December redemptions are sent while it waits.
    let mut gate = pool.begin().await.unwrap();
    sqlx::query("select 1 from vouchers where id = $1 for update")
        .bind(id(&vouchers[100]))
        .execute(&mut *gate)
        .await
        .unwrap();
    let run = fire(&router, settlement_run(&reviewer, "2026-12-31"));
    until_blocked(&pool, 1, "the expire step").await;
    let reversals: Vec<_> = made
        .iter()
        .map(|r| fire(&router, reversal(&key, r)))
        .collect();
    let started = Instant::now();
    while !reversals.iter().any(|r| r.is_finished()) && started.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(!run.is_finished(), "the run was still in its expire step");
    gate.rollback().await.unwrap();
    let run = run.await.unwrap();
    assert_eq!(run.status, StatusCode::OK, "{}", run.text());
    for reply in all(reversals).await {
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    }
    let report = run.json();
    assert_eq!(report["expired_vouchers"], 200);
    assert!(
        report["invariants"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["ok"] == true),
        "{report:#}"
    );
    // Every voucher expired and holds nothing, by its row and by its journal.
    let holding: i64 = sqlx::query_scalar(
        r#"select count(*) from vouchers v
           where v.status <> 'expired' or v.redeemed <> 0
              or (select coalesce(sum(case when j.debit = 'voucher:' || v.id then j.amount else -j.amount end), 0)
                  from journal j where j.voucher_id = v.id) <> 0"#,
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(holding, 0);
    let next = job::run_steps(&pool, date!(2027 - 01 - 01), None, &|_, _| {})
        .await
        .unwrap()
        .unwrap();
    assert!(
        next.invariants.iter().all(|i| i.ok),
        "{:#?}",
        next.invariants
    );
    assert_ledger_consistent(&pool).await;
}
