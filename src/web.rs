//! The firm portal (`/`) and the bureau console (`/bureau`): static pages embedded in the
//! binary, no build step. They call the same JSON API as everyone else, with a bearer token
//! kept in the tab's sessionStorage (no cookies, so no cross-site request can use it, and
//! without CORS headers no other origin can read an answer).
//!
//! With `VOUCHER_WEB_DIR` set, files are read from that directory on each request instead, so
//! the pages can be edited without rebuilding.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use voucher_core::extract::Path;
use voucher_core::ApiError;

/// Every embedded file: (name under `web/`, content type, bytes).
const FILES: &[(&str, &str, &str)] = &[
    (
        "portal/index.html",
        "text/html; charset=utf-8",
        include_str!("../web/portal/index.html"),
    ),
    (
        "portal/portal.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/portal/portal.js"),
    ),
    (
        "portal/portal.css",
        "text/css; charset=utf-8",
        include_str!("../web/portal/portal.css"),
    ),
    (
        "console/index.html",
        "text/html; charset=utf-8",
        include_str!("../web/console/index.html"),
    ),
    (
        "console/console.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/console/console.js"),
    ),
    (
        "console/console.css",
        "text/css; charset=utf-8",
        include_str!("../web/console/console.css"),
    ),
    (
        "common.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/common.js"),
    ),
];

/// The pages' content security policy: only this origin's scripts and styles, images also
/// from blob: URLs (QR codes fetched with the token), no framing, no plugins.
const CSP: &str =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; \
                   connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
                   frame-ancestors 'none'";

fn serve(name: &str) -> Response {
    let Some((_, content_type, embedded)) = FILES.iter().find(|(n, _, _)| *n == name) else {
        return ApiError::not_found(format!("no page asset {name}")).into_response();
    };
    let body = match std::env::var_os("VOUCHER_WEB_DIR") {
        Some(dir) => match std::fs::read_to_string(std::path::Path::new(&dir).join(name)) {
            Ok(text) => text,
            Err(_) => (*embedded).to_owned(),
        },
        None => (*embedded).to_owned(),
    };
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CSP),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

/// The pages' routes.
pub fn router() -> Router {
    Router::new()
        .route("/", get(|| async { serve("portal/index.html") }))
        .route("/bureau", get(|| async { serve("console/index.html") }))
        .route(
            "/assets/{file}",
            get(|Path(file): Path<String>| async move {
                match file.as_str() {
                    "portal.js" | "portal.css" => serve(&format!("portal/{file}")),
                    "console.js" | "console.css" => serve(&format!("console/{file}")),
                    "common.js" => serve("common.js"),
                    _ => ApiError::not_found(format!("no page asset {file}")).into_response(),
                }
            }),
        )
}
