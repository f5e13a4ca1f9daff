//! The demo data set `ops/up` loads: two platforms, three verified firms (two eligible) and one
//! pending firm waiting in the reviewer's queue, each with a generated licence image as its
//! evidence, with synthetic USCCs that pass both check digits but belong to no real firm, and
//! the bureau's demo colleagues (a reviewer and two finance officers, two because the one who
//! approves a statement may not pay it). Loading twice changes nothing.

use sqlx::PgPool;
use voucher_accounts::decision;
use voucher_accounts::evidence::{self, EvidenceKind};
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
    // The last one stays pending, so the reviewer's queue has a registration to look at.
    let demo_firms = [
        (
            "宝安精密模具有限公司 (demo)",
            "MA5DFM01",
            "C3525",
            "宝安区",
            true,
        ),
        (
            "宝安智能电子有限公司 (demo)",
            "MA5DFM02",
            "C3971",
            "宝安区",
            true,
        ),
        (
            "南山软件服务有限公司 (demo)",
            "MA5DFM03",
            "I6510",
            "南山区",
            true,
        ),
        (
            "宝安新材料科技有限公司 (demo)",
            "MA5DFM04",
            "C2927",
            "宝安区",
            false,
        ),
    ];
    for (name, org, industry, district, verified) in demo_firms {
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
        let state = with_licence(pool, &code, industry, district, verified).await?;
        lines.push(format!(
            "  firm {name}: USCC {code}, password {FIRM_PASSWORD} ({state}{})",
            if district == "宝安区" {
                ""
            } else {
                ", not eligible"
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

/// Gives a demo firm its licence image (once) and, when `verified`, the demo reviewer's
/// approval with the declared industry and district; answers the firm's state.
async fn with_licence(
    pool: &PgPool,
    code: &Uscc,
    industry: &str,
    district: &str,
    verified: bool,
) -> anyhow::Result<String> {
    let mut tx = pool.begin().await?;
    let (id, state, files): (uuid::Uuid, String, i64) = sqlx::query_as(
        "select id, verification, (select count(*) from firm_evidence e where e.firm_id = f.id)
         from firms f where uscc = $1 for update",
    )
    .bind(code.as_str())
    .fetch_one(&mut *tx)
    .await?;
    let now = time::OffsetDateTime::now_utc();
    if files == 0 {
        evidence::store(
            &mut tx,
            id,
            EvidenceKind::BusinessLicense,
            "image/png",
            &licence_png()?,
            now,
        )
        .await
        .map_err(|e| anyhow::anyhow!("demo licence: {e}"))?;
    }
    let state = if verified && state == "pending" {
        decision::verify(&mut tx, id, industry, district, DEMO_STAFF[0].0, now)
            .await
            .map_err(|e| anyhow::anyhow!("demo verification: {e}"))?;
        "verified".to_owned()
    } else {
        state
    };
    tx.commit().await?;
    Ok(state)
}

/// A small stand-in for a photographed business licence (营业执照): a cream sheet with a
/// double red frame, grey lines where the text would be, and a red seal, as an RGB PNG.
pub fn licence_png() -> anyhow::Result<Vec<u8>> {
    const W: usize = 240;
    const H: usize = 168;
    let mut pixels = vec![0u8; W * H * 3];
    for y in 0..H {
        for x in 0..W {
            let edge = x.min(y).min(W - 1 - x).min(H - 1 - y);
            let frame = (4..7).contains(&edge) || (10..11).contains(&edge);
            // Rows of "text": 3 px lines every 14 px, of varying lengths.
            let line = (44..150).contains(&y)
                && y % 14 < 3
                && (24..W - 24 - (y / 14 * 37) % 70).contains(&x);
            let title = (18..28).contains(&y) && (80..160).contains(&x);
            let (dx, dy) = (x as i64 - 190, y as i64 - 126);
            let seal = (dx * dx + dy * dy) < 22 * 22 && (dx * dx + dy * dy) > 17 * 17;
            let rgb: [u8; 3] = if frame || seal || title {
                [196, 30, 36]
            } else if line {
                [120, 120, 120]
            } else {
                [250, 246, 232]
            };
            pixels[(y * W + x) * 3..(y * W + x) * 3 + 3].copy_from_slice(&rgb);
        }
    }
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, W as u32, H as u32);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header()?;
        writer.write_image_data(&pixels)?;
    }
    Ok(out)
}
