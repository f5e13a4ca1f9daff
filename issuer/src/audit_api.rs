//! The audit log for the bureau, and the public JWKS.

use axum::extract::State;
use serde::Deserialize;
use voucher_core::audit::{self, Entry, Verification};
use voucher_core::auth::BureauSession;
use voucher_core::extract::Query;
use voucher_core::token::{self, Jwks};
use voucher_core::{ApiError, AppState, Json};

/// Paging through the log.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Entries after this seq (default 0).
    pub after: Option<i64>,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<i64>,
}

/// Audit entries in the order appended.
#[utoipa::path(get, path = "/api/bureau/audit", tag = "bureau", params(AuditQuery),
    security(("bearer" = [])), responses((status = 200, body = [Entry])))]
pub async fn list(
    State(state): State<AppState>,
    _session: BureauSession,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Vec<Entry>>, ApiError> {
    let after = q.after.unwrap_or(0);
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::validation("limit", "must be 1 to 1000"));
    }
    Ok(Json(audit::list(&state.db, after, limit).await?))
}

/// Checks the hash chain and names every entry edited or removed since it was sealed.
#[utoipa::path(get, path = "/api/bureau/audit/verify", tag = "bureau",
    security(("bearer" = [])), responses((status = 200, body = Verification)))]
pub async fn verify(
    State(state): State<AppState>,
    _session: BureauSession,
) -> Result<Json<Verification>, ApiError> {
    Ok(Json(audit::verify(&state.db).await?))
}

/// The public keys that verify voucher tokens: the current key and every older key whose
/// vouchers are still alive.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "public", responses((status = 200, body = Jwks)))]
pub async fn jwks(State(state): State<AppState>) -> Result<Json<Jwks>, ApiError> {
    let keys = state.keys.get();
    let now = state.clock.now();
    let mut kids = sqlx::query_scalar!(
        r#"select distinct kid from vouchers
           where status in ('active', 'exhausted') and expires_at > $1"#,
        now
    )
    .fetch_all(&state.db)
    .await?;
    kids.push(keys.current.clone());
    kids.sort();
    kids.dedup();
    Ok(Json(Jwks {
        keys: kids
            .iter()
            .filter_map(|kid| token::jwk(&keys, kid))
            .collect(),
    }))
}
