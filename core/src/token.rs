//! The voucher token: a compact JWS (EdDSA, Ed25519, with `kid`) that any platform can check
//! offline with the bureau's JWKS. The online redemption stays the authority on balance.

use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::keys::KeySet;

/// Who issues vouchers (`iss`).
pub const ISSUER: &str = "baoan-voucher";

/// What a token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoucherClaims {
    /// Issuer, always [`ISSUER`].
    pub iss: String,
    /// The voucher id.
    pub jti: Uuid,
    /// The firm's USCC.
    pub sub: String,
    /// The firm's id.
    pub firm: Uuid,
    /// The platform the voucher is bound to.
    pub platform: Uuid,
    /// Program year.
    pub year: i32,
    /// Face value, a money string.
    pub face_value: String,
    /// Short code, for matching a typed code to the token.
    pub code: String,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Expiry (Unix seconds): the redeem deadline.
    pub exp: i64,
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    /// Not a JWS, or a header or payload that does not parse.
    #[error("the token is malformed")]
    Malformed,
    /// `alg` other than EdDSA (including `none`).
    #[error("the token's algorithm is not EdDSA")]
    Algorithm,
    /// No `kid`, or one this server does not know.
    #[error("the token's key id is unknown")]
    UnknownKey,
    /// The signature does not verify.
    #[error("the token's signature is invalid")]
    Signature,
    /// Past `exp`.
    #[error("the token has expired")]
    Expired,
}

/// Signs claims with the current key.
pub fn sign(keys: &KeySet, claims: &VoucherClaims) -> anyhow::Result<(String, String)> {
    let key = keys.signing();
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(key.kid.clone());
    let token = jsonwebtoken::encode(&header, claims, &EncodingKey::from_ed_der(key.pkcs8()))?;
    Ok((token, key.kid.clone()))
}

/// Verifies signature, algorithm, key and expiry (`now` in Unix seconds).
pub fn verify(keys: &KeySet, token: &str, now: i64) -> Result<VoucherClaims, TokenError> {
    verify_naming_key(keys, token, now).map(|(claims, _)| claims)
}

/// [`verify`], also naming the key that signed the token.
fn verify_naming_key(
    keys: &KeySet,
    token: &str,
    now: i64,
) -> Result<(VoucherClaims, String), TokenError> {
    // Read `alg` first ourselves: a header naming an algorithm the JOSE library does not even
    // know (`none`) is an algorithm refusal, not a parse error.
    let header_b64 = token.split('.').next().unwrap_or_default();
    let header_json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header_b64)
        .map_err(|_| TokenError::Malformed)?;
    let raw: serde_json::Value =
        serde_json::from_slice(&header_json).map_err(|_| TokenError::Malformed)?;
    if raw.get("alg").and_then(|a| a.as_str()) != Some("EdDSA") {
        return Err(TokenError::Algorithm);
    }
    let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
    if header.alg != Algorithm::EdDSA {
        return Err(TokenError::Algorithm);
    }
    let kid = header.kid.ok_or(TokenError::UnknownKey)?;
    let key = keys.keys.get(&kid).ok_or(TokenError::UnknownKey)?;
    let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&key.public);
    let decoding = DecodingKey::from_ed_components(&x).map_err(|_| TokenError::UnknownKey)?;
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_issuer(&[ISSUER]);
    validation.set_required_spec_claims(&["exp", "iss"]);
    validation.validate_exp = false;
    validation.leeway = 0;
    let data = jsonwebtoken::decode::<VoucherClaims>(token, &decoding, &validation).map_err(
        |e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => TokenError::Signature,
            jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => TokenError::Algorithm,
            _ => TokenError::Malformed,
        },
    )?;
    if data.claims.exp <= now {
        return Err(TokenError::Expired);
    }
    Ok((data.claims, kid))
}

/// One public key in JWKS form (RFC 8037).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Jwk {
    /// `OKP`.
    pub kty: String,
    /// `Ed25519`.
    pub crv: String,
    /// Key id.
    pub kid: String,
    /// The public key, base64url without padding.
    pub x: String,
    /// `sig`.
    #[serde(rename = "use")]
    pub use_: String,
    /// `EdDSA`.
    pub alg: String,
}

/// The JWKS document.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Jwks {
    /// The keys.
    pub keys: Vec<Jwk>,
}

/// The JWKS entry of the key `kid`, if the set has it.
pub fn jwk(keys: &KeySet, kid: &str) -> Option<Jwk> {
    keys.keys.get(kid).map(|key| Jwk {
        kty: "OKP".into(),
        crv: "Ed25519".into(),
        kid: key.kid.clone(),
        x: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&key.public),
        use_: "sig".into(),
        alg: "EdDSA".into(),
    })
}

/// Tokens whose signature this process has already checked, so a voucher presented bill after
/// bill is verified once (Ed25519 is most of a redemption's CPU in the server). The key is the
/// whole token text, so a token differing in any byte is verified afresh; expiry is checked on
/// every use, and so is the signing key: an entry counts only while the key set still holds
/// the key that verified it (same id, same public key), so removing or replacing a key
/// invalidates everything it verified. Bounded: when full it is emptied and refills with what
/// is in use.
#[derive(Clone, Default)]
pub struct VerifiedTokens {
    inner: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, Verified>>>,
}

/// A verified token: its claims and the key that verified it.
#[derive(Clone)]
struct Verified {
    claims: VoucherClaims,
    kid: String,
    public: Vec<u8>,
}

/// How many verified tokens a process remembers (each ~1 KiB with its claims: ~10 MiB at most).
const VERIFIED_CAPACITY: usize = 10_000;

impl VerifiedTokens {
    /// [`verify`], answered from memory when this exact token verified before.
    pub fn verify(
        &self,
        keys: &KeySet,
        token: &str,
        now: i64,
    ) -> Result<VoucherClaims, TokenError> {
        let known = self
            .inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(token)
            .cloned()
            .filter(|v| {
                keys.keys
                    .get(&v.kid)
                    .is_some_and(|key| key.public == v.public)
            });
        let claims = match known {
            Some(verified) => verified.claims,
            None => {
                let (claims, kid) = verify_naming_key(keys, token, now)?;
                let public = keys
                    .keys
                    .get(&kid)
                    .map(|key| key.public.clone())
                    .ok_or(TokenError::UnknownKey)?;
                let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
                if map.len() >= VERIFIED_CAPACITY {
                    map.clear();
                }
                map.insert(
                    token.to_owned(),
                    Verified {
                        claims: claims.clone(),
                        kid,
                        public,
                    },
                );
                claims
            }
        };
        if claims.exp <= now {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> VoucherClaims {
        VoucherClaims {
            iss: ISSUER.into(),
            jti: Uuid::nil(),
            sub: "914403001922038216".into(),
            firm: Uuid::nil(),
            platform: Uuid::nil(),
            year: 2026,
            face_value: "15000.00".into(),
            code: "BA26-2222-2222".into(),
            iat: 0,
            exp,
        }
    }

    #[test]
    fn remembered_tokens_still_expire_and_altered_ones_are_verified_afresh() {
        let dir = std::env::temp_dir().join(format!("voucher-token-test-{}", Uuid::new_v4()));
        let ring = crate::keys::KeyRing::open(&dir).unwrap();
        let keys = ring.get();
        let (token, _) = sign(&keys, &claims(1_000)).unwrap();
        let cache = VerifiedTokens::default();
        assert_eq!(cache.verify(&keys, &token, 10).unwrap().exp, 1_000);
        assert_eq!(
            cache.verify(&keys, &token, 10).unwrap().exp,
            1_000,
            "from memory"
        );
        assert_eq!(cache.verify(&keys, &token, 1_000), Err(TokenError::Expired));
        let mut altered = token.clone();
        altered.push('A');
        assert!(cache.verify(&keys, &altered, 10).is_err());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn removing_the_key_invalidates_what_it_verified() {
        let dir = std::env::temp_dir().join(format!("voucher-token-test-{}", Uuid::new_v4()));
        let ring = crate::keys::KeyRing::open(&dir).unwrap();
        let old = ring.get();
        let (token, kid) = sign(&old, &claims(1_000)).unwrap();
        let cache = VerifiedTokens::default();
        assert!(cache.verify(&old, &token, 10).is_ok());
        ring.rotate().unwrap();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.file_name().unwrap().to_string_lossy().contains(&kid) {
                std::fs::remove_file(path).unwrap();
            }
        }
        ring.reload().unwrap();
        let without = ring.get();
        assert!(!without.keys.contains_key(&kid));
        assert_eq!(
            cache.verify(&without, &token, 10),
            Err(TokenError::UnknownKey),
            "remembered, but its key is gone"
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
