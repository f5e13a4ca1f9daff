//! `voucher-redeemer`: platforms, API keys, verify, redeem, reverse; idempotent and never
//! overdrawn.

pub mod admin;
pub mod platforms;
pub mod redeem;

use axum::routing::{delete, post};
use axum::Router;
use voucher_core::AppState;

/// This part's routes; the binary merges them into one server or serves them alone. The
/// platform API's auth (`PlatformKey`, with its rate limit) is in each handler's signature.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/vouchers/verify", post(redeem::verify))
        .route("/v1/redemptions", post(redeem::redeem).get(redeem::list))
        .route("/v1/redemptions/{id}/reversal", post(redeem::reverse))
        .route(
            "/api/bureau/platforms",
            post(admin::register).get(admin::list),
        )
        .route("/api/bureau/platforms/{id}/api-keys", post(admin::add_key))
        .route("/api/bureau/api-keys/{key_id}", delete(admin::revoke_key))
        .with_state(state)
}

/// The OpenAPI document of this part's routes.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    redeem::verify,
    redeem::redeem,
    redeem::list,
    redeem::reverse,
    admin::register,
    admin::list,
    admin::add_key,
    admin::revoke_key,
))]
pub struct ApiDoc;
