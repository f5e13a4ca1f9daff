//! HTTP plumbing shared by every part: the public endpoints, the request middleware and the
//! fallback, so every response (even a 404 on an unknown path) has the same shape.

use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Serialize;

use crate::error::{ApiError, ErrorCode};
use crate::json::{body_limit, too_large_for, Json};
use crate::state::AppState;

/// `/healthz`, `/readyz`, `/metrics`.
pub fn public_router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

/// The OpenAPI paths of [`public_router`].
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(healthz, readyz, metrics),
    components(schemas(crate::error::Problem, crate::error::ErrorCode))
)]
pub struct PublicApi;

/// Liveness.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: &'static str,
}

/// Readiness and what each dependency says.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// `ready` when Postgres answers, else `not_ready`.
    pub status: &'static str,
    /// `up` or `down`.
    pub postgres: &'static str,
    /// `up` or `down`; Redis down does not make the server unready.
    pub redis: &'static str,
}

/// 200 while the process is up.
#[utoipa::path(get, path = "/healthz", tag = "public", responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// 200 when Postgres answers; Redis is reported, not required.
#[utoipa::path(get, path = "/readyz", tag = "public", responses(
    (status = 200, body = Readiness, description = "Postgres answers"),
    (status = 503, body = Readiness, description = "Postgres does not answer"),
))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    let (pg, redis) = tokio::join!(crate::db::ping(&state.db), state.redis.ping());
    let body = Readiness {
        status: if pg { "ready" } else { "not_ready" },
        postgres: if pg { "up" } else { "down" },
        redis: if redis { "up" } else { "down" },
    };
    let status = if pg {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "public", responses(
    (status = 200, content_type = "text/plain; version=0.0.4", body = String),
))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        state.metrics.render(),
    )
        .into_response()
}

/// Counts and times every request by route template (never the raw path, which would grow
/// one series per voucher id).
pub async fn track_metrics(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(req.method());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    let labels = [method, route.as_str(), status.as_str()];
    state.metrics.http_requests.with_label_values(&labels).inc();
    state
        .metrics
        .http_latency
        .with_label_values(&labels)
        .observe(started.elapsed().as_secs_f64());
    response
}

/// The method as a metric label: the standard ones by name, anything else folded into `other`,
/// so made-up methods cannot grow a series each.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// How long one request may take, body included, before it is answered 503.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The same for the bureau's long operations (a settlement run over a day of a million
/// redemptions, closing a month).
pub const LONG_REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

/// Answers 503 `overloaded` with `Retry-After` when a request has not finished in time, so no
/// request holds its connection and memory without bound. (Work that must not be cut short,
/// such as a settlement run, runs in a task of its own that the deadline does not cancel.)
pub async fn request_deadline(req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let limit = if path.starts_with("/api/bureau/settlement-runs")
        || path.starts_with("/api/bureau/statements")
    {
        LONG_REQUEST_TIMEOUT
    } else if path == crate::json::EVIDENCE_PATH {
        // The body alone may take EVIDENCE_READ_TIMEOUT to arrive from a phone.
        crate::json::EVIDENCE_READ_TIMEOUT + REQUEST_TIMEOUT
    } else {
        REQUEST_TIMEOUT
    };
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::overloaded(
            1,
            format!("the request did not finish within {} s", limit.as_secs()),
        )
        .into_response(),
    }
}

/// Refuses a declared body over 64 KiB (5 MiB for an evidence file) before anything reads it
/// (the extractors also stop an undeclared one at the limit).
pub async fn limit_declared_body(req: Request, next: Next) -> Response {
    let max = body_limit(req.uri().path());
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > max as u64) {
        return too_large_for(max).into_response();
    }
    next.run(req).await
}

/// `Cache-Control: no-store` on every answer of the API (`/api/`, `/v1/`): session tokens, API
/// keys, codes, voucher tokens and their QR images must never sit in a cache (API.md), and the
/// other answers are live balances and states that a cache would only make stale.
pub async fn no_store(req: Request, next: Next) -> Response {
    let api = req.uri().path().starts_with("/api/") || req.uri().path().starts_with("/v1/");
    let mut response = next.run(req).await;
    if api {
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// Headers every response carries.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// The answer for a path no route serves (and for a method a path does not allow): 404
/// `not_found` in problem+json, since API.md's codes have no 405.
pub async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        ErrorCode::NotFound,
        format!("no resource at {method} {}", uri.path()),
    )
}
