//! `voucher-issuer`: program years, claims, signed vouchers and their QR codes, what a firm
//! sees of its standing, and the audit log's endpoints. Accounts are `voucher-accounts`'s.

pub mod audit_api;
pub mod awards;
pub mod firms;
pub mod lookup;
pub mod programs;
pub mod qr;
pub mod rules_api;
pub mod vouchers;

use axum::routing::{get, post};
use axum::Router;
use voucher_core::AppState;

/// This part's routes. Each handler's auth extractor (`FirmSession`, `BureauSession`) is in
/// its signature.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/.well-known/jwks.json", get(audit_api::jwks))
        .route("/api/portal/me", get(firms::me))
        .route("/api/portal/platforms", get(firms::platforms))
        .route("/api/portal/program", get(firms::program))
        .route("/api/portal/vouchers/quote", post(vouchers::quote))
        .route(
            "/api/portal/vouchers",
            post(vouchers::claim).get(vouchers::list),
        )
        .route("/api/portal/vouchers/{id}", get(vouchers::get))
        .route("/api/portal/vouchers/{id}/qr.svg", get(qr::qr_svg))
        .route("/api/portal/vouchers/{id}/qr.png", get(qr::qr_png))
        .route("/api/portal/vouchers/{id}/cancel", post(vouchers::cancel))
        .route(
            "/api/portal/vouchers/{id}/redemptions",
            get(lookup::redemptions::portal_redemptions),
        )
        .route(
            "/api/bureau/vouchers",
            get(lookup::vouchers::bureau_vouchers),
        )
        .route(
            "/api/bureau/vouchers.csv",
            get(lookup::vouchers::bureau_vouchers_csv),
        )
        .route(
            "/api/bureau/vouchers/{id}",
            get(lookup::vouchers::bureau_voucher),
        )
        .route(
            "/api/bureau/redemptions",
            get(lookup::redemptions::bureau_redemptions),
        )
        .route(
            "/api/bureau/redemptions.csv",
            get(lookup::redemptions::bureau_redemptions_csv),
        )
        .route(
            "/api/bureau/programs/{year}",
            get(programs::get_program).patch(programs::patch_program),
        )
        .route("/api/bureau/audit", get(audit_api::list))
        .route("/api/bureau/audit/verify", get(audit_api::verify))
        .route("/api/rules/measures", get(rules_api::measures))
        .route("/api/rules/evaluate", post(rules_api::evaluate))
        .route(
            "/api/rules/awards",
            post(awards::record_award).get(awards::list_awards),
        )
        .route("/api/rules/awards.csv", get(awards::list_awards_csv))
        .with_state(state)
}

/// The OpenAPI document of this part's routes.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    audit_api::jwks,
    firms::me,
    firms::platforms,
    firms::program,
    vouchers::quote,
    vouchers::claim,
    vouchers::list,
    vouchers::get,
    vouchers::cancel,
    lookup::redemptions::portal_redemptions,
    lookup::vouchers::bureau_vouchers,
    lookup::vouchers::bureau_vouchers_csv,
    lookup::vouchers::bureau_voucher,
    lookup::redemptions::bureau_redemptions,
    lookup::redemptions::bureau_redemptions_csv,
    qr::qr_svg,
    qr::qr_png,
    programs::get_program,
    programs::patch_program,
    audit_api::list,
    audit_api::verify,
    rules_api::measures,
    rules_api::evaluate,
    awards::record_award,
    awards::list_awards,
    awards::list_awards_csv,
))]
pub struct ApiDoc;
