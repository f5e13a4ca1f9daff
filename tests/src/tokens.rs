//! Voucher tokens checked by an independent verifier: the JWKS from the public endpoint and
//! ring's Ed25519 over the JWS signing input, nothing of the code that signed them.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::signature::{UnparsedPublicKey, ED25519};
use serde_json::{json, Value};
use sqlx::PgPool;
use voucher_core::token::{self, TokenError};

use crate::support::TestApp;

/// RFC 7515 verification by hand: `alg` must be EdDSA, `kid` must be in the JWKS, and the
/// signature must verify over `header.payload`. Returns the payload.
fn verify_with_jwks(jwks: &Value, token: &str) -> Result<Value, String> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("not three parts".into());
    };
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    if header["alg"] != "EdDSA" {
        return Err(format!("alg {}", header["alg"]));
    }
    let kid = header["kid"].as_str().ok_or("no kid")?;
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid)
        .ok_or("unknown kid")?;
    assert_eq!(
        (jwk["kty"].as_str(), jwk["crv"].as_str()),
        (Some("OKP"), Some("Ed25519"))
    );
    let public = URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap();
    let signature = URL_SAFE_NO_PAD.decode(s).map_err(|e| e.to_string())?;
    UnparsedPublicKey::new(&ED25519, public)
        .verify(format!("{h}.{p}").as_bytes(), &signature)
        .map_err(|_| "bad signature".to_string())?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn an_issued_token_verifies_with_the_jwks_alone_and_tampering_is_refused(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let platform = app.platform("云平台", 1).await;
    let (firm_id, session, uscc) = app.firm(1, true).await;
    let voucher = app.claim(&session, platform, "50000.00").await.json();
    let jws = voucher["token"].as_str().unwrap().to_owned();
    let jwks = app
        .call("GET", "/.well-known/jwks.json", None, None)
        .await
        .json();
    assert_eq!(jwks["keys"][0]["alg"], "EdDSA");
    assert_eq!(jwks["keys"][0]["use"], "sig");

    let claims = verify_with_jwks(&jwks, &jws).expect("the genuine token verifies");
    assert_eq!(claims["jti"], voucher["id"]);
    assert_eq!(claims["sub"], uscc.to_string());
    assert_eq!(claims["firm"], firm_id.to_string());
    assert_eq!(claims["platform"], platform.to_string());
    assert_eq!(claims["year"], voucher["year"]);
    assert_eq!(claims["face_value"], "15000.00");
    assert!(claims["exp"].as_i64().unwrap() > claims["iat"].as_i64().unwrap());

    let parts: Vec<&str> = jws.split('.').collect();
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    let mut richer = claims.clone();
    richer["face_value"] = json!("50000.00");
    let changed_payload = format!("{}.{}.{}", parts[0], b64(&richer), parts[2]);
    let mut sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    sig[0] ^= 1;
    let changed_signature = format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(&sig));
    let mut other_kid = header.clone();
    other_kid["kid"] = json!("not-a-key");
    let unknown_kid = format!("{}.{}.{}", b64(&other_kid), parts[1], parts[2]);
    let alg_none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "kid": header["kid"]})),
        parts[1]
    );

    let keys = app.state.keys.get();
    let now = app.state.clock.now().unix_timestamp();
    assert_eq!(
        token::verify(&keys, &jws, now).unwrap().jti.to_string(),
        voucher["id"].as_str().unwrap()
    );
    let cases = [
        ("changed payload", changed_payload, TokenError::Signature),
        (
            "changed signature",
            changed_signature,
            TokenError::Signature,
        ),
        ("unknown kid", unknown_kid, TokenError::UnknownKey),
        ("alg none", alg_none, TokenError::Algorithm),
    ];
    for (what, forged, ours) in cases {
        assert!(
            verify_with_jwks(&jwks, &forged).is_err(),
            "{what}: the independent verifier refuses it"
        );
        assert_eq!(
            token::verify(&keys, &forged, now),
            Err(ours),
            "{what}: the server refuses it"
        );
    }
    assert_eq!(
        token::verify(&keys, &jws, claims["exp"].as_i64().unwrap()),
        Err(TokenError::Expired)
    );
}

#[sqlx::test(migrator = "voucher_core::db::MIGRATOR")]
async fn after_rotation_old_vouchers_still_verify_and_new_ones_use_the_new_key(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let platform = app.platform("云平台", 2).await;
    let (_, session, _) = app.firm(2, true).await;
    let claim = |fee: &'static str| {
        let app = &app;
        let session = session.clone();
        async move { app.claim(&session, platform, fee).await.json() }
    };
    let old = claim("1000.00").await;
    let old_kid = app.state.keys.get().current.clone();
    let new_kid = app.state.keys.rotate().unwrap();
    assert_ne!(old_kid, new_kid);
    let new = claim("2000.00").await;
    let jwks = app
        .call("GET", "/.well-known/jwks.json", None, None)
        .await
        .json();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert!(
        kids.contains(&old_kid.as_str()) && kids.contains(&new_kid.as_str()),
        "{kids:?}"
    );
    verify_with_jwks(&jwks, old["token"].as_str().unwrap()).expect("old voucher verifies");
    let new_claims =
        verify_with_jwks(&jwks, new["token"].as_str().unwrap()).expect("new voucher verifies");
    assert_eq!(new_claims["jti"], new["id"]);
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(new["token"].as_str().unwrap().split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["kid"], new_kid);
    // Once the old key's only voucher is gone, the JWKS stops publishing it.
    let cancel = app
        .call(
            "POST",
            &format!(
                "/api/portal/vouchers/{}/cancel",
                old["id"].as_str().unwrap()
            ),
            Some(&session),
            None,
        )
        .await;
    assert_eq!(cancel.status.as_u16(), 200);
    let jwks = app
        .call("GET", "/.well-known/jwks.json", None, None)
        .await
        .json();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids, vec![new_kid.as_str()]);
}
