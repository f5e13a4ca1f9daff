//! The audit log for the bureau, and the public JWKS.

use axum::extract::State;
use axum::http::HeaderMap;
use serde::Deserialize;
use voucher_core::audit::{self, Entry, Verification};
use voucher_core::auth::BureauSession;
use voucher_core::extract::Query;
use voucher_core::page::Page;
use voucher_core::token::{self, Jwks};
use voucher_core::{ApiError, AppState, Json};

/// Where to start reading the log (`limit` and `cursor` page it, as every list).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Entries after this seq (default 0); a `cursor` takes precedence.
    #[param(minimum = 0)]
    pub after: Option<i64>,
}

/// Audit entries in the order appended (paged; the cursor is the last entry's seq).
#[utoipa::path(get, path = "/api/bureau/audit", tag = "bureau", params(AuditQuery),
    security(("bearer" = [])), responses((status = 200, body = [Entry])))]
pub async fn list(
    State(state): State<AppState>,
    _session: BureauSession,
    Query(q): Query<AuditQuery>,
    page: Page<i64>,
) -> Result<(HeaderMap, Json<Vec<Entry>>), ApiError> {
    let after = page.after_or(q.after.unwrap_or(0));
    let mut entries = audit::list(&state.db, after, page.fetch()).await?;
    let headers = page.finish(&mut entries, |e| e.seq);
    Ok((headers, Json(entries)))
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
