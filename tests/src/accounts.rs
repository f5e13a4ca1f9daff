//! Accounts and duties: sessions that end at once, password change and reset, activation
//! codes, the second factor of admin and finance, who may manage whom.

use axum::http::StatusCode;
use serde_json::{json, Value};
use sqlx::PgPool;
use time::Duration;
use voucher_core::auth::Role;

use crate::support::{totp_code, TestApp, STAFF_PASSWORD};

/// The firms' test password (`TestApp::firm`).
const FIRM_PASSWORD: &str = "correct-horse-battery";

async fn firm_login(app: &TestApp, uscc: &str, password: &str) -> String {
    let reply = app
        .call(
            "POST",
            "/api/portal/sessions",
            None,
            Some(json!({"uscc": uscc, "password": password})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    reply.json()["token"].as_str().unwrap().to_owned()
}

async fn me(app: &TestApp, token: &str) -> StatusCode {
    app.call("GET", "/api/portal/me", Some(token), None)
        .await
        .status
}

async fn staff_reads(app: &TestApp, token: &str) -> StatusCode {
    let year = app.state.clock.program_year();
    app.call(
        "GET",
        &format!("/api/bureau/programs/{year}"),
        Some(token),
        None,
    )
    .await
    .status
}

/// Another replica of `app`: the same database, keys and Redis, its own memory of sessions.
async fn replica_of(app: &TestApp) -> TestApp {
    let mut state = app.state.clone();
    state.sessions = Default::default();
    TestApp::with_state(state).await
}

fn now(app: &TestApp) -> i64 {
    app.state.clock.now().unix_timestamp()
}

/// An account of `role` logged in with its second factor enrolled; returns (token, secret).
async fn enrolled(app: &TestApp, username: &str, role: Role) -> (String, String) {
    app.account(username, role).await;
    let reply = app.staff_login(username, STAFF_PASSWORD, None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let body = reply.json();
    (
        body["token"].as_str().unwrap().to_owned(),
        body["totp_setup"]["secret"].as_str().unwrap().to_owned(),
    )
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn a_logged_out_token_gets_401_at_once(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let (_, _, uscc) = app.firm(1, true).await;
    let token = firm_login(&app, uscc.as_str(), FIRM_PASSWORD).await;
    let other = firm_login(&app, uscc.as_str(), FIRM_PASSWORD).await;
    assert_eq!(me(&app, &token).await, StatusCode::OK);
    let out = app
        .call("DELETE", "/api/portal/sessions/current", Some(&token), None)
        .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT, "{}", out.text());
    app.call("GET", "/api/portal/me", Some(&token), None)
        .await
        .assert_problem(401, "unauthorized");
    assert_eq!(me(&app, &other).await, StatusCode::OK, "only that session");

    let staff = app.staff("rev1", Role::Reviewer).await;
    assert_eq!(staff_reads(&app, &staff).await, StatusCode::OK);
    let out = app
        .call("DELETE", "/api/bureau/sessions/current", Some(&staff), None)
        .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT, "{}", out.text());
    assert_eq!(staff_reads(&app, &staff).await, StatusCode::UNAUTHORIZED);
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn revocation_holds_with_redis_stopped(pool: PgPool) {
    // Nothing listens on port 1: Redis is down for this app.
    let app = TestApp::with_redis(pool, "redis://127.0.0.1:1").await;
    let (_, _, uscc) = app.firm(2, true).await;
    let token = firm_login(&app, uscc.as_str(), FIRM_PASSWORD).await;
    assert_eq!(me(&app, &token).await, StatusCode::OK);
    app.call("DELETE", "/api/portal/sessions/current", Some(&token), None)
        .await;
    assert_eq!(me(&app, &token).await, StatusCode::UNAUTHORIZED);
    // A second replica (its own memory) on the same database sees it too.
    let replica = replica_of(&app).await;
    assert_eq!(me(&replica, &token).await, StatusCode::UNAUTHORIZED);
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn a_session_ended_elsewhere_stops_on_another_replica_within_the_cache_time(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let replica = replica_of(&app).await;
    let (_, _, uscc) = app.firm(3, true).await;
    let token = firm_login(&app, uscc.as_str(), FIRM_PASSWORD).await;
    assert_eq!(me(&replica, &token).await, StatusCode::OK, "remembered now");
    app.call("DELETE", "/api/portal/sessions/current", Some(&token), None)
        .await;
    tokio::time::sleep(voucher_core::auth::SESSION_CACHE_TTL).await;
    assert_eq!(me(&replica, &token).await, StatusCode::UNAUTHORIZED);
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn after_a_password_change_the_other_sessions_get_401(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let (_, _, uscc) = app.firm(4, true).await;
    let mine = firm_login(&app, uscc.as_str(), FIRM_PASSWORD).await;
    let other = firm_login(&app, uscc.as_str(), FIRM_PASSWORD).await;
    let change =
        |current: &str, new: &str| json!({"current_password": current, "new_password": new});
    app.call(
        "POST",
        "/api/portal/password",
        Some(&mine),
        Some(change("wrong-password-here", "lantern-orbit-fjord-42")),
    )
    .await
    .assert_problem(422, "validation_failed");
    let weak = app
        .call(
            "POST",
            "/api/portal/password",
            Some(&mine),
            Some(change(FIRM_PASSWORD, "password123")),
        )
        .await;
    weak.assert_problem(422, "validation_failed");
    assert!(weak.text().contains("new_password"), "{}", weak.text());
    let done = app
        .call(
            "POST",
            "/api/portal/password",
            Some(&mine),
            Some(change(FIRM_PASSWORD, "lantern-orbit-fjord-42")),
        )
        .await;
    assert_eq!(done.status, StatusCode::NO_CONTENT, "{}", done.text());
    assert_eq!(me(&app, &mine).await, StatusCode::OK, "the caller's stays");
    assert_eq!(me(&app, &other).await, StatusCode::UNAUTHORIZED);
    firm_login(&app, uscc.as_str(), "lantern-orbit-fjord-42").await;

    // Staff the same way.
    let staff_mine = app.staff("rev2", Role::Reviewer).await;
    let staff_other = app.staff_login("rev2", STAFF_PASSWORD, None).await.json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let done = app
        .call(
            "POST",
            "/api/bureau/password",
            Some(&staff_mine),
            Some(change(STAFF_PASSWORD, "lantern-orbit-fjord-43")),
        )
        .await;
    assert_eq!(done.status, StatusCode::NO_CONTENT, "{}", done.text());
    assert_eq!(staff_reads(&app, &staff_mine).await, StatusCode::OK);
    assert_eq!(
        staff_reads(&app, &staff_other).await,
        StatusCode::UNAUTHORIZED
    );
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn a_firm_reset_code_works_once_and_ends_every_session(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let (firm, old, uscc) = app.firm(5, true).await;
    let reviewer = app.staff("rev3", Role::Reviewer).await;
    let finance = app.staff("fin3", Role::Finance).await;
    let uri = format!("/api/bureau/firms/{firm}/password-reset");
    app.call("POST", &uri, Some(&finance), None)
        .await
        .assert_problem(403, "forbidden");
    app.call("POST", &uri, Some(&old), None)
        .await
        .assert_problem(401, "unauthorized");
    let issued = app.call("POST", &uri, Some(&reviewer), None).await;
    assert_eq!(issued.status, StatusCode::OK, "{}", issued.text());
    assert_eq!(issued.header("cache-control"), Some("no-store"));
    let code = issued.json()["code"].as_str().unwrap().to_owned();
    let reset = |code: &str, uscc: &str| json!({"uscc": uscc, "code": code, "new_password": "quartz-meadow-violin-7"});
    // Another firm's USCC with this code: refused, and the code stays good.
    let (_, _, other_uscc) = app.firm(6, true).await;
    let wrong = app
        .call(
            "POST",
            "/api/portal/password-reset",
            None,
            Some(reset(&code, other_uscc.as_str())),
        )
        .await;
    wrong.assert_problem(422, "validation_failed");
    assert!(wrong.text().contains("code"));
    let done = app
        .call(
            "POST",
            "/api/portal/password-reset",
            None,
            Some(reset(&code.to_lowercase(), uscc.as_str())),
        )
        .await;
    assert_eq!(done.status, StatusCode::NO_CONTENT, "{}", done.text());
    assert_eq!(me(&app, &old).await, StatusCode::UNAUTHORIZED);
    firm_login(&app, uscc.as_str(), "quartz-meadow-violin-7").await;
    let again = app
        .call(
            "POST",
            "/api/portal/password-reset",
            None,
            Some(reset(&code, uscc.as_str())),
        )
        .await;
    again.assert_problem(422, "validation_failed");
    assert!(again.text().contains("code"), "{}", again.text());

    // Expired: 24 h.
    let issued = app.call("POST", &uri, Some(&reviewer), None).await;
    let code = issued.json()["code"].as_str().unwrap().to_owned();
    app.state
        .clock
        .set(app.state.clock.now() + Duration::hours(24) + Duration::seconds(1));
    app.call(
        "POST",
        "/api/portal/password-reset",
        None,
        Some(reset(&code, uscc.as_str())),
    )
    .await
    .assert_problem(422, "validation_failed");
}

async fn create_staff(app: &TestApp, admin: &str, username: &str, role: &str) -> Value {
    let reply = app
        .call(
            "POST",
            "/api/bureau/staff",
            Some(admin),
            Some(json!({"username": username, "role": role})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    reply.json()
}

fn activation(username: &str, code: &str, password: &str) -> Value {
    json!({"username": username, "activation_code": code, "password": password})
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn an_activation_code_works_once_and_nobody_chooses_anothers_password(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let admin = app.staff("admin1", Role::Admin).await;
    let chosen = app
        .call(
            "POST",
            "/api/bureau/staff",
            Some(&admin),
            Some(json!({"username": "rev4", "role": "reviewer", "password": "admin-chose-this-1"})),
        )
        .await;
    chosen.assert_problem(422, "validation_failed");
    assert!(chosen.text().contains("password"));
    let created = create_staff(&app, &admin, "rev4", "reviewer").await;
    let code = created["activation_code"].as_str().unwrap();
    // Not usable before activation.
    app.staff_login("rev4", "anything-at-all-1", None)
        .await
        .assert_problem(401, "unauthorized");
    let weak = app
        .call(
            "POST",
            "/api/bureau/activation",
            None,
            Some(activation("rev4", code, "rev4rev4rev4")),
        )
        .await;
    weak.assert_problem(422, "validation_failed");
    let done = app
        .call(
            "POST",
            "/api/bureau/activation",
            None,
            Some(activation("rev4", code, "saffron-glacier-tundra-9")),
        )
        .await;
    assert_eq!(done.status, StatusCode::NO_CONTENT, "{}", done.text());
    let login = app
        .staff_login("rev4", "saffron-glacier-tundra-9", None)
        .await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.text());
    let again = app
        .call(
            "POST",
            "/api/bureau/activation",
            None,
            Some(activation("rev4", code, "another-glacier-tundra-9")),
        )
        .await;
    again.assert_problem(422, "validation_failed");
    assert!(again.text().contains("activation_code"), "{}", again.text());

    // Expired: 72 h.
    let created = create_staff(&app, &admin, "rev5", "reviewer").await;
    app.state
        .clock
        .set(app.state.clock.now() + Duration::hours(72) + Duration::seconds(1));
    let late = app
        .call(
            "POST",
            "/api/bureau/activation",
            None,
            Some(activation(
                "rev5",
                created["activation_code"].as_str().unwrap(),
                "saffron-glacier-tundra-9",
            )),
        )
        .await;
    late.assert_problem(422, "validation_failed");
    assert!(late.text().contains("activation_code"));
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn admin_and_finance_need_a_one_time_code_accepted_once(pool: PgPool) {
    let app = TestApp::new(pool).await;
    for (name, role) in [("admin9", Role::Admin), ("fin9", Role::Finance)] {
        let (_, secret) = enrolled(&app, name, role).await;
        app.staff_login(name, STAFF_PASSWORD, None)
            .await
            .assert_problem(401, "otp_required");
        let right = totp_code(&secret, now(&app));
        let wrong = if right == "000000" {
            "111111"
        } else {
            "000000"
        };
        app.staff_login(name, STAFF_PASSWORD, Some(wrong))
            .await
            .assert_problem(401, "unauthorized");
        let ok = app.staff_login(name, STAFF_PASSWORD, Some(&right)).await;
        assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
        assert!(ok.json().get("totp_setup").is_none(), "shown once only");
        app.staff_login(name, STAFF_PASSWORD, Some(&right))
            .await
            .assert_problem(401, "unauthorized");
        // The next step's code works (clocks a little apart).
        let next = totp_code(&secret, now(&app) + 30);
        let ok = app.staff_login(name, STAFF_PASSWORD, Some(&next)).await;
        assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    }
    // A reviewer logs in with its password alone, and may enrol.
    let reviewer = app.staff("rev9", Role::Reviewer).await;
    let ok = app.staff_login("rev9", STAFF_PASSWORD, None).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    let setup = app
        .call("POST", "/api/bureau/totp", Some(&reviewer), None)
        .await;
    assert_eq!(setup.status, StatusCode::OK, "{}", setup.text());
    assert!(setup.json()["otpauth_uri"]
        .as_str()
        .unwrap()
        .starts_with("otpauth://totp/"));
    app.staff_login("rev9", STAFF_PASSWORD, None)
        .await
        .assert_problem(401, "otp_required");
    app.call("POST", "/api/bureau/totp", Some(&reviewer), None)
        .await
        .assert_problem(409, "invalid_transition");
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn a_disabled_staff_members_token_gets_401_on_its_next_request(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let admin = app.staff("admin1", Role::Admin).await;
    let admin_id: uuid::Uuid = sqlx::query_scalar("select id from staff where username = 'admin1'")
        .fetch_one(&app.state.db)
        .await
        .unwrap();
    let reviewer = app.staff("rev6", Role::Reviewer).await;
    let id: uuid::Uuid = sqlx::query_scalar("select id from staff where username = 'rev6'")
        .fetch_one(&app.state.db)
        .await
        .unwrap();
    assert_eq!(staff_reads(&app, &reviewer).await, StatusCode::OK);
    let uri = format!("/api/bureau/staff/{id}");
    app.call(
        "PATCH",
        &uri,
        Some(&reviewer),
        Some(json!({"disabled": true})),
    )
    .await
    .assert_problem(403, "forbidden");
    let disabled = app
        .call("PATCH", &uri, Some(&admin), Some(json!({"disabled": true})))
        .await;
    assert_eq!(disabled.status, StatusCode::OK, "{}", disabled.text());
    assert_eq!(disabled.json()["disabled"], true);
    assert_eq!(staff_reads(&app, &reviewer).await, StatusCode::UNAUTHORIZED);
    app.staff_login("rev6", STAFF_PASSWORD, None)
        .await
        .assert_problem(401, "unauthorized");

    // A role change holds from the next request: a reviewer made finance cannot run settlement.
    let other = app.staff("rev7", Role::Reviewer).await;
    let other_id: uuid::Uuid = sqlx::query_scalar("select id from staff where username = 'rev7'")
        .fetch_one(&app.state.db)
        .await
        .unwrap();
    let changed = app
        .call(
            "PATCH",
            &format!("/api/bureau/staff/{other_id}"),
            Some(&admin),
            Some(json!({"role": "finance"})),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.text());
    assert_eq!(staff_reads(&app, &other).await, StatusCode::UNAUTHORIZED);

    // An admin cannot disable, demote or reset itself.
    let own = format!("/api/bureau/staff/{admin_id}");
    app.call("PATCH", &own, Some(&admin), Some(json!({"disabled": true})))
        .await
        .assert_problem(403, "forbidden");
    app.call(
        "PATCH",
        &own,
        Some(&admin),
        Some(json!({"role": "reviewer"})),
    )
    .await
    .assert_problem(403, "forbidden");
    app.call("POST", &format!("{own}/reset"), Some(&admin), None)
        .await
        .assert_problem(403, "forbidden");

    let list = app
        .call("GET", "/api/bureau/staff", Some(&admin), None)
        .await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text());
    let names: Vec<String> = list
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["username"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["admin1", "rev6", "rev7"]);
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn a_reset_clears_the_password_and_authenticator_and_ends_sessions(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let admin = app.staff("admin1", Role::Admin).await;
    let (token, _) = enrolled(&app, "fin8", Role::Finance).await;
    let id: uuid::Uuid = sqlx::query_scalar("select id from staff where username = 'fin8'")
        .fetch_one(&app.state.db)
        .await
        .unwrap();
    let reset = app
        .call(
            "POST",
            &format!("/api/bureau/staff/{id}/reset"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(reset.status, StatusCode::OK, "{}", reset.text());
    assert_eq!(staff_reads(&app, &token).await, StatusCode::UNAUTHORIZED);
    app.staff_login("fin8", STAFF_PASSWORD, None)
        .await
        .assert_problem(401, "unauthorized");
    let code = reset.json()["activation_code"].as_str().unwrap().to_owned();
    let done = app
        .call(
            "POST",
            "/api/bureau/activation",
            None,
            Some(activation("fin8", &code, "cobalt-harbour-pepper-5")),
        )
        .await;
    assert_eq!(done.status, StatusCode::NO_CONTENT, "{}", done.text());
    let first = app
        .staff_login("fin8", "cobalt-harbour-pepper-5", None)
        .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());
    assert!(
        first.json()["totp_setup"]["secret"].is_string(),
        "a new authenticator"
    );
    // Who created and changed the account is in the audit log.
    let actions: Vec<(String, String)> =
        sqlx::query_as("select actor, action from audit_log where subject = $1 order by seq")
            .bind(format!("staff:{id}"))
            .fetch_all(&app.state.db)
            .await
            .unwrap();
    assert!(
        actions.contains(&("system".into(), "staff.create".into())),
        "{actions:?}"
    );
    assert!(
        actions.contains(&("staff:admin1".into(), "staff.reset".into())),
        "{actions:?}"
    );
    assert!(
        actions.contains(&("staff:fin8".into(), "staff.activate".into())),
        "{actions:?}"
    );
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn only_reviewers_run_settlement_and_close_months(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let admin = app.staff("admin1", Role::Admin).await;
    let finance = app.staff("fin1", Role::Finance).await;
    let reviewer = app.staff("rev1", Role::Reviewer).await;
    let today = app
        .state
        .clock
        .now()
        .to_offset(voucher_core::state::SHANGHAI)
        .date();
    let month = format!("{}-{:02}", today.year(), u8::from(today.month()));
    for token in [&admin, &finance] {
        app.call(
            "POST",
            "/api/bureau/settlement-runs",
            Some(token),
            Some(json!({"business_date": today.to_string()})),
        )
        .await
        .assert_problem(403, "forbidden");
        app.call(
            "POST",
            "/api/bureau/statements",
            Some(token),
            Some(json!({"month": month})),
        )
        .await
        .assert_problem(403, "forbidden");
    }
    let closed = app
        .call(
            "POST",
            "/api/bureau/statements",
            Some(&reviewer),
            Some(json!({"month": month})),
        )
        .await;
    assert_eq!(closed.status, StatusCode::OK, "{}", closed.text());
}
