//! The bureau's and the firm's daily work: exports that spreadsheets read right, the bureau's
//! look-ups of vouchers and redemptions, and a firm's voucher's redemptions.

use std::io::{Cursor, Read};

use axum::http::StatusCode;
use calamine::{open_workbook_from_rs, Data, Reader, Xlsx};
use serde_json::{json, Value};
use sqlx::PgPool;
use time::macros::datetime;
use voucher_core::auth::Role;

use crate::support::{firm_token, redemption, Reply, TestApp};

const INJECTED_NAME: &str = "=HYPERLINK(\"http://evil.example\",\"点我\")";

/// June 2026 with two platforms: firm 1 (named like a formula) redeems a bill of 166,667.00
/// on platform 1 against invoice `000120260000` (discount 50,000.00); firm 2 redeems
/// 100,000.00 on platform 2 (discount 30,000.00) against invoice `+8613800000000`, and a
/// second bill that is then reversed. The month is closed on July 2nd.
struct June {
    voucher1: Value,
    voucher2: Value,
    firm1_uscc: String,
    platform1: uuid::Uuid,
    platform2: uuid::Uuid,
    reversed_id: String,
    reviewer: String,
}

async fn june(app: &TestApp) -> June {
    let (platform1, key1) = app.platform_with_key(1).await;
    let (platform2, key2) = app.platform_with_key(2).await;
    app.state.clock.set(datetime!(2026-06-10 09:00 +8));
    let voucher1 = app.voucher(platform1, 1, "200000.00").await;
    let voucher2 = app.voucher(platform2, 2, "200000.00").await;
    sqlx::query("update firms set name = $1 where uscc = $2")
        .bind(INJECTED_NAME)
        .bind(voucher1["firm_uscc"].as_str().unwrap())
        .execute(&app.state.db)
        .await
        .unwrap();
    let redeem = |key: &str, idem: &str, body: Value| {
        let request = redemption(key, idem, body);
        async move {
            let reply = app.send(request).await;
            assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
            reply.json()
        }
    };
    redeem(
        &key1,
        "j-1",
        json!({"voucher": voucher1["code"], "invoice_no": "000120260000", "bill_amount": "166667.00",
               "contract_no": "@SUM(A1)", "billing_period": "2026-06"}),
    )
    .await;
    app.state.clock.set(datetime!(2026-06-11 09:00 +8));
    redeem(
        &key2,
        "j-2",
        json!({"voucher": voucher2["code"], "invoice_no": "+8613800000000", "bill_amount": "100000.00",
               "contract_no": "-2+3"}),
    )
    .await;
    app.state.clock.set(datetime!(2026-06-12 09:00 +8));
    let reversed = redeem(
        &key2,
        "j-3",
        json!({"voucher": voucher2["code"], "invoice_no": "VOID-1", "bill_amount": "1000.00"}),
    )
    .await;
    let reply = app
        .call(
            "POST",
            &format!(
                "/v1/redemptions/{}/reversal",
                reversed["id"].as_str().unwrap()
            ),
            Some(&key2),
            Some(json!({"reason": "发票作废"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    app.state.clock.set(datetime!(2026-07-02 09:00 +8));
    let reviewer = app.staff("reviewer", Role::Reviewer).await;
    let reply = app
        .call(
            "POST",
            "/api/bureau/statements",
            Some(&reviewer),
            Some(json!({"month": "2026-06"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    June {
        firm1_uscc: voucher1["firm_uscc"].as_str().unwrap().to_owned(),
        voucher1,
        voucher2,
        platform1,
        platform2,
        reversed_id: reversed["id"].as_str().unwrap().to_owned(),
        reviewer,
    }
}

/// The records of a CSV export, after its byte-order mark.
fn csv_records(reply: &Reply) -> Vec<Vec<String>> {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(
        reply.header("content-type"),
        Some("text/csv; charset=utf-8")
    );
    let bom = "\u{feff}".as_bytes();
    assert!(reply.body.starts_with(bom), "UTF-8 with a byte-order mark");
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(&reply.body[bom.len()..])
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect()
}

/// An RFC 3339 instant of a JSON answer.
fn instant(v: &Value) -> time::OffsetDateTime {
    time::OffsetDateTime::parse(
        v.as_str().expect("a time"),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap()
}

/// An amount cell: a number with exactly two decimals.
fn assert_amount(text: &str, want: &str) {
    let d: rust_decimal::Decimal = text.parse().unwrap_or_else(|_| panic!("{text:?}"));
    assert_eq!(d.scale(), 2, "{text}");
    assert_eq!(text, want);
}

/// Keeps a copy of an export in `$VOUCHER_EXPORT_SAMPLES` when set, to open by hand (the
/// LibreOffice print check in the README).
fn keep_sample(name: &str, body: &[u8]) {
    if let Ok(dir) = std::env::var("VOUCHER_EXPORT_SAMPLES") {
        std::fs::write(std::path::Path::new(&dir).join(name), body).unwrap();
    }
}

fn xml_of(xlsx: &[u8], part: &str) -> String {
    let mut zip = zip::ZipArchive::new(Cursor::new(xlsx)).unwrap();
    let mut text = String::new();
    zip.by_name(part)
        .unwrap_or_else(|_| panic!("{part} in the workbook"))
        .read_to_string(&mut text)
        .unwrap();
    text
}

/// The widths of the sheet's columns (1-based), from its `<cols>` (a `<col>` may span several).
fn column_widths(sheet_xml: &str) -> Vec<(u32, f64)> {
    sheet_xml
        .split("<col ")
        .skip(1)
        .flat_map(|col| {
            let attr = |name: &str| {
                let start = col.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
                col[start..].split('"').next().unwrap().to_owned()
            };
            let (min, max): (u32, u32) =
                (attr("min").parse().unwrap(), attr("max").parse().unwrap());
            let width: f64 = attr("width").parse().unwrap();
            (min..=max).map(move |c| (c, width))
        })
        .collect()
}

/// What every XLSX export must hold: a frozen header, a filter, widths, the print set-up.
fn assert_sheet_set_up(sheet_xml: &str, header_row: u32) {
    assert!(
        sheet_xml.contains(&format!(
            r#"topLeftCell="A{}" activePane="bottomLeft" state="frozen""#,
            header_row + 2
        )),
        "header frozen: {sheet_xml}"
    );
    assert!(sheet_xml.contains(&format!("<autoFilter ref=\"A{}:", header_row + 1)));
    assert!(sheet_xml.contains(r#"orientation="landscape""#));
    assert!(sheet_xml.contains(r#"paperSize="9""#), "A4");
    assert!(
        sheet_xml.contains(r#"fitToHeight="0""#),
        "one page wide, as tall as needed"
    );
    assert!(sheet_xml.contains("<pageSetUpPr fitToPage=\"1\"/>"));
    assert!(
        column_widths(sheet_xml).len() >= 11,
        "every column has a width"
    );
}

fn string_at(range: &calamine::Range<Data>, row: u32, col: u32) -> String {
    match range.get_value((row, col)) {
        Some(Data::String(s)) => s.clone(),
        other => panic!("({row}, {col}) is not text: {other:?}"),
    }
}

fn number_at(range: &calamine::Range<Data>, row: u32, col: u32) -> f64 {
    match range.get_value((row, col)) {
        Some(Data::Float(n)) => *n,
        other => panic!("({row}, {col}) is not a number: {other:?}"),
    }
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn statement_exports_read_back_with_identifiers_amounts_and_formulas_intact(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let m = june(&app).await;
    let finance = app.staff("finance", Role::Finance).await;
    let list = app
        .call(
            "GET",
            "/api/bureau/statements?month=2026-06",
            Some(&finance),
            None,
        )
        .await
        .json();
    let first = list
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["platform_id"] == m.platform1.to_string())
        .unwrap()
        .clone();
    let id = first["id"].as_str().unwrap();

    // CSV: identifiers behind a tab (text to Excel and LibreOffice), formulas behind an
    // apostrophe, amounts with two decimals.
    let reply = app
        .call(
            "GET",
            &format!("/api/bureau/statements/{id}/lines.csv"),
            Some(&finance),
            None,
        )
        .await;
    keep_sample("statement.csv", &reply.body);
    let rows = csv_records(&reply);
    assert_eq!(rows[0][9], "抵扣金额(补贴)");
    assert_eq!(rows.len(), 3, "header, one line, totals");
    let line = &rows[1];
    assert_eq!(
        line[2],
        format!("'{INJECTED_NAME}"),
        "the formula is shown, not run"
    );
    assert_eq!(line[3], format!("\t{}", m.firm1_uscc));
    assert_eq!(line[3].trim_start(), m.firm1_uscc, "the USCC intact");
    assert_eq!(line[4].trim_start(), m.voucher1["code"].as_str().unwrap());
    assert_eq!(line[5], "\t000120260000", "leading zeros kept as text");
    assert_eq!(line[6], "'@SUM(A1)");
    assert_eq!(line[7], "\t2026-06", "not a date");
    assert_amount(&line[8], "166667.00");
    assert_amount(&line[9], "50000.00");
    let totals = &rows[2];
    assert_eq!((totals[0].as_str(), totals[5].as_str()), ("合计", "1 笔"));
    assert_amount(&totals[9], "50000.00");

    // XLSX: the particulars above, the lines as text and numbers, the sheet set up.
    let reply = app
        .call(
            "GET",
            &format!("/api/bureau/statements/{id}/lines.xlsx"),
            Some(&finance),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    keep_sample("statement.xlsx", &reply.body);
    let mut book: Xlsx<_> = open_workbook_from_rs(Cursor::new(reply.body.clone())).unwrap();
    let range = book.worksheet_range("2026-06").unwrap();
    assert!(string_at(&range, 0, 0).contains("2026-06"));
    let labels: Vec<String> = (1..=5).map(|r| string_at(&range, r, 0)).collect();
    assert_eq!(labels, ["结算月份", "平台", "状态", "审核人", "付款"]);
    assert_eq!(string_at(&range, 3, 1), "草稿");
    let header = 7;
    assert_eq!(string_at(&range, header, 9), "抵扣金额(补贴)");
    assert_eq!(
        string_at(&range, header + 1, 2),
        INJECTED_NAME,
        "a string, not a formula"
    );
    assert_eq!(string_at(&range, header + 1, 3), m.firm1_uscc);
    assert_eq!(string_at(&range, header + 1, 5), "000120260000");
    assert_eq!(number_at(&range, header + 1, 8), 166_667.0);
    assert_eq!(number_at(&range, header + 1, 9), 50_000.0);
    assert_eq!(string_at(&range, header + 2, 0), "合计");
    assert_eq!(number_at(&range, header + 2, 9), 50_000.0);
    let formulas = book.worksheet_formula("2026-06").unwrap();
    assert!(
        formulas.used_cells().all(|(_, _, f)| f.is_empty()),
        "no formula anywhere"
    );
    let sheet = xml_of(&reply.body, "xl/worksheets/sheet1.xml");
    assert_sheet_set_up(&sheet, header);
    let widths = column_widths(&sheet);
    let width = |col: u32| widths.iter().find(|(c, _)| *c == col + 1).unwrap().1;
    assert!(
        width(8) >= "¥166,667.00".len() as f64,
        "amounts never show ###"
    );
    assert!(width(9) >= 14.0, "the header 抵扣金额(补贴) is not cut");
    assert!(width(3) >= 18.0, "a USCC fits");
    let styles = xml_of(&reply.body, "xl/styles.xml");
    assert!(styles.contains(r#"formatCode="¥#,##0.00""#), "{styles}");
    assert!(
        styles.contains(r#"numFmtId="49""#),
        "text format on identifiers"
    );
    let workbook = xml_of(&reply.body, "xl/workbook.xml");
    assert!(
        workbook.contains("_xlnm.Print_Titles"),
        "header row repeated"
    );
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn the_month_summary_has_every_platform_and_the_totals(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let m = june(&app).await;
    let reply = app
        .call(
            "GET",
            "/api/bureau/statements/summary.csv?month=2026-06",
            Some(&m.reviewer),
            None,
        )
        .await;
    let rows = csv_records(&reply);
    assert_eq!(rows.len(), 4, "header, two platforms, totals: {rows:?}");
    assert_eq!(rows[0][6], "抵扣金额(补贴)");
    let discounts: Vec<&str> = rows[1..3].iter().map(|r| r[6].as_str()).collect();
    assert!(discounts.contains(&"50000.00") && discounts.contains(&"30000.00"));
    assert_eq!(rows[1][3], "草稿");
    assert_eq!(rows[3][0], "合计");
    assert_amount(&rows[3][6], "80000.00");
    assert_eq!(rows[3][4], "2", "two active lines");

    let reply = app
        .call(
            "GET",
            "/api/bureau/statements/summary.xlsx?month=2026-06",
            Some(&m.reviewer),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    keep_sample("summary.xlsx", &reply.body);
    let mut book: Xlsx<_> = open_workbook_from_rs(Cursor::new(reply.body.clone())).unwrap();
    assert_eq!(book.sheet_names(), ["汇总", "明细"]);
    let summary = book.worksheet_range("汇总").unwrap();
    let header = 4;
    assert_eq!(string_at(&summary, header, 0), "平台名称");
    assert_eq!(string_at(&summary, header + 3, 0), "合计");
    assert_eq!(number_at(&summary, header + 3, 6), 80_000.0);
    let lines = book.worksheet_range("明细").unwrap();
    assert_eq!(string_at(&lines, 3, 9), "抵扣金额(补贴)");
    let invoices: Vec<String> = (4..6).map(|r| string_at(&lines, r, 5)).collect();
    assert!(
        invoices.contains(&"000120260000".to_owned()),
        "{invoices:?}"
    );
    assert!(invoices.contains(&"+8613800000000".to_owned()));
    assert_sheet_set_up(&xml_of(&reply.body, "xl/worksheets/sheet1.xml"), header);
    assert_sheet_set_up(&xml_of(&reply.body, "xl/worksheets/sheet2.xml"), 3);

    let reply = app
        .call(
            "GET",
            "/api/bureau/statements/summary.xlsx?month=June",
            Some(&m.reviewer),
            None,
        )
        .await;
    reply.assert_problem(422, "validation_failed");
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn a_reviewer_finds_a_voucher_by_its_code_or_uscc_with_its_redemptions(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let m = june(&app).await;
    let finance = app.staff("finance", Role::Finance).await;
    let code = m.voucher2["code"].as_str().unwrap();
    for who in [&m.reviewer, &finance] {
        let reply = app
            .call(
                "GET",
                &format!("/api/bureau/vouchers?q={}", code.to_lowercase()),
                Some(who),
                None,
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        let found = reply.json();
        assert_eq!(found.as_array().unwrap().len(), 1);
        assert_eq!(found[0]["code"], code);
        assert_eq!(found[0]["firm_name"], "测试企业2");
        assert_eq!(found[0]["remaining"], "20000.00");
        assert!(
            found[0].get("token").is_none(),
            "the bureau never gets the token"
        );
    }
    let read_out = app
        .call(
            "GET",
            &format!("/api/bureau/vouchers?q={}", code.replace('-', "")),
            Some(&m.reviewer),
            None,
        )
        .await
        .json();
    assert_eq!(
        read_out[0]["code"], code,
        "a code read out without its dashes"
    );
    let by_uscc = app
        .call(
            "GET",
            &format!("/api/bureau/vouchers?q={}", m.firm1_uscc),
            Some(&m.reviewer),
            None,
        )
        .await
        .json();
    assert_eq!(by_uscc[0]["id"], m.voucher1["id"]);

    let detail = app
        .call(
            "GET",
            &format!(
                "/api/bureau/vouchers/{}",
                m.voucher2["id"].as_str().unwrap()
            ),
            Some(&m.reviewer),
            None,
        )
        .await;
    assert_eq!(detail.status, StatusCode::OK);
    let detail = detail.json();
    let redemptions = detail["redemptions"].as_array().unwrap();
    assert_eq!(redemptions.len(), 2);
    assert_eq!(redemptions[0]["id"], m.reversed_id.as_str(), "newest first");
    assert_eq!(redemptions[0]["status"], "reversed");
    assert_eq!(redemptions[0]["reversal_reason"], "发票作废");
    assert_eq!(redemptions[1]["invoice_no"], "+8613800000000");

    // Filters and paging.
    let all = app
        .call(
            "GET",
            "/api/bureau/vouchers?year=2026&limit=1",
            Some(&m.reviewer),
            None,
        )
        .await;
    assert_eq!(all.json().as_array().unwrap().len(), 1);
    let next = all.header("link").expect("a next page").to_owned();
    let url = next.trim_start_matches('<').split('>').next().unwrap();
    let second = app.call("GET", url, Some(&m.reviewer), None).await;
    assert_eq!(second.json().as_array().unwrap().len(), 1);
    assert!(second.header("link").is_none());
    assert_ne!(second.json()[0]["id"], all.json()[0]["id"]);
    let none = app
        .call(
            "GET",
            "/api/bureau/vouchers?status=cancelled",
            Some(&m.reviewer),
            None,
        )
        .await;
    assert_eq!(none.json(), json!([]));
    for bad in ["status=gone", "q=BA", "year=20x6", "limit=0"] {
        app.call(
            "GET",
            &format!("/api/bureau/vouchers?{bad}"),
            Some(&m.reviewer),
            None,
        )
        .await
        .assert_problem(422, "validation_failed");
    }
    app.call(
        "GET",
        "/api/bureau/vouchers/not-a-uuid",
        Some(&m.reviewer),
        None,
    )
    .await
    .assert_problem(404, "not_found");
    app.call("GET", "/api/bureau/vouchers", None, None)
        .await
        .assert_problem(401, "unauthorized");

    let csv = app
        .call(
            "GET",
            &format!("/api/bureau/vouchers.csv?q={code}"),
            Some(&m.reviewer),
            None,
        )
        .await;
    let rows = csv_records(&csv);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1][0].trim_start(), code);
    assert_amount(&rows[1][6], "50000.00");
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn redemptions_are_found_by_month_platform_firm_and_status(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let m = june(&app).await;
    let get = |query: String| {
        let token = m.reviewer.clone();
        let app = &app;
        async move {
            let reply = app
                .call(
                    "GET",
                    &format!("/api/bureau/redemptions?{query}"),
                    Some(&token),
                    None,
                )
                .await;
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
            reply.json().as_array().unwrap().clone()
        }
    };
    assert_eq!(get("month=2026-06".into()).await.len(), 3);
    assert_eq!(get("month=2026-05".into()).await.len(), 0);
    assert_eq!(get(format!("platform_id={}", m.platform2)).await.len(), 2);
    let firm2 = m.voucher2["firm_uscc"].as_str().unwrap();
    let firm2_id: uuid::Uuid = sqlx::query_scalar("select id from firms where uscc = $1")
        .bind(firm2)
        .fetch_one(&app.state.db)
        .await
        .unwrap();
    let reversed = get(format!("firm_id={firm2_id}&status=reversed")).await;
    assert_eq!(reversed.len(), 1);
    assert_eq!(reversed[0]["invoice_no"], "VOID-1");
    let active = get(format!("platform_id={}&status=active", m.platform1)).await;
    assert_eq!(active[0]["invoice_no"], "000120260000");
    assert_eq!(active[0]["firm_name"], INJECTED_NAME);
    for bad in ["month=2026-13", "status=void", "platform_id=x"] {
        app.call(
            "GET",
            &format!("/api/bureau/redemptions?{bad}"),
            Some(&m.reviewer),
            None,
        )
        .await
        .assert_problem(422, "validation_failed");
    }
    let page = app
        .call(
            "GET",
            "/api/bureau/redemptions?limit=2",
            Some(&m.reviewer),
            None,
        )
        .await;
    assert_eq!(page.json().as_array().unwrap().len(), 2);
    assert!(page.header("link").unwrap().contains("cursor="));

    let csv = app
        .call(
            "GET",
            "/api/bureau/redemptions.csv?month=2026-06&status=active",
            Some(&m.reviewer),
            None,
        )
        .await;
    let rows = csv_records(&csv);
    assert_eq!(rows.len(), 3);
    let ours = rows
        .iter()
        .find(|r| r[5] == "\t000120260000")
        .expect("invoice as text");
    assert_eq!(ours[2], format!("'{INJECTED_NAME}"));
    assert_amount(&ours[9], "50000.00");
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn a_firm_sees_its_vouchers_redemptions_and_the_reversal_and_nobody_elses(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let m = june(&app).await;
    let id = m.voucher2["id"].as_str().unwrap();
    let token = firm_token(&app, &m.voucher2).await;
    let reply = app
        .call(
            "GET",
            &format!("/api/portal/vouchers/{id}/redemptions"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let list = reply.json();
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(list[0]["status"], "reversed", "newest first");
    assert!(list[0]["reversed_at"].is_string());
    assert_eq!(list[1]["invoice_no"], "+8613800000000");
    assert_eq!(list[1]["bill_amount"], "100000.00");
    assert_eq!(list[1]["discount"], "30000.00");
    assert!(list[1]["platform_name"].is_string());
    assert!(list[1]["reversed_at"].is_null());
    let keys: Vec<&str> = list[1]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for k in [
        "id",
        "platform_name",
        "invoice_no",
        "bill_amount",
        "discount",
        "status",
        "created_at",
        "reversed_at",
    ] {
        assert!(keys.contains(&k), "{k}");
    }
    let paged = app
        .call(
            "GET",
            &format!("/api/portal/vouchers/{id}/redemptions?limit=1"),
            Some(&token),
            None,
        )
        .await;
    assert!(paged.header("link").is_some());

    let other = firm_token(&app, &m.voucher1).await;
    app.call(
        "GET",
        &format!("/api/portal/vouchers/{id}/redemptions"),
        Some(&other),
        None,
    )
    .await
    .assert_problem(404, "not_found");
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn next_years_program_is_set_in_december_and_the_quote_says_when_vouchers_expire(
    pool: PgPool,
) {
    let app = TestApp::new(pool).await;
    app.state.clock.set(datetime!(2026-12-15 10:00 +8));
    let admin = app.staff("admin", Role::Admin).await;
    let reviewer = app.staff("reviewer", Role::Reviewer).await;
    app.call("GET", "/api/bureau/programs/2027", Some(&admin), None)
        .await
        .assert_problem(404, "not_found");
    // A reviewer may not; the admin creates it with the rules module's defaults and changes it.
    app.call(
        "PATCH",
        "/api/bureau/programs/2027",
        Some(&reviewer),
        Some(json!({"firm_quota": 2500})),
    )
    .await
    .assert_problem(403, "forbidden");
    let reply = app
        .call(
            "PATCH",
            "/api/bureau/programs/2027",
            Some(&admin),
            Some(json!({"firm_quota": 2500})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let p = reply.json();
    assert_eq!(
        (p["year"].as_i64(), p["firm_quota"].as_i64()),
        (Some(2027), Some(2500))
    );
    assert_eq!(p["cap_per_firm"], "50000.00");
    assert_eq!(p["rate"], "0.30");
    assert_eq!(
        instant(&p["redeem_deadline"]),
        datetime!(2027-12-31 23:59:59 +8)
    );
    let again = app
        .call("GET", "/api/bureau/programs/2027", Some(&reviewer), None)
        .await
        .json();
    assert_eq!(again["firm_quota"], 2500);
    app.call(
        "PATCH",
        "/api/bureau/programs/2028",
        Some(&admin),
        Some(json!({"firm_quota": 10})),
    )
    .await
    .assert_problem(404, "not_found");

    // The portal reads the parameters in force, anonymously.
    let public = app.call("GET", "/api/portal/program", None, None).await;
    assert_eq!(public.status, StatusCode::OK, "{}", public.text());
    let public = public.json();
    assert_eq!(public["year"], 2026);
    assert_eq!(public["cap_per_firm"], "50000.00");
    assert_eq!(public["quota_remaining"], 2000);

    // A voucher claimed on Dec 15th expires on Dec 31st, and the quote says so.
    let platform = app.platform("平台", 1).await;
    let (_, token, _) = app.firm(1, true).await;
    let quote = app
        .call(
            "POST",
            "/api/portal/vouchers/quote",
            Some(&token),
            Some(json!({"platform_id": platform, "annual_fee": "10000.00"})),
        )
        .await;
    assert_eq!(quote.status, StatusCode::OK, "{}", quote.text());
    let quote = quote.json();
    assert_eq!(
        instant(&quote["expires_at"]),
        datetime!(2026-12-31 23:59:59 +8)
    );
    assert_eq!(
        instant(&quote["lapses_at"]),
        datetime!(2026-12-31 23:59:59 +8),
        "never after the deadline"
    );
    let voucher = app.claim(&token, platform, "10000.00").await.json();
    assert_eq!(
        instant(&voucher["expires_at"]),
        instant(&quote["expires_at"])
    );
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn the_years_awards_export_as_csv_with_a_total(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let reviewer = app.staff("reviewer", Role::Reviewer).await;
    let applicant = crate::support::test_uscc(7).to_string();
    let reply = app
        .call(
            "POST",
            "/api/rules/awards",
            Some(&reviewer),
            Some(
                json!({"measure": "application_benchmark", "date": "2025-06-01",
                        "applicant_uscc": applicant, "facts": {"selected": true}}),
            ),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    let reply = app
        .call(
            "GET",
            "/api/rules/awards.csv?year=2025",
            Some(&reviewer),
            None,
        )
        .await;
    let rows = csv_records(&reply);
    assert_eq!(rows.len(), 3, "header, the award, the total: {rows:?}");
    assert_eq!(rows[1][4], format!("\t{applicant}"));
    assert_amount(&rows[1][5], "1000000.00");
    assert_eq!(rows[2][0], "合计");
    assert_amount(&rows[2][5], "1000000.00");
    app.call("GET", "/api/rules/awards.csv", Some(&reviewer), None)
        .await
        .assert_problem(422, "validation_failed");
}
