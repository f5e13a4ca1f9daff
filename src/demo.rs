//! The demo data set `ops/up` loads: two platforms, three firms (two eligible), with synthetic
//! USCCs that pass both check digits but belong to no real firm, and the bureau's demo
//! colleagues (a reviewer and two finance officers, two because the one who approves a
//! statement may not pay it). Loading twice changes nothing.

use sqlx::PgPool;
use voucher_accounts::firms::{self, Registration};
use voucher_accounts::staff::{create_with_password, CreateStaffError};
use voucher_core::audit::Actor;
use voucher_core::auth::Role;
use voucher_core::{ErrorCode, Uscc};

/// The demo firms' password.
pub const FIRM_PASSWORD: &str = "demo-firm-pass";

/// The bureau's demo colleagues: username, role, password.
pub const DEMO_STAFF: [(&str, Role, &str); 3] = [
    ("demo-reviewer", Role::Reviewer, "willow-crane-5204"),
    ("demo-finance", Role::Finance, "cedar-lantern-6391"),
    ("demo-finance2", Role::Finance, "maple-harbour-2748"),
];

fn uscc(registration: &str, organisation: &str) -> anyhow::Result<Uscc> {
    Uscc::with_check_digits(registration, organisation)
        .map_err(|e| anyhow::anyhow!("demo USCC: {e}"))
}

/// Loads what is missing and says what the demo logins are.
pub async fn load(pool: &PgPool) -> anyhow::Result<String> {
    let mut lines = vec!["demo data:".to_owned()];
    let platforms = [
        ("云启工业云 (demo)", "MA5DPF01"),
        ("智造软件平台 (demo)", "MA5DPF02"),
    ];
    for (i, (name, org)) in platforms.into_iter().enumerate() {
        let code = uscc("91440300", org)?;
        let mut tx = pool.begin().await?;
        match voucher_redeemer::platforms::register(&mut tx, &Actor::System, name, &code).await {
            Ok(_) => tx.commit().await?,
            Err(e) if e.code() == ErrorCode::AlreadyRegistered => {}
            Err(e) => anyhow::bail!("demo platform: {e}"),
        }
        let mut tx = pool.begin().await?;
        let id: uuid::Uuid = sqlx::query_scalar("select id from platforms where uscc = $1")
            .bind(code.as_str())
            .fetch_one(&mut *tx)
            .await?;
        let mut line = format!("  platform {name}: id {id}");
        if i == 0 {
            // A key is shown only once, so each load revokes the demo's earlier keys and prints
            // a fresh one.
            sqlx::query(
                "update api_keys set revoked_at = now() where platform_id = $1 and revoked_at is null",
            )
            .bind(id)
            .execute(&mut *tx)
            .await?;
            let key = voucher_redeemer::admin::issue_key(&mut tx, &Actor::System, id)
                .await
                .map_err(|e| anyhow::anyhow!("demo key: {e}"))?;
            line.push_str(&format!(", API key {}", key.api_key));
        }
        tx.commit().await?;
        lines.push(line);
    }
    let demo_firms = [
        ("宝安精密模具有限公司 (demo)", "MA5DFM01", "C3525", "宝安区"),
        ("宝安智能电子有限公司 (demo)", "MA5DFM02", "C3971", "宝安区"),
        ("南山软件服务有限公司 (demo)", "MA5DFM03", "I6510", "南山区"),
    ];
    for (name, org, industry, district) in demo_firms {
        let code = uscc("91440306", org)?;
        let registration = Registration {
            uscc: code.clone(),
            name: name.to_owned(),
            industry_code: industry.to_owned(),
            district: district.to_owned(),
            contact_name: "演示联系人".to_owned(),
            contact_phone: "0755-00000000".to_owned(),
            password: FIRM_PASSWORD.to_owned(),
        };
        match firms::create(pool, registration).await {
            Ok(_) => {}
            Err(e) if e.code() == ErrorCode::AlreadyRegistered => {}
            Err(e) => anyhow::bail!("demo firm: {e}"),
        }
        lines.push(format!(
            "  firm {name}: USCC {code}, password {FIRM_PASSWORD}{}",
            if district == "宝安区" {
                ""
            } else {
                " (not eligible)"
            }
        ));
    }
    for (username, role, password) in DEMO_STAFF {
        match create_with_password(pool, &Actor::System, username, password.to_owned(), role).await
        {
            Ok(_) | Err(CreateStaffError::Taken) => {}
            Err(e) => anyhow::bail!("demo staff {username}: {e}"),
        }
        lines.push(format!(
            "  bureau {}: {username} / {password}",
            role.as_str()
        ));
    }
    lines.push(
        "  admin and finance enrol a second factor at their first login: the console shows a QR \
         code; scan it with an authenticator app (Google Authenticator, Microsoft Authenticator, \
         FreeOTP, ...) and give its 6-digit code at every later login. One finance officer \
         approves a statement, the other records its payment."
            .to_owned(),
    );
    Ok(lines.join("\n"))
}
