//! The rules endpoints and the award register, through the composed router.

use axum::http::StatusCode;
use serde_json::{json, Value};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use voucher_core::auth::Role;

use crate::support::{request, test_uscc, wide_pool, Reply, TestApp};

/// The ids of a measures list, in its order.
fn ids(reply: &Reply) -> Vec<String> {
    reply
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect()
}

/// The entry for `id` in a measures list.
fn entry(list: &Value, id: &str) -> Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == id)
        .unwrap_or_else(|| panic!("{id} not listed"))
        .clone()
}

/// Whether any trace step's text or value contains `needle`.
fn trace_mentions(body: &Value, needle: &str) -> bool {
    body["trace"].as_array().unwrap().iter().any(|s| {
        s["step"].as_str().unwrap().contains(needle)
            || s["value"].as_str().unwrap().contains(needle)
    })
}

/// Records an award as `token`.
async fn award(app: &TestApp, token: &str, body: Value) -> Reply {
    app.call("POST", "/api/rules/awards", Some(token), Some(body))
        .await
}

/// Rows in the register for `measure` in `year`, and the counter's value.
async fn register_counts(pool: &PgPool, measure: &str, year: i32) -> (i64, i32) {
    let rows: i64 =
        sqlx::query_scalar("select count(*) from awards where measure = $1 and year = $2")
            .bind(measure)
            .bind(year)
            .fetch_one(pool)
            .await
            .unwrap();
    let counted: Option<i32> =
        sqlx::query_scalar("select awarded from award_counts where measure = $1 and year = $2")
            .bind(measure)
            .bind(year)
            .fetch_optional(pool)
            .await
            .unwrap();
    (rows, counted.unwrap_or(0))
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn measures_are_those_of_the_version_in_force_on_the_date(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let finance = app.staff("fin", Role::Finance).await;
    let last_2021 = app
        .call(
            "GET",
            "/api/rules/measures?date=2022-03-10",
            Some(&finance),
            None,
        )
        .await;
    assert_eq!(last_2021.status, StatusCode::OK, "{}", last_2021.text());
    let first_revised = app
        .call(
            "GET",
            "/api/rules/measures?date=2022-03-11",
            Some(&finance),
            None,
        )
        .await;
    assert_eq!(
        first_revised.status,
        StatusCode::OK,
        "{}",
        first_revised.text()
    );
    let (old, new) = (ids(&last_2021), ids(&first_revised));
    assert_eq!(old.len(), 23, "{old:?}");
    assert_eq!(new.len(), 22, "{new:?}");
    assert!(old.contains(&"key_tech_project".to_owned()));
    assert!(
        !new.contains(&"key_tech_project".to_owned()),
        "一 关键技术攻关 is a 2021 task the revision deleted"
    );
    let only_old: Vec<&String> = old.iter().filter(|id| !new.contains(id)).collect();
    assert_eq!(only_old, ["key_tech_project"]);
    let benchmark = entry(&first_revised.json(), "application_benchmark");
    assert_eq!(benchmark["clause"], "五(3)");
    assert_eq!(benchmark["annual_quota"], 10);
    assert!(!benchmark["title"].as_str().unwrap().is_empty());
    assert_eq!(
        entry(&last_2021.json(), "promotion_center")["annual_quota"],
        2
    );
    assert_eq!(
        entry(&first_revised.json(), "promotion_center")["annual_quota"],
        Value::Null
    );
    assert_eq!(
        entry(&first_revised.json(), "cloud_voucher")["annual_quota"],
        2000
    );
    assert_eq!(
        entry(&last_2021.json(), "cloud_voucher")["annual_quota"],
        Value::Null
    );

    let before = app
        .call(
            "GET",
            "/api/rules/measures?date=2021-03-10",
            Some(&finance),
            None,
        )
        .await;
    before.assert_problem(404, "not_found");
    let first_day = app
        .call(
            "GET",
            "/api/rules/measures?date=2021-03-11",
            Some(&finance),
            None,
        )
        .await;
    assert_eq!(ids(&first_day), old);
    for uri in [
        "/api/rules/measures",
        "/api/rules/measures?date=2022-3-11",
        "/api/rules/measures?date=2022-02-30",
        "/api/rules/measures?date=tomorrow",
    ] {
        let reply = app.call("GET", uri, Some(&finance), None).await;
        reply.assert_problem(422, "validation_failed");
        assert_eq!(reply.json()["field"], "date", "{uri}");
    }
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn rules_endpoints_refuse_callers_without_a_bureau_session(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let (_, firm, _) = app.firm(1, true).await;
    let body = json!({"measure": "application_benchmark", "date": "2023-04-01",
                      "facts": {"selected": true}});
    let award_body = json!({"measure": "application_benchmark", "date": "2023-04-01",
                            "applicant_uscc": test_uscc(1), "facts": {"selected": true}});
    for token in [None, Some(firm.as_str()), Some("not-a-token")] {
        for (method, uri, body) in [
            ("GET", "/api/rules/measures?date=2023-04-01", None),
            ("POST", "/api/rules/evaluate", Some(body.clone())),
            ("POST", "/api/rules/awards", Some(award_body.clone())),
            ("GET", "/api/rules/awards?year=2023", None),
        ] {
            let reply = app.call(method, uri, token, body).await;
            reply.assert_problem(401, "unauthorized");
        }
    }
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn evaluate_answers_with_the_award_and_a_trace_citing_the_clause(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let admin = app.staff("admin1", Role::Admin).await;
    let reply = app
        .call(
            "POST",
            "/api/rules/evaluate",
            Some(&admin),
            Some(
                json!({"measure": "application_benchmark", "date": "2022-03-11",
                        "facts": {"selected": true}}),
            ),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["measure"], "application_benchmark");
    assert_eq!(body["policy_version"], "revised");
    assert_eq!(body["eligible"], true);
    assert_eq!(body["award"], "1000000.00");
    assert_eq!(body["annual_quota"], 10);
    let hash = body["params_hash"].as_str().unwrap();
    assert!(
        hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
        "{hash}"
    );
    let trace = body["trace"].as_array().unwrap();
    assert!(trace.len() >= 3, "{trace:?}");
    assert!(trace.iter().all(|s| s["clause"] == "五(3)"), "{trace:?}");
    assert!(
        trace_mentions(&body, "应用标杆"),
        "the clause is quoted: {trace:?}"
    );

    let day_before = app
        .call(
            "POST",
            "/api/rules/evaluate",
            Some(&admin),
            Some(
                json!({"measure": "application_benchmark", "date": "2022-03-10",
                        "facts": {"selected": true}}),
            ),
        )
        .await;
    assert_eq!(day_before.status, StatusCode::OK, "{}", day_before.text());
    assert_eq!(day_before.json()["policy_version"], "2021");
    assert_ne!(day_before.json()["params_hash"], body["params_hash"]);

    // 八(1) "1000万元及以上": the number itself qualifies, one fen below does not.
    let at = |amount: &str| {
        json!({"measure": "equity_investment", "date": "2023-06-30",
               "facts": {"equity_investment": amount}})
    };
    let exactly = app
        .call(
            "POST",
            "/api/rules/evaluate",
            Some(&admin),
            Some(at("10000000.00")),
        )
        .await;
    assert_eq!(exactly.status, StatusCode::OK, "{}", exactly.text());
    assert_eq!(exactly.json()["eligible"], true);
    assert_eq!(exactly.json()["award"], "200000.00");
    assert!(trace_mentions(&exactly.json(), "及以上"));
    let below = app
        .call(
            "POST",
            "/api/rules/evaluate",
            Some(&admin),
            Some(at("9999999.99")),
        )
        .await;
    assert_eq!(below.status, StatusCode::OK, "{}", below.text());
    assert_eq!(below.json()["eligible"], false);
    assert_eq!(below.json()["award"], "0.00");
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn evaluate_refuses_unknown_measures_and_measures_not_in_force_with_404(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let reviewer = app.staff("rev1", Role::Reviewer).await;
    for (measure, date, facts) in [
        ("no_such_measure", "2023-01-01", json!({})),
        (
            "key_tech_project",
            "2022-03-11",
            json!({"actual_investment": "1000000.00"}),
        ),
        (
            "application_benchmark",
            "2021-03-10",
            json!({"selected": true}),
        ),
    ] {
        let reply = app
            .call(
                "POST",
                "/api/rules/evaluate",
                Some(&reviewer),
                Some(json!({"measure": measure, "date": date, "facts": facts})),
            )
            .await;
        reply.assert_problem(404, "not_found");
    }
    let in_force = app
        .call(
            "POST",
            "/api/rules/evaluate",
            Some(&reviewer),
            Some(json!({"measure": "key_tech_project", "date": "2022-03-10",
                        "facts": {"actual_investment": "1000000.00"}})),
        )
        .await;
    assert_eq!(in_force.status, StatusCode::OK, "{}", in_force.text());
    assert_eq!(in_force.json()["award"], "500000.00");
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn evaluate_names_a_missing_or_ill_typed_fact_with_422(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let reviewer = app.staff("rev1", Role::Reviewer).await;
    for (body, field) in [
        (
            json!({"measure": "application_benchmark", "date": "2023-01-01", "facts": {}}),
            "selected",
        ),
        (
            json!({"measure": "application_benchmark", "date": "2023-01-01",
                   "facts": {"selected": "yes"}}),
            "selected",
        ),
        (
            json!({"measure": "equity_investment", "date": "2023-01-01",
                   "facts": {"equity_investment": 10000000}}),
            "equity_investment",
        ),
        (
            json!({"measure": "association", "date": "2023-01-01",
                   "facts": {"passed_assessment": true}}),
            "previously_awarded",
        ),
        (
            json!({"measure": "application_benchmark", "date": "2023-01-01",
                   "facts": {"selected": true, "selectd": true}}),
            "selectd",
        ),
        (
            json!({"measure": "application_benchmark", "date": "2023-01-01", "facts": []}),
            "facts",
        ),
        (
            json!({"measure": "application_benchmark", "date": "2023-01-01"}),
            "facts",
        ),
        (
            json!({"measure": "application_benchmark", "date": "01/01/2023",
                   "facts": {"selected": true}}),
            "date",
        ),
    ] {
        let reply = app
            .call(
                "POST",
                "/api/rules/evaluate",
                Some(&reviewer),
                Some(body.clone()),
            )
            .await;
        reply.assert_problem(422, "validation_failed");
        assert_eq!(reply.json()["field"], field, "{body}: {}", reply.text());
    }
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn only_reviewers_record_awards_and_every_role_lists_them(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let admin = app.staff("admin1", Role::Admin).await;
    let finance = app.staff("fin1", Role::Finance).await;
    let reviewer = app.staff("rev1", Role::Reviewer).await;
    let body = json!({"measure": "application_benchmark", "date": "2023-04-01",
                      "applicant_uscc": test_uscc(1), "facts": {"selected": true}});
    for token in [&admin, &finance] {
        award(&app, token, body.clone())
            .await
            .assert_problem(403, "forbidden");
    }
    assert_eq!(
        register_counts(&pool, "application_benchmark", 2023).await,
        (0, 0)
    );
    let reply = award(&app, &reviewer, body).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    let recorded = reply.json();
    assert_eq!(recorded["measure"], "application_benchmark");
    assert_eq!(recorded["date"], "2023-04-01");
    assert_eq!(recorded["year"], 2023);
    assert_eq!(recorded["applicant_uscc"], test_uscc(1).as_str());
    assert_eq!(recorded["award"], "1000000.00");
    assert_eq!(recorded["policy_version"], "revised");
    assert_eq!(recorded["params_hash"].as_str().unwrap().len(), 64);
    assert_eq!(recorded["annual_quota"], 10);
    assert_eq!(recorded["recorded_by"], "rev1");
    assert!(recorded["recorded_at"].is_string());
    assert!(trace_mentions(&recorded, "应用标杆"));

    for token in [&admin, &finance, &reviewer] {
        let listed = app
            .call("GET", "/api/rules/awards?year=2023", Some(token), None)
            .await;
        assert_eq!(listed.status, StatusCode::OK, "{}", listed.text());
        assert_eq!(listed.json().as_array().unwrap().len(), 1);
        assert_eq!(listed.json()[0]["id"], recorded["id"]);
        assert_eq!(listed.json()[0]["trace"], recorded["trace"]);
    }
    let other_measure = app
        .call(
            "GET",
            "/api/rules/awards?year=2023&measure=park_5g",
            Some(&finance),
            None,
        )
        .await;
    assert_eq!(other_measure.json(), json!([]));
    let other_year = app
        .call("GET", "/api/rules/awards?year=2024", Some(&finance), None)
        .await;
    assert_eq!(other_year.json(), json!([]));
    app.call(
        "GET",
        "/api/rules/awards?year=2023&measure=nope",
        Some(&finance),
        None,
    )
    .await
    .assert_problem(404, "not_found");
    for uri in ["/api/rules/awards", "/api/rules/awards?year=twenty"] {
        let reply = app.call("GET", uri, Some(&finance), None).await;
        reply.assert_problem(422, "validation_failed");
        assert_eq!(reply.json()["field"], "year");
    }

    let audited: i64 = sqlx::query_scalar(
        "select count(*) from audit_log where action = 'award.record' and subject = $1 \
         and actor = 'staff:rev1'",
    )
    .bind(format!("award:{}", recorded["id"].as_str().unwrap()))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(audited, 1);
    assert_eq!(
        register_counts(&pool, "application_benchmark", 2023).await,
        (1, 1)
    );
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn an_award_the_evaluation_refuses_is_not_recorded(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let reviewer = app.staff("rev1", Role::Reviewer).await;
    let reply = award(
        &app,
        &reviewer,
        json!({"measure": "application_benchmark", "date": "2023-04-01",
               "applicant_uscc": test_uscc(1), "facts": {"selected": false}}),
    )
    .await;
    reply.assert_problem(422, "not_eligible");
    assert!(reply.json()["detail"]
        .as_str()
        .unwrap()
        .contains("selected"));
    award(
        &app,
        &reviewer,
        json!({"measure": "key_tech_project", "date": "2023-04-01",
               "applicant_uscc": test_uscc(1), "facts": {"actual_investment": "100.00"}}),
    )
    .await
    .assert_problem(404, "not_found");
    let missing = award(
        &app,
        &reviewer,
        json!({"measure": "application_benchmark", "date": "2023-04-01",
               "applicant_uscc": test_uscc(1), "facts": {}}),
    )
    .await;
    missing.assert_problem(422, "validation_failed");
    assert_eq!(missing.json()["field"], "selected");
    let bad_uscc = award(
        &app,
        &reviewer,
        json!({"measure": "application_benchmark", "date": "2023-04-01",
               "applicant_uscc": "914403001922038217", "facts": {"selected": true}}),
    )
    .await;
    bad_uscc.assert_problem(422, "validation_failed");
    assert_eq!(bad_uscc.json()["field"], "applicant_uscc");
    assert_eq!(
        register_counts(&pool, "application_benchmark", 2023).await,
        (0, 0)
    );
    let audited: i64 =
        sqlx::query_scalar("select count(*) from audit_log where action = 'award.record'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(audited, 0);
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn the_register_not_the_caller_decides_an_associations_one_time_award(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let reviewer = app.staff("rev1", Role::Reviewer).await;
    let association = |n: u32, date: &str, facts: Value| {
        json!({"measure": "association", "date": date, "applicant_uscc": test_uscc(n),
               "facts": facts})
    };
    // The caller claims an earlier award that the register does not have: overridden.
    let first = award(
        &app,
        &reviewer,
        association(
            1,
            "2023-05-01",
            json!({"passed_assessment": true, "previously_awarded": true}),
        ),
    )
    .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text());
    let body = first.json();
    assert_eq!(body["award"], "1000000.00");
    assert_eq!(body["facts"]["previously_awarded"], false);
    assert_eq!(body["register_facts"], json!({"previously_awarded": false}));
    assert!(trace_mentions(&body, "登记簿 register"), "{body}");
    assert!(trace_mentions(&body, "overridden"), "{body}");

    // The caller denies the earlier award the register holds: refused, 一次性.
    let again = award(
        &app,
        &reviewer,
        association(
            1,
            "2024-05-01",
            json!({"passed_assessment": true, "previously_awarded": false}),
        ),
    )
    .await;
    again.assert_problem(422, "not_eligible");
    // Leaving the fact out is fine: the register supplies it.
    let silent = award(
        &app,
        &reviewer,
        association(1, "2024-05-01", json!({"passed_assessment": true})),
    )
    .await;
    silent.assert_problem(422, "not_eligible");
    let other = award(
        &app,
        &reviewer,
        association(2, "2024-05-01", json!({"passed_assessment": true})),
    )
    .await;
    assert_eq!(other.status, StatusCode::CREATED, "{}", other.text());
    assert_eq!(
        other.json()["register_facts"],
        json!({"previously_awarded": false})
    );

    // `2021` has no one-time rule: a second award under it stands, but the revised one is
    // refused because the register holds the earlier ones.
    for date in ["2021-06-01", "2022-01-05"] {
        let reply = award(
            &app,
            &reviewer,
            association(3, date, json!({"passed_assessment": true})),
        )
        .await;
        assert_eq!(
            reply.status,
            StatusCode::CREATED,
            "{date}: {}",
            reply.text()
        );
        assert_eq!(reply.json()["policy_version"], "2021");
    }
    award(
        &app,
        &reviewer,
        association(3, "2022-03-11", json!({"passed_assessment": true})),
    )
    .await
    .assert_problem(422, "not_eligible");

    let recorded: i64 =
        sqlx::query_scalar("select count(*) from awards where measure = 'association'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(recorded, 4);
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn an_award_past_the_years_quota_is_refused_with_quota_exhausted(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let reviewer = app.staff("rev1", Role::Reviewer).await;
    // 九(1) revised: "每年认定不超过2个".
    let training_base = |n: u32, date: &str| {
        json!({"measure": "training_base", "date": date, "applicant_uscc": test_uscc(n),
               "facts": {"recognized": true, "approved_amount": "300000.00"}})
    };
    for n in 1..=2 {
        let reply = award(&app, &reviewer, training_base(n, "2023-02-01")).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
        assert_eq!(reply.json()["award"], "300000.00");
    }
    award(&app, &reviewer, training_base(3, "2023-12-31"))
        .await
        .assert_problem(409, "quota_exhausted");
    let next_year = award(&app, &reviewer, training_base(3, "2024-01-01")).await;
    assert_eq!(
        next_year.status,
        StatusCode::CREATED,
        "{}",
        next_year.text()
    );
    assert_eq!(register_counts(&pool, "training_base", 2023).await, (2, 2));
    assert_eq!(register_counts(&pool, "training_base", 2024).await, (1, 1));
    // 五(2) sets no quota: the register just records (and counts).
    for n in 1..=3 {
        let reply = award(
            &app,
            &reviewer,
            json!({"measure": "identifier_adoption", "date": "2023-02-01",
                   "applicant_uscc": test_uscc(n),
                   "facts": {"registrations": 1000001, "monthly_avg_resolutions": 100001}}),
        )
        .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
        assert_eq!(reply.json()["annual_quota"], Value::Null);
    }
    assert_eq!(
        register_counts(&pool, "identifier_adoption", 2023).await,
        (3, 3)
    );
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn eleven_concurrent_awards_against_a_quota_of_ten_record_exactly_ten(
    _harness: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let pool = wide_pool(connect).await;
    let app = TestApp::new(pool.clone()).await;
    let reviewer = app.staff("rev1", Role::Reviewer).await;
    let mut tasks = Vec::new();
    for n in 0..11 {
        let router = app.router.clone();
        let token = reviewer.clone();
        // 五(3) revised: "每年遴选不超过10家".
        let body = json!({"measure": "application_benchmark", "date": "2023-04-01",
                          "applicant_uscc": test_uscc(n), "facts": {"selected": true}});
        tasks.push(tokio::spawn(async move {
            crate::support::send(
                &router,
                request("POST", "/api/rules/awards", Some(&token), Some(body)),
            )
            .await
        }));
    }
    let (mut created, mut exhausted) = (0, 0);
    for task in tasks {
        let reply = task.await.unwrap();
        match reply.status {
            StatusCode::CREATED => created += 1,
            StatusCode::CONFLICT => {
                assert_eq!(reply.json()["code"], "quota_exhausted", "{}", reply.text());
                exhausted += 1;
            }
            other => panic!("unexpected {other}: {}", reply.text()),
        }
    }
    assert_eq!((created, exhausted), (10, 1));
    assert_eq!(
        register_counts(&pool, "application_benchmark", 2023).await,
        (10, 10)
    );
    let audited: i64 =
        sqlx::query_scalar("select count(*) from audit_log where action = 'award.record'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        audited, 10,
        "the refused award's audit entry rolled back with it"
    );
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn concurrent_association_awards_to_one_applicant_record_one(
    _harness: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let pool = wide_pool(connect).await;
    let app = TestApp::new(pool.clone()).await;
    let reviewer = app.staff("rev1", Role::Reviewer).await;
    let mut tasks = Vec::new();
    for day in 1..=8 {
        let router = app.router.clone();
        let token = reviewer.clone();
        let body = json!({"measure": "association", "date": format!("2023-05-{day:02}"),
                          "applicant_uscc": test_uscc(7),
                          "facts": {"passed_assessment": true, "previously_awarded": false}});
        tasks.push(tokio::spawn(async move {
            crate::support::send(
                &router,
                request("POST", "/api/rules/awards", Some(&token), Some(body)),
            )
            .await
        }));
    }
    let (mut created, mut refused) = (0, 0);
    for task in tasks {
        let reply = task.await.unwrap();
        match reply.status {
            StatusCode::CREATED => created += 1,
            StatusCode::UNPROCESSABLE_ENTITY => {
                assert_eq!(reply.json()["code"], "not_eligible", "{}", reply.text());
                refused += 1;
            }
            other => panic!("unexpected {other}: {}", reply.text()),
        }
    }
    assert_eq!((created, refused), (1, 7));
    assert_eq!(register_counts(&pool, "association", 2023).await, (1, 1));
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn the_rules_endpoints_are_in_the_openapi_document(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let spec = crate::support::send(&app.router, crate::support::get("/openapi.json"))
        .await
        .json();
    for (path, method) in [
        ("/api/rules/measures", "get"),
        ("/api/rules/evaluate", "post"),
        ("/api/rules/awards", "post"),
        ("/api/rules/awards", "get"),
    ] {
        assert!(
            spec["paths"][path][method].is_object(),
            "{method} {path} missing from /openapi.json"
        );
    }
    let award = &spec["components"]["schemas"]["Award"]["properties"];
    for field in [
        "id",
        "measure",
        "year",
        "applicant_uscc",
        "award",
        "policy_version",
        "params_hash",
        "trace",
        "recorded_at",
        "recorded_by",
    ] {
        assert!(award[field].is_object(), "Award.{field} missing: {award}");
    }
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn postgres_itself_refuses_a_second_revised_association_award(pool: PgPool) {
    let insert = |id: u128, version: &'static str, date: &'static str| {
        sqlx::query(
            r#"insert into awards (id, measure, award_date, year, applicant_uscc, award,
                                   policy_version, params_hash, annual_quota, facts, trace,
                                   recorded_by)
               values ($1, 'association', $2::date, extract(year from $2::date)::integer, $3,
                       1000000.00, $4, repeat('a', 64), null, '{}', '[]', 'rev1')"#,
        )
        .bind(uuid::Uuid::from_u128(id))
        .bind(date)
        .bind(test_uscc(1).to_string())
        .bind(version)
    };
    insert(1, "2021", "2021-06-01")
        .execute(&pool)
        .await
        .unwrap();
    insert(2, "2021", "2022-01-05")
        .execute(&pool)
        .await
        .unwrap();
    insert(3, "revised", "2022-06-01")
        .execute(&pool)
        .await
        .unwrap();
    let err = insert(4, "revised", "2023-06-01")
        .execute(&pool)
        .await
        .unwrap_err();
    assert!(
        voucher_core::error::is_constraint(&err, "awards_association_once"),
        "{err}"
    );
    let zero = sqlx::query(
        r#"insert into awards (id, measure, award_date, year, applicant_uscc, award,
                               policy_version, params_hash, facts, trace, recorded_by)
           values ($1, 'park_5g', '2023-01-01', 2023, $2, 0.00, 'revised', repeat('a', 64),
                   '{}', '[]', 'rev1')"#,
    )
    .bind(uuid::Uuid::from_u128(5))
    .bind(test_uscc(2).to_string())
    .execute(&pool)
    .await
    .unwrap_err();
    assert!(
        voucher_core::error::is_constraint(&zero, "awards_award_positive"),
        "{zero}"
    );
    let counted = sqlx::query(
        "insert into award_counts (measure, year, awarded) values ('park_5g', 2023, -1)",
    )
    .execute(&pool)
    .await
    .unwrap_err();
    assert!(
        voucher_core::error::is_constraint(&counted, "award_counts_awarded_nonneg"),
        "{counted}"
    );
}
