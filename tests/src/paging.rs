//! Every list pages the same way (API.md, Conventions): `limit` and `cursor`, a `Link:
//! rel="next"` header while more rows follow, keyset order, so walking the pages gives exactly
//! the whole list; a bad `limit` or `cursor` is 422 naming it.

use axum::http::StatusCode;
use serde_json::{json, Value};
use sqlx::PgPool;
use voucher_core::auth::Role;

use crate::support::{redemption, test_uscc, TestApp};

/// The URL in a `Link: <URL>; rel="next"` header.
fn next_url(link: &str) -> String {
    assert!(link.ends_with("; rel=\"next\""), "{link}");
    link.trim_start_matches('<')
        .split('>')
        .next()
        .unwrap()
        .to_owned()
}

/// Fetches `uri` whole, then page by page with `limit=2`, and checks the pages add up to the
/// whole list, in order, with `Link` on every page but the last.
async fn assert_pages(app: &TestApp, uri: &str, token: &str) {
    let whole = app.call("GET", uri, Some(token), None).await;
    assert_eq!(whole.status, StatusCode::OK, "{uri}: {}", whole.text());
    assert!(whole.header("link").is_none(), "{uri}: one page holds it");
    let whole = whole.json().as_array().unwrap().clone();
    assert!(
        whole.len() >= 3,
        "{uri}: {} rows are too few to page",
        whole.len()
    );

    let sep = if uri.contains('?') { '&' } else { '?' };
    let mut next = Some(format!("{uri}{sep}limit=2"));
    let (mut paged, mut pages) = (Vec::<Value>::new(), 0);
    while let Some(page_uri) = next.take() {
        let reply = app.call("GET", &page_uri, Some(token), None).await;
        assert_eq!(reply.status, StatusCode::OK, "{page_uri}: {}", reply.text());
        let rows = reply.json().as_array().unwrap().clone();
        assert!(rows.len() <= 2, "{page_uri}: {} rows", rows.len());
        pages += 1;
        paged.extend(rows);
        next = reply.header("link").map(next_url);
        assert!(pages <= whole.len(), "{uri}: the pages never end");
    }
    assert_eq!(paged, whole, "{uri}: the pages are the list");
    assert_eq!(pages, whole.len().div_ceil(2), "{uri}");

    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("cursor=%25", "cursor"),
    ] {
        let reply = app
            .call("GET", &format!("{uri}{sep}{query}"), Some(token), None)
            .await;
        reply.assert_problem(422, "validation_failed");
        assert_eq!(reply.json()["field"], field, "{uri} {query}");
    }
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn every_list_pages_with_limit_cursor_and_link(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let admin = app.staff("admin1", Role::Admin).await;
    let reviewer = app.staff("rev1", Role::Reviewer).await;
    app.staff("fin1", Role::Finance).await;

    // Three platforms with keys, each with one redemption this month, so a month closes into
    // three statements.
    let (_, firm, _) = app.firm(1, true).await;
    for n in 1..=3 {
        let (platform, key) = app.platform_with_key(n).await;
        let claim = app.claim(&firm, platform, "3000.00").await;
        assert_eq!(claim.status, StatusCode::CREATED, "{}", claim.text());
        let reply = app
            .send(redemption(
                &key,
                &format!("page-{n}"),
                json!({"voucher": claim.json()["token"], "invoice_no": format!("PG-{n}"), "bill_amount": "100.00"}),
            ))
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    }
    let today = app
        .state
        .clock
        .now()
        .to_offset(voucher_core::state::SHANGHAI)
        .date();
    let month = voucher_core::calendar::month_of(today);
    let close = app
        .call(
            "POST",
            "/api/bureau/statements",
            Some(&reviewer),
            Some(json!({"month": month})),
        )
        .await;
    assert_eq!(close.status, StatusCode::OK, "{}", close.text());
    for back in 1..=3 {
        let date = today - time::Duration::days(back);
        let run = app
            .call(
                "POST",
                "/api/bureau/settlement-runs",
                Some(&reviewer),
                Some(json!({"business_date": date.to_string()})),
            )
            .await;
        assert_eq!(run.status, StatusCode::OK, "{}", run.text());
    }
    for n in 0..3 {
        // 五(3) revised: "每年遴选不超过10家".
        let award = app
            .call(
                "POST",
                "/api/rules/awards",
                Some(&reviewer),
                Some(
                    json!({"measure": "application_benchmark", "date": "2023-04-01",
                            "applicant_uscc": test_uscc(100 + n), "facts": {"selected": true}}),
                ),
            )
            .await;
        assert_eq!(award.status, StatusCode::CREATED, "{}", award.text());
    }

    assert_pages(&app, "/api/portal/platforms", &firm).await;
    assert_pages(&app, "/api/portal/vouchers", &firm).await;
    assert_pages(&app, "/api/bureau/platforms", &admin).await;
    assert_pages(&app, "/api/bureau/staff", &admin).await;
    assert_pages(&app, "/api/bureau/audit", &reviewer).await;
    assert_pages(&app, "/api/bureau/audit?after=1", &reviewer).await;
    assert_pages(&app, "/api/bureau/settlement-runs", &reviewer).await;
    assert_pages(
        &app,
        &format!("/api/bureau/statements?month={month}"),
        &reviewer,
    )
    .await;
    assert_pages(&app, "/api/rules/measures?date=2026-06-01", &reviewer).await;
    assert_pages(&app, "/api/rules/awards?year=2023", &reviewer).await;
}

/// The OpenAPI document declares `limit` and `cursor` on every list (a GET answering an
/// array); this holds it to that: each such operation refuses `limit=0` naming `limit`, so a
/// list added without paging fails here.
#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn every_list_the_document_declares_pages(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let admin = app.staff("admin1", Role::Admin).await;
    let (_, firm, _) = app.firm(1, true).await;
    let (_, key) = app.platform_with_key(1).await;
    let doc = app.call("GET", "/openapi.json", None, None).await.json();
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        let Some(get) = item.get("get") else { continue };
        if get["responses"]["200"]["content"]["application/json"]["schema"]["type"] != "array" {
            continue;
        }
        let names: Vec<&str> = get["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert!(
            names.contains(&"limit") && names.contains(&"cursor"),
            "{path}"
        );
        // Path parameters get a fresh id (the list of nothing is still a list), required
        // query parameters a valid value.
        let mut uri = path.replace(['{', '}'], "");
        for p in get["parameters"].as_array().unwrap() {
            if p["in"] == "path" {
                uri = uri.replace(
                    p["name"].as_str().unwrap(),
                    &uuid::Uuid::now_v7().to_string(),
                );
            }
        }
        let mut query = vec!["limit=0".to_owned()];
        for p in get["parameters"].as_array().unwrap() {
            if p["in"] == "query" && p["required"] == true {
                let value = match p["name"].as_str().unwrap() {
                    "month" => "2026-06",
                    "date" => "2026-06-01",
                    "year" => "2026",
                    other => panic!("{path}: no value to give the required parameter {other}"),
                };
                query.push(format!("{}={value}", p["name"].as_str().unwrap()));
            }
        }
        let token = if path.starts_with("/api/portal/") {
            &firm
        } else if path.starts_with("/v1/") {
            &key
        } else {
            &admin
        };
        let reply = app
            .call(
                "GET",
                &format!("{uri}?{}", query.join("&")),
                Some(token),
                None,
            )
            .await;
        reply.assert_problem(422, "validation_failed");
        assert_eq!(reply.json()["field"], "limit", "{path}: {}", reply.text());
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} lists in the document");
}
