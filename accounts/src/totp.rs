//! TOTP second factor (RFC 6238: SHA-1, 6 digits, 30-second steps) for `admin` and `finance`
//! (GB/T 22239-2019 level 3: two factors for administrators), through the `totp-rs` crate. A
//! code is accepted once: the account keeps the last step it accepted, and only a later step's
//! code passes, decided by one conditional update.

use ring::rand::{SecureRandom, SystemRandom};
use serde::Serialize;
use sqlx::PgPool;
use totp_rs::{Algorithm, Secret, TOTP};
use uuid::Uuid;
use voucher_core::ApiError;

/// The issuer name authenticator apps show.
const ISSUER: &str = "宝安区云券";
/// Seconds per step.
const STEP: u64 = 30;

/// A new authenticator's secret, shown once.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TotpSetup {
    /// Base32 secret (for typing into an authenticator app).
    pub secret: String,
    /// `otpauth://totp/...` URI (for the QR code).
    pub otpauth_uri: String,
    /// The URI as a QR code, an SVG document.
    pub qr_svg: String,
}

/// A fresh 160-bit secret, base32.
pub fn new_secret() -> Result<String, ApiError> {
    let mut bytes = vec![0u8; 20];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| ApiError::internal(anyhow::anyhow!("no randomness for a TOTP secret")))?;
    Ok(Secret::Raw(bytes).to_encoded().to_string())
}

fn percent(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// What the console shows to enrol `username` with `secret`.
pub fn setup(username: &str, secret: &str) -> Result<TotpSetup, ApiError> {
    let otpauth_uri = format!(
        "otpauth://totp/{}:{}?secret={secret}&issuer={}&algorithm=SHA1&digits=6&period={STEP}",
        percent(ISSUER),
        percent(username),
        percent(ISSUER)
    );
    let qr = qrcode::QrCode::new(otpauth_uri.as_bytes())
        .map_err(|e| ApiError::internal(anyhow::anyhow!("QR of the otpauth URI: {e}")))?;
    let qr_svg = qr
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(200, 200)
        .build();
    Ok(TotpSetup {
        secret: secret.to_owned(),
        otpauth_uri,
        qr_svg,
    })
}

fn totp(secret: &str) -> Result<TOTP, ApiError> {
    let bytes = Secret::Encoded(secret.to_owned())
        .to_bytes()
        .map_err(|_| ApiError::internal(anyhow::anyhow!("stored TOTP secret is not base32")))?;
    TOTP::new(Algorithm::SHA1, 6, 1, STEP, bytes)
        .map_err(|e| ApiError::internal(anyhow::anyhow!("stored TOTP secret: {e}")))
}

/// The step (of the one before, now, and the one after, for clocks a little apart) whose code
/// `code` is, if any.
pub fn matching_step(secret: &str, code: &str, unix_now: u64) -> Result<Option<u64>, ApiError> {
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    let totp = totp(secret)?;
    let now_step = unix_now / STEP;
    for step in [now_step.saturating_sub(1), now_step, now_step + 1] {
        if totp.generate(step * STEP) == code {
            return Ok(Some(step));
        }
    }
    Ok(None)
}

/// The code of `secret` at `unix_time` (the demo and tests compute codes with it).
pub fn code_at(secret: &str, unix_time: u64) -> Result<String, ApiError> {
    Ok(totp(secret)?.generate(unix_time))
}

/// Accepts `code` for staff `id` once: true when it matches a step later than the last one
/// accepted (which it records), false when wrong or replayed.
pub async fn accept(
    db: &PgPool,
    id: Uuid,
    secret: &str,
    code: &str,
    unix_now: u64,
) -> Result<bool, ApiError> {
    let Some(step) = matching_step(secret, code, unix_now)? else {
        return Ok(false);
    };
    let step = i64::try_from(step).map_err(anyhow::Error::from)?;
    let taken = sqlx::query!(
        r#"update staff set totp_last_step = $2
           where id = $1 and totp_secret = $3 and (totp_last_step is null or totp_last_step < $2)"#,
        id,
        step,
        secret
    )
    .execute(db)
    .await?;
    Ok(taken.rows_affected() == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_6238_appendix_b_sha1_vector() {
        // RFC 6238 Appendix B: secret "12345678901234567890", T = 59 s → 94287082 (8 digits);
        // six digits are its last six.
        let secret = Secret::Raw(b"12345678901234567890".to_vec())
            .to_encoded()
            .to_string();
        assert_eq!(code_at(&secret, 59).unwrap(), "287082");
        assert_eq!(code_at(&secret, 1111111109).unwrap(), "081804");
    }

    #[test]
    fn a_code_matches_its_step_and_its_neighbours_only() {
        let secret = new_secret().unwrap();
        let now = 1_800_000_000;
        let code = code_at(&secret, now).unwrap();
        assert_eq!(matching_step(&secret, &code, now).unwrap(), Some(now / 30));
        assert_eq!(
            matching_step(&secret, &code, now + 30).unwrap(),
            Some(now / 30)
        );
        assert_eq!(matching_step(&secret, &code, now + 120).unwrap(), None);
        assert_eq!(matching_step(&secret, "12345", now).unwrap(), None);
    }

    #[test]
    fn the_otpauth_uri_names_the_account_and_the_parameters() {
        let s = setup("fin.wang", "JBSWY3DPEHPK3PXP").unwrap();
        assert!(s.otpauth_uri.starts_with("otpauth://totp/"));
        assert!(s.otpauth_uri.contains("fin.wang?secret=JBSWY3DPEHPK3PXP"));
        assert!(s.otpauth_uri.contains("digits=6&period=30"));
        assert!(s.qr_svg.contains("<svg"));
    }
}
