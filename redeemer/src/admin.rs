//! The bureau's side of platforms: registering them and issuing, listing and revoking keys.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;
use voucher_core::audit::{self, Actor};
use voucher_core::auth::{BureauSession, Role};
use voucher_core::extract::Path;
use voucher_core::page::Page;
use voucher_core::platform::generate_key;
use voucher_core::{ApiError, AppState, Json, Uscc};

use crate::platforms;

/// A platform to register.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPlatform {
    /// Name shown to firms.
    pub name: String,
    /// The platform operator's USCC.
    pub uscc: Uscc,
}

/// A registered platform with its first key, shown this once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RegisteredPlatform {
    /// Id.
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// USCC.
    pub uscc: String,
    /// The API key; stored only as a hash, never shown again.
    pub api_key: String,
    /// The key's id, for revoking it.
    pub key_id: Uuid,
}

/// A new key, shown this once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IssuedKey {
    /// The key's id.
    pub key_id: Uuid,
    /// The API key; stored only as a hash, never shown again.
    pub api_key: String,
}

/// Issues a key in the caller's transaction (the endpoints and the demo data).
pub async fn issue_key(
    conn: &mut sqlx::PgConnection,
    actor: &Actor,
    platform_id: Uuid,
) -> Result<IssuedKey, ApiError> {
    let key = generate_key()?;
    let key_id = Uuid::now_v7();
    sqlx::query!(
        r#"insert into api_keys (id, platform_id, display, hash) values ($1, $2, $3, $4)"#,
        key_id,
        platform_id,
        key.display,
        key.hash
    )
    .execute(&mut *conn)
    .await?;
    audit::append(
        conn,
        actor,
        "api_key.issue",
        Some(&format!("api_key:{key_id}")),
        serde_json::json!({"platform_id": platform_id, "display": key.display}),
    )
    .await?;
    Ok(IssuedKey {
        key_id,
        api_key: key.secret,
    })
}

/// Registers a platform and issues its first API key (admins).
#[utoipa::path(post, path = "/api/bureau/platforms", tag = "bureau", request_body = NewPlatform,
    security(("bearer" = [])),
    responses((status = 201, body = RegisteredPlatform), (status = 403, body = voucher_core::error::Problem),
        (status = 409, body = voucher_core::error::Problem, description = "`already_registered`")))]
pub async fn register(
    State(state): State<AppState>,
    session: BureauSession,
    Json(new): Json<NewPlatform>,
) -> Result<(StatusCode, Json<RegisteredPlatform>), ApiError> {
    session.require(&[Role::Admin])?;
    let mut tx = state.db.begin().await?;
    let platform = platforms::register(&mut tx, &session.actor(), &new.name, &new.uscc).await?;
    let key = issue_key(&mut tx, &session.actor(), platform.id).await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(RegisteredPlatform {
            id: platform.id,
            name: platform.name,
            uscc: platform.uscc,
            api_key: key.api_key,
            key_id: key.key_id,
        }),
    ))
}

/// Issues another key for a platform, e.g. to rotate without downtime (admins).
#[utoipa::path(post, path = "/api/bureau/platforms/{id}/api-keys", tag = "bureau",
    params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses((status = 201, body = IssuedKey), (status = 404, body = voucher_core::error::Problem)))]
pub async fn add_key(
    State(state): State<AppState>,
    session: BureauSession,
    Path(platform_id): Path<Uuid>,
) -> Result<(StatusCode, Json<IssuedKey>), ApiError> {
    session.require(&[Role::Admin])?;
    let mut tx = state.db.begin().await?;
    let exists = sqlx::query_scalar!(
        r#"select exists (select 1 from platforms where id = $1) as "exists!""#,
        platform_id
    )
    .fetch_one(&mut *tx)
    .await?;
    if !exists {
        return Err(ApiError::not_found("no such platform"));
    }
    let key = issue_key(&mut tx, &session.actor(), platform_id).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(key)))
}

/// Revokes a key; the next request with it is refused (admins).
#[utoipa::path(delete, path = "/api/bureau/api-keys/{key_id}", tag = "bureau",
    params(("key_id" = Uuid, Path)), security(("bearer" = [])),
    responses((status = 204), (status = 404, body = voucher_core::error::Problem)))]
pub async fn revoke_key(
    State(state): State<AppState>,
    session: BureauSession,
    Path(key_id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    session.require(&[Role::Admin])?;
    let mut tx = state.db.begin().await?;
    let revoked = sqlx::query_scalar!(
        r#"update api_keys set revoked_at = coalesce(revoked_at, now()) where id = $1 returning platform_id"#,
        key_id
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| ApiError::not_found("no such API key"))?;
    audit::append(
        &mut tx,
        &session.actor(),
        "api_key.revoke",
        Some(&format!("api_key:{key_id}")),
        serde_json::json!({"platform_id": revoked}),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A key as the console lists it (never the secret).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeyView {
    /// Id.
    pub key_id: Uuid,
    /// The first characters, to tell keys apart.
    pub display: String,
    /// Issued.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last used (to the minute).
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
    /// Revoked, if it was.
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
}

/// A platform with its keys.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PlatformView {
    /// Id.
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// USCC.
    pub uscc: String,
    /// Whether firms can claim for it.
    pub active: bool,
    /// Its keys, newest first.
    pub keys: Vec<KeyView>,
}

/// Every platform and its keys, by name (paged); every role may read.
#[utoipa::path(get, path = "/api/bureau/platforms", tag = "bureau", security(("bearer" = [])),
    responses((status = 200, body = [PlatformView])))]
pub async fn list(
    State(state): State<AppState>,
    _session: BureauSession,
    page: Page<(String, Uuid)>,
) -> Result<(HeaderMap, Json<Vec<PlatformView>>), ApiError> {
    let (after_name, after_id) = page.after_or_start();
    let mut platforms = sqlx::query!(
        r#"select id, name, uscc, active from platforms
           where (name, id) > ($1, $2)
           order by name, id
           limit $3"#,
        after_name,
        after_id,
        page.fetch()
    )
    .fetch_all(&state.db)
    .await?;
    let headers = page.finish(&mut platforms, |p| (p.name.clone(), p.id));
    let ids: Vec<Uuid> = platforms.iter().map(|p| p.id).collect();
    let keys = sqlx::query!(
        r#"select id, platform_id, display, created_at, last_used_at, revoked_at
           from api_keys where platform_id = any($1) order by created_at desc, id"#,
        &ids
    )
    .fetch_all(&state.db)
    .await?;
    let platforms = Json(
        platforms
            .into_iter()
            .map(|p| PlatformView {
                keys: keys
                    .iter()
                    .filter(|k| k.platform_id == p.id)
                    .map(|k| KeyView {
                        key_id: k.id,
                        display: k.display.clone(),
                        created_at: k.created_at,
                        last_used_at: k.last_used_at,
                        revoked_at: k.revoked_at,
                    })
                    .collect(),
                id: p.id,
                name: p.name,
                uscc: p.uscc,
                active: p.active,
            })
            .collect(),
    );
    Ok((headers, platforms))
}
