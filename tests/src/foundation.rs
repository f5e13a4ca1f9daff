//! The edge: problem+json for malformed, oversized and unknown requests; the public endpoints.

use axum::routing::post;
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};
use sqlx::PgPool;
use voucher_core::{Json, Money, Uscc};

use crate::support::{self, get, raw, send};

#[derive(Deserialize)]
#[expect(dead_code, reason = "fields exist to be deserialised and validated")]
struct Sample {
    uscc: Uscc,
    amount: Money,
    note: Option<String>,
}

/// The real edge (fallback, limits, headers, metrics) around one JSON route using the shared
/// extractor, so every way a body can be wrong is checked without depending on a part.
fn edge_with_sample_route(pool: PgPool) -> Router {
    let state = support::state_with_redis(pool, &support::redis_url());
    let routes = voucher_core::http::public_router()
        .with_state(state.clone())
        .route(
            "/sample",
            post(|Json(_): Json<Sample>| async { Json(json!({"ok": true})) }),
        );
    voucherd::with_edge(routes, state)
}

fn assert_problem(reply: &support::Reply, status: u16, code: &str) -> Value {
    assert_eq!(
        reply.status.as_u16(),
        status,
        "body: {}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(
        reply.header("content-type"),
        Some("application/problem+json")
    );
    let body = reply.json();
    assert_eq!(body["status"], status);
    assert_eq!(body["code"], code);
    assert_eq!(body["type"], format!("urn:voucher:error:{code}"));
    assert!(body["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(body["detail"].as_str().is_some_and(|t| !t.is_empty()));
    body
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn a_valid_body_passes_the_extractor(pool: PgPool) {
    let app = edge_with_sample_route(pool);
    let body = json!({"uscc": "914403001922038216", "amount": "15000.00"}).to_string();
    let reply = send(&app, raw("POST", "/sample", "application/json", body)).await;
    assert_eq!(reply.status.as_u16(), 200);
    assert_eq!(reply.json(), json!({"ok": true}));
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn malformed_json_is_a_400_problem(pool: PgPool) {
    let app = edge_with_sample_route(pool);
    for (body, content_type) in [
        (r#"{"uscc": "#, "application/json"),
        ("not json", "application/json"),
        (
            r#"{"uscc": "914403001922038216", "amount": "1.00"} x"#,
            "application/json",
        ),
        ("[1, 2]", "application/json"),
        (
            r#"{"uscc": "914403001922038216", "amount": "1.00"}"#,
            "text/plain",
        ),
    ] {
        let reply = send(&app, raw("POST", "/sample", content_type, body)).await;
        assert_problem(&reply, 400, "malformed_request");
    }
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn a_wrong_or_missing_field_is_a_422_naming_the_field(pool: PgPool) {
    let app = edge_with_sample_route(pool);
    let cases = [
        (
            json!({"uscc": "914403001922038216", "amount": 15000}),
            "amount",
        ),
        (
            json!({"uscc": "914403001922038216", "amount": "1.001"}),
            "amount",
        ),
        (
            json!({"uscc": "914403001922038216", "amount": "-1.00"}),
            "amount",
        ),
        (
            json!({"uscc": "914403001922038217", "amount": "1.00"}),
            "uscc",
        ),
        (json!({"amount": "1.00"}), "uscc"),
        (json!({"uscc": "914403001922038216"}), "amount"),
    ];
    for (body, field) in cases {
        let reply = send(
            &app,
            raw("POST", "/sample", "application/json", body.to_string()),
        )
        .await;
        let problem = assert_problem(&reply, 422, "validation_failed");
        assert_eq!(problem["field"], field, "{body}");
    }
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn a_body_over_64_kib_is_a_413_problem(pool: PgPool) {
    let app = edge_with_sample_route(pool);
    let note = "x".repeat(64 * 1024);
    let body = json!({"uscc": "914403001922038216", "amount": "1.00", "note": note}).to_string();
    // Declared by Content-Length ...
    let reply = send(
        &app,
        raw("POST", "/sample", "application/json", body.clone()),
    )
    .await;
    assert_problem(&reply, 413, "payload_too_large");
    // ... and streamed without one.
    let stream = streamed(body);
    let reply = send(&app, raw("POST", "/sample", "application/json", stream)).await;
    assert_problem(&reply, 413, "payload_too_large");
}

fn streamed(text: String) -> axum::body::Body {
    let chunks: Vec<Result<axum::body::Bytes, std::io::Error>> = text
        .into_bytes()
        .chunks(8192)
        .map(|c| Ok(axum::body::Bytes::copy_from_slice(c)))
        .collect();
    axum::body::Body::from_stream(futures_util::stream::iter(chunks))
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn an_unknown_path_or_method_is_a_404_problem(pool: PgPool) {
    let app = support::app(pool);
    let reply = send(&app, get("/no/such/thing")).await;
    assert_problem(&reply, 404, "not_found");
    let reply = send(&app, raw("POST", "/healthz", "application/json", "{}")).await;
    assert_problem(&reply, 404, "not_found");
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn public_endpoints_answer(pool: PgPool) {
    let app = support::app(pool);
    let reply = send(&app, get("/healthz")).await;
    assert_eq!(reply.status.as_u16(), 200);
    let reply = send(&app, get("/readyz")).await;
    assert_eq!(reply.status.as_u16(), 200);
    assert_eq!(reply.json()["postgres"], "up");
    let reply = send(&app, get("/metrics")).await;
    assert_eq!(reply.status.as_u16(), 200);
    let text = String::from_utf8(reply.body).unwrap();
    assert!(
        text.contains(r#"http_requests_total{method="GET",route="/readyz",status="200"} 1"#),
        "{text}"
    );
    assert!(
        text.contains("http_request_duration_seconds_bucket"),
        "{text}"
    );
    let reply = send(&app, get("/openapi.json")).await;
    assert_eq!(reply.status.as_u16(), 200);
    let spec = reply.json();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3.1"));
    assert!(spec["paths"]["/readyz"].is_object());
    // Every endpoint of API.md built so far, with its methods.
    let expected = [
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
        ("/.well-known/jwks.json", "get"),
        ("/api/portal/firms", "post"),
        ("/api/portal/sessions", "post"),
        ("/api/portal/me", "get"),
        ("/api/portal/platforms", "get"),
        ("/api/portal/vouchers/quote", "post"),
        ("/api/portal/vouchers", "post"),
        ("/api/portal/vouchers", "get"),
        ("/api/portal/vouchers/{id}", "get"),
        ("/api/portal/vouchers/{id}/qr.svg", "get"),
        ("/api/portal/vouchers/{id}/qr.png", "get"),
        ("/api/portal/vouchers/{id}/cancel", "post"),
        ("/api/portal/sessions/current", "delete"),
        ("/api/portal/password", "post"),
        ("/api/portal/password-reset", "post"),
        ("/api/bureau/sessions", "post"),
        ("/api/bureau/sessions/current", "delete"),
        ("/api/bureau/password", "post"),
        ("/api/bureau/totp", "post"),
        ("/api/bureau/staff", "post"),
        ("/api/bureau/staff", "get"),
        ("/api/bureau/staff/{id}", "patch"),
        ("/api/bureau/staff/{id}/reset", "post"),
        ("/api/bureau/activation", "post"),
        ("/api/bureau/firms/{id}/password-reset", "post"),
        ("/api/bureau/programs/{year}", "get"),
        ("/api/bureau/programs/{year}", "patch"),
        ("/api/bureau/audit", "get"),
        ("/api/bureau/audit/verify", "get"),
        ("/api/bureau/platforms", "post"),
        ("/api/bureau/platforms", "get"),
        ("/api/bureau/platforms/{id}/api-keys", "post"),
        ("/api/bureau/api-keys/{key_id}", "delete"),
        ("/v1/vouchers/verify", "post"),
        ("/v1/redemptions", "post"),
        ("/v1/redemptions", "get"),
        ("/v1/redemptions/{id}/reversal", "post"),
        ("/api/bureau/settlement-runs", "post"),
        ("/api/bureau/settlement-runs", "get"),
        ("/api/bureau/settlement-runs/{business_date}", "get"),
        ("/api/bureau/statements", "post"),
        ("/api/bureau/statements", "get"),
        ("/api/bureau/statements/{id}/approve", "post"),
        ("/api/bureau/statements/{id}/payment", "post"),
        ("/api/bureau/statements/{id}/lines.csv", "get"),
        ("/api/bureau/statements/{id}/lines.xlsx", "get"),
        ("/api/bureau/statements/summary.csv", "get"),
        ("/api/bureau/statements/summary.xlsx", "get"),
        ("/api/bureau/vouchers", "get"),
        ("/api/bureau/vouchers.csv", "get"),
        ("/api/bureau/vouchers/{id}", "get"),
        ("/api/bureau/redemptions", "get"),
        ("/api/bureau/redemptions.csv", "get"),
        ("/api/portal/vouchers/{id}/redemptions", "get"),
        ("/api/portal/program", "get"),
        ("/api/bureau/stats", "get"),
        ("/v1/statements", "get"),
        ("/v1/statements/{id}/reconciliation", "post"),
        ("/api/rules/measures", "get"),
        ("/api/rules/evaluate", "post"),
        ("/api/rules/awards", "post"),
        ("/api/rules/awards", "get"),
        ("/api/rules/awards.csv", "get"),
    ];
    for (path, method) in expected {
        assert!(
            spec["paths"][path][method].is_object(),
            "{method} {path} missing from /openapi.json"
        );
    }
    for scheme in ["firm_session", "staff_session", "platform_key"] {
        assert_eq!(
            spec["components"]["securitySchemes"][scheme]["scheme"],
            "bearer"
        );
    }
    // Every error an operation documents is a problem; ids are unique (finish() asserts it).
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            for (status, response) in operation["responses"].as_object().unwrap() {
                if status.starts_with('4') || status.starts_with('5') {
                    assert!(
                        response["content"]["application/problem+json"].is_object(),
                        "{method} {path} {status}"
                    );
                }
            }
            if operation.get("security").is_some() {
                assert!(operation["responses"]["401"].is_object(), "{method} {path}");
            }
        }
    }
    // Every path parameter is in its path's template; everything else is a query parameter.
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            for param in operation["parameters"].as_array().into_iter().flatten() {
                let name = param["name"].as_str().unwrap();
                if param["in"] == "path" {
                    assert!(
                        path.contains(&format!("{{{name}}}")),
                        "{method} {path}: {name} is declared in the path but is not in it"
                    );
                }
            }
        }
    }
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn readyz_reports_redis_down_without_failing(pool: PgPool) {
    let app = voucherd::app(support::state_with_redis(pool, "redis://127.0.0.1:1"));
    let reply = send(&app, get("/readyz")).await;
    assert_eq!(reply.status.as_u16(), 200);
    assert_eq!(
        reply.json(),
        json!({"status": "ready", "postgres": "up", "redis": "down"})
    );
}
