//! `voucher-accounts`: who is calling. Firms' accounts (registration, eligibility, password
//! change and the hotline's reset), their verification (evidence files, the reviewer's queue
//! and decision), bureau staff (activation codes, roles, disabling, resets),
//! sessions that end at once (rows in Postgres, see `voucher_core::auth`), and the TOTP second
//! factor of `admin` and `finance`.

pub mod codes;
pub mod decision;
pub mod eligibility;
pub mod evidence;
pub mod firms;
pub mod guard;
pub mod review;
pub mod staff;
pub mod staff_admin;
pub mod totp;

use axum::routing::{delete, get, patch, post};
use axum::Router;
use voucher_core::AppState;

/// This part's routes. Each handler's auth extractor (`FirmSession`, `BureauSession`) is in
/// its signature; activation and password reset are anonymous and throttled per address.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/portal/firms", post(firms::register))
        .route("/api/portal/sessions", post(firms::login))
        .route("/api/portal/sessions/current", delete(firms::logout))
        .route("/api/portal/password", post(firms::change_password))
        .route("/api/portal/password-reset", post(firms::reset_password))
        .route("/api/bureau/sessions", post(staff::login))
        .route("/api/bureau/sessions/current", delete(staff::logout))
        .route("/api/bureau/password", post(staff::change_password))
        .route("/api/bureau/totp", post(staff_admin::enrol))
        .route(
            "/api/bureau/staff",
            post(staff_admin::create).get(staff_admin::list),
        )
        .route("/api/bureau/staff/{id}", patch(staff_admin::patch))
        .route("/api/bureau/staff/{id}/reset", post(staff_admin::reset))
        .route("/api/bureau/activation", post(staff_admin::activate))
        .route(
            "/api/bureau/firms/{id}/password-reset",
            post(firms::issue_reset),
        )
        .route(
            "/api/portal/evidence",
            post(evidence::upload).get(evidence::list),
        )
        .route("/api/portal/evidence/{id}", get(evidence::own))
        .route("/api/bureau/firms", get(review::list))
        .route(
            "/api/bureau/firms/{id}",
            get(review::get).delete(decision::delete),
        )
        .route(
            "/api/bureau/firms/{id}/verification",
            post(decision::decide),
        )
        .route(
            "/api/bureau/firms/{id}/evidence/{evidence_id}",
            get(evidence::download),
        )
        .with_state(state)
}

/// The OpenAPI document of this part's routes.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    firms::register,
    firms::login,
    firms::logout,
    firms::change_password,
    firms::reset_password,
    firms::issue_reset,
    evidence::upload,
    evidence::list,
    evidence::own,
    evidence::download,
    review::list,
    review::get,
    decision::decide,
    decision::delete,
    staff::login,
    staff::logout,
    staff::change_password,
    staff_admin::create,
    staff_admin::activate,
    staff_admin::list,
    staff_admin::patch,
    staff_admin::reset,
    staff_admin::enrol,
))]
pub struct ApiDoc;
