//! Managing staff accounts: an admin creates one with an activation code (nobody chooses a
//! password for someone else), lists, changes a role, disables, resets; the new colleague
//! activates; a reviewer may enrol an authenticator. An admin cannot disable, demote or reset
//! itself.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;
use voucher_core::audit::{self, Actor};
use voucher_core::auth::{self, BureauSession, Role, Subject};
use voucher_core::config::is_valid_username;
use voucher_core::extract::Path;
use voucher_core::page::Page;
use voucher_core::passwords::check_new_password;
use voucher_core::throttle::ClientAddr;
use voucher_core::{ApiError, AppState, ErrorCode, Json};

use crate::codes::{self, Kind, Owner};
use crate::staff::{insert_staff, needs_totp};
use crate::totp::{self, TotpSetup};

/// A new staff account: a name and a role, never a password.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewStaff {
    /// 3–64 of a-z, 0-9, `.`, `_`, `-`.
    pub username: String,
    /// `admin`, `reviewer` or `finance`.
    pub role: Role,
    /// Refused (422): the person sets a password when activating.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub password: Option<serde::de::IgnoredAny>,
}

/// A created account with its activation code, shown once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Activation {
    /// Id.
    pub id: Uuid,
    /// Username.
    pub username: String,
    /// Role.
    pub role: Role,
    /// Single-use code the new colleague activates with (72 h).
    pub activation_code: String,
    /// When the code stops working.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// Creates a staff account awaiting activation (admins only).
#[utoipa::path(post, path = "/api/bureau/staff", tag = "bureau", request_body = NewStaff,
    security(("bearer" = [])),
    responses((status = 201, body = Activation), (status = 403, body = voucher_core::error::Problem),
        (status = 409, body = voucher_core::error::Problem, description = "`already_registered`"),
        (status = 422, body = voucher_core::error::Problem, description = "`validation_failed`, also for a `password` field")))]
pub async fn create(
    State(state): State<AppState>,
    session: BureauSession,
    Json(new): Json<NewStaff>,
) -> Result<impl IntoResponse, ApiError> {
    session.require(&[Role::Admin])?;
    if new.password.is_some() {
        return Err(ApiError::validation(
            "password",
            "is not accepted: the colleague sets it with the activation code",
        ));
    }
    let username = new.username.trim();
    let actor = session.actor();
    let mut tx = state.db.begin().await?;
    let id = insert_staff(&mut tx, &actor, username, None, new.role).await?;
    let (activation_code, expires_at) = codes::issue(
        &mut tx,
        Kind::Activation,
        Owner::Staff(id),
        &actor.label(),
        state.clock.now(),
    )
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        [(header::CACHE_CONTROL, "no-store")],
        Json(Activation {
            id,
            username: username.to_owned(),
            role: new.role,
            activation_code,
            expires_at,
        }),
    ))
}

/// An activation.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Activate {
    /// The account's username.
    pub username: String,
    /// The code the admin gave.
    pub activation_code: String,
    /// The password the person chooses: 10+ characters, not guessable.
    pub password: String,
}

/// Activates an account with its code (anonymous, single use, 72 h) and sets its password. A
/// used, expired, unknown or other account's code → 422 naming `activation_code`.
#[utoipa::path(post, path = "/api/bureau/activation", tag = "bureau", request_body = Activate,
    responses((status = 204),
        (status = 422, body = voucher_core::error::Problem, description = "`validation_failed`"),
        (status = 429, body = voucher_core::error::Problem)))]
pub async fn activate(
    State(state): State<AppState>,
    client: ClientAddr,
    Json(activation): Json<Activate>,
) -> Result<StatusCode, ApiError> {
    state
        .throttle
        .anonymous(&state, &client, "activation")
        .await?;
    let refused = || {
        ApiError::validation(
            "activation_code",
            "is unknown, already used or expired; ask an admin for a new one",
        )
    };
    let username = activation.username.trim();
    if !is_valid_username(username) {
        return Err(refused());
    }
    check_new_password("password", &activation.password, &[username])?;
    let hash = auth::hash_password(activation.password).await?;
    let now = state.clock.now();
    let mut tx = state.db.begin().await?;
    let owner = codes::take(
        &mut tx,
        Kind::Activation,
        &activation.activation_code,
        "activation_code",
        now,
    )
    .await?;
    let Owner::Staff(id) = owner else {
        return Err(refused());
    };
    let set = sqlx::query!(
        r#"update staff set password_hash = $3, updated_at = $4
           where id = $1 and username = $2"#,
        id,
        username,
        hash,
        now
    )
    .execute(&mut *tx)
    .await?;
    if set.rows_affected() != 1 {
        // Another account's code: the transaction is dropped, the code stays unused.
        return Err(refused());
    }
    audit::append(
        &mut tx,
        &Actor::Staff(username.to_owned()),
        "staff.activate",
        Some(&format!("staff:{id}")),
        serde_json::json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A staff account as the staff page lists it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StaffEntry {
    /// Id.
    pub id: Uuid,
    /// Username.
    pub username: String,
    /// Role.
    pub role: Role,
    /// Disabled accounts cannot log in.
    pub disabled: bool,
    /// Whether an authenticator is enrolled.
    pub totp_enrolled: bool,
    /// Whether the account has a password (false until activated, and after a reset).
    pub activated: bool,
    /// Created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// The last successful login.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_login_at: Option<OffsetDateTime>,
}

/// Every staff account, by username (paged; admins only).
#[utoipa::path(get, path = "/api/bureau/staff", tag = "bureau", security(("bearer" = [])),
    responses((status = 200, body = [StaffEntry]), (status = 403, body = voucher_core::error::Problem)))]
pub async fn list(
    State(state): State<AppState>,
    session: BureauSession,
    page: Page<String>,
) -> Result<(HeaderMap, Json<Vec<StaffEntry>>), ApiError> {
    session.require(&[Role::Admin])?;
    let after = page.after_or_start();
    let rows = sqlx::query!(
        r#"select id, username, role, disabled, totp_secret is not null as "totp_enrolled!",
                  password_hash is not null as "activated!", created_at, last_login_at
           from staff where username > $1 order by username limit $2"#,
        after,
        page.fetch()
    )
    .fetch_all(&state.db)
    .await?;
    let mut staff = rows
        .into_iter()
        .map(|r| {
            Ok(StaffEntry {
                id: r.id,
                username: r.username,
                role: Role::parse(&r.role)
                    .ok_or_else(|| ApiError::internal(anyhow::anyhow!("unknown stored role")))?,
                disabled: r.disabled,
                totp_enrolled: r.totp_enrolled,
                activated: r.activated,
                created_at: r.created_at,
                last_login_at: r.last_login_at,
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    let headers = page.finish(&mut staff, |s| s.username.clone());
    Ok((headers, Json(staff)))
}

/// A change to a staff account.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StaffChange {
    /// The new role.
    #[serde(default)]
    pub role: Option<Role>,
    /// Disable (every session ends at once) or enable again.
    #[serde(default)]
    pub disabled: Option<bool>,
}

fn not_self(session: &BureauSession, id: Uuid, what: &str) -> Result<(), ApiError> {
    if session.staff_id == id {
        return Err(ApiError::forbidden(format!(
            "an admin cannot {what} its own account; ask another admin"
        )));
    }
    Ok(())
}

/// Changes a role or disables an account (admins only). Either ends the account's sessions, so
/// the change holds from the next request on every replica.
#[utoipa::path(patch, path = "/api/bureau/staff/{id}", tag = "bureau", request_body = StaffChange,
    params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses((status = 200, body = StaffEntry), (status = 403, body = voucher_core::error::Problem),
        (status = 404, body = voucher_core::error::Problem)))]
pub async fn patch(
    State(state): State<AppState>,
    session: BureauSession,
    Path(id): Path<Uuid>,
    Json(change): Json<StaffChange>,
) -> Result<Json<StaffEntry>, ApiError> {
    session.require(&[Role::Admin])?;
    if change.disabled == Some(true) {
        not_self(&session, id, "disable")?;
    }
    if change.role.is_some_and(|r| r != Role::Admin) {
        not_self(&session, id, "demote")?;
    }
    let now = state.clock.now();
    let mut tx = state.db.begin().await?;
    let before = sqlx::query!(
        r#"select role, disabled from staff where id = $1 for update"#,
        id
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| ApiError::not_found("no such staff account"))?;
    let role = change.role.map(Role::as_str).unwrap_or(&before.role);
    let disabled = change.disabled.unwrap_or(before.disabled);
    sqlx::query!(
        r#"update staff set role = $2, disabled = $3, updated_at = $4 where id = $1"#,
        id,
        role,
        disabled,
        now
    )
    .execute(&mut *tx)
    .await?;
    let changed = role != before.role || disabled != before.disabled;
    if changed {
        auth::end_sessions(&mut tx, Subject::Staff(id), None, now).await?;
    }
    audit::append(
        &mut tx,
        &session.actor(),
        "staff.update",
        Some(&format!("staff:{id}")),
        serde_json::json!({"role": {"from": before.role, "to": role},
                           "disabled": {"from": before.disabled, "to": disabled}}),
    )
    .await?;
    tx.commit().await?;
    state.sessions.forget_subject(Subject::Staff(id));
    let entry = sqlx::query!(
        r#"select id, username, role, disabled, totp_secret is not null as "totp_enrolled!",
                  password_hash is not null as "activated!", created_at, last_login_at
           from staff where id = $1"#,
        id
    )
    .fetch_one(&state.db)
    .await?;
    Ok(Json(StaffEntry {
        id: entry.id,
        username: entry.username,
        role: Role::parse(&entry.role)
            .ok_or_else(|| ApiError::internal(anyhow::anyhow!("unknown stored role")))?,
        disabled: entry.disabled,
        totp_enrolled: entry.totp_enrolled,
        activated: entry.activated,
        created_at: entry.created_at,
        last_login_at: entry.last_login_at,
    }))
}

/// A new activation code after a reset, shown once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ResetActivation {
    /// Single-use code (72 h).
    pub activation_code: String,
    /// When it stops working.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// Resets a staff account (admins only): its password and authenticator are cleared, its
/// sessions end, and a new activation code is issued.
#[utoipa::path(post, path = "/api/bureau/staff/{id}/reset", tag = "bureau",
    params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses((status = 200, body = ResetActivation), (status = 403, body = voucher_core::error::Problem),
        (status = 404, body = voucher_core::error::Problem)))]
pub async fn reset(
    State(state): State<AppState>,
    session: BureauSession,
    Path(id): Path<Uuid>,
) -> Result<impl IntoResponse, ApiError> {
    session.require(&[Role::Admin])?;
    not_self(&session, id, "reset")?;
    let now = state.clock.now();
    let actor = session.actor();
    let mut tx = state.db.begin().await?;
    let cleared = sqlx::query!(
        r#"update staff set password_hash = null, totp_secret = null, totp_last_step = null,
                            updated_at = $2
           where id = $1"#,
        id,
        now
    )
    .execute(&mut *tx)
    .await?;
    if cleared.rows_affected() != 1 {
        return Err(ApiError::not_found("no such staff account"));
    }
    let ended = auth::end_sessions(&mut tx, Subject::Staff(id), None, now).await?;
    let (activation_code, expires_at) = codes::issue(
        &mut tx,
        Kind::Activation,
        Owner::Staff(id),
        &actor.label(),
        now,
    )
    .await?;
    audit::append(
        &mut tx,
        &actor,
        "staff.reset",
        Some(&format!("staff:{id}")),
        serde_json::json!({"sessions_ended": ended}),
    )
    .await?;
    tx.commit().await?;
    state.sessions.forget_subject(Subject::Staff(id));
    Ok((
        [(header::CACHE_CONTROL, "no-store")],
        Json(ResetActivation {
            activation_code,
            expires_at,
        }),
    ))
}

/// Enrols an authenticator for the caller when it has none (a reviewer's choice; `admin` and
/// `finance` enrol at their first login). From then on its logins need `otp`.
#[utoipa::path(post, path = "/api/bureau/totp", tag = "bureau", security(("bearer" = [])),
    responses((status = 200, body = TotpSetup),
        (status = 409, body = voucher_core::error::Problem, description = "`invalid_transition`: already enrolled")))]
pub async fn enrol(
    State(state): State<AppState>,
    session: BureauSession,
) -> Result<impl IntoResponse, ApiError> {
    let secret = totp::new_secret()?;
    let mut tx = state.db.begin().await?;
    let enrolled = sqlx::query!(
        r#"update staff set totp_secret = $2, totp_last_step = null
           where id = $1 and totp_secret is null"#,
        session.staff_id,
        secret
    )
    .execute(&mut *tx)
    .await?;
    if enrolled.rows_affected() != 1 {
        return Err(ApiError::new(
            ErrorCode::InvalidTransition,
            if needs_totp(session.role) {
                "the authenticator is already enrolled; an admin's reset replaces it"
            } else {
                "an authenticator is already enrolled"
            },
        ));
    }
    audit::append(
        &mut tx,
        &session.actor(),
        "staff.totp_enrol",
        Some(&format!("staff:{}", session.staff_id)),
        serde_json::json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok((
        [(header::CACHE_CONTROL, "no-store")],
        Json(totp::setup(&session.username, &secret)?),
    ))
}
