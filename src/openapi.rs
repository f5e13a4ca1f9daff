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

/// Staff operations that change something and that every role may call (its own session,
/// password and authenticator, and the rules calculator); every other one needs a role and can
/// answer 403 `forbidden`.
fn any_role_may_call(path: &str) -> bool {
    matches!(
        path,
        "/api/bureau/sessions"
            | "/api/bureau/sessions/current"
            | "/api/bureau/password"
            | "/api/bureau/activation"
            | "/api/bureau/totp"
            | "/api/rules/evaluate"
    )
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

/// Declares `limit` and `cursor` on a list operation (unless it names them itself) and the
/// `Link` header its answer carries while more rows follow.
fn add_paging(operation: &mut Value) {
    if !operation["parameters"].is_array() {
        operation["parameters"] = json!([]);
    }
    let parameters = operation["parameters"]
        .as_array_mut()
        .expect("parameters is an array");
    parameters.retain(|p| p["name"] != "limit" && p["name"] != "cursor");
    parameters.push(json!({"name": "limit", "in": "query", "required": false,
        "description": "Rows per page, 1 to 1000 (default 1000)",
        "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}));
    parameters.push(json!({"name": "cursor", "in": "query", "required": false,
        "description": "From the previous page's `Link: rel=\"next\"`; opaque",
        "schema": {"type": "string", "minLength": 1, "maxLength": 200}}));
    if let Some(ok) = operation["responses"].get_mut("200") {
        ok["headers"] = json!({"Link": {
            "description": "`<URL>; rel=\"next\"` when more rows follow (RFC 8288); absent on the last page",
            "schema": {"type": "string"},
        }});
    }
}

const USCC: &str = "^[0-9A-HJ-NPQRTUWXY]{18}$";
const MONTH: &str = "^[0-9]{4}-(0[1-9]|1[0-2])$";
const DATE: &str = "^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$";

/// String properties' constraints by property name, wherever the name appears (the rules
/// behind them: API.md's Conventions and the handlers' own checks).
const BY_NAME: &[(&str, &str)] = &[
    ("uscc", USCC),
    ("firm_uscc", USCC),
    ("platform_uscc", USCC),
    ("applicant_uscc", USCC),
    ("month", MONTH),
    ("billing_period", MONTH),
    ("business_date", DATE),
    ("invoice_no", r#"{"minLength": 1, "maxLength": 64}"#),
    ("contract_no", r#"{"minLength": 1, "maxLength": 64}"#),
    ("username", "^[a-z0-9._-]{3,64}$"),
    ("new_password", r#"{"minLength": 10, "maxLength": 128}"#),
    ("current_password", r#"{"minLength": 1, "maxLength": 128}"#),
    ("otp", "^[0-9]{6}$"),
    ("measure", "^[a-z0-9_]{1,64}$"),
];

/// Constraints that hold for one schema's property only: `(schema, property, constraint)`.
/// A constraint is a JSON object merged into the property, or else a pattern.
const BY_SCHEMA: &[(&str, &str, &str)] = &[
    (
        "Registration",
        "password",
        r#"{"minLength": 10, "maxLength": 128}"#,
    ),
    (
        "Activate",
        "password",
        r#"{"minLength": 10, "maxLength": 128}"#,
    ),
    (
        "Registration",
        "name",
        r#"{"minLength": 1, "maxLength": 200}"#,
    ),
    ("Registration", "industry_code", "^[A-T][0-9]{2,4}$"),
    (
        "Registration",
        "district",
        r#"{"minLength": 1, "maxLength": 50}"#,
    ),
    (
        "Registration",
        "contact_name",
        r#"{"minLength": 1, "maxLength": 100}"#,
    ),
    ("Registration", "contact_phone", "^[0-9+ -]{5,20}$"),
    (
        "NewPlatform",
        "name",
        r#"{"minLength": 1, "maxLength": 200}"#,
    ),
    (
        "ReversalRequest",
        "reason",
        r#"{"minLength": 1, "maxLength": 500}"#,
    ),
    (
        "Payment",
        "reference",
        r#"{"minLength": 1, "maxLength": 100}"#,
    ),
    ("EvaluateRequest", "date", DATE),
    ("AwardRequest", "date", DATE),
    ("Award", "date", DATE),
    ("RunSummary", "business_date", DATE),
    (
        "Voucher",
        "status",
        r#"{"enum": ["active", "exhausted", "cancelled", "lapsed", "expired"]}"#,
    ),
    ("PlatformVoucher", "status", r#"{"enum": ["active"]}"#),
    (
        "Redemption",
        "status",
        r#"{"enum": ["active", "reversed"]}"#,
    ),
    (
        "Statement",
        "status",
        r#"{"enum": ["draft", "approved", "paid"]}"#,
    ),
    ("Readiness", "status", r#"{"enum": ["ready", "not_ready"]}"#),
    ("Readiness", "postgres", r#"{"enum": ["up", "down"]}"#),
    ("Readiness", "redis", r#"{"enum": ["up", "down"]}"#),
    ("Health", "status", r#"{"enum": ["ok"]}"#),
    ("Finding", "problem", r#"{"enum": ["edited", "removed"]}"#),
    ("Jwk", "kty", r#"{"enum": ["OKP"]}"#),
    ("Jwk", "crv", r#"{"enum": ["Ed25519"]}"#),
    ("Jwk", "use", r#"{"enum": ["sig"]}"#),
    ("Jwk", "alg", r#"{"enum": ["EdDSA"]}"#),
];

/// Query, path and header parameters the handlers require or constrain:
/// `(path, parameter, required, constraint)`.
const PARAMETERS: &[(&str, &str, bool, &str)] = &[
    ("/v1/redemptions", "month", true, MONTH),
    ("/v1/redemptions", "Idempotency-Key", true, "^[ -~]{1,64}$"),
    ("/v1/statements", "month", true, MONTH),
    ("/api/bureau/statements", "month", true, MONTH),
    (
        "/api/bureau/settlement-runs/{business_date}",
        "business_date",
        true,
        DATE,
    ),
    ("/api/rules/measures", "date", true, DATE),
    ("/api/rules/awards", "year", true, "^[0-9]{4}$"),
    ("/api/rules/awards", "measure", false, "^[a-z0-9_]{1,64}$"),
];

/// `constraint` as JSON to merge: an object as it is, anything else as a pattern.
fn constraint(text: &str) -> Map<String, Value> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => map,
        _ => {
            let mut map = Map::new();
            map.insert("pattern".to_owned(), json!(text));
            map
        }
    }
}

/// Whether a property's schema is a string (or a nullable string).
fn is_string(schema: &Value) -> bool {
    schema["type"] == "string"
        || schema["type"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t == "string"))
}

/// Merges the constraint tables into the schemas and parameters. Panics on an entry that names
/// nothing, so the tables cannot drift from the code unnoticed (the document is built in tests).
fn constrain(doc: &mut Value) {
    let schemas = doc["components"]["schemas"]
        .as_object_mut()
        .expect("the document has schemas");
    for (name, schema) in schemas.iter_mut() {
        let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) else {
            continue;
        };
        for (property, value) in properties.iter_mut() {
            if !is_string(value) {
                continue;
            }
            let rules = BY_NAME
                .iter()
                .filter(|(p, _)| p == property)
                .map(|(_, c)| *c)
                .chain(
                    BY_SCHEMA
                        .iter()
                        .filter(|(s, p, _)| s == name && p == property)
                        .map(|(_, _, c)| *c),
                );
            for rule in rules {
                for (k, v) in constraint(rule) {
                    value[k] = v;
                }
            }
        }
    }
    for (schema, property, _) in BY_SCHEMA {
        assert!(
            is_string(&doc["components"]["schemas"][schema]["properties"][property]),
            "constraint table: {schema}.{property} is not a string property"
        );
    }
    for (path, name, required, rule) in PARAMETERS {
        let mut found = false;
        if let Some(item) = doc["paths"].get_mut(path).and_then(Value::as_object_mut) {
            for (_, operation) in item.iter_mut() {
                for p in operation
                    .get_mut("parameters")
                    .and_then(Value::as_array_mut)
                    .into_iter()
                    .flatten()
                {
                    if p["name"] == *name {
                        found = true;
                        p["required"] = json!(required);
                        for (k, v) in constraint(rule) {
                            p["schema"][k] = v;
                        }
                    }
                }
            }
        }
        assert!(found, "constraint table: no parameter {name} on {path}");
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
            if scheme == Some("staff_session") && method != "get" && !any_role_may_call(&path) {
                ensure(
                    responses,
                    "403",
                    "`forbidden`: the caller's role may not do this",
                );
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
            // Every list is paged (API.md, Conventions): a GET whose answer is an array takes
            // `limit` and `cursor` and may answer `Link`.
            let list = method == "get"
                && operation["responses"]["200"]["content"]["application/json"]["schema"]["type"]
                    == "array";
            if list {
                add_paging(operation);
            }
            let parameters = operation["parameters"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let responses = operation["responses"]
                .as_object_mut()
                .expect("every operation has responses");
            if parameters.iter().any(|p| p["in"] == "path") {
                ensure(
                    responses,
                    "404",
                    "`not_found`: no such resource visible to the caller",
                );
            }
            if parameters
                .iter()
                .any(|p| p["in"] == "query" || p["in"] == "header")
            {
                ensure(
                    responses,
                    "422",
                    "`validation_failed`: a parameter is missing or invalid",
                );
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
                if let Some(content) = response.get_mut("content").and_then(Value::as_object_mut) {
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
    constrain(&mut doc);
    doc
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    /// Every `$ref` in `value`.
    fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("$ref", Value::String(r)) => out.push(r),
                        _ => refs(v, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn every_reference_in_the_document_resolves() {
        let doc = crate::openapi_json();
        let mut found = Vec::new();
        refs(&doc, &mut found);
        assert!(!found.is_empty());
        for r in found {
            let name = r
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("unexpected reference {r}"));
            assert!(
                doc["components"]["schemas"].get(name).is_some(),
                "{r} is not in the document"
            );
        }
    }
}
