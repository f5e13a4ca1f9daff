//! The finishing pass over the generated OpenAPI document, for what the per-handler annotations
//! would otherwise repeat on every operation (API.md's conventions hold for all of them):
//! errors as `application/problem+json` with the Problem schema; 401 on every authenticated
//! operation, 400 and 413 on every JSON body, 429 where limits apply, 503 everywhere (any
//! request can be shed); `Retry-After` on 429 and 503; one security scheme per credential kind;
//! binary bodies as `format: binary`; unique operationIds; `/openapi.json` itself.

use serde_json::{json, Map, Value};

const PROBLEM: &str = "#/components/schemas/Problem";

/// The scheme a path's credential belongs to: firms' sessions in the portal, staff sessions
/// in the console and the rules, API keys on `/v1`.
fn scheme_for(path: &str) -> Option<&'static str> {
    if path.starts_with("/api/portal/") {
        Some("firm_session")
    } else if path.starts_with("/api/bureau/") || path.starts_with("/api/rules/") {
        Some("staff_session")
    } else if path.starts_with("/v1/") {
        Some("platform_key")
    } else {
        None
    }
}

/// Anonymous endpoints limited per client address (API.md, Conventions).
fn is_anonymous_limited(path: &str) -> bool {
    matches!(
        path,
        "/api/portal/firms"
            | "/api/portal/sessions"
            | "/api/bureau/sessions"
            | "/api/portal/password-reset"
            | "/api/bureau/activation"
    )
}

fn problem(description: &str, retry_after: bool) -> Value {
    let mut response = json!({
        "description": description,
        "content": {"application/problem+json": {"schema": {"$ref": PROBLEM}}},
    });
    if retry_after {
        response["headers"] = json!({"Retry-After": {
            "description": "Seconds to wait before trying again",
            "schema": {"type": "integer", "minimum": 1},
        }});
    }
    response
}

fn ensure(responses: &mut Map<String, Value>, status: &str, description: &str) {
    let retry = status == "429" || status == "503";
    match responses.get_mut(status) {
        None => {
            responses.insert(status.to_owned(), problem(description, retry));
        }
        Some(existing) => {
            // Keep the operation's own description (it names the codes), fix the body's type.
            let description = existing["description"]
                .as_str()
                .unwrap_or(description)
                .to_owned();
            *existing = problem(&description, retry);
        }
    }
}

/// Applies the conventions to `doc` (the generated document as JSON).
pub fn finish(mut doc: Value) -> Value {
    let mut seen_ids = std::collections::HashSet::new();
    let paths = doc["paths"].as_object_mut().cloned().unwrap_or_default();
    let mut finished = Map::new();
    for (path, mut item) in paths {
        let Some(operations) = item.as_object_mut() else {
            continue;
        };
        for (method, operation) in operations.iter_mut() {
            if !matches!(method.as_str(), "get" | "post" | "put" | "patch" | "delete") {
                continue;
            }
            let authenticated = operation.get("security").is_some();
            let scheme = scheme_for(&path).filter(|_| authenticated);
            if let Some(scheme) = scheme {
                operation["security"] = json!([{ scheme: [] }]);
            }
            if path == voucher_core::json::EVIDENCE_PATH && method == "post" {
                // The body is the file itself (API.md), up to 5 MiB.
                let binary = json!({"schema": {"type": "string", "format": "binary"}});
                operation["requestBody"] = json!({
                    "description": "The file itself: JPEG, PNG or PDF, at most 5 MiB; `Content-Type` must match its bytes",
                    "required": true,
                    "content": {"image/jpeg": binary, "image/png": binary, "application/pdf": binary},
                });
            }
            let json_body = operation["requestBody"]["content"]
                .get("application/json")
                .is_some();
            let responses = operation["responses"]
                .as_object_mut()
                .expect("every operation has responses");
            // Every error status the operation documents is a problem.
            let errors: Vec<String> = responses
                .keys()
                .filter(|s| s.starts_with('4') || s.starts_with('5'))
                .cloned()
                .collect();
            for status in errors {
                ensure(responses, &status, "An error");
            }
            if scheme.is_some() {
                ensure(responses, "401", "`unauthorized`: no or bad credential");
            }
            if json_body {
                ensure(
                    responses,
                    "400",
                    "`malformed_request`: not the JSON expected",
                );
                ensure(responses, "413", "`payload_too_large`: body over 64 KiB");
                ensure(
                    responses,
                    "422",
                    "`validation_failed`: a field is missing or invalid",
                );
            }
            if scheme == Some("platform_key") || is_anonymous_limited(&path) {
                ensure(responses, "429", "`rate_limited`: slow down");
            }
            ensure(
                responses,
                "503",
                "`overloaded`: the server is shedding load; retry after Retry-After",
            );
            let paged = operation["parameters"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|p| p["name"] == "cursor"));
            if paged {
                if let Some(ok) = operation["responses"].get_mut("200") {
                    ok["headers"] = json!({"Link": {
                        "description": "`<URL>; rel=\"next\"` when more rows follow (RFC 8288)",
                        "schema": {"type": "string"},
                    }});
                }
            }
            let responses = operation["responses"]
                .as_object_mut()
                .expect("every operation has responses");
            if path == "/v1/redemptions" && method == "post" {
                for status in ["200", "201"] {
                    if let Some(ok) = responses.get_mut(status) {
                        ok["headers"] = json!({"Idempotent-Replayed": {
                            "description": "`true` when this is the stored answer to an earlier request with the same Idempotency-Key",
                            "schema": {"type": "string", "enum": ["true"]},
                        }});
                    }
                }
            }
            // Binary bodies are strings of bytes, not arrays of integers.
            for (_, response) in responses.iter_mut() {
                if let Some(content) = response["content"].as_object_mut() {
                    for (media, body) in content.iter_mut() {
                        if media.starts_with("image/png")
                            || media.starts_with("image/jpeg")
                            || media.starts_with("application/pdf")
                            || media.starts_with("application/vnd.openxmlformats")
                        {
                            body["schema"] = json!({"type": "string", "format": "binary"});
                        }
                    }
                }
            }
            // Handler names repeat across parts (`list`, `get`, `create`): the id is the
            // method and the path, which are unique together.
            let id = format!(
                "{method}{}",
                path.split(['/', '{', '}', '.', '-'])
                    .filter(|p| !p.is_empty())
                    .map(|p| {
                        let mut c = p.chars();
                        c.next()
                            .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                            .unwrap_or_default()
                    })
                    .collect::<String>()
            );
            assert!(seen_ids.insert(id.clone()), "operationId {id} twice");
            operation["operationId"] = json!(id);
        }
        finished.insert(path, item);
    }
    finished.insert(
        "/openapi.json".to_owned(),
        json!({"get": {
            "tags": ["public"], "operationId": "getOpenapiJson",
            "summary": "This document (OpenAPI 3.1)",
            "responses": {"200": {"description": "The document",
                "content": {"application/json": {"schema": {"type": "object"}}}}},
        }}),
    );
    doc["paths"] = Value::Object(finished);
    let schemes = json!({
        "firm_session": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
            "description": "A firm's session token from POST /api/portal/sessions"},
        "staff_session": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
            "description": "A bureau staff session token from POST /api/bureau/sessions"},
        "platform_key": {"type": "http", "scheme": "bearer",
            "description": "A platform API key (vk_live_...) issued by the bureau"},
    });
    doc["components"]["securitySchemes"] = schemes;
    doc
}
