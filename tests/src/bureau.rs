//! Bureau staff, program years and the audit log.

use axum::http::StatusCode;
use serde_json::json;
use sqlx::PgPool;
use voucher_core::audit;
use voucher_core::auth::Role;
use voucher_core::config::BootstrapAdmin;

use crate::support::TestApp;

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn the_bootstrap_admin_logs_in_and_creates_staff(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let admin = BootstrapAdmin {
        username: "root-admin".into(),
        password: "bootstrap-pass-1".into(),
    };
    assert!(voucher_accounts::staff::bootstrap_admin(&pool, &admin)
        .await
        .unwrap());
    assert!(
        !voucher_accounts::staff::bootstrap_admin(&pool, &admin)
            .await
            .unwrap(),
        "only when no staff exists"
    );
    // The first login enrols the authenticator and shows its secret once.
    let reply = app
        .staff_login("root-admin", "bootstrap-pass-1", None)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let token = reply.json()["token"].as_str().unwrap().to_owned();
    assert!(reply.json()["totp_setup"]["secret"].is_string());
    let reply = app
        .call(
            "POST",
            "/api/bureau/staff",
            Some(&token),
            Some(json!({"username": "fin", "role": "finance"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    assert_eq!(reply.json()["role"], "finance");
    assert!(reply.json()["activation_code"].is_string());
    let reply = app
        .call(
            "POST",
            "/api/bureau/staff",
            Some(&token),
            Some(json!({"username": "fin", "role": "finance"})),
        )
        .await;
    reply.assert_problem(409, "already_registered");
    let reply = app
        .call(
            "POST",
            "/api/bureau/staff",
            Some(&token),
            Some(json!({"username": "x", "role": "boss"})),
        )
        .await;
    reply.assert_problem(422, "validation_failed");
    let wrong = app
        .call(
            "POST",
            "/api/bureau/sessions",
            None,
            Some(json!({"username": "root-admin", "password": "nope-nope-nope"})),
        )
        .await;
    wrong.assert_problem(401, "unauthorized");
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn only_admins_create_staff_or_change_parameters(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let year = app.state.clock.program_year();
    for (name, role) in [("rev", Role::Reviewer), ("fin", Role::Finance)] {
        let token = app.staff(name, role).await;
        let reply = app
            .call(
                "POST",
                "/api/bureau/staff",
                Some(&token),
                Some(
                    json!({"username": "newbie", "password": "newbie-pass-1", "role": "reviewer"}),
                ),
            )
            .await;
        reply.assert_problem(403, "forbidden");
        let reply = app
            .call(
                "PATCH",
                &format!("/api/bureau/programs/{year}"),
                Some(&token),
                Some(json!({"firm_quota": 10})),
            )
            .await;
        reply.assert_problem(403, "forbidden");
        let reply = app
            .call(
                "GET",
                &format!("/api/bureau/programs/{year}"),
                Some(&token),
                None,
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "every role reads the program");
    }
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn the_program_has_the_policy_defaults_and_never_goes_below_what_is_committed(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let year = app.state.clock.program_year();
    let admin = app.staff("admin1", Role::Admin).await;
    let program = app
        .call(
            "GET",
            &format!("/api/bureau/programs/{year}"),
            Some(&admin),
            None,
        )
        .await
        .json();
    // 五(1) in the revised policy: 30%, at most 50,000 per firm, at most 2,000 firms a year.
    assert_eq!(program["rate"], "0.30");
    assert_eq!(program["cap_per_firm"], "50000.00");
    assert_eq!(program["firm_quota"], 2000);
    assert_eq!(program["claim_validity_days"], 90);
    assert_eq!(program["firms_admitted"], 0);

    let platform = app.platform("云平台", 9).await;
    for n in 0..2 {
        let (_, token, _) = app.firm(100 + n, true).await;
        let reply = app.claim(&token, platform, "100000.00").await;
        assert_eq!(reply.status, StatusCode::CREATED);
    }
    let uri = format!("/api/bureau/programs/{year}");
    let reply = app
        .call("PATCH", &uri, Some(&admin), Some(json!({"firm_quota": 1})))
        .await;
    reply.assert_problem(409, "invalid_transition");
    let reply = app
        .call(
            "PATCH",
            &uri,
            Some(&admin),
            Some(json!({"cap_per_firm": "29999.99"})),
        )
        .await;
    reply.assert_problem(409, "invalid_transition");
    let reply = app
        .call("PATCH", &uri, Some(&admin), Some(json!({"firm_quota": -1})))
        .await;
    reply.assert_problem(422, "validation_failed");
    let reply = app
        .call(
            "PATCH",
            &uri,
            Some(&admin),
            Some(json!({"firm_quota": 2, "cap_per_firm": "30000.00", "claim_validity_days": 30})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let program = reply.json();
    assert_eq!(program["firm_quota"], 2);
    assert_eq!(program["firms_admitted"], 2);
    assert_eq!(program["granted_total"], "60000.00");
    assert_eq!(program["vouchers_active"], 2);
    let (_, late, _) = app.firm(200, true).await;
    let reply = app.claim(&late, platform, "1000.00").await;
    reply.assert_problem(409, "quota_exhausted");
    let reply = app
        .call("GET", "/api/bureau/programs/1999", Some(&admin), None)
        .await;
    reply.assert_problem(404, "not_found");
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn every_change_and_login_is_audited_and_the_chain_verifies(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let platform = app.platform("云平台", 7).await;
    let (_, token, uscc) = app.firm(300, true).await;
    app.call(
        "POST",
        "/api/portal/sessions",
        None,
        Some(json!({"uscc": uscc, "password": "correct-horse-battery"})),
    )
    .await;
    app.call(
        "POST",
        "/api/portal/sessions",
        None,
        Some(json!({"uscc": uscc, "password": "wrong"})),
    )
    .await;
    app.claim(&token, platform, "1000.00").await;
    let reviewer = app.staff("auditor", Role::Reviewer).await;
    let total: i64 = sqlx::query_scalar("select count(*) from audit_log")
        .fetch_one(&pool)
        .await
        .unwrap();
    seal_until(&pool, total).await;
    let entries = app
        .call("GET", "/api/bureau/audit?after=0", Some(&reviewer), None)
        .await
        .json();
    let actions: Vec<&str> = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for expected in [
        "platform.register",
        "firm.register",
        "session.login",
        "session.login_failed",
        "voucher.claim",
        "staff.create",
    ] {
        assert!(
            actions.contains(&expected),
            "{expected} missing from {actions:?}"
        );
    }
    let verify = app
        .call("GET", "/api/bureau/audit/verify", Some(&reviewer), None)
        .await
        .json();
    assert_eq!(verify["ok"], true, "{verify}");
    assert!(verify["entries"].as_i64().unwrap() >= 5);
    app.call("GET", "/api/bureau/audit?after=0", Some(&token), None)
        .await
        .assert_problem(401, "unauthorized");
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn an_edited_or_deleted_audit_row_is_named_by_verify(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    // Four registrations: one audit entry each (verifying would add more).
    for n in 0..4 {
        app.pending_firm(400 + n, true).await;
    }
    seal_until(&pool, 4).await;
    assert!(audit::verify(&pool).await.unwrap().ok);
    let seqs: Vec<i64> = sqlx::query_scalar("select seq from audit_log order by seq")
        .fetch_all(&pool)
        .await
        .unwrap();
    // Someone with the table owner's rights turns off the append-only trigger and edits.
    sqlx::query("alter table audit_log disable trigger audit_log_append_only")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(
        "update audit_log set detail = jsonb_set(detail, '{eligible}', 'false') where seq = $1",
    )
    .bind(seqs[1])
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("delete from audit_log where seq = $1")
        .bind(seqs[3])
        .execute(&pool)
        .await
        .unwrap();
    let report = audit::verify(&pool).await.unwrap();
    assert!(!report.ok);
    let named: Vec<(Option<i64>, &str)> = report
        .findings
        .iter()
        .map(|f| (f.seq, f.problem.as_str()))
        .collect();
    assert_eq!(
        named,
        vec![(Some(seqs[1]), "edited"), (Some(seqs[3]), "removed")]
    );
    // The endpoint says the same.
    let reviewer = app.staff("auditor2", Role::Reviewer).await;
    let body = app
        .call("GET", "/api/bureau/audit/verify", Some(&reviewer), None)
        .await
        .json();
    assert_eq!(body["ok"], false);
    assert_eq!(body["findings"][0]["seq"], seqs[1]);
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn the_audit_log_refuses_updates_while_the_trigger_stands(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    app.firm(500, true).await;
    let err = sqlx::query("update audit_log set actor = 'someone else'")
        .execute(&pool)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
    let err = sqlx::query("delete from audit_log")
        .execute(&pool)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn an_entry_committed_late_is_sealed_not_skipped(pool: PgPool) {
    // A transaction that appended early but commits after later entries were sealed.
    let mut slow = pool.begin().await.unwrap();
    audit::append(
        &mut slow,
        &audit::Actor::System,
        "test.slow",
        None,
        json!({}),
    )
    .await
    .unwrap();
    let mut fast = pool.begin().await.unwrap();
    audit::append(
        &mut fast,
        &audit::Actor::System,
        "test.fast",
        None,
        json!({}),
    )
    .await
    .unwrap();
    fast.commit().await.unwrap();
    assert_eq!(
        audit::seal_pending(&pool, 1000).await.unwrap(),
        0,
        "the slow transaction holds the horizon"
    );
    slow.commit().await.unwrap();
    seal_until(&pool, 2).await;
    let report = audit::verify(&pool).await.unwrap();
    assert!(report.ok);
    assert_eq!((report.entries, report.pending), (2, 0));
}

/// Seals until the chain holds `total` entries. The horizon is cluster-wide, so a transaction
/// of a test running beside this one can hold sealing back for a moment.
async fn seal_until(pool: &PgPool, total: i64) {
    for _ in 0..200 {
        audit::seal_pending(pool, 1000).await.unwrap();
        let sealed: i64 = sqlx::query_scalar("select count(*) from audit_chain")
            .fetch_one(pool)
            .await
            .unwrap();
        if sealed >= total {
            assert_eq!(sealed, total);
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the sealer did not reach {total} entries");
}
