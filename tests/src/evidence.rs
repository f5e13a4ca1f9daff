//! Evidence files (API.md, portal `evidence`): what is refused (type from the bytes, size, count),
//! who sees a file and how it is served, and the upload in the OpenAPI document.

use axum::http::StatusCode;
use serde_json::json;
use sqlx::PgPool;

use crate::support::{TestApp, PDF, PNG};

const ELF: &[u8] = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0\x3e\0";

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn files_whose_bytes_lie_or_are_too_large_are_refused(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let (_, token, _) = app.pending_firm(4, true).await;
    let cases: [(&str, &[u8], &str, &str); 4] = [
        (
            "application/pdf",
            PNG,
            "content_type",
            "a PNG declared as PDF",
        ),
        ("image/png", ELF, "file", "an executable declared as PNG"),
        (
            "application/x-executable",
            ELF,
            "content_type",
            "an executable as itself",
        ),
        ("image/jpeg", b"", "file", "nothing"),
    ];
    for (content_type, bytes, field, why) in cases {
        let reply = app
            .upload(&token, "business_license", content_type, bytes.to_vec())
            .await;
        reply.assert_problem(422, "validation_failed");
        assert_eq!(reply.json()["field"], field, "{why}");
    }
    let mut big = vec![0u8; 5 * 1024 * 1024 + 1];
    big[..3].copy_from_slice(&[0xFF, 0xD8, 0xFF]);
    app.upload(&token, "business_license", "image/jpeg", big.clone())
        .await
        .assert_problem(413, "payload_too_large");
    // The same with a declared length is refused before it is read.
    let mut r = crate::support::raw(
        "POST",
        "/api/portal/evidence?kind=business_license",
        "image/jpeg",
        big.clone(),
    );
    r.headers_mut()
        .insert("content-length", big.len().to_string().parse().unwrap());
    r.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    app.send(r).await.assert_problem(413, "payload_too_large");
    // Exactly 5 MiB is a file.
    big.pop();
    let reply = app
        .upload(&token, "business_license", "image/jpeg", big)
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    assert_eq!(reply.json()["size"], 5 * 1024 * 1024);
    // An unknown kind is named.
    let reply = app
        .upload(&token, "passport", "image/png", PNG.to_vec())
        .await;
    reply.assert_problem(422, "validation_failed");
    assert_eq!(reply.json()["field"], "kind");
    // Every other endpoint keeps the 64 KiB limit.
    let reply = app
        .call(
            "POST",
            "/api/portal/vouchers/quote",
            Some(&token),
            Some(json!({"pad": "x".repeat(70 * 1024)})),
        )
        .await;
    reply.assert_problem(413, "payload_too_large");
    // Ten files at most (nine more make ten).
    for _ in 0..9 {
        let reply = app
            .upload(
                &token,
                "authorization_letter",
                "application/pdf",
                PDF.to_vec(),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    }
    app.upload(
        &token,
        "authorization_letter",
        "application/pdf",
        PDF.to_vec(),
    )
    .await
    .assert_problem(409, "invalid_transition");
    let stored: i64 = sqlx::query_scalar("select count(*) from firm_evidence")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(stored, 10);
    // The firm's list pages with a Link header.
    let reply = app
        .call("GET", "/api/portal/evidence?limit=4", Some(&token), None)
        .await;
    assert_eq!(reply.json().as_array().unwrap().len(), 4);
    let next = reply.header("link").expect("a next page");
    assert!(next.contains("rel=\"next\""), "{next}");
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn files_are_private_to_their_firm_and_downloaded_as_attachments(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let (a, a_token, _) = app.pending_firm(7, true).await;
    let (b, b_token, _) = app.pending_firm(8, true).await;
    let reply = app
        .upload(&a_token, "business_license", "image/png", PNG.to_vec())
        .await;
    let file = reply.json()["id"].as_str().unwrap().to_owned();
    let own = app
        .call(
            "GET",
            &format!("/api/portal/evidence/{file}"),
            Some(&a_token),
            None,
        )
        .await;
    assert_eq!(own.status, StatusCode::OK);
    assert_eq!(own.body, PNG);
    app.call(
        "GET",
        &format!("/api/portal/evidence/{file}"),
        Some(&b_token),
        None,
    )
    .await
    .assert_problem(404, "not_found");
    let listed = app
        .call("GET", "/api/portal/evidence", Some(&b_token), None)
        .await;
    assert_eq!(listed.json(), json!([]));

    let reviewer = app.reviewer().await;
    let reply = app
        .call(
            "GET",
            &format!("/api/bureau/firms/{a}/evidence/{file}"),
            Some(&reviewer),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, PNG);
    assert_eq!(reply.header("content-type"), Some("image/png"));
    assert!(reply
        .header("content-disposition")
        .unwrap()
        .starts_with("attachment"));
    assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(
        reply.header("content-security-policy"),
        Some("sandbox; default-src 'none'")
    );
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    // The file under another firm's path is not there.
    app.call(
        "GET",
        &format!("/api/bureau/firms/{b}/evidence/{file}"),
        Some(&reviewer),
        None,
    )
    .await
    .assert_problem(404, "not_found");
    // A firm's session is no staff session.
    app.call(
        "GET",
        &format!("/api/bureau/firms/{a}/evidence/{file}"),
        Some(&b_token),
        None,
    )
    .await
    .assert_problem(401, "unauthorized");
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn the_openapi_document_has_the_verification_endpoints(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let spec = app.call("GET", "/openapi.json", None, None).await.json();
    let upload = &spec["paths"]["/api/portal/evidence"]["post"];
    for media in ["image/jpeg", "image/png", "application/pdf"] {
        assert_eq!(
            upload["requestBody"]["content"][media]["schema"]["format"], "binary",
            "{media}"
        );
    }
    assert!(upload["responses"]["413"]["content"]["application/problem+json"].is_object());
    for (path, method) in [
        ("/api/portal/evidence", "get"),
        ("/api/portal/evidence/{id}", "get"),
        ("/api/bureau/firms", "get"),
        ("/api/bureau/firms/{id}", "get"),
        ("/api/bureau/firms/{id}", "delete"),
        ("/api/bureau/firms/{id}/verification", "post"),
        ("/api/bureau/firms/{id}/evidence/{evidence_id}", "get"),
        ("/api/bureau/firms/{id}/password-reset", "post"),
    ] {
        assert!(spec["paths"][path][method].is_object(), "{method} {path}");
    }
    let download = &spec["paths"]["/api/bureau/firms/{id}/evidence/{evidence_id}"]["get"];
    assert_eq!(
        download["responses"]["200"]["content"]["application/pdf"]["schema"]["format"],
        "binary"
    );
}
