//! `voucher-redeemer`: platforms, API keys, verify, redeem, reverse.

pub mod platforms;

use axum::Router;
use voucher_core::AppState;

/// This part's routes; the binary merges them into one server or serves them alone.
pub fn router(state: AppState) -> Router {
    Router::new().with_state(state)
}

/// The OpenAPI document of this part's routes.
#[derive(utoipa::OpenApi)]
#[openapi()]
pub struct ApiDoc;
