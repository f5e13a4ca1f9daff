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
