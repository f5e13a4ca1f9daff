//! Platforms: the cloud and industrial-software vendors whose bills vouchers discount.

use serde::Serialize;
use sqlx::PgConnection;
use uuid::Uuid;
use voucher_core::audit::{self, Actor};
use voucher_core::error::is_constraint;
use voucher_core::{ApiError, ErrorCode, Uscc};

/// A registered platform.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Platform {
    /// Id.
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// USCC.
    pub uscc: String,
}

/// Registers a platform in the caller's transaction; a USCC already registered is
/// `already_registered`.
pub async fn register(
    conn: &mut PgConnection,
    actor: &Actor,
    name: &str,
    uscc: &Uscc,
) -> Result<Platform, ApiError> {
    let name = voucher_core::text::required("name", name, 200)?;
    let id = Uuid::now_v7();
    let inserted = sqlx::query!(
        r#"insert into platforms (id, name, uscc) values ($1, $2, $3)"#,
        id,
        &name,
        uscc.as_str()
    )
    .execute(&mut *conn)
    .await;
    match inserted {
        Err(e) if is_constraint(&e, "platforms_uscc_key") => {
            return Err(ApiError::new(
                ErrorCode::AlreadyRegistered,
                "a platform with this USCC is already registered",
            ));
        }
        other => {
            other?;
        }
    }
    audit::append(
        conn,
        actor,
        "platform.register",
        Some(&format!("platform:{id}")),
        serde_json::json!({"name": name, "uscc": uscc}),
    )
    .await?;
    Ok(Platform {
        id,
        name: name.to_owned(),
        uscc: uscc.as_str().to_owned(),
    })
}
