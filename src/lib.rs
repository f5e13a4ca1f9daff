//! `voucherd`: composes the parts into one server. The binary (`main.rs`) is a thin CLI over this.

pub mod demo;
pub mod openapi;
pub mod rules_cli;
pub mod web;

use std::sync::Arc;

use axum::http::{header, HeaderValue};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{middleware, Router};
use utoipa::OpenApi;
use voucher_core::{http, AppState};

/// Which parts one server runs (SPEC §4: the platform API can be deployed apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parts {
    /// Firm portal, bureau staff and sessions (accounts), programs, audit (issuer), the pages.
    pub issuer: bool,
    /// The platform API and platform administration.
    pub redeemer: bool,
    /// Settlement runs and statements.
    pub settlement: bool,
}

impl Parts {
    /// Every part: the usual single-server deployment.
    pub const ALL: Parts = Parts {
        issuer: true,
        redeemer: true,
        settlement: true,
    };
}

/// The whole system's OpenAPI 3.1 document, merged from every part.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = http::PublicApi::openapi();
    doc.merge(voucher_accounts::ApiDoc::openapi());
    doc.merge(voucher_issuer::ApiDoc::openapi());
    doc.merge(voucher_redeemer::ApiDoc::openapi());
    doc.merge(voucher_settlement::ApiDoc::openapi());
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        utoipa::openapi::security::SecurityScheme::Http(
            utoipa::openapi::security::HttpBuilder::new()
                .scheme(utoipa::openapi::security::HttpAuthScheme::Bearer)
                .description(Some(
                    "A session token (firms, staff) from the sessions endpoints, or a platform API key",
                ))
                .build(),
        ),
    );
    doc.info = utoipa::openapi::InfoBuilder::new()
        .title("Bao'an cloud-adoption vouchers (上云上平台消费券)")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "Firms claim signed vouchers, platforms redeem them, the bureau settles. \
             Errors are RFC 9457 problem details with a stable `code`.",
        ))
        .build();
    doc
}

/// The document `/openapi.json` serves: [`openapi`] with API.md's conventions applied to every
/// operation ([`openapi::finish`]).
pub fn openapi_json() -> serde_json::Value {
    openapi::finish(serde_json::to_value(openapi()).unwrap_or_default())
}

/// The router of every part, with the shared middleware and the problem+json fallback.
pub fn app(state: AppState) -> Router {
    app_with(state, Parts::ALL)
}

/// The router of the chosen parts.
pub fn app_with(state: AppState, parts: Parts) -> Router {
    let spec: Arc<String> = Arc::new(openapi_json().to_string());
    let mut router = http::public_router().with_state(state.clone()).route(
        "/openapi.json",
        get(move || {
            let spec = Arc::clone(&spec);
            async move {
                (
                    [(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    )],
                    spec.as_str().to_owned(),
                )
                    .into_response()
            }
        }),
    );
    if parts.issuer {
        router = router
            .merge(voucher_accounts::router(state.clone()))
            .merge(voucher_issuer::router(state.clone()))
            .merge(web::router());
    }
    if parts.redeemer {
        router = router.merge(voucher_redeemer::router(state.clone()));
    }
    if parts.settlement {
        router = router.merge(voucher_settlement::router(state.clone()));
    }
    with_edge(router, state)
}

/// Adds what every response passes through: the problem+json fallback for unknown paths and
/// methods, the 64 KiB declared-body limit, security headers and request metrics.
pub fn with_edge(router: Router, state: AppState) -> Router {
    router
        .fallback(http::not_found)
        .method_not_allowed_fallback(http::not_found)
        .layer(middleware::from_fn(http::limit_declared_body))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            voucher_core::platform::limit_bad_keys,
        ))
        .layer(middleware::from_fn(http::request_deadline))
        .layer(middleware::from_fn(http::no_store))
        .layer(middleware::from_fn(http::security_headers))
        .layer(middleware::from_fn_with_state(state, http::track_metrics))
}
