//! Single-use codes: staff activation (72 h) and firms' password reset (24 h). A code is random
//! (100 bits), shown once, stored only as its SHA-256 (a long random code needs no slow hash),
//! and taken by one conditional update, so two requests racing with it cannot both succeed.

use ring::rand::{SecureRandom, SystemRandom};
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;
use voucher_core::ApiError;

/// How long a staff activation code lasts.
pub const ACTIVATION_TTL: time::Duration = time::Duration::hours(72);
/// How long a firm's password reset code lasts.
pub const RESET_TTL: time::Duration = time::Duration::hours(24);

/// Letters and digits that cannot be mistaken for one another when read over the phone.
const ALPHABET: &[u8] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";
/// Characters in a code (31^20 ≈ 2^99).
const CODE_CHARS: usize = 20;

/// What a code is for, as stored in `account_codes.kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A staff account's activation (also after an admin's reset).
    Activation,
    /// A firm's password reset, issued by the bureau's hotline.
    FirmReset,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Activation => "activation",
            Kind::FirmReset => "firm_reset",
        }
    }
}

/// The account a code opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// A firm, by id.
    Firm(Uuid),
    /// A staff member, by id.
    Staff(Uuid),
}

/// A new random code, grouped in fives (`XXXXX-XXXXX-XXXXX-XXXXX`).
pub fn generate() -> Result<String, ApiError> {
    let mut bytes = [0u8; CODE_CHARS];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| ApiError::internal(anyhow::anyhow!("no randomness for a code")))?;
    let mut code = String::with_capacity(CODE_CHARS + 3);
    let mut i = 0;
    while i < CODE_CHARS {
        // Rejection sampling keeps every letter equally likely.
        let b = bytes[i];
        if usize::from(b) >= 256 - 256 % ALPHABET.len() {
            SystemRandom::new()
                .fill(&mut bytes[i..=i])
                .map_err(|_| ApiError::internal(anyhow::anyhow!("no randomness for a code")))?;
            continue;
        }
        if i > 0 && i % 5 == 0 {
            code.push('-');
        }
        code.push(char::from(ALPHABET[usize::from(b) % ALPHABET.len()]));
        i += 1;
    }
    Ok(code)
}

/// The stored form of a code: SHA-256 of its letters, upper case, without dashes or spaces,
/// so a code typed in lower case or without its dashes still matches.
pub fn hash(code: &str) -> Vec<u8> {
    let normal: String = code
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    ring::digest::digest(&ring::digest::SHA256, normal.as_bytes())
        .as_ref()
        .to_vec()
}

/// Issues a code for `owner` in the caller's transaction, voiding its older unused ones.
/// Returns the code (to show once) and when it expires.
pub async fn issue(
    conn: &mut PgConnection,
    kind: Kind,
    owner: Owner,
    created_by: &str,
    now: OffsetDateTime,
) -> Result<(String, OffsetDateTime), ApiError> {
    let (firm_id, staff_id) = match owner {
        Owner::Firm(id) => (Some(id), None),
        Owner::Staff(id) => (None, Some(id)),
    };
    let ttl = match kind {
        Kind::Activation => ACTIVATION_TTL,
        Kind::FirmReset => RESET_TTL,
    };
    sqlx::query!(
        r#"update account_codes set used_at = $3
           where used_at is null and (firm_id = $1 or staff_id = $2)"#,
        firm_id,
        staff_id,
        now
    )
    .execute(&mut *conn)
    .await?;
    let code = generate()?;
    let expires_at = now + ttl;
    sqlx::query!(
        r#"insert into account_codes (code_hash, kind, firm_id, staff_id, created_by, created_at, expires_at)
           values ($1, $2, $3, $4, $5, $6, $7)"#,
        hash(&code),
        kind.as_str(),
        firm_id,
        staff_id,
        created_by,
        now,
        expires_at
    )
    .execute(&mut *conn)
    .await?;
    Ok((code, expires_at))
}

/// Takes a code once: marks it used and returns the account it opens, or 422 naming `field`
/// when it is unknown, used, expired or for another account (`belongs` decides the last).
pub async fn take(
    conn: &mut PgConnection,
    kind: Kind,
    code: &str,
    field: &str,
    now: OffsetDateTime,
) -> Result<Owner, ApiError> {
    let refused = || {
        ApiError::validation(
            field,
            "is unknown, already used or expired; ask the bureau for a new one",
        )
    };
    if code.len() > 64 {
        return Err(refused());
    }
    let row = sqlx::query!(
        r#"update account_codes set used_at = $3
           where code_hash = $1 and kind = $2 and used_at is null and expires_at > $3
           returning firm_id, staff_id"#,
        hash(code),
        kind.as_str(),
        now
    )
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(refused)?;
    match (row.firm_id, row.staff_id) {
        (Some(firm), None) => Ok(Owner::Firm(firm)),
        (None, Some(staff)) => Ok(Owner::Staff(staff)),
        _ => Err(refused()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_grouped_and_hash_the_same_however_typed() {
        let code = generate().unwrap();
        assert_eq!(code.len(), 23);
        assert_eq!(code.matches('-').count(), 3);
        let typed = code.replace('-', "").to_lowercase();
        assert_eq!(hash(&code), hash(&typed));
        assert_ne!(generate().unwrap(), code);
    }
}
